"""Type-checked with ``mypy --strict``: the public testing toolkit used the way a user's tests would."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from hypothesis import given
from hypothesis import strategies as st

from responsestore import BaseStore, Page, ResponseRecord, ResponseStatus, ResponseStore, SQLiteStore
from responsestore.testing import FakeClock, assert_legal_path, assert_valid_response, assert_walked_once
from responsestore.testing import strategies as rs
from responsestore.testing.contract import ContractBase, StoreContract
from responsestore.testing.plugin import StoreFactory


def clock_driven() -> float:
    clock = FakeClock(0.0)
    store = ResponseStore(clock=clock, ttl=10.0)
    clock.advance(1.5)
    clock.set(2.0)
    record = store.create("m")
    store.close()
    now: float = clock()
    return now + record.created_at


def walk(store: BaseStore) -> None:
    pages: list[Page[ResponseRecord]] = [store.list(limit=5)]
    while pages[-1].has_more:
        pages.append(store.list(limit=5, after=pages[-1].last_id))
    assert_walked_once(pages, [record.id for page in pages for record in page.data])
    assert_legal_path([ResponseStatus.QUEUED, "in_progress", ResponseStatus.COMPLETED])


def body_check(record: ResponseRecord) -> str:
    parsed: dict[str, Any] = assert_valid_response(json.dumps(record.to_openai()))
    assert_valid_response(record.to_openai())
    assert_valid_response(json.dumps(parsed).encode())
    model: str = parsed["model"]
    return model


@given(
    path=rs.lifecycle_paths(),
    events=rs.event_sequences(),
    record=rs.records(ResponseStatus.COMPLETED),
    data=st.data(),
)
def property_test(
    path: list[ResponseStatus], events: list[dict[str, Any]], record: ResponseRecord, data: st.DataObject
) -> None:
    assert_legal_path(path)
    model: str = data.draw(rs.models())
    bad: object = data.draw(rs.invalid_request_inputs())
    items: list[dict[str, Any]] = data.draw(rs.input_item_lists())
    assert events
    assert record.id
    assert model
    assert items is not bad


def with_fixtures(
    response_store: ResponseStore,
    fake_clock: FakeClock,
    response_store_factory: StoreFactory,
    sqlite_response_store: SQLiteStore,
) -> None:
    other: BaseStore = response_store_factory("sqlite:///tmp/x.db", ttl=60.0)
    memory: BaseStore = response_store_factory({"max_records": 5})
    fake_clock.advance(1)
    response_store.create("m")
    sqlite_response_store.create("m")
    other.create("m")
    memory.create("m")


class TestMyBackend(StoreContract):
    fast_options: ClassVar[Mapping[str, Any]] = {"synchronous": "NORMAL"}
    weight = 4

    def make_store(self, **options: Any) -> BaseStore:
        return SQLiteStore(self.scratch_directory() / "responses.db", **options)


def knobs(contract: ContractBase) -> tuple[int, Path]:
    count: int = contract.examples(100, minimum=5) + contract.scaled(10, 2)
    store: BaseStore = contract.open_fast(clock=FakeClock())
    store.close()
    return count, contract.scratch_directory()
