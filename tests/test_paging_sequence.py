"""``paginate_sequence`` (input items, by slicing) gives exactly the page ``paginate`` over ``scan_sequence`` gives."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from responsestore import InvalidArgument
from responsestore._json import freeze
from responsestore._paging import PageQuery, paginate, paginate_sequence, scan_sequence


def _id(item: Any) -> str:
    value: str = item["id"]
    return value


@given(
    count=st.integers(0, 12),
    limit=st.integers(1, 15),
    cursor=st.one_of(st.none(), st.integers(-1, 13)),
    before=st.booleans(),
    order=st.sampled_from(["asc", "desc"]),
)
def test_slicing_gives_the_scanned_page(count: int, limit: int, cursor: int | None, before: bool, order: str) -> None:
    items = tuple(freeze({"id": f"i{n}", "n": n}) for n in range(count))
    cursor_id = None if cursor is None else f"i{cursor}"
    query = PageQuery.check(limit, None if before else cursor_id, cursor_id if before else None, order)
    if cursor_id is not None and not 0 <= int(cursor_id[1:]) < count:
        with pytest.raises(InvalidArgument, match="unknown cursor"):
            paginate(lambda c, descending: scan_sequence(items, c, descending), query, _id)
        with pytest.raises(InvalidArgument, match=f"unknown cursor {cursor_id!r}"):
            paginate_sequence(items, query, _id)
        return
    expected = paginate(lambda c, descending: scan_sequence(items, c, descending), query, _id)
    page = paginate_sequence(items, query, _id)
    assert page == expected
    assert all(a is b for a, b in zip(page.data, expected.data, strict=True))  # the items themselves, no copies
