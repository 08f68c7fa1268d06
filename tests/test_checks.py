"""Describing a caller's value in an error message (``responsestore._checks``): brief, bounded, never recursive."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from responsestore import InvalidArgument, ResponseStatus
from responsestore._checks import MAX_DESCRIPTION, describe, has_lone_surrogate
from responsestore._json import freeze


def deep_list(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


class Hostile:
    def __repr__(self) -> str:
        raise AssertionError("describe must not call a caller's __repr__")

    def __len__(self) -> int:
        raise RuntimeError("broken __len__")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "None"),
        (True, "True"),
        (3, "3"),
        (-2.5, "-2.5"),
        (float("nan"), "nan"),
        ("abc", "'abc'"),
        ("\ud83d", "'\\ud83d'"),
        (ResponseStatus.QUEUED, "'queued'"),
        ([1, 2, 3], "a list of 3 items"),
        ({"a": 1}, "a dict of 1 item"),
        (b"xy", "a bytes of 2 bytes"),
        (Hostile(), "a Hostile"),
        (object(), "an object"),
    ],
)
def test_short_values_read_as_their_repr_and_containers_by_size(value: object, expected: str) -> None:
    assert describe(value) == expected


def test_a_long_string_is_cut_with_a_marker_of_its_length() -> None:
    text = "x" * (4 * 1024 * 1024)
    description = describe(text)
    assert description == repr("x" * MAX_DESCRIPTION) + f"…({len(text)} chars)"
    assert len(describe(text, 10)) < 40


def test_a_huge_int_is_described_by_its_size() -> None:
    assert describe(10**100_000) == "an int of about 10**100000"
    assert describe(-(10**5000)).startswith("an int of about -10**")


def test_deep_values_do_not_recurse() -> None:
    assert describe(deep_list(10_000)) == "a list of 1 item"


@given(
    st.text()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats()
    | st.binary()
    | st.lists(st.integers())
    | st.dictionaries(st.text(), st.text())
)
def test_any_value_gets_a_bounded_description(value: object) -> None:
    assert len(describe(value)) <= MAX_DESCRIPTION + 120


def test_lone_surrogates_are_found() -> None:
    assert has_lone_surrogate(json.loads('"a\\ud83db"'))
    assert has_lone_surrogate("\udfff")
    assert not has_lone_surrogate("plain ascii")
    assert not has_lone_surrogate("a pair is fine: \U0001f600 é")


@pytest.mark.parametrize(
    "value",
    [
        json.loads('"\\ud83d"'),
        {"text": json.loads('"\\udc00"')},
        {json.loads('"k\\ud83d"'): 1},
        [1, ["\ud800"]],
    ],
)
def test_frozen_json_refuses_lone_surrogates(value: object) -> None:
    with pytest.raises(InvalidArgument, match="lone surrogate"):
        freeze(value, "value")


def test_a_frozen_error_path_is_bounded() -> None:
    value: Any = float("nan")
    for _ in range(60):
        value = {"k" * 1000: value}
    with pytest.raises(InvalidArgument) as info:
        freeze(value, "value")
    assert len(str(info.value)) < 1000
