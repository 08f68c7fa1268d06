"""What the store returns is the stored, read-only data: changing it raises and changes nothing, on every backend.

Records, their items and metadata, ``conversation`` items, ``input_items`` and ``list`` pages, ``stats``: each is
returned as stored (no copy), so each must refuse every change; each must also serialize with plain
``json.dumps``, since servers write them out as they are.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from responsestore import BaseStore, FrozenDict
from responsestore._json import freeze


def _chain(store: BaseStore) -> tuple[str, str]:
    first = store.create(
        "m",
        [{"id": "in_1", "role": "user", "content": [{"type": "input_text", "text": "q1"}]}],
        metadata={"k": "v"},
        tools=[{"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}],
    )
    store.complete(
        first.id,
        [{"id": "out_1", "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "a1"}]}],
        usage={"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
    )
    second = store.create("m", [{"id": "in_2", "role": "user", "content": "q2"}], previous_response_id=first.id)
    return first.id, second.id


def _returned(store: BaseStore, first: str, second: str) -> list[Any]:
    """Everything the read methods return that holds stored JSON."""
    record = store.get(first)
    context = store.conversation(second)
    items = store.input_items(first)
    listed = store.list()
    values: list[Any] = [record.input, record.output, record.tools, record.metadata, record.usage, record.extra]
    values += [*context, *items.data, *(r.metadata for r in listed.data), store.stats().by_status]
    return values


def _containers(value: Any) -> list[Any]:
    """``value`` and every dict and list-like container inside it."""
    found = [value]
    children = value.values() if isinstance(value, dict) else value if isinstance(value, tuple) else ()
    for child in children:
        if isinstance(child, (dict, tuple)):
            found += _containers(child)
    return found


def _mutations(container: Any) -> list[Callable[[], object]]:
    if isinstance(container, tuple):
        return [lambda: container.append(1), lambda: container.__setitem__(0, 1)]  # type: ignore[attr-defined]
    key = next(iter(container), "k")
    return [
        lambda: container.__setitem__(key, 1),
        lambda: container.__delitem__(key),
        lambda: container.update({key: 1}),
        lambda: container.update(new=1),
        lambda: container.pop(key),
        container.popitem,
        container.clear,
        lambda: container.setdefault("new", 1),
        lambda: container.__ior__({"new": 1}),
    ]


def test_changing_anything_returned_raises_and_changes_nothing(store: BaseStore) -> None:
    first, second = _chain(store)
    before = [store.get(first).to_dict(), store.get(second).to_dict()]
    context_before = json.dumps(store.conversation(second))
    tried = 0
    for value in _returned(store, first, second):
        for container in _containers(value):
            assert isinstance(container, (FrozenDict, tuple)), f"{type(container).__name__} returned: {container!r}"
            for mutate in _mutations(container):
                with pytest.raises((TypeError, AttributeError)):
                    mutate()
                tried += 1
    assert tried > 100
    assert [store.get(first).to_dict(), store.get(second).to_dict()] == before
    assert json.dumps(store.conversation(second)) == context_before
    store._check()


def test_conversation_and_page_items_are_the_stored_items(store: BaseStore) -> None:
    first, second = _chain(store)
    record = store.get(first)
    context = store.conversation(second)
    assert context[:2] == (*record.input, *record.output)
    assert all(type(item) is FrozenDict for item in context)
    assert all(type(item) is FrozenDict for item in store.input_items(first).data)


def test_every_returned_value_serializes_with_plain_json_dumps(store: BaseStore) -> None:
    first, second = _chain(store)
    for value in _returned(store, first, second):
        assert freeze(json.loads(json.dumps(value))) == value
    context = store.conversation(second)
    assert json.loads(json.dumps(context)) == [
        {"id": "in_1", "role": "user", "content": [{"type": "input_text", "text": "q1"}], "type": "message"},
        json.loads(json.dumps(store.get(first).output[0])),
        {"id": "in_2", "role": "user", "content": [{"type": "input_text", "text": "q2"}], "type": "message"},
    ]
    assert json.loads(json.dumps(store.get(first).to_openai()))["id"] == first
    assert json.loads(json.dumps(store.input_items(first).to_openai()))["data"][0]["id"] == "in_1"
    assert json.loads(json.dumps(store.list().to_openai()))["object"] == "list"


def test_a_mutable_copy_is_one_call_away_and_independent(store: BaseStore) -> None:
    first, second = _chain(store)
    item = store.conversation(second)[0]
    mutable = item.thaw()  # type: ignore[attr-defined]
    mutable["content"].append({"type": "input_text", "text": "more"})
    mutable["role"] = "system"
    assert type(mutable) is dict
    assert type(mutable["content"]) is list
    shallow = dict(item)
    shallow["role"] = "system"
    assert copy.deepcopy(item) is item
    as_json = store.get(first).to_openai()
    as_json["metadata"]["k"] = "changed"
    as_json["output"].clear()
    assert store.conversation(second)[0] == item
    assert store.conversation(second)[0]["role"] == "user"
    assert store.get(first).metadata == {"k": "v"}
    assert len(store.get(first).output) == 1
