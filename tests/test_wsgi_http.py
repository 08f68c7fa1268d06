"""HTTP at the edge: bodies that cannot be decoded, strict query integers, bounded refusals.

The requests go over raw sockets to a real ``python -m responsestore serve`` (waitress), or through the ``openai``
client.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any

import openai
import pytest

import responsestore
from responsestore.server._errors import MAX_MESSAGE
from responsestore.wsgi import make_app
from tests.live_app import Called, call, error_of
from tests.test_wsgi_serve import TIMEOUT, Child
from tests.wire_checks import check_item_page, check_response


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


# --------------------------------------------------------------------------------------------- bodies


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
