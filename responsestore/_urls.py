"""The query parameters of store URLs: the rules every backend's ``from_url`` applies to the settings it reads.

A whole number (``max_records=1000``, or ``none`` for no bound) and a number of seconds (``ttl=3600``) are
written alike in every backend's URL and refused with the same words; a setting given both in the URL and as a
keyword argument is refused (SQLite, PostgreSQL) or the keyword wins (Redis, whose URL also carries redis-py's
own parameters), as each backend documents.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .errors import InvalidArgument

__all__ = ["refuse_twice_given", "url_integer", "url_seconds"]


def url_integer(database: str, name: str, text: str) -> int | None:
    """The whole number (or ``none``) a URL's query parameter ``name`` of a ``database`` URL gives."""
    if text.lower() == "none":
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 20:
        raise InvalidArgument(
            f"the {database} URL parameter {name} must be a whole number or 'none', not {text[:40]!r}"
        )
    return int(text)


def url_seconds(database: str, name: str, text: str, *, none: bool, said: str) -> float | None:
    """The seconds (or, where ``none``, ``none``) a query parameter gives; ``said`` ends the refusal's "must be"."""
    if none and text.lower() == "none":
        return None
    try:
        seconds = float(text) if text.isascii() and len(text) <= 40 else math.nan
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):
        raise InvalidArgument(f"the {database} URL parameter {name} must be {said}, not {text[:40]!r}")
    return seconds


def refuse_twice_given(options: Mapping[str, Any], kwargs: Mapping[str, Any]) -> None:
    """Refuse a setting that a URL and the keyword arguments of ``from_url`` both give."""
    both = sorted(options.keys() & kwargs.keys())
    if both:
        raise InvalidArgument(f"{', '.join(both)} given both in the URL and as a keyword argument: give it once")
