"""The deferred recency every built-in backend keeps (:class:`responsestore.backend.TouchLog`)."""

from __future__ import annotations

import threading

import pytest

from responsestore.backend import TOUCH_LOG, TouchLog


def test_marks_come_back_oldest_first_and_the_log_is_empty_after() -> None:
    log: TouchLog[int] = TouchLog()
    assert not log
    log.mark(1)
    log.mark_all([2, 3])
    assert len(log) == 3
    assert log.take() == [1, 2, 3]
    assert not log
    assert log.take() == []


def test_given_back_marks_go_ahead_of_those_made_since() -> None:
    log: TouchLog[str] = TouchLog()
    log.mark_all(["a", "b"])
    taken = log.take()
    log.mark("c")  # a read while the write that took "a" and "b" failed
    log.give_back(taken)
    assert log.take() == ["a", "b", "c"]


def test_the_log_forgets_its_oldest_marks_past_its_bound() -> None:
    log: TouchLog[int] = TouchLog(bound=3)
    log.mark_all(range(5))
    log._check()
    assert log.take() == [2, 3, 4]
    assert TouchLog().bound == TOUCH_LOG


def test_clear_forgets_every_mark() -> None:
    log: TouchLog[int] = TouchLog()
    log.mark_all(range(10))
    log.clear()
    assert log.take() == []


@pytest.mark.usefixtures("fast_switching")
@pytest.mark.parametrize("writers", [1, 2])
def test_concurrent_readers_and_writers_lose_no_mark_and_take_none_twice(writers: int) -> None:
    """Readers mark without a lock while writers take and sometimes give back: every mark is taken exactly once.

    With one writer (a store whose writes take turns) the marks of each reader are also written in their order.
    """
    log: TouchLog[tuple[int, int]] = TouchLog()
    readers, per_reader = 4, 5_000
    written: list[list[tuple[int, int]]] = [[] for _ in range(writers)]
    done = threading.Event()
    start = threading.Barrier(readers + writers)

    def read(reader: int) -> None:
        start.wait()
        for i in range(per_reader):
            log.mark((reader, i))

    def write(writer: int) -> None:
        start.wait()
        failed = False
        while not done.is_set() or log:
            taken = log.take()
            if failed:  # every other write "fails" and gives its marks back
                log.give_back(taken)
            else:
                written[writer].extend(taken)
            failed = not failed

    threads = [threading.Thread(target=read, args=(r,)) for r in range(readers)]
    threads += [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads[:readers]:
        thread.join()
    done.set()
    for thread in threads[readers:]:
        thread.join()
    everything = [mark for marks in written for mark in marks]
    assert len(everything) == readers * per_reader  # none lost, none taken twice
    assert set(everything) == {(r, i) for r in range(readers) for i in range(per_reader)}
    if writers == 1:
        for reader in range(readers):
            marks = written[0]
            mine = [i for r, i in marks if r == reader]
            assert mine == list(range(per_reader))
