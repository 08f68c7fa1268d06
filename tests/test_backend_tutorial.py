"""The tutorial backend of docs/writing-a-backend.md passes the whole conformance suite, on public imports only."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from typing import Any

from responsestore import BaseStore
from responsestore.testing.contract import StoreContract

TUTORIAL = Path(__file__).resolve().parent.parent / "docs" / "examples" / "tutorial_backend.py"
#: The only modules the tutorial may import from the package.
PUBLIC = {"responsestore", "responsestore.backend", "responsestore.errors"}


def _load() -> Any:
    spec = importlib.util.spec_from_file_location("docs_example_tutorial_backend", TUTORIAL)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tutorial = _load()


class TestTutorialStore(StoreContract):
    #: The tutorial is documentation, not a backend we ship: its property tests run four times lighter than the
    #: memory store's, which keeps the CI run's time for the backends we ship.
    weight = 4

    def make_store(self, **options: Any) -> BaseStore:
        store: BaseStore = tutorial.TutorialStore(**options)
        return store


def private_imports(source: str) -> list[str]:
    """What ``source`` imports from the package beyond :data:`PUBLIC`: private modules and names, relative imports."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [
                alias.name
                for alias in node.names
                if alias.name.split(".")[0] == "responsestore" and alias.name not in PUBLIC
            ]
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            if node.level or (module.split(".")[0] == "responsestore" and module not in PUBLIC):
                found.append(module)
            elif module in PUBLIC:
                found += [f"{module}.{alias.name}" for alias in node.names if alias.name.startswith("_")]
    return found


def test_the_tutorial_imports_only_public_modules() -> None:
    source = TUTORIAL.read_text(encoding="utf-8")
    assert "from responsestore.backend import" in source
    assert private_imports(source) == []


def test_the_import_check_catches_private_imports() -> None:
    bad = """
import responsestore._memory
import json, responsestore._paging as paging
from responsestore._contract import BaseStore
from responsestore import _events
from responsestore.backend import _private
from . import sibling
from .._x import y
from responsestore import BaseStore
from responsestore.backend import Stored
from responsestore.errors import StorageError
import responsestore, responsestore.backend
"""
    assert private_imports(bad) == [
        "responsestore._memory",
        "responsestore._paging",
        "responsestore._contract",
        "responsestore._events",
        "responsestore.backend._private",
        ".",
        ".._x",
    ]
