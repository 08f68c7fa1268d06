"""Semantics the store decides on purpose, checked on every backend: edge values and no-op changes."""

from __future__ import annotations

import pytest

from responsestore import BaseStore, ChainError, InvalidArgument, ResponseRecord, ResponseStatus, VersionConflict
from responsestore._events import MAX_SEQUENCE_NUMBER


@pytest.mark.parametrize("after", [2**63 - 1, 2**63, 2**64, 10**100])
def test_starting_after_beyond_any_sequence_number_means_after_the_last_event(store: BaseStore, after: int) -> None:
    record = store.create("m", "x", background=True, status="in_progress")
    store.append_event(record.id, {"type": "response.output_text.delta", "delta": "hi"})
    assert store.events(record.id, starting_after=after) == ()
    store.complete(record.id, [{"role": "assistant", "content": "done"}])
    assert list(store.stream(record.id, starting_after=after, timeout=5)) == []


def test_the_largest_sequence_number_is_what_sqlite_can_hold() -> None:
    assert MAX_SEQUENCE_NUMBER == 2**63 - 1


@pytest.mark.parametrize("bad", [-1, -(2**63) - 1, True, 1.0, "1", [1]])
def test_starting_after_must_be_an_int_at_least_zero(store: BaseStore, bad: object) -> None:
    record = store.create("m", "x", background=True, status="in_progress")
    with pytest.raises(InvalidArgument, match="starting_after"):
        store.events(record.id, starting_after=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("digits", [1001, 5000])
def test_an_int_too_long_for_json_text_is_refused_in_an_event(store: BaseStore, digits: int) -> None:
    record = store.create("m", "x", background=True, status="in_progress")
    with pytest.raises(InvalidArgument, match="too large for JSON") as info:
        store.append_event(record.id, {"type": "t", "n": 10 ** (digits - 1)})
    assert info.value.id == record.id
    assert len(str(info.value)) < 500
    assert store.events(record.id) == ()


def test_a_lone_surrogate_in_an_event_is_refused_naming_the_response(store: BaseStore) -> None:
    record = store.create("m", "x", background=True, status="in_progress")
    with pytest.raises(InvalidArgument, match="lone surrogate") as info:
        store.append_event(record.id, {"type": "response.output_text.delta", "delta": "\ud83d"})
    assert info.value.id == record.id
    assert record.id in str(info.value)
    assert store.events(record.id) == ()
    assert store.get(record.id) == record


# ------------------------------------------------------------------------ update(status=<the current status>)


def make_in(store: BaseStore, status: str) -> ResponseRecord:
    record = store.create("m", "x", background=True, status="queued" if status == "queued" else "in_progress")
    if status in ("queued", "in_progress"):
        return record
    return store.update(record.id, status=status)


@pytest.mark.parametrize("status", [s.value for s in ResponseStatus])
def test_updating_only_to_the_current_status_changes_nothing(store: BaseStore, status: str) -> None:
    record = make_in(store, status)
    events = store.events(record.id)
    stats = store.stats()
    again = store.update(record.id, status=status)
    assert again == record
    assert again.version == record.version
    assert store.update(record.id, status=ResponseStatus(status), expected_version=record.version) == record
    assert store.get(record.id) == record
    assert store.events(record.id) == events
    assert store.stats() == stats


@pytest.mark.parametrize("status", ["queued", "in_progress"])
def test_a_no_op_update_appends_no_event_so_a_retry_does_not_log_it_twice(store: BaseStore, status: str) -> None:
    record = make_in(store, status)
    event = {"type": "response.in_progress"}
    assert store.update(record.id, status=status, event=event) == record
    assert store.events(record.id) == ()


def test_a_no_op_update_still_checks_the_expected_version(store: BaseStore) -> None:
    record = make_in(store, "in_progress")
    with pytest.raises(VersionConflict):
        store.update(record.id, status="in_progress", expected_version=record.version + 1)


@pytest.mark.parametrize("status", ["in_progress", "completed"])
def test_the_current_status_with_another_change_is_a_real_update(store: BaseStore, status: str) -> None:
    record = make_in(store, status)
    updated = store.update(record.id, status=status, metadata={"k": "v"})
    assert updated.version == record.version + 1
    assert updated.metadata == {"k": "v"}
    assert updated.status is record.status


def test_create_accepts_a_chain_broken_further_back_and_conversation_names_the_gap(store: BaseStore) -> None:
    """``create`` checks only the response it continues (OpenAI's rule); the gap surfaces in ``conversation``."""
    first = store.complete(store.create("m", "one", id="first").id)
    second = store.complete(store.create("m", "two", id="second", previous_response_id=first.id).id)
    store.delete(first.id)
    third = store.create("m", "three", id="third", previous_response_id=second.id)
    assert third.previous_response_id == second.id
    for id in (second.id, third.id):
        with pytest.raises(ChainError, match="'first'") as info:
            store.conversation(id)
        assert info.value.id == "first"
    with pytest.raises(ChainError, match="no longer exists"):
        store.chain(third.id)
    with pytest.raises(ChainError, match="names no response"):  # the direct previous response must exist
        store.create("m", "four", previous_response_id=first.id)
    store._check()
