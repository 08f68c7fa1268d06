"""Conversations in the SQLite backend: real files shared by processes, the migration that adds them, damaged rows,
the invariants ``_check()`` holds them to, and the statements each operation runs.

(What every backend does with conversations is in the conformance suite, ``responsestore.testing``.)
"""

from __future__ import annotations

import multiprocessing
import queue
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from responsestore import (
    ConversationNotFound,
    ResponseStatus,
    ResponseStoreError,
    SQLiteStore,
    StorageError,
)
from responsestore import _sqlite as sqlite_backend
from responsestore.testing import FakeClock

from .test_sqlite import _schema, _statements, _transactions

TIMEOUT = 60.0  # seconds any one wait on a child process may take before the test fails
SEGMENT = 4  # rounds the processes write between two meetings


def said(text: str, role: str = "user") -> dict[str, Any]:
    return {"role": role, "content": text}


def texts(items: Any) -> list[str]:
    return [item["content"][0]["text"] for item in items]


def _raw(path: Path, *statements: str) -> None:
    """Run ``statements`` on the file behind the store's back (as a damaged disk or another program would)."""
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in statements:
            raw.execute(statement)
    finally:
        raw.close()


def _count(path: Path, sql: str) -> int:
    raw = sqlite3.connect(path)
    try:
        value: int = raw.execute(sql).fetchone()[0]
        return value
    finally:
        raw.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "responses.db"


# ---------------------------------------------------------------------------------------------- processes


def _append_in_a_process(
    path: str, conversation: str, *, name: str, rounds: int, meet: Any, results: Any
) -> None:  # pragma: no cover - runs in a child process
    """Add batches of two items and finish responses (input and output: two items) on one conversation, in turns.

    Reports ``(name, item ids in the order this process wrote them)``, or ``(name, error)``.
    """
    try:
        with SQLiteStore(path, synchronous="NORMAL", max_records=None) as store:
            written: list[str] = []
            for r in range(rounds):
                if r % SEGMENT == 0:
                    meet.wait(TIMEOUT)  # both children start each segment together, so their writes meet
                if r % 2:
                    added = store.add_conversation_items(conversation, [said(f"{name}.{r}.0"), said(f"{name}.{r}.1")])
                    written += [item["id"] for item in added]
                else:
                    response = store.create("m", f"{name}.{r}.0", conversation=conversation)
                    done = store.complete(response.id, [said(f"{name}.{r}.1", "assistant")])
                    written += [done.input[0]["id"], done.output[0]["id"]]
            store._check()
        results.put((name, written))
    except BaseException as exc:  # noqa: BLE001 - reported to the test through the queue
        meet.abort()  # the other process stops waiting for this one
        results.put((name, f"{type(exc).__name__}: {exc}"))


def test_processes_appending_to_one_conversation_lose_nothing_and_keep_their_order(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes (spawned) each add items and finish responses on one conversation of one file, at once."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent))  # the children import this module
    rounds = 10 * SEGMENT
    with SQLiteStore(db, max_records=None) as store:
        conversation = store.create_conversation([said("first")])
    context = multiprocessing.get_context("spawn")
    meet = context.Barrier(2)
    results = context.Queue()
    children = [
        context.Process(
            target=_append_in_a_process,
            args=(str(db), conversation.id),
            kwargs={"name": name, "rounds": rounds, "meet": meet, "results": results},
            daemon=True,
        )
        for name in ("a", "b")
    ]
    for child in children:
        child.start()
    try:
        reported = dict(results.get(timeout=TIMEOUT) for _ in children)
    except queue.Empty:
        pytest.fail("a child process did not report within the timeout")
    finally:
        for child in children:
            child.join(TIMEOUT)
            if child.is_alive():
                child.kill()
                child.join(TIMEOUT)
    assert all(isinstance(written, list) for written in reported.values()), reported
    assert [child.exitcode for child in children] == [0, 0]
    with SQLiteStore(db, max_records=None) as store:
        items = store.conversation_context(conversation.id)
        found = texts(items)
        assert len(found) == 1 + 2 * 2 * rounds, "an item was lost or doubled"
        assert found[0] == "first"
        ids = [item["id"] for item in items[1:]]
        for name, written in reported.items():
            assert [id for id in ids if id in set(written)] == written, f"the items of {name} are out of order"
            assert [text for text in found[1:] if text.startswith(f"{name}.")] == [
                f"{name}.{r}.{k}" for r in range(rounds) for k in (0, 1)
            ]
        for first, second in zip(found[1::2], found[2::2], strict=True):
            assert (first[:-1], first[-1], second[-1]) == (second[:-1], "0", "1"), "a batch was split"
        assert store.get_conversation(conversation.id).version == 1 + 2 * rounds
        assert store.stats().by_status[ResponseStatus.COMPLETED.value] == rounds  # half the rounds, two processes
        store._check()


def test_a_conversation_changed_between_the_read_and_the_write_of_a_finish_changes_nothing(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The response's write and the conversation's write are one transaction: when the conversation's condition
    fails (another store on the file wrote first), the response is not finished either, and the finish is retried."""
    with SQLiteStore(db) as store, SQLiteStore(db) as other:
        conversation = store.create_conversation()
        response = store.create("m", "question", conversation=conversation.id)
        original = store._swap
        outcomes: list[bool] = []

        def swap(*args: Any) -> bool:
            if len(args) == 5 and not outcomes:
                other.add_conversation_items(conversation.id, [said("another process")])
            result = original(*args)
            outcomes.append(result)
            if not result:
                assert other.get(response.id).status is ResponseStatus.IN_PROGRESS, "half a write landed"
                assert texts(other.conversation_context(conversation.id)) == ["another process"]
            return result

        monkeypatch.setattr(store, "_swap", swap)
        done = store.complete(response.id, [said("answer", "assistant")])
        assert outcomes == [False, True]
        assert done.version == response.version + 1
        assert texts(store.conversation_context(conversation.id)) == ["another process", "question", "answer"]
        assert store.get_conversation(conversation.id).version == 3
        store._check()


# ---------------------------------------------------------------------------------------------- storage


def test_deleting_a_conversation_deletes_its_items_and_its_count(db: Path) -> None:
    clock = FakeClock()
    with SQLiteStore(db, clock=clock, ttl=100, max_records=None) as store:
        kept = store.create_conversation([said("kept")])
        gone = store.create_conversation([said(str(n)) for n in range(20)])
        expiring = store.create_conversation([said(str(n)) for n in range(5)])
        store.add_conversation_items(kept.id, [said("more")])
        assert _count(db, "SELECT count(*) FROM conversation_items") == 27
        assert _count(db, "SELECT conversations FROM counters") == 3
        store.delete_conversation(gone.id)
        assert _count(db, "SELECT count(*) FROM conversation_items") == 7
        assert _count(db, "SELECT conversations FROM counters") == 2
        clock.advance(60)
        store.add_conversation_items(kept.id, [said("again")])
        clock.advance(60)
        assert store.sweep() == 1  # the expired conversation, with its items
        with pytest.raises(ConversationNotFound):
            store.get_conversation(expiring.id)
        assert _count(db, "SELECT count(*) FROM conversation_items") == 3
        assert _count(db, "SELECT conversations FROM counters") == 1
        store._check()
    with SQLiteStore(db, clock=clock, ttl=100) as store:  # everything survives closing and reopening
        assert texts(store.conversation_context(kept.id)) == ["kept", "more", "again"]
        assert store.get_conversation(kept.id).version == 3


def test_a_create_sweeps_a_few_expired_conversations(db: Path) -> None:
    clock = FakeClock()
    with SQLiteStore(db, clock=clock, ttl=10, max_records=None) as store:
        for _ in range(sqlite_backend.SWEEP_BATCH + 3):
            store.create_conversation([said("old")])
        clock.advance(11)
        store.create_conversation()
        assert _count(db, "SELECT count(*) FROM conversations") == 3 + 1
        assert store.sweep() == 3
        store._check()


def test_owners_are_kept_apart_whatever_their_text(db: Path) -> None:
    with SQLiteStore(db) as store:
        owners = [None, "", ":", ":x", '"x"', "x", "é", "\u2028"]
        made = {owner: store.create_conversation([said(repr(owner))], owner=owner) for owner in owners}
        for owner, conversation in made.items():
            assert texts(store.conversation_context(conversation.id, owner=owner)) == [repr(owner)]
            for other in owners:
                if other != owner:
                    with pytest.raises(ConversationNotFound):
                        store.get_conversation(conversation.id, owner=other)
        store._check()


def test_the_conversation_queries_use_their_indexes(db: Path) -> None:
    with SQLiteStore(db) as store:
        conn = store._state().conn
        statements = {
            "conversation": sqlite_backend._Q.conversation,
            "item": sqlite_backend._Q.item,
            "held": sqlite_backend._Q.held,
            "swap": sqlite_backend._Q.conversation_swap,
            "delete": sqlite_backend._Q.conversation_delete,
            "delete an item": sqlite_backend._Q.item_delete,
            "sweep": sqlite_backend._Q.conversations_sweep,
            **{f"items {key}": sql for key, sql in sqlite_backend._Q.items.items()},
        }
        plans = {
            name: " ".join(
                row[3]
                for row in conn.execute("EXPLAIN QUERY PLAN " + sql, ["[]" if name == "held" else 1] * sql.count("?"))
            )
            for name, sql in statements.items()
        }
        for name in ("conversation", "item", "held", "swap", "delete"):
            assert "USING INDEX conversations_key" in plans[name], plans[name]
        assert "conversation_items_id" in plans["item"]
        assert "conversation_items_id" in plans["held"]
        assert "conversation_items_id" in plans["delete an item"]
        assert "conversations_expiry" in plans["sweep"]
        assert all("USING PRIMARY KEY" in plans[f"items {key}"] for key in sqlite_backend._Q.items)
        assert "SCAN conversations" not in " ".join(plans.values())
        assert "TEMP B-TREE" not in " ".join(plans.values())  # every order comes from an index


def test_each_conversation_operation_is_one_transaction_of_a_few_statements(db: Path) -> None:
    with SQLiteStore(db, max_records=5) as store:
        made: list[Any] = []
        create = _statements(store, lambda: made.append(store.create_conversation([said("a"), said("b")])))
        # BEGIN, the bounded sweep, the count (a counter, not a scan), the insert, one per item, COMMIT
        assert (len(create), _transactions(create)) == (7, 1), create
        assert "SELECT conversations FROM counters" in create
        conversation = made[0]
        add = _statements(store, lambda: store.add_conversation_items(conversation.id, [said("c")]))
        # reading the conversation and the ids it holds, then BEGIN, UPDATE, INSERT, COMMIT
        assert (len(add), _transactions(add)) == (6, 1), add
        response = store.create("m", "question", conversation=conversation.id)
        finish = _statements(store, lambda: store.complete(response.id, [said("answer", "assistant")]))
        # the response, the conversation, the ids it holds; BEGIN, the response's UPDATE, the conversation's, one per
        # item (the input and the output), COMMIT
        assert (len(finish), _transactions(finish)) == (9, 1), finish
        page = _statements(store, lambda: store.conversation_items(conversation.id))
        assert _transactions(page) == 1
        assert all(statement.startswith(("BEGIN", "SELECT", "ROLLBACK")) for statement in page), page
        assert texts(store.conversation_context(conversation.id)) == ["a", "b", "c", "question", "answer"]
        store._check()


# ---------------------------------------------------------------------------------------------- migration


def _as_version_2(path: Path) -> None:
    """Turn a file of the current schema into one of version 2, as that version's code wrote it: no conversation
    tables, no conversation count."""
    _raw(
        path,
        "BEGIN IMMEDIATE",
        "DROP TABLE conversation_items",
        "DROP TABLE conversations",  # its triggers and indexes go with it
        "ALTER TABLE counters DROP COLUMN conversations",
        "PRAGMA user_version = 2",
        "COMMIT",
    )


def _rows(path: Path) -> dict[str, list[Any]]:
    raw = sqlite3.connect(path)
    try:
        return {
            table: raw.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()  # noqa: S608 - constant names
            for table in ("responses", "chunks", "removed", "counters")
        }
    finally:
        raw.close()


def test_a_version_2_file_gets_the_conversation_tables_and_keeps_everything_else(tmp_path: Path) -> None:
    path = tmp_path / "responses.db"
    fresh = tmp_path / "fresh.db"
    with SQLiteStore(path) as store:
        finished = store.complete(store.create("m", "one", id="one").id, [said("1", "assistant")])
        running = store.create("m", "two", id="two", background=True)
        store.append_event(running.id, {"type": "delta"})
        store.delete(store.create("m", "three", id="three").id)
    with SQLiteStore(fresh):
        pass
    _as_version_2(path)
    assert "conversations" not in _schema(path)["table"]
    before = _rows(path)
    with SQLiteStore(path) as store:
        assert _schema(path) == _schema(fresh), "a migrated file differs from a new one"
        assert _count(path, "PRAGMA user_version") == sqlite_backend.SCHEMA_VERSION
        after = _rows(path)
        assert {table: after[table] for table in ("responses", "chunks", "removed")} == {
            table: before[table] for table in ("responses", "chunks", "removed")
        }
        assert [row[:-1] for row in after["counters"]] == before["counters"]  # the count of conversations appended
        assert after["counters"][0][-1] == 0
        assert store.get(finished.id) == finished
        assert store.events(running.id)[0]["type"] == "delta"
        conversation = store.create_conversation([said("new")])
        done = store.complete(store.create("m", "q", conversation=conversation.id).id, [said("a", "assistant")])
        assert done.status is ResponseStatus.COMPLETED
        assert texts(store.conversation_context(conversation.id)) == ["new", "q", "a"]
        store._check()


def test_opening_a_version_2_file_that_cannot_be_written_is_refused_and_leaves_it_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "responses.db"
    with SQLiteStore(path) as store:
        store.create("m", "kept", id="kept")
    _as_version_2(path)
    holder = sqlite3.connect(path, isolation_level=None)  # another program holds the file's write lock
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StorageError, match=r"locked|busy"):
            SQLiteStore(path, busy_timeout=0.2)
        holder.execute("ROLLBACK")
    finally:
        holder.close()
    assert _count(path, "PRAGMA user_version") == 2
    with SQLiteStore(path) as store:
        assert store.get("kept").id == "kept"
        store._check()


# ---------------------------------------------------------------------------------------------- damage


def _filled(path: Path) -> str:
    with SQLiteStore(path) as store:
        conversation = store.create_conversation([{"id": "msg_a", **said("a")}, {"id": "msg_b", **said("b")}])
        store.add_conversation_items(conversation.id, [{"id": "msg_c", **said("c")}])
        return conversation.id


def _conversation_calls(store: SQLiteStore, id: str) -> dict[str, Callable[[], Any]]:
    return {
        "get": lambda: store.get_conversation(id),
        "items": lambda: store.conversation_items(id),
        "items ascending": lambda: store.conversation_items(id, order="asc"),
        "items after a cursor": lambda: store.conversation_items(id, after="msg_b"),
        "context": lambda: store.conversation_context(id),
        "item": lambda: store.get_conversation_item(id, "msg_b"),
        "add": lambda: store.add_conversation_items(id, [said("d")]),
        "delete an item": lambda: store.delete_conversation_item(id, "msg_a"),
        "update": lambda: store.update_conversation(id, metadata={"k": "v"}),
        "respond": lambda: store.complete(store.create("m", "q", conversation=id).id, [said("r", "assistant")]),
        "create": lambda: store.create_conversation([said("x")]),
        "sweep": store.sweep,
        "delete": lambda: store.delete_conversation(id),
    }


#: name -> (the damage, a call that must notice it)
DAMAGE = {
    "record JSON cut short": ("UPDATE conversations SET record = substr(record, 1, 20)", "get"),
    "record JSON of another shape": ("UPDATE conversations SET record = '[1, 2, 3]'", "get"),
    "record of the wrong type": ("UPDATE conversations SET record = 42", "get"),
    "record with bad metadata": ("UPDATE conversations SET record = json_set(record, '$.metadata', 7)", "get"),
    "record of another owner": ("UPDATE conversations SET record = json_set(record, '$.owner', 'mallory')", "get"),
    "version column tampered": ("UPDATE conversations SET version = version + 1", "get"),
    "item count of the wrong type": ("UPDATE conversations SET items = 'many'", "get"),
    "expiry of the wrong type": ("UPDATE conversations SET expires_at = 'soon'", "get"),
    "item JSON cut short": ("UPDATE conversation_items SET item = substr(item, 1, 9)", "context"),
    "item JSON of another shape": ("UPDATE conversation_items SET item = '[1]'", "context"),
    "item of the wrong type": ("UPDATE conversation_items SET item = 42", "context"),
    "item JSON nested absurdly deep": ("UPDATE conversation_items SET item = printf('%.*c', 100000, '[')", "context"),
    "item id disagreeing with its JSON": (
        "UPDATE conversation_items SET item = json_set(item, '$.id', 'msg_x')",
        "context",
    ),
    "item position of the wrong type": ("UPDATE conversation_items SET position = 'x' || position", "context"),
    "counters row deleted": ("DELETE FROM counters", "create"),
    "items table dropped": ("DROP TABLE conversation_items", "context"),
}


def _outcome(call: Callable[[], Any]) -> tuple[str, str]:
    """``("ok", "")``, or the kind and message of the store's error (any other exception fails the test)."""
    try:
        call()
    except ResponseStoreError as exc:
        return type(exc).__name__, str(exc)
    return "ok", ""


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_conversation_row_raises_storage_error_naming_the_file(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "responses.db"
    id = _filled(path)
    statement, noticed_by = DAMAGE[damage]
    _raw(path, statement)
    with SQLiteStore(path) as store:
        outcomes = {name: _outcome(call) for name, call in _conversation_calls(store, id).items()}
    kinds = {name: kind for name, (kind, _) in outcomes.items()}
    assert kinds[noticed_by] == "StorageError", kinds  # the damage is noticed
    for name, (kind, message) in outcomes.items():
        if kind == "StorageError":
            assert str(path) in message, (name, message)
            assert len(message) <= 500, name


# ---------------------------------------------------------------------------------------------- invariants


INCONSISTENT = {
    "a count above the rows": ("UPDATE counters SET conversations = conversations + 1", "conversation count"),
    "an item deleted behind the count": ("DELETE FROM conversation_items WHERE item_id = 'msg_b'", "item count"),
    "an item beyond the next position": (
        "UPDATE conversation_items SET position = 7 WHERE item_id = 'msg_c'",
        "beyond",
    ),
    "an orphan item": (
        "INSERT INTO conversation_items (conversation, position, item_id, item) "
        "VALUES (999, 0, 'msg_z', '{\"id\":\"msg_z\"}')",
        "outlived",
    ),
    "a record whose JSON disagrees": ("UPDATE conversations SET record = json_set(record, '$.owner', 'x')", "damaged"),
    "JSON not as the backend writes it": (
        "UPDATE conversation_items SET item = ' ' || item WHERE item_id = 'msg_a'",
        "JSON of item",
    ),
}


@pytest.mark.parametrize("inconsistency", sorted(INCONSISTENT))
def test_check_finds_inconsistent_conversations(tmp_path: Path, inconsistency: str) -> None:
    path = tmp_path / "responses.db"
    _filled(path)
    with SQLiteStore(path) as store:
        store._check()
        statement, message = INCONSISTENT[inconsistency]
        _raw(path, statement)
        with pytest.raises(AssertionError, match=message):
            store._check()
