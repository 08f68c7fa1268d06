"""Tombstones: where the last removed records stood, so that a cursor naming one still places a page walk.

A client pages through ``list`` with the id of the last record it saw as the cursor. If that record is deleted,
expires or is evicted before the next page is asked for, the walk should go on from where the record stood, not
fail. So every removal, whatever its cause, leaves a tombstone: the record's place in the creation order. The
tombstones of a store are bounded by :func:`~responsestore.backend.cursor_memory` (the last removed ones are
kept, the oldest forgotten first), and a record stored again under the same owner and id takes its tombstone's
place.

What a place is depends on the backend (the memory store's ``(created_at, sequence)`` order key); when to leave a
tombstone, when to forget one and how many to keep are decided here, once. The SQL backends keep theirs in a
table (a delete trigger leaves them, a bounded trim forgets them) and the Redis backend in a sorted set, by the
same rules; the StoreContract's cursor tests hold every backend to them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, KeysView
from typing import Generic, TypeVar

from ._contract import cursor_memory

__all__ = ["Tombstones"]

K = TypeVar("K")
P = TypeVar("P")


class Tombstones(Generic[K, P]):
    """The places of the last removed records, by key (an ``(owner, id)`` pair), oldest removal first.

    At most :func:`~responsestore.backend.cursor_memory` ``(max_records)`` of them. Not locked: a backend
    changes them (:meth:`bury`, :meth:`revive`, :meth:`clear`) inside its writes and reads them (:meth:`place`)
    where no write runs at the same time, as it does its records.
    """

    __slots__ = ("_places", "bound")

    def __init__(self, max_records: int | None) -> None:
        #: How many tombstones are kept.
        self.bound = cursor_memory(max_records)
        self._places: OrderedDict[K, P] = OrderedDict()

    def bury(self, key: K, place: P) -> None:
        """Remember that the record ``key``, removed now, stood at ``place``; forget the oldest beyond the bound."""
        places = self._places
        places[key] = place
        places.move_to_end(key)
        if len(places) > self.bound:
            places.popitem(last=False)

    def revive(self, key: K) -> None:
        """Forget the tombstone of ``key``, if any: a record is stored under it again (a cursor names that one)."""
        if self._places:
            self._places.pop(key, None)

    def place(self, key: K) -> P | None:
        """Where the removed record ``key`` stood, or ``None`` if it is not remembered."""
        return self._places.get(key)

    def clear(self) -> None:
        """Forget every tombstone (the store was emptied or closed)."""
        self._places.clear()

    def keys(self) -> KeysView[K]:
        """The keys that have a tombstone, oldest removal first."""
        return self._places.keys()

    def __len__(self) -> int:
        return len(self._places)

    def check(self, live: Collection[K]) -> None:
        """Check the invariants, for a backend's ``_check``: within the bound, no stored record has a tombstone.

        Args:
            live: the keys of the records the store holds.

        Raises:
            AssertionError: an invariant does not hold (raised even under ``python -O``).
        """
        if len(self._places) > self.bound:
            raise AssertionError("more tombstones than the bound")
        if any(key in live for key in self._places):
            raise AssertionError("a stored record also has a tombstone")
