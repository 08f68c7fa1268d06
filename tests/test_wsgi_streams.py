"""The bound on open streams (``make_app(max_streams=...)``) over real loopback sockets.

Every stream, live or replayed, takes a slot until its body is closed; beyond ``max_streams`` a stream is refused
with ``503`` ``too_many_streams`` and ``Retry-After`` before anything is stored, while other requests still answer.
``test_wsgi_serve_limits.py`` does the same through ``python -m responsestore serve`` (waitress).
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest

import responsestore
from responsestore.wsgi import DEFAULT_MAX_STREAMS, echo, make_app
from tests.live_app import TIMEOUT, Live
from tests.live_app import error_of as _error
from tests.wire_checks import check_response


class Gate:
    """A model that yields one word, then waits for :attr:`gate` before yielding the rest."""

    def __init__(self) -> None:
        self.started = threading.Semaphore(0)
        self.gate = threading.Event()

    def __call__(self, conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[str]:
        yield "first"
        self.started.release()
        assert self.gate.wait(TIMEOUT)
        yield " second"


def _ticking(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[str]:
    """A model that yields a word every 20 ms for up to a minute (a long reply a client may leave)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.02)  # the model's own pace
        yield " word"


@pytest.fixture
def serve() -> Iterator[Callable[..., Live]]:
    started: list[Live] = []

    def start(store: responsestore.BaseStore | None = None, **kwargs: Any) -> Live:
        live = Live(make_app(store if store is not None else responsestore.open("memory://"), **kwargs))
        started.append(live)
        return live

    yield start
    for live in started:
        live.stop()


def _wait_for(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)  # polling a counter another thread changes
    return True


def test_streams_beyond_max_streams_get_503_with_retry_after_and_others_still_answer(
    serve: Callable[..., Live],
) -> None:
    gate = Gate()
    live = serve(models={"gated": gate, "echo": echo}, max_streams=2)
    client = live.client()
    done = client.responses.create(model="echo", input="already done")
    background = client.responses.create(model="gated", input="in the back", background=True)
    assert gate.started.acquire(timeout=TIMEOUT)
    # The two slots: a live stream held by the gated model, and a replay following the background response.
    held = [
        live._send("POST", "/responses", json={"model": "gated", "input": "x", "stream": True}),
        live._send("GET", f"/responses/{background.id}", params={"stream": "true"}),
    ]
    try:
        assert [reply.status for reply in held] == [200, 200]
        assert gate.started.acquire(timeout=TIMEOUT)
        assert live.app.streams.open == 2
        # Everything but a stream still answers.
        assert check_response(live.json("GET", f"/responses/{done.id}")).output_text == "already done"
        assert client.responses.create(model="echo", input="still served").output_text == "still served"
        assert live.json("GET", f"/responses/{done.id}/input_items")["data"]
        stored = len(live.app.store)
        # A third stream, live or replayed, is refused at once, in OpenAI's shape, and stores nothing.
        for method, path, kwargs in (
            ("POST", "/responses", {"json": {"model": "echo", "input": "x", "stream": True}}),
            ("POST", "/responses", {"json": {"model": "echo", "input": "x", "stream": True, "background": True}}),
            ("GET", f"/responses/{done.id}", {"params": {"stream": "true"}}),
        ):
            reply = live.request(method, path, **kwargs)
            error = _error(reply, 503)
            assert (error["type"], error["code"], error["param"]) == ("server_error", "too_many_streams", None)
            assert "at most 2" in error["message"]
            assert reply.headers["retry-after"] == "5"
            assert reply.headers["x-request-id"].startswith("req_")
        assert len(live.app.store) == stored
        assert live.app.streams.open == 2
    finally:
        gate.gate.set()
        kinds = []
        for stream in held:
            with stream:
                kinds.append(stream.read().decode().rstrip().rsplit("event: ", 1)[1].split("\n")[0])
    assert kinds == ["response.completed", "response.completed"]
    assert _wait_for(lambda: live.app.streams.open == 0)
    events = live.events("POST", "/responses", json={"model": "echo", "input": "free again", "stream": True})
    assert events[-1]["type"] == "response.completed"
    assert _wait_for(lambda: live.app.streams.open == 0)


def test_a_client_leaving_a_stream_gives_its_slot_back(serve: Callable[..., Live]) -> None:
    live = serve(generate=_ticking, max_streams=1)
    reply = live._send("POST", "/responses", json={"model": "m", "input": "x", "stream": True})
    assert reply.status == 200
    first = reply.readline()
    assert first.startswith(b"event: response.created")
    assert live.app.streams.open == 1
    assert _error(live.request("POST", "/responses", json={"model": "m", "input": "x", "stream": True}), 503)
    reply.close()  # the client leaves; the server notices at one of the next events it sends
    assert _wait_for(lambda: live.app.streams.open == 0)
    listed = live.app.store.list(limit=1).data
    assert listed[0].status.value == "failed"
    assert listed[0].error is not None
    assert "disconnected" in listed[0].error["message"]


def test_a_stream_refused_before_it_starts_holds_no_slot(serve: Callable[..., Live]) -> None:
    gate = Gate()
    live = serve(responsestore.open("memory://", max_records=1), models={"gated": gate}, max_streams=1)
    missing = live.request("GET", "/responses/resp_missing", params={"stream": "true"})
    assert _error(missing, 404)["code"] == "not_found"
    chained = {"model": "gated", "input": "x", "stream": True, "previous_response_id": "resp_missing"}
    assert _error(live.request("POST", "/responses", json=chained), 400)["code"] == "previous_response_not_found"
    assert live.app.streams.open == 0
    # The store refuses the response after the stream took its slot: the slot is given back.
    live.client().responses.create(model="gated", input="x", background=True)
    assert gate.started.acquire(timeout=TIMEOUT)
    full = live.request("POST", "/responses", json={"model": "gated", "input": "y", "stream": True})
    assert _error(full, 503)["code"] == "store_full"
    assert live.app.streams.open == 0
    gate.gate.set()
    live.app.close()
    stopping = live.request("POST", "/responses", json={"model": "gated", "input": "x", "stream": True})
    assert _error(stopping, 503)["code"] == "stopping"
    assert live.app.streams.open == 0


def test_max_streams_none_is_unbounded_and_bad_values_are_refused() -> None:
    assert DEFAULT_MAX_STREAMS == 12
    store = responsestore.open("memory://")
    app = make_app(store, max_streams=None)
    assert app.streams.limit is None
    slots = [app.streams.acquire() for _ in range(100)]
    assert app.streams.open == 100
    for slot in slots:
        slot.release()
        slot.release()  # a second release gives nothing back twice
    assert app.streams.open == 0
    app.close()
    assert make_app(store).streams.limit == DEFAULT_MAX_STREAMS
    for bad in (0, -1, True, 1.5, "3"):
        with pytest.raises(responsestore.InvalidArgument, match="max_streams"):
            make_app(store, max_streams=bad)  # type: ignore[arg-type]


def test_a_stream_read_to_its_end_frees_its_slot_before_the_body_is_closed() -> None:
    app = make_app(responsestore.open("memory://"), max_streams=1)
    started: list[str] = []
    try:
        for _ in range(3):  # one slot: each stream must give it back once its last event is out
            environ = {
                "REQUEST_METHOD": "POST",
                "PATH_INFO": "/v1/responses",
                "CONTENT_LENGTH": "46",
                "wsgi.input": io.BytesIO(b'{"model": "m", "input": "x y", "stream": true}'),
            }
            started.clear()
            body = app(environ, lambda status, headers: started.append(status))
            text = b"".join(body)  # read to the end, not closed (yet): a server may close it later
            assert started == ["200 OK"]
            assert b"event: response.completed" in text
            assert app.streams.open == 0
    finally:
        app.close()
