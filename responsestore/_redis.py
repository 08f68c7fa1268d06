"""``RedisStore``: a backend on a Redis server (or one slot of a Redis Cluster), shared by every process and host.

Layout: every key of a store starts with ``{PREFIX}:``, so all of them share one hash tag and live in one
cluster slot (one store = one slot; spread a deployment over a cluster by running several prefixes). ``K`` below
is a record's key: its owner's encoding, length-prefixed, then its id, so every ``(owner, id)`` has its own.

- ``{P}:r:K`` (hash): one record. ``j`` its JSON (:meth:`ResponseRecord.to_dict`), ``v`` version, ``st``
  status, ``s`` creation sequence, ``m`` its member in the owner's order index, ``ok`` its owner's encoding,
  ``p`` its ``previous_response_id``, ``t`` its ttl and ``e`` its absolute expiry (store clock), ``n`` and
  ``b`` the number and bytes of its events.
- ``{P}:e:K`` (list): the record's event log, one JSON text per event.
- ``{P}:o:OWNER`` (sorted set, all scores 0): the owner's records in creation order. Each member is the
  order-preserving hex of ``created_at``, then the hex creation sequence, then the id, so lexicographic ranges
  (``ZRANGE ... BYLEX``) walk ``(created_at, seq)`` order and a cursor step is O(log n).
- ``{P}:x`` (sorted set by expiry) and ``{P}:u`` (finished records by recency tick): sweeping and eviction.
- ``{P}:t`` (hash ``K`` -> order member) and ``{P}:q`` (sorted set by removal number): where the last
  ``min(10_000, max_records)`` removed records stood, for cursors.
- ``{P}:c`` (hash): lifetime counts, one count per status, the recency tick and the creation sequence.
- ``{P}:w``: the pub/sub channel every write publishes the written record's key on.

Operations: every write of the contract (``_put_new`` with its sweep, refresh and capacity rule, ``_swap`` with
its version and event-count check and its event, ``_append``, ``_remove``, ``_sweep``, queued recency marks) is
one call of one Lua script (``EVALSHA``, loaded again on ``NOSCRIPT``), atomic on the server. The script stores,
indexes and compares; the rules stay in Python. A refused write changes nothing visible: before it refuses,
a script may only apply this process's queued recency marks and reclaim expired records, as any write does. A
``get`` is one ``HMGET``; a chain, a page, a record with its events and the stats are each one read-only script
call (one consistent snapshot).

Expiry: the store's clock decides, as on every backend (the clock may be a fake one in tests), so the expiry
index ``{P}:x`` is authoritative and written by the same script as the data. Redis key expiry is not used: a key
Redis deleted on its own would leave index entries and counters behind, and a store clock that is not the
server's wall clock (a fake clock, or skew between hosts) would make Redis delete records the store still
shows. Expired records are invisible at once and are reclaimed by the sweep every write does, by
:meth:`~responsestore.BaseStore.sweep`, or by a :class:`~responsestore.Sweeper`.

Recency without writes on reads: like the SQLite backend, a read that uses a finished record queues its mark in
this process (at most :data:`TOUCH_LOG`) and the next write of this process sends them first, in the same script.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
import redis.exceptions
from redis.backoff import NoBackoff
from redis.retry import Retry

from ._checks import check_text, describe
from ._contract import DEFAULT_MAX_CHAIN_DEPTH, TOUCH_LOG, BaseStore, Clock, Stored, cursor_memory
from ._events import DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_EVENTS
from ._json import FrozenDict, freeze_object, thaw
from ._owners import encodable as _encodable
from ._owners import owner_key as _owner_key
from ._owners import owner_of as _owner_of
from ._paging import Page, PageQuery, paginate_records, unknown_cursor
from ._records import ResponseRecord, ResponseStatus
from ._retention import DEFAULT_MAX_RECORDS, DEFAULT_TTL, SWEEP_BATCH, StoreStats
from ._waiting import Subscription, Waker
from .errors import InvalidArgument, ResponseExists, ResponseStoreError, StorageError, StoreFull

if TYPE_CHECKING:
    import redis.cluster

__all__ = ["DEFAULT_POLL_INTERVAL", "DEFAULT_SOCKET_TIMEOUT", "RedisStore"]

_T = TypeVar("_T")

#: Seconds a call waits for the server (to connect, and for each reply) when the store makes its own client
#: (:meth:`RedisStore.from_url`) before it raises :class:`~responsestore.StorageError`.
DEFAULT_SOCKET_TIMEOUT = 5.0

#: Seconds between re-checks while ``wait``/``stream`` wait: pub/sub wakes them at once, but may drop messages.
DEFAULT_POLL_INTERVAL = 0.1

_STATUSES = tuple(status.value for status in ResponseStatus)
_TERMINAL = tuple(status.value for status in ResponseStatus if status.is_terminal)
_MAX_LIST_INDEX = 2**62
_SCAN_BATCH = 256
#: Parsed records kept per store (the newest version seen of each key).
_CACHE_RECORDS = 4096

# ---------------------------------------------------------------------------------------------- the scripts
#
# KEYS[1] is the store's counters key "{P}:c" (it routes the call to the store's slot); every other key is named
# from it. ARGV[1] is the operation, ARGV[2] the store clock's reading. Numbers go to Redis as the strings Python
# wrote (a Lua number turned into a string keeps only 14 digits), or through string.format("%.17g").

_LUA_COMMON = """
local C = KEYS[1]
local B = string.sub(C, 1, -2)
local NOW = ARGV[2]
local now = tonumber(NOW)
local MEMORY = __MEMORY__
local STATUSES = {__STATUSES__}
local TERMINAL = {__TERMINAL__}
local removed = {}

local function visible(e)
  return (not e) or tonumber(e) > now
end

local function count()
  local counts = redis.call('HMGET', C, unpack(STATUSES))
  local n = 0
  for i = 1, #counts do n = n + (tonumber(counts[i]) or 0) end
  return n
end
"""

_LUA_WRITE = """
local function unlink(k, why)
  local rk = B .. 'r:' .. k
  local f = redis.call('HMGET', rk, 'st', 'm', 'ok')
  redis.call('DEL', rk, B .. 'e:' .. k)
  redis.call('ZREM', B .. 'x', k)
  redis.call('ZREM', B .. 'u', k)
  if f[1] then
    redis.call('ZREM', B .. 'o:' .. f[3], f[2])
    redis.call('HINCRBY', C, f[1], -1)
    redis.call('HINCRBY', C, why, 1)
    redis.call('HSET', B .. 't', k, f[2])
    local n = redis.call('HINCRBY', C, 'removals', 1)
    redis.call('ZADD', B .. 'q', n, k)
    if redis.call('ZCARD', B .. 'q') > MEMORY then
      local oldest = redis.call('ZPOPMIN', B .. 'q')
      redis.call('HDEL', B .. 't', oldest[1])
    end
  end
  removed[#removed + 1] = k
  redis.call('PUBLISH', B .. 'w', k)
end

local function sweep(limit)
  local ks
  if limit then
    ks = redis.call('ZRANGE', B .. 'x', '-inf', NOW, 'BYSCORE', 'LIMIT', 0, limit)
  else
    ks = redis.call('ZRANGE', B .. 'x', '-inf', NOW, 'BYSCORE')
  end
  for _, k in ipairs(ks) do unlink(k, 'expired') end
  return #ks
end

local function used(k)
  local tick = redis.call('HINCRBY', C, 'tick', 1)
  redis.call('ZADD', B .. 'u', tick, k)
end

local function reply(code, value)
  local out = {code, value}
  for i = 1, #removed do out[#out + 1] = removed[i] end
  return out
end

local touches = tonumber(ARGV[3])
for i = 4, 3 + touches do
  local st = redis.call('HGET', B .. 'r:' .. ARGV[i], 'st')
  if st and TERMINAL[st] then used(ARGV[i]) end
end
local a = 4 + touches
local op = ARGV[1]

if op == 'put' then
  local k, ok, id, mhead, text, status = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
  local ttl, expires, prev, max, created = ARGV[a + 6], ARGV[a + 7], ARGV[a + 8], ARGV[a + 9], ARGV[a + 10]
  local nkeep = tonumber(ARGV[a + 11])
  sweep(__BATCH__)
  local rk = B .. 'r:' .. k
  local stale = redis.call('HMGET', rk, 'st', 'e')
  if stale[1] then
    if visible(stale[2]) then return reply('exists', 0) end
    unlink(k, 'expired')
  end
  local spared = {}
  for i = 0, nkeep - 1 do
    local kk, version = ARGV[a + 12 + 2 * i], ARGV[a + 13 + 2 * i]
    local f = redis.call('HMGET', B .. 'r:' .. kk, 'v', 'e')
    if f[1] ~= version or not visible(f[2]) then return reply('changed', 0) end
    spared[kk] = true
  end
  local victims = {}
  if max ~= '' and count() + 1 > tonumber(max) then
    sweep(nil)
    local need = count() + 1 - tonumber(max)
    if need > 0 then
      local lru = redis.call('ZRANGE', B .. 'u', 0, need + nkeep - 1)
      for _, kk in ipairs(lru) do
        if #victims < need and not spared[kk] then victims[#victims + 1] = kk end
      end
      if #victims < need then return reply('full', 0) end
    end
  end
  for i = nkeep - 1, 0, -1 do
    local kk = ARGV[a + 12 + 2 * i]
    local kr = B .. 'r:' .. kk
    local f = redis.call('HMGET', kr, 't', 'st')
    if f[1] then
      local e = string.format('%.17g', tonumber(created) + tonumber(f[1]))
      redis.call('HSET', kr, 'e', e)
      redis.call('ZADD', B .. 'x', e, kk)
    end
    if TERMINAL[f[2]] then used(kk) end
  end
  for _, kk in ipairs(victims) do unlink(kk, 'evicted') end
  if redis.call('HDEL', B .. 't', k) == 1 then redis.call('ZREM', B .. 'q', k) end
  local seq = redis.call('HINCRBY', C, 'seq', 1)
  redis.call('HINCRBY', C, 'created', 1)
  redis.call('HINCRBY', C, status, 1)
  local m = mhead .. string.format('%016x', seq) .. id
  redis.call('HSET', rk, 'j', text, 'v', '1', 'st', status, 's', seq, 'm', m, 'ok', ok, 'n', '0', 'b', '0')
  if ttl ~= '' then
    redis.call('HSET', rk, 't', ttl, 'e', expires)
    redis.call('ZADD', B .. 'x', expires, k)
  end
  if prev ~= '' then redis.call('HSET', rk, 'p', prev) end
  redis.call('ZADD', B .. 'o:' .. ok, 0, m)
  redis.call('SADD', B .. 'owners', ok)
  redis.call('PUBLISH', B .. 'w', k)
  return reply('ok', seq)
end

if op == 'swap' or op == 'append' then
  local k, version, events = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  if op == 'swap' then sweep(__BATCH__) end
  local rk = B .. 'r:' .. k
  local f = redis.call('HMGET', rk, 'v', 'n', 'e', 'st')
  if f[1] ~= version or f[2] ~= events or not visible(f[3]) then return reply('changed', 0) end
  local event, size = ARGV[a + 3], ARGV[a + 4]
  if event ~= '' then
    redis.call('RPUSH', B .. 'e:' .. k, event)
    redis.call('HINCRBY', rk, 'n', 1)
    redis.call('HINCRBY', rk, 'b', size)
  end
  if op == 'swap' then
    local text, new_version, status = ARGV[a + 5], ARGV[a + 6], ARGV[a + 7]
    redis.call('HSET', rk, 'j', text, 'v', new_version, 'st', status)
    if status ~= f[4] then
      redis.call('HINCRBY', C, f[4], -1)
      redis.call('HINCRBY', C, status, 1)
    end
    if TERMINAL[status] then used(k) end  -- an active record is never evicted: no recency
  end
  redis.call('PUBLISH', B .. 'w', k)
  return reply('ok', 0)
end

if op == 'remove' then
  local k, version = ARGV[a], ARGV[a + 1]
  sweep(__BATCH__)
  local f = redis.call('HMGET', B .. 'r:' .. k, 'v', 'e')
  if f[1] ~= version or not visible(f[2]) then return reply('changed', 0) end
  unlink(k, 'deleted')
  return reply('ok', 0)
end

if op == 'sweep' then
  local limit = ARGV[a]
  if limit == '' then limit = nil end
  return reply('ok', sweep(limit))
end

if op == 'flush' then
  return reply('ok', 0)
end

return redis.error_reply('responsestore: unknown operation ' .. tostring(op))
"""

_LUA_READ = """
local op = ARGV[1]

if op == 'chain' then
  local kp, id, limit = ARGV[3], ARGV[4], tonumber(ARGV[5])
  local out, seen = {}, {}
  while id and not seen[id] and #out < 3 * limit do
    seen[id] = true  -- a loop (made by deleting and re-creating an id) ends the walk at its first repeat
    local f = redis.call('HMGET', B .. 'r:' .. kp .. id, 's', 'v', 'j', 'e', 'p')
    if not f[1] or not visible(f[4]) then break end
    out[#out + 1] = f[1]
    out[#out + 1] = f[2]
    out[#out + 1] = f[3]
    id = f[5]
  end
  return out
end

if op == 'page' then
  local ok, kp, kind, cursor, descending, batch = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
  local start
  if kind == 'id' then
    start = redis.call('HGET', B .. 'r:' .. kp .. cursor, 'm')
    if not start then start = redis.call('HGET', B .. 't', kp .. cursor) end
    if not start then return {'unknown'} end
  elseif kind == 'member' then
    start = cursor
  end
  local members
  if descending == '1' then
    members = redis.call('ZRANGE', B .. 'o:' .. ok, start and ('(' .. start) or '+', '-', 'BYLEX', 'REV',
      'LIMIT', 0, batch)
  else
    members = redis.call('ZRANGE', B .. 'o:' .. ok, start and ('(' .. start) or '-', '+', 'BYLEX',
      'LIMIT', 0, batch)
  end
  local out = {'ok', #members > 0 and members[#members] or '', tostring(#members)}
  for _, m in ipairs(members) do
    local f = redis.call('HMGET', B .. 'r:' .. kp .. string.sub(m, 33), 's', 'v', 'j', 'e')
    if f[1] and visible(f[4]) then
      out[#out + 1] = f[1]
      out[#out + 1] = f[2]
      out[#out + 1] = f[3]
    end
  end
  return out
end

if op == 'events' then
  local k, after = ARGV[3], ARGV[4]
  local f = redis.call('HMGET', B .. 'r:' .. k, 's', 'v', 'j', 'e')
  if not f[1] or not visible(f[4]) then return {} end
  local out = {f[1], f[2], f[3]}
  local events = redis.call('LRANGE', B .. 'e:' .. k, after, -1)
  for _, event in ipairs(events) do out[#out + 1] = event end
  return out
end

if op == 'stats' then
  local fields = {'created', 'deleted', 'evicted', 'expired', unpack(STATUSES)}
  local out = redis.call('HMGET', C, unpack(fields))
  for i = 1, #out do out[i] = tonumber(out[i]) or 0 end
  local due = redis.call('ZRANGE', B .. 'x', '-inf', NOW, 'BYSCORE')
  for _, k in ipairs(due) do
    local st = redis.call('HGET', B .. 'r:' .. k, 'st')
    if st then out[#out + 1] = st end
  end
  return out
end

return redis.error_reply('responsestore: unknown operation ' .. tostring(op))
"""


def _lua(body: str, memory: int) -> str:
    """A script's text: the common part, then ``body``, with the constants (``memory`` tombstones) filled in."""
    text = _LUA_COMMON + body
    for name, value in (
        ("__BATCH__", str(SWEEP_BATCH)),
        ("__MEMORY__", str(memory)),
        ("__STATUSES__", ", ".join(f"'{status}'" for status in _STATUSES)),
        ("__TERMINAL__", ", ".join(f"{status} = true" for status in _TERMINAL)),
    ):
        text = text.replace(name, value)
    return text


# ---------------------------------------------------------------------------------------------- encodings


def _key_prefix(owner_key: str) -> str:
    """What every record key of this owner starts with: the owner's encoding, length-prefixed."""
    return f"{len(owner_key)}:{owner_key}"


def _split_key(key: str) -> tuple[str | None, str]:
    """``(owner, id)`` of a record key."""
    length, _, rest = key.partition(":")
    size = int(length)
    return _owner_of(rest[:size]), rest[size:]


def _order_head(created_at: float) -> str:
    """16 hex digits that sort as ``created_at`` does (IEEE bits, sign-flipped)."""
    (bits,) = struct.unpack(">Q", struct.pack(">d", created_at))
    bits = (~bits & 0xFFFFFFFFFFFFFFFF) if bits >> 63 else bits | (1 << 63)
    return f"{bits:016x}"


def _json_text(value: Any) -> str:
    """Compact JSON text; strings with lone surrogates (not UTF-8 encodable) fall back to ASCII escapes."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if text.isascii() or _encodable(text):
        return text
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _text(value: Any) -> str:
    """A reply value as text (clients may or may not decode replies)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    raise TypeError(f"unexpected reply {type(value).__name__}")


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(_text(value))
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {number!r}")
    return number


def _check_prefix(prefix: object) -> str:
    text = check_text(prefix, "prefix")
    if "{" in text or "}" in text or len(text) > 200:
        raise InvalidArgument(
            f"prefix must not contain '{{' or '}}' and be at most 200 characters, not {describe(text)}"
        )
    return text


def _check_seconds(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(f"{name} must be a number of seconds, not {type(value).__name__}")
    seconds = float(value)
    if not (math.isfinite(seconds) and 0 < seconds <= 3600):
        raise InvalidArgument(f"{name} must be more than 0 and at most 3600 seconds, not {describe(value)}")
    return seconds


# ---------------------------------------------------------------------------------------------- the store


class RedisStore(BaseStore):
    """A store of OpenAI Responses API objects on a Redis server, shared by every process and host that uses it.

    Same API and semantics as :class:`ResponseStore`. Every write is one atomic Lua script on the server, so
    writers in any number of processes and hosts never lose an update; a record written through one
    ``RedisStore`` is readable through every other as soon as the writing call returns. ``wait`` and ``stream``
    are woken by writes from anywhere through Redis pub/sub, and re-check every ``poll_interval`` seconds in case
    a notification was lost.

    All keys of one store share the hash tag ``{prefix}``, so on a Redis Cluster one store lives in one slot;
    run several stores (prefixes) to spread a deployment over the cluster. Several stores may share one server
    by prefix; they never see each other's records.

    A failing server (down, unreachable, stopped, or slower than the client's socket timeout) makes every call
    raise :class:`StorageError`; the same store object works again once the server answers. A write whose reply
    was lost (a timeout or a dropped connection after the command was sent) may or may not have happened: read
    the record again before retrying it.

    Args:
        client: A ``redis.Redis`` or ``redis.cluster.RedisCluster`` client. Its socket timeout bounds every
            call; give it one (``socket_timeout=5``), since redis-py waits forever by default. The store never
            closes a client it was given.
        prefix: What every key of this store starts with (inside a hash tag: ``{prefix}:...``).
        ttl, max_records, clock, max_chain_depth, max_events, max_event_bytes: As for
            :class:`ResponseStore`. Retention settings belong to each store object, not to the server: give
            every process the same ones.
        poll_interval: Seconds between re-checks while waiting (default 0.1).
    """

    def __init__(
        self,
        client: redis.Redis | redis.cluster.RedisCluster,
        *,
        prefix: str = "rs",
        ttl: float | datetime.timedelta | None = DEFAULT_TTL,
        max_records: int | None = DEFAULT_MAX_RECORDS,
        clock: Clock = time.time,
        max_chain_depth: int = DEFAULT_MAX_CHAIN_DEPTH,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        super().__init__(
            ttl=ttl,
            max_records=max_records,
            clock=clock,
            max_chain_depth=max_chain_depth,
            max_events=max_events,
            max_event_bytes=max_event_bytes,
        )
        if not hasattr(client, "evalsha") or not hasattr(client, "register_script"):
            raise InvalidArgument(
                f"client must be a redis.Redis or redis.cluster.RedisCluster, not {type(client).__name__}"
            )
        self.prefix = _check_prefix(prefix)
        self._poll_interval = _check_seconds(poll_interval, "poll_interval")
        self.client = client
        self._owns_client = False
        self._base = "{" + self.prefix + "}:"
        self._counters = self._base + "c"
        self._channel = self._base + "w"
        self._cursor_memory = cursor_memory(self.retention.max_records)
        self._write_script = client.register_script(_lua(_LUA_WRITE, self._cursor_memory))
        self._read_script = client.register_script(_lua(_LUA_READ, self._cursor_memory))
        self._closed = False
        self._touches: deque[str] = deque(maxlen=TOUCH_LOG)  # record keys read since this process's last write
        self._cache: dict[str, tuple[int, int, ResponseRecord]] = {}  # key -> (seq, version, record)
        self._cache_mutex = threading.Lock()
        self._listener_mutex = threading.Lock()
        self._listener: threading.Thread | None = None
        self._stop = threading.Event()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisStore:
        """``redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?prefix=NAME]``, or ``rediss://`` for TLS.

        Other query parameters go to ``redis.Redis.from_url``. The client this makes has a socket timeout of
        :data:`DEFAULT_SOCKET_TIMEOUT` seconds (``?socket_timeout=`` overrides it) and no automatic retries (a
        retried write could apply twice); the store closes it in :meth:`close`. Keyword arguments go to the
        constructor (``prefix=`` wins over the URL's).

        Raises:
            InvalidArgument: the URL is malformed.
        """
        if not isinstance(url, str):
            raise InvalidArgument(f"url must be a string, not {type(url).__name__}")
        shown = _without_password(url)
        try:
            parts = urlsplit(url)
            query = parse_qsl(parts.query, keep_blank_values=True)
        except ValueError as exc:
            raise InvalidArgument(f"malformed Redis URL {shown!r}: {exc}") from None
        if parts.scheme.lower() not in ("redis", "rediss") or not parts.hostname:
            raise InvalidArgument(f"a Redis URL is 'redis://[:PASSWORD@]HOST:PORT/DB?prefix=NAME', not {shown!r}")
        if parts.path.strip("/") and not parts.path.strip("/").isdigit():
            raise InvalidArgument(f"the database of a Redis URL is a number, not {parts.path.strip('/')[:50]!r}")
        options = dict(query)
        prefix = options.pop("prefix", None)
        if prefix is not None:
            kwargs.setdefault("prefix", prefix)
        client_options: dict[str, Any] = {"retry": Retry(NoBackoff(), 0)}
        if "socket_timeout" not in options:
            client_options["socket_timeout"] = DEFAULT_SOCKET_TIMEOUT
        if "socket_connect_timeout" not in options:
            client_options["socket_connect_timeout"] = DEFAULT_SOCKET_TIMEOUT
        rest = urlunsplit((parts.scheme.lower(), parts.netloc, parts.path, urlencode(options), parts.fragment))
        try:
            client = redis.Redis.from_url(rest, **client_options)
        except (ValueError, TypeError, redis.exceptions.RedisError) as exc:
            raise InvalidArgument(f"malformed Redis URL {shown!r}: {exc}") from None
        try:
            store = cls(client, **kwargs)
        except BaseException:
            client.close()
            raise
        store._owns_client = True
        return store

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<RedisStore {self._where()} prefix={self.prefix!r} {state}>"

    def _where(self) -> str:
        try:
            kwargs = self.client.get_connection_kwargs()
            return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"
        except Exception:  # noqa: BLE001 - a cluster client, or another client shape: name what we can
            return type(self.client).__name__

    def __enter__(self) -> RedisStore:
        return self

    @property
    def poll_interval(self) -> float:
        """Seconds between re-checks while waiting: a pub/sub notification may be lost."""
        return self._poll_interval

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    def close(self) -> None:
        """Stop using the server; later calls raise :class:`StorageError`. Idempotent.

        Recency marks of reads not yet written are written first, if the server answers. Threads waiting in
        ``wait``/``stream`` are woken and get :class:`StorageError`. A client made by :meth:`from_url` is closed;
        one given to the constructor is left open. Nothing stored is touched.
        """
        if self._closed:
            return
        if self._touches:
            with contextlib.suppress(StorageError):
                self._write("flush", [])
        self._closed = True
        self._stop.set()
        if self._owns_client:
            with contextlib.suppress(Exception):  # closing a client of a dead server may fail; nothing to do
                self.client.close()
        self._waiters.wake_all()

    # ------------------------------------------------------------------ calls and errors

    def _closed_error(self) -> StorageError:
        return StorageError(f"{self!r} is closed")

    def _call(self, action: Callable[[], _T]) -> _T:
        """Run one command or script call, turning every redis-py error into :class:`StorageError`."""
        if self._closed:
            raise self._closed_error()
        try:
            return action()
        except (redis.exceptions.RedisError, OSError) as exc:
            if self._closed:
                raise self._closed_error() from exc
            raise StorageError(f"Redis error in {self!r}: {type(exc).__name__}: {exc}"[:600]) from exc
        except Exception as exc:
            if self._closed:  # close() took the client away under this call: redis-py fails in its own ways
                raise self._closed_error() from exc
            raise

    def _damaged(self, what: str, exc: BaseException) -> StorageError:
        return StorageError(f"{self!r} is damaged: {what} cannot be read ({type(exc).__name__}: {exc})"[:500])

    def _write(self, op: str, args: Sequence[Any]) -> tuple[str, int]:
        """Run the write script's ``op`` (first sending queued recency marks); wake waiters of removed records."""
        now = self._now()
        touches: list[str] = []
        with contextlib.suppress(IndexError):  # another thread took the last ones
            while self._touches:
                touches.append(self._touches.popleft())
        argv: list[Any] = [op, repr(now), len(touches), *touches, *args]
        try:
            reply = self._call(lambda: self._write_script(keys=[self._counters], args=argv))
        except BaseException:
            self._touches.extendleft(reversed(touches))  # not written: keep them for the next write, in order
            raise
        try:
            code = _text(reply[0])
            value = int(_text(reply[1]))
            gone = [_text(key) for key in reply[2:]]
        except (TypeError, ValueError, IndexError) as exc:
            raise self._damaged("a script's reply", exc) from exc
        for key in gone:
            self._forget(key)
            try:
                owner, id = _split_key(key)
            except (ValueError, TypeError):
                continue
            self._notify(owner, id)
        return code, value

    def _read(self, owner: str | None, id: str) -> Stored | None:
        found = self._fetch(owner, id)
        if found is None:
            return None
        record, _, events, size = found
        return Stored(record, events, size)

    # ------------------------------------------------------------------ the parse cache

    def _record(self, key: str, seq: Any, version: Any, text: Any) -> ResponseRecord:
        try:
            s, v = int(_text(seq)), int(_text(version))
        except (TypeError, ValueError) as exc:
            raise self._damaged(f"the record {key!r}", exc) from exc
        hit = self._cache.get(key)
        if hit is not None and hit[0] == s and hit[1] == v:
            return hit[2]
        try:
            record = ResponseRecord.from_dict(json.loads(_text(text)))
        except (ValueError, TypeError, KeyError, ResponseStoreError) as exc:
            raise self._damaged(f"the record {key!r}", exc) from exc
        if record.version != v:
            raise self._damaged(f"the record {key!r}", ValueError(f"version {v} but its JSON says {record.version}"))
        self._remember(key, s, record)
        return record

    def _remember(self, key: str, seq: int, record: ResponseRecord) -> None:
        with self._cache_mutex:
            cache = self._cache
            old = cache.pop(key, None)
            if old is not None and old[0] == seq and old[1] > record.version:
                cache[key] = old  # another thread cached a newer version meanwhile
                return
            cache[key] = (seq, record.version, record)
            while len(cache) > _CACHE_RECORDS:
                cache.pop(next(iter(cache)))

    def _forget(self, key: str) -> None:
        with self._cache_mutex:
            self._cache.pop(key, None)

    # ------------------------------------------------------------------ waking across processes

    def subscribe(self, id: str, waker: Waker, *, owner: str | None = None) -> Subscription:
        """Call ``waker()`` after every write to response ``id`` (from any process), until cancelled.

        Writes from other processes and hosts arrive through Redis pub/sub, which may drop a notification:
        re-check every :attr:`poll_interval` seconds as :meth:`wait` does.

        Raises:
            InvalidArgument: ``id``, ``owner`` or ``waker`` is malformed.
        """
        subscription = super().subscribe(id, waker, owner=owner)
        self._start_listener()
        return subscription

    def _start_listener(self) -> None:
        if self._closed:
            return
        with self._listener_mutex:
            if self._listener is not None and self._listener.is_alive():
                return
            thread = threading.Thread(target=self._listen, name=f"responsestore-redis-{self.prefix}", daemon=True)
            self._listener = thread
            thread.start()

    def _listen(self) -> None:
        """Wake local waiters of every record key published on the store's channel, until the store closes."""
        while not self._stop.is_set():
            pubsub: Any = None
            try:
                pubsub = self.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                pubsub.subscribe(self._channel)
                self._relay(pubsub)
            except Exception:  # noqa: BLE001 - the server is away: polling covers it; reconnect after a pause
                self._stop.wait(self._poll_interval)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):  # closing a broken connection
                        pubsub.close()

    def _relay(self, pubsub: Any) -> None:
        while not self._stop.is_set():
            message = pubsub.get_message(timeout=0.5)
            if message is not None and message.get("type") == "message":
                owner, id = _split_key(_text(message["data"]))
                self._notify(owner, id)

    # ------------------------------------------------------------------ atomic storage operations

    def _key(self, owner: str | None, id: str) -> str:
        return _key_prefix(_owner_key(owner)) + id

    def _fetch(self, owner: str | None, id: str) -> tuple[ResponseRecord, bool, int, int] | None:
        """``(record, finished, event count, event bytes)`` of the visible record ``(owner, id)``, or ``None``."""
        if not id.isascii() and not _encodable(id):
            return None  # no stored id has a lone surrogate: ids are checked at create
        key = self._key(owner, id)
        row = self._call(lambda: self.client.hmget(self._base + "r:" + key, ["s", "v", "j", "e", "n", "b", "st"]))
        if row[0] is None:
            return None
        try:
            expires = _number(row[3])
            events, size = int(_text(row[4])), int(_text(row[5]))
            finished = _text(row[6]) in _TERMINAL
        except (TypeError, ValueError) as exc:
            raise self._damaged(f"the record {key!r}", exc) from exc
        if expires is not None and expires <= self._now():
            return None
        return self._record(key, row[0], row[1], row[2]), finished, events, size

    def _get(self, owner: str | None, id: str) -> ResponseRecord | None:
        found = self._fetch(owner, id)
        if found is None:
            return None
        if found[1]:  # only finished records compete for eviction
            self._touches.append(self._key(owner, id))
        return found[0]

    def _peek(self, owner: str | None, id: str) -> ResponseRecord | None:
        found = self._fetch(owner, id)
        return None if found is None else found[0]

    def _chain(self, owner: str | None, id: str, limit: int) -> list[ResponseRecord]:
        if not id.isascii() and not _encodable(id):
            return []
        prefix = _key_prefix(_owner_key(owner))
        now = repr(self._now())
        rows = self._call(
            lambda: self._read_script(keys=[self._counters], args=["chain", now, prefix, id, min(limit, 10**9)])
        )
        chain: list[ResponseRecord] = []
        seen: set[str] = set()
        for i in range(0, len(rows) - 2, 3):
            record = self._record("chain of " + prefix + id, rows[i], rows[i + 1], rows[i + 2])
            if record.id in seen or len(chain) >= limit:
                break
            seen.add(record.id)
            chain.append(record)
        return chain

    def _touch(self, records: Sequence[ResponseRecord]) -> None:
        for record in records:
            if record.is_terminal:
                self._touches.append(self._key(record.owner, record.id))

    def _put_new(self, record: ResponseRecord, ttl: float | None, keep: Sequence[ResponseRecord]) -> bool:
        owner_key = _owner_key(record.owner)
        key = _key_prefix(owner_key) + record.id
        max_records = self.retention.max_records
        args: list[Any] = [
            key,
            owner_key,
            record.id,
            _order_head(record.created_at),
            _json_text(record.to_dict()),
            record.status.value,
            "" if ttl is None else repr(ttl),
            "" if ttl is None else repr(record.created_at + ttl),
            record.previous_response_id or "",
            "" if max_records is None else max_records,
            repr(record.created_at),
            len(keep),
        ]
        for ancestor in keep:
            args.extend((_key_prefix(_owner_key(ancestor.owner)) + ancestor.id, ancestor.version))
        code, seq = self._write("put", args)
        if code == "exists":
            raise ResponseExists(record.id)
        if code == "full":
            assert max_records is not None  # noqa: S101 - the script refuses only with a cap
            raise StoreFull(record.id, max_records)
        if code != "ok":
            return False
        self._remember(key, seq, record)
        return True

    def _swap(self, old: Stored, new: ResponseRecord, event: FrozenDict | None, size: int) -> bool:
        key = self._key(new.owner, new.id)
        args = [
            key,
            old.record.version,
            old.events,
            "" if event is None else _json_text(thaw(event)),
            size,
            _json_text(new.to_dict()),
            new.version,
            new.status.value,
        ]
        code, _ = self._write("swap", args)
        if code != "ok":
            return False
        hit = self._cache.get(key)
        if hit is not None:
            self._remember(key, hit[0], new)
        return True

    def _append(self, old: Stored, event: FrozenDict, size: int) -> bool:
        key = self._key(old.record.owner, old.record.id)
        code, _ = self._write("append", [key, old.record.version, old.events, _json_text(thaw(event)), size])
        return code == "ok"

    def _remove(self, record: ResponseRecord) -> bool:
        code, _ = self._write("remove", [self._key(record.owner, record.id), record.version])
        return code == "ok"

    def _sweep(self, limit: int | None) -> int:
        _, swept = self._write("sweep", ["" if limit is None else limit])
        return swept

    def _page(
        self, owner: str | None, query: PageQuery, matches: Callable[[ResponseRecord], bool] | None
    ) -> Page[ResponseRecord]:
        owner_key = _owner_key(owner)
        now = repr(self._now())
        first = query.limit + 1
        return paginate_records(
            lambda cursor, descending: self._scan(owner_key, cursor, descending, now, first), query, matches
        )

    def _scan(
        self, owner_key: str, cursor: str | None, descending: bool, now: str, batch: int
    ) -> Iterator[ResponseRecord]:
        prefix = _key_prefix(owner_key)
        if cursor is not None and not cursor.isascii() and not _encodable(cursor):
            raise unknown_cursor(cursor)
        kind, start = ("id", cursor) if cursor is not None else ("none", "")
        return self._scan_batches(owner_key, prefix, kind, start, descending, now, batch)

    def _scan_batches(  # noqa: PLR0917 - private, one call site
        self, owner_key: str, prefix: str, kind: str, start: str, descending: bool, now: str, batch: int
    ) -> Iterator[ResponseRecord]:
        # The first batch is checked for an unknown cursor before iteration starts (paginate raises it).
        rows = self._page_batch(owner_key, prefix, kind, start, descending, now, batch)

        def generate(rows: list[Any]) -> Iterator[ResponseRecord]:
            nonlocal batch
            while True:
                last, scanned = _text(rows[1]), int(_text(rows[2]))
                for i in range(3, len(rows) - 2, 3):
                    yield self._record("a record of a page", rows[i], rows[i + 1], rows[i + 2])
                if scanned < batch:
                    return
                batch = min(batch * 4, _SCAN_BATCH)
                rows = self._page_batch(owner_key, prefix, "member", last, descending, now, batch)

        return generate(rows)

    def _page_batch(  # noqa: PLR0917 - private, two call sites
        self, owner_key: str, prefix: str, kind: str, start: str, descending: bool, now: str, batch: int
    ) -> list[Any]:
        rows: list[Any] = self._call(
            lambda: self._read_script(
                keys=[self._counters],
                args=["page", now, owner_key, prefix, kind, start, "1" if descending else "0", batch],
            )
        )
        if _text(rows[0]) == "unknown":
            raise unknown_cursor(start)
        return rows

    def _events(self, owner: str | None, id: str, after: int) -> tuple[ResponseRecord, tuple[FrozenDict, ...]] | None:
        if not id.isascii() and not _encodable(id):
            return None
        key = self._key(owner, id)
        now = repr(self._now())
        start = min(after + 1, _MAX_LIST_INDEX)
        rows = self._call(lambda: self._read_script(keys=[self._counters], args=["events", now, key, start]))
        if not rows:
            return None
        record = self._record(key, rows[0], rows[1], rows[2])
        try:
            events = tuple(freeze_object(json.loads(_text(text)), "event") for text in rows[3:])
        except (ValueError, TypeError, ResponseStoreError) as exc:
            raise self._damaged(f"an event of {id!r}", exc) from exc
        return record, events

    def _count(self) -> int:
        return self._stats().records

    def _stats(self) -> StoreStats:
        now = repr(self._now())
        rows = self._call(lambda: self._read_script(keys=[self._counters], args=["stats", now]))
        try:
            created, deleted, evicted, expired = (int(_text(value)) for value in rows[:4])
            by_status = {
                status: int(_text(value)) for status, value in zip(_STATUSES, rows[4 : 4 + len(_STATUSES)], strict=True)
            }
            for status in rows[4 + len(_STATUSES) :]:
                name = _text(status)
                if name not in by_status:
                    raise ValueError(f"a record has the status {name[:40]!r}")
                by_status[name] -= 1
                expired += 1
        except (TypeError, ValueError) as exc:
            raise self._damaged("its counters", exc) from exc
        return StoreStats(
            records=sum(by_status.values()),
            by_status=FrozenDict(by_status),
            created=created,
            deleted=deleted,
            evicted=evicted,
            expired=expired,
        )

    # ------------------------------------------------------------------ invariants

    def _check(self) -> None:  # noqa: PLR0915 - one list of invariants
        """Check every invariant, raising ``AssertionError``: records, indexes, counters and tombstones agree."""
        if self._closed:
            return
        client: Any = self.client
        base = self._base
        owner_keys = sorted(_text(k) for k in client.smembers(base + "owners"))
        members: dict[str, set[str]] = {}
        record_keys: list[str] = []
        for owner_key in owner_keys:
            owned = {_text(m) for m in client.zrange(base + "o:" + owner_key, 0, -1)}
            members[owner_key] = owned
            record_keys.extend(_key_prefix(owner_key) + member[32:] for member in owned)
        counters = {_text(k): _text(v) for k, v in client.hgetall(self._counters).items()}
        by_status = dict.fromkeys(_STATUSES, 0)
        expiring: dict[str, float] = {}
        finished: set[str] = set()
        indexed: dict[str, set[str]] = {}
        top = int(counters.get("seq", 0))
        for key in record_keys:
            fields = {_text(k): _text(v) for k, v in client.hgetall(base + "r:" + key).items()}
            _invariant("j" in fields, f"the order index names {key!r}, which is not stored")
            record = ResponseRecord.from_dict(json.loads(fields["j"]))
            owner, id = _split_key(key)
            _invariant((record.owner, record.id) == (owner, id), f"{key!r} holds another record")
            _invariant(str(record.version) == fields["v"], f"the version of {key!r} disagrees with its JSON")
            _invariant(record.status.value == fields["st"], f"the status of {key!r} disagrees with its JSON")
            _invariant(fields["ok"] == _owner_key(owner), f"the owner of {key!r}")
            _invariant(
                fields["m"] == _order_head(record.created_at) + f"{int(fields['s']):016x}" + id, f"order of {key!r}"
            )
            _invariant(0 < int(fields["s"]) <= top, f"{key!r} has seq {fields['s']} outside 1..{top}")
            _invariant(fields.get("p") == record.previous_response_id, f"the previous id of {key!r}")
            _invariant(("t" in fields) == ("e" in fields), f"{key!r} has a ttl without an expiry or the reverse")
            by_status[record.status.value] += 1
            if "e" in fields:
                expiring[key] = float(fields["e"])
            if record.is_terminal:
                finished.add(key)
            indexed.setdefault(fields["ok"], set()).add(fields["m"])
            events = [_text(e) for e in client.lrange(base + "e:" + key, 0, -1)]
            _invariant(len(events) == int(fields["n"]), f"event count of {key!r}")
            numbers = [json.loads(e)["sequence_number"] for e in events]
            _invariant(numbers == list(range(len(events))), f"event numbers of {key!r}")
            _invariant(sum(len(e.encode()) for e in events) >= 0, "event sizes")
            _invariant(int(fields["n"]) <= self.event_limits.max_events, f"event log of {key!r} over max_events")
            _invariant(int(fields["b"]) <= self.event_limits.max_bytes, f"event log of {key!r} over max_event_bytes")
            hit = self._cache.get(key)
            _invariant(
                hit is None or hit[0] != int(fields["s"]) or hit[1] != record.version or hit[2] == record,
                f"the cache's copy of {key!r}",
            )
        for status in _STATUSES:
            _invariant(int(counters.get(status, 0)) == by_status[status], f"the {status} counter")
        lifetime = [int(counters.get(name, 0)) for name in ("created", "deleted", "evicted", "expired")]
        _invariant(lifetime[0] - sum(lifetime[1:]) == len(record_keys), "lifetime counters do not add up")
        scored = {_text(k): float(s) for k, s in client.zrange(base + "x", 0, -1, withscores=True)}
        _invariant(scored == expiring, "the expiry index disagrees with the records")
        lru = {_text(k) for k in client.zrange(base + "u", 0, -1)}
        _invariant(lru == finished, "the recency index is not the set of finished records")
        for owner_key, owned in members.items():
            _invariant(indexed.get(owner_key, set()) == owned, f"the order index of owner {owner_key!r}")
        tombstones = {_text(k) for k in client.hkeys(base + "t")}
        queued = {_text(k) for k in client.zrange(base + "q", 0, -1)}
        _invariant(tombstones == queued, "tombstones and their queue disagree")
        _invariant(len(tombstones) <= self._cursor_memory, "tombstones unbounded")
        _invariant(not (tombstones & set(record_keys)), "a live record is also removed")
        _invariant(len(self._touches) <= TOUCH_LOG, "the touch log is unbounded")
        _invariant(len(self._cache) <= _CACHE_RECORDS, "the record cache is unbounded")
        stats = self._stats()
        _invariant(stats.records == sum(stats.by_status.values()), "stats.by_status does not add up")


def _invariant(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _without_password(url: str) -> str:
    """``url`` cut to 200 characters, its user and password hidden (error messages end up in logs)."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.partition("/")[0]:
        rest = "***@" + rest.partition("/")[0].rpartition("@")[2] + rest[len(rest.partition("/")[0]) :]
    return (scheme + sep + rest)[:200]
