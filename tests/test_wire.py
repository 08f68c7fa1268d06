"""The wire format: a record in every status is a complete Response for both the SDK and the Open Responses schema."""

from __future__ import annotations

from typing import Any

import pytest

from responsestore import Page, ResponseRecord, ResponseStatus, _wire
from tests.wire_checks import check_event, check_item_page, check_response

_FINISHED: dict[str, dict[str, Any]] = {
    "queued": {},
    "in_progress": {},
    "completed": {"usage": {"input_tokens": 2, "output_tokens": 1}},
    "failed": {"error": {"code": "server_error", "message": "boom"}},
    "cancelled": {},
    "incomplete": {"incomplete_details": {"reason": "max_output_tokens"}},
}


@pytest.mark.parametrize("status", [status.value for status in ResponseStatus])
def test_a_record_in_every_status_is_a_complete_response(status: str) -> None:
    record = ResponseRecord(
        id="resp_1",
        created_at=1_700_000_000.75,
        model="m",
        status=status,
        input=[{"role": "user", "content": "hi"}],
        output=[{"type": "message", "role": "assistant", "content": "hello"}] if status == "completed" else [],
        tools=[{"type": "function", "name": "f"}],
        background=status in ("queued", "cancelled"),
        completed_at=None if status in ("queued", "in_progress") else 1_700_000_001.5,
        **_FINISHED[status],
    )
    data = record.to_openai()
    parsed = check_response(data)
    assert parsed.status == status
    assert data["created_at"] == 1_700_000_000
    assert data["tools"] == [{"type": "function", "name": "f", "description": None, "parameters": None, "strict": None}]
    for key, default in _wire.RESPONSE_DEFAULTS.items():
        assert data[key] == default
    for kind in ("created", "in_progress", status if status in ("completed", "failed", "incomplete") else "queued"):
        check_event({**_wire.lifecycle_event(kind, data), "sequence_number": 0})


def test_request_parameters_override_the_defaults() -> None:
    record = ResponseRecord(
        id="resp_1", created_at=1, model="m", status="in_progress", extra={"temperature": 0.2, "store": False}
    )
    data = record.to_openai()
    assert (data["temperature"], data["store"], data["top_p"]) == (0.2, False, 1.0)
    check_response(data)


def test_items_get_a_status_and_the_callers_mapping_is_left_alone() -> None:
    given = {"type": "message", "id": "msg_1", "role": "user", "content": [{"type": "input_text", "text": "x"}]}
    listed = _wire.item_json(given)
    assert listed["status"] == "completed"
    assert "status" not in given
    listed["content"].append("changed")
    assert len(given["content"]) == 1
    assert _wire.item_json({"type": "reasoning", "id": "rs_1", "summary": []}) == {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [],
    }


def test_an_empty_page_has_string_ids() -> None:
    body = _wire.input_items_page(Page(data=(), first_id=None, last_id=None, has_more=False))
    assert body == {"object": "list", "data": [], "first_id": "", "last_id": "", "has_more": False}
    check_item_page(body)


def test_text_events_validate() -> None:
    part = _wire.text_part("hi")
    item = _wire.message_item("msg_1", [part], "completed")
    for event in (
        _wire.output_item_event("added", 0, _wire.message_item("msg_1", [], "in_progress")),
        _wire.content_part_event("added", "msg_1", 0, 0, _wire.text_part("")),
        _wire.output_text_delta_event("msg_1", 0, 0, "hi"),
        _wire.output_text_done_event("msg_1", 0, 0, "hi"),
        _wire.content_part_event("done", "msg_1", 0, 0, part),
        _wire.output_item_event("done", 0, item),
    ):
        check_event({**event, "sequence_number": 3})


def test_function_call_events_validate() -> None:
    fields = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f"}
    for event in (
        _wire.output_item_event("added", 2, {**fields, "arguments": "", "status": "in_progress"}),
        _wire.function_call_arguments_delta_event("fc_1", 2, '{"a"'),
        _wire.function_call_arguments_done_event("fc_1", 2, '{"a": 1}'),
        _wire.output_item_event("done", 2, {**fields, "arguments": '{"a": 1}', "status": "completed"}),
    ):
        check_event({**event, "sequence_number": 9})
