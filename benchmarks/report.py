"""Writing results: the JSON file, the Markdown tables, the PNG plots and the documentation page."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "DASH",
    "NONE",
    "TIMES",
    "Question",
    "markdown",
    "plots",
    "questions",
    "sections",
    "write_docs",
    "write_docs_page",
    "write_results",
]

VARIANT_ORDER = [
    "responsestore",
    "seed-port",
    "server-dict",
    "rwlock-fair-dict",
    "fasteners-dict",
    "bare-dict",
    "vllm-like",
]
LOCK_ORDER = [
    "responsestore.RWLock",
    "readerwriterlock.RWLockFair",
    "fasteners.ReaderWriterLock",
    "threading.Lock",
    "threading.RLock",
]
PLOT_FILES = {
    "ops": "ops.png",
    "locks": "locks.png",
    "mixed": "mixed.png",
    "memory": "memory.png",
    "redis": "redis.png",
    "http": "http.png",
}
RUN_COMMAND = "python -m benchmarks"
TIMES = "\u00d7"  # the multiplication sign
DASH = "\u2013"  # an en dash, for ranges
NONE = DASH  # a cell with no figure


def write_results(results: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    """Write ``results.json`` and ``results.md`` into ``directory``; return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "results.json"
    json_path.write_text(json.dumps(results, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    md_path = directory / "results.md"
    md_path.write_text(markdown(results), encoding="utf-8")
    return json_path, md_path


# ------------------------------------------------------------------------------------------------ formatting


def _time(ns: float | None) -> str:
    if ns is None or (isinstance(ns, float) and math.isnan(ns)):
        return NONE
    if ns >= 1e9:
        return f"{ns / 1e9:.2f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.3g} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.3g} µs"
    return f"{ns:.0f} ns"


def _spread(row: dict[str, Any]) -> str:
    """The median, and the interquartile range as a ± percentage of it."""
    median = row["median_ns"]
    half_iqr = (row["q3_ns"] - row["q1_ns"]) / 2
    percent = 100 * half_iqr / median if median else 0.0
    return f"{_time(median)} ±{percent:.0f}%"


def _table(header: list[str], rows: Iterable[list[str]], align: list[str] | None = None) -> list[str]:
    align = align or ["---"] + ["--:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return [*lines, ""]


def _ordered(names: Iterable[str], order: list[str]) -> list[str]:
    unique = list(dict.fromkeys(names))
    return sorted(unique, key=lambda name: (order.index(name) if name in order else len(order), name))


def _verdict(met: bool | None) -> str:
    return {True: "**met**", False: "**missed**", None: "not assessed"}[met]


def _ratio(value: float | None) -> str:
    if value is None:
        return NONE
    if value >= 100:
        return f"{value:,.0f}{TIMES}"
    return f"{value:.2f}{TIMES}"


# ------------------------------------------------------------------------------------------------ sections


def machine_lines(results: dict[str, Any]) -> list[str]:
    machine = results["machine"]
    memory = "" if machine["memory_gb"] is None else f", {machine['memory_gb']:.0f} GB RAM"
    return [
        f"- **Machine:** {machine['cpu']}, {machine['cores']} cores{memory} ({machine['platform']})",
        f"- **Python:** {machine['implementation']} {machine['python']}",
        f"- **responsestore:** {machine['responsestore']} (commit `{machine['commit']}`)",
        f"- **Date:** {machine['date']}; mode `{results['settings']['mode']}`, {_duration(results)}",
        f"- **Load average** (1, 5, 15 min) at the start: {machine['load_average']}"
        + (f"; at the end: {machine['load_average_end']}" if "load_average_end" in machine else ""),
        "",
    ]


def load_note(results: dict[str, Any]) -> list[str]:
    """A warning when the machine was busier than its core count while the suite ran."""
    machine = results["machine"]
    cores = machine.get("cores") or 1
    firsts = (str(machine.get(key, "")).split(",")[0].strip() for key in ("load_average", "load_average_end"))
    loads = [float(first) for first in firsts if first.replace(".", "", 1).isdigit()]
    if not loads or max(loads) <= cores:
        return []
    return [
        f"The machine was shared and busy during this run (load average up to {max(loads):.1f} on {cores} cores): "
        "absolute times are inflated and spreads are wide, more so for operations that touch much memory, since "
        "other processes share the caches. The ratios compare figures taken side by side in the same run "
        "(samples interleaved, preempted samples retaken), so they are the figures to read.",
        "",
    ]


def _duration(results: dict[str, Any]) -> str:
    text = f"{results['duration_seconds'] / 60:.1f} min of wall time"
    if "cpu_seconds" in results:
        text += f", {results['cpu_seconds'] / 60:.1f} min of CPU time in the main process"
    return text


def targets_lines(results: dict[str, Any]) -> list[str]:
    rows = [
        [
            target["description"],
            _ratio(target["value"]),
            f"{target['comparison']} {target['threshold']:g}{TIMES}",
            _verdict(target["met"]),
            target["detail"],
        ]
        for target in results["targets"]
    ]
    return _table(["Target", "Ratio", "Needed", "Result", "Measured"], rows, ["---", "--:", "--:", ":-:", "---"])


def ops_lines(section: dict[str, Any]) -> list[str]:
    if "skipped" in section or "error" in section:
        return [f"Not measured: {section.get('skipped') or section.get('error')}", ""]
    lines: list[str] = []
    variants = _ordered((row["variant"] for row in section["results"]), VARIANT_ORDER)
    for size in section["sizes"]:
        by_key = {(row["op"], row["variant"]): row for row in section["results"] if row["size"] == size}
        lines.append(f"**{size:,} records** (median per operation, ± half the interquartile range)")
        lines.append("")
        rows = []
        for op in section["ops"]:
            cells = [_spread(by_key[op, v]) if (op, v) in by_key else NONE for v in variants]
            rows.append([f"`{op}`", *cells])
        lines.extend(_table(["Operation", *variants], rows))
    lines.append("Operations:")
    lines.append("")
    lines.extend(f"- `{op}`: {description}" for op, description in section["ops"].items())
    lines.append("")
    build = section.get("build_seconds", {})
    if build:
        lines.append("Time to build each store up to each size (untimed setup, shown for scale):")
        lines.append("")
        sizes = [str(size) for size in section["sizes"]]
        rows = [[name, *(f"{build[name].get(s, 0):.1f} s" for s in sizes)] for name in build]
        lines.extend(_table(["Store", *(f"to {int(s):,}" for s in sizes)], rows))
    return lines


def locks_lines(section: dict[str, Any]) -> list[str]:
    if "skipped" in section and not section.get("results"):
        return [f"Not measured: {section['skipped']}", ""]
    by_key = {(row["lock"], row["mode"], row["form"]): row for row in section["results"]}
    locks = _ordered((row["lock"] for row in section["results"]), LOCK_ORDER)
    columns = [("read", "methods"), ("read", "with"), ("write", "methods"), ("write", "with")]
    rows = [
        [f"`{lock}`", *(_spread(by_key[lock, m, f]) if (lock, m, f) in by_key else NONE for m, f in columns)]
        for lock in locks
    ]
    lines = _table(["Lock", "read: methods", "read: with", "write: methods", "write: with"], rows)
    lines.extend(f"- *{form}*: {text}" for form, text in section["forms"].items())
    lines.extend(f"- skipped: {reason}" for reason in section.get("skipped", []))
    return [*lines, ""]


def mixed_lines(section: dict[str, Any]) -> list[str]:
    if "results" not in section:
        return [f"Not measured: {section.get('skipped') or section.get('error')}", ""]
    variants = _ordered((row["variant"] for row in section["results"]), VARIANT_ORDER)
    by_key = {(row["variant"], row["threads"]): row for row in section["results"]}
    lines = [
        f"{section['operations_per_run']:,} operations per run split across the threads, "
        f"{section['prefill']:,} prefilled responses. Throughput: median operations per second (min to max over "
        "runs); p99: 99th-percentile latency of one operation.",
        "",
    ]
    rows = []
    for threads in section["threads"]:
        cells = []
        for variant in variants:
            row = by_key.get((variant, threads))
            cells.append(
                NONE
                if row is None
                else f"{row['throughput_median']:,.0f} ({row['throughput_min']:,.0f}{DASH}{row['throughput_max']:,.0f})"
            )
        rows.append([str(threads), *cells])
    lines.extend(_table(["Threads", *(f"{v} ops/s" for v in variants)], rows))
    rows = []
    for threads in section["threads"]:
        cells = []
        for variant in variants:
            row = by_key.get((variant, threads))
            cells.append(NONE if row is None else f"{row['p99_us']:,.0f} µs (get {row['get_p99_us']:,.1f} µs)")
        rows.append([str(threads), *cells])
    lines.extend(_table(["Threads", *(f"{v} p99" for v in variants)], rows))
    lines.extend(f"- {note}" for note in section.get("notes", []))
    return [*lines, ""]


def memory_lines(section: dict[str, Any]) -> list[str]:
    if "results" not in section:
        return [f"Not measured: {section.get('skipped') or section.get('error')}", ""]
    rows = [
        [
            row["representation"],
            row["description"],
            f"{row['tracemalloc_bytes_per_record']:,.0f} B",
            f"{row['rss_bytes_per_record']:,.0f} B",
        ]
        for row in section["results"]
    ]
    lines = _table(
        ["Representation", "What is stored", "tracemalloc", "RSS"],
        rows,
        ["---", "---", "--:", "--:"],
    )
    lines.append(
        f"tracemalloc over {section['records_tracemalloc']:,} records, RSS over {section['records_rss']:,}, "
        "each in a fresh interpreter."
    )
    at_cap = section.get("at_cap")
    if at_cap:
        found, cycles = at_cap["bytes"], at_cap["cycles"]
        lines.extend(
            [
                "",
                f"At `max_records={at_cap['max_records']:,}`, traced from before the store is created: "
                f"{found['fresh'] / 1e6:,.2f} MB when it first holds {at_cap['max_records']:,} records, "
                f"{found['half'] / 1e6:,.2f} MB after {cycles // 2:,} create+complete cycles "
                f"({found['half'] / found['fresh']:.2f}x), {found['after'] / 1e6:,.2f} MB after {cycles:,} "
                f"({found['after'] / found['fresh']:.2f}x).",
            ]
        )
    return [*lines, ""]


def sqlite_lines(section: dict[str, Any]) -> list[str]:
    if "results" not in section:
        return [f"Not measured: {section.get('skipped') or section.get('error')}", ""]
    rows = [[row["variant"], _spread(row)] for row in section["results"]]
    lines = _table(["Variant", "create + complete"], rows)
    lines.append(f"Raw statements run with {', '.join(section['pragmas'])}.")
    return [*lines, ""]


def redis_lines(section: dict[str, Any]) -> list[str]:
    if "results" not in section:
        return [f"Not measured: {section.get('skipped') or section.get('error')}", ""]
    lines = _table(["Operation", "Round trips"], [[op, str(n)] for op, n in section["round_trips"].items()])
    lines.extend(
        _table(["Variant", "create + complete"], [[row["variant"], _spread(row)] for row in section["results"]])
    )
    rate = section["throughput"]
    lines.append(
        f"Throughput on one server: {rate['one']:,.0f} create+complete/s in 1 process, {rate['many']:,.0f}/s in "
        f"{rate['processes']} processes ({rate['ops_per_process']:,} each)."
    )
    return [*lines, ""]


def postgres_lines(section: dict[str, Any]) -> list[str]:
    if "results" not in section:
        return [f"Not measured: {section.get('skipped') or section.get('error')}", ""]
    lines = _table(["Variant", "create + complete"], [[row["variant"], _spread(row)] for row in section["results"]])
    rate = section["throughput"]
    lines.append(
        f"Throughput on one schema: {rate['one']:,.0f} create+complete/s in 1 process, {rate['many']:,.0f}/s in "
        f"{rate['processes']} processes ({rate['ops_per_process']:,} each)."
    )
    return [*lines, ""]


def _cpu_ms(value: float | None) -> str:
    return NONE if value is None else f"{value:,.2f} ms"


def _latency(row: dict[str, Any], kind: str) -> str:
    found = row["latency_us"][kind]
    return f"{found['p50'] / 1e3:,.1f} / {found['p99'] / 1e3:,.1f} ms"


def http_lines(section: dict[str, Any]) -> list[str]:
    if "throughput" not in section:
        return [f"Not measured: {section.get('skipped') or section.get('error')}", ""]
    baseline = section["baseline"]
    lines = [
        f"Each server is a process of its own on waitress with {section['server_threads']} threads. Throughput: "
        f"a load-generator process of {section['client_threads']} threads (one persistent connection each) repeats "
        f"create (non-streamed, {section['input_words']} words in, the same words out) → retrieve → input_items "
        f"for {section['sample_seconds']:g} s per sample; the servers take their samples in turn; the figures are "
        f"medians over samples. Server and client share the machine's {section['cores']} cores. Latency: p50 / "
        "p99 of one request (medians over samples); CPU: the server process's CPU time per sequence (and the "
        "redis-server's, for Redis), from /proc.",
        "",
    ]
    rows = {row["variant"]: row for row in section["throughput"]}
    base = rows.get(baseline)
    table = []
    for name, row in rows.items():
        ratio = None if base is None else row["throughput_median"] / base["throughput_median"]
        cpu = _cpu_ms(row["server_cpu_ms_per_sequence"])
        if row.get("backend_cpu_ms_per_sequence") is not None:
            cpu += f" + {_cpu_ms(row['backend_cpu_ms_per_sequence'])} Redis"
        table.append(
            [
                f"`{name}`",
                f"{row['throughput_median']:,.0f} ({row['throughput_min']:,.0f}{DASH}{row['throughput_max']:,.0f})",
                _ratio(ratio),
                *(_latency(row, kind) for kind in ("create", "retrieve", "input_items")),
                cpu,
                _cpu_ms(row["client_cpu_ms_per_sequence"]),
            ]
        )
    lines.extend(
        _table(
            [
                "Server",
                "sequences/s (min" + DASH + "max)",
                f"{TIMES} {baseline}",
                "create p50 / p99",
                "retrieve p50 / p99",
                "input_items p50 / p99",
                "server CPU per sequence",
                "client CPU per sequence",
            ],
            table,
        )
    )
    long_rows = {row["variant"]: row for row in section["long_reply"]}
    base_long = long_rows.get(baseline)
    lines.append(
        f"One non-streamed create whose input, and so whose reply, is {section['long_words']:,} words, one request "
        "at a time over one persistent connection (median, ± half the interquartile range):"
    )
    lines.append("")
    lines.extend(
        _table(
            ["Server", "time per reply", f"{TIMES} {baseline}", "server CPU per reply"],
            [
                [
                    f"`{name}`",
                    _spread(row),
                    _ratio(None if base_long is None else row["median_ns"] / base_long["median_ns"]),
                    _cpu_ms(row.get("server_cpu_ms"))
                    + ("" if row.get("backend_cpu_ms") is None else f" + {_cpu_ms(row['backend_cpu_ms'])} Redis"),
                ]
                for name, row in long_rows.items()
            ],
        )
    )
    lines.extend(f"- `{name}`: `{command}`" for name, command in section["commands"].items())
    lines.extend(f"- {note}" for note in section.get("notes", []))
    return [*lines, ""]


def _ms(found: dict[str, Any] | None, key: str) -> str:
    return NONE if found is None else f"{found[key]:,.1f} ms"


def _megabytes(value: float | None) -> str:
    return NONE if value is None else f"{value / 1e6:,.1f} MB"


def asgi_lines(section: dict[str, Any]) -> list[str]:
    if "hold" not in section:
        return [f"Not measured: {section.get('skipped') or section.get('error')}", ""]
    hold, baseline = section["hold"], section["baseline"]
    total = hold["streams"] + hold["websockets"]
    lines = [
        f"One `serve --asgi` process (`asgi-streams` below) on `memory://`, its model `async` and slow (one word "
        f"every {hold['seconds_per_word']:g} s, awaited on the event loop). One client process opens, all at once, "
        f"{hold['streams']:,} streamed creates (server-sent events, one connection each) and {hold['websockets']:,} "
        f"WebSocket connections (one `response.create` each), each a reply of {hold['words']} words, and reads every "
        "one to its terminal event. A stream is open from its first event to its terminal one.",
        "",
    ]
    if hold["held"]:
        lines.append(
            f"All {total:,} were open at once {hold['ramp_seconds']:.1f} s after the first was begun, and stayed so "
            f"for {hold['held_seconds']:.1f} s (until the first ended); all had ended after "
            f"{hold['wall_seconds']:.1f} s."
        )
    else:
        lines.append(f"They were never all open at once: at most {hold['peak_open']:,} of {total:,}.")
    events = sum(found["events"] for found in hold["kinds"].values())
    pace = hold["words"] * hold["seconds_per_word"]
    lines.append(
        f"At the model's pace a stream stays open {pace:.1f} s; the client received {events:,} events in "
        f"{hold['wall_seconds']:.1f} s ({events / hold['wall_seconds']:,.0f} a second)."
    )
    lines.append("")
    rows = []
    for label, key in (("SSE", "sse"), ("WebSocket", "websocket")):
        found = hold["kinds"][key]
        others = ", ".join(f"{how}: {n:,}" for how, n in found["ended"].items() if how != "response.completed")
        first, lasted = found["first_event_ms"], found["open_seconds"]
        rows.append(
            [
                label,
                f"{found['started']:,}",
                f"{found['opened']:,}",
                f"{found['completed']:,}",
                others or NONE,
                NONE if first is None else f"{first['p50'] / 1e3:,.2f} / {first['p99'] / 1e3:,.2f} s",
                NONE if lasted is None else f"{lasted['p50']:,.1f} / {lasted['max']:,.1f} s",
                f"{found['events']:,}",
            ]
        )
    lines.extend(
        _table(
            [
                "Streams",
                "started",
                "opened",
                "ended with response.completed",
                "other endings",
                "first event p50 / p99",
                "open for p50 / max",
                "events received",
            ],
            rows,
            ["---", "--:", "--:", "--:", "---", "--:", "--:", "--:"],
        )
    )
    failures = [text for found in hold["kinds"].values() for text in found["failures"]]
    lines.extend(f"- failure: `{text}`" for text in failures)
    if failures:
        lines.append("")
    lines.append(
        "Retrieve of a completed response (`GET /v1/responses/{id}`, one persistent connection from the suite's "
        "process, one request at a time), on the idle server and then while every stream was open:"
    )
    lines.append("")
    lines.extend(
        _table(
            ["When", "retrieves", "median", "p95", "max"],
            [
                [
                    label,
                    NONE if found is None else f"{found['samples']:,}",
                    _ms(found, "median_ms"),
                    _ms(found, "p95_ms"),
                    _ms(found, "max_ms"),
                ]
                for label, found in (
                    ("idle", hold["retrieve_idle"]),
                    (f"{total:,} streams open", hold["retrieve_under_load"]),
                )
            ],
        )
    )
    per_stream = hold["bytes_per_open_stream"]
    cpu = hold["server_cpu_seconds"]
    lines.append(
        f"Server memory (RSS): {_megabytes(hold['rss_before_bytes'])} before the streams, "
        f"{_megabytes(hold['rss_peak_bytes'])} at the peak while all were open "
        f"({NONE if per_stream is None else f'{per_stream / 1e3:,.1f} kB'} per open stream); its high-water mark "
        f"{_megabytes(hold['hwm_bytes'])}. Server CPU while the streams ran: "
        + (NONE if cpu is None else f"{cpu:,.1f} s over {hold['wall_seconds']:.1f} s")
        + f"; the client's: {hold['client_cpu_seconds']:,.1f} s."
    )
    lines.append("")
    lines.append(
        f"Throughput: `serve --asgi` (uvicorn) and the WSGI `serve` (waitress), each at its defaults on `memory://`; "
        f"a load-generator process of {section['client_threads']} threads (one persistent connection each) repeats "
        f"a non-streamed create ({section['input_words']} words in, the same words out, the `echo` model) for "
        f"{section['sample_seconds']:g} s per sample; the servers take their samples in turn; medians over "
        f"samples. Server and client share the machine's {section['cores']} cores."
    )
    lines.append("")
    by_name = {row["variant"]: row for row in section["throughput"]}
    base = by_name.get(baseline)
    lines.extend(
        _table(
            [
                "Server",
                "creates/s (min" + DASH + "max)",
                f"{TIMES} {baseline}",
                "create p50 / p99",
                "server CPU per create",
                "client CPU per create",
            ],
            [
                [
                    f"`{name}`",
                    f"{row['requests_median']:,.0f} ({row['requests_min']:,.0f}{DASH}{row['requests_max']:,.0f})",
                    _ratio(None if base is None else row["requests_median"] / base["requests_median"]),
                    f"{row['create_p50_ms']:,.1f} / {row['create_p99_ms']:,.1f} ms",
                    _cpu_ms(row["server_cpu_ms_per_request"]),
                    _cpu_ms(row["client_cpu_ms_per_request"]),
                ]
                for name, row in by_name.items()
            ],
        )
    )
    lines.extend(f"- `{name}`: `{command}`" for name, command in section["commands"].items())
    lines.extend(f"- {note}" for note in section.get("notes", []))
    return [*lines, ""]


SECTIONS = [
    ("ops", "Single-operation cost", ops_lines),
    ("locks", "Uncontended lock acquire + release", locks_lines),
    ("mixed", "Mixed workload: 90 % get, 5 % create, 5 % complete", mixed_lines),
    ("memory", "Memory per stored record", memory_lines),
    ("sqlite", "SQLite backend", sqlite_lines),
    ("redis", "Redis backend", redis_lines),
    ("postgres", "PostgreSQL backend", postgres_lines),
    ("http", "HTTP server end to end", http_lines),
    ("asgi", "ASGI server: open streams and throughput", asgi_lines),
]


def sections(results: dict[str, Any], *, images: dict[str, str] | None = None, level: int = 2) -> list[str]:
    """The targets, then one section per workload (with ``images`` by section), at heading ``level``."""
    heading = "#" * level
    lines = [f"{heading} Targets", "", *targets_lines(results)]
    for key, title, render in SECTIONS:
        if key not in results["workloads"]:
            continue
        lines.extend([f"{heading} {title}", ""])
        section = results["workloads"][key]
        if "error" in section:
            lines.extend([f"Failed: `{section['error']}`", ""])
            continue
        lines.extend(render(section))
        if images and key in images:
            lines.extend([f"![{title}]({images[key]})", ""])
    return lines


def markdown(results: dict[str, Any]) -> str:
    """The results as Markdown: machine, targets, then one section per workload."""
    lines = ["# Benchmark results", "", *machine_lines(results), *load_note(results), *sections(results)]
    return "\n".join(lines).rstrip() + "\n"


# ------------------------------------------------------------------------------------------------ the questions

#: The variants' names in plain words, for the page and its plots.
PLAIN = {
    "responsestore": "responsestore",
    "bare-dict": "dict, no lock",
    "server-dict": "dict + lock",
    "seed-port": "simple locked store",
    "rwlock-fair-dict": "dict + readerwriterlock",
    "fasteners-dict": "dict + fasteners lock",
    "vllm-like": "openai SDK objects",
    "plain-json-dict": "plain JSON dict",
    "plain-dict": "plain-dict server",
    "responsestore-memory": "responsestore, memory://",
    "responsestore-sqlite": "responsestore, SQLite",
    "responsestore-redis": "responsestore, Redis",
}
#: The single operations in plain words.
OPS_PLAIN = {
    "get": "get one response",
    "create": "create",
    "complete": "complete",
    "list_first_page": "list the newest 20",
    "list_page_at_depth": "list 20, half-way down",
    "input_items_page": "20 of its 50 input items",
    "conversation_10": "conversation, 10 turns",
    "conversation_100": "conversation, 100 turns",
}
#: The operations the single-operation plot shows (the table shows them all).
PLOTTED_OPS = ("get", "create", "complete", "list_first_page", "input_items_page", "conversation_100")
#: One colour per series, the same on every plot: responsestore blue, the baselines in muted tones.
COLORS = {
    "responsestore": "#1f5fa8",
    "dict + lock": "#e08a2c",
    "dict, no lock": "#9a9a9a",
    "dict + readerwriterlock": "#5c9e4a",
    "plain JSON dict": "#e08a2c",
    "openai SDK objects": "#b5473f",
    "raw client library": "#e08a2c",
    "1 process": "#9fbfe3",
    "plain-dict server": "#e08a2c",
}
#: The raw client library each backend's baseline uses.
RAW_CLIENTS = {"sqlite": "sqlite3", "redis": "redis-py", "postgres": "psycopg"}
BACKEND_NAMES = {"memory": "memory", "sqlite": "SQLite", "redis": "Redis", "postgres": "PostgreSQL"}
#: The page's plots, one per question, by question key.
PLOT_FILES = {
    "ops": "ops.png",
    "growth": "growth.png",
    "memory": "memory.png",
    "threads": "threads.png",
    "backends": "backends.png",
    "processes": "processes.png",
    "http": "http.png",
}
PLOT_WIDTH_INCHES = 7.0  # with PLOT_DPI: 1050 px, shown at the page's width (about 700 px) with 11-point text
PLOT_DPI = 150
PLOT_FILL = 0.8  # the share of a bar plot's axis its longest bar takes (its label goes after it)


@dataclasses.dataclass(frozen=True)
class Bars:
    """Horizontal bars: one group per category, top to bottom, and one bar per series within each group."""

    categories: list[str]
    series: list[tuple[str, list[float | None]]]
    xlabel: str
    label: Callable[[float], str]
    log: bool = False


@dataclasses.dataclass(frozen=True)
class Lines:
    """One line per series over ``x``."""

    x: list[float]
    series: list[tuple[str, list[float | None]]]
    xlabel: str
    ylabel: str
    log_x: int | None = 10  # the base of a logarithmic x axis, or None for a linear one
    log_y: bool = False  # a linear y axis starts at 0


@dataclasses.dataclass(frozen=True)
class Question:
    """A question a user has, answered in one sentence, one plot (its ``title`` and data) and one small table."""

    key: str
    heading: str
    answer: str
    table: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    title: str = ""
    plot: Bars | Lines | None = None


def _median(rows: Iterable[dict[str, Any]], variant: str) -> float | None:
    return next((row["median_ns"] for row in rows if row["variant"] == variant), None)


def _times(value: float | None, base: float | None) -> str:
    """``value / base`` as a ratio ("2.30" and the multiplication sign), or the dash when either is missing."""
    return NONE if value is None or not base else _ratio(value / base)


def _per_second(value: float | None) -> str:
    return NONE if value is None else f"{value:,.0f}/s"


def _count(value: float | None) -> str:
    return NONE if value is None else f"{value:,.0f}"


def _bytes(value: float) -> str:
    return f"{value:,.0f} B" if value < 10_000 else f"{value / 1e3:,.1f} kB"


def _unmeasured(key: str, heading: str, section: dict[str, Any] | None) -> Question:
    section = section or {}
    why = section.get("skipped") or section.get("error") or "the workload was not run"
    return Question(key, heading, f"Not measured in this run: {why}.")


def _clauses(parts: Iterable[str | None]) -> str:
    """Join the present ``parts`` as "a, b and c"."""
    found = [part for part in parts if part]
    if len(found) < 2:
        return "".join(found)
    return ", ".join(found[:-1]) + " and " + found[-1]


def ops_question(results: dict[str, Any]) -> Question:
    heading = "How fast is one call, next to a plain dict?"
    section = results["workloads"].get("ops", {})
    if not section.get("results"):
        return _unmeasured("ops", heading, section)
    size = 100_000 if 100_000 in section["sizes"] else max(section["sizes"])
    rows = [row for row in section["results"] if row["size"] == size]
    median = {(row["op"], row["variant"]): row["median_ns"] for row in rows}
    variants = [v for v in ("responsestore", "server-dict", "bare-dict") if any(key[1] == v for key in median)]

    def at(op: str, variant: str) -> float | None:
        return median.get((op, variant))

    clauses = []
    if at("get", "responsestore") is not None:
        clauses.append(
            f"a `get` takes {_time(at('get', 'responsestore'))} "
            f"({_times(at('get', 'responsestore'), at('get', 'bare-dict'))} a plain dict lookup, "
            f"{_times(at('get', 'responsestore'), at('get', 'server-dict'))} a dict under a lock)"
        )
    if at("list_first_page", "responsestore") is not None:
        clauses.append(
            f"listing the newest 20 takes {_time(at('list_first_page', 'responsestore'))} "
            f"(a locked dict sorts every record: {_time(at('list_first_page', 'server-dict'))})"
        )
    if at("create", "responsestore") is not None:
        clauses.append(
            f"a `create` takes {_time(at('create', 'responsestore'))}, "
            f"{_times(at('create', 'responsestore'), at('create', 'server-dict'))} a locked dict's insert"
        )
    answer = (
        f"With {size:,} responses stored, {_clauses(clauses)}: responsestore checks and freezes what it stores, "
        "keeps it in order and expires it, where the dicts keep whatever they are given."
    )
    ops = [op for op in section["ops"] if any((op, v) in median for v in variants)]
    table = _table(
        ["Operation", *(PLAIN[v] for v in variants)],
        [[OPS_PLAIN.get(op, op), *(_time(at(op, v)) for v in variants)] for op in ops],
    )
    plotted = [op for op in PLOTTED_OPS if op in ops]
    plot = Bars(
        categories=[OPS_PLAIN[op] for op in plotted],
        series=[
            (PLAIN[v], [None if at(op, v) is None else at(op, v) / 1e3 for op in plotted])  # type: ignore[operator]
            for v in variants
        ],
        xlabel="µs per call (median, log scale)",
        label=lambda us: _time(us * 1e3),
        log=True,
    )
    notes = [f"Median time per call with {size:,} responses stored; the tables under *Details* give every size."]
    return Question("ops", heading, answer, table, notes, f"One call, {size:,} responses stored", plot)


def growth_question(results: dict[str, Any]) -> Question:
    heading = "Does it slow down as the store grows?"
    section = results["workloads"].get("ops", {})
    rows = [row for row in section.get("results", []) if row["op"] in ("list_first_page", "get")]
    if not rows:
        return _unmeasured("growth", heading, section)
    sizes = sorted({row["size"] for row in rows})
    median = {(row["op"], row["variant"], row["size"]): row["median_ns"] for row in rows}

    def at(op: str, variant: str, size: int) -> float | None:
        return median.get((op, variant, size))

    small, large = sizes[0], sizes[-1]
    ours_small, ours_large = (
        at("list_first_page", "responsestore", small),
        at("list_first_page", "responsestore", large),
    )
    theirs_large = at("list_first_page", "server-dict", large)
    if ours_large is None:
        answer = f"`get` takes {_time(at('get', 'responsestore', large))} with {large:,} responses stored."
    elif len(sizes) == 1:
        answer = (
            f"Listing the newest 20 of {large:,} responses takes {_time(ours_large)}; a dict under a lock, which "
            f"sorts every record on each call, takes {_time(theirs_large)}."
        )
    else:
        answer = (
            f"No: listing the newest 20 responses takes {_time(ours_small)} with {small:,} stored and "
            f"{_time(ours_large)} with {large:,}, since responsestore keeps them in order; a dict under a lock "
            f"sorts every record on each call, {_time(theirs_large)} at {large:,} "
            f"({_times(theirs_large, ours_large)} slower)."
        )
    table = _table(
        ["Responses stored", "list: responsestore", "list: dict + lock", "get: responsestore", "get: dict + lock"],
        [
            [
                f"{size:,}",
                _time(at("list_first_page", "responsestore", size)),
                _time(at("list_first_page", "server-dict", size)),
                _time(at("get", "responsestore", size)),
                _time(at("get", "server-dict", size)),
            ]
            for size in sizes
        ],
    )
    series = [
        (
            PLAIN[variant],
            [
                None if at("list_first_page", variant, s) is None else at("list_first_page", variant, s) / 1e3
                for s in sizes
            ],  # type: ignore[operator]
        )
        for variant in ("responsestore", "server-dict")
        if any(at("list_first_page", variant, s) is not None for s in sizes)
    ]
    plot = (
        Lines(sizes, series, "responses stored (log scale)", "µs per list of 20 (log scale)", log_y=True)
        if series
        else None
    )
    return Question("growth", heading, answer, table, [], "Listing the newest 20, as the store grows", plot)


def memory_question(results: dict[str, Any]) -> Question:
    heading = "How much memory does a stored response take?"
    section = results["workloads"].get("memory", {})
    if not section.get("results"):
        return _unmeasured("memory", heading, section)
    found = {row["representation"]: row for row in section["results"]}
    names = [name for name in ("responsestore", "plain-json-dict", "vllm-like") if name in found]

    def traced(name: str) -> float | None:
        return found[name]["tracemalloc_bytes_per_record"] if name in found else None

    ours = traced("responsestore")
    others = [
        f"{_times(ours, traced(name))} {what} ({_bytes(traced(name))})"  # type: ignore[arg-type]
        for name, what in (("plain-json-dict", "its plain JSON dict"), ("vllm-like", "the openai SDK's objects"))
        if name in found
    ]
    answer = (
        f"A small completed response (a 100-character question and reply) takes {_bytes(ours or 0)} in "
        f"responsestore, its index and bookkeeping included: {_clauses(others)}."
    )
    table = _table(
        ["Stored as", "bytes per response (tracemalloc)", "bytes per response (RSS)"],
        [
            [
                PLAIN.get(name, name),
                _bytes(found[name]["tracemalloc_bytes_per_record"]),
                _bytes(found[name]["rss_bytes_per_record"]),
            ]
            for name in names
        ],
    )
    notes = []
    long = section.get("long_response")
    if long:
        notes.append(
            f"A completed {long['words']:,}-word response with its {long['events']:,.0f} stream events takes "
            f"{_bytes(long['bytes'])}, {_times(long['bytes'], long['json_bytes'])} its JSON."
        )
    at_cap = section.get("at_cap")
    if at_cap:
        sizes = at_cap["bytes"]
        notes.append(
            f"A store capped at `max_records={at_cap['max_records']:,}` holds {sizes['fresh'] / 1e6:,.2f} MB when "
            f"first full and {sizes['after'] / 1e6:,.2f} MB after {at_cap['cycles']:,} more responses: old ones "
            "are evicted, memory stays flat."
        )
    plot = Bars(
        categories=[PLAIN.get(name, name) for name in names],
        series=[("tracemalloc", [traced(name) for name in names])],
        xlabel="bytes per stored small response (tracemalloc)",
        label=lambda value: f"{value:,.0f} B",
    )
    return Question("memory", heading, answer, table, notes, "Memory per stored response", plot)


def threads_question(results: dict[str, Any]) -> Question:
    heading = "What do many threads do to it?"
    section = results["workloads"].get("mixed", {})
    if not section.get("results"):
        return _unmeasured("threads", heading, section)
    threads = section["threads"]
    rate = {(row["variant"], row["threads"]): row["throughput_median"] for row in section["results"]}
    p99 = {(row["variant"], row["threads"]): row["p99_us"] for row in section["results"]}
    variants = [v for v in ("responsestore", "server-dict", "rwlock-fair-dict") if (v, threads[0]) in rate]
    many = 8 if 8 in threads else max(threads)
    one = min(threads)
    answer = (
        f"With {many} threads sharing one store (90 % `get`, 5 % `create`, 5 % `complete`), responsestore runs "
        f"{_count(rate.get(('responsestore', many)))} operations a second, against "
        f"{_count(rate.get(('responsestore', one)))} on {one} thread: CPython's threads take turns on one "
        "interpreter lock, so threads add no speed, but the store's locking does not make it collapse."
    )
    table = _table(
        ["Threads", *(f"{PLAIN[v]}, ops/s" for v in variants), "responsestore p99"],
        [
            [
                str(count),
                *(_count(rate.get((v, count))) for v in variants),
                NONE if ("responsestore", count) not in p99 else f"{p99['responsestore', count]:,.0f} µs",
            ]
            for count in threads
        ],
    )
    plot = Lines(
        threads,
        [(PLAIN[v], [rate.get((v, count)) for count in threads]) for v in variants],
        "threads",
        "operations per second (median)",
        log_x=2,
    )
    return Question("threads", heading, answer, table, [], "Operations per second as threads are added", plot)


def backends_question(results: dict[str, Any]) -> Question:
    heading = "What does a write cost on each backend?"
    workloads = results["workloads"]
    ours: dict[str, float | None] = {}
    raw: dict[str, float | None] = {}
    sqlite = workloads.get("sqlite", {}).get("results")
    if sqlite:
        ours["memory"], raw["memory"] = _median(sqlite, "responsestore-memory"), None
        ours["sqlite"], raw["sqlite"] = _median(sqlite, "responsestore-sqlite"), _median(sqlite, "raw-sqlite3")
    for key, variant, baseline in (
        ("redis", "responsestore-redis", "raw-redis-py"),
        ("postgres", "responsestore-postgres", "raw-psycopg"),
    ):
        rows = workloads.get(key, {}).get("results")
        if rows:
            ours[key], raw[key] = _median(rows, variant), _median(rows, baseline)
    if not ours:
        return _unmeasured("backends", heading, workloads.get("sqlite"))
    parts = []
    for key, time in ours.items():
        text = f"{_time(time)} on {BACKEND_NAMES[key]}"
        if raw[key] is not None:
            same = "" if any("raw" in part for part in parts) else " the same writes through"
            text += f" ({_times(time, raw[key])}{same} raw `{RAW_CLIENTS[key]}`)"
        parts.append(text)
    answer = (
        f"One `create` plus its `complete` takes {_clauses(parts)}. The raw baselines write the same JSON with "
        "one statement each and keep nothing else; responsestore also checks each transition and keeps the "
        "indexes, counters and expiry that `list`, `stats` and retention need."
    )
    unmeasured = [
        f"{BACKEND_NAMES[key]}: {workloads[key].get('skipped') or workloads[key].get('error')}"
        for key in ("redis", "postgres")
        if key in workloads and key not in ours
    ]
    table = _table(
        ["Backend", "responsestore", "raw client library", "ratio"],
        [
            [
                BACKEND_NAMES[key],
                _time(ours[key]),
                NONE if raw[key] is None else f"{_time(raw[key])} (`{RAW_CLIENTS[key]}`)",
                _times(ours[key], raw[key]),
            ]
            for key in ours
        ],
    )
    notes = [
        "Median time of one create + complete, from one process. SQLite on a local file in WAL mode with "
        "`synchronous=NORMAL` on both sides; Redis and PostgreSQL on a local server started for the run, "
        "without persistence or `fsync`, so the disk does not decide.",
        *(f"Not measured: {text}." for text in unmeasured),
    ]
    values = [value for value in [*ours.values(), *raw.values()] if value]
    plot = Bars(
        categories=[BACKEND_NAMES[key] for key in ours],
        series=[
            ("responsestore", [None if ours[k] is None else ours[k] / 1e3 for k in ours]),  # type: ignore[operator]
            ("raw client library", [None if raw[k] is None else raw[k] / 1e3 for k in ours]),  # type: ignore[operator]
        ],
        xlabel="µs per create + complete (median" + (", log scale)" if _spans_decades(values) else ")"),
        label=lambda us: _time(us * 1e3),
        log=_spans_decades(values),
    )
    return Question("backends", heading, answer, table, notes, "One create + complete, per backend", plot)


def _spans_decades(values: list[float]) -> bool:
    return bool(values) and max(values) / min(values) > 20


def processes_question(results: dict[str, Any]) -> Question:
    heading = "Do more processes write more?"
    workloads = results["workloads"]
    rates = {
        key: workloads[key]["throughput"] for key in ("redis", "postgres") if workloads.get(key, {}).get("throughput")
    }
    if not rates:
        return _unmeasured("processes", heading, workloads.get("redis") or workloads.get("postgres"))
    where = {"redis": "one Redis server", "postgres": "one PostgreSQL schema"}
    why = {
        "redis": "Redis runs one command at a time",
        "postgres": "PostgreSQL's writes to one schema take turns on one row lock",
    }
    parts = [
        f"sharing {where[key]}, {rate['processes']} processes complete {_count(rate['many'])} "
        f"creates + completes a second, {_times(rate['many'], rate['one'])} what one process does "
        f"({_count(rate['one'])})"
        for key, rate in rates.items()
    ]
    joined = "; ".join(parts)
    answer = (
        joined[:1].upper()
        + joined[1:]
        + ". The processes' writes meet in the server: "
        + " and ".join(why[key] for key in rates)
        + "."
    )
    count = max(rate["processes"] for rate in rates.values())
    table = _table(
        ["Backend", "1 process", f"{count} processes", "ratio"],
        [
            [BACKEND_NAMES[key], _per_second(rate["one"]), _per_second(rate["many"]), _times(rate["many"], rate["one"])]
            for key, rate in rates.items()
        ],
    )
    notes = [
        "Each process runs its own store on the same server and does "
        f"{next(iter(rates.values()))['ops_per_process']:,} create + complete; the rate counts all processes "
        f"together. The processes and the server share the machine's {results['machine']['cores']} cores. SQLite "
        "is not measured across processes."
    ]
    plot = Bars(
        categories=[BACKEND_NAMES[key] for key in rates],
        series=[
            ("1 process", [rate["one"] for rate in rates.values()]),
            (f"{count} processes", [rate["many"] for rate in rates.values()]),
        ],
        xlabel="create + complete per second, all processes together",
        label=lambda value: f"{value:,.0f}",
    )
    return Question("processes", heading, answer, table, notes, "Writes per second, one server", plot)


def http_question(results: dict[str, Any]) -> Question:
    heading = "What does the HTTP server cost?"
    section = results["workloads"].get("http", {})
    if not section.get("throughput"):
        return _unmeasured("http", heading, section)
    rows = {row["variant"]: row for row in section["throughput"]}
    base = rows.get(section["baseline"])
    base_rate = None if base is None else base["throughput_median"]
    long_rows = {row["variant"]: row for row in section.get("long_reply", [])}
    base_long = _median(section.get("long_reply", []), section["baseline"])
    ours = {
        where: rows[name]["throughput_median"]
        for name, where in (
            ("responsestore-memory", "`memory://`"),
            ("responsestore-sqlite", "SQLite"),
            ("responsestore-redis", "Redis"),
        )
        if name in rows
    }
    answer = (
        "Served over HTTP by `python -m responsestore serve`, a create → retrieve → list-input-items sequence "
        + "runs "
        + _clauses(
            f"{_count(rate)} times a second on {where}" if index == 0 else f"{_count(rate)} on {where}"
            for index, (where, rate) in enumerate(ours.items())
        )
        + f", where a minimal server keeping plain dicts runs {_count(base_rate)}: "
        + _clauses(_times(rate, base_rate) for rate in ours.values())
        + " its rate. The difference is what responsestore does per request (the run layer, its event log, "
        "checked writes), the more so on a backend that persists."
    )
    table = _table(
        ["Server", "sequences/s", f"{TIMES} plain-dict server", f"one {section['long_words']:,}-word reply"],
        [
            [
                PLAIN.get(name, name),
                _count(row["throughput_median"]),
                _times(row["throughput_median"], base_rate),
                _time(long_rows[name]["median_ns"]) if name in long_rows else NONE,
            ]
            for name, row in rows.items()
        ],
    )
    notes = [
        f"Each server is a process on waitress with {section['server_threads']} threads; a load-generator process "
        f"of {section['client_threads']} threads repeats create (non-streamed, {section['input_words']} words) → "
        "retrieve → input items. A reply's time is one non-streamed create of that many words, one at a time "
        f"(the plain-dict server: {_time(base_long)}). Server and client share the machine's "
        f"{section['cores']} cores.",
        *section.get("notes", []),
    ]
    plot = Bars(
        categories=[PLAIN.get(name, name) for name in rows],
        series=[("sequences", [row["throughput_median"] for row in rows.values()])],
        xlabel="create + retrieve + input items per second (median)",
        label=lambda value: f"{value:,.0f}",
    )
    return Question("http", heading, answer, table, notes, "HTTP server: sequences per second", plot)


def asgi_question(results: dict[str, Any]) -> Question:
    heading = "How many open streams can one server hold?"
    section = results["workloads"].get("asgi", {})
    if "hold" not in section:
        return _unmeasured("asgi", heading, section)
    hold = section["hold"]
    total = hold["streams"] + hold["websockets"]
    completed = sum(found["completed"] for found in hold["kinds"].values())
    idle, loaded = hold["retrieve_idle"], hold["retrieve_under_load"]
    rates = {row["variant"]: row["requests_median"] for row in section.get("throughput", [])}
    held = f"held {hold['peak_open']:,} of them open at once" if not hold["held"] else "held them all open at once"
    answer = (
        f"Asked for {hold['streams']:,} streamed responses (server-sent events) and {hold['websockets']:,} "
        f"WebSocket responses at once, `python -m responsestore serve --asgi` {held}, and {completed:,} of "
        f"{total:,} ended with `response.completed`; meanwhile retrieving a stored response took "
        f"{_ms(loaded, 'median_ms')} at the median ({_ms(idle, 'median_ms')} idle)."
    )
    per_stream = hold["bytes_per_open_stream"]
    table = _table(
        ["Figure", "value"],
        [
            ["streams open at once", f"{hold['peak_open']:,} of {total:,}"],
            ["ended with `response.completed`", f"{completed:,}"],
            ["retrieve, median: idle / all streams open", f"{_ms(idle, 'median_ms')} / {_ms(loaded, 'median_ms')}"],
            ["server memory per open stream", NONE if per_stream is None else f"{per_stream / 1e3:,.1f} kB"],
            [
                "non-streamed creates/s: ASGI / WSGI server",
                f"{_per_second(rates.get('asgi'))} / {_per_second(rates.get('wsgi'))}",
            ],
        ],
        ["---", "--:"],
    )
    notes = [
        f"Each stream is a {hold['words']}-word reply from a slow model (one word every "
        f"{hold['seconds_per_word']:g} s), so all are open together for a while. The *Details* below give the "
        "times to first event, how each stream ended and the server's CPU."
    ]
    return Question("asgi", heading, answer, table, notes)


#: The page's questions, in reading order.
QUESTIONS: list[Callable[[dict[str, Any]], Question]] = [
    ops_question,
    growth_question,
    memory_question,
    threads_question,
    backends_question,
    processes_question,
    http_question,
    asgi_question,
]


def questions(results: dict[str, Any]) -> list[Question]:
    """Every question of the page, answered from ``results``."""
    return [ask(results) for ask in QUESTIONS]


# ------------------------------------------------------------------------------------------------ plots


def plots(results: dict[str, Any], directory: Path) -> dict[str, Path]:
    """Draw one PNG per question that has a plot into ``directory``; return the paths by question key."""
    import matplotlib  # noqa: PLC0415 - a benchmark-only dependency, needed only for plots

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    style = {
        "font.size": 11,
        "axes.titlesize": 13,
        "axes.labelsize": 11,
        "xtick.labelsize": 10.5,
        "ytick.labelsize": 11,
        "legend.fontsize": 10.5,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
    with plt.rc_context(style):
        for question in questions(results):
            if question.plot is None:
                continue
            draw = _draw_bars if isinstance(question.plot, Bars) else _draw_lines
            fig = draw(plt, question.plot)  # type: ignore[arg-type]
            fig.axes[0].set_title(question.title, loc="left", fontweight="bold")
            fig.tight_layout()
            path = directory / PLOT_FILES[question.key]
            fig.savefig(path, dpi=PLOT_DPI, metadata={"Software": None})
            plt.close(fig)
            written[question.key] = path
    return written


def _color(name: str, index: int) -> str:
    if name.endswith(" processes"):  # responsestore in several processes: its own blue, beside one process's light one
        return COLORS["responsestore"]
    return COLORS.get(name, ("#1f5fa8", "#e08a2c", "#9a9a9a", "#5c9e4a")[index % 4])


def _tick(value: float, _position: object = None) -> str:
    """An axis tick as a plain number ("0.5", "1", "1,000"), not a power of ten."""
    return f"{value:,.0f}" if value >= 1 else f"{value:g}"


def _draw_bars(plt: Any, bars: Bars) -> Any:
    count = len(bars.series)
    height = 0.8 / count
    fig, ax = plt.subplots(
        figsize=(PLOT_WIDTH_INCHES, 0.9 + len(bars.categories) * (0.22 * count + 0.15 if count > 1 else 0.5))
    )
    present = [value for _, values in bars.series for value in values if value]
    for index, (name, values) in enumerate(bars.series):
        positions = [i - 0.4 + height * (index + 0.5) for i in range(len(bars.categories))]
        drawn = [(p, v, c) for p, v, c in zip(positions, values, bars.categories, strict=True) if v]
        if not drawn:
            continue
        # One series: responsestore's bars blue, the baselines' orange; several: one colour per series.
        colors = (
            [_color(name, index)] * len(drawn)
            if count > 1
            else [
                COLORS["responsestore"] if c.startswith("responsestore") else COLORS["dict + lock"] for *_, c in drawn
            ]
        )
        container = ax.barh(
            [p for p, *_ in drawn], [v for _, v, _ in drawn], height=height * 0.92, color=colors, label=name
        )
        ax.bar_label(container, labels=[bars.label(v) for _, v, _ in drawn], padding=4, fontsize=10)
    ax.set_yticks(range(len(bars.categories)), bars.categories)
    ax.invert_yaxis()
    ax.tick_params(axis="y", length=0)
    # The longest bar ends at PLOT_FILL of the axis, which leaves room for its label.
    if bars.log:
        ax.set_xscale("log")
        left = min(present) / 2
        ax.set_xlim(left, left * (max(present) / left) ** (1 / PLOT_FILL))
    else:
        ax.set_xlim(0, max(present) / PLOT_FILL)
    ax.xaxis.set_major_formatter(_tick)
    ax.set_xlabel(bars.xlabel)
    ax.grid(visible=True, axis="x", which="major", alpha=0.3)
    ax.set_axisbelow(True)
    if count > 1:
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=count, frameon=False, borderaxespad=1.6)
    return fig


def _draw_lines(plt: Any, lines: Lines) -> Any:
    fig, ax = plt.subplots(figsize=(PLOT_WIDTH_INCHES, 3.9))
    for index, (name, values) in enumerate(lines.series):
        points = [(x, y) for x, y in zip(lines.x, values, strict=True) if y is not None]
        ax.plot(
            [x for x, _ in points],
            [y for _, y in points],
            marker="o",
            markersize=6,
            linewidth=2.5,
            color=_color(name, index),
            label=name,
        )
    if lines.log_x is not None:
        ax.set_xscale("log", base=lines.log_x)
        ax.set_xticks(lines.x, [f"{x:,.0f}" for x in lines.x])
        ax.minorticks_off()
    if lines.log_y:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0, top=ax.get_ylim()[1] * 1.1)
    ax.yaxis.set_major_formatter(_tick)
    ax.set_xlabel(lines.xlabel)
    ax.set_ylabel(lines.ylabel)
    ax.grid(visible=True, which="major", alpha=0.3)
    ax.legend(frameon=False)
    return fig


# ------------------------------------------------------------------------------------------------ docs page

_BASELINES = """\
## What it is compared with

Every figure is measured beside simpler things a server could use instead, in the same run:

- **dict, no lock**: a plain Python dict of JSON dicts, with no lock: the floor (not safe to share between threads).
- **dict + lock**: the same dict under one `threading.Lock`, which is what servers keep today (vLLM, SGLang); to
  list the newest responses it sorts all of them.
- **dict + readerwriterlock**: the same dict under the `readerwriterlock` package's fair reader-writer lock.
- **plain JSON dict** and **openai SDK objects** (memory): each response kept as its JSON dict, or as the `openai`
  package's `Response` object (as vLLM's server keeps them).
- **raw client library** (backends): the same writes straight through `sqlite3`, `redis-py` or `psycopg`: the same
  JSON, one statement per write, nothing else kept.
- **plain-dict server** (HTTP): a minimal WSGI server with the same three routes and the same model, keeping plain
  dicts under one lock, served the same way.

None of them checks, copies, expires or evicts anything. responsestore, at its defaults, checks and freezes every
argument, keeps responses in order, expires them after 30 days and bounds how many it keeps.
"""

_DETAILS = """\
(benchmarks-details)=
## Details

The rest of this page is the full report of the same run: the machine, the method, the performance targets the
project set itself (met or missed, and why), and every figure measured.

### How it is measured

Each time is the median of several timed loops of many calls (`time.perf_counter_ns`); the spread is half the
interquartile range; the variants of one measurement take their samples in turn, so a slow spell of the machine
hits all of them; the garbage collector is off during timed loops only; a sample during which the process lost
the CPU is taken again. Servers (HTTP, Redis, PostgreSQL) run as processes of their own on the same machine.
`benchmarks/README.md` describes every workload.

The baselines in full (`benchmarks/baselines.py`):

- **seed-port** (the "simple locked store" of the targets): a straight port of a simple Rust store: a dict of small
  mutable records under one `threading.Lock`, whose `list()` sorts every record on each call.
- **server-dict** (*dict + lock*): a dict of plain JSON dicts under one lock, no index; its `list` sorts the values.
- **rwlock-fair-dict** and **fasteners-dict**: the same dict guarded by `readerwriterlock`'s `RWLockFair` and by
  `fasteners.ReaderWriterLock`, each used its cheapest correct way.
- **bare-dict** (*dict, no lock*): the same dict with no lock at all.
- **vllm-like**: the `openai` SDK's pydantic `Response` objects in a dict under an `asyncio.Lock`, read with an
  awaited `get`; it takes part in `get` and in memory per record.
- **plain-dict** (HTTP, `benchmarks/http_baseline.py`): a minimal WSGI server with the three routes the HTTP
  workload calls, the same `echo` model and `Response` JSON, kept in plain dicts under one lock; served by waitress
  with the same threads as `python -m responsestore serve`.

responsestore runs at its defaults: the 30-day TTL (every `get` reads the clock) and a capacity bound (the default
10,000, or twice the largest size when that is more, so that it never evicts the measured data). `get` reads every
stored record in a random order shared by all variants, not a few hot keys.
"""

#: The command that measures everything and rewrites this page with its plots (stated on the page and in the README).
DOCS_COMMAND = "python -m benchmarks"


def _intro(results: dict[str, Any], data: str | None) -> list[str]:
    machine = results["machine"]
    mode = results["settings"]["mode"]
    when = machine["date"].split(" ")[0]
    python = f"{machine['implementation']} {machine['python'].split()[0]}"
    run = f"{results['duration_seconds'] / 60:.0f} minutes" if results["duration_seconds"] >= 90 else "seconds"
    lines = [
        "(benchmarks)=",
        "# Benchmarks",
        "",
        "How fast responsestore is and how much memory it takes, next to the simplest things a server could use "
        "instead. Each section below answers one question: a sentence, a plot and a small table. All figures come "
        f"from one run on one machine ({machine['cpu']}, {machine['cores']} cores, {python}, {when}); times are "
        "medians; [the details](#benchmarks-details) at the end give the method, the machine and every figure"
        + ("." if data is None else f", and {{download}}`results.json <{data}>` has them all as data."),
        "",
    ]
    if mode != "full":
        lines.extend([f"These figures come from a `{mode}` run: smaller sizes, fewer samples.", ""])
    if load_note(results):
        lines.extend(
            [
                "Other work shared the machine during the run, so the absolute times are inflated; the ratios "
                "between figures measured side by side (most were sampled in turn) are the ones to read.",
                "",
            ]
        )
    lines.extend(
        [
            f"To measure again and rewrite this page and its plots (`docs/_static/benchmarks/`) from a checkout, "
            f"one command (this run took {run}):",
            "",
            "```sh",
            "pip install -e '.[benchmarks]'",
            f"{DOCS_COMMAND}",
            "```",
            "",
            "`python -m benchmarks --write-docs` redraws them from the last run's results (`benchmarks/results/`, "
            "else the copy beside the plots) without measuring again.",
            "",
        ]
    )
    return lines


def write_docs(results: dict[str, Any], page: Path, directory: Path) -> tuple[Path, dict[str, Path]]:
    """Draw the plots and copy the results file into ``directory``, then write the page; all from ``results``."""
    images = plots(results, directory)
    data = directory / "results.json"
    data.write_text(json.dumps(results, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return write_docs_page(results, page, images, data), images


def question_lines(question: Question, image: str | None) -> list[str]:
    """One question's section: its heading, the answer, the plot (if drawn), the table and its notes."""
    lines = [f"## {question.heading}", "", question.answer, ""]
    if image is not None:
        lines.extend([f"![{question.title}]({image})", ""])
    lines.extend(question.table)
    for note in question.notes:
        lines.extend([note, ""])
    return lines


def write_docs_page(results: dict[str, Any], page: Path, images: dict[str, Path], data: Path | None = None) -> Path:
    """Write the documentation page for ``results`` to ``page``, linking ``images`` (and the results file ``data``,
    if given) relative to it."""
    relative = {key: path.resolve().relative_to(page.parent.resolve()).as_posix() for key, path in images.items()}
    data_link = None if data is None else data.resolve().relative_to(page.parent.resolve()).as_posix()
    lines = [*_intro(results, data_link), _BASELINES]
    for question in questions(results):
        lines.extend(question_lines(question, relative.get(question.key)))
    lines.extend([_DETAILS, "### The run", ""])
    lines.extend([*machine_lines(results), *load_note(results), *sections(results, level=3)])
    page.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return page
