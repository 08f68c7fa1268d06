"""``python -m responsestore serve`` as a real child process on a free loopback port (``--port 0``).

Children are stopped with SIGTERM (never SIGINT, which a background CI job may ignore).
"""

from __future__ import annotations

import io
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import openai
import pytest

from responsestore.__main__ import main
from tests.wire_checks import (
    check_compaction,
    check_event,
    check_input_tokens,
    check_item_page,
    check_model_list,
    check_response,
)

TIMEOUT = 30.0
LINE = re.compile(r"responsestore serving on (http://127\.0\.0\.1:(\d+)/v1)\n")


class Child:
    """A running ``serve`` process and the one line it printed."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "responsestore", "serve", "--host", "127.0.0.1", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        threading.Thread(target=_read_lines, args=(self.process.stdout, lines), daemon=True).start()
        self.lines = lines
        first = lines.get(timeout=TIMEOUT)  # the deadline for the server to start listening
        match = LINE.fullmatch(first)
        assert match is not None, first
        self.url = match.group(1)
        assert int(match.group(2)) > 0

    def client(self, key: str = "any") -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url, api_key=key, max_retries=0, timeout=TIMEOUT)

    def get(self, path: str, key: str = "any") -> Any:
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {key}"})  # noqa: S310
        with urllib.request.urlopen(request, timeout=TIMEOUT) as reply:  # noqa: S310 - our loopback server
            body = reply.read().decode()
            if reply.headers["content-type"] == "text/event-stream":
                return [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]
            return json.loads(body)

    def stop(self) -> str:
        """SIGTERM; assert a clean exit and that stdout held exactly the one line; return stderr."""
        self.process.send_signal(signal.SIGTERM)
        _, stderr = self.process.communicate(timeout=TIMEOUT)
        assert self.process.returncode == 0, stderr
        rest = []
        while True:
            try:
                rest.append(self.lines.get(timeout=TIMEOUT))
            except queue.Empty:  # pragma: no cover - the reader always ends with the end marker
                break
            if rest[-1] == "":
                break
        assert rest == [""], rest
        return stderr


def _read_lines(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)
    lines.put("")  # end of output


@pytest.fixture
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    yield started
    for child in started:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
            child.process.communicate(timeout=TIMEOUT)


def test_serve_on_memory_with_api_keys(children: list[Child]) -> None:
    child = Child("--api-key", "key-a=alice", "--api-key", "key-b=bob")
    children.append(child)
    alice = child.client("key-a")
    response = alice.responses.create(model="echo", input="hello from a child process")
    assert response.output_text == "hello from a child process"
    check_response(child.get(f"/responses/{response.id}", "key-a"))
    with pytest.raises(openai.NotFoundError):
        child.client("key-b").responses.retrieve(response.id)
    with pytest.raises(openai.AuthenticationError):
        child.client("key-c").responses.retrieve(response.id)
    # Streaming through waitress: every event leaves as it is made, in the SDK's types.
    with alice.responses.stream(model="echo", input="one two three four") as stream:
        kinds = [event.type for event in stream]
    assert kinds.count("response.output_text.delta") == 4
    events = child.get(f"/responses/{stream.get_final_response().id}?stream=true&starting_after=1", "key-a")
    for event in events:
        check_event(event)
    assert events[0]["sequence_number"] == 2
    child.stop()


def test_two_servers_share_one_sqlite_file_and_a_restart_keeps_everything(
    children: list[Child], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'responses.db'}"
    first, second = Child("--store", url), Child("--store", url)
    children += [first, second]
    one = first.client().responses.create(model="echo", input="turn one")
    two = second.client().responses.create(model="echo", input="turn two", previous_response_id=one.id)
    three = first.client().responses.create(model="echo", input="turn three", previous_response_id=two.id)
    assert three.usage is not None
    assert three.usage.input_tokens == 2 * 5  # the whole chain, whichever process stored each turn
    background = second.client().responses.create(model="echo", input="in the back", background=True)
    events = first.get(f"/responses/{background.id}?stream=true")  # follows the other process's worker
    assert events[-1]["type"] == "response.completed"
    first.stop()
    second.stop()

    again = Child("--store", url)
    children.append(again)
    for response in (one, two, three):
        stored = check_response(again.get(f"/responses/{response.id}"))
        assert stored.status == "completed"
        assert stored.output_text == response.output_text
        assert stored.previous_response_id == response.previous_response_id
    assert again.get(f"/responses/{background.id}?stream=true") == events
    page = check_item_page(again.get(f"/responses/{three.id}/input_items"))
    assert [item.content[0].text for item in page.data] == ["turn three"]  # type: ignore[union-attr]
    again.stop()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--api-key", "nokey"], "KEY=OWNER"),
        (["--api-key", "a=x", "--api-key", "a=y"], "twice"),
        (["--store", "nosuch://"], "cannot open the store"),
        (["--threads", "1"], "--threads must be at least 2"),
    ],
)
def test_serve_refuses_bad_arguments(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "responsestore", "serve", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


class _Watcher(io.StringIO):
    """Stands in for stdout: once the server says it listens, a thread uses it, then SIGTERMs this process."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []
        self.thread: threading.Thread | None = None

    def write(self, text: str) -> int:
        match = LINE.fullmatch(self.getvalue() + text)
        if match is not None and self.thread is None:
            self.thread = threading.Thread(target=self._use, args=(match.group(1),))
            self.thread.start()
        return super().write(text)

    def _use(self, url: str) -> None:
        client = openai.OpenAI(base_url=url, api_key="key-a", max_retries=0, timeout=TIMEOUT)
        self.seen.append(client.responses.create(model="echo", input="in process").output_text)
        os.kill(os.getpid(), signal.SIGTERM)


def test_serve_in_this_process_stops_on_sigterm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    watcher = _Watcher()
    monkeypatch.setattr(sys, "stdout", watcher)
    before = signal.getsignal(signal.SIGTERM)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    assert main(["serve", "--port", "0", "--store", url, "--api-key", "key-a=alice"]) == 0
    assert watcher.thread is not None
    watcher.thread.join(TIMEOUT)
    assert watcher.seen == ["in process"]
    assert LINE.fullmatch(watcher.getvalue())  # exactly the one line
    assert signal.getsignal(signal.SIGTERM) is before


def test_serve_reports_a_port_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"cannot listen on 127.0.0.1:{port}" in captured.err
    assert main(["serve", "--store", "sqlite://nowhere"]) == 2
    assert "cannot open the store" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lease-seconds", "0"], "--lease-seconds must be a positive number"),
        (["--sweep-interval", "-1"], "--sweep-interval must be a positive number"),
        (["--flush-interval", "nan"], "--flush-interval must be a positive number"),
        (["--model-timeout", "-5"], "--model-timeout must be 0"),
        (["--generate", "nocolon"], "MODULE:CALLABLE"),
        (["--generate", "tests.no_such_module:x"], "No module named"),
        (["--generate", "tests.models:no_such_name"], "no_such_name"),
        (["--generate", "tests.models:LEASE_TEXT"], "no attribute"),
        (["--generate", "responsestore:__version__"], "not callable"),
        (["--model", "=tests.models:shout"], "NAME or NAME=MODULE:CALLABLE"),
        (["--model", "a", "--model", "a"], "twice"),
        (["--model", "a=tests.models:nothing_here"], "--model 'tests.models:nothing_here'"),
        (["--cors-origin", "https://app.example/"], "--cors-origin"),
    ],
)
def test_serve_refuses_bad_run_settings(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["serve", "--port", "0", *args])
    assert exit.value.code == 2
    assert message in capsys.readouterr().err


def test_serve_runs_the_model_it_is_given(children: list[Child]) -> None:
    child = Child("--generate", "tests.models:paced", "--lease-seconds", "5", "--model-timeout", "0")
    children.append(child)
    response = child.client().responses.create(model="paced", input="given model", metadata={"delay": "0"})
    assert response.output_text == "given model"
    assert response.usage is not None
    assert response.usage.output_tokens == 2
    child.stop()


def test_serve_compacts_a_conversation_into_the_input_of_the_next_response(children: list[Child]) -> None:
    child = Child()
    children.append(child)
    client = child.client()
    first = client.responses.create(model="echo", input="tell me about compaction")
    second = client.responses.create(model="echo", input="and once more", previous_response_id=first.id)
    compacted = client.responses.with_raw_response.compact(model="echo", previous_response_id=second.id)
    raw = json.loads(compacted.text)
    check_compaction(raw)
    kinds = [(item["type"], item.get("role")) for item in raw["output"]]
    assert kinds == [("message", "user"), ("message", "user"), ("compaction", None)]
    # The compacted items are the whole context of a fresh response (no previous_response_id), passed as the SDK
    # parsed them, as OpenAI's guide does. The SDK types them as output items, so it warns while it serializes the
    # user messages (as it does against OpenAI's own compactions), and sends them unchanged.
    parsed = compacted.parse()
    with pytest.warns(UserWarning, match="serialized value may not be as expected"):
        follow = client.responses.create(
            model="echo",
            input=[*parsed.output, {"role": "user", "content": "next turn"}],  # type: ignore[list-item]
        )
    assert follow.output_text == "next turn"
    assert follow.usage is not None
    counted = client.responses.input_tokens.count(
        model="echo", input=[*raw["output"], {"role": "user", "content": "next turn"}]
    )
    assert counted.input_tokens == follow.usage.input_tokens == 4 + 3 + 2
    check_input_tokens(counted.model_dump(mode="json"))
    page = check_item_page(child.get(f"/responses/{follow.id}/input_items?order=asc"))
    assert [item.type for item in page.data] == ["message", "message", "compaction", "message"]
    child.stop()


def test_serve_allows_cors_for_its_origins(children: list[Child]) -> None:
    origin = "http://localhost:5173"
    child = Child("--cors-origin", origin, "--cors-origin", "https://app.example.com")
    children.append(child)
    preflight = urllib.request.Request(  # noqa: S310 - our loopback server
        child.url + "/responses",
        method="OPTIONS",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    with urllib.request.urlopen(preflight, timeout=TIMEOUT) as reply:  # noqa: S310
        assert reply.status == 200
        assert reply.headers["access-control-allow-origin"] == origin
        assert reply.headers["access-control-allow-headers"] == "authorization"
        assert reply.headers["x-request-id"].startswith("req_")
    created = (
        child.client()
        .with_options(default_headers={"Origin": origin})
        .responses.with_raw_response.create(model="echo", input="from a page")
    )
    assert created.headers["access-control-allow-origin"] == origin
    assert created.parse().output_text == "from a page"
    child.stop()


def test_serve_names_its_models(children: list[Child]) -> None:
    child = Child("--model", "echo", "--model", "loud=tests.models:shout")
    children.append(child)
    client = child.client()
    assert [model.id for model in client.models.list()] == ["echo", "loud"]
    check_model_list(child.get("/models"))
    assert client.responses.create(model="loud", input="hey there").output_text == "HEY THERE"
    assert client.responses.create(model="echo", input="hey there").output_text == "hey there"
    with pytest.raises(openai.NotFoundError) as unknown:
        client.responses.create(model="gpt-4o", input="x")
    assert unknown.value.code == "model_not_found"
    child.stop()
