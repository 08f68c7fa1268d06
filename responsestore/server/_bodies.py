"""Request bodies as HTTP frames them, before any JSON: which bodies a server reads, and how much of them.

Transport-free: a transport hands over the request's ``Content-Type``, ``Content-Length`` and
``Transfer-Encoding`` headers and whether its server can give it a body of undeclared length that ends where the
request's does (WSGI's ``wsgi.input_terminated``); it reads what :func:`body_length` says, through
:func:`read_body`, and decodes it with :func:`~responsestore.server._requests.decode_body`. The rules:

- a request with both ``Content-Length`` and ``Transfer-Encoding`` is ``400`` (two framings that may disagree are
  how requests are smuggled past a proxy), checked on every request by :func:`check_framing`;
- ``Content-Length`` is ASCII digits (:func:`~responsestore.server._query.decimal`), else ``400``;
- a body is JSON: a ``Content-Type`` other than ``application/json`` (parameters allowed, a ``charset`` only if it
  is ``utf-8``) is ``415``; a body without a ``Content-Type`` is read as JSON, as a client that sends none means;
- a declared length over the limit is ``413`` before a byte is read; a chunked body is read in pieces and
  refused ``413`` as soon as it passes the limit, the rest left unread;
- a chunked body the server cannot hand over (``Transfer-Encoding`` without ``wsgi.input_terminated``) is
  ``411``: the client must send a ``Content-Length``.
"""

from __future__ import annotations

from typing import Protocol

from responsestore._checks import describe

from ._errors import ApiError, too_large
from ._query import decimal

__all__ = ["PIECE", "Readable", "body_length", "check_content_type", "check_framing", "read_body"]

#: How much of a body of undeclared length is read at a time.
PIECE = 64 * 1024


class Readable(Protocol):
    """A request body stream (WSGI's ``wsgi.input``)."""

    def read(self, size: int, /) -> bytes:
        """At most ``size`` bytes; ``b""`` at the end."""


def check_framing(content_length: str | None, transfer_encoding: str | None) -> None:
    """Refuse a request framed two ways.

    Raises:
        ApiError: ``400`` ``invalid_request``: both ``Content-Length`` and ``Transfer-Encoding`` are present.
    """
    if content_length is not None and transfer_encoding is not None:
        raise ApiError(
            400,
            "The request has both Content-Length and Transfer-Encoding; send one of them.",
            code="invalid_request",
        )


def check_content_type(content_type: str | None) -> None:
    """Refuse a body that says it is not UTF-8 JSON (a missing ``Content-Type`` is taken as JSON).

    Raises:
        ApiError: ``415`` ``unsupported_media_type``.
    """
    if not content_type:
        return
    media_type, *parameters = content_type.split(";")
    charset = "utf-8"
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    if media_type.strip().lower() != "application/json" or charset not in ("utf-8", "utf8"):
        raise ApiError(
            415,
            f"The request body must be JSON sent as 'application/json' (UTF-8), not {describe(content_type)}.",
            code="unsupported_media_type",
        )


def body_length(
    content_length: str | None, transfer_encoding: str | None, *, terminated: bool, limit: int
) -> int | None:
    """How many bytes of body to read: the declared length, or ``None`` to read to the end (at most ``limit`` + 1).

    ``content_length`` and ``transfer_encoding`` are the headers (``None`` when absent); ``terminated`` says the
    body stream ends where the request's body does. Call :func:`check_framing` first.

    Raises:
        ApiError: ``400`` for a malformed ``Content-Length``, ``413`` for one over ``limit``, ``411`` for a chunked
            body the server cannot hand over.
    """
    if content_length is not None:
        length = decimal(content_length)
        if length is None:
            raise ApiError(
                400, f"Content-Length must be ASCII digits, not {describe(content_length)}.", code="invalid_request"
            )
        if length > limit:
            raise too_large(limit, length)
        return length
    if terminated:
        return None
    if transfer_encoding is not None:
        raise ApiError(411, "Send the request body with a Content-Length.", code="length_required")
    return 0


def read_body(stream: Readable, length: int | None, limit: int) -> bytes:
    """Read ``length`` bytes, or (``None``) the whole body in pieces, stopping once it passes ``limit`` bytes.

    Raises:
        ApiError: ``413`` when a body of undeclared length passes ``limit``; ``400`` when the body ends before its
            declared length.
    """
    pieces: list[bytes] = []
    size = 0
    wanted = limit + 1 if length is None else length
    while size < wanted:
        piece = stream.read(min(PIECE, wanted - size))
        if not piece:
            break
        pieces.append(piece)
        size += len(piece)
    if length is None and size > limit:
        raise too_large(limit)
    if length is not None and size < length:
        raise ApiError(400, f"The request body ended after {size} of its {length} bytes.", code="invalid_request")
    return b"".join(pieces)
