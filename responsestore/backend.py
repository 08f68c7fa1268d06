"""Everything a backend author needs, in one public module: ``from responsestore.backend import ...``.

A backend is a subclass of :class:`BaseStore` that implements a dozen small atomic storage operations; this
module gathers what those operations take, return and promise, so a backend never imports a private
``responsestore._x`` module:

- the base class and what it hands a backend: :class:`BaseStore`, :class:`Stored`, :class:`LogWrite`,
  :data:`Chunk`, :data:`Clock`, :class:`Retention` (``self.retention``);
- the operations themselves, as protocols that state each signature and its promise: :class:`StorageOperations`
  (the abstract methods of :class:`BaseStore`), :class:`ConversationOperations` (to keep conversations) and
  :class:`OptionalOperations` (defaults a backend may override);
- paging: :class:`PageQuery`, :class:`Page`, :func:`paginate_records`, :func:`unknown_cursor`, :data:`MAX_LIMIT`;
- retention: :class:`StoreStats`, :func:`record_size`, :func:`cursor_memory` and the constants every backend
  applies (:data:`MAX_ATTEMPTS`, :data:`CURSOR_MEMORY`, :data:`SWEEP_BATCH`, :data:`TOUCH_LOG`, the
  ``DEFAULT_*`` limits of the constructor), :class:`TouchLog`, the deferred recency of reads every built-in
  backend keeps, and :class:`Tombstones`, where the last removed records stood (for cursors);
- making room within ``max_records`` and ``max_bytes``: :func:`room_for_new` and :func:`room_to_grow` decide
  when to sweep, when to refuse with :class:`~responsestore.StoreFull` and how many least recently used finished
  records to evict, given the store's :class:`Usage` and the backend's two moves (sweep, evict one);
  :func:`fits_new` and :func:`fits_growth` say when they would do nothing (a fast path to ask first);
- registration: :data:`ENTRY_POINT_GROUP`, the entry-point group of plug-in backends (and
  :func:`responsestore.register_backend` for one process);
- conversations: :class:`ConversationState`, :class:`ConversationWrite`, :data:`Positioned`,
  :class:`~responsestore.ConversationRecord`, :data:`MAX_CONVERSATION_ITEMS`;
- records and JSON, for backends that serialize: :class:`~responsestore.ResponseRecord` (``to_dict`` /
  ``from_dict``), :class:`~responsestore.ResponseStatus`, :class:`~responsestore.FrozenDict`,
  :func:`freeze_object`, :func:`to_json_text`.

The errors an operation raises (:class:`~responsestore.StorageError`, :class:`~responsestore.ResponseExists`,
:class:`~responsestore.StoreFull`, :class:`~responsestore.ConversationFull`, :class:`~responsestore.InvalidArgument`)
are in :mod:`responsestore.errors`.

What :class:`BaseStore` offers a backend in return: ``self._now()`` (the store clock's checked reading),
``self._notify(owner, id)`` (wake the waiters of a record the backend removed on its own),
``self._waiters.wake_all()`` (for :meth:`~StorageOperations.close`), ``self.retention`` and ``self.event_limits``.
The page "Writing a backend" of the docs walks through a complete backend written against this module.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import Final, Protocol

from . import _contract, _conversations, _events, _paging, _recency, _registry, _retention
from ._contract import BaseStore, LogWrite, Stored, cursor_memory
from ._conversations import ConversationRecord, ConversationState, ConversationWrite
from ._json import FrozenDict, freeze_object, to_json_text
from ._paging import Page, PageQuery, paginate_records, unknown_cursor
from ._recency import TouchLog
from ._records import ResponseRecord, ResponseStatus
from ._retention import Retention, StoreStats, record_size
from ._room import Usage, fits_growth, fits_new, room_for_new, room_to_grow
from ._tombstones import Tombstones

__all__ = [
    "CURSOR_MEMORY",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_CHAIN_DEPTH",
    "DEFAULT_MAX_EVENTS",
    "DEFAULT_MAX_EVENT_BYTES",
    "DEFAULT_MAX_RECORDS",
    "DEFAULT_TTL",
    "ENTRY_POINT_GROUP",
    "MAX_ATTEMPTS",
    "MAX_CONVERSATION_ITEMS",
    "MAX_LIMIT",
    "SWEEP_BATCH",
    "TOUCH_LOG",
    "BaseStore",
    "Chunk",
    "Clock",
    "ConversationOperations",
    "ConversationRecord",
    "ConversationState",
    "ConversationWrite",
    "FrozenDict",
    "LogWrite",
    "OptionalOperations",
    "Page",
    "PageQuery",
    "Positioned",
    "ResponseRecord",
    "ResponseStatus",
    "Retention",
    "StorageOperations",
    "StoreStats",
    "Stored",
    "Tombstones",
    "TouchLog",
    "Usage",
    "cursor_memory",
    "fits_growth",
    "fits_new",
    "freeze_object",
    "paginate_records",
    "record_size",
    "room_for_new",
    "room_to_grow",
    "to_json_text",
    "unknown_cursor",
]

# The names below are the private modules' own objects, bound again here so that each carries its documentation.

#: One stored chunk of an event log, ``(number of its first event, how many events it holds, its text)``.
Chunk = _events.Chunk

#: A store's clock, which returns the current time in seconds (``time.time`` by default).
Clock = _contract.Clock

#: An item of a conversation as a backend stores it, ``(position, item id, item)``. Positions start at 0 and only
#: grow.
Positioned = _conversations.Positioned

#: How many times a write reads and decides again after its conditional write lost a race, before it gives up with
#: :class:`~responsestore.StorageError` (each lost race means another write succeeded).
MAX_ATTEMPTS: Final = _contract.MAX_ATTEMPTS

#: How many removed records keep their place for cursors; a store capped below that remembers as many as its cap
#: (:func:`cursor_memory`).
CURSOR_MEMORY: Final = _contract.CURSOR_MEMORY

#: How many expired records ``_put_new``, ``_swap`` and ``_remove`` sweep at most, so no single write pays for a
#: large backlog.
SWEEP_BATCH: Final = _retention.SWEEP_BATCH

#: How many recency marks of lock-free reads a backend may queue until its next write applies them.
TOUCH_LOG: Final = _recency.TOUCH_LOG

#: The entry-point group through which an installed package registers its URL schemes for
#: :func:`responsestore.open` (name: the scheme; value: ``"package.module:Class"``).
ENTRY_POINT_GROUP: Final = _registry.ENTRY_POINT_GROUP

#: The most records one page holds (the ``limit`` a :class:`PageQuery` allows).
MAX_LIMIT: Final = _paging.MAX_LIMIT

#: The constructor's default ``ttl``, 30 days, as OpenAI keeps responses.
DEFAULT_TTL: Final = _retention.DEFAULT_TTL

#: The constructor's default ``max_records``.
DEFAULT_MAX_RECORDS: Final = _retention.DEFAULT_MAX_RECORDS

#: The memory store's default ``max_bytes`` (1 GiB); :class:`BaseStore`'s is ``None`` (no bound).
DEFAULT_MAX_BYTES: Final = _retention.DEFAULT_MAX_BYTES

#: The constructor's default ``max_chain_depth``.
DEFAULT_MAX_CHAIN_DEPTH: Final = _contract.DEFAULT_MAX_CHAIN_DEPTH

#: The constructor's default ``max_events`` (events in one response's log).
DEFAULT_MAX_EVENTS: Final = _events.DEFAULT_MAX_EVENTS

#: The constructor's default ``max_event_bytes`` (bytes of event JSON in one response's log).
DEFAULT_MAX_EVENT_BYTES: Final = _events.DEFAULT_MAX_EVENT_BYTES

#: The most items one conversation holds.
MAX_CONVERSATION_ITEMS: Final = _conversations.MAX_CONVERSATION_ITEMS


class StorageOperations(Protocol):
    """The primitive operations every backend implements: exactly the abstract methods of :class:`BaseStore`.

    Each is one atomic step (it fully happens or not at all; no other write interleaves with it) and raises only
    the errors named, or :class:`~responsestore.StorageError` when the engine fails. "Visible" means stored and
    not expired at ``self._now()``. Arguments arrive checked; ids are strings, not always valid ones. The docs'
    page "Writing a backend" states each promise in full.
    """

    def _get(self, owner: str | None, id: str) -> ResponseRecord | None:
        """The visible record or ``None``, marked as used; no exclusive lock, nothing durable written."""

    def _peek(self, owner: str | None, id: str) -> ResponseRecord | None:
        """The visible record or ``None``, not marked as used."""

    def _read(self, owner: str | None, id: str) -> Stored | None:
        """The visible record with its log's size, incarnation and size, read atomically; or ``None``."""

    def _touch(self, records: Sequence[ResponseRecord]) -> None:
        """Mark ``records`` as used, in the order given, skipping missing ones."""

    def _put_new(self, record: ResponseRecord, ttl: float | None, keep: Sequence[ResponseRecord], size: int) -> bool:
        """Sweep a batch, refuse a visible id, keep the chain ``keep`` alive, make room, insert ``record``."""

    def _swap(
        self,
        old: Stored,
        new: ResponseRecord,
        size: int,
        log: LogWrite | None,
        conversation: ConversationWrite | None = None,
    ) -> bool:
        """Sweep a batch; store ``new`` (and ``log``, ``conversation``) if nothing changed since ``old``."""

    def _append(self, old: Stored, log: LogWrite) -> bool:
        """Append ``log``'s chunk if nothing changed since ``old``; the byte rule of ``_swap``, no sweep."""

    def _remove(self, old: Stored) -> bool:
        """Sweep a batch; delete ``old``'s record and log if unchanged, remember its place for cursors."""

    def _leased(self, now: float, limit: int) -> builtins.list[ResponseRecord]:
        """Up to ``limit`` visible active records whose lease expired at or before ``now``, earliest first."""

    def _page(
        self, owner: str | None, query: PageQuery, matches: Callable[[ResponseRecord], bool] | None
    ) -> Page[ResponseRecord]:
        """One page of the owner's visible records from one snapshot, through :func:`paginate_records`."""

    def _events(self, owner: str | None, id: str, after: int) -> tuple[Stored, tuple[Chunk, ...]] | None:
        """The visible record and its log's chunks holding events above ``after``, read together; or ``None``."""

    def _sweep(self, limit: int | None) -> int:
        """Remove up to ``limit`` (``None``: all) expired records, counted as expired; return how many."""

    def _count(self) -> int:
        """How many visible records the store holds."""

    def _stats(self) -> StoreStats:
        """One consistent snapshot of the counts, expired records not yet swept counted as expired."""

    def close(self) -> None:
        """Release everything and wake the waiters; afterwards every operation raises ``StorageError``."""

    def _check(self) -> None:
        """Assert every internal invariant (the tests call it after every step)."""


class ConversationOperations(Protocol):
    """The operations a backend implements to keep conversations (without them, every one raises ``StorageError``).

    Atomic and "visible" as for :class:`StorageOperations`; a conversation is visible until its
    ``ConversationState.expires_at``. ``_conversation_held`` and ``_sweep_conversations`` have working defaults.
    """

    def _conversation(self, owner: str | None, id: str) -> ConversationState | None:
        """The visible conversation, or ``None``."""

    def _conversation_items(
        self, owner: str | None, id: str, after: int | None, count: int, *, descending: bool
    ) -> tuple[ConversationState, builtins.list[Positioned]] | None:
        """The conversation and up to ``count`` of its items beyond position ``after``, read together."""

    def _conversation_item(self, owner: str | None, id: str, item_id: str) -> Positioned | None:
        """The item ``item_id`` of the visible conversation, or ``None``."""

    def _conversation_held(self, owner: str | None, id: str, item_ids: Sequence[str]) -> set[str]:
        """Which of ``item_ids`` the visible conversation holds (default: one ``_conversation_item`` each)."""

    def _conversation_put(self, state: ConversationState, items: Sequence[Positioned]) -> None:
        """Store a new conversation with its first items; ``ConversationFull`` at ``max_records`` visible ones."""

    def _conversation_swap(self, write: ConversationWrite) -> bool:
        """Apply ``write`` if the conversation is visible at ``write.old``'s version; else ``False``."""

    def _conversation_remove(self, old: ConversationState) -> bool:
        """Delete the conversation and its items if visible at ``old``'s version; else ``False``."""

    def _sweep_conversations(self) -> int:
        """Remove every expired conversation; return how many (default: 0)."""


class OptionalOperations(Protocol):
    """Operations :class:`BaseStore` implements with a default a backend may override (to be faster, or to say more)."""

    def _chain(self, owner: str | None, id: str, limit: int) -> builtins.list[ResponseRecord]:
        """The visible records reached along ``previous_response_id``, newest first (default: ``_peek`` each)."""

    def _find_newest(
        self, owner: str | None, text: str, matches: Callable[[ResponseRecord], bool]
    ) -> ResponseRecord | None:
        """The newest visible record of ``owner`` that ``matches`` (default: ``_page`` after ``_page``)."""

    def _log_of(self, owner: str | None, stored: Stored) -> tuple[Stored, tuple[Chunk, ...]] | None:
        """The whole log of ``stored``'s record (default: ``_events`` from the start)."""

    @property
    def closed(self) -> bool:
        """Whether ``close`` has been called (default: always ``False``)."""

    @property
    def poll_interval(self) -> float | None:
        """How often waiters re-check when writes made elsewhere cannot wake them (default: ``None``)."""
