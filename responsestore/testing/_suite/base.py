"""The base of every conformance-suite mixin: the backend hook, the class-level knobs and the shared fixtures."""

from __future__ import annotations

import datetime
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import hypothesis
import pytest
from hypothesis import HealthCheck

from responsestore import BaseStore
from responsestore.testing._clock import FakeClock

#: The type of the ``new_store`` fixture, which makes a fresh store of the backend under test with
#: ``make_store(**options)``, then checks and closes it when the test ends.
StoreFactory = Callable[..., BaseStore]

#: The failure message of a store that reported a change it did not make (checked before a test waits on it).
LOST_WRITE = "the call returned, so its change must be visible at once: the store lost a write"


class Budget:
    """What is left of one test's time for waiting: every join, wait and stream of the test takes its timeout here.

    So a test waits at most ``seconds`` in all, however many threads it joins one after the other, and a store that
    loses a wake-up, an event or a write fails the test with a message naming what was awaited instead of hanging.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def left(self) -> float:
        """Seconds left, at least a millisecond (a timeout for ``wait``, ``stream`` or ``join``, never negative)."""
        return max(0.001, self._end - time.monotonic())

    def join(self, threads: Iterable[threading.Thread], what: str) -> None:
        """Join ``threads`` within the budget; fail naming ``what`` they were doing if one is still running."""
        threads = list(threads)
        for thread in threads:
            thread.join(self.left())
        alive = [thread.name for thread in threads if thread.is_alive()]
        assert not alive, (
            f"{what}: {len(alive)} thread(s) still running after the test's time limit of {self.seconds:g} s "
            f"({', '.join(alive[:5])}): a lost wake-up, a lost write or event, or a deadlock in the store"
        )


class ContractBase:
    """What every part of the conformance suite relies on: ``make_store`` and the knobs saying how heavy it is.

    A backend's test class sets the class attributes below to tune the run: :attr:`fast_options` and
    :attr:`weight` (how heavy the backend is), :attr:`max_examples`, :attr:`deadline` and
    :attr:`hypothesis_settings` (the hypothesis settings of the property tests and state machines, see
    :meth:`hypothesis`) and :attr:`time_limit` (the bound on one test's waiting).
    """

    #: Options that make a store faster for property and stress tests without changing what it promises (for
    #: example ``{"synchronous": "NORMAL"}`` for SQLite); the test's own options win over these.
    fast_options: ClassVar[Mapping[str, Any]] = {}
    #: How many times lighter the property and stress tests run than on the memory backend: 1 runs them in full,
    #: a durable backend whose every write is a commit is best at 4 or more.
    weight: ClassVar[int] = 1
    #: When set, every hypothesis property test and state machine of the suite runs exactly this many examples.
    #: ``None`` (the default): each runs its share of the active hypothesis profile's ``max_examples`` (a state
    #: machine a quarter, say), divided by :attr:`weight`.
    max_examples: ClassVar[int | None] = None
    #: hypothesis' per-example deadline for the suite's property tests (milliseconds, as hypothesis counts them, a
    #: ``timedelta``, or ``None``).
    #: ``None`` by default, whatever the profile says: one example of a store opens files or connections, commits,
    #: walks a whole store in ``_check()`` and may meet a stalled CI machine, so its time says nothing about a bug,
    #: and a deadline would fail healthy backends at random. Hangs are bounded by :attr:`time_limit` instead.
    deadline: ClassVar[float | datetime.timedelta | None] = None
    #: Further ``hypothesis.settings`` keyword arguments for every property test and state machine of the suite
    #: (``{"phases": [Phase.explicit, Phase.generate]}`` to skip shrinking, ``{"database": None}``,
    #: ``{"report_multiple_bugs": True}``, ...); they win over the suite's own and over :attr:`max_examples`.
    hypothesis_settings: ClassVar[Mapping[str, Any]] = {}
    #: The seconds one test may spend waiting, in all, on its threads, waits and streams before it fails with a
    #: message naming what it waited for (a store that loses a wake-up, an event or a write would hang it
    #: otherwise). Generous: a healthy store needs a fraction of it; raise it for a slow remote backend.
    time_limit: ClassVar[float] = 60.0

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

    def profile_examples(self) -> int:
        """The example count the suite's property tests take their shares of: the active profile's ``max_examples``."""
        count: int = hypothesis.settings().max_examples
        return count

    def hypothesis(self, examples: int, **options: Any) -> hypothesis.settings:
        """The settings of one of the suite's property tests or state machines, on top of the active profile.

        ``examples`` is the test's own example count (its share of :meth:`profile_examples`, already scaled for
        :attr:`weight`) and ``options`` its own settings (``stateful_step_count``, ...). Then the suite's rules
        apply: :attr:`max_examples` (when set) replaces ``examples``, :attr:`deadline` is the deadline, the first
        bug found is reported without a hunt for others (``report_multiple_bugs=False``: a broken backend fails
        once, fast), the ``too_slow`` health check is off; and :attr:`hypothesis_settings` win over all of it.
        """
        chosen: dict[str, Any] = {
            "suppress_health_check": [HealthCheck.too_slow],
            "report_multiple_bugs": False,
            **options,
            "max_examples": examples if self.max_examples is None else self.max_examples,
            "deadline": self.deadline,
        }
        chosen.update(self.hypothesis_settings)
        return hypothesis.settings(**chosen)

    def _budget(self) -> Budget:
        """A fresh :class:`Budget` of :attr:`time_limit` seconds, for the waits of one test or one stress run."""
        return Budget(self.time_limit)

    def _stress_budget(self) -> Budget:
        """The :class:`Budget` of one stress run, whose threads do real work while the test waits for them: four
        times :attr:`time_limit`."""
        return Budget(4 * self.time_limit)

    @contextmanager
    def example_store(self, **options: Any) -> Iterator[BaseStore]:
        """A fresh store (``make_store``) for one hypothesis example: checked (``_check()``) and closed at its end.

        A property test opens its stores here, not from the ``new_store`` fixture, so that each example closes what
        it opened (a backend with a connection pool would run out of connections if every example's store waited
        for the end of the test).
        """
        store = self.make_store(**options)
        try:
            yield store
            store._check()
        finally:
            store.close()

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
