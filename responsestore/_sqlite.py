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

Operations: every atomic storage operation of the contract is one SQLite transaction or one statement. A write
runs in ``BEGIN IMMEDIATE`` and commits only if what it was decided on still holds (the version and event count
in its ``WHERE``), so it is atomic across threads and processes; a process-local mutex queues this process's
writers so that only other processes meet SQLite's busy handler. A ``get`` is one ``SELECT`` (autocommit, no
transaction); a page, a record with its events, and stats each read in one deferred transaction (a consistent
snapshot; WAL readers never wait for writers); a chain is one recursive ``SELECT``.

Recency without writes on reads: a read that uses a finished record (``get``, ``input_items``, ``chain``) queues
its mark in this process (a bounded log of :data:`TOUCH_LOG` marks) and the next write of this process (or
``close``) writes the queued marks first, in order, in its own transaction. So reads never write (they work on a
full disk or a read-only moment), eviction order within a process is exactly least-recently-used, and another
process learns of this process's reads at its next write. If that write fails, the marks wait for the next one.

Each thread has its own connection, used under a per-connection mutex, so :meth:`SQLiteStore.close` can wait for
a call in flight instead of closing a connection another thread is inside.
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
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from ._checks import describe
from ._contract import CURSOR_MEMORY, DEFAULT_MAX_CHAIN_DEPTH, TOUCH_LOG, BaseStore, Clock, Stored, cursor_memory
from ._events import DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_EVENTS
from ._json import FrozenDict, freeze_object, thaw
from ._owners import encodable as _encodable
from ._owners import owner_key as _owner_key
from ._owners import owner_of as _owner_of
from ._paging import Page, PageQuery, paginate_records, unknown_cursor
from ._records import ResponseRecord, ResponseStatus
from ._retention import DEFAULT_MAX_RECORDS, DEFAULT_TTL, SWEEP_BATCH, StoreStats
from .errors import InvalidArgument, ResponseExists, ResponseStoreError, StorageError, StoreFull

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

_T = TypeVar("_T")
_MAX_INT64 = 2**63 - 1

#: The schema version this code writes; files of a newer version are refused.
SCHEMA_VERSION = 1

#: Marks a responsestore database (``PRAGMA application_id``; the ASCII of "rsst").
APPLICATION_ID = 0x72737374

#: Seconds between re-checks while ``wait``/``stream`` wait for a write made by another process.
POLL_INTERVAL = 0.05

DEFAULT_BUSY_TIMEOUT = 30.0

_SYNCHRONOUS = ("FULL", "NORMAL")
_STATUS_COLUMNS = {status: f"n_{status.value}" for status in ResponseStatus}
_STATUS_LIST = ", ".join(_STATUS_COLUMNS.values())
_TERMINAL = tuple(status.value for status in ResponseStatus if status.is_terminal)
_SCAN_BATCH = 64

#: Parsed records kept per store, one per row (the newest version seen; a record's JSON never changes without its
#: version): at most this many, and about this many bytes of JSON.
_CACHE_RECORDS = 4096
_CACHE_BYTES = 32 * 1024 * 1024
_BUSY_CODES = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (the sqlite3 module names them only from Python 3.11)


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
    status: f"UPDATE counters SET created = created + 1, {c} = {c} + 1, tombstones = tombstones - ?, "  # noqa: S608
    f"tick = tick + 1 RETURNING tick, {_STATUS_LIST}"
    for status, c in _STATUS_COLUMNS.items()
}
_SQL_MOVED = {
    (old, new): (
        f"UPDATE counters SET {a} = {a} - 1, {b} = {b} + 1, tick = tick + 1"  # noqa: S608
        if old is not new
        else "UPDATE counters SET tick = tick + 1"
    )
    for old, a in _STATUS_COLUMNS.items()
    for new, b in _STATUS_COLUMNS.items()
}
_SQL_UNLINKED = {
    (status.value, why): f"UPDATE counters SET {c} = {c} - 1, {why} = {why} + 1, "  # noqa: S608
    "tombstones = tombstones + 1 RETURNING tombstones"
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
    raise InvalidArgument(f"synchronous must be 'FULL' or 'NORMAL', not {describe(value)}")


def _check_busy_timeout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(f"busy_timeout must be a number of seconds >= 0, not {type(value).__name__}")
    seconds = float(value)
    if not (math.isfinite(seconds) and 0 <= seconds <= 24 * 3600):
        raise InvalidArgument(f"busy_timeout must be from 0 to 86400 seconds, not {describe(value)}")
    return seconds


# ---------------------------------------------------------------------------------------------- threads

#: Connections inherited through ``fork``: never used again and never closed (closing them in the child could
#: disturb the parent's locks and WAL), just kept referenced.
_INHERITED: list[sqlite3.Connection] = []


class _ThreadState:
    """One thread's connection, the mutex that guards its use, and what its current write leaves to do."""

    __slots__ = ("__weakref__", "cached", "conn", "dead", "mutex", "wakes")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.mutex = threading.Lock()  # held while the connection is in use; close() takes it to close it
        self.dead = False  # closed by close()
        self.wakes: list[tuple[str | None, str]] = []  # removed records' waiters, woken after the commit
        self.cached: list[tuple[int, int, ResponseRecord | None]] = []  # (seq, version, record or None: gone)


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
        self._closed = False
        self._cache: dict[int, tuple[int, ResponseRecord, int]] = {}  # seq -> (version, record, size)
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
        self._connections: dict[sqlite3.Connection, tuple[Any, weakref.ref[_ThreadState]]] = {}  # -> (finalizer, state)
        self._touches: deque[tuple[str, str]] = deque(maxlen=TOUCH_LOG)  # (owner key, id) read since last write

    # ------------------------------------------------------------------ connections

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,  # transactions are explicit
                check_same_thread=False,  # used by one thread at a time; closed by close() or when the thread ends
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
            finalizer = weakref.finalize(state, _release, self._connections, self._connections_mutex, conn)
            self._connections[conn] = (finalizer, weakref.ref(state))
        self._local.state = state
        return state

    def _state(self) -> _ThreadState:
        """The calling thread's connection state (opening its connection on first use)."""
        if self._closed:
            raise self._closed_error()
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

    def _closed_error(self) -> StorageError:
        return StorageError(f"the store on {self.path!r} is closed")

    def _after_fork(self) -> None:
        """In a forked child: leave the parent's connections alone and open new ones from now on."""
        with contextlib.suppress(Exception):
            for conn, (finalizer, _) in self._connections.items():
                finalizer.detach()
                _INHERITED.append(conn)
        self._setup_process()

    def close(self) -> None:
        """Close every connection of this store; later calls raise :class:`StorageError`. Idempotent.

        Safe at any moment: a call in flight on another thread finishes first (or raises
        :class:`StorageError`), and threads waiting in ``wait``/``stream`` are woken and get
        :class:`StorageError`. Recency marks of reads not yet written are written first, if the file allows.
        """
        if self._closed:
            return
        if self._pid == os.getpid() and self._touches:
            with contextlib.suppress(StorageError):
                self._write(lambda conn: None)  # writes the queued recency marks
        self._closed = True
        if self._pid == os.getpid():
            with self._connections_mutex:
                connections = list(self._connections.items())
                self._connections.clear()
            for conn, (finalizer, state_ref) in connections:
                state = state_ref()  # a strong reference: the thread's state cannot die while we close it
                if state is None or finalizer.detach() is None:
                    # Its thread has ended: the finalizer closes (or has closed) the connection, in whichever
                    # thread let go of the state last. Closing it here too could close it twice at once.
                    continue
                with state.mutex:  # waits for a call in flight on that connection
                    state.dead = True
                    with contextlib.suppress(sqlite3.Error):
                        conn.close()
        self._waiters.wake_all()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    @property
    def poll_interval(self) -> float:
        """Seconds between re-checks while waiting: writes made by other processes wake nobody here."""
        return POLL_INTERVAL

    def __enter__(self) -> SQLiteStore:
        return self

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<SQLiteStore {self.path!r} {state}>"

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> SQLiteStore:
        """``sqlite:///PATH``: the file ``PATH``, everything after the third slash taken literally.

        Raises:
            InvalidArgument: the URL does not have three slashes or names no file.
            StorageError: the file cannot be used.
        """
        rest = url.partition("://")[2]
        if not rest.startswith("/"):
            raise InvalidArgument(
                f"a SQLite URL is 'sqlite:///PATH' (three slashes; four for an absolute path), not {url[:200]!r}"
            )
        path = rest[1:]
        if not path:
            raise InvalidArgument(f"{url[:200]!r} names no file: use 'sqlite:///PATH'")
        return cls(path, **kwargs)

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
        except (ValueError, TypeError, IndexError) as exc:  # what SQLite read back is not what any valid file holds
            raise self._damaged("its header", exc) from exc

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

    def _storage_error(self, exc: sqlite3.Error) -> StorageError:
        if self._closed:
            return self._closed_error()
        if _is_busy(exc):
            return StorageError(
                f"{self.path!r} stayed locked by another connection for more than busy_timeout="
                f"{self.busy_timeout} seconds ({exc}); nothing was changed"
            )
        return StorageError(f"SQLite error on {self.path!r}: {exc}; nothing was changed")

    def _damaged(self, what: str, exc: BaseException) -> StorageError:
        return StorageError(f"{self.path!r} is damaged: {what} cannot be read ({type(exc).__name__}: {exc})"[:500])

    def _query(self, action: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``action`` on this thread's connection, outside any transaction (each statement is atomic)."""
        state = self._state()
        with state.mutex:
            if state.dead:
                raise self._closed_error()
            conn = state.conn
            try:
                return self._retry_busy(lambda: action(conn))  # type: ignore[no-any-return]
            except sqlite3.Error as exc:
                raise self._storage_error(exc) from exc
            except ResponseStoreError:
                raise
            except (ValueError, TypeError, KeyError, IndexError) as exc:  # a row no valid file holds
                raise self._damaged("a stored row", exc) from exc

    def _snapshot_read(self, action: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``action`` in one read transaction: a consistent snapshot (WAL readers never wait for writers)."""

        def in_snapshot(conn: sqlite3.Connection) -> _T:
            _begin_read(conn)
            try:
                return action(conn)
            finally:
                _rollback(conn)  # a read has nothing to commit

        return self._query(in_snapshot)

    def _write(self, action: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``action`` in one write transaction (``BEGIN IMMEDIATE``), first writing queued recency marks.

        The whole of ``action`` commits or nothing does. Waiters of records removed by it are woken after the
        commit.
        """
        state = self._state()
        mutex = self._write_mutex
        if not mutex.acquire(timeout=self.busy_timeout):
            raise StorageError(
                f"another thread kept writing to {self.path!r} for more than busy_timeout={self.busy_timeout} "
                "seconds; nothing was changed"
            )
        touches: list[tuple[str, str]] = []
        try:
            with state.mutex:
                if state.dead:
                    raise self._closed_error()
                conn = state.conn
                try:
                    self._retry_busy(lambda: conn.execute("BEGIN IMMEDIATE"))
                except sqlite3.Error as exc:
                    raise self._storage_error(exc) from exc
                try:
                    while self._touches:
                        touches.append(self._touches.popleft())
                    if touches:
                        self._apply_touches(conn, touches)
                    result = action(conn)
                    conn.execute("COMMIT")
                except BaseException as exc:
                    state.wakes.clear()
                    state.cached.clear()
                    _rollback(conn)
                    if touches:  # not written: keep them for the next write, in order
                        self._touches.extendleft(reversed(touches))
                    if isinstance(exc, sqlite3.Error):
                        raise self._storage_error(exc) from exc
                    if isinstance(exc, (ValueError, TypeError, KeyError, IndexError)) and not isinstance(
                        exc, ResponseStoreError
                    ):
                        raise self._damaged("a stored row", exc) from exc
                    raise
        finally:
            mutex.release()
        self._commit_cache(state)
        wakes = state.wakes
        if wakes:
            state.wakes = []
            for owner, id in wakes:
                self._notify(owner, id)
        return result

    def _apply_touches(self, conn: sqlite3.Connection, keys: list[tuple[str, str]]) -> None:
        (last,) = conn.execute("UPDATE counters SET tick = tick + ? RETURNING tick", (len(keys),)).fetchone()
        first = last - len(keys) + 1
        conn.executemany(
            "UPDATE responses SET last_used = ? WHERE owner = ? AND id = ? AND terminal = 1",
            [(first + i, owner, id) for i, (owner, id) in enumerate(keys)],
        )

    # ------------------------------------------------------------------ the parse cache

    def _record(self, seq: int, version: int, text: str) -> ResponseRecord:
        """The record stored as ``text`` in row ``seq`` at ``version``, parsed once and then cached.

        The cache holds at most one record per row, the newest version seen.
        """
        hit = self._cache.get(seq)
        if hit is not None and hit[0] == version:
            return hit[1]
        try:
            record = _load(text)
        except (ValueError, TypeError, KeyError, ResponseStoreError) as exc:
            raise self._damaged(f"the record in row {seq}", exc) from exc
        self._remember(seq, version, record, len(text))
        return record

    def _remember(self, seq: int, version: int, record: ResponseRecord, size: int) -> None:
        if size > _CACHE_BYTES // 64:
            return
        with self._cache_mutex:
            cache = self._cache
            old = cache.pop(seq, None)
            if old is not None:
                if old[0] > version:  # another thread cached a newer version meanwhile
                    cache[seq] = old
                    return
                self._cache_bytes -= old[2]
            cache[seq] = (version, record, size)
            self._cache_bytes += size
            while len(cache) > _CACHE_RECORDS or self._cache_bytes > _CACHE_BYTES:
                self._cache_bytes -= cache.pop(next(iter(cache)))[2]

    def _commit_cache(self, state: _ThreadState) -> None:
        """After a commit: cache the records it wrote, forget the rows it removed."""
        cached = state.cached
        if not cached:
            return
        state.cached = []
        for seq, version, record in cached:
            if record is None:
                with self._cache_mutex:
                    old = self._cache.pop(seq, None)
                    if old is not None:
                        self._cache_bytes -= old[2]
            else:
                self._remember(seq, version, record, 0)

    # ------------------------------------------------------------------ atomic storage operations

    def _row(self, owner: str | None, id: str) -> Any:
        key = _owner_key(owner)
        return self._query(
            lambda conn: conn.execute(
                "SELECT seq, version, record, expires_at, terminal, event_count, event_bytes "
                "FROM responses WHERE owner = ? AND id = ?",
                (key, id),
            ).fetchone()
        )

    def _visible_row(self, owner: str | None, id: str) -> Any:
        if not _encodable(id):
            return None  # no stored id has a lone surrogate: ids are checked at create
        row = self._row(owner, id)
        if row is None:
            return None
        expires_at = row[3]
        if expires_at is not None and expires_at <= self._now():
            return None
        return row

    def _get(self, owner: str | None, id: str) -> ResponseRecord | None:
        row = self._visible_row(owner, id)
        if row is None:
            return None
        record = self._record(row[0], row[1], row[2])
        if row[4]:  # only finished records compete for eviction
            self._touches.append((_owner_key(owner), id))
        return record

    def _peek(self, owner: str | None, id: str) -> ResponseRecord | None:
        row = self._visible_row(owner, id)
        return None if row is None else self._record(row[0], row[1], row[2])

    def _read(self, owner: str | None, id: str) -> Stored | None:
        row = self._visible_row(owner, id)
        if row is None:
            return None
        return Stored(self._record(row[0], row[1], row[2]), int(row[5]), int(row[6]))

    def _chain(self, owner: str | None, id: str, limit: int) -> list[ResponseRecord]:
        if not _encodable(id):
            return []
        key = _owner_key(owner)
        now = self._now()
        # One statement, so one snapshot: follow previous_response_id links inside SQLite.
        rows = self._query(
            lambda conn: conn.execute(
                "WITH RECURSIVE chain(n, seq, version, record, previous) AS ("
                " SELECT 1, seq, version, record, json_extract(record, '$.previous_response_id') FROM responses"
                " WHERE owner = ? AND id = ? AND (expires_at IS NULL OR expires_at > ?)"
                " UNION ALL"
                " SELECT chain.n + 1, r.seq, r.version, r.record, json_extract(r.record, '$.previous_response_id')"
                " FROM chain JOIN responses r ON r.owner = ? AND r.id = chain.previous"
                " WHERE chain.n < ? AND (r.expires_at IS NULL OR r.expires_at > ?)"
                ") SELECT seq, version, record FROM chain ORDER BY n",
                (key, id, now, key, limit, now),
            ).fetchall()
        )
        chain: list[ResponseRecord] = []
        seen: set[str] = set()
        for seq, version, text in rows:
            record = self._record(seq, version, text)
            if record.id in seen:
                break
            seen.add(record.id)
            chain.append(record)
        return chain

    def _touch(self, records: Sequence[ResponseRecord]) -> None:
        for record in records:
            if record.is_terminal:
                self._touches.append((_owner_key(record.owner), record.id))

    def _put_new(self, record: ResponseRecord, ttl: float | None, keep: Sequence[ResponseRecord]) -> bool:
        key = _owner_key(record.owner)
        text = _json_text(record.to_dict())
        max_records = self.retention.max_records

        def put(conn: sqlite3.Connection) -> bool:
            now = self._now()
            self._sweep_rows(conn, now, SWEEP_BATCH)
            stale = conn.execute(
                "SELECT seq, created_at, status, expires_at FROM responses WHERE owner = ? AND id = ?",
                (key, record.id),
            ).fetchone()
            if stale is not None:
                if stale[3] is None or stale[3] > now:
                    raise ResponseExists(record.id)
                self._unlink(conn, (stale[0], key, record.id, stale[1], stale[2]), "expired")
            if keep and not self._refresh(conn, keep, record.created_at, now):
                return False
            untombed = conn.execute("DELETE FROM removed WHERE owner = ? AND id = ?", (key, record.id)).rowcount
            counters = conn.execute(_SQL_CREATED[record.status], (untombed,)).fetchone()
            tick, stored = counters[0], sum(counters[1:])
            if max_records is not None and stored > max_records:
                stored -= self._sweep_rows(conn, now, None)
                spared = {(_owner_key(a.owner), a.id) for a in keep}
                while stored > max_records:
                    if not self._evict_one(conn, spared):
                        raise StoreFull(record.id, max_records)
                    stored -= 1
            (seq,) = conn.execute(
                "INSERT INTO responses (owner, id, created_at, status, terminal, model, version, ttl, expires_at, "
                "last_used, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
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
                    text,
                ),
            ).fetchone()
            self._state().cached.append((seq, record.version, record))
            return True

        return self._write(put)

    def _refresh(self, conn: sqlite3.Connection, keep: Sequence[ResponseRecord], now: float, clock: float) -> bool:
        """Restart the expiry of the chain ``keep`` from ``now`` and mark it used, oldest first, if unchanged."""
        key = _owner_key(keep[0].owner)
        (last,) = conn.execute("UPDATE counters SET tick = tick + ? RETURNING tick", (len(keep),)).fetchone()
        first = last - len(keep) + 1
        changed = 0
        for i, ancestor in enumerate(reversed(keep)):
            changed += conn.execute(
                "UPDATE responses SET expires_at = CASE WHEN ttl IS NULL THEN NULL ELSE ? + ttl END, last_used = ? "
                "WHERE owner = ? AND id = ? AND version = ? AND (expires_at IS NULL OR expires_at > ?)",
                (now, first + i, key, ancestor.id, ancestor.version, clock),
            ).rowcount
        return changed == len(keep)

    def _swap(self, old: Stored, new: ResponseRecord, event: FrozenDict | None, size: int) -> bool:
        key = _owner_key(new.owner)
        text = _json_text(new.to_dict())
        event_text = None if event is None else _json_text(thaw(event))
        record = old.record

        def swap(conn: sqlite3.Connection) -> bool:
            now = self._now()
            self._sweep_rows(conn, now, SWEEP_BATCH)
            row = conn.execute(
                "UPDATE responses SET status = ?, terminal = ?, model = ?, version = ?, record = ?, "
                "last_used = (SELECT tick + 1 FROM counters), event_count = event_count + ?, "
                "event_bytes = event_bytes + ? "
                "WHERE owner = ? AND id = ? AND version = ? AND event_count = ? "
                "AND (expires_at IS NULL OR expires_at > ?) RETURNING seq",
                (
                    new.status.value,
                    int(new.is_terminal),
                    new.model,
                    new.version,
                    text,
                    0 if event is None else 1,
                    size,
                    key,
                    record.id,
                    record.version,
                    old.events,
                    now,
                ),
            ).fetchone()
            if row is None:
                return False
            (seq,) = row
            if event is not None:
                conn.execute(
                    "INSERT INTO events (response, number, size, event) VALUES (?, ?, ?, ?)",
                    (seq, old.events, size, event_text),
                )
            conn.execute(_SQL_MOVED[record.status, new.status])
            self._state().cached.append((seq, new.version, new))
            return True

        return self._write(swap)

    def _append(self, old: Stored, event: FrozenDict, size: int) -> bool:
        key = _owner_key(old.record.owner)
        event_text = _json_text(thaw(event))
        record = old.record

        def append(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "UPDATE responses SET event_count = event_count + 1, event_bytes = event_bytes + ? "
                "WHERE owner = ? AND id = ? AND version = ? AND event_count = ? "
                "AND (expires_at IS NULL OR expires_at > ?) RETURNING seq",
                (size, key, record.id, record.version, old.events, self._now()),
            ).fetchone()
            if row is None:
                return False
            conn.execute(
                "INSERT INTO events (response, number, size, event) VALUES (?, ?, ?, ?)",
                (row[0], old.events, size, event_text),
            )
            return True

        return self._write(append)

    def _remove(self, record: ResponseRecord) -> bool:
        key = _owner_key(record.owner)

        def remove(conn: sqlite3.Connection) -> bool:
            now = self._now()
            self._sweep_rows(conn, now, SWEEP_BATCH)
            row = conn.execute(
                "SELECT seq, created_at, status FROM responses WHERE owner = ? AND id = ? AND version = ? "
                "AND (expires_at IS NULL OR expires_at > ?)",
                (key, record.id, record.version, now),
            ).fetchone()
            if row is None:
                return False
            self._unlink(conn, (row[0], key, record.id, row[1], row[2]), "deleted")
            return True

        return self._write(remove)

    def _unlink(self, conn: sqlite3.Connection, row: tuple[int, str, str, float, str], why: str) -> None:
        """Remove a stored record and its events, leave its tombstone, and count it as ``why``.

        ``row`` is ``(seq, owner key, id, created_at, status)``; ``why`` is deleted, evicted or expired.
        """
        seq, key, id, created_at, status = row
        conn.execute("DELETE FROM responses WHERE seq = ?", (seq,))
        conn.execute("DELETE FROM events WHERE response = ?", (seq,))
        conn.execute("INSERT INTO removed (owner, id, created_at, seq) VALUES (?, ?, ?, ?)", (key, id, created_at, seq))
        (tombstones,) = conn.execute(_SQL_UNLINKED[status, why]).fetchone()
        remembered = min(CURSOR_MEMORY, cursor_memory(self.retention.max_records))
        if tombstones > remembered:
            trimmed = conn.execute(
                "DELETE FROM removed WHERE n IN (SELECT n FROM removed ORDER BY n LIMIT ?)",
                (tombstones - remembered,),
            ).rowcount
            conn.execute("UPDATE counters SET tombstones = tombstones - ?", (trimmed,))
        state = self._state()
        state.wakes.append((_owner_of(key), id))
        state.cached.append((seq, 0, None))

    def _sweep_rows(self, conn: sqlite3.Connection, now: float, limit: int | None) -> int:
        sql = "SELECT seq, owner, id, created_at, status FROM responses WHERE expires_at <= ? ORDER BY expires_at, seq"
        if limit is None:
            rows = conn.execute(sql, (now,)).fetchall()
        else:
            rows = conn.execute(sql + " LIMIT ?", (now, limit)).fetchall()
        for row in rows:
            self._unlink(conn, row, "expired")
        return len(rows)

    def _sweep(self, limit: int | None) -> int:
        now = self._now()  # validated: a broken clock must refuse the write before anything is removed
        return self._write(lambda conn: self._sweep_rows(conn, now, limit))

    def _evict_one(self, conn: sqlite3.Connection, spared: set[tuple[str, str]]) -> bool:
        # Among the len(spared) + 1 least recently used finished records, at least one is not protected.
        rows = conn.execute(
            "SELECT seq, owner, id, created_at, status FROM responses WHERE terminal = 1 "
            "ORDER BY last_used, seq LIMIT ?",
            (len(spared) + 1,),
        ).fetchall()
        for seq, key, id, created_at, status in rows:
            if (key, id) in spared:
                continue
            self._unlink(conn, (seq, key, id, created_at, status), "evicted")
            return True
        return False

    def _page(
        self, owner: str | None, query: PageQuery, matches: Callable[[ResponseRecord], bool] | None
    ) -> Page[ResponseRecord]:
        key = _owner_key(owner)
        now = self._now()
        return self._snapshot_read(
            lambda conn: paginate_records(
                lambda cursor, descending: self._scan(conn, key, cursor, descending, now), query, matches
            )
        )

    def _scan(
        self, conn: sqlite3.Connection, key: str, cursor: str | None, descending: bool, now: float
    ) -> Iterator[ResponseRecord]:
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
        return self._scan_rows(conn, key, start, descending, now)

    def _scan_rows(
        self, conn: sqlite3.Connection, key: str, start: tuple[float, int] | None, descending: bool, now: float
    ) -> Iterator[ResponseRecord]:
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

    def _events(self, owner: str | None, id: str, after: int) -> tuple[ResponseRecord, tuple[FrozenDict, ...]] | None:
        if not _encodable(id):
            return None
        key = _owner_key(owner)
        now = self._now()
        after = min(after, _MAX_INT64)

        def read(conn: sqlite3.Connection) -> tuple[ResponseRecord, tuple[FrozenDict, ...]] | None:
            row = conn.execute(
                "SELECT seq, version, record FROM responses WHERE owner = ? AND id = ? "
                "AND (expires_at IS NULL OR expires_at > ?)",
                (key, id, now),
            ).fetchone()
            if row is None:
                return None
            record = self._record(row[0], row[1], row[2])
            texts = conn.execute(
                "SELECT event FROM events WHERE response = ? AND number > ? ORDER BY number", (row[0], after)
            ).fetchall()
            try:
                events = tuple(freeze_object(json.loads(text), "event") for (text,) in texts)
            except (ValueError, TypeError, ResponseStoreError) as exc:
                raise self._damaged(f"an event of {id!r}", exc) from exc
            return record, events

        return self._snapshot_read(read)

    def _count(self) -> int:
        return self._stats().records

    def _stats(self) -> StoreStats:
        now = self._now()
        return self._snapshot_read(lambda conn: self._stats_of(conn, now))

    def _stats_of(self, conn: sqlite3.Connection, now: float) -> StoreStats:
        row = conn.execute(_SQL_COUNTERS).fetchone()
        if row is None:
            raise StorageError(f"{self.path!r} is damaged: its counters row is missing")
        created, deleted, evicted, expired = row[:4]
        by_status = {status.value: count for status, count in zip(_STATUS_COLUMNS, row[6:], strict=True)}
        pending = conn.execute(
            "SELECT status, count(*) FROM responses WHERE expires_at <= ? GROUP BY status", (now,)
        ).fetchall()
        for status, count in pending:
            if status not in by_status:
                raise StorageError(f"{self.path!r} is damaged: a record has the status {str(status)[:40]!r}")
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
        if self._closed:  # the file must still be whole: check it through a connection of its own
            conn = sqlite3.connect(self.path, isolation_level=None)
            try:
                self._check_file_contents(conn)
            finally:
                conn.close()
            return
        state = self._state()
        _invariant(not state.wakes, "wake-ups were left pending")
        _invariant(not state.cached, "cache updates were left pending")
        _invariant(len(self._touches) <= TOUCH_LOG, "the touch log is unbounded")
        _invariant(len(self._cache) <= _CACHE_RECORDS, "the record cache is unbounded")
        with state.mutex:
            self._check_file_contents(state.conn)

    def _check_file_contents(self, conn: sqlite3.Connection) -> None:
        _invariant(conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)], "integrity_check failed")
        _invariant(conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal", "not in WAL mode")
        _invariant(conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION, "wrong schema version")
        _begin_read(conn)
        try:
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
        finally:
            _rollback(conn)
        stats = self._stats_of(conn, self._now())
        _invariant(stats.records == sum(stats.by_status.values()), "stats.by_status does not add up")
        _invariant(
            stats.records == stats.created - stats.deleted - stats.evicted - stats.expired,
            "stats do not add up",
        )

    def _check_row(self, conn: sqlite3.Connection, row: tuple[Any, ...], tick: int, top: int) -> None:
        seq, key, id, created_at, status, terminal, model, version, ttl, expires_at, used, count, size, text = row
        record = _load(text)
        cached = self._cache.get(seq)
        _invariant(cached is None or cached[0] != version or cached[1] == record, f"the cache's copy of {id!r}")
        _invariant(cached is None or cached[0] <= version, f"the cache holds a future version of {id!r}")
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
    if "\0" in text:
        raise InvalidArgument(f"path must not contain a NUL character, not {text[:100]!r}")
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
