"""``Page`` and the cursor paging every backend shares.

A backend supplies one primitive, a *scan*: ``scan(cursor, descending)`` yields items strictly after the item
whose id is ``cursor`` (from the very start when ``cursor`` is ``None``) in the requested direction, and raises
:class:`~responsestore.InvalidArgument` for an unknown cursor. Everything else — argument checks, filters,
``after``/``before``, ``has_more`` — is here, once.

Semantics (for ``order="desc"``, newest first; ``"asc"`` mirrors it):

- ``after=X``: the ``limit`` items that follow ``X`` in the list's order.
- ``before=X``: the ``limit`` items immediately preceding ``X`` (the previous page), still in the list's order.
- ``has_more``: whether more items lie beyond the page in the direction of travel (after the last item for
  ``after`` and first pages, before the first item for ``before``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

import attrs

from ._checks import check_int, describe
from ._ids import check_id
from ._records import ResponseRecord, check_metadata, to_status
from ._wire import item_json, list_json, response_json
from .errors import InvalidArgument

__all__ = [
    "MAX_LIMIT",
    "Page",
    "PageQuery",
    "make_record_filter",
    "paginate",
    "paginate_records",
    "paginate_sequence",
    "scan_sequence",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
M = TypeVar("M", bound=Mapping[str, Any])

MAX_LIMIT = 100


@attrs.frozen(slots=True)
class Page(Generic[T_co]):
    """One page of a list: the items, the ids at both ends, and whether more lie beyond.

    ``first_id`` and ``last_id`` are ``None`` for an empty page. Pass ``after=page.last_id`` to get the next
    page and ``before=page.first_id`` to get the previous one.
    """

    data: tuple[T_co, ...]
    first_id: str | None
    last_id: str | None
    has_more: bool

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[T_co]:
        return iter(self.data)

    def to_openai(self) -> dict[str, Any]:
        """Return OpenAI's list JSON: ``{"object": "list", "data": [...], "first_id", "last_id", "has_more"}``.

        Records become their :meth:`~responsestore.ResponseRecord.to_openai` dicts; items fresh, plain copies as
        OpenAI lists them (a message, function call or function call output with its ``status``), exactly as the
        server's ``input_items`` route sends them, so the SDK's ``ResponseItemList`` and the Open Responses item
        schemas accept them. For an empty page ``first_id`` and ``last_id`` are ``""``.
        """
        data = [
            # A page holds records or items (mappings); nothing else.
            response_json(item) if isinstance(item, ResponseRecord) else item_json(item)  # type: ignore[arg-type]
            for item in self.data
        ]
        return list_json(data, self)


@attrs.frozen(slots=True)
class PageQuery:
    """Validated paging arguments."""

    limit: int
    after: str | None
    before: str | None
    descending: bool

    @classmethod
    def check(cls, limit: object, after: object, before: object, order: object) -> PageQuery:
        """Validate ``limit`` (1..100), ``after``/``before`` (ids, not both) and ``order`` (asc/desc).

        Raises:
            InvalidArgument: an argument is out of range, of the wrong type, or both cursors are given.
        """
        first_page = after is None and before is None and limit.__class__ is int and order.__class__ is str
        if first_page:  # the common query: its checked form is kept (at most 200 of them: 100 limits, 2 orders)
            known = _FIRST_PAGES.get((limit, order))  # type: ignore[arg-type]
            if known is not None:
                return known
        checked = check_int(limit, "limit", minimum=1, maximum=MAX_LIMIT)
        if order not in ("asc", "desc"):
            raise InvalidArgument(f"order must be 'asc' or 'desc', not {describe(order)}")
        if after is not None and before is not None:
            raise InvalidArgument("pass after or before, not both")
        query = cls(
            limit=checked,  # type: ignore[arg-type]
            after=None if after is None else check_id(after, "after"),
            before=None if before is None else check_id(before, "before"),
            descending=order == "desc",
        )
        if first_page:
            _FIRST_PAGES[limit, order] = query  # type: ignore[index]
        return query


_FIRST_PAGES: dict[tuple[int, str], PageQuery] = {}  # checked first-page queries by (limit, order)


def known_first_page(limit: object, order: object) -> PageQuery | None:
    """The checked query of a first page (no cursor) of ``limit`` and ``order``, if one was checked before.

    ``None`` means "not known": check the arguments with :meth:`PageQuery.check` (which remembers them).
    """
    if limit.__class__ is int and order.__class__ is str:
        return _FIRST_PAGES.get((limit, order))
    return None


_new = object.__new__
_set_data, _set_first, _set_last, _set_more = (
    Page.__dict__[name].__set__ for name in ("data", "first_id", "last_id", "has_more")
)


def _page(data: tuple[T, ...], first_id: str | None, last_id: str | None, has_more: bool) -> Page[T]:
    """``Page(data, first_id, last_id, has_more)`` without the generated ``__init__`` (the same result, faster)."""
    page: Page[T] = _new(Page)
    _set_data(page, data)
    _set_first(page, first_id)
    _set_last(page, last_id)
    _set_more(page, has_more)
    return page


_EMPTY_PAGE: Page[Any] = Page(data=(), first_id=None, last_id=None, has_more=False)


def paginate(
    scan: Callable[[str | None, bool], Iterable[T]],
    query: PageQuery,
    item_id: Callable[[T], str],
    matches: Callable[[T], bool] | None = None,
) -> Page[T]:
    """Build the page ``query`` asks for from a backend's ``scan`` (see the module docstring)."""
    backwards = query.before is not None
    cursor = query.before if backwards else query.after
    items: list[T] = []
    wanted = query.limit + 1
    for item in scan(cursor, query.descending != backwards):
        if matches is None or matches(item):
            items.append(item)
            if len(items) == wanted:
                break
    has_more = len(items) > query.limit
    del items[query.limit :]
    if backwards:
        items.reverse()
    if not items:
        return _EMPTY_PAGE
    return _page(tuple(items), item_id(items[0]), item_id(items[-1]), has_more)


def unknown_cursor(cursor: str) -> InvalidArgument:
    """The error for a cursor that names no item in the list."""
    return InvalidArgument(f"unknown cursor {cursor!r}: no such item in this list", id=cursor)


def paginate_sequence(items: Sequence[M], query: PageQuery, item_id: Callable[[M], str]) -> Page[M]:
    """``paginate`` over ``scan_sequence(items, ...)`` with no filter, by slicing (input items of one response).

    Raises:
        InvalidArgument: the cursor is not the id of an item in ``items``.
    """
    backwards = query.before is not None
    cursor = query.before if backwards else query.after
    if cursor is None:
        return first_sequence_page(items, query)
    descending = query.descending != backwards
    start = _start(items, cursor, descending)
    available = start + 1 if descending else len(items) - start  # items from ``start`` in the scan's direction
    take = min(query.limit, available)
    if take <= 0:
        return _EMPTY_PAGE
    if descending:
        stop = start - take
        chosen = tuple(items[start : None if stop < 0 else stop : -1])
    else:
        chosen = tuple(items[start : start + take])
    if backwards:
        chosen = chosen[::-1]
    return _page(chosen, item_id(chosen[0]), item_id(chosen[-1]), available > take)


def first_sequence_page(items: Sequence[M], query: PageQuery) -> Page[M]:
    """The first page (``query`` has no cursor) of an in-order sequence of items with ``"id"`` keys.

    What :func:`paginate_sequence` returns for such a query, by one slice.
    """
    limit = query.limit
    chosen = tuple(items[: -limit - 1 : -1] if query.descending else items[:limit])
    if not chosen:
        return _EMPTY_PAGE
    return _page(chosen, chosen[0]["id"], chosen[-1]["id"], len(items) > limit)


def _start(items: Sequence[M], cursor: str | None, descending: bool) -> int:
    """Where a scan of ``items`` in this direction starts: the first index strictly after ``cursor``."""
    if cursor is None:
        return len(items) - 1 if descending else 0
    position = next((i for i, item in enumerate(items) if item["id"] == cursor), None)
    if position is None:
        raise unknown_cursor(cursor)
    return position - 1 if descending else position + 1


def scan_sequence(items: Sequence[M], cursor: str | None, descending: bool) -> Iterator[M]:
    """A scan over an in-order sequence of items with ``"id"`` keys (input items of one response).

    Raises:
        InvalidArgument: ``cursor`` is not the id of an item in ``items``.
    """
    start = _start(items, cursor, descending)
    if descending:
        return (items[i] for i in range(start, -1, -1))
    return (items[i] for i in range(start, len(items)))


def make_record_filter(model: object, status: object, metadata: object) -> Callable[[ResponseRecord], bool] | None:
    """Validate ``list``'s filters and return a predicate (``None`` when there is no filter).

    ``model`` and ``status`` must equal the record's; ``metadata`` must be a subset of the record's metadata.

    Raises:
        InvalidArgument: a filter has the wrong type or is not a status.
    """
    if model is not None and not isinstance(model, str):
        raise InvalidArgument(f"model filter must be a string, not {type(model).__name__}")
    wanted_status = None
    if status is not None:
        wanted_status = to_status(status, "status filter")
    wanted_metadata = None if metadata is None else check_metadata(metadata).items()
    if model is None and wanted_status is None and not wanted_metadata:
        return None

    def matches(record: ResponseRecord) -> bool:
        if model is not None and record.model != model:
            return False
        if wanted_status is not None and record.status is not wanted_status:
            return False
        return not wanted_metadata or wanted_metadata <= record.metadata.items()

    return matches


def paginate_records(
    scan: Callable[[str | None, bool], Iterable[ResponseRecord]],
    query: PageQuery,
    matches: Callable[[ResponseRecord], bool] | None = None,
) -> Page[ResponseRecord]:
    """:func:`paginate` over a backend's scan of records (what every backend's ``_page`` does in its snapshot)."""
    return paginate(scan, query, _record_id, matches)


def _record_id(record: ResponseRecord) -> str:
    return record.id
