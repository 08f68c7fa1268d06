"""What the SQL backends (:mod:`responsestore._sqlite`, :mod:`responsestore._postgres`) share.

The JSON text they store (a record's, a conversation's, an item's), the errors that steer a write, the counters a
write reads first, the parsing of their URLs' query values and the assertion their ``_check`` makes.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping
from typing import Any, NamedTuple

from ._json import to_json_text
from ._owners import encodable
from ._records import ResponseRecord
from .errors import InvalidArgument

__all__ = [
    "CACHE_BYTES",
    "CACHE_RECORDS",
    "Abort",
    "Damaged",
    "RecordCache",
    "State",
    "invariant",
    "json_text",
    "load",
    "record_text",
    "refuse_twice_given",
    "url_integer",
    "url_seconds",
]

#: The most records, and the most bytes of their JSON, a store's :class:`RecordCache` holds.
CACHE_RECORDS = 4096
CACHE_BYTES = 32 * 1024 * 1024


class State(NamedTuple):
    """What a write reads of the counters row first (and when the next record expires)."""

    last_seq: int
    active: int
    finished: int
    bytes: int
    active_bytes: int
    due: float | None  # the soonest expiry of a record (None: none expires)

    @property
    def records(self) -> int:
        return self.active + self.finished


class Damaged(Exception):
    """A stored value no valid store holds (turned into a :class:`StorageError` naming the store)."""

    def __init__(self, what: str, cause: BaseException) -> None:
        super().__init__(f"{what} cannot be read ({type(cause).__name__}: {cause})")


class Abort(Exception):
    """Raised inside a write to roll the whole transaction back and return ``result`` from ``_write``."""

    def __init__(self, result: Any) -> None:
        super().__init__(result)
        self.result = result


class RecordCache:
    """The records a store parsed, by row (``seq``): at most one per row, the newest version seen; the oldest go first.

    Shared by a store's threads (a mutex guards the changes). A write queues what it changed (``(seq, version,
    record or None: gone, bytes of its JSON)``) and hands it to :meth:`commit` once it commits.
    """

    __slots__ = ("_bytes", "_entries", "_mutex")

    def __init__(self) -> None:
        self._entries: dict[int, tuple[int, ResponseRecord, int]] = {}  # seq -> (version, record, size)
        self._bytes = 0
        self._mutex = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, seq: int) -> tuple[int, ResponseRecord, int] | None:
        """``(version, record, size)`` of row ``seq``, or ``None``."""
        return self._entries.get(seq)

    def remember(self, seq: int, version: int, record: ResponseRecord, size: int) -> None:
        """Keep ``record`` (``size`` bytes of JSON) as row ``seq`` at ``version``, unless a newer one is kept."""
        if size > CACHE_BYTES // 64:
            return
        with self._mutex:
            cache = self._entries
            old = cache.pop(seq, None)
            if old is not None:
                if old[0] > version:  # another thread cached a newer version meanwhile
                    cache[seq] = old
                    return
                self._bytes -= old[2]
            cache[seq] = (version, record, size)
            self._bytes += size
            while len(cache) > CACHE_RECORDS or self._bytes > CACHE_BYTES:
                self._bytes -= cache.pop(next(iter(cache)))[2]

    def commit(self, cached: list[tuple[int, int, ResponseRecord | None, int]]) -> None:
        """After a commit: keep the records it wrote, forget the rows it removed."""
        for seq, version, record, size in cached:
            if record is None:
                with self._mutex:
                    old = self._entries.pop(seq, None)
                    if old is not None:
                        self._bytes -= old[2]
            else:
                self.remember(seq, version, record, size)


def json_text(value: Any) -> str:
    """Compact JSON text a database can store (strings with lone surrogates fall back to ASCII escapes)."""
    text = to_json_text(value)
    if text.isascii() or encodable(text):
        return text
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def record_text(record: ResponseRecord) -> str:
    """The JSON text of :meth:`ResponseRecord.to_dict`, serialized from the frozen fields without copying them.

    The same keys in the same order with the same values as ``to_dict()`` (a test holds the two together).
    """
    data: dict[str, Any] = {
        **record.extra,
        "id": record.id,
        "object": "response",
        "created_at": record.created_at,
        "model": record.model,
        "status": record.status._value_,
        "output": record.output,
        "previous_response_id": record.previous_response_id,
        "instructions": record.instructions,
        "tools": record.tools,
        "metadata": record.metadata,
        "usage": record.usage,
        "error": record.error,
        "incomplete_details": record.incomplete_details,
        "background": record.background,
        "completed_at": record.completed_at,
        "input": record.input,
        "owner": record.owner,
        "version": record.version,
    }
    if record.lease_expires_at is not None or record.lease_holder is not None:
        data["lease_holder"] = record.lease_holder
        data["lease_expires_at"] = record.lease_expires_at
    return json_text(data)


def load(text: str) -> ResponseRecord:
    """The record a stored JSON text holds (raising what ``json.loads``/``from_dict`` raise on damage)."""
    return ResponseRecord.from_dict(json.loads(text))


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


def invariant(condition: bool, message: str) -> None:
    """Fail ``_check`` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise AssertionError(message)
