"""``WorkerPool``: the threads that run responses, which never keep a stopping process alive.

Like :class:`concurrent.futures.ThreadPoolExecutor`, but its threads are daemon threads: a model that never
returns (stuck in a network call, say) must not keep the process from exiting once the runner has closed and
ended its response. ``ThreadPoolExecutor`` joins its threads when the interpreter exits, so one stuck model would
hold a stopping server for as long as it stays stuck.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from ._logs import RequestLogger

__all__ = ["Job", "WorkerPool"]

_log = RequestLogger("responsestore.runs")


class Job:
    """A call waiting for, or taken by, a thread of a pool."""

    __slots__ = ("call", "on_done")

    def __init__(self, call: Callable[[], None], on_done: Callable[[], None] | None) -> None:
        self.call = call
        self.on_done = on_done


class WorkerPool:
    """At most ``workers`` daemon threads (started as needed) making the calls submitted, in order. Thread-safe."""

    def __init__(self, workers: int, name: str) -> None:
        self._workers = workers
        self._name = name
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._queue: deque[Job] = deque()
        self._threads = 0
        self._idle = 0
        self._closed = False

    def submit(self, call: Callable[[], None], on_done: Callable[[], None] | None = None) -> Job:
        """Make ``call`` in a thread of the pool, then ``on_done`` (unless :meth:`cancel` takes it back first).

        Raises:
            RuntimeError: the pool is shut down.
        """
        job = Job(call, on_done)
        with self._lock:
            if self._closed:
                raise RuntimeError("the pool is shut down")
            self._queue.append(job)
            if self._idle > len(self._queue) - 1:
                self._ready.notify()
            elif self._threads < self._workers:
                self._threads += 1
                number = self._threads
                threading.Thread(target=self._work, name=f"{self._name}-{number}", daemon=True).start()
        return job

    def cancel(self, job: Job) -> bool:
        """Take ``job`` back if no thread has taken it yet; whether it was."""
        with self._lock:
            try:
                self._queue.remove(job)
            except ValueError:
                return False
            return True

    def shutdown(self) -> None:
        """Take no more calls; the threads make those still queued, then end. Does not wait."""
        with self._lock:
            self._closed = True
            self._ready.notify_all()

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._idle += 1
                    self._ready.wait()
                    self._idle -= 1
                if not self._queue:
                    self._threads -= 1
                    return
                job = self._queue.popleft()
            for step in (job.call, job.on_done):
                if step is None:
                    continue
                try:
                    step()
                except Exception:  # noqa: BLE001 - a thread of the pool outlives any one call's failure
                    _log.exception("a call in the pool %s failed", self._name)
