"""The Responses lifecycle through the public API: transitions, terminal states, cancel, update, versions."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import pytest

from responsestore import (
    BaseStore,
    InvalidArgument,
    InvalidTransition,
    ResponseRecord,
    ResponseStatus,
    ResponseStoreError,
    VersionConflict,
)
from responsestore.testing._clock import FakeClock

from .base import ContractBase

STATUSES = [s.value for s in ResponseStatus]
ACTIVE = ["queued", "in_progress"]
TERMINAL = ["completed", "failed", "cancelled", "incomplete"]

#: The allowed status changes, written out independently of the library's table.
ALLOWED = {("queued", "in_progress")} | {(a, t) for a in ACTIVE for t in TERMINAL}

ALL_PAIRS = list(itertools.product(STATUSES, STATUSES))


def make_in(store: BaseStore, status: str, **kwargs: Any) -> ResponseRecord:
    """A background response brought to ``status`` through the public API."""
    initial = "queued" if status == "queued" else "in_progress"
    record = store.create("m", "hello", background=True, status=initial, **kwargs)
    if status in ACTIVE:
        return record
    return move(store, record.id, status)


def move(store: BaseStore, id: str, target: str, **kwargs: Any) -> ResponseRecord:
    """Ask for ``target`` through the dedicated method (``update`` for ``queued``, which has none).

    ``update(status="queued")`` on a queued response is no status change at all, so the method test leaves
    that one pair to the update test.
    """
    if target == "queued":
        return store.update(id, status="queued", **kwargs)
    if target == "in_progress":
        return store.start(id, **kwargs)
    if target == "completed":
        return store.complete(id, [{"role": "assistant", "content": "done"}], **kwargs)
    if target == "failed":
        return store.fail(id, "boom", **kwargs)
    if target == "cancelled":
        return store.cancel(id, **kwargs)
    assert target == "incomplete"
    return store.mark_incomplete(id, "max_output_tokens", **kwargs)


def assert_refused_transition(exc: InvalidTransition, id: str, current: str, requested: str) -> None:
    assert isinstance(exc, ResponseStoreError)
    assert exc.id == id
    assert exc.current == current
    assert exc.requested == requested
    assert f"response {id!r} cannot go from {current!r} to {requested!r}" in str(exc)


# ---------------------------------------------------------------------------------------------- the transition table


# ---------------------------------------------------------------------------------------------- finishing


# ---------------------------------------------------------------------------------------------- cancel


# ---------------------------------------------------------------------------------------------- update


UPDATES: list[tuple[str, Any, Any]] = [
    # (field, value passed, value stored as compared with ==)
    ("model", "other-model", "other-model"),
    ("instructions", "be brief", "be brief"),
    ("instructions", None, None),
    ("metadata", {"k": "v"}, {"k": "v"}),
    ("tools", [{"type": "web_search"}], ({"type": "web_search"},)),
    ("usage", {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3}, None),
    ("error", {"code": "c", "message": "m"}, {"code": "c", "message": "m"}),
    ("incomplete_details", "max_output_tokens", {"reason": "max_output_tokens"}),
    ("extra", {"temperature": 0.5}, {"temperature": 0.5}),
]


# ---------------------------------------------------------------------------------------------- expected_version

#: Every mutating method, applied to a response created ``in_progress`` in the background.
MUTATIONS: dict[str, Callable[..., Any]] = {
    "complete": lambda s, rid, **kw: s.complete(rid, [], **kw),
    "fail": lambda s, rid, **kw: s.fail(rid, "boom", **kw),
    "mark_incomplete": lambda s, rid, **kw: s.mark_incomplete(rid, "max_output_tokens", **kw),
    "cancel": lambda s, rid, **kw: s.cancel(rid, **kw),
    "update": lambda s, rid, **kw: s.update(rid, model="other", **kw),
    "delete": lambda s, rid, **kw: s.delete(rid, **kw),
}


def prepare_version_2(store: BaseStore, name: str) -> ResponseRecord:
    status = "queued" if name == "start" else "in_progress"
    record = store.create("m", background=True, status=status)
    bumped = store.update(record.id, metadata={"step": "1"})
    assert bumped.version == 2
    return bumped


def mutate(store: BaseStore, name: str, id: str, **kwargs: Any) -> Any:
    if name == "start":
        return store.start(id, **kwargs)
    return MUTATIONS[name](store, id, **kwargs)


MUTATION_NAMES = ["start", *MUTATIONS]


# ---------------------------------------------------------------------------------------------- the clock


class LifecycleTests(ContractBase):
    """The Responses lifecycle through the public API: transitions, terminal states, cancel, update, versions."""

    @pytest.mark.parametrize(("current", "target"), [(c, t) for c, t in ALL_PAIRS if (c, t) != ("queued", "queued")])
    def test_transition_table_through_methods(
        self, store: BaseStore, clock: FakeClock, current: str, target: str
    ) -> None:
        record = make_in(store, current)
        clock.advance(5)
        if current == target == "cancelled":
            # OpenAI's rule: cancelling a cancelled response returns it unchanged.
            again = move(store, record.id, target)
            assert again == record
            assert again.version == record.version
        elif (current, target) in ALLOWED:
            moved = move(store, record.id, target)
            assert moved.status is ResponseStatus(target)
            assert moved.version == record.version + 1
            assert moved.id == record.id
            assert moved.created_at == record.created_at
            assert store.get(record.id) == moved
        else:
            with pytest.raises(InvalidTransition) as info:
                move(store, record.id, target)
            assert_refused_transition(info.value, record.id, current, target)
            if current in TERMINAL:
                assert "it is already final" in str(info.value) or "it is final" in str(info.value)
            assert store.get(record.id) == record
        assert len(store) == 1
        store._check()

    @pytest.mark.parametrize(("current", "target"), ALL_PAIRS)
    def test_transition_table_through_update(self, store: BaseStore, current: str, target: str) -> None:
        record = make_in(store, current)
        if current == target:
            # Naming only the current status changes nothing: same record, same version (tests/test_semantics.py).
            assert store.update(record.id, status=target) == record
            assert store.get(record.id) == record
        elif (current, target) in ALLOWED:
            moved = store.update(record.id, status=target)
            assert moved.status is ResponseStatus(target)
            assert moved.version == record.version + 1
            assert store.get(record.id) == moved
        else:
            with pytest.raises(InvalidTransition) as info:
                store.update(record.id, status=target)
            assert_refused_transition(info.value, record.id, current, target)
            assert store.get(record.id) == record
        store._check()

    @pytest.mark.parametrize("terminal", TERMINAL)
    def test_terminal_states_are_final(self, store: BaseStore, terminal: str) -> None:
        record = make_in(store, terminal)
        for target in STATUSES:
            if target == terminal == "cancelled":
                continue
            with pytest.raises(InvalidTransition):
                move(store, record.id, target)
        assert store.get(record.id) == record
        assert store.get(record.id).is_terminal
        assert ResponseStatus(terminal).is_terminal
        assert str(ResponseStatus(terminal)) == terminal

    @pytest.mark.parametrize("active", ACTIVE)
    def test_active_states_are_not_terminal(self, store: BaseStore, active: str) -> None:
        record = store.create("m", status=active)
        assert not record.is_terminal
        assert not ResponseStatus(active).is_terminal
        assert str(record.status) == active

    def test_queued_response_can_finish_without_starting(self, store: BaseStore) -> None:
        for target in TERMINAL:
            record = store.create("m", background=True, status="queued")
            assert move(store, record.id, target).status is ResponseStatus(target)
        assert sorted(r.status.value for r in store.list()) == sorted(TERMINAL)

    def test_start_moves_queued_to_in_progress_and_nothing_else(self, store: BaseStore) -> None:
        record = store.create("m", status="queued")
        started = store.start(record.id)
        assert started.status is ResponseStatus.IN_PROGRESS
        assert started.version == 2
        assert started.completed_at is None
        with pytest.raises(InvalidTransition) as info:
            store.start(record.id)
        assert_refused_transition(info.value, record.id, "in_progress", "in_progress")
        assert not str(info.value).endswith("already final")
        assert store.get(record.id) == started

    def test_complete_sets_output_usage_and_completed_at_from_the_clock(
        self, store: BaseStore, clock: FakeClock
    ) -> None:
        clock.set(1000.0)
        record = store.create("m", "question")
        assert record.created_at == 1000.0
        assert record.completed_at is None
        clock.set(1234.5)
        done = store.complete(
            record.id,
            [{"id": "msg_out", "role": "assistant", "content": "answer"}],
            usage={"input_tokens": 3, "output_tokens": 4},
        )
        assert done.status is ResponseStatus.COMPLETED
        assert done.completed_at == 1234.5
        assert done.created_at == 1000.0
        assert done.version == 2
        assert done.to_openai()["output"] == [
            {
                "id": "msg_out",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "answer", "annotations": []}],
            },
        ]
        assert done.usage == {
            "input_tokens": 3,
            "output_tokens": 4,
            "total_tokens": 7,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        }
        assert done.error is None
        assert done.incomplete_details is None
        assert done.input == record.input
        assert store.get(record.id) == done

    def test_complete_without_output_or_usage(self, store: BaseStore) -> None:
        record = store.create("m")
        done = store.complete(record.id)
        assert done.output == ()
        assert done.usage is None

    @pytest.mark.parametrize(
        ("output", "usage"),
        [
            ("not a list", None),
            ({"role": "assistant", "content": "x"}, None),
            ([{"content": "no type or role"}], None),
            ([], {"input_tokens": 1}),
            ([], {"input_tokens": -1, "output_tokens": 0}),
            ([], "lots"),
        ],
    )
    def test_complete_refuses_bad_output_or_usage(self, store: BaseStore, output: Any, usage: Any) -> None:
        record = store.create("m")
        with pytest.raises(InvalidArgument):
            store.complete(record.id, output, usage=usage)
        assert store.get(record.id) == record

    def test_fail_with_an_error_object(self, store: BaseStore, clock: FakeClock) -> None:
        record = store.create("m")
        clock.advance(3)
        failed = store.fail(record.id, {"code": "rate_limit_exceeded", "message": "slow down"})
        assert failed.status is ResponseStatus.FAILED
        assert failed.error == {"code": "rate_limit_exceeded", "message": "slow down"}
        assert failed.completed_at is None
        assert failed.version == 2
        assert store.get(record.id) == failed

    def test_fail_with_a_message_string_is_a_server_error(self, store: BaseStore) -> None:
        record = store.create("m")
        failed = store.fail(record.id, "the model crashed")
        assert failed.error == {"code": "server_error", "message": "the model crashed"}
        assert failed.to_openai()["error"] == {"code": "server_error", "message": "the model crashed"}

    @pytest.mark.parametrize("error", [None, {"message": "no code"}, {"code": "x", "message": 5}, 42])
    def test_fail_refuses_a_bad_error(self, store: BaseStore, error: Any) -> None:
        record = store.create("m")
        with pytest.raises(InvalidArgument):
            store.fail(record.id, error)
        assert store.get(record.id) == record

    def test_fail_without_error_names_the_id_only_when_it_is_a_string(self, store: BaseStore) -> None:
        with pytest.raises(InvalidArgument) as info:
            store.fail("resp_x", None)  # type: ignore[arg-type]
        assert info.value.id == "resp_x"
        with pytest.raises(InvalidArgument) as info:
            store.fail(123, None)  # type: ignore[arg-type]
        assert info.value.id is None

    def test_mark_incomplete_keeps_reason_and_partial_output(self, store: BaseStore) -> None:
        record = store.create("m")
        partial = store.mark_incomplete(
            record.id,
            "max_output_tokens",
            output=[{"id": "msg_p", "role": "assistant", "content": "half an ans", "status": "incomplete"}],
            usage={"input_tokens": 10, "output_tokens": 16},
        )
        assert partial.status is ResponseStatus.INCOMPLETE
        assert partial.incomplete_details == {"reason": "max_output_tokens"}
        assert [item["id"] for item in partial.output] == ["msg_p"]
        assert partial.output[0]["status"] == "incomplete"
        assert partial.to_openai()["output"][0]["content"] == [
            {"type": "output_text", "text": "half an ans", "annotations": []}
        ]
        assert partial.usage is not None
        assert partial.usage["total_tokens"] == 26
        assert partial.completed_at is None
        assert store.get(record.id) == partial

    def test_mark_incomplete_without_output(self, store: BaseStore) -> None:
        record = store.create("m")
        partial = store.mark_incomplete(record.id, {"reason": "content_filter"})  # type: ignore[arg-type]
        assert partial.incomplete_details == {"reason": "content_filter"}
        assert partial.output == ()
        assert partial.usage is None

    @pytest.mark.parametrize("reason", [None, "", {"reason": ""}, {"no": "reason"}, 7])
    def test_mark_incomplete_refuses_a_bad_reason(self, store: BaseStore, reason: Any) -> None:
        record = store.create("m")
        with pytest.raises(InvalidArgument):
            store.mark_incomplete(record.id, reason)
        assert store.get(record.id) == record

    @pytest.mark.parametrize("status", ACTIVE)
    def test_cancel_background_response(self, store: BaseStore, clock: FakeClock, status: str) -> None:
        record = store.create("m", background=True, status=status)
        clock.advance(1)
        cancelled = store.cancel(record.id)
        assert cancelled.status is ResponseStatus.CANCELLED
        assert cancelled.version == 2
        assert cancelled.completed_at is None
        assert store.get(record.id) == cancelled

    @pytest.mark.parametrize("status", STATUSES)
    def test_cancel_refuses_non_background_responses_in_every_status(self, store: BaseStore, status: str) -> None:
        initial = "queued" if status == "queued" else "in_progress"
        record = store.create("m", status=initial)
        if status not in ACTIVE:
            if status == "cancelled":
                # Only update can cancel a foreground response (the table allows it; cancel's rule does not).
                record = store.update(record.id, status="cancelled")
            else:
                record = move(store, record.id, status)
        with pytest.raises(InvalidTransition) as info:
            store.cancel(record.id)
        assert_refused_transition(info.value, record.id, status, "cancelled")
        assert str(info.value).endswith("only background responses can be cancelled")
        assert store.get(record.id) == record

    def test_cancel_twice_returns_the_same_record_and_version(self, store: BaseStore) -> None:
        record = store.create("m", background=True)
        first = store.cancel(record.id)
        second = store.cancel(record.id)
        third = store.cancel(record.id, expected_version=first.version)
        assert first == second == third == store.get(record.id)
        assert second.version == third.version == 2

    @pytest.mark.parametrize("terminal", ["completed", "failed", "incomplete"])
    def test_cancel_of_another_final_status_is_refused(self, store: BaseStore, terminal: str) -> None:
        record = make_in(store, terminal)
        with pytest.raises(InvalidTransition) as info:
            store.cancel(record.id)
        assert_refused_transition(info.value, record.id, terminal, "cancelled")
        assert store.get(record.id) == record

    @pytest.mark.parametrize(("field", "value", "stored"), UPDATES)
    def test_update_changes_one_allowed_field(self, store: BaseStore, field: str, value: Any, stored: Any) -> None:
        record = store.create("m", "hi", instructions="orig")
        updated = store.update(record.id, **{field: value})
        assert updated.version == 2
        assert updated.status is ResponseStatus.IN_PROGRESS
        if field == "usage":
            assert updated.usage is not None
            assert updated.usage["total_tokens"] == 3
        else:
            assert getattr(updated, field) == stored
        untouched = {"model", "instructions", "metadata", "tools", "usage", "error", "incomplete_details", "extra"} - {
            field
        }
        for other in untouched:
            assert getattr(updated, other) == getattr(record, other)
        assert updated.input == record.input
        assert store.get(record.id) == updated

    def test_update_output_normalizes_items(self, store: BaseStore) -> None:
        record = store.create("m")
        updated = store.update(record.id, output=[{"role": "assistant", "content": "partial"}])
        assert len(updated.output) == 1
        item = updated.output[0]
        assert item["type"] == "message"
        assert item["status"] == "completed"
        assert item["id"].startswith("msg_")

    @pytest.mark.parametrize(
        "field", ["input", "version", "created_at", "completed_at", "previous_response_id", "bogus"]
    )
    def test_update_refuses_fields_it_cannot_change(self, store: BaseStore, field: str) -> None:
        record = store.create("m")
        with pytest.raises(InvalidArgument) as info:
            store.update(record.id, **dict.fromkeys([field], "x"))  # type: ignore[arg-type]
        assert repr(field) in str(info.value)
        assert store.get(record.id) == record

    def test_update_id_and_owner_are_not_fields(self, store: BaseStore) -> None:
        # ``id`` and ``owner`` are update's own parameters: naming them cannot change the record.
        record = store.create("m")
        with pytest.raises(TypeError):
            store.update(record.id, id="other")  # type: ignore[misc]
        with pytest.raises(InvalidArgument, match="at least one field"):
            store.update(record.id, owner="someone")
        assert store.get(record.id) == record

    def test_update_refuses_background_change(self, store: BaseStore) -> None:
        record = store.create("m")
        with pytest.raises(InvalidArgument):
            store.update(record.id, background=True)
        assert store.get(record.id) == record

    def test_update_without_changes_is_refused(self, store: BaseStore) -> None:
        record = store.create("m")
        with pytest.raises(InvalidArgument, match="at least one field"):
            store.update(record.id)
        assert store.get(record.id) == record

    @pytest.mark.parametrize(
        "changes",
        [
            {"status": "bogus"},
            {"model": ""},
            {"model": 5},
            {"instructions": 5},
            {"tools": "web_search"},
            {"metadata": {"k": 1}},
            {"metadata": {f"k{i}": "v" for i in range(17)}},
            {"usage": {"input_tokens": "1", "output_tokens": 0}},
            {"error": {"code": "c"}},
            {"incomplete_details": ""},
            {"extra": {"id": "clash"}},
            {"output": "text"},
        ],
    )
    def test_update_refuses_invalid_values(self, store: BaseStore, changes: dict[str, Any]) -> None:
        record = store.create("m")
        with pytest.raises(InvalidArgument):
            store.update(record.id, **changes)
        assert store.get(record.id) == record
        store._check()

    def test_update_bumps_the_version_every_time(self, store: BaseStore) -> None:
        record = store.create("m")
        versions = [record.version]
        versions.extend(store.update(record.id, metadata={"n": str(i)}).version for i in range(4))
        assert versions == [1, 2, 3, 4, 5]
        assert store.get(record.id).metadata == {"n": "3"}

    def test_update_to_completed_sets_completed_at(self, store: BaseStore, clock: FakeClock) -> None:
        record = store.create("m", status="queued")
        clock.advance(10)
        started = store.update(record.id, status="in_progress")
        assert started.completed_at is None
        clock.advance(7)
        done = store.update(
            record.id,
            status=ResponseStatus.COMPLETED,
            output=[{"role": "assistant", "content": "ok"}],
            usage={"input_tokens": 1, "output_tokens": 1},
        )
        assert done.status is ResponseStatus.COMPLETED
        assert done.completed_at == record.created_at + 17
        assert len(done.output) == 1
        assert done.version == 3
        store._check()

    @pytest.mark.parametrize("terminal", ["failed", "cancelled", "incomplete"])
    def test_update_to_other_terminal_status_leaves_completed_at_unset(self, store: BaseStore, terminal: str) -> None:
        record = store.create("m")
        assert store.update(record.id, status=terminal).completed_at is None

    @pytest.mark.parametrize("terminal", TERMINAL)
    def test_final_response_only_metadata_can_change(self, store: BaseStore, terminal: str) -> None:
        record = make_in(store, terminal)
        updated = store.update(record.id, metadata={"label": "kept"})
        assert updated.version == record.version + 1
        assert updated.metadata == {"label": "kept"}
        assert updated.status is record.status
        assert updated.completed_at == record.completed_at
        for changes in ({"model": "x"}, {"metadata": {"a": "b"}, "model": "x"}, {"extra": {"temperature": 1}}):
            with pytest.raises(InvalidTransition) as info:
                store.update(record.id, **changes)
            assert info.value.current == info.value.requested == terminal
            assert "only metadata can change" in str(info.value)
        assert store.get(record.id) == updated

    def test_update_may_move_a_foreground_response_to_cancelled(self, store: BaseStore) -> None:
        # cancel()'s background rule belongs to cancel(); update follows the transition table only.
        record = store.create("m")
        assert store.update(record.id, status="cancelled").status is ResponseStatus.CANCELLED

    @pytest.mark.parametrize("name", MUTATION_NAMES)
    def test_expected_version_matching_lets_the_change_through(self, store: BaseStore, name: str) -> None:
        record = prepare_version_2(store, name)
        result = mutate(store, name, record.id, expected_version=2)
        if name == "delete":
            assert result == record
            assert not store.contains(record.id)
        else:
            assert result.version == 3
            assert store.get(record.id) == result

    @pytest.mark.parametrize("name", MUTATION_NAMES)
    @pytest.mark.parametrize("expected", [1, 3, 99])
    def test_expected_version_mismatch_is_a_conflict(self, store: BaseStore, name: str, expected: int) -> None:
        record = prepare_version_2(store, name)
        with pytest.raises(VersionConflict) as info:
            mutate(store, name, record.id, expected_version=expected)
        exc = info.value
        assert exc.id == record.id
        assert exc.expected == expected
        assert exc.actual == 2
        assert str(exc) == f"response {record.id!r} is at version 2, not the expected version {expected}"
        assert store.get(record.id) == record
        assert len(store) == 1

    @pytest.mark.parametrize("name", MUTATION_NAMES)
    @pytest.mark.parametrize("expected", [0, -1, True, False, 1.0, 2.0, "2", math.nan])
    def test_expected_version_of_a_bad_type_is_refused(self, store: BaseStore, name: str, expected: Any) -> None:
        record = prepare_version_2(store, name)
        with pytest.raises(InvalidArgument, match="expected_version"):
            mutate(store, name, record.id, expected_version=expected)
        assert store.get(record.id) == record

    def test_expected_version_on_an_already_cancelled_response(self, store: BaseStore) -> None:
        record = store.cancel(store.create("m", background=True).id)
        with pytest.raises(VersionConflict):
            store.cancel(record.id, expected_version=1)
        assert store.cancel(record.id, expected_version=2) == record

    def test_a_stale_writer_loses_to_a_fresh_one(self, store: BaseStore) -> None:
        record = store.create("m", background=True)
        seen_by_a = store.get(record.id)
        seen_by_b = store.get(record.id)
        store.update(record.id, metadata={"by": "a"}, expected_version=seen_by_a.version)
        with pytest.raises(VersionConflict):
            store.complete(record.id, expected_version=seen_by_b.version)
        current = store.get(record.id)
        assert current.metadata == {"by": "a"}
        assert current.status is ResponseStatus.IN_PROGRESS

    def test_a_clock_returning_garbage_refuses_the_change(self, new_store: Callable[..., BaseStore]) -> None:
        clock = FakeClock()
        store = new_store(clock=clock)
        record = store.create("m")
        for bad in (math.nan, math.inf, -math.inf):
            clock.set(bad)
            with pytest.raises(InvalidArgument, match="clock"):
                store.complete(record.id)
            clock.set(record.created_at + 1)
            assert store.get(record.id) == record
        clock.set(record.created_at + 5)
        assert store.complete(record.id).completed_at == record.created_at + 5
