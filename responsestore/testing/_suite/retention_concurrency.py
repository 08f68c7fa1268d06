"""Retention under concurrency: eviction, expiry and sweeping while threads create, finish and read.

A small store (cap 8, short ttl) on a fake clock that one thread keeps moving. Creating threads keep some of
their responses active (``ttl=None``, so only eviction could take them) and check each is still there right
before finishing it: an active response must never be evicted. Other threads read, sweep, and sample ``len`` and
``stats()`` throughout; every sample must respect the cap and add up.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable
from typing import Any

from responsestore import (
    BaseStore,
    ChainError,
    ResponseNotFound,
    ResponseRecord,
    ResponseStatus,
    StoreFull,
)
from responsestore.testing._clock import FakeClock

from .base import Budget, ContractBase

StoreFactory = Callable[..., BaseStore]

MAX_RECORDS = 8
TTL = 0.05  # fake seconds; the clock thread moves the clock by STEP at a time
STEP = 0.001
CREATORS = 3
MEMORY_ROUNDS = 150  # per creator; a backend heavier than memory (weight > 1) runs DURABLE_ROUNDS
DURABLE_ROUNDS = 50
KEEP_ACTIVE = 3  # per creator: 3 creators x 3 > 8, so the store does fill up with active records
CREATORS_BOUND = 900.0  # the creators' whole run; a bound that turns a deadlock into a failure, not a timing
#: Seconds the background threads pause between rounds, so a backend with one writer at a time is not starved
#: (pacing only: nothing waits for anything else this way).
PACE = 0.002


class Failures:
    """Problems found by worker threads, reported by the main thread (an assert in a thread fails nothing)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[str] = []

    def add(self, message: str) -> None:
        with self._lock:
            self.items.append(message)

    def run(self, name: str, body: Callable[[], None]) -> threading.Thread:
        def target() -> None:
            try:
                body()
            except BaseException as exc:  # noqa: BLE001 - any escape from a worker is a failure to report
                self.add(f"{name} crashed: {exc!r}")

        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        return thread


class RetentionConcurrencyTests(ContractBase):
    """Retention under concurrency: eviction, expiry and sweeping while threads create, finish and read."""

    def test_retention_holds_under_concurrent_use(self, new_store: StoreFactory) -> None:
        clock = FakeClock()
        store = new_store(clock=clock, ttl=TTL, max_records=MAX_RECORDS)
        failures = Failures()
        stop = threading.Event()  # the creators are done (or the main thread failed): every thread winds down
        start = threading.Barrier(CREATORS + 5)
        known: list[str] = []  # every id ever created (appends are atomic)
        created = [0]
        created_lock = threading.Lock()

        def wait_start() -> None:
            start.wait(timeout=self.time_limit)

        def advance_clock() -> None:
            wait_start()
            while not stop.is_set():
                clock.advance(STEP)
                stop.wait(0)  # lets other threads run between steps; not a synchronisation

        def try_create(**kwargs: Any) -> ResponseRecord | None:
            try:
                record = store.create("m", "x", **kwargs)
            except (StoreFull, ChainError):
                return None  # allowed: every record is active, or the continued chain was evicted or expired meanwhile
            known.append(record.id)
            with created_lock:
                created[0] += 1
            return record

        def finish_kept(id: str) -> bool:
            """Finish one of our ttl=None responses: it must still be there, and still active."""
            try:
                current = store.get(id)
                if current.status not in (ResponseStatus.QUEUED, ResponseStatus.IN_PROGRESS):
                    failures.add(f"{id} was finished by someone else: {current.status}")
                store.complete(id, [{"role": "assistant", "content": "done"}])
            except ResponseNotFound:
                failures.add(f"active response {id} vanished before it was finished")
                return False
            return True

        def finish_short_lived(record: ResponseRecord) -> None:
            """Finish a response with the store's short ttl; only expiry may have taken it meanwhile."""
            try:
                store.complete(record.id)
            except ResponseNotFound:
                if clock() < record.created_at + TTL:
                    failures.add(f"unexpired active response {record.id} vanished")

        def creator(seed: int) -> Callable[[], None]:
            def body() -> None:
                rng = random.Random(seed)
                kept: list[str] = []  # ttl=None and active: only eviction could remove these, and it must not
                finished: list[str] = []
                wait_start()
                for _ in range(MEMORY_ROUNDS if self.weight == 1 else DURABLE_ROUNDS):
                    if stop.is_set():
                        return  # the main thread gave up
                    if len(kept) < KEEP_ACTIVE:
                        record = try_create(ttl=None, status=rng.choice(("queued", "in_progress")))
                        if record is not None:
                            kept.append(record.id)
                    if kept and (len(kept) == KEEP_ACTIVE or rng.random() < 0.5):
                        id = kept.pop(0)
                        if finish_kept(id):
                            finished.append(id)
                    brief = try_create(status="queued")
                    if brief is not None:
                        finish_short_lived(brief)
                    if finished and rng.random() < 0.3:
                        more = try_create(previous_response_id=rng.choice(finished))
                        if more is not None:
                            finish_short_lived(more)
                for id in kept:  # leave nothing active behind
                    finish_kept(id)

            return body

        def reader() -> None:
            rng = random.Random(99)
            wait_start()
            while not stop.is_set():
                if known:
                    id = rng.choice(known)
                    try:
                        record = store.get(id)
                    except ResponseNotFound:
                        pass
                    else:
                        if record.id != id:
                            failures.add(f"get({id}) returned {record.id}")
                    try:
                        store.conversation(id)
                        chain = store.chain(id)
                    except (ResponseNotFound, ChainError):
                        pass
                    else:
                        for older, newer in itertools.pairwise(chain):
                            if newer.previous_response_id != older.id:
                                failures.add(f"chain of {id} is out of order")
                page = store.list(limit=100)
                if len(page.data) > MAX_RECORDS:
                    failures.add(f"list showed {len(page.data)} records, more than the cap")
                stamps = [record.created_at for record in page.data]
                if stamps != sorted(stamps, reverse=True):
                    failures.add("list page not newest first")
                stop.wait(PACE)

        swept = [0]

        def sweeper() -> None:
            wait_start()
            while not stop.is_set():
                swept[0] += store.sweep()
                stop.wait(PACE)

        samples = [0]

        def sampler() -> None:
            wait_start()
            while not stop.is_set():
                size = len(store)
                stats = store.stats()
                samples[0] += 1
                if size > MAX_RECORDS or stats.records > MAX_RECORDS:
                    failures.add(f"over the cap: len {size}, stats.records {stats.records}")
                if stats.records != stats.created - stats.deleted - stats.evicted - stats.expired:
                    failures.add(f"stats do not add up: {stats}")
                if sum(stats.by_status.values()) != stats.records:
                    failures.add(f"by_status does not add up: {stats}")
                stop.wait(PACE)

        creators = [failures.run(f"creator-{n}", creator(n)) for n in range(CREATORS)]
        others = [
            failures.run("clock", advance_clock),
            failures.run("reader-1", reader),
            failures.run("reader-2", reader),
            failures.run("sweeper", sweeper),
            failures.run("sampler", sampler),
        ]
        try:
            # Generous: on a loaded machine a durable backend's creators can take minutes. Going on while one still
            # runs would stop it half-way (leaving its responses active) and fail below for the wrong reason.
            Budget(CREATORS_BOUND).join(creators, "creators of responses")
            # One more short-lived response, while the clock and the sweeper still run: it must expire.
            last = store.create("m", "last")
            pause = threading.Event()  # never set: wait() on it is a bounded pause between polls
            for _ in range(6000):
                if last.id not in store:
                    break
                pause.wait(0.01)
            last_expired = last.id not in store
        finally:
            stop.set()  # also stops the creators early if the main thread failed
            self._budget().join(creators + others, "threads told to stop")
        assert last_expired, "the clock thread never moved past the last response's expiry"
        assert failures.items == []
        store._check()
        stats = store.stats()
        assert stats.records == len(store) <= MAX_RECORDS
        assert stats.records == stats.created - stats.deleted - stats.evicted - stats.expired
        assert sum(stats.by_status.values()) == stats.records
        assert stats.by_status["queued"] == stats.by_status["in_progress"] == 0  # every creator finished its own
        assert stats.created == created[0] + 1
        assert stats.deleted == 0
        assert stats.evicted > 0
        assert stats.expired >= 1
        assert samples[0] > 0
        assert swept[0] + store.sweep() <= stats.expired
