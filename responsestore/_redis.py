"""``RedisStore``: a backend on a Redis server (or one slot of a Redis Cluster), shared by every process and host.

Layout: every key of a store starts with ``{PREFIX}:``, so all of them share one hash tag and live in one
cluster slot (one store = one slot; spread a deployment over a cluster by running several prefixes). ``K`` below
is a record's key: its owner's encoding, length-prefixed, then its id, so every ``(owner, id)`` has its own.

- ``{P}:h:K`` (string): a record's header, 13 fields separated by spaces: creation sequence (the incarnation),
  version, status, event count, event bytes (as counted against ``max_event_bytes``), the record's size
  (``record_size``), the log's stored bytes, the number of chunks, absolute expiry (store clock) and ttl, the
  order head of its lease expiry, the order head of ``created_at``, and ``previous_response_id``; ``!`` stands
  for "none".
- ``{P}:r:K`` (string): the record's JSON (:meth:`ResponseRecord.to_dict`), never pickle.
- ``{P}:l:K:N`` (strings): the event log's chunks ``1 .. N``, each ``"FIRST COUNT TEXT"``: the number of its first
  event, how many it holds, and the text :mod:`responsestore._events` encoded. A reader from event ``A`` walks
  back from the last chunk and reads only the chunks that hold events after ``A``.
- ``{P}:i`` (sorted set, all scores 0, ordered by member): every index on records, one member each, by prefix:
  ``o`` + owner + ``created_at`` + creation sequence + id (each owner's creation order: lexicographic ranges walk
  ``(created_at, seq)`` order and a cursor step is O(log n)), ``x`` + expiry + ``K`` (sweeping), ``l`` + lease
  expiry + sequence + ``K`` (leases that ran out). Times are 16 hex digits that sort as the numbers do.
- ``{P}:u`` (sorted set by recency tick): finished records, for eviction.
- ``{P}:t`` (hash ``K`` -> order member) and ``{P}:q`` (sorted set by removal number): where the last
  ``min(10_000, max_records)`` removed records stood, for cursors.
- ``{P}:c`` (string): the counters, 16 numbers: creation sequence (= records created), deleted, evicted, expired,
  removals, recency tick, a lower bound of the earliest expiry, bytes, bytes of active records, tombstones, and one
  count per status.
- ``{P}:w``: the pub/sub channel every write that changes or removes records publishes their keys on (one JSON
  list per write).
- Conversations, each under a key ``CK`` made as a record's: ``{P}:v:CK`` (string) its state, ``"VERSION ITEMS
  NEXT EXPIRY JSON"`` (version, how many items, the position of the next, absolute expiry or ``!``, and
  :meth:`ConversationRecord.to_dict`); ``{P}:vo:CK`` (sorted set) its items' positions (score the position,
  member the item id); ``{P}:vi:CK`` (hash) its items (item id -> item JSON). ``{P}:ve`` (sorted set) holds every
  conversation's ``CK`` by expiry (``+inf``: never): what sweeping walks, and its size is what ``max_records``
  bounds.

Operations: every write of the contract (``_put_new`` with its sweep, refresh and capacity rules, ``_swap``,
``_append``, ``_remove``, ``_leased``, ``_sweep``, queued recency marks) is one call (``FCALL``) of the write
function of one Lua library (Redis 7 Functions: loaded again when the server answers "function not found"),
atomic on the server. The function stores, indexes and compares; the rules stay in Python. A call reads what it
decides on with one ``MGET`` (the record's header, the counters, the headers of the records it touches) and
*stages* its writes, then sends them once at its end: one ``DEL``, one ``ZREM`` and one ``ZADD`` per sorted set,
one ``MSET`` of every string (headers, records, chunks, counters) and at most one ``PUBLISH``, however many
records it changes. A refused write changes nothing visible: before it refuses, a call may only apply this
process's queued recency marks and reclaim expired records, as any write does. A ``get`` is one ``MGET`` (header
and JSON); a chain, a page, a record with its events and the stats are each one call of the read function
(``FCALL_RO``, one consistent snapshot).

Conversations: every write (create, change, delete, sweep) is one call of the same write function, which checks
the conversation's version and visibility and then writes its keys; a response of a conversation finishing is one
``swap`` call carrying the conversation's write too, applied only if both conditions hold. Reading a conversation
is one ``GET``; its items, one item, or which ids it holds, one call of the read function. Expired conversations
are reclaimed by :meth:`~responsestore.BaseStore.sweep` and by creates (a few each, all of them when the store
holds ``max_records`` conversations).

Expiry: the store's clock decides, as on every backend (the clock may be a fake one in tests), so the expiry
index is authoritative and written by the same call as the data. Redis key expiry is not used: a key Redis
deleted on its own would leave index entries and counters behind, and a store clock that is not the server's
wall clock (a fake clock, or skew between hosts) would make Redis delete records the store still shows. Expired
records are invisible at once and are reclaimed by the sweep of a write (the counters hold a lower bound of the
earliest expiry, so a write looks at the index only when something may be due), by
:meth:`~responsestore.BaseStore.sweep`, or by a :class:`~responsestore.Sweeper`.

Room: a write that would take the store over ``max_records`` or ``max_bytes`` replies ``room`` with the usage
(the counters; for a growth, its total, growth and the other finished records' bytes) and changes nothing but
its sweep and the queued marks. For a new record it sweeps every expired record first (``room_for_new`` would
ask for that sweep at once), and the reply carries the first candidates for eviction: most writes at a bound
evict one record, in two calls. Python decides with :mod:`responsestore._room`, as every backend does: either
:class:`StoreFull` or a plan, the least recently used finished records (more read from ``{P}:u`` in batches by
the ``recency`` read when those run out, paged by tick; running out of those means the store changed since the
usage was read, and the plan is made anew), with the incarnation and tick each was read at. The write is sent
again with the plan; the function evicts a planned record only if it is still that incarnation, finished and at
that tick, and writes only if the store then fits (a finishing record the plan lets over ``max_bytes`` aside).
Otherwise it replies ``room`` again and the store returns "changed": the contract's loop reads and tries again,
so writers racing at the bound retry rather than go over it. A process's queued marks are applied before the
candidates are read: they decide what is least recently used.

Leases: an active record with a lease has its ``l`` member. A finished record keeps its last member (finishing
does not pay for removing it): ``_leased`` drops every such member it passes, and removing the record drops it.

Recency without writes on reads: like the SQLite backend, a read that uses a finished record queues its mark in
this process (at most :data:`TOUCH_LOG`). The next write of this process that records recency itself (finishing,
continuing a chain, removing) or plans evictions sends them first, in the same call; other writes leave them queued (up
to :data:`_DEFERRED_MARKS`), so a read costs no write of its own.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import inspect
import json
import math
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

try:
    import redis
    import redis.exceptions
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError as exc:  # the redis extra is optional: say how to install it
    raise ImportError(
        f"RedisStore needs redis-py 5 or newer ({exc}): pip install 'responsestore[redis]'", name=exc.name
    ) from exc

from ._checks import check_text, describe
from ._contract import DEFAULT_MAX_CHAIN_DEPTH, BaseStore, Clock, LogWrite, Stored, cursor_memory
from ._conversations import (
    MAX_CONVERSATION_ITEMS,
    ConversationRecord,
    ConversationState,
    ConversationWrite,
    Positioned,
)
from ._events import DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_EVENTS, Chunk
from ._json import FrozenDict, freeze_object
from ._owners import encodable as _encodable
from ._owners import owner_key as _owner_key
from ._owners import owner_of as _owner_of
from ._paging import Page, PageQuery, paginate_records, unknown_cursor
from ._recency import TouchLog
from ._records import ResponseRecord, ResponseStatus
from ._retention import DEFAULT_MAX_RECORDS, DEFAULT_TTL, SWEEP_BATCH, StoreStats, record_size
from ._room import Usage, room_for_new, room_to_grow
from ._urls import url_integer, url_seconds
from ._waiting import Subscription, Waker
from .errors import ConversationFull, InvalidArgument, ResponseExists, ResponseStoreError, StorageError

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
_TERMINAL = frozenset(status.value for status in ResponseStatus if status.is_terminal)
_SCAN_BATCH = 256
#: Records one call of a search (``_find_newest``) looks through in the server (few travel back): about 5 ms of it.
_SEARCH_BATCH = 256
#: Parsed records kept per store (the newest version seen of each key).
_CACHE_RECORDS = 4096
#: The logs of active records this process wrote, kept to compact them when they finish without reading them back:
#: at most this many records and this many bytes of chunk text.
_LOG_CACHE_RECORDS = 256
_LOG_CACHE_BYTES = 8 << 20
#: Recency marks of reads a write that records no recency itself leaves queued, at most (beyond, it sends them).
_DEFERRED_MARKS = 64
_EVICT_BATCH = 64  # recency index members read at a time while planning evictions
_PREFETCH = 8  # of them, read by the write that replies it needs room (most writes at a bound evict one)
#: Fields of a record's header, and of the counters.
_HEADER_FIELDS = 13
_COUNTERS = ("seq", "deleted", "evicted", "expired", "removals", "tick", "hint", "bytes", "active_bytes", "tombs")
_NONE = "!"

# ---------------------------------------------------------------------------------------------- the library
#
# One Lua library of Redis 7 Functions (FUNCTION LOAD once, then FCALL): its helpers are made once, when it is
# loaded, not on every call as a script's would be. Functions run one at a time, so the state of the call in
# progress lives in the library's locals, set afresh by `start` at the beginning of every call.
#
# keys[1] is the store's counters key "{P}:c" (it routes the call to the store's slot); every other key is named
# from it. args[1] is the operation, args[2] the store clock's reading. Numbers go to Redis as the strings Python
# wrote (a Lua number turned into a string by tostring keeps only 14 digits), or through string.format: "%.17g"
# for times (exact), "%.0f" for counts. A missing key reads as false in Lua.

_LUA = """#!lua name=__LIBRARY__

local SLOTS = {__SLOTS__}
local TERMINAL = {__TERMINAL__}
local SEQ, DELETED, EVICTED, EXPIRED, REMOVALS, TICK, HINT, BYTES, ABYTES, TOMBS = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
local QUEUED, IN_PROGRESS = SLOTS['queued'], SLOTS['in_progress']
local NCOUNTERS = __NCOUNTERS__
local COUNTERS_FORMAT = '__COUNTERS_FORMAT__'
local COUNTERS_PATTERN = '__COUNTERS_PATTERN__'
local HEADER_PATTERN = '__HEADER_PATTERN__'
local BATCH = __BATCH__
local PREFETCH = __PREFETCH__

-- the call in progress
local C, B, I, U, T, Q, now, now_text, MEMORY, MAXR, MAXB, APPLY, PLAN
local cnt, counters_before, touched, reads, marks
local sets, setkeys, dels, iadd, irem, uadd, urem, tombs, gone, removed, published, staged_expiry

local function start(keys, args)
  C = keys[1]
  B = string.sub(C, 1, -2)
  I, U, T, Q = B .. 'i', B .. 'u', B .. 't', B .. 'q'
  now_text = args[2]
  now = tonumber(now_text)
  cnt, counters_before, touched, reads, marks = {}, nil, {}, false, {}
  sets, setkeys, dels, iadd, irem, uadd, urem = {}, {}, {}, {}, {}, {}, {}
  tombs, gone, removed, published = {}, {}, {}, {}
  staged_expiry = math.huge
end

-- 16 hex digits that sort as the double x does (its IEEE bits, sign-flipped), as _order_head in Python.
local function head(x)
  local b = {string.byte(struct.pack('>d', x), 1, 8)}
  if b[1] >= 128 then
    for i = 1, 8 do b[i] = 255 - b[i] end
  else
    b[1] = b[1] + 128
  end
  return string.format('%02x%02x%02x%02x%02x%02x%02x%02x', unpack(b))
end

local function unhead(hex)
  local b = {}
  for i = 1, 8 do b[i] = tonumber(string.sub(hex, 2 * i - 1, 2 * i), 16) or 0 end
  if b[1] >= 128 then
    b[1] = b[1] - 128
  else
    for i = 1, 8 do b[i] = 255 - b[i] end
  end
  return (struct.unpack('>d', string.char(unpack(b))))
end

local function hex(n)
  return string.format('%016x', n)
end

local function count(n)
  return string.format('%.0f', n)
end

-- A record's header as a table of its 13 fields, false if there is none; a malformed one is an error (nothing has
-- been written when a call parses), or false when lenient.
local function parse(text, lenient)
  if not text then return false end
  local h = {string.match(text, HEADER_PATTERN)}
  if #h ~= 13 or not SLOTS[h[3]] or not tonumber(h[1]) or not tonumber(h[8]) or not tonumber(h[6])
      or not tonumber(h[7]) or (h[9] ~= '!' and not tonumber(h[9])) then
    if lenient then return false end
    error('responsestore: a damaged record header: ' .. string.sub(text, 1, 80))
  end
  return h
end

local function visible(h)
  return h[9] == '!' or tonumber(h[9]) > now
end

local function load(text)
  if not text then
    for i = 1, NCOUNTERS do cnt[i] = 0 end
    cnt[HINT] = math.huge
    return
  end
  local fields = {string.match(text, COUNTERS_PATTERN)}
  for i = 1, #fields do cnt[i] = tonumber(fields[i]) end
  if #cnt ~= NCOUNTERS then error('responsestore: damaged counters: ' .. string.sub(text, 1, 200)) end
end

local function save()
  return string.format(COUNTERS_FORMAT, unpack(cnt))
end

local function records()
  local n = 0
  for _, slot in pairs(SLOTS) do n = n + cnt[slot] end
  return n
end

-- (owner prefix, id) of a record key "LEN:OWNERid"
local function split(k)
  local n = string.match(k, '^(%d+):')
  local cut = #n + 1 + tonumber(n)
  return string.sub(k, 1, cut), string.sub(k, cut + 1)
end

local function order_member(k, h)
  local kp, id = split(k)
  return 'o' .. kp .. h[12] .. hex(tonumber(h[1])) .. id
end

local function expiry_member(k, h)
  return 'x' .. head(tonumber(h[9])) .. k
end

local function lease_member(k, h)
  return 'l' .. h[11] .. hex(tonumber(h[1])) .. k
end

-- MGET of any number of keys (unpack has a limit), false for missing ones
local function mget(keys)
  if #keys == 0 then return {} end
  if #keys <= 1000 then return redis.call('MGET', unpack(keys)) end
  local out = {}
  for i = 1, #keys, 1000 do
    local part = redis.call('MGET', unpack(keys, i, math.min(i + 999, #keys)))
    for j = 1, #part do out[#out + 1] = part[j] end
  end
  return out
end

-- a command with a key and a list of arguments, in parts of at most 1000 items of `width` arguments
local function call(command, key, args, width)
  local total = 0
  local step = 1000 * width
  for i = 1, #args, step do
    local last = math.min(i + step - 1, #args)
    local result
    if key then
      result = redis.call(command, key, unpack(args, i, last))
    else
      result = redis.call(command, unpack(args, i, last))
    end
    if type(result) == 'number' then total = total + result end
  end
  return total
end

-- ------------------------------------------------------------------------------------------------ writing
--
-- Writes are staged and sent once, at the end (flush): a few commands however many records a call changes.

local function set(key, value)
  if sets[key] == nil then setkeys[#setkeys + 1] = key end
  sets[key] = value
end

local function del(key)
  if sets[key] ~= nil then sets[key] = false end
  dels[#dels + 1] = key
end

local function index_add(m)
  iadd[m] = true
end

local function index_remove(m)
  iadd[m] = nil
  irem[m] = true
end

local function expires(k, e, member_head)
  index_add('x' .. (member_head or head(e)) .. k)
  if e < staged_expiry then staged_expiry = e end
  if e < cnt[HINT] then cnt[HINT] = e end
end

-- `k` was used now: it gets its recency tick when the marks are sent (flush_recency)
local function used(k)
  marks[#marks + 1] = k
  urem[k] = nil
end

local function members(set_)
  local out = {}
  for m in pairs(set_) do out[#out + 1] = m end
  return out
end

-- send the recency marks: ticks in the order of use, this process's reads (when known) before this call's own
local function flush_recency()
  for _, list in ipairs({reads or {}, marks}) do
    for _, k in ipairs(list) do
      if not gone[k] then
        cnt[TICK] = cnt[TICK] + 1
        uadd[k] = cnt[TICK]
      end
    end
  end
  if reads then reads = {} end
  marks = {}
  local rem = members(urem)
  if #rem > 0 then call('ZREM', U, rem, 1) end
  local add = {}
  for k, tick in pairs(uadd) do
    add[#add + 1] = tick
    add[#add + 1] = k
  end
  if #add > 0 then call('ZADD', U, add, 2) end
  uadd, urem = {}, {}
end

local function flush()
  if #dels > 0 then call('DEL', nil, dels, 1) end
  local rem = members(irem)
  if #rem > 0 then call('ZREM', I, rem, 1) end
  local add = {}
  for m in pairs(iadd) do
    add[#add + 1] = 0
    add[#add + 1] = m
  end
  if #add > 0 then call('ZADD', I, add, 2) end
  flush_recency()
  if #tombs > 0 then
    local fields, queue = {}, {}
    for _, tomb in ipairs(tombs) do
      fields[#fields + 1] = tomb[1]
      fields[#fields + 1] = tomb[2]
      queue[#queue + 1] = tomb[3]
      queue[#queue + 1] = tomb[1]
    end
    call('HSET', T, fields, 2)
    cnt[TOMBS] = cnt[TOMBS] + call('ZADD', Q, queue, 2)
    if cnt[TOMBS] > MEMORY then
      local oldest = redis.call('ZPOPMIN', Q, cnt[TOMBS] - MEMORY)
      local keys = {}
      for i = 1, #oldest, 2 do keys[#keys + 1] = oldest[i] end
      call('HDEL', T, keys, 1)
      cnt[TOMBS] = cnt[TOMBS] - #keys
    end
  end
  local counters = save()
  if counters ~= counters_before then set(C, counters) end
  local pairs_ = {}
  for _, key in ipairs(setkeys) do
    if sets[key] then
      pairs_[#pairs_ + 1] = key
      pairs_[#pairs_ + 1] = sets[key]
    end
  end
  if #pairs_ > 0 then call('MSET', nil, pairs_, 2) end
  if #published > 0 then redis.call('PUBLISH', B .. 'w', cjson.encode(published)) end
end

-- The reply: code, value, removed keys, payload, and whether this process's reads' marks were left unsent (the
-- call wrote no recency and evicted nothing: the process sends them again with its next write).
local function reply(code, value, payload)
  flush()
  return {code, value, removed, payload or {}, (#touched > 0 and not reads) and 1 or 0}
end

-- the counters and the headers of `keys`, in one MGET, with those of this process's reads when `with_reads`
local function begin(keys, with_reads)
  local list = {C}
  for _, k in ipairs(keys) do list[#list + 1] = B .. 'h:' .. k end
  if with_reads then
    for _, k in ipairs(touched) do list[#list + 1] = B .. 'h:' .. k end
  end
  local got = mget(list)
  if not got[1] and redis.call('EXISTS', C) == 1 then
    error('responsestore: ' .. C .. ' holds data of another layout (an older responsestore): use another prefix')
  end
  load(got[1])
  counters_before = got[1]
  if with_reads then
    reads = {}
    for i, k in ipairs(touched) do
      local h = parse(got[1 + #keys + i], true)
      if h and TERMINAL[h[3]] then reads[#reads + 1] = k end
    end
  end
  return got
end

local function unlink(k, h, why)
  gone[k] = true
  local st = h[3]
  cnt[SLOTS[st]] = cnt[SLOTS[st]] - 1
  cnt[why] = cnt[why] + 1
  local size = tonumber(h[6]) + tonumber(h[7])
  cnt[BYTES] = cnt[BYTES] - size
  if not TERMINAL[st] then cnt[ABYTES] = cnt[ABYTES] - size end
  del(B .. 'h:' .. k)
  del(B .. 'r:' .. k)
  for c = 1, tonumber(h[8]) do del(B .. 'l:' .. k .. ':' .. c) end
  local m = order_member(k, h)
  index_remove(m)
  if h[9] ~= '!' then index_remove(expiry_member(k, h)) end
  if h[11] ~= '!' then index_remove(lease_member(k, h)) end
  if TERMINAL[st] then
    uadd[k] = nil
    urem[k] = true
  end
  cnt[REMOVALS] = cnt[REMOVALS] + 1
  tombs[#tombs + 1] = {k, m, cnt[REMOVALS]}
  removed[#removed + 1] = k
  published[#published + 1] = k
end

-- remove up to `limit` (false: all) expired records, earliest first; the lower bound of the expiries updated
local function sweep(limit)
  if cnt[HINT] > now then return 0 end
  local swept = 0
  local start_, stop = '[x', '[x' .. head(now) .. '\\255'
  while true do
    local want = 256
    if limit then want = math.min(want, limit - swept) end
    if want <= 0 then break end
    local ms = redis.call('ZRANGE', I, start_, stop, 'BYLEX', 'LIMIT', 0, want)
    if #ms == 0 then break end
    local hks = {}
    for i, m in ipairs(ms) do hks[i] = B .. 'h:' .. string.sub(m, 18) end
    local hs = mget(hks)
    for i, m in ipairs(ms) do
      local k = string.sub(m, 18)
      local h = (not gone[k]) and parse(hs[i], true)
      if h and not visible(h) then
        unlink(k, h, EXPIRED)
        swept = swept + 1
      elseif not gone[k] and not (h and h[9] ~= '!' and expiry_member(k, h) == m) then
        index_remove(m)  -- a member of no record (a damaged index): it would keep every write sweeping
      end
    end
    start_ = '(' .. ms[#ms]
    if #ms < want then break end
  end
  local next_ = redis.call('ZRANGE', I, start_, '(y', 'BYLEX', 'LIMIT', 0, 1)
  cnt[HINT] = staged_expiry
  if next_[1] then cnt[HINT] = math.min(staged_expiry, unhead(string.sub(next_[1], 2, 17))) end
  return swept
end

-- the finished records among those this process read since its last write that applied its reads' marks
local function read_marks()
  if reads then return end
  reads = {}
  local hks = {}
  for i, k in ipairs(touched) do hks[i] = B .. 'h:' .. k end
  local hs = mget(hks)
  for i, k in ipairs(touched) do
    local h = parse(hs[i], true)
    if h and TERMINAL[h[3]] then reads[#reads + 1] = k end
  end
end

-- `out` with how many members of the recency index it read past tick `after` (at most `n`; ticks are unique) and
-- the last one's tick, then the finished records among them, least recently used first: key, incarnation, tick
-- and bytes of each
local function least_recent(after, n, out)
  local ms = redis.call('ZRANGE', U, after and ('(' .. after) or '-inf', '+inf', 'BYSCORE', 'LIMIT', 0, n, 'WITHSCORES')
  local hks = {}
  for i = 1, #ms, 2 do hks[#hks + 1] = B .. 'h:' .. ms[i] end
  local hs = mget(hks)
  out[#out + 1] = tostring(#hks)
  out[#out + 1] = ms[#ms] or ''
  for i = 1, #hks do
    local h = (not gone[ms[2 * i - 1]]) and parse(hs[i], true)  -- one this call swept is staged, not yet gone
    if h and TERMINAL[h[3]] then
      out[#out + 1] = ms[2 * i - 1]
      out[#out + 1] = h[1]
      out[#out + 1] = ms[2 * i]
      out[#out + 1] = count(tonumber(h[6]) + tonumber(h[7]))
    end
  end
  return out
end

-- The reply of a write that would go over a bound, for Python to plan the room it needs (responsestore._room):
-- what `held()` returns (four numbers, then how many more and those), then the first candidates for eviction,
-- once this process's marks are applied (they decide what is least recently used) and, with `sweeping`, every
-- expired record is gone (room_for_new sweeps whenever a new record is over: done here, it costs no round trip).
local function room(held, sweeping)
  read_marks()
  flush_recency()
  if sweeping then sweep(false) end
  return reply('room', 0, least_recent(false, PREFETCH, held()))
end

-- The records a caller planned to evict (args[i]: how many, then key, incarnation and recency tick of each), as
-- {key, header} with their bytes in all: those still stored at that incarnation, finished, not in `spared` and last
-- used at that tick (Python chose them as least recently used: one used since is no longer its to evict). Nothing
-- is removed here: the call evicts them once it knows it writes.
local function planned(args, i, spared)
  local n = tonumber(args[i])
  if n == 0 then return {}, 0 end
  local ks, hks = {}, {}
  for j = 1, n do
    ks[j] = args[i + 3 * j - 2]
    hks[j] = B .. 'h:' .. ks[j]
  end
  local hs = mget(hks)
  local out, bytes, taken = {}, 0, {}
  for j, k in ipairs(ks) do
    local h = (not gone[k]) and (not spared[k]) and (not taken[k]) and parse(hs[j], true)
    if h and h[1] == args[i + 3 * j - 1] and TERMINAL[h[3]]
        and tonumber(redis.call('ZSCORE', U, k)) == tonumber(args[i + 3 * j]) then
      taken[k] = true
      out[#out + 1] = {k, h}
      bytes = bytes + tonumber(h[6]) + tonumber(h[7])
    end
  end
  return out, bytes
end

local function evict(victims)
  for _, v in ipairs(victims) do
    if not gone[v[1]] then unlink(v[1], v[2], EVICTED) end
  end
end

-- what the store holds (backend.Usage): records, bytes, and how many of each are queued or in progress
local function usage()
  return {count(records()), count(cnt[BYTES]), count(cnt[QUEUED] + cnt[IN_PROGRESS]), count(cnt[ABYTES])}
end

local function bound(n, bytes)
  if MAXR and n > MAXR then return 'max_records' end
  if MAXB and bytes > MAXB then return 'max_bytes' end
  return false
end

local function put(args, a)
  local kp, id, text, status, size = args[a], args[a + 1], args[a + 2], args[a + 3], tonumber(args[a + 4])
  local ttl, created, lease, prev = args[a + 5], tonumber(args[a + 6]), args[a + 7], args[a + 8]
  local created_head, expiry, expiry_head, lease_head = args[a + 9], args[a + 10], args[a + 11], args[a + 12]
  local nkeep = tonumber(args[a + 13])
  local k = kp .. id
  local keys, versions = {k}, {}
  for i = 1, nkeep do
    keys[i + 1] = args[a + 12 + 2 * i]
    versions[i] = args[a + 13 + 2 * i]
  end
  local got = begin(keys, APPLY)
  sweep(BATCH)
  local h = (not gone[k]) and parse(got[2])
  if h then
    if visible(h) then return reply('exists', 0) end
    unlink(k, h, EXPIRED)
  end
  local kept, spared, sizes = {}, {}, {}
  for i = 1, nkeep do
    local hh = (not gone[keys[i + 1]]) and parse(got[i + 2])
    if not hh or hh[2] ~= versions[i] or not visible(hh) then return reply('changed', 0) end
    kept[i] = hh
    spared[keys[i + 1]] = true
    if TERMINAL[hh[3]] then sizes[#sizes + 1] = count(tonumber(hh[6]) + tonumber(hh[7])) end
  end
  -- room: Python decides what to evict (responsestore._room); this only checks its plan still makes room
  local victims, freed = planned(args, PLAN + 1, spared)
  if bound(records() + 1 - #victims, cnt[BYTES] - freed + size) then
    return room(function()
      local held = usage()
      held[5] = tostring(#sizes)
      for _, s in ipairs(sizes) do held[#held + 1] = s end
      return held
    end, true)
  end
  for i = nkeep, 1, -1 do
    local hh, kk = kept[i], keys[i + 1]
    if hh[10] ~= '!' then
      local e = created + tonumber(hh[10])
      local text_e = string.format('%.17g', e)
      if text_e ~= hh[9] then
        if hh[9] ~= '!' then index_remove(expiry_member(kk, hh)) end
        hh[9] = text_e
        expires(kk, e)
        set(B .. 'h:' .. kk, table.concat(hh, ' '))
      end
    end
    if TERMINAL[hh[3]] then used(kk) end
  end
  evict(victims)
  local seq = cnt[SEQ] + 1
  cnt[SEQ] = seq
  cnt[SLOTS[status]] = cnt[SLOTS[status]] + 1
  cnt[BYTES] = cnt[BYTES] + size
  cnt[ABYTES] = cnt[ABYTES] + size
  local e, lm = '!', '!'
  if ttl ~= '' then
    e = expiry
    expires(k, tonumber(expiry), expiry_head)
  else
    ttl = '!'
  end
  if lease ~= '' then
    lm = lease_head
    index_add('l' .. lm .. hex(seq) .. k)
  end
  index_add('o' .. kp .. created_head .. hex(seq) .. id)
  if prev == '' then prev = '!' end
  local fields = {count(seq), '1', status, '0', '0', count(size), '0', '0', e, ttl, lm, created_head, prev}
  set(B .. 'h:' .. k, table.concat(fields, ' '))
  set(B .. 'r:' .. k, text)
  return reply('ok', seq)
end

-- ------------------------------------------------------------------------------------------------ conversations
--
-- A conversation "CK" (its owner's encoding, length-prefixed, then its id, as a record key) is three keys:
-- "v:CK" its state "VERSION ITEMS NEXT EXPIRY JSON", "vo:CK" its items' positions (a sorted set: score the
-- position, member the item id) and "vi:CK" its items (a hash: item id -> item JSON); "ve" holds every
-- conversation by expiry ("+inf": never). A call checks everything first, then writes them directly.

-- A conversation's state as {version, items, next position, expiry}, false if there is none; a malformed one is
-- an error (nothing has been written when a call parses), or false when lenient.
local function conversation(text, lenient)
  if not text then return false end
  local v, n, nxt, e = string.match(text, '^(%d+) (%d+) (%d+) (%S+) ')
  if not v or (e ~= '!' and not tonumber(e)) then
    if lenient then return false end
    error('responsestore: a damaged conversation: ' .. string.sub(text, 1, 80))
  end
  return {v, n, nxt, e}
end

local function conversation_visible(c)
  return c[4] == '!' or tonumber(c[4]) > now
end

local function conversation_drop(ck)
  redis.call('DEL', B .. 'v:' .. ck, B .. 'vo:' .. ck, B .. 'vi:' .. ck)
  redis.call('ZREM', B .. 've', ck)
end

-- remove up to `limit` (false: all) expired conversations, earliest first; return how many
local function sweep_conversations(limit)
  local index = B .. 've'
  local swept = 0
  while true do
    local want = 256
    if limit then want = math.min(want, limit - swept) end
    if want <= 0 then break end
    local cks = redis.call('ZRANGE', index, '-inf', now_text, 'BYSCORE', 'LIMIT', 0, want)
    if #cks == 0 then break end
    for _, ck in ipairs(cks) do
      local c = conversation(redis.call('GET', B .. 'v:' .. ck), true)
      if c and not conversation_visible(c) then
        conversation_drop(ck)
        swept = swept + 1
      elseif c then
        redis.call('ZADD', index, c[4] == '!' and '+inf' or c[4], ck)  -- a wrong score (a damaged index)
      else
        redis.call('ZREM', index, ck)  -- a member of no conversation (a damaged index): it would stay due
      end
    end
    if #cks < want then break end
  end
  return swept
end

-- A conditional write of a conversation from args[i ..]: its key, the version it must be at, the new state, the
-- new expiry score, the id of the item it deletes ('': none), how many items it adds, then the position, id and
-- JSON of each.
local function conversation_write(args, i)
  local w = {ck = args[i], version = args[i + 1], state = args[i + 2], score = args[i + 3], remove = args[i + 4]}
  local positions, items = {}, {}
  for j = 0, tonumber(args[i + 5]) - 1 do
    local p = i + 6 + 3 * j
    positions[2 * j + 1], positions[2 * j + 2] = args[p], args[p + 1]
    items[2 * j + 1], items[2 * j + 2] = args[p + 1], args[p + 2]
  end
  w.positions, w.items = positions, items
  return w
end

-- whether the conversation of `w` is visible at the version `w` expects
local function conversation_current(w)
  local c = conversation(redis.call('GET', B .. 'v:' .. w.ck))
  return c and conversation_visible(c) and c[1] == w.version
end

local function conversation_apply(w)
  local positions, items = B .. 'vo:' .. w.ck, B .. 'vi:' .. w.ck
  if w.remove ~= '' then
    redis.call('ZREM', positions, w.remove)
    redis.call('HDEL', items, w.remove)
  end
  if #w.positions > 0 then
    call('ZADD', positions, w.positions, 2)
    call('HSET', items, w.items, 2)
  end
  redis.call('MSET', B .. 'v:' .. w.ck, w.state)
  redis.call('ZADD', B .. 've', w.score, w.ck)
end

-- a new conversation (args as a conversation write, its version ''), unless the store holds MAXR already
local function conversation_put(args, a)
  local index = B .. 've'
  sweep_conversations(BATCH)
  if MAXR and redis.call('ZCARD', index) >= MAXR then
    sweep_conversations(false)
    if redis.call('ZCARD', index) >= MAXR then return {'full', 0} end
  end
  local w = conversation_write(args, a)
  if redis.call('EXISTS', B .. 'v:' .. w.ck, B .. 'vo:' .. w.ck, B .. 'vi:' .. w.ck) > 0 then
    error('responsestore: conversation ' .. w.ck .. ' is stored already (ids are fresh: a damaged store)')
  end
  conversation_apply(w)
  return {'ok', 0}
end

local function conversation_swap(args, a)
  local w = conversation_write(args, a)
  if not conversation_current(w) then return {'changed', 0} end
  conversation_apply(w)
  return {'ok', 0}
end

local function conversation_remove(args, a)
  if not conversation_current({ck = args[a], version = args[a + 1]}) then return {'changed', 0} end
  conversation_drop(args[a])
  return {'ok', 0}
end

-- ------------------------------------------------------------------------------------------------ responses

local function change(args, a, op)
  local k, incarnation, version, events = args[a], args[a + 1], args[a + 2], args[a + 3]
  local has_log, replace, first, n, event_bytes, stored, chunk =
    args[a + 4], args[a + 5], args[a + 6], args[a + 7], args[a + 8], args[a + 9], args[a + 10]
  local h = begin({k}, APPLY)[2]
  if op == 'swap' then sweep(BATCH) end
  h = (not gone[k]) and parse(h)
  if not h or not visible(h) or h[1] ~= incarnation or h[2] ~= version or h[4] ~= events then
    return reply('changed', 0)
  end
  -- a response of a conversation finishing: the conversation's write lands with it, or neither does
  local appended = op == 'swap' and args[a + 16] == '1' and conversation_write(args, a + 17)
  if appended and not conversation_current(appended) then return reply('changed', 0) end
  local status, size = h[3], tonumber(h[6])
  if op == 'swap' then status, size = args[a + 12], tonumber(args[a + 14]) end
  local log_bytes, chunks = tonumber(h[7]), tonumber(h[8])
  local new_log_bytes = log_bytes
  if has_log == '1' then
    if replace == '1' then new_log_bytes = tonumber(stored) else new_log_bytes = log_bytes + tonumber(stored) end
  end
  local mine = tonumber(h[6]) + log_bytes
  local grows = size + new_log_bytes - mine
  -- room, as for put; a plan may let a finishing record over the bound (args[PLAN] '1')
  local victims, freed = planned(args, PLAN + 1, {[k] = true})
  if MAXB and grows > 0 and cnt[BYTES] + grows - freed > MAXB and args[PLAN] ~= '1' then
    local others = cnt[BYTES] - cnt[ABYTES]
    if TERMINAL[h[3]] then others = others - mine end
    return room(function()
      return {count(cnt[BYTES] + grows), count(grows), count(others), TERMINAL[status] and '1' or '0', '0'}
    end, false)
  end
  evict(victims)
  cnt[BYTES] = cnt[BYTES] + grows
  if not TERMINAL[h[3]] then cnt[ABYTES] = cnt[ABYTES] - mine end
  if not TERMINAL[status] then cnt[ABYTES] = cnt[ABYTES] + mine + grows end
  if status ~= h[3] then
    cnt[SLOTS[h[3]]] = cnt[SLOTS[h[3]]] - 1
    cnt[SLOTS[status]] = cnt[SLOTS[status]] + 1
  end
  if has_log == '1' then
    if replace == '1' then
      for c = 2, chunks do del(B .. 'l:' .. k .. ':' .. c) end
      chunks = 1
    else
      chunks = chunks + 1
    end
    set(B .. 'l:' .. k .. ':' .. chunks, chunk)
    h[4] = count(tonumber(first) + tonumber(n))
    h[5] = event_bytes
  end
  h[6], h[7], h[8] = count(size), count(new_log_bytes), count(chunks)
  if op == 'swap' then
    h[2], h[3] = args[a + 13], status
    if TERMINAL[status] then
      used(k)  -- the last lease member stays until _leased or the record's removal drops it
    else
      local lm = args[a + 15]
      if lm == '' then lm = '!' end
      if lm ~= h[11] then
        if h[11] ~= '!' then index_remove(lease_member(k, h)) end
        h[11] = lm
        if lm ~= '!' then index_add(lease_member(k, h)) end
      end
    end
    set(B .. 'r:' .. k, args[a + 11])
  end
  set(B .. 'h:' .. k, table.concat(h, ' '))
  published[#published + 1] = k
  if appended then conversation_apply(appended) end
  return reply('ok', 0)
end

local function remove(args, a)
  local k, incarnation, version = args[a], args[a + 1], args[a + 2]
  local h = begin({k}, true)[2]
  sweep(BATCH)
  h = (not gone[k]) and parse(h)
  if not h or not visible(h) or h[1] ~= incarnation or h[2] ~= version then return reply('changed', 0) end
  unlink(k, h, DELETED)
  return reply('ok', 0)
end

local function leased(args, a)
  local limit = tonumber(args[a])
  begin({}, true)
  local out = {}
  local start_, stop = '[l', '[l' .. head(now) .. '\\255'
  while #out < 3 * limit do
    local ms = redis.call('ZRANGE', I, start_, stop, 'BYLEX', 'LIMIT', 0, 64)
    if #ms == 0 then break end
    local keys = {}
    for i, m in ipairs(ms) do
      keys[2 * i - 1] = B .. 'h:' .. string.sub(m, 34)
      keys[2 * i] = B .. 'r:' .. string.sub(m, 34)
    end
    local got = mget(keys)
    for i, m in ipairs(ms) do
      local h = parse(got[2 * i - 1], true)
      local k = string.sub(m, 34)
      if not h or h[11] == '!' or lease_member(k, h) ~= m then
        index_remove(m)  -- a member its record no longer names (a damaged index)
      elseif TERMINAL[h[3]] then
        index_remove(m)  -- the last lease of a finished record
      elseif visible(h) and #out < 3 * limit then
        out[#out + 1] = h[1]
        out[#out + 1] = h[2]
        out[#out + 1] = got[2 * i]
      end
    end
    start_ = '(' .. ms[#ms]
    if #ms < 64 then break end
  end
  return reply('ok', 0, out)
end

local function write(keys, args)
  start(keys, args)
  MEMORY, MAXR, MAXB, APPLY = tonumber(args[3]), tonumber(args[4]), tonumber(args[5]), args[6] == '1'
  local ntouches = tonumber(args[7])
  for i = 1, ntouches do touched[i] = args[7 + i] end
  -- then the room plan (whether it lets a finishing record over max_bytes, how many victims, and theirs)
  PLAN = 8 + ntouches
  local a = PLAN + 2 + 3 * tonumber(args[PLAN + 1])
  local op = args[1]
  if op == 'put' then return put(args, a) end
  if op == 'swap' or op == 'append' then return change(args, a, op) end
  if op == 'remove' then return remove(args, a) end
  if op == 'leased' then return leased(args, a) end
  if op == 'sweep' then
    begin({}, true)
    local swept = sweep(tonumber(args[a]) or false)
    if args[a + 1] == '1' then swept = swept + sweep_conversations(false) end
    return reply('ok', swept)
  end
  -- conversations: no counters, no recency (a caller sends no marks)
  if op == 'conversation_put' then return conversation_put(args, a) end
  if op == 'conversation_swap' then return conversation_swap(args, a) end
  if op == 'conversation_remove' then return conversation_remove(args, a) end
  if op == 'conversation_sweep' then return {'ok', sweep_conversations(false)} end
  if op == 'flush' then
    begin({}, true)
    return reply('ok', 0)
  end
  return redis.error_reply('responsestore: unknown operation ' .. tostring(op))
end

-- ------------------------------------------------------------------------------------------------ reading

local function chain(args)
  local kp, id, limit = args[3], args[4], tonumber(args[5])
  local out, seen = {}, {}
  while id and not seen[id] and #out < 2 * limit do
    seen[id] = true  -- a loop (made by deleting and re-creating an id) ends the walk at its first repeat
    local got = redis.call('MGET', B .. 'h:' .. kp .. id, B .. 'r:' .. kp .. id)
    local h = parse(got[1])
    if not h or not visible(h) then break end
    out[#out + 1] = got[1]
    out[#out + 1] = got[2]
    id = h[13] ~= '!' and h[13] or nil
  end
  return out
end

-- One batch of the owner's order index from a cursor; with a needle (args[8]), only the records whose JSON holds it
-- (the count of members scanned still says whether the walk goes on).
local function page(args)
  local kp, kind, cursor, descending, batch, needle = args[3], args[4], args[5], args[6], args[7], args[8]
  local low, high = '[o' .. kp, '(o' .. kp .. '\\255'
  local start_
  if kind == 'id' then
    local h = parse(redis.call('GET', B .. 'h:' .. kp .. cursor))
    if h then
      start_ = order_member(kp .. cursor, h)
    else
      start_ = redis.call('HGET', T, kp .. cursor)
    end
    if not start_ then return {'unknown'} end
  elseif kind == 'member' then
    start_ = cursor
  end
  local ms
  if descending == '1' then
    ms = redis.call('ZRANGE', I, start_ and ('(' .. start_) or high, low, 'BYLEX', 'REV', 'LIMIT', 0, batch)
  else
    ms = redis.call('ZRANGE', I, start_ and ('(' .. start_) or low, high, 'BYLEX', 'LIMIT', 0, batch)
  end
  local out = {'ok', #ms > 0 and ms[#ms] or '', tostring(#ms)}
  if #ms > 0 then
    local keys = {}
    for i, m in ipairs(ms) do
      local k = kp .. string.sub(m, #kp + 34)
      keys[2 * i - 1] = B .. 'h:' .. k
      keys[2 * i] = B .. 'r:' .. k
    end
    local got = mget(keys)
    for i = 1, #ms do
      local h = parse(got[2 * i - 1])
      if h and visible(h) and (not needle or (got[2 * i] and string.find(got[2 * i], needle, 1, true))) then
        out[#out + 1] = got[2 * i - 1]
        out[#out + 1] = got[2 * i]
      end
    end
  end
  return out
end

local function events(args)
  local k, after = args[3], tonumber(args[4])
  local got = redis.call('MGET', B .. 'h:' .. k, B .. 'r:' .. k)
  local h = parse(got[1])
  if not h or not visible(h) then return {} end
  local out = {got[1], got[2]}
  local c = tonumber(h[8])
  if tonumber(h[4]) - 1 > after then
    local chunks = {}
    while c >= 1 do
      local chunk = redis.call('GET', B .. 'l:' .. k .. ':' .. c)
      chunks[#chunks + 1] = chunk or ''
      local first = tonumber(string.match(chunk or '', '^(%d+) '))
      if not first or first - 1 <= after then break end
      c = c - 1
    end
    for i = #chunks, 1, -1 do out[#out + 1] = chunks[i] end
  end
  return out
end

local function stats()
  load(redis.call('GET', C))
  local out = {save()}
  if cnt[HINT] <= now then
    local ms = redis.call('ZRANGE', I, '[x', '[x' .. head(now) .. '\\255', 'BYLEX')
    local keys = {}
    for i, m in ipairs(ms) do keys[i] = B .. 'h:' .. string.sub(m, 18) end
    local got = mget(keys)
    for i = 1, #ms do
      local h = parse(got[i], true)
      if h and not visible(h) then
        out[#out + 1] = h[3]
        out[#out + 1] = tostring(tonumber(h[6]) + tonumber(h[7]))
      end
    end
  end
  return out
end

-- the state of the visible conversation `ck`, or false
local function conversation_state(ck)
  local text = redis.call('GET', B .. 'v:' .. ck)
  local c = conversation(text)
  return c and conversation_visible(c) and text
end

-- the state, then position, id and JSON of up to `count` items past position `after` ('': from the end)
local function conversation_items(args)
  local ck, after, n, descending = args[3], args[4], args[5], args[6] == '1'
  local state = conversation_state(ck)
  if not state then return {} end
  local got
  if descending then
    got = redis.call('ZRANGE', B .. 'vo:' .. ck, after == '' and '+inf' or '(' .. after, '-inf', 'BYSCORE', 'REV',
      'LIMIT', 0, n, 'WITHSCORES')
  else
    got = redis.call('ZRANGE', B .. 'vo:' .. ck, after == '' and '-inf' or '(' .. after, '+inf', 'BYSCORE',
      'LIMIT', 0, n, 'WITHSCORES')
  end
  local out = {state}
  for i = 1, #got, 2 do
    out[#out + 1] = got[i + 1]
    out[#out + 1] = got[i]
    out[#out + 1] = redis.call('HGET', B .. 'vi:' .. ck, got[i])
  end
  return out
end

-- the state, then the position and JSON of the item args[4] if the visible conversation args[3] holds it
local function conversation_item(args)
  local ck, id = args[3], args[4]
  local state = conversation_state(ck)
  if not state then return {} end
  local position = redis.call('ZSCORE', B .. 'vo:' .. ck, id)
  if not position then return {state} end
  return {state, position, redis.call('HGET', B .. 'vi:' .. ck, id)}
end

-- the state, then which of the ids args[4 ..] the visible conversation args[3] holds
local function conversation_held(args)
  local ck = args[3]
  local state = conversation_state(ck)
  if not state then return {} end
  local out = {state}
  for i = 4, #args do
    if redis.call('ZSCORE', B .. 'vo:' .. ck, args[i]) then out[#out + 1] = args[i] end
  end
  return out
end

local function read(keys, args)
  start(keys, args)
  local op = args[1]
  if op == 'conversation_items' then return conversation_items(args) end
  if op == 'conversation_item' then return conversation_item(args) end
  if op == 'conversation_held' then return conversation_held(args) end
  if op == 'chain' then return chain(args) end
  if op == 'page' then return page(args) end
  if op == 'events' then return events(args) end
  if op == 'stats' then return stats() end
  if op == 'recency' then return least_recent(args[3], tonumber(args[4]), {}) end
  return redis.error_reply('responsestore: unknown operation ' .. tostring(op))
end

redis.register_function('__WRITE__', write)
redis.register_function{function_name = '__READ__', callback = read, flags = {'no-writes'}}
"""


def _library() -> tuple[str, str, str]:
    """The library's code and the names of its write and read functions (named after a digest of the code)."""
    first_status = len(_COUNTERS) + 1
    counters = len(_COUNTERS) + len(_STATUSES)
    code = _LUA
    for name, value in (
        (
            "__COUNTERS_FORMAT__",
            " ".join("%.17g" if field == "hint" else "%.0f" for field in _COUNTERS) + " %.0f" * len(_STATUSES),
        ),
        ("__COUNTERS_PATTERN__", "^" + "(%S+) " * (counters - 1) + "(%S+)$"),
        ("__HEADER_PATTERN__", "^" + "(%S+) " * (_HEADER_FIELDS - 1) + "(%S+)$"),
        ("__BATCH__", str(SWEEP_BATCH)),
        ("__PREFETCH__", str(_PREFETCH)),
        ("__NCOUNTERS__", str(counters)),
        ("__SLOTS__", ", ".join(f"{status} = {first_status + i}" for i, status in enumerate(_STATUSES))),
        ("__TERMINAL__", ", ".join(f"{status} = true" for status in sorted(_TERMINAL))),
    ):
        code = code.replace(name, value)
    digest = hashlib.sha1(code.encode(), usedforsecurity=False).hexdigest()[:16]
    names = (f"responsestore_{digest}", f"responsestore_write_{digest}", f"responsestore_read_{digest}")
    code = code.replace("__LIBRARY__", names[0]).replace("__WRITE__", names[1]).replace("__READ__", names[2])
    return code, names[1], names[2]


_LIBRARY, _WRITE, _READ = _library()


# ---------------------------------------------------------------------------------------------- encodings


def _key_prefix(owner_key: str) -> str:
    """What every record key of this owner starts with: the owner's encoding, length-prefixed."""
    return f"{len(owner_key)}:{owner_key}"


def _split_key(key: str) -> tuple[str | None, str]:
    """``(owner, id)`` of a record key."""
    length, _, rest = key.partition(":")
    size = int(length)
    return _owner_of(rest[:size]), rest[size:]


def _order_head(value: float) -> str:
    """16 hex digits that sort as ``value`` does (IEEE bits, sign-flipped); the library's ``head``."""
    (bits,) = struct.unpack(">Q", struct.pack(">d", value))
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


class _Log:
    """The log of an active record as this process wrote it: all its chunks, from event 0."""

    __slots__ = ("chunks", "events", "incarnation", "stored")

    def __init__(self, incarnation: int) -> None:
        self.incarnation = incarnation
        self.chunks: list[Chunk] = []
        self.events = 0
        self.stored = 0


class _Victim(NamedTuple):
    """A finished record a write plans to evict: its key, incarnation, recency tick (as read) and bytes."""

    key: str
    incarnation: str
    tick: str
    bytes: int


class _Stale(Exception):
    """A plan for room read its candidates across a change of the store: it is made anew (never seen outside)."""


class _Plan:
    """The room a write over a bound makes, as :mod:`responsestore._room` decided it.

    The records it evicts (the write function evicts each only if it is still stored at that incarnation and last
    used at that tick, and writes only if they make room: otherwise the caller reads again) and whether a
    finishing record may go over ``max_bytes``.
    """

    __slots__ = ("force", "victims")

    def __init__(self) -> None:
        self.force = False
        self.victims: list[_Victim] = []

    def taking(self, candidates: Iterator[_Victim]) -> Callable[[], int | None]:
        """An ``evict`` move for the room functions: take the next candidate into the plan, return its bytes."""

        def evict() -> int | None:
            victim = next(candidates, None)
            if victim is None:
                return None
            self.victims.append(victim)
            return victim.bytes

        return evict

    def args(self) -> list[Any]:
        """The plan as the write function reads it."""
        out: list[Any] = ["1" if self.force else "0", len(self.victims)]
        for victim in self.victims:
            out += [victim.key, victim.incarnation, victim.tick]
        return out


_NO_PLAN = ("0", 0)


class _Header:
    """A record's header (``{P}:h:K``) as Python reads it."""

    __slots__ = ("bytes", "chunks", "events", "expires", "incarnation", "log_bytes", "size", "status", "version")

    def __init__(self, text: str) -> None:
        fields = text.split(" ")
        if len(fields) != _HEADER_FIELDS:
            raise ValueError(f"a header of {len(fields)} fields")
        self.incarnation = int(fields[0])
        self.version = int(fields[1])
        self.status = fields[2]
        if self.status not in _STATUSES:
            raise ValueError(f"the status {self.status[:40]!r}")
        self.events = int(fields[3])
        self.bytes = int(fields[4])
        self.size = int(fields[5])
        self.log_bytes = int(fields[6])
        self.chunks = int(fields[7])
        expires = fields[8]
        self.expires = None if expires == _NONE else float(expires)


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


def _optional(value: float | int | None) -> str:
    """A number as a function argument, ``""`` for ``None``."""
    return "" if value is None else repr(value)


# ---------------------------------------------------------------------------------------------- the store


class RedisStore(BaseStore):
    """A store of OpenAI Responses API objects on a Redis server, shared by every process and host that uses it.

    Same API and semantics as :class:`ResponseStore`. Every write is one atomic Lua function call on the server, so
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
        max_bytes: The most bytes the records and their event logs take, counted as on every backend (each
            record's ``record_size`` plus its log's stored bytes); ``None`` (the default): no bound. At the bound,
            creating evicts least recently used finished records, as for ``max_records``.
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
        max_bytes: int | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        super().__init__(
            ttl=ttl,
            max_records=max_records,
            clock=clock,
            max_chain_depth=max_chain_depth,
            max_events=max_events,
            max_event_bytes=max_event_bytes,
            max_bytes=max_bytes,
        )
        if not hasattr(client, "fcall") or not hasattr(client, "function_load"):
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
        self._bounds = [_optional(self.retention.max_records), _optional(self.retention.max_bytes)]
        self._closed = False
        self._touches: TouchLog[str] = TouchLog()  # record keys read since this process's last write
        self._cache: dict[str, tuple[int, int, ResponseRecord]] = {}  # key -> (incarnation, version, record)
        self._cache_mutex = threading.Lock()
        self._logs: OrderedDict[str, _Log] = (
            OrderedDict()
        )  # key -> the log of an active record, as this process wrote it
        self._log_bytes = 0
        self._listener_mutex = threading.Lock()
        self._listener: threading.Thread | None = None
        self._stop = threading.Event()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisStore:
        """``redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?prefix=NAME&...]``, or ``rediss://`` for TLS.

        The store's own query parameters: ``prefix``, ``max_records`` and ``max_bytes`` (a whole number, or
        ``none`` for no bound) and ``ttl`` (seconds, or ``none``). The others go to ``redis.Redis.from_url``
        (``socket_timeout``, ``health_check_interval``, ``ssl_cert_reqs``, ...); a name neither knows is refused.
        The client this makes has a socket timeout of :data:`DEFAULT_SOCKET_TIMEOUT` seconds (``?socket_timeout=``
        overrides it) and no automatic retries (a retried write could apply twice); the store closes it in
        :meth:`close`. Keyword arguments go to the constructor and win over the URL's settings.

        Raises:
            InvalidArgument: the URL is malformed: a setting of the wrong kind, or a parameter nobody takes.
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
        for name in ("max_records", "max_bytes", "ttl"):
            text = options.pop(name, None)
            if text is not None:
                value = (
                    url_seconds("Redis", name, text, none=True, said="a number of seconds or 'none'")
                    if name == "ttl"
                    else url_integer("Redis", name, text)
                )
                kwargs.setdefault(name, value)
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
        unknown = sorted(name[:40] for name in options if name not in _client_parameters(client))
        if unknown:
            client.close()
            raise InvalidArgument(
                f"unknown Redis URL parameter{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown[:5]))} "
                f"in {shown[:200]!r}: the store takes prefix, max_records, max_bytes and ttl, and redis-py its "
                "connections' settings (socket_timeout, ...)"
            )
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
        """Run one command or function call, turning every redis-py error into :class:`StorageError`."""
        if self._closed:
            raise self._closed_error()
        try:
            return action()
        except (redis.exceptions.RedisError, OSError) as exc:
            if self._closed:
                raise self._closed_error() from exc
            raise StorageError(f"Redis error in {self!r}: {type(exc).__name__}: {exc}"[:600]) from exc
        except UnicodeDecodeError as exc:  # a client that decodes replies read a value that is not UTF-8
            raise self._damaged("a stored value", exc) from exc
        except Exception as exc:
            if self._closed:  # close() took the client away under this call: redis-py fails in its own ways
                raise self._closed_error() from exc
            raise

    def _function(self, name: str, args: Sequence[Any]) -> Any:
        """``FCALL`` the library's function ``name`` (``FCALL_RO`` the read one), loading the library if needed."""
        call = self.client.fcall_ro if name == _READ else self.client.fcall
        try:
            return call(name, 1, self._counters, *args)
        except redis.exceptions.ResponseError as exc:
            if "function not found" not in str(exc).lower():
                raise
        self.client.function_load(_LIBRARY, replace=True)  # a new server, or one restarted without persistence
        return call(name, 1, self._counters, *args)

    def _read_call(self, args: Sequence[Any]) -> Any:
        """The read function's answer to ``args`` (operation, clock reading, ...)."""
        return self._call(lambda: self._function(_READ, args))

    def _damaged(self, what: str, exc: BaseException) -> StorageError:
        return StorageError(f"{self!r} is damaged: {what} cannot be read ({type(exc).__name__}: {exc})"[:500])

    def _write(
        self, op: str, args: Sequence[Any], *, marks: bool = True, plan: _Plan | None = None
    ) -> tuple[str, str, list[Any]]:
        """Run the write function's ``op`` with the queued recency marks of reads; wake waiters of removed records.

        With ``marks`` false the write sends the marks only if it needs room (it writes no recency of its own): when
        it does not, they stay queued for the next write, and the write reads nothing more for them. ``plan``: the
        room a write over a bound makes, as :meth:`_room_for_new` or :meth:`_room_to_grow` decided it. Returns
        the function's code, its value and its payload.
        """
        now = self._now()
        touches = self._touches.take()
        apply = "1" if marks or len(touches) > _DEFERRED_MARKS else "0"
        room = _NO_PLAN if plan is None else plan.args()
        argv: list[Any] = [
            op,
            repr(now),
            self._cursor_memory,
            *self._bounds,
            apply,
            len(touches),
            *touches,
            *room,
            *args,
        ]
        try:
            reply = self._call(lambda: self._function(_WRITE, argv))
        except BaseException:
            self._touches.give_back(touches)  # not written: keep them for the next write
            raise
        try:
            code = _text(reply[0])
            value = _text(reply[1])
            gone = [_text(key) for key in reply[2]]
            payload: list[Any] = reply[3]
            unsent = reply[4] == 1
        except (TypeError, ValueError, IndexError) as exc:
            raise self._damaged("a function's reply", exc) from exc
        if unsent:
            self._touches.give_back(touches)
        for key in gone:
            self._forget(key)
            try:
                owner, id = _split_key(key)
            except (ValueError, TypeError):
                continue
            self._notify(owner, id)
        return code, value, payload

    # ------------------------------------------------------------------ the parse cache

    def _record(self, key: str, incarnation: int, version: int, text: Any) -> ResponseRecord:
        hit = self._cache.get(key)
        if hit is not None and hit[0] == incarnation and hit[1] == version:
            return hit[2]
        try:
            record = ResponseRecord.from_dict(json.loads(_text(text)))
        except (ValueError, TypeError, KeyError, ResponseStoreError) as exc:
            raise self._damaged(f"the record {key!r}", exc) from exc
        if record.version != version:
            raise self._damaged(
                f"the record {key!r}", ValueError(f"version {version} but its JSON says {record.version}")
            )
        self._remember(key, incarnation, record)
        return record

    def _row(self, key: str, head: Any, text: Any) -> tuple[_Header, ResponseRecord]:
        """A header and a record JSON as read, parsed (the record through the cache)."""
        try:
            header = _Header(_text(head))
        except (TypeError, ValueError) as exc:
            raise self._damaged(f"the record {key!r}", exc) from exc
        if text is None:
            raise self._damaged(f"the record {key!r}", ValueError("a header without its record"))
        return header, self._record(key, header.incarnation, header.version, text)

    def _remember(self, key: str, incarnation: int, record: ResponseRecord) -> None:
        with self._cache_mutex:
            cache = self._cache
            old = cache.pop(key, None)
            if old is not None and old[0] == incarnation and old[1] > record.version:
                cache[key] = old  # another thread cached a newer version meanwhile
                return
            cache[key] = (incarnation, record.version, record)
            while len(cache) > _CACHE_RECORDS:
                cache.pop(next(iter(cache)))

    def _forget(self, key: str) -> None:
        with self._cache_mutex:
            self._cache.pop(key, None)
        self._drop_log(key)

    # ------------------------------------------------------------------ the logs this process wrote

    def _log_of(self, owner: str | None, stored: Stored) -> tuple[Stored, tuple[Chunk, ...]] | None:
        """The log of ``stored`` from the chunks this process wrote, when it wrote all of them; else read it.

        The conditional write that follows re-checks incarnation, version and event count (see BaseStore).
        """
        if not stored.record.is_terminal:
            key = self._key(owner, stored.record.id)
            with self._cache_mutex:
                log = self._logs.get(key)
                if log is not None and log.incarnation == stored.incarnation and log.events == stored.events:
                    return stored, tuple(log.chunks)
        return super()._log_of(owner, stored)

    def _wrote_log(self, key: str, incarnation: int, write: LogWrite) -> None:
        """Remember a chunk this process appended to the log of an active record (forget a log it cannot follow)."""
        with self._cache_mutex:
            log = self._logs.pop(key, None)
            if write.first == 0:
                if log is not None:
                    self._log_bytes -= log.stored
                log = _Log(incarnation)
            elif log is None or log.incarnation != incarnation or log.events != write.first:
                if log is not None:
                    self._log_bytes -= log.stored
                return
            log.chunks.append((write.first, write.events, write.text))
            log.events = write.first + write.events
            log.stored += write.stored
            self._log_bytes += write.stored
            self._logs[key] = log
            while self._logs and (len(self._logs) > _LOG_CACHE_RECORDS or self._log_bytes > _LOG_CACHE_BYTES):
                _, oldest = self._logs.popitem(last=False)
                self._log_bytes -= oldest.stored

    def _drop_log(self, key: str) -> None:
        with self._cache_mutex:
            log = self._logs.pop(key, None)
            if log is not None:
                self._log_bytes -= log.stored

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
                client: Any = self.client  # redis-py types pubsub() in some releases, not in others
                pubsub = client.pubsub(ignore_subscribe_messages=True)
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
            if message is None or message.get("type") != "message":
                continue
            try:
                keys = json.loads(_text(message["data"]))
                written = [_split_key(key) for key in keys if isinstance(key, str)]
            except (ValueError, TypeError):
                continue  # not a message of ours: someone else published on the channel
            for owner, id in written:
                self._notify(owner, id)

    # ------------------------------------------------------------------ atomic storage operations

    def _key(self, owner: str | None, id: str) -> str:
        return _key_prefix(_owner_key(owner)) + id

    def _fetch(self, owner: str | None, id: str) -> tuple[_Header, ResponseRecord, str] | None:
        """``(header, record, key)`` of the visible record ``(owner, id)``, or ``None``: one ``MGET``."""
        if not id.isascii() and not _encodable(id):
            return None  # no stored id has a lone surrogate: ids are checked at create
        key = self._key(owner, id)
        base = self._base
        head, text = self._call(lambda: self.client.mget(base + "h:" + key, base + "r:" + key))
        if head is None:
            return None
        header, record = self._row(key, head, text)
        if header.expires is not None and header.expires <= self._now():
            return None
        return header, record, key

    def _get(self, owner: str | None, id: str) -> ResponseRecord | None:
        found = self._fetch(owner, id)
        if found is None:
            return None
        header, record, key = found
        if header.status in _TERMINAL:  # only finished records compete for eviction
            self._touches.mark(key)
        return record

    def _peek(self, owner: str | None, id: str) -> ResponseRecord | None:
        found = self._fetch(owner, id)
        return None if found is None else found[1]

    def _read(self, owner: str | None, id: str) -> Stored | None:
        found = self._fetch(owner, id)
        if found is None:
            return None
        header, record, _ = found
        return Stored(record, header.events, header.bytes, header.incarnation, header.size)

    def _chain(self, owner: str | None, id: str, limit: int) -> list[ResponseRecord]:
        if not id.isascii() and not _encodable(id):
            return []
        prefix = _key_prefix(_owner_key(owner))
        now = repr(self._now())
        rows = self._read_call(["chain", now, prefix, id, min(limit, 10**9)])
        chain: list[ResponseRecord] = []
        seen: set[str] = set()
        for i in range(0, len(rows) - 1, 2):
            _, record = self._row("chain of " + prefix + id, rows[i], rows[i + 1])
            if record.id in seen or len(chain) >= limit:
                break
            seen.add(record.id)
            chain.append(record)
        return chain

    def _touch(self, records: Sequence[ResponseRecord]) -> None:
        for record in records:
            if record.is_terminal:
                self._touches.mark(self._key(record.owner, record.id))

    def _put_new(self, record: ResponseRecord, ttl: float | None, keep: Sequence[ResponseRecord], size: int) -> bool:
        owner_prefix = _key_prefix(_owner_key(record.owner))
        created, lease = record.created_at, record.lease_expires_at
        expiry = None if ttl is None else created + ttl
        args: list[Any] = [
            owner_prefix,
            record.id,
            _json_text(record.to_dict()),
            record.status.value,
            size,
            _optional(ttl),
            repr(created),
            _optional(lease),
            record.previous_response_id or "",
            _order_head(created),
            _optional(expiry),
            "" if expiry is None else _order_head(expiry),
            "" if lease is None else _order_head(lease),
            len(keep),
        ]
        kept = [_key_prefix(_owner_key(ancestor.owner)) + ancestor.id for ancestor in keep]
        for key, ancestor in zip(kept, keep, strict=True):
            args.extend((key, ancestor.version))
        code, value, payload = self._write("put", args, marks=bool(keep))
        if code == "room":
            plan = self._room_for_new(record.id, size, payload, set(kept))
            if plan is None:
                return False
            code, value, _ = self._write("put", args, marks=bool(keep), plan=plan)
        if code == "exists":
            raise ResponseExists(record.id)
        if code != "ok":
            return False  # changed, or the room planned was taken by another write: read again
        self._remember(owner_prefix + record.id, int(value), record)
        return True

    def _log_args(self, log: LogWrite | None) -> list[Any]:
        if log is None:
            return ["0", "0", 0, 0, 0, 0, ""]
        return [
            "1",
            "1" if log.replace else "0",
            log.first,
            log.events,
            log.event_bytes,
            log.stored,
            f"{log.first} {log.events} {log.text}",
        ]

    def _swap(
        self,
        old: Stored,
        new: ResponseRecord,
        size: int,
        log: LogWrite | None,
        conversation: ConversationWrite | None = None,
    ) -> bool:
        key = self._key(new.owner, new.id)
        args: list[Any] = [
            key,
            old.incarnation,
            old.record.version,
            old.events,
            *self._log_args(log),
            _json_text(new.to_dict()),
            new.status.value,
            new.version,
            size,
            "" if new.lease_expires_at is None else _order_head(new.lease_expires_at),
        ]
        if conversation is not None:
            args += ["1", *self._conversation_args(conversation)]
        if self._grow("swap", key, new.id, args, marks=new.is_terminal) != "ok":
            return False
        self._remember(key, old.incarnation, new)
        if new.is_terminal or (log is not None and log.replace):
            self._drop_log(key)
        elif log is not None:
            self._wrote_log(key, old.incarnation, log)
        return True

    def _append(self, old: Stored, log: LogWrite) -> bool:
        record = old.record
        key = self._key(record.owner, record.id)
        args = [key, old.incarnation, record.version, old.events, *self._log_args(log)]
        if self._grow("append", key, record.id, args, marks=False) != "ok":
            return False
        self._wrote_log(key, old.incarnation, log)
        return True

    def _grow(self, op: str, key: str, id: str, args: Sequence[Any], *, marks: bool) -> str:
        """Run ``swap`` or ``append`` on record ``key``; with a plan for room when it grows over ``max_bytes``."""
        code, _, payload = self._write(op, args, marks=marks)
        if code == "room":
            plan = self._room_to_grow(id, key, payload)
            if plan is None:
                return "changed"
            code, _, _ = self._write(op, args, marks=marks, plan=plan)
        return code

    # ------------------------------------------------------------------ room (decided by responsestore._room)

    def _room_for_new(self, id: str, size: int, payload: Sequence[Any], kept: set[str]) -> _Plan | None:
        """The room a new record needs, from the write function's ``room`` reply (usage after a full sweep).

        ``None``: the store changed while the plan read more candidates (read again and plan anew).

        Raises:
            StoreFull: no eviction could make room (nothing was evicted).
        """
        numbers, spared, first = self._room_reply(payload)
        usage = Usage(*numbers)
        plan = _Plan()
        evict = plan.taking(self._least_recent(kept, first))
        try:
            room_for_new(self.retention, id, size, usage, spared=spared, sweep=lambda: usage, evict=evict)
        except _Stale:
            return None
        return plan

    def _room_to_grow(self, id: str, key: str, payload: Sequence[Any]) -> _Plan | None:
        """The room record ``key`` growing needs, from the write function's ``room`` reply.

        ``None``: the store changed while the plan read more candidates (read again and plan anew).

        Raises:
            StoreFull: no eviction could make room and the record is not finishing (nothing was evicted).
        """
        (total, grows, others, finishing), _, first = self._room_reply(payload)
        plan = _Plan()
        try:
            plan.force = room_to_grow(
                self.retention,
                id,
                total=total,
                grows=grows,
                others=others,
                finishing=finishing == 1,
                evict=plan.taking(self._least_recent({key}, first)),
            )
        except _Stale:
            return None
        return plan

    def _room_reply(self, payload: Sequence[Any]) -> tuple[list[int], list[int], list[Any]]:
        """A ``room`` reply: its four numbers, the list of numbers that follows, and its first candidates."""
        try:
            numbers = [int(_text(value)) for value in payload[:4]]
            extra = int(_text(payload[4]))
            return numbers, [int(_text(value)) for value in payload[5 : 5 + extra]], list(payload[5 + extra :])
        except (TypeError, ValueError, IndexError) as exc:
            raise self._damaged("a function's reply", exc) from exc

    def _least_recent(self, spared: set[str], rows: list[Any]) -> Iterator[_Victim]:
        """The finished records not in ``spared``, least recently used first, read in batches as they are taken.

        The first batch, ``rows``, came with the ``room`` reply, in the same snapshot as the usage the plan counts
        from; the others are read later. Running out after one of those means the store changed in between (the
        usage promised more finished records): that raises :class:`_Stale`, never a :class:`StoreFull` or a
        finishing record let over the bound on a mixed view.
        """
        later, asked = False, _PREFETCH
        while True:
            try:
                read, last = int(_text(rows[0])), _text(rows[1])
                for i in range(2, len(rows) - 3, 4):
                    key = _text(rows[i])
                    if key not in spared:
                        yield _Victim(key, _text(rows[i + 1]), _text(rows[i + 2]), int(_text(rows[i + 3])))
            except (TypeError, ValueError, IndexError) as exc:
                raise self._damaged("the recency index", exc) from exc
            if read < asked:
                if later:
                    raise _Stale
                return
            later, asked = True, _EVICT_BATCH
            rows = self._read_call(["recency", repr(self._now()), last, asked])

    def _remove(self, old: Stored) -> bool:
        record = old.record
        code, _, _ = self._write("remove", [self._key(record.owner, record.id), old.incarnation, record.version])
        return code == "ok"

    def _leased(self, now: float, limit: int) -> list[ResponseRecord]:
        _, _, rows = self._write("leased", [max(1, min(limit, 10**9))])
        leased: list[tuple[float, int, ResponseRecord]] = []
        for i in range(0, len(rows) - 2, 3):
            try:
                incarnation, version = int(_text(rows[i])), int(_text(rows[i + 1]))
            except (TypeError, ValueError) as exc:
                raise self._damaged("the lease index", exc) from exc
            record = self._record("a leased record", incarnation, version, rows[i + 2])
            if record.lease_expires_at is not None and record.lease_expires_at <= now and not record.is_terminal:
                leased.append((record.lease_expires_at, incarnation, record))
        leased.sort(key=lambda item: (item[0], item[1]))
        return [record for _, _, record in leased[:limit]]

    def _sweep(self, limit: int | None) -> int:
        _, swept, _ = self._write("sweep", ["" if limit is None else limit, "0"])
        return int(swept)

    def sweep(self) -> int:
        """Remove every expired record and conversation now; return how many (one call of the write function).

        Expired records are already invisible; sweeping reclaims their memory. Writes sweep a few each, so only
        an idle store needs this (or a :class:`~responsestore.Sweeper`).
        """
        _, swept, _ = self._write("sweep", ["", "1"])
        return int(swept)

    # ------------------------------------------------------------------ conversations

    def _conversation_key(self, owner: str | None, id: str) -> str | None:
        """The key of conversation ``(owner, id)``, as a record's; ``None`` for an id no conversation can have."""
        if not id.isascii() and not _encodable(id):
            return None  # ids are checked before anything is stored: none has a lone surrogate
        return self._key(owner, id)

    def _conversation_args(self, write: ConversationWrite, *, new: bool = False) -> list[Any]:
        """The library's arguments of ``write``: key, version it expects (``new``: none), state, expiry, items.

        The state is stored as ``"VERSION ITEMS NEXT EXPIRY JSON"``, the expiry also as the score of the
        conversation in the expiry index (``+inf``: never).
        """
        state = write.new
        record, expiry = state.record, state.expires_at
        expires = _NONE if expiry is None else repr(float(expiry))
        args: list[Any] = [
            self._key(record.owner, record.id),
            "" if new else write.old.record.version,
            f"{record.version} {state.items} {state.next_position} {expires} {_json_text(record.to_dict())}",
            "+inf" if expiry is None else expires,
            "" if write.remove is None else write.remove,
            len(write.append),
        ]
        for position, item_id, item in write.append:
            args.extend((position, item_id, _json_text(item)))
        return args

    def _conversation_write(self, op: str, args: Sequence[Any]) -> tuple[str, str]:
        """The code and value of the write function's conversation ``op``.

        It sends none of the queued recency marks of reads: they wait for the next write of records.
        """
        argv: list[Any] = [op, repr(self._now()), self._cursor_memory, *self._bounds, "0", 0, *_NO_PLAN, *args]
        reply = self._call(lambda: self._function(_WRITE, argv))
        try:
            return _text(reply[0]), _text(reply[1])
        except (TypeError, ValueError, IndexError) as exc:
            raise self._damaged("a function's reply", exc) from exc

    def _conversation_state(self, key: str, text: Any) -> ConversationState:
        """A conversation's stored state ``"VERSION ITEMS NEXT EXPIRY JSON"``, parsed."""
        try:
            version, items, next_position, expiry, body = _text(text).split(" ", 4)
            record = ConversationRecord.from_dict(json.loads(body))
            expires_at = None if expiry == _NONE else float(expiry)
            state = ConversationState(record, int(items), int(next_position), expires_at)
            owner, id = _split_key(key)
            if (record.owner, record.id) != (owner, id):
                raise ValueError(f"it holds conversation {record.id!r} of another owner or id")
            if record.version != int(version):
                raise ValueError(f"version {version} but its JSON says {record.version}")
            if not 0 <= state.items <= state.next_position or not (expires_at is None or math.isfinite(expires_at)):
                raise ValueError(f"the counts or expiry {text!r:.80}")
        except (TypeError, ValueError, KeyError, ResponseStoreError) as exc:
            raise self._damaged(f"the conversation {key!r}", exc) from exc
        return state

    def _positioned(self, key: str, position: Any, item_id: Any, text: Any) -> Positioned:
        """An item of conversation ``key`` as the read function gave it: position, id and JSON."""
        try:
            number, id = int(_text(position)), _text(item_id)
            if text is None:
                raise ValueError(f"the item {id!r} has a position but no JSON")
            item = freeze_object(json.loads(_text(text)), "a stored item")
            if item.get("id") != id:
                raise ValueError(f"the item {id!r} holds another item")
        except (TypeError, ValueError, ResponseStoreError) as exc:
            raise self._damaged(f"an item of the conversation {key!r}", exc) from exc
        return number, id, item

    def _conversation(self, owner: str | None, id: str) -> ConversationState | None:
        key = self._conversation_key(owner, id)
        if key is None:
            return None
        text = self._call(lambda: self.client.get(self._base + "v:" + key))
        if text is None:
            return None
        state = self._conversation_state(key, text)
        if state.expires_at is not None and state.expires_at <= self._now():
            return None
        return state

    def _conversation_items(
        self, owner: str | None, id: str, after: int | None, count: int, *, descending: bool
    ) -> tuple[ConversationState, list[Positioned]] | None:
        key = self._conversation_key(owner, id)
        if key is None:
            return None
        now = repr(self._now())
        rows = self._read_call(
            ["conversation_items", now, key, "" if after is None else after, count, "1" if descending else "0"]
        )
        if not rows:
            return None
        state = self._conversation_state(key, rows[0])
        return state, [self._positioned(key, *rows[i : i + 3]) for i in range(1, len(rows) - 2, 3)]

    def _conversation_item(self, owner: str | None, id: str, item_id: str) -> Positioned | None:
        key = self._conversation_key(owner, id)
        if key is None or (not item_id.isascii() and not _encodable(item_id)):
            return None
        rows = self._read_call(["conversation_item", repr(self._now()), key, item_id])
        if not rows:
            return None
        self._conversation_state(key, rows[0])  # checked: a damaged conversation is an error, not an answer
        if len(rows) < 2:
            return None
        return self._positioned(key, rows[1], item_id, rows[2] if len(rows) > 2 else None)

    def _conversation_held(self, owner: str | None, id: str, item_ids: Sequence[str]) -> set[str]:
        key = self._conversation_key(owner, id)
        asked = [item_id for item_id in item_ids if item_id.isascii() or _encodable(item_id)]
        if key is None or not asked:
            return set()
        rows = self._read_call(["conversation_held", repr(self._now()), key, *asked])
        if not rows:
            return set()
        self._conversation_state(key, rows[0])
        try:
            return {_text(row) for row in rows[1:]}
        except (TypeError, ValueError) as exc:
            raise self._damaged(f"the conversation {key!r}", exc) from exc

    def _conversation_put(self, state: ConversationState, items: Sequence[Positioned]) -> None:
        args = self._conversation_args(ConversationWrite(state, state, tuple(items)), new=True)
        code, _ = self._conversation_write("conversation_put", args)
        if code == "full":  # only with a max_records
            raise ConversationFull(state.record.id, "max_records", self.retention.max_records or 0)

    def _conversation_swap(self, write: ConversationWrite) -> bool:
        code, _ = self._conversation_write("conversation_swap", self._conversation_args(write))
        return code == "ok"

    def _conversation_remove(self, old: ConversationState) -> bool:
        record = old.record
        code, _ = self._conversation_write("conversation_remove", [self._key(record.owner, record.id), record.version])
        return code == "ok"

    def _sweep_conversations(self) -> int:
        _, swept = self._conversation_write("conversation_sweep", [])
        return int(swept)

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
        # The first batch is read now, so an unknown cursor raises before iteration starts (paginate needs that).
        rows = self._page_batch(prefix, kind, start, descending, now, batch)

        def generate(rows: list[Any], batch: int) -> Iterator[ResponseRecord]:
            while True:
                last, scanned = _text(rows[1]), int(_text(rows[2]))
                for i in range(3, len(rows) - 1, 2):
                    yield self._row("a record of a page", rows[i], rows[i + 1])[1]
                if scanned < batch:
                    return
                batch = min(batch * 4, _SCAN_BATCH)
                rows = self._page_batch(prefix, "member", last, descending, now, batch)

        return generate(rows, batch)

    def _page_batch(  # noqa: PLR0917 - private, three call sites
        self, prefix: str, kind: str, start: str, descending: bool, now: str, batch: int, needle: str | None = None
    ) -> list[Any]:
        args: list[Any] = ["page", now, prefix, kind, start, "1" if descending else "0", batch]
        if needle is not None:
            args.append(needle)
        rows: list[Any] = self._read_call(args)
        if _text(rows[0]) == "unknown":
            raise unknown_cursor(start)
        return rows

    def _find_newest(
        self, owner: str | None, text: str, matches: Callable[[ResponseRecord], bool]
    ) -> ResponseRecord | None:
        # The read function looks for the text in each batch of the owner's records and sends only those holding it.
        prefix = _key_prefix(_owner_key(owner))
        now = repr(self._now())
        kind, start, batch = "none", "", 64  # the first batch small: the item sought is nearly always recent
        while True:
            rows = self._page_batch(prefix, kind, start, descending=True, now=now, batch=batch, needle=text)
            for i in range(3, len(rows) - 1, 2):
                record = self._row("a record of a search", rows[i], rows[i + 1])[1]
                if matches(record):
                    return record
            if int(_text(rows[2])) < batch:
                return None
            kind, start, batch = "member", _text(rows[1]), min(batch * 4, _SEARCH_BATCH)

    def _events(self, owner: str | None, id: str, after: int) -> tuple[Stored, tuple[Chunk, ...]] | None:
        if not id.isascii() and not _encodable(id):
            return None
        key = self._key(owner, id)
        now = repr(self._now())
        rows = self._read_call(["events", now, key, after])
        if not rows:
            return None
        header, record = self._row(key, rows[0], rows[1])
        stored = Stored(record, header.events, header.bytes, header.incarnation, header.size)
        try:
            chunks = tuple(_chunk(_text(value)) for value in rows[2:])
            _check_chunks(chunks, header.events, after)
        except (TypeError, ValueError) as exc:
            raise StorageError(f"the event log of {id!r} in {self!r} is damaged: {exc}"[:500], id=id) from None
        return stored, chunks

    def _count(self) -> int:
        return self._stats().records

    def _stats(self) -> StoreStats:
        now = repr(self._now())
        rows = self._read_call(["stats", now])
        try:
            counters = _counters(_text(rows[0]))
            by_status = {status: int(counters[status]) for status in _STATUSES}
            expired, total = int(counters["expired"]), int(counters["bytes"])
            for i in range(1, len(rows) - 1, 2):
                name = _text(rows[i])
                if name not in by_status:
                    raise ValueError(f"a record has the status {name[:40]!r}")
                by_status[name] -= 1
                expired += 1
                total -= int(_text(rows[i + 1]))
        except (TypeError, ValueError) as exc:
            raise self._damaged("its counters", exc) from exc
        return StoreStats(
            records=sum(by_status.values()),
            by_status=FrozenDict(by_status),
            created=int(counters["seq"]),
            deleted=int(counters["deleted"]),
            evicted=int(counters["evicted"]),
            expired=expired,
            bytes=total,
        )

    # ------------------------------------------------------------------ invariants

    def _check(self) -> None:  # noqa: PLR0912, PLR0915 - one list of invariants
        """Check every invariant, raising ``AssertionError``: records, logs, indexes, counters and tombstones agree.

        Reads every key of the store (for tests; call it while nothing else writes).
        """
        if self._closed:
            return
        client: Any = self.client
        base = self._base
        pattern = "".join("\\" + char if char in "*?[]\\" else char for char in base) + "*"
        keys = {_text(key)[len(base) :] for key in client.scan_iter(match=pattern, count=1000)}
        counter_text = client.get(self._counters)
        counters = _counters(_text(counter_text)) if counter_text is not None else None
        members = [_text(m) for m in client.zrange(base + "i", 0, -1)]
        scores = {float(score) for _, score in client.zrange(base + "i", 0, -1, withscores=True)}
        _invariant(scores <= {0.0}, "the index has a member with a score")
        order = {m for m in members if m.startswith("o")}
        expiry = {m for m in members if m.startswith("x")}
        lease = {m for m in members if m.startswith("l")}
        _invariant(len(order) + len(expiry) + len(lease) == len(members), "the index has a member of no kind")
        recency = {_text(k): float(s) for k, s in client.zrange(base + "u", 0, -1, withscores=True)}
        record_keys = sorted(key[2:] for key in keys if key.startswith("h:"))
        top = int(counters["seq"]) if counters else 0
        by_status = dict.fromkeys(_STATUSES, 0)
        total_bytes = active_bytes = 0
        min_expiry = math.inf
        named = {"c", "i", "u", "t", "q"}
        expected_order: set[str] = set()
        expected_expiry: set[str] = set()
        named_leases: set[str] = set()
        finished: set[str] = set()
        # Read in batches (MGET, all keys in the store's slot): a store of thousands of records checks in a few calls.
        heads = dict(zip(record_keys, _mget(client, [base + "h:" + key for key in record_keys]), strict=True))
        texts = dict(zip(record_keys, _mget(client, [base + "r:" + key for key in record_keys]), strict=True))
        chunk_names = [
            f"l:{key}:{number}" for key in record_keys for number in range(1, _Header(_text(heads[key])).chunks + 1)
        ]
        chunk_values = dict(zip(chunk_names, _mget(client, [base + name for name in chunk_names]), strict=True))
        for key in record_keys:
            fields = _text(heads[key]).split(" ")
            header = _Header(" ".join(fields))
            text = texts[key]
            _invariant(text is not None, f"the header of {key!r} has no record")
            record = ResponseRecord.from_dict(json.loads(_text(text)))
            owner, id = _split_key(key)
            named.update({"h:" + key, "r:" + key})
            _invariant((record.owner, record.id) == (owner, id), f"{key!r} holds another record")
            _invariant(record.version == header.version, f"the version of {key!r} disagrees with its JSON")
            _invariant(record.status.value == header.status, f"the status of {key!r} disagrees with its JSON")
            _invariant(0 < header.incarnation <= top, f"{key!r} has seq {header.incarnation} outside 1..{top}")
            _invariant(header.size == record_size(record), f"the stored size of {key!r} is not its record_size")
            _invariant(fields[11] == _order_head(record.created_at), f"the order head of {key!r}")
            _invariant(fields[12] == (record.previous_response_id or _NONE), f"the previous id of {key!r}")
            _invariant((fields[9] == _NONE) == (header.expires is None), f"{key!r}: a ttl without an expiry or back")
            seq = f"{header.incarnation:016x}"
            expected_order.add("o" + _key_prefix(_owner_key(owner)) + fields[11] + seq + id)
            if header.expires is not None:
                expected_expiry.add("x" + _order_head(header.expires) + key)
                min_expiry = min(min_expiry, header.expires)
            if record.is_terminal:
                _invariant(record.lease_holder is None and record.lease_expires_at is None, f"{key!r} holds a lease")
                finished.add(key)
            elif record.lease_expires_at is not None:
                _invariant(fields[10] == _order_head(record.lease_expires_at), f"the lease head of {key!r}")
                _invariant("l" + fields[10] + seq + key in lease, f"the lease of {key!r} is not indexed")
            else:
                _invariant(fields[10] == _NONE, f"{key!r} names a lease it does not hold")
            if fields[10] != _NONE:
                named_leases.add("l" + fields[10] + seq + key)
            by_status[header.status] += 1
            total_bytes += header.size + header.log_bytes
            if not record.is_terminal:
                active_bytes += header.size + header.log_bytes
            chunks = []
            for number in range(1, header.chunks + 1):
                value = chunk_values[f"l:{key}:{number}"]
                _invariant(value is not None, f"chunk {number} of {key!r} is missing")
                chunks.append(_chunk(_text(value)))
                named.add(f"l:{key}:{number}")
            _check_chunks(tuple(chunks), header.events, -1)
            _invariant(
                header.log_bytes == sum(len(text.encode()) for _, _, text in chunks), f"the log bytes of {key!r}"
            )
            _invariant(header.events <= self.event_limits.max_events, f"event log of {key!r} over max_events")
            _invariant(header.bytes <= self.event_limits.max_bytes, f"event log of {key!r} over max_event_bytes")
            _invariant((header.events == 0) == (header.chunks == 0), f"{key!r}: events without chunks or back")
            hit = self._cache.get(key)
            _invariant(
                hit is None or hit[0] != header.incarnation or hit[1] != record.version or hit[2] == record,
                f"the cache's copy of {key!r}",
            )
        named |= self._check_conversations(client, keys)
        _invariant(not (keys - named), f"keys of no record or conversation: {sorted(keys - named)[:5]}")
        _invariant(order == expected_order, "the order index disagrees with the records")
        _invariant(expiry == expected_expiry, "the expiry index disagrees with the records")
        _invariant(lease <= named_leases, "the lease index holds a member no record names")
        _invariant(set(recency) == finished, "the recency index is not the set of finished records")
        if counters is None:
            _invariant(not record_keys, "records without counters")
        else:
            for status in _STATUSES:
                _invariant(int(counters[status]) == by_status[status], f"the {status} counter")
            removed = int(counters["deleted"]) + int(counters["evicted"]) + int(counters["expired"])
            _invariant(top - removed == len(record_keys), "lifetime counters do not add up")
            _invariant(int(counters["bytes"]) == total_bytes, "the byte counter disagrees with the records")
            _invariant(int(counters["active_bytes"]) == active_bytes, "the active byte counter")
            _invariant(counters["hint"] <= min_expiry, "the earliest-expiry bound is above an expiry")
            _invariant(max(recency.values(), default=0) <= counters["tick"], "a recency tick above the counter")
        tombstones = {_text(k) for k in client.hkeys(base + "t")}
        queued = {_text(k) for k in client.zrange(base + "q", 0, -1)}
        _invariant(tombstones == queued, "tombstones and their queue disagree")
        _invariant(len(tombstones) <= self._cursor_memory, "tombstones unbounded")
        _invariant(counters is None or int(counters["tombs"]) == len(tombstones), "the tombstone counter")
        self._touches._check()
        _invariant(len(self._cache) <= _CACHE_RECORDS, "the record cache is unbounded")
        with self._cache_mutex:
            logs = list(self._logs.values())
        _invariant(len(logs) <= _LOG_CACHE_RECORDS, "the log cache is unbounded")
        _invariant(sum(log.stored for log in logs) == self._log_bytes <= _LOG_CACHE_BYTES, "the log cache's bytes")
        for log in logs:
            _check_chunks(tuple(log.chunks), log.events, -1)
        stats = self._stats()
        _invariant(stats.records == sum(stats.by_status.values()), "stats.by_status does not add up")

    def _check_conversations(self, client: Any, keys: set[str]) -> set[str]:
        """Check every conversation against its items and the expiry index; return the keys they name."""
        base = self._base
        conversation_keys = sorted(key[2:] for key in keys if key.startswith("v:"))
        states = dict(
            zip(conversation_keys, _mget(client, [base + "v:" + key for key in conversation_keys]), strict=True)
        )
        by_expiry = {_text(key): score for key, score in client.zrange(base + "ve", 0, -1, withscores=True)}
        _invariant(set(by_expiry) == set(conversation_keys), "the conversation expiry index disagrees")
        named = {"ve"}
        for key in conversation_keys:
            state = self._conversation_state(key, states[key])
            expiry = math.inf if state.expires_at is None else state.expires_at
            _invariant(by_expiry[key] == expiry, f"the expiry index has {key!r} at {by_expiry[key]}, not {expiry}")
            positions = {_text(id): score for id, score in client.zrange(base + "vo:" + key, 0, -1, withscores=True)}
            items = {_text(id): text for id, text in client.hgetall(base + "vi:" + key).items()}
            _invariant(state.items == len(positions) == len(items), f"the item count of {key!r}")
            _invariant(positions.keys() == items.keys(), f"the positions of {key!r} disagree with its items")
            _invariant(len(set(positions.values())) == len(positions), f"two items of {key!r} share a position")
            _invariant(state.items <= MAX_CONVERSATION_ITEMS, f"{key!r} holds too many items")
            for id, score in positions.items():
                _invariant(score == int(score) and 0 <= score < state.next_position, f"a position in {key!r}")
                self._positioned(key, int(score), id, items[id])
            named.update({"v:" + key, "vo:" + key, "vi:" + key})
        return named


def _mget(client: Any, keys: list[str]) -> list[Any]:
    """``MGET`` of ``keys``, 500 at a time (for ``_check``)."""
    values: list[Any] = []
    for start in range(0, len(keys), 500):
        values.extend(client.mget(keys[start : start + 500]))
    return values


def _counters(text: str) -> dict[str, float]:
    """The counters (``{P}:c``) by name."""
    values = [float(field) for field in text.split(" ")]
    names = (*_COUNTERS, *_STATUSES)
    if len(values) != len(names):
        raise ValueError(f"{len(values)} counters, not {len(names)}")
    return dict(zip(names, values, strict=True))


def _chunk(value: str) -> Chunk:
    """A stored chunk ``"FIRST COUNT TEXT"`` as ``(first, count, text)``."""
    first, count, text = value.split(" ", 2)
    if not (first.isdigit() and count.isdigit()):
        raise ValueError(f"a chunk starts {value[:40]!r}")
    return int(first), int(count), text


def _check_chunks(chunks: tuple[Chunk, ...], events: int, after: int) -> None:
    """Raise ``ValueError`` unless ``chunks`` follow each other, end at ``events``, hold every event past ``after``."""
    if not chunks:
        if events - 1 > after:
            raise ValueError(f"no chunk holds events {after + 1} to {events - 1}")
        return
    expected = chunks[0][0]
    if expected > after + 1:
        raise ValueError(f"no chunk holds event {after + 1}")
    for first, count, _ in chunks:
        if first != expected or count < 1:
            raise ValueError(f"a chunk from {first} of {count} events where one from {expected} was expected")
        expected = first + count
    if expected != events:
        raise ValueError(f"the chunks end at {expected}, the log at {events}")


def _invariant(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _client_parameters(client: Any) -> set[str]:
    """The query parameters redis-py takes for ``client``: the arguments of its pool and of its connections.

    A name outside them would reach a connection's constructor at the first call and fail there with a
    ``TypeError``; ``from_url`` refuses it at once instead.
    """
    pool = client.connection_pool
    names = set(getattr(redis.connection, "URL_QUERY_ARGUMENT_PARSERS", ()))
    for klass in (*type(pool).__mro__, *pool.connection_class.__mro__):
        init = vars(klass).get("__init__")
        if init is not None:
            with contextlib.suppress(TypeError, ValueError):
                names.update(inspect.signature(init).parameters)
    return names


def _without_password(url: str) -> str:
    """``url`` cut to 200 characters, its user and password hidden (error messages end up in logs)."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.partition("/")[0]:
        rest = "***@" + rest.partition("/")[0].rpartition("@")[2] + rest[len(rest.partition("/")[0]) :]
    return (scheme + sep + rest)[:200]
