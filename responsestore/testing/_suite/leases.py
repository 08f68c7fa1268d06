"""Leases: who runs a response, until when, and what happens to a response whose runner is gone."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from responsestore import (
    BaseStore,
    InvalidArgument,
    InvalidTransition,
    LeaseLost,
    ResponseStatus,
    StoreFull,
    VersionConflict,
)
from responsestore.testing._clock import FakeClock

from .base import ContractBase, StoreFactory


class LeaseTests(ContractBase):
    """``create(lease=, holder=)``, ``renew``, writes that name a holder, and ``expire_leases``."""

    def test_a_lease_is_held_until_it_runs_out(self, store: BaseStore, clock: FakeClock) -> None:
        record = store.create("m", lease=30, holder="run-1", status="queued", background=True)
        assert (record.lease_holder, record.lease_expires_at) == ("run-1", clock() + 30)
        assert store.get(record.id) == record
        clock.advance(10)
        renewed = store.renew(record.id, lease=30, holder="run-1")
        assert (renewed.version, renewed.lease_expires_at, renewed.lease_holder) == (2, clock() + 30, "run-1")
        started = store.start(record.id, holder="run-1", lease=60)
        assert (started.version, started.lease_expires_at) == (3, clock() + 60)
        done = store.complete(record.id, holder="run-1")
        assert (done.lease_holder, done.lease_expires_at) == (None, None), "a finished response holds no lease"
        assert store.get(record.id).to_openai() == done.to_openai()
        assert "lease_holder" not in done.to_openai()

    def test_a_response_without_a_lease_can_be_taken(self, store: BaseStore, clock: FakeClock) -> None:
        record = store.create("m")
        assert record.lease_expires_at is None
        taken = store.renew(record.id, lease=5, holder="worker")
        assert (taken.lease_holder, taken.lease_expires_at) == ("worker", clock() + 5)
        with pytest.raises(LeaseLost, match="held by 'worker'"):
            store.renew(record.id, lease=5, holder="intruder")
        kept = store.renew(record.id, lease=9)  # no holder named: the lease keeps its holder
        assert (kept.lease_holder, kept.lease_expires_at) == ("worker", clock() + 9)

    def test_writes_naming_another_holder_change_nothing(self, store: BaseStore) -> None:
        record = store.create("m", lease=30, holder="run-1", background=True)
        for write in (
            lambda: store.append_events(record.id, [{"type": "x"}], holder="run-2"),
            lambda: store.complete(record.id, holder="run-2"),
            lambda: store.fail(record.id, "no", holder="run-2"),
            lambda: store.update(record.id, metadata={"a": "b"}, holder="run-2"),
            lambda: store.renew(record.id, lease=10, holder="run-2"),
            lambda: store.cancel(record.id, holder="run-2"),
        ):
            with pytest.raises(LeaseLost) as lost:
                write()
            assert (lost.value.holder, lost.value.held_by, lost.value.id) == ("run-2", "run-1", record.id)
        assert store.get(record.id) == record
        assert store.events(record.id) == ()
        # Anyone may still cancel or fail it without naming a holder (a user's cancel, the lease sweeper).
        cancelled = store.cancel(record.id)
        with pytest.raises(LeaseLost, match="holds no lease"):
            store.append_events(record.id, [{"type": "x"}], holder="run-1")
        with pytest.raises(InvalidTransition, match="holds no lease"):
            store.renew(cancelled.id, lease=10)

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"holder": "h"}, "holder needs a lease"),
            ({"lease": 0}, "lease"),
            ({"lease": -1}, "lease"),
            ({"lease": float("inf")}, "lease"),
            ({"lease": "30"}, "lease"),
            ({"lease": 30, "holder": ""}, "holder"),
            ({"lease": 30, "holder": 7}, "holder"),
            ({"lease": 30, "holder": "h" * 257}, "holder"),
        ],
    )
    def test_bad_leases_are_refused(self, store: BaseStore, options: dict[str, Any], message: str) -> None:
        with pytest.raises(InvalidArgument, match=message):
            store.create("m", **options)
        record = store.create("m")
        if "lease" in options:
            with pytest.raises(InvalidArgument, match=message):
                store.renew(record.id, **{"lease": 30, **options})
        assert store.get(record.id) == record
        assert len(store) == 1

    def test_renew_needs_a_lease_and_checks_the_version(self, store: BaseStore) -> None:
        record = store.create("m", lease=30, holder="h")
        with pytest.raises(InvalidArgument, match="needs a lease"):
            store.renew(record.id, lease=None)  # type: ignore[arg-type]
        with pytest.raises(VersionConflict):
            store.renew(record.id, lease=30, expected_version=5)
        assert store.renew(record.id, lease=30, expected_version=1).version == 2

    def test_appending_can_renew(self, store: BaseStore, clock: FakeClock) -> None:
        record = store.create("m", lease=10, holder="h")
        clock.advance(5)
        store.append_events(record.id, [{"type": "a"}], holder="h")
        assert store.get(record.id).version == 1, "a plain append is not a change of the record"
        store.append_events(record.id, [{"type": "b"}], holder="h", lease=10)
        current = store.get(record.id)
        assert (current.version, current.lease_expires_at) == (2, clock() + 10)

    def test_expired_leases_end_their_responses_failed(self, store: BaseStore, clock: FakeClock) -> None:
        queued = store.create("m", lease=10, holder="a", status="queued", background=True)
        running = store.create("m", lease=10, holder="b", background=True)
        store.append_events(running.id, [{"type": "response.created"}, {"type": "x"}], holder="b")
        renewed = store.create("m", lease=10, holder="c")
        unleased = store.create("m")
        finished = store.complete(store.create("m", lease=10, holder="d").id)
        clock.advance(8)
        store.renew(renewed.id, lease=10, holder="c")
        assert store.expire_leases() == 0
        assert [e["type"] for e in store.events(running.id)] == ["response.created", "x"], (
            "append_events returned, so its events must be in the log at once: the store lost appended events"
        )
        follower = store.stream(running.id, timeout=self.time_limit)
        assert [e["type"] for e in (next(follower), next(follower))] == ["response.created", "x"]
        clock.advance(2)
        assert store.expire_leases() == 2
        for record in (queued, running):
            ended = store.get(record.id)
            assert ended.status is ResponseStatus.FAILED
            assert ended.error is not None
            assert ended.error["code"] == "server_error"
            assert "stopped" in ended.error["message"]
            assert ended.lease_holder is None
            last = store.events(record.id)[-1]
            assert last["type"] == "response.failed"
            assert last["response"] == ended.to_openai()
        assert [e["type"] for e in follower] == ["response.failed"], "a follower's stream ends with the failure"
        assert store.get(renewed.id).status is ResponseStatus.IN_PROGRESS
        assert store.get(unleased.id).status is ResponseStatus.IN_PROGRESS
        assert store.get(finished.id) == finished
        with pytest.raises(LeaseLost):  # the dead run, come back, cannot write any more
            store.append_events(running.id, [{"type": "late"}], holder="b")
        assert store.expire_leases() == 0

    def test_expire_leases_takes_a_limit(self, store: BaseStore, clock: FakeClock) -> None:
        for _ in range(3):
            store.create("m", lease=1, holder="h")
        clock.advance(2)
        with pytest.raises(InvalidArgument, match="limit"):
            store.expire_leases(limit=0)
        assert store.expire_leases(limit=2) == 2
        assert store.expire_leases() == 1

    def test_a_renewal_racing_the_sweeper_wins_or_loses_cleanly(self, store: BaseStore, clock: FakeClock) -> None:
        rounds = self.scaled(60, 10)
        for _ in range(rounds):
            record = store.create("m", lease=1, holder="h")
            clock.advance(1)
            results: dict[str, Any] = {}

            def renew(record_id: str = record.id, results: dict[str, Any] = results) -> None:
                try:
                    results["renew"] = store.renew(record_id, lease=30, holder="h")
                except (LeaseLost, InvalidTransition) as exc:
                    results["renew"] = exc

            def sweep(results: dict[str, Any] = results) -> None:
                results["sweep"] = store.expire_leases()

            threads = [threading.Thread(target=renew), threading.Thread(target=sweep)]
            for thread in threads:
                thread.start()
            self._budget().join(threads, "a renewal racing the lease sweeper")
            final = store.get(record.id)
            if final.status is ResponseStatus.FAILED:  # the sweeper got there first: the renewal was refused
                assert isinstance(results["renew"], (LeaseLost, InvalidTransition))
            else:  # the renewal got there first: the sweeper left it alone
                assert final.lease_expires_at == clock() + 30
                assert final.status is ResponseStatus.IN_PROGRESS
            store.delete(record.id)

    def test_stranded_responses_do_not_block_creates(self, new_store: StoreFactory, clock: FakeClock) -> None:
        store = new_store(clock=clock, max_records=2)
        store.create("m", lease=5, holder="dead")
        store.create("m", lease=5, holder="dead")
        with pytest.raises(StoreFull):
            store.create("m")  # both still run (their leases have not run out): nothing may go
        clock.advance(6)
        created = store.create("m")  # their process is gone: they end failed, then make room
        assert store.get(created.id) == created
        assert store.stats().by_status["failed"] == 1
        assert len(store) == 2
