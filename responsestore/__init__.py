"""responsestore: a thread-safe, bounded store for OpenAI Responses API objects.

Servers that implement the Responses API keep response objects to answer ``GET /v1/responses/{id}``, to list a
response's input items, to continue a conversation from ``previous_response_id`` and to cancel background work.
:class:`ResponseStore` keeps them: immutable records, the OpenAI lifecycle, cursor paging and conversation
chains, safe to share between threads.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from ._contract import BaseStore
from ._conversations import MAX_CONVERSATION_ITEMS, ConversationRecord
from ._events import DeltaRun
from ._json import FrozenDict
from ._memory import ResponseStore
from ._paging import Page
from ._records import ResponseRecord, ResponseStatus
from ._registry import backend_schemes, open, register_backend  # noqa: A004 - responsestore.open(url), as in dbm.open
from ._retention import StoreStats, Sweeper, SweeperStats
from ._rwlock import RWLock
from ._sqlite import SQLiteStore
from ._waiting import Subscription
from .errors import (
    ChainError,
    ConversationFull,
    ConversationNotFound,
    EventLogClosed,
    EventLogFull,
    InvalidArgument,
    InvalidTransition,
    ItemNotFound,
    LeaseLost,
    LockError,
    ResponseExists,
    ResponseNotFound,
    ResponseStoreError,
    SequenceConflict,
    StorageError,
    StoreFull,
    VersionConflict,
    WaitTimeout,
)

if TYPE_CHECKING:
    from ._postgres import PostgresStore
    from ._redis import RedisStore


def __getattr__(name: str) -> Any:
    """``RedisStore`` and ``PostgresStore``, imported on first use: ``import responsestore`` imports no driver."""
    if name == "RedisStore":
        from ._redis import RedisStore  # noqa: PLC0415 - lazy: redis-py is an optional extra

        return RedisStore
    if name == "PostgresStore":
        from ._postgres import PostgresStore  # noqa: PLC0415 - lazy: psycopg is an optional extra

        return PostgresStore
    raise AttributeError(f"module 'responsestore' has no attribute {name!r}")


try:
    __version__ = version("responsestore")
except PackageNotFoundError:  # pragma: no cover - only when imported from a source tree never installed
    __version__ = "0+unknown"

__all__ = [
    "MAX_CONVERSATION_ITEMS",
    "BaseStore",
    "ChainError",
    "ConversationFull",
    "ConversationNotFound",
    "ConversationRecord",
    "DeltaRun",
    "EventLogClosed",
    "EventLogFull",
    "FrozenDict",
    "InvalidArgument",
    "InvalidTransition",
    "ItemNotFound",
    "LeaseLost",
    "LockError",
    "Page",
    "PostgresStore",
    "RWLock",
    "RedisStore",
    "ResponseExists",
    "ResponseNotFound",
    "ResponseRecord",
    "ResponseStatus",
    "ResponseStore",
    "ResponseStoreError",
    "SQLiteStore",
    "SequenceConflict",
    "StorageError",
    "StoreFull",
    "StoreStats",
    "Subscription",
    "Sweeper",
    "SweeperStats",
    "VersionConflict",
    "WaitTimeout",
    "__version__",
    "backend_schemes",
    "open",
    "register_backend",
]
