"""``Sweeper``: the daemon thread that sweeps expired records out of an idle store."""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

import pytest

from responsestore import InvalidArgument, ResponseStore, StorageError, Sweeper
from responsestore._retention import MAX_SWEEP_BACKOFF
from responsestore.testing import FakeClock

WAIT = 60.0  # generous bound on every wait: a stuck thread becomes a failure, not a hang


def wait_until(condition: Any, timeout: float = WAIT) -> bool:
    """Poll ``condition`` with short pauses until it holds or ``timeout`` seconds pass; return whether it held."""
    pause = threading.Event()  # never set: a bounded pause between polls
    for _ in range(int(timeout / 0.005)):
        if condition():
            return True
        pause.wait(0.005)
    return bool(condition())


@pytest.fixture
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[BaseException | None]:
    """Exceptions that escaped any thread during the test."""
    errors: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    return errors


def test_sweeper_removes_expired_records_from_an_idle_store(thread_errors: list[BaseException | None]) -> None:
    clock = FakeClock()
    store = ResponseStore(clock=clock, ttl=10, max_records=None)
    expiring = [store.create("m", "x") for _ in range(40)]
    kept = store.create("m", "kept", ttl=None)
    with Sweeper(store, interval=0.01) as sweeper:
        clock.advance(10)
        assert len(store) == 1  # invisible at once, before any sweep
        assert wait_until(lambda: sweeper.swept >= 40), f"swept {sweeper.swept} of 40"
        assert sweeper.swept == 40
        assert store.sweep() == 0  # nothing left for anyone else
        # It keeps going: a second batch expires later and is swept too.
        later = [store.create("m", "y", ttl=5) for _ in range(7)]
        clock.advance(5)
        assert wait_until(lambda: sweeper.swept >= 47), f"swept {sweeper.swept} of 47"
        assert sweeper.swept == 47
    assert not sweeper.running
    assert store.sweep() == 0
    store._check()
    stats = store.stats()
    assert (stats.records, stats.created, stats.expired) == (1, 48, 47)
    assert store.get(kept.id) == kept
    assert not any(record.id in store for record in expiring + later)
    assert thread_errors == []


def test_stop_ends_the_thread_without_waiting_for_the_interval() -> None:
    store = ResponseStore()
    sweeper = Sweeper(store, interval=3600)  # stop must wake it: waiting out the interval would time out below
    assert sweeper.running
    sweeper.stop(timeout=WAIT)
    assert not sweeper.running
    assert sweeper.swept == 0
    sweeper.stop(timeout=WAIT)  # a second stop is harmless
    assert not sweeper.running


def test_context_manager_stops_the_sweeper() -> None:
    store = ResponseStore()
    with Sweeper(store, interval=3600) as sweeper:
        assert isinstance(sweeper, Sweeper)
        assert sweeper.running
    assert not sweeper.running


def test_context_manager_stops_the_sweeper_on_error() -> None:
    store = ResponseStore()
    with pytest.raises(KeyError), Sweeper(store, interval=3600) as sweeper:
        raise KeyError("boom")
    assert not sweeper.running


@pytest.mark.parametrize("interval", [0, 0.0, -1, -0.5, math.nan, -math.inf, "1", None, True, False, [1]], ids=repr)
def test_invalid_interval_is_refused(interval: Any) -> None:
    threads = threading.active_count()
    with pytest.raises(InvalidArgument):
        Sweeper(ResponseStore(), interval)
    assert threading.active_count() == threads  # no thread was started


@pytest.mark.parametrize("interval", [math.inf, 1e300], ids=repr)
def test_interval_too_long_to_wait_is_refused_or_works(
    interval: float, thread_errors: list[BaseException | None]
) -> None:
    """An interval beyond ``threading.TIMEOUT_MAX`` must not start a thread that dies at its first wait."""
    try:
        sweeper = Sweeper(ResponseStore(), interval)
    except InvalidArgument:
        return
    sweeper.stop(timeout=WAIT)
    assert not sweeper.running
    assert thread_errors == []


class FlakyStore(ResponseStore):
    """A store whose first ``failures`` sweeps raise, as a locked database would; every call is signalled."""

    def __init__(self, failures: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.failures_left = failures
        self.calls = threading.Semaphore(0)

    def sweep(self) -> int:
        try:
            if self.failures_left > 0:
                self.failures_left -= 1
                raise StorageError("database is locked (simulated)")
            return super().sweep()
        finally:
            self.calls.release()


def test_a_failing_sweep_is_logged_counted_and_retried(
    caplog: pytest.LogCaptureFixture, thread_errors: list[BaseException | None]
) -> None:
    clock = FakeClock()
    store = FlakyStore(failures=2, clock=clock, ttl=10, max_records=None)
    for _ in range(5):
        store.create("m", "x")
    clock.advance(10)
    with caplog.at_level(logging.ERROR, logger="responsestore"), Sweeper(store, interval=0.01) as sweeper:
        for _ in range(3):  # two failures, then a sweep that works
            assert store.calls.acquire(timeout=WAIT)
            assert sweeper.running
        assert wait_until(lambda: sweeper.stats().sweeps >= 1)
        stats = sweeper.stats()
        assert (stats.failures, stats.consecutive_failures, stats.swept) == (2, 0, 5)
        assert isinstance(stats.last_error, StorageError)
        assert sweeper.swept == 5
        # It keeps sweeping at its interval afterwards.
        store.create("m", "y", ttl=1)
        clock.advance(1)
        assert wait_until(lambda: sweeper.stats().swept == 6)
        assert sweeper.running
    assert not sweeper.running
    failures = [r for r in caplog.records if r.name == "responsestore" and r.levelno == logging.ERROR]
    assert len(failures) == 2
    assert all(r.exc_info is not None and r.exc_info[0] is StorageError for r in failures)
    assert "1 in a row" in failures[0].getMessage()
    assert "2 in a row" in failures[1].getMessage()
    assert thread_errors == []
    store._check()


def test_stop_is_prompt_while_backing_off_after_failures() -> None:
    store = FlakyStore(failures=1_000_000)
    sweeper = Sweeper(store, interval=0.01)
    for _ in range(3):
        assert store.calls.acquire(timeout=WAIT)
    assert sweeper.running
    assert sweeper.stats().failures >= 2
    started = time.monotonic()
    sweeper.stop(timeout=WAIT)
    assert not sweeper.running
    assert time.monotonic() - started < WAIT / 2


def test_backoff_doubles_and_is_bounded() -> None:
    sweeper = Sweeper(ResponseStore(), interval=3600)
    try:
        delays = []
        for failures in (0, 1, 2, 3, 1000):
            sweeper._consecutive_failures = failures
            delays.append(sweeper._delay())
        sweeper._consecutive_failures = 0
    finally:
        sweeper.stop(timeout=WAIT)
    assert delays == [3600, 3600, 3600, 3600, 3600]  # an interval above the ceiling is never exceeded
    quick = Sweeper(ResponseStore(), interval=1)
    try:
        delays = []
        for failures in (0, 1, 2, 3, 1000):
            quick._consecutive_failures = failures
            delays.append(quick._delay())
        quick._consecutive_failures = 0
    finally:
        quick.stop(timeout=WAIT)
    assert delays == [1, 2, 4, 8, MAX_SWEEP_BACKOFF]
