"""``serve``'s secrets (API keys, a store URL's password) from a file or the environment, not the process list."""

from __future__ import annotations

import sys
from pathlib import Path

import openai
import pytest

import responsestore
from responsestore.__main__ import main
from tests.test_wsgi_serve import Child, children

__all__ = ["children"]  # the fixture, shared with test_wsgi_serve

# Made-up keys, looked for where they must not be.
KEY_A = "sk-file-key-aaaa"
KEY_B = "sk-env-key-bbbb"
KEY_C = "sk-env-key-cccc"


def _command_line(child: Child) -> str:
    return Path(f"/proc/{child.process.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_keys_from_a_file_and_the_environment_stay_out_of_the_process_list(
    children: list[Child], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"# who may call the API\n\n{KEY_A}=alice\n  other-key = carol  \n", encoding="utf-8")
    monkeypatch.setenv("RESPONSESTORE_API_KEYS", f"{KEY_B}=bob, {KEY_C}=bob")  # the child inherits it
    child = Child("--api-keys-file", str(keys))
    children.append(child)
    alice = child.client(KEY_A)
    created = alice.responses.create(model="echo", input="from a file key")
    assert alice.responses.retrieve(created.id).output_text == "from a file key"
    for bob in (KEY_B, KEY_C):
        with pytest.raises(openai.NotFoundError):  # another owner's response
            child.client(bob).responses.retrieve(created.id)
    assert child.client("other-key").responses.create(model="echo", input="x").status == "completed"
    with pytest.raises(openai.AuthenticationError):
        child.client("sk-unknown").responses.retrieve(created.id)
    if sys.platform == "linux":
        command_line = _command_line(child)
        assert "--api-keys-file" in command_line
        for key in (KEY_A, KEY_B, KEY_C):
            assert key not in command_line
    stderr = child.stop()
    for key in (KEY_A, KEY_B, KEY_C):
        assert key not in stderr


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        (f"{KEY_A}\n", None, "line 1: not KEY=OWNER"),
        (f"{KEY_A}=\n", None, "line 1: not KEY=OWNER"),
        (f"# a\n{KEY_A}=alice\n{KEY_A}=bob\n", None, "line 3: the key is given twice"),
        ("# only comments\n\n", None, "holds no KEY=OWNER line"),
        (f"{KEY_A}=alice\n", f"{KEY_A}=bob", "RESPONSESTORE_API_KEYS entry 1: the key is given twice"),
        (f"{KEY_A}=alice\n", f"{KEY_B}=bob,{KEY_C}", "RESPONSESTORE_API_KEYS entry 2: not KEY=OWNER"),
    ],
)
def test_bad_keys_are_refused_without_showing_them(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *,
    text: str,
    env: str | None,
    message: str,
) -> None:
    keys = tmp_path / "keys"
    keys.write_text(text, encoding="utf-8")
    if env is None:
        monkeypatch.delenv("RESPONSESTORE_API_KEYS", raising=False)
    else:
        monkeypatch.setenv("RESPONSESTORE_API_KEYS", env)
    with pytest.raises(SystemExit) as exit:
        main(["serve", "--port", "0", "--api-keys-file", str(keys)])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    for key in (KEY_A, KEY_B, KEY_C):
        assert key not in err


def test_a_missing_keys_file_and_bad_api_key_arguments_are_refused_without_showing_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for args, message in (
        (["--api-keys-file", str(tmp_path / "missing")], "cannot be read: FileNotFoundError"),
        (["--api-key", KEY_A], "--api-key (number 1): not KEY=OWNER"),
        (["--api-key", f"{KEY_A}=a", "--api-key", f"{KEY_A}=b"], "--api-key (number 2): the key is given twice"),
    ):
        with pytest.raises(SystemExit) as exit:
            main(["serve", "--port", "0", *args])
        assert exit.value.code == 2
        err = capsys.readouterr().err
        assert message in err
        assert KEY_A not in err


def test_an_empty_environment_variable_adds_no_key(children: list[Child], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESPONSESTORE_API_KEYS", " ")
    child = Child()
    children.append(child)
    assert child.client("anything").responses.create(model="echo", input="open").status == "completed"
    child.stop()


def test_the_store_url_may_come_from_the_environment(
    children: list[Child], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'from-env.db'}"
    monkeypatch.setenv("RESPONSESTORE_URL", url)
    child = Child()
    children.append(child)
    created = child.client().responses.create(model="echo", input="stored where the environment says")
    if sys.platform == "linux":
        assert "from-env.db" not in _command_line(child)
    child.stop()
    with responsestore.open(url) as store:
        assert store.get(created.id).status.value == "completed"
