"""Memory per stored record: a small completed response in a ResponseStore, versus the same response as plain JSON.

The small response: ``create(model, "Hello, this is question i.")`` then ``complete(id, [assistant message],
usage={...})``, in a store with the default TTL (so the expiry heap is counted) and no capacity bound; the
store's map, ordering index, heaps and per-record entry are all included.

The plain-JSON representation is what a server that keeps dicts would hold for the same response: its
``to_openai()`` dict plus ``"input"``, the list of its input items, stored in a dict by id. It is built by
parsing each response's JSON text, then sharing dict keys and constant strings ("response", "completed", the
model name, ...) the way dicts built in code share them, so that neither side pays for a per-record copy of a
constant and both pay for per-record strings (ids, texts).

Each figure is measured in a fresh interpreter (``python -m benchmarks.memory KIND COUNT METHOD``):
``tracemalloc`` counts the bytes allocated and still alive after storing ``COUNT`` records, divided by
``COUNT``; ``rss`` is the growth of the resident set size over the same work (without tracemalloc, whose own
bookkeeping would inflate it), divided by ``COUNT``. RSS includes allocator slack and page granularity.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._timing import Progress, Settings

NAME = "memory"
TITLE = "Memory per stored record"

MODEL = "gpt-4.1"
KINDS = {
    "responsestore": "ResponseStore record, index and bookkeeping included",
    "plain-json-dict": "to_openai() dict plus input items, in a dict by id",
}
RSS_FACTOR = 4  # RSS needs more records than tracemalloc to rise well above page and arena granularity
_CONSTANTS = {
    s: s
    for s in (
        "response",
        "completed",
        "in_progress",
        "message",
        "user",
        "assistant",
        "input_text",
        "output_text",
        "auto",
        MODEL,
    )
}


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def _share(value: Any) -> Any:
    if isinstance(value, dict):
        return {sys.intern(key): _share(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_share(item) for item in value]
    if isinstance(value, str):
        return _CONSTANTS.get(value, value)
    return value


def _fill_store(store: Any, start: int, count: int) -> None:
    for i in range(start, start + count):
        record = store.create(MODEL, f"Hello, this is question {i}.")
        store.complete(
            record.id,
            [{"role": "assistant", "content": f"Hello! This is answer {i}."}],
            usage={"input_tokens": 12, "output_tokens": 8},
        )


def _probe(kind: str, count: int, method: str) -> float:
    """Bytes per record of ``count`` records of ``kind`` (in this process, which should be fresh)."""
    from responsestore import ResponseStore  # noqa: PLC0415 - the probe imports only what it measures
    from responsestore._json import thaw  # noqa: PLC0415

    warm = ResponseStore(max_records=None)
    _fill_store(warm, 0, 50)  # first-use allocations (caches, interned names) happen here, not below
    work: Callable[[], object]
    if kind == "responsestore":
        store = ResponseStore(max_records=None)

        def work() -> object:
            _fill_store(store, 0, count)
            return store

    elif kind == "plain-json-dict":
        source = ResponseStore(max_records=None)
        _fill_store(source, 0, count)
        texts = [json.dumps({**record.to_openai(), "input": thaw(record.input)}) for record in _all_records(source)]
        responses: dict[str, dict[str, Any]] = {}

        def work() -> object:
            for text in texts:
                response = _share(json.loads(text))
                responses[response["id"]] = response
            return responses

    else:
        raise SystemExit(f"unknown kind {kind!r}")
    gc.collect()
    if method == "tracemalloc":
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        kept = work()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
    else:
        before = _rss_bytes()
        kept = work()
        gc.collect()
        after = _rss_bytes()
    assert len(kept) == count, (kind, len(kept), count)  # type: ignore[arg-type]
    return (after - before) / count


def _all_records(store: Any) -> list[Any]:
    records = []
    after = None
    while True:
        page = store.list(limit=100, after=after, order="asc")
        records.extend(page.data)
        if not page.has_more:
            return records
        after = page.last_id


def _measure(kind: str, count: int, method: str) -> float:
    root = Path(__file__).resolve().parent.parent
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", kind, str(count), method],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if output.returncode != 0:
        raise RuntimeError(f"memory probe {kind} {method} failed:\n{output.stderr}")
    return float(output.stdout.strip().splitlines()[-1])


def run(settings: Settings, progress: Progress) -> dict[str, Any]:
    count = settings.memory_records
    results = []
    for kind, description in KINDS.items():
        start = time.perf_counter()
        traced = _measure(kind, count, "tracemalloc")
        rss = _measure(kind, count * RSS_FACTOR, "rss")
        results.append(
            {
                "representation": kind,
                "description": description,
                "tracemalloc_bytes_per_record": traced,
                "rss_bytes_per_record": rss,
            }
        )
        progress(
            f"memory: {kind}: {traced:,.0f} B/record (tracemalloc), {rss:,.0f} B/record (RSS) "
            f"[{time.perf_counter() - start:.1f} s]"
        )
    return {
        "records_tracemalloc": count,
        "records_rss": count * RSS_FACTOR,
        "results": results,
    }


if __name__ == "__main__":
    print(_probe(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
