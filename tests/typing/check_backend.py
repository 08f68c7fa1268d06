"""Type-checked with ``mypy --strict``: every backend satisfies the protocols of ``responsestore.backend``.

So the protocols' signatures cannot drift from what ``BaseStore`` declares and what the backends implement.
"""

from __future__ import annotations

from responsestore import BaseStore, RedisStore, ResponseStore, SQLiteStore
from responsestore.backend import ConversationOperations, OptionalOperations, StorageOperations


def operations(store: BaseStore) -> tuple[StorageOperations, ConversationOperations, OptionalOperations]:
    return store, store, store


def backends(
    memory: ResponseStore, sqlite: SQLiteStore, redis: RedisStore
) -> tuple[StorageOperations, ConversationOperations, StorageOperations, ConversationOperations, StorageOperations]:
    return memory, memory, sqlite, sqlite, redis
