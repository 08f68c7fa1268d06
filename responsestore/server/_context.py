"""The context of a request: the items of the ``previous_response_id`` chain it continues."""

from __future__ import annotations

from typing import Any

from responsestore._contract import BaseStore
from responsestore.errors import ResponseNotFound

from ._errors import ApiError

__all__ = ["chain_history"]


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
