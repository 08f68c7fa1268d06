"""Models for the tests that serve real processes (``serve --generate tests.models:NAME``).

Each reads its pace from the request's ``metadata``: ``delay`` seconds before each word (a slow model, as a real one
is), and ``hold`` seconds to wait after the first word (a model stuck in a long call).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from responsestore.server._models import Usage, text_of


def paced(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[str | Usage]:
    """Echo the last user message word by word, ``metadata.delay`` seconds apart, holding after the first word."""
    metadata = request.get("metadata") or {}
    delay = float(metadata.get("delay", "0"))
    hold = float(metadata.get("hold", "0"))
    last = next((text_of(item) for item in reversed(conversation) if item.get("role") == "user"), "")
    words = last.split()
    for index, word in enumerate(words):
        time.sleep(delay)  # the model's own pace: this is the model being slow, not a synchronisation
        yield word if index == 0 else " " + word
        if index == 0 and hold:
            time.sleep(hold)
    yield Usage(input_tokens=len(words), output_tokens=len(words))


def shout(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[str]:
    """Echo the last user message in capitals, in one delta (tells a second model apart from ``echo``)."""
    last = next((text_of(item) for item in reversed(conversation) if item.get("role") == "user"), "")
    yield last.upper()


def held(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[str]:
    """Yield one word, then wait until the file ``metadata.release`` exists (an event another process sets)."""
    release = Path((request.get("metadata") or {})["release"])
    yield "held"
    deadline = time.monotonic() + 60
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.01)  # waiting for the test to set the event
    yield " released"


def fails(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[str]:
    """Yield one word, then raise (a broken model)."""
    yield "partial"
    raise RuntimeError("the model broke")


def sigint(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[str]:
    """Say how this process handles SIGINT: ``ignored``, ``default`` (KeyboardInterrupt) or ``handled``."""
    handler = signal.getsignal(signal.SIGINT)
    if handler == signal.SIG_IGN:
        yield "ignored"
    elif handler in (signal.SIG_DFL, signal.default_int_handler):
        yield "default"
    else:
        yield "handled"
