"""Single-operation cost at growing store sizes: create, get, complete, list pages, input items, conversations.

Every variant holds the same content at each size: a conversation chain of 100 completed responses (one user
message and one assistant message each), one completed response with 50 input items, and then plain responses
(``create(model, "question i")``, left ``in_progress``) up to the size. Stores grow from one size to the next
(built once, reused). The bulk responses are not completed because completing a million records through the
public API doubles the build time and changes none of the measured operations: ``get``, ``list`` and cursors do
not depend on the status.

The four dict variants (server-dict, its two reader/writer-lock versions and the bare-dict floor) wrap one and
the same dict. ``create`` and ``complete`` samples delete what they added afterwards (untimed), so sizes stay put.

responsestore runs at its defaults: the 30-day TTL (so every ``get`` reads the clock) and a capacity bound, set
to the default 10 000 or twice the largest size, whichever is larger, so that it never evicts the measured data
(the bound's value changes no operation's cost). ``get`` reads every stored record in a random order that is the
same for every variant, not a few hot keys. The vllm-like variant (``openai`` ``Response`` objects under an
``asyncio.Lock``) takes part in ``get`` only.
"""

from __future__ import annotations

import gc
import random
from collections.abc import Callable
from itertools import repeat
from typing import Any

from responsestore import ResponseStore
from responsestore._retention import DEFAULT_MAX_RECORDS

from . import baselines
from ._timing import Case, Progress, Settings, measure_round_robin

NAME = "ops"
TITLE = "Single-operation cost"

MODEL = "gpt-4.1"
OUTPUT = ({"role": "assistant", "content": "The answer is 42."},)
USAGE = {"input_tokens": 12, "output_tokens": 6}
PAGE = 20
CHAIN = 100  # responses in the conversation chain

#: Operation names, in table order, with what each measures.
OPS: dict[str, str] = {
    "create": "create(model, 'question') of a new response",
    "get": "get(id) of a random stored response",
    "complete": "complete(id, [assistant message], usage=...) of an in-progress response",
    "list_first_page": "list(limit=20): the newest 20 responses",
    "list_page_at_depth": "list(limit=20, after=id) with the cursor half-way down the list",
    "input_items_page": "input_items(id, limit=20) of a response with 50 input items",
    "conversation_10": "conversation(id) of the 10th response of a chain (20 items)",
    "conversation_100": "conversation(id) of the 100th response of a chain (200 items)",
}


def _id_of(created: Any) -> str:
    if isinstance(created, dict):
        created_id: str = created["id"]
        return created_id
    record_id: str = created.id
    return record_id


class Fixture:
    """One store and the ids the workloads need, grown size by size."""

    def __init__(self, name: str, store: Any, shared_with: Fixture | None = None) -> None:
        self.name = name
        self.store = store
        self.shared_with = shared_with  # a dict variant built by another fixture's fill
        self.ids: list[str] = []  # every stored id, in creation order
        self.chain: list[str] = []
        self.many_items = ""

    def seed(self, settings: Settings) -> None:
        """Create the chain and the response with many input items."""
        store = self.store
        previous = None
        for turn in range(CHAIN):
            created = store.create(MODEL, f"turn {turn}: question", previous_response_id=previous)
            previous = _id_of(created)
            store.complete(previous, [{"role": "assistant", "content": f"turn {turn}: answer"}], usage=USAGE)
            self.chain.append(previous)
        items = [{"role": "user", "content": f"item {i}"} for i in range(settings.input_items)]
        self.many_items = _id_of(store.create(MODEL, items))
        store.complete(self.many_items, OUTPUT, usage=USAGE)
        self.ids.extend([*self.chain, self.many_items])

    def fill(self, size: int) -> None:
        create = self.store.create
        append = self.ids.append
        for i in range(len(self.ids), size):
            append(_id_of(create(MODEL, f"question {i}")))

    def adopt(self) -> None:
        """Take the ids of the fixture whose store shares this one's dict."""
        assert self.shared_with is not None
        self.ids = self.shared_with.ids
        self.chain = self.shared_with.chain
        self.many_items = self.shared_with.many_items


class VllmFixture(Fixture):
    """The vllm-like store: no chain, no items, its bulk one shared ``Response``; it takes part in ``get`` only."""

    def seed(self, settings: Settings) -> None:
        pass

    def fill(self, size: int) -> None:
        self.store.fill(size)
        self.ids = self.store.ids


def store_capacity(settings: Settings) -> int:
    """The ``max_records`` responsestore runs with: the default, or twice the largest size if that is more."""
    return max(DEFAULT_MAX_RECORDS, 2 * max(settings.sizes))


def _vllm_like(progress: Progress) -> Fixture | None:
    sample = ResponseStore()
    record = sample.create(MODEL, "turn 0: question")
    record = sample.complete(record.id, [{"role": "assistant", "content": "turn 0: answer"}], usage=USAGE)
    response = baselines.openai_response(record)
    if response is None:
        progress("  skipping vllm-like: openai is not installed: pip install 'responsestore[benchmarks]'")
        return None
    return VllmFixture("vllm-like", baselines.VllmLikeStore(response))


def _variants(settings: Settings, progress: Progress) -> list[Fixture]:
    fixtures = [
        Fixture("responsestore", ResponseStore(max_records=store_capacity(settings))),
        Fixture("seed-port", baselines.SeedPortStore()),
    ]
    shared: dict[str, dict[str, Any]] = {}
    missing = baselines.missing_dependencies()
    owner: Fixture | None = None
    for cls, needs in baselines.DICT_VARIANTS:
        if needs is not None and needs in missing:
            progress(f"  skipping {cls.name}: {missing[needs]}")
            continue
        fixture = Fixture(cls.name, cls(shared), shared_with=owner)
        if owner is None:
            owner = fixture
        fixtures.append(fixture)
    vllm = _vllm_like(progress)
    if vllm is not None:
        fixtures.append(vllm)
    return fixtures


def _cases(fixture: Fixture, op: str, size: int, keys_at: list[int]) -> Case | None:
    store = fixture.store
    ids = fixture.ids
    max_batch = max(1, size // 10)
    if op == "get":
        keys = [ids[i] for i in keys_at]
        position = 0

        def next_batch(n: int) -> list[str]:
            nonlocal position
            start = position
            position = (start + n) % len(keys)
            return [keys[(start + j) % len(keys)] for j in range(n)]

        if isinstance(fixture, VllmFixture):
            get_many = store.get_many

            def make_awaited_get(n: int) -> Callable[[], object]:
                batch = next_batch(n)
                return lambda: get_many(batch)

            return Case(make_awaited_get)
        get = store.get

        def make_get(n: int) -> Callable[[], object]:
            batch = next_batch(n)

            def run() -> None:
                for key in batch:
                    get(key)

            return run

        return Case(make_get)
    if isinstance(fixture, VllmFixture):
        return None
    if op == "create":
        created: list[Any] = []
        create = store.create

        def make_create(n: int) -> Callable[[], object]:
            texts = [f"new question {i}" for i in range(n)]
            created.clear()
            append = created.append

            def run() -> None:
                for text in texts:
                    append(create(MODEL, text))

            return run

        def drop_created() -> None:
            for item in created:
                store.delete(_id_of(item))
            created.clear()

        return Case(make_create, cleanup=drop_created, max_n=max_batch)
    if op == "complete":
        pending: list[str] = []
        complete = store.complete

        def make_complete(n: int) -> Callable[[], object]:
            pending[:] = [_id_of(store.create(MODEL, f"pending {i}")) for i in range(n)]
            batch = list(pending)

            def run() -> None:
                for key in batch:
                    complete(key, OUTPUT, usage=USAGE)

            return run

        def drop_completed() -> None:
            for key in pending:
                store.delete(key)
            pending.clear()

        return Case(make_complete, cleanup=drop_completed, max_n=max_batch)
    call: Callable[[], object]
    if op == "list_first_page":
        list_ = store.list

        def call() -> object:
            return list_(limit=PAGE)

    elif op == "list_page_at_depth":
        list_ = store.list
        cursor = ids[len(ids) // 2]

        def call() -> object:
            return list_(limit=PAGE, after=cursor)

    elif op == "input_items_page":
        input_items = store.input_items
        many = fixture.many_items

        def call() -> object:
            return input_items(many, limit=PAGE)

    elif op.startswith("conversation_"):
        conversation = store.conversation
        target = fixture.chain[int(op.split("_")[1]) - 1]

        def call() -> object:
            return conversation(target)

    else:  # pragma: no cover - OPS lists every operation
        raise AssertionError(op)
    return Case(_repeat_call(call))


def _repeat_call(call: Callable[[], object]) -> Callable[[int], Callable[[], object]]:
    # One extra Python call per operation, the same for every variant.
    def make(n: int) -> Callable[[], object]:
        def run() -> None:
            for _ in repeat(None, n):
                call()

        return run

    return make


def _check_results(fixtures: list[Fixture]) -> None:
    """Every variant answers the same questions the same way (guards the comparison, not the library)."""
    for fixture in fixtures:
        if isinstance(fixture, VllmFixture):
            continue
        store = fixture.store
        page = list(store.list(limit=PAGE))
        assert len(page) == PAGE, (fixture.name, len(page))
        assert _id_of(page[0]) == fixture.ids[-1], fixture.name
        deep = list(store.list(limit=PAGE, after=fixture.ids[len(fixture.ids) // 2]))
        assert len(deep) == PAGE, fixture.name
        assert len(store.conversation(fixture.chain[-1])) == 2 * CHAIN, fixture.name
        assert len(list(store.input_items(fixture.many_items, limit=PAGE))) == PAGE, fixture.name


def chosen_ops(settings: Settings) -> dict[str, str]:
    """The operations to time, in table order: ``settings.ops`` (``--ops``), or every one of :data:`OPS`."""
    if settings.ops is None:
        return dict(OPS)
    unknown = sorted(set(settings.ops) - set(OPS))
    if unknown:
        raise ValueError(f"unknown operations {unknown}; choose from {list(OPS)}")
    return {op: description for op, description in OPS.items() if op in settings.ops}


def run(settings: Settings, progress: Progress) -> dict[str, Any]:
    timed_ops = chosen_ops(settings)
    fixtures = _variants(settings, progress)
    results: list[dict[str, Any]] = []
    build_seconds: dict[str, dict[int, float]] = {fixture.name: {} for fixture in fixtures}
    rng = random.Random(6)
    was_enabled = gc.isenabled()
    try:
        for fixture in fixtures:
            if fixture.shared_with is None:
                fixture.seed(settings)
            else:
                fixture.adopt()
        for size in settings.sizes:
            for fixture in fixtures:
                if fixture.shared_with is not None:
                    continue
                progress(f"ops: filling {fixture.name} to {size:,} records")
                start = progress.elapsed()
                gc.disable()
                fixture.fill(size)
                if was_enabled:
                    gc.enable()
                gc.freeze()  # the bulk is long-lived: keep later collections from walking it again
                build_seconds[fixture.name][size] = progress.elapsed() - start
            for fixture in fixtures:
                assert len(fixture.store) == size, (fixture.name, len(fixture.store), size)
            _check_results(fixtures)
            keys_at = rng.sample(range(size), size)  # every record, in one random order for every variant
            for op in timed_ops:
                chosen = {fixture.name: _cases(fixture, op, size, keys_at) for fixture in fixtures}
                cases = {name: case for name, case in chosen.items() if case is not None}
                summaries = measure_round_robin(cases, settings)
                for variant, summary in summaries.items():
                    results.append({"op": op, "size": size, "variant": variant, **summary})
                line = ", ".join(f"{name} {_fmt(s['median_ns'])}" for name, s in summaries.items())
                progress(f"ops @ {size:,}: {op}: {line}")
    finally:
        if was_enabled:
            gc.enable()
        for fixture in fixtures:
            if isinstance(fixture, VllmFixture):
                fixture.store.close()
        fixtures.clear()
        gc.unfreeze()
        gc.collect()
    return {
        "sizes": list(settings.sizes),
        "ops": timed_ops,
        "variants": list(build_seconds),
        "results": results,
        "build_seconds": {name: {str(size): s for size, s in sizes.items()} for name, sizes in build_seconds.items()},
        "capacity": store_capacity(settings),
        "notes": [
            "responsestore runs with its default TTL (30 days) and max_records="
            f"{store_capacity(settings):,} (the default 10,000, or twice the largest size).",
            "get reads every stored record once per pass, in one random order shared by the variants.",
            "vllm-like takes part in get only: an awaited get under an asyncio.Lock, one coroutine per sample; "
            "its bulk shares one openai Response object.",
            "The bulk of each store is plain in-progress responses created through each store's create(); "
            "a 100-response chain and one response with 50 input items are completed.",
            "The four dict variants wrap one shared dict.",
            "create and complete samples are at most a tenth of the store's size, deleted (untimed) after each sample.",
            "Times include the benchmark loop's own per-call overhead, identical for every variant.",
        ],
    }


def _fmt(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.0f} ns"
