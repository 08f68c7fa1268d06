"""Hypothesis strategies for testing code built on responsestore (needs the ``testing`` extra).

Two families:

- *OpenAI-valid* values (items, tools, metadata, usage, errors, whole records): what a well-behaved server passes
  to the store. Whatever the store returns for them must validate against the official ``openai`` SDK types
  (``openai.types.responses.Response`` and ``ResponseItemList``).
- *Junk* values (:func:`non_json_values`, :func:`junk`): what a buggy caller might pass; the store must refuse
  it with a :class:`~responsestore.ResponseStoreError` and change nothing.

Every strategy function is cached (``functools.cache``): building hypothesis strategies is not free, and tests
call these inside composite strategies for every example.

A note on item shapes. The store normalizes messages (string content becomes parts, a missing ``type`` becomes
``"message"``, a missing ``id`` is generated, an assistant message gets ``status="completed"``) but stores every
other item as given. ``ResponseItemList`` requires a ``status`` on ``function_call`` and ``function_call_output``
items, so the input-item strategies here always give those items a ``status``; output ``function_call`` items
may omit it, because ``Response.output`` does not require it.
"""

from __future__ import annotations

import datetime
import enum
import functools
import json
import math
import typing
from typing import Any

from hypothesis import strategies as st

from responsestore import ResponseRecord, ResponseStatus, ResponseStoreError
from responsestore._items import normalize_input
from responsestore._lifecycle import ALLOWED
from responsestore._wire import (
    content_part_event,
    message_item,
    output_item_event,
    output_text_delta_event,
    output_text_done_event,
    text_part,
)

__all__ = [
    "ERROR_CODES",
    "INCOMPLETE_REASONS",
    "assistant_input_messages",
    "corrupted_items",
    "created_ats",
    "error_codes",
    "error_dicts",
    "event_sequences",
    "extras",
    "function_call_items",
    "function_call_output_items",
    "function_tools",
    "identifiers",
    "illegal_lifecycle_paths",
    "incomplete_reasons",
    "input_item_lists",
    "input_items",
    "input_text_parts",
    "inputs",
    "invalid_inputs",
    "invalid_request_inputs",
    "item_ids",
    "json_objects",
    "json_values",
    "junk",
    "junk_items",
    "lifecycle_paths",
    "metadata",
    "models",
    "non_json_values",
    "output_function_calls",
    "output_item_lists",
    "output_items",
    "output_messages",
    "output_text_parts",
    "owners",
    "record_ids",
    "records",
    "statuses",
    "texts",
    "usage_dicts",
    "user_messages",
    "versions",
    "weird_strings",
]


def _error_codes() -> tuple[str, ...]:
    try:
        from openai.types.responses import ResponseError  # noqa: PLC0415 - optional
    except ImportError:  # pragma: no cover - the test suite installs openai
        return ("server_error", "rate_limit_exceeded", "invalid_prompt")
    return typing.get_args(ResponseError.model_fields["code"].annotation)


#: Every error ``code`` the SDK's ``ResponseError`` accepts, read from the SDK itself (when it is installed; else
#: the three codes every version of it accepts).
ERROR_CODES: tuple[str, ...] = _error_codes()

#: The ``incomplete_details.reason`` values a server produces.
INCOMPLETE_REASONS: tuple[str, ...] = ("max_output_tokens", "content_filter")

_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-"
_HEX = "0123456789abcdef"


# --------------------------------------------------------------------------- scalars


@functools.cache
def texts(max_size: int = 40) -> st.SearchStrategy[str]:
    """Any unicode text (no surrogates), up to ``max_size`` characters."""
    return st.text(max_size=max_size)


@functools.cache
def record_ids() -> st.SearchStrategy[str]:
    """Valid response ids: OpenAI-shaped ``resp_<hex>`` ids and arbitrary ids from the allowed alphabet."""
    return st.one_of(
        st.text(_HEX, min_size=8, max_size=32).map(lambda h: "resp_" + h),
        st.text(_ID_ALPHABET, min_size=1, max_size=128),
    )


@functools.cache
def item_ids(prefix: str = "msg_") -> st.SearchStrategy[str]:
    """Valid item ids: ``prefix`` followed by hex (``msg_…``, ``fc_…``)."""
    return st.text(_HEX, min_size=4, max_size=32).map(lambda h: prefix + h)


@functools.cache
def identifiers(max_rest: int, *, lower: bool = False) -> st.SearchStrategy[str]:
    """Identifier-like names (function and parameter names): a letter or ``_``, then letters, digits, ``_``."""
    letters = "abcdefghijklmnopqrstuvwxyz" if lower else "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return st.builds(
        lambda first, rest: first + rest,
        st.sampled_from(letters + "_"),
        st.text(letters + "0123456789_", max_size=max_rest),
    )


@functools.cache
def models() -> st.SearchStrategy[str]:
    """Non-empty model names (real-looking ones and arbitrary text)."""
    return st.one_of(st.sampled_from(["gpt-4o", "gpt-4.1-mini", "o3", "local-llama"]), st.text(min_size=1, max_size=30))


@functools.cache
def owners() -> st.SearchStrategy[str | None]:
    """Owners: ``None`` (the default owner) or any string, including the empty one."""
    return st.one_of(st.none(), st.sampled_from(["alice", "bob", ""]), st.text(max_size=20))


@functools.cache
def versions() -> st.SearchStrategy[int]:
    """Record versions (ints >= 1)."""
    return st.integers(min_value=1, max_value=10**6)


@functools.cache
def created_ats() -> st.SearchStrategy[float]:
    """Creation times: finite, non-negative float seconds."""
    return st.floats(min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False)


@functools.cache
def statuses() -> st.SearchStrategy[ResponseStatus]:
    """Any :class:`ResponseStatus`."""
    return st.sampled_from(list(ResponseStatus))


@functools.cache
def error_codes() -> st.SearchStrategy[str]:
    """Error codes the SDK's ``ResponseError`` accepts."""
    return st.sampled_from(ERROR_CODES)


@functools.cache
def incomplete_reasons() -> st.SearchStrategy[str]:
    """``incomplete_details.reason`` values: ``max_output_tokens`` or ``content_filter``."""
    return st.sampled_from(INCOMPLETE_REASONS)


# --------------------------------------------------------------------------- JSON


@functools.cache
def json_values(max_leaves: int = 30) -> st.SearchStrategy[Any]:
    """Arbitrary JSON values as plain Python: None, bool, int, finite float, str, lists and str-keyed dicts."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        texts(),
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=5),
            st.dictionaries(texts(10), children, max_size=5),
        ),
        max_leaves=max_leaves,
    )


@functools.cache
def json_objects(max_leaves: int = 20) -> st.SearchStrategy[dict[str, Any]]:
    """JSON objects (str-keyed dicts) of arbitrary JSON values."""
    return st.dictionaries(texts(10), json_values(max_leaves=max_leaves // 4 + 1), max_size=5)


class _Colour(enum.Enum):
    RED = 1


def _cyclic_list() -> list[Any]:
    value: list[Any] = [1]
    value.append(value)
    return value


def _cyclic_dict() -> dict[str, Any]:
    value: dict[str, Any] = {"a": 1}
    value["self"] = value
    return value


def _deep_list(depth: int) -> list[Any]:
    value: list[Any] = [0]
    for _ in range(depth - 1):
        value = [value]
    return value


@functools.cache
def non_json_values() -> st.SearchStrategy[Any]:
    """Values ``freeze`` must refuse, at the top level or nested inside otherwise valid JSON.

    NaN and infinities, sets, bytes, complex numbers, decimals, dates, enums, arbitrary objects, dicts with
    non-string keys, cyclic containers and containers nested far deeper than 64 levels.
    """
    atoms = st.one_of(
        st.sampled_from([math.nan, math.inf, -math.inf]),
        st.sets(st.integers(), max_size=3),
        st.frozensets(st.integers(), max_size=3),
        st.binary(max_size=8),
        st.binary(max_size=8).map(bytearray),
        st.complex_numbers(allow_nan=False, allow_infinity=False),
        st.decimals(allow_nan=False, allow_infinity=False),
        st.just(datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)),
        st.just(_Colour.RED),
        st.builds(object),
        st.dictionaries(st.one_of(st.integers(), st.none(), st.tuples(st.integers())), st.integers(), min_size=1),
        st.builds(_cyclic_list),
        st.builds(_cyclic_dict),
        st.integers(min_value=66, max_value=100).map(_deep_list),
    )
    return st.recursive(
        atoms,
        lambda children: st.one_of(
            st.tuples(json_values(5), children).map(list),
            st.builds(lambda k, v: {k: v}, texts(10), children),
        ),
        max_leaves=3,
    )


# --------------------------------------------------------------------------- items


def _json_arguments() -> st.SearchStrategy[str]:
    return json_objects(8).map(json.dumps)


@functools.cache
def input_text_parts() -> st.SearchStrategy[dict[str, Any]]:
    """An ``input_text`` content part."""
    return st.builds(lambda t: {"type": "input_text", "text": t}, texts())


@functools.cache
def output_text_parts() -> st.SearchStrategy[dict[str, Any]]:
    """An ``output_text`` content part (with the ``annotations`` list the SDK requires)."""
    return st.builds(lambda t: {"type": "output_text", "text": t, "annotations": []}, texts())


def _with_optional(
    base: st.SearchStrategy[dict[str, Any]], **optional: st.SearchStrategy[Any]
) -> st.SearchStrategy[dict[str, Any]]:
    """Add each key of ``optional`` to the dicts of ``base``, or leave it out."""

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        item = dict(draw(base))
        for key, strategy in optional.items():
            if draw(st.booleans()):
                item[key] = draw(strategy)
        return item

    return build()


@functools.cache
def user_messages() -> st.SearchStrategy[dict[str, Any]]:
    """User, system or developer messages as clients send them.

    ``content`` is a string or a list of ``input_text`` parts; ``type``, ``id`` and ``status`` may be absent.
    """
    base = st.builds(
        lambda role, content: {"role": role, "content": content},
        st.sampled_from(["user", "system", "developer"]),
        st.one_of(texts(), st.lists(input_text_parts(), min_size=1, max_size=3)),
    )
    return _with_optional(
        base,
        type=st.just("message"),
        id=item_ids("msg_"),
        status=st.sampled_from(["in_progress", "completed", "incomplete"]),
    )


@functools.cache
def assistant_input_messages() -> st.SearchStrategy[dict[str, Any]]:
    """Assistant messages in an input list: string content or ``output_text`` parts; optional type/id/status."""
    base = st.builds(
        lambda content: {"role": "assistant", "content": content},
        st.one_of(texts(), st.lists(output_text_parts(), min_size=1, max_size=3)),
    )
    return _with_optional(
        base,
        type=st.just("message"),
        id=item_ids("msg_"),
        status=st.sampled_from(["in_progress", "completed", "incomplete"]),
    )


@functools.cache
def function_call_items(*, require_status: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    """``function_call`` items. ``ResponseItemList`` requires ``status`` on them, so by default they have one."""
    base = st.builds(
        lambda call_id, name, arguments: {
            "type": "function_call",
            "call_id": call_id,
            "name": name,
            "arguments": arguments,
        },
        item_ids("call_"),
        identifiers(20),
        _json_arguments(),
    )
    status = st.sampled_from(["in_progress", "completed", "incomplete"])
    if require_status:
        base = st.builds(lambda item, s: {**item, "status": s}, base, status)
        return _with_optional(base, id=item_ids("fc_"))
    return _with_optional(base, id=item_ids("fc_"), status=status)


@functools.cache
def function_call_output_items() -> st.SearchStrategy[dict[str, Any]]:
    """``function_call_output`` items, with the ``status`` that ``ResponseItemList`` requires."""
    base = st.builds(
        lambda call_id, output, status: {
            "type": "function_call_output",
            "call_id": call_id,
            "output": output,
            "status": status,
        },
        item_ids("call_"),
        texts(),
        st.sampled_from(["in_progress", "completed", "incomplete"]),
    )
    return _with_optional(base, id=item_ids("fco_"))


@functools.cache
def input_items() -> st.SearchStrategy[dict[str, Any]]:
    """One input item of any of the shapes above."""
    return st.one_of(
        user_messages(),
        assistant_input_messages(),
        function_call_items(),
        function_call_output_items(),
    )


def _drop_repeated_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    result = []
    for item in items:
        item_id = item.get("id")
        if item_id is not None and item_id in seen:
            result.append({k: v for k, v in item.items() if k != "id"})
            continue
        if item_id is not None:
            seen.add(item_id)
        result.append(item)
    return result


@functools.cache
def input_item_lists(min_size: int = 0, max_size: int = 8) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Lists of input items whose explicit ids are distinct (items without an id get one from the store)."""
    return st.lists(input_items(), min_size=min_size, max_size=max_size).map(_drop_repeated_ids)


@functools.cache
def inputs() -> st.SearchStrategy[str | list[dict[str, Any]]]:
    """A ``create`` input: a plain string or a list of input items."""
    return st.one_of(texts(), input_item_lists())


@functools.cache
def output_messages() -> st.SearchStrategy[dict[str, Any]]:
    """Assistant output messages with ``output_text`` parts, as a model server produces them."""
    base = st.builds(
        lambda content, status: {"type": "message", "role": "assistant", "content": content, "status": status},
        st.lists(output_text_parts(), max_size=3),
        st.sampled_from(["in_progress", "completed", "incomplete"]),
    )
    return _with_optional(base, id=item_ids("msg_"))


@functools.cache
def output_function_calls() -> st.SearchStrategy[dict[str, Any]]:
    """``function_call`` output items (``status`` optional, as ``Response.output`` allows)."""
    return function_call_items(require_status=False)


@functools.cache
def output_items() -> st.SearchStrategy[dict[str, Any]]:
    """One output item: an assistant message or a function call."""
    return st.one_of(output_messages(), output_function_calls())


@functools.cache
def output_item_lists(min_size: int = 0, max_size: int = 5) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Lists of output items whose explicit ids are distinct."""
    return st.lists(output_items(), min_size=min_size, max_size=max_size).map(_drop_repeated_ids)


# --------------------------------------------------------------------------- other fields


@functools.cache
def function_tools() -> st.SearchStrategy[dict[str, Any]]:
    """Function tools the SDK's ``FunctionTool`` accepts (name, optional description/parameters/strict)."""
    parameters = st.builds(
        lambda props: {
            "type": "object",
            "properties": {name: {"type": kind} for name, kind in props.items()},
            "required": sorted(props),
        },
        st.dictionaries(
            identifiers(10, lower=True),
            st.sampled_from(["string", "integer", "number", "boolean"]),
            max_size=3,
        ),
    )
    base = st.builds(
        lambda name: {"type": "function", "name": name},
        identifiers(30),
    )
    return _with_optional(base, description=texts(), parameters=parameters, strict=st.booleans())


@functools.cache
def metadata(max_pairs: int = 16) -> st.SearchStrategy[dict[str, str]]:
    """Metadata within OpenAI's limits: at most 16 pairs, keys <= 64 and values <= 512 characters.

    Most keys and values are short; some reach the exact limits.
    """
    # Long keys and values are cheap repetitions: drawing 512 random characters for every value is slow.
    keys = st.one_of(texts(10), st.builds(lambda c, n: c * n, st.sampled_from("kK🙂é"), st.integers(60, 64)))
    values = st.one_of(texts(20), st.builds(lambda c, n: c * n, st.sampled_from("vV🙂é"), st.integers(500, 512)))
    return st.dictionaries(keys, values, max_size=max_pairs)


@functools.cache
def usage_dicts(*, complete: bool | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """Usage dicts: ``input_tokens`` and ``output_tokens``, sometimes with totals and detail counts.

    ``complete=True`` always gives every field the SDK requires; ``False`` never gives the optional ones;
    ``None`` mixes both (the store fills in what is missing).
    """

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        counts = st.integers(min_value=0, max_value=10**9)
        usage: dict[str, Any] = {"input_tokens": draw(counts), "output_tokens": draw(counts)}

        def add() -> bool:
            return complete if complete is not None else draw(st.booleans())

        if add():
            usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
        if add():
            usage["input_tokens_details"] = {"cached_tokens": draw(counts), "cache_write_tokens": draw(counts)}
        if add():
            usage["output_tokens_details"] = {"reasoning_tokens": draw(counts)}
        return usage

    return build()


@functools.cache
def error_dicts() -> st.SearchStrategy[dict[str, Any]]:
    """Error objects ``{"code", "message"}`` with SDK-valid codes."""
    return st.builds(lambda code, message: {"code": code, "message": message}, error_codes(), texts())


@functools.cache
def extras() -> st.SearchStrategy[dict[str, Any]]:
    """``extra`` fields: real OpenAI Response fields with valid values, plus arbitrary ``x_…`` JSON fields.

    Sometimes includes ``parallel_tool_calls``/``tool_choice``, with their defaults or other values.
    """
    known = {
        "temperature": st.floats(min_value=0, max_value=2),
        "top_p": st.floats(min_value=0, max_value=1),
        "max_output_tokens": st.integers(min_value=1, max_value=10**6),
        "user": texts(),
        "truncation": st.sampled_from(["auto", "disabled"]),
        "parallel_tool_calls": st.booleans(),
        "tool_choice": st.one_of(
            st.sampled_from(["auto", "none", "required"]),
            st.builds(lambda n: {"type": "function", "name": n}, identifiers(10, lower=True)),
        ),
        "text": st.just({"format": {"type": "text"}}),
    }
    custom = st.dictionaries(st.text(_ID_ALPHABET, max_size=10).map(lambda k: "x_" + k), json_values(8), max_size=3)
    return st.builds(lambda fixed, more: {**fixed, **more}, st.fixed_dictionaries({}, optional=known), custom)


# --------------------------------------------------------------------------- records

_ACTIVE = (ResponseStatus.QUEUED, ResponseStatus.IN_PROGRESS)


@st.composite
def _records(draw: st.DrawFn, status: st.SearchStrategy[ResponseStatus]) -> ResponseRecord:
    chosen = draw(status)
    created_at = draw(created_ats())
    completed = chosen is ResponseStatus.COMPLETED
    return ResponseRecord(
        id=draw(record_ids()),
        created_at=created_at,
        model=draw(models()),
        status=chosen,
        input=draw(st.one_of(texts().map(lambda v: [{"role": "user", "content": v}]), input_item_lists(max_size=4))),
        output=() if chosen is ResponseStatus.QUEUED else draw(output_item_lists(max_size=3)),
        previous_response_id=draw(st.none() | record_ids()),
        instructions=draw(st.none() | texts()),
        tools=draw(st.lists(function_tools(), max_size=3)),
        metadata=draw(st.none() | metadata(max_pairs=4)),
        usage=None if chosen in _ACTIVE else draw(st.none() | usage_dicts()),
        error=draw(error_dicts()) if chosen is ResponseStatus.FAILED else None,
        incomplete_details=({"reason": draw(incomplete_reasons())} if chosen is ResponseStatus.INCOMPLETE else None),
        # Only background responses are queued or cancelled.
        background=True if chosen in (ResponseStatus.QUEUED, ResponseStatus.CANCELLED) else draw(st.booleans()),
        completed_at=created_at + draw(st.floats(min_value=0, max_value=3600)) if completed else None,
        owner=draw(owners()),
        version=draw(versions()),
        extra=draw(st.none() | extras()),
    )


@functools.cache
def records(status: ResponseStatus | st.SearchStrategy[ResponseStatus] | None = None) -> Any:
    """Whole :class:`ResponseRecord` objects, built through the constructor, with consistent fields.

    ``completed_at`` is set iff the status is ``completed`` (and not before ``created_at``); ``error`` iff
    ``failed``; ``incomplete_details`` iff ``incomplete``; ``usage`` only on final records; queued records have no
    output; queued and cancelled records are ``background``. ``status`` fixes or restricts the status (default:
    every status).
    """
    if status is None:
        chosen: st.SearchStrategy[ResponseStatus] = statuses()
    elif isinstance(status, ResponseStatus):
        chosen = st.just(status)
    else:
        chosen = status
    return _records(chosen)


# --------------------------------------------------------------------------- lifecycles and events

_TERMINAL = tuple(status for status in ResponseStatus if status.is_terminal)


@functools.cache
def lifecycle_paths() -> st.SearchStrategy[list[ResponseStatus]]:
    """Legal lifecycle paths: the statuses a record goes through, from creation to (perhaps) a terminal status.

    ``queued`` or ``in_progress`` first; ``queued`` may go to ``in_progress``; an active status may end in any
    terminal one. Paths that stop while still active are included.
    """
    starts: st.SearchStrategy[list[ResponseStatus]] = st.sampled_from(
        [[ResponseStatus.QUEUED], [ResponseStatus.IN_PROGRESS], [ResponseStatus.QUEUED, ResponseStatus.IN_PROGRESS]]
    )
    none: list[ResponseStatus] = []
    ends: st.SearchStrategy[list[ResponseStatus]] = st.one_of(
        st.just(none), st.sampled_from(_TERMINAL).map(lambda status: [status])
    )
    return st.builds(lambda head, tail: [*head, *tail], starts, ends)


@functools.cache
def illegal_lifecycle_paths() -> st.SearchStrategy[list[ResponseStatus]]:
    """Paths no record may take: a legal path with one illegal step spliced in, or one starting terminal."""

    @st.composite
    def build(draw: st.DrawFn) -> list[ResponseStatus]:
        path = draw(lifecycle_paths())
        at = draw(st.integers(0, len(path)))
        if at == 0:
            return [draw(st.sampled_from(_TERMINAL)), *path]
        before = path[at - 1]
        wrong = [status for status in ResponseStatus if status not in ALLOWED[before]]
        return [*path[:at], draw(st.sampled_from(wrong))]

    return build()


@functools.cache
def event_sequences(max_parts: int = 4) -> st.SearchStrategy[list[dict[str, Any]]]:
    """The stream events of one assistant message being written, ready for ``append_event``.

    ``output_item.added``, ``content_part.added``, an ``output_text.delta`` for each piece of text,
    ``output_text.done``, ``content_part.done`` and ``output_item.done``, in OpenAI's shapes and without
    ``sequence_number`` (the store stamps it).
    """

    @st.composite
    def build(draw: st.DrawFn) -> list[dict[str, Any]]:
        item_id = draw(item_ids())
        pieces = draw(st.lists(texts(max_size=12), min_size=1, max_size=max_parts))
        text = "".join(pieces)
        return [
            output_item_event("added", 0, message_item(item_id, [], "in_progress")),
            content_part_event("added", item_id, 0, 0, text_part("")),
            *(output_text_delta_event(item_id, 0, 0, piece) for piece in pieces),
            output_text_done_event(item_id, 0, 0, text),
            content_part_event("done", item_id, 0, 0, text_part(text)),
            output_item_event("done", 0, message_item(item_id, [text_part(text)], "completed")),
        ]

    return build()


# --------------------------------------------------------------------------- junk for fuzzing


@functools.cache
def weird_strings() -> st.SearchStrategy[str]:
    """Strings that break naive code: empty, whitespace, control characters, quotes, very long, id look-alikes."""
    return st.one_of(
        st.sampled_from(
            [
                "",
                " ",
                "\n",
                "\x00",
                "resp_\x00",
                "resp_ x",
                "resp_x\n",
                "'; DROP TABLE responses; --",
                "%s%s%n",
                "{}",
                "../../etc/passwd",
                "*",
                "\u202e",
                "🙂",
                "a" * 129,
                "a" * 10_000,
                "queued ",
                "COMPLETED",
                "ascending",
            ]
        ),
        st.text(max_size=30),
    )


@functools.cache
def junk(extra: st.SearchStrategy[Any] | None = None) -> st.SearchStrategy[Any]:
    """Arbitrary values of the wrong type or range, for fuzzing public methods.

    None, bools, huge and negative ints, odd floats, weird strings, bytes, non-JSON values, and nested lists and
    dicts of all of these. ``extra`` adds caller-specific plausible values (existing ids, valid statuses, ...) to
    the mix so fuzzing reaches the checks that come after the first one.
    """
    atoms = st.one_of(
        st.none(),
        st.booleans(),
        st.sampled_from([0, -1, 1, 2, 100, 101, 2**31, 2**63, -(2**63) - 1, 2**64, 10**100]),
        st.integers(),
        st.floats(),
        weird_strings(),
        st.binary(max_size=10),
        non_json_values(),
        *([extra] if extra is not None else []),
    )
    return st.recursive(
        atoms,
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.tuples(children),
            st.dictionaries(st.one_of(weird_strings(), st.integers()), children, max_size=3),
        ),
        max_leaves=5,
    )


@functools.cache
def corrupted_items(extra: st.SearchStrategy[Any] | None = None) -> st.SearchStrategy[Any]:
    """A valid input item with one field (``type``, ``role``, ``content``, ``id``, ...) replaced by junk.

    Corrupting a single field of an otherwise valid item reaches each of the item checks in turn.
    """
    bad = junk(extra)
    keys = st.sampled_from(["type", "role", "content", "id"])

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        item = dict(draw(input_items()))
        key = draw(st.one_of(keys, st.sampled_from(sorted(item))))
        item[key] = draw(bad)
        return item

    return build()


@functools.cache
def junk_items(extra: st.SearchStrategy[Any] | None = None) -> st.SearchStrategy[Any]:
    """Malformed item lists: corrupted items among valid ones, item-like dicts of junk, or plain junk."""
    keys = st.sampled_from(["type", "role", "content", "id", "status", "call_id", "output"])
    item = st.one_of(corrupted_items(extra), input_items(), st.dictionaries(keys, junk(extra), max_size=4))
    return st.one_of(st.lists(item, min_size=1, max_size=3), junk(extra))


@functools.cache
def invalid_inputs(extra: st.SearchStrategy[Any] | None = None) -> st.SearchStrategy[Any]:
    """Values every store refuses as a request's ``input`` with :class:`~responsestore.InvalidArgument`.

    Malformed item lists and junk (:func:`junk_items`), keeping only what the store's own input rules refuse, so
    a server's error handling can be tested with them: a 400, and nothing stored.
    """
    return junk_items(extra).filter(_refused_as_input)


@functools.cache
def invalid_request_inputs() -> st.SearchStrategy[Any]:
    """The :func:`invalid_inputs` a client can send: JSON-encodable, and still refused once decoded from JSON.

    For testing a server over HTTP: put one in a request body's ``input`` and expect a ``400`` and nothing stored.
    Nor is any that only a ``null`` makes invalid: in a request body ``null`` means "left out" (OpenAI's rule for
    every optional field), so ``"input": null`` or an item's ``"id": null`` is accepted.
    """
    return invalid_inputs().filter(_refused_over_json)


def _refused_over_json(value: Any) -> bool:
    try:
        decoded = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError, RecursionError):
        return False
    return decoded is not None and _refused_as_input(decoded) and _refused_as_input(_without_nulls(decoded))


def _without_nulls(value: Any) -> Any:
    """``value`` with every ``null`` member of every object left out (what a server reads it as)."""
    if isinstance(value, dict):
        return {key: _without_nulls(member) for key, member in value.items() if member is not None}
    if isinstance(value, list):
        return [_without_nulls(member) for member in value]
    return value


def _refused_as_input(value: Any) -> bool:
    try:
        normalize_input(value)
    except ResponseStoreError:
        return True
    return False
