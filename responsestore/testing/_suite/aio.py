"""AsyncResponseStore: the same contract through asyncio, without blocking the event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from responsestore import BaseStore, InvalidArgument, ResponseNotFound, ResponseRecord, ResponseStatus, WaitTimeout
from responsestore.aio import AsyncResponseStore

from .base import LOST_WRITE, ContractBase

StoreFactory = Callable[..., BaseStore]


def run(coroutine: Any, bound: float) -> Any:
    """Run ``coroutine`` to its end within ``bound`` seconds (the contract's ``time_limit``)."""
    return asyncio.run(asyncio.wait_for(coroutine, bound))


class AsyncTests(ContractBase):
    """AsyncResponseStore: the same contract through asyncio, without blocking the event loop."""

    def test_every_method_is_awaitable(self, store: BaseStore) -> None:
        async def scenario() -> None:
            a = AsyncResponseStore(store)
            first = await a.create("m", "hi", background=True, status="queued", metadata={"k": "v"})
            assert await a.contains(first.id)
            assert await a.count() == 1
            assert (await a.start(first.id)).status is ResponseStatus.IN_PROGRESS
            assert await a.append_event(first.id, {"type": "x"}) == 0
            assert (await a.events(first.id))[0]["sequence_number"] == 0
            done = await a.complete(
                first.id, [{"role": "assistant", "content": "yo"}], usage={"input_tokens": 1, "output_tokens": 1}
            )
            assert (await a.get(first.id)) == done
            second = await a.create("m", "more", previous_response_id=first.id)
            assert [r.id for r in await a.chain(second.id)] == [first.id, second.id]
            assert len(await a.conversation(second.id)) == 3
            assert (await a.update(second.id, metadata={"a": "b"})).version == 2
            assert (await a.mark_incomplete(second.id, "max_output_tokens")).status is ResponseStatus.INCOMPLETE
            third = await a.create("m", background=True)
            assert (await a.cancel(third.id)).status is ResponseStatus.CANCELLED
            fourth = await a.create("m")
            assert (await a.fail(fourth.id, "boom")).status is ResponseStatus.FAILED
            assert [r.id for r in (await a.list(order="asc")).data] == [first.id, second.id, third.id, fourth.id]
            assert len((await a.input_items(first.id)).data) == 1
            assert await a.find_item(first.input[0]["id"]) == first.input[0]
            assert (await a.stats()).records == 4
            assert await a.sweep() == 0
            assert (await a.delete(fourth.id)).id == fourth.id
            with pytest.raises(ResponseNotFound):
                await a.get(fourth.id)

        run(scenario(), self.time_limit)

    def test_wait_does_not_block_the_event_loop(self, store: BaseStore) -> None:
        record = store.create("m", background=True)

        async def scenario() -> None:
            a = AsyncResponseStore(store)
            waiting = asyncio.create_task(a.wait(record.id, timeout=self.time_limit))
            ticks = 0
            # The loop keeps running other tasks while the wait is pending: 20 ticks happen before any write.
            while ticks < 20:
                await asyncio.sleep(0)
                ticks += 1
                assert not waiting.done()
            lost: list[str] = []

            def cancel() -> None:
                store.cancel(record.id)
                if store.get(record.id).status is not ResponseStatus.CANCELLED:
                    lost.append(f"cancel(): {LOST_WRITE}")
                    store.close()  # wakes the wait: it ends now, not at the time limit

            finisher = threading.Thread(target=cancel)
            finisher.start()
            (outcome,) = await asyncio.gather(waiting, return_exceptions=True)
            finisher.join(self.time_limit)
            assert not lost, lost[0]
            assert isinstance(outcome, ResponseRecord), outcome
            result = outcome
            assert result.status is ResponseStatus.CANCELLED
            assert len(store._waiters) == 0

        run(scenario(), self.time_limit)

    def test_async_streams_resume_anywhere_and_end(self, store: BaseStore) -> None:
        record = store.create("m", background=True)
        total = 120

        problems: list[BaseException] = []

        def produce() -> None:
            try:
                for i in range(total - 1):
                    store.append_event(record.id, {"type": "delta", "i": i})
                store.complete(record.id, event={"type": "response.completed"})
                assert store.get(record.id).is_terminal, f"complete(): {LOST_WRITE}"
            except BaseException as exc:  # noqa: BLE001 - reported by the test below
                problems.append(exc)
                store.close()  # wakes every stream: the consumers end now, not at the time limit

        async def consume(starting_after: int | None) -> list[int]:
            a = AsyncResponseStore(store)
            return [
                e["sequence_number"]
                async for e in a.stream(record.id, starting_after=starting_after, timeout=self.time_limit)
            ]

        async def scenario() -> None:
            starts = [None, 0, 10, 59, 118, 119, 500]
            consumers = [asyncio.create_task(consume(s)) for s in starts]
            await asyncio.sleep(0)
            producer = threading.Thread(target=produce)
            producer.start()
            results = await asyncio.gather(*consumers, return_exceptions=True)
            producer.join(self.time_limit)
            if problems:
                raise problems[0]
            for start, got in zip(starts, results, strict=True):
                first = 0 if start is None else start + 1
                assert got == list(range(first, total)), start
            assert len(store._waiters) == 0

        run(scenario(), self.time_limit)

    def test_cancelled_waiters_and_streams_leak_nothing(self, store: BaseStore) -> None:
        record = store.create("m", background=True)

        async def scenario() -> None:
            a = AsyncResponseStore(store)
            waits = [asyncio.create_task(a.wait(record.id)) for _ in range(5)]

            async def drain() -> list[dict[str, Any]]:
                return [e async for e in a.stream(record.id)]

            streams = [asyncio.create_task(drain()) for _ in range(5)]
            while len(store._waiters) < 10:  # every task has registered; asyncio.wait_for bounds the whole scenario
                await asyncio.sleep(0.001)
            for task in waits + streams:
                task.cancel()
            results = await asyncio.gather(*waits, *streams, return_exceptions=True)
            assert all(isinstance(result, asyncio.CancelledError) for result in results)
            assert len(store._waiters) == 0
            # The store still works and later waiters are woken normally.
            later = asyncio.create_task(a.wait(record.id, timeout=self.time_limit))
            await asyncio.sleep(0)
            await asyncio.to_thread(store.cancel, record.id)
            if store.get(record.id).status is not ResponseStatus.CANCELLED:
                later.cancel()  # the wait would last the time limit
                pytest.fail(f"cancel(): {LOST_WRITE}")
            assert (await later).status is ResponseStatus.CANCELLED

        run(scenario(), self.time_limit)

    def test_async_timeouts_and_errors(self, store: BaseStore) -> None:
        record = store.create("m")

        async def scenario() -> None:
            a = AsyncResponseStore(store)
            with pytest.raises(WaitTimeout):
                await a.wait(record.id, timeout=0.05)
            with pytest.raises(WaitTimeout):
                async for _ in a.stream(record.id, timeout=0.05):
                    pass
            with pytest.raises(InvalidArgument):
                await a.wait(record.id, timeout=-1)
            with pytest.raises(InvalidArgument):
                a.stream(record.id, starting_after=-5)
            with pytest.raises(ResponseNotFound):
                await a.wait("resp_missing")
            with pytest.raises(ResponseNotFound):
                async for _ in a.stream("resp_missing"):
                    pass
            with pytest.raises(ResponseNotFound):
                await a.wait(record.id, owner="someone-else", timeout=0)
            assert len(store._waiters) == 0

        run(scenario(), self.time_limit)

    def test_a_deleted_response_ends_async_waits_with_not_found(self, store: BaseStore) -> None:
        record = store.create("m")

        async def scenario() -> None:
            a = AsyncResponseStore(store)
            waiting = asyncio.create_task(a.wait(record.id, timeout=self.time_limit))
            while len(store._waiters) < 1:
                await asyncio.sleep(0.001)
            await a.delete(record.id)
            with pytest.raises(ResponseNotFound):
                await waiting

        run(scenario(), self.time_limit)
