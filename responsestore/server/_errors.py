"""``ApiError``: a refusal in OpenAI's error shape, raised by the core and rendered by every transport.

A transport catches :class:`ApiError` and sends ``status`` with :meth:`ApiError.body`
(``{"error": {"message", "type", "param", "code"}}``); :func:`store_error` says which refusal a store error is.

Every refusal is small and always encodable, whatever the request held: the message is cut to
:data:`MAX_MESSAGE` characters and ``param`` to :data:`MAX_PARAM`, and a lone surrogate in either (a key of a
request body can hold one) becomes U+FFFD, so rendering an error can never fail.
"""

from __future__ import annotations

import re
from typing import Any

from responsestore.errors import (
    ChainError,
    ConversationFull,
    ConversationNotFound,
    InvalidArgument,
    InvalidTransition,
    ItemNotFound,
    ResponseExists,
    ResponseNotFound,
    ResponseStoreError,
    StoreFull,
    VersionConflict,
)

from ._logs import RequestLogger

__all__ = ["MAX_MESSAGE", "MAX_PARAM", "REASONS", "ApiError", "store_error", "too_large"]

#: The longest error message sent (longer ones are cut, ending with ``…``).
MAX_MESSAGE = 1_000
#: The longest ``param`` sent (the path to a value nested 64 levels deep can be longer).
MAX_PARAM = 256

_log = RequestLogger("responsestore.server")

#: The reason phrase of every status the server sends.
REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}

# OpenAI's error types by status; every other refusal is an ``invalid_request_error``.
_TYPES = {401: "authentication_error", 500: "server_error", 503: "server_error"}
_SURROGATE = re.compile("[\ud800-\udfff]")


def _bounded(text: str, limit: int) -> str:
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return _SURROGATE.sub("\ufffd", text)


class ApiError(Exception):
    """A request the server refuses: the HTTP ``status`` and OpenAI's ``message``, ``param`` and ``code``.

    ``allow`` is the ``Allow`` header of a ``405`` (the methods the path serves); ``retry_after`` the
    ``Retry-After`` header (seconds) of a refusal that may succeed later. ``message`` and ``param`` are kept
    bounded and encodable (see the module's docstring).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        allow: str = "",
        retry_after: int | None = None,
    ) -> None:
        message = _bounded(message, MAX_MESSAGE)
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = None if param is None else _bounded(param, MAX_PARAM)
        self.code = code
        self.allow = allow
        self.retry_after = retry_after

    @property
    def type(self) -> str:
        """OpenAI's error ``type``: ``authentication_error``, ``server_error`` or ``invalid_request_error``."""
        return _TYPES.get(self.status, "invalid_request_error")

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        """The JSON body: ``{"error": {"message", "type", "param", "code"}}``.

        The message of a ``500`` ends with the ``request_id``, as OpenAI's do: it is what a user reports.
        """
        message = self.message
        if self.status == 500 and request_id is not None:
            message = f"{message.removesuffix('.')} (request id {request_id})."
        return {"error": {"message": message, "type": self.type, "param": self.param, "code": self.code}}


def too_large(limit: int, length: int | None = None) -> ApiError:
    """The ``413`` of a body over ``limit`` bytes.

    ``length`` is its declared size; ``None`` when it was not declared (a chunked body, refused once it passed
    the limit).
    """
    size = f"is {length} bytes" if length is not None else f"is more than {limit} bytes"
    return ApiError(413, f"The request body {size}; at most {limit} are accepted.", code="request_too_large")


def store_error(exc: ResponseStoreError, param: str | None = None) -> ApiError:  # noqa: PLR0911 - one per error
    """The refusal a store error means (``param`` names the request field it concerns, if any).

    Errors that say nothing the client can act on (a failing backend) become a ``500`` with a generic message;
    those and a full store are logged (to ``responsestore.server``, with the request id).
    """
    if isinstance(exc, (ConversationNotFound, ItemNotFound, ConversationFull)):
        return _conversation_error(exc, param)
    if isinstance(exc, ResponseNotFound):
        return ApiError(404, f"No response found with id {exc.id!r}.", param=param, code="not_found")
    if isinstance(exc, (InvalidTransition, VersionConflict, ResponseExists)):
        return ApiError(409, str(exc), param=param, code="conflict")
    if isinstance(exc, ChainError):
        return ApiError(400, str(exc), param="previous_response_id", code="invalid_previous_response")
    if isinstance(exc, StoreFull):
        _log.warning("the store is full: %s", exc)
        return ApiError(503, str(exc), code="store_full")
    if isinstance(exc, InvalidArgument):
        return ApiError(400, str(exc), param=param, code="invalid_value")
    _log.error("the store failed: %s", type(exc).__name__, exc_info=exc)
    return ApiError(500, "The store failed to handle the request.", code="server_error")


def _conversation_error(exc: ConversationNotFound | ItemNotFound | ConversationFull, param: str | None) -> ApiError:
    if isinstance(exc, ConversationNotFound):
        return ApiError(404, f"Conversation with id {exc.id!r} not found.", param=param, code="not_found")
    if isinstance(exc, ItemNotFound):
        return ApiError(404, f"Item with id {exc.item_id!r} not found.", code="not_found")
    if exc.bound == "max_records":
        _log.warning("the store is full: %s", exc)
        return ApiError(503, str(exc), code="store_full")
    return ApiError(400, str(exc), param="items", code="conversation_full")
