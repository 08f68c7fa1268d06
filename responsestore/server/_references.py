"""``item_reference`` input items: a request names a stored item by its id, and the response gets the item itself.

``{"type": "item_reference", "id": "msg_…"}`` (the Open Responses ``ItemReferenceParam``; its ``type`` may also be
``null`` or absent) stands for an item of one of the owner's stored responses, input or output. The reference is
resolved when the request arrives: the response stores, lists (``input_items``) and hands the model the item it
names, so it stays valid when the referenced response is gone, and every listed item is a complete item. An item of
the chain the request continues (``previous_response_id``) is found there at once; any other through
:meth:`~responsestore.BaseStore.find_item`, the newest response's when several hold the id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from responsestore._checks import describe
from responsestore._contract import BaseStore
from responsestore._ids import check_id
from responsestore.errors import InvalidArgument

from ._errors import ApiError

__all__ = ["MAX_LOOKUPS", "check_call_outputs", "is_reference", "resolve_references"]

#: How many distinct items outside the continued chain one request may refer to: each costs the store a look
#: through the owner's responses (a whole walk for an id that no response holds).
MAX_LOOKUPS = 100


def is_reference(item: object) -> bool:
    """Whether an input item is an ``item_reference``: that ``type``, or no ``type`` (or ``null``) and no ``role``."""
    if not isinstance(item, Mapping):
        return False
    kind = item.get("type")
    return kind == "item_reference" or (kind is None and "role" not in item and "id" in item)


def resolve_references(
    store: BaseStore, input: str | list[Any], history: Sequence[Mapping[str, Any]], *, owner: str | None
) -> str | list[Any]:
    """``input`` with each ``item_reference`` replaced by the stored item it names (``input`` itself if none).

    ``history`` is the conversation of the chain the request continues (its items are looked at first).

    Raises:
        InvalidArgument: a reference is malformed, names no item of this owner, or the request refers to more
            than :data:`MAX_LOOKUPS` items outside its chain; the message names the item and its place in
            ``input``.
    """
    if isinstance(input, str) or not any(is_reference(item) for item in input):
        return input
    chain: dict[str, Mapping[str, Any]] = {}
    for item in history:  # later items win: the newest holder of an id, as find_item has it
        item_id = item.get("id")
        if isinstance(item_id, str):
            chain[item_id] = item
    found: dict[str, Mapping[str, Any]] = {}
    resolved: list[Any] = []
    for index, item in enumerate(input):
        if not is_reference(item):
            resolved.append(item)
            continue
        extra = sorted(set(item) - {"type", "id"})
        if extra:
            raise InvalidArgument(f"input[{index}] is an item_reference, which has only 'type' and 'id', not {extra}")
        item_id = check_id(item.get("id"), f"input[{index}] is an item_reference whose 'id'")
        target = chain.get(item_id) or found.get(item_id)
        if target is None:
            if len(found) >= MAX_LOOKUPS:
                raise InvalidArgument(
                    f"input[{index}] is one item_reference too many: a request may refer to at most {MAX_LOOKUPS}"
                    " items outside the response it continues"
                )
            target = store.find_item(item_id, owner=owner)
            if target is None:
                raise InvalidArgument(f"input[{index}] refers to item {describe(item_id)}, which was not found")
            found[item_id] = target
        resolved.append(target)
    return resolved


def check_call_outputs(input: str | list[Any], history: Sequence[Mapping[str, Any]]) -> None:
    """Refuse a ``function_call_output`` answering no ``function_call`` of ``history`` or of ``input`` before it.

    For a request that continues a chain or a conversation (``history`` not empty), as OpenAI does: the output of
    a call the model never made is a client's mistake (a stale or mistyped ``call_id``). A context holding a
    ``compaction`` item is not checked (its calls are folded into it).

    Raises:
        ApiError: ``400`` ``invalid_value`` (``param`` ``input``) naming the ``call_id``.
    """
    if isinstance(input, str) or not history or any(item.get("type") == "compaction" for item in history):
        return
    calls = {item.get("call_id") for item in history if item.get("type") == "function_call"}
    for index, item in enumerate(input):
        if not isinstance(item, Mapping):
            continue
        if item.get("type") == "function_call":
            calls.add(item.get("call_id"))
        elif item.get("type") == "function_call_output" and item.get("call_id") not in calls:
            raise ApiError(
                400,
                f"No tool call found for function call output with call_id {describe(item.get('call_id'))} "
                f"(input[{index}]).",
                param="input",
                code="invalid_value",
            )
