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
A transport calls :meth:`ConversationRoutes.handle` and renders the ``(status, JSON)`` it returns or the
:class:`~responsestore.server._errors.ApiError` it raises.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from responsestore import _wire
from responsestore._contract import BaseStore
from responsestore.errors import (
    ConversationFull,
    ConversationNotFound,
    InvalidArgument,
    ItemNotFound,
    ResponseStoreError,
)

from ._errors import ApiError, store_error

__all__ = ["ConversationRoutes", "conversation_error", "conversation_id_of"]

Reply = tuple[int, Any]

_CREATE_FIELDS = frozenset({"items", "metadata"})
_UPDATE_FIELDS = frozenset({"metadata"})
_ITEMS_FIELDS = frozenset({"items"})


def conversation_error(exc: ResponseStoreError, param: str | None = None) -> ApiError:
    """The refusal a store error of a conversation call means (others as :func:`store_error` says)."""
    if isinstance(exc, ConversationNotFound):
        return ApiError(404, f"Conversation with id {exc.id!r} not found.", param=param, code="not_found")
    if isinstance(exc, ItemNotFound):
        return ApiError(404, f"Item with id {exc.item_id!r} not found.", code="not_found")
    if isinstance(exc, ConversationFull):
        if exc.bound == "max_records":
            return ApiError(503, str(exc), code="store_full")
        return ApiError(400, str(exc), param="items", code="conversation_full")
    return store_error(exc, param)


def conversation_id_of(value: object) -> str:
    """The id a create request's ``conversation`` names: a string, or an object with a string ``id``.

    Raises:
        ApiError: ``value`` is neither.
    """
    if isinstance(value, Mapping):
        value = value.get("id")
    if not isinstance(value, str):
        raise ApiError(400, "'conversation' must be a conversation id or an object with an 'id'.", param="conversation")
    return value


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


def _limit(query: Mapping[str, str]) -> int:
    text = query.get("limit", "20")
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 100:
        raise ApiError(400, "'limit' must be an integer from 1 to 100.", param="limit", code="invalid_value")
    return int(text)


def _list_json(items: Sequence[Mapping[str, Any]], first: str | None, last: str | None, *, more: bool) -> Any:
    return {
        "object": "list",
        "data": [_wire.item_json(item) for item in items],
        "first_id": first or "",
        "last_id": last or "",
        "has_more": more,
    }


class ConversationRoutes:
    """The Conversations API of one store: :meth:`handle` answers a request under ``/conversations``."""

    def __init__(self, store: BaseStore) -> None:
        self.store = store

    def handle(
        self,
        method: str,
        parts: Sequence[str],
        owner: str | None,
        query: Mapping[str, str],
        body: Callable[[], object],
    ) -> Reply:
        """Answer ``method`` on ``/conversations/<parts...>``; ``body()`` reads and parses the request body.

        Raises:
            ApiError: the request is refused (404 for an unknown path, 405 for a method the path does not serve).
        """
        count = len(parts)
        if count == 0:
            allowed: tuple[str, ...] = ("POST",)
        elif count == 1:
            allowed = ("GET", "POST", "DELETE")
        elif count == 2 and parts[1] == "items":
            allowed = ("GET", "POST")
        elif count == 3 and parts[1] == "items":
            allowed = ("GET", "DELETE")
        else:
            raise ApiError(404, "No such conversations route.", code="not_found")
        if method not in allowed:
            raise ApiError(405, f"{method} is not allowed here.", code="method_not_allowed", allow=", ".join(allowed))
        try:
            return self._route(method, parts, owner, query, body)
        except ResponseStoreError as exc:
            raise conversation_error(exc, _param_of(exc)) from None

    def _route(
        self, method: str, parts: Sequence[str], owner: str | None, query: Mapping[str, str], body: Callable[[], object]
    ) -> Reply:
        store = self.store
        if not parts:
            request = _object(body(), _CREATE_FIELDS)
            items = _items_of(request, required=False)
            return 200, store.create_conversation(items, metadata=_metadata_of(request), owner=owner).to_openai()
        if len(parts) == 1:
            return self._conversation(method, parts[0], owner, body)
        id = parts[0]
        if len(parts) == 2:
            if method == "POST":
                items = _items_of(_object(body(), _ITEMS_FIELDS), required=True)
                added = store.add_conversation_items(id, items, owner=owner)
                return 200, _list_json(added, added[0]["id"], added[-1]["id"], more=False)
            return 200, self._page(id, owner, query)
        if method == "GET":
            return 200, _wire.item_json(store.get_conversation_item(id, parts[2], owner=owner))
        return 200, store.delete_conversation_item(id, parts[2], owner=owner).to_openai()

    def _conversation(self, method: str, id: str, owner: str | None, body: Callable[[], object]) -> Reply:
        store = self.store
        if method == "GET":
            return 200, store.get_conversation(id, owner=owner).to_openai()
        if method == "DELETE":
            store.delete_conversation(id, owner=owner)
            return 200, {"id": id, "object": "conversation.deleted", "deleted": True}
        request = _object(body(), _UPDATE_FIELDS)
        if "metadata" not in request:
            raise ApiError(400, "Missing required parameter: 'metadata'.", param="metadata", code="missing")
        return 200, store.update_conversation(id, metadata=_metadata_of(request), owner=owner).to_openai()

    def _page(self, id: str, owner: str | None, query: Mapping[str, str]) -> Any:
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise ApiError(400, "'order' must be 'asc' or 'desc'.", param="order", code="invalid_value")
        limit = _limit(query)
        after = query.get("after") or None
        try:
            page = self.store.conversation_items(id, limit=limit, after=after, order=order, owner=owner)
        except InvalidArgument as exc:
            raise conversation_error(exc, "after") from None
        return _list_json(page.data, page.first_id, page.last_id, more=page.has_more)


def _param_of(exc: ResponseStoreError) -> str | None:
    message = str(exc)
    for name in ("items", "metadata"):
        if message.startswith(name):
            return name
    return None
