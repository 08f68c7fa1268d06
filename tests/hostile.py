"""The hostile calls of ``test_hostile.py``.

Each *call* puts one hostile value into one argument of one public store method, every other argument valid.
:func:`run_everywhere` makes that call on one store of every backend (memory, SQLite, Redis, PostgreSQL), all
holding the same records, and checks the outcome: only documented errors, bounded messages, a refused call changes
nothing, and every backend agrees with the memory store.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from responsestore import BaseStore, ResponseStoreError
from responsestore.testing import FakeClock
from responsestore.testing.strategies import junk

from .backends import BACKENDS, open_backend

#: The longest an error message may be.
MAX_MESSAGE = 2_000


def _deep(depth: int, kind: str) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}
    return value


SURROGATE = json.loads('"\\ud83d"')

#: Values that broke the store once: lone surrogates, ints at and past 64 bits, deep and huge values, NaN.
SPECIALS: dict[str, Any] = {
    "surrogate": SURROGATE,
    "surrogate_in_text": "a" + json.loads('"\\udc00"') + "b",
    "surrogate_id": "resp_" + SURROGATE,
    "surrogate_json": {"type": "t", "text": SURROGATE},
    "surrogate_key": {SURROGATE: "v"},
    "surrogate_item": [{"role": "user", "content": SURROGATE}],
    "int_2_63_minus_1": 2**63 - 1,
    "int_2_63": 2**63,
    "int_2_64": 2**64,
    "int_minus_2_63_minus_1": -(2**63) - 1,
    "int_10_5000": 10**5000,
    "huge_int_json": {"type": "t", "n": 10**5000},
    "deep_list": _deep(10_000, "list"),
    "deep_dict": _deep(10_000, "dict"),
    "deep_item": [{"role": "user", "content": _deep(10_000, "list")}],
    "str_4mb": "x" * (4 * 1024 * 1024),
    "id_4mb": "resp_" + "a" * (4 * 1024 * 1024),
    "json_4mb": {"type": "t", "text": "x" * (4 * 1024 * 1024)},
    "key_4mb": {"k" * (4 * 1024 * 1024): "v"},
    "nan": math.nan,
    "inf": math.inf,
    "minus_inf": -math.inf,
    "nan_json": {"type": "t", "x": math.nan},
    "none": None,
    "true": True,
    "bytes": b"resp_done",
    "object": object(),
    "set": {1, 2},
    "negative": -1,
    "zero": 0,
    "empty": "",
    "nul": "resp_\x00",
    "timedelta": datetime.timedelta(days=-1),
}

#: Valid values that reach the checks after the first one.
PLAUSIBLE = st.sampled_from(["resp_done", "resp_bg", "resp_q", "alice", "completed", "asc", 1, 2, 20, {}, []])


def hostile_values() -> st.SearchStrategy[Any]:
    """The specials, junk of every type, and plausible values."""
    return st.one_of(st.sampled_from(list(SPECIALS.values())), junk(PLAUSIBLE), PLAUSIBLE)


Call = Callable[[BaseStore, Any], Any]

ASSISTANT = [{"id": "msg_out", "role": "assistant", "content": "done"}]
USAGE = {"input_tokens": 1, "output_tokens": 2}


def _update_kw(name: str) -> Call:
    return lambda s, v: s.update("resp_bg", **{name: v})


def _keyword(method: str, name: str, *args: Any) -> Call:
    return lambda s, v: getattr(s, method)(*args, **{name: v})


def _update_field_name(s: BaseStore, v: Any) -> Any:
    if not isinstance(v, str):
        return s.update("resp_bg", metadata=v)
    return s.update("resp_bg", **{v: "x"})


#: Every public method, with the hostile value in each of its arguments in turn.
CALLS: dict[str, Call] = {
    # creating
    "create.model": lambda s, v: s.create(v, id="resp_new"),
    "create.input": lambda s, v: s.create("m", v, id="resp_new"),
    "create.instructions": lambda s, v: s.create("m", instructions=v, id="resp_new"),
    "create.previous_response_id": lambda s, v: s.create("m", previous_response_id=v, id="resp_new"),
    "create.tools": lambda s, v: s.create("m", tools=v, id="resp_new"),
    "create.metadata": lambda s, v: s.create("m", metadata=v, id="resp_new"),
    "create.background": lambda s, v: s.create("m", background=v, id="resp_new"),
    "create.status": lambda s, v: s.create("m", status=v, id="resp_new"),
    "create.id": lambda s, v: s.create("m", id=v),
    "create.extra": lambda s, v: s.create("m", extra=v, id="resp_new"),
    "create.ttl": lambda s, v: s.create("m", ttl=v, id="resp_new"),
    "create.owner": lambda s, v: s.create("m", owner=v, id="resp_new"),
    # reading
    "get.id": lambda s, v: s.get(v),
    "get.owner": lambda s, v: s.get("resp_done", owner=v),
    "contains.id": lambda s, v: s.contains(v),
    "contains.owner": lambda s, v: s.contains("resp_done", owner=v),
    "in": lambda s, v: v in s,
    # the lifecycle
    "delete.id": lambda s, v: s.delete(v),
    "delete.expected_version": lambda s, v: s.delete("resp_done", expected_version=v),
    "delete.owner": lambda s, v: s.delete("resp_done", owner=v),
    "start.id": lambda s, v: s.start(v),
    "start.event": lambda s, v: s.start("resp_q", event=v),
    "start.expected_version": lambda s, v: s.start("resp_q", expected_version=v),
    "complete.output": lambda s, v: s.complete("resp_bg", v),
    "complete.usage": lambda s, v: s.complete("resp_bg", ASSISTANT, usage=v),
    "complete.event": lambda s, v: s.complete("resp_bg", ASSISTANT, event=v),
    "fail.error": lambda s, v: s.fail("resp_bg", v),
    "fail.owner": lambda s, v: s.fail("resp_bg", "boom", owner=v),
    "mark_incomplete.reason": lambda s, v: s.mark_incomplete("resp_bg", v),
    "mark_incomplete.output": lambda s, v: s.mark_incomplete("resp_bg", "max_output_tokens", output=v),
    "mark_incomplete.usage": lambda s, v: s.mark_incomplete("resp_bg", "max_output_tokens", usage=v),
    "cancel.id": lambda s, v: s.cancel(v),
    "cancel.expected_version": lambda s, v: s.cancel("resp_bg", expected_version=v),
    "update.field_name": _update_field_name,
    "update.event": lambda s, v: s.update("resp_bg", metadata={"k": "v"}, event=v),
    **{
        f"update.{name}": _update_kw(name)
        for name in (
            "status",
            "model",
            "output",
            "instructions",
            "tools",
            "metadata",
            "usage",
            "error",
            "incomplete_details",
            "extra",
        )
    },
    # lists and chains
    **{
        f"list.{name}": _keyword("list", name)
        for name in ("limit", "after", "before", "order", "model", "status", "metadata", "owner")
    },
    "input_items.id": lambda s, v: s.input_items(v),
    **{
        f"input_items.{name}": _keyword("input_items", name, "resp_done")
        for name in ("limit", "after", "before", "order", "owner")
    },
    "chain.id": lambda s, v: s.chain(v),
    "chain.owner": lambda s, v: s.chain("resp_next", owner=v),
    "conversation.id": lambda s, v: s.conversation(v),
    "conversation.owner": lambda s, v: s.conversation("resp_next", owner=v),
    # events
    "append_event.id": lambda s, v: s.append_event(v, {"type": "t"}),
    "append_event.event": lambda s, v: s.append_event("resp_bg", v),
    "append_event.owner": lambda s, v: s.append_event("resp_bg", {"type": "t"}, owner=v),
    "events.id": lambda s, v: s.events(v),
    "events.starting_after": lambda s, v: s.events("resp_bg", starting_after=v),
    "events.owner": lambda s, v: s.events("resp_bg", owner=v),
    "wait.id": lambda s, v: s.wait(v, timeout=0),
    "wait.timeout": lambda s, v: s.wait("resp_done", timeout=v),
    "wait.owner": lambda s, v: s.wait("resp_done", timeout=0, owner=v),
    "stream.id": lambda s, v: list(s.stream(v, timeout=0)),
    "stream.starting_after": lambda s, v: list(s.stream("resp_done", starting_after=v, timeout=0)),
    "stream.timeout": lambda s, v: list(s.stream("resp_done", timeout=v)),
    "stream.owner": lambda s, v: list(s.stream("resp_done", timeout=0, owner=v)),
}


def populate(store: BaseStore) -> None:
    """The same records, events and counters in any store (explicit ids, so two stores compare equal)."""
    user = [{"id": "msg_in", "role": "user", "content": "hi"}]
    store.create("m", user, id="resp_done")
    store.complete("resp_done", ASSISTANT, usage=USAGE)
    store.create(
        "m", [{"id": "msg_in2", "role": "user", "content": "more"}], id="resp_next", previous_response_id="resp_done"
    )
    store.complete("resp_next", [{"id": "msg_out2", "role": "assistant", "content": "ok"}])
    store.create("m", user, id="resp_bg", background=True, metadata={"k": "v"})
    store.append_event("resp_bg", {"type": "response.output_text.delta", "delta": "a"})
    store.create("m", user, id="resp_q", background=True, status="queued")
    store.create("m", user, id="resp_alice", owner="alice")
    store.create("m", user, id="resp_gone")
    store.delete("resp_gone")


_FRESH_ID = re.compile(r"(resp|msg)_[0-9a-f]{32}")


def normalized(value: Any) -> Any:
    """``value`` with freshly generated ids replaced by a placeholder (they differ between two stores)."""
    if isinstance(value, str):
        return _FRESH_ID.sub(lambda m: f"{m[1]}_*", value)
    if isinstance(value, dict):
        return {normalized(k): normalized(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalized(v) for v in value]
    if hasattr(value, "to_dict"):
        return normalized(value.to_dict())
    if hasattr(value, "data") and hasattr(value, "has_more"):  # a Page
        return {"data": normalized(list(value.data)), "has_more": value.has_more}
    return value


def snapshot(store: BaseStore) -> Any:
    """Everything a caller can see: every record of every owner, the event logs, and the stats."""
    records = []
    for owner in (None, "alice"):
        page = store.list(limit=100, order="asc", owner=owner)
        records.extend(page.data)
    events = {r.id: store.events(r.id, owner=r.owner) for r in records}
    return normalized({"records": records, "events": events, "stats": store.stats(), "len": len(store)})


class Stores:
    """One store of every backend (tests/backends.py), holding the same records; rebuilt after a call that changed
    them. The memory store is the reference the others are compared with.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._made = 0
        self.stores: dict[str, BaseStore] = {}
        self.snapshot: Any = None
        self.reset()

    def reset(self) -> None:
        self.close()
        self._made += 1
        path = self._directory / f"hostile{self._made}"
        path.mkdir(parents=True)
        self.stores = {name: open_backend(name, path / name, clock=FakeClock()) for name in BACKENDS}
        for store in self.stores.values():
            populate(store)
        snapshots = {name: snapshot(store) for name, store in self.stores.items()}
        for name, taken in snapshots.items():
            assert taken == snapshots["memory"], f"the {name} store holds other records than the memory store"
        self.snapshot = snapshots["memory"]

    def close(self) -> None:
        for store in self.stores.values():
            close = getattr(store, "close", None)
            if close is not None:
                close()


def outcome(store: BaseStore, call: Call, value: Any) -> tuple[str, Any]:
    """``("ok", normalized result)`` or ``("error", the exception)``; anything but a library error propagates."""
    try:
        return "ok", normalized(call(store, value))
    except ResponseStoreError as error:
        return "error", error


def run_everywhere(stores: Stores, name: str, value: Any) -> None:
    """Make call ``name`` with ``value`` on both backends and check every promise about the outcome.

    After a failed check the stores are rebuilt, so one failure does not spill into the next call.
    """
    try:
        _run_everywhere(stores, name, value)
    except BaseException:
        stores.reset()
        raise


def _run_everywhere(stores: Stores, name: str, value: Any) -> None:
    call = CALLS[name]
    results: dict[str, tuple[str, Any]] = {}
    for backend, store in stores.stores.items():
        try:
            results[backend] = outcome(store, call, value)
        except Exception as error:
            raise AssertionError(f"{name} on {backend} raised {type(error).__name__}: {str(error)[:300]}") from error
        kind, result = results[backend]
        store._check()
        if kind == "error":
            message = str(result)
            assert len(message) <= MAX_MESSAGE, f"{name} on {backend}: a {len(message)}-character message"
            assert snapshot(store) == stores.snapshot, f"{name} on {backend}: a refused call changed the store"
    memory_kind, memory = results["memory"]
    for backend, (kind, result) in results.items():
        if memory_kind == "error" or kind == "error":
            assert (memory_kind, type(memory)) == (kind, type(result)), (
                f"{name}: memory gave {memory_kind} {type(memory).__name__}, {backend} {kind} {type(result).__name__}"
            )
        else:
            assert result == memory, f"{name}: {backend} returned other results than memory"
    if memory_kind == "ok":
        after = {backend: snapshot(store) for backend, store in stores.stores.items()}
        for backend, taken in after.items():
            assert taken == after["memory"], f"{name}: {backend} changed otherwise than memory"
        if after["memory"] != stores.snapshot:
            stores.reset()


def special_cases() -> Iterator[tuple[str, str]]:
    """Every (call, special value) pair."""
    for name in CALLS:
        for special in SPECIALS:
            yield name, special
