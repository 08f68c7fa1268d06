"""The toolkit as a user's project sees it, run by pytester in a fresh pytest process.

The conformance suite must fail loudly on a broken backend: each run below subclasses StoreContract with a
deliberately broken memory store and asserts that the named contract tests fail. A project using only the
fixtures and strategies, with no conftest, must work out of the box (the plugin comes from the entry point).
"""

from __future__ import annotations

import re
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


class TestLostUpdate(StoreContract):
    def make_store(self, **options):
        return LostUpdateStore(**options)


class TestWrongTieOrder(StoreContract):
    def make_store(self, **options):
        return WrongTieOrderStore(**options)


class TestOwnerLeak(StoreContract):
    def make_store(self, **options):
        return OwnerLeakStore(**options)


class TestHealthy(StoreContract):
    def make_store(self, **options):
        return ResponseStore(**options)
'''


def _failed(output: str) -> set[str]:
    """The ids of the failed tests in a ``-rf`` summary."""
    return set(re.findall(r"^FAILED (\S+)", output, flags=re.MULTILINE))


@pytest.mark.parametrize(
    ("broken", "selection", "caught"),
    [
        (
            "TestLostUpdate",
            "stale",
            {"test_a_write_decided_on_a_stale_read_changes_nothing"},
        ),
        (
            "TestWrongTieOrder",
            "timestamp_ties or paging_walks",
            {"test_timestamp_ties_keep_creation_order", "test_paging_walks_agree_with_the_model"},
        ),
        (
            "TestOwnerLeak",
            "another_owners or owner_none_is_invisible",
            {
                "test_another_owners_response_behaves_exactly_as_a_missing_one",
                "test_a_response_of_owner_none_is_invisible_to_named_owners",
            },
        ),
    ],
)
def test_the_contract_catches_a_broken_backend(
    pytester: pytest.Pytester, broken: str, selection: str, caught: set[str]
) -> None:
    pytester.makeconftest(LIGHT_PROFILE)
    pytester.makepyfile(test_backends=BROKEN_BACKENDS)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-q", "-rf", "-W", "error", "-k", f"({broken} or TestHealthy) and ({selection})"
    )
    output = result.stdout.str()
    failed = _failed(output)
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) > 0, output
    assert outcomes.get("passed", 0) > 0, output  # the healthy store passes the same selection
    assert all(f"::{broken}::" in test_id for test_id in failed), failed  # only the broken store fails
    names = {test_id.split("::")[-1].split("[")[0] for test_id in failed}
    assert caught <= names, (caught - names, output)


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
