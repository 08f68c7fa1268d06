"""Soak: a million create -> complete cycles through a capped in-memory store keep its memory flat.

With ``max_records=1000`` every create past the first thousand evicts one record, so the store's bookkeeping
(the map, the ordering index, both lazy heaps, the removed-cursor memory) turns over constantly. A leak anywhere
in it grows with the cycles. Tracing every allocation for a million cycles would take several times as long, so
retained memory is measured two ways that are cheap outside short traced windows:

- ``sys.getallocatedblocks()`` after a full collection, right after warm-up and at the end: every leaked object
  is at least one block, so this catches a leak of even one object per few dozen cycles over the whole run;
- ``tracemalloc`` during a window just after warm-up and one at the end, each long enough for the whole store
  to turn over: what was allocated in the window and is still alive is the store's footprint (plus anything the
  window leaked), and it must not grow.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc

import pytest

from responsestore import ResponseStore

CYCLES = 10**6
MAX_RECORDS = 1000
WARM_UP = 100_000
#: Longer than it takes to replace every record (1000), every remembered removed id (10 000) and both heaps.
WINDOW = 15_000
CHECK_EVERY = 1000
MAX_BLOCK_GROWTH = 20_000  # measured noise: +-6 000 blocks, with the phase of heap compaction
MAX_FOOTPRINT_GROWTH = 2 * 1024 * 1024  # bytes; measured: well under 0.5 MB either way
MAX_FOOTPRINT = 16 * 1024 * 1024  # bytes; measured: about 3.5 MB for 1000 records and 10 000 remembered ids


def retained_blocks() -> int:
    gc.collect()
    return sys.getallocatedblocks()


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_a_million_cycles_keep_the_store_bounded_and_memory_flat() -> None:
    store = ResponseStore(max_records=MAX_RECORDS)
    done = 0

    def run(cycles: int) -> None:
        nonlocal done
        create, complete = store.create, store.complete
        for _ in range(cycles // CHECK_EVERY):
            for _ in range(CHECK_EVERY):
                complete(create("m").id)
            done += CHECK_EVERY
            assert len(store) == min(done, MAX_RECORDS)

    def traced_footprint(cycles: int) -> int:
        tracemalloc.start()
        try:
            run(cycles)
            return tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()

    run(WARM_UP)
    blocks_before = retained_blocks()
    footprint_before = traced_footprint(WINDOW)
    run(CYCLES - WARM_UP - 2 * WINDOW)
    footprint_after = traced_footprint(WINDOW)
    blocks_after = retained_blocks()

    assert done == CYCLES
    assert blocks_after - blocks_before < MAX_BLOCK_GROWTH, (blocks_before, blocks_after)
    assert abs(footprint_after - footprint_before) < MAX_FOOTPRINT_GROWTH, (footprint_before, footprint_after)
    assert footprint_after < MAX_FOOTPRINT
    store._check()
    stats = store.stats()
    assert (stats.records, stats.created, stats.evicted, stats.deleted, stats.expired) == (
        MAX_RECORDS,
        CYCLES,
        CYCLES - MAX_RECORDS,
        0,
        0,
    )
    assert stats.by_status["completed"] == MAX_RECORDS
    assert sum(stats.by_status.values()) == stats.records
