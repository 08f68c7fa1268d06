"""Sphinx configuration: MyST markdown pages plus autodoc of the package's docstrings.

Build with ``python -m sphinx -W --keep-going -q -b html docs docs/_build/html`` (warnings are errors).
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import re
import sys
from pathlib import Path
from typing import Any

import attrs
from sphinx.pycode import ModuleAnalyzer

# Document the sources of this checkout, whatever copy of the package is installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import responsestore

project = "responsestore"
author = "responsestore developers"
copyright = "responsestore developers"
release = responsestore.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

root_doc = "index"
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "examples", "Thumbs.db", ".DS_Store"]

# Every reference into the package must resolve. References into the standard library cannot (intersphinx is off:
# builds use no network), nor can generic type variables such as ``responsestore._paging.T`` (or ``T_co``).
nitpicky = True
nitpick_ignore_regex = [
    ("py:.*", r"(?!responsestore\b).*"),
    ("py:class", r"responsestore\._\w+\.[A-Z](_co)?"),
]

myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_preserve_defaults = True
autodoc_typehints = "signature"
autodoc_class_signature = "mixed"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

html_theme = "alabaster"
html_title = f"responsestore {release}"
html_theme_options = {
    "description": "A thread-safe store of OpenAI Responses API objects.",
    "fixed_sidebar": True,
}
html_show_sourcelink = False


# ---------------------------------------------------------------------------------------------- docstring tweaks

_RAISES = re.compile(r"^(\s*)Raises:\s*$")
_ATTRS_DEFAULT = re.compile(r"attr_dict\['(\w+)'\]\.default")


def _split_raises_lists(  # noqa: PLR0917 - the signature of Sphinx's event
    app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Turn a one-line ``Raises:`` list (``A, B (when), C.``) into one napoleon entry per exception.

    Some docstrings list the exceptions of a method on one line; napoleon would render that line as a single,
    garbled entry.
    """
    for i, line in enumerate(lines[:-1]):
        if _RAISES.match(line) is None:
            continue
        entry = lines[i + 1]
        if "," not in entry or ":" in entry:
            continue
        if i + 2 < len(lines) and lines[i + 2].strip():
            continue  # a multi-line entry: leave it alone
        indent = entry[: len(entry) - len(entry.lstrip())]
        replacement = []
        for part in entry.strip().rstrip(".").split(","):
            exc, _, note = part.strip().partition(" ")
            note = note.strip().removeprefix("(").removesuffix(")") or _summary(exc)
            replacement.append(f"{indent}{exc}: {note}" if note else f"{indent}{exc}")
        lines[i + 1 : i + 2] = replacement
        return


def _summary(name: str) -> str:
    """The first line of the docstring of the exception ``responsestore.<name>``, or ``""``."""
    doc = getattr(getattr(responsestore, name, None), "__doc__", None) or ""
    summary = doc.strip().split("\n", 1)[0].rstrip(".")
    return summary[:1].lower() + summary[1:]


def _reexported_data_docs(  # noqa: PLR0917 - the signature of Sphinx's event
    app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Give a constant that a public module re-exports (``DEFAULT_MAX_BODY_BYTES = 1 << 20``) its ``#:`` comment.

    Autodoc reads ``#:`` comments only in the module the directive names; for a name that module imports, it falls
    back to the value's own docstring, which for an ``int`` or a ``str`` is the documentation of the type. Follow
    the ``from ... import`` instead, to the comment where the value is defined; drop the type's documentation if
    there is none.
    """
    if what != "data":
        return
    own = " ".join(" ".join(lines).split())
    if own and own != " ".join(inspect.cleandoc(type(obj).__doc__ or "").split()):
        return  # a docstring of its own (or a comment autodoc found)
    module_name, _, attribute = name.rpartition(".")
    lines[:] = _definition_comment(module_name, attribute)


def _definition_comment(module_name: str, attribute: str, depth: int = 0) -> list[str]:
    """The ``#:`` comment of ``attribute`` in ``module_name``, or in the module it imports it from; else ``[]``."""
    try:
        analyzer = ModuleAnalyzer.for_module(module_name)
        comment = analyzer.find_attr_docs().get(("", attribute))
    except Exception:  # noqa: BLE001 - a module without source: nothing to read
        return []
    if comment:
        return list(comment)
    if depth >= 5:
        return []
    package = module_name if str(analyzer.srcname).endswith("__init__.py") else module_name.rpartition(".")[0]
    for node in ast.walk(ast.parse(analyzer.code)):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == attribute:
                    source = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
                    return _definition_comment(source, alias.name, depth + 1)
    return []


def _attrs_defaults(  # noqa: PLR0917 - the signature of Sphinx's event
    app: Any, what: str, name: str, obj: Any, options: Any, signature: str | None, return_annotation: str | None
) -> tuple[str | None, str | None] | None:
    """Show the real defaults of attrs-generated ``__init__`` methods, not ``attr_dict['x'].default``."""
    if signature is None or not attrs.has(obj):
        return None
    fields = attrs.fields_dict(obj)
    return _ATTRS_DEFAULT.sub(lambda m: repr(fields[m.group(1)].default), signature), return_annotation


def _public_bases(app: Any, name: str, obj: Any, options: Any, bases: list[Any]) -> None:
    """Show a store built on a private helper class (``responsestore._sql.SQLStore``) as what it is: a BaseStore."""
    bases[:] = [
        responsestore.BaseStore if getattr(base, "__origin__", base).__module__ == "responsestore._sql" else base
        for base in bases
    ]


def setup(app: Any) -> None:
    # Before napoleon (priority 500) turns the Google sections into reST.
    app.connect("autodoc-process-docstring", _split_raises_lists, priority=400)
    app.connect("autodoc-process-docstring", _reexported_data_docs, priority=400)
    app.connect("autodoc-process-signature", _attrs_defaults)
    app.connect("autodoc-process-bases", _public_bases)
