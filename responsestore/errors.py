"""The errors responsestore raises.

Every refusal is a :class:`ResponseStoreError`, so ``except ResponseStoreError`` catches all of them. Each
subclass also derives from the built-in exception a caller would expect (``LookupError`` for a missing response,
``ValueError`` for a bad argument), so code that does not know this library still handles them sensibly.

A refused call changes nothing: the store is exactly as it was before the call.
"""

from __future__ import annotations

from ._checks import describe

__all__ = [
    "ChainError",
    "ConversationFull",
    "ConversationNotFound",
    "EventLogClosed",
    "EventLogFull",
    "InvalidArgument",
    "InvalidTransition",
    "ItemNotFound",
    "LeaseLost",
    "LockError",
    "ResponseExists",
    "ResponseNotFound",
    "ResponseStoreError",
    "SequenceConflict",
    "StorageError",
    "StoreFull",
    "VersionConflict",
    "WaitTimeout",
]

# Ids are at most 128 characters once checked; a message shows a little more of an unchecked one, then cuts it.
_ID_CHARS = 140


class ResponseStoreError(Exception):
    """Base class of every error this library raises.

    ``id`` names the response the error is about, or is ``None`` when the error is not about one response.
    """

    def __init__(self, message: str, *, id: str | None = None) -> None:
        super().__init__(message)
        self.id = id


class ResponseNotFound(ResponseStoreError, LookupError):
    """No response with this id is visible to the caller's owner.

    A response of another owner is reported exactly like a missing one, so this error never reveals whether
    another tenant's id exists.
    """

    def __init__(self, id: str) -> None:
        super().__init__(f"no response with id {describe(id, _ID_CHARS)}", id=id)


class ResponseExists(ResponseStoreError):
    """``create`` was given an explicit ``id`` that the same owner already uses."""

    def __init__(self, id: str) -> None:
        super().__init__(f"a response with id {describe(id, _ID_CHARS)} already exists", id=id)


class ConversationNotFound(ResponseStoreError, LookupError):
    """No conversation with this id is visible to the caller's owner (another owner's is reported the same way)."""

    def __init__(self, id: str) -> None:
        super().__init__(f"no conversation with id {describe(id, _ID_CHARS)}", id=id)


class ItemNotFound(ResponseStoreError, LookupError):
    """The conversation holds no item with this id. ``id`` names the conversation, ``item_id`` the item."""

    def __init__(self, id: str, item_id: str) -> None:
        super().__init__(
            f"conversation {describe(id, _ID_CHARS)} holds no item with id {describe(item_id, _ID_CHARS)}", id=id
        )
        self.item_id = item_id


class ConversationFull(ResponseStoreError):
    """A conversation bound was reached; nothing was stored or changed.

    ``bound`` is ``"max_records"`` (the store holds that many conversations; delete some or raise the store's
    ``max_records``) or ``"max_items"`` (the conversation ``id`` holds that many items); ``limit`` its value.
    """

    def __init__(self, id: str, bound: str, limit: int) -> None:
        if bound == "max_records":
            message = f"cannot store conversation {describe(id, _ID_CHARS)}: the store holds its maximum of {limit}"
        else:
            message = f"conversation {describe(id, _ID_CHARS)} would hold more than its maximum of {limit} items"
        super().__init__(message, id=id)
        self.bound = bound
        self.limit = limit


class InvalidArgument(ResponseStoreError, ValueError):
    """An argument was malformed: wrong type, out of range, not JSON, too long, or an unknown cursor."""


class InvalidTransition(ResponseStoreError):
    """The requested status change is not allowed by the Responses lifecycle.

    ``current`` and ``requested`` are the two statuses involved (as plain strings).
    """

    def __init__(self, id: str, current: str, requested: str, reason: str | None = None) -> None:
        message = f"response {describe(id, _ID_CHARS)} cannot go from {describe(current)} to {describe(requested)}"
        if reason:
            message = f"{message}: {reason}"
        super().__init__(message, id=id)
        self.current = current
        self.requested = requested


class VersionConflict(ResponseStoreError):
    """``expected_version`` did not match the stored version: someone else changed the response first."""

    def __init__(self, id: str, expected: int, actual: int, *, what: str = "response") -> None:
        super().__init__(
            f"{what} {describe(id, _ID_CHARS)} is at version {describe(actual)}, "
            f"not the expected version {describe(expected)}",
            id=id,
        )
        self.expected = expected
        self.actual = actual


class ChainError(ResponseStoreError):
    """A ``previous_response_id`` chain cannot be used.

    Raised when the previous response is still running, when an ancestor is missing, when the chain is deeper
    than ``max_chain_depth``, or when it loops back on itself.
    """


class LockError(ResponseStoreError, RuntimeError):
    """A :class:`~responsestore.RWLock` was used in a way that would deadlock or corrupt it.

    For example asking for the write lock while holding only the read lock (an upgrade), or releasing a lock
    the thread does not hold.
    """


class StoreFull(ResponseStoreError):
    """The store is at its capacity (``max_records`` records, or ``max_bytes`` bytes) and nothing can be evicted.

    Only finished records are evicted: every other record is queued or in progress, or belongs to the chain the
    new response continues. Nothing was stored or changed. Finish or delete active responses, or raise the bound.
    ``max_records`` and ``max_bytes`` are the store's bounds; ``bound`` names the one that was reached
    (``"max_records"`` or ``"max_bytes"``).
    """

    def __init__(self, id: str, max_records: int | None, *, max_bytes: int | None = None, bound: str = "") -> None:
        bound = bound or ("max_records" if max_records is not None else "max_bytes")
        if bound == "max_records":
            held = f"its maximum of {max_records} records"
        else:
            held = f"its maximum of {max_bytes} bytes"
        super().__init__(
            f"cannot store response {describe(id, _ID_CHARS)}: the store holds {held} and none can be evicted "
            "(each is queued, in progress, or part of the chain being continued)",
            id=id,
        )
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.bound = bound


class EventLogClosed(ResponseStoreError):
    """An event was appended to a response that has already finished; its event log is closed."""

    def __init__(self, id: str, status: str) -> None:
        super().__init__(
            f"cannot append an event to response {describe(id, _ID_CHARS)}: it is {describe(status)}, "
            "and events can only be appended "
            "while a response is queued or in progress",
            id=id,
        )
        self.status = status


class EventLogFull(ResponseStoreError):
    """Appending the event would exceed the log's ``max_events`` or ``max_event_bytes``; nothing was appended."""


class LeaseLost(ResponseStoreError):
    """A write named a lease ``holder`` that does not hold the response's lease; nothing was changed.

    The response finished (a final response holds no lease), was taken over, or is another creation of the same
    id (deleted, then created again). A run that gets this has lost its response and must stop writing to it.
    """

    def __init__(self, id: str, holder: str, held_by: str | None, status: str) -> None:
        if held_by is None:
            why = f"it holds no lease (it is {describe(status)})"
        else:
            why = f"its lease is held by {describe(held_by, 80)}"
        super().__init__(f"response {describe(id, _ID_CHARS)} is not held by {describe(holder, 80)}: {why}", id=id)
        self.holder = holder
        self.held_by = held_by
        self.status = status


class SequenceConflict(ResponseStoreError):
    """``expected_events`` did not match the number of events the response's log holds; nothing was appended.

    ``expected`` is what the caller said the log holds, ``actual`` what it holds. A writer that retries an append
    whose reply it lost learns from ``actual`` whether the first attempt landed.
    """

    def __init__(self, id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"the event log of response {describe(id, _ID_CHARS)} holds {actual} events, not the expected {expected}",
            id=id,
        )
        self.expected = expected
        self.actual = actual


class WaitTimeout(ResponseStoreError, TimeoutError):
    """``wait`` or ``stream`` gave up after ``timeout`` seconds without the awaited change."""


class StorageError(ResponseStoreError):
    """The storage behind a store cannot be used, or failed; the failed call changed nothing.

    Raised for a closed store, a file that is not a responsestore database or is damaged, a newer schema
    version, a server that cannot be reached in time, and errors the engine reports (disk full, I/O error,
    locked for longer than the configured timeout).
    """
