"""Runs: a run owns one response from its creation to its final status, whatever the model, client or store does.

A :class:`Runner` (one per app) runs responses: each :class:`Run` calls the model in a thread of the runner's pools,
turns what it yields into events (:class:`~responsestore.server._reply.Reply`), logs them in batches, renews the
response's lease, and always ends the response: ``completed`` when the model is done; ``incomplete`` when the
model goes on past the request's ``max_output_tokens`` (each delta it yields counts as one token, see
:func:`~responsestore.server._models.tokens_in`), when it yields :class:`~responsestore.server._models.Incomplete`,
or when the event log's bounds are reached; ``failed`` when the model raises, yields something that is not a
chunk, stays silent past ``model_timeout``, when the client of a streamed response goes away, or when the server
stops; ``cancelled`` when someone cancels it (the run then stops). Transports (:mod:`responsestore.wsgi`) only
move bytes: they hand a request's response to the runner and read back what the run publishes.

**Writes.** A stored run writes few times: a non-streamed response is created, then finished with all its events
in one write (two writes in all; a third, a lease renewal, only when the model takes longer than a third of the
lease). A streamed or background one flushes its events at most every ``flush_interval`` seconds (stretched when
more than :data:`FLUSH_FANOUT` runs flush at once, see :meth:`Runner.flush_interval`) or every ``flush_events``
events, whichever comes first, and the first batch at once, so followers on any process see
events within ``flush_interval`` (plus their backend's poll interval). Every write names the run's lease holder
and the number of events the run has logged, so a write whose reply was lost is never applied twice and a run
that lost its response (cancelled, ended by another process's sweeper, deleted) learns it at its next write.

**What the live stream sends** is what the store holds: a streamed response's client gets each batch once it is
logged, so a replay (``GET /v1/responses/{id}?stream=true``) yields exactly the events the live stream sent.

**Store failures** (:class:`~responsestore.StorageError`) are retried with backoff (``0.05`` s doubling to ``2``
s) until the store answers, so the response still ends once it is back; if the runner is closed meanwhile, the
run gives up after the runner's grace period and its lease, left to run out, lets any process end it.

**Leases.** Every response a run owns carries a lease (``lease_seconds``, held by the run): renewed with the run's
writes, and by the runner's supervisor thread while the model is slow. The runner's sweeper thread calls
:meth:`~responsestore.BaseStore.expire_leases` every ``sweep_interval`` seconds, so a response whose process died
ends ``failed`` within ``lease_seconds + sweep_interval`` on any process still serving the store. It calls
:meth:`~responsestore.BaseStore.sweep` too, so an idle server reclaims the space of expired responses.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from responsestore import _wire
from responsestore._contract import BaseStore
from responsestore._json import thaw
from responsestore._records import ResponseRecord, ResponseStatus
from responsestore.errors import (
    EventLogClosed,
    EventLogFull,
    InvalidTransition,
    LeaseLost,
    ResponseNotFound,
    ResponseStoreError,
    SequenceConflict,
    StorageError,
    StoreFull,
)

from ._logs import RequestLogger
from ._models import ArgumentsDelta, Generate, Incomplete, is_async, tokens_in
from ._pool import Job, WorkerPool
from ._reply import Batch, Reply, event_size

__all__ = ["DEFAULT_SETTINGS", "FLUSH_FANOUT", "SHUTTING_DOWN", "SHUTTING_DOWN_QUEUED", "Run", "RunSettings", "Runner"]

#: The runner's logger (runs log through their own, bound to the request that started them).
_log = RequestLogger("responsestore.runs")

#: The error message of a response the server stopped while it ran (after the grace period, or at its next chunk).
SHUTTING_DOWN = "The server is shutting down: the response was stopped before it finished."
#: ... and of one still queued when the server stopped.
SHUTTING_DOWN_QUEUED = "The server is shutting down: the response was never run."

#: The errors that mean "the store does not hold what this run thinks it holds": read it back and follow it.
_LOST = (LeaseLost, InvalidTransition, EventLogClosed, SequenceConflict, ResponseNotFound)

#: The longest a transport's thread waits for a run without waking up. A request served in the main thread (a
#: gunicorn sync worker) must wake: Python runs signal handlers (gunicorn's SIGTERM) only in the main thread, between
#: bytecodes, and a lock wait without a timeout never returns to them when the signal lands in another thread.
_SIGNAL_CHECK = 0.5

#: The most expired records one write of the app's sweeper removes; it writes again while there are more, so the
#: backlog of a store that was down for a while never holds the store's write lock for long.
SWEEP_CHUNK = 1_000

#: Runs that may each flush every ``flush_interval``; past this many, each flushes proportionally less often.
FLUSH_FANOUT = 64

#: Events the run keeps room for in the log, for the closing events of an ending response.
_RESERVE_EVENTS = 16

#: What a text delta weighs besides its text, at most (the event of a new message, with its opening events).
_WORST_DELTA = 1200


@attrs.frozen
class RunSettings:
    """How runs write, renew and give up. The defaults suit a server on any backend."""

    #: Seconds a run's lease lasts; renewed every third of it. A response whose process died ends ``failed``
    #: within ``lease_seconds + sweep_interval``.
    lease_seconds: float = 30.0
    #: Seconds between two sweeps of the runner's sweeper thread (``expire_leases``, then ``sweep``).
    sweep_interval: float = 5.0
    #: A streamed or background run flushes its events at most this often (seconds)...
    flush_interval: float = 0.05
    #: ... or as soon as this many are waiting.
    flush_events: int = 256
    #: Seconds the model may take to yield its next chunk before the run fails it (``None``: forever).
    model_timeout: float | None = 300.0
    #: Seconds ``Runner.close`` waits for runs to end before it ends them itself.
    stop_grace: float = 10.0
    #: Threads that run background responses (more wait, ``queued``).
    background_workers: int = 4
    #: Threads that run foreground responses at once (more wait for a thread).
    foreground_workers: int = 64


DEFAULT_SETTINGS = RunSettings()


class _Stopped(Exception):
    """The run cannot go on (its response was ended elsewhere, or the runner gave up on the store)."""


class Run:
    """One response being generated: the model's thread feeds it, the transport reads what it publishes.

    Thread-safety: every change happens under :attr:`lock`; the model's thread never holds it while it waits for
    the model, so the supervisor, a cancelling request or a departing client can end the run at any time.
    """

    def __init__(
        self,
        runner: Runner,
        record: ResponseRecord,
        conversation: Sequence[dict[str, Any]],
        request: Mapping[str, Any],
        *,
        stored: bool,
        live: bool,
        logged: int = 0,
        logged_bytes: int = 0,
        generate: Generate | None = None,
        request_id: str | None = None,
    ) -> None:
        self.runner = runner
        self.log = RequestLogger(_log.logger, request_id)  # every record names the request that started it
        self.generate = runner.generate if generate is None else generate  # the model of this response
        self.record = record
        self.conversation = conversation
        self.request = request
        self.stored = stored
        self.holder = record.lease_holder
        self.reply = Reply()
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self._listeners: list[Callable[[], None]] = []  # see listen()
        self.task: concurrent.futures.Future[None] | None = None  # an async model's run on a transport's loop
        self.done = False
        self.error: ResponseStoreError | None = None  # set when the run ended without a record to show
        self.logged = logged  # events in the store's log (or, unstored, events produced)
        self.logged_bytes = logged_bytes  # what they count against max_event_bytes
        # The response's JSON without its output: what its final event weighs besides the output. The two opening
        # events of a background response (created, queued) each carry it; others measure it in _begin.
        self._response_bytes = logged_bytes // 2
        self._live = live  # a client reads the events as they are published
        self._outbox: deque[dict[str, Any]] = deque()
        self._flushing = live or record.background  # someone may follow the stream: flush as it goes
        now = time.monotonic()
        self._last_flush = -1e9
        self._last_progress = now  # when the model last yielded, as the supervisor saw it
        self._chunks = 0  # chunks yielded so far
        self._seen_chunks = 0  # ... when the supervisor last looked
        self._room_events = self._room_bytes = -1  # the budget of _no_room_for: measure at the first chunk
        self._lease_due = now + runner.settings.lease_seconds / 3
        self._started = False
        self._max_output_tokens = max_output_tokens(request)
        self._tokens = 0  # output tokens the model yielded so far, counted only under a max_output_tokens

    # ------------------------------------------------------------------ what the transports read

    def live_events(self) -> Iterator[dict[str, Any]]:
        """The events as they are published (logged), ending with the final one; for a streamed response."""
        while True:
            with self.changed:
                while not self._outbox and not self.done:
                    self.changed.wait(_SIGNAL_CHECK)
            batch, finished = self.take_published()
            yield from batch
            if finished:
                return

    def take_published(self) -> tuple[list[dict[str, Any]], bool]:
        """The events published since the last take (without waiting), and whether the run has ended.

        For transports that wait their own way (an event loop: see :meth:`listen`).
        """
        with self.lock:
            batch = list(self._outbox)
            self._outbox.clear()
            return batch, self.done

    def listen(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` (from any thread) whenever events are published or the run ends.

        ``wake`` is called with the run's lock held: it must be quick, must not raise and must not call the run (an
        event loop's ``call_soon_threadsafe`` will do). It is called at once if the run has already ended.
        :meth:`unlisten` stops it.
        """
        with self.lock:
            self._listeners.append(wake)
            ended = self.done
        if ended:
            wake()

    def unlisten(self, wake: Callable[[], None]) -> None:
        """Stop calling ``wake`` (nothing happens if it was not listening)."""
        with self.lock, contextlib.suppress(ValueError):
            self._listeners.remove(wake)

    def result(self) -> ResponseRecord:
        """Wait for the run to end and return the response as it ended.

        Raises:
            ResponseStoreError: the response was deleted meanwhile, or the store could not be written.
        """
        with self.changed:
            while not self.done:
                self.changed.wait(_SIGNAL_CHECK)
            if self.error is not None:
                raise self.error
            return self.record

    def abandon(self, message: str) -> None:
        """The client went away before the end: stop the model and end the response ``failed`` with ``message``."""
        with self.lock:
            self._live = False
            self._outbox.clear()
            if not self.done:
                self.reply.rollback()
                self._end_failed(message)

    # ------------------------------------------------------------------ the model's thread

    def drive(self) -> None:
        """Run the model to the end of the response (the body of the run's thread).

        An ``async`` model (``generate`` returns an async iterator) is driven on an event loop of its own here; a
        transport with a loop of its own runs :meth:`drive_async` on it instead.
        """
        chunks: Any = None
        try:
            with self.lock:
                if self.done:
                    return
                self._begin()
            chunks = self.generate(self.conversation, self.request)
            if hasattr(chunks, "__aiter__"):
                asyncio.run(self._consume_async(chunks))
                return
            chunks = iter(chunks)
            self._consume(chunks)
        except _Stopped:
            return
        except Exception:  # noqa: BLE001 - whatever the model does, the response ends, failed (and it is logged)
            self._model_failed()
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()
            self.runner._forget(self)

    async def drive_async(self) -> None:
        """Run an ``async`` model to the end of the response on the running event loop, without holding a thread.

        Its chunks are awaited on the loop; the store writes that open and end the response run in the loop's
        default executor and the supervisor thread makes the timed flushes, so the loop never waits for the store.
        """
        try:
            opened = await asyncio.to_thread(self._open)
            if not opened:
                return
            await self._consume_async(self.generate(self.conversation, self.request))  # type: ignore[arg-type]
        except _Stopped:
            return
        except asyncio.CancelledError:  # the loop is stopping under the run: end it here, the store call and all
            with self.lock:
                if not self.done:
                    self._end_failed(SHUTTING_DOWN, keep_pending=True)
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the model does, the response ends, failed (and it is logged)
            await asyncio.to_thread(self._model_failed, exc)
        finally:
            self.runner._forget(self)

    def _open(self) -> bool:
        with self.lock:
            if self.done:
                return False
            self._begin()
            return True

    def _model_failed(self, exc: BaseException | None = None) -> None:
        """Log the model's failure (``exc``, else the one being handled) and end the response ``failed``."""
        self.log.error("the model failed while generating response %s", self.record.id, exc_info=exc or True)
        with self.lock:
            if not self.done:
                self._end_failed("The model failed while generating the response.", keep_pending=True)

    def _consume(self, chunks: Iterator[Any]) -> None:
        """Feed the model's chunks to the reply until the model ends or the response does (the hot loop)."""
        runner, lock, accept = self.runner, self.lock, self._accept
        while True:
            if runner._closed_at is not None and runner.closed_for(0.0):
                with lock:
                    if not self.done:
                        self._end_failed(SHUTTING_DOWN)
                return
            chunk = next(chunks, _END)
            with lock:
                ending = accept(chunk, flush_here=True)
                if ending is not None:
                    if ending is not _STOP:
                        ending()
                    return

    async def _consume_async(self, chunks: AsyncIterator[Any]) -> None:
        """:meth:`_consume` for an async model: chunks are awaited, endings written from a thread."""
        runner, lock, accept = self.runner, self.lock, self._accept
        try:
            while True:
                if runner._closed_at is not None and runner.closed_for(0.0):
                    ending: Any = functools.partial(self._end_failed, SHUTTING_DOWN)
                else:
                    try:
                        chunk = await chunks.__anext__()
                    except StopAsyncIteration:
                        chunk = _END
                    with lock:
                        ending = accept(chunk, flush_here=False)
                    if ending is None:
                        continue
                if ending is not _STOP:
                    await asyncio.to_thread(self._end_locked, ending)
                return
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()

    def _end_locked(self, ending: Callable[[], None]) -> None:
        with self.lock:
            if not self.done:
                ending()

    def _accept(self, chunk: Any, *, flush_here: bool) -> Callable[[], None] | None:
        """Take one chunk (under the lock); return how the run ends with it (``_STOP``: it has ended), or ``None``.

        ``flush_here``: flush a due batch now (a model's own thread); else leave it to the supervisor thread (an
        event loop must not wait for the store).
        """
        if self.done:  # ended by the supervisor, a cancel or a departing client while the model ran
            return _STOP
        self._chunks += 1  # progress, for the model's deadline
        if chunk is _END:
            return self._end_completed
        if chunk.__class__ is Incomplete:
            reason: str = chunk.reason
            return functools.partial(self._end_incomplete, reason)
        limit = self._max_output_tokens
        if limit is not None:
            self._tokens += 1 if chunk.__class__ is str else tokens_in(chunk)
            if self._tokens > limit:  # the model goes on past max_output_tokens: the output ends here
                return functools.partial(self._end_incomplete, "max_output_tokens")
        if self.stored and self._no_room_for(chunk):
            return functools.partial(self._end_incomplete, "max_output_tokens")
        self.reply.add(chunk)
        if self._flushing:
            if flush_here:
                self._after_chunk()
            else:
                self._flush_soon()
        return None

    def _begin(self) -> None:
        """Log the opening events: ``response.created`` (unless logged at create) and ``response.in_progress``."""
        self._started = True
        record = self.record
        if record.status is ResponseStatus.QUEUED:  # a background response: created and queued events are logged
            started = self._write(
                lambda: self.runner.store.start(
                    record.id,
                    holder=self.holder,
                    lease=self.runner.settings.lease_seconds,
                    expected_events=self.logged,
                    status_event=True,
                    owner=record.owner,
                )
            )
            if started is not _FOLLOWED:
                self.record = started
                self._publish(_status_events(started, self.logged))
                self.logged += 1
                self.logged_bytes += self._response_bytes
            self._lease_due = time.monotonic() + self.runner.settings.lease_seconds / 3
            return
        snapshot = _wire.response_frozen(record)  # shared by both events (frozen: nothing changes it)
        self.reply.add_events(
            _wire.lifecycle_event("created", snapshot), _wire.lifecycle_event("in_progress", snapshot)
        )
        self._response_bytes = self.reply.pending_bytes // 2
        if self._flushing:
            self._flush(time.monotonic())

    def _no_room_for(self, chunk: object) -> bool:
        """Whether logging ``chunk`` would leave the log too little room for the events that end the response.

        A text delta is checked against a budget, spent at a bound of what it can cost (its event, 6 bytes a
        character for its JSON, four more copies in the closing events); only when the budget runs out is the log
        measured exactly and the budget set again. Anything else is measured exactly.
        """
        cls = chunk.__class__
        if cls is str or cls is ArgumentsDelta:
            text: str = chunk if cls is str else chunk.delta  # type: ignore[assignment,attr-defined]
            self._room_events -= 3
            self._room_bytes -= 30 * len(text) + _WORST_DELTA
            if self._room_events >= 0 and self._room_bytes >= 0:
                return False
        limits = self.runner.store.event_limits
        reply = self.reply
        events, size = reply.cost(chunk)
        room_events = limits.max_events - (self.logged + reply.pending + events + _RESERVE_EVENTS)
        used = self.logged_bytes + reply.pending_bytes + reply.closing_bytes(self._response_bytes)
        room_bytes = limits.max_bytes - (used + size)
        if room_events < 0 or room_bytes < 0:
            return True
        self._room_events, self._room_bytes = room_events, room_bytes // 2  # half: the bound is not exact
        return False

    def _after_chunk(self) -> None:
        """Flush when due."""
        now = time.monotonic()
        due = self._last_flush + self.runner.flush_interval()
        if self.reply.pending >= self.runner.settings.flush_events or now >= due:
            self._flush(now)
        else:
            self.runner._wake_at(due)

    def _flush_soon(self) -> None:
        """Have the supervisor flush when due (at once, when due now)."""
        now = time.monotonic()
        due = self._last_flush + self.runner.flush_interval()
        self.runner._wake_at(now if self.reply.pending >= self.runner.settings.flush_events else max(now, due))

    # ------------------------------------------------------------------ the supervisor's thread

    def tick(self, now: float) -> float | None:
        """Do what is due (a timed flush, a lease renewal, the model's deadline); return when to look again."""
        if not self.lock.acquire(blocking=False):
            return now + self.runner.flush_interval()  # the model's thread is at work: it flushes itself
        try:
            if self.done:
                return None
            settings = self.runner.settings
            timeout = settings.model_timeout
            if self._chunks != self._seen_chunks:  # the model yielded since the last look
                self._seen_chunks = self._chunks
                self._last_progress = now
            if timeout is not None and self._started and now - self._last_progress >= timeout:
                self.log.warning("response %s: the model yielded nothing for %s seconds", self.record.id, timeout)
                self.reply.rollback()
                self._end_failed(f"The model produced nothing for {timeout:g} seconds.")
                return None
            interval = self.runner.flush_interval()
            if self._flushing and self.reply.pending and now >= self._last_flush + interval:
                self._flush(now)
            elif self.stored and now >= self._lease_due:
                self._renew(now)
            due = [self._lease_due] if self.stored else []
            if self._flushing and self.reply.pending:
                due.append(self._last_flush + interval)
            if timeout is not None and self._started:
                due.append(self._last_progress + timeout)
            return min(due) if due else None
        except _Stopped:
            return None
        finally:
            self.lock.release()

    def _renew(self, now: float) -> None:
        record = self.record
        try:
            self.record = self.runner.store.renew(
                record.id, lease=self.runner.settings.lease_seconds, holder=self.holder, owner=record.owner
            )
            self._lease_due = now + self.runner.settings.lease_seconds / 3
        except StorageError:
            self.log.warning("response %s: renewing its lease failed; retrying", record.id, exc_info=True)
            self._lease_due = now + 1.0
        except _LOST:
            if not self._follow_store():
                raise _Stopped from None

    # ------------------------------------------------------------------ writes (under the lock)

    def _flush(self, now: float) -> None:
        batch, count, size = self.reply.take()
        if not batch:
            return
        self._last_flush = now
        if not self.stored:
            self._publish(Reply.expand(batch, self.logged))
            self.logged += count
            return
        renew = now >= self._lease_due - self.runner.settings.lease_seconds / 6
        record = self.record
        try:
            written = self._write(
                lambda: self.runner.store.append_events(
                    record.id,
                    batch,
                    holder=self.holder,
                    lease=self.runner.settings.lease_seconds if renew else None,
                    expected_events=self.logged,
                    owner=record.owner,
                )
            )
        except (EventLogFull, StoreFull):
            self.log.warning("response %s: its event log is full; it ends incomplete", record.id)
            self.reply.rollback()
            self._end_incomplete("max_output_tokens")
            return
        if renew:
            self._lease_due = now + self.runner.settings.lease_seconds / 3
        self.logged_bytes += size
        if written is _FOLLOWED:  # a retried write whose first attempt had landed: published from the store
            return
        self._publish(Reply.expand(batch, self.logged))
        self.logged += count

    def _end_completed(self) -> None:
        self.reply.close()
        usage = self.reply.usage_json()
        self._end(ResponseStatus.COMPLETED, output=list(self.reply.output), usage=usage)

    def _end_incomplete(self, reason: str) -> None:
        self.reply.close("incomplete")
        self._end(
            ResponseStatus.INCOMPLETE,
            output=list(self.reply.output),
            usage=self.reply.usage_json(),
            incomplete_details={"reason": reason},
        )

    def _end_failed(self, message: str, *, keep_pending: bool = False) -> None:
        if not keep_pending:
            self.reply.rollback()
        self._end(ResponseStatus.FAILED, error={"code": "server_error", "message": message})

    def _end(self, status: ResponseStatus, **changes: Any) -> None:
        """Write the final record with the last events and the ``response.<status>`` event; publish; done."""
        try:
            if self.stored:
                self._end_stored(status, changes)
            else:
                self._end_unstored(status, changes)
        except _Stopped:
            pass
        finally:
            self._finish()

    def _end_stored(self, status: ResponseStatus, changes: dict[str, Any]) -> None:
        store, record = self.runner.store, self.record
        batch, _, _ = self.reply.take()
        common: dict[str, Any] = {"holder": self.holder, "status_event": True, "owner": record.owner}

        def write(events: Batch) -> Callable[[], ResponseRecord]:
            common["expected_events"] = self.logged
            if status is ResponseStatus.COMPLETED:
                return lambda: store.complete(
                    record.id, changes["output"], usage=changes["usage"], events=events, **common
                )
            if status is ResponseStatus.INCOMPLETE:
                return lambda: store.mark_incomplete(
                    record.id,
                    changes["incomplete_details"]["reason"],
                    output=changes["output"],
                    usage=changes["usage"],
                    events=events,
                    **common,
                )
            return lambda: store.fail(record.id, changes["error"], events=events, **common)

        for _ in range(3):
            try:
                final = self._write(write(batch))
            except (EventLogFull, StoreFull):
                # No room for the last events: the response ends all the same, with only its final event (or none).
                try:
                    batch = []
                    final = self._write(write(batch))
                except (EventLogFull, StoreFull):
                    common["status_event"] = False
                    final = self._write(write(batch))
            if final is not _FOLLOWED:
                break
            # The store held events this run had not counted (a retried write had landed): decide again.
        else:
            raise _Stopped
        count = sum(1 if isinstance(item, dict) else len(item) for item in batch)  # what this final write logged
        if self._live:
            events = Reply.expand(batch, self.logged)
            if common["status_event"]:
                events += _status_events(final, self.logged + count)
            self._publish(events)
        self.logged += count + (1 if common["status_event"] and final.status is not ResponseStatus.CANCELLED else 0)
        self.record = final

    def _end_unstored(self, status: ResponseStatus, changes: dict[str, Any]) -> None:
        if status is ResponseStatus.COMPLETED:
            changes["completed_at"] = time.time()
        self.record = attrs.evolve(self.record, status=status, lease_holder=None, lease_expires_at=None, **changes)
        batch, _, _ = self.reply.take()
        events = Reply.expand(batch, self.logged)
        self.logged += len(events)
        events += _status_events(self.record, self.logged)
        self.logged += 1
        self._publish(events)

    def _finish(self) -> None:
        self.done = True
        self.changed.notify_all()
        self._wake_listeners()

    def _publish(self, events: list[dict[str, Any]]) -> None:
        if self._live and events:
            self._outbox.extend(events)
            self.changed.notify_all()
            self._wake_listeners()

    def _wake_listeners(self) -> None:
        for wake in self._listeners:  # called under the lock: each is quick and never takes it
            wake()

    def _write(self, call: Callable[[], Any]) -> Any:
        """Make one store write, retrying while the store fails; follow the store when it no longer agrees.

        Returns what the call returned, or ``_FOLLOWED`` when the store turned out to hold more than this run had
        counted (a retried write whose first attempt had landed): that was published from the store.

        Raises:
            _Stopped: the response was ended or removed by someone else (followed), or the runner gave up.
            EventLogFull, StoreFull: the write does not fit (the caller decides).
        """
        pause = 0.05
        while True:
            try:
                return call()
            except StorageError:  # noqa: PERF203 - a retry loop: the exception is the point
                if self.runner.closed_for(pause):
                    self.log.error("response %s: the store kept failing after the server stopped", self.record.id)
                    self.error = StorageError("the store failed while the response was running", id=self.record.id)
                    raise _Stopped from None
                self.log.warning(
                    "response %s: the store failed; retrying in %.2g s", self.record.id, pause, exc_info=True
                )
                time.sleep(pause)  # backing off a failing store (not a synchronisation)
                pause = min(pause * 2, 2.0)
            except _LOST:
                if self._follow_store():
                    return _FOLLOWED
                raise _Stopped from None

    def _follow_store(self) -> bool:
        """Publish what the store holds past what this run logged; whether the response is still running.

        For when the store moved on without this run: it was cancelled, ended by another process, deleted, or a
        write whose reply was lost had landed. A response that ended is done (its final event published).
        """
        record = self.record
        try:
            current, events = self.runner.store.snapshot(record.id, starting_after=self.logged - 1, owner=record.owner)
        except ResponseNotFound as exc:
            self.error = exc
            self._publish([_wire.error_event("The response was deleted while it was running.", self.logged)])
            self._finish()
            return False
        except StorageError as exc:
            self.error = exc
            self._finish()
            return False
        published = [thaw(event) for event in events]
        self.logged += len(published)
        self.record = current
        if current.is_terminal:
            if not published or published[-1].get("type") != f"response.{current.status.value}":
                published += _status_events(current, self.logged)  # ended without its event: say it here
            self._publish(published)
            self._finish()
            return False
        self._publish(published)
        return True


_END: Any = object()
_FOLLOWED: Any = object()


def _STOP() -> None:  # noqa: N802 - a marker: _accept's "the run has already ended"
    """Never called: :meth:`Run._accept` returns it for a run that has already ended."""


def max_output_tokens(request: Mapping[str, Any]) -> int | None:
    """The request's ``max_output_tokens`` (``None``: no limit, also when it is absent, ``null`` or not an int)."""
    value = request.get("max_output_tokens")
    if value.__class__ is not int or value < 0:
        return None
    limit: int = value
    return limit


def _status_events(record: ResponseRecord, number: int) -> list[dict[str, Any]]:
    """The ``response.<status>`` event of ``record`` numbered ``number`` (none for ``cancelled``: the API has none)."""
    if record.status is ResponseStatus.CANCELLED:
        return []
    event = _wire.lifecycle_event(record.status.value, _wire.response_frozen(record))
    event["sequence_number"] = number
    return [event]


class Runner:
    """Runs the responses of one app: the model's threads, a supervisor thread and a sweeper thread.

    ``generate`` is the model; ``store`` keeps the responses. Thread-safe. :meth:`close` stops it: runs still
    going end ``failed`` ("the server stopped"), responses still queued end ``failed`` at once.
    """

    def __init__(self, store: BaseStore, generate: Generate, settings: RunSettings = DEFAULT_SETTINGS) -> None:
        self.store = store
        self.generate = generate
        self.settings = settings
        self.stopping = threading.Event()
        self._closed_at: float | None = None
        self._prefix = f"{socket.gethostname()}/{os.getpid()}/"
        self._mutex = threading.Lock()
        self._wakeup = threading.Condition(self._mutex)
        self._runs: dict[int, Run] = {}
        self._earliest: float | None = None
        # Daemon threads: a model stuck past close() cannot keep the process alive (its response is ended by then).
        self._foreground = WorkerPool(settings.foreground_workers, "responsestore-run")
        self._background = WorkerPool(settings.background_workers, "responsestore-background")
        self._queued: dict[int, tuple[Run, Job]] = {}
        self._closed = threading.Event()  # set when close() is done
        self._supervisor = threading.Thread(target=self._supervise, name="responsestore-supervisor", daemon=True)
        self._supervisor.start()
        self._sweeper = threading.Thread(target=self._sweep, name="responsestore-app-sweeper", daemon=True)
        self._sweeper.start()

    def flush_interval(self) -> float:
        """How often each run flushes now: ``flush_interval``, stretched when more than :data:`FLUSH_FANOUT` run.

        So the runner's flushes stay near ``FLUSH_FANOUT / flush_interval`` store writes a second (1,280 by
        default) however many responses stream at once: with 1,280 of them each flushes once a second, in larger
        batches, and the store, the followers and every other request keep their share of the process.
        """
        runs, interval = len(self._runs), self.settings.flush_interval
        return interval if runs <= FLUSH_FANOUT else interval * runs / FLUSH_FANOUT

    def holder(self) -> str:
        """A fresh lease holder name for a new run: this host, this process, and a random part."""
        return self._prefix + uuid.uuid4().hex[:16]

    def start(
        self,
        record: ResponseRecord,
        conversation: Sequence[dict[str, Any]],
        request: Mapping[str, Any],
        *,
        stored: bool,
        live: bool,
        generate: Generate | None = None,
        request_id: str | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> Run:
        """Start running ``record`` (created by the caller: stored with a lease, or unstored); return its run.

        ``generate`` is the model of this response (the runner's own by default); ``request_id`` the request that
        started it, named in every record the run logs. A blocking model runs in a thread of the runner's pools;
        an ``async`` one (see :func:`~responsestore.server._models.is_async`) runs on ``loop`` when given (an
        ASGI server's: a streamed response then holds no thread), else on a loop of its own in a pool thread.

        Raises:
            RuntimeError: the runner is closed.
        """
        logged = logged_bytes = 0
        if stored and record.background:  # followers see it created and queued before a worker takes it
            snapshot = _wire.response_frozen(record)
            opening = [_wire.lifecycle_event(kind, snapshot) for kind in ("created", "queued")]
            logged = self.store.append_events(
                record.id, opening, holder=record.lease_holder, expected_events=0, owner=record.owner
            ) + len(opening)
            logged_bytes = sum(event_size(event) for event in opening)
        run = Run(
            self,
            record,
            conversation,
            request,
            stored=stored,
            live=live,
            logged=logged,
            logged_bytes=logged_bytes,
            generate=generate,
            request_id=request_id,
        )
        with self._mutex:
            if self.stopping.is_set():
                raise RuntimeError("the runner is closed")
            self._runs[id(run)] = run
            if record.background:
                self._queued[id(run)] = (run, self._background.submit(run.drive, lambda: self._unqueue(run)))
            elif loop is not None and is_async(run.generate):
                run.task = asyncio.run_coroutine_threadsafe(run.drive_async(), loop)
            else:
                self._foreground.submit(run.drive)
            self._wakeup.notify()
        return run

    def _unqueue(self, run: Run) -> None:
        with self._mutex:
            self._queued.pop(id(run), None)

    def _forget(self, run: Run) -> None:
        with self._mutex:
            self._runs.pop(id(run), None)
            self._wakeup.notify_all()

    def _wake_at(self, when: float) -> None:
        """Make the supervisor look at the runs no later than ``when`` (a ``time.monotonic()`` reading)."""
        with self._mutex:
            if self._earliest is None or when < self._earliest:
                self._earliest = when
                self._wakeup.notify()

    def _supervise(self) -> None:
        interval = min(self.settings.lease_seconds / 3, 1.0)
        while True:
            with self._mutex:
                if self.stopping.is_set() and not self._runs:
                    return
                now = time.monotonic()
                wait = interval if self._earliest is None else self._earliest - now
                if wait > 0:
                    self._wakeup.wait(wait)
                self._earliest = None
                runs = list(self._runs.values())
            now = time.monotonic()
            earliest: float | None = None
            for run in runs:
                try:
                    due = run.tick(now)
                except Exception:  # the supervisor must outlive any one run's trouble
                    run.log.exception("the supervisor failed on response %s", run.record.id)
                    continue
                if due is not None and (earliest is None or due < earliest):
                    earliest = due
            if earliest is not None:
                self._wake_at(earliest)

    def _sweep(self) -> None:
        while not self.stopping.wait(self.settings.sweep_interval):
            self._attempt("ending expired leases", self._end_expired_leases)
            self._attempt("sweeping expired responses", self._sweep_expired)

    def _attempt(self, what: str, step: Callable[[], None]) -> None:
        """Run one step of the sweeper; a failure is logged and the step tried again next round (the thread goes on)."""
        try:
            step()
        except ResponseStoreError:
            _log.warning("%s failed; retrying in %g s", what, self.settings.sweep_interval, exc_info=True)
        except Exception:  # noqa: BLE001 - a backend's bug: logged with its traceback; the sweeper outlives it
            _log.exception("%s failed unexpectedly; retrying in %g s", what, self.settings.sweep_interval)

    def _end_expired_leases(self) -> None:
        ended = self.store.expire_leases()
        if ended:
            _log.warning("ended %d response(s) whose server stopped running them (their lease ran out)", ended)

    def _sweep_expired(self) -> None:
        """Sweep in writes of at most :data:`SWEEP_CHUNK` records, so a backlog never holds the store for long."""
        store = self.store
        swept = 0
        while not self.stopping.is_set():
            removed = store._sweep(SWEEP_CHUNK)  # the bounded sweep behind the public, unbounded sweep()
            swept += removed
            if removed < SWEEP_CHUNK:
                break
        swept += store._sweep_conversations()
        if swept:
            _log.debug("swept %d expired record(s)", swept)

    def closed_for(self, seconds: float) -> bool:
        """Whether the runner was closed more than its grace period ago (runs then stop retrying the store)."""
        closed = self._closed_at
        return closed is not None and time.monotonic() + seconds - closed > self.settings.stop_grace

    def close(self) -> None:
        """Stop: queued responses end ``failed`` at once, running ones at their next chunk (or after the grace).

        Waits for the runs to end, at most about ``stop_grace`` seconds; then ends those still going itself. A
        second call (from another thread, say) waits for the first to be done.
        """
        with self._mutex:
            if self.stopping.is_set():
                closing = True
            else:
                closing = False
                self.stopping.set()
                self._closed_at = time.monotonic()
                queued = list(self._queued.values())
                self._wakeup.notify_all()
        if closing:
            self._closed.wait()
            return
        try:
            self._close(queued)
        finally:
            self._closed.set()

    def _close(self, queued: list[tuple[Run, Job]]) -> None:
        for run, job in queued:
            if self._background.cancel(job):
                with run.lock:
                    if not run.done:
                        run._end_failed(SHUTTING_DOWN_QUEUED)
                self._forget(run)
        deadline = time.monotonic() + self.settings.stop_grace
        for pool in (self._background, self._foreground):
            pool.shutdown()
        with self._mutex:  # running responses may finish within the grace period; _forget wakes this
            while self._runs and time.monotonic() < deadline:
                self._wakeup.wait(deadline - time.monotonic())
            stuck = list(self._runs.values())
            self._runs.clear()
            self._wakeup.notify_all()
        for run in stuck:  # past the grace: end what is left from here (a model that never returns, say)
            with run.lock:
                if not run.done:
                    run._end_failed(SHUTTING_DOWN)
        self._sweeper.join(5.0)
        self._supervisor.join(5.0)
