"""WebSocket mode (``responsestore._websocket``): uvicorn on a loopback port, the ``openai`` SDK's WebSocket client and
a plain ``websockets`` client. Every frame the server sends is checked: events with the SDK's and the Open Responses
models, ``error`` frames with OpenAI's error shape and the Open Responses ``WebSocketErrorEvent``."""

from __future__ import annotations

import asyncio
import http.client
import json
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any

import openai
import pytest
from openai.types.responses import ResponseSteerFailedEvent
from websockets.exceptions import ConnectionClosedOK, InvalidStatus
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect
from websockets.sync.connection import Connection

import responsestore
from responsestore import _websocket
from responsestore.asgi import Unauthorized, make_app
from tests.live_app import Live
from tests.wire_checks import check_event, check_response

if sys.version_info >= (3, 11):
    from openresponses_types import WebSocketErrorEvent

TIMEOUT = 15.0
TERMINAL = {"response.completed", "response.failed", "response.incomplete"}
KEYS = {"key-a": "alice", "key-b": "bob"}


def _owners(key: str | None) -> str:
    if key not in KEYS:
        raise Unauthorized
    return KEYS[key]


# ------------------------------------------------------------------------------------------------ the server


class Served(Live):
    """The app on uvicorn (see ``tests.live_app``), with a plain WebSocket client and a raw ``GET``."""

    def socket_of(self, key: str | None = "key-a", path: str = "/v1/responses") -> ClientConnection:
        """A plain WebSocket client connection (close it, or use it in a ``with``)."""
        headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        return ws_connect(
            f"ws://127.0.0.1:{self.port}{path}", additional_headers=headers, open_timeout=TIMEOUT, max_size=None
        )

    def get(self, path: str, key: str = "key-a") -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        try:
            connection.request("GET", "/v1" + path, headers={"Authorization": f"Bearer {key}"})
            reply = connection.getresponse()
            return reply.status, reply.read()
        finally:
            connection.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(**kwargs: Any) -> Served:
        kwargs.setdefault("authenticate", _owners)
        served = Served(make_app(responsestore.open("memory://"), **kwargs))
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


# ------------------------------------------------------------------------------------------------ checks


def check_frame(frame: dict[str, Any]) -> dict[str, Any]:
    """Validate one server frame: an event of a response, an ``error`` frame, or ``response.steer.failed``."""
    if frame["type"] == "error":
        assert set(frame) <= {"type", "status", "error", "stream_id"}, frame
        assert isinstance(frame["status"], int)
        error = frame["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert isinstance(error["code"], str)
        assert isinstance(error["message"], str)
        assert 0 < len(error["message"]) <= 1_100
        assert error["param"] is None or isinstance(error["param"], str)
        assert error["type"] in {"invalid_request_error", "authentication_error", "server_error"}
        if sys.version_info >= (3, 11):  # openresponses-types needs 3.11
            WebSocketErrorEvent.model_validate(frame)
        return frame
    if frame["type"] == "response.steer.failed":
        ResponseSteerFailedEvent.model_validate(frame)
        return frame
    check_event({name: value for name, value in frame.items() if name != "stream_id"})
    return frame


def turn(ws: Connection) -> list[dict[str, Any]]:
    """The frames of one turn: up to its terminal event or its ``error`` frame; their sequence numbers checked."""
    frames: list[dict[str, Any]] = []
    while True:
        frame = check_frame(json.loads(ws.recv(timeout=TIMEOUT)))
        frames.append(frame)
        if frame["type"] == "error" or frame["type"] in TERMINAL:
            break
    numbers = [frame["sequence_number"] for frame in frames if frame["type"] != "error"]
    if numbers:  # consecutive, from 0 at response.created
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
        assert (numbers[0] == 0) is (frames[0]["type"] == "response.created")
    return frames


def error_of(frames: list[dict[str, Any]], status: int, code: str) -> dict[str, Any]:
    """The error of a turn refused with one ``error`` frame and nothing else."""
    assert len(frames) == 1, frames
    assert frames[0]["type"] == "error"
    assert frames[0]["status"] == status, frames
    assert frames[0]["error"]["code"] == code, frames
    error: dict[str, Any] = frames[0]["error"]
    return error


def completed(frames: list[dict[str, Any]]) -> dict[str, Any]:
    assert frames[0]["type"] == "response.created"
    assert frames[-1]["type"] == "response.completed", frames[-1]
    response: dict[str, Any] = frames[-1]["response"]
    return response


def create(ws: Connection, **fields: Any) -> None:
    ws.send(json.dumps({"type": "response.create", "model": "m", **fields}))


def text_of(response: Mapping[str, Any]) -> str:
    return "".join(part["text"] for item in response["output"] if item["type"] == "message" for part in item["content"])


def replayed(served: Served, id: str) -> list[dict[str, Any]]:
    """The events ``GET /v1/responses/{id}?stream=true`` replays."""
    status, body = served.get(f"/responses/{id}?stream=true")
    assert status == 200
    return [json.loads(line[len("data: ") :]) for line in body.decode().splitlines() if line.startswith("data: ")]


# ------------------------------------------------------------------------------------------------ models


def _texts(conversation: Sequence[Mapping[str, Any]]) -> list[str]:
    texts = []
    for item in conversation:
        content = item.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, (list, tuple)):
            texts += [part["text"] for part in content if "text" in part]
    return texts


async def recall(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> AsyncIterator[str]:
    """An async model: says every text of the conversation it is given, joined with `` | ``."""
    yield " | ".join(_texts(conversation))


async def boom(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> AsyncIterator[str]:
    """An async model that fails after its first chunk."""
    yield "about to fail"
    raise RuntimeError("the model failed")


# ------------------------------------------------------------------------------------------------ the SDK client


def test_a_response_over_websocket_is_the_one_stored(serve: Callable[..., Served]) -> None:
    served = serve()
    client = served.client()
    with client.responses.connect() as connection:
        connection.response.create(model="m", input="Count from 1 to 3.")
        frames = []
        while True:
            raw = connection.recv_bytes()
            frame = check_frame(json.loads(raw))
            event = connection.parse_event(raw)
            assert event.type == frame["type"]
            frames.append(frame)
            if event.type in TERMINAL:
                break
    response = completed(frames)
    assert text_of(response) == "Count from 1 to 3."
    assert [frame["sequence_number"] for frame in frames] == list(range(len(frames)))
    assert [frame["type"] for frame in frames[:2]] == ["response.created", "response.in_progress"]
    # What the socket sent is what the store holds: the response, and the events a replay sends.
    stored = client.responses.retrieve(response["id"])
    assert stored.model_dump(mode="json", exclude_unset=True) == check_response(response).model_dump(
        mode="json", exclude_unset=True
    )
    assert replayed(served, response["id"]) == frames


def test_sequential_turns_and_continuations_with_the_sdk(serve: Callable[..., Served]) -> None:
    served = serve(generate=recall)
    client = served.client()
    with client.responses.connect() as connection:
        ids: list[str] = []
        texts: list[str] = []
        # A stored response, an unstored one continuing it, then an unstored one continuing that.
        for number, (store, text) in enumerate(((True, "one"), (False, "two"), (False, "three"))):
            fields: dict[str, Any] = {"model": "m", "input": text, "store": store}
            if ids:
                fields["previous_response_id"] = ids[-1]
            connection.response.create(**fields)
            for event in connection:
                assert event.type != "error", event
                if event.type == "response.created":
                    assert event.sequence_number == 0
                if event.type in TERMINAL:
                    assert event.type == "response.completed"
                    ids.append(event.response.id)
                    texts.append(event.response.output_text)
                    assert event.response.previous_response_id == (ids[number - 1] if number else None)
                    break
    assert texts[0] == "one"
    assert texts[1] == "one | one | two"
    assert texts[2] == "one | one | two | one | one | two | three"
    # Only the stored one is in the store.
    assert served.get(f"/responses/{ids[0]}")[0] == 200
    assert served.get(f"/responses/{ids[1]}")[0] == 404


def test_the_async_sdk_client(serve: Callable[..., Served]) -> None:
    served = serve(generate=recall)

    async def main() -> list[str]:
        client = openai.AsyncOpenAI(base_url=served.url, api_key="key-a", max_retries=0)
        async with client, client.responses.connect() as connection:
            seen: list[str] = []
            for text in ("a", "b"):
                fields: dict[str, Any] = {"model": "m", "input": text, "store": False}
                if seen:
                    fields["previous_response_id"] = seen[-1]
                await connection.response.create(**fields)
                async for event in connection:
                    if event.type in TERMINAL:
                        assert event.type == "response.completed"
                        seen.append(event.response.id)
                        assert event.response.output_text == ("a" if text == "a" else "a | a | b")
                        break
            return seen

    assert len(asyncio.run(main())) == 2


# ------------------------------------------------------------------------------------------------ continuations


def test_an_unstored_response_belongs_to_its_connection(serve: Callable[..., Served]) -> None:
    served = serve()
    with served.socket_of() as first:
        create(first, input="Remember: cobalt.", store=False)
        unstored = completed(turn(first))["id"]
    with served.socket_of() as second:
        create(second, input="The code word?", store=False, previous_response_id=unstored)
        error = error_of(turn(second), 400, "previous_response_not_found")
        assert error["param"] == "previous_response_id"
        create(second, input="missing", store=False, previous_response_id="resp_openresponses_missing_1")
        error_of(turn(second), 400, "previous_response_not_found")
        # The connection goes on.
        create(second, input=[{"type": "message", "role": "user", "content": "fresh"}], store=False)
        assert text_of(completed(turn(second))) == "fresh"
    assert served.get(f"/responses/{unstored}")[0] == 404


def test_a_failed_continuation_forgets_its_parent_in_its_lane(serve: Callable[..., Served]) -> None:
    served = serve()
    with served.socket_of() as ws:
        create(ws, input="first", store=False)
        parent = completed(turn(ws))["id"]
        create(ws, input="bad", store=False, previous_response_id=parent, temperature="hot")
        assert error_of(turn(ws), 400, "invalid_type")["param"] == "temperature"
        create(ws, input="again", store=False, previous_response_id=parent)
        error_of(turn(ws), 400, "previous_response_not_found")
        # In lane "a": a failed continuation from lane "b" keeps it; one from its own lane forgets it.
        create(ws, input="laned", store=False, stream_id="a")
        frames = turn(ws)
        assert {frame["stream_id"] for frame in frames} == {"a"}
        laned = completed(frames)["id"]
        create(ws, input="bad", store=False, previous_response_id=laned, stream_id="b", temperature="hot")
        assert turn(ws)[0]["stream_id"] == "b"
        create(ws, input="fine", store=False, previous_response_id=laned, stream_id="a")
        completed(turn(ws))
        # A stored response cannot continue an unstored one (the parent is forgotten: it is a failed continuation).
        create(ws, input="x", store=False)
        unstored = completed(turn(ws))["id"]
        create(ws, input="y", previous_response_id=unstored)
        assert error_of(turn(ws), 400, "invalid_previous_response")["param"] == "previous_response_id"
        create(ws, input="z", store=False, previous_response_id=unstored)
        error_of(turn(ws), 400, "previous_response_not_found")


def test_owners_are_isolated(serve: Callable[..., Served]) -> None:
    served = serve(generate=recall)
    with served.socket_of("key-a") as ws:
        create(ws, input="secret")
        stored = completed(turn(ws))["id"]
    with served.socket_of("key-b") as ws:
        create(ws, input="tell me", previous_response_id=stored)
        error_of(turn(ws), 400, "previous_response_not_found")
    with served.socket_of("key-a") as ws:
        create(ws, input="again", previous_response_id=stored)
        assert text_of(completed(turn(ws))) == "secret | secret | again"


# ------------------------------------------------------------------------------------------------ queueing


def test_creates_queue_in_order_and_the_queue_is_bounded(
    serve: Callable[..., Served], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_websocket, "MAX_QUEUED", 3)
    gate = threading.Event()

    def gated(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[str]:
        assert gate.wait(TIMEOUT)
        yield _texts(conversation)[-1]

    served = serve(generate=gated)
    try:
        with served.socket_of() as ws:
            create(ws, input="r0", store=False)
            opening = [check_frame(json.loads(ws.recv(timeout=TIMEOUT))) for _ in range(2)]
            # r0 is in flight, its model waiting at the gate
            assert [frame["type"] for frame in opening] == ["response.created", "response.in_progress"]
            for number in range(1, 5):
                create(ws, input=f"r{number}", store=False, stream_id=f"lane{number}")
            # r1..r3 wait; r4 is one too many: refused at once, while r0 still runs.
            error = check_frame(json.loads(ws.recv(timeout=TIMEOUT)))
            assert error["status"] == 429
            assert error["error"]["code"] == "websocket_queue_full"
            gate.set()
            frames = [*opening, *turn(ws)]
            assert [frame["sequence_number"] for frame in frames] == list(range(len(frames)))
            assert text_of(completed(frames)) == "r0"
            for number in range(1, 4):
                frames = turn(ws)  # each response whole, in the order sent, none interleaved
                assert text_of(completed(frames)) == f"r{number}"
                assert {frame["stream_id"] for frame in frames} == {f"lane{number}"}
    finally:
        gate.set()


# ------------------------------------------------------------------------------------------------ refusals


def test_background_is_refused_and_stream_is_ignored(serve: Callable[..., Served]) -> None:
    served = serve()
    with served.socket_of() as ws:
        create(ws, input="x", background=True)
        assert error_of(turn(ws), 400, "unsupported_parameter")["param"] == "background"
        create(ws, input="streamed", stream=True, stream_options={"include_obfuscation": False}, background=False)
        assert text_of(completed(turn(ws))) == "streamed"


def test_bad_frames_each_get_one_error_and_the_connection_goes_on(serve: Callable[..., Served]) -> None:
    served = serve(max_body_bytes=4096)
    with served.socket_of() as ws:
        sent: list[tuple[str | bytes, int, str, str | None]] = [
            ("not json", 400, "invalid_json", None),
            ("[1, 2]", 400, "invalid_json", None),
            ('"response.create"', 400, "invalid_json", None),
            ('{"type": "response.cancel"}', 400, "unknown_event_type", "type"),
            ('{"model": "m", "input": "no type"}', 400, "unknown_event_type", "type"),
            (b'{"type": "response.create", "model": "m", "input": "x"}', 400, "invalid_frame", None),
            (json.dumps({"type": "response.create", "input": "x" * 5000}), 413, "request_too_large", None),
            (
                '{"type": "response.create", "model": "m", "stream_id": "no spaces"}',
                400,
                "invalid_stream_id",
                "stream_id",
            ),
            ('{"type": "response.create", "model": "m", "generate": "no"}', 400, "invalid_type", "generate"),
            ('{"type": "response.create", "model": "m", "nonsense": 1}', 400, "unknown_parameter", "nonsense"),
        ]
        for frame, _, _, _ in sent:
            ws.send(frame)
        create(ws, input="still here")
        # Served in order: one error frame for each bad frame, then the response.
        for frame, status, code, param in sent:
            error = error_of(turn(ws), status, code)
            assert error["param"] == param, (frame, error)
        assert text_of(completed(turn(ws))) == "still here"
        # An error of a laned request names its lane.
        create(ws, input="x", temperature="hot", stream_id="lane.1")
        assert turn(ws)[0]["stream_id"] == "lane.1"


def test_a_model_error_fails_one_turn_only(serve: Callable[..., Served]) -> None:
    served = serve(models={"boom": boom, "recall": recall})
    with served.socket_of() as ws:
        create(ws, model="boom", input="x", store=False)
        frames = turn(ws)
        assert frames[-1]["type"] == "response.failed"
        assert not [frame for frame in frames if frame["type"] == "error"]
        assert frames[-1]["response"]["error"]["code"] == "server_error"
        failed = frames[-1]["response"]["id"]
        create(ws, model="nope", input="x")
        error_of(turn(ws), 404, "model_not_found")
        create(ws, model="recall", input="fine")
        assert text_of(completed(turn(ws))) == "fine"
        # A failed unstored response can be continued, as a failed stored one can over HTTP.
        create(ws, model="recall", input="after", store=False, previous_response_id=failed)
        parent = completed(turn(ws))
        assert text_of(parent) == "x | after"
        # A continuation that fails once created forgets its (unstored) parent too.
        create(ws, model="boom", input="y", store=False, previous_response_id=parent["id"])
        assert turn(ws)[-1]["type"] == "response.failed"
        create(ws, model="recall", input="z", store=False, previous_response_id=parent["id"])
        error_of(turn(ws), 400, "previous_response_not_found")


def test_warmup_and_steering(serve: Callable[..., Served]) -> None:
    served = serve(generate=recall)
    with served.socket_of() as ws:
        create(ws, input="context", store=False, generate=False)
        frames = turn(ws)
        assert [frame["type"] for frame in frames] == [
            "response.created",
            "response.in_progress",
            "response.completed",
        ]
        warm = completed(frames)
        assert warm["output"] == []
        create(ws, input="question", store=False, previous_response_id=warm["id"])
        assert text_of(completed(turn(ws))) == "context | question"
        ws.send(json.dumps({"type": "response.steer", "previous_response_id": warm["id"], "input": "faster"}))
        steer = check_frame(json.loads(ws.recv(timeout=TIMEOUT)))
        assert steer["type"] == "response.steer.failed"
        assert steer["error"]["code"] == "steering_not_supported"
        assert steer["steer"] == {"previous_response_id": warm["id"], "input": "faster"}


# ------------------------------------------------------------------------------------------------ the handshake


def test_the_handshake_checks_the_key_and_the_path(serve: Callable[..., Served]) -> None:
    served = serve()
    for key in ("wrong", None):
        with pytest.raises(InvalidStatus) as refused:
            served.socket_of(key)
        reply = refused.value.response
        assert reply.status_code == 401
        assert reply.headers["www-authenticate"].startswith("Bearer")
        body = json.loads(reply.body)
        assert body["error"]["code"] == "invalid_api_key"
        assert body["error"]["type"] == "authentication_error"
    with pytest.raises(InvalidStatus) as refused:
        served.socket_of(path="/v1/models")
    assert refused.value.response.status_code == 404
    assert json.loads(refused.value.response.body)["error"]["code"] == "not_found"
    # The SDK sees the same refusal.
    with pytest.raises(InvalidStatus), served.client("wrong").responses.connect() as connection:
        connection.response.create(model="m", input="x")
    # The accepted handshake names the connection.
    with served.socket_of() as ws:
        assert ws.response is not None
        assert ws.response.headers["x-request-id"].startswith("req_")


def test_without_the_http_response_extension_a_refusal_closes_with_1008() -> None:
    app = make_app(responsestore.open("memory://"), authenticate=_owners)
    sent: list[dict[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    scope = {"type": "websocket", "path": "/v1/responses", "headers": [(b"authorization", b"Bearer wrong")]}
    try:
        asyncio.run(app(scope, receive, send))
    finally:
        app.close()
    assert sent == [{"type": "websocket.close", "code": 1008}]


# ------------------------------------------------------------------------------------------------ the connection ending


def test_a_client_leaving_mid_response_fails_it(serve: Callable[..., Served]) -> None:
    gate = threading.Event()

    def slow(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[str]:
        yield "first"
        gate.wait(TIMEOUT)
        yield "second"

    served = serve(generate=slow)
    try:
        ws = served.socket_of()
        create(ws, input="x")
        id = None
        while True:
            frame = check_frame(json.loads(ws.recv(timeout=TIMEOUT)))
            id = frame.get("response", {}).get("id", id)
            if frame["type"] == "response.output_text.delta":
                break
        ws.close()
        assert id is not None
        record = served.app.store.wait(id, timeout=TIMEOUT, owner="alice")
        assert record.status.value == "failed"
        assert record.error is not None
        assert "disconnected" in record.error["message"]
    finally:
        gate.set()


def test_a_connection_ends_at_its_time_limit(serve: Callable[..., Served], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_websocket, "MAX_CONNECTION_SECONDS", 0.3)
    served = serve()
    with served.socket_of() as ws:
        error = check_frame(json.loads(ws.recv(timeout=TIMEOUT)))
        assert error["error"]["code"] == "websocket_connection_limit_reached"
        with pytest.raises(ConnectionClosedOK):
            ws.recv(timeout=TIMEOUT)
        assert ws.close_code == 1000
