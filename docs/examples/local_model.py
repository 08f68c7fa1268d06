"""Serve the Responses API over a local model: a ``generate`` callable for responsestore's app that calls an
OpenAI-compatible ``POST /v1/chat/completions`` endpoint with ``stream: true`` (llama.cpp's ``llama-server``,
Ollama, vLLM and most local model servers offer one) and turns its server-sent events into Responses output.

Run it with the packaged server (the module must be importable, hence ``PYTHONPATH``)::

    LOCAL_MODEL_URL=http://127.0.0.1:8080/v1 PYTHONPATH=docs/examples \\
        python -m responsestore serve --generate local_model:generate

It uses the standard library only (``urllib``), so it adds no dependency to the server.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from responsestore.wsgi import ArgumentsDelta, FunctionCall, Incomplete, Usage

Chunk = str | FunctionCall | ArgumentsDelta | Usage | Incomplete
Generate = Callable[[Sequence[Mapping[str, Any]], Mapping[str, Any]], Iterator[Chunk]]


class ModelError(Exception):
    """The local model refused the request or sent something this module cannot read (the response fails)."""


def make_generate(
    base_url: str, *, model: str | None = None, api_key: str | None = None, timeout: float = 300.0
) -> Generate:
    """A ``generate`` callable over the chat completions API at ``base_url`` (``http://HOST:PORT/v1``).

    ``model`` is the model name sent to that server; ``None`` sends the name the Responses request asked for.
    ``timeout`` bounds each wait for the server (connecting, and every read of its stream).
    """
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    if api_key is not None:
        headers["Authorization"] = f"Bearer {api_key}"

    def generate(conversation: Sequence[Mapping[str, Any]], request: Mapping[str, Any]) -> Iterator[Chunk]:
        body = chat_request(conversation, request, model=model)
        http_request = urllib.request.Request(  # noqa: S310 - the URL is the operator's, not the client's
            f"{base_url}/chat/completions", data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        # Leaving the ``with`` closes the connection. The app closes this generator when the response ends early
        # (cancelled, deleted, the client of a stream gone, the server stopping), so the model stops generating.
        with urllib.request.urlopen(http_request, timeout=timeout) as reply:  # noqa: S310
            yield from responses_chunks(sse_data(reply))

    return generate


# ------------------------------------------------------------------------------------ Responses -> chat completions


def chat_request(
    conversation: Sequence[Mapping[str, Any]], request: Mapping[str, Any], *, model: str | None = None
) -> dict[str, Any]:
    """The chat completions request body for one Responses request and its conversation."""
    messages: list[dict[str, Any]] = []
    if request.get("instructions"):
        messages.append({"role": "system", "content": request["instructions"]})
    for item in conversation:
        add_item(messages, item)
    body: dict[str, Any] = {
        "model": model or request["model"],
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        if name in request:
            body[name] = request[name]
    if "max_output_tokens" in request:
        body["max_tokens"] = request["max_output_tokens"]
    tools = [tool for tool in request.get("tools", ()) if tool["type"] == "function"]
    choice = request.get("tool_choice")
    if isinstance(choice, Mapping) and choice["type"] == "allowed_tools":
        allowed = {tool["name"] for tool in choice["tools"]}
        tools = [tool for tool in tools if tool["name"] in allowed]
        choice = choice["mode"]
    elif isinstance(choice, Mapping):  # one named function
        choice = {"type": "function", "function": {"name": choice["name"]}}
    if tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool["name"],
                    "description": tool.get("description") or "",
                    "parameters": tool.get("parameters") or {"type": "object", "properties": {}},
                },
            }
            for tool in tools
        ]
        if choice is not None:
            body["tool_choice"] = choice
    text_format = (request.get("text") or {}).get("format") or {}
    if text_format.get("type") == "json_schema":
        schema = {"name": text_format["name"], "schema": text_format["schema"], "strict": text_format.get("strict")}
        body["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif text_format.get("type") == "json_object":
        body["response_format"] = {"type": "json_object"}
    return body


def add_item(messages: list[dict[str, Any]], item: Mapping[str, Any]) -> None:
    """Append one Responses item to the chat ``messages``; items chat completions has no place for are left out."""
    kind = item.get("type", "message")
    if kind == "message":
        role = "system" if item["role"] == "developer" else item["role"]  # few local servers know "developer"
        messages.append({"role": role, "content": message_content(item["content"])})
    elif kind == "function_call":
        call = {
            "id": item["call_id"],
            "type": "function",
            "function": {"name": item["name"], "arguments": item["arguments"]},
        }
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant" and "tool_calls" in last:
            last["tool_calls"].append(call)  # parallel calls: one assistant message
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        output = item["output"]
        content = output if isinstance(output, str) else message_content(output)
        messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": content})
    # Reasoning, compaction and other items have no chat completions form: the model does not see them.


def message_content(content: str | Sequence[Mapping[str, Any]]) -> str | list[dict[str, Any]]:
    """A message's content for chat completions: its text, or text and image parts when it has images."""
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content:
        if part["type"] in ("input_text", "output_text"):
            parts.append({"type": "text", "text": part["text"]})
        elif part["type"] == "refusal":
            parts.append({"type": "text", "text": part["refusal"]})
        elif part["type"] == "input_image" and part.get("image_url"):
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
    if all(part["type"] == "text" for part in parts):
        return "".join(part["text"] for part in parts)
    return parts


# ------------------------------------------------------------------------------------ chat completions -> Responses


def sse_data(lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """The JSON ``data:`` payloads of a server-sent event stream, up to ``data: [DONE]``."""
    for raw in lines:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line.startswith("data:"):
            continue  # blank separators, comments (": ping"), "event:" lines
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            return
        chunk = json.loads(data)
        if "error" in chunk:
            raise ModelError(f"the model server sent an error: {str(chunk['error'])[:500]}")
        yield chunk


def responses_chunks(chunks: Iterable[Mapping[str, Any]]) -> Iterator[Chunk]:
    """What ``generate`` yields for a stream of ``chat.completion.chunk`` objects.

    Text deltas become text; a tool call becomes a :class:`FunctionCall` (when its name arrives) followed by an
    :class:`ArgumentsDelta` for each piece of its arguments; the usage chunk becomes :class:`Usage`; a
    ``finish_reason`` of ``length`` or ``content_filter`` ends the response ``incomplete``.
    """
    calling: int | None = None  # the index of the tool call whose arguments are streaming
    finish: str | None = None
    usage: Mapping[str, Any] | None = None
    for chunk in chunks:
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                calling = None
                yield delta["content"]
            for call in delta.get("tool_calls") or ():
                function = call.get("function") or {}
                index = call.get("index", 0)
                if function.get("name"):  # the first chunk of a call names its function
                    calling = index
                    yield FunctionCall(
                        function["name"], function.get("arguments") or "", call_id=call.get("id") or None
                    )
                elif index != calling:
                    raise ModelError(f"arguments of tool call {index} arrived after another output began")
                elif function.get("arguments"):
                    yield ArgumentsDelta(function["arguments"])
            finish = choice.get("finish_reason") or finish
    if usage is not None:
        yield Usage(input_tokens=usage.get("prompt_tokens") or 0, output_tokens=usage.get("completion_tokens") or 0)
    if finish == "length":
        yield Incomplete("max_output_tokens")
    elif finish == "content_filter":
        yield Incomplete("content_filter")


#: The model for ``python -m responsestore serve --generate local_model:generate``: the server named by the
#: environment variables ``LOCAL_MODEL_URL`` (``http://127.0.0.1:8080/v1``, llama-server's default, when unset),
#: ``LOCAL_MODEL`` (the model name to send it; the request's when unset) and ``LOCAL_MODEL_API_KEY``.
generate = make_generate(
    os.environ.get("LOCAL_MODEL_URL", "http://127.0.0.1:8080/v1"),
    model=os.environ.get("LOCAL_MODEL"),
    api_key=os.environ.get("LOCAL_MODEL_API_KEY"),
)
