"""``ResponseStore``: the in-memory backend, and the default.

Storage is a dict from ``(owner, id)`` to an entry (the record, its ordering key, its expiry and its recency),
plus one sorted index of ordering keys ``(created_at, seq, id)`` per owner, so a first page or a cursor step
costs O(log n) and never sorts. ``seq`` is a store-wide counter that breaks ``created_at`` ties in creation
order.

Retention uses two lazy min-heaps: one of expiry times, one of recency ticks of finished records. A heap item
may be stale (the entry was refreshed, used again, or removed since); stale items are recognised when they reach
the top and re-pushed or dropped, so refreshing or touching an entry never searches a heap, and a ``get`` marks
recency with one counter step and one attribute store, without a lock.

Locking: every mutation runs under the write side of an :class:`~responsestore.RWLock`; ``list``,
``input_items``, ``chain``, ``conversation``, ``len`` and ``stats`` under the read side. ``get`` and ``in``
take no lock: a record is immutable and a dict lookup is atomic, so they see either the old or the new record,
never a torn one (see the concurrency page of the docs).
"""

from __future__ import annotations

import datetime
import heapq
import itertools
import time
from collections import OrderedDict
from collections.abc import Collection, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from sortedcontainers import SortedList

from ._contract import DEFAULT_MAX_CHAIN_DEPTH, BaseStore, Clock
from ._events import DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_EVENTS
from ._json import FrozenDict
from ._paging import unknown_cursor
from ._records import ResponseRecord, ResponseStatus
from ._retention import DEFAULT_MAX_RECORDS, DEFAULT_TTL, StoreStats
from ._rwlock import RWLock

__all__ = ["ResponseStore"]

_Key = tuple[str | None, str]  # (owner, id)
_OrderKey = tuple[float, int, str]  # (created_at, seq, id)

#: How many removed records keep their place for cursors (see ``_removed``).
CURSOR_MEMORY = 10_000

_COMPACT_SLACK = 1024


class _Entry:
    """One stored record and its bookkeeping (mutable; only the store touches it)."""

    __slots__ = ("event_bytes", "events", "expires_at", "heap_expiry", "live", "order", "record", "tick", "ttl")

    def __init__(self, record: ResponseRecord, order: _OrderKey, ttl: float | None, tick: int) -> None:
        self.record = record
        self.order = order
        self.ttl = ttl
        self.expires_at = None if ttl is None else record.created_at + ttl
        self.heap_expiry = self.expires_at  # the time of this entry's one current item in the expiry heap
        self.tick = tick
        self.live = True
        self.events: list[FrozenDict] | None = None  # created by the first event
        self.event_bytes = 0


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
        max_events: The most events one response's event log holds (default 20 000).
        max_event_bytes: The most bytes of event JSON one response's log holds (default 16 MiB).
    """

    def __init__(
        self,
        *,
        ttl: float | datetime.timedelta | None = DEFAULT_TTL,
        max_records: int | None = DEFAULT_MAX_RECORDS,
        clock: Clock = time.time,
        max_chain_depth: int = DEFAULT_MAX_CHAIN_DEPTH,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        super().__init__(
            ttl=ttl,
            max_records=max_records,
            clock=clock,
            max_chain_depth=max_chain_depth,
            max_events=max_events,
            max_event_bytes=max_event_bytes,
        )
        self._lock = RWLock()
        self._records: dict[_Key, _Entry] = {}
        self._index: dict[str | None, Any] = {}  # owner -> SortedList[_OrderKey]
        self._seq = itertools.count()
        self._ticks = itertools.count()
        self._expiry_heap: list[tuple[float, int, _Entry]] = []
        self._lru_heap: list[tuple[int, int, _Entry]] = []  # finished records only
        # A page walk may hold a cursor whose record another thread removed meanwhile; remembering where the
        # last CURSOR_MEMORY removed records stood lets such a walk go on instead of failing.
        self._removed: OrderedDict[_Key, _OrderKey] = OrderedDict()
        self._by_status = dict.fromkeys(ResponseStatus, 0)
        self._created = self._deleted = self._evicted = self._expired = 0

    @property
    def lock(self) -> RWLock:
        """The store's lock. Hold ``lock.read()`` to make several reads one consistent snapshot."""
        return self._lock

    def get(self, id: str, *, owner: str | None = None) -> ResponseRecord:
        """Return the response ``id`` (the hot path of a server: no lock, one lookup, one recency tick).

        Raises:
            ResponseNotFound: no such response for this owner.
            InvalidArgument: ``id`` or ``owner`` has the wrong type, or the clock is broken.
        """
        # The same as BaseStore.get with _fetch inlined: a `get` is most of a server's traffic.
        try:
            entry = self._records.get((owner, id))
        except TypeError:
            entry = None
        if entry is not None:
            expires_at = entry.expires_at
            if expires_at is not None:
                now = self._clock()
                # Anything but a plain float (or a NaN/inf reading) takes the checked path below, which refuses a
                # broken clock exactly as every other method does.
                if now.__class__ is not float or not expires_at > now:
                    return super().get(id, owner=owner)
            entry.tick = next(self._ticks)
            return entry.record
        return super().get(id, owner=owner)

    # ------------------------------------------------------------------ primitives

    def _reading(self) -> AbstractContextManager[object]:
        return self._lock.read()

    def _writing(self) -> AbstractContextManager[object]:
        return self._lock.write()

    def _fetch(self, owner: str | None, id: str, touch: bool = False) -> ResponseRecord | None:
        entry = self._records.get((owner, id))
        if entry is None:
            return None
        expires_at = entry.expires_at
        if expires_at is not None and expires_at <= self._now():
            return None
        if touch:
            entry.tick = next(self._ticks)
        return entry.record

    def _touch(self, records: Iterable[ResponseRecord]) -> None:
        for record in records:
            self._records[(record.owner, record.id)].tick = next(self._ticks)

    def _refresh(self, records: Iterable[ResponseRecord], now: float) -> None:
        for record in records:
            entry = self._records[(record.owner, record.id)]
            if entry.ttl is not None:
                entry.expires_at = expires_at = now + entry.ttl
                if entry.heap_expiry is None or expires_at < entry.heap_expiry:
                    # The clock stepped back: the heap must learn the earlier time now (the old item goes stale).
                    entry.heap_expiry = expires_at
                    heapq.heappush(self._expiry_heap, (expires_at, entry.order[1], entry))
                # Otherwise the heap keeps the earlier time, and the sweep re-pushes the entry when it gets there.
            entry.tick = next(self._ticks)

    def _insert(self, record: ResponseRecord, ttl: float | None) -> None:
        key = (record.owner, record.id)
        stale = self._records.get(key)
        if stale is not None:  # expired, not yet swept: it goes now, as an expiry
            self._unlink(stale)
            self._expired += 1
        seq = next(self._seq)
        order = (record.created_at, seq, record.id)
        index = self._index.get(record.owner)
        if index is None:
            index = self._index[record.owner] = SortedList()
        index.add(order)
        entry = _Entry(record, order, ttl, next(self._ticks))
        if entry.expires_at is not None:
            heapq.heappush(self._expiry_heap, (entry.expires_at, seq, entry))
        self._removed.pop(key, None)
        self._records[key] = entry
        self._by_status[record.status] += 1
        self._created += 1

    def _replace(self, old: ResponseRecord, new: ResponseRecord) -> None:
        entry = self._records[(new.owner, new.id)]
        entry.record = new
        entry.tick = tick = next(self._ticks)
        self._by_status[old.status] -= 1
        self._by_status[new.status] += 1
        if new.is_terminal and not old.is_terminal:
            heapq.heappush(self._lru_heap, (tick, entry.order[1], entry))

    def _remove(self, record: ResponseRecord) -> None:
        self._unlink(self._records[(record.owner, record.id)])
        self._deleted += 1

    def _unlink(self, entry: _Entry) -> None:
        record = entry.record
        key = (record.owner, record.id)
        del self._records[key]
        entry.live = False
        index = self._index[record.owner]
        index.remove(entry.order)
        if not index:
            del self._index[record.owner]
        self._by_status[record.status] -= 1
        entry.events = None  # the event log goes with its response
        self._waiters.wake(key)  # whoever waits on it learns it is gone
        self._removed[key] = entry.order
        if len(self._removed) > CURSOR_MEMORY:
            self._removed.popitem(last=False)
        if len(self._expiry_heap) + len(self._lru_heap) > 2 * len(self._records) + _COMPACT_SLACK:
            self._compact()

    def _compact(self) -> None:
        """Rebuild both heaps from the live entries, dropping stale items (amortized O(1) per removal)."""
        entries = self._records.values()
        for entry in entries:
            entry.heap_expiry = entry.expires_at
        self._expiry_heap = [(e.expires_at, e.order[1], e) for e in entries if e.expires_at is not None]
        heapq.heapify(self._expiry_heap)
        self._lru_heap = [(e.tick, e.order[1], e) for e in entries if e.record.is_terminal]
        heapq.heapify(self._lru_heap)

    def _sweep(self, limit: int | None) -> int:
        heap = self._expiry_heap
        now = self._now()  # validated: a broken clock must refuse the write before anything is removed
        swept = 0
        while heap and heap[0][0] <= now and (limit is None or swept < limit):
            value, seq, entry = heapq.heappop(heap)
            if not entry.live or entry.expires_at is None or value != entry.heap_expiry:
                continue  # removed, or superseded by an earlier item pushed when the clock stepped back
            if entry.expires_at > now:
                entry.heap_expiry = entry.expires_at  # refreshed since it was pushed
                heapq.heappush(heap, (entry.expires_at, seq, entry))
                continue
            self._unlink(entry)
            self._expired += 1
            swept += 1
        return swept

    def _evict_one(self, protected: Collection[_Key]) -> ResponseRecord | None:
        heap = self._lru_heap
        spared: list[tuple[int, int, _Entry]] = []
        try:
            while heap:
                tick, seq, entry = heapq.heappop(heap)
                if not entry.live:
                    continue
                if entry.tick != tick:
                    heapq.heappush(heap, (entry.tick, seq, entry))  # used since it was pushed
                    continue
                if (entry.record.owner, entry.record.id) in protected:
                    spared.append((tick, seq, entry))
                    continue
                self._unlink(entry)
                self._evicted += 1
                return entry.record
            return None
        finally:
            for item in spared:
                heapq.heappush(heap, item)

    def _pending_expired(self) -> list[_Entry]:
        """Live entries that have expired but are not swept yet (read-only walk of the heap's expired part)."""
        heap = self._expiry_heap
        now = self._now()
        found: list[_Entry] = []
        stack = [0] if heap else []
        while stack:
            i = stack.pop()
            value, _, entry = heap[i]
            if value > now:
                continue  # every item below has a later time too
            current = entry.live and value == entry.heap_expiry  # one current item per entry
            if current and entry.expires_at is not None and entry.expires_at <= now:
                found.append(entry)
            stack.extend(child for child in (2 * i + 1, 2 * i + 2) if child < len(heap))
        return found

    def _scan(self, owner: str | None, cursor: str | None, descending: bool) -> Iterator[ResponseRecord]:
        start: _OrderKey | None = None
        if cursor is not None:
            entry = self._records.get((owner, cursor))
            start = entry.order if entry is not None else self._removed.get((owner, cursor))
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
        return self._visible(owner, keys)

    def _visible(self, owner: str | None, keys: Iterable[_OrderKey]) -> Iterator[ResponseRecord]:
        records = self._records
        now = self._now()
        for key in keys:
            entry = records[(owner, key[2])]
            if entry.expires_at is None or entry.expires_at > now:
                yield entry.record

    def _event_log_size(self, record: ResponseRecord) -> tuple[int, int]:
        entry = self._records[(record.owner, record.id)]
        return (0 if entry.events is None else len(entry.events)), entry.event_bytes

    def _append_event(self, record: ResponseRecord, event: FrozenDict, size: int) -> None:
        entry = self._records[(record.owner, record.id)]
        if entry.events is None:
            entry.events = []
        entry.events.append(event)
        entry.event_bytes += size

    def _read_events(self, record: ResponseRecord, after: int) -> tuple[FrozenDict, ...]:
        events = self._records[(record.owner, record.id)].events
        return () if events is None else tuple(events[after + 1 :])

    def _count(self) -> int:
        return len(self._records) - len(self._pending_expired())

    def _stats(self) -> StoreStats:
        by_status = dict(self._by_status)
        pending = self._pending_expired()
        for entry in pending:
            by_status[entry.record.status] -= 1
        return StoreStats(
            records=len(self._records) - len(pending),
            by_status=FrozenDict({status.value: count for status, count in by_status.items()}),
            created=self._created,
            deleted=self._deleted,
            evicted=self._evicted,
            expired=self._expired + len(pending),
        )

    def _check(self) -> None:
        """Assert every invariant: map, indexes, heaps and counters agree; order holds; statuses are sane."""
        self._lock._check()
        indexed = 0
        for owner, index in self._index.items():
            index._check()
            assert index, f"empty index kept for owner {owner!r}"
            indexed += len(index)
            for order in index:
                entry = self._records[(owner, order[2])]
                assert entry.order == order
                assert entry.record.created_at == order[0]
        assert indexed == len(self._records), "the map and the ordering index disagree"
        seqs = set()
        by_status = dict.fromkeys(ResponseStatus, 0)
        in_expiry_heap = {id(e): value for value, _, e in self._expiry_heap if e.live and value == e.heap_expiry}
        in_lru_heap = {id(e): tick for tick, _, e in self._lru_heap if e.live}
        for (owner, id_), entry in self._records.items():
            record = entry.record
            assert entry.live
            assert record.owner == owner
            assert record.id == id_ == entry.order[2]
            assert record.version >= 1
            assert (record.completed_at is not None) == (record.status is ResponseStatus.COMPLETED), (
                f"completed_at does not follow the status of {id_!r}"
            )
            if entry.events is not None:
                assert [event["sequence_number"] for event in entry.events] == list(range(len(entry.events)))
                assert entry.event_bytes <= self.event_limits.max_bytes
                assert len(entry.events) <= self.event_limits.max_events
            else:
                assert entry.event_bytes == 0
            assert entry.order[1] not in seqs
            seqs.add(entry.order[1])
            by_status[record.status] += 1
            if entry.expires_at is not None:
                assert entry.heap_expiry is not None
                assert entry.heap_expiry <= entry.expires_at, f"{id_!r} is due in the heap after it expires"
                assert id(entry) in in_expiry_heap, f"{id_!r} not in the expiry heap"
            if record.is_terminal:
                assert in_lru_heap.get(id(entry), float("inf")) <= entry.tick, f"{id_!r} not in recency heap"
        assert by_status == self._by_status, "status counters disagree with the records"
        assert self._created - self._deleted - self._evicted - self._expired == len(self._records)
        assert not (self._removed.keys() & self._records.keys()), "a live record is also removed"
        assert len(self._removed) <= CURSOR_MEMORY
        stats = self._stats()
        assert stats.records == sum(stats.by_status.values())
        assert stats.records == stats.created - stats.deleted - stats.evicted - stats.expired
