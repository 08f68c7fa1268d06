"""``BaseStore``: the public API every backend offers, implemented once over a few storage primitives.

A backend subclasses ``BaseStore`` and implements only storage: transactions (``_reading``/``_writing``),
fetching one record, inserting, replacing and removing one, scanning one owner's records in order, and counting.
Validation, the lifecycle rules, versions, owner scoping, paging and conversation chains live here, so every
backend behaves the same by construction, and one contract test suite checks them all.

Order of work in every public method: validate and freeze the arguments (no lock held), then take the
backend's read or write transaction, re-read what the decision depends on, decide, write. A refused call
raises before it writes anything.
"""

from __future__ import annotations

import abc
import builtins
import datetime
import math
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

from . import _lifecycle
from ._events import (
    DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_MAX_EVENTS,
    EventLimits,
    Waiters,
    check_starting_after,
    prepare_event,
    stamp,
)
from ._ids import check_id, new_response_id
from ._items import normalize_input, normalize_items
from ._json import FrozenDict, thaw
from ._paging import Page, PageQuery, make_record_filter, paginate, scan_sequence
from ._records import (
    ResponseRecord,
    ResponseStatus,
    check_error,
    check_extra,
    check_incomplete_details,
    check_instructions,
    check_metadata,
    check_tools,
    check_usage,
    trusted_record,
)
from ._retention import DEFAULT_MAX_RECORDS, DEFAULT_TTL, SWEEP_BATCH, USE_STORE_TTL, Retention, StoreStats
from ._timeouts import check_timeout
from .errors import (
    ChainError,
    EventLogClosed,
    EventLogFull,
    InvalidArgument,
    ResponseExists,
    ResponseNotFound,
    StoreFull,
    WaitTimeout,
)

__all__ = ["DEFAULT_MAX_CHAIN_DEPTH", "BaseStore", "check_owner"]

DEFAULT_MAX_CHAIN_DEPTH = 1000

Clock = Callable[[], float]


def check_owner(owner: object) -> str | None:
    """Return ``owner`` if it is ``None`` or a string, else raise :class:`InvalidArgument`."""
    if owner is not None and not isinstance(owner, str):
        raise InvalidArgument(f"owner must be a string or None, not {type(owner).__name__}")
    return owner


class BaseStore(abc.ABC):
    """The behaviour every responsestore backend implements; annotate with this to accept any backend.

    Every method takes a keyword ``owner`` (default ``None``). A record belongs to the owner it was created
    with, and every method treats a record of another owner exactly as a missing one: the same error, the same
    message, absent from lists. Ids are unique per owner.

    Every mutating method takes ``expected_version``: when given and different from the stored version, the
    call raises :class:`~responsestore.VersionConflict` and changes nothing (optimistic concurrency).
    """

    def __init__(
        self,
        *,
        ttl: float | datetime.timedelta | None = DEFAULT_TTL,
        max_records: int | None = DEFAULT_MAX_RECORDS,
        clock: Clock = time.time,
        max_chain_depth: int = DEFAULT_MAX_CHAIN_DEPTH,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        if not callable(clock):
            raise InvalidArgument(f"clock must be callable, not {type(clock).__name__}")
        if isinstance(max_chain_depth, bool) or not isinstance(max_chain_depth, int):
            raise InvalidArgument(f"max_chain_depth must be an int, not {max_chain_depth!r}")
        if max_chain_depth < 1:
            raise InvalidArgument(f"max_chain_depth must be at least 1, not {max_chain_depth}")
        self._clock = clock
        self.max_chain_depth = max_chain_depth
        self.retention = Retention.from_arguments(ttl, max_records)
        self.event_limits = EventLimits.from_arguments(max_events, max_event_bytes)
        self._waiters = Waiters()
        #: Seconds between re-checks while waiting; ``None`` when every write wakes waiters (one process).
        self._poll_interval: float | None = None

    # ------------------------------------------------------------------ storage primitives (backends)

    @abc.abstractmethod
    def _reading(self) -> AbstractContextManager[object]:
        """A read transaction: a consistent view of the store, shared with other readers."""

    @abc.abstractmethod
    def _writing(self) -> AbstractContextManager[object]:
        """A write transaction: exclusive; everything read inside it stays true until it ends."""

    @abc.abstractmethod
    def _fetch(self, owner: str | None, id: str, touch: bool = False) -> ResponseRecord | None:
        """The visible record ``(owner, id)``, or ``None`` when it is missing or expired.

        With ``touch``, also mark it as just used (recency for eviction). May be called with or without a
        transaction.
        """

    @abc.abstractmethod
    def _touch(self, records: Iterable[ResponseRecord]) -> None:
        """Mark ``records`` as used, in the order given (inside ``_reading`` or ``_writing``)."""

    @abc.abstractmethod
    def _refresh(self, records: Iterable[ResponseRecord], now: float) -> None:
        """Restart the expiry of ``records`` from ``now`` (each with its own ttl) and mark them as used.

        In the order given; inside ``_writing``.
        """

    @abc.abstractmethod
    def _insert(self, record: ResponseRecord, ttl: float | None) -> None:
        """Store a new record that expires ``ttl`` seconds after its ``created_at`` (inside ``_writing``).

        Its id is known to be free for its owner; the new record counts as just used.
        """

    @abc.abstractmethod
    def _replace(self, old: ResponseRecord, new: ResponseRecord) -> None:
        """Store ``new`` in place of ``old`` (same owner and id; inside ``_writing``); it counts as just used."""

    @abc.abstractmethod
    def _remove(self, record: ResponseRecord) -> None:
        """Delete a visible record at the caller's request (inside ``_writing``)."""

    @abc.abstractmethod
    def _sweep(self, limit: int | None) -> int:
        """Remove up to ``limit`` (``None``: all) expired records; return how many (inside ``_writing``)."""

    @abc.abstractmethod
    def _evict_one(self, protected: Collection[tuple[str | None, str]]) -> ResponseRecord | None:
        """Remove the least recently used finished record and return it, or ``None`` if there is none.

        Records whose ``(owner, id)`` is in ``protected`` are never chosen. Inside ``_writing``; expired records
        have been swept.
        """

    @abc.abstractmethod
    def _stats(self) -> StoreStats:
        """Counts of visible records by status and of lifetime events (inside ``_reading``)."""

    @abc.abstractmethod
    def _scan(self, owner: str | None, cursor: str | None, descending: bool) -> Iterator[ResponseRecord]:
        """Yield ``owner``'s records strictly after ``cursor`` in creation order (inside ``_reading``).

        Must raise :class:`InvalidArgument` (``_paging.unknown_cursor``) at once for a cursor it cannot place.
        """

    @abc.abstractmethod
    def _event_log_size(self, record: ResponseRecord) -> tuple[int, int]:
        """How many events ``record``'s log holds and their total size in bytes (inside a transaction)."""

    @abc.abstractmethod
    def _append_event(self, record: ResponseRecord, event: FrozenDict, size: int) -> None:
        """Append a stamped event of ``size`` bytes to ``record``'s log (inside ``_writing``)."""

    @abc.abstractmethod
    def _read_events(self, record: ResponseRecord, after: int) -> tuple[FrozenDict, ...]:
        """The events of ``record``'s log with a sequence number above ``after`` (inside a transaction)."""

    @abc.abstractmethod
    def _count(self) -> int:
        """How many visible (stored, not expired) records the store holds, across all owners."""

    @abc.abstractmethod
    def _check(self) -> None:
        """Assert every internal invariant (for tests; call it while no other thread uses the store)."""

    def _now(self) -> float:
        """The store clock's reading, checked: every read and write refuses a broken clock the same way.

        Raises:
            InvalidArgument: the clock returned something other than a finite number.
        """
        now = self._clock()
        if now.__class__ is float and now - now == 0.0:  # the common case: a finite float (nan/inf fail this)
            return now
        if isinstance(now, bool) or not isinstance(now, (int, float)) or not math.isfinite(now):
            raise InvalidArgument(f"the store's clock returned {now!r}, not a finite number")
        return float(now)

    # ------------------------------------------------------------------ creating and reading

    def create(
        self,
        model: str,
        input: str | Iterable[Mapping[str, Any]] = (),
        *,
        instructions: str | None = None,
        previous_response_id: str | None = None,
        tools: Iterable[Mapping[str, Any]] = (),
        metadata: Mapping[str, str] | None = None,
        background: bool = False,
        status: ResponseStatus | str = ResponseStatus.IN_PROGRESS,
        id: str | None = None,
        extra: Mapping[str, Any] | None = None,
        ttl: float | datetime.timedelta | None = USE_STORE_TTL,
        owner: str | None = None,
    ) -> ResponseRecord:
        """Create and store a new response; it is visible to every thread before this returns.

        ``input`` is a string (one user message) or a list of items; items without an ``id`` get one.
        ``status`` is ``in_progress`` (the default) or ``queued``. ``id`` defaults to a fresh ``resp_…`` id.
        ``extra`` holds further OpenAI Response fields (``temperature``, ``text``, ...), returned verbatim.
        ``ttl`` overrides the store's ttl for this record (seconds, a ``timedelta``, or ``None`` for never).

        ``previous_response_id``, when given, must name a finished (not queued or in progress) response of the
        same owner. Continuing it restarts the expiry of every response in its chain and marks them as used.

        At ``max_records``, the least recently used finished record is evicted to make room.

        Raises:
            InvalidArgument: an argument is malformed.
            ResponseExists: ``id`` is already used by this owner.
            ChainError: ``previous_response_id`` names no response of this owner, or one still running.
            StoreFull: the store is at ``max_records`` and every record is queued or in progress.
        """
        owner = check_owner(owner)
        record_id = new_response_id() if id is None else check_id(id)
        if not isinstance(model, str) or not model:
            raise InvalidArgument(f"model must be a non-empty string, not {model!r}", id=record_id)
        try:
            initial = ResponseStatus(status)
        except ValueError:
            initial = None
        if initial not in (ResponseStatus.QUEUED, ResponseStatus.IN_PROGRESS):
            raise InvalidArgument(
                f"a new response's status must be 'queued' or 'in_progress', not {status!r}",
                id=record_id,
            )
        if previous_response_id is not None:
            check_id(previous_response_id, "previous_response_id")
        if not isinstance(background, bool):
            raise InvalidArgument(f"background must be a bool, not {background!r}", id=record_id)
        fields: dict[str, Any] = {
            "input": normalize_input(input),
            "instructions": check_instructions(instructions),
            "tools": check_tools(tools),
            "metadata": check_metadata(metadata),
            "extra": check_extra(extra),
        }
        record_ttl = self.retention.record_ttl(ttl)
        max_records = self.retention.max_records
        with self._writing():
            now = self._now()
            self._sweep(SWEEP_BATCH)
            if self._fetch(owner, record_id) is not None:
                raise ResponseExists(record_id)
            ancestors: builtins.list[ResponseRecord] = []
            if previous_response_id is not None:
                previous = self._check_previous(owner, record_id, previous_response_id)
                ancestors, _ = self._walk_chain(owner, previous)
            if max_records is not None and self._count() >= max_records:
                self._sweep(None)
                # The chain being continued is finished but must survive: it does not count as evictable.
                if self._count() >= max_records and self._finished_count() <= len(ancestors):
                    raise StoreFull(record_id, max_records)
            record = trusted_record(  # every value was validated and frozen above
                id=record_id,
                created_at=now,
                model=model,
                status=initial,
                previous_response_id=previous_response_id,
                background=background,
                owner=owner,
                output=(),
                usage=None,
                error=None,
                incomplete_details=None,
                completed_at=None,
                version=1,
                **fields,
            )
            if ancestors:
                self._refresh(reversed(ancestors), now)
            if max_records is not None:
                protected = {(owner, ancestor.id) for ancestor in ancestors}
                while self._count() >= max_records and self._evict_one(protected) is not None:
                    pass
            self._insert(record, record_ttl)
        return record

    def _finished_count(self) -> int:
        by_status = self._stats().by_status
        return sum(by_status[status.value] for status in ResponseStatus if status.is_terminal)

    def _check_previous(self, owner: str | None, record_id: str, previous_id: str) -> ResponseRecord:
        previous = self._fetch(owner, previous_id)
        if previous is None:
            raise ChainError(
                f"previous_response_id {previous_id!r} of {record_id!r} names no response",
                id=previous_id,
            )
        if not previous.is_terminal:
            raise ChainError(
                f"previous_response_id {previous_id!r} of {record_id!r} is still "
                f"{previous.status.value}; continue a response only once it has finished",
                id=previous_id,
            )
        return previous

    def get(self, id: str, *, owner: str | None = None) -> ResponseRecord:
        """Return the response ``id``.

        Raises:
            ResponseNotFound: no such response for this owner.
            InvalidArgument: ``id`` or ``owner`` has the wrong type.
        """
        try:
            record = self._fetch(owner, id, touch=True)
        except TypeError:
            record = None
        if record is None:
            check_owner(owner)
            raise ResponseNotFound(check_id(id))
        return record

    def contains(self, id: object, *, owner: str | None = None) -> bool:
        """Whether the response ``id`` exists for ``owner`` (``id in store`` asks for owner ``None``)."""
        check_owner(owner)
        if not isinstance(id, str):
            return False
        return self._fetch(owner, id) is not None

    def __contains__(self, id: object) -> bool:
        return isinstance(id, str) and self._fetch(None, id) is not None

    def __len__(self) -> int:
        """The number of visible (stored, unexpired) responses, across all owners."""
        with self._reading():
            return self._count()

    def sweep(self) -> int:
        """Remove every expired record now and return how many were removed.

        Expired records are already invisible; sweeping reclaims their memory. Writes sweep a few each, so only
        an idle store needs this (or a :class:`~responsestore.Sweeper`).
        """
        with self._writing():
            return self._sweep(None)

    def stats(self) -> StoreStats:
        """Counts of visible records by status, and of records created, deleted, evicted and expired.

        One consistent snapshot; cheap (no scan of the records).
        """
        with self._reading():
            return self._stats()

    def delete(self, id: str, *, expected_version: int | None = None, owner: str | None = None) -> ResponseRecord:
        """Remove the response ``id`` (in any status) and return the removed record.

        Raises:
            ResponseNotFound: no such response for this owner.
            VersionConflict: ``expected_version`` does not match.
        """
        owner = check_owner(owner)
        check_id(id)
        expected = _lifecycle.check_expected_version(expected_version)
        with self._writing():
            self._sweep(SWEEP_BATCH)
            record = self._fetch(owner, id)
            if record is None:
                raise ResponseNotFound(id)
            _lifecycle.check_version(record, expected)
            self._remove(record)
        self._waiters.wake((owner, id))
        return record

    # ------------------------------------------------------------------ the lifecycle

    def _change(
        self,
        owner: object,
        id: object,
        expected_version: object,
        apply: Callable[[ResponseRecord, float], ResponseRecord],
        event: object = None,
    ) -> ResponseRecord:
        checked_owner = check_owner(owner)
        record_id = check_id(id)
        expected = _lifecycle.check_expected_version(expected_version)
        prepared = None if event is None else prepare_event(event, record_id)
        with self._writing():
            self._sweep(SWEEP_BATCH)
            record = self._fetch(checked_owner, record_id)
            if record is None:
                raise ResponseNotFound(record_id)
            _lifecycle.check_version(record, expected)
            new = apply(record, self._now())
            if new is not record:
                if prepared is not None:
                    # Appended before the new status is stored: whoever sees the new status sees the event too.
                    self._log_event(record, *prepared)
                self._replace(record, new)
        if new is not record:
            self._waiters.wake((checked_owner, record_id))
        return new

    def _log_event(self, record: ResponseRecord, event: FrozenDict, carried: int | None, size: int) -> int:
        """Check the event against ``record``'s log and append it (inside ``_writing``); return its number."""
        if record.is_terminal:
            raise EventLogClosed(record.id, record.status.value)
        count, used = self._event_log_size(record)
        if carried is not None and carried != count:
            raise InvalidArgument(
                f"event for {record.id!r} carries sequence_number {carried}, but the next one is {count}",
                id=record.id,
            )
        limits = self.event_limits
        if count >= limits.max_events:
            raise EventLogFull(
                f"the event log of {record.id!r} already holds its maximum of {limits.max_events} events",
                id=record.id,
            )
        if used + size > limits.max_bytes:
            raise EventLogFull(
                f"an event of {size} bytes would take the event log of {record.id!r} past its maximum of "
                f"{limits.max_bytes} bytes ({used} used)",
                id=record.id,
            )
        self._append_event(record, stamp(event, count), size)
        return count

    def start(
        self,
        id: str,
        *,
        event: Mapping[str, Any] | None = None,
        expected_version: int | None = None,
        owner: str | None = None,
    ) -> ResponseRecord:
        """Move a ``queued`` response to ``in_progress``.

        ``event``, if given, is appended to the response's event log in the same atomic step (as in every
        transition method).

        Raises:
            ResponseNotFound: no such response for this owner.
            InvalidTransition: the lifecycle does not allow the change.
            VersionConflict: ``expected_version`` does not match.
            InvalidArgument: an argument is malformed.
            EventLogFull: ``event`` does not fit in the response's event log.
        """
        return self._change(owner, id, expected_version, _lifecycle.start, event)

    def complete(
        self,
        id: str,
        output: Iterable[Mapping[str, Any]] = (),
        *,
        usage: Mapping[str, Any] | None = None,
        event: Mapping[str, Any] | None = None,
        expected_version: int | None = None,
        owner: str | None = None,
    ) -> ResponseRecord:
        """Finish a response successfully with its ``output`` items and token ``usage``.

        Sets ``completed_at`` to the store's clock.

        Raises:
            ResponseNotFound: no such response for this owner.
            InvalidTransition: the lifecycle does not allow the change (the response has already finished).
            VersionConflict: ``expected_version`` does not match.
            InvalidArgument: an argument is malformed.
            EventLogFull: ``event`` does not fit in the response's event log.
        """
        items = normalize_items(output, "output")
        frozen_usage = check_usage(usage)
        return self._change(
            owner,
            id,
            expected_version,
            lambda record, now: _lifecycle.complete(record, now, items, frozen_usage),
            event,
        )

    def fail(
        self,
        id: str,
        error: Mapping[str, Any] | str,
        *,
        event: Mapping[str, Any] | None = None,
        expected_version: int | None = None,
        owner: str | None = None,
    ) -> ResponseRecord:
        """Finish a response as ``failed`` with ``error`` (``{"code", "message"}``, or a message string).

        Raises:
            ResponseNotFound: no such response for this owner.
            InvalidTransition: the lifecycle does not allow the change (the response has already finished).
            VersionConflict: ``expected_version`` does not match.
            InvalidArgument: an argument is malformed.
            EventLogFull: ``event`` does not fit in the response's event log.
        """
        frozen_error = check_error(error)
        if frozen_error is None:
            raise InvalidArgument("fail needs an error, not None", id=id if isinstance(id, str) else None)
        return self._change(
            owner, id, expected_version, lambda record, now: _lifecycle.fail(record, now, frozen_error), event
        )

    def mark_incomplete(
        self,
        id: str,
        reason: str,
        *,
        output: Iterable[Mapping[str, Any]] = (),
        usage: Mapping[str, Any] | None = None,
        event: Mapping[str, Any] | None = None,
        expected_version: int | None = None,
        owner: str | None = None,
    ) -> ResponseRecord:
        """Finish a response as ``incomplete`` for ``reason`` (e.g. ``"max_output_tokens"``).

        Any partial ``output`` and ``usage`` are kept.

        Raises:
            ResponseNotFound: no such response for this owner.
            InvalidTransition: the lifecycle does not allow the change (the response has already finished).
            VersionConflict: ``expected_version`` does not match.
            InvalidArgument: an argument is malformed.
            EventLogFull: ``event`` does not fit in the response's event log.
        """
        details = check_incomplete_details(reason)
        if details is None:
            raise InvalidArgument("mark_incomplete needs a reason, not None")
        items = normalize_items(output, "output")
        frozen_usage = check_usage(usage)
        return self._change(
            owner,
            id,
            expected_version,
            lambda record, now: _lifecycle.mark_incomplete(record, now, details, items, frozen_usage),
            event,
        )

    def cancel(
        self,
        id: str,
        *,
        event: Mapping[str, Any] | None = None,
        expected_version: int | None = None,
        owner: str | None = None,
    ) -> ResponseRecord:
        """Cancel a background response (OpenAI's rules), waking everyone who waits on it.

        Only a ``background`` response can be cancelled. Cancelling an already cancelled response returns it
        unchanged (and appends no event); cancelling one in another final status raises
        :class:`InvalidTransition`.

        Raises:
            ResponseNotFound: no such response for this owner.
            InvalidTransition: the lifecycle does not allow the change.
            VersionConflict: ``expected_version`` does not match.
            InvalidArgument: an argument is malformed.
            EventLogFull: ``event`` does not fit in the response's event log.
        """
        return self._change(owner, id, expected_version, _lifecycle.cancel, event)

    def update(
        self,
        id: str,
        *,
        event: Mapping[str, Any] | None = None,
        expected_version: int | None = None,
        owner: str | None = None,
        **changes: Any,
    ) -> ResponseRecord:
        """Change fields of a response.

        The fields that can change: ``status``, ``model``, ``output``, ``instructions``, ``tools``,
        ``metadata``, ``usage``, ``error``, ``incomplete_details`` and ``extra``.
        A ``status`` change follows the lifecycle's transition table (but not ``cancel``'s background rule).
        Once a response is final only its ``metadata`` can change. Every successful update adds one to
        ``version``.

        Raises:
            ResponseNotFound: no such response for this owner.
            InvalidTransition: the lifecycle does not allow the change.
            VersionConflict: ``expected_version`` does not match.
            InvalidArgument: an argument is malformed.
            EventLogFull: ``event`` does not fit in the response's event log.
        """
        prepared = _lifecycle.prepare_update(changes)
        return self._change(
            owner, id, expected_version, lambda record, now: _lifecycle.update(record, now, prepared), event
        )

    # ------------------------------------------------------------------ lists and chains

    def list(
        self,
        *,
        limit: int = 20,
        after: str | None = None,
        before: str | None = None,
        order: str = "desc",
        model: str | None = None,
        status: ResponseStatus | str | None = None,
        metadata: Mapping[str, str] | None = None,
        owner: str | None = None,
    ) -> Page[ResponseRecord]:
        """One page of the owner's responses, newest first by default.

        Ordering is total: by ``created_at``, ties broken by creation order. ``after=X`` gives the ``limit``
        responses following ``X``; ``before=X`` the ``limit`` responses just before ``X``, still in the list's
        order. Filters: ``model`` and ``status`` must match exactly, ``metadata`` pairs must all be present.
        The cursor itself need not match the filters, and a cursor removed in the meantime still places the
        page (see the docs on paging while others write).

        Raises:
            InvalidArgument: ``limit`` outside 1..100, ``order`` not asc/desc, both cursors, an unknown cursor,
                or a malformed filter.
        """
        check_owner(owner)
        query = PageQuery.check(limit, after, before, order)
        matches = make_record_filter(model, status, metadata)
        with self._reading():
            return paginate(
                lambda cursor, descending: self._scan(owner, cursor, descending),
                query,
                _record_id,
                matches,
            )

    def input_items(
        self,
        id: str,
        *,
        limit: int = 20,
        after: str | None = None,
        before: str | None = None,
        order: str = "desc",
        owner: str | None = None,
    ) -> Page[dict[str, Any]]:
        """One page of the input items of response ``id`` (fresh dicts), last item first by default.

        Raises:
            ResponseNotFound: no such response for this owner.
            InvalidArgument: bad paging arguments, or a cursor that is not an item of this response.
        """
        check_owner(owner)
        check_id(id)
        query = PageQuery.check(limit, after, before, order)
        with self._reading():
            record = self._fetch(owner, id, touch=True)
            if record is None:
                raise ResponseNotFound(id)
        page = paginate(
            lambda cursor, descending: scan_sequence(record.input, cursor, descending),
            query,
            _item_id,
        )
        return Page(
            data=tuple(thaw(item) for item in page.data),
            first_id=page.first_id,
            last_id=page.last_id,
            has_more=page.has_more,
        )

    def chain(self, id: str, *, owner: str | None = None) -> tuple[ResponseRecord, ...]:
        """The responses from the start of ``id``'s ``previous_response_id`` chain to ``id``, oldest first.

        Every response in it counts as used (oldest first).

        Raises:
            ResponseNotFound: ``id`` itself does not exist for this owner.
            ChainError: an ancestor is missing, the chain is longer than ``max_chain_depth``, or it loops.
        """
        check_owner(owner)
        check_id(id)
        with self._reading():
            record = self._fetch(owner, id)
            if record is None:
                raise ResponseNotFound(id)
            chain, problem = self._walk_chain(owner, record)
            if problem is not None:
                raise problem
            chain.reverse()
            self._touch(chain)
        return tuple(chain)

    def _walk_chain(
        self, owner: str | None, record: ResponseRecord
    ) -> tuple[builtins.list[ResponseRecord], ChainError | None]:
        """Follow ``previous_response_id`` links from ``record``.

        Returns the records reached (newest first) and the problem that stopped the walk early, if any.
        """
        chain = [record]
        seen = {record.id}
        start = record.id
        while record.previous_response_id is not None:
            previous_id = record.previous_response_id
            if previous_id in seen:
                return chain, ChainError(f"the chain of {start!r} loops back to {previous_id!r}", id=previous_id)
            if len(chain) >= self.max_chain_depth:
                return chain, ChainError(
                    f"the chain of {start!r} is longer than max_chain_depth={self.max_chain_depth}", id=start
                )
            previous = self._fetch(owner, previous_id)
            if previous is None:
                return chain, ChainError(
                    f"the chain of {start!r} is broken: its ancestor {previous_id!r} "
                    f"(previous of {record.id!r}) no longer exists",
                    id=previous_id,
                )
            seen.add(previous_id)
            chain.append(previous)
            record = previous
        return chain, None

    def conversation(self, id: str, *, owner: str | None = None) -> tuple[dict[str, Any], ...]:
        """The context for a request that continues ``id``.

        Fresh copies of every input item then every output item of each response in the chain, oldest
        response first.
        Instructions are not carried over (OpenAI semantics): the continuing request supplies its own.

        Raises:
            ResponseNotFound: ``id`` itself does not exist for this owner.
            ChainError: an ancestor is missing, the chain is longer than ``max_chain_depth``, or it loops.
        """
        items: list[dict[str, Any]] = []
        for record in self.chain(id, owner=owner):
            items.extend(thaw(item) for item in record.input)
            items.extend(thaw(item) for item in record.output)
        return tuple(items)

    # ------------------------------------------------------------------ events, waiting and streaming

    def append_event(self, id: str, event: Mapping[str, Any], *, owner: str | None = None) -> int:
        """Append a stream event to the log of the queued or in-progress response ``id``; return its number.

        The store keeps a frozen copy with ``sequence_number`` set (consecutive from 0 per response); an event
        that carries a ``sequence_number`` must carry exactly the next one. Wakes every waiter of ``id``.

        Raises:
            ResponseNotFound: no such response for this owner.
            EventLogClosed: the response has finished.
            EventLogFull: the log would exceed ``max_events`` or ``max_event_bytes``.
            InvalidArgument: the event is not a JSON object, or carries the wrong sequence number.
        """
        checked_owner = check_owner(owner)
        record_id = check_id(id)
        prepared = prepare_event(event, record_id)
        with self._writing():
            record = self._fetch(checked_owner, record_id)
            if record is None:
                raise ResponseNotFound(record_id)
            number = self._log_event(record, *prepared)
        self._waiters.wake((checked_owner, record_id))
        return number

    def events(
        self, id: str, *, starting_after: int | None = None, owner: str | None = None
    ) -> tuple[dict[str, Any], ...]:
        """Fresh copies of the events of response ``id`` with a sequence number above ``starting_after``.

        Raises:
            ResponseNotFound: no such response for this owner.
            InvalidArgument: ``starting_after`` is not ``None`` or an int >= 0.
        """
        check_owner(owner)
        check_id(id)
        after = check_starting_after(starting_after)
        with self._reading():
            record = self._fetch(owner, id)
            if record is None:
                raise ResponseNotFound(id)
            events = self._read_events(record, after)
        return tuple(thaw(event) for event in events)

    def wait(self, id: str, *, timeout: float | None = None, owner: str | None = None) -> ResponseRecord:
        """Block until response ``id`` has finished, and return it. Woken by the write, not by polling.

        Raises:
            ResponseNotFound: no such response for this owner, or it was deleted while waiting.
            WaitTimeout: it had not finished after ``timeout`` seconds.
        """
        check_owner(owner)
        check_id(id)
        limit = check_timeout(timeout)
        deadline = None if limit is None else time.monotonic() + limit
        wakeup = threading.Event()
        key = (owner, id)
        token = self._waiters.register(key, wakeup.set)
        try:
            while True:
                wakeup.clear()
                record = self._fetch(owner, id)
                if record is None:
                    raise ResponseNotFound(id)
                if record.is_terminal:
                    return record
                self._sleep(wakeup, deadline, f"response {id!r} was still {record.status.value}", id)
        finally:
            self._waiters.unregister(key, token)

    def stream(
        self,
        id: str,
        *,
        starting_after: int | None = None,
        timeout: float | None = None,
        owner: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Iterate over the events of response ``id`` after ``starting_after``, live.

        Yields the stored events, then blocks for new ones, and ends once the response has finished and its
        final events have been yielded. ``timeout`` bounds each wait between events. Arguments are checked when
        this is called; the response is looked up when iteration starts.

        Raises:
            ResponseNotFound: (while iterating) no such response for this owner, or it was deleted meanwhile.
            WaitTimeout: (while iterating) no new event and no finish within ``timeout`` seconds.
            InvalidArgument: (at once) a malformed argument.
        """
        check_owner(owner)
        check_id(id)
        after = check_starting_after(starting_after)
        limit = check_timeout(timeout)
        return self._stream(owner, id, after, limit)

    def _stream(self, owner: str | None, id: str, after: int, limit: float | None) -> Iterator[dict[str, Any]]:
        wakeup = threading.Event()
        key = (owner, id)
        token = self._waiters.register(key, wakeup.set)
        try:
            deadline = None if limit is None else time.monotonic() + limit
            while True:
                wakeup.clear()
                record, events = self._events_snapshot(owner, id, after)
                for event in events:
                    after = event["sequence_number"]
                    yield thaw(event)
                if record.is_terminal:
                    return
                if events and limit is not None:
                    deadline = time.monotonic() + limit
                self._sleep(wakeup, deadline, f"no new event for response {id!r}", id)
        finally:
            self._waiters.unregister(key, token)

    def _events_snapshot(self, owner: str | None, id: str, after: int) -> tuple[ResponseRecord, tuple[FrozenDict, ...]]:
        """The record and its events above ``after``, read together in one transaction.

        Raises:
            ResponseNotFound: no such response for this owner.
        """
        with self._reading():
            record = self._fetch(owner, id)
            if record is None:
                raise ResponseNotFound(id)
            return record, self._read_events(record, after)

    def _sleep(self, wakeup: threading.Event, deadline: float | None, what: str, id: str) -> None:
        """Wait for a wake-up (or the poll interval); raise :class:`WaitTimeout` past ``deadline``."""
        wakeup.wait(self._next_wait(deadline, what, id))

    def _next_wait(self, deadline: float | None, what: str, id: str) -> float | None:
        """How long a waiter may sleep before re-checking: the poll interval, cut short by ``deadline``.

        Shared by the blocking waits here and the asyncio ones in ``aio``.

        Raises:
            WaitTimeout: ``deadline`` has passed.
        """
        wait = self._poll_interval
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimeout(f"timed out: {what}", id=id)
            wait = remaining if wait is None else min(wait, remaining)
        return wait


def _record_id(record: ResponseRecord) -> str:
    return record.id


def _item_id(item: Mapping[str, Any]) -> str:
    item_id: str = item["id"]
    return item_id
