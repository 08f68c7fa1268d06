"""``serve --asgi``: the ASGI app on uvicorn, started and stopped the way ``serve`` runs waitress.

uvicorn serves in a thread of its own; the main thread keeps the signals (:class:`responsestore.__main__._StopSignals`
asks it to stop: uvicorn never installs handlers of its own, so no signal prints a traceback). The listening socket is
bound here first, so a busy port is a one-line error, not a uvicorn log. Stopping: uvicorn stops accepting and closes
idle connections while the app closes (running responses get the grace period, then end ``failed``, and their
streams end with that event); open connections then get a few seconds to finish sending, after which uvicorn cancels
what is left.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["listen", "run", "start"]

#: Seconds a stopping server gives the connections still open to finish, once its responses have ended.
DRAIN_SECONDS = 5.0


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (``0``: a free port).

    Raises:
        OSError: the address is taken or not this host's.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def run(
    app: Any,
    sock: socket.socket,
    *,
    connection_limit: int,
    keep_alive: int,
    max_message_bytes: int,
    stop_grace: float,
    wait_for_stop: Callable[[], None],
    ready: Callable[[], None],
) -> None:
    """Serve ``app`` on ``sock`` until ``wait_for_stop`` returns, then stop it (closing ``app``).

    ``ready`` is called once uvicorn accepts connections. ``connection_limit`` bounds the connections and tasks
    uvicorn serves at once (beyond it, ``503``); ``keep_alive`` closes a connection idle that many seconds; a
    WebSocket message over ``max_message_bytes`` closes its connection (code 1009; the app itself answers an
    ``error`` event to one over its body limit but within this).
    """
    import uvicorn  # noqa: PLC0415 - the asgi extra is optional; only serve --asgi needs it

    config = uvicorn.Config(
        app,
        lifespan="off",  # the app is closed here, after uvicorn has stopped accepting
        log_level="warning",
        access_log=False,
        limit_concurrency=connection_limit,
        timeout_keep_alive=keep_alive,
        ws_max_size=max_message_bytes,
        ws="websockets-sansio",
        timeout_graceful_shutdown=int(stop_grace + DRAIN_SECONDS) + 1,
    )
    server, thread = start(config, sock)
    if not server.started:  # uvicorn failed before serving: it logged why
        thread.join()
        return
    ready()
    try:
        wait_for_stop()
    finally:
        server.should_exit = True  # stop accepting; idle connections close, open ones may finish
        try:
            app.close()
        finally:
            thread.join(stop_grace + 2 * DRAIN_SECONDS)


def start(config: Any, sock: socket.socket) -> tuple[Any, threading.Thread]:
    """Start uvicorn (its ``uvicorn.Config``) serving on ``sock`` in a thread; return the server and the thread.

    Returns once uvicorn accepts connections, or has failed to start (then ``server.started`` is false: uvicorn has
    logged why, and the thread has ended). ``server.should_exit = True`` stops it.
    """
    import uvicorn  # noqa: PLC0415 - the asgi extra is optional

    started = threading.Event()

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            started.set()

    def serve() -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        finally:
            started.set()  # wakes the starter if uvicorn failed to start

    server = _Server(config)
    thread = threading.Thread(target=serve, name="responsestore-uvicorn", daemon=True)
    thread.start()
    started.wait()
    return server, thread
