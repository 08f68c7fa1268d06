"""Generation details of the run layer: function calls, ``max_output_tokens``, a model ending itself incomplete.

The official ``openai`` client talks to the app over real HTTP (``tests/test_wsgi.py``'s server), and the app is
called in-process as a WSGI server would (``tests/test_runs.py``'s ``Call``); every body and event is validated with
the SDK's models and the Open Responses schemas (``tests/wire_checks.py``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import openai
import pytest

import responsestore
from responsestore import ResponseStatus, ResponseStore
from responsestore.server._reply import Reply
from responsestore.wsgi import ArgumentsDelta, FunctionCall, Incomplete, ResponsesApp, Usage, make_app
from tests.live_app import error_of
from tests.test_runs import Call, sse
from tests.test_wsgi import Live, _owners
from tests.wire_checks import check_event, check_item_page, check_response

TIMEOUT = 30.0

TOOLS = [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}]

#: The events that belong to one output item, and so carry its ``output_index`` (and, but for two, its ``item_id``).
_ITEM_EVENTS = frozenset(
    {
        "response.output_item.added",
        "response.output_item.done",
        "response.content_part.added",
        "response.content_part.done",
        "response.output_text.delta",
        "response.output_text.done",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
    }
)


@pytest.fixture
def serve(serve_on_both: Callable[..., Live]) -> Callable[..., Live]:
    """Both transports, with keys mapped to owners unless a test says otherwise."""
    return functools.partial(serve_on_both, authenticate=_owners)


@pytest.fixture
def apps() -> Iterator[Callable[..., ResponsesApp]]:
    made: list[ResponsesApp] = []

    def make(store: responsestore.BaseStore | None = None, **options: Any) -> ResponsesApp:
        app = make_app(store if store is not None else ResponseStore(), **options)
        made.append(app)
        return app

    yield make
    for app in made:
        app.close()


def check_structure(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Check what the schemas cannot: numbering, and that every item event names the item at its index.

    Returns the final response of the stream.
    """
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    final = events[-1]["response"]
    output = final["output"]
    opened: list[str] = []
    for event in events:
        if event["type"] not in _ITEM_EVENTS:
            continue
        index = event["output_index"]
        item_id = event["item"]["id"] if "item" in event else event["item_id"]
        if event["type"] == "response.output_item.added":
            assert index == len(opened), "items are added in order, each once"
            opened.append(item_id)
        assert opened[index] == item_id
        if index < len(output):
            assert output[index]["id"] == item_id
        if event["type"] == "response.output_item.done":
            assert event["item"] == output[index], "the done item is the item in the final response"
    assert len(opened) == len(output)
    return dict(final)


def streamed_call(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[Any]:
    """Text, then a function call whose arguments stream in three deltas."""
    yield "Let me"
    yield " check."
    yield FunctionCall("get_weather")
    yield ArgumentsDelta('{"city": ')
    yield ArgumentsDelta('"Par')
    yield ArgumentsDelta('is"}')
    yield Usage(input_tokens=4, output_tokens=5)


# --------------------------------------------------------------------------- function calls


def test_a_function_call_streams_its_arguments_to_the_openai_client(serve: Callable[..., Live]) -> None:
    live = serve(generate=streamed_call)
    client = live.client()
    with client.responses.stream(model="m", input="Weather in Paris?", tools=TOOLS) as stream:  # type: ignore[arg-type]
        typed = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in typed]
    call_events = kinds[kinds.index("response.output_item.done") + 1 :]
    assert call_events == [
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    call = final.output[1]
    assert call.type == "function_call"
    assert call.id is not None
    assert call.id.startswith("fc_")
    assert call.call_id.startswith("call_")
    assert (call.name, call.arguments, call.status) == ("get_weather", '{"city": "Paris"}', "completed")
    deltas = [event for event in typed if event.type == "response.function_call_arguments.delta"]
    assert [event.item_id for event in deltas] == [call.id] * 3
    assert [event.output_index for event in deltas] == [1, 1, 1]
    assert [event.sequence_number for event in typed] == list(range(len(typed)))

    # The same stream, raw: every event validates with both models, names its item, and replays exactly.
    events = live.events("GET", f"/responses/{final.id}", params={"stream": "true"})
    assert check_structure(events) == live.json("GET", f"/responses/{final.id}")
    added = events[kinds.index("response.output_item.added", 3)]
    assert added["item"] == {
        "type": "function_call",
        "id": call.id,
        "call_id": call.call_id,
        "name": "get_weather",
        "arguments": "",
        "status": "in_progress",
    }
    done = next(event for event in events if event["type"] == "response.function_call_arguments.done")
    assert done == {
        "type": "response.function_call_arguments.done",
        "item_id": call.id,
        "output_index": 1,
        "arguments": '{"city": "Paris"}',
        "sequence_number": done["sequence_number"],
    }


@pytest.mark.parametrize("mode", ["stream", "background", "plain", "unstored"])
def test_a_function_call_has_the_same_events_however_the_response_runs(apps: Any, mode: str) -> None:
    store = ResponseStore()
    app = apps(store, generate=streamed_call, flush_interval=0.001, flush_events=2)
    request: dict[str, Any] = {"model": "m", "input": "x", "tools": TOOLS}
    if mode == "stream":
        events = sse(Call(app, "POST", "/responses", {**request, "stream": True}).body())
    elif mode == "unstored":
        events = sse(Call(app, "POST", "/responses", {**request, "stream": True, "store": False}).body())
    else:
        body = Call(app, "POST", "/responses", {**request, "background": mode == "background"}).json()
        store.wait(body["id"], timeout=TIMEOUT)
        events = sse(Call(app, "GET", f"/responses/{body['id']}", query="stream=true").body())
    final = check_structure(events)
    kinds = [event["type"] for event in events if event["type"].startswith("response.function_call")]
    assert kinds == ["response.function_call_arguments.delta"] * 3 + ["response.function_call_arguments.done"]
    assert final["status"] == "completed"
    assert final["output"][1]["arguments"] == '{"city": "Paris"}'
    if mode != "unstored":
        assert store.get(final["id"]).to_openai() == final


def test_a_function_call_output_answers_it_in_the_next_turn(serve: Callable[..., Live]) -> None:
    def weather(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[Any]:
        last = conversation[-1]
        if last.get("type") == "function_call_output":
            calls = [item for item in conversation if item.get("type") == "function_call"]
            assert calls[-1]["call_id"] == last["call_id"]
            yield f"It is {last['output']}."
            return
        yield FunctionCall("get_weather", '{"city": "Paris"}', call_id="call_mine")

    live = serve(generate=weather)
    client = live.client()
    asked = client.responses.create(model="m", input="Weather?", tools=TOOLS)  # type: ignore[arg-type]
    call = asked.output[0]
    assert call.type == "function_call"
    assert call.call_id == "call_mine"
    told = client.responses.create(
        model="m",
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        previous_response_id=asked.id,
        tools=TOOLS,  # type: ignore[arg-type]
    )
    assert told.output_text == "It is sunny."
    check_response(live.json("GET", f"/responses/{told.id}"))
    before = len(live.app.store)
    stale = {"type": "function_call_output", "call_id": "call_never_made", "output": "x"}
    body = {"model": "m", "input": [stale], "previous_response_id": asked.id}
    error = error_of(live.request("POST", "/responses", json=body), 400)
    assert error["param"] == "input"
    assert "call_never_made" in error["message"]
    assert len(live.app.store) == before  # refused before anything is stored
    answered_in_input = [{"type": "function_call", "call_id": "call_x", "name": "f", "arguments": "{}"}, stale]
    answered_in_input[1] = {**stale, "call_id": "call_x"}
    body = {"model": "m", "input": answered_in_input, "previous_response_id": asked.id}
    assert live.request("POST", "/responses", json=body).status_code == 200  # the call is in the input itself


def test_function_call_mappings_get_ids_and_stream_their_arguments_whole(apps: Any) -> None:
    def mappings(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[Any]:
        yield {"type": "function_call", "name": "a", "arguments": '{"x": 1}'}
        yield {"type": "function_call", "name": "b", "arguments": "", "call_id": "call_b", "id": "fc_b"}
        yield {"type": "reasoning", "summary": []}

    app = apps(generate=mappings)
    events = sse(Call(app, "POST", "/responses", {"model": "m", "input": "x", "stream": True}).body())
    final = check_structure(events)
    first, second, reasoning = final["output"]
    assert first["id"].startswith("fc_")
    assert first["call_id"].startswith("call_")
    assert (second["id"], second["call_id"], second["arguments"]) == ("fc_b", "call_b", "")
    assert reasoning["id"].startswith("rs_")
    deltas = [(e["item_id"], e["delta"]) for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert deltas == [(first["id"], '{"x": 1}')], "empty arguments stream no delta"
    dones = [(e["item_id"], e["arguments"]) for e in events if e["type"] == "response.function_call_arguments.done"]
    assert dones == [(first["id"], '{"x": 1}'), ("fc_b", "")]


@pytest.mark.parametrize(
    "chunks",
    [
        ["text", ArgumentsDelta("{}")],  # an ArgumentsDelta that follows no function call
        [ArgumentsDelta("{}")],
        [{"type": "function_call", "arguments": "{}"}],  # no name
        [{"type": "function_call", "name": "f", "arguments": {"not": "a string"}}],
        [{"type": "function_call", "name": "f", "call_id": 7}],
        [{"type": "message", "id": "not an id!", "role": "assistant", "content": []}],
        [FunctionCall("f"), lambda: Incomplete("not a reason")],  # raised in the model, which builds it
    ],
    ids=lambda chunks: re.sub(r" at 0x[0-9a-f]+", "", repr(chunks)),  # the same ids in every process (xdist)
)
def test_what_a_model_may_not_yield_fails_the_response(apps: Any, chunks: list[Any]) -> None:
    def model(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[Any]:
        for chunk in chunks:
            yield chunk() if callable(chunk) else chunk

    app = apps(generate=model)
    events = sse(Call(app, "POST", "/responses", {"model": "m", "input": "x", "stream": True}).body())
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["code"] == "server_error"


def test_function_call_and_incomplete_refuse_bad_fields() -> None:
    for make in (
        lambda: FunctionCall(""),
        lambda: FunctionCall(3),  # type: ignore[arg-type]
        lambda: FunctionCall("f", None),  # type: ignore[arg-type]
        lambda: FunctionCall("f", call_id=""),
        lambda: ArgumentsDelta(b"{}"),  # type: ignore[arg-type]
        lambda: Incomplete("stopped"),
    ):
        with pytest.raises((TypeError, ValueError)):
            make()


# --------------------------------------------------------------------------- max_output_tokens


@pytest.mark.parametrize("mode", ["stream", "background", "plain", "unstored"])
def test_max_output_tokens_ends_the_response_incomplete(apps: Any, mode: str) -> None:
    store = ResponseStore()
    app = apps(store, flush_interval=0.001, flush_events=2)
    words = [f"w{n}" for n in range(20)]
    request: dict[str, Any] = {"model": "echo", "input": " ".join(words), "max_output_tokens": 16}
    if mode in ("stream", "unstored"):
        request.update(stream=True, store=mode == "stream")
        events = sse(Call(app, "POST", "/responses", request).body())
        if mode == "stream":
            replay = sse(Call(app, "GET", f"/responses/{events[0]['response']['id']}", query="stream=true").body())
            assert replay == events
    else:
        body = Call(app, "POST", "/responses", {**request, "background": mode == "background"}).json()
        store.wait(body["id"], timeout=TIMEOUT)
        events = sse(Call(app, "GET", f"/responses/{body['id']}", query="stream=true").body())
    assert events[-1]["type"] == "response.incomplete"
    final = check_structure(events)
    parsed = check_response(final)
    assert parsed.status == "incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["max_output_tokens"] == 16
    assert parsed.output_text == " ".join(words[:16])
    assert final["output"][0]["status"] == "incomplete"
    assert final["usage"] is None, "echo counts its usage at its end, which the run cut off"
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert deltas == [words[0]] + [f" {word}" for word in words[1:16]]
    if mode != "unstored":
        stored = store.get(final["id"])
        assert stored.status is ResponseStatus.INCOMPLETE
        assert stored.to_openai() == final


@pytest.mark.parametrize(
    ("limit", "status"), [(20, "completed"), (21, "completed"), (19, "incomplete"), (16, "incomplete")]
)
def test_a_reply_within_max_output_tokens_completes(serve: Callable[..., Live], limit: int, status: str) -> None:
    """``max_output_tokens`` is at least 16 (OpenAI's minimum): echo answers 20 words, one token each."""
    client = serve().client()
    words = [f"w{n}" for n in range(20)]
    response = client.responses.create(model="echo", input=" ".join(words), max_output_tokens=limit)
    assert response.status == status
    assert response.output_text == " ".join(words[:limit])
    if status == "incomplete":
        assert response.incomplete_details is not None
        assert response.incomplete_details.reason == "max_output_tokens"
        assert len(response.output) == 1
    else:
        assert response.usage is not None
        assert response.usage.output_tokens == 20


def test_max_output_tokens_cuts_a_function_call_s_arguments(apps: Any) -> None:
    def padded_call(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[Any]:
        yield from ["."] * 12  # 12 tokens, then streamed_call's 2 of text and 3 of arguments: 17 in all
        yield from streamed_call(conversation, request)

    app = apps(generate=padded_call)
    request = {"model": "m", "input": "x", "tools": TOOLS, "stream": True, "max_output_tokens": 16}
    events = sse(Call(app, "POST", "/responses", request).body())
    final = check_structure(events)
    assert final["status"] == "incomplete"
    message, call = final["output"]
    assert message["status"] == "completed"
    assert (call["arguments"], call["status"]) == ('{"city": "Par', "incomplete")
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [e["arguments"] for e in done] == ['{"city": "Par']
    assert final["usage"] is None


def test_max_output_tokens_counts_one_token_per_delta_whatever_its_length(apps: Any) -> None:
    def chunky(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[Any]:
        yield Usage(input_tokens=1, output_tokens=99)  # the model's own count: usage, not the run's limit
        yield "a long sentence in one delta"
        yield from [" and more"] * 15
        yield {"type": "reasoning", "summary": []}  # streams no delta: counts none
        yield FunctionCall("f")  # no arguments yet: none either
        yield ArgumentsDelta("{}")

    app = apps(generate=chunky)
    for limit, status in ((17, "completed"), (16, "incomplete")):
        body = Call(app, "POST", "/responses", {"model": "m", "input": "x", "max_output_tokens": limit}).json()
        check_response(body)
        assert body["status"] == status
        assert body["usage"]["output_tokens"] == 99
        assert len(body["output"]) == 3
        assert body["output"][2]["arguments"] == ("{}" if status == "completed" else "")


# --------------------------------------------------------------------------- a model ending itself incomplete


def test_a_model_ends_its_response_incomplete_with_a_reason(serve: Callable[..., Live]) -> None:
    def filtered(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[Any]:
        yield "I can tell you"
        yield Usage(input_tokens=2, output_tokens=4)
        yield Incomplete("content_filter")
        raise AssertionError("the run takes nothing after Incomplete")

    live = serve(generate=filtered)
    client = live.client()
    response = client.responses.create(model="m", input="x")
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "content_filter"
    assert response.output_text == "I can tell you"
    assert response.output[0].status == "incomplete"  # type: ignore[union-attr]
    assert response.usage is not None
    assert response.usage.output_tokens == 4
    with client.responses.stream(model="m", input="x") as stream:
        kinds = [event.type for event in stream]
    assert kinds[-1] == "response.incomplete"
    events = live.events("POST", "/responses", json={"model": "m", "input": "x", "stream": True})
    final = check_structure(events)
    assert events[-1]["type"] == "response.incomplete"
    assert final["incomplete_details"] == {"reason": "content_filter"}
    assert live.events("GET", f"/responses/{final['id']}", params={"stream": "true"}) == events


def test_a_model_incomplete_before_any_output_ends_with_none(apps: Any) -> None:
    def refuses(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[Any]:
        yield Incomplete("max_output_tokens")

    app = apps(generate=refuses)
    events = sse(Call(app, "POST", "/responses", {"model": "m", "input": "x", "stream": True}).body())
    assert [event["type"] for event in events] == ["response.created", "response.in_progress", "response.incomplete"]
    assert events[-1]["response"]["output"] == []
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_the_openai_client_reads_an_incomplete_stream(serve: Callable[..., Live]) -> None:
    client = serve().client()
    words = [f"w{n}" for n in range(20)]
    with client.responses.stream(model="echo", input=" ".join(words), max_output_tokens=16) as stream:
        events = list(stream)
    # The SDK's get_final_response() wants a response.completed; the last event carries the response.
    assert events[-1].type == "response.incomplete"
    final = events[-1].response
    assert final.status == "incomplete"
    assert final.output_text == " ".join(words[:16])
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_missing")


# --------------------------------------------------------------------------- Reply itself


def test_a_rollback_across_a_closed_item_restores_the_open_one() -> None:
    reply = Reply()
    reply.add("first")
    reply.take()
    reply.add(" second")
    reply.add(FunctionCall("f", "{}"))  # closes the message, opens a call
    reply.rollback()
    assert reply.output == []
    reply.close("incomplete")
    batch, _, _ = reply.take()
    events = Reply.expand(batch, 5)
    assert [event["type"] for event in events] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ]
    for event in events:
        check_event(event)
    assert reply.output[0]["content"][0]["text"] == "first"
    assert reply.output[0]["status"] == "incomplete"


# --------------------------------------------------------------------------- item_reference input items


def said(text: str, item_id: str) -> Any:
    """A user message with its own id (the SDK's input types have no id for it, the API takes one)."""
    return {"role": "user", "content": text, "id": item_id}


def _seen_by_the_model(seen: list[list[dict[str, Any]]]) -> Callable[..., Iterator[str]]:
    def model(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[str]:
        seen.append([dict(item) for item in conversation])
        yield "ok"

    return model


def test_item_references_resolve_to_the_owners_stored_items(
    make_store: Callable[..., responsestore.BaseStore], serve: Callable[..., Live]
) -> None:
    seen: list[list[dict[str, Any]]] = []
    store = make_store()
    live = serve(store, generate=_seen_by_the_model(seen))
    client = live.client()
    first = client.responses.create(model="m", input=[said("remember this", "msg_asked")])
    answer = first.output[0]
    assert answer.id is not None
    references = [
        {"type": "item_reference", "id": answer.id},  # an output item of another (unchained) response
        {"type": "item_reference", "id": "msg_asked"},  # an input item
        {"id": "msg_asked_again", "type": None},  # the spec's type may be null...
    ]
    client.responses.create(model="m", input=[said("x", "msg_asked_again")])
    references.append({"type": "message", "role": "user", "content": "and now?"})
    second = client.responses.create(model="m", input=references)  # type: ignore[arg-type]
    listed = check_item_page(live.json("GET", f"/responses/{second.id}/input_items", params={"order": "asc"}))
    assert [item.id for item in listed.data][:3] == [answer.id, "msg_asked", "msg_asked_again"]
    stored = store.get(second.id, owner="alice")
    assert stored.input[0] == store.get(first.id, owner="alice").output[0]
    assert stored.input[1] == store.get(first.id, owner="alice").input[0]
    assert [item["id"] for item in seen[-1][:3]] == [answer.id, "msg_asked", "msg_asked_again"]
    assert seen[-1][0]["content"][0]["text"] == "ok"
    assert all(item.get("type") != "item_reference" for item in seen[-1])
    check_response(live.json("GET", f"/responses/{second.id}"))


def test_an_item_of_the_continued_chain_is_found_there(serve: Callable[..., Live]) -> None:
    seen: list[list[dict[str, Any]]] = []
    store = ResponseStore()
    live = serve(store, generate=_seen_by_the_model(seen))
    client = live.client()
    first = client.responses.create(model="m", input="one")
    call_id = first.output[0].id
    assert call_id is not None
    later = client.responses.create(
        model="m",
        input=[{"type": "item_reference", "id": call_id}],
        previous_response_id=first.id,
    )
    assert store.get(later.id, owner="alice").input[0] == store.get(first.id, owner="alice").output[0]
    assert seen[-1][-1]["id"] == call_id


@pytest.mark.parametrize(
    ("item", "named"),
    [
        ({"type": "item_reference", "id": "msg_unknown"}, "msg_unknown"),
        ({"id": "msg_unknown"}, "msg_unknown"),
        ({"type": "item_reference", "id": "msg_of_bob"}, "msg_of_bob"),  # another owner's: exactly as unknown
        ({"type": "item_reference", "id": 7}, "input[1]"),
        ({"type": "item_reference", "id": "bad id!"}, "bad id!"),
        ({"type": "item_reference", "id": "msg_mine", "content": "x"}, "content"),
        ({"type": "item_reference"}, "input[1]"),
    ],
)
def test_a_bad_item_reference_is_a_400_naming_it(serve: Callable[..., Live], item: dict[str, Any], named: str) -> None:
    store = ResponseStore()
    live = serve(store)
    live.client("key-b").responses.create(model="echo", input=[said("b", "msg_of_bob")])
    live.client().responses.create(model="echo", input=[said("a", "msg_mine")])
    before = len(store)
    reply = live.request(
        "POST", "/responses", json={"model": "echo", "input": [{"role": "user", "content": "x"}, item]}
    )
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert (error["param"], error["type"], error["code"]) == ("input", "invalid_request_error", "invalid_value")
    assert named in error["message"]
    assert "input[1]" in error["message"]
    assert len(store) == before, "nothing is stored"
    if named == "msg_of_bob":  # the refusal says nothing a missing item's would not
        unknown = live.request(
            "POST", "/responses", json={"model": "echo", "input": [{"role": "user", "content": "x"}, {"id": "msg_zz"}]}
        )
        assert unknown.json()["error"]["message"].replace("msg_zz", "<id>") == error["message"].replace(
            "msg_of_bob", "<id>"
        )
    with pytest.raises(openai.BadRequestError):
        live.client().responses.create(model="echo", input=[item])  # type: ignore[list-item]


def test_an_item_referred_to_twice_is_refused_as_a_repeated_id(serve: Callable[..., Live]) -> None:
    live = serve()
    live.client().responses.create(model="echo", input=[said("a", "msg_once")])
    twice = [{"type": "item_reference", "id": "msg_once"}, {"type": "item_reference", "id": "msg_once"}]
    error = live.request("POST", "/responses", json={"model": "echo", "input": twice}).json()["error"]
    assert error["param"] == "input"
    assert "msg_once" in error["message"]


def test_references_outside_the_chain_are_bounded(serve: Callable[..., Live], monkeypatch: pytest.MonkeyPatch) -> None:
    from responsestore.server import _references  # noqa: PLC0415

    monkeypatch.setattr(_references, "MAX_LOOKUPS", 2)
    live = serve()
    items = [{"role": "user", "content": f"m{n}", "id": f"msg_{n}"} for n in range(3)]
    live.client().responses.create(model="echo", input=items)  # type: ignore[arg-type]
    two = [{"type": "item_reference", "id": f"msg_{n}"} for n in range(2)]
    assert live.json("POST", "/responses", json={"model": "echo", "input": two})["status"] == "completed"
    three = [{"type": "item_reference", "id": f"msg_{n}"} for n in range(3)]
    error = live.request("POST", "/responses", json={"model": "echo", "input": three}).json()["error"]
    assert error["param"] == "input"
    assert "at most 2" in error["message"]
