"""The Responses API as a plain WSGI application over any store: :func:`make_app`.

The app does everything of the API but generation: it parses and checks requests, stores responses, chains
``previous_response_id``, runs background responses in a bounded pool of worker threads, cancels them, streams
events as server-sent events (and replays the stored ones), maps bearer keys to owners and answers errors in
OpenAI's shape. The server author supplies only ``generate``, the model. It uses nothing but the public store
API, so it serves every backend.

Routes (all under ``/v1``)::

    POST   /v1/responses                      create (model, input, instructions, previous_response_id, store,
                                              background, stream, metadata, tools, sampling parameters)
    GET    /v1/responses/{id}                 the response; ?stream=true&starting_after=N replays its events
    DELETE /v1/responses/{id}                 {"id": ..., "object": "response", "deleted": true}
    POST   /v1/responses/{id}/cancel          cancel a background response
    GET    /v1/responses/{id}/input_items     one page of input items (after, before, limit 1-100, order)
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

import attrs

from . import _wire
from ._contract import BaseStore
from ._ids import new_item_id, new_response_id
from ._records import ResponseRecord, ResponseStatus
from .errors import (
    ChainError,
    EventLogClosed,
    InvalidArgument,
    InvalidTransition,
    ResponseExists,
    ResponseNotFound,
    ResponseStoreError,
    StoreFull,
    VersionConflict,
    WaitTimeout,
)

__all__ = ["DEFAULT_MAX_BODY_BYTES", "Generate", "ResponsesApp", "Unauthorized", "Usage", "echo", "make_app"]

_log = logging.getLogger("responsestore.wsgi")

#: The largest request body the app reads (1 MiB); a larger one is refused with ``413``.
DEFAULT_MAX_BODY_BYTES = 1 << 20

Environ = Mapping[str, Any]
StartResponse = Callable[..., Any]


@attrs.frozen
class Usage:
    """Token counts a ``generate`` callable may yield (once, anywhere) to set the response's ``usage``."""

    input_tokens: int
    output_tokens: int


#: The model: called with the conversation (every earlier input and output item of the chain, then this
#: request's input items, as plain dicts) and the request (the parsed JSON body); yields text deltas
#: (``str``, appended to one assistant message), complete output items (mappings, such as a
#: ``function_call``) and at most one :class:`Usage`. Raising fails the response.
Generate = Callable[[Sequence[dict[str, Any]], Mapping[str, Any]], Iterable["str | Mapping[str, Any] | Usage"]]


class Unauthorized(Exception):
    """Raised by an ``authenticate`` callable to refuse a key: the request gets ``401``."""


def echo(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[str | Usage]:
    """The built-in demo model ``echo``: replies with the text of the last user message, one delta per word.

    Usage counts words: the words of every text in the conversation in, the words of the reply out.
    """
    texts = [_text_of(item) for item in conversation]
    reply = next((_text_of(item) for item in reversed(conversation) if item.get("role") == "user"), "")
    words = reply.split()
    for index, word in enumerate(words):
        yield word if index == 0 else " " + word
    yield Usage(input_tokens=sum(len(text.split()) for text in texts), output_tokens=len(words))


def _text_of(item: Mapping[str, Any]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):  # stored items hold their lists as tuples
        return " ".join(
            part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


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


class _Stopped(Exception):
    """The response can no longer change: it was cancelled, deleted or finished elsewhere."""


class _Run:
    """One generation: turns what ``generate`` yields into stream events and the final record."""

    def __init__(self, app: ResponsesApp, record: ResponseRecord, conversation: Sequence[dict[str, Any]]) -> None:
        self.app = app
        self.record = record
        self.conversation = conversation
        self.sequence = 0

    # Overridden by the stored run; the unstored one keeps everything in this object.
    def emit(self, event: dict[str, Any]) -> dict[str, Any]:
        number = self.sequence
        self.sequence += 1
        event["sequence_number"] = number
        return event

    def begin(self) -> dict[str, Any]:
        self.record = attrs.evolve(self.record, status=ResponseStatus.IN_PROGRESS)
        return self.emit(_wire.lifecycle_event("in_progress", _wire.response_json(self.record)))

    def finish(self, status: ResponseStatus, **changes: Any) -> dict[str, Any]:
        self.record = attrs.evolve(self.record, status=status, **changes)
        return self.emit(_wire.lifecycle_event(status.value, _wire.response_json(self.record)))

    def events(self, request: Mapping[str, Any]) -> Iterator[dict[str, Any]]:  # noqa: PLR0912 - one loop over chunk kinds
        """Generate, yielding every event as it is logged; ends with the final one."""
        output: list[dict[str, Any]] = []
        usage: Usage | None = None
        message: dict[str, Any] | None = None
        text: list[str] = []
        try:
            yield self.begin()
            for chunk in self.app.generate(self.conversation, request):
                if self.app.stopping.is_set():
                    raise RuntimeError("the server stopped before the response finished")
                if isinstance(chunk, str):
                    if message is None:
                        message = _wire.message_item(new_item_id(), [], "in_progress")
                        text = []
                        yield self.emit(_wire.output_item_event("added", len(output), message))
                        yield self.emit(
                            _wire.content_part_event("added", message["id"], len(output), 0, _wire.text_part(""))
                        )
                    text.append(chunk)
                    yield self.emit(_wire.output_text_delta_event(message["id"], len(output), 0, chunk))
                elif isinstance(chunk, Usage):
                    usage = chunk
                elif isinstance(chunk, Mapping):
                    if message is not None:
                        yield from self._close_message(message, "".join(text), output)
                        message = None
                    item = _wire.item_json({"id": new_item_id(), **chunk})
                    yield self.emit(_wire.output_item_event("added", len(output), {**item, "status": "in_progress"}))
                    yield self.emit(_wire.output_item_event("done", len(output), item))
                    output.append(item)
                else:
                    raise TypeError(f"generate yielded {type(chunk).__name__}, not str, a mapping or Usage")
            if message is not None:
                yield from self._close_message(message, "".join(text), output)
        except _Stopped:
            return
        except Exception:  # noqa: BLE001 - any failure of the model fails the response, as OpenAI reports it
            _log.exception("generating response %s failed", self.record.id)
            error = {"code": "server_error", "message": "The model failed while generating the response."}
            with contextlib.suppress(_Stopped):  # cancelled or deleted meanwhile: nothing left to report
                yield self.finish(ResponseStatus.FAILED, error=error, completed_at=time.time())
            return
        counts = None
        if usage is not None:
            counts = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
        try:
            yield self.finish(ResponseStatus.COMPLETED, output=output, usage=counts, completed_at=time.time())
        except _Stopped:
            return

    def _close_message(
        self, message: dict[str, Any], text: str, output: list[dict[str, Any]]
    ) -> Iterator[dict[str, Any]]:
        index = len(output)
        part = _wire.text_part(text)
        yield self.emit(_wire.output_text_done_event(message["id"], index, 0, text))
        yield self.emit(_wire.content_part_event("done", message["id"], index, 0, part))
        done = _wire.message_item(message["id"], [part], "completed")
        yield self.emit(_wire.output_item_event("done", index, done))
        output.append(done)


class _StoredRun(_Run):
    """A generation whose events and final record go to the store, so they can be read and replayed."""

    def __init__(
        self, app: ResponsesApp, record: ResponseRecord, conversation: Sequence[dict[str, Any]], owner: str | None
    ) -> None:
        super().__init__(app, record, conversation)
        self.owner = owner

    def emit(self, event: dict[str, Any]) -> dict[str, Any]:
        try:
            number = self.app.store.append_event(self.record.id, event, owner=self.owner)
        except (EventLogClosed, ResponseNotFound) as exc:
            raise _Stopped from exc
        event["sequence_number"] = number
        return event

    def begin(self) -> dict[str, Any]:
        store, id, owner = self.app.store, self.record.id, self.owner
        if self.record.status is ResponseStatus.IN_PROGRESS:
            return super().begin()
        snapshot = attrs.evolve(self.record, status=ResponseStatus.IN_PROGRESS)
        event = _wire.lifecycle_event("in_progress", _wire.response_json(snapshot))
        try:
            self.record = store.start(id, event=event, owner=owner)
        except (InvalidTransition, ResponseNotFound) as exc:
            raise _Stopped from exc
        return self._last_event()

    def _last_event(self) -> dict[str, Any]:
        return self.app.store.events(self.record.id, starting_after=None, owner=self.owner)[-1]

    def finish(self, status: ResponseStatus, **changes: Any) -> dict[str, Any]:
        store, id, owner = self.app.store, self.record.id, self.owner
        snapshot = attrs.evolve(self.record, status=status, **changes)
        event = _wire.lifecycle_event(status.value, _wire.response_json(snapshot))
        try:
            if status is ResponseStatus.COMPLETED:
                self.record = store.complete(id, changes["output"], usage=changes["usage"], event=event, owner=owner)
            else:
                self.record = store.fail(id, changes["error"], event=event, owner=owner)
            return self._last_event()
        except (InvalidTransition, ResponseNotFound) as exc:
            raise _Stopped from exc


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
        background_workers: int,
        stream_timeout: float | None,
    ) -> None:
        self.store = store
        self.generate = generate
        self.authenticate = authenticate
        self.max_body_bytes = max_body_bytes
        self.stream_timeout = stream_timeout
        self.stopping = threading.Event()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=background_workers, thread_name_prefix="responsestore-background"
        )
        self._pending: dict[tuple[str | None, str], concurrent.futures.Future[None]] = {}
        self._pending_lock = threading.Lock()

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
        """Stop: running background responses fail at their next step, queued ones fail at once.

        Waits for the worker threads to finish.
        """
        with self._pending_lock:
            self.stopping.set()
            pending = list(self._pending.items())
        for (owner, id), future in pending:
            if future.cancel():
                error = {"code": "server_error", "message": "The server stopped before the response ran."}
                try:
                    self.store.fail(id, error, owner=owner)
                except ResponseStoreError:
                    _log.warning("could not mark %s failed on shutdown", id)
        self._pool.shutdown(wait=True)

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
                return self._json(200, self.store.cancel(id, owner=owner).to_openai())
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
            return self._json(200, record.to_openai())
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
        try:
            yield from self.store.stream(id, starting_after=after, timeout=self.stream_timeout, owner=owner)
        except (ResponseNotFound, WaitTimeout):
            return  # deleted meanwhile, or no progress for stream_timeout: the stream ends

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
        history: tuple[dict[str, Any], ...] = ()
        if request.previous_response_id is not None:
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
                    f"Previous response {previous.id!r} is still {previous.status.value}; continue it once it"
                    " has finished.",
                    param="previous_response_id",
                    code="invalid_previous_response",
                )
        fields: dict[str, Any] = {
            "instructions": request.instructions,
            "previous_response_id": request.previous_response_id,
            "tools": request.tools,
            "metadata": request.metadata,
            "extra": request.extra,
        }
        try:
            if not request.store:
                record = ResponseRecord(
                    id=new_response_id(),
                    created_at=time.time(),
                    model=request.model,
                    status=ResponseStatus.IN_PROGRESS,
                    input=[{"role": "user", "content": request.input}]
                    if isinstance(request.input, str)
                    else request.input,
                    owner=owner,
                    **fields,
                )
                run: _Run = _Run(self, record, history + tuple(_wire.item_json(i) for i in record.input))
                created = run.emit(_wire.lifecycle_event("created", _wire.response_json(record)))
            else:
                status = ResponseStatus.QUEUED if request.background else ResponseStatus.IN_PROGRESS
                record = self.store.create(
                    request.model, request.input, background=request.background, status=status, owner=owner, **fields
                )
                conversation = history + tuple(_wire.item_json(item) for item in record.input)
                run = _StoredRun(self, record, conversation, owner)
                created = run.emit(_wire.lifecycle_event("created", _wire.response_json(record)))
        except InvalidArgument as exc:
            raise _store_error(exc, _param_of(str(exc))) from None
        if request.background:
            queued = run.emit(_wire.lifecycle_event("queued", _wire.response_json(record)))
            self._submit(owner, run, request.body)
            if request.stream:
                return self._sse(
                    _chain_events([created, queued], self._replay(owner, record.id, queued["sequence_number"]))
                )
            return self._json(200, record.to_openai())
        events = run.events(request.body)
        if request.stream:
            return self._sse(_Foreground(run, _chain_events([created], events)))
        for _ in events:
            pass
        return self._json(200, _wire.response_json(run.record))

    def _submit(self, owner: str | None, run: _Run, body: Mapping[str, Any]) -> None:
        key = (owner, run.record.id)

        def work() -> None:
            with self._pending_lock:
                self._pending.pop(key, None)
            for _ in run.events(body):
                pass

        with self._pending_lock:
            if not self.stopping.is_set():
                self._pending[key] = self._pool.submit(work)
                return
        error = {"code": "server_error", "message": "The server is stopping and runs no new background responses."}
        with contextlib.suppress(ResponseStoreError):  # cancelled or deleted meanwhile
            self.store.fail(run.record.id, error, owner=owner)
        raise _HTTPError(503, "The server is stopping and accepts no new background responses.", code="stopping")


def _param_of(message: str) -> str | None:
    for name in ("input", "metadata", "tools", "instructions", "previous_response_id"):
        if message.startswith(name):
            return name
    return None


def _chain_events(first: list[dict[str, Any]], rest: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield from first
    yield from rest


class _Foreground(Iterator[dict[str, Any]]):
    """The events of a streamed foreground response; closing it early fails the response."""

    def __init__(self, run: _Run, events: Iterator[dict[str, Any]]) -> None:
        self.run = run
        self.events = events
        self.done = False

    def __next__(self) -> dict[str, Any]:
        try:
            return next(self.events)
        except StopIteration:
            self.done = True
            raise

    def close(self) -> None:
        """The client went away before the end: stop generating and fail the response."""
        if self.done:
            return
        self.done = True
        close = getattr(self.events, "close", None)
        if close is not None:
            close()
        if isinstance(self.run, _StoredRun):
            error = {"code": "server_error", "message": "The client disconnected before the response finished."}
            with contextlib.suppress(ResponseStoreError):  # it finished, or was deleted, in the meantime
                self.run.app.store.fail(self.run.record.id, error, owner=self.run.owner)


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
    background_workers: int = 4,
    stream_timeout: float | None = 300.0,
) -> ResponsesApp:
    """A WSGI application serving the Responses API over ``store``.

    ``generate`` is the model (see :data:`Generate`; the default is :func:`echo`). ``authenticate`` maps the
    bearer key (``None`` when the request has none) to the owner whose responses the request sees, or raises
    :class:`Unauthorized` (``401``); without it every request is accepted as owner ``None``. A body over
    ``max_body_bytes`` is refused with ``413``. Background responses run in a pool of ``background_workers``
    threads. A replayed stream ends when no event arrives for ``stream_timeout`` seconds (``None``: never).

    Raises:
        InvalidArgument: an argument is malformed.
    """
    if not isinstance(store, BaseStore):
        raise InvalidArgument(f"store must be a responsestore store, not {type(store).__name__}")
    if not callable(generate):
        raise InvalidArgument("generate must be callable")
    if authenticate is not None and not callable(authenticate):
        raise InvalidArgument("authenticate must be callable or None")
    for name, value in (("max_body_bytes", max_body_bytes), ("background_workers", background_workers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgument(f"{name} must be an int >= 1, not {value!r}")
    if stream_timeout is not None and (
        isinstance(stream_timeout, bool) or not isinstance(stream_timeout, (int, float)) or not stream_timeout > 0
    ):
        raise InvalidArgument(f"stream_timeout must be a positive number or None, not {stream_timeout!r}")
    return ResponsesApp(
        store,
        generate=generate,
        authenticate=authenticate,
        max_body_bytes=max_body_bytes,
        background_workers=background_workers,
        stream_timeout=stream_timeout,
    )
