"""The routes of the API: one table from (path, method) to an operation name, shared by every transport.

A path no route matches is ``404``. A path a route matches with a method it does not serve is ``405`` with
``Allow``, except ``POST /v1/responses/{x}``: that is how a client calls an endpoint this server does not have
(``/v1/responses/some_new_endpoint``), so it is ``404`` like any unknown path.

``HEAD`` is served wherever ``GET`` is, by the same operation (the transport sends its headers without the body),
and ``OPTIONS`` everywhere a route matches (the transport answers it: see ``Route.allow``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs

from responsestore._checks import describe

from ._errors import ApiError

__all__ = ["ROUTES", "Route", "find", "match", "unknown_path"]


@attrs.frozen
class Route:
    """A path pattern (its groups are the operation's arguments) and the operation of each method it serves."""

    pattern: re.Pattern[str]
    operations: Mapping[str, str]
    #: Methods that make this path an unknown endpoint (``404``) rather than a wrong method (``405``).
    unknown_for: frozenset[str] = frozenset()

    @property
    def allow(self) -> str:
        """The ``Allow`` header: the methods the path serves, ``HEAD`` with ``GET``, and ``OPTIONS``."""
        methods = [*self.operations]
        if "GET" in self.operations:
            methods.insert(methods.index("GET") + 1, "HEAD")
        return ", ".join([*methods, "OPTIONS"])


ROUTES = (
    Route(re.compile(r"/v1/responses"), {"POST": "create"}),
    Route(re.compile(r"/v1/responses/compact"), {"POST": "compact"}),
    Route(re.compile(r"/v1/responses/input_tokens"), {"POST": "input_tokens"}),
    Route(re.compile(r"/v1/responses/([^/]+)"), {"GET": "retrieve", "DELETE": "delete"}, frozenset({"POST"})),
    Route(re.compile(r"/v1/responses/([^/]+)/cancel"), {"POST": "cancel"}),
    Route(re.compile(r"/v1/responses/([^/]+)/input_items"), {"GET": "input_items"}),
    Route(re.compile(r"/v1/conversations"), {"POST": "create_conversation"}),
    Route(
        re.compile(r"/v1/conversations/([^/]+)"),
        {"GET": "retrieve_conversation", "POST": "update_conversation", "DELETE": "delete_conversation"},
    ),
    Route(
        re.compile(r"/v1/conversations/([^/]+)/items"),
        {"GET": "list_conversation_items", "POST": "create_conversation_items"},
    ),
    Route(
        re.compile(r"/v1/conversations/([^/]+)/items/([^/]+)"),
        {"GET": "retrieve_conversation_item", "DELETE": "delete_conversation_item"},
    ),
    Route(re.compile(r"/v1/models"), {"GET": "list_models"}),
    Route(re.compile(r"/v1/models/(.+)"), {"GET": "retrieve_model"}),
)


def find(path: str) -> tuple[Route, tuple[str, ...]] | None:
    """The first route matching ``path`` and its arguments, or ``None``."""
    for route in ROUTES:
        found = route.pattern.fullmatch(path)
        if found is not None:
            return route, found.groups()
    return None


def match(method: str, path: str) -> tuple[str, tuple[str, ...]]:
    """The operation serving ``method`` on ``path``, and its arguments (the ids in the path).

    ``HEAD`` is ``GET`` (refusals included, so that its headers are exactly those of the ``GET``).

    Raises:
        ApiError: ``404`` ``not_found`` for an unknown path, ``405`` ``method_not_allowed`` (with ``allow``).
    """
    method = "GET" if method == "HEAD" else method
    found = find(path)
    if found is None:
        raise unknown_path(method, path)
    route, args = found
    operation = route.operations.get(method)
    if operation is None:
        if method in route.unknown_for:
            raise unknown_path(method, path)
        raise ApiError(
            405, f"{method} is not allowed on {describe(path)}.", code="method_not_allowed", allow=route.allow
        )
    return operation, args


def unknown_path(method: str, path: str) -> ApiError:
    """The ``404`` of a request no route serves."""
    return ApiError(404, f"No route for {method} {describe(path)}.", code="not_found")
