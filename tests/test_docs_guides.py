"""The guides' examples run: ``docs/examples/local_model.py`` serves a real (stand-in) local model to the ``openai``
client over both transports and under ``python -m responsestore serve``; the migration example's before and after
servers behave alike where they should, and the after one keeps what the dict lost.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import IO, Any

import openai
import pytest

import responsestore
from tests.chat_model_stub import ChatModelStub
from tests.live_app import Live

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"
TIMEOUT = 30.0
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def local_model() -> ModuleType:
    return _load("local_model")


@pytest.fixture
def stub() -> Iterator[ChatModelStub]:
    server = ChatModelStub()
    yield server
    server.stop()


@pytest.fixture
def client(serve_on_both: Callable[..., Live], stub: ChatModelStub, local_model: ModuleType) -> openai.OpenAI:
    """An ``openai`` client of the example app, served on a real port by each transport in turn."""
    live = serve_on_both(generate=local_model.make_generate(stub.url, model="local"))
    return live.client()


# ---------------------------------------------------------------------------------------------- serve your model


def test_streamed_text_reaches_the_client(client: openai.OpenAI, stub: ChatModelStub) -> None:
    with client.responses.stream(model="m", input="hello there", instructions="Be brief.", temperature=0.5) as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert deltas == ["You", " said:", " hello", " there"]
    assert (final.status, final.output_text) == ("completed", "You said: hello there")
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (4, 4)  # the stub's own counts
    sent = stub.requests[-1]
    assert sent["model"] == "local"
    assert sent["temperature"] == 0.5
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}]
    again = client.responses.create(model="m", input="and again", previous_response_id=final.id)
    assert again.output_text == "You said: and again"
    assert [message["content"] for message in stub.requests[-1]["messages"]] == [
        "hello there",
        "You said: hello there",
        "and again",
    ]


def test_a_tool_call_and_its_result(client: openai.OpenAI, stub: ChatModelStub) -> None:
    question = "What is the weather in Paris?"
    with client.responses.stream(model="m", input=question, tools=[WEATHER_TOOL]) as stream:  # type: ignore[list-item]
        pieces = [event.delta for event in stream if event.type == "response.function_call_arguments.delta"]
        asked = stream.get_final_response()
    assert pieces == ['{"city"', ': "Par', 'is"}']
    call = asked.output[0]
    assert call.type == "function_call"
    assert (call.name, call.arguments, call.call_id) == ("get_weather", '{"city": "Paris"}', "call_stub1")
    assert stub.requests[-1]["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city.",
                "parameters": WEATHER_TOOL["parameters"],
            },
        }
    ]
    told = client.responses.create(
        model="m",
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        previous_response_id=asked.id,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    assert (told.status, told.output_text) == ("completed", "It is sunny.")
    messages = stub.requests[-1]["messages"]
    assert messages[1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_stub1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_stub1", "content": "sunny"},
    ]


def test_a_background_response_completes(client: openai.OpenAI) -> None:
    queued = client.responses.create(model="m", input="take your time", background=True)
    assert queued.status in ("queued", "in_progress")
    # Follow its stream to the end (the stream replays what it logged, then follows it live).
    events = [event.type for event in client.responses.retrieve(queued.id, stream=True)]
    assert events[-1] == "response.completed"
    done = client.responses.retrieve(queued.id)
    assert (done.status, done.background, done.output_text) == ("completed", True, "You said: take your time")


def test_a_cancelled_response_stops_the_model(client: openai.OpenAI, stub: ChatModelStub) -> None:
    running = client.responses.create(model="m", input="slowly, please", background=True)
    assert stub.ticking.wait(TIMEOUT)
    assert client.responses.cancel(running.id).status == "cancelled"
    assert stub.hung_up.wait(TIMEOUT), "the example kept its connection to the model open"
    assert client.responses.retrieve(running.id).status == "cancelled"


def test_max_output_tokens_ends_the_response_incomplete(client: openai.OpenAI) -> None:
    words = " ".join(f"w{n}" for n in range(20))
    cut = client.responses.create(model="m", input=words, max_output_tokens=16)
    assert cut.status == "incomplete"
    assert cut.incomplete_details is not None
    assert cut.incomplete_details.reason == "max_output_tokens"
    assert cut.output_text == "You said: " + " ".join(f"w{n}" for n in range(14))


def test_a_model_server_error_fails_the_response(serve_on_both: Callable[..., Live], local_model: ModuleType) -> None:
    stub = ChatModelStub()
    url = stub.url
    stub.stop()  # nothing listens there any more
    live = serve_on_both(generate=local_model.make_generate(url))
    failed = live.client().responses.create(model="m", input="anyone there?")
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.code == "server_error"


def test_the_request_mapping(local_model: ModuleType) -> None:
    tools = [WEATHER_TOOL, {**WEATHER_TOOL, "name": "get_time", "description": None, "parameters": None}]
    request = {
        "model": "asked",
        "max_output_tokens": 64,
        "tools": tools,
        "tool_choice": {
            "type": "allowed_tools",
            "mode": "required",
            "tools": [{"type": "function", "name": "get_time"}],
        },
        "text": {"format": {"type": "json_schema", "name": "answer", "schema": {"type": "object"}, "strict": True}},
    }
    conversation = [
        {"type": "message", "role": "developer", "content": "Answer in JSON."},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "auto"},
            ],
        },
        {"type": "message", "role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]},
        {"type": "function_call", "call_id": "c1", "name": "get_time", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "get_time", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "noon"}]},
        {"type": "reasoning", "summary": []},
    ]
    body = local_model.chat_request(conversation, request)
    assert body["model"] == "asked"
    assert body["max_tokens"] == 64
    assert [tool["function"]["name"] for tool in body["tools"]] == ["get_time"]
    assert body["tools"][0]["function"]["parameters"] == {"type": "object", "properties": {}}
    assert body["tool_choice"] == "required"
    assert body["response_format"]["json_schema"] == {"name": "answer", "schema": {"type": "object"}, "strict": True}
    messages = body["messages"]
    assert messages[0] == {"role": "system", "content": "Answer in JSON."}
    assert messages[1]["content"][1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    assert messages[2] == {"role": "assistant", "content": "No."}
    assert [call["id"] for call in messages[3]["tool_calls"]] == ["c1", "c2"]
    assert messages[4] == {"role": "tool", "tool_call_id": "c1", "content": "noon"}
    assert len(messages) == 5
    named = local_model.chat_request(
        [], {"model": "m", "tools": tools, "tool_choice": {"type": "function", "name": "get_weather"}}
    )
    assert named["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    plain = local_model.chat_request([], {"model": "m", "text": {"format": {"type": "json_object"}}})
    assert plain["response_format"] == {"type": "json_object"}
    assert "tools" not in plain


def test_the_stream_mapping(local_model: ModuleType) -> None:
    lines = [b": ping\n", b"\n", b'data: {"error": {"message": "model not loaded"}}\n']
    with pytest.raises(local_model.ModelError, match="model not loaded"):
        list(local_model.sse_data(lines))
    chunks = [
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "{}"}}]}}]},
        {"choices": [{"delta": {"content": "text"}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "more"}}]}}]},
    ]
    with pytest.raises(local_model.ModelError, match="tool call 0"):
        list(local_model.responses_chunks(chunks))
    filtered = [{"choices": [{"delta": {"content": "x"}, "finish_reason": "content_filter"}]}]
    assert list(local_model.responses_chunks(filtered)) == ["x", local_model.Incomplete("content_filter")]


def _read_lines(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def test_the_example_under_serve(stub: ChatModelStub) -> None:
    """The command line of the guide: ``python -m responsestore serve --generate local_model:generate``."""
    env = {**os.environ, "PYTHONPATH": f"{EXAMPLES}{os.pathsep}{ROOT}", "LOCAL_MODEL_URL": stub.url}
    command = [sys.executable, "-m", "responsestore", "serve", "--port", "0", "--generate", "local_model:generate"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
        match = re.fullmatch(r"responsestore serving on (http://\S+/v1)\n", lines.get(timeout=TIMEOUT))
        assert match is not None
        with openai.OpenAI(base_url=match.group(1), api_key="any", max_retries=0, timeout=TIMEOUT) as client:
            reply = client.responses.create(model="qwen2.5", input="from the command line")
        assert reply.output_text == "You said: from the command line"
        assert stub.requests[-1]["model"] == "qwen2.5"
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, stderr


# ---------------------------------------------------------------------------------------------- migrating from a dict


class EchoModel:
    """The model of the migration example's tests: it answers ``You said: <last message>``; a message that starts
    with ``wait`` waits for :attr:`go`, one that starts with ``fail`` raises."""

    def __init__(self) -> None:
        self.seen: list[list[dict[str, Any]]] = []
        self.go = asyncio.Event()
        self.waiting = asyncio.Event()

    async def __call__(self, messages: list[dict[str, Any]]) -> AsyncIterator[str]:
        self.seen.append(messages)
        last = messages[-1]["content"]
        if last.startswith("wait"):
            self.waiting.set()
            await self.go.wait()
        if last.startswith("fail"):
            raise RuntimeError("the model broke")
        for n, word in enumerate(f"You said: {last}".split(" ")):
            yield word if n == 0 else " " + word


@pytest.fixture(scope="module", params=["dict_store_before", "dict_store_after"])
def serving(request: pytest.FixtureRequest) -> ModuleType:
    return _load(request.param)


def test_both_servers_answer_continue_and_refuse_alike(serving: ModuleType) -> None:
    async def scenario() -> None:
        model = EchoModel()
        server = serving.ResponsesServing(model)
        first = await server.create_response({"model": "m", "input": "hello"})
        assert first["status"] == "completed"
        assert first["output"][0]["content"][0]["text"] == "You said: hello"
        second = await server.create_response({"model": "m", "input": "again", "previous_response_id": first["id"]})
        assert [message["content"] for message in model.seen[-1]] == ["hello", "You said: hello", "again"]
        assert (await server.retrieve_response(second["id"]))["status"] == "completed"
        for call in (server.retrieve_response, server.cancel_response):
            with pytest.raises(serving.ApiError) as info:
                await call("resp_missing")
            assert info.value.status == 404
        with pytest.raises(serving.ApiError) as info:
            await server.create_response({"model": "m", "input": "x", "previous_response_id": "resp_missing"})
        # A chain that cannot be continued: the dict server says 404; the store's ChainError is a 400, as
        # responsestore's own app answers it (code invalid_previous_response).
        assert info.value.status == (404 if serving.__name__.endswith("before") else 400)
        with pytest.raises(serving.ApiError) as info:
            await server.cancel_response(first["id"])
        assert info.value.status == 400

    asyncio.run(scenario())


def test_both_servers_cancel_a_background_response(serving: ModuleType) -> None:
    async def scenario() -> None:
        model = EchoModel()
        server = serving.ResponsesServing(model)
        queued = await server.create_response({"model": "m", "input": "wait for it", "background": True})
        assert queued["status"] == "queued"
        await model.waiting.wait()
        task = server.background_tasks[queued["id"]]
        assert (await server.cancel_response(queued["id"]))["status"] == "cancelled"
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await server.retrieve_response(queued["id"]))["status"] == "cancelled"

    asyncio.run(scenario())


def test_a_failing_background_model(serving: ModuleType) -> None:
    """What the migration fixes: the dict server leaves the response in_progress for ever; the store's ends it."""

    async def scenario() -> str:
        server = serving.ResponsesServing(EchoModel())
        queued = await server.create_response({"model": "m", "input": "fail now", "background": True})
        task = server.background_tasks[queued["id"]]
        await asyncio.wait([task])
        status: str = (await server.retrieve_response(queued["id"]))["status"]
        return status

    expected = "in_progress" if serving.__name__.endswith("before") else "failed"
    assert asyncio.run(scenario()) == expected


def test_after_shares_one_sqlite_file_between_processes(tmp_path: Path) -> None:
    after = _load("dict_store_after")

    async def scenario() -> None:
        url = f"sqlite:///{tmp_path}/responses.db"
        with responsestore.open(url) as store_a, responsestore.open(url) as store_b:
            worker_a = after.ResponsesServing(EchoModel(), store_a)
            model_b = EchoModel()
            worker_b = after.ResponsesServing(model_b, store_b)  # as a second worker process would open it
            first = await worker_a.create_response({"model": "m", "input": "hello"}, owner="team-a")
            again = {"model": "m", "input": "again", "previous_response_id": first["id"]}
            second = await worker_b.create_response(again, owner="team-a")
            assert second["status"] == "completed"
            assert [message["content"] for message in model_b.seen[-1]] == ["hello", "You said: hello", "again"]
            with pytest.raises(after.ApiError) as info:
                await worker_b.retrieve_response(first["id"], owner="team-b")
            assert info.value.status == 404

    asyncio.run(scenario())


def test_after_is_bounded_and_refuses_continuing_a_running_response() -> None:
    after = _load("dict_store_after")

    async def scenario() -> None:
        model = EchoModel()
        server = after.ResponsesServing(model, responsestore.open("memory://", max_records=2))
        ids = [(await server.create_response({"model": "m", "input": f"q{n}"}))["id"] for n in range(3)]
        with pytest.raises(after.ApiError) as info:
            await server.retrieve_response(ids[0])  # evicted: the least recently used finished response
        assert info.value.status == 404
        assert (await server.store.stats()).records == 2
        running = await server.create_response({"model": "m", "input": "wait", "background": True})
        await model.waiting.wait()
        with pytest.raises(after.ApiError) as info:
            await server.create_response({"model": "m", "input": "next", "previous_response_id": running["id"]})
        assert info.value.status == 400
        model.go.set()
        await server.background_tasks[running["id"]]

    asyncio.run(scenario())


# ---------------------------------------------------------------------------------------------- the testing toolkit


def test_the_toolkit_example_passes_under_pytest(tmp_path: Path) -> None:
    """``docs/examples/toolkit_tests.py`` as a user runs it: pytest with the installed plugin's fixtures (not this
    suite's conftest), a part of the conformance suite included. (pytest finds this project's configuration above
    the file all the same; ``-o addopts=`` undoes the part that matters.)"""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-v",
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",  # this project's addopts turn the plugin's entry point off
        "-W",
        "error",
        "--rootdir",
        str(tmp_path),
        str(EXAMPLES / "toolkit_tests.py"),
        "-k",
        "answer or paging or lifecycle",
    ]
    env = {name: value for name, value in os.environ.items() if name != "PYTEST_ADDOPTS"}  # CI's -n, --cov, ...
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed is not None, result.stdout[-3000:]
    assert int(passed.group(1)) >= 10
    assert "::test_an_answer_is_a_valid_response PASSED" in result.stdout
    assert "::test_answers_expire_after_their_ttl PASSED" in result.stdout
    assert result.stdout.count("::TestDeployedStore::") >= 8  # contract tests of the SQLite store


# ---------------------------------------------------------------------------------------------- the index page


def test_the_guides_are_in_the_toctree() -> None:
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    toctree = index.split("```{toctree}", 1)[1].split("```", 1)[0]
    entries = {line.strip() for line in toctree.splitlines() if line.strip() and not line.startswith(":")}
    pages = {path.stem for path in (ROOT / "docs").glob("*.md")} - {"index"}
    assert entries == pages


@pytest.mark.parametrize("name", ["index.md", "deploy.md", "migrating-from-a-dict.md"])
def test_the_pages_keep_their_examples(name: str) -> None:
    # tests/test_docs.py runs every page's examples; these pages must not lose theirs.
    assert ">>> " in (ROOT / "docs" / name).read_text(encoding="utf-8")


def test_the_pages_include_the_tested_examples() -> None:
    pages = {name: (ROOT / "docs" / name).read_text(encoding="utf-8") for name in ("serve-your-model.md", "index.md")}
    assert "```{literalinclude} examples/local_model.py" in pages["serve-your-model.md"]
    assert "```{literalinclude} examples/toolkit_tests.py" in pages["index.md"]
    migrating = (ROOT / "docs" / "migrating-from-a-dict.md").read_text(encoding="utf-8")
    for name in ("dict_store_before", "dict_store_after"):
        assert f"```{{literalinclude}} examples/{name}.py" in migrating
