"""Open-model schedules, per-stage figures, the capacity knee and the AKS sizing formula."""

from __future__ import annotations

from typing import Any

import pytest

from load.capacity import Schedule, find_knee, size_aks, stage_problems, stage_rows
from load.config import Production, Slo, Stage
from load.recorder import Recorder
from tests.fixtures.load_samples import SIZING_KEYS, row

SLO = Slo(p95_ms=100, max_error_ratio=0.01, min_throughput_rps=0, min_samples=10)


def claims(schedule: Schedule) -> list[tuple[float, int]]:
    out = []
    while (claim := schedule.claim()) is not None:
        out.append((round(claim[0], 6), claim[1]))
    return out


def test_schedule_sends_every_arrival_on_time() -> None:
    schedule = Schedule([Stage(0, 1, 10), Stage(1, 0.5, 4)])
    schedule.start(100.0)
    assert claims(schedule) == [(100.0 + i / 10, 0) for i in range(10)] + [(101.0, 1), (101.25, 1)]
    assert schedule.claim() is None


def test_workers_share_the_schedule_exactly() -> None:
    stages = [Stage(0, 2, 15)]
    shares = [Schedule(stages, share=3, index=i) for i in range(3)]
    for schedule in shares:
        schedule.start(0.0)
    together = sorted(t for schedule in shares for t, _ in claims(schedule))
    alone = Schedule(stages)
    alone.start(0.0)
    assert together == [t for t, _ in claims(alone)]
    assert len(together) == 30


def test_due_counts_what_should_have_been_sent() -> None:
    stages = [Stage(0, 1, 10), Stage(1, 1, 20)]
    whole, even, odd = Schedule(stages), Schedule(stages, share=2, index=0), Schedule(stages, share=2, index=1)
    for schedule in (whole, even, odd):
        schedule.start(50.0)
    assert whole.due(50.35) == {0: 4}  # arrivals at 0, .1, .2, .3
    assert even.due(50.35) == {0: 2} and odd.due(50.35) == {0: 2}
    assert whole.due(51.5) == {0: 10, 1: 10}
    assert whole.due(49.0) == {}


def recorded(stage: int, latencies_ms: list[float], failures: int = 0) -> dict[str, Any]:
    recorder = Recorder()
    for i, ms in enumerate(latencies_ms):
        recorder.record(kind="horizon=1", at=float(i), latency_ms=ms, error=None, status=200, stage=stage)
    for i in range(failures):
        recorder.record(kind="horizon=1", at=float(i), latency_ms=5.0, error="5xx", status=503, stage=stage)
    return dict(recorder.payload()["stages"])


def test_stage_rows_compare_target_and_achieved() -> None:
    stages = [Stage(0, 2, 10), Stage(2, 2, 20)]
    data = recorded(0, [10.0] * 20) | recorded(1, [10.0] * 30 + [500.0] * 5, failures=1)
    rows = stage_rows(stages, data, schedule={"scheduled.0": 20, "scheduled.1": 40, "sent.0": 20, "late.1": 3})
    assert [(r["stage"], r["scheduled"], r["requests"], r["achieved_rps"]) for r in rows] == [
        (0, 20, 20, 10.0),
        (1, 40, 36, 18.0),
    ]
    assert rows[1]["shortfall"] == 0.1
    assert rows[1]["late"] == 3
    assert rows[1]["error_ratio"] == round(1 / 36, 6)
    assert rows[1]["latency_ms"]["p95"] == 500.0
    assert rows[0]["latency_ms"]["count"] == 20


def test_a_stage_cut_short_is_judged_on_what_ran() -> None:
    rows = stage_rows([Stage(0, 2, 10), Stage(2, 2, 20)], recorded(1, [10.0] * 10), schedule={}, ran_s=2.5)
    assert rows[1]["duration_s"] == 0.5 and rows[1]["partial"] is True
    assert rows[1]["achieved_rps"] == 20.0
    assert len(stage_rows([Stage(0, 2, 10), Stage(2, 2, 20)], {}, schedule={}, ran_s=1.0)) == 1


def test_knee_is_the_last_stage_within_the_slo() -> None:
    rows = [row(0, 20, 20, 12), row(1, 40, 40, 15), row(2, 60, 59.5, 40), row(3, 80, 70, 450), row(4, 100, 71, 900)]
    knee = find_knee(rows, SLO)
    assert knee["knee_stage"] == 2
    assert knee["knee_rps_per_replica"] == 59.5
    assert knee["broken_stage"] == 3
    assert knee["broken_because"] == ["p95 450 ms > 100 ms", "achieved 70 of 80 rps"]
    assert knee["search_complete"] is True


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (row(1, 40, 40, 15, error_ratio=0.02), "error ratio 2.00% > 1.00%"),
        (row(1, 40, 30, 15), "achieved 30 of 40 rps"),
        (row(1, 40, 40, 101), "p95 101 ms > 100 ms"),
    ],
    ids=["errors", "shortfall", "latency"],
)
def test_each_slo_breaks_a_stage(bad: dict[str, Any], problem: str) -> None:
    assert stage_problems(bad, SLO) == [problem]
    assert find_knee([row(0, 20, 20, 12), bad], SLO)["knee_stage"] == 0


def test_no_knee_when_the_first_stage_breaks() -> None:
    knee = find_knee([row(0, 20, 12, 300)], SLO)
    assert knee["knee_rps_per_replica"] is None and knee["broken_stage"] == 0


def test_search_that_never_broke_is_marked_incomplete() -> None:
    knee = find_knee([row(0, 20, 20, 12), row(1, 40, 40, 13)], SLO)
    assert (knee["knee_stage"], knee["search_complete"]) == (1, False)


def test_sizing_follows_the_documented_formula() -> None:
    production = Production(target_rps=50, peak_rps=100, autoscale_target_utilization=0.7, cpu_cores=1, memory_gb=2)
    sizing = size_aks(knee_rps=20.0, production=production)
    assert set(sizing) == SIZING_KEYS
    # request_time_s = 1 / 20 = 0.05; 50 * 0.05 / 0.7 / 1 = 3.57 -> 4; peak 100 -> 7.14 -> 8
    assert (sizing["replicas"], sizing["autoscale_min_replicas"], sizing["autoscale_max_replicas"]) == (4, 4, 8)
    assert sizing["autoscale_target_utilization"] == 70
    assert (sizing["cpu_cores"], sizing["memory_gb"], sizing["max_concurrent_requests_per_container"]) == (1, 2, 1)
    assert (sizing["knee_rps_per_replica"], sizing["target_rps"]) == (20.0, 50)
    assert "ceil(50 × 0.05 / 0.7 / 1) = 4" in sizing["formula"]


def test_sizing_counts_concurrent_slots_and_never_goes_below_one() -> None:
    production = Production(target_rps=10, peak_rps=10, max_concurrent_requests_per_container=4)
    sizing = size_aks(knee_rps=200.0, production=production)
    # request_time_s = 4 / 200 = 0.02; 10 * 0.02 / 0.7 / 4 = 0.07 -> at least 1
    assert (sizing["replicas"], sizing["autoscale_max_replicas"]) == (1, 1)
    exact = size_aks(knee_rps=35.0, production=Production(target_rps=49, peak_rps=49))
    assert exact["replicas"] == 2  # 49 / 35 / 0.7 = 2.0 exactly: no extra replica for rounding noise
