"""The model side of the server: ``generate`` callables, the built-in ``echo`` model, and the model registry.

What a ``generate`` callable is and may yield; the registry says which model names the server serves and which
``generate`` serves each.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from responsestore._checks import check_text, describe
from responsestore.errors import InvalidArgument

from ._errors import ApiError

__all__ = ["Generate", "ModelRegistry", "Usage", "echo", "text_of"]


@attrs.frozen
class Usage:
    """Token counts a ``generate`` callable may yield (once, anywhere) to set the response's ``usage``."""

    input_tokens: int
    output_tokens: int


#: The model: called with the conversation (every earlier input and output item of the chain, then this
#: request's input items, as plain dicts) and the request (the checked JSON body: null fields left out, ``model``
#: the model serving it); yields text deltas (``str``, appended to one assistant message), complete output items
#: (mappings, such as a ``function_call``) and at most one :class:`Usage`. Raising fails the response.
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
