"""A stand-in for a local model server: an OpenAI-compatible ``POST /v1/chat/completions`` that streams server-sent
events, as llama.cpp's ``llama-server``, Ollama and vLLM do, on a free loopback port.

It is deterministic, so tests can check what went through the example ``generate`` of ``docs/examples``:

- the last message is a tool result (``role: tool``): it answers ``It is <content>.``;
- tools are offered and the last user message mentions the weather: it calls the first tool with
  ``{"city": "Paris"}``, its arguments streamed in three pieces (``finish_reason: "tool_calls"``);
- the last user message starts with ``slowly``: it streams ``tick`` deltas until the client hangs up;
- otherwise it answers ``You said: <the last user message>``, one word a chunk; with ``max_tokens``, at most that
  many words (``finish_reason: "length"`` when cut).

Usage (``prompt_tokens``: the words of every message; ``completion_tokens``: the chunks sent) comes in a last chunk
when ``stream_options.include_usage`` is set. Every request body is kept in :attr:`ChatModelStub.requests`.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TIMEOUT = 30.0


class ChatModelStub:
    """The stand-in model server, serving in a thread until :meth:`stop`."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        #: Set when a client hung up on a ``slowly`` reply (the stub then stops generating).
        self.hung_up = threading.Event()
        #: Set once a ``slowly`` reply has sent its first delta.
        self.ticking = threading.Event()
        stub = self

        class Handler(_Handler):
            owner = stub

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(TIMEOUT)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: ChatModelStub

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/v1/chat/completions" or body.get("stream") is not True:
            self._send_json(400, {"error": {"message": "only streamed chat completions here", "type": "bad_request"}})
            return
        self.owner.requests.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            sent, finish = self._reply(body)
            self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
            if (body.get("stream_options") or {}).get("include_usage"):
                prompt = sum(len(str(message.get("content") or "").split()) for message in body["messages"])
                usage = {"prompt_tokens": prompt, "completion_tokens": sent, "total_tokens": prompt + sent}
                self._event({"choices": [], "usage": usage})
            self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            self.owner.hung_up.set()
            self.close_connection = True

    def _reply(self, body: dict[str, Any]) -> tuple[int, str]:
        """Stream the reply's deltas; return how many were sent and the finish reason."""
        last = body["messages"][-1]
        if last["role"] == "tool":
            return self._words(f"It is {last['content']}.", None)
        text = str(last.get("content") or "")
        tools = body.get("tools") or []
        if tools and "weather" in text.lower():
            name = tools[0]["function"]["name"]
            opening = {"index": 0, "id": "call_stub1", "type": "function", "function": {"name": name, "arguments": ""}}
            self._delta({"role": "assistant", "tool_calls": [opening]})
            for piece in ('{"city"', ': "Par', 'is"}'):
                self._delta({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
            return 3, "tool_calls"
        if text.startswith("slowly"):
            while True:  # until the client hangs up (a write then fails); paced like a model's tokens
                self._delta({"content": "tick "})
                self.owner.ticking.set()
                time.sleep(0.01)
        return self._words(f"You said: {text}", body.get("max_tokens"))

    def _words(self, text: str, limit: int | None) -> tuple[int, str]:
        words = text.split(" ")
        cut = limit is not None and len(words) > limit
        words = words[:limit] if cut else words
        for n, word in enumerate(words):
            self._delta({"role": "assistant", "content": word if n == 0 else " " + word})
        return len(words), "length" if cut else "stop"

    def _delta(self, delta: dict[str, Any]) -> None:
        self._event({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})

    def _event(self, chunk: dict[str, Any]) -> None:
        chunk = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 0, "model": "stub", **chunk}
        self._chunk(b"data: " + json.dumps(chunk).encode() + b"\n\n")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _send_json(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
