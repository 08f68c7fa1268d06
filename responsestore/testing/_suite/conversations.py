"""Conversations: the item list, its paging, its owners, its bounds, and the appends of responses that end in one."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from responsestore import (
    BaseStore,
    ConversationFull,
    ConversationNotFound,
    InvalidArgument,
    ItemNotFound,
    ResponseStoreError,
    StorageError,
    VersionConflict,
)
from responsestore.testing._clock import FakeClock

from .base import ContractBase, StoreFactory


def said(text: str, role: str = "user") -> dict[str, Any]:
    return {"role": role, "content": text}


def texts(items: Any) -> list[str]:
    return [item["content"][0]["text"] for item in items]


def every_item(store: BaseStore, id: str, order: str = "asc", limit: int = 7, owner: str | None = None) -> list[Any]:
    """Walk the pages of a conversation's items to the end."""
    found: list[Any] = []
    after = None
    while True:
        page = store.conversation_items(id, limit=limit, order=order, after=after, owner=owner)
        found += page.data
        if not page.has_more:
            return found
        after = page.last_id


class ConversationTests(ContractBase):
    """``create_conversation`` and its items; responses created with ``conversation=``."""

    def test_a_conversation_holds_its_items_in_order(self, store: BaseStore) -> None:
        conversation = store.create_conversation([said("a"), said("b", "assistant")], metadata={"topic": "t"})
        assert conversation.id.startswith("conv_")
        assert conversation.version == 1
        assert store.get_conversation(conversation.id) == conversation
        assert conversation.to_openai() == {
            "id": conversation.id,
            "object": "conversation",
            "created_at": int(conversation.created_at),
            "metadata": {"topic": "t"},
        }
        added = store.add_conversation_items(conversation.id, [said("c"), {"id": "msg_mine", **said("d")}])
        assert added[1]["id"] == "msg_mine"
        assert all(item["id"] for item in added)
        assert texts(store.conversation_context(conversation.id)) == ["a", "b", "c", "d"]
        assert texts(store.conversation_items(conversation.id).data) == ["d", "c", "b", "a"], "newest first"
        assert store.get_conversation(conversation.id).version == 2
        assert store.get_conversation_item(conversation.id, "msg_mine") == added[1]

    def test_items_page_both_ways_with_item_cursors(self, store: BaseStore) -> None:
        conversation = store.create_conversation()
        for start in range(0, 45, 9):
            store.add_conversation_items(conversation.id, [said(str(n)) for n in range(start, start + 9)])
        numbers = [str(n) for n in range(45)]
        assert texts(every_item(store, conversation.id, "asc")) == numbers
        assert texts(every_item(store, conversation.id, "desc")) == numbers[::-1]
        page = store.conversation_items(conversation.id, limit=5, order="asc")
        assert (texts(page.data), page.has_more) == (numbers[:5], True)
        later = store.conversation_items(conversation.id, limit=5, order="asc", after=page.last_id)
        assert texts(later.data) == numbers[5:10]
        back = store.conversation_items(conversation.id, limit=3, order="asc", before=later.first_id)
        assert (texts(back.data), back.has_more) == (numbers[2:5], True)
        last = store.conversation_items(conversation.id, limit=100, order="desc", after=page.data[1]["id"])
        assert (texts(last.data), last.has_more) == (["0"], False)
        empty = store.create_conversation()
        nothing = store.conversation_items(empty.id)
        assert (nothing.data, nothing.first_id, nothing.last_id, nothing.has_more) == ((), None, None, False)
        with pytest.raises(InvalidArgument, match="unknown cursor"):
            store.conversation_items(conversation.id, after="msg_nowhere")
        with pytest.raises(InvalidArgument):
            store.conversation_items(conversation.id, limit=101)

    def test_items_are_deleted_one_at_a_time(self, store: BaseStore) -> None:
        conversation = store.create_conversation([said("a"), said("b"), said("c")])
        first, second, third = store.conversation_context(conversation.id)
        after = store.delete_conversation_item(conversation.id, second["id"])
        assert after.version == 2
        assert texts(store.conversation_context(conversation.id)) == ["a", "c"]
        with pytest.raises(ItemNotFound, match=second["id"]) as caught:
            store.get_conversation_item(conversation.id, second["id"])
        assert (caught.value.id, caught.value.item_id) == (conversation.id, second["id"])
        with pytest.raises(ItemNotFound):
            store.delete_conversation_item(conversation.id, second["id"])
        with pytest.raises(InvalidArgument, match="unknown cursor"):
            store.conversation_items(conversation.id, after=second["id"])
        assert texts(store.conversation_items(conversation.id, after=third["id"]).data) == ["a"]
        store.add_conversation_items(conversation.id, [said("d")])
        assert texts(store.conversation_context(conversation.id)) == ["a", "c", "d"], "new items go last"
        assert store.get_conversation(conversation.id).version == 3
        assert first == store.get_conversation_item(conversation.id, first["id"])

    def test_metadata_is_replaced_and_versions_are_checked(self, store: BaseStore) -> None:
        conversation = store.create_conversation(metadata={"a": "1"})
        updated = store.update_conversation(conversation.id, metadata={"b": "2"}, expected_version=1)
        assert (dict(updated.metadata), updated.version) == ({"b": "2"}, 2)
        for write in (
            lambda: store.update_conversation(conversation.id, metadata={}, expected_version=1),
            lambda: store.add_conversation_items(conversation.id, [said("x")], expected_version=1),
            lambda: store.delete_conversation(conversation.id, expected_version=1),
        ):
            with pytest.raises(VersionConflict, match="conversation"):
                write()
        assert store.get_conversation(conversation.id) == updated
        assert store.conversation_context(conversation.id) == ()
        cleared = store.update_conversation(conversation.id, metadata=None)
        assert dict(cleared.metadata) == {}

    def test_a_deleted_conversation_is_gone_with_its_items(self, store: BaseStore) -> None:
        conversation = store.create_conversation([said("a")])
        item = store.conversation_context(conversation.id)[0]
        assert store.delete_conversation(conversation.id) == conversation
        for call in (
            lambda: store.get_conversation(conversation.id),
            lambda: store.conversation_items(conversation.id),
            lambda: store.conversation_context(conversation.id),
            lambda: store.add_conversation_items(conversation.id, [said("b")]),
            lambda: store.get_conversation_item(conversation.id, item["id"]),
            lambda: store.delete_conversation_item(conversation.id, item["id"]),
            lambda: store.update_conversation(conversation.id, metadata={}),
            lambda: store.delete_conversation(conversation.id),
            lambda: store.create("m", "hi", conversation=conversation.id),
        ):
            with pytest.raises(ConversationNotFound, match=conversation.id):
                call()

    def test_bad_input_is_refused_and_changes_nothing(self, store: BaseStore) -> None:
        conversation = store.create_conversation([{"id": "msg_1", **said("a")}], metadata={"k": "v"})
        bad_calls: list[Callable[[], object]] = [
            lambda: store.create_conversation([said(str(n)) for n in range(21)]),
            lambda: store.create_conversation("not a list"),  # type: ignore[arg-type]
            lambda: store.create_conversation(metadata={"k": 1}),  # type: ignore[dict-item]
            lambda: store.add_conversation_items(conversation.id, []),
            lambda: store.add_conversation_items(conversation.id, [said(str(n)) for n in range(21)]),
            lambda: store.add_conversation_items(conversation.id, [{"id": "msg_1", **said("again")}]),
            lambda: store.add_conversation_items(conversation.id, [said("ok"), 3]),  # type: ignore[list-item]
            lambda: store.add_conversation_items(conversation.id, [{"id": "x", **said("1")}, {"id": "x", **said("2")}]),
            lambda: store.get_conversation("bad id!"),
            lambda: store.get_conversation(42),  # type: ignore[arg-type]
            lambda: store.get_conversation_item(conversation.id, "x" * 500),
            lambda: store.update_conversation(conversation.id, metadata={"k": "v" * 513}),
            lambda: store.conversation_items(conversation.id, order="sideways"),
            lambda: store.conversation_items(conversation.id, after="msg_1", before="msg_1"),
            lambda: store.create("m", "hi", conversation="conv_nowhere"),
            lambda: store.create("m", "hi", conversation=conversation.id, previous_response_id="resp_x"),
            lambda: store.create("m", "hi", conversation=7),  # type: ignore[arg-type]
        ]
        for call in bad_calls:
            with pytest.raises(ResponseStoreError) as caught:
                call()
            assert len(str(caught.value)) < 700
        assert store.get_conversation(conversation.id) == conversation
        assert texts(store.conversation_context(conversation.id)) == ["a"]
        assert len(store) == 0

    def test_owners_see_only_their_conversations(self, store: BaseStore) -> None:
        mine = store.create_conversation([said("secret")], owner="alice")
        item = store.conversation_context(mine.id, owner="alice")[0]
        for owner in (None, "bob"):
            for call in (
                lambda o=owner: store.get_conversation(mine.id, owner=o),
                lambda o=owner: store.conversation_items(mine.id, owner=o),
                lambda o=owner: store.add_conversation_items(mine.id, [said("x")], owner=o),
                lambda o=owner: store.get_conversation_item(mine.id, item["id"], owner=o),
                lambda o=owner: store.delete_conversation_item(mine.id, item["id"], owner=o),
                lambda o=owner: store.update_conversation(mine.id, metadata={}, owner=o),
                lambda o=owner: store.delete_conversation(mine.id, owner=o),
                lambda o=owner: store.create("m", "x", conversation=mine.id, owner=o),
            ):
                with pytest.raises(ConversationNotFound) as caught:
                    call()
                assert "alice" not in str(caught.value)
        assert store.get_conversation(mine.id, owner="alice") == mine
        assert texts(store.conversation_context(mine.id, owner="alice")) == ["secret"]

    def test_a_response_in_a_conversation_appends_its_items_when_it_ends(self, store: BaseStore) -> None:
        conversation = store.create_conversation([said("earlier")])
        response = store.create("m", "question", conversation=conversation.id)
        assert response.to_openai()["conversation"] == {"id": conversation.id}
        assert texts(store.conversation_context(conversation.id)) == ["earlier"], "nothing lands before the end"
        done = store.complete(response.id, [said("answer", "assistant")])
        assert texts(store.conversation_context(conversation.id)) == ["earlier", "question", "answer"]
        assert [item["id"] for item in store.conversation_context(conversation.id)[1:]] == [
            done.input[0]["id"],
            done.output[0]["id"],
        ]
        assert store.get_conversation(conversation.id).version == 2
        store.update(response.id, metadata={"a": "b"})  # a change of a finished response appends nothing
        partial = store.create("m", "more", conversation=conversation.id)
        store.mark_incomplete(partial.id, "max_output_tokens", output=[said("cut", "assistant")])
        failed = store.create("m", "lost", conversation=conversation.id)
        store.fail(failed.id, "broken")
        cancelled = store.create("m", "dropped", conversation=conversation.id, background=True)
        store.cancel(cancelled.id)
        assert texts(store.conversation_context(conversation.id)) == ["earlier", "question", "answer", "more", "cut"]

    def test_a_response_ends_even_if_its_conversation_is_gone(self, store: BaseStore) -> None:
        conversation = store.create_conversation()
        response = store.create("m", "question", conversation=conversation.id)
        store.delete_conversation(conversation.id)
        done = store.complete(response.id, [said("answer", "assistant")])
        assert done.status.value == "completed"
        assert store.get(response.id).to_openai()["conversation"] == {"id": conversation.id}

    def test_conversations_expire_after_their_last_change(self, new_store: StoreFactory, clock: FakeClock) -> None:
        store = new_store(clock=clock, ttl=100)
        idle = store.create_conversation([said("a")])
        busy = store.create_conversation([said("a")])
        clock.advance(60)
        store.add_conversation_items(busy.id, [said("b")])
        clock.advance(60)
        with pytest.raises(ConversationNotFound):
            store.get_conversation(idle.id)
        with pytest.raises(ConversationNotFound):
            store.conversation_items(idle.id)
        assert texts(store.conversation_context(busy.id)) == ["a", "b"]
        assert store.sweep() >= 1
        clock.advance(50)
        with pytest.raises(ConversationNotFound):
            store.get_conversation(busy.id)

    def test_a_store_without_ttl_keeps_conversations(self, new_store: StoreFactory, clock: FakeClock) -> None:
        store = new_store(clock=clock, ttl=None)
        conversation = store.create_conversation()
        clock.advance(10**9)
        assert store.get_conversation(conversation.id) == conversation

    def test_max_records_bounds_the_number_of_conversations(self, new_store: StoreFactory, clock: FakeClock) -> None:
        store = new_store(clock=clock, ttl=100, max_records=2)
        first = store.create_conversation()
        store.create_conversation()
        with pytest.raises(ConversationFull) as caught:
            store.create_conversation([said("x")])
        assert (caught.value.bound, caught.value.limit) == ("max_records", 2)
        store.delete_conversation(first.id)
        third = store.create_conversation()
        with pytest.raises(ConversationFull):
            store.create_conversation()
        clock.advance(101)
        store.create_conversation()  # the expired ones make room
        with pytest.raises(ConversationNotFound):
            store.get_conversation(third.id)

    def test_a_closed_store_refuses_conversations(self, new_store: StoreFactory) -> None:
        store = new_store()
        conversation = store.create_conversation()
        store.close()
        for call in (
            store.create_conversation,
            lambda: store.get_conversation(conversation.id),
            lambda: store.conversation_items(conversation.id),
            lambda: store.add_conversation_items(conversation.id, [said("x")]),
        ):
            with pytest.raises(StorageError):
                call()

    def test_concurrent_appends_all_land_in_whole_batches(self, new_store: StoreFactory) -> None:
        """Threads add batches and finish responses on one conversation: every item lands once, batches unbroken."""
        store = new_store(**self.fast_options)
        conversation = store.create_conversation()
        threads, rounds = 4, self.scaled(40, 8)
        errors: list[BaseException] = []
        barrier = threading.Barrier(threads, timeout=self.time_limit)

        def work(n: int) -> None:
            try:
                barrier.wait()
                for r in range(rounds):
                    if r % 2:
                        store.add_conversation_items(conversation.id, [said(f"{n}.{r}.0"), said(f"{n}.{r}.1")])
                    else:
                        response = store.create("m", f"{n}.{r}.0", conversation=conversation.id)
                        store.complete(response.id, [said(f"{n}.{r}.1", "assistant")])
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)

        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        try:
            workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
            for worker in workers:
                worker.start()
            self._stress_budget().join(workers, "threads adding to conversations")
        finally:
            sys.setswitchinterval(interval)
        assert not errors, errors[0]
        found = texts(every_item(store, conversation.id, limit=100))
        assert len(found) == threads * rounds * 2
        assert sorted(found) == sorted(f"{n}.{r}.{k}" for n in range(threads) for r in range(rounds) for k in (0, 1))
        for first, second in zip(found[::2], found[1::2], strict=True):
            assert first[:-1] == second[:-1], "a batch was split"
            assert (first[-1], second[-1]) == ("0", "1"), "a batch was split"
        for n in range(threads):
            mine = [text for text in found if text.startswith(f"{n}.")]
            assert mine == sorted(mine, key=lambda t: (int(t.split(".")[1]), t)), "a thread's batches out of order"
        assert store.get_conversation(conversation.id).version == 1 + threads * rounds
        store._check()

    def test_conversations_agree_with_a_plain_model(self) -> None:
        """Random programs of adds, deletes, metadata changes and responses ending in conversations."""
        profile = self.profile_examples()
        examples = max(15, profile // 4) if self.weight == 1 else max(6, profile // 12)
        run_state_machine_as_test(
            make_conversation_machine(self), settings=self.hypothesis(examples, stateful_step_count=25)
        )


def make_conversation_machine(contract: ContractBase) -> type[RuleBasedStateMachine]:
    class ConversationMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.clock = FakeClock()
            self.store: BaseStore = contract.open_fast(clock=self.clock, max_records=None, ttl=1000)
            self.model: dict[str, list[tuple[str, str]]] = {}  # conversation id -> [(item id, text)]
            self.versions: dict[str, int] = {}
            self.metadata: dict[str, dict[str, str]] = {}
            self.owners: dict[str, str | None] = {}  # conversation id -> owner
            self.running: dict[str, tuple[str, str]] = {}  # response id -> (conversation id, its input text)
            self.counter = 0

        def teardown(self) -> None:
            try:
                self.store._check()
            finally:
                self.store.close()

        def text(self) -> str:
            self.counter += 1
            return f"t{self.counter}"

        def pick(self, n: int) -> str:
            ids = list(self.model)  # creation order: ids are random, so sorting them would make runs differ
            return ids[n % len(ids)]

        @rule(count=st.integers(0, 3), owner=st.sampled_from([None, "o1"]))
        def create(self, count: int, owner: str | None) -> None:
            words = [self.text() for _ in range(count)]
            conversation = self.store.create_conversation([said(w) for w in words], owner=owner)
            items = self.store.conversation_context(conversation.id, owner=owner)
            self.model[conversation.id] = [(item["id"], w) for item, w in zip(items, words, strict=True)]
            self.versions[conversation.id] = 1
            self.metadata[conversation.id] = {}
            self.owners[conversation.id] = owner

        @precondition(lambda self: self.model)
        @rule(n=st.integers(0, 99), count=st.integers(1, 3), repeat=st.booleans())
        def add(self, n: int, count: int, repeat: bool) -> None:
            id = self.pick(n)
            owner = self.owners[id]
            words = [self.text() for _ in range(count)]
            items = [said(w) for w in words]
            if repeat and self.model[id]:
                items[-1] = {"id": self.model[id][0][0], **items[-1]}
                with pytest.raises(InvalidArgument):
                    self.store.add_conversation_items(id, items, owner=owner)
                return
            added = self.store.add_conversation_items(id, items, owner=owner)
            self.model[id] += [(item["id"], w) for item, w in zip(added, words, strict=True)]
            self.versions[id] += 1

        @precondition(lambda self: any(self.model.values()))
        @rule(n=st.integers(0, 99), k=st.integers(0, 99))
        def delete_item(self, n: int, k: int) -> None:
            id = self.pick(n)
            if not self.model[id]:
                return
            item_id, _ = self.model[id].pop(k % len(self.model[id]))
            self.store.delete_conversation_item(id, item_id, owner=self.owners[id])
            self.versions[id] += 1

        @precondition(lambda self: self.model)
        @rule(n=st.integers(0, 99), value=st.text(max_size=5))
        def set_metadata(self, n: int, value: str) -> None:
            id = self.pick(n)
            self.store.update_conversation(id, metadata={"k": value}, owner=self.owners[id])
            self.metadata[id] = {"k": value}
            self.versions[id] += 1

        @precondition(lambda self: self.model)
        @rule(n=st.integers(0, 99))
        def start_response(self, n: int) -> None:
            id = self.pick(n)
            word = self.text()
            response = self.store.create("m", word, conversation=id, owner=self.owners[id])
            self.running[response.id] = (id, word)

        @precondition(lambda self: self.running)
        @rule(n=st.integers(0, 99), how=st.sampled_from(["complete", "incomplete", "fail"]))
        def end_response(self, n: int, how: str) -> None:
            response_id = list(self.running)[n % len(self.running)]  # creation order, as in pick
            id, word = self.running.pop(response_id)
            owner = self.owners[id]
            answer = self.text()
            if how == "complete":
                done = self.store.complete(response_id, [said(answer, "assistant")], owner=owner)
            elif how == "incomplete":
                done = self.store.mark_incomplete(
                    response_id, "max_output_tokens", output=[said(answer, "assistant")], owner=owner
                )
            else:
                self.store.fail(response_id, "broken", owner=owner)
                return
            if id in self.model:
                self.model[id] += [(done.input[0]["id"], word), (done.output[0]["id"], answer)]
                self.versions[id] += 1

        @precondition(lambda self: self.model)
        @rule(n=st.integers(0, 99))
        def delete(self, n: int) -> None:
            id = self.pick(n)
            self.store.delete_conversation(id, owner=self.owners[id])
            del self.model[id], self.versions[id], self.metadata[id]

        @invariant()
        def conversations_match_the_model(self) -> None:
            for id, items in self.model.items():
                owner = self.owners[id]
                record = self.store.get_conversation(id, owner=owner)
                assert (record.version, dict(record.metadata)) == (self.versions[id], self.metadata[id])
                stored = [(item["id"], item["content"][0]["text"]) for item in every_item(self.store, id, owner=owner)]
                assert stored == items
                backwards = every_item(self.store, id, "desc", 2, owner=owner)
                assert [item["id"] for item in backwards] == [item_id for item_id, _ in reversed(items)]
                other = "o1" if owner is None else None
                with pytest.raises(ConversationNotFound):
                    self.store.get_conversation(id, owner=other)
            self.store._check()

    ConversationMachine.__name__ = f"ConversationMachine_{type(contract).__name__}"
    return ConversationMachine
