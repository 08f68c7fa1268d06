"""Freezing caller JSON into immutable values, and thawing it back into fresh plain containers.

Every backend stores only frozen values: ``freeze`` copies what a caller passed in, so mutating the caller's dict
afterwards changes nothing stored, and ``thaw`` builds new dicts and lists, so mutating what a method returned
changes nothing stored either.

Frozen JSON is: ``None``, ``bool``, ``int``, finite ``float``, ``str``, ``tuple`` of frozen JSON, and
:class:`FrozenDict` with ``str`` keys. Anything else (sets, bytes, NaN, objects, cycles, absurd nesting) is refused
with :class:`~responsestore.InvalidArgument`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from typing import Any, TypeAlias

from .errors import InvalidArgument

__all__ = ["JSON", "FrozenDict", "freeze", "freeze_object", "thaw", "to_json_text"]

#: A frozen JSON value.
JSON: TypeAlias = "bool | int | float | str | tuple[JSON, ...] | FrozenDict | None"

#: Deeper values are refused: real OpenAI payloads are shallow, and the limit turns a cyclic structure into a
#: clear error instead of a RecursionError.
MAX_DEPTH = 64


class FrozenDict(Mapping[str, Any]):
    """A read-only, hashable mapping with ``str`` keys holding frozen JSON values.

    It compares equal to any mapping holding the same JSON (including a plain ``dict`` with lists where this holds
    tuples), so code reading a record can treat it as a dict; it has no method that changes it.
    """

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        # Deep-freezes what it is given, so a FrozenDict can never hold a mutable value.
        self._data: dict[str, Any] = freeze(data, "FrozenDict")._data if data else {}
        self._hash: int | None = None

    @classmethod
    def _of_frozen(cls, data: dict[str, Any]) -> FrozenDict:
        """Wrap ``data``, whose values are already frozen JSON, without copying (for the package itself)."""
        self = cls.__new__(cls)
        self._data = data
        self._hash = None
        return self

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenDict):
            return self._data == other._data
        if isinstance(other, Mapping):
            try:  # compare like with like: a plain dict may hold lists where this holds tuples
                frozen: FrozenDict = freeze(other)
            except InvalidArgument:  # not JSON, so not equal to any FrozenDict
                return False
            return self._data == frozen._data
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenDict({self._data!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (thaw(self),))


def freeze(value: object, what: str = "value", _depth: int = 0) -> Any:
    """Return an immutable deep copy of the JSON ``value``.

    ``what`` names the value in the error message (for example ``"metadata"`` or ``"output[2]"``).

    Raises:
        InvalidArgument: ``value`` is not JSON (a non-``str`` key, a set, bytes, a non-finite float, an
            object) or is nested more than 64 levels deep.
    """
    if _depth > MAX_DEPTH:
        raise InvalidArgument(f"{what} is nested more than {MAX_DEPTH} levels deep")
    cls = value.__class__
    if value is None or cls is str or cls is bool or cls is FrozenDict:
        # A FrozenDict was validated when it was built, and nothing can change it since.
        return value
    if isinstance(value, str):  # a str subclass (an enum member, say) is kept as given, as before
        return value
    if isinstance(value, int):
        # bool was handled above; int subclasses (IntEnum) become plain ints so they thaw as JSON numbers.
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgument(f"{what} must be a finite number, not {value!r}")
        return float(value)
    if isinstance(value, Mapping):
        frozen: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidArgument(f"{what} has a non-string key {key!r}")
            frozen[key] = freeze(item, f"{what}[{key!r}]", _depth + 1)
        return FrozenDict._of_frozen(frozen)
    if isinstance(value, (list, tuple)):
        return tuple(freeze(item, f"{what}[{i}]", _depth + 1) for i, item in enumerate(value))
    raise InvalidArgument(f"{what} must be JSON, not {type(value).__name__}")


def freeze_object(value: object, what: str) -> FrozenDict:
    """Freeze ``value``, which must be a JSON object (a mapping).

    Raises:
        InvalidArgument: ``value`` is not a mapping, or not JSON.
    """
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"{what} must be a JSON object, not {type(value).__name__}")
    frozen: FrozenDict = freeze(value, what)
    return frozen


def thaw(value: Any) -> Any:
    """Return a fresh, plain, mutable copy of the frozen JSON ``value`` (dicts and lists)."""
    # Exact type checks: frozen JSON holds no subclasses, and ABC isinstance checks are slow on this hot path.
    cls = value.__class__
    if cls is FrozenDict:
        return {key: thaw(item) for key, item in value._data.items()}
    if cls is tuple:
        return [thaw(item) for item in value]
    return value


def to_json_text(value: Any) -> str:
    """Serialize frozen JSON compactly (used by durable backends and for size accounting)."""
    return json.dumps(thaw(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
