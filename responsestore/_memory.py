"""``ResponseStore``: the in-memory backend, and the default.

Storage is one dict per owner from id to an entry (the record, its ordering key, its expiry, its recency tick and
its event log), so a lookup builds no key tuple (owner ``None``, the common case, has its own map, kept even when
empty, and beside it a map from id to the record alone, which ``get`` reads), plus one sorted index of ordering
keys ``(created_at, seq, id)`` per owner, so a first page or a cursor step costs O(log n) and never sorts. ``seq``
is a store-wide counter that breaks ``created_at`` ties in creation order.

Retention uses two lazy min-heaps: one of expiry times, one of recency ticks of finished records. A heap item
may be stale (the entry was refreshed, used again, or removed since); stale items are recognised when they reach
the top and re-pushed or dropped, so refreshing or touching an entry never searches a heap. A heap item names its
entry by ``(seq, owner, id)``, not by reference, so a removed record is released at once, not when its stale items
leave the heaps.

Recency without a race: ticks are drawn only under the write lock. A read that uses a record (``get``,
``input_items``, ``chain``) takes no lock; it appends the record to the *touch log*, a bounded deque (an append is
atomic), and the next write drains the log in order, giving each record's entry its tick before it decides
anything. So the eviction order is exactly least-recently-used, as if every read had ticked at once. The log keeps
the last :data:`TOUCH_LOG` reads: a store that is only read for longer than that forgets the oldest of those reads.

Expiry without reading each record's: the store keeps a *horizon*, a time before which no live record expires
(the expiry heap's top), and counts its raises. While the clock reads before it and no raise happens meanwhile, a
lock-free read of owner ``None``'s records need not look at the record's own expiry (see ``get``).

Locking: every atomic storage operation that writes runs under the write side of an
:class:`~responsestore.RWLock`; ``list`` pages, event reads, chains, ``len`` and ``stats`` under the read side.
``get``, ``in`` and the reads that writes decide on take no lock: a record is immutable and a dict lookup is
atomic, so they see either the old or the new record, never a torn one; a conditional write re-checks under the
lock what it was decided on (see the concurrency page of the docs).
"""

from __future__ import annotations

import datetime
import heapq
import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from sortedcontainers import SortedDict, SortedList

from ._contract import DEFAULT_MAX_CHAIN_DEPTH, BaseStore, Clock, LogWrite, Stored
from ._conversations import ConversationState, ConversationWrite, Positioned
from ._events import DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_EVENTS, Chunk
from ._json import FrozenDict
from ._paging import Page, PageQuery, paginate_records, unknown_cursor
from ._recency import TouchLog
from ._records import ResponseRecord, ResponseStatus
from ._retention import DEFAULT_MAX_BYTES, DEFAULT_MAX_RECORDS, DEFAULT_TTL, SWEEP_BATCH, StoreStats, record_size
from ._room import Usage, fits_growth, fits_new, room_for_new, room_to_grow
from ._rwlock import RWLock
from ._tombstones import Tombstones
from .errors import ConversationFull, InvalidArgument, ResponseExists, StorageError

__all__ = ["ResponseStore"]

_NO_ENTRIES: dict[str, Any] = {}  # what get looks an id up in for an owner with no records (never written)

_Key = tuple[str | None, str]  # (owner, id)
_OrderKey = tuple[float, int, str]  # (created_at, seq, id)
_HeapItem = tuple[float, int, str | None, str]  # (expiry time or recency tick, seq, owner, id)

_time = time.time
_INF = float("inf")

_COMPACT_SLACK = 1024


class _Conversation:
    """One stored conversation: its state, its items by position and their positions by id (write lock only)."""

    __slots__ = ("ids", "items", "state")

    def __init__(self, state: ConversationState) -> None:
        self.state = state
        self.items: Any = SortedDict()  # position -> (position, item id, item)
        self.ids: dict[str, int] = {}  # item id -> position

    def add(self, items: Iterable[Positioned]) -> None:
        for positioned in items:
            self.items[positioned[0]] = positioned
            self.ids[positioned[1]] = positioned[0]


class _Read:
    """The fields of an entry that a lock-free read touches.

    A base class's slots come first in an instance (a class's own slots are laid out in sorted order), so these
    share a cache line with the entry's reference count, which every read touches too: a read of a large store
    misses the cache on the entry once, not twice.
    """

    __slots__ = ("expires_at", "record")


class _Entry(_Read):
    """One stored record and its bookkeeping (mutable; only the store touches it, under its write lock)."""

    __slots__ = (
        "chunks",
        "event_bytes",
        "events",
        "heap_expiry",
        "log_bytes",
        "order",
        "size",
        "tick",
        "ttl",
    )

    def __init__(self, record: ResponseRecord, order: _OrderKey, ttl: float | None, tick: int, size: int) -> None:
        self.record = record
        self.order = order  # order[1], the creation sequence, is also the entry's incarnation
        self.ttl = ttl
        self.expires_at = None if ttl is None else record.created_at + ttl
        self.heap_expiry = self.expires_at  # the time of this entry's one current item in the expiry heap
        self.tick = tick
        self.size = size  # the record's size (record_size)
        self.chunks: list[Chunk] | None = None  # the event log, created by the first write of events
        self.events = 0  # how many events the log holds
        self.event_bytes = 0  # their size as counted against max_event_bytes
        self.log_bytes = 0  # the bytes of the chunks' text

    @property
    def bytes(self) -> int:
        """What the entry counts for against ``max_bytes``: its record and its log."""
        return self.size + self.log_bytes


class ResponseStore(BaseStore):
    """A thread-safe, in-memory store of OpenAI Responses API objects, bounded by TTL and capacity.

    Every public method is safe to call from any thread. Each mutation is atomic: other threads see the store
    before it or after it, never in between. Each ``list`` page is a consistent snapshot.

    Args:
        ttl: Seconds (or a ``timedelta``) a record lives after creation; ``None`` keeps records until deleted
            or evicted. Default 30 days, as OpenAI keeps responses.
        max_records: The most records the store holds; at the cap, creating evicts the least recently used
            finished record. ``None`` removes the cap. Default 10 000.
        clock: Returns the current time in seconds (``time.time`` by default); tests pass a fake clock.
        max_chain_depth: The longest ``previous_response_id`` chain ``conversation`` will follow.
        max_events: The most events one response's event log holds (default 1 000 000).
        max_event_bytes: The most bytes of event JSON one response's log holds, counted as given (default 64 MiB).
        max_bytes: The most bytes the records and their event logs take, as stored (default 1 GiB; ``None``:
            no bound); at the bound, creating evicts least recently used finished records.
    """

    _reads_any_string = True  # a dict lookup

    def __init__(
        self,
        *,
        ttl: float | datetime.timedelta | None = DEFAULT_TTL,
        max_records: int | None = DEFAULT_MAX_RECORDS,
        clock: Clock = time.time,
        max_chain_depth: int = DEFAULT_MAX_CHAIN_DEPTH,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
    ) -> None:
        super().__init__(
            ttl=ttl,
            max_records=max_records,
            clock=clock,
            max_chain_depth=max_chain_depth,
            max_events=max_events,
            max_event_bytes=max_event_bytes,
            max_bytes=max_bytes,
        )
        self._lock = RWLock()
        self._closed = False
        self._none: dict[str, _Entry] = {}  # owner None's map, always present (the fast path of get)
        self._none_records: dict[str, ResponseRecord] = {}  # ... and the records of its entries (get reads these)
        self._maps: dict[str | None, dict[str, _Entry]] = {None: self._none}  # owner -> id -> entry
        self._size = 0
        # The default clock is read without the checks a custom one needs (time.time returns a finite float).
        self._default_clock = clock is _time
        self._index: dict[str | None, Any] = {}  # owner -> SortedList[_OrderKey]
        self._seq = itertools.count()
        self._ticks = itertools.count()
        self._touched: TouchLog[ResponseRecord] = TouchLog()  # the records read since the last write
        self._mark_used = self._touched.mark
        self._expiry_heap: list[_HeapItem] = []
        self._lru_heap: list[_HeapItem] = []  # finished records only
        # No live entry expires before the horizon (at most the expiry heap's top; see get). Lowered before an
        # entry that expires earlier is published, raised (and counted) only after the entries it covered were
        # unlinked. With a custom clock get never uses it: it stays -inf.
        self._horizon = _INF if self._default_clock else -_INF
        self._raises = 0  # counts the raises of the horizon (each counted before the new horizon is set)
        # A page walk may hold a cursor whose record another thread removed meanwhile; remembering where the
        # last removed records stood lets such a walk go on instead of failing (see cursor_memory).
        self._removed: Tombstones[_Key, _OrderKey] = Tombstones(self.retention.max_records)
        self._by_status = dict.fromkeys(ResponseStatus, 0)
        self._created = self._deleted = self._evicted = self._expired = 0
        self._bytes = 0  # what every entry counts for against max_bytes
        self._active_bytes = 0  # ... those of queued and in-progress records
        self._leases: dict[int, _Entry] = {}  # incarnation -> entry, for active records that hold a lease
        self._conversations: dict[_Key, _Conversation] = {}

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> ResponseStore:
        """``memory://``: a new, empty store (nothing may follow the ``//``).

        Raises:
            InvalidArgument: something follows ``memory://``.
        """
        if url.partition("://")[2]:
            raise InvalidArgument(f"a memory URL is exactly 'memory://', not {url[:200]!r}")
        return cls(**kwargs)

    @property
    def lock(self) -> RWLock:
        """The store's lock. Hold ``lock.read()`` to make several reads one consistent snapshot."""
        return self._lock

    def get(self, id: str, *, owner: str | None = None) -> ResponseRecord:
        """Return the response ``id`` (the hot path of a server: no lock, one lookup, one append to a log).

        Raises:
            ResponseNotFound: no such response for this owner.
            InvalidArgument: ``id`` or ``owner`` has the wrong type, or the clock is broken.
        """
        # BaseStore.get with _get inlined: a `get` is most of a server's traffic. Anything unusual (a missing or
        # expired record, an argument of the wrong type, a custom clock) takes BaseStore.get, which checks
        # everything and raises the right error.
        #
        # The horizon spares reading the record's expiry. No live record expires before it: a record that expires
        # sooner lowers it before it is published, and it is raised only after the records it covered are gone.
        # The raises are counted first; counted the same before the lookup and after the horizon is read, none
        # happened in between, so the horizon read was at or before the expiry of the record found (live when it
        # was found), and the clock, read in between, before both. Owner None's records are looked up in a map
        # of records, not of entries: in a large store that spares a cache miss on the entry.
        if owner is None:
            raises = self._raises
            try:
                record = self._none_records[id]
            except (KeyError, TypeError):  # missing, or an unhashable id
                return super().get(id)
            if _time() < self._horizon and self._raises is raises:
                self._mark_used(record)
                return record
        # Past the horizon (a record has expired and no write has swept it yet) or a custom clock: the entry's own
        # expiry decides, as it is read after the entry is found.
        try:
            entry = self._none[id] if owner is None else self._maps[owner][id]
        except (KeyError, TypeError):  # missing, or an unhashable id or owner
            return super().get(id, owner=owner)
        expires_at = entry.expires_at
        if expires_at is not None and (not self._default_clock or expires_at <= _time()):
            return super().get(id, owner=owner)
        record = entry.record
        self._mark_used(record)
        return record

    def close(self) -> None:
        """Drop every record; later calls raise :class:`~responsestore.StorageError`. Idempotent.

        Threads waiting in ``wait``/``stream`` are woken and get :class:`~responsestore.StorageError`.
        """
        with self._lock.write():
            if self._closed:
                return
            self._closed = True
            self._none = {}
            self._none_records = {}
            self._maps = {None: self._none}
            self._size = 0
            self._index = {}
            self._touched.clear()
            self._expiry_heap = []
            self._lru_heap = []
            self._raise_horizon()
            self._removed.clear()
            self._leases = {}
            self._conversations = {}
            self._bytes = self._active_bytes = 0
        self._waiters.wake_all()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    def __repr__(self) -> str:
        return f"<ResponseStore {'closed' if self._closed else 'open'} at {id(self):#x}>"

    def _refuse_if_closed(self) -> None:
        if self._closed:
            raise StorageError(f"the store {self!r} is closed")

    # ------------------------------------------------------------------ atomic storage operations

    def _entry(self, owner: str | None, id: str) -> _Entry | None:
        """The visible entry ``(owner, id)``, or ``None``."""
        entry = self._lookup(owner, id)
        if entry is None:
            if self._closed:
                self._refuse_if_closed()
            return None
        expires_at = entry.expires_at
        if expires_at is not None and expires_at <= self._now():
            return None
        return entry

    def _lookup(self, owner: str | None, id: str) -> _Entry | None:
        """The stored entry ``(owner, id)``, visible or not, or ``None``."""
        entries = self._none if owner is None else self._maps.get(owner)
        return None if entries is None else entries.get(id)

    def _get(self, owner: str | None, id: str) -> ResponseRecord | None:
        if owner is None:  # as in get
            raises = self._raises
            record = self._none_records.get(id)
            if record is not None and _time() < self._horizon and self._raises is raises:
                self._mark_used(record)
                return record
        entry = self._entry(owner, id)
        if entry is None:
            return None
        record = entry.record
        self._mark_used(record)
        return record

    def _peek(self, owner: str | None, id: str) -> ResponseRecord | None:
        entry = self._entry(owner, id)
        return None if entry is None else entry.record

    def _read(self, owner: str | None, id: str) -> Stored | None:
        entry = self._entry(owner, id)
        if entry is None:
            return None
        # Unlocked, so possibly torn between the record and the log size: the conditional write that follows
        # re-checks both under the lock, so a torn read only costs a retry. The log's size is read first: a
        # write stores the log before the record, so a record read after it never has fewer events than read.
        events, event_bytes = entry.events, entry.event_bytes
        return Stored(entry.record, events, event_bytes, entry.order[1], entry.size)

    def _chain(self, owner: str | None, id: str, limit: int) -> list[ResponseRecord]:
        with self._lock.read():  # one snapshot: no writer changes the chain half-way through the walk
            self._refuse_if_closed()
            entries = self._none if owner is None else self._maps.get(owner)
            if entries is None:
                return []
            now = self._now()  # one reading for the whole walk
            chain: list[ResponseRecord] = []
            seen: set[str] = set()
            get, append, add = entries.get, chain.append, seen.add
            next_id: str | None = id
            for _ in range(limit):
                entry = get(next_id)  # type: ignore[arg-type]  # never None here
                if entry is None or (entry.expires_at is not None and entry.expires_at <= now):
                    break
                record = entry.record
                append(record)
                add(record.id)
                next_id = record.previous_response_id
                if next_id is None or next_id in seen:
                    break
            return chain

    def _touch(self, records: Sequence[ResponseRecord]) -> None:
        self._touched.mark_all(records)

    def _put_new(self, record: ResponseRecord, ttl: float | None, keep: Sequence[ResponseRecord], size: int) -> bool:
        with self._lock.write():
            now = self._begin_write()
            stale = self._lookup(record.owner, record.id)
            if stale is not None:
                if stale.expires_at is None or stale.expires_at > now:
                    raise ResponseExists(record.id)
                self._unlink(stale)  # expired, not yet swept: it goes now, as an expiry
                self._expired += 1
            kept: list[_Entry] = []
            for ancestor in keep:
                entry = self._entry(ancestor.owner, ancestor.id)
                if entry is None or entry.record.version != ancestor.version:
                    return False
                kept.append(entry)
            if not fits_new(self.retention, self._size, self._bytes, size):
                self._room_for_new(record, size, kept, now)
            for entry in reversed(kept):
                self._refresh(entry, record.created_at)
            self._insert(record, ttl, size)
            return True

    def _room_for_new(self, record: ResponseRecord, size: int, kept: list[_Entry], now: float) -> None:
        """Sweep and evict so that ``record`` fits, sparing ``kept`` (:func:`~responsestore.backend.room_for_new`)."""
        protected = {id(entry) for entry in kept}
        skipped: list[_HeapItem] = []

        def sweep() -> Usage:
            self._sweep_locked(None, now)
            return self._usage()

        try:
            room_for_new(
                self.retention,
                record.id,
                size,
                self._usage(),
                spared=[entry.bytes for entry in kept if entry.record.is_terminal],
                sweep=sweep,
                evict=lambda: self._evict_one(protected, skipped),
            )
        finally:
            self._unskip(skipped)

    def _usage(self) -> Usage:
        return Usage(self._size, self._bytes, self._active_count(), self._active_bytes)

    def _active_count(self) -> int:
        by_status = self._by_status
        return by_status[ResponseStatus.QUEUED] + by_status[ResponseStatus.IN_PROGRESS]

    def _swap(
        self,
        old: Stored,
        new: ResponseRecord,
        size: int,
        log: LogWrite | None,
        conversation: ConversationWrite | None = None,
    ) -> bool:
        with self._lock.write():
            now = self._begin_write()
            entry = self._current(old, now)
            if entry is None:
                return False
            in_conversation = None if conversation is None else self._conversation_at(conversation, now)
            if conversation is not None and in_conversation is None:
                return False
            grows = size - entry.size + self._log_growth(entry, log)
            self._make_room(entry, grows, new.is_terminal)
            previous = entry.record
            self._account(entry, -1)
            if log is not None:
                # Stored before the new record: a lock-free reader that sees the new status finds the events too.
                self._write_log(entry, log)
            entry.size = size
            entry.record = new
            if new.owner is None:
                self._none_records[new.id] = new  # after the log: a reader that sees the new record sees it too
            self._account(entry, 1)
            entry.tick = tick = next(self._ticks)
            if in_conversation is not None and conversation is not None:
                self._conversation_apply(in_conversation, conversation)
            self._by_status[previous.status] -= 1
            self._by_status[new.status] += 1
            if new.is_terminal and not previous.is_terminal:
                heapq.heappush(self._lru_heap, (tick, entry.order[1], new.owner, new.id))
            return True

    def _append(self, old: Stored, log: LogWrite) -> bool:
        with self._lock.write():
            self._refuse_if_closed()
            entry = self._current(old, self._now())
            if entry is None:
                return False
            self._make_room(entry, self._log_growth(entry, log), entry.record.is_terminal)
            self._account(entry, -1)
            self._write_log(entry, log)
            self._account(entry, 1)
            return True

    def _remove(self, old: Stored) -> bool:
        with self._lock.write():
            self._begin_write()
            record = old.record
            entry = self._entry(record.owner, record.id)
            if entry is None or entry.order[1] != old.incarnation or entry.record.version != record.version:
                return False
            self._unlink(entry)
            self._deleted += 1
            return True

    def _leased(self, now: float, limit: int) -> list[ResponseRecord]:
        with self._lock.read():
            self._refuse_if_closed()
            due = [
                entry
                for entry in self._leases.values()
                if entry.record.lease_expires_at is not None
                and entry.record.lease_expires_at <= now
                and (entry.expires_at is None or entry.expires_at > now)
            ]
            due.sort(key=lambda entry: (entry.record.lease_expires_at, entry.order[1]))
            return [entry.record for entry in due[:limit]]

    def _page(
        self, owner: str | None, query: PageQuery, matches: Callable[[ResponseRecord], bool] | None
    ) -> Page[ResponseRecord]:
        with self._lock.read():
            self._refuse_if_closed()
            now = self._now()
            return paginate_records(
                lambda cursor, descending: self._scan(owner, cursor, descending, now), query, matches
            )

    def _events(self, owner: str | None, id: str, after: int) -> tuple[Stored, tuple[Chunk, ...]] | None:
        with self._lock.read():
            entry = self._entry(owner, id)
            if entry is None:
                return None
            stored = Stored(entry.record, entry.events, entry.event_bytes, entry.order[1], entry.size)
            chunks = entry.chunks
            if not chunks or entry.events - 1 <= after:
                return stored, ()
            start = len(chunks)
            while start > 0 and chunks[start - 1][0] + chunks[start - 1][1] - 1 > after:
                start -= 1
            return stored, tuple(chunks[start:])

    def _sweep(self, limit: int | None) -> int:
        with self._lock.write():
            self._refuse_if_closed()
            return self._sweep_locked(limit, self._now())

    def _count(self) -> int:
        with self._lock.read():
            self._refuse_if_closed()
            return self._size - len(self._pending_expired())

    def _stats(self) -> StoreStats:
        with self._lock.read():
            self._refuse_if_closed()
            by_status = dict(self._by_status)
            pending = self._pending_expired()
            for entry in pending:
                by_status[entry.record.status] -= 1
            return StoreStats(
                records=self._size - len(pending),
                by_status=FrozenDict({status.value: count for status, count in by_status.items()}),
                created=self._created,
                deleted=self._deleted,
                evicted=self._evicted,
                expired=self._expired + len(pending),
                bytes=self._bytes - sum(entry.bytes for entry in pending),
            )

    # ------------------------------------------------------------------ conversations

    def _live_conversation(self, owner: str | None, id: str, now: float) -> _Conversation | None:
        found = self._conversations.get((owner, id))
        if found is None or (found.state.expires_at is not None and found.state.expires_at <= now):
            return None
        return found

    def _conversation(self, owner: str | None, id: str) -> ConversationState | None:
        with self._lock.read():
            self._refuse_if_closed()
            found = self._live_conversation(owner, id, self._now())
            return None if found is None else found.state

    def _conversation_items(
        self, owner: str | None, id: str, after: int | None, count: int, *, descending: bool
    ) -> tuple[ConversationState, list[Positioned]] | None:
        with self._lock.read():
            self._refuse_if_closed()
            found = self._live_conversation(owner, id, self._now())
            if found is None:
                return None
            if after is None:
                positions = found.items.irange(reverse=descending)
            elif descending:
                positions = found.items.irange(maximum=after, inclusive=(True, False), reverse=True)
            else:
                positions = found.items.irange(minimum=after, inclusive=(False, True))
            return found.state, [found.items[p] for p in itertools.islice(positions, count)]

    def _conversation_item(self, owner: str | None, id: str, item_id: str) -> Positioned | None:
        with self._lock.read():
            self._refuse_if_closed()
            found = self._live_conversation(owner, id, self._now())
            position = None if found is None else found.ids.get(item_id)
            return None if found is None or position is None else found.items[position]

    def _conversation_held(self, owner: str | None, id: str, item_ids: Sequence[str]) -> set[str]:
        with self._lock.read():
            self._refuse_if_closed()
            found = self._live_conversation(owner, id, self._now())
            return set() if found is None else {item_id for item_id in item_ids if item_id in found.ids}

    def _conversation_put(self, state: ConversationState, items: Sequence[Positioned]) -> None:
        with self._lock.write():
            now = self._begin_write()
            record = state.record
            limit = self.retention.max_records
            if limit is not None and len(self._conversations) >= limit:
                self._sweep_conversations_locked(now)
                if len(self._conversations) >= limit:
                    raise ConversationFull(record.id, "max_records", limit)
            conversation = _Conversation(state)
            conversation.add(items)
            self._conversations[record.owner, record.id] = conversation

    def _conversation_at(self, write: ConversationWrite, now: float) -> _Conversation | None:
        """The conversation ``write`` changes if its condition holds, else ``None`` (under the write lock)."""
        old = write.old.record
        found = self._live_conversation(old.owner, old.id, now)
        return found if found is not None and found.state.record.version == old.version else None

    @staticmethod
    def _conversation_apply(found: _Conversation, write: ConversationWrite) -> None:
        found.state = write.new
        if write.remove is not None:
            del found.items[found.ids.pop(write.remove)]
        found.add(write.append)

    def _conversation_swap(self, write: ConversationWrite) -> bool:
        with self._lock.write():
            found = self._conversation_at(write, self._begin_write())
            if found is None:
                return False
            self._conversation_apply(found, write)
            return True

    def _conversation_remove(self, old: ConversationState) -> bool:
        with self._lock.write():
            now = self._begin_write()
            record = old.record
            found = self._live_conversation(record.owner, record.id, now)
            if found is None or found.state.record.version != record.version:
                return False
            del self._conversations[record.owner, record.id]
            return True

    def _sweep_conversations(self) -> int:
        with self._lock.write():
            self._refuse_if_closed()
            return self._sweep_conversations_locked(self._now())

    def _sweep_conversations_locked(self, now: float) -> int:
        expired = [
            key
            for key, found in self._conversations.items()
            if found.state.expires_at is not None and found.state.expires_at <= now
        ]
        for key in expired:
            del self._conversations[key]
        return len(expired)

    # ------------------------------------------------------------------ helpers (under the write lock)

    def _begin_write(self) -> float:
        """Start a write that may sweep; return the clock's reading.

        Refuses if closed, applies the reads' recency marks, and sweeps a batch of expired records if one is due.
        """
        self._refuse_if_closed()
        if self._touched:
            self._drain_touches()
        now = self._now()
        if self._expiry_heap and self._expiry_heap[0][0] <= now:
            self._sweep_locked(SWEEP_BATCH, now)
        return now

    def _current(self, old: Stored, now: float) -> _Entry | None:
        """The entry of ``old`` if still visible at ``now``: the same incarnation, version and log size as read."""
        record = old.record
        entry = self._lookup(record.owner, record.id)
        if entry is None or entry.order[1] != old.incarnation or entry.record.version != record.version:
            return None
        if entry.expires_at is not None and entry.expires_at <= now:
            return None
        if entry.events != old.events:
            return None
        return entry

    @staticmethod
    def _log_growth(entry: _Entry, log: LogWrite | None) -> int:
        if log is None:
            return 0
        return log.stored - entry.log_bytes if log.replace else log.stored

    def _make_room(self, entry: _Entry, grows: int, finishing: bool) -> None:
        """Evict finished records (not ``entry``) so that ``entry`` may grow by ``grows`` bytes within max_bytes.

        Raises:
            StoreFull: there is not enough to evict and ``entry`` is not finishing (nothing was changed).
        """
        if fits_growth(self.retention, self._bytes + grows, grows):
            return  # room_to_grow would do nothing: spare building its arguments on every write
        entry_bytes = entry.bytes if entry.record.is_terminal else 0
        skipped: list[_HeapItem] = []
        try:
            room_to_grow(
                self.retention,
                entry.record.id,
                total=self._bytes + grows,
                grows=grows,
                others=self._bytes - self._active_bytes - entry_bytes,
                finishing=finishing,
                evict=lambda: self._evict_one({id(entry)}, skipped),
            )
        finally:
            self._unskip(skipped)

    @staticmethod
    def _write_log(entry: _Entry, log: LogWrite) -> None:
        if log.replace or entry.chunks is None:
            entry.chunks = [(log.first, log.events, log.text)]
            entry.log_bytes = log.stored
        else:
            entry.chunks.append((log.first, log.events, log.text))
            entry.log_bytes += log.stored
        entry.event_bytes = log.event_bytes
        entry.events = log.first + log.events

    def _account(self, entry: _Entry, sign: int) -> None:
        """Add (``sign`` 1) or take away (-1) ``entry``'s bytes and lease from the store's totals and lease index."""
        size = sign * entry.bytes
        self._bytes += size
        record = entry.record
        if not record.is_terminal:
            self._active_bytes += size
            if record.lease_expires_at is not None:
                if sign > 0:
                    self._leases[entry.order[1]] = entry
                else:
                    self._leases.pop(entry.order[1], None)

    def _drain_touches(self) -> None:
        """Give every entry read since the last write its recency tick, in the order of the reads.

        The log holds the records read. Each goes to the entry stored under its owner and id, if that entry was
        created with it (the same ``created_at``): a record read is still stored, or a newer version of it, since
        every write drains the log first; the one exception, an expired record replaced by a new one of the same
        id in one write, is told apart by its creation time.
        """
        ticks = self._ticks
        none, maps = self._none, self._maps
        for record in self._touched.take():
            owner = record.owner
            entries = none if owner is None else maps.get(owner)
            entry = None if entries is None else entries.get(record.id)
            if entry is not None and entry.order[0] == record.created_at:
                entry.tick = next(ticks)

    def _refresh(self, entry: _Entry, now: float) -> None:
        """Restart the expiry of ``entry`` from ``now`` and mark it as used."""
        if entry.ttl is not None:
            expires_at = now + entry.ttl
            if entry.heap_expiry is None or expires_at < entry.heap_expiry:
                # The clock stepped back: the heap must learn the earlier time now (the old item goes stale), and
                # the horizon before the entry's expiry moves.
                entry.heap_expiry = expires_at
                heapq.heappush(self._expiry_heap, (expires_at, entry.order[1], entry.record.owner, entry.order[2]))
                self._lower_horizon(expires_at)
            # Otherwise the heap keeps the earlier time, and the sweep re-pushes the entry when it gets there.
            entry.expires_at = expires_at
        entry.tick = next(self._ticks)

    def _insert(self, record: ResponseRecord, ttl: float | None, size: int) -> None:
        owner, id = record.owner, record.id
        seq = next(self._seq)
        order = (record.created_at, seq, id)
        index = self._index.get(owner)
        if index is None:
            index = self._index[owner] = SortedList()
        index.add(order)
        entry = _Entry(record, order, ttl, next(self._ticks), size)
        self._account(entry, 1)
        if entry.expires_at is not None:
            heapq.heappush(self._expiry_heap, (entry.expires_at, seq, owner, id))
            self._lower_horizon(entry.expires_at)  # before the entry is published below
        self._removed.revive((owner, id))
        entries = self._maps.get(owner)
        if entries is None:
            entries = self._maps[owner] = {}
        entries[id] = entry
        if owner is None:
            self._none_records[id] = record  # published last: get looks here first
        self._size += 1
        self._by_status[record.status] += 1
        self._created += 1

    def _unlink(self, entry: _Entry) -> None:
        record = entry.record
        owner = record.owner
        key = (owner, record.id)
        entries = self._maps[owner]
        if owner is None:
            del self._none_records[record.id]
        del entries[record.id]
        if not entries and owner is not None:
            del self._maps[owner]
        self._size -= 1
        index = self._index[record.owner]
        index.remove(entry.order)
        if not index:
            del self._index[record.owner]
        self._by_status[record.status] -= 1
        self._account(entry, -1)
        entry.chunks = None  # the event log goes with its response
        self._notify(record.owner, record.id)  # whoever waits on it learns it is gone
        self._removed.bury(key, entry.order)
        if len(self._expiry_heap) + len(self._lru_heap) > 2 * self._size + _COMPACT_SLACK:
            self._compact()

    def _compact(self) -> None:
        """Rebuild both heaps from the live entries, dropping stale items (amortized O(1) per removal)."""
        entries = [entry for owned in self._maps.values() for entry in owned.values()]
        for entry in entries:
            entry.heap_expiry = entry.expires_at
        self._expiry_heap = [
            (e.expires_at, e.order[1], e.record.owner, e.order[2]) for e in entries if e.expires_at is not None
        ]
        heapq.heapify(self._expiry_heap)
        self._lru_heap = [(e.tick, e.order[1], e.record.owner, e.order[2]) for e in entries if e.record.is_terminal]
        heapq.heapify(self._lru_heap)
        self._raise_horizon()

    def _lower_horizon(self, expires_at: float) -> None:
        self._horizon = min(self._horizon, expires_at)

    def _raise_horizon(self) -> None:
        """Set the horizon to the expiry heap's top, a lower bound of every live entry's expiry (write lock only)."""
        if self._default_clock:
            heap = self._expiry_heap
            self._raises += 1
            self._horizon = heap[0][0] if heap else _INF

    def _heap_entry(self, seq: int, owner: str | None, id: str) -> _Entry | None:
        """The live entry a heap item names, or ``None`` if it was removed (the id may name a newer entry)."""
        entry = self._lookup(owner, id)
        return entry if entry is not None and entry.order[1] == seq else None

    def _sweep_locked(self, limit: int | None, now: float) -> int:
        heap = self._expiry_heap
        swept = 0
        while heap and heap[0][0] <= now and (limit is None or swept < limit):
            value, seq, owner, id = heapq.heappop(heap)
            entry = self._heap_entry(seq, owner, id)
            if entry is None or entry.expires_at is None or value != entry.heap_expiry:
                continue  # removed, or superseded by an earlier item pushed when the clock stepped back
            if entry.expires_at > now:
                entry.heap_expiry = entry.expires_at  # refreshed since it was pushed
                heapq.heappush(heap, (entry.expires_at, seq, owner, id))
                continue
            self._unlink(entry)
            self._expired += 1
            swept += 1
        self._raise_horizon()  # after the unlinks: a get that found an unlinked record counts this raise
        return swept

    def _evict_one(self, protected: set[int], skipped: list[_HeapItem]) -> int | None:
        """Evict the least recently used finished entry not in ``protected`` (ids of entries); its bytes, if any.

        The heap items of protected entries it passes go to ``skipped``, for the caller to push back once it is done
        evicting (so a long protected chain is passed once, not once per eviction).
        """
        heap = self._lru_heap
        while heap:
            item = heapq.heappop(heap)
            tick, seq, owner, id_ = item
            entry = self._heap_entry(seq, owner, id_)
            if entry is None:
                continue
            if entry.tick != tick:
                heapq.heappush(heap, (entry.tick, seq, owner, id_))  # used since it was pushed
                continue
            if id(entry) in protected:
                skipped.append(item)
                continue
            freed = entry.bytes
            self._unlink(entry)
            self._evicted += 1
            return freed
        return None

    def _unskip(self, skipped: list[_HeapItem]) -> None:
        """Push back the heap items :meth:`_evict_one` passed (into the heap as it is now: a removal may rebuild it)."""
        for item in skipped:
            heapq.heappush(self._lru_heap, item)

    def _pending_expired(self) -> list[_Entry]:
        """Live entries that have expired but are not swept yet (read-only walk of the heap's expired part)."""
        heap = self._expiry_heap
        now = self._now()
        found: list[_Entry] = []
        stack = [0] if heap else []
        while stack:
            i = stack.pop()
            value, seq, owner, id = heap[i]
            if value > now:
                continue  # every item below has a later time too
            entry = self._heap_entry(seq, owner, id)
            current = entry is not None and value == entry.heap_expiry  # one current item per entry
            if current and entry is not None and entry.expires_at is not None and entry.expires_at <= now:
                found.append(entry)
            stack.extend(child for child in (2 * i + 1, 2 * i + 2) if child < len(heap))
        return found

    def _scan(self, owner: str | None, cursor: str | None, descending: bool, now: float) -> Iterator[ResponseRecord]:
        start: _OrderKey | None = None
        if cursor is not None:
            entry = self._lookup(owner, cursor)
            start = entry.order if entry is not None else self._removed.place((owner, cursor))
            if start is None:
                raise unknown_cursor(cursor)
        index = self._index.get(owner)
        if index is None:
            return iter(())
        if start is None:
            keys = reversed(index) if descending else iter(index)
        elif descending:
            keys = index.irange(maximum=start, inclusive=(True, False), reverse=True)
        else:
            keys = index.irange(minimum=start, inclusive=(False, True))
        return self._visible(owner, keys, now)

    def _visible(self, owner: str | None, keys: Iterable[_OrderKey], now: float) -> Iterator[ResponseRecord]:
        entries = self._maps[owner]
        for key in keys:
            entry = entries[key[2]]
            if entry.expires_at is None or entry.expires_at > now:
                yield entry.record

    def _heap_positions(self) -> tuple[dict[int, float], dict[int, float]]:
        """For each live entry (by ``id``): its current expiry item's time, and its earliest recency item's tick."""
        in_expiry_heap: dict[int, float] = {}
        for value, seq, owner, id_ in self._expiry_heap:
            named = self._heap_entry(seq, owner, id_)
            if named is not None and value == named.heap_expiry:
                in_expiry_heap[id(named)] = value
        in_lru_heap: dict[int, float] = {}
        for tick, seq, owner, id_ in self._lru_heap:
            named = self._heap_entry(seq, owner, id_)
            if named is not None:
                in_lru_heap[id(named)] = min(tick, in_lru_heap.get(id(named), tick))
        return in_expiry_heap, in_lru_heap

    def _check(self) -> None:  # noqa: PLR0915 - one list of invariants
        """Assert every invariant: map, indexes, heaps and counters agree; order holds; statuses are sane."""
        self._lock._check()
        self._touched._check()
        if self._closed:
            assert self._size == 0, "a closed store keeps records"
            assert self._maps == {None: {}}, "a closed store keeps records"
            return
        assert self._maps[None] is self._none, "owner None lost its own map"
        assert self._none_records.keys() == self._none.keys(), "owner None's records and entries disagree"
        assert all(self._none_records[id_] is entry.record for id_, entry in self._none.items()), "a stale record"
        assert all(owned for owner, owned in self._maps.items() if owner is not None), "an empty map kept"
        records = {(owner, id_): entry for owner, owned in self._maps.items() for id_, entry in owned.items()}
        assert len(records) == self._size, "the size counter disagrees with the maps"
        indexed = 0
        for owner, index in self._index.items():
            index._check()
            assert index, f"empty index kept for owner {owner!r}"
            indexed += len(index)
            for order in index:
                entry = records[(owner, order[2])]
                assert entry.order == order
                assert entry.record.created_at == order[0]
        assert indexed == len(records), "the map and the ordering index disagree"
        seqs = set()
        total_bytes = active_bytes = 0
        by_status = dict.fromkeys(ResponseStatus, 0)
        in_expiry_heap, in_lru_heap = self._heap_positions()
        for (owner, id_), entry in records.items():
            record = entry.record
            assert record.owner == owner
            assert record.id == id_ == entry.order[2]
            assert record.version >= 1
            assert (record.completed_at is not None) == (record.status is ResponseStatus.COMPLETED), (
                f"completed_at does not follow the status of {id_!r}"
            )
            if entry.chunks is not None:
                starts = [first for first, _, _ in entry.chunks]
                ends = [first + count for first, count, _ in entry.chunks]
                assert starts == [0, *ends[:-1]], f"the chunks of {id_!r} do not follow each other"
                assert ends[-1] == entry.events, f"the event count of {id_!r}"
                assert entry.log_bytes == sum(len(text.encode()) for _, _, text in entry.chunks)
                assert entry.event_bytes <= self.event_limits.max_bytes
                assert entry.events <= self.event_limits.max_events
            else:
                assert entry.event_bytes == entry.events == entry.log_bytes == 0
            assert entry.size == record_size(record), f"the size of {id_!r}"
            if record.is_terminal:
                assert record.lease_holder is None, f"{id_!r} holds a lease"
                assert record.lease_expires_at is None, f"{id_!r} holds a lease"
            has_lease = not record.is_terminal and record.lease_expires_at is not None
            assert (self._leases.get(entry.order[1]) is entry) == has_lease, f"the lease index and {id_!r}"
            total_bytes += entry.bytes
            if not record.is_terminal:
                active_bytes += entry.bytes
            assert entry.order[1] not in seqs
            seqs.add(entry.order[1])
            by_status[record.status] += 1
            if entry.expires_at is not None:
                assert entry.heap_expiry is not None
                assert entry.heap_expiry <= entry.expires_at, f"{id_!r} is due in the heap after it expires"
                assert id(entry) in in_expiry_heap, f"{id_!r} not in the expiry heap"
            if record.is_terminal:
                assert in_lru_heap.get(id(entry), float("inf")) <= entry.tick, f"{id_!r} not in recency heap"
        live_expiries = [entry.expires_at for entry in records.values() if entry.expires_at is not None]
        horizon = min(live_expiries, default=_INF) if self._default_clock else -_INF
        assert self._horizon <= horizon, "an entry expires before the horizon (or a custom clock has one)"
        assert by_status == self._by_status, "status counters disagree with the records"
        assert (total_bytes, active_bytes) == (self._bytes, self._active_bytes), "byte counters disagree"
        assert len(self._leases) == sum(
            1 for e in records.values() if not e.record.is_terminal and e.record.lease_expires_at is not None
        ), "the lease index holds removed records"
        assert self._created - self._deleted - self._evicted - self._expired == len(records)
        self._removed.check(records.keys())
        for (owner, id_), found in self._conversations.items():
            state = found.state
            assert (state.record.owner, state.record.id) == (owner, id_), f"conversation {id_!r} filed wrongly"
            assert state.items == len(found.items) == len(found.ids), f"the item count of conversation {id_!r}"
            assert all(found.items[p][:2] == (p, i) for i, p in found.ids.items()), f"the item ids of {id_!r}"
            assert not found.items or found.items.peekitem(-1)[0] < state.next_position, f"positions of {id_!r}"
        stats = self._stats()
        assert stats.records == sum(stats.by_status.values())
        assert stats.records == stats.created - stats.deleted - stats.evicted - stats.expired
