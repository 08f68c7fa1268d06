"""The memory backend's footprint: bounded at its cap however much it turns over, and removed records released at once.

Measured with ``tracemalloc`` from before the store is created, so whatever the turned-over records leave behind
(tombstones, stale heap items, records kept alive by bookkeeping) counts as growth; a measurement started after a
warm-up would count the replaced live set as growth instead and hide such leftovers. These are bounds on bytes,
not timings.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator

import pytest

from responsestore import InvalidArgument, ResponseStore

CAP = 1000
CYCLES = 6 * CAP  # more than the cap, the cursor memory and the heaps' compaction slack turn over
TEXT = "x" * 92


def cycle(store: ResponseStore, i: int) -> None:
    record = store.create("gpt-4.1", [{"id": f"msg_in{i:020d}", "role": "user", "content": f"{i:08d}{TEXT}"}])
    output = [{"type": "output_text", "text": f"{i:08d}{TEXT}", "annotations": []}]
    store.complete(record.id, [{"id": f"msg_out{i:020d}", "type": "message", "role": "assistant", "content": output}])


@pytest.fixture
def traced() -> Iterator[None]:
    gc.collect()
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def traced_now() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def test_a_store_at_its_cap_stays_within_1_5x_of_its_fresh_size_and_flat(traced: None) -> None:
    start = traced_now()
    store = ResponseStore(max_records=CAP)  # the default TTL: the expiry bookkeeping is counted too
    sizes = {}
    for i in range(CYCLES):
        cycle(store, i)
        if i + 1 in (CAP, CYCLES // 2, CYCLES):
            sizes[i + 1] = traced_now() - start
    assert len(store) == CAP
    fresh, half, after = sizes[CAP], sizes[CYCLES // 2], sizes[CYCLES]
    assert after <= 1.5 * fresh, (fresh, half, after)
    assert abs(after - half) <= 0.1 * fresh, (fresh, half, after)  # flat: no growth with the cycles
    store._check()


def test_the_cursor_memory_of_a_small_store_is_its_cap() -> None:
    store = ResponseStore(max_records=3)
    ids = []
    for n in range(5):
        ids.append(store.create("m", id=f"r{n}").id)
        store.delete(ids[-1])
    store.create("m", id="r5")
    assert len(store._removed) == 3
    for forgotten in ids[:2]:
        with pytest.raises(InvalidArgument, match="unknown cursor"):
            store.list(after=forgotten)
    for remembered in ids[2:5]:
        assert [record.id for record in store.list(after=remembered, order="asc").data] == ["r5"]
    store._check()


BIG = 1_000_000  # characters of the one text that makes a record big enough to see it go


@pytest.mark.parametrize("how", ["deleted", "evicted", "expired"])
def test_a_removed_record_is_released_at_once(how: str, traced: None) -> None:
    now = [1000.0]
    store = ResponseStore(max_records=2 if how == "evicted" else 3, ttl=60, clock=lambda: now[0])
    big = store.complete(store.create("m", "x" * BIG).id).id
    kept = store.complete(store.create("m", "small").id).id
    holding = traced_now()
    if how == "deleted":
        store.delete(big)
    elif how == "evicted":
        store.get(kept)  # the big one is now the least recently used
        store.create("m", "third")
    else:
        now[0] += 30
        store.create("m", "continue", previous_response_id=kept)  # restarts the small one's expiry
        now[0] += 45
        assert store.sweep() == 1
    released = holding - traced_now()
    assert released > 0.9 * BIG, f"a {how} record is still referenced by the store's bookkeeping ({released:,} B freed)"
    assert store.get(kept).id == kept
    store._check()
