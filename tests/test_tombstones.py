"""Tombstones (``responsestore.backend.Tombstones``): the places of the last removed records, for cursors."""

from __future__ import annotations

from collections import OrderedDict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from responsestore.backend import CURSOR_MEMORY, Tombstones


def test_the_bound_is_cursor_memory_of_the_cap() -> None:
    assert Tombstones[str, int](None).bound == CURSOR_MEMORY
    assert Tombstones[str, int](3).bound == 3
    assert Tombstones[str, int](CURSOR_MEMORY * 2).bound == CURSOR_MEMORY


def test_the_oldest_removal_is_forgotten_first_and_a_stored_record_has_none() -> None:
    stones: Tombstones[str, int] = Tombstones(2)
    stones.bury("a", 1)
    stones.bury("b", 2)
    stones.bury("c", 3)
    assert (stones.place("a"), stones.place("b"), stones.place("c")) == (None, 2, 3)
    stones.revive("b")
    assert stones.place("b") is None
    assert list(stones.keys()) == ["c"]
    stones.check({"a", "b"})
    with pytest.raises(AssertionError, match="also has a tombstone"):
        stones.check({"c"})
    stones.clear()
    assert len(stones) == 0


operations = st.lists(
    st.tuples(st.sampled_from(["bury", "revive"]), st.sampled_from("abcdef"), st.integers(0, 99)), max_size=60
)


@given(st.integers(1, 5), operations)
def test_against_a_plain_model(bound: int, steps: list[tuple[str, str, int]]) -> None:
    stones: Tombstones[str, int] = Tombstones(bound)
    model: OrderedDict[str, int] = OrderedDict()  # the last `bound` removals, oldest first
    for op, key, place in steps:
        if op == "bury":
            stones.bury(key, place)
            model.pop(key, None)
            model[key] = place
            while len(model) > bound:
                model.popitem(last=False)
        else:
            stones.revive(key)
            model.pop(key, None)
        assert list(stones.keys()) == list(model)
        assert all(stones.place(k) == v for k, v in model.items())
        stones.check(set())
