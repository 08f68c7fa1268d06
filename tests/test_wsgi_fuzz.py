"""Fuzzing the app: hostile and random requests to every route, in process, as a WSGI server would hand them over.

Every request is built by the strategies below: a route of the app (responses, conversations, models, compact,
input_tokens) or a random path, any method, hostile ids and query values, any headers (``Content-Type``,
``Content-Length`` that lies, ``Transfer-Encoding``, keys, request ids) and a body that is valid, nearly valid
(each field valid, ``null``, junk or hostile), or not JSON at all (bytes, UTF-16, lone surrogates, deep nesting,
huge numbers). Whatever comes in:

- no reply is a ``5xx``;
- every ``200`` validates against the ``openai`` SDK's types and the Open Responses schemas
  (``tests/wire_checks.py``), streams event by event;
- every refusal is OpenAI's error shape (``error.type``, ``code``, ``param``, ``message``) with a bounded message
  and an ``x-request-id``; ``HEAD`` answers have no body.

The Open Responses package (``openresponses-types``) ships pydantic models, not the OpenAPI document, so the
requests come from these strategies rather than from schemathesis.
"""

from __future__ import annotations

import io
import json
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import responsestore
from responsestore.server import _routes
from responsestore.server._errors import MAX_MESSAGE, MAX_PARAM, REASONS
from responsestore.server._requests import COMPACT_FIELDS, CREATE_FIELDS, INPUT_TOKENS_FIELDS
from responsestore.testing import strategies
from responsestore.wsgi import ResponsesApp, echo, make_app
from tests.live_app import Called
from tests.wire_checks import (
    check_compaction,
    check_conversation,
    check_conversation_item,
    check_conversation_items,
    check_event,
    check_input_tokens,
    check_item_page,
    check_model,
    check_model_list,
    check_response,
)

# --------------------------------------------------------------------------------------------- the app


class World:
    """The app under fuzz, and ids that exist in its store (so requests reach past the "not found" checks).

    ``DELETE`` requests get the ``doomed`` ids: the others stay, for every example to reach.
    """

    def __init__(self, app: ResponsesApp) -> None:
        self.app = app
        self.response_ids: list[str] = []
        self.item_ids: list[str] = []
        self.conversation_ids: list[str] = []
        self.doomed: list[str] = []


def _post(app: ResponsesApp, path: str, body: Any) -> Any:
    reply = _send(app, _Request("POST", path, "", {"CONTENT_TYPE": "application/json"}, json.dumps(body).encode()))
    assert reply.status_code == 200, reply.text
    return reply.json()


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    app = make_app(responsestore.open("memory://"), models={"echo": echo, "gpt-4o": echo}, stream_timeout=10)
    world = World(app)
    first = _post(app, "/v1/responses", {"input": "hello there"})
    second = _post(app, "/v1/responses", {"input": "and again", "previous_response_id": first["id"]})
    world.response_ids += [first["id"], second["id"]]
    world.item_ids += [item["id"] for item in first["output"] + second["output"]]
    conversation = _post(app, "/v1/conversations", {"items": [{"role": "user", "content": "hi"}]})
    world.conversation_ids.append(conversation["id"])
    items = _post(app, f"/v1/conversations/{conversation['id']}/items", {"items": [{"role": "user", "content": "x"}]})
    world.item_ids += [item["id"] for item in items["data"]]
    doomed = _post(app, "/v1/conversations", {"items": [{"role": "user", "content": "bye"}]})
    added = _post(app, f"/v1/conversations/{doomed['id']}/items", {"items": [{"role": "user", "content": "y"}]})
    world.doomed += [_post(app, "/v1/responses", {"input": "bye"})["id"], doomed["id"], added["data"][0]["id"]]
    yield world
    app.close()


# --------------------------------------------------------------------------------------------- requests


class _Request:
    def __init__(self, method: str, path: str, query: str, environ: dict[str, Any], body: bytes) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.environ = environ
        self.body = body

    def __repr__(self) -> str:
        shown = self.body if len(self.body) < 300 else self.body[:300] + b"..."
        return f"<{self.method} {self.path!r}?{self.query!r} {self.environ!r} {shown!r}>"


def _send(app: ResponsesApp, request: _Request) -> Called:
    """One request through the app as a WSGI server makes it (the body in ``wsgi.input``)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "PATH_INFO": request.path,
        "QUERY_STRING": request.query,
        "wsgi.input": io.BytesIO(request.body),
        "CONTENT_LENGTH": str(len(request.body)),
    }
    setup_testing_defaults(environ)
    environ.update(request.environ)
    environ = {key: value for key, value in environ.items() if value is not None}
    started: list[tuple[str, list[tuple[str, str]]]] = []
    chunks = app(environ, lambda status, headers: started.append((status, headers)))
    try:
        raw = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return Called(started[0][0], started[0][1], raw)


#: Every route of the app: its method and path, ``{r}`` a response id, ``{c}`` a conversation id, ``{i}`` an item id.
ROUTES = [
    *[("POST", "/v1/responses")] * 3,  # the route with the most to check
    ("GET", "/v1/responses/{r}"),
    ("DELETE", "/v1/responses/{r}"),
    ("POST", "/v1/responses/{r}/cancel"),
    ("GET", "/v1/responses/{r}/input_items"),
    ("POST", "/v1/responses/compact"),
    ("POST", "/v1/responses/input_tokens"),
    ("POST", "/v1/conversations"),
    ("GET", "/v1/conversations/{c}"),
    ("POST", "/v1/conversations/{c}"),
    ("DELETE", "/v1/conversations/{c}"),
    ("GET", "/v1/conversations/{c}/items"),
    ("POST", "/v1/conversations/{c}/items"),
    ("GET", "/v1/conversations/{c}/items/{i}"),
    ("DELETE", "/v1/conversations/{c}/items/{i}"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{m}"),
]
METHODS = ["GET", "POST", "DELETE", "HEAD", "OPTIONS", "PUT", "PATCH", "TRACE", "get", "CONNECT"]

SURROGATES = ["\ud83d", "a\udc00b", "\udfff" * 3]
HOSTILE_TEXT = st.one_of(
    strategies.weird_strings(),
    st.sampled_from([*SURROGATES, "1_0", "\u0661\u0660", "+5", " 5", "-1", "9" * 30, "0", "5.0", "true", "null"]),
    st.text(max_size=30),
)
# What a server puts in PATH_INFO and the query: text decoded from the request's bytes as latin-1.
LATIN1 = st.text(st.characters(max_codepoint=255), max_size=40)
QUERY_NAMES = ["limit", "after", "before", "order", "stream", "starting_after", "include", "include[]", "x"]


@st.composite
def ids(draw: st.DrawFn, existing: list[str], prefix: str) -> str:
    kind = draw(st.sampled_from(["existing", "missing", "hostile"]))
    if kind == "existing" and existing:
        return draw(st.sampled_from(existing))
    if kind == "hostile":
        # As a server hands a path over: its percent-decoded bytes as latin-1 text.
        return draw(HOSTILE_TEXT).encode("utf-8", errors="surrogatepass").decode("latin-1")
    return f"{prefix}{draw(st.text('0123456789abcdef', min_size=1, max_size=32))}"


SANE_VALUES = ["1", "20", "100", "101", "asc", "desc", "true", "false", "0", "3"]


def _query_value() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(SANE_VALUES), HOSTILE_TEXT)


@st.composite
def queries(draw: st.DrawFn, clean: bool) -> str:
    values = st.sampled_from(SANE_VALUES) if clean else _query_value()
    params = draw(st.lists(st.tuples(st.sampled_from(QUERY_NAMES), values), max_size=4))
    if clean or draw(st.booleans()):
        return urllib.parse.urlencode(params, errors="surrogatepass")
    return draw(LATIN1)  # raw, percent signs and all


# A field's value: valid-looking, null, or junk of any JSON kind (hostile strings, huge ints, nesting).
JUNK = st.one_of(
    strategies.json_values(max_leaves=6),
    HOSTILE_TEXT,
    st.sampled_from([2**63, -(2**63) - 1, 10**400, 1e308, -0.0, [], {}, [[[[]]]], {"": None}]),
)


def _valid(world: World) -> dict[str, st.SearchStrategy[Any]]:
    return {
        "model": st.sampled_from(["echo", "gpt-4o", "other"]),
        "input": strategies.inputs(),
        "instructions": st.text(max_size=20),
        "previous_response_id": st.sampled_from(world.response_ids) if world.response_ids else st.none(),
        "conversation": st.sampled_from(world.conversation_ids) if world.conversation_ids else st.none(),
        "store": st.booleans(),
        "background": st.booleans(),
        "stream": st.booleans(),
        "metadata": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
        "tools": st.lists(strategies.function_tools(), max_size=2, unique_by=lambda tool: tool["name"]),
        "tool_choice": st.sampled_from(["none", "auto", "required"]),
        "temperature": st.floats(0, 2),
        "max_output_tokens": st.integers(16, 10**6),
        "text": st.sampled_from([{"format": {"type": "text"}}, {"format": {"type": "json_object"}}]),
        "reasoning": st.sampled_from([{"effort": "low"}, {"summary": "auto"}]),
        "items": st.lists(strategies.input_items(), max_size=3),
        "truncation": st.sampled_from(["auto", "disabled"]),
    }


FIELDS = {
    "/v1/responses": list(CREATE_FIELDS),
    "/v1/responses/compact": list(COMPACT_FIELDS),
    "/v1/responses/input_tokens": list(INPUT_TOKENS_FIELDS),
    "/v1/conversations": ["items", "metadata"],
}


@st.composite
def json_bodies(draw: st.DrawFn, world: World, path: str, clean: bool) -> Any:
    """An object of the route's fields, each valid or ``null`` (``clean``), or also junk, hostile or unknown."""
    valid = _valid(world)
    names = FIELDS.get(path, ["items", "metadata"])
    if clean:
        names = [name for name in names if name in valid]
    body: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(names), max_size=6, unique=True)):
        kind = draw(st.sampled_from(["valid", "valid", "null"] if clean else ["valid", "null", "junk"]))
        if kind == "valid" and name in valid:
            body[name] = draw(valid[name])
        elif kind == "null":
            body[name] = None
        else:
            body[name] = draw(JUNK)
    if path == "/v1/responses" and "model" not in body and draw(st.booleans()):
        body["model"] = "echo"
    if clean:
        return body
    if draw(st.integers(0, 4)) == 0:
        body[draw(HOSTILE_TEXT)] = draw(JUNK)
    return body if draw(st.integers(0, 9)) else draw(JUNK)


def _nested(depth: int) -> bytes:
    return b'{"input": ' + b"[" * depth + b"]" * depth + b"}"


RAW_BODIES = st.one_of(
    st.binary(max_size=64),
    st.sampled_from(
        [
            b"",
            b"{",
            b"null",
            b"[]",
            b'{"model": NaN}',
            b'{"model": "echo", "temperature": 1e999}',
            b'\xef\xbb\xbf{"model": "echo", "input": "bom"}',
            '{"model": "echo"}'.encode("utf-16"),
            b'{"model": "echo", "input": "\xed\xa0\xbd"}',
            b'{"\\ud800": 1}',
            b'{"model": "echo", "model": 3}',
            b'{"model": "echo", "max_output_tokens": ' + b"9" * 5000 + b"}",
            _nested(64),
            _nested(65),
            _nested(5_000),
            b"[" * 100_000,
            b'{"a": "' + b"x" * 100_000,
        ]
    ),
)


def _encode(body: Any, draw: st.DrawFn) -> bytes:
    ascii_only = draw(st.booleans())
    text = json.dumps(body, ensure_ascii=ascii_only)
    return text.encode("utf-8", errors="surrogatepass")  # a lone surrogate becomes bytes UTF-8 forbids


CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json",
        "application/json; charset=utf-8",
        None,
        "",
        "text/plain",
        "application/json; charset=latin-1",
        "application/x-www-form-urlencoded",
        "application/json;;;",
        "\u00e9/\u00e9",
    ]
)


@st.composite
def requests(draw: st.DrawFn, world: World) -> _Request:
    """A request to a route of the app (or a random path), hostile anywhere."""
    if draw(st.integers(0, 9)) == 0:
        method, path = draw(st.sampled_from(METHODS)), "/" + draw(LATIN1)
    else:
        method, template = draw(st.sampled_from(ROUTES))
        if draw(st.integers(0, 4)) == 0:
            method = draw(st.sampled_from(METHODS))
        doomed = world.doomed if method == "DELETE" else []
        path = template.format(
            r=draw(ids(doomed or world.response_ids, "resp_")),
            c=draw(ids(doomed or world.conversation_ids, "conv_")),
            i=draw(ids(doomed or world.item_ids, "msg_")),
            m=draw(ids(["echo", "gpt-4o"], "")),
        )
    clean = draw(st.booleans())  # only the path and the body's values hostile, the rest as a client sends it
    kind = "json" if clean else draw(st.sampled_from(["json", "json", "raw", "none"]))
    if kind == "json":
        body = _encode(draw(json_bodies(world, path, clean)), draw)
    elif kind == "raw":
        body = draw(RAW_BODIES)
    else:
        body = b""
    if clean:
        environ: dict[str, Any] = {"CONTENT_TYPE": "application/json"}
    else:
        environ = draw(headers(len(body)))
    if method == "OPTIONS" and draw(st.booleans()):
        environ["HTTP_ACCESS_CONTROL_REQUEST_METHOD"] = "POST"
    return _Request(method, path, draw(queries(clean)), environ, body)


@st.composite
def headers(draw: st.DrawFn, length: int) -> dict[str, Any]:
    """The environ's headers for a body of ``length`` bytes: any content type, honest or lying framing, and any
    key, request ids and origin."""
    environ: dict[str, Any] = {"CONTENT_TYPE": draw(CONTENT_TYPES)}
    framing = draw(st.sampled_from(["plain", "plain", "plain", "lying", "chunked", "conflicting", "garbage"]))
    if framing == "lying":
        environ["CONTENT_LENGTH"] = str(max(0, length + draw(st.integers(-5, 5))))
    elif framing == "chunked":  # a server that streams a chunked body: no length, read to the end
        environ.update({"CONTENT_LENGTH": None, "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True})
    elif framing == "conflicting":
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    elif framing == "garbage":
        environ["CONTENT_LENGTH"] = draw(st.sampled_from(["-1", "1_0", "\u0661", "abc", " 3", "9" * 40]))
    for header in ("HTTP_AUTHORIZATION", "HTTP_X_REQUEST_ID", "HTTP_X_CLIENT_REQUEST_ID", "HTTP_ORIGIN"):
        if draw(st.integers(0, 3)) == 0:
            environ[header] = draw(LATIN1)
    return environ


# --------------------------------------------------------------------------------------------- checks


def _deleted(kind: str) -> Callable[[dict[str, Any]], None]:
    def check(data: dict[str, Any]) -> None:
        assert set(data) == {"id", "object", "deleted"}
        assert (data["object"], data["deleted"]) == (kind, True)
        assert isinstance(data["id"], str)

    return check


#: How to validate the ``200`` body of each operation of the route table.
CHECKS: dict[str, Callable[[dict[str, Any]], object]] = {
    "create": check_response,
    "retrieve": check_response,
    "cancel": check_response,
    "delete": _deleted("response"),
    "input_items": check_item_page,
    "compact": check_compaction,
    "input_tokens": check_input_tokens,
    "list_models": check_model_list,
    "retrieve_model": check_model,
    "create_conversation": check_conversation,
    "retrieve_conversation": check_conversation,
    "update_conversation": check_conversation,
    "delete_conversation": _deleted("conversation.deleted"),
    "list_conversation_items": check_conversation_items,
    "create_conversation_items": check_conversation_items,
    "retrieve_conversation_item": check_conversation_item,
    "delete_conversation_item": check_conversation,
}


def _events(text: str) -> list[dict[str, Any]]:
    events = []
    for block in text.split("\n\n"):
        if not block:
            continue
        kind, data = block.split("\n")
        event = json.loads(data.removeprefix("data: "))
        assert kind == f"event: {event['type']}"
        events.append(event)
    return events


def check_reply(request: _Request, reply: Called) -> None:
    """Every promise above, for one request and its reply."""
    assert reply.status_code < 500, (request, reply.text)
    assert reply.status_code in REASONS
    assert reply.headers["x-request-id"]
    if request.method == "HEAD":
        assert reply.text == ""
        return
    if reply.status_code != 200:
        body = reply.json()
        assert set(body) == {"error"}
        error = body["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert isinstance(error["message"], str)
        assert 0 < len(error["message"]) <= MAX_MESSAGE
        assert error["param"] is None or (isinstance(error["param"], str) and len(error["param"]) <= MAX_PARAM)
        assert isinstance(error["code"], str)
        expected_type = "authentication_error" if reply.status_code == 401 else "invalid_request_error"
        assert error["type"] == expected_type
        if reply.status_code == 405:
            assert reply.headers["allow"]
        return
    if request.method == "OPTIONS":
        assert (reply.text, reply.headers["content-length"]) == ("", "0")
        return
    operation, _ = _routes.match(request.method.upper(), request.path)
    if reply.headers["content-type"] == "text/event-stream":
        events = _events(reply.text)
        assert events
        for event in events:
            check_event(event)
        return
    CHECKS[operation](reply.json())


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_hostile_requests_to_every_route_never_fail_the_server(world: World, data: st.DataObject) -> None:
    request = data.draw(requests(world))
    check_reply(request, _send(world.app, request))
