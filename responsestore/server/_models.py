"""The model side of the server: ``generate`` callables, the built-in ``echo`` model, and the model registry.

What a ``generate`` callable is and may yield; the registry says which model names the server serves and which
``generate`` serves each.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from responsestore._checks import check_text, describe
from responsestore.errors import InvalidArgument

from ._errors import ApiError

__all__ = [
    "INCOMPLETE_REASONS",
    "ArgumentsDelta",
    "Chunk",
    "FunctionCall",
    "Generate",
    "Incomplete",
    "ModelRegistry",
    "Usage",
    "echo",
    "text_of",
    "tokens_in",
]


@attrs.frozen
class Usage:
    """Token counts a ``generate`` callable may yield (once, anywhere) to set the response's ``usage``."""

    input_tokens: int
    output_tokens: int


def _text(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value.__class__ is not str:
        raise TypeError(f"{attribute.name} must be a str, not {type(value).__name__}")


def _name(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _text(instance, attribute, value)
    if not value:
        raise ValueError(f"{attribute.name} must not be empty")


def _optional_id(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _name(instance, attribute, value)


@attrs.frozen
class FunctionCall:
    """A ``generate`` callable yields this to call a function: one ``function_call`` output item.

    The item gets an ``fc_…`` id and, unless ``call_id`` is given, a ``call_…`` call id; its stream is
    ``response.output_item.added``, a ``response.function_call_arguments.delta`` for ``arguments`` (when not empty)
    and one for each :class:`ArgumentsDelta` yielded next, then ``response.function_call_arguments.done`` and
    ``response.output_item.done`` when the model yields anything else or ends.

    Raises:
        TypeError, ValueError: ``name`` is not a non-empty ``str``, ``arguments`` not a ``str``, or ``call_id``
            neither ``None`` nor a non-empty ``str`` (raised in the model, the response then fails).
    """

    #: The name of the function to call (one of the request's ``tools``).
    name: str = attrs.field(validator=_name)
    #: The arguments as JSON text, or their beginning when :class:`ArgumentsDelta` chunks follow.
    arguments: str = attrs.field(default="", validator=_text)
    #: The id the function's output will refer to (``function_call_output``'s ``call_id``); ``call_…`` if ``None``.
    call_id: str | None = attrs.field(default=None, validator=_optional_id)


@attrs.frozen
class ArgumentsDelta:
    """A ``generate`` callable yields this to stream more of the arguments of the :class:`FunctionCall` it opened.

    Each one is a ``response.function_call_arguments.delta`` event; yielding one when the last chunk was not a
    :class:`FunctionCall` or an ``ArgumentsDelta`` fails the response.
    """

    #: The text appended to the arguments.
    delta: str = attrs.field(validator=_text)


#: The reasons a model may end its response incomplete with (those every version of OpenAI's SDKs accepts).
INCOMPLETE_REASONS = ("max_output_tokens", "content_filter")


def _reason(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in INCOMPLETE_REASONS:
        raise ValueError(f"reason must be one of {', '.join(INCOMPLETE_REASONS)}, not {value!r}")


@attrs.frozen
class Incomplete:
    """A ``generate`` callable yields this to end its response ``incomplete``, with ``reason`` in its details.

    The run takes nothing more from the model (it closes the generator): the output is what was yielded before, the
    item being written, if any, ends with status ``incomplete``, and the stream ends with ``response.incomplete``.

    Raises:
        ValueError: ``reason`` is not one of :data:`INCOMPLETE_REASONS` (raised in the model: the response fails).
    """

    #: Why: ``"content_filter"`` or ``"max_output_tokens"``.
    reason: str = attrs.field(validator=_reason)


#: What a ``generate`` callable may yield.
Chunk = str | Mapping[str, Any] | FunctionCall | ArgumentsDelta | Usage | Incomplete

#: The model: called with the conversation (every earlier input and output item of the chain, then this
#: request's input items, as plain dicts) and the request (the checked JSON body: null fields left out, ``model``
#: the model serving it); yields text deltas
#: (``str``, appended to one assistant message), function calls (:class:`FunctionCall`, its arguments streamed
#: by the :class:`ArgumentsDelta` chunks that follow it), complete output items (mappings, such as a
#: ``function_call``), at most one :class:`Usage`, and :class:`Incomplete` to end the response incomplete.
#: Raising fails the response. It may be an ``async`` generator function (``async def`` with ``yield``): the ASGI
#: app awaits it on its event loop, so a streamed response holds no thread (see :func:`is_async`).
Generate = Callable[[Sequence[dict[str, Any]], Mapping[str, Any]], Iterable[Chunk] | AsyncIterable[Chunk]]


def is_async(generate: object) -> bool:
    """Whether ``generate`` is an ``async`` model: an async generator function, or an object whose ``__call__`` is.

    Such a model is awaited on an event loop; any other is called in a thread and iterated there.
    """
    return inspect.isasyncgenfunction(generate) or inspect.isasyncgenfunction(vars(type(generate)).get("__call__"))


def tokens_in(chunk: object) -> int:
    """The output tokens ``chunk`` counts for against ``max_output_tokens``: one per delta it streams.

    A text ``str`` and an :class:`ArgumentsDelta` are one delta each; a :class:`FunctionCall` or a
    ``function_call`` mapping is one if it carries arguments (they stream as one delta); anything else is none.
    """
    if chunk.__class__ is str or chunk.__class__ is ArgumentsDelta:
        return 1
    if isinstance(chunk, FunctionCall):
        return 1 if chunk.arguments else 0
    if isinstance(chunk, Mapping) and chunk.get("type") == "function_call":
        return 1 if chunk.get("arguments") else 0
    return 0


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


#: ``owned_by`` of every model the server lists.
OWNER = "responsestore"


class ModelRegistry:
    """Which model names a server serves, and the ``generate`` callable serving each. Immutable; thread-safe.

    Two kinds: :meth:`named` serves exactly the names it is given (the others are ``404`` ``model_not_found``)
    and lists them; :meth:`any_name` serves every name with one callable, lists none and has no default model.
    """

    def __init__(self, models: Mapping[str, Generate], fallback: Generate | None, created: int) -> None:
        self._models = dict(models)
        self._fallback = fallback
        self.created = created

    @classmethod
    def named(cls, models: Mapping[str, Generate], created: int | None = None) -> ModelRegistry:
        """Serve exactly ``models`` (name -> ``generate``); the first one is the default model.

        Raises:
            InvalidArgument: ``models`` is not a non-empty mapping of non-empty names to callables.
        """
        if not isinstance(models, Mapping) or not models:
            raise InvalidArgument("models must be a non-empty mapping of model names to generate callables")
        for name, generate in models.items():
            check_text(name, "a model name")
            if not callable(generate):
                raise InvalidArgument(f"models[{name!r}] must be a generate callable")
        return cls(models, None, int(time.time()) if created is None else created)

    @classmethod
    def any_name(cls, generate: Generate, created: int | None = None) -> ModelRegistry:
        """Serve every model name with ``generate``.

        Raises:
            InvalidArgument: ``generate`` is not callable.
        """
        if not callable(generate):
            raise InvalidArgument("generate must be callable")
        return cls({}, generate, int(time.time()) if created is None else created)

    @property
    def names(self) -> tuple[str, ...]:
        """The listed model names, the default first (none when every name is served)."""
        return tuple(self._models)

    @property
    def default(self) -> str | None:
        """The model a request that names none gets: the first listed one (``None`` when every name is served)."""
        return next(iter(self._models), None)

    def resolve(self, name: str | None, param: str = "model") -> tuple[str, Generate]:
        """The model a request names (``None``: the default model) and its ``generate``.

        Raises:
            ApiError: ``404`` ``model_not_found``: the name is not served; ``400`` ``missing_required_parameter``:
                no name, and no default model.
        """
        if name is None:
            name = self.default
            if name is None:
                raise ApiError(
                    400, f"Missing required parameter: {param!r}.", param=param, code="missing_required_parameter"
                )
        generate = self._models.get(name, self._fallback)
        if generate is None:
            raise ApiError(
                404,
                f"The model {describe(name)} does not exist or you do not have access to it.",
                param=param,
                code="model_not_found",
            )
        return name, generate

    def model_json(self, name: str) -> dict[str, Any]:
        """OpenAI's ``Model`` object of a served model.

        Raises:
            ApiError: ``404`` ``model_not_found``.
        """
        self.resolve(name)
        return {"id": name, "object": "model", "created": self.created, "owned_by": OWNER}

    def list_json(self) -> dict[str, Any]:
        """OpenAI's model list: ``{"object": "list", "data": [Model, ...]}``."""
        return {"object": "list", "data": [self.model_json(name) for name in self.names]}
