"""``AsyncResponseStore``: an asyncio facade over any responsestore backend.

Every method is a coroutine. Ordinary calls run in a worker thread (``asyncio.to_thread``), so a backend that
does I/O (SQLite) or waits for its lock never blocks the event loop. ``wait`` and ``stream`` do not park a thread
while they wait: they register a waker with the store that sets an ``asyncio.Event`` through
``loop.call_soon_threadsafe``, so a pending wait costs nothing but a registry entry, and cancelling the awaiting
task removes that entry (nothing leaks).

Use it from FastAPI or Starlette by creating one store at start-up and sharing it::

    store = AsyncResponseStore(ResponseStore())

    @app.get("/v1/responses/{response_id}")
    async def get_response(response_id: str):
        return (await store.get(response_id)).to_openai()
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, TypeVar

from ._checks import check_owner
from ._contract import BaseStore
from ._events import DeltaRun, check_starting_after
from ._ids import check_id
from ._json import FrozenDict, thaw
from ._paging import Page
from ._records import ResponseRecord
from ._retention import StoreStats
from ._timeouts import check_timeout
from ._waiting import Subscription, next_wait, stream_step, wait_step

__all__ = ["AsyncResponseStore"]

T = TypeVar("T")

#: ``starting_after`` for a snapshot that needs the record only: past any event a log can hold.
_NO_EVENTS = 2**62


class AsyncResponseStore:
    """Awaitable versions of every :class:`~responsestore.BaseStore` method, for asyncio servers.

    Args:
        store: Any backend (for example a :class:`~responsestore.ResponseStore`); the facade adds no state of
            its own, so synchronous code may keep using ``store`` directly at the same time.
    """

    def __init__(self, store: BaseStore) -> None:
        self.store = store

    async def _run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(functools.partial(function, *args, **kwargs))

    async def create(self, model: str, input: Any = (), **kwargs: Any) -> ResponseRecord:
        """See :meth:`BaseStore.create <responsestore.BaseStore.create>`."""
        return await self._run(self.store.create, model, input, **kwargs)

    async def get(self, id: str, *, owner: str | None = None) -> ResponseRecord:
        """See :meth:`BaseStore.get <responsestore.BaseStore.get>`."""
        return await self._run(self.store.get, id, owner=owner)

    async def contains(self, id: str, *, owner: str | None = None) -> bool:
        """See :meth:`BaseStore.contains <responsestore.BaseStore.contains>`."""
        return await self._run(self.store.contains, id, owner=owner)

    async def count(self) -> int:
        """``len(store)``: the number of visible responses."""
        return await self._run(len, self.store)

    async def delete(self, id: str, **kwargs: Any) -> ResponseRecord:
        """See :meth:`BaseStore.delete <responsestore.BaseStore.delete>`."""
        return await self._run(self.store.delete, id, **kwargs)

    async def start(self, id: str, **kwargs: Any) -> ResponseRecord:
        """See :meth:`BaseStore.start <responsestore.BaseStore.start>`."""
        return await self._run(self.store.start, id, **kwargs)

    async def complete(self, id: str, output: Iterable[Mapping[str, Any]] = (), **kwargs: Any) -> ResponseRecord:
        """See :meth:`BaseStore.complete <responsestore.BaseStore.complete>`."""
        return await self._run(self.store.complete, id, output, **kwargs)

    async def fail(self, id: str, error: Mapping[str, Any] | str, **kwargs: Any) -> ResponseRecord:
        """See :meth:`BaseStore.fail <responsestore.BaseStore.fail>`."""
        return await self._run(self.store.fail, id, error, **kwargs)

    async def mark_incomplete(self, id: str, reason: str, **kwargs: Any) -> ResponseRecord:
        """See :meth:`BaseStore.mark_incomplete <responsestore.BaseStore.mark_incomplete>`."""
        return await self._run(self.store.mark_incomplete, id, reason, **kwargs)

    async def cancel(self, id: str, **kwargs: Any) -> ResponseRecord:
        """See :meth:`BaseStore.cancel <responsestore.BaseStore.cancel>`."""
        return await self._run(self.store.cancel, id, **kwargs)

    async def update(self, id: str, **kwargs: Any) -> ResponseRecord:
        """See :meth:`BaseStore.update <responsestore.BaseStore.update>`."""
        return await self._run(self.store.update, id, **kwargs)

    async def list(self, **kwargs: Any) -> Page[ResponseRecord]:
        """See :meth:`BaseStore.list <responsestore.BaseStore.list>`."""
        return await self._run(self.store.list, **kwargs)

    async def input_items(self, id: str, **kwargs: Any) -> Page[dict[str, Any]]:
        """See :meth:`BaseStore.input_items <responsestore.BaseStore.input_items>`."""
        return await self._run(self.store.input_items, id, **kwargs)

    async def chain(self, id: str, *, owner: str | None = None) -> tuple[ResponseRecord, ...]:
        """See :meth:`BaseStore.chain <responsestore.BaseStore.chain>`."""
        return await self._run(self.store.chain, id, owner=owner)

    async def conversation(self, id: str, *, owner: str | None = None) -> tuple[dict[str, Any], ...]:
        """See :meth:`BaseStore.conversation <responsestore.BaseStore.conversation>`."""
        return await self._run(self.store.conversation, id, owner=owner)

    async def find_item(self, item_id: str, *, owner: str | None = None) -> FrozenDict | None:
        """See :meth:`BaseStore.find_item <responsestore.BaseStore.find_item>`."""
        return await self._run(self.store.find_item, item_id, owner=owner)

    async def append_event(self, id: str, event: Mapping[str, Any], *, owner: str | None = None) -> int:
        """See :meth:`BaseStore.append_event <responsestore.BaseStore.append_event>`."""
        return await self._run(self.store.append_event, id, event, owner=owner)

    async def append_events(self, id: str, events: Iterable[Mapping[str, Any] | DeltaRun], **kwargs: Any) -> int:
        """See :meth:`BaseStore.append_events <responsestore.BaseStore.append_events>`."""
        return await self._run(self.store.append_events, id, events, **kwargs)

    async def renew(self, id: str, **kwargs: Any) -> ResponseRecord:
        """See :meth:`BaseStore.renew <responsestore.BaseStore.renew>`."""
        return await self._run(self.store.renew, id, **kwargs)

    async def expire_leases(self, **kwargs: Any) -> int:
        """See :meth:`BaseStore.expire_leases <responsestore.BaseStore.expire_leases>`."""
        return await self._run(self.store.expire_leases, **kwargs)

    async def events(
        self, id: str, *, starting_after: int | None = None, owner: str | None = None
    ) -> tuple[dict[str, Any], ...]:
        """See :meth:`BaseStore.events <responsestore.BaseStore.events>`."""
        return await self._run(self.store.events, id, starting_after=starting_after, owner=owner)

    async def stats(self) -> StoreStats:
        """See :meth:`BaseStore.stats <responsestore.BaseStore.stats>`."""
        return await self._run(self.store.stats)

    async def sweep(self) -> int:
        """See :meth:`BaseStore.sweep <responsestore.BaseStore.sweep>`."""
        return await self._run(self.store.sweep)

    async def wait(self, id: str, *, timeout: float | None = None, owner: str | None = None) -> ResponseRecord:
        """Wait, without blocking the event loop, until response ``id`` has finished; return it.

        Safe to cancel: a cancelled wait leaves nothing registered with the store.

        Raises:
            ResponseNotFound: no such response for this owner, or it was deleted while waiting.
            WaitTimeout: it had not finished after ``timeout`` seconds.
        """
        check_owner(owner)
        check_id(id)
        limit = check_timeout(timeout)
        deadline = None if limit is None else time.monotonic() + limit
        async with _Wakeup(self.store, (owner, id)) as wakeup:
            while True:
                wakeup.clear()
                record, _ = await self._run(self.store.snapshot, id, starting_after=_NO_EVENTS, owner=owner)
                what = wait_step(record)
                if what is None:
                    return record
                await wakeup.wait(deadline, what, id)

    def stream(
        self,
        id: str,
        *,
        starting_after: int | None = None,
        timeout: float | None = None,
        owner: str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """An async iterator over the events of response ``id`` after ``starting_after``, live.

        Like :meth:`BaseStore.stream <responsestore.BaseStore.stream>`: yields stored events, waits for new
        ones without blocking the event loop, and ends once the response has finished. Closing the iterator or
        cancelling the task that iterates leaves nothing registered with the store.

        Raises:
            ResponseNotFound: (while iterating) no such response, or it was deleted meanwhile.
            WaitTimeout: (while iterating) no new event and no finish within ``timeout`` seconds.
            InvalidArgument: (at once) a malformed argument.
        """
        check_owner(owner)
        check_id(id)
        after = check_starting_after(starting_after)
        limit = check_timeout(timeout)
        return self._stream(owner, id, after, limit)

    async def _stream(
        self, owner: str | None, id: str, after: int, limit: float | None
    ) -> AsyncIterator[dict[str, Any]]:
        async with _Wakeup(self.store, (owner, id)) as wakeup:
            deadline = None if limit is None else time.monotonic() + limit
            while True:
                wakeup.clear()
                record, events = await self._run(
                    self.store.snapshot, id, starting_after=None if after < 0 else after, owner=owner
                )
                for event in events:
                    yield thaw(event)
                last, done = stream_step(record, events)
                if done:
                    return
                if last is not None:
                    after = last
                    if limit is not None:
                        deadline = time.monotonic() + limit
                await wakeup.wait(deadline, f"no new event for response {id!r}", id)


class _Wakeup:
    """An ``asyncio.Event`` that the store sets, from any thread, on every write to one response."""

    def __init__(self, store: BaseStore, key: tuple[str | None, str]) -> None:
        self._store = store
        self._key = key
        self._event = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._subscription: Subscription | None = None

    def _wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is left to wake
            self._loop.call_soon_threadsafe(self._event.set)

    async def __aenter__(self) -> _Wakeup:
        owner, id = self._key
        self._subscription = self._store.subscribe(id, self._wake, owner=owner)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._subscription is not None:
            self._subscription.cancel()

    def clear(self) -> None:
        self._event.clear()

    async def wait(self, deadline: float | None, what: str, id: str) -> None:
        """Wait for a wake-up or the store's poll interval; raise :class:`WaitTimeout` past ``deadline``."""
        wait = next_wait(self._store.poll_interval, deadline, what, id)
        # On a timeout the caller's loop re-checks, and raises if the deadline has passed.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._event.wait(), wait)
