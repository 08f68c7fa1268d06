"""Making room within ``max_records``/``max_bytes`` (``responsestore._room``), against a plain model of a store.

The model is a list of records, each active or finished, expired or not, with its bytes and a recency rank. The
test gives ``room_for_new``/``room_to_grow`` the moves a backend gives them (sweep the expired records, evict the
least recently used finished one not spared) and checks the outcome against what the rules say should happen,
worked out from scratch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from responsestore import StoreFull
from responsestore._retention import Retention
from responsestore._room import Usage, room_for_new, room_to_grow


@dataclass
class Model:
    """A store: ``records`` as ``(name, active, expired, bytes)``, least recently used first."""

    records: list[tuple[int, bool, bool, int]]
    swept: int = 0
    evicted: list[int] = field(default_factory=list)

    def usage(self) -> Usage:
        active = [r for r in self.records if r[1]]
        return Usage(len(self.records), sum(r[3] for r in self.records), len(active), sum(r[3] for r in active))

    def sweep(self) -> Usage:
        self.swept += 1
        self.records = [r for r in self.records if not r[2]]
        return self.usage()

    def evictor(self, spared: set[int]) -> Callable[[], int | None]:
        def evict() -> int | None:
            for record in self.records:
                name, active, _, size = record
                if not active and name not in spared:
                    self.records.remove(record)
                    self.evicted.append(name)
                    return size
            return None

        return evict


records = st.lists(st.tuples(st.booleans(), st.booleans(), st.integers(0, 50)), max_size=12).map(
    lambda rows: [(n, *row) for n, row in enumerate(rows)]
)
limits = st.builds(
    Retention, ttl=st.none(), max_records=st.none() | st.integers(1, 12), max_bytes=st.none() | st.integers(1, 400)
)


@given(records, limits, st.integers(0, 100), st.data())
def test_a_new_record_evicts_the_fewest_least_recently_used_or_is_refused_having_evicted_nothing(
    rows: list[tuple[int, bool, bool, int]], retention: Retention, size: int, data: st.DataObject
) -> None:
    finished = [name for name, active, expired, _ in rows if not active and not expired]  # a spared one is live
    spared = set(data.draw(st.lists(st.sampled_from(finished), unique=True)) if finished else [])
    model = Model(list(rows))
    start = model.usage()
    was_over = retention.over(start.records + 1, start.total_bytes + size) is not None
    # What the rules say, worked out from scratch: sweep only if over; then evict, least recently used first.
    live = [r for r in rows if not r[2]] if was_over else list(rows)
    candidates = [r for r in live if not r[1] and r[0] not in spared]
    expected: list[int] | None = None
    for k in range(len(candidates) + 1):
        left = [r for r in live if r not in candidates[:k]]
        if retention.over(len(left) + 1, sum(r[3] for r in left) + size) is None:
            expected = [r[0] for r in candidates[:k]]
            break
    spared_bytes = [size_ for name, active, _, size_ in rows if name in spared and not active]

    if expected is None:
        with pytest.raises(StoreFull) as raised:
            room_for_new(
                retention, "resp_x", size, start, spared=spared_bytes, sweep=model.sweep, evict=model.evictor(spared)
            )
        assert model.evicted == []
        assert raised.value.bound in {"max_records", "max_bytes"}
    else:
        room_for_new(
            retention, "resp_x", size, start, spared=spared_bytes, sweep=model.sweep, evict=model.evictor(spared)
        )
        assert model.evicted == expected
        after = model.usage()
        assert retention.over(after.records + 1, after.total_bytes + size) is None
    assert model.swept == int(was_over)


@given(records, limits, st.integers(-20, 100), st.booleans(), st.data())
def test_a_growing_record_evicts_the_fewest_others_is_let_through_when_finishing_or_is_refused(
    rows: list[tuple[int, bool, bool, int]], retention: Retention, grows: int, finishing: bool, data: st.DataObject
) -> None:
    rows = [(name, active, False, size) for name, active, _, size in rows]  # a growth does not sweep here
    if not rows:
        rows = [(0, True, False, 10)]
    grower = data.draw(st.sampled_from([name for name, *_ in rows]))
    model = Model(list(rows))
    start = model.usage()
    total = start.total_bytes + grows
    others = sum(size for name, active, _, size in rows if not active and name != grower)

    def grow() -> None:
        room_to_grow(
            retention,
            "resp_x",
            total=total,
            grows=grows,
            others=others,
            finishing=finishing,
            evict=model.evictor({grower}),
        )

    max_bytes = retention.max_bytes
    candidates = [r for r in rows if not r[1] and r[0] != grower]
    needs_room = max_bytes is not None and grows > 0 and total > max_bytes
    if needs_room and max_bytes is not None and total - others > max_bytes and not finishing:
        with pytest.raises(StoreFull) as raised:
            grow()
        assert raised.value.bound == "max_bytes"
        assert model.evicted == []
        return
    grow()
    if not needs_room or (max_bytes is not None and total - others > max_bytes):
        assert model.evicted == []  # within the bound, shrinking, or a finishing record let through over it
        return
    assert max_bytes is not None
    k = next(k for k in range(len(candidates) + 1) if total - sum(r[3] for r in candidates[:k]) <= max_bytes)
    assert model.evicted == [r[0] for r in candidates[:k]]


@pytest.mark.parametrize(("max_records", "max_bytes", "bound"), [(2, None, "max_records"), (None, 25, "max_bytes")])
def test_evictions_that_run_out_while_still_over_are_refused_not_looped(
    max_records: int | None, max_bytes: int | None, bound: str
) -> None:
    """A backend whose usage says there is room to evict but whose recency index has nothing left."""
    retention = Retention(ttl=None, max_records=max_records, max_bytes=max_bytes)
    usage = Usage(records=2, total_bytes=20, active=0, active_bytes=0)
    with pytest.raises(StoreFull, match="resp_x") as raised:
        room_for_new(retention, "resp_x", 10, usage, spared=[], sweep=lambda: usage, evict=lambda: None)
    assert raised.value.bound == bound, "the bound the new record breaks is named"


def test_a_finishing_record_is_let_through_even_when_the_evictions_run_out() -> None:
    retention = Retention(ttl=None, max_records=None, max_bytes=25)
    # Evicting the 20 bytes of others would make room (30 - 20 <= 25), but the backend finds nothing to evict.
    room_to_grow(retention, "resp_x", total=30, grows=10, others=20, finishing=True, evict=lambda: None)
    with pytest.raises(StoreFull, match="resp_x"):
        room_to_grow(retention, "resp_x", total=30, grows=10, others=20, finishing=False, evict=lambda: None)
