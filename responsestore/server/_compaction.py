"""Compaction (``POST /v1/responses/compact``): the ``compact`` callable, its default, the object returned.

``echo_compact`` is the built-in compaction; :func:`compaction_json` builds the ``response.compaction`` object.

A compaction turns a long conversation into a short list of items that carries it on: OpenAI keeps the user
messages and replaces everything else with one ``compaction`` item whose ``encrypted_content`` only OpenAI can
read. The list is meant as the ``input`` of the next ``POST /v1/responses``, in place of the conversation.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from responsestore import _wire
from responsestore._items import normalize_items
from responsestore._json import thaw
from responsestore._records import check_usage
from responsestore.errors import InvalidArgument

from ._errors import ApiError
from ._logs import RequestLogger
from ._models import Usage, text_of

__all__ = ["Compact", "compaction_json", "echo_compact"]

_log = RequestLogger("responsestore.compaction")

#: Compaction: called with the conversation (the items of the ``previous_response_id`` chain, then the request's
#: input items, as dicts) and the request (the checked JSON body); returns or yields the compacted items
#: (mappings, valid as input items) and at most one :class:`~responsestore.wsgi.Usage`. Raising is a ``500``.
Compact = Callable[[Sequence[dict[str, Any]], Mapping[str, Any]], Iterable["Mapping[str, Any] | Usage"]]


def echo_compact(
    conversation: Sequence[Mapping[str, Any]], request: Mapping[str, Any]
) -> Iterator[Mapping[str, Any] | Usage]:
    """The built-in compaction, deterministic: the user messages as they are, then one ``compaction`` item.

    The compaction item's ``encrypted_content`` is the other items (assistant messages, function calls and
    their outputs, earlier compaction items, ...) as base64 JSON (not encrypted: an opaque encoding a ``generate``
    may decode); its id is ``cmp_`` and a hash of that content. Usage counts words, as
    :func:`~responsestore.wsgi.echo` does: every text of the conversation in, the text of the kept messages out.
    """
    kept: list[Mapping[str, Any]] = []
    folded: list[Any] = []
    for item in conversation:
        if item.get("type", "message") == "message" and item.get("role") == "user":
            kept.append(item)
        else:
            folded.append(thaw(item))
    text = json.dumps(folded, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    content = base64.b64encode(text.encode()).decode("ascii")
    yield from kept
    digest = hashlib.sha256(text.encode()).hexdigest()[:32]
    yield {"type": "compaction", "id": "cmp_" + digest, "encrypted_content": content}
    words_in = sum(len(text_of(item).split()) for item in conversation)
    yield Usage(input_tokens=words_in, output_tokens=sum(len(text_of(item).split()) for item in kept))


def compaction_json(
    compact: Compact, conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]
) -> dict[str, Any]:
    """Run ``compact`` and return OpenAI's ``response.compaction`` object of what it returned.

    Items get what OpenAI lists them with (an ``id`` when missing, a ``status`` on messages). Usage is zero when
    ``compact`` gives none.

    Raises:
        ApiError: ``500`` ``server_error``: ``compact`` raised, or returned something that is not items and a
            ``Usage`` (logged to ``responsestore.compaction``; the client gets a generic message).
    """
    try:
        chunks = list(compact(conversation, request))
        items = [chunk for chunk in chunks if not isinstance(chunk, Usage)]
        usages = [chunk for chunk in chunks if isinstance(chunk, Usage)]
        if len(usages) > 1:
            raise InvalidArgument(f"compact gave {len(usages)} Usage objects; at most one is allowed")
        output = [_wire.item_json(item) for item in normalize_items(items, "compact output")]
        usage = usages[0] if usages else Usage(input_tokens=0, output_tokens=0)
        usage_json = check_usage({"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens})
        body = {
            "id": "resp_" + uuid.uuid4().hex,
            "object": "response.compaction",
            "created_at": int(time.time()),
            "output": output,
            "usage": thaw(usage_json),
        }
        json.dumps(body)  # a value JSON cannot carry fails here, not half-way through the reply
    except Exception:  # noqa: BLE001 - whatever compact does, the client gets OpenAI's error shape
        _log.exception("the compact callable failed")
        raise ApiError(500, "The conversation could not be compacted.", code="server_error") from None
    return body
