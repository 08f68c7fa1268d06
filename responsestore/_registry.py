"""``open(url)``: a URL scheme names a backend, so deployments configure the store with one string.

Each scheme maps to ``"module:Class"``, imported only when a URL of that scheme is opened (so a backend whose
extra is not installed costs nothing until it is used). The class's ``from_url(url, **kwargs)`` parses the rest
of the URL. Adding a backend is one line here, or one call to :func:`register_backend` from outside.
"""

from __future__ import annotations

import importlib
import threading
from typing import TYPE_CHECKING, Any

from .errors import InvalidArgument

if TYPE_CHECKING:
    from ._contract import BaseStore

__all__ = ["open", "register_backend"]

_SCHEMES: dict[str, str] = {
    "memory": "responsestore._memory:ResponseStore",
    "sqlite": "responsestore._sqlite:SQLiteStore",
    "redis": "responsestore._redis:RedisStore",
    "rediss": "responsestore._redis:RedisStore",
}
#: How each built-in scheme's URLs look, for error messages.
_USAGE = {
    "memory": "memory://",
    "sqlite": "sqlite:///PATH",
    "redis": "redis://[:PASSWORD@]HOST:PORT/DB?prefix=NAME",
    "rediss": "rediss://[:PASSWORD@]HOST:PORT/DB?prefix=NAME",
}
_mutex = threading.Lock()


def _supported() -> str:
    with _mutex:
        return ", ".join(f"'{_USAGE.get(scheme, scheme + '://...')}'" for scheme in sorted(_SCHEMES))


def register_backend(scheme: str, target: str) -> None:
    """Make ``open("SCHEME://...")`` open the backend class ``target`` (``"package.module:Class"``).

    The class must subclass :class:`~responsestore.BaseStore` and implement ``from_url``; it is imported on the
    first ``open`` of its scheme. Registering a scheme again replaces it.

    Raises:
        InvalidArgument: ``scheme`` is not a lowercase URL scheme or ``target`` is not ``"module:Class"``.
    """
    if not isinstance(scheme, str) or not scheme.isascii() or not scheme.isalnum() or scheme != scheme.lower():
        raise InvalidArgument(f"a backend scheme is lowercase letters and digits, not {str(scheme)[:60]!r}")
    module, colon, name = target.partition(":") if isinstance(target, str) else ("", "", "")
    if not (module and colon and name):
        raise InvalidArgument(f"a backend target is 'package.module:Class', not {str(target)[:100]!r}")
    with _mutex:
        _SCHEMES[scheme] = target


def open(url: str, **kwargs: Any) -> BaseStore:
    """Open the store ``url`` names; keyword arguments go to the backend's constructor.

    - ``memory://``: a new, empty :class:`~responsestore.ResponseStore` (nothing follows the ``//``).
    - ``sqlite:///PATH?NAME=VALUE&...``: an :class:`~responsestore.SQLiteStore` on the file ``PATH``: everything
      after the third slash up to the first ``?``, taken literally (no percent-decoding). So ``sqlite:///data/r.db``
      is the relative path ``data/r.db`` and ``sqlite:////var/lib/app/r.db`` (four slashes) the absolute path
      ``/var/lib/app/r.db``, as in SQLAlchemy. The optional query string sets ``max_bytes``, ``max_records``,
      ``ttl``, ``synchronous`` and ``busy_timeout`` (the Backends page lists them).
    - ``redis://[[USER]:PASSWORD@]HOST:PORT/DB?prefix=NAME`` (``rediss://`` for TLS): a
      :class:`~responsestore.RedisStore` (needs the ``redis`` extra); see :meth:`RedisStore.from_url
      <responsestore.RedisStore.from_url>`.

    The scheme is case-insensitive. Every store is a context manager: ``with responsestore.open(url) as store:``
    closes it at the end.

    Raises:
        InvalidArgument: ``url`` is not a string, has an unknown scheme, or is malformed for its backend.
        StorageError: the backend cannot use what the URL names (see the backend's class).
    """
    if not isinstance(url, str):
        raise InvalidArgument(f"url must be a string, not {type(url).__name__}")
    scheme, separator, _ = url.partition("://")
    if not separator:
        raise InvalidArgument(f"{url[:200]!r} is not a store URL; supported: {_supported()}")
    with _mutex:
        target = _SCHEMES.get(scheme.lower())
    if target is None:
        raise InvalidArgument(f"unknown store scheme {scheme[:40]!r} in {url[:200]!r}; supported: {_supported()}")
    module_name, _, class_name = target.partition(":")
    try:
        backend = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise InvalidArgument(f"the backend of {scheme.lower()}:// ({target}) cannot be loaded: {exc}") from exc
    store: BaseStore = backend.from_url(url, **kwargs)
    return store
