"""Strict checks of the JSON a Responses server sends: the openai SDK's models and the Open Responses schemas.

The ``openresponses-types`` package needs Python 3.11; on 3.10 only its checks are skipped.

Two places where the two disagree, so that no body can satisfy both as written:

- the Open Responses ``JsonSchemaResponseFormat`` (a Response's ``text.format`` of type ``json_schema``) allows
  only ``null`` as its ``schema`` (a defect of the published spec), while OpenAI's requires the schema object: the
  server echoes the schema, as OpenAI does, and the spec check sees ``schema`` as ``null``;
- OpenAI's ``CompactedResponse.output`` types every message as an assistant message, while the compacted list holds
  the user messages (as OpenAI documents and the Open Responses ``CompactResource`` types them): the SDK checks
  the other items with ``CompactedResponse`` and each user message as the input item it is meant to become.
"""

from __future__ import annotations

import inspect
import sys
import typing
from typing import Any

import pydantic
from openai.types import Model
from openai.types.conversations import Conversation, ConversationItem, ConversationItemList
from openai.types.responses import (
    CompactedResponse,
    InputTokenCountResponse,
    Response,
    ResponseInputItem,
    ResponseItemList,
    ResponseStreamEvent,
)

_SDK_EVENT: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ResponseStreamEvent)
_SDK_INPUT_ITEM: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ResponseInputItem)
_SDK_ITEM: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ConversationItem)

if sys.version_info >= (3, 11):
    import openresponses_types

    OPEN_RESPONSES: Any = openresponses_types
    # The spec's ItemField (message, function call and its output, reasoning, compaction): what a response's output
    # lists, and what the store lists as items.
    _SPEC_ITEM: Any = pydantic.TypeAdapter(
        typing.get_args(openresponses_types.ResponseResource.model_fields["output"].annotation)[0]
    )
    _SPEC_EVENTS: dict[str, Any] = {}
    for _name, _cls in inspect.getmembers(openresponses_types, inspect.isclass):
        if _name.endswith("StreamingEvent") and issubclass(_cls, pydantic.BaseModel):
            _kind = _cls.model_fields["type"].annotation  # a one-member enum of the event's type
            _SPEC_EVENTS[next(iter(_kind)).value] = _cls  # type: ignore[arg-type]
else:  # pragma: no cover - exercised by CI's Python 3.10 run
    OPEN_RESPONSES = None
    _SPEC_ITEM = None
    _SPEC_EVENTS = {}


def check_response(data: dict[str, Any]) -> Response:
    """Validate a Response body with both models; return the SDK's parse."""
    parsed = Response.model_validate(data)
    assert isinstance(data["created_at"], int)
    assert data["completed_at"] is None or isinstance(data["completed_at"], int)
    if OPEN_RESPONSES is not None:
        OPEN_RESPONSES.ResponseResource.model_validate(_as_spec_types_it(data))
    return parsed


def _as_spec_types_it(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with a ``json_schema`` text format's ``schema`` as ``null`` (see the module docstring)."""
    fmt = data.get("text", {}).get("format", {})
    if fmt.get("type") != "json_schema":
        return data
    return {**data, "text": {**data["text"], "format": {**fmt, "schema": None}}}


def check_event(event: dict[str, Any]) -> Any:
    """Validate one stream event with both models (and the snapshot it carries); return the SDK's parse."""
    assert isinstance(event["sequence_number"], int)
    parsed = _SDK_EVENT.validate_python(event)
    assert type(parsed).__name__ != "dict"
    if "response" in event:
        check_response(event["response"])
    if OPEN_RESPONSES is not None:
        _SPEC_EVENTS[event["type"]].model_validate(event)
    return parsed


def check_item(item: dict[str, Any]) -> Any:
    """Validate one listed item with the SDK's item union and the Open Responses ``ItemField``; the SDK's parse."""
    parsed = ResponseItemList.model_validate(
        {"object": "list", "data": [item], "first_id": "", "last_id": "", "has_more": False}
    ).data[0]
    if _SPEC_ITEM is not None:
        _SPEC_ITEM.validate_python(item)
    return parsed


def check_item_page(data: dict[str, Any]) -> ResponseItemList:
    """Validate an input_items page with the SDK's ResponseItemList (the spec has no list schema) and each of its
    items with the Open Responses ``ItemField`` schema."""
    parsed = ResponseItemList.model_validate(data)
    for item in data["data"]:
        check_item(item)
    return parsed


def check_compaction(data: dict[str, Any]) -> CompactedResponse:
    """Validate a ``response.compaction`` body (see the module docstring); return the SDK's parse of it."""
    assert data["object"] == "response.compaction"
    assert isinstance(data["created_at"], int)
    users = [item for item in data["output"] if item.get("type") == "message" and item.get("role") == "user"]
    for item in users:  # as given, or completed when the request gave none
        assert item["status"] in ("completed", "in_progress", "incomplete")
        _SDK_INPUT_ITEM.validate_python(item)
    others = [item for item in data["output"] if item not in users]
    parsed = CompactedResponse.model_validate({**data, "output": others})
    if OPEN_RESPONSES is not None:
        OPEN_RESPONSES.CompactResource.model_validate(data)
    return parsed


def check_input_tokens(data: dict[str, Any]) -> InputTokenCountResponse:
    """Validate a ``response.input_tokens`` body (exactly its two fields)."""
    assert set(data) == {"object", "input_tokens"}
    assert isinstance(data["input_tokens"], int)
    return InputTokenCountResponse.model_validate(data)


def check_model(data: dict[str, Any]) -> Model:
    """Validate a ``Model`` body (``created`` a whole number of seconds)."""
    assert isinstance(data["created"], int)
    return Model.model_validate(data)


def check_model_list(data: dict[str, Any]) -> list[Model]:
    """Validate the model list: ``{"object": "list", "data": [Model, ...]}``."""
    assert set(data) == {"object", "data"}
    assert data["object"] == "list"
    return [check_model(model) for model in data["data"]]


def check_conversation(data: dict[str, Any]) -> Conversation:
    """Validate a Conversation body with the SDK's model, strictly (the spec has no conversations)."""
    assert isinstance(data["created_at"], int)
    return Conversation.model_validate(data, strict=True)


def check_conversation_item(data: dict[str, Any]) -> Any:
    """Validate one conversation item with the SDK's ConversationItem union, strictly, and the spec's item."""
    parsed = _SDK_ITEM.validate_python(data, strict=True)
    assert type(parsed).__name__ != "dict"
    if OPEN_RESPONSES is not None and data.get("type") == "message":
        OPEN_RESPONSES.Message.model_validate(data)
    return parsed


def check_conversation_items(data: dict[str, Any]) -> ConversationItemList:
    """Validate a page of conversation items (ConversationItemList) and each item."""
    for item in data["data"]:
        check_conversation_item(item)
    return ConversationItemList.model_validate(data, strict=True)
