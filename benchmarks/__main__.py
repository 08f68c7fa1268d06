"""Command line of the benchmark suite: ``python -m benchmarks [--quick] [--output DIR] [--plots DIR]``.

A full run of every workload (``python -m benchmarks``, no ``--only``, ``--ops``, ``--plots`` or ``--no-plots``)
also rewrites the documentation: ``docs/benchmarks.md`` and its plots in ``docs/_static/benchmarks/``, all from
the run's own results. ``python -m benchmarks --write-docs`` regenerates them from the results file of an earlier
run (``--output``'s ``results.json``) without measuring anything.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from . import MODES, ROOT, WORKLOADS, run_suite, targets
from ._timing import Progress
from .ops import OPS
from .report import NONE, TIMES, plots, write_docs, write_results

DEFAULT_OUTPUT = ROOT / "benchmarks" / "results"
DOCS_PLOTS = ROOT / "docs" / "_static" / "benchmarks"
DOCS_PAGE = ROOT / "docs" / "benchmarks.md"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure responsestore against its baselines and check the performance targets.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="seconds: sizes 10^3 and 10^4, few samples, no plots")
    mode.add_argument("--smoke", action="store_true", help="the tiniest run (used by the test suite)")
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="directory for results.json and results.md (default: benchmarks/results/)",
    )
    parser.add_argument(
        "--plots",
        type=Path,
        default=None,
        help="draw PNG plots into this directory (a full run of every workload draws them into "
        "docs/_static/benchmarks/ and rewrites docs/benchmarks.md)",
    )
    parser.add_argument(
        "--no-plots", action="store_true", help="draw no plots and leave docs/benchmarks.md alone, even in full mode"
    )
    parser.add_argument(
        "--only",
        default=None,
        help=f"comma-separated workloads to run (default: all of {','.join(WORKLOADS)})",
    )
    parser.add_argument(
        "--ops",
        default=None,
        help=f"comma-separated operations the ops family times (default: all of {','.join(OPS)}); "
        "the targets of the others are then not assessed",
    )
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="measure nothing: regenerate docs/benchmarks.md and its plots from OUTPUT/results.json",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def _print_targets(results: dict[str, object]) -> None:
    print("\nTargets:")
    for target in results["targets"]:  # type: ignore[attr-defined]
        verdict = {True: "met   ", False: "MISSED", None: "n/a   "}[target["met"]]
        value = NONE if target["value"] is None else f"{target['value']:.3g}{TIMES}"
        needed = f"{target['comparison']} {target['threshold']:g}{TIMES}"
        print(f"  [{verdict}] {target['description']}: {value} (needs {needed})")
        print(f"           {target['detail']}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    output: Path = args.output
    if args.write_docs:
        # The last run's results, else the copy the documentation was last written from.
        source = output / "results.json"
        if not source.exists():
            source = (args.plots or DOCS_PLOTS) / "results.json"
        if not source.exists():
            print(f"no results at {output / 'results.json'}: run `python -m benchmarks` first", file=sys.stderr)
            return 2
        results = json.loads(source.read_text(encoding="utf-8"))
        # The targets are a pure function of the measurements: judging them again picks up edited explanations.
        results["targets"] = targets.evaluate(results["workloads"])
        page, images = write_docs(results, DOCS_PAGE, args.plots or DOCS_PLOTS)
        print(f"wrote {page} from {source}, and {len(images)} plots and results.json into {args.plots or DOCS_PLOTS}")
        return 0
    settings = MODES["quick" if args.quick else "smoke" if args.smoke else "full"]
    if args.ops is not None:
        chosen_ops = tuple(op.strip() for op in args.ops.split(",") if op.strip())
        if not chosen_ops or any(op not in OPS for op in chosen_ops):
            print(f"unknown operation in --ops {args.ops!r}; choose from {', '.join(OPS)}", file=sys.stderr)
            return 2
        settings = dataclasses.replace(settings, ops=chosen_ops)
    names = None if args.only is None else [name.strip() for name in args.only.split(",") if name.strip()]
    if names is not None and any(name not in WORKLOADS for name in names):
        print(f"unknown workload in --only {args.only!r}; choose from {', '.join(WORKLOADS)}", file=sys.stderr)
        return 2
    progress = Progress(quiet=args.quiet)
    results = run_suite(settings, names, progress)
    json_path, md_path = write_results(results, output)
    progress(f"wrote {json_path} and {md_path}")
    # A full run of every workload is what the documentation shows: it rewrites the page and its plots.
    documents = settings.mode == "full" and names is None and args.ops is None and args.plots is None
    plot_dir = args.plots if args.plots is not None else (DOCS_PLOTS if documents else None)
    if plot_dir is not None and not args.no_plots:
        if documents:
            page, written = write_docs(results, DOCS_PAGE, plot_dir)
            progress(f"wrote {page}, and {len(written)} plots and results.json into {plot_dir}")
        else:
            written = plots(results, plot_dir)
            progress(f"drew {len(written)} plots into {plot_dir}")
    _print_targets(results)
    failed = [name for name, section in results["workloads"].items() if "error" in section]
    if failed:
        print(f"\nworkloads failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
