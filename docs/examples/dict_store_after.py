"""After: the server of ``docs/examples/dict_store_before.py``, its three dicts and its lock replaced by one store.

The store keeps the responses, their items and their lifecycle; each call is atomic, so the server holds no lock of
its own. ``responsestore.open(url)`` picks where they live: ``memory://`` for one process, ``sqlite:///PATH`` for
the worker processes of one machine, ``redis://`` or ``postgresql://`` for several machines.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import responsestore
from responsestore import (
    BaseStore,
    ChainError,
    InvalidArgument,
    InvalidTransition,
    ResponseNotFound,
    ResponseRecord,
    ResponseStatus,
    ResponseStoreError,
    StoreFull,
)
from responsestore.aio import AsyncResponseStore

#: The model: chat messages in, text deltas out.
Model = Callable[[list[dict[str, Any]]], AsyncIterator[str]]

#: The HTTP status of each refusal of the store (the first class of the error's MRO found here wins).
STATUS = {ResponseNotFound: 404, ChainError: 400, InvalidArgument: 400, InvalidTransition: 400, StoreFull: 503}


class ApiError(Exception):
    """A refusal, with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def refusal(exc: ResponseStoreError) -> ApiError:
    """The API's answer to a refusal of the store: its message, with the status of its class (500 if unknown)."""
    status = next((STATUS[cls] for cls in type(exc).__mro__ if cls in STATUS), 500)
    return ApiError(status, str(exc))


class ResponsesServing:
    def __init__(self, model: Model, store: BaseStore | None = None) -> None:
        self.model = model
        self.store = AsyncResponseStore(store if store is not None else responsestore.open("memory://"))
        self.background_tasks: dict[str, asyncio.Task[Any]] = {}

    async def create_response(self, request: dict[str, Any], *, owner: str | None = None) -> dict[str, Any]:
        background = request.get("background", False)
        try:
            record = await self.store.create(
                request["model"],
                request["input"],
                previous_response_id=request.get("previous_response_id"),
                background=background,
                status="queued" if background else "in_progress",
                owner=owner,
            )
            conversation = await self.store.conversation(record.id, owner=owner)
        except ResponseStoreError as exc:
            raise refusal(exc) from exc
        if background:
            task = asyncio.create_task(self._run(record, conversation))
            self.background_tasks[record.id] = task
            task.add_done_callback(lambda _: self.background_tasks.pop(record.id, None))
            return record.to_openai()
        return (await self._run(record, conversation)).to_openai()

    async def _run(self, record: ResponseRecord, conversation: Sequence[dict[str, Any]]) -> ResponseRecord:
        owner = record.owner
        try:
            if record.status is ResponseStatus.QUEUED:
                await self.store.start(record.id, owner=owner)
            text = "".join([delta async for delta in self.model(chat_messages(conversation))])
        except Exception:  # noqa: BLE001 - whatever the model does, the response ends
            ending = self.store.fail(record.id, {"code": "server_error", "message": "The model failed."}, owner=owner)
        else:
            ending = self.store.complete(record.id, [{"role": "assistant", "content": text}], owner=owner)
        try:
            return await ending
        except InvalidTransition:  # cancelled meanwhile: the store refuses to end it twice
            return await self.store.get(record.id, owner=owner)

    async def retrieve_response(self, response_id: str, *, owner: str | None = None) -> dict[str, Any]:
        try:
            return (await self.store.get(response_id, owner=owner)).to_openai()
        except ResponseStoreError as exc:
            raise refusal(exc) from exc

    async def cancel_response(self, response_id: str, *, owner: str | None = None) -> dict[str, Any]:
        try:
            record = await self.store.cancel(response_id, owner=owner)
        except ResponseStoreError as exc:
            raise refusal(exc) from exc
        task = self.background_tasks.get(response_id)
        if task is not None:
            task.cancel()
        return record.to_openai()


def chat_messages(conversation: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The model's chat messages: the text of each message item of the conversation, oldest first."""
    return [
        {"role": item["role"], "content": "".join(part.get("text", "") for part in item["content"])}
        for item in conversation
        if item.get("type", "message") == "message"
    ]
