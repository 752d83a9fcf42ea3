"""forecasts.feature: the served forecasts are the released model's, period by period."""

from __future__ import annotations

from typing import Any

from pytest_bdd import parsers, scenarios, then, when

from steps.checks import Answer, ModelCard, advice, close_to, finite_non_negative, horizon_of, reach
from steps.scoring_client import ScoringClient

scenarios("forecasts.feature")

# Shown per failing period in a message: enough to see a pattern, short enough to read.
SHOWN_PERIODS = 3


def forecast_body(answer: Answer) -> dict[str, Any]:
    """The 200 JSON body of a forecast, or a failure saying what came back instead."""
    reply = answer.reply
    assert reply.status == 200 and isinstance(reply.json, dict), (
        f"{answer.sent} was answered {reply.description}; expected HTTP 200 with a forecast; {advice(reply)}"
    )
    return reply.json


def forecast_entries(answer: Answer) -> list[dict[str, Any]]:
    """The per-period `forecasts` entries, each checked to be a JSON object."""
    entries = forecast_body(answer).get("forecasts")
    assert isinstance(entries, list) and all(isinstance(entry, dict) for entry in entries), (
        f"{answer.sent}: 'forecasts' is {entries!r:.120}; expected a list of {{period, value, lower, upper}} objects"
    )
    return entries


@when(parsers.parse("a planner asks for a forecast of {horizon}"), target_fixture="answer")
def _(horizon: str, scoring_client: ScoringClient, card: ModelCard) -> Answer:
    """POST {"horizon": N} for the horizon the phrase names (from the model card)."""
    periods = horizon_of(horizon, card)
    body = {"horizon": periods}
    return Answer(sent=f"the request {body}", reply=reach(lambda: scoring_client.post(body)), horizon=periods)


@then(parsers.parse("the forecast covers exactly {horizon}"))
def _(horizon: str, answer: Answer, card: ModelCard) -> None:
    """result, forecasts and horizon all hold exactly N."""
    expected = horizon_of(horizon, card)
    body = forecast_body(answer)
    lengths = {
        "result": len(body.get("result") or []),
        "forecasts": len(body.get("forecasts") or []),
        "horizon": body.get("horizon"),
    }
    assert lengths == dict.fromkeys(lengths, expected), (
        f"{answer.sent} was answered with {lengths}; expected {expected} everywhere ({horizon}). "
        "The response must hold exactly one forecast per requested period"
    )


@then("its periods follow the training data without a gap")
def _(answer: Answer, card: ModelCard) -> None:
    """Periods are last_period + 1..N × frequency, as ISO dates."""
    received = [entry.get("period") for entry in forecast_entries(answer)]
    expected = card.periods_after_training(len(received))
    wrong = [(i, got, want) for i, (got, want) in enumerate(zip(received, expected, strict=True)) if got != want]
    assert not wrong, (
        f"{answer.sent}: periods (index, received, expected) {wrong[:SHOWN_PERIODS]} do not follow the training "
        f"data (last period {card.raw['last_period']}, frequency {card.raw['frequency']}); "
        "forecast from the model's own index, not from today's date"
    )


@then("its values equal the model's reference forecasts")
def _(answer: Answer, card: ModelCard) -> None:
    """Same model version, and result equals the reference forecasts (clipped at zero)."""
    body = forecast_body(answer)
    served = (body.get("model") or {}).get("version")
    assert served == card.raw["version"], (
        f"the service answers with model version {served!r} but the model card is version {card.raw['version']!r}; "
        "redeploy the model that was built, or pass --model-dir with the deployed one"
    )
    result = body.get("result") or []
    values = [entry.get("value") for entry in forecast_entries(answer)]
    assert values == result, f"{answer.sent}: forecasts[].value {values[:SHOWN_PERIODS]}... differs from result"
    reference = card.reference(len(result))
    off = [
        (i, got, want) for i, (got, want) in enumerate(zip(result, reference, strict=True)) if not close_to(got, want)
    ]
    assert not off, (
        f"{answer.sent}: forecasts (index, served, reference) {off[:SHOWN_PERIODS]} differ from model.json's "
        "reference forecasts beyond a relative 1e-6; the service does not forecast with the built model "
        "(stale model.pkl, different library versions, or refitting at start)"
    )


@then("no value predicts negative demand")
def _(answer: Answer) -> None:
    """Every point and bound is a finite number of at least zero."""
    body = forecast_body(answer)
    numbers = [("result", i, value) for i, value in enumerate(body.get("result") or [])]
    for i, entry in enumerate(forecast_entries(answer)):
        numbers += [(f"forecasts[].{key}", i, entry.get(key)) for key in ("value", "lower", "upper")]
    bad = [(where, i, value) for where, i, value in numbers if not finite_non_negative(value)]
    assert not bad, (
        f"{answer.sent}: (field, index, value) {bad[:SHOWN_PERIODS]} are not finite non-negative numbers; "
        "demand cannot be negative: clip point forecasts and bounds at zero"
    )


@then("every prediction interval contains its forecast")
def _(answer: Answer, card: ModelCard) -> None:
    """lower <= value <= upper per period, at the model card's interval level."""
    entries = forecast_entries(answer)
    outside = [
        (entry.get("period"), entry.get("lower"), entry.get("value"), entry.get("upper"))
        for entry in entries
        if not all(finite_non_negative(entry.get(key)) for key in ("lower", "value", "upper"))
        or not entry["lower"] <= entry["value"] <= entry["upper"]
    ]
    assert not outside, (
        f"{answer.sent}: (period, lower, value, upper) {outside[:SHOWN_PERIODS]} have the forecast outside its "
        "interval; clip the bounds after the point forecast, not independently"
    )
    level = forecast_body(answer).get("interval_level")
    expected_level = card.raw.get("interval_level", level)
    assert level == expected_level, (
        f"{answer.sent}: interval_level {level!r} differs from the model card's {expected_level!r}"
    )
