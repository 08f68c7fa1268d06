"""HTTP at the edge: body limits before reading, framing, content types, ``HEAD``/``OPTIONS`` and keep-alive, strict
query integers, bounded refusals.

The malformed cases go over raw sockets to a real ``python -m responsestore serve`` (waitress); the app's own
handling of bodies other servers stream to it (``wsgi.input_terminated``) is tested in process.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
from collections.abc import Iterator
from typing import Any
from wsgiref.util import setup_testing_defaults

import openai
import pytest

import responsestore
from responsestore.server._errors import MAX_MESSAGE
from responsestore.wsgi import DEFAULT_MAX_BODY_BYTES, ResponsesApp, make_app
from tests.live_app import Called, call, error_of
from tests.test_wsgi_serve import TIMEOUT, Child
from tests.wire_checks import check_item_page, check_model_list, check_response

LIMIT = DEFAULT_MAX_BODY_BYTES


@pytest.fixture(scope="module")
def child() -> Iterator[Child]:
    server = Child()
    yield server
    server.stop()


class Reply:
    """One HTTP reply read off a raw socket."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status_code = response.status
        self.headers = response.headers
        self.content = response.read()
        self.text = self.content.decode()
        self.will_close = response.will_close

    def json(self) -> Any:
        return json.loads(self.text)


class Connection:
    """One TCP connection to the server: each request is written raw and its reply read before the next."""

    def __init__(self, child: Child) -> None:
        port = int(child.url.rsplit(":", 1)[1].split("/")[0])
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)

    def send(self, raw: bytes, method: str = "GET") -> Reply:
        self.sock.sendall(raw)
        return self.read(method)

    def read(self, method: str = "GET") -> Reply:
        response = http.client.HTTPResponse(self.sock, method=method)
        response.begin()
        return Reply(response)

    def request(self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Reply:
        lines = [f"{method} {target} HTTP/1.1", "Host: localhost", "Authorization: Bearer k"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if body or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body)}")
        return self.send(("\r\n".join(lines) + "\r\n\r\n").encode() + body, method)

    def closed_by_server(self) -> bool:
        """Whether the server has closed its end (reads the end of the stream, or a reset)."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def connection(child: Child) -> Iterator[Connection]:
    opened = Connection(child)
    yield opened
    opened.close()


def refusal(reply: Reply | Called, status: int) -> dict[str, Any]:
    """The ``error`` of a refusal in OpenAI's shape, with its request id and a bounded message."""
    error = error_of(reply, status)  # type: ignore[arg-type]
    assert len(error["message"]) <= MAX_MESSAGE
    assert reply.headers["content-type"] == "application/json"
    return error


JSON = {"Content-Type": "application/json"}
CREATE = json.dumps({"model": "echo", "input": "hello there"}).encode()
CHUNKED = (
    b"POST /v1/responses HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
)
MALFORMED = "The request is malformed: Content-Length is invalid."


# --------------------------------------------------------------------------------------------- keep-alive


def test_head_options_and_refusals_keep_one_connection_alive(connection: Connection) -> None:
    created = connection.request("POST", "/v1/responses", CREATE, JSON)
    response = check_response(created.json())
    path = f"/v1/responses/{response.id}"
    got = connection.request("GET", path)
    steps: list[tuple[str, str, bytes, dict[str, str], int]] = [
        ("HEAD", path, b"", {}, 200),
        ("HEAD", "/v1/models", b"", {}, 200),
        ("HEAD", "/v1/responses/resp_missing", b"", {}, 404),
        ("HEAD", "/v1/responses", b"", {}, 405),
        ("OPTIONS", "/v1/responses", b"", {}, 200),
        ("OPTIONS", path, b"", {}, 200),
        ("PUT", "/v1/models", b"", {}, 405),
        ("POST", "/v1/responses", CREATE, {"Content-Type": "text/plain"}, 415),
        ("POST", "/v1/responses", b'{"input": "x", "model": "echo"', JSON, 400),
        ("POST", "/v1/responses", b"\xff\xfe{}", JSON, 400),
        ("GET", path + "/input_items?limit=1_0", b"", {}, 400),
        ("GET", "/v1/nowhere", b"", {}, 404),
        ("POST", "/v1/responses", CREATE, {"Content-Type": "application/json; charset=utf-8"}, 200),
    ]
    for method, target, body, headers, status in steps:
        reply = connection.request(method, target, body, headers)
        assert (method, target, reply.status_code, reply.will_close) == (method, target, status, False), reply.text
        assert "x-request-id" in reply.headers
        if method == "HEAD":
            assert reply.content == b""
            get = connection.request("GET", target)
            assert get.status_code == status
            assert reply.headers["content-length"] == str(len(get.content))
            assert reply.headers["content-type"] == get.headers["content-type"]
        elif method == "OPTIONS":
            assert (reply.content, reply.headers["content-length"]) == (b"", "0")
            assert reply.headers["allow"] == (
                "POST, OPTIONS" if target == "/v1/responses" else "GET, HEAD, DELETE, OPTIONS"
            )
        elif status != 200:
            refusal(reply, status)
    assert got.status_code == 200
    check_model_list(connection.request("GET", "/v1/models").json())
    assert connection.request("GET", path).json() == got.json()  # the same connection, still in use


def test_head_of_a_stream_answers_its_headers_then_closes(connection: Connection) -> None:
    response = check_response(connection.request("POST", "/v1/responses", CREATE, JSON).json())
    reply = connection.request("HEAD", f"/v1/responses/{response.id}?stream=true")
    assert (reply.status_code, reply.headers["content-type"], reply.content) == (200, "text/event-stream", b"")
    assert reply.will_close  # a stream has no length, so nothing can follow it on the connection


# --------------------------------------------------------------------------------------------- body limits


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(connection: Connection) -> None:
    head = f"POST /v1/responses HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {LIMIT + 1}"
    reply = connection.send(f"{head}\r\nX-Request-Id: big-1\r\n\r\n".encode(), "POST")  # not a byte of the body
    error = refusal(reply, 413)
    assert (error["code"], error["message"]) == (
        "request_too_large",
        f"The request body is {LIMIT + 1} bytes; at most {LIMIT} are accepted.",
    )
    assert reply.headers["x-request-id"] == "big-1"
    assert reply.will_close
    assert connection.closed_by_server()


@pytest.mark.parametrize("length", [8 * 2**30, 10**30])
def test_a_huge_declared_length_is_refused_at_once(connection: Connection, length: int) -> None:
    reply = connection.send(f"POST /v1/responses HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode())
    assert refusal(reply, 413)["code"] == "request_too_large"


def test_a_client_expecting_100_continue_gets_the_refusal_instead(connection: Connection) -> None:
    head = f"POST /v1/responses HTTP/1.1\r\nHost: x\r\nContent-Length: {LIMIT * 4}\r\nExpect: 100-continue\r\n\r\n"
    reply = connection.send(head.encode(), "POST")
    assert refusal(reply, 413)["code"] == "request_too_large"


def test_a_chunked_body_over_the_limit_is_refused_before_it_ends(connection: Connection) -> None:
    chunk = b"x" * (LIMIT + 1)
    head = CHUNKED
    # One chunk past the limit and no last chunk: the body has not ended when the server answers.
    reply = connection.send(head + f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n", "POST")
    error = refusal(reply, 413)
    assert error["message"] == f"The request body is more than {LIMIT} bytes; at most {LIMIT} are accepted."
    assert reply.will_close


def test_a_chunked_body_under_the_limit_is_served(connection: Connection) -> None:
    head = CHUNKED
    chunks = b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (CREATE[:10], CREATE[10:]))
    reply = connection.send(head + chunks + b"0\r\n\r\n", "POST")
    assert check_response(reply.json()).output_text == "hello there"
    assert not reply.will_close


# --------------------------------------------------------------------------------------------- framing


@pytest.mark.parametrize(
    ("request_head", "status", "message"),
    [
        (
            "POST /v1/responses HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked",
            400,
            "The request has both Content-Length and Transfer-Encoding; send one of them.",
        ),
        (
            "POST /v1/responses HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4",
            400,
            "The request has both Content-Length and Transfer-Encoding; send one of them.",
        ),
        (
            "POST /v1/responses HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked",
            400,
            "HTTP/1.0 has no Transfer-Encoding; send a Content-Length.",
        ),
        (
            "POST /v1/responses HTTP/1.1\r\nTransfer-Encoding: gzip, chunked",
            501,
            "This Transfer-Encoding is not supported: send chunked or a Content-Length.",
        ),
        (
            "POST /v1/responses HTTP/1.1\r\nContent-Length: 1_0",
            400,
            MALFORMED,
        ),
        (
            "POST /v1/responses HTTP/1.1\r\nContent-Length: +5",
            400,
            MALFORMED,
        ),
        (
            "POST /v1/responses HTTP/1.1\r\nContent-Length: -1",
            400,
            MALFORMED,
        ),
        (
            "POST /v1/responses HTTP/1.1\r\nContent-Length: \u0661\u0660",
            400,
            MALFORMED,
        ),
        (
            "POST /v1/responses HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6",
            400,
            MALFORMED,
        ),
        ("GET /v1/models HTTP/1.1\r\nBad Header: x", 400, "The request is malformed: Invalid header."),
        ("GET /v1/models HTTP/1.1\r\nX-Big: " + "x" * 300_000, 431, "The request line and headers are too large."),
    ],
    ids=[
        "cl-then-te",
        "te-then-cl",
        "te-in-http-1.0",
        "unknown-te",
        "cl-underscore",
        "cl-plus",
        "cl-negative",
        "cl-arabic-indic",
        "cl-twice",
        "bad-header",
        "headers-too-large",
    ],
)
def test_malformed_framing_is_refused_in_openais_shape_and_never_reaches_the_app(
    connection: Connection, request_head: str, status: int, message: str
) -> None:
    # A valid create follows the headers: had the app seen the request, it would have answered 200.
    body = b"4\r\n" + CREATE[:4] + b"\r\n0\r\n\r\n" if "chunked" in request_head else CREATE[:4]
    reply = connection.send(
        request_head.encode("utf-8") + b"\r\nHost: x\r\nX-Request-Id: framing-1\r\n\r\n" + body, "POST"
    )
    error = refusal(reply, status)
    assert (error["message"], error["param"]) == (message, None)
    # Headers too large or malformed are not read, nor is the id among them: the reply gets a fresh one.
    sent_id = status != 431 and "Bad Header" not in request_head
    assert reply.headers["x-request-id"] == "framing-1" if sent_id else reply.headers["x-request-id"].startswith("req_")
    assert reply.will_close
    assert connection.closed_by_server()


# --------------------------------------------------------------------------------------------- bodies


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json", 200),
        ("application/json; charset=utf-8", 200),
        ("Application/JSON;charset=UTF-8", 200),
        ('application/json; charset="utf-8"', 200),
        (None, 200),
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        ("application/json; charset=latin-1", 415),
        ("application/jsonx", 415),
        ("multipart/form-data; boundary=x", 415),
    ],
)
def test_a_body_must_be_json(connection: Connection, content_type: str | None, status: int) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    reply = connection.request("POST", "/v1/responses", CREATE, headers)
    if status == 200:
        check_response(reply.json())
        return
    error = refusal(reply, 415)
    assert (error["code"], error["param"]) == ("unsupported_media_type", None)
    assert not reply.will_close


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        (b"", None, "The request body is empty; it must be a JSON object."),
        (b"\xff{}", None, "The request body is not UTF-8 (byte 0 is not valid)."),
        ('{"input": "x"}'.encode("utf-16"), None, "The request body is not UTF-8 (byte 0 is not valid)."),
        (b'{"model": "echo", "input": "\xed\xa0\xbd"}', None, "The request body is not UTF-8 (byte 28 is not valid)."),
        (
            b'{"model": "echo", "input": [{"role": "user", "content": "\\ud83d"}]}',
            "input[0].content",
            "The request body holds a lone surrogate (such as '\\ud83d'), which UTF-8 cannot encode.",
        ),
        (
            b'{"model": "echo", "\\udc00": 1}',
            "\ufffd",
            "The request body holds a lone surrogate (such as '\\ud83d'), which UTF-8 cannot encode.",
        ),
        (b'{"model": "echo", "temperature": 1e999}', None, None),
        (b'{"model": "echo", "temperature": -Infinity}', None, None),
        (b'{"model": "echo"', None, "The request body is not valid JSON: Expecting ',' delimiter (line 1, column 17)."),
        (b'{"model": "echo", "input": ' + b"[" * 100_000, "input" + "[0]" * 63, None),
        (b"[" * 3_000 + b"]" * 3_000, "[0]" * 64, None),
        (b'{"input": ' + b'{"a": ' * 10_000, "input" + ".a" * 63, None),
        (b'{"model": "echo", "max_output_tokens": ' + b"9" * 5_000 + b"}", None, "The request body is not valid JSON."),
    ],
    ids=[
        "empty",
        "bad-utf8",
        "utf16",
        "encoded-surrogate",
        "lone-surrogate",
        "surrogate-key",
        "overflowing-float",
        "infinity",
        "truncated",
        "deep-arrays",
        "deep-top-level",
        "deep-objects",
        "huge-int",
    ],
)
def test_undecodable_bodies_are_400_never_500(
    connection: Connection, body: bytes, param: str | None, message: str | None
) -> None:
    reply = connection.request("POST", "/v1/responses", body, JSON)
    error = refusal(reply, 400)
    assert (error["code"], error["param"]) == ("invalid_json", param)
    if message is not None:
        assert error["message"] == message
    assert not reply.will_close


def test_duplicate_keys_take_the_last_value(connection: Connection) -> None:
    reply = connection.request("POST", "/v1/responses", b'{"model": "echo", "input": "first", "input": "last"}', JSON)
    assert check_response(reply.json()).output_text == "last"


def test_a_long_unknown_parameter_gets_a_bounded_refusal(connection: Connection) -> None:
    name = "p" * 500_000
    reply = connection.request("POST", "/v1/responses", json.dumps({"model": "echo", name: 1}).encode(), JSON)
    error = refusal(reply, 400)
    assert error["code"] == "unknown_parameter"
    assert len(error["param"]) <= 256
    assert len(reply.content) < 2_000


# --------------------------------------------------------------------------------------------- query integers


@pytest.mark.parametrize("value", ["1_0", "\u0661\u0660", "+5", " 5", "5 ", "5.0", "-1", "0x10", "", "1e1", "9" * 25])
def test_query_integers_are_ascii_digits_only(child: Child, value: str) -> None:
    client = child.client()
    response = client.responses.create(model="echo", input="one two")
    conversation = client.conversations.create(items=[{"type": "message", "role": "user", "content": "hi"}])
    refused = [
        lambda: client.responses.input_items.list(response.id, extra_query={"limit": value}),
        lambda: client.conversations.items.list(conversation.id, extra_query={"limit": value}),
        lambda: client.responses.retrieve(response.id, extra_query={"stream": "true", "starting_after": value}),
    ]
    for send in refused:
        with pytest.raises(openai.BadRequestError) as raised:
            send()
        assert raised.value.code == "invalid_value"
        assert raised.value.param in ("limit", "starting_after")
        assert raised.value.request_id is not None
    page = client.responses.input_items.list(response.id, extra_query={"limit": "007"})
    check_item_page(page.model_dump(mode="json"))


# --------------------------------------------------------------------------------------------- in process


class _Stream:
    """A body of ``size`` bytes of ``{``... handed over as a chunked body is: no length, read until it ends."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.read_bytes = 0

    def read(self, size: int) -> bytes:
        count = self.left if size < 0 else min(size, self.left)
        self.left -= count
        self.read_bytes += count
        return b" " * count


@pytest.fixture
def small_app() -> Iterator[ResponsesApp]:
    app = make_app(responsestore.open("memory://"), max_body_bytes=1000)
    yield app
    app.close()


def _environ_call(app: ResponsesApp, environ: dict[str, Any]) -> Called:
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/v1/responses", **environ}
    setup_testing_defaults(environ)
    started: list[Any] = []
    chunks = app(environ, lambda status, headers: started.append((status, headers)))
    return Called(started[0][0], started[0][1], b"".join(chunks))


def test_a_body_of_undeclared_length_is_read_in_pieces_and_refused_once_past_the_limit(
    small_app: ResponsesApp,
) -> None:
    stream = _Stream(10**9)
    environ = {"wsgi.input": stream, "wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked"}
    error = refusal(_environ_call(small_app, environ), 413)
    assert error["message"] == "The request body is more than 1000 bytes; at most 1000 are accepted."
    assert stream.read_bytes == 1001  # the limit and one byte, never the rest


def test_a_body_of_undeclared_length_within_the_limit_is_served(small_app: ResponsesApp) -> None:
    environ = {"wsgi.input": io.BytesIO(CREATE), "wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked"}
    check_response(_environ_call(small_app, environ).json())


@pytest.mark.parametrize(
    ("environ", "status", "code"),
    [
        ({"CONTENT_LENGTH": "5", "HTTP_TRANSFER_ENCODING": "chunked"}, 400, "invalid_request"),
        ({"HTTP_TRANSFER_ENCODING": "chunked"}, 411, "length_required"),  # a server that cannot hand it over
        ({"CONTENT_LENGTH": "1001"}, 413, "request_too_large"),
        ({"CONTENT_LENGTH": "1_0"}, 400, "invalid_request"),
        ({"CONTENT_LENGTH": "\u0661\u0660"}, 400, "invalid_request"),
        ({"CONTENT_LENGTH": "-1"}, 400, "invalid_request"),
        ({"CONTENT_LENGTH": "50"}, 400, "invalid_request"),  # the body ends before its declared length
    ],
)
def test_the_app_checks_framing_itself_before_reading(
    small_app: ResponsesApp, environ: dict[str, Any], status: int, code: str
) -> None:
    stream = _Stream(10)
    reply = _environ_call(small_app, {"wsgi.input": stream, **environ})
    assert refusal(reply, status)["code"] == code
    assert stream.read_bytes == (10 if environ.get("CONTENT_LENGTH") == "50" else 0)


def test_framing_is_checked_on_every_route(small_app: ResponsesApp) -> None:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/v1/models", "CONTENT_LENGTH": "0"}
    reply = _environ_call(small_app, {**environ, "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": _Stream(0)})
    assert refusal(reply, 400)["code"] == "invalid_request"


def test_only_a_body_is_refused_for_its_type(small_app: ResponsesApp) -> None:
    plain = {"CONTENT_TYPE": "text/plain", "CONTENT_LENGTH": "0", "wsgi.input": io.BytesIO()}
    empty = refusal(_environ_call(small_app, plain), 400)
    assert empty["message"] == "The request body is empty; it must be a JSON object."
    assert _environ_call(small_app, {**plain, "REQUEST_METHOD": "GET", "PATH_INFO": "/v1/models"}).status_code == 200
    body = {**plain, "CONTENT_LENGTH": "2", "wsgi.input": io.BytesIO(b"{}"), "PATH_INFO": "/v1/conversations"}
    assert refusal(_environ_call(small_app, body), 415)["code"] == "unsupported_media_type"


def test_head_and_options_in_process(small_app: ResponsesApp) -> None:
    head = call(small_app, "HEAD", "/v1/models")
    get = call(small_app, "GET", "/v1/models")
    assert (head.status_code, head.text, head.headers["content-length"]) == (200, "", str(len(get.text)))
    options = call(small_app, "OPTIONS", "/v1/conversations/conv_1/items")
    assert (options.status_code, options.headers["allow"]) == (200, "GET, HEAD, POST, OPTIONS")
    assert refusal(call(small_app, "OPTIONS", "/v1/nowhere"), 404)["code"] == "not_found"


def test_an_unexpected_failure_names_its_request_id_in_the_message() -> None:
    def broken(key: str | None) -> str | None:
        raise RuntimeError("a bug")

    app = make_app(responsestore.open("memory://"), authenticate=broken)
    try:
        reply = call(app, "GET", "/v1/models", headers={"X-Request-Id": "trace-9"})
    finally:
        app.close()
    error = refusal(reply, 500)
    assert error["message"] == "The server failed to handle the request (request id trace-9)."
