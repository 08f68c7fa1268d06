"""Argument checking: one function and one message per kind of mistake, and the bounded description of a value.

An error message must stay useful and small whatever the caller passed: a 4 MB string, an int with a million
digits, a list nested 10,000 deep, or an object whose ``repr`` raises. :func:`describe` is the one place that
turns a value into words for a message; every check in the package uses it instead of ``repr()``.
"""

from __future__ import annotations

import enum
import math
import re

__all__ = [
    "MAX_DESCRIPTION",
    "check_bool",
    "check_callable",
    "check_int",
    "check_owner",
    "check_text",
    "describe",
    "has_lone_surrogate",
]

#: How many characters of a string's ``repr`` a description keeps before cutting it.
MAX_DESCRIPTION = 80

# A UTF-16 surrogate code point on its own: valid in a Python str (``json.loads('"\\ud83d"')`` makes one), but
# not encodable as UTF-8, so no JSON text or SQLite row can hold it.
_SURROGATE = re.compile("[\ud800-\udfff]")

# Ints up to this many bits are shown in full (about 60 decimal digits); larger ones by their size.
_MAX_INT_BITS = 200


def describe(value: object, limit: int = MAX_DESCRIPTION) -> str:  # noqa: PLR0911 - one return per kind of value
    """Describe ``value`` for an error message in at most about ``limit`` + 40 characters.

    Short strings, numbers, ``None`` and booleans read as their ``repr`` (``'abc'``, ``3``, ``nan``), so
    familiar messages stay familiar. A longer string is cut, with a marker giving its full length
    (``'aaaa…'…(4194304 chars)``); a huge int gives its size; a container is described by its type and length
    (``a list of 3 items``), never by its contents; any other object by its type alone. It never calls a
    caller's ``__repr__`` and never recurses, so it cannot raise ``RecursionError`` or build a huge message.
    """
    cls = type(value)
    if value is None or value is True or value is False:
        return repr(value)
    if isinstance(value, enum.Enum):
        # The package's own enums (ResponseStatus) read as their value.
        return describe(value.value, limit)
    if isinstance(value, str):
        text = str.__str__(value)
        if len(text) <= limit:
            return repr(text)
        return f"{text[:limit]!r}…({len(text)} chars)"
    if isinstance(value, int):
        number = int.__index__(value)
        if number.bit_length() <= _MAX_INT_BITS:
            return repr(number)
        sign = "-" if number < 0 else ""
        return f"an int of about {sign}10**{int(number.bit_length() * math.log10(2))}"
    if isinstance(value, float):
        return float.__repr__(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"{_article(cls.__name__)} of {len(value)} bytes"
    try:
        size = len(value)  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - any object may be passed; its __len__ may be missing or broken
        return _article(cls.__name__)
    return f"{_article(cls.__name__)} of {size} item{'' if size == 1 else 's'}"


def _article(name: str) -> str:
    # Type names can be long (a caller's class): keep them bounded too.
    if len(name) > MAX_DESCRIPTION:
        name = f"{name[:MAX_DESCRIPTION]}…"
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def has_lone_surrogate(text: str) -> bool:
    r"""Whether ``text`` holds a surrogate code point (``"\ud83d"``), which UTF-8 cannot encode.

    ASCII text is answered at once (``str.isascii`` reads a flag in CPython); other text is scanned once.
    """
    return not text.isascii() and _SURROGATE.search(text) is not None


# ---------------------------------------------------------------------------------------------- argument checks
#
# One function, and so one message, per kind of mistake. Each returns the checked value or raises
# InvalidArgument naming the argument (and the response, when there is one) and describing the bad value.


def _refuse(message: str, id: str | None) -> Exception:
    from .errors import InvalidArgument  # noqa: PLC0415 - errors.py itself imports describe from here

    return InvalidArgument(message, id=id)


def check_owner(owner: object) -> str | None:
    """Return ``owner`` if it is ``None`` or a string.

    Raises:
        InvalidArgument: anything else.
    """
    if owner is not None and not isinstance(owner, str):
        raise _refuse(f"owner must be a string or None, not {describe(owner)}", None)
    return owner


def check_text(value: object, what: str, *, id: str | None = None) -> str:
    """Return ``value`` if it is a non-empty string that UTF-8 can encode (no lone surrogate).

    Raises:
        InvalidArgument: anything else.
    """
    if not isinstance(value, str) or not value:
        raise _refuse(f"{what} must be a non-empty string, not {describe(value)}", id)
    if has_lone_surrogate(value):
        raise _refuse(f"{what} {describe(value)} holds a lone surrogate, which UTF-8 cannot encode", id)
    return value


def check_int(
    value: object, what: str, *, minimum: int, maximum: int | None = None, optional: bool = False, id: str | None = None
) -> int | None:
    """Return ``value`` if it is an int (not a bool) from ``minimum`` to ``maximum``, or ``None`` if ``optional``.

    Raises:
        InvalidArgument: anything else.
    """
    if value is None and optional:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        expected = f"an int from {minimum} to {maximum}" if maximum is not None else f"an int >= {minimum}"
        if optional:
            expected = f"None or {expected}"
        raise _refuse(f"{what} must be {expected}, not {describe(value)}", id)
    return value


def check_bool(value: object, what: str, *, id: str | None = None) -> bool:
    """Return ``value`` if it is ``True`` or ``False``.

    Raises:
        InvalidArgument: anything else (``0``, ``"yes"``, ...).
    """
    if not isinstance(value, bool):
        raise _refuse(f"{what} must be a bool, not {describe(value)}", id)
    return value


def check_callable(value: object, what: str, *, id: str | None = None) -> object:
    """Return ``value`` if it is callable.

    Raises:
        InvalidArgument: it is not.
    """
    if not callable(value):
        raise _refuse(f"{what} must be callable, not {describe(value)}", id)
    return value
