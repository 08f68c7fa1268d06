"""``serve --asgi``: thousands of open streams in one process, and non-streamed throughput against the WSGI ``serve``.

Three servers, each a process of its own started the way a user starts it, on ``memory://``:

- ``asgi-streams``: ``python -m responsestore serve --asgi`` with a slow ``async`` model (``--model
  slow=benchmarks._slow_model:generate``: ten words a second, awaited on the event loop) and ``--model echo``,
  ``--connection-limit`` :data:`CONNECTION_LIMIT` and ``--max-streams`` :data:`MAX_STREAMS`. A stream-client process
  (``benchmarks/asgi_load.py``, one event loop) opens, all at once, ``settings.asgi_streams`` streamed creates
  (server-sent events, 1,000 in full mode) and ``settings.asgi_websockets`` WebSocket connections (200), each one
  response of ``settings.asgi_words`` words, and reads every one to its terminal event. While all of them are open
  (from the moment the client has seen the first event of the last one until the first one ends), this process
  retrieves an existing completed response again and again (``GET /v1/responses/{id}``, one persistent connection,
  :data:`PROBE_GAP` s apart) and reads the server's resident set size (``VmRSS`` in ``/proc/PID/status``). The
  same retrieve is timed on the idle server first: the baseline of the same run. Memory per open stream is the
  peak RSS while all were open less the RSS just before they opened, over the streams open at that peak.
- ``asgi`` and ``wsgi``: ``python -m responsestore serve --asgi`` (uvicorn) and ``python -m responsestore serve``
  (waitress), each at its defaults. Throughput samples as in the HTTP workload (:func:`benchmarks.http.load_sample`:
  a load-generator process of :data:`benchmarks.http.CLIENT_THREADS` threads, one persistent connection each), but
  each request is one non-streamed create (the ``echo`` model, 8 words in and out); the two servers take their
  samples in turn; the figure is creates per second, median over samples.

Every process started here is stopped by its pid (SIGTERM, then SIGKILL), also when the workload fails.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

from . import http
from ._slow_model import SECONDS_PER_WORD
from ._timing import Progress, Settings
from .http_load import CREATES_ONLY, INPUT, Client, percentile

NAME = "asgi"
TITLE = "ASGI server: 1,000 streams and 200 WebSocket responses at once, and throughput against WSGI"

BASELINE = "wsgi"
CONNECTION_LIMIT = 4_000
MAX_STREAMS = 2_000
SLOW_MODEL = "slow=benchmarks._slow_model:generate"
PROBE_GAP = 0.01  # seconds between two timed retrieves while the streams are open
STREAM_SCRIPT = Path(__file__).resolve().parent / "asgi_load.py"
WAIT = 180.0  # seconds the stream client may take to open everything, and beyond its streams' length to end


def available() -> str | None:
    """``None`` when the servers and the stream client can run, else why not."""
    for module, extra in (("uvicorn", "asgi"), ("websockets", "asgi"), ("waitress", "server")):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install 'responsestore[{extra}]')"
    return None


def commands() -> dict[str, list[str]]:
    """The command line of every server, by name: the one holding the streams, then the two throughput ones."""
    serve = [sys.executable, "-m", "responsestore", "serve", "--host", "127.0.0.1", "--port", "0", "--store"]
    return {
        "asgi-streams": [
            *serve,
            "memory://",
            "--asgi",
            "--connection-limit",
            str(CONNECTION_LIMIT),
            "--max-streams",
            str(MAX_STREAMS),
            "--model",
            SLOW_MODEL,
            "--model",
            "echo",
        ],
        BASELINE: [*serve, "memory://"],
        "asgi": [*serve, "memory://", "--asgi"],
    }


def memory_of(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (its peak) of the process ``pid`` in bytes, from ``/proc/PID/status`` (Linux only)."""
    found = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    found[name] = int(value.split()[0]) * 1024  # in kB there
    except OSError:
        return {}
    return found


def _times(samples_ns: list[int]) -> dict[str, Any] | None:
    """Median, p95 and max of ``samples_ns``, in milliseconds (``None`` when there are none)."""
    if not samples_ns:
        return None
    ordered = sorted(samples_ns)
    return {
        "samples": len(ordered),
        "median_ms": statistics.median(ordered) / 1e6,
        "p95_ms": percentile(ordered, 95) / 1e6,
        "max_ms": ordered[-1] / 1e6,
    }


def _lines(stdout: IO[str], into: queue.Queue[str]) -> None:
    for line in stdout:
        into.put(line.strip())
    into.put("")  # the end of the output


def _next_line(lines: queue.Queue[str], timeout: float) -> str:
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        raise RuntimeError(f"the stream client said nothing for {timeout:.0f} s") from None


def hold(server: http.ServerProcess, settings: Settings, progress: Progress) -> dict[str, Any]:
    """Open the streams on ``server``, time retrieves while all are open; return the figures."""
    client = Client(server.url)
    try:
        id = client.create(INPUT)  # the completed response every probe retrieves
        idle = []
        for _ in range(settings.asgi_idle_probes):
            start = time.perf_counter_ns()
            client.retrieve(id)
            idle.append(time.perf_counter_ns() - start)
            time.sleep(PROBE_GAP)
        before = memory_of(server.pid).get("VmRSS")
        cpu_before = http.cpu_seconds(server.pid)
        argv = [
            sys.executable,
            "-c",
            http._RUN_LOAD,  # the HTTP load generator's runner: this directory stays off sys.path
            str(STREAM_SCRIPT),
            server.url,
            str(settings.asgi_streams),
            str(settings.asgi_websockets),
            str(settings.asgi_words),
        ]
        under_load: list[int] = []
        peak_rss = before
        rss_samples = 0
        with tempfile.TemporaryFile() as errors:
            streams = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
                cwd=http.ROOT,
                env=http._environment(),
            )
            try:
                assert streams.stdout is not None
                lines: queue.Queue[str] = queue.Queue()
                reader = threading.Thread(target=_lines, args=(streams.stdout, lines), daemon=True)
                reader.start()
                first = _next_line(lines, WAIT)
                if first == "held":
                    progress(f"asgi: {settings.asgi_streams + settings.asgi_websockets:,} streams open at once")
                    while lines.empty():  # until the first stream ends ("released")
                        start = time.perf_counter_ns()
                        client.retrieve(id)
                        under_load.append(time.perf_counter_ns() - start)
                        rss = memory_of(server.pid).get("VmRSS")
                        if rss is not None and peak_rss is not None:
                            peak_rss = max(peak_rss, rss)
                            rss_samples += 1
                        time.sleep(PROBE_GAP)
                    first = _next_line(lines, WAIT)
                if first != "released":
                    streams.wait(WAIT)
                    raise RuntimeError(f"the stream client said {first!r}: {http._tail(errors)}")
                figures = _next_line(lines, settings.asgi_words / 10 + WAIT)
                streams.wait(WAIT)
                reader.join(WAIT)
                if streams.returncode != 0 or not figures:
                    raise RuntimeError(f"the stream client failed with {streams.returncode}: {http._tail(errors)}")
            finally:
                if streams.poll() is None:
                    streams.kill()
                    streams.wait()
                if streams.stdout is not None:
                    streams.stdout.close()
        cpu_after = http.cpu_seconds(server.pid)
        client.retrieve(id)  # the server still answers once every stream has ended
        server.check_running()
        peak_memory = memory_of(server.pid).get("VmHWM")
    finally:
        client.close()
    result: dict[str, Any] = json.loads(figures)
    per_stream = None
    if rss_samples and before is not None and peak_rss is not None:
        # Over the streams open when the RSS was read: all of them (the probes run only while all are open).
        per_stream = (peak_rss - before) / result["peak_open"]
    result.update(
        {
            "seconds_per_word": SECONDS_PER_WORD,
            "retrieve_idle": _times(idle),
            "retrieve_under_load": _times(under_load),
            "rss_before_bytes": before,
            "rss_peak_bytes": peak_rss if rss_samples else None,
            "hwm_bytes": peak_memory,
            "bytes_per_open_stream": per_stream,
            "server_cpu_seconds": None if cpu_before is None or cpu_after is None else cpu_after - cpu_before,
        }
    )
    return result


def _throughput_row(name: str, samples: list[dict[str, Any]]) -> dict[str, Any]:
    rates = sorted(sample["throughput"] for sample in samples)
    cpu = [
        1e3 * sample["cpu_seconds"]["server"] / sample["sequences"]
        for sample in samples
        if sample["cpu_seconds"]["server"] is not None
    ]
    return {
        "variant": name,
        "samples": len(rates),
        "requests_median": statistics.median(rates),
        "requests_min": rates[0],
        "requests_max": rates[-1],
        "requests": sum(sample["sequences"] for sample in samples),
        "create_p50_ms": statistics.median(sample["latency_us"]["create"]["p50"] / 1e3 for sample in samples),
        "create_p99_ms": statistics.median(sample["latency_us"]["create"]["p99"] / 1e3 for sample in samples),
        "server_cpu_ms_per_request": statistics.median(cpu) if cpu else None,
        "client_cpu_ms_per_request": statistics.median(
            1e3 * sample["client_cpu_seconds"] / sample["sequences"] for sample in samples
        ),
    }


def run(settings: Settings, progress: Progress) -> dict[str, Any]:
    reason = available()
    if reason is not None:
        progress(f"asgi: skipped: {reason}")
        return {"skipped": reason}
    argvs = commands()
    servers: dict[str, http.ServerProcess] = {}
    samples: dict[str, list[dict[str, Any]]] = {}
    with contextlib.ExitStack() as stack:
        for name, argv in argvs.items():  # all start at once; each is stopped however this block ends
            servers[name] = http.ServerProcess(name, argv)
            stack.callback(servers[name].stop)
        for name, server in servers.items():
            progress(f"asgi: {name} serving on {server.wait_ready(http.START_TIMEOUT)}")
        streams = servers.pop("asgi-streams")
        held = hold(streams, settings, progress)
        streams.stop()  # its memory and sweeps are not the throughput servers' neighbours
        kinds = held["kinds"]
        progress(
            f"asgi: peak {held['peak_open']:,} open; response.completed: SSE {kinds['sse']['completed']:,}/"
            f"{held['streams']:,}, WebSocket {kinds['websocket']['completed']:,}/{held['websockets']:,}; retrieve "
            + (
                f"median {held['retrieve_under_load']['median_ms']:,.1f} ms under load"
                if held["retrieve_under_load"]
                else "not measured under load (the streams were never all open at once)"
            )
        )
        for repeat in range(settings.asgi_repeats):
            for name in (BASELINE, "asgi"):
                server = servers[name]
                sample = http.load_sample(server.url, settings.asgi_seconds, {"server": server.pid}, CREATES_ONLY)
                server.check_running()
                samples.setdefault(name, []).append(sample)
                progress(
                    f"asgi: throughput sample {repeat + 1}/{settings.asgi_repeats}: {name}: "
                    f"{sample['throughput']:,.0f} creates/s"
                )
    # Every process has stopped here (the stack unwound).
    notes = [
        f"{server.name} did not stop within {http.STOP_TIMEOUT:.0f} s of SIGTERM and was killed"
        for server in [streams, *servers.values()]
        if server.killed
    ]
    rows = [_throughput_row(name, found) for name, found in samples.items()]
    base = next(row["requests_median"] for row in rows if row["variant"] == BASELINE)
    for row in rows:
        progress(
            f"asgi: {row['variant']}: {row['requests_median']:,.0f} creates/s "
            f"({row['requests_median'] / base:.2f}x {BASELINE})"
        )
    return {
        "baseline": BASELINE,
        "hold": held,
        "client_threads": http.CLIENT_THREADS,
        "sample_seconds": settings.asgi_seconds,
        "input_words": len(INPUT.split()),
        "cores": os.cpu_count(),
        "commands": {name: " ".join(["python", *argv[1:]]) for name, argv in argvs.items()},
        "throughput": rows,
        "notes": notes,
    }
