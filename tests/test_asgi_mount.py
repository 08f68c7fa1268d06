"""The ASGI app mounted in a FastAPI app at a prefix, served by uvicorn, driven by the ``openai`` client (HTTP and the
WebSocket mode) and closed by the outer app's lifespan, as docs/asgi.md shows."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import openai
from fastapi import FastAPI

import responsestore
from responsestore.asgi import make_app
from tests.live_app import TIMEOUT, Uvicorn
from tests.wire_checks import check_response


async def counting(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> AsyncIterator[str]:
    """An async model: says how many items it was given, in two deltas."""
    await asyncio.sleep(0)
    yield f"{len(conversation)}"
    yield " items"


def test_mounted_at_a_prefix_in_fastapi_every_route_answers_below_it() -> None:
    store = responsestore.open("memory://")
    responses = make_app(store, generate=counting)
    closed: list[bool] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(responses.close)
        closed.append(True)

    outer = FastAPI(lifespan=lifespan)

    @outer.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    outer.mount("/llm", responses)
    server = Uvicorn(outer, lifespan="on")
    client = openai.OpenAI(
        base_url=f"http://127.0.0.1:{server.port}/llm/v1", api_key="k", max_retries=0, timeout=TIMEOUT
    )
    try:
        first = client.responses.create(model="m", input="hello")
        assert first.output_text == "1 items"
        check_response(client.responses.with_raw_response.retrieve(first.id).http_response.json())
        with client.responses.stream(model="m", input="again", previous_response_id=first.id) as stream:
            events = list(stream)
        assert events[-1].type == "response.completed"
        assert events[-1].response.output_text == "3 items"
        (item,) = client.responses.input_items.list(first.id)
        assert item.type == "message"
        with client.responses.connect() as connection:  # the WebSocket mode, below the prefix too
            connection.response.create(model="m", input="over a socket", previous_response_id=events[-1].response.id)
            for frame in connection:
                if frame.type == "response.completed":
                    assert frame.response.output_text == "5 items"
                    break
                assert frame.type != "error", frame
        assert client.models.retrieve("m").id == "m"
        with openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key="k", max_retries=0) as outside:
            try:
                outside.responses.retrieve(first.id)
            except openai.NotFoundError:
                pass  # the outer app's own 404: the API is only below its prefix
            else:
                raise AssertionError("the API answered outside its prefix")
    finally:
        client.close()
        server.stop()
    assert closed == [True]  # the outer lifespan closed the app
    assert responses.runner.stopping.is_set()
