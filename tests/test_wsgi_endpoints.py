"""The models, compaction and input-token routes, driven by the official ``openai`` client over real HTTP (and in
process for the refusals); every body is validated by ``tests/wire_checks.py``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import openai
import pytest

import responsestore
from responsestore.wsgi import Usage, echo, echo_compact, estimate_tokens, make_app
from tests import node_client
from tests.live_app import Live, call, error_of
from tests.models import shout
from tests.wire_checks import (
    check_compaction,
    check_input_tokens,
    check_item_page,
    check_model,
    check_model_list,
    check_response,
)


@pytest.fixture
def serve(serve_on_both: Callable[..., Live]) -> Callable[..., Live]:
    """Both transports."""
    return serve_on_both


# --------------------------------------------------------------------------------------------- models


def test_every_model_name_is_served_and_none_listed_without_models(serve: Any) -> None:
    live: Live = serve()
    client = live.client()
    assert client.models.list().data == []
    check_model_list(live.json("GET", "/models"))
    model = client.models.retrieve("anything-at-all")
    assert (model.id, model.object, model.owned_by) == ("anything-at-all", "model", "responsestore")
    check_model(live.json("GET", "/models/org/model-with-a-slash"))
    assert client.responses.create(model="anything-at-all", input="hi").output_text == "hi"


def test_named_models_are_listed_served_by_their_generate_and_others_are_404(serve: Any) -> None:
    store = responsestore.open("memory://")
    live: Live = serve(store, models={"alpha": echo, "beta": shout, "org/gamma": echo})
    client = live.client()
    assert [model.id for model in client.models.list()] == ["alpha", "beta", "org/gamma"]
    listed = check_model_list(live.json("GET", "/models"))
    assert len({model.created for model in listed}) == 1
    assert client.models.retrieve("beta").id == "beta"
    check_model(live.json("GET", "/models/org/gamma"))
    assert client.responses.create(model="alpha", input="quiet words").output_text == "quiet words"
    assert client.responses.create(model="beta", input="loud words").output_text == "LOUD WORDS"

    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("delta")
    assert missing.value.code == "model_not_found"
    before = store.stats().records
    with pytest.raises(openai.NotFoundError) as unknown:
        client.responses.create(model="delta", input="x")
    assert (unknown.value.code, unknown.value.param) == ("model_not_found", "model")
    error = error_of(live.request("POST", "/responses", json={"model": "delta", "input": "x", "stream": True}), 404)
    assert (error["type"], error["param"]) == ("invalid_request_error", "model")
    assert store.stats().records == before

    default = check_response(live.json("POST", "/responses", json={"input": "no model named"}))
    assert default.model == "alpha"
    assert check_response(live.json("POST", "/responses", json={"input": "x", "model": None})).model == "alpha"


def test_make_app_refuses_bad_models() -> None:
    store = responsestore.open("memory://")
    for kwargs in (
        {"models": {}},
        {"models": {"": echo}},
        {"models": {"a": 3}},
        {"models": ["a"]},
        {"models": {"a": echo}, "generate": echo},
        {"compact": 3},
        {"count_tokens": None},
    ):
        with pytest.raises(responsestore.InvalidArgument):
            make_app(store, **kwargs)


# --------------------------------------------------------------------------------------------- compaction

LONG = [
    {"type": "message", "id": "msg_u1", "role": "user", "content": "Plan a trip to Rome"},
    {"type": "message", "id": "msg_a1", "role": "assistant", "content": "Three days: forum, museums, food."},
    {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "weather", "arguments": "{}"},
    {"type": "function_call_output", "id": "fco_1", "call_id": "call_1", "output": "sunny"},
    {"type": "message", "id": "msg_u2", "role": "user", "content": "Make it cheaper"},
]


def test_compaction_keeps_user_messages_and_folds_the_rest_and_feeds_a_new_response(serve: Any) -> None:
    live: Live = serve()
    client = live.client()
    compacted = client.responses.compact(model="echo", input=LONG)  # type: ignore[arg-type]
    assert compacted.object == "response.compaction"
    raw = live.json("POST", "/responses/compact", json={"model": "echo", "input": LONG})
    check_compaction(raw)
    output = raw["output"]
    assert [item["type"] for item in output] == ["message", "message", "compaction"]
    assert [item["id"] for item in output[:2]] == ["msg_u1", "msg_u2"]
    assert output[2]["id"].startswith("cmp_")
    folded = json.loads(base64.b64decode(output[2]["encrypted_content"]))
    assert [item["id"] for item in folded] == ["msg_a1", "fc_1", "fco_1"]
    assert raw["usage"]["input_tokens"] == 5 + 5 + 3  # words of every message
    assert raw["usage"]["output_tokens"] == 5 + 3
    assert (
        raw["output"][2] == live.json("POST", "/responses/compact", json={"model": "echo", "input": LONG})["output"][2]
    )

    # The compacted output is the next request's input, as is, through the openai client.
    follow = client.responses.create(model="echo", input=[*output, {"role": "user", "content": "and now?"}])
    assert follow.output_text == "and now?"
    page = check_item_page(live.json("GET", f"/responses/{follow.id}/input_items", params={"order": "asc"}))
    assert [item.type for item in page.data] == ["message", "message", "compaction", "message"]


def test_compaction_of_a_chain(serve: Any) -> None:
    live: Live = serve()
    client = live.client()
    first = client.responses.create(model="echo", input="first question")
    raw = live.json(
        "POST", "/responses/compact", json={"model": "echo", "input": "second", "previous_response_id": first.id}
    )
    check_compaction(raw)
    kept = [item["content"][0]["text"] for item in raw["output"] if item["type"] == "message"]
    assert kept == ["first question", "second"]
    folded = json.loads(base64.b64decode(raw["output"][-1]["encrypted_content"]))
    assert [item["role"] for item in folded] == ["assistant"]
    assert folded[0]["content"][0]["text"] == "first question"
    with pytest.raises(openai.BadRequestError) as missing:
        client.responses.compact(model="echo", previous_response_id="resp_nope")
    assert missing.value.code == "previous_response_not_found"


def test_a_compact_callable_of_your_own(serve: Any) -> None:
    seen: list[Mapping[str, Any]] = []

    def summarize(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> list[Any]:
        seen.append(request)
        return [{"type": "compaction", "encrypted_content": f"{len(conversation)} items"}, Usage(10, 2)]

    live: Live = serve(compact=summarize)
    raw = live.json("POST", "/responses/compact", json={"model": "m", "input": "x", "instructions": "keep it short"})
    check_compaction(raw)
    assert raw["output"][0]["encrypted_content"] == "1 items"
    assert isinstance(raw["output"][0]["id"], str)
    assert (raw["usage"]["input_tokens"], raw["usage"]["output_tokens"], raw["usage"]["total_tokens"]) == (10, 2, 12)
    assert seen == [{"model": "m", "input": "x", "instructions": "keep it short"}]


@pytest.mark.parametrize(
    "compact",
    [
        lambda conversation, request: 1 / 0,
        lambda conversation, request: [3],
        lambda conversation, request: [Usage(1, 1), Usage(1, 1)],
        lambda conversation, request: [{"type": "compaction", "encrypted_content": float("nan")}],
    ],
    ids=["raises", "not-an-item", "two-usages", "not-json"],
)
def test_a_failing_compact_callable_is_a_500_in_openais_shape(compact: Any) -> None:
    app = make_app(responsestore.open("memory://"), compact=compact)
    try:
        error = error_of(call(app, "POST", "/v1/responses/compact", {"model": "m", "input": "x"}), 500)
    finally:
        app.close()
    assert (error["type"], error["code"]) == ("server_error", "server_error")


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        ({"input": "x"}, 400, "model", "missing_required_parameter"),
        ({"model": "m", "input": "x", "tools": []}, 400, "tools", "unknown_parameter"),
        ({"model": "m", "input": 3}, 400, "input", "invalid_type"),
        ({"model": "m", "input": [{"content": "no role"}]}, 400, "input", "invalid_value"),
        ({"model": "m", "input": "x", "service_tier": "turbo"}, 400, "service_tier", "invalid_value"),
    ],
)
def test_compaction_refusals(body: dict[str, Any], status: int, param: str, code: str) -> None:
    app = make_app(responsestore.open("memory://"))
    try:
        error = error_of(call(app, "POST", "/v1/responses/compact", body), status)
    finally:
        app.close()
    assert (error["param"], error["code"]) == (param, code)


def test_compaction_with_named_models_refuses_unknown_ones() -> None:
    app = make_app(responsestore.open("memory://"), models={"alpha": echo})
    try:
        error = error_of(call(app, "POST", "/v1/responses/compact", {"model": "beta", "input": "x"}), 404)
        assert error["code"] == "model_not_found"
        check_compaction(call(app, "POST", "/v1/responses/compact", {"input": "x"}).json())
    finally:
        app.close()


def test_echo_compact_is_deterministic_for_the_same_items() -> None:
    one = list(echo_compact(LONG, {}))
    assert one == list(echo_compact(LONG, {}))
    assert one[-1] == Usage(input_tokens=13, output_tokens=8)


# --------------------------------------------------------------------------------------------- input tokens


def test_input_tokens_with_the_openai_client_match_echos_usage(serve: Any) -> None:
    live: Live = serve()
    client = live.client()
    counted = client.responses.input_tokens.count(model="echo", input="one two three")
    assert (counted.object, counted.input_tokens) == ("response.input_tokens", 3)
    check_input_tokens(live.json("POST", "/responses/input_tokens", json={"input": "one two three"}))
    first = client.responses.create(model="echo", input="one two three")
    assert first.usage is not None
    assert first.usage.input_tokens == 3
    chained = client.responses.input_tokens.count(input="four five", previous_response_id=first.id)
    second = client.responses.create(model="echo", input="four five", previous_response_id=first.id)
    assert second.usage is not None
    assert chained.input_tokens == second.usage.input_tokens == 3 + 3 + 2
    instructed = client.responses.input_tokens.count(input="one two three", instructions="answer in French")
    assert instructed.input_tokens == 6
    items = client.responses.input_tokens.count(
        input=LONG, tools=[{"type": "function", "name": "weather", "parameters": None, "strict": None}]
    )  # type: ignore[arg-type]
    assert items.input_tokens == 5 + 5 + 1 + 1 + 3  # message words, arguments, output


def test_a_token_counter_of_your_own(serve: Any) -> None:
    def characters(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> int:
        return sum(len(json.dumps(item)) for item in conversation) + len(request.get("instructions", ""))

    live: Live = serve(count_tokens=characters)
    counted = live.client().responses.input_tokens.count(input="abc", instructions="xy")
    assert counted.input_tokens > 5


@pytest.mark.parametrize(
    ("count_tokens", "status"),
    [(lambda c, r: -1, 500), (lambda c, r: True, 500), (lambda c, r: 1 / 0, 500), (lambda c, r: 7, 200)],
    ids=["negative", "bool", "raises", "fine"],
)
def test_a_failing_token_counter_is_a_500(count_tokens: Any, status: int) -> None:
    app = make_app(responsestore.open("memory://"), count_tokens=count_tokens)
    try:
        reply = call(app, "POST", "/v1/responses/input_tokens", {"input": "x"})
        if status == 500:
            assert error_of(reply, 500)["code"] == "server_error"
        else:
            assert check_input_tokens(reply.json()).input_tokens == 7
    finally:
        app.close()


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        ({"conversation": "conv_1"}, 404, "conversation", "not_found"),
        ({"conversation": "conv_1", "previous_response_id": "resp_1"}, 400, "conversation", "invalid_value"),
        ({"tool_choice": {"type": "function", "name": "f"}}, 400, "tool_choice.name", "invalid_value"),
        ({"personality": "x" * 65}, 400, "personality", "invalid_value"),
        ({"stream": True}, 400, "stream", "unknown_parameter"),
        ({"model": "beta"}, 404, "model", "model_not_found"),
        ({"previous_response_id": "resp_none"}, 400, "previous_response_id", "previous_response_not_found"),
    ],
)
def test_input_token_refusals(body: dict[str, Any], status: int, param: str, code: str) -> None:
    app = make_app(responsestore.open("memory://"), models={"alpha": echo})
    try:
        error = error_of(call(app, "POST", "/v1/responses/input_tokens", {"input": "x", **body}), status)
    finally:
        app.close()
    assert (error["param"], error["code"]) == (param, code)


def test_estimate_tokens_counts_words() -> None:
    conversation = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a b  c"}]}]
    assert estimate_tokens(conversation, {}) == 3
    assert estimate_tokens(conversation, {"instructions": "d e"}) == 5
    assert estimate_tokens([], {}) == 0
    assert estimate_tokens([{"type": "compaction", "encrypted_content": "x y z"}], {}) == 0  # opaque: not counted


# --------------------------------------------------------------------------------------------- the Node client


def test_the_node_openai_client_drives_every_response_route(serve: Any) -> None:
    live: Live = serve(models={"echo": echo, "shout": shout})
    seen = node_client.run("responses.mjs", live.url)
    assert seen["models"] == ["echo", "shout"]
    check_model(seen["model"])
    assert seen["first"] == {"status": "completed", "text": "hello from node", "metadata": {"k": "v"}}
    assert seen["retrieved"] == "and again"
    assert seen["replayed"][0] == "response.created"
    assert seen["replayed"][-1] == "response.completed"
    assert seen["inputItems"] == ["message"]
    assert seen["compacted"]["object"] == "response.compaction"
    assert "compaction" in seen["compacted"]["kinds"]
    assert seen["afterCompaction"] == "completed"
    check_input_tokens(seen["tokens"])
    assert seen["tokens"]["input_tokens"] == 3
    assert seen["background"] == "queued"
    assert seen["gone"] == 404
    assert seen["unknownModel"] == [404, "model_not_found", "model"]
