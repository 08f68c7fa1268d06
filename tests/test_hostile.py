"""Hostile input on every public method and every backend: only documented errors, bounded messages, nothing
changed by a refused call, and the same outcome on every backend as on memory (see ``tests/hostile.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from .hostile import CALLS, SPECIALS, Stores, hostile_values, run_everywhere, special_cases


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    pair = Stores(tmp_path_factory.mktemp("hostile"))
    yield pair
    pair.close()


@pytest.mark.parametrize(("name", "special"), list(special_cases()))
def test_special_value(stores: Stores, name: str, special: str) -> None:
    run_everywhere(stores, name, SPECIALS[special])


@pytest.mark.parametrize("name", sorted(CALLS))
@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(value=hostile_values())
def test_hostile_value(stores: Stores, name: str, value: Any) -> None:
    run_everywhere(stores, name, value)
