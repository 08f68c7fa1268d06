"""Redis backend: round trips per operation, create + complete versus raw redis-py, 4 processes versus 1.

The raw baseline does the minimum a Redis store of the same records needs (:class:`RawRedis`): one ``SET`` with
an expiry on create and one ``SET`` on complete, of the very record JSON the store writes. The store does one
``FCALL`` per create and an ``MGET`` plus an ``FCALL`` per complete (read, then conditional write), and its Lua
functions also keep the indexes, counters, recency and expiry the raw side skips. Both talk to one
``redis-server`` this module starts on a free loopback port (no persistence, so the disk does not decide).

Throughput: ``PROCESSES`` processes each doing create + complete on one server, against one process doing the
same; the ratio says how far one server scales across processes (both include the server's own work).

Skipped (recorded as skipped) when ``redis-server`` or redis-py is missing.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from typing import Any

import responsestore

from ._backends import (
    MODEL,
    OUTPUT,
    PREFILL,
    PROCESSES,
    USAGE,
    LocalServer,
    RawBaseline,
    measure_against_raw,
    throughput,
)
from ._timing import Progress, Settings

NAME = "redis"
TITLE = "Redis backend: round trips, create + complete, processes"

TTL_MS = 30 * 24 * 3600 * 1000


def available() -> str | None:
    """``None`` when the Redis backend can be measured, else why not."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    try:
        import redis  # noqa: F401, PLC0415 - only to know whether it is installed
    except ImportError:
        return "redis-py is not installed (pip install 'responsestore[redis]')"
    return None


class Server(LocalServer):
    """A throwaway ``redis-server`` on a free loopback port, without persistence."""

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="responsestore-bench-redis-")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                self.directory,
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._await_start("redis-server", 30, 0.02)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


class RawRedis(RawBaseline):
    """The floor: the same record JSON, one ``SET`` with an expiry on create and one ``SET`` on complete."""

    def __init__(self, url: str) -> None:
        import redis  # noqa: PLC0415 - an optional dependency

        super().__init__()
        self.client = redis.Redis.from_url(url)

    def create(self, model: str, input: str) -> str:
        response_id, data = self.created_data(model, input)
        self.client.set("raw:" + response_id, json.dumps(data), px=TTL_MS)
        return response_id

    def complete(self, id: str, output: Any, usage: Any = None) -> None:
        self.client.set("raw:" + id, json.dumps(self.completed_data(id)), keepttl=True)

    def close(self) -> None:
        self.client.close()


def round_trips(url: str) -> dict[str, int]:
    """Replies read (one per round trip) by each operation, counted by a client hook."""
    import redis  # noqa: PLC0415 - an optional dependency

    class Counting(redis.Connection):
        replies = 0

        def read_response(self, *args: Any, **kwargs: Any) -> Any:
            Counting.replies += 1
            return super().read_response(*args, **kwargs)

    pool = redis.ConnectionPool.from_url(url, connection_class=Counting)
    client = redis.Redis(connection_pool=pool)
    store = responsestore.RedisStore(client, prefix="trips-" + uuid.uuid4().hex[:8])
    counts: dict[str, int] = {}
    try:
        warm = store.create(MODEL, "warm")
        store.complete(warm.id)
        store.list()

        def count(name: str, action: Callable[[], object]) -> None:
            Counting.replies = 0
            action()
            counts[name] = Counting.replies

        record = store.create(MODEL, "q", background=True)
        count("get", lambda: store.get(record.id))
        count("append_event", lambda: store.append_event(record.id, {"type": "response.in_progress"}))
        count("complete", lambda: store.complete(record.id, OUTPUT, usage=USAGE))
        count("create", lambda: store.create(MODEL, "q"))
        count("create (continuing a response)", lambda: store.create(MODEL, "q", previous_response_id=record.id))
        count("list (first page)", lambda: store.list(limit=20))
        count("list (after a cursor)", lambda: store.list(limit=20, after=record.id))
        count("events", lambda: store.events(record.id))
        count("delete", lambda: store.delete(record.id))
        # at the bound: the write replies what it needs, Python plans the eviction, the write goes again
        full = responsestore.RedisStore(client, prefix="trips-" + uuid.uuid4().hex[:8], max_records=2)
        try:
            for _ in range(3):
                full.complete(full.create(MODEL, "q").id)
            count("create (at max_records, evicting)", lambda: full.create(MODEL, "q"))
        finally:
            full.close()
    finally:
        store.close()
        client.close()
        pool.disconnect()  # a client given its pool leaves it open on close(), with its sockets
    return counts


def server_commands(url: str) -> dict[str, int]:
    """Commands the Redis server runs (functions' commands included) for one non-streamed 8-word create.

    Made through the WSGI app in this process (the run layer, its lease and its batched events), counted with
    ``INFO commandstats`` before and after; the app's lease sweeper is kept from running meanwhile.
    """
    import io  # noqa: PLC0415 - only this measurement needs them
    from wsgiref.util import setup_testing_defaults  # noqa: PLC0415

    import redis  # noqa: PLC0415 - an optional dependency

    from responsestore.wsgi import make_app  # noqa: PLC0415

    def calls(client: Any) -> dict[str, int]:
        stats = client.info("commandstats")
        return {name: int(row["calls"]) for name, row in stats.items() if name != "cmdstat_info"}

    store = responsestore.open(f"{url}?prefix=commands-{uuid.uuid4().hex[:8]}")
    app = make_app(store, sweep_interval=3600.0)
    client = redis.Redis.from_url(url)

    def create() -> None:
        body = json.dumps({"model": MODEL, "input": "one two three four five six seven eight"}).encode()
        environ: dict[str, Any] = {"REQUEST_METHOD": "POST", "PATH_INFO": "/v1/responses"}
        setup_testing_defaults(environ)
        environ.update({"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))})
        statuses: list[str] = []
        b"".join(app(environ, lambda status, headers: statuses.append(status)))
        assert statuses == ["200 OK"], statuses

    try:
        create()  # loads the function library and warms the caches
        before = calls(client)
        create()
        after = calls(client)
    finally:
        app.close()
        store.close()
        client.close()
    return {name[len("cmdstat_") :]: n - before.get(name, 0) for name, n in after.items() if n != before.get(name, 0)}


def run(settings: Settings, progress: Progress) -> dict[str, Any]:
    reason = available()
    if reason is not None:
        progress(f"redis: skipped: {reason}")
        return {"skipped": reason}
    server = Server()
    try:
        trips = round_trips(server.url)
        progress(f"redis: round trips {trips}")
        commands = server_commands(server.url)
        progress(f"redis: commands of a non-streamed 8-word create through the app: {commands}")
        store = responsestore.open(f"{server.url}?prefix=bench-{uuid.uuid4().hex[:8]}")
        raw = RawRedis(server.url)
        try:
            results = measure_against_raw(
                NAME,
                {"responsestore-redis": store},
                ("raw-redis-py", raw),
                settings,
                progress,
                prefill=min(PREFILL, settings.mixed_prefill),
            )
        finally:
            store.close()
            raw.close()
        count = max(50, settings.mixed_ops // 10)
        one = throughput(f"{server.url}?prefix=tp-{uuid.uuid4().hex[:8]}", 1, count)
        many = throughput(f"{server.url}?prefix=tp-{uuid.uuid4().hex[:8]}", PROCESSES, count)
        progress(f"redis: {one:,.0f} create+complete/s in 1 process, {many:,.0f}/s in {PROCESSES}")
    finally:
        server.stop()
    return {
        "round_trips": trips,
        "create_commands": commands,
        "results": results,
        "throughput": {"processes": PROCESSES, "ops_per_process": count, "one": one, "many": many},
    }
