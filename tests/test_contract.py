"""Our own backends through the public conformance suite, one class per descriptor in ``tests.backends``."""

from __future__ import annotations

from typing import Any

from responsestore import BaseStore
from responsestore.testing.contract import StoreContract

from .backends import DESCRIPTORS, Backend

#: Class names that do not follow from capitalizing the backend's name.
TITLES = {"sqlite": "SQLite"}


def contract_for(backend: Backend) -> type[StoreContract]:
    """A :class:`StoreContract` subclass running the whole suite against ``backend``."""

    class Contract(StoreContract):
        fast_options = backend.fast
        weight = backend.weight

        def make_store(self, **options: Any) -> BaseStore:
            return backend.open(self.scratch_directory(), **options)

    name = f"Test{TITLES.get(backend.name, backend.name.capitalize())}"
    Contract.__name__ = Contract.__qualname__ = name
    return Contract


# One class per descriptor (TestMemory, TestSQLite, ...): adding a backend to DESCRIPTORS adds it here.
for _backend in DESCRIPTORS.values():
    _contract = contract_for(_backend)
    globals()[_contract.__name__] = _contract
