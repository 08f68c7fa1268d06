"""PostgreSQL backend: create + complete through ``PostgresStore`` versus raw psycopg, and 4 processes versus 1.

The raw baseline is the fair single-table design (:class:`RawPostgres`): the same record JSON, one ``INSERT`` on
create and one ``UPDATE`` on complete, each its own committed transaction (autocommit). The store runs a write as
``BEGIN`` plus the lock of its counters row (one round trip), its conditional statements and ``COMMIT``, and a
complete first reads the record; its triggers also keep the counters, recency, expiry and tombstones the raw side
skips. Both talk to one PostgreSQL server this module starts in a temporary directory on a free loopback port,
with ``fsync=off`` and ``synchronous_commit=off`` (so the disk does not decide; the same for both sides).

Throughput: ``PROCESSES`` processes each doing create + complete on one schema, against one process doing the
same (timed from the first process's start to the last one's end); the writes to one schema take turns on one
row lock, so the ratio shows how far that scales.

Skipped (recorded as skipped) when PostgreSQL or psycopg is missing.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

from ._backends import PROCESSES, LocalServer, RawBaseline, measure_against_raw, throughput
from ._timing import Progress, Settings

NAME = "postgres"
TITLE = "PostgreSQL backend: create + complete, processes"


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    which = shutil.which("initdb")
    candidates = ([str(Path(which).parent)] if which else []) + found
    for candidate in candidates:
        if (Path(candidate) / "initdb").is_file() and (Path(candidate) / "postgres").is_file():
            return Path(candidate)
    return None


def available() -> str | None:
    """``None`` when the PostgreSQL backend can be measured, else why not."""
    try:
        import psycopg  # noqa: F401, PLC0415 - only to know whether it is installed
    except ImportError:
        return "psycopg is not installed (pip install 'responsestore[postgres]')"
    if _binaries() is None:
        return "PostgreSQL is not installed (initdb and postgres not found)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root without a 'postgres' user to run PostgreSQL as"
    return None


class Server(LocalServer):
    """A throwaway PostgreSQL server on a free loopback port (run as ``postgres`` when we are root)."""

    stop_signal = signal.SIGINT  # a fast shutdown

    def __init__(self) -> None:
        binaries = _binaries()
        assert binaries is not None
        self.directory = tempfile.mkdtemp(prefix="responsestore-bench-postgres-")
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
        data = str(Path(self.directory) / "data")
        subprocess.run(
            [str(binaries / "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"],
            user=self.user,
            cwd=self.directory,
            check=True,
            capture_output=True,
        )
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        settings = ["fsync=off", "synchronous_commit=off", "full_page_writes=off", "listen_addresses=127.0.0.1"]
        self.process = subprocess.Popen(
            [str(binaries / "postgres"), "-D", data, "-p", str(self.port), "-k", self.directory]
            + [part for setting in settings for part in ("-c", setting)],
            user=self.user,
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._await_start("postgres", 60, 0.05)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _answers(self) -> bool:
        import psycopg  # noqa: PLC0415

        try:
            with psycopg.connect(self.url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True


class RawPostgres(RawBaseline):
    """The floor: one table, the same record JSON, one ``INSERT`` per create and one ``UPDATE`` per complete."""

    def __init__(self, url: str) -> None:
        import psycopg  # noqa: PLC0415 - an optional dependency

        super().__init__()
        self.connection = psycopg.connect(url, autocommit=True)
        self.table = "raw_" + uuid.uuid4().hex[:8]
        self.connection.execute(
            f"CREATE TABLE {self.table} (id text PRIMARY KEY, created_at double precision, data text NOT NULL)"
        )
        self.connection.execute(f"CREATE INDEX {self.table}_created_at ON {self.table} (created_at)")

    def create(self, model: str, input: str) -> str:
        response_id, data = self.created_data(model, input)
        self.connection.execute(
            f"INSERT INTO {self.table} (id, created_at, data) VALUES (%s, %s, %s)",  # noqa: S608 - our own name
            (response_id, data["created_at"], json.dumps(data)),
        )
        return response_id

    def complete(self, id: str, output: Any, usage: Any = None) -> None:
        data = json.dumps(self.completed_data(id))
        self.connection.execute(f"UPDATE {self.table} SET data = %s WHERE id = %s", (data, id))  # noqa: S608

    def close(self) -> None:
        self.connection.close()


def run(settings: Settings, progress: Progress) -> dict[str, Any]:
    reason = available()
    if reason is not None:
        progress(f"postgres: skipped: {reason}")
        return {"skipped": reason}
    from responsestore._postgres import PostgresStore  # noqa: PLC0415 - psycopg is optional

    server = Server()
    try:
        store = PostgresStore.from_url(f"{server.url}?schema=bench_{uuid.uuid4().hex[:8]}")
        raw = RawPostgres(server.url)
        try:
            results = measure_against_raw(
                NAME, {"responsestore-postgres": store}, ("raw-psycopg", raw), settings, progress
            )
        finally:
            store.close()
            raw.close()
        per_process = 100 if settings.mode == "smoke" else 1_000
        one = throughput(f"{server.url}?schema=one_{uuid.uuid4().hex[:8]}&max_records=none", 1, per_process)
        many = throughput(f"{server.url}?schema=many_{uuid.uuid4().hex[:8]}&max_records=none", PROCESSES, per_process)
    finally:
        server.stop()
    progress(f"postgres: {one:,.0f} create+complete/s in 1 process, {many:,.0f}/s in {PROCESSES} processes")
    return {
        "results": results,
        "throughput": {"one": one, "many": many, "processes": PROCESSES, "ops_per_process": per_process},
    }
