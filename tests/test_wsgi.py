"""responsestore.wsgi over real HTTP: a threaded server on a loopback port, driven by the official openai client.

Every body and event is validated with the openai SDK's models and the Open Responses schemas
(``tests/wire_checks.py``). These servers run in this process (so the app's code counts towards coverage);
``test_wsgi_serve.py`` runs ``python -m responsestore serve`` as a child process.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import openai
import pytest

import responsestore
from responsestore.wsgi import Unauthorized, Usage, echo, make_app
from tests.live_app import TIMEOUT, Live
from tests.live_app import error_of as _error
from tests.wire_checks import check_item_page, check_response


def _owners(key: str | None) -> str | None:
    owners = {"key-a": "alice", "key-b": "bob"}
    if key not in owners:
        raise Unauthorized
    return owners[key]


@pytest.fixture
def serve(serve_on_both: Callable[..., Live]) -> Callable[..., Live]:
    """Both transports, with keys mapped to owners unless a test says otherwise."""
    return functools.partial(serve_on_both, authenticate=_owners)


@pytest.fixture
def live(serve: Callable[..., Live]) -> Live:
    return serve()


class Gate:
    """A test model that yields one word, then waits for :meth:`open` before yielding the rest."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.gate = threading.Event()

    def __call__(self, conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[str]:
        yield "first"
        self.started.set()
        assert self.gate.wait(TIMEOUT)
        yield " second"


# --------------------------------------------------------------------------- create, retrieve, delete


def test_plain_create_with_the_openai_client_and_every_body_validates(live: Live) -> None:
    client = live.client()
    response = client.responses.create(model="echo", input="hello wide world", metadata={"k": "v"}, temperature=0.5)
    assert response.status == "completed"
    assert response.output_text == "hello wide world"
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (3, 3)
    assert response.temperature == 0.5
    assert response.metadata == {"k": "v"}
    body = live.json("GET", f"/responses/{response.id}")
    parsed = check_response(body)
    assert parsed.output_text == "hello wide world"
    assert body["store"] is True
    assert body["top_p"] == 1.0
    assert client.responses.retrieve(response.id).id == response.id


def test_streamed_create_replays_after_any_sequence_number(live: Live) -> None:
    events = live.events("POST", "/responses", json={"model": "echo", "input": "one two three", "stream": True})
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    assert [event["type"] for event in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == "one two three"
    final = events[-1]["response"]
    assert final["status"] == "completed"
    id = final["id"]
    stored = live.json("GET", f"/responses/{id}")
    assert stored["output"] == final["output"]
    assert live.events("GET", f"/responses/{id}", params={"stream": "true"}) == events
    assert live.events("GET", f"/responses/{id}", params={"stream": "true", "starting_after": 4}) == events[5:]
    last = events[-1]["sequence_number"]
    assert live.events("GET", f"/responses/{id}", params={"stream": "true", "starting_after": last}) == []
    for bad in ("-1", "x"):
        error = _error(live.request("GET", f"/responses/{id}", params={"stream": "true", "starting_after": bad}), 400)
        assert error["param"] == "starting_after"
    assert _error(live.request("GET", f"/responses/{id}", params={"stream": "maybe"}), 400)["param"] == "stream"


def test_the_openai_client_streams_typed_events(live: Live) -> None:
    with live.client().responses.stream(model="echo", input="streamed by the sdk") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") == 4
    assert final.output_text == "streamed by the sdk"


def test_delete_answers_openais_shape_and_the_response_is_gone(live: Live) -> None:
    client = live.client()
    response = client.responses.create(model="echo", input="bye")
    assert live.json("DELETE", f"/responses/{response.id}") == {
        "id": response.id,
        "object": "response",
        "deleted": True,
    }
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    assert _error(live.request("DELETE", f"/responses/{response.id}"), 404)["code"] == "not_found"


# --------------------------------------------------------------------------- background and cancel


def test_background_response_runs_in_the_pool_and_its_events_replay(live: Live) -> None:
    events = live.events(
        "POST", "/responses", json={"model": "echo", "input": "in the back", "background": True, "stream": True}
    )
    kinds = [event["type"] for event in events]
    assert kinds[:3] == ["response.created", "response.queued", "response.in_progress"]
    assert events[0]["response"]["status"] == "queued"
    assert kinds[-1] == "response.completed"
    id = events[0]["response"]["id"]
    stored = check_response(live.json("GET", f"/responses/{id}"))
    assert stored.status == "completed"
    assert stored.background is True
    assert live.events("GET", f"/responses/{id}", params={"stream": "true"}) == events


def test_background_without_stream_returns_the_queued_response(live: Live) -> None:
    client = live.client()
    queued = client.responses.create(model="echo", input="later", background=True)
    assert queued.status == "queued"
    check_response(live.json("GET", f"/responses/{queued.id}") | {})
    events = live.events("GET", f"/responses/{queued.id}", params={"stream": "true"})
    assert events[-1]["type"] == "response.completed"
    assert client.responses.retrieve(queued.id).output_text == "later"


def test_cancel_stops_a_running_background_response(serve: Callable[..., Live]) -> None:
    gate = Gate()
    live = serve(generate=gate)
    client = live.client()
    queued = client.responses.create(model="gated", input="x", background=True)
    assert gate.started.wait(TIMEOUT)
    cancelled = live.json("POST", f"/responses/{queued.id}/cancel")
    check_response(cancelled)
    assert cancelled["status"] == "cancelled"
    logged = live.events("GET", f"/responses/{queued.id}", params={"stream": "true"})
    gate.gate.set()
    # Cancelling again is idempotent; a foreground or finished response cannot be cancelled.
    assert live.json("POST", f"/responses/{queued.id}/cancel")["status"] == "cancelled"
    done = client.responses.create(model="echo", input="done")
    assert _error(live.request("POST", f"/responses/{done.id}/cancel"), 409)["code"] == "conflict"
    assert _error(live.request("POST", "/responses/resp_missing/cancel"), 404)["code"] == "not_found"
    live.app.close()  # waits for the worker: it must stop at its next step
    after = live.events("GET", f"/responses/{queued.id}", params={"stream": "true"})
    assert after == logged
    assert all(e["type"] != "response.completed" for e in after)
    assert client.responses.retrieve(queued.id).status == "cancelled"


def test_closing_the_app_fails_queued_background_responses(serve: Callable[..., Live]) -> None:
    gate = Gate()
    live = serve(generate=gate, background_workers=1)
    client = live.client()
    running = client.responses.create(model="gated", input="x", background=True)
    assert gate.started.wait(TIMEOUT)
    waiting = client.responses.create(model="gated", input="y", background=True)
    closer = threading.Thread(target=live.app.close)
    closer.start()
    assert live.app.runner.stopping.wait(TIMEOUT)
    gate.gate.set()  # the running one may finish within the grace period; the queued one never starts
    closer.join(TIMEOUT)
    assert check_response(live.json("GET", f"/responses/{running.id}")).status == "completed"
    body = check_response(live.json("GET", f"/responses/{waiting.id}"))
    assert body.status == "failed"
    assert body.error is not None
    assert body.error.code == "server_error"
    assert _error(live.request("POST", "/responses", json={"model": "m", "input": "late"}), 503)["code"] == "stopping"


def test_a_background_response_cancelled_while_queued_never_runs(serve: Callable[..., Live]) -> None:
    gate = Gate()
    live = serve(generate=gate, background_workers=1)
    client = live.client()
    busy = client.responses.create(model="gated", input="x", background=True)
    assert gate.started.wait(TIMEOUT)
    waiting = client.responses.create(model="gated", input="y", background=True)
    assert live.json("POST", f"/responses/{waiting.id}/cancel")["status"] == "cancelled"
    gate.gate.set()
    assert live.events("GET", f"/responses/{busy.id}", params={"stream": "true"})[-1]["type"] == "response.completed"
    live.app.close()
    kinds = [e["type"] for e in live.events("GET", f"/responses/{waiting.id}", params={"stream": "true"})]
    assert kinds == ["response.created", "response.queued"]
    assert client.responses.retrieve(waiting.id).status == "cancelled"


def test_a_stopped_app_refuses_new_background_responses(live: Live) -> None:
    live.app.close()
    error = _error(live.request("POST", "/responses", json={"model": "echo", "input": "x", "background": True}), 503)
    assert error["code"] == "stopping"
    assert len(live.app.store) == 0, "nothing is stored for a refused create"


# --------------------------------------------------------------------------- models


def test_a_model_that_raises_mid_stream_fails_the_response(serve: Callable[..., Live]) -> None:
    def broken(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[str]:
        yield "partial"
        raise RuntimeError("secret internal detail")

    live = serve(generate=broken)
    events = live.events("POST", "/responses", json={"model": "broken", "input": "x", "stream": True})
    assert events[-1]["type"] == "response.failed"
    failed = events[-1]["response"]
    assert failed["error"]["code"] == "server_error"
    assert "secret" not in failed["error"]["message"]
    stored = check_response(live.json("GET", f"/responses/{failed['id']}"))
    assert stored.status == "failed"
    body = live.json("POST", "/responses", json={"model": "broken", "input": "x"})
    assert check_response(body).status == "failed"


def test_a_model_can_yield_output_items_and_usage(serve: Callable[..., Live]) -> None:
    def tool_user(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[Any]:
        assert request["tools"][0]["name"] == "lookup"
        yield "Let me look."
        yield {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{}"}
        yield "Done"
        yield Usage(input_tokens=7, output_tokens=2)

    live = serve(generate=tool_user)
    tools = [{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}, "strict": True}]
    events = live.events("POST", "/responses", json={"model": "t", "input": "x", "tools": tools, "stream": True})
    final = check_response(events[-1]["response"])
    assert [item.type for item in final.output] == ["message", "function_call", "message"]
    assert final.usage is not None
    assert final.usage.total_tokens == 9
    assert final.tools[0].type == "function"

    def wrong(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[Any]:
        yield 42

    bad = serve(generate=wrong)
    assert check_response(bad.json("POST", "/responses", json={"model": "w", "input": "x"})).status == "failed"


def test_echo_replies_with_the_last_user_message() -> None:
    conversation = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "first words"}]},
        {"type": "message", "role": "assistant", "content": "first words"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "the last"}]},
        {"type": "function_call_output", "call_id": "c", "output": "{}"},
    ]
    chunks = list(echo(conversation, {}))
    assert chunks == ["the", " last", Usage(input_tokens=6, output_tokens=2)]
    assert list(echo([], {})) == [Usage(input_tokens=0, output_tokens=0)]


# --------------------------------------------------------------------------- chains, store=false, items


def test_a_three_turn_chain_carries_the_conversation(live: Live) -> None:
    client = live.client()
    seen: list[Sequence[dict[str, Any]]] = []
    first = client.responses.create(model="echo", input="one", instructions="be brief")
    second = client.responses.create(model="echo", input="two words", previous_response_id=first.id)
    third = client.responses.create(model="echo", input="three more words", previous_response_id=second.id)
    assert third.output_text == "three more words"
    assert third.previous_response_id == second.id
    assert third.usage is not None
    assert third.usage.input_tokens == 1 + 1 + 2 + 2 + 3  # every text of the chain, in words
    assert first.instructions == "be brief"
    assert seen == []
    error = _error(
        live.request("POST", "/responses", json={"model": "echo", "input": "x", "previous_response_id": "resp_nope"}),
        400,
    )
    assert error["param"] == "previous_response_id"


def test_store_false_is_never_retrievable(live: Live) -> None:
    client = live.client()
    first = client.responses.create(model="echo", input="kept")
    body = live.json(
        "POST",
        "/responses",
        json={"model": "echo", "input": "not kept", "store": False, "previous_response_id": first.id},
    )
    parsed = check_response(body)
    assert parsed.store is False
    assert parsed.output_text == "not kept"
    assert parsed.previous_response_id == first.id
    assert _error(live.request("GET", f"/responses/{parsed.id}"), 404)["code"] == "not_found"
    events = live.events("POST", "/responses", json={"model": "echo", "input": "a b", "store": False, "stream": True})
    assert events[-1]["type"] == "response.completed"
    assert _error(live.request("GET", f"/responses/{events[-1]['response']['id']}"), 404)
    error = _error(
        live.request("POST", "/responses", json={"model": "echo", "input": "x", "store": False, "background": True}),
        400,
    )
    assert error["param"] == "store"


def test_input_items_auto_paginate_in_both_orders(live: Live) -> None:
    client = live.client()
    items = [{"role": "user", "content": f"message {i}"} for i in range(7)]
    response = client.responses.create(model="echo", input=items)  # type: ignore[arg-type]
    ascending = [item.id for item in client.responses.input_items.list(response.id, limit=2, order="asc")]
    descending = [item.id for item in client.responses.input_items.list(response.id, limit=3)]
    assert len(ascending) == 7
    assert descending == ascending[::-1]
    page = check_item_page(live.json("GET", f"/responses/{response.id}/input_items", params={"limit": 100}))
    assert [item.id for item in page.data] == descending
    assert all(item.status == "completed" for item in page.data)  # type: ignore[union-attr]
    for params, param in (
        ({"limit": 0}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"order": "up"}, "order"),
        ({"after": "msg_unknown"}, "after"),
    ):
        assert (
            _error(live.request("GET", f"/responses/{response.id}/input_items", params=params), 400)["param"] == param
        )


def test_an_empty_input_items_page_is_a_valid_item_list(live: Live) -> None:
    response = live.client().responses.create(model="echo", input=[])
    body = live.json("GET", f"/responses/{response.id}/input_items")
    page = check_item_page(body)
    assert page.data == []
    assert body["has_more"] is False


# --------------------------------------------------------------------------- auth and errors


def test_auth_maps_keys_to_owners_and_isolates_them(live: Live) -> None:
    alice = live.client("key-a")
    bob = live.client("key-b")
    mine = alice.responses.create(model="echo", input="alice's")
    with pytest.raises(openai.NotFoundError):
        bob.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        bob.responses.input_items.list(mine.id)
    with pytest.raises(openai.NotFoundError):
        bob.responses.delete(mine.id)
    with pytest.raises(openai.AuthenticationError):
        live.client("wrong").responses.retrieve(mine.id)
    reply = live.request("GET", f"/responses/{mine.id}", headers={"Authorization": ""})
    assert _error(reply, 401)["code"] == "invalid_api_key"
    assert "Bearer" in reply.headers["www-authenticate"]
    basic = live.request("GET", f"/responses/{mine.id}", headers={"Authorization": "Basic xyz"})
    assert _error(basic, 401)["type"] == "authentication_error"
    assert alice.responses.retrieve(mine.id).output_text == "alice's"


def test_without_authenticate_every_key_is_owner_none(serve: Callable[..., Live]) -> None:
    store = responsestore.open("memory://")
    live = serve(store, authenticate=None)
    response = live.client("anything").responses.create(model="echo", input="hi")
    assert store.get(response.id, owner=None).id == response.id
    assert live.request("GET", f"/responses/{response.id}", headers={"Authorization": ""}).status_code == 200


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "", "input": "x"}, "model"),
        ({"model": "echo", "input": 3}, "input"),
        ({"model": "echo", "input": "x", "temperature": "hot"}, "temperature"),
        ({"model": "echo", "input": "x", "temperature": True}, "temperature"),
        ({"model": "echo", "input": "x", "max_output_tokens": -1}, "max_output_tokens"),
        ({"model": "echo", "input": "x", "truncation": "sometimes"}, "truncation"),
        ({"model": "echo", "input": "x", "stream": "yes"}, "stream"),
        ({"model": "echo", "input": "x", "surprise": 1}, "surprise"),
        ({"model": "echo", "input": "x", "metadata": {"k": 1}}, "metadata"),
        ({"model": "echo", "input": [{"content": "no role"}]}, "input"),
        ({"model": "echo", "input": "x", "tools": {"not": "a list"}}, "tools"),
    ],
)
def test_bad_parameters_are_400_and_store_nothing(serve: Callable[..., Live], body: Any, param: str) -> None:
    store = responsestore.open("memory://")
    live = serve(store)
    error = _error(live.request("POST", "/responses", json=body), 400)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert store.stats().records == 0


def test_http_errors_have_openais_shape(serve: Callable[..., Live]) -> None:
    live = serve(max_body_bytes=1000)
    assert _error(live.request("POST", "/responses", content=b"{not json"), 400)["code"] == "invalid_json"
    assert _error(live.request("POST", "/responses", content=b"[1]"), 400)["code"] == "invalid_json"
    big = json.dumps({"model": "echo", "input": "x" * 2000}).encode()
    assert _error(live.request("POST", "/responses", content=big), 413)["code"] == "request_too_large"
    wrong = live.request("PUT", "/responses/resp_1")
    assert _error(wrong, 405)["code"] == "method_not_allowed"
    assert wrong.headers["allow"] == "GET, HEAD, DELETE, OPTIONS"
    assert _error(live.request("GET", "/responses"), 405)
    assert _error(live.request("GET", "/nowhere"), 404)["code"] == "not_found"
    assert _error(live.request("GET", "/responses/bad%20id!"), 400)


# --------------------------------------------------------------------------- concurrency and arguments


def test_sixteen_client_threads_at_once(live: Live) -> None:
    client = live.client()
    results: dict[int, list[str]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(16)

    def converse(n: int) -> None:
        try:
            start.wait(TIMEOUT)
            previous = None
            ids = []
            for turn in range(3):
                r = client.responses.create(
                    model="echo", input=f"thread {n} turn {turn}", previous_response_id=previous
                )
                assert r.output_text == f"thread {n} turn {turn}"
                previous = r.id
                ids.append(r.id)
            results[n] = ids
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=converse, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert errors == []
    assert len(results) == 16
    assert len({id for ids in results.values() for id in ids}) == 48
    for ids in results.values():
        last = client.responses.retrieve(ids[-1])
        assert last.previous_response_id == ids[1]
        assert last.usage is not None
        assert last.usage.input_tokens == 4 * 5


def test_make_app_refuses_bad_arguments() -> None:
    store = responsestore.open("memory://")
    for kwargs in (
        {"generate": 3},
        {"authenticate": "x"},
        {"max_body_bytes": 0},
        {"background_workers": True},
        {"stream_timeout": 0},
        {"stream_timeout": "1"},
    ):
        with pytest.raises(responsestore.InvalidArgument):
            make_app(store, **kwargs)
    with pytest.raises(responsestore.InvalidArgument):
        make_app({}, generate=echo)  # type: ignore[arg-type]


def test_a_client_leaving_a_foreground_stream_fails_the_response() -> None:
    import io  # noqa: PLC0415
    from wsgiref.util import setup_testing_defaults  # noqa: PLC0415

    store = responsestore.open("memory://")
    gate = Gate()  # the model waits after its first word, so the client leaves while the response runs
    app = make_app(store, generate=gate)
    body = json.dumps({"model": "gated", "input": "many words to stream here", "stream": True}).encode()
    environ: dict[str, Any] = {"REQUEST_METHOD": "POST", "PATH_INFO": "/v1/responses"}
    setup_testing_defaults(environ)
    environ.update({"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))})
    statuses: list[str] = []
    result = app(environ, lambda status, headers: statuses.append(status))
    chunks = iter(result)
    first = json.loads(next(chunks).decode().split("data: ", 1)[1])
    assert first["type"] == "response.created"
    next(chunks)
    result.close()  # type: ignore[attr-defined] - what a WSGI server does when the client goes away
    record = store.get(first["response"]["id"])
    assert record.status.value == "failed"
    assert record.error is not None
    assert "disconnected" in record.error["message"]
    result.close()  # type: ignore[attr-defined] - a second close changes nothing
    assert store.get(record.id) == record
    gate.gate.set()
    app.close()
    assert store.get(record.id) == record, "the model's next words changed nothing"


def test_a_running_previous_response_and_a_full_store_are_refused(serve: Callable[..., Live]) -> None:
    gate = Gate()
    store = responsestore.open("memory://", max_records=1)
    live = serve(store, generate=gate)
    running = live.client().responses.create(model="gated", input="x", background=True)
    assert gate.started.wait(TIMEOUT)
    chained = {"model": "echo", "input": "next", "previous_response_id": running.id}
    error = _error(live.request("POST", "/responses", json=chained), 400)
    assert (error["param"], error["code"]) == ("previous_response_id", "invalid_previous_response")
    unstored = _error(live.request("POST", "/responses", json={**chained, "store": False}), 400)
    assert unstored["code"] == "invalid_previous_response"
    full = _error(live.request("POST", "/responses", json={"model": "echo", "input": "y"}), 503)
    assert (full["type"], full["code"]) == ("server_error", "store_full")
    gate.gate.set()
    assert live.events("GET", f"/responses/{running.id}", params={"stream": "true"})[-1]["type"] == (
        "response.completed"
    )
    assert store.stats().records == 1


def test_a_failing_store_is_a_500_in_openais_shape(serve: Callable[..., Live], tmp_path: Any) -> None:
    store = responsestore.open(f"sqlite:///{tmp_path / 'r.db'}")
    live = serve(store)
    created = live.client().responses.create(model="echo", input="x")
    store.close()  # type: ignore[attr-defined]
    error = _error(live.request("GET", f"/responses/{created.id}"), 500)
    assert (error["type"], error["code"]) == ("server_error", "server_error")
    assert "sqlite" not in error["message"].lower()
