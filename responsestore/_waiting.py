"""Waiting for a response to finish or for its next events, shared by the blocking and the asyncio faces.

Waiting is notification-driven: a waiter subscribes a *waker* (a callable that must not block) to one response,
and every write to that response calls its wakers after the write is visible. A backend shared between
processes (SQLite, Redis) also has a ``poll_interval``: waiters re-check that often, because a write made by
another process wakes nobody here (or, on Redis, a notification may be lost).

The loops are written once as *steps* that never block (:func:`wait_step`, :func:`stream_step`); the blocking
``wait``/``stream`` of :class:`~responsestore.BaseStore` and the ``async`` ones of :mod:`responsestore.aio`
drive the same steps, each sleeping in its own way for at most :func:`next_wait` seconds.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import WaitTimeout

if TYPE_CHECKING:
    from ._json import FrozenDict
    from ._records import ResponseRecord

__all__ = ["Subscription", "Waiters", "next_wait"]

Waker = Callable[[], Any]


class Waiters:
    """Wakers registered per response key; ``wake(key)`` calls every waker of that key.

    Wakers must be quick and must not block (``threading.Event.set``, ``loop.call_soon_threadsafe``): they may
    run while a backend holds its write lock.
    """

    __slots__ = ("_mutex", "_tokens", "_wakers")

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._wakers: dict[Hashable, dict[int, Waker]] = {}
        self._tokens = itertools.count()

    def register(self, key: Hashable, waker: Waker) -> int:
        """Call ``waker`` on every write to ``key`` until :meth:`unregister`; return the token to unregister."""
        with self._mutex:
            token = next(self._tokens)
            self._wakers.setdefault(key, {})[token] = waker
            return token

    def unregister(self, key: Hashable, token: int) -> None:
        """Stop calling the waker registered under ``token`` (unknown tokens are ignored)."""
        with self._mutex:
            wakers = self._wakers.get(key)
            if wakers is not None:
                wakers.pop(token, None)
                if not wakers:
                    del self._wakers[key]

    def wake(self, key: Hashable) -> None:
        """Call every waker registered for ``key``."""
        if key not in self._wakers:  # the common case, without the mutex: nobody waits
            return
        with self._mutex:
            wakers = list(self._wakers.get(key, {}).values())
        for waker in wakers:
            waker()

    def wake_all(self) -> None:
        """Call every registered waker (used when a store closes)."""
        with self._mutex:
            wakers = [waker for group in self._wakers.values() for waker in group.values()]
        for waker in wakers:
            waker()

    def __len__(self) -> int:
        """How many wakers are registered (tests check that cancelled waiters leave none behind)."""
        with self._mutex:
            return sum(len(group) for group in self._wakers.values())

    def _snapshot(self) -> Mapping[Hashable, int]:
        with self._mutex:
            return {key: len(group) for key, group in self._wakers.items()}


class Subscription:
    """A waker subscribed to the writes of one response; returned by :meth:`BaseStore.subscribe`.

    Use it as a context manager, or call :meth:`cancel` when done (cancelling twice is harmless).
    """

    __slots__ = ("_key", "_token", "_waiters")

    def __init__(self, waiters: Waiters, key: Hashable, waker: Waker) -> None:
        self._waiters = waiters
        self._key = key
        self._token: int | None = waiters.register(key, waker)

    def cancel(self) -> None:
        """Stop calling the waker."""
        token, self._token = self._token, None
        if token is not None:
            self._waiters.unregister(self._key, token)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()


def next_wait(poll_interval: float | None, deadline: float | None, what: str, id: str) -> float | None:
    """How long a waiter may sleep before re-checking: the poll interval, cut short by ``deadline``.

    ``deadline`` is a ``time.monotonic()`` reading or ``None``; the result ``None`` means "until woken".

    Raises:
        WaitTimeout: ``deadline`` has passed.
    """
    wait = poll_interval
    if deadline is not None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeout(f"timed out: {what}", id=id)
        wait = remaining if wait is None else min(wait, remaining)
    return wait


def wait_step(record: ResponseRecord) -> str | None:
    """One step of ``wait``: ``None`` when ``record`` has finished, else what a timeout message should say."""
    if record.is_terminal:
        return None
    return f"response {record.id!r} was still {record.status.value}"


def stream_step(record: ResponseRecord, events: tuple[FrozenDict, ...]) -> tuple[int | None, bool]:
    """One step of ``stream`` after yielding ``events``: ``(the last number yielded or None, whether done)``."""
    last = events[-1]["sequence_number"] if events else None
    return last, record.is_terminal
