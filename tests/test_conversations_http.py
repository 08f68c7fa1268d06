"""The Conversations API over real HTTP, driven by the official openai client (and the Agents SDK's session).

Every body is validated with the SDK's models in strict mode (``tests/wire_checks.py``); responses created in a
conversation are validated like every other response.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import openai
import pytest

import responsestore
from tests import node_client, redis_server
from tests.test_wsgi import TIMEOUT, Gate, Live, _error, serve  # noqa: F401 - serve is a fixture
from tests.test_wsgi_serve import Child
from tests.wire_checks import check_conversation, check_conversation_item, check_conversation_items, check_response


def _texts(items: Sequence[Any]) -> list[str]:
    return [part.text for item in items for part in item.content]


def _count_context(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[str]:
    """A model that answers how many items of context it was given and the last one's text."""
    last = conversation[-1]["content"]
    text = last if isinstance(last, str) else last[0]["text"]
    yield f"{len(conversation)}:{text}"


@pytest.fixture
def live(serve: Callable[..., Live]) -> Live:  # noqa: F811 - the fixture imported above
    return serve(generate=_count_context)


def test_every_conversation_route_with_the_openai_client(live: Live) -> None:
    client = live.client()
    created = client.conversations.create(items=[{"role": "user", "content": "hello"}], metadata={"topic": "t"})
    assert created.id.startswith("conv_")
    check_conversation(live.json("GET", f"/conversations/{created.id}"))
    assert client.conversations.retrieve(created.id) == created
    updated = client.conversations.update(created.id, metadata={"topic": "u"})
    assert updated.metadata == {"topic": "u"}
    added = client.conversations.items.create(
        created.id, items=[{"type": "message", "role": "user", "content": f"m{n}"} for n in range(5)]
    )
    assert len(added.data) == 5
    check_conversation_items(live.json("GET", f"/conversations/{created.id}/items", params={"limit": 2}))
    newest_first = list(client.conversations.items.list(created.id, limit=2))
    assert _texts(newest_first) == ["m4", "m3", "m2", "m1", "m0", "hello"]
    oldest_first = list(client.conversations.items.list(created.id, limit=4, order="asc"))
    assert _texts(oldest_first) == ["hello", "m0", "m1", "m2", "m3", "m4"]
    item = client.conversations.items.retrieve(added.data[0].id, conversation_id=created.id)
    assert _texts([item]) == ["m0"]
    check_conversation_item(live.json("GET", f"/conversations/{created.id}/items/{item.id}"))
    after = client.conversations.items.delete(item.id, conversation_id=created.id)
    assert after.id == created.id
    assert "m0" not in _texts(client.conversations.items.list(created.id))
    deleted = client.conversations.delete(created.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (created.id, True, "conversation.deleted")
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(created.id)


def test_responses_in_a_conversation_read_and_extend_it(live: Live) -> None:
    client = live.client()
    conversation = client.conversations.create(items=[{"role": "user", "content": "first"}])
    one = client.responses.create(model="m", input="second", conversation=conversation.id)
    check_response(live.json("GET", f"/responses/{one.id}"))
    assert one.output_text == "2:second", "the conversation's item, then the new input"
    assert one.conversation is not None
    assert one.conversation.id == conversation.id
    two = client.responses.create(model="m", input="third", conversation={"id": conversation.id})
    assert two.output_text == "4:third"
    assert _texts(client.conversations.items.list(conversation.id, order="asc")) == [
        "first",
        "second",
        "2:second",
        "third",
        "4:third",
    ]
    check_response(live.json("GET", f"/responses/{two.id}"))
    stream = client.responses.create(model="m", input="fourth", conversation=conversation.id, stream=True)
    events = list(stream)
    assert events[-1].type == "response.completed"
    assert len(list(client.conversations.items.list(conversation.id))) == 7
    replayed = live.events("GET", f"/responses/{events[0].response.id}", params={"stream": "true"})
    assert [event["type"] for event in replayed] == [event.type for event in events]
    assert replayed[-1]["response"]["conversation"] == {"id": conversation.id}
    background = client.responses.create(model="m", input="fifth", conversation=conversation.id, background=True)
    resumed = live.events("GET", f"/responses/{background.id}", params={"stream": "true", "starting_after": "0"})
    assert resumed[-1]["type"] == "response.completed"
    assert _texts(client.conversations.items.list(conversation.id, limit=2).data) == ["8:fifth", "fifth"]


def test_a_cancelled_background_response_adds_nothing(serve: Callable[..., Live]) -> None:  # noqa: F811
    gate = Gate()
    live = serve(generate=gate)
    client = live.client()
    conversation = client.conversations.create()
    queued = client.responses.create(model="m", input="x", conversation=conversation.id, background=True)
    assert gate.started.wait(TIMEOUT)
    client.responses.cancel(queued.id)
    gate.gate.set()
    final = client.responses.retrieve(queued.id)
    assert final.status == "cancelled"
    assert list(client.conversations.items.list(conversation.id)) == []


def test_conversations_are_owned_by_their_key(live: Live) -> None:
    alice, bob = live.client("key-a"), live.client("key-b")
    conversation = alice.conversations.create(items=[{"role": "user", "content": "secret"}])
    item = next(iter(alice.conversations.items.list(conversation.id)))
    for call in (
        lambda: bob.conversations.retrieve(conversation.id),
        lambda: bob.conversations.update(conversation.id, metadata={}),
        lambda: bob.conversations.delete(conversation.id),
        lambda: bob.conversations.items.list(conversation.id),
        lambda: bob.conversations.items.create(conversation.id, items=[{"role": "user", "content": "x"}]),
        lambda: bob.conversations.items.retrieve(item.id, conversation_id=conversation.id),
        lambda: bob.conversations.items.delete(item.id, conversation_id=conversation.id),
        lambda: bob.responses.create(model="m", input="x", conversation=conversation.id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert _texts(alice.conversations.items.list(conversation.id)) == ["secret"]


@pytest.mark.parametrize(
    "case",
    [
        ("POST", "/conversations", {"items": "no"}, 400, "items"),
        ("POST", "/conversations", {"metadata": {"k": 1}}, 400, "metadata"),
        ("POST", "/conversations", {"colour": "red"}, 400, "colour"),
        ("POST", "/conversations", [1], 400, None),
        ("POST", "/conversations", {"items": [{"role": "user", "content": str(n)} for n in range(21)]}, 400, "items"),
        ("POST", "/conversations/{id}", {}, 400, "metadata"),
        ("POST", "/conversations/{id}/items", {"items": []}, 400, "items"),
        ("POST", "/conversations/{id}/items", {"items": [3]}, 400, "items"),
        ("GET", "/conversations/{id}/items?limit=0", None, 400, "limit"),
        ("GET", "/conversations/{id}/items?limit=%D9%A1", None, 400, "limit"),
        ("GET", "/conversations/{id}/items?order=up", None, 400, "order"),
        ("GET", "/conversations/{id}/items?after=msg_nowhere", None, 400, "after"),
        ("GET", "/conversations/conv_nowhere", None, 404, None),
        ("GET", "/conversations/{id}/items/msg_nowhere", None, 404, None),
        ("GET", "/conversations/{id}/nothing", None, 404, None),
        ("GET", "/conversations/{id}/items/x/y", None, 404, None),
        ("PUT", "/conversations/{id}", None, 405, None),
        ("GET", "/conversations", None, 405, None),
        ("POST", "/responses", {"model": "m", "input": "x", "conversation": 5}, 400, "conversation"),
        ("POST", "/responses", {"model": "m", "input": "x", "conversation": "conv_nowhere"}, 404, "conversation"),
        (
            "POST",
            "/responses",
            {"model": "m", "input": "x", "conversation": "{id}", "previous_response_id": "resp_1"},
            400,
            "conversation",
        ),
        ("POST", "/responses", {"model": "m", "input": "x", "conversation": "{id}", "store": False}, 400, "store"),
    ],
)
def test_bad_requests_get_openais_error_and_change_nothing(live: Live, case: tuple[Any, ...]) -> None:
    method, path, body, status, param = case
    conversation = live.client().conversations.create(items=[{"role": "user", "content": "kept"}])
    if isinstance(body, dict) and body.get("conversation") == "{id}":
        body = {**body, "conversation": conversation.id}
    error = _error(live.request(method, path.replace("{id}", conversation.id), json=body), status)
    assert error["param"] == param
    assert len(error["message"]) < 600
    assert live.client().conversations.retrieve(conversation.id).metadata == {}
    assert _texts(live.client().conversations.items.list(conversation.id)) == ["kept"]


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_two_servers_finishing_responses_on_one_conversation_lose_nothing(tmp_path: Path, backend: str) -> None:
    """Two ``serve`` processes on one store; threads create responses in one conversation on both."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = f"{redis_server.shared().url}?prefix={redis_server.fresh_prefix()}"
    first, second = Child("--store", url), Child("--store", url)
    try:
        conversation = first.client().conversations.create()
        errors: list[BaseException] = []
        turns = 6

        def talk(child: Child, name: str) -> None:
            try:
                client = child.client()
                for n in range(turns):
                    client.responses.create(model="m", input=f"{name}{n}", conversation=conversation.id)
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)

        threads = [
            threading.Thread(target=talk, args=(child, name))
            for child, name in ((first, "a"), (second, "b"), (first, "c"), (second, "d"))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT * 4)
        assert not errors, errors[0]
        items = list(second.client().conversations.items.list(conversation.id, order="asc", limit=100))
        assert len(items) == 4 * turns * 2
        inputs = _texts(items)[::2]
        for name in "abcd":
            assert [text for text in inputs if text[0] == name] == [f"{name}{n}" for n in range(turns)]
    finally:
        first.stop()
        second.stop()


def test_the_agents_sdk_conversation_session_round_trips(tmp_path: Path) -> None:
    """``OpenAIConversationsSession`` of the Agents SDK against ``serve``: add, read, pop, clear."""
    memory = pytest.importorskip("agents.memory", reason="the openai-agents package is not installed")
    child = Child("--store", f"sqlite:///{tmp_path / 'store.db'}")
    try:

        async def session_round_trip() -> None:
            client = openai.AsyncOpenAI(base_url=child.url, api_key="any", max_retries=0, timeout=TIMEOUT)
            session = memory.OpenAIConversationsSession(openai_client=client)
            await session.add_items(
                [
                    {"role": "user", "content": "What is the capital of France?"},
                    {
                        "type": "message",
                        "role": "assistant",
                        "status": "completed",
                        "content": [{"type": "output_text", "text": "Paris.", "annotations": []}],
                    },
                ]
            )
            items = await session.get_items()
            assert [item["role"] for item in items] == ["user", "assistant"]
            assert (await session.get_items(limit=1))[0]["role"] == "assistant"
            popped = await session.pop_item()
            assert popped is not None
            assert popped["role"] == "assistant"
            assert len(await session.get_items()) == 1
            await session.clear_session()
            await client.close()

        asyncio.run(session_round_trip())
    finally:
        child.stop()


def test_store_level_conversation_items_are_valid_wire_items() -> None:
    store = responsestore.ResponseStore()
    conversation = store.create_conversation([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}])
    check_conversation_items(store.conversation_items(conversation.id).to_openai())
    check_conversation(store.get_conversation(conversation.id).to_openai())


def test_the_node_openai_client_drives_every_conversation_route(live: Live) -> None:
    seen = node_client.run("client.mjs", live.url)
    assert seen["conversation"]["metadata"] == {"topic": "node"}
    check_conversation(seen["conversation"])
    assert seen["retrieved"] == seen["conversation"]
    assert seen["updated"]["metadata"] == {"topic": "changed"}
    assert seen["added"] == 3
    assert seen["response"] == {
        "status": "completed",
        "text": "5:from node",
        "conversation": {"id": seen["conversation"]["id"]},
    }
    assert seen["listed"] == ["hello", "m1", "m2", "m3", "from node", "5:from node"]
    assert seen["item"] is True
    assert seen["streamed"][-1] == "response.completed"
    assert seen["deleted"] == {"id": seen["conversation"]["id"], "object": "conversation.deleted", "deleted": True}
    assert seen["gone"] == 404
