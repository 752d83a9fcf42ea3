"""The promotion judge as a pure function: every rule, with exact figures."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from load.config import Slo, UsageError
from load.judge import HOLD, PROMOTE, REJECT, VerifySummary, judge, read_junit
from load.report import console_table, decision_markdown
from tests.fixtures.load_samples import PYTEST_JUNIT, results

SLO = Slo(p95_ms=300, max_error_ratio=0.01, min_throughput_rps=10, min_samples=300)


def failed(total: int, **by_kind: int) -> dict[str, Any]:
    return {"total": total, "by_kind": by_kind}


def test_within_every_slo_promotes() -> None:
    decision = judge(results(), SLO)
    assert decision.verdict == PROMOTE
    assert decision.reasons == []
    assert decision.exit_code == 0
    assert decision.metrics["requests"] == 1000
    assert decision.metrics["error_ratio"] == 0.0
    assert decision.metrics["throughput_rps"] == 40.0
    assert decision.metrics["latency_ms"] == {"p50": 5.0, "p95": 12.0, "p99": 20.0, "max": 31.0}
    assert [(c.name, c.status) for c in decision.checks] == [
        ("p95 latency", "pass"),
        ("error ratio", "pass"),
        ("throughput", "pass"),
        ("samples", "pass"),
    ]


def test_p95_above_slo_rejects() -> None:
    decision = judge(results(latency_ms={"p50": 90.0, "p95": 312.4, "p99": 400.0, "max": 500.0}), SLO)
    assert decision.verdict == REJECT
    assert decision.exit_code == 1
    assert decision.reasons == ["p95 latency 312 ms is above the SLO of 300 ms"]


def test_p95_exactly_at_slo_promotes() -> None:
    decision = judge(results(latency_ms={"p50": 90.0, "p95": 300.0, "p99": 400.0, "max": 500.0}), SLO)
    assert decision.verdict == PROMOTE


def test_error_ratio_above_slo_rejects_naming_kinds() -> None:
    decision = judge(results(failures=failed(25, **{"5xx": 20, "timeout": 5})), SLO)
    assert decision.verdict == REJECT
    assert decision.metrics["error_ratio"] == 0.025
    assert decision.reasons == [
        "error ratio 2.50% (25 of 1000 requests failed: 5xx 20, timeout 5) is above the SLO of 1.00%"
    ]


def test_error_ratio_at_limit_promotes() -> None:
    decision = judge(results(failures=failed(10, **{"5xx": 10})), SLO)
    assert decision.metrics["error_ratio"] == 0.01
    assert decision.verdict == PROMOTE


def test_throughput_below_minimum_rejects() -> None:
    decision = judge(results(throughput_rps=9.5), SLO)
    assert decision.verdict == REJECT
    assert decision.reasons == ["throughput of successful requests 9.5 rps is below the SLO of 10.0 rps"]


def test_p99_slo_is_checked_when_configured() -> None:
    slo = Slo(p95_ms=300, max_error_ratio=0.01, min_throughput_rps=10, min_samples=300, p99_ms=15)
    decision = judge(results(requests=1500), slo)
    assert decision.verdict == REJECT
    assert decision.reasons == ["p99 latency 20.0 ms is above the SLO of 15.0 ms"]


def test_failed_verify_scenarios_reject() -> None:
    verify = VerifySummary(path="v.xml", tests=30, failures=1, errors=1, skipped=0, failed=("a", "b"))
    decision = judge(results(), SLO, verify=verify)
    assert decision.verdict == REJECT
    assert decision.reasons == ["verify: 2 of 30 scenarios failed (a, b)"]
    assert ("verify scenarios", "28 passed, 2 failed", "fail") in [
        (c.name, c.measured, c.status) for c in decision.checks
    ]


def test_passed_verify_scenarios_promote() -> None:
    verify = VerifySummary(path="v.xml", tests=30, failures=0, errors=0, skipped=2)
    decision = judge(results(), SLO, verify=verify)
    assert decision.verdict == PROMOTE
    assert ("verify scenarios", "28 passed, 2 skipped", "pass") in [
        (c.name, c.measured, c.status) for c in decision.checks
    ]


def test_too_few_samples_holds() -> None:
    decision = judge(results(requests=150), SLO)
    assert decision.verdict == HOLD
    assert decision.exit_code == 3
    assert decision.reasons == [
        "too few samples: 150 successful requests, but the percentiles need at least 300 "
        "(min_samples, and 10 beyond the highest percentile checked); run longer"
    ]


def test_percentile_sets_the_sample_floor() -> None:
    p95_only = Slo(p95_ms=300, max_error_ratio=0.01, min_throughput_rps=10, min_samples=0)
    with_p99 = Slo(p95_ms=300, max_error_ratio=0.01, min_throughput_rps=10, min_samples=0, p99_ms=500)
    assert p95_only.required_samples() == 200
    assert with_p99.required_samples() == 1000
    assert judge(results(requests=199), p95_only).verdict == HOLD
    assert judge(results(requests=200), p95_only).verdict == PROMOTE


def test_failed_requests_do_not_count_as_samples() -> None:
    decision = judge(results(requests=305, failures=failed(3, **{"4xx": 3})), SLO)
    assert decision.metrics["ok"] == 302
    assert decision.verdict == PROMOTE
    decision = judge(results(requests=302, failures=failed(3, **{"4xx": 3})), SLO)
    assert decision.verdict == HOLD


def test_cpu_warning_holds() -> None:
    decision = judge(results(cpu_warning=True), SLO)
    assert decision.verdict == HOLD
    assert decision.reasons == [
        "the load generator hit its CPU warning (above 90%), so its timings are not trustworthy; "
        "run with --workers or on a larger agent"
    ]


def test_wall_time_bound_holds() -> None:
    decision = judge(results(hit_wall_time_bound=True), SLO)
    assert decision.verdict == HOLD
    assert decision.reasons == [
        "the load run hit its wall-time bound (65 s) and was stopped, so its figures are partial"
    ]


def test_zero_requests_holds() -> None:
    decision = judge(results(requests=0, throughput_rps=0.0, latency_ms={}), SLO)
    assert decision.verdict == HOLD
    assert decision.reasons == ["no requests completed, so there is nothing to judge"]
    assert decision.metrics["error_ratio"] is None


def test_reject_outranks_hold_and_lists_both() -> None:
    decision = judge(results(cpu_warning=True, throughput_rps=2.0), SLO)
    assert decision.verdict == REJECT
    assert decision.reasons[0] == "throughput of successful requests 2.0 rps is below the SLO of 10.0 rps"
    assert decision.reasons[1].startswith("the load generator hit its CPU warning")


def test_all_requests_failed_rejects_on_error_ratio() -> None:
    decision = judge(results(requests=400, failures=failed(400, connection=400), latency_ms={}), SLO)
    assert decision.verdict == REJECT
    assert decision.reasons[0] == (
        "error ratio 100.00% (400 of 400 requests failed: connection 400) is above the SLO of 1.00%"
    )


def test_decision_carries_the_design_fields() -> None:
    record = judge(results(), SLO, profile="steady").to_dict()
    assert set(record) >= {"verdict", "reasons", "metrics", "slos", "profile"}
    assert set(record["metrics"]) >= {"requests", "error_ratio", "throughput_rps", "latency_ms"}
    assert set(record["metrics"]["latency_ms"]) == {"p50", "p95", "p99", "max"}
    assert record["slos"] == {
        "p95_ms": 300,
        "max_error_ratio": 0.01,
        "min_throughput_rps": 10,
        "min_samples": 300,
        "required_samples": 300,
    }
    assert record["profile"] == "steady"


def test_judge_is_pure() -> None:
    given = results(failures=failed(25, **{"5xx": 25}), cpu_warning=True)
    before = copy.deepcopy(given)
    first, second = judge(given, SLO).to_dict(), judge(given, SLO).to_dict()
    assert first == second
    assert given == before


def test_markdown_shows_figures_against_slos() -> None:
    decision = judge(results(throughput_rps=9.5), SLO)
    text = decision_markdown(decision, results_file="a/load/steady/results.json", junit_file=None)
    assert text.startswith("# Release decision: REJECT\n")
    assert "| throughput | 9.5 rps | >= 10.0 rps | FAIL |" in text
    assert "| p95 latency | 12.0 ms | <= 300 ms | pass |" in text
    assert "- throughput of successful requests 9.5 rps is below the SLO of 10.0 rps" in text


def test_console_table_starts_with_the_verdict() -> None:
    table = console_table(judge(results(), SLO, profile="steady"))
    assert table.splitlines()[0] == "verdict: PROMOTE (profile steady)"
    assert "p95 latency" in table


def test_read_junit_counts_pytest_output(tmp_path: Path) -> None:
    path = tmp_path / "verify-junit.xml"
    path.write_text(PYTEST_JUNIT)
    summary = read_junit(path)
    assert (summary.tests, summary.failures, summary.errors, summary.skipped) == (5, 1, 1, 1)
    assert summary.failed == ("test_horizon[12]", "test_bad_input[zero]")
    assert judge(results(), SLO, verify=summary).reasons == [
        "verify: 2 of 5 scenarios failed (test_horizon[12], test_bad_input[zero])"
    ]


def test_read_junit_rejects_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "verify-junit.xml"
    path.write_text("<testsuites><testsuite")
    with pytest.raises(UsageError, match=r"verify-junit\.xml: not readable JUnit XML"):
        read_junit(path)
    with pytest.raises(UsageError, match=r"missing\.xml: no JUnit file"):
        read_junit(tmp_path / "missing.xml")
