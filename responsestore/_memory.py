"""``ResponseStore``: the in-memory backend, and the default.

Storage is a dict from ``(owner, id)`` to the record and its *ordering key* ``(created_at, seq, id)``, plus one
sorted index of ordering keys per owner, so a first page or a cursor step costs O(log n) and never sorts.
``seq`` is a store-wide counter that breaks ``created_at`` ties in creation order.

Locking: every mutation runs under the write side of an :class:`~responsestore.RWLock`; ``list``,
``input_items`` and ``conversation`` under the read side. ``get``, ``in`` and ``len`` take no lock: a record is
immutable and a dict lookup or ``len`` is atomic, so they see either the old or the new record, never a torn
one (see the concurrency page of the docs).
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from sortedcontainers import SortedList

from ._contract import DEFAULT_MAX_CHAIN_DEPTH, BaseStore, Clock
from ._paging import unknown_cursor
from ._records import ResponseRecord, ResponseStatus
from ._rwlock import RWLock

__all__ = ["ResponseStore"]

_Key = tuple[str | None, str]  # (owner, id)
_OrderKey = tuple[float, int, str]  # (created_at, seq, id)

#: How many removed records keep their place for cursors (see ``_removed``).
CURSOR_MEMORY = 10_000


class ResponseStore(BaseStore):
    """A thread-safe, in-memory store of OpenAI Responses API objects.

    Every public method is safe to call from any thread. Each mutation is atomic: other threads see the store
    before it or after it, never in between. ``list`` pages are consistent snapshots.

    Args:
        clock: Returns the current time in seconds (``time.time`` by default); tests pass a fake clock.
        max_chain_depth: The longest ``previous_response_id`` chain ``conversation`` will follow.
    """

    def __init__(self, *, clock: Clock = time.time, max_chain_depth: int = DEFAULT_MAX_CHAIN_DEPTH) -> None:
        super().__init__(clock=clock, max_chain_depth=max_chain_depth)
        self._lock = RWLock()
        self._records: dict[_Key, tuple[ResponseRecord, _OrderKey]] = {}
        self._index: dict[str | None, Any] = {}  # owner -> SortedList[_OrderKey]
        self._seq = itertools.count()
        # A page walk may hold a cursor whose record another thread removed meanwhile; remembering where the
        # last CURSOR_MEMORY removed records stood lets such a walk go on instead of failing.
        self._removed: OrderedDict[_Key, _OrderKey] = OrderedDict()

    @property
    def lock(self) -> RWLock:
        """The store's lock. Hold ``lock.read()`` to make several reads one consistent snapshot."""
        return self._lock

    # ------------------------------------------------------------------ primitives

    def _reading(self) -> AbstractContextManager[object]:
        return self._lock.read()

    def _writing(self) -> AbstractContextManager[object]:
        return self._lock.write()

    def _fetch(self, owner: str | None, id: str) -> ResponseRecord | None:
        entry = self._records.get((owner, id))
        return None if entry is None else entry[0]

    def _insert(self, record: ResponseRecord) -> None:
        key = (record.owner, record.id)
        order = (record.created_at, next(self._seq), record.id)
        index = self._index.get(record.owner)
        if index is None:
            index = self._index[record.owner] = SortedList()
        index.add(order)
        self._removed.pop(key, None)
        self._records[key] = (record, order)

    def _replace(self, old: ResponseRecord, new: ResponseRecord) -> None:
        key = (new.owner, new.id)
        self._records[key] = (new, self._records[key][1])

    def _remove(self, record: ResponseRecord) -> None:
        key = (record.owner, record.id)
        _, order = self._records.pop(key)
        index = self._index[record.owner]
        index.remove(order)
        if not index:
            del self._index[record.owner]
        self._removed[key] = order
        if len(self._removed) > CURSOR_MEMORY:
            self._removed.popitem(last=False)

    def _scan(self, owner: str | None, cursor: str | None, descending: bool) -> Iterator[ResponseRecord]:
        start: _OrderKey | None = None
        if cursor is not None:
            entry = self._records.get((owner, cursor))
            start = entry[1] if entry is not None else self._removed.get((owner, cursor))
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
        records = self._records
        return (records[(owner, key[2])][0] for key in keys)

    def _count(self) -> int:
        return len(self._records)

    def _check(self) -> None:
        """Assert every invariant: map and indexes agree, order holds, versions and statuses are sane."""
        self._lock._check()
        indexed = 0
        for owner, index in self._index.items():
            index._check()
            assert index, f"empty index kept for owner {owner!r}"
            indexed += len(index)
            for order in index:
                record, stored_order = self._records[(owner, order[2])]
                assert stored_order == order
                assert record.created_at == order[0]
        assert indexed == len(self._records), "the map and the ordering index disagree"
        seqs = set()
        for (owner, id), (record, order) in self._records.items():
            assert record.owner == owner
            assert record.id == id == order[2]
            assert record.version >= 1
            assert (record.completed_at is not None) == (record.status is ResponseStatus.COMPLETED), (
                f"completed_at does not follow the status of {id!r}"
            )
            assert order[1] not in seqs
            seqs.add(order[1])
        assert not (self._removed.keys() & self._records.keys()), "a live record is also removed"
        assert len(self._removed) <= CURSOR_MEMORY
