"""The run layer through the WSGI app, in this process: writes per response, exact replay, and every way a run ends.

Each test drives the app as a WSGI server would (an ``environ``, the body iterated, ``close()`` called), so the
run layer's threads run for real; faults that need other processes or servers are in ``test_runs_faults.py``.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

import responsestore
from responsestore import BaseStore, ResponseStatus, ResponseStore, StorageError
from responsestore.server import _runs
from responsestore.server._runs import FLUSH_FANOUT
from responsestore.wsgi import ResponsesApp, Usage, make_app
from tests.wire_checks import check_event, check_response

TIMEOUT = 30.0


class Counting(ResponseStore):
    """The memory store, counting its storage writes (the figure the run layer promises to keep small)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.writes: dict[str, int] = {}

    def _tally(self, name: str) -> None:
        self.writes[name] = self.writes.get(name, 0) + 1

    def _put_new(self, *args: Any) -> bool:
        self._tally("create")
        return super()._put_new(*args)

    def _swap(self, *args: Any) -> bool:
        self._tally("swap")
        return super()._swap(*args)

    def _append(self, *args: Any) -> bool:
        self._tally("append")
        return super()._append(*args)


class Call:
    """One request to the app, as a WSGI server makes it."""

    def __init__(self, app: ResponsesApp, method: str, path: str, body: Any = None, query: str = "") -> None:
        data = b"" if body is None else json.dumps(body).encode()
        environ: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": "/v1" + path, "QUERY_STRING": query}
        setup_testing_defaults(environ)
        environ.update({"wsgi.input": io.BytesIO(data), "CONTENT_LENGTH": str(len(data))})
        self.status: list[str] = []
        self.result = app(environ, lambda status, headers: self.status.append(status))

    def body(self) -> bytes:
        try:
            return b"".join(self.result)
        finally:
            close = getattr(self.result, "close", None)
            if close is not None:
                close()

    def json(self) -> Any:
        return json.loads(self.body())


def sse(body: bytes) -> list[dict[str, Any]]:
    """The events of a server-sent event body, each validated."""
    events = []
    for block in body.decode().split("\n\n"):
        if block:
            kind, data = block.split("\n")
            event = json.loads(data.removeprefix("data: "))
            assert kind == f"event: {event['type']}"
            check_event(event)
            events.append(event)
    return events


def words(count: int) -> str:
    return " ".join(f"w{i}" for i in range(count))


@pytest.fixture
def apps() -> Iterator[Any]:
    made: list[ResponsesApp] = []

    def make(store: BaseStore | None = None, **options: Any) -> ResponsesApp:
        app = make_app(store if store is not None else ResponseStore(), **options)
        made.append(app)
        return app

    yield make
    for app in made:
        app.close()


# --------------------------------------------------------------------------- few writes


@pytest.mark.parametrize("count", [8, 1000])
def test_a_non_streamed_create_is_two_writes_whatever_its_length(apps: Any, count: int) -> None:
    store = Counting()
    app = apps(store)
    body = Call(app, "POST", "/responses", {"model": "echo", "input": words(count)}).json()
    assert check_response(body).output_text == words(count)
    assert store.writes == {"create": 1, "swap": 1}
    events = store.events(body["id"])
    assert [e["type"] for e in events[:2]] == ["response.created", "response.in_progress"]
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"] == body, "the final event carries the response as stored"
    assert len(events) == count + 8


def test_a_streamed_create_flushes_in_batches(apps: Any) -> None:
    store = Counting()
    app = apps(store, flush_interval=60.0, flush_events=400)
    events = sse(Call(app, "POST", "/responses", {"model": "echo", "input": words(2000), "stream": True}).body())
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    # The first batch goes at once, then one per 400 events (the interval never comes), then the final write.
    assert store.writes["create"] == 1
    assert store.writes["swap"] == 1
    assert 5 <= store.writes["append"] <= 7
    assert events[-1]["type"] == "response.completed"


@pytest.mark.parametrize("stream", [False, True])
def test_an_async_model_runs_under_the_wsgi_app_on_a_loop_of_its_own(apps: Any, stream: bool) -> None:
    async def spoken(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> AsyncIterator[Any]:
        for word in ("said", " asynchronously"):
            await asyncio.sleep(0)
            yield word
        yield Usage(input_tokens=1, output_tokens=2)

    async def broken(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> AsyncIterator[str]:
        yield "half"
        raise RuntimeError("the async model broke")

    app = apps(models={"spoken": spoken, "broken": broken})
    for model, status, text in (("spoken", "completed", "said asynchronously"), ("broken", "failed", None)):
        call = Call(app, "POST", "/responses", {"model": model, "input": "x", "stream": stream})
        final = sse(call.body())[-1]["response"] if stream else call.json()
        assert check_response(final).status == status
        if text is not None:
            assert check_response(final).output_text == text


def test_past_flush_fanout_runs_each_flushes_proportionally_less_often(apps: Any) -> None:
    gate = threading.Event()

    def held(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[str]:
        yield "first"
        gate.wait(TIMEOUT)
        yield " last"

    app = apps(generate=held, background_workers=FLUSH_FANOUT + 6, flush_interval=0.05)
    runner = app.runner
    assert runner.flush_interval() == 0.05
    created = [
        Call(app, "POST", "/responses", {"model": "m", "input": "x", "background": True}).json()
        for _ in range(FLUSH_FANOUT + 6)
    ]
    try:
        assert runner.flush_interval() == pytest.approx(0.05 * (FLUSH_FANOUT + 6) / FLUSH_FANOUT)
    finally:
        gate.set()
    for body in created:
        assert app.store.wait(body["id"], timeout=TIMEOUT).status is ResponseStatus.COMPLETED
    app.close()  # waits for the runs to leave the runner
    assert runner.flush_interval() == 0.05


def test_a_background_response_logs_created_and_queued_before_it_runs(apps: Any) -> None:
    gate = threading.Event()

    def waits(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[str]:
        assert gate.wait(TIMEOUT)
        yield "done"

    store = ResponseStore()
    app = apps(store, generate=waits, background_workers=1)
    first = Call(app, "POST", "/responses", {"model": "m", "input": "a", "background": True}).json()
    second = Call(app, "POST", "/responses", {"model": "m", "input": "b", "background": True}).json()
    assert [e["type"] for e in store.events(second["id"])] == ["response.created", "response.queued"]
    gate.set()
    for body in (first, second):
        done = store.wait(body["id"], timeout=TIMEOUT)
        assert done.status is ResponseStatus.COMPLETED
        kinds = [e["type"] for e in store.events(body["id"])]
        assert kinds[:3] == ["response.created", "response.queued", "response.in_progress"]
        assert kinds[-1] == "response.completed"


# --------------------------------------------------------------------------- exact replay


def test_the_replay_of_a_stream_is_byte_for_byte_what_the_live_stream_sent(apps: Any) -> None:
    app = apps(flush_interval=0.001, flush_events=7)
    live = Call(app, "POST", "/responses", {"model": "echo", "input": words(300), "stream": True}).body()
    events = sse(live)
    replay = Call(app, "GET", f"/responses/{events[0]['response']['id']}", query="stream=true").body()
    assert replay == live
    blocks = live.split(b"\n\n")
    for after in (0, 1, 5, 150, len(events) - 2):
        tail = Call(
            app, "GET", f"/responses/{events[0]['response']['id']}", query=f"stream=true&starting_after={after}"
        )
        assert tail.body() == b"\n\n".join(blocks[after + 1 :])


def test_a_tool_call_and_text_stream_and_replay_exactly(apps: Any) -> None:
    def tools(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[Any]:
        yield "Let me look"
        yield " that up."
        yield {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": '{"q": "x"}'}
        yield "Found it."
        yield Usage(input_tokens=3, output_tokens=7)

    app = apps(generate=tools)
    live = Call(app, "POST", "/responses", {"model": "m", "input": "find x", "stream": True}).body()
    events = sse(live)
    final = check_response(events[-1]["response"])
    assert [item.type for item in final.output] == ["message", "function_call", "message"]
    replay = Call(app, "GET", f"/responses/{final.id}", query="stream=true").body()
    assert replay == live


# --------------------------------------------------------------------------- every way a run ends


def test_a_model_yielding_garbage_fails_the_response(apps: Any) -> None:
    def garbage(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[Any]:
        yield "fine so far"
        yield 42

    app = apps(generate=garbage)
    body = Call(app, "POST", "/responses", {"model": "m", "input": "x"}).json()
    assert body["status"] == "failed"
    assert body["error"]["code"] == "server_error"
    events = sse(Call(app, "POST", "/responses", {"model": "m", "input": "x", "stream": True}).body())
    assert events[-1]["type"] == "response.failed"


def test_a_model_that_is_not_a_generator_fails_the_response(apps: Any) -> None:
    def broken(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Any:
        raise ValueError("at once")

    app = apps(generate=broken)
    assert Call(app, "POST", "/responses", {"model": "m", "input": "x"}).json()["status"] == "failed"


@pytest.mark.parametrize("stream", [True, False])
def test_a_model_that_hangs_past_its_deadline_fails_and_the_stream_ends(apps: Any, stream: bool) -> None:
    never = threading.Event()

    def hangs(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[str]:
        yield "one"
        never.wait(TIMEOUT)  # a model stuck in a call that never returns (released when the test ends)
        yield "two"

    store = ResponseStore()
    app = apps(store, generate=hangs, model_timeout=0.3, flush_interval=0.01)
    started = time.monotonic()
    request = {"model": "m", "input": "x", "stream": stream}
    if stream:
        events = sse(Call(app, "POST", "/responses", request).body())
        final = events[-1]
        assert final["type"] == "response.failed"
        assert [e["delta"] for e in events if e["type"] == "response.output_text.delta"] == ["one"]
        body = final["response"]
    else:
        body = Call(app, "POST", "/responses", request).json()
    assert time.monotonic() - started < TIMEOUT / 2
    assert body["status"] == "failed"
    assert "produced nothing for 0.3 seconds" in body["error"]["message"]
    assert store.get(body["id"]).to_openai() == body
    never.set()


@pytest.mark.parametrize("limit", [{"max_events": 60}, {"max_event_bytes": 9000}])
@pytest.mark.parametrize("stream", [True, False])
def test_a_reply_past_the_log_bounds_ends_incomplete(apps: Any, limit: dict[str, int], stream: bool) -> None:
    store = ResponseStore(**limit)
    app = apps(store, flush_interval=0.001, flush_events=10)
    request = {"model": "echo", "input": words(500), "stream": stream}
    if stream:
        events = sse(Call(app, "POST", "/responses", request).body())
        assert events[-1]["type"] == "response.incomplete"
        body = events[-1]["response"]
        replay = sse(Call(app, "GET", f"/responses/{body['id']}", query="stream=true").body())
        assert replay == events
    else:
        body = Call(app, "POST", "/responses", request).json()
    parsed = check_response(body)
    assert parsed.status == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}
    logged = store.events(body["id"])
    deltas = "".join(e["delta"] for e in logged if e["type"] == "response.output_text.delta")
    assert parsed.output_text == deltas, "the output is exactly what the logged deltas say"
    assert 0 < len(deltas) < len(words(500))
    assert logged[-1]["type"] == "response.incomplete"
    assert store.get(body["id"]).status is ResponseStatus.INCOMPLETE


def test_a_slow_model_keeps_its_lease(apps: Any) -> None:
    def slow(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[str]:
        yield "thinking"
        time.sleep(1.2)  # a model slower than the lease: the run must renew it meanwhile
        yield " done"

    store = ResponseStore()
    app = apps(store, generate=slow, lease_seconds=0.4, sweep_interval=0.05)
    body = Call(app, "POST", "/responses", {"model": "m", "input": "x", "background": True}).json()
    done = store.wait(body["id"], timeout=TIMEOUT)
    assert done.status is ResponseStatus.COMPLETED, done.error
    assert done.output[0]["content"][0]["text"] == "thinking done"


def test_the_sweeper_ends_a_response_whose_runner_is_gone(apps: Any) -> None:
    store = ResponseStore()
    app = apps(store, sweep_interval=0.05)
    stranded = store.create("m", "x", background=True, status="queued", lease=0.2, holder="a-dead-process")
    ended = store.wait(stranded.id, timeout=TIMEOUT)
    assert ended.status is ResponseStatus.FAILED
    assert ended.error is not None
    assert "stopped" in ended.error["message"]
    events = sse(Call(app, "GET", f"/responses/{stranded.id}", query="stream=true").body())
    assert [e["type"] for e in events] == ["response.failed"]


class Sweeping(ResponseStore):
    """The memory store, saying when its sweeps have removed ``target`` records, and failing its first ones."""

    def __init__(
        self, failures: int = 0, error: type[Exception] = StorageError, target: int = 1, **options: Any
    ) -> None:
        super().__init__(**options)
        self.swept = threading.Event()
        self.removed = 0
        self.limits: list[int | None] = []  # the limit of each sweep that ran
        self.target = target
        self.failures = failures  # how many sweeps fail first (an unreachable store, or a bug: ``error``)
        self.error = error

    def _sweep(self, limit: int | None) -> int:
        if self.failures:
            self.failures -= 1
            raise self.error("a test's failure")
        removed = super()._sweep(limit)
        self.limits.append(limit)
        self.removed += removed
        if self.removed >= self.target:
            self.swept.set()
        return removed


def expire_finished(store: ResponseStore, now: list[float], count: int) -> list[str]:
    """``count`` finished responses, then the clock moved past their ttl (60 s)."""
    ids = []
    for _ in range(count):
        record = store.create("m", "x")
        store.complete(record.id, output=[])
        ids.append(record.id)
    now[0] += 61
    return ids


@pytest.mark.parametrize(("failures", "error"), [(0, StorageError), (2, StorageError), (2, RuntimeError)])
def test_the_sweeper_reclaims_expired_responses_while_the_server_is_idle(
    apps: Any, failures: int, error: type[Exception], caplog: pytest.LogCaptureFixture
) -> None:
    now = [1_000.0]
    store = Sweeping(failures, error, ttl=60, clock=lambda: now[0])
    apps(store, sweep_interval=0.05)
    (old,) = expire_finished(store, now, 1)  # invisible at once, stored until a sweep (no write comes to sweep it)
    assert old not in store
    assert store.swept.wait(TIMEOUT), "the app's sweeper did not sweep the expired response"
    assert store.sweep() == 0
    assert store.stats().expired == 1
    store._check()
    failed = [r for r in caplog.records if r.getMessage().startswith("sweeping expired responses failed")]
    assert len(failed) == failures, "each failed sweep is logged, and the sweeper goes on"
    assert all(r.name == "responsestore.runs" and r.exc_info for r in failed)
    assert all(r.levelname == ("WARNING" if error is StorageError else "ERROR") for r in failed)


def test_a_sweep_that_keeps_failing_does_not_stop_leases_from_ending(apps: Any) -> None:
    store = Sweeping(failures=1_000_000, error=RuntimeError)
    apps(store, sweep_interval=0.05)
    stranded = store.create("m", "x", background=True, status="queued", lease=0.2, holder="a-dead-process")
    assert store.wait(stranded.id, timeout=TIMEOUT).status is ResponseStatus.FAILED


def test_a_backlog_is_swept_in_bounded_writes(apps: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_runs, "SWEEP_CHUNK", 5)
    now = [1_000.0]
    store = Sweeping(target=12, ttl=60, clock=lambda: now[0])
    expire_finished(store, now, 12)
    apps(store, sweep_interval=0.05)
    assert store.swept.wait(TIMEOUT)
    assert store.limits[:3] == [5, 5, 5], "three writes of at most 5, one round"
    assert store.stats().records == 0
    store._check()


def test_cancelling_a_running_background_response_ends_its_followers(apps: Any) -> None:
    gate = threading.Event()

    def gated(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[str]:
        yield "first"
        assert gate.wait(TIMEOUT)
        yield " second"

    store = ResponseStore()
    app = apps(store, generate=gated, flush_interval=0.001)
    body = Call(app, "POST", "/responses", {"model": "m", "input": "x", "background": True}).json()
    follower = Call(app, "GET", f"/responses/{body['id']}", query="stream=true")
    chunks = iter(follower.result)
    seen = [json.loads(next(chunks).decode().split("data: ", 1)[1])["type"] for _ in range(3)]
    assert seen == ["response.created", "response.queued", "response.in_progress"]
    assert Call(app, "POST", f"/responses/{body['id']}/cancel").json()["status"] == "cancelled"
    rest = b"".join(chunks)
    gate.set()
    assert b"response.completed" not in rest
    assert store.wait(body["id"], timeout=TIMEOUT).status is ResponseStatus.CANCELLED


def test_deleting_a_running_response_ends_its_live_stream_with_an_error(apps: Any) -> None:
    gate = threading.Event()

    def gated(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[str]:
        yield "first"
        assert gate.wait(TIMEOUT)
        yield " second"

    store = ResponseStore()
    app = apps(store, generate=gated, flush_interval=0.001)
    call = Call(app, "POST", "/responses", {"model": "m", "input": "x", "stream": True})
    chunks = iter(call.result)
    created = json.loads(next(chunks).decode().split("data: ", 1)[1])
    store.delete(created["response"]["id"])
    gate.set()
    rest = [json.loads(chunk.decode().split("data: ", 1)[1]) for chunk in chunks]
    assert rest[-1]["type"] == "error"
    with pytest.raises(responsestore.ResponseNotFound):
        store.get(created["response"]["id"])


def test_closing_the_app_ends_a_model_that_never_returns(apps: Any) -> None:
    never, running = threading.Event(), threading.Event()

    def stuck(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[str]:
        yield "one"
        running.set()
        never.wait(TIMEOUT)
        yield "two"

    store = ResponseStore()
    app = make_app(store, generate=stuck, stop_grace=0.2, model_timeout=None)
    body = Call(app, "POST", "/responses", {"model": "m", "input": "x", "background": True}).json()
    assert running.wait(TIMEOUT)
    started = time.monotonic()
    app.close()
    assert time.monotonic() - started < TIMEOUT / 2
    ended = store.get(body["id"])
    assert ended.status is ResponseStatus.FAILED
    assert ended.error is not None
    assert "stopped" in ended.error["message"]
    assert store.events(body["id"])[-1]["type"] == "response.failed"
    never.set()


def test_a_follower_s_stream_always_ends_with_an_event(apps: Any) -> None:
    never = threading.Event()

    def stuck(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[str]:
        yield "one"
        never.wait(TIMEOUT)
        yield "two"

    store = ResponseStore()
    app = apps(store, generate=stuck, flush_interval=0.001, stream_timeout=0.3, model_timeout=None)
    body = Call(app, "POST", "/responses", {"model": "m", "input": "x", "background": True}).json()
    # No progress for stream_timeout: the follower's stream ends, with an error event that says so.
    stalled = sse(Call(app, "GET", f"/responses/{body['id']}", query="stream=true").body())
    assert stalled[-1]["type"] == "error"
    assert "no progress" in stalled[-1]["message"]
    assert [e["sequence_number"] for e in stalled] == list(range(len(stalled)))
    # Deleted while followed: the stream ends with an error event too.
    follower = Call(app, "GET", f"/responses/{body['id']}", query="stream=true&starting_after=1")
    chunks = iter(follower.result)
    first = json.loads(next(chunks).decode().split("data: ", 1)[1])
    store.delete(body["id"])
    rest = [json.loads(chunk.decode().split("data: ", 1)[1]) for chunk in chunks]
    assert rest[-1]["type"] == "error"
    assert "deleted" in rest[-1]["message"]
    assert rest[-1]["sequence_number"] == first["sequence_number"] + len(rest)
    never.set()
