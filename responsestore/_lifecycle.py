"""The Responses lifecycle: which status changes are allowed, and what each operation does to a record.

::

    queued ──► in_progress
      │             │
      └──────┬──────┘
             ▼
    completed | failed | cancelled | incomplete     (terminal: final)

These functions are pure: they take a record (and the time) and return the record that replaces it, with
``version`` one higher, or raise. Every backend applies them inside its own write transaction, so the rules
live here once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ._checks import check_int, check_text, describe
from ._items import normalize_items
from ._records import (
    ResponseRecord,
    ResponseStatus,
    check_error,
    check_extra,
    check_incomplete_details,
    check_instructions,
    check_metadata,
    check_tools,
    check_usage,
    replace_fields,
    to_status,
)
from .errors import InvalidArgument, InvalidTransition, VersionConflict

__all__ = [
    "ALLOWED",
    "UPDATABLE_FIELDS",
    "cancel",
    "check_transition",
    "check_version",
    "complete",
    "fail",
    "lease_expired",
    "mark_incomplete",
    "prepare_update",
    "renew",
    "start",
    "update",
]

S = ResponseStatus

#: Every allowed status change. Terminal statuses have no way out.
ALLOWED: Mapping[ResponseStatus, frozenset[ResponseStatus]] = {
    S.QUEUED: frozenset({S.IN_PROGRESS, S.COMPLETED, S.FAILED, S.CANCELLED, S.INCOMPLETE}),
    S.IN_PROGRESS: frozenset({S.COMPLETED, S.FAILED, S.CANCELLED, S.INCOMPLETE}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
    S.INCOMPLETE: frozenset(),
}

#: Fields ``update`` may change. ``id``, ``created_at``, ``owner``, ``version``, ``input`` and
#: ``previous_response_id`` are fixed at creation; ``completed_at`` follows ``status``.
UPDATABLE_FIELDS = frozenset(
    {
        "status",
        "model",
        "output",
        "instructions",
        "tools",
        "metadata",
        "usage",
        "error",
        "incomplete_details",
        "extra",
    }
)


def check_version(record: ResponseRecord, expected_version: int | None) -> None:
    """Raise :class:`VersionConflict` unless ``expected_version`` is ``None`` or the record's version."""
    if expected_version is not None and expected_version != record.version:
        raise VersionConflict(record.id, expected_version, record.version)


def check_expected_version(value: object) -> int | None:
    """Validate an ``expected_version`` argument (``None`` or an int >= 1)."""
    return check_int(value, "expected_version", minimum=1, optional=True)


def check_transition(record: ResponseRecord, target: ResponseStatus) -> None:
    """Raise :class:`InvalidTransition` unless ``record`` may move to ``target``."""
    if target not in ALLOWED[record.status]:
        reason = "it is already final" if record.is_terminal else None
        raise InvalidTransition(record.id, record.status.value, target.value, reason)


def _advance(record: ResponseRecord, target: ResponseStatus, now: float, **changes: Any) -> ResponseRecord:
    check_transition(record, target)
    if target is S.COMPLETED:
        changes["completed_at"] = now
    if target.is_terminal:  # a finished response is run by nobody: its lease ends with it
        changes["lease_holder"] = changes["lease_expires_at"] = None
    return replace_fields(record, status=target, version=record.version + 1, **changes)


def renew(record: ResponseRecord, now: float, seconds: float, holder: str | None) -> ResponseRecord:
    """Extend the lease of a queued or in-progress response to ``seconds`` from ``now``, held by ``holder``.

    Raises:
        InvalidTransition: the response has finished (a final response holds no lease).
    """
    if record.is_terminal:
        raise InvalidTransition(record.id, record.status.value, record.status.value, "a final response holds no lease")
    return replace_fields(record, version=record.version + 1, lease_holder=holder, lease_expires_at=now + seconds)


def lease_expired(record: ResponseRecord, now: float) -> bool:
    """Whether ``record`` is queued or in progress and its lease ran out at or before ``now``."""
    expires = record.lease_expires_at
    return expires is not None and expires <= now and not record.is_terminal


def start(record: ResponseRecord, now: float) -> ResponseRecord:
    """``queued`` → ``in_progress``."""
    return _advance(record, S.IN_PROGRESS, now)


def complete(record: ResponseRecord, now: float, output: tuple[Any, ...], usage: Any) -> ResponseRecord:
    """Enter ``completed`` with the final ``output`` and ``usage``; sets ``completed_at``."""
    return _advance(record, S.COMPLETED, now, output=output, usage=usage)


def fail(record: ResponseRecord, now: float, error: Any) -> ResponseRecord:
    """Enter ``failed`` with ``error``."""
    return _advance(record, S.FAILED, now, error=error)


def mark_incomplete(
    record: ResponseRecord, now: float, details: Any, output: tuple[Any, ...], usage: Any
) -> ResponseRecord:
    """Enter ``incomplete`` with the reason, and whatever partial output and usage there is."""
    return _advance(record, S.INCOMPLETE, now, incomplete_details=details, output=output, usage=usage)


def cancel(record: ResponseRecord, now: float) -> ResponseRecord:
    """Cancel a background response, following OpenAI's rules.

    Only a ``background`` response can be cancelled. Cancelling an already cancelled response returns it
    unchanged (same version); cancelling one in another terminal status raises :class:`InvalidTransition`.
    """
    if not record.background:
        raise InvalidTransition(
            record.id,
            record.status.value,
            S.CANCELLED.value,
            "only background responses can be cancelled",
        )
    if record.status is S.CANCELLED:
        return record
    return _advance(record, S.CANCELLED, now)


def _check_status(value: Any) -> ResponseStatus:
    return to_status(value)


def _check_model(value: Any) -> str:
    return check_text(value, "model")


#: How ``update`` validates and freezes each field it can change.
_UPDATE_CHECKS: Mapping[str, Callable[[Any], Any]] = {
    "status": _check_status,
    "model": _check_model,
    "output": lambda value: normalize_items(value, "output"),
    "instructions": check_instructions,
    "tools": check_tools,
    "metadata": check_metadata,
    "usage": check_usage,
    "error": check_error,
    "incomplete_details": check_incomplete_details,
    "extra": check_extra,
}


def prepare_update(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and freeze ``update``'s keyword changes, before any lock is taken.

    Raises:
        InvalidArgument: no change was given, a field cannot be updated, or a value is invalid.
    """
    if not changes:
        raise InvalidArgument("update needs at least one field to change")
    unknown = sorted(set(changes) - UPDATABLE_FIELDS)
    if unknown:
        named = ", ".join(describe(name, 40) for name in unknown[:5]) + (", …" if len(unknown) > 5 else "")
        raise InvalidArgument(f"update cannot change {named}; it can change {sorted(UPDATABLE_FIELDS)}")
    prepared = dict(changes)
    for name, check in _UPDATE_CHECKS.items():
        if name in prepared:
            prepared[name] = check(prepared[name])
    # Every value is now validated and frozen: the record is built from them without running converters again.
    return prepared


def update(record: ResponseRecord, now: float, changes: Mapping[str, Any]) -> ResponseRecord:
    """Apply prepared ``changes``; every successful update adds one to ``version``.

    A ``status`` change follows the transition table (entering ``completed`` sets ``completed_at``). Once a
    response is terminal only its ``metadata`` may change.

    Naming only the status the response already has changes nothing: the record is returned as it is (same
    version, so the store appends no event and wakes no waiter), like cancelling a cancelled response. A worker
    that retries ``update(id, status="in_progress", event=...)`` after a lost reply thus neither fails nor
    logs the event twice.
    """
    changes = dict(changes)
    target = changes.pop("status", record.status)
    if not changes and target is record.status:
        return record
    if record.is_terminal:
        fixed = sorted(set(changes) - {"metadata"})
        if target is not record.status or fixed:
            raise InvalidTransition(
                record.id,
                record.status.value,
                target.value,
                f"it is final; only metadata can change, not {fixed or ['status']}",
            )
        return replace_fields(record, version=record.version + 1, **changes)
    if target is not record.status:
        return _advance(record, target, now, **changes)
    return replace_fields(record, version=record.version + 1, **changes)
