"""``serve --asgi``'s uvicorn runner (``responsestore._uvicorn``) and the ASGI lifespan, in this process.

The ``serve --asgi`` process itself, with real signals, is tested in ``test_wsgi_shutdown``; here the runner is
driven directly, so that what it does is measured: it serves until asked to stop, then closes the app.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import openai
import pytest

import responsestore
from responsestore import _uvicorn
from responsestore.__main__ import main
from responsestore.asgi import make_app
from tests.live_app import TIMEOUT, Uvicorn


def test_the_runner_serves_until_asked_to_stop_then_closes_the_app() -> None:
    app = make_app(responsestore.open("memory://"))
    sock = _uvicorn.listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    ready, stop = threading.Event(), threading.Event()
    runner = threading.Thread(
        target=_uvicorn.run,
        args=(app, sock),
        kwargs={
            "connection_limit": 100,
            "keep_alive": 5,
            "max_message_bytes": 4 * app.max_body_bytes,
            "stop_grace": 1.0,
            "wait_for_stop": lambda: stop.wait(TIMEOUT),
            "ready": ready.set,
        },
    )
    runner.start()
    try:
        assert ready.wait(TIMEOUT)
        with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0) as client:
            assert client.responses.create(model="echo", input="served by the runner").output_text == (
                "served by the runner"
            )
    finally:
        stop.set()
        runner.join(TIMEOUT)
        sock.close()
    assert not runner.is_alive()
    assert app.runner.stopping.is_set()  # the runner closed the app


def test_listening_on_a_taken_port_is_an_oserror() -> None:
    taken = _uvicorn.listen("127.0.0.1", 0)
    try:
        with pytest.raises(OSError, match="in use"):
            _uvicorn.listen("127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()


def test_the_lifespan_shutdown_closes_the_app() -> None:
    app = make_app(responsestore.open("memory://"))
    server = Uvicorn(app, lifespan="on")
    try:
        with openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key="k", max_retries=0) as client:
            assert client.models.retrieve("any").id == "any"
        assert not app.runner.stopping.is_set()
    finally:
        server.stop()
    assert app.runner.stopping.is_set()


def test_serve_asgi_in_this_process_serves_then_stops_on_sigterm(capsys: pytest.CaptureFixture[str]) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    answers: list[str] = []

    returned = threading.Event()

    def client() -> None:  # once the server answers (or after the deadline), ask it to stop as an operator would
        deadline = time.monotonic() + TIMEOUT
        with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0) as api:
            while not answers and time.monotonic() < deadline and not returned.is_set():
                try:
                    answers.append(api.responses.create(model="echo", input="in process").output_text)
                except openai.APIConnectionError:  # noqa: PERF203 - retried until the server listens
                    time.sleep(0.02)  # polling until the server listens
        if not returned.is_set():
            os.kill(os.getpid(), signal.SIGTERM)  # handled by serve, which runs in this (the main) thread

    asking = threading.Thread(target=client)
    asking.start()
    try:
        code = main(["serve", "--asgi", "--host", "127.0.0.1", "--port", str(port), "--stop-grace", "1"])
    finally:
        returned.set()
    asking.join(TIMEOUT)
    assert code == 0
    assert answers == ["in process"]
    assert capsys.readouterr().out == f"responsestore serving on http://127.0.0.1:{port}/v1\n"
