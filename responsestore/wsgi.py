"""The Responses API as a plain WSGI application over any store: :func:`make_app`.

The app does everything of the API but generation: it parses and checks requests, stores responses, chains
``previous_response_id``, cancels background responses, streams events as server-sent events (and replays the
stored ones), serves the model list, compacts conversations, counts input tokens, maps bearer keys to owners and
answers errors in OpenAI's shape. The rules live in the transport-free core (:mod:`responsestore.server`): request
checks, routes, models, runs (calling the model, logging its events in batches, holding its lease, always ending
it); this module only moves bytes between WSGI and it (:mod:`responsestore.asgi` does the same for ASGI). The
server author supplies only ``generate``, the model (or several, by name). It uses nothing but the public store
API, so it serves every backend.

Routes (all under ``/v1``)::

    POST   /v1/responses                      create (every Open Responses CreateResponseBody field, and OpenAI's)
    POST   /v1/responses/compact              compact a conversation: {"object": "response.compaction", ...}
    POST   /v1/responses/input_tokens         count input tokens: {"object": "response.input_tokens", ...}
    GET    /v1/responses/{id}                 the response; ?stream=true&starting_after=N replays its events
    DELETE /v1/responses/{id}                 {"id": ..., "object": "response", "deleted": true}
    POST   /v1/responses/{id}/cancel          cancel a background response
    GET    /v1/responses/{id}/input_items     one page of input items (after, before, limit 1-100, order)
    POST   /v1/conversations                  the Conversations API: create, retrieve, update, delete
    ...    /v1/conversations/{id}[/items[/{item_id}]]   and the items (see responsestore.server._conversations)
    GET    /v1/models                         the served models: {"object": "list", "data": [Model, ...]}
    GET    /v1/models/{model}                 one Model
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from .server._api import DEFAULT_MAX_BODY_BYTES, Api, Request, Unauthorized, make_api, make_app_of
from .server._compaction import Compact, echo_compact
from .server._errors import REASONS
from .server._models import ArgumentsDelta, FunctionCall, Generate, Incomplete, Usage, echo
from .server._outbound import EventStream, sse
from .server._tokens import CountTokens, estimate_tokens

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_STREAMS",
    "ArgumentsDelta",
    "Compact",
    "CountTokens",
    "FunctionCall",
    "Generate",
    "Incomplete",
    "ResponsesApp",
    "Unauthorized",
    "Usage",
    "echo",
    "echo_compact",
    "estimate_tokens",
    "make_app",
]

#: The most server-sent event streams the WSGI app keeps open at once (12, for ``serve``'s 16 request threads); one
#: more is refused with ``503`` until one ends. Keep it below your server's request threads, so that other requests
#: keep some.
DEFAULT_MAX_STREAMS = 12

Environ = Mapping[str, Any]
StartResponse = Callable[..., Any]


class ResponsesApp(Api):
    """The WSGI application :func:`make_app` returns; call :meth:`close` when the server stops."""

    auto_max_streams = DEFAULT_MAX_STREAMS

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request (the WSGI protocol)."""
        reply = self.settle(self.handle(_request(environ)))
        start_response(f"{reply.status} {REASONS[reply.status]}", reply.headers)
        if reply.stream is not None:
            return _Body(reply.stream)
        return [reply.body] if reply.body else []


def _request(environ: Environ) -> Request:
    headers = {key[5:].lower().replace("_", "-"): value for key, value in environ.items() if key.startswith("HTTP_")}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        value = environ.get(key)
        if value:  # CGI gives an absent header as "" at times
            headers[key.lower().replace("_", "-")] = value
    return Request(
        method=str(environ.get("REQUEST_METHOD", "GET")).upper(),
        path=environ.get("PATH_INFO", ""),
        query=environ.get("QUERY_STRING", ""),
        headers=headers,
        body=environ.get("wsgi.input") or _EMPTY,
        terminated=bool(environ.get("wsgi.input_terminated")),
    )


class _Empty:
    def read(self, size: int, /) -> bytes:
        return b""


_EMPTY = _Empty()


class _Body:
    """A stream's WSGI body; the server calls :meth:`close` once the response is over, finished or not."""

    def __init__(self, stream: EventStream) -> None:
        self.stream = stream

    def __iter__(self) -> Iterator[bytes]:
        for event in self.stream.events():
            yield sse(event)
        self.stream.close()  # every event sent: the slot is free at once (close() comes too, and does nothing more)

    def close(self) -> None:
        """End the stream: free its slot, and abandon its run if the client left before the end."""
        self.stream.close()


make_app = make_app_of(
    ResponsesApp,
    make_api,
    "A WSGI application serving the Responses API over ``store``; run it with any WSGI server (``serve`` uses "
    "waitress).",
)
