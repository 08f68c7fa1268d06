"""HTTP details every transport shares: request ids and CORS (pure: headers in, headers out).

**Request ids.** Every reply carries ``x-request-id``: the request's own ``X-Request-Id`` when it sent a sane one
(1 to 128 characters from ``A-Z a-z 0-9 _ . : -``; a proxy in front may have set it, and keeping it ties the
logs of every hop together), else a fresh ``req_`` id. A sane ``X-Client-Request-Id`` is sent back as
``x-client-request-id``.

**CORS** is off unless the app is given origins. With them, a request from a listed origin (or from any, with
``"*"``) gets ``Access-Control-Allow-Origin`` (and ``Vary: Origin`` unless every origin is allowed) and may read
``x-request-id``; a preflight (``OPTIONS`` with ``Access-Control-Request-Method``) from a listed origin is
answered ``204`` with the path's methods and the headers it asked for; one from another origin is ``403``.
Credentials (cookies) are never allowed: clients authenticate with the ``Authorization`` header, which a
preflight allows like any other header.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence

from responsestore.errors import InvalidArgument

__all__ = ["Cors", "client_request_id", "request_id"]

_SANE_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")
_ORIGIN = re.compile(r"[a-z][a-z0-9+.\-]*://[^/\s?#]+")
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~\-]+")
#: Seconds a browser may cache a preflight's answer.
PREFLIGHT_MAX_AGE = 600


def request_id(sent: str | None) -> str:
    """The request's id: ``sent`` (its ``X-Request-Id``) if sane, else a fresh ``req_`` and 32 hex digits."""
    if sent is not None and _SANE_ID.fullmatch(sent):
        return sent
    return "req_" + uuid.uuid4().hex


def client_request_id(sent: str | None) -> str | None:
    """The ``X-Client-Request-Id`` to send back: ``sent`` if sane, else none."""
    if sent is not None and _SANE_ID.fullmatch(sent):
        return sent
    return None


class Cors:
    """Which origins may call the API from a browser, and the headers that say so. Immutable; thread-safe."""

    def __init__(self, origins: Iterable[str]) -> None:
        """``origins``: ``"*"`` (any origin) or origins as browsers send them (``https://app.example.com:8443``).

        Raises:
            InvalidArgument: an origin is not ``scheme://host[:port]`` (no path, no trailing slash) or ``"*"``.
        """
        if isinstance(origins, str):
            raise InvalidArgument("cors_origins must be a list of origins, not a string")
        listed = []
        for origin in origins:
            if not isinstance(origin, str) or (origin != "*" and _ORIGIN.fullmatch(origin) is None):
                raise InvalidArgument(
                    f"cors origin {origin!r} must be '*' or scheme://host[:port] (lowercase, no path, no trailing /)"
                )
            listed.append(origin)
        self.any = "*" in listed
        self.origins = frozenset(listed) - {"*"}

    def allows(self, origin: str) -> bool:
        """Whether ``origin`` may call the API."""
        return self.any or origin in self.origins

    def headers(self, origin: str | None) -> list[tuple[str, str]]:
        """The CORS headers of a reply to a request from ``origin`` (none for a refused or missing origin)."""
        vary = [] if self.any else [("Vary", "Origin")]
        if origin is None or not self.allows(origin):
            return vary
        allowed = "*" if self.any else origin
        return [("Access-Control-Allow-Origin", allowed), *vary, _EXPOSE]

    def preflight(self, methods: Sequence[str], requested: str | None) -> list[tuple[str, str]]:
        """The headers a ``204`` answer to an allowed preflight adds to :meth:`headers` (check :meth:`allows` first).

        ``requested`` is its ``Access-Control-Request-Headers``; the sane header names in it are allowed.
        """
        names = [name.strip() for name in (requested or "").split(",")]
        allowed_headers = ", ".join(name for name in names if _HEADER_NAME.fullmatch(name))
        headers = [
            ("Access-Control-Allow-Methods", ", ".join(methods)),
            ("Access-Control-Max-Age", str(PREFLIGHT_MAX_AGE)),
        ]
        if allowed_headers:
            headers.append(("Access-Control-Allow-Headers", allowed_headers))
        return headers


_EXPOSE = ("Access-Control-Expose-Headers", "x-request-id, x-client-request-id")
