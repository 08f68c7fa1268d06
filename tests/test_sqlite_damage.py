"""A damaged SQLite file: every public method raises StorageError naming the file (never a raw exception)."""

from __future__ import annotations

import functools
import os
import random
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from responsestore import DeltaRun, ResponseStoreError, SQLiteStore, StorageError


def _fill(path: Path) -> dict[str, str]:
    with SQLiteStore(path, synchronous="NORMAL") as store:
        first = store.complete(store.create("m", "one", id="first").id, [{"role": "assistant", "content": "1"}])
        second = store.create("m", "two", id="second", previous_response_id=first.id, background=True)
        store.append_event(second.id, {"type": "delta"})
        third = store.create("m", "three", id="third")
        delta = {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": ""}
        store.append_events(third.id, [DeltaRun(delta, ["Hel", "lo"])])
        # Finishing compacts the log against the final record: the deltas become a reference to its output.
        store.complete(third.id, [{"role": "assistant", "content": "Hello"}], event={"type": "response.completed"})
        talk = store.create_conversation([{"id": "msg_hi", "role": "user", "content": "hi"}], metadata={"k": "v"})
        asked = store.create("m", "and?", conversation=talk.id)
        store.complete(asked.id, [{"role": "assistant", "content": "and so on"}])
        doomed = store.create_conversation([{"role": "user", "content": "to be deleted"}])
    return {"first": first.id, "second": second.id, "third": third.id, "talk": talk.id, "doomed": doomed.id}


def _calls(store: SQLiteStore, ids: dict[str, str]) -> dict[str, Callable[[], Any]]:
    talk = ids["talk"]
    return {
        "get": lambda: store.get("first"),
        "get second": lambda: store.get("second"),
        "list": store.list,
        "conversation": lambda: store.conversation("second"),
        "input_items": lambda: store.input_items("first"),
        "events": lambda: store.events("second"),
        "events of a finished response": lambda: store.events("third"),
        "update a finished response": lambda: store.update("third", metadata={"k": "v"}),
        "update": lambda: store.update("first", metadata={"k": "v"}),
        "complete": lambda: store.complete("second"),
        "delete": lambda: store.delete("first"),
        "create": lambda: store.create("m", "new"),
        "len": lambda: len(store),
        "stats": store.stats,
        "sweep": store.sweep,
        "get a conversation": lambda: store.get_conversation(talk),
        "a conversation's items": lambda: store.conversation_items(talk, after="msg_hi", order="asc"),
        "a conversation's context": lambda: store.conversation_context(talk),
        "a conversation's item": lambda: store.get_conversation_item(talk, "msg_hi"),
        "add to a conversation": lambda: store.add_conversation_items(talk, [{"role": "user", "content": "more"}]),
        "respond in a conversation": lambda: store.complete(store.create("m", "q", conversation=talk).id),
        "create a conversation": store.create_conversation,
        "delete a conversation": lambda: store.delete_conversation(ids["doomed"]),
    }


def _outcomes(store: SQLiteStore, ids: dict[str, str]) -> dict[str, str]:
    """Run every call; each must succeed or raise a documented error (StorageError for damage)."""
    return {name: _outcome(name, call) for name, call in _calls(store, ids).items()}


def _outcome(name: str, call: Callable[[], Any]) -> str:
    try:
        call()
    except ResponseStoreError as exc:
        message = str(exc)
        kind = type(exc).__name__
    else:
        return "ok"
    assert len(message) <= 2_000, name
    return kind


TAMPERING = {
    "record JSON cut short": "UPDATE responses SET record = substr(record, 1, 20) WHERE id = 'first'",
    "record JSON of another shape": "UPDATE responses SET record = '[1, 2, 3]' WHERE id = 'first'",
    "record JSON with a bad field": "UPDATE responses SET record = json_set(record, '$.status', 'exploded')",
    "record of the wrong type": "UPDATE responses SET record = 42 WHERE id = 'second'",
    "chunk JSON cut short": "UPDATE chunks SET text = '[{\"e\": '",
    "chunk of the wrong type": "UPDATE chunks SET text = 42",
    "chunk count tampered": "UPDATE chunks SET count = count + 1",
    "chunk numbered wrongly": "UPDATE chunks SET first = first + 1",
    "chunks deleted": "DELETE FROM chunks",
    "output a compacted log refers to changed": (
        "UPDATE responses SET record = json_set(record, '$.output[0].content[0].text', 'Bye') WHERE id = 'third'"
    ),
    "counters row deleted": "DELETE FROM counters",
    "version column tampered": "UPDATE responses SET version = 'x' WHERE id = 'second'",
}


@pytest.mark.parametrize("tampering", sorted(TAMPERING))
def test_tampered_rows_raise_storage_error_naming_the_file(tmp_path: Path, tampering: str) -> None:
    path = tmp_path / "responses.db"
    ids = _fill(path)
    raw = sqlite3.connect(path)
    raw.execute(TAMPERING[tampering])
    raw.commit()
    raw.close()
    with SQLiteStore(path) as store:
        outcomes = _outcomes(store, ids)
        assert "StorageError" in outcomes.values(), outcomes  # the damage is noticed somewhere
        for name, call in _calls(store, ids).items():
            if outcomes[name] == "StorageError":
                with pytest.raises(StorageError) as info:
                    call()
                assert str(path) in str(info.value), name


@pytest.mark.parametrize("seed", range(30))
def test_flipped_bits_or_a_truncated_file_raise_only_documented_errors(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "responses.db"
    ids = _fill(path)
    # Closing the last connection checkpointed the WAL into the main file, so the damage hits real pages.
    data = bytearray(path.read_bytes())
    rng = random.Random(seed)
    if seed % 3 == 0:
        data = data[: rng.randrange(100, len(data))]
    else:
        for _ in range(1 + seed):
            position = rng.randrange(len(data))
            data[position] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))
    for leftover in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        if leftover.exists():
            os.remove(leftover)
    try:
        store = SQLiteStore(path)
    except StorageError as exc:
        refusal = str(exc)
    else:
        refusal = ""
    if refusal:
        assert str(path) in refusal
        return
    with store:
        _outcomes(store, ids)


CHUNK_TAMPERING = {name: sql for name, sql in TAMPERING.items() if name.startswith(("chunk", "output a compacted log"))}


@pytest.mark.parametrize("tampering", sorted(CHUNK_TAMPERING))
def test_a_damaged_chunk_makes_reading_the_log_a_storage_error(tmp_path: Path, tampering: str) -> None:
    path = tmp_path / "responses.db"
    ids = _fill(path)
    raw = sqlite3.connect(path)
    raw.execute(CHUNK_TAMPERING[tampering])
    raw.commit()
    raw.close()
    with SQLiteStore(path) as store:
        outcomes = {id: _outcome(id, functools.partial(store.events, id)) for id in (ids["second"], ids["third"])}
        assert "StorageError" in outcomes.values(), outcomes
        for id, outcome in outcomes.items():
            if outcome == "StorageError":
                with pytest.raises(StorageError, match="damaged") as info:
                    store.events(id)
                assert str(path) in str(info.value)
        assert store.get(ids["first"]).id == ids["first"]  # the rest of the file still reads
