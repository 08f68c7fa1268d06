"""Conversations on the Redis backend: processes sharing one conversation, a server killed mid-write, damaged keys,
and what each operation costs in round trips.

The conformance suite (``responsestore.testing._suite.conversations``) runs against Redis through
tests/test_contract.py; this file covers what only a shared network server has. Servers are real ``redis-server``
processes started by tests/redis_server.py.
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from responsestore import (
    ConversationNotFound,
    RedisStore,
    ResponseStatus,
    StorageError,
)
from responsestore.testing import FakeClock

from . import redis_server

#: Bound on how long a call may take to fail while the server is away (these tests' socket timeout is 1 s).
FAULT_BOUND = 10.0
JOIN = 300.0


def said(text: str, role: str = "user") -> dict[str, Any]:
    return {"role": role, "content": text}


def texts(items: Any) -> list[str]:
    return [item["content"][0]["text"] for item in items]


def check_batches(found: list[str]) -> None:
    """Every ``NAME.ROUND.K`` batch is whole (``.0`` then ``.1``, side by side) and each name's rounds in order."""
    assert len(found) == len(set(found)), "an item landed twice"
    for first, second in zip(found[::2], found[1::2], strict=True):
        assert (first[:-1], first[-1], second[-1]) == (second[:-1], "0", "1"), f"a batch was split: {first} {second}"
    for name in {text.split(".")[0] for text in found}:
        rounds = [int(text.split(".")[1]) for text in found[::2] if text.split(".")[0] == name]
        assert rounds == sorted(rounds), f"the batches of {name} are out of order"


@pytest.fixture(scope="module")
def server() -> Iterator[redis_server.RedisServer]:
    """A server of this module's own (the crash test kills and restarts it)."""
    own = redis_server.RedisServer()
    yield own
    own.stop()


def url_of(server: redis_server.RedisServer, **query: Any) -> str:
    parts = "&".join(f"{key}={value}" for key, value in {"prefix": redis_server.fresh_prefix(), **query}.items())
    return f"{server.url}?{parts}"


# ---------------------------------------------------------------------------------------------- processes


def append_and_finish(url: str, conversation: str, name: str, rounds: int, start: Any, results: Any) -> None:  # noqa: PLR0917 - a process's target
    """A worker process: ``rounds`` batches of two items on one conversation, every other one a response that
    finishes in it (its input, then its output); reports the batches acknowledged and the responses finished."""
    store = RedisStore.from_url(url)
    acknowledged: list[int] = []
    responses: list[str] = []
    try:
        store.get_conversation(conversation)  # connected, the library loaded: then both start together
        start.wait(60)
        for r in range(rounds):
            if r % 2:
                store.add_conversation_items(conversation, [said(f"{name}.{r}.0"), said(f"{name}.{r}.1")])
            else:
                response = store.create("m", f"{name}.{r}.0", conversation=conversation)
                store.complete(response.id, [said(f"{name}.{r}.1", "assistant")])
                responses.append(response.id)
            acknowledged.append(r)
        results.put((name, acknowledged, responses, None))
    except BaseException as exc:  # noqa: BLE001 - reported to the test in the parent process
        results.put((name, acknowledged, responses, repr(exc)))
    finally:
        store.close()


def test_two_processes_append_and_finish_responses_in_one_conversation() -> None:
    url = f"{redis_server.shared().url}?prefix={redis_server.fresh_prefix()}"
    rounds = 60
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(3), context.Queue()
    with RedisStore.from_url(url) as store:
        conversation = store.create_conversation([said("first")])
        workers = [
            context.Process(target=append_and_finish, args=(url, conversation.id, name, rounds, start, results))
            for name in "ab"
        ]
        reports = {}
        try:
            for worker in workers:
                worker.start()
            start.wait(JOIN)
            for _ in workers:
                name, acknowledged, responses, error = results.get(timeout=JOIN)
                assert error is None, f"worker {name}: {error}"
                assert acknowledged == list(range(rounds))
                reports[name] = responses
            for worker in workers:
                worker.join(JOIN)
                assert worker.exitcode == 0
        finally:
            for worker in workers:
                if worker.is_alive():  # a failed test: stop the worker it started
                    worker.kill()
                    worker.join(JOIN)
        found = texts(store.conversation_context(conversation.id))
        assert found[0] == "first"
        found = found[1:]
        assert sorted(found) == sorted(f"{n}.{r}.{k}" for n in "ab" for r in range(rounds) for k in "01")
        check_batches(found)
        names = [text.split(".")[0] for text in found[::2]]
        assert sum(a != b for a, b in itertools.pairwise(names)) >= 2, "the workers never interleaved"
        assert store.get_conversation(conversation.id).version == 1 + 2 * rounds
        for id in reports["a"] + reports["b"]:
            assert store.get(id).status is ResponseStatus.COMPLETED
        store._check()


# ---------------------------------------------------------------------------------------------- faults


def test_a_server_killed_mid_write_gives_storage_error_then_a_consistent_store(
    server: redis_server.RedisServer,
) -> None:
    store = RedisStore.from_url(url_of(server, socket_timeout=1, socket_connect_timeout=1))
    conversation = store.create_conversation()
    acknowledged: list[str] = []  # batches acknowledged, by their name
    errors: list[float] = []
    stop, died = threading.Event(), threading.Event()

    def work() -> None:
        r = 0
        while not stop.is_set():
            r += 1
            began = time.monotonic()
            try:
                if r % 2:
                    store.add_conversation_items(conversation.id, [said(f"w.{r}.0"), said(f"w.{r}.1")])
                else:
                    response = store.create("m", f"w.{r}.0", conversation=conversation.id)
                    store.complete(response.id, [said(f"w.{r}.1", "assistant")])
                acknowledged.append(f"w.{r}")
            except StorageError:
                errors.append(time.monotonic() - began)
                died.set()

    thread = threading.Thread(target=work)
    thread.start()
    try:
        while len(acknowledged) < 40:
            assert thread.is_alive()
            time.sleep(0.01)  # letting the workload run: it is what gets interrupted
        server.kill()
        assert died.wait(FAULT_BOUND), "no call failed while the server was dead"
        began = time.monotonic()
        with pytest.raises(StorageError):
            store.get_conversation(conversation.id)
        assert time.monotonic() - began < FAULT_BOUND
        server.start()
        stop.set()
        thread.join(60)
    finally:
        stop.set()
        thread.join(60)
    assert max(errors) < FAULT_BOUND
    found = texts(store.conversation_context(conversation.id))  # the same store object works again
    check_batches(found)
    landed = {text[:-2] for text in found}
    assert set(acknowledged) <= landed, "an acknowledged batch was lost (appendfsync always)"
    assert len(landed - set(acknowledged)) <= 1, "only the batch in flight may have landed unacknowledged"
    assert store.get_conversation(conversation.id).version == 1 + len(landed)
    store.add_conversation_items(conversation.id, [said("after")])
    assert texts(store.conversation_items(conversation.id, limit=1).data) == ["after"]
    store._check()  # no partial write: positions, items, state and the expiry index agree
    store.close()


def test_damaged_conversation_keys_are_a_storage_error() -> None:
    client = redis.Redis(port=redis_server.shared().port)
    store = redis_server.open_store()
    try:
        conversation = store.create_conversation([said("a"), said("b")], owner="alice")
        first, second = store.conversation_context(conversation.id, owner="alice")
        response = store.create("m", "q", conversation=conversation.id, owner="alice")
        key = store._key("alice", conversation.id)
        state_key, positions_key, items_key = (store._base + kind + ":" + key for kind in ("v", "vo", "vi"))
        good_state, good_item = client.get(state_key), client.hget(items_key, first["id"])
        counts = good_state.split(b" ", 1)[1]
        calls: dict[str, Callable[[], object]] = {
            "get": lambda: store.get_conversation(conversation.id, owner="alice"),
            "items": lambda: store.conversation_items(conversation.id, owner="alice"),
            "context": lambda: store.conversation_context(conversation.id, owner="alice"),
            "item": lambda: store.get_conversation_item(conversation.id, first["id"], owner="alice"),
            "held": lambda: store.get_conversation_item(conversation.id, "msg_nowhere", owner="alice"),
            "add": lambda: store.add_conversation_items(conversation.id, [said("c")], owner="alice"),
            "delete_item": lambda: store.delete_conversation_item(conversation.id, first["id"], owner="alice"),
            "update": lambda: store.update_conversation(conversation.id, metadata={"k": "v"}, owner="alice"),
            "delete": lambda: store.delete_conversation(conversation.id, owner="alice"),
            "finish": lambda: store.complete(response.id, [said("a", "assistant")], owner="alice"),
        }

        bad_states = [
            b"garbage",
            b"1 2 2 ! not json",
            b"1 2 2 ! []",
            b"1 2 2 zz " + good_state.split(b" ", 4)[4],
            b"7 " + counts,  # the header's version is not its JSON's
            good_state.replace(conversation.id.encode(), b"conv_other"),  # another conversation's state
            good_state.replace(b'"alice"', b'"bob"'),  # another owner's
            b"1 2 2 ! \xff\xfe",
        ]
        for bad in bad_states:
            client.set(state_key, bad)
            for call in calls.values():
                with pytest.raises(StorageError, match="damaged"):
                    call()
        client.set(state_key, good_state)
        for bad_item in (b"not json", b"[1]", b'{"id": "msg_other", "type": "message"}', b"\xff"):
            client.hset(items_key, first["id"], bad_item)
            for name in ("items", "context", "item"):  # the reads that parse the item
                with pytest.raises(StorageError, match="damaged"):
                    calls[name]()
        client.hdel(items_key, first["id"])  # a position without its item
        with pytest.raises(StorageError, match="damaged"):
            store.get_conversation_item(conversation.id, first["id"], owner="alice")
        with pytest.raises(StorageError, match="damaged"):
            store.conversation_context(conversation.id, owner="alice")
        client.hset(items_key, first["id"], good_item)
        client.delete(positions_key)
        client.set(positions_key, "a string, not a sorted set")
        for name in ("items", "context", "item", "held", "add", "delete_item", "finish"):  # they read positions
            with pytest.raises(StorageError, match="WRONGTYPE"):
                calls[name]()
        client.delete(positions_key)
        client.zadd(positions_key, {first["id"]: 0, second["id"]: 1})
        assert client.get(state_key) == good_state, "a refused write changed the state"
        assert store.get(response.id, owner="alice").status is ResponseStatus.IN_PROGRESS, "a refused finish ended it"
        # repaired: everything works again
        done = store.complete(response.id, [said("answer", "assistant")], owner="alice")
        assert texts(store.conversation_context(conversation.id, owner="alice")) == ["a", "b", "q", "answer"]
        assert done.status is ResponseStatus.COMPLETED
        store._check()
    finally:
        store.close()
        client.close()


def test_a_damaged_expiry_index_is_repaired_by_sweeping() -> None:
    clock = FakeClock()
    client = redis.Redis(port=redis_server.shared().port)
    store = redis_server.open_store(clock=clock, ttl=100)
    try:
        kept = store.create_conversation([said("a")])
        index = store._base + "ve"
        client.zadd(index, {"0:conv_nowhere": 1.0})  # a member of no conversation, due at once
        client.zadd(index, {store._key(None, kept.id): 2.0})  # a live conversation filed as due
        with pytest.raises(AssertionError, match="expiry index"):
            store._check()
        clock.advance(10)
        assert store.sweep() == 0
        assert store.get_conversation(kept.id) == kept
        store._check()
        clock.advance(100)
        assert store.sweep() == 1
        assert not list(client.scan_iter(match="{" + store.prefix + "}:v*"))
        store._check()
    finally:
        store.close()
        client.close()


def test_creates_reclaim_expired_conversations_and_their_keys() -> None:
    clock = FakeClock()
    client = redis.Redis(port=redis_server.shared().port)
    store = redis_server.open_store(clock=clock, ttl=100, max_records=3)
    try:
        old = [store.create_conversation([said(str(n))]).id for n in range(3)]
        clock.advance(101)
        fresh = store.create_conversation([said("new")])
        for id in old:
            with pytest.raises(ConversationNotFound):
                store.get_conversation(id)
            assert not client.exists(*(store._base + kind + ":" + store._key(None, id) for kind in ("v", "vo", "vi")))
        assert client.zcard(store._base + "ve") == 1
        assert store.sweep() == 0
        assert texts(store.conversation_context(fresh.id)) == ["new"]
        store._check()
    finally:
        store.close()
        client.close()


# ---------------------------------------------------------------------------------------------- round trips


class CountingConnection(redis.Connection):
    """A connection that counts the replies it reads: one per round trip of a command or function call."""

    replies = 0

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        CountingConnection.replies += 1
        return super().read_response(*args, **kwargs)


def test_round_trips_per_conversation_operation() -> None:
    pool = redis.ConnectionPool(connection_class=CountingConnection, port=redis_server.shared().port, socket_timeout=5)
    client = redis.Redis(connection_pool=pool)
    store = RedisStore(client, prefix=redis_server.fresh_prefix(), clock=FakeClock())
    try:
        warm = store.create_conversation([said("warm")])  # loads the library
        store.conversation_items(warm.id)

        def trips(action: Callable[[], object]) -> int:
            CountingConnection.replies = 0
            action()
            return CountingConnection.replies

        made: list[Any] = []
        assert trips(lambda: made.append(store.create_conversation([said("a"), said("b")]))) == 1
        id = made[0].id
        first = store.conversation_context(id)[0]
        assert trips(lambda: store.get_conversation(id)) == 1
        assert trips(lambda: store.get_conversation_item(id, first["id"])) == 1
        assert trips(lambda: store.conversation_items(id)) == 1
        assert trips(lambda: store.conversation_items(id, after=first["id"], order="asc")) == 2  # the cursor, a page
        assert trips(lambda: store.conversation_context(id)) == 1
        # a change: read, which of its ids are held (when it names items), the conditional write
        assert trips(lambda: store.add_conversation_items(id, [said("c")])) == 3
        assert trips(lambda: store.delete_conversation_item(id, first["id"])) == 3
        assert trips(lambda: store.update_conversation(id, metadata={"k": "v"})) == 2
        response: list[Any] = []
        assert trips(lambda: response.append(store.create("m", "q", conversation=id))) == 2  # the check, the write
        # finishing: the response, the conversation, the held ids, one write of both
        assert trips(lambda: store.complete(response[0].id, [said("r", "assistant")])) == 4
        assert trips(store.sweep) == 1  # records and conversations in one call
        assert trips(lambda: store.delete_conversation(id)) == 2
        assert texts(store.conversation_context(warm.id)) == ["warm"]
        store._check()
    finally:
        store.close()
        client.close()
        pool.disconnect()
