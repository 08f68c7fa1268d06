"""What the server logs: store and model failures, each record naming its request, and never an API key.

The loggers: ``responsestore.server`` (a store failure while serving a request, an unexpected failure of the app),
``responsestore.runs`` (a run: the model failing or going silent, the store failing while a response runs),
``responsestore.compaction`` and ``responsestore.tokens`` (their callables failing).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

import responsestore
from responsestore.wsgi import Unauthorized
from tests.live_app import TIMEOUT, Live
from tests.live_app import error_of as _error
from tests.test_wsgi_serve import Child, children

__all__ = ["children"]  # the fixture, shared with test_wsgi_serve

SECRET = "sk-very-secret-key-123"  # noqa: S105 - a made-up key, looked for in the logs


def _broken(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[str]:
    yield "partial"
    raise RuntimeError("the model broke")


@pytest.fixture
def serve(serve_on_both: Callable[..., Live]) -> Callable[..., Live]:
    """Both transports."""
    return serve_on_both


def _records(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == name]


def _text(caplog: pytest.LogCaptureFixture) -> str:
    """Everything logged, as a handler would format it (messages and tracebacks)."""
    formatter = logging.Formatter("%(name)s %(message)s")
    return "\n".join(formatter.format(record) for record in caplog.records)


def test_a_store_failure_is_logged_with_the_request_id(
    serve: Callable[..., Live], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = responsestore.open(f"sqlite:///{tmp_path / 'r.db'}")
    live = serve(store)
    created = live.client(SECRET).responses.create(model="echo", input="x")
    store.close()
    headers = {"X-Request-Id": "trace-store-1", "Authorization": f"Bearer {SECRET}"}
    reply = live.request("GET", f"/responses/{created.id}", headers=headers)
    assert _error(reply, 500)["code"] == "server_error"
    (record,) = _records(caplog, "responsestore.server")
    assert record.levelno == logging.ERROR
    assert record.request_id == "trace-store-1"  # type: ignore[attr-defined]
    assert record.getMessage().startswith("request trace-store-1: the store failed")
    assert record.exc_info is not None
    assert SECRET not in _text(caplog)


def test_a_full_store_is_logged_as_a_warning(serve: Callable[..., Live], caplog: pytest.LogCaptureFixture) -> None:
    gate = threading.Event()

    def waits(conversation: Sequence[dict[str, Any]], request: Mapping[str, Any]) -> Iterator[str]:
        yield "x"
        gate.wait(TIMEOUT)

    live = serve(responsestore.open("memory://", max_records=1), generate=waits)
    try:
        live.client().responses.create(model="m", input="x", background=True)  # running: cannot be evicted
        headers = {"X-Request-Id": "full-1"}
        reply = live.request("POST", "/responses", json={"model": "m", "input": "y"}, headers=headers)
        assert _error(reply, 503)["code"] == "store_full"
    finally:
        gate.set()
    (record,) = _records(caplog, "responsestore.server")
    assert (record.levelno, record.request_id) == (logging.WARNING, "full-1")  # type: ignore[attr-defined]
    assert "request full-1: the store is full" in record.getMessage()


@pytest.mark.parametrize("mode", ["plain", "stream", "background"])
def test_a_model_failure_is_logged_with_the_request_that_started_it(
    serve: Callable[..., Live], caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    live = serve(generate=_broken)
    body = {"model": "m", "input": "x", "stream": mode == "stream", "background": mode == "background"}
    headers = {"X-Request-Id": f"trace-model-{mode}", "Authorization": f"Bearer {SECRET}"}
    if mode == "stream":
        events = live.events("POST", "/responses", json=body, headers=headers)
        assert events[-1]["type"] == "response.failed"
    else:
        created = live.json("POST", "/responses", json=body, headers=headers)
        live.events("GET", f"/responses/{created['id']}", params={"stream": "true"})  # until it ends
    (record,) = _records(caplog, "responsestore.runs")
    assert record.levelno == logging.ERROR
    assert record.request_id == f"trace-model-{mode}"  # type: ignore[attr-defined]
    message = record.getMessage()
    assert message.startswith(f"request trace-model-{mode}: the model failed while generating response resp_")
    assert record.exc_info is not None
    assert "the model broke" in _text(caplog)  # the traceback, for the operator
    assert SECRET not in _text(caplog)


def test_an_authenticate_failure_never_logs_the_key(
    serve: Callable[..., Live], caplog: pytest.LogCaptureFixture
) -> None:
    keys = {"sk-known": "alice"}

    def authenticate(key: str | None) -> str | None:
        if key == "sk-unknown":
            raise Unauthorized
        return keys[key or ""]  # a bug: a KeyError whose message is the key

    live = serve(authenticate=authenticate)
    headers = {"Authorization": f"Bearer {SECRET}", "X-Request-Id": "a1"}
    reply = live.request("GET", "/responses/resp_x", headers=headers)
    error = _error(reply, 500)
    assert SECRET not in error["message"]
    (record,) = _records(caplog, "responsestore.server")
    assert record.request_id == "a1"  # type: ignore[attr-defined]
    assert record.getMessage() == "request a1: the authenticate callable failed"
    assert "KeyError (its message is not logged: it may hold the key)" in _text(caplog)
    assert 'return keys[key or ""]' in _text(caplog)  # the traceback, for the operator
    assert SECRET not in _text(caplog)
    assert _error(live.request("GET", "/responses/x", headers={"Authorization": "Bearer sk-unknown"}), 401)


def test_records_outside_a_request_have_no_request_id(caplog: pytest.LogCaptureFixture) -> None:
    from responsestore.server._logs import RequestLogger, serving  # noqa: PLC0415

    log = RequestLogger("responsestore.test")
    with caplog.at_level(logging.INFO, logger="responsestore.test"):
        log.info("outside")
        with serving("req_inside"):
            log.info("inside")
            bound = log.bound()
        bound.info("later")
        RequestLogger("responsestore.test", "req_given").info("given", extra={"other": 1})
    records = _records(caplog, "responsestore.test")
    assert [(r.getMessage(), r.request_id) for r in records] == [  # type: ignore[attr-defined]
        ("outside", None),
        ("request req_inside: inside", "req_inside"),
        ("request req_inside: later", "req_inside"),
        ("request req_given: given", "req_given"),
    ]
    assert records[-1].other == 1  # type: ignore[attr-defined]


def test_serve_logs_a_model_failure_to_stderr_with_its_logger_and_request_id(children: list[Child]) -> None:
    child = Child("--generate", "tests.models:fails", "--api-key", f"{SECRET}=alice")
    children.append(child)
    client = child.client(SECRET).with_options(default_headers={"X-Request-Id": "serve-trace-1"})
    response = client.responses.create(model="m", input="x")
    assert response.status == "failed"
    stderr = child.stop()
    logged = " ERROR responsestore.runs: request serve-trace-1: the model failed while generating response resp_"
    assert logged in stderr
    assert "RuntimeError: the model broke" in stderr
    assert SECRET not in stderr
