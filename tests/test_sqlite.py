"""What only the SQLite backend has: real files shared by processes, crashes, bad files, schema versions, closing,
durability settings, and ``open()`` URLs. (Everything every backend does is in the conformance suite,
``responsestore.testing.contract``.)

Other processes run small scripts with ``sys.executable`` and talk to the test over pipes: one JSON value or one
word per line. Every wait on a child is bounded (a hang fails the test instead of stalling it).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import responsestore
from responsestore import (
    InvalidArgument,
    ResponseRecord,
    ResponseStore,
    ResponseStoreError,
    SQLiteStore,
    StorageError,
    VersionConflict,
)
from responsestore import _contract as contract
from responsestore import _sql as sql_backend
from responsestore import _sqlite as sqlite_backend
from responsestore._retention import DEFAULT_MAX_RECORDS
from responsestore.testing import FakeClock

from .processes import TIMEOUT, Child, check_races, run_workers, walk, worker

# ---------------------------------------------------------------------------------------------- helpers


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "responses.db"


@pytest.fixture
def store(db: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(db, clock=FakeClock()) as opened:
        yield opened
        opened._check()


# ---------------------------------------------------------------------------------------------- processes

WORKER = worker(
    imports="from responsestore import SQLiteStore",
    open='SQLiteStore(target, max_records=None, synchronous="NORMAL")',
    step="""
        record = store.create("m", f"w{index}-{step}", owner="pool", metadata={"worker": str(index)})
        store.complete(record.id, [{"role": "assistant", "content": str(index)}], owner="pool")
        result["created"].append(record.id)
        counter = rng.choice(shared["counters"])
        while True:  # optimistic increment: read, write with expected_version, retry on a conflict
            current = store.get(counter)
            n = int(current.metadata["n"]) + 1
            try:
                store.update(counter, metadata={"n": str(n)}, expected_version=current.version)
                break
            except VersionConflict:
                result["conflicts"] += 1
        result["increments"][counter] = result["increments"].get(counter, 0) + 1""",
    limit=7,
    every=10,
)
WORKERS = 4
ROUNDS = 40


def test_processes_racing_on_one_file_lose_no_update_and_see_every_record_once(db: Path) -> None:
    with SQLiteStore(db, max_records=None) as store:
        counters = [store.create("m", id=f"counter{n}", metadata={"n": "0"}).id for n in range(2)]
        races = [store.create("m", id=f"race{n}").id for n in range(ROUNDS)]
        stable = [store.create("m", owner="stable").id for _ in range(23)]
        results = run_workers(WORKER, str(db), WORKERS, ROUNDS, {"counters": counters, "races": races})
        # No lost update: each counter's version and value count every increment any process made.
        for counter in counters:
            increments = sum(result["increments"].get(counter, 0) for result in results)
            record = store.get(counter)
            assert record.metadata["n"] == str(increments)
            assert record.version == 1 + increments
        assert sum(sum(result["increments"].values()) for result in results) == WORKERS * ROUNDS
        check_races(store, races, results)
        # Every page walk of a list others were not changing saw each record once, in order.
        assert all(ids == stable for result in results for ids in result["walks"])
        assert sum(len(result["walks"]) for result in results) == WORKERS * (ROUNDS // 10)
        # Every record created by any process is listed exactly once, in creation order per process.
        created = [id for result in results for id in result["created"]]
        for order in ("asc", "desc"):
            listed = walk(store, owner="pool", order=order)
            assert sorted(listed) == sorted(created)
            assert len(set(listed)) == len(listed) == WORKERS * ROUNDS
        listed = walk(store, owner="pool", order="asc")
        for result in results:
            assert [id for id in listed if id in set(result["created"])] == result["created"]
        stats = store.stats()
        assert stats.created == len(counters) + len(races) + len(stable) + WORKERS * ROUNDS
        assert stats.records == len(store) == stats.created
        store._check()


READER_WRITER = r"""
import json, sys
from responsestore import SQLiteStore

store = SQLiteStore(sys.argv[1])
for command in sys.stdin:
    command = command.strip()
    if command == "create":
        record = store.create("m", "hello")
        usage = {"input_tokens": 1, "output_tokens": 2}
        record = store.complete(record.id, [{"role": "assistant", "content": "hi"}], usage=usage)
        print(json.dumps([record.id, record.version]), flush=True)
    elif command == "start":
        record = store.create("m", "slow", background=True)
        print(json.dumps([record.id, record.version]), flush=True)
    elif command.startswith("events "):
        id = command.split()[1]
        for n in range(5):
            store.append_event(id, {"type": "response.output_text.delta", "delta": str(n)})
        store.complete(id, [{"role": "assistant", "content": "done"}], event={"type": "response.completed"})
        print("done", flush=True)
    elif command.startswith("get "):
        record = store.get(command.split()[1])
        print(json.dumps([record.id, record.version]), flush=True)
store.close()
"""


def test_a_record_written_by_one_process_is_readable_in_another_at_once(db: Path) -> None:
    with SQLiteStore(db) as store:
        with Child(READER_WRITER, str(db)) as child:
            for _ in range(10):
                child.send("create")
                id, version = json.loads(child.line())
                record = store.get(id)  # at once: no retry, no wait
                assert (record.status.value, record.version, version) == ("completed", 2, 2)
                assert record.usage is not None
                assert record.usage["total_tokens"] == 3
                assert record.output[0]["content"][0]["text"] == "hi"
            # The other way round: what this process writes, the child reads.
            mine = store.create("m", "from the parent")
            child.send(f"get {mine.id}")
            assert json.loads(child.line()) == [mine.id, 1]
            child.finish()
        store._check()


def test_wait_and_stream_see_another_processs_writes(db: Path) -> None:
    with SQLiteStore(db) as store:
        with Child(READER_WRITER, str(db)) as child:
            child.send("start")
            id, _ = json.loads(child.line())
            events: list[dict[str, Any]] = []
            finished: list[Any] = []
            streamer = threading.Thread(target=lambda: events.extend(store.stream(id, timeout=TIMEOUT)))
            waiter = threading.Thread(target=lambda: finished.append(store.wait(id, timeout=TIMEOUT)))
            streamer.start()
            waiter.start()
            child.send(f"events {id}")  # another process writes: only polling can notice it here
            assert child.line() == "done"
            streamer.join(TIMEOUT)
            waiter.join(TIMEOUT)
            assert not streamer.is_alive()
            assert not waiter.is_alive()
            child.finish()
        assert [event["sequence_number"] for event in events] == list(range(6))
        assert [event.get("delta") for event in events[:5]] == ["0", "1", "2", "3", "4"]
        assert events[5]["type"] == "response.completed"
        assert [(record.id, record.status.value, record.version) for record in finished] == [(id, "completed", 2)]


APPENDER = r"""
import json, sys
from responsestore import DeltaRun, EventLogClosed, SQLiteStore

path, index, rounds, finish_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ids = json.loads(sys.argv[5])
store = SQLiteStore(path, max_records=None, synchronous="NORMAL")
result = {"appended": [], "closed": 0, "finished": [], "errors": []}
print("ready", flush=True)
sys.stdin.readline()
try:
    for step in range(rounds):
        for id in ids:
            tag = f"{index}-{step}"
            delta = {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": ""}
            batch = [{"type": "test.mark", "tag": tag}, DeltaRun({**delta, "tag": tag}, [tag + "a", tag + "b"])]
            try:
                result["appended"].append([id, store.append_events(id, batch), tag])
            except EventLogClosed:
                result["closed"] += 1
        if step == finish_at:  # each process finishes its half of the responses, the other still appending
            for id in ids[index::2]:
                store.complete(id, [{"role": "assistant", "content": "x"}], event={"type": "done", "by": index})
                result["finished"].append(id)
except Exception as exc:
    result["errors"].append(repr(exc))
print(json.dumps(result), flush=True)
store.close()
"""


def test_processes_appending_and_finishing_on_one_file_never_lose_an_event(db: Path) -> None:
    rounds, finish_at = 24, 12
    with SQLiteStore(db, max_records=None) as store:
        ids = [store.create("m", f"r{n}", background=True).id for n in range(6)]
        with contextlib.ExitStack() as stack:
            children = [
                stack.enter_context(Child(APPENDER, str(db), str(n), str(rounds), str(finish_at), json.dumps(ids)))
                for n in range(2)
            ]
            assert [child.line() for child in children] == ["ready"] * 2
            for child in children:
                child.send("go")
            results = [json.loads(child.line()) for child in children]
            for child in children:
                child.finish()
        assert [result["errors"] for result in results] == [[], []]
        assert sorted(id for result in results for id in result["finished"]) == sorted(ids)
        appended = [(id, first, tag) for result in results for id, first, tag in result["appended"]]
        # Every append either landed (at the number it reported) or was refused because the log had closed.
        assert len(appended) + sum(result["closed"] for result in results) == 2 * rounds * len(ids)
        assert sum(result["closed"] for result in results) > 0
        for id in ids:
            record, events = store.snapshot(id)
            assert record.status.value == "completed"
            assert [event["sequence_number"] for event in events] == list(range(len(events)))
            mine = sorted((first, tag) for who, first, tag in appended if who == id)
            assert 3 * len(mine) + 1 == len(events)  # nothing lost, nothing added
            for first, tag in mine:
                assert [event.get("tag") for event in events[first : first + 3]] == [tag] * 3
                assert [event.get("delta") for event in events[first + 1 : first + 3]] == [tag + "a", tag + "b"]
            assert events[-1]["type"] == "done"
            assert events[-1]["by"] == ids.index(id) % 2
        store._check()


TOUCHER = r"""
import sys
from responsestore import SQLiteStore

with SQLiteStore(sys.argv[1], max_records=3) as store:
    store.get(sys.argv[2])
print("touched", flush=True)
"""


def test_recency_is_shared_between_processes(db: Path) -> None:
    with SQLiteStore(db, max_records=3) as store:
        a, b, c = (store.create("m", id=name) for name in "abc")
        for record in (a, b, c):
            store.complete(record.id)
        with Child(TOUCHER, str(db), "a") as child:  # a is the least recently used until the child reads it
            assert child.line() == "touched"
            child.finish()
        store.create("m", id="d")  # evicts the least recently used: b, because the other process used a
        assert ("a" in store, "b" in store, "c" in store, "d" in store) == (True, False, True, True)
        assert store.stats().evicted == 1
        store._check()


CRASHER = r"""
import sys
from responsestore import SQLiteStore

store = SQLiteStore(sys.argv[1], max_records=None)
n = 0
while True:
    record = store.create("m", f"turn {n}", metadata={"n": str(n)})
    print("created", record.id, flush=True)
    record = store.complete(record.id, [{"role": "assistant", "content": f"answer {n}"}])
    print("completed", record.id, record.version, flush=True)
    n += 1
"""


def test_a_process_killed_mid_write_loses_nothing_it_acknowledged(db: Path) -> None:
    rng = random.Random(20240501)
    acknowledged: dict[str, str] = {}  # id -> the last state the child reported
    for unreported in range(1, 4):  # each kill may leave one create committed but never reported
        with Child(CRASHER, str(db)) as child:
            for _ in range(rng.randrange(4, 60)):
                word, id, *_ = child.line().split()
                acknowledged[id] = word
            child.kill()  # SIGKILL wherever the child is: likely inside a create or a complete
            for line in child.rest():  # printed before the kill, but not read yet
                word, id, *_ = line.split()
                acknowledged[id] = word
        assert child.process.returncode == -signal.SIGKILL
        raw = sqlite3.connect(db)
        try:
            assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        finally:
            raw.close()
        with SQLiteStore(db, max_records=None) as store:
            store._check()
            for id, word in acknowledged.items():
                record = store.get(id)
                if word == "completed":
                    assert (record.status.value, record.version) == ("completed", 2)
                    assert record.output[0]["content"][0]["text"] == f"answer {record.metadata['n']}"
                else:  # created, and maybe completed before the kill
                    assert record.status.value in ("in_progress", "completed")
            assert len(acknowledged) <= len(store) <= len(acknowledged) + unreported
    assert len(acknowledged) >= 12


def test_a_forked_child_opens_its_own_connections(store: SQLiteStore) -> None:
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    first = store.create("m", "before the fork")
    read, write = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about forking a process that runs other threads (pytest's, earlier tests' daemons);
        # the child here only uses the store, which opens its own connections and locks after a fork.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: use the inherited store object, report, and leave without cleanup
        code = 1
        try:
            made = store.create("m", "in the child")
            ok = store.get(first.id) == first and store.get(made.id) == made
            os.write(write, (made.id if ok else "mismatch").encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        made_id = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.get(made_id).input[0]["content"][0]["text"] == "in the child"
    assert [record.id for record in store.list(order="asc").data] == [first.id, made_id]


# ---------------------------------------------------------------------------------------------- files


def test_a_missing_directory_is_refused_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "responses.db"
    with pytest.raises(StorageError, match="does not exist") as info:
        SQLiteStore(path)
    assert isinstance(info.value, ResponseStoreError)
    assert not (tmp_path / "missing").exists()


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="directory"):
        SQLiteStore(tmp_path)


def _files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 50)
    before = _files(tmp_path)
    with pytest.raises(StorageError, match="responsestore database"):
        SQLiteStore(path)
    assert _files(tmp_path) == before


def test_another_applications_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT)")
    raw.execute("INSERT INTO accounts (name) VALUES ('ada')")
    raw.commit()
    raw.close()
    before = _files(tmp_path)
    with pytest.raises(StorageError, match="another application"):
        SQLiteStore(path)
    assert _files(tmp_path) == before


def test_a_database_of_a_newer_schema_is_refused_and_left_alone(db: Path) -> None:
    with SQLiteStore(db) as store:
        store.create("m", id="kept")
    raw = sqlite3.connect(db)
    raw.execute(f"PRAGMA user_version = {sqlite_backend.SCHEMA_VERSION + 1}")
    raw.close()
    before = _files(db.parent)
    with pytest.raises(StorageError, match="newer"):
        SQLiteStore(db)
    assert _files(db.parent) == before


def test_a_marked_database_without_a_schema_version_is_refused(db: Path) -> None:
    raw = sqlite3.connect(db)
    raw.execute(f"PRAGMA application_id = {sqlite_backend.APPLICATION_ID}")
    raw.execute("CREATE TABLE half_made (x INTEGER)")
    raw.commit()
    raw.close()
    before = _files(db.parent)
    with pytest.raises(StorageError, match="without a schema version"):
        SQLiteStore(db)
    assert _files(db.parent) == before


@pytest.mark.parametrize("path", ["", ":memory:", "file:x.db?mode=memory"])
def test_names_that_are_not_files_are_refused(path: str) -> None:
    with pytest.raises(InvalidArgument, match="must name a file"):
        SQLiteStore(path)


class BytesPath:
    def __fspath__(self) -> bytes:
        return b"bytes.db"


@pytest.mark.parametrize("path", [5, None, b"bytes.db", BytesPath()])
def test_a_path_of_the_wrong_type_is_refused(path: Any) -> None:
    with pytest.raises(InvalidArgument, match="path"):
        SQLiteStore(path)


def test_an_empty_file_becomes_a_new_database(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    with SQLiteStore(path) as store:
        store.create("m", id="first")
        store._check()
    with SQLiteStore(path) as store:
        assert "first" in store


# ---------------------------------------------------------------------------------------------- the schema


def _pragma(path: Path, name: str) -> Any:
    raw = sqlite3.connect(path)
    try:
        return raw.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        raw.close()


def test_a_new_database_records_its_schema_version_and_owner(db: Path) -> None:
    with SQLiteStore(db):
        pass
    assert _pragma(db, "user_version") == sqlite_backend.SCHEMA_VERSION == 3
    assert _pragma(db, "application_id") == sqlite_backend.APPLICATION_ID
    assert _pragma(db, "journal_mode") == "wal"


def _schema(path: Path) -> dict[str, dict[str, str]]:
    """``{type: {name: sql}}`` of every table, index and trigger of the file."""
    raw = sqlite3.connect(path)
    try:
        found: dict[str, dict[str, str]] = {}
        for kind, name, sql in raw.execute("SELECT type, name, sql FROM sqlite_master"):
            found.setdefault(kind, {})[name] = " ".join((sql or "").split())
        return found
    finally:
        raw.close()


def test_the_schema_indexes_only_the_rows_that_need_it(db: Path) -> None:
    with SQLiteStore(db):
        pass
    schema = _schema(db)
    assert set(schema["table"]) == {  # no sqlite_sequence
        "responses",
        "chunks",
        "removed",
        "counters",
        "conversations",
        "conversation_items",
    }
    assert "AUTOINCREMENT" not in " ".join(schema["table"].values())
    assert "seq INTEGER PRIMARY KEY," in schema["table"]["responses"]  # the rowid: the incarnation
    assert schema["table"]["chunks"].endswith("PRIMARY KEY (response, first) ) WITHOUT ROWID")
    assert schema["table"]["conversation_items"].endswith("PRIMARY KEY (conversation, position) ) WITHOUT ROWID")
    assert "seq INTEGER PRIMARY KEY," in schema["table"]["conversations"]
    assert schema["table"]["counters"].endswith("conversations INTEGER NOT NULL DEFAULT 0)")
    indexes = {name: sql for name, sql in schema["index"].items() if sql}  # the unnamed ones are UNIQUE/PK
    assert indexes == {
        "responses_key": "CREATE UNIQUE INDEX responses_key ON responses (owner, id)",
        "responses_order": "CREATE INDEX responses_order ON responses (owner, created_at)",
        "responses_expiry": "CREATE INDEX responses_expiry ON responses (expires_at) WHERE expires_at IS NOT NULL",
        "responses_recency": "CREATE INDEX responses_recency ON responses (last_used) WHERE terminal = 1",
        "responses_lease": (
            "CREATE INDEX responses_lease ON responses (lease_expires_at) WHERE lease_expires_at IS NOT NULL"
        ),
        "conversations_key": "CREATE UNIQUE INDEX conversations_key ON conversations (owner, id)",
        "conversations_expiry": (
            "CREATE INDEX conversations_expiry ON conversations (expires_at) WHERE expires_at IS NOT NULL"
        ),
        "conversation_items_id": (
            "CREATE UNIQUE INDEX conversation_items_id ON conversation_items (conversation, item_id)"
        ),
    }
    assert set(schema["trigger"]) == {
        "responses_inserted",
        "responses_changed",
        "responses_deleted",
        "conversations_inserted",
        "conversations_deleted",
    }


def test_the_hot_queries_use_their_indexes(store: SQLiteStore) -> None:
    conn = store._state().conn
    plans = {
        name: " ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, (1,) * sql.count("?")))
        for name, sql in {
            "row": sqlite_backend._Q.row,
            "lru": sqlite_backend._Q.lru,
            "due": "SELECT min(expires_at) FROM responses WHERE expires_at IS NOT NULL",
            "next use": "SELECT coalesce(max(last_used), 0) + 1 FROM responses WHERE terminal = 1",
            "chunks": sqlite_backend._Q.chunks.replace(":seq", "?").replace(":after", "?"),
            "page": sqlite_backend._Q.scan[True, True],
        }.items()
    }
    assert "USING INDEX responses_key" in plans["row"]
    assert "USING INDEX responses_recency" in plans["lru"]
    assert "responses_expiry" in plans["due"]
    assert "responses_recency" in plans["next use"]
    assert "USING PRIMARY KEY" in plans["chunks"]
    assert "USING INDEX responses_order" in plans["page"]
    assert "TEMP B-TREE" not in " ".join(plans.values())  # nothing sorts: every order comes from an index


def test_an_older_database_is_migrated_step_by_step_once(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with SQLiteStore(db) as store:
        kept = store.create("m", "old data")
    steps: list[int] = []
    current = sqlite_backend.SCHEMA_VERSION

    def to_next(conn: sqlite3.Connection) -> None:
        steps.append(current + 1)
        conn.execute("CREATE TABLE added_next (x INTEGER)")

    monkeypatch.setattr(sqlite_backend, "_MIGRATIONS", {**sqlite_backend._MIGRATIONS, current: to_next})
    monkeypatch.setattr(sqlite_backend, "SCHEMA_VERSION", current + 1)
    with SQLiteStore(db) as store:
        assert store.get(kept.id) == kept
        store._check()
    with SQLiteStore(db):
        pass
    assert steps == [current + 1]
    assert _pragma(db, "user_version") == current + 1


def test_a_failing_migration_changes_nothing(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with SQLiteStore(db) as store:
        kept = store.create("m", "old data")

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x INTEGER)")
        raise sqlite3.OperationalError("disk on fire")

    current = sqlite_backend.SCHEMA_VERSION
    monkeypatch.setattr(sqlite_backend, "_MIGRATIONS", {**sqlite_backend._MIGRATIONS, current: broken})
    monkeypatch.setattr(sqlite_backend, "SCHEMA_VERSION", current + 1)
    with pytest.raises(StorageError, match="disk on fire"):
        SQLiteStore(db)
    monkeypatch.undo()
    assert _pragma(db, "user_version") == current
    with SQLiteStore(db) as store:
        assert store.get(kept.id) == kept
        assert (
            store._state().conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'half_done'").fetchone()[0]
            == 0
        )


# ---------------------------------------------------------------------------------------------- lifetime


def test_everything_survives_closing_and_reopening(db: Path) -> None:
    clock = FakeClock()
    with SQLiteStore(db, clock=clock, max_records=4) as store:
        store.create("m", "one", id="one", metadata={"k": "v"}, background=True)
        store.append_event("one", {"type": "response.created"})
        first = store.complete("one", [{"role": "assistant", "content": "1"}], event={"type": "response.completed"})
        store.create("m", "two", id="two", previous_response_id="one")
        second = store.complete("two")
        store.complete(store.create("m", id="two", owner="alice").id, owner="alice")
        store.create("m", id="three")
        store.delete("three")
        store.complete(store.create("m", id="four").id)
        store.get("two")
        store.get("one")  # least recently used first: alice's two, four, two, one
        stats = store.stats()
    assert (stats.created, stats.deleted, stats.evicted, stats.records) == (5, 1, 0, 4)
    with SQLiteStore(db, clock=clock, max_records=4) as store:
        assert store.stats() == stats
        # The deleted cursor still places a page after reopening (three came after two, before four).
        assert walk(store, after="three", order="asc") == ["four"]
        store.create("m", id="five")  # at the cap: evicts the least recently used finished record
        assert store.stats().evicted == 1
        assert store.contains("two", owner="alice") is False
        assert (store.get("one"), store.get("two")) == (first, second)
        assert store.get("two").previous_response_id == "one"
        assert [event["type"] for event in store.events("one")] == ["response.created", "response.completed"]
        assert "four" in store
        store._check()


def test_close_is_idempotent_and_a_closed_store_refuses_every_call(db: Path) -> None:
    store = SQLiteStore(db)
    record = store.create("m")
    assert repr(store) == f"<SQLiteStore {str(db)!r} open>"
    store.close()
    store.close()
    assert store.closed
    assert repr(store) == f"<SQLiteStore {str(db)!r} closed>"
    calls: list[Callable[[], object]] = [
        lambda: store.get(record.id),
        lambda: store.create("m"),
        store.list,
        lambda: len(store),
        lambda: record.id in store,
        store.stats,
        lambda: store.complete(record.id),
        lambda: store.wait(record.id, timeout=0),
    ]
    for call in calls:
        with pytest.raises(StorageError, match="closed"):
            call()
    with SQLiteStore(db) as reopened:
        assert reopened.get(record.id) == record


def test_the_context_manager_closes_the_store(db: Path) -> None:
    with SQLiteStore(db) as store:
        assert not store.closed
    assert store.closed
    with pytest.raises(StorageError):
        store.create("m")


def test_closing_wakes_a_waiter_with_an_error(db: Path) -> None:
    store = SQLiteStore(db)
    record = store.create("m")
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            store.wait(record.id, timeout=TIMEOUT)
        except BaseException as exc:  # noqa: BLE001 - the outcome is checked below
            outcome.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    store.close()  # whether the waiter is already waiting or not, it must end with StorageError
    waiter.join(TIMEOUT)
    assert not waiter.is_alive()
    assert [type(exc) for exc in outcome] == [StorageError]


def test_connections_of_ended_threads_are_closed(store: SQLiteStore) -> None:
    def use() -> None:
        store.create("m")

    for _ in range(5):
        thread = threading.Thread(target=use)
        thread.start()
        thread.join(TIMEOUT)
    gc.collect()
    assert len(store._connections) == 1  # only this thread's
    assert len(store) == 5


def test_a_file_locked_by_another_writer_fails_after_busy_timeout_and_changes_nothing(db: Path) -> None:
    with SQLiteStore(db, busy_timeout=0.05) as store:
        finished = store.complete(store.create("m", id="finished").id)
        store.create("m", id="newest")
        stats = store.stats()
        other = sqlite3.connect(db, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # another process in the middle of a long write
            with pytest.raises(StorageError, match="locked"):
                store.create("m", id="blocked")
            # Reads go on, marking as used included (it is queued for the next write): WAL readers never wait.
            assert store.get("finished") == finished
            assert (len(store), store.stats(), store.get("newest").id) == (2, stats, "newest")
            assert [record.id for record in store.list().data] == ["newest", "finished"]
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert "blocked" not in store
        assert store.get("finished") == finished
        store.create("m", id="unblocked")
        store._check()


def test_a_write_waits_for_another_threads_write_at_most_busy_timeout(db: Path) -> None:
    with SQLiteStore(db, busy_timeout=0.05) as store:
        inside, release = threading.Event(), threading.Event()

        def hold() -> None:
            def long_write(conn: sqlite3.Connection, _: None) -> None:
                inside.set()
                release.wait(TIMEOUT)

            store._write(long_write)  # a write of this process that takes its time

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert inside.wait(TIMEOUT)
            with pytest.raises(StorageError, match="another thread kept writing"):
                store.create("m", id="blocked")
            assert len(store) == 0  # reads go on meanwhile
        finally:
            release.set()
            holder.join(TIMEOUT)
        assert not holder.is_alive()
        store.create("m", id="later")
        assert [record.id for record in store.list().data] == ["later"]


def test_an_sqlite_error_inside_a_write_is_a_storage_error_and_changes_nothing(db: Path) -> None:
    with SQLiteStore(db) as store:
        store.create("m", id="before")
        stats = store.stats()
        raw = sqlite3.connect(db)
        raw.execute(
            "CREATE TRIGGER refuse AFTER INSERT ON responses WHEN NEW.id = 'doomed' "
            "BEGIN SELECT RAISE(ABORT, 'simulated disk failure'); END"
        )
        raw.commit()
        raw.close()
        with pytest.raises(StorageError, match="simulated disk failure") as info:
            store.create("m", id="doomed")
        assert isinstance(info.value.__cause__, sqlite3.Error)
        assert (store.stats(), "doomed" in store) == (stats, False)
        store.create("m", id="after")  # the connection is usable again
        store._check()


def test_an_sqlite_error_while_reading_is_a_storage_error(db: Path) -> None:
    with SQLiteStore(db) as store:
        record = store.create("m")
        store.append_event(record.id, {"type": "response.created"})
        record = store.get(record.id)
        raw = sqlite3.connect(db)
        raw.execute("ALTER TABLE chunks RENAME TO chunks_gone")
        raw.commit()
        with pytest.raises(StorageError, match="no such table"):
            store.events(record.id)
        raw.execute("ALTER TABLE responses RENAME TO responses_gone")
        raw.commit()
        with pytest.raises(StorageError, match="no such table"):
            store.get(record.id)
        raw.execute("ALTER TABLE responses_gone RENAME TO responses")
        raw.execute("ALTER TABLE chunks_gone RENAME TO chunks")
        raw.commit()
        raw.close()
        assert store.get(record.id) == record
        assert store.events(record.id) == ({"type": "response.created", "sequence_number": 0},)


def test_only_the_last_cursor_memory_removed_records_keep_their_place(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(contract, "CURSOR_MEMORY", 3)  # what cursor_memory() bounds the tombstones by
    ids = [store.create("m", id=f"r{n}").id for n in range(6)]
    for id in ids[:5]:
        store.delete(id)
    for forgotten in ids[:2]:
        with pytest.raises(InvalidArgument, match="unknown cursor"):
            store.list(after=forgotten)
    for remembered in ids[2:5]:
        assert [record.id for record in store.list(after=remembered, order="asc").data] == ["r5"]
    assert store._state().conn.execute("SELECT count(*) FROM removed").fetchone()[0] == 3
    store.create("m", id="r0")  # re-creating a forgotten id; then removing it again remembers it once more
    store.delete("r0")
    assert [record.id for record in store.list(after="r0").data] == ["r5"]  # the new r0 came after r5
    store._check()


def test_the_record_cache_stays_bounded_and_correct(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sql_backend, "CACHE_RECORDS", 3)
    records = [store.create("m", f"text {n}") for n in range(6)]
    assert [store.get(record.id) for record in records] == records
    assert len(store._cache) == 3
    changed = store.update(records[0].id, metadata={"k": "v"})
    assert store.get(records[0].id) == changed
    assert store.get(records[0].id).version == 2
    store._check()


def test_reads_queue_their_recency_marks_for_the_next_write_in_order(store: SQLiteStore) -> None:
    a = store.complete(store.create("m", id="a").id)
    b = store.complete(store.create("m", id="b").id)
    before = dict(store._state().conn.execute("SELECT id, last_used FROM responses").fetchall())
    assert store.get("b") == b
    assert store.get("a") == a
    assert dict(store._state().conn.execute("SELECT id, last_used FROM responses").fetchall()) == before
    store.create("m", id="c")  # the next write applies the queued marks first, in the order of the reads
    ticks = dict(store._state().conn.execute("SELECT id, last_used FROM responses").fetchall())
    assert before["a"] < before["b"] < ticks["b"] < ticks["a"]
    assert ticks["c"] is None  # an active record does not compete for eviction: it has no recency yet
    store.complete("c")  # finishing counts as a use: above every other finished record
    ticks = dict(store._state().conn.execute("SELECT id, last_used FROM responses").fetchall())
    assert ticks["b"] < ticks["a"] < ticks["c"]
    store._check()


# ---------------------------------------------------------------------------------------------- settings


@pytest.mark.parametrize(("value", "pragma"), [("FULL", 2), ("NORMAL", 1), ("full", 2), ("normal", 1)])
def test_durability_settings(db: Path, value: str, pragma: int) -> None:
    with SQLiteStore(db, synchronous=value) as store:
        assert store.synchronous == value.upper()
        store.create("m")
        assert store._state().conn.execute("PRAGMA synchronous").fetchone()[0] == pragma
        seen: list[int] = []
        thread = threading.Thread(
            target=lambda: seen.append(store._state().conn.execute("PRAGMA synchronous").fetchone()[0])
        )
        thread.start()
        thread.join(TIMEOUT)
        assert seen == [pragma]  # every thread's connection has the setting


def test_the_default_durability_is_full(db: Path) -> None:
    with SQLiteStore(db) as store:
        assert store.synchronous == "FULL"
        store.get(store.complete(store.create("m").id).id)
        store.create("m")  # the write that applies the get's recency mark must not change the setting
        assert store._state().conn.execute("PRAGMA synchronous").fetchone()[0] == 2


@pytest.mark.parametrize("value", ["OFF", "EXTRA", "", "FULL ", 1, 2, None, True])
def test_other_durability_settings_are_refused_before_touching_the_disk(db: Path, value: Any) -> None:
    with pytest.raises(InvalidArgument, match="synchronous"):
        SQLiteStore(db, synchronous=value)
    assert not db.exists()


@pytest.mark.parametrize("value", [-1, float("nan"), float("inf"), "5", None, True, 10**9])
def test_bad_busy_timeouts_are_refused(db: Path, value: Any) -> None:
    with pytest.raises(InvalidArgument, match="busy_timeout"):
        SQLiteStore(db, busy_timeout=value)
    assert not db.exists()


def test_owners_are_kept_apart_whatever_their_text(store: SQLiteStore) -> None:
    owners = [None, "", ":", "~", ":alice", "alice", "\ud800", '"quoted"', "null"]
    for owner in owners:
        store.create("m", ascii(owner), id="same", owner=owner)
    for owner in owners:
        assert store.get("same", owner=owner).input[0]["content"][0]["text"] == ascii(owner)
        assert walk(store, owner=owner) == ["same"]
    assert len(store) == len(owners)
    for done, owner in enumerate(owners, 1):  # deleting one owner's record leaves every other owner's
        store.delete("same", owner=owner)
        assert [store.contains("same", owner=other) for other in owners] == [n >= done for n in range(len(owners))]
    assert walk(store, after="same", owner="\ud800") == []  # its tombstone still places a page


# ---------------------------------------------------------------------------------------------- open()


def test_open_memory() -> None:
    store = responsestore.open("memory://", max_records=5)
    assert type(store) is ResponseStore
    assert store.retention.max_records == 5


def test_open_sqlite_relative_and_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    relative = responsestore.open("sqlite:///data/relative.db", ttl=60)
    assert isinstance(relative, SQLiteStore)
    assert relative.path == str(tmp_path / "data" / "relative.db")
    assert relative.retention.ttl == 60
    relative.close()
    absolute_path = tmp_path / "absolute.db"
    assert str(absolute_path).startswith("/")
    absolute = responsestore.open(f"sqlite:///{absolute_path}")  # four slashes in all
    assert isinstance(absolute, SQLiteStore)
    assert absolute.path == str(absolute_path)
    absolute.create("m", id="here")
    absolute.close()
    with responsestore.open(f"SQLITE:///{absolute_path}") as again:
        assert "here" in again


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mongodb://localhost/db", "unknown store scheme 'mongodb'"),
        ("mysql://localhost", "unknown store scheme 'mysql'"),
        ("memory://anything", "exactly 'memory://'"),
        ("sqlite://host/file.db", "three slashes"),
        ("sqlite:///", "names no file"),
        ("responses.db", "not a store URL"),
        ("", "not a store URL"),
    ],
)
def test_open_refuses_other_urls(url: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message) as info:
        responsestore.open(url)
    if "scheme" in message or "URL" in message:
        assert "memory://" in str(info.value)
        assert "sqlite:///" in str(info.value)


@pytest.mark.parametrize("url", ["memory://", "sqlite:///store.db"])
def test_every_backend_opened_from_a_url_is_a_context_manager(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with responsestore.open(url) as store:
        record = store.create("m")
        assert store.get(record.id) == record
        assert not store.closed
    assert store.closed
    with pytest.raises(StorageError, match="closed"):
        store.get(record.id)
    store.close()  # closing again is harmless


def test_a_registered_backend_is_opened_by_its_scheme() -> None:
    responsestore.register_backend("testmem", "responsestore._memory:ResponseStore")
    store = responsestore.open("testmem://", max_records=3)
    assert isinstance(store, ResponseStore)
    assert store.retention.max_records == 3
    responsestore.register_backend("testbroken", "responsestore._nowhere:Store")
    with pytest.raises(InvalidArgument, match="cannot be loaded"):
        responsestore.open("testbroken://")
    with pytest.raises(InvalidArgument, match="lowercase"):
        responsestore.register_backend("Bad Scheme", "x:Y")
    with pytest.raises(InvalidArgument, match="module:Class"):
        responsestore.register_backend("fine", "no-colon")


def test_open_refuses_a_url_that_is_not_a_string() -> None:
    with pytest.raises(InvalidArgument, match="url must be a string"):
        responsestore.open(Path("x.db"))  # type: ignore[arg-type]


def test_open_passes_sqlite_errors_through(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        responsestore.open(f"sqlite:///{tmp_path}/missing/x.db")
    with pytest.raises(InvalidArgument, match="synchronous"):
        responsestore.open(f"sqlite:///{tmp_path}/x.db", synchronous="OFF")


def test_url_query_parameters_set_the_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/q.db?max_bytes=1000000&max_records=50&ttl=60.5&synchronous=normal&busy_timeout=2"
    with responsestore.open(url) as store:
        assert isinstance(store, SQLiteStore)
        assert store.path == str(tmp_path / "q.db")  # the query is not part of the path
        assert store.retention.max_bytes == 1_000_000
        assert (store.retention.max_records, store.retention.ttl) == (50, 60.5)
        assert (store.synchronous, store.busy_timeout) == ("NORMAL", 2.0)
    with responsestore.open(f"sqlite:///{tmp_path}/q.db?max_records=none&ttl=NONE&max_bytes=none") as store:
        assert (store.retention.max_records, store.retention.ttl, store.retention.max_bytes) == (None, None, None)
    with responsestore.open(f"sqlite:///{tmp_path}/q.db?", max_bytes=5000) as store:  # an empty query: no setting
        assert store.retention.max_bytes == 5000
    with responsestore.open(f"sqlite:///{tmp_path}/q.db") as store:
        assert store.retention.max_bytes is None  # SQLite's default: bounded by max_records only
        assert store.retention.max_records == DEFAULT_MAX_RECORDS


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("max_byte=10", "unknown SQLite URL parameter 'max_byte'"),
        ("mode=ro&cache=shared", "unknown SQLite URL parameters 'mode', 'cache'"),
        ("max_bytes=10&max_bytes=20", "gives max_bytes twice"),
        ("max_bytes", "not name=value"),
        ("=5", "not name=value"),
        ("max_bytes=10&&ttl=5", "not name=value"),
        ("max_bytes=ten", "max_bytes must be a whole number or 'none'"),
        ("max_records=-1", "max_records must be a whole number or 'none'"),
        ("max_records=1.5", "max_records must be a whole number or 'none'"),
        ("max_bytes=0", "max_bytes must be"),
        ("ttl=forever", "ttl must be a number of seconds or 'none'"),
        ("ttl=nan", "ttl must be a number of seconds or 'none'"),
        ("ttl=-5", "ttl must be positive"),
        ("synchronous=OFF", "synchronous must be 'FULL' or 'NORMAL'"),
        ("busy_timeout=none", "busy_timeout must be"),
    ],
)
def test_url_query_mistakes_are_refused_before_touching_the_disk(tmp_path: Path, query: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        responsestore.open(f"sqlite:///{tmp_path}/q.db?{query}")
    assert not (tmp_path / "q.db").exists()


def test_a_url_setting_and_the_same_keyword_argument_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="max_bytes given both in the URL and as a keyword argument"):
        responsestore.open(f"sqlite:///{tmp_path}/q.db?max_bytes=10", max_bytes=20)
    assert not (tmp_path / "q.db").exists()


def test_a_question_mark_starts_the_query_so_such_a_file_is_opened_by_path(tmp_path: Path) -> None:
    odd = tmp_path / "what?.db"
    with pytest.raises(InvalidArgument, match="not name=value"):
        responsestore.open(f"sqlite:///{tmp_path}/what?.db")
    with SQLiteStore(odd) as store:  # the constructor takes any path as it is
        store.create("m", id="here")
    assert odd.exists()


def test_version_conflicts_are_reported_across_stores_on_one_file(db: Path) -> None:
    with SQLiteStore(db) as one, SQLiteStore(db) as two:
        record = one.create("m")
        two.update(record.id, metadata={"by": "two"}, expected_version=1)
        with pytest.raises(VersionConflict):
            one.update(record.id, metadata={"by": "one"}, expected_version=1)
        assert one.get(record.id).metadata == {"by": "two"}


# ---------------------------------------------------------------------------------------------- statements


def _statements(store: SQLiteStore, action: Callable[[], object]) -> list[str]:
    """The SQL statements ``action`` runs on this thread's connection (through SQLite's trace callback).

    The callback also reports each trigger a statement fires, as the statement's own text again: repeats in a row
    are one statement (the tests never run the same statement with the same values twice in a row).
    """
    seen: list[str] = []
    conn = store._state().conn
    conn.set_trace_callback(seen.append)
    try:
        action()
    finally:
        conn.set_trace_callback(None)
    return [statement for n, statement in enumerate(seen) if n == 0 or seen[n - 1] != statement]


def _transactions(statements: list[str]) -> int:
    return sum(1 for statement in statements if statement.startswith("BEGIN"))


def test_each_operation_runs_a_handful_of_statements_in_at_most_one_transaction(db: Path) -> None:
    with SQLiteStore(db, max_records=3) as store:
        created: list[ResponseRecord] = []
        create = _statements(store, lambda: created.append(store.create("m", "hello")))
        assert (len(create), _transactions(create)) == (3, 1), create  # BEGIN, INSERT (if there is room), COMMIT
        assert create[1].startswith("INSERT INTO responses"), create
        record = created[0]
        complete = _statements(store, lambda: store.complete(record.id, [{"role": "assistant", "content": "hi"}]))
        assert (len(complete), _transactions(complete)) == (4, 1), complete  # a read, then BEGIN, UPDATE, COMMIT
        assert complete[2].startswith("UPDATE responses"), complete
        get = _statements(store, lambda: store.get(record.id))
        assert len(get) == 1, get  # one read, no transaction, no write
        assert get[0].startswith("SELECT"), get
        assert _transactions(_statements(store, store.list)) == 1  # one snapshot, read only
        chain = _statements(store, lambda: store.conversation(record.id))
        assert len(chain) == 1, chain
        assert chain[0].lstrip().startswith("WITH RECURSIVE"), chain
        for n in range(2):
            store.complete(store.create("m", id=f"f{n}").id)
        at_cap = _statements(store, lambda: store.create("m", "one more"))
        assert _transactions(at_cap) == 1
        assert len(at_cap) <= 11, at_cap  # the insert, plus the sweep, one eviction and its bookkeeping
        assert store.stats().evicted == 1
        writes = [s for s in get + chain if not s.startswith(("SELECT", "WITH"))]
        assert writes == []
        store._check()


FULL_DISK = r"""
import sys
from responsestore import SQLiteStore, StorageError

path = sys.argv[1]
with SQLiteStore(path) as store:
    finished = store.complete(store.create("m", "hello", id="done").id, [{"role": "assistant", "content": "hi"}])
    running = store.create("m", "still going", id="running")
    print("ready", flush=True)
    assert sys.stdin.readline() == "full\n"
    try:
        store.create("m", "x" * 200_000, id="too-big")
    except StorageError as exc:
        print("create refused:", type(exc).__name__, flush=True)
    assert store.get("done") == finished
    assert store.get("running") == running
    assert [record.id for record in store.list().data] == ["running", "done"]
    items = finished.input + finished.output
    assert [item["id"] for item in store.conversation("done")] == [item["id"] for item in items]
    assert store.events("done") == ()
    assert len(store) == 2 and store.stats().records == 2
    assert "too-big" not in store
    print("reads work", flush=True)
"""


def test_reads_work_on_a_full_disk(tmp_path: Path) -> None:
    """On a full filesystem (a small tmpfs), writes fail with StorageError and every read still works."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs")
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode()[:200]}")
    try:
        db = mountpoint / "responses.db"
        with Child(FULL_DISK, str(db)) as child:
            assert child.line() == "ready"
            filler = mountpoint / "filler"
            with filler.open("wb", buffering=0) as out, contextlib.suppress(OSError):
                while True:  # fill what is left of the filesystem, until ENOSPC
                    out.write(b"\0" * 4096)
            child.send("full")
            assert child.line() == "create refused: StorageError"
            assert child.line() == "reads work"
            child.finish()
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_a_dead_threads_connection_is_handed_back_where_the_connections_mutex_is_held(store: SQLiteStore) -> None:
    """The finalizer of a thread's state may run inside another call's critical section, in the same thread.

    The cycle collector frees a state at whatever allocation it runs, also one made while a thread holds the
    connections' mutex (adopting its own connection). A finalizer that waited for the mutex there would wait for
    its own thread forever, and a ``close`` behind it too.
    """
    kept: list[object] = []
    thread = threading.Thread(target=lambda: (len(store), kept.append(store._local.state)))
    thread.start()
    thread.join(60)
    assert len(kept) == 1
    assert len(store._connections) == 2
    done = threading.Event()

    def drop_inside() -> None:
        with store._connections_mutex:
            kept.clear()  # the last reference: the state's finalizer runs here, with the mutex held
        done.set()

    dropper = threading.Thread(target=drop_inside, daemon=True)
    dropper.start()
    assert done.wait(30), "the finalizer waited for a mutex its own thread holds"
    assert len(store._connections) == 1
    store.close()
