"""The base of every conformance-suite mixin: the backend hook, the class-level knobs and the shared fixtures."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from responsestore import BaseStore
from responsestore.testing._clock import FakeClock

StoreFactory = Callable[..., BaseStore]


class ContractBase:
    """What every part of the conformance suite relies on: ``make_store`` and the knobs saying how heavy it is."""

    #: Options that make a store faster for property and stress tests without changing what it promises (for
    #: example ``{"synchronous": "NORMAL"}`` for SQLite); the test's own options win over these.
    fast_options: ClassVar[Mapping[str, Any]] = {}
    #: How many times lighter the property and stress tests run than on the memory backend: 1 runs them in full,
    #: a durable backend whose every write is a commit is best at 4 or more.
    weight: ClassVar[int] = 1

    def make_store(self, **options: Any) -> BaseStore:
        """A fresh, empty store of the backend under test; ``options`` go to its constructor (``clock``, ``ttl``,
        ``max_records``, ``max_chain_depth`` and the backend's own). Every call must return an independent store.
        """
        raise NotImplementedError(f"{type(self).__name__} must define make_store(self, **options)")

    def open_fast(self, **options: Any) -> BaseStore:
        """A fresh store with :attr:`fast_options` (``options`` win)."""
        return self.make_store(**{**self.fast_options, **options})

    def examples(self, count: int, minimum: int = 10) -> int:
        """A test's example or operation count for this backend: ``count`` divided by :attr:`weight`."""
        return count if self.weight == 1 else max(minimum, count // self.weight)

    def scaled(self, in_memory: int, elsewhere: int) -> int:
        """``in_memory`` for a backend of weight 1, ``elsewhere`` for a heavier one."""
        return in_memory if self.weight == 1 else elsewhere

    def scratch_directory(self) -> Path:
        """A fresh, empty directory for a store's files, removed when the test ends (for ``make_store``)."""
        directory = Path(tempfile.mkdtemp(prefix="responsestore-contract-"))
        self.__dict__.setdefault("_contract_scratch", []).append(directory)
        return directory

    @pytest.fixture(autouse=True)
    def _contract_scratch_cleanup(self) -> Iterator[None]:
        """Remove the directories :meth:`scratch_directory` made during the test."""
        yield
        for directory in self.__dict__.pop("_contract_scratch", []):
            shutil.rmtree(directory, ignore_errors=True)

    @pytest.fixture
    def clock(self) -> FakeClock:
        """A fake clock starting at a fixed time."""
        return FakeClock()

    @pytest.fixture
    def new_store(self) -> Iterator[StoreFactory]:
        """A factory of fresh stores (``make_store``); each is checked (``_check()``) and closed after the test."""
        opened: list[BaseStore] = []

        def factory(**options: Any) -> BaseStore:
            store = self.make_store(**options)
            opened.append(store)
            return store

        yield factory
        failures: list[BaseException] = []
        for store in opened:  # every store is closed, even when an earlier one failed its check
            try:
                store._check()
            except Exception as exc:  # noqa: BLE001, PERF203 - re-raised below, after every store is closed
                failures.append(exc)
            finally:
                store.close()
        if failures:
            raise failures[0]

    @pytest.fixture
    def store(self, new_store: StoreFactory, clock: FakeClock) -> BaseStore:
        """A fresh store of the backend under test, on the fake ``clock``."""
        return new_store(clock=clock)
