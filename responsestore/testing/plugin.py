"""pytest fixtures for code built on responsestore, loaded automatically (the ``pytest11`` entry point).

- ``fake_clock``: a fresh :class:`~responsestore.testing.FakeClock`;
- ``response_store``: a fresh in-memory :class:`~responsestore.ResponseStore` on ``fake_clock``;
- ``response_store_factory``: ``factory(url_or_options=None, **options)`` opens a store from a URL
  (``responsestore.open``) or, given no URL, an in-memory one; either runs on ``fake_clock`` unless ``clock`` is
  given; every store it opened is closed at teardown;
- ``sqlite_response_store``: a fresh :class:`~responsestore.SQLiteStore` in ``tmp_path`` on ``fake_clock``.

Loading the plugin imports neither hypothesis nor the conformance suite.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import pytest

import responsestore
from responsestore import BaseStore, ResponseStore, SQLiteStore

from ._clock import FakeClock

# The conformance suite's asserts live in the installed package: have pytest rewrite them as it does a test
# module's, so a failing contract test explains itself.
pytest.register_assert_rewrite("responsestore.testing._suite", "responsestore.testing.contract")

__all__ = ["StoreFactory", "fake_clock", "response_store", "response_store_factory", "sqlite_response_store"]


class StoreFactory(Protocol):
    """The ``response_store_factory`` fixture's type: opens a store from a URL, a mapping of options, or neither."""

    def __call__(self, url_or_options: str | Mapping[str, Any] | None = None, /, **options: Any) -> BaseStore:
        """Open a fresh store (closed when the test ends)."""
        ...


@pytest.fixture
def fake_clock() -> FakeClock:
    """A fresh fake clock, at 14 November 2023 until the test moves it."""
    return FakeClock()


@pytest.fixture
def response_store(fake_clock: FakeClock) -> Iterator[ResponseStore]:
    """A fresh in-memory store on ``fake_clock``, closed when the test ends."""
    store = ResponseStore(clock=fake_clock)
    yield store
    store.close()


@pytest.fixture
def response_store_factory(fake_clock: FakeClock) -> Iterator[StoreFactory]:
    """A factory of fresh stores: ``factory("sqlite:///path.db", ttl=60)``, ``factory({"max_records": 5})``.

    A URL goes to :func:`responsestore.open`; a mapping (or nothing) and keyword options go to an in-memory
    :class:`~responsestore.ResponseStore`. Stores run on ``fake_clock`` unless ``clock=`` is given, and every
    store the factory opened is closed when the test ends.
    """
    opened: list[BaseStore] = []

    def factory(url_or_options: str | Mapping[str, Any] | None = None, /, **options: Any) -> BaseStore:
        if isinstance(url_or_options, str):
            store = responsestore.open(url_or_options, **{"clock": fake_clock, **options})
        else:
            store = ResponseStore(**{"clock": fake_clock, **(url_or_options or {}), **options})
        opened.append(store)
        return store

    yield factory
    failures: list[BaseException] = []
    for store in reversed(opened):  # every store is closed, even when closing an earlier one failed
        try:
            store.close()
        except Exception as exc:  # noqa: BLE001, PERF203 - re-raised below, after the others are closed
            failures.append(exc)
    if failures:
        raise failures[0]


@pytest.fixture
def sqlite_response_store(tmp_path: Path, fake_clock: FakeClock) -> Iterator[SQLiteStore]:
    """A fresh SQLite store in ``tmp_path`` (``responses.db``) on ``fake_clock``, closed when the test ends."""
    store = SQLiteStore(tmp_path / "responses.db", clock=fake_clock)
    yield store
    store.close()
