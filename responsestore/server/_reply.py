"""``Reply``: what the model has said so far, as output items and as the stream events that say it (pure, no I/O).

A run feeds each chunk the model yields into its :class:`Reply` and takes the events out in batches: text deltas
become one assistant message (``response.output_item.added``, ``response.content_part.added``, a run of
``response.output_text.delta`` events, then the ``.done`` events when the message closes); a
:class:`~responsestore.server._models.FunctionCall` opens a ``function_call`` item (``fc_…`` id, ``call_…`` call
id) whose arguments stream as ``response.function_call_arguments.delta`` events (its own arguments, then each
:class:`~responsestore.server._models.ArgumentsDelta` that follows), closed by ``.done`` events when anything else
comes; a ``function_call`` mapping is one such call, whole; any other mapping becomes one output item (``added``
then ``done``); and a :class:`~responsestore.server._models.Usage` sets the usage. The deltas of a batch travel as
one :class:`~responsestore.DeltaRun`, which the store keeps compactly. An item cut short (the response ends
``incomplete`` while it is open) closes with status ``incomplete``.

A reply counts what its events weigh as the store counts it against ``max_event_bytes`` (the JSON of each event as
given), so a run can stop before the log is full while keeping room for the events that close the response
(:meth:`Reply.cost`, :meth:`Reply.closing_bytes`). A batch the store refused anyway can be taken back
(:meth:`Reply.rollback`): the reply is then what it was before that batch, so the response can end with exactly
the output its logged events describe.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from responsestore import _wire
from responsestore._events import DeltaRun
from responsestore._ids import check_id, new_call_id, new_item_id
from responsestore._json import to_json_text

from ._models import ArgumentsDelta, FunctionCall, Usage

__all__ = ["Batch", "Reply", "event_size"]

Batch = list["dict[str, Any] | DeltaRun"]
_Pending = list["dict[str, Any] | DeltaRun | list[str]"]

#: What the events of opening a message weigh, at most, besides its id (``output_item.added``, ``content_part``).
_OPENING = 400

#: The prefix of a new output item's id, by item type (``msg`` for the others).
_PREFIXES = {"function_call": "fc", "reasoning": "rs"}


def event_size(event: Any) -> int:
    """The bytes an event counts for: its compact JSON as given, UTF-8."""
    text = to_json_text(event)
    return len(text) if text.isascii() else len(text.encode())


_escaped = json.encoder.encode_basestring


def _text_size(text: str) -> int:
    """Bytes of ``text`` inside a JSON string, without the quotes."""
    if text.isascii():
        return len(_escaped(text)) - 2
    return len(_escaped(text).encode()) - 2


class Reply:
    """The output of one response under construction, and its events not yet taken."""

    __slots__ = (
        "_call",
        "_checkpoint",
        "_closed_bytes",
        "_delta_size",
        "_open",
        "_pending",
        "_pending_bytes",
        "_pending_events",
        "_template",
        "_text",
        "output",
        "usage",
    )

    def __init__(self) -> None:
        self.output: list[dict[str, Any]] = []  # finished output items
        self.usage: Usage | None = None
        self._open: str | None = None  # the id of the item being written (a message or a function call), if any
        self._call: dict[str, Any] | None = None  # when it is a function call: its fields but arguments and status
        self._text: list[str] = []  # its deltas so far (text, or arguments)
        self._template: dict[str, Any] | None = None  # its delta event, "" as the delta
        self._delta_size = 0  # what that event weighs without its delta
        self._closed_bytes = 0  # what the finished output items weigh in JSON
        self._pending: _Pending = []  # events not yet taken; a list of str is a run of deltas in progress
        self._pending_events = 0
        self._pending_bytes = 0
        self._checkpoint: tuple[Any, ...] = self._state()

    def _state(self) -> tuple[Any, ...]:
        return (
            len(self.output),
            self._open,
            self._call,
            self._text,  # the list itself: closing or opening an item starts a new one, and leaves this one be
            len(self._text),
            self._template,
            self._delta_size,
            self._closed_bytes,
            self.usage,
        )

    @property
    def pending(self) -> int:
        """How many events are waiting to be taken."""
        return self._pending_events

    @property
    def pending_bytes(self) -> int:
        """What the events waiting to be taken weigh against ``max_event_bytes`` (measured now: not per delta)."""
        size = self._pending_bytes
        last = self._pending[-1] if self._pending else None
        if isinstance(last, list):
            size += len(last) * self._delta_size + _text_size("".join(last))
        return size

    def closing_bytes(self, response: int) -> int:
        """A bound on what the events ending the response weigh, given the size of its JSON without output.

        Closing an open message repeats its text three times (``output_text.done``, ``content_part.done``,
        ``output_item.done``), an open function call its arguments twice (``function_call_arguments.done``,
        ``output_item.done``); the final ``response.<status>`` event carries the whole output once more. The open
        text is measured now (this is for the occasional exact check, not for every delta).
        """
        open_text = 0
        if self._open is not None:
            open_text = _text_size("".join(self._text)) + 3 * _OPENING
            if self._call is not None:
                open_text += event_size(self._call)
        return response + 4 * open_text + self._closed_bytes + _OPENING

    def cost(self, chunk: object) -> tuple[int, int]:
        """``(events, bytes)`` that :meth:`add` of ``chunk`` would add, at most (``(0, 0)`` for a non-chunk)."""
        if isinstance(chunk, str):
            opening = 0 if self._open is not None and self._call is None else 1  # a new message's two events
            return 1 + 2 * opening, 2 * opening * _OPENING + self._delta_size + _text_size(chunk) + 64
        if isinstance(chunk, ArgumentsDelta):
            return 1, self._delta_size + _text_size(chunk.delta) + 64
        if isinstance(chunk, FunctionCall):
            fields = _text_size(chunk.name) + _text_size(chunk.call_id or "") + 64
            return 2, 2 * (_OPENING + fields) + _text_size(chunk.arguments)
        if not isinstance(chunk, Mapping):
            return 0, 0
        events = 4 if chunk.get("type") == "function_call" else 2
        try:
            return events, events * event_size(chunk) + events // 2 * _OPENING
        except (TypeError, ValueError):  # not JSON: add() refuses it
            return 0, 0

    def add_events(self, *events: dict[str, Any]) -> None:
        """Queue events built elsewhere (the lifecycle events of the run)."""
        self._pending.extend(events)
        self._pending_events += len(events)
        sizes: dict[int, int] = {}  # events sharing one response snapshot weigh the same: measure it once
        for event in events:
            response = event.get("response")
            if response is None:
                self._pending_bytes += event_size(event)
                continue
            key = id(response)
            if key not in sizes:
                sizes[key] = event_size(event)
            self._pending_bytes += sizes[key] + len(event["type"])

    def add(self, chunk: object) -> None:
        """Turn one chunk the model yielded into output and events.

        Raises:
            TypeError: the chunk is not a ``str``, a mapping, a :class:`FunctionCall`, an :class:`ArgumentsDelta`
                following one, or a :class:`Usage`; or a ``function_call`` mapping lacks a name.
            InvalidArgument: a mapping carries an id that is not a valid id.
        """
        if isinstance(chunk, str):
            self._add_text(chunk)
        elif isinstance(chunk, ArgumentsDelta):
            if self._call is None:
                raise TypeError("generate yielded an ArgumentsDelta that follows no FunctionCall")
            self._add_delta(chunk.delta)
        elif isinstance(chunk, Usage):
            self.usage = chunk
        elif isinstance(chunk, FunctionCall):
            self._close("completed")
            fields = {"type": "function_call", "id": new_item_id("fc"), "call_id": chunk.call_id or new_call_id()}
            fields["name"] = chunk.name
            self._open_call(fields, chunk.arguments)
        elif isinstance(chunk, Mapping):
            self._close("completed")
            if chunk.get("type") == "function_call":
                self._add_call(chunk)
            else:
                self._add_item(chunk)
        else:
            raise TypeError(
                f"generate yielded {type(chunk).__name__}, not str, a mapping, FunctionCall, ArgumentsDelta, Usage"
                " or Incomplete"
            )

    def _add_item(self, chunk: Mapping[str, Any]) -> None:
        prefix = _PREFIXES.get(chunk.get("type"), "msg")  # type: ignore[arg-type]  # None or not a str: "msg"
        item = _wire.item_json({"id": new_item_id(prefix), **chunk})
        check_id(item["id"], "the id of an output item")
        index = len(self.output)
        self.add_events(
            _wire.output_item_event("added", index, {**item, "status": "in_progress"}),
            _wire.output_item_event("done", index, item),
        )
        self.output.append(item)
        self._closed_bytes += event_size(item)

    def _add_call(self, chunk: Mapping[str, Any]) -> None:
        """A complete ``function_call`` item: streamed as one, its arguments as one delta."""
        fields = {"type": "function_call", "id": new_item_id("fc"), "call_id": new_call_id()}
        fields.update((key, value) for key, value in chunk.items() if key not in ("arguments", "status"))
        arguments = chunk.get("arguments", "")
        for name, value in (("name", fields.get("name")), ("call_id", fields["call_id"]), ("arguments", "-")):
            if value.__class__ is not str or not value:
                raise TypeError(f"generate yielded a function_call whose {name} is not a non-empty str")
        if arguments.__class__ is not str:
            raise TypeError("generate yielded a function_call whose arguments are not a str")
        check_id(fields["id"], "the id of an output item")
        self._open_call(fields, arguments)
        self._close("completed")

    def _open_call(self, fields: dict[str, Any], arguments: str) -> None:
        index = len(self.output)
        item_id = fields["id"]
        self._open, self._call, self._text = item_id, fields, []
        self.add_events(_wire.output_item_event("added", index, {**fields, "arguments": "", "status": "in_progress"}))
        self._template = _wire.function_call_arguments_delta_event(item_id, index, "")
        self._delta_size = event_size(self._template)
        if arguments:
            self._add_delta(arguments)

    def _add_text(self, chunk: str) -> None:
        if self._open is None or self._call is not None:
            self._close("completed")
            message = self._open = new_item_id()
            self._text = []
            index = len(self.output)
            self.add_events(
                _wire.output_item_event("added", index, _wire.message_item(message, [], "in_progress")),
                _wire.content_part_event("added", message, index, 0, _wire.text_part("")),
            )
            self._template = _wire.output_text_delta_event(message, index, 0, "")
            self._delta_size = event_size(self._template)
        self._add_delta(chunk)

    def _add_delta(self, chunk: str) -> None:
        self._text.append(chunk)
        pending = self._pending
        last = pending[-1] if pending else None
        if last.__class__ is list:
            last.append(chunk)
        else:
            pending.append([chunk])
        self._pending_events += 1

    def close(self, status: str = "completed") -> None:
        """End the output: close the item being written, if any, with ``status`` (``incomplete`` when cut short)."""
        self._close(status)

    def _close(self, status: str) -> None:
        item_id = self._open
        if item_id is None:
            return
        self._flush_run()
        index = len(self.output)
        text = "".join(self._text)
        if self._call is None:
            part = _wire.text_part(text)
            done = _wire.message_item(item_id, [part], status)
            self.add_events(
                _wire.output_text_done_event(item_id, index, 0, text),
                _wire.content_part_event("done", item_id, index, 0, part),
                _wire.output_item_event("done", index, done),
            )
        else:
            done = {**self._call, "arguments": text, "status": status}
            self.add_events(
                _wire.function_call_arguments_done_event(item_id, index, text),
                _wire.output_item_event("done", index, done),
            )
        self.output.append(done)
        self._closed_bytes += event_size(done)
        self._open = self._call = self._template = None
        self._text = []

    def _flush_run(self) -> None:
        """Turn the run of deltas in progress into a :class:`DeltaRun` (before other events follow it)."""
        pending = self._pending
        last = pending[-1] if pending else None
        if isinstance(last, list):
            assert self._template is not None  # noqa: S101 - deltas only exist inside an open item
            run = DeltaRun(self._template, last)
            pending[-1] = run
            self._pending_bytes += run._size  # the run's exact size, measured once for all its deltas

    def take(self) -> tuple[Batch, int, int]:
        r"""``(batch, events, bytes)``: the events not yet taken (deltas as :class:`DeltaRun`\ s), what they count.

        Remembers this point for :meth:`rollback`.
        """
        self._flush_run()
        batch: Batch = [item for item in self._pending if not isinstance(item, list)]
        taken = (batch, self._pending_events, self._pending_bytes)
        self._pending, self._pending_events, self._pending_bytes = [], 0, 0
        self._checkpoint = self._state()
        return taken

    def rollback(self) -> None:
        """Forget everything added since the last :meth:`take` (events and output alike)."""
        count, item, call, text, texts, template, delta_size, closed, usage = self._checkpoint
        del self.output[count:]
        self._text = text
        del text[texts:]
        self._open, self._call, self._template, self._delta_size = item, call, template, delta_size
        self._closed_bytes, self.usage = closed, usage
        self._pending, self._pending_events, self._pending_bytes = [], 0, 0

    def usage_json(self) -> dict[str, int] | None:
        """The usage for the record, or ``None`` if the model gave none."""
        if self.usage is None:
            return None
        return {"input_tokens": self.usage.input_tokens, "output_tokens": self.usage.output_tokens}

    @staticmethod
    def expand(batch: Batch, first: int) -> list[dict[str, Any]]:
        """The separate events of a taken batch, numbered from ``first``, exactly as the store replays them."""
        events: list[dict[str, Any]] = []
        number = first
        for item in batch:
            if isinstance(item, DeltaRun):
                events.extend(item.events(number))
                number += len(item)
            else:
                event = dict(item)
                event["sequence_number"] = number
                events.append(event)
                number += 1
        return events
