"""What the SQL backends (:mod:`responsestore._sqlite`, :mod:`responsestore._postgres`) share.

The JSON text they store (a record's, a conversation's, an item's), the errors that steer a write, the counters a
write reads first, the per-thread connection state, the record cache, the parsing of their URLs' query values,
the assertion their ``_check`` makes, the statements both run (:class:`Statements`, built in each one's dialect),
and :class:`SQLStore`: every operation whose logic is the same in both, reaching the engine through a few hooks
(its write transaction, its errors, what text it can hold). Each backend keeps what is its engine's own: its
schema, connections, transactions, the statements only it runs (inserts, swaps, sweeps, chains, text searches)
and its part of ``_check``.
"""

from __future__ import annotations

import abc
import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, Generic, NamedTuple, Protocol, TypeVar

from . import _events
from ._contract import CURSOR_MEMORY, BaseStore, LogWrite, Stored, cursor_memory
from ._conversations import ConversationRecord, ConversationState, ConversationWrite, Positioned
from ._events import Chunk
from ._json import FrozenDict, freeze_object, to_json_text
from ._owners import encodable, owner_of
from ._paging import Page, PageQuery, paginate_records, unknown_cursor
from ._recency import TouchLog
from ._records import ResponseRecord, ResponseStatus
from ._retention import SWEEP_BATCH, StoreStats, record_size
from ._room import Usage, fits_growth, fits_new, room_for_new, room_to_grow
from .errors import (
    ConversationFull,
    ResponseExists,
    ResponseStoreError,
    StorageError,
    StoreFull,
)

__all__ = [
    "ACTIVE_SUM",
    "CACHE_BYTES",
    "CACHE_RECORDS",
    "CHECK_CONVERSATIONS",
    "CHECK_COUNTERS",
    "COUNTERS",
    "EVICT_BATCH",
    "FINISHED_SUM",
    "ORPHAN_CHUNKS",
    "ORPHAN_ITEMS",
    "SCAN_BATCH",
    "STATUS_COLUMNS",
    "STATUS_LIST",
    "Abort",
    "Damaged",
    "RecordCache",
    "SQLStore",
    "State",
    "Statements",
    "ThreadState",
    "conversation_values",
    "counted",
    "forks",
    "invariant",
    "item_rows",
    "json_text",
    "load",
    "moved",
    "new_row",
    "record_text",
    "swap_values",
]


class _Connection(Protocol):
    def close(self) -> None: ...

    def execute(self, sql: Any, params: Any = ..., /) -> Any: ...


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
    "SELECT last_seq, created, deleted, evicted, expired, bytes, active_bytes, conversations, "
    f"{STATUS_LIST} FROM counters"
)
CHECK_CONVERSATIONS = "SELECT seq, owner, id, version, items, next_position, expires_at, record FROM conversations"

ORPHAN_CHUNKS = "SELECT count(*) FROM chunks WHERE response NOT IN (SELECT seq FROM responses)"
ORPHAN_ITEMS = "SELECT count(*) FROM conversation_items WHERE conversation NOT IN (SELECT seq FROM conversations)"
COUNTERS = f"SELECT created, deleted, evicted, expired, bytes, {STATUS_LIST} FROM counters"


class Statements:
    """The statements both SQL stores run, in one engine's dialect (built from constant names, never from input).

    Written with ``?`` placeholders, which become ``mark``. The dialect's pieces: ``finished`` and ``active``, the
    conditions on ``terminal`` of a finished and of an active record; ``next_use``, the ``last_used`` of a record
    used now; ``wake``, a removed row's owner as :func:`~responsestore._owners.owner_of` reads it; ``held``, the
    condition that an item id is one of a list of ids (one parameter); ``due``, what :meth:`SQLStore._read_state`
    reads as the soonest expiry; ``named``, the placeholder of a named parameter; ``checked``, the columns ``_check``
    reads of a record after those both stores have.
    """

    def __init__(
        self,
        *,
        mark: str,
        finished: str,
        active: str,
        next_use: str,
        wake: str,
        held: str,
        due: str,
        named: Callable[[str], str],
        checked: str = "",
    ) -> None:
        def q(sql: str) -> str:
            return sql.replace("?", mark)

        visible = "(expires_at IS NULL OR expires_at > ?)"
        self.visible = q(visible)
        self.row = q(
            "SELECT seq, version, record, expires_at, terminal, event_count, event_bytes, size "
            "FROM responses WHERE owner = ? AND id = ?"
        )
        self.state = f"SELECT last_seq, {ACTIVE_SUM}, {FINISHED_SUM}, bytes, active_bytes, {due} FROM counters"
        self.pending = q(
            "SELECT status, count(*), sum(size + log_bytes) FROM responses WHERE expires_at <= ? GROUP BY status"
        )
        self.unlinked = {why: q(f"UPDATE counters SET {why} = {why} + ?") for why in ("deleted", "evicted", "expired")}
        self.trim = q("DELETE FROM removed WHERE n <= (SELECT max(n) FROM removed) - ?")
        self.append = q(
            "UPDATE responses SET event_count = ?, event_bytes = ?, log_bytes = log_bytes + ? "
            f"WHERE seq = ? AND version = ? AND event_count = ? AND {visible} RETURNING size + log_bytes"
        )
        self.chunk = q("INSERT INTO chunks (response, first, count, text) VALUES (?, ?, ?, ?)")
        seq, after = named("seq"), named("after")
        #: The chunks from the one holding event ``after`` on (named parameters ``seq`` and ``after``).
        self.chunks = (
            f"SELECT first, count, text FROM chunks WHERE response = {seq} AND first >= coalesce("
            f"(SELECT max(first) FROM chunks WHERE response = {seq} AND first <= {after}), 0) ORDER BY first"
        )
        self.log = q("SELECT first, count, text FROM chunks WHERE response = ? ORDER BY first")
        self.drop_log = q("DELETE FROM chunks WHERE response = ?")
        self.entry = q("SELECT size + log_bytes FROM responses WHERE seq = ?")
        self.lru = q(
            f"SELECT seq, {wake}, id, size + log_bytes FROM responses WHERE {finished} ORDER BY last_used, seq LIMIT ?"
        )
        self.touch = q(f"UPDATE responses SET last_used = {next_use} WHERE owner = ? AND id = ? AND {finished}")
        self.refresh = q(
            "UPDATE responses SET expires_at = CASE WHEN ttl IS NULL THEN NULL ELSE ? + ttl END, "
            f"last_used = CASE WHEN terminal THEN {next_use} END "
            f"WHERE owner = ? AND id = ? AND version = ? AND {visible} RETURNING seq, terminal, size + log_bytes"
        )
        self.delete = q("DELETE FROM responses WHERE seq = ?")
        self.remove = q(f"DELETE FROM responses WHERE seq = ? AND version = ? AND {visible} RETURNING {wake}, id")
        self.holder = q(f"SELECT seq, expires_at, {wake} FROM responses WHERE owner = ? AND id = ?")
        self.leased = q(
            f"SELECT seq, version, record, id FROM responses WHERE lease_expires_at <= ? AND {active} "
            f"AND {visible} ORDER BY lease_expires_at, seq LIMIT ?"
        )
        self.place = {
            table: q(f"SELECT created_at, seq FROM {table} WHERE owner = ? AND id = ?")
            for table in ("responses", "removed")
        }
        self.scan_select = q("SELECT created_at, seq, version, record, id FROM responses WHERE owner = ? ")
        self.scan_visible = q(f"AND {visible} ")
        start = self.scan_select + self.scan_visible
        #: ``(descending, from a cursor)`` -> the statement of one batch of a scan (keyset paging on the order index).
        self.scan = {
            (False, False): start + q("ORDER BY created_at, seq LIMIT ?"),
            (True, False): start + q("ORDER BY created_at DESC, seq DESC LIMIT ?"),
            (False, True): self.scan_select
            + q("AND (created_at, seq) > (?, ?) ")
            + self.scan_visible
            + q("ORDER BY created_at, seq LIMIT ?"),
            (True, True): self.scan_select
            + q("AND (created_at, seq) < (?, ?) ")
            + self.scan_visible
            + q("ORDER BY created_at DESC, seq DESC LIMIT ?"),
        }
        self.conversation = q(
            "SELECT seq, version, items, next_position, expires_at, record FROM conversations "
            f"WHERE owner = ? AND id = ? AND {visible}"
        )
        in_conversation = (
            "FROM conversations c JOIN conversation_items i ON i.conversation = c.seq "
            "WHERE c.owner = ? AND c.id = ? AND (c.expires_at IS NULL OR c.expires_at > ?) "
        )
        self.item = q("SELECT i.position, i.item_id, i.item " + in_conversation + "AND i.item_id = ?")
        #: The ids among a list of ids that the conversation holds (one statement however many are asked).
        self.held = q("SELECT i.item_id " + in_conversation) + f"AND i.item_id {held}"
        items = "SELECT position, item_id, item FROM conversation_items WHERE conversation = ? "
        #: ``(descending, from a position)`` -> the statement of one run of items (a range of the primary key).
        self.items = {
            (False, False): q(items + "ORDER BY position LIMIT ?"),
            (True, False): q(items + "ORDER BY position DESC LIMIT ?"),
            (False, True): q(items + "AND position > ? ORDER BY position LIMIT ?"),
            (True, True): q(items + "AND position < ? ORDER BY position DESC LIMIT ?"),
        }
        self.all_items = q(items + "ORDER BY position")
        self.conversation_insert = q(
            "INSERT INTO conversations (owner, id, version, items, next_position, expires_at, record) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING seq"
        )
        self.item_insert = q(
            "INSERT INTO conversation_items (conversation, position, item_id, item) VALUES (?, ?, ?, ?)"
        )
        self.conversation_swap = q(
            "UPDATE conversations SET version = ?, items = ?, next_position = ?, expires_at = ?, record = ? "
            f"WHERE owner = ? AND id = ? AND version = ? AND {visible} RETURNING seq"
        )
        self.item_delete = q("DELETE FROM conversation_items WHERE conversation = ? AND item_id = ?")
        self.conversation_delete = q(
            f"DELETE FROM conversations WHERE owner = ? AND id = ? AND version = ? AND {visible}"
        )
        #: Delete up to a number of conversations expired at a time, soonest expired first (the trigger deletes
        #: their items).
        self.conversations_sweep = q(
            "DELETE FROM conversations WHERE seq IN "
            "(SELECT seq FROM conversations WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)"
        )
        self.check_rows = (
            "SELECT seq, owner, id, created_at, status, terminal, version, ttl, expires_at, last_used, "
            f"lease_expires_at, size, event_count, event_bytes, log_bytes, record{checked} FROM responses"
        )


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

    def usage(self) -> Usage:
        """The store's usage, as :mod:`._room` decides on it."""
        return Usage(self.records, self.bytes, self.active, self.active_bytes)


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
    """The methods the SQL stores share: they reach the database only through the hooks declared here.

    Each store names its dialect's :class:`Statements` (``_q``) and how its engine differs: which texts it can
    hold (``_storable``), how it passes a list of ids (``_id_list``) and "no limit" (``_no_limit``), how it runs
    a statement over many rows (``_execute_many``), begins a write (``_begin_write``, inside ``_turn``) and
    translates what a write raised (``_translate``).
    """

    _closed: bool
    _generation: int  # forks() when the store was set up in this process
    _local: threading.local  # .state: the calling thread's ThreadState
    _connections_mutex: threading.RLock  # guards the engine's table of open connections (see _setup_process)
    _touches: TouchLog[tuple[str, str]]  # (owner key, id) of the finished records read since the last write
    _cache: RecordCache
    _q: ClassVar[Statements]
    #: The ``LIMIT`` of no limit.
    _no_limit: ClassVar[int | None]

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    @staticmethod
    @abc.abstractmethod
    def _owner_key(owner: str | None) -> str:
        """The stored form of an owner (the ``owner`` column)."""

    @staticmethod
    @abc.abstractmethod
    def _storable(text: str) -> bool:
        """Whether the engine can hold ``text``: no stored id or key is otherwise."""

    @staticmethod
    @abc.abstractmethod
    def _id_list(ids: list[str]) -> Any:
        """The parameter of :attr:`Statements.held` that lists ``ids``."""

    @staticmethod
    @abc.abstractmethod
    def _execute_many(conn: _C, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Run ``sql`` once for each of ``rows``."""

    @staticmethod
    @abc.abstractmethod
    def _rollback(conn: _C) -> None:
        """Roll back the transaction in progress on ``conn``, if any (errors ignored)."""

    @abc.abstractmethod
    def _closed_error(self) -> StorageError:
        """The error a closed store raises."""

    @abc.abstractmethod
    def _damaged(self, what: str, exc: BaseException) -> StorageError:
        """The error of a stored value that cannot be read (``what``, naming it)."""

    @abc.abstractmethod
    def _no_counters(self) -> Exception:
        """The error of a missing counters row."""

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
    def _state(self) -> ThreadState[_C]:
        """The calling thread's connection state (opening its connection on first use)."""

    def _setup_process(self) -> None:
        """Set up what belongs to this process (again in a forked child): thread states, the recency log.

        An engine extends it with its connections' bookkeeping (calling this first).
        """
        self._generation = forks()
        self._local = threading.local()
        # Reentrant: a thread's state dies with its thread, and its finalizer then takes this mutex to drop the
        # connection from the table. The cycle collector may run that finalizer at any allocation, also one made
        # by a thread while it holds the mutex (adopting its own connection): a plain lock would deadlock there.
        # So the table is never iterated while the mutex is held (close copies it in one step), and a finalizer
        # running inside a critical section only pops an entry no one is in the middle of.
        self._connections_mutex = threading.RLock()
        self._touches = TouchLog()

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
    def _query(self, action: Callable[[_C], _T]) -> _T:
        """Run ``action`` on this thread's connection, outside any transaction (each statement is atomic)."""

    @abc.abstractmethod
    def _snapshot_read(self, action: Callable[[_C], _T]) -> _T:
        """Run ``action`` in one read transaction (one snapshot)."""

    #: Held around a write: what queues this process's writers before the engine does (here nothing).
    _turn: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()

    @abc.abstractmethod
    def _begin_write(self, conn: _C) -> State | None:
        """Begin a write transaction that holds the database's write lock; the counters, if it read them."""

    @abc.abstractmethod
    def _translate(self, state: ThreadState[_C], exc: BaseException) -> BaseException:
        """What an operation on ``state``'s connection that raised ``exc`` raises."""

    @abc.abstractmethod
    def _bad_status(self, status: object) -> Exception:
        """The error of a stored status no record has."""

    @abc.abstractmethod
    def _sweep_rows(self, conn: _C, now: float, limit: int | None) -> int:
        """Delete up to ``limit`` (``None``: every) record expired at ``now``; how many."""

    # ------------------------------------------------------------------ transactions

    def _write(self, action: Callable[[_C, Any], _T]) -> _T:
        """Run ``action`` in one write transaction, first writing queued recency marks.

        ``action`` gets the connection and the counters the engine read as the write began (``None``: it read
        none). The whole of ``action`` commits or nothing does: it raises :class:`Abort` to roll back and return a
        value. Waiters of records removed by it are woken after the commit.
        """
        state: ThreadState[_C] = self._state()
        touches: list[tuple[str, str]] = []
        with self._turn, state.mutex:
            conn = self._live(state)
            try:
                begun = self._begin_write(conn)
                touches = self._touches.take()
                if touches:
                    self._apply_touches(conn, touches)
                result = action(conn, begun)
                conn.execute("COMMIT")
            except Abort as abort:
                self._undo(state, touches)
                return abort.result  # type: ignore[no-any-return]
            except BaseException as exc:
                self._undo(state, touches)
                error = self._translate(state, exc)
                if error is exc:
                    raise
                raise error from exc
        self._finish_write(state)
        return result

    def _live(self, state: ThreadState[_C]) -> _C:
        """The connection of ``state`` (whose mutex the caller holds), unless :meth:`close` closed it."""
        if state.dead:
            raise self._closed_error()
        return state.conn

    def _undo(self, state: ThreadState[_C], touches: list[tuple[str, str]]) -> None:
        """Roll back the write in progress on ``state``'s connection; keep its recency marks for the next write."""
        state.wakes.clear()
        state.cached.clear()
        self._rollback(state.conn)
        if touches:  # not written: keep them for the next write
            self._touches.give_back(touches)

    def _apply_touches(self, conn: _C, keys: list[tuple[str, str]]) -> None:
        # Each one above every finished record, in the order of the reads. Only a record's last read decides where
        # it ends up, so a record read many times is marked once, at the place of its last read.
        last_reads = list(dict.fromkeys(reversed(keys)))
        last_reads.reverse()
        self._execute_many(conn, self._q.touch, last_reads)

    # ------------------------------------------------------------------ the parse cache

    def _record(self, seq: int, version: int, text: str, id: str) -> ResponseRecord:
        """The record ``id`` stored as ``text`` in row ``seq`` at ``version``, parsed once and then cached.

        The cache holds at most one record per row, the newest version seen.
        """
        hit = self._cache.get(seq)
        if hit is not None and hit[0] == version:
            return hit[1]
        try:
            record = load(text)
        except (ValueError, TypeError, KeyError, RecursionError, ResponseStoreError) as exc:
            raise self._damaged(f"the record {id!r}", exc) from exc
        self._cache.remember(seq, version, record, len(text))
        return record

    def _row_record(self, row: Sequence[Any], owner: str | None, id: str) -> ResponseRecord:
        """The record of ``(owner, id)`` from its row read by :attr:`Statements.row`."""
        return self._record(row[0], row[1], row[2], id)

    def _linked(self, rows: Sequence[Sequence[Any]]) -> list[ResponseRecord]:
        """The records of a chain's rows ``(seq, version, record, id)``, up to the first one seen twice."""
        chain: list[ResponseRecord] = []
        seen: set[str] = set()
        for seq, version, text, id in rows:
            record = self._record(seq, version, text, id)
            if record.id in seen:
                break
            seen.add(record.id)
            chain.append(record)
        return chain

    # ------------------------------------------------------------------ reads

    def _visible_row(self, owner: str | None, id: str) -> Any:
        if not self._storable(id):
            return None  # no stored id is otherwise: ids are checked at create
        key = self._owner_key(owner)
        row = self._query(lambda conn: conn.execute(self._q.row, (key, id)).fetchone())
        if row is None or (row[3] is not None and row[3] <= self._now()):
            return None
        return row

    def _stored(self, row: Sequence[Any], owner: str | None, id: str) -> Stored:
        """The :class:`Stored` of ``(owner, id)`` from its row read by :attr:`Statements.row`."""
        seq, _, _, _, _, count, event_bytes, size = row
        return Stored(self._row_record(row, owner, id), int(count), int(event_bytes), seq, int(size))

    def _get(self, owner: str | None, id: str) -> ResponseRecord | None:
        row = self._visible_row(owner, id)
        if row is None:
            return None
        record = self._row_record(row, owner, id)
        if row[4]:  # only finished records compete for eviction
            self._touches.mark((self._owner_key(owner), id))
        return record

    def _peek(self, owner: str | None, id: str) -> ResponseRecord | None:
        row = self._visible_row(owner, id)
        return None if row is None else self._row_record(row, owner, id)

    def _read(self, owner: str | None, id: str) -> Stored | None:
        row = self._visible_row(owner, id)
        return None if row is None else self._stored(row, owner, id)

    def _leased(self, now: float, limit: int) -> list[ResponseRecord]:
        rows = self._query(lambda conn: conn.execute(self._q.leased, (now, now, limit)).fetchall())
        return [self._record(seq, version, text, id) for seq, version, text, id in rows]

    def _events(self, owner: str | None, id: str, after: int) -> tuple[Stored, tuple[Chunk, ...]] | None:
        if not self._storable(id):
            return None
        key = self._owner_key(owner)
        now = self._now()

        def read(conn: _C) -> tuple[Stored, tuple[Chunk, ...]] | None:
            row = conn.execute(self._q.row, (key, id)).fetchone()
            if row is None or (row[3] is not None and row[3] <= now):
                return None
            stored = self._stored(row, owner, id)
            if stored.events - 1 <= after:
                return stored, ()
            rows = conn.execute(self._q.chunks, {"seq": stored.incarnation, "after": after + 1}).fetchall()
            return stored, self._chunks(rows, stored, after)

        return self._snapshot_read(read)

    def _chunks(self, rows: list[Any], stored: Stored, after: int) -> tuple[Chunk, ...]:
        """Check that ``rows`` are the chunks holding events ``after + 1`` to the end of the log, in order.

        Raises:
            StorageError: they are not (a damaged database).
        """
        expected = None
        for first, count, text in rows:
            if (
                first.__class__ is not int
                or count.__class__ is not int
                or text.__class__ is not str
                or count < 1
                or (expected is not None and first != expected)
            ):
                raise self._damaged(
                    f"the event log of {stored.record.id!r}", ValueError(f"a malformed chunk at event {first!r}")
                )
            expected = first + count
        if not rows or rows[0][0] > max(after + 1, 0) or expected != stored.events:
            raise self._damaged(f"the event log of {stored.record.id!r}", ValueError("its chunks do not add up"))
        return tuple(rows)

    def _stats_rows(self, conn: _C, now: float) -> tuple[Sequence[Any], list[Any]]:
        """The counters row, and ``(status, count, bytes)`` of the records expired at ``now`` but not yet swept.

        The row: ``created, deleted, evicted, expired, bytes`` and the count of each status (:data:`STATUS_COLUMNS`).
        """
        row = conn.execute(COUNTERS).fetchone()
        if row is None:
            raise self._no_counters()
        return row, conn.execute(self._q.pending, (now,)).fetchall()

    def _scan(self, conn: _C, key: str, cursor: str | None, descending: bool, now: float) -> Iterator[ResponseRecord]:
        """The visible records of the owner ``key`` after (or before) ``cursor``, newest first if ``descending``."""
        start: tuple[float, int] | None = None
        if cursor is not None:
            found = None
            if self._storable(cursor):
                found = conn.execute(self._q.place["responses"], (key, cursor)).fetchone()
                if found is None:
                    found = conn.execute(self._q.place["removed"], (key, cursor)).fetchone()
            if found is None:
                raise unknown_cursor(cursor)
            start = (found[0], found[1])
        return self._scan_rows(conn, key, start, descending, now)

    def _scan_rows(
        self, conn: _C, key: str, start: tuple[float, int] | None, descending: bool, now: float
    ) -> Iterator[ResponseRecord]:
        batch = 8
        while True:
            if start is None:
                rows = conn.execute(self._q.scan[descending, False], (key, now, batch)).fetchall()
            else:
                rows = conn.execute(self._q.scan[descending, True], (key, start[0], start[1], now, batch)).fetchall()
            for _, seq, version, text, id in rows:
                yield self._record(seq, version, text, id)
            if len(rows) < batch:
                return
            start = (rows[-1][0], rows[-1][1])
            batch = min(batch * 4, SCAN_BATCH * 4)

    # ------------------------------------------------------------------ writes

    def _read_state(self, conn: _C) -> State:
        """The counters a write reads first."""
        row = conn.execute(self._q.state).fetchone()
        if row is None:
            raise self._no_counters()
        return State(*row)

    def _byte_counters(self, conn: _C) -> tuple[int, int]:
        """``bytes`` and ``active_bytes`` of the counters row."""
        row = conn.execute("SELECT bytes, active_bytes FROM counters").fetchone()
        if row is None:
            raise self._no_counters()
        return int(row[0]), int(row[1])

    def _conversation_count(self, conn: _C) -> int:
        row = conn.execute("SELECT conversations FROM counters").fetchone()
        if row is None:
            raise self._no_counters()
        return int(row[0])

    def _clear_id(self, conn: _C, key: str, id: str, now: float) -> None:
        """Make way for a new record ``(key, id)``: remove an expired one, refuse a visible one.

        Raises:
            ResponseExists: a visible record has this id.
        """
        row = conn.execute(self._q.holder, (key, id)).fetchone()
        if row is None:
            return
        if row[1] is None or row[1] > now:
            raise ResponseExists(id)
        self._unlink(conn, [(row[0], row[2], id)], "expired")

    def _refresh(
        self, conn: _C, keep: Sequence[ResponseRecord], start: float, now: float
    ) -> list[tuple[int, Any, int]] | None:
        """Restart the expiry of the chain ``keep`` from ``start`` and mark it used, oldest first, if unchanged.

        Returns ``(seq, terminal, bytes)`` of each record, or ``None`` if one is gone or changed.
        """
        key = self._owner_key(keep[0].owner)
        refreshed = []
        for ancestor in reversed(keep):
            row = conn.execute(self._q.refresh, (start, key, ancestor.id, ancestor.version, now)).fetchone()
            if row is None:
                return None
            refreshed.append((row[0], row[1], int(row[2])))
        return refreshed

    def _spared(
        self, conn: _C, record: ResponseRecord, keep: Sequence[ResponseRecord], key: str, now: float
    ) -> list[tuple[int, Any, int]]:
        """Refresh the chain ``keep`` that the new ``record`` continues (:meth:`_refresh`), so the write spares it.

        Raises:
            ResponseExists: a visible record already has the new id.
            Abort: ``False``: a record of ``keep`` is gone or changed.
        """
        if not keep:
            return []
        refreshed = self._refresh(conn, keep, record.created_at, now)
        if refreshed is None:
            self._clear_id(conn, key, record.id, now)  # a visible record of this id wins: ResponseExists
            raise Abort(result=False)
        return refreshed

    def _lru(self, conn: _C, limit: int) -> list[Any]:
        """Up to ``limit`` rows ``(seq, owner key, id, bytes)`` of finished records, least recently used first."""
        return list(conn.execute(self._q.lru, (limit,)).fetchall())

    def _delete_row(self, conn: _C, seq: int) -> None:
        """Delete the record of row ``seq`` (the triggers do the rest)."""
        conn.execute(self._q.delete, (seq,))

    def _append(self, old: Stored, log: LogWrite) -> bool:
        seq = old.incarnation
        params = (log.first + log.events, log.event_bytes, log.stored, seq, old.record.version, old.events)
        max_bytes = self.retention.max_bytes
        finished = old.record.is_terminal

        def append(conn: _C, _: State | None) -> bool:
            row = conn.execute(self._q.append, (*params, self._now())).fetchone()
            if row is None:
                return False
            self._write_log(conn, seq, log)
            if max_bytes is not None:
                self._room_for_growth(
                    conn, seq, grows=log.stored, entry=int(row[0]), finished=finished, id=old.record.id
                )
            return True

        return self._write(append)

    @staticmethod
    @abc.abstractmethod
    def _swap_statement(
        old: Stored, new: ResponseRecord, text: str, size: int, log: LogWrite | None
    ) -> tuple[str, Callable[[float], Any]]:
        """The conditional update of ``_swap`` and its parameters at a time ``now``.

        It returns the row's new ``size + log_bytes``, and may return the soonest expiry after it.
        """

    def _swap(
        self,
        old: Stored,
        new: ResponseRecord,
        size: int,
        log: LogWrite | None,
        conversation: ConversationWrite | None = None,
    ) -> bool:
        text = record_text(new)
        seq = old.incarnation
        sql, params = self._swap_statement(old, new, text, size, log)
        max_bytes = self.retention.max_bytes
        in_conversation = None if conversation is None else self._conversation_write(conversation)

        def swap(conn: _C, begun: State | None) -> bool:
            now = self._now()
            if begun is not None and begun.due is not None and begun.due <= now:  # due as the write began
                self._sweep_rows(conn, now, SWEEP_BATCH)
            before = None if max_bytes is None else self._entry_bytes(conn, seq)
            row = conn.execute(sql, params(now)).fetchone()
            if row is None:
                return False
            if in_conversation is not None and not in_conversation(conn, now):
                raise Abort(result=False)  # the conversation changed: the response's update is undone too
            if log is not None:
                self._write_log(conn, seq, log)
            if len(row) > 1 and row[1] is not None and row[1] <= now:  # due as the statement returned it
                self._sweep_rows(conn, now, SWEEP_BATCH)
            if before is not None:
                entry = int(row[0])
                self._room_for_growth(conn, seq, grows=entry - before, entry=entry, finished=new.is_terminal, id=new.id)
            self._state().cached.append((seq, new.version, new, len(text)))
            return True

        return self._write(swap)

    def _entry_bytes(self, conn: _C, seq: int) -> int | None:
        row = conn.execute(self._q.entry, (seq,)).fetchone()
        return None if row is None else int(row[0])

    def _write_log(self, conn: _C, seq: int, log: LogWrite) -> None:
        if log.replace:
            conn.execute(self._q.drop_log, (seq,))
        conn.execute(self._q.chunk, (seq, log.first, log.events, log.text))

    def _remove(self, old: Stored) -> bool:
        record = old.record

        def remove(conn: _C, begun: State | None) -> bool:
            now = self._now()
            # A batch of expired records goes first: when one is due (or always, where the write read no counters).
            if begun is None or (begun.due is not None and begun.due <= now):
                self._sweep_rows(conn, now, SWEEP_BATCH)
            row = conn.execute(self._q.remove, (old.incarnation, record.version, now)).fetchone()
            if row is None:
                return False
            self._unlinked(conn, [(old.incarnation, row[0], row[1])], "deleted")
            return True

        return self._write(remove)

    def _unlink(self, conn: _C, rows: list[tuple[int, str, str]], why: str) -> None:
        """Remove the records ``rows`` (``(seq, owner key, id)``) and count them as ``why``.

        The delete trigger removes their chunks and leaves their tombstones.
        """
        for seq, _, _ in rows:
            conn.execute(self._q.delete, (seq,))
        self._unlinked(conn, rows, why)

    def _unlinked(self, conn: _C, rows: list[tuple[int, str, str]], why: str) -> None:
        """Bookkeeping after deleting ``rows``: the count of ``why``, the tombstones' bound, wake-ups, the cache."""
        conn.execute(self._q.unlinked[why], (len(rows),))
        conn.execute(self._q.trim, (cursor_memory(self.retention.max_records),))
        state = self._state()
        for seq, key, id in rows:
            state.wakes.append((owner_of(key), id))
            state.cached.append((seq, 0, None, 0))

    def _sweep(self, limit: int | None) -> int:
        now = self._now()  # validated: a broken clock must refuse the write before anything is removed
        return self._write(lambda conn, _: self._sweep_rows(conn, now, limit))

    # ------------------------------------------------------------------ conversations

    def _conversation_state(self, owner: str | None, id: str, row: Sequence[Any]) -> ConversationState:
        """The state of ``(owner, id)`` from its row ``(seq, version, items, next_position, expires_at, record)``.

        Raises:
            StorageError: the row is not one this backend writes (a damaged database).
        """
        _, version, items, next_position, expires_at, text = row
        try:
            record = ConversationRecord.from_dict(json.loads(text))
        except (ValueError, TypeError, RecursionError, ResponseStoreError) as exc:
            raise self._damaged(f"the conversation {id!r}", exc) from exc
        if (
            (record.owner, record.id, record.version) != (owner, id, version)
            or items.__class__ is not int
            or next_position.__class__ is not int
            or not 0 <= items <= next_position
            or not (expires_at is None or expires_at.__class__ is float)
        ):
            raise self._damaged(f"the conversation {id!r}", ValueError("its columns disagree with its JSON"))
        return ConversationState(record, items, next_position, expires_at)

    def _positioned(self, id: str, row: Sequence[Any]) -> Positioned:
        """The item of conversation ``id`` from its row ``(position, item id, item)``.

        Raises:
            StorageError: the row is not one this backend writes (a damaged database).
        """
        position, item_id, text = row
        try:
            item = freeze_object(json.loads(text), "a stored item")
        except (ValueError, TypeError, RecursionError, ResponseStoreError) as exc:
            raise self._damaged(f"an item of conversation {id!r}", exc) from exc
        if position.__class__ is not int or item.get("id") != item_id:
            raise self._damaged(f"an item of conversation {id!r}", ValueError("its columns disagree with its JSON"))
        return position, item_id, item

    def _conversation(self, owner: str | None, id: str) -> ConversationState | None:
        if not self._storable(id):
            return None  # no stored id is otherwise
        params = (self._owner_key(owner), id, self._now())
        row = self._query(lambda conn: conn.execute(self._q.conversation, params).fetchone())
        return None if row is None else self._conversation_state(owner, id, row)

    def _conversation_items(
        self, owner: str | None, id: str, after: int | None, count: int, *, descending: bool
    ) -> tuple[ConversationState, list[Positioned]] | None:
        if not self._storable(id):
            return None
        params = (self._owner_key(owner), id, self._now())
        sql = self._q.items[descending, after is not None]

        def read(conn: _C) -> tuple[ConversationState, list[Positioned]] | None:
            row = conn.execute(self._q.conversation, params).fetchone()
            if row is None:
                return None
            state = self._conversation_state(owner, id, row)
            args = (row[0], count) if after is None else (row[0], after, count)
            return state, [self._positioned(id, item) for item in conn.execute(sql, args).fetchall()]

        return self._snapshot_read(read)

    def _conversation_item(self, owner: str | None, id: str, item_id: str) -> Positioned | None:
        if not (self._storable(id) and self._storable(item_id)):
            return None
        params = (self._owner_key(owner), id, self._now(), item_id)
        row = self._query(lambda conn: conn.execute(self._q.item, params).fetchone())
        return None if row is None else self._positioned(id, row)

    def _conversation_held(self, owner: str | None, id: str, item_ids: Sequence[str]) -> set[str]:
        asked = [item_id for item_id in item_ids if self._storable(item_id)]
        if not (asked and self._storable(id)):
            return set()
        params = (self._owner_key(owner), id, self._now(), self._id_list(asked))
        rows = self._query(lambda conn: conn.execute(self._q.held, params).fetchall())
        return {item_id for (item_id,) in rows}

    def _conversation_put(self, state: ConversationState, items: Sequence[Positioned]) -> None:
        record = state.record
        values = (self._owner_key(record.owner), *conversation_values(state))
        rows = item_rows(items)
        limit = self.retention.max_records

        def put(conn: _C, _: State | None) -> None:
            now = self._now()
            self._sweep_conversation_rows(conn, now, SWEEP_BATCH)
            if limit is not None and self._conversation_count(conn) >= limit:
                self._sweep_conversation_rows(conn, now, None)
                if self._conversation_count(conn) >= limit:
                    raise ConversationFull(record.id, "max_records", limit)
            (seq,) = conn.execute(self._q.conversation_insert, values).fetchone()
            if rows:
                self._execute_many(conn, self._q.item_insert, [(seq, *row) for row in rows])

        self._write(put)

    def _conversation_write(self, write: ConversationWrite) -> Callable[[_C, float], bool]:
        """The statements of ``write``, as a function to run inside a write transaction at a time ``now``.

        It returns ``False``, having changed nothing, if the conversation is no longer visible at ``write.old``'s
        version. Everything is encoded here, before the transaction begins.
        """
        old = write.old.record
        params = (*swap_values(write), self._owner_key(old.owner), old.id, old.version)
        rows = item_rows(write.append)
        remove = write.remove

        def apply(conn: _C, now: float) -> bool:
            row = conn.execute(self._q.conversation_swap, (*params, now)).fetchone()
            if row is None:
                return False
            seq = row[0]
            if remove is not None and conn.execute(self._q.item_delete, (seq, remove)).rowcount != 1:
                raise Damaged(f"the items of conversation {old.id!r}", LookupError(f"{remove!r} is missing"))
            if rows:
                self._execute_many(conn, self._q.item_insert, [(seq, *item) for item in rows])
            return True

        return apply

    def _conversation_remove(self, old: ConversationState) -> bool:
        record = old.record
        params = (self._owner_key(record.owner), record.id, record.version)
        return self._write(
            lambda conn, _: bool(conn.execute(self._q.conversation_delete, (*params, self._now())).rowcount == 1)
        )

    def _sweep_conversations(self) -> int:
        now = self._now()  # validated before the write, as for responses
        return self._write(lambda conn, _: self._sweep_conversation_rows(conn, now, None))

    def _sweep_conversation_rows(self, conn: _C, now: float, limit: int | None) -> int:
        """Delete up to ``limit`` (``None``: every) conversation expired at ``now``, with their items."""
        sql = self._q.conversations_sweep
        return int(conn.execute(sql, (now, self._no_limit if limit is None else limit)).rowcount)

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
                self._touches.mark((self._owner_key(record.owner), record.id))

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
        if fits_new(self.retention, state.records, state.bytes, size):
            return  # room_for_new would do nothing: spare building its arguments on every create

        def sweep() -> Usage:
            return self._read_state(conn).usage() if self._sweep_rows(conn, now, None) else state.usage()

        evicted: list[tuple[int, str, str]] = []
        try:
            room_for_new(
                self.retention,
                record.id,
                size,
                state.usage(),
                spared=[bytes_ for _, terminal, bytes_ in spared if terminal],
                sweep=sweep,
                evict=self._evictor(conn, {seq for seq, _, _ in spared}, evicted),
            )
        except StoreFull:
            self._clear_id(conn, key, record.id, now)  # ResponseExists comes first, as the contract orders
            raise
        if evicted:
            self._unlinked(conn, evicted, "evicted")

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
        if fits_growth(self.retention, total, grows):
            return  # room_to_grow would do nothing
        evicted: list[tuple[int, str, str]] = []
        room_to_grow(
            self.retention,
            id,
            total=total,
            grows=grows,
            others=total - active - (entry if finished else 0),
            finishing=finished,
            evict=self._evictor(conn, {seq}, evicted),
        )
        if evicted:
            self._unlinked(conn, evicted, "evicted")

    def _evictor(self, conn: _C, protected: set[int], evicted: list[tuple[int, str, str]]) -> Callable[[], int | None]:
        """An ``evict`` for :mod:`._room`, which deletes one row per call and returns its bytes.

        The row is the least recently used finished one not ``protected`` (seqs); it goes to ``evicted`` (``(seq,
        owner key, id)``) for :meth:`_unlinked` to count once the room is made.
        """
        batch: list[Any] = []

        def evict() -> int | None:
            if not batch:
                rows = self._lru(conn, len(protected) + EVICT_BATCH)
                batch.extend(reversed([row for row in rows if row[0] not in protected]))
                if not batch:
                    return None
            seq, key, victim, bytes_ = batch.pop()
            self._delete_row(conn, seq)
            evicted.append((seq, key, victim))
            return int(bytes_)

        return evict

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

    def _check_thread(self, state: ThreadState[_C]) -> None:
        """Nothing of the calling thread's last write is left pending; the touch log and the cache are bounded."""
        invariant(not state.wakes, "wake-ups were left pending")
        invariant(not state.cached, "cache updates were left pending")
        self._touches._check()
        invariant(len(self._cache) <= CACHE_RECORDS, "the record cache is unbounded")

    def _check_tables(self, conn: _C) -> None:
        """Check the tables in one snapshot, raising ``AssertionError``.

        Rows agree with their JSON, sizes, chunks and the cache; the counters, the engine's indexes and the
        tombstones agree with the rows; conversations with their items.
        """
        counters = conn.execute(CHECK_COUNTERS).fetchall()
        invariant(len(counters) == 1, "the counters row is missing or doubled")
        last_seq, created, deleted, evicted, expired, total, active, conversations = counters[0][:8]
        status_counts = dict(zip(STATUS_COLUMNS, counters[0][8:], strict=True))
        rows = conn.execute(self._q.check_rows).fetchall()
        by_status = dict.fromkeys(ResponseStatus, 0)
        live: set[tuple[str, str]] = set()
        seqs: set[int] = set()
        leased: set[int] = set()
        sizes = [0, 0]  # bytes of all records, of active ones
        for row in rows:
            record = self._check_row(conn, row)
            live.add((row[1], row[2]))
            seqs.add(row[0])
            by_status[record.status] += 1
            entry = row[11] + row[14]
            sizes[0] += entry
            if not record.is_terminal:
                sizes[1] += entry
                if record.lease_expires_at is not None:
                    leased.add(row[0])
        invariant(by_status == status_counts, "status counters disagree with the records")
        invariant(sizes == [total, active], "byte counters disagree with the records")
        invariant(created - deleted - evicted - expired == len(rows), "lifetime counters do not add up")
        invariant(all(0 < seq <= last_seq for seq in seqs), "a record's seq is not below the counter")
        self._check_indexes(conn, rows, leased)
        invariant(conn.execute(ORPHAN_CHUNKS).fetchone()[0] == 0, "chunks outlived their response")
        removed = conn.execute("SELECT owner, id, seq FROM removed").fetchall()
        # The bound of this store's settings holds after its first removal; CURSOR_MEMORY always (stores of other
        # settings may share the tables).
        invariant(len(removed) <= CURSOR_MEMORY, "tombstones unbounded")
        invariant(not ({(key, id) for key, id, _ in removed} & live), "a live record is also removed")
        invariant(not ({seq for _, _, seq in removed} & seqs), "a tombstone shares a live record's seq")
        invariant(all(seq <= last_seq for _, _, seq in removed), "a tombstone's seq is above the counter")
        self._check_conversations(conn, conversations)

    @abc.abstractmethod
    def _check_indexes(self, conn: _C, rows: list[Any], leased: set[int]) -> None:
        """The engine's own order of leases and recency agrees with ``rows`` and the ``leased`` seqs."""

    def _more_columns(self, record: ResponseRecord) -> tuple[Any, ...]:
        """What the columns a store reads after the common ones (:class:`Statements` ``checked``) should hold."""
        return ()

    def _check_row(self, conn: _C, row: Sequence[Any]) -> ResponseRecord:
        (seq, key, id, created_at, status, terminal, version, ttl, expires_at, used, lease, size, count, event_bytes,
         log_bytes, text) = row[:16]  # fmt: skip
        record = self._check_loaded(seq, key, id, version, text)
        invariant(
            (record.created_at, record.status.value, record.is_terminal, record.version, *self._more_columns(record))
            == (created_at, status, terminal, version, *row[16:]),
            f"the columns of {id!r} disagree with its JSON",
        )
        invariant(record_text(record) == text, f"the JSON of {id!r} is not what to_dict() writes")
        invariant(record.version >= 1, f"{id!r} has version {record.version}")
        invariant(
            (record.completed_at is not None) == (record.status is ResponseStatus.COMPLETED),
            f"completed_at does not follow the status of {id!r}",
        )
        invariant(size == record_size(record), f"the stored size of {id!r} is not its record_size")
        self._check_lease_columns(record, lease, used, ttl, expires_at)
        chunks = conn.execute(self._q.log, (seq,)).fetchall()
        self._check_log(record, chunks, count, event_bytes, log_bytes)
        return record

    def _check_conversations(self, conn: _C, counted: int) -> None:
        """The conversations agree with their JSON, their count and their items; no item outlives its conversation."""
        rows = conn.execute(CHECK_CONVERSATIONS).fetchall()
        invariant(counted == len(rows), "the conversation count disagrees with the rows")
        for seq, key, id, version, items, next_position, expires_at, text in rows:
            try:  # a long owner's key is a digest ("#..."): its JSON names the owner
                owner = json.loads(text).get("owner") if key.startswith("#") else owner_of(key)
                state = self._conversation_state(owner, id, (seq, version, items, next_position, expires_at, text))
            except StorageError as exc:
                raise AssertionError(str(exc)) from None
            invariant(json_text(state.record.to_dict()) == text, f"the JSON of conversation {id!r}")
            held = conn.execute(self._q.all_items, (seq,)).fetchall()
            invariant(len(held) == items, f"the item count of conversation {id!r} disagrees with its items")
            invariant(all(0 <= row[0] < next_position for row in held), f"an item of {id!r} is beyond its positions")
            invariant(len({row[1] for row in held}) == len(held), f"the item ids of {id!r} repeat")
            self._check_items(id, held)
        invariant(conn.execute(ORPHAN_ITEMS).fetchone()[0] == 0, "items outlived their conversation")

    @staticmethod
    def _check_stats(stats: StoreStats) -> None:
        invariant(stats.records == sum(stats.by_status.values()), "stats.by_status does not add up")
        invariant(stats.records == stats.created - stats.deleted - stats.evicted - stats.expired, "stats do not add up")


def conversation_values(state: ConversationState) -> tuple[Any, ...]:
    """A new conversation's row but its owner key: ``(id, version, items, next_position, expires_at, record)``."""
    record = state.record
    return (record.id, record.version, state.items, state.next_position, state.expires_at, json_text(record.to_dict()))


def new_row(
    record: ResponseRecord, key: str, ttl: float | None, size: int, text: str, *, terminal: Any
) -> tuple[Any, ...]:
    """The columns of ``record``'s new row (``terminal``: its ``terminal`` as the engine stores it).

    In this order: ``owner, id, created_at, status, terminal, version, ttl, expires_at, lease_expires_at, size,
    record``.
    """
    expires_at = None if ttl is None else record.created_at + ttl
    lease = None if record.is_terminal else record.lease_expires_at
    return (
        key,
        record.id,
        record.created_at,
        record.status.value,
        terminal,
        record.version,
        ttl,
        expires_at,
        lease,
        size,
        text,
    )


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


def invariant(condition: bool, message: str) -> None:
    """Fail ``_check`` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise AssertionError(message)
