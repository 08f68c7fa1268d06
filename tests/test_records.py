"""``ResponseRecord``: OpenAI JSON in and out, immutability, normalization and validation of every field."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.responses import Response

from responsestore import (
    BaseStore,
    FrozenDict,
    InvalidArgument,
    ResponseRecord,
    ResponseStatus,
    ResponseStoreError,
    _wire,
)
from responsestore._json import thaw, to_json_text
from responsestore.testing import FakeClock
from responsestore.testing.strategies import (
    error_dicts,
    extras,
    function_tools,
    input_item_lists,
    inputs,
    metadata,
    output_item_lists,
    records,
    texts,
    usage_dicts,
)
from tests.conftest import StoreFactory
from tests.wire_checks import check_item, check_item_page, check_response

MSG_ID = re.compile(r"msg_[0-9a-f]{32}")

# Each example of a store-backed property opens a fresh store from the function-scoped ``make_store`` factory,
# so sharing the factory between examples is safe.
per_example_store = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


def make(**fields: Any) -> ResponseRecord:
    """A minimal in-progress record, with ``fields`` overriding the defaults."""
    base: dict[str, Any] = {"id": "resp_1", "created_at": 1_700_000_000.0, "model": "m", "status": "in_progress"}
    base.update(fields)
    return ResponseRecord(**base)


def assert_deeply_immutable(value: Any, path: str = "record") -> None:
    """No list, dict, set or other mutable container anywhere inside ``value``."""
    if isinstance(value, ResponseRecord):
        for field in attrs.fields(ResponseRecord):
            assert_deeply_immutable(getattr(value, field.name), f"{path}.{field.name}")
    elif isinstance(value, FrozenDict):
        for key, item in value.items():
            assert type(key) is str, path
            assert_deeply_immutable(item, f"{path}[{key!r}]")
    elif isinstance(value, tuple):
        for index, item in enumerate(value):
            assert_deeply_immutable(item, f"{path}[{index}]")
    else:
        assert value is None or type(value) in (bool, int, float, str, ResponseStatus), f"{path} is {value!r}"


def mutate_everything(value: Any) -> None:
    if isinstance(value, dict):
        for item in list(value.values()):
            mutate_everything(item)
        value.clear()
        value["mutated"] = ["yes"]
    elif isinstance(value, list):
        for item in value:
            mutate_everything(item)
        value.append("mutated")


def snapshot(store: BaseStore) -> tuple[int, list[dict[str, Any]]]:
    return len(store), [record.to_dict() for record in store.list(limit=100, order="asc")]


# --------------------------------------------------------------------------- OpenAI JSON


@given(records())
def test_to_openai_validates_with_the_sdk_and_keeps_every_key_field(record: ResponseRecord) -> None:
    data = record.to_openai()
    parsed = Response.model_validate(data)
    assert parsed.id == record.id
    assert parsed.object == "response"
    assert parsed.status == record.status.value
    assert parsed.model == record.model
    # OpenAI and the Open Responses schema send whole seconds.
    assert data["created_at"] == int(record.created_at)
    assert type(data["created_at"]) is int
    assert data["completed_at"] == (None if record.completed_at is None else int(record.completed_at))
    assert parsed.background is record.background
    assert parsed.previous_response_id == record.previous_response_id
    assert parsed.instructions == record.instructions
    assert parsed.metadata == dict(record.metadata)
    assert [item.id for item in parsed.output] == [item["id"] for item in record.output]
    assert [item.type for item in parsed.output] == [item["type"] for item in record.output]
    assert [tool.name for tool in parsed.tools] == [tool["name"] for tool in record.tools]  # type: ignore[union-attr]
    assert parsed.parallel_tool_calls is record.extra.get("parallel_tool_calls", True)
    expected_choice = record.extra.get("tool_choice", "auto")
    if isinstance(expected_choice, str):
        assert parsed.tool_choice == expected_choice
    if record.usage is None:
        assert parsed.usage is None
    else:
        assert parsed.usage is not None
        assert parsed.usage.input_tokens == record.usage["input_tokens"]
        assert parsed.usage.output_tokens == record.usage["output_tokens"]
        assert parsed.usage.total_tokens == record.usage["total_tokens"]
    assert (parsed.error.code if parsed.error else None) == (record.error["code"] if record.error else None)
    assert (parsed.incomplete_details.reason if parsed.incomplete_details else None) == (
        record.incomplete_details["reason"] if record.incomplete_details else None
    )
    for key in ("input", "owner", "version"):
        assert key not in data
    for key, value in record.extra.items():
        assert data[key] == thaw(value)


@given(records())
def test_from_openai_and_from_dict_invert_to_openai_and_to_dict(record: ResponseRecord) -> None:
    again = ResponseRecord.from_openai(
        record.to_openai(), input=record.input, owner=record.owner, version=record.version
    )
    # The wire form is a fixed point: reading it and writing it again gives the same JSON.
    assert again.to_openai() == record.to_openai()
    assert again.input == record.input
    assert (again.owner, again.version, again.status) == (record.owner, record.version, record.status)
    restored = ResponseRecord.from_dict(record.to_dict())
    assert restored == record
    assert to_json_text(restored.to_dict()) == to_json_text(record.to_dict())
    # The path a durable backend takes: through JSON text.
    assert ResponseRecord.from_dict(json.loads(to_json_text(record.to_dict()))) == record


@given(records())
def test_to_openai_and_to_dict_return_fresh_containers(record: ResponseRecord) -> None:
    for convert in (ResponseRecord.to_openai, ResponseRecord.to_dict):
        first, second = convert(record), convert(record)
        reference = convert(record)
        assert first == second
        assert first is not second
        for key, value in first.items():
            if isinstance(value, (list, dict)):
                assert value is not second[key], key
        mutate_everything(first)
        assert convert(record) == reference
        assert_deeply_immutable(record)


@given(records())
def test_records_are_frozen_and_deeply_immutable(record: ResponseRecord) -> None:
    assert_deeply_immutable(record)
    for field in attrs.fields(ResponseRecord):
        with pytest.raises(AttributeError):
            setattr(record, field.name, getattr(record, field.name))
    with pytest.raises(AttributeError):
        record.not_a_field = 1  # type: ignore[attr-defined]
    assert hash(record) == hash(ResponseRecord.from_dict(record.to_dict()))


def test_callers_containers_are_copied_on_construction() -> None:
    items = [{"role": "user", "content": [{"type": "input_text", "text": "hi"}], "id": "msg_1"}]
    meta = {"k": "v"}
    extra = {"x_list": [1, 2]}
    record = make(input=items, metadata=meta, extra=extra, tools=[{"type": "function", "name": "f"}])
    mutate_everything(items)
    mutate_everything(meta)
    mutate_everything(extra)
    assert record.input[0]["content"][0]["text"] == "hi"
    assert record.metadata == {"k": "v"}
    assert record.extra["x_list"] == (1, 2)
    assert_deeply_immutable(record)


def test_a_frozendict_passed_in_cannot_smuggle_a_mutable_list_into_a_record() -> None:
    inner = [1]
    record = make(extra={"x": FrozenDict({"list": inner})})
    inner.append(2)
    assert record.to_openai()["x"] == {"list": [1]}
    assert_deeply_immutable(record)


def test_object_is_always_response() -> None:
    record = make()
    assert record.object == "response"
    assert record.to_openai()["object"] == "response"
    assert record.is_terminal is False
    assert make(status="completed", completed_at=1_700_000_001.0).is_terminal is True


# --------------------------------------------------------------------------- field validation


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", ""),
        ("id", "has space"),
        ("id", "x" * 129),
        ("id", 5),
        ("id", None),
        ("created_at", float("nan")),
        ("created_at", float("inf")),
        ("created_at", True),
        ("created_at", "1"),
        ("created_at", None),
        ("completed_at", float("nan")),
        ("completed_at", "soon"),
        ("model", ""),
        ("model", 5),
        ("model", None),
        ("status", "done"),
        ("status", 5),
        ("status", None),
        ("version", 0),
        ("version", -1),
        ("version", True),
        ("version", 1.0),
        ("background", 1),
        ("background", "yes"),
        ("background", None),
        ("owner", 5),
        ("owner", b"alice"),
        ("instructions", 5),
        ("instructions", ["x"]),
        ("previous_response_id", "bad id"),
        ("previous_response_id", 5),
        ("tools", "function"),
        ("tools", {"type": "function", "name": "f"}),
        ("tools", [1]),
        ("tools", None),
        ("input", "a plain string is for store.create, not the record"),
        ("input", [1]),
        ("input", {"role": "user", "content": "x"}),
        ("output", [{"content": "no type and no role"}]),
        ("extra", ["x"]),
        ("extra", {"x": float("nan")}),
    ],
)
def test_constructor_refuses_an_invalid_field(field: str, value: Any) -> None:
    with pytest.raises(InvalidArgument):
        make(**{field: value})


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ([], "expected a Response object"),
        ("resp_1", "expected a Response object"),
        ({"object": "list", "id": "r", "created_at": 1, "model": "m", "status": "completed"}, "expected object"),
        ({"created_at": 1, "model": "m", "status": "completed"}, "lacks"),
        ({"id": "r", "model": "m", "status": "completed"}, "lacks"),
        ({"id": "r", "created_at": 1, "status": "completed"}, "lacks"),
        ({"id": "r", "created_at": 1, "model": "m"}, "lacks"),
    ],
)
def test_from_openai_refuses_what_is_not_a_response(data: Any, fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=fragment):
        ResponseRecord.from_openai(data)
    if isinstance(data, dict):
        with pytest.raises(InvalidArgument, match=fragment):
            ResponseRecord.from_dict(data)


def test_from_dict_refuses_a_non_mapping() -> None:
    with pytest.raises(InvalidArgument, match="expected a stored record"):
        ResponseRecord.from_dict([("id", "r")])  # type: ignore[arg-type]


def test_from_openai_defaults_input_owner_and_version() -> None:
    record = ResponseRecord.from_openai(
        {"id": "resp_x", "object": "response", "created_at": 5.0, "model": "m", "status": "queued"}
    )
    assert record.input == ()
    assert record.owner is None
    assert record.version == 1
    assert record.status is ResponseStatus.QUEUED
    assert record.output == ()
    assert record.tools == ()
    assert record.metadata == {}
    assert record.extra == {}


# --------------------------------------------------------------------------- input normalization


def test_plain_string_input_becomes_one_user_message_with_an_input_text_part(store: BaseStore) -> None:
    record = store.create("m", "hello there")
    assert len(record.input) == 1
    item = record.input[0]
    assert MSG_ID.fullmatch(item["id"])
    assert dict(item) == {
        "type": "message",
        "role": "user",
        "content": ({"type": "input_text", "text": "hello there"},),
        "id": item["id"],
    }
    assert store.get(record.id).input == record.input


@pytest.mark.parametrize("role", ["user", "system", "developer"])
def test_role_without_type_is_a_message_and_string_content_an_input_text_part(store: BaseStore, role: str) -> None:
    record = store.create("m", [{"role": role, "content": "x"}])
    (item,) = record.input
    assert item["type"] == "message"
    assert item["role"] == role
    assert item["content"] == ({"type": "input_text", "text": "x"},)
    assert "status" not in item


def test_items_without_ids_get_distinct_msg_ids_and_given_ids_are_kept(store: BaseStore) -> None:
    record = store.create(
        "m",
        [
            {"role": "user", "content": "a"},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}", "id": "fc_given"},
            {"role": "user", "content": "b"},
            {"type": "function_call_output", "call_id": "c1", "output": "42"},
        ],
    )
    ids = [item["id"] for item in record.input]
    assert ids[1] == "fc_given"
    generated = [ids[0], ids[2], ids[3]]
    assert all(MSG_ID.fullmatch(item_id) for item_id in generated)
    assert len(set(ids)) == 4
    # Non-message items are kept as given, plus the id and (for tool calls and their outputs) OpenAI's status.
    assert dict(record.input[3]) == {
        "type": "function_call_output",
        "call_id": "c1",
        "output": "42",
        "id": ids[3],
        "status": "completed",
    }
    given = {"type": "function_call_output", "call_id": "c2", "output": "x", "status": "in_progress"}
    assert store.create("m", [given]).input[0]["status"] == "in_progress"


def test_duplicate_item_ids_are_refused_and_nothing_is_stored(store: BaseStore) -> None:
    store.create("m", "before")
    before = snapshot(store)
    with pytest.raises(InvalidArgument, match="repeats the item id 'msg_1'"):
        store.create(
            "m", [{"role": "user", "content": "a", "id": "msg_1"}, {"role": "user", "content": "b", "id": "msg_1"}]
        )
    assert snapshot(store) == before
    with pytest.raises(InvalidArgument, match="repeats the item id"):
        make(output=[{"type": "function_call", "id": "fc_1"}, {"type": "function_call", "id": "fc_1"}])


def test_assistant_string_content_becomes_output_text_with_annotations(store: BaseStore) -> None:
    record = store.create(
        "m",
        [
            {"role": "assistant", "content": "earlier answer"},
            {"role": "assistant", "content": "partial", "status": "incomplete"},
        ],
    )
    first, second = record.input
    assert first["content"] == ({"type": "output_text", "text": "earlier answer", "annotations": ()},)
    assert first["status"] == "completed"
    assert second["status"] == "incomplete"
    done = store.complete(record.id, [{"role": "assistant", "content": "final"}])
    (output,) = done.output
    assert thaw_item(output) == {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "final", "annotations": []}],
        "status": "completed",
        "id": output["id"],
    }
    Response.model_validate(done.to_openai())


def thaw_item(item: Any) -> Any:
    return json.loads(to_json_text(item))


def test_list_content_is_kept_as_given(store: BaseStore) -> None:
    parts = [
        {"type": "input_text", "text": "a"},
        {"type": "input_image", "image_url": "https://x/y.png", "detail": "auto"},
    ]
    record = store.create("m", [{"role": "user", "content": parts, "type": "message", "id": "msg_x"}])
    assert thaw_item(record.input[0]) == {"role": "user", "content": parts, "type": "message", "id": "msg_x"}


@pytest.mark.parametrize(
    ("input", "fragment"),
    [
        ({"role": "user", "content": "a dict, not a list"}, "must be a list of item objects"),
        (None, "must be a list of item objects"),
        (5, "must be a list of item objects"),
        (b"bytes", "must be a list of item objects"),
        (["not an item"], r"input\[0\] must be an item object"),
        ([{"content": "x"}], "neither a 'type' nor a 'role'"),
        ([{"type": "", "role": "user", "content": "x"}], "'type' that is not a non-empty string"),
        ([{"type": 5, "role": "user", "content": "x"}], "'type' that is not a non-empty string"),
        ([{"role": "tool", "content": "x"}], "role 'tool' is not one of"),
        ([{"type": "message", "content": "x"}], "role None is not one of"),
        ([{"role": "user"}], "content must be a string or a list of parts"),
        ([{"role": "user", "content": {"text": "x"}}], "content must be a string or a list of parts"),
        ([{"role": "user", "content": 5}], "content must be a string or a list of parts"),
        ([{"role": "user", "content": "x", "id": "bad id"}], "not a valid id"),
        ([{"role": "user", "content": "x", "id": 7}], "must be a string"),
        ([{"role": "user", "content": "x", "extra": {1, 2}}], "must be JSON"),
    ],
)
def test_malformed_input_is_refused_and_nothing_is_stored(store: BaseStore, input: Any, fragment: str) -> None:
    store.create("m", "before")
    before = snapshot(store)
    with pytest.raises(InvalidArgument, match=fragment):
        store.create("m", input)
    assert snapshot(store) == before


@pytest.mark.parametrize("role", [["user"], {"r": "user"}])
def test_an_unhashable_role_is_refused_with_invalid_argument(store: BaseStore, role: Any) -> None:
    before = snapshot(store)
    with pytest.raises(InvalidArgument):
        store.create("m", [{"role": role, "content": "x"}])
    with pytest.raises(InvalidArgument):
        store.create("m", [{"type": "message", "role": role, "content": "x"}])
    assert snapshot(store) == before


@given(inputs())
def test_normalized_input_is_a_fixed_point(value: Any) -> None:
    record = make(input=[{"role": "user", "content": value}] if isinstance(value, str) else value)
    again = make(input=json.loads(to_json_text(record.input)))
    assert again.input == record.input


# --------------------------------------------------------------------------- the input items page


@per_example_store
@given(
    items=input_item_lists(min_size=1, max_size=12),
    limit=st.integers(min_value=1, max_value=5),
    order=st.sampled_from(["asc", "desc"]),
)
def test_input_items_pages_validate_with_the_sdk_and_the_open_responses_schema(
    make_store: StoreFactory, items: list[dict[str, Any]], limit: int, order: str
) -> None:
    store = make_store(clock=FakeClock())
    record = store.create("m", items)
    expected = [item["id"] for item in record.input]
    if order == "desc":
        expected.reverse()
    seen: list[str] = []
    after = None
    while True:
        page = store.input_items(record.id, limit=limit, order=order, after=after)
        body = page.to_openai()
        assert body == _wire.input_items_page(page), "the store lists items as the server's route does"
        listed = check_item_page(body)
        ids = [item.id for item in listed.data]
        assert ids == [item["id"] for item in page.data]
        assert listed.first_id == ids[0]
        assert listed.last_id == ids[-1]
        assert len(ids) <= limit
        seen.extend(ids)
        assert listed.has_more is (len(seen) < len(expected))
        if not listed.has_more:
            break
        after = page.last_id
    assert seen == expected
    store._check()


@per_example_store
@given(
    st.fixed_dictionaries(
        {
            "input": input_item_lists(max_size=4),
            "metadata": metadata(max_pairs=3),
            "tools": st.lists(function_tools(), max_size=2),
            "extra": extras(),
            "instructions": st.none() | texts(),
        }
    ),
    output_item_lists(),
    usage_dicts(),
)
def test_records_made_through_the_store_validate_with_the_sdk_and_the_open_responses_schema(
    make_store: StoreFactory, fields: dict[str, Any], output: list[dict[str, Any]], usage: dict[str, Any]
) -> None:
    store = make_store(clock=FakeClock())
    record = store.create("m", **fields)
    check_response(record.to_openai())
    done = store.complete(record.id, output, usage=usage)
    parsed = check_response(done.to_openai())
    listed = store.list(limit=100).to_openai()
    assert listed["data"] == [done.to_openai()]
    for item in done.input + done.output:
        check_item(_wire.item_json(item))
    assert parsed.status == "completed"
    assert done.completed_at is not None
    assert parsed.completed_at == int(done.completed_at)
    assert [item.id for item in parsed.output] == [item["id"] for item in done.output]
    assert store.get(record.id) == done
    assert store.get(record.id).to_openai() == done.to_openai()


# --------------------------------------------------------------------------- metadata


def _metadata_via_constructor(store: BaseStore, value: Any) -> ResponseRecord:
    return make(metadata=value)


def _metadata_via_create(store: BaseStore, value: Any) -> ResponseRecord:
    return store.create("m", "x", metadata=value)


def _metadata_via_update(store: BaseStore, value: Any) -> ResponseRecord:
    target = store.list(limit=1, order="asc").data[0]
    return store.update(target.id, metadata=value)


METADATA_ENTRY_POINTS = [_metadata_via_constructor, _metadata_via_create, _metadata_via_update]


@pytest.mark.parametrize("entry", METADATA_ENTRY_POINTS)
@pytest.mark.parametrize(
    "value",
    [
        {f"k{i}": "v" for i in range(16)},
        {"k" * 64: "v"},
        {"k": "v" * 512},
        {"": ""},
        {},
        None,
    ],
)
def test_metadata_at_the_limits_is_accepted(
    store: BaseStore, entry: Callable[[BaseStore, Any], ResponseRecord], value: Any
) -> None:
    store.create("m", "existing")
    record = entry(store, value)
    assert record.metadata == (value or {})
    assert isinstance(record.metadata, FrozenDict)


@pytest.mark.parametrize("entry", METADATA_ENTRY_POINTS)
@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({f"k{i}": "v" for i in range(17)}, "metadata has 17 pairs; at most 16"),
        ({"k" * 65: "v"}, "is 65 characters; at most 64"),
        ({"k": "v" * 513}, "metadata value for 'k' is 513 characters; at most 512"),
        ({"k": 5}, "must be strings"),
        ({"k": None}, "must be strings"),
        ({"k": ["v"]}, "must be strings"),
        ({"k": True}, "must be strings"),
        ({5: "v"}, "must be strings"),
        ([("k", "v")], "metadata must be a mapping"),
        ("k=v", "metadata must be a mapping"),
    ],
)
def test_metadata_beyond_the_limits_is_refused_and_named(
    store: BaseStore, entry: Callable[[BaseStore, Any], ResponseRecord], value: Any, fragment: str
) -> None:
    store.create("m", "existing")
    before = snapshot(store)
    with pytest.raises(InvalidArgument, match=re.escape(fragment)):
        entry(store, value)
    assert snapshot(store) == before


@given(metadata())
def test_generated_metadata_is_accepted_verbatim(value: dict[str, str]) -> None:
    record = make(metadata=value)
    assert record.metadata == value
    assert record.to_openai()["metadata"] == value


# --------------------------------------------------------------------------- usage


def test_usage_defaults_fill_what_the_sdk_requires() -> None:
    record = make(usage={"input_tokens": 3, "output_tokens": 4})
    assert record.to_openai()["usage"] == {
        "input_tokens": 3,
        "output_tokens": 4,
        "total_tokens": 7,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    }
    assert make().usage is None


def test_usage_given_counts_are_kept() -> None:
    usage = {
        "input_tokens": 10,
        "output_tokens": 5,
        "total_tokens": 15,
        "input_tokens_details": {"cached_tokens": 2},
        "output_tokens_details": {"reasoning_tokens": 1},
    }
    record = make(usage=usage)
    assert record.to_openai()["usage"] == {
        **usage,
        "input_tokens_details": {"cached_tokens": 2, "cache_write_tokens": 0},
    }


@given(usage_dicts())
def test_generated_usage_validates_with_the_sdk(usage: dict[str, Any]) -> None:
    record = make(status="completed", completed_at=1_700_000_001.0, usage=usage)
    parsed = Response.model_validate(record.to_openai())
    assert parsed.usage is not None
    assert parsed.usage.input_tokens == usage["input_tokens"]
    assert parsed.usage.total_tokens == usage.get("total_tokens", usage["input_tokens"] + usage["output_tokens"])
    assert parsed.usage.input_tokens_details.cached_tokens == usage.get("input_tokens_details", {}).get(
        "cached_tokens", 0
    )


@pytest.mark.parametrize(
    ("usage", "fragment"),
    [
        ({"output_tokens": 1}, "usage['input_tokens'] must be a non-negative int"),
        ({"input_tokens": 1}, "usage['output_tokens'] must be a non-negative int"),
        ({"input_tokens": -1, "output_tokens": 1}, "usage['input_tokens'] must be a non-negative int"),
        ({"input_tokens": True, "output_tokens": 1}, "usage['input_tokens'] must be a non-negative int"),
        ({"input_tokens": 1.0, "output_tokens": 1}, "usage['input_tokens'] must be a non-negative int"),
        ({"input_tokens": "1", "output_tokens": 1}, "usage['input_tokens'] must be a non-negative int"),
        ({"input_tokens": 1, "output_tokens": None}, "usage['output_tokens'] must be a non-negative int"),
        ({"input_tokens": 1, "output_tokens": 1, "total_tokens": -2}, "usage['total_tokens']"),
        ({"input_tokens": 1, "output_tokens": 1, "total_tokens": "2"}, "usage['total_tokens']"),
        ({"input_tokens": 1, "output_tokens": 1, "total_tokens": False}, "usage['total_tokens']"),
        ({"input_tokens": 1, "output_tokens": 1, "input_tokens_details": []}, "usage['input_tokens_details']"),
        ({"input_tokens": 1, "output_tokens": 1, "output_tokens_details": 0}, "usage['output_tokens_details']"),
        ([1, 2], "usage must be a JSON object"),
        ("10 tokens", "usage must be a JSON object"),
    ],
)
def test_invalid_usage_is_refused(store: BaseStore, usage: Any, fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(fragment)):
        make(usage=usage)
    record = store.create("m", "x")
    before = snapshot(store)
    with pytest.raises(InvalidArgument, match=re.escape(fragment)):
        store.complete(record.id, usage=usage)
    with pytest.raises(InvalidArgument, match=re.escape(fragment)):
        store.update(record.id, usage=usage)
    assert snapshot(store) == before


@pytest.mark.parametrize(
    "details",
    [
        {"input_tokens_details": {"cached_tokens": -1}},
        {"input_tokens_details": {"cached_tokens": "many"}},
        {"input_tokens_details": {"cache_write_tokens": 1.5}},
        {"output_tokens_details": {"reasoning_tokens": None}},
        {"output_tokens_details": {"reasoning_tokens": True}},
    ],
)
def test_usage_detail_counts_must_be_non_negative_ints(details: dict[str, Any]) -> None:
    # Otherwise to_openai() produces usage the SDK rejects.
    with pytest.raises(InvalidArgument):
        make(usage={"input_tokens": 1, "output_tokens": 1, **details})


# --------------------------------------------------------------------------- error and incomplete_details


def test_error_string_is_a_server_error_and_objects_are_kept() -> None:
    assert make(status="failed", error="boom").error == {"code": "server_error", "message": "boom"}
    error = {"code": "rate_limit_exceeded", "message": "slow down", "param": None}
    record = make(status="failed", error=error)
    assert record.error == error
    assert Response.model_validate(record.to_openai()).error.code == "rate_limit_exceeded"  # type: ignore[union-attr]
    assert make().error is None


@given(error_dicts())
def test_generated_errors_validate_with_the_sdk(error: dict[str, Any]) -> None:
    parsed = Response.model_validate(make(status="failed", error=error).to_openai())
    assert parsed.error is not None
    assert parsed.error.code == error["code"]
    assert parsed.error.message == error["message"]


@pytest.mark.parametrize(
    ("error", "fragment"),
    [
        ({"message": "no code"}, "error['code'] must be a string"),
        ({"code": 5, "message": "x"}, "error['code'] must be a string"),
        ({"code": "server_error"}, "error['message'] must be a string"),
        ({"code": "server_error", "message": None}, "error['message'] must be a string"),
        ([{"code": "x", "message": "y"}], "error must be a JSON object"),
        (5, "error must be a JSON object"),
        ({"code": "x", "message": "y", "nan": float("nan")}, "finite"),
    ],
)
def test_invalid_error_is_refused(store: BaseStore, error: Any, fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(fragment)):
        make(status="failed", error=error)
    record = store.create("m", "x")
    before = snapshot(store)
    with pytest.raises(InvalidArgument, match=re.escape(fragment)):
        store.fail(record.id, error)
    assert snapshot(store) == before


def test_fail_needs_an_error(store: BaseStore) -> None:
    record = store.create("m", "x")
    before = snapshot(store)
    with pytest.raises(InvalidArgument, match="fail needs an error"):
        store.fail(record.id, None)  # type: ignore[arg-type]
    assert snapshot(store) == before


@pytest.mark.parametrize("reason", ["max_output_tokens", "content_filter"])
def test_incomplete_reason_string_and_object(store: BaseStore, reason: str) -> None:
    assert make(status="incomplete", incomplete_details=reason).incomplete_details == {"reason": reason}
    assert make(status="incomplete", incomplete_details={"reason": reason}).incomplete_details == {"reason": reason}
    record = store.create("m", "x")
    done = store.mark_incomplete(record.id, reason)
    assert done.incomplete_details == {"reason": reason}
    parsed = Response.model_validate(done.to_openai())
    assert parsed.incomplete_details is not None
    assert parsed.incomplete_details.reason == reason


@pytest.mark.parametrize(
    ("details", "fragment"),
    [
        ("", "incomplete_details['reason'] must be a non-empty string"),
        ({}, "incomplete_details['reason'] must be a non-empty string"),
        ({"reason": None}, "incomplete_details['reason'] must be a non-empty string"),
        ({"reason": 5}, "incomplete_details['reason'] must be a non-empty string"),
        ({"reason": ""}, "incomplete_details['reason'] must be a non-empty string"),
        (["max_output_tokens"], "incomplete_details must be a JSON object"),
        (5, "incomplete_details must be a JSON object"),
    ],
)
def test_invalid_incomplete_details_are_refused(store: BaseStore, details: Any, fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(fragment)):
        make(status="incomplete", incomplete_details=details)
    record = store.create("m", "x")
    before = snapshot(store)
    with pytest.raises(InvalidArgument, match=re.escape(fragment)):
        store.mark_incomplete(record.id, details)
    assert snapshot(store) == before


def test_mark_incomplete_needs_a_reason(store: BaseStore) -> None:
    record = store.create("m", "x")
    before = snapshot(store)
    with pytest.raises(InvalidArgument, match="needs a reason"):
        store.mark_incomplete(record.id, None)  # type: ignore[arg-type]
    assert snapshot(store) == before


# --------------------------------------------------------------------------- extra and the OpenAI defaults


def test_without_extra_the_openai_defaults_are_reported() -> None:
    record = make()
    assert record.extra == {}
    data = record.to_openai()
    assert data["parallel_tool_calls"] is True
    assert data["tool_choice"] == "auto"


def test_extra_holding_the_defaults_stores_nothing() -> None:
    record = make(extra={"parallel_tool_calls": True, "tool_choice": "auto"})
    assert record.extra == {}
    assert record == make()


@pytest.mark.parametrize(
    "extra",
    [
        {"parallel_tool_calls": False},
        {"tool_choice": "required"},
        {"tool_choice": "none", "parallel_tool_calls": False},
        {"tool_choice": {"type": "function", "name": "lookup"}},
    ],
)
def test_extra_overriding_the_defaults_round_trips(extra: dict[str, Any]) -> None:
    record = make(extra=extra)
    assert record.extra == extra
    data = record.to_openai()
    for key, value in extra.items():
        assert data[key] == thaw(value)
    again = ResponseRecord.from_openai(data)
    assert again == record
    assert again.to_openai() == data
    Response.model_validate(data)


def test_extra_fields_round_trip_through_the_store(store: BaseStore) -> None:
    extra = {"temperature": 0.25, "text": {"format": {"type": "text"}}, "x_trace": [1, {"a": None}], "user": "u1"}
    record = store.create("m", "x", extra=extra)
    for key, value in extra.items():
        assert record.to_openai()[key] == value
        assert store.get(record.id).to_openai()[key] == value
    parsed = Response.model_validate(record.to_openai())
    assert parsed.temperature == 0.25
    assert parsed.user == "u1"
    updated = store.update(record.id, extra={"top_p": 0.5})
    assert updated.extra == {"top_p": 0.5}
    assert "x_trace" not in updated.to_openai()
    assert updated.to_openai()["temperature"] == 1.0  # no longer set: OpenAI's default again


def test_from_openai_puts_unmodelled_fields_in_extra() -> None:
    data = make().to_openai()
    data.update(temperature=0.7, truncation="auto", x_vendor={"k": [1, 2]})
    record = ResponseRecord.from_openai(data)
    assert record.extra == {"temperature": 0.7, "truncation": "auto", "x_vendor": {"k": (1, 2)}}
    assert record.to_openai() == data


@pytest.mark.parametrize(
    "name",
    [
        "id",
        "object",
        "created_at",
        "model",
        "status",
        "output",
        "previous_response_id",
        "instructions",
        "tools",
        "metadata",
        "usage",
        "error",
        "incomplete_details",
        "background",
        "completed_at",
        "input",
        "owner",
        "version",
    ],
)
def test_extra_must_not_hold_a_field_the_record_models(store: BaseStore, name: str) -> None:
    message = f"extra must not contain fields the record models itself: ['{name}']"
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        make(extra={name: None})
    before = snapshot(store)
    with pytest.raises(InvalidArgument, match="extra must not contain"):
        store.create("m", "x", extra={name: None})
    assert snapshot(store) == before


def test_refused_values_are_response_store_errors() -> None:
    with pytest.raises(ResponseStoreError):
        make(metadata={"k": 1})
