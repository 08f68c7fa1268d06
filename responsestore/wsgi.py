"""The Responses API as a plain WSGI application over any store: :func:`make_app`.

The app does everything of the API but generation: it parses and checks requests, stores responses, chains
``previous_response_id``, cancels background responses, streams events as server-sent events (and replays the
stored ones), maps bearer keys to owners and answers errors in OpenAI's shape. Running a response (calling the
model, logging its events in batches, holding its lease, always ending it) is the run layer's
(:mod:`responsestore.server._runs`); this module only moves bytes between WSGI and it. The server author supplies
only ``generate``, the model. It uses nothing but the public store API, so it serves every backend.

Routes (all under ``/v1``)::

    POST   /v1/responses                      create (model, input, instructions, previous_response_id, store,
                                              background, stream, metadata, tools, sampling parameters)
    GET    /v1/responses/{id}                 the response; ?stream=true&starting_after=N replays its events
    DELETE /v1/responses/{id}                 {"id": ..., "object": "response", "deleted": true}
    POST   /v1/responses/{id}/cancel          cancel a background response
    GET    /v1/responses/{id}/input_items     one page of input items (after, before, limit 1-100, order)
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl

import attrs

from . import _wire
from ._contract import BaseStore
from ._ids import new_response_id
from ._records import ResponseRecord, ResponseStatus
from .errors import (
    ChainError,
    InvalidArgument,
    InvalidTransition,
    ResponseExists,
    ResponseNotFound,
    ResponseStoreError,
    StoreFull,
    VersionConflict,
    WaitTimeout,
)
from .server._models import ArgumentsDelta, FunctionCall, Generate, Incomplete, Usage, echo
from .server._references import resolve_references
from .server._runs import DEFAULT_SETTINGS, Run, Runner, RunSettings

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "ArgumentsDelta",
    "FunctionCall",
    "Generate",
    "Incomplete",
    "ResponsesApp",
    "Unauthorized",
    "Usage",
    "echo",
    "make_app",
]

_log = logging.getLogger("responsestore.wsgi")

#: The largest request body the app reads (1 MiB); a larger one is refused with ``413``.
DEFAULT_MAX_BODY_BYTES = 1 << 20

Environ = Mapping[str, Any]
StartResponse = Callable[..., Any]


class Unauthorized(Exception):
    """Raised by an ``authenticate`` callable to refuse a key: the request gets ``401``."""


class _HTTPError(Exception):
    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None, allow: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.allow = allow  # the Allow header of a 405


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
_TYPES = {401: "authentication_error", 500: "server_error", 503: "server_error"}


def _store_error(exc: ResponseStoreError, param: str | None = None) -> _HTTPError:
    if isinstance(exc, ResponseNotFound):
        return _HTTPError(404, f"No response found with id {exc.id!r}.", param=param, code="not_found")
    if isinstance(exc, (InvalidTransition, VersionConflict, ResponseExists)):
        return _HTTPError(409, str(exc), param=param, code="conflict")
    if isinstance(exc, ChainError):
        return _HTTPError(400, str(exc), param="previous_response_id", code="invalid_previous_response")
    if isinstance(exc, StoreFull):
        return _HTTPError(503, str(exc), code="store_full")
    if isinstance(exc, InvalidArgument):
        return _HTTPError(400, str(exc), param=param, code="invalid_value")
    return _HTTPError(500, "The store failed to handle the request.", code="server_error")


# Request parameters echoed back in the Response, with the JSON types each accepts.
_NUMBER = (int, float)
_ECHOED: Mapping[str, tuple[type, ...]] = {
    "temperature": _NUMBER,
    "top_p": _NUMBER,
    "presence_penalty": _NUMBER,
    "frequency_penalty": _NUMBER,
    "top_logprobs": (int,),
    "max_output_tokens": (int, type(None)),
    "max_tool_calls": (int, type(None)),
    "parallel_tool_calls": (bool,),
    "tool_choice": (str, dict),
    "truncation": (str,),
    "text": (dict,),
    "reasoning": (dict, type(None)),
    "service_tier": (str,),
    "safety_identifier": (str, type(None)),
    "prompt_cache_key": (str, type(None)),
    "user": (str, type(None)),
}
# Accepted and acted on (or harmlessly ignored: include, stream_options) but not echoed as extra fields.
_OTHER = frozenset(
    {
        "model",
        "input",
        "instructions",
        "previous_response_id",
        "store",
        "background",
        "stream",
        "metadata",
        "tools",
        "include",
        "stream_options",
    }
)
_TRUNCATION = frozenset({"auto", "disabled"})


@attrs.frozen
class _Request:
    model: str
    input: Any
    instructions: str | None
    previous_response_id: str | None
    store: bool
    background: bool
    stream: bool
    metadata: Mapping[str, str] | None
    tools: list[Any]
    extra: dict[str, Any]
    body: dict[str, Any]


def _optional(body: Mapping[str, Any], name: str, kinds: tuple[type, ...], default: Any = None) -> Any:
    value = body.get(name, default)
    if value is None and default is None:
        return None
    if isinstance(value, bool) and bool not in kinds:
        raise _HTTPError(400, f"{name!r} must be {_kinds(kinds)}, not a boolean.", param=name, code="invalid_type")
    if not isinstance(value, kinds):
        raise _HTTPError(
            400, f"{name!r} must be {_kinds(kinds)}, not {type(value).__name__}.", param=name, code="invalid_type"
        )
    return value


def _kinds(kinds: tuple[type, ...]) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", dict: "an object"}
    names[list] = "an array"
    return " or ".join(names.get(kind, "null") for kind in kinds)


def _parse_create(body: object) -> _Request:
    if not isinstance(body, dict):
        raise _HTTPError(400, "The request body must be a JSON object.", code="invalid_json")
    unknown = sorted(set(body) - _OTHER - set(_ECHOED))
    if unknown:
        raise _HTTPError(400, f"Unknown parameter: {unknown[0]!r}.", param=unknown[0], code="unknown_parameter")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _HTTPError(400, "'model' is required and must be a non-empty string.", param="model")
    if "input" not in body:
        raise _HTTPError(400, "'input' is required: a string or a list of items.", param="input")
    value = body["input"]
    if not isinstance(value, (str, list)):
        raise _HTTPError(400, "'input' must be a string or a list of items.", param="input", code="invalid_type")
    extra: dict[str, Any] = {}
    for name, kinds in _ECHOED.items():
        if name in body:
            extra[name] = _optional(body, name, kinds, None)
    if extra.get("truncation", "disabled") not in _TRUNCATION:
        raise _HTTPError(400, "'truncation' must be 'auto' or 'disabled'.", param="truncation")
    for name in ("max_output_tokens", "max_tool_calls", "top_logprobs"):
        if isinstance(extra.get(name), int) and extra[name] < 0:
            raise _HTTPError(400, f"{name!r} must not be negative.", param=name)
    store = _optional(body, "store", (bool,), default=True)
    background = _optional(body, "background", (bool,), default=False)
    if background and not store:
        raise _HTTPError(400, "A background response must be stored: 'background' needs 'store': true.", param="store")
    if not store:
        extra["store"] = False
    tools = _optional(body, "tools", (list,), [])
    return _Request(
        model=model,
        input=value,
        instructions=_optional(body, "instructions", (str,), None),
        previous_response_id=_optional(body, "previous_response_id", (str,), None),
        store=store,
        background=background,
        stream=_optional(body, "stream", (bool,), default=False),
        metadata=_optional(body, "metadata", (dict,), None),
        tools=tools,
        extra=extra,
        body=body,
    )


_ROUTES = [
    (re.compile(r"/v1/responses"), ("POST",), "create"),
    (re.compile(r"/v1/responses/([^/]+)"), ("GET", "DELETE"), "response"),
    (re.compile(r"/v1/responses/([^/]+)/cancel"), ("POST",), "cancel"),
    (re.compile(r"/v1/responses/([^/]+)/input_items"), ("GET",), "input_items"),
]


class ResponsesApp:
    """The WSGI application :func:`make_app` returns; call :meth:`close` when the server stops."""

    def __init__(
        self,
        store: BaseStore,
        *,
        generate: Generate,
        authenticate: Callable[[str | None], str | None] | None,
        max_body_bytes: int,
        stream_timeout: float | None,
        settings: RunSettings,
    ) -> None:
        self.store = store
        self.generate = generate
        self.authenticate = authenticate
        self.max_body_bytes = max_body_bytes
        self.stream_timeout = stream_timeout
        self.settings = settings
        self.runner = Runner(store, generate, settings)

    # ------------------------------------------------------------------ WSGI

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request (the WSGI protocol)."""
        try:
            status, headers, body = self._dispatch(environ)
        except _HTTPError as exc:
            status, headers, body = self._error(exc)
        except ResponseStoreError as exc:
            status, headers, body = self._error(_store_error(exc))
        start_response(status, headers)
        return body

    def close(self) -> None:
        """Stop: no new response starts; running ones may finish within the grace period, then end ``failed``.

        Responses still queued end ``failed`` at once. Waits for the runs (at most about ``stop_grace`` seconds).
        """
        self.runner.close()

    def _error(self, exc: _HTTPError) -> tuple[str, list[tuple[str, str]], Iterable[bytes]]:
        body = {
            "error": {
                "message": exc.message,
                "type": _TYPES.get(exc.status, "invalid_request_error"),
                "param": exc.param,
                "code": exc.code,
            }
        }
        headers = []
        if exc.status == 405:
            headers.append(("Allow", exc.allow))
        if exc.status == 401:
            headers.append(("WWW-Authenticate", 'Bearer realm="responsestore"'))
        return self._json(exc.status, body, headers)

    @staticmethod
    def _json(
        status: int, data: object, headers: list[tuple[str, str]] | None = None
    ) -> tuple[str, list[tuple[str, str]], Iterable[bytes]]:
        payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        all_headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        return f"{status} {_REASONS[status]}", all_headers + (headers or []), [payload]

    def _sse(self, events: Iterator[dict[str, Any]]) -> tuple[str, list[tuple[str, str]], Iterable[bytes]]:
        def body() -> Iterator[bytes]:
            for event in events:
                data = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
                yield f"event: {event['type']}\ndata: {data}\n\n".encode()

        headers = [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no")]
        return "200 OK", headers, _Closing(body(), events)

    def _dispatch(self, environ: Environ) -> tuple[str, list[tuple[str, str]], Iterable[bytes]]:
        path = environ.get("PATH_INFO", "") or "/"
        method = environ.get("REQUEST_METHOD", "GET").upper()
        for pattern, methods, name in _ROUTES:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if method not in methods:
                raise _HTTPError(
                    405, f"{method} is not allowed on {path}.", code="method_not_allowed", allow=", ".join(methods)
                )
            owner = self._owner(environ)
            query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
            if name == "create":
                return self._create(owner, self._body(environ))
            id = match.group(1)
            if name == "cancel":
                return self._json(200, _wire.response_frozen(self.store.cancel(id, status_event=True, owner=owner)))
            if name == "input_items":
                return self._input_items(owner, id, query)
            if method == "DELETE":
                self.store.delete(id, owner=owner)
                return self._json(200, {"id": id, "object": "response", "deleted": True})
            return self._retrieve(owner, id, query)
        raise _HTTPError(404, f"No route for {method} {path}.", code="not_found")

    def _owner(self, environ: Environ) -> str | None:
        header = environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, key = header.partition(" ")
        if header and scheme.lower() != "bearer":
            raise _HTTPError(401, "The Authorization header must be 'Bearer <key>'.", code="invalid_api_key")
        key = key.strip()
        if self.authenticate is None:
            return None
        try:
            return self.authenticate(key or None)
        except Unauthorized:
            raise _HTTPError(401, "Incorrect or missing API key.", code="invalid_api_key") from None

    def _body(self, environ: Environ) -> object:
        length_text = environ.get("CONTENT_LENGTH") or "0"
        try:
            length = int(length_text)
        except ValueError:
            raise _HTTPError(400, "Content-Length is not a number.", code="invalid_request") from None
        if length > self.max_body_bytes:
            raise _HTTPError(
                413,
                f"The request body is {length} bytes; at most {self.max_body_bytes} are accepted.",
                code="request_too_large",
            )
        raw = environ["wsgi.input"].read(length) if length > 0 else b""
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise _HTTPError(400, "The request body is not valid JSON.", code="invalid_json") from None

    # ------------------------------------------------------------------ routes

    def _retrieve(
        self, owner: str | None, id: str, query: Mapping[str, str]
    ) -> tuple[str, list[tuple[str, str]], Iterable[bytes]]:
        stream = query.get("stream", "false").lower()
        if stream not in ("true", "false"):
            raise _HTTPError(400, "'stream' must be true or false.", param="stream")
        record = self.store.get(id, owner=owner)
        if stream == "false":
            return self._json(200, _wire.response_frozen(record))
        after = None
        if "starting_after" in query:
            try:
                after = int(query["starting_after"])
            except ValueError:
                raise _HTTPError(400, "'starting_after' must be an integer.", param="starting_after") from None
            if after < 0:
                raise _HTTPError(400, "'starting_after' must not be negative.", param="starting_after")
        return self._sse(self._replay(owner, id, after))

    def _replay(self, owner: str | None, id: str, after: int | None) -> Iterator[dict[str, Any]]:
        """Follow a response's stored events to its final one.

        A stream that cannot end with it (deleted meanwhile, no progress for ``stream_timeout``, the store failing)
        ends with an ``error`` event.
        """
        number = -1 if after is None else after
        try:
            for event in self.store.stream(id, starting_after=after, timeout=self.stream_timeout, owner=owner):
                number = event["sequence_number"]
                yield event
            return
        except ResponseNotFound:
            message = "The response was deleted while it was streamed."
        except WaitTimeout:
            message = f"The response made no progress for {self.stream_timeout:g} seconds; the stream ends here."
        except ResponseStoreError:
            _log.warning("following response %s failed", id, exc_info=True)
            message = "The store failed while the response was streamed."
        yield _wire.error_event(message, number + 1)

    def _input_items(
        self, owner: str | None, id: str, query: Mapping[str, str]
    ) -> tuple[str, list[tuple[str, str]], Iterable[bytes]]:
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            raise _HTTPError(400, "'limit' must be an integer from 1 to 100.", param="limit") from None
        if not 1 <= limit <= 100:
            raise _HTTPError(400, "'limit' must be an integer from 1 to 100.", param="limit")
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise _HTTPError(400, "'order' must be 'asc' or 'desc'.", param="order")
        try:
            page = self.store.input_items(
                id, limit=limit, after=query.get("after"), before=query.get("before"), order=order, owner=owner
            )
        except InvalidArgument as exc:
            raise _store_error(exc, "after" if "after" in query else "before") from None
        return self._json(200, _wire.input_items_page(page))

    def _create(self, owner: str | None, body: object) -> tuple[str, list[tuple[str, str]], Iterable[bytes]]:
        request = _parse_create(body)
        history = self._history(owner, request)
        try:  # item_reference input items become the stored items they name
            request = attrs.evolve(request, input=resolve_references(self.store, request.input, history, owner=owner))
        except InvalidArgument as exc:
            raise _HTTPError(400, str(exc), param="input", code="invalid_value") from None
        if self.runner.stopping.is_set():
            raise _HTTPError(503, "The server is stopping and accepts no new responses.", code="stopping")
        record = self._new_record(owner, request)
        conversation = history + tuple(_wire.item_json(item) for item in record.input)
        live = request.stream and not request.background
        try:
            run = self.runner.start(record, conversation, request.body, stored=request.store, live=live)
        except (RuntimeError, ResponseStoreError) as exc:  # stopping, or the store failed: it must not stay active
            if request.store:
                with contextlib.suppress(ResponseStoreError):
                    self.store.fail(record.id, _STOPPED if isinstance(exc, RuntimeError) else _FAILED, owner=owner)
            if isinstance(exc, RuntimeError):
                raise _HTTPError(503, "The server is stopping and accepts no new responses.", code="stopping") from None
            raise
        if request.background:
            if request.stream:
                return self._sse(self._replay(owner, record.id, None))
            return self._json(200, _wire.response_frozen(record))
        if request.stream:
            return self._sse(_Live(run))
        try:
            final = run.result()
        except ResponseNotFound:
            raise _HTTPError(404, f"Response {record.id!r} was deleted while it ran.", code="not_found") from None
        return self._json(200, _wire.response_frozen(final))

    def _history(self, owner: str | None, request: _Request) -> tuple[dict[str, Any], ...]:
        """The items of the chain a request continues (none if it starts a conversation)."""
        if request.previous_response_id is None:
            return ()
        try:
            previous = self.store.get(request.previous_response_id, owner=owner)
            history = self.store.conversation(previous.id, owner=owner)
        except ResponseNotFound:
            raise _HTTPError(
                404,
                f"Previous response with id {request.previous_response_id!r} not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            ) from None
        if not previous.is_terminal:  # checked here for store=false too, which never reaches store.create
            raise _HTTPError(
                400,
                f"Previous response {previous.id!r} is still {previous.status.value}; continue it once it has"
                " finished.",
                param="previous_response_id",
                code="invalid_previous_response",
            )
        return history

    def _new_record(self, owner: str | None, request: _Request) -> ResponseRecord:
        """The response a request creates: stored with a lease for its run, or (``store: false``) only in memory."""
        fields: dict[str, Any] = {
            "instructions": request.instructions,
            "previous_response_id": request.previous_response_id,
            "tools": request.tools,
            "metadata": request.metadata,
            "extra": request.extra,
        }
        try:
            if request.store:
                return self.store.create(
                    request.model,
                    request.input,
                    background=request.background,
                    status=ResponseStatus.QUEUED if request.background else ResponseStatus.IN_PROGRESS,
                    lease=self.settings.lease_seconds,
                    holder=self.runner.holder(),
                    owner=owner,
                    **fields,
                )
            return ResponseRecord(
                id=new_response_id(),
                created_at=time.time(),
                model=request.model,
                status=ResponseStatus.IN_PROGRESS,
                input=[{"role": "user", "content": request.input}] if isinstance(request.input, str) else request.input,
                owner=owner,
                **fields,
            )
        except InvalidArgument as exc:
            raise _store_error(exc, _param_of(str(exc))) from None


_STOPPED = {"code": "server_error", "message": "The server is stopping and runs no new responses."}
_FAILED = {"code": "server_error", "message": "The server could not start the response."}


def _param_of(message: str) -> str | None:
    for name in ("input", "metadata", "tools", "instructions", "previous_response_id"):
        if message.startswith(name):
            return name
    return None


class _Live(Iterator[dict[str, Any]]):
    """The events of a streamed response as its run publishes them; closing it early abandons the run."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.events = run.live_events()
        self.done = False

    def __next__(self) -> dict[str, Any]:
        try:
            return next(self.events)
        except StopIteration:
            self.done = True
            raise

    def close(self) -> None:
        """The client went away before the end: the run stops and the response ends ``failed``."""
        if not self.done:
            self.done = True
            self.run.abandon("The client disconnected before the response finished.")


class _Closing:
    """A WSGI body that forwards ``close()`` to the event source (the server calls it when the client leaves)."""

    def __init__(self, body: Iterator[bytes], source: Iterator[dict[str, Any]]) -> None:
        self.body = body
        self.source = source

    def __iter__(self) -> Iterator[bytes]:
        return self.body

    def close(self) -> None:
        """End the stream (WSGI calls this once the response is over, finished or not)."""
        close = getattr(self.source, "close", None)
        if close is not None:
            close()


def make_app(
    store: BaseStore,
    *,
    generate: Generate = echo,
    authenticate: Callable[[str | None], str | None] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    background_workers: int = DEFAULT_SETTINGS.background_workers,
    stream_timeout: float | None = 300.0,
    lease_seconds: float = DEFAULT_SETTINGS.lease_seconds,
    sweep_interval: float = DEFAULT_SETTINGS.sweep_interval,
    flush_interval: float = DEFAULT_SETTINGS.flush_interval,
    flush_events: int = DEFAULT_SETTINGS.flush_events,
    model_timeout: float | None = DEFAULT_SETTINGS.model_timeout,
    stop_grace: float = DEFAULT_SETTINGS.stop_grace,
) -> ResponsesApp:
    """A WSGI application serving the Responses API over ``store``.

    ``generate`` is the model (see :data:`Generate`; the default is :func:`echo`). ``authenticate`` maps the
    bearer key (``None`` when the request has none) to the owner whose responses the request sees, or raises
    :class:`Unauthorized` (``401``); without it every request is accepted as owner ``None``. A body over
    ``max_body_bytes`` is refused with ``413``. Background responses run in a pool of ``background_workers``
    threads. A replayed stream ends when no event arrives for ``stream_timeout`` seconds (``None``: never).

    How responses run (see the serving docs): each holds a lease of ``lease_seconds`` (default 30), renewed while
    it runs; the app's sweeper ends, every ``sweep_interval`` seconds (default 5), the responses whose lease ran
    out (their server died), on any process sharing the store. A streamed or background response logs its events
    at most every ``flush_interval`` seconds (default 0.05) or every ``flush_events`` events (default 256); a
    non-streamed one logs them when it ends. A model that yields nothing for ``model_timeout`` seconds (default
    300; ``None``: no limit) fails its response. :meth:`ResponsesApp.close` lets running responses finish for
    ``stop_grace`` seconds (default 10), then ends them ``failed``.

    Raises:
        InvalidArgument: an argument is malformed.
    """
    if not isinstance(store, BaseStore):
        raise InvalidArgument(f"store must be a responsestore store, not {type(store).__name__}")
    if not callable(generate):
        raise InvalidArgument("generate must be callable")
    if authenticate is not None and not callable(authenticate):
        raise InvalidArgument("authenticate must be callable or None")
    for name, value in (
        ("max_body_bytes", max_body_bytes),
        ("background_workers", background_workers),
        ("flush_events", flush_events),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgument(f"{name} must be an int >= 1, not {value!r}")
    for name, number, optional in (
        ("stream_timeout", stream_timeout, True),
        ("lease_seconds", lease_seconds, False),
        ("sweep_interval", sweep_interval, False),
        ("flush_interval", flush_interval, False),
        ("model_timeout", model_timeout, True),
        ("stop_grace", stop_grace, False),
    ):
        if number is None and optional:
            continue
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not 0 < number < 1e9:
            allowed = "a positive number or None" if optional else "a positive number"
            raise InvalidArgument(f"{name} must be {allowed}, not {number!r}")
    settings = RunSettings(
        lease_seconds=float(lease_seconds),
        sweep_interval=float(sweep_interval),
        flush_interval=float(flush_interval),
        flush_events=flush_events,
        model_timeout=None if model_timeout is None else float(model_timeout),
        stop_grace=float(stop_grace),
        background_workers=background_workers,
    )
    return ResponsesApp(
        store,
        generate=generate,
        authenticate=authenticate,
        max_body_bytes=max_body_bytes,
        stream_timeout=stream_timeout,
        settings=settings,
    )
