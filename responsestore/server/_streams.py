"""Stream slots: a bound on the server-sent event streams open at once, so that streams never take every thread.

A threaded server (waitress, gunicorn's ``gthread``) serves each request in one of a fixed number of threads, and a
stream holds its thread until it ends, which may take minutes. Unbounded, streams would take every thread and
every other request (a retrieve, a create, a cancel) would wait. So every stream, live (``POST /v1/responses``
with ``stream: true``) or replayed (``GET /v1/responses/{id}?stream=true``), takes a slot before it starts and
gives it back when its body is closed: at its end, or when the server notices the client left (at the next
event it sends). When every slot is taken, the request is refused at once with ``503`` ``too_many_streams`` and
``Retry-After``, before anything is stored.
"""

from __future__ import annotations

import threading

from ._errors import ApiError

__all__ = ["RETRY_AFTER", "Slot", "StreamSlots"]

#: Seconds a client refused for too many streams is asked to wait (the ``Retry-After`` header).
RETRY_AFTER = 5


class Slot:
    """One stream's slot; :meth:`release` gives it back (once; releasing again does nothing)."""

    def __init__(self, slots: StreamSlots | None) -> None:
        self._slots = slots

    def release(self) -> None:
        """Give the slot back."""
        slots, self._slots = self._slots, None
        if slots is not None:
            slots._release()


class StreamSlots:
    """At most ``limit`` streams open at once (``None``: no bound). Thread-safe."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._open = 0

    @property
    def open(self) -> int:
        """How many streams hold a slot now."""
        return self._open

    def acquire(self) -> Slot:
        """Take a slot for a stream about to start.

        Raises:
            ApiError: ``503`` ``too_many_streams`` (with ``retry_after``): every slot is taken.
        """
        with self._lock:
            if self.limit is not None and self._open >= self.limit:
                message = f"Too many streams are open on this server (at most {self.limit}); retry later."
                raise ApiError(503, message, code="too_many_streams", retry_after=RETRY_AFTER)
            self._open += 1
        return Slot(self)

    def _release(self) -> None:
        with self._lock:
            self._open -= 1
