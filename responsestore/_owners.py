"""The stored text form of owners, shared by the backends that keep owners as text (SQLite, Redis)."""

from __future__ import annotations

import json

__all__ = ["encodable", "owner_key", "owner_of"]


def encodable(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8 (it holds no lone surrogate)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def owner_key(owner: str | None) -> str:
    """The stored form of an owner: ``""`` for ``None``, a prefixed string otherwise (never ``""``).

    Raises ``TypeError`` for anything else (``BaseStore.get`` relies on it).
    """
    if owner is None:
        return ""
    if not isinstance(owner, str):
        raise TypeError(f"owner must be a string or None, not {type(owner).__name__}")
    if owner.isascii() or encodable(owner):
        return ":" + owner
    return "~" + json.dumps(owner)  # lone surrogates: escaped, ASCII only


def owner_of(key: str) -> str | None:
    """The owner whose stored form is ``key`` (the inverse of :func:`owner_key`)."""
    if key == "":
        return None
    if key[0] == ":":
        return key[1:]
    owner: str = json.loads(key[1:])
    return owner
