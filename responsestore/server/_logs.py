"""Logging with the request id: every record the server logs about a request names it.

A transport sets :data:`REQUEST_ID` while it serves a request (:func:`serving`); a :class:`RequestLogger` puts it
in each record twice: at the front of the message (``request req_...: ...``, so any formatter shows it) and as
the record's ``request_id`` attribute (``None`` outside a request), for structured logging. Work that outlives
the request (a run, a stream's body) takes a logger bound to the id at the start (``RequestLogger(name, id)``).

Nothing here logs a secret: the server never logs a request's headers or body, and an ``authenticate`` callable
that fails is logged by its exception's type only (its message could hold the key).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, MutableMapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

__all__ = ["REQUEST_ID", "RequestLogger", "serving"]

#: The id of the request the current thread is serving (``None``: none).
REQUEST_ID: ContextVar[str | None] = ContextVar("responsestore_request_id", default=None)

if TYPE_CHECKING:
    _Adapter = logging.LoggerAdapter[logging.Logger]
else:
    _Adapter = logging.LoggerAdapter


class RequestLogger(_Adapter):
    """The logger ``name``, its records carrying ``request_id``: the one given, else the request being served."""

    def __init__(self, logger: logging.Logger | str, request_id: str | None = None) -> None:
        super().__init__(logging.getLogger(logger) if isinstance(logger, str) else logger, {})
        self.request_id = request_id

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        """Prefix the message with the request id and set the record's ``request_id``."""
        request_id = self.request_id if self.request_id is not None else REQUEST_ID.get()
        kwargs["extra"] = {**(kwargs.get("extra") or {}), "request_id": request_id}
        if request_id is not None:
            msg = f"request {request_id}: {msg}"
        return msg, kwargs

    def bound(self) -> RequestLogger:
        """A logger bound to the request being served now (for work that goes on after the request)."""
        return RequestLogger(self.logger, self.request_id if self.request_id is not None else REQUEST_ID.get())


@contextlib.contextmanager
def serving(request_id: str) -> Iterator[None]:
    """Within the block, the current thread serves the request ``request_id``."""
    token = REQUEST_ID.set(request_id)
    try:
        yield
    finally:
        REQUEST_ID.reset(token)
