"""Timing helpers: samples of many calls each, taken round-robin across variants, summarized as median and spread.

A *sample* times one loop of ``n`` operations with ``time.perf_counter_ns`` and records nanoseconds per
operation. The garbage collector is disabled during each timed loop only (as ``timeit`` does) and re-enabled
right after, so a collection triggered by an earlier allocation does not land in one variant's sample by
chance. Variants of one measurement take their samples in turn (A, B, C, A, B, C, ...), so a slow spell of the
machine touches all of them alike instead of one.

On a shared machine another process may take the CPU in the middle of a timed loop; the wall time of that
sample then measures the neighbour. Each sample also reads the thread's CPU time (``time.thread_time_ns``): a
sample whose wall time exceeds its CPU time by more than 5 % was preempted and is retaken, up to three times
(samples shorter than 0.1 s). If it is still preempted, its CPU time stands in for its wall time (the loops
are single-threaded and never block, so CPU time is what the wall time would have been); the results count
such samples (``cpu_substituted``). Long samples (a full sort of 10^6 records) are the ones this protects: on
a loaded machine their wall time would otherwise inflate the baselines' figures.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Case", "Progress", "Settings", "measure_round_robin", "summarize", "timed"]


@dataclass(frozen=True)
class Settings:
    """How long and how often to measure; one instance per mode (smoke, quick, full)."""

    mode: str
    sizes: tuple[int, ...]
    sample_seconds: float  # the target duration of one timed loop
    repeats: int  # samples per variant and measurement
    slow_repeats: int  # samples when one operation alone takes longer than ``slow_op_seconds``
    slow_op_seconds: float
    mixed_threads: tuple[int, ...]
    mixed_ops: int  # operations per mixed run, split across the threads
    mixed_prefill: int
    mixed_repeats: int
    memory_records: int
    cap_cycles: int = 100_000  # create+complete cycles of the memory-at-cap workload (max_records=1000)
    input_items: int = 50
    http_seconds: float = 5.0  # the duration of one HTTP throughput sample (one load-generator process)
    http_repeats: int = 7  # HTTP throughput samples per server
    http_long_repeats: int = 15  # timed long replies per server
    http_long_words: int = 1_000  # the words of the long reply (the target is set at 1,000)
    asgi_streams: int = 1_000  # server-sent event streams open at once on serve --asgi (the target's number)
    asgi_websockets: int = 200  # WebSocket responses open at once beside them (the target's number)
    asgi_words: int = 50  # words of each streamed reply, at 10 a second: long enough for all to be open at once
    asgi_idle_probes: int = 100  # retrieves timed before the streams open (the figure under load is beside it)
    asgi_seconds: float = 5.0  # the duration of one ASGI-vs-WSGI throughput sample
    asgi_repeats: int = 7  # throughput samples per server
    ops: tuple[str, ...] | None = None  # the single operations the ops family times (None: all of them)

    def to_json(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in self.__dict__.items()}


SMOKE = Settings(
    mode="smoke",
    sizes=(200,),
    sample_seconds=0.0005,
    repeats=2,
    slow_repeats=2,
    slow_op_seconds=0.05,
    mixed_threads=(1, 2),
    mixed_ops=400,
    mixed_prefill=200,
    mixed_repeats=1,
    memory_records=200,
    cap_cycles=2_000,
    http_seconds=0.1,
    http_repeats=2,
    http_long_repeats=2,
    http_long_words=50,
    asgi_streams=4,
    asgi_websockets=2,
    asgi_words=5,
    asgi_idle_probes=5,
    asgi_seconds=0.1,
    asgi_repeats=2,
)
QUICK = Settings(
    mode="quick",
    sizes=(1_000, 10_000),
    sample_seconds=0.002,
    repeats=5,
    slow_repeats=3,
    slow_op_seconds=0.05,
    mixed_threads=(1, 2, 4, 8, 16),
    mixed_ops=2_000,
    mixed_prefill=1_000,
    mixed_repeats=1,
    memory_records=500,
    cap_cycles=4_000,
    http_seconds=1.0,
    http_repeats=3,
    http_long_repeats=3,
    asgi_streams=100,
    asgi_websockets=20,
    asgi_words=15,
    asgi_idle_probes=30,
    asgi_seconds=0.4,
    asgi_repeats=3,
)
FULL = Settings(
    mode="full",
    sizes=(1_000, 10_000, 100_000, 1_000_000),
    sample_seconds=0.005,
    repeats=15,
    slow_repeats=5,
    slow_op_seconds=0.2,
    mixed_threads=(1, 2, 4, 8, 16),
    mixed_ops=20_000,
    mixed_prefill=10_000,
    mixed_repeats=3,
    memory_records=5_000,
)
MODES = {settings.mode: settings for settings in (SMOKE, QUICK, FULL)}


class Progress:
    """Plain progress lines on stderr, each prefixed with the seconds since the run started."""

    def __init__(self, stream: Any = None, *, quiet: bool = False) -> None:
        self.start = time.perf_counter()
        self.stream = sys.stderr if stream is None else stream
        self.quiet = quiet

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"[{self.elapsed():7.1f}s] {message}", file=self.stream, flush=True)


#: A sample counts as preempted when the thread was off the CPU for more than this share of its wall time
#: (plus PREEMPT_SLACK_NS): another process ran in the middle of the timed loop.
PREEMPT_SHARE = 0.05
PREEMPT_SLACK_NS = 20_000
#: Preempted samples are retaken this many times, when one sample is shorter than RETRY_BELOW_NS.
RETRIES = 3
RETRY_BELOW_NS = 100_000_000


def timed(run: Callable[[], object]) -> tuple[int, int]:
    """Run ``run`` once with the garbage collector disabled; return (wall, thread CPU) nanoseconds."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        cpu_start = time.thread_time_ns()
        run()
        cpu = time.thread_time_ns() - cpu_start
        wall = time.perf_counter_ns() - start
        return wall, cpu
    finally:
        if enabled:
            gc.enable()


def preempted(wall: int, cpu: int) -> bool:
    """Whether a single-threaded sample lost the CPU to another process for a noticeable time."""
    return wall - cpu > PREEMPT_SHARE * wall + PREEMPT_SLACK_NS


@dataclass
class Case:
    """One variant of one measurement.

    ``make_run(n)`` returns a callable doing ``n`` operations (built untimed: preparing records to complete,
    say); ``cleanup()`` runs untimed after each sample (deleting what a ``create`` sample created, say).
    ``max_n`` bounds the operations per sample (for operations that change the store's size).
    """

    make_run: Callable[[int], Callable[[], object]]
    cleanup: Callable[[], object] | None = None
    max_n: int | None = None
    n: int = 0
    samples: list[float] = field(default_factory=list)
    cpu_substituted: int = 0  # samples where CPU time stood in for a preempted wall time
    retaken: int = 0

    def _once(self, n: int) -> tuple[int, int]:
        run = self.make_run(n)
        try:
            return timed(run)
        finally:
            if self.cleanup is not None:
                self.cleanup()

    def sample(self, n: int) -> float:
        """Nanoseconds per operation over ``n`` operations (wall clock; see the module docstring)."""
        wall, cpu = self._once(n)
        attempts = 0
        while preempted(wall, cpu) and wall < RETRY_BELOW_NS and attempts < RETRIES:
            attempts += 1
            self.retaken += 1
            wall, cpu = self._once(n)
        if preempted(wall, cpu):
            self.cpu_substituted += 1
            return cpu / n
        return wall / n


def _calibrate(case: Case, settings: Settings) -> float:
    """Choose ``case.n`` so one sample lasts about ``settings.sample_seconds``; return seconds per operation."""
    target = settings.sample_seconds * 1e9
    limit = case.max_n if case.max_n is not None else 1 << 30
    n = 1
    while True:
        per_op = case.sample(n)  # also the warm-up
        if per_op * n >= target / 4 or n >= limit:
            break
        n = min(limit, n * 8 if per_op * n < target / 64 else n * 2)
    case.n = max(1, min(limit, round(target / max(per_op, 1.0))))
    case.retaken = case.cpu_substituted = 0
    return per_op / 1e9


def measure_round_robin(cases: Mapping[str, Case], settings: Settings) -> dict[str, dict[str, Any]]:
    """Calibrate every case, then take samples round-robin; return each case's summary by name."""
    slow = False
    for case in cases.values():
        if _calibrate(case, settings) > settings.slow_op_seconds:
            slow = True
    repeats = settings.slow_repeats if slow else settings.repeats
    for _ in range(repeats):
        for case in cases.values():
            case.samples.append(case.sample(case.n))
    return {
        name: {
            **summarize(case.samples),
            "ops_per_sample": case.n,
            "retaken": case.retaken,
            "cpu_substituted": case.cpu_substituted,
        }
        for name, case in cases.items()
    }


def summarize(samples: list[float]) -> dict[str, Any]:
    """Median, quartiles, min and max of per-operation times (ns), and how many samples there were."""
    ordered = sorted(samples)
    if len(ordered) >= 2:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = ordered[0]
    return {
        "median_ns": statistics.median(ordered),
        "q1_ns": q1,
        "q3_ns": q3,
        "min_ns": ordered[0],
        "max_ns": ordered[-1],
        "samples": len(ordered),
    }
