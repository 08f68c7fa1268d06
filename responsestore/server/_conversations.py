"""The Conversations API over any store, transport-free: request checks, store calls and OpenAI's JSON.

Routes (under the app's ``/v1``)::

    POST   /conversations                          create: {"items": [...] (at most 20), "metadata": {...}}
    GET    /conversations/{id}                     the conversation
    POST   /conversations/{id}                     update: {"metadata": {...}}
    DELETE /conversations/{id}                     {"id", "object": "conversation.deleted", "deleted": true}
    GET    /conversations/{id}/items               a page of items: after, limit (1-100), order (default desc)
    POST   /conversations/{id}/items               add items: {"items": [...]} (1 to 20), in one atomic write
    GET    /conversations/{id}/items/{item_id}     one item
    DELETE /conversations/{id}/items/{item_id}     delete one item; answers the conversation

``include`` (query) is accepted and has no effect: items are stored whole, so everything it could add is there.
The route table (:mod:`~responsestore.server._routes`) names each operation; a transport calls :func:`run` and
renders the JSON it returns (``200``) or the :class:`~responsestore.server._errors.ApiError` it raises.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from responsestore import _wire
from responsestore._contract import BaseStore
from responsestore.errors import InvalidArgument, ResponseStoreError

from ._errors import ApiError, store_error
from ._query import integer

__all__ = ["OPERATIONS", "Operation", "run"]

Args = tuple[str, ...]
Query = Mapping[str, str]
Body = Callable[[], object]
#: An operation: (store, owner, the ids in the path, the query, a reader of the parsed body) -> the JSON reply.
Operation = Callable[[BaseStore, "str | None", Args, Query, Body], Any]

_CREATE_FIELDS = frozenset({"items", "metadata"})
_UPDATE_FIELDS = frozenset({"metadata"})
_ITEMS_FIELDS = frozenset({"items"})


def _object(body: object, allowed: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_request")
    unknown = sorted(set(body) - allowed)
    if unknown:
        name = unknown[0]
        raise ApiError(400, f"Unknown parameter: {name[:100]!r}.", param=name[:100], code="unknown_parameter")
    return body


def _items_of(body: Mapping[str, Any], *, required: bool) -> Sequence[Any]:
    items = body.get("items")
    if items is None and not required:
        return ()
    if not isinstance(items, list):
        raise ApiError(400, "'items' must be a list of items.", param="items", code="invalid_type")
    return items


def _metadata_of(body: Mapping[str, Any]) -> Any:
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise ApiError(400, "'metadata' must be an object of strings.", param="metadata", code="invalid_type")
    return metadata


def _list_json(items: Sequence[Mapping[str, Any]], first: str | None, last: str | None, *, more: bool) -> Any:
    return {
        "object": "list",
        "data": [_wire.item_json(item) for item in items],
        "first_id": first or "",
        "last_id": last or "",
        "has_more": more,
    }


def _create(store: BaseStore, owner: str | None, args: Args, query: Query, body: Body) -> Any:
    request = _object(body(), _CREATE_FIELDS)
    items = _items_of(request, required=False)
    return store.create_conversation(items, metadata=_metadata_of(request), owner=owner).to_openai()


def _retrieve(store: BaseStore, owner: str | None, args: Args, query: Query, body: Body) -> Any:
    return store.get_conversation(args[0], owner=owner).to_openai()


def _update(store: BaseStore, owner: str | None, args: Args, query: Query, body: Body) -> Any:
    request = _object(body(), _UPDATE_FIELDS)
    if "metadata" not in request:
        raise ApiError(
            400, "Missing required parameter: 'metadata'.", param="metadata", code="missing_required_parameter"
        )
    return store.update_conversation(args[0], metadata=_metadata_of(request), owner=owner).to_openai()


def _delete(store: BaseStore, owner: str | None, args: Args, query: Query, body: Body) -> Any:
    store.delete_conversation(args[0], owner=owner)
    return {"id": args[0], "object": "conversation.deleted", "deleted": True}


def _list_items(store: BaseStore, owner: str | None, args: Args, query: Query, body: Body) -> Any:
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise ApiError(400, "'order' must be 'asc' or 'desc'.", param="order", code="invalid_value")
    limit = integer(query, "limit", 20, 1, 100)
    after = query.get("after") or None
    try:
        page = store.conversation_items(args[0], limit=limit, after=after, order=order, owner=owner)
    except InvalidArgument as exc:
        raise store_error(exc, "after") from None
    return _list_json(page.data, page.first_id, page.last_id, more=page.has_more)


def _add_items(store: BaseStore, owner: str | None, args: Args, query: Query, body: Body) -> Any:
    items = _items_of(_object(body(), _ITEMS_FIELDS), required=True)
    added = store.add_conversation_items(args[0], items, owner=owner)
    return _list_json(added, added[0]["id"], added[-1]["id"], more=False)


def _retrieve_item(store: BaseStore, owner: str | None, args: Args, query: Query, body: Body) -> Any:
    return _wire.item_json(store.get_conversation_item(args[0], args[1], owner=owner))


def _delete_item(store: BaseStore, owner: str | None, args: Args, query: Query, body: Body) -> Any:
    return store.delete_conversation_item(args[0], args[1], owner=owner).to_openai()


#: The conversation operations of the route table, by name: each answers ``200`` with the JSON it returns, or
#: raises :class:`ApiError` or a store error (the transport renders it with :func:`store_error`).
OPERATIONS: Mapping[str, Operation] = {
    "create_conversation": _create,
    "retrieve_conversation": _retrieve,
    "update_conversation": _update,
    "delete_conversation": _delete,
    "list_conversation_items": _list_items,
    "create_conversation_items": _add_items,
    "retrieve_conversation_item": _retrieve_item,
    "delete_conversation_item": _delete_item,
}


def run(operation: str, store: BaseStore, owner: str | None, args: Args, query: Query, body: Body) -> Any:  # noqa: PLR0917
    """Answer one conversation operation: its JSON, or :class:`ApiError` (store errors mapped, ``param`` named)."""
    try:
        return OPERATIONS[operation](store, owner, args, query, body)
    except ResponseStoreError as exc:
        raise store_error(exc, _param_of(exc)) from None


def _param_of(exc: ResponseStoreError) -> str | None:
    message = str(exc)
    for name in ("items", "metadata"):
        if message.startswith(name):
            return name
    return None
