"""The JSON a Responses API server sends: a record as a ``Response``, a page of items, and stream events.

Every shape here is one that both the official ``openai`` SDK's models and the Open Responses schema
(``ResponseResource`` and the ``*StreamingEvent`` schemas) accept:

- a response carries every field the schema requires; request parameters a caller never set are echoed back
  with OpenAI's defaults (:data:`RESPONSE_DEFAULTS`), and timestamps are whole seconds;
- a message, function call or function call output without a ``status`` is listed as ``completed`` (OpenAI lists
  every one with a status, and the Open Responses ``ItemField`` schema requires it), wherever an item is listed:
  in a response, in an HTTP page and in a store's :meth:`Page.to_openai <responsestore.Page.to_openai>`;
- an empty page has ``""`` as ``first_id`` and ``last_id`` (the SDK's ``ResponseItemList`` needs strings);
- stream events have OpenAI's fields; the lifecycle events (``response.created``, ``response.in_progress``,
  ``response.completed``, ...) carry the response snapshot.

Events are built without a ``sequence_number``: the store stamps it when it logs them (see
:meth:`BaseStore.append_event <responsestore.BaseStore.append_event>`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ._json import FrozenDict, thaw

if TYPE_CHECKING:
    from ._paging import Page
    from ._records import ResponseRecord

__all__ = [
    "RESPONSE_DEFAULTS",
    "content_part_event",
    "error_event",
    "function_call_arguments_delta_event",
    "function_call_arguments_done_event",
    "input_items_page",
    "item_json",
    "lifecycle_event",
    "list_json",
    "message_item",
    "output_item_event",
    "output_text_delta_event",
    "output_text_done_event",
    "response_frozen",
    "response_json",
    "text_part",
    "tool_json",
]

#: OpenAI's values for the request parameters a ``Response`` echoes back, used when a request did not set them.
RESPONSE_DEFAULTS: Mapping[str, Any] = {
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "truncation": "disabled",
    "text": {"format": {"type": "text"}},
    "temperature": 1.0,
    "top_p": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "top_logprobs": 0,
    "reasoning": None,
    "max_output_tokens": None,
    "max_tool_calls": None,
    "store": True,
    "service_tier": "default",
    "safety_identifier": None,
    "prompt_cache_key": None,
}

_FROZEN_DEFAULTS: FrozenDict = FrozenDict(RESPONSE_DEFAULTS)

# A function tool as a Response lists it: every field present, null when the request left it out.
_FUNCTION_TOOL_DEFAULTS: Mapping[str, Any] = {"description": None, "parameters": None, "strict": None}

# Item types that OpenAI always lists with a status.
_STATUS_ITEMS = frozenset({"message", "function_call", "function_call_output"})


def _fresh(value: Any) -> Any:
    """A plain copy of JSON ``value`` that shares nothing with it, whether it is frozen or plain."""
    cls = value.__class__
    if cls is dict or cls is FrozenDict:
        return {key: _fresh(item) for key, item in value.items()}
    if cls is list or cls is tuple:
        return [_fresh(item) for item in value]
    if isinstance(value, dict):
        return {key: _fresh(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_fresh(item) for item in value]
    return value


def _seconds(value: float | None) -> int | None:
    return None if value is None else int(value)


def item_json(item: Mapping[str, Any]) -> dict[str, Any]:
    """A fresh plain copy of a stored item as OpenAI lists it (with a ``status`` where OpenAI has one)."""
    data: dict[str, Any] = _fresh(item)
    if data.get("type") in _STATUS_ITEMS:
        data.setdefault("status", "completed")
    return data


def tool_json(tool: Mapping[str, Any]) -> dict[str, Any]:
    """A fresh plain copy of a stored tool as a Response lists it (a function tool with all its fields)."""
    data: dict[str, Any] = _fresh(tool)
    if data.get("type") == "function":
        for key, default in _FUNCTION_TOOL_DEFAULTS.items():
            data.setdefault(key, default)
    return data


def response_json(record: ResponseRecord) -> dict[str, Any]:
    """The complete ``Response`` JSON of ``record``: every required field, whole-second timestamps.

    Fields in the record's ``extra`` override :data:`RESPONSE_DEFAULTS`; ``owner``, ``version`` and ``input``
    are not part of it. A fresh plain copy of :func:`response_frozen`.
    """
    data: dict[str, Any] = thaw(response_frozen(record))
    return data


def response_frozen(record: ResponseRecord) -> FrozenDict:
    """:func:`response_json` as frozen JSON, sharing the record's own frozen parts (no copy of its items).

    What the store logs in events and a server serializes: building it copies nothing but the top level.
    """
    data: dict[str, Any] = dict(_FROZEN_DEFAULTS)
    if record.extra:
        data.update(record.extra)
    data.update(
        id=record.id,
        object="response",
        created_at=_seconds(record.created_at),
        completed_at=_seconds(record.completed_at),
        model=record.model,
        status=record.status.value,
        output=tuple(map(_listed_item, record.output)),
        previous_response_id=record.previous_response_id,
        instructions=record.instructions,
        tools=tuple(map(_listed_tool, record.tools)),
        metadata=record.metadata,
        usage=record.usage,
        error=record.error,
        incomplete_details=record.incomplete_details,
        background=record.background,
    )
    return FrozenDict._of_frozen(data)


def _listed_item(item: FrozenDict) -> FrozenDict:
    """A stored item as OpenAI lists it: with a ``status`` where OpenAI always has one (frozen; see item_json)."""
    if "status" not in item and item.get("type") in _STATUS_ITEMS:
        return FrozenDict._of_frozen({**item, "status": "completed"})
    return item


def _listed_tool(tool: FrozenDict) -> FrozenDict:
    """A stored tool as a Response lists it (frozen, as :func:`tool_json`)."""
    if tool.get("type") == "function" and any(key not in tool for key in _FUNCTION_TOOL_DEFAULTS):
        missing = {key: value for key, value in _FUNCTION_TOOL_DEFAULTS.items() if key not in tool}
        return FrozenDict._of_frozen({**tool, **missing})
    return tool


def input_items_page(page: Page[Mapping[str, Any]]) -> dict[str, Any]:
    """OpenAI's ``ResponseItemList`` JSON of a page of input items; an empty page has ``""`` as both ids."""
    return list_json([item_json(item) for item in page.data], page)


def list_json(data: list[Any], page: Page[Any]) -> dict[str, Any]:
    """OpenAI's list JSON of ``page`` holding ``data`` (its listed items): ``""`` as both ids of an empty page."""
    return {
        "object": "list",
        "data": data,
        "first_id": page.first_id or "",
        "last_id": page.last_id or "",
        "has_more": page.has_more,
    }


def lifecycle_event(kind: str, response: Mapping[str, Any]) -> dict[str, Any]:
    """``response.<kind>`` (``created``, ``queued``, ``in_progress``, ``completed``, ``failed``, ``incomplete``).

    ``response`` is the snapshot (a :func:`response_json` dict) the event carries; the event holds it as it is
    (no copy), so pass one nothing else changes.
    """
    return {"type": f"response.{kind}", "response": response}


def error_event(message: str, sequence_number: int, code: str = "server_error") -> dict[str, Any]:
    """An ``error`` stream event: the fields the ``openai`` SDK reads and the ``error`` payload Open Responses has."""
    return {
        "type": "error",
        "code": code,
        "message": message,
        "param": None,
        "error": {"type": "server_error", "code": code, "message": message, "param": None},
        "sequence_number": sequence_number,
    }


def output_item_event(kind: str, output_index: int, item: Mapping[str, Any]) -> dict[str, Any]:
    """``response.output_item.added`` or ``.done`` (``kind``) for the output item at ``output_index``."""
    return {"type": f"response.output_item.{kind}", "output_index": output_index, "item": item_json(item)}


def content_part_event(
    kind: str, item_id: str, output_index: int, content_index: int, part: Mapping[str, Any]
) -> dict[str, Any]:
    """``response.content_part.added`` or ``.done`` (``kind``) for one content part of a message."""
    return {
        "type": f"response.content_part.{kind}",
        "item_id": item_id,
        "output_index": output_index,
        "content_index": content_index,
        "part": _fresh(part),
    }


def output_text_delta_event(item_id: str, output_index: int, content_index: int, delta: str) -> dict[str, Any]:
    """``response.output_text.delta``: ``delta`` appended to a text part."""
    return {
        "type": "response.output_text.delta",
        "item_id": item_id,
        "output_index": output_index,
        "content_index": content_index,
        "delta": delta,
        "logprobs": [],
    }


def output_text_done_event(item_id: str, output_index: int, content_index: int, text: str) -> dict[str, Any]:
    """``response.output_text.done``: the final ``text`` of a text part."""
    return {
        "type": "response.output_text.done",
        "item_id": item_id,
        "output_index": output_index,
        "content_index": content_index,
        "text": text,
        "logprobs": [],
    }


def text_part(text: str) -> dict[str, Any]:
    """An ``output_text`` content part holding ``text``."""
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, parts: Iterable[Mapping[str, Any]], status: str) -> dict[str, Any]:
    """An assistant ``message`` output item."""
    return {
        "type": "message",
        "id": item_id,
        "role": "assistant",
        "status": status,
        "content": [_fresh(part) for part in parts],
    }


def function_call_arguments_delta_event(item_id: str, output_index: int, delta: str) -> dict[str, Any]:
    """``response.function_call_arguments.delta``: ``delta`` appended to a function call's arguments."""
    return {
        "type": "response.function_call_arguments.delta",
        "item_id": item_id,
        "output_index": output_index,
        "delta": delta,
    }


def function_call_arguments_done_event(item_id: str, output_index: int, arguments: str) -> dict[str, Any]:
    """``response.function_call_arguments.done``: the final ``arguments`` of a function call."""
    return {
        "type": "response.function_call_arguments.done",
        "item_id": item_id,
        "output_index": output_index,
        "arguments": arguments,
    }
