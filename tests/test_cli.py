"""The command line: ``python -m responsestore demo``."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import responsestore
import responsestore.__main__ as cli
from responsestore import InvalidArgument, ResponseStore


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "responsestore", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )


def test_demo_as_a_subprocess(tmp_path: Path) -> None:
    result = run(["demo"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[-1].startswith("summary:")
    assert lines[-1].endswith("all checks passed")
    assert "21 responses from 4 worker threads, 4 conversations of 5 turns" in lines[-1]
    assert "21 listed" in lines[-1]
    assert sum(" completed, saw " in line for line in lines) == 20


def test_demo_with_workers_and_turns(tmp_path: Path) -> None:
    result = run(["demo", "--workers", "2", "--turns", "3"], tmp_path)
    assert result.returncode == 0, result.stderr
    summary = result.stdout.splitlines()[-1]
    assert summary == (
        "summary: 7 responses from 2 worker threads, 2 conversations of 3 turns, "
        "1 background response cancelled, 7 listed; all checks passed"
    )


@pytest.mark.parametrize("args", [["demo", "--workers", "0"], ["frobnicate"]])
def test_bad_arguments_exit_2_as_a_subprocess(tmp_path: Path, args: list[str]) -> None:
    result = run(args, tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "usage: python -m responsestore" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["demo", "--workers", "0"],
        ["demo", "--turns", "0"],
        ["demo", "--workers", "-3"],
        ["demo", "--workers", "two"],
        ["demo", "--turns", "1.5"],
        ["demo", "--bogus"],
    ],
)
def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(args)
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "usage: python -m responsestore" in captured.err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"responsestore {responsestore.__version__}"


def test_demo_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo", "--workers", "1", "--turns", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == (
        "summary: 3 responses from 1 worker threads, 1 conversations of 2 turns, "
        "1 background response cancelled, 3 listed; all checks passed"
    )
    assert lines[0].startswith("[client] queued background response resp_")
    assert any(line.startswith("[client] cancelled resp_") for line in lines)
    assert any(line.endswith(": InvalidTransition") and line.startswith("[generator]") for line in lines)
    turns = [line for line in lines if line.startswith("[worker-0] conversation-0 turn")]
    assert [line.split(":")[0] for line in turns] == [
        "[worker-0] conversation-0 turn 0",
        "[worker-0] conversation-0 turn 1",
    ]
    assert turns[0].endswith("saw 1 items")
    assert turns[1].endswith("saw 3 items")
    assert "['conversation-0: question 1']" in lines[-2]


def test_demo_pages_through_more_than_one_listing(capsys: pytest.CaptureFixture[str]) -> None:
    # 3 workers x 3 turns + 1 background = 10 responses: the demo's listing (7 a page) needs two pages.
    assert cli.main(["demo", "--workers", "3", "--turns", "3"]) == 0
    summary = capsys.readouterr().out.splitlines()[-1]
    assert summary == (
        "summary: 10 responses from 3 worker threads, 3 conversations of 3 turns, "
        "1 background response cancelled, 10 listed; all checks passed"
    )


# runpy warns that this module, imported above for the other tests, is being executed a second time.
@pytest.mark.filterwarnings("ignore:'responsestore.__main__' found in sys.modules:RuntimeWarning")
def test_running_the_package_as_a_script(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["python -m responsestore", "demo", "--workers", "1", "--turns", "1"])
    # pytest rewrites the asserts of every module of a distribution that ships a pytest plugin (responsestore ships
    # responsestore.testing.plugin), and its import hook cannot hand runpy a module's code: find it without the hook.
    monkeypatch.delitem(sys.modules, "responsestore.__main__", raising=False)
    monkeypatch.setattr(
        sys, "meta_path", [hook for hook in sys.meta_path if type(hook).__name__ != "AssertionRewritingHook"]
    )
    with pytest.raises(SystemExit) as info:
        runpy.run_module("responsestore", run_name="__main__", alter_sys=False)
    assert info.value.code == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("all checks passed")


def _store_failing_on(conversation: str, question: str) -> type[ResponseStore]:
    class FailingStore(ResponseStore):
        def complete(self, id: str, *args: Any, **kwargs: Any) -> Any:
            record = self.get(id)
            texts = [item["content"][0]["text"] for item in record.input]
            if record.metadata.get("conversation") == conversation and texts == [f"{conversation}: {question}"]:
                raise InvalidArgument("injected failure")
            return super().complete(id, *args, **kwargs)

    return FailingStore


def test_demo_reports_worker_errors_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "ResponseStore", _store_failing_on("conversation-1", "question 1"))
    assert cli.main(["demo", "--workers", "2", "--turns", "2"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert "[error] InvalidArgument: injected failure" in lines
    assert lines[-1].startswith("summary: ")
    assert "FAILED: no worker errors" in lines[-1]
    assert "chains are complete" in lines[-1]
    assert "all checks passed" not in lines[-1]


def test_demo_reports_a_failure_of_the_first_conversations_first_turn(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The demo promises to report every failure in its summary; when conversation-0 never completes a turn it
    # must still print the summary and exit 1 rather than crash.
    monkeypatch.setattr(cli, "ResponseStore", _store_failing_on("conversation-0", "question 0"))
    assert cli.main(["demo", "--workers", "2", "--turns", "1"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert "[error] InvalidArgument: injected failure" in lines
    assert lines[-1].startswith("summary: ")
    assert "FAILED: no worker errors" in lines[-1]


# ----------------------------------------------------------------------------------------- serve: help and extras


def _serve_help(capsys: pytest.CaptureFixture[str]) -> str:
    """``serve --help``'s text without its whitespace: argparse wraps the help text anywhere, even within a URL."""
    with pytest.raises(SystemExit) as info:
        cli.main(["serve", "--help"])
    assert info.value.code == 0
    return "".join(capsys.readouterr().out.split())


def test_serve_help_lists_every_store_url_scheme(capsys: pytest.CaptureFixture[str]) -> None:
    text = _serve_help(capsys)
    schemes = responsestore.backend_schemes()
    assert {"memory", "sqlite", "redis", "rediss", "postgresql", "postgresql+psycopg", "postgres"} <= set(schemes)
    for scheme in schemes:
        assert f"{scheme}://" in text, scheme
    for shown in (
        "memory://(thisprocessonly;thedefault)",
        "(needstheredisextra)",
        "postgresql://USER:PASSWORD@HOST:PORT/DB",
        "schema=NAME",
        "(needsthepostgresextra)",
        "responsestore.backends",
        "memory://",
        "sqlite:///PATH",
        "sqlite:////abs/path",
        "max_bytes=N",
        "max_records=N",
        "ttl=SECONDS",
        "synchronous=FULL|NORMAL",
        "busy_timeout=SECONDS",
        "redis://[[USER]:PASSWORD@]HOST:PORT/DB",
        "rediss://",
        "prefix=NAME",
        "RESPONSESTORE_URL",
        "--api-keys-file",
        "RESPONSESTORE_API_KEYS",
        "--stop-grace",
        "--max-streams",
        "--connection-limit",
        "--channel-timeout",
    ):
        assert shown in text, shown


def test_serve_help_follows_the_scheme_registry(capsys: pytest.CaptureFixture[str]) -> None:
    # A registered scheme shows with its class; a built-in scheme given another class loses its built-in text.
    # (Registering imports nothing: the class is imported when a URL of the scheme is opened.)
    responsestore.register_backend("cli-help-test", "cli_help_test:HelpStore")
    responsestore.register_backend("rediss", "cli_help_test:HelpStore")
    try:
        text = _serve_help(capsys)
    finally:
        responsestore._registry._registered.pop("cli-help-test")
        responsestore._registry._registered.pop("rediss")
    ours = "(thebackendcli_help_test:HelpStore)"
    # The schemes of one backend are shown together: the built-in ones first, in their usual order.
    assert f"rediss://...{ours}orcli-help-test://...{ours};" in text
    assert "(RedisoverTLS)" not in text
    assert "redis://[[USER]:PASSWORD@]HOST:PORT/DB" in text
    assert "cli-help-test" not in _serve_help(capsys)
    assert "rediss://(RedisoverTLS)" in _serve_help(capsys)


def _without(module: str, code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter where ``module`` cannot be imported (an extra not installed)."""
    return subprocess.run(
        [sys.executable, "-c", f"import sys; sys.modules[{module!r}] = None\n{code}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )


def test_serve_without_waitress_names_the_install_command(tmp_path: Path) -> None:
    code = "from responsestore.__main__ import main; sys.exit(main(['serve', '--port', '0']))"
    result = _without("waitress", code, tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "needs waitress: pip install 'responsestore[server]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_redis_urls_without_redis_py_name_the_install_command(tmp_path: Path) -> None:
    code = """
import responsestore
try:
    responsestore.open("redis://localhost:6379/0")
except responsestore.InvalidArgument as exc:
    print("open:", exc)
try:
    from responsestore import RedisStore
except ImportError as exc:
    print("import:", exc)
"""
    result = _without("redis", code, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("open: the backend of redis:// ")
    assert lines[1].startswith("import: RedisStore needs redis-py")
    for line in lines:
        assert line.endswith("pip install 'responsestore[redis]'")
    # serve says so too, without the store URL's password.
    serve = "from responsestore.__main__ import main; sys.exit(main(['serve', '--store', 'redis://:s3cret@h:6379/0']))"
    result = _without("redis", serve, tmp_path)
    assert result.returncode == 2
    assert "cannot open the store 'redis://:***@h:6379/0'" in result.stderr
    assert "pip install 'responsestore[redis]'" in result.stderr
    assert "s3cret" not in result.stderr
