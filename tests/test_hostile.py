"""Hostile input on every public method and both backends: only documented errors, bounded messages, nothing
changed by a refused call, and the same outcome on memory and SQLite (see ``tests/hostile.py``).

Calls that still fail because of code in the backends or the store core are in ``test_hostile_backends.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from .hostile import CALLS, SPECIALS, Stores, hostile_values, run_everywhere, special_cases

#: (call, special value) pairs that fail inside the backends or the store core: tested in test_hostile_backends.
BACKEND_FAILURES: frozenset[tuple[str, str]] = frozenset(
    {
        ("create.model", "surrogate"),
        ("create.model", "surrogate_in_text"),
        ("create.model", "surrogate_id"),
        ("create.model", "int_10_5000"),
        ("create.model", "huge_int_json"),
        ("create.model", "deep_list"),
        ("create.model", "deep_dict"),
        ("create.model", "deep_item"),
        ("create.model", "json_4mb"),
        ("create.model", "key_4mb"),
        ("create.background", "int_10_5000"),
        ("create.background", "huge_int_json"),
        ("create.background", "deep_list"),
        ("create.background", "deep_dict"),
        ("create.background", "deep_item"),
        ("create.background", "str_4mb"),
        ("create.background", "id_4mb"),
        ("create.background", "json_4mb"),
        ("create.background", "key_4mb"),
        ("create.status", "int_10_5000"),
        ("create.status", "huge_int_json"),
        ("create.status", "deep_list"),
        ("create.status", "deep_dict"),
        ("create.status", "deep_item"),
        ("create.status", "str_4mb"),
        ("create.status", "id_4mb"),
        ("create.status", "json_4mb"),
        ("create.status", "key_4mb"),
        ("get.id", "surrogate"),
        ("get.id", "surrogate_in_text"),
        ("get.id", "surrogate_id"),
        ("contains.id", "surrogate"),
        ("contains.id", "surrogate_in_text"),
        ("contains.id", "surrogate_id"),
        ("in", "surrogate"),
        ("in", "surrogate_in_text"),
        ("in", "surrogate_id"),
    }
)

#: The calls those failures are in: their hypothesis test is in test_hostile_backends too.
BACKEND_FAILING_CALLS = frozenset(name for name, _ in BACKEND_FAILURES)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    pair = Stores(tmp_path_factory.mktemp("hostile"))
    yield pair
    pair.close()


@pytest.mark.parametrize(("name", "special"), [case for case in special_cases() if case not in BACKEND_FAILURES])
def test_special_value(stores: Stores, name: str, special: str) -> None:
    run_everywhere(stores, name, SPECIALS[special])


@pytest.mark.parametrize("name", sorted(set(CALLS) - BACKEND_FAILING_CALLS))
@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(value=hostile_values())
def test_hostile_value(stores: Stores, name: str, value: Any) -> None:
    run_everywhere(stores, name, value)
