"""A background response streamed by a generator thread, and a client that resumes after a disconnect.

Run it with ``python docs/examples/background.py``; it prints what the client received and checks that the
resumed stream continued exactly where the first connection stopped.
"""

from __future__ import annotations

import threading

from responsestore import ResponseStore

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog"]


def generate(store: ResponseStore, response_id: str, go: threading.Event) -> None:
    """The server's generator: emits one delta event per word, then completes with a final event."""
    store.start(response_id, event={"type": "response.in_progress"})
    for i, word in enumerate(WORDS):
        if i == 3:
            go.wait(timeout=60)  # let the client disconnect mid-stream, to show resumption
        store.append_event(response_id, {"type": "response.output_text.delta", "delta": word + " "})
    text = " ".join(WORDS)
    store.complete(
        response_id,
        [{"role": "assistant", "content": text}],
        usage={"input_tokens": 4, "output_tokens": len(WORDS)},
        event={"type": "response.completed"},
    )


def main() -> list[str]:
    store = ResponseStore()
    # POST /v1/responses with background=true: store it queued and hand the work to a generator thread.
    response = store.create("demo-model", "Say the pangram.", background=True, status="queued")
    go = threading.Event()
    generator = threading.Thread(target=generate, args=(store, response.id, go))
    generator.start()

    # GET /v1/responses/{id}?stream=true — the client reads three deltas, then its connection drops.
    received: list[str] = []
    last_seen = None
    for event in store.stream(response.id, timeout=60):
        last_seen = event["sequence_number"]
        if event["type"] == "response.output_text.delta":
            received.append(event["delta"])
            if len(received) == 3:
                break  # the disconnect: the iterator is dropped, nothing is left registered
    go.set()

    # GET /v1/responses/{id}?stream=true&starting_after=N — it reconnects and resumes exactly after N.
    for event in store.stream(response.id, starting_after=last_seen, timeout=60):
        if event["type"] == "response.output_text.delta":
            received.append(event["delta"])
        print(event["sequence_number"], event["type"])

    generator.join(timeout=60)
    final = store.wait(response.id, timeout=60)
    assert "".join(received).split() == WORDS, received
    print(final.status.value, "".join(received).strip())
    return received


if __name__ == "__main__":
    main()
