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
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from . import _events, _sql
from ._checks import describe
from ._contract import (
    CURSOR_MEMORY,
    DEFAULT_MAX_CHAIN_DEPTH,
    TOUCH_LOG,
    Clock,
    LogWrite,
    Stored,
    cursor_memory,
)
from ._conversations import ConversationRecord, ConversationState, ConversationWrite, Positioned
from ._events import DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_EVENTS, Chunk
from ._json import freeze_object
from ._owners import encodable as _encodable
from ._owners import owner_key as _owner_key
from ._owners import owner_of as _owner_of
from ._paging import unknown_cursor
from ._records import ResponseRecord, ResponseStatus
from ._retention import DEFAULT_MAX_RECORDS, DEFAULT_TTL, SWEEP_BATCH, record_size
from .errors import ConversationFull, InvalidArgument, ResponseExists, ResponseStoreError, StorageError

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
_SQL_COUNTERS = f"SELECT created, deleted, evicted, expired, bytes, {_sql.STATUS_LIST} FROM counters"
_SQL_STATE = (
    f"SELECT last_seq, {_sql.ACTIVE_SUM}, {_sql.FINISHED_SUM}, bytes, active_bytes, "
    "(SELECT min(expires_at) FROM responses WHERE expires_at IS NOT NULL) FROM counters"
)
_SQL_UNLINKED = {why: f"UPDATE counters SET {why} = {why} + ?" for why in ("deleted", "evicted", "expired")}
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
_SQL_ROW = (
    "SELECT seq, version, record, expires_at, terminal, event_count, event_bytes, size "
    "FROM responses WHERE owner = ? AND id = ?"
)
_VISIBLE = "(expires_at IS NULL OR expires_at > ?)"
_NEXT_USE = "(SELECT coalesce(max(last_used), 0) + 1 FROM responses WHERE terminal = 1)"
_DUE = "(SELECT min(expires_at) FROM responses WHERE expires_at IS NOT NULL)"
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
_SQL_APPEND = (
    "UPDATE responses SET event_count = ?, event_bytes = ?, log_bytes = log_bytes + ? "
    f"WHERE seq = ? AND version = ? AND event_count = ? AND {_VISIBLE} RETURNING size + log_bytes"
)
_SQL_CHUNK = "INSERT INTO chunks (response, first, count, text) VALUES (?, ?, ?, ?)"
_SQL_CHUNKS = (
    "SELECT first, count, text FROM chunks WHERE response = :p1 "
    "AND first >= coalesce((SELECT max(first) FROM chunks WHERE response = :p1 AND first <= :p2), 0) ORDER BY first"
)
_SQL_LRU = "SELECT seq, owner, id, size + log_bytes FROM responses WHERE terminal = 1 ORDER BY last_used, seq LIMIT ?"
_SQL_TOUCH = f"UPDATE responses SET last_used = {_NEXT_USE} WHERE owner = ? AND id = ? AND terminal = 1"
_SQL_REFRESH = (
    "UPDATE responses SET expires_at = CASE WHEN ttl IS NULL THEN NULL ELSE ? + ttl END, "
    f"last_used = CASE WHEN terminal THEN {_NEXT_USE} END "
    f"WHERE owner = ? AND id = ? AND version = ? AND {_VISIBLE} RETURNING seq, terminal, size + log_bytes"
)
_SQL_TRIM = "DELETE FROM removed WHERE n <= (SELECT max(n) FROM removed) - ?"
_SCAN_SELECT = "SELECT created_at, seq, version, record FROM responses WHERE owner = ? "
_SCAN_VISIBLE = f"AND {_VISIBLE} "
#: ``from a cursor`` -> one batch of the owner's visible records whose JSON holds a text, newest first
#: (``_find_newest``; the ``LIMIT`` lets SQLite stop at the first rows found).
_SQL_HOLDING = {
    after: _SCAN_SELECT
    + ("AND (created_at, seq) < (?, ?) " if after else "")
    + _SCAN_VISIBLE
    + "AND instr(record, ?) > 0 ORDER BY created_at DESC, seq DESC LIMIT ?"
    for after in (False, True)
}
#: Rows of one batch of ``_SQL_HOLDING``: one, since SQLite looks on until it has found as many rows as the batch
#: holds (a batch of two costs a walk of every row when one row holds the text), and the newest row holding it is
#: nearly always the one sought.
_FIND_BATCH = 1
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

_SQL_CONVERSATION = (
    "SELECT seq, version, items, next_position, expires_at, record FROM conversations "
    f"WHERE owner = ? AND id = ? AND {_VISIBLE}"
)
_IN_CONVERSATION = (
    "FROM conversations c JOIN conversation_items i ON i.conversation = c.seq "
    "WHERE c.owner = ? AND c.id = ? AND (c.expires_at IS NULL OR c.expires_at > ?) "
)
_SQL_CONVERSATION_ITEM = "SELECT i.position, i.item_id, i.item " + _IN_CONVERSATION + "AND i.item_id = ?"
#: The ids among a JSON array of ids that the conversation holds (one statement however many are asked).
_SQL_CONVERSATION_HELD = "SELECT i.item_id " + _IN_CONVERSATION + "AND i.item_id IN (SELECT value FROM json_each(?))"
_ITEMS_SELECT = "SELECT position, item_id, item FROM conversation_items WHERE conversation = ? "
#: ``(descending, from a position)`` -> the statement of one run of items (a range of the primary key).
_SQL_ITEMS = {
    (False, False): _ITEMS_SELECT + "ORDER BY position LIMIT ?",
    (True, False): _ITEMS_SELECT + "ORDER BY position DESC LIMIT ?",
    (False, True): _ITEMS_SELECT + "AND position > ? ORDER BY position LIMIT ?",
    (True, True): _ITEMS_SELECT + "AND position < ? ORDER BY position DESC LIMIT ?",
}
_SQL_CONVERSATION_INSERT = (
    "INSERT INTO conversations (owner, id, version, items, next_position, expires_at, record) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING seq"
)
_SQL_ITEM_INSERT = "INSERT INTO conversation_items (conversation, position, item_id, item) VALUES (?, ?, ?, ?)"
_SQL_CONVERSATION_SWAP = (
    "UPDATE conversations SET version = ?, items = ?, next_position = ?, expires_at = ?, record = ? "
    f"WHERE owner = ? AND id = ? AND version = ? AND {_VISIBLE} RETURNING seq"
)
_SQL_ITEM_DELETE = "DELETE FROM conversation_items WHERE conversation = ? AND item_id = ?"
_SQL_CONVERSATION_DELETE = f"DELETE FROM conversations WHERE owner = ? AND id = ? AND version = ? AND {_VISIBLE}"
#: Delete up to :p2 (-1: every) conversation expired at :p1, soonest expired first; the trigger deletes their items.
_SQL_CONVERSATIONS_SWEEP = (
    "DELETE FROM conversations WHERE seq IN "
    "(SELECT seq FROM conversations WHERE expires_at <= :p1 ORDER BY expires_at LIMIT :p2)"
)


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
    return _sql.url_integer("SQLite", name, text)


def _url_seconds(name: str, text: str) -> float | None:
    return _sql.url_seconds("SQLite", name, text, none=True, said="a number of seconds or 'none'")


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


def _release(connections: dict[sqlite3.Connection, Any], mutex: threading.Lock, conn: sqlite3.Connection) -> None:
    """Close the connection of a thread that has ended."""
    with mutex:
        connections.pop(conn, None)
    with contextlib.suppress(sqlite3.Error):
        conn.close()


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
        self._generation = _sql.forks()
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
        if self._generation == _sql.forks() and self._touches:
            with contextlib.suppress(StorageError):
                self._write(lambda conn: None)  # writes the queued recency marks
        self._closed = True
        if self._generation == _sql.forks():
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
        _sql.refuse_twice_given(options, kwargs)
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

        The whole of ``action`` commits or nothing does: it raises :class:`_sql.Abort` to roll back and return a value.
        Waiters of records removed by it are woken after the commit.
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
                self._begin(conn)
                try:
                    while self._touches:
                        touches.append(self._touches.popleft())
                    if touches:
                        self._apply_touches(conn, touches)
                    result = action(conn)
                    conn.execute("COMMIT")
                except _sql.Abort as abort:
                    self._undo(state, touches)
                    return abort.result  # type: ignore[no-any-return]
                except BaseException as exc:
                    self._undo(state, touches)
                    error = self._write_error(exc)
                    if error is exc:
                        raise
                    raise error from exc
        finally:
            mutex.release()
        self._finish_write(state)
        return result

    def _begin(self, conn: sqlite3.Connection) -> None:
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

    def _write_error(self, exc: BaseException) -> BaseException:
        """What a write that raised ``exc`` raises: a :class:`StorageError` for the engine or a damaged row."""
        if isinstance(exc, sqlite3.Error):
            return self._storage_error(exc)
        if isinstance(exc, (ValueError, TypeError, KeyError, IndexError)) and not isinstance(exc, ResponseStoreError):
            return self._damaged("a stored row", exc)
        if isinstance(exc, _sql.Damaged):
            return StorageError(f"{self.path!r} is damaged: {exc}"[:500])
        return exc

    def _undo(self, state: _ThreadState, touches: list[tuple[str, str]]) -> None:
        """Roll back the write in progress on ``state``'s connection; keep its recency marks for the next write."""
        state.wakes.clear()
        state.cached.clear()
        _rollback(state.conn)
        if touches:  # not written: keep them for the next write, in order
            self._touches.extendleft(reversed(touches))

    @staticmethod
    def _apply_touches(conn: sqlite3.Connection, keys: list[tuple[str, str]]) -> None:
        # Each one above every finished record, in the order of the reads. Only a record's last read decides where
        # it ends up, so a record read many times is marked once, at the place of its last read.
        last_reads = list(dict.fromkeys(reversed(keys)))
        last_reads.reverse()
        conn.executemany(_SQL_TOUCH, last_reads)

    # ------------------------------------------------------------------ the parse cache

    def _record(self, seq: int, version: int, text: str) -> ResponseRecord:
        """The record stored as ``text`` in row ``seq`` at ``version``, parsed once and then cached.

        The cache holds at most one record per row, the newest version seen.
        """
        hit = self._cache.get(seq)
        if hit is not None and hit[0] == version:
            return hit[1]
        try:
            record = _sql.load(text)
        except (ValueError, TypeError, KeyError, ResponseStoreError) as exc:
            raise self._damaged(f"the record in row {seq}", exc) from exc
        self._cache.remember(seq, version, record, len(text))
        return record

    # ------------------------------------------------------------------ atomic storage operations

    def _row(self, owner: str | None, id: str) -> Any:
        key = _owner_key(owner)
        return self._query(lambda conn: conn.execute(_SQL_ROW, (key, id)).fetchone())

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

    def _stored(self, row: Any) -> Stored:
        """The :class:`Stored` of a row read by ``_SQL_ROW``."""
        seq, version, text, _, _, count, event_bytes, size = row
        return Stored(self._record(seq, version, text), int(count), int(event_bytes), seq, int(size))

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
        return None if row is None else self._stored(row)

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

    # ------------------------------------------------------------------ writes

    def _put_new(self, record: ResponseRecord, ttl: float | None, keep: Sequence[ResponseRecord], size: int) -> bool:
        key = _owner_key(record.owner)
        text = _sql.record_text(record)
        values = (
            key,
            record.id,
            record.created_at,
            record.status.value,
            int(record.is_terminal),
            record.version,
            ttl,
            None if ttl is None else record.created_at + ttl,
            None if record.is_terminal else record.lease_expires_at,
            size,
            text,
        )
        retention = self.retention

        def put(conn: sqlite3.Connection) -> bool:
            now = self._now()
            spared: list[tuple[int, int, int]] = []
            if keep:
                refreshed = self._refresh(conn, keep, record.created_at, now)
                if refreshed is None:
                    self._clear_id(conn, key, record.id, now)  # a visible record of this id wins: ResponseExists
                    raise _sql.Abort(result=False)
                spared = refreshed
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
        if self.retention.over(state.records + 1, state.bytes + size) is not None:
            self._room_for_new(conn, record, state=state, key=key, size=size, spared=spared, now=now)
        seq = state.last_seq + 1
        if conn.execute(_SQL_INSERT, (seq, *values)).rowcount == 0:
            self._clear_id(conn, key, record.id, now)  # raises ResponseExists, or removes an expired record
            conn.execute(_SQL_INSERT, (seq, *values))
        return seq

    def _read_state(self, conn: sqlite3.Connection) -> _sql.State:
        row = conn.execute(_SQL_STATE).fetchone()
        if row is None:
            raise StorageError(f"{self.path!r} is damaged: its counters row is missing")
        return _sql.State(*row)

    def _clear_id(self, conn: sqlite3.Connection, key: str, id: str, now: float) -> None:
        """Make way for a new record ``(key, id)``: remove an expired one, refuse a visible one.

        Raises:
            ResponseExists: a visible record has this id.
        """
        row = conn.execute("SELECT seq, expires_at FROM responses WHERE owner = ? AND id = ?", (key, id)).fetchone()
        if row is None:
            return
        if row[1] is None or row[1] > now:
            raise ResponseExists(id)
        self._unlink(conn, [(row[0], key, id)], "expired")

    def _refresh(
        self, conn: sqlite3.Connection, keep: Sequence[ResponseRecord], start: float, now: float
    ) -> list[tuple[int, int, int]] | None:
        """Restart the expiry of the chain ``keep`` from ``start`` and mark it used, oldest first, if unchanged.

        Returns ``(seq, terminal, bytes)`` of each record, or ``None`` if one is gone or changed.
        """
        key = _owner_key(keep[0].owner)
        refreshed = []
        for ancestor in reversed(keep):
            row = conn.execute(_SQL_REFRESH, (start, key, ancestor.id, ancestor.version, now)).fetchone()
            if row is None:
                return None
            refreshed.append(row)
        return refreshed

    def _lru(self, conn: sqlite3.Connection, limit: int) -> list[Any]:
        return conn.execute(_SQL_LRU, (limit,)).fetchall()

    def _delete_row(self, conn: sqlite3.Connection, seq: int) -> None:
        conn.execute("DELETE FROM responses WHERE seq = ?", (seq,))

    def _swap(
        self,
        old: Stored,
        new: ResponseRecord,
        size: int,
        log: LogWrite | None,
        conversation: ConversationWrite | None = None,
    ) -> bool:
        text = _sql.record_text(new)
        terminal = new.is_terminal
        seq = old.incarnation
        params: tuple[Any, ...] = (
            new.status.value,
            int(terminal),
            new.version,
            text,
            size,
            None if terminal else new.lease_expires_at,
            seq,
            old.record.version,
            old.events,
        )
        sql = _SQL_SWAP[None if log is None else log.replace]
        if log is not None:
            params_log = (log.first + log.events, log.event_bytes, log.stored)
        max_bytes = self.retention.max_bytes
        in_conversation = None if conversation is None else self._conversation_write(conversation)

        def swap(conn: sqlite3.Connection) -> bool:
            now = self._now()
            before = None if max_bytes is None else self._entry_bytes(conn, seq)
            row = conn.execute(
                sql, _numbered(*params, now) if log is None else _numbered(*params, now, *params_log)
            ).fetchone()
            if row is None:
                return False
            if in_conversation is not None and not in_conversation(conn, now):
                raise _sql.Abort(result=False)  # the conversation changed: the response's update is undone too
            after, due = row
            if log is not None:
                self._write_log(conn, seq, log)
            if due is not None and due <= now:
                self._sweep_rows(conn, now, SWEEP_BATCH)
            if before is not None:
                self._room_for_growth(conn, seq, grows=after - before, entry=after, finished=terminal, id=new.id)
            self._state().cached.append((seq, new.version, new, len(text)))
            return True

        return self._write(swap)

    def _append(self, old: Stored, log: LogWrite) -> bool:
        seq = old.incarnation
        params = (log.first + log.events, log.event_bytes, log.stored, seq, old.record.version, old.events)
        max_bytes = self.retention.max_bytes
        finished = old.record.is_terminal

        def append(conn: sqlite3.Connection) -> bool:
            row = conn.execute(_SQL_APPEND, (*params, self._now())).fetchone()
            if row is None:
                return False
            self._write_log(conn, seq, log)
            if max_bytes is not None:
                self._room_for_growth(conn, seq, grows=log.stored, entry=row[0], finished=finished, id=old.record.id)
            return True

        return self._write(append)

    @staticmethod
    def _entry_bytes(conn: sqlite3.Connection, seq: int) -> int | None:
        row = conn.execute("SELECT size + log_bytes FROM responses WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else int(row[0])

    @staticmethod
    def _write_log(conn: sqlite3.Connection, seq: int, log: LogWrite) -> None:
        if log.replace:
            conn.execute("DELETE FROM chunks WHERE response = ?", (seq,))
        conn.execute(_SQL_CHUNK, (seq, log.first, log.events, log.text))

    def _byte_counters(self, conn: sqlite3.Connection) -> tuple[int, int]:
        total, active = conn.execute("SELECT bytes, active_bytes FROM counters").fetchone()
        return total, active

    def _remove(self, old: Stored) -> bool:
        record = old.record

        def remove(conn: sqlite3.Connection) -> bool:
            now = self._now()
            self._sweep_rows(conn, now, SWEEP_BATCH)
            row = conn.execute(
                f"DELETE FROM responses WHERE seq = ? AND version = ? AND {_VISIBLE} RETURNING owner, id",
                (old.incarnation, record.version, now),
            ).fetchone()
            if row is None:
                return False
            self._unlinked(conn, [(old.incarnation, row[0], row[1])], "deleted")
            return True

        return self._write(remove)

    def _unlink(self, conn: sqlite3.Connection, rows: list[tuple[int, str, str]], why: str) -> None:
        """Remove the records ``rows`` (``(seq, owner key, id)``) and count them as ``why``.

        The delete trigger removes their chunks and leaves their tombstones.
        """
        for seq, _, _ in rows:
            conn.execute("DELETE FROM responses WHERE seq = ?", (seq,))
        self._unlinked(conn, rows, why)

    def _unlinked(self, conn: sqlite3.Connection, rows: list[tuple[int, str, str]], why: str) -> None:
        """Bookkeeping after deleting ``rows``: the count of ``why``, the tombstones' bound, wake-ups, the cache."""
        conn.execute(_SQL_UNLINKED[why], (len(rows),))
        conn.execute(_SQL_TRIM, (min(CURSOR_MEMORY, cursor_memory(self.retention.max_records)),))
        state = self._state()
        for seq, key, id in rows:
            state.wakes.append((_owner_of(key), id))
            state.cached.append((seq, 0, None, 0))

    def _sweep_rows(self, conn: sqlite3.Connection, now: float, limit: int | None) -> int:
        sql = "SELECT seq, owner, id FROM responses WHERE expires_at <= ? ORDER BY expires_at, seq"
        if limit is None:
            rows = conn.execute(sql, (now,)).fetchall()
        else:
            rows = conn.execute(sql + " LIMIT ?", (now, limit)).fetchall()
        if rows:
            self._unlink(conn, rows, "expired")
        return len(rows)

    def _sweep(self, limit: int | None) -> int:
        now = self._now()  # validated: a broken clock must refuse the write before anything is removed
        return self._write(lambda conn: self._sweep_rows(conn, now, limit))

    def _leased(self, now: float, limit: int) -> list[ResponseRecord]:
        rows = self._query(
            lambda conn: conn.execute(
                "SELECT seq, version, record FROM responses WHERE lease_expires_at <= ? AND terminal = 0 "
                f"AND {_VISIBLE} ORDER BY lease_expires_at, seq LIMIT ?",
                (now, now, limit),
            ).fetchall()
        )
        return [self._record(seq, version, text) for seq, version, text in rows]

    # ------------------------------------------------------------------ conversations

    def _conversation_state(self, owner: str | None, id: str, row: Sequence[Any]) -> ConversationState:
        """The state of ``(owner, id)`` from its row ``(seq, version, items, next_position, expires_at, record)``.

        Raises:
            StorageError: the row is not one this backend writes (a damaged file).
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
            StorageError: the row is not one this backend writes (a damaged file).
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
        if not _encodable(id):
            return None  # no stored id has a lone surrogate
        key = _owner_key(owner)
        now = self._now()
        row = self._query(lambda conn: conn.execute(_SQL_CONVERSATION, (key, id, now)).fetchone())
        return None if row is None else self._conversation_state(owner, id, row)

    def _conversation_items(
        self, owner: str | None, id: str, after: int | None, count: int, *, descending: bool
    ) -> tuple[ConversationState, list[Positioned]] | None:
        if not _encodable(id):
            return None
        key = _owner_key(owner)
        now = self._now()
        sql = _SQL_ITEMS[descending, after is not None]

        def read(conn: sqlite3.Connection) -> tuple[ConversationState, list[Positioned]] | None:
            row = conn.execute(_SQL_CONVERSATION, (key, id, now)).fetchone()
            if row is None:
                return None
            state = self._conversation_state(owner, id, row)
            params = (row[0], count) if after is None else (row[0], after, count)
            return state, [self._positioned(id, item) for item in conn.execute(sql, params).fetchall()]

        return self._snapshot_read(read)

    def _conversation_item(self, owner: str | None, id: str, item_id: str) -> Positioned | None:
        if not (_encodable(id) and _encodable(item_id)):
            return None
        params = (_owner_key(owner), id, self._now(), item_id)
        row = self._query(lambda conn: conn.execute(_SQL_CONVERSATION_ITEM, params).fetchone())
        return None if row is None else self._positioned(id, row)

    def _conversation_held(self, owner: str | None, id: str, item_ids: Sequence[str]) -> set[str]:
        asked = [item_id for item_id in item_ids if _encodable(item_id)]
        if not (asked and _encodable(id)):
            return set()
        params = (_owner_key(owner), id, self._now(), json.dumps(asked))
        rows = self._query(lambda conn: conn.execute(_SQL_CONVERSATION_HELD, params).fetchall())
        return {item_id for (item_id,) in rows}

    def _conversation_put(self, state: ConversationState, items: Sequence[Positioned]) -> None:
        record = state.record
        values = (_owner_key(record.owner), *_sql.conversation_values(state))
        rows = _sql.item_rows(items)
        limit = self.retention.max_records

        def put(conn: sqlite3.Connection) -> None:
            now = self._now()
            self._sweep_conversation_rows(conn, now, SWEEP_BATCH)
            if limit is not None and self._conversation_count(conn) >= limit:
                self._sweep_conversation_rows(conn, now, None)
                if self._conversation_count(conn) >= limit:
                    raise ConversationFull(record.id, "max_records", limit)
            (seq,) = conn.execute(_SQL_CONVERSATION_INSERT, values).fetchone()
            conn.executemany(_SQL_ITEM_INSERT, [(seq, *row) for row in rows])

        self._write(put)

    def _conversation_write(self, write: ConversationWrite) -> Callable[[sqlite3.Connection, float], bool]:
        """The statements of ``write``, as a function to run inside a write transaction at a time ``now``.

        It returns ``False``, having changed nothing, if the conversation is no longer visible at ``write.old``'s
        version. Everything is encoded here, before the transaction begins.
        """
        old = write.old.record
        params = (*_sql.swap_values(write), _owner_key(old.owner), old.id, old.version)
        rows = _sql.item_rows(write.append)
        remove = write.remove

        def apply(conn: sqlite3.Connection, now: float) -> bool:
            row = conn.execute(_SQL_CONVERSATION_SWAP, (*params, now)).fetchone()
            if row is None:
                return False
            seq = row[0]
            if remove is not None and conn.execute(_SQL_ITEM_DELETE, (seq, remove)).rowcount != 1:
                raise _sql.Damaged(f"the items of conversation {old.id!r}", LookupError(f"{remove!r} is missing"))
            if rows:
                conn.executemany(_SQL_ITEM_INSERT, [(seq, *item) for item in rows])
            return True

        return apply

    def _conversation_swap(self, write: ConversationWrite) -> bool:
        apply = self._conversation_write(write)
        return self._write(lambda conn: apply(conn, self._now()))

    def _conversation_remove(self, old: ConversationState) -> bool:
        record = old.record
        params = (_owner_key(record.owner), record.id, record.version)
        return self._write(lambda conn: conn.execute(_SQL_CONVERSATION_DELETE, (*params, self._now())).rowcount == 1)

    def _sweep_conversations(self) -> int:
        now = self._now()  # validated before the write, as for responses
        return self._write(lambda conn: self._sweep_conversation_rows(conn, now, None))

    @staticmethod
    def _sweep_conversation_rows(conn: sqlite3.Connection, now: float, limit: int | None) -> int:
        """Delete up to ``limit`` (``None``: every) conversation expired at ``now``, with their items."""
        return int(conn.execute(_SQL_CONVERSATIONS_SWEEP, _numbered(now, -1 if limit is None else limit)).rowcount)

    def _conversation_count(self, conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT conversations FROM counters").fetchone()
        if row is None:
            raise StorageError(f"{self.path!r} is damaged: its counters row is missing")
        return int(row[0])

    # ------------------------------------------------------------------ reads

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
            batch = min(batch * 4, _sql.SCAN_BATCH * 4)

    def _find_newest(
        self, owner: str | None, text: str, matches: Callable[[ResponseRecord], bool]
    ) -> ResponseRecord | None:
        # SQLite looks for the text in every row of the owner (instr, in C) and hands over only the rows holding it.
        key = _owner_key(owner)
        now = self._now()

        def read(conn: sqlite3.Connection) -> ResponseRecord | None:
            rows = conn.execute(_SQL_HOLDING[False], (key, now, text, _FIND_BATCH)).fetchall()
            while True:
                for _, seq, version, record_text in rows:
                    record = self._record(seq, version, record_text)
                    if matches(record):
                        return record
                if len(rows) < _FIND_BATCH:
                    return None
                last = rows[-1]
                rows = conn.execute(_SQL_HOLDING[True], (key, last[0], last[1], now, text, _FIND_BATCH)).fetchall()

        return self._snapshot_read(read)

    def _events(self, owner: str | None, id: str, after: int) -> tuple[Stored, tuple[Chunk, ...]] | None:
        if not _encodable(id):
            return None
        key = _owner_key(owner)
        now = self._now()

        def read(conn: sqlite3.Connection) -> tuple[Stored, tuple[Chunk, ...]] | None:
            row = conn.execute(_SQL_ROW, (key, id)).fetchone()
            if row is None or (row[3] is not None and row[3] <= now):
                return None
            stored = self._stored(row)
            if stored.events - 1 <= after:
                return stored, ()
            rows = conn.execute(_SQL_CHUNKS, _numbered(stored.incarnation, after + 1)).fetchall()
            return stored, self._chunks(rows, stored, after)

        return self._snapshot_read(read)

    def _chunks(self, rows: list[Any], stored: Stored, after: int) -> tuple[Chunk, ...]:
        """Check that ``rows`` are the chunks holding events ``after + 1`` to the end of the log, in order.

        Raises:
            StorageError: they are not (a damaged file).
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

    def _stats_rows(self, conn: sqlite3.Connection, now: float) -> tuple[Sequence[Any], list[Any]]:
        row = conn.execute(_SQL_COUNTERS).fetchone()
        if row is None:
            raise StorageError(f"{self.path!r} is damaged: its counters row is missing")
        pending = conn.execute(
            "SELECT status, count(*), sum(size + log_bytes) FROM responses WHERE expires_at <= ? GROUP BY status",
            (now,),
        ).fetchall()
        return row, pending

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
        _sql.invariant(not state.wakes, "wake-ups were left pending")
        _sql.invariant(not state.cached, "cache updates were left pending")
        _sql.invariant(len(self._touches) <= TOUCH_LOG, "the touch log is unbounded")
        _sql.invariant(len(self._cache) <= _sql.CACHE_RECORDS, "the record cache is unbounded")
        with state.mutex:
            self._check_file_contents(state.conn)

    def _check_file_contents(self, conn: sqlite3.Connection) -> None:
        _sql.invariant(conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)], "integrity_check failed")
        _sql.invariant(conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal", "not in WAL mode")
        _sql.invariant(conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION, "wrong schema version")
        _begin_read(conn)
        try:
            counters = conn.execute(_sql.CHECK_COUNTERS).fetchall()
            _sql.invariant(len(counters) == 1, "the counters row is missing or doubled")
            last_seq, created, deleted, evicted, expired, total, active, conversations = counters[0][:8]
            status_counts = dict(zip(_sql.STATUS_COLUMNS, counters[0][8:], strict=True))
            rows = conn.execute(
                "SELECT seq, owner, id, created_at, status, terminal, version, ttl, expires_at, last_used, "
                "lease_expires_at, size, event_count, event_bytes, log_bytes, record FROM responses"
            ).fetchall()
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
            _sql.invariant(by_status == status_counts, "status counters disagree with the records")
            _sql.invariant(sizes == [total, active], "byte counters disagree with the records")
            _sql.invariant(created - deleted - evicted - expired == len(rows), "lifetime counters do not add up")
            _sql.invariant(all(0 < seq <= last_seq for seq in seqs), "a record's seq is not below the counter")
            indexed = {
                seq
                for (seq,) in conn.execute(
                    "SELECT seq FROM responses INDEXED BY responses_lease WHERE lease_expires_at IS NOT NULL"
                )
            }
            _sql.invariant(indexed == leased, "the lease index disagrees with the records' leases")
            finished = {
                seq
                for (seq,) in conn.execute("SELECT seq FROM responses INDEXED BY responses_recency WHERE terminal = 1")
            }
            _sql.invariant(
                finished == {row[0] for row in rows if row[5]}, "the recency index disagrees with the finished records"
            )
            orphans = conn.execute(
                "SELECT count(*) FROM chunks WHERE response NOT IN (SELECT seq FROM responses)"
            ).fetchone()[0]
            _sql.invariant(orphans == 0, "chunks outlived their response")
            removed = conn.execute("SELECT owner, id, seq FROM removed").fetchall()
            # The bound of this store's settings holds after its first removal; CURSOR_MEMORY always (stores of other
            # settings may share the file).
            _sql.invariant(len(removed) <= CURSOR_MEMORY, "tombstones unbounded")
            _sql.invariant(not ({(key, id) for key, id, _ in removed} & live), "a live record is also removed")
            _sql.invariant(not ({seq for _, _, seq in removed} & seqs), "a tombstone shares a live record's seq")
            _sql.invariant(all(seq <= last_seq for _, _, seq in removed), "a tombstone's seq is above the counter")
            self._check_conversations(conn, conversations)
        finally:
            _rollback(conn)
        stats = self._stats_of(conn, self._now())
        _sql.invariant(stats.records == sum(stats.by_status.values()), "stats.by_status does not add up")
        _sql.invariant(
            stats.records == stats.created - stats.deleted - stats.evicted - stats.expired,
            "stats do not add up",
        )

    def _check_row(self, conn: sqlite3.Connection, row: tuple[Any, ...]) -> ResponseRecord:
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
            used,
            lease,
            size,
            count,
            event_bytes,
            log_bytes,
            text,
        ) = row
        record = self._check_loaded(seq, key, id, version, text)
        _sql.invariant(
            (record.created_at, record.status.value, int(record.is_terminal), record.version)
            == (created_at, status, terminal, version),
            f"the columns of {id!r} disagree with its JSON",
        )
        _sql.invariant(_sql.record_text(record) == text, f"the JSON of {id!r} is not what to_dict() writes")
        _sql.invariant(record.version >= 1, f"{id!r} has version {record.version}")
        _sql.invariant(
            (record.completed_at is not None) == (record.status is ResponseStatus.COMPLETED),
            f"completed_at does not follow the status of {id!r}",
        )
        _sql.invariant(size == record_size(record), f"the stored size of {id!r} is not its record_size")
        self._check_lease_columns(record, lease, used, ttl, expires_at)
        chunks = conn.execute(
            "SELECT first, count, text FROM chunks WHERE response = ? ORDER BY first", (seq,)
        ).fetchall()
        self._check_log(record, chunks, count, event_bytes, log_bytes)
        return record

    def _check_conversations(self, conn: sqlite3.Connection, counted: int) -> None:
        """The conversations agree with their JSON, their count and their items; no item outlives its conversation."""
        rows = conn.execute(_sql.CHECK_CONVERSATIONS).fetchall()
        _sql.invariant(counted == len(rows), "the conversation count disagrees with the rows")
        for seq, key, id, version, items, next_position, expires_at, text in rows:
            try:
                state = self._conversation_state(
                    _owner_of(key), id, (seq, version, items, next_position, expires_at, text)
                )
            except StorageError as exc:
                raise AssertionError(str(exc)) from None
            _sql.invariant(_sql.json_text(state.record.to_dict()) == text, f"the JSON of conversation {id!r}")
            held = conn.execute(
                "SELECT position, item_id, item FROM conversation_items WHERE conversation = ? ORDER BY position",
                (seq,),
            ).fetchall()
            _sql.invariant(len(held) == items, f"the item count of conversation {id!r} disagrees with its items")
            _sql.invariant(
                all(0 <= row[0] < next_position for row in held), f"an item of {id!r} is beyond its positions"
            )
            _sql.invariant(len({row[1] for row in held}) == len(held), f"the item ids of {id!r} repeat")
            self._check_items(id, held)
        orphans = conn.execute(
            "SELECT count(*) FROM conversation_items WHERE conversation NOT IN (SELECT seq FROM conversations)"
        ).fetchone()[0]
        _sql.invariant(orphans == 0, "items outlived their conversation")


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
