"""Ordering and cursor paging, as properties over random stores, compared with the plain ``StoreModel``.

Stores are built from random creates, finishes and deletes on a clock that mostly repeats its reading and now and
then goes backwards, so ``created_at`` ties (broken by creation order) and out-of-order timestamps are common.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from responsestore import BaseStore, InvalidArgument, Page, ResponseNotFound, ResponseStoreError, _paging
from responsestore.testing._clock import FakeClock

from .base import ContractBase
from .model import STATUSES, ModelPage, StoreModel, observe

#: Constructor arguments that only make a backend faster: durability is not what these tests check, and an fsync
#: per write would dominate their time.
OWNERS = (None, None, None, "other")  # mostly the default owner, so its list is long
MODELS = ("gpt-a", "gpt-b")

metadata_values = st.one_of(
    st.none(),
    st.dictionaries(st.sampled_from(("k1", "k2")), st.sampled_from(("x", "y")), max_size=2),
)

creates = st.tuples(
    st.just("create"),
    st.fixed_dictionaries(
        {
            "owner": st.sampled_from(OWNERS),
            "model": st.sampled_from(MODELS),
            "status": st.sampled_from(("queued", "in_progress")),
            "metadata": metadata_values,
        }
    ),
    st.sampled_from(("stay", "stay", "complete", "fail")),
    st.sampled_from((0.0, 0.0, 0.0, 0.0, 0.001, 1.0, -0.5)),  # the clock before this create
)
deletes = st.tuples(st.just("delete"), st.integers(0, 10_000))
operations = st.lists(st.one_of(creates, creates, creates, deletes), min_size=8, max_size=40)

list_filters = st.one_of(
    st.just({}),
    st.fixed_dictionaries(
        {},
        optional={
            "model": st.sampled_from(MODELS),
            "status": st.sampled_from(STATUSES),
            "metadata": st.dictionaries(st.sampled_from(("k1", "k2")), st.sampled_from(("x", "y")), min_size=1),
        },
    ),
)
orders = st.sampled_from(("asc", "desc"))
limits = st.one_of(st.integers(1, 3), st.integers(1, 7))
walk_owners = st.sampled_from((None, None, None, "other"))


class Built:
    """A store and the model built from the same operations, and every id the default owner ever used."""

    def __init__(self, store: BaseStore, model: StoreModel) -> None:
        self.store = store
        self.model = model
        self.ids: dict[str | None, list[str]] = {None: [], "other": []}  # creation order, deleted ones too

    def deleted(self, owner: str | None) -> list[str]:
        """Ids ``owner`` used whose record is gone now."""
        return [id for id in self.ids[owner] if not self.model.contains(id, owner=owner)]


@contextmanager
def built(contract: ContractBase, ops: list[Any]) -> Iterator[Built]:
    """Open a fresh store, apply ``ops`` to it and to a model (comparing as it goes), close it afterwards."""
    clock = FakeClock()
    store = contract.open_fast(clock=clock)
    try:
        result = Built(store, StoreModel(clock))
        for op in ops:
            _apply(result, clock, op)
            store._check()
        assert len(store) == len(result.model)
        yield result
        store._check()
    finally:
        store.close()


def _apply(built: Built, clock: FakeClock, op: Any) -> None:
    store, model = built.store, built.model
    if op[0] == "create":
        _, kwargs, finish, delta = op
        clock.advance(delta)
        record = store.create(**kwargs)
        assert observe(record) == model.create(**kwargs, auto_id=record.id)
        built.ids[kwargs["owner"]].append(record.id)
        if finish == "complete":
            assert observe(store.complete(record.id, owner=record.owner)) == model.complete(
                record.id, owner=record.owner
            )
        elif finish == "fail":
            assert observe(store.fail(record.id, "boom", owner=record.owner)) == model.fail(
                record.id, "boom", owner=record.owner
            )
    else:
        candidates = [(owner, id) for owner, ids in built.ids.items() for id in ids]
        if not candidates:
            return
        owner, id = candidates[op[1] % len(candidates)]
        if model.contains(id, owner=owner):
            assert observe(store.delete(id, owner=owner)) == model.delete(id, owner=owner)
        else:
            with pytest.raises(ResponseNotFound):
                store.delete(id, owner=owner)


def assert_same_page(real: Page[Any], expected: ModelPage) -> None:
    assert [record.id for record in real.data] == expected.ids
    assert [observe(record) for record in real.data] == expected.data
    assert (real.first_id, real.last_id, real.has_more) == (expected.first_id, expected.last_id, expected.has_more)


def walk_forward(store: BaseStore, limit: int, **kwargs: Any) -> list[Page[Any]]:
    """Every page from the first, following ``after=page.last_id`` while ``has_more``."""
    pages = [store.list(limit=limit, **kwargs)]
    while pages[-1].has_more:
        assert len(pages) <= len(store) + 1, "the walk does not end"
        pages.append(store.list(limit=limit, after=pages[-1].last_id, **kwargs))
    return pages


def _ids(pages: list[Page[Any]]) -> list[str]:
    return [record.id for page in pages for record in page.data]


# ---------------------------------------------------------------------- walks
#
# One store is built per example and every property below is checked on it (building is the expensive part,
# since ``_check()`` runs after every operation); each property is its own function, named in any failure.


def check_forward_walk(b: Built, limit: int, **kwargs: Any) -> list[Page[Any]]:
    """``after=page.last_id`` from the first page concatenates to exactly the model's order; returns the pages."""
    expected = [record["id"] for record in b.model.ordered(**kwargs)]
    pages = walk_forward(b.store, limit, **kwargs)
    assert _ids(pages) == expected
    # Every page but the last is full and says there is more; the last one says there is not.
    for page in pages[:-1]:
        assert len(page.data) == limit
        assert page.has_more is True
    assert pages[-1].has_more is False
    assert 0 < len(pages[-1].data) <= limit or expected == []
    # Each page is exactly the model's page for the same cursor.
    cursor: dict[str, Any] = {}
    for page in pages:
        assert_same_page(page, b.model.list(limit=limit, **cursor, **kwargs))
        cursor = {"after": str(page.last_id)}
    if expected:
        beyond = b.store.list(limit=limit, after=expected[-1], **kwargs)
        assert (beyond.data, beyond.first_id, beyond.last_id, beyond.has_more) == ((), None, None, False)
    return pages


def check_backward_walk(b: Built, forward: list[Page[Any]], limit: int, **kwargs: Any) -> None:
    """``before=page.first_id`` from the last page walks back over the same sequence."""
    expected = _ids(forward)
    pages = [forward[-1]]
    while pages[0].data and len(pages) <= len(expected) + 1:
        page = b.store.list(limit=limit, before=pages[0].first_id, **kwargs)
        assert_same_page(page, b.model.list(limit=limit, before=pages[0].first_id, **kwargs))
        if not page.data:
            break
        pages.insert(0, page)
        if not page.has_more:
            break
    assert _ids(pages) == expected
    # Walking back, has_more is false exactly on the page that reaches the start of the list.
    backward = pages[:-1]
    if backward:
        assert backward[0].has_more is False
        assert all(page.has_more is True for page in backward[1:])
        assert all(len(page.data) == limit for page in backward)
    if expected:
        start = b.store.list(limit=limit, before=expected[0], **kwargs)
        assert (start.data, start.has_more) == ((), False)


def check_round_trips(b: Built, pages: list[Page[Any]], limit: int, **kwargs: Any) -> None:
    """A ``before`` page followed by an ``after`` page returns to the same place, and the other way round."""
    # has_more looks in the direction of travel: before a page, it says whether pages lie further back.
    for number, (previous, page) in enumerate(itertools.pairwise(pages)):
        back = b.store.list(limit=limit, before=page.first_id, **kwargs)
        assert (back.data, back.first_id, back.last_id) == (previous.data, previous.first_id, previous.last_id)
        assert back.has_more is (number > 0)
        assert b.store.list(limit=limit, after=back.last_id, **kwargs) == page
    for number, page in enumerate(pages[:-1]):
        following = b.store.list(limit=limit, after=page.last_id, **kwargs)
        back = b.store.list(limit=limit, before=following.first_id, **kwargs)
        assert (back.data, back.has_more) == (page.data, number > 0)


def _keywords(name: str, value: Any) -> dict[str, Any]:
    return {name: value}


def check_deleted_cursors(b: Built, owner: str | None, limit: int, **kwargs: Any) -> None:
    """A cursor whose record was deleted still places the page where the record stood."""
    for id in b.deleted(owner):
        for side in ("after", "before"):
            page = b.store.list(limit=limit, owner=owner, **_keywords(side, id), **kwargs)
            assert_same_page(page, b.model.list(limit=limit, owner=owner, **_keywords(side, id), **kwargs))
            assert id not in [record.id for record in page.data]


def check_recreated_id(b: Built, order: str) -> None:
    """A deleted id created again takes its new place (this changes the store: check it last)."""
    deleted = b.deleted(None)
    if not deleted:
        return
    id = deleted[0]
    kwargs: dict[str, Any] = {"id": id, "model": "gpt-a", "owner": None, "status": "in_progress", "metadata": None}
    assert observe(b.store.create(**kwargs)) == b.model.create(**kwargs)
    everything = _ids(walk_forward(b.store, 100, order=order))
    assert everything == [record["id"] for record in b.model.ordered(order=order)]
    for side in ("after", "before"):
        assert_same_page(
            b.store.list(limit=3, order=order, **_keywords(side, id)),
            b.model.list(limit=3, order=order, **_keywords(side, id)),
        )


# ---------------------------------------------------------------------- refusals


# ---------------------------------------------------------------------- work done


class OrderingTests(ContractBase):
    """Ordering and cursor paging, as properties over random stores, compared with the plain ``StoreModel``."""

    def test_paging_walks_agree_with_the_model(self) -> None:
        """Forward and backward walks, round trips and deleted cursors agree with the model on random stores.

        A durable backend gets :meth:`~ContractBase.examples` of the profile's count, since ``_check()`` runs after
        every operation while a store is built and reads every record.
        """

        @self.hypothesis(self.examples(self.profile_examples()))
        @given(ops=operations, limit=limits, order=orders, filters=list_filters, owner=walk_owners)
        def walks(ops: list[Any], limit: int, order: str, filters: dict[str, Any], owner: str | None) -> None:
            with built(self, ops) as b:
                event(f"{len(b.model.ordered(owner, order=order, **filters)) // limit} full pages")
                pages = check_forward_walk(b, limit, order=order, owner=owner, **filters)
                check_backward_walk(b, pages, limit, order=order, owner=owner, **filters)
                check_round_trips(b, pages, limit, order=order, owner=owner, **filters)
                check_deleted_cursors(b, owner, limit, order=order, **filters)
                check_recreated_id(b, order)

        walks()

    @pytest.fixture
    def small_store(self, new_store: Any, clock: FakeClock) -> BaseStore:
        store: BaseStore = new_store(clock=clock)
        for n in range(5):
            store.create("gpt-a", id=f"r{n}")
        store.create("gpt-a", id="theirs", owner="other")
        store.delete("r4")
        return store

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"limit": 0},
            {"limit": 101},
            {"limit": -1},
            {"limit": True},
            {"limit": 2.0},
            {"order": "sideways"},
            {"order": "ASC"},
            {"after": "r1", "before": "r2"},
            {"after": "nobody"},
            {"before": "nobody"},
            {"after": "theirs"},  # another owner's id is unknown to this owner
            {"before": "theirs"},
            {"after": "not a valid id!"},
        ],
        ids=repr,
    )
    def test_bad_paging_arguments_are_invalid_and_change_nothing(
        self, small_store: BaseStore, kwargs: dict[str, Any]
    ) -> None:
        before = (len(small_store), [observe(r) for r in small_store.list(limit=100, order="asc").data])
        with pytest.raises(InvalidArgument):
            small_store.list(**kwargs)
        assert issubclass(InvalidArgument, ResponseStoreError)
        assert (len(small_store), [observe(r) for r in small_store.list(limit=100, order="asc").data]) == before
        # The same arguments are checked the same way for input items (cursors there are item ids).
        if "after" not in kwargs and "before" not in kwargs:
            with pytest.raises(InvalidArgument):
                small_store.input_items("r0", **kwargs)

    def test_the_limits_themselves_are_fine(self, small_store: BaseStore) -> None:
        assert [r.id for r in small_store.list(limit=1).data] == ["r3"]
        assert [r.id for r in small_store.list(limit=100, order="asc").data] == ["r0", "r1", "r2", "r3"]
        assert [r.id for r in small_store.list(after="r4", order="asc").data] == []  # r4 was deleted, and was last
        assert [r.id for r in small_store.list(before="r4", order="asc", limit=2).data] == ["r2", "r3"]

    def test_a_page_pulls_at_most_limit_plus_one_records_whatever_the_store_size(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        clock = FakeClock()
        store = self.open_fast(clock=clock)
        try:
            for n in range(5_000):
                if n % 7 == 0:
                    clock.advance(1)  # runs of equal timestamps
                store.create("gpt-a", id=f"r{n}")
            pulled = 0
            paginate = _paging.paginate

            def counting_paginate(scan: Callable[..., Iterator[Any]], *args: Any) -> Any:
                def counting_scan(cursor: str | None, descending: bool) -> Iterator[Any]:
                    nonlocal pulled
                    for record in scan(cursor, descending):
                        pulled += 1
                        yield record

                return paginate(counting_scan, *args)

            # Every backend builds its pages with the shared paginate over its own scan: count what the scan yields.
            monkeypatch.setattr(_paging, "paginate", counting_paginate)
            cases: list[tuple[dict[str, Any], list[str]]] = [
                ({"order": "desc"}, [f"r{n}" for n in range(4999, 4979, -1)]),
                ({"order": "asc"}, [f"r{n}" for n in range(20)]),
                ({"order": "desc", "after": "r2500"}, [f"r{n}" for n in range(2499, 2479, -1)]),
                ({"order": "asc", "after": "r2500"}, [f"r{n}" for n in range(2501, 2521)]),
                ({"order": "desc", "before": "r2500"}, [f"r{n}" for n in range(2520, 2500, -1)]),
                ({"order": "asc", "before": "r2500"}, [f"r{n}" for n in range(2480, 2500)]),
            ]
            for kwargs, expected in cases:
                pulled = 0
                page = store.list(limit=20, **kwargs)
                assert [record.id for record in page.data] == expected, kwargs
                assert page.has_more is True
                assert 1 <= pulled <= 21, (kwargs, pulled)
        finally:
            close = getattr(store, "close", None)
            if close is not None:
                close()
