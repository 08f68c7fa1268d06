"""A slow ``async`` model for the ASGI workload: it repeats the last user message one word every 0.1 s.

``python -m responsestore serve --asgi --model slow=benchmarks._slow_model:generate`` serves it. Ten words a second
is a model's pace as a reader sees it; the run awaits it on the server's event loop, so a stream that waits for its
next word holds no thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

__all__ = ["SECONDS_PER_WORD", "generate"]

#: The pause before each word of the reply: 10 words a second.
SECONDS_PER_WORD = 0.1


def _text(item: Mapping[str, Any]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        return " ".join(part["text"] for part in content if isinstance(part, Mapping) and "text" in part)
    return ""


async def generate(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> AsyncIterator[str]:
    """Yield the words of the last user message, one text delta every :data:`SECONDS_PER_WORD` seconds."""
    words = next((_text(item) for item in reversed(conversation) if item.get("role") == "user"), "").split()
    for index, word in enumerate(words):
        await asyncio.sleep(SECONDS_PER_WORD)
        yield word if index == 0 else " " + word
