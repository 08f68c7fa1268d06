"""Real Redis servers for the tests: started in temporary directories on free loopback ports, stopped by pid.

:func:`shared` starts one server per test session (every store on it gets a fresh prefix, so tests are isolated);
:class:`RedisServer` starts one of its own (for the crash and SIGSTOP tests) and :class:`RedisCluster` three
masters joined into a cluster. When ``redis-server`` is not installed the Redis tests skip, except when the
``CI`` environment variable is set: there they fail, so a CI run can never pass without running them.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from responsestore import (
    ChainError,
    DeltaRun,
    EventLogClosed,
    InvalidTransition,
    RedisStore,
    ResponseNotFound,
    StoreFull,
    VersionConflict,
)

#: Ports above this are never used: a cluster node's bus listens on its port + 10000.
MAX_PORT = 55535
_START_TIMEOUT = 30.0

_lock = threading.Lock()
_shared: RedisServer | None = None
_ports = itertools.count(20000 + (os.getpid() * 7) % 30000)


def redis_server_binary() -> str:
    """The path of ``redis-server``; skips the test (fails it under CI) when it is missing."""
    path = shutil.which("redis-server")
    if path is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must run the Redis tests")
        pytest.skip(message)
    return path


def _free_port() -> int:
    """A loopback port nobody listens on, with its cluster bus port (+10000) free too, at most MAX_PORT."""
    while True:
        port = next(_ports)
        if port > MAX_PORT:
            raise RuntimeError("no free port left for redis-server")
        if _port_free(port) and _port_free(port + 10000):
            return port


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class RedisServer:
    """One ``redis-server`` process in a temporary directory; AOF with ``appendfsync always``."""

    def __init__(self, *, cluster: bool = False, directory: Path | None = None, port: int | None = None) -> None:
        self.binary = redis_server_binary()
        self.directory = Path(directory or tempfile.mkdtemp(prefix="rs-redis-"))
        self.cluster = cluster
        self.port = port if port is not None else _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server (again, after :meth:`kill`: it reloads its AOF) and wait until it answers PING."""
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.directory / "redis.log"),
        ]
        if self.cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file", str(self.directory / "nodes.conf")]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + _START_TIMEOUT
        while not self.ping():
            if self.process.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not answer PING")
            time.sleep(0.02)  # polling a starting process: nothing to wait on

    def ping(self) -> bool:
        """Whether the server answers PING (and has loaded its data)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """``kill -9`` the server and reap it."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(30)

    def signal(self, number: int) -> None:
        """Send a signal (SIGSTOP, SIGCONT) to the server."""
        assert self.process is not None
        os.kill(self.process.pid, number)

    def stop(self) -> None:
        """Stop the server by pid and remove its directory."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(OSError):
                os.kill(self.process.pid, signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


class RedisCluster:
    """Three masters on loopback ports, their 16384 slots assigned, joined by CLUSTER MEET."""

    def __init__(self) -> None:
        self.nodes = [RedisServer(cluster=True) for _ in range(3)]
        try:
            clients = [redis.Redis(port=node.port, socket_timeout=10) for node in self.nodes]
            per = 16384 // 3
            for i, client in enumerate(clients):
                last = 16383 if i == 2 else (i + 1) * per - 1
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", i * per, last)
            for client in clients[1:]:
                client.execute_command("CLUSTER", "MEET", "127.0.0.1", self.nodes[0].port)
            deadline = time.monotonic() + _START_TIMEOUT
            while not all(_cluster_ok(client) for client in clients):
                if time.monotonic() > deadline:
                    raise RuntimeError("the cluster did not reach cluster_state:ok")
                time.sleep(0.05)  # polling the cluster's own convergence
            for client in clients:
                client.close()
        except BaseException:
            self.stop()
            raise

    @property
    def ports(self) -> list[int]:
        """The masters' ports."""
        return [node.port for node in self.nodes]

    def stop(self) -> None:
        """Stop every node."""
        for node in self.nodes:
            node.stop()


def _cluster_ok(client: Any) -> bool:
    info = client.execute_command("CLUSTER", "INFO")
    text = info.decode() if isinstance(info, bytes) else str(info)
    if "cluster_state:ok" not in text:
        return False
    nodes = client.execute_command("CLUSTER", "NODES")
    nodes_text = nodes.decode() if isinstance(nodes, bytes) else str(nodes)
    return len(nodes_text.strip().splitlines()) == 3


def shared() -> RedisServer:
    """The session's shared server (started on first use, stopped at exit)."""
    global _shared  # noqa: PLW0603 - one server per test session
    with _lock:
        if _shared is None or _shared.process is None or _shared.process.poll() is not None:
            _shared = RedisServer()
            atexit.register(_shared.stop)
        return _shared


def fresh_prefix() -> str:
    """A prefix no other store of this session uses."""
    return "t" + uuid.uuid4().hex[:16]


def open_store(**kwargs: Any) -> Any:
    """A fresh, empty RedisStore on the shared server (a new prefix, a client with a 5 s timeout)."""
    server = shared()
    return RedisStore.from_url(f"{server.url}?prefix={fresh_prefix()}", **kwargs)


# ---------------------------------------------------------------------------------------------- worker processes
#
# ``python -m tests.redis_server ROLE URL ...`` runs one worker of tests/test_redis.py in a process of its own
# and prints its result as one line of JSON.


def _race(url: str, ids: list[str], increments: int, name: str) -> dict[str, Any]:
    """Increment every record's metadata counter ``increments`` times (read, decide, write with
    ``expected_version``, retry on conflict), checking read-after-write through a second client; then try to
    complete every record, reporting which completions this worker won."""
    store = RedisStore.from_url(url)
    other = RedisStore.from_url(url)  # another connection: what a second host would read
    conflicts = 0
    stale_reads = 0
    try:
        for _ in range(increments):
            for id in ids:
                while True:
                    record = store.get(id)
                    count = int(record.metadata["n"])
                    try:
                        written = store.update(id, metadata={"n": str(count + 1)}, expected_version=record.version)
                    except VersionConflict:
                        conflicts += 1
                        continue
                    if other.get(id).version < written.version:
                        stale_reads += 1
                    break
        won = []
        for id in ids:
            try:
                store.complete(id, [{"type": "message", "role": "assistant", "content": name}])
            except InvalidTransition:
                continue
            won.append(id)
        return {"conflicts": conflicts, "stale_reads": stale_reads, "won": won}
    finally:
        store.close()
        other.close()


def _wait(url: str, id: str) -> dict[str, Any]:
    """Wait for ``id`` with a poll interval longer than the timeout: only a pub/sub wake-up can end it."""
    store = RedisStore.from_url(url, poll_interval=600.0)
    try:
        record = store.wait(id, timeout=60.0)
        return {"status": record.status.value}
    finally:
        store.close()


def stream_batch(tag: str) -> list[Any]:
    """The events one ``stream`` worker appends in one batch: two literal events around a delta run, all tagged."""
    delta = {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": ""}
    return [
        {"type": "test.batch", "tag": tag, "part": "start"},
        DeltaRun(delta, [f"{tag}/{i} " for i in range(3)]),
        {"type": "test.batch", "tag": tag, "part": "end"},
    ]


def _stream(url: str, ids: list[str], rounds: int, name: str) -> dict[str, Any]:
    """Wait for a start line, then append ``rounds`` tagged batches to every response (every other one renewing
    a lease, so plain appends and record writes interleave), then try to finish every response with a tagged
    final event; report where each acknowledged batch landed and which completions this worker won."""
    store = RedisStore.from_url(url)
    appended: list[list[Any]] = []
    closed: set[str] = set()
    won: list[str] = []
    try:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        sys.stdin.readline()
        for round_ in range(rounds):
            for id in ids:
                if id in closed:
                    continue
                tag = f"{name}:{round_}:{id}"
                try:
                    first = store.append_events(id, stream_batch(tag), lease=30 if round_ % 2 else None)
                except EventLogClosed:
                    closed.add(id)
                    continue
                appended.append([id, first, tag])
        for id in ids:
            try:
                store.complete(id, [], events=[{"type": "test.final", "tag": name}])
            except (InvalidTransition, EventLogClosed):
                continue
            won.append(id)
        return {"appended": appended, "won": won}
    finally:
        store.close()


def _over_a_bound(store: RedisStore) -> bool:
    """Whether ``store`` holds more records or bytes than its bounds (never, after any write)."""
    stats, retention = store.stats(), store.retention
    if retention.max_records is not None and stats.records > retention.max_records:
        return True
    return retention.max_bytes is not None and stats.bytes > retention.max_bytes


def _fill(url: str, count: int, name: str) -> dict[str, Any]:
    """Wait for a start line, then create and finish ``count`` responses, every other one continuing this worker's
    last (so a chain is spared while others evict), each finished with a few events (its log grows the bytes);
    report the ids it made, how many creates the store refused as full or for a lost chain, and how often the
    store was seen over a bound."""
    store = RedisStore.from_url(url)
    made: list[str] = []
    full = lost = over = 0
    try:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        sys.stdin.readline()
        previous: str | None = None
        for i in range(count):
            try:
                record = store.create("m", background=True, previous_response_id=previous if i % 2 else None)
            except StoreFull:
                full += 1  # wrong: every other worker's records are finished, so there is always room
                continue
            except (ResponseNotFound, ChainError):
                # the others evicted this worker's last response while it was descheduled (ResponseNotFound), or
                # between reading its chain and writing (ChainError: it names no response): allowed
                lost += 1
                previous = None
                continue
            over += _over_a_bound(store)
            store.append_events(record.id, stream_batch(f"{name}:{i}"))
            store.complete(record.id, [], events=[{"type": "test.final", "tag": name}])
            over += _over_a_bound(store)
            made.append(record.id)
            previous = record.id
        return {"made": made, "full": full, "lost": lost, "over": over}
    finally:
        store.close()


def main(argv: list[str]) -> None:
    """Run the worker ``argv[0]`` and print its result as JSON."""
    role, url = argv[0], argv[1]
    if role == "race":
        result = _race(url, json.loads(argv[2]), int(argv[3]), argv[4])
    elif role == "wait":
        result = _wait(url, argv[2])
    elif role == "stream":
        result = _stream(url, json.loads(argv[2]), int(argv[3]), argv[4])
    elif role == "fill":
        result = _fill(url, int(argv[2]), argv[3])
    else:
        raise SystemExit(f"unknown role {role!r}")
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
