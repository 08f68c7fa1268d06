"""The responsestore benchmark suite: ``python -m benchmarks`` (see ``benchmarks/README.md``).

Each workload family is one module with ``NAME``, ``TITLE`` and ``run(settings, progress) -> dict``; adding a
family (a new backend, say) is adding a module to ``WORKLOADS``. :func:`run_suite` runs the chosen families,
then checks the targets (:mod:`benchmarks.targets`) on what they measured.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from . import asgi, http, locks, memory, mixed, ops, postgres, redis, sqlite, targets
from ._timing import MODES, Progress, Settings

__all__ = ["MODES", "WORKLOADS", "machine_info", "run_suite"]

#: Every workload family, in the order the suite runs them.
WORKLOADS: dict[str, ModuleType] = {
    module.NAME: module for module in (ops, locks, mixed, memory, sqlite, redis, postgres, http, asgi)
}

SCHEMA = 1
ROOT = Path(__file__).resolve().parent.parent


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _memory_gb() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def _commit() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False, timeout=10
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "responsestore"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = done.stdout.strip() or "unknown"
    return f"{commit}+uncommitted changes" if dirty.stdout.strip() else commit


def machine_info() -> dict[str, Any]:
    """The CPU model, core count, memory, Python version, library version, commit and date of this run."""
    import responsestore  # noqa: PLC0415

    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "platform": platform.platform(),
        "python": " ".join(sys.version.split()),
        "implementation": platform.python_implementation(),
        "responsestore": responsestore.__version__,
        "commit": _commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average": _load_average(),
    }


def _load_average() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def run_suite(settings: Settings, names: list[str] | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Run the workload families ``names`` (default: all) with ``settings``; return the results document.

    A family that raises is recorded with its error (``{"error": ...}``) and the others still run.
    """
    progress = progress or Progress()
    chosen = list(WORKLOADS) if names is None else names
    unknown = [name for name in chosen if name not in WORKLOADS]
    if unknown:
        raise ValueError(f"unknown workloads {unknown}; choose from {list(WORKLOADS)}")
    results: dict[str, Any] = {
        "schema": SCHEMA,
        "machine": machine_info(),
        "settings": settings.to_json(),
        "workloads": {},
    }
    started = time.perf_counter()
    cpu_started = time.process_time()
    progress(f"benchmarks: {settings.mode} mode, workloads {', '.join(chosen)}")
    for name in chosen:
        module = WORKLOADS[name]
        progress(f"== {module.TITLE}")
        try:
            results["workloads"][name] = module.run(settings, progress)
        except Exception as exc:  # noqa: BLE001 - recorded, reported, and turned into a failing exit status
            progress(f"!! {name} failed: {exc!r}")
            traceback.print_exc()
            results["workloads"][name] = {"error": f"{type(exc).__name__}: {exc}"}
    results["duration_seconds"] = time.perf_counter() - started
    results["cpu_seconds"] = time.process_time() - cpu_started  # this process only (not the memory probes)
    results["machine"]["load_average_end"] = _load_average()
    results["targets"] = targets.evaluate(results["workloads"])
    return results
