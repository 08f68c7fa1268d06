"""Recency under concurrency, and the storage operations' failures, on every backend.

Reads mark records as used without a lock while writers change them; the eviction order and the store's
invariants must survive any interleaving. A bug inside a backend's storage operation must surface as itself,
never disguised as "not found".
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from responsestore import BaseStore, ResponseNotFound

from .base import LOST_WRITE, ContractBase

StoreFactory = Callable[..., BaseStore]


class _Broken(Exception):
    """Stands for a bug inside a backend."""


class RecencyTests(ContractBase):
    """Recency under concurrency, and the storage operations' failures, on every backend."""

    @pytest.fixture
    def finest_switch_interval(self) -> Iterator[None]:
        """Switch threads as often as the interpreter allows, so narrow races happen within a few rounds."""
        previous = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        try:
            yield
        finally:
            sys.setswitchinterval(previous)

    @pytest.mark.usefixtures("finest_switch_interval")
    def test_reads_racing_a_finish_keep_the_recency_bookkeeping_whole(self, new_store: StoreFactory) -> None:
        """A lock-free ``get`` of a record while another thread finishes it; the invariants hold at the end.

        The race this catches: a get draws its recency mark, the finish draws a later one and files the record
        under it in the eviction order, then the get stores its older mark over it, so ``_check()`` finds a finished
        record filed under a mark it no longer has. The reader stops at the first get that returns the finished
        record (which is the racing get itself when the race happens), so nothing heals the damage afterwards. No
        sleeps: the writer finishes each record once the reader is spinning on it, and a tiny switch interval with
        enough rounds makes the interleaving near certain on code that has the race.
        """
        store = new_store(max_records=None)
        rounds = self.examples(3000, minimum=200)
        ids = [store.create("m").id for _ in range(rounds)]
        spinning = [threading.Event() for _ in ids]
        stop = threading.Event()
        errors: list[BaseException] = []

        def read() -> None:
            try:
                for n, id in enumerate(ids):
                    spinning[n].set()
                    while not store.get(id).is_terminal and not stop.is_set():
                        pass
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                for event in spinning:
                    event.set()

        budget = self._budget()
        reader = threading.Thread(target=read)
        reader.start()
        try:
            for n, id in enumerate(ids):
                assert spinning[n].wait(budget.left())
                store.complete(id)
                assert store.get(id).is_terminal, f"complete(): {LOST_WRITE}"
        finally:
            stop.set()  # the reader spins until its record is finished: never leave it spinning
            budget.join([reader], "a reader spinning until its response is finished")
        assert errors == []
        store.create("m", ttl=None)  # a write after the reads: it applies whatever they marked
        store._check()

    def test_recently_read_records_survive_eviction_whatever_the_interleaving(self, new_store: StoreFactory) -> None:
        """Eight threads read their own finished record in a loop while the main thread fills the store.

        The cap leaves room for the hot records plus a few; the cold ones are evicted first, and no hot record is
        ever evicted while it is being read (each was read after every cold record's last use).
        """
        store = new_store(max_records=12)
        cold = [store.complete(store.create("m", id=f"cold{n}").id) for n in range(4)]
        hot = [store.complete(store.create("m", id=f"hot{n}").id) for n in range(8)]
        stop = threading.Event()
        errors: list[BaseException] = []
        budget = self._budget()
        reading = threading.Barrier(len(hot) + 1, timeout=budget.seconds)

        def read(id: str) -> None:
            try:
                store.get(id)
                reading.wait()
                while not stop.is_set():
                    store.get(id)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=read, args=(record.id,)) for record in hot]
        for thread in threads:
            thread.start()
        reading.wait()  # every hot record has been read after the cold ones were made
        try:
            for n in range(len(cold)):
                store.complete(store.create("m", id=f"new{n}").id)
        finally:
            stop.set()
            budget.join(threads, "readers of hot records")
        assert errors == []
        assert not any(record.id in store for record in cold)
        assert all(record.id in store for record in hot)
        store._check()

    @pytest.mark.parametrize("operation", ["_get", "_peek", "_read"])
    def test_a_bug_inside_a_storage_operation_surfaces_instead_of_reading_as_not_found(
        self, new_store: StoreFactory, operation: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store = new_store()
        record = store.complete(store.create("m").id)

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise TypeError("a bug inside the backend")

        monkeypatch.setattr(store, operation, broken)
        calls: dict[str, Callable[[], Any]] = {
            "_get": lambda: store.input_items(record.id),
            "_peek": lambda: record.id in store,
            "_read": lambda: store.update(record.id, metadata={"k": "v"}),
        }
        with pytest.raises(TypeError, match="a bug inside the backend"):
            calls[operation]()
        monkeypatch.undo()
        assert store.get(record.id) == record

    def test_get_of_a_missing_id_is_not_found_and_of_a_malformed_one_a_clear_error(self, store: BaseStore) -> None:
        with pytest.raises(ResponseNotFound):
            store.get("resp_missing")
        for bad in ("", "has space", "x" * 200):
            with pytest.raises(ValueError, match="not a valid id"):
                store.get(bad)
        for wrong in (None, 3, ["list"], {"d": 1}):
            with pytest.raises(ValueError, match="id must be a string"):
                store.get(wrong)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="owner must be a string or None"):
            store.get("resp_x", owner=["unhashable"])  # type: ignore[arg-type]
