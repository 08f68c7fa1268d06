"""A complete responsestore backend in one file: plain dicts under one lock. Simple and correct, not fast.

The tutorial of the docs' page "Writing a backend". It imports only public modules (``responsestore``,
``responsestore.backend``, ``responsestore.errors``) and passes the whole conformance suite
(``tests/test_backend_tutorial.py``). Every operation takes the one lock, so each is atomic by construction; most
scan every record, so each costs time in proportion to the store's size.
"""

from __future__ import annotations

import datetime
import itertools
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from responsestore.backend import (
    DEFAULT_MAX_CHAIN_DEPTH,
    DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_MAX_EVENTS,
    DEFAULT_MAX_RECORDS,
    DEFAULT_TTL,
    SWEEP_BATCH,
    BaseStore,
    Chunk,
    Clock,
    ConversationState,
    ConversationWrite,
    FrozenDict,
    LogWrite,
    Page,
    PageQuery,
    Positioned,
    ResponseRecord,
    ResponseStatus,
    Stored,
    StoreStats,
    Tombstones,
    Usage,
    fits_growth,
    paginate_records,
    record_size,
    room_for_new,
    room_to_grow,
    unknown_cursor,
)
from responsestore.errors import ConversationFull, ResponseExists, StorageError

Key = tuple[str | None, str]  # (owner, id)


class Row:
    """One stored record and its bookkeeping; changed only under the store's lock."""

    def __init__(self, record: ResponseRecord, ttl: float | None, seq: int, used: int, size: int) -> None:
        self.record = record
        self.ttl = ttl
        self.expires_at = None if ttl is None else record.created_at + ttl
        self.seq = seq  # creation sequence: the incarnation, and the tie-break of the creation order
        self.used = used  # recency tick: the least recently used finished record is evicted first
        self.size = size  # record_size(record), as BaseStore computed it
        self.chunks: list[Chunk] = []  # the event log, one chunk per write: (first, count, text)
        self.events = 0  # how many events the log holds
        self.event_bytes = 0  # their size as max_event_bytes counts them
        self.log_bytes = 0  # the bytes of the chunks' text, as max_bytes counts them

    @property
    def bytes(self) -> int:
        return self.size + self.log_bytes

    def stored(self) -> Stored:
        return Stored(self.record, self.events, self.event_bytes, self.seq, self.size)


class Conversation:
    """One stored conversation: its state and its items by position (positions only grow: dict order is theirs)."""

    def __init__(self, state: ConversationState, items: Sequence[Positioned]) -> None:
        self.state = state
        self.items: dict[int, Positioned] = {}
        self.ids: dict[str, int] = {}  # item id -> position
        self.add(items)

    def add(self, items: Sequence[Positioned]) -> None:
        for positioned in items:
            self.items[positioned[0]] = positioned
            self.ids[positioned[1]] = positioned[0]


class TutorialStore(BaseStore):
    """A thread-safe in-memory backend: dicts under one ``threading.Lock``, every operation one locked step."""

    def __init__(
        self,
        *,
        ttl: float | datetime.timedelta | None = DEFAULT_TTL,
        max_records: int | None = DEFAULT_MAX_RECORDS,
        clock: Clock = time.time,
        max_chain_depth: int = DEFAULT_MAX_CHAIN_DEPTH,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        max_bytes: int | None = None,
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
        self._lock = threading.Lock()
        self._closed = False
        self._rows: dict[Key, Row] = {}
        self._removed: Tombstones[Key, tuple[float, int]] = Tombstones(self.retention.max_records)  # for cursors
        self._conversations: dict[Key, Conversation] = {}
        self._seqs = itertools.count()
        self._ticks = itertools.count()
        self._counts = {"created": 0, "deleted": 0, "evicted": 0, "expired": 0}

    # ------------------------------------------------------------------ helpers (call with the lock held)

    def _begin(self) -> float:
        """Refuse a closed store; return the clock's reading."""
        if self._closed:
            raise StorageError(f"the store {self!r} is closed")
        return self._now()

    @staticmethod
    def _alive(row: Row, now: float) -> bool:
        """Whether ``row`` has not expired at ``now``."""
        return row.expires_at is None or row.expires_at > now

    def _visible(self, owner: str | None, id: str, now: float) -> Row | None:
        row = self._rows.get((owner, id))
        return row if row is not None and self._alive(row, now) else None

    def _current(self, old: Stored, now: float) -> Row | None:
        """The row of ``old`` if nothing changed since it was read: incarnation, version and event count."""
        row = self._visible(old.record.owner, old.record.id, now)
        if row is None or row.seq != old.incarnation or row.record.version != old.record.version:
            return None
        return row if row.events == old.events else None

    def _drop(self, row: Row, why: str) -> None:
        """Remove ``row`` and its log, remember its place for cursors, count it, wake its waiters."""
        key = (row.record.owner, row.record.id)
        del self._rows[key]
        self._removed.bury(key, (row.record.created_at, row.seq))
        self._counts[why] += 1
        self._notify(*key)

    def _sweep_locked(self, limit: int | None, now: float) -> int:
        expired = [row for row in self._rows.values() if not self._alive(row, now)]
        expired.sort(key=lambda row: (row.expires_at, row.seq))
        for row in expired[:limit]:
            self._drop(row, "expired")
        return len(expired[:limit])

    def _bytes(self) -> int:
        return sum(row.bytes for row in self._rows.values())

    def _usage(self) -> Usage:
        active = [row for row in self._rows.values() if not row.record.is_terminal]
        return Usage(len(self._rows), self._bytes(), len(active), sum(row.bytes for row in active))

    def _evict_one(self, spare: Sequence[Row]) -> int | None:
        """Evict the least recently used finished record not in ``spare``; its bytes (``None``: there was none)."""
        finished = [row for row in self._rows.values() if row.record.is_terminal and row not in spare]
        if not finished:
            return None
        victim = min(finished, key=lambda row: row.used)
        self._drop(victim, "evicted")
        return victim.bytes

    def _make_room(self, row: Row, grows: int, finishing: bool) -> None:
        """Evict so that ``row`` may grow by ``grows`` bytes within ``max_bytes``; ``StoreFull`` if it cannot."""
        if fits_growth(self.retention, self._bytes() + grows, grows):
            return  # nothing to decide: spare the sums below
        others = [other for other in self._rows.values() if other.record.is_terminal and other is not row]
        room_to_grow(
            self.retention,
            row.record.id,
            total=self._bytes() + grows,
            grows=grows,
            others=sum(other.bytes for other in others),
            finishing=finishing,
            evict=lambda: self._evict_one([row]),
        )

    @staticmethod
    def _write_log(row: Row, log: LogWrite) -> None:
        if log.replace:
            row.chunks, row.log_bytes = [], 0
        row.chunks.append((log.first, log.events, log.text))
        row.log_bytes += log.stored
        row.events = log.first + log.events
        row.event_bytes = log.event_bytes

    def _live_conversation(self, owner: str | None, id: str, now: float) -> Conversation | None:
        found = self._conversations.get((owner, id))
        if found is None or (found.state.expires_at is not None and found.state.expires_at <= now):
            return None
        return found

    # ------------------------------------------------------------------ reads

    def _get(self, owner: str | None, id: str) -> ResponseRecord | None:
        with self._lock:
            row = self._visible(owner, id, self._begin())
            if row is None:
                return None
            row.used = next(self._ticks)
            return row.record

    def _peek(self, owner: str | None, id: str) -> ResponseRecord | None:
        with self._lock:
            row = self._visible(owner, id, self._begin())
            return None if row is None else row.record

    def _read(self, owner: str | None, id: str) -> Stored | None:
        with self._lock:
            row = self._visible(owner, id, self._begin())
            return None if row is None else row.stored()

    def _touch(self, records: Sequence[ResponseRecord]) -> None:
        with self._lock:
            self._begin()
            for record in records:
                row = self._rows.get((record.owner, record.id))
                if row is not None:
                    row.used = next(self._ticks)

    def _leased(self, now: float, limit: int) -> list[ResponseRecord]:
        with self._lock:
            self._begin()
            due = [
                row
                for row in self._rows.values()
                if not row.record.is_terminal
                and row.record.lease_expires_at is not None
                and row.record.lease_expires_at <= now
                and self._alive(row, now)
            ]
            due.sort(key=lambda row: (row.record.lease_expires_at, row.seq))
            return [row.record for row in due[:limit]]

    def _page(
        self, owner: str | None, query: PageQuery, matches: Callable[[ResponseRecord], bool] | None
    ) -> Page[ResponseRecord]:
        with self._lock:
            now = self._begin()
            # The owner's visible records in creation order (created_at, ties by creation sequence): one snapshot.
            ordered = sorted(
                (row for (row_owner, _), row in self._rows.items() if row_owner == owner and self._alive(row, now)),
                key=lambda row: (row.record.created_at, row.seq),
            )

            def scan(cursor: str | None, descending: bool) -> Iterator[ResponseRecord]:
                """The records strictly after ``cursor`` in this direction; the cursor may be a removed record."""
                place: tuple[float, int] | None = None
                if cursor is not None:
                    row = self._rows.get((owner, cursor))  # visible or not, it has a place
                    place = (
                        (row.record.created_at, row.seq) if row is not None else self._removed.place((owner, cursor))
                    )
                    if place is None:
                        raise unknown_cursor(cursor)
                for row in reversed(ordered) if descending else ordered:
                    key = (row.record.created_at, row.seq)
                    if place is None or (key < place if descending else key > place):
                        yield row.record

            return paginate_records(scan, query, matches)

    def _events(self, owner: str | None, id: str, after: int) -> tuple[Stored, tuple[Chunk, ...]] | None:
        with self._lock:
            row = self._visible(owner, id, self._begin())
            if row is None:
                return None
            # The chunks holding an event numbered above ``after``: first + count - 1 > after.
            return row.stored(), tuple(chunk for chunk in row.chunks if chunk[0] + chunk[1] - 1 > after)

    def _count(self) -> int:
        with self._lock:
            now = self._begin()
            return sum(1 for row in self._rows.values() if self._alive(row, now))

    def _stats(self) -> StoreStats:
        with self._lock:
            now = self._begin()
            by_status = dict.fromkeys((status.value for status in ResponseStatus), 0)
            visible = [row for row in self._rows.values() if self._alive(row, now)]
            for row in visible:
                by_status[row.record.status.value] += 1
            return StoreStats(
                records=len(visible),
                by_status=FrozenDict(by_status),
                created=self._counts["created"],
                deleted=self._counts["deleted"],
                evicted=self._counts["evicted"],
                expired=self._counts["expired"] + len(self._rows) - len(visible),  # unswept ones count already
                bytes=sum(row.bytes for row in visible),
            )

    # ------------------------------------------------------------------ writes

    def _put_new(self, record: ResponseRecord, ttl: float | None, keep: Sequence[ResponseRecord], size: int) -> bool:
        with self._lock:
            now = self._begin()
            self._sweep_locked(SWEEP_BATCH, now)
            leftover = self._rows.get((record.owner, record.id))
            if leftover is not None:
                if self._alive(leftover, now):
                    raise ResponseExists(record.id)
                self._drop(leftover, "expired")  # expired, not swept yet: it goes now
            kept = []
            for ancestor in keep:
                row = self._visible(ancestor.owner, ancestor.id, now)
                if row is None or row.record.version != ancestor.version:
                    return False  # the chain changed since BaseStore read it: it reads again
                kept.append(row)

            def sweep() -> Usage:
                self._sweep_locked(None, now)
                return self._usage()

            room_for_new(  # raises StoreFull, having evicted nothing, if evicting cannot make room
                self.retention,
                record.id,
                size,
                self._usage(),
                spared=[row.bytes for row in kept if row.record.is_terminal],
                sweep=sweep,
                evict=lambda: self._evict_one(kept),
            )
            for row in reversed(kept):  # oldest first: the chain stays alive and becomes the most recently used
                if row.ttl is not None:
                    row.expires_at = record.created_at + row.ttl
                row.used = next(self._ticks)
            self._rows[record.owner, record.id] = Row(record, ttl, next(self._seqs), next(self._ticks), size)
            self._removed.revive((record.owner, record.id))
            self._counts["created"] += 1
            return True

    def _swap(
        self,
        old: Stored,
        new: ResponseRecord,
        size: int,
        log: LogWrite | None,
        conversation: ConversationWrite | None = None,
    ) -> bool:
        with self._lock:
            now = self._begin()
            self._sweep_locked(SWEEP_BATCH, now)
            row = self._current(old, now)
            if row is None:
                return False
            target = None
            if conversation is not None:
                target = self._live_conversation(conversation.old.record.owner, conversation.old.record.id, now)
                if target is None or target.state.record.version != conversation.old.record.version:
                    return False
            growth = 0 if log is None else (log.stored - row.log_bytes if log.replace else log.stored)
            self._make_room(row, size - row.size + growth, new.is_terminal)
            if log is not None:
                self._write_log(row, log)
            row.record, row.size, row.used = new, size, next(self._ticks)
            if target is not None and conversation is not None:
                self._apply(target, conversation)
            return True

    def _append(self, old: Stored, log: LogWrite) -> bool:
        with self._lock:
            row = self._current(old, self._begin())
            if row is None:
                return False
            self._make_room(row, log.stored, finishing=False)
            self._write_log(row, log)
            return True

    def _remove(self, old: Stored) -> bool:
        with self._lock:
            now = self._begin()
            self._sweep_locked(SWEEP_BATCH, now)
            row = self._visible(old.record.owner, old.record.id, now)
            if row is None or row.seq != old.incarnation or row.record.version != old.record.version:
                return False
            self._drop(row, "deleted")
            return True

    def _sweep(self, limit: int | None) -> int:
        with self._lock:
            return self._sweep_locked(limit, self._begin())

    # ------------------------------------------------------------------ conversations

    def _conversation(self, owner: str | None, id: str) -> ConversationState | None:
        with self._lock:
            found = self._live_conversation(owner, id, self._begin())
            return None if found is None else found.state

    def _conversation_items(
        self, owner: str | None, id: str, after: int | None, count: int, *, descending: bool
    ) -> tuple[ConversationState, list[Positioned]] | None:
        with self._lock:
            found = self._live_conversation(owner, id, self._begin())
            if found is None:
                return None
            items = list(reversed(found.items.values())) if descending else list(found.items.values())
            if after is not None:
                items = [item for item in items if (item[0] < after if descending else item[0] > after)]
            return found.state, items[:count]

    def _conversation_item(self, owner: str | None, id: str, item_id: str) -> Positioned | None:
        with self._lock:
            found = self._live_conversation(owner, id, self._begin())
            position = None if found is None else found.ids.get(item_id)
            return None if found is None or position is None else found.items[position]

    def _conversation_put(self, state: ConversationState, items: Sequence[Positioned]) -> None:
        with self._lock:
            now = self._begin()
            self._sweep_conversations_locked(now)
            limit = self.retention.max_records
            if limit is not None and len(self._conversations) >= limit:
                raise ConversationFull(state.record.id, "max_records", limit)
            self._conversations[state.record.owner, state.record.id] = Conversation(state, items)

    @staticmethod
    def _apply(found: Conversation, write: ConversationWrite) -> None:
        found.state = write.new
        if write.remove is not None:
            del found.items[found.ids.pop(write.remove)]
        found.add(write.append)

    def _conversation_swap(self, write: ConversationWrite) -> bool:
        with self._lock:
            old = write.old.record
            found = self._live_conversation(old.owner, old.id, self._begin())
            if found is None or found.state.record.version != old.version:
                return False
            self._apply(found, write)
            return True

    def _conversation_remove(self, old: ConversationState) -> bool:
        with self._lock:
            found = self._live_conversation(old.record.owner, old.record.id, self._begin())
            if found is None or found.state.record.version != old.record.version:
                return False
            del self._conversations[old.record.owner, old.record.id]
            return True

    def _sweep_conversations(self) -> int:
        with self._lock:
            return self._sweep_conversations_locked(self._begin())

    def _sweep_conversations_locked(self, now: float) -> int:
        expired = [key for key, found in self._conversations.items() if self._live_conversation(*key, now) is None]
        for key in expired:
            del self._conversations[key]
        return len(expired)

    # ------------------------------------------------------------------ closing and checking

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._rows.clear()
            self._removed.clear()
            self._conversations.clear()
        self._waiters.wake_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        return f"<TutorialStore {'closed' if self._closed else 'open'} at {id(self):#x}>"

    def _check(self) -> None:
        with self._lock:
            if self._closed:
                assert not self._rows, "a closed store keeps records"
                assert not self._conversations, "a closed store keeps conversations"
                return
            counts = self._counts
            assert counts["created"] - counts["deleted"] - counts["evicted"] - counts["expired"] == len(self._rows)
            assert len({row.seq for row in self._rows.values()}) == len(self._rows), "an incarnation given twice"
            self._removed.check(self._rows.keys())
            for (owner, id), row in self._rows.items():
                assert (row.record.owner, row.record.id) == (owner, id), f"{id!r} is filed under the wrong key"
                assert row.size == record_size(row.record), f"the size of {id!r}"
                ends = [0, *itertools.accumulate(count for _, count, _ in row.chunks)]
                assert [first for first, _, _ in row.chunks] == ends[:-1], f"the chunks of {id!r}"
                assert ends[-1] == row.events, f"the event count of {id!r}"
                assert row.log_bytes == sum(len(text.encode()) for _, _, text in row.chunks), f"the log of {id!r}"
            for found in self._conversations.values():
                assert found.state.items == len(found.items) == len(found.ids), "a conversation's item count"
                assert all(position < found.state.next_position for position in found.items), "an item's position"
