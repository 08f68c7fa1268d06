"""The Background & streaming page's example program runs and resumes exactly where it stopped."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "background.py"


def test_the_background_example_resumes_without_gap_or_duplicate() -> None:
    spec = importlib.util.spec_from_file_location("background_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert "".join(module.main()).split() == module.WORDS


def test_the_background_example_runs_as_a_program() -> None:
    result = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.splitlines()[-1] == "completed the quick brown fox jumps over the lazy dog"
