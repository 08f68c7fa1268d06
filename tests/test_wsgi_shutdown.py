"""``serve`` stopping on SIGTERM and SIGINT (Ctrl-C), as real processes with real signals.

A CI job started from a background shell may run its children with SIGINT ignored (and ``serve`` leaves an
ignored SIGINT ignored, as a shell's background job expects). So the children that get SIGINT are started through
a wrapper that sets Python's own SIGINT handler first, as in a terminal; a model reports how the child handles
SIGINT (``tests.models:sigint``), so each test knows the signal it sends is the one ``serve`` handles.
"""

from __future__ import annotations

import http.client
import json
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

import responsestore
from responsestore.server._runs import SHUTTING_DOWN, SHUTTING_DOWN_QUEUED
from tests.test_wsgi_serve import LINE, TIMEOUT, _read_lines

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

#: Runs ``python -m responsestore`` with SIGINT set as a terminal sets it (or ignored, with ``ignore`` first).
_WRAPPER = (
    "import runpy, signal, sys\n"
    "ignore = sys.argv[1] == 'ignore'\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN if ignore else signal.default_int_handler)\n"
    "sys.argv = ['responsestore', *sys.argv[2:]]\n"
    "runpy.run_module('responsestore', run_name='__main__', alter_sys=True)\n"
)


class Server:
    """A ``serve`` child: started as ``python -m responsestore``, or through the SIGINT wrapper."""

    def __init__(self, *args: str, sigint: str | None = None) -> None:
        command = (
            [sys.executable, "-m", "responsestore"] if sigint is None else [sys.executable, "-c", _WRAPPER, sigint]
        )
        self.process = subprocess.Popen(
            [*command, "serve", "--host", "127.0.0.1", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_read_lines, args=(self.process.stdout, self.lines), daemon=True).start()
        first = self.lines.get(timeout=TIMEOUT)
        match = LINE.fullmatch(first)
        assert match is not None, first
        self.url = match.group(1)
        self.port = int(match.group(2))

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url, api_key="any", max_retries=0, timeout=TIMEOUT)

    def finish(self) -> str:
        """Wait for the exit; assert it is clean (0, only the ready line on stdout, no traceback); return stderr."""
        assert self.process.stderr is not None
        stderr = self.process.stderr.read()
        assert self.process.wait(TIMEOUT) == 0, stderr
        assert self.lines.get(timeout=TIMEOUT) == ""  # nothing more on stdout
        assert "Traceback" not in stderr
        assert "KeyboardInterrupt" not in stderr
        return stderr


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(TIMEOUT)
        for stream in (server.process.stdout, server.process.stderr):
            if stream is not None:
                stream.close()


def _open_stream(server: Server, body: dict[str, Any]) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    headers = {"Content-Type": "application/json", "Authorization": "Bearer any", "Connection": "close"}
    connection.request("POST", "/v1/responses", body=json.dumps(body).encode(), headers=headers)
    reply = connection.getresponse()
    assert reply.status == 200
    return reply


def _events(reply: http.client.HTTPResponse) -> list[dict[str, Any]]:
    with reply:
        text = reply.read().decode()
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:  # accepted into the backlog as the listener closed: the next try is refused
        return False
    return False


def _wait_for(condition: Any) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.02)  # polling another process


@pytest.mark.parametrize("transport", [[], ["--asgi"]], ids=["waitress", "uvicorn"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_accepting_lets_responses_end_and_exits_0(
    servers: list[Server], tmp_path: Path, signum: signal.Signals, transport: list[str]
) -> None:
    finish, never = tmp_path / "finish", tmp_path / "never"
    url = f"sqlite:///{tmp_path / 'r.db'}"
    models = ["--model", "echo", "--model", "held=tests.models:held", "--model", "sigint=tests.models:sigint"]
    # One background worker, a 3-second grace, a lease far longer than the test: only the stop can end them.
    settings = ["--workers", "1", "--stop-grace", "3", "--lease-seconds", "600"]
    sigint = "terminal" if signum == signal.SIGINT else None
    server = Server("--store", url, *models, *settings, *transport, sigint=sigint)
    servers.append(server)
    client = server.client()
    if signum == signal.SIGINT:
        assert client.responses.create(model="sigint", input="x").output_text == "handled"
    store = responsestore.open(url)
    finishing = client.responses.create(model="held", input="x", background=True, metadata={"release": str(finish)})
    _wait_for(lambda: store.get(finishing.id).status.value == "in_progress")  # it has the one worker
    queued = client.responses.create(model="held", input="x", background=True, metadata={"release": str(never)})
    stream = _open_stream(server, {"model": "held", "input": "x", "stream": True, "metadata": {"release": str(never)}})
    answers: list[openai.types.responses.Response] = []
    waiting = threading.Thread(
        target=lambda: answers.append(
            client.responses.create(model="held", input="x", metadata={"release": str(never)})
        )
    )
    waiting.start()
    expected = 5 if signum == signal.SIGINT else 4
    _wait_for(lambda: len(store) == expected)

    server.process.send_signal(signum)
    stopped = time.monotonic()
    _wait_for(lambda: _refused(server.port))  # it accepts no connection at once ...
    assert server.process.poll() is None  # ... while its responses still have their grace period
    finish.touch()  # the running background response finishes within the grace period

    events = _events(stream)  # the live stream ends with the response's end, not a dropped connection
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["message"] == SHUTTING_DOWN
    waiting.join(TIMEOUT)
    (answer,) = answers
    assert answer.status == "failed"
    assert answer.error is not None
    assert answer.error.message == SHUTTING_DOWN
    stderr = server.finish()
    assert time.monotonic() - stopped < 3 + 5  # --stop-grace, plus the documented 5 seconds at most
    assert "ERROR" not in stderr

    records = {record.id: record for record in store.list(limit=100).data}
    assert len(records) == expected
    assert not [record for record in records.values() if record.status.value in ("queued", "in_progress")]
    assert records[finishing.id].status.value == "completed"
    assert records[queued.id].status.value == "failed"
    assert records[queued.id].error == {"code": "server_error", "message": SHUTTING_DOWN_QUEUED}
    store.close()


@pytest.mark.parametrize("transport", [[], ["--asgi"]], ids=["waitress", "uvicorn"])
@pytest.mark.parametrize("requests", [0, 1])
def test_ctrl_c_just_after_the_ready_line_exits_0_without_a_traceback(
    servers: list[Server], requests: int, transport: list[str]
) -> None:
    server = Server("--model", "sigint=tests.models:sigint", *transport, sigint="terminal")
    servers.append(server)
    if requests:
        assert server.client().responses.create(model="sigint", input="x").output_text == "handled"
    server.process.send_signal(signal.SIGINT)  # at once: nothing waits for the server to be idle
    assert server.finish() == ""


def test_an_ignored_sigint_stays_ignored_and_sigterm_still_stops(servers: list[Server]) -> None:
    server = Server("--model", "sigint=tests.models:sigint", sigint="ignore")
    servers.append(server)
    assert server.client().responses.create(model="sigint", input="x").output_text == "ignored"
    server.process.send_signal(signal.SIGINT)
    assert server.client().responses.create(model="sigint", input="x").output_text == "ignored"  # still serving
    server.process.send_signal(signal.SIGTERM)
    assert server.finish() == ""


def test_a_stopping_server_refuses_new_responses_on_open_connections(servers: list[Server], tmp_path: Path) -> None:
    never = tmp_path / "never"
    server = Server("--model", "echo", "--model", "held=tests.models:held", "--stop-grace", "2")
    servers.append(server)
    # A keep-alive connection, open before the signal, asks for a new response while the server stops.
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    headers = {"Content-Type": "application/json", "Authorization": "Bearer any"}
    connection.request("POST", "/v1/responses", body=json.dumps({"model": "echo", "input": "x"}), headers=headers)
    with connection.getresponse() as first:
        assert first.status == 200
        first.read()
    stream = _open_stream(server, {"model": "held", "input": "x", "stream": True, "metadata": {"release": str(never)}})
    server.process.send_signal(signal.SIGTERM)
    _wait_for(lambda: _refused(server.port))
    connection.request("POST", "/v1/responses", body=json.dumps({"model": "echo", "input": "y"}), headers=headers)
    with connection.getresponse() as late:
        assert late.status == 503
        error = json.loads(late.read())["error"]
    assert (error["code"], error["type"]) == ("stopping", "server_error")
    assert "shutting down" in error["message"]
    assert _events(stream)[-1]["type"] == "response.failed"
    connection.close()
    server.finish()
