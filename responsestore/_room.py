"""Making room for a write within ``max_records`` and ``max_bytes``: decided here once, for every Python backend.

A write that would take the store over a bound must first get rid of what it may: expired records (a sweep),
then the least recently used *finished* records (evictions). Queued and in-progress records never go. These
functions decide when to sweep, whether evicting could make room at all (if not, the write is refused with
:class:`~responsestore.StoreFull` *before* anything is removed) and how long to evict. The backend supplies its
usage and the two moves; it runs them inside its write (under the memory store's write lock, in the SQL stores'
transaction), so the decision and the removals it leads to are one atomic step.

The Redis store's write is one call of a server-side function, so it cannot call back into Python: when that
function finds a write would go over a bound, it replies with the usage instead, the store asks these functions
for a plan (the records to evict, or the refusal) and sends the write again with it. The function applies the
plan only if every record in it is still stored, finished and unused since it was read, and the write then fits;
otherwise the call is read again and retried, as after any conflict of a conditional write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from ._retention import Retention
from .errors import StoreFull

__all__ = ["Usage", "fits_growth", "fits_new", "room_for_new", "room_to_grow"]


class Usage(NamedTuple):
    """What a store holds as a write begins.

    ``records`` and ``total_bytes`` in all; ``active`` and ``active_bytes`` of them queued or in progress (never
    evicted). A named tuple: a write builds one each time, so it is cheap to make.
    """

    records: int
    total_bytes: int
    active: int
    active_bytes: int


def fits_new(retention: Retention, records: int, total_bytes: int, size: int) -> bool:
    """Whether a new record of ``size`` bytes fits a store of ``records`` records and ``total_bytes`` bytes as it is.

    When it does, :func:`room_for_new` does nothing: a backend may ask this first and spare building its arguments.
    """
    return retention.over(records + 1, total_bytes + size) is None


def fits_growth(retention: Retention, total: int, grows: int) -> bool:
    """Whether a record may grow by ``grows`` bytes, to a store ``total`` bytes in all, with nothing evicted.

    When it may, :func:`room_to_grow` does nothing: a backend may ask this first and spare building its arguments.
    """
    max_bytes = retention.max_bytes
    return max_bytes is None or grows <= 0 or total <= max_bytes


def room_for_new(
    retention: Retention,
    id: str,
    size: int,
    usage: Usage,
    *,
    spared: Sequence[int],
    sweep: Callable[[], Usage],
    evict: Callable[[], int | None],
) -> None:
    """Make room for a new record ``id`` of ``size`` bytes in a store holding ``usage``.

    Args:
        retention: the store's bounds.
        id: the new record's id (named by the error).
        size: its bytes, as :func:`~responsestore.backend.record_size` counts them.
        usage: what the store holds before the write.
        spared: the bytes of each *finished* record the write keeps alive (the chain a continuation extends):
            they are not evicted, so they do not count as room either.
        sweep: removes every expired record and returns the usage after it; called only when the store is over
            a bound (sweeping is otherwise left to the amortized sweeps).
        evict: evicts the least recently used finished record not spared and returns its bytes (``None``: there
            is none left). Called only while the store is still over a bound; the backend does the bookkeeping
            of what it evicted (counters, tombstones) after this function returns.

    Raises:
        StoreFull: even evicting every finished record not spared would leave the store over a bound; nothing
            was evicted (expired records may have been swept: they were invisible already).
    """
    if fits_new(retention, usage.records, usage.total_bytes, size):
        return
    usage = sweep()
    evictable = usage.records - usage.active - len(spared)
    evictable_bytes = usage.total_bytes - usage.active_bytes - sum(spared)
    bound = retention.over(usage.records + 1 - evictable, usage.total_bytes - evictable_bytes + size)
    if bound is not None:
        raise StoreFull(id, retention.max_records, max_bytes=retention.max_bytes, bound=bound)
    _evict(
        retention,
        id,
        usage.records,
        usage.total_bytes,
        lambda records, total: retention.over(records + 1, total + size),
        evict,
    )


def room_to_grow(
    retention: Retention,
    id: str,
    *,
    total: int,
    grows: int,
    others: int,
    finishing: bool,
    evict: Callable[[], int | None],
) -> bool:
    """Make room for record ``id`` growing by ``grows`` bytes, to a store ``total`` bytes in all once it has grown.

    Only ``max_bytes`` bounds a growth (the number of records does not change).

    Args:
        retention: the store's bounds.
        id: the growing record's id (named by the error).
        total: the store's bytes once the record has grown.
        grows: by how many bytes it grows (a record that shrinks or stays never needs room).
        others: the bytes of the *other* finished records, all that evicting could free.
        finishing: whether the record is finished by this write. A response must always be able to end, so a
            finishing record that no eviction could make room for is let through over the bound (the store gets
            back within it as finished records go); any other growth is refused.
        evict: as for :func:`room_for_new` (never evicting the record that grows).

    Returns:
        Whether the record goes over ``max_bytes`` all the same: a finishing record nothing could make room for
        (a backend that checks the bound again in its write lets this one through).

    Raises:
        StoreFull: evicting every other finished record would not make room and the record is not finishing;
            nothing was evicted.
    """
    max_bytes = retention.max_bytes
    if max_bytes is None or fits_growth(retention, total, grows):
        return False
    if total - others > max_bytes:
        if finishing:
            return True
        raise StoreFull(id, retention.max_records, max_bytes=max_bytes, bound="max_bytes")
    return _evict(
        retention,
        id,
        0,
        total,
        lambda _, now_total: "max_bytes" if now_total > max_bytes else None,
        evict,
        finishing=finishing,
    )


def _evict(  # noqa: PLR0917 - private, two call sites
    retention: Retention,
    id: str,
    records: int,
    total: int,
    over: Callable[[int, int], str | None],
    evict: Callable[[], int | None],
    *,
    finishing: bool = False,
) -> bool:
    """Call ``evict`` while ``over(records, total)`` names a bound, counting each eviction's record and bytes off.

    The callers check first that evicting makes room, so ``evict`` running out while still over means the
    backend's usage and its recency index disagree: a finishing record is let through all the same (a response
    must always be able to end; returns ``True``), anything else is refused.

    Raises:
        StoreFull: there was nothing left to evict while still over, and the record is not finishing.
    """
    while (bound := over(records, total)) is not None:
        freed = evict()
        if freed is None:
            if finishing:
                return True
            raise StoreFull(id, retention.max_records, max_bytes=retention.max_bytes, bound=bound)
        records -= 1
        total -= freed
    return False
