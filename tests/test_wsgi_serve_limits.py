"""``serve`` under many streams and idle connections, over real sockets: threads, streams and connections.

The children run ``python -m responsestore serve`` (waitress); streams are held open by a model that waits for a
file the test creates (an event across processes).
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.test_wsgi_serve import TIMEOUT, Child, children

__all__ = ["children"]  # the fixture, shared with test_wsgi_serve


def _stream(child: Child, method: str, path: str, body: Any = None) -> http.client.HTTPResponse:
    """Start a stream and read its head; the caller reads (or closes) the rest."""
    url = urllib.parse.urlsplit(child.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=TIMEOUT)
    payload = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Connection": "close"}  # the reply owns the socket
    connection.request(method, url.path + path, body=payload, headers=headers)
    reply = connection.getresponse()
    assert reply.status == 200, reply.read()
    assert reply.headers["content-type"] == "text/event-stream"
    return reply


def _last_event(reply: http.client.HTTPResponse) -> str:
    with reply:
        kinds = [line[7:].strip() for line in reply.read().decode().splitlines() if line.startswith("event: ")]
    return kinds[-1]


@pytest.mark.parametrize(
    ("args", "max_streams"),
    [((), 12), (("--threads", "4"), 3), (("--threads", "6", "--max-streams", "2"), 2)],
    ids=["defaults", "threads-4", "max-streams-2"],
)
def test_open_streams_never_take_the_threads_other_requests_need(
    children: list[Child], tmp_path: Path, args: tuple[str, ...], max_streams: int
) -> None:
    release = tmp_path / "release"
    child = Child("--model", "echo", "--model", "held=tests.models:held", *args)
    children.append(child)
    client = child.client()
    done = client.responses.create(model="echo", input="answered before")
    held: dict[str, Any] = {"model": "held", "input": "x", "metadata": {"release": str(release)}}
    background = client.responses.create(model="held", input="x", metadata=held["metadata"], background=True)
    # Every slot taken: live streams of the held model, and one replay following the held background response.
    streams = [_stream(child, "GET", f"/responses/{background.id}?stream=true")]
    streams += [_stream(child, "POST", "/responses", {**held, "stream": True}) for _ in range(max_streams - 1)]
    try:
        started = time.monotonic()
        assert client.responses.retrieve(done.id).output_text == "answered before"
        created = client.responses.create(model="echo", input="still answering")
        assert created.output_text == "still answering"
        assert client.responses.input_items.list(created.id).data
        assert client.models.retrieve("echo").id == "echo"
        assert time.monotonic() - started < TIMEOUT / 2  # answered, not timed out waiting for a thread
        one_too_many: list[Callable[[], object]] = [
            lambda: client.responses.create(model="echo", input="one too many", stream=True),
            lambda: client.responses.retrieve(done.id, stream=True),
        ]
        for start in one_too_many:
            with pytest.raises(openai.InternalServerError) as refused:
                start()
            assert refused.value.status_code == 503
            assert refused.value.code == "too_many_streams"
            assert refused.value.type == "server_error"
            assert refused.value.response.headers["retry-after"] == "5"
    finally:
        release.touch()
        kinds = [_last_event(stream) for stream in streams]
    assert kinds == ["response.completed"] * max_streams
    # The slots are free again (each is given back once its stream's body is closed, just after the last event).
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            with client.responses.stream(model="echo", input="streams again") as stream:
                assert stream.get_final_response().output_text == "streams again"
            break
        except openai.InternalServerError:
            assert time.monotonic() < deadline
            time.sleep(0.05)  # a slot is freed just after its stream's last byte
    child.stop()


def test_a_client_leaving_its_stream_frees_the_slot(children: list[Child]) -> None:
    child = Child("--generate", "tests.models:paced", "--threads", "2", "--max-streams", "1")
    children.append(child)
    words = " ".join(["word"] * 2000)  # a reply of 2000 words, one every 10 ms: 20 seconds
    body = {"model": "m", "input": words, "stream": True, "metadata": {"delay": "0.01"}}
    stream = _stream(child, "POST", "/responses", body)
    assert stream.readline().startswith(b"event: response.created")
    client = child.client()
    with pytest.raises(openai.InternalServerError):
        client.responses.create(model="m", input="x", stream=True)
    stream.close()  # the client leaves; waitress notices at one of the next events and closes the body
    deadline = time.monotonic() + TIMEOUT / 2  # well before the reply would have ended
    while True:
        try:
            with client.responses.stream(model="m", input="again", metadata={"delay": "0"}) as again:
                assert again.get_final_response().output_text == "again"
            break
        except openai.InternalServerError:
            assert time.monotonic() < deadline
            time.sleep(0.05)  # the slot is freed once waitress sees the closed connection
    child.stop()


def test_a_hundred_and_twenty_idle_connections_lock_nobody_out(children: list[Child]) -> None:
    child = Child()  # the default --connection-limit is 1000 (waitress's own is 100)
    children.append(child)
    url = urllib.parse.urlsplit(child.url)
    address = (url.hostname or "", url.port or 0)
    idle = [socket.create_connection(address, timeout=TIMEOUT) for _ in range(120)]
    try:
        for index, connection in enumerate(idle):
            if index % 2:  # half of them slow clients, stuck in the middle of their request's head
                connection.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n")
        client = child.client()
        created = client.responses.create(model="echo", input="not locked out")
        assert client.responses.retrieve(created.id).output_text == "not locked out"
    finally:
        for connection in idle:
            connection.close()
    child.stop()


def test_past_the_connection_limit_a_client_waits_until_idle_connections_time_out(children: list[Child]) -> None:
    child = Child("--threads", "4", "--connection-limit", "10", "--channel-timeout", "2")
    children.append(child)
    url = urllib.parse.urlsplit(child.url)
    address = (url.hostname or "", url.port or 0)
    idle = [socket.create_connection(address, timeout=TIMEOUT) for _ in range(10)]
    try:
        answered: list[str] = []
        waiting = threading.Thread(
            target=lambda: answered.append(child.client().responses.create(model="echo", input="waited").output_text)
        )
        waiting.start()
        # The server closes the idle connections after --channel-timeout (they see the end of the stream) ...
        for connection in idle:
            assert connection.recv(1) == b""
        # ... and then accepts the waiting client.
        waiting.join(TIMEOUT)
        assert answered == ["waited"]
    finally:
        for connection in idle:
            connection.close()
    child.stop()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threads", "4", "--max-streams", "4"], "--max-streams must be at least 1 and below --threads"),
        (["--max-streams", "0"], "--max-streams must be at least 1"),
        (["--threads", "8", "--connection-limit", "4"], "--connection-limit must be at least --threads"),
        (["--channel-timeout", "0"], "--channel-timeout must be at least 1"),
    ],
)
def test_serve_refuses_bad_limits(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from responsestore.__main__ import main  # noqa: PLC0415

    with pytest.raises(SystemExit) as exit:
        main(["serve", "--port", "0", *args])
    assert exit.value.code == 2
    assert message in capsys.readouterr().err
