"""Checking the ``timeout`` and ``interval`` arguments of every blocking call, in one place."""

from __future__ import annotations

import threading

from ._checks import describe
from .errors import InvalidArgument

__all__ = ["check_interval", "check_timeout"]


def check_timeout(value: object, what: str = "timeout") -> float | None:
    """Return a timeout in seconds: ``None`` waits forever, ``0`` only tries.

    A timeout too long for the platform's waits (``inf``, ``1e300``) means waiting forever, as ``None`` does.

    Raises:
        InvalidArgument: the value is negative, NaN, or not a number.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(f"{what} must be None or a number of seconds >= 0, not {type(value).__name__}")
    try:
        seconds = float(value)
    except OverflowError:  # an int too large for a float: longer than anyone will wait
        return None
    if not seconds >= 0:
        raise InvalidArgument(f"{what} must be None or a number of seconds >= 0, not {describe(value)}")
    return None if seconds >= threading.TIMEOUT_MAX else seconds


def check_interval(value: object, what: str = "interval") -> float:
    """Return a positive, finite number of seconds that ``threading`` waits accept.

    Raises:
        InvalidArgument: the value is not a positive number below ``threading.TIMEOUT_MAX``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(f"{what} must be a positive number of seconds, not {type(value).__name__}")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = float("inf")
    if not 0 < seconds < threading.TIMEOUT_MAX:
        raise InvalidArgument(
            f"{what} must be a positive number of seconds below {threading.TIMEOUT_MAX}, not {describe(value)}"
        )
    return seconds
