"""The official openai Node client, for tests that drive the server from Node as well as from Python.

The ``openai`` npm package is installed once into a cache directory (``npm install``; package registries are
reachable wherever the tests run). Without ``node`` and ``npm`` the tests that need them are skipped, except under
CI (``CI=true``), where a missing Node client is a failure: CI must run them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

#: The major version of the npm ``openai`` package the tests use.
VERSION = "6"
HERE = Path(__file__).resolve().parent / "node"
TIMEOUT = 300.0


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the openai Node client is needed under CI: {reason}")
    pytest.skip(reason)


def modules() -> Path:
    """The ``node_modules`` directory holding the ``openai`` package (installed on first use)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("node and npm are not installed (apt-get install nodejs npm)")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "responsestore-tests" / f"openai-{VERSION}"
    target = cache / "node_modules"
    if not (target / "openai").is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [str(npm), "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(cache), f"openai@{VERSION}"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        if done.returncode != 0 or not (target / "openai").is_dir():
            _unavailable(f"npm install openai@{VERSION} failed: {done.stderr[-500:]}")
    return target


def run(script: str, *args: str) -> Any:
    """Run ``tests/node/<script>`` with ``args``; return the JSON its last output line holds.

    The script runs from a copy beside the installed ``node_modules`` (ES modules resolve packages from where the
    script lies, not from ``NODE_PATH``).
    """
    target = modules()
    copy = target.parent / script
    shutil.copyfile(HERE / script, copy)
    done = subprocess.run(
        [str(shutil.which("node")), str(copy), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        cwd=target.parent,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
