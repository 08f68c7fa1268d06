"""``responsestore.backend``: its protocols state exactly BaseStore's storage operations; it re-exports, not copies."""

from __future__ import annotations

import inspect
import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest

import responsestore
from responsestore import (
    BaseStore,
    ResponseStore,
    SQLiteStore,
    _contract,
    _conversations,
    _events,
    _paging,
    _recency,
    _registry,
    _retention,
    _room,
    _tombstones,
    backend,
)

PROTOCOLS = (backend.StorageOperations, backend.ConversationOperations, backend.OptionalOperations)


def members(protocol: type) -> set[str]:
    """The operations a protocol lists: its methods and properties (not what ``typing.Protocol`` adds)."""
    return {
        name
        for name, value in vars(protocol).items()
        if not name.startswith("__") and isinstance(value, (types.FunctionType, property))
    }


def function(value: Any) -> Any:
    return value.fget if isinstance(value, property) else value


def shape(value: Any) -> tuple[list[tuple[str, Any, Any]], dict[str, Any]]:
    """A callable's parameters (name, kind, default) and its resolved annotations."""
    value = function(value)
    parameters = [(p.name, p.kind, p.default) for p in inspect.signature(value).parameters.values()]
    return parameters, typing.get_type_hints(value)


def test_the_required_operations_are_exactly_the_abstract_methods_of_basestore() -> None:
    assert members(backend.StorageOperations) == set(BaseStore.__abstractmethods__)


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda protocol: protocol.__name__)
def test_each_operation_has_basestores_signature_and_a_promise(protocol: type) -> None:
    for name in members(protocol):
        stated = inspect.getattr_static(protocol, name)
        implemented = inspect.getattr_static(BaseStore, name)
        assert isinstance(stated, property) == isinstance(implemented, property), name
        assert shape(stated) == shape(implemented), f"{protocol.__name__}.{name} drifted from BaseStore.{name}"
        assert function(stated).__doc__, f"{protocol.__name__}.{name} states no promise"


def test_the_protocols_do_not_overlap() -> None:
    required, conversations, optional = (members(protocol) for protocol in PROTOCOLS)
    assert not required & conversations
    assert not required & optional
    assert not conversations & optional


@pytest.mark.parametrize("store_class", [ResponseStore, SQLiteStore], ids=lambda cls: cls.__name__)
def test_every_storage_hook_a_builtin_backend_overrides_is_in_a_protocol(store_class: type) -> None:
    listed = set().union(*(members(protocol) for protocol in PROTOCOLS))
    hooks = {
        name
        for name, value in vars(store_class).items()
        if name.startswith("_") and not name.startswith("__") and hasattr(BaseStore, name) and callable(function(value))
    }
    assert hooks <= listed, f"not in any protocol: {sorted(hooks - listed)}"
    # ... and the memory store, which keeps conversations, implements every conversation operation.
    if store_class is ResponseStore:
        assert members(backend.ConversationOperations) <= set(vars(store_class))


def test_the_module_re_exports_the_private_modules_objects() -> None:
    sources = [
        _contract,
        _conversations,
        _events,
        _paging,
        _recency,
        _registry,
        _retention,
        _room,
        _tombstones,
        responsestore,
    ]
    for name in backend.__all__:
        value = getattr(backend, name)
        if name in {"StorageOperations", "ConversationOperations", "OptionalOperations"}:
            continue
        assert any(getattr(source, name, object()) is value for source in sources), f"{name} is a copy"
    assert backend.SWEEP_BATCH == 16
    assert backend.MAX_ATTEMPTS == 100
    assert backend.cursor_memory(None) == backend.CURSOR_MEMORY


def test_every_exported_name_is_documented() -> None:
    assert sorted(backend.__all__) == sorted(set(backend.__all__))
    source = inspect.getsource(backend)
    for name in backend.__all__:
        value = getattr(backend, name)
        # A generic alias (Clock = Callable[[], float]) is documented like a constant; Python 3.10 says it is a type.
        if isinstance(value, (type, types.FunctionType)) and not isinstance(value, types.GenericAlias):
            assert value.__doc__, name
        else:  # a constant or a type alias: documented by a "#:" comment (Sphinx's) right above its assignment
            assert re.search(rf"^#: .*\n(?:#: .*\n)*{name}\b", source, re.MULTILINE), name


def test_the_api_reference_documents_the_module() -> None:
    api = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text(encoding="utf-8")
    block = re.search(
        r"\.\. automodule:: responsestore\.backend\n   :members:\n   :exclude-members: ([^\n]+(?:\n      [^\n]+)*)", api
    )
    assert block is not None
    excluded = {name.strip() for name in block[1].split(",")}
    protocols = {protocol.__name__ for protocol in PROTOCOLS}
    # Left out: the names documented as responsestore.X, and the protocols, each documented with its operations.
    documented_at_the_top = {
        name for name in backend.__all__ if getattr(responsestore, name, None) is getattr(backend, name)
    }
    assert excluded == (documented_at_the_top - {"MAX_CONVERSATION_ITEMS"}) | protocols
    for name in protocols:
        assert f".. autoclass:: responsestore.backend.{name}\n   :members:\n   :private-members:\n" in api
