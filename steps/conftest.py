"""Steps and fixtures every feature shares: the deployed service, its client, and how an answer is judged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_bdd import given, then

from deploy.base import Deployment
from steps.checks import CONTRACT_DIR, Answer, ModelCard, advice, schema_errors
from steps.scoring_client import ScoringClient


@pytest.fixture(scope="session")
def scoring_client(deployment: Deployment) -> Iterator[ScoringClient]:
    """One client for the session, sending the deployment's key when auth is on."""
    with ScoringClient(deployment) as client:
        yield client


@pytest.fixture(scope="session")
def contract_schemas() -> dict[str, dict[str, Any]]:
    """The request, response and error JSON Schemas of service/schemas (the contract callers rely on)."""
    schemas = {}
    for kind in ("request", "response", "error"):
        path = CONTRACT_DIR / f"{kind}.schema.json"
        try:
            schemas[kind] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            message = f"{path} is not a readable JSON Schema ({exc}); restore it from the service folder"
            raise pytest.fail.Exception(message, pytrace=False) from None
    return schemas


@pytest.fixture
def card(request: pytest.FixtureRequest) -> ModelCard:
    """The model card, loaded only by scenarios that use it (so the others run without one)."""
    return ModelCard(request.getfixturevalue("model_card"))


@given("the forecasting service is deployed")
def _(deployment: Deployment, scoring_client: ScoringClient) -> None:
    """The session's deployment exists (started, attached or loaded) and a client points at it."""
    assert deployment.scoring_uri, "the deployment records no scoring URI; redeploy with `python -m deploy up`"


@given("the model card of the deployed model")
def _(card: ModelCard) -> None:
    """model.json is at hand and holds what the forecast checks need."""
    card.check_complete()


@then("the service accepts it")
def _(answer: Answer) -> None:
    """200 with a JSON object."""
    reply = answer.reply
    assert reply.status == 200, (
        f"{answer.sent} was answered {reply.description}; expected HTTP 200 with a forecast; {advice(reply)}"
    )
    assert isinstance(reply.json, dict), (
        f"{answer.sent} was answered HTTP 200 but the body is not a JSON object: {reply.summary}"
    )


@then("the service refuses it as a client error")
def _(answer: Answer, contract_schemas: dict[str, dict[str, Any]]) -> None:
    """4xx, served as application/json, with a body in the contract's error shape."""
    reply = answer.reply
    if reply.status < 300:
        hint = "a success for bad input hides the caller's mistake: reject it with 400 in service/score.py"
    elif reply.status >= 500:
        hint = f"bad input must never answer 5xx; {advice(reply)}"
    else:
        hint = advice(reply)
    assert 400 <= reply.status < 500 and reply.status not in (401, 403), (
        f"{answer.sent} was answered {reply.description}; expected a 4xx client error naming the field; {hint}"
    )
    assert reply.content_type == "application/json" and reply.is_json, (
        f"{answer.sent} was refused with Content-Type {reply.content_type or 'none'!r} and body {reply.summary!r}; "
        'expected application/json with {"error": {"field", "message"}}'
    )
    problems = schema_errors(contract_schemas["error"], reply.json)
    assert not problems, (
        f"{answer.sent} was refused with {reply.summary} which breaks service/schemas/error.schema.json: "
        + "; ".join(problems)
    )
