"""A small Responses API server: the standard library's threaded WSGI server in front of one ResponseStore.

It serves the part of OpenAI's Responses API that reads and manages stored responses:

    GET    /v1/responses/{id}                 the response (OpenAI's Response object)
    DELETE /v1/responses/{id}                 {"id": ..., "object": "response", "deleted": true}
    GET    /v1/responses/{id}/input_items     one page of input items (limit, after, before, order)
    POST   /v1/responses/{id}/cancel          cancel a background response

The part of a real server that runs the model (not shown) calls ``store.create`` and ``store.complete`` on the
same store object, from its own threads.

Two extensions that OpenAI's API does not have: ``DELETE`` and ``cancel`` accept ``?expected_version=N`` (the
store's optimistic concurrency; a mismatch is ``409``), and ``make_app(store, api_keys=...)`` turns bearer keys
into tenants, so that each tenant sees only its own responses.

Run it with ``python docs/examples/wsgi_app.py --port 8000``; it stores two sample responses and prints their ids.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import signal
import socketserver
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from responsestore import (
    BaseStore,
    ChainError,
    InvalidArgument,
    InvalidTransition,
    ResponseExists,
    ResponseNotFound,
    ResponseStore,
    ResponseStoreError,
    StoreFull,
    VersionConflict,
)

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
App = Callable[[Environ, StartResponse], Iterable[bytes]]

#: The HTTP status of each refusal of the store; the first class found in the error's MRO wins.
ERROR_STATUS: Mapping[type[ResponseStoreError], int] = {
    ResponseNotFound: 404,
    InvalidArgument: 400,
    InvalidTransition: 400,  # OpenAI answers 400 to cancelling a response that cannot be cancelled
    ChainError: 400,
    VersionConflict: 409,
    ResponseExists: 409,
    StoreFull: 503,  # every stored response is still running: try again later
}

_ROUTE = re.compile(r"/v1/responses/(?P<id>[^/]+)(?P<action>/input_items|/cancel)?")
_ALLOWED = {"": ("GET", "DELETE"), "/input_items": ("GET",), "/cancel": ("POST",)}
_DIGITS = re.compile(r"[0-9]{1,9}")
_MAX_BODY = 1 << 20


class HTTPError(Exception):
    """A refusal made by the HTTP layer itself (not by the store)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param
        self.headers = list(headers)


def error_body(message: str, *, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error JSON."""
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}


def store_error_response(exc: ResponseStoreError) -> tuple[int, dict[str, Any]]:
    """The HTTP status and body for a refusal of the store."""
    for cls in type(exc).__mro__:
        status = ERROR_STATUS.get(cls)
        if status is not None:
            code = "version_conflict" if isinstance(exc, VersionConflict) else None
            return status, error_body(str(exc), code=code)
    # A LockError or a future error class: a bug on the server's side, not the client's.
    return 500, {"error": {"message": "internal error", "type": "server_error", "param": None, "code": None}}


def make_app(store: BaseStore, *, api_keys: Mapping[str, str] | None = None) -> App:
    """Return a WSGI application serving ``store``; it may be called from any number of threads at once.

    With ``api_keys`` (bearer key -> tenant), every request needs ``Authorization: Bearer <key>`` and sees only
    the responses of that key's tenant (the store's ``owner``). Without it, every request uses owner ``None``.
    """

    def owner_of(environ: Environ) -> str | None:
        if api_keys is None:
            return None
        scheme, _, key = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        tenant = api_keys.get(key.strip()) if scheme.lower() == "bearer" else None
        if tenant is None:
            raise HTTPError(401, "Incorrect API key provided.", code="invalid_api_key")
        return tenant

    def dispatch(environ: Environ) -> tuple[int, dict[str, Any]]:
        match = _ROUTE.fullmatch(environ.get("PATH_INFO", ""))
        if match is None:
            raise HTTPError(404, f"Invalid URL ({environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')})")
        id, action = match["id"], match["action"] or ""
        method = environ["REQUEST_METHOD"]
        if method not in _ALLOWED[action]:
            allowed = _ALLOWED[action]
            message = f"Method {method} is not allowed here; use {' or '.join(allowed)}"
            raise HTTPError(405, message, headers=[("Allow", ", ".join(allowed))])
        owner = owner_of(environ)
        query = _query(environ)
        _drain_body(environ)
        if action == "/input_items":
            page = store.input_items(
                id,
                limit=_int_param(query, "limit", 20),
                after=query.get("after"),
                before=query.get("before"),
                order=query.get("order", "desc"),
                owner=owner,
            )
            return 200, page.to_openai()
        # Every call below is one atomic operation of the store: no lock is held here across calls.
        expected = _int_param(query, "expected_version", None)
        if action == "/cancel":
            return 200, store.cancel(id, expected_version=expected, owner=owner).to_openai()
        if method == "DELETE":
            deleted = store.delete(id, expected_version=expected, owner=owner)
            return 200, {"id": deleted.id, "object": "response", "deleted": True}
        return 200, store.get(id, owner=owner).to_openai()

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        headers: list[tuple[str, str]] = []
        try:
            status, body = dispatch(environ)
        except HTTPError as exc:
            status, body = exc.status, error_body(str(exc), code=exc.code, param=exc.param)
            headers += exc.headers
        except ResponseStoreError as exc:
            status, body = store_error_response(exc)
        payload = json.dumps(body).encode()
        headers += [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        start_response(f"{status} {_REASONS[status]}", headers)
        return [payload]

    return app


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def _query(environ: Environ) -> dict[str, str]:
    query: dict[str, str] = {}
    for name, value in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True):
        if name in query:
            raise HTTPError(400, f"Query parameter {name!r} is given more than once", param=name)
        query[name] = value
    return query


def _int_param(query: Mapping[str, str], name: str, default: int | None) -> int | None:
    value = query.get(name)
    if value is None:
        return default
    if _DIGITS.fullmatch(value) is None:
        raise HTTPError(400, f"Query parameter {name!r} must be a whole number, not {value!r}", param=name)
    return int(value)


def _drain_body(environ: Environ) -> None:
    # Read (and ignore) a request body, so the client never sees its connection reset before the answer.
    length = environ.get("CONTENT_LENGTH") or "0"
    if _DIGITS.fullmatch(length) is None or int(length) > _MAX_BODY:
        raise HTTPError(413, "Request body too large")
    if int(length):
        environ["wsgi.input"].read(int(length))


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """``wsgiref``'s server, handling each connection in a thread of its own."""

    daemon_threads = True  # do not keep the process alive for a client that never finishes its request
    request_queue_size = 128  # socketserver's default backlog of 5 turns away bursts of concurrent clients


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def make_threaded_server(app: App, host: str = "127.0.0.1", port: int = 8000, *, quiet: bool = False) -> WSGIServer:
    """A threaded WSGI server for ``app``, bound but not yet serving; ``port=0`` picks a free port."""
    handler = _QuietHandler if quiet else WSGIRequestHandler
    return make_server(host, port, app, server_class=ThreadingWSGIServer, handler_class=handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a fresh store with two sample responses until interrupted (Ctrl-C) or sent SIGTERM."""
    parser = argparse.ArgumentParser(description="A small Responses API server backed by responsestore.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)

    store = ResponseStore()  # one store per process, shared by every request thread
    done = store.create("gpt-4.1", [{"role": "user", "content": "Hi!"}, {"role": "user", "content": "Who are you?"}])
    done = store.complete(done.id, [{"role": "assistant", "content": "Hello! How can I help?"}])
    queued = store.create("gpt-4.1", "Write a long essay.", background=True, status="queued")

    server = make_threaded_server(make_app(store), args.host, args.port)
    with server, _shutdown_on_sigterm(server):
        host, port = server.server_address[:2]
        print(f"Serving on http://{host}:{port}", flush=True)
        print(f"completed response: {done.id}", flush=True)
        print(f"queued background response: {queued.id}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    return 0


@contextlib.contextmanager
def _shutdown_on_sigterm(server: socketserver.BaseServer) -> Iterator[None]:
    """Stop ``serve_forever`` on SIGTERM (what process managers and ``kill`` send), as Ctrl-C stops it.

    ``shutdown()`` waits for ``serve_forever`` to return, and the handler runs inside it on the main thread, so
    the handler asks another thread to call it. Signal handlers can only be set from the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, name="shutdown", daemon=True).start()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
