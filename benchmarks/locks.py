"""Uncontended lock cost: one acquire and one release, by one thread, for reading and for writing.

Each lock is measured in two forms: its acquire/release methods called directly (bound methods fetched once),
and the ``with`` form its documentation shows. ``threading.Lock`` and ``RLock`` have one mode; they appear in
both tables as the reference.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from itertools import repeat
from typing import Any

from responsestore import RWLock

from . import baselines
from ._timing import Case, Progress, Settings, measure_round_robin

NAME = "locks"
TITLE = "Uncontended lock acquire + release"


def _pair(acquire: Callable[[], object], release: Callable[[], object]) -> Case:
    def make(n: int) -> Callable[[], object]:
        def run() -> None:
            for _ in repeat(None, n):
                acquire()
                release()

        return run

    return Case(make)


def _with(context: Callable[[], Any]) -> Case:
    def make(n: int) -> Callable[[], object]:
        def run() -> None:
            for _ in repeat(None, n):
                with context():
                    pass

        return run

    return Case(make)


def _with_object(lock: Any) -> Case:
    def make(n: int) -> Callable[[], object]:
        def run() -> None:
            for _ in repeat(None, n):
                with lock:
                    pass

        return run

    return Case(make)


def _cases(mode: str, missing: dict[str, str]) -> dict[tuple[str, str], Case]:
    """(lock, form) -> case, for ``mode`` "read" or "write"."""
    cases: dict[tuple[str, str], Case] = {}
    plain = threading.Lock()
    cases["threading.Lock", "methods"] = _pair(plain.acquire, plain.release)
    cases["threading.Lock", "with"] = _with_object(plain)
    reentrant = threading.RLock()
    cases["threading.RLock", "methods"] = _pair(reentrant.acquire, reentrant.release)
    cases["threading.RLock", "with"] = _with_object(reentrant)
    ours = RWLock()
    if mode == "read":
        cases["responsestore.RWLock", "methods"] = _pair(ours.acquire_read, ours.release_read)
        cases["responsestore.RWLock", "with"] = _with(ours.read)
    else:
        cases["responsestore.RWLock", "methods"] = _pair(ours.acquire_write, ours.release_write)
        cases["responsestore.RWLock", "with"] = _with(ours.write)
    if "readerwriterlock" not in missing:
        from readerwriterlock import rwlock  # noqa: PLC0415 - optional

        fair = rwlock.RWLockFair()
        generate = fair.gen_rlock if mode == "read" else fair.gen_wlock
        reused = generate()
        cases["readerwriterlock.RWLockFair", "methods"] = _pair(reused.acquire, reused.release)
        cases["readerwriterlock.RWLockFair", "with"] = _with(generate)
    if "fasteners" not in missing:
        import fasteners  # noqa: PLC0415 - optional

        lock = fasteners.ReaderWriterLock()
        if mode == "read":
            cases["fasteners.ReaderWriterLock", "methods"] = _pair(lock.acquire_read_lock, lock.release_read_lock)
            cases["fasteners.ReaderWriterLock", "with"] = _with(lock.read_lock)
        else:
            cases["fasteners.ReaderWriterLock", "methods"] = _pair(lock.acquire_write_lock, lock.release_write_lock)
            cases["fasteners.ReaderWriterLock", "with"] = _with(lock.write_lock)
    return cases


FORMS = {
    "methods": "acquire() then release(), bound methods fetched once (readerwriterlock: one reader/writer "
    "object reused; fasteners: acquire_read_lock/release_read_lock)",
    "with": "the with-statement form (RWLock.read()/write(); readerwriterlock: `with lock.gen_rlock():`, a new "
    "reader per use as its README shows; fasteners: `with lock.read_lock():`)",
}


def run(settings: Settings, progress: Progress) -> dict[str, Any]:
    missing = baselines.missing_dependencies()
    for reason in missing.values():
        progress(f"  locks: skipping {reason}")
    results: list[dict[str, Any]] = []
    for mode in ("read", "write"):
        cases = _cases(mode, missing)
        named = {f"{lock}|{form}": case for (lock, form), case in cases.items()}
        summaries = measure_round_robin(named, settings)
        for key, summary in summaries.items():
            lock, form = key.split("|")
            results.append({"lock": lock, "mode": mode, "form": form, **summary})
            progress(f"locks: {mode:5} {lock} ({form}): {summary['median_ns']:.0f} ns")
    return {"forms": FORMS, "results": results, "skipped": sorted(missing.values())}
