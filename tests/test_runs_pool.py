"""The threads that run responses (``WorkerPool``): bounded, in order, cancellable, never keeping a process alive."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from responsestore.server._pool import WorkerPool

TIMEOUT = 30.0


def test_at_most_workers_calls_run_at_once_in_the_order_submitted() -> None:
    pool = WorkerPool(3, "test-pool")
    lock = threading.Lock()
    running: list[int] = []
    most = 0
    order: list[int] = []
    done = threading.Semaphore(0)

    def call(number: int) -> None:
        nonlocal most
        with lock:
            running.append(number)
            most = max(most, len(running))
            order.append(number)
        time.sleep(0.005)  # a call that takes a while, so calls overlap
        with lock:
            running.remove(number)

    for number in range(30):
        pool.submit(lambda number=number: call(number), done.release)  # type: ignore[misc]
    for _ in range(30):
        assert done.acquire(timeout=TIMEOUT)
    assert most == 3
    assert sorted(order) == list(range(30))
    assert order[:3] == sorted(order[:3])  # taken in order (the first three start in any order)
    assert [thread.daemon for thread in threading.enumerate() if thread.name.startswith("test-pool-")] == [True] * 3
    pool.shutdown()


def test_a_queued_call_can_be_taken_back_and_shutdown_drains_the_queue() -> None:
    pool = WorkerPool(1, "test-cancel")
    gate = threading.Event()
    ran: list[str] = []
    ended = threading.Event()

    def first() -> None:
        gate.wait(TIMEOUT)
        ran.append("first")

    pool.submit(first)
    second = pool.submit(lambda: ran.append("second"))
    pool.submit(lambda: ran.append("third"), ended.set)
    assert pool.cancel(second)
    assert not pool.cancel(second)
    pool.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(lambda: None)
    gate.set()
    assert ended.wait(TIMEOUT)
    assert ran == ["first", "third"]


def test_a_failing_call_is_logged_and_the_thread_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    pool = WorkerPool(1, "test-fail")
    done = threading.Event()

    def fails() -> None:
        raise RuntimeError("boom")

    pool.submit(fails)
    pool.submit(lambda: None, done.set)
    assert done.wait(TIMEOUT)
    assert any("test-fail" in record.getMessage() and record.exc_info for record in caplog.records)
    pool.shutdown()


def test_a_model_that_never_returns_does_not_keep_the_process_alive_after_close(tmp_path: Path) -> None:
    script = f"""
import io, json, sys, threading, time
from wsgiref.util import setup_testing_defaults
import responsestore
from responsestore.wsgi import make_app

started = threading.Event()

def stuck(conversation, request):
    yield "first"
    started.set()
    time.sleep(3600)  # stuck in a call that never returns
    yield "never"

store = responsestore.open("sqlite:///{tmp_path / "r.db"}")
app = make_app(store, generate=stuck, stop_grace=0.2)
body = json.dumps({{"model": "m", "input": "x", "background": True}}).encode()
environ = {{"REQUEST_METHOD": "POST", "PATH_INFO": "/v1/responses"}}
setup_testing_defaults(environ)
environ.update({{"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}})
created = json.loads(b"".join(app(environ, lambda status, headers: None)))
assert started.wait(30)
app.close()
record = store.get(created["id"])
print(record.status.value, record.error["message"])
store.close()
"""
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "failed The server is shutting down: the response was stopped before it finished.\n"
    assert time.monotonic() - began < TIMEOUT / 2  # not the hour the model would take


def test_a_second_close_waits_for_the_first() -> None:
    import responsestore  # noqa: PLC0415
    from responsestore.wsgi import make_app  # noqa: PLC0415
    from tests.live_app import call  # noqa: PLC0415

    gate, running = threading.Event(), threading.Event()

    def held(conversation: object, request: object) -> Iterator[str]:
        running.set()
        yield "first"
        gate.wait(TIMEOUT)
        yield " second"

    store = responsestore.open("memory://")
    app = make_app(store, generate=held, stop_grace=TIMEOUT)
    created = call(app, "POST", "/v1/responses", {"model": "m", "input": "x", "background": True}).json()
    # running, not queued: a close ends a queued response at once, and would not wait
    assert running.wait(TIMEOUT)
    first = threading.Thread(target=app.close)
    first.start()
    assert app.runner.stopping.wait(TIMEOUT)
    second_done = threading.Event()

    def close_again() -> None:
        app.close()
        second_done.set()

    second = threading.Thread(target=close_again)
    second.start()
    assert not second_done.wait(0.2)  # the first close is still waiting for the running response
    gate.set()
    first.join(TIMEOUT)
    second.join(TIMEOUT)
    assert second_done.is_set()
    assert store.get(created["id"]).status.value == "completed"
