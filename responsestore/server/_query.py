"""Query parameters and other integers a request writes as text, checked one way everywhere.

An integer in a query (``limit``, ``starting_after``) or a header (``Content-Length``) is ASCII digits and nothing
else: no sign, no spaces, no ``_`` separators and no other script's digits, all of which Python's ``int()`` would
take (``int("1_0") == 10``, ``int("١٢") == 12``, ``int(" +7 ") == 7``). Transport-free: a transport parses the
query string into a mapping (the last value of a repeated name wins) and calls :func:`integer`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import overload
from urllib.parse import parse_qsl

from responsestore._checks import describe

from ._errors import ApiError

__all__ = ["LARGEST", "decimal", "integer", "parse"]

#: The largest integer a query parameter may hold (a sequence number is a signed 64-bit integer).
LARGEST = 2**63 - 1

_DIGITS = re.compile("[0-9]{1,19}")


def decimal(text: str) -> int | None:
    """The value of ``text`` if it is 1 to 19 ASCII digits (no sign, spaces or separators), else ``None``."""
    if _DIGITS.fullmatch(text) is None:
        return None
    return int(text)


def parse(query: str) -> dict[str, str]:
    """A query string's parameters (percent-decoded; the last value of a repeated name wins; blank values kept)."""
    return dict(parse_qsl(query, keep_blank_values=True))


@overload
def integer(query: Mapping[str, str], name: str, default: int, low: int = 0, high: int = LARGEST) -> int: ...
@overload
def integer(query: Mapping[str, str], name: str, default: None, low: int = 0, high: int = LARGEST) -> int | None: ...
def integer(query: Mapping[str, str], name: str, default: int | None, low: int = 0, high: int = LARGEST) -> int | None:
    """The integer query parameter ``name``, from ``low`` to ``high``; ``default`` when the query has none.

    Raises:
        ApiError: ``400`` ``invalid_value`` naming ``name``: not ASCII digits, or out of range.
    """
    text = query.get(name)
    if text is None:
        return default
    value = decimal(text)
    if value is None or not low <= value <= high:
        bound = f"from {low} to {high}" if high != LARGEST else f"of at least {low}"
        raise ApiError(
            400,
            f"{name!r} must be an integer {bound} written in ASCII digits, not {describe(text)}.",
            param=name,
            code="invalid_value",
        )
    return value
