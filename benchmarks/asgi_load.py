"""The ASGI workload's stream client: many server-sent event streams and WebSocket responses open at once.

``benchmarks/asgi.py`` runs this file (through ``runpy``, as ``benchmarks/http.py`` runs ``http_load.py``) with the
arguments ``URL STREAMS WEBSOCKETS WORDS``: a process of its own, one event loop, so that its CPU is not the
suite's. It opens, all at once, ``STREAMS`` streamed creates (``POST /v1/responses`` with ``"stream": true``, over
raw asyncio streams: an HTTP/1.1 request, a chunked reply parsed by hand) and ``WEBSOCKETS`` WebSocket connections
to ``/v1/responses`` (the ``websockets`` client at its defaults, compression included), each sending one
``response.create``. Every request asks the model ``slow`` to repeat an input of ``WORDS`` words, one a tenth of a
second, and reads to its terminal event.

A stream counts as *open* from its first event until its terminal one. The process prints ``held`` the moment all
are open at once, ``released`` when the first one ends (whether or not they were all open), and at the end one line
of JSON: per kind, the streams started, opened and ended by terminal event type (``response.completed`` is the one
wanted), the first failures, the events received, the time to the first event and from the first event to the
terminal one (``WORDS`` tenths of a second at the model's pace); and the peak of open streams, the time it took to
open them all (the ramp) and how long they stayed all open. It imports only the standard library and ``websockets``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

__all__ = ["MODEL", "TERMINAL", "main", "run"]

#: The model the server serves as ``benchmarks._slow_model:generate``.
MODEL = "slow"
TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed", "error"})
WANTED = "response.completed"
KINDS = ("sse", "websocket")
SLACK = 120.0  # seconds a stream may take beyond its words' time before it counts as failed
FAILURES_KEPT = 5
_WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "seven", "wise", "owls")


class Tracker:
    """Counts what the streams of both kinds see, and reports the moments all are open and the first ends."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.open = 0
        self.peak = 0
        self.start = time.perf_counter()
        self.held_at: float | None = None
        self.released_at: float | None = None
        self.started = dict.fromkeys(KINDS, 0)
        self.opened = dict.fromkeys(KINDS, 0)
        self.ended: dict[str, dict[str, int]] = {kind: {} for kind in KINDS}
        self.failures: dict[str, list[str]] = {kind: [] for kind in KINDS}
        self.first_event_ms: dict[str, list[float]] = {kind: [] for kind in KINDS}
        self.open_seconds: dict[str, list[float]] = {kind: [] for kind in KINDS}
        self.events = dict.fromkeys(KINDS, 0)

    def opening(self, kind: str, began: float) -> None:
        """The first event of a stream of ``kind`` (begun at ``began``) has arrived."""
        self.opened[kind] += 1
        self.first_event_ms[kind].append(1e3 * (time.perf_counter() - began))
        self.open += 1
        self.peak = max(self.peak, self.open)
        if self.open == self.total and self.held_at is None:
            self.held_at = time.perf_counter()
            _say("held")

    def ending(self, kind: str, how: str, opened_at: float | None) -> None:
        """A stream of ``kind`` ended with the terminal event type ``how``.

        ``opened_at``: when its first event arrived (``perf_counter``), ``None`` if none did.
        """
        self._end(kind, how, opened_at)
        if opened_at is not None:
            self.open_seconds[kind].append(time.perf_counter() - opened_at)

    def failing(self, kind: str, description: str, opened_at: float | None) -> None:
        """A stream of ``kind`` failed (``description``) before its terminal event."""
        if len(self.failures[kind]) < FAILURES_KEPT:
            self.failures[kind].append(description)
        self._end(kind, "failed: " + description.split(":", 1)[0], opened_at)

    def _end(self, kind: str, how: str, opened_at: float | None) -> None:
        self.ended[kind][how] = self.ended[kind].get(how, 0) + 1
        if opened_at is not None:
            self.open -= 1
        if self.released_at is None:
            self.released_at = time.perf_counter()
            _say("released")


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def text(words: int) -> str:
    """An input of ``words`` ordinary words (which the slow model repeats, one a tenth of a second)."""
    return " ".join(_WORDS[i % len(_WORDS)] for i in range(words))


async def _headers(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    status_line = await reader.readline()
    parts = status_line.split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise RuntimeError(f"not an HTTP reply: {status_line[:100]!r}")
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def sse_stream(url: urllib.parse.SplitResult, body: bytes, tracker: Tracker) -> None:
    """One streamed create over its own connection, read to its terminal event."""
    began = time.perf_counter()
    tracker.started["sse"] += 1
    opened_at: float | None = None
    events = 0
    writer = None
    try:
        assert url.hostname is not None
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        writer.write(
            (
                f"POST {url.path.rstrip('/')}/responses HTTP/1.1\r\nHost: {url.netloc}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode()
            + body
        )
        status, headers = await _headers(reader)
        if status != 200 or headers.get("transfer-encoding", "").lower() != "chunked":
            raise RuntimeError(f"HTTP {status}: {(await reader.read(300))!r}")
        pending = b""
        last = ""
        while True:
            size = int((await reader.readline()).split(b";", 1)[0], 16)
            if size == 0:
                break
            pending += (await reader.readexactly(size + 2))[:-2]
            while (end := pending.find(b"\n\n")) >= 0:
                block, pending = pending[:end], pending[end + 2 :]
                if not block.startswith(b"event: "):
                    continue
                last = block[7 : block.index(b"\n")].decode()
                events += 1
                if opened_at is None:
                    opened_at = time.perf_counter()
                    tracker.opening("sse", began)
        if last not in TERMINAL:
            raise RuntimeError(f"the stream ended after {last or 'no event'!r}")
        tracker.ending("sse", last, opened_at)
    except Exception as exc:  # noqa: BLE001 - counted and reported: the point is how many streams end well
        tracker.failing("sse", f"{type(exc).__name__}: {exc}"[:300], opened_at)
    finally:
        tracker.events["sse"] += events
        if writer is not None:
            writer.close()


async def websocket_stream(url: str, body: str, tracker: Tracker) -> None:
    """One WebSocket connection sending one ``response.create``, read to its terminal event."""
    from websockets.asyncio.client import connect  # noqa: PLC0415 - only this kind needs it

    began = time.perf_counter()
    tracker.started["websocket"] += 1
    opened_at: float | None = None
    events = 0
    try:
        async with connect(url, proxy=None, open_timeout=SLACK, ping_interval=None, max_size=None) as connection:
            await connection.send(body)
            async for frame in connection:
                kind = json.loads(frame)["type"]
                events += 1
                if opened_at is None:
                    opened_at = time.perf_counter()
                    tracker.opening("websocket", began)
                if kind in TERMINAL:
                    tracker.ending("websocket", kind, opened_at)
                    return
        raise RuntimeError("the connection closed before a terminal event")
    except Exception as exc:  # noqa: BLE001 - counted and reported, as above
        tracker.failing("websocket", f"{type(exc).__name__}: {exc}"[:300], opened_at)
    finally:
        tracker.events["websocket"] += events


def _percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {f"p{p}": ordered[max(0, -(-len(ordered) * p // 100) - 1)] for p in (50, 95, 99)} | {"max": ordered[-1]}


async def run(url: str, streams: int, websockets: int, words: int) -> dict[str, Any]:
    """Open ``streams`` streamed creates and ``websockets`` WebSocket responses at once; return what they saw."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None or parts.port is None:
        raise ValueError(f"expected http://HOST:PORT/PATH, not {url!r}")
    ws_url = urllib.parse.urlunsplit(("ws", parts.netloc, parts.path.rstrip("/") + "/responses", "", ""))
    reply = text(words)
    sse_body = json.dumps({"model": MODEL, "input": reply, "stream": True}).encode()
    ws_body = json.dumps({"type": "response.create", "model": MODEL, "input": reply, "stream": True})
    tracker = Tracker(streams + websockets)
    cpu_start = time.process_time()
    tasks = [sse_stream(parts, sse_body, tracker) for _ in range(streams)]
    tasks += [websocket_stream(ws_url, ws_body, tracker) for _ in range(websockets)]
    await asyncio.wait_for(asyncio.gather(*tasks), words / 10 + SLACK)
    ended = time.perf_counter()
    return {
        "streams": streams,
        "websockets": websockets,
        "words": words,
        "peak_open": tracker.peak,
        "held": tracker.held_at is not None,
        "ramp_seconds": None if tracker.held_at is None else tracker.held_at - tracker.start,
        "held_seconds": (
            None if tracker.held_at is None or tracker.released_at is None else tracker.released_at - tracker.held_at
        ),
        "wall_seconds": ended - tracker.start,
        "client_cpu_seconds": time.process_time() - cpu_start,
        "kinds": {
            kind: {
                "started": tracker.started[kind],
                "opened": tracker.opened[kind],
                "ended": tracker.ended[kind],
                "completed": tracker.ended[kind].get(WANTED, 0),
                "failures": tracker.failures[kind],
                "events": tracker.events[kind],
                "first_event_ms": _percentiles(tracker.first_event_ms[kind]),
                "open_seconds": _percentiles(tracker.open_seconds[kind]),
            }
            for kind in KINDS
        },
    }


def _raise_file_limit(needed: int) -> None:
    """Let this process hold ``needed`` sockets, raising its soft limit as far as the hard one allows."""
    try:
        import resource  # noqa: PLC0415 - Unix only
    except ImportError:  # pragma: no cover
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def main(argv: Sequence[str] | None = None) -> int:
    """Run once (``URL STREAMS WEBSOCKETS WORDS``); print ``held``, ``released``, then the figures as JSON."""
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) != 4:
        print("usage: asgi_load.py URL STREAMS WEBSOCKETS WORDS", file=sys.stderr)
        return 2
    url, streams, websockets, words = args[0], int(args[1]), int(args[2]), int(args[3])
    _raise_file_limit(streams + websockets + 256)
    result = asyncio.run(run(url, streams, websockets, words))
    _say(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
