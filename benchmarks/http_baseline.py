"""The baseline of the HTTP benchmark: a plain-dict Responses API server, as servers write one today.

Three routes, the ones the benchmark calls: ``POST /v1/responses`` (a JSON body with ``model`` and an ``input``
string), ``GET /v1/responses/{id}`` and ``GET /v1/responses/{id}/input_items`` (its first page, newest first).
A create runs the model responsestore ships (:func:`responsestore.wsgi.echo`, its text deltas joined), builds
an OpenAI-shaped ``Response`` dict with the same fields the responsestore server sends, and keeps it and its
input items in two plain dicts under one ``threading.Lock``. It validates next to nothing, never expires or
evicts, logs no stream events and keeps no index: that is the point, it is the floor a store is measured
against.

Served by waitress like ``python -m responsestore serve``, with the same options the benchmark passes to it::

    python -m benchmarks.http_baseline --host 127.0.0.1 --port 0 --threads 8

It prints ``plain-dict baseline serving on http://HOST:PORT/v1`` once it listens and stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import FrameType
from typing import Any

from responsestore._wire import RESPONSE_DEFAULTS
from responsestore.wsgi import Usage, echo

__all__ = ["PlainDictApp", "main"]

Reply = tuple[str, list[tuple[str, str]], bytes]

#: The request parameters a ``Response`` echoes back, at OpenAI's defaults (the responsestore server sends them).
DEFAULTS: Mapping[str, Any] = RESPONSE_DEFAULTS
PAGE = 20  # the default page size of input_items


def _item_id() -> str:
    return "msg_" + uuid.uuid4().hex


def _json(status: str, data: object) -> Reply:
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))], payload


def _not_found(what: str) -> Reply:
    return _json("404 Not Found", {"error": {"message": f"No {what} found.", "type": "invalid_request_error"}})


class PlainDictApp:
    """The WSGI app: responses and their input items in two dicts under one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._responses: dict[str, dict[str, Any]] = {}
        self._input_items: dict[str, list[dict[str, Any]]] = {}
        self._routes: list[tuple[re.Pattern[str], str, Callable[..., Reply]]] = [
            (re.compile(r"/v1/responses"), "POST", self._create),
            (re.compile(r"/v1/responses/([^/]+)"), "GET", self._retrieve),
            (re.compile(r"/v1/responses/([^/]+)/input_items"), "GET", self._list_input_items),
        ]

    def __call__(self, environ: Mapping[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        for pattern, allowed, handler in self._routes:
            match = pattern.fullmatch(path)
            if match is not None and method == allowed:
                status, headers, payload = handler(environ, *match.groups())
                break
        else:
            status, headers, payload = _not_found("route")
        start_response(status, headers)
        return [payload]

    def _create(self, environ: Mapping[str, Any]) -> Reply:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length))
        items = [
            {
                "id": _item_id(),
                "type": "message",
                "role": "user",
                "status": "completed",
                "content": [{"type": "input_text", "text": body["input"]}],
            }
        ]
        text: list[str] = []
        usage = Usage(input_tokens=0, output_tokens=0)
        for chunk in echo(items, body):
            if isinstance(chunk, str):
                text.append(chunk)
            else:
                usage = chunk
        now = int(time.time())
        part = {"type": "output_text", "text": "".join(text), "annotations": [], "logprobs": []}
        response = {
            **DEFAULTS,
            "id": "resp_" + uuid.uuid4().hex,
            "object": "response",
            "created_at": now,
            "completed_at": now,
            "model": body["model"],
            "status": "completed",
            "output": [
                {"type": "message", "id": _item_id(), "role": "assistant", "status": "completed", "content": [part]}
            ],
            "previous_response_id": None,
            "instructions": None,
            "tools": [],
            "metadata": {},
            "usage": {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "total_tokens": usage.input_tokens + usage.output_tokens,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0},
            },
            "error": None,
            "incomplete_details": None,
            "background": False,
        }
        with self._lock:
            self._responses[response["id"]] = response
            self._input_items[response["id"]] = items
        return _json("200 OK", response)

    def _retrieve(self, environ: Mapping[str, Any], id: str) -> Reply:
        with self._lock:
            response = self._responses.get(id)
        return _not_found("response") if response is None else _json("200 OK", response)

    def _list_input_items(self, environ: Mapping[str, Any], id: str) -> Reply:
        with self._lock:
            items = self._input_items.get(id)
        if items is None:
            return _not_found("response")
        page = items[::-1][:PAGE]  # newest first, as the API's default order is
        return _json(
            "200 OK",
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else "",
                "last_id": page[-1]["id"] if page else "",
                "has_more": len(items) > PAGE,
            },
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Serve :class:`PlainDictApp` on waitress until SIGTERM; return the exit code."""
    import waitress.server  # noqa: PLC0415 - the server extra is optional
    import waitress.wasyncore  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m benchmarks.http_baseline", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)
    sockets: dict[int, Any] = {}
    server = waitress.server.create_server(
        PlainDictApp(), host=args.host, port=args.port, threads=args.threads, map=sockets
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"plain-dict baseline serving on http://{server.effective_host}:{server.effective_port}/v1", flush=True)
    try:
        server.run()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.task_dispatcher.shutdown()
        waitress.wasyncore.close_all(sockets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
