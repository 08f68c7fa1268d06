"""Batched event writes, delta runs and compact logs: what a run writes, replayed exactly, on every backend."""

from __future__ import annotations

import json
from typing import Any

import pytest

from responsestore import (
    BaseStore,
    DeltaRun,
    EventLogClosed,
    EventLogFull,
    InvalidArgument,
    ResponseRecord,
    ResponseStatus,
    SequenceConflict,
)
from responsestore import _wire as wire

from .base import LOST_WRITE, ContractBase, StoreFactory

ITEM = "msg_0123456789abcdef"


def text_delta(text: str) -> dict[str, Any]:
    return wire.output_text_delta_event(ITEM, 0, 0, text)


def words(count: int) -> list[str]:
    return [("word" if i == 0 else " word") + str(i % 97) for i in range(count)]


def stream_of(record: ResponseRecord, deltas: list[str]) -> tuple[list[Any], list[Any], dict[str, Any], dict[str, Any]]:
    """What a server streams for a one-message reply: ``(events while running, last events, item, usage)``.

    The last events hold the done events and ``response.completed``, whose response is the record as the server
    expects to store it (its ``completed_at`` may differ from the store's by a second: the log keeps the difference).
    """
    text = "".join(deltas)
    part = wire.text_part(text)
    item = wire.message_item(ITEM, [part], "completed")
    usage = {"input_tokens": 3, "output_tokens": len(deltas)}
    running = [
        wire.lifecycle_event("created", record.to_openai()),
        wire.lifecycle_event("in_progress", record.to_openai()),
        wire.output_item_event("added", 0, wire.message_item(ITEM, [], "in_progress")),
        wire.content_part_event("added", ITEM, 0, 0, wire.text_part("")),
    ]
    done = {
        **record.to_openai(),
        "status": "completed",
        "output": [wire.item_json(item)],
        "usage": {**usage, "total_tokens": usage["input_tokens"] + usage["output_tokens"]},
    }
    last = [
        wire.output_text_done_event(ITEM, 0, 0, text),
        wire.content_part_event("done", ITEM, 0, 0, part),
        wire.output_item_event("done", 0, item),
        wire.lifecycle_event("completed", done),
    ]
    return running, last, item, usage


def expand(events: list[Any]) -> list[dict[str, Any]]:
    """The separate events a batch stands for, numbered from 0."""
    out: list[dict[str, Any]] = []
    for event in events:
        if isinstance(event, DeltaRun):
            out.extend(event.events())
        else:
            out.append(dict(event))
    for number, event in enumerate(out):
        event["sequence_number"] = number
    return out


def texts(events: Any) -> list[str]:
    """Each event as JSON text: equal lists mean the same keys, in the same order, with the same values."""
    return [json.dumps(event, separators=(",", ":"), ensure_ascii=False) for event in events]


class EventBatchTests(ContractBase):
    """``append_events``, :class:`DeltaRun`, events carried by transitions, and exact replay of compact logs."""

    def test_a_batch_is_numbered_as_if_appended_one_by_one(self, store: BaseStore) -> None:
        record = store.create("m", background=True)
        assert store.append_events(record.id, [{"type": "a"}, {"type": "b"}]) == 0
        run = DeltaRun(text_delta(""), ["Hel", "lo", ""])
        assert store.append_events(record.id, [run, {"type": "c", "sequence_number": 5}]) == 2
        assert store.append_events(record.id, []) == 6
        events = store.events(record.id)
        assert [event["sequence_number"] for event in events] == list(range(6))
        assert [event.get("delta") for event in events[2:5]] == ["Hel", "lo", ""]
        assert texts(events) == texts(expand([{"type": "a"}, {"type": "b"}, run, {"type": "c"}]))
        assert [e["sequence_number"] for e in store.events(record.id, starting_after=3)] == [4, 5]

    def test_a_batch_wakes_a_follower_once_with_everything(self, store: BaseStore) -> None:
        record = store.create("m", background=True)
        follower = store.stream(record.id, timeout=self.time_limit)
        store.append_events(record.id, [DeltaRun(text_delta(""), ["a", "b"])])
        assert [event.get("delta") for event in store.events(record.id)] == ["a", "b"], (
            "append_events returned, so its events must be in the log at once: the store lost appended events"
        )
        assert [event["delta"] for event in (next(follower), next(follower))] == ["a", "b"]
        store.complete(record.id, events=[{"type": "response.completed"}])
        assert store.get(record.id).is_terminal, f"complete(): {LOST_WRITE}"
        assert [event["type"] for event in follower] == ["response.completed"]

    @pytest.mark.parametrize(
        ("template", "deltas", "field", "message"),
        [
            ({"type": "t"}, ["a"], "delta", "must hold its field"),
            ({"type": "t", "delta": "", "sequence_number": 1}, ["a"], "delta", "must not carry"),
            ({"type": "t", "delta": ""}, [], "delta", "at least one delta"),
            ({"type": "t", "delta": ""}, ["a", 3], "delta", "must be strings"),
            ({"type": "t", "delta": ""}, "abc", "delta", "not one string"),
            ({"type": "t", "delta": ""}, ["\ud83d"], "delta", "lone surrogate"),
            ({"type": "t", "delta": ""}, ["a"], "", "field"),
            ({"type": "t", "delta": ""}, ["a"], "sequence_number", "field"),
            ({"type": {1, 2}, "delta": ""}, ["a"], "delta", "template"),
            (["not", "an", "object"], ["a"], "delta", "template"),
        ],
    )
    def test_a_malformed_delta_run_is_refused(self, template: Any, deltas: Any, field: Any, message: str) -> None:
        with pytest.raises(InvalidArgument, match=message):
            DeltaRun(template, deltas, field)

    def test_a_delta_run_cannot_change(self) -> None:
        run = DeltaRun(text_delta(""), ["a"])
        with pytest.raises(AttributeError):
            run.deltas = ("b",)
        assert run == DeltaRun(text_delta("ignored"), ["a"])
        assert len(run) == 1

    def test_a_malformed_batch_appends_nothing(self, store: BaseStore) -> None:
        record = store.create("m")
        store.append_event(record.id, {"type": "a"})
        for bad in ({"type": "x"}, "events", 42, [{"type": "ok"}, {"bad": float("nan")}], [{"type": "ok"}, 7]):
            with pytest.raises(InvalidArgument):
                store.append_events(record.id, bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="carries sequence_number 3, but the next one is 2"):
            store.append_events(record.id, [{"type": "b", "sequence_number": 1}, {"type": "c", "sequence_number": 3}])
        with pytest.raises(InvalidArgument, match="event or events, not both"):
            store.complete(record.id, event={"type": "x"}, events=[{"type": "y"}])
        assert len(store.events(record.id)) == 1
        assert store.get(record.id).status is ResponseStatus.IN_PROGRESS

    def test_expected_events_guards_a_retried_append(self, store: BaseStore) -> None:
        record = store.create("m")
        batch = [DeltaRun(text_delta(""), ["a", "b", "c"])]
        assert store.append_events(record.id, batch, expected_events=0) == 0
        with pytest.raises(SequenceConflict) as refused:  # the retry of a write whose reply was lost
            store.append_events(record.id, batch, expected_events=0)
        assert (refused.value.expected, refused.value.actual) == (0, 3)
        assert len(store.events(record.id)) == 3
        with pytest.raises(SequenceConflict):
            store.complete(record.id, events=[{"type": "done"}], expected_events=2)
        assert store.complete(record.id, events=[{"type": "done"}], expected_events=3).is_terminal
        with pytest.raises(InvalidArgument, match="expected_events"):
            store.append_events(store.create("m").id, [], expected_events=-1)

    def test_a_batch_past_a_limit_is_refused_whole(self, new_store: StoreFactory) -> None:
        store = new_store(max_events=5, max_event_bytes=400)
        record = store.create("m")
        store.append_events(record.id, [DeltaRun(text_delta(""), ["a", "b"])])
        with pytest.raises(EventLogFull, match="4 more events"):
            store.append_events(record.id, [DeltaRun(text_delta(""), ["c", "d", "e", "f"])])
        with pytest.raises(EventLogFull, match="bytes"):
            store.append_events(record.id, [{"type": "x", "d": "y" * 300}])
        assert len(store.events(record.id)) == 2
        with pytest.raises(EventLogFull):  # the last events of a transition count too; the change is refused whole
            store.complete(record.id, events=[{"type": "x"}] * 4)
        assert store.get(record.id).status is ResponseStatus.IN_PROGRESS
        store.append_events(record.id, [{"type": "x"}] * 3)
        with pytest.raises(EventLogClosed):
            store.append_events(store.complete(record.id).id, [{"type": "late"}])

    @pytest.mark.parametrize("split", [0, 1, 250, 999])
    def test_a_finished_stream_replays_exactly_from_anywhere(self, store: BaseStore, split: int) -> None:
        record = store.create("m", "Say something", background=True)
        deltas = words(1000)
        running, last, item, usage = stream_of(record, deltas)
        run = DeltaRun(text_delta(""), deltas[:split]) if split else None
        store.append_events(record.id, running + ([run] if run else []))
        live = texts(store.events(record.id))
        rest = [DeltaRun(text_delta(""), deltas[split:]), *last]
        store.complete(record.id, [item], usage=usage, events=rest)
        expected = texts(expand(running + ([run] if run else []) + rest))
        replayed = store.events(record.id)
        assert texts(replayed) == expected
        assert live == expected[: len(live)], "finishing changed what followers had already read"
        for after in (0, 3, 4, 5, split + 3, 1000, 1003, len(expected) - 2, len(expected) - 1, 10**9):
            assert texts(store.events(record.id, starting_after=after)) == expected[after + 1 :]
        # The finished log takes little more room than the response: the record's own bytes and the log's
        # together stay under twice its JSON.
        response = len(json.dumps(store.get(record.id).to_openai(), separators=(",", ":")).encode())
        assert store.stats().bytes <= 2 * response

    def test_events_that_do_not_match_the_final_response_replay_exactly(self, store: BaseStore) -> None:
        record = store.create("m", background=True)
        deltas = ["The ", "model ", "said ", "this"]
        running, last, item, usage = stream_of(record, deltas)
        # The server's done events and final response disagree with the deltas and with what is stored.
        last[0] = wire.output_text_done_event(ITEM, 0, 0, "Something else entirely")
        last[1]["part"]["annotations"] = [{"type": "url_citation", "url": "https://example.com"}]
        last[3]["response"]["metadata"] = {"extra": "key order differs"}
        last[3]["response"] = dict(reversed(list(last[3]["response"].items())))
        odd = [
            {
                "type": "response.output_text.delta",
                "item_id": ITEM,
                "output_index": 7,
                "content_index": 0,
                "delta": "x",
            },
            {"type": "response.output_text.delta", "output_index": 0, "item_id": ITEM, "content_index": 0, "delta": 1},
            {"type": "vendor.custom.delta", "delta": "kept", "sequence_number": 6 + len(deltas)},
            {"delta": "no type", "type": "response.refusal.delta", "output_index": "0", "content_index": 0},
            {"type": "response.output_item.done", "output_index": 3, "item": {"id": "nowhere"}},
        ]
        batch = [*running, DeltaRun(text_delta(""), deltas), *odd, *last]
        store.complete(record.id, [item], usage=usage, events=batch)
        assert texts(store.events(record.id)) == texts(expand(batch))

    def test_changing_a_finished_response_keeps_its_events_as_they_were(self, store: BaseStore) -> None:
        record = store.create("m", background=True, metadata={"topic": "first"})
        deltas = words(20)
        running, last, item, usage = stream_of(record, deltas)
        batch = [*running, DeltaRun(text_delta(""), deltas), *last]
        done = store.complete(record.id, [item], usage=usage, events=batch)
        before = texts(store.events(record.id))
        changed = store.update(done.id, metadata={"topic": "second"})
        assert changed.metadata == {"topic": "second"}
        assert texts(store.events(record.id)) == before == texts(expand(batch))
        store.update(done.id, metadata={"topic": "third"})
        assert texts(store.events(record.id)) == before

    def test_every_transition_takes_a_batch(self, store: BaseStore) -> None:
        queued = store.create("m", background=True, status="queued")
        store.start(queued.id, events=[{"type": "a"}, DeltaRun(text_delta(""), ["x"])])
        store.update(queued.id, metadata={"k": "v"}, events=[{"type": "b"}])
        store.cancel(queued.id, events=[{"type": "response.cancelled"}])
        assert [e["type"] for e in store.events(queued.id)] == [
            "a",
            "response.output_text.delta",
            "b",
            "response.cancelled",
        ]
        failed = store.create("m")
        store.fail(failed.id, "broken", events=[{"type": "response.failed"}])
        incomplete = store.create("m")
        store.mark_incomplete(incomplete.id, "max_output_tokens", events=[DeltaRun(text_delta(""), ["a", "b"])])
        assert [len(store.events(r.id)) for r in (failed, incomplete)] == [1, 2]
