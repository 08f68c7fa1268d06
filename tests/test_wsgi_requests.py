"""Wire discipline of the app: every documented request field, ``null`` as the default, refusals naming the field,
request ids, CORS, and routes. Bodies go through the app in process (``tests.live_app.call``) or over real HTTP
with the ``openai`` client; every 200 body is validated by ``tests/wire_checks.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.responses.response_create_params import ResponseCreateParamsBase

import responsestore
from responsestore.server._requests import CREATE_FIELDS, MAX_DEPTH
from responsestore.testing import strategies
from responsestore.wsgi import ResponsesApp, make_app
from tests.live_app import Called, Live, call, error_of
from tests.wire_checks import OPEN_RESPONSES, check_event, check_response

FUNCTION = {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}

#: A valid, non-default value for every create field but ``conversation``, which excludes ``previous_response_id``
#: (its tests are in ``test_conversations_http.py``).
VALID: dict[str, Any] = {
    "model": "echo",
    "input": "hello there",
    "instructions": "Be brief.",
    "previous_response_id": None,  # set per test: it must name a finished response
    "store": True,
    "background": False,
    "stream": False,
    "metadata": {"k": "v"},
    "tools": [FUNCTION],
    "tool_choice": {"type": "function", "name": "lookup"},
    "temperature": 0.5,
    "top_p": 0.9,
    "presence_penalty": 0.1,
    "frequency_penalty": -0.1,
    "top_logprobs": 2,
    "max_output_tokens": 1000,
    "max_tool_calls": 3,
    "parallel_tool_calls": False,
    "truncation": "auto",
    "text": {"format": {"type": "json_object"}, "verbosity": "low"},
    "reasoning": {"effort": "high", "summary": "concise"},
    "service_tier": "flex",
    "safety_identifier": "user-123",
    "prompt_cache_key": "cache-1",
    "prompt_cache_retention": "24h",
    "prompt": {"id": "pmpt_1", "version": "2", "variables": {"city": "Paris"}},
    "user": "user-123",
    "include": ["reasoning.encrypted_content", "message.output_text.logprobs"],
    "stream_options": {"include_obfuscation": False},
    "context_management": [{"type": "compaction", "compact_threshold": 1000}],
    "prompt_cache_options": {"mode": "explicit", "ttl": "30m"},
    "image": {"context_compression": "auto"},
    "moderation": {"model": "omni-moderation-latest"},
    "access_programs": {"cyber": "standard"},
    "background_options": {"completion_window": "soonest"},
}
#: What a response echoes for each field the request set (the others are not echoed).
ECHOES = {
    "tool_choice": {"type": "function", "name": "lookup"},
    "temperature": 0.5,
    "top_p": 0.9,
    "presence_penalty": 0.1,
    "frequency_penalty": -0.1,
    "top_logprobs": 2,
    "max_output_tokens": 1000,
    "max_tool_calls": 3,
    "parallel_tool_calls": False,
    "truncation": "auto",
    "text": {"format": {"type": "json_object"}, "verbosity": "low"},
    "reasoning": {"effort": "high", "summary": "concise"},
    "service_tier": "flex",
    "safety_identifier": "user-123",
    "prompt_cache_key": "cache-1",
    "prompt_cache_retention": "24h",
    "prompt": {"id": "pmpt_1", "version": "2", "variables": {"city": "Paris"}},
    "user": "user-123",
    "instructions": "Be brief.",
    "metadata": {"k": "v"},
    "tools": [{**FUNCTION, "description": None, "strict": None}],
}
#: Fields that vary from one response to the next.
VARYING = {"id", "created_at", "completed_at", "output"}


@pytest.fixture
def app() -> Iterator[ResponsesApp]:
    application = make_app(responsestore.open("memory://"))
    yield application
    application.close()


def _response(reply: Called) -> dict[str, Any]:
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    check_response(body)
    return body


def _events(reply: Called) -> list[dict[str, Any]]:
    assert reply.status_code == 200, reply.text
    # Server-sent events end lines with \n only: str.splitlines would also split inside the JSON (at U+0085, U+2028).
    events = [json.loads(line[6:]) for line in reply.text.split("\n") if line.startswith("data: ")]
    for event in events:
        check_event(event)
    return events


# --------------------------------------------------------------------------------------------- every field


def test_the_app_accepts_every_field_of_both_specs() -> None:
    openai_fields = set(ResponseCreateParamsBase.__annotations__) | {"stream"}
    assert openai_fields <= set(CREATE_FIELDS)
    assert set(VALID) == set(CREATE_FIELDS) - {"conversation"}
    if OPEN_RESPONSES is not None:
        assert set(OPEN_RESPONSES.CreateResponseBody.model_fields) <= set(CREATE_FIELDS)


def test_a_body_with_every_field_is_served_and_echoed(app: ResponsesApp) -> None:
    first = _response(call(app, "POST", "/v1/responses", {"model": "echo", "input": "first"}))
    body = {**VALID, "previous_response_id": first["id"]}
    response = _response(call(app, "POST", "/v1/responses", body))
    for name, echoed in ECHOES.items():
        assert response[name] == echoed, name
    assert response["previous_response_id"] == first["id"]
    for name in ("include", "stream_options", "context_management", "image", "moderation", "conversation"):
        assert name not in response
    assert call(app, "GET", f"/v1/responses/{response['id']}").json() == response


def test_the_openai_client_sends_openai_only_fields(serve: Any) -> None:
    live: Live = serve()
    response = live.client().responses.create(
        model="echo",
        input="hello there",
        prompt={"id": "pmpt_1", "variables": {"city": "Paris"}},
        prompt_cache_retention="in_memory",
        context_management=[{"type": "compaction", "compact_threshold": 2000}],
        include=["message.output_text.logprobs"],
        user="someone",
        reasoning={"effort": "low", "generate_summary": "auto"},
    )
    assert response.output_text == "hello there"
    assert response.prompt is not None
    assert response.prompt.id == "pmpt_1"
    assert response.prompt_cache_retention == "in_memory"
    assert response.reasoning is not None
    assert (response.reasoning.effort, response.reasoning.summary) == ("low", "auto")
    check_response(live.json("GET", f"/responses/{response.id}"))


@pytest.fixture
def serve(serve_on_both: Callable[..., Live]) -> Callable[..., Live]:
    """Both transports."""
    return serve_on_both


# --------------------------------------------------------------------------------------------- null


@pytest.mark.parametrize("name", sorted(set(CREATE_FIELDS) - {"model"}))
def test_null_means_the_default(app: ResponsesApp, name: str) -> None:
    plain = {"model": "echo", "input": "two words"}
    without = _response(call(app, "POST", "/v1/responses", plain))
    with_null = _response(call(app, "POST", "/v1/responses", {**plain, name: None}))
    if name == "input":  # no input: the response has nothing to answer
        assert with_null["output"] == []
        return
    assert {k: v for k, v in with_null.items() if k not in VARYING} == {
        k: v for k, v in without.items() if k not in VARYING
    }
    assert with_null["output"][0]["content"][0]["text"] == "two words"


def test_nulls_inside_objects_mean_their_defaults(app: ResponsesApp) -> None:
    body = {
        "model": "echo",
        "input": [{"type": "message", "role": "user", "content": "hi", "id": None, "status": None}],
        "text": {"format": None, "verbosity": None},
        "reasoning": {"effort": None, "summary": None},
        "tools": [{"type": "function", "name": "f", "description": None, "parameters": None, "strict": None}],
        "tool_choice": {"type": "allowed_tools", "mode": None, "tools": [{"type": "function", "name": "f"}]},
        "stream_options": {"include_obfuscation": None},
        "prompt": {"id": "pmpt_1", "version": None, "variables": None},
    }
    response = _response(call(app, "POST", "/v1/responses", body))
    assert response["text"] == {"format": {"type": "text"}}
    assert response["reasoning"] == {"effort": None, "summary": None}
    assert response["tools"] == [
        {"type": "function", "name": "f", "description": None, "parameters": None, "strict": None}
    ]
    assert response["tool_choice"] == {
        "type": "allowed_tools",
        "mode": "auto",
        "tools": [{"type": "function", "name": "f"}],
    }
    assert response["prompt"] == {"id": "pmpt_1"}
    items = call(app, "GET", f"/v1/responses/{response['id']}/input_items").json()["data"]
    assert items[0]["id"].startswith("msg_")
    assert items[0]["status"] == "completed"


def test_null_stream_and_store_are_not_refused_and_a_stream_null_body_is_not_streamed(app: ResponsesApp) -> None:
    body = {"model": "echo", "input": "x", "stream": None, "store": None, "background": None}
    response = _response(call(app, "POST", "/v1/responses", body))
    assert response["store"] is True
    events = _events(call(app, "POST", "/v1/responses", {**body, "stream": True}))
    assert events[-1]["type"] == "response.completed"


# --------------------------------------------------------------------------------------------- completion


@pytest.mark.parametrize(
    ("field", "sent", "echoed"),
    [
        ("reasoning", {}, {"effort": None, "summary": None}),
        ("reasoning", {"effort": "none"}, {"effort": "none", "summary": None}),
        ("reasoning", {"generate_summary": "detailed"}, {"effort": None, "summary": "detailed"}),
        ("reasoning", {"context": "all_turns", "summary": "auto"}, {"effort": None, "summary": "auto"}),
        ("text", {}, {"format": {"type": "text"}}),
        ("text", {"verbosity": "high"}, {"format": {"type": "text"}, "verbosity": "high"}),
        (
            "text",
            {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}}},
            {
                "format": {
                    "type": "json_schema",
                    "name": "out",
                    "schema": {"type": "object"},
                    "description": None,
                    "strict": False,
                }
            },
        ),
        ("tool_choice", "required", "required"),
        (
            "tool_choice",
            {"type": "allowed_tools", "tools": [{"type": "function", "name": "lookup"}]},
            {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "lookup"}]},
        ),
    ],
)
def test_echoed_objects_are_complete(app: ResponsesApp, field: str, sent: Any, echoed: Any) -> None:
    body = {"model": "echo", "input": "x", "tools": [FUNCTION], field: sent}
    assert _response(call(app, "POST", "/v1/responses", body))[field] == echoed


# --------------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("extra", "param", "code"),
    [
        ({"surprise": 1}, "surprise", "unknown_parameter"),
        ({"include": ["file_search_call.everything"]}, "include[0]", "invalid_value"),
        ({"include": "reasoning.encrypted_content"}, "include", "invalid_type"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type", "unsupported_value"),
        ({"tools": [{"name": "f"}]}, "tools[0].type", "missing_required_parameter"),
        ({"tools": [{"type": 3, "name": "f"}]}, "tools[0].type", "invalid_type"),
        ({"tools": [{"type": "function"}]}, "tools[0].name", "missing_required_parameter"),
        ({"tools": [{"type": "function", "name": "no spaces"}]}, "tools[0].name", "invalid_value"),
        ({"tools": [{"type": "function", "name": "f", "parameters": "{}"}]}, "tools[0].parameters", "invalid_type"),
        ({"tools": [{"type": "function", "name": "f", "extra": 1}]}, "tools[0].extra", "unknown_parameter"),
        ({"tools": [FUNCTION, FUNCTION]}, "tools[1].name", "invalid_value"),
        ({"tool_choice": "sometimes"}, "tool_choice", "invalid_value"),
        ({"tool_choice": {"type": "function", "name": "absent"}}, "tool_choice.name", "invalid_value"),
        ({"tool_choice": {"type": "web_search_preview"}}, "tool_choice.type", "unsupported_value"),
        ({"tool_choice": {}}, "tool_choice.type", "missing_required_parameter"),
        ({"tool_choice": {"type": 3}}, "tool_choice.type", "invalid_type"),
        (
            {
                "tools": [FUNCTION],
                "tool_choice": {"type": "allowed_tools", "tools": [{"type": "function", "name": "x"}]},
            },
            "tool_choice.tools[0].name",
            "invalid_value",
        ),
        (
            {"tools": [FUNCTION], "tool_choice": {"type": "allowed_tools", "mode": "none", "tools": [FUNCTION]}},
            "tool_choice.mode",
            "invalid_value",
        ),
        ({"tool_choice": {"type": "allowed_tools", "tools": []}}, "tool_choice.tools", "invalid_value"),
        ({"text": {"format": {"type": "xml"}}}, "text.format.type", "invalid_value"),
        ({"text": {"format": {}}}, "text.format.type", "missing_required_parameter"),
        (
            {"text": {"format": {"type": "json_schema", "name": "x"}}},
            "text.format.schema",
            "missing_required_parameter",
        ),
        ({"text": {"format": {"type": "text", "name": "x"}}}, "text.format.name", "unknown_parameter"),
        ({"text": {"style": "x"}}, "text.style", "unknown_parameter"),
        ({"text": "json"}, "text", "invalid_type"),
        ({"reasoning": {"effort": "minimal"}}, "reasoning.effort", "invalid_value"),
        ({"reasoning": {"budget": 3}}, "reasoning.budget", "unknown_parameter"),
        ({"max_output_tokens": 15}, "max_output_tokens", "invalid_value"),
        ({"max_tool_calls": 0}, "max_tool_calls", "invalid_value"),
        ({"temperature": 2.5}, "temperature", "invalid_value"),
        ({"temperature": True}, "temperature", "invalid_type"),
        ({"top_p": 1.5}, "top_p", "invalid_value"),
        ({"top_logprobs": 21}, "top_logprobs", "invalid_value"),
        ({"presence_penalty": -3}, "presence_penalty", "invalid_value"),
        ({"truncation": "sometimes"}, "truncation", "invalid_value"),
        ({"truncation": 5}, "truncation", "invalid_type"),
        ({"include": [None]}, "include[0]", "invalid_type"),
        ({"service_tier": "turbo"}, "service_tier", "invalid_value"),
        ({"safety_identifier": "x" * 65}, "safety_identifier", "invalid_value"),
        ({"prompt_cache_retention": "forever"}, "prompt_cache_retention", "invalid_value"),
        ({"prompt": {"version": "1"}}, "prompt.id", "missing_required_parameter"),
        ({"prompt": {"id": "p", "variables": {"x": 1}}}, "prompt.variables.x", "invalid_type"),
        ({"stream_options": {"include_usage": True}}, "stream_options.include_usage", "unknown_parameter"),
        (
            {"context_management": [{"compact_threshold": 5}]},
            "context_management[0].type",
            "missing_required_parameter",
        ),
        ({"conversation": 5}, "conversation", "invalid_type"),
        ({"conversation": {"id": "conv_1", "x": 1}}, "conversation.x", "unknown_parameter"),
        ({"conversation": {}}, "conversation", "invalid_type"),
        ({"conversation": "not an id!"}, "conversation", "invalid_value"),
        ({"metadata": {str(n): "v" for n in range(17)}}, "metadata", "invalid_value"),
        ({"previous_response_id": "not an id!"}, "previous_response_id", "invalid_value"),
        ({"input": ["just a string"]}, "input[0]", "invalid_type"),
        ({"instructions": 3}, "instructions", "invalid_type"),
        ({"stream": "yes"}, "stream", "invalid_type"),
        ({"background": True, "store": False}, "store", "invalid_value"),
    ],
)
def test_values_outside_the_schema_are_refused_naming_the_field(extra: dict[str, Any], param: str, code: str) -> None:
    store = responsestore.open("memory://")
    app = make_app(store)
    try:
        error = error_of(call(app, "POST", "/v1/responses", {"model": "echo", "input": "x", **extra}), 400)
    finally:
        app.close()
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    assert store.stats().records == 0


@pytest.mark.parametrize(
    "content",
    [
        b'{"model": "echo", "input": "x", "temperature": NaN}',
        b'{"model": "echo", "input": "\\ud83d"}',
        b"[]",
        b'{"model": "echo", "input": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
    ids=["nan", "lone-surrogate", "not-an-object", "too-deep"],
)
def test_bodies_json_cannot_echo_are_refused(app: ResponsesApp, content: bytes) -> None:
    assert error_of(call(app, "POST", "/v1/responses", content=content), 400)["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("prompt", {"id": "p", "variables": {"v": "NESTED"}}, "prompt.variables.v"),
        ("tools", [{"type": "function", "name": "f", "parameters": "NESTED"}], "tools[0].parameters"),
        ("text", {"format": {"type": "json_schema", "name": "f", "schema": "NESTED"}}, "text.format.schema"),
    ],
)
def test_bodies_nested_past_64_levels_are_refused_naming_the_path(
    field: str, value: dict[str, Any] | list[Any], path: str
) -> None:
    store = responsestore.open("memory://")
    app = make_app(store, max_body_bytes=10_000)

    def body(levels: int) -> dict[str, Any]:
        nested: dict[str, Any] = {}
        for _ in range(levels - 1):
            nested = {"a": nested}
        text = json.dumps({"model": "echo", "input": "x", field: value}).replace('"NESTED"', json.dumps(nested))
        return dict(json.loads(text))

    above = path.count(".") + path.count("[") + 1  # the levels around the nested value: the body's and its parents'
    try:
        for store_it in (True, False):
            deepest = call(app, "POST", "/v1/responses", {**body(MAX_DEPTH - above), "store": store_it})
            assert deepest.status_code == 200, deepest.text
            error = error_of(
                call(app, "POST", "/v1/responses", {**body(MAX_DEPTH - above + 1), "store": store_it}), 400
            )
            expected = path + ".a" * (MAX_DEPTH - above)  # the path to the 65th level
            assert (error["code"], error["param"], error["message"]) == (
                "invalid_json",
                expected,
                "The request body is nested more than 64 levels deep.",
            )
        assert store.stats().records == 1
    finally:
        app.close()


def test_a_malformed_input_item_is_refused_naming_input_whether_stored_or_not(app: ResponsesApp) -> None:
    for store_it in (True, False):
        body = {"model": "echo", "input": [{"content": "no role"}], "store": store_it}
        assert error_of(call(app, "POST", "/v1/responses", body), 400)["param"] == "input"


def test_a_missing_model_is_refused_when_every_name_is_served(app: ResponsesApp) -> None:
    error = error_of(call(app, "POST", "/v1/responses", {"input": "x", "model": None}), 400)
    assert (error["param"], error["code"]) == ("model", "missing_required_parameter")


# --------------------------------------------------------------------------------------------- fuzzing


def _valid_values() -> dict[str, st.SearchStrategy[Any]]:
    function_names = st.sampled_from(["f", "g_2", "lookup-x"])
    tools = st.lists(
        st.builds(
            lambda name, strict: {"type": "function", "name": name, "strict": strict},
            function_names,
            st.none() | st.booleans(),
        ),
        max_size=3,
        unique_by=lambda tool: tool["name"],
    )
    return {
        "input": strategies.inputs(),
        "instructions": st.text(max_size=20),
        "store": st.booleans(),
        "background": st.booleans(),
        "stream": st.booleans(),
        "metadata": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
        "tools": tools,
        "tool_choice": st.sampled_from(["none", "auto", "required"]),
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1),
        "presence_penalty": st.floats(-2, 2),
        "frequency_penalty": st.floats(-2, 2),
        "top_logprobs": st.integers(0, 20),
        "max_output_tokens": st.integers(16, 10**6),
        "max_tool_calls": st.integers(1, 100),
        "parallel_tool_calls": st.booleans(),
        "truncation": st.sampled_from(["auto", "disabled"]),
        "text": st.fixed_dictionaries(
            {},
            optional={
                "format": st.none() | st.sampled_from([{"type": "text"}, {"type": "json_object"}]),
                "verbosity": st.none() | st.sampled_from(["low", "medium", "high"]),
            },
        ),
        "reasoning": st.fixed_dictionaries(
            {},
            optional={
                "effort": st.none() | st.sampled_from(["none", "low", "medium", "high", "xhigh"]),
                "summary": st.none() | st.sampled_from(["auto", "concise", "detailed"]),
            },
        ),
        "service_tier": st.sampled_from(["auto", "default", "flex", "priority"]),
        "safety_identifier": st.text(max_size=64),
        "prompt_cache_key": st.text(max_size=64),
        "prompt_cache_retention": st.sampled_from(["in_memory", "24h"]),
        "include": st.lists(st.sampled_from(["reasoning.encrypted_content", "message.output_text.logprobs"])),
        "stream_options": st.fixed_dictionaries({}, optional={"include_obfuscation": st.none() | st.booleans()}),
        "user": st.text(max_size=10),
    }


@st.composite
def create_bodies(draw: st.DrawFn, junk: bool) -> tuple[dict[str, Any], bool]:
    """A create body: each optional field absent, null or valid (or, with ``junk``, sometimes any JSON value).

    Returns the body and whether every field in it is null or valid.
    """
    body: dict[str, Any] = {"model": draw(st.sampled_from(["echo", "m"]))}
    clean = True
    for name, valid in _valid_values().items():
        kind = draw(st.sampled_from(["absent", "null", "valid", "junk"] if junk else ["absent", "null", "valid"]))
        if kind == "null":
            body[name] = None
        elif kind == "valid":
            body[name] = draw(valid)
        elif kind == "junk":
            body[name] = draw(strategies.json_values(max_leaves=4))
            clean = False
    if clean and body.get("background") and body.get("store") is False:
        body["store"] = None  # a background response must be stored: not a null-handling question
    return body, clean


def _check_reply(reply: Called, body: dict[str, Any], clean: bool) -> None:
    assert reply.status_code < 500, reply.text
    if clean:
        assert reply.status_code == 200, (body, reply.text)
    if reply.status_code != 200:
        error = error_of(reply, 400)
        assert error["param"] is not None
        field = error["param"].split(".")[0].split("[")[0]
        assert field in body or field == "store", (error, body)
        return
    if reply.headers["content-type"] == "text/event-stream":
        events = _events(reply)
        assert events[0]["type"] in ("response.created", "response.queued")
        return
    response = reply.json()
    check_response(response)
    for name in ("tool_choice", "parallel_tool_calls", "truncation", "text", "temperature", "top_p", "store"):
        assert response[name] is not None, name


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_create_bodies_never_fail_the_server_and_every_200_validates(data: st.DataObject) -> None:
    app = make_app(responsestore.open("memory://"), stream_timeout=30)
    try:
        for junk in (False, True):
            body, clean = data.draw(create_bodies(junk))
            _check_reply(call(app, "POST", "/v1/responses", body), body, clean)
    finally:
        app.close()


# --------------------------------------------------------------------------------------------- routes


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/responses/some_new_endpoint"),
        ("POST", "/v1/responses/resp_123"),
        ("GET", "/v1/responses/resp_123/unknown"),
        ("POST", "/v1/responses/resp_123/unknown"),
        ("GET", "/v1/nowhere"),
    ],
)
def test_unknown_paths_are_404(app: ResponsesApp, method: str, path: str) -> None:
    assert error_of(call(app, method, path), 404)["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/responses/resp_123", "GET, HEAD, DELETE, OPTIONS"),
        ("GET", "/v1/responses", "POST, OPTIONS"),
        ("HEAD", "/v1/responses", "POST, OPTIONS"),
        ("GET", "/v1/responses/compact", "POST, OPTIONS"),
        ("GET", "/v1/responses/input_tokens", "POST, OPTIONS"),
        ("GET", "/v1/responses/resp_123/cancel", "POST, OPTIONS"),
        ("POST", "/v1/models", "GET, HEAD, OPTIONS"),
    ],
)
def test_a_wrong_method_on_a_known_path_is_405(app: ResponsesApp, method: str, path: str, allow: str) -> None:
    reply = call(app, method, path)
    assert reply.headers["allow"] == allow
    if method == "HEAD":  # the headers of the refusal, without its body
        assert (reply.status_code, reply.text, reply.headers["content-type"]) == (405, "", "application/json")
        return
    assert error_of(reply, 405)["code"] == "method_not_allowed"


# --------------------------------------------------------------------------------------------- request ids


def test_every_reply_carries_a_request_id(app: ResponsesApp) -> None:
    created = call(app, "POST", "/v1/responses", {"model": "echo", "input": "x"})
    streamed = call(app, "POST", "/v1/responses", {"model": "echo", "input": "x", "stream": True})
    refused = call(app, "POST", "/v1/responses", {"model": "echo", "input": 3})
    missing = call(app, "GET", "/v1/responses/resp_nope")
    ids = [reply.headers["x-request-id"] for reply in (created, streamed, refused, missing)]
    assert all(rid.startswith("req_") and len(rid) == 36 for rid in ids)
    assert len(set(ids)) == 4


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("trace-abc.123:4", True), ("", False), ("has space", False), ("x" * 129, False), ("é", False)],
)
def test_a_sane_client_request_id_is_kept(app: ResponsesApp, sent: str, kept: bool) -> None:
    reply = call(app, "GET", "/v1/responses/resp_none", headers={"X-Request-Id": sent, "X-Client-Request-Id": sent})
    assert (reply.headers["x-request-id"] == sent) is kept
    assert (reply.headers.get("x-client-request-id") == sent) is kept
    if not kept:
        assert "x-client-request-id" not in reply.headers


def test_the_openai_client_sees_the_request_id(serve: Any) -> None:
    live: Live = serve()
    client = live.client()
    raw = client.responses.with_raw_response.create(model="echo", input="x")
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.parse()._request_id == raw.headers["x-request-id"]
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.retrieve("resp_missing")
    assert missing.value.request_id is not None
    assert missing.value.request_id.startswith("req_")


# --------------------------------------------------------------------------------------------- CORS

ORIGIN = "https://app.example.com"


def test_cors_is_off_by_default(app: ResponsesApp) -> None:
    reply = call(app, "POST", "/v1/responses", {"model": "echo", "input": "x"}, headers={"Origin": ORIGIN})
    assert reply.status_code == 200
    assert not any(name.startswith("access-control") for name in reply.headers)
    preflight = call(
        app, "OPTIONS", "/v1/responses", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert (preflight.status_code, preflight.headers["allow"], preflight.text) == (200, "POST, OPTIONS", "")
    assert not any(name.startswith("access-control") for name in preflight.headers)


def test_cors_answers_listed_origins_and_their_preflights() -> None:
    app = make_app(responsestore.open("memory://"), cors_origins=[ORIGIN, "http://localhost:5173"])
    try:
        reply = call(app, "POST", "/v1/responses", {"model": "echo", "input": "x"}, headers={"Origin": ORIGIN})
        assert reply.headers["access-control-allow-origin"] == ORIGIN
        assert reply.headers["vary"] == "Origin"
        assert "x-request-id" in reply.headers["access-control-expose-headers"]
        other = call(app, "POST", "/v1/responses", {"model": "echo", "input": "x"}, headers={"Origin": "https://e.x"})
        assert other.status_code == 200
        assert "access-control-allow-origin" not in other.headers
        assert other.headers["vary"] == "Origin"
        error = call(app, "GET", "/v1/responses/resp_x", headers={"Origin": ORIGIN})
        assert error_of(error, 404)
        assert error.headers["access-control-allow-origin"] == ORIGIN  # the page can read the error

        asked = {
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-stainless-os, bad header",
        }
        preflight = call(app, "OPTIONS", "/v1/responses", headers=asked)
        assert (preflight.status_code, preflight.headers["content-length"]) == (200, "0")
        assert preflight.text == ""
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        assert preflight.headers["access-control-allow-methods"] == "POST"
        assert preflight.headers["access-control-allow-headers"] == "authorization, content-type, x-stainless-os"
        assert preflight.headers["access-control-max-age"] == "600"
        assert "x-request-id" in preflight.headers
        for_item = call(app, "OPTIONS", "/v1/responses/resp_1", headers=asked)
        assert for_item.headers["access-control-allow-methods"] == "GET, DELETE"
        refused = call(app, "OPTIONS", "/v1/responses", headers={**asked, "Origin": "https://evil.example"})
        assert error_of(refused, 403)["code"] == "cors_origin_not_allowed"
        assert "access-control-allow-origin" not in refused.headers
        assert error_of(call(app, "OPTIONS", "/v1/elsewhere", headers=asked), 404)
        plain = call(app, "OPTIONS", "/v1/responses/resp_1")
        assert (plain.status_code, plain.headers["allow"]) == (200, "GET, HEAD, DELETE, OPTIONS")
    finally:
        app.close()


def test_cors_for_any_origin() -> None:
    app = make_app(responsestore.open("memory://"), cors_origins=["*"])
    try:
        reply = call(app, "GET", "/v1/responses/resp_x", headers={"Origin": "https://anywhere.example"})
        assert reply.headers["access-control-allow-origin"] == "*"
        assert "vary" not in reply.headers
        preflight = call(
            app, "OPTIONS", "/v1/responses/resp_x", headers={"Origin": "null", "Access-Control-Request-Method": "GET"}
        )
        assert preflight.status_code == 200
    finally:
        app.close()


@pytest.mark.parametrize("origins", ["https://a.example", ["https://a.example/"], ["a.example"], [3], ["HTTPS://A"]])
def test_make_app_refuses_malformed_cors_origins(origins: Any) -> None:
    with pytest.raises(responsestore.InvalidArgument):
        make_app(responsestore.open("memory://"), cors_origins=origins)


def test_a_browser_preflight_over_real_http(serve: Any) -> None:
    live: Live = serve(cors_origins=[ORIGIN])
    reply = live.request(
        "OPTIONS",
        "/responses",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST", "Authorization": ""},
    )
    assert reply.status_code == 200
    assert reply.headers["access-control-allow-origin"] == ORIGIN
    created = (
        live.client()
        .with_options(default_headers={"Origin": ORIGIN})
        .responses.with_raw_response.create(model="echo", input="x")
    )
    assert created.headers["access-control-allow-origin"] == ORIGIN


def test_an_unexpected_failure_is_a_500_in_openais_shape_logged_with_the_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(key: str | None) -> str | None:
        raise RuntimeError("a bug in authenticate")

    app = make_app(responsestore.open("memory://"), authenticate=broken)
    try:
        reply = call(app, "GET", "/v1/responses/resp_x", headers={"X-Request-Id": "trace-1"})
    finally:
        app.close()
    error = error_of(reply, 500)
    assert (error["type"], error["code"]) == ("server_error", "server_error")
    assert "bug" not in error["message"]
    assert reply.headers["x-request-id"] == "trace-1"
    assert any("trace-1" in record.getMessage() and record.exc_info for record in caplog.records)
