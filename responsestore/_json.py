r"""Freezing caller JSON into immutable values, and thawing it back into fresh plain containers.

Every backend stores only frozen values: ``freeze`` copies what a caller passed in, so mutating the caller's dict
afterwards changes nothing stored. Reads return the frozen values themselves, with no copy: a
:class:`FrozenDict` is a read-only ``dict`` and a frozen list a ``tuple``, so ``json.dumps`` and code reading
dicts take them as they are, and nothing a caller does to them changes what is stored. ``thaw`` builds fresh,
mutable dicts and lists for callers that want to change a copy (``to_openai()``, :meth:`FrozenDict.thaw`).

Frozen JSON is: ``None``, ``bool``, ``int``, finite ``float``, ``str``, ``tuple`` of frozen JSON, and
:class:`FrozenDict` with ``str`` keys. Anything else (sets, bytes, NaN, objects, cycles, absurd nesting) is refused
with :class:`~responsestore.InvalidArgument`.

Ints of more than 1,000 digits are refused (Python will not write ints beyond 4,300 digits as text). Strings (and
keys) holding a lone surrogate (``"\ud83d"``, which ``json.loads`` produces from an escaped half of a
surrogate pair) are refused too: they cannot be encoded as UTF-8, so no JSON text, event size or SQLite row could
hold them, and refusing them here gives every backend the same behaviour.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn, TypeAlias

from ._checks import describe, has_lone_surrogate
from .errors import InvalidArgument

__all__ = ["JSON", "FrozenDict", "freeze", "freeze_object", "thaw", "to_json_text"]

#: A frozen JSON value.
JSON: TypeAlias = "bool | int | float | str | tuple[JSON, ...] | FrozenDict | None"

#: Deeper values are refused: real OpenAI payloads are shallow, and the limit turns a cyclic structure into a
#: clear error instead of a RecursionError.
MAX_DEPTH = 64

# Python refuses to turn ints of more than 4,300 digits into text (sys.int_info.default_max_str_digits), so no
# backend could serialize them, nor could the event size be measured: such ints are refused, well below that.
_INT_DIGITS = 1000
_INT_BOUND = 10**_INT_DIGITS

# An error message shows at most this many characters of the path to the bad value.
_MAX_PATH = 400


class FrozenDict(dict[str, Any]):
    """A read-only ``dict`` with ``str`` keys holding frozen JSON values; hashable.

    It is a real ``dict`` subclass, so ``json.dumps`` and any code that takes a dict read it directly, with no copy
    and no wrapper. Every method that would change it (``d[k] = v``, ``del d[k]``, ``update``, ``pop``, ``popitem``,
    ``setdefault``, ``clear``, ``|=``) raises :class:`TypeError`, as a ``tuple`` or a ``mappingproxy`` does. Its
    lists are tuples, so nothing inside it can change either.

    It compares equal to any mapping holding the same JSON (including a plain ``dict`` with lists where this holds
    tuples). :meth:`thaw` returns a plain, mutable deep copy (dicts and lists); ``dict(d)`` and ``d.copy()`` a
    plain shallow one. ``copy.copy`` and ``copy.deepcopy`` return the same object (there is nothing to protect),
    and it pickles as a ``FrozenDict``.

    Python cannot stop code that calls the base class's C methods on it directly (``dict.__setitem__(d, k, v)``,
    ``dict.update(d, ...)``): that deliberately breaks the immutability every record relies on; do not.

    It cannot be subclassed (a subclass could add state or mutators that break the guarantees above, and the
    store recognises frozen values by their exact type).
    """

    __slots__ = ()

    def __init_subclass__(cls, **kwargs: Any) -> NoReturn:
        raise TypeError("FrozenDict cannot be subclassed")

    def __new__(cls, data: Mapping[str, Any] | None = None) -> FrozenDict:
        self = _new_dict(cls)
        if data:  # deep-frozen first, so a FrozenDict never holds a mutable value
            _fill(self, freeze(data, "FrozenDict"))
        return self

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        # Everything happens in __new__, so calling __init__ again on a FrozenDict changes nothing.
        pass

    @classmethod
    def _of_frozen(cls, data: dict[str, Any]) -> FrozenDict:
        """A ``FrozenDict`` of ``data``, whose values are already frozen JSON, unchecked (for the package itself)."""
        return _of_frozen(data)

    @classmethod
    def fromkeys(cls, keys: Iterable[str], value: Any = None) -> FrozenDict:  # type: ignore[override]
        """A ``FrozenDict`` mapping every key in ``keys`` to (a frozen copy of) ``value``."""
        return cls(dict.fromkeys(keys, value))

    def thaw(self) -> dict[str, Any]:
        """A fresh, plain, mutable deep copy (dicts and lists), which the caller may change freely."""
        thawed: dict[str, Any] = thaw(self)
        return thawed

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        """Refused: a ``FrozenDict`` never changes (raises :class:`TypeError`; ``thaw()`` gives a mutable copy)."""
        raise TypeError("a FrozenDict is read-only (stored data never changes); .thaw() returns a mutable copy")

    __setitem__ = __delitem__ = update = pop = popitem = setdefault = clear = __ior__ = _refuse

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, dict):
            if _dict_eq(self, other):
                return True
            if other.__class__ is FrozenDict:
                return False
        if isinstance(other, Mapping):
            try:  # compare like with like: a plain dict may hold lists where this holds tuples
                frozen: FrozenDict = freeze(other)
            except InvalidArgument:  # not JSON, so not equal to any FrozenDict
                return False
            return _dict_eq(self, frozen) is True
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __repr__(self) -> str:
        return f"FrozenDict({_dict_repr(self)})"

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: object) -> FrozenDict:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (thaw(self),))


_new_dict = dict.__new__
_fill = dict.update
_dict_eq = dict.__eq__
_dict_repr = dict.__repr__


def _of_frozen(data: dict[str, Any]) -> FrozenDict:
    """A ``FrozenDict`` of ``data``, whose values are already frozen JSON, without checking them (for the package)."""
    frozen: FrozenDict = _new_dict(FrozenDict)
    _fill(frozen, data)
    return frozen


def freeze(value: object, what: str = "value") -> Any:
    """Return an immutable deep copy of the JSON ``value``.

    ``what`` names the value in the error message (for example ``"metadata"`` or ``"output[2]"``); the message
    also gives the path inside it, such as ``metadata['k'][3]``.

    Raises:
        InvalidArgument: ``value`` is not JSON (a non-``str`` key, a set, bytes, a non-finite float, an
            object, a string with a lone surrogate, an int of more than 1,000 digits) or is nested more than 64
            levels deep.
    """
    try:
        return _freeze(value, 0)
    except _NotJSON as problem:
        path = "".join(reversed(problem.path))
        if len(path) > _MAX_PATH:  # 64 levels of long keys: keep both ends of the path
            path = f"{path[: _MAX_PATH // 2]}…{path[-_MAX_PATH // 2 :]}"
        raise InvalidArgument(f"{what}{path} {problem.reason}") from None


_SURROGATE_REASON = "holds a lone surrogate (such as '\\ud83d'), which UTF-8 and so JSON text cannot encode"


class _NotJSON(Exception):
    """Raised inside ``_freeze``; collects the path to the bad value on its way out (cheaply, only on error)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str] = []


def _freeze(value: Any, depth: int) -> Any:  # noqa: PLR0911, PLR0912 - one branch per JSON type, inline for speed
    # Exact type checks first: they are what JSON from a caller almost always is, and they are much cheaper than
    # isinstance checks against the Mapping ABC.
    cls = value.__class__
    if cls is str:
        if value.isascii() or not has_lone_surrogate(value):
            return value
        raise _NotJSON(_SURROGATE_REASON)
    if cls is int:
        if -_INT_BOUND < value < _INT_BOUND:
            return value
        raise _NotJSON(f"is {describe(value)}, too large for JSON text (at most {_INT_DIGITS} digits)")
    if value is None or cls is bool or cls is FrozenDict:
        # A FrozenDict was validated when it was built, and nothing can change it since.
        return value
    if cls is float:
        if value - value == 0.0:  # finite (nan and inf fail this)
            return value
        raise _NotJSON(f"must be a finite number, not {describe(value)}")
    if depth >= MAX_DEPTH:
        raise _NotJSON(f"is nested more than {MAX_DEPTH} levels deep")
    if cls is dict or (cls is not list and cls is not tuple and isinstance(value, Mapping)):
        frozen: dict[str, Any] = {}
        for key, item in value.items():
            if key.__class__ is not str and not isinstance(key, str):
                raise _NotJSON(f"has a non-string key {describe(key)}")
            if not key.isascii() and has_lone_surrogate(key):
                raise _NotJSON(f"has a key {describe(key, 40)} that {_SURROGATE_REASON}")
            if (item.__class__ is str and item.isascii()) or item is None or item.__class__ is bool:
                frozen[key] = item  # the commonest values, without a call
                continue
            try:
                frozen[key] = _freeze(item, depth + 1)
            except _NotJSON as problem:
                problem.path.append(f"[{describe(key, 40)}]")
                raise
        return _of_frozen(frozen)
    if cls is list or cls is tuple or isinstance(value, (list, tuple)):
        items = []
        for index, item in enumerate(value):
            try:
                items.append(_freeze(item, depth + 1))
            except _NotJSON as problem:  # noqa: PERF203 - free unless raised (3.11+); builds the error path
                problem.path.append(f"[{index}]")
                raise
        return tuple(items)
    return _freeze_scalar_subclass(value)


def _freeze_scalar_subclass(value: Any) -> Any:
    if isinstance(value, str):  # a str subclass (an enum member, say) is kept as given
        if has_lone_surrogate(value):
            raise _NotJSON(_SURROGATE_REASON)
        return value
    if isinstance(value, int):  # int subclasses (IntEnum) become plain ints, so they thaw as JSON numbers
        return _freeze(int(value), 0)
    if isinstance(value, float):
        return _freeze(float(value), 0)
    raise _NotJSON(f"must be JSON, not {type(value).__name__}")


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
        return {key: thaw(item) for key, item in value.items()}
    if cls is tuple:
        return [thaw(item) for item in value]
    return value


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def to_json_text(value: Any) -> str:
    """Serialize frozen JSON compactly (used by durable backends and for size accounting).

    ``json`` takes frozen values as they are (a ``FrozenDict`` is a ``dict``, a tuple becomes an array): no copy.
    One encoder serves every call (``json.dumps`` with options builds a new one each time).
    """
    return _ENCODER.encode(value)
