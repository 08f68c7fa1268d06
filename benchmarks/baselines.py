"""The designs responsestore is measured against, implemented here so every run measures them on the same machine.

Every baseline offers the methods the workloads call, with the same names and arguments as
:class:`responsestore.ResponseStore`: ``get(id)``, ``create(model, input, previous_response_id=None)``,
``complete(id, output, usage=None)``, ``list(limit=20, after=None)``, ``input_items(id, limit=20)``,
``conversation(id)`` and ``delete(id)``. So a workload times ``store.get(key)`` the same way for every variant.

- :class:`SeedPortStore` ("seed-port"): a straight port of a simple Rust store (``HashMap`` under a ``Mutex``,
  ``list`` collects every record and sorts it): a dict of small mutable records under one ``threading.Lock``,
  and ``list()`` sorts all records on every call.
- :class:`LockedDictStore` ("server-dict"): what vLLM and SGLang do: a dict of plain JSON dicts (the response
  object, plus its input items), unbounded, under one ``threading.Lock``, no ordering index. Its ``list`` sorts
  the dict's values by ``created_at`` with a C-level key (``operator.itemgetter``). A heap selection of the
  newest ``limit`` records (``heapq.nlargest``) was tried and is slower in CPython: the dict holds records in
  creation order, and timsort sorts ordered input in linear time.
- :class:`RWLockFairDictStore` and :class:`FastenersDictStore`: the same dict guarded by
  ``readerwriterlock.rwlock.RWLockFair`` and by ``fasteners.ReaderWriterLock``, each used in its cheapest correct
  way (a reader/writer object cached per thread for ``readerwriterlock``; ``acquire_read_lock`` and
  ``release_read_lock`` for ``fasteners``, not its generator context manager).
- :class:`BareDictStore` ("bare-dict"): the floor, the same dict with no lock at all. Not thread-safe in
  general; it shows what the dict operations themselves cost.
- :class:`VllmLikeStore` ("vllm-like"): what vLLM's Responses server does: the ``openai`` SDK's pydantic
  ``Response`` model objects in a dict under an ``asyncio.Lock``, read with an awaited ``get``. Only ``get`` is
  timed (in one coroutine per sample, so the event loop's own cost is paid once per sample, not per call), and
  its bulk shares one ``Response`` object (a pydantic ``Response`` costs about 7 kB, too much to build a million
  of); its per-record memory is measured by the memory workload.

No baseline copies what it returns (nor does the library: it returns its immutable records and their stored,
read-only items), none validates its arguments, and none expires or evicts anything: each
is the cheapest honest version of its design, never a deliberately slow one.
"""

from __future__ import annotations

import asyncio
import importlib.util
import operator
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = [
    "DICT_VARIANTS",
    "BareDictStore",
    "FastenersDictStore",
    "LockedDictStore",
    "RWLockFairDictStore",
    "SeedPortStore",
    "VllmLikeStore",
    "missing_dependencies",
]


def _response_id() -> str:
    return "resp_" + uuid.uuid4().hex


def _item_id() -> str:
    return "msg_" + uuid.uuid4().hex


def _input_items(input: str | Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The input as a list of item dicts with ids (a string is one user message), as OpenAI lists them."""
    if isinstance(input, str):
        return [
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": input}],
                "id": _item_id(),
            }
        ]
    return [_with_id(item) for item in input]


def _with_id(item: Mapping[str, Any]) -> dict[str, Any]:
    if "id" in item and isinstance(item, dict):
        return item
    return {**item, "id": _item_id()}


def _page_of(items: list[Any], limit: int) -> list[Any]:
    """The last ``limit`` items, newest first (input items are listed last item first by default)."""
    return items[: -limit - 1 : -1]


# ---------------------------------------------------------------------------------------------- seed-port


class SeedRecord:
    """One response in the seed-port store: a mutable struct, as the Rust original's ``StoredResponse``."""

    __slots__ = (
        "completed_at",
        "created_at",
        "id",
        "input",
        "model",
        "output",
        "previous_response_id",
        "status",
        "usage",
    )

    def __init__(
        self, id: str, created_at: float, model: str, input: list[dict[str, Any]], previous_response_id: str | None
    ) -> None:
        self.id = id
        self.created_at = created_at
        self.model = model
        self.status = "in_progress"
        self.input = input
        self.output: list[dict[str, Any]] = []
        self.usage: dict[str, Any] | None = None
        self.previous_response_id = previous_response_id
        self.completed_at: float | None = None


_created_at = operator.attrgetter("created_at")


class SeedPortStore:
    """A dict under one ``threading.Lock``; ``list`` sorts every record on each call."""

    name = "seed-port"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, SeedRecord] = {}

    def __len__(self) -> int:
        return len(self._records)

    def get(self, id: str) -> SeedRecord:
        with self._lock:
            return self._records[id]

    def create(
        self, model: str, input: str | Iterable[Mapping[str, Any]] = (), previous_response_id: str | None = None
    ) -> SeedRecord:
        record = SeedRecord(_response_id(), time.time(), model, _input_items(input), previous_response_id)
        with self._lock:
            if previous_response_id is not None and previous_response_id not in self._records:
                raise KeyError(previous_response_id)
            self._records[record.id] = record
        return record

    def complete(
        self, id: str, output: Iterable[Mapping[str, Any]] = (), usage: Mapping[str, Any] | None = None
    ) -> SeedRecord:
        items = [_with_id(item) for item in output]
        with self._lock:
            record = self._records[id]
            if record.status != "in_progress":
                raise ValueError(f"{id} is {record.status}")
            record.status = "completed"
            record.output = items
            record.usage = None if usage is None else dict(usage)
            record.completed_at = time.time()
            return record

    def delete(self, id: str) -> SeedRecord:
        with self._lock:
            return self._records.pop(id)

    def list(self, limit: int = 20, after: str | None = None) -> list[SeedRecord]:
        with self._lock:
            ordered = sorted(self._records.values(), key=_created_at, reverse=True)
        start = 0
        if after is not None:
            start = next(i for i, record in enumerate(ordered) if record.id == after) + 1
        return ordered[start : start + limit]

    def input_items(self, id: str, limit: int = 20) -> list[dict[str, Any]]:
        with self._lock:
            return _page_of(self._records[id].input, limit)

    def conversation(self, id: str) -> list[dict[str, Any]]:
        with self._lock:
            chain = [self._records[id]]
            while chain[-1].previous_response_id is not None:
                chain.append(self._records[chain[-1].previous_response_id])
        items: list[dict[str, Any]] = []
        for record in reversed(chain):
            items.extend(record.input)
            items.extend(record.output)
        return items


# ---------------------------------------------------------------------------------------------- server-dict family
# The dict operations, shared by every dict variant so that only the locking differs between them.


def _dict_new(model: str, input: str | Iterable[Mapping[str, Any]], previous_response_id: str | None) -> dict[str, Any]:
    return {
        "id": _response_id(),
        "object": "response",
        "created_at": time.time(),
        "model": model,
        "status": "in_progress",
        "output": [],
        "previous_response_id": previous_response_id,
        "instructions": None,
        "tools": [],
        "metadata": {},
        "usage": None,
        "error": None,
        "incomplete_details": None,
        "background": False,
        "completed_at": None,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "input": _input_items(input),
    }


def _dict_insert(data: dict[str, dict[str, Any]], response: dict[str, Any]) -> None:
    previous = response["previous_response_id"]
    if previous is not None and previous not in data:
        raise KeyError(previous)
    data[response["id"]] = response


def _dict_complete(data: dict[str, dict[str, Any]], id: str, items: list[dict[str, Any]], usage: Any) -> dict[str, Any]:
    response = data[id]
    if response["status"] != "in_progress":
        raise ValueError(f"{id} is {response['status']}")
    response["status"] = "completed"
    response["output"] = items
    response["usage"] = usage
    response["completed_at"] = time.time()
    return response


_order_key = operator.itemgetter("created_at")


def _dict_list(data: dict[str, dict[str, Any]], limit: int, after: str | None) -> list[dict[str, Any]]:
    responses: Iterable[dict[str, Any]] = data.values()
    if after is not None:
        cursor = data[after]["created_at"]
        responses = [r for r in responses if r["created_at"] < cursor]
    return sorted(responses, key=_order_key, reverse=True)[:limit]


def _dict_chain(data: dict[str, dict[str, Any]], id: str) -> list[dict[str, Any]]:
    chain = [data[id]]
    while chain[-1]["previous_response_id"] is not None:
        chain.append(data[chain[-1]["previous_response_id"]])
    return chain


def _dict_conversation(chain: list[dict[str, Any]]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for response in reversed(chain):
        items.extend(response["input"])
        items.extend(response["output"])
    return items


class BareDictStore:
    """The floor: the dict operations with no lock (not thread-safe in general)."""

    name = "bare-dict"

    def __init__(self, data: dict[str, dict[str, Any]] | None = None) -> None:
        self._data: dict[str, dict[str, Any]] = {} if data is None else data

    @property
    def data(self) -> dict[str, dict[str, Any]]:
        """The dict itself (the dict variants of one workload share it)."""
        return self._data

    def __len__(self) -> int:
        return len(self._data)

    def get(self, id: str) -> dict[str, Any]:
        return self._data[id]

    def create(
        self, model: str, input: str | Iterable[Mapping[str, Any]] = (), previous_response_id: str | None = None
    ) -> dict[str, Any]:
        response = _dict_new(model, input, previous_response_id)
        _dict_insert(self._data, response)
        return response

    def complete(
        self, id: str, output: Iterable[Mapping[str, Any]] = (), usage: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        items = [_with_id(item) for item in output]
        return _dict_complete(self._data, id, items, None if usage is None else dict(usage))

    def delete(self, id: str) -> dict[str, Any]:
        return self._data.pop(id)

    def list(self, limit: int = 20, after: str | None = None) -> list[dict[str, Any]]:
        return _dict_list(self._data, limit, after)

    def input_items(self, id: str, limit: int = 20) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._data[id]["input"]
        return _page_of(items, limit)

    def conversation(self, id: str) -> list[dict[str, Any]]:
        return _dict_conversation(_dict_chain(self._data, id))


class LockedDictStore(BareDictStore):
    """server-dict: the dict under one ``threading.Lock``."""

    name = "server-dict"

    def __init__(self, data: dict[str, dict[str, Any]] | None = None) -> None:
        super().__init__(data)
        self._lock = threading.Lock()

    def get(self, id: str) -> dict[str, Any]:
        with self._lock:
            return self._data[id]

    def create(
        self, model: str, input: str | Iterable[Mapping[str, Any]] = (), previous_response_id: str | None = None
    ) -> dict[str, Any]:
        response = _dict_new(model, input, previous_response_id)
        with self._lock:
            _dict_insert(self._data, response)
        return response

    def complete(
        self, id: str, output: Iterable[Mapping[str, Any]] = (), usage: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        items = [_with_id(item) for item in output]
        frozen_usage = None if usage is None else dict(usage)
        with self._lock:
            return _dict_complete(self._data, id, items, frozen_usage)

    def delete(self, id: str) -> dict[str, Any]:
        with self._lock:
            return self._data.pop(id)

    def list(self, limit: int = 20, after: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return _dict_list(self._data, limit, after)

    def input_items(self, id: str, limit: int = 20) -> list[dict[str, Any]]:
        with self._lock:
            items: list[dict[str, Any]] = self._data[id]["input"]
        return _page_of(items, limit)

    def conversation(self, id: str) -> list[dict[str, Any]]:
        with self._lock:
            chain = _dict_chain(self._data, id)
        return _dict_conversation(chain)


class _ExplicitLockDictStore(BareDictStore):
    """The dict under a reader/writer lock driven through four callables (set by subclasses)."""

    _acquire_read: Callable[[], Any]
    _release_read: Callable[[], Any]
    _acquire_write: Callable[[], Any]
    _release_write: Callable[[], Any]

    def create(
        self, model: str, input: str | Iterable[Mapping[str, Any]] = (), previous_response_id: str | None = None
    ) -> dict[str, Any]:
        response = _dict_new(model, input, previous_response_id)
        self._acquire_write()
        try:
            _dict_insert(self._data, response)
        finally:
            self._release_write()
        return response

    def complete(
        self, id: str, output: Iterable[Mapping[str, Any]] = (), usage: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        items = [_with_id(item) for item in output]
        frozen_usage = None if usage is None else dict(usage)
        self._acquire_write()
        try:
            return _dict_complete(self._data, id, items, frozen_usage)
        finally:
            self._release_write()

    def delete(self, id: str) -> dict[str, Any]:
        self._acquire_write()
        try:
            return self._data.pop(id)
        finally:
            self._release_write()

    def list(self, limit: int = 20, after: str | None = None) -> list[dict[str, Any]]:
        self._acquire_read()
        try:
            return _dict_list(self._data, limit, after)
        finally:
            self._release_read()

    def input_items(self, id: str, limit: int = 20) -> list[dict[str, Any]]:
        self._acquire_read()
        try:
            items: list[dict[str, Any]] = self._data[id]["input"]
        finally:
            self._release_read()
        return _page_of(items, limit)

    def conversation(self, id: str) -> list[dict[str, Any]]:
        self._acquire_read()
        try:
            chain = _dict_chain(self._data, id)
        finally:
            self._release_read()
        return _dict_conversation(chain)


class RWLockFairDictStore(_ExplicitLockDictStore):
    """The dict under ``readerwriterlock.rwlock.RWLockFair``.

    A reader (``gen_rlock()``) or writer object remembers whether it is locked, so it must not be shared
    between threads; each thread caches its own, which is cheaper than generating one per call.
    """

    name = "rwlock-fair-dict"

    def __init__(self, data: dict[str, dict[str, Any]] | None = None) -> None:
        from readerwriterlock import rwlock  # noqa: PLC0415 - an optional benchmark dependency

        super().__init__(data)
        self._rw = rwlock.RWLockFair()
        self._local = threading.local()

    def _reader(self) -> Any:
        try:
            return self._local.reader
        except AttributeError:
            reader = self._local.reader = self._rw.gen_rlock()
            return reader

    def _writer(self) -> Any:
        try:
            return self._local.writer
        except AttributeError:
            writer = self._local.writer = self._rw.gen_wlock()
            return writer

    def _acquire_read(self) -> None:
        self._reader().acquire()

    def _release_read(self) -> None:
        self._reader().release()

    def _acquire_write(self) -> None:
        self._writer().acquire()

    def _release_write(self) -> None:
        self._writer().release()

    def get(self, id: str) -> dict[str, Any]:
        reader = self._reader()
        reader.acquire()
        try:
            return self._data[id]
        finally:
            reader.release()


class FastenersDictStore(_ExplicitLockDictStore):
    """The dict under ``fasteners.ReaderWriterLock`` (its acquire/release methods)."""

    name = "fasteners-dict"

    def __init__(self, data: dict[str, dict[str, Any]] | None = None) -> None:
        import fasteners  # noqa: PLC0415 - an optional benchmark dependency

        super().__init__(data)
        lock = fasteners.ReaderWriterLock()
        self._acquire_read = lock.acquire_read_lock
        self._release_read = lock.release_read_lock
        self._acquire_write = lock.acquire_write_lock
        self._release_write = lock.release_write_lock

    def get(self, id: str) -> dict[str, Any]:
        self._acquire_read()
        try:
            return self._data[id]
        finally:
            self._release_read()


class VllmLikeStore:
    """vllm-like: ``openai`` ``Response`` objects in a dict under an ``asyncio.Lock``; an awaited ``get``.

    ``get_many(ids)`` reads every id in one coroutine on the store's own event loop (what a sample times);
    ``fill(size)`` adds ids up to ``size``, all naming one shared ``Response`` (built from a real record).
    """

    name = "vllm-like"

    def __init__(self, response: Any) -> None:
        self._responses: dict[str, Any] = {}
        self._lock = asyncio.Lock()
        self._loop = asyncio.new_event_loop()
        self._shared = response
        self.ids: list[str] = []

    def __len__(self) -> int:
        return len(self._responses)

    async def aget(self, id: str) -> Any:
        """The ``Response`` ``id``, read under the lock (as vLLM's retrieve route does)."""
        async with self._lock:
            return self._responses[id]

    async def _get_all(self, ids: list[str]) -> None:
        aget = self.aget
        for id in ids:
            await aget(id)

    def get_many(self, ids: list[str]) -> None:
        """Await ``aget`` of every id in ``ids``, in one coroutine."""
        self._loop.run_until_complete(self._get_all(ids))

    def fill(self, size: int) -> None:
        """Store the shared ``Response`` under fresh ids until the dict holds ``size``."""
        while len(self._responses) < size:
            id = _response_id()
            self._responses[id] = self._shared
            self.ids.append(id)

    def close(self) -> None:
        """Close the event loop."""
        self._loop.close()


def openai_response(record: Any) -> Any:
    """The ``openai`` SDK's pydantic ``Response`` of a record (``None`` when ``openai`` is not installed)."""
    if importlib.util.find_spec("openai") is None:
        return None
    from openai.types.responses import Response  # noqa: PLC0415 - an optional benchmark dependency

    return Response.model_validate(record.to_openai())


#: The dict variants in the order tables show them, with the optional module each needs (``None``: none).
DICT_VARIANTS: list[tuple[type[BareDictStore], str | None]] = [
    (LockedDictStore, None),
    (RWLockFairDictStore, "readerwriterlock"),
    (FastenersDictStore, "fasteners"),
    (BareDictStore, None),
]


def missing_dependencies() -> dict[str, str]:
    """The optional benchmark modules that cannot be imported, each with the reason."""
    return {
        module: f"{module} is not installed: pip install 'responsestore[benchmarks]'"
        for module in ("readerwriterlock", "fasteners", "openai")
        if importlib.util.find_spec(module) is None
    }
