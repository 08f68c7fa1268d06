"""Opening a file of schema version 1 (one row per event) migrates it to version 2 (chunks), then to the current
version, and loses nothing.

The version-1 files are built here from the frozen historical format: the DDL below is copied from the version-1
code and must never change, and the rows are written as that code wrote them (the record's ``to_dict()`` JSON, one
row per stamped event, the counters row with its ``tick`` and tombstone count).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from responsestore import DeltaRun, ResponseRecord, ResponseStatus, ResponseStore, SQLiteStore, StorageError
from responsestore import _sqlite as sqlite_backend
from responsestore.testing import FakeClock

from .test_sqlite import Child

#: Schema version 1, exactly as version 1 of the code created it (frozen: it is the format of existing files).
V1_DDL = (
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
    "tick INTEGER NOT NULL, tombstones INTEGER NOT NULL, n_queued INTEGER NOT NULL, n_in_progress INTEGER NOT NULL, "
    "n_completed INTEGER NOT NULL, n_failed INTEGER NOT NULL, n_cancelled INTEGER NOT NULL, "
    "n_incomplete INTEGER NOT NULL)",
)
V1_APPLICATION_ID = 0x72737374
TTL = 1000.0


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _v1_owner(owner: str | None) -> str:
    return "" if owner is None else ":" + owner  # version 1's owner encoding (ASCII owners)


@attrs.define
class V1File:
    """A version-1 database and what it holds, as the tests expect to read it back."""

    path: Path
    records: dict[tuple[str | None, str], ResponseRecord] = attrs.field(factory=dict)
    events: dict[tuple[str | None, str], list[dict[str, Any]]] = attrs.field(factory=dict)
    seqs: dict[tuple[str | None, str], int] = attrs.field(factory=dict)
    removed: list[tuple[str | None, str]] = attrs.field(factory=list)
    counts: dict[str, int] = attrs.field(factory=dict)


def _events_of(id: str, text: str) -> list[dict[str, Any]]:
    """A stream of events as version 1 stamped them (``sequence_number`` last, or where the event carried it)."""
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": {"id": id, "status": "in_progress"}},
        {"sequence_number": 1, "type": "response.output_item.added", "output_index": 0},  # carried its number first
    ]
    events += [
        {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": d}
        for d in (text[:3], text[3:6], text[6:], "")
    ]
    events.append({"type": "response.output_text.done", "output_index": 0, "content_index": 0, "text": text})
    events.append({"type": "custom.unicode", "note": 'naïve ☃ \u2028 "quoted"'})
    return [{**event, "sequence_number": number} for number, event in enumerate(events)]


def build_v1_file(path: Path, clock: FakeClock) -> V1File:
    """A version-1 file with records of every status and owner, with events, tombstones and lifetime counts."""
    made = V1File(path)
    source = ResponseStore(clock=clock, max_records=None, ttl=TTL)  # only to build valid records
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
        for statement in V1_DDL:
            conn.execute(statement)
        tick = 0
        for n, status in enumerate([*ResponseStatus, ResponseStatus.COMPLETED]):
            for owner in (None, "alice"):
                clock.advance(1)
                text = f"answer {n} of {status.value}"
                record = source.create("gpt-4o", f"question {n}", owner=owner, background=True, status="queued")
                if status is not ResponseStatus.QUEUED:
                    record = source.start(record.id, owner=owner) if status is not ResponseStatus.CANCELLED else record
                if status is ResponseStatus.COMPLETED:
                    output = [{"role": "assistant", "content": text}]
                    record = source.complete(
                        record.id, output, owner=owner, usage={"input_tokens": 1, "output_tokens": 2}
                    )
                elif status is ResponseStatus.FAILED:
                    record = source.fail(record.id, "boom", owner=owner)
                elif status is ResponseStatus.CANCELLED:
                    record = source.cancel(record.id, owner=owner)
                elif status is ResponseStatus.INCOMPLETE:
                    record = source.mark_incomplete(record.id, "max_output_tokens", owner=owner)
                events = [] if (n, owner) == (0, None) else _events_of(record.id, text)  # one without events
                tick += 1
                (seq,) = conn.execute(
                    "INSERT INTO responses (owner, id, created_at, status, terminal, model, version, ttl, expires_at, "
                    "last_used, event_count, event_bytes, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "RETURNING seq",
                    (
                        _v1_owner(owner),
                        record.id,
                        record.created_at,
                        status.value,
                        int(record.is_terminal),
                        record.model,
                        record.version,
                        TTL,
                        record.created_at + TTL,
                        tick,
                        len(events),
                        sum(len(_json(event)) for event in events),
                        _json(record.to_dict()),
                    ),
                ).fetchone()
                for number, event in enumerate(events):
                    conn.execute(
                        "INSERT INTO events (response, number, size, event) VALUES (?, ?, ?, ?)",
                        (seq, number, len(_json(event)), _json(event)),
                    )
                key = (owner, record.id)
                made.records[key], made.events[key], made.seqs[key] = record, events, seq
        # Two records removed before the migration: their tombstones, and the sequence numbers they used.
        for n in range(2):
            clock.advance(1)
            gone = source.create("gpt-4o", f"removed {n}")
            (seq,) = conn.execute(
                "INSERT INTO responses (owner, id, created_at, status, terminal, model, version, ttl, expires_at, "
                "last_used, record) VALUES ('', ?, ?, 'in_progress', 0, 'gpt-4o', 1, ?, ?, 0, ?) RETURNING seq",
                (gone.id, gone.created_at, TTL, gone.created_at + TTL, _json(gone.to_dict())),
            ).fetchone()
            conn.execute("DELETE FROM responses WHERE seq = ?", (seq,))
            conn.execute(
                "INSERT INTO removed (owner, id, created_at, seq) VALUES ('', ?, ?, ?)",
                (gone.id, gone.created_at, seq),
            )
            made.removed.append((None, gone.id))
        statuses = [record.status.value for record in made.records.values()]
        made.counts = {"created": len(made.records) + 2 + 5, "deleted": 1, "evicted": 5, "expired": 1}
        conn.execute(
            "INSERT INTO counters (only, created, deleted, evicted, expired, tick, tombstones, n_queued, "
            "n_in_progress, n_completed, n_failed, n_cancelled, n_incomplete) VALUES (0, ?, ?, ?, ?, ?, 2, ?, ?, ?, ?, "
            "?, ?)",
            (
                made.counts["created"],
                made.counts["deleted"],
                made.counts["evicted"],
                made.counts["expired"],
                tick,
                *(statuses.count(status.value) for status in ResponseStatus),
            ),
        )
        conn.execute(f"PRAGMA application_id = {V1_APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 1")
        conn.execute("COMMIT")
    finally:
        conn.close()
    return made


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(time.time())  # now: other processes read the file on the real clock


@pytest.fixture
def v1(tmp_path: Path, clock: FakeClock) -> V1File:
    return build_v1_file(tmp_path / "responses.db", clock)


@contextlib.contextmanager
def opened(v1: V1File, clock: FakeClock, **options: Any) -> Iterator[SQLiteStore]:
    with SQLiteStore(v1.path, **{"clock": clock, "ttl": TTL, "max_records": None, **options}) as store:
        yield store
        store._check()


def _tables(path: Path) -> set[str]:
    raw = sqlite3.connect(path)
    try:
        return {name for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        raw.close()


def _user_version(path: Path) -> int:
    raw = sqlite3.connect(path)
    try:
        version: int = raw.execute("PRAGMA user_version").fetchone()[0]
        return version
    finally:
        raw.close()


def test_every_record_event_cursor_and_counter_survives_the_migration(v1: V1File, clock: FakeClock) -> None:
    assert _user_version(v1.path) == 1
    with opened(v1, clock) as store:
        assert _user_version(v1.path) == sqlite_backend.SCHEMA_VERSION
        assert _tables(v1.path) == {
            "responses",
            "chunks",
            "removed",
            "counters",
            "sqlite_sequence",
            "conversations",
            "conversation_items",
        }
        store._check()
        assert {record.status for record in v1.records.values()} == set(ResponseStatus)
        for (owner, id), record in v1.records.items():
            assert store.get(id, owner=owner) == record
            events = store.events(id, owner=owner)
            assert [_json(event) for event in events] == [_json(event) for event in v1.events[owner, id]]
            after = store.events(id, owner=owner, starting_after=3)
            assert [_json(event) for event in after] == [_json(event) for event in v1.events[owner, id][4:]]
            stored = store._read(owner, id)
            assert stored is not None
            assert (stored.incarnation, stored.events) == (v1.seqs[owner, id], len(v1.events[owner, id]))
        # Lists keep their order, and a removed record's tombstone still places a page.
        for owner in (None, "alice"):
            mine = [id for (who, id) in v1.records if who == owner]
            assert [r.id for r in store.list(owner=owner, order="asc", limit=100).data] == mine
        removed_owner, removed_id = v1.removed[0]
        assert store.list(after=removed_id, owner=removed_owner, order="asc").data == ()
        stats = store.stats()
        assert (stats.created, stats.deleted, stats.evicted, stats.expired) == (
            v1.counts["created"],
            v1.counts["deleted"],
            v1.counts["evicted"],
            v1.counts["expired"],
        )
        assert stats.records == len(v1.records)
        assert dict(stats.by_status) == {
            status.value: sum(1 for r in v1.records.values() if r.status is status) for status in ResponseStatus
        }
        assert stats.bytes > 0


def test_a_migrated_store_goes_on_where_version_1_stopped(v1: V1File, clock: FakeClock) -> None:
    with opened(v1, clock) as store:
        # A new record's incarnation is above every number version 1 gave, the removed records' included.
        fresh = store.create("gpt-4o", "after the migration")
        stored = store._read(None, fresh.id)
        assert stored is not None
        assert stored.incarnation > max(v1.seqs.values()) + len(v1.removed)
        # An active record's log goes on from its last number; finishing compacts it and replays it exactly.
        owner, id = next(key for key, r in v1.records.items() if r.status is ResponseStatus.IN_PROGRESS)
        count = len(v1.events[owner, id])
        delta = {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0}
        assert store.append_events(id, [DeltaRun({**delta, "delta": ""}, ["x", "y"])], owner=owner) == count
        store.complete(id, [{"role": "assistant", "content": "done"}], owner=owner, event={"type": "response.done"})
        events = store.events(id, owner=owner)
        assert [event["sequence_number"] for event in events] == list(range(count + 3))
        assert [_json(event) for event in events[:count]] == [_json(event) for event in v1.events[owner, id]]
        assert [event.get("delta") for event in events[count:]] == ["x", "y", None]
        # A finished record's metadata changes (its log encoded again against the new record) and reads back.
        (owner, id), _ = next((key, r) for key, r in v1.records.items() if r.status is ResponseStatus.COMPLETED)
        store.update(id, owner=owner, metadata={"k": "v"})
        assert [_json(e) for e in store.events(id, owner=owner)] == [_json(e) for e in v1.events[owner, id]]
        # Recency carried over: at the cap, the least recently used finished record of version 1 goes first.
    finished = sorted((v1.seqs[key], key) for key, r in v1.records.items() if r.is_terminal and key != (owner, id))
    with opened(v1, clock, max_records=len(v1.records) + 1) as store:
        store.create("gpt-4o", "one more")
        oldest_owner, oldest_id = finished[0][1]
        assert not store.contains(oldest_id, owner=oldest_owner)
        assert store.stats().evicted == v1.counts["evicted"] + 1


def test_the_migration_runs_once(v1: V1File, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    with opened(v1, clock):
        pass

    def again(conn: sqlite3.Connection) -> None:
        raise AssertionError("migrated twice")

    monkeypatch.setattr(sqlite_backend, "_MIGRATIONS", dict.fromkeys(sqlite_backend._MIGRATIONS, again))
    with opened(v1, clock) as store:
        assert len(store) == len(v1.records)
    assert _user_version(v1.path) == sqlite_backend.SCHEMA_VERSION


def test_expired_records_migrate_and_stay_invisible_until_swept(v1: V1File, clock: FakeClock) -> None:
    clock.advance(TTL)
    with opened(v1, clock) as store:
        assert len(store) == 0
        stats = store.stats()
        assert stats.expired == v1.counts["expired"] + len(v1.records)
        assert store.sweep() == len(v1.records)
        assert store.stats() == stats


CONCURRENT_OPENER = r"""
import sys
from responsestore import SQLiteStore

with SQLiteStore(sys.argv[1], max_records=None, ttl=None) as store:
    print(len(store), flush=True)
"""


def test_processes_opening_a_version_1_file_at_once_migrate_it_once(v1: V1File, clock: FakeClock) -> None:
    with contextlib.ExitStack() as stack:
        children = [stack.enter_context(Child(CONCURRENT_OPENER, str(v1.path))) for _ in range(3)]
        assert [child.line() for child in children] == [str(len(v1.records))] * 3
        for child in children:
            child.finish()
    with opened(v1, clock) as store:
        for (owner, id), record in v1.records.items():
            assert store.get(id, owner=owner) == record
            assert [_json(e) for e in store.events(id, owner=owner)] == [_json(e) for e in v1.events[owner, id]]


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE responses SET record = '{\"id\": ' WHERE seq = 3",
        "UPDATE events SET event = '[1, 2]' WHERE response = 3 AND number = 2",
        "DELETE FROM events WHERE response = 3 AND number = 1",
        "UPDATE events SET event = json_set(event, '$.sequence_number', 99) WHERE response = 3 AND number = 2",
    ],
)
def test_a_damaged_version_1_file_is_refused_and_left_unchanged(v1: V1File, clock: FakeClock, damage: str) -> None:
    raw = sqlite3.connect(v1.path)
    raw.execute(damage)
    raw.commit()
    raw.close()
    before = v1.path.read_bytes()
    with pytest.raises(StorageError, match="cannot migrate") as info:
        SQLiteStore(v1.path, clock=clock)
    assert str(v1.path) in str(info.value)
    assert _user_version(v1.path) == 1
    assert v1.path.read_bytes() == before
    assert "events" in _tables(v1.path)


def test_a_file_of_a_newer_version_is_refused_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "responses.db"
    with SQLiteStore(path) as store:
        store.create("m", id="kept")
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {sqlite_backend.SCHEMA_VERSION + 1}")
    raw.close()
    before = {p.name: p.read_bytes() for p in sorted(tmp_path.iterdir())}
    with pytest.raises(StorageError, match="newer"):
        SQLiteStore(path)
    assert {p.name: p.read_bytes() for p in sorted(tmp_path.iterdir())} == before
