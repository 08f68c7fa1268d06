"""The Responses API as an ASGI application over any store: :func:`make_app`, for uvicorn, Starlette and FastAPI.

The same app as :mod:`responsestore.wsgi` (the same routes, options, errors, owners, runs and events: both are
thin transports over :mod:`responsestore.server`), and, at ``/v1/responses``, the Responses API's WebSocket mode
(see :mod:`responsestore._websocket`). What differs is how it waits:

- **Streams hold no thread.** A server-sent event stream, live or replayed, waits on the event loop: an ``async``
  model (an async generator function, see :data:`~responsestore.wsgi.Generate`) is awaited there, and a replay
  follows the store through :class:`~responsestore.aio.AsyncResponseStore`. So one process holds thousands of open
  streams (``max_streams`` defaults to 4096 here, against 12 for the WSGI app).
- **Blocking work runs in a bounded thread pool** of :data:`HANDLER_THREADS` threads: reading and writing the store
  for a request, and a blocking (plain generator) model in the runner's pool of 64 threads, as under WSGI.
- **The client leaving is noticed at once** (``http.disconnect``), not at the next event: a live response whose
  client left ends ``failed``.

Lifespan: under a server that sends ASGI lifespan events (uvicorn does by default), the app closes itself at shutdown
(:meth:`~responsestore.server._api.Api.close`: running responses get ``stop_grace`` seconds, then end ``failed``).
Mounted in another app (Starlette's ``Mount`` sends no lifespan events to what it mounts), call ``close()`` from the
outer app's lifespan, as the serving docs show.

Thread-safety: one app serves every request of one event loop; don't share it between loops.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeVar

from .server._api import DEFAULT_MAX_BODY_BYTES, Api, Request, Unauthorized, make_api, make_app_of
from .server._compaction import Compact, echo_compact
from .server._models import ArgumentsDelta, FunctionCall, Generate, Incomplete, Usage, echo
from .server._outbound import EventStream, Reply, run_result, sse
from .server._tokens import CountTokens, estimate_tokens

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_STREAMS",
    "HANDLER_THREADS",
    "ArgumentsDelta",
    "AsgiApp",
    "Compact",
    "CountTokens",
    "FunctionCall",
    "Generate",
    "Incomplete",
    "Unauthorized",
    "Usage",
    "echo",
    "echo_compact",
    "estimate_tokens",
    "make_app",
]

#: The most streams (server-sent event streams and WebSocket responses in flight) the ASGI app keeps open at once.
DEFAULT_MAX_STREAMS = 4096

#: The threads that serve the blocking part of requests (store reads and writes) for one ASGI app.
HANDLER_THREADS = 32

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
T = TypeVar("T")


class AsgiApp(Api):
    """The ASGI application :func:`make_app` returns (``http``, ``websocket`` and ``lifespan`` scopes)."""

    auto_max_streams = DEFAULT_MAX_STREAMS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Not shut down by close(): requests still being answered when the app closes need it (its idle threads end
        # with the process).
        self._threads = concurrent.futures.ThreadPoolExecutor(HANDLER_THREADS, thread_name_prefix="responsestore-asgi")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection (the ASGI protocol)."""
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        self.loop = asyncio.get_running_loop()  # async models run here
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            from ._websocket import serve_websocket  # noqa: PLC0415 - only WebSocket connections need it

            await serve_websocket(self, scope, receive, send)

    async def in_thread(self, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)`` in the app's handler threads (with this task's context: its request id)."""
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, functools.partial(context.run, call, *args))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.loop = asyncio.get_running_loop()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.get_running_loop().run_in_executor(None, self.close)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        request = Request(
            method=str(scope["method"]).upper(),
            path=route_path(scope),
            query=bytes(scope.get("query_string", b"")).decode("latin-1"),
            headers=headers_of(scope),
            body=_Body(receive, loop),
            terminated=True,  # the server hands over a chunked body de-chunked, ending where the request does
        )
        reply = await self.in_thread(self.handle, request)
        if reply.pending is not None:
            await run_result(reply.pending)
            reply = self.settle(reply)  # the run has ended: this does not wait
        await send({"type": "http.response.start", "status": reply.status, "headers": _raw(reply)})
        if reply.stream is None:
            await send({"type": "http.response.body", "body": reply.body})
            return
        await self._stream(reply.stream, receive, send)

    async def _stream(self, stream: EventStream, receive: Receive, send: Send) -> None:
        """Send ``stream`` as server-sent events until it ends or the client leaves (then the stream is closed)."""

        async def pump() -> None:
            async for event in stream.aevents():
                await send({"type": "http.response.body", "body": sse(event), "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        pumping, watching = asyncio.ensure_future(pump()), asyncio.ensure_future(watch())
        try:
            await asyncio.wait((pumping, watching), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pumping, watching):
                task.cancel()
            for task in (pumping, watching):
                with contextlib.suppress(BaseException):  # cancelled, or the client gone: closing says it all
                    await task
            await self.in_thread(stream.close)  # may write the store (an abandoned run ends failed)


def route_path(scope: Scope) -> str:
    """The request's path below the app's mount point (``root_path``), as the routes see it."""
    path, root = str(scope.get("path", "")), str(scope.get("root_path", ""))
    if root and path.startswith(root):
        path = path[len(root) :]
    return path


def headers_of(scope: Scope) -> dict[str, str]:
    """The request's headers, names in lower case, repeated ones joined with ``, ``."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name, value = bytes(raw_name).decode("latin-1").lower(), bytes(raw_value).decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _raw(reply: Reply) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in reply.headers]


class _Body:
    """The request body, read from a handler thread: each read awaits the next ``http.request`` on the loop."""

    def __init__(self, receive: Receive, loop: asyncio.AbstractEventLoop) -> None:
        self._receive = receive
        self._loop = loop
        self._buffer = b""
        self._more = True

    def read(self, size: int, /) -> bytes:
        while len(self._buffer) < size and self._more:
            self._buffer += asyncio.run_coroutine_threadsafe(self._next(), self._loop).result()
        piece, self._buffer = self._buffer[:size], self._buffer[size:]
        return piece

    async def _next(self) -> bytes:
        message = await self._receive()
        if message["type"] != "http.request":  # the client left: the body ends here (it is refused as cut short)
            self._more = False
            return b""
        self._more = bool(message.get("more_body", False))
        return bytes(message.get("body", b""))


make_app = make_app_of(
    AsgiApp,
    make_api,
    "An ASGI application serving the Responses API over ``store`` (HTTP and WebSocket mode); run it with uvicorn or "
    "mount it in Starlette or FastAPI.",
)
