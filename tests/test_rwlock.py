"""``RWLock``: mutual exclusion, shared reads, writer preference, reentrancy, refusals and timeouts.

Other threads are driven through :class:`Actor` (a daemon thread that runs the calls it is handed, in order), so
a test can say "thread B takes the read lock" and later "thread B releases it". Every wait is bounded; a
deadlock turns into a failed test, never a hung run.
"""

from __future__ import annotations

import math
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from functools import partial
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from responsestore import InvalidArgument, LockError, ResponseStoreError, RWLock

T = TypeVar("T")

#: Generous bound on every wait: long enough for a loaded 2-core machine, short enough to report a deadlock.
WAIT = 30.0


class Actor:
    """A daemon thread that runs the calls handed to it one after another; lock holds stay with its thread."""

    def __init__(self, name: str) -> None:
        self._calls: list[tuple[Future[Any], Callable[[], Any]]] = []
        self._ready = threading.Condition()
        self._stopped = False
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            with self._ready:
                self._ready.wait_for(lambda: self._calls or self._stopped)
                if not self._calls:
                    return
                future, call = self._calls.pop(0)
            future.set_running_or_notify_cancel()
            try:
                result = call()
            except BaseException as exc:  # noqa: BLE001 - handed back to the test through the future
                future.set_exception(exc)
            else:
                future.set_result(result)

    def submit(self, call: Callable[[], T]) -> Future[T]:
        """Run ``call`` on this actor's thread (after the calls before it); return its future."""
        future: Future[T] = Future()
        with self._ready:
            self._calls.append((future, call))
            self._ready.notify()
        return future

    def run(self, call: Callable[[], T]) -> T:
        """Run ``call`` on this actor's thread and return its result (or raise its exception)."""
        return self.submit(call).result(timeout=WAIT)

    def stop(self) -> None:
        with self._ready:
            self._stopped = True
            self._ready.notify()
        self.thread.join(timeout=5)


@pytest.fixture
def actors() -> Iterator[Callable[[str], Actor]]:
    """A factory of actors, all stopped at teardown."""
    started: list[Actor] = []

    def make(name: str) -> Actor:
        actor = Actor(name)
        started.append(actor)
        return actor

    yield make
    for actor in started:
        actor.stop()


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Make the interpreter switch threads far more often, so races get a chance to show."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    """Poll ``predicate`` until it holds (bounded by WAIT); it observes state, it does not order threads."""
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.0005)


def waiting_readers(lock: RWLock) -> int:
    """How many threads are blocked in ``acquire_read`` (CPython's Condition keeps its waiters in a deque)."""
    return len(lock._can_read._waiters)  # type: ignore[attr-defined]


def try_read(lock: RWLock) -> bool:
    """Try to take the read lock without waiting; release it at once if taken."""
    if lock.acquire_read(timeout=0):
        lock.release_read()
        return True
    return False


def try_write(lock: RWLock) -> bool:
    """Try to take the write lock without waiting; release it at once if taken."""
    if lock.acquire_write(timeout=0):
        lock.release_write()
        return True
    return False


def run_threads(targets: Sequence[Callable[[], None]]) -> None:
    """Start ``targets`` together (behind a barrier), join them with a bound, re-raise the first error."""
    barrier = threading.Barrier(len(targets), timeout=WAIT)
    errors: list[BaseException] = []

    def wrap(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                barrier.wait()
                target()
            except BaseException as exc:  # noqa: BLE001 - reported by the test thread below
                errors.append(exc)

        return run

    threads = [threading.Thread(target=wrap(t), name=f"worker-{i}", daemon=True) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 2 * WAIT
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    alive = [thread.name for thread in threads if thread.is_alive()]
    assert not alive, f"threads still running (deadlock?): {alive}"
    if errors:
        raise AssertionError(f"{len(errors)} thread(s) raised; first: {errors[0]!r}") from errors[0]


def assert_free(lock: RWLock, other: Actor) -> None:
    """Nobody holds ``lock``: another thread can take the write lock at once, and the invariants hold."""
    lock._check()
    assert not lock.held_read()
    assert not lock.held_write()
    assert other.run(lambda: try_write(lock)) is True


# --------------------------------------------------------------------------- mutual exclusion


def test_random_mix_of_sections_never_lets_a_writer_in_with_anyone_else(busy_switching: None) -> None:
    lock = RWLock()
    n_threads, sections_per_thread = 8, 400
    counters = threading.Lock()
    inside = {"readers": 0, "writers": 0}
    violations: list[str] = []
    executed = [0] * n_threads
    most_readers_together = [0]

    def check(where: str) -> None:  # called with `counters` held
        if inside["writers"] not in (0, 1):
            violations.append(f"{where}: {inside['writers']} writers inside")
        if inside["writers"] and inside["readers"]:
            violations.append(f"{where}: a writer inside with {inside['readers']} readers")

    def enter(kind: str) -> None:
        with counters:
            inside[kind] += 1
            most_readers_together[0] = max(most_readers_together[0], inside["readers"])
            check(f"entering as {kind}")

    def leave(kind: str) -> None:
        with counters:
            check(f"leaving as {kind}")
            inside[kind] -= 1

    def work(rng: random.Random) -> None:
        for _ in range(rng.randrange(30)):
            pass
        if rng.random() < 0.2:
            time.sleep(0)  # let another thread run while we are inside

    def take(acquire: Callable[..., bool], rng: random.Random) -> None:
        if rng.random() < 0.5:
            assert acquire() is True
            return
        # Timed attempts exercise the give-up path (which must wake the threads queued behind a writer).
        while not acquire(timeout=rng.choice([0, 0.0005, 0.002])):
            pass

    def worker(index: int) -> None:
        rng = random.Random(index)
        for _ in range(sections_per_thread):
            kind = rng.choice(["read", "read", "read", "nested read", "write", "nested write", "downgrade"])
            if kind in ("read", "nested read"):
                take(lock.acquire_read, rng)
                enter("readers")
                work(rng)
                if kind == "nested read":
                    take(lock.acquire_read, rng)
                    work(rng)
                    lock.release_read()
                leave("readers")
                lock.release_read()
            elif kind in ("write", "nested write"):
                take(lock.acquire_write, rng)
                enter("writers")
                work(rng)
                if kind == "nested write":
                    with lock.write():
                        work(rng)
                    with lock.read():  # a read taken under the write lock is still exclusive
                        work(rng)
                leave("writers")
                lock.release_write()
            else:  # downgrade: write, read, release write -> a plain reader
                take(lock.acquire_write, rng)
                enter("writers")
                lock.acquire_read()
                work(rng)
                with counters:  # become a reader while still holding the write lock: nobody else is inside
                    check("downgrading")
                    inside["writers"] -= 1
                    inside["readers"] += 1
                lock.release_write()
                assert lock.held_read()
                assert not lock.held_write()
                work(rng)
                leave("readers")
                lock.release_read()
            assert not lock.held_read()
            assert not lock.held_write()
            executed[index] += 1

    run_threads([partial(worker, i) for i in range(n_threads)])

    assert violations == []
    assert executed == [sections_per_thread] * n_threads
    assert inside == {"readers": 0, "writers": 0}
    assert most_readers_together[0] >= 2, "readers never overlapped: the test did not exercise shared reads"
    lock._check()
    assert lock.acquire_write(timeout=0) is True
    lock.release_write()


def test_readers_hold_the_lock_together(actors: Callable[[str], Actor]) -> None:
    lock = RWLock()
    k = 5
    prober = actors("prober")
    all_inside = threading.Barrier(k, timeout=WAIT)
    probes: list[tuple[bool, bool]] = []
    left = [0]
    count_lock = threading.Lock()

    def reader() -> None:
        with lock.read():
            # Passes only if all k readers are inside the read lock at the same moment.
            if all_inside.wait() == 0:
                probes.append((prober.run(lambda: try_write(lock)), prober.run(lambda: try_read(lock))))
            all_inside.wait()  # nobody leaves before the probe is done
            with count_lock:
                left[0] += 1

    run_threads([reader] * k)
    assert left[0] == k
    assert probes == [(False, True)]  # no writer among k readers; one more reader is welcome
    assert_free(lock, prober)


# --------------------------------------------------------------------------- writer preference


def test_waiting_writer_keeps_new_readers_out_but_not_reentrant_ones(actors: Callable[[str], Actor]) -> None:
    lock = RWLock()
    reader, writer, newcomer = actors("reader"), actors("writer"), actors("newcomer")
    assert reader.run(lock.acquire_read) is True
    writing = writer.submit(lock.acquire_write)
    wait_until(lambda: lock._waiting_writers == 1, "the writer waits")

    # A new reader queues behind the waiting writer...
    assert newcomer.run(lambda: lock.acquire_read(timeout=0.05)) is False
    assert newcomer.run(lambda: lock.acquire_read(timeout=0)) is False
    # ...but the thread already reading may read again: waiting behind the writer would deadlock it.
    assert reader.run(lambda: lock.acquire_read(timeout=0)) is True
    assert reader.run(lock.acquire_read) is True
    assert reader.run(lock.held_read) is True
    reader.run(lock.release_read)
    reader.run(lock.release_read)
    assert not writing.done()

    reader.run(lock.release_read)  # the last read hold goes: the writer gets in
    assert writing.result(timeout=WAIT) is True
    assert writer.run(lock.held_write) is True
    assert newcomer.run(lambda: lock.acquire_read(timeout=0)) is False
    assert reader.run(lambda: lock.acquire_read(timeout=0)) is False  # no read hold left to re-enter
    writer.run(lock.release_write)
    assert newcomer.run(lambda: try_read(lock)) is True
    assert_free(lock, newcomer)


def test_waiting_writers_go_before_readers_that_queued_after_them(actors: Callable[[str], Actor]) -> None:
    lock = RWLock()
    first_reader, late_reader = actors("first reader"), actors("late reader")
    writers = [actors("writer 1"), actors("writer 2")]
    order: list[str] = []

    def enter_and_leave_write(name: str) -> bool:
        lock.acquire_write()
        order.append(name)
        lock.release_write()
        return True

    def enter_and_leave_read() -> bool:
        lock.acquire_read()
        order.append("late reader")
        lock.release_read()
        return True

    assert first_reader.run(lock.acquire_read) is True
    writes = [w.submit(partial(enter_and_leave_write, f"writer {i}")) for i, w in enumerate(writers, 1)]
    wait_until(lambda: lock._waiting_writers == 2, "both writers wait")
    late = late_reader.submit(enter_and_leave_read)
    wait_until(lambda: waiting_readers(lock) == 1, "the late reader waits")
    assert order == []

    first_reader.run(lock.release_read)
    assert [w.result(timeout=WAIT) for w in writes] == [True, True]
    assert late.result(timeout=WAIT) is True
    assert sorted(order[:2]) == ["writer 1", "writer 2"]
    assert order[2:] == ["late reader"]
    assert_free(lock, first_reader)


def test_a_stream_of_overlapping_readers_does_not_starve_a_writer() -> None:
    lock = RWLock()
    n_readers = 3
    state = threading.Condition()
    entries = [0]
    inside = [0]
    most_inside = [0]
    writer_in = threading.Event()
    readers_running = threading.Event()
    seen_by_writer: list[int] = []

    def someone_came_after(mine: int) -> bool:
        return entries[0] > mine or writer_in.is_set()

    def reader() -> None:
        while not writer_in.is_set():
            with lock.read(), state:
                entries[0] += 1
                inside[0] += 1
                most_inside[0] = max(most_inside[0], inside[0])
                mine = entries[0]
                if mine >= 300:
                    readers_running.set()
                state.notify_all()
                # Stay until another reader has come in after us, so the read lock is never free between
                # readers. Once a writer waits nobody new comes in; the short bound lets us leave then.
                state.wait_for(partial(someone_came_after, mine), timeout=0.05)
                inside[0] -= 1

    def writer() -> None:
        assert readers_running.wait(WAIT), "the readers never got going"
        with state:
            assert inside[0] >= 1  # readers hold the lock as the writer starts waiting
        assert lock.acquire_write(timeout=WAIT) is True, "the writer starved"
        with state:
            seen_by_writer.append(inside[0])
        writer_in.set()
        lock.release_write()

    run_threads([reader] * n_readers + [writer])
    assert writer_in.is_set()
    assert seen_by_writer == [0]
    assert most_inside[0] >= 2, "the readers never overlapped"
    assert entries[0] >= 300
    lock._check()
    assert try_write(lock) is True


# --------------------------------------------------------------------------- reentrancy


def test_read_inside_read(actors: Callable[[str], Actor]) -> None:
    lock = RWLock()
    other = actors("other")
    assert lock.acquire_read() is True
    assert lock.acquire_read(timeout=0) is True
    with lock.read():
        assert lock.held_read()
    lock.release_read()
    assert lock.held_read() is True  # one hold left
    assert lock.held_write() is False
    assert other.run(lambda: try_read(lock)) is True
    assert other.run(lambda: try_write(lock)) is False
    lock.release_read()
    assert lock.held_read() is False
    assert_free(lock, other)


def test_write_inside_write(actors: Callable[[str], Actor]) -> None:
    lock = RWLock()
    other = actors("other")
    assert lock.acquire_write() is True
    assert lock.acquire_write(timeout=0) is True
    with lock.write():
        assert lock.held_write()
    lock.release_write()
    assert lock.held_write() is True
    assert lock.held_read() is False
    assert other.run(lambda: try_read(lock)) is False
    assert other.run(lambda: try_write(lock)) is False
    lock.release_write()
    assert lock.held_write() is False
    assert_free(lock, other)


def test_read_inside_write(actors: Callable[[str], Actor]) -> None:
    lock = RWLock()
    other = actors("other")
    with lock.write():
        assert lock.held_read() is False
        with lock.read():
            assert lock.held_read() is True
            assert lock.held_write() is True
            assert other.run(lambda: try_read(lock)) is False
            with lock.read():
                pass
            assert lock.held_read() is True
        assert lock.held_read() is False
        assert lock.held_write() is True
        assert other.run(lambda: try_read(lock)) is False
    assert_free(lock, other)


def test_downgrade_keeps_the_read_hold(actors: Callable[[str], Actor]) -> None:
    lock = RWLock()
    other, writer = actors("other"), actors("writer")
    lock.acquire_write()
    lock.acquire_read()
    lock.acquire_read()
    assert other.run(lambda: try_read(lock)) is False
    lock.release_write()
    assert lock.held_write() is False
    assert lock.held_read() is True
    lock._check()

    assert other.run(lambda: try_read(lock)) is True  # readers may join a downgraded holder
    assert other.run(lambda: try_write(lock)) is False
    writing = writer.submit(lock.acquire_write)
    wait_until(lambda: lock._waiting_writers == 1, "the writer waits")
    with pytest.raises(LockError):
        lock.acquire_write(timeout=0)  # the downgraded holder is a plain reader now: no upgrade
    lock.release_read()
    assert lock.held_read() is True  # the second read hold is still there
    assert not writing.done()
    lock.release_read()
    assert writing.result(timeout=WAIT) is True
    writer.run(lock.release_write)
    assert_free(lock, other)


def test_downgrade_with_a_waiting_writer_hands_over_on_the_last_release(actors: Callable[[str], Actor]) -> None:
    lock = RWLock()
    writer, newcomer = actors("writer"), actors("newcomer")
    lock.acquire_write()
    writing = writer.submit(lock.acquire_write)
    wait_until(lambda: lock._waiting_writers == 1, "the writer waits")
    lock.acquire_read()
    lock.release_write()  # downgrade while a writer waits: we keep reading, the writer keeps waiting
    assert lock.held_read() is True
    assert not writing.done()
    assert newcomer.run(lambda: lock.acquire_read(timeout=0)) is False  # writer preference still applies
    lock.release_read()
    assert writing.result(timeout=WAIT) is True
    assert newcomer.run(lambda: lock.acquire_read(timeout=0)) is False
    writer.run(lock.release_write)
    assert_free(lock, newcomer)


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("depth", [1, 3])
def test_upgrade_is_refused_at_once_and_changes_nothing(actors: Callable[[str], Actor], depth: int) -> None:
    lock = RWLock()
    other = actors("other")
    for _ in range(depth):
        lock.acquire_read()
    for timeout in (None, 0, 5.0):
        with pytest.raises(LockError) as caught:
            lock.acquire_write(timeout=timeout)
        assert isinstance(caught.value, ResponseStoreError)
        assert isinstance(caught.value, RuntimeError)
    assert lock.held_read() is True
    assert lock.held_write() is False
    assert lock._waiting_writers == 0
    assert other.run(lambda: try_read(lock)) is True  # no phantom waiting writer blocks readers
    lock._check()
    for _ in range(depth - 1):
        lock.release_read()
    assert lock.held_read() is True
    lock.release_read()
    assert lock.held_read() is False
    assert lock.acquire_write(timeout=0) is True  # the lock still works
    lock.release_write()
    assert_free(lock, other)


def test_release_of_what_is_not_held_is_refused(actors: Callable[[str], Actor]) -> None:
    lock = RWLock()
    other = actors("other")
    with pytest.raises(LockError):
        lock.release_read()
    with pytest.raises(LockError):
        lock.release_write()
    lock._check()

    lock.acquire_read()
    with pytest.raises(LockError):
        lock.release_write()
    assert lock.held_read() is True
    lock.release_read()
    with pytest.raises(LockError):
        lock.release_read()  # one release too many

    lock.acquire_write()
    with pytest.raises(LockError):
        lock.release_read()  # the write hold is not a read hold
    assert lock.held_write() is True
    lock.release_write()
    with pytest.raises(LockError):
        lock.release_write()
    assert_free(lock, other)


def test_another_thread_cannot_release_our_holds(actors: Callable[[str], Actor]) -> None:
    lock = RWLock()
    other = actors("other")
    lock.acquire_read()
    with pytest.raises(LockError):
        other.run(lock.release_read)
    with pytest.raises(LockError):
        other.run(lock.release_write)
    assert lock.held_read() is True
    assert other.run(lambda: try_write(lock)) is False  # our read hold is intact
    lock.release_read()

    lock.acquire_write()
    with pytest.raises(LockError):
        other.run(lock.release_write)
    with pytest.raises(LockError):
        other.run(lock.release_read)
    assert lock.held_write() is True
    assert other.run(lambda: try_read(lock)) is False  # our write hold is intact
    lock.release_write()
    assert_free(lock, other)


# --------------------------------------------------------------------------- timeouts


def test_writer_times_out_while_another_thread_reads(actors: Callable[[str], Actor]) -> None:
    lock = RWLock()
    reader = actors("reader")
    reader.run(lock.acquire_read)
    assert lock.acquire_write(timeout=0.05) is False
    assert lock.acquire_write(timeout=0) is False
    assert lock.held_write() is False
    assert lock._waiting_writers == 0
    lock._check()
    assert lock.acquire_read(timeout=0) is True  # the writer that gave up no longer holds readers back
    lock.release_read()
    reader.run(lock.release_read)
    assert_free(lock, reader)


def test_reader_times_out_while_another_thread_writes(actors: Callable[[str], Actor]) -> None:
    lock = RWLock()
    writer = actors("writer")
    writer.run(lock.acquire_write)
    assert lock.acquire_read(timeout=0) is False
    assert lock.acquire_read(timeout=0.05) is False
    assert lock.acquire_write(timeout=0) is False
    assert lock.held_read() is False
    lock._check()
    writer.run(lock.release_write)
    assert_free(lock, writer)


def test_readers_queued_behind_a_writer_that_gives_up_proceed(actors: Callable[[str], Actor]) -> None:
    lock = RWLock()
    holder, writer, queued = actors("holder"), actors("writer"), actors("queued reader")
    holder.run(lock.acquire_read)
    exercised = False

    def writer_waits_or_done(call: Future[bool]) -> bool:
        return call.done() or lock._waiting_writers == 1

    def reader_waits_or_done(call: Future[bool]) -> bool:
        return call.done() or waiting_readers(lock) == 1

    # The queued reader must be waiting before the writer's timeout expires for the wake-up path to run;
    # retry with longer timeouts if this loaded machine was too slow for that.
    for writer_timeout in (0.5, 2.0, 8.0):
        writing = writer.submit(partial(lock.acquire_write, timeout=writer_timeout))
        wait_until(partial(writer_waits_or_done, writing), "the writer waits or gives up")
        # No timeout of its own: only a wake-up lets it in (a timed wait would re-check and hide a lost one).
        reading = queued.submit(lock.acquire_read)
        wait_until(partial(reader_waits_or_done, reading), "the reader queues")
        queued_in_time = not writing.done() and not reading.done()
        assert writing.result(timeout=WAIT) is False  # the holder never let go
        assert reading.result(timeout=WAIT) is True  # woken when the writer gave up, not stuck behind it
        queued.run(lock.release_read)
        lock._check()
        if queued_in_time:
            exercised = True
            break
    assert exercised, "the reader never queued behind the writer before it gave up"
    holder.run(lock.release_read)
    assert_free(lock, holder)


@pytest.mark.parametrize("timeout", [-1, -0.001, -math.inf])
def test_negative_timeout_is_refused(timeout: float, actors: Callable[[str], Actor]) -> None:
    lock = RWLock()
    with pytest.raises(InvalidArgument) as caught:
        lock.acquire_read(timeout=timeout)
    assert isinstance(caught.value, ResponseStoreError)
    assert isinstance(caught.value, ValueError)
    with pytest.raises(InvalidArgument):
        lock.acquire_write(timeout=timeout)
    assert_free(lock, actors("other"))


@pytest.mark.parametrize(
    "timeout",
    [
        pytest.param("1", id="str"),
        pytest.param(b"1", id="bytes"),
        pytest.param([1], id="list"),
        pytest.param(object(), id="object"),
        pytest.param(1j, id="complex"),
        pytest.param(math.nan, id="nan"),
        pytest.param(True, id="bool"),
    ],
)
def test_non_number_timeout_is_refused(timeout: Any, actors: Callable[[str], Actor]) -> None:
    lock = RWLock()
    other = actors("other")
    with pytest.raises(InvalidArgument):
        lock.acquire_read(timeout=timeout)
    assert lock.held_read() is False
    with pytest.raises(InvalidArgument):
        lock.acquire_write(timeout=timeout)
    assert lock.held_write() is False
    # Also while contended, where the timeout actually gets used.
    other.run(lock.acquire_write)
    with pytest.raises(InvalidArgument):
        lock.acquire_read(timeout=timeout)
    with pytest.raises(InvalidArgument):
        lock.acquire_write(timeout=timeout)
    other.run(lock.release_write)
    assert_free(lock, other)


@pytest.mark.parametrize("timeout", [math.inf, 1e300])
def test_huge_timeout_waits_or_is_refused_cleanly(timeout: float, actors: Callable[[str], Actor]) -> None:
    """An infinite (or absurdly long) timeout either means "wait" or is refused; never a stray built-in error."""
    lock = RWLock()
    holder, waiter = actors("holder"), actors("waiter")
    holder.run(lock.acquire_write)

    def waits_or_done(call: Future[str]) -> bool:
        return call.done() or lock._waiting_writers == 1 or waiting_readers(lock) == 1

    def acquire(how: str) -> str:
        try:
            ok = lock.acquire_read(timeout=timeout) if how == "read" else lock.acquire_write(timeout=timeout)
        except InvalidArgument:
            return "refused"
        assert ok is True
        if how == "read":
            lock.release_read()
        else:
            lock.release_write()
        return "acquired"

    for how in ("read", "write"):
        outcome = waiter.submit(partial(acquire, how))
        wait_until(
            partial(waits_or_done, outcome),
            "the waiter waits or is refused",
        )
        holder.run(lock.release_write)
        assert outcome.result(timeout=WAIT) in ("refused", "acquired")
        holder.run(lock.acquire_write)
    holder.run(lock.release_write)
    assert_free(lock, holder)


# --------------------------------------------------------------------------- one thread, random sequences

#: Each single-thread operation: the call, and how it changes the model (read holds, write depth) when allowed.
OPS: dict[str, tuple[Callable[[RWLock], bool | None], int, int]] = {
    "read": (lambda lock: lock.acquire_read(), 1, 0),
    "try read": (lambda lock: lock.acquire_read(timeout=0), 1, 0),
    "write": (lambda lock: lock.acquire_write(), 0, 1),
    "try write": (lambda lock: lock.acquire_write(timeout=0), 0, 1),
    "release read": (lambda lock: lock.release_read(), -1, 0),
    "release write": (lambda lock: lock.release_write(), 0, -1),
}


@given(st.lists(st.sampled_from(sorted(OPS)), max_size=40))
def test_reentrant_sequences_match_a_model_of_hold_counts(ops: list[str]) -> None:
    """Reads and write depth of one thread, as documented: no upgrade, reads survive a downgrade."""
    lock = RWLock()
    other = Actor("prober")
    try:
        reads = depth = 0  # the model
        for op in ops:
            call, read_change, write_change = OPS[op]
            if read_change > 0:
                allowed = True  # a thread may always read again, also under its own write lock
            elif write_change > 0:
                allowed = depth > 0 or reads == 0  # reentrant write, or a fresh write; never an upgrade
            elif read_change < 0:
                allowed = reads > 0
            else:
                allowed = depth > 0
            if allowed:
                assert call(lock) is (True if read_change + write_change > 0 else None)
                reads += read_change
                depth += write_change
            else:
                with pytest.raises(LockError):
                    call(lock)
            lock._check()
            assert lock.held_read() == (reads > 0)
            assert lock.held_write() == (depth > 0)
            assert other.run(lambda: try_read(lock)) == (depth == 0)
            assert other.run(lambda: try_write(lock)) == (depth == 0 and reads == 0)
        for _ in range(depth):
            lock.release_write()
        for _ in range(reads):
            lock.release_read()
        assert_free(lock, other)
    finally:
        other.stop()
