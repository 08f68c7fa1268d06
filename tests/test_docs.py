"""The documentation: its examples run, the example WSGI app serves real HTTP correctly, Sphinx builds it cleanly."""

from __future__ import annotations

import doctest
import http.client
import importlib
import importlib.util
import json
import os
import pkgutil
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import pytest
from openai.types.responses import Response, ResponseItemList

import responsestore
from responsestore import (
    ChainError,
    InvalidArgument,
    InvalidTransition,
    LockError,
    ResponseExists,
    ResponseNotFound,
    ResponseRecord,
    ResponseStatus,
    ResponseStore,
    StoreFull,
    VersionConflict,
)
from responsestore.testing import FakeClock

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLE = DOCS / "examples" / "wsgi_app.py"
MARKDOWN = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
#: The pages whose examples must not silently disappear (a page without ``>>>`` examples passes trivially).
WITH_EXAMPLES = {
    "README.md",
    "quickstart.md",
    "serving.md",
    "asgi.md",
    "concurrency.md",
    "lifecycle.md",
    "retention.md",
    "conversations.md",
}
DOCTEST_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
WAIT = 60  # seconds; a bound that turns a hang into a failure, never a timing assertion


# ---------------------------------------------------------------------------------------------- doctests


def test_the_markdown_files_are_the_expected_ones() -> None:
    names = {path.name for path in MARKDOWN}
    assert names >= WITH_EXAMPLES
    assert {"index.md", "wsgi.md", "api.md", "changelog.md"} <= names


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda path: path.name)
def test_markdown_examples_run(path: Path) -> None:
    result = doctest.testfile(
        str(path), module_relative=False, optionflags=DOCTEST_FLAGS, encoding="utf-8", report=True
    )
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {path.name} failed (see stdout)"
    if path.name in WITH_EXAMPLES:
        assert result.attempted > 0, f"{path.name} lost its examples"


# ---------------------------------------------------------------------------------------------- the README

README = ROOT / "README.md"
SET_UP = (
    "python3 -m venv .venv && .venv/bin/pip install -q '.[server]' && .venv/bin/python -m responsestore serve"
    " --port 8000",
    "python3 -m venv .venv && .venv/bin/pip install -q '.[tests]' && .venv/bin/python -m pytest",
)


def _shell_blocks(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"^```sh\n(.*?)^```", text, re.MULTILINE | re.DOTALL)]


def _collected(args: list[str]) -> int:
    """How many tests ``python -m pytest ARGS`` runs, from a collection in a fresh process of the README's pytest."""
    env = {name: value for name, value in os.environ.items() if name != "PYTEST_ADDOPTS"}  # CI's -m, --cov, -n
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *args, "--collect-only", "-n", "0", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    summary = re.search(r"\b(\d+)(?:/\d+)? tests? collected", result.stdout)
    assert summary is not None, result.stdout[-2000:]
    return int(summary[1])


def test_the_readme_keeps_its_set_up_commands() -> None:
    blocks = _shell_blocks(README.read_text(encoding="utf-8"))
    assert list(SET_UP) == blocks[:2]


def test_the_readme_links_every_docs_page() -> None:
    text = README.read_text(encoding="utf-8")
    pages = {path.name for path in DOCS.glob("*.md")} - {"index.md", "changelog.md"}  # changelog.md is CHANGELOG.md
    assert pages, "no docs pages found"
    assert sorted(page for page in pages if f"](docs/{page})" not in text) == []
    assert "](CHANGELOG.md)" in text
    build = next(block for block in _shell_blocks(text) if "sphinx" in block)
    assert build.endswith("-m sphinx -W -b html docs docs/_build/html")
    assert "pip install -q '.[docs]'" in build


def test_the_readme_counts_the_tests_it_names() -> None:
    text = re.sub(r"\s+", " ", README.read_text(encoding="utf-8"))
    quick = next(block for block in _shell_blocks(README.read_text(encoding="utf-8")) if "-k TestMemory" in block)
    prefix = ".venv/bin/python -m pytest "
    assert quick.startswith(prefix)
    stated_quick = re.search(r"about (\d+) tests in under a minute", text)
    assert stated_quick is not None
    quick_count = _collected(quick.removeprefix(prefix).split())
    # Both figures are "about": the suite grows; one more than 10% off is out of date.
    assert abs(quick_count - int(stated_quick[1])) <= quick_count // 10, quick_count
    stated_all = re.search(r"That runs about (\d+),(\d{3}) tests", text)
    assert stated_all is not None
    total = _collected(["-q"])
    assert abs(total - int(stated_all[1] + stated_all[2])) <= total // 10, total


# ---------------------------------------------------------------------------------------------- the WSGI example


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_example_wsgi_app", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Client:
    """Requests to one running server, each on a fresh connection (wsgiref speaks HTTP/1.0)."""

    def __init__(self, port: int) -> None:
        self.port = port

    def request(
        self, method: str, path: str, *, key: str | None = None, body: bytes | None = None
    ) -> tuple[int, dict[str, str], Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT)
        try:
            headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            return response.status, dict(response.getheaders()), json.loads(payload)
        finally:
            connection.close()

    def get(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        status, _, body = self.request("GET", path, **kwargs)
        return status, body


Serve = Callable[..., Client]


@pytest.fixture
def serve(example: ModuleType) -> Iterator[Serve]:
    """Start ``make_app(store, ...)`` on a threaded server on a free port; shut every server down afterwards."""
    running: list[tuple[Any, threading.Thread, ResponseStore]] = []

    def start(store: ResponseStore, **kwargs: Any) -> Client:
        app = example.make_app(store, **kwargs)
        server = example.make_threaded_server(app, "127.0.0.1", 0, quiet=True)
        assert isinstance(server, example.ThreadingWSGIServer)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        running.append((server, thread, store))
        return Client(server.server_address[1])

    yield start
    for server, thread, store in running:
        stopper = threading.Thread(target=server.shutdown, daemon=True)
        stopper.start()
        stopper.join(timeout=WAIT)
        assert not stopper.is_alive(), "server.shutdown() did not return"
        thread.join(timeout=WAIT)
        assert not thread.is_alive(), "serve_forever() did not end"
        server.server_close()
        store._check()


def _new_store() -> ResponseStore:
    return ResponseStore(clock=FakeClock())


def _error(message: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


def _refusal(call: Callable[[], object]) -> str:
    """The message of the store's refusal of ``call``: what the server must pass on verbatim."""
    with pytest.raises(responsestore.ResponseStoreError) as info:
        call()
    return str(info.value)


def _completed(store: ResponseStore, id: str, items: int = 1) -> ResponseRecord:
    input = [{"role": "user", "content": f"question {n}", "id": f"msg_{n}"} for n in range(items)]
    store.create("gpt-4.1", input, id=id)
    return store.complete(
        id,
        [{"role": "assistant", "content": f"answer to {id}"}],
        usage={"input_tokens": 10, "output_tokens": 3},
    )


def test_get_returns_openai_json(serve: Serve) -> None:
    store = _new_store()
    record = _completed(store, "resp_done", items=2)
    running = store.create("gpt-4.1", "still thinking", id="resp_running")
    client = serve(store)

    status, headers, body = client.request("GET", "/v1/responses/resp_done")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert body == json.loads(json.dumps(record.to_openai()))
    parsed = Response.model_validate(body)
    assert (parsed.id, parsed.status, parsed.output_text) == ("resp_done", "completed", "answer to resp_done")
    assert parsed.usage is not None
    assert parsed.usage.total_tokens == 13

    with urllib.request.urlopen(f"http://127.0.0.1:{client.port}/v1/responses/resp_running", timeout=WAIT) as reply:
        assert reply.status == 200
        body = json.loads(reply.read())
    assert body == json.loads(json.dumps(running.to_openai()))
    assert Response.model_validate(body).status == "in_progress"


def test_get_refusals(serve: Serve) -> None:
    store = _new_store()
    record = _completed(store, "resp_done")
    client = serve(store)

    assert client.get("/v1/responses/resp_missing") == (404, _error("no response with id 'resp_missing'"))
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"http://127.0.0.1:{client.port}/v1/responses/resp_gone", timeout=WAIT)
    with info.value:
        assert info.value.code == 404
        assert json.loads(info.value.read()) == _error("no response with id 'resp_gone'")

    assert client.get("/v1/responses/bad%20id") == (400, _error(_refusal(lambda: store.get("bad id"))))
    long_id = "r" * 129
    assert client.get(f"/v1/responses/{long_id}") == (400, _error(_refusal(lambda: store.get(long_id))))
    assert store.get("resp_done") == record
    assert len(store) == 1


def test_delete(serve: Serve) -> None:
    store = _new_store()
    _completed(store, "resp_done")
    _completed(store, "resp_other")
    client = serve(store)

    status, _, body = client.request("DELETE", "/v1/responses/resp_done")
    assert (status, body) == (200, {"id": "resp_done", "object": "response", "deleted": True})
    assert "resp_done" not in store
    status, _, body = client.request("DELETE", "/v1/responses/resp_done")
    assert (status, body) == (404, _error("no response with id 'resp_done'"))
    assert client.get("/v1/responses/resp_done") == (404, _error("no response with id 'resp_done'"))
    assert [r.id for r in store.list()] == ["resp_other"]


def test_expected_version_conflicts_are_409_and_change_nothing(serve: Serve) -> None:
    store = _new_store()
    record = _completed(store, "resp_done")
    assert record.version == 2
    client = serve(store)

    status, _, body = client.request("DELETE", "/v1/responses/resp_done?expected_version=1")
    assert status == 409
    assert body == _error("response 'resp_done' is at version 2, not the expected version 1", "version_conflict")
    assert store.get("resp_done") == record

    status, _, body = client.request("DELETE", "/v1/responses/resp_done?expected_version=x")
    assert (status, body["error"]["message"]) == (
        400,
        "Query parameter 'expected_version' must be a whole number, not 'x'",
    )
    assert body["error"]["param"] == "expected_version"
    status, _, body = client.request("DELETE", "/v1/responses/resp_done?expected_version=0")
    assert (status, body) == (400, _error(_refusal(lambda: store.delete("resp_done", expected_version=0))))
    assert store.get("resp_done") == record

    status, _, body = client.request("DELETE", "/v1/responses/resp_done?expected_version=2")
    assert (status, body["deleted"]) == (200, True)
    assert len(store) == 0


def _items_path(id: str, **params: object) -> str:
    query = urlencode(params)
    return f"/v1/responses/{id}/input_items" + (f"?{query}" if query else "")


def test_input_items_paging(serve: Serve) -> None:
    store = _new_store()
    _completed(store, "resp_long", items=7)
    client = serve(store)

    seen: list[str] = []
    pages: list[tuple[list[str], bool]] = []
    after: str | None = None
    while True:
        params: dict[str, object] = {"limit": 3, "order": "asc"} | ({"after": after} if after else {})
        status, body = client.get(_items_path("resp_long", **params))
        assert status == 200
        assert body == store.input_items("resp_long", limit=3, order="asc", after=after).to_openai()
        ResponseItemList.model_validate(body)
        ids = [item["id"] for item in body["data"]]
        assert (body["object"], body["first_id"], body["last_id"]) == ("list", ids[0], ids[-1])
        pages.append((ids, body["has_more"]))
        seen += ids
        if not body["has_more"]:
            break
        after = body["last_id"]
    assert pages == [(["msg_0", "msg_1", "msg_2"], True), (["msg_3", "msg_4", "msg_5"], True), (["msg_6"], False)]

    status, body = client.get(_items_path("resp_long"))  # OpenAI's defaults: limit 20, newest first
    assert status == 200
    assert [item["id"] for item in body["data"]] == [f"msg_{n}" for n in range(6, -1, -1)]
    assert body["has_more"] is False
    assert body["data"][0]["content"] == [{"type": "input_text", "text": "question 6"}]

    status, body = client.get(_items_path("resp_long", before="msg_3", order="asc", limit=2))
    assert status == 200
    assert ([item["id"] for item in body["data"]], body["has_more"]) == (["msg_1", "msg_2"], True)
    status, body = client.get(_items_path("resp_long", after="msg_1", limit=2))  # desc
    assert ([item["id"] for item in body["data"]], body["has_more"]) == (["msg_0"], False)


def test_input_items_refusals(serve: Serve) -> None:
    store = _new_store()
    record = _completed(store, "resp_long", items=3)
    client = serve(store)

    def store_says(**kwargs: Any) -> dict[str, Any]:
        return _error(_refusal(lambda: store.input_items("resp_long", **kwargs)))

    assert client.get(_items_path("resp_long", limit=0)) == (400, store_says(limit=0))
    assert client.get(_items_path("resp_long", limit=101)) == (400, store_says(limit=101))
    assert client.get(_items_path("resp_long", order="sideways")) == (400, store_says(order="sideways"))
    assert client.get(_items_path("resp_long", after="msg_0", before="msg_2")) == (
        400,
        store_says(after="msg_0", before="msg_2"),
    )
    assert client.get(_items_path("resp_long", after="msg_nope")) == (400, store_says(after="msg_nope"))
    assert client.get(_items_path("resp_long", after="")) == (400, store_says(after=""))
    for bad in ("abc", "-1", "1.5", "٣"):
        status, body = client.get(_items_path("resp_long", limit=bad))
        assert status == 400
        assert body["error"]["message"] == f"Query parameter 'limit' must be a whole number, not {bad!r}"
    status, body = client.get("/v1/responses/resp_long/input_items?limit=1&limit=2")
    assert (status, body["error"]["message"]) == (400, "Query parameter 'limit' is given more than once")
    assert client.get(_items_path("resp_missing")) == (404, _error("no response with id 'resp_missing'"))
    assert store.get("resp_long") == record


def test_cancel(serve: Serve) -> None:
    store = _new_store()
    job = store.create("gpt-4.1", "long essay", background=True, status="queued", id="resp_job")
    _completed(store, "resp_plain")
    finished_job = store.create("gpt-4.1", "short", background=True, id="resp_finished")
    finished_job = store.complete(finished_job.id)
    client = serve(store)

    status, _, body = client.request("POST", "/v1/responses/resp_job/cancel?expected_version=7")
    assert (status, body) == (
        409,
        _error("response 'resp_job' is at version 1, not the expected version 7", "version_conflict"),
    )
    assert store.get("resp_job") == job

    status, _, body = client.request("POST", "/v1/responses/resp_job/cancel", body=b'{"ignored": true}')
    assert status == 200
    cancelled = store.get("resp_job")
    assert (cancelled.status, cancelled.version) == (ResponseStatus.CANCELLED, 2)
    assert body == json.loads(json.dumps(cancelled.to_openai()))
    assert Response.model_validate(body).status == "cancelled"
    assert client.request("POST", "/v1/responses/resp_job/cancel")[::2] == (200, body)  # idempotent
    assert store.get("resp_job") == cancelled

    plain = store.get("resp_plain")
    status, _, body = client.request("POST", "/v1/responses/resp_plain/cancel")
    assert (status, body) == (400, _error(_refusal(lambda: store.cancel("resp_plain"))))
    assert "only background responses can be cancelled" in body["error"]["message"]
    status, _, body = client.request("POST", "/v1/responses/resp_finished/cancel")
    assert (status, body) == (400, _error(_refusal(lambda: store.cancel("resp_finished"))))
    assert client.request("POST", "/v1/responses/resp_nope/cancel")[::2] == (
        404,
        _error("no response with id 'resp_nope'"),
    )
    assert store.get("resp_plain") == plain
    assert store.get("resp_finished") == finished_job


def test_unknown_paths_and_wrong_methods(serve: Serve) -> None:
    store = _new_store()
    _completed(store, "resp_done")
    client = serve(store)

    status, headers, body = client.request("PUT", "/v1/responses/resp_done")
    assert (status, headers["Allow"]) == (405, "GET, DELETE")
    assert body == _error("Method PUT is not allowed here; use GET or DELETE")
    status, headers, _ = client.request("GET", "/v1/responses/resp_done/cancel")
    assert (status, headers["Allow"]) == (405, "POST")
    status, headers, _ = client.request("DELETE", "/v1/responses/resp_done/input_items")
    assert (status, headers["Allow"]) == (405, "GET")
    assert client.get("/v1/models") == (404, _error("Invalid URL (GET /v1/models)"))
    assert client.get("/v1/responses/resp_done/output") == (
        404,
        _error("Invalid URL (GET /v1/responses/resp_done/output)"),
    )
    assert client.get("/v1/responses/") == (404, _error("Invalid URL (GET /v1/responses/)"))
    assert store.get("resp_done").status is ResponseStatus.COMPLETED


def test_api_keys_select_the_tenant(serve: Serve) -> None:
    store = _new_store()
    store.create("gpt-4.1", "a's question", id="resp_a", owner="tenant-a", background=True)
    store.create("gpt-4.1", "b's question", id="resp_b", owner="tenant-b")
    client = serve(store, api_keys={"key-a": "tenant-a", "key-b": "tenant-b"})
    unauthorized = {
        "error": {
            "message": "Incorrect API key provided.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }

    assert client.get("/v1/responses/resp_a") == (401, unauthorized)
    assert client.get("/v1/responses/resp_a", key="key-c") == (401, unauthorized)
    assert client.request("GET", "/v1/responses/resp_a", key="")[::2] == (401, unauthorized)

    status, body = client.get("/v1/responses/resp_a", key="key-a")
    assert (status, body["id"]) == (200, "resp_a")
    # Another tenant's id looks exactly like a missing one.
    assert client.get("/v1/responses/resp_a", key="key-b") == (404, _error("no response with id 'resp_a'"))
    assert client.get("/v1/responses/resp_zz", key="key-b") == (404, _error("no response with id 'resp_zz'"))
    assert client.get(_items_path("resp_a"), key="key-b") == (404, _error("no response with id 'resp_a'"))
    assert client.request("POST", "/v1/responses/resp_a/cancel", key="key-b")[::2] == (
        404,
        _error("no response with id 'resp_a'"),
    )
    assert client.request("DELETE", "/v1/responses/resp_a", key="key-b")[::2] == (
        404,
        _error("no response with id 'resp_a'"),
    )
    assert store.get("resp_a", owner="tenant-a").status is ResponseStatus.IN_PROGRESS
    assert client.request("DELETE", "/v1/responses/resp_b", key="key-b")[::2] == (
        200,
        {"id": "resp_b", "object": "response", "deleted": True},
    )
    assert store.contains("resp_a", owner="tenant-a")
    assert not store.contains("resp_b", owner="tenant-b")


def test_every_library_error_has_its_status(example: ModuleType) -> None:
    expected = [
        (ResponseNotFound("resp_x"), 404, None),
        (InvalidArgument("bad limit"), 400, None),
        (InvalidTransition("resp_x", "completed", "cancelled", "it is already final"), 400, None),
        (ChainError("the chain is broken", id="resp_x"), 400, None),
        (VersionConflict("resp_x", 1, 2), 409, "version_conflict"),
        (ResponseExists("resp_x"), 409, None),
        (StoreFull("resp_x", 10), 503, None),
    ]
    for exc, status, code in expected:
        assert example.store_error_response(exc) == (status, _error(str(exc), code))
    assert example.store_error_response(LockError("release_read() by a thread that holds no read lock")) == (
        500,
        {"error": {"message": "internal error", "type": "server_error", "param": None, "code": None}},
    )


def test_concurrent_clients(serve: Serve) -> None:
    """Many client threads at once, while a generator thread finishes a response: every answer is exact."""
    threads_count = 8
    store = _new_store()
    _completed(store, "resp_shared", items=9)
    store.create("gpt-4.1", "everyone cancels this", background=True, status="queued", id="resp_common_job")
    _completed(store, "resp_delete_once")
    for n in range(threads_count):
        store.create("gpt-4.1", f"job {n}", background=True, status="queued", id=f"resp_job_{n}")
        _completed(store, f"resp_mine_{n}")
    store.create("gpt-4.1", "being generated", id="resp_live")
    client = serve(store)
    start = threading.Barrier(threads_count + 1)
    failures: list[BaseException] = []
    delete_once: list[int] = []
    live_statuses: list[str] = []
    record_lock = threading.Lock()

    def client_thread(n: int) -> None:
        try:
            start.wait(timeout=WAIT)
            status, body = client.get("/v1/responses/resp_shared")
            assert (status, Response.model_validate(body).id) == (200, "resp_shared")

            ids: list[str] = []
            after = None
            while True:
                status, page = client.get(
                    _items_path("resp_shared", limit=2, order="asc", **({"after": after} if after else {}))
                )
                assert status == 200
                ids += [item["id"] for item in page["data"]]
                if not page["has_more"]:
                    break
                after = page["last_id"]
            assert ids == [f"msg_{i}" for i in range(9)]

            status, _, body = client.request("POST", f"/v1/responses/resp_job_{n}/cancel")
            assert (status, body["status"], body["id"]) == (200, "cancelled", f"resp_job_{n}")
            status, _, body = client.request("POST", "/v1/responses/resp_common_job/cancel")
            assert (status, body["status"]) == (200, "cancelled")

            once_status, _, body = client.request("DELETE", "/v1/responses/resp_delete_once")
            assert (once_status, body) in [
                (200, {"id": "resp_delete_once", "object": "response", "deleted": True}),
                (404, _error("no response with id 'resp_delete_once'")),
            ]
            status, _, body = client.request("DELETE", f"/v1/responses/resp_mine_{n}")
            assert (status, body["deleted"]) == (200, True)
            assert client.get(f"/v1/responses/resp_mine_{n}") == (404, _error(f"no response with id 'resp_mine_{n}'"))

            status, body = client.get("/v1/responses/resp_live")
            assert status == 200
            live = Response.model_validate(body)
            assert live.status in ("in_progress", "completed")
            with record_lock:
                delete_once.append(once_status)
                live_statuses.append(live.status)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            with record_lock:
                failures.append(exc)

    def generator() -> None:
        try:
            start.wait(timeout=WAIT)
            store.complete("resp_live", [{"role": "assistant", "content": "done"}])
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            with record_lock:
                failures.append(exc)

    threads = [threading.Thread(target=client_thread, args=(n,)) for n in range(threads_count)]
    threads.append(threading.Thread(target=generator))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=WAIT)
    assert not any(thread.is_alive() for thread in threads), "a client thread hung"
    assert not failures, failures

    assert sorted(delete_once) == [200] + [404] * (threads_count - 1)  # exactly one thread deleted it
    assert len(live_statuses) == threads_count
    common = store.get("resp_common_job")
    assert (common.status, common.version) == (ResponseStatus.CANCELLED, 2)  # cancelled once, then unchanged
    assert all(store.get(f"resp_job_{n}").status is ResponseStatus.CANCELLED for n in range(threads_count))
    assert "resp_delete_once" not in store
    assert not any(f"resp_mine_{n}" in store for n in range(threads_count))
    assert store.get("resp_live").status is ResponseStatus.COMPLETED
    assert sorted(r.id for r in store.list(limit=100)) == sorted(
        ["resp_shared", "resp_common_job", "resp_live", *(f"resp_job_{n}" for n in range(threads_count))]
    )
    assert store.stats().deleted == threads_count + 1


def test_openai_sdk_talks_to_the_example(serve: Serve) -> None:
    openai = pytest.importorskip("openai")
    store = _new_store()
    items = [{"role": "user", "content": f"q{n}", "id": f"msg_{n}"} for n in range(5)]
    store.create("gpt-4.1", items, id="resp_done", owner="tenant-a")
    store.complete("resp_done", [{"role": "assistant", "content": "all answered"}], owner="tenant-a")
    store.create("gpt-4.1", "essay", background=True, status="queued", id="resp_job", owner="tenant-a")
    store.create("gpt-4.1", "hello", id="resp_job", owner="tenant-b")  # the same id, another tenant
    client = serve(store, api_keys={"key-a": "tenant-a", "key-b": "tenant-b"})
    sdk = openai.OpenAI(base_url=f"http://127.0.0.1:{client.port}/v1", api_key="key-a", max_retries=0, timeout=WAIT)
    try:
        response = sdk.responses.retrieve("resp_done")
        assert (response.id, response.status, response.output_text) == ("resp_done", "completed", "all answered")
        items = list(sdk.responses.input_items.list("resp_done", limit=2, order="asc"))  # follows `after` cursors
        assert [item.id for item in items] == [f"msg_{n}" for n in range(5)]
        cancelled = sdk.responses.cancel("resp_job")
        assert (cancelled.id, cancelled.status, cancelled.background) == ("resp_job", "cancelled", True)
        assert store.get("resp_job", owner="tenant-b").status is ResponseStatus.IN_PROGRESS
        with pytest.raises(openai.BadRequestError) as bad:
            sdk.responses.cancel("resp_done")
        assert bad.value.status_code == 400
        assert sdk.responses.delete("resp_done") is None
        assert not store.contains("resp_done", owner="tenant-a")
        with pytest.raises(openai.NotFoundError) as missing:
            sdk.responses.retrieve("resp_done")
        assert missing.value.status_code == 404
        assert missing.value.body == _error("no response with id 'resp_done'")["error"]
    finally:
        sdk.close()
    wrong_key = openai.OpenAI(
        base_url=f"http://127.0.0.1:{client.port}/v1", api_key="nope", max_retries=0, timeout=WAIT
    )
    try:
        with pytest.raises(openai.AuthenticationError):
            wrong_key.responses.retrieve("resp_job")
    finally:
        wrong_key.close()


def _read_lines(stream: Any, count: int) -> list[str]:
    """Read ``count`` lines from ``stream`` in a helper thread: a silent process fails the test, not hangs it."""
    lines: list[str] = []

    def read() -> None:
        for _ in range(count):
            line = stream.readline()
            if not line:
                return
            lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=WAIT)
    assert not reader.is_alive(), f"the example printed only {lines}"
    return lines


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
def test_example_main_serves_until_interrupted() -> None:
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = _read_lines(process.stdout, 3)
        assert len(lines) == 3, lines
        served = re.fullmatch(r"Serving on http://127\.0\.0\.1:(\d+)", lines[0])
        done = re.fullmatch(r"completed response: (resp_[0-9a-f]{32})", lines[1])
        queued = re.fullmatch(r"queued background response: (resp_[0-9a-f]{32})", lines[2])
        assert served, lines
        assert done, lines
        assert queued, lines
        client = Client(int(served[1]))

        status, body = client.get(f"/v1/responses/{done[1]}")
        assert (status, Response.model_validate(body).status) == (200, "completed")
        status, body = client.get(_items_path(done[1], order="asc"))
        assert [item["content"][0]["text"] for item in body["data"]] == ["Hi!", "Who are you?"]
        status, _, body = client.request("POST", f"/v1/responses/{queued[1]}/cancel")
        assert (status, body["status"]) == (200, "cancelled")

        # SIGTERM, not SIGINT: a CI job started from a background shell ignores SIGINT in its children.
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=WAIT) == 0
        assert process.stderr is not None
        log = process.stderr.read()
        assert f'"GET /v1/responses/{done[1]} HTTP/1.1" 200' in log  # the default handler logs each request
        assert "Traceback" not in log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=WAIT)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


# ---------------------------------------------------------------------------------------------- the Sphinx build


def _public_modules() -> list[str]:
    """Every public module: a name without a ``_``-prefixed part, that declares ``__all__``."""
    names = ["responsestore"]
    names += (
        info.name
        for info in pkgutil.walk_packages(responsestore.__path__, "responsestore.")
        if not any(part.startswith("_") for part in info.name.split("."))
    )
    return sorted(name for name in names if hasattr(importlib.import_module(name), "__all__"))


def _inventory(path: Path) -> dict[str, set[str]]:
    """The objects of a Sphinx ``objects.inv`` (format 2): name -> its ``domain:role``s."""
    header, _, body = path.read_bytes().partition(b"zlib.\n")
    assert header.startswith(b"# Sphinx inventory version 2\n"), header[:60]
    objects: dict[str, set[str]] = {}
    for line in zlib.decompress(body).decode("utf-8").splitlines():
        entry = re.fullmatch(r"(.+?)\s+(\S+:\S+)\s+-?\d+\s+\S+\s+.*", line)
        assert entry is not None, line
        objects.setdefault(entry[1], set()).add(entry[2])
    return objects


def _resolve(name: str) -> object:
    """What a documented name (``responsestore.wsgi.make_app``, ``responsestore.RWLock.acquire``) names, or None."""
    parts = name.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            found = getattr(found, attribute, None)  # an attribute only instances have is documented too
        return found
    return None


@pytest.fixture(scope="module")
def built_docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The HTML docs, built once for this module with warnings as errors."""
    build_main = pytest.importorskip("sphinx.cmd.build").build_main
    pytest.importorskip("myst_parser")
    out = tmp_path_factory.mktemp("docs") / "html"
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        patch.setattr(sys, "path", list(sys.path))  # conf.py puts the checkout first on sys.path
        # Sphinx's napoleon and myst-parser use deprecated Sphinx APIs (PendingDeprecationWarning subclasses such as
        # RemovedInSphinx11Warning). Those are about the tools, not these docs; every Sphinx warning is still an error.
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        status = build_main(
            ["-W", "--keep-going", "-q", "-b", "html", "-d", str(out.parent / "doctrees"), str(DOCS), str(out)]
        )
    assert status == 0
    return out


def test_the_public_modules_are_the_expected_ones() -> None:
    assert set(_public_modules()) >= {
        "responsestore",
        "responsestore.aio",
        "responsestore.asgi",
        "responsestore.backend",
        "responsestore.errors",
        "responsestore.gunicorn",
        "responsestore.testing",
        "responsestore.testing.contract",
        "responsestore.testing.plugin",
        "responsestore.testing.strategies",
        "responsestore.wsgi",
    }


@pytest.mark.slow
def test_the_reference_documents_every_public_name(built_docs: Path) -> None:
    inventory = _inventory(built_docs / "objects.inv")
    documented = [
        _resolve(name)
        for name, roles in inventory.items()
        if name.split(".")[0] == "responsestore" and any(role.startswith("py:") for role in roles)
    ]
    missing = []
    for module_name in _public_modules():
        if "py:module" not in inventory.get(module_name, set()):
            missing.append(module_name)
        module = importlib.import_module(module_name)
        for name in module.__all__:
            if f"{module_name}.{name}" in inventory:
                continue
            value = getattr(module, name)
            # A class or function a module re-exports (responsestore.backend.BaseStore) is documented once, under
            # another of its names; a constant (an int is the same object as any equal int) needs its own entry.
            shared = not isinstance(value, (int, float, str, bytes, tuple, frozenset)) and value is not None
            if not (shared and any(value is entry for entry in documented)):
                missing.append(f"{module_name}.{name}")
    assert not missing, f"not in the docs' inventory: {missing}"


@pytest.mark.slow
def test_docs_build_without_warnings(built_docs: Path) -> None:
    out = built_docs
    pages = {
        page: (out / f"{page}.html").read_text(encoding="utf-8")
        for page in ("index", "quickstart", "wsgi", "concurrency", "lifecycle", "retention", "api", "changelog")
    }
    assert 'id="responsestore.BaseStore.create"' in pages["api"]
    assert 'id="responsestore.ResponseStore.lock"' in pages["api"]
    assert 'id="responsestore.aio.AsyncResponseStore.stream"' in pages["api"]
    assert 'id="responsestore.RWLock.acquire_write"' in pages["api"]
    assert 'id="responsestore.VersionConflict"' in pages["api"]
    assert "def make_app(" in re.sub(r"<[^>]+>", "", pages["wsgi"])  # the literalinclude worked
    assert "Unreleased" in pages["changelog"]
    assert "attr_dict[" not in pages["api"]
    pages["serving"] = (out / "serving.html").read_text(encoding="utf-8")
    # A re-exported constant shows the comment where it is defined, not the documentation of int or str.
    for page in ("api", "serving"):
        assert "int([x])" not in pages[page]
        assert "str(object=" not in pages[page]
    assert "The largest request body the app reads" in pages["serving"]
    assert 'id="responsestore.testing.plugin.response_store_factory"' in pages["api"]
