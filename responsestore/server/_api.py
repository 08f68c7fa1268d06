"""The Responses API app without a transport: a :class:`Request` in, a :class:`~._outbound.Reply` out.

:class:`Api` does everything a request needs (routes, owners, bodies, the store, runs, errors in OpenAI's shape,
request ids, CORS, ``HEAD`` and ``OPTIONS``) in the calling thread; a transport only turns its protocol's request
into a :class:`Request` and the reply into its protocol's answer. :mod:`responsestore.wsgi` calls :meth:`Api.handle`
in the server's request thread; :mod:`responsestore.asgi` calls it in a bounded thread pool and waits for streams
and runs on its event loop. :func:`make_api` checks the options every transport's ``make_app`` takes.

Thread-safety: an :class:`Api` is shared by every request; its state is the store, the runner and the stream slots,
each thread-safe.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

import attrs

from responsestore import _wire
from responsestore._contract import BaseStore
from responsestore._ids import new_response_id
from responsestore._records import ResponseRecord, ResponseStatus
from responsestore.errors import InvalidArgument, ResponseNotFound, ResponseStoreError

from . import _bodies, _conversations, _query, _routes
from ._bodies import Readable
from ._compaction import Compact, compaction_json, echo_compact
from ._context import chain_history, conversation
from ._errors import ApiError, store_error
from ._http import Cors, client_request_id, request_id
from ._logs import REQUEST_ID, RequestLogger, serving
from ._models import Generate, ModelRegistry, echo
from ._outbound import LiveEvents, Reply, StoredEvents, json_bytes
from ._references import check_call_outputs, resolve_references
from ._requests import CREATE_FIELDS, CreateRequest, decode_body, parse_compact, parse_create, parse_input_tokens
from ._runs import DEFAULT_SETTINGS, SHUTTING_DOWN_QUEUED, Runner, RunSettings
from ._streams import Slot, StreamSlots
from ._tokens import CountTokens, estimate_tokens, input_tokens_json

__all__ = ["DEFAULT_MAX_BODY_BYTES", "Api", "Request", "Unauthorized", "make_api", "make_app_of"]

_log = RequestLogger("responsestore.server")

#: The largest request body the app reads (1 MiB); a larger one is refused with ``413``.
DEFAULT_MAX_BODY_BYTES = 1 << 20

A = TypeVar("A", bound="Api")
P = ParamSpec("P")


class Unauthorized(Exception):
    """Raised by an ``authenticate`` callable to refuse a key: the request gets ``401``."""


@attrs.frozen
class Request:
    """One HTTP request as every transport describes it."""

    method: str
    #: The path below the app's root (``/v1/responses``), percent-decoded.
    path: str
    #: The raw query string (without ``?``).
    query: str
    #: The headers, names in lower case (repeated headers joined with ``, ``).
    headers: Mapping[str, str]
    #: The body stream, read only through ``server._bodies`` (whose limits apply before reading).
    body: Readable
    #: Whether a body of undeclared length ends where the request does (the server de-chunks it).
    terminated: bool = False


class Api:
    """The Responses API over one store: see the module. Made by a transport's ``make_app``."""

    #: The stream bound ``max_streams="auto"`` means for this transport.
    auto_max_streams: int | None = 12

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
        #: The event loop async models run on (an ASGI transport's); ``None``: each gets its own, in a thread.
        self.loop: asyncio.AbstractEventLoop | None = None

    def close(self) -> None:
        """Stop: no new response starts; running ones may finish within the grace period, then end ``failed``.

        Responses still queued end ``failed`` at once. Waits for the runs (at most about ``stop_grace`` seconds).
        """
        self.runner.close()

    # ------------------------------------------------------------------ requests

    def handle(self, request: Request) -> Reply:
        """Answer ``request``: a reply with its headers (request id, CORS) and a body, a stream, or a pending run.

        Never raises: every failure is an error reply in OpenAI's shape (a bug's is logged, with the request id).
        A ``HEAD`` gets the ``GET``'s headers without a body.
        """
        headers = request.headers
        rid = request_id(headers.get("x-request-id"))
        with serving(rid):  # what is logged while the request is served names it
            try:
                reply = self._dispatch(request)
            except Exception as exc:  # noqa: BLE001 - every failure answers in OpenAI's shape (see _failure)
                reply = self._failure(exc, rid)
        if request.method == "HEAD":  # the GET's headers, Content-Length included
            if reply.stream is not None:
                reply.stream.close()
            reply.stream = None
            reply.body = b""
        reply.headers += self._common_headers(headers, rid)
        return reply

    def settle(self, reply: Reply) -> Reply:
        """The final reply of a ``pending`` one (its run has ended: call when it has, or this waits for it)."""
        run = reply.pending
        if run is None:
            return reply
        rid = run.log.request_id or ""
        with serving(rid):
            try:
                try:
                    final = run.result()
                except ResponseNotFound:
                    message = f"Response {run.record.id!r} was deleted while it ran."
                    raise ApiError(404, message, code="not_found") from None
                settled = self._json(200, _wire.response_frozen(final))
            except Exception as exc:  # noqa: BLE001 - as in handle
                settled = self._failure(exc, rid)
        settled.headers += reply.headers
        return settled

    def _failure(self, exc: Exception, rid: str) -> Reply:
        if isinstance(exc, ResponseStoreError):
            exc = store_error(exc)
        if not isinstance(exc, ApiError):  # a bug must still answer in OpenAI's shape, with its request id logged
            _log.error("the request failed", exc_info=exc)
            exc = ApiError(500, "The server failed to handle the request.", code="server_error")
        headers = []
        if exc.status == 405:
            headers.append(("Allow", exc.allow))
        if exc.status == 401:
            headers.append(("WWW-Authenticate", 'Bearer realm="responsestore"'))
        if exc.retry_after is not None:
            headers.append(("Retry-After", str(exc.retry_after)))
        return self._json(exc.status, exc.body(rid), headers)

    def _common_headers(self, headers: Mapping[str, str], rid: str) -> list[tuple[str, str]]:
        common = [("x-request-id", rid)]
        client_id = client_request_id(headers.get("x-client-request-id"))
        if client_id is not None:
            common.append(("x-client-request-id", client_id))
        if self.cors is not None:
            common += self.cors.headers(headers.get("origin"))
        return common

    @staticmethod
    def _json(status: int, data: object, headers: list[tuple[str, str]] | None = None) -> Reply:
        payload = json_bytes(data)
        all_headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        return Reply(status, all_headers + (headers or []), payload)

    @staticmethod
    def _sse(stream: LiveEvents | StoredEvents) -> Reply:
        headers = [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no")]
        return Reply(200, headers, stream=stream)

    def _dispatch(self, request: Request) -> Reply:
        path, method = request.path or "/", request.method
        _bodies.check_framing(request.headers.get("content-length"), request.headers.get("transfer-encoding"))
        if method == "OPTIONS":
            return self._options(request, path)
        operation, args = _routes.match(method, path)
        owner = self.owner(request.headers.get("authorization", ""))
        if operation in _conversations.OPERATIONS:
            data = _conversations.run(
                operation, self.store, owner, args, _query.parse(request.query), lambda: self._body(request)
            )
            return self._json(200, data)
        handler: Callable[[Api, str | None, tuple[str, ...], Request], Reply] = _OPERATIONS[operation]
        return handler(self, owner, args, request)

    def _options(self, request: Request, path: str) -> Reply:
        """``OPTIONS``: ``200`` with ``Allow`` and no body.

        With CORS on, a preflight from an allowed origin also gets the CORS headers, one from another origin ``403``.
        ``200`` with ``Content-Length: 0``, not ``204``: waitress closes the connection after every ``204``.
        """
        found = _routes.find(path)
        if found is None:
            raise _routes.unknown_path("OPTIONS", path)
        route = found[0]
        headers = [("Allow", route.allow), ("Content-Length", "0")]
        origin = request.headers.get("origin")
        if self.cors is None or origin is None or "access-control-request-method" not in request.headers:
            return Reply(200, headers)
        if not self.cors.allows(origin):
            raise ApiError(403, "This origin may not call the API.", code="cors_origin_not_allowed")
        headers += self.cors.preflight(list(route.operations), request.headers.get("access-control-request-headers"))
        return Reply(200, headers)

    def owner(self, authorization: str) -> str | None:
        """The owner an ``Authorization`` header (``""``: none) names, through ``authenticate``.

        Raises:
            ApiError: ``401`` ``invalid_api_key``: not a bearer key, or refused; ``500``: ``authenticate`` failed
                (logged without its message, which may hold the key).
        """
        scheme, _, key = authorization.partition(" ")
        if authorization and scheme.lower() != "bearer":
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

    def _body(self, request: Request) -> object:
        """The JSON body, its type and size checked before a byte is read (see ``server._bodies``)."""
        headers = request.headers
        length = _bodies.body_length(
            headers.get("content-length"),
            headers.get("transfer-encoding"),
            terminated=request.terminated,
            limit=self.max_body_bytes,
        )
        if length == 0:
            return decode_body(b"")
        _bodies.check_content_type(headers.get("content-type"))
        return decode_body(_bodies.read_body(request.body, length, self.max_body_bytes))

    # ------------------------------------------------------------------ routes

    def _retrieve(self, owner: str | None, args: tuple[str, ...], request: Request) -> Reply:
        (id,) = args
        query = _query.parse(request.query)
        stream = query.get("stream", "false").lower()
        if stream not in ("true", "false"):
            raise ApiError(400, "'stream' must be true or false.", param="stream", code="invalid_value")
        record = self.store.get(id, owner=owner)
        if stream == "false":
            return self._json(200, _wire.response_frozen(record))
        after = _query.integer(query, "starting_after", None)
        return self._sse(self.stored_events(owner, id, after, self.streams.acquire()))

    def stored_events(self, owner: str | None, id: str, after: int | None, slot: Slot | None) -> StoredEvents:
        """The stored events of response ``id`` after ``after``, followed live (``slot``: its stream slot)."""
        return StoredEvents(
            self.store, owner=owner, id=id, after=after, timeout=self.stream_timeout, log=_log.bound(), slot=slot
        )

    def _delete(self, owner: str | None, args: tuple[str, ...], request: Request) -> Reply:
        (id,) = args
        self.store.delete(id, owner=owner)
        return self._json(200, {"id": id, "object": "response", "deleted": True})

    def _cancel(self, owner: str | None, args: tuple[str, ...], request: Request) -> Reply:
        (id,) = args
        return self._json(200, _wire.response_frozen(self.store.cancel(id, status_event=True, owner=owner)))

    def _input_items(self, owner: str | None, args: tuple[str, ...], request: Request) -> Reply:
        (id,) = args
        query = _query.parse(request.query)
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

    def _list_models(self, owner: str | None, args: tuple[str, ...], request: Request) -> Reply:
        return self._json(200, self.models.list_json())

    def _retrieve_model(self, owner: str | None, args: tuple[str, ...], request: Request) -> Reply:
        (name,) = args
        return self._json(200, self.models.model_json(name))

    def _compact(self, owner: str | None, args: tuple[str, ...], request: Request) -> Reply:
        body = parse_compact(self._body(request))
        model, _ = self.models.resolve(body.model)
        context = conversation(self.store, owner, body.previous_response_id, body.input)
        return self._json(200, compaction_json(self.compact, context, {**body.body, "model": model}))

    def _input_tokens(self, owner: str | None, args: tuple[str, ...], request: Request) -> Reply:
        body = parse_input_tokens(self._body(request))
        if body.model is not None:
            self.models.resolve(body.model)
        context = conversation(self.store, owner, body.previous_response_id, body.input, body.conversation)
        return self._json(200, input_tokens_json(self.count_tokens, context, body.body))

    def _create(self, owner: str | None, args: tuple[str, ...], request: Request) -> Reply:
        return self.create(owner, parse_create(self._body(request)))

    def create(
        self,
        owner: str | None,
        request: CreateRequest,
        history: tuple[dict[str, Any], ...] | None = None,
        generate: Generate | None = None,
    ) -> Reply:
        """Create and start the response ``request`` asks for: a JSON reply, a stream, or a pending run.

        ``history``: the items it continues, when the caller has them already (a WebSocket connection's own
        unstored responses); else they are read from the store (``previous_response_id``, ``conversation``).
        ``generate``: the model to run instead of the one the request names (whose name is still checked); a
        WebSocket warmup (``generate: false``) runs one that says nothing.

        Raises:
            ApiError: the request cannot be served (unknown model or chain, too many streams, stopping, ...).
            ResponseStoreError: the store failed.
        """
        model, named = self.models.resolve(request.model)
        generate = named if generate is None else generate
        if history is None:
            history = chain_history(self.store, owner, request.previous_response_id, request.conversation)
        try:  # item_reference input items become the stored items they name
            request = attrs.evolve(request, input=resolve_references(self.store, request.input, history, owner=owner))
        except InvalidArgument as exc:
            raise ApiError(400, str(exc), param="input", code="invalid_value") from None
        check_call_outputs(request.input, history)
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
    ) -> Reply:
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
                loop=self.loop,
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
            if request.background:
                return self._sse(self.stored_events(owner, record.id, None, slot))
            return self._sse(LiveEvents(run, slot))
        if request.background:
            return self._json(200, _wire.response_frozen(record))
        return Reply(200, [], pending=run)

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


_OPERATIONS: Mapping[str, Callable[[Api, str | None, tuple[str, ...], Request], Reply]] = {
    "create": Api._create,
    "compact": Api._compact,
    "input_tokens": Api._input_tokens,
    "retrieve": Api._retrieve,
    "delete": Api._delete,
    "cancel": Api._cancel,
    "input_items": Api._input_items,
    "list_models": Api._list_models,
    "retrieve_model": Api._retrieve_model,
}


class _Redacted(Exception):
    """Stands in, in the log, for an exception whose message must not be logged."""


def _name(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


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


def make_api(
    cls: type[A],
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
    max_streams: int | Literal["auto"] | None = "auto",
    lease_seconds: float = DEFAULT_SETTINGS.lease_seconds,
    sweep_interval: float = DEFAULT_SETTINGS.sweep_interval,
    flush_interval: float = DEFAULT_SETTINGS.flush_interval,
    flush_events: int = DEFAULT_SETTINGS.flush_events,
    model_timeout: float | None = DEFAULT_SETTINGS.model_timeout,
    stop_grace: float = DEFAULT_SETTINGS.stop_grace,
) -> A:
    """A ``cls`` app serving the Responses API over ``store``: the ``make_app`` of every transport.

    The models: ``generate`` serves every model name a request gives (see :data:`Generate`; the default is
    :func:`echo`); ``GET /v1/models`` then lists none and ``GET /v1/models/{any}`` answers for any name. Give
    ``models`` instead (model name -> ``generate``) to serve exactly those names: ``GET /v1/models`` lists them,
    any other name is ``404`` ``model_not_found``, and a request without a model gets the first one.
    ``compact`` compacts conversations (``POST /v1/responses/compact``, see :data:`Compact`; the default is
    :func:`echo_compact`); ``count_tokens`` counts input tokens (``POST /v1/responses/input_tokens``, see
    :data:`CountTokens`; the default, :func:`estimate_tokens`, estimates one token a word).

    ``authenticate`` maps the bearer key (``None`` when the request has none) to the owner whose responses the
    request sees, or raises :class:`Unauthorized` (``401``); without it every request is accepted as owner
    ``None``. ``cors_origins`` turns CORS on for these origins (``["*"]``: any), preflights included; it is off by
    default. A body over ``max_body_bytes`` is refused with ``413``. Background responses run in a pool of
    ``background_workers`` threads. A replayed stream ends when no event arrives for ``stream_timeout`` seconds
    (``None``: never). At most ``max_streams`` streams (live or replayed) are open at once: one more is refused
    with ``503`` ``too_many_streams`` and ``Retry-After``; ``None`` is no bound, and ``"auto"`` (the default) is
    12 for the WSGI app, whose streams each hold one of the server's request threads (keep it below the server's
    thread count), and 4096 for the ASGI app, whose streams hold no thread.

    How responses run (see the serving docs): each holds a lease of ``lease_seconds`` (default 30), renewed while it
    runs; the app's sweeper ends, every ``sweep_interval`` seconds (default 5), the responses whose lease ran out
    (their server died), on any process sharing the store, and sweeps expired responses. A streamed or background
    response logs its events at most every ``flush_interval`` seconds (default 0.05) or every ``flush_events``
    events (default 256); a non-streamed one logs them when it ends. A model that yields nothing for
    ``model_timeout`` seconds (default 300; ``None``: no limit) fails its response. ``close()`` lets running
    responses finish for ``stop_grace`` seconds (default 10), then ends them ``failed``.

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
    max_streams = cls.auto_max_streams if max_streams == "auto" else max_streams
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
    return cls(
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


def make_app_of(cls: type[A], build: Callable[Concatenate[type[Api], P], Api], doc: str) -> Callable[P, A]:
    """A transport's ``make_app``: :func:`make_api` making ``cls`` apps, with its options, typed, and ``doc``."""

    @functools.wraps(build)
    def make_app(*args: P.args, **kwargs: P.kwargs) -> A:
        app = build(cls, *args, **kwargs)
        assert isinstance(app, cls)  # noqa: S101 - build makes what it is given
        return app

    signature = inspect.signature(build)
    parameters = list(signature.parameters.values())[1:]
    make_app.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=parameters, return_annotation=cls.__name__
    )
    make_app.__doc__ = doc + "\n\n" + inspect.cleandoc(build.__doc__ or "").split("\n", 1)[1].lstrip("\n")
    make_app.__name__ = make_app.__qualname__ = "make_app"
    make_app.__module__ = cls.__module__
    del make_app.__wrapped__
    return make_app
