"""Before: the response state of a vLLM-style Responses server, kept in dicts under an ``asyncio.Lock``.

A model server's first Responses API usually keeps every response object in a dict, the chat messages of each
response in another (for ``previous_response_id``), and the tasks of background responses in a third. This is that
design, reduced to the state: ``create_response``, ``retrieve_response`` and ``cancel_response`` take and return
OpenAI's JSON. ``docs/examples/dict_store_after.py`` is the same server on responsestore.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

#: The model: chat messages in, text deltas out.
Model = Callable[[list[dict[str, Any]]], AsyncIterator[str]]


class ApiError(Exception):
    """A refusal, with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ResponsesServing:
    def __init__(self, model: Model) -> None:
        self.model = model
        self.response_store: dict[str, dict[str, Any]] = {}  # every response, for ever
        self.msg_store: dict[str, list[dict[str, Any]]] = {}  # the chat messages of each, for previous_response_id
        self.response_store_lock = asyncio.Lock()
        self.background_tasks: dict[str, asyncio.Task[Any]] = {}

    async def create_response(self, request: dict[str, Any]) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        previous = request.get("previous_response_id")
        if previous is not None:
            async with self.response_store_lock:
                if previous not in self.msg_store:
                    raise ApiError(404, f"Response with id '{previous}' not found.")
                messages = list(self.msg_store[previous])
        messages.append({"role": "user", "content": request["input"]})
        background = request.get("background", False)
        response = {
            "id": f"resp_{uuid.uuid4().hex}",
            "object": "response",
            "created_at": int(time.time()),
            "model": request["model"],
            "status": "queued" if background else "in_progress",
            "background": background,
            "previous_response_id": previous,
            "output": [],
        }
        async with self.response_store_lock:
            self.response_store[response["id"]] = response
            self.msg_store[response["id"]] = messages
        if background:
            task = asyncio.create_task(self._run(response, messages))
            self.background_tasks[response["id"]] = task
            task.add_done_callback(lambda _: self.background_tasks.pop(response["id"], None))
            return dict(response)
        return await self._run(response, messages)

    async def _run(self, response: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
        async with self.response_store_lock:
            if response["status"] == "queued":
                response["status"] = "in_progress"
        text = "".join([delta async for delta in self.model(messages)])  # if this raises, nothing records it
        async with self.response_store_lock:
            if response["status"] == "cancelled":
                return dict(response)
            message = {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}
            response["status"] = "completed"
            response["output"] = [message]
            self.msg_store[response["id"]] = [*messages, {"role": "assistant", "content": text}]
            return dict(response)

    async def retrieve_response(self, response_id: str) -> dict[str, Any]:
        async with self.response_store_lock:
            response = self.response_store.get(response_id)
            if response is None:
                raise ApiError(404, f"Response with id '{response_id}' not found.")
            return dict(response)

    async def cancel_response(self, response_id: str) -> dict[str, Any]:
        async with self.response_store_lock:
            response = self.response_store.get(response_id)
            if response is None:
                raise ApiError(404, f"Response with id '{response_id}' not found.")
            if response["status"] not in ("queued", "in_progress"):
                raise ApiError(400, f"Cannot cancel a response with status '{response['status']}'.")
            response["status"] = "cancelled"
            task = self.background_tasks.get(response_id)
        if task is not None:
            task.cancel()
        return dict(response)
