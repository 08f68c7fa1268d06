"""HTTP end to end: ``python -m responsestore serve`` against a plain-dict server, both loaded over real sockets.

Every server is a process of its own, started the way a user starts it and served by waitress with the same
number of request threads (:data:`SERVER_THREADS`):

- ``plain-dict``: the baseline, ``python -m benchmarks.http_baseline`` (:mod:`benchmarks.http_baseline`): the
  same ``echo`` model, the same ``Response`` JSON, kept in a dict under one lock;
- ``responsestore-memory``, ``-sqlite`` and ``-redis``: ``python -m responsestore serve --store URL`` on
  ``memory://``, on a fresh SQLite file in a temporary directory (at the store's defaults: the command has no
  option for them) and on a ``redis-server`` this module starts on a free loopback port (no persistence);
  Redis is left out, with a note in the results, when ``redis-server`` or redis-py is missing.

Throughput: one sample is one load-generator process (``benchmarks/http_load.py``: :data:`CLIENT_THREADS`
threads, each with a persistent connection, repeating create → retrieve → input_items) running for
``settings.http_seconds``; the figure is completed sequences per second. The servers take their samples in
turn, so a slow spell of the machine touches all of them; the server's CPU time per sequence (from
``/proc``, Linux only) is recorded beside it. Client and server share the machine's cores, the same way for
every server.

Long reply: one create whose input, and so whose reply, is ``settings.http_long_words`` words (1,000 but in
smoke mode), timed from this process over one persistent connection, one request at a time, the servers again
in turn, after one untimed long reply each.

Every process started here is stopped by its pid (SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT`), also when
the workload fails.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import queue
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from . import redis as redis_workload
from ._timing import Progress, Settings, summarize
from .http_load import INPUT, KINDS, SEQUENCE, Client

NAME = "http"
TITLE = "HTTP server: create + retrieve + input_items, and a 1,000-word reply"

BASELINE = "plain-dict"
SERVER_THREADS = 8
CLIENT_THREADS = 8
START_TIMEOUT = 60.0  # seconds a server may take to print its ready line
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
WAIT = 120.0  # seconds a load generator may take beyond its sample's duration
READY = re.compile(r".*serving on (http://\S+/v1)")
ROOT = Path(__file__).resolve().parent.parent
#: The load generator runs as a file, not as ``-m benchmarks.http_load``: it then imports nothing of the suite and
#: starts in a twentieth of a second. ``runpy`` keeps this directory off ``sys.path``, where ``http.py`` would
#: hide the standard library's ``http``.
LOAD_SCRIPT = Path(__file__).resolve().parent / "http_load.py"
_RUN_LOAD = "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
_WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "seven", "wise", "owls")


def available() -> str | None:
    """``None`` when the HTTP servers can run, else why not."""
    if importlib.util.find_spec("waitress") is None:
        return "waitress is not installed (pip install 'responsestore[server]')"
    return None


def _environment() -> dict[str, str]:
    """The environment of every child: this checkout first on the path, so ``benchmarks`` imports."""
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else "")}


def _tail(stream: IO[bytes], limit: int = 2_000) -> str:
    stream.seek(0)
    return stream.read().decode(errors="replace")[-limit:].strip()


def cpu_seconds(pid: int) -> float | None:
    """The CPU time the threads of the process ``pid`` have used, or ``None`` off Linux.

    Summed over its threads' ``/proc/PID/task/TID/schedstat`` (nanoseconds; the servers' threads live as long
    as they do), else read from ``/proc/PID/stat`` (user + system, in clock ticks of 10 ms).
    """
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as schedstat:
                total += int(schedstat.read().split()[0])
    except (OSError, IndexError, ValueError):
        pass
    else:
        return total / 1e9
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14 and 15


class ServerProcess:
    """A server child started with ``argv``; ready once its first line on stdout names the URL it serves.

    Its stdout is drained by a thread (so it can never block on a full pipe) and its stderr goes to a temporary
    file, quoted when it fails. :meth:`stop` ends it by its pid.
    """

    def __init__(self, name: str, argv: Sequence[str]) -> None:
        self.name = name
        self.argv = list(argv)
        self.url = ""
        self.killed = False
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 - it lives as long as the server; stop() closes it
        self._lines: queue.Queue[str] = queue.Queue()
        try:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._errors,
                text=True,
                cwd=ROOT,
                env=_environment(),
            )
        except BaseException:
            self._errors.close()
            raise
        assert self.process.stdout is not None
        self._reader = threading.Thread(target=self._drain, args=(self.process.stdout,), daemon=True)
        self._reader.start()

    def _drain(self, stdout: IO[str]) -> None:
        for line in stdout:
            self._lines.put(line)
        self._lines.put("")  # the end of the output

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float) -> str:
        """Wait for the ready line; return the URL it names (``http://HOST:PORT/v1``).

        Raises:
            RuntimeError: the server exited, printed something else first, or was silent for ``timeout`` s.
        """
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"{self.name} printed no ready line within {timeout:.0f} s") from None
        match = READY.match(line)
        if match is None:
            self.process.poll()
            raise RuntimeError(
                f"{self.name} did not start (exit status {self.process.returncode}); it printed {line!r}; "
                f"stderr: {_tail(self._errors)}"
            )
        self.url = match.group(1)
        return self.url

    def check_running(self) -> None:
        """Raise ``RuntimeError`` (with the end of its stderr) if the server has exited."""
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}: {_tail(self._errors)}")

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, then SIGKILL if it still runs ``timeout`` s later; reap it; close its files."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        self._reader.join(STOP_TIMEOUT)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._errors.close()


def commands(directory: Path, redis_url: str | None) -> dict[str, list[str]]:
    """The command line of every server, by variant name (the baseline first)."""
    serve = [sys.executable, "-m", "responsestore", "serve", "--host", "127.0.0.1", "--port", "0"]
    threads = ["--threads", str(SERVER_THREADS)]
    found = {
        BASELINE: [sys.executable, "-m", "benchmarks.http_baseline", "--host", "127.0.0.1", "--port", "0", *threads],
        "responsestore-memory": [*serve, "--store", "memory://", *threads],
        # Everything after the third slash is the path, so an absolute path gives four.
        "responsestore-sqlite": [*serve, "--store", f"sqlite:///{directory / 'store.db'}", *threads],
    }
    if redis_url is not None:
        found["responsestore-redis"] = [*serve, "--store", redis_url, *threads]
    return found


def _shown(argv: list[str], directory: Path) -> str:
    """A command line as the results show it: ``python``, and the temporary directory as ``TMP``."""
    return " ".join(["python", *argv[1:]]).replace(str(directory), "TMP")


def load_sample(url: str, seconds: float, watched: dict[str, int], mix: str = SEQUENCE) -> dict[str, Any]:
    """One throughput sample: a load-generator process against ``url`` for ``seconds``, repeating ``mix``.

    Returns its figures, with the CPU seconds each process of ``watched`` (pids by role) used meanwhile.

    Raises:
        RuntimeError: the load generator failed (a request failed or a reply was wrong) or hung.
    """
    argv = [sys.executable, "-c", _RUN_LOAD, str(LOAD_SCRIPT), url, str(CLIENT_THREADS), str(seconds), mix]
    with tempfile.TemporaryFile() as errors:
        client = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            cwd=ROOT,
            env=_environment(),
        )
        try:
            assert client.stdout is not None
            if client.stdout.readline().strip() != "ready":
                client.wait(WAIT)
                raise RuntimeError(f"the load generator did not start: {_tail(errors)}")
            before = {role: cpu_seconds(pid) for role, pid in watched.items()}
            out, _ = client.communicate("go\n", timeout=seconds + WAIT)
            after = {role: cpu_seconds(pid) for role, pid in watched.items()}
            if client.returncode != 0:
                raise RuntimeError(f"the load generator failed with {client.returncode}: {_tail(errors)}")
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
    result: dict[str, Any] = json.loads(out)
    result["cpu_seconds"] = {role: _difference(before[role], after[role]) for role in watched}
    return result


def _difference(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def long_text(words: int) -> str:
    """An input of ``words`` ordinary words (which ``echo`` repeats as its reply)."""
    return " ".join(_WORDS[i % len(_WORDS)] for i in range(words))


def _median_or_none(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def _milliseconds(seconds: float | None) -> float | None:
    return None if seconds is None else 1e3 * seconds


def _throughput_row(name: str, samples: list[dict[str, Any]]) -> dict[str, Any]:
    rates = sorted(sample["throughput"] for sample in samples)
    q1, q3 = (statistics.quantiles(rates, n=4, method="inclusive")[::2]) if len(rates) >= 2 else (rates[0], rates[0])
    per_sequence = {
        role: _median_or_none(
            [
                None if sample["cpu_seconds"][role] is None else 1e3 * sample["cpu_seconds"][role] / sample["sequences"]
                for sample in samples
            ]
        )
        for role in samples[0]["cpu_seconds"]
    }
    return {
        "variant": name,
        "samples": len(rates),
        "throughput_median": statistics.median(rates),
        "throughput_q1": q1,
        "throughput_q3": q3,
        "throughput_min": rates[0],
        "throughput_max": rates[-1],
        "sequences": sum(sample["sequences"] for sample in samples),
        # Medians over the samples of each sample's percentiles.
        "latency_us": {
            kind: {
                key: statistics.median(sample["latency_us"][kind][key] for sample in samples)
                for key in samples[0]["latency_us"][kind]
            }
            for kind in KINDS
        },
        "server_cpu_ms_per_sequence": per_sequence.get("server"),
        "backend_cpu_ms_per_sequence": per_sequence.get("backend"),
        "client_cpu_ms_per_sequence": statistics.median(
            1e3 * sample["client_cpu_seconds"] / sample["sequences"] for sample in samples
        ),
    }


def run(settings: Settings, progress: Progress) -> dict[str, Any]:
    reason = available()
    if reason is not None:
        progress(f"http: skipped: {reason}")
        return {"skipped": reason}
    notes: list[str] = []
    redis_reason = redis_workload.available()
    if redis_reason is not None:
        notes.append(f"responsestore-redis not measured: {redis_reason}")
        progress(f"http: responsestore-redis skipped: {redis_reason}")
    servers: dict[str, ServerProcess] = {}
    throughput: dict[str, list[dict[str, Any]]] = {}
    long_ns: dict[str, list[float]] = {}
    long_cpu: dict[str, list[dict[str, float | None]]] = {}
    with contextlib.ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="responsestore-bench-http-")))
        redis_server = None
        if redis_reason is None:
            redis_server = redis_workload.Server()
            stack.callback(redis_server.stop)
        argvs = commands(directory, None if redis_server is None else redis_server.url)
        for name, argv in argvs.items():  # all start at once; each is stopped however this block ends
            servers[name] = ServerProcess(name, argv)
            stack.callback(servers[name].stop)
        for name, server in servers.items():
            progress(f"http: {name} serving on {server.wait_ready(START_TIMEOUT)}")
        watched = {name: {"server": server.pid} for name, server in servers.items()}
        if redis_server is not None:
            watched["responsestore-redis"]["backend"] = redis_server.process.pid

        for repeat in range(settings.http_repeats):
            for name, server in servers.items():
                sample = load_sample(server.url, settings.http_seconds, watched[name])
                server.check_running()
                throughput.setdefault(name, []).append(sample)
                progress(
                    f"http: throughput sample {repeat + 1}/{settings.http_repeats}: {name}: "
                    f"{sample['throughput']:,.0f} sequences/s"
                )

        text = long_text(settings.http_long_words)
        clients = {name: Client(server.url) for name, server in servers.items()}
        for client in clients.values():
            stack.callback(client.close)
            client.create(text)  # untimed: the first long reply warms up each server
        for repeat in range(settings.http_long_repeats):
            for name, client in clients.items():
                before = {role: cpu_seconds(pid) for role, pid in watched[name].items()}
                start = time.perf_counter_ns()
                client.create(text)
                elapsed = time.perf_counter_ns() - start
                after = {role: cpu_seconds(pid) for role, pid in watched[name].items()}
                long_ns.setdefault(name, []).append(elapsed)
                long_cpu.setdefault(name, []).append({role: _difference(before[role], after[role]) for role in after})
            progress(
                f"http: long reply {repeat + 1}/{settings.http_long_repeats}: "
                + ", ".join(f"{name} {values[-1] / 1e6:,.1f} ms" for name, values in long_ns.items())
            )
        for server in servers.values():
            server.check_running()
        shown = {name: _shown(argv, directory) for name, argv in argvs.items()}
    # Every process has stopped here (the stack unwound).
    notes.extend(
        f"{server.name} did not stop within {STOP_TIMEOUT:.0f} s of SIGTERM and was killed"
        for server in servers.values()
        if server.killed
    )
    throughput_rows = [_throughput_row(name, samples) for name, samples in throughput.items()]
    long_rows = []
    for name, samples in long_ns.items():
        cpu = {role: _median_or_none([sample[role] for sample in long_cpu[name]]) for role in long_cpu[name][0]}
        long_rows.append(
            {
                "variant": name,
                **summarize(samples),
                "server_cpu_ms": _milliseconds(cpu.get("server")),
                "backend_cpu_ms": _milliseconds(cpu.get("backend")),
            }
        )
    base_rate = next(row["throughput_median"] for row in throughput_rows if row["variant"] == BASELINE)
    base_time = next(row["median_ns"] for row in long_rows if row["variant"] == BASELINE)
    for row in throughput_rows:
        ratio = row["throughput_median"] / base_rate
        progress(f"http: {row['variant']}: {row['throughput_median']:,.0f} sequences/s ({ratio:.2f}x {BASELINE})")
    for row in long_rows:
        ratio = row["median_ns"] / base_time
        progress(f"http: {row['variant']}: {row['median_ns'] / 1e6:,.1f} ms per long reply ({ratio:.2f}x {BASELINE})")
    return {
        "baseline": BASELINE,
        "server_threads": SERVER_THREADS,
        "client_threads": CLIENT_THREADS,
        "sample_seconds": settings.http_seconds,
        "input_words": len(INPUT.split()),
        "long_words": settings.http_long_words,
        "cores": os.cpu_count(),
        "commands": shown,
        "throughput": throughput_rows,
        "long_reply": long_rows,
        "notes": notes,
    }
