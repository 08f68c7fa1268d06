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
from typing import Any, ClassVar, NamedTuple, TypeVar

from . import _events, _lifecycle, _wire
from ._checks import check_bool, check_callable, check_int, check_owner, check_text, describe
from ._conversations import ConversationStore, ConversationWrite, conversation_of
from ._events import (
    DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_MAX_EVENTS,
    NO_EVENTS,
    Chunk,
    DeltaRun,
    EventLimits,
    Prepared,
    check_starting_after,
    prepare_event,
    prepare_events,
    prepared_one,
)
from ._ids import check_id, new_response_id
from ._items import normalize_input, normalize_items
from ._json import FrozenDict, thaw
from ._paging import (
    MAX_LIMIT,
    Page,
    PageQuery,
    first_sequence_page,
    known_first_page,
    make_record_filter,
    paginate_sequence,
)
from ._recency import TOUCH_LOG
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
    replace_fields,
    trusted_record,
)
from ._retention import (
    DEFAULT_MAX_RECORDS,
    DEFAULT_TTL,
    USE_STORE_TTL,
    Retention,
    StoreStats,
    check_ttl,
    record_size,
    resize,
)
from ._timeouts import check_timeout
from ._waiting import Subscription, Waiters, Waker, next_wait, stream_step, wait_step
from .errors import (
    ChainError,
    ConversationNotFound,
    EventLogClosed,
    EventLogFull,
    InvalidArgument,
    LeaseLost,
    ResponseExists,
    ResponseNotFound,
    SequenceConflict,
    StorageError,
    StoreFull,
)

__all__ = [
    "CURSOR_MEMORY",
    "DEFAULT_MAX_CHAIN_DEPTH",
    "MAX_ATTEMPTS",
    "TOUCH_LOG",
    "BaseStore",
    "Clock",
    "LogWrite",
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

Clock = Callable[[], float]
_Store = TypeVar("_Store", bound="BaseStore")


def cursor_memory(max_records: int | None) -> int:
    """How many removed records a store with this cap remembers for cursors: ``min(CURSOR_MEMORY, max_records)``.

    So a capped store's bookkeeping stays proportional to its size: a page walk keeps its place as long as fewer
    than that many records are removed between two of its pages.
    """
    return CURSOR_MEMORY if max_records is None else min(CURSOR_MEMORY, max_records)


_STATUS_OF: dict[str, ResponseStatus] = {status.value: status for status in ResponseStatus}


class Stored(NamedTuple):
    """What a write decides on: a stored record, its incarnation and the size of its event log, read atomically."""

    record: ResponseRecord
    #: How many events the record's log holds (the next event's ``sequence_number``).
    events: int
    #: Their total size as counted against ``max_event_bytes`` (bytes of the events' JSON as given).
    event_bytes: int
    #: Which creation of ``(owner, id)`` this is, a number the backend gives each record it inserts and never gives
    #: again (a creation sequence), so a conditional write never lands on the record of a later creation of the id.
    incarnation: int
    #: The record's size as :func:`~responsestore.backend.record_size` counts it (stored with it by ``_put_new``
    #: and ``_swap``).
    size: int


class LogWrite(NamedTuple):
    """What a write does to a record's event log: append one chunk, or replace the whole log by one chunk.

    The chunk is text :class:`BaseStore` encoded (compact JSON); a backend stores it as it is, with ``first`` and
    ``events``, and hands it back from ``_events``.
    """

    #: The chunk's encoded text.
    text: str
    #: The sequence number of its first event (0 when it replaces the log).
    first: int
    #: How many events it holds.
    events: int
    #: The log's counted size (against ``max_event_bytes``) after the write.
    event_bytes: int
    #: The bytes of ``text`` (UTF-8), which count against the store's ``max_bytes``.
    stored: int
    #: Whether the chunk replaces every chunk of the log (it then holds the events ``0 .. count - 1``).
    replace: bool


class BaseStore(ConversationStore, abc.ABC):
    """The behaviour every responsestore backend implements; annotate with this to accept any backend.

    Every method takes a keyword ``owner`` (default ``None``). A record belongs to the owner it was created
    with, and every method treats a record of another owner exactly as a missing one: the same error, the same
    message, absent from lists. Ids are unique per owner.

    Every mutating method takes ``expected_version``: when given and different from the stored version, the
    call raises :class:`~responsestore.VersionConflict` and changes nothing (optimistic concurrency).

    Every store is a context manager; leaving the ``with`` block calls :meth:`close`.
    """

    #: Whether ``_get`` takes any string id and owner safely (a dict lookup does; an engine that refuses some
    #: characters does not). When true, a first page of ``input_items`` skips the argument checks.
    _reads_any_string: ClassVar[bool] = False

    def __init__(
        self,
        *,
        ttl: float | datetime.timedelta | None = DEFAULT_TTL,
        max_records: int | None = DEFAULT_MAX_RECORDS,
        clock: Clock = time.time,
        max_chain_depth: int = DEFAULT_MAX_CHAIN_DEPTH,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        max_bytes: int | None = None,
    ) -> None:
        check_callable(clock, "clock")
        self._clock = clock
        self.max_chain_depth: int = check_int(max_chain_depth, "max_chain_depth", minimum=1)  # type: ignore[assignment]
        self.retention = Retention.from_arguments(ttl, max_records, max_bytes)
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
    def _put_new(self, record: ResponseRecord, ttl: float | None, keep: Sequence[ResponseRecord], size: int) -> bool:
        """Insert ``record`` (version 1, ``size`` bytes) if its id is free for its owner, within capacity; atomically.

        In order, atomically:

        1. Sweep up to :data:`~responsestore._retention.SWEEP_BATCH` expired records.
        2. If a *visible* record ``(record.owner, record.id)`` exists, raise :class:`ResponseExists`. An expired
           one not yet swept is removed now (counted as expired).
        3. If any record of ``keep`` (the chain ``record`` continues) is no longer visible at its version,
           return ``False`` and change nothing: the caller reads again.
        4. Restart the expiry of every record of ``keep`` from ``record.created_at`` (each with its own ttl)
           and mark them as used, in reverse order of ``keep`` (oldest first).
        5. Capacity: with ``record`` added, the store must hold at most ``retention.max_records`` records and
           ``retention.max_bytes`` bytes (each record's size plus its log's stored bytes). Evict least recently
           used *finished* records not in ``keep`` (counted as evicted) until it does; if it cannot, raise
           :class:`StoreFull` naming the bound, and keep nothing of steps 2-4 (the sweep of step 1 may stay: it
           changes nothing anyone can see). A backend may first check whether evicting can make room at all.
        6. Store ``record`` with a new incarnation (a number never given before), expiring ``ttl`` seconds after
           its ``created_at`` (``None``: never), as just used, with an empty log; return ``True``.

        Waiters of every removed record are woken after the step.
        """

    @abc.abstractmethod
    def _swap(
        self,
        old: Stored,
        new: ResponseRecord,
        size: int,
        log: LogWrite | None,
        conversation: ConversationWrite | None = None,
    ) -> bool:
        """Replace ``old.record`` by ``new`` (same owner and id, ``size`` bytes) if nothing changed since ``old``.

        ``conversation``, when given (a response of a conversation finishing), is applied in the same atomic step
        under its own condition (see :meth:`_conversation_swap`): if either condition fails, nothing changes and
        the result is ``False``.

        One atomic step: sweep up to ``SWEEP_BATCH`` expired records; if the record is no longer visible, or is
        another incarnation than ``old.incarnation``, or its stored version differs from ``old.record.version``,
        or its log no longer holds ``old.events`` events, return ``False`` and change nothing. Otherwise store
        ``new`` (counted as just used when it is finished), apply ``log`` (append its chunk, or replace the log by
        it) when it is not ``None``, and keep the indexes ``new`` is in (status, lease expiry) up to date.

        Capacity: if the store now holds more than ``retention.max_bytes`` bytes, evict least recently used
        finished records other than this one until it does not. If it cannot, and ``new`` is not finished, raise
        :class:`StoreFull` and change nothing; a finished ``new`` is stored anyway (a response must always be able
        to end; the store is over its bound until finished records can go). Return ``True``. Waiters are woken by
        the caller (and, by the backend, those of evicted records).
        """

    @abc.abstractmethod
    def _append(self, old: Stored, log: LogWrite) -> bool:
        """Append ``log``'s chunk to ``old.record``'s log if nothing changed since the read.

        The same condition and the same byte capacity rule as :meth:`_swap` (the record is active, so the write is
        refused with :class:`StoreFull` when the bytes cannot be made room for); no recency; no sweep.
        """

    @abc.abstractmethod
    def _remove(self, old: Stored) -> bool:
        """Delete ``old.record`` at the caller's request if it is still visible at that incarnation and version.

        One atomic step: sweep up to ``SWEEP_BATCH`` expired records; then remove the record and its event log,
        remember its place for cursors (the last :data:`CURSOR_MEMORY` removed records), count it as deleted
        and return ``True``; or return ``False`` and change nothing.
        """

    @abc.abstractmethod
    def _leased(self, now: float, limit: int) -> builtins.list[ResponseRecord]:
        """Up to ``limit`` visible queued or in-progress records whose lease expired at or before ``now``.

        Earliest expiry first, across all owners; a read (no recency, nothing changed).
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

    def _find_newest(
        self, owner: str | None, text: str, matches: Callable[[ResponseRecord], bool]
    ) -> ResponseRecord | None:
        """The newest visible record of ``owner`` for which ``matches`` is true, or ``None``; no recency.

        Newest is last in creation order (``created_at``, ties by creation sequence). ``matches`` is true only of
        records whose JSON (:meth:`ResponseRecord.to_dict`, compact: ``separators=(",", ":")``) contains
        ``text``, so a backend may pass over, without calling ``matches``, every record whose stored JSON does not
        contain it: it can filter in the engine. This default walks the owner's records with :meth:`_page`, a page
        of :data:`~responsestore._paging.MAX_LIMIT` at a time (one snapshot per page).
        """
        query, restarts = _NEWEST_PAGE, 0
        while True:
            try:
                page = self._page(owner, query, None)
            except InvalidArgument:  # the cursor's record went, with too many others to place it: search again
                restarts += 1
                if restarts > 3:  # the owner's records are churning faster than a walk: give up, as for a miss
                    return None
                query = _NEWEST_PAGE
                continue
            for record in page.data:
                if matches(record):
                    return record
            if not page.has_more or page.last_id is None:
                return None
            query = PageQuery.check(MAX_LIMIT, page.last_id, None, "desc")

    @abc.abstractmethod
    def _events(self, owner: str | None, id: str, after: int) -> tuple[Stored, tuple[Chunk, ...]] | None:
        """The visible record and the chunks of its log holding events numbered above ``after``, read together.

        One atomic read: ``(what a write would decide on, the chunks in order)``, each chunk as
        ``(first, count, text)`` exactly as a :class:`LogWrite` gave it; ``None`` if the record is not visible.
        A chunk holding any event numbered above ``after`` is included whole.
        """

    def _log_of(self, owner: str | None, stored: Stored) -> tuple[Stored, tuple[Chunk, ...]] | None:
        """The whole log of ``stored``'s record, read to compact it as the record finishes.

        This default is :meth:`_events` from the start. A backend may instead answer from chunks it already holds
        (those it wrote itself, say) when they are the log of ``stored``: the same incarnation, ``stored.events``
        events, the record still active (the log of an active record only grows, so its first events never
        change). It then returns ``stored`` with them: the conditional write that follows re-checks incarnation,
        version and event count, so an answer that was out of date only costs a retry.
        """
        return self._events(owner, stored.record.id, -1)

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

    def __enter__(self: _Store) -> _Store:
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
        lease: float | datetime.timedelta | None = None,
        holder: str | None = None,
        conversation: str | None = None,
        owner: str | None = None,
    ) -> ResponseRecord:
        """Create and store a new response; it is visible to every thread before this returns.

        ``input`` is a string (one user message) or a list of items; items without an ``id`` get one.
        ``status`` is ``in_progress`` (the default) or ``queued``. ``id`` defaults to a fresh ``resp_…`` id.
        ``extra`` holds further OpenAI Response fields (``temperature``, ``text``, ...), returned verbatim.
        ``ttl`` overrides the store's ttl for this record (seconds, a ``timedelta``, or ``None`` for never).
        ``lease`` (seconds or a ``timedelta``) gives the new response a lease held by ``holder`` (see
        :meth:`renew`): unless renewed, it ends ``failed`` once the lease has run out and :meth:`expire_leases`
        runs. Without ``lease`` the response has no lease and stays active until someone finishes it.

        ``previous_response_id``, when given, must name a finished (not queued or in progress) response of the
        same owner. Continuing it restarts the expiry of every response in its chain and marks them as used.

        ``conversation`` names a conversation of the same owner (see :meth:`create_conversation`) the response
        belongs to (``extra["conversation"]``; not together with ``previous_response_id``). Its items are the
        response's context (:meth:`conversation_context`); when the response ends ``completed`` or
        ``incomplete``, its input and output items are appended to the conversation in the same atomic write.

        At ``max_records`` (or ``max_bytes``), the least recently used finished record is evicted to make room;
        when nothing can be evicted, responses whose lease has run out are ended first, and the create tried again.

        Raises:
            InvalidArgument: an argument is malformed (also ``holder`` without ``lease``).
            ResponseExists: ``id`` is already used by this owner.
            ChainError: ``previous_response_id`` names no response of this owner, or one still running.
            ConversationNotFound: ``conversation`` names no conversation of this owner.
            StoreFull: the store is at capacity and every record is queued or in progress.
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
        lease_seconds = _check_lease(lease, record_id)
        lease_holder = _check_holder(holder, record_id)
        if lease_holder is not None and lease_seconds is None:
            raise InvalidArgument("holder needs a lease: pass lease=SECONDS too", id=record_id)
        fields: dict[str, Any] = {
            "input": normalize_input(input),
            "instructions": check_instructions(instructions),
            "tools": check_tools(tools),
            "metadata": check_metadata(metadata),
            "extra": check_extra(extra),
        }
        if conversation is not None:
            fields["extra"] = self._in_conversation(
                owner, record_id, conversation, previous_response_id, fields["extra"]
            )
        record_ttl = self.retention.record_ttl(ttl)
        reclaimed = False
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
                lease_holder=lease_holder,
                lease_expires_at=None if lease_seconds is None else now + lease_seconds,
                **fields,
            )
            try:
                if self._put_new(record, record_ttl, ancestors, record_size(record)):
                    return record
            except StoreFull:
                # Responses stranded by a run that died hold room nobody will free: end them, then try again.
                if reclaimed or not self._leased(self._now(), 1):
                    raise
                reclaimed = True
                self.expire_leases()
        raise self._too_busy(record_id)

    def _in_conversation(
        self, owner: str | None, record_id: str, conversation: object, previous: str | None, extra: FrozenDict
    ) -> FrozenDict:
        """``extra`` naming the (checked, visible) conversation a new response belongs to."""
        conversation_id = check_id(conversation, "conversation")
        if previous is not None:
            raise InvalidArgument(
                "pass conversation or previous_response_id, not both: a response continues one or the other",
                id=record_id,
            )
        named = conversation_of(extra)
        if named is not None and named != conversation_id:
            raise InvalidArgument(
                f"extra names conversation {named!r} but conversation is {conversation_id!r}", id=record_id
            )
        if self._conversation(owner, conversation_id) is None:
            raise ConversationNotFound(conversation_id)
        return check_extra({**thaw(extra), "conversation": {"id": conversation_id}})

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
        return self._sweep(None) + self._sweep_conversations()

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
            stored = self._read(owner, id)
            if stored is None:
                raise ResponseNotFound(id)
            _lifecycle.check_version(stored.record, expected)
            if self._remove(stored):
                self._notify(owner, id)
                return stored.record
        raise self._too_busy(id)

    # ------------------------------------------------------------------ the lifecycle

    def _change(
        self,
        owner: object,
        id: object,
        expected_version: object,
        apply: Callable[[ResponseRecord, float], ResponseRecord],
        event: object = None,
        *,
        events: object = None,
        expected_events: object = None,
        holder: object = None,
        lease: object = None,
        closing: Callable[[ResponseRecord, Mapping[str, Any]], Prepared] | None = None,
    ) -> ResponseRecord:
        """Read, decide with ``apply`` (pure), and write conditionally; again on a lost race.

        ``event``/``events`` are appended in the same write; ``closing`` builds further events from the new record
        (the store's own final event of a response it ends). Returns the record as stored after the write.
        """
        checked_owner = check_owner(owner)
        record_id = check_id(id)
        expected = _lifecycle.check_expected_version(expected_version)
        prepared = _prepare_write_events(event, events, record_id)
        count = check_int(expected_events, "expected_events", minimum=0, optional=True, id=record_id)
        lease_holder = _check_holder(holder, record_id)
        lease_seconds = _check_lease(lease, record_id)
        for _ in range(MAX_ATTEMPTS):
            stored = self._read(checked_owner, record_id)
            if stored is None:
                raise ResponseNotFound(record_id)
            record = stored.record
            if lease_holder is not None and record.lease_holder != lease_holder:
                raise LeaseLost(record_id, lease_holder, record.lease_holder, record.status.value)
            _lifecycle.check_version(record, expected)
            now = self._now()
            new = apply(record, now)
            if lease_seconds is not None and not new.is_terminal:  # renewed in the same write: one version
                new = replace_fields(new, version=record.version + 1, lease_expires_at=now + lease_seconds)
            if new is record:  # nothing to change (cancelling a cancelled response, say): nothing is appended
                return record
            wire = None
            batch = prepared
            if closing is not None:
                wire = _wire.response_frozen(new)  # built once: the closing event carries it, compaction refers to it
                batch = _join(prepared, closing(new, wire))
            if batch.total:
                self._check_events(stored, batch, count)
            log = self._log_write(checked_owner, stored, new, batch, wire)
            if log is _STALE:
                continue
            size = resize(record, stored.size, new)
            appended = self._append_write(record, new)
            if appended is None:
                if not self._swap(stored, new, size, log):
                    continue
            elif not self._swap(stored, new, size, log, appended):
                continue
            self._notify(checked_owner, record_id)
            return new
        raise self._too_busy(record_id)

    def _check_events(self, stored: Stored, batch: Prepared, expected: int | None) -> None:
        """Check a batch of events against the log of ``stored``.

        Raises:
            EventLogClosed: the response has finished.
            SequenceConflict: the log does not hold ``expected`` events.
            InvalidArgument: an event carries another number than its own.
            EventLogFull: the batch does not fit.
        """
        record = stored.record
        if record.is_terminal:
            raise EventLogClosed(record.id, record.status.value)
        count, used = stored.events, stored.event_bytes
        if expected is not None and expected != count:
            raise SequenceConflict(record.id, expected, count)
        _events.check_batch(batch, record.id, count)
        limits = self.event_limits
        if count + batch.total > limits.max_events:
            if batch.total == 1:
                message = f"the event log of {record.id!r} already holds its maximum of {limits.max_events} events"
            else:
                message = (
                    f"{batch.total} more events would take the event log of {record.id!r} past its maximum of "
                    f"{limits.max_events} events ({count} held)"
                )
            raise EventLogFull(message, id=record.id)
        if used + batch.size > limits.max_bytes:
            what = "an event" if batch.total == 1 else f"{batch.total} events"
            raise EventLogFull(
                f"{what} of {batch.size} bytes would take the event log of {record.id!r} past its maximum of "
                f"{limits.max_bytes} bytes ({used} used)",
                id=record.id,
            )

    def _log_write(
        self, owner: str | None, stored: Stored, new: ResponseRecord, batch: Prepared, wire: Any = None
    ) -> LogWrite | None:
        """What a write does to the log: append the batch, or encode the whole log again against the final record.

        The whole log is encoded again, compactly, when the response finishes.

        Raises:
            StorageError: a stored chunk cannot be read back.
        """
        record = stored.record
        finishing = new.is_terminal and new is not record
        if not finishing or (stored.events == 0 and batch.total == 0):
            if not batch.total:
                return None
            encoded = _events.encode_batch(batch, stored.events)
            return LogWrite(
                encoded.text, stored.events, batch.total, stored.event_bytes + batch.size, encoded.stored, replace=False
            )
        chunks: tuple[Chunk, ...] = ()
        if stored.events:
            found = self._log_of(owner, stored)
            if found is None or found[0].incarnation != stored.incarnation or found[0].record.version != record.version:
                return _STALE
            chunks = found[1]
        try:
            if wire is None:
                encoded = _events.compact(chunks, record, batch, stored.events, new)
            else:
                encoded = _events.compact(chunks, record, batch, stored.events, new, wire)
        except _events.DamagedLog as exc:
            raise StorageError(
                f"the event log of {record.id!r} in {self!r} is damaged: {exc}"[:500], id=record.id
            ) from None
        return LogWrite(encoded.text, 0, encoded.events, stored.event_bytes + batch.size, encoded.stored, replace=True)

    def start(
        self,
        id: str,
        *,
        event: Mapping[str, Any] | None = None,
        events: Iterable[Mapping[str, Any] | DeltaRun] | None = None,
        expected_version: int | None = None,
        expected_events: int | None = None,
        holder: str | None = None,
        status_event: bool = False,
        lease: float | datetime.timedelta | None = None,
        owner: str | None = None,
    ) -> ResponseRecord:
        r"""Move a ``queued`` response to ``in_progress``.

        Every transition method takes the same keywords: ``event`` (one event) or ``events`` (a batch: mappings
        and :class:`~responsestore.DeltaRun`\ s) are appended to the response's log in the same atomic step as
        the change; ``status_event=True`` appends, after them, the ``response.<new status>`` event carrying the
        response as stored (what a stream announces a change with; the API has none for ``cancelled``);
        ``expected_events`` refuses the write (:class:`~responsestore.SequenceConflict`) unless the log holds that
        many events; ``holder`` refuses it (:class:`~responsestore.LeaseLost`) unless that holder holds the
        response's lease; ``lease`` renews the
        lease for that many seconds (a response that finishes gives its lease up).

        Raises:
            ResponseNotFound: no such response for this owner.
            InvalidTransition: the lifecycle does not allow the change.
            VersionConflict: ``expected_version`` does not match.
            LeaseLost: ``holder`` does not hold the lease.
            SequenceConflict: ``expected_events`` does not match.
            InvalidArgument: an argument is malformed.
            EventLogFull: the events do not fit in the response's event log.
            StoreFull: the events take the store past ``max_bytes`` and nothing can be evicted.
        """
        return self._change(
            owner,
            id,
            expected_version,
            _lifecycle.start,
            event,
            events=events,
            expected_events=expected_events,
            holder=holder,
            closing=_status_event if status_event else None,
            lease=lease,
        )

    def complete(
        self,
        id: str,
        output: Iterable[Mapping[str, Any]] = (),
        *,
        usage: Mapping[str, Any] | None = None,
        event: Mapping[str, Any] | None = None,
        events: Iterable[Mapping[str, Any] | DeltaRun] | None = None,
        expected_version: int | None = None,
        expected_events: int | None = None,
        holder: str | None = None,
        status_event: bool = False,
        lease: float | datetime.timedelta | None = None,
        owner: str | None = None,
    ) -> ResponseRecord:
        """Finish a response successfully with its ``output`` items and token ``usage``.

        Sets ``completed_at`` to the store's clock. The keywords are those of :meth:`start`.

        Raises:
            ResponseNotFound: no such response for this owner.
            InvalidTransition: the lifecycle does not allow the change (the response has already finished).
            VersionConflict: ``expected_version`` does not match.
            LeaseLost: ``holder`` does not hold the lease.
            SequenceConflict: ``expected_events`` does not match.
            InvalidArgument: an argument is malformed.
            EventLogFull: the events do not fit in the response's event log.
        """
        items = normalize_items(output, "output")
        frozen_usage = check_usage(usage)
        return self._change(
            owner,
            id,
            expected_version,
            lambda record, now: _lifecycle.complete(record, now, items, frozen_usage),
            event,
            events=events,
            expected_events=expected_events,
            holder=holder,
            closing=_status_event if status_event else None,
            lease=lease,
        )

    def fail(
        self,
        id: str,
        error: Mapping[str, Any] | str,
        *,
        event: Mapping[str, Any] | None = None,
        events: Iterable[Mapping[str, Any] | DeltaRun] | None = None,
        expected_version: int | None = None,
        expected_events: int | None = None,
        holder: str | None = None,
        status_event: bool = False,
        lease: float | datetime.timedelta | None = None,
        owner: str | None = None,
    ) -> ResponseRecord:
        """Finish a response as ``failed`` with ``error`` (``{"code", "message"}``, or a message string).

        The keywords are those of :meth:`start`.

        Raises:
            ResponseNotFound: no such response for this owner.
            InvalidTransition: the lifecycle does not allow the change (the response has already finished).
            VersionConflict: ``expected_version`` does not match.
            LeaseLost: ``holder`` does not hold the lease.
            SequenceConflict: ``expected_events`` does not match.
            InvalidArgument: an argument is malformed.
            EventLogFull: the events do not fit in the response's event log.
        """
        frozen_error = check_error(error)
        if frozen_error is None:
            raise InvalidArgument("fail needs an error, not None", id=id if isinstance(id, str) else None)
        return self._change(
            owner,
            id,
            expected_version,
            lambda record, now: _lifecycle.fail(record, now, frozen_error),
            event,
            events=events,
            expected_events=expected_events,
            holder=holder,
            closing=_status_event if status_event else None,
            lease=lease,
        )

    def mark_incomplete(
        self,
        id: str,
        reason: str,
        *,
        output: Iterable[Mapping[str, Any]] = (),
        usage: Mapping[str, Any] | None = None,
        event: Mapping[str, Any] | None = None,
        events: Iterable[Mapping[str, Any] | DeltaRun] | None = None,
        expected_version: int | None = None,
        expected_events: int | None = None,
        holder: str | None = None,
        status_event: bool = False,
        lease: float | datetime.timedelta | None = None,
        owner: str | None = None,
    ) -> ResponseRecord:
        """Finish a response as ``incomplete`` for ``reason`` (e.g. ``"max_output_tokens"``).

        Any partial ``output`` and ``usage`` are kept. The keywords are those of :meth:`start`.

        Raises:
            ResponseNotFound: no such response for this owner.
            InvalidTransition: the lifecycle does not allow the change (the response has already finished).
            VersionConflict: ``expected_version`` does not match.
            LeaseLost: ``holder`` does not hold the lease.
            SequenceConflict: ``expected_events`` does not match.
            InvalidArgument: an argument is malformed.
            EventLogFull: the events do not fit in the response's event log.
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
            events=events,
            expected_events=expected_events,
            holder=holder,
            closing=_status_event if status_event else None,
            lease=lease,
        )

    def cancel(
        self,
        id: str,
        *,
        event: Mapping[str, Any] | None = None,
        events: Iterable[Mapping[str, Any] | DeltaRun] | None = None,
        expected_version: int | None = None,
        expected_events: int | None = None,
        holder: str | None = None,
        status_event: bool = False,
        owner: str | None = None,
    ) -> ResponseRecord:
        """Cancel a background response (OpenAI's rules), waking everyone who waits on it.

        Only a ``background`` response can be cancelled. Cancelling an already cancelled response returns it
        unchanged (and appends no event); cancelling one in another final status raises
        :class:`InvalidTransition`. The keywords are those of :meth:`start`.

        Raises:
            ResponseNotFound: no such response for this owner.
            InvalidTransition: the lifecycle does not allow the change.
            VersionConflict: ``expected_version`` does not match.
            LeaseLost: ``holder`` does not hold the lease.
            SequenceConflict: ``expected_events`` does not match.
            InvalidArgument: an argument is malformed.
            EventLogFull: the events do not fit in the response's event log.
        """
        return self._change(
            owner,
            id,
            expected_version,
            _lifecycle.cancel,
            event,
            events=events,
            expected_events=expected_events,
            holder=holder,
            closing=_status_event if status_event else None,
        )

    def update(
        self,
        id: str,
        *,
        event: Mapping[str, Any] | None = None,
        events: Iterable[Mapping[str, Any] | DeltaRun] | None = None,
        expected_version: int | None = None,
        expected_events: int | None = None,
        holder: str | None = None,
        lease: float | datetime.timedelta | None = None,
        owner: str | None = None,
        **changes: Any,
    ) -> ResponseRecord:
        """Change fields of a response.

        The fields that can change: ``status``, ``model``, ``output``, ``instructions``, ``tools``,
        ``metadata``, ``usage``, ``error``, ``incomplete_details`` and ``extra``.
        A ``status`` change follows the lifecycle's transition table (but not ``cancel``'s background rule).
        Once a response is final only its ``metadata`` can change. Every update that changes something adds one
        to ``version``; ``update(id, status=<its current status>)`` alone changes nothing and returns the
        response as it is (same version, no event appended). The keywords are those of :meth:`start`.

        Raises:
            ResponseNotFound: no such response for this owner.
            InvalidTransition: the lifecycle does not allow the change.
            VersionConflict: ``expected_version`` does not match.
            LeaseLost: ``holder`` does not hold the lease.
            SequenceConflict: ``expected_events`` does not match.
            InvalidArgument: an argument is malformed.
            EventLogFull: the events do not fit in the response's event log.
        """
        prepared = _lifecycle.prepare_update(changes)
        return self._change(
            owner,
            id,
            expected_version,
            lambda record, now: _lifecycle.update(record, now, prepared),
            event,
            events=events,
            expected_events=expected_events,
            holder=holder,
            lease=lease,
        )

    # ------------------------------------------------------------------ leases

    def renew(
        self,
        id: str,
        *,
        lease: float | datetime.timedelta,
        holder: str | None = None,
        expected_version: int | None = None,
        owner: str | None = None,
    ) -> ResponseRecord:
        r"""Extend the lease of a queued or in-progress response to ``lease`` seconds from now.

        A lease says that some process is running the response: whoever runs it renews the lease well before it
        runs out (at every batch of events, say), and when it does run out, because that process died or hung,
        :meth:`expire_leases` (any process's) ends the response ``failed``. A renewal is a write: it adds one to
        ``version``. ``holder`` names who holds the lease: given, the response's lease must be held by it, or be
        held by nobody yet (the holder then takes it); left out, the lease keeps its holder.

        Raises:
            ResponseNotFound: no such response for this owner.
            InvalidTransition: the response has finished (a final response holds no lease).
            LeaseLost: the lease is held by another holder.
            VersionConflict: ``expected_version`` does not match.
            InvalidArgument: an argument is malformed.
        """
        record_id = check_id(id)
        seconds = _check_lease(lease, record_id)
        if seconds is None:
            raise InvalidArgument("renew needs a lease of some seconds, not None", id=record_id)
        taker = _check_holder(holder, record_id)

        def take(record: ResponseRecord, now: float) -> ResponseRecord:
            held = record.lease_holder
            if taker is not None and held is not None and held != taker:
                raise LeaseLost(record.id, taker, held, record.status.value)
            return _lifecycle.renew(record, now, seconds, held if taker is None else taker)

        return self._change(owner, record_id, expected_version, take)

    def expire_leases(self, *, limit: int | None = None) -> int:
        """End every queued or in-progress response whose lease has run out; return how many were ended.

        Each ends ``failed`` with a ``server_error`` that says its server stopped, and a ``response.failed`` event
        (the response as it is now stored) closes its log, so whoever follows its stream learns that it ended. A
        response renewed meanwhile is left alone. Any process sharing the store may call this: the server's
        sweeper does it every few seconds; :class:`~responsestore.Sweeper` does it with every sweep.

        Raises:
            InvalidArgument: ``limit`` is not ``None`` or an int >= 1.
        """
        most = check_int(limit, "limit", minimum=1, optional=True)
        now = self._now()
        ended = 0
        for record in self._leased(now, _LEASE_SCAN if most is None else most):
            error = {
                "code": "server_error",
                "message": "The server running this response stopped before it finished (its lease ran out).",
            }
            frozen = check_error(error)

            def end(current: ResponseRecord, now: float, frozen: Any = frozen) -> ResponseRecord:
                if not _lifecycle.lease_expired(current, now):
                    return current
                return _lifecycle.fail(current, now, frozen)

            try:
                try:
                    after = self._change(record.owner, record.id, None, end, closing=_status_event)
                except EventLogFull:  # no room for its last event: it must end all the same
                    after = self._change(record.owner, record.id, None, end)
            except (ResponseNotFound, EventLogClosed):
                continue  # removed or ended meanwhile
            if after is not record and after.is_terminal and after.version > record.version:
                ended += 1
        return ended

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
        # The hot case first, for a backend whose reads take any string (`_reads_any_string`): a first page with
        # arguments checked before, of a stored response. A stored id is a valid one, so only the types are
        # checked here; anything else (a cursor, new or wrong arguments, a missing record) takes the full path
        # below, which checks everything and raises the right error.
        if (
            self._reads_any_string
            and after is None
            and before is None
            and id.__class__ is str
            and (owner is None or owner.__class__ is str)
        ):
            first = known_first_page(limit, order)
            if first is not None:
                found = self._get(owner, id)
                if found is not None:
                    return first_sequence_page(found.input, first)
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

    def find_item(self, item_id: str, *, owner: str | None = None) -> FrozenDict | None:
        """The stored item whose id is ``item_id``: an output or input item of one of the owner's responses.

        What an ``item_reference`` input item (``{"type": "item_reference", "id": ...}``) refers to. When several
        responses hold an item of that id (a client that sends a response's output items back as input, say), the
        newest response's is returned, its output items before its input items. The item is the stored one,
        read-only (:class:`~responsestore.FrozenDict`); ``None`` if no response of this owner holds one: another
        owner's items are never found. No recency.

        It looks through the owner's responses newest first, so an item of a recent response is found at once and
        an id that no response holds costs a look at every one: SQLite and Redis look for the id's JSON text in
        the engine (in one snapshot; Redis one batch of records per call) and parse only the responses holding it,
        the memory backend walks its records in place.

        Raises:
            InvalidArgument: ``item_id`` is not a valid id.
        """
        check_owner(owner)
        check_id(item_id, "item_id")
        # Every item is stored with its id, and ids need no escaping in JSON: a record holding the item holds this.
        text = f'"id":"{item_id}"'
        record = self._find_newest(owner, text, lambda record: _item_in(record, item_id) is not None)
        return None if record is None else _item_in(record, item_id)

    # ------------------------------------------------------------------ events, waiting and streaming

    def append_event(self, id: str, event: Mapping[str, Any], *, owner: str | None = None) -> int:
        """Append a stream event to the log of the queued or in-progress response ``id``; return its number.

        The store keeps a frozen copy with ``sequence_number`` set (consecutive from 0 per response); an event
        that carries a ``sequence_number`` must carry exactly the next one. Wakes every waiter of ``id``. To log
        many events, :meth:`append_events` writes them in one step.

        Raises:
            ResponseNotFound: no such response for this owner.
            EventLogClosed: the response has finished.
            EventLogFull: the log would exceed ``max_events`` or ``max_event_bytes``.
            InvalidArgument: the event is not a JSON object, or carries the wrong sequence number.
            StoreFull: the event takes the store past ``max_bytes`` and nothing can be evicted.
        """
        record_id = check_id(id)
        prepared = prepared_one(*prepare_event(event, record_id))
        return self._append_prepared(owner, record_id, prepared, None, None, None)

    def append_events(
        self,
        id: str,
        events: Iterable[Mapping[str, Any] | DeltaRun],
        *,
        expected_events: int | None = None,
        holder: str | None = None,
        lease: float | datetime.timedelta | None = None,
        owner: str | None = None,
    ) -> int:
        r"""Append a batch of events to the log of the queued or in-progress response ``id`` in one atomic write.

        ``events`` holds JSON objects and :class:`~responsestore.DeltaRun`\ s (a run of delta events kept
        compactly); they are numbered consecutively, as if appended one by one, and every waiter of ``id`` is woken
        once. Returns the number of the first event (the number the log held before). ``expected_events``,
        ``holder`` and ``lease`` are as for :meth:`start`; a renewal (``lease``) adds one to ``version``, a plain
        append does not.

        Raises:
            ResponseNotFound: no such response for this owner.
            EventLogClosed: the response has finished.
            EventLogFull: the batch would take the log past ``max_events`` or ``max_event_bytes``; nothing is
                appended.
            SequenceConflict: ``expected_events`` does not match.
            LeaseLost: ``holder`` does not hold the lease.
            InvalidArgument: an event is malformed, or carries another sequence number than its own.
            StoreFull: the events take the store past ``max_bytes`` and nothing can be evicted.
        """
        record_id = check_id(id)
        prepared = prepare_events(events, record_id)
        return self._append_prepared(owner, record_id, prepared, expected_events, holder, lease)

    def _append_prepared(  # noqa: PLR0917 - private, two call sites
        self, owner: object, id: str, prepared: Prepared, expected: object, holder: object, lease: object
    ) -> int:
        checked_owner = check_owner(owner)
        expected_count = check_int(expected, "expected_events", minimum=0, optional=True, id=id)
        lease_holder = _check_holder(holder, id)
        lease_seconds = _check_lease(lease, id)
        for _ in range(MAX_ATTEMPTS):
            stored = self._read(checked_owner, id)
            if stored is None:
                raise ResponseNotFound(id)
            record = stored.record
            if lease_holder is not None and record.lease_holder != lease_holder:
                raise LeaseLost(id, lease_holder, record.lease_holder, record.status.value)
            log: LogWrite | None = None
            if prepared.total:
                self._check_events(stored, prepared, expected_count)
                encoded = _events.encode_batch(prepared, stored.events)
                log = LogWrite(
                    encoded.text,
                    stored.events,
                    prepared.total,
                    stored.event_bytes + prepared.size,
                    encoded.stored,
                    replace=False,
                )
            else:  # nothing to append: the same checks, and at most a renewal
                if record.is_terminal:
                    raise EventLogClosed(record.id, record.status.value)
                if expected_count is not None and expected_count != stored.events:
                    raise SequenceConflict(id, expected_count, stored.events)
                if lease_seconds is None:
                    return stored.events
            if lease_seconds is None:
                assert log is not None  # noqa: S101 - an empty batch without a renewal returned above
                written = self._append(stored, log)
            else:
                now = self._now()
                new = replace_fields(record, version=record.version + 1, lease_expires_at=now + lease_seconds)
                written = self._swap(stored, new, stored.size, log)
            if written:
                self._notify(checked_owner, id)
                return stored.events
        raise self._too_busy(id)

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
        """Response ``id`` and its events above ``starting_after``, read together in one atomic step.

        What a server resuming a stream needs: if the record has finished, the events are the whole rest of
        its log. The events are read-only values, rebuilt exactly as they were appended (see the event logs of
        the streaming docs). Not a use of the record (no recency).

        Raises:
            ResponseNotFound: no such response for this owner.
            InvalidArgument: ``starting_after`` is not ``None`` or an int >= 0.
            StorageError: the stored log cannot be read back (a damaged store).
        """
        check_owner(owner)
        check_id(id)
        after = check_starting_after(starting_after)
        found = self._events(owner, id, after)
        if found is None:
            raise ResponseNotFound(id)
        stored, chunks = found
        if not chunks:
            return stored.record, ()
        try:
            return stored.record, _events.read_events(chunks, stored.record, after)
        except _events.DamagedLog as exc:
            raise StorageError(f"the event log of {id!r} in {self!r} is damaged: {exc}"[:500], id=id) from None

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


_NEWEST_PAGE = PageQuery.check(MAX_LIMIT, None, None, "desc")


def _item_in(record: ResponseRecord, item_id: str) -> FrozenDict | None:
    """``record``'s output or input item whose id is ``item_id`` (output first), or ``None``."""
    for items in (record.output, record.input):
        for item in items:
            if item.get("id") == item_id:
                return item
    return None


def _item_id(item: Mapping[str, Any]) -> str:
    item_id: str = item["id"]
    return item_id


#: Leases :meth:`BaseStore.expire_leases` ends in one call when no limit is given.
_LEASE_SCAN = 10_000

#: What ``_log_write`` returns when the log changed since the record was read: decide again.
_STALE = LogWrite("", -1, 0, 0, 0, replace=False)


def _check_lease(value: object, id: str | None) -> float | None:
    """Seconds of a lease: a positive number or ``timedelta``, or ``None`` for none.

    Raises:
        InvalidArgument: anything else.
    """
    if value is None:
        return None
    try:
        return check_ttl(value, "lease")
    except InvalidArgument as problem:
        raise InvalidArgument(str(problem), id=id) from None


def _check_holder(value: object, id: str | None) -> str | None:
    """A lease holder: ``None`` or a non-empty string of at most 256 characters.

    Raises:
        InvalidArgument: anything else.
    """
    if value is None:
        return None
    holder = check_text(value, "holder", id=id)
    if len(holder) > 256:
        raise InvalidArgument(f"holder must be at most 256 characters, not {len(holder)}", id=id)
    return holder


def _prepare_write_events(event: object, events: object, id: str) -> Prepared:
    """The events a write carries: ``event`` (one) or ``events`` (a batch), checked and frozen.

    Raises:
        InvalidArgument: both are given, or an event is malformed.
    """
    if event is not None and events is not None:
        raise InvalidArgument("pass event or events, not both", id=id)
    if event is not None:
        return prepared_one(*prepare_event(event, id))
    if events is not None:
        return prepare_events(events, id)
    return NO_EVENTS


def _join(first: Prepared, second: Prepared) -> Prepared:
    """Two batches as one (the second's carried numbers shifted by the first's length)."""
    carried = first.carried + tuple((position + first.total, number) for position, number in second.carried)
    return Prepared(first.items + second.items, first.total + second.total, first.size + second.size, carried)


def _status_event(record: ResponseRecord, wire: Mapping[str, Any]) -> Prepared:
    """The ``response.<status>`` event announcing ``record``'s status, carrying ``wire``, its JSON as stored.

    None for ``cancelled``: the Responses API streams no event for it (the stream just ends).
    """
    if record.status is ResponseStatus.CANCELLED:
        return NO_EVENTS
    return prepare_events([_wire.lifecycle_event(record.status.value, wire)], record.id)
