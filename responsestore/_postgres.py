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
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import psycopg
import psycopg.conninfo

from . import _sql
from ._checks import describe
from ._contract import (
    DEFAULT_MAX_CHAIN_DEPTH,
    Clock,
    LogWrite,
    Stored,
)
from ._conversations import ConversationWrite
from ._events import DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_EVENTS, Chunk
from ._owners import encodable as _encodable
from ._owners import owner_key as _plain_owner_key
from ._records import ResponseRecord
from ._retention import DEFAULT_MAX_RECORDS, DEFAULT_TTL, SWEEP_BATCH
from ._urls import refuse_twice_given, url_integer, url_seconds
from .errors import InvalidArgument, ResponseStoreError, StorageError

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
#: A removed row's owner in a form :func:`_owner_of` reads (a long owner's key is a digest: its JSON then).
_WAKE = "CASE WHEN left(owner, 1) = '#' THEN '~' || (record::json -> 'owner')::text ELSE owner END"
#: The statements both SQL stores run, in PostgreSQL's dialect.
_Q = _sql.Statements(
    mark="%s",
    finished="terminal",
    active="NOT terminal",
    next_use="nextval('recency')",
    wake=_WAKE,
    held="= ANY(%s)",
    due="NULL",
    named=lambda name: f"%({name})s",
    checked=", previous",
)
_INSERTED = (
    "seq, owner, id, created_at, status, terminal, version, ttl, expires_at, lease_expires_at, size, record, "
    "previous, last_used"
)
_SQL_INSERT = (
    f"INSERT INTO responses ({_INSERTED}) VALUES (nextval('incarnations'), %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
    "%s, %s, CASE WHEN %s THEN nextval('recency') END) ON CONFLICT (owner, id) DO NOTHING RETURNING seq"
)
_SWAP_SET = (
    "UPDATE responses SET status = %s, terminal = %s, version = %s, record = %s, size = %s, lease_expires_at = %s, "
    "last_used = CASE WHEN %s THEN nextval('recency') END"
)
_SWAP_WHERE = f" WHERE seq = %s AND version = %s AND event_count = %s AND {_Q.visible} RETURNING size + log_bytes"
_SQL_SWAP = {
    None: _SWAP_SET + _SWAP_WHERE,
    False: _SWAP_SET + ", event_count = %s, event_bytes = %s, log_bytes = log_bytes + %s" + _SWAP_WHERE,
    True: _SWAP_SET + ", event_count = %s, event_bytes = %s, log_bytes = %s" + _SWAP_WHERE,
}
_SQL_SWEEP = (
    "DELETE FROM responses WHERE seq IN (SELECT seq FROM responses WHERE expires_at <= %s "
    f"ORDER BY expires_at, seq LIMIT %s) RETURNING seq, {_WAKE}, id"
)
_SQL_HOLDING = {
    after: _Q.scan_select
    + ("AND (created_at, seq) < (%s, %s) " if after else "")
    + _Q.scan_visible
    + "AND strpos(record, %s) > 0 ORDER BY created_at DESC, seq DESC LIMIT 1"
    for after in (False, True)
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
    return url_integer("PostgreSQL", name, text)


def _url_seconds(name: str, text: str) -> float | None:
    return url_seconds("PostgreSQL", name, text, none=name == "ttl", said="a number of seconds")


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
    """The idle connections of this process; a forked child starts with none (its parent's are left alone).

    The mutex is reentrant: ``park`` runs in the finalizers of threads' states, which the cycle collector may run
    at an allocation made while the pool's mutex is held (``park``'s own ``setdefault``).
    """

    mutex = threading.RLock()
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
    _Pool.mutex = threading.RLock()
    for kept in _Pool.idle.values():
        _INHERITED.extend(kept)
    _Pool.idle = {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


class _ThreadState(_sql.ThreadState[psycopg.Connection[Any]]):
    __slots__ = ()


def _release(
    connections: dict[Any, Any],
    mutex: threading.RLock,
    state_id: int,
    conn: psycopg.Connection[Any],
    key: tuple[str, int, int],
) -> None:
    """Give back the connection of a thread that has ended (a finalizer: it may run in any thread, see _sql)."""
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
    _storable = staticmethod(_usable)
    _rollback = staticmethod(_rollback)
    _q = _Q
    _no_limit = None

    @staticmethod
    def _id_list(ids: list[str]) -> list[str]:
        return ids

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
        super()._setup_process()
        self._connections: dict[int, tuple[Any, weakref.ref[_ThreadState], psycopg.Connection[Any]]] = {}

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
            for finalizer, _, conn in self._connections.copy().values():
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
                connections = self._connections.copy()  # one step: a finalizer cannot change it while it is read
                self._connections.clear()
            for finalizer, state_ref, conn in connections.values():
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
        refuse_twice_given(options, kwargs)
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

    def _translate(self, state: _sql.ThreadState[psycopg.Connection[Any]], exc: BaseException) -> BaseException:
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
            conn = self._live(state)
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

    def _begin_write(self, conn: psycopg.Connection[Any]) -> _sql.State:
        """Begin, and lock the counters row (waiting for the writer holding it): the writes to a schema take turns."""
        cursor = conn.execute(_SQL_BEGIN)
        cursor.nextset()
        row = cursor.fetchone()
        if row is None:
            raise self._no_counters()
        return _sql.State(*row)

    @staticmethod
    def _execute_many(conn: psycopg.Connection[Any], sql: str, rows: list[tuple[Any, ...]]) -> None:
        with conn.cursor() as cursor:
            cursor.executemany(sql, rows)

    def _no_counters(self) -> _sql.Damaged:
        return _sql.Damaged("its counters row", LookupError("missing"))

    # ------------------------------------------------------------------ the parse cache

    def _row_record(self, row: Sequence[Any], owner: str | None, id: str) -> ResponseRecord:
        """The record of ``(owner, id)``, checked against its columns (a long owner's key is a digest)."""
        record = self._record(row[0], row[1], row[2], id)
        if record.id != id or record.owner != owner or record.version != row[1]:
            raise self._damaged(f"the record {id!r}", ValueError("its JSON disagrees with its columns"))
        return record

    # ------------------------------------------------------------------ reads

    def _chain(self, owner: str | None, id: str, limit: int) -> list[ResponseRecord]:
        if not _usable(id):
            return []
        params = {"key": _owner_key(owner), "id": id, "now": self._now(), "limit": limit}
        return self._linked(self._query(lambda conn: conn.execute(_SQL_CHAIN, params).fetchall()))

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

    def _log_of(self, owner: str | None, stored: Stored) -> tuple[Stored, tuple[Chunk, ...]] | None:
        """The whole log of ``stored`` in one statement when it still adds up to ``stored.events``; else read it.

        The log of an active record only grows, so chunks that add up to ``stored.events`` are its log; the
        conditional write that follows re-checks incarnation, version and event count.
        """
        if stored.record.is_terminal or not stored.events:
            return super()._log_of(owner, stored)
        seq = stored.incarnation
        rows = self._query(lambda conn: conn.execute(_Q.log, (seq,)).fetchall())
        total = 0
        for first, count, _ in rows:
            if first != total:
                break
            total += count
        if total != stored.events:
            return super()._log_of(owner, stored)
        return stored, self._chunks(rows, stored, -1)

    def _bad_status(self, status: object) -> Exception:
        return _sql.Damaged("a record's status", ValueError(str(status)[:40]))

    # ------------------------------------------------------------------ writes

    def _put_new(self, record: ResponseRecord, ttl: float | None, keep: Sequence[ResponseRecord], size: int) -> bool:
        key = _owner_key(record.owner)
        text = _sql.record_text(record)
        terminal = record.is_terminal
        values = (*_sql.new_row(record, key, ttl, size, text, terminal=terminal), record.previous_response_id, terminal)

        def put(conn: psycopg.Connection[Any], state: _sql.State) -> bool:
            now = self._now()
            if state.due is not None and state.due <= now and self._sweep_rows(conn, now, SWEEP_BATCH):
                state = self._read_state(conn)
            spared = self._spared(conn, record, keep, key, now)
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

    @staticmethod
    def _swap_statement(
        old: Stored, new: ResponseRecord, text: str, size: int, log: LogWrite | None
    ) -> tuple[str, Callable[[float], Any]]:
        terminal = new.is_terminal
        head = (
            new.status.value,
            terminal,
            new.version,
            text,
            size,
            None if terminal else new.lease_expires_at,
            terminal,
        )
        middle = () if log is None else (log.first + log.events, log.event_bytes, log.stored)
        tail = (old.incarnation, old.record.version, old.events)
        return _SQL_SWAP[None if log is None else log.replace], lambda now: (*head, *middle, *tail, now)

    def _sweep_rows(self, conn: psycopg.Connection[Any], now: float, limit: int | None) -> int:
        rows = conn.execute(_SQL_SWEEP, (now, limit)).fetchall()
        if rows:
            self._unlinked(conn, [(seq, key, id) for seq, key, id in rows], "expired")
        return len(rows)

    # ------------------------------------------------------------------ conversations

    def _conversation_swap(self, write: ConversationWrite) -> bool:
        apply = self._conversation_write(write)

        def swap(conn: psycopg.Connection[Any], _: object) -> bool:
            if not apply(conn, self._now()):
                raise _sql.Abort(result=False)
            return True

        return self._write(swap)

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
        state = self._state()
        self._check_thread(state)
        with state.mutex:
            self._check_contents(state.conn)

    def _check_contents(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            self._check_tables(conn)
            stats = self._stats_of(conn, self._now())
        finally:
            _rollback(conn)
        self._check_stats(stats)

    def _check_indexes(self, conn: psycopg.Connection[Any], rows: list[Any], leased: set[int]) -> None:
        used = [row[9] for row in rows if row[5]]
        _sql.invariant(len(set(used)) == len(used), "two finished records share a recency")

    def _more_columns(self, record: ResponseRecord) -> tuple[Any, ...]:
        return (record.previous_response_id,)
