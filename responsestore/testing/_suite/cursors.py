"""Cursors naming removed responses: every removal — deleted, expired (swept or not), evicted — keeps its place.

A page walk holds the id of the last record of its page as its cursor. Between two pages that record may be deleted,
may expire, or may be evicted to make room (for ``max_records`` or ``max_bytes``); the walk must go on from where it
stood. A store remembers the places of its last :func:`~responsestore._contract.cursor_memory` removed records
(``min(CURSOR_MEMORY, max_records)``), whatever removed them, each for its owner only; a cursor beyond that memory is
refused with the unknown-cursor error, as one that never named anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from responsestore import BaseStore, InvalidArgument, Page, ResponseRecord
from responsestore._contract import cursor_memory
from responsestore.testing._clock import FakeClock

from .base import ContractBase, StoreFactory

#: The rule every test here checks, named in every failure.
RULE = (
    "a cursor naming a removed response (deleted, expired, evicted) must page from the place it had, for the last "
    "cursor_memory(max_records) removed responses (tombstones)"
)
#: The rule's other half.
FORGET_RULE = (
    "a cursor naming a response removed before the last cursor_memory(max_records) removals must be refused with "
    "the unknown-cursor error"
)
#: An owner of its own: removals made for room or by sweeping happen in its records, the walked list is owner None's.
OTHER = "other"
REPLY = [{"role": "assistant", "content": "x" * 500}]
BIG_REPLY = [{"role": "assistant", "content": "y" * 3000}]


def _page_ids(store: BaseStore, how: str, **kwargs: Any) -> tuple[list[str], bool]:
    """The ids and ``has_more`` of one page, failing with the rule when the cursor is refused."""
    try:
        page: Page[ResponseRecord] = store.list(**kwargs)
    except InvalidArgument as exc:
        pytest.fail(f"{RULE}: list({kwargs}) refused the cursor of a response {how}: {exc}")
    return [record.id for record in page.data], page.has_more


def _listed_or_refused(store: BaseStore, **kwargs: Any) -> list[str] | str:
    """The ids of a page, or the message it was refused with."""
    try:
        return [record.id for record in store.list(**kwargs).data]
    except InvalidArgument as exc:
        return str(exc)


def _assert_unknown(store: BaseStore, cursor: str, why: str, **kwargs: Any) -> None:
    for direction in ("after", "before"):
        got = _listed_or_refused(store, **{direction: cursor}, **kwargs)
        assert got == f"unknown cursor {cursor!r}: no such item in this list", f"{why}: {direction}= gave {got}"


# ---------------------------------------------------------------------------------------------- one removal, five
# records: r0 … r4 created a second apart, r2 removed; each way of removing it ends with r2 gone.


def _five(store: BaseStore, clock: FakeClock, *, brief: bool = False, finish: bool = False) -> None:
    """Create r0 … r4 a second apart (r2 expiring after 5 s when ``brief``), finished r2 first when ``finish``."""
    for n in range(5):
        options: dict[str, Any] = {"ttl": 5} if brief and n == 2 else {}
        store.create("m", "hi", id=f"r{n}", **options)
        clock.advance(1)
    if finish:  # r2 first: the least recently used of the five
        for n in (2, 0, 1, 3, 4):
            store.complete(f"r{n}", REPLY)


def _deleted(new_store: StoreFactory, clock: FakeClock) -> BaseStore:
    store = new_store(clock=clock, ttl=None, max_records=None)
    _five(store, clock)
    store.delete("r2")
    return store


def _expired(new_store: StoreFactory, clock: FakeClock) -> BaseStore:
    store = new_store(clock=clock, ttl=None, max_records=None)
    _five(store, clock, brief=True)
    clock.advance(2)  # r2 was created at +2 with a ttl of 5: it expires now
    return store


def _expired_swept(new_store: StoreFactory, clock: FakeClock) -> BaseStore:
    store = _expired(new_store, clock)
    assert store.sweep() == 1
    return store


def _expired_swept_by_a_change(new_store: StoreFactory, clock: FakeClock) -> BaseStore:
    store = _expired(new_store, clock)
    store.update("r4", metadata={"k": "v"})  # a write sweeps a batch of expired records
    assert store.sweep() == 0, "a write sweeps up to SWEEP_BATCH expired records"
    return store


def _expired_swept_by_a_create(new_store: StoreFactory, clock: FakeClock) -> BaseStore:
    store = _expired(new_store, clock)
    store.create("m", "hi", id="x", owner=OTHER)
    assert store.sweep() == 0, "a create sweeps up to SWEEP_BATCH expired records"
    return store


def _evicted_for_max_records(new_store: StoreFactory, clock: FakeClock) -> BaseStore:
    store = new_store(clock=clock, ttl=None, max_records=5)
    _five(store, clock, finish=True)
    store.create("m", "hi", id="x", owner=OTHER)  # one too many: the least recently used finished record goes
    return store


def _bytes_scenario(store: BaseStore, clock: FakeClock, *, finishing: bool) -> None:
    _five(store, clock, finish=True)
    if finishing:
        store.create("m", "hi", id="x", owner=OTHER)
        store.complete("x", BIG_REPLY, owner=OTHER)
    else:
        store.create("m", "z" * 3000, id="x", owner=OTHER)


def _bounded_by_bytes(new_store: StoreFactory, clock: FakeClock, *, finishing: bool) -> BaseStore:
    """A store whose ``max_bytes`` is one byte short of the scenario's total, measured on an unbounded store."""
    probe = new_store(clock=FakeClock(clock()), ttl=None, max_records=None, max_bytes=None)
    _bytes_scenario(probe, FakeClock(clock()), finishing=finishing)
    total = probe.stats().bytes
    store = new_store(clock=clock, ttl=None, max_records=None, max_bytes=total - 1)
    _bytes_scenario(store, clock, finishing=finishing)
    return store


def _evicted_for_max_bytes_by_a_create(new_store: StoreFactory, clock: FakeClock) -> BaseStore:
    return _bounded_by_bytes(new_store, clock, finishing=False)


def _evicted_for_max_bytes_by_a_finish(new_store: StoreFactory, clock: FakeClock) -> BaseStore:
    return _bounded_by_bytes(new_store, clock, finishing=True)


#: How r2 goes, by the words a failure uses: "a cursor naming a response <how> ...".
REMOVALS: dict[str, tuple[Callable[[StoreFactory, FakeClock], BaseStore], dict[str, int]]] = {
    "deleted": (_deleted, {"deleted": 1}),
    "expired, not yet swept": (_expired, {"expired": 1}),
    "expired and swept": (_expired_swept, {"expired": 1}),
    "expired and swept by a change": (_expired_swept_by_a_change, {"expired": 1}),
    "expired and swept by a create": (_expired_swept_by_a_create, {"expired": 1}),
    "evicted for max_records": (_evicted_for_max_records, {"evicted": 1}),
    "evicted for max_bytes by a create": (_evicted_for_max_bytes_by_a_create, {"evicted": 1}),
    "evicted for max_bytes by a finishing response": (_evicted_for_max_bytes_by_a_finish, {"evicted": 1}),
}


# ---------------------------------------------------------------------------------------------- the memory's bound


class _Walk:
    """A store and what its cursors must do: creation order, live records, the remembered removals."""

    def __init__(self, store: BaseStore, memory: int) -> None:
        self.store = store
        self.memory = memory
        self.order: list[str] = []  # owner None's ids in creation order
        self.live: set[str] = set()
        self.expired: set[str] = set()  # expired, not yet swept: listed nowhere, still in their place
        self.removed: list[str] = []  # every removal, oldest first

    def create(self, id: str, *, finish: bool = False, **options: Any) -> None:
        self.store.create("m", "hi", id=id, **options)
        if finish:
            self.store.complete(id, REPLY)
        self.order.append(id)
        self.live.add(id)

    def expire(self, id: str) -> None:
        """``id`` expired (the caller moved the clock); no sweep has removed it yet."""
        assert id not in self.store, f"{id!r} should have expired"
        self.live.discard(id)
        self.expired.add(id)

    def gone(self, *ids: str) -> None:
        """``ids`` were removed, in this order (the caller removed them, or checks the store evicted them)."""
        for id in ids:
            assert id not in self.store, f"{id!r} should have been removed"
            self.live.discard(id)
            self.expired.discard(id)
            self.removed.append(id)

    def check(self) -> None:
        """Each remembered cursor pages from its place; each forgotten one is unknown; a live one pages too."""
        remembered = self.removed[-self.memory :]
        forgotten = [id for id in self.removed[: -self.memory] if id not in remembered]
        for cursor in [*remembered, *sorted(self.live | self.expired)]:
            how = "removed" if cursor in remembered else "expired, not yet swept" if cursor in self.expired else "live"
            at = self.order.index(cursor)
            older = [id for id in self.order[:at] if id in self.live]
            newer = [id for id in self.order[at + 1 :] if id in self.live]
            got = _page_ids(self.store, how, after=cursor, order="asc", limit=100)
            assert got == (newer, False), f"{RULE}: after={cursor!r} (asc)"
            got = _page_ids(self.store, how, after=cursor, limit=100)
            assert got == (older[::-1], False), f"{RULE}: after={cursor!r} (desc)"
            got = _page_ids(self.store, how, before=cursor, order="asc", limit=100)
            assert got == (older, False), f"{RULE}: before={cursor!r} (asc)"
        for cursor in forgotten:
            _assert_unknown(self.store, cursor, f"{FORGET_RULE} ({cursor!r}, {len(self.removed)} removals)")


class CursorMemoryTests(ContractBase):
    """Cursors of removed responses, however removed: they page from their place, within the store's memory."""

    @pytest.mark.parametrize("how", sorted(REMOVALS))
    def test_the_cursor_of_a_removed_response_keeps_its_place(
        self, new_store: StoreFactory, clock: FakeClock, how: str
    ) -> None:
        """A walk whose last record went between two pages — deleted, expired or evicted — goes on from it."""
        remove, counted = REMOVALS[how]
        store = remove(new_store, clock)
        assert "r2" not in store, f"the scenario {how!r} should have removed r2"
        stats = store.stats()
        assert {name: getattr(stats, name) for name in counted} == counted, f"r2 should have been {how}"
        assert _page_ids(store, how, limit=2, after="r2") == (["r1", "r0"], False), f"{RULE}: after (desc)"
        assert _page_ids(store, how, limit=1, after="r2") == (["r1"], True), f"{RULE}: after (desc)"
        assert _page_ids(store, how, limit=2, before="r2") == (["r4", "r3"], False), f"{RULE}: before (desc)"
        assert _page_ids(store, how, limit=1, before="r2") == (["r3"], True), f"{RULE}: before (desc)"
        assert _page_ids(store, how, after="r2", order="asc") == (["r3", "r4"], False), f"{RULE}: after (asc)"
        assert _page_ids(store, how, before="r2", order="asc") == (["r0", "r1"], False), f"{RULE}: before (asc)"
        assert _page_ids(store, how, limit=100) == (["r4", "r3", "r1", "r0"], False)
        # The place is remembered for the owner of the removed response only.
        _assert_unknown(store, "r2", "a removed response's place must not be a cursor for another owner", owner=OTHER)

    @pytest.mark.parametrize("how", ["deleted", "expired", "evicted"])
    def test_the_store_remembers_the_places_of_its_last_removals_only(
        self, new_store: StoreFactory, clock: FakeClock, how: str
    ) -> None:
        """``cursor_memory(max_records)`` removals are remembered (here 4); a removal before those is forgotten."""
        memory = cursor_memory(4)
        walk = _Walk(new_store(clock=clock, ttl=None, max_records=4), memory)
        walk.create("a")  # active: never evicted
        if how == "evicted":
            for n in range(3):
                walk.create(f"x{n}", finish=True)
            evictions = [("x3", "x0"), ("x4", "x1"), ("z0", "x2"), ("z1", "x3"), ("z2", "x4")]
            for made, evicted in evictions:  # each create at the cap evicts the least recently used finished one
                walk.create(made, finish=made.startswith("x"))
                walk.gone(evicted)
                walk.check()
        else:
            for n in range(memory + 1):
                if how == "deleted":
                    walk.create(f"x{n}")
                    walk.store.delete(f"x{n}")
                else:
                    walk.create(f"x{n}", ttl=1)
                    clock.advance(1)
                    assert walk.store.sweep() == 1
                walk.gone(f"x{n}")
                walk.check()
            for n in range(3):
                walk.create(f"z{n}")
        walk.check()
        assert walk.removed[0] == "x0"
        assert len(walk.removed) == memory + 1

    def test_every_kind_of_removal_shares_one_memory(self, new_store: StoreFactory, clock: FakeClock) -> None:
        """Deletions, expiries (swept by a write, by ``sweep()``) and evictions fill one memory, oldest out first."""
        walk = _Walk(new_store(clock=clock, ttl=None, max_records=4), cursor_memory(4))
        store = walk.store
        walk.create("a")
        walk.create("x0")
        store.delete("x0")
        walk.gone("x0")
        walk.check()
        walk.create("x1", ttl=1)
        clock.advance(1)
        store.update("a", metadata={"n": "1"})  # sweeps x1
        walk.gone("x1")
        walk.check()
        walk.create("x2", ttl=1)
        clock.advance(1)
        walk.expire("x2")
        walk.check()  # x2 expired, not yet swept: still in its place, not yet a removal
        assert store.sweep() == 1
        walk.gone("x2")
        walk.check()
        for id in ("x3", "x4", "x5"):
            walk.create(id, finish=True)
        walk.create("z0")  # at the cap: evicts x3
        walk.gone("x3")
        walk.check()
        walk.create("z1")  # evicts x4, and x0's place is forgotten
        walk.gone("x4")
        walk.check()
        store.delete("x5")  # x1's place is forgotten
        walk.gone("x5")
        walk.check()
        assert walk.removed == ["x0", "x1", "x2", "x3", "x4", "x5"]
