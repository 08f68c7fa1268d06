"""Test doubles shared by the test suite: a controllable clock."""

from __future__ import annotations

import threading


class FakeClock:
    """A clock that only moves when told to; thread-safe.

    ``repeat`` makes consecutive readings return the same time, so tests exercise timestamp ties, which is where
    naive cursor paging skips or repeats records.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def set(self, now: float) -> None:
        with self._lock:
            self._now = now
