"""PostgreSQL backend: create + complete through ``PostgresStore`` versus raw psycopg, and 4 processes versus 1.

The raw baseline is the fair single-table design (:class:`RawPostgres`): the same record JSON, one ``INSERT`` on
create and one ``UPDATE`` on complete, each its own committed transaction (autocommit). The store runs a write as
``BEGIN`` plus the lock of its counters row (one round trip), its conditional statements and ``COMMIT``, and a
complete first reads the record; its triggers also keep the counters, recency, expiry and tombstones the raw side
skips. Both talk to one PostgreSQL server this module starts in a temporary directory on a free loopback port,
with ``fsync=off`` and ``synchronous_commit=off`` (so the disk does not decide; the same for both sides).

Throughput: ``PROCESSES`` processes each doing create + complete on one schema, against one process doing the
same; the writes to one schema take turns on one row lock, so the ratio shows how far that scales.

Skipped (recorded as skipped) when PostgreSQL or psycopg is missing.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
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

NAME = "postgres"
TITLE = "PostgreSQL backend: create + complete, processes"

MODEL = "gpt-4.1"
OUTPUT = ({"role": "assistant", "content": "The answer is 42."},)
USAGE = {"input_tokens": 12, "output_tokens": 6}
PREFILL = 1_000
PROCESSES = 4
ROOT = Path(__file__).resolve().parent.parent


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


class Server:
    """A throwaway PostgreSQL server on a free loopback port (run as ``postgres`` when we are root)."""

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
        deadline = time.monotonic() + 60
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("postgres did not start")
            time.sleep(0.05)  # polling a starting process

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

    def stop(self) -> None:
        """A fast shutdown (SIGINT), then SIGKILL if it still runs 10 s later; remove its directory."""
        if self.process.poll() is None:
            self.process.send_signal(2)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.directory, ignore_errors=True)


class RawPostgres:
    """The floor: one table, the same record JSON, one ``INSERT`` per create and one ``UPDATE`` per complete."""

    def __init__(self, url: str) -> None:
        import psycopg  # noqa: PLC0415 - an optional dependency

        self.connection = psycopg.connect(url, autocommit=True)
        self.table = "raw_" + uuid.uuid4().hex[:8]
        self.connection.execute(
            f"CREATE TABLE {self.table} (id text PRIMARY KEY, created_at double precision, data text NOT NULL)"
        )
        self.connection.execute(f"CREATE INDEX {self.table}_created_at ON {self.table} (created_at)")
        store = responsestore.ResponseStore()
        record = store.create(MODEL, "question")
        self.created = record.to_dict()
        self.completed = store.complete(record.id, OUTPUT, usage=USAGE).to_dict()

    def create(self, model: str, input: str) -> str:
        response_id = "resp_" + uuid.uuid4().hex
        data = {**self.created, "id": response_id, "model": model, "created_at": time.time()}
        data["input"] = [{**data["input"][0], "content": [{"type": "input_text", "text": input}]}]
        self.connection.execute(
            f"INSERT INTO {self.table} (id, created_at, data) VALUES (%s, %s, %s)",  # noqa: S608 - our own name
            (response_id, data["created_at"], json.dumps(data)),
        )
        return response_id

    def complete(self, id: str, output: Any, usage: Any = None) -> None:
        data = {**self.completed, "id": id, "completed_at": time.time()}
        self.connection.execute(f"UPDATE {self.table} SET data = %s WHERE id = %s", (json.dumps(data), id))  # noqa: S608

    def close(self) -> None:
        self.connection.close()


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


WORKER = """
import sys, time
from responsestore._postgres import PostgresStore
store = PostgresStore.from_url(sys.argv[1], max_records=None)
n = int(sys.argv[2])
output = [{"role": "assistant", "content": "The answer is 42."}]
sys.stdout.write("ready\\n"); sys.stdout.flush(); sys.stdin.readline()
for i in range(n):
    store.complete(store.create("gpt-4.1", f"q {i}").id, output)
store.close()
"""


def throughput(url: str, processes: int, per_process: int) -> float:
    """Create + complete per second of ``processes`` processes doing ``per_process`` each on one schema."""
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, str(per_process)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError("a throughput worker did not start")
        started = time.perf_counter()
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        for child in children:
            if child.wait(600) != 0:
                raise RuntimeError("a throughput worker failed")
        return processes * per_process / (time.perf_counter() - started)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait(10)
            for pipe in (child.stdin, child.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()


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
            for i in range(PREFILL):
                record = store.create(MODEL, f"prefilled {i}")
                store.complete(record.id, OUTPUT, usage=USAGE)
                raw.complete(raw.create(MODEL, f"prefilled {i}"), OUTPUT, usage=USAGE)
            cases = {
                "responsestore-postgres": Case(
                    _create_complete(store.create, store.complete, lambda record: record.id), max_n=PREFILL
                ),
                "raw-psycopg": Case(_create_complete(raw.create, raw.complete, str), max_n=PREFILL),
            }
            summaries = measure_round_robin(cases, settings)
        finally:
            store.close()
            raw.close()
        per_process = 100 if settings.mode == "smoke" else 1_000
        one = throughput(f"{server.url}?schema=one_{uuid.uuid4().hex[:8]}", 1, per_process)
        many = throughput(f"{server.url}?schema=many_{uuid.uuid4().hex[:8]}", PROCESSES, per_process)
    finally:
        server.stop()
    results = [{"op": "create+complete", "variant": name, **summary} for name, summary in summaries.items()]
    for result in results:
        progress(f"postgres: {result['variant']}: {result['median_ns'] / 1e3:.1f} µs per create+complete")
    progress(f"postgres: {one:,.0f} create+complete/s in 1 process, {many:,.0f}/s in {PROCESSES} processes")
    return {
        "results": results,
        "throughput": {"one": one, "many": many, "processes": PROCESSES, "ops_per_process": per_process},
    }
