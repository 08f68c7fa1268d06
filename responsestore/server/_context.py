"""The context of a request: the items of the ``previous_response_id`` chain it continues, then its own input."""

from __future__ import annotations

from typing import Any

from responsestore import _wire
from responsestore._contract import BaseStore
from responsestore._items import normalize_input
from responsestore.errors import InvalidArgument, ResponseNotFound

from ._errors import ApiError, store_error

__all__ = ["chain_history", "conversation"]


def chain_history(store: BaseStore, owner: str | None, previous_response_id: str | None) -> tuple[dict[str, Any], ...]:
    """The items of the chain a request continues (none if it names no previous response), as stored.

    Raises:
        ApiError: ``404`` ``previous_response_not_found`` (missing, or another owner's); ``400``
            ``invalid_previous_response``: it has not finished yet.
        ResponseStoreError: the store failed.
    """
    if previous_response_id is None:
        return ()
    try:
        previous = store.get(previous_response_id, owner=owner)
        history = store.conversation(previous.id, owner=owner)
    except ResponseNotFound:
        raise ApiError(
            404,
            f"Previous response with id {previous_response_id!r} not found.",
            param="previous_response_id",
            code="previous_response_not_found",
        ) from None
    if not previous.is_terminal:  # checked here for store=false too, which never reaches store.create
        raise ApiError(
            400,
            f"Previous response {previous.id!r} is still {previous.status.value}; continue it once it has finished.",
            param="previous_response_id",
            code="invalid_previous_response",
        )
    return history


def conversation(
    store: BaseStore, owner: str | None, previous_response_id: str | None, input: object
) -> tuple[dict[str, Any], ...]:
    """The chain's items, then ``input``'s items as the store would keep them (ids given, messages completed).

    For requests that read a context without creating a response (compaction, token counts).

    Raises:
        ApiError: as :func:`chain_history`, or ``400`` (``param`` ``input``) for a malformed item.
    """
    history = chain_history(store, owner, previous_response_id)
    try:
        items = normalize_input(input)
    except InvalidArgument as exc:
        raise store_error(exc, "input") from None
    return history + tuple(_wire.item_json(item) for item in items)
