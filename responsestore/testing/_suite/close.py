"""Closing a store while other threads use it, on every backend: no crash, no hang, only documented errors."""

from __future__ import annotations

import random
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

from responsestore import BaseStore, ResponseStoreError, StorageError

from .base import Budget, ContractBase

StoreFactory = Callable[..., BaseStore]


def _close_under_load(store: BaseStore, rng: random.Random, budget: Budget) -> None:
    """One round: four threads use ``store`` while this thread closes it."""
    finished = store.complete(store.create("m", "done").id)
    running = store.create("m", "running", background=True)
    errors: list[BaseException] = []
    started = threading.Barrier(5, timeout=budget.left())

    def guarded(work: Callable[[], None], errors: list[BaseException] = errors) -> Callable[[], None]:
        def run() -> None:
            try:
                started.wait()
                work()
            except StorageError:
                pass  # the store was closed under the call: documented
            except ResponseStoreError:
                pass  # another documented refusal of a racing call (e.g. not found once closed)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        return run

    def read(finished_id: str = finished.id) -> None:
        while True:
            store.get(finished_id)
            store.list(limit=5)
            store.conversation(finished_id)

    def write() -> None:
        while True:
            record = store.create("m", "more")
            store.append_event(record.id, {"type": "delta"})
            store.complete(record.id)

    def wait(running_id: str = running.id) -> None:
        store.wait(running_id, timeout=budget.left())

    def stream(running_id: str = running.id) -> None:
        for _ in store.stream(running_id, timeout=budget.left()):
            pass

    threads = [threading.Thread(target=guarded(work)) for work in (read, write, wait, stream)]
    for thread in threads:
        thread.start()
    started.wait()
    for _ in range(rng.randrange(0, 30)):
        store.get(finished.id)  # let the others get going for a random while
    store.close()
    budget.join(threads, "calls in flight when close() was called (close() must wake waiters and streams)")
    assert errors == []
    assert store.closed
    for call in (
        lambda: store.get(finished.id),
        lambda: store.create("m"),
        store.list,
        lambda: store.events(running.id),
        lambda: store.wait(running.id, timeout=1),
        store.stats,
        store.sweep,
    ):
        with pytest.raises(StorageError, match="closed"):
            call()
    store.close()  # twice is harmless


class CloseTests(ContractBase):
    """Closing a store while other threads use it, on every backend: no crash, no hang, only documented errors."""

    @pytest.fixture
    def tiny_switch_interval(self) -> Iterator[None]:
        previous = sys.getswitchinterval()
        sys.setswitchinterval(1e-5)
        try:
            yield
        finally:
            sys.setswitchinterval(previous)

    @pytest.mark.usefixtures("tiny_switch_interval")
    def test_close_while_in_use_ends_every_call_cleanly(self, new_store: StoreFactory) -> None:
        """Readers, writers, waiters and streams run while the main thread closes the store at a random moment.

        Every call in flight either finishes or raises a documented error, every thread ends (waiters are woken),
        and every call after ``close()`` raises :class:`StorageError`. On a backend that closes a connection another
        thread is inside, this crashes the interpreter within a few hundred rounds.
        """
        rng = random.Random(20261201)
        rounds = self.examples(600, minimum=600)
        for _ in range(rounds):  # each round's waits have a time limit of their own
            _close_under_load(new_store(max_records=None), rng, self._budget())
