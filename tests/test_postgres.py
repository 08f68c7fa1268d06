"""What is specific to the PostgreSQL backend: URLs, schemas, processes sharing one server, faults, damaged rows.

The contract suite runs against PostgreSQL through its descriptor in tests/backends.py; this file covers what only
a shared network server has. Every server is a real PostgreSQL started by tests/postgres_server.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from responsestore import InvalidArgument, ResponseNotFound, StorageError, WaitTimeout

from . import postgres_server
from .processes import Child, check_races, run_workers, walk, worker

pytestmark = pytest.mark.timeout(300)

psycopg = pytest.importorskip("psycopg") if not os.environ.get("CI") else __import__("psycopg")

from responsestore._postgres import PostgresStore  # noqa: E402 - needs psycopg, checked just above

#: Bound on how long a call may take to fail while the server is away.
FAULT_BOUND = 15.0


@pytest.fixture(scope="module")
def server() -> Iterator[postgres_server.PostgresServer]:
    """A server of this module's own (the crash tests kill and restart it)."""
    own = postgres_server.PostgresServer()
    yield own
    own.stop()


def url_of(server: postgres_server.PostgresServer, **query: Any) -> str:
    """A store URL on ``server`` with a fresh schema."""
    parts = "&".join(f"{key}={value}" for key, value in {"schema": postgres_server.fresh_schema(), **query}.items())
    return f"{server.url}?{parts}"


def shared_url(**query: Any) -> str:
    return url_of(postgres_server.shared(), **query)


def raw(url: str) -> Any:
    """A plain psycopg connection (autocommit) on the server of ``url``, in the URL's schema."""
    base, _, query = url.partition("?")
    schema = dict(part.split("=", 1) for part in query.split("&"))["schema"]
    return psycopg.connect(base, autocommit=True, options=f"-c search_path={schema}")


# ---------------------------------------------------------------------------------------------- opening


def test_import_responsestore_does_not_import_psycopg() -> None:
    code = "import sys, responsestore; assert 'psycopg' not in sys.modules; responsestore.PostgresStore"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg", "POSTGRESQL"])
def test_every_scheme_opens_the_store(scheme: str) -> None:
    url = shared_url(ttl=60, max_records=5, max_bytes=100000, poll_interval=0.5, timeout=7, application_name="t")
    with PostgresStore.from_url(scheme + url[len("postgresql") :]) as store:
        assert (store.retention.ttl, store.retention.max_records, store.retention.max_bytes) == (60, 5, 100000)
        assert (store.poll_interval, store.timeout) == (0.5, 7.0)
        record = store.create("m")
        assert store.get(record.id) == record
        assert "schema" in repr(store)
        assert "open" in repr(store)
    assert "closed" in repr(store)


def test_url_options_none_and_keyword_arguments() -> None:
    with PostgresStore.from_url(shared_url(ttl="none", max_records="none"), max_bytes=None) as store:
        assert (store.retention.ttl, store.retention.max_records, store.retention.max_bytes) == (None, None, None)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://x/y", "postgresql://"),
        ("postgresql://h/d?ttl=1&ttl=2", "twice"),
        ("postgresql://h/d?ttl=soon", "ttl"),
        ("postgresql://h/d?ttl=nan", "ttl"),
        ("postgresql://h/d?max_records=-1", "max_records"),
        ("postgresql://h/d?max_records=" + "9" * 30, "max_records"),
        ("postgresql://h/d?poll_interval=none", "poll_interval"),
        ("postgresql://h/d?schema=Bad-Name", "schema"),
        ("postgresql://h/d?schema=" + "a" * 64, "schema"),
        ("postgresql://h/d?nosuchparameter=1", "malformed"),
        ("postgresql://h/d?a", "malformed"),
        ("postgresql://h/d?timeout=0", "timeout"),
    ],
)
def test_bad_urls_are_refused_before_connecting(url: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        PostgresStore.from_url(url)


def test_a_setting_given_twice_is_refused_and_the_url_must_be_text() -> None:
    with pytest.raises(InvalidArgument, match="given both"):
        PostgresStore.from_url("postgresql://h/d?ttl=5", ttl=6)
    with pytest.raises(InvalidArgument, match="url must be a str"):
        PostgresStore.from_url(b"postgresql://h/d")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="conninfo must be a str"):
        PostgresStore(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="connection string"):
        PostgresStore("host")
    with pytest.raises(InvalidArgument, match="connect_timeout"):
        PostgresStore("host=h", connect_timeout=0.5)
    with pytest.raises(InvalidArgument, match="poll_interval"):
        PostgresStore("host=h", poll_interval=True)  # type: ignore[arg-type]


def test_a_dead_server_gives_storage_error_naming_the_store() -> None:
    port = postgres_server._free_port()
    started = time.monotonic()
    with pytest.raises(StorageError, match=rf"cannot connect to PostgreSQL 127.0.0.1:{port}/db schema s") as caught:
        PostgresStore(f"postgresql://user:secret@127.0.0.1:{port}/db", schema="s", connect_timeout=2)
    assert "secret" not in str(caught.value)
    assert time.monotonic() - started < FAULT_BOUND


def test_schemas_isolate_stores_and_a_schema_outlives_its_store() -> None:
    url = shared_url()
    with PostgresStore.from_url(url) as first, PostgresStore.from_url(shared_url()) as other:
        record = first.create("m", id="same")
        other.create("m", id="same")
        first.complete("same")
        assert other.get("same").status.value == "in_progress"
        assert len(first) == len(other) == 1
    with PostgresStore.from_url(url) as again:  # a new object on the same schema finds everything
        assert again.get(record.id).status.value == "completed"
        assert again.stats().created == 1
        again._check()


def test_a_schema_of_another_application_or_version_is_refused_and_left_alone() -> None:
    url = shared_url()
    schema = url.rpartition("schema=")[2]
    with psycopg.connect(postgres_server.shared().url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.customers (id int)")
        with pytest.raises(StorageError, match="another application"):
            PostgresStore.from_url(url)
        assert conn.execute(f"SELECT count(*) FROM {schema}.customers").fetchone() == (0,)  # noqa: S608
    url = shared_url()
    PostgresStore.from_url(url).close()
    with raw(url) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE name = 'version'")
    with pytest.raises(StorageError, match="version '99'"):
        PostgresStore.from_url(url)


def test_stores_opening_one_new_schema_at_once_create_it_once() -> None:
    url = shared_url()
    stores: list[PostgresStore] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def open_one() -> None:
        try:
            opened = PostgresStore.from_url(url)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            return
        with lock:
            stores.append(opened)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert errors == []
        stores[0].create("m", id="one")
        assert all(store.get("one").id == "one" for store in stores)
    finally:
        for store in stores:
            store.close()


# ---------------------------------------------------------------------------------------------- one process


def test_close_is_idempotent_wakes_waiters_and_a_closed_store_refuses_every_call() -> None:
    store = PostgresStore.from_url(shared_url())
    record = store.create("m")
    failures: list[BaseException] = []
    subscribed = threading.Event()

    def waiter() -> None:
        subscribed.set()
        try:
            store.wait(record.id, timeout=60)
        except StorageError as exc:
            failures.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    subscribed.wait(60)
    store._get(None, record.id)  # a queued recency mark: close writes it
    store.close()
    thread.join(60)
    assert not thread.is_alive()
    assert len(failures) == 1
    store.close()
    assert store.closed
    for call in (lambda: store.get(record.id), store.list, store.stats, lambda: store.create("m")):
        with pytest.raises(StorageError, match="closed"):
            call()
    store._check()  # checks the schema through a connection of its own


def test_connections_of_ended_threads_are_closed_and_a_dropped_connection_is_replaced() -> None:
    with PostgresStore.from_url(shared_url()) as store:
        record = store.create("m")
        thread = threading.Thread(target=lambda: store.get(record.id))
        thread.start()
        thread.join(60)
        del thread
        import gc  # noqa: PLC0415

        gc.collect()
        assert len(store._connections) == 1
        with psycopg.connect(postgres_server.shared().url, autocommit=True) as admin:
            pid = store._state().conn.info.backend_pid
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(StorageError, match=r"PostgreSQL .* failed"):
            store.get(record.id)
        assert store.get(record.id) == record  # a new connection
        store._check()


def test_a_write_waiting_for_the_lock_fails_after_timeout_and_changes_nothing() -> None:
    url = shared_url(timeout=1)
    with PostgresStore.from_url(url) as store, raw(url) as holder:
        record = store.create("m")
        holder.execute("BEGIN")
        holder.execute("SELECT * FROM counters FOR UPDATE")
        assert store.get(record.id) == record  # reads never wait for writers
        assert len(store.list().data) == 1
        with pytest.raises(StorageError, match="stayed locked"):
            store.complete(record.id)
        holder.execute("ROLLBACK")
        assert store.get(record.id).status.value == "in_progress"
        store.complete(record.id)
        store._check()


def test_owners_holding_nul_and_odd_ids_are_kept_apart() -> None:
    with PostgresStore.from_url(shared_url()) as store:
        owners = [None, "", "a\0b", "a\ud800", "a", "long" * 5000, "\0" * 300]
        for owner in owners:
            store.create("m", id="x", owner=owner, metadata={"o": repr(owner)[:500]})
        for owner in owners:
            assert store.get("x", owner=owner).metadata["o"] == repr(owner)[:500]
            assert [r.id for r in store.list(owner=owner).data] == ["x"]
        for odd in ("a\0", "\ud800", "x" * 300):
            with pytest.raises((ResponseNotFound, InvalidArgument)):
                store.get(odd)
        with pytest.raises(InvalidArgument):
            store.list(after="\0")
        long = "long" * 5000
        conversation = store.create_conversation(owner=long)
        assert store.get_conversation(conversation.id, owner=long) == conversation
        store.delete("x", owner=long)
        assert [r.id for r in store.list(owner=long).data] == []
        store._check()


def test_tombstones_of_deleted_expired_and_evicted_records_keep_cursors() -> None:
    from responsestore.testing import FakeClock  # noqa: PLC0415

    clock = FakeClock()
    with PostgresStore.from_url(shared_url(), clock=clock, max_records=3, ttl=None) as store:
        a = store.create("m", id="a")
        store.complete("a")
        store.create("m", id="b", ttl=5)
        store.create("m", id="c")
        store.delete("c")
        clock.advance(10)
        store.sweep()
        store.create("m", id="d")
        store.create("m", id="e")
        store.create("m", id="f")  # evicts a, the only finished record
        assert a.id not in store
        for gone in ("a", "b", "c"):  # deleted, expired and evicted records keep their place for cursors
            assert [r.id for r in store.list(after=gone, order="asc").data] == ["d", "e", "f"]
            assert [r.id for r in store.list(before=gone, order="desc").data] == ["f", "e", "d"]
        stats = store.stats()
        assert (stats.deleted, stats.expired, stats.evicted) == (1, 1, 1)
        store._check()


# ---------------------------------------------------------------------------------------------- processes

WORKER = worker(
    imports="from responsestore._postgres import PostgresStore",
    open="PostgresStore.from_url(target, max_records=None)",
    setup='    previous = shared["root"]',
    step="""
        for counter in shared["counters"]:  # both processes increment the same records
            while True:
                current = store.get(counter)
                try:
                    store.update(counter, metadata={"n": str(int(current.metadata["n"]) + 1)},
                                 expected_version=current.version)
                    break
                except VersionConflict:
                    result["conflicts"] += 1
            result["increments"][counter] = result["increments"].get(counter, 0) + 1
        record = store.create("m", f"w{index}-{step}", previous_response_id=previous, owner=None)
        store.complete(record.id, [{"role": "assistant", "content": str(index)}])
        result["chain"].append(record.id)
        previous = record.id""",
    limit=3,
    every=5,
)
WORKERS = 2
ROUNDS = 30


def test_two_processes_writing_the_same_responses_lose_no_update_and_build_chains() -> None:
    url = shared_url()
    with PostgresStore.from_url(url, max_records=None) as store:
        counters = [store.create("m", id=f"counter{n}", metadata={"n": "0"}).id for n in range(2)]
        races = [store.create("m", id=f"race{n}").id for n in range(ROUNDS)]
        stable = [store.create("m", owner="stable").id for _ in range(7)]
        root = store.create("m", "root").id
        store.complete(root)
        results = run_workers(WORKER, url, WORKERS, ROUNDS, {"counters": counters, "races": races, "root": root})
        for counter in counters:  # no lost update: every increment of either process is counted
            record = store.get(counter)
            assert record.metadata["n"] == str(WORKERS * ROUNDS)
            assert record.version == 1 + WORKERS * ROUNDS
            assert sum(result["increments"][counter] for result in results) == WORKERS * ROUNDS
        check_races(store, races, results)
        for result in results:
            # Each process's chain, read here, runs back through its records to the root they share.
            chain = store.chain(result["chain"][-1])
            assert [r.id for r in chain] == [root, *result["chain"]]
        # A chain continued here from one process's responses.
        follower = store.create("m", "next", previous_response_id=results[1]["chain"][-1])
        assert follower.previous_response_id == results[1]["chain"][-1]
        assert all(ids == stable for result in results for ids in result["walks"])
        listed = walk(store, order="asc")
        assert len(listed) == len(set(listed)) == len(counters) + len(races) + 1 + WORKERS * ROUNDS + 1
        store._check()


CRASHER = r"""
import sys
from responsestore._postgres import PostgresStore

store = PostgresStore.from_url(sys.argv[1], max_records=None)
n = 0
while True:
    record = store.create("m", f"turn {n}", metadata={"n": str(n)})
    print("created", record.id, flush=True)
    store.append_events(record.id, [{"type": "x", "n": n}])
    record = store.complete(record.id, [{"role": "assistant", "content": f"answer {n}"}])
    print("completed", record.id, record.version, flush=True)
    n += 1
"""


def test_a_writer_killed_mid_writes_loses_nothing_it_acknowledged() -> None:
    url = shared_url()
    acknowledged: dict[str, str] = {}
    for unreported in range(1, 4):  # each kill may leave one create committed but never reported
        with Child(CRASHER, url) as child:
            for _ in range(5 + 17 * unreported):
                word, id, *_ = child.line().split()
                acknowledged[id] = word
            child.kill()  # SIGKILL wherever it is: likely inside a transaction
            for line in child.rest():
                word, id, *_ = line.split()
                acknowledged[id] = word
        assert child.process.returncode == -signal.SIGKILL
        with PostgresStore.from_url(url, max_records=None) as store:
            store._check()  # the killed transaction left nothing half-done; the lock went with its connection
            for id, word in acknowledged.items():
                record = store.get(id)
                if word == "completed":
                    assert (record.status.value, record.version) == ("completed", 2)
                    assert record.output[0]["content"][0]["text"] == f"answer {record.metadata['n']}"
                    assert [event["n"] for event in store.events(id)][:1] == [int(record.metadata["n"])]
            assert len(acknowledged) <= len(store) <= len(acknowledged) + unreported
            store.create("m")  # writes go on


WAITER = r"""
import sys
from responsestore._postgres import PostgresStore

store = PostgresStore.from_url(sys.argv[1])
print("ready", flush=True)
record = store.wait(sys.argv[2], timeout=60)
print(record.status.value, flush=True)
store.close()
"""


def test_wait_in_one_process_sees_a_write_in_another() -> None:
    url = shared_url(poll_interval=0.05)
    with PostgresStore.from_url(url) as store:
        record = store.create("m")
        with Child(WAITER, url, record.id) as child:
            assert child.line() == "ready"
            store.complete(record.id)
            assert child.line() == "completed"
            child.finish()


# ---------------------------------------------------------------------------------------------- faults


def timed_failure(call: Callable[[], object]) -> float:
    """Seconds ``call`` took to raise StorageError (fails if it returned or raised anything else)."""
    started = time.monotonic()
    with pytest.raises(StorageError, match="PostgreSQL"):
        call()
    return time.monotonic() - started


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_a_killed_or_stopped_server_gives_storage_error_then_the_store_recovers(
    server: postgres_server.PostgresServer, how: str
) -> None:
    store = PostgresStore.from_url(url_of(server), connect_timeout=2)
    try:
        record = store.create("m")
        store.append_events(record.id, [{"type": "x"}])
        acknowledged = store.get(record.id).version
        if how == "kill":
            server.kill()
        else:
            server.signal(signal.SIGINT)  # a fast shutdown: clients are disconnected
            assert server.process is not None
            server.process.wait(30)
        assert timed_failure(lambda: store.get(record.id)) < FAULT_BOUND
        assert timed_failure(lambda: store.complete(record.id)) < FAULT_BOUND
        assert timed_failure(store.list) < FAULT_BOUND
        assert timed_failure(store.stats) < FAULT_BOUND
        server.start()
        assert store.get(record.id).version >= acknowledged  # the same object works again
        store.complete(record.id)
        assert store.events(record.id)[0]["type"] == "x"
        store._check()
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------- damage


def test_damaged_rows_are_storage_errors_naming_the_store_and_the_record() -> None:
    url = shared_url()
    with PostgresStore.from_url(url) as store, raw(url) as conn:
        record = store.create("m", id="hurt")
        store.append_events("hurt", [{"type": "x"}])
        conn.execute("UPDATE responses SET record = 'not json', version = 7 WHERE id = 'hurt'")
        for call in (
            lambda: store.get("hurt"),
            lambda: store.complete("hurt"),
            store.list,
            lambda: store.wait("hurt", timeout=0),
        ):
            with pytest.raises(StorageError, match=r"PostgreSQL .* schema t\w+ is damaged: the record 'hurt'"):
                call()
        other = store.create("m", id="other", metadata={"a": "b"})
        conn.execute("UPDATE responses SET record = %s, version = 9 WHERE id = 'other'", (json.dumps(other.to_dict()),))
        with pytest.raises(StorageError, match=r"'other'.*disagrees"):
            store.get("other")
        conn.execute("DELETE FROM responses WHERE id = 'other'")
        store.create("m", id="fine")
        store.append_events("fine", [{"type": "x"}, {"type": "y"}])
        conn.execute("UPDATE chunks SET count = 5 WHERE response = (SELECT seq FROM responses WHERE id = 'fine')")
        with pytest.raises(StorageError, match="damaged: the event log of 'fine'"):
            list(store.events("fine"))
        conversation = store.create_conversation([{"type": "message", "role": "user", "content": "hi"}])
        conn.execute("UPDATE conversation_items SET item = '[1'")
        with pytest.raises(StorageError, match=f"damaged: an item of conversation '{conversation.id}'"):
            store.conversation_items(conversation.id)
        conn.execute("UPDATE conversations SET record = '{}'")
        with pytest.raises(StorageError, match=f"damaged: the conversation '{conversation.id}'"):
            store.get_conversation(conversation.id)
        conn.execute("DELETE FROM counters")
        with pytest.raises(StorageError, match="damaged: its counters row"):
            store.create("m")
        with pytest.raises(StorageError, match="damaged: its counters row"):
            store.stats()
        assert record.id == "hurt"


def test_an_engine_error_inside_a_write_is_a_storage_error_and_changes_nothing() -> None:
    url = shared_url()
    with PostgresStore.from_url(url) as store, raw(url) as conn:
        record = store.create("m")
        conn.execute("ALTER TABLE chunks ADD CONSTRAINT tiny CHECK (length(text) < 5)")
        with pytest.raises(StorageError, match=r"PostgreSQL .* failed: .*tiny"):
            store.append_events(record.id, [{"type": "a long enough event"}])
        conn.execute("ALTER TABLE chunks DROP CONSTRAINT tiny")
        assert list(store.events(record.id)) == []
        store._check()


def test_a_forked_child_opens_its_own_connections() -> None:
    if not hasattr(os, "fork"):
        pytest.skip("no fork here")
    with PostgresStore.from_url(shared_url()) as store:
        record = store.create("m")
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's code is not measured
            code = 1
            try:
                store.complete(record.id)
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert store.get(record.id).status.value == "completed"  # the parent's connection still works
        store._check()


def test_ci_never_skips_the_postgres_tests() -> None:
    if os.environ.get("CI"):
        assert postgres_server.binaries()


def test_records_of_a_long_owner_are_swept_evicted_and_their_waiters_woken() -> None:
    from responsestore.testing import FakeClock  # noqa: PLC0415

    clock = FakeClock()
    long = "o" * 3000
    with PostgresStore.from_url(shared_url(), clock=clock, max_records=2, ttl=None) as store:
        store.create("m", id="a", owner=long, ttl=5)
        store.create("m", id="b", owner=long)
        store.complete("b", owner=long)
        clock.advance(10)
        with store.subscribe("a", lambda: None, owner=long):
            assert store.sweep() == 1
        store.create("m", id="c", owner=long)
        store.create("m", id="d", owner=long)  # evicts b
        store.complete("c", owner=long)
        store.complete("d", owner=long)
        store.create("m", id="e", owner=long, ttl=1)  # evicts c
        clock.advance(2)
        with pytest.raises((WaitTimeout, ResponseNotFound)):
            store.wait("e", owner=long, timeout=0)
        store.create("m", id="e", owner=long)  # the expired e is cleared first
        stats = store.stats()
        assert (stats.expired, stats.evicted) == (2, 2)
        assert [r.id for r in store.list(owner=long, after="c", order="asc").data] == ["d", "e"]
        store._check()


def test_ids_postgresql_cannot_hold_are_missing_to_every_storage_operation() -> None:
    with PostgresStore.from_url(shared_url()) as store:
        store.create("m", id="x")
        for odd in ("a\0b", "\ud800"):
            assert store._get(None, odd) is None
            assert store._chain(None, odd, 5) == []
            assert store._events(None, odd, -1) is None
            assert store._conversation(None, odd) is None
            assert store._conversation_items(None, odd, None, 5, descending=False) is None
            assert store._conversation_item(None, odd, "item") is None
            assert store._conversation_held(None, odd, ["item"]) == set()
            assert store._find_newest(None, odd, lambda record, odd=odd: odd in record.id) is None  # matched in Python
        assert store._find_newest(None, '"id":"x"', lambda record: record.id == "x") is not None


def test_a_schema_postgresql_refuses_to_create_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match=r"cannot use PostgreSQL .* schema pg_nope as a responsestore store"):
        PostgresStore.from_url(f"{postgres_server.shared().url}?schema=pg_nope")


def test_an_idle_connection_the_server_dropped_is_not_reused() -> None:
    url = shared_url(application_name="parked", timeout=13)
    PostgresStore.from_url(url).close()  # its connection waits in the idle pool
    with psycopg.connect(postgres_server.shared().url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'parked'")
    with PostgresStore.from_url(url) as store:  # connects anew
        assert store.create("m").version == 1


def test_damaged_columns_of_conversations_and_statuses_are_storage_errors() -> None:
    url = shared_url()
    with PostgresStore.from_url(url) as store, raw(url) as conn:
        conversation = store.create_conversation([{"type": "message", "role": "user", "content": "hi"}])
        conn.execute("UPDATE conversation_items SET item_id = 'other'")
        with pytest.raises(StorageError, match=f"an item of conversation '{conversation.id}'.*disagree"):
            store.conversation_items(conversation.id)
        conn.execute("UPDATE conversations SET version = 5")
        with pytest.raises(StorageError, match=f"the conversation '{conversation.id}'.*disagree"):
            store.get_conversation(conversation.id)
        store.create("m", id="odd", ttl=1)
        conn.execute("UPDATE responses SET status = 'bogus', expires_at = 0")
        with pytest.raises(StorageError, match="damaged: a record's status"):
            store.stats()


def test_a_connection_reused_by_another_store_reads_and_writes_that_stores_schema() -> None:
    first = PostgresStore.from_url(shared_url(application_name="reused"))
    first.create("m", id="x", metadata={"schema": "first"})
    for _ in range(10):  # past psycopg's threshold: its statements are prepared on the server
        assert first.get("x").metadata["schema"] == "first"
    pid = first._state().conn.info.backend_pid
    first.close()
    with PostgresStore.from_url(shared_url(application_name="reused")) as second:
        assert second._state().conn.info.backend_pid == pid  # the same connection, now in another schema
        assert "x" not in second
        second.create("m", id="x", metadata={"schema": "second"})
        for _ in range(10):
            assert second.get("x").metadata["schema"] == "second"
        assert len(second) == 1
        second._check()


def test_a_dead_threads_connection_is_given_back_where_the_mutexes_are_held() -> None:
    """The finalizer of a thread's state may run inside a critical section of its own thread (see the SQLite test).

    It drops the connection from the store's table and parks it in the process's pool: neither mutex may make it
    wait for the thread it runs in.
    """
    from responsestore._postgres import _Pool  # noqa: PLC0415 - needs psycopg, checked at the top

    with PostgresStore.from_url(shared_url()) as store:
        for mutex in (store._connections_mutex, _Pool.mutex):
            kept: list[object] = []
            thread = threading.Thread(target=lambda kept=kept: (len(store), kept.append(store._local.state)))
            thread.start()
            thread.join(60)
            assert len(kept) == 1
            assert len(store._connections) == 2
            done = threading.Event()

            def drop_inside(mutex: Any = mutex, kept: list[object] = kept, done: threading.Event = done) -> None:
                with mutex:
                    kept.clear()  # the last reference: the state's finalizer runs here, with the mutex held
                done.set()

            threading.Thread(target=drop_inside, daemon=True).start()
            assert done.wait(30), "the finalizer waited for a mutex its own thread holds"
            assert len(store._connections) == 1
