"""The backends the contract suite runs against, and how to open a fresh one of each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from responsestore import BaseStore, ResponseStore, SQLiteStore

#: Every backend the contract suite runs against. Later backends add themselves here.
BACKENDS = ["memory", "sqlite"]


def open_backend(backend: str, path: Path, **kwargs: Any) -> BaseStore:
    """Open a fresh, empty store of ``backend``; ``path`` is a fresh directory for backends that need files."""
    if backend == "memory":
        return ResponseStore(**kwargs)
    if backend == "sqlite":
        path.mkdir(parents=True, exist_ok=True)
        return SQLiteStore(path / "responses.db", **kwargs)
    raise AssertionError(f"unknown backend {backend!r}")
