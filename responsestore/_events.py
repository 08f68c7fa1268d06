"""Per-response event logs: limits, event validation, and the registry that wakes waiting readers.

A background response's generator appends stream events (``response.output_text.delta``, ...) as it produces
them; clients replay them from any sequence number and wait for more. The rules, shared by every backend:

- Events are JSON objects. The store assigns ``sequence_number`` consecutively from 0 per response; an event
  that already carries one must carry exactly the next number.
- Events can be appended only while the response is queued or in progress. A transition may carry a final
  event, appended in the same atomic step as the status change.
- A log is bounded by ``max_events`` events and ``max_event_bytes`` bytes of JSON; an event that would exceed
  either is refused (:class:`~responsestore.EventLogFull`), never silently dropped or truncated.
- A log is removed with its response (delete, expiry, eviction).

Waiting for new events and for a finish is in :mod:`responsestore._waiting`.
"""

from __future__ import annotations

import attrs

from ._checks import check_int, describe
from ._json import FrozenDict, freeze_object, to_json_text
from .errors import InvalidArgument

__all__ = [
    "DEFAULT_MAX_EVENTS",
    "DEFAULT_MAX_EVENT_BYTES",
    "MAX_SEQUENCE_NUMBER",
    "EventLimits",
    "check_starting_after",
    "prepare_event",
    "stamp",
]

#: A long answer streamed token by token is a few thousand delta events; this leaves ample room.
DEFAULT_MAX_EVENTS = 20_000

#: 16 MiB of event JSON per response.
DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024


@attrs.frozen(slots=True)
class EventLimits:
    """Bounds of one response's event log: at most ``max_events`` events and ``max_bytes`` bytes of JSON."""

    max_events: int = DEFAULT_MAX_EVENTS
    max_bytes: int = DEFAULT_MAX_EVENT_BYTES

    @classmethod
    def from_arguments(cls, max_events: object, max_bytes: object) -> EventLimits:
        """Validate a store constructor's ``max_events`` and ``max_event_bytes``.

        Raises:
            InvalidArgument: either is not an int >= 1.
        """
        events = check_int(max_events, "max_events", minimum=1)
        size = check_int(max_bytes, "max_event_bytes", minimum=1)
        return cls(max_events=events, max_bytes=size)  # type: ignore[arg-type]


def prepare_event(event: object, id: str | None = None) -> tuple[FrozenDict, int | None, int]:
    """Freeze an event before any lock is taken: ``(frozen event, the sequence number it carries, its size)``.

    Raises:
        InvalidArgument: the event is not a JSON object (this includes a string with a lone surrogate, which
            UTF-8 cannot encode), or carries a malformed ``sequence_number``.
    """
    try:
        frozen = freeze_object(event, "event" if id is None else f"event for {id!r}")
    except InvalidArgument as problem:  # name the response the event was for
        raise InvalidArgument(str(problem), id=id) from None
    carried = frozen.get("sequence_number")
    if carried is not None and (isinstance(carried, bool) or not isinstance(carried, int) or carried < 0):
        raise InvalidArgument(f"event sequence_number must be an int >= 0, not {describe(carried)}", id=id)
    size = len(to_json_text(frozen).encode())
    return frozen, carried, size


def stamp(event: FrozenDict, sequence_number: int) -> FrozenDict:
    """The event as stored: with its ``sequence_number`` set."""
    if event.get("sequence_number") == sequence_number:
        return event
    return FrozenDict._of_frozen({**event, "sequence_number": sequence_number})


#: No event log holds more events than this (SQLite's INTEGER is 64-bit signed): every sequence number is below it.
MAX_SEQUENCE_NUMBER = 2**63 - 1


def check_starting_after(value: object) -> int:
    """Validate ``starting_after`` (``None`` or a sequence number >= 0); return the last number to skip (-1: none).

    A number beyond any sequence number a log can reach (``2**63`` and up, which a query string can carry) means
    "after the last event", as any number past the end of the log does; it is returned as
    :data:`MAX_SEQUENCE_NUMBER`, so every backend can compare with it.

    Raises:
        InvalidArgument: the value is not ``None`` or an int >= 0.
    """
    if value is None:
        return -1
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgument(f"starting_after must be None or an int >= 0, not {describe(value)}")
    return min(int(value), MAX_SEQUENCE_NUMBER)
