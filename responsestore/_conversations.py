"""Conversations: a durable, ordered list of items that responses read as context and append to when they end.

A conversation (OpenAI's Conversations API) is an id, a creation time, metadata and its items in order. Callers
add items in batches and delete them one at a time; a response created with ``conversation=`` reads every item
as its context, and when it ends ``completed`` or ``incomplete`` its input and output items are appended in the
same atomic write that finishes it, so two responses finishing on one conversation from two processes both land,
one after the other, nothing lost.

The rules live here once: :class:`ConversationStore` (mixed into :class:`~responsestore.BaseStore`) validates,
reads, decides and writes conditionally, again on a lost race. A backend supplies the few atomic storage
operations at the bottom of the class; each stores positions, item ids and items as it is given them.

Retention: a conversation expires ``ttl`` seconds (the store's) after its last change, like a response after its
creation; ``max_records`` bounds how many conversations a store holds (a create beyond it is refused with
:class:`~responsestore.ConversationFull`, nothing is evicted: conversations are the caller's to delete) and
:data:`MAX_CONVERSATION_ITEMS` how many items one holds.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import attrs

from ._checks import check_owner, describe
from ._ids import check_id
from ._items import normalize_items
from ._json import FrozenDict, thaw
from ._lifecycle import check_expected_version
from ._paging import Page, PageQuery
from ._records import ResponseRecord, check_metadata
from .errors import (
    ConversationFull,
    ConversationNotFound,
    InvalidArgument,
    ItemNotFound,
    StorageError,
    VersionConflict,
)

__all__ = [
    "MAX_CONVERSATION_ITEMS",
    "ConversationRecord",
    "ConversationState",
    "ConversationStore",
    "ConversationWrite",
    "Positioned",
    "conversation_of",
    "new_conversation_id",
]

#: The most items one conversation holds; adding beyond it is refused with :class:`~responsestore.ConversationFull`.
MAX_CONVERSATION_ITEMS = 100_000

#: How many times a conversation write reads and decides again after losing a race (each loss is another's win).
_ATTEMPTS = 100

#: ``(position, item id, item)``: an item as a backend stores it. Positions start at 0 and only grow.
Positioned = tuple[int, str, FrozenDict]


def new_conversation_id() -> str:
    """Return a fresh conversation id: ``conv_`` and 32 hex characters from a random UUID."""
    return "conv_" + uuid.uuid4().hex


def _check_version(instance: object, attribute: object, value: Any) -> None:
    if value.__class__ is not int or value < 1:
        raise InvalidArgument(f"version must be a positive int, not {describe(value)}")


@attrs.frozen(slots=True)
class ConversationRecord:
    """One stored conversation, without its items (read them with :meth:`BaseStore.conversation_items`).

    Immutable; ``version`` grows by one with every change to the conversation, its metadata or its items.
    """

    object: ClassVar[str] = "conversation"

    id: str = attrs.field(validator=lambda _i, _a, v: check_id(v))
    created_at: float
    metadata: FrozenDict = attrs.field(default=None, converter=check_metadata)
    owner: str | None = None
    version: int = attrs.field(default=1, validator=_check_version)

    def to_openai(self) -> dict[str, Any]:
        """OpenAI's JSON for the conversation: ``id``, ``object``, ``created_at`` (whole seconds), ``metadata``."""
        return {
            "id": self.id,
            "object": "conversation",
            "created_at": int(self.created_at),
            "metadata": thaw(self.metadata),
        }

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON values (what backends store)."""
        return {
            "id": self.id,
            "created_at": self.created_at,
            "metadata": thaw(self.metadata),
            "owner": self.owner,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConversationRecord:
        """The record :meth:`to_dict` gave.

        Raises:
            InvalidArgument: ``data`` is not such a dict.
        """
        try:
            return cls(
                id=data["id"],
                created_at=float(data["created_at"]),
                metadata=data["metadata"],
                owner=data["owner"],
                version=data["version"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgument(f"not a stored conversation: {exc!r}"[:300]) from None


class ConversationState(NamedTuple):
    """A conversation as a backend holds it: the record and the bookkeeping of its item list."""

    record: ConversationRecord
    items: int  # how many items it holds
    next_position: int  # the position its next item takes
    expires_at: float | None  # when it stops being visible; ``None``: never


class ConversationWrite(NamedTuple):
    """One conditional change of a conversation: lands only if the conversation is still ``old``.

    ``new`` is the state after the write (its record one version above ``old``'s); ``append`` the items added at
    positions ``old.next_position`` onward; ``remove`` the id of an item deleted, or ``None``.
    """

    old: ConversationState
    new: ConversationState
    append: tuple[Positioned, ...] = ()
    remove: str | None = None


def conversation_of(extra: Mapping[str, Any]) -> str | None:
    """The id of the conversation a response's ``extra`` names (``extra["conversation"]["id"]``), or ``None``."""
    value = extra.get("conversation")
    found = value.get("id") if isinstance(value, Mapping) else None
    return found if isinstance(found, str) else None


class ConversationStore:
    """The Conversations API of every store: public methods written once, over a backend's storage operations."""

    # Provided by BaseStore.
    retention: Any

    def _now(self) -> float:  # pragma: no cover - BaseStore's
        raise NotImplementedError

    # ------------------------------------------------------------------ atomic storage operations (backends)
    #
    # As for responses, each is one atomic step; "visible" means stored and not expired at ``self._now()``.
    # Arguments are checked and frozen; ids are strings, maybe not valid ones.

    def _unsupported(self) -> StorageError:
        return StorageError(f"{type(self).__name__} does not keep conversations")

    def _conversation(self, owner: str | None, id: str) -> ConversationState | None:
        """The visible conversation ``(owner, id)``, or ``None``."""
        raise self._unsupported()

    def _conversation_items(
        self, owner: str | None, id: str, after: int | None, count: int, *, descending: bool
    ) -> tuple[ConversationState, builtins.list[Positioned]] | None:
        """The conversation and up to ``count`` of its items beyond position ``after``, read together.

        Items in position order (descending: highest first), strictly above ``after`` (descending: below it);
        ``after=None`` starts at the first (descending: the last) item. ``None`` if the conversation is not visible.
        """
        raise self._unsupported()

    def _conversation_item(self, owner: str | None, id: str, item_id: str) -> Positioned | None:
        """The item ``item_id`` of the visible conversation ``(owner, id)``, or ``None``."""
        raise self._unsupported()

    def _conversation_held(self, owner: str | None, id: str, item_ids: Sequence[str]) -> set[str]:
        """Which of ``item_ids`` the visible conversation ``(owner, id)`` holds. This default asks item by item."""
        return {item_id for item_id in item_ids if self._conversation_item(owner, id, item_id) is not None}

    def _conversation_put(self, state: ConversationState, items: Sequence[Positioned]) -> None:
        """Store a new conversation (its id is fresh) with its first ``items``; atomically.

        First remove expired conversations (at least as many as it takes to answer the next step right); then,
        if the store already holds ``retention.max_records`` visible conversations, raise
        :class:`~responsestore.ConversationFull` (bound ``"max_records"``) and store nothing.
        """
        raise self._unsupported()

    def _conversation_swap(self, write: ConversationWrite) -> bool:
        """Apply ``write`` if the conversation is visible at ``write.old.record.version``; else return ``False``.

        Stores ``write.new`` (record, counts, expiry), adds ``write.append`` and deletes the item ``write.remove``.
        """
        raise self._unsupported()

    def _conversation_remove(self, old: ConversationState) -> bool:
        """Delete the conversation and its items if it is visible at ``old.record.version``; else ``False``."""
        raise self._unsupported()

    def _sweep_conversations(self) -> int:
        """Remove every expired conversation; return how many. The default: none kept, none removed."""
        return 0

    # ------------------------------------------------------------------ public API

    def create_conversation(
        self,
        items: Iterable[Mapping[str, Any]] = (),
        *,
        metadata: Mapping[str, str] | None = None,
        owner: str | None = None,
    ) -> ConversationRecord:
        """Create a conversation holding ``items`` (at most 20, as OpenAI allows; items without an ``id`` get one).

        Raises:
            InvalidArgument: an argument is malformed.
            ConversationFull: the store holds ``max_records`` conversations.
        """
        owner = check_owner(owner)
        frozen = normalize_items(items, "items")
        if len(frozen) > MAX_BATCH:
            raise InvalidArgument(f"items holds {len(frozen)} items; at most {MAX_BATCH} are added at once")
        record = ConversationRecord(
            id=new_conversation_id(), created_at=self._now(), metadata=check_metadata(metadata), owner=owner
        )
        positioned = tuple((n, item["id"], item) for n, item in enumerate(frozen))
        self._conversation_put(
            ConversationState(record, len(frozen), len(frozen), self._conversation_expiry()), positioned
        )
        return record

    def get_conversation(self, id: str, *, owner: str | None = None) -> ConversationRecord:
        """The conversation ``id`` of this owner.

        Raises:
            ConversationNotFound: no such conversation for this owner.
        """
        return self._conversation_visible(check_owner(owner), check_id(id, "conversation id")).record

    def update_conversation(
        self,
        id: str,
        *,
        metadata: Mapping[str, str] | None,
        expected_version: int | None = None,
        owner: str | None = None,
    ) -> ConversationRecord:
        """Replace the conversation's metadata (``None``: none); returns the conversation as stored.

        Raises:
            ConversationNotFound: no such conversation for this owner.
            VersionConflict: ``expected_version`` does not match.
            InvalidArgument: the metadata is malformed.
        """
        frozen = check_metadata(metadata)
        return self._conversation_change(owner, id, expected_version, lambda state: ((), None, frozen)).new.record

    def delete_conversation(
        self, id: str, *, expected_version: int | None = None, owner: str | None = None
    ) -> ConversationRecord:
        """Delete the conversation and its items; returns it as it was. Its responses stay.

        Raises:
            ConversationNotFound: no such conversation for this owner.
            VersionConflict: ``expected_version`` does not match.
        """
        owner = check_owner(owner)
        conversation_id = check_id(id, "conversation id")
        expected = check_expected_version(expected_version)
        for _ in range(_ATTEMPTS):
            state = self._conversation_visible(owner, conversation_id)
            _check_expected(state.record, expected)
            if self._conversation_remove(state):
                return state.record
        raise _too_busy(conversation_id)

    def add_conversation_items(
        self,
        id: str,
        items: Iterable[Mapping[str, Any]],
        *,
        expected_version: int | None = None,
        owner: str | None = None,
    ) -> tuple[FrozenDict, ...]:
        """Append ``items`` (1 to 20) to the conversation in one atomic write; returns them as stored.

        Items without an ``id`` get one; an id the conversation already holds is refused.

        Raises:
            ConversationNotFound: no such conversation for this owner.
            InvalidArgument: an item is malformed, repeats an id, or there are none or too many.
            ConversationFull: the conversation would hold more than :data:`MAX_CONVERSATION_ITEMS` items.
            VersionConflict: ``expected_version`` does not match.
        """
        frozen = normalize_items(items, "items")
        if not 1 <= len(frozen) <= MAX_BATCH:
            raise InvalidArgument(f"items holds {len(frozen)} items; add 1 to {MAX_BATCH} at once")
        self._conversation_change(owner, id, expected_version, lambda state: (frozen, None, None))
        return frozen

    def get_conversation_item(self, id: str, item_id: str, *, owner: str | None = None) -> FrozenDict:
        """The item ``item_id`` of the conversation, read-only (``item.thaw()`` for a mutable copy).

        Raises:
            ConversationNotFound: no such conversation for this owner.
            ItemNotFound: the conversation holds no such item.
        """
        owner = check_owner(owner)
        conversation_id = check_id(id, "conversation id")
        check_id(item_id, "item id")
        found = self._conversation_item(owner, conversation_id, item_id)
        if found is None:
            self._conversation_visible(owner, conversation_id)
            raise ItemNotFound(conversation_id, item_id)
        return found[2]

    def delete_conversation_item(
        self, id: str, item_id: str, *, expected_version: int | None = None, owner: str | None = None
    ) -> ConversationRecord:
        """Delete one item of the conversation; returns the conversation as stored after it.

        Raises:
            ConversationNotFound: no such conversation for this owner.
            ItemNotFound: the conversation holds no such item.
            VersionConflict: ``expected_version`` does not match.
        """
        check_id(item_id, "item id")
        return self._conversation_change(owner, id, expected_version, lambda state: ((), item_id, None)).new.record

    def conversation_items(
        self,
        id: str,
        *,
        limit: int = 20,
        after: str | None = None,
        before: str | None = None,
        order: str = "desc",
        owner: str | None = None,
    ) -> Page[FrozenDict]:
        """One page of the conversation's items, newest first by default (OpenAI's order); cursors are item ids.

        Raises:
            ConversationNotFound: no such conversation for this owner.
            InvalidArgument: bad paging arguments, or a cursor that is not an item of this conversation.
        """
        owner = check_owner(owner)
        conversation_id = check_id(id, "conversation id")
        query = PageQuery.check(limit, after, before, order)
        backwards = query.before is not None
        cursor = query.before if backwards else query.after
        position = None
        if cursor is not None:
            found = self._conversation_item(owner, conversation_id, cursor)
            if found is None:
                self._conversation_visible(owner, conversation_id)
                raise InvalidArgument(
                    f"unknown cursor {cursor!r}: no such item in conversation {conversation_id!r}", id=conversation_id
                )
            position = found[0]
        read = self._conversation_items(
            owner, conversation_id, position, query.limit + 1, descending=query.descending != backwards
        )
        if read is None:
            raise ConversationNotFound(conversation_id)
        items = [item for _, _, item in read[1]]
        has_more = len(items) > query.limit
        del items[query.limit :]
        if backwards:
            items.reverse()
        if not items:
            return Page(data=(), first_id=None, last_id=None, has_more=False)
        return Page(data=tuple(items), first_id=items[0]["id"], last_id=items[-1]["id"], has_more=has_more)

    def conversation_context(self, id: str, *, owner: str | None = None) -> tuple[FrozenDict, ...]:
        """Every item of the conversation, oldest first: the context of a response created in it.

        One consistent read per 1,000 items (a long conversation read while another writes it may show a later
        state in its later pages).

        Raises:
            ConversationNotFound: no such conversation for this owner.
        """
        owner = check_owner(owner)
        conversation_id = check_id(id, "conversation id")
        items: list[FrozenDict] = []
        position: int | None = None
        while True:
            read = self._conversation_items(owner, conversation_id, position, _CONTEXT_BATCH, descending=False)
            if read is None:
                raise ConversationNotFound(conversation_id)
            items += (item for _, _, item in read[1])
            if len(read[1]) < _CONTEXT_BATCH:
                return tuple(items)
            position = read[1][-1][0]

    # ------------------------------------------------------------------ the rules

    def _conversation_expiry(self) -> float | None:
        ttl = self.retention.ttl
        return None if ttl is None else self._now() + ttl

    def _conversation_visible(self, owner: str | None, id: str) -> ConversationState:
        state = self._conversation(owner, id)
        if state is None:
            raise ConversationNotFound(id)
        return state

    def _conversation_change(
        self, owner: object, id: object, expected_version: object, decide: Any
    ) -> ConversationWrite:
        """Read, decide ``(items to add, item id to delete, new metadata or None)``, write conditionally; again."""
        checked_owner = check_owner(owner)
        conversation_id = check_id(id, "conversation id")
        expected = check_expected_version(expected_version)
        for _ in range(_ATTEMPTS):
            state = self._conversation_visible(checked_owner, conversation_id)
            _check_expected(state.record, expected)
            add, remove, metadata = decide(state)
            write = self._conversation_plan(state, add, remove, metadata)
            if self._conversation_swap(write):
                return write
        raise _too_busy(conversation_id)

    def _conversation_plan(
        self,
        state: ConversationState,
        add: Sequence[FrozenDict],
        remove: str | None,
        metadata: FrozenDict | None,
        *,
        skip_held: bool = False,
    ) -> ConversationWrite:
        """The write that adds ``add``, deletes ``remove`` and sets ``metadata`` on ``state``.

        ``skip_held`` leaves out items whose ids the conversation holds already, instead of refusing them.

        Raises:
            ItemNotFound: ``remove`` is not an item of the conversation.
            InvalidArgument: an added item's id is already in the conversation.
            ConversationFull: the items would not fit.
        """
        record = state.record
        asked = [item["id"] for item in add] + ([] if remove is None else [remove])
        held_ids = self._conversation_held(record.owner, record.id, asked) if asked else set()
        if remove is not None and remove not in held_ids:
            raise ItemNotFound(record.id, remove)
        if skip_held:
            add = [item for item in add if item["id"] not in held_ids]
        for item in add:
            if item["id"] in held_ids:
                raise InvalidArgument(
                    f"conversation {record.id!r} already holds an item with id {item['id']!r}", id=record.id
                )
        held = state.items + len(add) - (remove is not None)
        if held > MAX_CONVERSATION_ITEMS:
            raise ConversationFull(record.id, "max_items", MAX_CONVERSATION_ITEMS)
        new_record = attrs.evolve(
            record, version=record.version + 1, metadata=record.metadata if metadata is None else metadata
        )
        positioned = tuple((state.next_position + n, item["id"], item) for n, item in enumerate(add))
        new = ConversationState(new_record, held, state.next_position + len(add), self._conversation_expiry())
        return ConversationWrite(state, new, positioned, remove)

    def _append_write(self, record: ResponseRecord, new: ResponseRecord) -> ConversationWrite | None:
        """The conversation write that finishing ``record`` as ``new`` carries, or ``None``.

        A response of a conversation appends its input and output items when it ends ``completed`` or
        ``incomplete``; a conversation deleted or expired meanwhile, or one that would overflow, gets nothing.
        """
        conversation_id = conversation_of(record.extra)
        if conversation_id is None or record.is_terminal or new.status.value not in ("completed", "incomplete"):
            return None
        state = self._conversation(record.owner, conversation_id)
        if state is None:
            return None
        add = _unique(record.input + new.output)
        try:
            return self._conversation_plan(state, add, None, None, skip_held=True)
        except ConversationFull:
            return None


#: The most items one call adds (OpenAI's limit for a conversation create and an items create).
MAX_BATCH = 20

_CONTEXT_BATCH = 1000


def _unique(items: Sequence[FrozenDict]) -> tuple[FrozenDict, ...]:
    """``items`` without repeated ids (an output item echoing an input id is kept once, the first)."""
    seen: set[str] = set()
    kept = []
    for item in items:
        if item["id"] not in seen:
            seen.add(item["id"])
            kept.append(item)
    return tuple(kept)


def _check_expected(record: ConversationRecord, expected: int | None) -> None:
    if expected is not None and expected != record.version:
        raise VersionConflict(record.id, expected, record.version, what="conversation")


def _too_busy(id: str) -> StorageError:
    return StorageError(
        f"gave up on conversation {id!r} after {_ATTEMPTS} attempts: it kept changing under the write; nothing was "
        "changed",
        id=id,
    )
