"""``chain`` and ``conversation``: following previous_response_id, depth limits, broken and looping chains."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from responsestore import BaseStore, ChainError, InvalidArgument, ResponseExists, ResponseNotFound, ResponseRecord

from .base import ContractBase


def turn(store: BaseStore, n: int, previous: str | None, **kwargs: Any) -> ResponseRecord:
    """One finished turn ``t<n>``: input ``q<n>``, output ``a<n>``."""
    store.create(
        "m",
        [{"id": f"q{n}", "role": "user", "content": f"question {n}"}],
        id=f"t{n}",
        previous_response_id=previous,
        instructions=f"instructions {n}",
        **kwargs,
    )
    return store.complete(f"t{n}", [{"id": f"a{n}", "role": "assistant", "content": f"answer {n}"}], **kwargs)


def build_chain(store: BaseStore, length: int) -> list[ResponseRecord]:
    records: list[ResponseRecord] = []
    for n in range(length):
        records.append(turn(store, n, records[-1].id if records else None))
    return records


def texts(items: tuple[dict[str, Any], ...]) -> list[str]:
    return [item["content"][0]["text"] for item in items]


class ChainTests(ContractBase):
    """``chain`` and ``conversation``: following previous_response_id, depth limits, broken and looping chains."""

    def test_a_response_without_previous_is_a_chain_of_one(self, store: BaseStore) -> None:
        record = turn(store, 0, None)
        assert store.chain("t0") == (record,)
        assert [item["id"] for item in store.conversation("t0")] == ["q0", "a0"]

    def test_multi_turn_chain_is_oldest_first(self, store: BaseStore) -> None:
        records = build_chain(store, 4)
        assert store.chain("t3") == tuple(records)
        assert [r.id for r in store.chain("t2")] == ["t0", "t1", "t2"]

    def test_conversation_is_inputs_then_outputs_per_response_oldest_first(self, store: BaseStore) -> None:
        build_chain(store, 3)
        context = store.conversation("t2")
        assert [item["id"] for item in context] == ["q0", "a0", "q1", "a1", "q2", "a2"]
        assert texts(context) == ["question 0", "answer 0", "question 1", "answer 1", "question 2", "answer 2"]
        assert [item["role"] for item in context] == ["user", "assistant"] * 3
        assert all(isinstance(item, dict) for item in context)

    def test_conversation_leaves_out_instructions(self, store: BaseStore) -> None:
        build_chain(store, 2)
        context = store.conversation("t1")
        assert all("instructions" not in str(item) for item in context)
        assert len(context) == 4
        assert store.get("t1").instructions == "instructions 1"

    def test_conversation_of_a_running_response_has_no_output_yet(self, store: BaseStore) -> None:
        build_chain(store, 1)
        store.create("m", [{"id": "q1", "role": "user", "content": "question 1"}], id="t1", previous_response_id="t0")
        assert [item["id"] for item in store.conversation("t1")] == ["q0", "a0", "q1"]

    def test_conversation_includes_several_items_per_response(self, store: BaseStore) -> None:
        store.create(
            "m",
            [{"id": "sys", "role": "developer", "content": "rules"}, {"id": "u", "role": "user", "content": "hi"}],
            id="r0",
        )
        store.complete(
            "r0",
            [
                {"id": "fc", "type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"id": "msg", "role": "assistant", "content": "done"},
            ],
        )
        store.create("m", [{"id": "u2", "role": "user", "content": "more"}], id="r1", previous_response_id="r0")
        assert [item["id"] for item in store.conversation("r1")] == ["sys", "u", "fc", "msg", "u2"]

    def test_branches_share_their_ancestors(self, store: BaseStore) -> None:
        build_chain(store, 2)
        turn(store, 10, "t0")
        assert [r.id for r in store.chain("t1")] == ["t0", "t1"]
        assert [r.id for r in store.chain("t10")] == ["t0", "t10"]
        assert [item["id"] for item in store.conversation("t10")] == ["q0", "a0", "q10", "a10"]

    @pytest.mark.parametrize("method", ["chain", "conversation"])
    def test_missing_ancestor_is_a_chain_error_naming_it(self, store: BaseStore, method: str) -> None:
        build_chain(store, 4)
        store.delete("t1")
        with pytest.raises(ChainError) as info:
            getattr(store, method)("t3")
        assert info.value.id == "t1"
        assert str(info.value) == "the chain of 't3' is broken: its ancestor 't1' (previous of 't2') no longer exists"
        # The part of the chain after the gap is intact; the part before it too.
        with pytest.raises(ChainError):
            store.chain("t2")
        assert [r.id for r in store.chain("t0")] == ["t0"]

    @pytest.mark.parametrize("method", ["chain", "conversation"])
    def test_missing_response_itself_is_not_found(self, store: BaseStore, method: str) -> None:
        build_chain(store, 2)
        with pytest.raises(ResponseNotFound) as info:
            getattr(store, method)("t9")
        assert info.value.id == "t9"
        with pytest.raises(InvalidArgument):
            getattr(store, method)("not an id")

    @pytest.mark.parametrize("method", ["chain", "conversation"])
    def test_max_chain_depth(self, new_store: Callable[..., BaseStore], method: str) -> None:
        store = new_store(max_chain_depth=3)
        assert store.max_chain_depth == 3
        build_chain(store, 4)
        assert len(getattr(store, method)("t2")) == (3 if method == "chain" else 6)
        # Creating a fourth turn is allowed; following its chain is not.
        with pytest.raises(ChainError) as info:
            getattr(store, method)("t3")
        assert info.value.id == "t3"
        assert str(info.value) == "the chain of 't3' is longer than max_chain_depth=3"
        assert len(store) == 4

    def test_max_chain_depth_one_allows_only_single_responses(self, new_store: Callable[..., BaseStore]) -> None:
        store = new_store(max_chain_depth=1)
        build_chain(store, 2)
        assert [r.id for r in store.chain("t0")] == ["t0"]
        with pytest.raises(ChainError, match="max_chain_depth=1"):
            store.chain("t1")

    def test_default_max_chain_depth_follows_long_chains(self, store: BaseStore) -> None:
        assert store.max_chain_depth == 1000
        previous = None
        for n in range(150):
            store.create("m", id=f"c{n}", previous_response_id=previous)
            store.complete(f"c{n}")
            previous = f"c{n}"
        chain = store.chain("c149")
        assert [r.id for r in chain] == [f"c{n}" for n in range(150)]

    @pytest.mark.parametrize("depth", [0, -1, True, False, 2.0, "3", None])
    def test_invalid_max_chain_depth_is_refused(self, new_store: Callable[..., BaseStore], depth: Any) -> None:
        with pytest.raises(InvalidArgument, match="max_chain_depth"):
            new_store(max_chain_depth=depth)

    @pytest.mark.parametrize("method", ["chain", "conversation"])
    def test_a_loop_through_recreated_ids_is_a_chain_error(self, store: BaseStore, method: str) -> None:
        # A <- B <- C, then A is deleted and re-created continuing C: C -> B -> A -> C -> ...
        build_chain(store, 3)
        store.delete("t0")
        store.create("m", id="t0", previous_response_id="t2")
        store.complete("t0")
        for start in ("t0", "t1", "t2"):
            with pytest.raises(ChainError, match="loops") as info:
                getattr(store, method)(start)
            assert str(info.value) == f"the chain of {start!r} loops back to {start!r}"
            assert info.value.id == start

    def test_a_response_cannot_continue_itself(self, store: BaseStore) -> None:
        # While the id exists the create is a duplicate; once it is deleted there is nothing to continue.
        store.create("m", id="self")
        store.complete("self")
        with pytest.raises(ResponseExists):
            store.create("m", id="self", previous_response_id="self")
        store.delete("self")
        with pytest.raises(ChainError, match="names no response"):
            store.create("m", id="self", previous_response_id="self")
        assert len(store) == 0

    def test_a_loop_into_an_earlier_part_of_the_chain(self, store: BaseStore) -> None:
        # t0 <- t1 <- t2 ; delete t1, recreate t1 continuing t2: t2 -> t1 -> t2 (loop does not include t0).
        build_chain(store, 3)
        store.delete("t1")
        store.create("m", id="t1", previous_response_id="t2")
        with pytest.raises(ChainError, match="'t2' loops back to 't2'"):
            store.chain("t2")
