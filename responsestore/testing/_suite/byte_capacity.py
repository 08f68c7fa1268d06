"""Capacity in bytes: ``max_bytes`` counts records and their event logs, and evicts like ``max_records``."""

from __future__ import annotations

from typing import Any

import pytest

from responsestore import BaseStore, DeltaRun, InvalidArgument, ResponseNotFound, ResponseStatus, StoreFull

from .base import ContractBase, StoreFactory

REPLY = [{"role": "assistant", "content": "x" * 2000}]


def filler(store: BaseStore, **options: Any) -> str:
    """A finished response of a little over 2 KB."""
    return store.complete(store.create("m", **options).id, REPLY).id


class ByteCapacityTests(ContractBase):
    """``max_bytes``: stats, eviction of finished records, refusals that change nothing."""

    @pytest.mark.parametrize("bad", [0, -5, "1000", 1.5, True])
    def test_a_bad_max_bytes_is_refused(self, new_store: StoreFactory, bad: Any) -> None:
        with pytest.raises(InvalidArgument, match="max_bytes"):
            new_store(max_bytes=bad)

    def test_stats_count_the_bytes_of_records_and_logs(self, store: BaseStore) -> None:
        empty = store.stats().bytes
        assert empty == 0
        record = store.create("m", "hello")
        one = store.stats().bytes
        assert one > 0
        store.append_events(record.id, [{"type": "x", "text": "y" * 500}])
        assert store.stats().bytes >= one + 500
        store.complete(record.id, REPLY)
        assert store.stats().bytes >= one + 2000
        store.delete(record.id)
        assert store.stats().bytes == 0

    def test_creating_evicts_finished_records_to_stay_within_max_bytes(self, new_store: StoreFactory) -> None:
        store = new_store(max_bytes=12_000, max_records=None)
        ids = [filler(store) for _ in range(12)]
        assert store.stats().bytes <= 12_000
        assert store.stats().evicted > 0
        survivors = [id for id in ids if id in store]
        assert survivors == ids[-len(survivors) :], "eviction is least recently used first"
        store.get(survivors[0])  # used: the next eviction takes the one after it
        filler(store)
        assert survivors[0] in store
        assert survivors[1] not in store

    def test_active_records_are_never_evicted_for_bytes(self, new_store: StoreFactory) -> None:
        store = new_store(max_bytes=6_000, max_records=None)
        active = [store.create("m", "y" * 2500) for _ in range(2)]
        before = store.stats()
        with pytest.raises(StoreFull, match="bytes") as full:
            store.create("m", "z" * 2500)
        assert (full.value.bound, full.value.max_bytes) == ("max_bytes", 6_000)
        assert store.stats() == before
        for record in active:
            assert store.get(record.id) == record

    def test_events_that_do_not_fit_are_refused_unless_the_response_ends(self, new_store: StoreFactory) -> None:
        store = new_store(max_bytes=8_000, max_records=None)
        old = filler(store)
        record = store.create("m")
        store.append_events(record.id, [{"type": "x", "d": "a" * 5500}])  # fits once the old one goes
        with pytest.raises(ResponseNotFound):
            store.get(old)
        before = (store.stats(), store.events(record.id))
        with pytest.raises(StoreFull, match="bytes"):
            store.append_events(record.id, [DeltaRun({"type": "t.delta", "delta": ""}, ["b" * 5000])])
        assert (store.stats(), store.events(record.id)) == before
        # A response must always be able to end, even past the bound.
        done = store.complete(record.id, [{"role": "assistant", "content": "c" * 9000}])
        assert done.status is ResponseStatus.COMPLETED
        assert store.stats().bytes > 8_000
        filler(store)  # the next create evicts it to get back within the bound
        assert record.id not in store
        assert store.stats().bytes <= 8_000
