"""Deferred recency: the reads a backend has not yet written as "recently used", kept until its next write.

Eviction takes the least recently used finished record, so every read of a finished record is a use. Writing
that down on each read would turn every ``get`` into a write, so every backend defers it the same way: a read
marks the record in a :class:`TouchLog` (no lock: one ``deque.append``), and the next write of the store takes
the whole log and records the marks, in the order of the reads, inside its own atomic step. A write that fails
gives the marks back, ahead of any made meanwhile, so none is lost and the order holds.

The log is bounded (:data:`~responsestore.backend.TOUCH_LOG` marks): a store that is only read for longer than
that forgets its oldest reads, which only makes eviction a little less exact.

What a mark is depends on the backend (a record, a key, an ``(owner key, id)`` pair); how it is written is the
backend's. When to mark, when to write the marks and what to do when writing fails are decided here, once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

__all__ = ["TOUCH_LOG", "TouchLog"]

#: How many recency marks of lock-free reads a backend may queue until its next write applies them.
TOUCH_LOG = 65_536

T = TypeVar("T")


class TouchLog(Generic[T]):
    """The marks of reads not yet written, oldest first, at most ``bound`` of them.

    Thread-safe without a lock: marking is one ``deque.append``, and :meth:`take` pops marks one at a time, so a
    mark made while a write takes the log is either taken by it or left for the next write, never lost twice
    nor taken twice.
    """

    __slots__ = ("_marks", "bound", "mark", "mark_all")

    def __init__(self, bound: int = TOUCH_LOG) -> None:
        self._marks: deque[T] = deque(maxlen=bound)
        #: The most marks the log keeps (older ones are forgotten first).
        self.bound = bound
        #: Mark one read (the bound method of the deque: as fast as a mark can be).
        self.mark = self._marks.append
        #: Mark several reads at once, in order (one C call: no other thread's mark lands in between).
        self.mark_all: Callable[[Iterable[T]], None] = self._marks.extend

    def __len__(self) -> int:
        return len(self._marks)

    def __bool__(self) -> bool:
        return bool(self._marks)

    def take(self) -> list[T]:
        """Remove and return every mark, oldest first (the marks a write is about to record)."""
        marks = self._marks
        taken: list[T] = []
        try:
            while marks:
                taken.append(marks.popleft())
        except IndexError:  # another thread took the last ones
            pass
        return taken

    def give_back(self, marks: list[T]) -> None:
        """Return marks :meth:`take` gave, unwritten: they go ahead of any made since, still the oldest."""
        self._marks.extendleft(reversed(marks))

    def clear(self) -> None:
        """Forget every mark (the store is closing)."""
        self._marks.clear()

    def _check(self) -> None:
        """Raise ``AssertionError`` unless the log is within its bound."""
        if len(self._marks) > self.bound:  # pragma: no cover - a deque's maxlen holds it
            raise AssertionError(f"the touch log holds {len(self._marks)} marks, more than its bound {self.bound}")
