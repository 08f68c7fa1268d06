"""Many threads on one store: no lost update, one winner per race, consistent pages, immediate visibility.

Threads start together behind a barrier, every wait is bounded, and every exception a thread raises that the
test did not expect fails the test. The interpreter is told to switch threads far more often than usual, so
the windows between a read and the write that depends on it actually get hit.
"""

from __future__ import annotations

import itertools
import queue
import random
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any, NamedTuple

import pytest

from responsestore import (
    BaseStore,
    InvalidTransition,
    LeaseLost,
    ResponseRecord,
    ResponseStatus,
    VersionConflict,
    _lifecycle,
)
from responsestore._contract import LogWrite
from responsestore._events import encode_batch, prepare_events
from responsestore.testing._clock import FakeClock

from .base import Budget, ContractBase

StoreFactory = Callable[..., BaseStore]

#: How often one logical operation may be retried after a VersionConflict before we call it a livelock.
MAX_RETRIES = 10_000


#: What a conditional write must not do, named in the failures of the stale-write tests.
STALE = (
    "accepted a write decided on a stale read (the record changed since): it must return False and change nothing, "
    "or an update is lost"
)

TERMINAL_KINDS = frozenset({"complete", "fail", "cancel", "incomplete"})


def run_threads(targets: Sequence[Callable[[], None]], budget: Budget) -> None:
    """Start ``targets`` together (behind a barrier), join them within ``budget``, and fail on any thread's error.

    A stress run does real work while it waits: its budget is four times the contract's ``time_limit``.
    """
    barrier = threading.Barrier(len(targets), timeout=budget.left())
    errors: list[tuple[str, BaseException]] = []

    def wrap(name: str, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                barrier.wait()
                target()
            except BaseException as exc:  # noqa: BLE001 - reported by the test thread below
                errors.append((name, exc))

        return run

    threads = [
        threading.Thread(target=wrap(f"worker-{i}", target), name=f"worker-{i}", daemon=True)
        for i, target in enumerate(targets)
    ]
    for thread in threads:
        thread.start()
    budget.join(threads, "a stress run's threads")
    if errors:
        _, first = errors[0]
        summary = ", ".join(f"{n}: {e!r}" for n, e in errors[:5])
        raise AssertionError(f"{len(errors)} thread(s) raised unexpectedly: {summary}") from first


# --------------------------------------------------------------------------- racing transitions


def check_conflict(conflict: VersionConflict, id: str, expected: int) -> None:
    """A conflict names the response, the version we expected, and the newer version someone else wrote."""
    assert conflict.id == id
    assert conflict.expected == expected
    assert conflict.actual > expected


class Change(NamedTuple):
    """One successful call, as the thread that made it saw it."""

    id: str
    kind: str
    before: int | None  # the version the call was conditioned on (None: no expected_version)
    after: int
    status: ResponseStatus
    n: int  # the metadata counter after the call


# --------------------------------------------------------------------------- creating, deleting and paging


class OrdinalClock:
    """A clock full of ties and steps back; it remembers the ordinal of each thread's latest reading.

    A store reads its clock inside its write transaction when it creates a record, so the ordinal of the
    creating thread's latest reading, taken right after ``create`` returns, ranks the record among all the
    others in creation order: the tie-breaker of the documented list order.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls = 0
        self._local = threading.local()

    def __call__(self) -> float:
        with self._lock:
            ordinal = self._calls
            self._calls += 1
        self._local.last = ordinal
        return 1_700_000_000.0 + (ordinal * 7) % 23  # only 23 distinct times, not in call order

    def last_ordinal(self) -> int:
        ordinal: int = self._local.last
        return ordinal


class Walk(NamedTuple):
    order: str
    limit: int
    seen: list[tuple[str, float]]  # (id, created_at) in the order the pages gave them


def walk_all(store: BaseStore, order: str, limit: int) -> list[ResponseRecord]:
    page = store.list(order=order, limit=limit)
    records = list(page.data)
    while page.has_more:
        page = store.list(order=order, limit=limit, after=page.last_id)
        records.extend(page.data)
    return records


# --------------------------------------------------------------------------- visibility


# --------------------------------------------------------------------------- conversations


class ConcurrencyTests(ContractBase):
    """Many threads on one store: no lost update, one winner per race, consistent pages, immediate visibility."""

    @pytest.mark.parametrize("overtaken_by", ["update", "append_event", "delete", "recreate"])
    def test_a_write_decided_on_a_stale_read_changes_nothing(
        self, store: BaseStore, clock: FakeClock, overtaken_by: str
    ) -> None:
        """The conditional storage writes refuse a decision made on a read that another write has overtaken.

        A lost update in one thread: read, let another writer in, then commit what was decided on the old read.
        ``_swap``, ``_append`` and ``_remove`` must each return ``False`` and change nothing, whether the other
        writer changed the record (a new version), only its event log (same version, one more event), deleted
        it, or deleted it and created the same id again (a new incarnation at version 1 with an empty log, which
        a check of versions and event counts alone cannot tell from the old one). The racing tests below find the
        same bug only if the threads happen to interleave just so.
        """
        record = store.create("m", background=True, id="resp_stale_write")
        stale = store._read(None, record.id)
        assert stale is not None
        if overtaken_by == "update":
            store.update(record.id, metadata={"by": "winner"})
        elif overtaken_by == "append_event":
            store.append_event(record.id, {"type": "response.output_text.delta", "delta": "winner"})
        elif overtaken_by == "delete":
            store.delete(record.id)
        else:
            store.delete(record.id)
            store.create("other", "a new creation", background=True, id=record.id)

        def state() -> Any:
            return (store._read(None, record.id), store.events(record.id)) if record.id in store else None

        after = state()
        late = _lifecycle.update(stale.record, clock(), _lifecycle.prepare_update({"metadata": {"by": "loser"}}))
        batch = prepare_events([{"type": "response.output_text.delta", "delta": "x"}])
        encoded = encode_batch(batch, stale.events)
        log = LogWrite(encoded.text, stale.events, 1, stale.event_bytes + batch.size, encoded.stored, replace=False)
        assert store._swap(stale, late, stale.size, None) is False, f"_swap {STALE}"
        assert store._swap(stale, late, stale.size, log) is False, f"_swap {STALE}"
        assert store._append(stale, log) is False, f"_append {STALE}"
        if overtaken_by != "append_event":  # a new event leaves the version, so removing is still allowed then
            assert store._remove(stale) is False, "_remove deleted a record at a version it no longer has"
        assert state() == after, f"a write {STALE}"
        store._check()

    def test_a_lease_holder_never_writes_to_a_later_creation_of_its_id(self, store: BaseStore) -> None:
        """A run that holds the lease of one creation of an id cannot write to the next creation of that id."""
        first = store.create("m", background=True, id="resp_reused", lease=30, holder="run-1")
        store.delete(first.id)
        second = store.create("m", background=True, id="resp_reused", lease=30, holder="run-2")
        for write in (
            lambda: store.append_events(
                first.id, [{"type": "response.output_text.delta", "delta": "x"}], holder="run-1"
            ),
            lambda: store.start(first.id, holder="run-1"),
            lambda: store.complete(first.id, holder="run-1"),
            lambda: store.renew(first.id, lease=30, holder="run-1"),
        ):
            with pytest.raises(LeaseLost, match="run-2"):
                write()
        assert store.get(second.id) == second
        assert store.events(second.id) == ()
        store._check()

    @pytest.fixture
    def busy_switching(self) -> Iterator[None]:
        """Switch threads every 10 µs instead of every 5 ms, so races get a chance to show."""
        old = sys.getswitchinterval()
        sys.setswitchinterval(1e-5)
        yield
        sys.setswitchinterval(old)

    @pytest.mark.usefixtures("busy_switching")
    def test_racing_changes_lose_no_update_and_finish_each_record_exactly_once(self, new_store: StoreFactory) -> None:
        store = new_store()
        n_records, n_updaters, n_finishers = 8, 4, 3
        updates_each = self.scaled(1000, 200)
        records = [
            store.create(
                "m",
                f"record {i}",
                background=i % 2 == 0,
                status="queued" if i % 4 == 0 else "in_progress",
                metadata={"n": "0"},
            )
            for i in range(n_records)
        ]
        ids = [record.id for record in records]
        background = {record.id for record in records if record.background}
        logs: list[list[Change]] = []
        noop_cancels: list[tuple[str, int]] = []
        conflicts = Counter[str]()
        refusals = Counter[str]()
        stats_lock = threading.Lock()

        def updater(seed: int) -> None:
            rng = random.Random(seed)
            log: list[Change] = []
            logs.append(log)
            for _ in range(updates_each):
                id = rng.choice(ids)
                for _attempt in range(MAX_RETRIES):
                    current = store.get(id)
                    n = int(current.metadata["n"])
                    try:
                        new = store.update(id, metadata={"n": str(n + 1)}, expected_version=current.version)
                    except VersionConflict as conflict:
                        check_conflict(conflict, id, current.version)
                        with stats_lock:
                            conflicts["update"] += 1
                        continue
                    assert new.version == current.version + 1
                    assert new.status is current.status  # same version, same record: only metadata changed
                    log.append(Change(id, "update", current.version, new.version, new.status, int(new.metadata["n"])))
                    break
                else:
                    raise AssertionError(f"update of {id} kept conflicting: livelock")

        def finish_once(rng: random.Random, id: str, log: list[Change]) -> bool:
            """Try one random transition of ``id``; return True once it is final."""
            current = store.get(id)
            if current.is_terminal:
                # Late finishers are refused (or, for cancel of a cancelled response, get it back unchanged).
                try:
                    again = store.cancel(id)
                except InvalidTransition:
                    assert current.status is not ResponseStatus.CANCELLED
                    with stats_lock:
                        refusals["late cancel"] += 1
                else:
                    assert again.status is ResponseStatus.CANCELLED
                    assert current.status is ResponseStatus.CANCELLED
                    assert again.version >= current.version
                    with stats_lock:
                        noop_cancels.append((id, again.version))
                return True
            kind = rng.choice(["start", "complete", "fail", "cancel", "incomplete", "complete!", "fail!"])
            versioned = not kind.endswith("!")
            expected = current.version if versioned else None
            operations: dict[str, Callable[[], ResponseRecord]] = {
                "start": lambda: store.start(id, expected_version=expected),
                "complete": lambda: store.complete(
                    id, [{"role": "assistant", "content": "done"}], expected_version=expected
                ),
                "fail": lambda: store.fail(id, {"code": "server_error", "message": "x"}, expected_version=expected),
                "cancel": lambda: store.cancel(id, expected_version=expected),
                "incomplete": lambda: store.mark_incomplete(id, "max_output_tokens", expected_version=expected),
            }
            try:
                new = operations[kind.rstrip("!")]()
            except VersionConflict as conflict:
                check_conflict(conflict, id, current.version)
                with stats_lock:
                    conflicts["finish"] += 1
                return False
            except InvalidTransition:
                with stats_lock:
                    refusals[kind] += 1
                return False
            if versioned:
                assert new.version == current.version + 1
            log.append(Change(id, kind.rstrip("!"), expected, new.version, new.status, int(new.metadata["n"])))
            return new.is_terminal

        def finisher(seed: int, order: list[str]) -> None:
            rng = random.Random(seed)
            log: list[Change] = []
            logs.append(log)
            for id in order:  # every finisher works through the same records in the same order: they collide
                for _attempt in range(MAX_RETRIES):
                    if finish_once(rng, id, log):
                        break
                else:
                    raise AssertionError(f"could not finish {id}: livelock")
                finish_once(rng, id, log)  # once more, now that it is final

        order = sorted(background)
        random.Random(0).shuffle(order)
        run_threads(
            [partial(updater, s) for s in range(n_updaters)]
            + [partial(finisher, 100 + s, order) for s in range(n_finishers)],
            self._stress_budget(),
        )

        changes = [change for log in logs for change in log]
        assert sum(1 for c in changes if c.kind == "update") == n_updaters * updates_each
        for id in ids:
            final = store.get(id)
            mine = sorted((c for c in changes if c.id == id), key=lambda c: c.after)
            # No lost update: every successful change added exactly one version...
            assert final.version == 1 + len(mine), f"{id}: version {final.version} after {len(mine)} changes"
            # ...and each version number was produced by exactly one successful write.
            assert [c.after for c in mine] == list(range(2, final.version + 1))
            assert all(c.after == c.before + 1 for c in mine if c.before is not None)
            # The counter went up by one with each update, in version order: no update overwrote another.
            updates = [c for c in mine if c.kind == "update"]
            assert [c.n for c in updates] == list(range(1, len(updates) + 1))
            assert final.metadata["n"] == str(len(updates))
            terminal = [c for c in mine if c.kind in TERMINAL_KINDS]
            starts = [c for c in mine if c.kind == "start"]
            if id in background:
                assert final.is_terminal
                assert len(terminal) == 1, f"{id}: {len(terminal)} terminal transitions succeeded"
                assert final.status is terminal[0].status
                # Nothing but metadata updates follows the terminal transition.
                assert all(c.kind == "update" for c in mine if c.after > terminal[0].after)
            else:
                assert terminal == []
                assert final.status is records[ids.index(id)].status
            assert len(starts) <= (1 if records[ids.index(id)].status is ResponseStatus.QUEUED else 0)
        for id, version in noop_cancels:
            assert store.get(id).status is ResponseStatus.CANCELLED
            assert version <= store.get(id).version
        assert conflicts["update"] > 0, "the updaters never collided: the test did not exercise the race"
        store._check()

    @pytest.mark.usefixtures("busy_switching")
    def test_page_walks_while_others_create_and_delete(self, new_store: StoreFactory) -> None:
        clock = OrdinalClock()
        store = new_store(clock=clock, ttl=None, max_records=None)
        n_stable, n_writers, n_walkers, min_walks = 40, 2, 2, 10
        writes_each = self.scaled(800, 150)
        position: dict[str, tuple[float, int]] = {}  # id -> (created_at, creation ordinal), for owner None
        stable: dict[str, ResponseRecord] = {}
        for i in range(n_stable):
            record = store.create("m", f"stable {i}")
            position[record.id] = (record.created_at, clock.last_ordinal())
            stable[record.id] = record
        stable_ids = list(stable)
        other_owner: set[str] = set()
        positions_lock = threading.Lock()
        writers_done = threading.Event()
        finished_writers = [0]
        walks: list[Walk] = []
        gets = [0]

        def writer(seed: int) -> None:
            rng = random.Random(seed)
            live: list[str] = []
            try:
                for step in range(writes_each):
                    if live and rng.random() < 0.4:
                        victim = live.pop(rng.randrange(len(live)))
                        removed = store.delete(victim, expected_version=1 if rng.random() < 0.5 else None)
                        assert removed.id == victim
                    elif rng.random() < 0.1:
                        record = store.create("m", f"other {seed}/{step}", owner="someone else")
                        with positions_lock:
                            other_owner.add(record.id)
                    else:
                        record = store.create("m", f"writer {seed}/{step}")
                        with positions_lock:
                            position[record.id] = (record.created_at, clock.last_ordinal())
                        live.append(record.id)
            finally:
                with positions_lock:
                    finished_writers[0] += 1
                    if finished_writers[0] == n_writers:
                        writers_done.set()

        def walker(seed: int) -> None:
            rng = random.Random(seed)
            done = 0
            while done < min_walks or not writers_done.is_set():
                order, limit = rng.choice(["asc", "desc"]), rng.choice([1, 2, 3, 7, 20, 100])
                seen: list[tuple[str, float]] = []
                page = store.list(order=order, limit=limit)
                for _pages in range(100_000):
                    assert len(page.data) <= limit
                    if page.data:
                        assert page.first_id == page.data[0].id
                        assert page.last_id == page.data[-1].id
                    seen.extend((record.id, record.created_at) for record in page.data)
                    if not page.has_more:
                        break
                    assert page.data, "an empty page claims there is more"
                    page = store.list(order=order, limit=limit, after=page.last_id)
                else:
                    raise AssertionError("a walk did not end")
                walks.append(Walk(order, limit, seen))
                done += 1

        def getter(seed: int) -> None:
            rng = random.Random(seed)
            while not writers_done.is_set() or gets[0] < 500:
                id = rng.choice(stable_ids)
                assert store.get(id) == stable[id]
                assert id in store
                gets[0] += 1

        run_threads(
            [partial(writer, s) for s in range(n_writers)]
            + [partial(walker, 100 + s) for s in range(n_walkers)]
            + [partial(getter, 200)],
            self._stress_budget(),
        )

        assert len(walks) >= n_walkers * min_walks
        assert gets[0] >= 500
        orders = Counter(walk.order for walk in walks)
        assert orders["asc"] > 0
        assert orders["desc"] > 0
        for walk in walks:
            ids = [id for id, _ in walk.seen]
            assert len(ids) == len(set(ids)), f"a {walk.order} walk by {walk.limit} saw an id twice"
            assert not other_owner & set(ids), "a walk saw another owner's record"
            missing = set(stable_ids) - set(ids)
            assert not missing, f"a {walk.order} walk by {walk.limit} skipped {len(missing)} stable records"
            for id, created_at in walk.seen:
                assert position[id][0] == created_at
            keys = [position[id] for id in ids]
            expected = sorted(keys, reverse=walk.order == "desc")
            assert keys == expected, f"a {walk.order} walk by {walk.limit} is out of order"

        # Quiet again: one more walk sees exactly the records that are left, in order.
        live = [record.id for record in walk_all(store, "asc", 17)]
        assert live == sorted(set(live), key=position.__getitem__)
        assert set(stable_ids) <= set(live)
        store._check()

    @pytest.mark.usefixtures("busy_switching")
    def test_a_created_record_is_visible_to_other_threads_at_once(self, new_store: StoreFactory) -> None:
        store = new_store()
        n_producers, n_consumers = 3, 2
        creates_each = self.scaled(500, 100)
        total = n_producers * creates_each
        handed: queue.Queue[ResponseRecord] = queue.Queue()
        budget = self._stress_budget()
        taken = [0]
        take_lock = threading.Lock()
        completed: list[str] = []

        def producer(seed: int) -> None:
            for i in range(creates_each):
                record = store.create("m", f"producer {seed} #{i}", background=i % 2 == 0)
                handed.put(record)

        def consumer() -> None:
            while True:
                with take_lock:
                    if taken[0] == total:
                        return
                    taken[0] += 1
                record = handed.get(timeout=budget.left())
                assert store.get(record.id) == record
                assert record.id in store
                assert store.contains(record.id)
                done = store.complete(record.id, expected_version=record.version)
                assert done.version == record.version + 1
                completed.append(record.id)

        run_threads([partial(producer, s) for s in range(n_producers)] + [consumer] * n_consumers, budget)
        assert handed.empty()
        assert len(completed) == total
        assert len(set(completed)) == total
        assert len(store) == total
        assert all(store.get(id).status is ResponseStatus.COMPLETED for id in completed)
        store._check()

    @pytest.mark.usefixtures("busy_switching")
    def test_conversations_built_concurrently_keep_their_order(self, new_store: StoreFactory) -> None:
        store = new_store()
        n_conversations = 4
        turns = self.scaled(150, 40)
        built: dict[int, list[ResponseRecord]] = {}

        def converse(index: int) -> None:
            owner = f"tenant-{index}" if index % 2 else None
            chain: list[ResponseRecord] = []
            previous = None
            for turn in range(turns):
                asked = store.create(
                    "m",
                    f"c{index} q{turn}",
                    previous_response_id=None if previous is None else previous.id,
                    owner=owner,
                )
                previous = store.complete(
                    asked.id, [{"role": "assistant", "content": f"c{index} a{turn}"}], owner=owner
                )
                chain.append(previous)
                if turn % 10 == 9:
                    assert [r.id for r in store.chain(previous.id, owner=owner)] == [r.id for r in chain]
            built[index] = chain

        run_threads([partial(converse, i) for i in range(n_conversations)], self._stress_budget())

        assert sorted(built) == list(range(n_conversations))
        for index, chain in built.items():
            owner = f"tenant-{index}" if index % 2 else None
            assert len(chain) == turns
            found = store.chain(chain[-1].id, owner=owner)
            assert [r.id for r in found] == [r.id for r in chain]
            assert found[0].previous_response_id is None
            assert all(later.previous_response_id == earlier.id for earlier, later in itertools.pairwise(found))
            texts = [item["content"][0]["text"] for item in store.conversation(chain[-1].id, owner=owner)]
            assert texts == [text for turn in range(turns) for text in (f"c{index} q{turn}", f"c{index} a{turn}")]
        assert len(store) == n_conversations * turns
        store._check()
