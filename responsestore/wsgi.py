"""The Responses API as a plain WSGI application over any store: :func:`make_app`.

The app does everything of the API but generation: it parses and checks requests, stores responses, chains
``previous_response_id``, cancels background responses, streams events as server-sent events (and replays the
stored ones), serves the model list, compacts conversations, counts input tokens, maps bearer keys to owners and
answers errors in OpenAI's shape. The rules live in the transport-free core (:mod:`responsestore.server`): request
checks, routes, models, runs (calling the model, logging its events in batches, holding its lease, always ending
it); this module only moves bytes between WSGI and it. The server author supplies only ``generate``, the model
(or several, by name). It uses nothing but the public store API, so it serves every backend.

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

import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import attrs

from . import _wire
from ._contract import BaseStore
from ._ids import new_response_id
from ._records import ResponseRecord, ResponseStatus
from .errors import InvalidArgument, ResponseNotFound, ResponseStoreError, WaitTimeout
from .server import _bodies, _conversations, _query, _routes
from .server._compaction import Compact, compaction_json, echo_compact
from .server._context import chain_history, conversation
from .server._errors import REASONS, ApiError, store_error
from .server._http import Cors, client_request_id, request_id
from .server._logs import REQUEST_ID, RequestLogger, serving
from .server._models import ArgumentsDelta, FunctionCall, Generate, Incomplete, ModelRegistry, Usage, echo
from .server._references import resolve_references
from .server._requests import CREATE_FIELDS, CreateRequest, decode_body, parse_compact, parse_create, parse_input_tokens
from .server._runs import DEFAULT_SETTINGS, SHUTTING_DOWN_QUEUED, Run, Runner, RunSettings
from .server._streams import Slot, StreamSlots
from .server._tokens import CountTokens, estimate_tokens, input_tokens_json

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

_log = RequestLogger("responsestore.wsgi")

#: The largest request body the app reads (1 MiB); a larger one is refused with ``413``.
DEFAULT_MAX_BODY_BYTES = 1 << 20

#: The most server-sent event streams open at once (12, for ``serve``'s 16 request threads); one more is refused
#: with ``503`` until one ends. Keep it below your server's request threads, so that other requests keep some.
DEFAULT_MAX_STREAMS = 12

Environ = Mapping[str, Any]
StartResponse = Callable[..., Any]
_Reply = tuple[str, list[tuple[str, str]], Iterable[bytes]]


class Unauthorized(Exception):
    """Raised by an ``authenticate`` callable to refuse a key: the request gets ``401``."""


class ResponsesApp:
    """The WSGI application :func:`make_app` returns; call :meth:`close` when the server stops."""

    def __init__(
        self,
        store: BaseStore,
        *,
        models: ModelRegistry,
        compact: Compact,
        count_tokens: CountTokens,
        authenticate: Callable[[str | None], str | None] | None,
        cors: Cors | None,
        max_body_bytes: int,
        stream_timeout: float | None,
        max_streams: int | None,
        settings: RunSettings,
    ) -> None:
        self.store = store
        self.models = models
        self.compact = compact
        self.count_tokens = count_tokens
        self.authenticate = authenticate
        self.cors = cors
        self.max_body_bytes = max_body_bytes
        self.stream_timeout = stream_timeout
        self.streams = StreamSlots(max_streams)
        self.settings = settings
        self.runner = Runner(store, echo, settings)  # each run is given the generate of its model

    # ------------------------------------------------------------------ WSGI

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request (the WSGI protocol)."""
        rid = request_id(environ.get("HTTP_X_REQUEST_ID"))
        with serving(rid):  # what is logged while the request is served names it
            try:
                status, headers, body = self._dispatch(environ)
            except ApiError as exc:
                status, headers, body = self._error(exc, rid)
            except ResponseStoreError as exc:
                status, headers, body = self._error(store_error(exc), rid)
            except Exception:  # noqa: BLE001 - a bug must still answer in OpenAI's shape, with its request id logged
                _log.exception("the request failed")
                status, headers, body = self._error(
                    ApiError(500, "The server failed to handle the request.", code="server_error"), rid
                )
        if str(environ.get("REQUEST_METHOD", "")).upper() == "HEAD":  # the GET's headers, Content-Length included
            close = getattr(body, "close", None)
            if close is not None:
                close()
            body = []
        headers.append(("x-request-id", rid))
        client_id = client_request_id(environ.get("HTTP_X_CLIENT_REQUEST_ID"))
        if client_id is not None:
            headers.append(("x-client-request-id", client_id))
        if self.cors is not None:
            headers += self.cors.headers(environ.get("HTTP_ORIGIN"))
        start_response(status, headers)
        return body

    def close(self) -> None:
        """Stop: no new response starts; running ones may finish within the grace period, then end ``failed``.

        Responses still queued end ``failed`` at once. Waits for the runs (at most about ``stop_grace`` seconds).
        """
        self.runner.close()

    def _error(self, exc: ApiError, rid: str) -> _Reply:
        headers = []
        if exc.status == 405:
            headers.append(("Allow", exc.allow))
        if exc.status == 401:
            headers.append(("WWW-Authenticate", 'Bearer realm="responsestore"'))
        if exc.retry_after is not None:
            headers.append(("Retry-After", str(exc.retry_after)))
        return self._json(exc.status, exc.body(rid), headers)

    @staticmethod
    def _json(status: int, data: object, headers: list[tuple[str, str]] | None = None) -> _Reply:
        payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        all_headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        return f"{status} {REASONS[status]}", all_headers + (headers or []), [payload]

    def _sse(self, events: Iterator[dict[str, Any]], slot: Slot) -> _Reply:
        """A stream of ``events``; ``slot`` (its stream slot) is released when the server closes the body."""

        def body() -> Iterator[bytes]:
            for event in events:
                data = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
                yield f"event: {event['type']}\ndata: {data}\n\n".encode()

        headers = [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no")]
        return "200 OK", headers, _Closing(body(), events, slot)

    def _dispatch(self, environ: Environ) -> _Reply:
        path = environ.get("PATH_INFO", "") or "/"
        method = environ.get("REQUEST_METHOD", "GET").upper()
        _bodies.check_framing(environ.get("CONTENT_LENGTH") or None, environ.get("HTTP_TRANSFER_ENCODING"))
        if method == "OPTIONS":
            return self._options(environ, path)
        operation, args = _routes.match(method, path)
        owner = self._owner(environ)
        if operation in _conversations.OPERATIONS:
            data = _conversations.run(operation, self.store, owner, args, _params(environ), lambda: self._body(environ))
            return self._json(200, data)
        handler: Callable[[ResponsesApp, str | None, tuple[str, ...], Environ], _Reply] = _OPERATIONS[operation]
        return handler(self, owner, args, environ)

    def _options(self, environ: Environ, path: str) -> _Reply:
        """``OPTIONS``: ``200`` with ``Allow`` and no body.

        With CORS on, a preflight from an allowed origin also gets the CORS headers, one from another origin ``403``.
        ``200`` with ``Content-Length: 0``, not ``204``: waitress closes the connection after every ``204``.
        """
        found = _routes.find(path)
        if found is None:
            raise _routes.unknown_path("OPTIONS", path)
        route = found[0]
        headers = [("Allow", route.allow), ("Content-Length", "0")]
        origin = environ.get("HTTP_ORIGIN")
        if self.cors is None or origin is None or "HTTP_ACCESS_CONTROL_REQUEST_METHOD" not in environ:
            return f"200 {REASONS[200]}", headers, []
        if not self.cors.allows(origin):
            raise ApiError(403, "This origin may not call the API.", code="cors_origin_not_allowed")
        headers += self.cors.preflight(list(route.operations), environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS"))
        return f"200 {REASONS[200]}", headers, []

    def _owner(self, environ: Environ) -> str | None:
        header = environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, key = header.partition(" ")
        if header and scheme.lower() != "bearer":
            raise ApiError(401, "The Authorization header must be 'Bearer <key>'.", code="invalid_api_key")
        key = key.strip()
        if self.authenticate is None:
            return None
        try:
            return self.authenticate(key or None)
        except Unauthorized:
            raise ApiError(401, "Incorrect or missing API key.", code="invalid_api_key") from None
        except Exception as exc:  # noqa: BLE001 - a bug must still answer in OpenAI's shape, and log no key
            # Its message could hold the key (a KeyError, say): the log gets its type and traceback, not its message.
            redacted = _Redacted(f"{_name(exc)} (its message is not logged: it may hold the key)")
            _log.error("the authenticate callable failed", exc_info=(_Redacted, redacted, exc.__traceback__))
            raise ApiError(500, "The server failed to handle the request.", code="server_error") from None

    def _body(self, environ: Environ) -> object:
        """The JSON body, its type and size checked before a byte is read (see ``server._bodies``)."""
        length = _bodies.body_length(
            environ.get("CONTENT_LENGTH") or None,
            environ.get("HTTP_TRANSFER_ENCODING"),
            terminated=bool(environ.get("wsgi.input_terminated")),
            limit=self.max_body_bytes,
        )
        if length == 0:
            return decode_body(b"")
        _bodies.check_content_type(environ.get("CONTENT_TYPE"))
        return decode_body(_bodies.read_body(environ["wsgi.input"], length, self.max_body_bytes))

    # ------------------------------------------------------------------ routes

    def _retrieve(self, owner: str | None, args: tuple[str, ...], environ: Environ) -> _Reply:
        (id,) = args
        query = _params(environ)
        stream = query.get("stream", "false").lower()
        if stream not in ("true", "false"):
            raise ApiError(400, "'stream' must be true or false.", param="stream", code="invalid_value")
        record = self.store.get(id, owner=owner)
        if stream == "false":
            return self._json(200, _wire.response_frozen(record))
        after = _query.integer(query, "starting_after", None)
        return self._sse(self._replay(owner, id, after, _log.bound()), self.streams.acquire())

    def _delete(self, owner: str | None, args: tuple[str, ...], environ: Environ) -> _Reply:
        (id,) = args
        self.store.delete(id, owner=owner)
        return self._json(200, {"id": id, "object": "response", "deleted": True})

    def _cancel(self, owner: str | None, args: tuple[str, ...], environ: Environ) -> _Reply:
        (id,) = args
        return self._json(200, _wire.response_frozen(self.store.cancel(id, status_event=True, owner=owner)))

    def _replay(self, owner: str | None, id: str, after: int | None, log: RequestLogger) -> Iterator[dict[str, Any]]:
        """Follow a response's stored events to its final one (``log``: bound to the request that asked).

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
            log.warning("following response %s failed", id, exc_info=True)
            message = "The store failed while the response was streamed."
        yield _wire.error_event(message, number + 1)

    def _input_items(self, owner: str | None, args: tuple[str, ...], environ: Environ) -> _Reply:
        (id,) = args
        query = _params(environ)
        limit = _query.integer(query, "limit", 20, 1, 100)
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise ApiError(400, "'order' must be 'asc' or 'desc'.", param="order", code="invalid_value")
        try:
            page = self.store.input_items(
                id, limit=limit, after=query.get("after"), before=query.get("before"), order=order, owner=owner
            )
        except InvalidArgument as exc:
            raise store_error(exc, "after" if "after" in query else "before") from None
        return self._json(200, _wire.input_items_page(page))

    def _list_models(self, owner: str | None, args: tuple[str, ...], environ: Environ) -> _Reply:
        return self._json(200, self.models.list_json())

    def _retrieve_model(self, owner: str | None, args: tuple[str, ...], environ: Environ) -> _Reply:
        (name,) = args
        return self._json(200, self.models.model_json(name))

    def _compact(self, owner: str | None, args: tuple[str, ...], environ: Environ) -> _Reply:
        request = parse_compact(self._body(environ))
        model, _ = self.models.resolve(request.model)
        context = conversation(self.store, owner, request.previous_response_id, request.input)
        return self._json(200, compaction_json(self.compact, context, {**request.body, "model": model}))

    def _input_tokens(self, owner: str | None, args: tuple[str, ...], environ: Environ) -> _Reply:
        request = parse_input_tokens(self._body(environ))
        if request.model is not None:
            self.models.resolve(request.model)
        context = conversation(self.store, owner, request.previous_response_id, request.input, request.conversation)
        return self._json(200, input_tokens_json(self.count_tokens, context, request.body))

    def _create(self, owner: str | None, args: tuple[str, ...], environ: Environ) -> _Reply:
        request = parse_create(self._body(environ))
        model, generate = self.models.resolve(request.model)
        history = chain_history(self.store, owner, request.previous_response_id, request.conversation)
        try:  # item_reference input items become the stored items they name
            request = attrs.evolve(request, input=resolve_references(self.store, request.input, history, owner=owner))
        except InvalidArgument as exc:
            raise ApiError(400, str(exc), param="input", code="invalid_value") from None
        if self.runner.stopping.is_set():
            raise _shutting_down()
        if not request.stream:
            return self._start_response(owner, model, generate, request, history, slot=None)
        slot = self.streams.acquire()  # before anything is stored: a refused stream leaves nothing behind
        try:
            return self._start_response(owner, model, generate, request, history, slot=slot)
        except BaseException:
            slot.release()
            raise

    def _start_response(
        self,
        owner: str | None,
        model: str,
        generate: Generate,
        request: CreateRequest,
        history: tuple[dict[str, Any], ...],
        *,
        slot: Slot | None,
    ) -> _Reply:
        """Create the response ``request`` asks for and run it; a streamed one's reply holds ``slot``."""
        record = self._new_record(owner, model, request)
        context = history + tuple(_wire.item_json(item) for item in record.input)
        live = request.stream and not request.background
        try:
            run = self.runner.start(
                record,
                context,
                {**request.body, "model": model},
                stored=request.store,
                live=live,
                generate=generate,
                request_id=REQUEST_ID.get(),
            )
        except (RuntimeError, ResponseStoreError) as exc:  # stopping, or the store failed: it must not stay active
            if request.store:
                try:
                    self.store.fail(record.id, _STOPPED if isinstance(exc, RuntimeError) else _FAILED, owner=owner)
                except ResponseStoreError:
                    _log.exception("response %s could not be marked failed; its lease will end it", record.id)
            if isinstance(exc, RuntimeError):
                raise _shutting_down() from None
            raise
        if slot is not None:
            events = self._replay(owner, record.id, None, _log.bound()) if request.background else _Live(run)
            return self._sse(events, slot)
        if request.background:
            return self._json(200, _wire.response_frozen(record))
        try:
            final = run.result()
        except ResponseNotFound:
            raise ApiError(404, f"Response {record.id!r} was deleted while it ran.", code="not_found") from None
        return self._json(200, _wire.response_frozen(final))

    def _new_record(self, owner: str | None, model: str, request: CreateRequest) -> ResponseRecord:
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
                    model,
                    request.input,
                    background=request.background,
                    status=ResponseStatus.QUEUED if request.background else ResponseStatus.IN_PROGRESS,
                    lease=self.settings.lease_seconds,
                    holder=self.runner.holder(),
                    conversation=request.conversation,
                    owner=owner,
                    **fields,
                )
            return ResponseRecord(
                id=new_response_id(),
                created_at=time.time(),
                model=model,
                status=ResponseStatus.IN_PROGRESS,
                input=[{"role": "user", "content": request.input}] if isinstance(request.input, str) else request.input,
                owner=owner,
                **fields,
            )
        except InvalidArgument as exc:
            raise store_error(exc, _param_of(str(exc))) from None


_OPERATIONS: Mapping[str, Callable[[ResponsesApp, str | None, tuple[str, ...], Environ], _Reply]] = {
    "create": ResponsesApp._create,
    "compact": ResponsesApp._compact,
    "input_tokens": ResponsesApp._input_tokens,
    "retrieve": ResponsesApp._retrieve,
    "delete": ResponsesApp._delete,
    "cancel": ResponsesApp._cancel,
    "input_items": ResponsesApp._input_items,
    "list_models": ResponsesApp._list_models,
    "retrieve_model": ResponsesApp._retrieve_model,
}


class _Redacted(Exception):
    """Stands in, in the log, for an exception whose message must not be logged."""


def _name(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _params(environ: Environ) -> dict[str, str]:
    return _query.parse(environ.get("QUERY_STRING", ""))


_STOPPED = {"code": "server_error", "message": SHUTTING_DOWN_QUEUED}


def _shutting_down() -> ApiError:
    return ApiError(503, "The server is shutting down and accepts no new responses.", code="stopping")


_FAILED = {"code": "server_error", "message": "The server could not start the response."}


def _param_of(message: str) -> str | None:
    """The request field a store's refusal names, if any.

    ``"tools[0]['parameters'] ..."``, ``"extra['text'] ..."``, or ``"items[0] ..."`` (the input items of a record
    built without the store, for ``store: false``).
    """
    found = _FIELD.match(message)
    if found is None:
        return None
    name = found.group(1) or found.group(2)
    name = "input" if name == "items" else name
    return name if name in CREATE_FIELDS else None


_FIELD = re.compile(r"extra\['([a-z_]+)'\]|([a-z_]+)")


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

    def __init__(self, body: Iterator[bytes], source: Iterator[dict[str, Any]], slot: Slot) -> None:
        self.body = body
        self.source = source
        self.slot = slot

    def __iter__(self) -> Iterator[bytes]:
        return self.body

    def close(self) -> None:
        """End the stream and free its slot (WSGI calls this once the response is over, finished or not)."""
        try:
            close = getattr(self.source, "close", None)
            if close is not None:
                close()
        finally:
            self.slot.release()


def make_app(
    store: BaseStore,
    *,
    generate: Generate | None = None,
    models: Mapping[str, Generate] | None = None,
    compact: Compact = echo_compact,
    count_tokens: CountTokens = estimate_tokens,
    authenticate: Callable[[str | None], str | None] | None = None,
    cors_origins: Iterable[str] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    background_workers: int = DEFAULT_SETTINGS.background_workers,
    stream_timeout: float | None = 300.0,
    max_streams: int | None = DEFAULT_MAX_STREAMS,
    lease_seconds: float = DEFAULT_SETTINGS.lease_seconds,
    sweep_interval: float = DEFAULT_SETTINGS.sweep_interval,
    flush_interval: float = DEFAULT_SETTINGS.flush_interval,
    flush_events: int = DEFAULT_SETTINGS.flush_events,
    model_timeout: float | None = DEFAULT_SETTINGS.model_timeout,
    stop_grace: float = DEFAULT_SETTINGS.stop_grace,
) -> ResponsesApp:
    """A WSGI application serving the Responses API over ``store``.

    The models: ``generate`` serves every model name a request gives (see :data:`Generate`; the default is
    :func:`echo`); ``GET /v1/models`` then lists none and ``GET /v1/models/{any}`` answers for any name. Give
    ``models`` instead (model name -> ``generate``) to serve exactly those names: ``GET /v1/models`` lists them,
    any other name is ``404`` ``model_not_found``, and a request without a model gets the first one.
    ``compact`` compacts conversations (``POST /v1/responses/compact``, see :data:`Compact`; the default is
    :func:`echo_compact`); ``count_tokens`` counts input tokens (``POST /v1/responses/input_tokens``, see
    :data:`CountTokens`; the default, :func:`estimate_tokens`, estimates one token a word).

    ``authenticate`` maps the
    bearer key (``None`` when the request has none) to the owner whose responses the request sees, or raises
    :class:`Unauthorized` (``401``); without it every request is accepted as owner ``None``. ``cors_origins``
    turns CORS on for these origins (``["*"]``: any), preflights included; it is off by default. A body over
    ``max_body_bytes`` is refused with ``413``. Background responses run in a pool of ``background_workers``
    threads. A replayed stream ends when no event arrives for ``stream_timeout`` seconds (``None``: never).
    At most ``max_streams`` streams (live or replayed; default :data:`DEFAULT_MAX_STREAMS`, ``None``: no bound)
    are open at once, each holding one of the server's request threads: one more is refused with ``503``
    ``too_many_streams`` and ``Retry-After``. Keep it below the server's thread count.

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
    if models is not None and generate is not None:
        raise InvalidArgument("give generate (every model name) or models (these names), not both")
    if models is not None:
        registry = ModelRegistry.named(models)
    else:
        registry = ModelRegistry.any_name(echo if generate is None else generate)
    for name, function in (("compact", compact), ("count_tokens", count_tokens)):
        if not callable(function):
            raise InvalidArgument(f"{name} must be callable")
    if authenticate is not None and not callable(authenticate):
        raise InvalidArgument("authenticate must be callable or None")
    cors = None if cors_origins is None else Cors(cors_origins)
    for name, value in (
        ("max_body_bytes", max_body_bytes),
        ("background_workers", background_workers),
        ("flush_events", flush_events),
        ("max_streams", 1 if max_streams is None else max_streams),
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
        models=registry,
        compact=compact,
        count_tokens=count_tokens,
        authenticate=authenticate,
        cors=cors,
        max_body_bytes=max_body_bytes,
        stream_timeout=stream_timeout,
        max_streams=max_streams,
        settings=settings,
    )
