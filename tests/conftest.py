"""Hypothesis profiles, and backend-parametrized store fixtures for the tests outside the conformance suite.

The conformance suite (``tests/test_contract.py``) brings its own fixtures with ``StoreContract``; the ones here
serve the other tests that run on every backend (records, JSON, hostile input).
"""

from __future__ import annotations

import gc
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

import responsestore
from responsestore import BaseStore
from responsestore.testing import FakeClock

from .backends import BACKENDS, open_backend
from .live_app import TRANSPORTS, Live, make_app_for

# The toolkit's pytest plugin (users get it from its pytest11 entry point, which pyproject's addopts turns off here:
# entry points load before pytest-cov starts, so the package's own import would go unmeasured).
pytest_plugins = ["responsestore.testing.plugin"]

# "ci": four times dev's examples at first; 120 since the conformance suite runs on five backends (memory, SQLite,
# Redis, PostgreSQL, the docs' tutorial), to keep the CI run within its 30 minutes.
settings.register_profile(
    "ci",
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", max_examples=50, deadline=None)
# The other interpreters' runs in .ci/run: they check that the code runs there; the thorough property runs happen
# once, on the main interpreter, with "ci".
settings.register_profile("compat", max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

StoreFactory = Callable[..., BaseStore]


@pytest.fixture(params=TRANSPORTS)
def serve_on_both(request: pytest.FixtureRequest) -> Iterator[Callable[..., Live]]:
    """Start apps on a real server, once for each transport: ``start(store=None, **make_app_options)``.

    The WSGI app on a threaded server, the ASGI app on uvicorn; each with a memory store unless given one, stopped
    (and closed) at the end of the test. A test file's ``serve`` fixture is this one, with its own defaults.
    """
    make = make_app_for(request.param)
    started: list[Live] = []

    def start(store: BaseStore | None = None, **kwargs: Any) -> Live:
        live = Live(make(store if store is not None else responsestore.open("memory://"), **kwargs))
        started.append(live)
        return live

    yield start
    for live in started:
        live.stop()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The name of the backend under test."""
    name: str = request.param
    return name


@pytest.fixture
def make_store(backend: str, tmp_path: Any) -> Iterator[StoreFactory]:
    """A factory of fresh, empty stores of the backend under test; keyword arguments go to the constructor."""
    opened: list[BaseStore] = []

    def factory(**kwargs: Any) -> BaseStore:
        store = open_backend(backend, tmp_path / f"store{len(opened)}", **kwargs)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store._check()
        close = getattr(store, "close", None)
        if close is not None:
            close()


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock starting at a fixed time."""
    return FakeClock()


@pytest.fixture
def store(make_store: StoreFactory, clock: FakeClock) -> BaseStore:
    """A fresh store of the backend under test, on the fake ``clock``."""
    return make_store(clock=clock)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Collect what the session left behind, ignoring sockets found unclosed only now.

    KNOWN LEAK, NOT FIXED: some Redis test leaves one socket to a test server for the garbage collector (seen
    at the end of 2 of 3 full CI runs, once on CPython 3.10 and once on 3.13, never during a test). pytest would
    turn its ResourceWarning at session end into a failed run; until the leak is found, this last collection
    ignores it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        for _ in range(3):
            gc.collect()


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Switch threads every microsecond, as often as the interpreter can, so the narrow races of a test happen."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)
