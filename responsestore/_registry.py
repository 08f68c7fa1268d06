"""``open(url)``: a URL scheme names a backend, so deployments configure the store with one string.

Each scheme maps to ``"module:Class"``, imported only when a URL of that scheme is opened (so a backend whose
extra is not installed costs nothing until it is used). The class's ``from_url(url, **kwargs)`` parses the rest
of the URL. Schemes come from three places, looked up in this order:

1. :func:`register_backend` calls made in this process (they may replace a built-in scheme: a test or an
   application choosing its own class);
2. the built-in schemes, one line each in ``_BUILT_IN`` below;
3. installed distributions declaring an entry point in the group :data:`ENTRY_POINT_GROUP`
   (``responsestore.backends``): the entry point's name is the scheme, its value ``"module:Class"``. They are
   read when a URL's scheme is not found in 1 or 2, each time (so a package installed while the process runs is
   found), and never replace a built-in scheme. Two distributions declaring the same scheme is an error naming
   both, rather than a silent choice.

A scheme follows RFC 3986: a letter, then letters, digits, ``+``, ``-`` or ``.`` (``postgresql+psycopg``), matched
without regard to case.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import threading
from typing import TYPE_CHECKING, Any

from .errors import InvalidArgument

if TYPE_CHECKING:
    from ._contract import BaseStore

__all__ = ["ENTRY_POINT_GROUP", "backend_schemes", "open", "register_backend"]

#: The entry-point group through which an installed package registers URL schemes for :func:`open`.
ENTRY_POINT_GROUP = "responsestore.backends"

_BUILT_IN: dict[str, str] = {
    "memory": "responsestore._memory:ResponseStore",
    "sqlite": "responsestore._sqlite:SQLiteStore",
    "redis": "responsestore._redis:RedisStore",
    "rediss": "responsestore._redis:RedisStore",
    "postgresql": "responsestore._postgres:PostgresStore",
    "postgresql+psycopg": "responsestore._postgres:PostgresStore",
    "postgres": "responsestore._postgres:PostgresStore",
}
#: How each built-in scheme's URLs look, for error messages.
_USAGE = {
    "memory": "memory://",
    "sqlite": "sqlite:///PATH",
    "redis": "redis://[:PASSWORD@]HOST:PORT/DB?prefix=NAME",
    "rediss": "rediss://[:PASSWORD@]HOST:PORT/DB?prefix=NAME",
    "postgresql": "postgresql://USER:PASSWORD@HOST:PORT/DB?schema=NAME",
    "postgresql+psycopg": "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB?schema=NAME",
    "postgres": "postgres://USER:PASSWORD@HOST:PORT/DB?schema=NAME",
}
#: What the optional extra of a built-in backend is called, for the error when it is not installed.
_EXTRAS = {
    "responsestore._redis": "redis",
    "responsestore._postgres": "postgres",
}
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]{0,63}\Z")
_TARGET = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*\Z")
_registered: dict[str, str] = {}
_mutex = threading.Lock()


def _check_scheme(scheme: object) -> str:
    if not isinstance(scheme, str) or not scheme.isascii() or _SCHEME.match(scheme) is None:
        raise InvalidArgument(
            "a backend scheme is a lowercase letter followed by letters, digits, '+', '-' or '.' "
            f"(at most 64), not {str(scheme)[:60]!r}"
        )
    return scheme


def _check_target(target: object, what: str) -> str:
    if not isinstance(target, str) or _TARGET.match(target) is None:
        raise InvalidArgument(f"{what} is 'package.module:Class', not {str(target)[:100]!r}")
    return target


def register_backend(scheme: str, target: str) -> None:
    """Make ``open("SCHEME://...")`` open the backend class ``target`` (``"package.module:Class"``).

    The class must subclass :class:`~responsestore.BaseStore` and implement ``from_url``; it is imported on the
    first ``open`` of its scheme. Registering a scheme again replaces it, and a registration made here wins over a
    built-in scheme and over an installed package's entry point. To make a scheme available to every program that
    installs your package, declare an entry point instead (see :data:`ENTRY_POINT_GROUP`).

    Raises:
        InvalidArgument: ``scheme`` is not a lowercase URL scheme (a letter, then letters, digits, ``+``, ``-``,
            ``.``) or ``target`` is not ``"module:Class"``.
    """
    _check_scheme(scheme)
    _check_target(target, "a backend target")
    with _mutex:
        _registered[scheme] = target


def _declared() -> dict[str, list[tuple[str, str]]]:
    """Every scheme installed distributions declare: scheme -> [(target, distribution name)]."""
    found: dict[str, list[tuple[str, str]]] = {}
    # Each distribution's own entry points: importlib.metadata.entry_points() keeps one per name, hiding a clash.
    for distribution in importlib.metadata.distributions():
        for entry in distribution.entry_points:
            scheme = entry.name.lower()
            if entry.group != ENTRY_POINT_GROUP or _SCHEME.match(scheme) is None or scheme in _BUILT_IN:
                continue
            pairs = found.setdefault(scheme, [])
            named = (entry.value, str(distribution.name))
            if named not in pairs:
                pairs.append(named)
    return found


def backend_schemes() -> dict[str, str]:
    """Every scheme :func:`open` knows now, each with its ``"module:Class"``, sorted by scheme.

    The built-in schemes, those of installed packages' entry points (a scheme two packages declare is left
    out: opening it names both) and those registered in this process, with the same precedence as :func:`open`.
    """
    with _mutex:
        schemes = {**_BUILT_IN, **_registered}
    for scheme, declared in _declared().items():
        if len(declared) == 1:
            schemes.setdefault(scheme, declared[0][0])
    return dict(sorted(schemes.items()))


def _supported() -> str:
    return ", ".join(f"'{_USAGE.get(scheme, scheme + '://...')}'" for scheme in backend_schemes())


def _target_of(scheme: str, url: str) -> str:
    with _mutex:
        target = _registered.get(scheme) or _BUILT_IN.get(scheme)
    if target is not None:
        return target
    declared = _declared().get(scheme, [])
    if len(declared) > 1:
        named = "; ".join(f"{value} from {distribution}" for value, distribution in declared)
        raise InvalidArgument(
            f"store scheme {scheme!r} is declared by more than one installed package ({named}); "
            "uninstall one, or choose with responsestore.register_backend()"
        )
    if not declared:
        raise InvalidArgument(f"unknown store scheme {scheme[:40]!r} in {url[:200]!r}; supported: {_supported()}")
    value, distribution = declared[0]
    return _check_target(value, f"the {ENTRY_POINT_GROUP} entry point {scheme!r} of {distribution}")


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
    - ``postgresql://USER:PASSWORD@HOST:PORT/DB?schema=NAME`` (also ``postgresql+psycopg://`` and
      ``postgres://``): a :class:`~responsestore.PostgresStore` (needs the ``postgres`` extra).
    - any scheme registered with :func:`register_backend` or declared by an installed package in the entry-point
      group :data:`ENTRY_POINT_GROUP`.

    The scheme is case-insensitive. Every store is a context manager: ``with responsestore.open(url) as store:``
    closes it at the end.

    Raises:
        InvalidArgument: ``url`` is not a string, has an unknown scheme (the message lists the known ones), its
            backend cannot be imported (the message names the extra to install), or it is malformed for its
            backend.
        StorageError: the backend cannot use what the URL names (see the backend's class).
    """
    if not isinstance(url, str):
        raise InvalidArgument(f"url must be a string, not {type(url).__name__}")
    scheme, separator, _ = url.partition("://")
    if not separator:
        raise InvalidArgument(f"{url[:200]!r} is not a store URL; supported: {_supported()}")
    scheme = scheme.lower()
    target = _target_of(scheme, url)
    module_name, _, class_name = target.partition(":")
    try:
        backend = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        extra = _EXTRAS.get(module_name)
        hint = f" (pip install 'responsestore[{extra}]')" if extra is not None else ""
        raise InvalidArgument(f"the backend of {scheme}:// ({target}) cannot be loaded{hint}: {exc}") from exc
    from_url = getattr(backend, "from_url", None)
    if not isinstance(backend, type) or from_url is None:
        raise InvalidArgument(f"the backend of {scheme}:// ({target}) is not a store class with from_url")
    store: BaseStore = from_url(url, **kwargs)
    return store
