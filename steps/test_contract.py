"""contract.feature: bad requests are refused naming the field; accepted ones match the response schema."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pytest_bdd import parsers, scenarios, then, when

from steps.checks import Answer, horizon_of, needs_card, reach, schema_errors
from steps.scoring_client import ScoringClient

scenarios("contract.feature")

# The bad requests of contract.feature, in the words of its Examples, and the bytes each one sends.
BAD_BODIES: dict[str, bytes] = {
    "the horizon given as text": b'{"horizon": "3"}',
    "no horizon": b"{}",
    "an unknown extra field": b'{"horizon": 3, "region": "north"}',
    "the horizon given as true": b'{"horizon": true}',
    "a fractional horizon": b'{"horizon": 2.5}',
    "a zero horizon": b'{"horizon": 0}',
    "a negative horizon": b'{"horizon": -1}',
    "an empty body": b"",
    "a body that is not JSON": b"horizon=3",
    "a JSON list instead of an object": b"[3]",
    "legacy data that is not a list": b'{"data": 3}',
    "legacy data that is empty": b'{"data": []}',
    "a legacy horizon given as text": b'{"data": ["3"]}',
    "both a horizon and legacy data": b'{"horizon": 3, "data": [3]}',
}
# Rows whose horizon is one above the model card's max_horizon, in the current and the original form.
BEYOND_MAXIMUM = {
    "a horizon beyond the model's maximum": "horizon",
    "a legacy horizon beyond the model's maximum": "data",
}
GOOD_FORMS = {"request for ": "horizon", "original-form request for ": "data"}


def bad_body(problem: str, request: pytest.FixtureRequest) -> bytes:
    """The bytes a bad-request row sends; the over-maximum one is computed from the model card."""
    if problem in BEYOND_MAXIMUM:
        periods = request.getfixturevalue("card").max_horizon + 1
        body = {"horizon": periods} if BEYOND_MAXIMUM[problem] == "horizon" else {"data": [periods]}
        return json.dumps(body).encode()
    assert problem in BAD_BODIES, (
        f"contract.feature names the problem {problem!r}, which steps/test_contract.py does not know; "
        f"use one of {[*BAD_BODIES, *BEYOND_MAXIMUM]} or add it to BAD_BODIES"
    )
    return BAD_BODIES[problem]


def good_body(kind: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The JSON a well-formed request row sends: {"horizon": N} or the original {"data": [N]}."""
    for prefix, form in GOOD_FORMS.items():
        if kind.startswith(prefix):
            phrase = kind.removeprefix(prefix)
            periods = horizon_of(phrase, request.getfixturevalue("card") if needs_card(phrase) else None)
            return {"horizon": periods} if form == "horizon" else {"data": [periods]}
    raise AssertionError(f"contract.feature names the request {kind!r}; start it with one of {list(GOOD_FORMS)}")


@when(parsers.parse("a caller sends a request with {problem}"), target_fixture="answer")
def _(problem: str, scoring_client: ScoringClient, request: pytest.FixtureRequest) -> Answer:
    """POST the exact bytes of the bad request the row names, as application/json."""
    raw = bad_body(problem, request)
    return Answer(sent=f"the body {raw!r} ({problem})", reply=reach(lambda: scoring_client.post(raw=raw)))


@when(parsers.parse("a caller sends a well-formed {kind}"), target_fixture="answer")
def _(kind: str, scoring_client: ScoringClient, request: pytest.FixtureRequest) -> Answer:
    """POST the well-formed request the row names, in the current or the original form."""
    body = good_body(kind, request)
    return Answer(sent=f"the request {body}", reply=reach(lambda: scoring_client.post(body)))


@then(parsers.parse('the refusal names the field "{field}"'))
def _(field: str, answer: Answer) -> None:
    """error.field is the row's field (docs/contracts.md fixes which one)."""
    error = (answer.reply.json or {}).get("error") or {}
    assert error.get("field") == field, (
        f"{answer.sent} was refused naming the field {error.get('field')!r} ({error.get('message')!r}); "
        f"expected {field!r}. docs/contracts.md fixes which field each problem names"
    )


@then("the service is still healthy and forecasting")
def _(scoring_client: ScoringClient, answer: Answer) -> None:
    """The health route answers 200 and a one-period forecast still succeeds."""
    health = reach(scoring_client.health)
    assert health.status == 200, (
        f"after {answer.sent} the health route answers {health.description}; the bad request broke the service"
    )
    follow_up = reach(lambda: scoring_client.post({"horizon": 1}))
    assert follow_up.status == 200 and len((follow_up.json or {}).get("result") or []) == 1, (
        f"after {answer.sent} a one-period forecast is answered {follow_up.description}; "
        "a bad request must not leave the scoring worker broken"
    )


@then("the answer validates against the contract response schema")
def _(answer: Answer, contract_schemas: dict[str, dict[str, Any]]) -> None:
    """The 200 body validates against service/schemas/response.schema.json (Draft 2020-12)."""
    problems = schema_errors(contract_schemas["response"], answer.reply.json)
    assert not problems, (
        f"{answer.sent} was answered with a body that breaks service/schemas/response.schema.json: "
        + "; ".join(problems)
        + "; fix service/score.py or the schema so they agree"
    )
