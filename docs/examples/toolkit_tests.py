"""Tests of code built on responsestore, written with its testing toolkit (``pip install 'responsestore[testing]'``).

Run them with pytest: the fixtures (``response_store``, ``response_store_factory``, ``fake_clock``, ...) need no
conftest, and ``StoreContract`` runs the conformance suite against the store you deploy.
"""

from __future__ import annotations

from responsestore import BaseStore, SQLiteStore
from responsestore.testing import FakeClock, assert_legal_path, assert_valid_response
from responsestore.testing.contract import StoreContract
from responsestore.testing.plugin import StoreFactory


def answer(store: BaseStore, question: str) -> str:
    """The code under test: it stores a response and its answer (a real server runs its model here)."""
    record = store.create("my-model", question)
    return store.complete(record.id, [{"role": "assistant", "content": question.upper()}]).id


def test_an_answer_is_a_valid_response(response_store: BaseStore, fake_clock: FakeClock) -> None:
    body = assert_valid_response(response_store.get(answer(response_store, "hello")).to_openai())
    assert body["created_at"] == int(fake_clock())
    assert body["output"][0]["content"][0]["text"] == "HELLO"
    assert_legal_path(["in_progress", body["status"]])


def test_answers_expire_after_their_ttl(response_store_factory: StoreFactory, fake_clock: FakeClock) -> None:
    store = response_store_factory(ttl=60)
    id = answer(store, "hello")
    fake_clock.advance(61)
    assert id not in store


class TestDeployedStore(StoreContract):
    """The conformance suite against the store the server deploys (a SQLite file here)."""

    max_examples = 10  # examples per property test: raise it in CI

    def make_store(self, **options: object) -> BaseStore:
        return SQLiteStore(self.scratch_directory() / "responses.db", **options)  # type: ignore[arg-type]
