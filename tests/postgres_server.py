"""Real PostgreSQL servers for the tests: initialised in temporary directories, on free loopback ports, stopped by pid.

:func:`shared` starts one server per test session (every store on it gets a fresh schema, so tests are isolated);
:class:`PostgresServer` starts one of its own (for the crash tests). The server runs without durability (``fsync``
off: the tests never crash the machine). As root, ``initdb`` and ``postgres`` run as the ``postgres`` system user
(they refuse root). When no server can be started the PostgreSQL tests skip, except when the ``CI`` environment
variable is set: there they fail, so a CI run can never pass without running them.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
import weakref
from pathlib import Path
from typing import Any

import pytest

_START_TIMEOUT = 60.0
_lock = threading.Lock()
_shared: PostgresServer | None = None
_ports = itertools.count(25000 + (os.getpid() * 11) % 30000)


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message + "; CI must run the PostgreSQL tests")
    pytest.skip(message)


def binaries() -> Path:
    """The directory of ``initdb`` and ``postgres``; skips the test (fails it under CI) when there is none."""
    try:
        import psycopg  # noqa: F401, PLC0415 - the driver must be there too
    except ImportError:
        _unavailable("psycopg is not installed (pip install 'responsestore[postgres]')")
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            candidates.append(
                subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True).stdout
            )
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        path = Path(candidate.strip())
        if (path / "initdb").is_file() and (path / "postgres").is_file():
            return path
    _unavailable("PostgreSQL is not installed (apt-get install postgresql)")
    raise AssertionError("unreachable")  # pragma: no cover


def _run_as() -> str | None:
    """The user the server runs as: ``postgres`` when we are root (PostgreSQL refuses root), else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        _unavailable("running as root without a 'postgres' user to run PostgreSQL as")
    return "postgres"


def _free_port() -> int:
    while True:
        port = next(_ports)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


class PostgresServer:
    """One PostgreSQL server in a temporary directory, listening on a loopback port (its socket in that directory).

    ``fsync`` is off (the tests never crash the machine); with ``synchronous_commit`` (the default) a commit has
    reached the kernel before it is acknowledged, so it survives a ``kill -9`` of the server. The shared server of
    the contract tests runs without it.
    """

    def __init__(self, *, synchronous_commit: bool = True) -> None:
        self.bin = binaries()
        self.synchronous_commit = synchronous_commit
        self.user = _run_as()
        self.directory = Path(tempfile.mkdtemp(prefix="rs-postgres-"))
        self.data = self.directory / "data"
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
        try:
            subprocess.run(
                [
                    str(self.bin / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "--locale=C",
                ],
                user=self.user,
                check=True,
                capture_output=True,
                cwd=self.directory,
            )
        except subprocess.CalledProcessError as exc:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise RuntimeError(f"initdb failed: {exc.stderr.decode(errors='replace')[-2000:]}") from exc
        self.start()

    @property
    def url(self) -> str:
        """``postgresql://postgres@127.0.0.1:PORT/postgres``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Start the server (again, after :meth:`kill`: it recovers from its WAL) and wait until it accepts."""
        args = [
            str(self.bin / "postgres"),
            "-D", str(self.data),
            "-p", str(self.port),
            "-k", str(self.directory),
            "-c", "listen_addresses=127.0.0.1",
            "-c", "fsync=off",
            "-c", f"synchronous_commit={'on' if self.synchronous_commit else 'off'}",
            "-c", "full_page_writes=off",
            "-c", "max_connections=400",
            "-c", "shared_buffers=64MB",
            "-c", "log_min_messages=fatal",
            "-c", "logging_collector=off",
        ]  # fmt: skip
        deadline = time.monotonic() + _START_TIMEOUT
        self.process = self._launch(args)
        while not self.ready():
            if self.process.poll() is not None:
                text = (self.directory / "server.log").read_text(errors="replace")[-2000:]
                # After kill(), the killed server's last processes may hold the port for a moment (they are not
                # ours to wait for), or another process may have just probed it: try the same port again.
                if "could not create any TCP/IP sockets" in text and time.monotonic() < deadline:
                    time.sleep(0.1)  # polling for a port another process holds: nothing to wait on
                    self.process = self._launch(args)
                    continue
                raise RuntimeError(f"postgres exited with {self.process.returncode}: {text}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres on port {self.port} did not accept connections")
            time.sleep(0.05)  # polling a starting process: nothing to wait on

    def _launch(self, args: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.directory / "server.log", "ab")  # noqa: SIM115 - the server's, closed below
        try:
            return subprocess.Popen(
                args, user=self.user, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.directory
            )
        finally:
            log.close()

    def ready(self) -> bool:
        """Whether the server accepts a connection and answers a query."""
        import psycopg  # noqa: PLC0415

        try:
            with psycopg.connect(self.url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def children(self) -> list[int]:
        """The pids of the postmaster's child processes (its backends and workers)."""
        assert self.process is not None
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except OSError:
            return []

    def kill(self) -> None:
        """``kill -9`` the postmaster and every process it started (a crash of the server); reap it."""
        if self.process is not None and self.process.poll() is None:
            children = self.children()
            os.kill(self.process.pid, signal.SIGKILL)
            for pid in children:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            self.process.wait(30)

    def signal(self, number: int) -> None:
        """Send a signal to the postmaster."""
        assert self.process is not None
        os.kill(self.process.pid, number)

    def stop(self) -> None:
        """Stop the server by pid (a fast shutdown) and remove its directory."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(OSError):
                os.kill(self.process.pid, signal.SIGCONT)
            os.kill(self.process.pid, signal.SIGINT)  # fast shutdown: disconnect clients, exit
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


def shared() -> PostgresServer:
    """The session's shared server (started on first use, stopped at exit)."""
    global _shared  # noqa: PLW0603 - one server per test session
    with _lock:
        if _shared is None or _shared.process is None or _shared.process.poll() is not None:
            _shared = PostgresServer(synchronous_commit=False)
            atexit.register(_shared.stop)
        return _shared


def fresh_schema() -> str:
    """A schema name no other store of this session uses."""
    return "t" + uuid.uuid4().hex[:16]


#: The stores :func:`open_store` made, each with its schema. Once a store is garbage (the test that made it has
#: ended), its schema is dropped, a few at a time, so that thousands of tests do not leave thousands of schemas
#: (each a dozen tables, indexes and triggers) slowing the server's catalog down.
_opened: list[tuple[weakref.ref[Any], str]] = []
_DROP_BATCH = 20


def _drop_closed_schemas(server: PostgresServer) -> None:
    import psycopg  # noqa: PLC0415

    with _lock:
        # Only a store nobody holds any more: a test may still check a store it closed (and _check reconnects).
        done = [(ref, schema) for ref, schema in _opened if ref() is None]
        if len(done) < _DROP_BATCH:
            return
        for pair in done:
            _opened.remove(pair)
    with psycopg.connect(server.url, autocommit=True) as conn:
        for _, schema in done:  # one transaction each: dropping many at once takes more locks than the server has
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")  # fresh_schema()'s names: letters, digits


def open_store(**kwargs: Any) -> Any:
    """A fresh, empty PostgresStore on the shared server (a new schema, dropped after the store is garbage)."""
    from responsestore._postgres import PostgresStore  # noqa: PLC0415 - psycopg is an optional extra

    server = shared()
    _drop_closed_schemas(server)
    schema = fresh_schema()
    store = PostgresStore.from_url(f"{server.url}?schema={schema}", **kwargs)
    with _lock:
        _opened.append((weakref.ref(store), schema))
    return store
