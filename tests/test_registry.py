"""``responsestore.open``'s scheme registry: built-in schemes, ``register_backend``, installed packages' entry points.

The entry-point tests install real distributions the way pip does: a ``*.dist-info`` directory with an
``entry_points.txt`` beside the package, on ``sys.path``, found by ``importlib.metadata``.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

import responsestore
from responsestore import InvalidArgument, ResponseStore
from responsestore._registry import ENTRY_POINT_GROUP, backend_schemes

_PLUGIN = '''
from responsestore import ResponseStore


class PluginStore(ResponseStore):
    """A store class an installed package provides."""

    opened_from: str | None = None

    @classmethod
    def from_url(cls, url, **options):
        store = cls(**options)
        store.opened_from = url
        return store
'''


def _install(site: Path, distribution: str, module: str, entry_points: dict[str, str]) -> None:
    """Install the distribution ``distribution`` into ``site``: the module and its metadata, as pip leaves them."""
    (site / f"{module}.py").write_text(textwrap.dedent(_PLUGIN), encoding="utf-8")
    info = site / f"{distribution}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0\n", encoding="utf-8")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}", encoding="utf-8")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh directory on ``sys.path`` to install distributions into."""
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [name for name in sys.modules if name.startswith("rs_plugin")]:
        del sys.modules[name]


def test_an_installed_package_registers_a_scheme_through_its_entry_point(site: Path) -> None:
    _install(site, "rs-plugin-one", "rs_plugin_one", {"vault+http": "rs_plugin_one:PluginStore"})
    assert backend_schemes()["vault+http"] == "rs_plugin_one:PluginStore"
    with responsestore.open("Vault+HTTP://somewhere/x", max_records=5) as store:
        assert type(store).__name__ == "PluginStore"
        assert store.opened_from == "Vault+HTTP://somewhere/x"  # type: ignore[attr-defined]
        assert store.retention.max_records == 5
    with pytest.raises(InvalidArgument, match="unknown store scheme") as info:
        responsestore.open("nothing://")
    assert "vault+http://..." in str(info.value)


def test_a_package_cannot_replace_a_built_in_scheme(site: Path) -> None:
    _install(site, "rs-plugin-hijack", "rs_plugin_hijack", {"memory": "rs_plugin_hijack:PluginStore"})
    with responsestore.open("memory://") as store:
        assert type(store) is ResponseStore
    assert backend_schemes()["memory"] == "responsestore._memory:ResponseStore"


def test_two_packages_declaring_one_scheme_is_an_error_naming_both(site: Path) -> None:
    _install(site, "rs-plugin-a", "rs_plugin_a", {"twice": "rs_plugin_a:PluginStore"})
    _install(site, "rs-plugin-b", "rs_plugin_b", {"twice": "rs_plugin_b:PluginStore"})
    with pytest.raises(InvalidArgument, match="more than one installed package") as info:
        responsestore.open("twice://")
    assert "rs-plugin-a" in str(info.value)
    assert "rs-plugin-b" in str(info.value)
    assert "twice" not in backend_schemes()
    responsestore.register_backend("twice", "rs_plugin_b:PluginStore")  # the application chooses
    try:
        with responsestore.open("twice://") as store:
            assert type(store).__module__ == "rs_plugin_b"
    finally:
        responsestore._registry._registered.pop("twice")


def test_a_broken_entry_point_is_a_clear_error(site: Path) -> None:
    _install(site, "rs-plugin-bad", "rs_plugin_bad", {"badvalue": "not a target", "gone": "rs_plugin_nowhere:Store"})
    with pytest.raises(InvalidArgument, match=r"entry point 'badvalue' of rs-plugin-bad is 'package\.module:Class'"):
        responsestore.open("badvalue://")
    with pytest.raises(InvalidArgument, match="cannot be loaded"):
        responsestore.open("gone://")


def test_register_backend_takes_rfc_3986_schemes_and_wins_over_built_ins(site: Path) -> None:
    responsestore.register_backend("test-mem+v2.x", "responsestore._memory:ResponseStore")
    try:
        with responsestore.open("TEST-MEM+V2.X://", max_records=3) as store:
            assert store.retention.max_records == 3
        assert backend_schemes()["test-mem+v2.x"] == "responsestore._memory:ResponseStore"
    finally:
        responsestore._registry._registered.pop("test-mem+v2.x")
    (site / "rs_plugin_own.py").write_text(textwrap.dedent(_PLUGIN), encoding="utf-8")
    responsestore.register_backend("sqlite", "rs_plugin_own:PluginStore")
    try:
        with responsestore.open("sqlite:///never-created.db") as store:
            assert type(store).__name__ == "PluginStore"
        assert not (site / "never-created.db").exists()
    finally:
        responsestore._registry._registered.pop("sqlite")


@pytest.mark.parametrize("scheme", ["", "1abc", "+x", "Upper", "sp ace", "a/b", "é", "x" * 65, 7])
def test_register_backend_refuses_a_scheme_that_is_not_one(scheme: object) -> None:
    with pytest.raises(InvalidArgument, match="a backend scheme is a lowercase letter"):
        responsestore.register_backend(scheme, "x:Y")  # type: ignore[arg-type]


@pytest.mark.parametrize("target", ["no-colon", "a:", ":B", "a b:C", "a:B.c", None])
def test_register_backend_refuses_a_target_that_is_not_module_and_class(target: object) -> None:
    with pytest.raises(InvalidArgument, match="module:Class"):
        responsestore.register_backend("fine", target)  # type: ignore[arg-type]


def test_a_target_that_is_not_a_store_class_is_refused() -> None:
    responsestore.register_backend("notastore", "responsestore._registry:ENTRY_POINT_GROUP")
    try:
        with pytest.raises(InvalidArgument, match="not a store class with from_url"):
            responsestore.open("notastore://")
    finally:
        responsestore._registry._registered.pop("notastore")


def test_a_built_in_backend_without_its_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # as if redis-py were not installed
    monkeypatch.delitem(sys.modules, "responsestore._redis", raising=False)
    with pytest.raises(InvalidArgument, match=r"pip install 'responsestore\[redis\]'"):
        responsestore.open("redis://localhost:6379/0")


def test_every_built_in_scheme_is_listed_with_its_usage() -> None:
    with pytest.raises(InvalidArgument) as info:
        responsestore.open("mongodb://localhost")
    for usage in ("memory://", "sqlite:///PATH", "redis://", "rediss://", "postgresql://", "postgresql+psycopg://"):
        assert usage in str(info.value)
