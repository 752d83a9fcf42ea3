"""What the judge accepts as evidence: the right profile, verify scenarios that ran, well-formed finite figures."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from load.__main__ import main
from load.config import Slo
from load.judge import FAIL, HOLD, INCONCLUSIVE, PROMOTE, judge
from load.runner import write_json
from tests.fixtures.load_samples import results
from tests.fixtures.load_server import read_json, run_cli

SLO = Slo(p95_ms=300, max_error_ratio=0.5, min_throughput_rps=10, min_samples=300)


def write_results(artifacts: Path, profile: str = "steady", **overrides: Any) -> Path:
    path = artifacts / "load" / profile / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results(profile=profile, **overrides)))
    return path


def junit(*cases: tuple[str, str, str]) -> str:
    """A JUnit file of (classname, name, outcome) testcases; outcome is pass, skip or fail."""
    body = {"pass": "", "skip": '<skipped message="s"/>', "fail": '<failure message="f">f</failure>'}
    rows = "".join(f'<testcase classname="{c}" name="{n}">{body[o]}</testcase>' for c, n, o in cases)
    skipped = sum(o == "skip" for _c, _n, o in cases)
    failures = sum(o == "fail" for _c, _n, o in cases)
    return (
        f'<testsuites><testsuite tests="{len(cases)}" failures="{failures}" errors="0" skipped="{skipped}">'
        f"{rows}</testsuite></testsuites>"
    )


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


def test_results_of_another_profile_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_results(tmp_path, profile="rate")
    assert main(["judge", "--profile", "steady", "--results", str(path), "--artifacts", str(tmp_path)]) == 2
    assert one_line_error(capsys) == (
        f"python -m load judge: error: {path}: holds a 'rate' run, not 'steady'; pass that profile's results"
    )
    assert not (tmp_path / "decision.json").exists()


@pytest.mark.parametrize(
    ("cases", "reason"),
    [
        (
            [("steps.test_auth", "test_no_key", "skip"), ("steps.test_auth", "test_wrong_key", "skip")],
            "no verify evidence: 0 of 2 verify scenarios passed (2 skipped)",
        ),
        (
            [
                ("steps.test_forecasts", "test_horizon[1]", "pass"),
                ("steps.test_forecasts", "test_horizon[12]", "skip"),
                ("steps.test_contract", "test_swagger", "skip"),
                ("steps.test_auth", "test_no_key", "skip"),
            ],
            "verify: 2 non-auth scenarios were skipped (steps.test_forecasts.test_horizon[12], "
            "steps.test_contract.test_swagger); only auth scenarios may skip",
        ),
    ],
    ids=["only-skips", "non-auth-skips"],
)
def test_skipped_verify_scenarios_hold(tmp_path: Path, cases: list[tuple[str, str, str]], reason: str) -> None:
    write_results(tmp_path)
    (tmp_path / "verify-junit.xml").write_text(junit(*cases))
    assert main(["judge", "--artifacts", str(tmp_path)]) == 3
    decision = read_json(tmp_path / "decision.json")
    assert decision["verdict"] == HOLD
    assert decision["reasons"] == [reason]


def test_skipped_auth_scenarios_alone_still_promote(tmp_path: Path) -> None:
    write_results(tmp_path)
    cases = [("steps.test_forecasts", "test_horizon[1]", "pass"), ("steps.test_auth", "test_no_key", "skip")]
    (tmp_path / "verify-junit.xml").write_text(junit(*cases))
    assert main(["judge", "--artifacts", str(tmp_path)]) == 0
    check = [c for c in read_json(tmp_path / "decision.json")["checks"] if c["name"] == "verify scenarios"]
    assert check == [
        {"name": "verify scenarios", "measured": "1 passed, 1 skipped", "limit": "all pass", "status": "pass"}
    ]


def test_missing_junit_holds_when_verify_is_required(tmp_path: Path) -> None:
    write_results(tmp_path)
    missing = tmp_path / "verify-junit.xml"
    assert main(["judge", f"--junit={missing}", "--require-verify", "--artifacts", str(tmp_path)]) == 3
    decision = read_json(tmp_path / "decision.json")
    assert decision["reasons"] == [
        "no verify evidence: the verify stage wrote no JUnit file; rerun verify before judging"
    ]
    # Standalone, without the flag, the judge judges the load alone, as before.
    assert main(["judge", "--artifacts", str(tmp_path)]) == 0
    assert "verify scenarios" not in [c["name"] for c in read_json(tmp_path / "decision.json")["checks"]]


def test_any_inconclusive_check_holds() -> None:
    decision = judge(results(latency_ms=None), SLO)
    assert decision.verdict == HOLD
    assert ("p95 latency", INCONCLUSIVE) in [(c.name, c.status) for c in decision.checks]
    assert decision.reasons == ["p95 latency: not measured (-), so it cannot be checked against <= 300 ms"]


def test_throughput_counts_successful_requests_only() -> None:
    # 1000 requests at 20 rps, 600 of them failed: 8 successful requests per second, below the SLO's 10.
    decision = judge(results(throughput_rps=20.0, failures={"total": 600, "by_kind": {"5xx": 600}}), SLO)
    assert decision.metrics["throughput_rps"] == 8.0
    assert decision.metrics["request_rate_rps"] == 20.0
    assert ("throughput", "8.0 rps", FAIL) in [(c.name, c.measured, c.status) for c in decision.checks]
    # A results file that carries the figure itself is taken at its word.
    assert judge(results(ok_throughput_rps=12.5), SLO).metrics["throughput_rps"] == 12.5


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"histogram": {"data": "not base64 at all!", "unit": "us"}}, "'histogram'.data"),
        ({"requests": "many"}, "'requests'"),
        ({"failures": ["5xx"]}, "'failures'"),
        ({"series": [{"t": 0}]}, "'series'"),
        ({"latency_ms": {"p95": "fast"}}, "'latency_ms'"),
        ({"failures": {"total": 1001, "by_kind": {}}}, "'failures.total'"),
    ],
    ids=["histogram-not-base64", "requests-text", "failures-list", "series-row", "latency-text", "failures-over"],
)
def test_malformed_results_are_a_usage_error_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], overrides: dict[str, Any], field: str
) -> None:
    path = write_results(tmp_path, **overrides)
    assert main(["judge", "--artifacts", str(tmp_path)]) == 2
    err = one_line_error(capsys)
    assert err.startswith(f"python -m load judge: error: {path}: field {field}"), err


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"requests": -5, "histogram": None}, "'requests'"), ({}, "'histogram'")],
    ids=["negative-requests", "no-histogram"],
)
def test_malformed_baseline_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], overrides: dict[str, Any], field: str
) -> None:
    write_results(tmp_path)
    baseline = write_results(tmp_path / "prod", **overrides)
    assert main(["judge", "--baseline", str(baseline), "--artifacts", str(tmp_path)]) == 2
    err = one_line_error(capsys)
    assert err.startswith(f"python -m load judge: error: --baseline {baseline}: field {field}"), err


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_non_finite_run_time_is_refused(tmp_path: Path, value: str) -> None:
    done = run_cli("run", "--profile", "smoke", f"--run-time={value}", artifacts=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"python -m load run: error: argument --run-time: invalid finite number value: '{value}'; "
        "see `python -m load run --help`"
    ]


def test_non_finite_profile_value_is_refused(tmp_path: Path) -> None:
    source = (Path(__file__).resolve().parents[1] / "load" / "profiles.toml").read_text()
    bad = tmp_path / "profiles.toml"
    assert "\nrun_time_s = 10\n" in source  # the smoke profile's, the first run time in the file
    bad.write_text(source.replace("\nrun_time_s = 10\n", "\nrun_time_s = inf\n", 1))
    done = run_cli("run", "--profile", "smoke", artifacts=tmp_path, env={"LOAD_PROFILES_FILE": str(bad)})
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "run_time_s: expected a finite number >= 0, got inf" in done.stderr


def test_results_json_never_holds_nan(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        write_json(tmp_path / "results.json", {"duration_s": math.nan})


def test_unbindable_master_host_is_one_line(tmp_path: Path) -> None:
    # 192.0.2.1 (TEST-NET-1) is no address of this machine: binding fails at once and sends nothing.
    (tmp_path / "deployment.json").write_text(
        json.dumps(
            {
                "target": "attach",
                "name": "t",
                "scoring_uri": "http://127.0.0.1:9/score",
                "health_uri": "http://127.0.0.1:9/",
                "swagger_uri": None,
                "auth": False,
                "key_env": None,
                "model": {"name": "m", "version": "v1"},
            }
        )
    )
    args = ("run", "--profile", "smoke", "--workers", "1", "--master-bind-host", "192.0.2.1")
    done = run_cli(*args, artifacts=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "python -m load run: error: --master-bind-host 192.0.2.1: cannot listen there "
        "(Cannot assign requested address); use an address of this machine"
    ]


def test_decision_names_the_model_and_deployment_it_judged(tmp_path: Path) -> None:
    identity = {"target": "aks", "name": "forecast-aks", "scoring_uri": "http://127.0.0.1:9/score"}
    write_results(tmp_path, deployment=identity | {"model": {"name": "demand-forecast", "version": "abc123def456"}})
    assert main(["judge", "--artifacts", str(tmp_path)]) == 0
    decision = read_json(tmp_path / "decision.json")
    assert decision["profile"] == "steady"
    assert decision["model"] == {"name": "demand-forecast", "version": "abc123def456"}
    assert decision["deployment"] == identity
    assert (
        "Model `demand-forecast` version `abc123def456` on aks deployment `forecast-aks` (`http://127.0.0.1:9/score`)."
        in (tmp_path / "decision.md").read_text()
    )
    assert decision["verdict"] == PROMOTE
