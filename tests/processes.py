"""Child processes of the SQL backend tests, and what their tests of processes racing on one store share.

:class:`Child` runs a Python script and hands over the lines it prints. In a race test, each worker opens the
store, says ``ready``, waits for a line, then for each of its rounds runs the backend test's own step, goes for one
of the ``races`` (every worker completes the same record, expecting version 1) and, every few rounds, walks the
list of the owner ``stable`` page by page; it prints its results as one JSON line.
"""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from typing import Any

import pytest

import responsestore

TIMEOUT = 60.0  # seconds any one wait on a child or a thread may take before the test fails


class Child:
    """A Python process running ``script``; its stdout lines arrive through a queue (reads never block forever).

    Use it as a context manager: leaving kills the child if it still runs and closes every pipe.
    """

    def __init__(self, script: str, *args: str) -> None:
        self._errors = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in __exit__
        self.process = subprocess.Popen(
            [sys.executable, "-c", script, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errors,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()
        self._reader.join(TIMEOUT)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        self._errors.close()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.endswith("\n"):
                self._lines.put(line[:-1])
            # else: the last line, cut short by a kill while the child printed it; a report the child never
            # finished is no report (the tests count only what was fully acknowledged)
        self._lines.put(None)

    def line(self) -> str:
        """The next line the child printed; fails the test if none comes within TIMEOUT or the child ended."""
        try:
            line = self._lines.get(timeout=TIMEOUT)
        except queue.Empty:
            self.kill()
            pytest.fail(f"the child printed nothing for {TIMEOUT} s: {self.stderr()}")
        if line is None:
            code = self.process.wait(TIMEOUT)
            pytest.fail(f"the child ended early (exit {code}): {self.stderr()}")
        return line

    def send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def finish(self) -> None:
        """Close the child's input and wait for it to exit 0."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        code = self.process.wait(TIMEOUT)
        assert code == 0, self.stderr()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(TIMEOUT)

    def rest(self) -> list[str]:
        """Every line still unread, once the child has ended."""
        assert self.process.poll() is not None
        self._reader.join(TIMEOUT)
        lines: list[str] = []
        while (line := self._lines.get_nowait()) is not None:
            lines.append(line)
        return lines

    def stderr(self) -> str:
        self._errors.seek(0)
        return self._errors.read()


def walk(store: responsestore.BaseStore, **kwargs: Any) -> list[str]:
    """Every id of a list, following ``after=last_id`` page by page."""
    ids: list[str] = []
    page = store.list(limit=7, **kwargs)
    ids.extend(record.id for record in page.data)
    while page.has_more:
        page = store.list(limit=7, after=page.last_id, **kwargs)
        ids.extend(record.id for record in page.data)
    return ids


#: The worker's loop: ``{open}`` opens the store from ``target`` (argv 1); ``{setup}`` runs once, ``{step}``
#: every round (both indented by 4, inside the ``try``); ``{limit}`` and ``{every}`` size the page walks.
_WORKER = """
import json, random, sys
from responsestore import InvalidTransition, VersionConflict
{imports}
target, index, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
shared = json.loads(sys.argv[4])
rng = random.Random(index)
store = {open}
result = {{"created": [], "increments": {{}}, "conflicts": 0, "won": [], "chain": [], "walks": [], "errors": []}}
print("ready", flush=True)
sys.stdin.readline()
try:
{setup}
    for step in range(rounds):
{step}
        race = shared["races"][step % len(shared["races"])]  # every process goes for the same one
        try:
            store.complete(race, [{{"role": "assistant", "content": str(index)}}], expected_version=1)
            result["won"].append(race)
        except (VersionConflict, InvalidTransition):
            pass
        if step % {every} == 0:
            page = store.list(limit={limit}, owner="stable", order="asc")
            ids = [r.id for r in page.data]
            while page.has_more:
                page = store.list(limit={limit}, owner="stable", order="asc", after=page.last_id)
                ids += [r.id for r in page.data]
            result["walks"].append(ids)
except Exception as exc:
    result["errors"].append(repr(exc))
print(json.dumps(result), flush=True)
store.close()
"""


def worker(*, imports: str, open: str, step: str, setup: str = "    pass", limit: int, every: int) -> str:
    """The source of a worker (see :data:`_WORKER` for the parts)."""
    return _WORKER.format(imports=imports, open=open, setup=setup, step=step, limit=limit, every=every)


def run_workers(script: str, target: str, workers: int, rounds: int, shared: dict[str, Any]) -> list[dict[str, Any]]:
    """Start ``workers`` processes of ``script`` on ``target``, let them go at once; their results (none failed)."""
    with contextlib.ExitStack() as stack:
        children = [
            stack.enter_context(Child(script, target, str(n), str(rounds), json.dumps(shared))) for n in range(workers)
        ]
        assert [child.line() for child in children] == ["ready"] * workers
        for child in children:
            child.send("go")
        results = [json.loads(child.line()) for child in children]
        for child in children:
            child.finish()
    assert [result["errors"] for result in results] == [[]] * workers
    return results


def check_races(store: responsestore.BaseStore, races: list[str], results: list[dict[str, Any]]) -> None:
    """Each race had exactly one winner, and the stored output is the winner's."""
    wins = Counter(race for result in results for race in result["won"])
    assert sorted(wins) == sorted(races)
    assert set(wins.values()) == {1}
    for index, result in enumerate(results):
        for race in result["won"]:
            record = store.get(race)
            assert (record.version, record.output[0]["content"][0]["text"]) == (2, str(index))
