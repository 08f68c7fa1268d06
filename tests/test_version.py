"""The package's public surface: version, ``__all__``, docstrings, and the error hierarchy."""

from __future__ import annotations

import importlib.metadata
import inspect

import pytest

import responsestore
from responsestore import errors

PUBLIC_NAMES = [name for name in responsestore.__all__ if name != "__version__"]


def _error_classes() -> list[type[BaseException]]:
    found = {
        obj
        for module in (responsestore, errors)
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__.startswith("responsestore")
    }
    return sorted(found, key=lambda cls: cls.__name__)


def test_version_is_the_installed_distribution_version() -> None:
    assert responsestore.__version__ == importlib.metadata.version("responsestore")
    assert responsestore.__version__ != "0+unknown"


def test_all_has_no_duplicates_and_lists_the_version() -> None:
    assert len(set(responsestore.__all__)) == len(responsestore.__all__)
    assert "__version__" in responsestore.__all__


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_every_public_name_exists_and_has_a_docstring(name: str) -> None:
    obj = getattr(responsestore, name)
    # ``__doc__`` of a class is its own (not inherited), so a subclass cannot pass on its base's docstring.
    doc = obj.__doc__
    assert isinstance(doc, str), f"{name} has no docstring of its own"
    assert doc.strip()


@pytest.mark.parametrize("name", [name for name in PUBLIC_NAMES if inspect.isclass(getattr(responsestore, name))])
def test_public_methods_of_public_classes_have_docstrings(name: str) -> None:
    cls = getattr(responsestore, name)
    missing = [
        attr
        for attr in vars(cls)
        if not attr.startswith("_") and callable(getattr(cls, attr)) and not inspect.getdoc(getattr(cls, attr))
    ]
    assert missing == [], f"{name} methods without docstrings: {missing}"


def test_errors_module_exports_every_error_class() -> None:
    defined = {cls.__name__ for cls in _error_classes() if cls.__module__ == "responsestore.errors"}
    assert defined <= set(errors.__all__)
    assert set(errors.__all__) <= set(responsestore.__all__)


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda cls: cls.__name__)
def test_every_error_class_is_a_response_store_error(cls: type[BaseException]) -> None:
    assert issubclass(cls, responsestore.ResponseStoreError)
    assert cls.__doc__


def test_errors_also_derive_from_the_builtin_a_caller_expects() -> None:
    assert issubclass(responsestore.ResponseNotFound, LookupError)
    assert issubclass(responsestore.InvalidArgument, ValueError)
    assert issubclass(responsestore.LockError, RuntimeError)
    assert issubclass(responsestore.ResponseStoreError, Exception)
    error = responsestore.ResponseNotFound("resp_x")
    assert error.id == "resp_x"
    assert "resp_x" in str(error)
