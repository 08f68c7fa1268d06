"""``RWLock``: a reentrant, writer-preferring reader/writer lock built on ``threading`` primitives."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

from ._timeouts import check_timeout
from .errors import LockError

__all__ = ["RWLock"]

_get_ident = threading.get_ident


class RWLock:
    """Many readers or one writer, reentrant, and fair to writers.

    - **Shared reads.** Any number of threads may hold the read lock together.
    - **Exclusive writes.** The write lock excludes every other reader and writer.
    - **Writer-preferring.** Once a writer waits, new readers wait behind it, so a steady stream of readers
      cannot starve a writer. (A steady stream of writers can delay readers; writes here are short.)
    - **Reentrant.** A thread holding the read lock may take it again, even while a writer waits (it does not
      deadlock behind that writer); a thread holding the write lock may take the write lock or the read lock
      again. Each acquire needs its own release.
    - **No upgrade.** Asking for the write lock while holding only the read lock raises :class:`LockError` at
      once: two readers upgrading together would otherwise wait for each other forever.
    - **Downgrade.** A thread that took the read lock while holding the write lock keeps those reads when it
      releases the write lock.

    Uncontended reads do not touch the internal mutex: a reader announces itself and then checks for writers,
    while a writer announces itself and then checks for readers, so at least one of them always sees the other
    (this relies on each dict and attribute operation being atomic and ordered, as CPython guarantees).

    ``acquire_read`` and ``acquire_write`` take an optional ``timeout`` in seconds (``None`` waits forever,
    ``0`` only tries) and return ``False`` if it expired. ``read()`` and ``write()`` are context managers.
    """

    __slots__ = (
        "_can_read",
        "_can_write",
        "_mutex",
        "_read_guard",
        "_readers",
        "_waiting_writers",
        "_write_guard",
        "_writer",
        "_writer_depth",
        "_writer_reads",
    )

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._can_read = threading.Condition(self._mutex)
        self._can_write = threading.Condition(self._mutex)
        self._readers: dict[int, int] = {}  # thread ident -> read holds (threads without a write hold)
        self._writer: int | None = None
        self._writer_depth = 0
        self._writer_reads = 0  # read holds taken by the writer thread while it holds write
        self._waiting_writers = 0
        self._read_guard = _Guard(self.acquire_read, self.release_read)
        self._write_guard = _Guard(self.acquire_write, self.release_write)

    def acquire_read(self, timeout: float | None = None) -> bool:
        """Take the read lock; return ``False`` if ``timeout`` seconds passed first."""
        if timeout is not None:
            timeout = check_timeout(timeout)
        me = _get_ident()
        readers = self._readers
        held = readers.get(me)
        if held is not None:  # re-entry: only this thread ever changes its own entry
            readers[me] = held + 1
            return True
        if self._writer == me:
            self._writer_reads += 1
            return True
        # Fast path without the mutex: announce this reader, then look for writers. A writer announces itself
        # (``_waiting_writers``) before it looks for readers, so at least one of the two sees the other.
        readers[me] = 1
        if self._writer is None and not self._waiting_writers:
            return True
        with self._mutex:  # a writer holds or wants the lock: back off and wait behind it
            del readers[me]
            if not readers and self._waiting_writers:
                self._can_write.notify()
            if not self._can_read.wait_for(self._read_allowed, timeout):
                return False
            readers[me] = 1
            return True

    def release_read(self) -> None:
        """Release one read hold of the calling thread.

        Raises:
            LockError: the thread holds no read lock.
        """
        me = _get_ident()
        readers = self._readers
        held = readers.get(me)
        if held is None:
            if self._writer == me and self._writer_reads:
                self._writer_reads -= 1
                return
            raise LockError("release_read() by a thread that holds no read lock")
        if held > 1:
            readers[me] = held - 1
            return
        del readers[me]
        # Leave first, then look for a waiting writer: a writer that announced itself before we left sees us
        # gone when it re-checks, or is woken here.
        if self._waiting_writers and not readers:
            with self._mutex:
                if self._waiting_writers and not readers:
                    self._can_write.notify()

    def acquire_write(self, timeout: float | None = None) -> bool:
        """Take the write lock; return ``False`` if ``timeout`` seconds passed first.

        Raises:
            LockError: the thread holds only the read lock (an upgrade would deadlock).
        """
        if timeout is not None:
            timeout = check_timeout(timeout)
        me = _get_ident()
        with self._mutex:
            if self._writer == me:
                self._writer_depth += 1
                return True
            if me in self._readers:
                raise LockError(
                    "acquire_write() while holding the read lock: release the read lock first "
                    "(upgrading a reader/writer lock deadlocks)"
                )
            # Announce before looking for readers (see acquire_read), and stay announced until ``_writer`` is
            # set, so no reader slips in between the check and the take.
            self._waiting_writers += 1
            acquired = False
            try:
                acquired = self._write_allowed() or self._can_write.wait_for(self._write_allowed, timeout)
                if acquired:
                    self._writer = me
                    self._writer_depth = 1
            finally:
                # Also on an exception in the wait (KeyboardInterrupt): never leave others stuck behind us.
                self._waiting_writers -= 1
                if not acquired and self._writer is None:
                    # Readers may have been held back only by this writer's wait; another waiting writer may
                    # be entitled to the lock now. Wake whoever can proceed.
                    if not self._waiting_writers:
                        self._can_read.notify_all()
                    elif not self._readers:
                        self._can_write.notify()
            return acquired

    def release_write(self) -> None:
        """Release one write hold of the calling thread.

        Raises:
            LockError: the thread does not hold the write lock.
        """
        me = _get_ident()
        with self._mutex:
            if self._writer != me:
                raise LockError("release_write() by a thread that does not hold the write lock")
            self._writer_depth -= 1
            if self._writer_depth:
                return
            self._writer = None
            if self._writer_reads:
                self._readers[me] = self._writer_reads
                self._writer_reads = 0
            if self._waiting_writers:
                if not self._readers:
                    self._can_write.notify()
            else:
                self._can_read.notify_all()

    def read(self) -> AbstractContextManager[None]:
        """Hold the read lock for the ``with`` block."""
        return self._read_guard

    def write(self) -> AbstractContextManager[None]:
        """Hold the write lock for the ``with`` block."""
        return self._write_guard

    def held_read(self) -> bool:
        """Whether the calling thread holds the read lock (directly or under its write lock)."""
        me = _get_ident()
        with self._mutex:
            return me in self._readers or (self._writer == me and self._writer_reads > 0)

    def held_write(self) -> bool:
        """Whether the calling thread holds the write lock."""
        return self._writer == _get_ident()

    def _read_allowed(self) -> bool:
        return self._writer is None and not self._waiting_writers

    def _write_allowed(self) -> bool:
        return self._writer is None and not self._readers

    def _check(self) -> None:
        """Assert the lock's invariants (for tests): never a writer together with other readers."""
        with self._mutex:
            assert self._writer_depth >= 0
            assert self._waiting_writers >= 0
            assert all(count > 0 for count in self._readers.values())
            if self._writer is None:
                assert self._writer_depth == 0
                assert self._writer_reads == 0
            else:
                assert self._writer_depth > 0
                assert not self._readers, "a writer holds the lock together with readers"

    def __repr__(self) -> str:
        state = f"writer={self._writer}" if self._writer is not None else f"readers={len(self._readers)}"
        return f"<RWLock {state} waiting_writers={self._waiting_writers}>"


class _Guard(AbstractContextManager[None]):
    """A reusable ``with`` block around an acquire/release pair (it holds no state of its own)."""

    __slots__ = ("_acquire", "_release")

    def __init__(self, acquire: Callable[[], bool], release: Callable[[], None]) -> None:
        self._acquire = acquire
        self._release = release

    def __enter__(self) -> None:
        self._acquire()

    def __exit__(self, *exc_info: object) -> None:
        self._release()
