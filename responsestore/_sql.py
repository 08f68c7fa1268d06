"""What the SQL backends (:mod:`responsestore._sqlite`, :mod:`responsestore._postgres`) share.

The JSON text they store (a record's, a conversation's, an item's), the errors that steer a write, the counters a
write reads first, the per-thread connection state, the record cache, the parsing of their URLs' query values,
the assertion their ``_check`` makes, and :class:`SQLStore`, the methods of the two stores that do not depend on
the dialect.
"""

from __future__ import annotations

import abc
import json
import math
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from . import _events
from ._contract import BaseStore
from ._conversations import ConversationState, ConversationWrite, Positioned
from ._json import FrozenDict, to_json_text
from ._owners import encodable
from ._paging import Page, PageQuery, paginate_records
from ._records import ResponseRecord, ResponseStatus
from ._retention import StoreStats
from .errors import InvalidArgument, StorageError, StoreFull

__all__ = [
    "ACTIVE_SUM",
    "CACHE_BYTES",
    "CACHE_RECORDS",
    "CHECK_CONVERSATIONS",
    "CHECK_COUNTERS",
    "EVICT_BATCH",
    "FINISHED_SUM",
    "SCAN_BATCH",
    "STATUS_COLUMNS",
    "STATUS_LIST",
    "Abort",
    "Damaged",
    "RecordCache",
    "SQLStore",
    "State",
    "ThreadState",
    "conversation_values",
    "counted",
    "forks",
    "invariant",
    "item_rows",
    "json_text",
    "load",
    "moved",
    "record_text",
    "refuse_twice_given",
    "swap_values",
    "url_integer",
    "url_seconds",
]


class _Connection(Protocol):
    def close(self) -> None: ...


_C = TypeVar("_C", bound=_Connection)  # a connection
_T = TypeVar("_T")

#: The counter column of each status, in the counters row (the order of its ``n_...`` columns).
STATUS_COLUMNS = {status: f"n_{status.value}" for status in ResponseStatus}
STATUS_LIST = ", ".join(STATUS_COLUMNS.values())
ACTIVE_SUM = " + ".join(column for status, column in STATUS_COLUMNS.items() if not status.is_terminal)
FINISHED_SUM = " + ".join(column for status, column in STATUS_COLUMNS.items() if status.is_terminal)
SCAN_BATCH = 64
EVICT_BATCH = 8


def counted(row: str, sign: str, cast: str = "") -> str:
    """The ``counters`` assignments that add (``sign`` ``+``) or take away (``-``) the record ``row`` (NEW/OLD).

    ``cast`` turns a boolean into 0 or 1 (``::int`` in PostgreSQL; SQLite's booleans are integers).
    """
    size = f"{row}.size + {row}.log_bytes"
    parts = [
        f"bytes = bytes {sign} ({size})",
        f"active_bytes = active_bytes {sign} (1 - {row}.terminal{cast}) * ({size})",
    ]
    parts += [
        f"{column} = {column} {sign} ({row}.status = '{status.value}'){cast}"
        for status, column in STATUS_COLUMNS.items()
    ]
    return ", ".join(parts)


def moved(cast: str = "") -> str:
    """The ``counters`` assignments of a row that changed from OLD to NEW (its status, size or log).

    ``cast``: as for :func:`counted`.
    """
    new, old = "NEW.size + NEW.log_bytes", "OLD.size + OLD.log_bytes"
    parts = [
        f"bytes = bytes + ({new}) - ({old})",
        f"active_bytes = active_bytes + (1 - NEW.terminal{cast}) * ({new}) - (1 - OLD.terminal{cast}) * ({old})",
    ]
    parts += [
        f"{column} = {column} + (NEW.status = '{status.value}'){cast} - (OLD.status = '{status.value}'){cast}"
        for status, column in STATUS_COLUMNS.items()
    ]
    return ", ".join(parts)


#: What ``_check`` reads of the counters row, and of every conversation.
CHECK_COUNTERS = (
    "SELECT last_seq, created, deleted, evicted, expired, bytes, active_bytes, conversations, "  # noqa: S608
    f"{STATUS_LIST} FROM counters"
)
CHECK_CONVERSATIONS = "SELECT seq, owner, id, version, items, next_position, expires_at, record FROM conversations"

#: Parsed records kept per store, one per row (the newest version seen; a record's JSON never changes without its
#: version): at most this many, and about this many bytes of JSON.
CACHE_RECORDS = 4096
CACHE_BYTES = 32 * 1024 * 1024


class State(NamedTuple):
    """What a write reads of the counters row first (and when the next record expires)."""

    last_seq: int
    active: int
    finished: int
    bytes: int
    active_bytes: int
    due: float | None  # the soonest expiry of a record (None: none expires)

    @property
    def records(self) -> int:
        return self.active + self.finished


class Damaged(Exception):
    """A stored value no valid store holds (turned into a :class:`StorageError` naming the store)."""

    def __init__(self, what: str, cause: BaseException) -> None:
        super().__init__(f"{what} cannot be read ({type(cause).__name__}: {cause})")


class Abort(Exception):
    """Raised inside a write to roll the whole transaction back and return ``result`` from ``_write``."""

    def __init__(self, result: Any) -> None:
        super().__init__(result)
        self.result = result


class RecordCache:
    """The records a store parsed, by row (``seq``): at most one per row, the newest version seen; the oldest go first.

    Shared by a store's threads (a mutex guards the changes). A write queues what it changed (``(seq, version,
    record or None: gone, bytes of its JSON)``) and hands it to :meth:`commit` once it commits.
    """

    __slots__ = ("_bytes", "_entries", "_mutex")

    def __init__(self) -> None:
        self._entries: dict[int, tuple[int, ResponseRecord, int]] = {}  # seq -> (version, record, size)
        self._bytes = 0
        self._mutex = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, seq: int) -> tuple[int, ResponseRecord, int] | None:
        """``(version, record, size)`` of row ``seq``, or ``None``."""
        return self._entries.get(seq)

    def remember(self, seq: int, version: int, record: ResponseRecord, size: int) -> None:
        """Keep ``record`` (``size`` bytes of JSON) as row ``seq`` at ``version``, unless a newer one is kept."""
        if size > CACHE_BYTES // 64:
            return
        with self._mutex:
            cache = self._entries
            old = cache.pop(seq, None)
            if old is not None:
                if old[0] > version:  # another thread cached a newer version meanwhile
                    cache[seq] = old
                    return
                self._bytes -= old[2]
            cache[seq] = (version, record, size)
            self._bytes += size
            while len(cache) > CACHE_RECORDS or self._bytes > CACHE_BYTES:
                self._bytes -= cache.pop(next(iter(cache)))[2]

    def commit(self, cached: list[tuple[int, int, ResponseRecord | None, int]]) -> None:
        """After a commit: keep the records it wrote, forget the rows it removed."""
        for seq, version, record, size in cached:
            if record is None:
                with self._mutex:
                    old = self._entries.pop(seq, None)
                    if old is not None:
                        self._bytes -= old[2]
            else:
                self.remember(seq, version, record, size)


#: How many forks led to this process (a child counts one more than its parent): a store notices it was forked
#: into a new process when this differs from the count it was set up with, without asking the kernel its pid.
_forks = 0


def forks() -> int:
    """How many forks led to this process."""
    return _forks


def _count_fork() -> None:
    global _forks  # noqa: PLW0603 - one process-wide count, changed only in a freshly forked child
    _forks += 1


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_count_fork)


class ThreadState(Generic[_C]):
    """One thread's connection, the mutex that guards its use, and what its current write leaves to do."""

    __slots__ = ("__weakref__", "cached", "conn", "dead", "mutex", "wakes")

    def __init__(self, conn: _C) -> None:
        self.conn = conn
        self.mutex = threading.Lock()  # held while the connection is in use; close() takes it to close it
        self.dead = False  # closed by close()
        self.wakes: list[tuple[str | None, str]] = []  # removed records' waiters, woken after the commit
        # (seq, version, record or None: gone, bytes of its JSON): cached once the write commits
        self.cached: list[tuple[int, int, ResponseRecord | None, int]] = []


class SQLStore(BaseStore, Generic[_C]):
    """The methods the SQL stores share: they reach the database only through the hooks declared here."""

    _closed: bool
    _generation: int  # forks() when the store was set up in this process
    _local: threading.local  # .state: the calling thread's ThreadState
    _touches: deque[tuple[str, str]]  # (owner key, id) of the finished records read since the last write
    _cache: RecordCache

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    @staticmethod
    @abc.abstractmethod
    def _owner_key(owner: str | None) -> str:
        """The stored form of an owner (the ``owner`` column)."""

    @abc.abstractmethod
    def _closed_error(self) -> StorageError:
        """The error a closed store raises."""

    @abc.abstractmethod
    def _after_fork(self) -> None:
        """In a forked child: leave the parent's connections alone and open new ones from now on."""

    def _thread_state(self) -> Any:
        """The calling thread's state, or ``None`` before its first call (after a fork: the child's own)."""
        if self._closed:
            raise self._closed_error()
        if self._generation != _forks:
            self._after_fork()
        return getattr(self._local, "state", None)

    @abc.abstractmethod
    def _setup_process(self) -> None:
        """Set up what belongs to this process (again in a forked child): thread states, the recency log."""

    @abc.abstractmethod
    def _connect(self) -> _C:
        """A new connection (not yet set up for a thread)."""

    @abc.abstractmethod
    def _prepare(self, conn: _C) -> None:
        """Check the database the store opens, creating or migrating its tables when needed."""

    @abc.abstractmethod
    def _adopt(self, conn: _C) -> ThreadState[_C]:
        """Make ``conn`` the calling thread's connection."""

    def _open(self) -> None:
        """Open the store (the end of ``__init__``): its first connection, with the database checked."""
        self._closed = False
        self._cache = RecordCache()
        self._setup_process()
        conn = self._connect()
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        self._adopt(conn)

    @abc.abstractmethod
    def _snapshot_read(self, action: Callable[[_C], _T]) -> _T:
        """Run ``action`` in one read transaction (one snapshot)."""

    @abc.abstractmethod
    def _scan(self, conn: _C, key: str, cursor: str | None, descending: bool, now: float) -> Iterator[ResponseRecord]:
        """The visible records of the owner ``key`` after (or before) ``cursor``, newest first if ``descending``."""

    @abc.abstractmethod
    def _stats_rows(self, conn: _C, now: float) -> tuple[Sequence[Any], list[Any]]:
        """The counters row, and ``(status, count, bytes)`` of the records expired at ``now`` but not yet swept.

        The row: ``created, deleted, evicted, expired, bytes`` and the count of each status (:data:`STATUS_COLUMNS`).
        """

    @abc.abstractmethod
    def _bad_status(self, status: object) -> Exception:
        """The error of a stored status no record has."""

    @abc.abstractmethod
    def _read_state(self, conn: _C) -> State:
        """The counters a write reads first."""

    @abc.abstractmethod
    def _sweep_rows(self, conn: _C, now: float, limit: int | None) -> int:
        """Delete up to ``limit`` (``None``: every) record expired at ``now``; how many."""

    @abc.abstractmethod
    def _clear_id(self, conn: _C, key: str, id: str, now: float) -> None:
        """Make way for a new record ``(key, id)``: remove an expired one, refuse a visible one (ResponseExists)."""

    @abc.abstractmethod
    def _byte_counters(self, conn: _C) -> tuple[int, int]:
        """``bytes`` and ``active_bytes`` of the counters row."""

    @abc.abstractmethod
    def _lru(self, conn: _C, limit: int) -> list[Any]:
        """Up to ``limit`` rows ``(seq, owner key, id, bytes)`` of finished records, least recently used first."""

    @abc.abstractmethod
    def _delete_row(self, conn: _C, seq: int) -> None:
        """Delete the record of row ``seq`` (the triggers do the rest)."""

    @abc.abstractmethod
    def _unlinked(self, conn: _C, rows: list[tuple[int, str, str]], why: str) -> None:
        """Bookkeeping after deleting ``rows`` ``(seq, owner key, id)``: counts, tombstones, wake-ups, the cache."""

    @abc.abstractmethod
    def _positioned(self, id: str, row: Sequence[Any]) -> Positioned:
        """The item of conversation ``id`` from its row ``(position, item id, item)``."""

    def _stats_of(self, conn: _C, now: float) -> StoreStats:
        row, pending = self._stats_rows(conn, now)
        created, deleted, evicted, expired, total = row[:5]
        by_status = {status.value: count for status, count in zip(STATUS_COLUMNS, row[5:], strict=True)}
        for status, count, size in pending:
            if status not in by_status:
                raise self._bad_status(status)
            by_status[status] -= count
            expired += count
            total -= int(size)
        return StoreStats(
            records=sum(by_status.values()),
            by_status=FrozenDict(by_status),
            created=created,
            deleted=deleted,
            evicted=evicted,
            expired=expired,
            bytes=total,
        )

    def _finish_write(self, state: ThreadState[_C]) -> None:
        """After a write committed on ``state``'s connection: update the cache, wake the removed records' waiters."""
        if state.cached:
            cached, state.cached = state.cached, []
            self._cache.commit(cached)
        wakes = state.wakes
        if wakes:
            state.wakes = []
            for owner, id in wakes:
                self._notify(owner, id)

    def _touch(self, records: Sequence[ResponseRecord]) -> None:
        for record in records:
            if record.is_terminal:
                self._touches.append((self._owner_key(record.owner), record.id))

    def _page(
        self, owner: str | None, query: PageQuery, matches: Callable[[ResponseRecord], bool] | None
    ) -> Page[ResponseRecord]:
        key = self._owner_key(owner)
        now = self._now()
        return self._snapshot_read(
            lambda conn: paginate_records(
                lambda cursor, descending: self._scan(conn, key, cursor, descending, now), query, matches
            )
        )

    def _room_for_new(
        self,
        conn: _C,
        record: ResponseRecord,
        *,
        state: State,
        key: str,
        size: int,
        spared: list[tuple[int, Any, int]],
        now: float,
    ) -> None:
        """Evict least recently used finished records (not ``spared``) until ``record`` fits.

        ``spared``: ``(seq, terminal, bytes)`` of the records the write keeps alive.

        Raises:
            ResponseExists: a visible record already has the id (checked first, as the contract orders).
            StoreFull: evicting every finished record not spared would not make room.
        """
        retention = self.retention
        if self._sweep_rows(conn, now, None):
            state = self._read_state(conn)
        kept = [bytes_ for _, terminal, bytes_ in spared if terminal]
        evictable = state.finished - len(kept)
        evictable_bytes = state.bytes - state.active_bytes - sum(kept)
        bound = retention.over(state.records + 1 - evictable, state.bytes - evictable_bytes + size)
        if bound is not None:
            self._clear_id(conn, key, record.id, now)
            raise StoreFull(record.id, retention.max_records, max_bytes=retention.max_bytes, bound=bound)
        self._evict(
            conn,
            records=state.records,
            total=state.bytes,
            over=lambda records, total: retention.over(records + 1, total + size) is not None,
            protected={seq for seq, _, _ in spared},
            id=record.id,
        )

    def _room_for_growth(self, conn: _C, seq: int, *, grows: int, entry: int, finished: bool, id: str) -> None:
        """After row ``seq`` grew by ``grows`` bytes (to ``entry``): evict finished others to get within max_bytes.

        Raises:
            StoreFull: evicting every other finished record would not make room, and the record is not finished
                (a finished one stays, over the bound: a response must always be able to end).
        """
        max_bytes = self.retention.max_bytes
        if max_bytes is None or grows <= 0:
            return
        total, active = self._byte_counters(conn)
        if total <= max_bytes:
            return
        others = total - active - (entry if finished else 0)
        if total - others > max_bytes:
            if finished:
                return
            raise StoreFull(id, self.retention.max_records, max_bytes=max_bytes, bound="max_bytes")
        self._evict(
            conn, records=0, total=total, over=lambda _, now_total: now_total > max_bytes, protected={seq}, id=id
        )

    def _evict(
        self,
        conn: _C,
        *,
        records: int,
        total: int,
        over: Callable[[int, int], bool],
        protected: set[int],
        id: str,
    ) -> None:
        """Evict least recently used finished records not in ``protected`` (seqs) while ``over(records, bytes)``.

        Raises:
            StoreFull: there is nothing left to evict (the callers check first that evicting makes room).
        """
        evicted: list[tuple[int, str, str]] = []
        while over(records, total):
            victims = [row for row in self._lru(conn, len(protected) + EVICT_BATCH) if row[0] not in protected]
            if not victims:
                limits = self.retention
                bound = "max_bytes" if limits.max_bytes is not None and total > limits.max_bytes else "max_records"
                raise StoreFull(id, limits.max_records, max_bytes=limits.max_bytes, bound=bound)
            for seq, key, victim, bytes_ in victims:
                if not over(records, total):
                    break
                self._delete_row(conn, seq)
                evicted.append((seq, key, victim))
                records -= 1
                total -= int(bytes_)
        if evicted:
            self._unlinked(conn, evicted, "evicted")

    def _count(self) -> int:
        return self._stats().records

    def _stats(self) -> StoreStats:
        now = self._now()
        return self._snapshot_read(lambda conn: self._stats_of(conn, now))

    # ------------------------------------------------------------------ _check's parts

    def _check_loaded(self, seq: int, key: str, id: str, version: int, text: str) -> ResponseRecord:
        """The record of row ``seq``, checked against the cache and its ``owner``/``id`` columns."""
        record = load(text)
        cached = self._cache.get(seq)
        invariant(cached is None or cached[0] != version or cached[1] == record, f"the cache's copy of {id!r}")
        invariant(cached is None or cached[0] <= version, f"the cache holds a future version of {id!r}")
        invariant((self._owner_key(record.owner), record.id) == (key, id), f"row {seq} holds another record")
        return record

    @staticmethod
    def _check_lease_columns(
        record: ResponseRecord, lease: float | None, used: object, ttl: float | None, expires_at: float | None
    ) -> None:
        """The lease, recency and expiry columns of ``record`` agree with it."""
        id = record.id
        if record.is_terminal:
            invariant(record.lease_holder is None and record.lease_expires_at is None, f"{id!r} holds a lease")
            invariant(lease is None, f"the finished {id!r} is in the lease index")
            invariant(used is not None, f"the finished {id!r} has no recency")
        else:
            invariant(lease == record.lease_expires_at, f"the lease column of {id!r} disagrees with its JSON")
            invariant(used is None, f"the active {id!r} has a recency")
        invariant((ttl is None) == (expires_at is None), f"{id!r} has a ttl without an expiry or the reverse")

    def _check_log(
        self, record: ResponseRecord, chunks: list[Any], count: int, event_bytes: int, log_bytes: int
    ) -> None:
        """The chunks ``(first, count, text)`` of ``record``'s log follow each other and add up to its columns."""
        id = record.id
        starts = [first for first, _, _ in chunks]
        ends = [first + n for first, n, _ in chunks]
        invariant(starts == [0, *ends[:-1]] if chunks else count == 0, f"the chunks of {id!r} do not follow each other")
        invariant((ends[-1] if chunks else 0) == count, f"the chunks of {id!r} do not add up to its event count")
        invariant(sum(len(text.encode()) for _, _, text in chunks) == log_bytes, f"the log bytes of {id!r}")
        invariant(0 <= event_bytes <= self.event_limits.max_bytes, f"event log of {id!r} over max_event_bytes")
        invariant(count <= self.event_limits.max_events, f"event log of {id!r} over max_events")
        if chunks:
            try:
                events = _events.read_events([tuple(chunk) for chunk in chunks], record, -1)
            except _events.DamagedLog as exc:
                raise AssertionError(f"the event log of {id!r} cannot be read: {exc}") from None
            invariant(len(events) == count, f"the chunks of {id!r} hold {len(events)} events, not {count}")

    def _check_items(self, id: str, held: list[Any]) -> None:
        """Each stored item ``(position, item id, item)`` of conversation ``id`` reads back as the text it was."""
        for row in held:
            try:
                _, _, item = self._positioned(id, row)
            except StorageError as exc:
                raise AssertionError(str(exc)) from None
            invariant(json_text(item) == row[2], f"the JSON of item {row[1]!r} of {id!r}")


def conversation_values(state: ConversationState) -> tuple[Any, ...]:
    """A new conversation's row but its owner key: ``(id, version, items, next_position, expires_at, record)``."""
    record = state.record
    return (record.id, record.version, state.items, state.next_position, state.expires_at, json_text(record.to_dict()))


def item_rows(items: Sequence[Positioned]) -> list[tuple[int, str, str]]:
    """The rows ``(position, item id, item JSON)`` of ``items``."""
    return [(position, item_id, json_text(item)) for position, item_id, item in items]


def swap_values(write: ConversationWrite) -> tuple[Any, ...]:
    """What a conversation's row is set to by ``write``: ``(version, items, next_position, expires_at, record)``."""
    new = write.new
    return (new.record.version, new.items, new.next_position, new.expires_at, json_text(new.record.to_dict()))


def json_text(value: Any) -> str:
    """Compact JSON text a database can store (strings with lone surrogates fall back to ASCII escapes)."""
    text = to_json_text(value)
    if text.isascii() or encodable(text):
        return text
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def record_text(record: ResponseRecord) -> str:
    """The JSON text of :meth:`ResponseRecord.to_dict`, serialized from the frozen fields without copying them.

    The same keys in the same order with the same values as ``to_dict()`` (a test holds the two together).
    """
    data: dict[str, Any] = {
        **record.extra,
        "id": record.id,
        "object": "response",
        "created_at": record.created_at,
        "model": record.model,
        "status": record.status._value_,
        "output": record.output,
        "previous_response_id": record.previous_response_id,
        "instructions": record.instructions,
        "tools": record.tools,
        "metadata": record.metadata,
        "usage": record.usage,
        "error": record.error,
        "incomplete_details": record.incomplete_details,
        "background": record.background,
        "completed_at": record.completed_at,
        "input": record.input,
        "owner": record.owner,
        "version": record.version,
    }
    if record.lease_expires_at is not None or record.lease_holder is not None:
        data["lease_holder"] = record.lease_holder
        data["lease_expires_at"] = record.lease_expires_at
    return json_text(data)


def load(text: str) -> ResponseRecord:
    """The record a stored JSON text holds (raising what ``json.loads``/``from_dict`` raise on damage)."""
    return ResponseRecord.from_dict(json.loads(text))


def url_integer(database: str, name: str, text: str) -> int | None:
    """The whole number (or ``none``) a URL's query parameter ``name`` of a ``database`` URL gives."""
    if text.lower() == "none":
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 20:
        raise InvalidArgument(
            f"the {database} URL parameter {name} must be a whole number or 'none', not {text[:40]!r}"
        )
    return int(text)


def url_seconds(database: str, name: str, text: str, *, none: bool, said: str) -> float | None:
    """The seconds (or, where ``none``, ``none``) a query parameter gives; ``said`` ends the refusal's "must be"."""
    if none and text.lower() == "none":
        return None
    try:
        seconds = float(text) if text.isascii() and len(text) <= 40 else math.nan
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):
        raise InvalidArgument(f"the {database} URL parameter {name} must be {said}, not {text[:40]!r}")
    return seconds


def refuse_twice_given(options: Mapping[str, Any], kwargs: Mapping[str, Any]) -> None:
    """Refuse a setting that a URL and the keyword arguments of ``from_url`` both give."""
    both = sorted(options.keys() & kwargs.keys())
    if both:
        raise InvalidArgument(f"{', '.join(both)} given both in the URL and as a keyword argument: give it once")


def invariant(condition: bool, message: str) -> None:
    """Fail ``_check`` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise AssertionError(message)
