"""What is specific to the Redis backend: processes sharing one server, faults of the server, a cluster, prefixes.

The contract suite runs against Redis through its descriptor in tests/backends.py; this file covers what only a
shared network server has. Every server is a real ``redis-server`` started by tests/redis_server.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.cluster

import responsestore
from responsestore import (
    DeltaRun,
    InvalidArgument,
    RedisStore,
    ResponseNotFound,
    ResponseStatus,
    StorageError,
    StoreFull,
)
from responsestore._redis import _key_prefix, _owner_key
from responsestore.backend import record_size
from responsestore.testing import FakeClock

from . import redis_server

ROOT = Path(__file__).resolve().parent.parent
#: Bound on how long a call may take to fail while the server is away (the tests' socket timeout is 1 s).
FAULT_BOUND = 10.0


@pytest.fixture(scope="module")
def server() -> Iterator[redis_server.RedisServer]:
    """A server of this module's own (the crash and stop tests restart or freeze it)."""
    own = redis_server.RedisServer()
    yield own
    own.stop()


def url_of(server: redis_server.RedisServer, **query: Any) -> str:
    """A store URL on ``server`` with a fresh prefix."""
    parts = "&".join(f"{key}={value}" for key, value in {"prefix": redis_server.fresh_prefix(), **query}.items())
    return f"{server.url}?{parts}"


def run_worker(*args: str, stdin: bool = False) -> subprocess.Popen[str]:
    """Start ``python -m tests.redis_server ARGS...`` in a process of its own (its stdin a pipe if ``stdin``)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.redis_server", *args],
        cwd=ROOT,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def start_together(workers: list[subprocess.Popen[str]]) -> None:
    """Wait until every worker (started with ``stdin``) is ready, then tell them all to go."""
    for worker in workers:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "ready", worker.communicate()[1][-3000:]
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()


def result_of(process: subprocess.Popen[str]) -> dict[str, Any]:
    """The worker's JSON result; fails with its stderr if it failed."""
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------------------------------------- opening


def test_import_responsestore_does_not_import_redis() -> None:
    code = "import sys, responsestore; assert 'redis' not in sys.modules, 'redis imported'; responsestore.RedisStore"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


def test_open_by_url_and_bad_urls() -> None:
    server = redis_server.shared()
    prefix = redis_server.fresh_prefix()
    with responsestore.open(f"{server.url}?prefix={prefix}") as store:
        assert isinstance(store, RedisStore)
        assert store.prefix == prefix
        created = store.create("m")
        with responsestore.open(f"REDIS://127.0.0.1:{server.port}/0?prefix={prefix}") as again:
            assert again.get(created.id) == created
    for bad in ("redis://", "redis:///0", "http://127.0.0.1:1/0"):
        with pytest.raises(InvalidArgument):
            RedisStore.from_url(bad)
    for prefix in ("a{b", "b}", ""):
        with pytest.raises(InvalidArgument):
            RedisStore(redis.Redis(port=server.port), prefix=prefix)
    with pytest.raises(InvalidArgument):
        RedisStore(object())  # type: ignore[arg-type]


def test_url_errors_never_show_the_password_and_the_database_is_a_number() -> None:
    for bad in ("redis://:s3cret@127.0.0.1:99999/0", "redis://user:s3cret@127.0.0.1:99999/0"):
        with pytest.raises(InvalidArgument) as refused:
            responsestore.open(bad)
        assert "s3cret" not in str(refused.value)
        assert "***@127.0.0.1:99999" in str(refused.value)
    with pytest.raises(InvalidArgument, match="is a number"):
        RedisStore.from_url("redis://:s3cret@127.0.0.1:1/zero")


def test_a_chain_loop_ends_the_server_side_walk_at_its_first_repeat() -> None:
    # create() refuses a loop, but racing creates or a damaged index can still leave one: b -> a -> b.
    with redis_server.open_store() as store:
        store.complete(store.create("m", id="resp_a").id, [])
        store.complete(store.create("m", id="resp_b", previous_response_id="resp_a").id, [])
        prefix = _key_prefix(_owner_key(None))
        header_key = f"{store._base}h:{prefix}resp_a"
        fields = store.client.get(header_key).decode().split(" ")
        store.client.set(header_key, " ".join([*fields[:-1], "resp_b"]))  # the last field: previous_response_id
        rows = store._read_call(["chain", repr(store._now()), prefix, "resp_b", 1000])
        assert len(rows) == 2 * 2  # each record once (header and JSON), not on until 2 * limit rows


def test_a_small_store_remembers_only_max_records_removed_cursors() -> None:
    with redis_server.open_store(max_records=5) as store:
        for n in range(20):
            store.delete(store.create("m", id=f"resp_{n}").id)
        assert store.client.hlen(f"{store._base}t") == 5
        assert store.client.zcard(f"{store._base}q") == 5
        store._check()


def test_a_client_that_decodes_replies_works_the_same() -> None:
    client = redis.Redis(port=redis_server.shared().port, decode_responses=True, socket_timeout=5)
    store = RedisStore(client, prefix=redis_server.fresh_prefix(), clock=FakeClock(), max_records=2)
    try:
        first = store.create("m", "é", background=True, owner="ünïcode")
        store.append_event(first.id, {"type": "delta", "delta": "ü"}, owner="ünïcode")
        store.complete(first.id, owner="ünïcode")
        second = store.create("m", previous_response_id=first.id, owner="ünïcode")
        assert [r.id for r in store.chain(second.id, owner="ünïcode")] == [first.id, second.id]
        assert [r.id for r in store.list(owner="ünïcode").data] == [second.id, first.id]
        assert store.events(first.id, owner="ünïcode")[0]["delta"] == "ü"
        assert store.stats().records == 2
        store._check()
    finally:
        store.close()
        client.close()


def test_a_closed_store_raises_storage_error() -> None:
    store = redis_server.open_store()
    created = store.create("m")
    store.close()
    store.close()
    with pytest.raises(StorageError, match="closed"):
        store.get(created.id)


def test_max_bytes_comes_from_the_url_or_the_constructor() -> None:
    server = redis_server.shared()
    with RedisStore(redis.Redis(port=server.port), prefix=redis_server.fresh_prefix()) as default:
        assert default.retention.max_bytes is None
        default.client.close()
    with responsestore.open(f"{server.url}?prefix={redis_server.fresh_prefix()}&max_bytes=4000") as store:
        assert isinstance(store, RedisStore)
        assert store.retention.max_bytes == 4000
        text = "x" * 500
        for _ in range(12):  # about 850 bytes each: the oldest finished ones make room
            store.complete(store.create("m", text).id)
            assert store.stats().bytes <= 4000
        stats = store.stats()
        assert stats.evicted > 0
        assert stats.records == 12 - stats.evicted
        store._check()
        for record in store.list(limit=100).data:
            store.delete(record.id)
        active = [store.create("m", text) for _ in range(4)]
        with pytest.raises(StoreFull) as full:
            store.create("m", text)
        assert (full.value.bound, full.value.max_bytes) == ("max_bytes", 4000)
        assert len(store) == len(active)
        store._check()
    with RedisStore.from_url(f"{server.url}?prefix={redis_server.fresh_prefix()}&max_bytes=4000", max_bytes=9000) as s:
        assert s.retention.max_bytes == 9000  # the keyword wins, as for prefix
    for bad in ("0", "-1", "1.5", "abc", "", "1e6", "\u0661\u0662"):
        with pytest.raises(InvalidArgument, match="max_bytes"):
            RedisStore.from_url(f"{server.url}?prefix=p&max_bytes={bad}")


def test_the_url_sets_ttl_and_max_records_and_refuses_a_parameter_nobody_takes() -> None:
    server = redis_server.shared()
    url = f"{server.url}?prefix={redis_server.fresh_prefix()}&ttl=3600&max_records=50&socket_timeout=2"
    with responsestore.open(url) as store:
        assert (store.retention.ttl, store.retention.max_records) == (3600.0, 50)
        store.create("m")  # the client works: socket_timeout went to redis-py
    with responsestore.open(f"{server.url}?prefix={redis_server.fresh_prefix()}&ttl=none&max_records=none") as store:
        assert (store.retention.ttl, store.retention.max_records) == (None, None)
    with RedisStore.from_url(f"{server.url}?prefix=p&max_records=50", max_records=7) as store:
        assert store.retention.max_records == 7  # the keyword wins, as for prefix and max_bytes
    for bad in ("max_records=1.5", "max_records=", "ttl=soon", "ttl=inf", "max_record=5", "foo=1&bar=2"):
        with pytest.raises(InvalidArgument) as refused:
            responsestore.open(f"redis://:s3cret@127.0.0.1:{server.port}/0?prefix=p&{bad}")
        message = str(refused.value)
        assert bad.split("=")[0] in message
        assert "s3cret" not in message


# ---------------------------------------------------------------------------------------------- prefixes, values


def test_prefixes_isolate_stores_on_one_server() -> None:
    a, b = redis_server.open_store(), redis_server.open_store()
    try:
        first = a.create("model-a", id="resp_same")
        second = b.create("model-b", id="resp_same")
        assert a.get("resp_same") == first
        assert b.get("resp_same") == second
        a.complete("resp_same")
        assert b.get("resp_same").status is ResponseStatus.IN_PROGRESS
        assert [r.model for r in a.list().data] == ["model-a"]
        a.delete("resp_same")
        assert "resp_same" not in a
        assert b.get("resp_same") == second
        assert (len(a), len(b)) == (0, 1)
        assert (a.stats().deleted, b.stats().deleted) == (1, 0)
        a._check()
        b._check()
    finally:
        a.close()
        b.close()


def test_every_stored_value_is_text_never_pickle() -> None:
    store = redis_server.open_store(clock=FakeClock())
    client = redis.Redis(port=redis_server.shared().port)
    try:
        first = store.create("m", "hello", metadata={"k": "v"}, background=True)
        store.append_event(first.id, {"type": "response.output_text.delta", "delta": "é"})
        store.complete(
            first.id,
            [{"type": "message", "role": "assistant", "content": "hi"}],
            usage={"input_tokens": 1, "output_tokens": 2},
        )
        second = store.create("m", previous_response_id=first.id)
        store.cancel(store.create("m", background=True).id)
        store.delete(second.id)
        conversation = store.create_conversation([{"role": "user", "content": "é"}], metadata={"k": "v"})
        in_it = store.create("m", "hi", conversation=conversation.id)
        store.complete(in_it.id, [{"role": "assistant", "content": "x"}])
        keys = list(client.scan_iter(match="{" + store.prefix + "}:*"))
        assert keys
        values: list[bytes] = []
        for key in keys:
            kind = client.type(key)
            if kind == b"string":
                values.append(client.get(key))
            elif kind == b"hash":
                values.extend(client.hvals(key))
            elif kind == b"list":
                values.extend(client.lrange(key, 0, -1))
            elif kind == b"zset":
                values.extend(client.zrange(key, 0, -1))
            elif kind == b"set":
                values.extend(client.smembers(key))
            else:
                raise AssertionError(f"unexpected key type {kind!r} of {key!r}")
        for value in values:
            assert not value.startswith(b"\x80"), f"a pickle in {value[:40]!r}"
            value.decode()  # all text (UTF-8)
        records = [client.get(key) for key in keys if b"}:r:" in key]
        assert records
        for text in records:
            assert isinstance(json.loads(text), dict)
    finally:
        store.close()
        client.close()


#: The ACL the Backends page documents for a store with the prefix "acl" (the commands its scripts run included).
ACL_RULES = (
    "on >acl-secret ~{acl}:* &{acl}:w -@all +fcall +fcall_ro +function|load +mget +subscribe +ping +hello "
    "+get +mset +exists +del +zadd +zrem +zrange +zpopmin +zcard +zscore +hset +hget +hdel +publish"
)


def test_the_documented_acl_is_enough(server: redis_server.RedisServer) -> None:
    admin = redis.Redis(port=server.port)
    admin.execute_command("ACL", "SETUSER", "responses", "reset", *ACL_RULES.split())
    docs = (ROOT / "docs" / "backends.md").read_text(encoding="utf-8")
    assert (
        "ACL SETUSER responses " + ACL_RULES.replace("{acl}", "{responses}").replace("acl-secret", "PASSWORD") in docs
    )
    store = RedisStore.from_url(f"redis://responses:acl-secret@127.0.0.1:{server.port}/0?prefix=acl", max_records=3)
    try:
        first = store.create("m", background=True)
        store.append_event(first.id, {"type": "delta"})
        done: list[Any] = []
        waiter = threading.Thread(target=lambda: done.append(store.wait(first.id, timeout=60)))
        waiter.start()
        store.complete(first.id)
        waiter.join(60)
        assert [record.status for record in done] == [ResponseStatus.COMPLETED]
        for _ in range(4):  # past the cap: eviction, tombstones
            store.complete(store.create("m", previous_response_id=first.id).id)
        assert store.list().data
        store.delete(store.list().data[0].id)
        store.events(first.id)
        assert store.stats().records == 2
        store.sweep()
        conversation = store.create_conversation([{"role": "user", "content": "hi"}])
        item = store.add_conversation_items(conversation.id, [{"role": "user", "content": "again"}])[0]
        in_it = store.create("m", "question", conversation=conversation.id)
        store.complete(in_it.id, [{"role": "assistant", "content": "answer"}])
        assert store.get_conversation_item(conversation.id, item["id"]) == item
        assert len(store.conversation_items(conversation.id, after=item["id"]).data) == 1
        store.delete_conversation_item(conversation.id, item["id"])
        assert len(store.conversation_context(conversation.id)) == 3
        store.delete_conversation(conversation.id)
        other = RedisStore.from_url(f"redis://responses:acl-secret@127.0.0.1:{server.port}/0?prefix=other")
        with pytest.raises(StorageError, match=r"NOPERM|permission"):
            other.create("m")  # another prefix: refused by the server
        other.close()
    finally:
        store.close()
        admin.close()


# ---------------------------------------------------------------------------------------------- round trips


class CountingConnection(redis.Connection):
    """A connection that counts the replies it reads: one per round trip of a command or script call."""

    replies = 0

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        CountingConnection.replies += 1
        return super().read_response(*args, **kwargs)


def test_round_trips_per_operation(server: redis_server.RedisServer) -> None:
    pool = redis.ConnectionPool(connection_class=CountingConnection, port=server.port, socket_timeout=5)
    client = redis.Redis(connection_pool=pool)
    store = RedisStore(client, prefix=redis_server.fresh_prefix(), clock=FakeClock())
    try:
        warm = store.create("m")  # loads the scripts (NOSCRIPT, SCRIPT LOAD, EVALSHA once)
        store.complete(warm.id)
        store.list()
        store.chain(warm.id)
        store.events(warm.id)
        store.stats()

        def trips(action: Any) -> int:
            CountingConnection.replies = 0
            action()
            return CountingConnection.replies

        record = store.create("m", background=True)
        assert trips(lambda: store.get(record.id)) == 1
        assert trips(lambda: store.append_event(record.id, {"type": "x"})) == 2
        assert trips(lambda: store.start(store.create("m", status="queued").id)) == 3  # create 1, start 2
        assert trips(lambda: store.complete(record.id)) == 2
        assert trips(lambda: store.create("m")) == 1
        assert trips(lambda: store.create("m", id="resp_chosen")) == 2  # an explicit id is looked up first
        assert trips(lambda: store.create("m", previous_response_id=record.id)) == 2  # the chain, then the write
        assert trips(lambda: store.list(limit=5)) == 1
        assert trips(lambda: store.list(limit=5, after=record.id)) == 1
        assert trips(lambda: store.events(record.id)) == 1
        assert trips(lambda: store.chain(record.id)) == 1
        assert trips(lambda: store.delete(record.id)) == 2
        assert trips(store.stats) == 1
        assert trips(store.sweep) == 1
        # at a bound: the write replies the usage and its first candidates, Python plans, the write goes again
        full = RedisStore(client, prefix=redis_server.fresh_prefix(), clock=FakeClock(), max_records=2)
        for _ in range(2):
            full.complete(full.create("m").id)
        assert trips(lambda: full.create("m")) == 2
        grown = RedisStore(client, prefix=redis_server.fresh_prefix(), clock=FakeClock(), max_bytes=5000)
        first = grown.create("m", background=True)
        grown.complete(first.id, events=[{"type": "x", "text": "y" * 2000}])
        second = grown.create("m", background=True)
        assert trips(lambda: grown.append_event(second.id, {"type": "x", "text": "y" * 3000})) == 3
        assert grown.stats().evicted == 1
        full.close()
        grown.close()
    finally:
        store.close()
        client.close()
        pool.disconnect()  # a client given its pool leaves it open on close(), with its sockets


def command_calls(client: redis.Redis) -> dict[str, int]:
    """How many times the server ran each command (scripts' commands included), ``INFO`` itself left out."""
    stats = client.info("commandstats")
    return {name[len("cmdstat_") :]: int(row["calls"]) for name, row in stats.items() if name != "cmdstat_info"}


def commands_of(client: redis.Redis, action: Any) -> dict[str, int]:
    """The commands the server ran during ``action()``, by name."""
    before = command_calls(client)
    action()
    after = command_calls(client)
    return {name: calls - before.get(name, 0) for name, calls in after.items() if calls != before.get(name, 0)}


#: What a model server streams for a short non-streamed reply: 14 events, six of them a delta run.
OUTPUT = [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "The answer is 42."}]}]


def reply_events() -> list[Any]:
    text = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    part = {"type": "output_text", "text": "The answer is 42."}
    return [
        {"type": "response.created", "response": {"status": "in_progress"}},
        {"type": "response.in_progress", "response": {"status": "in_progress"}},
        {"type": "response.output_item.added", "output_index": 0, "item": {"type": "message", "content": []}},
        {"type": "response.content_part.added", **text, "part": {"type": "output_text", "text": ""}},
        DeltaRun(
            {"type": "response.output_text.delta", **text, "delta": ""}, ["The ", "answer ", "is ", "4", "2", "."]
        ),
        {"type": "response.output_text.done", **text, "text": "The answer is 42."},
        {"type": "response.content_part.done", **text, "part": part},
        {"type": "response.output_item.done", "output_index": 0, "item": OUTPUT[0]},
        {"type": "response.completed", "response": {"status": "completed"}},
    ]


def test_commands_of_a_non_streamed_response_and_of_a_follower() -> None:
    own = redis_server.RedisServer()  # a server of its own: no other test's commands in its counts
    client = redis.Redis(port=own.port, socket_timeout=10)
    store = RedisStore(client, prefix=redis_server.fresh_prefix(), clock=FakeClock())
    try:
        warm = store.create("m", "warm", lease=30, holder="run")  # loads the library, makes the counters
        store.complete(warm.id, OUTPUT, events=reply_events(), holder="run")
        store.get(warm.id)
        record: list[Any] = []
        for _ in range(3):  # each after a get of a finished response, whose recency mark waits for a write
            record.clear()
            create = commands_of(client, lambda: record.append(store.create("m", "Why?", lease=30, holder="run")))
            complete = commands_of(
                client,
                lambda: store.complete(
                    record[0].id,
                    OUTPUT,
                    usage={"input_tokens": 4, "output_tokens": 6},
                    events=reply_events(),
                    holder="run",
                ),
            )
            # create: one call reading the counters and the id's header, writing them, indexing the record
            assert create == {"fcall": 1, "mget": 1, "mset": 1, "zadd": 1}
            # complete: the read, then one call: read, write, recency (the get's and its own), one notification
            assert complete == {"mget": 2, "fcall": 1, "mset": 1, "zadd": 1, "publish": 1}
            assert sum(create.values()) + sum(complete.values()) == 10
            assert commands_of(client, lambda: store.get(record[0].id)) == {"mget": 1}
        assert len(store.events(record[0].id)) == 14
        # A follower of a long stream reads only the chunks past where it is.
        long = store.create("m", background=True)
        for n in range(40):
            store.append_events(long.id, [{"type": "response.output_text.delta", "delta": str(n)}])
        follow = commands_of(client, lambda: store.events(long.id, starting_after=38))
        assert follow == {"fcall_ro": 1, "mget": 1, "get": 1}
        assert commands_of(client, lambda: store.events(long.id, starting_after=39)) == {"fcall_ro": 1, "mget": 1}
        store._check()
    finally:
        store.close()
        client.close()
        own.stop()


def test_finishing_from_the_chunks_this_process_wrote_is_checked_against_the_server(
    server: redis_server.RedisServer,
) -> None:
    pool = redis.ConnectionPool(connection_class=CountingConnection, port=server.port, socket_timeout=5)
    prefix = redis_server.fresh_prefix()
    writer = RedisStore(redis.Redis(connection_pool=pool), prefix=prefix)
    other = RedisStore.from_url(url_of(server, prefix=prefix))
    try:
        behind = writer.create("m", background=True)
        writer.append_events(behind.id, redis_server.stream_batch("writer"))
        other.append_events(behind.id, redis_server.stream_batch("other"))  # the writer's own copy is now behind
        writer.complete(behind.id, [], events=[{"type": "test.final"}])
        tags = [event.get("tag") or event.get("delta", "").split("/")[0] for event in other.events(behind.id)]
        assert tags == ["writer"] * 5 + ["other"] * 5 + [""]
        renewed = writer.create("m", background=True)
        writer.append_events(renewed.id, redis_server.stream_batch("writer"))
        other.renew(renewed.id, lease=30)  # a new version, the same log: the writer's chunks still are the log
        CountingConnection.replies = 0
        done = writer.complete(renewed.id, [], events=[{"type": "test.final"}])
        assert CountingConnection.replies == 2  # read, write: the log was not read back
        assert done.version == renewed.version + 2
        assert [event["sequence_number"] for event in other.events(renewed.id)] == list(range(6))
        writer._check()
    finally:
        writer.close()
        other.close()
        pool.disconnect()


def test_a_finished_record_keeps_its_last_lease_member_until_leased_or_removal_drops_it() -> None:
    clock = FakeClock()
    with redis_server.open_store(clock=clock) as store:
        finished = store.create("m", lease=10, holder="run")
        running = store.create("m", lease=20, holder="run")
        gone = store.create("m", lease=10)
        store.complete(finished.id, holder="run")
        store.complete(gone.id)

        def lease_members() -> list[bytes]:
            return [m for m in store.client.zrange(store._base + "i", 0, -1) if m.startswith(b"l")]

        assert len(lease_members()) == 3
        store._check()
        store.delete(gone.id)
        assert len(lease_members()) == 2
        clock.advance(15)
        assert store.expire_leases() == 0  # only the finished record's lease is due, and it is dropped
        assert len(lease_members()) == 1
        clock.advance(10)
        assert store.expire_leases() == 1
        assert store.get(running.id).status is ResponseStatus.FAILED
        assert len(lease_members()) == 1  # the failed record's last lease, until the next look at the leases
        assert store.expire_leases() == 0
        assert lease_members() == []
        store._check()


def test_a_prefix_holding_an_older_layout_is_refused_not_overwritten() -> None:
    server = redis_server.shared()
    client = redis.Redis(port=server.port)
    prefix = redis_server.fresh_prefix()
    client.hset("{" + prefix + "}:c", "seq", "3")  # the counters of the layout before chunked logs
    try:
        with RedisStore(client, prefix=prefix) as store, pytest.raises(StorageError, match="another layout"):
            store.create("m")
        assert client.hget("{" + prefix + "}:c", "seq") == b"3"
    finally:
        client.delete("{" + prefix + "}:c")
        client.close()


# ---------------------------------------------------------------------------------------------- processes


def test_four_processes_race_transitions_without_lost_updates() -> None:
    server = redis_server.shared()
    url = f"{server.url}?prefix={redis_server.fresh_prefix()}"
    increments = 15
    with RedisStore.from_url(url) as store:
        ids = [store.create("m", metadata={"n": "0"}).id for _ in range(6)]
        workers = [run_worker("race", url, json.dumps(ids), str(increments), f"w{i}") for i in range(4)]
        results = [result_of(worker) for worker in workers]
        for id in ids:
            record = store.get(id)
            assert record.metadata["n"] == str(4 * increments), "an update was lost"
            assert record.status is ResponseStatus.COMPLETED
            winners = [i for i, result in enumerate(results) if id in result["won"]]
            assert len(winners) == 1, f"{id}: {len(winners)} winners of one completion"
            assert record.output[0]["content"][0]["text"] == f"w{winners[0]}"
            assert record.version == 4 * increments + 2
        assert all(result["stale_reads"] == 0 for result in results)
        assert sum(result["conflicts"] for result in results) > 0, "the workers never raced"
        store._check()


def test_two_processes_append_to_and_finish_responses_without_losing_an_event() -> None:
    server = redis_server.shared()
    url = f"{server.url}?prefix={redis_server.fresh_prefix()}"
    rounds = 12
    with RedisStore.from_url(url) as store:
        ids = [store.create("m", background=True).id for _ in range(4)]
        workers = [run_worker("stream", url, json.dumps(ids), str(rounds), name, stdin=True) for name in "ab"]
        start_together(workers)
        results = dict(zip("ab", (result_of(worker) for worker in workers), strict=True))
        shared = 0
        for id in ids:
            events = store.events(id)
            assert [event["sequence_number"] for event in events] == list(range(len(events)))
            batches = sorted((first, tag) for name in "ab" for i, first, tag in results[name]["appended"] if i == id)
            assert len(events) == 5 * len(batches) + 1, "an acknowledged batch is missing, or an extra one is there"
            for first, tag in batches:
                expected = [dict(event) for event in redis_server.stream_batch(tag)[:1]]
                expected += redis_server.stream_batch(tag)[1].events()
                expected += [dict(event) for event in redis_server.stream_batch(tag)[2:]]
                for offset, event in enumerate(expected):
                    assert events[first + offset] == {**event, "sequence_number": first + offset}
            winners = [name for name in "ab" if id in results[name]["won"]]
            assert len(winners) == 1, f"{id}: {winners} finished it"
            assert events[-1] == {"type": "test.final", "tag": winners[0], "sequence_number": len(events) - 1}
            assert store.get(id).status is ResponseStatus.COMPLETED
            shared += len({tag.split(":")[0] for _, tag in batches}) == 2
        assert shared > 0, "the workers never wrote to the same response"
        store._check()


@pytest.mark.parametrize("bound", ["max_records=12", "max_bytes=40000"])
def test_three_processes_fill_a_store_at_its_bound_without_going_over_or_refusing(bound: str) -> None:
    # Each create at the bound makes room by a plan Python decides (responsestore._room) and the write function
    # applies only if its victims are still there and least recently used: three processes creating at once
    # take each other's planned victims, and must retry rather than go over the bound or refuse.
    server = redis_server.shared()
    url = f"{server.url}?prefix={redis_server.fresh_prefix()}&ttl=none&{bound}"
    count = 100
    with RedisStore.from_url(url) as store:
        workers = [run_worker("fill", url, str(count), name, stdin=True) for name in "abc"]
        start_together(workers)
        results = [result_of(worker) for worker in workers]
        assert [result["full"] for result in results] == [0, 0, 0], "a create was refused with room to evict"
        assert [result["over"] for result in results] == [0, 0, 0], "the store was seen over its bound"
        made = sum(len(result["made"]) for result in results)
        assert made + sum(result["lost"] for result in results) == 3 * count
        stats = store.stats()
        assert stats.created == made
        assert stats.records == made - stats.evicted
        assert stats.evicted > 0, "the store never reached its bound"
        if bound.startswith("max_records"):
            assert stats.records == 12
        else:
            assert 30000 < stats.bytes <= 40000
        store._check()


def writes_of(store: RedisStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The codes the write function replies to ``store`` from now on (each call still goes to the server)."""
    codes: list[str] = []
    write = store._write

    def counted(op: str, args: Any, **kwargs: Any) -> Any:
        reply = write(op, args, **kwargs)
        codes.append(reply[0])
        return reply

    monkeypatch.setattr(store, "_write", counted)
    return codes


def test_a_plan_read_across_another_write_is_made_anew_not_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # The usage and the first eight candidates come in one snapshot; more candidates are read later. Another
    # process deleting a record in between shifts them: the plan then runs out, which must not read as "no room".
    url = f"{redis_server.shared().url}?prefix={redis_server.fresh_prefix()}&ttl=none"
    with RedisStore.from_url(url) as other:
        probe = other.create("m")
        bare = record_size(probe)  # a new record's bytes without its instructions
        other.delete(probe.id)
        ids = []
        for _ in range(12):
            record = other.create("m")
            other.complete(record.id)
            ids.append(record.id)
        held = other.stats().bytes
        deleted: list[str] = []
        with RedisStore.from_url(f"{url}&max_bytes={held + 50}") as store:
            read = store._read_call

            def with_a_delete_first(args: Any) -> Any:
                if args[0] == "recency" and not deleted:
                    deleted.append(ids[-1])
                    other.delete(ids[-1])
                return read(args)

            monkeypatch.setattr(store, "_read_call", with_a_delete_first)
            codes = writes_of(store, monkeypatch)
            store.create("m", instructions="y" * (held + 20 - bare))  # every finished record must go
            assert deleted, "the plan never read past its first candidates"
            assert codes.count("room") == 2  # the stale plan was dropped and made again
            assert store.stats().records == 1
            assert store.stats().bytes <= held + 50
            store._check()


def test_records_a_room_reply_swept_are_not_offered_as_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    url = f"{redis_server.shared().url}?prefix={redis_server.fresh_prefix()}&ttl=none"
    with RedisStore.from_url(url, clock=clock) as other:
        for _ in range(30):  # more than a write's own amortized sweep takes
            other.complete(other.create("m", ttl=10).id)
        for letter in "bc":
            other.complete(other.create("m", instructions=letter * 2000).id)
        held = other.stats().bytes
        clock.advance(20)
        with RedisStore.from_url(f"{url}&max_bytes={held + 10}", clock=clock) as store:
            codes = writes_of(store, monkeypatch)
            store.create("m", instructions="d" * 9000)
            assert codes == ["room", "ok"]  # before: the swept records were planned as victims, and it went round
            stats = store.stats()
            assert (stats.records, stats.expired, stats.evicted) == (2, 30, 1)
            store._check()


def test_a_damaged_chunk_is_a_storage_error() -> None:
    server = redis_server.shared()
    url = f"{server.url}?prefix={redis_server.fresh_prefix()}"
    client = redis.Redis(port=server.port)
    with RedisStore.from_url(url) as writer, RedisStore.from_url(url) as reader:
        record = writer.create("m", background=True)
        writer.append_events(record.id, redis_server.stream_batch("one"))
        writer.append_events(record.id, redis_server.stream_batch("two"))
        first_chunk = writer._base + "l:" + writer._key(None, record.id) + ":1"
        good = client.get(first_chunk)
        assert good is not None
        assert good.startswith(b"0 5 ")
        assert len(reader.events(record.id, starting_after=4)) == 5  # the second chunk alone: not damaged
        for garbage in (b"garbage", b"0 5 [not json", b"0 5 []", b"7 5 " + good[4:], b"0 5 \xff\xfe", b""):
            client.set(first_chunk, garbage)
            with pytest.raises(StorageError, match="damaged"):
                reader.events(record.id)
            with pytest.raises(StorageError, match="damaged"):
                list(reader.stream(record.id, starting_after=2, timeout=5))
            with pytest.raises(StorageError, match="damaged"):
                reader.complete(record.id)  # finishing compacts the log: it must be read first
        client.delete(first_chunk)
        client.hset(first_chunk, "not", "a string")
        with pytest.raises(StorageError):
            reader.events(record.id)
        client.delete(first_chunk)
        with pytest.raises(StorageError, match="damaged"):
            reader.events(record.id)
        assert reader.get(record.id).status is ResponseStatus.IN_PROGRESS  # nothing was written
        client.set(first_chunk, b"0 5 \xff\xfe")
        decoding = redis.Redis(port=server.port, decode_responses=True, socket_timeout=5)
        with RedisStore(decoding, prefix=reader.prefix) as decoded, pytest.raises(StorageError, match="damaged"):
            decoded.events(record.id)  # redis-py itself fails to decode the reply
        decoding.close()
        client.set(first_chunk, good)
        reader.complete(record.id)
        assert len(reader.events(record.id)) == 10
        reader._check()
    client.close()


def test_wait_in_one_process_is_woken_by_a_write_in_another() -> None:
    server = redis_server.shared()
    url = f"{server.url}?prefix={redis_server.fresh_prefix()}"
    control = redis.Redis(port=server.port)
    with RedisStore.from_url(url) as store:
        record = store.create("m", background=True)
        waiter = run_worker("wait", url, record.id)
        channel = "{" + store.prefix + "}:w"
        deadline = time.monotonic() + 60
        while control.pubsub_numsub(channel)[0][1] < 1:  # until the waiter's listener has subscribed
            assert waiter.poll() is None, waiter.communicate()[1]
            assert time.monotonic() < deadline, "the waiter never subscribed"
            time.sleep(0.01)  # polling another process's state: nothing here to wait on
        store.complete(record.id)
        assert result_of(waiter) == {"status": "completed"}
    control.close()


def test_wait_is_woken_by_another_store_object_in_this_process() -> None:
    server = redis_server.shared()
    url = f"{server.url}?prefix={redis_server.fresh_prefix()}"
    with RedisStore.from_url(url, poll_interval=600) as waiting, RedisStore.from_url(url) as writing:
        record = writing.create("m", background=True)
        results: list[Any] = []
        subscribed = threading.Event()
        with waiting.subscribe(record.id, subscribed.set):
            thread = threading.Thread(target=lambda: results.append(waiting.wait(record.id, timeout=60)))
            thread.start()
            control = redis.Redis(port=server.port)
            deadline = time.monotonic() + 60
            while control.pubsub_numsub("{" + waiting.prefix + "}:w")[0][1] < 1:
                assert time.monotonic() < deadline
                time.sleep(0.01)  # polling the server's subscription count
            control.close()
            writing.cancel(record.id)
            thread.join(60)
        assert [r.status for r in results] == [ResponseStatus.CANCELLED]
        assert subscribed.wait(60)  # the listener thread calls it: maybe just after the wait has returned


# ---------------------------------------------------------------------------------------------- faults


def timed_failure(action: Any) -> float:
    """Seconds until ``action`` raised StorageError (it must)."""
    start = time.monotonic()
    with pytest.raises(StorageError):
        action()
    return time.monotonic() - start


def test_kill_9_and_restart_from_aof(server: redis_server.RedisServer) -> None:
    store = RedisStore.from_url(url_of(server, socket_timeout=1, socket_connect_timeout=1))
    acknowledged: dict[str, int] = {}
    errors: list[float] = []
    stop = threading.Event()
    died = threading.Event()

    def work() -> None:
        while not stop.is_set():
            start = time.monotonic()
            try:
                record = store.create("m", "hi", background=True)
                acknowledged[record.id] = 1
                done = store.complete(record.id, [{"type": "message", "role": "assistant", "content": "x"}])
                acknowledged[record.id] = done.version
            except StorageError:
                errors.append(time.monotonic() - start)
                died.set()

    thread = threading.Thread(target=work)
    thread.start()
    try:
        while len(acknowledged) < 50:
            assert thread.is_alive()
            time.sleep(0.01)  # letting the workload run: it is what gets interrupted
        server.kill()
        assert died.wait(FAULT_BOUND), "no call failed while the server was dead"
        assert timed_failure(lambda: store.get("resp_x")) < FAULT_BOUND
        server.start()
        stop.set()
        thread.join(60)
    finally:
        stop.set()
        thread.join(60)
    assert max(errors) < FAULT_BOUND
    fresh = store.create("m")  # the same object works again
    assert store.get(fresh.id) == fresh
    for id, version in acknowledged.items():
        record = store.get(id)  # every acknowledged write survived (appendfsync always)
        assert record.version >= version
    store._check()  # no partial record: every index and counter agrees with the records
    store.close()


def test_sigstop_gives_storage_error_within_the_timeout_then_recovers(server: redis_server.RedisServer) -> None:
    store = RedisStore.from_url(url_of(server, socket_timeout=1, socket_connect_timeout=1))
    try:
        record = store.create("m")
        server.signal(signal.SIGSTOP)
        try:
            assert timed_failure(lambda: store.get(record.id)) < FAULT_BOUND
            assert timed_failure(lambda: store.complete(record.id)) < FAULT_BOUND
            assert timed_failure(store.list) < FAULT_BOUND
        finally:
            server.signal(signal.SIGCONT)
        assert server.ping()
        current = store.get(record.id)  # the same object works again
        if current.status is ResponseStatus.IN_PROGRESS:  # the timed-out complete may or may not have run
            store.complete(record.id)
        assert store.get(record.id).status is ResponseStatus.COMPLETED
        store._check()
    finally:
        store.close()


def test_a_dead_server_gives_storage_error_naming_the_store() -> None:
    port = redis_server._free_port()
    store = RedisStore.from_url(f"redis://127.0.0.1:{port}/0?prefix=nobody&socket_connect_timeout=1")
    try:
        with pytest.raises(StorageError, match="RedisStore"):
            store.create("m")
        with pytest.raises(StorageError):
            store.get("resp_x")
        with pytest.raises(StorageError):
            store.stats()
    finally:
        store.close()


def test_damaged_record_is_a_storage_error() -> None:
    store = redis_server.open_store()
    client = redis.Redis(port=redis_server.shared().port)
    try:
        record = store.create("m")
        header_key, record_key = ("{" + store.prefix + "}:" + kind + ":0:" + record.id for kind in "hr")
        fields = client.get(header_key).decode().split(" ")
        client.set(record_key, "not json")
        client.set(header_key, " ".join([fields[0], "7", *fields[2:]]))  # version 7: not the cached record
        with pytest.raises(StorageError, match="damaged"):
            store.get(record.id)
        client.set(header_key, "garbage")
        with pytest.raises(StorageError, match="damaged"):
            store.get(record.id)
        with pytest.raises(StorageError, match="damaged"):
            store.complete(record.id)
        with pytest.raises(StorageError, match="damaged"):
            store.list()
    finally:
        store.close()
        client.close()


# ---------------------------------------------------------------------------------------------- a cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[redis_server.RedisCluster]:
    """Three masters."""
    own = redis_server.RedisCluster()
    yield own
    own.stop()


def test_cluster_contract_basics(cluster: redis_server.RedisCluster) -> None:
    client = redis.cluster.RedisCluster(host="127.0.0.1", port=cluster.ports[0], socket_timeout=5)
    stores = [RedisStore(client, prefix=f"c{i}", clock=FakeClock()) for i in range(6)]
    try:
        slots = {client.keyslot(store._counters) for store in stores}
        nodes = {client.get_node_from_key(store._counters).port for store in stores}
        assert len(slots) == len(stores)
        assert len(nodes) > 1, "the prefixes should spread over the masters"
        for store in stores:
            first = store.create("m", "hello", background=True)
            store.append_event(first.id, {"type": "delta", "delta": "a"})
            store.complete(first.id, [{"type": "message", "role": "assistant", "content": "hi"}])
            second = store.create("m", "again", previous_response_id=first.id)
            assert [r.id for r in store.chain(second.id)] == [first.id, second.id]
            assert [r.id for r in store.list().data] == [second.id, first.id]
            assert [e["sequence_number"] for e in store.events(first.id)] == [0]
            assert store.wait(first.id, timeout=5).status is ResponseStatus.COMPLETED
            store.delete(second.id)
            with pytest.raises(ResponseNotFound):
                store.get(second.id)
            assert store.stats().records == 1
            assert store.sweep() == 0
            conversation = store.create_conversation([{"role": "user", "content": "a"}])
            in_it = store.create("m", "b", conversation=conversation.id)
            store.complete(in_it.id, [{"role": "assistant", "content": "c"}])
            context = store.conversation_context(conversation.id)
            assert [item["content"][0]["text"] for item in context] == ["a", "b", "c"]
            assert store.get_conversation_item(conversation.id, context[1]["id"]) == context[1]
            store._check()
    finally:
        for store in stores:
            store.close()
        client.close()


def test_ci_never_skips_the_redis_tests() -> None:
    if os.environ.get("CI"):
        assert redis_server.redis_server_binary()
