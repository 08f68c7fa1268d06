"""The memory backend's lock-free reads: ``get`` and first ``input_items`` pages at the default clock.

Both skip reading a record's expiry while the clock is before the store's *horizon* (no live record expires
before it). A record that expires sooner lowers the horizon before it is published, and a sweep raises it only
after unlinking what it covered; these tests hold the store to that with records that expire as they are made
(a TTL far below the clock's resolution), alone and racing readers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from responsestore import InvalidArgument, Page, ResponseNotFound, ResponseStore
from responsestore._paging import PageQuery, first_sequence_page, known_first_page, paginate_sequence

DAY = 86_400.0
AT_ONCE = 1e-9  # created_at + this == created_at: the record has expired when it is stored


def test_a_record_expiring_sooner_lowers_the_horizon_and_a_sweep_raises_it() -> None:
    store = ResponseStore(ttl=30 * DAY)
    assert store._horizon == float("inf")  # nothing expires
    kept = store.create("m", "kept")
    assert store._horizon == kept.created_at + 30 * DAY
    assert store.get(kept.id) is kept
    gone = store.create("m", [{"role": "user", "content": "gone"}], ttl=AT_ONCE)
    assert store._horizon <= gone.created_at + AT_ONCE
    with pytest.raises(ResponseNotFound):
        store.get(gone.id)
    with pytest.raises(ResponseNotFound):
        store.input_items(gone.id)
    assert store.get(kept.id) is kept
    store._check()
    store.create("m", "a write sweeps the expired record")
    assert store.stats().expired == 1
    assert store._horizon == kept.created_at + 30 * DAY
    store._check()
    store.close()
    assert store._horizon == float("inf")


def test_a_store_without_ttl_and_a_custom_clock() -> None:
    forever = ResponseStore(ttl=None)
    record = forever.create("m", "hi")
    assert forever._horizon == float("inf")
    assert forever.get(record.id) is record
    now = [1000.0]
    clocked = ResponseStore(ttl=10, clock=lambda: now[0])
    record = clocked.create("m", "hi")
    assert clocked._horizon == -float("inf")  # a custom clock never takes the horizon's path
    assert clocked.get(record.id) is record
    assert clocked.input_items(record.id).data == record.input
    now[0] = 1010.0
    with pytest.raises(ResponseNotFound):
        clocked.get(record.id)
    with pytest.raises(ResponseNotFound):
        clocked.input_items(record.id)
    clocked._check()
    readings: list[float] = []

    def counted() -> float:
        readings.append(now[0])
        return now[0]

    kept = ResponseStore(ttl=None, clock=counted)
    record = kept.create("m", "hi")
    readings.clear()
    assert kept.get(record.id) is record
    assert readings == []  # a record that never expires is returned without reading a custom clock, as before
    bobs = kept.create("m", "an owner's record", owner="bob")
    readings.clear()
    assert kept.get(bobs.id, owner="bob") is bobs
    assert readings == []
    kept._check()


def returns(read: Callable[[str], object], id: str) -> bool:
    try:
        read(id)
    except ResponseNotFound:
        return False
    return True


def test_reads_never_return_a_record_that_expired_as_it_was_stored(fast_switching: None) -> None:
    store = ResponseStore(ttl=30 * DAY)
    kept = store.create("m", "kept")
    problems: list[str] = []
    done = threading.Event()
    start = threading.Barrier(3)

    def write() -> None:
        start.wait()
        try:
            for n in range(3_000):
                store.create("m", f"at once {n}", id="resp_at_once", ttl=AT_ONCE)  # the expired one goes first
                store.create("m", f"long {n}", id=f"resp_long_{n}")
        finally:
            done.set()

    def read() -> None:
        start.wait()
        while not done.is_set():
            reads = (store.get, store.input_items)
            problems.extend(
                f"{read.__name__} returned an expired record" for read in reads if returns(read, "resp_at_once")
            )
            if store.get(kept.id) is not kept:
                problems.append("get lost a live record")

    threads = [threading.Thread(target=write), threading.Thread(target=read), threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not problems, problems[:5]
    store._check()


def test_a_first_input_items_page_is_the_general_pages() -> None:
    store = ResponseStore()
    for count in (0, 1, 19, 20, 21, 50):
        items = [{"role": "user", "content": f"item {i}"} for i in range(count)]
        record = store.create("m", items) if count else store.create("m", [])
        for limit in (1, 2, 20, 21, 100):
            for order in ("asc", "desc"):
                query = PageQuery.check(limit, None, None, order)
                assert known_first_page(limit, order) is query
                page = store.input_items(record.id, limit=limit, order=order)
                general = paginate_sequence(record.input, query, lambda item: item["id"])
                assert page == general == first_sequence_page(record.input, query)
                ordered = record.input if order == "asc" else record.input[::-1]
                expected = ordered[:limit]
                assert page.data == expected
                assert page.first_id == (expected[0]["id"] if expected else None)
                assert page.last_id == (expected[-1]["id"] if expected else None)
                assert page.has_more is (count > limit)
                assert isinstance(page, Page)
    assert known_first_page(20.0, "desc") is None  # only exact ints and strings are looked up
    assert known_first_page(20, b"desc") is None
    store._check()


def test_input_items_refuses_what_it_refused_before() -> None:
    store = ResponseStore()
    record = store.create("m", "hi", owner="alice")
    with pytest.raises(ResponseNotFound):
        store.input_items(record.id)  # owner None has no such response
    assert store.input_items(record.id, owner="alice").data == record.input
    for bad in ({"limit": 0}, {"limit": 101}, {"order": "up"}, {"after": "no_such_item"}):
        with pytest.raises(InvalidArgument):
            store.input_items(record.id, owner="alice", **bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        store.input_items(["unhashable"])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        store.input_items(record.id, owner=["unhashable"])  # type: ignore[arg-type]


def test_a_logged_read_ticks_only_the_entry_of_the_record_read() -> None:
    store = ResponseStore()
    first = store.create("m", "first", id="resp_same")
    store.delete(first.id)
    second = store.complete(store.create("m", "second", id="resp_same").id)
    entry = store._none[second.id]
    tick = entry.tick
    store._touched.mark(first)  # a read of the deleted record, logged after the write that deleted it
    store.create("m", "a write drains the log")
    assert entry.tick == tick  # the new record of the same id was not the one read
    store._touched.mark(second)
    store.create("m", "another write")
    assert entry.tick > tick
    bobs = store.create("m", "bob's only record", owner="bob")
    store.delete(bobs.id, owner="bob")  # bob's map goes with it
    store._touched.mark(bobs)
    store.create("m", "a third write")
    assert "bob" not in store._maps
    store._check()
