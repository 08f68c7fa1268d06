"""Request bodies, checked: JSON in, a validated request out, or an :class:`~._errors.ApiError` naming the field.

Transport-free: the WSGI app (and any other transport) hands the raw body to :func:`decode_body`, then the object
to :func:`parse_create`, :func:`parse_compact` or :func:`parse_input_tokens`.

The rules, the same for every body:

- every field the Open Responses ``CreateResponseBody`` documents is accepted, and so are the fields OpenAI
  documents for the same route; any other top-level field, or any unknown key inside an object the server checks
  (``text``, ``reasoning``, a tool, ``tool_choice``, ...), is ``400`` ``unknown_parameter``;
- ``null`` means "the default" for every optional field, at the top level and inside objects: it is left out of
  the request that the model sees and is never echoed where the ``Response`` schema forbids it;
- a value outside the schema is ``400`` with ``param`` naming the field as OpenAI does (``tools[0].name``,
  ``text.format.type``). A value the response echoes must be valid in both the Open Responses ``ResponseResource``
  and OpenAI's ``Response``, so only values both accept are taken (``reasoning.effort`` ``"minimal"`` is not);
- objects the response echoes are completed (``reasoning`` always has ``effort`` and ``summary``, ``text`` its
  ``format``, an ``allowed_tools`` choice its ``mode``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any, NoReturn

import attrs

from responsestore._checks import describe, has_lone_surrogate
from responsestore._ids import check_id
from responsestore._json import MAX_DEPTH as STORE_MAX_DEPTH
from responsestore._records import check_metadata
from responsestore.errors import InvalidArgument

from ._errors import ApiError

__all__ = [
    "COMPACT_FIELDS",
    "CREATE_FIELDS",
    "ECHOED_FIELDS",
    "INCLUDABLE",
    "INPUT_TOKENS_FIELDS",
    "MAX_DEPTH",
    "ContextRequest",
    "CreateRequest",
    "decode_body",
    "parse_compact",
    "parse_create",
    "parse_input_tokens",
]

Check = Callable[[Any, str], Any]


def _fail(param: str, message: str, code: str = "invalid_value") -> NoReturn:
    raise ApiError(400, message, param=param, code=code)


# ------------------------------------------------------------------------------------------------ the JSON body


#: How deeply a request body may nest objects and arrays (the body itself is level 1): the store keeps values
#: nested at most this deep, and Python's own recursion limits stay far away.
MAX_DEPTH = STORE_MAX_DEPTH


def _invalid_json(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code="invalid_json")


def _refuse_constant(name: str) -> NoReturn:
    raise _invalid_json(f"The request body holds {name}, which JSON does not allow.")


def _finite(text: str) -> float:
    number = float(text)
    if number - number != 0.0:  # 1e999 reads as inf, which no JSON reply could carry back
        raise _invalid_json(f"The request body holds the number {describe(text)}, too large for a float.")
    return number


def decode_body(raw: bytes) -> object:
    r"""The JSON value of a request body.

    Duplicate keys are not refused: the last one wins, as in most JSON parsers (Python's and JavaScript's among
    them). A leading UTF-8 byte order mark is skipped.

    Raises:
        ApiError: ``400`` ``invalid_json``: empty, not UTF-8 (UTF-16 and UTF-32 included), not JSON, nested more
            than :data:`MAX_DEPTH` levels deep (``param`` the path to the level past it, ``input[0].content``), or
            holding ``NaN``/``Infinity``, a number too large for a float (``1e999``) or a string with a lone
            surrogate (``"\ud83d"``; ``param`` its path), none of which a JSON reply could carry back.
    """
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise _invalid_json(f"The request body is not UTF-8 (byte {exc.start} is not valid).") from None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise _invalid_json("The request body is empty; it must be a JSON object.")
    too_deep = _too_deep(text)
    if too_deep is not None:
        raise _invalid_json(f"The request body is nested more than {MAX_DEPTH} levels deep.", too_deep or None)
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite)
    except json.JSONDecodeError as exc:
        raise _invalid_json(
            f"The request body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from None
    except (ValueError, RecursionError):  # an int of more than 4,300 digits (RecursionError: not past _too_deep)
        raise _invalid_json("The request body is not valid JSON.") from None
    if "\\u" in text:  # a lone surrogate can only come from an escape
        surrogate = _surrogate_path(value, "")
        if surrogate is not None:
            raise _invalid_json(
                "The request body holds a lone surrogate (such as '\\ud83d'), which UTF-8 cannot encode.",
                surrogate or None,
            )
    return value


# A JSON string (skipped whole), or a character that opens, closes or separates the values of an array or object.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]')


def _too_deep(text: str) -> str | None:
    """The path to the first value nested past :data:`MAX_DEPTH` (``""``: the body itself), else ``None``.

    It scans the text, so nothing deep is ever built; a text with at most :data:`MAX_DEPTH` brackets cannot nest
    deeper and is not scanned. Malformed JSON is scanned as well as it can be (``json.loads`` refuses it next).
    """
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return None
    # One entry per open array or object: [is it an object, its current key or index, does it expect a key].
    stack: list[list[Any]] = []
    for found in _TOKEN.finditer(text):
        token = found.group()
        first = token[0]
        if first in "[{":
            if len(stack) == MAX_DEPTH:
                return _path(stack)
            is_object = first == "{"
            stack.append([is_object, None if is_object else 0, is_object])
        elif first in "]}":
            if stack:
                stack.pop()
        elif not stack:
            continue
        elif first == ",":
            top = stack[-1]
            if top[0]:
                top[2] = True
            else:
                top[1] += 1
        elif stack[-1][0] and stack[-1][2]:  # the string is a key
            stack[-1][1] = _key(token)
            stack[-1][2] = False
    return None


def _key(token: str) -> str:
    try:
        key = json.loads(token)
    except ValueError:
        return token[1:-1]
    return str(key)


def _path(stack: list[list[Any]]) -> str:
    parts: list[str] = []
    for is_object, key, _ in stack:
        if is_object:
            parts.append(f".{key}" if parts else str(key))
        else:
            parts.append(f"[{key}]")
    return "".join(parts)


def _surrogate_path(value: object, path: str) -> str | None:
    """The path to the first string or key holding a lone surrogate (``""``: the body itself), else ``None``."""
    if isinstance(value, str):
        return path if has_lone_surrogate(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else key
            if has_lone_surrogate(key):
                return inner
            found = _surrogate_path(item, inner)
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _surrogate_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


# ------------------------------------------------------------------------------------------------ value checks


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _wrong_type(value: object, param: str, expected: str) -> NoReturn:
    _fail(param, f"{param!r} must be {expected}, not {_kind(value)}.", "invalid_type")


def _object(value: object, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        _wrong_type(value, param, "an object")
    return value


def _array(value: object, param: str) -> list[Any]:
    if not isinstance(value, list):
        _wrong_type(value, param, "an array")
    return value


def _boolean(value: object, param: str) -> bool:
    if not isinstance(value, bool):
        _wrong_type(value, param, "a boolean")
    return value


def _text(value: object, param: str) -> str:
    if not isinstance(value, str):
        _wrong_type(value, param, "a string")
    return value


def _string(*, max_length: int | None = None, non_empty: bool = False, pattern: str | None = None) -> Check:
    compiled = re.compile(pattern) if pattern is not None else None

    def check(value: object, param: str) -> str:
        text = _text(value, param)
        if non_empty and not text:
            _fail(param, f"{param!r} must not be empty.")
        if max_length is not None and len(text) > max_length:
            _fail(param, f"{param!r} is {len(text)} characters long; at most {max_length} are allowed.")
        if compiled is not None and compiled.fullmatch(text) is None:
            _fail(param, f"{param!r} {describe(text)} must match {pattern}.")
        return text

    return check


def _number(low: float, high: float) -> Check:
    def check(value: object, param: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _wrong_type(value, param, "a number")
        if not low <= value <= high:
            _fail(param, f"{param!r} must be from {low:g} to {high:g}, not {value!r}.")
        return value

    return check


def _integer(low: int, high: int | None = None) -> Check:
    def check(value: object, param: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            _wrong_type(value, param, "an integer")
        if value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f"at least {low}"
            _fail(param, f"{param!r} must be {bound}, not {value}.")
        return value

    return check


def _choice(*choices: str) -> Check:
    def check(value: object, param: str) -> str:
        if value not in choices:
            if not isinstance(value, str):
                _wrong_type(value, param, "a string")
            listed = ", ".join(repr(choice) for choice in choices)
            _fail(param, f"{param!r} must be one of {listed}, not {describe(value)}.")
        return value

    return check


def _boolean_check(value: object, param: str) -> bool:
    return _boolean(value, param)


def _any_object(value: object, param: str) -> dict[str, Any]:
    return _object(value, param)


def _array_of(item: Check, *, min_items: int = 0, max_items: int | None = None) -> Check:
    def check(value: object, param: str) -> list[Any]:
        items = _array(value, param)
        if len(items) < min_items or (max_items is not None and len(items) > max_items):
            bound = f"at most {max_items}" if len(items) >= min_items else f"at least {min_items}"
            _fail(param, f"{param!r} has {len(items)} entries; {bound} are allowed.")
        return [item(entry, f"{param}[{index}]") for index, entry in enumerate(items)]

    return check


def _unknown(obj: Mapping[str, Any], allowed: Collection[str], prefix: str) -> None:
    unknown = sorted(key for key in obj if key not in allowed)
    if unknown:
        param = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        _fail(param, f"Unknown parameter: {param!r}.", "unknown_parameter")


def _missing(param: str) -> NoReturn:
    _fail(param, f"Missing required parameter: {param!r}.", "missing_required_parameter")


def _shape(fields: Mapping[str, Check], *, required: Collection[str] = ()) -> Check:
    """An object with these fields (each checked, ``null`` ones left out); any other key is refused."""

    def check(value: object, param: str) -> dict[str, Any]:
        obj = _object(value, param)
        _unknown(obj, fields, param)
        result: dict[str, Any] = {}
        for key, field in fields.items():
            item = obj.get(key)
            if item is None:
                if key in required:
                    _missing(f"{param}.{key}")
                continue
            result[key] = field(item, f"{param}.{key}")
        return result

    return check


# ------------------------------------------------------------------------------------------------ fields


#: ``include`` entries: those Open Responses documents and those OpenAI does (passed to the model, never echoed).
INCLUDABLE = (
    "reasoning.encrypted_content",
    "message.output_text.logprobs",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
)
_NAME = r"[a-zA-Z0-9_-]{1,64}"
_SHORT = _string(max_length=64)


def _model(value: object, param: str) -> str:
    name: str = _string(non_empty=True)(value, param)
    return name


def _input(value: object, param: str) -> str | list[Any]:
    """A string, or a list of item objects (their ``null`` ``id`` and ``status`` left out: "assign one")."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        _wrong_type(value, param, "a string or an array of items")
    items = []
    for index, item in enumerate(value):
        obj = _object(item, f"{param}[{index}]")
        items.append({key: part for key, part in obj.items() if part is not None or key not in ("id", "status")})
    return items


def _response_id(value: object, param: str) -> str:
    try:
        return check_id(value, param)
    except InvalidArgument as exc:
        _fail(param, f"{exc}.", "invalid_value" if isinstance(value, str) else "invalid_type")


def _conversation(value: object, param: str) -> str:
    """A conversation reference: its id, or an object with its ``id`` (the SDK sends either)."""
    if isinstance(value, dict):
        _unknown(value, ("id",), param)
        if "id" not in value:
            _fail(param, f"{param!r} must be a conversation id or an object with its 'id'.", "invalid_type")
        value = value["id"]
    if not isinstance(value, str):
        _fail(param, f"{param!r} must be a conversation id or an object with its 'id'.", "invalid_type")
    return _response_id(value, param)


def _metadata(value: object, param: str) -> dict[str, str]:
    obj = _object(value, param)
    try:
        check_metadata(obj)
    except InvalidArgument as exc:
        _fail(param, f"{exc}.")
    return obj


def _function_tool(value: object, param: str) -> dict[str, Any]:
    obj = _object(value, param)
    kind = obj.get("type")
    if kind is None:
        _missing(f"{param}.type")
    if kind != "function":
        if not isinstance(kind, str):
            _wrong_type(kind, f"{param}.type", "a string")
        _fail(
            f"{param}.type",
            f"Tool type {describe(kind)} is not supported: this server offers function tools only.",
            "unsupported_value",
        )
    tool = _FUNCTION_TOOL(obj, param)
    # A Response lists a function tool with these three, null when the request left them out.
    return {"type": "function", "name": tool["name"], "description": None, "parameters": None, "strict": None, **tool}


_FUNCTION_TOOL = _shape(
    {
        "type": _choice("function"),
        "name": _string(pattern=_NAME),
        "description": _text,
        "parameters": _any_object,
        "strict": _boolean_check,
        "defer_loading": _boolean_check,
        "async": _boolean_check,
        "allowed_callers": _array_of(_choice("direct", "programmatic")),
        "output_schema": _any_object,
    },
    required=("name",),
)


def _tools(value: object, param: str) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = _array_of(_function_tool)(value, param)
    seen: set[str] = set()
    for index, tool in enumerate(tools):
        if tool["name"] in seen:
            _fail(f"{param}[{index}].name", f"Two tools are named {tool['name']!r}; tool names must be unique.")
        seen.add(tool["name"])
    return tools


_FUNCTION_CHOICE = _shape({"type": _choice("function"), "name": _string(non_empty=True)}, required=("type", "name"))


def _tool_choice(value: object, param: str) -> str | dict[str, Any]:
    """``none``/``auto``/``required``, one named function, or ``allowed_tools`` (completed with its ``mode``).

    That the named functions are among the request's tools is :func:`_check_tool_choice_names`'s to check.
    """
    if isinstance(value, str):
        result: str = _choice("none", "auto", "required")(value, param)
        return result
    obj = _object(value, param)
    kind = obj.get("type")
    if kind == "function":
        choice: dict[str, Any] = _FUNCTION_CHOICE(obj, param)
        return choice
    if kind == "allowed_tools":
        allowed = _ALLOWED_TOOLS(obj, param)
        return {"type": "allowed_tools", "mode": allowed.get("mode", "auto"), "tools": allowed["tools"]}
    if kind is None:
        _missing(f"{param}.type")
    if not isinstance(kind, str):
        _wrong_type(kind, f"{param}.type", "a string")
    _fail(
        f"{param}.type",
        f"Tool choice type {describe(kind)} is not supported: this server offers function tools only.",
        "unsupported_value",
    )


_ALLOWED_TOOLS = _shape(
    {
        "type": _choice("allowed_tools"),
        "mode": _choice("auto", "required"),
        "tools": _array_of(_FUNCTION_CHOICE, min_items=1, max_items=128),
    },
    required=("tools",),
)


def _check_tool_choice_names(checked: Mapping[str, Any]) -> None:
    """Refuse a ``tool_choice`` naming a function that is not among the request's ``tools`` (as OpenAI does)."""
    choice = checked.get("tool_choice")
    if not isinstance(choice, dict):
        return
    names = {tool["name"] for tool in checked.get("tools", ())}
    named = [("tool_choice.name", choice["name"])] if choice["type"] == "function" else []
    named += [(f"tool_choice.tools[{i}].name", tool["name"]) for i, tool in enumerate(choice.get("tools", ()))]
    for param, name in named:
        if name not in names:
            _fail(param, f"Tool choice names the function {name!r}, which is not among the request's tools.")


def _text_config(value: object, param: str) -> dict[str, Any]:
    """``text``, completed: its ``format`` (``{"type": "text"}`` by default) and ``verbosity`` when given."""
    text: dict[str, Any] = _shape({"format": _any_object, "verbosity": _choice("low", "medium", "high")})(value, param)
    fmt = text.get("format")
    text["format"] = {"type": "text"} if fmt is None else _text_format(fmt, f"{param}.format")
    return text


def _text_format(obj: dict[str, Any], param: str) -> dict[str, Any]:
    kind = obj.get("type")
    if kind is None:
        _missing(f"{param}.type")
    _choice("text", "json_object", "json_schema")(kind, f"{param}.type")
    if kind != "json_schema":
        _unknown(obj, ("type",), param)
        return {"type": kind}
    schema = _shape(
        {
            "type": _choice("json_schema"),
            "name": _string(pattern=_NAME),
            "schema": _any_object,
            "description": _text,
            "strict": _boolean_check,
        },
        required=("name", "schema"),
    )(obj, param)
    # Completed as OpenAI echoes it: a description (null) and strict (false) when the request has none.
    return {"description": None, "strict": False, **schema}


_REASONING = _shape(
    {
        "effort": _choice("none", "low", "medium", "high", "xhigh"),
        "summary": _choice("auto", "concise", "detailed"),
        "generate_summary": _choice("auto", "concise", "detailed"),
        "context": _choice("auto", "current_turn", "all_turns"),
    }
)


def _reasoning(value: object, param: str) -> dict[str, Any]:
    """``reasoning``, completed as a Response echoes it: ``effort`` and ``summary``, each ``null`` when not given.

    ``generate_summary`` (OpenAI's older name of ``summary``) fills ``summary`` when that is not given.
    """
    given = _REASONING(value, param)
    return {"effort": given.get("effort"), "summary": given.get("summary", given.get("generate_summary"))}


def _prompt(value: object, param: str) -> dict[str, Any]:
    prompt: dict[str, Any] = _shape(
        {"id": _string(non_empty=True), "version": _text, "variables": _any_object}, required=("id",)
    )(value, param)
    for key, variable in prompt.get("variables", {}).items():
        if not isinstance(variable, (str, dict)):
            _wrong_type(variable, f"{param}.variables.{key}", "a string or an input content object")
    return prompt


_STREAM_OPTIONS = _shape({"include_obfuscation": _boolean_check})
_CONTEXT_MANAGEMENT = _array_of(
    _shape({"type": _string(non_empty=True), "compact_threshold": _integer(0)}, required=("type",))
)
_PROMPT_CACHE_RETENTION = _choice("in_memory", "24h")
_PROMPT_CACHE_OPTIONS = _shape(
    {
        "comparison_response_id": _text,
        "mode": _choice("implicit", "explicit"),
        "prewarm": _boolean_check,
        "ttl": _choice("30m", "12h"),
    }
)
_IMAGE = _shape({"context_compression": _choice("auto", "enabled", "disabled")})
_SERVICE_TIER = _choice("auto", "default", "flex", "priority", "scale", "fast", "ultrafast")
_TRUNCATION = _choice("auto", "disabled")

#: Every field ``POST /v1/responses`` accepts and how each is checked (then, across fields, the tool choice's names).
CREATE_FIELDS: Mapping[str, Check] = {
    # Acted on by the app.
    "model": _model,
    "input": _input,
    "instructions": _text,
    "previous_response_id": _response_id,
    "store": _boolean_check,
    "background": _boolean_check,
    "stream": _boolean_check,
    "metadata": _metadata,
    "conversation": _conversation,
    # Echoed in the response and passed to the model.
    "tools": _tools,
    "tool_choice": _tool_choice,
    "temperature": _number(0, 2),
    "top_p": _number(0, 1),
    "presence_penalty": _number(-2, 2),
    "frequency_penalty": _number(-2, 2),
    "top_logprobs": _integer(0, 20),
    "max_output_tokens": _integer(16),
    "max_tool_calls": _integer(1),
    "parallel_tool_calls": _boolean_check,
    "truncation": _TRUNCATION,
    "text": _text_config,
    "reasoning": _reasoning,
    "service_tier": _SERVICE_TIER,
    "safety_identifier": _SHORT,
    "prompt_cache_key": _SHORT,
    "prompt_cache_retention": _PROMPT_CACHE_RETENTION,
    "prompt": _prompt,
    "user": _text,
    # Passed to the model only.
    "include": _array_of(_choice(*INCLUDABLE)),
    "stream_options": _STREAM_OPTIONS,
    "context_management": _CONTEXT_MANAGEMENT,
    "prompt_cache_options": _PROMPT_CACHE_OPTIONS,
    "image": _IMAGE,
    "moderation": _shape({"model": _string(non_empty=True), "policy": _any_object}, required=("model",)),
    "access_programs": _shape({"cyber": _choice("standard", "daybreak_blue", "daybreak_red")}),
    "background_options": _shape(
        {"completion_window": _choice("soonest", "2h", "8h"), "continuation_id": _string(non_empty=True)}
    ),
}

#: The create fields a Response echoes back (when the request sets them; OpenAI's defaults otherwise).
ECHOED_FIELDS = frozenset(
    {
        "tool_choice",
        "temperature",
        "top_p",
        "presence_penalty",
        "frequency_penalty",
        "top_logprobs",
        "max_output_tokens",
        "max_tool_calls",
        "parallel_tool_calls",
        "truncation",
        "text",
        "reasoning",
        "service_tier",
        "safety_identifier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "prompt",
        "user",
    }
)

#: Every field ``POST /v1/responses/compact`` accepts.
COMPACT_FIELDS: Mapping[str, Check] = {
    "model": _model,
    "input": _input,
    "instructions": _text,
    "previous_response_id": _response_id,
    "prompt_cache_key": _SHORT,
    "prompt_cache_retention": _PROMPT_CACHE_RETENTION,
    "prompt_cache_options": _PROMPT_CACHE_OPTIONS,
    "service_tier": _SERVICE_TIER,
    "image": _IMAGE,
}

#: Every field ``POST /v1/responses/input_tokens`` accepts.
INPUT_TOKENS_FIELDS: Mapping[str, Check] = {
    "model": _model,
    "input": _input,
    "instructions": _text,
    "previous_response_id": _response_id,
    "conversation": _conversation,
    "tools": _tools,
    "tool_choice": _tool_choice,
    "parallel_tool_calls": _boolean_check,
    "personality": _SHORT,
    "reasoning": _reasoning,
    "text": _text_config,
    "truncation": _TRUNCATION,
}


# ------------------------------------------------------------------------------------------------ requests


@attrs.frozen
class ContextRequest:
    """A checked request that names a context (its input after an optional chain): compaction, token counts.

    ``body`` is the checked body: fields sent as ``null`` left out, objects completed; it is what the
    ``compact`` and ``count_tokens`` callables receive.
    """

    model: str | None
    input: str | list[Any]
    instructions: str | None
    previous_response_id: str | None
    conversation: str | None
    body: dict[str, Any]


@attrs.frozen
class CreateRequest:
    """A checked ``POST /v1/responses`` body.

    ``extra`` holds the echoed fields the request set (as they are echoed, and ``store`` when false); ``body`` is
    the checked body (``null`` fields left out, objects completed) that the model receives.
    """

    model: str | None
    input: str | list[Any]
    instructions: str | None
    previous_response_id: str | None
    conversation: str | None
    store: bool
    background: bool
    stream: bool
    metadata: Mapping[str, str] | None
    tools: list[Any]
    extra: dict[str, Any]
    body: dict[str, Any]


def _checked(body: object, fields: Mapping[str, Check]) -> dict[str, Any]:
    """The body's fields checked: unknown ones refused, ``null`` ones left out, the others as checked.

    Then the rules across fields: a ``tool_choice`` names only functions among the ``tools``.
    """
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    _unknown(body, fields, "")
    checked: dict[str, Any] = {}
    for name, check in fields.items():
        value = body.get(name)
        if value is None:
            continue
        checked[name] = check(value, name)
    _check_tool_choice_names(checked)
    return checked


def _one_context(fields: Mapping[str, Any]) -> str | None:
    """The conversation the request names, refused together with ``previous_response_id``."""
    conversation: str | None = fields.get("conversation")
    if conversation is not None and "previous_response_id" in fields:
        _fail("conversation", "Pass 'conversation' or 'previous_response_id', not both.")
    return conversation


def parse_create(body: object) -> CreateRequest:
    """Check a ``POST /v1/responses`` body (see the module's rules).

    ``model`` may be left out (``None``): the app then uses its default model, if it has one.

    Raises:
        ApiError: ``400`` naming the first field at fault.
    """
    fields = _checked(body, CREATE_FIELDS)
    store = fields.get("store", True)
    background = fields.get("background", False)
    if background and not store:
        _fail("store", "A background response must be stored: 'background' needs 'store': true.")
    conversation = _one_context(fields)
    if conversation is not None and not store:
        _fail("store", "A response in a conversation must be stored: 'conversation' needs 'store': true.")
    extra = {name: value for name, value in fields.items() if name in ECHOED_FIELDS}
    if not store:
        extra["store"] = False
    return CreateRequest(
        model=fields.get("model"),
        input=fields.setdefault("input", []),
        instructions=fields.get("instructions"),
        previous_response_id=fields.get("previous_response_id"),
        conversation=conversation,
        store=store,
        background=background,
        stream=fields.get("stream", False),
        metadata=fields.get("metadata"),
        tools=fields.get("tools", []),
        extra=extra,
        body=fields,
    )


def _context_request(body: object, fields: Mapping[str, Check]) -> ContextRequest:
    checked = _checked(body, fields)
    return ContextRequest(
        model=checked.get("model"),
        input=checked.setdefault("input", []),
        instructions=checked.get("instructions"),
        previous_response_id=checked.get("previous_response_id"),
        conversation=_one_context(checked),
        body=checked,
    )


def parse_compact(body: object) -> ContextRequest:
    """Check a ``POST /v1/responses/compact`` body.

    Raises:
        ApiError: ``400`` naming the first field at fault.
    """
    return _context_request(body, COMPACT_FIELDS)


def parse_input_tokens(body: object) -> ContextRequest:
    """Check a ``POST /v1/responses/input_tokens`` body.

    Raises:
        ApiError: ``400`` naming the first field at fault.
    """
    return _context_request(body, INPUT_TOKENS_FIELDS)
