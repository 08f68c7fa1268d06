"""Input and output items: the shapes OpenAI lists them in, and the ids that input-item paging needs.

Callers may pass items the way they send them to OpenAI (``{"role": "user", "content": "hi"}`` or a plain
string); the store keeps them the way OpenAI *lists* them, so that what ``input_items`` and ``to_openai`` return
validates against the official SDK:

- a plain string ``input`` becomes one user message;
- an item with a ``role`` and no ``type`` is a ``"message"``;
- a message's string ``content`` becomes one ``input_text`` part (``output_text`` for the assistant);
- an assistant message, ``function_call`` or ``function_call_output`` without a ``status`` is ``"completed"``;
- an item without an ``id`` gets a fresh ``msg_…`` id, because item ids are the cursors of item paging.

Beyond that, items are stored as given (frozen): the store does not validate OpenAI's full item schema.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._checks import describe
from ._ids import check_id, new_item_id
from ._json import FrozenDict, freeze
from .errors import InvalidArgument

__all__ = ["normalize_input", "normalize_items"]

_MESSAGE_ROLES = frozenset({"user", "system", "developer", "assistant"})
# Item types that OpenAI lists with a status; clients usually send them without one.
_STATUS_REQUIRED = frozenset({"function_call", "function_call_output"})


def normalize_input(value: object) -> tuple[FrozenDict, ...]:
    """Freeze ``create``'s ``input``: a string (one user message) or an iterable of item objects.

    Raises:
        InvalidArgument: ``value`` is neither, an item is malformed, or two items share an id.
    """
    if isinstance(value, str):
        return normalize_items([{"role": "user", "content": value}], "input")
    return normalize_items(value, "input")


def normalize_items(value: object, what: str) -> tuple[FrozenDict, ...]:
    """Freeze an iterable of item objects named ``what`` in errors (``"input"`` or ``"output"``).

    Raises:
        InvalidArgument: ``value`` is not an iterable of objects, an item is malformed, or two items share
            an id.
    """
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise InvalidArgument(f"{what} must be a list of item objects, not {type(value).__name__}")
    items: list[FrozenDict] = []
    seen: set[str] = set()
    for index, raw in enumerate(value):
        item = _normalize_item(raw, f"{what}[{index}]")
        item_id = item["id"]
        if item_id in seen:
            raise InvalidArgument(f"{what}[{index}] repeats the item id {item_id!r}")
        seen.add(item_id)
        items.append(item)
    return tuple(items)


def _normalize_item(raw: object, what: str) -> FrozenDict:
    if not isinstance(raw, Mapping):
        raise InvalidArgument(f"{what} must be an item object, not {type(raw).__name__}")
    item: dict[str, Any] = dict(raw)
    item_type = item.get("type")
    if item_type is None:
        if "role" not in item:
            raise InvalidArgument(f"{what} has neither a 'type' nor a 'role'")
        item_type = item["type"] = "message"
    if not isinstance(item_type, str) or not item_type:
        raise InvalidArgument(f"{what} has a 'type' that is not a non-empty string: {describe(item_type)}")
    if item_type == "message":
        _normalize_message(item, what)
    elif item_type in _STATUS_REQUIRED and "status" not in item:
        item["status"] = "completed"
    if "id" in item:
        check_id(item["id"], f"{what}['id']")
    else:
        item["id"] = new_item_id()
    frozen: FrozenDict = freeze(item, what)
    return frozen


def _normalize_message(item: dict[str, Any], what: str) -> None:
    role = item.get("role")
    if not isinstance(role, str) or role not in _MESSAGE_ROLES:
        raise InvalidArgument(f"{what} is a message whose role {describe(role)} is not one of {sorted(_MESSAGE_ROLES)}")
    content = item.get("content")
    if isinstance(content, str):
        if role == "assistant":
            item["content"] = [{"type": "output_text", "text": content, "annotations": []}]
        else:
            item["content"] = [{"type": "input_text", "text": content}]
    elif isinstance(content, (str, bytes, Mapping)) or not isinstance(content, (list, tuple)):
        raise InvalidArgument(
            f"{what} is a message whose content must be a string or a list of parts, not {type(content).__name__}"
        )
    if role == "assistant" and "status" not in item:
        item["status"] = "completed"
