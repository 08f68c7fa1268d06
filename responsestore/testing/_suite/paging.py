"""Cursor paging of ``list`` and ``input_items``: explicit scenarios with known expected pages."""

from __future__ import annotations

from typing import Any

import pytest

from responsestore import BaseStore, InvalidArgument, Page, ResponseNotFound, ResponseRecord, ResponseStatus
from responsestore.testing._clock import FakeClock

from .base import ContractBase


def ids(page: Page[Any]) -> list[str]:
    return [item.id if isinstance(item, ResponseRecord) else item["id"] for item in page.data]


def assert_page(page: Page[Any], expected: list[str], *, has_more: bool) -> None:
    assert ids(page) == expected
    assert len(page) == len(expected)
    assert [item.id if isinstance(item, ResponseRecord) else item["id"] for item in page] == expected
    assert page.first_id == (expected[0] if expected else None)
    assert page.last_id == (expected[-1] if expected else None)
    assert page.has_more is has_more


# ---------------------------------------------------------------------------------------------- list: order, cursors


# ---------------------------------------------------------------------------------------------- list: filters


# ---------------------------------------------------------------------------------------------- list: arguments


# ---------------------------------------------------------------------------------------------- input_items


def _keywords(name: str, value: Any) -> dict[str, Any]:
    return {name: value}


class PagingTests(ContractBase):
    """Cursor paging of ``list`` and ``input_items``: explicit scenarios with known expected pages."""

    @pytest.fixture
    def five(self, store: BaseStore, clock: FakeClock) -> BaseStore:
        """``r0`` … ``r4``, created one second apart."""
        for i in range(5):
            store.create("m", id=f"r{i}")
            clock.advance(1)
        return store

    def test_first_page_desc_and_asc(self, five: BaseStore) -> None:
        assert_page(five.list(), ["r4", "r3", "r2", "r1", "r0"], has_more=False)
        assert_page(five.list(order="asc"), ["r0", "r1", "r2", "r3", "r4"], has_more=False)
        assert_page(five.list(limit=2), ["r4", "r3"], has_more=True)
        assert_page(five.list(limit=2, order="asc"), ["r0", "r1"], has_more=True)
        assert_page(five.list(limit=5), ["r4", "r3", "r2", "r1", "r0"], has_more=False)
        assert_page(five.list(limit=4), ["r4", "r3", "r2", "r1"], has_more=True)

    def test_after_in_desc_order(self, five: BaseStore) -> None:
        assert_page(five.list(limit=2, after="r3"), ["r2", "r1"], has_more=True)
        assert_page(five.list(limit=2, after="r1"), ["r0"], has_more=False)
        assert_page(five.list(limit=3, after="r3"), ["r2", "r1", "r0"], has_more=False)
        assert_page(five.list(limit=2, after="r0"), [], has_more=False)

    def test_after_in_asc_order(self, five: BaseStore) -> None:
        assert_page(five.list(limit=2, after="r1", order="asc"), ["r2", "r3"], has_more=True)
        assert_page(five.list(limit=2, after="r3", order="asc"), ["r4"], has_more=False)
        assert_page(five.list(limit=2, after="r4", order="asc"), [], has_more=False)

    def test_before_in_desc_order_is_the_previous_page(self, five: BaseStore) -> None:
        # In newest-first order the records "before" r1 are the newer ones: r4 r3 r2 | r1 r0.
        assert_page(five.list(limit=2, before="r1"), ["r3", "r2"], has_more=True)
        assert_page(five.list(limit=3, before="r1"), ["r4", "r3", "r2"], has_more=False)
        assert_page(five.list(limit=2, before="r3"), ["r4"], has_more=False)
        assert_page(five.list(limit=2, before="r4"), [], has_more=False)
        assert_page(five.list(limit=20, before="r0"), ["r4", "r3", "r2", "r1"], has_more=False)

    def test_before_in_asc_order_is_the_previous_page(self, five: BaseStore) -> None:
        assert_page(five.list(limit=2, before="r3", order="asc"), ["r1", "r2"], has_more=True)
        assert_page(five.list(limit=2, before="r2", order="asc"), ["r0", "r1"], has_more=False)
        assert_page(five.list(limit=2, before="r1", order="asc"), ["r0"], has_more=False)
        assert_page(five.list(limit=2, before="r0", order="asc"), [], has_more=False)

    def test_walking_forward_then_back(self, five: BaseStore) -> None:
        pages = [five.list(limit=2)]
        while pages[-1].has_more:
            pages.append(five.list(limit=2, after=pages[-1].last_id))
        assert [ids(p) for p in pages] == [["r4", "r3"], ["r2", "r1"], ["r0"]]
        back = five.list(limit=2, before=pages[-1].first_id)
        assert ids(back) == ids(pages[1])
        back = five.list(limit=2, before=back.first_id)
        assert ids(back) == ids(pages[0])
        assert back.has_more is False

    def test_empty_store(self, store: BaseStore) -> None:
        page = store.list()
        assert page.data == ()
        assert page.first_id is None
        assert page.last_id is None
        assert page.has_more is False
        assert page.to_openai() == {"object": "list", "data": [], "first_id": "", "last_id": "", "has_more": False}
        assert_page(store.list(order="asc", limit=1), [], has_more=False)

    def test_timestamp_ties_keep_creation_order(self, store: BaseStore) -> None:
        # The fake clock does not move: every record has the same created_at.
        for i in range(6):
            store.create("m", id=f"t{i}")
        tie_rule = "responses created at the same moment are listed in creation order (ties by creation sequence)"
        assert ids(store.list(order="asc")) == [f"t{i}" for i in range(6)], tie_rule
        assert ids(store.list()) == [f"t{i}" for i in reversed(range(6))], tie_rule
        assert_page(store.list(order="asc"), [f"t{i}" for i in range(6)], has_more=False)
        assert_page(store.list(), [f"t{i}" for i in reversed(range(6))], has_more=False)
        assert_page(store.list(limit=2, after="t3"), ["t2", "t1"], has_more=True)
        assert_page(store.list(limit=2, before="t3", order="asc"), ["t1", "t2"], has_more=True)

    def test_a_clock_going_backwards_orders_by_created_at(self, store: BaseStore, clock: FakeClock) -> None:
        clock.set(100)
        store.create("m", id="late")
        clock.set(50)
        store.create("m", id="early")
        clock.set(75)
        store.create("m", id="middle")
        assert_page(store.list(order="asc"), ["early", "middle", "late"], has_more=False)
        assert_page(store.list(limit=1, after="early", order="asc"), ["middle"], has_more=True)

    @pytest.fixture
    def mixed(self, store: BaseStore, clock: FakeClock) -> BaseStore:
        spec = [
            ("a0", "model-a", {"team": "x", "env": "prod"}),
            ("b0", "model-b", {"team": "x"}),
            ("a1", "model-a", {"team": "y", "env": "prod"}),
            ("b1", "model-b", {}),
            ("a2", "model-a", {"team": "x", "env": "dev"}),
            ("b2", "model-b", {"team": "x", "env": "prod"}),
        ]
        for id, model, metadata in spec:
            store.create(model, id=id, metadata=metadata)
            clock.advance(1)
        store.complete("a1")
        store.complete("b1")
        store.fail("b2", "boom")
        return store

    def test_filter_by_model(self, mixed: BaseStore) -> None:
        assert_page(mixed.list(model="model-a"), ["a2", "a1", "a0"], has_more=False)
        assert_page(mixed.list(model="model-a", limit=2), ["a2", "a1"], has_more=True)
        assert_page(mixed.list(model="model-a", limit=2, after="a1"), ["a0"], has_more=False)
        assert_page(mixed.list(model="model-b", order="asc"), ["b0", "b1", "b2"], has_more=False)
        assert_page(mixed.list(model="nope"), [], has_more=False)

    def test_filter_by_status(self, mixed: BaseStore) -> None:
        assert_page(mixed.list(status="completed", order="asc"), ["a1", "b1"], has_more=False)
        assert_page(mixed.list(status=ResponseStatus.FAILED), ["b2"], has_more=False)
        assert_page(mixed.list(status="in_progress"), ["a2", "b0", "a0"], has_more=False)
        assert_page(mixed.list(status="queued"), [], has_more=False)

    def test_filter_by_metadata_subset(self, mixed: BaseStore) -> None:
        assert_page(mixed.list(metadata={"team": "x"}, order="asc"), ["a0", "b0", "a2", "b2"], has_more=False)
        assert_page(mixed.list(metadata={"team": "x", "env": "prod"}, order="asc"), ["a0", "b2"], has_more=False)
        assert_page(mixed.list(metadata={"env": "staging"}), [], has_more=False)
        assert_page(mixed.list(metadata={}, limit=6), ["b2", "a2", "b1", "a1", "b0", "a0"], has_more=False)

    def test_filters_combine(self, mixed: BaseStore) -> None:
        assert_page(mixed.list(model="model-b", metadata={"team": "x"}, status="in_progress"), ["b0"], has_more=False)
        assert_page(mixed.list(model="model-a", status="completed", metadata={"team": "y"}), ["a1"], has_more=False)

    def test_filtered_cursor_need_not_match_the_filter(self, mixed: BaseStore) -> None:
        # b1 is model-b; as a cursor it still places the page among model-a records.
        assert_page(mixed.list(model="model-a", after="b1"), ["a1", "a0"], has_more=False)
        assert_page(mixed.list(model="model-a", before="b1"), ["a2"], has_more=False)
        assert_page(mixed.list(model="model-a", before="b0", limit=1), ["a1"], has_more=True)

    @pytest.mark.parametrize(
        "filters",
        [
            {"model": 5},
            {"status": "done"},
            {"status": 3},
            {"metadata": {"k": 5}},
            {"metadata": "k=v"},
        ],
    )
    def test_malformed_filters_are_refused(self, mixed: BaseStore, filters: dict[str, Any]) -> None:
        with pytest.raises(InvalidArgument):
            mixed.list(**filters)

    def test_limit_bounds(self, store: BaseStore) -> None:
        for i in range(101):
            store.create("m", id=f"x{i:03d}")
        assert_page(store.list(limit=1), ["x100"], has_more=True)
        page = store.list(limit=100, order="asc")
        assert ids(page) == [f"x{i:03d}" for i in range(100)]
        assert page.has_more is True
        assert_page(store.list(limit=100, after="x099", order="asc"), ["x100"], has_more=False)
        assert ids(store.list()) == [f"x{i:03d}" for i in range(100, 80, -1)]  # default limit 20

    @pytest.mark.parametrize("limit", [0, -1, 101, 1000, True, False, 1.0, "5", None])
    def test_limit_out_of_bounds_or_wrong_type_is_refused(self, store: BaseStore, limit: Any) -> None:
        store.create("m")
        with pytest.raises(InvalidArgument, match="limit"):
            store.list(limit=limit)

    @pytest.mark.parametrize("order", ["ASC", "descending", None, 1])
    def test_bad_order_is_refused(self, store: BaseStore, order: Any) -> None:
        with pytest.raises(InvalidArgument, match="order"):
            store.list(order=order)

    def test_after_and_before_together_are_refused(self, five: BaseStore) -> None:
        with pytest.raises(InvalidArgument, match="not both"):
            five.list(after="r1", before="r3")

    @pytest.mark.parametrize("cursor", ["resp_unknown", "r5", "R1"])
    @pytest.mark.parametrize("direction", ["after", "before"])
    def test_unknown_cursor_is_refused(self, five: BaseStore, cursor: str, direction: str) -> None:
        with pytest.raises(InvalidArgument) as info:
            five.list(**_keywords(direction, cursor))
        assert info.value.id == cursor
        assert str(info.value) == f"unknown cursor {cursor!r}: no such item in this list"

    @pytest.mark.parametrize("cursor", ["", "not an id", 5, ["r1"]])
    @pytest.mark.parametrize("direction", ["after", "before"])
    def test_malformed_cursor_is_refused(self, five: BaseStore, cursor: Any, direction: str) -> None:
        with pytest.raises(InvalidArgument, match=direction):
            five.list(**_keywords(direction, cursor))

    def test_unknown_cursor_in_an_empty_store(self, store: BaseStore) -> None:
        with pytest.raises(InvalidArgument, match="unknown cursor"):
            store.list(after="resp_x")

    def test_cursor_of_a_deleted_record_still_places_the_page(self, five: BaseStore) -> None:
        first = five.list(limit=2)
        assert first.last_id == "r3"
        five.delete("r3")
        assert_page(five.list(limit=2, after="r3"), ["r2", "r1"], has_more=True)
        assert_page(five.list(limit=2, before="r3"), ["r4"], has_more=False)
        assert_page(five.list(limit=2, after="r3", order="asc"), ["r4"], has_more=False)
        assert_page(five.list(limit=5), ["r4", "r2", "r1", "r0"], has_more=False)

    def test_cursor_of_the_only_record_deleted(self, store: BaseStore) -> None:
        store.create("m", id="only")
        store.delete("only")
        assert_page(store.list(after="only"), [], has_more=False)
        assert_page(store.list(before="only"), [], has_more=False)

    def test_recreated_id_takes_its_new_place(self, five: BaseStore, clock: FakeClock) -> None:
        five.delete("r1")
        five.create("m", id="r1")
        assert_page(five.list(order="asc"), ["r0", "r2", "r3", "r4", "r1"], has_more=False)
        assert_page(five.list(order="asc", after="r1"), [], has_more=False)

    def test_page_to_openai_shape(self, five: BaseStore) -> None:
        page = five.list(limit=2)
        data = page.to_openai()
        assert list(data) == ["object", "data", "first_id", "last_id", "has_more"]
        assert data["object"] == "list"
        assert data["first_id"] == "r4"
        assert data["last_id"] == "r3"
        assert data["has_more"] is True
        assert data["data"] == [five.get("r4").to_openai(), five.get("r3").to_openai()]
        assert [d["object"] for d in data["data"]] == ["response", "response"]

    @pytest.fixture
    def seven(self, store: BaseStore) -> str:
        """A response with seven input items ``i0`` … ``i6``."""
        items = [{"id": f"i{i}", "role": "user", "content": f"message {i}"} for i in range(7)]
        return store.create("m", items, id="resp_seven").id

    def test_input_items_default_is_last_item_first(self, store: BaseStore, seven: str) -> None:
        assert_page(store.input_items(seven), ["i6", "i5", "i4", "i3", "i2", "i1", "i0"], has_more=False)

    def test_input_items_desc_pages(self, store: BaseStore, seven: str) -> None:
        assert_page(store.input_items(seven, limit=3), ["i6", "i5", "i4"], has_more=True)
        assert_page(store.input_items(seven, limit=3, after="i4"), ["i3", "i2", "i1"], has_more=True)
        assert_page(store.input_items(seven, limit=3, after="i1"), ["i0"], has_more=False)
        assert_page(store.input_items(seven, limit=2, before="i4"), ["i6", "i5"], has_more=False)
        assert_page(store.input_items(seven, limit=2, before="i2"), ["i4", "i3"], has_more=True)
        assert_page(store.input_items(seven, limit=2, after="i0"), [], has_more=False)

    def test_input_items_asc_pages(self, store: BaseStore, seven: str) -> None:
        assert_page(store.input_items(seven, order="asc"), [f"i{i}" for i in range(7)], has_more=False)
        assert_page(store.input_items(seven, limit=3, order="asc"), ["i0", "i1", "i2"], has_more=True)
        assert_page(store.input_items(seven, limit=3, order="asc", after="i2"), ["i3", "i4", "i5"], has_more=True)
        assert_page(store.input_items(seven, limit=3, order="asc", after="i5"), ["i6"], has_more=False)
        assert_page(store.input_items(seven, limit=2, order="asc", before="i4"), ["i2", "i3"], has_more=True)
        assert_page(store.input_items(seven, limit=3, order="asc", before="i2"), ["i0", "i1"], has_more=False)
        assert_page(store.input_items(seven, limit=3, order="asc", before="i0"), [], has_more=False)

    def test_input_items_are_the_stored_read_only_items(self, store: BaseStore, seven: str) -> None:
        page = store.input_items(seven, limit=1, order="asc")
        assert page.data == (
            {"id": "i0", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "message 0"}]},
        )
        assert isinstance(page.data[0], dict)
        assert type(page.data[0]["content"]) is tuple
        assert page.to_openai() == {
            "object": "list",
            "data": [
                {
                    "id": "i0",
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "message 0"}],
                    "status": "completed",  # listed as OpenAI lists it; the stored item has none
                }
            ],
            "first_id": "i0",
            "last_id": "i0",
            "has_more": True,
        }

    @pytest.mark.parametrize("direction", ["after", "before"])
    @pytest.mark.parametrize("cursor", ["i7", "resp_seven", "msg_x"])
    def test_input_items_unknown_item_cursor(self, store: BaseStore, seven: str, direction: str, cursor: str) -> None:
        with pytest.raises(InvalidArgument) as info:
            store.input_items(seven, **_keywords(direction, cursor))
        assert str(info.value) == f"unknown cursor {cursor!r}: no such item in this list"

    def test_input_items_of_a_response_without_input(self, store: BaseStore) -> None:
        record = store.create("m")
        assert_page(store.input_items(record.id), [], has_more=False)
        with pytest.raises(InvalidArgument, match="unknown cursor"):
            store.input_items(record.id, after="i0")

    def test_input_items_generated_ids_are_cursors(self, store: BaseStore) -> None:
        record = store.create("m", [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
        first = store.input_items(record.id, limit=1, order="asc")
        nxt = store.input_items(record.id, limit=1, order="asc", after=first.last_id)
        assert nxt.data[0]["content"] == ({"type": "input_text", "text": "b"},)
        assert nxt.has_more is False

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"limit": 0},
            {"limit": 101},
            {"limit": True},
            {"order": "up"},
            {"after": "i1", "before": "i3"},
            {"after": ""},
        ],
    )
    def test_input_items_bad_paging_arguments(self, store: BaseStore, seven: str, kwargs: dict[str, Any]) -> None:
        with pytest.raises(InvalidArgument):
            store.input_items(seven, **kwargs)

    def test_input_items_of_a_missing_or_malformed_response(self, store: BaseStore) -> None:
        with pytest.raises(ResponseNotFound, match="resp_missing"):
            store.input_items("resp_missing")
        with pytest.raises(InvalidArgument):
            store.input_items("bad id")
