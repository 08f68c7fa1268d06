"""The benchmark suite runs end to end at a smoke size and writes results of the documented shape.

No timing is asserted: only that every workload produced one well-formed row per (operation, size, variant),
that the statistics are ordered, that the targets are all present and coherent, and that the reports render.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `pytest` run without `python -m` from elsewhere
    sys.path.insert(0, str(ROOT))

import benchmarks  # noqa: E402
import responsestore  # noqa: E402
from benchmarks import baselines, memory, report, targets  # noqa: E402
from benchmarks._timing import SMOKE, Progress  # noqa: E402

WORKLOADS = ["ops", "locks", "mixed", "sqlite", "redis"]  # memory spawns interpreters: tested in-process below
TARGET_NAMES = [
    "list-vs-seed-port",
    "list-flat",
    "get-vs-bare-dict",
    "get-vs-seed-port",
    "get-vs-rwlock-dict",
    "conversation-vs-seed-port",
    "input-items-vs-seed-port",
    "create-complete-vs-seed-port",
    "memory-at-cap",
    "memory-at-cap-flat",
    "rwlock-vs-readerwriterlock",
    "rwlock-vs-fasteners",
    "memory-vs-plain-dict",
    "mixed-8-threads",
    "sqlite-vs-raw",
    "redis-vs-raw",
    "redis-round-trips",
]


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    return benchmarks.run_suite(SMOKE, WORKLOADS, Progress(quiet=True))


def expected_variants() -> list[str]:
    missing = baselines.missing_dependencies()
    dict_variants = [cls.name for cls, needs in baselines.DICT_VARIANTS if needs is None or needs not in missing]
    return ["responsestore", "seed-port", *dict_variants]


def check_stats(row: dict[str, Any]) -> None:
    assert 0 < row["min_ns"] <= row["q1_ns"] <= row["median_ns"] <= row["q3_ns"] <= row["max_ns"], row
    assert row["samples"] in (SMOKE.repeats, SMOKE.slow_repeats)
    assert row["ops_per_sample"] >= 1
    assert 0 <= row["cpu_substituted"] <= row["samples"]


def test_document_shape(results: dict[str, Any]) -> None:
    assert results["schema"] == benchmarks.SCHEMA
    assert results["settings"]["mode"] == "smoke"
    assert set(results["machine"]) >= {"cpu", "cores", "python", "date", "responsestore", "commit"}
    assert results["machine"]["cores"] >= 1
    assert list(results["workloads"]) == WORKLOADS
    assert not [name for name, section in results["workloads"].items() if "error" in section]
    assert results["duration_seconds"] > 0
    json.dumps(results, allow_nan=False)  # the results file is strict JSON


def test_ops_rows(results: dict[str, Any]) -> None:
    section = results["workloads"]["ops"]
    assert section["sizes"] == list(SMOKE.sizes)
    rows = section["results"]
    keys = [(row["op"], row["size"], row["variant"]) for row in rows]
    expected = [(op, size, v) for size in SMOKE.sizes for op in section["ops"] for v in expected_variants()]
    vllm = [] if "openai" in baselines.missing_dependencies() else ["vllm-like"]
    expected += [("get", size, v) for size in SMOKE.sizes for v in vllm]  # it takes part in get only
    assert sorted(keys) == sorted(expected)
    assert len(set(keys)) == len(keys)
    for row in rows:
        check_stats(row)
    assert set(section["build_seconds"]) == {*expected_variants(), *vllm}


def test_lock_rows(results: dict[str, Any]) -> None:
    rows = results["workloads"]["locks"]["results"]
    locks = ["threading.Lock", "threading.RLock", "responsestore.RWLock"]
    missing = baselines.missing_dependencies()
    if "readerwriterlock" not in missing:
        locks.append("readerwriterlock.RWLockFair")
    if "fasteners" not in missing:
        locks.append("fasteners.ReaderWriterLock")
    keys = sorted((row["lock"], row["mode"], row["form"]) for row in rows)
    assert keys == sorted(
        (lock, mode, form) for lock in locks for mode in ("read", "write") for form in ("methods", "with")
    )
    for row in rows:
        check_stats(row)


def test_mixed_rows(results: dict[str, Any]) -> None:
    section = results["workloads"]["mixed"]
    rows = section["results"]
    assert sorted((row["variant"], row["threads"]) for row in rows) == sorted(
        (v, t) for v in expected_variants() for t in SMOKE.mixed_threads
    )
    for row in rows:
        per_thread = max(20, SMOKE.mixed_ops // row["threads"])
        assert row["operations"] == per_thread * row["threads"]
        assert row["runs"] == SMOKE.mixed_repeats
        assert 0 < row["throughput_min"] <= row["throughput_median"] <= row["throughput_max"]
        assert 0 < row["p50_us"] <= row["p99_us"]
        assert row["p99_us_min"] <= row["p99_us"] <= row["p99_us_max"]


def test_sqlite_skips_until_the_backend_exists(results: dict[str, Any]) -> None:
    section = results["workloads"]["sqlite"]
    if hasattr(responsestore, "open"):
        assert [row["variant"] for row in section["results"]] == ["responsestore-sqlite", "raw-sqlite3"]
    else:
        assert section == {"skipped": "responsestore.open does not exist yet: there is no SQLite backend to measure"}


def test_redis_rows(results: dict[str, Any]) -> None:
    section = results["workloads"]["redis"]
    if "skipped" in section:  # no redis-server here (the Redis tests themselves fail under CI without it)
        return
    assert [row["variant"] for row in section["results"]] == ["responsestore-redis", "raw-redis-py"]
    for row in section["results"]:
        check_stats(row)
    assert section["round_trips"]["get"] == 1
    assert section["throughput"]["one"] > 0
    assert section["throughput"]["many"] > 0


def test_targets(results: dict[str, Any]) -> None:
    found = results["targets"]
    assert [target["name"] for target in found] == TARGET_NAMES
    for target in found:
        assert target["comparison"] in ("<=", ">=")
        if target["value"] is None:
            assert target["met"] is None
            assert target["detail"].startswith("not assessed")
        else:
            assert math.isfinite(target["value"])
            holds = (
                target["value"] <= target["threshold"]
                if target["comparison"] == "<="
                else (target["value"] >= target["threshold"])
            )
            assert target["met"] is holds
    by_name = {target["name"]: target for target in found}
    assert by_name["memory-vs-plain-dict"]["met"] is None  # memory was not run here
    assert by_name["list-flat"]["value"] == 1.0  # one size only: the ratio of a figure to itself
    assert by_name["get-vs-seed-port"]["met"] is not None


def test_targets_of_an_empty_run_are_not_assessed() -> None:
    found = targets.evaluate({})
    assert [target["name"] for target in found] == TARGET_NAMES
    assert all(target["met"] is None and target["value"] is None for target in found)


def test_reports_render(results: dict[str, Any], tmp_path: Path) -> None:
    json_path, md_path = report.write_results(results, tmp_path / "out")
    assert json.loads(json_path.read_text(encoding="utf-8")) == json.loads(json.dumps(results))
    text = md_path.read_text(encoding="utf-8")
    assert text.startswith("# Benchmark results\n")
    for heading in ("## Targets", "## Single-operation cost", "## Uncontended lock", "## Mixed workload"):
        assert heading in text
    assert text.count("| `get` |") == len(SMOKE.sizes)
    page = report.write_docs_page(results, tmp_path / "benchmarks.md", {})
    assert page.read_text(encoding="utf-8").startswith("(benchmarks)=\n# Benchmarks\n")


@pytest.mark.parametrize("kind", list(memory.KINDS))
def test_memory_probe_counts_what_it_keeps(kind: str) -> None:
    if kind == "vllm-like" and "openai" in baselines.missing_dependencies():
        pytest.skip("openai is not installed")
    per_record = memory._probe(kind, 100, "tracemalloc")
    # a small response is some hundreds of bytes to a few kilobytes in any representation
    assert 300 < per_record < 20_000


def test_memory_at_cap_probe_traces_the_store_from_its_creation() -> None:
    found = memory._probe_at_cap(2 * memory.CAP)
    assert set(found) == {"fresh", "half", "after"}
    # 1000 small records are some hundreds of kilobytes to a few megabytes; half the cycles is the cap itself here
    assert 300_000 < found["fresh"] <= found["after"] < 20_000_000
    assert abs(found["half"] - found["fresh"]) < 10_000  # the same moment, read twice
