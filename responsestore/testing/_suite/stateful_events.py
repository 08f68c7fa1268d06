"""A hypothesis state machine for event logs and leases: the store against a plain list of events per response.

Random batches of events (plain events, delta runs with awkward text, events carrying their number), finishing
writes with their last events (and output that matches the deltas or not, so compaction meets both), changes of
finished responses, leases renewed or left to run out while the clock moves: after every step, every log reads
back exactly as the model's list (the same JSON text, key order included), from every starting point, and the
backend's ``_check()`` holds.
"""

from __future__ import annotations

import json
from typing import Any

import hypothesis.strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from responsestore import (
    BaseStore,
    DeltaRun,
    EventLogClosed,
    InvalidTransition,
    LeaseLost,
    SequenceConflict,
)
from responsestore import _wire as wire
from responsestore.testing._clock import FakeClock

from .base import ContractBase

ITEM = "msg_stateful"
LEASE = 10.0
texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6) | st.sampled_from(
    ["", " ", "\"'", "\\", "\n", "é", "😀", "word"]
)


def delta_template(kind: str = "response.output_text.delta", index: int = 0) -> dict[str, Any]:
    return {
        "type": kind,
        "item_id": ITEM,
        "output_index": index,
        "content_index": 0,
        "delta": "",
        "logprobs": [],
    }


@st.composite
def batches(draw: st.DrawFn) -> list[Any]:
    """A batch: plain events and delta runs (mostly output text deltas of output 0)."""
    batch: list[Any] = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["run", "run", "delta", "plain", "odd"]))
        if kind == "run":
            batch.append(DeltaRun(delta_template(), draw(st.lists(texts, min_size=1, max_size=5))))
        elif kind == "delta":
            batch.append({**delta_template(), "delta": draw(texts)})
        elif kind == "plain":
            batch.append({"type": draw(st.sampled_from(["x", "response.in_progress"])), "n": draw(st.integers(0, 3))})
        else:
            batch.append({"type": "vendor.delta", "delta": draw(texts), "extra": [1, 2.5, None]})
    return batch


def plain_events(batch: list[Any], first: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in batch:
        if isinstance(item, DeltaRun):
            out.extend(item.events(first + len(out)))
        else:
            out.append({**item, "sequence_number": first + len(out)})
    return out


def text(events: Any) -> list[str]:
    return [json.dumps(event, separators=(",", ":"), ensure_ascii=False) for event in events]


def make_event_machine(contract: ContractBase) -> type[RuleBasedStateMachine]:
    class EventLogMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.clock = FakeClock()
            self.store: BaseStore = contract.open_fast(clock=self.clock, max_records=None)
            self.ids: list[str] = []
            self.logs: dict[str, list[dict[str, Any]]] = {}
            self.finished: set[str] = set()
            self.leases: dict[str, tuple[str | None, float]] = {}  # id -> (holder, expires) while active and leased

        def teardown(self) -> None:
            try:
                self.store._check()
            finally:
                self.store.close()

        def deltas_of(self, id: str) -> str:
            return "".join(
                e["delta"]
                for e in self.logs[id]
                if e.get("type") == "response.output_text.delta" and e.get("output_index") == 0
            )

        @rule(leased=st.booleans(), background=st.booleans())
        def create(self, leased: bool, background: bool) -> None:
            holder = f"run-{len(self.ids)}"
            record = self.store.create(
                "m", "hi", background=background, lease=LEASE if leased else None, holder=holder if leased else None
            )
            self.ids.append(record.id)
            self.logs[record.id] = []
            if leased:
                self.leases[record.id] = (holder, self.clock() + LEASE)

        @precondition(lambda self: self.ids)
        @rule(
            pick=st.integers(0, 10**6),
            batch=batches(),
            expected=st.sampled_from(["right", "none", "wrong"]),
            holder=st.sampled_from(["right", "none", "wrong"]),
            renew=st.booleans(),
        )
        def append(self, pick: int, batch: list[Any], expected: str, holder: str, renew: bool) -> None:
            id = self.ids[pick % len(self.ids)]
            log = self.logs[id]
            held = self.leases.get(id)
            kwargs: dict[str, Any] = {}
            if expected != "none":
                kwargs["expected_events"] = len(log) + (0 if expected == "right" else 1)
            if holder == "right" and held is not None and held[0] is not None:
                kwargs["holder"] = held[0]
            elif holder == "wrong":
                kwargs["holder"] = "someone-else"
            if renew:
                kwargs["lease"] = LEASE
            try:
                first = self.store.append_events(id, batch, **kwargs)
            except LeaseLost:
                assert kwargs.get("holder") is not None
                assert id in self.finished or held is None or kwargs["holder"] != held[0]
                return
            except EventLogClosed:
                assert id in self.finished
                return
            except SequenceConflict:
                assert expected == "wrong"
                return
            assert id not in self.finished
            assert expected != "wrong"
            assert first == len(log)
            log.extend(plain_events(batch, len(log)))
            if renew:  # a renewal gives a response without a lease one (held by nobody in particular)
                self.leases[id] = (held[0] if held is not None else None, self.clock() + LEASE)

        @precondition(lambda self: self.ids)
        @rule(
            pick=st.integers(0, 10**6),
            how=st.sampled_from(["complete", "complete", "fail", "incomplete", "cancel"]),
            batch=batches(),
            matching=st.booleans(),
            announce=st.booleans(),
        )
        def finish(self, pick: int, how: str, batch: list[Any], matching: bool, announce: bool) -> None:
            id = self.ids[pick % len(self.ids)]
            log = self.logs[id]
            pending = plain_events(batch, len(log))
            said = self.deltas_of(id) + "".join(
                e["delta"] for e in pending if e.get("type") == "response.output_text.delta"
            )
            part = wire.text_part(said if matching else said + "!")
            item = wire.message_item(ITEM, [part], "completed")
            closing = [
                wire.output_text_done_event(ITEM, 0, 0, part["text"]),
                wire.content_part_event("done", ITEM, 0, 0, part),
                wire.output_item_event("done", 0, item),
            ]
            events = batch + (closing if how in ("complete", "incomplete") else [])
            options: dict[str, Any] = {"events": events, "status_event": announce}
            try:
                if how == "complete":
                    done = self.store.complete(id, [item], **options)
                elif how == "fail":
                    done = self.store.fail(id, "broken", **options)
                elif how == "incomplete":
                    done = self.store.mark_incomplete(id, "max_output_tokens", output=[item], **options)
                else:
                    done = self.store.cancel(id, **options)
            except (InvalidTransition, EventLogClosed):
                assert id in self.finished or how == "cancel"
                return
            if done.version == 1 and how == "cancel":  # not possible: cancel of an active record changes it
                raise AssertionError("cancel changed nothing")
            if id in self.finished:  # cancelling a cancelled response: unchanged, nothing appended
                assert how == "cancel"
                return
            self.finished.add(id)
            self.leases.pop(id, None)
            log.extend(plain_events(events, len(log)))
            if announce and how != "cancel":
                log.append({**wire.lifecycle_event(done.status.value, done.to_openai()), "sequence_number": len(log)})

        @precondition(lambda self: self.finished)
        @rule(pick=st.integers(0, 10**6), value=st.text(max_size=8))
        def change_finished(self, pick: int, value: str) -> None:
            finished = [id for id in self.ids if id in self.finished]  # creation order: ids are random
            id = finished[pick % len(finished)]
            self.store.update(id, metadata={"k": value})

        @precondition(lambda self: self.leases)
        @rule(pick=st.integers(0, 10**6))
        def renew(self, pick: int) -> None:
            leased = [id for id in self.ids if id in self.leases]  # creation order: ids are random
            id = leased[pick % len(leased)]
            holder, _ = self.leases[id]
            self.store.renew(id, lease=LEASE, holder=holder)
            self.leases[id] = (holder, self.clock() + LEASE)

        @rule(seconds=st.sampled_from([0.0, 1.0, 4.0, 11.0]))
        def tick(self, seconds: float) -> None:
            self.clock.advance(seconds)

        @rule()
        def expire_leases(self) -> None:
            now = self.clock()
            due = [id for id in self.ids if id in self.leases and self.leases[id][1] <= now]
            assert self.store.expire_leases() == len(due)
            for id in due:
                ended = self.store.get(id)
                assert ended.status.value == "failed"
                log = self.logs[id]
                log.append({**wire.lifecycle_event("failed", ended.to_openai()), "sequence_number": len(log)})
                self.finished.add(id)
                del self.leases[id]

        @invariant()
        def logs_read_back_exactly(self) -> None:
            for id in self.ids:
                expected = text(self.logs[id])
                assert text(self.store.events(id)) == expected
                for after in {0, len(expected) // 2, len(expected) - 1}:
                    if after >= 0:
                        assert text(self.store.events(id, starting_after=after)) == expected[after + 1 :]
                record = self.store.get(id)
                assert record.is_terminal == (id in self.finished)
                held = self.leases.get(id)
                if held is not None:
                    assert (record.lease_holder, record.lease_expires_at) == held
                elif record.is_terminal:
                    assert (record.lease_holder, record.lease_expires_at) == (None, None)
            self.store._check()

    EventLogMachine.__name__ = f"EventLogMachine_{type(contract).__name__}"
    return EventLogMachine


class StatefulEventTests(ContractBase):
    """Event logs and leases against a plain model, after every step of random programs."""

    def test_event_logs_and_leases_agree_with_the_model(self) -> None:
        """Random programs of 30 steps leave every log, status and lease as the model says, at every step."""
        profile = self.profile_examples()
        examples = max(15, profile // 4) if self.weight == 1 else max(6, profile // 12)
        run_state_machine_as_test(make_event_machine(self), settings=self.hypothesis(examples, stateful_step_count=30))
