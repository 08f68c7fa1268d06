"""Per-response event logs: limits, validation, compact storage and exact replay.

A response's generator logs stream events (``response.output_text.delta``, ...) as it produces them; clients replay
them from any sequence number and wait for more. The rules, shared by every backend:

- Events are JSON objects. The store assigns ``sequence_number`` consecutively from 0 per response; an event that
  already carries one must carry exactly its number.
- Events can be appended only while the response is queued or in progress, in batches (one atomic write each). A
  transition may carry the last events, appended in the same atomic step as the status change.
- A log is bounded by ``max_events`` events and ``max_event_bytes`` bytes (each event counted as the compact JSON
  of the event as given, without its sequence number); a batch that would exceed either is refused
  (:class:`~responsestore.EventLogFull`), never silently cut.
- A log is removed with its response (delete, expiry, eviction).

**Compact storage.** A backend stores a log as *chunks*: one chunk per write, each the compact JSON text this
module encodes (:func:`encode`), with the number of its first event and how many it holds. Consecutive events that
differ only in their text delta and sequence number (a stream's ``*.delta`` events, or a :class:`DeltaRun`) are kept
as one template, the lengths of the deltas and their text. When the response finishes, its whole log is encoded
again against the final record (:func:`compact`): a delta run whose text is a piece of the final output keeps only
where that piece starts, and an event that carries a piece of the final response (``response.output_text.done``'s
text, ``response.output_item.done``'s item, ``response.completed``'s response, ...) keeps only what differs from it.
So a finished log takes little more room than the response itself. Reading rebuilds every event exactly: the same
keys in the same order with the same values (:func:`read_events`). A reference is checked against the record when
it is made; a change of the finished record (its metadata) encodes the log again against the new record.

Waiting for new events and for a finish is in :mod:`responsestore._waiting`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import attrs

from ._checks import check_int, describe
from ._json import FrozenDict, freeze, freeze_object, thaw, to_json_text
from ._wire import response_frozen
from .errors import InvalidArgument

if TYPE_CHECKING:
    from ._records import ResponseRecord

__all__ = [
    "DEFAULT_MAX_EVENTS",
    "DEFAULT_MAX_EVENT_BYTES",
    "MAX_SEQUENCE_NUMBER",
    "Chunk",
    "DeltaRun",
    "EventLimits",
    "Prepared",
    "check_starting_after",
    "compact",
    "decode",
    "encode",
    "prepare_event",
    "prepare_events",
    "read_events",
    "stamp",
]

#: A reply streamed token by token is one delta event per token: room for replies of several hundred thousand tokens.
DEFAULT_MAX_EVENTS = 1_000_000

#: 64 MiB of event JSON per response, counted as given (the log keeps far less: see compact storage above).
DEFAULT_MAX_EVENT_BYTES = 64 * 1024 * 1024

#: No event log holds more events than this (SQLite's INTEGER is 64-bit signed): every sequence number is below it.
MAX_SEQUENCE_NUMBER = 2**63 - 1

#: One stored chunk of a log: ``(number of its first event, how many events it holds, its encoded text)``.
Chunk = tuple[int, int, str]

_SEQ = "sequence_number"


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


class DeltaRun:
    """Consecutive stream events that differ only in one text field (``field``, ``"delta"`` by default).

    ``DeltaRun(template, ["Hel", "lo"])`` stands for two events: ``template`` with ``"delta": "Hel"``, then with
    ``"delta": "lo"``, each stamped with its ``sequence_number`` (last, as for any event that carries none). Pass
    it among the events of :meth:`~responsestore.BaseStore.append_events` or of a transition: the store checks the
    template once and the deltas as one text, and keeps the run compactly, so a stream of one event per token costs
    little to log. Readers get the separate events back, exactly as if each had been appended on its own.

    The template is a JSON object holding ``field`` (its value there is ignored) and no ``sequence_number``; every
    delta is a ``str``.

    Raises:
        InvalidArgument: the template, the field or a delta is malformed, or there is no delta.
    """

    __slots__ = ("_size", "deltas", "field", "template")

    template: FrozenDict
    deltas: tuple[str, ...]
    field: str
    _size: int

    def __init__(self, template: Mapping[str, Any], deltas: Iterable[str], field: str = "delta") -> None:
        if not isinstance(field, str) or not field or field == _SEQ:
            raise InvalidArgument(
                f"a DeltaRun's field must be a non-empty string other than {_SEQ!r}, not {describe(field)}"
            )
        frozen = freeze_object(template, "a DeltaRun's template")
        if field not in frozen:
            raise InvalidArgument(f"a DeltaRun's template must hold its field {field!r}")
        if _SEQ in frozen:
            raise InvalidArgument(f"a DeltaRun's template must not carry a {_SEQ}: the store numbers the events")
        if isinstance(deltas, str):
            raise InvalidArgument("a DeltaRun's deltas must be a sequence of strings, not one string")
        texts = tuple(deltas)
        if not texts:
            raise InvalidArgument("a DeltaRun holds at least one delta")
        for text in texts:
            if text.__class__ is not str:
                raise InvalidArgument(f"a DeltaRun's deltas must be strings, not {describe(text)}")
        joined = "".join(texts)
        try:
            escaped = _escaped_size(joined)
        except UnicodeEncodeError:
            raise InvalidArgument("a DeltaRun's deltas hold a lone surrogate, which UTF-8 cannot encode") from None
        if frozen[field] != "":
            frozen = FrozenDict._of_frozen({**frozen, field: ""})
        object.__setattr__(self, "template", frozen)
        object.__setattr__(self, "deltas", texts)
        object.__setattr__(self, "field", field)
        # The events' JSON sizes, as given: the template (with "" in the field) once per event, plus the text.
        object.__setattr__(self, "_size", len(texts) * _json_size(frozen) + escaped)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a DeltaRun cannot be changed")

    def __len__(self) -> int:
        """How many events the run stands for."""
        return len(self.deltas)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DeltaRun):
            return NotImplemented
        return (self.template, self.deltas, self.field) == (other.template, other.deltas, other.field)

    def __hash__(self) -> int:
        return hash((self.template, self.deltas, self.field))

    def __repr__(self) -> str:
        return f"DeltaRun({dict(self.template)!r}, <{len(self.deltas)} deltas>, field={self.field!r})"

    def events(self, first: int | None = None) -> list[dict[str, Any]]:
        """The events the run stands for, as fresh plain dicts; numbered from ``first`` when it is given."""
        plain = thaw(self.template)
        out = []
        for offset, text in enumerate(self.deltas):
            event = dict(plain)
            event[self.field] = text
            if first is not None:
                event[_SEQ] = first + offset
            out.append(event)
        return out


def _json_size(value: Any) -> int:
    return len(to_json_text(value).encode())


def _escaped_size(text: str) -> int:
    """Bytes of ``text`` inside a JSON string (its escapes, UTF-8), without the quotes; additive over concatenation."""
    return len(json.dumps(text, ensure_ascii=False).encode()) - 2


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
    carried = frozen.get(_SEQ)
    if carried is not None and (isinstance(carried, bool) or not isinstance(carried, int) or carried < 0):
        raise InvalidArgument(f"event {_SEQ} must be an int >= 0, not {describe(carried)}", id=id)
    return frozen, carried, _json_size(frozen)


class Prepared(NamedTuple):
    """A batch of events checked and frozen before any read: what a write appends."""

    #: Frozen events (as given: not yet stamped) and delta runs, in order.
    items: tuple[FrozenDict | DeltaRun, ...]
    #: How many events the batch holds.
    total: int
    #: Their size, as counted against ``max_event_bytes``.
    size: int
    #: ``(position in the batch, the sequence number it carries)`` of each event that carries one.
    carried: tuple[tuple[int, int], ...]


NO_EVENTS = Prepared((), 0, 0, ())


def prepare_events(events: object, id: str | None = None) -> Prepared:
    """Check and freeze a batch of events (mappings and :class:`DeltaRun`s) before any lock is taken.

    Raises:
        InvalidArgument: ``events`` is not an iterable of events, or one of them is malformed.
    """
    if isinstance(events, (Mapping, str, bytes)) or not isinstance(events, Iterable):
        raise InvalidArgument(
            f"events must be a sequence of JSON objects and DeltaRuns, not {type(events).__name__}", id=id
        )
    items: list[FrozenDict | DeltaRun] = []
    carried: list[tuple[int, int]] = []
    count = size = 0
    # A value several events of the batch share (the response snapshot of response.created and
    # response.in_progress, say) is frozen once: later events get the frozen copy, which freezing keeps as it is.
    shared: dict[int, tuple[Any, Any]] = {}
    for event in events:
        if isinstance(event, DeltaRun):
            items.append(event)
            count += len(event.deltas)
            size += event._size
            continue
        if event.__class__ is dict and shared:
            event = {key: _shared(shared, value) for key, value in event.items()}  # noqa: PLW2901 - the same event
        frozen, number, event_size = prepare_event(event, id)
        if event.__class__ is dict:
            for key, value in event.items():
                if value.__class__ is dict or value.__class__ is list:
                    shared[id_of(value)] = (value, frozen[key])
        if number is not None:
            carried.append((count, number))
        items.append(frozen)
        count += 1
        size += event_size
    return Prepared(tuple(items), count, size, tuple(carried))


id_of = id  # ``id`` names the response in this module's functions


def _shared(shared: dict[int, tuple[Any, Any]], value: Any) -> Any:
    """The frozen copy of ``value`` if an earlier event of the batch held this very object, else ``value``."""
    if value.__class__ is dict or value.__class__ is list:
        found = shared.get(id_of(value))
        if found is not None and found[0] is value:
            return found[1]
    return value


def prepared_one(event: FrozenDict, carried: int | None, size: int) -> Prepared:
    """The batch of the one event :func:`prepare_event` prepared."""
    return Prepared((event,), 1, size, () if carried is None else ((0, carried),))


def stamp(event: FrozenDict, sequence_number: int) -> FrozenDict:
    """The event as stored: with its ``sequence_number`` set."""
    if event.get(_SEQ) == sequence_number:
        return event
    return FrozenDict._of_frozen({**event, _SEQ: sequence_number})


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


# ---------------------------------------------------------------------------------------------- segments
#
# A log in memory, between decoding and encoding, is a list of segments: a literal event (stamped, frozen), or a
# run of delta events (a template holding "" in its field and 0 as its sequence number, at their places, and the
# deltas). Segments carry no numbers: a chunk's events are numbered consecutively from its first.


class _Literal(NamedTuple):
    event: FrozenDict


class _Run(NamedTuple):
    template: FrozenDict  # with "" in ``field`` and 0 in "sequence_number", in the events' key order
    field: str
    deltas: list[str]
    text: str  # the template's JSON, which decides whether two runs merge


_Segment = _Literal | _Run


def _delta_like(event: FrozenDict) -> str | None:
    """The text field of a stamped event that a run can hold (a ``*.delta`` event's ``delta``), or ``None``."""
    kind = event.get("type")
    if kind.__class__ is str and kind.endswith(".delta") and event.get("delta").__class__ is str:
        return "delta"
    return None


def _run_of(template: FrozenDict, field: str, deltas: list[str]) -> _Run:
    return _Run(template, field, deltas, to_json_text(template) + "\0" + field)


def segments_of(items: Sequence[FrozenDict | DeltaRun], first: int) -> list[_Segment]:
    """Stamp a prepared batch with numbers from ``first`` and turn it into segments (merging delta runs)."""
    segments: list[_Segment] = []
    number = first
    for item in items:
        if isinstance(item, DeltaRun):
            template = FrozenDict._of_frozen({**item.template, _SEQ: 0})
            _add(segments, _run_of(template, item.field, list(item.deltas)))
            number += len(item.deltas)
            continue
        _add_event(segments, stamp(item, number))
        number += 1
    return segments


def _add_event(segments: list[_Segment], event: FrozenDict) -> None:
    field = _delta_like(event)
    if field is None:
        segments.append(_Literal(event))
        return
    template = FrozenDict._of_frozen({**event, field: "", _SEQ: 0})
    _add(segments, _run_of(template, field, [event[field]]))


def _add(segments: list[_Segment], run: _Run) -> None:
    last = segments[-1] if segments else None
    if isinstance(last, _Run) and last.text == run.text:
        last.deltas.extend(run.deltas)
    else:
        segments.append(run)


def _count(segments: Sequence[_Segment]) -> int:
    return sum(len(s.deltas) if isinstance(s, _Run) else 1 for s in segments)


# ---------------------------------------------------------------------------------------------- references
#
# Where the final record holds the text of each kind of delta event, and which field of which kind of event
# carries a piece of the final response: paths into the record's OpenAI JSON (``record.to_openai()``).

_OUTPUT_TEXT = ("output", "output_index", "content", "content_index")
_SUMMARY = ("output", "output_index", "summary", "summary_index")
_ITEM = ("output", "output_index")

#: Delta event type -> the path (event fields name the indexes) of the text its deltas build.
_DELTA_TEXT: Mapping[str, tuple[str, ...]] = {
    "response.output_text.delta": (*_OUTPUT_TEXT, "text"),
    "response.refusal.delta": (*_OUTPUT_TEXT, "refusal"),
    "response.reasoning_text.delta": (*_OUTPUT_TEXT, "text"),
    "response.reasoning_summary_text.delta": (*_SUMMARY, "text"),
    "response.function_call_arguments.delta": (*_ITEM, "arguments"),
    "response.mcp_call_arguments.delta": (*_ITEM, "arguments"),
    "response.custom_tool_call_input.delta": (*_ITEM, "input"),
    "response.code_interpreter_call_code.delta": (*_ITEM, "code"),
}

#: Event type -> (the field that carries a piece of the final response, the path of that piece).
_CARRIES: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "response.output_text.done": ("text", (*_OUTPUT_TEXT, "text")),
    "response.refusal.done": ("refusal", (*_OUTPUT_TEXT, "refusal")),
    "response.reasoning_text.done": ("text", (*_OUTPUT_TEXT, "text")),
    "response.reasoning_summary_text.done": ("text", (*_SUMMARY, "text")),
    "response.function_call_arguments.done": ("arguments", (*_ITEM, "arguments")),
    "response.content_part.added": ("part", _OUTPUT_TEXT),
    "response.content_part.done": ("part", _OUTPUT_TEXT),
    "response.reasoning_summary_part.added": ("part", _SUMMARY),
    "response.reasoning_summary_part.done": ("part", _SUMMARY),
    "response.output_item.added": ("item", _ITEM),
    "response.output_item.done": ("item", _ITEM),
    **{
        f"response.{kind}": ("response", ())
        for kind in ("created", "queued", "in_progress", "completed", "failed", "incomplete", "cancelled")
    },
}

_NAMES = frozenset({"output", "content", "summary", "text", "refusal", "arguments", "input", "code"})


def _path(event: Mapping[str, Any], spec: tuple[str, ...]) -> list[str | int] | None:
    """The concrete path of ``spec`` for ``event`` (its index fields filled in), or ``None`` if it lacks one."""
    path: list[str | int] = []
    for step in spec:
        if step in _NAMES:
            path.append(step)
            continue
        index = event.get(step)
        if index.__class__ is not int or index < 0:
            return None
        path.append(index)
    return path


def _resolve(wire: Any, path: Sequence[str | int]) -> Any:
    """The value at ``path`` in the record's JSON; raises ``LookupError``/``TypeError`` if there is none."""
    value = wire
    for step in path:
        if isinstance(step, int) and not isinstance(value, (list, tuple)):
            raise TypeError("not a list")
        value = value[step]
    return value


_MISSING = object()


_SCALARS = (str, int, float, bool, type(None))


def _same(a: Any, b: Any, base: _Base) -> bool:
    """Whether a value of an event and a part of the record's JSON are the same JSON text (types, key order)."""
    if a.__class__ is b.__class__ and a.__class__ in _SCALARS:
        return bool(a == b) and (a.__class__ is not float or repr(a) == repr(b))
    if a.__class__ in _SCALARS or b.__class__ in _SCALARS:
        return False
    if a.__class__ is FrozenDict and a != b:  # unequal objects are never the same JSON (a FrozenDict compares as JSON)
        return False
    return bool(to_json_text(a) == base.text(b))


class _Base:
    """The final record's OpenAI JSON, built on first use (one build per encode or decode), and its parts as text."""

    __slots__ = ("_diffs", "_kept", "_record", "_texts", "_wire")

    def __init__(self, record: ResponseRecord | None, wire: Any = _MISSING) -> None:
        self._record = record
        self._wire: Any = wire
        self._texts: dict[int, str] = {}
        self._diffs: dict[tuple[int, int], dict[str, Any]] = {}
        self._kept: list[Any] = []

    def get(self) -> Any:
        if self._wire is _MISSING:
            if self._record is None:
                raise LookupError("no record to refer to")
            self._wire = response_frozen(self._record)
        return self._wire

    def diff(self, value: FrozenDict, target: dict[str, Any]) -> dict[str, Any]:
        """The fields of ``value`` that differ from ``target`` (same keys, same order), computed once per pair."""
        key = (id(value), id(target))
        found = self._diffs.get(key)
        if found is None:
            if to_json_text(value) == self.text(target):  # the commonest case (the final event): nothing differs
                found = {}
            else:
                found = {name: item for name, item in value.items() if not _same(item, target[name], self)}
            self._diffs[key] = found
            self._kept.append(value)  # alive as long as its id is a key
        return found

    def text(self, value: Any) -> str:
        """``value`` (a part of the JSON) as JSON text, serialized once per encode."""
        key = id(value)
        text = self._texts.get(key)
        if text is None:
            text = self._texts[key] = to_json_text(value)
        return text


# ---------------------------------------------------------------------------------------------- encoding


def encode(segments: Sequence[_Segment], record: ResponseRecord | None = None, wire: Any = _MISSING) -> str:
    """The chunk text of ``segments``; with the final ``record``, pieces of it are kept as references to it.

    ``wire`` is the record's OpenAI JSON when the caller has already built it (it is not changed).
    """
    base = _Base(record, wire)
    offsets: dict[tuple[str | int, ...], int] = {}
    out: list[Any] = []
    for segment in segments:
        if isinstance(segment, _Run):
            out.append(_encode_run(segment, base if record is not None else None, offsets))
        else:
            out.append(_encode_event(segment.event, base if record is not None else None))
    return to_json_text(out)


#: Delta lengths 0-63 are one character each; a longer one is written ``.<decimal>.``.
_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_"
_VALUE = {char: value for value, char in enumerate(_DIGITS)}


def _lengths_text(deltas: Sequence[str]) -> str:
    digits = _DIGITS
    return "".join(digits[n] if n < 64 else f".{n}." for n in map(len, deltas))


def _lengths(text: str) -> list[int]:
    out: list[int] = []
    value = _VALUE
    at, end = 0, len(text)
    while at < end:
        char = text[at]
        if char == ".":
            close = text.index(".", at + 1)
            out.append(int(text[at + 1 : close]))
            at = close + 1
        else:
            out.append(value[char])
            at += 1
    return out


def _encode_run(run: _Run, base: _Base | None, offsets: dict[tuple[str | int, ...], int]) -> dict[str, Any]:
    item: dict[str, Any] = {"t": run.template, "n": _lengths_text(run.deltas)}
    if run.field != "delta":
        item["f"] = run.field
    text = "".join(run.deltas)
    kind = run.template.get("type")
    spec = _DELTA_TEXT.get(kind) if run.field == "delta" and isinstance(kind, str) else None
    path = None if spec is None or base is None else _path(run.template, spec)
    if path is not None and base is not None:
        key = tuple(path)
        start = offsets.get(key, 0)
        offsets[key] = start + len(text)
        try:
            target = _resolve(base.get(), path)
        except (LookupError, TypeError):
            target = None
        if isinstance(target, str) and target[start : start + len(text)] == text:
            item["p"] = path
            item["o"] = start
            return item
    item["s"] = text
    return item


def _encode_event(event: FrozenDict, base: _Base | None) -> dict[str, Any]:  # noqa: PLR0911 - one per refusal
    kind = event.get("type")
    carries = _CARRIES.get(kind) if base is not None and isinstance(kind, str) else None
    if carries is None or base is None:
        return {"e": event}
    field, spec = carries
    value = event.get(field, _MISSING)
    path = _path(event, spec)
    if value is _MISSING or path is None:
        return {"e": event}
    try:
        target = _resolve(base.get(), path)
    except (LookupError, TypeError):
        return {"e": event}
    if isinstance(value, str):
        if not (isinstance(target, str) and value == target):
            return {"e": event}
        return {"x": {**event, field: None}, "k": field, "p": path}
    if not (isinstance(value, FrozenDict) and isinstance(target, dict) and list(value) == list(target)):
        return {"e": event}
    return {"x": {**event, field: None}, "k": field, "p": path, "d": base.diff(value, target)}


# ---------------------------------------------------------------------------------------------- decoding


class DamagedLog(Exception):
    """A stored chunk cannot be read back (the backend turns it into a StorageError naming what is damaged)."""


def decode(chunks: Iterable[Chunk], record: ResponseRecord) -> list[tuple[int, list[_Segment]]]:
    """The segments of each chunk, references resolved against ``record``: ``[(first number, segments), ...]``.

    Raises:
        DamagedLog: a chunk is not what :func:`encode` writes, or does not fit the record.
    """
    base = _Base(record)
    out = []
    for first, count, text in chunks:
        try:
            segments = [_decode_segment(item, base) for item in json.loads(text)]
        except (ValueError, TypeError, LookupError, AttributeError, InvalidArgument) as exc:
            raise DamagedLog(f"a chunk of events from {first} ({type(exc).__name__}: {str(exc)[:200]})") from exc
        if _count(segments) != count:
            raise DamagedLog(f"the chunk of events from {first} holds {_count(segments)} events, not {count}")
        out.append((first, segments))
    return out


def _decode_segment(item: Mapping[str, Any], base: _Base) -> _Segment:
    if "e" in item:
        return _Literal(freeze_object(item["e"], "event"))
    if "t" in item:
        template = freeze_object(item["t"], "template")
        field = item.get("f", "delta")
        lengths = _lengths(item["n"])
        if "s" in item:
            text = item["s"]
        else:
            start = item["o"]
            text = _resolve(base.get(), item["p"])[start : start + sum(lengths)]
        if not isinstance(text, str) or len(text) != sum(lengths) or field not in template:
            raise ValueError("a delta run does not fit its text")
        deltas = []
        at = 0
        for length in lengths:
            deltas.append(text[at : at + length])
            at += length
        return _run_of(template, field, deltas)
    field = item["k"]
    event = dict(item["x"])
    value = _resolve(base.get(), item["p"])
    if "d" in item:
        diff = item["d"]
        value = {key: diff.get(key, part) for key, part in value.items()}
    if field not in event:
        raise ValueError("a reference names a field its event lacks")
    event[field] = value
    return _Literal(freeze_object(event, "event"))


def read_events(chunks: Iterable[Chunk], record: ResponseRecord, after: int) -> tuple[FrozenDict, ...]:
    """The events numbered above ``after`` of a log stored as ``chunks``, rebuilt exactly, in order.

    Raises:
        DamagedLog: a chunk cannot be read back.
    """
    events: list[FrozenDict] = []
    for first, segments in decode(chunks, record):
        number = first
        for segment in segments:
            if isinstance(segment, _Literal):
                if number > after:
                    if segment.event.get(_SEQ) != number:
                        raise DamagedLog(f"event {number} carries the sequence_number {segment.event.get(_SEQ)!r}")
                    events.append(segment.event)
                number += 1
                continue
            count = len(segment.deltas)
            if number + count - 1 > after:
                events.extend(_expand(segment, number, max(0, after + 1 - number)))
            number += count
    return tuple(events)


def _expand(run: _Run, first: int, skip: int) -> Iterator[FrozenDict]:
    template, field = run.template, run.field
    for offset in range(skip, len(run.deltas)):
        event = dict(template)
        event[field] = run.deltas[offset]
        event[_SEQ] = first + offset
        yield FrozenDict._of_frozen(event)


# ---------------------------------------------------------------------------------------------- writes


class Encoded(NamedTuple):
    """A batch encoded for a backend: the chunk text, its events, their counted size, and the text's bytes."""

    text: str
    events: int
    size: int
    stored: int


def encode_batch(prepared: Prepared, first: int, final: ResponseRecord | None = None) -> Encoded:
    """Encode a prepared batch as a chunk of events numbered from ``first`` (against the final record, if given)."""
    text = encode(segments_of(prepared.items, first), final)
    return Encoded(text, prepared.total, prepared.size, _stored_size(text))


def compact(  # noqa: PLR0917 - one call site, in the shared layer
    chunks: Sequence[Chunk],
    old: ResponseRecord,
    prepared: Prepared,
    first: int,
    final: ResponseRecord,
    wire: Any = _MISSING,
) -> Encoded:
    """The whole log as one chunk encoded against the ``final`` record: the stored ``chunks``, then ``prepared``.

    The chunks are read against ``old``; ``prepared`` is numbered from ``first``. ``Encoded.size`` is then the
    counted size of the new events only (the caller adds the log's stored total).

    Raises:
        DamagedLog: a stored chunk cannot be read back.
    """
    segments: list[_Segment] = []
    for _, decoded in decode(chunks, old):
        for segment in decoded:
            if isinstance(segment, _Run):
                _add(segments, _Run(segment.template, segment.field, list(segment.deltas), segment.text))
            else:
                _add_event(segments, segment.event)
    for segment in segments_of(prepared.items, first):
        if isinstance(segment, _Run):
            _add(segments, segment)
        else:
            segments.append(segment)
    text = encode(segments, final, wire)
    return Encoded(text, first + prepared.total, prepared.size, _stored_size(text))


def _stored_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def check_batch(prepared: Prepared, id: str, count: int) -> None:
    """Check the sequence numbers a batch's events carry against a log of ``count`` events.

    Raises:
        InvalidArgument: an event carries another number than its own.
    """
    for position, carried in prepared.carried:
        if carried != count + position:
            raise InvalidArgument(
                f"event for {id!r} carries sequence_number {carried}, but the next one is {count + position}", id=id
            )


def plain(events: Iterable[FrozenDict]) -> tuple[dict[str, Any], ...]:
    """Fresh plain copies of stored events."""
    return tuple(thaw(event) for event in events)


def freeze_loaded(value: Any) -> Any:
    """Freeze JSON read back from storage (a helper for backends migrating old logs)."""
    return freeze(value, "event")
