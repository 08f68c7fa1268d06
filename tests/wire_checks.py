"""Strict checks of the JSON a Responses server sends: the openai SDK's models and the Open Responses schemas.

The ``openresponses-types`` package needs Python 3.11; on 3.10 only its checks are skipped.
"""

from __future__ import annotations

import inspect
import sys
import typing
from typing import Any

import pydantic
from openai.types.responses import Response, ResponseItemList, ResponseStreamEvent

_SDK_EVENT: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ResponseStreamEvent)

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
        OPEN_RESPONSES.ResponseResource.model_validate(data)
    return parsed


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
