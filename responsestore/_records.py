"""``ResponseRecord`` and ``ResponseStatus``: one stored response, and its OpenAI JSON in and out."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from ._checks import check_bool, check_int, check_text, describe, has_lone_surrogate
from ._ids import check_id
from ._items import normalize_items
from ._json import FrozenDict, freeze_object, thaw
from ._wire import RESPONSE_DEFAULTS, response_json
from .errors import InvalidArgument

__all__ = ["ResponseRecord", "ResponseStatus"]


class ResponseStatus(str, enum.Enum):
    """The status of a response, as OpenAI names it.

    ``queued`` and ``in_progress`` are *active*; the other four are *terminal* and final.
    """

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INCOMPLETE = "incomplete"

    @property
    def is_terminal(self) -> bool:
        """Whether no further status change is allowed."""
        return self not in _ACTIVE

    def __str__(self) -> str:
        return self.value


_ACTIVE = frozenset({ResponseStatus.QUEUED, ResponseStatus.IN_PROGRESS})
_STATUS_BY_VALUE: Mapping[str, ResponseStatus] = {status.value: status for status in ResponseStatus}

# Fields of OpenAI's Response object that ResponseRecord models itself; everything else goes to ``extra``.
_MODELLED = frozenset(
    {
        "id",
        "object",
        "created_at",
        "model",
        "status",
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
    }
)
# Never part of OpenAI's JSON, so never allowed in ``extra`` either.
_INTERNAL = frozenset({"input", "owner", "version", "lease_holder", "lease_expires_at"})
# OpenAI requires these two; when absent they mean the API's defaults, so the defaults are not stored.
_EXTRA_DEFAULTS: Mapping[str, Any] = {"parallel_tool_calls": True, "tool_choice": "auto"}

MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512


def to_status(value: object, what: str = "status") -> ResponseStatus:
    """Return the :class:`ResponseStatus` named by ``value`` (a member or its string).

    Looked up by value, never through ``ResponseStatus(value)``, whose own error message would ``repr()`` the
    caller's value without bound.

    Raises:
        InvalidArgument: ``value`` names no status.
    """
    status = _STATUS_BY_VALUE.get(value) if isinstance(value, str) else None
    if status is None:
        allowed = ", ".join(s.value for s in ResponseStatus)
        raise InvalidArgument(f"{what} {describe(value)} is not one of {allowed}")
    return status


def check_metadata(value: object) -> FrozenDict:
    """Freeze metadata, enforcing OpenAI's limits: at most 16 string pairs, keys ≤ 64, values ≤ 512 chars.

    ``None`` means no metadata.

    Raises:
        InvalidArgument: the metadata breaks one of the limits or is not a mapping of strings.
    """
    if value is None:
        return _EMPTY
    if isinstance(value, FrozenDict) and value is _EMPTY:
        return value
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"metadata must be a mapping of strings, not {type(value).__name__}")
    if len(value) > MAX_METADATA_PAIRS:
        raise InvalidArgument(f"metadata has {len(value)} pairs; at most {MAX_METADATA_PAIRS} are allowed")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise InvalidArgument(f"metadata keys and values must be strings, not {describe(key)}: {describe(item)}")
        if len(key) > MAX_METADATA_KEY:
            raise InvalidArgument(
                f"metadata key {describe(key, 20)} is {len(key)} characters; at most {MAX_METADATA_KEY} are allowed"
            )
        if len(item) > MAX_METADATA_VALUE:
            raise InvalidArgument(
                f"metadata value for {describe(key)} is {len(item)} characters; "
                f"at most {MAX_METADATA_VALUE} are allowed"
            )
    return freeze_object(value, "metadata")


def _check_items(value: Any) -> tuple[FrozenDict, ...]:
    if value.__class__ is tuple and all(
        item.__class__ is FrozenDict and item.get("id").__class__ is str for item in value
    ):
        frozen: tuple[FrozenDict, ...] = value
        return frozen
    return normalize_items(value, "items")


def check_tools(value: object) -> tuple[FrozenDict, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
        raise InvalidArgument(f"tools must be a list of tool objects, not {type(value).__name__}")
    return tuple(freeze_object(tool, f"tools[{i}]") for i, tool in enumerate(value))


# OpenAI's usage object requires these detail counts; absent ones are zero.
_USAGE_DETAILS: Mapping[str, Mapping[str, int]] = {
    "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
    "output_tokens_details": {"reasoning_tokens": 0},
}


_USAGE_DEFAULTS = {key: FrozenDict(defaults) for key, defaults in _USAGE_DETAILS.items()}


def check_usage(value: object) -> FrozenDict | None:
    """Freeze token usage, filling in what OpenAI's schema requires.

    Needs ``input_tokens`` and ``output_tokens`` (non-negative ints); ``total_tokens`` defaults to their sum
    and the counts inside ``input_tokens_details`` and ``output_tokens_details`` default to zero. ``None``
    means no usage.

    Raises:
        InvalidArgument: a count is missing, negative, or not an int.
    """
    if value is None:
        return None
    usage = dict(freeze_object(value, "usage"))
    for key in ("input_tokens", "output_tokens"):
        count = usage.get(key)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidArgument(f"usage[{key!r}] must be a non-negative int, not {describe(count)}")
    usage.setdefault("total_tokens", usage["input_tokens"] + usage["output_tokens"])
    for key, defaults in _USAGE_DETAILS.items():
        details = usage.get(key, _EMPTY)
        if not isinstance(details, FrozenDict):
            raise InvalidArgument(f"usage[{key!r}] must be an object, not {describe(details)}")
        for name in defaults:
            count = details.get(name, 0)
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise InvalidArgument(f"usage[{key!r}][{name!r}] must be a non-negative int, not {describe(count)}")
        if key not in usage:
            usage[key] = _USAGE_DEFAULTS[key]  # shared: most usage objects carry no details
        elif any(name not in details for name in defaults):
            usage[key] = FrozenDict._of_frozen({**defaults, **details})
    total = usage["total_tokens"]
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise InvalidArgument(f"usage['total_tokens'] must be a non-negative int, not {describe(total)}")
    return FrozenDict._of_frozen(usage)


def check_error(value: object) -> FrozenDict | None:
    """Freeze an error object: ``{"code": str, "message": str}``; a plain string is a ``server_error``.

    Raises:
        InvalidArgument: the error has no string ``code`` or ``message``.
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = {"code": "server_error", "message": value}
    error = freeze_object(value, "error")
    for key in ("code", "message"):
        if not isinstance(error.get(key), str):
            raise InvalidArgument(f"error[{key!r}] must be a string, not {describe(error.get(key))}")
    return error


def check_incomplete_details(value: object) -> FrozenDict | None:
    """Freeze ``incomplete_details``: ``{"reason": str}``; a plain string is the reason.

    Raises:
        InvalidArgument: there is no non-empty string ``reason``.
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = {"reason": value}
    details = freeze_object(value, "incomplete_details")
    reason = details.get("reason")
    if not isinstance(reason, str) or not reason:
        raise InvalidArgument(f"incomplete_details['reason'] must be a non-empty string, not {describe(reason)}")
    return details


def check_extra(value: object) -> FrozenDict:
    """Freeze ``extra``: further OpenAI Response fields, none of which the record models itself.

    Raises:
        InvalidArgument: ``extra`` is not a JSON object or names a modelled or internal field.
    """
    if value is None or value is _EMPTY:
        return _EMPTY
    extra = freeze_object(value, "extra")
    clash = sorted((_MODELLED | _INTERNAL) & set(extra))
    if clash:
        raise InvalidArgument(f"extra must not contain fields the record models itself: {clash}")
    if any(extra.get(key, _MISSING) == default for key, default in _EXTRA_DEFAULTS.items()):
        extra = FrozenDict._of_frozen({k: v for k, v in extra.items() if _EXTRA_DEFAULTS.get(k, _MISSING) != v})
    return extra if extra else _EMPTY


def _check_time(what: str) -> Any:
    def check(instance: object, attribute: object, value: object) -> None:
        if value is None and what != "created_at":
            return
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (isinstance(value, float) and not math.isfinite(value))
        ):
            raise InvalidArgument(f"{what} must be a finite number of seconds, not {describe(value)}")

    return check


def check_instructions(value: object) -> str | None:
    """Return ``instructions`` if it is a string or ``None``, else raise :class:`InvalidArgument`."""
    if value is not None and not isinstance(value, str):
        raise InvalidArgument(f"instructions must be a string or None, not {type(value).__name__}")
    if value is not None and has_lone_surrogate(value):
        raise InvalidArgument(f"instructions {describe(value)} hold a lone surrogate, which UTF-8 cannot encode")
    return value


def _check_optional_str(what: str) -> Any:
    def check(instance: object, attribute: object, value: object) -> None:
        if value is not None and not isinstance(value, str):
            raise InvalidArgument(f"{what} must be a string or None, not {type(value).__name__}")

    return check


def _check_model(instance: object, attribute: object, value: Any) -> None:
    check_text(value, "model")


def _check_version(instance: object, attribute: object, value: Any) -> None:
    check_int(value, "version", minimum=1)


def _check_background(instance: object, attribute: object, value: Any) -> None:
    check_bool(value, "background")


def _check_record_id(instance: object, attribute: object, value: Any) -> None:
    check_id(value)


def _check_previous(instance: object, attribute: object, value: Any) -> None:
    if value is not None:
        check_id(value, "previous_response_id")


_EMPTY = FrozenDict()
_MISSING = object()


@attrs.frozen(slots=True, weakref_slot=False)
class ResponseRecord:
    """One stored response: immutable, deeply.

    Every JSON-valued field (items, tools, metadata, usage, error, incomplete details, extra) holds a frozen
    copy (tuples and :class:`~responsestore.FrozenDict`), so nothing a caller passed in or got back can change
    it. A store never edits a record; a change stores a new record with ``version`` one higher.

    ``owner`` is the tenant the record belongs to (``None`` is an owner like any other) and ``version`` counts
    changes; neither is part of OpenAI's JSON. ``lease_holder`` and ``lease_expires_at`` describe the lease of a
    queued or in-progress response (see :meth:`~responsestore.BaseStore.renew`): who runs it, and until when it
    counts as running; a final response holds no lease. They are not part of OpenAI's JSON either.
    ``extra`` carries any other top-level OpenAI field
    (``temperature``, ``text``, ``reasoning``, ...) verbatim, so a response read with :meth:`from_openai`
    writes back unchanged.

    Construct records through a store; constructing one directly validates and freezes every field the same
    way, raising :class:`~responsestore.InvalidArgument`.
    """

    #: OpenAI's object type, constant for every record.
    object: ClassVar[str] = "response"

    id: str = attrs.field(validator=_check_record_id)
    created_at: float = attrs.field(validator=_check_time("created_at"))
    model: str = attrs.field(validator=_check_model)
    status: ResponseStatus = attrs.field(converter=to_status)
    input: tuple[FrozenDict, ...] = attrs.field(default=(), converter=_check_items)
    output: tuple[FrozenDict, ...] = attrs.field(default=(), converter=_check_items)
    previous_response_id: str | None = attrs.field(default=None, validator=_check_previous)
    instructions: str | None = attrs.field(default=None, validator=_check_optional_str("instructions"))
    tools: tuple[FrozenDict, ...] = attrs.field(default=(), converter=check_tools)
    metadata: FrozenDict = attrs.field(default=None, converter=check_metadata)
    usage: FrozenDict | None = attrs.field(default=None, converter=check_usage)
    error: FrozenDict | None = attrs.field(default=None, converter=check_error)
    incomplete_details: FrozenDict | None = attrs.field(default=None, converter=check_incomplete_details)
    background: bool = attrs.field(default=False, validator=_check_background)
    completed_at: float | None = attrs.field(default=None, validator=_check_time("completed_at"))
    owner: str | None = attrs.field(default=None, validator=_check_optional_str("owner"))
    version: int = attrs.field(default=1, validator=_check_version)
    extra: FrozenDict = attrs.field(default=None, converter=check_extra)
    lease_holder: str | None = attrs.field(default=None, validator=_check_optional_str("lease_holder"))
    lease_expires_at: float | None = attrs.field(default=None, validator=_check_time("lease_expires_at"))

    @property
    def is_terminal(self) -> bool:
        """Whether the response has reached a final status."""
        return self.status not in _ACTIVE

    def to_openai(self) -> dict[str, Any]:
        """Return a fresh plain dict: the complete OpenAI / Open Responses ``Response`` object.

        Every field the Open Responses ``ResponseResource`` schema requires is present (request parameters the
        record does not carry in ``extra`` have OpenAI's defaults), and ``created_at`` and ``completed_at`` are
        whole seconds. ``openai.types.responses.Response.model_validate`` accepts it whenever the stored items,
        tools and error code follow OpenAI's schema. ``owner``, ``version`` and ``input`` are not part of it.
        """
        return response_json(self)

    def _plain(self) -> dict[str, Any]:
        """The record's own fields as plain JSON, timestamps exact (the basis of :meth:`to_dict`)."""
        data: dict[str, Any] = thaw(self.extra)
        data.update(
            id=self.id,
            object="response",
            created_at=self.created_at,
            model=self.model,
            status=self.status.value,
            output=thaw(self.output),
            previous_response_id=self.previous_response_id,
            instructions=self.instructions,
            tools=thaw(self.tools),
            metadata=thaw(self.metadata),
            usage=thaw(self.usage),
            error=thaw(self.error),
            incomplete_details=thaw(self.incomplete_details),
            background=self.background,
            completed_at=self.completed_at,
        )
        return data

    @classmethod
    def from_openai(
        cls,
        data: Mapping[str, Any],
        *,
        input: Any = (),
        owner: str | None = None,
        version: int = 1,
    ) -> ResponseRecord:
        """Read a dict in the shape of OpenAI's ``Response`` object (as :meth:`to_openai` returns).

        OpenAI's JSON carries neither the input items nor the owner and version, so they are passed
        separately: ``ResponseRecord.from_openai(r.to_openai(), input=r.input, owner=r.owner,
        version=r.version) == r``. Fields the record does not model go to ``extra``.

        Request parameters equal to the defaults ``to_openai`` fills in (``truncation: "disabled"``, ...) are not
        kept in ``extra``, so reading a response's JSON and writing it again gives the same JSON.

        Raises:
            InvalidArgument: ``data`` is not a Response object or a field is invalid.
        """
        if isinstance(data, Mapping):
            data = {
                k: v for k, v in data.items() if k not in RESPONSE_DEFAULTS or not _same_json(v, RESPONSE_DEFAULTS[k])
            }
        return cls._read(data, input=input, owner=owner, version=version)

    @classmethod
    def _read(cls, data: Mapping[str, Any], *, input: Any, owner: str | None, version: int) -> ResponseRecord:
        if not isinstance(data, Mapping):
            raise InvalidArgument(f"expected a Response object, not {type(data).__name__}")
        if data.get("object", "response") != "response":
            raise InvalidArgument(f"expected object 'response', not {describe(data.get('object'))}")
        missing = [key for key in ("id", "created_at", "model", "status") if key not in data]
        if missing:
            raise InvalidArgument(f"the Response object lacks {missing}", id=data.get("id"))
        extra = {k: v for k, v in data.items() if k not in _MODELLED}
        return cls(
            id=data["id"],
            created_at=data["created_at"],
            model=data["model"],
            status=data["status"],
            input=input,
            output=data.get("output") or (),
            previous_response_id=data.get("previous_response_id"),
            instructions=data.get("instructions"),
            tools=data.get("tools") or (),
            metadata=data.get("metadata"),
            usage=data.get("usage"),
            error=data.get("error"),
            incomplete_details=data.get("incomplete_details"),
            background=bool(data.get("background") or False),
            completed_at=data.get("completed_at"),
            owner=owner,
            version=version,
            extra=extra,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return every field as fresh plain JSON (the storage form durable backends write)."""
        data = self._plain()
        data.update(input=thaw(self.input), owner=self.owner, version=self.version)
        if self.lease_expires_at is not None or self.lease_holder is not None:
            data.update(lease_holder=self.lease_holder, lease_expires_at=self.lease_expires_at)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResponseRecord:
        """Read what :meth:`to_dict` wrote: ``ResponseRecord.from_dict(r.to_dict()) == r``.

        Raises:
            InvalidArgument: ``data`` is not a stored record.
        """
        if not isinstance(data, Mapping):
            raise InvalidArgument(f"expected a stored record, not {type(data).__name__}")
        rest = {k: v for k, v in data.items() if k not in _INTERNAL}
        record = cls._read(
            rest,
            input=data.get("input") or (),
            owner=data.get("owner"),
            version=data.get("version", 1),
        )
        holder, expires = data.get("lease_holder"), data.get("lease_expires_at")
        if holder is None and expires is None:
            return record
        return attrs.evolve(record, lease_holder=holder, lease_expires_at=expires)


def _same_json(value: object, default: object) -> bool:
    """Whether ``value`` is ``default`` as JSON: ``1`` is not ``True``, ``1.0`` is ``1``."""
    if isinstance(value, bool) or isinstance(default, bool):
        return value is default
    return value == default


_FIELDS = tuple(field.name for field in attrs.fields(ResponseRecord))
_set = object.__setattr__


def trusted_record(**fields: Any) -> ResponseRecord:
    """Build a record from values that are already validated and frozen, without re-checking them.

    The store validates every argument before it takes its lock; running the converters again inside the lock
    would only repeat that work. Every field must be given.
    """
    record = object.__new__(ResponseRecord)
    for name in _FIELDS:
        _set(record, name, fields[name])
    return record


def replace_fields(record: ResponseRecord, **changes: Any) -> ResponseRecord:
    """A copy of ``record`` with ``changes``, which the caller has already validated and frozen."""
    new = object.__new__(ResponseRecord)
    for name in _FIELDS:
        _set(new, name, changes[name] if name in changes else getattr(record, name))
    return new
