"""What the steps compare against: the model card, the contract schemas, and the answer under test."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import pandas as pd
import pytest
from jsonschema import Draft202012Validator
from pandas.tseries.frequencies import to_offset

from deploy.base import PROJECT_ROOT
from steps.scoring_client import Reply, ScoringUnreachable

CONTRACT_DIR: Final = PROJECT_ROOT / "service" / "schemas"
# The service reloads the same model.pkl the reference forecasts came from and JSON round-trips floats
# exactly, so only the arithmetic order may differ: a millionth is far below any real drift.
REL_TOLERANCE: Final = 1e-6
# Lets a clipped-at-zero forecast match a reference a few ulps away from zero.
ABS_TOLERANCE: Final = 1e-9
# Enough schema violations to see the pattern without flooding the message.
MAX_REPORTED_ERRORS: Final = 3
# A swagger document may carry a schema's own identifiers; they name the document, not the contract.
SCHEMA_IDENTIFIERS: Final = ("$schema", "$id")
CARD_FIELDS: Final = ("version", "frequency", "last_period", "season_length", "max_horizon", "reference_forecasts")

_PERIODS = re.compile(r"^(\d+) periods?$")


@dataclass(frozen=True)
class Answer:
    """A request the scenario sent (in words), the horizon it asked for, and the service's reply."""

    sent: str
    reply: Reply
    horizon: int | None = None


class ModelCard:
    """model.json of the deployed model: horizons, periods and reference forecasts."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    def check_complete(self) -> None:
        """Fail with the missing field names when the card cannot back the forecast checks."""
        missing = [name for name in CARD_FIELDS if name not in self.raw]
        assert not missing, (
            f"model.json lacks {missing}; rebuild the model with `python -m service.build` (docs/contracts.md)"
        )

    @property
    def max_horizon(self) -> int:
        return int(self.raw["max_horizon"])

    @property
    def season_length(self) -> int:
        return int(self.raw["season_length"])

    def periods_after_training(self, count: int) -> list[str]:
        """ISO dates of the `count` periods right after the training data (last_period + k × frequency)."""
        last = pd.Timestamp(self.raw["last_period"])
        step = to_offset(self.raw["frequency"])
        return [(last + step * k).date().isoformat() for k in range(1, count + 1)]

    def reference(self, horizon: int) -> list[float]:
        """Reference point forecasts for `horizon`: its own entry, or the start of a longer one."""
        forecasts: dict[str, list[float]] = self.raw["reference_forecasts"]
        longer = sorted(int(h) for h in forecasts if int(h) >= horizon)
        assert longer, (
            f"model.json has reference forecasts for horizons {sorted(forecasts, key=int)} but none covers {horizon}; "
            "rebuild the model so reference_forecasts includes max_horizon"
        )
        # A SARIMAX forecast of h periods is the first h periods of any longer forecast from the same state.
        return [max(value, 0.0) for value in forecasts[str(longer[0])][:horizon]]


def advice(reply: Reply) -> str:
    """What to try next for an unexpected status: a sentence a release engineer can act on."""
    if reply.status in (401, 403):
        return "the service refused the key: check that --key-env (or deployment.json key_env) names this service's key"
    if reply.status == 404:
        return "nothing answers at that route: check the URIs with `python -m deploy describe`"
    if reply.status in (502, 503, 504):
        return "the front end got no answer from the container: check the container log and that it finished starting"
    if reply.status >= 500:
        return "run() failed: the traceback is in the server log (deployment.json details.log_file)"
    return "compare with docs/contracts.md"


def reach(call: Callable[[], Reply]) -> Reply:
    """Call the service; no HTTP answer at all fails the step with one line instead of a traceback."""
    try:
        return call()
    except ScoringUnreachable as exc:
        raise pytest.fail.Exception(str(exc), pytrace=False) from None


def horizon_of(phrase: str, card: ModelCard | None) -> int:
    """The number of periods a phrase asks for: 'one period', '3 periods', 'one season', 'the maximum horizon'."""
    if phrase == "one period":
        return 1
    if match := _PERIODS.match(phrase):
        return int(match.group(1))
    assert card is not None, f"the horizon {phrase!r} needs the model card"
    if phrase == "one season":
        return card.season_length
    if phrase == "the maximum horizon":
        return card.max_horizon
    raise AssertionError(
        f"unknown horizon {phrase!r} in the feature file; use 'one period', 'N periods', 'one season' "
        "or 'the maximum horizon'"
    )


def needs_card(phrase: str) -> bool:
    """True when a horizon phrase can only be resolved from the model card."""
    return phrase in ("one season", "the maximum horizon")


def schema_errors(schema: dict[str, Any], instance: Any) -> list[str]:
    """The first few violations of a Draft 2020-12 schema, each as 'at <path>: <message>'."""
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(instance), key=lambda error: list(error.absolute_path))
    return [f"at {error.json_path}: {error.message}" for error in errors[:MAX_REPORTED_ERRORS]]


def close_to(received: float, expected: float) -> bool:
    """Equal within the reference tolerance."""
    return math.isclose(received, expected, rel_tol=REL_TOLERANCE, abs_tol=ABS_TOLERANCE)


def finite_non_negative(value: Any) -> bool:
    """A JSON number (not a boolean) that is finite and at least zero."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def resolve_pointer(document: dict[str, Any], node: Any) -> Any:
    """Follow a local `$ref` ('#/components/schemas/X') inside a swagger document, once per hop."""
    seen = set()
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/"):
        ref = node["$ref"]
        assert ref not in seen, f"the swagger document has a $ref cycle at {ref}"
        seen.add(ref)
        target: Any = document
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            assert isinstance(target, dict) and part in target, f"the swagger $ref {ref} points nowhere"
            target = target[part]
        node = target
    return node


def without_identifiers(schema: Any) -> Any:
    """A schema without its top-level `$schema`/`$id`, which name a document rather than constrain a value."""
    if not isinstance(schema, dict):
        return schema
    return {key: value for key, value in schema.items() if key not in SCHEMA_IDENTIFIERS}


def first_difference(received: Any, expected: Any, path: str = "$") -> str | None:
    """Where two JSON values first differ, as 'at <path>: <received> instead of <expected>'."""
    if isinstance(received, dict) and isinstance(expected, dict):
        for key in sorted(set(received) | set(expected)):
            if key not in received:
                return f"at {path}.{key}: missing (the contract has {expected[key]!r})"
            if key not in expected:
                return f"at {path}.{key}: {received[key]!r} is not in the contract"
            found = first_difference(received[key], expected[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(received, list) and isinstance(expected, list) and len(received) == len(expected):
        for index, (got, want) in enumerate(zip(received, expected, strict=True)):
            found = first_difference(got, want, f"{path}[{index}]")
            if found:
                return found
        return None
    if received != expected or type(received) is not type(expected):
        return f"at {path}: {received!r} instead of {expected!r}"
    return None
