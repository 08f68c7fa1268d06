"""Memory per stored record, and memory of a capped store that has turned over many times.

The small response: ``create(model, [user message])`` then ``complete(id, [assistant message], usage={...})``,
with a 100-character question and reply and ids on the items as OpenAI sends them, in a store at its defaults
(30-day TTL, the 10 000 cap or the record count if that is more); the store's maps, ordering index, heaps and
per-record entry are all included.

The plain-JSON representation is what a server that keeps dicts would hold for the same response: its
``to_openai()`` dict plus ``"input"``, the list of its input items, stored in a dict by id. It is built by
parsing each response's JSON text, then sharing dict keys and constant strings ("response", "completed", the
model name, ...) the way dicts built in code share them, so that neither side pays for a per-record copy of a
constant and both pay for per-record strings (ids, texts).

The vllm-like representation is the ``openai`` SDK's pydantic ``Response`` of each response (what vLLM keeps), in
a dict by id (its input items, which vLLM keeps apart, are not counted).

A long response: a completed 1,000-word answer to a short question, streamed through the WSGI app's run layer,
its event log included (about 1,000 events), against the bytes of its JSON (``to_openai()``, compact).

At the cap: a store with ``max_records=1000`` runs ``cap_cycles`` create+complete cycles (100 000 in full mode),
traced by ``tracemalloc`` from before the store is created, so what the turned-over records left behind counts
as growth; the figure is its memory after all cycles and after half of them, against its memory when it first
held 1000 records (what its live records need in a fresh store).

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

from . import baselines
from ._timing import Progress, Settings

NAME = "memory"
TITLE = "Memory per stored record"

MODEL = "gpt-4.1"
KINDS = {
    "responsestore": "ResponseStore record, index and bookkeeping included",
    "plain-json-dict": "to_openai() dict plus input items, in a dict by id",
    "vllm-like": "openai SDK Response (pydantic) per response, in a dict by id",
}
CAP = 1000
TEXT = "x" * 100
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


def _cycle(store: Any, i: int) -> None:
    question = f"{i:08d}{TEXT[8:]}"
    record = store.create(MODEL, [{"id": f"msg_in{i:020d}", "role": "user", "content": question}])
    reply = [{"type": "output_text", "text": f"{i:08d}{TEXT[8:]}", "annotations": []}]
    store.complete(
        record.id,
        [{"id": f"msg_out{i:020d}", "type": "message", "role": "assistant", "status": "completed", "content": reply}],
        usage={"input_tokens": 12, "output_tokens": 8},
    )


def _fill_store(store: Any, start: int, count: int) -> None:
    for i in range(start, start + count):
        _cycle(store, i)


def _probe(kind: str, count: int, method: str) -> float:
    """Bytes per record of ``count`` records of ``kind`` (in this process, which should be fresh)."""
    from responsestore import ResponseStore  # noqa: PLC0415 - the probe imports only what it measures
    from responsestore._json import thaw  # noqa: PLC0415
    from responsestore._retention import DEFAULT_MAX_RECORDS  # noqa: PLC0415

    warm = ResponseStore(max_records=None)
    _fill_store(warm, 0, 50)  # first-use allocations (caches, interned names) happen here, not below
    work: Callable[[], object]
    if kind == "responsestore":
        store = ResponseStore(max_records=max(DEFAULT_MAX_RECORDS, count))

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

    elif kind == "vllm-like":
        from openai.types.responses import Response  # noqa: PLC0415 - an optional benchmark dependency

        source = ResponseStore(max_records=None)
        _fill_store(source, 0, count)
        Response.model_validate(_all_records(source)[0].to_openai())  # first-use allocations
        texts = [json.dumps(record.to_openai()) for record in _all_records(source)]
        models: dict[str, Any] = {}

        def work() -> object:
            for text in texts:
                response = Response.model_validate_json(text)
                models[response.id] = response
            return models

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


def _probe_at_cap(cycles: int) -> dict[str, float]:
    """Traced bytes of a capped store: when it first holds 1000 records, after half the cycles, after all."""
    from responsestore import ResponseStore  # noqa: PLC0415 - the probe imports only what it measures

    warm = ResponseStore(max_records=10)
    _fill_store(warm, 0, 50)  # first-use allocations happen here, not below
    del warm
    marks: dict[int, list[str]] = {}
    for at, name in ((CAP, "fresh"), (cycles // 2, "half"), (cycles, "after")):
        marks.setdefault(at, []).append(name)
    found: dict[str, float] = {}
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    store = ResponseStore(max_records=CAP)
    for i in range(cycles):
        _cycle(store, i)
        if i + 1 in marks:
            gc.collect()
            for name in marks[i + 1]:
                found[name] = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(store) == CAP
    return found


LONG_WORDS = 1000


def _probe_long(count: int) -> dict[str, float]:
    """Traced bytes per completed 1,000-word response, its event log included, and the bytes of its JSON.

    The responses are streamed through the WSGI app's run layer (``stream: true``, so their events are logged in
    batches as they would be for a live client) on a memory store at its defaults.
    """
    import io  # noqa: PLC0415 - the probe imports only what it measures
    from wsgiref.util import setup_testing_defaults  # noqa: PLC0415

    from responsestore import ResponseStore  # noqa: PLC0415
    from responsestore.wsgi import make_app  # noqa: PLC0415

    words = [f"word{i % 97}" if i == 0 else f" word{i % 97}" for i in range(LONG_WORDS)]

    def generate(conversation: Any, request: Any) -> Any:  # a model with a 1,000-word answer to a short question
        yield from words

    store = ResponseStore()
    app = make_app(store, generate=generate)

    def respond() -> str:
        data = json.dumps({"model": MODEL, "input": "Write a thousand words.", "stream": True}).encode()
        environ: dict[str, Any] = {"REQUEST_METHOD": "POST", "PATH_INFO": "/v1/responses"}
        setup_testing_defaults(environ)
        environ.update({"wsgi.input": io.BytesIO(data), "CONTENT_LENGTH": str(len(data))})
        first = b""
        body = app(environ, lambda status, headers: None)
        try:
            for chunk in body:
                first = first or chunk
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()  # as a WSGI server does: it frees the stream's slot
        return str(json.loads(first.split(b"data: ", 1)[1])["response"]["id"])

    for _ in range(20):
        store.delete(respond())  # first-use allocations (pools, caches) happen here, not below
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    ids = [respond() for _ in range(count)]
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    app.close()
    json_bytes = sum(len(json.dumps(store.get(id).to_openai(), separators=(",", ":")).encode()) for id in ids)
    events = sum(len(store.events(id)) for id in ids)
    return {"bytes": (after - before) / count, "json_bytes": json_bytes / count, "events": events / count}


def _all_records(store: Any) -> list[Any]:
    records = []
    after = None
    while True:
        page = store.list(limit=100, after=after, order="asc")
        records.extend(page.data)
        if not page.has_more:
            return records
        after = page.last_id


def _measure(kind: str, count: int, method: str) -> str:
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
    return output.stdout.strip().splitlines()[-1]


def run(settings: Settings, progress: Progress) -> dict[str, Any]:
    count = settings.memory_records
    results = []
    missing = baselines.missing_dependencies()
    for kind, description in KINDS.items():
        if kind == "vllm-like" and "openai" in missing:
            progress(f"memory: skipping {kind}: {missing['openai']}")
            continue
        start = time.perf_counter()
        traced = float(_measure(kind, count, "tracemalloc"))
        rss = float(_measure(kind, count * RSS_FACTOR, "rss"))
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
    start = time.perf_counter()
    long_count = max(10, count // 100)
    long = json.loads(_measure("long", long_count, "tracemalloc"))
    progress(
        f"memory: a completed {LONG_WORDS:,}-word response: {long['bytes']:,.0f} B with its "
        f"{long['events']:,.0f} events, its JSON {long['json_bytes']:,.0f} B [{time.perf_counter() - start:.1f} s]"
    )
    start = time.perf_counter()
    at_cap = json.loads(_measure("at-cap", settings.cap_cycles, "tracemalloc"))
    progress(
        f"memory: at max_records={CAP:,}: {at_cap['fresh'] / 1e6:.2f} MB fresh, {at_cap['half'] / 1e6:.2f} MB after "
        f"{settings.cap_cycles // 2:,} cycles, {at_cap['after'] / 1e6:.2f} MB after {settings.cap_cycles:,} "
        f"[{time.perf_counter() - start:.1f} s]"
    )
    return {
        "records_tracemalloc": count,
        "records_rss": count * RSS_FACTOR,
        "results": results,
        "at_cap": {"max_records": CAP, "cycles": settings.cap_cycles, "bytes": at_cap},
        "long_response": {"words": LONG_WORDS, "responses": long_count, **long},
    }


if __name__ == "__main__":
    if sys.argv[1] == "at-cap":
        print(json.dumps(_probe_at_cap(int(sys.argv[2]))))
    elif sys.argv[1] == "long":
        print(json.dumps(_probe_long(int(sys.argv[2]))))
    else:
        print(_probe(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
