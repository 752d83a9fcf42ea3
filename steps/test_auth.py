"""auth.feature: with key auth on, a call without the right key is refused and reveals nothing."""

from __future__ import annotations

import pytest
from pytest_bdd import given, scenarios, then, when

from deploy.base import Deployment
from steps.checks import Answer, reach
from steps.scoring_client import ScoringClient

scenarios("auth.feature")

# Never a real key: a fixed wrong one shows the service checks the value, not only the header's presence.
WRONG_KEY = "wrong-key-for-the-release-gate"
UNAUTHENTICATED = 401


@given("the forecasting service is deployed with key authentication on")
def _(deployment: Deployment) -> None:
    """Skip unless the deployment has key auth on: a local server has none."""
    if not deployment.auth:
        pytest.skip(
            f"the {deployment.target} deployment {deployment.name!r} has key auth off; auth scenarios run against "
            "an Azure deployment with auth on (deployment.json auth=true) or --scoring-uri with --key-env"
        )


@when("a caller asks for a forecast without the scoring key", target_fixture="answer")
def _(scoring_client: ScoringClient) -> Answer:
    """POST a one-period request with no Authorization header."""
    return Answer(sent="a call without a key", reply=reach(lambda: scoring_client.post({"horizon": 1}, key=None)))


@when("a caller asks for a forecast with a wrong scoring key", target_fixture="answer")
def _(scoring_client: ScoringClient) -> Answer:
    """POST a one-period request with a fixed key that is not the service's."""
    return Answer(
        sent="a call with a wrong key", reply=reach(lambda: scoring_client.post({"horizon": 1}, key=WRONG_KEY))
    )


@then("the service refuses it as unauthenticated")
def _(answer: Answer) -> None:
    """Exactly 401: the front end refused the caller, the model never ran."""
    assert answer.reply.status == UNAUTHENTICATED, (
        f"{answer.sent} was answered {answer.reply.description}; expected HTTP 401. "
        "Turn key auth on for the service (ACI/AKS auth_enabled) before promoting"
    )


@then("the refusal carries no forecast")
def _(answer: Answer) -> None:
    """A refusal body never holds `result`."""
    body = answer.reply.json
    assert not (isinstance(body, dict) and "result" in body), (
        f"{answer.sent} was refused but its body still carries forecasts: {answer.reply.summary}"
    )
