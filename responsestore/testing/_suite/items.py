"""Finding a stored item by its id (``find_item``): what an ``item_reference`` input item resolves to.

Every backend must find an output or input item of the owner's responses, the newest response's when several hold
one, never another owner's, never a removed response's; a backend that filters in its engine must still find an
item whose id it saw only among look-alikes (the id as text, in metadata, as a ``call_id``).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from responsestore import BaseStore, FrozenDict, InvalidArgument
from responsestore.testing._clock import FakeClock

from .base import ContractBase

StoreFactory = Callable[..., BaseStore]


def _message(item_id: str, text: str, role: str = "user") -> dict[str, object]:
    return {"type": "message", "id": item_id, "role": role, "content": text}


class ItemLookupTests(ContractBase):
    """``find_item``: an item of the owner's responses by its id, the newest response's, never another owner's."""

    def test_finds_input_and_output_items_as_stored(self, store: BaseStore) -> None:
        first = store.create("m", [_message("msg_in", "question")])
        done = store.complete(
            first.id,
            [
                _message("msg_out", "answer", role="assistant"),
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": "{}"},
            ],
        )
        found = store.find_item("msg_in")
        assert isinstance(found, FrozenDict)
        assert found == done.input[0]
        assert store.find_item("msg_out") == done.output[0]
        assert store.find_item("fc_1") == done.output[1]
        assert store.find_item("msg_nowhere") is None
        assert store.find_item("call_1") is None, "a call_id is not an item id"
        assert store.find_item(first.id) is None, "a response id is not an item id"
        generated = store.create("m", "no id given").input[0]["id"]
        assert store.find_item(generated) == store.get(store.list(limit=1).data[0].id).input[0]

    def test_the_newest_response_holding_the_id_wins(self, store: BaseStore, clock: FakeClock) -> None:
        old = store.create("m", [_message("msg_shared", "old text")])
        store.complete(old.id, [_message("msg_old_out", "reply", role="assistant")])
        clock.advance(1)
        new = store.create("m", [_message("msg_shared", "new text")])
        found = store.find_item("msg_shared")
        assert found is not None
        assert found["content"][0]["text"] == "new text"
        # Within one response, its output before its input.
        both = store.create("m", [_message("msg_twice", "as input")])
        store.complete(both.id, [_message("msg_twice", "as output", role="assistant")])
        twice = store.find_item("msg_twice")
        assert twice is not None
        assert twice["content"][0]["text"] == "as output"
        store.delete(new.id)
        again = store.find_item("msg_shared")
        assert again is not None
        assert again["content"][0]["text"] == "old text"

    def test_look_alikes_do_not_hide_the_item(self, store: BaseStore, clock: FakeClock) -> None:
        real = store.create("m", [_message("msg_real", "the one")])
        clock.advance(1)
        # Newer responses holding the id's text elsewhere: in metadata, in a text, as a call_id, in extra fields.
        store.create("m", "x", metadata={"id": "msg_real"})
        store.create("m", [_message("msg_other", '{"id":"msg_real"} "id":"msg_real"')])
        store.create("m", [{"type": "function_call_output", "call_id": "msg_real", "output": '"id":"msg_real"'}])
        store.create("m", "x", extra={"x_note": {"id": "msg_real"}}, tools=[{"type": "function", "name": "msg_real"}])
        store.create("m", [_message("msg_real_longer", "a longer id"), _message("xmsg_real", "a longer id")])
        assert store.find_item("msg_real") == real.input[0]

    @pytest.mark.parametrize("viewer", ["b", None, ""])
    def test_another_owners_items_are_never_found(self, store: BaseStore, viewer: str | None) -> None:
        store.create("m", [_message("msg_secret", "a's")], owner="a")
        assert store.find_item("msg_secret", owner=viewer) is None
        mine = store.create("m", [_message("msg_secret", "mine")], owner=viewer)
        assert store.find_item("msg_secret", owner=viewer) == mine.input[0]
        theirs = store.find_item("msg_secret", owner="a")
        assert theirs is not None
        assert theirs["content"][0]["text"] == "a's"

    def test_removed_responses_items_are_gone(self, new_store: StoreFactory, clock: FakeClock) -> None:
        store = new_store(clock=clock, ttl=10, max_records=2)
        deleted = store.create("m", [_message("msg_deleted", "x")])
        store.delete(deleted.id)
        assert store.find_item("msg_deleted") is None
        store.create("m", [_message("msg_expiring", "x")])
        clock.advance(11)
        assert store.find_item("msg_expiring") is None
        evicted = store.create("m", [_message("msg_evicted", "x")])
        store.complete(evicted.id)
        for n in range(2):
            store.complete(store.create("m", [_message(f"msg_kept_{n}", "x")]).id)
        assert store.find_item("msg_evicted") is None
        assert store.find_item("msg_kept_1") is not None

    def test_an_item_of_an_old_response_among_many(self, new_store: StoreFactory) -> None:
        store = new_store(**self.fast_options)
        count = self.scaled(700, 300)  # past a page (100) and several batches of every backend's walk
        oldest = store.create("m", [_message("msg_oldest", "first")])
        for n in range(count):
            store.create("m", [_message(f"msg_{n}", f"filler {n}")])
        assert store.find_item("msg_oldest") == oldest.input[0]
        assert store.find_item(f"msg_{count // 2}") is not None
        assert store.find_item("msg_absent") is None

    @pytest.mark.parametrize("bad", ["", "has space", "x" * 129, 7, None])
    def test_a_malformed_id_is_invalid(self, store: BaseStore, bad: object) -> None:
        with pytest.raises(InvalidArgument):
            store.find_item(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument):
            store.find_item("msg_1", owner=3)  # type: ignore[arg-type]
