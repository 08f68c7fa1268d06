"""Bounded retention on every backend: TTL expiry, chain refresh on continuation, LRU capacity, sweeping, stats.

The rules under test are in ``responsestore/_retention.py``'s docstring. Every test runs on a fake clock, so
"expired" means exactly ``created_at + ttl`` (or the last refresh plus ttl) and nothing depends on real time.
The last part drives a store and a tiny model of exactly these rules with random call sequences.
"""

from __future__ import annotations

import datetime
import itertools
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from responsestore import (
    BaseStore,
    ChainError,
    InvalidArgument,
    InvalidTransition,
    ResponseNotFound,
    ResponseRecord,
    ResponseStoreError,
    StoreFull,
    StoreStats,
    VersionConflict,
)
from responsestore._retention import SWEEP_BATCH
from responsestore.testing._clock import FakeClock

from .base import ContractBase

StoreFactory = Callable[..., BaseStore]

THIRTY_DAYS = 30 * 24 * 3600.0


def done(store: BaseStore, text: str = "hi", **kwargs: Any) -> ResponseRecord:
    """Create a response and complete it with one output message."""
    record = store.create("m", text, **kwargs)
    return store.complete(record.id, [{"role": "assistant", "content": f"re: {text}"}])


def listed(store: BaseStore, owner: str | None = None) -> list[ResponseRecord]:
    """Every record ``list`` shows for ``owner``, oldest first, walking all pages (``list`` touches nothing)."""
    records: list[ResponseRecord] = []
    after = None
    while True:
        page = store.list(limit=100, after=after, order="asc", owner=owner)
        records.extend(page.data)
        if not page.has_more:
            return records
        after = page.last_id


def listed_ids(store: BaseStore) -> list[str]:
    return [record.id for record in listed(store)]


def snapshot(store: BaseStore) -> tuple[int, list[ResponseRecord], StoreStats]:
    """What a refused call must leave unchanged, read without touching anything."""
    return len(store), listed(store), store.stats()


def assert_stats_add_up(stats: StoreStats) -> None:
    assert stats.records == stats.created - stats.deleted - stats.evicted - stats.expired
    assert sum(stats.by_status.values()) == stats.records


# ============================================================================================ settings


INVALID_TTLS = [
    0,
    0.0,
    -1,
    -0.001,
    math.nan,
    math.inf,
    -math.inf,
    "60",
    b"60",
    True,
    False,
    [60],
    datetime.timedelta(0),
    datetime.timedelta(seconds=-5),
    pytest.param(10**400, id="10**400"),  # too large for a float: InvalidArgument, not OverflowError
]

INVALID_MAX_RECORDS = [0, -1, -10_000, 1.0, 2.5, math.nan, math.inf, True, False, "10", [10]]


# ============================================================================================ expiry


# ============================================================================================ chain refresh


# ============================================================================================ capacity


def _continue(store: BaseStore, id: str) -> object:
    return store.create("m", "more", previous_response_id=id)


def _refused_update(store: BaseStore, id: str) -> object:
    with pytest.raises(InvalidTransition):
        store.update(id, status="in_progress")
    return None


def _stale_update(store: BaseStore, id: str) -> object:
    with pytest.raises(VersionConflict):
        store.update(id, metadata={"k": "v"}, expected_version=99)
    return None


def _missing_previous(store: BaseStore, id: str) -> object:
    with pytest.raises(ChainError):
        store.create("m", "x", previous_response_id="resp_missing")
    return None


USES: dict[str, Callable[[BaseStore, str], object]] = {
    "get": lambda store, rid: store.get(rid),
    "input_items": lambda store, rid: store.input_items(rid),
    "chain": lambda store, rid: store.chain(rid),
    "conversation": lambda store, rid: store.conversation(rid),
    "update": lambda store, rid: store.update(rid, metadata={"k": "v"}),
    "continue": _continue,
}

NOT_USES: dict[str, Callable[[BaseStore, str], object]] = {
    "list": lambda store, rid: store.list(),
    "list_after": lambda store, rid: store.list(after=rid),
    "list_filtered": lambda store, rid: store.list(status="completed", model="m"),
    "in": lambda store, rid: rid in store,
    "contains": lambda store, rid: store.contains(rid),
    "len": lambda store, rid: len(store),
    "stats": lambda store, rid: store.stats(),
    "sweep": lambda store, rid: store.sweep(),
    "refused_update": _refused_update,
    "version_conflict": _stale_update,
    "refused_create": _missing_previous,
}


def _evicted_after(store: BaseStore, operation: Callable[[BaseStore, str], object]) -> str:
    """Three finished records a, b, c (a least recently used); apply ``operation`` to a, fill the store, add one.

    Returns the name of the record the new one evicted.
    """
    names = {done(store, name).id: name for name in "abc"}
    a_id = next(iter(names))
    operation(store, a_id)
    if len(store) < 4:
        store.create("m", "filler")
    store.create("m", "new")
    gone = [name for id, name in names.items() if id not in store]
    assert len(gone) == 1, gone
    assert len(store) == 4
    return gone[0]


# ============================================================================================ input items go too


# ============================================================================================ a worked scenario


# ============================================================================================ bugs found


# ============================================================================================ against a model

MODEL_TTLS = (2.0, 5.0, 12.0)
STORE_TTL = "store"


class RetentionModel:
    """Exactly the retention rules, for generated ids of one owner, with no lazy sweeping."""

    def __init__(self, ttl: float, max_records: int) -> None:
        self.now = 0.0
        self.ttl = ttl
        self.max_records = max_records
        self.uses = itertools.count()
        self.records: dict[str, dict[str, Any]] = {}  # id -> {finished, previous, ttl, expires_at, used}
        self.created = self.deleted = self.evicted = 0

    def visible(self, id: str) -> dict[str, Any] | None:
        record = self.records.get(id)
        if record is None or (record["expires_at"] is not None and record["expires_at"] <= self.now):
            return None
        return record

    def visible_ids(self) -> set[str]:
        return {id for id in self.records if self.visible(id) is not None}

    def use(self, *ids: str) -> None:
        for id in ids:
            self.records[id]["used"] = next(self.uses)

    def walk(self, id: str) -> tuple[list[str], bool]:
        """The chain from ``id`` back, oldest first, and whether it is whole."""
        chain = [id]
        previous = self.records[id]["previous"]
        while previous is not None:
            if self.visible(previous) is None:
                return chain[::-1], False
            chain.append(previous)
            previous = self.records[previous]["previous"]
        return chain[::-1], True

    def create(self, id: str, previous: str | None, ttl: float | str | None) -> None:
        ancestors: list[str] = []
        if previous is not None:
            record = self.visible(previous)
            if record is None or not record["finished"]:
                raise ChainError("model")
            ancestors, _ = self.walk(previous)
        live = self.visible_ids()
        # The chain being continued must survive, so only finished records outside it can make room.
        evictable = {i for i in live if self.records[i]["finished"]} - set(ancestors)
        if len(live) >= self.max_records and not evictable:
            raise StoreFull(id, self.max_records)
        for ancestor in ancestors:
            record = self.records[ancestor]
            if record["ttl"] is not None:
                record["expires_at"] = self.now + record["ttl"]
            self.use(ancestor)
        while len(live) >= self.max_records:
            victim = min(evictable, key=lambda i: self.records[i]["used"])
            evictable.remove(victim)
            del self.records[victim]
            live.remove(victim)
            self.evicted += 1
        record_ttl = self.ttl if ttl == STORE_TTL else ttl
        self.records[id] = {
            "finished": False,
            "previous": previous,
            "ttl": record_ttl,
            "expires_at": None if record_ttl is None else self.now + record_ttl,  # type: ignore[operator]
            "used": next(self.uses),
        }
        self.created += 1

    def read(self, id: str) -> None:
        if self.visible(id) is None:
            raise ResponseNotFound(id)
        self.use(id)

    def chain(self, id: str) -> list[str]:
        if self.visible(id) is None:
            raise ResponseNotFound(id)
        chain, whole = self.walk(id)
        if not whole:
            raise ChainError("model")
        self.use(*chain)
        return chain

    def complete(self, id: str) -> None:
        record = self.visible(id)
        if record is None:
            raise ResponseNotFound(id)
        if record["finished"]:
            raise InvalidTransition(id, "completed", "completed")
        record["finished"] = True
        self.use(id)

    def delete(self, id: str) -> None:
        if self.visible(id) is None:
            raise ResponseNotFound(id)
        del self.records[id]
        self.deleted += 1


picks = st.integers(min_value=0, max_value=1000)
ttls = st.sampled_from((STORE_TTL, None, *MODEL_TTLS))


def _outcome(call: Callable[[], Any]) -> tuple[Any, type[ResponseStoreError] | None]:
    try:
        return call(), None
    except ResponseStoreError as exc:
        return None, type(exc)


def make_retention_machine(contract: ContractBase) -> type[RuleBasedStateMachine]:
    """The state machine comparing a bounded store of the ``contract``'s backend with the retention model."""

    class RetentionMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.clock = FakeClock(0.0)
            self.store: BaseStore | None = None
            self.model = RetentionModel(1.0, 1)
            self.known: list[str] = []

        def teardown(self) -> None:
            try:
                if self.store is not None:
                    self.store._check()
            finally:
                close = getattr(self.store, "close", None)
                if close is not None:
                    close()

        @initialize(max_records=st.integers(3, 6), ttl=st.sampled_from(MODEL_TTLS))
        def open(self, max_records: int, ttl: float) -> None:
            self.store = contract.make_store(clock=self.clock, ttl=ttl, max_records=max_records)
            self.model = RetentionModel(ttl, max_records)

        @property
        def real(self) -> BaseStore:
            assert self.store is not None
            return self.store

        def pick(self, n: int, finished: bool | None = None, chained: bool = False) -> str:
            """Usually a visible id (finished or not, when asked), else any id ever used, or an unknown one.

            With ``chained``, mostly one that continues another: chains are where retention gets subtle.
            """
            visible = [
                id
                for id in self.known
                if self.model.visible(id) is not None and finished in (None, self.model.records[id]["finished"])
            ]
            linked = [id for id in visible if self.model.records[id]["previous"] is not None]
            if chained and linked and n % 3:
                return linked[n % len(linked)]
            if visible and n % 5:
                return visible[n % len(visible)]
            candidates = [*self.known, "resp_unknown"]
            return candidates[n % len(candidates)]

        def same(self, what: str, real: Callable[[], Any], model: Callable[[], Any]) -> Any:
            result, real_error = _outcome(real)
            expected, model_error = _outcome(model)
            event(f"{what}: {model_error.__name__ if model_error else 'ok'}")
            assert real_error is model_error, f"{what}: store {real_error or result!r}, model {model_error}"
            return result, expected

        @rule(ttl=ttls, count=st.integers(1, 2))
        def create_finished(self, ttl: float | str | None, count: int) -> None:
            for _ in range(count):  # several at a time, so the store often reaches its cap
                self.create_one(None, ttl, "in_progress", finish=True)

        @rule(ttl=ttls, status=st.sampled_from(("queued", "in_progress")))
        def create_active(self, ttl: float | str | None, status: str) -> None:
            self.create_one(None, ttl, status, finish=False)

        @precondition(lambda self: self.known)
        @rule(n=picks, ttl=ttls, finish=st.booleans(), wait=st.sampled_from((0.0, 0.5, 1.5)))
        def continue_(self, n: int, ttl: float | str | None, finish: bool, wait: float) -> None:
            # Time passing before a continuation is what makes its refresh of the chain matter.
            self.advance(wait)
            self.create_one(self.pick(n, finished=True, chained=True), ttl, "in_progress", finish)

        def create_one(self, previous_id: str | None, ttl: float | str | None, status: str, finish: bool) -> None:
            kwargs: dict[str, Any] = {} if ttl == STORE_TTL else {"ttl": ttl}
            made: list[ResponseRecord] = []  # the store goes first and names the record for the model

            def real() -> ResponseRecord:
                made.append(self.real.create("m", "x", previous_response_id=previous_id, status=status, **kwargs))
                return made[0]

            def model() -> None:
                self.model.create(made[0].id if made else "refused", previous_id, ttl)

            self.same("create" if previous_id is None else "continue", real, model)
            if not made:
                return
            record = made[0]
            self.known.append(record.id)
            if finish:
                self.real.complete(record.id)
                self.model.complete(record.id)

        @precondition(lambda self: self.known)
        @rule(n=picks)
        def complete(self, n: int) -> None:
            id = self.pick(n, finished=False)
            self.same("complete", lambda: self.real.complete(id), lambda: self.model.complete(id))

        @precondition(lambda self: self.known)
        @rule(n=picks)
        def update(self, n: int) -> None:
            id = self.pick(n)
            self.same("update", lambda: self.real.update(id, metadata={"n": str(n)}), lambda: self.model.read(id))

        @precondition(lambda self: self.known)
        @rule(n=picks, how=st.sampled_from(("get", "input_items")))
        def read(self, n: int, how: str) -> None:
            id = self.pick(n)
            self.same(how, lambda: getattr(self.real, how)(id), lambda: self.model.read(id))

        @precondition(lambda self: self.known)
        @rule(n=picks, how=st.sampled_from(("chain", "conversation")))
        def walk(self, n: int, how: str) -> None:
            id = self.pick(n, chained=True)
            real, expected = self.same(how, lambda: getattr(self.real, how)(id), lambda: self.model.chain(id))
            if how == "chain" and real is not None:
                assert [record.id for record in real] == expected

        @precondition(lambda self: self.known)
        @rule(n=picks)
        def delete(self, n: int) -> None:
            id = self.pick(n)
            self.same("delete", lambda: self.real.delete(id), lambda: self.model.delete(id))

        @rule(seconds=st.sampled_from((0.0, 0.5, 1.0, 2.0, 4.0)))
        def advance(self, seconds: float) -> None:
            self.clock.advance(seconds)
            self.model.now += seconds

        @rule()
        def sweep(self) -> None:
            before = self.real.stats()
            assert self.real.sweep() >= 0
            assert self.real.stats() == before

        @invariant()
        def agrees_with_model(self) -> None:
            if self.store is None:
                return
            self.store._check()
            expected = self.model.visible_ids()
            assert set(listed_ids(self.store)) == expected
            assert {id for id in self.known if id in self.store} == expected
            assert len(self.store) == len(expected) <= self.model.max_records
            stats = self.store.stats()
            assert_stats_add_up(stats)
            assert (stats.records, stats.created, stats.deleted, stats.evicted) == (
                len(expected),
                self.model.created,
                self.model.deleted,
                self.model.evicted,
            )
            finished = sum(1 for id in expected if self.model.records[id]["finished"])
            assert stats.records - stats.by_status["queued"] - stats.by_status["in_progress"] == finished

    return RetentionMachine


class RetentionTests(ContractBase):
    """Bounded retention on every backend: TTL expiry, chain refresh on continuation, LRU capacity, sweeping, stats."""

    def test_retention_agrees_with_the_model(self) -> None:
        """Random creates, continuations, deletes and clock moves keep TTL and capacity exactly as the model does.

        Durable backends pay for a transaction per step: :meth:`~ContractBase.examples` of the profile's count.
        """
        examples = self.examples(self.profile_examples())
        run_state_machine_as_test(
            make_retention_machine(self), settings=self.hypothesis(examples, stateful_step_count=50)
        )

    def test_defaults_are_bounded(self, new_store: StoreFactory) -> None:
        store = new_store()
        assert store.retention.ttl == THIRTY_DAYS
        assert store.retention.max_records == 10_000

    def test_none_disables_both_limits(self, new_store: StoreFactory, clock: FakeClock) -> None:
        store = new_store(clock=clock, ttl=None, max_records=None)
        assert store.retention.ttl is None
        assert store.retention.max_records is None
        active = [store.create("m", "x") for _ in range(300)]  # all active: any cap up to 299 would refuse one
        clock.advance(100 * 365 * 24 * 3600.0)
        assert len(store) == 300
        assert store.get(active[0].id) == active[0]
        assert store.sweep() == 0
        stats = store.stats()
        assert (stats.records, stats.created, stats.evicted, stats.expired) == (300, 300, 0, 0)

    @pytest.mark.parametrize(
        ("ttl", "seconds"),
        [
            (1, 1.0),
            (90, 90.0),
            (0.25, 0.25),
            (datetime.timedelta(minutes=2), 120.0),
            (datetime.timedelta(days=1, milliseconds=500), 86_400.5),
            (datetime.timedelta(microseconds=1), 1e-6),
        ],
    )
    def test_ttl_accepts_seconds_and_timedelta(self, new_store: StoreFactory, ttl: Any, seconds: float) -> None:
        store = new_store(ttl=ttl)
        assert store.retention.ttl == seconds
        assert isinstance(store.retention.ttl, float)

    @pytest.mark.parametrize("max_records", [1, 3, 10_000, 10**9])
    def test_max_records_accepts_positive_ints(self, new_store: StoreFactory, max_records: int) -> None:
        assert new_store(max_records=max_records).retention.max_records == max_records

    @pytest.mark.parametrize("ttl", INVALID_TTLS, ids=repr)
    def test_invalid_store_ttl_is_refused(self, new_store: StoreFactory, ttl: Any) -> None:
        with pytest.raises(InvalidArgument):
            new_store(ttl=ttl)

    @pytest.mark.parametrize("max_records", INVALID_MAX_RECORDS, ids=repr)
    def test_invalid_max_records_is_refused(self, new_store: StoreFactory, max_records: Any) -> None:
        with pytest.raises(InvalidArgument):
            new_store(max_records=max_records)

    @pytest.mark.parametrize("ttl", INVALID_TTLS, ids=repr)
    def test_invalid_record_ttl_is_refused_and_stores_nothing(self, store: BaseStore, ttl: Any) -> None:
        kept = done(store)
        before = snapshot(store)
        with pytest.raises(InvalidArgument):
            store.create("m", "x", id="resp_refused", ttl=ttl)
        assert snapshot(store) == before
        assert "resp_refused" not in store
        assert store.get(kept.id) == kept

    def test_expired_record_vanishes_from_every_method_at_once(self, new_store: StoreFactory, clock: FakeClock) -> None:
        store = new_store(clock=clock, ttl=100.0, max_records=None)
        start = clock()
        older = done(store, "older", ttl=None)
        doomed = done(store, "doomed")
        child = done(store, "child", previous_response_id=doomed.id, ttl=None)
        active = store.create("m", "active", background=True, status="queued")
        newer = done(store, "newer", ttl=None)
        assert doomed.created_at == active.created_at == start

        def pages_desc() -> list[tuple[list[str], bool]]:
            pages, after = [], None
            while True:
                page = store.list(limit=1, after=after)
                pages.append(([r.id for r in page.data], page.has_more))
                if not page.has_more:
                    return pages
                after = page.last_id

        # Just before the expiry: everything is there.
        clock.set(start + 100.0 - 0.5)
        assert store.get(doomed.id) == doomed
        assert doomed.id in store
        assert store.contains(doomed.id)
        assert len(store) == 5
        assert listed_ids(store) == [older.id, doomed.id, child.id, active.id, newer.id]
        assert [record.id for record in store.chain(child.id)] == [doomed.id, child.id]
        assert len(store.conversation(child.id)) == 4
        assert [item["id"] for item in store.input_items(doomed.id).data] == [doomed.input[0]["id"]]
        assert store.find_item(doomed.input[0]["id"]) == doomed.input[0]
        assert store.stats().records == 5

        # At exactly created_at + ttl: gone from everything, in the same instant.
        clock.set(start + 100.0)
        for id in (doomed.id, active.id):
            with pytest.raises(ResponseNotFound) as info:
                store.get(id)
            assert info.value.id == id
            assert id not in store
            assert not store.contains(id)
            with pytest.raises(ResponseNotFound):
                store.input_items(id)
            with pytest.raises(ResponseNotFound):
                store.chain(id)
            with pytest.raises(ResponseNotFound):
                store.conversation(id)
        assert store.find_item(doomed.input[0]["id"]) is None
        assert store.find_item(active.input[0]["id"]) is None
        assert store.find_item(child.input[0]["id"]) == child.input[0]
        assert len(store) == 3
        assert listed_ids(store) == [older.id, child.id, newer.id]
        assert pages_desc() == [([newer.id], True), ([child.id], True), ([older.id], False)]
        assert [r.id for r in store.list(status="queued").data] == []
        assert [r.id for r in store.list(after=doomed.id, order="asc").data] == [child.id, newer.id]
        with pytest.raises(ChainError) as chain_info:
            store.chain(child.id)
        assert chain_info.value.id == doomed.id
        with pytest.raises(ChainError):
            store.conversation(child.id)
        with pytest.raises(ChainError):
            store.create("m", "x", previous_response_id=doomed.id)
        stats = store.stats()
        assert stats.records == 3
        assert stats.expired == 2
        assert stats.by_status["queued"] == 0
        assert stats.by_status["completed"] == 3
        assert_stats_add_up(stats)
        # Every change refuses an expired record exactly like a missing one (the active one would accept each).
        changes: list[Callable[[str], object]] = [
            store.start,
            store.complete,
            lambda rid: store.fail(rid, "boom"),
            lambda rid: store.mark_incomplete(rid, "max_output_tokens"),
            store.cancel,
            lambda rid: store.update(rid, metadata={"k": "v"}),
            store.delete,
        ]
        for change in changes:
            for id in (doomed.id, active.id):
                with pytest.raises(ResponseNotFound):
                    change(id)
        assert len(store) == 3
        assert store.stats() == stats
        # Later still: nothing comes back.
        clock.advance(10**6)
        assert listed_ids(store) == [older.id, child.id, newer.id]

    def test_record_ttl_overrides_the_store_ttl(self, new_store: StoreFactory, clock: FakeClock) -> None:
        store = new_store(clock=clock, ttl=100.0, max_records=None)
        start = clock()
        short = done(store, ttl=10)
        longer = done(store, ttl=1000.0)
        never = done(store, ttl=None)
        default = done(store)
        delta = done(store, ttl=datetime.timedelta(seconds=50))
        expectations = [
            (9.999, {short.id, longer.id, never.id, default.id, delta.id}),
            (10.0, {longer.id, never.id, default.id, delta.id}),
            (50.0, {longer.id, never.id, default.id}),
            (99.0, {longer.id, never.id, default.id}),
            (100.0, {longer.id, never.id}),
            (999.0, {longer.id, never.id}),
            (1000.0, {never.id}),
            (10.0**9, {never.id}),
        ]
        for offset, visible in expectations:
            clock.set(start + offset)
            assert set(listed_ids(store)) == visible, offset
            assert {id for id in (short.id, longer.id, never.id, default.id, delta.id) if id in store} == visible
            assert len(store) == len(visible)
        assert store.get(never.id) == never

    def test_store_without_ttl_can_still_expire_single_records(self, new_store: StoreFactory, clock: FakeClock) -> None:
        store = new_store(clock=clock, ttl=None, max_records=None)
        keep = done(store)
        brief = done(store, ttl=5)
        clock.advance(5)
        assert listed_ids(store) == [keep.id]
        assert brief.id not in store

    def test_sweep_removes_expired_records_and_counts_them(self, new_store: StoreFactory, clock: FakeClock) -> None:
        store = new_store(clock=clock, ttl=10.0, max_records=None)
        soon = [done(store) for _ in range(5)]
        later = [done(store, ttl=100) for _ in range(3)]
        forever = [store.create("m", "x", ttl=None) for _ in range(2)]
        assert store.sweep() == 0
        clock.advance(10)
        # Expired records are invisible before any sweep, and already counted as expired.
        stats = store.stats()
        assert (stats.records, stats.expired, stats.created) == (5, 5, 10)
        assert_stats_add_up(stats)
        assert store.sweep() == 5
        store._check()
        assert store.sweep() == 0
        assert store.stats() == stats  # sweeping reclaims memory, it changes nothing anyone can see
        clock.advance(90)
        assert store.sweep() == 3
        store._check()
        assert listed_ids(store) == [record.id for record in forever]
        final = store.stats()
        assert (final.records, final.expired, final.by_status["in_progress"], final.by_status["completed"]) == (
            2,
            8,
            2,
            0,
        )
        assert_stats_add_up(final)
        for record in soon + later:
            with pytest.raises(ResponseNotFound):
                store.get(record.id)

    def test_writes_sweep_the_expired_backlog_a_batch_at_a_time(
        self, new_store: StoreFactory, clock: FakeClock
    ) -> None:
        store = new_store(clock=clock, ttl=10.0, max_records=None)
        backlog = 6 * SWEEP_BATCH + 5
        for _ in range(backlog):
            store.create("m", "x")
        clock.advance(10)
        # Three writes of three kinds, each sweeping one batch.
        record = store.create("m", "y", ttl=None)
        store.complete(record.id)
        store.delete(record.id)
        store._check()
        assert store.sweep() == backlog - 3 * SWEEP_BATCH
        stats = store.stats()
        assert (stats.records, stats.created, stats.deleted, stats.expired) == (0, backlog + 1, 1, backlog)

    def test_many_writes_clear_the_backlog_without_a_sweep(self, new_store: StoreFactory, clock: FakeClock) -> None:
        store = new_store(clock=clock, ttl=10.0, max_records=None)
        backlog = 5 * SWEEP_BATCH
        for _ in range(backlog):
            store.create("m", "x")
        clock.advance(10)
        kept = store.create("m", "kept", ttl=None)
        for n in range(5):
            store.update(kept.id, metadata={"n": str(n)})
        assert store.sweep() == 0  # six writes, five batches: nothing was left
        assert store.get(kept.id).metadata == {"n": "4"}

    def test_reading_does_not_extend_life(self, new_store: StoreFactory, clock: FakeClock) -> None:
        store = new_store(clock=clock, ttl=100.0, max_records=None)
        first = done(store)
        second = done(store, previous_response_id=first.id)
        clock.advance(99)
        store.get(first.id)
        store.input_items(first.id)
        store.conversation(second.id)
        store.update(first.id, metadata={"k": "v"})  # a change is a use, not a continuation
        clock.advance(1)
        assert listed_ids(store) == []

    def test_continuing_restarts_the_expiry_of_the_whole_chain(self, new_store: StoreFactory, clock: FakeClock) -> None:
        store = new_store(clock=clock, ttl=100.0, max_records=None)
        start = clock()
        a = done(store, "a")
        b = done(store, "b", previous_response_id=a.id, ttl=300)
        c = done(store, "c", previous_response_id=b.id)
        unrelated = done(store, "unrelated")
        clock.set(start + 90)
        d = done(store, "d", previous_response_id=c.id)
        # Past the old expiry: the chain lives on (a and c until start+190, b until start+390), unrelated does not.
        clock.set(start + 100)
        assert unrelated.id not in store
        assert listed_ids(store) == [a.id, b.id, c.id, d.id]
        expected_items = [item["id"] for record in (a, b, c, d) for item in (*record.input, *record.output)]
        assert [item["id"] for item in store.conversation(d.id)] == expected_items
        assert [record.id for record in store.chain(d.id)] == [a.id, b.id, c.id, d.id]
        # Each ancestor kept its own ttl: at start+190 a, c and d expire together, b lives on.
        clock.set(start + 189.5)
        assert len(store) == 4
        clock.set(start + 190)
        assert listed_ids(store) == [b.id]
        with pytest.raises(ChainError):
            store.conversation(b.id)
        clock.set(start + 390)
        assert len(store) == 0
        stats = store.stats()
        assert (stats.expired, stats.records) == (5, 0)

    def test_continuing_a_broken_chain_refreshes_what_is_left(self, new_store: StoreFactory, clock: FakeClock) -> None:
        store = new_store(clock=clock, ttl=100.0, max_records=None)
        start = clock()
        a = done(store, "a", ttl=10)
        b = done(store, "b", previous_response_id=a.id)
        clock.set(start + 50)  # a expired: the chain of b is broken, but b itself can still be continued
        c = done(store, "c", previous_response_id=b.id)
        clock.set(start + 149)
        assert listed_ids(store) == [b.id, c.id]
        with pytest.raises(ChainError):
            store.conversation(c.id)
        clock.set(start + 150)
        assert listed_ids(store) == []

    def test_creating_past_the_cap_evicts_the_least_recently_used(self, new_store: StoreFactory) -> None:
        store = new_store(max_records=3)
        a, b, c = done(store, "a"), done(store, "b"), done(store, "c")
        d = store.create("m", "d")
        assert listed_ids(store) == [b.id, c.id, d.id]
        with pytest.raises(ResponseNotFound):
            store.get(a.id)
        stats = store.stats()
        assert (stats.records, stats.created, stats.evicted, stats.deleted, stats.expired) == (3, 4, 1, 0, 0)
        assert stats.by_status["completed"] == 2
        assert stats.by_status["in_progress"] == 1

    @pytest.mark.parametrize("use", sorted(USES))
    def test_using_a_record_makes_it_recent(self, new_store: StoreFactory, use: str) -> None:
        store = new_store(max_records=4)
        assert _evicted_after(store, USES[use]) == "b"

    @pytest.mark.parametrize("look", sorted(NOT_USES))
    def test_looking_at_a_record_does_not_make_it_recent(self, new_store: StoreFactory, look: str) -> None:
        store = new_store(max_records=4)
        assert _evicted_after(store, NOT_USES[look]) == "a"

    def test_finishing_counts_as_use(self, new_store: StoreFactory) -> None:
        store = new_store(max_records=3)
        a = store.create("m", "a")
        b = store.create("m", "b", status="queued")
        c = store.create("m", "c")
        store.fail(c.id, "boom")
        store.complete(b.id)
        store.mark_incomplete(a.id, "max_output_tokens")  # finished last: most recent, although created first
        d = store.create("m", "d")
        assert listed_ids(store) == [a.id, b.id, d.id]
        assert c.id not in store

    def test_chain_reads_use_oldest_first(self, new_store: StoreFactory) -> None:
        store = new_store(max_records=4)
        a = done(store, "a")
        b = done(store, "b", previous_response_id=a.id)
        c = done(store, "c", previous_response_id=b.id)
        other = done(store, "other")
        store.conversation(c.id)  # recency now: other, a, b, c
        store.create("m", "x")
        assert other.id not in store
        store.create("m", "y")
        assert a.id not in store
        assert listed_ids(store)[:2] == [b.id, c.id]

    def test_active_records_are_never_evicted_and_a_full_store_refuses(self, new_store: StoreFactory) -> None:
        store = new_store(max_records=3)
        queued = store.create("m", "q", status="queued", background=True)
        running = store.create("m", "r")
        finished = done(store, "f")  # the only finished record, though the newest
        newest = store.create("m", "n")
        assert listed_ids(store) == [queued.id, running.id, newest.id]
        assert finished.id not in store

        before = snapshot(store)
        with pytest.raises(StoreFull) as info:
            store.create("m", "refused", id="resp_refused", ttl=None)
        error = info.value
        assert isinstance(error, ResponseStoreError)
        assert error.id == "resp_refused"
        assert error.max_records == 3
        assert "resp_refused" in str(error)
        assert "3" in str(error)
        assert snapshot(store) == before
        assert "resp_refused" not in store
        # Still refused when asked again, with any status.
        with pytest.raises(StoreFull):
            store.create("m", "refused", status="queued")
        assert snapshot(store) == before

        store.start(queued.id)
        with pytest.raises(StoreFull):
            store.create("m", "refused")
        store.cancel(queued.id)  # now finished: the one record that can go
        accepted = store.create("m", "accepted", id="resp_refused")
        assert listed_ids(store) == [running.id, newest.id, accepted.id]
        stats = store.stats()
        assert (stats.records, stats.created, stats.evicted) == (3, 5, 2)
        assert_stats_add_up(stats)

    def test_deleting_makes_room_without_eviction(self, new_store: StoreFactory) -> None:
        store = new_store(max_records=2)
        a = store.create("m", "a")
        store.create("m", "b")
        with pytest.raises(StoreFull):
            store.create("m", "c")
        store.delete(a.id)
        store.create("m", "c")
        stats = store.stats()
        assert (stats.records, stats.created, stats.deleted, stats.evicted) == (2, 3, 1, 0)

    def test_expired_records_make_room_before_anything_is_evicted(
        self, new_store: StoreFactory, clock: FakeClock
    ) -> None:
        store = new_store(clock=clock, max_records=3, ttl=100)
        old = done(store, "old")
        short = store.create("m", "short", ttl=10)  # active, but expiring
        clock.advance(5)
        recent = done(store, "recent")
        clock.advance(5)  # short expires: one free place, so nothing needs evicting
        new = store.create("m", "new")
        assert listed_ids(store) == [old.id, recent.id, new.id]
        assert short.id not in store
        stats = store.stats()
        assert (stats.records, stats.expired, stats.evicted) == (3, 1, 0)

    def test_len_never_exceeds_the_cap_and_stats_add_up(self, new_store: StoreFactory, clock: FakeClock) -> None:
        store = new_store(clock=clock, max_records=5, ttl=50)
        active: list[str] = []
        full = 0
        for step in range(120):
            if step % 7 == 3:
                clock.advance(11)
            try:
                record = store.create("m", "x", status="queued" if step % 2 else "in_progress")
            except StoreFull:
                full += 1
            else:
                active.append(record.id)
            if step % 3 == 0 and active:
                id = active.pop(0)
                if id in store:
                    store.complete(id)
            assert len(store) <= 5
            stats = store.stats()
            assert stats.records == len(store)
            assert_stats_add_up(stats)
        assert full > 0  # the store filled up with active records at times
        assert store.stats().evicted > 0

    @pytest.mark.parametrize("how", ["delete", "evict", "expire"])
    def test_removing_a_record_removes_its_input_items(
        self, new_store: StoreFactory, clock: FakeClock, how: str
    ) -> None:
        store = new_store(clock=clock, max_records=2, ttl=10)
        items = [{"role": "user", "content": "one", "id": "msg_1"}, {"role": "user", "content": "two", "id": "msg_2"}]
        record = done(store, items)  # type: ignore[arg-type]
        assert [item["id"] for item in store.input_items(record.id, order="asc").data] == ["msg_1", "msg_2"]
        if how == "delete":
            store.delete(record.id)
        elif how == "evict":
            done(store, "x", ttl=None)
            done(store, "y", ttl=None)
        else:
            clock.advance(10)
        with pytest.raises(ResponseNotFound):
            store.input_items(record.id)
        with pytest.raises(ResponseNotFound):
            store.input_items(record.id, after="msg_1")
        # The same item ids in a new record are that record's own.
        again = store.create("m", items, ttl=None)
        assert [item["id"] for item in store.input_items(again.id, order="asc").data] == ["msg_1", "msg_2"]

    def test_lru_scenario_written_out(self, new_store: StoreFactory) -> None:
        """Cap 4. Each step's comment gives the recency order of finished records afterwards, least recent first."""
        store = new_store(max_records=4)
        ids: dict[str, str] = {}

        def visible() -> set[str]:
            return {name for name, id in ids.items() if id in store}

        def new(name: str, **kwargs: Any) -> None:
            ids[name] = store.create("m", name, **kwargs).id

        for name in "abc":
            new(name)
            store.complete(ids[name])  # a b c
        new("d", previous_response_id=ids["a"])  # b c a; d active
        store.complete(ids["d"])  # b c a d
        store.input_items(ids["b"])  # c a d b
        assert visible() == set("abcd")
        new("e")  # at the cap: evicts c -> a d b; e active
        assert visible() == set("abde")
        store.conversation(ids["d"])  # touches a, then d -> b a d
        store.complete(ids["e"])  # b a d e
        store.list()
        assert ids["b"] in store
        assert len(store) == 4
        new("f")  # evicts b -> a d e; f active
        assert visible() == set("adef")
        store.get(ids["a"])  # d e a
        new("g", status="queued")  # evicts d -> e a; f g active
        assert visible() == set("aefg")
        new("h")  # evicts e -> a; f g h active
        assert visible() == set("afgh")
        new("i")  # evicts a, the only finished record
        assert visible() == set("fghi")
        before = snapshot(store)
        with pytest.raises(StoreFull):
            new("j")
        assert snapshot(store) == before
        store.complete(ids["g"])  # g
        store.update(ids["f"], metadata={"k": "v"})  # f stays active: a change, but nothing to evict
        new("j")  # evicts g
        assert visible() == set("fhij")
        stats = store.stats()
        assert (stats.created, stats.evicted, stats.records, stats.deleted, stats.expired) == (10, 6, 4, 0, 0)
        assert stats.by_status["in_progress"] == 4

    def test_recreating_the_id_of_an_expired_record_not_yet_swept(
        self, new_store: StoreFactory, clock: FakeClock
    ) -> None:
        """More expired records than one write sweeps: the old entry of a re-used id must not shadow the new one."""
        store = new_store(clock=clock, ttl=10.0, max_records=None)
        count = 2 * SWEEP_BATCH + 1
        for n in range(count):
            store.create("m", "old", id=f"resp_{n}")
        clock.advance(10)
        again = store.create("m", "new", id=f"resp_{count - 1}", ttl=None)
        assert store.get(again.id) == again
        assert len(store) == 1
        store._check()
        assert store.sweep() == count - 1 - SWEEP_BATCH
        assert store.get(again.id) == again
        assert listed_ids(store) == [again.id]
        stats = store.stats()
        assert (stats.records, stats.created, stats.expired) == (1, count + 1, count)

    def test_continuing_at_the_cap_keeps_the_chain_it_continues(self, new_store: StoreFactory) -> None:
        """Chains stay alive: continuing a response must not evict that response's own chain to make room.

        Either the store refuses (StoreFull, nothing changed) or the new response's conversation works.
        """
        store = new_store(max_records=3)
        a = done(store, "a")
        b = done(store, "b", previous_response_id=a.id)
        store.create("m", "busy")
        before = snapshot(store)
        try:
            c = store.create("m", "c", previous_response_id=b.id)
        except StoreFull:
            assert snapshot(store) == before
        else:
            assert [record.id for record in store.chain(c.id)] == [a.id, b.id, c.id]

    def test_a_clock_stepping_back_keeps_len_and_visibility_in_agreement(
        self, new_store: StoreFactory, clock: FakeClock
    ) -> None:
        """Wall clocks step back (NTP); a refresh then must not leave a record counted by len but invisible."""
        store = new_store(clock=clock, ttl=100.0, max_records=None)
        start = clock()
        a = done(store, "a")
        clock.set(start - 50)
        b = done(store, "b", previous_response_id=a.id)
        for offset in (40, 50, 60, 100, 200):
            clock.set(start + offset)
            visible = [id for id in (a.id, b.id) if id in store]
            assert len(store) == len(visible) == len(listed_ids(store)), offset
            assert store.stats().records == len(visible)
        store._check()
