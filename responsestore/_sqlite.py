"""``SQLiteStore``: a durable backend on one SQLite file, shared by the threads and processes that open it.

Layout (schema version 3; ``PRAGMA user_version`` holds the version, ``PRAGMA application_id`` marks the file):

- ``responses``: one row per stored record. ``seq`` (``INTEGER PRIMARY KEY``, the rowid) is the record's
  incarnation: ``counters.last_seq + 1`` at its insert, so no number is ever given twice (no ``AUTOINCREMENT``,
  hence no ``sqlite_sequence`` write); it also breaks ``created_at`` ties. ``record`` is the record's JSON text
  (:meth:`ResponseRecord.to_dict`); ``owner``, ``id``, ``created_at``, ``status``, ``terminal``, ``version`` and
  ``lease_expires_at`` repeat what queries need (``lease_expires_at`` only while the record is queued or in
  progress); ``ttl`` and ``expires_at`` drive expiry; ``last_used`` is the recency of a finished record (``NULL``
  while it is active); ``size`` is :func:`~responsestore._retention.record_size`; ``event_count``, ``event_bytes``
  and ``log_bytes`` size the event log (events, their counted size, the stored bytes of its chunks). Owners are
  encoded so that ``None`` differs from every string.
- ``chunks``: the event logs, one row per :class:`~responsestore._contract.LogWrite` chunk, keyed by
  ``(response seq, number of its first event)`` (``WITHOUT ROWID``: one b-tree per write).
- ``removed``: where the last :data:`CURSOR_MEMORY` removed records stood, so a page walk whose cursor was
  removed meanwhile goes on (as in the memory store).
- ``counters``: one row: ``last_seq``, the lifetime counts (created, deleted, evicted, expired), the records per
  status, and ``bytes``/``active_bytes`` (what ``max_bytes`` counts: every record's ``size`` plus its
  ``log_bytes``, and the share of queued and in-progress records), and ``conversations``, the number of rows of
  ``conversations``.
- ``conversations``: one row per conversation. ``seq`` (the rowid) names it to its items; ``record`` is its JSON
  (:meth:`ConversationRecord.to_dict`); ``owner``, ``id`` and ``version`` repeat what the conditional writes need;
  ``items`` and ``next_position`` are its :class:`~responsestore._conversations.ConversationState` counts;
  ``expires_at`` its expiry (``NULL``: never).
- ``conversation_items``: the items, one row per item, keyed by ``(conversation seq, position)`` (``WITHOUT
  ROWID``: a page of items is one range of one b-tree), with the item's id (unique within its conversation) and
  its JSON.

Indexes, each only over the rows that need it: ``(owner, id)`` (unique), ``(owner, created_at)`` for lists (the
rowid ``seq`` completes the order), ``expires_at`` over rows that expire, ``last_used`` over finished rows (the
eviction order) and ``lease_expires_at`` over rows holding a lease; ``(owner, id)`` (unique) and ``expires_at`` of
conversations, and ``(conversation, item id)`` (unique) of their items.

Triggers keep the counters and the side tables in step with ``responses``, inside the statement that changes a
row: an insert counts the record and clears its id's tombstone; a change of status, size or log moves the status
and byte counts; a delete uncounts it, deletes its chunks and leaves its tombstone. So the counters agree with
the rows by construction (a conversation's insert and delete count it, and its delete deletes its items), and the
hot writes are short: ``create`` is ``BEGIN IMMEDIATE``, one read of the counters, one ``INSERT`` and ``COMMIT``; a
transition one read, then ``BEGIN IMMEDIATE``, one ``UPDATE`` (plus one statement per chunk write) and ``COMMIT``.
The backend decides nothing: the store above it does.

Operations: every atomic storage operation of the contract is one SQLite transaction or one statement. A write
runs in ``BEGIN IMMEDIATE`` and commits only if what it was decided on still holds (the incarnation, version and
event count in its ``WHERE``), so it is atomic across threads and processes; a process-local mutex queues this
process's writers so that only other processes meet SQLite's busy handler. A ``get`` is one ``SELECT``
(autocommit, no transaction); a page, a record with its events, and stats each read in one deferred transaction
(a consistent snapshot; WAL readers never wait for writers); a chain is one recursive ``SELECT``.

Recency without writes on reads: a read that uses a finished record (``get``, ``input_items``, ``chain``) queues
its mark in this process (a bounded log of :data:`TOUCH_LOG` marks) and the next write of this process (or
``close``) writes the queued marks first, in order, in its own transaction. A mark sets ``last_used`` one above
the highest of every finished record, so the order of the rows present is exactly least-recently-used, with no
counter to update. Reads never write (they work on a full disk or a read-only moment), and another process
learns of this process's reads at its next write. If that write fails, the marks wait for the next one.

Each thread has its own connection, used under a per-connection mutex, so :meth:`SQLiteStore.close` can wait for
a call in flight instead of closing a connection another thread is inside.

Schema history: version 1 kept one row per event (``events``), an ``AUTOINCREMENT`` sequence, a ``tick`` for
recency and a tombstone count; :func:`_migrate_1_to_2` turns such a file into version 2 when it is opened. Version 2
had no conversations; :func:`_migrate_2_to_3` adds their tables and count.
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
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from . import _events, _sql
from ._checks import describe
from ._contract import (
    DEFAULT_MAX_CHAIN_DEPTH,
    Clock,
    LogWrite,
    Stored,
)
from ._conversations import ConversationWrite
from ._events import DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_EVENTS
from ._owners import encodable as _encodable
from ._owners import owner_key as _owner_key
from ._records import ResponseRecord
from ._retention import DEFAULT_MAX_RECORDS, DEFAULT_TTL, SWEEP_BATCH, record_size
from ._urls import refuse_twice_given, url_integer, url_seconds
from .errors import InvalidArgument, ResponseStoreError, StorageError

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

_T = TypeVar("_T")

#: The schema version this code writes; files of a newer version are refused, older ones migrated.
SCHEMA_VERSION = 3

#: Marks a responsestore database (``PRAGMA application_id``; the ASCII of "rsst").
APPLICATION_ID = 0x72737374

#: Seconds between re-checks while ``wait``/``stream`` wait for a write made by another process.
POLL_INTERVAL = 0.05

DEFAULT_BUSY_TIMEOUT = 30.0

#: Pages the write-ahead log grows to before a commit copies it into the database file (SQLite's default is 1000).
#: A checkpoint costs two flushes to disk whatever its size and copies a page written many times once, so a larger
#: log makes each write cheaper: about 12 % of a create + complete at 4000 (16 MiB of log at 4 KiB pages), for a
#: rarer, longer pause of the commit that checkpoints.
WAL_AUTOCHECKPOINT = 4000

_SYNCHRONOUS = ("FULL", "NORMAL")

_BUSY_CODES = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (the sqlite3 module names them only from Python 3.11)


# ---------------------------------------------------------------------------------------------- the schema


def _schema_2() -> list[str]:
    """The statements that create schema version 2 in an empty database (frozen: the target of the migration from 1)."""
    return [
        """CREATE TABLE responses (
            seq INTEGER PRIMARY KEY,
            owner TEXT NOT NULL,
            id TEXT NOT NULL,
            created_at REAL NOT NULL,
            status TEXT NOT NULL,
            terminal INTEGER NOT NULL,
            version INTEGER NOT NULL,
            ttl REAL,
            expires_at REAL,
            last_used INTEGER,
            lease_expires_at REAL,
            size INTEGER NOT NULL,
            event_count INTEGER NOT NULL DEFAULT 0,
            event_bytes INTEGER NOT NULL DEFAULT 0,
            log_bytes INTEGER NOT NULL DEFAULT 0,
            record TEXT NOT NULL
        )""",
        "CREATE UNIQUE INDEX responses_key ON responses (owner, id)",
        "CREATE INDEX responses_order ON responses (owner, created_at)",
        "CREATE INDEX responses_expiry ON responses (expires_at) WHERE expires_at IS NOT NULL",
        "CREATE INDEX responses_recency ON responses (last_used) WHERE terminal = 1",
        "CREATE INDEX responses_lease ON responses (lease_expires_at) WHERE lease_expires_at IS NOT NULL",
        """CREATE TABLE chunks (
            response INTEGER NOT NULL,
            first INTEGER NOT NULL,
            count INTEGER NOT NULL,
            text TEXT NOT NULL,
            PRIMARY KEY (response, first)
        ) WITHOUT ROWID""",
        """CREATE TABLE removed (
            n INTEGER PRIMARY KEY,
            owner TEXT NOT NULL,
            id TEXT NOT NULL,
            created_at REAL NOT NULL,
            seq INTEGER NOT NULL,
            UNIQUE (owner, id)
        )""",
        "CREATE TABLE counters (only INTEGER PRIMARY KEY CHECK (only = 0), last_seq INTEGER NOT NULL, "
        "created INTEGER NOT NULL, deleted INTEGER NOT NULL, evicted INTEGER NOT NULL, expired INTEGER NOT NULL, "
        "bytes INTEGER NOT NULL, active_bytes INTEGER NOT NULL, "
        + ", ".join(f"{column} INTEGER NOT NULL" for column in _sql.STATUS_COLUMNS.values())
        + ")",
        "INSERT INTO counters (only, last_seq, created, deleted, evicted, expired, bytes, active_bytes, "
        f"{_sql.STATUS_LIST}) VALUES (0, 0, 0, 0, 0, 0, 0, 0" + ", 0" * len(_sql.STATUS_COLUMNS) + ")",
        f"""CREATE TRIGGER responses_inserted AFTER INSERT ON responses BEGIN
            UPDATE counters SET last_seq = max(last_seq, NEW.seq), created = created + 1, {_sql.counted("NEW", "+")};
            DELETE FROM removed WHERE owner = NEW.owner AND id = NEW.id;
        END""",
        f"""CREATE TRIGGER responses_changed AFTER UPDATE OF status, terminal, size, log_bytes ON responses BEGIN
            UPDATE counters SET {_sql.moved()};
        END""",
        f"""CREATE TRIGGER responses_deleted AFTER DELETE ON responses BEGIN
            UPDATE counters SET {_sql.counted("OLD", "-")};
            DELETE FROM chunks WHERE response = OLD.seq;
            INSERT OR REPLACE INTO removed (owner, id, created_at, seq)
                VALUES (OLD.owner, OLD.id, OLD.created_at, OLD.seq);
        END""",
    ]


def _schema_3() -> list[str]:
    """The statements that take a version-2 database to version 3: conversations, their items and their count."""
    return [
        "ALTER TABLE counters ADD COLUMN conversations INTEGER NOT NULL DEFAULT 0",
        """CREATE TABLE conversations (
            seq INTEGER PRIMARY KEY,
            owner TEXT NOT NULL,
            id TEXT NOT NULL,
            version INTEGER NOT NULL,
            items INTEGER NOT NULL,
            next_position INTEGER NOT NULL,
            expires_at REAL,
            record TEXT NOT NULL
        )""",
        "CREATE UNIQUE INDEX conversations_key ON conversations (owner, id)",
        "CREATE INDEX conversations_expiry ON conversations (expires_at) WHERE expires_at IS NOT NULL",
        """CREATE TABLE conversation_items (
            conversation INTEGER NOT NULL,
            position INTEGER NOT NULL,
            item_id TEXT NOT NULL,
            item TEXT NOT NULL,
            PRIMARY KEY (conversation, position)
        ) WITHOUT ROWID""",
        "CREATE UNIQUE INDEX conversation_items_id ON conversation_items (conversation, item_id)",
        """CREATE TRIGGER conversations_inserted AFTER INSERT ON conversations BEGIN
            UPDATE counters SET conversations = conversations + 1;
        END""",
        """CREATE TRIGGER conversations_deleted AFTER DELETE ON conversations BEGIN
            UPDATE counters SET conversations = conversations - 1;
            DELETE FROM conversation_items WHERE conversation = OLD.seq;
        END""",
    ]


def _create_schema(conn: sqlite3.Connection) -> None:
    """Version 0 (an empty file) to the current version: create every table, index and trigger."""
    for statement in _schema_2() + _schema_3():
        conn.execute(statement)


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Version 1 to 2 (inside the caller's write transaction): per-event rows become one chunk per response.

    Every record keeps its row number (its incarnation), ttl, expiry and recency; its size is measured; its events
    become one chunk encoded as version 2 writes them (against the final record when it has finished), so they
    replay exactly as stored. The lifetime counts and the tombstones carry over; the status and byte counts are
    rebuilt from the rows.

    Raises:
        _sql.Damaged: a row of the version-1 file cannot be read.
    """
    for index in ("responses_order", "responses_expiry", "responses_recency"):
        conn.execute(f"DROP INDEX IF EXISTS {index}")
    for table in ("responses", "events", "removed", "counters"):
        conn.execute(f"ALTER TABLE {table} RENAME TO v1_{table}")
    for statement in _schema_2():
        conn.execute(statement)
    rows = conn.execute(
        "SELECT seq, owner, id, created_at, status, terminal, version, ttl, expires_at, last_used, event_count, "
        "event_bytes, record FROM v1_responses ORDER BY seq"
    )
    insert = (
        "INSERT INTO responses (seq, owner, id, created_at, status, terminal, version, ttl, expires_at, last_used, "
        "lease_expires_at, size, event_count, event_bytes, log_bytes, record) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?)"
    )
    for row in rows.fetchall():
        seq, key, id, created_at, status, terminal, version, ttl, expires_at, last_used, count, event_bytes, text = row
        try:
            record = _sql.load(text)
        except (ValueError, TypeError, KeyError, ResponseStoreError) as exc:
            raise _sql.Damaged(f"the record in row {seq}", exc) from exc
        log = _v1_log(conn, seq, record, count)
        conn.execute(
            insert,
            (
                seq,
                key,
                id,
                created_at,
                status,
                terminal,
                version,
                ttl,
                expires_at,
                last_used if terminal else None,
                record_size(record),
                count,
                event_bytes,
                0 if log is None else log.stored,
                text,
            ),
        )
        if log is not None:
            conn.execute(
                "INSERT INTO chunks (response, first, count, text) VALUES (?, 0, ?, ?)", (seq, count, log.text)
            )
    conn.execute(
        "INSERT OR REPLACE INTO removed (n, owner, id, created_at, seq) "
        "SELECT n, owner, id, created_at, seq FROM v1_removed ORDER BY n"
    )
    (top,) = conn.execute(
        "SELECT max((SELECT coalesce(max(seq), 0) FROM v1_responses), (SELECT coalesce(max(seq), 0) FROM v1_removed),"
        " (SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'v1_responses'), "
        " (SELECT created FROM v1_counters))"
    ).fetchone()
    conn.execute(
        "UPDATE counters SET last_seq = ?, "
        + ", ".join(
            f"{name} = (SELECT {name} FROM v1_counters)" for name in ("created", "deleted", "evicted", "expired")
        ),
        (top,),
    )
    for table in ("events", "responses", "removed", "counters"):
        conn.execute(f"DROP TABLE v1_{table}")


def _v1_log(conn: sqlite3.Connection, seq: int, record: ResponseRecord, count: int) -> _events.Encoded | None:
    """The events of version-1 row ``seq`` as one version-2 chunk (``None`` when it has none).

    Raises:
        _sql.Damaged: the events are not ``count`` consecutive JSON objects numbered from 0.
    """
    texts = conn.execute("SELECT number, event FROM v1_events WHERE response = ? ORDER BY number", (seq,)).fetchall()
    if [number for number, _ in texts] != list(range(count)):
        raise _sql.Damaged(f"the events of row {seq}", ValueError(f"not numbered 0 to {count - 1}"))
    if not count:
        return None
    try:
        prepared = _events.prepare_events([json.loads(text) for _, text in texts], record.id)
        _events.check_batch(prepared, record.id, 0)
        return _events.encode_batch(prepared, 0, record if record.is_terminal else None)
    except (ValueError, TypeError, ResponseStoreError) as exc:
        raise _sql.Damaged(f"the events of row {seq}", exc) from exc


def _migrate_2_to_3(conn: sqlite3.Connection) -> None:
    """Version 2 to 3 (inside the caller's write transaction): add the conversation tables, empty, and their count.

    Nothing else changes: responses, logs, tombstones and counts stay as they are.
    """
    for statement in _schema_3():
        conn.execute(statement)


#: ``_MIGRATIONS[n]`` takes a database from schema version ``n`` to ``n + 1`` (inside one write transaction); an
#: empty file (version 0) gets the current schema at once (:func:`_create_schema`).
_MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _migrate_1_to_2, 2: _migrate_2_to_3}


# Statements built from the constant column names above (never from caller input).
_NEXT_USE = "(SELECT coalesce(max(last_used), 0) + 1 FROM responses WHERE terminal = 1)"
_DUE = "(SELECT min(expires_at) FROM responses WHERE expires_at IS NOT NULL)"
#: The statements both SQL stores run, in SQLite's dialect.
_Q = _sql.Statements(
    mark="?",
    finished="terminal = 1",
    active="terminal = 0",
    next_use=_NEXT_USE,
    wake="owner",
    held="IN (SELECT value FROM json_each(?))",
    due=_DUE,
    named=lambda name: f":{name}",
)
_INSERTED = "seq, owner, id, created_at, status, terminal, version, ttl, expires_at, lease_expires_at, size, record"
_SQL_INSERT = (
    f"INSERT INTO responses ({_INSERTED}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (owner, id) DO NOTHING"
)
#: Insert when the id is free, the record fits within max_records (:p12) and max_bytes (:p13), and no expired record
#: awaits a sweep at :p14; otherwise insert nothing (the caller then does each step on its own).
_SQL_INSERT_IF_ROOM = (
    f"INSERT INTO responses ({_INSERTED}) SELECT last_seq + 1, :p1, :p2, :p3, :p4, :p5, :p6, :p7, :p8, :p9, :p10, :p11 "
    f"FROM counters WHERE (:p12 IS NULL OR {_sql.ACTIVE_SUM} + {_sql.FINISHED_SUM} < :p12) "
    "AND (:p13 IS NULL OR bytes + :p10 <= :p13) AND NOT EXISTS (SELECT 1 FROM responses WHERE expires_at <= :p14) "
    "ON CONFLICT (owner, id) DO NOTHING RETURNING seq"
)
_SWAP_SET = (
    "UPDATE responses SET status = :p1, terminal = :p2, version = :p3, record = :p4, size = :p5, "
    "lease_expires_at = :p6, "
    f"last_used = CASE WHEN :p2 THEN {_NEXT_USE} END"
)
_SWAP_WHERE = " WHERE seq = :p7 AND version = :p8 AND event_count = :p9 AND (expires_at IS NULL OR expires_at > :p10)"
#: ``_swap``'s statement by what it does to the log: nothing, append a chunk, or replace the log by one.
_SQL_SWAP = {
    None: _SWAP_SET + _SWAP_WHERE + f" RETURNING size + log_bytes, {_DUE}",
    False: _SWAP_SET
    + ", event_count = :p11, event_bytes = :p12, log_bytes = log_bytes + :p13"
    + _SWAP_WHERE
    + f" RETURNING size + log_bytes, {_DUE}",
    True: _SWAP_SET
    + ", event_count = :p11, event_bytes = :p12, log_bytes = :p13"
    + _SWAP_WHERE
    + f" RETURNING size + log_bytes, {_DUE}",
}
#: ``from a cursor`` -> one batch of the owner's visible records whose JSON holds a text, newest first
#: (``_find_newest``; the ``LIMIT`` lets SQLite stop at the first rows found).
_SQL_HOLDING = {
    after: _Q.scan_select
    + ("AND (created_at, seq) < (?, ?) " if after else "")
    + _Q.scan_visible
    + "AND instr(record, ?) > 0 ORDER BY created_at DESC, seq DESC LIMIT ?"
    for after in (False, True)
}
#: Rows of one batch of ``_SQL_HOLDING``: one, since SQLite looks on until it has found as many rows as the batch
#: holds (a batch of two costs a walk of every row when one row holds the text), and the newest row holding it is
#: nearly always the one sought.
_FIND_BATCH = 1


def _numbered(*values: Any) -> dict[str, Any]:
    """The parameters of a statement that uses a value more than once (``:p1``, ``:p2``, ...), by name.

    (``?1``-style numbered placeholders with a sequence are deprecated since Python 3.12 and refused from 3.14.)
    """
    return {f"p{number}": value for number, value in enumerate(values, 1)}


# ---------------------------------------------------------------------------------------------- encodings


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


# ---------------------------------------------------------------------------------------------- URLs


def _url_integer(name: str, text: str) -> int | None:
    return url_integer("SQLite", name, text)


def _url_seconds(name: str, text: str) -> float | None:
    return url_seconds("SQLite", name, text, none=True, said="a number of seconds or 'none'")


def _url_text(name: str, text: str) -> str:
    return text


#: The query parameters of a ``sqlite:///PATH?...`` URL: name -> how its text becomes the constructor's argument
#: (which then checks it as it checks a keyword argument).
_URL_PARAMETERS: Mapping[str, Callable[[str, str], Any]] = {
    "max_bytes": _url_integer,
    "max_records": _url_integer,
    "ttl": _url_seconds,
    "synchronous": _url_text,
    "busy_timeout": _url_seconds,
}


def _url_options(url: str, query: str) -> dict[str, Any]:
    """The keyword arguments a URL's query string (``name=value&...``, no percent-decoding) gives.

    Raises:
        InvalidArgument: a malformed pair, an unknown or repeated name, or a value of the wrong kind.
    """
    options: dict[str, Any] = {}
    unknown: list[str] = []
    for pair in query.split("&") if query else ():
        name, equals, value = pair.partition("=")
        if not name or not equals:
            raise InvalidArgument(f"the query of the SQLite URL {url[:200]!r} has a part that is not name=value")
        if name not in _URL_PARAMETERS:
            unknown.append(name[:40])
            continue
        if name in options:
            raise InvalidArgument(f"the SQLite URL {url[:200]!r} gives {name} twice")
        options[name] = _URL_PARAMETERS[name](name, value)
    if unknown:
        raise InvalidArgument(
            f"unknown SQLite URL parameter{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(_URL_PARAMETERS)})"
        )
    return options


# ---------------------------------------------------------------------------------------------- threads

#: Connections inherited through ``fork``: never used again and never closed (closing them in the child could
#: disturb the parent's locks and WAL), just kept referenced.
_INHERITED: list[sqlite3.Connection] = []


class _ThreadState(_sql.ThreadState[sqlite3.Connection]):
    __slots__ = ()


class _WriterTurn:
    """A write's turn in this process: its writers queue here, so only other processes meet SQLite's busy handler."""

    __slots__ = ("_mutex", "_path", "_timeout")

    def __init__(self, mutex: threading.Lock, timeout: float, path: str) -> None:
        self._mutex, self._timeout, self._path = mutex, timeout, path

    def __enter__(self) -> None:
        if not self._mutex.acquire(timeout=self._timeout):
            raise StorageError(
                f"another thread kept writing to {self._path!r} for more than busy_timeout={self._timeout} "
                "seconds; nothing was changed"
            )

    def __exit__(self, *exc_info: object) -> None:
        self._mutex.release()


def _release(connections: dict[sqlite3.Connection, Any], mutex: threading.RLock, conn: sqlite3.Connection) -> None:
    """Close the connection of a thread that has ended (a finalizer: it may run in any thread, see _setup_process)."""
    with mutex:
        connections.pop(conn, None)
    with contextlib.suppress(sqlite3.Error):
        conn.close()


def _rollback(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        if conn.in_transaction:
            conn.execute("ROLLBACK")


# ---------------------------------------------------------------------------------------------- the store


class SQLiteStore(_sql.SQLStore[sqlite3.Connection]):
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
        max_bytes: The most bytes the records and their event logs take, as every backend counts them
            (``stats().bytes``); at the bound, creating evicts least recently used finished records. ``None``
            (the default here): bounded by ``max_records`` only.
        synchronous: ``"FULL"`` (the default): a call that returned has been written to disk and survives a
            power loss or an operating-system crash. ``"NORMAL"``: faster writes (no flush to disk at each
            commit, WAL mode); a power loss or OS crash may lose the last transactions, but the database stays
            consistent. Either way a crash of the process itself loses nothing that was acknowledged.
        busy_timeout: Seconds a write waits for the writes of other threads and processes before it fails with
            :class:`StorageError` and changes nothing (default 30).
    """

    _owner_key = staticmethod(_owner_key)
    _storable = staticmethod(_encodable)
    _rollback = staticmethod(_rollback)
    _q = _Q
    _no_limit = -1

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
        max_bytes: int | None = None,
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
            max_bytes=max_bytes,
        )
        self.synchronous = _check_synchronous(synchronous)
        self.busy_timeout = _check_busy_timeout(busy_timeout)
        self.path = _check_path(path)
        self._open()

    def _setup_process(self) -> None:
        super()._setup_process()
        self._turn = _WriterTurn(threading.Lock(), self.busy_timeout, self.path)
        self._connections: dict[sqlite3.Connection, tuple[Any, weakref.ref[_ThreadState]]] = {}  # -> (finalizer, state)

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
        conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT}")

    def _adopt(self, conn: sqlite3.Connection) -> _ThreadState:
        state = _ThreadState(conn)
        with self._connections_mutex:
            finalizer = weakref.finalize(state, _release, self._connections, self._connections_mutex, conn)
            self._connections[conn] = (finalizer, weakref.ref(state))
        self._local.state = state
        return state

    def _state(self) -> _ThreadState:
        """The calling thread's connection state (opening its connection on first use)."""
        state: _ThreadState | None = self._thread_state()
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
            for conn, (finalizer, _) in self._connections.copy().items():
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
        if self._generation == _sql.forks() and self._touches:
            with contextlib.suppress(StorageError):
                self._write(lambda conn, _: None)  # writes the queued recency marks
        self._closed = True
        if self._generation == _sql.forks():
            with self._connections_mutex:
                connections = self._connections.copy()  # one step: a finalizer cannot change it while it is read
                self._connections.clear()
            for conn, (finalizer, state_ref) in connections.items():
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
    def poll_interval(self) -> float:
        """Seconds between re-checks while waiting: writes made by other processes wake nobody here."""
        return POLL_INTERVAL

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<SQLiteStore {self.path!r} {state}>"

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> SQLiteStore:
        """``sqlite:///PATH?NAME=VALUE&...``: the file ``PATH``, with settings from the query string.

        ``PATH`` is everything after the third slash up to the first ``?``, taken literally (no percent-decoding),
        so a file whose name holds a ``?`` cannot be named by a URL: pass it to :class:`SQLiteStore` itself. The
        query string, when there is one, sets constructor arguments: ``max_bytes`` and ``max_records`` (a whole
        number, or ``none`` for no bound), ``ttl`` and ``busy_timeout`` (seconds; ``ttl=none`` keeps records until
        they are deleted or evicted) and ``synchronous`` (``FULL`` or ``NORMAL``), each checked as the keyword
        argument is. ``kwargs`` go to the constructor too; a setting may come from the URL or from ``kwargs``, not
        from both.

        Raises:
            InvalidArgument: the URL does not have three slashes, names no file, or has a malformed query string: an
                unknown parameter (the message names it), a repeated one, one also given in ``kwargs``, or a bad
                value.
            StorageError: the file cannot be used.
        """
        rest = url.partition("://")[2]
        if not rest.startswith("/"):
            raise InvalidArgument(
                f"a SQLite URL is 'sqlite:///PATH' (three slashes; four for an absolute path), not {url[:200]!r}"
            )
        path, question, query = rest[1:].partition("?")
        if not path:
            raise InvalidArgument(f"{url[:200]!r} names no file: use 'sqlite:///PATH'")
        options = _url_options(url, query) if question else {}
        refuse_twice_given(options, kwargs)
        return cls(path, **options, **kwargs)

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
                    if version == 0:
                        _create_schema(conn)
                    else:
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
        except _sql.Damaged as exc:
            raise StorageError(
                f"cannot migrate {self.path!r} to schema version {SCHEMA_VERSION}: {exc} (the file was left unchanged)"[
                    :500
                ]
            ) from exc

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

    def _retry_busy(self, action: Callable[[], Any], started: float | None = None) -> Any:
        """Run ``action``, retrying while SQLite reports the database busy, up to ``busy_timeout`` in all.

        SQLite's busy handler already waits inside each attempt; this covers the few cases it does not (a WAL
        recovery or a journal-mode change in another process). ``started``: when a first attempt began (its
        ``time.monotonic()``), if the caller made one.
        """
        deadline = (time.monotonic() if started is None else started) + self.busy_timeout
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
            conn = self._live(state)
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

    def _begin_write(self, conn: sqlite3.Connection) -> None:
        """``BEGIN IMMEDIATE``: take the file's write lock, waiting up to ``busy_timeout`` for other writers.

        Raises:
            StorageError: the lock stayed taken, or SQLite failed.
        """
        started = time.monotonic()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as busy:  # SQLite's busy handler waited: retry within busy_timeout
            if not _is_busy(busy):
                raise self._storage_error(busy) from busy
            try:
                self._retry_busy(lambda: conn.execute("BEGIN IMMEDIATE"), started)
            except sqlite3.Error as exc:
                raise self._storage_error(exc) from exc
        except sqlite3.Error as exc:
            raise self._storage_error(exc) from exc

    def _translate(self, state: _sql.ThreadState[sqlite3.Connection], exc: BaseException) -> BaseException:
        """What a write that raised ``exc`` raises: a :class:`StorageError` for the engine or a damaged row."""
        if isinstance(exc, sqlite3.Error):
            return self._storage_error(exc)
        if isinstance(exc, (ValueError, TypeError, KeyError, IndexError)) and not isinstance(exc, ResponseStoreError):
            return self._damaged("a stored row", exc)
        if isinstance(exc, _sql.Damaged):
            return StorageError(f"{self.path!r} is damaged: {exc}"[:500])
        return exc

    @staticmethod
    def _id_list(ids: list[str]) -> str:
        return json.dumps(ids)  # a JSON array: json_each reads it

    @staticmethod
    def _execute_many(conn: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
        conn.executemany(sql, rows)

    def _no_counters(self) -> StorageError:
        return StorageError(f"{self.path!r} is damaged: its counters row is missing")

    # ------------------------------------------------------------------ atomic storage operations

    def _chain(self, owner: str | None, id: str, limit: int) -> list[ResponseRecord]:
        if not _encodable(id):
            return []
        key = _owner_key(owner)
        now = self._now()
        # One statement, so one snapshot: follow previous_response_id links inside SQLite.
        rows = self._query(
            lambda conn: conn.execute(
                "WITH RECURSIVE chain(n, seq, version, record, id, previous) AS ("
                " SELECT 1, seq, version, record, id, json_extract(record, '$.previous_response_id') FROM responses"
                " WHERE owner = ? AND id = ? AND (expires_at IS NULL OR expires_at > ?)"
                " UNION ALL"
                " SELECT chain.n + 1, r.seq, r.version, r.record, r.id,"
                " json_extract(r.record, '$.previous_response_id')"
                " FROM chain JOIN responses r ON r.owner = ? AND r.id = chain.previous"
                " WHERE chain.n < ? AND (r.expires_at IS NULL OR r.expires_at > ?)"
                ") SELECT seq, version, record, id FROM chain ORDER BY n",
                (key, id, now, key, limit, now),
            ).fetchall()
        )
        return self._linked(rows)

    # ------------------------------------------------------------------ writes

    def _put_new(self, record: ResponseRecord, ttl: float | None, keep: Sequence[ResponseRecord], size: int) -> bool:
        key = _owner_key(record.owner)
        text = _sql.record_text(record)
        values = _sql.new_row(record, key, ttl, size, text, terminal=int(record.is_terminal))
        retention = self.retention

        def put(conn: sqlite3.Connection, _: None) -> bool:
            now = self._now()
            spared = self._spared(conn, record, keep, key, now)
            # The common case in one statement: the id is free, nothing expired awaits a sweep, and it fits.
            row = conn.execute(
                _SQL_INSERT_IF_ROOM, _numbered(*values, retention.max_records, retention.max_bytes, now)
            ).fetchone()
            seq = (
                row[0] if row else self._insert_otherwise(conn, record, key=key, values=values, spared=spared, now=now)
            )
            self._state().cached.append((seq, record.version, record, len(text)))
            return True

        return self._write(put)

    def _insert_otherwise(
        self,
        conn: sqlite3.Connection,
        record: ResponseRecord,
        *,
        key: str,
        values: tuple[Any, ...],
        spared: list[tuple[int, int, int]],
        now: float,
    ) -> int:
        """Insert ``record`` when the quick insert did not: sweep, clear its id, make room; return its seq.

        Raises:
            ResponseExists: a visible record has the id.
            StoreFull: there is no room, even evicting every finished record not spared.
        """
        size: int = values[9]
        state = self._read_state(conn)
        if state.due is not None and state.due <= now:
            self._sweep_rows(conn, now, SWEEP_BATCH)
            state = self._read_state(conn)
        self._room_for_new(conn, record, state=state, key=key, size=size, spared=spared, now=now)
        seq = state.last_seq + 1
        if conn.execute(_SQL_INSERT, (seq, *values)).rowcount == 0:
            self._clear_id(conn, key, record.id, now)  # raises ResponseExists, or removes an expired record
            conn.execute(_SQL_INSERT, (seq, *values))
        return seq

    @staticmethod
    def _swap_statement(
        old: Stored, new: ResponseRecord, text: str, size: int, log: LogWrite | None
    ) -> tuple[str, Callable[[float], Any]]:
        terminal = new.is_terminal
        params = (
            new.status.value,
            int(terminal),
            new.version,
            text,
            size,
            None if terminal else new.lease_expires_at,
            old.incarnation,
            old.record.version,
            old.events,
        )
        after = () if log is None else (log.first + log.events, log.event_bytes, log.stored)
        # It also returns the soonest expiry: the swap sweeps after its update when a record is due.
        return _SQL_SWAP[None if log is None else log.replace], lambda now: _numbered(*params, now, *after)

    def _sweep_rows(self, conn: sqlite3.Connection, now: float, limit: int | None) -> int:
        sql = "SELECT seq, owner, id FROM responses WHERE expires_at <= ? ORDER BY expires_at, seq"
        if limit is None:
            rows = conn.execute(sql, (now,)).fetchall()
        else:
            rows = conn.execute(sql + " LIMIT ?", (now, limit)).fetchall()
        if rows:
            self._unlink(conn, rows, "expired")
        return len(rows)

    # ------------------------------------------------------------------ conversations

    def _conversation_swap(self, write: ConversationWrite) -> bool:
        apply = self._conversation_write(write)
        return self._write(lambda conn, _: apply(conn, self._now()))

    # ------------------------------------------------------------------ reads

    def _find_newest(
        self, owner: str | None, text: str, matches: Callable[[ResponseRecord], bool]
    ) -> ResponseRecord | None:
        # SQLite looks for the text in every row of the owner (instr, in C) and hands over only the rows holding it.
        key = _owner_key(owner)
        now = self._now()

        def read(conn: sqlite3.Connection) -> ResponseRecord | None:
            rows = conn.execute(_SQL_HOLDING[False], (key, now, text, _FIND_BATCH)).fetchall()
            while True:
                for _, seq, version, record_text, id in rows:
                    record = self._record(seq, version, record_text, id)
                    if matches(record):
                        return record
                if len(rows) < _FIND_BATCH:
                    return None
                last = rows[-1]
                rows = conn.execute(_SQL_HOLDING[True], (key, last[0], last[1], now, text, _FIND_BATCH)).fetchall()

        return self._snapshot_read(read)

    def _bad_status(self, status: object) -> Exception:
        return StorageError(f"{self.path!r} is damaged: a record has the status {str(status)[:40]!r}")

    # ------------------------------------------------------------------ invariants

    def _check(self) -> None:
        """Check every invariant, raising ``AssertionError``.

        The file's integrity; rows agree with their JSON, their sizes and the cache; chunks follow each other and
        add up to each log; the counters, the lease index and the tombstones agree with the rows; each conversation
        agrees with its JSON and holds as many items as it counts, each below its next position, their ids unique.
        """
        if self._closed:  # the file must still be whole: check it through a connection of its own
            conn = sqlite3.connect(self.path, isolation_level=None)
            try:
                self._check_file_contents(conn)
            finally:
                conn.close()
            return
        state = self._state()
        self._check_thread(state)
        with state.mutex:
            self._check_file_contents(state.conn)

    def _check_file_contents(self, conn: sqlite3.Connection) -> None:
        _sql.invariant(conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)], "integrity_check failed")
        _sql.invariant(conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal", "not in WAL mode")
        _sql.invariant(conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION, "wrong schema version")
        _begin_read(conn)
        try:
            self._check_tables(conn)
        finally:
            _rollback(conn)
        self._check_stats(self._stats_of(conn, self._now()))

    def _check_indexes(self, conn: sqlite3.Connection, rows: list[Any], leased: set[int]) -> None:
        indexed = {
            seq
            for (seq,) in conn.execute(
                "SELECT seq FROM responses INDEXED BY responses_lease WHERE lease_expires_at IS NOT NULL"
            )
        }
        _sql.invariant(indexed == leased, "the lease index disagrees with the records' leases")
        finished = {
            seq for (seq,) in conn.execute("SELECT seq FROM responses INDEXED BY responses_recency WHERE terminal = 1")
        }
        _sql.invariant(
            finished == {row[0] for row in rows if row[5]}, "the recency index disagrees with the finished records"
        )


def _begin_read(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN")
    try:
        conn.execute("SELECT last_seq FROM counters").fetchone()  # takes the snapshot now
    except BaseException:
        _rollback(conn)
        raise


def _restore_synchronous(conn: sqlite3.Connection, synchronous: str) -> None:
    with contextlib.suppress(sqlite3.Error):
        conn.execute(f"PRAGMA synchronous = {synchronous}")


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
