"""The memory backend's per-owner maps under concurrency: an owner's map comes and goes with its records.

Lock-free ``get`` looks an id up in its owner's map while writers create the map (an owner's first record) and
drop it (its last record removed). Readers must see each record of the right owner or none, never another
owner's record, never an error other than ResponseNotFound; and the maps must agree with the counters after.
"""

from __future__ import annotations

import threading

from responsestore import ResponseNotFound, ResponseStore

OWNERS = ["a", "b", None]
ROUNDS = 3_000


def test_gets_race_owners_whose_maps_appear_and_disappear(fast_switching: None) -> None:
    store = ResponseStore()
    ids = [f"resp_{n}" for n in range(4)]
    problems: list[str] = []
    seen = dict.fromkeys(OWNERS, 0)
    done = threading.Event()
    start = threading.Barrier(4)

    def write(owner: str | None) -> None:
        start.wait()
        for n in range(ROUNDS):
            id = ids[n % len(ids)]
            store.create("m", f"{owner} {n}", id=id, owner=owner)
            store.delete(id, owner=owner)  # the owner's only record: its map goes too (owner None keeps its own)

    def read() -> None:
        start.wait()
        while not done.is_set():
            for owner in OWNERS:
                for id in ids:
                    try:
                        record = store.get(id, owner=owner)
                    except ResponseNotFound:
                        continue
                    except Exception as error:  # noqa: BLE001 - any other error is the finding
                        problems.append(f"get({id!r}, owner={owner!r}) raised {error!r}")
                        continue
                    if record.owner != owner or record.id != id:
                        problems.append(f"get({id!r}, owner={owner!r}) returned {record.owner!r}/{record.id!r}")
                    seen[owner] += 1

    writers = [threading.Thread(target=write, args=(owner,)) for owner in OWNERS]
    reader = threading.Thread(target=read)
    for thread in [*writers, reader]:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    reader.join()

    assert problems == []
    assert sum(seen.values()) > 0, "the reader never overlapped a writer: the test checked nothing"
    assert len(store) == 0
    assert set(store._maps) == {None}, "an owner's empty map was kept"
    stats = store.stats()
    assert (stats.created, stats.deleted) == (len(OWNERS) * ROUNDS, len(OWNERS) * ROUNDS)
    store._check()
