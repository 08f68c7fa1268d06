"""SQLite backend: create + complete through ``responsestore.open("sqlite:///path")`` versus raw ``sqlite3``.

The raw baseline is the fair single-table design (see :class:`RawSQLite`): the same record JSON, one ``INSERT``
on create and one ``UPDATE`` on complete, each its own committed transaction, on a database file in WAL mode
with ``synchronous=NORMAL`` (``RAW_PRAGMAS``; the store runs with the same setting so the comparison stays
fair). The store runs 3 statements per create (``BEGIN IMMEDIATE``, one ``INSERT``, ``COMMIT``) and 4 per complete
(one read, then ``BEGIN IMMEDIATE``, one ``UPDATE``, ``COMMIT``), counted by ``tests/test_sqlite.py``.

The same create + complete on the memory backend is measured beside them: what the layer every backend shares
(validation, freezing, the lifecycle, sizes) costs before any storage, so a reader sees how much of the gap to the
raw baseline is SQLite's and how much is the store's own.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import responsestore

from ._timing import Case, Progress, Settings, measure_round_robin

NAME = "sqlite"
TITLE = "SQLite backend: create + complete"

MODEL = "gpt-4.1"
OUTPUT = ({"role": "assistant", "content": "The answer is 42."},)
USAGE = {"input_tokens": 12, "output_tokens": 6}
RAW_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL")
PREFILL = 1_000


def available() -> str | None:
    """``None`` when the SQLite backend can be measured, else why not."""
    if not hasattr(responsestore, "open"):
        return "responsestore.open does not exist yet: there is no SQLite backend to measure"
    return None


class RawSQLite:
    """The fair floor: one table, the same record JSON, one ``INSERT`` per create and one ``UPDATE`` per complete.

    The shape llama-stack's SQL store uses: an id primary key and a ``created_at`` index, the response as JSON
    text. The JSON is the very record the store writes (``ResponseRecord.to_dict()`` of the same response), so
    both sides serialize the same bytes; what the raw side skips is everything else the store does (validation,
    versions, owners, expiry, capacity, recency, counters, cursor tombstones, events).
    """

    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in RAW_PRAGMAS:
            self.connection.execute(pragma)
        self.connection.execute("CREATE TABLE responses (id TEXT PRIMARY KEY, created_at INTEGER, data TEXT NOT NULL)")
        self.connection.execute("CREATE INDEX responses_created_at ON responses (created_at)")
        store = responsestore.ResponseStore()
        record = store.create(MODEL, "question")
        self.created = record.to_dict()
        self.completed = store.complete(record.id, OUTPUT, usage=USAGE).to_dict()

    def create(self, model: str, input: str) -> str:
        response_id = "resp_" + uuid.uuid4().hex
        data = {**self.created, "id": response_id, "model": model, "created_at": int(time.time())}
        data["input"] = [{**data["input"][0], "content": [{"type": "input_text", "text": input}]}]
        with self.connection:
            self.connection.execute(
                "INSERT INTO responses (id, created_at, data) VALUES (?, ?, ?)",
                (response_id, data["created_at"], json.dumps(data)),
            )
        return response_id

    def complete(self, id: str, output: Any, usage: Any = None) -> None:
        data = {**self.completed, "id": id, "completed_at": int(time.time())}
        with self.connection:
            self.connection.execute("UPDATE responses SET data = ? WHERE id = ?", (json.dumps(data), id))

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


def run(settings: Settings, progress: Progress) -> dict[str, Any]:
    reason = available()
    if reason is not None:
        progress(f"sqlite: skipped: {reason}")
        return {"skipped": reason}
    with tempfile.TemporaryDirectory(prefix="responsestore-bench-") as directory:
        # The same durability as the raw baseline (RAW_PRAGMAS): WAL with synchronous=NORMAL.
        store = responsestore.open(f"sqlite:///{Path(directory) / 'store.db'}", synchronous="NORMAL")
        raw = RawSQLite(Path(directory) / "raw.db")
        memory = responsestore.open("memory://")
        try:
            for i in range(PREFILL):
                for each in (store, memory):
                    record = each.create(MODEL, f"prefilled {i}")
                    each.complete(record.id, OUTPUT, usage=USAGE)
                raw.complete(raw.create(MODEL, f"prefilled {i}"), OUTPUT, usage=USAGE)
            cases = {
                "responsestore-sqlite": Case(
                    _create_complete(store.create, store.complete, lambda record: record.id), max_n=PREFILL
                ),
                "raw-sqlite3": Case(_create_complete(raw.create, raw.complete, str), max_n=PREFILL),
                "responsestore-memory": Case(
                    _create_complete(memory.create, memory.complete, lambda record: record.id), max_n=PREFILL
                ),
            }
            summaries = measure_round_robin(cases, settings)
        finally:
            for each in (store, memory):
                close = getattr(each, "close", None)
                if close is not None:
                    close()
            raw.close()
    results = [{"op": "create+complete", "variant": name, **summary} for name, summary in summaries.items()]
    for result in results:
        progress(f"sqlite: {result['variant']}: {result['median_ns'] / 1e3:.1f} µs per create+complete")
    return {"pragmas": list(RAW_PRAGMAS), "results": results}
