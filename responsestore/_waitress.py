"""waitress set up for the app, as ``python -m responsestore serve`` runs it.

Its body limit is the app's, its own refusals are in OpenAI's error shape, and a request framed two ways never
reaches the app.

waitress reads each request whole (a chunked body too, which the app then sees with a ``Content-Length``) before
the app is called, and answers some requests itself. So:

- its ``max_request_body_size`` is the app's ``max_body_bytes`` + 1: a declared length over the app's limit is
  refused before a byte of the body is read, and a chunked body as soon as it passes the limit (counting its
  chunk framing, as waitress does), the rest left unread; the connection then closes;
- every refusal waitress makes itself (``400`` malformed request, ``413``, ``431`` headers too large, ``501`` an
  unsupported ``Transfer-Encoding``, ``500``) is a JSON ``{"error": {...}}`` with an ``x-request-id`` header, as
  the app's are;
- a request refused from its headers alone (too large, malformed) is not sent ``100 Continue``: a client that
  waits for it (``Expect: 100-continue``, as curl sends) gets the refusal and never sends the body;
- a request with both ``Content-Length`` and ``Transfer-Encoding``, or an HTTP/1.0 request with a
  ``Transfer-Encoding`` (which waitress would frame by its ``Content-Length``, leaving a chunked body to be read
  as the next request), is ``400`` and its connection closed.
"""

from __future__ import annotations

import json
from typing import Any

import waitress.server
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError
from waitress.task import ErrorTask
from waitress.utilities import RequestEntityTooLarge, RequestHeaderFieldsTooLarge, ServerNotImplemented

from .server._errors import REASONS, ApiError, too_large
from .server._http import request_id
from .wsgi import ResponsesApp

__all__ = ["create_server"]


def create_server(app: ResponsesApp, *, map: dict[int, Any], **options: Any) -> Any:
    """A waitress server for ``app`` (``options`` are waitress's, ``map`` the socket map it registers in).

    Its ``max_request_body_size`` is the app's limit + 1 (waitress refuses a length at or over it).
    """
    server = waitress.server.create_server(app, map=map, max_request_body_size=app.max_body_bytes + 1, **options)
    for listener in list(map.values()):  # one per address listened on
        if isinstance(listener, waitress.server.BaseWSGIServer):
            listener.channel_class = _Channel
    return server


class _Parser(HTTPRequestParser):  # type: ignore[misc] # waitress has no type hints
    """waitress's parser, refusing the requests whose framing is ambiguous."""

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        if self.chunked and "CONTENT_LENGTH" in self.headers:
            raise ParsingError("The request has both Content-Length and Transfer-Encoding; send one of them.")
        if "TRANSFER_ENCODING" in self.headers:  # left there only by an HTTP/1.0 request
            raise ParsingError("HTTP/1.0 has no Transfer-Encoding; send a Content-Length.")


class _ErrorTask(ErrorTask):  # type: ignore[misc] # waitress has no type hints
    """The answer to a request waitress refuses itself: OpenAI's error shape, as the app answers."""

    def execute(self) -> None:
        rid = request_id(self.request.headers.get("X_REQUEST_ID"))
        error = _api_error(self.request, self.channel.server.adj.max_request_body_size - 1)
        body = json.dumps(error.body(rid), separators=(",", ":"), ensure_ascii=False).encode()
        self.status = f"{error.status} {REASONS[error.status]}"
        self.response_headers.extend([("Content-Type", "application/json"), ("x-request-id", rid)])
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


def _api_error(request: Any, limit: int) -> ApiError:
    error = request.error
    if isinstance(error, RequestEntityTooLarge):
        return too_large(limit, None if request.chunked else request.content_length)
    if isinstance(error, RequestHeaderFieldsTooLarge):
        return ApiError(431, "The request line and headers are too large.", code="request_header_fields_too_large")
    if isinstance(error, ServerNotImplemented):
        return ApiError(
            501, "This Transfer-Encoding is not supported: send chunked or a Content-Length.", code="not_implemented"
        )
    if error.code == 400:
        detail = str(error.body)  # waitress's words ("Invalid header"), or a sentence of _Parser's
        message = detail if detail.endswith(".") else f"The request is malformed: {detail}."
        return ApiError(400, message, code="invalid_request")
    return ApiError(500, "The server failed to handle the request.", code="server_error")


class _Channel(HTTPChannel):  # type: ignore[misc] # waitress has no type hints
    parser_class = _Parser
    error_task_class = _ErrorTask

    def send_continue(self) -> None:
        """``100 Continue``, unless the request is refused already: then the refusal goes at once.

        (waitress would ask for the body of a request it refused, then read it up to its limit.)
        """
        if self.request.error is None:
            super().send_continue()
