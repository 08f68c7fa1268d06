"""Assertion helpers with failure messages that say what went wrong and where."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping
from typing import Any

from responsestore._checks import describe
from responsestore._lifecycle import ALLOWED
from responsestore._paging import Page
from responsestore._records import ResponseRecord, ResponseStatus
from responsestore._wire import RESPONSE_DEFAULTS

#: The statuses a record may be created in.
_INITIAL = frozenset({ResponseStatus.QUEUED, ResponseStatus.IN_PROGRESS})

#: The fields every ``Response`` body carries (beyond the echoed request parameters), and their JSON types.
_RESPONSE_FIELDS: Mapping[str, tuple[type, ...]] = {
    "id": (str,),
    "object": (str,),
    "created_at": (int,),
    "model": (str,),
    "status": (str,),
    "output": (list,),
    "tools": (list,),
    "metadata": (dict,),
    "background": (bool,),
    "completed_at": (int, type(None)),
    "previous_response_id": (str, type(None)),
    "instructions": (str, list, type(None)),
    "usage": (dict, type(None)),
    "error": (dict, type(None)),
    "incomplete_details": (dict, type(None)),
}


def _status(value: object, position: int) -> ResponseStatus:
    try:
        return ResponseStatus(value)
    except ValueError:
        raise AssertionError(f"step {position} of the path is not a response status: {describe(value)}") from None


def assert_legal_path(path: Iterable[ResponseStatus | str]) -> None:
    """Fail unless ``path`` (statuses in the order a record went through them) is a legal lifecycle.

    A legal path starts ``queued`` or ``in_progress``, may go from ``queued`` to ``in_progress``, and ends at most
    one step later in a terminal status (``completed``, ``failed``, ``cancelled``, ``incomplete``), which is
    final. Repeated statuses are refused: each step must be a change.
    """
    statuses = [_status(value, n) for n, value in enumerate(path)]
    if not statuses:
        raise AssertionError("the path is empty: a record starts queued or in_progress")
    if statuses[0] not in _INITIAL:
        raise AssertionError(f"the path starts {statuses[0].value}: a record starts queued or in_progress")
    for n, (before, after) in enumerate(itertools.pairwise(statuses), start=1):
        if after not in ALLOWED[before]:
            walked = " -> ".join(status.value for status in statuses)
            raise AssertionError(f"illegal step {n}, {before.value} -> {after.value}, in the path {walked}")


def assert_walked_once(pages: Iterable[Page[Any]], expected_ids: Iterable[str]) -> None:
    """Fail unless walking ``pages`` saw every id of ``expected_ids`` exactly once, and nothing else.

    The pages hold records (anything with an ``id``) or items (mappings with an ``"id"``). The message names the
    ids seen twice, the ones missed and the ones that should not be there, and the page each repeat was on.
    """
    expected = list(expected_ids)
    first_page: dict[str, int] = {}
    repeats: list[str] = []
    for number, page in enumerate(pages):
        for entry in page.data:
            id = entry.id if isinstance(entry, ResponseRecord) else entry["id"]
            if id in first_page:
                repeats.append(f"{id} (pages {first_page[id]} and {number})")
            else:
                first_page[id] = number
    wanted = set(expected)
    missed = [id for id in expected if id not in first_page]
    extra = [id for id in first_page if id not in wanted]
    problems = []
    if repeats:
        problems.append(f"seen more than once: {', '.join(repeats)}")
    if missed:
        problems.append(f"never seen: {', '.join(missed)}")
    if extra:
        problems.append(f"not expected: {', '.join(extra)}")
    if problems:
        raise AssertionError(f"the page walk saw {len(first_page)} of {len(wanted)} ids; " + "; ".join(problems))


def assert_valid_response(body: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    """Fail unless ``body`` (a JSON document, or its parse) is a valid Responses API ``Response``; return the parse.

    Checks every field responsestore sends (present, of the right JSON type, timestamps in whole seconds, a known
    status, ``completed_at`` set only once terminal) and, when the ``openai`` package is installed, validates it
    with the SDK's ``Response`` model too.
    """
    if isinstance(body, Mapping):
        data = dict(body)
    else:
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise AssertionError(f"the body is not JSON ({exc}): {describe(body)}") from None
        if not isinstance(data, dict):
            raise AssertionError(f"the body is not a JSON object: {describe(data)}")
    name = describe(data.get("id"))
    missing = [key for key in (*_RESPONSE_FIELDS, *RESPONSE_DEFAULTS) if key not in data]
    if missing:
        raise AssertionError(f"response {name} lacks {', '.join(missing)}")
    for key, types in _RESPONSE_FIELDS.items():
        value = data[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            wanted = " or ".join("null" if kind is type(None) else kind.__name__ for kind in types)
            raise AssertionError(f"response {name}: {key} should be {wanted}, not {describe(value)}")
    if data["object"] != "response":
        raise AssertionError(f"response {name}: object should be 'response', not {describe(data['object'])}")
    try:
        status = ResponseStatus(data["status"])
    except ValueError:
        raise AssertionError(f"response {name}: unknown status {describe(data['status'])}") from None
    if data["completed_at"] is not None and not status.is_terminal:
        raise AssertionError(f"response {name} is {status.value} but has a completed_at")
    for n, item in enumerate(data["output"]):
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise AssertionError(f"response {name}: output[{n}] is not an item with a type: {describe(item)}")
    _check_with_sdk(data, name)
    return data


def _check_with_sdk(data: dict[str, Any], name: str) -> None:
    try:
        from openai.types.responses import Response  # noqa: PLC0415 - optional, and slow to import
    except ImportError:  # pragma: no cover - the test suite installs openai
        return
    import pydantic  # noqa: PLC0415 - the SDK depends on it

    try:
        Response.model_validate(data)
    except pydantic.ValidationError as exc:
        raise AssertionError(f"response {name} is not an openai Response: {exc}") from None
