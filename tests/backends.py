"""The backends the contract suite runs against: one descriptor each, so adding a backend is one line here.

A descriptor says how to open a fresh, empty store of the backend, which options make it fast for property
tests, and how heavy it is (a durable backend's ``_check()`` reads the whole file, and every write is a commit).
Tests never branch on a backend's name: they ask its descriptor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from responsestore import BaseStore, ResponseStore, SQLiteStore


@attrs.frozen
class Backend:
    """How the tests use one backend."""

    name: str
    #: Opens a fresh, empty store; the path is a fresh directory the backend may use for its files.
    opener: Callable[..., BaseStore]
    #: Options that make the store faster for tests without changing what it promises (e.g. durability).
    fast: Mapping[str, Any] = attrs.field(factory=dict)
    #: How many times lighter property and stress tests run on it than on the memory backend.
    weight: int = 1

    def open(self, path: Path, **kwargs: Any) -> BaseStore:
        """A fresh, empty store of this backend."""
        return self.opener(path, **kwargs)

    def open_fast(self, path: Path, **kwargs: Any) -> BaseStore:
        """A fresh, empty store with the backend's fast options (the test's own options win)."""
        return self.opener(path, **{**self.fast, **kwargs})

    def examples(self, count: int, minimum: int = 10) -> int:
        """A test's example or operation count for this backend: ``count`` divided by its weight."""
        return count if self.weight == 1 else max(minimum, count // self.weight)


def _sqlite(path: Path, **kwargs: Any) -> BaseStore:
    path.mkdir(parents=True, exist_ok=True)
    return SQLiteStore(path / "responses.db", **kwargs)


def _redis(path: Path, **kwargs: Any) -> BaseStore:
    from . import redis_server  # noqa: PLC0415 - skips (fails under CI) when redis-server is missing

    store: BaseStore = redis_server.open_store(**kwargs)
    return store


def _postgres(path: Path, **kwargs: Any) -> BaseStore:
    from . import postgres_server  # noqa: PLC0415 - skips (fails under CI) when PostgreSQL is missing

    store: BaseStore = postgres_server.open_store(**kwargs)
    return store


#: Every backend the contract suite runs against, by name.
DESCRIPTORS: dict[str, Backend] = {
    backend.name: backend
    for backend in (
        Backend("memory", lambda path, **kwargs: ResponseStore(**kwargs)),
        Backend("sqlite", _sqlite, fast={"synchronous": "NORMAL"}, weight=4),
        Backend("redis", _redis, weight=12),
        Backend("postgres", _postgres, weight=12),
    )
}

BACKENDS = list(DESCRIPTORS)


def open_backend(backend: str, path: Path, **kwargs: Any) -> BaseStore:
    """Open a fresh, empty store of ``backend``; ``path`` is a fresh directory for backends that need files."""
    return DESCRIPTORS[backend].open(path, **kwargs)
