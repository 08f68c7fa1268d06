"""The benchmark suite runs end to end at a smoke size and writes results of the documented shape.

No timing is asserted: only that every workload produced one well-formed row per (operation, size, variant),
that the statistics are ordered, that the targets are all present and coherent, and that the reports render.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `pytest` run without `python -m` from elsewhere
    sys.path.insert(0, str(ROOT))

import benchmarks  # noqa: E402
import responsestore  # noqa: E402
from benchmarks import asgi, baselines, http, memory, report, targets  # noqa: E402
from benchmarks._timing import SMOKE, Progress  # noqa: E402
from benchmarks.http_baseline import PlainDictApp  # noqa: E402

WORKLOADS = [
    "ops",
    "locks",
    "mixed",
    "sqlite",
    "redis",
    "postgres",
    "http",
    "asgi",
]  # memory spawns interpreters: tested in-process below
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
    "long-response-memory",
    "mixed-8-threads",
    "sqlite-vs-raw",
    "redis-vs-raw",
    "redis-create-commands",
    "redis-round-trips",
    "http-memory-vs-plain-dict",
    "http-sqlite-vs-plain-dict",
    "http-redis-vs-plain-dict",
    "http-long-reply-sqlite",
    "http-long-reply-redis",
    "asgi-streams-held",
    "asgi-retrieve-under-load",
    "asgi-vs-wsgi-throughput",
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
        assert [row["variant"] for row in section["results"]] == [
            "responsestore-sqlite",
            "raw-sqlite3",
            "responsestore-memory",
        ]
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


def test_postgres_rows(results: dict[str, Any]) -> None:
    section = results["workloads"]["postgres"]
    if "skipped" in section:  # no PostgreSQL here (the PostgreSQL tests themselves fail under CI without it)
        assert not os.environ.get("CI"), section["skipped"]
        return
    assert [row["variant"] for row in section["results"]] == ["responsestore-postgres", "raw-psycopg"]
    for row in section["results"]:
        check_stats(row)
    assert section["throughput"]["one"] > 0
    assert section["throughput"]["many"] > 0


def test_http_rows(results: dict[str, Any]) -> None:
    section = results["workloads"]["http"]
    if "skipped" in section:  # no waitress here
        assert section == {"skipped": http.available()}
        return
    variants = ["plain-dict", "responsestore-memory", "responsestore-sqlite"]
    if shutil.which("redis-server") is not None:
        variants.append("responsestore-redis")
    else:
        assert [note for note in section["notes"] if note.startswith("responsestore-redis not measured")]
    assert list(section["commands"]) == variants
    assert not [note for note in section["notes"] if "was killed" in note]  # every server stopped on SIGTERM
    assert section["long_words"] == SMOKE.http_long_words
    assert [row["variant"] for row in section["throughput"]] == variants
    for row in section["throughput"]:
        assert row["samples"] == SMOKE.http_repeats
        assert 0 < row["throughput_min"] <= row["throughput_q1"] <= row["throughput_median"]
        assert row["throughput_median"] <= row["throughput_q3"] <= row["throughput_max"]
        assert row["sequences"] >= SMOKE.http_repeats
        for kind in ("create", "retrieve", "input_items"):
            found = row["latency_us"][kind]
            assert 0 < found["p50"] <= found["p90"] <= found["p99"] <= found["max"]
        assert row["client_cpu_ms_per_sequence"] > 0
        if sys.platform == "linux":
            assert row["server_cpu_ms_per_sequence"] > 0
        assert (row["backend_cpu_ms_per_sequence"] is not None) == (
            row["variant"] == "responsestore-redis" and sys.platform == "linux"
        )
    assert [row["variant"] for row in section["long_reply"]] == variants
    for row in section["long_reply"]:
        assert 0 < row["min_ns"] <= row["q1_ns"] <= row["median_ns"] <= row["q3_ns"] <= row["max_ns"], row
        assert row["samples"] == SMOKE.http_long_repeats


def test_asgi_rows(results: dict[str, Any]) -> None:
    section = results["workloads"]["asgi"]
    if "skipped" in section:  # no uvicorn, websockets or waitress here
        assert section == {"skipped": asgi.available()}
        return
    assert list(section["commands"]) == ["asgi-streams", "wsgi", "asgi"]
    assert not section["notes"]  # every server stopped on SIGTERM
    hold = section["hold"]
    assert (hold["streams"], hold["websockets"], hold["words"]) == (
        SMOKE.asgi_streams,
        SMOKE.asgi_websockets,
        SMOKE.asgi_words,
    )
    for kind, wanted in (("sse", SMOKE.asgi_streams), ("websocket", SMOKE.asgi_websockets)):
        found = hold["kinds"][kind]
        # Every stream started, opened and ended with response.completed; nothing else ended.
        assert found["started"] == found["opened"] == found["completed"] == wanted, found
        assert found["ended"] == {"response.completed": wanted}
        assert found["failures"] == []
        assert found["events"] >= wanted * (SMOKE.asgi_words + 3)  # created, a delta per word, ..., completed
        assert 0 < found["first_event_ms"]["p50"] <= found["first_event_ms"]["max"]
        # Open at least as long as the model takes to say its words.
        assert SMOKE.asgi_words * hold["seconds_per_word"] * 0.9 < found["open_seconds"]["p50"]
    total = SMOKE.asgi_streams + SMOKE.asgi_websockets
    assert hold["held"]
    assert hold["peak_open"] == total
    assert 0 <= hold["ramp_seconds"] < hold["wall_seconds"]
    assert 0 < hold["held_seconds"] < hold["wall_seconds"]
    assert hold["retrieve_idle"]["samples"] == SMOKE.asgi_idle_probes
    for key in ("retrieve_idle", "retrieve_under_load"):
        found = hold[key]
        assert found["samples"] >= 1
        assert 0 < found["median_ms"] <= found["max_ms"]
        assert found["p95_ms"] <= found["max_ms"]
    if sys.platform == "linux":
        assert 0 < hold["rss_before_bytes"] <= hold["rss_peak_bytes"] <= hold["hwm_bytes"]
        assert hold["bytes_per_open_stream"] == (hold["rss_peak_bytes"] - hold["rss_before_bytes"]) / total
        assert hold["server_cpu_seconds"] > 0
    assert [row["variant"] for row in section["throughput"]] == ["wsgi", "asgi"]
    for row in section["throughput"]:
        assert row["samples"] == SMOKE.asgi_repeats
        assert 0 < row["requests_min"] <= row["requests_median"] <= row["requests_max"]
        assert row["requests"] >= SMOKE.asgi_repeats
        assert 0 < row["create_p50_ms"] <= row["create_p99_ms"]
        assert row["client_cpu_ms_per_request"] > 0


def test_every_process_stops_when_the_asgi_workload_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    reason = asgi.available()
    if reason is not None:
        pytest.skip(reason)
    started: list[http.ServerProcess] = []
    real = http.ServerProcess

    def recording(name: str, argv: list[str]) -> http.ServerProcess:
        server = real(name, argv)
        started.append(server)
        return server

    def failing(server: http.ServerProcess, settings: Any, progress: Any) -> dict[str, Any]:
        raise RuntimeError("the stream client broke")

    monkeypatch.setattr(http, "ServerProcess", recording)
    monkeypatch.setattr(asgi, "hold", failing)
    with pytest.raises(RuntimeError, match="the stream client broke"):
        asgi.run(SMOKE, Progress(quiet=True))
    assert [server.name for server in started] == ["asgi-streams", "wsgi", "asgi"]
    assert all(server.process.returncode == 0 for server in started)  # each stopped (and reaped) on SIGTERM


def _call(app: Any, method: str, path: str, body: object = None) -> Any:
    """One request to a WSGI ``app`` in-process; returns the status and the decoded JSON body."""
    data = b"" if body is None else json.dumps(body).encode()
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "CONTENT_LENGTH": str(len(data)),
        "wsgi.input": io.BytesIO(data),
    }
    statuses = []
    payload = b"".join(app(environ, lambda status, headers: statuses.append(status)))
    return statuses[0], json.loads(payload)


def test_plain_dict_baseline_answers_like_the_responsestore_app() -> None:
    from responsestore.wsgi import make_app  # noqa: PLC0415

    body = {"model": "echo", "input": "please repeat these eight words back to me"}
    ours = make_app(responsestore.ResponseStore())
    try:
        answers = {}
        for name, app in (("responsestore", ours), ("plain-dict", PlainDictApp())):
            status, created = _call(app, "POST", "/v1/responses", body)
            assert status == "200 OK"
            retrieved = _call(app, "GET", f"/v1/responses/{created['id']}")
            listed = _call(app, "GET", f"/v1/responses/{created['id']}/input_items")
            answers[name] = (created, retrieved, listed)
    finally:
        ours.close()
    expected, found = answers["responsestore"], answers["plain-dict"]
    assert found[1] == ("200 OK", found[0])
    # The same JSON but for ids and timestamps, so both servers encode and send as much.
    volatile = {"id", "created_at", "completed_at"}
    assert {k: v for k, v in found[0].items() if k not in volatile | {"output"}} == {
        k: v for k, v in expected[0].items() if k not in volatile | {"output"}
    }
    assert [{**item, "id": ""} for item in found[0]["output"]] == [{**item, "id": ""} for item in expected[0]["output"]]
    assert set(found[2][1]) == set(expected[2][1])
    assert [sorted(item) for item in found[2][1]["data"]] == [sorted(item) for item in expected[2][1]["data"]]
    assert _call(PlainDictApp(), "GET", "/v1/responses/resp_missing")[0] == "404 Not Found"


def test_a_server_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import signal, threading
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("stubborn serving on http://127.0.0.1:1/v1", flush=True)
        threading.Event().wait()
        """
    )
    server = http.ServerProcess("stubborn", [sys.executable, "-c", script])
    try:
        assert server.wait_ready(30) == "http://127.0.0.1:1/v1"
        server.check_running()
    finally:
        server.stop(timeout=0.5)
    assert server.killed
    assert server.process.returncode is not None


def test_a_server_that_fails_to_start_is_reported() -> None:
    server = http.ServerProcess("broken", [sys.executable, "-c", "import sys; sys.exit('no such store')"])
    try:
        with pytest.raises(RuntimeError, match="no such store"):
            server.wait_ready(30)
    finally:
        server.stop()
    assert not server.killed


def test_every_process_stops_when_the_http_workload_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    if http.available() is not None:
        pytest.skip(http.available())
    started: list[http.ServerProcess] = []
    real = http.ServerProcess

    def recording(name: str, argv: list[str]) -> http.ServerProcess:
        server = real(name, argv)
        started.append(server)
        return server

    def failing(url: str, seconds: float, watched: dict[str, int]) -> dict[str, Any]:
        raise RuntimeError("the load generator broke")

    servers: list[Any] = []
    real_redis = http.redis_workload.Server

    def recording_redis() -> Any:
        servers.append(real_redis())
        return servers[-1]

    monkeypatch.setattr(http, "ServerProcess", recording)
    monkeypatch.setattr(http, "load_sample", failing)
    monkeypatch.setattr(http.redis_workload, "Server", recording_redis)
    with pytest.raises(RuntimeError, match="the load generator broke"):
        http.run(SMOKE, Progress(quiet=True))
    assert len(started) >= 3
    for server in [*started, *servers]:
        assert server.process.returncode is not None  # reaped
    assert all(server.process.returncode == 0 for server in started)  # each stopped on SIGTERM


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
    if "throughput" in results["workloads"]["http"]:
        assert by_name["http-memory-vs-plain-dict"]["met"] is not None
        assert by_name["http-long-reply-sqlite"]["met"] is not None
        assert "the target is set at 1,000" in by_name["http-long-reply-sqlite"]["detail"]  # smoke: fewer words
    if "hold" in results["workloads"]["asgi"]:
        for name in ("asgi-streams-held", "asgi-retrieve-under-load", "asgi-vs-wsgi-throughput"):
            assert by_name[name]["met"] is not None
        assert by_name["asgi-streams-held"]["value"] == 1.0  # every stream open at once and completed
        assert "the target is set at 1,000 SSE + 200 WebSocket" in by_name["asgi-retrieve-under-load"]["detail"]


def test_targets_of_an_empty_run_are_not_assessed() -> None:
    found = targets.evaluate({})
    assert [target["name"] for target in found] == TARGET_NAMES
    assert all(target["met"] is None and target["value"] is None for target in found)


def test_reports_render(results: dict[str, Any], tmp_path: Path) -> None:
    json_path, md_path = report.write_results(results, tmp_path / "out")
    assert json.loads(json_path.read_text(encoding="utf-8")) == json.loads(json.dumps(results))
    text = md_path.read_text(encoding="utf-8")
    assert text.startswith("# Benchmark results\n")
    for heading in (
        "## Targets",
        "## Single-operation cost",
        "## Uncontended lock",
        "## Mixed workload",
        "## HTTP",
        "## ASGI",
    ):
        assert heading in text
    assert text.count("| `get` |") == len(SMOKE.sizes)
    page = report.write_docs_page(results, tmp_path / "benchmarks.md", {})
    assert page.read_text(encoding="utf-8").startswith("(benchmarks)=\n# Benchmarks\n")


def test_docs_page_answers_each_question_with_its_plot(results: dict[str, Any], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    page, images = report.write_docs(results, tmp_path / "benchmarks.md", tmp_path / "_static")
    asked = report.questions(results)
    # One plot per question that has figures to plot, each at the documented width.
    assert set(images) == {question.key for question in asked if question.plot is not None}
    served = {"http"} if "throughput" in results["workloads"]["http"] else set()  # waitress may be missing
    assert {"ops", "growth", "threads", "backends", *served} <= set(images)
    for path in images.values():
        header = path.read_bytes()[:24]
        assert header[:8] == b"\x89PNG\r\n\x1a\n"
        assert int.from_bytes(header[16:20], "big") == report.PLOT_WIDTH_INCHES * report.PLOT_DPI
    text = page.read_text(encoding="utf-8")
    # The page links the results it was written from, copied beside its plots.
    assert json.loads((tmp_path / "_static" / "results.json").read_text(encoding="utf-8")) == json.loads(
        json.dumps(results)
    )
    assert "{download}`results.json <_static/results.json>`" in text
    assert text.count("\n## ") == len(asked) + 2  # the questions, then the baselines and the details
    for question in asked:
        section = text.split(f"\n## {question.heading}\n", 1)[1].split("\n## ", 1)[0]
        assert question.answer in section
        if question.key in images:
            assert f"](_static/{images[question.key].name})" in section
    # The user's questions come first, the engineering report after them; what was not run says so.
    assert text.index("## What it is compared with") < text.index(f"## {asked[0].heading}")
    assert text.index(f"## {asked[-1].heading}") < text.index("## Details") < text.index("### Targets")
    assert "Not measured in this run: the workload was not run." in text  # memory: not part of this run
    assert "python -m benchmarks\n```" in text  # the one command that regenerates the page


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
