"""SQLite backend: create + complete through ``responsestore.open("sqlite:///path")`` versus raw ``sqlite3``.

Skipped (with a note in the results) while the package has no ``open`` function. The raw baseline runs the
statements such a backend cannot avoid: one ``INSERT`` of the response as JSON text, then one ``UPDATE`` of its
status and JSON, each its own committed transaction, on a database file in WAL mode with
``synchronous=NORMAL`` (``RAW_PRAGMAS``; keep them equal to the backend's so the comparison stays fair).
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
    """The floor: the two statements a create and a complete need, nothing else."""

    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in RAW_PRAGMAS:
            self.connection.execute(pragma)
        self.connection.execute(
            "CREATE TABLE responses (owner TEXT, id TEXT, created_at REAL, seq INTEGER, status TEXT, "
            "data TEXT NOT NULL, PRIMARY KEY (owner, id))"
        )
        self.connection.execute("CREATE INDEX responses_order ON responses (owner, created_at, seq)")
        self.seq = 0

    def create(self, model: str, input: str) -> str:
        response_id = "resp_" + uuid.uuid4().hex
        self.seq += 1
        data = {"id": response_id, "model": model, "status": "in_progress", "input": input}
        with self.connection:
            self.connection.execute(
                "INSERT INTO responses VALUES ('', ?, ?, ?, 'in_progress', ?)",
                (response_id, time.time(), self.seq, json.dumps(data)),
            )
        return response_id

    def complete(self, id: str, output: Any, usage: Any = None) -> None:
        data = {"id": id, "model": MODEL, "status": "completed", "output": list(output), "usage": usage}
        with self.connection:
            self.connection.execute(
                "UPDATE responses SET status = 'completed', data = ? WHERE owner = '' AND id = ?",
                (json.dumps(data), id),
            )

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
        try:
            for i in range(PREFILL):
                record = store.create(MODEL, f"prefilled {i}")
                store.complete(record.id, OUTPUT, usage=USAGE)
                raw.complete(raw.create(MODEL, f"prefilled {i}"), OUTPUT, usage=USAGE)
            cases = {
                "responsestore-sqlite": Case(
                    _create_complete(store.create, store.complete, lambda record: record.id), max_n=PREFILL
                ),
                "raw-sqlite3": Case(_create_complete(raw.create, raw.complete, str), max_n=PREFILL),
            }
            summaries = measure_round_robin(cases, settings)
        finally:
            close = getattr(store, "close", None)
            if close is not None:
                close()
            raw.close()
    results = [{"op": "create+complete", "variant": name, **summary} for name, summary in summaries.items()]
    for result in results:
        progress(f"sqlite: {result['variant']}: {result['median_ns'] / 1e3:.1f} µs per create+complete")
    return {"pragmas": list(RAW_PRAGMAS), "results": results}
