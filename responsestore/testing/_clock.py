"""A clock that only moves when told to."""

from __future__ import annotations

import threading


class FakeClock:
    """A settable, advanceable clock, usable as any store's ``clock=``; thread-safe.

    It reads ``start`` (seconds since the epoch, by default 14 November 2023) until :meth:`advance` or
    :meth:`set` moves it. Consecutive readings with no move in between are equal, so tests see timestamp ties,
    which is where naive cursor paging skips or repeats records. It may be moved backwards, as real wall clocks
    sometimes are, and even set to ``nan`` or an infinity, to test what a store does with a broken clock.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        """The current fake time, in seconds since the epoch."""
        with self._lock:
            return self._now

    def __repr__(self) -> str:
        return f"FakeClock({self()!r})"

    def advance(self, seconds: float) -> None:
        """Move the clock by ``seconds`` (negative moves it back)."""
        with self._lock:
            self._now += seconds

    def set(self, now: float) -> None:
        """Set the clock to ``now`` seconds since the epoch."""
        with self._lock:
            self._now = now
