"""What a transport sends back: replies, and event streams it can read with or without an event loop.

:class:`Reply` is one answer: a status, headers, and either a JSON body, an :class:`EventStream`, or a run still going
(a non-streamed create: the transport waits for it its own way, then asks the app to
:meth:`~responsestore.server._api.Api.settle` it). An :class:`EventStream` is the events of a streamed response:
:class:`LiveEvents` (what a run publishes as it goes) or :class:`StoredEvents` (a replay, following the store).
Both are read by a blocking transport with :meth:`~EventStream.events` and by an event loop with
:meth:`~EventStream.aevents` (which waits without a thread); either way a stream ends with its terminal event, or
with an ``error`` event when it cannot. :meth:`~EventStream.close` ends a stream the client left (a live run is then
abandoned) and frees its stream slot; it is safe to call more than once.

:func:`sse` frames an event as a server-sent event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import attrs

from responsestore import _wire
from responsestore._contract import BaseStore
from responsestore.aio import AsyncResponseStore
from responsestore.errors import ResponseNotFound, ResponseStoreError, WaitTimeout

from ._logs import RequestLogger
from ._runs import Run
from ._streams import Slot

__all__ = ["EventStream", "LiveEvents", "Reply", "StoredEvents", "json_bytes", "sse"]


def json_bytes(data: object) -> bytes:
    """``data`` as compact UTF-8 JSON."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def sse(event: dict[str, Any]) -> bytes:
    """One server-sent event: ``event: <type>`` and its JSON on one ``data:`` line."""
    data = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    return f"event: {event['type']}\ndata: {data}\n\n".encode()


class EventStream:
    """The events of one streamed response, in order, ending with its terminal (or an ``error``) event."""

    def __init__(self, slot: Slot | None) -> None:
        self.slot = slot

    def events(self) -> Iterator[dict[str, Any]]:
        """The events, waiting in the calling thread."""
        raise NotImplementedError

    def aevents(self) -> AsyncIterator[dict[str, Any]]:
        """The events, waiting on the running event loop (no thread is held while it waits)."""
        raise NotImplementedError

    def close(self) -> None:
        """The stream is over, finished or not: free its slot (and, for a live run not done, abandon it)."""
        slot, self.slot = self.slot, None
        if slot is not None:
            slot.release()


class LiveEvents(EventStream):
    """What a run publishes, as it publishes it; closing before its end abandons the run (the client left)."""

    def __init__(self, run: Run, slot: Slot | None) -> None:
        super().__init__(slot)
        self.run = run
        self.done = False

    def events(self) -> Iterator[dict[str, Any]]:
        yield from self.run.live_events()
        self.done = True

    async def aevents(self) -> AsyncIterator[dict[str, Any]]:
        run, wakeup = self.run, _Wakeup()
        run.listen(wakeup.wake)
        try:
            while True:
                wakeup.event.clear()
                batch, finished = run.take_published()
                for event in batch:
                    yield event
                if finished:
                    self.done = True
                    return
                if not batch:
                    await wakeup.event.wait()
        finally:
            run.unlisten(wakeup.wake)

    def close(self) -> None:
        """Free the slot; a run whose events were not all sent is abandoned (its response ends ``failed``)."""
        try:
            if not self.done:
                self.done = True
                self.run.abandon("The client disconnected before the response finished.")
        finally:
            super().close()


async def run_result(run: Run) -> None:
    """Wait, on the running event loop, until ``run`` has ended (then :meth:`Run.result` returns at once)."""
    wakeup = _Wakeup()
    run.listen(wakeup.wake)
    try:
        while not run.done:
            await wakeup.event.wait()
            wakeup.event.clear()
    finally:
        run.unlisten(wakeup.wake)


class _Wakeup:
    """An ``asyncio.Event`` of the running loop that any thread may set."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.loop = asyncio.get_running_loop()

    def wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is left to wake
            self.loop.call_soon_threadsafe(self.event.set)


class StoredEvents(EventStream):
    """A response's stored events after ``after``, followed to its final one (a replay, or a background stream).

    A stream that cannot end with it (the response deleted meanwhile, no progress for ``timeout`` seconds, the store
    failing) ends with an ``error`` event; ``log`` (bound to the request that asked) logs a store failure.
    """

    def __init__(
        self,
        store: BaseStore,
        *,
        owner: str | None,
        id: str,
        after: int | None,
        timeout: float | None,
        log: RequestLogger,
        slot: Slot | None,
    ) -> None:
        super().__init__(slot)
        self.store, self.owner, self.id, self.after, self.timeout, self.log = store, owner, id, after, timeout, log
        self.number = -1 if after is None else after  # the last event sent

    def events(self) -> Iterator[dict[str, Any]]:
        try:
            for event in self.store.stream(self.id, starting_after=self.after, timeout=self.timeout, owner=self.owner):
                self.number = event["sequence_number"]
                yield event
        except ResponseStoreError as exc:
            yield self._error_event(exc)

    async def aevents(self) -> AsyncIterator[dict[str, Any]]:
        store = AsyncResponseStore(self.store)
        try:
            async for event in store.stream(self.id, starting_after=self.after, timeout=self.timeout, owner=self.owner):
                self.number = event["sequence_number"]
                yield event
        except ResponseStoreError as exc:
            yield self._error_event(exc)

    def _error_event(self, exc: ResponseStoreError) -> dict[str, Any]:
        if isinstance(exc, ResponseNotFound):
            message = "The response was deleted while it was streamed."
        elif isinstance(exc, WaitTimeout):
            message = f"The response made no progress for {self.timeout:g} seconds; the stream ends here."
        else:
            self.log.warning("following response %s failed", self.id, exc_info=exc)
            message = "The store failed while the response was streamed."
        return _wire.error_event(message, self.number + 1)


@attrs.define
class Reply:
    """One answer to a request: ``status`` and ``headers``, then ``body``, or ``stream``, or ``pending``."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    #: The events to send (a ``text/event-stream`` reply).
    stream: EventStream | None = None
    #: A non-streamed create whose run is still going: wait for it, then settle the reply.
    pending: Run | None = None
