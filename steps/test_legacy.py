"""legacy.feature: callers of the first release still read their forecasts under `result`."""

from __future__ import annotations

from pytest_bdd import parsers, scenarios, then, when

from steps.checks import Answer, finite_non_negative, reach
from steps.scoring_client import ScoringClient

scenarios("legacy.feature")


@when(parsers.parse("an original caller asks for {periods:d} periods the original way"), target_fixture="answer")
def _(periods: int, scoring_client: ScoringClient) -> Answer:
    """POST the original form {"data": [N]}."""
    body = {"data": [periods]}
    return Answer(sent=f"the original request {body}", reply=reach(lambda: scoring_client.post(body)), horizon=periods)


@then(parsers.parse('the answer lists {periods:d} point forecasts under "result"'))
def _(periods: int, answer: Answer) -> None:
    """result is a list of N finite, non-negative numbers."""
    result = (answer.reply.json or {}).get("result")
    assert isinstance(result, list) and len(result) == periods, (
        f"{answer.sent} was answered with result={result!r:.200}; expected a list of {periods} numbers. "
        "Original callers read `result`: keep it in the response"
    )
    assert all(finite_non_negative(value) for value in result), (
        f"{answer.sent}: result {result} holds values that are not finite non-negative numbers"
    )


@then("they are the forecasts the detailed answer gives period by period")
def _(answer: Answer) -> None:
    """result equals forecasts[].value of the same answer."""
    body = answer.reply.json or {}
    values = [entry.get("value") for entry in body.get("forecasts") or [] if isinstance(entry, dict)]
    assert values == body.get("result"), (
        f"{answer.sent}: result {body.get('result')} and forecasts[].value {values} disagree; "
        "both must come from the same forecast"
    )
