"""The toolkit as a user's project sees it, run by pytester in a fresh pytest process.

The conformance suite must fail loudly on a broken backend: each run below subclasses StoreContract with a
deliberately broken memory store and asserts that the named contract tests fail. A project using only the
fixtures and strategies, with no conftest, must work out of the box (the plugin comes from the entry point).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

#: A light hypothesis profile for the broken-backend runs: they only need to find the bug, which every example of
#: the selected tests does, and need no minimal example of it (shrinking a failure took half a minute).
LIGHT_PROFILE = """
from hypothesis import HealthCheck, Phase, settings

settings.register_profile(
    "light",
    max_examples=10,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("light")
"""

BROKEN_BACKENDS = '''
from responsestore import Page, ResponseStore
from responsestore.testing.contract import StoreContract


class LostUpdateStore(ResponseStore):
    """Commits a conditional write without checking that the record is still as it was read."""

    def _swap(self, old, new, size, log):
        current = self._read(new.owner, new.id)
        return super()._swap(current or old, new, size, log)


class WrongTieOrderStore(ResponseStore):
    """Lists records created at the same moment in the wrong order."""

    def _page(self, owner, query, matches):
        page = super()._page(owner, query, matches)
        data = sorted(reversed(page.data), key=lambda record: record.created_at, reverse=query.descending)
        first, last = (data[0].id, data[-1].id) if data else (None, None)
        return Page(tuple(data), first, last, page.has_more)


class OwnerLeakStore(ResponseStore):
    """Shows a record to any owner who asks for its id."""

    def __init__(self, **options):
        super().__init__(**options)
        self.owners = {}

    def _put_new(self, record, ttl, keep, size):
        done = super()._put_new(record, ttl, keep, size)
        if done:
            self.owners.setdefault(record.id, record.owner)
        return done

    def _leaking(self, read, owner, id):
        found = read(owner, id)
        if found is None and self.owners.get(id, owner) != owner:
            found = read(self.owners[id], id)
        return found

    def _get(self, owner, id):
        return self._leaking(super()._get, owner, id)

    def _peek(self, owner, id):
        return self._leaking(super()._peek, owner, id)

    def _read(self, owner, id):
        return self._leaking(super()._read, owner, id)


class NoTombstonesStore(ResponseStore):
    """Remembers the places of deleted responses only: an expired or evicted one's cursor is unknown at once."""

    deleting = False

    def _remove(self, old):
        self.deleting = True
        try:
            return super()._remove(old)
        finally:
            self.deleting = False

    def _unlink(self, entry):
        super()._unlink(entry)
        if not self.deleting:
            self._removed.revive((entry.record.owner, entry.record.id))


class DroppedWriteStore(ResponseStore):
    """A conditional write that lost its race reports success and changes nothing: the other write is lost."""

    def _swap(self, old, new, size, log, conversation=None):
        super()._swap(old, new, size, log, conversation)
        return True


class LostFinishStore(ResponseStore):
    """Reports a response's finish as written and keeps the record as it was: the finishing write is lost."""

    def _swap(self, old, new, size, log, conversation=None):
        if new.is_terminal and not old.record.is_terminal:
            return self._current(old, self._now()) is not None
        return super()._swap(old, new, size, log, conversation)


class ListLeakStore(ResponseStore):
    """Lists the responses of owner None to every owner."""

    def _page(self, owner, query, matches):
        return super()._page(None, query, matches)


class SilentAppendStore(ResponseStore):
    """Accepts appended events and stores none of them."""

    def _append(self, old, log):
        return self._current(old, self._now()) is not None


class LostChunkStore(ResponseStore):
    """Loses every third chunk of appended events."""

    def __init__(self, **options):
        super().__init__(**options)
        self.appends = 0

    def _append(self, old, log):
        self.appends += 1
        if self.appends % 3 == 0:
            return self._current(old, self._now()) is not None
        return super()._append(old, log)
'''


#: The broken store each contract class runs, and ``TestHealthy``'s healthy one.
STORES = {
    "TestLostUpdate": "LostUpdateStore",
    "TestDroppedWrite": "DroppedWriteStore",
    "TestLostFinish": "LostFinishStore",
    "TestWrongTieOrder": "WrongTieOrderStore",
    "TestOwnerLeak": "OwnerLeakStore",
    "TestListLeak": "ListLeakStore",
    "TestNoTombstones": "NoTombstonesStore",
    "TestSilentAppend": "SilentAppendStore",
    "TestLostChunk": "LostChunkStore",
    "TestHealthy": "ResponseStore",
}


def _contracts(*names: str) -> str:
    """The test module: every broken store, and a contract class for each of ``names`` (only those are collected:
    collecting the whole suite once per class is most of a run's time)."""
    classes = [
        f"class {name}(StoreContract):\n"
        f"    def make_store(self, **options):\n"
        f"        return {STORES[name]}(**options)\n"
        for name in names
    ]
    return BROKEN_BACKENDS + "\n\n" + "\n\n".join(classes)


def _failed(output: str) -> set[str]:
    """The ids of the failed tests in a ``-rf`` summary."""
    return set(re.findall(r"^FAILED (\S+)", output, flags=re.MULTILINE))


#: What the failures of each broken backend must say: the rule it breaks, in the suite's words.
STALE_WRITE = "accepted a write decided on a stale read"
OWNER_LEAK = "a response is its owner's only"
LOST_EVENTS = "the store lost appended events"
LOST_WRITE = "the store lost a write"
NO_TOMBSTONES = "a cursor naming a removed response (deleted, expired, evicted) must page from the place it had"

#: How long one broken backend's run may take: it must fail fast, never wait out a time limit or hang.
FAIL_WITHIN = 60.0


@pytest.mark.parametrize(
    ("broken", "selection", "caught", "rule"),
    [
        ("TestLostUpdate", "stale", {"test_a_write_decided_on_a_stale_read_changes_nothing"}, STALE_WRITE),
        ("TestDroppedWrite", "stale", {"test_a_write_decided_on_a_stale_read_changes_nothing"}, STALE_WRITE),
        (
            "TestLostFinish",
            "cancel_wakes or consumers_resuming or async_streams_resume or racing_a_finish",
            {
                "test_cancel_wakes_every_waiter_and_stream",
                "test_consumers_resuming_anywhere_see_exactly_the_suffix",
                "test_async_streams_resume_anywhere_and_end",
                "test_reads_racing_a_finish_keep_the_recency_bookkeeping_whole",
            },
            LOST_WRITE,
        ),
        (
            "TestWrongTieOrder",
            "timestamp_ties or paging_walks",
            {"test_timestamp_ties_keep_creation_order", "test_paging_walks_agree_with_the_model"},
            "listed in creation order",
        ),
        (
            "TestOwnerLeak",
            "another_owners or owner_none_is_invisible",
            {
                "test_another_owners_response_behaves_exactly_as_a_missing_one",
                "test_a_response_of_owner_none_is_invisible_to_named_owners",
            },
            OWNER_LEAK,
        ),
        (
            "TestListLeak",
            "lists_show_only or owner_none_is_invisible",
            {
                "test_lists_show_only_the_owners_records",
                "test_a_response_of_owner_none_is_invisible_to_named_owners",
            },
            OWNER_LEAK,
        ),
        (
            "TestNoTombstones",
            "removed_response_keeps_its_place or last_removals",
            {
                "test_the_cursor_of_a_removed_response_keeps_its_place",
                "test_the_store_remembers_the_places_of_its_last_removals_only",
            },
            NO_TOMBSTONES,
        ),
        (
            "TestSilentAppend",
            "append_assigns or cancel_wakes or abandoned_streams or a_batch_wakes or expired_leases_end",
            {
                "test_append_assigns_consecutive_sequence_numbers_and_replays",
                "test_cancel_wakes_every_waiter_and_stream",
                "test_abandoned_streams_unregister",
                "test_a_batch_wakes_a_follower_once_with_everything",
                "test_expired_leases_end_their_responses_failed",
            },
            LOST_EVENTS,
        ),
        (
            "TestLostChunk",
            "append_assigns or consumers_resuming",
            {
                "test_append_assigns_consecutive_sequence_numbers_and_replays",
                "test_consumers_resuming_anywhere_see_exactly_the_suffix",
            },
            LOST_EVENTS,
        ),
    ],
)
def test_the_contract_catches_a_broken_backend(
    pytester: pytest.Pytester, broken: str, selection: str, caught: set[str], rule: str
) -> None:
    pytester.makeconftest(LIGHT_PROFILE)
    pytester.makepyfile(test_backends=_contracts(broken, "TestHealthy"))
    started = time.monotonic()
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-q",
        "-rf",
        "-W",
        "error",
        "-k",
        selection,
        timeout=4 * FAIL_WITHIN,  # a hang of the run itself fails here, not at the CI job's limit
    )
    elapsed = time.monotonic() - started
    output = result.stdout.str()
    failed = _failed(output)
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) > 0, output
    assert outcomes.get("passed", 0) > 0, output  # the healthy store passes the same selection
    assert all(f"::{broken}::" in test_id for test_id in failed), failed  # only the broken store fails
    names = {test_id.split("::")[-1].split("[")[0] for test_id in failed}
    assert caught <= names, (caught - names, output)
    assert rule in output, output  # the failure names the rule the backend breaks
    assert elapsed < FAIL_WITHIN, f"{broken} took {elapsed:.1f} s to fail"


USER_TESTS = """
import json

from hypothesis import given

from responsestore import ResponseStatus
from responsestore.testing import FakeClock, assert_legal_path, assert_valid_response
from responsestore.testing import strategies as rs


def test_the_fixtures(response_store, fake_clock, sqlite_response_store, response_store_factory, tmp_path):
    assert isinstance(fake_clock, FakeClock)
    record = response_store.create("m")
    assert record.created_at == fake_clock()
    fake_clock.advance(5)
    assert response_store.complete(record.id).completed_at == record.created_at + 5
    assert sqlite_response_store.create("m").created_at == fake_clock()
    bounded = response_store_factory({"max_records": 1})
    bounded.complete(bounded.create("m", id="a").id)
    bounded.create("m", id="b")
    assert "a" not in bounded
    on_disk = response_store_factory(f"sqlite:///{tmp_path}/other.db", ttl=60)
    assert on_disk.create("m").created_at == fake_clock()
    assert response_store_factory().create("m", id="c").id == "c"


@given(path=rs.lifecycle_paths())
def test_a_strategy(path):
    assert_legal_path(path)


def test_a_response_body(response_store):
    record = response_store.create("m", background=True, status=ResponseStatus.QUEUED)
    assert_valid_response(json.dumps(record.to_openai()))
"""


def test_a_project_uses_the_fixtures_with_no_conftest(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "-W", "error")
    result.assert_outcomes(passed=3)


def test_the_factory_closes_every_store_it_opened(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_closed="""
        import pytest

        opened = []


        def test_open(response_store_factory, response_store, sqlite_response_store):
            opened.extend([response_store_factory(), response_store_factory("memory://"), response_store,
                           sqlite_response_store])


        def test_all_closed_afterwards():
            assert len(opened) == 4
            assert all(store.closed for store in opened)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "-p", "no:randomly")
    result.assert_outcomes(passed=2)


TESTING_PAGE = Path(__file__).resolve().parent.parent / "docs" / "testing.md"


def test_the_server_tests_in_the_docs_run_as_a_users_project(pytester: pytest.Pytester) -> None:
    blocks = re.findall(r"^```python\n(.*?)^```", TESTING_PAGE.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)
    modules = [block for block in blocks if not block.startswith(">>>")]
    assert len(modules) == 1, "docs/testing.md should hold one test module besides its doctests"
    pytester.makepyfile(test_server=modules[0])
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "-W", "error")
    result.assert_outcomes(passed=4)
