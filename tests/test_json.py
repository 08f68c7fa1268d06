"""Freezing caller JSON (``responsestore._json``): exact round trips, refusals, immutability, FrozenDict."""

from __future__ import annotations

import copy
import enum
import json
import math
import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from responsestore import FrozenDict, InvalidArgument, ResponseStoreError
from responsestore._json import MAX_DEPTH, freeze, freeze_object, thaw, to_json_text
from responsestore.testing.strategies import json_values, non_json_values


def same_json(a: Any, b: Any) -> bool:
    """Type-strict JSON equality: unlike ``==``, ``True`` differs from ``1`` and ``1`` from ``1.0``."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return False
    return bool(a == b)


def assert_frozen(value: Any) -> None:
    """Every container inside ``value`` is a tuple or a FrozenDict, every leaf a plain JSON scalar."""
    if isinstance(value, FrozenDict):
        for key, item in value.items():
            assert type(key) is str
            assert_frozen(item)
    elif isinstance(value, tuple):
        for item in value:
            assert_frozen(item)
    else:
        assert value is None or type(value) in (bool, int, float, str), f"not frozen: {value!r}"


def nested_lists(depth: int, leaf: Any = 0) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def nested_dicts(depth: int, leaf: Any = 0) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"k": value}
    return value


# --------------------------------------------------------------------------- round trips


@given(json_values())
def test_thaw_of_freeze_is_the_same_json_exactly(value: Any) -> None:
    frozen = freeze(value)
    assert_frozen(frozen)
    thawed = thaw(frozen)
    assert same_json(thawed, value), (thawed, value)


@given(json_values())
def test_freeze_is_idempotent_and_thaw_is_fresh(value: Any) -> None:
    frozen = freeze(value)
    assert freeze(frozen) == frozen
    if isinstance(frozen, FrozenDict):
        assert freeze(frozen) is frozen
    first, second = thaw(frozen), thaw(frozen)
    assert same_json(first, second)
    if isinstance(first, (dict, list)):
        assert first is not second
        assert first is not value


@given(json_values())
def test_to_json_text_is_compact_json_of_the_value(value: Any) -> None:
    text = to_json_text(freeze(value))
    assert text == json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert same_json(json.loads(text), value)


def test_scalars_keep_their_exact_type() -> None:
    class Level(enum.IntEnum):
        HIGH = 3

    assert freeze(value=True) is True
    assert type(freeze(1)) is int
    assert type(freeze(1.0)) is float
    assert type(freeze(Level.HIGH)) is int
    assert freeze(Level.HIGH) == 3
    assert freeze(None) is None
    assert freeze("") == ""
    assert freeze(-0.0) == 0.0
    assert math.copysign(1, freeze(-0.0)) == -1
    assert freeze(2**100) == 2**100


def test_containers_become_tuples_and_frozendicts() -> None:
    frozen = freeze({"a": [1, {"b": (2, 3)}], "c": {}})
    assert isinstance(frozen, FrozenDict)
    assert frozen["a"] == (1, FrozenDict({"b": (2, 3)}))
    assert isinstance(frozen["a"][1], FrozenDict)
    assert frozen["c"] == FrozenDict()
    assert thaw(frozen) == {"a": [1, {"b": [2, 3]}], "c": {}}


# --------------------------------------------------------------------------- caller mutation


def _mutate_everything(value: Any) -> None:
    """Change every container inside ``value`` in place."""
    if isinstance(value, dict):
        for item in list(value.values()):
            _mutate_everything(item)
        value.clear()
        value["mutated"] = True
    elif isinstance(value, list):
        for item in value:
            _mutate_everything(item)
        value.append("mutated")


@given(json_values())
def test_mutating_the_callers_value_after_freeze_changes_nothing(value: Any) -> None:
    original = copy.deepcopy(value)
    frozen = freeze(value)
    _mutate_everything(value)
    assert same_json(thaw(frozen), original)


@given(json_values())
def test_mutating_a_thawed_value_changes_nothing(value: Any) -> None:
    frozen = freeze(value)
    thawed = thaw(frozen)
    _mutate_everything(thawed)
    assert same_json(thaw(frozen), value)


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_refused(value: float) -> None:
    with pytest.raises(InvalidArgument, match="finite"):
        freeze(value)
    with pytest.raises(InvalidArgument, match="finite"):
        freeze({"a": [1, value]})


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({1, 2}, "set"),
        (frozenset({1}), "frozenset"),
        (b"bytes", "bytes"),
        (bytearray(b"x"), "bytearray"),
        (object(), "object"),
        (1 + 2j, "complex"),
        (range(3), "range"),
    ],
)
def test_non_json_types_are_refused_and_named(value: Any, fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=fragment):
        freeze(value)
    with pytest.raises(InvalidArgument, match=fragment):
        freeze([{"a": value}])


@pytest.mark.parametrize("key", [1, None, 1.5, (1, 2), True])
def test_non_string_keys_are_refused(key: Any) -> None:
    with pytest.raises(InvalidArgument, match="non-string key"):
        freeze({key: 1})
    with pytest.raises(InvalidArgument, match="non-string key"):
        freeze({"outer": [{key: 1}]})


def test_error_message_names_where_the_bad_value_is() -> None:
    with pytest.raises(InvalidArgument) as caught:
        freeze({"a": [1, {"b": math.nan}]}, "metadata")
    assert "metadata['a'][1]['b']" in str(caught.value)


def test_cycles_are_refused_not_recursion_errors() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    with pytest.raises(InvalidArgument, match="nested more than 64"):
        freeze(loop)
    mapping: dict[str, Any] = {}
    mapping["self"] = mapping
    with pytest.raises(InvalidArgument, match="nested more than 64"):
        freeze(mapping)


@pytest.mark.parametrize("nest", [nested_lists, nested_dicts])
def test_nesting_limit_is_exactly_64_levels(nest: Any) -> None:
    assert MAX_DEPTH == 64
    assert thaw(freeze(nest(64))) == nest(64)
    with pytest.raises(InvalidArgument, match="nested more than 64"):
        freeze(nest(65))


@given(non_json_values())
def test_every_non_json_value_is_refused_with_invalid_argument(value: Any) -> None:
    with pytest.raises(InvalidArgument) as caught:
        freeze(value)
    assert isinstance(caught.value, ResponseStoreError)
    assert isinstance(caught.value, ValueError)


def test_freeze_object_requires_a_mapping() -> None:
    assert freeze_object({"a": [1]}, "tools[0]") == FrozenDict({"a": (1,)})
    for value in ([], "text", 1, None, ({"a": 1},)):
        with pytest.raises(InvalidArgument, match=r"tools\[0\] must be a JSON object"):
            freeze_object(value, "tools[0]")


def test_freeze_does_not_trust_a_frozendict_built_from_mutable_values() -> None:
    # FrozenDict is public and its constructor does not freeze, so freeze must not pass one through unchecked:
    # otherwise a list inside it stays mutable (and non-JSON values get in).
    inner = [1, 2]
    frozen = freeze({"x": FrozenDict({"list": inner})})
    inner.append(3)
    assert thaw(frozen) == {"x": {"list": [1, 2]}}
    assert_frozen(frozen)
    with pytest.raises(InvalidArgument):
        freeze(FrozenDict({"nan": math.nan}))
    with pytest.raises(InvalidArgument):
        freeze(FrozenDict({1: "non-string key"}))  # type: ignore[dict-item]


# --------------------------------------------------------------------------- FrozenDict


def test_frozendict_equals_dicts_with_the_same_items() -> None:
    frozen = freeze({"a": 1, "b": "x"})
    assert frozen == {"a": 1, "b": "x"}
    assert frozen == {"b": "x", "a": 1}
    plain = {"a": 1, "b": "x"}
    assert plain == frozen  # dict.__eq__ defers to FrozenDict.__eq__
    assert frozen != {"a": 1}
    assert frozen != {"a": 2, "b": "x"}
    assert frozen != {"a": 1, "b": "x", "c": None}
    assert frozen == FrozenDict({"b": "x", "a": 1})
    assert frozen != [("a", 1), ("b", "x")]
    assert frozen != "ab"
    assert FrozenDict() == {}
    assert not FrozenDict()
    assert len(frozen) == 2
    assert sorted(frozen) == ["a", "b"]
    assert "a" in frozen
    assert "z" not in frozen
    assert frozen.get("z") is None
    with pytest.raises(KeyError):
        frozen["z"]


@given(st.dictionaries(st.text(max_size=5), json_values(8), max_size=6))
def test_equal_frozendicts_hash_equal_whatever_the_insertion_order(value: dict[str, Any]) -> None:
    forward = freeze(value)
    backward = freeze(dict(reversed(list(value.items()))))
    assert forward == backward
    assert hash(forward) == hash(backward)
    assert len({forward, backward}) == 1
    assert {forward: "v"}[backward] == "v"
    restored = pickle.loads(pickle.dumps(forward))  # noqa: S301 - our own bytes, just produced
    assert restored == forward
    assert isinstance(restored, FrozenDict)
    assert same_json(thaw(restored), thaw(forward))


def test_frozendict_cannot_be_changed() -> None:
    frozen = freeze({"a": [1], "b": {"c": 2}})
    before = thaw(frozen)
    with pytest.raises(TypeError):
        frozen["a"] = 2
    with pytest.raises(TypeError):
        del frozen["a"]
    with pytest.raises(AttributeError):
        frozen.extra = 1  # type: ignore[attr-defined]
    mutations: list[Any] = [
        lambda: frozen.update({"z": 1}),
        lambda: frozen.update(z=1),
        lambda: frozen.pop("a"),
        lambda: frozen.pop("missing", None),
        frozen.popitem,
        frozen.clear,
        lambda: frozen.setdefault("z", 1),
        lambda: frozen.setdefault("a"),
        lambda: frozen.__ior__({"z": 1}),
    ]
    for mutate in mutations:
        with pytest.raises(TypeError, match=r"read-only .*\.thaw\(\) returns a mutable copy"):
            mutate()
    frozen.__init__({"z": 1})  # type: ignore[misc]  # the work is done in __new__: this changes nothing
    with pytest.raises(TypeError):
        frozen |= {"z": 1}
    with pytest.raises(AttributeError):
        frozen["a"].append(2)
    with pytest.raises(TypeError):
        frozen["b"]["c"] = 3
    assert same_json(thaw(frozen), before)


def test_frozendict_is_a_dict_that_json_takes_directly() -> None:
    frozen = freeze({"a": [1, {"b": None}], "c": "é"})
    assert isinstance(frozen, dict)
    assert json.dumps(frozen) == json.dumps({"a": [1, {"b": None}], "c": "é"})
    assert json.dumps(frozen, sort_keys=True, indent=1) == json.dumps(thaw(frozen), sort_keys=True, indent=1)
    assert dict(frozen) == {"a": (1, FrozenDict({"b": None})), "c": "é"}
    assert type(dict(frozen)) is dict
    assert type(frozen.copy()) is dict
    assert type(frozen | {"d": 1}) is dict
    assert {**frozen, "d": 1} == {"a": (1, {"b": None}), "c": "é", "d": 1}


def test_frozendict_thaw_is_a_fresh_mutable_deep_copy() -> None:
    frozen = freeze({"a": [1, {"b": None}]})
    mutable = frozen.thaw()
    assert same_json(mutable, {"a": [1, {"b": None}]})
    mutable["a"][1]["b"] = 2
    mutable["x"] = 1
    assert frozen == {"a": [1, {"b": None}]}
    assert frozen.thaw() is not frozen.thaw()


def test_frozendict_copies_are_itself_and_pickles_stay_frozen() -> None:
    frozen = freeze({"a": [1, {"b": None}]})
    assert copy.copy(frozen) is frozen
    assert copy.deepcopy(frozen) is frozen
    assert copy.deepcopy({"x": frozen})["x"] is frozen
    restored = pickle.loads(pickle.dumps(frozen))  # noqa: S301 - our own bytes, just produced
    assert type(restored) is FrozenDict
    assert restored == frozen
    assert_frozen(restored)


def test_frozendict_constructors_freeze_what_they_are_given() -> None:
    built = FrozenDict({"a": [1]})
    assert_frozen(built)
    assert built["a"] == (1,)
    keys = FrozenDict.fromkeys(["x", "y"], [1])
    assert type(keys) is FrozenDict
    assert keys == {"x": [1], "y": [1]}
    assert_frozen(keys)
    with pytest.raises(InvalidArgument):
        FrozenDict({"a": {1, 2}})


def test_frozendict_equality_is_symmetric_and_ne_is_its_negation() -> None:
    frozen = freeze({"a": [1, 2]})
    for other, equal in (({"a": [1, 2]}, True), ({"a": (1, 2)}, True), ({"a": [1]}, False), ({}, False)):
        assert (frozen == other) is equal
        assert (other == frozen) is equal
        assert (frozen != other) is not equal
        assert (other != frozen) is not equal
    assert frozen != {"a": {1, 2}}  # not JSON: unequal, not an error


def test_frozendict_repr_shows_its_items() -> None:
    assert repr(FrozenDict({"a": 1})) == "FrozenDict({'a': 1})"


def test_frozendict_cannot_be_subclassed() -> None:
    with pytest.raises(TypeError, match="cannot be subclassed"):

        class Mutable(FrozenDict):  # a subclass could add mutators or state the store cannot see
            pass
