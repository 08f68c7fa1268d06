"""A WSGI app served for tests: on a real loopback port (:class:`Live`, for the ``openai`` client) or called in
process (:func:`call`, for many quick requests). Every error body is checked for OpenAI's shape (:func:`error_of`).
"""

from __future__ import annotations

import http.client
import io
import json
import socketserver
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.util import setup_testing_defaults

import openai
import uvicorn

import responsestore.asgi
import responsestore.wsgi
from responsestore._uvicorn import listen, start
from responsestore.asgi import AsgiApp
from responsestore.wsgi import ResponsesApp
from tests.wire_checks import check_event

TIMEOUT = 30.0

#: The transports the HTTP tests run against: the WSGI app (on a threaded wsgiref server) and the ASGI app (uvicorn).
TRANSPORTS = ("wsgi", "asgi")


def make_app_for(transport: str) -> Callable[..., ResponsesApp | AsgiApp]:
    """The ``make_app`` of ``transport`` (``"wsgi"`` or ``"asgi"``)."""
    return responsestore.asgi.make_app if transport == "asgi" else responsestore.wsgi.make_app


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 64  # 16 clients connect at once


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class Reply:
    """An HTTP reply, read whole."""

    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status_code = status
        self.headers = headers
        self.text = body.decode()

    def json(self) -> Any:
        return json.loads(self.text)


class Live:
    """An app served on a free loopback port until :meth:`stop` (an explicit shutdown).

    A WSGI app is served by a threaded ``wsgiref`` server, an ASGI app by uvicorn (in a thread of this process).
    """

    def __init__(self, app: ResponsesApp | AsgiApp) -> None:
        self.app = app
        if isinstance(app, AsgiApp):
            self.server: Any = Uvicorn(app)
            self.port = self.server.port
        else:
            self.server = make_server("127.0.0.1", 0, app, server_class=_Server, handler_class=_Quiet)
            self.port = self.server.server_port
            self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
            self.thread.start()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.clients: list[openai.OpenAI] = []

    def client(self, key: str = "key-a") -> openai.OpenAI:
        """An ``openai`` client of this server (closed by :meth:`stop`: its kept-alive connections with it)."""
        client = openai.OpenAI(base_url=self.url, api_key=key, max_retries=0, timeout=TIMEOUT)
        self.clients.append(client)
        return client

    def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> http.client.HTTPResponse:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        target = "/v1" + path + ("?" + urllib.parse.urlencode(params) if params else "")
        if json is not None:
            content = _json_module.dumps(json).encode()
        # One connection a request, closed with its reply (a kept-alive one would be left open).
        sent = {"Authorization": "Bearer key-a", "Content-Type": "application/json", "Connection": "close"}
        sent.update(headers or {})
        connection.request(method, target, body=content, headers={k: v for k, v in sent.items() if v})
        return connection.getresponse()

    def request(self, method: str, path: str, **kwargs: Any) -> Reply:
        reply = self._send(method, path, **kwargs)
        with reply:
            return Reply(reply.status, reply.headers, reply.read())

    def json(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        reply = self.request(method, path, **kwargs)
        assert reply.status_code == status, reply.text
        return reply.json()

    def events(self, method: str, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        """The server-sent events of one request, each validated."""
        events = []
        with self._send(method, path, **kwargs) as reply:
            assert reply.status == 200
            assert reply.headers["content-type"] == "text/event-stream"
            kind = None
            for raw in reply:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[len("event: ") :]
                elif line.startswith("data: "):
                    event = _json_module.loads(line[len("data: ") :])
                    assert event["type"] == kind
                    check_event(event)
                    events.append(event)
        return events

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        if isinstance(self.server, Uvicorn):
            self.server.stop()
        else:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(TIMEOUT)
        self.app.close()


class Uvicorn:
    """uvicorn serving an ASGI app on a free loopback port, in a thread, until :meth:`stop`."""

    def __init__(self, app: Any, lifespan: str = "off") -> None:
        config = uvicorn.Config(
            app, lifespan=lifespan, log_level="warning", ws="websockets-sansio", timeout_graceful_shutdown=5
        )
        self.socket = listen("127.0.0.1", 0)
        self.port = self.socket.getsockname()[1]
        self.server, self.thread = start(config, self.socket)
        assert self.server.started, "uvicorn did not start"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(TIMEOUT)
        self.socket.close()


_json_module = json


def error_of(reply: Reply, status: int) -> dict[str, Any]:
    """The ``error`` object of a refusal, after checking its status and OpenAI's shape."""
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert body["error"]["param"] is None or isinstance(body["error"]["param"], str)
    assert isinstance(body["error"]["code"], str)
    assert "x-request-id" in reply.headers
    error: dict[str, Any] = body["error"]
    return error


class Called:
    """What :func:`call` got back: the status code, the headers (a dict; names as sent) and the body."""

    def __init__(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status_code = int(status.split(maxsplit=1)[0])
        self.headers = _Headers(headers)
        self.text = body.decode()

    def json(self) -> Any:
        return json.loads(self.text)


class _Headers(dict[str, str]):
    """Response headers, looked up case-insensitively (names are unique in these replies)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        super().__init__((name.lower(), value) for name, value in pairs)
        assert len(self) == len(pairs), pairs

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(name.lower(), default)


def call(
    app: ResponsesApp,
    method: str,
    path: str,
    body: Any = None,
    *,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Called:
    """One request to ``app`` in this process, as a WSGI server makes it (``headers`` as HTTP names)."""
    environ: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": path}
    setup_testing_defaults(environ)
    data = content if content is not None else (json.dumps(body).encode() if body is not None else b"")
    environ.update({"wsgi.input": io.BytesIO(data), "CONTENT_LENGTH": str(len(data))})
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    started: list[tuple[str, list[tuple[str, str]]]] = []
    chunks = app(environ, lambda status, sent: started.append((status, sent)))
    try:
        raw = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return Called(started[0][0], started[0][1], raw)
