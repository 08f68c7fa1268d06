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
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

from . import _lifecycle
from ._ids import check_id, new_response_id
from ._items import normalize_input, normalize_items
from ._json import thaw
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
)
from ._retention import DEFAULT_MAX_RECORDS, DEFAULT_TTL, SWEEP_BATCH, USE_STORE_TTL, Retention, StoreStats
from .errors import ChainError, InvalidArgument, ResponseExists, ResponseNotFound, StoreFull

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
    def _evict_one(self) -> ResponseRecord | None:
        """Remove the least recently used finished record and return it, or ``None`` if there is none.

        Inside ``_writing``; expired records have been swept.
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
    def _count(self) -> int:
        """How many visible (stored, not expired) records the store holds, across all owners."""

    @abc.abstractmethod
    def _check(self) -> None:
        """Assert every internal invariant (for tests; call it while no other thread uses the store)."""

    def _now(self) -> float:
        now = self._clock()
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
                if self._count() >= max_records and not self._has_finished():
                    raise StoreFull(record_id, max_records)
            record = ResponseRecord(
                id=record_id,
                created_at=now,
                model=model,
                status=initial,
                previous_response_id=previous_response_id,
                background=background,
                owner=owner,
                **fields,
            )
            if ancestors:
                self._refresh(reversed(ancestors), now)
            if max_records is not None:
                while self._count() >= max_records and self._evict_one() is not None:
                    pass
            self._insert(record, record_ttl)
        return record

    def _has_finished(self) -> bool:
        by_status = self._stats().by_status
        return any(by_status[status.value] for status in ResponseStatus if status.is_terminal)

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
        return record

    # ------------------------------------------------------------------ the lifecycle

    def _change(
        self,
        owner: object,
        id: object,
        expected_version: object,
        apply: Callable[[ResponseRecord, float], ResponseRecord],
    ) -> ResponseRecord:
        checked_owner = check_owner(owner)
        record_id = check_id(id)
        expected = _lifecycle.check_expected_version(expected_version)
        with self._writing():
            self._sweep(SWEEP_BATCH)
            record = self._fetch(checked_owner, record_id)
            if record is None:
                raise ResponseNotFound(record_id)
            _lifecycle.check_version(record, expected)
            new = apply(record, self._now())
            if new is not record:
                self._replace(record, new)
        return new

    def start(self, id: str, *, expected_version: int | None = None, owner: str | None = None) -> ResponseRecord:
        """Move a ``queued`` response to ``in_progress``.

        Raises:
            ResponseNotFound, InvalidTransition, VersionConflict, InvalidArgument.
        """
        return self._change(owner, id, expected_version, _lifecycle.start)

    def complete(
        self,
        id: str,
        output: Iterable[Mapping[str, Any]] = (),
        *,
        usage: Mapping[str, Any] | None = None,
        expected_version: int | None = None,
        owner: str | None = None,
    ) -> ResponseRecord:
        """Finish a response successfully with its ``output`` items and token ``usage``.

        Sets ``completed_at`` to the store's clock.

        Raises:
            ResponseNotFound, InvalidTransition (already final), VersionConflict, InvalidArgument.
        """
        items = normalize_items(output, "output")
        frozen_usage = check_usage(usage)
        return self._change(
            owner,
            id,
            expected_version,
            lambda record, now: _lifecycle.complete(record, now, items, frozen_usage),
        )

    def fail(
        self,
        id: str,
        error: Mapping[str, Any] | str,
        *,
        expected_version: int | None = None,
        owner: str | None = None,
    ) -> ResponseRecord:
        """Finish a response as ``failed`` with ``error`` (``{"code", "message"}``, or a message string).

        Raises:
            ResponseNotFound, InvalidTransition (already final), VersionConflict, InvalidArgument.
        """
        frozen_error = check_error(error)
        if frozen_error is None:
            raise InvalidArgument("fail needs an error, not None", id=id if isinstance(id, str) else None)
        return self._change(owner, id, expected_version, lambda record, now: _lifecycle.fail(record, now, frozen_error))

    def mark_incomplete(
        self,
        id: str,
        reason: str,
        *,
        output: Iterable[Mapping[str, Any]] = (),
        usage: Mapping[str, Any] | None = None,
        expected_version: int | None = None,
        owner: str | None = None,
    ) -> ResponseRecord:
        """Finish a response as ``incomplete`` for ``reason`` (e.g. ``"max_output_tokens"``).

        Any partial ``output`` and ``usage`` are kept.

        Raises:
            ResponseNotFound, InvalidTransition (already final), VersionConflict, InvalidArgument.
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
        )

    def cancel(self, id: str, *, expected_version: int | None = None, owner: str | None = None) -> ResponseRecord:
        """Cancel a background response (OpenAI's rules).

        Only a ``background`` response can be cancelled. Cancelling an already cancelled response returns it
        unchanged; cancelling one in another final status raises :class:`InvalidTransition`.

        Raises:
            ResponseNotFound, InvalidTransition, VersionConflict, InvalidArgument.
        """
        return self._change(owner, id, expected_version, _lifecycle.cancel)

    def update(
        self,
        id: str,
        *,
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
            ResponseNotFound, InvalidTransition, VersionConflict, InvalidArgument.
        """
        prepared = _lifecycle.prepare_update(changes)
        return self._change(owner, id, expected_version, lambda record, now: _lifecycle.update(record, now, prepared))

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

    def _walk_chain(self, owner: str | None, record: ResponseRecord) -> tuple[builtins.list[ResponseRecord], ChainError | None]:
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


def _record_id(record: ResponseRecord) -> str:
    return record.id


def _item_id(item: Mapping[str, Any]) -> str:
    item_id: str = item["id"]
    return item_id
