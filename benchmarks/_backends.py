"""What the backend benchmarks (``sqlite``, ``redis``, ``postgres``) share.

The response they create and complete, the raw-driver baseline's records (:class:`RawBaseline`), the timed
create + complete of a store or a baseline, a throwaway server process (:class:`LocalServer`) and the throughput
of several processes against one (:func:`throughput`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import responsestore

from ._timing import Case, Progress, Settings, measure_round_robin

MODEL = "gpt-4.1"
OUTPUT = ({"role": "assistant", "content": "The answer is 42."},)
USAGE = {"input_tokens": 12, "output_tokens": 6}
PREFILL = 1_000
PROCESSES = 4
ROOT = Path(__file__).resolve().parent.parent


class RawBaseline:
    """A raw driver's side: the very record JSON the store writes, with a fresh id and times.

    ``created`` and ``completed`` are ``ResponseRecord.to_dict()`` of one response the memory store created and
    completed, so both sides serialize the same bytes; a subclass stores them (``create``/``complete``/``close``).
    """

    #: Whether ``created_at``/``completed_at`` are whole seconds (as the API gives them) rather than ``time.time()``.
    whole_seconds = False

    def __init__(self) -> None:
        store = responsestore.ResponseStore()
        record = store.create(MODEL, "question")
        self.created = record.to_dict()
        self.completed = store.complete(record.id, OUTPUT, usage=USAGE).to_dict()

    def _now(self) -> float:
        return int(time.time()) if self.whole_seconds else time.time()

    def created_data(self, model: str, input: str) -> tuple[str, dict[str, Any]]:
        """A new id, and the record JSON of a response to ``input`` created now under it."""
        response_id = "resp_" + uuid.uuid4().hex
        data = {**self.created, "id": response_id, "model": model, "created_at": self._now()}
        data["input"] = [{**data["input"][0], "content": [{"type": "input_text", "text": input}]}]
        return response_id, data

    def completed_data(self, id: str) -> dict[str, Any]:
        """The record JSON of the response ``id`` completed now."""
        return {**self.completed, "id": id, "completed_at": self._now()}

    def create(self, model: str, input: str) -> str:
        raise NotImplementedError

    def complete(self, id: str, output: Any, usage: Any = None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def create_complete(
    create: Callable[[str, str], Any], complete: Callable[..., Any], id_of: Callable[[Any], str]
) -> Callable[[int], Callable[[], object]]:
    """A :class:`Case` maker: ``n`` creates, each completed at once."""

    def make(n: int) -> Callable[[], object]:
        texts = [f"question {i}" for i in range(n)]

        def run() -> None:
            for text in texts:
                complete(id_of(create(MODEL, text)), OUTPUT, usage=USAGE)

        return run

    return make


def measure_against_raw(
    name: str,
    stores: dict[str, Any],
    raw: tuple[str, RawBaseline],
    settings: Settings,
    progress: Progress,
    *,
    prefill: int = PREFILL,
) -> list[dict[str, Any]]:
    """Prefill each store and the raw side with ``prefill`` completed responses, then time create + complete.

    ``stores``: variant name -> store; ``raw``: the raw side's variant name and itself. The rows of the results,
    in that order, each also reported through ``progress`` (prefixed by ``name``).
    """
    raw_name, baseline = raw
    for i in range(prefill):
        for store in stores.values():
            record = store.create(MODEL, f"prefilled {i}")
            store.complete(record.id, OUTPUT, usage=USAGE)
        baseline.complete(baseline.create(MODEL, f"prefilled {i}"), OUTPUT, usage=USAGE)
    cases = {
        variant: Case(create_complete(store.create, store.complete, lambda record: record.id), max_n=PREFILL)
        for variant, store in stores.items()
    }
    cases[raw_name] = Case(create_complete(baseline.create, baseline.complete, str), max_n=PREFILL)
    order = [*list(stores)[:1], raw_name, *list(stores)[1:]]
    summaries = measure_round_robin({variant: cases[variant] for variant in order}, settings)
    results = [{"op": "create+complete", "variant": variant, **summary} for variant, summary in summaries.items()]
    for result in results:
        progress(f"{name}: {result['variant']}: {result['median_ns'] / 1e3:.1f} µs per create+complete")
    return results


class LocalServer:
    """A throwaway server process (``process``) with its own directory, started by a subclass.

    ``stop_signal`` asks it to stop (then SIGKILL if it still runs 10 s later).
    """

    stop_signal = signal.SIGTERM
    directory: str
    process: subprocess.Popen[bytes]

    def _answers(self) -> bool:
        raise NotImplementedError

    def _await_start(self, what: str, seconds: float, pause: float) -> None:
        """Wait up to ``seconds`` until the server answers (stopping it if it does not)."""
        deadline = time.monotonic() + seconds
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{what} did not start")
            time.sleep(pause)  # polling a starting process

    def stop(self) -> None:
        """``stop_signal``, then SIGKILL if it still runs 10 s later; remove its directory."""
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.directory, ignore_errors=True)


_WORKER = "import sys; from benchmarks._backends import _worker; _worker(sys.argv[1], int(sys.argv[2]))"


def _worker(url: str, count: int) -> None:
    """One throughput process: open ``url``, say ready, wait for the start line, do ``count`` create + complete, then
    print the ``time.time()`` of its start and end (comparable across processes of one machine)."""
    store = responsestore.open(url)
    try:
        store.create(MODEL, "warm")  # connects (and loads what the store needs) before the clock starts
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        sys.stdin.readline()
        start = time.time()
        for i in range(count):
            record = store.create(MODEL, f"question {i}")
            store.complete(record.id, OUTPUT, usage=USAGE)
        sys.stdout.write(f"{start} {time.time()}\n")
    finally:
        store.close()


def throughput(url: str, processes: int, count: int) -> float:
    """create + complete per second of ``processes`` processes each doing ``count`` on the store of ``url``.

    They start together; the time is from the first start to the last end (interpreter start-up, connecting and
    closing are not counted).
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, url, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for _ in range(processes)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            if worker.stdout.readline().strip() != "ready":
                raise RuntimeError("a throughput worker did not start")
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        spans = []
        for worker in workers:
            out, _ = worker.communicate(timeout=600)
            if worker.returncode != 0:
                raise RuntimeError(f"a throughput worker failed with {worker.returncode}")
            start, end = (float(x) for x in out.split())
            spans.append((start, end))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate(timeout=10)
    elapsed = max(end for _, end in spans) - min(start for start, _ in spans)
    return processes * count / elapsed
