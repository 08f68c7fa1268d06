"""``StoreModel``: a deliberately naive reference implementation of the store's observable behaviour.

Written from the docstrings of ``responsestore/_contract.py``, ``_lifecycle.py`` and ``_paging.py``, not from the
code: plain dicts and lists, every list sorted from scratch on every call, no indexes, no locks. It is slow and
obviously correct, so the stateful and ordering tests can compare any backend with it call by call.

What the model deliberately does not do: validate or normalize JSON (callers give it items with explicit ids,
usage with every count filled in, errors as ``{"code", "message"}`` objects...), nor generate ids. When the test
lets the real store pick an id, it passes that id (or any unused one if the real call failed) as ``auto_id``.

Records are plain dicts with one key per ``ResponseRecord`` field; ``observe`` turns a real record into the same
shape, so comparing the two is a dict comparison.
"""

from __future__ import annotations

import builtins
import copy
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from responsestore import (
    ChainError,
    InvalidArgument,
    InvalidTransition,
    ResponseExists,
    ResponseNotFound,
    VersionConflict,
)

__all__ = ["FIELDS", "ModelPage", "StoreModel", "observe", "plain"]

ACTIVE = ("queued", "in_progress")
TERMINAL = ("completed", "failed", "cancelled", "incomplete")
STATUSES = ACTIVE + TERMINAL

#: Where each status may go next (the lifecycle diagram): active ones to anything later, final ones nowhere.
NEXT: dict[str, tuple[str, ...]] = {
    "queued": ("in_progress", *TERMINAL),
    "in_progress": TERMINAL,
    "completed": (),
    "failed": (),
    "cancelled": (),
    "incomplete": (),
}

UPDATABLE = (
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
)

#: Every field of a record, as ``observe`` and the model spell them.
FIELDS = (
    "id",
    "created_at",
    "model",
    "status",
    "input",
    "output",
    "previous_response_id",
    "instructions",
    "tools",
    "metadata",
    "usage",
    "error",
    "incomplete_details",
    "background",
    "completed_at",
    "owner",
    "version",
    "extra",
)

MAX_LIMIT = 100


def plain(value: Any) -> Any:
    """A plain copy of a JSON-like value: every mapping becomes a dict, every list or tuple a list."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, enum.Enum):
        return value.value  # ResponseStatus: compare its string
    return value


def observe(record: Any) -> dict[str, Any]:
    """A real ``ResponseRecord`` in the model's shape: a dict of plain values, one key per field."""
    return {name: plain(getattr(record, name)) for name in FIELDS}


@dataclass(frozen=True)
class ModelPage:
    """A page as the model computes it."""

    data: list[dict[str, Any]]
    first_id: str | None
    last_id: str | None
    has_more: bool

    @property
    def ids(self) -> list[str]:
        return [item["id"] for item in self.data]


def _page(items: list[dict[str, Any]], has_more: bool) -> ModelPage:
    if not items:
        return ModelPage([], None, None, has_more=False)
    return ModelPage(copy.deepcopy(items), items[0]["id"], items[-1]["id"], has_more)


def _check_paging(limit: int, after: str | None, before: str | None, order: str) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgument(f"limit {limit!r}")
    if order not in ("asc", "desc"):
        raise InvalidArgument(f"order {order!r}")
    if after is not None and before is not None:
        raise InvalidArgument("both cursors")


def _cut(
    entries: list[tuple[Any, dict[str, Any]]],
    cursor_position: Any,
    *,
    after: str | None,
    before: str | None,
    limit: int,
    descending: bool,
) -> ModelPage:
    """Cut one page from ``entries``: (position, item) pairs already in list order and already filtered."""

    def later_in_list(position: Any) -> bool:
        return bool(position < cursor_position if descending else position > cursor_position)

    def earlier_in_list(position: Any) -> bool:
        return bool(position > cursor_position if descending else position < cursor_position)

    if after is not None:
        following = [item for position, item in entries if later_in_list(position)]
        return _page(following[:limit], len(following) > limit)
    if before is not None:
        preceding = [item for position, item in entries if earlier_in_list(position)]
        return _page(preceding[-limit:], len(preceding) > limit)
    everything = [item for _, item in entries]
    return _page(everything[:limit], len(everything) > limit)


class StoreModel:
    """The reference model of one store (every owner)."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        max_chain_depth: int = 1000,
        cursor_memory: int = 10_000,
    ) -> None:
        self.clock = clock
        self.max_chain_depth = max_chain_depth
        self.cursor_memory = cursor_memory
        #: (owner, id) -> record dict
        self.records: dict[tuple[str | None, str], dict[str, Any]] = {}
        #: (owner, id) -> (created_at, creation number); the order every list follows
        self.positions: dict[tuple[str | None, str], tuple[float, int]] = {}
        #: (owner, id) -> position of a removed record, oldest removal first (a cursor may still name it)
        self.removed: dict[tuple[str | None, str], tuple[float, int]] = {}
        self.created = 0

    # ------------------------------------------------------------------ helpers

    def __len__(self) -> int:
        return len(self.records)

    def keys(self) -> list[tuple[str | None, str]]:
        return list(self.records)

    def _live(self, owner: str | None, id: str) -> dict[str, Any]:
        record = self.records.get((owner, id))
        if record is None:
            raise ResponseNotFound(id)
        return record

    def _changing(self, owner: str | None, id: str, expected_version: int | None) -> dict[str, Any]:
        record = self._live(owner, id)
        if expected_version is not None and expected_version != record["version"]:
            raise VersionConflict(id, expected_version, record["version"])
        return record

    def _store(self, owner: str | None, new: dict[str, Any]) -> dict[str, Any]:
        self.records[(owner, new["id"])] = new
        return copy.deepcopy(new)

    def _moved(self, record: dict[str, Any], target: str, **changes: Any) -> dict[str, Any]:
        """``record`` moved to ``target`` with ``changes``, or InvalidTransition."""
        if target not in NEXT[record["status"]]:
            raise InvalidTransition(record["id"], record["status"], target)
        new = {**record, **copy.deepcopy(changes), "status": target, "version": record["version"] + 1}
        if target == "completed":
            new["completed_at"] = self.clock()
        return new

    # ------------------------------------------------------------------ creating and reading

    def create(
        self,
        model: str,
        input: list[dict[str, Any]] | None = None,
        *,
        instructions: str | None = None,
        previous_response_id: str | None = None,
        tools: list[dict[str, Any]] | None = None,
        metadata: dict[str, str] | None = None,
        background: bool = False,
        status: str = "in_progress",
        id: str | None = None,
        extra: dict[str, Any] | None = None,
        owner: str | None = None,
        auto_id: str | None = None,
    ) -> dict[str, Any]:
        if status not in ACTIVE:
            raise InvalidArgument(f"status {status!r}")
        if id is None:
            if auto_id is None or (owner, auto_id) in self.records:
                raise AssertionError("the test must pass an unused auto_id when it lets the store pick the id")
            id = auto_id
        elif (owner, id) in self.records:
            raise ResponseExists(id)
        if previous_response_id is not None:
            previous = self.records.get((owner, previous_response_id))
            if previous is None or previous["status"] not in TERMINAL:
                raise ChainError(f"previous_response_id {previous_response_id!r}")
        record: dict[str, Any] = {
            "id": id,
            "created_at": self.clock(),
            "model": model,
            "status": status,
            "input": copy.deepcopy(list(input or [])),
            "output": [],
            "previous_response_id": previous_response_id,
            "instructions": instructions,
            "tools": copy.deepcopy(list(tools or [])),
            "metadata": dict(metadata or {}),
            "usage": None,
            "error": None,
            "incomplete_details": None,
            "background": background,
            "completed_at": None,
            "owner": owner,
            "version": 1,
            "extra": copy.deepcopy(dict(extra or {})),
        }
        key = (owner, id)
        self.positions[key] = (record["created_at"], self.created)
        self.created += 1
        self.removed.pop(key, None)  # a re-created id takes its new place
        return self._store(owner, record)

    def get(self, id: str, *, owner: str | None = None) -> dict[str, Any]:
        return copy.deepcopy(self._live(owner, id))

    def contains(self, id: str, *, owner: str | None = None) -> bool:
        return (owner, id) in self.records

    def delete(self, id: str, *, expected_version: int | None = None, owner: str | None = None) -> dict[str, Any]:
        record = self._changing(owner, id, expected_version)
        key = (owner, id)
        del self.records[key]
        self.removed[key] = self.positions.pop(key)
        if len(self.removed) > self.cursor_memory:
            del self.removed[next(iter(self.removed))]
        return copy.deepcopy(record)

    # ------------------------------------------------------------------ the lifecycle

    def start(self, id: str, *, expected_version: int | None = None, owner: str | None = None) -> dict[str, Any]:
        record = self._changing(owner, id, expected_version)
        return self._store(owner, self._moved(record, "in_progress"))

    def complete(
        self,
        id: str,
        output: list[dict[str, Any]] | None = None,
        *,
        usage: dict[str, Any] | None = None,
        expected_version: int | None = None,
        owner: str | None = None,
    ) -> dict[str, Any]:
        record = self._changing(owner, id, expected_version)
        return self._store(owner, self._moved(record, "completed", output=list(output or []), usage=usage))

    def fail(
        self,
        id: str,
        error: dict[str, Any] | str,
        *,
        expected_version: int | None = None,
        owner: str | None = None,
    ) -> dict[str, Any]:
        if isinstance(error, str):
            error = {"code": "server_error", "message": error}
        record = self._changing(owner, id, expected_version)
        return self._store(owner, self._moved(record, "failed", error=error))

    def mark_incomplete(
        self,
        id: str,
        reason: str,
        *,
        output: list[dict[str, Any]] | None = None,
        usage: dict[str, Any] | None = None,
        expected_version: int | None = None,
        owner: str | None = None,
    ) -> dict[str, Any]:
        record = self._changing(owner, id, expected_version)
        new = self._moved(
            record,
            "incomplete",
            incomplete_details={"reason": reason},
            output=list(output or []),
            usage=usage,
        )
        return self._store(owner, new)

    def cancel(self, id: str, *, expected_version: int | None = None, owner: str | None = None) -> dict[str, Any]:
        record = self._changing(owner, id, expected_version)
        if not record["background"]:
            raise InvalidTransition(id, record["status"], "cancelled", "only background responses can be cancelled")
        if record["status"] == "cancelled":
            return copy.deepcopy(record)  # OpenAI: cancelling a cancelled response returns it, unchanged
        return self._store(owner, self._moved(record, "cancelled"))

    def update(
        self,
        id: str,
        *,
        expected_version: int | None = None,
        owner: str | None = None,
        **changes: Any,
    ) -> dict[str, Any]:
        if not changes or any(name not in UPDATABLE for name in changes):
            raise InvalidArgument(f"cannot update {sorted(changes)}")
        if "status" in changes and changes["status"] not in STATUSES:
            raise InvalidArgument(f"status {changes['status']!r}")
        changes = copy.deepcopy(changes)
        if "metadata" in changes:
            changes["metadata"] = dict(changes["metadata"] or {})
        if "output" in changes:
            changes["output"] = list(changes["output"])
        if "tools" in changes:
            changes["tools"] = list(changes["tools"])
        if "extra" in changes:
            changes["extra"] = dict(changes["extra"] or {})
        if isinstance(changes.get("error"), str):
            changes["error"] = {"code": "server_error", "message": changes["error"]}
        if isinstance(changes.get("incomplete_details"), str):
            changes["incomplete_details"] = {"reason": changes["incomplete_details"]}
        record = self._changing(owner, id, expected_version)
        target = changes.pop("status", record["status"])
        if not changes and target == record["status"]:
            return copy.deepcopy(record)  # naming only the current status changes nothing, not even the version
        if record["status"] in TERMINAL:
            # Final: only metadata may change (naming the status it already has is no change).
            if target != record["status"] or any(name != "metadata" for name in changes):
                raise InvalidTransition(id, record["status"], target, "final")
            return self._store(owner, {**record, **changes, "version": record["version"] + 1})
        if target != record["status"]:
            return self._store(owner, self._moved(record, target, **changes))
        return self._store(owner, {**record, **changes, "version": record["version"] + 1})

    # ------------------------------------------------------------------ lists and chains

    def _cursor_position(self, owner: str | None, cursor: str) -> tuple[float, int]:
        key = (owner, cursor)
        if key in self.positions:
            return self.positions[key]
        if key in self.removed:
            return self.removed[key]
        raise InvalidArgument(f"unknown cursor {cursor!r}")

    def ordered(
        self,
        owner: str | None = None,
        *,
        order: str = "desc",
        model: str | None = None,
        status: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Every record of ``owner`` that passes the filters, in list order."""
        return [record for _, record in self._entries(owner, order, model, status, metadata)]

    def _entries(
        self,
        owner: str | None,
        order: str,
        model: str | None,
        status: str | None,
        metadata: Mapping[str, str] | None,
    ) -> list[tuple[tuple[float, int], dict[str, Any]]]:
        entries = [
            (self.positions[key], record)
            for key, record in self.records.items()
            if key[0] == owner
            and (model is None or record["model"] == model)
            and (status is None or record["status"] == status)
            and all(record["metadata"].get(name, None) == value for name, value in (metadata or {}).items())
        ]
        entries.sort(key=lambda entry: entry[0], reverse=order == "desc")
        return entries

    def list(
        self,
        *,
        limit: int = 20,
        after: str | None = None,
        before: str | None = None,
        order: str = "desc",
        model: str | None = None,
        status: str | None = None,
        metadata: Mapping[str, str] | None = None,
        owner: str | None = None,
    ) -> ModelPage:
        _check_paging(limit, after, before, order)
        if status is not None and status not in STATUSES:
            raise InvalidArgument(f"status filter {status!r}")
        cursor = after if after is not None else before
        position = None if cursor is None else self._cursor_position(owner, cursor)
        entries = self._entries(owner, order, model, status, metadata)
        return _cut(entries, position, after=after, before=before, limit=limit, descending=order == "desc")

    def input_items(
        self,
        id: str,
        *,
        limit: int = 20,
        after: str | None = None,
        before: str | None = None,
        order: str = "desc",
        owner: str | None = None,
    ) -> ModelPage:
        _check_paging(limit, after, before, order)
        record = self._live(owner, id)
        entries = list(enumerate(record["input"]))
        if order == "desc":
            entries.reverse()
        cursor = after if after is not None else before
        position = None
        if cursor is not None:
            matching = [index for index, item in enumerate(record["input"]) if item["id"] == cursor]
            if not matching:
                raise InvalidArgument(f"unknown cursor {cursor!r}")
            position = matching[0]
        return _cut(entries, position, after=after, before=before, limit=limit, descending=order == "desc")

    def chain(self, id: str, *, owner: str | None = None) -> builtins.list[dict[str, Any]]:
        record = self._live(owner, id)
        chain = [record]
        while record["previous_response_id"] is not None:
            previous_id = record["previous_response_id"]
            if any(seen["id"] == previous_id for seen in chain):
                raise ChainError(f"the chain of {id!r} loops")
            if len(chain) == self.max_chain_depth:
                raise ChainError(f"the chain of {id!r} is longer than {self.max_chain_depth}")
            record = self.records.get((owner, previous_id))  # type: ignore[assignment]
            if record is None:
                raise ChainError(f"the chain of {id!r} is broken at {previous_id!r}")
            chain.append(record)
        return copy.deepcopy(chain[::-1])

    def conversation(self, id: str, *, owner: str | None = None) -> builtins.list[dict[str, Any]]:
        items: builtins.list[dict[str, Any]] = []
        for record in self.chain(id, owner=owner):
            items.extend(record["input"])
            items.extend(record["output"])
        return items
