"""Identifiers: new ids in OpenAI's shapes, and the check applied to ids that callers choose."""

from __future__ import annotations

import re
import uuid

from ._checks import describe
from .errors import InvalidArgument

__all__ = ["check_id", "new_call_id", "new_item_id", "new_response_id"]

#: Ids travel in URL paths and in SQL and Redis keys: keep them to a safe alphabet and a sane length.
_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")


def new_response_id() -> str:
    """Return a fresh response id: ``resp_`` and 32 hex characters from a random UUID."""
    return "resp_" + uuid.uuid4().hex


def new_item_id(prefix: str = "msg") -> str:
    """Return a fresh item id: ``prefix``, ``_`` and 32 hex characters from a random UUID.

    ``prefix`` says what the item is, as OpenAI's ids do: ``msg`` for a message, ``fc`` for a function call, ...
    """
    return prefix + "_" + uuid.uuid4().hex


def new_call_id() -> str:
    """Return a fresh ``call_id`` for a function call: ``call_`` and 32 hex characters from a random UUID."""
    return "call_" + uuid.uuid4().hex


def check_id(value: object, what: str = "id") -> str:
    """Return ``value`` if it is a usable id, else raise :class:`~responsestore.InvalidArgument`.

    A usable id is 1 to 128 characters from ``A-Z a-z 0-9 _ . : -``.
    """
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a string, not {type(value).__name__}")
    if _ID_PATTERN.fullmatch(value) is None:
        raise InvalidArgument(
            f"{what} {describe(value, 128)} is not a valid id (1 to 128 characters from A-Z a-z 0-9 _ . : -)"
        )
    return value
