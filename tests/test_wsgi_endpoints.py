"""The models routes, driven by the official ``openai`` client over real HTTP; every body is validated by
``tests/wire_checks.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

import responsestore
from responsestore.wsgi import echo, make_app
from tests.live_app import Live, error_of
from tests.models import shout
from tests.wire_checks import (
    check_model,
    check_model_list,
    check_response,
)


@pytest.fixture
def serve() -> Iterator[Any]:
    started: list[Live] = []

    def start(store: responsestore.BaseStore | None = None, **kwargs: Any) -> Live:
        live = Live(make_app(store if store is not None else responsestore.open("memory://"), **kwargs))
        started.append(live)
        return live

    yield start
    for live in started:
        live.stop()


# --------------------------------------------------------------------------------------------- models


def test_every_model_name_is_served_and_none_listed_without_models(serve: Any) -> None:
    live: Live = serve()
    client = live.client()
    assert client.models.list().data == []
    check_model_list(live.json("GET", "/models"))
    model = client.models.retrieve("anything-at-all")
    assert (model.id, model.object, model.owned_by) == ("anything-at-all", "model", "responsestore")
    check_model(live.json("GET", "/models/org/model-with-a-slash"))
    assert client.responses.create(model="anything-at-all", input="hi").output_text == "hi"


def test_named_models_are_listed_served_by_their_generate_and_others_are_404(serve: Any) -> None:
    store = responsestore.open("memory://")
    live: Live = serve(store, models={"alpha": echo, "beta": shout, "org/gamma": echo})
    client = live.client()
    assert [model.id for model in client.models.list()] == ["alpha", "beta", "org/gamma"]
    listed = check_model_list(live.json("GET", "/models"))
    assert len({model.created for model in listed}) == 1
    assert client.models.retrieve("beta").id == "beta"
    check_model(live.json("GET", "/models/org/gamma"))
    assert client.responses.create(model="alpha", input="quiet words").output_text == "quiet words"
    assert client.responses.create(model="beta", input="loud words").output_text == "LOUD WORDS"

    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("delta")
    assert missing.value.code == "model_not_found"
    before = store.stats().records
    with pytest.raises(openai.NotFoundError) as unknown:
        client.responses.create(model="delta", input="x")
    assert (unknown.value.code, unknown.value.param) == ("model_not_found", "model")
    error = error_of(live.request("POST", "/responses", json={"model": "delta", "input": "x", "stream": True}), 404)
    assert (error["type"], error["param"]) == ("invalid_request_error", "model")
    assert store.stats().records == before

    default = check_response(live.json("POST", "/responses", json={"input": "no model named"}))
    assert default.model == "alpha"
    assert check_response(live.json("POST", "/responses", json={"input": "x", "model": None})).model == "alpha"


def test_make_app_refuses_bad_models() -> None:
    store = responsestore.open("memory://")
    for kwargs in (
        {"models": {}},
        {"models": {"": echo}},
        {"models": {"a": 3}},
        {"models": ["a"]},
        {"models": {"a": echo}, "generate": echo},
    ):
        with pytest.raises(responsestore.InvalidArgument):
            make_app(store, **kwargs)
