"""``Sweeper``: the daemon thread that sweeps expired records out of an idle store."""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest

from responsestore import InvalidArgument, ResponseStore, Sweeper

from .fakes import FakeClock

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
