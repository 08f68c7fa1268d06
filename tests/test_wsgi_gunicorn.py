"""The gunicorn recipe of the serving docs, run for real: workers on one SQLite file, with ``responsestore.gunicorn``.

SIGHUP (gunicorn replaces its workers) and SIGTERM (gunicorn stops) must leave no response ``queued`` or
``in_progress``: each stopping worker closes its app, which ends its responses. The app's lease is far longer than
the test, so nothing else (the lease sweep of another worker) could end them.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import openai
import pytest

import responsestore
from responsestore.server._runs import SHUTTING_DOWN

gunicorn_config = pytest.importorskip("gunicorn.config")
#: Recent gunicorn opens a control socket in ~/.gunicorn unless told not to: the tests leave nothing there.
NO_CONTROL_SOCKET = ["--no-control-socket"] if "control_socket_disable" in gunicorn_config.Config().settings else []
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="gunicorn runs on POSIX only")

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 30.0
APP = """
import os

import responsestore
from responsestore.wsgi import echo, make_app
from tests.models import held

store = responsestore.open(os.environ["RESPONSESTORE_URL"])
application = make_app(store, models={"echo": echo, "held": held}, stop_grace=2.0, lease_seconds=600.0)
"""


class Gunicorn:
    """A gunicorn master serving the app of ``APP``, with the hooks of ``responsestore.gunicorn``."""

    def __init__(self, directory: Path, url: str, worker_class: str) -> None:
        (directory / "rs_gunicorn_app.py").write_text(APP, encoding="utf-8")
        threads = ["--threads", "4"] if worker_class == "gthread" else []
        command = [
            sys.executable, "-m", "gunicorn",
            "-c", "python:responsestore.gunicorn",
            "--worker-class", worker_class, "--workers", "2", *threads,
            "--bind", "127.0.0.1:0", "--graceful-timeout", "20",
            "--pythonpath", f"{directory},{ROOT}", *NO_CONTROL_SOCKET,
            "rs_gunicorn_app:application",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, cwd=directory, env={**os.environ, "RESPONSESTORE_URL": url}, stderr=subprocess.PIPE, text=True
        )
        assert self.process.stderr is not None
        self.log: list[str] = []
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, args=(self.process.stderr,), daemon=True)
        self.reader.start()
        while True:
            line = self.lines.get(timeout=TIMEOUT)
            found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line)
            if found:
                self.port = int(found.group(1))
                break
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.log.append(line)
            self.lines.put(line)

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url, api_key="any", max_retries=0, timeout=TIMEOUT)

    def stream(self, body: dict[str, Any]) -> http.client.HTTPResponse:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        headers = {"Content-Type": "application/json", "Connection": "close"}  # the reply owns the socket
        connection.request("POST", "/v1/responses", body=json.dumps(body), headers=headers)
        reply = connection.getresponse()
        assert reply.status == 200
        assert reply.readline().startswith(b"event: response.created")
        return reply


@pytest.fixture
def masters() -> Iterator[list[Gunicorn]]:
    started: list[Gunicorn] = []
    yield started
    for master in started:
        if master.process.poll() is None:
            master.process.kill()
            master.process.wait(TIMEOUT)
        master.reader.join(TIMEOUT)
        if master.process.stderr is not None:
            master.process.stderr.close()


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.05)  # polling other processes


def _active(store: responsestore.BaseStore) -> list[responsestore.ResponseRecord]:
    return [r for r in store.list(limit=100).data if r.status.value in ("queued", "in_progress")]


def _last_event(reply: http.client.HTTPResponse) -> dict[str, Any]:
    with reply:
        lines = [line for line in reply.read().decode().splitlines() if line.startswith("data: ")]
    event: dict[str, Any] = json.loads(lines[-1][6:])
    return event


def _start_work(master: Gunicorn, store: responsestore.BaseStore, never: Path) -> http.client.HTTPResponse:
    """Two background responses and a live stream, all held by the model until the worker stops."""
    client = master.client()
    held = {"release": str(never)}
    for _ in range(2):
        client.responses.create(model="held", input="x", background=True, metadata=held)
    stream = master.stream({"model": "held", "input": "x", "stream": True, "metadata": held})
    _wait_for(lambda: len(_active(store)) == 3 and all(r.status.value == "in_progress" for r in _active(store)))
    return stream


@pytest.mark.parametrize("worker_class", ["gthread", "sync"])
def test_sighup_and_sigterm_leave_no_response_running(
    masters: list[Gunicorn], tmp_path: Path, worker_class: str
) -> None:
    url = f"sqlite:///{tmp_path / 'responses.db'}"
    never = tmp_path / "never"
    master = Gunicorn(tmp_path, url, worker_class)
    masters.append(master)
    store = responsestore.open(url)

    # SIGHUP: gunicorn starts new workers and stops the old ones, which end the responses they run.
    stream = _start_work(master, store, never)
    master.process.send_signal(signal.SIGHUP)
    last = _last_event(stream)
    assert last["type"] == "response.failed"
    assert last["response"]["error"]["message"] == SHUTTING_DOWN
    _wait_for(lambda: not _active(store))
    ended = store.list(limit=100).data
    assert len(ended) == 3
    assert {(r.status.value, r.error["message"] if r.error else None) for r in ended} == {("failed", SHUTTING_DOWN)}
    # The new workers serve.
    _wait_for(lambda: master.client().responses.create(model="echo", input="after reload").status == "completed")

    # SIGTERM: gunicorn stops; so does every response.
    stream = _start_work(master, store, never)
    master.process.send_signal(signal.SIGTERM)
    assert _last_event(stream)["type"] == "response.failed"
    assert master.process.wait(TIMEOUT) == 0
    assert not _active(store)
    assert len(store.list(limit=100).data) == 3 + 1 + 3
    log = "".join(master.log)
    assert "Traceback" not in log, log
    store.close()


def test_the_hooks_leave_other_apps_alone() -> None:
    from responsestore.gunicorn import post_worker_init, worker_exit  # noqa: PLC0415

    def other_app(environ: Any, start_response: Any) -> list[bytes]:
        return []

    class Worker:
        wsgi = staticmethod(other_app)

    before = signal.getsignal(signal.SIGTERM)
    post_worker_init(Worker())
    worker_exit(None, Worker())
    worker_exit(None, object())  # the master calls it too, for a worker object without an app
    assert signal.getsignal(signal.SIGTERM) is before


def test_the_hooks_say_how_to_install_gunicorn_when_it_is_missing() -> None:
    code = "import sys; sys.modules['gunicorn'] = None; import responsestore.gunicorn"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, check=False, cwd=ROOT
    )
    assert result.returncode == 1
    assert "pip install 'responsestore[gunicorn]'" in result.stderr
