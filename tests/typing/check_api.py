"""Type-checked with ``mypy --strict``: the public API used the way a user would, so annotations cannot regress."""

from __future__ import annotations

from typing import Any

from responsestore import BaseStore, FrozenDict, Page, ResponseRecord, ResponseStatus, ResponseStore, RWLock


def serve(store: BaseStore, tenant: str | None) -> dict[str, Any]:
    record: ResponseRecord = store.create("gpt-4.1", "hello", owner=tenant, metadata={"k": "v"})
    status: ResponseStatus = record.status
    done: ResponseRecord = store.complete(record.id, [{"role": "assistant", "content": "hi"}], owner=tenant)
    page: Page[ResponseRecord] = store.list(limit=10, order="asc", owner=tenant)
    items: Page[dict[str, Any]] = store.input_items(done.id, owner=tenant)
    context: tuple[dict[str, Any], ...] = store.conversation(done.id, owner=tenant)
    stored: FrozenDict = store.conversation(done.id, owner=tenant)[0]  # the stored item, read-only
    mutable: dict[str, Any] = stored.thaw()
    first: FrozenDict = store.input_items(done.id, owner=tenant).data[0]
    assert mutable == stored == first
    assert status is ResponseStatus.IN_PROGRESS
    assert len(page.data) + len(items.data) + len(context) > 0
    return done.to_openai()


def locking() -> bool:
    lock = RWLock()
    with lock.read(), lock.read():
        pass
    with lock.write():
        pass
    acquired: bool = lock.acquire_read(timeout=0.1)
    if acquired:
        lock.release_read()
    return acquired


serve(ResponseStore(), None)


def responses_api() -> None:
    from collections.abc import Iterator, Mapping, Sequence  # noqa: PLC0415

    from responsestore.wsgi import (  # noqa: PLC0415
        DEFAULT_MAX_STREAMS,
        Compact,
        CountTokens,
        ResponsesApp,
        Unauthorized,
        Usage,
        echo,
        echo_compact,
        estimate_tokens,
        make_app,
    )

    def model(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[str | Usage]:
        yield str(len(conversation))
        yield Usage(input_tokens=1, output_tokens=1)

    def authenticate(key: str | None) -> str | None:
        if key is None:
            raise Unauthorized
        return key

    app: ResponsesApp = make_app(ResponseStore(), generate=model, authenticate=authenticate, max_body_bytes=4096)
    app.close()

    def compact(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> list[Mapping[str, Any] | Usage]:
        return [{"type": "compaction", "encrypted_content": str(len(conversation))}, Usage(1, 1)]

    def count(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> int:
        return len(conversation)

    compactions: list[Compact] = [compact, echo_compact]
    counters: list[CountTokens] = [count, estimate_tokens]
    named = make_app(
        ResponseStore(),
        models={"echo": echo, "mine": model},
        compact=compactions[0],
        count_tokens=counters[0],
        cors_origins=["https://app.example.com"],
        max_streams=DEFAULT_MAX_STREAMS - 4,
        stop_grace=2.5,
    )
    named.close()
    make_app(ResponseStore(), max_streams=None).close()


def tool_calling_model() -> None:
    from collections.abc import Iterator, Mapping, Sequence  # noqa: PLC0415

    from responsestore.wsgi import ArgumentsDelta, FunctionCall, Incomplete, Usage, make_app  # noqa: PLC0415

    def model(
        conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]
    ) -> Iterator[str | FunctionCall | ArgumentsDelta | Usage | Incomplete]:
        yield "Looking it up."
        yield FunctionCall("lookup", call_id="call_1")
        yield ArgumentsDelta('{"q": "x"}')
        yield Usage(input_tokens=1, output_tokens=2)
        if request.get("max_output_tokens") == 0:
            yield Incomplete("content_filter")

    make_app(ResponseStore(), generate=model).close()
