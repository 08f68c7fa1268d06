"""Event logs, waiting and streaming: the background-response contract, on every backend."""

from __future__ import annotations

import queue
import random
import threading
from collections.abc import Callable
from typing import Any

import pytest

from responsestore import (
    BaseStore,
    EventLogClosed,
    EventLogFull,
    InvalidArgument,
    InvalidTransition,
    ResponseNotFound,
    ResponseStatus,
    ResponseStoreError,
    WaitTimeout,
)

from .base import LOST_WRITE, Budget, ContractBase

StoreFactory = Callable[..., BaseStore]


def delta(i: int) -> dict[str, Any]:
    return {"type": "response.output_text.delta", "delta": f"token {i}"}


def run_threads(threads: list[threading.Thread], budget: Budget, what: str) -> None:
    for thread in threads:
        thread.start()
    budget.join(threads, what)


def sequence_numbers(store: BaseStore, id: str) -> list[int]:
    """The numbers of the events stored for ``id``: checked before a test waits for them, so that a store that
    loses appended events fails at once instead of after the time limit."""
    return [event["sequence_number"] for event in store.events(id)]


#: The failure message of a store whose log lacks events it accepted.
LOST_EVENTS = "append_event returned, so its event must be in the log at once: the store lost appended events"


# ------------------------------------------------------------------ appending and replaying


# ------------------------------------------------------------------ waiting and streaming


class EventTests(ContractBase):
    """Event logs, waiting and streaming: the background-response contract, on every backend."""

    def test_append_assigns_consecutive_sequence_numbers_and_replays(self, store: BaseStore) -> None:
        record = store.create("m", background=True)
        numbers = [store.append_event(record.id, delta(i)) for i in range(5)]
        assert numbers == [0, 1, 2, 3, 4], f"appended events are numbered one after the other: {LOST_EVENTS}"
        events = store.events(record.id)
        assert [e["sequence_number"] for e in events] == [0, 1, 2, 3, 4], LOST_EVENTS
        assert [e["delta"] for e in events] == [f"token {i}" for i in range(5)]
        assert [e["sequence_number"] for e in store.events(record.id, starting_after=2)] == [3, 4]
        assert store.events(record.id, starting_after=4) == ()
        assert store.events(record.id, starting_after=99) == ()

    def test_an_event_carrying_the_right_number_is_accepted_and_a_wrong_one_refused(self, store: BaseStore) -> None:
        record = store.create("m")
        assert store.append_event(record.id, {"type": "a", "sequence_number": 0}) == 0
        for wrong in (0, 2, 5):
            with pytest.raises(InvalidArgument, match=f"carries sequence_number {wrong}, but the next one is 1"):
                store.append_event(record.id, {"type": "b", "sequence_number": wrong})
        assert len(store.events(record.id)) == 1
        for bad in (-1, "1", 1.0, True):
            with pytest.raises(InvalidArgument, match="sequence_number"):
                store.append_event(record.id, {"type": "b", "sequence_number": bad})
        assert store.append_event(record.id, {"type": "b", "sequence_number": 1}) == 1

    def test_stored_events_are_frozen_copies(self, store: BaseStore) -> None:
        record = store.create("m")
        event: dict[str, Any] = {"type": "x", "payload": {"list": [1, 2]}}
        store.append_event(record.id, event)
        event["payload"]["list"].append(3)
        event["type"] = "changed"
        got = store.events(record.id)[0]
        assert got == {"type": "x", "payload": {"list": [1, 2]}, "sequence_number": 0}
        got["payload"]["list"].clear()
        assert store.events(record.id)[0]["payload"]["list"] == [1, 2]

    @pytest.mark.parametrize("bad", [None, "text", 3, ["a"], {"k": {1, 2}}, {"k": float("nan")}, {1: "x"}])
    def test_a_non_json_event_is_refused_and_nothing_is_appended(self, store: BaseStore, bad: Any) -> None:
        record = store.create("m")
        with pytest.raises(InvalidArgument):
            store.append_event(record.id, bad)
        assert store.events(record.id) == ()
        assert store.get(record.id) == record

    def test_events_only_while_queued_or_in_progress(self, store: BaseStore) -> None:
        record = store.create("m", status="queued", background=True)
        store.append_event(record.id, delta(0))
        store.start(record.id)
        store.append_event(record.id, delta(1))
        store.complete(record.id)
        with pytest.raises(EventLogClosed, match=f"{record.id}.*'completed'") as caught:
            store.append_event(record.id, delta(2))
        assert isinstance(caught.value, ResponseStoreError)
        assert caught.value.id == record.id
        assert len(store.events(record.id)) == 2

    @pytest.mark.parametrize(
        ("finish", "status"),
        [
            (lambda s, i, e: s.complete(i, event=e), ResponseStatus.COMPLETED),
            (lambda s, i, e: s.fail(i, "boom", event=e), ResponseStatus.FAILED),
            (lambda s, i, e: s.cancel(i, event=e), ResponseStatus.CANCELLED),
            (lambda s, i, e: s.mark_incomplete(i, "max_output_tokens", event=e), ResponseStatus.INCOMPLETE),
            (lambda s, i, e: s.update(i, status="completed", event=e), ResponseStatus.COMPLETED),
        ],
    )
    def test_every_transition_can_carry_a_final_event(
        self, store: BaseStore, finish: Callable[..., Any], status: ResponseStatus
    ) -> None:
        record = store.create("m", background=True)
        store.append_event(record.id, delta(0))
        done = finish(store, record.id, {"type": f"response.{status.value}"})
        assert done.status is status
        assert store.events(record.id)[-1] == {"type": f"response.{status.value}", "sequence_number": 1}

    def test_start_can_carry_an_event(self, store: BaseStore) -> None:
        record = store.create("m", status="queued")
        store.start(record.id, event={"type": "response.in_progress"})
        assert store.events(record.id) == ({"type": "response.in_progress", "sequence_number": 0},)

    def test_a_refused_transition_appends_no_event(self, store: BaseStore) -> None:
        record = store.create("m")
        store.complete(record.id)
        with pytest.raises(InvalidTransition):
            store.fail(record.id, "late", event={"type": "response.failed"})
        assert store.events(record.id) == ()
        # A wrongly numbered final event refuses the whole transition.
        other = store.create("m")
        with pytest.raises(InvalidArgument):
            store.complete(other.id, event={"type": "response.completed", "sequence_number": 7})
        assert store.get(other.id).status is ResponseStatus.IN_PROGRESS
        assert store.events(other.id) == ()

    def test_cancelling_an_already_cancelled_response_appends_nothing(self, store: BaseStore) -> None:
        record = store.create("m", background=True)
        store.cancel(record.id, event={"type": "response.cancelled"})
        again = store.cancel(record.id, event={"type": "response.cancelled"})
        assert again.version == 2
        assert len(store.events(record.id)) == 1

    def test_event_count_bound(self, new_store: StoreFactory) -> None:
        store = new_store(max_events=3)
        record = store.create("m")
        for i in range(3):
            store.append_event(record.id, delta(i))
        with pytest.raises(EventLogFull, match="maximum of 3 events"):
            store.append_event(record.id, delta(3))
        # The final event of a transition counts too, and a full log refuses the transition whole.
        with pytest.raises(EventLogFull):
            store.complete(record.id, event={"type": "response.completed"})
        assert store.get(record.id).status is ResponseStatus.IN_PROGRESS
        assert len(store.events(record.id)) == 3
        store.complete(record.id)  # without an event it goes through

    def test_event_bytes_bound(self, new_store: StoreFactory) -> None:
        store = new_store(max_event_bytes=100)
        record = store.create("m")
        store.append_event(record.id, {"type": "x", "d": "a" * 40})
        with pytest.raises(EventLogFull, match="past its maximum of 100 bytes"):
            store.append_event(record.id, {"type": "x", "d": "b" * 60})
        assert len(store.events(record.id)) == 1
        store.append_event(record.id, {"type": "x"})  # a small one still fits

    @pytest.mark.parametrize(("name", "value"), [("max_events", 0), ("max_events", "10"), ("max_event_bytes", -1)])
    def test_invalid_event_limits_are_refused(self, new_store: StoreFactory, name: str, value: Any) -> None:
        with pytest.raises(InvalidArgument, match=name):
            new_store(**{name: value})

    def test_events_go_away_with_their_response(self, new_store: StoreFactory, clock: Any) -> None:
        store = new_store(clock=clock, ttl=10.0, max_records=2)
        deleted = store.create("m")
        store.append_event(deleted.id, delta(0))
        store.delete(deleted.id)
        with pytest.raises(ResponseNotFound):
            store.events(deleted.id)
        expired = store.create("m")
        store.append_event(expired.id, delta(0))
        clock.advance(11)
        with pytest.raises(ResponseNotFound):
            store.events(expired.id)
        assert store.sweep() == 1
        evicted = store.create("m")
        store.append_event(evicted.id, delta(0))
        store.complete(evicted.id)
        store.create("m")
        store.complete(store.create("m").id)  # at the cap: evicts the least recently used finished one
        with pytest.raises(ResponseNotFound):
            store.events(evicted.id)
        # Re-using the id starts a new, empty log.
        again = store.create("m", id=deleted.id)
        assert store.events(again.id) == ()

    def test_owner_scoping_of_event_methods(self, store: BaseStore) -> None:
        record = store.create("m", owner="alice")
        store.append_event(record.id, delta(0), owner="alice")
        for owner in ("bob", None):
            with pytest.raises(ResponseNotFound) as caught:
                store.append_event(record.id, delta(1), owner=owner)
            assert str(caught.value) == f"no response with id {record.id!r}"
            with pytest.raises(ResponseNotFound):
                store.events(record.id, owner=owner)
            with pytest.raises(ResponseNotFound):
                store.wait(record.id, timeout=0, owner=owner)
            with pytest.raises(ResponseNotFound):
                list(store.stream(record.id, timeout=0, owner=owner))
        assert len(store.events(record.id, owner="alice")) == 1

    @pytest.mark.parametrize("bad", [-1, "0", 1.5, True])
    def test_bad_starting_after_is_refused_at_once(self, store: BaseStore, bad: Any) -> None:
        record = store.create("m")
        with pytest.raises(InvalidArgument, match="starting_after"):
            store.events(record.id, starting_after=bad)
        with pytest.raises(InvalidArgument, match="starting_after"):
            store.stream(record.id, starting_after=bad)

    @pytest.mark.parametrize("bad", [-1, "1", float("nan"), [1]])
    def test_bad_timeouts_are_refused_at_once(self, store: BaseStore, bad: Any) -> None:
        record = store.create("m")
        with pytest.raises(InvalidArgument, match="timeout"):
            store.wait(record.id, timeout=bad)
        with pytest.raises(InvalidArgument, match="timeout"):
            store.stream(record.id, timeout=bad)

    def test_wait_returns_a_finished_response_at_once(self, store: BaseStore) -> None:
        record = store.create("m")
        done = store.complete(record.id)
        assert store.wait(record.id, timeout=0) == done

    def test_wait_and_stream_time_out_with_a_clear_error(self, store: BaseStore) -> None:
        record = store.create("m")
        with pytest.raises(WaitTimeout, match=f"{record.id}.*in_progress") as caught:
            store.wait(record.id, timeout=0.05)
        assert isinstance(caught.value, TimeoutError)
        store.append_event(record.id, delta(0))
        got: list[int] = []
        with pytest.raises(WaitTimeout, match="no new event"):
            got.extend(e["sequence_number"] for e in store.stream(record.id, timeout=0.05))
        assert got == [0]  # the stored event came first, then the wait timed out
        assert len(store._waiters) == 0

    def test_a_finished_stream_yields_what_is_left_and_ends(self, store: BaseStore) -> None:
        record = store.create("m")
        for i in range(4):
            store.append_event(record.id, delta(i))
        store.complete(record.id, event={"type": "response.completed"})
        assert [e["sequence_number"] for e in store.stream(record.id, timeout=0)] == [0, 1, 2, 3, 4]
        assert [e["sequence_number"] for e in store.stream(record.id, starting_after=3, timeout=0)] == [4]
        assert list(store.stream(record.id, starting_after=4, timeout=0)) == []

    def test_consumers_resuming_anywhere_see_exactly_the_suffix(self, store: BaseStore) -> None:
        """One producer, many consumers resuming at random points before and during production."""
        total = 300
        record = store.create("m", status="queued", background=True)
        rng = random.Random(7)
        results: dict[int, list[int]] = {}
        errors: list[Exception] = []
        budget = self._budget()
        started = threading.Barrier(9, timeout=budget.seconds)
        progress = threading.Semaphore(0)

        def consume(n: int, starting_after: int | None) -> None:
            try:
                started.wait(budget.left())
                if n % 2:  # half the consumers join mid-stream
                    progress.acquire(timeout=budget.left())
                results[n] = [
                    e["sequence_number"]
                    for e in store.stream(record.id, starting_after=starting_after, timeout=budget.left())
                ]
            except Exception as exc:  # noqa: BLE001 - collected and asserted empty below
                errors.append(exc)

        def produce() -> None:
            try:
                started.wait(budget.left())
                store.start(record.id, event={"type": "response.in_progress"})
                for i in range(total - 2):
                    number = store.append_event(record.id, delta(i))
                    if i < 3:  # the log holds what was appended, or the consumers would wait for nothing
                        assert sequence_numbers(store, record.id) == list(range(number + 1)), LOST_EVENTS
                    if i % 50 == 0:
                        for _ in range(8):
                            progress.release()
                store.complete(record.id, event={"type": "response.completed"})
                assert store.get(record.id).is_terminal, f"complete(): {LOST_WRITE}"
            except Exception as exc:  # noqa: BLE001 - collected and asserted empty below
                errors.append(exc)
                for _ in range(8):  # the consumers must not wait out the time limit for a producer that gave up
                    progress.release()
                store.close()  # wakes every stream: the consumers end now

        starts = {n: (None if n == 0 else rng.randrange(-1, total + 5)) for n in range(8)}
        starts = {n: (None if s is None or s < 0 else s) for n, s in starts.items()}
        run_threads(
            [threading.Thread(target=produce)]
            + [threading.Thread(target=consume, args=(n, s)) for n, s in starts.items()],
            budget,
            "a producer and consumers streaming its events",
        )
        assert errors == []
        for n, start in starts.items():
            first = 0 if start is None else start + 1
            assert results[n] == list(range(first, total)), (n, start)
        assert len(store._waiters) == 0
        store._check()

    def test_cancel_wakes_every_waiter_and_stream(self, store: BaseStore) -> None:
        record = store.create("m", background=True)
        store.append_event(record.id, delta(0))
        assert sequence_numbers(store, record.id) == [0], LOST_EVENTS
        budget = self._budget()
        ready = threading.Barrier(7, timeout=budget.seconds)
        outcomes: queue.Queue[tuple[str, Any]] = queue.Queue()

        def waiter() -> None:
            try:
                ready.wait(budget.left())
                outcomes.put(("wait", store.wait(record.id, timeout=budget.left()).status))
            except Exception as exc:  # noqa: BLE001 - reported by the test thread below
                outcomes.put(("error", exc))

        def streamer() -> None:
            try:
                events = store.stream(record.id, timeout=budget.left())
                first = next(events)  # registered and consuming before the cancel
                ready.wait(budget.left())
                outcomes.put(("stream", [first["sequence_number"]] + [e["sequence_number"] for e in events]))
            except Exception as exc:  # noqa: BLE001 - reported by the test thread below
                outcomes.put(("error", exc))

        threads = [threading.Thread(target=waiter) for _ in range(3)] + [
            threading.Thread(target=streamer) for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        try:
            ready.wait(budget.left())
            store.cancel(record.id, event={"type": "response.cancelled"})
            assert store.get(record.id).status is ResponseStatus.CANCELLED, f"cancel(): {LOST_WRITE}"
        except BaseException:
            store.close()  # wakes every waiter and stream: the threads end now, not at the time limit
            raise
        finally:  # never leave a thread behind
            budget.join(threads, "waiters and streams of a cancelled response")
        got = [outcomes.get_nowait() for _ in range(6)]
        assert [value for kind, value in got if kind == "error"] == []
        assert sorted(kind for kind, _ in got) == ["stream"] * 3 + ["wait"] * 3
        for kind, value in got:
            assert value == (ResponseStatus.CANCELLED if kind == "wait" else [0, 1])
        assert store.get(record.id).status is ResponseStatus.CANCELLED
        assert len(store._waiters) == 0

    def test_deleting_a_response_wakes_its_waiters_with_not_found(self, store: BaseStore) -> None:
        record = store.create("m")
        outcome: list[BaseException] = []
        budget = self._budget()

        def waiter() -> None:
            try:
                store.wait(record.id, timeout=budget.left())
            except ResponseStoreError as exc:
                outcome.append(exc)

        thread = threading.Thread(target=waiter)
        thread.start()
        try:
            while len(store._waiters) < 1:  # the waiter has registered; bounded, so a bug fails instead of hanging
                assert budget.left() > 0.001, "the waiter never registered"
                assert thread.is_alive()
                thread.join(0.001)
            store.delete(record.id)
        finally:
            budget.join([thread], "a waiter of a deleted response")
        assert len(outcome) == 1
        assert isinstance(outcome[0], ResponseNotFound)
        assert len(store._waiters) == 0

    def test_a_reader_never_sees_a_finished_status_without_its_final_event(self, store: BaseStore) -> None:
        """Atomicity: get() says finished => events() already holds the final event."""
        rounds = 60
        ids = [store.create("m", background=True).id for _ in range(rounds)]
        violations: list[str] = []
        done = threading.Event()

        def reader() -> None:
            while not done.is_set():
                for record_id in ids:
                    if store.get(record_id).is_terminal:
                        events = store.events(record_id)
                        if not events or events[-1]["type"] != "final":
                            violations.append(record_id)

        def writer() -> None:
            try:
                for record_id in ids:
                    for i in range(5):
                        store.append_event(record_id, delta(i))
                    store.complete(record_id, event={"type": "final"})
            finally:
                done.set()

        run_threads(
            [threading.Thread(target=reader) for _ in range(3)] + [threading.Thread(target=writer)],
            self._budget(),
            "readers of responses finishing",
        )
        assert violations == []
        assert all(len(store.events(record_id)) == 6 for record_id in ids)

    def test_abandoned_streams_unregister(self, store: BaseStore) -> None:
        record = store.create("m")
        store.append_event(record.id, delta(0))
        assert sequence_numbers(store, record.id) == [0], LOST_EVENTS
        stream = store.stream(record.id, timeout=self.time_limit)
        assert next(stream)["sequence_number"] == 0
        assert len(store._waiters) == 1
        stream.close()  # type: ignore[attr-defined]
        assert len(store._waiters) == 0
