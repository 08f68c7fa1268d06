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
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import responsestore

from ._timing import Case, Progress, Settings, measure_round_robin

NAME = "redis"
TITLE = "Redis backend: round trips, create + complete, processes"

MODEL = "gpt-4.1"
OUTPUT = ({"role": "assistant", "content": "The answer is 42."},)
USAGE = {"input_tokens": 12, "output_tokens": 6}
PREFILL = 1_000
PROCESSES = 4
TTL_MS = 30 * 24 * 3600 * 1000
ROOT = Path(__file__).resolve().parent.parent


def available() -> str | None:
    """``None`` when the Redis backend can be measured, else why not."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    try:
        import redis  # noqa: F401, PLC0415 - only to know whether it is installed
    except ImportError:
        return "redis-py is not installed (pip install 'responsestore[redis]')"
    return None


class Server:
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
        deadline = time.monotonic() + 30
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)  # polling a starting process

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

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it still runs 10 s later; remove its directory."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.directory, ignore_errors=True)


class RawRedis:
    """The floor: the same record JSON, one ``SET`` with an expiry on create and one ``SET`` on complete."""

    def __init__(self, url: str) -> None:
        import redis  # noqa: PLC0415 - an optional dependency

        self.client = redis.Redis.from_url(url)
        store = responsestore.ResponseStore()
        record = store.create(MODEL, "question")
        self.created = record.to_dict()
        self.completed = store.complete(record.id, OUTPUT, usage=USAGE).to_dict()

    def create(self, model: str, input: str) -> str:
        response_id = "resp_" + uuid.uuid4().hex
        data = {**self.created, "id": response_id, "model": model, "created_at": time.time()}
        data["input"] = [{**data["input"][0], "content": [{"type": "input_text", "text": input}]}]
        self.client.set("raw:" + response_id, json.dumps(data), px=TTL_MS)
        return response_id

    def complete(self, id: str, output: Any, usage: Any = None) -> None:
        data = {**self.completed, "id": id, "completed_at": time.time()}
        self.client.set("raw:" + id, json.dumps(data), keepttl=True)

    def close(self) -> None:
        self.client.close()


def _create_complete(
    create: Callable[[str, str], Any], complete: Callable[..., Any], id_of: Callable[[Any], str]
) -> Callable[[int], Callable[[], object]]:
    def make(n: int) -> Callable[[], object]:
        texts = [f"question {i}" for i in range(n)]

        def run() -> None:
            for text in texts:
                complete(id_of(create(MODEL, text)), OUTPUT, usage=USAGE)

        return run

    return make


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


_WORKER = "import sys; from benchmarks.redis import _worker; _worker(sys.argv[1], int(sys.argv[2]))"


def _worker(url: str, count: int) -> None:
    """One throughput process: connect, say ready, wait for the start line, do ``count`` create + complete, then
    print the ``time.time()`` of its start and end (comparable across processes of one machine)."""
    store = responsestore.open(url)
    try:
        store.create(MODEL, "warm")  # connects and loads the scripts before the clock starts
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        sys.stdin.readline()
        start = time.time()
        for i in range(count):
            record = store.create(MODEL, f"question {i}")
            store.complete(record.id, OUTPUT, usage=USAGE)
        sys.stdout.write(f"{start} {time.time()}\n")
    finally:
        store.close()


def throughput(url: str, processes: int, count: int) -> float:
    """create + complete per second of ``processes`` processes doing ``count`` each, started together.

    The time is from the first start to the last end (interpreter start-up and connecting are not counted).
    """
    prefix = "tp-" + uuid.uuid4().hex[:8]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, f"{url}?prefix={prefix}", str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for _ in range(processes)
    ]
    for worker in workers:
        assert worker.stdout is not None
        if worker.stdout.readline().strip() != "ready":
            raise RuntimeError("a throughput worker did not start")
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    spans = []
    for worker in workers:
        out, _ = worker.communicate(timeout=600)
        if worker.returncode != 0:
            raise RuntimeError(f"a throughput worker failed with {worker.returncode}")
        start, end = (float(x) for x in out.split())
        spans.append((start, end))
    elapsed = max(end for _, end in spans) - min(start for start, _ in spans)
    return processes * count / elapsed


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
            prefill = min(PREFILL, settings.mixed_prefill)
            for i in range(prefill):
                record = store.create(MODEL, f"prefilled {i}")
                store.complete(record.id, OUTPUT, usage=USAGE)
                raw.complete(raw.create(MODEL, f"prefilled {i}"), OUTPUT, usage=USAGE)
            cases = {
                "responsestore-redis": Case(
                    _create_complete(store.create, store.complete, lambda record: record.id), max_n=PREFILL
                ),
                "raw-redis-py": Case(_create_complete(raw.create, raw.complete, str), max_n=PREFILL),
            }
            summaries = measure_round_robin(cases, settings)
        finally:
            store.close()
            raw.close()
        count = max(50, settings.mixed_ops // 10)
        one = throughput(server.url, 1, count)
        many = throughput(server.url, PROCESSES, count)
        progress(f"redis: {one:,.0f} create+complete/s in 1 process, {many:,.0f}/s in {PROCESSES}")
    finally:
        server.stop()
    results = [{"op": "create+complete", "variant": name, **summary} for name, summary in summaries.items()]
    for result in results:
        progress(f"redis: {result['variant']}: {result['median_ns'] / 1e3:.1f} µs per create+complete")
    return {
        "round_trips": trips,
        "create_commands": commands,
        "results": results,
        "throughput": {"processes": PROCESSES, "ops_per_process": count, "one": one, "many": many},
    }
