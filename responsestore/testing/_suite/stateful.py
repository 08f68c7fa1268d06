"""A real store and the plain ``StoreModel`` driven side by side by random call sequences, on every backend.

Every rule makes the same call on both and compares the outcome exactly: the returned record's fields, the page's
ids, records, ends and ``has_more``, or the exact exception type. After every step the invariant runs the
backend's ``_check()`` and compares every live record. The clock advances only in its own rule, and often by
zero or backwards, so many records share a timestamp: ties are where cursor paging goes wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from responsestore import BaseStore, ChainError, ResponseStoreError
from responsestore.testing._clock import FakeClock

from .base import ContractBase
from .model import STATUSES, ModelPage, StoreModel, observe, plain

MAX_CHAIN_DEPTH = 4  # small, so that chains deeper than the limit happen
#: Constructor arguments that only make a backend faster: durability is not what these tests check, and an fsync
#: per write would dominate their time.
OWNERS = (None, "alice", "bob")
ID_POOL = ("r0", "r1", "r2", "r3", "r4")  # few explicit ids: clashes and re-creations after delete are common
MODELS = ("gpt-a", "gpt-b")
ITEM_IDS = ("i0", "i1", "i2", "i3")
UNKNOWN_ID = "never-created"
RIGHT = "right"  # stands for "the current version" in a version draw

owners = st.sampled_from(OWNERS)
picks = st.integers(min_value=0, max_value=10_000)
versions = st.one_of(st.none(), st.just(RIGHT), st.integers(min_value=1, max_value=4))
metadatas = st.one_of(
    st.none(),
    st.dictionaries(st.sampled_from(("k1", "k2")), st.sampled_from(("x", "y")), max_size=2),
)
metadata_filters = st.one_of(
    st.none(),
    st.dictionaries(st.sampled_from(("k1", "k2")), st.sampled_from(("x", "y")), min_size=1, max_size=2),
)
texts = st.sampled_from(("hi", "hello", "ok", ""))


def _input_item(item_id: str, text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}], "id": item_id}


def _output_item(item_id: str, text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
        "id": item_id,
    }


def _items(make: Callable[[str, str], dict[str, Any]]) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Items already in the store's normalized shape, with explicit ids, so the model can predict them."""

    @st.composite
    def items(draw: st.DrawFn) -> list[dict[str, Any]]:
        ids = draw(st.lists(st.sampled_from(ITEM_IDS), unique=True, max_size=4))
        return [make(item_id, draw(texts)) for item_id in ids]

    return items()


input_items = _items(_input_item)
output_items = _items(_output_item)


@st.composite
def usages(draw: st.DrawFn) -> dict[str, Any] | None:
    if draw(st.booleans()):
        return None
    tokens_in = draw(st.integers(0, 50))
    tokens_out = draw(st.integers(0, 50))
    return {
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "total_tokens": tokens_in + tokens_out,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    }


errors = st.one_of(
    st.sampled_from(("boom", "timeout")),
    st.builds(lambda code: {"code": code, "message": "it broke"}, st.sampled_from(("server_error", "rate_limit"))),
)
extras = st.one_of(st.none(), st.builds(lambda t: {"temperature": t}, st.sampled_from((0.0, 0.5, 1.0))))
tools: st.SearchStrategy[list[dict[str, Any]]] = st.one_of(
    st.just([]), st.just([{"type": "function", "name": "f", "parameters": {}}])
)

#: What ``update`` may be given; drawn as a sub-dict, sometimes with a field update must refuse.
update_fields: dict[str, st.SearchStrategy[Any]] = {
    "status": st.sampled_from(STATUSES),
    "model": st.sampled_from(MODELS),
    "output": output_items,
    "instructions": st.one_of(st.none(), texts),
    "tools": tools,
    "metadata": metadatas,
    "usage": usages(),
    "error": st.one_of(st.none(), errors),
    "incomplete_details": st.one_of(st.none(), st.sampled_from(("max_output_tokens", "content_filter"))),
    "extra": extras,
}


@st.composite
def update_changes(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(sorted(update_fields)), unique=True, max_size=3))
    changes = {name: draw(update_fields[name]) for name in names}
    if draw(st.integers(0, 9)) == 0:
        changes["created_at"] = 5.0  # not updatable: InvalidArgument, whatever the record
    return changes  # sometimes empty: InvalidArgument too


def _outcome(call: Callable[[], Any]) -> tuple[Any, type[ResponseStoreError] | None]:
    try:
        return call(), None
    except ResponseStoreError as exc:
        return None, type(exc)


def _same_page(real: Any, expected: ModelPage, convert: Callable[[Any], dict[str, Any]]) -> None:
    assert [convert(item)["id"] for item in real.data] == expected.ids
    assert [convert(item) for item in real.data] == expected.data
    assert (real.first_id, real.last_id, real.has_more) == (expected.first_id, expected.last_id, expected.has_more)


@st.composite
def create_specs(draw: st.DrawFn) -> dict[str, Any]:
    """Keyword arguments of one ``create`` (all but ``owner`` and ``previous_response_id``)."""
    return {
        "model": draw(st.sampled_from(MODELS)),
        "input": draw(input_items),
        "id": draw(st.sampled_from(ID_POOL)) if draw(st.integers(0, 2)) == 0 else None,
        "status": draw(st.sampled_from(("queued", "in_progress"))),
        "background": draw(st.booleans()),
        "instructions": draw(st.one_of(st.none(), texts)),
        "metadata": draw(metadatas),
        "extra": draw(extras),
    }


#: ``list``'s filters: often none, so pages are full.
list_filters = st.one_of(
    st.just({}),
    st.fixed_dictionaries({"model": st.sampled_from(MODELS)}),
    st.fixed_dictionaries({"status": st.sampled_from(STATUSES)}),
    st.fixed_dictionaries({"metadata": metadata_filters}),
    st.fixed_dictionaries(
        {},
        optional={
            "model": st.sampled_from(MODELS),
            "status": st.sampled_from(STATUSES),
            "metadata": metadata_filters,
        },
    ),
)

#: Which record a rule acts on: an index into the known (owner, id) pairs, and 0 in ``stranger`` (one time in
#: eight) to ask as another owner, who must not see it.
targets = st.tuples(picks, st.integers(0, 7))


def examples_for(contract: ContractBase) -> int:
    """How many examples (of 50 steps each) to run: a share of the hypothesis profile's count.

    Every step runs ``_check()`` and compares every owner's whole list, so one example costs a few hundred store
    calls; a durable backend's ``_check()`` also reads every record. A quarter of the profile's count for the
    memory store (at least 20) and a tenth for durable ones (at least 10) keep this file well under a minute with
    the CI profile (about 20 s of CPU).
    """
    profile = contract.profile_examples()
    return max(20, profile // 4) if contract.weight == 1 else max(10, profile // 10)


def make_machine(contract: ContractBase) -> type[RuleBasedStateMachine]:
    """The state machine comparing a fresh store of the ``contract``'s backend with the model."""

    class StoreMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.clock = FakeClock()
            self.store: BaseStore = contract.open_fast(clock=self.clock, max_chain_depth=MAX_CHAIN_DEPTH)
            self.model = StoreModel(self.clock, max_chain_depth=MAX_CHAIN_DEPTH)
            # Every (owner, id) ever used, deleted ones included, in first-use order (deterministic on replay).
            self.known: list[tuple[str | None, str]] = []
            self.observed: dict[int, tuple[Any, dict[str, Any]]] = {}  # id(record) -> (record, observe(record))

        def teardown(self) -> None:
            try:
                self.store._check()
            finally:
                close = getattr(self.store, "close", None)
                if close is not None:
                    close()

        # -------------------------------------------------------------- helpers

        def target(self, drawn: tuple[int, int]) -> tuple[str | None, str]:
            """A known (owner, id), or an id nobody ever used, or a known id asked for by another owner."""
            pick, stranger = drawn
            candidates = [*self.known, (None, UNKNOWN_ID)]
            owner, id = candidates[pick % len(candidates)]
            if stranger == 0:
                owner = OWNERS[(OWNERS.index(owner) + 1) % len(OWNERS)]
            return owner, id

        def id_of_all(self, owner: str | None) -> list[str]:
            """Every id ``owner`` ever used (live or deleted)."""
            return [id for known_owner, id in self.known if known_owner == owner]

        def id_of(self, owner: str | None, pick: int) -> str:
            """A known id of ``owner`` (live or deleted), or an unknown one."""
            candidates = [*self.id_of_all(owner), UNKNOWN_ID]
            return candidates[pick % len(candidates)]

        def observe(self, record: Any) -> dict[str, Any]:
            """``observe(record)``, remembered per record object: records are deeply immutable."""
            seen = self.observed.get(id(record))
            if seen is None or seen[0] is not record:
                seen = self.observed[id(record)] = (record, observe(record))
            return seen[1]

        def learn(self, owner: str | None, id: str) -> None:
            if (owner, id) not in self.known:
                self.known.append((owner, id))

        def version(self, drawn: Any, owner: str | None, id: str) -> int | None:
            if drawn != RIGHT:
                return drawn  # type: ignore[no-any-return]
            record = self.model.records.get((owner, id))
            return 1 if record is None else record["version"]

        def same(self, what: str, real_call: Callable[[], Any], model_call: Callable[[], Any]) -> tuple[Any, Any]:
            """Run both calls; both must fail with the same error type, or both succeed. Returns the results."""
            real, real_error = _outcome(real_call)
            expected, expected_error = _outcome(model_call)
            event(f"{what}: {expected_error.__name__ if expected_error else 'ok'}")
            assert real_error is expected_error, f"store: {real_error or real!r}, model: {expected_error or expected!r}"
            return real, expected

        def same_record(self, what: str, real_call: Callable[[], Any], model_call: Callable[[], Any]) -> None:
            real, expected = self.same(what, real_call, model_call)
            if expected is not None:
                assert observe(real) == expected

        def create_one(self, owner: str | None, previous_id: str | None, spec: dict[str, Any]) -> None:
            kwargs = {**spec, "owner": owner, "previous_response_id": previous_id}
            real, error = _outcome(lambda: self.store.create(**kwargs))
            # When the store picked the id, the model takes the same one; a refused create needs none.
            auto_id = real.id if real is not None else "auto-id-of-a-refused-create"
            expected, expected_error = _outcome(lambda: self.model.create(**kwargs, auto_id=auto_id))
            event(f"create: {expected_error.__name__ if expected_error else 'ok'}")
            assert error is expected_error, f"store: {error or real!r}, model: {expected_error or expected!r}"
            if spec["id"] is not None:
                self.learn(owner, spec["id"])
            if real is not None:
                self.learn(owner, real.id)
                assert observe(real) == expected

        # -------------------------------------------------------------- rules

        @initialize(owner=owners, specs=st.lists(create_specs(), min_size=4, max_size=12))
        def some_records(self, owner: str | None, specs: list[dict[str, Any]]) -> None:
            for spec in specs:
                self.create_one(owner, None, spec)

        @rule(owner=owners, specs=st.lists(create_specs(), min_size=1, max_size=4))
        def create_several(self, owner: str | None, specs: list[dict[str, Any]]) -> None:
            """Several creates in a row: on the same clock reading unless a tick came between."""
            for spec in specs:
                self.create_one(owner, None, spec)

        @rule(owner=owners, previous=picks, spec=create_specs())
        def create_continuing(self, owner: str | None, previous: int, spec: dict[str, Any]) -> None:
            self.create_one(owner, self.id_of(owner, previous), spec)

        @rule(which=targets)
        def get(self, which: tuple[int, int]) -> None:
            owner, id = self.target(which)
            assert self.store.contains(id, owner=owner) is self.model.contains(id, owner=owner)
            self.same_record("get", lambda: self.store.get(id, owner=owner), lambda: self.model.get(id, owner=owner))

        @rule(which=targets, version=versions)
        def delete(self, which: tuple[int, int], version: Any) -> None:
            owner, id = self.target(which)
            v = self.version(version, owner, id)
            self.same_record(
                "delete",
                lambda: self.store.delete(id, expected_version=v, owner=owner),
                lambda: self.model.delete(id, expected_version=v, owner=owner),
            )

        @rule(which=targets, version=versions, operation=st.sampled_from(("start", "cancel")))
        def start_or_cancel(self, which: tuple[int, int], version: Any, operation: str) -> None:
            owner, id = self.target(which)
            v = self.version(version, owner, id)
            self.same_record(
                operation,
                lambda: getattr(self.store, operation)(id, expected_version=v, owner=owner),
                lambda: getattr(self.model, operation)(id, expected_version=v, owner=owner),
            )

        @rule(which=targets, version=versions, output=output_items, usage=usages())
        def complete(self, which: tuple[int, int], version: Any, output: Any, usage: Any) -> None:
            owner, id = self.target(which)
            v = self.version(version, owner, id)
            self.same_record(
                "complete",
                lambda: self.store.complete(id, output, usage=usage, expected_version=v, owner=owner),
                lambda: self.model.complete(id, output, usage=usage, expected_version=v, owner=owner),
            )

        @rule(which=targets, version=versions, error=errors)
        def fail(self, which: tuple[int, int], version: Any, error: Any) -> None:
            owner, id = self.target(which)
            v = self.version(version, owner, id)
            self.same_record(
                "fail",
                lambda: self.store.fail(id, error, expected_version=v, owner=owner),
                lambda: self.model.fail(id, error, expected_version=v, owner=owner),
            )

        @rule(
            which=targets,
            version=versions,
            reason=st.sampled_from(("max_output_tokens", "content_filter")),
            output=output_items,
            usage=usages(),
        )
        def mark_incomplete(self, which: tuple[int, int], version: Any, reason: str, output: Any, usage: Any) -> None:
            owner, id = self.target(which)
            v = self.version(version, owner, id)
            kwargs = {"output": output, "usage": usage, "expected_version": v, "owner": owner}
            self.same_record(
                "mark_incomplete",
                lambda: self.store.mark_incomplete(id, reason, **kwargs),
                lambda: self.model.mark_incomplete(id, reason, **kwargs),
            )

        @rule(which=targets, version=versions, changes=update_changes())
        def update(self, which: tuple[int, int], version: Any, changes: dict[str, Any]) -> None:
            owner, id = self.target(which)
            v = self.version(version, owner, id)
            self.same_record(
                "update",
                lambda: self.store.update(id, expected_version=v, owner=owner, **changes),
                lambda: self.model.update(id, expected_version=v, owner=owner, **changes),
            )

        @rule(
            which=targets,
            limit=st.integers(1, 4),
            order=st.sampled_from(("asc", "desc")),
            cursor=st.sampled_from(("none", "after", "before", "after_deleted", "before_deleted")),
            pick=picks,
            filters=list_filters,
            mistake=st.sampled_from(("", "", "", "", "", "", "", "", "", "", "", "", "limit", "order", "both")),
        )
        def list(
            self,
            *,
            which: tuple[int, int],
            cursor: str,
            pick: int,
            filters: dict[str, Any],
            mistake: str,
            **kwargs: Any,
        ) -> None:
            """A page of an owner's list, from the start or from a cursor (live, deleted, or unknown)."""
            owner, _ = self.target(which)
            kwargs.update(filters, owner=owner)
            if cursor in ("after", "before"):
                kwargs[cursor] = self.id_of(owner, pick)
            elif cursor != "none":  # a cursor whose record was deleted, if there is one
                gone = [id for id in self.id_of_all(owner) if not self.model.contains(id, owner=owner)]
                kwargs[cursor.removesuffix("_deleted")] = gone[pick % len(gone)] if gone else UNKNOWN_ID
                event(f"list: deleted cursor {bool(gone)}")
            if mistake == "limit":
                kwargs["limit"] = 0 if pick % 2 else 101
            elif mistake == "order":
                kwargs["order"] = "sideways"
            elif mistake == "both":
                kwargs["after"] = kwargs["before"] = self.id_of(owner, pick)
            real, expected = self.same("list", lambda: self.store.list(**kwargs), lambda: self.model.list(**kwargs))
            if expected is not None:
                event(f"list: page of {len(expected.data)}, has_more={expected.has_more}")
                _same_page(real, expected, observe)

        @rule(
            which=targets,
            limit=st.integers(1, 4),
            order=st.sampled_from(("asc", "desc")),
            backwards=st.booleans(),
            filters=list_filters,
        )
        def walk(self, *, which: tuple[int, int], backwards: bool, filters: dict[str, Any], **kwargs: Any) -> None:
            """Page through a whole list (forwards with ``after``, or from the end backwards with ``before``)."""
            owner, _ = self.target(which)
            kwargs.update(filters, owner=owner)
            expected_all = self.model.ordered(**{k: v for k, v in kwargs.items() if k != "limit"})
            walked: list[str] = []
            cursor: dict[str, Any] = {}
            if backwards:
                # Start from the last record of the list (the first of the opposite order), then go back.
                opposite = "asc" if kwargs["order"] == "desc" else "desc"
                end = self.store.list(**{**kwargs, "order": opposite, "limit": 1})
                assert end.first_id == (expected_all[-1]["id"] if expected_all else None)
                if end.first_id is None:
                    return
                walked = [end.first_id]
                cursor = {"before": end.first_id}
            for _ in range(len(expected_all) + 2):
                real, expected = self.same(
                    "walk", partial(self.store.list, **cursor, **kwargs), partial(self.model.list, **cursor, **kwargs)
                )
                _same_page(real, expected, observe)
                if backwards:
                    walked[:0] = expected.ids
                else:
                    walked += expected.ids
                if not real.has_more:
                    break
                cursor = {"before": real.first_id} if backwards else {"after": real.last_id}
            else:
                raise AssertionError("the walk did not end")
            assert walked == [record["id"] for record in expected_all]

        @rule(
            which=targets,
            limit=st.integers(1, 5),
            order=st.sampled_from(("asc", "desc")),
            cursor=st.sampled_from(("none", "after", "before")),
            item=st.sampled_from((*ITEM_IDS, "no-such-item")),
        )
        def input_items(self, *, which: tuple[int, int], cursor: str, item: str, **kwargs: Any) -> None:
            owner, id = self.target(which)
            kwargs["owner"] = owner
            if cursor != "none":
                kwargs[cursor] = item
            real, expected = self.same(
                "input_items",
                lambda: self.store.input_items(id, **kwargs),
                lambda: self.model.input_items(id, **kwargs),
            )
            if expected is not None:
                _same_page(real, expected, plain)

        @rule(which=targets)
        def chain_and_conversation(self, which: tuple[int, int]) -> None:
            owner, id = self.target(which)
            real, expected = self.same(
                "chain", lambda: self.store.chain(id, owner=owner), lambda: self.model.chain(id, owner=owner)
            )
            if expected is not None:
                assert [observe(record) for record in real] == expected
            real, expected = self.same(
                "conversation",
                lambda: self.store.conversation(id, owner=owner),
                lambda: self.model.conversation(id, owner=owner),
            )
            if expected is not None:
                assert plain(real) == expected

        @rule(delta=st.sampled_from((0.0, 0.0, 0.0, 0.5, 1.0, -0.25)))
        def tick(self, delta: float) -> None:
            """Move the clock: mostly not at all (ties), sometimes forwards, now and then backwards."""
            self.clock.advance(delta)

        # -------------------------------------------------------------- invariant

        @invariant()
        def agrees_with_model(self) -> None:
            """Internal invariants hold, and every owner's whole list (every field of every record) is the model's.

            Read with ``list`` rather than one ``get`` per record: one query per owner keeps durable backends fast.
            """
            self.store._check()
            assert len(self.store) == len(self.model)
            for owner in OWNERS:
                expected = self.model.ordered(owner, order="asc")
                page = self.store.list(limit=100, order="asc", owner=owner)
                records = list(page.data)
                while page.has_more:
                    page = self.store.list(limit=100, order="asc", after=page.last_id, owner=owner)
                    records += page.data
                assert [self.observe(record) for record in records] == expected

    return StoreMachine


# ---------------------------------------------------------------------- an explicit cycle


class StatefulTests(ContractBase):
    """A real store and the plain ``StoreModel`` driven side by side by random call sequences, on every backend."""

    def test_store_agrees_with_the_model(self) -> None:
        """Random call sequences (50 steps each) leave the store and the model in the same state at every step."""
        run_state_machine_as_test(
            make_machine(self), settings=self.hypothesis(examples_for(self), stateful_step_count=50)
        )

    def test_recreated_id_closing_a_loop_is_a_chain_error(self) -> None:
        """Delete A, re-create A continuing B whose chain passed through the old A: walking must stop, not loop."""
        clock = FakeClock()
        store = self.make_store(clock=clock)
        model = StoreModel(clock)
        try:
            for target in (store, model):
                target.create("m", [_input_item("i0", "a")], id="A")
                target.complete("A", [_output_item("i1", "a!")])
                target.create("m", [_input_item("i0", "b")], id="B", previous_response_id="A")
                target.complete("B")
                target.delete("A")
                target.create("m", [_input_item("i0", "a again")], id="A", previous_response_id="B")
                target.complete("A")
            for id in ("A", "B"):
                for walk in ("chain", "conversation"):
                    with pytest.raises(ChainError):
                        getattr(store, walk)(id)
                    with pytest.raises(ChainError):
                        getattr(model, walk)(id)
            assert observe(store.get("A")) == model.get("A")
            assert observe(store.get("B")) == model.get("B")
            store._check()
        finally:
            close = getattr(store, "close", None)
            if close is not None:
                close()
