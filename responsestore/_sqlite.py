"""``SQLiteStore``: a durable backend on one SQLite file, shared by the threads and processes that open it.

Layout (schema version 1; ``PRAGMA user_version`` holds the version, ``PRAGMA application_id`` marks the file):

- ``responses``: one row per stored record, keyed by ``(owner, id)``. ``seq`` (``INTEGER PRIMARY KEY
  AUTOINCREMENT``) is the creation order and breaks ``created_at`` ties; ``record`` is the record's JSON text
  (:meth:`ResponseRecord.to_dict`); ``status``, ``terminal``, ``model`` and ``version`` repeat what queries need;
  ``ttl`` and ``expires_at`` drive expiry; ``last_used`` is the recency tick of LRU eviction; ``event_count`` and
  ``event_bytes`` size the record's event log. Owners are encoded so that ``None`` differs from every string.
- ``events``: the event logs, keyed by ``(response seq, sequence number)``.
- ``removed``: where the last :data:`CURSOR_MEMORY` removed records stood, so a page walk whose cursor was
  removed meanwhile goes on (as in the memory store).
- ``counters``: one row of lifetime counts (created, deleted, evicted, expired), per-status counts of stored
  records, the tombstone count, and ``tick``, the store-wide recency counter.

Indexes make a first page or a cursor step O(log n): ``(owner, created_at, seq)`` for lists, ``expires_at`` for
sweeping, and ``last_used`` over finished records for eviction.

Transactions: each thread has its own connection. A write runs in ``BEGIN IMMEDIATE``, so everything a write
decides on (a transition, a version check, a capacity eviction) stays true until it commits, across processes; a
process-local mutex queues this process's writers so that only other processes meet SQLite's busy handler. A
read runs in a deferred transaction: one consistent snapshot (WAL readers never wait for writers). Marking a
record as used (``get``, ``input_items``, ``chain``) is a small write; inside a read it is queued and applied
right after the read ends, because a read snapshot cannot become a write.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import Any

from ._contract import DEFAULT_MAX_CHAIN_DEPTH, BaseStore, Clock
from ._events import DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_EVENTS
from ._json import FrozenDict, freeze_object, thaw
from ._paging import unknown_cursor
from ._records import ResponseRecord, ResponseStatus
from ._retention import DEFAULT_MAX_RECORDS, DEFAULT_TTL, StoreStats
from .errors import InvalidArgument, LockError, ResponseStoreError

__all__ = ["CURSOR_MEMORY", "SCHEMA_VERSION", "SQLiteStore", "StorageError"]

#: The schema version this code writes; files of a newer version are refused.
SCHEMA_VERSION = 1

#: Marks a responsestore database (``PRAGMA application_id``; the ASCII of "rsst").
APPLICATION_ID = 0x72737374

#: How many removed records keep their place for cursors (the same as the memory store).
CURSOR_MEMORY = 10_000

#: Seconds between re-checks while ``wait``/``stream`` wait for a write made by another process.
POLL_INTERVAL = 0.05

DEFAULT_BUSY_TIMEOUT = 30.0

_SYNCHRONOUS = ("FULL", "NORMAL")
_STATUS_COLUMNS = {status: f"n_{status.value}" for status in ResponseStatus}
_STATUS_LIST = ", ".join(_STATUS_COLUMNS.values())
_TERMINAL = tuple(status.value for status in ResponseStatus if status.is_terminal)
_SCAN_BATCH = 64

#: Parsed records kept per store, keyed by ``(seq, version)`` (a record's JSON never changes without its version):
#: at most this many, and about this many bytes of JSON.
_CACHE_RECORDS = 4096
_CACHE_BYTES = 32 * 1024 * 1024
_BUSY_CODES = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (the sqlite3 module names them only from Python 3.11)


class StorageError(ResponseStoreError):
    """The database file cannot be used, or SQLite failed; the failed call changed nothing.

    Raised for a missing directory, a file that is not a responsestore database, a newer schema version, a
    closed store, and errors SQLite reports (disk full, I/O error, locked for longer than ``busy_timeout``).
    """


# ---------------------------------------------------------------------------------------------- the schema


def _migrate_to_1(conn: sqlite3.Connection) -> None:
    """Version 0 (an empty file) to 1: create every table and index."""
    statements = [
        """CREATE TABLE responses (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            owner TEXT NOT NULL,
            id TEXT NOT NULL,
            created_at REAL NOT NULL,
            status TEXT NOT NULL,
            terminal INTEGER NOT NULL,
            model TEXT NOT NULL,
            version INTEGER NOT NULL,
            ttl REAL,
            expires_at REAL,
            last_used INTEGER NOT NULL,
            event_count INTEGER NOT NULL DEFAULT 0,
            event_bytes INTEGER NOT NULL DEFAULT 0,
            record TEXT NOT NULL,
            UNIQUE (owner, id)
        )""",
        "CREATE INDEX responses_order ON responses (owner, created_at, seq)",
        "CREATE INDEX responses_expiry ON responses (expires_at) WHERE expires_at IS NOT NULL",
        "CREATE INDEX responses_recency ON responses (last_used) WHERE terminal = 1",
        """CREATE TABLE events (
            response INTEGER NOT NULL,
            number INTEGER NOT NULL,
            size INTEGER NOT NULL,
            event TEXT NOT NULL,
            PRIMARY KEY (response, number)
        ) WITHOUT ROWID""",
        """CREATE TABLE removed (
            n INTEGER PRIMARY KEY AUTOINCREMENT,
            owner TEXT NOT NULL,
            id TEXT NOT NULL,
            created_at REAL NOT NULL,
            seq INTEGER NOT NULL,
            UNIQUE (owner, id)
        )""",
        "CREATE TABLE counters (only INTEGER PRIMARY KEY CHECK (only = 0), "
        "created INTEGER NOT NULL, deleted INTEGER NOT NULL, evicted INTEGER NOT NULL, expired INTEGER NOT NULL, "
        "tick INTEGER NOT NULL, tombstones INTEGER NOT NULL, "
        + ", ".join(f"{column} INTEGER NOT NULL" for column in _STATUS_COLUMNS.values())
        + ")",
        f"INSERT INTO counters (only, created, deleted, evicted, expired, tick, tombstones, {_STATUS_LIST}) "
        + "VALUES (0, 0, 0, 0, 0, 0, 0"
        + ", 0" * len(_STATUS_COLUMNS)
        + ")",
    ]
    for statement in statements:
        conn.execute(statement)


# Statements built from the constant column names above (never from caller input).
_SQL_COUNTERS = f"SELECT created, deleted, evicted, expired, tick, tombstones, {_STATUS_LIST} FROM counters"  # noqa: S608
_SQL_CREATED = {
    status: f"UPDATE counters SET created = created + 1, {c} = {c} + 1, tombstones = tombstones - ?"  # noqa: S608
    for status, c in _STATUS_COLUMNS.items()
}
_SQL_MOVED = {
    (old, new): f"UPDATE counters SET {a} = {a} - 1, {b} = {b} + 1"  # noqa: S608
    for old, a in _STATUS_COLUMNS.items()
    for new, b in _STATUS_COLUMNS.items()
}
_SQL_UNLINKED = {
    (status.value, why): f"UPDATE counters SET {c} = {c} - 1, {why} = {why} + 1, tombstones = tombstones + 1"  # noqa: S608
    for status, c in _STATUS_COLUMNS.items()
    for why in ("deleted", "evicted", "expired")
}
_SCAN_SELECT = "SELECT created_at, seq, version, record FROM responses WHERE owner = ? "
_SCAN_VISIBLE = "AND (expires_at IS NULL OR expires_at > ?) "
#: ``(descending, from a cursor)`` -> the statement of one batch of a scan (keyset paging on the order index).
_SQL_SCAN = {
    (False, False): _SCAN_SELECT + _SCAN_VISIBLE + "ORDER BY created_at, seq LIMIT ?",
    (True, False): _SCAN_SELECT + _SCAN_VISIBLE + "ORDER BY created_at DESC, seq DESC LIMIT ?",
    (False, True): _SCAN_SELECT
    + "AND (created_at, seq) > (?, ?) "
    + _SCAN_VISIBLE
    + "ORDER BY created_at, seq LIMIT ?",
    (True, True): _SCAN_SELECT
    + "AND (created_at, seq) < (?, ?) "
    + _SCAN_VISIBLE
    + "ORDER BY created_at DESC, seq DESC LIMIT ?",
}

#: ``_MIGRATIONS[n]`` takes a database from schema version ``n`` to ``n + 1`` (inside one write transaction).
_MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migrate_to_1]


# ---------------------------------------------------------------------------------------------- encodings


def _owner_key(owner: str | None) -> str:
    """The stored form of an owner: ``""`` for ``None``, a prefixed string otherwise (never ``""``).

    Raises ``TypeError`` for anything else (``BaseStore.get`` relies on it).
    """
    if owner is None:
        return ""
    if not isinstance(owner, str):
        raise TypeError(f"owner must be a string or None, not {type(owner).__name__}")
    if owner.isascii() or _encodable(owner):
        return ":" + owner
    return "~" + json.dumps(owner)  # lone surrogates: escaped, ASCII only


def _owner_of(key: str) -> str | None:
    if key == "":
        return None
    if key[0] == ":":
        return key[1:]
    owner: str = json.loads(key[1:])
    return owner


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _json_text(value: Any) -> str:
    """Compact JSON text SQLite can store (strings with lone surrogates fall back to ASCII escapes)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if text.isascii() or _encodable(text):
        return text
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _load(text: str) -> ResponseRecord:
    return ResponseRecord.from_dict(json.loads(text))


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _BUSY_CODES
    message = str(exc)
    return "locked" in message or "busy" in message


def _check_synchronous(value: object) -> str:
    if isinstance(value, str) and value.upper() in _SYNCHRONOUS:
        return value.upper()
    raise InvalidArgument(f"synchronous must be 'FULL' or 'NORMAL', not {value!r}")


def _check_busy_timeout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(f"busy_timeout must be a number of seconds >= 0, not {type(value).__name__}")
    seconds = float(value)
    if not (math.isfinite(seconds) and 0 <= seconds <= 24 * 3600):
        raise InvalidArgument(f"busy_timeout must be from 0 to 86400 seconds, not {value!r}")
    return seconds


# ---------------------------------------------------------------------------------------------- threads

#: Connections inherited through ``fork``: never used again and never closed (closing them in the child could
#: disturb the parent's locks and WAL), just kept referenced.
_INHERITED: list[sqlite3.Connection] = []


class _ThreadState:
    """One thread's connection and where it stands in a transaction."""

    __slots__ = ("__weakref__", "conn", "depth", "touches", "wakes", "writing")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.depth = 0  # nesting of _reading/_writing; 0: no transaction
        self.writing = False  # the outermost transaction is a write
        self.touches: list[tuple[str, str]] = []  # (owner key, id) used inside a read, applied after it
        self.wakes: list[tuple[str | None, str]] = []  # removed records' waiters, woken after the commit


def _release(connections: dict[sqlite3.Connection, Any], mutex: threading.Lock, conn: sqlite3.Connection) -> None:
    """Close the connection of a thread that has ended."""
    with mutex:
        connections.pop(conn, None)
    with contextlib.suppress(sqlite3.Error):
        conn.close()


# ---------------------------------------------------------------------------------------------- the store


class SQLiteStore(BaseStore):
    """A durable store of OpenAI Responses API objects in one SQLite file, with the API of :class:`ResponseStore`.

    Several threads, and several processes (each with its own ``SQLiteStore`` on the same file), may use one
    database at once: every mutation is one atomic transaction, every ``list`` page one consistent snapshot, and
    a record written by one process is readable by every other as soon as the writing call returns. ``wait`` and
    ``stream`` notice writes made in this process at once and writes made by other processes within
    0.05 seconds (they re-check the file while waiting).

    Lifetime counts in :meth:`~responsestore.BaseStore.stats` (created, deleted, evicted, expired) count since
    the database was created. Close the store with :meth:`close` (or use it as a context manager); a closed store
    raises :class:`StorageError`.

    Args:
        path: The database file. Its directory must exist; the file is created when missing. A file that is not
            a responsestore database (another SQLite database, or not SQLite at all), or one written by a newer
            version of responsestore, is refused with :class:`StorageError` and left untouched.
        ttl, max_records, clock, max_chain_depth, max_events, max_event_bytes: As for
            :class:`ResponseStore`. Retention settings belong to each store object, not to the file: give every
            process the same ones.
        synchronous: ``"FULL"`` (the default): a call that returned has been written to disk and survives a
            power loss or an operating-system crash. ``"NORMAL"``: faster writes (no flush to disk at each
            commit, WAL mode); a power loss or OS crash may lose the last transactions, but the database stays
            consistent. Either way a crash of the process itself loses nothing that was acknowledged.
        busy_timeout: Seconds a write waits for the writes of other threads and processes before it fails with
            :class:`StorageError` and changes nothing (default 30).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        ttl: float | datetime.timedelta | None = DEFAULT_TTL,
        max_records: int | None = DEFAULT_MAX_RECORDS,
        clock: Clock = time.time,
        max_chain_depth: int = DEFAULT_MAX_CHAIN_DEPTH,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        synchronous: str = "FULL",
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> None:
        super().__init__(
            ttl=ttl,
            max_records=max_records,
            clock=clock,
            max_chain_depth=max_chain_depth,
            max_events=max_events,
            max_event_bytes=max_event_bytes,
        )
        self.synchronous = _check_synchronous(synchronous)
        self.busy_timeout = _check_busy_timeout(busy_timeout)
        self.path = _check_path(path)
        self._poll_interval = POLL_INTERVAL
        self._closed = False
        self._cache: dict[tuple[int, int], tuple[ResponseRecord, int]] = {}
        self._cache_bytes = 0
        self._cache_mutex = threading.Lock()
        self._setup_process()
        conn = self._connect()
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        self._adopt(conn)

    def _setup_process(self) -> None:
        self._pid = os.getpid()
        self._local = threading.local()
        self._write_mutex = threading.Lock()  # queues this process's writers
        self._connections_mutex = threading.Lock()
        self._connections: dict[sqlite3.Connection, Any] = {}  # -> the weakref.finalize closing it

    # ------------------------------------------------------------------ connections

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,  # transactions are explicit
                check_same_thread=False,  # used by one thread only; closed by close() or when the thread ends
                cached_statements=128,
            )
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open {self.path!r}: {exc}") from exc
        return conn

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")

    def _adopt(self, conn: sqlite3.Connection) -> _ThreadState:
        state = _ThreadState(conn)
        with self._connections_mutex:
            self._connections[conn] = weakref.finalize(
                state, _release, self._connections, self._connections_mutex, conn
            )
        self._local.state = state
        return state

    def _state(self) -> _ThreadState:
        """The calling thread's connection state (opening its connection on first use)."""
        if self._closed:
            raise StorageError(f"the store on {self.path!r} is closed")
        if self._pid != os.getpid():
            self._after_fork()
        state: _ThreadState | None = getattr(self._local, "state", None)
        if state is not None:
            return state
        conn = self._connect()
        try:
            self._retry_busy(lambda: self._configure(conn))
        except sqlite3.Error as exc:
            conn.close()
            raise StorageError(f"cannot use {self.path!r}: {exc}") from exc
        return self._adopt(conn)

    def _after_fork(self) -> None:
        """In a forked child: leave the parent's connections alone and open new ones from now on."""
        with contextlib.suppress(Exception):
            for conn, finalizer in self._connections.items():
                finalizer.detach()
                _INHERITED.append(conn)
        self._setup_process()

    def close(self) -> None:
        """Close every connection of this store; later calls raise :class:`StorageError`. Idempotent.

        Call it when no other thread is using the store. Threads waiting in ``wait``/``stream`` are woken and
        get :class:`StorageError`.
        """
        if self._closed:
            return
        self._closed = True
        if self._pid == os.getpid():
            with self._connections_mutex:
                connections = list(self._connections.items())
                self._connections.clear()
            for conn, finalizer in connections:
                finalizer.detach()
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
        self._waiters.wake_all()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<SQLiteStore {self.path!r} {state}>"

    # ------------------------------------------------------------------ opening a file

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Check that the file is a responsestore database we can use; create or migrate its schema."""
        try:
            self._retry_busy(lambda: self._check_file(conn))
            mode = self._retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            if str(mode).lower() != "wal":
                raise StorageError(f"cannot switch {self.path!r} to WAL mode (journal_mode stays {mode!r})")
            self._configure(conn)
            if self._check_file(conn) < SCHEMA_VERSION:
                self._retry_busy(lambda: conn.execute("BEGIN IMMEDIATE"))
                try:
                    version = self._check_file(conn)  # again: another process may have done it meanwhile
                    for step in range(version, SCHEMA_VERSION):
                        _MIGRATIONS[step](conn)
                    if version < SCHEMA_VERSION:
                        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    conn.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise StorageError(f"cannot use {self.path!r} as a responsestore database: {exc}") from exc

    def _check_file(self, conn: sqlite3.Connection) -> int:
        """The file's schema version (0: a new, empty database).

        Raises:
            StorageError: the file is another application's database or of a newer schema version.
        """
        application_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if application_id == 0 and version == 0:
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables == 0:
                return 0
        if application_id != APPLICATION_ID:
            raise StorageError(
                f"{self.path!r} is an SQLite database of another application (application_id={application_id}), "
                "not a responsestore database; it was left unchanged"
            )
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"{self.path!r} has schema version {version}, newer than the {SCHEMA_VERSION} this version of "
                "responsestore understands; upgrade responsestore (the file was left unchanged)"
            )
        if version < 1:
            raise StorageError(f"{self.path!r} is a responsestore database without a schema version")
        return int(version)

    def _retry_busy(self, action: Callable[[], Any]) -> Any:
        """Run ``action``, retrying while SQLite reports the database busy, up to ``busy_timeout`` in all.

        SQLite's busy handler already waits inside each attempt; this covers the few cases it does not (a WAL
        recovery or a journal-mode change in another process).
        """
        deadline = time.monotonic() + self.busy_timeout
        pause = 0.001
        while True:
            try:
                return action()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(pause)  # back-off before retrying a busy database (not a synchronisation)
            pause = min(pause * 2, 0.05)

    # ------------------------------------------------------------------ transactions

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        state = self._state()
        if state.depth:
            state.depth += 1
            try:
                yield state.conn
            finally:
                state.depth -= 1
            return
        conn = state.conn
        try:
            self._retry_busy(lambda: _begin_read(conn))
        except sqlite3.Error as exc:
            raise self._storage_error(exc) from exc
        state.depth = 1
        try:
            yield conn
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            state.touches.clear()
            _rollback(conn)
            raise self._storage_error(exc) from exc
        except BaseException as exc:
            _rollback(conn)
            if not isinstance(exc, ResponseStoreError):
                state.touches.clear()
            raise
        finally:
            state.depth = 0
            if state.touches:
                touches = state.touches
                state.touches = []
                self._write_touches(touches)

    @contextlib.contextmanager
    def _writing(self, relaxed: bool = False) -> Iterator[sqlite3.Connection]:
        """A write transaction; ``relaxed``: commit without a flush to disk even with ``synchronous="FULL"``."""
        state = self._state()
        if state.depth:
            if not state.writing:
                raise LockError("a write inside a read transaction of the same thread (an upgrade) is not allowed")
            state.depth += 1
            try:
                yield state.conn
            finally:
                state.depth -= 1
            return
        mutex = self._write_mutex
        if not mutex.acquire(timeout=self.busy_timeout):
            raise StorageError(
                f"another thread kept writing to {self.path!r} for more than busy_timeout={self.busy_timeout} "
                "seconds; nothing was changed"
            )
        try:
            with self._write_transaction(state, relaxed and self.synchronous != "NORMAL"):
                yield state.conn
        finally:
            mutex.release()
        wakes = state.wakes
        if wakes:
            state.wakes = []
            for key in wakes:
                self._waiters.wake(key)

    @contextlib.contextmanager
    def _write_transaction(self, state: _ThreadState, relax: bool) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` on the thread's connection (holding the process's write mutex)."""
        conn = state.conn
        try:
            if relax:
                conn.execute("PRAGMA synchronous = NORMAL")
            self._retry_busy(lambda: conn.execute("BEGIN IMMEDIATE"))
        except sqlite3.Error as exc:
            if relax:
                _restore_synchronous(conn, self.synchronous)
            raise self._storage_error(exc) from exc
        state.depth = 1
        state.writing = True
        try:
            yield
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            state.wakes.clear()
            _rollback(conn)
            raise self._storage_error(exc) from exc
        except BaseException:
            state.wakes.clear()
            _rollback(conn)
            raise
        finally:
            state.depth = 0
            state.writing = False
            if relax:
                _restore_synchronous(conn, self.synchronous)

    def _storage_error(self, exc: sqlite3.Error) -> StorageError:
        if self._closed:
            return StorageError(f"the store on {self.path!r} is closed")
        if _is_busy(exc):
            return StorageError(
                f"{self.path!r} stayed locked by another connection for more than busy_timeout="
                f"{self.busy_timeout} seconds ({exc}); nothing was changed"
            )
        return StorageError(f"SQLite error on {self.path!r}: {exc}; nothing was changed")

    def _query_one(self, sql: str, params: Sequence[Any]) -> Any:
        """One row of a query, in this thread's transaction if there is one, else on its own."""
        state = self._state()
        if state.depth:
            return state.conn.execute(sql, params).fetchone()
        conn = state.conn
        try:
            return self._retry_busy(lambda: conn.execute(sql, params).fetchone())
        except sqlite3.Error as exc:
            raise self._storage_error(exc) from exc

    def _record(self, seq: int, version: int, text: str) -> ResponseRecord:
        """The record stored as ``text`` in row ``seq`` at ``version``, parsed once and then cached."""
        key = (seq, version)
        hit = self._cache.get(key)
        if hit is not None:
            return hit[0]
        record = _load(text)
        size = len(text)
        if size <= _CACHE_BYTES // 64:
            with self._cache_mutex:
                cache = self._cache
                if key not in cache:
                    cache[key] = (record, size)
                    self._cache_bytes += size
                    while len(cache) > _CACHE_RECORDS or self._cache_bytes > _CACHE_BYTES:
                        self._cache_bytes -= cache.pop(next(iter(cache)))[1]
        return record

    # ------------------------------------------------------------------ primitives

    def _fetch(self, owner: str | None, id: str, touch: bool = False) -> ResponseRecord | None:
        if not isinstance(id, str):
            raise TypeError(f"id must be a string, not {type(id).__name__}")
        key = _owner_key(owner)
        row = self._query_one(
            "SELECT seq, version, record, expires_at, terminal, last_used, (SELECT tick FROM counters) "
            "FROM responses WHERE owner = ? AND id = ?",
            (key, id),
        )
        if row is None:
            return None
        seq, version, text, expires_at, terminal, last_used, tick = row
        if expires_at is not None and expires_at <= self._now():
            return None
        record = self._record(seq, version, text)
        # Only finished records compete for eviction, and finishing marks a record as used anyway; a record that
        # is already the most recently used stays so. Either way marking it would change nothing.
        if touch and terminal and last_used != tick:
            self._touch_keys_now_or_later([(key, id)])
        return record

    def _touch_keys_now_or_later(self, keys: list[tuple[str, str]]) -> None:
        state = self._state()
        if state.writing:
            self._touch_keys(state.conn, keys)
        elif state.depth:
            state.touches.extend(keys)
        else:
            self._write_touches(keys)

    def _write_touches(self, keys: list[tuple[str, str]]) -> None:
        """Mark records as used in a transaction of its own, not flushed to disk by itself.

        A power loss may forget that a record was read (the eviction order is all it affects); the next flushed
        commit makes it durable. With ``synchronous="FULL"`` this keeps a ``get`` from waiting for the disk.
        """
        with self._writing(relaxed=True) as conn:
            self._touch_keys(conn, keys)

    def _touch_keys(self, conn: sqlite3.Connection, keys: list[tuple[str, str]]) -> None:
        first = self._take_ticks(conn, len(keys))
        conn.executemany(
            "UPDATE responses SET last_used = ? WHERE owner = ? AND id = ? AND terminal = 1",
            [(first + i, owner, id) for i, (owner, id) in enumerate(keys)],
        )

    def _take_ticks(self, conn: sqlite3.Connection, count: int) -> int:
        """Reserve ``count`` consecutive recency ticks; return the first."""
        tick: int = conn.execute("SELECT tick FROM counters").fetchone()[0]
        conn.execute("UPDATE counters SET tick = ?", (tick + count,))
        return tick + 1

    def _touch(self, records: Iterable[ResponseRecord]) -> None:
        keys = [(_owner_key(record.owner), record.id) for record in records if record.is_terminal]
        if keys:
            self._touch_keys_now_or_later(keys)

    def _refresh(self, records: Iterable[ResponseRecord], now: float) -> None:
        conn = self._state().conn
        keys = [(_owner_key(record.owner), record.id) for record in records]
        if not keys:
            return
        first = self._take_ticks(conn, len(keys))
        conn.executemany(
            "UPDATE responses SET expires_at = CASE WHEN ttl IS NULL THEN NULL ELSE ? + ttl END, last_used = ? "
            "WHERE owner = ? AND id = ?",
            [(now, first + i, owner, id) for i, (owner, id) in enumerate(keys)],
        )

    def _insert(self, record: ResponseRecord, ttl: float | None) -> None:
        conn = self._state().conn
        key = _owner_key(record.owner)
        stale = conn.execute(
            "SELECT seq, created_at, status FROM responses WHERE owner = ? AND id = ?", (key, record.id)
        ).fetchone()
        if stale is not None:  # expired, not yet swept: it goes now, as an expiry
            self._unlink(conn, (stale[0], key, record.id, stale[1], stale[2]), "expired")
        tick = self._take_ticks(conn, 1)
        conn.execute(
            "INSERT INTO responses (owner, id, created_at, status, terminal, model, version, ttl, expires_at, "
            "last_used, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                record.id,
                record.created_at,
                record.status.value,
                int(record.is_terminal),
                record.model,
                record.version,
                ttl,
                None if ttl is None else record.created_at + ttl,
                tick,
                _json_text(record.to_dict()),
            ),
        )
        untombed = conn.execute("DELETE FROM removed WHERE owner = ? AND id = ?", (key, record.id)).rowcount
        conn.execute(_SQL_CREATED[record.status], (untombed,))

    def _replace(self, old: ResponseRecord, new: ResponseRecord) -> None:
        conn = self._state().conn
        tick = self._take_ticks(conn, 1)
        conn.execute(
            "UPDATE responses SET status = ?, terminal = ?, model = ?, version = ?, last_used = ?, record = ? "
            "WHERE owner = ? AND id = ?",
            (
                new.status.value,
                int(new.is_terminal),
                new.model,
                new.version,
                tick,
                _json_text(new.to_dict()),
                _owner_key(new.owner),
                new.id,
            ),
        )
        if old.status is not new.status:
            conn.execute(_SQL_MOVED[old.status, new.status])

    def _remove(self, record: ResponseRecord) -> None:
        conn = self._state().conn
        key = _owner_key(record.owner)
        seq, created_at, status = conn.execute(
            "SELECT seq, created_at, status FROM responses WHERE owner = ? AND id = ?", (key, record.id)
        ).fetchone()
        self._unlink(conn, (seq, key, record.id, created_at, status), "deleted")

    def _unlink(self, conn: sqlite3.Connection, row: tuple[int, str, str, float, str], why: str) -> None:
        """Remove a stored record and its events, leave its tombstone, and count it as ``why``.

        ``row`` is ``(seq, owner key, id, created_at, status)``; ``why`` is deleted, evicted or expired.
        """
        seq, key, id, created_at, status = row
        conn.execute("DELETE FROM responses WHERE seq = ?", (seq,))
        conn.execute("DELETE FROM events WHERE response = ?", (seq,))
        conn.execute("INSERT INTO removed (owner, id, created_at, seq) VALUES (?, ?, ?, ?)", (key, id, created_at, seq))
        conn.execute(_SQL_UNLINKED[status, why])
        tombstones = conn.execute("SELECT tombstones FROM counters").fetchone()[0]
        if tombstones > CURSOR_MEMORY:
            trimmed = conn.execute(
                "DELETE FROM removed WHERE n IN (SELECT n FROM removed ORDER BY n LIMIT ?)",
                (tombstones - CURSOR_MEMORY,),
            ).rowcount
            conn.execute("UPDATE counters SET tombstones = tombstones - ?", (trimmed,))
        self._state().wakes.append((_owner_of(key), id))

    def _sweep(self, limit: int | None) -> int:
        now = self._now()  # validated: a broken clock must refuse the write before anything is removed
        conn = self._state().conn
        sql = "SELECT seq, owner, id, created_at, status FROM responses WHERE expires_at <= ? ORDER BY expires_at, seq"
        if limit is None:
            rows = conn.execute(sql, (now,)).fetchall()
        else:
            rows = conn.execute(sql + " LIMIT ?", (now, limit)).fetchall()
        for row in rows:
            self._unlink(conn, row, "expired")
        return len(rows)

    def _evict_one(self, protected: Collection[tuple[str | None, str]]) -> ResponseRecord | None:
        conn = self._state().conn
        spared = {(_owner_key(owner), id) for owner, id in protected}
        # Among the len(spared) + 1 least recently used finished records, at least one is not protected.
        rows = conn.execute(
            "SELECT seq, owner, id, created_at, status, version, record FROM responses WHERE terminal = 1 "
            "ORDER BY last_used, seq LIMIT ?",
            (len(spared) + 1,),
        ).fetchall()
        for seq, key, id, created_at, status, version, text in rows:
            if (key, id) in spared:
                continue
            self._unlink(conn, (seq, key, id, created_at, status), "evicted")
            return self._record(seq, version, text)
        return None

    def _scan(self, owner: str | None, cursor: str | None, descending: bool) -> Iterator[ResponseRecord]:
        conn = self._state().conn
        key = _owner_key(owner)
        start: tuple[float, int] | None = None
        if cursor is not None:
            row = conn.execute("SELECT created_at, seq FROM responses WHERE owner = ? AND id = ?", (key, cursor))
            found = row.fetchone()
            if found is None:
                found = conn.execute(
                    "SELECT created_at, seq FROM removed WHERE owner = ? AND id = ?", (key, cursor)
                ).fetchone()
            if found is None:
                raise unknown_cursor(cursor)
            start = (found[0], found[1])
        return self._scan_rows(conn, key, start, descending)

    def _scan_rows(
        self, conn: sqlite3.Connection, key: str, start: tuple[float, int] | None, descending: bool
    ) -> Iterator[ResponseRecord]:
        now = self._now()
        batch = 8
        while True:
            if start is None:
                sql = _SQL_SCAN[descending, False]
                params: tuple[Any, ...] = (key, now, batch)
            else:
                sql = _SQL_SCAN[descending, True]
                params = (key, start[0], start[1], now, batch)
            rows = conn.execute(sql, params).fetchall()
            for _, seq, version, text in rows:
                yield self._record(seq, version, text)
            if len(rows) < batch:
                return
            start = (rows[-1][0], rows[-1][1])
            batch = min(batch * 4, _SCAN_BATCH * 4)

    def _event_log_size(self, record: ResponseRecord) -> tuple[int, int]:
        conn = self._state().conn
        count, size = conn.execute(
            "SELECT event_count, event_bytes FROM responses WHERE owner = ? AND id = ?",
            (_owner_key(record.owner), record.id),
        ).fetchone()
        return int(count), int(size)

    def _append_event(self, record: ResponseRecord, event: FrozenDict, size: int) -> None:
        conn = self._state().conn
        key = _owner_key(record.owner)
        (seq,) = conn.execute("SELECT seq FROM responses WHERE owner = ? AND id = ?", (key, record.id)).fetchone()
        conn.execute(
            "INSERT INTO events (response, number, size, event) VALUES (?, ?, ?, ?)",
            (seq, event["sequence_number"], size, _json_text(thaw(event))),
        )
        conn.execute(
            "UPDATE responses SET event_count = event_count + 1, event_bytes = event_bytes + ? WHERE seq = ?",
            (size, seq),
        )

    def _read_events(self, record: ResponseRecord, after: int) -> tuple[FrozenDict, ...]:
        conn = self._state().conn
        rows = conn.execute(
            "SELECT e.event FROM events e JOIN responses r ON e.response = r.seq "
            "WHERE r.owner = ? AND r.id = ? AND e.number > ? ORDER BY e.number",
            (_owner_key(record.owner), record.id, after),
        ).fetchall()
        return tuple(freeze_object(json.loads(text), "event") for (text,) in rows)

    def _stored_count(self, conn: sqlite3.Connection) -> int:
        return sum(conn.execute(_SQL_COUNTERS).fetchone()[6:])

    def _count(self) -> int:
        now = self._now()
        conn = self._state().conn
        pending = conn.execute("SELECT count(*) FROM responses WHERE expires_at <= ?", (now,)).fetchone()[0]
        return self._stored_count(conn) - int(pending)

    def _stats(self) -> StoreStats:
        now = self._now()
        conn = self._state().conn
        row = conn.execute(_SQL_COUNTERS).fetchone()
        created, deleted, evicted, expired = row[:4]
        by_status = {status.value: count for status, count in zip(_STATUS_COLUMNS, row[6:], strict=True)}
        pending = conn.execute(
            "SELECT status, count(*) FROM responses WHERE expires_at <= ? GROUP BY status", (now,)
        ).fetchall()
        for status, count in pending:
            by_status[status] -= count
            expired += count
        return StoreStats(
            records=sum(by_status.values()),
            by_status=FrozenDict(by_status),
            created=created,
            deleted=deleted,
            evicted=evicted,
            expired=expired,
        )

    def _check(self) -> None:
        """Check every invariant, raising ``AssertionError``.

        The file's integrity; rows agree with their JSON and the cache with the rows; counters and tombstones
        add up; event numbers are consecutive.
        """
        state = self._state()
        _invariant(state.depth == 0, "a transaction was left open")
        _invariant(not state.touches, "touches were left unapplied")
        _invariant(not state.wakes, "wake-ups were left pending")
        conn = state.conn
        _invariant(conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)], "integrity_check failed")
        _invariant(conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal", "not in WAL mode")
        _invariant(conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION, "wrong schema version")
        with self._reading():
            counters = conn.execute(_SQL_COUNTERS).fetchall()
            _invariant(len(counters) == 1, "the counters row is missing or doubled")
            created, deleted, evicted, expired, tick, tombstones = counters[0][:6]
            status_counts = dict(zip(_STATUS_COLUMNS, counters[0][6:], strict=True))
            rows = conn.execute(
                "SELECT seq, owner, id, created_at, status, terminal, model, version, ttl, expires_at, last_used, "
                "event_count, event_bytes, record FROM responses"
            ).fetchall()
            (top,) = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'responses'").fetchone() or (0,)
            by_status = dict.fromkeys(ResponseStatus, 0)
            live: set[tuple[str, str]] = set()
            seqs: set[int] = set()
            for row in rows:
                self._check_row(conn, row, tick, top)
                record = _load(row[-1])
                live.add((row[1], row[2]))
                seqs.add(row[0])
                by_status[record.status] += 1
            _invariant(by_status == status_counts, "status counters disagree with the records")
            _invariant(created - deleted - evicted - expired == len(rows), "lifetime counters do not add up")
            orphans = conn.execute(
                "SELECT count(*) FROM events WHERE response NOT IN (SELECT seq FROM responses)"
            ).fetchone()[0]
            _invariant(orphans == 0, "events outlived their response")
            removed = conn.execute("SELECT owner, id, seq FROM removed").fetchall()
            _invariant(len(removed) == tombstones, "tombstones miscounted")
            _invariant(tombstones <= CURSOR_MEMORY, "tombstones unbounded")
            _invariant(not ({(key, id) for key, id, _ in removed} & live), "a live record is also removed")
            _invariant(not ({seq for _, _, seq in removed} & seqs), "a tombstone shares a live record's seq")
            stats = self._stats()
            _invariant(stats.records == sum(stats.by_status.values()), "stats.by_status does not add up")
            _invariant(
                stats.records == stats.created - stats.deleted - stats.evicted - stats.expired,
                "stats do not add up",
            )
            _invariant(stats.records == self._count(), "stats and len disagree")

    def _check_row(self, conn: sqlite3.Connection, row: tuple[Any, ...], tick: int, top: int) -> None:
        seq, key, id, created_at, status, terminal, model, version, ttl, expires_at, used, count, size, text = row
        record = _load(text)
        cached = self._cache.get((seq, version))
        _invariant(cached is None or cached[0] == record, f"the cache holds a stale copy of {id!r}")
        _invariant((_owner_key(record.owner), record.id) == (key, id), f"row {seq} holds another record")
        _invariant(
            (record.created_at, record.status.value, int(record.is_terminal), record.model, record.version)
            == (created_at, status, terminal, model, version),
            f"the columns of {id!r} disagree with its JSON",
        )
        _invariant(record.version >= 1, f"{id!r} has version {record.version}")
        _invariant(
            (record.completed_at is not None) == (record.status is ResponseStatus.COMPLETED),
            f"completed_at does not follow the status of {id!r}",
        )
        _invariant((ttl is None) == (expires_at is None), f"{id!r} has a ttl without an expiry or the reverse")
        _invariant(0 <= used <= tick, f"{id!r} was used at tick {used}, after the counter {tick}")
        _invariant(0 < seq <= top, f"{id!r} has seq {seq} outside 1..{top}")
        numbers = conn.execute("SELECT number, size FROM events WHERE response = ? ORDER BY number", (seq,)).fetchall()
        _invariant([number for number, _ in numbers] == list(range(count)), f"event numbers of {id!r}")
        _invariant(sum(s for _, s in numbers) == size, f"event bytes of {id!r}")
        _invariant(size <= self.event_limits.max_bytes, f"event log of {id!r} over max_event_bytes")
        _invariant(count <= self.event_limits.max_events, f"event log of {id!r} over max_events")


def _invariant(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _begin_read(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN")
    try:
        conn.execute("SELECT tick FROM counters").fetchone()  # takes the snapshot now
    except BaseException:
        _rollback(conn)
        raise


def _restore_synchronous(conn: sqlite3.Connection, synchronous: str) -> None:
    with contextlib.suppress(sqlite3.Error):
        conn.execute(f"PRAGMA synchronous = {synchronous}")


def _rollback(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        if conn.in_transaction:
            conn.execute("ROLLBACK")


def _check_path(path: object) -> str:
    """An absolute path for the database file.

    Raises:
        InvalidArgument: ``path`` is not a path, or is an in-memory name.
        StorageError: its directory does not exist, or it names a directory.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidArgument(f"path must be a str or os.PathLike, not {type(path).__name__}")
    text = os.fspath(path)
    if not isinstance(text, str):
        raise InvalidArgument(f"path must be a text path, not {type(text).__name__}")
    if text in ("", ":memory:") or text.startswith("file:"):
        raise InvalidArgument(
            f"path must name a file, not {text!r} (use ResponseStore for a store in memory; URIs are not accepted)"
        )
    absolute = os.path.abspath(text)
    directory = os.path.dirname(absolute)
    if not os.path.isdir(directory):
        raise StorageError(f"cannot open {absolute!r}: the directory {directory!r} does not exist")
    if os.path.isdir(absolute):
        raise StorageError(f"cannot open {absolute!r}: it is a directory")
    return absolute
