"""The context of a request: the items of the chain or the conversation it continues, then its own input."""

from __future__ import annotations

from typing import Any

from responsestore import _wire
from responsestore._contract import BaseStore
from responsestore._items import normalize_input
from responsestore.errors import ConversationNotFound, InvalidArgument, ResponseNotFound

from ._errors import ApiError, store_error

__all__ = ["chain_history", "conversation"]


def chain_history(
    store: BaseStore, owner: str | None, previous_response_id: str | None, conversation: str | None = None
) -> tuple[dict[str, Any], ...]:
    """The items of the chain or the conversation a request continues (none if it names neither), as stored.

    Raises:
        ApiError: ``400`` ``previous_response_not_found`` (missing, or another owner's: as OpenAI answers); ``400``
            ``invalid_previous_response``: it has not finished yet; ``404`` ``not_found`` (``param``
            ``conversation``): no such conversation for this owner.
        ResponseStoreError: the store failed.
    """
    if conversation is not None:
        try:
            return tuple(_wire.item_json(item) for item in store.conversation_context(conversation, owner=owner))
        except ConversationNotFound as exc:
            raise store_error(exc, "conversation") from None
    if previous_response_id is None:
        return ()
    try:
        previous = store.get(previous_response_id, owner=owner)
        history = store.conversation(previous.id, owner=owner)
    except ResponseNotFound:
        raise ApiError(
            400,
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
    store: BaseStore,
    owner: str | None,
    previous_response_id: str | None,
    input: object,
    conversation: str | None = None,
) -> tuple[dict[str, Any], ...]:
    """The chain's (or the conversation's) items, then ``input``'s items as the store would keep them.

    For requests that read a context without creating a response (compaction, token counts).

    Raises:
        ApiError: as :func:`chain_history`, or ``400`` (``param`` ``input``) for a malformed item.
    """
    history = chain_history(store, owner, previous_response_id, conversation)
    try:
        items = normalize_input(input)
    except InvalidArgument as exc:
        raise store_error(exc, "input") from None
    return history + tuple(_wire.item_json(item) for item in items)
