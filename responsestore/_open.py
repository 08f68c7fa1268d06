"""``open(url)``: choose a backend from a URL, so deployments configure the store with one string."""

from __future__ import annotations

from typing import Any

from ._contract import BaseStore
from ._memory import ResponseStore
from ._sqlite import SQLiteStore
from .errors import InvalidArgument

__all__ = ["open"]

_SUPPORTED = "'memory://' and 'sqlite:///PATH' ('redis://' is planned)"


def open(url: str, **kwargs: Any) -> BaseStore:
    """Open the store ``url`` names; keyword arguments go to the backend's constructor.

    - ``memory://``: a new, empty :class:`~responsestore.ResponseStore` (nothing follows the ``//``).
    - ``sqlite:///PATH``: an :class:`~responsestore.SQLiteStore` on the file ``PATH``: everything after the
      third slash, taken literally (no percent-decoding, no query string). So ``sqlite:///data/r.db`` is the
      relative path ``data/r.db`` and ``sqlite:////var/lib/app/r.db`` (four slashes) the absolute path
      ``/var/lib/app/r.db``, as in SQLAlchemy.

    The scheme is case-insensitive.

    Raises:
        InvalidArgument: ``url`` is not a string, has an unknown scheme, or names no file.
        StorageError: (SQLite) the file cannot be used; see :class:`~responsestore.SQLiteStore`.
    """
    if not isinstance(url, str):
        raise InvalidArgument(f"url must be a string, not {type(url).__name__}")
    scheme, separator, rest = url.partition("://")
    if not separator:
        raise InvalidArgument(f"{url!r} is not a store URL; supported: {_SUPPORTED}")
    scheme = scheme.lower()
    if scheme == "memory":
        if rest:
            raise InvalidArgument(f"a memory URL is exactly 'memory://', not {url!r}")
        return ResponseStore(**kwargs)
    if scheme == "sqlite":
        if not rest.startswith("/"):
            raise InvalidArgument(
                f"a SQLite URL is 'sqlite:///PATH' (three slashes; four for an absolute path), not {url!r}"
            )
        path = rest[1:]
        if not path:
            raise InvalidArgument(f"{url!r} names no file: use 'sqlite:///PATH'")
        return SQLiteStore(path, **kwargs)
    if scheme == "redis":
        raise InvalidArgument(f"the redis backend is planned but not available yet; supported: {_SUPPORTED}")
    raise InvalidArgument(f"unknown store scheme {scheme!r} in {url!r}; supported: {_SUPPORTED}")
