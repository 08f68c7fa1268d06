"""The Responses API's WebSocket mode: many responses over one persistent connection at ``/v1/responses``.

The ASGI app (:mod:`responsestore.asgi`) serves it to any server that speaks ASGI WebSockets (uvicorn, hypercorn):
a client opens ``ws://host/v1/responses`` (below the app's mount point) and then creates responses on it, one after
the other, without a new HTTP request each time. The protocol is OpenAI's (``client.responses.connect()`` in the
``openai`` SDK) and the Open Responses WebSocket transport:

- **Handshake.** The key is the ``Authorization: Bearer <key>`` header of the upgrade request, checked by the app's
  ``authenticate``; every response of the connection belongs to its owner, as over HTTP. A refused key (or another
  path) refuses the handshake: with the ASGI ``websocket.http.response`` extension (uvicorn has it) the client gets
  the HTTP refusal itself (``401`` and OpenAI's JSON error body), else the server's ``403``.
- **Client events**, one JSON text frame each. ``response.create`` carries the fields of a ``POST /v1/responses``
  body at its top level. ``stream`` and ``stream_options`` are ignored (every response streams; real clients send
  ``stream: true``), ``background: true`` is refused. Two fields exist only here: ``stream_id`` (a lane name, 1 to
  256 characters of ``A-Za-z0-9_.-``, echoed on every event of that request; lanes run one after the other here,
  which the protocol allows) and ``generate: false`` (a warmup: the response is created and completed with no
  output, so later turns can continue from its input). ``response.steer`` is answered with
  ``response.steer.failed`` (``steering_not_supported``).
- **Server events** are those of the server-sent event stream of the same request, in order, one JSON text frame
  each, numbered by ``sequence_number`` from 0 per response, ending with one terminal event (``response.completed``,
  ``response.incomplete`` or ``response.failed``); the connection then waits for the next ``response.create``.
- **One response at a time.** Frames are served in the order they arrive; while a response streams, the next ones
  wait in a queue of at most :data:`MAX_QUEUED` (the frames are still read, so pings are answered). A frame beyond it
  is refused at once with an ``error`` event (``websocket_queue_full``, status ``429``).
- **Refusals.** A frame that cannot start a response gets exactly one ``error`` event and nothing else:
  ``{"type": "error", "status": 400, "error": {"type", "code", "message", "param"}}`` (with ``stream_id`` if the
  frame gave a valid one). Its status, code and message are those the same body gets over HTTP (so a missing
  ``previous_response_id`` is ``400`` ``previous_response_not_found``, as OpenAI answers), plus: ``invalid_json``
  (not JSON, or not a JSON object), ``unknown_event_type`` (``param`` ``type``), ``invalid_frame`` (a binary frame),
  ``request_too_large`` (``413``: a frame over the app's ``max_body_bytes``), ``unsupported_parameter``
  (``background``), ``invalid_stream_id``, ``invalid_type`` (``generate``). A response that fails once created
  ends with ``response.failed`` instead. The connection stays open after either.
- **Continuations.** ``previous_response_id`` continues a stored response as over HTTP, or one of this connection's
  own ``store: false`` responses: the connection keeps the context of the last :data:`MAX_CACHED` of them (their
  conversation and output) in memory, and nowhere else, so another connection (or HTTP) cannot continue them. A
  stored response cannot continue one of them (``invalid_previous_response``). A continuation that fails (refused,
  or ended ``failed``) forgets the unstored response it continued, unless it ran in another lane
  (``stream_id``), as OpenAI's connections do: continuing it again is ``previous_response_not_found``.
- **Leaving.** A client that disconnects while its response streams abandons it: the response ends ``failed``, and
  the queued frames are dropped.

Close codes: ``1000`` when the connection has lasted :data:`MAX_CONNECTION_SECONDS` (after an ``error`` event
``websocket_connection_limit_reached``, between two responses); ``1011`` when the server fails in a way it cannot
report on the connection (logged); before the handshake, ``1008`` (policy violation: refused) when the server has
no ``websocket.http.response`` extension. The server itself closes with ``1009`` a frame over its own message limit
(uvicorn's ``ws_max_size``, 16 MiB by default; keep it above ``max_body_bytes`` so that a large frame gets an
``error`` event instead).

Limits per connection: one response in flight, :data:`MAX_QUEUED` frames waiting (each at most ``max_body_bytes``),
:data:`MAX_CACHED` unstored responses remembered, :data:`MAX_CONNECTION_SECONDS` of life. A response streaming here
takes one of the app's stream slots (``max_streams``), as a server-sent event stream does.

Thread-safety: a connection is served by two tasks on the app's event loop, one reading frames and one serving them
in turn; blocking work (the key check, creating a response, closing its stream) runs in the app's handler threads,
one call at a time per connection. The connection's memory of its responses is only touched by the serving task
and the call it is waiting for, so it needs no lock.

Unexpected failures are logged to ``responsestore.websocket``, with the connection's request id (its
``X-Request-Id``, or a fresh ``req_…``; it is sent back on the handshake).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from ._checks import describe
from ._records import ResponseStatus
from .asgi import AsgiApp, Receive, Scope, Send, headers_of, route_path
from .errors import ResponseStoreError
from .server._context import chain_history
from .server._errors import ApiError, store_error, too_large
from .server._http import request_id
from .server._logs import RequestLogger, serving
from .server._models import Chunk
from .server._outbound import LiveEvents, json_bytes
from .server._requests import decode_body, parse_create

__all__ = ["MAX_CACHED", "MAX_CONNECTION_SECONDS", "MAX_QUEUED", "PATH", "serve_websocket"]

#: Where WebSocket mode is served, below the app's mount point.
PATH = "/v1/responses"

#: The most frames that wait while a response streams; one more is refused with ``websocket_queue_full``.
MAX_QUEUED = 16

#: The most ``store: false`` responses a connection remembers for continuations (the least recently used goes).
MAX_CACHED = 16

#: How long a connection lasts (OpenAI's limit: 60 minutes); then it closes between two responses.
MAX_CONNECTION_SECONDS = 3600.0

_log = RequestLogger("responsestore.websocket")

_STREAM_ID = re.compile(r"[A-Za-z0-9_.\-]{1,256}")

#: Fields of ``response.create`` that are not part of the create body (``background`` is checked on its own).
_NOT_CREATE_FIELDS = frozenset({"type", "stream_id", "generate", "stream", "stream_options", "background"})

_CLOSE_NORMAL = 1000
_CLOSE_POLICY = 1008
_CLOSE_ERROR = 1011


async def serve_websocket(app: AsgiApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one WebSocket connection of ``app`` (an ASGI ``websocket`` scope): see the module.

    Never raises for what the client does; a failure of the server is logged and closes the connection (``1011``).
    """
    headers = headers_of(scope)
    rid = request_id(headers.get("x-request-id"))
    with serving(rid):  # runs, and what is logged, name the connection
        if (await receive())["type"] != "websocket.connect":
            return  # the client left before the handshake
        path = route_path(scope)
        if path != PATH:
            message = f"WebSocket mode is served at {PATH} only, not at {describe(path)}."
            await _refuse(scope, send, ApiError(404, message, code="not_found"), rid)
            return
        try:
            owner = await app.in_thread(app.owner, headers.get("authorization", ""))
        except ApiError as exc:
            await _refuse(scope, send, exc, rid)
            return
        await send({"type": "websocket.accept", "headers": [(b"x-request-id", rid.encode())]})
        await _Connection(app, owner, rid, send).serve(receive)


async def _refuse(scope: Scope, send: Send, exc: ApiError, rid: str) -> None:
    """Refuse the handshake: with the HTTP status and OpenAI's error body when the server can send them."""
    if "websocket.http.response" not in (scope.get("extensions") or {}):
        await send({"type": "websocket.close", "code": _CLOSE_ERROR if exc.status >= 500 else _CLOSE_POLICY})
        return
    body = json_bytes(exc.body(rid))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", rid.encode()),
    ]
    if exc.status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="responsestore"'))
    await send({"type": "websocket.http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})


class _Gone(Exception):
    """The client has left (or the connection is closed): nothing more can be sent."""


@attrs.frozen
class _Remembered:
    """A ``store: false`` response of the connection: the items a continuation of it starts from."""

    context: tuple[dict[str, Any], ...]
    #: The lane (``stream_id``) it ran in; ``None``: the default lane.
    lane: str | None


@attrs.frozen
class _Turn:
    """A response started from one ``response.create``: its live events and what to do once they are sent."""

    stream: LiveEvents
    lane: str | None
    #: The response it continues (``previous_response_id``), if any.
    parent: str | None
    #: The items it continues, for an unstored response (``None``: a stored one, which is not remembered).
    history: tuple[dict[str, Any], ...] | None


class _Connection:
    """One accepted connection: a task reads frames into a queue, another serves them one at a time."""

    def __init__(self, app: AsgiApp, owner: str | None, rid: str, send: Send) -> None:
        self.app = app
        self.owner = owner
        self.rid = rid
        self._send = send
        self._sending = asyncio.Lock()  # both tasks send: one frame at a time
        self._closed = False  # the server has sent its close frame
        self._gone = False  # the client left, or the connection is over: stop
        self._frames: collections.deque[str | ApiError] = collections.deque()  # a text frame, or its refusal
        self._wake = asyncio.Event()  # set when a frame is queued or the connection ends
        self._pumping: asyncio.Task[None] | None = None  # the events of the response in flight, being sent
        self._remembered: collections.OrderedDict[str, _Remembered] = collections.OrderedDict()
        self._deadline = time.monotonic() + MAX_CONNECTION_SECONDS

    async def serve(self, receive: Receive) -> None:
        """Read and serve frames until the client leaves or the connection reaches its time limit."""
        reading = asyncio.ensure_future(self._read(receive))
        working = asyncio.ensure_future(self._work())
        try:
            await asyncio.wait((reading, working), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._stop()
            reading.cancel()
            await asyncio.wait((reading, working))  # the worker closes the stream in flight (abandoning its run)
        failed = False
        for task in (reading, working):
            exc = None if task.cancelled() else task.exception()
            if exc is not None and not isinstance(exc, _Gone):
                _log.error("the WebSocket connection failed", exc_info=exc)
                failed = True
        if failed:
            await self._close(_CLOSE_ERROR)

    def _stop(self) -> None:
        self._gone = True
        self._wake.set()
        if self._pumping is not None:
            self._pumping.cancel()

    # ------------------------------------------------------------------ reading

    async def _read(self, receive: Receive) -> None:
        """Queue each frame (or its refusal, for a frame refused unread) until the client leaves."""
        limit = self.app.max_body_bytes
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                return
            if kind != "websocket.receive":
                continue
            text = message.get("text")
            frame: str | ApiError
            if text is None:
                message_text = "Binary frames are not accepted: send each event as a JSON text frame."
                frame = ApiError(400, message_text, code="invalid_frame")
            else:
                size = len(text) if text.isascii() else len(text.encode())
                frame = too_large(limit, size) if size > limit else text
            if len(self._frames) >= MAX_QUEUED:
                message_text = (
                    f"Too many events are waiting ({MAX_QUEUED}): this one was dropped. "
                    "Send the next response.create once a response has ended."
                )
                await self._send_frame(_error_frame(ApiError(429, message_text, code="websocket_queue_full"), self.rid))
                continue
            self._frames.append(frame)
            self._wake.set()

    # ------------------------------------------------------------------ serving

    async def _work(self) -> None:
        """Serve the queued frames in order, one response at a time."""
        while True:
            frame = await self._next()
            if frame is None:
                return
            try:
                await self._serve(frame)
            except _Gone:
                return
            except Exception as exc:  # noqa: BLE001 - a bug fails one turn, reported in OpenAI's shape; the rest goes on
                _log.error("a WebSocket event failed", exc_info=exc)
                failure = ApiError(500, "The server failed to handle the event.", code="server_error")
                try:
                    await self._send_frame(_error_frame(failure, self.rid))
                except _Gone:
                    return

    async def _next(self) -> str | ApiError | None:
        """The next frame, once there is one; ``None``: the connection is over (client gone, or time is up)."""
        while True:
            if self._gone:
                return None
            if time.monotonic() >= self._deadline:
                await self._end_at_limit()
                return None
            if self._frames:
                return self._frames.popleft()
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._deadline - time.monotonic())

    async def _end_at_limit(self) -> None:
        message = (
            f"Responses websocket connection limit reached ({MAX_CONNECTION_SECONDS:g} seconds). "
            "Create a new websocket connection to continue."
        )
        with contextlib.suppress(_Gone):
            refusal = ApiError(400, message, code="websocket_connection_limit_reached")
            await self._send_frame(_error_frame(refusal, self.rid))
            await self._close(_CLOSE_NORMAL)

    async def _serve(self, frame: str | ApiError) -> None:
        if isinstance(frame, ApiError):
            await self._send_frame(_error_frame(frame, self.rid))
            return
        outcome = await self.app.in_thread(self._start, frame)
        if isinstance(outcome, dict):
            await self._send_frame(outcome)
            return
        if self._gone:  # the client left while the response was created
            await self._close_stream(outcome.stream)
            raise _Gone
        pumping = self._pumping = asyncio.ensure_future(self._pump(outcome))
        try:
            await asyncio.wait((pumping,))
        finally:
            self._pumping = None
            await self._close_stream(outcome.stream)
        if pumping.cancelled():  # the client left mid-response
            raise _Gone
        exc = pumping.exception()
        if exc is not None:
            raise exc
        self._remember(outcome)

    async def _pump(self, turn: _Turn) -> None:
        async for event in turn.stream.aevents():
            await self._send_frame(event if turn.lane is None else {**event, "stream_id": turn.lane})

    async def _close_stream(self, stream: LiveEvents) -> None:
        """Free the stream's slot; a run whose events were not all sent is abandoned (it ends ``failed``)."""
        await self.app.in_thread(stream.close)

    # ------------------------------------------------------------------ one frame (in a handler thread)

    def _start(self, text: str) -> _Turn | dict[str, Any]:
        """Start the response a frame asks for, or the one frame that answers it (a refusal); never raises."""
        lane: str | None = None
        parent: str | None = None
        try:
            body = decode_body(text.encode())
            if not isinstance(body, dict):
                message = 'A WebSocket event must be a JSON object, such as {"type": "response.create", ...}.'
                raise ApiError(400, message, code="invalid_json")
            kind = body.get("type")
            if kind == "response.steer":
                return _steer_failed(body)
            if kind != "response.create":
                given = "The event has no 'type'" if kind is None else f"Unknown event type {describe(kind)}"
                message = f"{given}: this server accepts 'response.create' and 'response.steer'."
                raise ApiError(400, message, param="type", code="unknown_event_type")
            lane = _lane(body.get("stream_id"))
            previous = body.get("previous_response_id")
            parent = previous if isinstance(previous, str) else None
            return self._create(body, lane)
        except Exception as exc:  # noqa: BLE001 - every refusal is one error event (a bug's is logged)
            if parent is not None:
                self._forget(parent, lane)
            return _error_frame(_api_error(exc), self.rid, lane)

    def _create(self, body: dict[str, Any], lane: str | None) -> _Turn:
        if body.get("background"):
            message = "'background' is not supported over WebSocket: every response streams on the connection."
            raise ApiError(400, message, param="background", code="unsupported_parameter")
        generate = body.get("generate")
        if generate is not None and not isinstance(generate, bool):
            raise ApiError(400, "'generate' must be a boolean.", param="generate", code="invalid_type")
        request = parse_create({name: value for name, value in body.items() if name not in _NOT_CREATE_FIELDS})
        request = attrs.evolve(request, stream=True)
        parent = request.previous_response_id
        remembered = None if parent is None else self._remembered.get(parent)
        if remembered is not None and parent is not None:
            if request.store:
                message = (
                    f"Response {parent!r} was not stored (store: false), so a stored response cannot continue it; "
                    "continue it with store: false."
                )
                raise ApiError(400, message, param="previous_response_id", code="invalid_previous_response")
            self._remembered.move_to_end(parent)
        history: tuple[dict[str, Any], ...] | None = None  # a stored response's: the app reads it
        if remembered is not None:
            history = remembered.context
        elif not request.store:  # read here, to be remembered with the response
            history = chain_history(self.app.store, self.owner, parent)
        reply = self.app.create(self.owner, request, history, _say_nothing if generate is False else None)
        if not isinstance(reply.stream, LiveEvents):  # a streamed, foreground create always has one
            raise TypeError(f"the app replied to a streamed create with {type(reply.stream).__name__}")
        return _Turn(reply.stream, lane, parent, history)

    # ------------------------------------------------------------------ the connection's unstored responses

    def _remember(self, turn: _Turn) -> None:
        """After a response: remember it if it is unstored; forget its parent if it failed."""
        record = turn.stream.run.record
        if turn.parent is not None and record.status is ResponseStatus.FAILED:
            self._forget(turn.parent, turn.lane)
        if turn.history is None or not turn.stream.done:
            return
        # What the store would give for a stored chain: each response's input items then its output items (frozen).
        self._remembered[record.id] = _Remembered(turn.history + record.input + record.output, turn.lane)
        self._remembered.move_to_end(record.id)
        while len(self._remembered) > MAX_CACHED:
            self._remembered.popitem(last=False)

    def _forget(self, id: str, lane: str | None) -> None:
        """A continuation of ``id`` in ``lane`` failed: forget ``id`` unless it ran in another lane."""
        remembered = self._remembered.get(id)
        if remembered is not None and remembered.lane == lane:
            del self._remembered[id]

    # ------------------------------------------------------------------ sending

    async def _send_frame(self, frame: Mapping[str, Any]) -> None:
        """Send one event as a JSON text frame.

        Raises:
            _Gone: the client has left, or the connection is closed.
        """
        text = json.dumps(frame, separators=(",", ":"), ensure_ascii=False)
        async with self._sending:
            if self._closed:
                raise _Gone
            try:
                await self._send({"type": "websocket.send", "text": text})
            except OSError:  # the client has gone (uvicorn's ClientDisconnected is one)
                self._stop()
                raise _Gone from None

    async def _close(self, code: int) -> None:
        async with self._sending:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(OSError):
                await self._send({"type": "websocket.close", "code": code})


def _lane(value: object) -> str | None:
    """The ``stream_id`` of a ``response.create`` (``None``: the default lane).

    Raises:
        ApiError: ``400`` ``invalid_stream_id``: not 1 to 256 characters of ``A-Za-z0-9_.-``.
    """
    if value is None:
        return None
    if not isinstance(value, str) or not _STREAM_ID.fullmatch(value):
        message = f"'stream_id' must be 1 to 256 characters of A-Z, a-z, 0-9, '_', '.' and '-', not {describe(value)}."
        raise ApiError(400, message, param="stream_id", code="invalid_stream_id")
    return value


def _api_error(exc: Exception) -> ApiError:
    """The refusal ``exc`` means; a bug is logged and becomes a ``500``."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ResponseStoreError):
        return store_error(exc)
    _log.error("a WebSocket event failed", exc_info=exc)
    return ApiError(500, "The server failed to handle the event.", code="server_error")


def _error_frame(exc: ApiError, rid: str, lane: str | None = None) -> dict[str, Any]:
    """The ``error`` event of a refusal: ``status`` and OpenAI's error object (a ``500``'s names ``rid``)."""
    error = exc.body(rid)["error"]
    if error["code"] is None:
        error["code"] = exc.type
    frame: dict[str, Any] = {"type": "error", "status": exc.status, "error": error}
    if lane is not None:
        frame["stream_id"] = lane
    return frame


def _steer_failed(body: Mapping[str, Any]) -> dict[str, Any]:
    """The answer to ``response.steer``: this server cannot steer a response."""
    previous, given = body.get("previous_response_id"), body.get("input")
    return {
        "type": "response.steer.failed",
        "sequence_number": 0,
        "error": {
            "type": "invalid_request_error",
            "code": "steering_not_supported",
            "message": "This server cannot steer a response: send the input in a response.create that continues it.",
        },
        "steer": {
            "previous_response_id": previous if isinstance(previous, str) else "",
            "input": given if isinstance(given, (str, list)) else "",
        },
    }


def _say_nothing(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterable[Chunk]:
    """The model of a warmup (``generate: false``): the response completes with no output."""
    return ()
