"""The model side of a run: what a ``generate`` callable is, what it may yield, and the built-in ``echo`` model."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs

__all__ = ["Generate", "Usage", "echo", "text_of"]


@attrs.frozen
class Usage:
    """Token counts a ``generate`` callable may yield (once, anywhere) to set the response's ``usage``."""

    input_tokens: int
    output_tokens: int


#: The model: called with the conversation (every earlier input and output item of the chain, then this
#: request's input items, as plain dicts) and the request (the parsed JSON body); yields text deltas
#: (``str``, appended to one assistant message), complete output items (mappings, such as a
#: ``function_call``) and at most one :class:`Usage`. Raising fails the response.
Generate = Callable[[Sequence[dict[str, Any]], Mapping[str, Any]], Iterable["str | Mapping[str, Any] | Usage"]]


def echo(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[str | Usage]:
    """The built-in demo model ``echo``: replies with the text of the last user message, one delta per word.

    Usage counts words: the words of every text in the conversation in, the words of the reply out.
    """
    texts = [text_of(item) for item in conversation]
    reply = next((text_of(item) for item in reversed(conversation) if item.get("role") == "user"), "")
    words = reply.split()
    for index, word in enumerate(words):
        yield word if index == 0 else " " + word
    yield Usage(input_tokens=sum(len(text.split()) for text in texts), output_tokens=len(words))


def text_of(item: Mapping[str, Any]) -> str:
    """The text of a message item: its string content, or its text parts joined with spaces."""
    content = item.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):  # stored items hold their lists as tuples
        return " ".join(
            part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""
