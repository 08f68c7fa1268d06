"""``Reply``: what the model has said so far, as output items and as the stream events that say it (pure, no I/O).

A run feeds each chunk the model yields into its :class:`Reply` and takes the events out in batches: text deltas
become one assistant message (``response.output_item.added``, ``response.content_part.added``, a run of
``response.output_text.delta`` events, then the ``.done`` events when the message closes), a mapping becomes one
output item (``added`` then ``done``), and a :class:`~responsestore.server._models.Usage` sets the usage. The
deltas of a batch travel as one :class:`~responsestore.DeltaRun`, which the store keeps compactly.

A batch the store refused (its log was full) can be taken back with :meth:`Reply.rollback`: the reply is then what
it was before that batch, so the response can end with exactly the output its logged events describe.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from responsestore import _wire
from responsestore._events import DeltaRun
from responsestore._ids import new_item_id

from ._models import Usage

__all__ = ["Reply"]

Batch = list["dict[str, Any] | DeltaRun"]
_Pending = list["dict[str, Any] | DeltaRun | list[str]"]


class Reply:
    """The output of one response under construction, and its events not yet taken."""

    __slots__ = ("_checkpoint", "_message", "_pending", "_pending_events", "_template", "_text", "output", "usage")

    def __init__(self) -> None:
        self.output: list[dict[str, Any]] = []  # finished output items
        self.usage: Usage | None = None
        self._message: str | None = None  # the id of the message being written, if one is open
        self._text: list[str] = []  # its deltas so far
        self._template: dict[str, Any] | None = None  # its delta event, "" as the delta
        self._pending: _Pending = []  # events not yet taken; a list of str is a run of deltas in progress
        self._pending_events = 0
        self._checkpoint: tuple[int, str | None, int, dict[str, Any] | None, Usage | None] = (0, None, 0, None, None)

    @property
    def pending(self) -> int:
        """How many events are waiting to be taken."""
        return self._pending_events

    @property
    def text_size(self) -> int:
        """Characters of text in the output so far (a bound on what the closing events repeat)."""
        size = sum(len(part) for part in self._text)
        for item in self.output:
            for part in item.get("content") or ():
                if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                    size += len(part["text"])
        return size

    def add_events(self, *events: dict[str, Any]) -> None:
        """Queue events built elsewhere (the lifecycle events of the run)."""
        self._pending.extend(events)
        self._pending_events += len(events)

    def add(self, chunk: object) -> None:
        """Turn one chunk the model yielded into output and events.

        Raises:
            TypeError: the chunk is not a ``str``, a mapping or a :class:`Usage`.
        """
        if isinstance(chunk, str):
            self._add_text(chunk)
        elif isinstance(chunk, Usage):
            self.usage = chunk
        elif isinstance(chunk, Mapping):
            self._close_message()
            item = _wire.item_json({"id": new_item_id(), **chunk})
            index = len(self.output)
            self.add_events(
                _wire.output_item_event("added", index, {**item, "status": "in_progress"}),
                _wire.output_item_event("done", index, item),
            )
            self.output.append(item)
        else:
            raise TypeError(f"generate yielded {type(chunk).__name__}, not str, a mapping or Usage")

    def _add_text(self, chunk: str) -> None:
        if self._message is None:
            self._message = new_item_id()
            self._text = []
            index = len(self.output)
            self.add_events(
                _wire.output_item_event("added", index, _wire.message_item(self._message, [], "in_progress")),
                _wire.content_part_event("added", self._message, index, 0, _wire.text_part("")),
            )
            self._template = _wire.output_text_delta_event(self._message, index, 0, "")
        self._text.append(chunk)
        pending = self._pending
        last = pending[-1] if pending else None
        if isinstance(last, list):
            last.append(chunk)
        else:
            pending.append([chunk])
        self._pending_events += 1

    def close(self) -> None:
        """End the output: close the message being written, if any."""
        self._close_message()

    def _close_message(self) -> None:
        message = self._message
        if message is None:
            return
        self._flush_run()
        index = len(self.output)
        text = "".join(self._text)
        part = _wire.text_part(text)
        done = _wire.message_item(message, [part], "completed")
        self.add_events(
            _wire.output_text_done_event(message, index, 0, text),
            _wire.content_part_event("done", message, index, 0, part),
            _wire.output_item_event("done", index, done),
        )
        self.output.append(done)
        self._message = None
        self._text = []
        self._template = None

    def _flush_run(self) -> None:
        """Turn the run of deltas in progress into a :class:`DeltaRun` (before other events follow it)."""
        pending = self._pending
        last = pending[-1] if pending else None
        if isinstance(last, list):
            assert self._template is not None  # noqa: S101 - deltas only exist inside an open message
            pending[-1] = DeltaRun(self._template, last)

    def take(self) -> Batch:
        r"""The events not yet taken (deltas as :class:`DeltaRun`\ s); remembers this point for :meth:`rollback`."""
        self._flush_run()
        batch: Batch = [item for item in self._pending if not isinstance(item, list)]
        self._pending, self._pending_events = [], 0
        self._checkpoint = (len(self.output), self._message, len(self._text), self._template, self.usage)
        return batch

    def rollback(self) -> None:
        """Forget everything added since the last :meth:`take` (events and output alike)."""
        count, message, texts, template, usage = self._checkpoint
        del self.output[count:]
        self._message, self._template, self.usage = message, template, usage
        del self._text[texts:]
        self._pending, self._pending_events = [], 0

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
