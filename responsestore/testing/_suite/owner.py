"""Owner scoping: another owner's response is indistinguishable from a missing one, in every method."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from responsestore import BaseStore, ChainError, InvalidArgument, ResponseNotFound, ResponseStatus

from .base import ContractBase

OTHER_ID = "resp_owned_by_a_0000000000000000"
MISSING_ID = "resp_nobody_owns_this_00000000000"

#: Every way to name a response, as ``operation(store, id, owner) -> result``.
OPERATIONS: dict[str, Callable[[BaseStore, str, Any], Any]] = {
    "get": lambda s, rid, owner: s.get(rid, owner=owner),
    "delete": lambda s, rid, owner: s.delete(rid, owner=owner),
    "delete with expected_version": lambda s, rid, owner: s.delete(rid, owner=owner, expected_version=7),
    "start": lambda s, rid, owner: s.start(rid, owner=owner),
    "complete": lambda s, rid, owner: s.complete(rid, [{"role": "assistant", "content": "x"}], owner=owner),
    "fail": lambda s, rid, owner: s.fail(rid, "boom", owner=owner),
    "mark_incomplete": lambda s, rid, owner: s.mark_incomplete(rid, "max_output_tokens", owner=owner),
    "cancel": lambda s, rid, owner: s.cancel(rid, owner=owner),
    "update": lambda s, rid, owner: s.update(rid, metadata={"k": "v"}, owner=owner),
    "update with expected_version": lambda s, rid, owner: s.update(rid, model="x", owner=owner, expected_version=9),
    "input_items": lambda s, rid, owner: s.input_items(rid, owner=owner),
    "chain": lambda s, rid, owner: s.chain(rid, owner=owner),
    "conversation": lambda s, rid, owner: s.conversation(rid, owner=owner),
    "contains": lambda s, rid, owner: s.contains(rid, owner=owner),
    "create continuing it": lambda s, rid, owner: s.create(
        "m", "next", previous_response_id=rid, id="resp_continuation", owner=owner
    ),
    "list after it": lambda s, rid, owner: s.list(after=rid, owner=owner),
    "list before it": lambda s, rid, owner: s.list(before=rid, owner=owner, order="asc"),
}


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("returned", call())
    except Exception as exc:  # noqa: BLE001 - the test compares whatever happens
        return ("raised", exc)


#: The rule the owner tests check, named in their failures.
OWNER_RULE = "a response is its owner's only: to another owner it must behave exactly as a missing one (an owner leak)"


class OwnerTests(ContractBase):
    """Owner scoping: another owner's response is indistinguishable from a missing one, in every method."""

    @pytest.fixture
    def populated(self, store: BaseStore) -> BaseStore:
        """A queued background response of owner ``a`` (so every operation would succeed for ``a``), plus one of
        every viewer so their lists are not empty."""
        store.create("m", "secret", id=OTHER_ID, owner="a", background=True, status="queued")
        store.create("m", "mine", id="resp_b_own", owner="b")
        store.create("m", "mine", id="resp_none_own")
        return store

    @pytest.mark.parametrize("viewer", ["b", None, "A", ""])
    @pytest.mark.parametrize("name", list(OPERATIONS))
    def test_another_owners_response_behaves_exactly_as_a_missing_one(
        self, populated: BaseStore, viewer: str | None, name: str
    ) -> None:
        operation = OPERATIONS[name]
        before = populated.get(OTHER_ID, owner="a")
        count = len(populated)

        kind_other, other = outcome(lambda: operation(populated, OTHER_ID, viewer))
        kind_missing, missing = outcome(lambda: operation(populated, MISSING_ID, viewer))

        assert kind_other == kind_missing, f"{OWNER_RULE}: {name} as {viewer!r} {kind_other}, not {kind_missing}"
        if kind_other == "returned":
            assert name == "contains"
            assert other is False
            assert missing is False
        else:
            assert type(other) is type(missing), f"{OWNER_RULE}: {name} as {viewer!r} raised {other!r}"
            assert str(other).replace(OTHER_ID, "<id>") == str(missing).replace(MISSING_ID, "<id>")
            assert OTHER_ID in str(other)
            assert other.id in (OTHER_ID, "resp_continuation")
            assert (other.id == OTHER_ID) == (missing.id == MISSING_ID)
            expected_type = {
                "contains": None,
                "create continuing it": ChainError,
                "list after it": InvalidArgument,
                "list before it": InvalidArgument,
            }.get(name, ResponseNotFound)
            assert type(other) is expected_type

        assert populated.get(OTHER_ID, owner="a") == before
        assert len(populated) == count
        assert not populated.contains("resp_continuation", owner=viewer)

    @pytest.mark.parametrize("name", [n for n in OPERATIONS if n not in ("delete with expected_version",)])
    def test_every_operation_works_for_the_owner(self, populated: BaseStore, name: str) -> None:
        # The control for the test above: the same calls do reach the record for its own owner.
        if name == "create continuing it":
            populated.complete(OTHER_ID, owner="a")
        if name == "update with expected_version":
            populated.update(OTHER_ID, owner="a", expected_version=1, metadata={"n": "1"})
            result = populated.update(OTHER_ID, owner="a", expected_version=2, model="x")
            assert result.model == "x"
            return
        kind, result = outcome(lambda: OPERATIONS[name](populated, OTHER_ID, "a"))
        assert kind == "returned", result
        if name == "contains":
            assert result is True
        elif name.startswith("list"):
            assert result.data == ()
        elif name == "create continuing it":
            assert result.owner == "a"
            assert result.previous_response_id == OTHER_ID

    def test_a_response_of_owner_none_is_invisible_to_named_owners(self, store: BaseStore) -> None:
        record = store.create("m", "hi", id="resp_public", background=True)
        assert "resp_public" in store
        for owner in ("a", "None", ""):
            assert not store.contains(record.id, owner=owner), f"{OWNER_RULE}: owner {owner!r} sees it"
            with pytest.raises(ResponseNotFound) as info:
                store.get(record.id, owner=owner)
            assert str(info.value) == "no response with id 'resp_public'"
            with pytest.raises(ResponseNotFound):
                store.cancel(record.id, owner=owner)
            assert store.list(owner=owner).data == (), f"{OWNER_RULE}: owner {owner!r} lists it"
        assert store.get("resp_public") == record

    def test_lists_show_only_the_owners_records(self, store: BaseStore) -> None:
        for i in range(3):
            store.create("m", id=f"a{i}", owner="a")
            store.create("m", id=f"b{i}", owner="b")
            store.create("m", id=f"n{i}")
        assert len(store) == 9
        assert [r.id for r in store.list(owner="a", order="asc")] == ["a0", "a1", "a2"], f"{OWNER_RULE}: lists"
        assert [r.id for r in store.list(owner="b", order="asc")] == ["b0", "b1", "b2"], f"{OWNER_RULE}: lists"
        assert [r.id for r in store.list(order="asc")] == ["n0", "n1", "n2"], f"{OWNER_RULE}: lists"
        assert store.list(owner="c").data == (), f"{OWNER_RULE}: lists"
        page = store.list(owner="a", limit=1, after="a1", order="asc")
        assert [r.id for r in page] == ["a2"]
        assert page.has_more is False
        assert all(r.owner == "a" for r in store.list(owner="a"))

    def test_a_deleted_cursor_of_another_owner_is_still_unknown(self, store: BaseStore) -> None:
        store.create("m", id="resp_gone", owner="a")
        store.create("m", id="resp_b", owner="b")
        store.delete("resp_gone", owner="a")
        assert store.list(after="resp_gone", owner="a").data == ()
        with pytest.raises(InvalidArgument) as other:
            store.list(after="resp_gone", owner="b")
        with pytest.raises(InvalidArgument) as missing:
            store.list(after="resp_never", owner="b")
        assert str(other.value).replace("resp_gone", "<id>") == str(missing.value).replace("resp_never", "<id>")

    def test_the_same_explicit_id_for_several_owners(self, store: BaseStore) -> None:
        a = store.create("model-a", "from a", id="resp_same", owner="a", background=True)
        b = store.create("model-b", "from b", id="resp_same", owner="b")
        n = store.create("model-n", "from nobody", id="resp_same")
        assert len(store) == 3
        assert store.get("resp_same", owner="a") == a
        assert store.get("resp_same", owner="b") == b
        assert store.get("resp_same") == n
        assert (a.model, b.model, n.model) == ("model-a", "model-b", "model-n")

        store.cancel("resp_same", owner="a")
        store.complete("resp_same", owner="b")
        assert store.get("resp_same", owner="a").status is ResponseStatus.CANCELLED
        assert store.get("resp_same", owner="b").status is ResponseStatus.COMPLETED
        assert store.get("resp_same") == n

        assert store.input_items("resp_same", owner="a").data[0]["content"][0]["text"] == "from a"
        assert store.input_items("resp_same", owner="b").data[0]["content"][0]["text"] == "from b"

        removed = store.delete("resp_same", owner="b")
        assert removed.owner == "b"
        assert not store.contains("resp_same", owner="b")
        assert store.contains("resp_same", owner="a")
        assert "resp_same" in store
        assert len(store) == 2
        again = store.create("model-b2", id="resp_same", owner="b")
        assert again.version == 1
        assert store.get("resp_same", owner="a").status is ResponseStatus.CANCELLED

    def test_chains_follow_the_owners_own_records(self, store: BaseStore) -> None:
        for owner in ("a", "b"):
            store.create("m", f"{owner} first", id="resp_1", owner=owner)
            store.complete("resp_1", [{"role": "assistant", "content": f"{owner} answer"}], owner=owner)
            store.create("m", f"{owner} second", id="resp_2", owner=owner, previous_response_id="resp_1")
        for owner in ("a", "b"):
            texts = [item["content"][0]["text"] for item in store.conversation("resp_2", owner=owner)]
            assert texts == [f"{owner} first", f"{owner} answer", f"{owner} second"]
            assert {r.owner for r in store.chain("resp_2", owner=owner)} == {owner}
        # b's ancestor gone: a's chain is untouched and b's is broken.
        store.delete("resp_1", owner="b")
        assert len(store.chain("resp_2", owner="a")) == 2
        with pytest.raises(ChainError, match="resp_1"):
            store.chain("resp_2", owner="b")

    @pytest.mark.parametrize("owner", [5, b"a", ["a"], object()])
    def test_a_malformed_owner_is_refused_everywhere(self, store: BaseStore, owner: Any) -> None:
        record = store.create("m", background=True)
        for name, operation in OPERATIONS.items():
            with pytest.raises(InvalidArgument, match="owner"):
                operation(store, record.id, owner)
            assert store.get(record.id) == record, name
        with pytest.raises(InvalidArgument, match="owner"):
            store.list(owner=owner)
        with pytest.raises(InvalidArgument, match="owner"):
            store.create("m", owner=owner)
        assert len(store) == 1
