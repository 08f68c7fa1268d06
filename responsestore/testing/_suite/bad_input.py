"""Fuzzing every public method with bad input: only ResponseStoreErrors escape, and a refusal changes nothing.

Each example opens a fresh store holding a few records (every status, two owners, a chain), calls one public
method with hypothesis-chosen arguments (a mix of junk and plausible values, so checks after the first one are
reached too), and then:

- the call either returns, or raises a :class:`~responsestore.ResponseStoreError`; a ``TypeError`` is allowed
  only when the arguments do not fit the method's signature at all;
- after a refused call the store is exactly as before: every record (read with ``get``), every owner's full list,
  every event log and ``len``;
- ``store._check()`` holds either way.

Arguments are derived from each method's signature, so a parameter added later gets fuzzed too.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from responsestore import BaseStore, ResponseStoreError
from responsestore.testing._clock import FakeClock
from responsestore.testing.strategies import (
    error_dicts,
    extras,
    function_tools,
    incomplete_reasons,
    inputs,
    json_objects,
    junk,
    junk_items,
    metadata,
    output_item_lists,
    usage_dicts,
    weird_strings,
)

from .base import ContractBase, StoreFactory

OWNERS = (None, "alice", "bob")

# (owner, id) of every record the populated store holds.
KNOWN = [
    (None, "resp_queued"),
    (None, "resp_running"),
    (None, "resp_done"),
    (None, "resp_failed"),
    (None, "resp_cancelled"),
    (None, "resp_incomplete"),
    (None, "resp_next"),
    (None, "resp_shared"),
    ("alice", "resp_shared"),
    ("alice", "resp_alice"),
    ("alice", "resp_alice_next"),
]
ITEM_IDS = ["msg_a", "msg_b", "fc_1", "out_1"]
RECORD_IDS = [*sorted({record_id for _, record_id in KNOWN}), "resp_missing"]

METHODS = [
    "create",
    "get",
    "delete",
    "start",
    "complete",
    "fail",
    "mark_incomplete",
    "cancel",
    "update",
    "list",
    "input_items",
    "chain",
    "conversation",
    "contains",
    # Added to the API after the list above; fuzzed the same way (wait and stream block, so they are not here).
    "append_event",
    "events",
]


def _call_with_bad_input(store: BaseStore, name: str, data: st.DataObject) -> None:
    """Call the method ``name`` with drawn arguments: a refusal is a ResponseStoreError that changes nothing."""
    method = getattr(store, name)
    args, kwargs = data.draw(call_arguments(method), label="arguments")
    fits = fits_signature(method, args, kwargs)
    before = snapshot(store)
    try:
        result = method(*args, **kwargs)
    except ResponseStoreError:
        refused = True
    except TypeError:
        if fits:
            raise
        refused = True
    else:
        refused = False
        assert fits, "arguments that do not fit the signature were accepted"
    store._check()
    if refused or name in ("get", "list", "input_items", "chain", "conversation", "contains", "events"):
        assert snapshot(store) == before
    if not refused and name == "contains":
        assert result is (isinstance(args[0], str) and (kwargs.get("owner"), args[0]) in set(KNOWN))


def populate(store: BaseStore, clock: FakeClock) -> None:
    """Fill ``store`` with the records of ``KNOWN``: every status, two owners, a same id under both, chains."""

    def tick() -> None:
        clock.advance(1)

    store.create("m", "q", id="resp_queued", status="queued", background=True)
    tick()
    store.create(
        "m",
        [{"role": "user", "content": "a", "id": "msg_a"}, {"role": "user", "content": "b", "id": "msg_b"}],
        id="resp_running",
        metadata={"k": "v"},
        tools=[{"type": "function", "name": "f"}],
    )
    tick()
    store.create("m", "done", id="resp_done", metadata={"k": "v", "team": "x"})
    store.complete(
        "resp_done",
        [{"type": "function_call", "id": "fc_1", "call_id": "c", "name": "f", "arguments": "{}"}],
        usage={"input_tokens": 1, "output_tokens": 2},
    )
    tick()
    store.create("other-model", "f", id="resp_failed")
    store.fail("resp_failed", {"code": "server_error", "message": "boom"})
    tick()
    store.create("m", "c", id="resp_cancelled", background=True)
    store.cancel("resp_cancelled")
    tick()
    store.create("m", "i", id="resp_incomplete")
    store.mark_incomplete("resp_incomplete", "max_output_tokens")
    tick()
    store.create("m", "next", id="resp_next", previous_response_id="resp_done")
    store.complete("resp_next", [{"role": "assistant", "content": "hi", "id": "out_1"}])
    tick()
    store.create("m", "mine", id="resp_shared")
    store.create("m", "hers", id="resp_shared", owner="alice")
    tick()
    store.create("m", "a", id="resp_alice", owner="alice")
    store.complete("resp_alice", owner="alice")
    store.create("m", "a2", id="resp_alice_next", owner="alice", previous_response_id="resp_alice")


def snapshot(store: BaseStore) -> dict[str, Any]:
    """Everything observable about the store's contents."""
    state: dict[str, Any] = {"len": len(store)}
    for owner in OWNERS:
        listed: list[Any] = []
        after = None
        while True:
            page = store.list(limit=100, order="asc", after=after, owner=owner)
            listed.extend(record.to_dict() for record in page.data)
            if not page.has_more:
                break
            after = page.last_id
        state[f"list:{owner}"] = listed
    for owner, record_id in KNOWN + [(owner, "resp_missing") for owner in OWNERS]:
        key = f"{owner}:{record_id}"
        if store.contains(record_id, owner=owner):
            state[key] = store.get(record_id, owner=owner).to_dict()
            events = getattr(store, "events", None)
            if events is not None:
                state[f"events:{key}"] = events(record_id, owner=owner)
        else:
            state[key] = None
    return state


# --------------------------------------------------------------------------- argument strategies

plausible = st.sampled_from(
    [*RECORD_IDS, *ITEM_IDS, *OWNERS, "m", "queued", "in_progress", "completed", "asc", "desc", 1, 2, 20]
)

_ID = st.sampled_from(RECORD_IDS)

# Valid (or valid-looking) values per parameter name; every parameter also gets junk.
VALID: dict[str, st.SearchStrategy[Any]] = {
    "id": _ID,
    "owner": st.sampled_from(OWNERS),
    "expected_version": st.integers(min_value=1, max_value=4),
    "model": st.sampled_from(["m", "other-model"]),
    "input": inputs(),
    "instructions": st.none() | st.text(max_size=10),
    "previous_response_id": _ID,
    "tools": st.lists(function_tools(), max_size=2),
    "metadata": st.none() | metadata(max_pairs=2),
    "background": st.booleans(),
    "status": st.sampled_from(["queued", "in_progress", "completed", "failed", "cancelled", "incomplete"]),
    "extra": st.none() | extras(),
    "ttl": st.none() | st.floats(min_value=1, max_value=1e6),
    "event": json_objects(6),
    "starting_after": st.none() | st.integers(min_value=0, max_value=3),
    "output": output_item_lists(max_size=2),
    "usage": st.none() | usage_dicts(),
    "error": error_dicts() | st.text(max_size=10),
    "reason": incomplete_reasons(),
    "limit": st.integers(min_value=1, max_value=100),
    "after": st.sampled_from(RECORD_IDS + ITEM_IDS),
    "before": st.sampled_from(RECORD_IDS + ITEM_IDS),
    "order": st.sampled_from(["asc", "desc"]),
}

_ITEM_PARAMETERS = {"input", "output"}

# Field names ``update`` gets: the updatable ones, the fixed ones, its own parameters, and arbitrary text.
UPDATE_FIELDS = st.one_of(
    st.sampled_from(
        [
            "status",
            "model",
            "output",
            "instructions",
            "tools",
            "metadata",
            "usage",
            "error",
            "incomplete_details",
            "extra",
            "created_at",
            "completed_at",
            "version",
            "input",
            "previous_response_id",
            "background",
            "object",
        ]
    ),
    weird_strings(),
)

_JUNK = junk(plausible)
_JUNK_ITEMS = junk_items(plausible)


@functools.cache
def value_for(name: str) -> st.SearchStrategy[Any]:
    """A value for the parameter ``name``: valid, plausible-but-wrong, or junk (built once per name)."""
    bad = _JUNK_ITEMS if name in _ITEM_PARAMETERS else _JUNK
    if name == "incomplete_details":
        return st.one_of(incomplete_reasons(), bad)
    valid = VALID.get(name)
    return bad if valid is None else st.one_of(valid, bad)


@st.composite
def call_arguments(draw: st.DrawFn, method: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Arguments for ``method``: required parameters always, optional ones sometimes; ``**changes`` for update.

    Half the time every parameter but one is valid (a single fault, which reaches the checks that follow the
    first one); otherwise every parameter is drawn freely from valid and junk values.
    """
    parameters = list(inspect.signature(method).parameters.values())
    single_fault = draw(st.booleans())
    target = draw(st.sampled_from([p.name for p in parameters])) if single_fault else None

    def value(name: str) -> Any:
        if single_fault and name != target and name in VALID:
            return draw(VALID[name])
        return draw(value_for(name))

    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            names = draw(st.lists(UPDATE_FIELDS, max_size=3, unique=True))
            kwargs.update({name: draw(value_for(name)) for name in names})
        elif parameter.default is inspect.Parameter.empty:
            args.append(value(parameter.name))
        elif parameter.name == target or draw(st.booleans()):
            kwargs[parameter.name] = value(parameter.name)
    return tuple(args), kwargs


def fits_signature(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    try:
        inspect.signature(method).bind(*args, **kwargs)
    except TypeError:
        return False
    return True


# --------------------------------------------------------------------------- the fuzz test


ITEM_ENTRY_POINTS = {
    "create input": lambda store, items: store.create("m", items),
    "complete output": lambda store, items: store.complete("resp_running", items),
    "mark_incomplete output": lambda store, items: store.mark_incomplete(
        "resp_running", "content_filter", output=items
    ),
    "update output": lambda store, items: store.update("resp_running", output=items),
}


class BadInputTests(ContractBase):
    """Fuzzing every public method with bad input: only ResponseStoreErrors escape, and a refusal changes nothing."""

    @pytest.mark.parametrize("name", METHODS)
    def test_bad_input_raises_only_store_errors_and_changes_nothing(self, name: str) -> None:
        """Each example opens, populates, checks and closes its own store."""

        # Each example builds and populates a fresh store (a file, for SQLite), for each of ~20 methods and each
        # backend: a quarter of the profile's examples keeps the file within a few minutes in CI.
        @self.hypothesis(max(10, self.profile_examples() // 4))
        @given(data=st.data())
        def fuzz(data: st.DataObject) -> None:
            clock = FakeClock()
            with self.example_store(clock=clock) as store:
                populate(store, clock)
                store._check()
                _call_with_bad_input(store, name, data)

        fuzz()

    @pytest.mark.parametrize("entry", ITEM_ENTRY_POINTS)
    def test_malformed_items_raise_only_store_errors_and_change_nothing(self, entry: str) -> None:
        """Everything but the items is valid, so every example exercises item normalization."""

        @self.hypothesis(self.profile_examples())
        @given(items=junk_items(plausible))
        def fuzz(items: Any) -> None:
            with self.example_store(clock=FakeClock()) as store:
                store.create("m", "x", id="resp_running")
                before = snapshot(store)
                try:
                    ITEM_ENTRY_POINTS[entry](store, items)
                except ResponseStoreError:
                    assert snapshot(store) == before
                store._check()

        fuzz()

    def test_populated_store_is_as_described(self, new_store: StoreFactory) -> None:
        clock = FakeClock()
        store = new_store(clock=clock)
        populate(store, clock)
        state = snapshot(store)
        assert state["len"] == len(KNOWN)
        for owner, record_id in KNOWN:
            assert state[f"{owner}:{record_id}"]["id"] == record_id
        assert [r["id"] for r in state["list:alice"]] == ["resp_shared", "resp_alice", "resp_alice_next"]
        assert state["list:bob"] == []
        statuses = {r["id"]: r["status"] for r in state["list:None"]}
        assert statuses == {
            "resp_queued": "queued",
            "resp_running": "in_progress",
            "resp_done": "completed",
            "resp_failed": "failed",
            "resp_cancelled": "cancelled",
            "resp_incomplete": "incomplete",
            "resp_next": "completed",
            "resp_shared": "in_progress",
        }
