"""Bounded retention: TTL and capacity settings, the rules every backend applies, and the idle-store sweeper.

The rules (the same for every backend; the docs' Retention page explains them for users):

- **Expiry.** A record expires ``ttl`` seconds after it was created (the store's ``ttl``, or the ``ttl`` passed
  to ``create`` for that record). An expired record is invisible to every method at once; its memory is
  reclaimed by amortized sweeping during writes, by ``store.sweep()``, or by a :class:`Sweeper` thread.
- **Chains stay alive.** Continuing a response (``create(previous_response_id=...)``) restarts the expiry of
  every response in its chain (each with its own ttl) and marks them all as just used, so a conversation that is
  still in use never loses its beginning.
- **Capacity.** When a ``create`` would exceed ``max_records``, the least recently used *finished* record is
  evicted. Queued and in-progress records are never evicted; if every record is active, ``create`` raises
  :class:`~responsestore.StoreFull` and stores nothing.
- **Recency.** A record counts as used when it is created, changed, read by ``get`` or ``input_items``,
  included in ``chain``/``conversation`` (oldest first), or continued. ``list``, ``in`` and ``len`` do not count.
"""

from __future__ import annotations

import datetime
import logging
import math
import operator
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ._checks import check_int, describe
from ._json import to_json_text
from ._timeouts import check_interval
from .errors import InvalidArgument

if TYPE_CHECKING:
    from ._contract import BaseStore
    from ._records import ResponseRecord

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_RECORDS",
    "DEFAULT_TTL",
    "MAX_SWEEP_BACKOFF",
    "SWEEP_BATCH",
    "USE_STORE_TTL",
    "Retention",
    "StoreStats",
    "Sweeper",
    "SweeperStats",
    "check_max_bytes",
    "check_ttl",
    "record_size",
    "resize",
]

#: OpenAI keeps responses for 30 days.
DEFAULT_TTL = 30 * 24 * 3600.0

#: Enough for a busy server's recent history at a few KB a record (about 40 MB at 4 KB); see the docs.
DEFAULT_MAX_RECORDS = 10_000

#: How many expired records a write sweeps at most, so no single write pays for a large backlog.
SWEEP_BATCH = 16

#: The default ``max_bytes`` of the memory store: 1 GiB of records and event logs.
DEFAULT_MAX_BYTES = 1 << 30

#: ``create(ttl=...)`` left out: the record gets the store's ttl.
USE_STORE_TTL: Any = object()


def check_ttl(value: object, what: str = "ttl") -> float | None:
    """Return a TTL in seconds: a positive number or ``timedelta``; ``None`` means never expire.

    Raises:
        InvalidArgument: the value is not positive, not finite, or not a number or ``timedelta``.
    """
    if value is None:
        return None
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
    else:
        raise InvalidArgument(f"{what} must be seconds or a timedelta (or None), not {type(value).__name__}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidArgument(f"{what} must be positive and finite, not {describe(value)}")
    return seconds


def check_max_records(value: object) -> int | None:
    """Return ``max_records``: an int >= 1, or ``None`` for no cap.

    Raises:
        InvalidArgument: the value is not an int >= 1 or ``None``.
    """
    return check_int(value, "max_records", minimum=1, optional=True)


def check_max_bytes(value: object) -> int | None:
    """Return ``max_bytes``: an int >= 1, or ``None`` for no bound.

    Raises:
        InvalidArgument: the value is not an int >= 1 or ``None``.
    """
    return check_int(value, "max_bytes", minimum=1, optional=True)


@attrs.frozen(slots=True)
class Retention:
    """A store's retention settings.

    ``ttl`` seconds (``None``: never expire), ``max_records`` (``None``: no cap) and ``max_bytes`` (``None``: no
    bound on the bytes of the records and their event logs, as :func:`record_size` and the logs count them).
    """

    ttl: float | None = DEFAULT_TTL
    max_records: int | None = DEFAULT_MAX_RECORDS
    max_bytes: int | None = None

    @classmethod
    def from_arguments(cls, ttl: object, max_records: object, max_bytes: object = None) -> Retention:
        """Validate a store constructor's ``ttl``, ``max_records`` and ``max_bytes``.

        Raises:
            InvalidArgument: one is invalid.
        """
        return cls(ttl=check_ttl(ttl), max_records=check_max_records(max_records), max_bytes=check_max_bytes(max_bytes))

    def over(self, records: int, total_bytes: int) -> str | None:
        """Which bound a store of ``records`` records and ``total_bytes`` bytes is over (``None``: neither)."""
        if self.max_records is not None and records > self.max_records:
            return "max_records"
        if self.max_bytes is not None and total_bytes > self.max_bytes:
            return "max_bytes"
        return None

    def record_ttl(self, ttl: object) -> float | None:
        """The TTL of a new record: ``create``'s ``ttl`` argument, or the store's when it is left out."""
        return self.ttl if ttl is USE_STORE_TTL else check_ttl(ttl)


@attrs.frozen(slots=True)
class StoreStats:
    """Counts describing a store, taken as one consistent snapshot.

    ``records`` and ``by_status`` count visible records (expired ones are swept first). ``created``,
    ``deleted``, ``evicted`` and ``expired`` count events since the store was opened (for durable backends:
    since the database was created). ``records == created - deleted - evicted - expired`` always holds.
    ``bytes`` is what the visible records and their event logs take, as ``max_bytes`` counts them.
    """

    records: int
    by_status: Mapping[str, int]
    created: int
    deleted: int
    evicted: int
    expired: int
    #: The bytes the visible records and their event logs take, as ``max_bytes`` counts them.
    bytes: int = 0


@attrs.frozen(slots=True)
class SweeperStats:
    """What a :class:`Sweeper` has done so far, as one consistent snapshot.

    ``sweeps`` counts sweeps that succeeded and ``swept`` the records they removed; ``failures`` counts sweeps
    that raised, and ``consecutive_failures`` those since the last success (``0`` while all is well).
    ``last_error`` is the exception the latest failed sweep raised (``None`` if none has failed).
    """

    sweeps: int
    swept: int
    failures: int
    consecutive_failures: int
    last_error: Exception | None
    #: Responses whose lease had run out that the sweeps ended (``expire_leases``).
    leases_expired: int = 0


#: The longest a :class:`Sweeper` waits after failed sweeps (unless its interval is longer).
MAX_SWEEP_BACKOFF = 300.0

_logger = logging.getLogger("responsestore")


class Sweeper:
    """A daemon thread that calls ``store.sweep()`` and ``store.expire_leases()`` every ``interval`` seconds.

    For stores that go idle, and for responses whose runner died: each sweep also ends the queued and in-progress
    responses whose lease has run out (see :meth:`~responsestore.BaseStore.expire_leases`).

    Writes sweep a few expired records each, so a busy store needs no sweeper; an idle one keeps expired records
    in memory until something sweeps them. Stop it with :meth:`stop` (or use it as a context manager); stopping
    wakes the thread at once and waits for it to end.

    A failing sweep (a locked database, say) does not stop the thread: the error is logged, with its traceback,
    on the ``"responsestore"`` logger, counted in :meth:`stats`, and the next sweep waits twice as long as the
    last (``interval``, then ``2 * interval``, ``4 * interval``, ... up to :data:`MAX_SWEEP_BACKOFF` seconds, or
    ``interval`` if that is longer). The first sweep that succeeds again restores the normal interval.

    Raises:
        InvalidArgument: ``interval`` is not a positive number of seconds that ``threading`` can wait.
    """

    def __init__(self, store: BaseStore, interval: float = 60.0) -> None:
        self._interval = check_interval(interval)
        self._store = store
        self._stopping = threading.Event()
        self._mutex = threading.Lock()  # makes stats() one snapshot; only the thread writes the counters
        self._sweeps = 0
        self._swept = 0
        self._leases_expired = 0
        self._failures = 0
        self._consecutive_failures = 0
        self._last_error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name="responsestore-sweeper", daemon=True)
        self._thread.start()

    def _delay(self) -> float:
        """Seconds to wait before the next sweep: the interval, doubled for each failure in a row, bounded."""
        failures = self._consecutive_failures
        if not failures:
            return self._interval
        ceiling = max(self._interval, MAX_SWEEP_BACKOFF)
        return min(self._interval * 2.0 ** min(failures, 64), ceiling)

    def _run(self) -> None:
        while not self._stopping.wait(self._delay()):
            self._sweep_once()

    def _sweep_once(self) -> None:
        try:
            swept = self._store.sweep()
            ended = self._store.expire_leases()
        except Exception as error:
            with self._mutex:
                self._failures += 1
                self._consecutive_failures += 1
                self._last_error = error
                failures = self._consecutive_failures
            _logger.error(
                "responsestore Sweeper: sweep of a %s failed (%d in a row); retrying in %.3g seconds",
                type(self._store).__name__,
                failures,
                self._delay(),
                exc_info=error,
            )
        else:
            with self._mutex:
                self._sweeps += 1
                self._swept += swept
                self._leases_expired += ended
                self._consecutive_failures = 0

    @property
    def swept(self) -> int:
        """How many expired records this sweeper has removed so far."""
        with self._mutex:
            return self._swept

    def stats(self) -> SweeperStats:
        """Counts of successful sweeps, records swept and failed sweeps so far (one consistent snapshot)."""
        with self._mutex:
            return SweeperStats(
                sweeps=self._sweeps,
                swept=self._swept,
                leases_expired=self._leases_expired,
                failures=self._failures,
                consecutive_failures=self._consecutive_failures,
                last_error=self._last_error,
            )

    @property
    def running(self) -> bool:
        """Whether the sweeper thread is still alive (it keeps running through failed sweeps until stopped)."""
        return self._thread.is_alive()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop the thread and wait up to ``timeout`` seconds for it to end.

        It wakes the thread at once, even in the middle of a wait after failed sweeps; a sweep already running
        finishes first.
        """
        self._stopping.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __enter__(self) -> Sweeper:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------- sizes

#: What a record's scalar fields (times, status, version, flags, keys) take in its JSON, roughly; added to the
#: sizes of its text and JSON fields.
RECORD_OVERHEAD = 256

_TEXT_FIELDS = ("id", "model", "instructions", "previous_response_id", "owner", "lease_holder")
_JSON_FIELDS = ("input", "output", "tools", "metadata", "usage", "error", "incomplete_details", "extra")
_texts_of = operator.attrgetter(*_TEXT_FIELDS)
_jsons_of = operator.attrgetter(*_JSON_FIELDS)


def _text_size(value: str | None) -> int:
    if value is None:
        return 0
    # An owner may hold a lone surrogate (the only text field that may): count it as UTF-8 would, 3 bytes.
    return len(value) if value.isascii() else len(value.encode(errors="surrogatepass"))


def _json_size(value: Any) -> int:
    if not value:
        return 0
    text = to_json_text(value)
    return len(text) if text.isascii() else len(text.encode())


def record_size(record: ResponseRecord) -> int:
    """The bytes a record counts for against ``max_bytes``, the same on every backend.

    Its text and JSON fields as UTF-8 JSON, plus :data:`RECORD_OVERHEAD` for the rest, whatever the backend stores
    on disk or in memory.
    """
    size = RECORD_OVERHEAD
    for value in _texts_of(record):
        if value is not None:
            size += _text_size(value)
    for value in _jsons_of(record):
        if value:
            size += _json_size(value)
    return size


def resize(old: ResponseRecord, old_size: int, new: ResponseRecord) -> int:
    """:func:`record_size` of ``new``, from that of ``old``: only the fields that changed are measured again."""
    size = old_size
    for before, after in zip(_texts_of(old), _texts_of(new), strict=True):
        if before is not after:
            size += _text_size(after) - _text_size(before)
    for before, after in zip(_jsons_of(old), _jsons_of(new), strict=True):
        if before is not after:
            size += _json_size(after) - _json_size(before)
    return size
