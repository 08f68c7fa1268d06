"""Writing results: the JSON file, the Markdown tables, the PNG plots and the documentation page."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["DASH", "NONE", "TIMES", "markdown", "plots", "sections", "write_docs_page", "write_results"]

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


# ------------------------------------------------------------------------------------------------ plots


def plots(results: dict[str, Any], directory: Path) -> dict[str, Path]:
    """Draw one PNG per workload that has results into ``directory``; return the paths by section."""
    import matplotlib  # noqa: PLC0415 - a benchmark-only dependency, needed only for plots

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    directory.mkdir(parents=True, exist_ok=True)
    workloads = results["workloads"]
    written: dict[str, Path] = {}
    plt.rcParams.update({"font.size": 8, "axes.titlesize": 9, "figure.dpi": 110})
    title_suffix = f" — {results['machine']['cpu']}, Python {results['machine']['python'].split()[0]}"

    ops = workloads.get("ops", {})
    if ops.get("results"):
        names = list(ops["ops"])
        columns = 4
        rows_count = math.ceil(len(names) / columns)
        fig, axes = plt.subplots(rows_count, columns, figsize=(13, 3.2 * rows_count), squeeze=False)
        variants = _ordered((row["variant"] for row in ops["results"]), VARIANT_ORDER)
        for ax, op in zip(axes.flat, names, strict=False):
            for variant in variants:
                rows = sorted(
                    (r for r in ops["results"] if r["op"] == op and r["variant"] == variant), key=lambda r: r["size"]
                )
                if not rows:
                    continue
                sizes = [r["size"] for r in rows]
                medians = [r["median_ns"] / 1e3 for r in rows]
                errors = [
                    [max(0.0, (r["median_ns"] - r["q1_ns"]) / 1e3) for r in rows],
                    [max(0.0, (r["q3_ns"] - r["median_ns"]) / 1e3) for r in rows],
                ]
                ax.errorbar(sizes, medians, yerr=errors, marker="o", markersize=3, capsize=2, label=variant)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(op)
            ax.set_xlabel("records in the store")
            ax.set_ylabel("µs per operation")
            ax.grid(visible=True, which="major", alpha=0.3)
        for ax in list(axes.flat)[len(names) :]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=7)
        fig.suptitle("Single-operation cost (median, IQR bars)" + title_suffix)
        fig.tight_layout()
        written["ops"] = _save(fig, directory / PLOT_FILES["ops"], plt)

    locks = workloads.get("locks", {})
    if locks.get("results"):
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharex=True)
        lock_names = _ordered((row["lock"] for row in locks["results"]), LOCK_ORDER)
        for ax, mode in zip(axes, ("read", "write"), strict=True):
            by_key = {(r["lock"], r["form"]): r for r in locks["results"] if r["mode"] == mode}
            height = 0.38
            for offset, form in ((-height / 2, "methods"), (height / 2, "with")):
                values = [by_key[lock, form]["median_ns"] if (lock, form) in by_key else 0 for lock in lock_names]
                ax.barh([i + offset for i in range(len(lock_names))], values, height=height, label=form)
            ax.set_yticks(range(len(lock_names)), lock_names)
            ax.invert_yaxis()
            ax.set_title(f"{mode}: acquire + release, uncontended")
            ax.set_xlabel("ns (median)")
            ax.grid(visible=True, axis="x", alpha=0.3)
        axes[0].legend()
        fig.suptitle("Lock cost" + title_suffix)
        fig.tight_layout()
        written["locks"] = _save(fig, directory / PLOT_FILES["locks"], plt)

    mixed = workloads.get("mixed", {})
    if mixed.get("results"):
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
        variants = _ordered((row["variant"] for row in mixed["results"]), VARIANT_ORDER)
        for variant in variants:
            rows = sorted((r for r in mixed["results"] if r["variant"] == variant), key=lambda r: r["threads"])
            threads = [r["threads"] for r in rows]
            axes[0].plot(threads, [r["throughput_median"] for r in rows], marker="o", markersize=3, label=variant)
            axes[1].plot(threads, [r["p99_us"] for r in rows], marker="o", markersize=3, label=variant)
        for ax in axes:
            ax.set_xscale("log", base=2)
            ax.set_xticks(mixed["threads"], [str(t) for t in mixed["threads"]])
            ax.set_xlabel("threads")
            ax.grid(visible=True, alpha=0.3)
        axes[0].set_yscale("log")
        axes[0].set_ylabel("operations per second")
        axes[0].set_title("throughput (median of runs)")
        axes[1].set_yscale("log")
        axes[1].set_ylabel("µs")
        axes[1].set_title("p99 latency of one operation")
        axes[0].legend(fontsize=7)
        fig.suptitle("Mixed workload: 90 % get, 5 % create, 5 % complete" + title_suffix)
        fig.tight_layout()
        written["mixed"] = _save(fig, directory / PLOT_FILES["mixed"], plt)

    memory = workloads.get("memory", {})
    if memory.get("results"):
        fig, ax = plt.subplots(figsize=(7, 3))
        rows = memory["results"]
        labels = [r["representation"] for r in rows]
        height = 0.38
        ax.barh(
            [i - height / 2 for i in range(len(rows))],
            [r["tracemalloc_bytes_per_record"] for r in rows],
            height=height,
            label="tracemalloc",
        )
        ax.barh(
            [i + height / 2 for i in range(len(rows))],
            [r["rss_bytes_per_record"] for r in rows],
            height=height,
            label="RSS",
        )
        ax.set_yticks(range(len(rows)), labels)
        ax.invert_yaxis()
        for container in ax.containers:
            ax.bar_label(container, fmt="{:,.0f} B", padding=3, fontsize=7)
        widest = max(max(r["tracemalloc_bytes_per_record"], r["rss_bytes_per_record"]) for r in rows)
        ax.set_xlim(0, widest * 1.2)
        ax.set_xlabel("bytes per stored small response")
        ax.grid(visible=True, axis="x", alpha=0.3)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2)
        ax.set_title("Memory per stored record")
        fig.tight_layout()
        written["memory"] = _save(fig, directory / PLOT_FILES["memory"], plt)

    redis = workloads.get("redis", {})
    if redis.get("results"):
        fig, axes = plt.subplots(1, 2, figsize=(11, 3))
        rows = redis["results"]
        axes[0].barh(range(len(rows)), [r["median_ns"] / 1e3 for r in rows])
        axes[0].set_yticks(range(len(rows)), [r["variant"] for r in rows])
        axes[0].invert_yaxis()
        axes[0].set_xlabel("µs per create + complete (median)")
        axes[0].set_title("one process")
        rate = redis["throughput"]
        labels = ["1 process", f"{rate['processes']} processes"]
        axes[1].barh([0, 1], [rate["one"], rate["many"]])
        axes[1].set_yticks([0, 1], labels)
        axes[1].invert_yaxis()
        axes[1].set_xlabel("create + complete per second, all processes")
        axes[1].set_title("one server")
        for ax in axes:
            for container in ax.containers:
                ax.bar_label(container, fmt="{:,.0f}", padding=3, fontsize=7)
            ax.set_xlim(0, ax.get_xlim()[1] * 1.15)
            ax.grid(visible=True, axis="x", alpha=0.3)
        fig.suptitle("Redis backend" + title_suffix)
        fig.tight_layout()
        written["redis"] = _save(fig, directory / PLOT_FILES["redis"], plt)

    http = workloads.get("http", {})
    if http.get("throughput") and http.get("long_reply"):
        fig, axes = plt.subplots(1, 2, figsize=(11, 3))
        rows = http["throughput"]
        bars = axes[0].barh(range(len(rows)), [r["throughput_median"] for r in rows])
        axes[0].bar_label(bars, fmt="{:,.0f}", padding=3, fontsize=7)
        axes[0].set_yticks(range(len(rows)), [r["variant"] for r in rows])
        axes[0].set_xlabel("create + retrieve + input_items per second (median)")
        axes[0].set_title(f"{http['client_threads']} client threads, {http['server_threads']} server threads")
        rows = http["long_reply"]
        bars = axes[1].barh(range(len(rows)), [r["median_ns"] / 1e6 for r in rows])
        axes[1].bar_label(bars, fmt="{:,.1f}", padding=3, fontsize=7)
        axes[1].set_yticks(range(len(rows)), [r["variant"] for r in rows])
        axes[1].set_xscale("log")
        axes[1].set_xlabel("ms per reply (median, log scale)")
        axes[1].set_title(f"one non-streamed {http['long_words']:,}-word reply")
        for ax in axes:
            ax.invert_yaxis()
            ax.grid(visible=True, axis="x", alpha=0.3)
        axes[0].set_xlim(0, axes[0].get_xlim()[1] * 1.15)
        axes[1].set_xlim(right=axes[1].get_xlim()[1] * 3)
        fig.suptitle("HTTP server end to end" + title_suffix)
        fig.tight_layout()
        written["http"] = _save(fig, directory / PLOT_FILES["http"], plt)
    return written


def _save(fig: Any, path: Path, plt: Any) -> Path:
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------------ docs page

_INTRO = """\
(benchmarks)=
# Benchmarks

How fast responsestore is, next to the designs it replaces, measured in one run of the benchmark suite on the
machine named below. Reproduce it from a checkout:

```sh
python3 -m venv .venv && .venv/bin/pip install -q '.[benchmarks]'
.venv/bin/python -m benchmarks                 # full mode: minutes; results in benchmarks/results/
.venv/bin/python -m benchmarks --write-docs    # regenerate this page and its plots from those results
.venv/bin/python -m benchmarks --quick         # seconds: smaller sizes, fewer samples, no plots
```

responsestore runs at its defaults: the 30-day TTL (every `get` reads the clock) and a capacity bound (the default
10,000, or twice the largest size when that is more, so that it never evicts the measured data). `get` reads
every stored record in a random order shared by all variants, not a few hot keys.

The baselines live in `benchmarks/baselines.py` and are measured in the same run:

- **seed-port**: a straight port of a simple Rust store: a dict of small mutable records under one
  `threading.Lock`, whose `list()` sorts every record on each call.
- **server-dict**: a server's dict of plain JSON dicts under one lock, no index. Its `list` sorts the values
  with a C-level key (faster here than a heap selection: the dict holds records in creation order, and timsort
  sorts ordered input in linear time).
- **rwlock-fair-dict** and **fasteners-dict**: the same dict guarded by `readerwriterlock`'s `RWLockFair` and by
  `fasteners.ReaderWriterLock`, each used its cheapest correct way.
- **bare-dict**: the floor, the same dict with no lock at all (not thread-safe).
- **vllm-like**: what vLLM's Responses server keeps: the `openai` SDK's pydantic `Response` objects in a dict
  under an `asyncio.Lock`, read with an awaited `get` (one coroutine per timed loop). It takes part in `get` and
  in memory per record; its bulk in the timing runs shares one `Response` object.

- **plain-dict** (HTTP only, `benchmarks/http_baseline.py`): a minimal WSGI server with the three routes the
  HTTP workload calls, the same `echo` model and `Response` JSON, kept in plain dicts under one lock; served by
  waitress with the same threads as `python -m responsestore serve`.

The baselines validate nothing, copy nothing they return, and never expire or evict; responsestore validates and
freezes every argument, returns its immutable records and their stored, read-only items (no copies), keeps an
ordering index and marks recency on every read. Where a target is missed, the targets table says by how much;
the ratios of the ops tables say where.
Method: each figure is the median of several timed loops of many calls (`time.perf_counter_ns`), the spread is
the interquartile range, variants take their samples in turn, and the garbage collector is disabled during timed
loops only. `benchmarks/README.md` explains each figure.
"""


def write_docs_page(results: dict[str, Any], page: Path, images: dict[str, Path]) -> Path:
    """Write the documentation page for ``results`` to ``page``, linking ``images`` relative to it."""
    relative = {key: path.resolve().relative_to(page.parent.resolve()).as_posix() for key, path in images.items()}
    lines = [_INTRO, "## The run", ""]
    mode = results["settings"]["mode"]
    if mode != "full":
        lines.extend([f"These figures come from a `{mode}` run (smaller sizes, fewer samples).", ""])
    lines.extend([*machine_lines(results), *load_note(results), *sections(results, images=relative, level=2)])
    page.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return page
