"""The testing toolkit itself: FakeClock, the assertion helpers, the strategies, and importing without hypothesis."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import Phase, given
from hypothesis import strategies as st

from responsestore import (
    BaseStore,
    InvalidArgument,
    InvalidTransition,
    Page,
    ResponseRecord,
    ResponseStatus,
    ResponseStore,
    SQLiteStore,
)
from responsestore.testing import FakeClock, assert_legal_path, assert_valid_response, assert_walked_once
from responsestore.testing import strategies as rs
from responsestore.testing.contract import ContractBase, StoreContract
from responsestore.testing.plugin import StoreFactory

from .wire_checks import check_event

S = ResponseStatus

# ---------------------------------------------------------------------------------------------- FakeClock


def test_fake_clock_reads_its_start_until_moved() -> None:
    clock = FakeClock(100.0)
    assert clock() == clock() == 100.0
    clock.advance(2.5)
    assert clock() == 102.5
    clock.advance(-0.5)
    assert clock() == 102.0
    clock.set(7)
    assert clock() == 7
    assert repr(clock) == "FakeClock(7)"
    assert FakeClock()() == 1_700_000_000.0


def test_fake_clock_drives_a_store() -> None:
    clock = FakeClock()
    store = ResponseStore(clock=clock, ttl=10)
    record = store.create("m")
    assert record.created_at == clock()
    clock.advance(11)
    assert record.id not in store
    store.close()


def test_fake_clock_advances_are_never_lost_between_threads() -> None:
    clock = FakeClock(0.0)
    threads = [threading.Thread(target=lambda: [clock.advance(1) for _ in range(5_000)]) for _ in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        sys.setswitchinterval(interval)
    assert not any(thread.is_alive() for thread in threads)
    assert clock() == 20_000


# ---------------------------------------------------------------------------------------------- assert_legal_path


@pytest.mark.parametrize(
    "path",
    [
        ["queued"],
        ["in_progress"],
        ["queued", "in_progress"],
        ["queued", "cancelled"],
        [S.IN_PROGRESS, S.COMPLETED],
        ["queued", "in_progress", "incomplete"],
    ],
)
def test_legal_paths_pass(path: list[Any]) -> None:
    assert_legal_path(path)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ([], "the path is empty"),
        (["completed"], "the path starts completed"),
        (["queued", "queued"], r"illegal step 1, queued -> queued, in the path queued -> queued"),
        (["in_progress", "queued"], "illegal step 1, in_progress -> queued"),
        (["queued", "in_progress", "completed", "failed"], "illegal step 3, completed -> failed"),
        (["queued", "done"], "step 1 of the path is not a response status: 'done'"),
    ],
)
def test_illegal_paths_fail_naming_the_step(path: list[Any], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        assert_legal_path(path)


def _walk(store: BaseStore, path: list[ResponseStatus]) -> ResponseRecord:
    """Drive a fresh record of ``store`` along ``path``; return the last record."""
    record = store.create("m", background=True, status=path[0])  # only background responses may be cancelled
    for status in path[1:]:
        if status is S.IN_PROGRESS:
            record = store.start(record.id)
        elif status is S.COMPLETED:
            record = store.complete(record.id, [{"role": "assistant", "content": "ok"}])
        elif status is S.FAILED:
            record = store.fail(record.id, "boom")
        elif status is S.CANCELLED:
            record = store.cancel(record.id)
        else:
            record = store.mark_incomplete(record.id, "max_output_tokens")
    return record


@given(path=rs.lifecycle_paths())
def test_every_generated_path_is_legal_and_a_store_follows_it(path: list[ResponseStatus]) -> None:
    assert_legal_path(path)
    with ResponseStore(clock=FakeClock()) as store:
        record = _walk(store, path)
        assert record.status is path[-1]
        assert_valid_response(record.to_openai())
        assert_valid_response(json.dumps(record.to_openai()))


@given(path=rs.illegal_lifecycle_paths())
def test_every_illegal_path_fails_the_assertion_and_the_store_refuses_it(path: list[ResponseStatus]) -> None:
    with pytest.raises(AssertionError, match=r"illegal step|the path starts"):
        assert_legal_path(path)
    # No method moves a record back to queued, and cancelling a cancelled response is a no-op (as at OpenAI), so
    # only the other illegal steps can be tried on a store.
    if path[0] in (S.QUEUED, S.IN_PROGRESS) and path[-1] is not S.QUEUED and path[-2:] != [S.CANCELLED] * 2:
        with ResponseStore(clock=FakeClock()) as store, pytest.raises(InvalidTransition):
            _walk(store, path)


# ---------------------------------------------------------------------------------------------- assert_walked_once


def _page(*ids: str) -> Page[dict[str, Any]]:
    return Page(tuple({"id": id} for id in ids), ids[0] if ids else None, ids[-1] if ids else None, has_more=False)


def test_a_walk_seeing_each_id_once_passes_for_records_and_items() -> None:
    store = ResponseStore(clock=FakeClock())
    ids = [store.create("m").id for _ in range(7)]
    pages = [store.list(limit=3, order="asc")]
    while pages[-1].has_more:
        pages.append(store.list(limit=3, order="asc", after=pages[-1].last_id))
    assert_walked_once(pages, ids)
    assert_walked_once([_page("a", "b"), _page("c")], ["c", "b", "a"])
    store.close()


def test_a_walk_names_repeats_misses_and_strangers() -> None:
    with pytest.raises(AssertionError) as caught:
        assert_walked_once([_page("a", "b"), _page("b", "x")], ["a", "b", "c"])
    assert str(caught.value) == (
        "the page walk saw 3 of 3 ids; seen more than once: b (pages 0 and 1); never seen: c; not expected: x"
    )


# ---------------------------------------------------------------------------------------------- assert_valid_response


@given(record=rs.records())
def test_every_generated_record_is_a_valid_response(record: ResponseRecord) -> None:
    assert assert_valid_response(record.to_openai())["id"] == record.id


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"object": "thread"}, "object should be 'response', not 'thread'"),
        ({"status": "done"}, "unknown status 'done'"),
        ({"created_at": 1.5}, "created_at should be int, not 1.5"),
        ({"background": 0}, "background should be bool, not 0"),
        ({"metadata": None}, "metadata should be dict, not None"),
        ({"completed_at": 5}, "is in_progress but has a completed_at"),
        ({"output": ["text"]}, r"output\[0\] is not an item with a type"),
        ({"output": [{"type": "message"}]}, "is not an openai Response"),
    ],
)
def test_an_invalid_response_fails_naming_the_field(change: dict[str, Any], message: str) -> None:
    store = ResponseStore(clock=FakeClock())
    body = {**store.create("m", id="resp_1").to_openai(), **change}
    with pytest.raises(AssertionError, match=message) as caught:
        assert_valid_response(body)
    assert "resp_1" in str(caught.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "the body is not JSON"),
        ("[]", "the body is not a JSON object"),
        ("{}", "lacks id, object, created_at"),
    ],
)
def test_a_body_that_is_no_response_at_all_fails(body: Any, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        assert_valid_response(body)


# ---------------------------------------------------------------------------------------------- strategies


@given(events=rs.event_sequences())
def test_event_sequences_are_valid_stream_events_a_store_accepts(events: list[dict[str, Any]]) -> None:
    with ResponseStore(clock=FakeClock()) as store:
        record = store.create("m", background=True)
        for event in events:
            store.append_event(record.id, event)
        logged = store.events(record.id)
        assert [event["sequence_number"] for event in logged] == list(range(len(events)))
        for event in logged:
            check_event(event)
        deltas = "".join(event["delta"] for event in logged if event["type"] == "response.output_text.delta")
        assert logged[-1]["item"]["content"][0]["text"] == deltas


@given(value=rs.invalid_inputs())
def test_invalid_inputs_are_refused_and_nothing_is_stored(value: Any) -> None:
    with ResponseStore(clock=FakeClock()) as store:
        with pytest.raises(InvalidArgument):
            store.create("m", value)
        assert len(store) == 0


@given(data=st.data())
def test_the_strategies_draw_what_a_store_takes(data: st.DataObject) -> None:
    with ResponseStore(clock=FakeClock()) as store:
        record = store.create(data.draw(rs.models()), data.draw(rs.inputs()), metadata=data.draw(rs.metadata()))
        store.complete(record.id, data.draw(rs.output_item_lists()), usage=data.draw(rs.usage_dicts(complete=True)))
        assert_valid_response(store.get(record.id).to_openai())


def test_the_contract_base_refuses_to_run_without_make_store() -> None:
    with pytest.raises(NotImplementedError, match="ContractBase must define make_store"):
        ContractBase().make_store()


class _Counted(StoreContract):
    """A contract class overriding the suite's hypothesis settings, counting the stores its examples open."""

    max_examples = 3
    hypothesis_settings: ClassVar[Mapping[str, Any]] = {"database": None, "phases": [Phase.generate]}

    def __init__(self) -> None:
        self.opened: list[BaseStore] = []

    def make_store(self, **options: Any) -> BaseStore:
        store = ResponseStore(**options)
        self.opened.append(store)
        return store


@pytest.mark.parametrize(
    "run",
    [
        lambda contract: contract.test_paging_walks_agree_with_the_model(),
        lambda contract: contract.test_store_agrees_with_the_model(),
        lambda contract: contract.test_retention_agrees_with_the_model(),
        lambda contract: contract.test_bad_input_raises_only_store_errors_and_changes_nothing("get"),
        lambda contract: contract.test_malformed_items_raise_only_store_errors_and_change_nothing("create input"),
    ],
    ids=["given", "state machine", "retention machine", "bad input", "malformed items"],
)
def test_a_contract_class_sets_the_examples_and_each_example_closes_its_store(run: Callable[[Any], None]) -> None:
    contract = _Counted()
    run(contract)
    # max_examples valid examples, not the profile's count (50 or 120). Hypothesis also tries examples it then
    # discards (data that overran its buffer), each with a store of its own: the retention machine opened 3 stores
    # in 101 of 150 runs, 4 to 6 in the others; 20 leaves room for the tail and is far below 50.
    assert 3 <= len(contract.opened) < 20
    assert all(store.closed for store in contract.opened), "a store outlived its example"


def test_the_suites_hypothesis_settings_and_their_overrides() -> None:
    suite = _Counted().hypothesis(40, stateful_step_count=7)
    assert (suite.max_examples, suite.stateful_step_count, suite.deadline) == (3, 7, None)
    assert suite.report_multiple_bugs is False
    assert suite.database is None
    assert list(suite.phases) == [Phase.generate]

    class Strict(_Counted):
        max_examples = None
        deadline = 500  # milliseconds, as hypothesis counts them
        hypothesis_settings: ClassVar[Mapping[str, Any]] = {"report_multiple_bugs": True, "stateful_step_count": 9}

    strict = Strict().hypothesis(40, stateful_step_count=7)
    assert (strict.max_examples, strict.stateful_step_count) == (40, 9)
    assert strict.deadline == datetime.timedelta(milliseconds=500)
    assert strict.report_multiple_bugs is True
    assert ContractBase.deadline is None  # the default, whatever the profile says
    assert ContractBase().hypothesis(5).deadline is None


# ---------------------------------------------------------------------------------------------- optional hypothesis

_WITHOUT_HYPOTHESIS = """
import sys
sys.modules["hypothesis"] = None  # any import of hypothesis now raises ImportError
import responsestore.testing
import responsestore.testing.plugin
from responsestore.testing import FakeClock, assert_legal_path
assert_legal_path(["queued", "in_progress", "completed"])
assert FakeClock(5.0)() == 5.0
try:
    import responsestore.testing.strategies
except ImportError as exc:
    print("strategies:", exc)
assert not any(name.startswith("hypothesis") and sys.modules[name] for name in sys.modules), "hypothesis loaded"
print("ok")
"""


def test_the_toolkit_and_its_plugin_import_without_hypothesis() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_HYPOTHESIS], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["strategies: import of hypothesis halted; None in sys.modules", "ok"]


# ---------------------------------------------------------------------------------------------- the plugin's fixtures


def test_the_plugin_fixtures_in_our_own_suite(
    response_store: ResponseStore,
    fake_clock: FakeClock,
    response_store_factory: StoreFactory,
    sqlite_response_store: SQLiteStore,
    tmp_path: Path,
) -> None:
    fake_clock.set(1_000.0)
    assert response_store.create("m").created_at == 1_000.0
    assert sqlite_response_store.create("m").created_at == 1_000.0
    small = response_store_factory({"max_records": 2}, ttl=5.0)
    assert (small.retention.max_records, small.retention.ttl) == (2, 5.0)
    on_disk = response_store_factory(f"sqlite:///{tmp_path}/other.db", clock=FakeClock(7.0))
    assert isinstance(on_disk, SQLiteStore)
    assert on_disk.create("m").created_at == 7.0
    assert isinstance(response_store_factory(), ResponseStore)
    own_clock = response_store_factory({"clock": FakeClock(9.0)})  # a clock in the mapping wins over fake_clock
    assert own_clock.create("m").created_at == 9.0
