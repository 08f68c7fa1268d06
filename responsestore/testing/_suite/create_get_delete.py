"""Creating, reading and deleting responses; ids; previous_response_id; immutability of what is stored."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import pytest

from responsestore import (
    BaseStore,
    ChainError,
    InvalidArgument,
    ResponseExists,
    ResponseNotFound,
    ResponseStatus,
    ResponseStoreError,
)
from responsestore.testing._clock import FakeClock

from .base import ContractBase

GENERATED_ID = re.compile(r"resp_[0-9a-f]{32}")


def finish(store: BaseStore, id: str, status: str) -> None:
    if status == "completed":
        store.complete(id, [{"role": "assistant", "content": "a"}])
    elif status == "failed":
        store.fail(id, "boom")
    elif status == "cancelled":
        store.cancel(id)
    else:
        store.mark_incomplete(id, "max_output_tokens")


# ---------------------------------------------------------------------------------------------- create


# ---------------------------------------------------------------------------------------------- previous_response_id


# ---------------------------------------------------------------------------------------------- get, in, len, contains


# ---------------------------------------------------------------------------------------------- delete


# ---------------------------------------------------------------------------------------------- immutability


def _outcome(read: Callable[[], Any]) -> str:
    try:
        return f"returned {read()!r}"
    except Exception as exc:  # noqa: BLE001 - every outcome is collected and compared by the caller
        return "refused" if isinstance(exc, InvalidArgument) and "clock" in str(exc) else type(exc).__name__


class CreateGetDeleteTests(ContractBase):
    """Creating, reading and deleting responses; ids; previous_response_id; immutability of what is stored."""

    def test_create_stores_every_field(self, store: BaseStore, clock: FakeClock) -> None:
        clock.set(1_700_000_123.25)
        record = store.create(
            "gpt-4.1",
            "Tell me a joke",
            instructions="be funny",
            tools=[{"type": "web_search"}],
            metadata={"user": "u1"},
            extra={"temperature": 0.7},
        )
        assert GENERATED_ID.fullmatch(record.id)
        assert record.created_at == 1_700_000_123.25
        assert record.model == "gpt-4.1"
        assert record.status is ResponseStatus.IN_PROGRESS
        assert record.instructions == "be funny"
        tools: Any = ({"type": "web_search"},)  # a FrozenDict equals the dict it was made from
        assert record.tools == tools
        assert record.metadata == {"user": "u1"}
        assert record.extra == {"temperature": 0.7}
        assert record.background is False
        assert record.previous_response_id is None
        assert record.output == ()
        assert record.usage is None
        assert record.error is None
        assert record.incomplete_details is None
        assert record.completed_at is None
        assert record.owner is None
        assert record.version == 1
        assert len(record.input) == 1
        item = record.input[0]
        assert item["type"] == "message"
        assert item["role"] == "user"
        assert item["content"] == ({"type": "input_text", "text": "Tell me a joke"},)
        assert re.fullmatch(r"msg_[0-9a-f]{32}", item["id"])
        assert store.get(record.id) == record
        assert len(store) == 1

    def test_create_with_item_list_keeps_given_item_ids(self, store: BaseStore) -> None:
        record = store.create(
            "m",
            [
                {"id": "in_1", "role": "developer", "content": "rules"},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            ],
        )
        assert record.input[0]["id"] == "in_1"
        assert record.input[1]["id"].startswith("msg_")
        assert record.input[1]["content"] == ({"type": "input_text", "text": "hi"},)

    def test_create_without_input(self, store: BaseStore) -> None:
        assert store.create("m").input == ()

    def test_generated_ids_are_fresh(self, store: BaseStore) -> None:
        ids = {store.create("m").id for _ in range(50)}
        assert len(ids) == 50
        assert all(GENERATED_ID.fullmatch(id) for id in ids)
        assert len(store) == 50

    @pytest.mark.parametrize("id", ["resp_custom", "a", "A.b:c-d_e", "0" * 128, "resp_" + "f" * 32])
    def test_create_with_explicit_id(self, store: BaseStore, id: str) -> None:
        record = store.create("m", id=id)
        assert record.id == id
        assert store.get(id) == record
        assert id in store

    @pytest.mark.parametrize("id", ["", "has space", "x" * 129, "a/b", "ü", "new\nline", 5, b"resp_x"])
    def test_create_refuses_invalid_ids(self, store: BaseStore, id: Any) -> None:
        with pytest.raises(InvalidArgument, match="id"):
            store.create("m", id=id)
        assert len(store) == 0

    @pytest.mark.parametrize("model", ["", 5, None])
    def test_create_refuses_a_bad_model(self, store: BaseStore, model: Any) -> None:
        with pytest.raises(InvalidArgument, match="model"):
            store.create(model)
        assert len(store) == 0

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"background": 1},
            {"background": "yes"},
            {"instructions": 5},
            {"tools": {"type": "web_search"}},
            {"tools": "web_search"},
            {"metadata": {"k": 5}},
            {"metadata": ["k", "v"]},
            {"extra": {"status": "completed"}},
            {"extra": {"owner": "x"}},
            {"input": {"role": "user", "content": "not in a list"}},
            {"input": [{"id": "dup", "role": "user", "content": "a"}, {"id": "dup", "role": "user", "content": "b"}]},
            {"input": [{"role": "robot", "content": "x"}]},
            {"input": [{"role": "user", "content": "x", "score": math.nan}]},
            {"previous_response_id": "not valid!"},
            {"previous_response_id": 5},
            {"owner": 5},
        ],
    )
    def test_create_refuses_malformed_arguments(self, store: BaseStore, kwargs: dict[str, Any]) -> None:
        existing = store.create("m")
        with pytest.raises(InvalidArgument):
            store.create("m", **kwargs)
        assert len(store) == 1
        assert store.get(existing.id) == existing

    def test_create_with_an_explicit_id_already_used_is_refused(self, store: BaseStore, clock: FakeClock) -> None:
        original = store.create("m", "first", id="resp_dup", metadata={"n": "1"})
        clock.advance(1)
        with pytest.raises(ResponseExists) as info:
            store.create("other", "second", id="resp_dup", status="queued")
        assert isinstance(info.value, ResponseStoreError)
        assert info.value.id == "resp_dup"
        assert str(info.value) == "a response with id 'resp_dup' already exists"
        assert len(store) == 1
        assert store.get("resp_dup") == original
        assert [r.id for r in store.list()] == ["resp_dup"]

    def test_an_id_is_free_again_after_delete(self, store: BaseStore) -> None:
        store.create("m", id="resp_again", metadata={"n": "1"})
        store.delete("resp_again")
        again = store.create("m2", id="resp_again")
        assert again.version == 1
        assert again.metadata == {}
        assert store.get("resp_again") == again

    @pytest.mark.parametrize("status", ["queued", "in_progress", ResponseStatus.QUEUED, ResponseStatus.IN_PROGRESS])
    def test_create_accepts_active_statuses(self, store: BaseStore, status: Any) -> None:
        record = store.create("m", status=status)
        assert record.status is ResponseStatus(status)
        assert not record.is_terminal

    @pytest.mark.parametrize(
        "status", ["completed", "failed", "cancelled", "incomplete", ResponseStatus.COMPLETED, "x", 3]
    )
    def test_create_refuses_other_statuses(self, store: BaseStore, status: Any) -> None:
        with pytest.raises(InvalidArgument, match="'queued' or 'in_progress'"):
            store.create("m", status=status)
        assert len(store) == 0

    def test_create_refuses_when_the_clock_returns_garbage(self, new_store: Callable[..., BaseStore]) -> None:
        clock = FakeClock()
        store = new_store(clock=clock)
        good = clock()
        for bad in (math.nan, -math.inf, math.inf, True, "now", None):
            clock.set(bad)  # type: ignore[arg-type]
            with pytest.raises(InvalidArgument, match="clock"):
                store.create("m")
            clock.set(good)
            assert len(store) == 0

    @pytest.mark.parametrize("kwargs", [{"clock": 5}, {"clock": None}])
    def test_constructor_refuses_a_clock_that_is_not_callable(
        self, new_store: Callable[..., BaseStore], kwargs: dict[str, Any]
    ) -> None:
        with pytest.raises(InvalidArgument, match="clock"):
            new_store(**kwargs)

    def test_previous_response_id_missing_is_a_chain_error(self, store: BaseStore) -> None:
        with pytest.raises(ChainError) as info:
            store.create("m", "next", previous_response_id="resp_nope", id="resp_new")
        assert info.value.id == "resp_nope"
        assert str(info.value) == "previous_response_id 'resp_nope' of 'resp_new' names no response"
        assert len(store) == 0

    @pytest.mark.parametrize("status", ["queued", "in_progress"])
    def test_previous_response_still_running_is_a_chain_error(self, store: BaseStore, status: str) -> None:
        previous = store.create("m", status=status)
        with pytest.raises(ChainError, match=f"is still {status}") as info:
            store.create("m", previous_response_id=previous.id)
        assert info.value.id == previous.id
        assert len(store) == 1

    @pytest.mark.parametrize("status", ["completed", "failed", "cancelled", "incomplete"])
    def test_previous_response_finished_in_any_way_can_be_continued(self, store: BaseStore, status: str) -> None:
        previous = store.create("m", "first", background=True)
        finish(store, previous.id, status)
        record = store.create("m", "second", previous_response_id=previous.id)
        assert record.previous_response_id == previous.id
        assert store.get(record.id).previous_response_id == previous.id
        assert [r.id for r in store.chain(record.id)] == [previous.id, record.id]

    def test_duplicate_id_is_reported_before_a_chain_problem(self, store: BaseStore) -> None:
        store.create("m", id="resp_a")
        with pytest.raises(ResponseExists):
            store.create("m", id="resp_a", previous_response_id="resp_missing")
        assert len(store) == 1

    def test_get_of_a_missing_id_is_not_found(self, store: BaseStore) -> None:
        store.create("m")
        with pytest.raises(ResponseNotFound) as info:
            store.get("resp_missing")
        assert isinstance(info.value, LookupError)
        assert isinstance(info.value, ResponseStoreError)
        assert info.value.id == "resp_missing"
        assert str(info.value) == "no response with id 'resp_missing'"

    @pytest.mark.parametrize("id", ["", "bad id", 5, None, ["resp_x"], {"a": 1}])
    def test_get_of_a_malformed_id_is_invalid(self, store: BaseStore, id: Any) -> None:
        with pytest.raises(InvalidArgument):
            store.get(id)

    @pytest.mark.parametrize("owner", [5, ["a"], b"a"])
    def test_get_with_a_malformed_owner_is_invalid(self, store: BaseStore, owner: Any) -> None:
        record = store.create("m")
        with pytest.raises(InvalidArgument, match="owner"):
            store.get(record.id, owner=owner)

    def test_len_and_in(self, store: BaseStore) -> None:
        assert len(store) == 0
        a = store.create("m")
        b = store.create("m", owner="tenant")
        assert len(store) == 2  # len counts every owner
        assert a.id in store
        assert b.id not in store  # `in` asks for owner None
        assert "resp_missing" not in store
        assert 5 not in store
        assert None not in store
        store.delete(a.id)
        assert a.id not in store
        assert len(store) == 1

    def test_contains(self, store: BaseStore) -> None:
        a = store.create("m", owner="tenant")
        assert store.contains(a.id, owner="tenant")
        assert not store.contains(a.id)
        assert not store.contains(a.id, owner="other")
        assert not store.contains("resp_missing", owner="tenant")
        assert not store.contains(5, owner="tenant")
        assert not store.contains(None)
        with pytest.raises(InvalidArgument, match="owner"):
            store.contains(a.id, owner=5)  # type: ignore[arg-type]

    @pytest.mark.parametrize("status", ["queued", "in_progress", "completed", "failed", "cancelled", "incomplete"])
    def test_delete_returns_the_removed_record_in_any_status(self, store: BaseStore, status: str) -> None:
        keep = store.create("m")
        record = store.create("m", background=True, status="queued" if status == "queued" else "in_progress")
        if status not in ("queued", "in_progress"):
            finish(store, record.id, status)
        before = store.get(record.id)
        removed = store.delete(record.id)
        assert removed == before
        assert len(store) == 1
        assert record.id not in store
        with pytest.raises(ResponseNotFound, match=re.escape(repr(record.id))) as info:
            store.get(record.id)
        assert isinstance(info.value, LookupError)
        assert info.value.id == record.id
        assert store.get(keep.id) == keep
        assert [r.id for r in store.list()] == [keep.id]

    def test_delete_twice_is_not_found_the_second_time(self, store: BaseStore) -> None:
        record = store.create("m")
        store.delete(record.id)
        with pytest.raises(ResponseNotFound) as info:
            store.delete(record.id)
        assert info.value.id == record.id
        assert len(store) == 0

    @pytest.mark.parametrize("id", ["", "bad id", 5, None])
    def test_delete_of_a_malformed_id_is_invalid(self, store: BaseStore, id: Any) -> None:
        store.create("m")
        with pytest.raises(InvalidArgument):
            store.delete(id)
        assert len(store) == 1

    def test_delete_with_a_malformed_owner_is_invalid(self, store: BaseStore) -> None:
        record = store.create("m")
        with pytest.raises(InvalidArgument, match="owner"):
            store.delete(record.id, owner=5)  # type: ignore[arg-type]
        assert store.get(record.id) == record

    @pytest.mark.parametrize("method", ["start", "complete", "fail", "mark_incomplete", "cancel", "update"])
    def test_changing_a_missing_response_is_not_found(self, store: BaseStore, method: str) -> None:
        calls: dict[str, Callable[[str], Any]] = {
            "start": store.start,
            "complete": store.complete,
            "fail": lambda rid: store.fail(rid, "x"),
            "mark_incomplete": lambda rid: store.mark_incomplete(rid, "x"),
            "cancel": store.cancel,
            "update": lambda rid: store.update(rid, model="x"),
        }
        with pytest.raises(ResponseNotFound) as info:
            calls[method]("resp_missing")
        assert str(info.value) == "no response with id 'resp_missing'"
        with pytest.raises(InvalidArgument):
            calls[method]("not an id")
        assert len(store) == 0

    def test_mutating_what_was_passed_to_create_changes_nothing(self, store: BaseStore) -> None:
        content = [{"type": "input_text", "text": "original"}]
        items = [{"id": "in_1", "role": "user", "content": content}]
        tools: list[dict[str, Any]] = [
            {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}
        ]
        metadata = {"k": "v"}
        extra = {"text": {"format": {"type": "text"}}}
        record = store.create("m", items, tools=tools, metadata=metadata, extra=extra)
        snapshot = record.to_dict()

        content[0]["text"] = "changed"
        content.append({"type": "input_text", "text": "added"})
        items[0]["role"] = "system"
        items.append({"role": "user", "content": "extra item"})
        tools[0]["parameters"]["properties"]["x"] = {"type": "string"}
        tools.clear()
        metadata["k"] = "changed"
        metadata["new"] = "pair"
        extra["text"]["format"]["type"] = "json_object"

        assert store.get(record.id).to_dict() == snapshot
        assert store.get(record.id) == record
        assert store.input_items(record.id).data[0]["content"] == ({"type": "input_text", "text": "original"},)

    def test_mutating_what_was_passed_to_complete_and_update_changes_nothing(self, store: BaseStore) -> None:
        record = store.create("m")
        output: list[dict[str, Any]] = [
            {"id": "out_1", "role": "assistant", "content": [{"type": "output_text", "text": "a", "annotations": []}]}
        ]
        usage: dict[str, Any] = {
            "input_tokens": 1,
            "output_tokens": 2,
            "output_tokens_details": {"reasoning_tokens": 1},
        }
        done = store.complete(record.id, output, usage=usage)
        metadata = {"a": "b"}
        updated = store.update(done.id, metadata=metadata)
        snapshot = updated.to_dict()
        error = {"code": "c", "message": "m"}
        failed = store.fail(store.create("m").id, error)
        failed_snapshot = failed.to_dict()
        output[0]["content"][0]["text"] = "changed"
        output.append({"role": "assistant", "content": "more"})
        usage["input_tokens"] = 999
        usage["output_tokens_details"]["reasoning_tokens"] = 999
        metadata["a"] = "changed"
        error["code"] = "changed"
        assert store.get(record.id).to_dict() == snapshot
        assert store.get(failed.id).to_dict() == failed_snapshot
        assert store.get(failed.id).error == {"code": "c", "message": "m"}

    def test_mutating_what_the_store_returned_changes_nothing(self, store: BaseStore) -> None:
        first = store.create("m", [{"id": "in_1", "role": "user", "content": "q1"}], metadata={"k": "v"})
        store.complete(first.id, [{"id": "out_1", "role": "assistant", "content": "a1"}])
        second = store.create("m", [{"id": "in_2", "role": "user", "content": "q2"}], previous_response_id=first.id)
        snapshot_first = store.get(first.id).to_dict()
        snapshot_second = store.get(second.id).to_dict()

        page = store.input_items(first.id)  # the stored items, read-only
        with pytest.raises(TypeError):
            page.data[0]["content"][0]["text"] = "changed"
        with pytest.raises(TypeError):
            page.data[0]["role"] = "system"

        context = store.conversation(second.id)
        assert [item["id"] for item in context] == ["in_1", "out_1", "in_2"]
        for item in context:
            with pytest.raises(TypeError):
                item["id"] = "changed"
            with pytest.raises(AttributeError):
                item["content"].append({"type": "input_text", "text": "injected"})

        as_json = store.get(first.id).to_openai()
        as_json["metadata"]["k"] = "changed"
        as_json["output"][0]["content"][0]["text"] = "changed"
        as_json["output"].clear()

        listed = store.list().to_openai()
        listed["data"][0]["metadata"]["new"] = "pair"
        listed["data"].clear()

        stored = store.get(first.id).to_dict()
        stored["input"].clear()

        assert store.get(first.id).to_dict() == snapshot_first
        assert store.get(second.id).to_dict() == snapshot_second
        assert [item["id"] for item in store.conversation(second.id)] == ["in_1", "out_1", "in_2"]
        assert store.input_items(first.id).data[0]["content"] == ({"type": "input_text", "text": "q1"},)

    def test_records_cannot_be_changed_in_place(self, store: BaseStore) -> None:
        record = store.create("m", "hi", metadata={"k": "v"})
        with pytest.raises(AttributeError):
            record.model = "other"  # type: ignore[misc]
        with pytest.raises(TypeError):
            record.metadata["k"] = "x"
        with pytest.raises(TypeError):
            record.input[0]["role"] = "system"
        assert store.get(record.id).metadata == {"k": "v"}

    @pytest.mark.parametrize("bad", [math.nan, "now", None])
    def test_reads_with_a_clock_returning_garbage_are_refused_consistently(
        self, new_store: Callable[..., BaseStore], bad: Any
    ) -> None:
        # Writes validate the clock (InvalidArgument). Reads must not leak a TypeError, must not turn the broken
        # clock into a false ResponseNotFound, and must not disagree with each other (get finds the record while
        # list is empty).
        clock = FakeClock()
        store = new_store(clock=clock)
        record = store.create("m", "hi")
        clock.set(bad)
        reads: dict[str, Callable[[], Any]] = {
            "get": lambda: store.get(record.id),
            "len": lambda: len(store),
            "in": lambda: record.id in store,
            "contains": lambda: store.contains(record.id),
            "list": lambda: [r.id for r in store.list()],
            "input_items": lambda: len(store.input_items(record.id)),
            "chain": lambda: len(store.chain(record.id)),
        }
        outcomes = {name: _outcome(read) for name, read in reads.items()}
        clock.set(record.created_at)
        refused = dict.fromkeys(reads, "refused")
        if isinstance(bad, float):
            # A NaN reading compares false with everything; treating it as "not expired" everywhere is acceptable
            # too, as long as every read agrees.
            visible = {
                "get": f"returned {record!r}",
                "len": "returned 1",
                "in": "returned True",
                "contains": "returned True",
                "list": f"returned {[record.id]!r}",
                "input_items": "returned 1",
                "chain": "returned 1",
            }
            assert outcomes in (refused, visible)
        else:
            assert outcomes == refused
        assert store.get(record.id) == record
