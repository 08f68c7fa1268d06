"""Mixed workload: 90 % get, 5 % create, 5 % complete, from 1 to 16 threads.

A run splits a fixed number of operations evenly across the threads. Each thread works through its own plan:
blocks of 20 operations, 18 ``get`` of random prefilled responses, one ``create`` (in the first half of the
block) and one ``complete`` of that thread's response from the same block (in the second half). Threads start
together on a barrier; throughput is operations per second of wall time from the barrier to the last join, and
every operation's latency is timed on its own (``perf_counter_ns`` around the call) for the percentiles.

responsestore runs with its default TTL (every ``get`` reads the clock) and a capacity bound high enough that no
run evicts a prefilled response (the default 10 000, or ten times the prefill if that is more); stores are
prefilled with completed responses; each variant's store is built once and reused by every run. The garbage collector is
disabled during each run.
"""

from __future__ import annotations

import gc
import random
import statistics
import threading
import time
from typing import Any

from responsestore import ResponseStore
from responsestore._retention import DEFAULT_MAX_RECORDS

from . import baselines
from ._timing import Progress, Settings

NAME = "mixed"
TITLE = "Mixed workload (90 % get, 5 % create, 5 % complete)"

MODEL = "gpt-4.1"
OUTPUT = ({"role": "assistant", "content": "Done."},)
USAGE = {"input_tokens": 9, "output_tokens": 2}
BLOCK = 20
GET, CREATE, COMPLETE = 0, 1, 2
WAIT = 120.0  # seconds any barrier or join may take before the run counts as hung


def _id_of(created: Any) -> str:
    if isinstance(created, dict):
        created_id: str = created["id"]
        return created_id
    record_id: str = created.id
    return record_id


def _plan(rng: random.Random, operations: int, keys: list[str]) -> list[tuple[int, str]]:
    plan: list[tuple[int, str]] = []
    half = BLOCK // 2
    while len(plan) < operations:
        block: list[tuple[int, str]] = [(GET, rng.choice(keys)) for _ in range(BLOCK - 2)]
        block.insert(rng.randrange(half), (CREATE, ""))
        block.insert(rng.randrange(half, BLOCK), (COMPLETE, ""))
        plan.extend(block)
    return plan[:operations]


def store_capacity(settings: Settings) -> int:
    """The ``max_records`` responsestore runs with here: the default, or ten times the prefill if that is more."""
    return max(DEFAULT_MAX_RECORDS, 10 * settings.mixed_prefill)


def _stores(settings: Settings, progress: Progress) -> dict[str, Any]:
    stores: dict[str, Any] = {
        "responsestore": ResponseStore(max_records=store_capacity(settings)),
        "seed-port": baselines.SeedPortStore(),
    }
    missing = baselines.missing_dependencies()
    for cls, needs in baselines.DICT_VARIANTS:
        if needs is not None and needs in missing:
            progress(f"  mixed: skipping {cls.name}: {missing[needs]}")
            continue
        stores[cls.name] = cls()
    return stores


def _prefill(store: Any, count: int) -> list[str]:
    keys = []
    for i in range(count):
        key = _id_of(store.create(MODEL, f"prefilled question {i}"))
        store.complete(key, OUTPUT, usage=USAGE)
        keys.append(key)
    return keys


def _one_run(store: Any, threads: int, plans: list[list[tuple[int, str]]]) -> dict[str, Any]:
    latencies: list[list[int]] = [[] for _ in range(threads)]
    get_latencies: list[list[int]] = [[] for _ in range(threads)]
    failures: list[BaseException] = []
    barrier = threading.Barrier(threads + 1)

    def worker(index: int) -> None:
        get, create, complete = store.get, store.create, store.complete
        clock = time.perf_counter_ns
        plan = plans[index]
        lat = latencies[index]
        get_lat = get_latencies[index]
        pending = ""
        try:
            barrier.wait(WAIT)
            for kind, key in plan:
                if kind == GET:
                    start = clock()
                    get(key)
                    elapsed = clock() - start
                    get_lat.append(elapsed)
                elif kind == CREATE:
                    start = clock()
                    created = create(MODEL, "a new question")
                    elapsed = clock() - start
                    pending = _id_of(created)
                else:
                    start = clock()
                    complete(pending, OUTPUT, usage=USAGE)
                    elapsed = clock() - start
                lat.append(elapsed)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)

    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for thread in workers:
        thread.start()
    enabled = gc.isenabled()
    gc.disable()
    try:
        barrier.wait(WAIT)
        start = time.perf_counter_ns()
        for thread in workers:
            thread.join(WAIT)
        wall = time.perf_counter_ns() - start
    finally:
        if enabled:
            gc.enable()
    if any(thread.is_alive() for thread in workers):
        raise RuntimeError(f"a mixed-workload thread did not finish within {WAIT} s")
    if failures:
        raise RuntimeError(f"a mixed-workload thread failed: {failures[0]!r}") from failures[0]
    every = sorted(x for lat in latencies for x in lat)
    gets = sorted(x for lat in get_latencies for x in lat)
    return {
        "operations": len(every),
        "throughput": len(every) / (wall / 1e9),
        "p50_us": _percentile(every, 50) / 1e3,
        "p99_us": _percentile(every, 99) / 1e3,
        "get_p99_us": _percentile(gets, 99) / 1e3,
        "max_us": every[-1] / 1e3,
    }


def _percentile(ordered: list[int], percent: float) -> float:
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(percent / 100 * len(ordered)) - 1))
    return float(ordered[index])


def run(settings: Settings, progress: Progress) -> dict[str, Any]:
    stores = _stores(settings, progress)
    keys: dict[str, list[str]] = {}
    for name, store in stores.items():
        progress(f"mixed: prefilling {name} with {settings.mixed_prefill:,} completed responses")
        keys[name] = _prefill(store, settings.mixed_prefill)
    results: list[dict[str, Any]] = []
    rng = random.Random(16)
    for threads in settings.mixed_threads:
        per_thread = max(BLOCK, settings.mixed_ops // threads)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in stores}
        for _ in range(settings.mixed_repeats):
            for name, store in stores.items():
                plans = [_plan(rng, per_thread, keys[name]) for _ in range(threads)]
                runs[name].append(_one_run(store, threads, plans))
        for name, samples in runs.items():
            throughputs = [s["throughput"] for s in samples]
            results.append(
                {
                    "variant": name,
                    "threads": threads,
                    "operations": samples[0]["operations"],
                    "runs": len(samples),
                    "throughput_median": statistics.median(throughputs),
                    "throughput_min": min(throughputs),
                    "throughput_max": max(throughputs),
                    "p50_us": statistics.median(s["p50_us"] for s in samples),
                    "p99_us": statistics.median(s["p99_us"] for s in samples),
                    "p99_us_min": min(s["p99_us"] for s in samples),
                    "p99_us_max": max(s["p99_us"] for s in samples),
                    "get_p99_us": statistics.median(s["get_p99_us"] for s in samples),
                }
            )
        line = ", ".join(f"{r['variant']} {r['throughput_median']:,.0f}/s" for r in results[-len(runs) :])
        progress(f"mixed @ {threads} threads: {line}")
    return {
        "threads": list(settings.mixed_threads),
        "operations_per_run": settings.mixed_ops,
        "prefill": settings.mixed_prefill,
        "results": results,
        "notes": [
            "bare-dict takes no lock: a floor, not a thread-safe design.",
            "p99 is over every operation of a run (creates and completes included); get_p99 over gets only; "
            "each is the median over the runs.",
        ],
    }
