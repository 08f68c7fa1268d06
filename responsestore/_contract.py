"""``BaseStore``: the public API every backend offers, written once over a few atomic storage operations.

A backend subclasses ``BaseStore`` and implements only storage: the operations in the "atomic storage
operations" section below, each of which either fully happens or not at all, with no Python of this module
deciding in between. Validation, the lifecycle rules, versions, owner scoping, paging, chains, the event-log
rules and waiting live here, so every backend behaves the same by construction, and one contract suite checks
them all. The docs page "Writing a backend" spells out the promise of each operation.

How a write flows: check and freeze the arguments (nothing read yet); read the current record with one atomic
read; decide the new record and its event with the pure rules of ``_lifecycle``; commit with one conditional
write ("replace version v with this and append this event", "insert if the id is free, within the cap"). When
the conditional write finds that another writer got there first, read and decide again (at most
:data:`MAX_ATTEMPTS` times). A refused call raises before its conditional write, so it changes nothing.
"""

from __future__ import annotations

import abc
import builtins
import datetime
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from . import _lifecycle
from ._checks import check_bool, check_callable, check_int, check_owner, check_text, describe
from ._events import (
    DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_MAX_EVENTS,
    EventLimits,
    check_starting_after,
    prepare_event,
    stamp,
)
from ._ids import check_id, new_response_id
from ._items import normalize_input, normalize_items
from ._json import FrozenDict, thaw
from ._paging import Page, PageQuery, make_record_filter, paginate_sequence
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
from ._retention import DEFAULT_MAX_RECORDS, DEFAULT_TTL, USE_STORE_TTL, Retention, StoreStats
from ._timeouts import check_timeout
from ._waiting import Subscription, Waiters, Waker, next_wait, stream_step, wait_step
from .errors import (
    ChainError,
    EventLogClosed,
    EventLogFull,
    InvalidArgument,
    ResponseExists,
    ResponseNotFound,
    StorageError,
)

__all__ = [
    "CURSOR_MEMORY",
    "DEFAULT_MAX_CHAIN_DEPTH",
    "MAX_ATTEMPTS",
    "TOUCH_LOG",
    "BaseStore",
    "Clock",
    "Stored",
    "cursor_memory",
]

DEFAULT_MAX_CHAIN_DEPTH = 1000

#: How many times a write reads and decides again after losing a race to another writer, before it gives up
#: with :class:`~responsestore.StorageError`. Each lost race means another write succeeded.
MAX_ATTEMPTS = 100

#: How many removed records keep their place for cursors, on every backend (see the paging docs); a store capped
#: below that remembers as many as its cap (see :func:`cursor_memory`).
CURSOR_MEMORY = 10_000

#: How many recency marks of lock-free reads a backend may queue until its next write applies them.
TOUCH_LOG = 65_536

Clock = Callable[[], float]


def cursor_memory(max_records: int | None) -> int:
    """How many removed records a store with this cap remembers for cursors: ``min(CURSOR_MEMORY, max_records)``.

    So a capped store's bookkeeping stays proportional to its size: a page walk keeps its place as long as fewer
    than that many records are removed between two of its pages.
    """
    return CURSOR_MEMORY if max_records is None else min(CURSOR_MEMORY, max_records)


_STATUS_OF: dict[str, ResponseStatus] = {status.value: status for status in ResponseStatus}


class Stored(NamedTuple):
    """What a write decides on: a stored record and the size of its event log, read in one atomic step."""

    record: ResponseRecord
    #: How many events the record's log holds (the next event's ``sequence_number``).
    events: int
    #: Their total size in bytes of JSON.
    event_bytes: int


class BaseStore(abc.ABC):
    """The behaviour every responsestore backend implements; annotate with this to accept any backend.

    Every method takes a keyword ``owner`` (default ``None``). A record belongs to the owner it was created
    with, and every method treats a record of another owner exactly as a missing one: the same error, the same
    message, absent from lists. Ids are unique per owner.

    Every mutating method takes ``expected_version``: when given and different from the stored version, the
    call raises :class:`~responsestore.VersionConflict` and changes nothing (optimistic concurrency).

    Every store is a context manager; leaving the ``with`` block calls :meth:`close`.
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
        check_callable(clock, "clock")
        self._clock = clock
        self.max_chain_depth: int = check_int(max_chain_depth, "max_chain_depth", minimum=1)  # type: ignore[assignment]
        self.retention = Retention.from_arguments(ttl, max_records)
        self.event_limits = EventLimits.from_arguments(max_events, max_event_bytes)
        self._waiters = Waiters()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> BaseStore:
        """Open the store a URL of this backend's scheme names (what :func:`responsestore.open` calls).

        Raises:
            InvalidArgument: the URL is malformed for this backend.
        """
        raise InvalidArgument(f"{cls.__name__} cannot be opened from a URL ({url[:200]!r})")

    @property
    def poll_interval(self) -> float | None:
        """Seconds between re-checks while waiting; ``None`` when every write wakes the waiters (one process).

        Backends shared between processes override it: a write made elsewhere wakes nobody here.
        """
        return None

    # ------------------------------------------------------------------ atomic storage operations (backends)
    #
    # Each operation is one atomic step of the backend: it fully happens or not at all, and no other write
    # interleaves with it. "Visible" means stored and not expired at the store clock's reading (``self._now()``).
    # Operations raise only the errors named here (and StorageError for a failing engine); arguments have been
    # checked and frozen before they are called.

    @abc.abstractmethod
    def _get(self, owner: str | None, id: str) -> ResponseRecord | None:
        """The visible record ``(owner, id)``, or ``None``; marks it as used (recency for eviction).

        The hot path of every server: a read that takes no exclusive lock and writes nothing durable (a backend
        may queue the recency mark and apply it with its next write). ``owner`` is ``None`` or a string and
        ``id`` a string, but ``id`` may be any string, valid id or not.
        """

    @abc.abstractmethod
    def _peek(self, owner: str | None, id: str) -> ResponseRecord | None:
        """Like :meth:`_get` but without marking the record as used."""

    @abc.abstractmethod
    def _read(self, owner: str | None, id: str) -> Stored | None:
        """The visible record ``(owner, id)`` with the size of its event log, in one atomic read; no recency."""

    def _chain(self, owner: str | None, id: str, limit: int) -> builtins.list[ResponseRecord]:
        """Follow ``previous_response_id`` links from ``(owner, id)``: the visible records reached, newest first.

        Stops after ``limit`` records, at a link to a record that is not visible, and at a link back to a
        record already reached. No recency. This default makes one :meth:`_peek` per record; a backend may do
        it in one atomic read (a consistent snapshot) or server-side.
        """
        chain: builtins.list[ResponseRecord] = []
        seen: set[str] = set()
        next_id: str | None = id
        while next_id is not None and next_id not in seen and len(chain) < limit:
            record = self._peek(owner, next_id)
            if record is None:
                break
            chain.append(record)
            seen.add(next_id)
            next_id = record.previous_response_id
        return chain

    @abc.abstractmethod
    def _touch(self, records: Sequence[ResponseRecord]) -> None:
        """Mark ``records`` as used, in the order given (missing ones are skipped). May be queued like ``_get``'s."""

    @abc.abstractmethod
    def _put_new(self, record: ResponseRecord, ttl: float | None, keep: Sequence[ResponseRecord]) -> bool:
        """Insert ``record`` (version 1) if its id is free for its owner, within the capacity; one atomic step.

        In order, atomically:

        1. Sweep up to :data:`~responsestore._retention.SWEEP_BATCH` expired records.
        2. If a *visible* record ``(record.owner, record.id)`` exists, raise :class:`ResponseExists`. An expired
           one not yet swept is removed now (counted as expired).
        3. If any record of ``keep`` (the chain ``record`` continues) is no longer visible at its version,
           return ``False`` and change nothing: the caller reads again.
        4. Restart the expiry of every record of ``keep`` from ``record.created_at`` (each with its own ttl)
           and mark them as used, in reverse order of ``keep`` (oldest first).
        5. At ``self.retention.max_records``: evict least recently used *finished* records not in ``keep``
           (counted as evicted) until there is room; if there is none, raise :class:`StoreFull` and keep
           nothing of steps 2-4 (the sweep of step 1 may stay: it changes nothing anyone can see).
        6. Store ``record``, expiring ``ttl`` seconds after its ``created_at`` (``None``: never), as just used;
           return ``True``.

        Waiters of every removed record are woken after the step.
        """

    @abc.abstractmethod
    def _swap(self, old: Stored, new: ResponseRecord, event: FrozenDict | None, size: int) -> bool:
        """Replace ``old.record`` by ``new`` (same owner and id) if nothing changed since ``old`` was read.

        One atomic step: sweep up to ``SWEEP_BATCH`` expired records; if the record is no longer visible, or
        its stored version differs from ``old.record.version``, or its log no longer holds ``old.events``
        events, return ``False`` and change nothing. Otherwise store ``new`` (counted as just used), append
        ``event`` (already stamped with ``sequence_number == old.events``, ``size`` bytes) when it is not
        ``None``, and return ``True``. Waiters are woken by the caller.
        """

    @abc.abstractmethod
    def _append(self, old: Stored, event: FrozenDict, size: int) -> bool:
        """Append ``event`` (stamped ``old.events``) to ``old.record``'s log if nothing changed since the read.

        The same condition as :meth:`_swap` (visible, same version, same event count); no recency; no sweep.
        """

    @abc.abstractmethod
    def _remove(self, record: ResponseRecord) -> bool:
        """Delete ``record`` at the caller's request if it is still visible at ``record.version``.

        One atomic step: sweep up to ``SWEEP_BATCH`` expired records; then remove the record and its event log,
        remember its place for cursors (the last :data:`CURSOR_MEMORY` removed records), count it as deleted
        and return ``True``; or return ``False`` and change nothing.
        """

    @abc.abstractmethod
    def _page(
        self, owner: str | None, query: PageQuery, matches: Callable[[ResponseRecord], bool] | None
    ) -> Page[ResponseRecord]:
        """One page of ``owner``'s visible records: :func:`~responsestore._paging.paginate` over one snapshot.

        The backend's scan yields records in creation order (``created_at``, ties by creation sequence),
        strictly after the cursor, and raises :class:`InvalidArgument` (``_paging.unknown_cursor``) for a
        cursor it cannot place: neither visible nor among the remembered removed records. No recency.
        """

    @abc.abstractmethod
    def _events(self, owner: str | None, id: str, after: int) -> tuple[ResponseRecord, tuple[FrozenDict, ...]] | None:
        """The visible record and its events numbered above ``after``, read together; ``None`` if not visible."""

    @abc.abstractmethod
    def _sweep(self, limit: int | None) -> int:
        """Remove up to ``limit`` (``None``: all) expired records, counted as expired; return how many."""

    @abc.abstractmethod
    def _count(self) -> int:
        """How many visible records the store holds, across all owners."""

    @abc.abstractmethod
    def _stats(self) -> StoreStats:
        """Counts of visible records by status and of lifetime events, one consistent snapshot.

        Expired records not yet swept count as expired already.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release what the store holds; later calls raise :class:`~responsestore.StorageError`. Idempotent.

        Threads waiting in ``wait``/``stream`` are woken. What it does to calls in flight depends on the
        backend; see the docs' concurrency page.
        """

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return False

    @abc.abstractmethod
    def _check(self) -> None:
        """Assert every internal invariant (for tests; call it while no other thread uses the store)."""

    def __enter__(self) -> BaseStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _notify(self, owner: str | None, id: str) -> None:
        """Wake every waiter of ``(owner, id)`` (backends call it for records they remove on their own)."""
        self._waiters.wake((owner, id))

    def _now(self) -> float:
        """The store clock's reading, checked: every read and write refuses a broken clock the same way.

        Raises:
            InvalidArgument: the clock returned something other than a finite number.
        """
        now = self._clock()
        if now.__class__ is float and now - now == 0.0:  # the common case: a finite float (nan/inf fail this)
            return now
        if isinstance(now, bool) or not isinstance(now, (int, float)) or not math.isfinite(now):
            raise InvalidArgument(f"the store's clock returned {describe(now)}, not a finite number")
        try:
            return float(now)
        except OverflowError:
            raise InvalidArgument(f"the store's clock returned {describe(now)}, not a finite number") from None

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
        check_text(model, "model", id=record_id)
        initial = _STATUS_OF.get(status) if isinstance(status, str) else None
        if initial not in (ResponseStatus.QUEUED, ResponseStatus.IN_PROGRESS):
            raise InvalidArgument(
                f"a new response's status must be 'queued' or 'in_progress', not {describe(status)}",
                id=record_id,
            )
        if previous_response_id is not None:
            check_id(previous_response_id, "previous_response_id")
        check_bool(background, "background", id=record_id)
        fields: dict[str, Any] = {
            "input": normalize_input(input),
            "instructions": check_instructions(instructions),
            "tools": check_tools(tools),
            "metadata": check_metadata(metadata),
            "extra": check_extra(extra),
        }
        record_ttl = self.retention.record_ttl(ttl)
        for _ in range(MAX_ATTEMPTS):
            now = self._now()
            if id is not None and self._peek(owner, record_id) is not None:
                raise ResponseExists(record_id)
            ancestors: Sequence[ResponseRecord] = ()
            if previous_response_id is not None:
                ancestors = self._chain(owner, previous_response_id, self.max_chain_depth)
                _check_previous(ancestors, record_id, previous_response_id)
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
            if self._put_new(record, record_ttl, ancestors):
                return record
        raise self._too_busy(record_id)

    def _too_busy(self, id: str) -> StorageError:
        return StorageError(
            f"gave up on {id!r} in {self!r} after {MAX_ATTEMPTS} attempts: its stored version kept differing from the "
            "one read (other writers, or a damaged store); nothing was changed",
            id=id,
        )

    def get(self, id: str, *, owner: str | None = None) -> ResponseRecord:
        """Return the response ``id``.

        Raises:
            ResponseNotFound: no such response for this owner.
            InvalidArgument: ``id`` or ``owner`` has the wrong type.
        """
        if id.__class__ is not str or (owner is not None and owner.__class__ is not str):
            check_owner(owner)
            check_id(id)
        record = self._get(owner, id)
        if record is None:
            raise ResponseNotFound(check_id(id))
        return record

    def contains(self, id: object, *, owner: str | None = None) -> bool:
        """Whether the response ``id`` exists for ``owner`` (``id in store`` asks for owner ``None``)."""
        check_owner(owner)
        if not isinstance(id, str):
            return False
        return self._peek(owner, id) is not None

    def __contains__(self, id: object) -> bool:
        return isinstance(id, str) and self._peek(None, id) is not None

    def __len__(self) -> int:
        """The number of visible (stored, unexpired) responses, across all owners."""
        return self._count()

    def sweep(self) -> int:
        """Remove every expired record now and return how many were removed.

        Expired records are already invisible; sweeping reclaims their memory. Writes sweep a few each, so only
        an idle store needs this (or a :class:`~responsestore.Sweeper`).
        """
        return self._sweep(None)

    def stats(self) -> StoreStats:
        """Counts of visible records by status, and of records created, deleted, evicted and expired.

        One consistent snapshot; cheap (no scan of the records).
        """
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
        for _ in range(MAX_ATTEMPTS):
            record = self._peek(owner, id)
            if record is None:
                raise ResponseNotFound(id)
            _lifecycle.check_version(record, expected)
            if self._remove(record):
                self._notify(owner, id)
                return record
        raise self._too_busy(id)

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
        for _ in range(MAX_ATTEMPTS):
            stored = self._read(checked_owner, record_id)
            if stored is None:
                raise ResponseNotFound(record_id)
            record = stored.record
            _lifecycle.check_version(record, expected)
            new = apply(record, self._now())
            if new is record:
                return record
            stamped: FrozenDict | None = None
            size = 0
            if prepared is not None:
                # Decided against the log as it was read; the swap commits only if the log is still that size,
                # so whoever sees the new status sees the event too.
                stamped, size = self._next_event(stored, *prepared)
            if self._swap(stored, new, stamped, size):
                self._notify(checked_owner, record_id)
                return new
        raise self._too_busy(record_id)

    def _next_event(self, stored: Stored, event: FrozenDict, carried: int | None, size: int) -> tuple[FrozenDict, int]:
        """Check an event against the log of ``stored`` and stamp it with the next number.

        Raises:
            EventLogClosed: the response has finished.
            InvalidArgument: the event carries another number than the next one.
            EventLogFull: the event does not fit.
        """
        record = stored.record
        if record.is_terminal:
            raise EventLogClosed(record.id, record.status.value)
        count, used = stored.events, stored.event_bytes
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
        return stamp(event, count), size

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
        Once a response is final only its ``metadata`` can change. Every update that changes something adds one
        to ``version``; ``update(id, status=<its current status>)`` alone changes nothing and returns the
        response as it is (same version, no event appended).

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
        return self._page(owner, query, matches)

    def input_items(
        self,
        id: str,
        *,
        limit: int = 20,
        after: str | None = None,
        before: str | None = None,
        order: str = "desc",
        owner: str | None = None,
    ) -> Page[FrozenDict]:
        """One page of the input items of response ``id``, last item first by default.

        The items are the stored ones, read-only (:class:`~responsestore.FrozenDict`, lists as tuples): changing
        one raises ``TypeError``; ``item.thaw()`` returns a mutable copy.

        Raises:
            ResponseNotFound: no such response for this owner.
            InvalidArgument: bad paging arguments, or a cursor that is not an item of this response.
        """
        check_owner(owner)
        check_id(id)
        query = PageQuery.check(limit, after, before, order)
        record = self._get(owner, id)
        if record is None:
            raise ResponseNotFound(id)
        return paginate_sequence(record.input, query, _item_id)

    def chain(self, id: str, *, owner: str | None = None) -> tuple[ResponseRecord, ...]:
        """The responses from the start of ``id``'s ``previous_response_id`` chain to ``id``, oldest first.

        Every response in it counts as used (oldest first).

        Raises:
            ResponseNotFound: ``id`` itself does not exist for this owner.
            ChainError: an ancestor is missing, the chain is longer than ``max_chain_depth``, or it loops.
        """
        check_owner(owner)
        check_id(id)
        chain = self._chain(owner, id, self.max_chain_depth)
        if not chain:
            raise ResponseNotFound(id)
        problem = _chain_problem(chain, self.max_chain_depth)
        if problem is not None:
            raise problem
        chain.reverse()
        self._touch(chain)
        return tuple(chain)

    def conversation(self, id: str, *, owner: str | None = None) -> tuple[FrozenDict, ...]:
        """The context for a request that continues ``id``.

        Every input item then every output item of each response in the chain, oldest response first. The items
        are the stored ones, read-only (:class:`~responsestore.FrozenDict`, lists as tuples): changing one raises
        ``TypeError``; ``item.thaw()`` returns a mutable copy.
        Instructions are not carried over (OpenAI semantics): the continuing request supplies its own.

        Raises:
            ResponseNotFound: ``id`` itself does not exist for this owner.
            ChainError: an ancestor is missing, the chain is longer than ``max_chain_depth``, or it loops.
        """
        items: list[FrozenDict] = []
        for record in self.chain(id, owner=owner):
            items += record.input
            items += record.output
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
        for _ in range(MAX_ATTEMPTS):
            stored = self._read(checked_owner, record_id)
            if stored is None:
                raise ResponseNotFound(record_id)
            stamped, size = self._next_event(stored, *prepared)
            if self._append(stored, stamped, size):
                self._notify(checked_owner, record_id)
                return stored.events
        raise self._too_busy(record_id)

    def events(
        self, id: str, *, starting_after: int | None = None, owner: str | None = None
    ) -> tuple[dict[str, Any], ...]:
        """Fresh copies of the events of response ``id`` with a sequence number above ``starting_after``.

        Raises:
            ResponseNotFound: no such response for this owner.
            InvalidArgument: ``starting_after`` is not ``None`` or an int >= 0.
        """
        _, events = self.snapshot(id, starting_after=starting_after, owner=owner)
        return tuple(thaw(event) for event in events)

    def snapshot(
        self, id: str, *, starting_after: int | None = None, owner: str | None = None
    ) -> tuple[ResponseRecord, tuple[FrozenDict, ...]]:
        """Response ``id`` and its stored events above ``starting_after``, read together in one atomic step.

        What a server resuming a stream needs: if the record has finished, the events are the whole rest of
        its log. The events are the stored, read-only values. Not a use of the record (no recency).

        Raises:
            ResponseNotFound: no such response for this owner.
            InvalidArgument: ``starting_after`` is not ``None`` or an int >= 0.
        """
        check_owner(owner)
        check_id(id)
        after = check_starting_after(starting_after)
        found = self._events(owner, id, after)
        if found is None:
            raise ResponseNotFound(id)
        return found

    def subscribe(self, id: str, waker: Waker, *, owner: str | None = None) -> Subscription:
        """Call ``waker()`` after every write to response ``id`` made through this store object, until cancelled.

        The building block of ``wait`` and ``stream`` (and of :mod:`responsestore.aio`): ``waker`` must be quick
        and must not block (``threading.Event.set``, ``loop.call_soon_threadsafe``); it may run in any thread,
        while the backend holds a lock. Writes made by other processes call nobody: re-check every
        :attr:`poll_interval` seconds. Subscribing to a missing response is allowed (a waker learns of a
        create, a delete or an expiry sweep of that id as well).

        Raises:
            InvalidArgument: ``id``, ``owner`` or ``waker`` is malformed.
        """
        check_owner(owner)
        check_id(id)
        check_callable(waker, "waker", id=id)
        return Subscription(self._waiters, (owner, id), waker)

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
        with self.subscribe(id, wakeup.set, owner=owner):
            while True:
                wakeup.clear()
                record = self._peek(owner, id)
                if record is None:
                    raise ResponseNotFound(id)
                what = wait_step(record)
                if what is None:
                    return record
                wakeup.wait(next_wait(self.poll_interval, deadline, what, id))

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
        with self.subscribe(id, wakeup.set, owner=owner):
            deadline = None if limit is None else time.monotonic() + limit
            while True:
                wakeup.clear()
                record, events = self.snapshot(id, starting_after=None if after < 0 else after, owner=owner)
                for event in events:
                    yield thaw(event)
                last, done = stream_step(record, events)
                if done:
                    return
                if last is not None:
                    after = last
                    if limit is not None:
                        deadline = time.monotonic() + limit
                wakeup.wait(next_wait(self.poll_interval, deadline, f"no new event for response {id!r}", id))


def _check_previous(ancestors: Sequence[ResponseRecord], record_id: str, previous_id: str) -> None:
    """Refuse to continue a response that is missing or still running.

    Raises:
        ChainError: ``ancestors`` is empty (no such response) or its first record has not finished.
    """
    if not ancestors:
        raise ChainError(
            f"previous_response_id {previous_id!r} of {record_id!r} names no response",
            id=previous_id,
        )
    previous = ancestors[0]
    if not previous.is_terminal:
        raise ChainError(
            f"previous_response_id {previous_id!r} of {record_id!r} is still "
            f"{previous.status.value}; continue a response only once it has finished",
            id=previous_id,
        )


def _chain_problem(chain: Sequence[ResponseRecord], depth: int) -> ChainError | None:
    """Why a chain read by ``_chain`` (newest first, at most ``depth`` records) stopped early, if it did."""
    last = chain[-1]
    previous_id = last.previous_response_id
    if previous_id is None:
        return None
    start = chain[0].id
    if any(record.id == previous_id for record in chain):
        return ChainError(f"the chain of {start!r} loops back to {previous_id!r}", id=previous_id)
    if len(chain) >= depth:
        return ChainError(f"the chain of {start!r} is longer than max_chain_depth={depth}", id=start)
    return ChainError(
        f"the chain of {start!r} is broken: its ancestor {previous_id!r} (previous of {last.id!r}) no longer exists",
        id=previous_id,
    )


def _item_id(item: Mapping[str, Any]) -> str:
    item_id: str = item["id"]
    return item_id
