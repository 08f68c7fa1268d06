"""Command line: ``demo`` runs a threaded simulation of a Responses API server; ``serve`` serves the API."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import queue
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from . import __version__
from ._memory import ResponseStore
from ._records import ResponseStatus
from ._registry import _BUILT_IN, ENTRY_POINT_GROUP, backend_schemes
from .errors import ResponseStoreError

__all__ = ["main"]


def _demo(workers: int, turns: int, out: list[str]) -> bool:  # noqa: PLR0915 - one scripted scenario
    """Simulate a server; append what happened to ``out``; return whether every check held."""
    store = ResponseStore()
    say_lock = threading.Lock()

    def say(line: str) -> None:
        with say_lock:
            out.append(line)
            print(line, flush=True)

    # Requests arrive on a queue, as a threaded WSGI server hands them to its worker threads.
    requests: queue.Queue[tuple[str, int] | None] = queue.Queue()
    errors: list[Exception] = []
    turn_done = threading.Condition()
    last_response: dict[str, str] = {}

    def worker(name: str) -> None:
        while (request := requests.get()) is not None:
            conversation, turn = request
            try:
                with turn_done:
                    previous = last_response.get(conversation)
                record = store.create(
                    "demo-model",
                    f"{conversation}: question {turn}",
                    previous_response_id=previous,
                    metadata={"conversation": conversation, "worker": name},
                )
                context = store.conversation(record.id)
                answer = f"{conversation}: answer {turn} (context had {len(context)} items)"
                store.complete(
                    record.id,
                    [{"role": "assistant", "content": answer}],
                    usage={"input_tokens": len(context), "output_tokens": 1},
                )
                say(f"[{name}] {conversation} turn {turn}: {record.id} completed, saw {len(context)} items")
                with turn_done:
                    last_response[conversation] = record.id
                    turn_done.notify_all()
            except Exception as exc:  # noqa: BLE001 - the demo reports every failure in its summary
                errors.append(exc)
                with turn_done:
                    turn_done.notify_all()

    threads = [threading.Thread(target=worker, args=(f"worker-{i}",), daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()

    # A background response that a client cancels while a generator thread is still working on it.
    background = store.create("demo-model", "write a long essay", background=True, status="queued")
    say(f"[client] queued background response {background.id}")
    started = threading.Event()
    cancelled = threading.Event()

    def generator() -> None:
        store.start(background.id)
        started.set()
        cancelled.wait(timeout=60)
        try:
            store.complete(background.id, [{"role": "assistant", "content": "too late"}])
        except ResponseStoreError as exc:
            say(f"[generator] could not complete {background.id}: {type(exc).__name__}")

    gen = threading.Thread(target=generator, daemon=True)
    gen.start()
    started.wait(timeout=60)
    store.cancel(background.id)
    say(f"[client] cancelled {background.id} while it was in progress")
    cancelled.set()
    gen.join(timeout=60)

    # Several conversations, each turn continuing the previous one through previous_response_id; turns of one
    # conversation are sent in order, conversations interleave across the worker threads.
    conversations = [f"conversation-{c}" for c in range(workers)]
    for turn in range(turns):
        for conversation in conversations:
            requests.put((conversation, turn))
        with turn_done:
            turn_done.wait_for(
                lambda: bool(errors) or all(_turns(store, last_response.get(c)) == turn + 1 for c in conversations),  # noqa: B023
                timeout=60,
            )
    for _ in threads:
        requests.put(None)
    for thread in threads:
        thread.join(timeout=60)

    last = last_response.get(conversations[0])
    if last is not None:
        page = store.input_items(last, limit=5)
        say(f"[client] input items of {last}: {[item['content'][0]['text'] for item in page.data]}")
    listed = 0
    cursor = None
    while True:
        listing = store.list(limit=7, after=cursor)
        listed += len(listing.data)
        if not listing.has_more:
            break
        cursor = listing.last_id
    final = store.get(background.id)
    checks = {
        "no worker errors": not errors,
        "background response is cancelled": final.status is ResponseStatus.CANCELLED,
        "every response listed once": listed == len(store) == workers * turns + 1,
        "chains are complete": all(_turns(store, last_response.get(c)) == turns for c in conversations),
    }
    for exc in errors:
        say(f"[error] {type(exc).__name__}: {exc}")
    failed = [name for name, ok in checks.items() if not ok]
    say(
        f"summary: {len(store)} responses from {workers} worker threads, {len(conversations)} conversations "
        f"of {turns} turns, 1 background response cancelled, {listed} listed; "
        + ("all checks passed" if not failed else f"FAILED: {', '.join(failed)}")
    )
    return not failed


def _turns(store: ResponseStore, last: str | None) -> int:
    return 0 if last is None else len(store.chain(last))


#: The environment variable that may hold the store URL (``--store`` wins over it).
_STORE_VARIABLE = "RESPONSESTORE_URL"

#: What ``serve --help`` says of the URLs of each built-in scheme. The list of schemes comes from
#: :func:`~responsestore.backend_schemes` (so a scheme added to the registry shows even before it is described
#: here); a scheme missing here is shown as ``SCHEME://...`` with its backend class.
_STORE_URLS = {
    "memory": "memory:// (this process only; the default)",
    "sqlite": "sqlite:///PATH (a file; sqlite:////abs/path for an absolute path) with optional "
    "?max_bytes=N&max_records=N&ttl=SECONDS&synchronous=FULL|NORMAL&busy_timeout=SECONDS",
    "redis": "redis://[[USER]:PASSWORD@]HOST:PORT/DB with optional "
    "?prefix=NAME&max_records=N&max_bytes=N&ttl=SECONDS and redis-py's socket_timeout=... (needs the redis extra)",
    "rediss": "rediss:// (Redis over TLS)",
    "postgresql": "postgresql://USER:PASSWORD@HOST:PORT/DB with optional ?schema=NAME&max_records=N&max_bytes=N"
    "&ttl=SECONDS&poll_interval=SECONDS&timeout=SECONDS and libpq's sslmode=... (needs the postgres extra)",
    "postgresql+psycopg": "postgresql+psycopg://",
    "postgres": "postgres://",
}


def _store_help() -> str:
    """The help of ``serve --store``: every scheme :func:`~responsestore.open` knows, a backend's schemes together."""
    order = list(_STORE_URLS)

    def rank(scheme: str) -> tuple[int, str]:
        return (order.index(scheme) if scheme in order else len(order), scheme)

    schemes = backend_schemes()
    by_backend: dict[str, list[str]] = {}
    for scheme, target in schemes.items():
        by_backend.setdefault(target, []).append(scheme)
    groups = sorted((sorted(group, key=rank) for group in by_backend.values()), key=lambda group: rank(group[0]))
    described = [
        " or ".join(
            _STORE_URLS[scheme]
            if scheme in _STORE_URLS and _BUILT_IN.get(scheme) == schemes[scheme]
            else f"{scheme}://... (the backend {schemes[scheme]})"
            for scheme in group
        )
        for group in groups
    ]
    return (
        "the store URL: "
        + "; ".join(described)
        + f"; installed packages add schemes through the entry-point group {ENTRY_POINT_GROUP}. "
        f"The environment variable {_STORE_VARIABLE} sets the default: a URL with a password is better there "
        "than in the process list"
    )


#: The environment variable that may hold API keys: ``KEY=OWNER`` entries, separated by commas or newlines.
_API_KEYS_VARIABLE = "RESPONSESTORE_API_KEYS"


def _api_keys(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, str]:
    """The accepted API keys (key -> owner), from ``--api-key``, ``--api-keys-file`` and the environment.

    No error message shows an entry: it may hold a key.
    """
    keys: dict[str, str] = {}

    def add(entry: str, where: str) -> None:
        key, separator, owner = (part.strip() for part in entry.partition("="))
        if not separator or not key or not owner:
            parser.error(f"{where}: not KEY=OWNER (the entry is not shown: it may hold a key)")
        if key in keys:
            parser.error(f"{where}: the key is given twice")
        keys[key] = owner

    for number, pair in enumerate(args.api_key, 1):
        add(pair, f"--api-key (number {number})")
    if args.api_keys_file is not None:
        try:
            with open(args.api_keys_file, encoding="utf-8") as file:
                lines = file.read().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            parser.error(f"--api-keys-file {args.api_keys_file!r} cannot be read: {type(exc).__name__}")
        before = len(keys)
        for number, line in enumerate(lines, 1):
            if line.strip() and not line.lstrip().startswith("#"):
                add(line, f"--api-keys-file {args.api_keys_file!r} line {number}")
        if len(keys) == before:
            parser.error(f"--api-keys-file {args.api_keys_file!r} holds no KEY=OWNER line")
    entries = [entry for entry in os.environ.get(_API_KEYS_VARIABLE, "").replace("\n", ",").split(",") if entry.strip()]
    for number, entry in enumerate(entries, 1):
        add(entry, f"{_API_KEYS_VARIABLE} entry {number}")
    return keys


class _StopSignals:
    """SIGINT (Ctrl-C) and SIGTERM ask the server to stop, from the start: no signal ever prints a traceback.

    A signal only sets :attr:`requested` and wakes the server's loop (:attr:`wake`), which then stops. A SIGINT
    the process was started ignoring (a background job of a shell) stays ignored.
    """

    def __init__(self) -> None:
        self.requested = False
        self.wake: Callable[[], None] | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signum == signal.SIGINT and signal.getsignal(signum) == signal.SIG_IGN:
                continue
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        if self.wake is not None:
            self.wake()


def _serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Serve the Responses API on waitress (or uvicorn, ``--asgi``) until SIGTERM or Ctrl-C; return the exit code."""
    with _StopSignals() as signals:
        if args.asgi:
            return _serve_asgi(args, parser, signals)
        return _serve_until(args, parser, signals)


def _made_app(args: argparse.Namespace, parser: argparse.ArgumentParser, make_app: Any, unauthorized: Any) -> Any:
    """The app ``serve``'s options describe, over the store it names, or an exit code (the reason printed)."""
    # Failures (the store's, the model's, the server's) go to stderr, each naming its logger and request id.
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from . import open as open_store  # noqa: PLC0415 - keeps ``demo`` free of the backends it does not use

    keys = _api_keys(args, parser)

    def authenticate(key: str | None) -> str | None:
        if key is None or key not in keys:
            raise unauthorized
        return keys[key]

    options = _app_options(args, parser)
    problem = _raise_file_limit(args.connection_limit + args.threads + 64)
    if problem is not None:
        print(f"--connection-limit {args.connection_limit}: {problem}", file=sys.stderr)
        return 2
    try:
        store = open_store(args.store)
    except ResponseStoreError as exc:
        print(f"cannot open the store {_without_password(args.store)!r}: {exc}", file=sys.stderr)
        return 2
    return make_app(
        store,
        authenticate=authenticate if keys else None,
        max_streams=args.max_streams,
        background_workers=args.workers,
        lease_seconds=args.lease_seconds,
        sweep_interval=args.sweep_interval,
        flush_interval=args.flush_interval,
        model_timeout=args.model_timeout or None,
        stop_grace=args.stop_grace,
        **options,
    )


def _serve_asgi(args: argparse.Namespace, parser: argparse.ArgumentParser, signals: _StopSignals) -> int:
    """``serve --asgi``: the ASGI app on uvicorn (see :mod:`responsestore._uvicorn`); return the exit code."""
    try:
        import uvicorn  # noqa: F401, PLC0415 - the asgi extra is optional; only ``serve --asgi`` needs it
        import websockets  # noqa: F401, PLC0415
    except ImportError:
        print("python -m responsestore serve --asgi needs uvicorn: pip install 'responsestore[asgi]'", file=sys.stderr)
        return 2
    from . import _uvicorn  # noqa: PLC0415
    from .asgi import Unauthorized, make_app  # noqa: PLC0415

    app = _made_app(args, parser, make_app, Unauthorized)
    if isinstance(app, int):
        return app
    try:
        sock = _uvicorn.listen(args.host, args.port)
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        _close_app(app)
        _close_store(app.store)
        return 2
    stop = threading.Event()
    signals.wake = stop.set
    host, port = sock.getsockname()[:2]

    def ready() -> None:
        print(f"responsestore serving on http://{host}:{port}/v1", flush=True)

    def wait_for_stop() -> None:
        while not signals.requested:
            stop.wait(_SIGNAL_CHECK)

    try:
        _uvicorn.run(
            app,
            sock,
            connection_limit=args.connection_limit,
            keep_alive=args.channel_timeout,
            max_message_bytes=4 * app.max_body_bytes,
            stop_grace=args.stop_grace,
            wait_for_stop=wait_for_stop,
            ready=ready,
        )
    finally:
        signals.wake = None
        sock.close()
        _close_app(app)  # done already, unless uvicorn failed
        _close_store(app.store)
    return 0


#: Seconds between two looks at whether a signal asked to stop (a signal also wakes the wait at once).
_SIGNAL_CHECK = 1.0


def _serve_until(args: argparse.Namespace, parser: argparse.ArgumentParser, signals: _StopSignals) -> int:
    """Serve until ``signals`` asks to stop, then stop cleanly (see :func:`_stop`); return the exit code."""
    try:
        import waitress.server  # noqa: PLC0415 - the server extra is optional; only ``serve`` needs it
        import waitress.wasyncore  # noqa: PLC0415
    except ImportError:
        print("python -m responsestore serve needs waitress: pip install 'responsestore[server]'", file=sys.stderr)
        return 2
    from . import _waitress  # noqa: PLC0415
    from .wsgi import Unauthorized, make_app  # noqa: PLC0415

    app = _made_app(args, parser, make_app, Unauthorized)
    if isinstance(app, int):
        return app
    store = app.store
    # Every socket of the server (listener, wake-up pipe, connections) is in this map, so all close at the end.
    sockets: dict[int, Any] = {}
    try:
        # waitress 3 sends each chunk the app yields at once, so server-sent events are not held back.
        server = _waitress.create_server(
            app,
            host=args.host,
            port=args.port,
            threads=args.threads,
            connection_limit=args.connection_limit,
            channel_timeout=args.channel_timeout,
            # Idle connections are looked for this often: a few times within the channel timeout.
            cleanup_interval=max(1, min(30, args.channel_timeout // 4)),
            asyncore_use_poll=True,  # select() cannot watch more than 1024 sockets
            map=sockets,
        )
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        waitress.wasyncore.close_all(sockets)
        app.close()
        _close_store(store)
        return 2
    listeners = [each for each in sockets.values() if isinstance(each, waitress.server.BaseWSGIServer)]
    signals.wake = listeners[0].pull_trigger
    host = getattr(server, "effective_host", args.host)
    port = getattr(server, "effective_port", args.port)
    print(f"responsestore serving on http://{host}:{port}/v1", flush=True)
    try:
        while not signals.requested:
            waitress.wasyncore.loop(timeout=1.0, map=sockets, use_poll=True, count=1)
        _stop(app, server.task_dispatcher, listeners, sockets, args.stop_grace)
    finally:
        signals.wake = None
        _close_app(app)  # done already, unless the loop failed
        server.task_dispatcher.shutdown(timeout=0.5)
        waitress.wasyncore.close_all(sockets)
        _close_store(store)
    return 0


#: Seconds a stopping server gives the requests still being served to end, once its responses have ended.
_DRAIN_SECONDS = 5.0


def _stop(app: Any, tasks: Any, listeners: list[Any], sockets: dict[int, Any], grace: float) -> None:
    """Stop serving: accept no connection, end every response (within ``grace``), send what is left to send.

    The listening sockets close at once (new connections are refused); ``app.close()`` lets running responses
    finish for ``grace`` seconds and ends the rest ``failed``, while the loop goes on sending their last events to
    the clients still connected. Then requests still being served get :data:`_DRAIN_SECONDS` more.
    """
    import waitress.wasyncore  # noqa: PLC0415 - imported by the caller already

    for listener in listeners:
        waitress.wasyncore.dispatcher.close(listener)  # the listening socket only: its wake-up pipe stays
    closer = threading.Thread(target=_close_app, args=(app,), name="responsestore-stop")
    closer.start()
    while closer.is_alive():
        waitress.wasyncore.loop(timeout=0.05, map=sockets, use_poll=True, count=1)
    deadline = time.monotonic() + _DRAIN_SECONDS
    while time.monotonic() < deadline and (tasks.active_count > 0 or tasks.queue or _sending(sockets)):
        waitress.wasyncore.loop(timeout=0.05, map=sockets, use_poll=True, count=1)


def _sending(sockets: dict[int, Any]) -> bool:
    """Whether a connection still has bytes to send."""
    return any(getattr(each, "total_outbufs_len", 0) for each in list(sockets.values()))


def _close_app(app: Any) -> None:
    try:
        app.close()
    except Exception:  # the server stops all the same
        logging.getLogger("responsestore.server").exception("closing the app failed")


def _without_password(url: str) -> str:
    """``url`` with its password (``scheme://user:PASSWORD@host``), if any, replaced by ``***``."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://[^/@:]*:)[^/]*@", r"\1***@", url, flags=re.IGNORECASE)


def _raise_file_limit(needed: int) -> str | None:
    """Let the process open ``needed`` files (sockets), raising its soft limit if it must; else say why not."""
    try:
        import resource  # noqa: PLC0415 - Unix only
    except ImportError:  # pragma: no cover - Windows has no such limit to raise
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return None
    target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:  # pragma: no cover - the hard limit allows it, by the check above
        return f"cannot raise the open file limit to {target}: {exc}"
    if target < needed:
        return f"needs {needed} open files and the hard limit is {hard} (ulimit -Hn): lower it or raise that"
    return None


def _app_options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """``make_app``'s model and CORS arguments from ``--generate``, ``--model`` and ``--cors-origin``."""
    from .server._http import Cors  # noqa: PLC0415

    options: dict[str, Any] = {}
    generate = _load_generate(args.generate, parser) if args.generate else None
    models = _models(args.model, generate, parser)
    if models:
        options["models"] = models
    elif generate is not None:
        options["generate"] = generate
    if args.cors_origin:
        try:
            Cors(args.cors_origin)
        except ResponseStoreError as exc:
            parser.error(f"--cors-origin: {exc}")
        options["cors_origins"] = args.cors_origin
    return options


def _models(specs: Sequence[str], generate: Any, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The models ``--model NAME[=MODULE:CALLABLE]`` names: each served by its callable, else by ``generate``."""
    from .server._models import echo  # noqa: PLC0415

    models: dict[str, Any] = {}
    for spec in specs:
        name, separator, target = spec.partition("=")
        if not name or (separator and not target):
            parser.error(f"--model takes NAME or NAME=MODULE:CALLABLE, not {spec!r}")
        if name in models:
            parser.error(f"--model {name!r} is given twice")
        if target:
            models[name] = _load_generate(target, parser, "--model")
        else:
            models[name] = echo if generate is None else generate
    return models


def _load_generate(target: str, parser: argparse.ArgumentParser, flag: str = "--generate") -> Any:
    """The ``generate`` callable ``module:name`` names (``--generate``), imported from the current directory too."""
    module_name, _, name = target.partition(":")
    if not module_name or not name:
        parser.error(f"{flag} takes MODULE:CALLABLE, not {target!r}")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
        generate = getattr(module, name)
    except (ImportError, AttributeError) as exc:
        parser.error(f"{flag} {target!r}: {exc}")
    if not callable(generate):
        parser.error(f"{flag} {target!r} is not callable")
    return generate


def _close_store(store: object) -> None:
    close = getattr(store, "close", None)
    if close is not None:
        close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m responsestore", description=__doc__)
    parser.add_argument("--version", action="version", version=f"responsestore {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run a threaded simulation of a Responses API server")
    demo.add_argument("--workers", type=int, default=4, help="worker threads (default 4)")
    demo.add_argument("--turns", type=int, default=5, help="turns per conversation (default 5)")
    serve = commands.add_parser("serve", help="serve the Responses API over HTTP (needs the server extra)")
    serve.add_argument(
        "--store",
        default=os.environ.get(_STORE_VARIABLE, "memory://"),
        metavar="URL",
        help=_store_help(),
    )
    serve.add_argument(
        "--asgi",
        action="store_true",
        help="serve the ASGI app on uvicorn (needs the asgi extra): streams hold no thread, and the WebSocket mode "
        "is served at /v1/responses. Default: the WSGI app on waitress (needs the server extra)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    serve.add_argument(
        "--api-keys-file",
        metavar="PATH",
        help="accept the bearer keys of this file, one KEY=OWNER a line (blank lines and # comments ignored); "
        f"the environment variable {_API_KEYS_VARIABLE} may hold more, as KEY=OWNER entries separated by commas. "
        "Without any key, every key is accepted as owner None",
    )
    serve.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY=OWNER",
        help="accept bearer KEY as OWNER (repeatable); the key shows in the process list: prefer --api-keys-file "
        f"or {_API_KEYS_VARIABLE}",
    )
    serve.add_argument(
        "--threads",
        type=int,
        default=16,
        help="request threads (default 16): each request, and each open stream, holds one while it is served "
        "(with --asgi: ignored; streams hold no thread, and store calls run in a pool of 32)",
    )
    serve.add_argument(
        "--max-streams",
        type=int,
        metavar="N",
        help="the most streams open at once, below --threads so that other requests always find a thread; one "
        "more is 503 too_many_streams (default: --threads less a quarter of them, 12 for 16; with --asgi, 4096 "
        "and no bound from --threads)",
    )
    serve.add_argument(
        "--connection-limit",
        type=int,
        default=1000,
        metavar="N",
        help="the most open connections, idle ones included; beyond it new connections wait until some close "
        "(default 1000; with --asgi, connections and requests at once, beyond which uvicorn answers 503)",
    )
    serve.add_argument(
        "--channel-timeout",
        type=int,
        default=120,
        metavar="SECONDS",
        help="close a connection idle for this long (no request, no reply being sent; default 120); open streams "
        "and slow clients still receiving are never closed",
    )
    serve.add_argument("--workers", type=int, default=4, help="background worker threads (default 4)")
    serve.add_argument(
        "--generate",
        metavar="MODULE:CALLABLE",
        help="the model: a generate callable to import (default: the built-in echo model)",
    )
    serve.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME[=MODULE:CALLABLE]",
        help="serve the model NAME (repeatable; the first is the default), generated by CALLABLE or by --generate; "
        "other model names are then 404. Without any, every model name is served by --generate",
    )
    serve.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let browser pages from ORIGIN (https://host[:port], or * for any) call the API (repeatable; "
        "default: CORS off)",
    )
    serve.add_argument(
        "--lease-seconds",
        type=float,
        default=30.0,
        help="how long a response's lease lasts; a response whose server died ends failed within this plus "
        "--sweep-interval (default 30)",
    )
    serve.add_argument(
        "--sweep-interval",
        type=float,
        default=5.0,
        help="seconds between two sweeps of leases and expired responses (default 5)",
    )
    serve.add_argument(
        "--flush-interval",
        type=float,
        default=0.05,
        help="a streamed response logs its events at most this often, in seconds (default 0.05)",
    )
    serve.add_argument(
        "--stop-grace",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="on SIGTERM or Ctrl-C, running responses may finish for this long, then end failed ('the server is "
        "shutting down'); the process exits within this plus 5 seconds (default 10)",
    )
    serve.add_argument(
        "--model-timeout",
        type=float,
        default=300.0,
        help="seconds the model may go without yielding before its response fails (default 300; 0: no limit)",
    )
    args = parser.parse_args(argv)
    if args.command == "serve":
        if args.threads < 2 or args.workers < 1 or not 0 <= args.port <= 65535:
            parser.error("--threads must be at least 2, --workers at least 1, --port within 0..65535")
        if args.asgi:
            args.max_streams = args.max_streams or "auto"
            if args.max_streams != "auto" and args.max_streams < 1:
                parser.error("--max-streams must be at least 1")
        elif args.max_streams is None:
            args.max_streams = args.threads - max(1, args.threads // 4)
        if not args.asgi and not 1 <= args.max_streams < args.threads:
            parser.error("--max-streams must be at least 1 and below --threads (other requests need a thread)")
        if args.connection_limit < args.threads:
            parser.error("--connection-limit must be at least --threads")
        if args.channel_timeout < 1:
            parser.error("--channel-timeout must be at least 1 second")
        for flag in ("lease_seconds", "sweep_interval", "flush_interval", "stop_grace"):
            if not 0 < getattr(args, flag) < 1e9:
                parser.error(f"--{flag.replace('_', '-')} must be a positive number of seconds")
        if not 0 <= args.model_timeout < 1e9:
            parser.error("--model-timeout must be 0 (no limit) or a positive number of seconds")
        return _serve(args, parser)
    if args.workers < 1 or args.turns < 1:
        parser.error("--workers and --turns must be at least 1")
    return 0 if _demo(args.workers, args.turns, []) else 1


if __name__ == "__main__":
    sys.exit(main())
