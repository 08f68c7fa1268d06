"""``python -m benchmarks --ops``: the ops family times only the operations named, and the targets follow."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `pytest` run without `python -m` from elsewhere
    sys.path.insert(0, str(ROOT))

from benchmarks import ops  # noqa: E402
from benchmarks.__main__ import main  # noqa: E402
from benchmarks._timing import SMOKE  # noqa: E402


def test_only_the_named_operations_are_timed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--smoke", "--only", "ops", "--ops", "get, input_items_page", "--output", str(tmp_path), "--quiet"]
    assert main(argv) == 0
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    section = results["workloads"]["ops"]
    assert list(section["ops"]) == ["get", "input_items_page"]  # in table order
    assert {row["op"] for row in section["results"]} == {"get", "input_items_page"}
    assert results["settings"]["ops"] == ["get", "input_items_page"]
    by_name = {target["name"]: target for target in results["targets"]}
    for name in ("get-vs-seed-port", "input-items-vs-seed-port"):
        assert by_name[name]["value"] is not None, name
        assert by_name[name]["met"] in (True, False)
    assert by_name["create-complete-vs-seed-port"]["met"] is None  # not timed, so not assessed
    printed = capsys.readouterr().out
    assert "get no slower than seed-port's locked get" in printed
    assert "first input_items page ≤ 5x seed-port's list slice" in printed


def test_unknown_operations_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--smoke", "--only", "ops", "--ops", "get,gte", "--output", str(tmp_path)]) == 2
    assert "unknown operation in --ops 'get,gte'" in capsys.readouterr().err
    assert main(["--smoke", "--only", "ops", "--ops", ",", "--output", str(tmp_path)]) == 2
    with pytest.raises(ValueError, match="unknown operations"):
        ops.chosen_ops(dataclasses.replace(SMOKE, ops=("get", "gte")))
    assert ops.chosen_ops(SMOKE) == ops.OPS
