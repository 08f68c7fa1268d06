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
from pathlib import Path
from typing import Any

import responsestore

from ._backends import RawBaseline, measure_against_raw
from ._timing import Progress, Settings

NAME = "sqlite"
TITLE = "SQLite backend: create + complete"

RAW_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL")


def available() -> str | None:
    """``None`` when the SQLite backend can be measured, else why not."""
    if not hasattr(responsestore, "open"):
        return "responsestore.open does not exist yet: there is no SQLite backend to measure"
    return None


class RawSQLite(RawBaseline):
    """The fair floor: one table, the same record JSON, one ``INSERT`` per create and one ``UPDATE`` per complete.

    The shape llama-stack's SQL store uses: an id primary key and a ``created_at`` index, the response as JSON
    text. The JSON is the very record the store writes (``ResponseRecord.to_dict()`` of the same response), so
    both sides serialize the same bytes; what the raw side skips is everything else the store does (validation,
    versions, owners, expiry, capacity, recency, counters, cursor tombstones, events).
    """

    whole_seconds = True

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in RAW_PRAGMAS:
            self.connection.execute(pragma)
        self.connection.execute("CREATE TABLE responses (id TEXT PRIMARY KEY, created_at INTEGER, data TEXT NOT NULL)")
        self.connection.execute("CREATE INDEX responses_created_at ON responses (created_at)")

    def create(self, model: str, input: str) -> str:
        response_id, data = self.created_data(model, input)
        with self.connection:
            self.connection.execute(
                "INSERT INTO responses (id, created_at, data) VALUES (?, ?, ?)",
                (response_id, data["created_at"], json.dumps(data)),
            )
        return response_id

    def complete(self, id: str, output: Any, usage: Any = None) -> None:
        with self.connection:
            data = json.dumps(self.completed_data(id))
            self.connection.execute("UPDATE responses SET data = ? WHERE id = ?", (data, id))

    def close(self) -> None:
        self.connection.close()


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
            results = measure_against_raw(
                NAME,
                {"responsestore-sqlite": store, "responsestore-memory": memory},
                ("raw-sqlite3", raw),
                settings,
                progress,
            )
        finally:
            for each in (store, memory):
                close = getattr(each, "close", None)
                if close is not None:
                    close()
            raw.close()
    return {"pragmas": list(RAW_PRAGMAS), "results": results}
