"""Runs under real faults: a server process killed with SIGKILL, a locked SQLite file, a Redis server killed mid-run.

Real processes and real servers only: ``serve`` children on one store, a second SQLite connection holding the write
lock, a ``redis-server`` killed with ``kill -9`` and started again from its append-only file. Each case checks that
the response reaches a final status, that followers' streams end with its final event, and that no logged event
is lost.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import responsestore
from responsestore import ResponseStatus
from responsestore.wsgi import make_app
from tests import redis_server
from tests.test_runs import Call, sse
from tests.test_wsgi_serve import Child
from tests.test_wsgi_serve import children as children  # noqa: PLC0414 - the fixture, used by name

TIMEOUT = 30.0
LEASE = 1.0
SWEEP = 0.2
WORDS = " ".join(f"word{i}" for i in range(40))


def follow(url: str, id: str) -> Iterator[dict[str, Any]]:
    """The events of ``GET /responses/{id}?stream=true`` on the server at ``url``, as they arrive."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
    connection.request("GET", f"/v1/responses/{id}?stream=true", headers={"Authorization": "Bearer any"})
    reply = connection.getresponse()
    assert reply.status == 200
    try:
        for raw in reply:
            line = raw.decode()
            if line.startswith("data: "):
                yield json.loads(line[6:])
    finally:
        connection.close()


def serve(children: list[Child], store: str) -> Child:
    child = Child(
        "--store",
        store,
        "--generate",
        "tests.models:paced",
        "--lease-seconds",
        str(LEASE),
        "--sweep-interval",
        str(SWEEP),
    )
    children.append(child)
    return child


def killed_server_check(children: list[Child], store: str) -> None:
    """Kill the server running a response; the other server ends it, and its followers see the end."""
    running, survivor = serve(children, store), serve(children, store)
    response = running.client().responses.create(
        model="paced", input="first second third", background=True, metadata={"hold": "600"}
    )
    events = follow(survivor.url, response.id)
    seen = []
    for event in events:  # up to the first delta: the run is under way, and its first batch logged
        seen.append(event)
        if event["type"] == "response.output_text.delta":
            break
    assert [e["type"] for e in seen[:3]] == ["response.created", "response.queued", "response.in_progress"]
    os.kill(running.process.pid, signal.SIGKILL)
    killed = time.monotonic()
    running.process.communicate(timeout=TIMEOUT)  # reaps it and closes its pipes
    rest = list(events)
    ended = time.monotonic() - killed
    assert [e["type"] for e in rest] == ["response.failed"], rest
    assert ended < LEASE + SWEEP + 5.0, f"ended {ended:.1f} s after the kill"
    failed = rest[-1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "server_error"
    stored = survivor.get(f"/responses/{response.id}")
    assert stored == failed
    replay = survivor.get(f"/responses/{response.id}?stream=true")
    assert replay == seen + rest, "no logged event was lost"
    # The survivor still serves, and its own responses complete.
    assert survivor.client().responses.create(model="paced", input="still here").status == "completed"


def test_a_killed_server_s_responses_end_on_another_process_sqlite(
    children: list[Child],
    tmp_path: Path,
) -> None:
    killed_server_check(children, f"sqlite:///{tmp_path / 'responses.db'}")


def test_a_killed_server_s_responses_end_on_another_process_redis(
    children: list[Child],
) -> None:
    server = redis_server.shared()
    killed_server_check(children, f"{server.url}?prefix={redis_server.fresh_prefix()}")


def _stream_through_a_fault(app: Any, fault: Any) -> tuple[bytes, list[dict[str, Any]]]:
    """Stream a paced response; once its first delta is out, run ``fault()``; return the body and its events."""
    call = Call(
        app, "POST", "/responses", {"model": "paced", "input": WORDS, "stream": True, "metadata": {"delay": "0.01"}}
    )
    chunks: list[bytes] = []
    faulted = threading.Event()
    for chunk in call.result:
        chunks.append(chunk)
        if not faulted.is_set() and b"response.output_text.delta" in chunk:
            faulted.set()
            fault()
    close = getattr(call.result, "close", None)
    if close is not None:
        close()
    body = b"".join(chunks)
    return body, sse(body)


def _check_completed(app: Any, store: Any, body: bytes, events: list[dict[str, Any]]) -> None:
    assert events[-1]["type"] == "response.completed", [e["type"] for e in events[-3:]]
    final = events[-1]["response"]
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == WORDS
    assert store.get(final["id"]).status is ResponseStatus.COMPLETED
    replay = Call(app, "GET", f"/responses/{final['id']}", query="stream=true").body()
    assert replay == body, "the replay is the live stream, byte for byte: nothing was lost or repeated"


def test_a_locked_sqlite_file_mid_run_is_waited_out(tmp_path: Path) -> None:
    from tests.models import paced  # noqa: PLC0415

    path = tmp_path / "responses.db"
    store = responsestore.SQLiteStore(path, busy_timeout=0.05, synchronous="NORMAL")
    app = make_app(store, generate=paced, flush_interval=0.01)
    other = sqlite3.connect(path, isolation_level=None, timeout=TIMEOUT)

    def lock_for_a_while() -> None:
        other.execute("BEGIN EXCLUSIVE")  # another process's long write transaction, as a real one would hold
        try:
            time.sleep(0.6)  # how long the fault lasts: the run keeps generating and must wait it out
        finally:
            other.execute("COMMIT")

    try:
        body, events = _stream_through_a_fault(app, lock_for_a_while)
        _check_completed(app, store, body, events)
    finally:
        other.close()
        app.close()
        store.close()


def test_a_redis_server_killed_and_restarted_mid_run(tmp_path: Path) -> None:
    from tests.models import paced  # noqa: PLC0415

    server = redis_server.RedisServer()  # started: a second start() would orphan this process
    store = responsestore.open(f"{server.url}?prefix=faults&socket_timeout=1&socket_connect_timeout=1")
    app = make_app(store, generate=paced, flush_interval=0.01)

    def kill_and_restart() -> None:
        server.kill()
        time.sleep(0.3)  # how long the server stays down: the run keeps generating and retries its writes
        server.start()

    try:
        body, events = _stream_through_a_fault(app, kill_and_restart)
        _check_completed(app, store, body, events)
    finally:
        app.close()
        store.close()
        server.stop()


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_a_non_streamed_reply_of_fifty_thousand_tokens(tmp_path: Path, backend: str) -> None:
    words = " ".join(f"t{i % 1000}" for i in range(50_000))
    if backend == "sqlite":
        store = responsestore.SQLiteStore(tmp_path / "r.db", synchronous="NORMAL")
    else:
        store = redis_server.open_store()
    app = make_app(store)
    try:
        body = Call(app, "POST", "/responses", {"model": "echo", "input": words}).json()
        assert body["status"] == "completed"
        assert body["output"][0]["content"][0]["text"] == words
        events = store.events(body["id"])
        assert len(events) == 50_000 + 8
        assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == words
        streamed = Call(app, "POST", "/responses", {"model": "echo", "input": words, "stream": True}).body()
        first = json.loads(streamed.split(b"\n\n", 1)[0].split(b"data: ", 1)[1])
        assert streamed.count(b"event: response.output_text.delta\n") == 50_000
        replay = Call(app, "GET", f"/responses/{first['response']['id']}", query="stream=true").body()
        assert replay == streamed
    finally:
        app.close()
        store.close()
