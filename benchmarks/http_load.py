"""The HTTP benchmark's client: :class:`Client`, and the load generator process that runs several of them.

``benchmarks/http.py`` runs this file (through ``runpy``, see ``LOAD_SCRIPT`` there) with the arguments
``URL THREADS SECONDS [MIX]``, once per throughput sample: a process of its own, so that the client's CPU is
accounted the same way whichever server it loads. Each of ``THREADS`` threads holds one persistent
``http.client.HTTPConnection`` and repeats a *sequence*: create a response (non-streamed, an input of
:data:`INPUT`'s 8 words), retrieve it, list its input items; every reply is checked. With ``MIX`` ``create``
(:data:`CREATES_ONLY`; the ASGI workload's), a sequence is the create alone. The process does one
untimed sequence per connection, prints ``ready``, waits for a line on stdin, runs for ``SECONDS`` and prints one
line of JSON: the sequences completed, the wall time from the start to the end of the last one, its own CPU
time, and latency percentiles per request kind. It imports only the standard library.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

__all__ = ["CREATES_ONLY", "INPUT", "KINDS", "MIXES", "SEQUENCE", "Client", "main", "percentile"]

MODEL = "echo"
#: The input of every create of a throughput sample: 8 words, which the ``echo`` model repeats.
INPUT = "please repeat these eight words back to me"
KINDS = ("create", "retrieve", "input_items")
#: The mixes a sample may repeat: the whole sequence (the default), or the create alone.
SEQUENCE = "sequence"
CREATES_ONLY = "create"
MIXES = (SEQUENCE, CREATES_ONLY)
TIMEOUT = 60.0  # seconds any one request may take before the sample fails
WAIT = 120.0  # seconds the threads may take to start and to finish after the deadline


class Client:
    """One persistent connection to a Responses API server at ``url`` (``http://HOST:PORT/v1``)."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"expected http://HOST:PORT/PATH, not {url!r}")
        self.base = parts.path.rstrip("/")
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)

    def _call(self, method: str, path: str, body: bytes | None = None) -> Any:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        self.connection.request(method, self.base + path, body=body, headers=headers)
        reply = self.connection.getresponse()
        data = reply.read()
        if reply.status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {reply.status}: {data[:300]!r}")
        return json.loads(data)

    def create(self, text: str) -> str:
        """Create a non-streamed response to ``text``; check that it completed with ``text`` as its reply.

        Returns its id.
        """
        body = json.dumps({"model": MODEL, "input": text}).encode()
        response = self._call("POST", "/responses", body)
        if response["status"] != "completed" or response["output"][0]["content"][0]["text"] != text:
            raise RuntimeError(f"unexpected reply to a create: {json.dumps(response)[:300]}")
        id: str = response["id"]
        return id

    def retrieve(self, id: str) -> None:
        """Retrieve the response ``id``; check that it is the one asked for."""
        if self._call("GET", f"/responses/{id}")["id"] != id:
            raise RuntimeError(f"retrieving {id} returned another response")

    def input_items(self, id: str) -> None:
        """List the first page of the input items of ``id``; check that it holds the one input message."""
        page = self._call("GET", f"/responses/{id}/input_items")
        if len(page["data"]) != 1 or page["has_more"]:
            raise RuntimeError(f"unexpected input items of {id}: {json.dumps(page)[:300]}")

    def close(self) -> None:
        self.connection.close()


def percentile(ordered: Sequence[int], percent: float) -> int:
    """The nearest-rank ``percent`` percentile of the sorted, non-empty ``ordered``."""
    rank = max(1, -(-len(ordered) * percent // 100))  # ceil(n * p / 100), at least 1
    return ordered[int(rank) - 1]


class _Worker:
    """One thread's sequences, after the start barrier, until the deadline."""

    def __init__(self, client: Client, *, creates_only: bool) -> None:
        self.client = client
        self.creates_only = creates_only
        self.latencies: dict[str, list[int]] = {kind: [] for kind in KINDS}
        self.sequences = 0
        self.ended = 0.0
        self.failure: BaseException | None = None

    def run(self, barrier: threading.Barrier, deadline: list[float]) -> None:
        clock = time.perf_counter_ns
        create, retrieve, input_items = (
            self.latencies["create"],
            self.latencies["retrieve"],
            self.latencies["input_items"],
        )
        try:
            barrier.wait(WAIT)
            end = deadline[0]
            while time.perf_counter() < end:
                start = clock()
                id = self.client.create(INPUT)
                created = clock()
                create.append(created - start)
                if not self.creates_only:
                    self.client.retrieve(id)
                    retrieved = clock()
                    self.client.input_items(id)
                    listed = clock()
                    retrieve.append(retrieved - created)
                    input_items.append(listed - retrieved)
                self.sequences += 1
            self.ended = time.perf_counter()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.failure = exc


def run_sample(url: str, threads: int, seconds: float, mix: str = SEQUENCE) -> dict[str, Any]:
    """Connect ``threads`` clients, warm them up, say ``ready``, wait for stdin, then run; return the figures.

    ``mix`` is :data:`SEQUENCE` (create, retrieve, input_items) or :data:`CREATES_ONLY`; the latency figures cover
    the kinds of request it makes.
    """
    if mix not in MIXES:
        raise ValueError(f"mix must be one of {', '.join(MIXES)}, not {mix!r}")
    clients = [Client(url) for _ in range(threads)]
    try:
        for client in clients:  # connects, and warms up the server's code paths
            client.input_items(client.create(INPUT))
        workers = [_Worker(client, creates_only=mix == CREATES_ONLY) for client in clients]
        barrier = threading.Barrier(threads + 1)
        deadline = [0.0]
        pool = [threading.Thread(target=worker.run, args=(barrier, deadline), daemon=True) for worker in workers]
        for thread in pool:
            thread.start()
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        sys.stdin.readline()
        cpu_start = time.process_time()
        start = time.perf_counter()
        deadline[0] = start + seconds
        barrier.wait(WAIT)
        for thread in pool:
            thread.join(seconds + WAIT)
        cpu = time.process_time() - cpu_start
    finally:
        for client in clients:
            client.close()
    failed = [worker.failure for worker in workers if worker.failure is not None]
    if failed:
        raise RuntimeError(f"a client thread failed: {failed[0]!r}") from failed[0]
    if any(thread.is_alive() for thread in pool):
        raise RuntimeError(f"a client thread did not finish within {WAIT} s of the deadline")
    sequences = sum(worker.sequences for worker in workers)
    if sequences == 0:
        raise RuntimeError("no sequence completed: the sample is too short for this server")
    wall = max(worker.ended for worker in workers) - start
    latency = {}
    measured = ("create",) if mix == CREATES_ONLY else KINDS
    for kind in measured:
        ordered = sorted(x for worker in workers for x in worker.latencies[kind])
        latency[kind] = {f"p{p}": percentile(ordered, p) / 1e3 for p in (50, 90, 99)} | {"max": ordered[-1] / 1e3}
    return {
        "sequences": sequences,
        "wall_seconds": wall,
        "throughput": sequences / wall,
        "client_cpu_seconds": cpu,
        "latency_us": latency,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sample (``URL THREADS SECONDS [MIX]``) and print its figures as one line of JSON."""
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) not in (3, 4) or (len(args) == 4 and args[3] not in MIXES):
        print(f"usage: http_load.py URL THREADS SECONDS [{'|'.join(MIXES)}]", file=sys.stderr)
        return 2
    url, threads, seconds = args[0], int(args[1]), float(args[2])
    result = run_sample(url, threads, seconds, *args[3:])
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
