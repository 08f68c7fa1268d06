"""SQLite against the memory backend: byte capacity, leases and eviction give the same answers, byte for byte.

The memory backend is the reference implementation of the contract. Both stores run the same operations on the
same fake clock, with the same ids (given, never generated), and must agree on every outcome, every record and
every ``stats()`` (``bytes`` included). Also here: the record JSON the SQLite backend writes is ``to_dict()``'s.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from responsestore import (
    BaseStore,
    DeltaRun,
    ResponseRecord,
    ResponseStore,
    ResponseStoreError,
    SQLiteStore,
    StoreFull,
    _sql,
)
from responsestore.testing import FakeClock, strategies

# ---------------------------------------------------------------------------------------------- the record's JSON


@given(
    record=strategies.records(),
    lease=st.one_of(st.none(), st.tuples(st.one_of(st.none(), st.text(min_size=1, max_size=5)), st.floats(0, 1e10))),
)
@settings(max_examples=200)
def test_the_stored_json_is_what_to_dict_writes(record: ResponseRecord, lease: tuple[str | None, float] | None) -> None:
    if lease is not None and not record.is_terminal:
        record = attrs.evolve(record, lease_holder=lease[0], lease_expires_at=lease[1])
    assert _sql.record_text(record) == _sql.json_text(record.to_dict())
    assert ResponseRecord.from_dict(json.loads(_sql.record_text(record))) == record


def test_the_stored_json_covers_every_field_of_a_record() -> None:
    """A field added to ResponseRecord must be added to ``_sql.record_text`` too (this names the one that is not)."""
    covered = {
        "id", "created_at", "model", "status", "input", "output", "previous_response_id", "instructions", "tools",
        "metadata", "usage", "error", "incomplete_details", "background", "completed_at", "owner", "version",
        "extra", "lease_holder", "lease_expires_at",
    }  # fmt: skip
    assert {field.name for field in attrs.fields(ResponseRecord)} == covered


# ------------------------------------------------------------------------------------------ one scenario, two stores


def _item(id: str, role: str, text: str) -> dict[str, Any]:
    return {"type": "message", "id": id, "role": role, "content": text}


def _outcome(call: Callable[[], Any]) -> Any:
    """What a call returned (records as their JSON), or the name of the error it raised."""
    try:
        value = call()
    except ResponseStoreError as exc:
        return type(exc).__name__, getattr(exc, "bound", None)
    if isinstance(value, ResponseRecord):
        return value.to_dict()
    if isinstance(value, tuple):
        return [json.dumps(event) for event in value]
    return value


class Twins:
    """A memory store and an SQLite store run side by side."""

    def __init__(self, path: Path, **options: Any) -> None:
        self.clock = FakeClock()
        self.memory = ResponseStore(clock=self.clock, **options)
        self.sqlite = SQLiteStore(path, clock=self.clock, synchronous="NORMAL", **options)
        self.names = 0

    def both(self, action: Callable[[BaseStore], Any]) -> Any:
        expected = _outcome(lambda: action(self.memory))
        got = _outcome(lambda: action(self.sqlite))
        assert got == expected
        assert self.sqlite.stats() == self.memory.stats()
        return expected

    def check(self) -> None:
        self.memory._check()
        self.sqlite._check()
        memory_ids = [record.id for record in self.memory.list(limit=100).data]
        assert [record.id for record in self.sqlite.list(limit=100).data] == memory_ids

    def close(self) -> None:
        self.memory.close()
        self.sqlite.close()


def _step(twins: Twins, rng: random.Random, ids: list[str]) -> None:  # noqa: PLR0912 - one branch per operation
    kind = rng.choice(["create", "create", "append", "finish", "get", "delete", "update", "renew", "expire", "tick"])
    target = rng.choice(ids) if ids else "resp_none"
    if kind == "create":
        twins.names += 1
        id = f"resp_{twins.names:04d}"
        text = "x" * rng.choice([10, 200, 900])
        previous = target if ids and rng.random() < 0.3 else None
        lease = rng.choice([None, 5.0, 50.0])

        def create(store: BaseStore) -> Any:
            return store.create(
                "m", [_item(f"msg_{id}", "user", text)], id=id, previous_response_id=previous, lease=lease
            )

        twins.both(create)
        if twins.both(lambda store: store.contains(id)) is True:
            ids.append(id)
    elif kind == "append":
        n = rng.randrange(1, 20)
        batch: list[Mapping[str, Any] | DeltaRun] = [
            {"type": "response.in_progress", "note": "y" * rng.choice([5, 300])},
            DeltaRun({"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": ""},
                     [f"d{k} " for k in range(n)]),
        ]  # fmt: skip
        twins.both(lambda store: store.append_events(target, batch))
    elif kind == "finish":
        output = [{"type": "message", "id": f"out_{target}", "role": "assistant", "content": "d0 d1 d2 "}]
        how = rng.choice(["complete", "fail", "cancel"])
        if how == "complete":
            twins.both(lambda store: store.complete(target, output, event={"type": "response.completed"}))
        elif how == "fail":
            twins.both(lambda store: store.fail(target, "boom"))
        else:
            twins.both(lambda store: store.update(target, status="cancelled"))
    elif kind == "get":
        twins.both(lambda store: store.get(target))
    elif kind == "delete":
        twins.both(lambda store: store.delete(target))
    elif kind == "update":
        metadata = {"k": "z" * rng.choice([1, 400])}
        twins.both(lambda store: store.update(target, metadata=metadata))
    elif kind == "renew":
        seconds = rng.choice([1.0, 30.0])
        twins.both(lambda store: store.renew(target, lease=seconds))
    elif kind == "expire":
        twins.both(lambda store: store.expire_leases())
    else:
        twins.clock.advance(rng.choice([1.0, 10.0, 40.0]))
    twins.both(lambda store: store.events(target))


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(
    "options",
    [
        {"max_bytes": 6_000, "max_records": None, "ttl": 100.0},
        {"max_bytes": 20_000, "max_records": 6, "ttl": None},
        {"max_bytes": None, "max_records": 5, "ttl": 60.0},
    ],
    ids=["bytes", "bytes-and-records", "records"],
)
def test_sqlite_agrees_with_the_memory_backend(tmp_path: Path, seed: int, options: dict[str, Any]) -> None:
    twins = Twins(tmp_path / "twin.db", **options)
    rng = random.Random(seed)
    ids: list[str] = []
    try:
        for step in range(70):
            _step(twins, rng, ids)
            if step % 10 == 9:
                twins.check()
        twins.check()
    finally:
        twins.close()


# ---------------------------------------------------------------------------------------------- byte capacity


def test_byte_capacity_evicts_refuses_and_lets_a_response_end(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "b.db", max_bytes=3_000, max_records=None) as store:
        first = store.complete(store.create("m", "a" * 400, id="first").id)
        store.complete(store.create("m", "b" * 400, id="second").id)
        store.get(first.id)  # second is now the least recently used
        running = store.create("m", "c" * 400, id="running", background=True)
        assert store.stats().bytes <= 3_000
        store.create("m", "d" * 900, id="big")  # evicts second, not first
        assert ("first" in store, "second" in store) == (True, False)
        assert store.stats().evicted == 1
        # Active records are never evicted: a create that cannot fit is refused naming the bound.
        with pytest.raises(StoreFull) as info:
            store.create("m", "e" * 3_000, id="huge")
        assert (info.value.bound, info.value.max_bytes) == ("max_bytes", 3_000)
        assert "huge" not in store
        # An append that cannot fit is refused too; a response that ends is stored even over the bound.
        before = store.stats()
        with pytest.raises(StoreFull):
            store.append_events(running.id, [{"type": "x", "pad": "p" * 3_000}])
        assert store.stats() == before
        events = [{"type": "response.output_text.done", "pad": "q" * 3_000}]
        finished = store.complete(running.id, [{"role": "assistant", "content": "ok"}], events=events)
        assert finished.status.value == "completed"
        assert store.stats().bytes > 3_000  # over the bound until finished records can go
        store._check()
        store.create("m", "f", id="after")  # evicts finished records to get back within the bound
        assert store.stats().bytes <= 3_000
        store._check()


def test_leases_are_indexed_and_ended_across_processes_stores(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "l.db"
    with SQLiteStore(path, clock=clock) as one, SQLiteStore(path, clock=clock) as two:
        soon = one.create("m", id="soon", lease=5, holder="worker-1")
        later = one.create("m", id="later", lease=50, holder="worker-1")
        one.create("m", id="none")
        assert [r.id for r in two._leased(clock() + 10, 10)] == ["soon"]
        clock.advance(6)
        assert two.expire_leases() == 1  # the other store ends what the first one's worker left
        ended = one.get(soon.id)
        assert (ended.status.value, ended.lease_holder, ended.lease_expires_at) == ("failed", None, None)
        assert one.events(soon.id)[-1]["type"] == "response.failed"
        renewed = two.renew(later.id, lease=100)
        assert renewed.lease_expires_at == clock() + 100
        clock.advance(60)
        assert one.expire_leases() == 0
        assert one._state().conn.execute(
            "SELECT id, lease_expires_at FROM responses WHERE lease_expires_at IS NOT NULL"
        ).fetchall() == [("later", renewed.lease_expires_at)]
        one._check()
