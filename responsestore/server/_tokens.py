"""Input token counts (``POST /v1/responses/input_tokens``): the ``count_tokens`` callable and its default.

``estimate_tokens`` is the built-in counter; :func:`input_tokens_json` builds the ``response.input_tokens`` object.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._errors import ApiError
from ._logs import RequestLogger
from ._models import text_of

__all__ = ["CountTokens", "estimate_tokens", "input_tokens_json"]

_log = RequestLogger("responsestore.tokens")

#: A token counter: called with the conversation (the items of the ``previous_response_id`` chain, then the
#: request's input items, as dicts) and the request (the checked JSON body, with its ``instructions`` and
#: ``tools``); returns the number of input tokens, an int >= 0. Raising is a ``500``.
CountTokens = Callable[[Sequence[dict[str, Any]], Mapping[str, Any]], int]


def estimate_tokens(conversation: Sequence[Mapping[str, Any]], request: Mapping[str, Any]) -> int:
    """The built-in counter, an estimate: one token per whitespace-separated word.

    It counts the words of every message's text, every function call's ``arguments`` and every function call
    output's ``output`` in the conversation, and of the ``instructions``. The built-in ``echo`` model counts its
    usage in words of the messages, so for a conversation of messages without instructions this is exactly the
    ``input_tokens`` its response reports. Real models' tokenizers count differently (English text averages about
    1.3 tokens a word): give ``make_app`` a ``count_tokens`` that uses your model's tokenizer when it matters.
    """
    words = 0
    for item in conversation:
        kind = item.get("type", "message")
        if kind == "message":
            words += len(text_of(item).split())
        elif kind == "function_call":
            words += _words(item.get("arguments"))
        elif kind == "function_call_output":
            words += _words(item.get("output"))
    return words + _words(request.get("instructions"))


def _words(value: object) -> int:
    return len(value.split()) if isinstance(value, str) else 0


def input_tokens_json(
    count: CountTokens, conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]
) -> dict[str, Any]:
    """Run ``count`` and return OpenAI's ``response.input_tokens`` object: ``{"object", "input_tokens"}``.

    Raises:
        ApiError: ``500`` ``server_error``: ``count`` raised or returned something other than an int >= 0 (logged
            to ``responsestore.tokens``; the client gets a generic message).
    """
    try:
        tokens = count(conversation, request)
    except Exception:  # noqa: BLE001 - whatever the counter does, the client gets OpenAI's error shape
        _log.exception("the count_tokens callable failed")
        raise ApiError(500, "The input tokens could not be counted.", code="server_error") from None
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        _log.error("count_tokens returned %r, not an int >= 0", tokens)
        raise ApiError(500, "The input tokens could not be counted.", code="server_error")
    return {"object": "response.input_tokens", "input_tokens": tokens}
