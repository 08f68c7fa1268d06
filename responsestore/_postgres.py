"""``PostgresStore``: a durable backend on a PostgreSQL server (psycopg 3), shared by every process that opens it.

Layout: one schema per store (``schema=``, default ``responsestore``), created when missing, holding

- ``responses``: one row per stored record. ``seq`` is the record's incarnation (from the sequence
  ``incarnations``: never given twice, even by a transaction rolled back) and breaks ``created_at`` ties;
  ``record`` is its JSON text (:meth:`ResponseRecord.to_dict`); ``owner``, ``id``, ``created_at``, ``status``,
  ``terminal``, ``version``, ``previous`` (the ``previous_response_id``) and ``lease_expires_at`` (only while the
  record is queued or in progress) repeat what queries need; ``ttl`` and ``expires_at`` drive expiry;
  ``last_used`` is the recency of a finished record (from the sequence ``recency``; ``NULL`` while it is active);
  ``size``, ``event_count``, ``event_bytes`` and ``log_bytes`` as in the SQLite store.
- ``chunks``: the event logs, one row per :class:`~responsestore._contract.LogWrite` chunk, keyed by
  ``(response, first)``.
- ``removed``: where the last :data:`CURSOR_MEMORY` removed records (deleted, expired or evicted) stood, so a
  page walk whose cursor was removed meanwhile goes on.
- ``counters``: one row: the lifetime counts, the records per status, ``bytes``/``active_bytes`` and the number of
  conversations. Every write transaction begins by locking this row (``SELECT ... FOR UPDATE``), so the writes
  to one schema are serialized, across threads, processes and hosts, as SQLite's ``BEGIN IMMEDIATE`` serializes
  them; reads never take it.
- ``conversations`` and ``conversation_items``: as in the SQLite store.
- ``meta``: marks the schema as a responsestore schema and holds its version.

Triggers keep the counters and the side tables in step with ``responses`` and ``conversations``, inside the
statement that changes a row (the counts cannot drift from the rows).

Operations: each atomic storage operation is one transaction (a write: ``BEGIN``, the lock, its conditional
statements, ``COMMIT``) or one statement; a page, a record with its events and the stats read in one
``REPEATABLE READ READ ONLY`` transaction (one snapshot); a chain is one recursive ``SELECT``. Recency marks of
reads are queued in this process and written by its next write, as in the SQLite store. Each thread has its own
connection (autocommit, explicit transactions), used under a per-connection mutex so :meth:`close` can wait for
a call in flight; a connection the server dropped is replaced at the next call.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import math
import os
import re
import threading
import time
import urllib.parse
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import psycopg
import psycopg.conninfo

from . import _sql
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
from ._owners import owner_key as _plain_owner_key
from ._owners import owner_of as _owner_of
from ._paging import unknown_cursor
from ._records import ResponseRecord, ResponseStatus
from ._retention import DEFAULT_MAX_RECORDS, DEFAULT_TTL, SWEEP_BATCH, record_size
from .errors import ConversationFull, InvalidArgument, ResponseExists, ResponseStoreError, StorageError

__all__ = ["DEFAULT_SCHEMA", "SCHEMA_VERSION", "PostgresStore"]

_T = TypeVar("_T")

#: The version of the tables this code writes; a schema of another version is refused.
SCHEMA_VERSION = 1
DEFAULT_SCHEMA = "responsestore"
#: Seconds between re-checks while ``wait``/``stream`` wait for a write made by another process.
DEFAULT_POLL_INTERVAL = 0.05
#: Seconds a statement may run, and a write may wait for the lock other writers hold, before it fails.
DEFAULT_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 10.0

_MAX_KEY = 256
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


# ---------------------------------------------------------------------------------------------- the schema


def _function(name: str, body: str) -> str:
    return (
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $body$ "
        f"BEGIN {body} END $body$"
    )


def _schema() -> list[str]:
    """The statements that create the tables in an empty schema (the connection's ``search_path``)."""
    return [
        "CREATE SEQUENCE incarnations",
        "CREATE SEQUENCE recency",
        """CREATE TABLE responses (
            seq bigint PRIMARY KEY,
            owner text NOT NULL,
            id text NOT NULL,
            created_at double precision NOT NULL,
            status text NOT NULL,
            terminal boolean NOT NULL,
            version bigint NOT NULL,
            previous text,
            ttl double precision,
            expires_at double precision,
            last_used bigint,
            lease_expires_at double precision,
            size bigint NOT NULL,
            event_count bigint NOT NULL DEFAULT 0,
            event_bytes bigint NOT NULL DEFAULT 0,
            log_bytes bigint NOT NULL DEFAULT 0,
            record text NOT NULL,
            UNIQUE (owner, id)
        )""",
        "CREATE INDEX responses_order ON responses (owner, created_at, seq)",
        "CREATE INDEX responses_expiry ON responses (expires_at) WHERE expires_at IS NOT NULL",
        "CREATE INDEX responses_recency ON responses (last_used, seq) WHERE terminal",
        "CREATE INDEX responses_lease ON responses (lease_expires_at, seq) WHERE lease_expires_at IS NOT NULL",
        """CREATE TABLE chunks (
            response bigint NOT NULL,
            first bigint NOT NULL,
            count bigint NOT NULL,
            text text NOT NULL,
            PRIMARY KEY (response, first)
        )""",
        """CREATE TABLE removed (
            n bigserial PRIMARY KEY,
            owner text NOT NULL,
            id text NOT NULL,
            created_at double precision NOT NULL,
            seq bigint NOT NULL,
            UNIQUE (owner, id)
        )""",
        "CREATE TABLE counters (only_row int PRIMARY KEY CHECK (only_row = 0), last_seq bigint NOT NULL, "
        "created bigint NOT NULL, deleted bigint NOT NULL, evicted bigint NOT NULL, expired bigint NOT NULL, "
        "bytes bigint NOT NULL, active_bytes bigint NOT NULL, conversations bigint NOT NULL, "
        + ", ".join(f"{column} bigint NOT NULL" for column in _sql.STATUS_COLUMNS.values())
        + ")",
        "INSERT INTO counters VALUES (0" + ", 0" * (8 + len(_sql.STATUS_COLUMNS)) + ")",
        _function(
            "responses_inserted",
            f"UPDATE counters SET last_seq = greatest(last_seq, NEW.seq), created = created + 1, "
            f"{_sql.counted('NEW', '+', '::int')}; "
            "DELETE FROM removed WHERE owner = NEW.owner AND id = NEW.id; RETURN NULL;",
        ),
        _function("responses_changed", f"UPDATE counters SET {_sql.moved('::int')}; RETURN NULL;"),
        _function(
            "responses_deleted",
            f"UPDATE counters SET {_sql.counted('OLD', '-', '::int')}; DELETE FROM chunks WHERE response = OLD.seq; "
            "DELETE FROM removed WHERE owner = OLD.owner AND id = OLD.id; "
            "INSERT INTO removed (owner, id, created_at, seq) VALUES (OLD.owner, OLD.id, OLD.created_at, OLD.seq); "
            "RETURN NULL;",
        ),
        "CREATE TRIGGER responses_inserted AFTER INSERT ON responses "
        "FOR EACH ROW EXECUTE FUNCTION responses_inserted()",
        "CREATE TRIGGER responses_changed AFTER UPDATE OF status, terminal, size, log_bytes ON responses "
        "FOR EACH ROW EXECUTE FUNCTION responses_changed()",
        "CREATE TRIGGER responses_deleted AFTER DELETE ON responses FOR EACH ROW EXECUTE FUNCTION responses_deleted()",
        """CREATE TABLE conversations (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            owner text NOT NULL,
            id text NOT NULL,
            version bigint NOT NULL,
            items bigint NOT NULL,
            next_position bigint NOT NULL,
            expires_at double precision,
            record text NOT NULL,
            UNIQUE (owner, id)
        )""",
        "CREATE INDEX conversations_expiry ON conversations (expires_at) WHERE expires_at IS NOT NULL",
        """CREATE TABLE conversation_items (
            conversation bigint NOT NULL,
            position bigint NOT NULL,
            item_id text NOT NULL,
            item text NOT NULL,
            PRIMARY KEY (conversation, position),
            UNIQUE (conversation, item_id)
        )""",
        _function("conversations_inserted", "UPDATE counters SET conversations = conversations + 1; RETURN NULL;"),
        _function(
            "conversations_deleted",
            "UPDATE counters SET conversations = conversations - 1; "
            "DELETE FROM conversation_items WHERE conversation = OLD.seq; RETURN NULL;",
        ),
        "CREATE TRIGGER conversations_inserted AFTER INSERT ON conversations FOR EACH ROW "
        "EXECUTE FUNCTION conversations_inserted()",
        "CREATE TRIGGER conversations_deleted AFTER DELETE ON conversations FOR EACH ROW "
        "EXECUTE FUNCTION conversations_deleted()",
        "CREATE TABLE meta (name text PRIMARY KEY, value text NOT NULL)",
        f"INSERT INTO meta VALUES ('application', 'responsestore'), ('version', '{SCHEMA_VERSION}')",
    ]


# Statements built from constant names (never from caller input).
#: A write's first round trip: begin, and lock the counters row (waiting for the writer holding it), reading it and
#: when the next record expires. In READ COMMITTED each later statement takes a new snapshot, so it sees every write
#: committed before the lock. (The expiry is read in the snapshot taken before the wait: it may miss what the writer
#: waited for inserted, which is only ever a record expiring at once; the next write sweeps it. Reads never show an
#: expired record, and stats count it as expired.)
_SQL_BEGIN = (
    f"BEGIN; SELECT last_seq, {_sql.ACTIVE_SUM}, {_sql.FINISHED_SUM}, bytes, active_bytes, "
    "(SELECT min(expires_at) FROM responses WHERE expires_at IS NOT NULL) FROM counters FOR UPDATE"
)
_SQL_STATE_AGAIN = f"SELECT last_seq, {_sql.ACTIVE_SUM}, {_sql.FINISHED_SUM}, bytes, active_bytes, NULL FROM counters"
_SQL_COUNTERS = f"SELECT created, deleted, evicted, expired, bytes, {_sql.STATUS_LIST} FROM counters"
_SQL_UNLINKED = {why: f"UPDATE counters SET {why} = {why} + %s" for why in ("deleted", "evicted", "expired")}
_INSERTED = (
    "seq, owner, id, created_at, status, terminal, version, previous, ttl, expires_at, lease_expires_at, size, "
    "record, last_used"
)
_SQL_INSERT = (
    f"INSERT INTO responses ({_INSERTED}) VALUES (nextval('incarnations'), %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
    "%s, %s, CASE WHEN %s THEN nextval('recency') END) ON CONFLICT (owner, id) DO NOTHING RETURNING seq"
)
_SQL_ROW = (
    "SELECT seq, version, record, expires_at, terminal, event_count, event_bytes, size "
    "FROM responses WHERE owner = %s AND id = %s"
)
_VISIBLE = "(expires_at IS NULL OR expires_at > %s)"
_SWAP_SET = (
    "UPDATE responses SET status = %s, terminal = %s, version = %s, record = %s, size = %s, lease_expires_at = %s, "
    "last_used = CASE WHEN %s THEN nextval('recency') END"
)
_SWAP_WHERE = f" WHERE seq = %s AND version = %s AND event_count = %s AND {_VISIBLE} RETURNING size + log_bytes"
_SQL_SWAP = {
    None: _SWAP_SET + _SWAP_WHERE,
    False: _SWAP_SET + ", event_count = %s, event_bytes = %s, log_bytes = log_bytes + %s" + _SWAP_WHERE,
    True: _SWAP_SET + ", event_count = %s, event_bytes = %s, log_bytes = %s" + _SWAP_WHERE,
}
_SQL_APPEND = (
    "UPDATE responses SET event_count = %s, event_bytes = %s, log_bytes = log_bytes + %s "
    f"WHERE seq = %s AND version = %s AND event_count = %s AND {_VISIBLE} RETURNING size + log_bytes"
)
_SQL_CHUNK = "INSERT INTO chunks (response, first, count, text) VALUES (%s, %s, %s, %s)"
_SQL_CHUNKS = (
    "SELECT first, count, text FROM chunks WHERE response = %(seq)s AND first >= coalesce("
    "(SELECT max(first) FROM chunks WHERE response = %(seq)s AND first <= %(after)s), 0) ORDER BY first"
)
#: A removed row's owner in a form :func:`_owner_of` reads (a long owner's key is a digest: its JSON then).
_WAKE = "CASE WHEN left(owner, 1) = '#' THEN '~' || (record::json -> 'owner')::text ELSE owner END"
_SQL_LRU = f"SELECT seq, {_WAKE}, id, size + log_bytes FROM responses WHERE terminal ORDER BY last_used, seq LIMIT %s"
_SQL_TOUCH = "UPDATE responses SET last_used = nextval('recency') WHERE owner = %s AND id = %s AND terminal"
_SQL_REFRESH = (
    "UPDATE responses SET expires_at = CASE WHEN ttl IS NULL THEN NULL ELSE %s + ttl END, "
    "last_used = CASE WHEN terminal THEN nextval('recency') END "
    f"WHERE owner = %s AND id = %s AND version = %s AND {_VISIBLE} RETURNING seq, terminal, size + log_bytes"
)
_SQL_TRIM = "DELETE FROM removed WHERE n <= (SELECT max(n) FROM removed) - %s"
_SQL_SWEEP = (
    "DELETE FROM responses WHERE seq IN (SELECT seq FROM responses WHERE expires_at <= %s "
    f"ORDER BY expires_at, seq LIMIT %s) RETURNING seq, {_WAKE}, id"
)
_SCAN_SELECT = "SELECT created_at, seq, version, record, id FROM responses WHERE owner = %s "
_SCAN_VISIBLE = f"AND {_VISIBLE} "
_SQL_HOLDING = {
    after: _SCAN_SELECT
    + ("AND (created_at, seq) < (%s, %s) " if after else "")
    + _SCAN_VISIBLE
    + "AND strpos(record, %s) > 0 ORDER BY created_at DESC, seq DESC LIMIT 1"
    for after in (False, True)
}
_SQL_SCAN = {
    (False, False): _SCAN_SELECT + _SCAN_VISIBLE + "ORDER BY created_at, seq LIMIT %s",
    (True, False): _SCAN_SELECT + _SCAN_VISIBLE + "ORDER BY created_at DESC, seq DESC LIMIT %s",
    (False, True): _SCAN_SELECT
    + "AND (created_at, seq) > (%s, %s) "
    + _SCAN_VISIBLE
    + "ORDER BY created_at, seq LIMIT %s",
    (True, True): _SCAN_SELECT
    + "AND (created_at, seq) < (%s, %s) "
    + _SCAN_VISIBLE
    + "ORDER BY created_at DESC, seq DESC LIMIT %s",
}
_SQL_CHAIN = (
    "WITH RECURSIVE chain(n, seq, version, record, id, previous) AS ("
    " SELECT 1, seq, version, record, id, previous FROM responses"
    " WHERE owner = %(key)s AND id = %(id)s AND (expires_at IS NULL OR expires_at > %(now)s)"
    " UNION ALL"
    " SELECT chain.n + 1, r.seq, r.version, r.record, r.id, r.previous"
    " FROM chain JOIN responses r ON r.owner = %(key)s AND r.id = chain.previous"
    " WHERE chain.n < %(limit)s AND (r.expires_at IS NULL OR r.expires_at > %(now)s)"
    ") SELECT seq, version, record, id FROM chain ORDER BY n"
)

_SQL_CONVERSATION = (
    "SELECT seq, version, items, next_position, expires_at, record FROM conversations "
    f"WHERE owner = %s AND id = %s AND {_VISIBLE}"
)
_IN_CONVERSATION = (
    "FROM conversations c JOIN conversation_items i ON i.conversation = c.seq "
    "WHERE c.owner = %s AND c.id = %s AND (c.expires_at IS NULL OR c.expires_at > %s) "
)
_SQL_CONVERSATION_ITEM = "SELECT i.position, i.item_id, i.item " + _IN_CONVERSATION + "AND i.item_id = %s"
_SQL_CONVERSATION_HELD = "SELECT i.item_id " + _IN_CONVERSATION + "AND i.item_id = ANY(%s)"
_ITEMS_SELECT = "SELECT position, item_id, item FROM conversation_items WHERE conversation = %s "
_SQL_ITEMS = {
    (False, False): _ITEMS_SELECT + "ORDER BY position LIMIT %s",
    (True, False): _ITEMS_SELECT + "ORDER BY position DESC LIMIT %s",
    (False, True): _ITEMS_SELECT + "AND position > %s ORDER BY position LIMIT %s",
    (True, True): _ITEMS_SELECT + "AND position < %s ORDER BY position DESC LIMIT %s",
}
_SQL_CONVERSATION_INSERT = (
    "INSERT INTO conversations (owner, id, version, items, next_position, expires_at, record) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING seq"
)
_SQL_ITEM_INSERT = "INSERT INTO conversation_items (conversation, position, item_id, item) VALUES (%s, %s, %s, %s)"
_SQL_CONVERSATION_SWAP = (
    "UPDATE conversations SET version = %s, items = %s, next_position = %s, expires_at = %s, record = %s "
    f"WHERE owner = %s AND id = %s AND version = %s AND {_VISIBLE} RETURNING seq"
)
_SQL_ITEM_DELETE = "DELETE FROM conversation_items WHERE conversation = %s AND item_id = %s"
_SQL_CONVERSATION_DELETE = f"DELETE FROM conversations WHERE owner = %s AND id = %s AND version = %s AND {_VISIBLE}"
_SQL_CONVERSATIONS_SWEEP = (
    "DELETE FROM conversations WHERE seq IN "
    "(SELECT seq FROM conversations WHERE expires_at <= %s ORDER BY expires_at LIMIT %s)"
)


# ---------------------------------------------------------------------------------------------- encodings


def _usable(text: str) -> bool:
    """Whether PostgreSQL can hold ``text`` (no NUL, no lone surrogate): no stored id or key is otherwise."""
    return "\0" not in text and (text.isascii() or _encodable(text))


def _owner_key(owner: str | None) -> str:
    """The stored form of an owner: as the other backends store it, but NUL escaped and a long one a digest.

    (A b-tree index entry holds at most about 2.7 kB: a key longer than :data:`_MAX_KEY` becomes ``#`` and its
    SHA-256; the record's JSON keeps the owner.)
    """
    key = _plain_owner_key(owner)
    if "\0" in key:
        key = "~" + json.dumps(owner)
    if len(key) > _MAX_KEY:
        key = "#" + hashlib.sha256(key.encode()).hexdigest()
    return key


def _check_schema(value: object) -> str:
    if isinstance(value, str) and _SCHEMA_NAME.fullmatch(value):
        return value
    raise InvalidArgument(
        f"schema must be 1 to 63 characters from a-z 0-9 _ (not starting with a digit), not {describe(value)}"
    )


def _check_seconds(value: object, name: str, *, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(f"{name} must be a number of seconds, not {type(value).__name__}")
    seconds = float(value)
    if not (math.isfinite(seconds) and minimum < seconds <= 24 * 3600):
        raise InvalidArgument(f"{name} must be more than {minimum:g} and at most 86400 seconds, not {describe(value)}")
    return seconds


# ---------------------------------------------------------------------------------------------- URLs


def _url_integer(name: str, text: str) -> int | None:
    return _sql.url_integer("PostgreSQL", name, text)


def _url_seconds(name: str, text: str) -> float | None:
    return _sql.url_seconds("PostgreSQL", name, text, none=name == "ttl", said="a number of seconds")


#: The query parameters of a URL that set constructor arguments; every other one goes to libpq.
_URL_PARAMETERS: Mapping[str, Callable[[str, str], Any]] = {
    "schema": lambda name, text: text,
    "max_bytes": _url_integer,
    "max_records": _url_integer,
    "ttl": _url_seconds,
    "poll_interval": _url_seconds,
    "timeout": _url_seconds,
}
_SCHEMES = ("postgresql+psycopg://", "postgresql://", "postgres://")


# ---------------------------------------------------------------------------------------------- threads

_INHERITED: list[psycopg.Connection[Any]] = []  # connections inherited through fork: never used, never closed


#: Idle connections of closed stores and of ended threads, by server and settings (``_Pool.key``): a store of this
#: process takes one instead of connecting anew (PostgreSQL starts a process for every connection).
_IDLE_LIMIT = 16


class _Pool:
    """The idle connections of this process; a forked child starts with none (its parent's are left alone)."""

    mutex = threading.Lock()
    idle: ClassVar[dict[tuple[str, int, int], list[psycopg.Connection[Any]]]] = {}

    @classmethod
    def park(cls, key: tuple[str, int, int], conn: psycopg.Connection[Any]) -> None:
        """Keep ``conn`` for a later store if it is idle and whole; else close it."""
        with contextlib.suppress(Exception):
            if not (conn.closed or conn.broken) and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                with cls.mutex:
                    kept = cls.idle.setdefault(key, [])
                    if len(kept) < _IDLE_LIMIT:
                        kept.append(conn)
                        return
        with contextlib.suppress(Exception):
            conn.close()

    @classmethod
    def take(cls, key: tuple[str, int, int], schema: str) -> psycopg.Connection[Any] | None:
        """An idle connection switched to ``schema``, or ``None``."""
        while True:
            with cls.mutex:
                kept = cls.idle.get(key)
                if not kept:
                    return None
                conn = kept.pop()
            try:
                conn.execute(f'SET search_path TO "{schema}"')  # also proves the connection still works
            except psycopg.Error:
                with contextlib.suppress(Exception):
                    conn.close()
                continue
            return conn


def _forget_pool() -> None:
    """In a forked child: start with no idle connections (the parent's stay its own)."""
    _Pool.mutex = threading.Lock()
    for kept in _Pool.idle.values():
        _INHERITED.extend(kept)
    _Pool.idle = {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


class _ThreadState(_sql.ThreadState[psycopg.Connection[Any]]):
    __slots__ = ()


def _release(
    connections: dict[Any, Any],
    mutex: threading.Lock,
    state_id: int,
    conn: psycopg.Connection[Any],
    key: tuple[str, int, int],
) -> None:
    """Give back the connection of a thread that has ended."""
    with mutex:
        connections.pop(state_id, None)
    _Pool.park(key, conn)


def _rollback(conn: psycopg.Connection[Any]) -> None:
    with contextlib.suppress(psycopg.Error):
        if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.execute("ROLLBACK")


# ---------------------------------------------------------------------------------------------- the store


class PostgresStore(_sql.SQLStore[psycopg.Connection[Any]]):
    """A durable store of OpenAI Responses API objects in a PostgreSQL schema, with the API of ``ResponseStore``.

    Several threads, processes and hosts may share one schema: every mutation is one transaction (the writes to a
    schema take turns on one row lock), every ``list`` page one consistent snapshot, and a record written anywhere
    is readable everywhere once the writing call returns. ``wait`` and ``stream`` notice writes made in this
    process at once and writes made elsewhere within ``poll_interval`` seconds.

    Args:
        conninfo: A libpq connection string or URL (``postgresql://USER:PASSWORD@HOST:PORT/DB``, or
            ``"host=... dbname=..."``).
        schema: The schema holding the store's tables (created with them when missing). Several stores may share a
            database under different schemas; they never see each other's records. A schema holding other tables,
            or this code's tables of another version, is refused with :class:`StorageError` and left untouched.
        ttl, max_records, clock, max_chain_depth, max_events, max_event_bytes, max_bytes: As for ``SQLiteStore``.
            Retention settings belong to each store object: give every process the same ones.
        poll_interval: Seconds between re-checks while waiting for writes made by other processes (default 0.05).
        timeout: Seconds a write may wait for other writers (and a statement may run twice as long) before it
            fails with :class:`StorageError` and changes nothing (default 30).
        connect_timeout: Seconds a connection attempt may take (default 10).
    """

    _owner_key = staticmethod(_owner_key)

    def __init__(
        self,
        conninfo: str = "",
        *,
        schema: str = DEFAULT_SCHEMA,
        ttl: float | datetime.timedelta | None = DEFAULT_TTL,
        max_records: int | None = DEFAULT_MAX_RECORDS,
        clock: Clock = time.time,
        max_chain_depth: int = DEFAULT_MAX_CHAIN_DEPTH,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        max_bytes: int | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
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
        if not isinstance(conninfo, str):
            raise InvalidArgument(f"conninfo must be a str, not {type(conninfo).__name__}")
        self.schema = _check_schema(schema)
        self._poll_interval = _check_seconds(poll_interval, "poll_interval")
        self.timeout = _check_seconds(timeout, "timeout")
        self.connect_timeout = _check_seconds(connect_timeout, "connect_timeout", minimum=0.999)
        try:
            params = psycopg.conninfo.conninfo_to_dict(conninfo)
        except psycopg.Error as exc:
            raise InvalidArgument(f"not a PostgreSQL connection string: {exc}"[:300]) from None
        self._conninfo = conninfo
        self._key = (conninfo, round(self.timeout * 1000), round(self.connect_timeout))
        host = params.get("host") or params.get("hostaddr") or "localhost"
        self.name = f"PostgreSQL {host}:{params.get('port') or 5432}/{params.get('dbname') or ''} schema {self.schema}"
        self._open()

    def _setup_process(self) -> None:
        self._generation = _sql.forks()
        self._local = threading.local()
        self._connections_mutex = threading.Lock()
        self._connections: dict[int, tuple[Any, weakref.ref[_ThreadState], psycopg.Connection[Any]]] = {}
        self._touches: deque[tuple[str, str]] = deque(maxlen=TOUCH_LOG)

    # ------------------------------------------------------------------ connections

    def _connect(self) -> psycopg.Connection[Any]:
        """An idle connection of an earlier store (same server and settings), or a new one."""
        reused = _Pool.take(self._key, self.schema)
        if reused is not None:
            return reused
        options = (
            f"-c search_path={self.schema} -c lock_timeout={int(self.timeout * 1000)} "
            f"-c statement_timeout={int(self.timeout * 2000)} "
            f"-c idle_in_transaction_session_timeout={int(self.timeout * 4000)}"
        )
        try:
            return psycopg.connect(
                self._conninfo, autocommit=True, connect_timeout=max(1, round(self.connect_timeout)), options=options
            )
        except psycopg.Error as exc:
            raise StorageError(f"cannot connect to {self.name}: {exc}"[:500]) from exc

    def _adopt(self, conn: psycopg.Connection[Any]) -> _ThreadState:
        state = _ThreadState(conn)
        with self._connections_mutex:
            finalizer = weakref.finalize(
                state, _release, self._connections, self._connections_mutex, id(state), conn, self._key
            )
            self._connections[id(state)] = (finalizer, weakref.ref(state), conn)
        self._local.state = state
        return state

    def _state(self) -> _ThreadState:
        """The calling thread's connection state (opening its connection on first use)."""
        state: _ThreadState | None = self._thread_state()
        if state is not None:
            if not state.conn.closed:
                return state
            self._forget(state)
        return self._adopt(self._connect())

    def _forget(self, state: _ThreadState) -> None:
        """Drop the state of a connection the server closed (a new one replaces it)."""
        with self._connections_mutex:
            entry = self._connections.pop(id(state), None)
        if entry is not None:
            entry[0].detach()
        with contextlib.suppress(Exception):
            state.conn.close()
        self._local.state = None

    def _closed_error(self) -> StorageError:
        return StorageError(f"the store on {self.name} is closed")

    def _after_fork(self) -> None:
        """In a forked child: leave the parent's connections alone and open new ones from now on."""
        with contextlib.suppress(Exception):
            for finalizer, _, conn in self._connections.values():
                finalizer.detach()
                _INHERITED.append(conn)
        self._setup_process()

    def close(self) -> None:
        """Close every connection of this store; later calls raise :class:`StorageError`. Idempotent.

        A call in flight on another thread finishes first (or raises :class:`StorageError`); threads waiting in
        ``wait``/``stream`` are woken and get :class:`StorageError`. Queued recency marks are written first.
        """
        if self._closed:
            return
        if self._generation == _sql.forks() and self._touches:
            with contextlib.suppress(StorageError):
                self._write(lambda conn, state: None)
        self._closed = True
        if self._generation == _sql.forks():
            with self._connections_mutex:
                connections = list(self._connections.values())
                self._connections.clear()
            for finalizer, state_ref, conn in connections:
                state = state_ref()
                if state is None or finalizer.detach() is None:
                    continue
                with state.mutex:
                    state.dead = True
                    _Pool.park(self._key, conn)
        self._waiters.wake_all()

    @property
    def poll_interval(self) -> float:
        """Seconds between re-checks while waiting: writes made by other processes wake nobody here."""
        return self._poll_interval

    def __repr__(self) -> str:
        return f"<PostgresStore {self.name} {'closed' if self._closed else 'open'}>"

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> PostgresStore:
        """``postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DB[?NAME=VALUE&...]``, ``postgres://`` or ``postgresql+psycopg://``.

        The query parameters ``schema``, ``max_records`` and ``max_bytes`` (a whole number, or ``none``), ``ttl``
        (seconds, or ``none``), ``poll_interval`` and ``timeout`` (seconds) set constructor arguments, checked as
        the keyword arguments are; every other parameter goes to libpq (``sslmode``, ``application_name``, ...).
        ``kwargs`` go to the constructor too; a setting may come from the URL or from ``kwargs``, not from both.

        Raises:
            InvalidArgument: the URL is not of these schemes, or has a malformed query string (a repeated
                parameter, one also given in ``kwargs``, a bad value, or one libpq does not know).
            StorageError: the server cannot be reached or the schema cannot be used.
        """
        if not isinstance(url, str):
            raise InvalidArgument(f"url must be a str, not {type(url).__name__}")
        scheme = next((scheme for scheme in _SCHEMES if url.lower().startswith(scheme)), None)
        if scheme is None:
            raise InvalidArgument(f"a PostgreSQL URL starts with postgresql:// or postgres://, not {url[:200]!r}")
        rest = url[len(scheme) :]
        base, _, query = rest.partition("?")
        options: dict[str, Any] = {}
        passed: list[tuple[str, str]] = []
        try:
            pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=True) if query else []
        except ValueError:
            raise InvalidArgument(f"the query of the PostgreSQL URL {url[:200]!r} is malformed") from None
        seen: set[str] = set()
        for name, value in pairs:
            if name in seen:
                raise InvalidArgument(f"the PostgreSQL URL {url[:200]!r} gives {name[:40]} twice")
            seen.add(name)
            if name in _URL_PARAMETERS:
                options[name] = _URL_PARAMETERS[name](name, value)
            else:
                passed.append((name, value))
        _sql.refuse_twice_given(options, kwargs)
        conninfo = "postgresql://" + base + ("?" + urllib.parse.urlencode(passed) if passed else "")
        try:
            psycopg.conninfo.conninfo_to_dict(conninfo)
        except psycopg.Error as exc:
            raise InvalidArgument(f"the PostgreSQL URL {url[:200]!r} is malformed: {exc}"[:400]) from None
        return cls(conninfo, **options, **kwargs)

    # ------------------------------------------------------------------ opening a schema

    def _prepare(self, conn: psycopg.Connection[Any]) -> None:
        """Create the schema and its tables when missing (once, under an advisory lock); check them otherwise.

        The checks are queries (each sees what was committed before it), not ``IF NOT EXISTS``, whose catalog
        lookup may miss a schema another connection has just created.
        """
        try:
            if self._schema_version(conn) == SCHEMA_VERSION:
                return
            conn.execute("BEGIN")
            try:
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("responsestore:" + self.schema,))
                if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)).fetchone() is None:
                    conn.execute(f'CREATE SCHEMA "{self.schema}"')
                if self._schema_version(conn) == 0:
                    conn.execute(";\n".join(_schema()))  # one round trip
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        except psycopg.Error as exc:
            raise StorageError(f"cannot use {self.name} as a responsestore store: {exc}"[:500]) from exc

    def _schema_version(self, conn: psycopg.Connection[Any]) -> int:
        """The version of the tables in the schema (0: an empty or missing schema).

        Raises:
            StorageError: the schema holds other tables, or responsestore tables of another version.
        """
        tables = {
            name
            for (name,) in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (self.schema,)
            ).fetchall()
        }
        if not tables:
            return 0
        if "meta" not in tables:
            raise StorageError(f"{self.name} holds tables of another application; it was left unchanged")
        rows = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        if rows.get("application") != "responsestore" or rows.get("version") != str(SCHEMA_VERSION):
            raise StorageError(
                f"{self.name} holds tables of schema version {str(rows.get('version'))[:20]!r}, not the "
                f"{SCHEMA_VERSION} this version of responsestore uses; it was left unchanged"
            )
        return SCHEMA_VERSION

    # ------------------------------------------------------------------ transactions

    def _storage_error(self, exc: psycopg.Error) -> StorageError:
        if self._closed:
            return self._closed_error()
        if isinstance(exc, psycopg.errors.LockNotAvailable):
            return StorageError(
                f"{self.name} stayed locked by other writers for more than timeout={self.timeout} seconds; "
                "nothing was changed"
            )
        return StorageError(f"{self.name} failed: {str(exc).strip()}; nothing was changed"[:500])

    def _damaged(self, what: str, exc: BaseException) -> StorageError:
        return StorageError(f"{self.name} is damaged: {what} cannot be read ({type(exc).__name__}: {exc})"[:500])

    def _translate(self, state: _ThreadState, exc: BaseException) -> BaseException:
        """What an operation that raised ``exc`` raises; a connection the error broke is replaced next time."""
        if isinstance(exc, psycopg.Error):
            if state.conn.closed or state.conn.broken:
                with contextlib.suppress(Exception):
                    state.conn.close()
            return self._storage_error(exc)
        if isinstance(exc, _sql.Damaged):
            return StorageError(f"{self.name} is damaged: {exc}"[:500])
        if isinstance(exc, (ValueError, KeyError, IndexError)) and not isinstance(exc, ResponseStoreError):
            return self._damaged("a stored row", exc)
        return exc

    def _run(self, action: Callable[[psycopg.Connection[Any]], _T], begin: str | None) -> _T:
        state = self._state()
        with state.mutex:
            if state.dead:
                raise self._closed_error()
            conn = state.conn
            try:
                if begin is None:
                    return action(conn)
                conn.execute(begin)
                try:
                    return action(conn)
                finally:
                    _rollback(conn)  # a read has nothing to commit
            except BaseException as exc:
                error = self._translate(state, exc)
                if error is exc:
                    raise
                raise error from exc

    def _query(self, action: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        """Run ``action`` on this thread's connection, outside any transaction (each statement is atomic)."""
        return self._run(action, None)

    def _snapshot_read(self, action: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        """Run ``action`` in one read-only snapshot."""
        return self._run(action, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def _write(self, action: Callable[[psycopg.Connection[Any], _sql.State], _T]) -> _T:
        """Run ``action`` in one write transaction holding the counters row's lock, queued recency marks first.

        The whole of ``action`` commits or nothing does: it raises :class:`_sql.Abort` to roll back and return a value.
        Waiters of records removed by it are woken after the commit.
        """
        state = self._state()
        touches: list[tuple[str, str]] = []
        with state.mutex:
            if state.dead:
                raise self._closed_error()
            conn = state.conn
            try:
                cursor = conn.execute(_SQL_BEGIN)
                cursor.nextset()
                row = cursor.fetchone()
                if row is None:
                    raise _sql.Damaged("its counters row", LookupError("missing"))
                while self._touches:
                    touches.append(self._touches.popleft())
                if touches:
                    self._apply_touches(conn, touches)
                result = action(conn, _sql.State(*row))
                conn.execute("COMMIT")
            except _sql.Abort as abort:
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

    def _undo(self, state: _ThreadState, touches: list[tuple[str, str]]) -> None:
        state.wakes.clear()
        state.cached.clear()
        _rollback(state.conn)
        if touches:
            self._touches.extendleft(reversed(touches))

    @staticmethod
    def _apply_touches(conn: psycopg.Connection[Any], keys: list[tuple[str, str]]) -> None:
        last_reads = list(dict.fromkeys(reversed(keys)))
        last_reads.reverse()
        with conn.cursor() as cursor:
            cursor.executemany(_SQL_TOUCH, last_reads)

    # ------------------------------------------------------------------ the parse cache

    def _record(self, seq: int, version: int, text: str, id: str) -> ResponseRecord:
        hit = self._cache.get(seq)
        if hit is not None and hit[0] == version:
            return hit[1]
        try:
            record = _sql.load(text)
        except (ValueError, TypeError, KeyError, RecursionError, ResponseStoreError) as exc:
            raise self._damaged(f"the record {id!r}", exc) from exc
        self._cache.remember(seq, version, record, len(text))
        return record

    def _checked_record(self, seq: int, version: int, text: str, owner: str | None, id: str) -> ResponseRecord:
        record = self._record(seq, version, text, id)
        if record.id != id or record.owner != owner or record.version != version:
            raise self._damaged(f"the record {id!r}", ValueError("its JSON disagrees with its columns"))
        return record

    # ------------------------------------------------------------------ reads

    def _visible_row(self, owner: str | None, id: str) -> Any:
        if not _usable(id):
            return None
        key = _owner_key(owner)
        row = self._query(lambda conn: conn.execute(_SQL_ROW, (key, id)).fetchone())
        if row is None:
            return None
        if row[3] is not None and row[3] <= self._now():
            return None
        return row

    def _stored(self, row: Any, owner: str | None, id: str) -> Stored:
        seq, version, text, _, _, count, event_bytes, size = row
        return Stored(self._checked_record(seq, version, text, owner, id), int(count), int(event_bytes), seq, int(size))

    def _get(self, owner: str | None, id: str) -> ResponseRecord | None:
        row = self._visible_row(owner, id)
        if row is None:
            return None
        record = self._checked_record(row[0], row[1], row[2], owner, id)
        if row[4]:
            self._touches.append((_owner_key(owner), id))
        return record

    def _peek(self, owner: str | None, id: str) -> ResponseRecord | None:
        row = self._visible_row(owner, id)
        return None if row is None else self._checked_record(row[0], row[1], row[2], owner, id)

    def _read(self, owner: str | None, id: str) -> Stored | None:
        row = self._visible_row(owner, id)
        return None if row is None else self._stored(row, owner, id)

    def _chain(self, owner: str | None, id: str, limit: int) -> list[ResponseRecord]:
        if not _usable(id):
            return []
        params = {"key": _owner_key(owner), "id": id, "now": self._now(), "limit": limit}
        rows = self._query(lambda conn: conn.execute(_SQL_CHAIN, params).fetchall())
        chain: list[ResponseRecord] = []
        seen: set[str] = set()
        for seq, version, text, record_id in rows:
            record = self._record(seq, version, text, record_id)
            if record.id in seen:
                break
            seen.add(record.id)
            chain.append(record)
        return chain

    def _leased(self, now: float, limit: int) -> list[ResponseRecord]:
        rows = self._query(
            lambda conn: conn.execute(
                "SELECT seq, version, record, id FROM responses WHERE lease_expires_at <= %s AND NOT terminal "
                f"AND {_VISIBLE} ORDER BY lease_expires_at, seq LIMIT %s",
                (now, now, limit),
            ).fetchall()
        )
        return [self._record(seq, version, text, id) for seq, version, text, id in rows]

    def _scan(
        self, conn: psycopg.Connection[Any], key: str, cursor: str | None, descending: bool, now: float
    ) -> Iterator[ResponseRecord]:
        start: tuple[float, int] | None = None
        if cursor is not None:
            found = None
            if _usable(cursor):
                found = conn.execute(
                    "SELECT created_at, seq FROM responses WHERE owner = %s AND id = %s", (key, cursor)
                ).fetchone()
                if found is None:
                    found = conn.execute(
                        "SELECT created_at, seq FROM removed WHERE owner = %s AND id = %s", (key, cursor)
                    ).fetchone()
            if found is None:
                raise unknown_cursor(cursor)
            start = (found[0], found[1])
        return self._scan_rows(conn, key, start, descending, now)

    def _scan_rows(
        self, conn: psycopg.Connection[Any], key: str, start: tuple[float, int] | None, descending: bool, now: float
    ) -> Iterator[ResponseRecord]:
        batch = 8
        while True:
            if start is None:
                rows = conn.execute(_SQL_SCAN[descending, False], (key, now, batch)).fetchall()
            else:
                rows = conn.execute(_SQL_SCAN[descending, True], (key, start[0], start[1], now, batch)).fetchall()
            for _, seq, version, text, id in rows:
                yield self._record(seq, version, text, id)
            if len(rows) < batch:
                return
            start = (rows[-1][0], rows[-1][1])
            batch = min(batch * 4, _sql.SCAN_BATCH * 4)

    def _find_newest(
        self, owner: str | None, text: str, matches: Callable[[ResponseRecord], bool]
    ) -> ResponseRecord | None:
        if not _usable(text):
            return super()._find_newest(owner, text, matches)
        key = _owner_key(owner)
        now = self._now()

        def read(conn: psycopg.Connection[Any]) -> ResponseRecord | None:
            row = conn.execute(_SQL_HOLDING[False], (key, now, text)).fetchone()
            while row is not None:
                record = self._record(row[1], row[2], row[3], row[4])
                if matches(record):
                    return record
                row = conn.execute(_SQL_HOLDING[True], (key, row[0], row[1], now, text)).fetchone()
            return None

        return self._snapshot_read(read)

    def _events(self, owner: str | None, id: str, after: int) -> tuple[Stored, tuple[Chunk, ...]] | None:
        if not _usable(id):
            return None
        key = _owner_key(owner)
        now = self._now()

        def read(conn: psycopg.Connection[Any]) -> tuple[Stored, tuple[Chunk, ...]] | None:
            row = conn.execute(_SQL_ROW, (key, id)).fetchone()
            if row is None or (row[3] is not None and row[3] <= now):
                return None
            stored = self._stored(row, owner, id)
            if stored.events - 1 <= after:
                return stored, ()
            rows = conn.execute(_SQL_CHUNKS, {"seq": stored.incarnation, "after": after + 1}).fetchall()
            return stored, self._chunks(rows, stored, after)

        return self._snapshot_read(read)

    def _log_of(self, owner: str | None, stored: Stored) -> tuple[Stored, tuple[Chunk, ...]] | None:
        """The whole log of ``stored`` in one statement when it still adds up to ``stored.events``; else read it.

        The log of an active record only grows, so chunks that add up to ``stored.events`` are its log; the
        conditional write that follows re-checks incarnation, version and event count.
        """
        if stored.record.is_terminal or not stored.events:
            return super()._log_of(owner, stored)
        seq = stored.incarnation
        rows = self._query(
            lambda conn: conn.execute(
                "SELECT first, count, text FROM chunks WHERE response = %s ORDER BY first", (seq,)
            ).fetchall()
        )
        total = 0
        for first, count, _ in rows:
            if first != total:
                break
            total += count
        if total != stored.events:
            return super()._log_of(owner, stored)
        return stored, self._chunks(rows, stored, -1)

    def _chunks(self, rows: list[Any], stored: Stored, after: int) -> tuple[Chunk, ...]:
        expected = None
        for first, count, _ in rows:
            if count < 1 or (expected is not None and first != expected):
                raise self._damaged(
                    f"the event log of {stored.record.id!r}", ValueError(f"a malformed chunk at event {first!r}")
                )
            expected = first + count
        if not rows or rows[0][0] > max(after + 1, 0) or expected != stored.events:
            raise self._damaged(f"the event log of {stored.record.id!r}", ValueError("its chunks do not add up"))
        return tuple((int(first), int(count), text) for first, count, text in rows)

    def _stats_rows(self, conn: psycopg.Connection[Any], now: float) -> tuple[Sequence[Any], list[Any]]:
        row = conn.execute(_SQL_COUNTERS).fetchone()
        if row is None:
            raise _sql.Damaged("its counters row", LookupError("missing"))
        pending = conn.execute(
            "SELECT status, count(*), sum(size + log_bytes) FROM responses WHERE expires_at <= %s GROUP BY status",
            (now,),
        ).fetchall()
        return row, pending

    def _bad_status(self, status: object) -> Exception:
        return _sql.Damaged("a record's status", ValueError(str(status)[:40]))

    # ------------------------------------------------------------------ writes

    def _put_new(self, record: ResponseRecord, ttl: float | None, keep: Sequence[ResponseRecord], size: int) -> bool:
        key = _owner_key(record.owner)
        text = _sql.record_text(record)
        values = (
            key,
            record.id,
            record.created_at,
            record.status.value,
            record.is_terminal,
            record.version,
            record.previous_response_id,
            ttl,
            None if ttl is None else record.created_at + ttl,
            None if record.is_terminal else record.lease_expires_at,
            size,
            text,
            record.is_terminal,
        )
        retention = self.retention

        def put(conn: psycopg.Connection[Any], state: _sql.State) -> bool:
            now = self._now()
            if state.due is not None and state.due <= now and self._sweep_rows(conn, now, SWEEP_BATCH):
                state = self._read_state(conn)
            spared: list[tuple[int, bool, int]] = []
            if keep:
                refreshed = self._refresh(conn, keep, record.created_at, now)
                if refreshed is None:
                    self._clear_id(conn, key, record.id, now)  # a visible record of this id wins: ResponseExists
                    raise _sql.Abort(result=False)
                spared = refreshed
            if retention.over(state.records + 1, state.bytes + size) is not None:
                self._room_for_new(conn, record, state=state, key=key, size=size, spared=spared, now=now)
            row = conn.execute(_SQL_INSERT, values).fetchone()
            if row is None:
                self._clear_id(conn, key, record.id, now)  # raises ResponseExists, or removes an expired record
                row = conn.execute(_SQL_INSERT, values).fetchone()
                if row is None:
                    raise _sql.Damaged(f"the record {record.id!r}", LookupError("its id stayed taken"))
            self._state().cached.append((row[0], record.version, record, len(text)))
            return True

        return self._write(put)

    def _read_state(self, conn: psycopg.Connection[Any]) -> _sql.State:
        row = conn.execute(_SQL_STATE_AGAIN).fetchone()
        if row is None:
            raise _sql.Damaged("its counters row", LookupError("missing"))
        return _sql.State(*row)

    def _clear_id(self, conn: psycopg.Connection[Any], key: str, id: str, now: float) -> None:
        row = conn.execute(
            f"SELECT seq, expires_at, {_WAKE} FROM responses WHERE owner = %s AND id = %s", (key, id)
        ).fetchone()
        if row is None:
            return
        if row[1] is None or row[1] > now:
            raise ResponseExists(id)
        self._unlink(conn, [(row[0], row[2], id)], "expired")

    def _refresh(
        self, conn: psycopg.Connection[Any], keep: Sequence[ResponseRecord], start: float, now: float
    ) -> list[tuple[int, bool, int]] | None:
        key = _owner_key(keep[0].owner)
        refreshed = []
        for ancestor in reversed(keep):
            row = conn.execute(_SQL_REFRESH, (start, key, ancestor.id, ancestor.version, now)).fetchone()
            if row is None:
                return None
            refreshed.append((row[0], row[1], int(row[2])))
        return refreshed

    def _lru(self, conn: psycopg.Connection[Any], limit: int) -> list[Any]:
        return conn.execute(_SQL_LRU, (limit,)).fetchall()

    def _delete_row(self, conn: psycopg.Connection[Any], seq: int) -> None:
        conn.execute("DELETE FROM responses WHERE seq = %s", (seq,))

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
        head = (
            new.status.value,
            terminal,
            new.version,
            text,
            size,
            None if terminal else new.lease_expires_at,
            terminal,
        )
        tail = (seq, old.record.version, old.events)
        sql = _SQL_SWAP[None if log is None else log.replace]
        middle = () if log is None else (log.first + log.events, log.event_bytes, log.stored)
        max_bytes = self.retention.max_bytes
        in_conversation = None if conversation is None else self._conversation_write(conversation)

        def swap(conn: psycopg.Connection[Any], state: _sql.State) -> bool:
            now = self._now()
            if state.due is not None and state.due <= now:
                self._sweep_rows(conn, now, SWEEP_BATCH)
            before = None if max_bytes is None else self._entry_bytes(conn, seq)
            row = conn.execute(sql, (*head, *middle, *tail, now)).fetchone()
            if row is None:
                return False
            if in_conversation is not None and not in_conversation(conn, now):
                raise _sql.Abort(result=False)
            if log is not None:
                self._write_log(conn, seq, log)
            if before is not None:
                self._room_for_growth(
                    conn, seq, grows=int(row[0]) - before, entry=int(row[0]), finished=terminal, id=new.id
                )
            self._state().cached.append((seq, new.version, new, len(text)))
            return True

        return self._write(swap)

    def _append(self, old: Stored, log: LogWrite) -> bool:
        seq = old.incarnation
        params = (log.first + log.events, log.event_bytes, log.stored, seq, old.record.version, old.events)
        max_bytes = self.retention.max_bytes
        finished = old.record.is_terminal

        def append(conn: psycopg.Connection[Any], state: _sql.State) -> bool:
            row = conn.execute(_SQL_APPEND, (*params, self._now())).fetchone()
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
    def _entry_bytes(conn: psycopg.Connection[Any], seq: int) -> int | None:
        row = conn.execute("SELECT size + log_bytes FROM responses WHERE seq = %s", (seq,)).fetchone()
        return None if row is None else int(row[0])

    @staticmethod
    def _write_log(conn: psycopg.Connection[Any], seq: int, log: LogWrite) -> None:
        if log.replace:
            conn.execute("DELETE FROM chunks WHERE response = %s", (seq,))
        conn.execute(_SQL_CHUNK, (seq, log.first, log.events, log.text))

    def _byte_counters(self, conn: psycopg.Connection[Any]) -> tuple[int, int]:
        row = conn.execute("SELECT bytes, active_bytes FROM counters").fetchone()
        if row is None:
            raise _sql.Damaged("its counters row", LookupError("missing"))
        return int(row[0]), int(row[1])

    def _remove(self, old: Stored) -> bool:
        record = old.record

        def remove(conn: psycopg.Connection[Any], state: _sql.State) -> bool:
            now = self._now()
            if state.due is not None and state.due <= now:
                self._sweep_rows(conn, now, SWEEP_BATCH)
            row = conn.execute(
                f"DELETE FROM responses WHERE seq = %s AND version = %s AND {_VISIBLE} RETURNING {_WAKE}, id",
                (old.incarnation, record.version, now),
            ).fetchone()
            if row is None:
                return False
            self._unlinked(conn, [(old.incarnation, row[0], row[1])], "deleted")
            return True

        return self._write(remove)

    def _unlink(self, conn: psycopg.Connection[Any], rows: list[tuple[int, str, str]], why: str) -> None:
        for seq, _, _ in rows:
            conn.execute("DELETE FROM responses WHERE seq = %s", (seq,))
        self._unlinked(conn, rows, why)

    def _unlinked(self, conn: psycopg.Connection[Any], rows: list[tuple[int, str, str]], why: str) -> None:
        """Bookkeeping after deleting ``rows``: the count of ``why``, the tombstones' bound, wake-ups, the cache."""
        conn.execute(_SQL_UNLINKED[why], (len(rows),))
        conn.execute(_SQL_TRIM, (cursor_memory(self.retention.max_records),))
        state = self._state()
        for seq, key, id in rows:
            state.wakes.append((_owner_of(key), id))
            state.cached.append((seq, 0, None, 0))

    def _sweep_rows(self, conn: psycopg.Connection[Any], now: float, limit: int | None) -> int:
        rows = conn.execute(_SQL_SWEEP, (now, limit)).fetchall()
        if rows:
            self._unlinked(conn, [(seq, key, id) for seq, key, id in rows], "expired")
        return len(rows)

    def _sweep(self, limit: int | None) -> int:
        now = self._now()
        return self._write(lambda conn, state: self._sweep_rows(conn, now, limit))

    # ------------------------------------------------------------------ conversations

    def _conversation_state(self, owner: str | None, id: str, row: Sequence[Any]) -> ConversationState:
        _, version, items, next_position, expires_at, text = row
        try:
            record = ConversationRecord.from_dict(json.loads(text))
        except (ValueError, TypeError, RecursionError, ResponseStoreError) as exc:
            raise self._damaged(f"the conversation {id!r}", exc) from exc
        if (record.owner, record.id, record.version) != (owner, id, version) or not 0 <= items <= next_position:
            raise self._damaged(f"the conversation {id!r}", ValueError("its columns disagree with its JSON"))
        return ConversationState(record, int(items), int(next_position), expires_at)

    def _positioned(self, id: str, row: Sequence[Any]) -> Positioned:
        position, item_id, text = row
        try:
            item = freeze_object(json.loads(text), "a stored item")
        except (ValueError, TypeError, RecursionError, ResponseStoreError) as exc:
            raise self._damaged(f"an item of conversation {id!r}", exc) from exc
        if item.get("id") != item_id:
            raise self._damaged(f"an item of conversation {id!r}", ValueError("its columns disagree with its JSON"))
        return int(position), item_id, item

    def _conversation(self, owner: str | None, id: str) -> ConversationState | None:
        if not _usable(id):
            return None
        params = (_owner_key(owner), id, self._now())
        row = self._query(lambda conn: conn.execute(_SQL_CONVERSATION, params).fetchone())
        return None if row is None else self._conversation_state(owner, id, row)

    def _conversation_items(
        self, owner: str | None, id: str, after: int | None, count: int, *, descending: bool
    ) -> tuple[ConversationState, list[Positioned]] | None:
        if not _usable(id):
            return None
        params = (_owner_key(owner), id, self._now())
        sql = _SQL_ITEMS[descending, after is not None]

        def read(conn: psycopg.Connection[Any]) -> tuple[ConversationState, list[Positioned]] | None:
            row = conn.execute(_SQL_CONVERSATION, params).fetchone()
            if row is None:
                return None
            state = self._conversation_state(owner, id, row)
            args = (row[0], count) if after is None else (row[0], after, count)
            return state, [self._positioned(id, item) for item in conn.execute(sql, args).fetchall()]

        return self._snapshot_read(read)

    def _conversation_item(self, owner: str | None, id: str, item_id: str) -> Positioned | None:
        if not (_usable(id) and _usable(item_id)):
            return None
        params = (_owner_key(owner), id, self._now(), item_id)
        row = self._query(lambda conn: conn.execute(_SQL_CONVERSATION_ITEM, params).fetchone())
        return None if row is None else self._positioned(id, row)

    def _conversation_held(self, owner: str | None, id: str, item_ids: Sequence[str]) -> set[str]:
        asked = [item_id for item_id in item_ids if _usable(item_id)]
        if not (asked and _usable(id)):
            return set()
        params = (_owner_key(owner), id, self._now(), asked)
        rows = self._query(lambda conn: conn.execute(_SQL_CONVERSATION_HELD, params).fetchall())
        return {item_id for (item_id,) in rows}

    def _conversation_put(self, state: ConversationState, items: Sequence[Positioned]) -> None:
        record = state.record
        values = (_owner_key(record.owner), *_sql.conversation_values(state))
        rows = _sql.item_rows(items)
        limit = self.retention.max_records

        def put(conn: psycopg.Connection[Any], _: _sql.State) -> None:
            now = self._now()
            self._sweep_conversation_rows(conn, now, SWEEP_BATCH)
            if limit is not None and self._conversation_count(conn) >= limit:
                self._sweep_conversation_rows(conn, now, None)
                if self._conversation_count(conn) >= limit:
                    raise ConversationFull(record.id, "max_records", limit)
            inserted = conn.execute(_SQL_CONVERSATION_INSERT, values).fetchone()
            if inserted is None:  # pragma: no cover - RETURNING always returns the row
                raise _sql.Damaged(f"the conversation {record.id!r}", LookupError("not inserted"))
            if rows:
                with conn.cursor() as cursor:
                    cursor.executemany(_SQL_ITEM_INSERT, [(inserted[0], *row) for row in rows])

        self._write(put)

    def _conversation_write(self, write: ConversationWrite) -> Callable[[psycopg.Connection[Any], float], bool]:
        old = write.old.record
        params = (*_sql.swap_values(write), _owner_key(old.owner), old.id, old.version)
        rows = _sql.item_rows(write.append)
        remove = write.remove

        def apply(conn: psycopg.Connection[Any], now: float) -> bool:
            row = conn.execute(_SQL_CONVERSATION_SWAP, (*params, now)).fetchone()
            if row is None:
                return False
            seq = row[0]
            if remove is not None and conn.execute(_SQL_ITEM_DELETE, (seq, remove)).rowcount != 1:
                raise _sql.Damaged(f"the items of conversation {old.id!r}", LookupError(f"{remove!r} is missing"))
            if rows:
                with conn.cursor() as cursor:
                    cursor.executemany(_SQL_ITEM_INSERT, [(seq, *item) for item in rows])
            return True

        return apply

    def _conversation_swap(self, write: ConversationWrite) -> bool:
        apply = self._conversation_write(write)

        def swap(conn: psycopg.Connection[Any], _: _sql.State) -> bool:
            if not apply(conn, self._now()):
                raise _sql.Abort(result=False)
            return True

        return self._write(swap)

    def _conversation_remove(self, old: ConversationState) -> bool:
        record = old.record
        params = (_owner_key(record.owner), record.id, record.version)
        return self._write(lambda conn, _: conn.execute(_SQL_CONVERSATION_DELETE, (*params, self._now())).rowcount == 1)

    def _sweep_conversations(self) -> int:
        now = self._now()
        return self._write(lambda conn, _: self._sweep_conversation_rows(conn, now, None))

    @staticmethod
    def _sweep_conversation_rows(conn: psycopg.Connection[Any], now: float, limit: int | None) -> int:
        return int(conn.execute(_SQL_CONVERSATIONS_SWEEP, (now, limit)).rowcount)

    @staticmethod
    def _conversation_count(conn: psycopg.Connection[Any]) -> int:
        row = conn.execute("SELECT conversations FROM counters").fetchone()
        if row is None:
            raise _sql.Damaged("its counters row", LookupError("missing"))
        return int(row[0])

    # ------------------------------------------------------------------ invariants

    def _check(self) -> None:
        """Check every invariant, raising ``AssertionError``.

        Rows agree with their JSON, sizes, chunks and the cache; the counters, the recency order and the tombstones
        agree with the rows; conversations with their items.
        """
        if self._closed:  # the schema must still be whole: check it through a connection of its own
            conn = self._connect()
            try:
                self._check_contents(conn)
            finally:
                _Pool.park(self._key, conn)
            return
        _sql.invariant(len(self._touches) <= TOUCH_LOG, "the touch log is unbounded")
        _sql.invariant(len(self._cache) <= _sql.CACHE_RECORDS, "the record cache is unbounded")
        state = self._state()
        _sql.invariant(not state.wakes, "wake-ups were left pending")
        _sql.invariant(not state.cached, "cache updates were left pending")
        with state.mutex:
            self._check_contents(state.conn)

    def _check_contents(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            self._check_rows(conn)
            stats = self._stats_of(conn, self._now())
        finally:
            _rollback(conn)
        _sql.invariant(stats.records == sum(stats.by_status.values()), "stats.by_status does not add up")
        _sql.invariant(
            stats.records == stats.created - stats.deleted - stats.evicted - stats.expired, "stats do not add up"
        )

    def _check_rows(self, conn: psycopg.Connection[Any]) -> None:
        counters = conn.execute(_sql.CHECK_COUNTERS).fetchall()
        _sql.invariant(len(counters) == 1, "the counters row is missing or doubled")
        last_seq, created, deleted, evicted, expired, total, active, conversations = counters[0][:8]
        status_counts = dict(zip(_sql.STATUS_COLUMNS, counters[0][8:], strict=True))
        rows = conn.execute(
            "SELECT seq, owner, id, created_at, status, terminal, version, ttl, expires_at, last_used, "
            "lease_expires_at, size, event_count, event_bytes, log_bytes, record, previous FROM responses"
        ).fetchall()
        by_status = dict.fromkeys(ResponseStatus, 0)
        live: set[tuple[str, str]] = set()
        seqs: set[int] = set()
        sizes = [0, 0]
        for row in rows:
            record = self._check_row(conn, row)
            live.add((row[1], row[2]))
            seqs.add(row[0])
            by_status[record.status] += 1
            entry = row[11] + row[14]
            sizes[0] += entry
            if not record.is_terminal:
                sizes[1] += entry
        _sql.invariant(by_status == status_counts, "status counters disagree with the records")
        _sql.invariant(sizes == [total, active], "byte counters disagree with the records")
        _sql.invariant(created - deleted - evicted - expired == len(rows), "lifetime counters do not add up")
        _sql.invariant(all(0 < seq <= last_seq for seq in seqs), "a record's seq is not below the counter")
        used = [row[9] for row in rows if row[5]]
        _sql.invariant(len(set(used)) == len(used), "two finished records share a recency")
        orphans = conn.execute("SELECT count(*) FROM chunks WHERE response NOT IN (SELECT seq FROM responses)")
        _sql.invariant(orphans.fetchone() == (0,), "chunks outlived their response")
        removed = conn.execute("SELECT owner, id, seq FROM removed").fetchall()
        _sql.invariant(len(removed) <= CURSOR_MEMORY, "tombstones unbounded")
        _sql.invariant(not ({(key, id) for key, id, _ in removed} & live), "a live record is also removed")
        _sql.invariant(not ({seq for _, _, seq in removed} & seqs), "a tombstone shares a live record's seq")
        _sql.invariant(all(seq <= last_seq for _, _, seq in removed), "a tombstone's seq is above the counter")
        self._check_conversations(conn, conversations)

    def _check_row(self, conn: psycopg.Connection[Any], row: Sequence[Any]) -> ResponseRecord:
        (seq, key, id, created_at, status, terminal, version, ttl, expires_at, used, lease, size, count, event_bytes,
         log_bytes, text, previous) = row  # fmt: skip
        record = self._check_loaded(seq, key, id, version, text)
        _sql.invariant(
            (record.created_at, record.status.value, record.is_terminal, record.version, record.previous_response_id)
            == (created_at, status, terminal, version, previous),
            f"the columns of {id!r} disagree with its JSON",
        )
        _sql.invariant(_sql.record_text(record) == text, f"the JSON of {id!r} is not what to_dict() writes")
        _sql.invariant(size == record_size(record), f"the stored size of {id!r} is not its record_size")
        self._check_lease_columns(record, lease, used, ttl, expires_at)
        chunks = conn.execute(
            "SELECT first, count, text FROM chunks WHERE response = %s ORDER BY first", (seq,)
        ).fetchall()
        self._check_log(record, chunks, count, event_bytes, log_bytes)
        return record

    def _check_conversations(self, conn: psycopg.Connection[Any], counted: int) -> None:
        rows = conn.execute(_sql.CHECK_CONVERSATIONS).fetchall()
        _sql.invariant(counted == len(rows), "the conversation count disagrees with the rows")
        for seq, key, id, version, items, next_position, expires_at, text in rows:
            try:
                owner = json.loads(text).get("owner") if key.startswith("#") else _owner_of(key)
                state = self._conversation_state(owner, id, (seq, version, items, next_position, expires_at, text))
            except StorageError as exc:
                raise AssertionError(str(exc)) from None
            _sql.invariant(_sql.json_text(state.record.to_dict()) == text, f"the JSON of conversation {id!r}")
            held = conn.execute(
                "SELECT position, item_id, item FROM conversation_items WHERE conversation = %s ORDER BY position",
                (seq,),
            ).fetchall()
            _sql.invariant(len(held) == items, f"the item count of conversation {id!r} disagrees with its items")
            _sql.invariant(
                all(0 <= row[0] < next_position for row in held), f"an item of {id!r} is beyond its positions"
            )
            self._check_items(id, held)
        orphans = conn.execute(
            "SELECT count(*) FROM conversation_items WHERE conversation NOT IN (SELECT seq FROM conversations)"
        ).fetchone()
        _sql.invariant(orphans == (0,), "items outlived their conversation")
