"""The judge's deeper rules: shortfall, unclassified errors, incomplete workers, 503 vs 504, capacity and sizing."""

from __future__ import annotations

from typing import Any

from load.config import Production, Slo
from load.judge import HOLD, PROMOTE, REJECT, judge
from tests.fixtures.load_samples import SIZING_KEYS, results, row

SLO = Slo(p95_ms=300, max_error_ratio=0.01, min_throughput_rps=10, min_samples=300)


def open_run(*, scheduled: int, completed: int) -> dict[str, Any]:
    shortfall = round(1 - completed / scheduled, 6)
    schedule = {"target_rps": 40.0, "scheduled": scheduled, "completed": completed, "shortfall": shortfall}
    return results(model="open", requests=completed, schedule=schedule)


def test_open_run_that_fell_short_holds() -> None:
    decision = judge(open_run(scheduled=1000, completed=850), SLO)
    assert decision.verdict == HOLD
    assert decision.reasons == [
        "the load fell 15.0% short of its schedule (850 of 1000 scheduled requests completed, target 40.0 rps), "
        "more than 10%: the intended load was not applied; raise --users or add --workers"
    ]


def test_open_run_within_ten_percent_promotes() -> None:
    decision = judge(open_run(scheduled=1000, completed=950), SLO)
    assert decision.verdict == PROMOTE
    assert ("achieved rate", "95.0% of schedule", "pass") in [(c.name, c.measured, c.status) for c in decision.checks]


def test_unclassified_errors_hold() -> None:
    failures = {"total": 2, "by_kind": {"other": 2}, "examples": {"other": "ValueError: odd"}}
    decision = judge(results(failures=failures), SLO)
    assert decision.verdict == HOLD
    assert decision.reasons == [
        "2 errors could not be classified (e.g. 'ValueError: odd'); read the Locust log before deciding"
    ]


def test_incomplete_worker_reports_hold() -> None:
    workers = {"expected": 2, "reported": 1, "complete": False}
    decision = judge(results(workers=workers), SLO)
    assert decision.verdict == HOLD
    assert decision.reasons == ["the master's merged figures are incomplete: 1 of 2 workers reported; rerun"]
    assert judge(results(workers=workers | {"reported": 2, "complete": True}), SLO).verdict == PROMOTE


def test_503_and_504_are_different_findings() -> None:
    failures = {"total": 30, "by_kind": {"5xx": 30}, "by_status": {"503": 24, "504": 6}}
    decision = judge(results(failures=failures), SLO)
    assert decision.verdict == REJECT
    assert decision.reasons[0] == (
        "error ratio 3.00% (30 of 1000 requests failed: 5xx 30 (503 ×24, 504 ×6)) is above the SLO of 1.00%"
    )
    assert decision.findings == [
        "HTTP 503 ×24: service unavailable: the queue was full or the service was not ready "
        "(add replicas or concurrency)",
        "HTTP 504 ×6: gateway timeout: a request outlived the front end's timeout "
        "(slow requests, or a stalled service)",
    ]


def capacity_run(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return results(
        model="open",
        requests=sum(r["requests"] for r in rows),
        settings={"capacity_search": True},
        stages=rows,
        latency_ms={"p50": 50.0, "p95": 900.0, "p99": 1500.0, "max": 2000.0},  # overloaded on purpose
    )


STEP_SLO = Slo(p95_ms=100, max_error_ratio=0.01, min_throughput_rps=0, min_samples=100)
PRODUCTION = Production(target_rps=50, peak_rps=100, autoscale_target_utilization=0.7)


def test_capacity_search_ends_with_a_sizing() -> None:
    rows = [row(0, 20, 20, 12), row(1, 40, 40, 15), row(2, 60, 58, 400)]
    decision = judge(capacity_run(rows), STEP_SLO, production=PRODUCTION)
    assert decision.verdict == PROMOTE, decision.reasons
    assert decision.capacity is not None
    assert (decision.capacity["knee_stage"], decision.capacity["knee_rps_per_replica"]) == (1, 40)
    record = decision.to_dict()
    assert set(record["sizing"]) == SIZING_KEYS
    # 50 rps × (1 / 40 s) / 0.7 = 1.79 -> 2 replicas; the 100 rps peak -> 3.57 -> 4
    assert (record["sizing"]["replicas"], record["sizing"]["autoscale_max_replicas"]) == (2, 4)
    assert "p95 latency" not in [c.name for c in decision.checks]  # the overload is the point, not a breach


def test_capacity_search_without_a_knee_holds_without_sizing() -> None:
    decision = judge(capacity_run([row(0, 20, 11, 500)]), STEP_SLO, production=PRODUCTION)
    assert decision.verdict == HOLD
    assert decision.reasons == [
        "capacity: even the first stage (20 rps) broke the SLO (p95 500 ms > 100 ms; achieved 11 of 20 rps); "
        "start the step profile lower"
    ]
    assert "sizing" not in decision.to_dict()


def test_knee_with_too_few_samples_holds() -> None:
    rows = [row(0, 10, 10, 12), row(1, 20, 20, 15), row(2, 30, 20, 400)]  # the knee stage has 100 samples
    decision = judge(
        capacity_run(rows),
        Slo(p95_ms=100, max_error_ratio=0.01, min_throughput_rps=0, min_samples=150),
        production=PRODUCTION,
    )
    assert decision.verdict == HOLD
    assert decision.reasons == [
        "the knee stage has 100 successful requests, fewer than the 200 its p95 needs; lengthen step_s"
    ]


def test_peak_needing_too_many_replicas_rejects() -> None:
    rows = [row(0, 20, 20, 12) | {"latency_ms": {"p95": 12, "count": 300}}, row(1, 40, 36, 400)]
    decision = judge(capacity_run(rows), STEP_SLO, production=Production(target_rps=50, peak_rps=200, max_replicas=10))
    assert decision.verdict == REJECT
    assert decision.reasons == [
        "the production peak of 200 rps needs 15 replicas at 20 rps each, more than the allowed 10"
    ]
    assert decision.sizing is not None and decision.sizing["autoscale_max_replicas"] == 15
