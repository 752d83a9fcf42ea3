"""Candidate vs baseline: Mann-Whitney U, Hodges-Lehmann shift with a tolerance band, Fisher on error ratios."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest
from scipy import stats

from load.compare import FASTER, INCONCLUSIVE, SLOWER, UNCHANGED, compare_runs, hodges_lehmann, mann_whitney
from load.config import BaselinePolicy, Slo
from load.judge import HOLD, PROMOTE, REJECT, judge
from load.recorder import Recorder, histogram_record
from tests.fixtures.load_samples import results

POLICY = BaselinePolicy()
SLO = Slo(p95_ms=300, max_error_ratio=0.05, min_throughput_rps=1, min_samples=100)


def run(scale: float, seed: int, n: int = 2000, *, failures: int = 0, median_ms: float = 10.0) -> dict[str, Any]:
    """results.json-like figures of a seeded run whose latencies are log-normal around `median_ms` × scale."""
    rng = random.Random(seed)
    recorder = Recorder()
    for i in range(n):
        ms = scale * rng.lognormvariate(math.log(median_ms), 0.25)
        kind = "horizon=1" if i % 2 else "horizon=24"
        recorder.record(kind=kind, at=i / 100, latency_ms=ms, error=None, status=200)
    kinds = {
        name: {"requests": k.requests, "failures": 0, "histogram": histogram_record(k.latency.histogram)}
        for name, k in recorder.kinds.items()
    }
    summary = recorder.latency.summary()
    return results(
        requests=n + failures,
        failures={"total": failures, "by_kind": {"5xx": failures} if failures else {}},
        latency_ms={key: summary[key] for key in ("p50", "p95", "p99", "max")},
        histogram=histogram_record(recorder.latency.histogram),
        kinds=kinds,
    )


def as_weighted(values: list[int]) -> tuple[np.ndarray, np.ndarray]:
    unique, counts = np.unique(np.asarray(values, dtype=float), return_counts=True)
    return unique, counts.astype(float)


def test_hodges_lehmann_is_the_median_pairwise_difference() -> None:
    rng = random.Random(4)
    x = [rng.randint(1000, 5000) for _ in range(61)]
    y = [rng.randint(800, 4000) for _ in range(47)]
    diffs = sorted(a - b for a in x for b in y)
    lower_median = diffs[math.ceil(len(diffs) / 2) - 1]
    shift, low, high = hodges_lehmann(as_weighted(x), as_weighted(y))
    assert abs(shift - lower_median) <= 0.5
    assert low < shift < high


def test_mann_whitney_on_histograms_matches_raw_samples() -> None:
    rng = random.Random(8)
    x = [rng.randint(9000, 14000) for _ in range(300)]
    y = [rng.randint(8000, 13000) for _ in range(250)]
    raw = stats.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic").pvalue
    assert mann_whitney(as_weighted(x), as_weighted(y)) == pytest.approx(raw, rel=1e-9)


def test_unchanged_service_is_unchanged() -> None:
    found = compare_runs(run(1.0, 2), run(1.0, 1), policy=POLICY)
    assert [c.finding for c in found] == [UNCHANGED] * 4
    assert [c.metric for c in found] == [
        "latency of successful requests",
        "latency of horizon=1",
        "latency of horizon=24",
        "error ratio",
    ]
    assert found[0].alpha == pytest.approx(0.01 / 3)  # Bonferroni over the three latency comparisons


def test_clearly_slower_candidate_is_named_with_its_size() -> None:
    found = compare_runs(run(1.25, 3), run(1.0, 1), policy=POLICY)
    overall = found[0]
    assert overall.finding == SLOWER
    assert 0.2 < overall.relative_shift < 0.3
    assert overall.shift_low_ms > 0
    assert overall.p_value < 1e-6
    assert overall.words.startswith(
        f"latency of successful requests is {overall.relative_shift * 100:.1f}% slower than the baseline: median "
    )
    assert "Mann-Whitney p < 0.0001" in overall.words
    assert f"beyond the tolerance of {overall.tolerance_ms:g} ms" in overall.words


def test_faster_candidate_is_not_a_regression() -> None:
    assert compare_runs(run(0.7, 3), run(1.0, 1), policy=POLICY)[0].finding == FASTER


def test_shift_inside_the_tolerance_band_is_unchanged() -> None:
    comparison = compare_runs(run(1.05, 3, n=20000), run(1.0, 1, n=20000), policy=POLICY)[0]
    assert comparison.p_value < 0.001  # significant, yet...
    assert comparison.finding == UNCHANGED  # ...only 5%, inside the 10% band


def test_few_samples_are_inconclusive() -> None:
    comparison = compare_runs(run(1.5, 3, n=15), run(1.0, 1, n=500), policy=POLICY)[0]
    assert comparison.finding == INCONCLUSIVE
    assert comparison.words == (
        "latency of successful requests: too few samples to compare (15 candidate, 500 baseline; at least 20 each); "
        "run longer"
    )


def test_error_ratio_rise_is_tested_with_fisher() -> None:
    found = compare_runs(run(1.0, 2, failures=60), run(1.0, 1), policy=POLICY)[-1]
    assert found.finding == SLOWER
    assert found.words.startswith("error ratio rose from 0.00% to 2.91% (+2.91 points; Fisher's exact p < 0.0001")
    small = compare_runs(run(1.0, 2, failures=5), run(1.0, 1), policy=POLICY)[-1]
    assert small.finding == UNCHANGED  # 0.25 points: inside the half-point band


def test_judge_rejects_a_clear_regression_in_words() -> None:
    decision = judge(run(1.3, 3), SLO, baseline=run(1.0, 1), policy=POLICY)
    assert decision.verdict == REJECT
    assert decision.reasons[0].startswith("latency of successful requests is ")
    assert "% slower than the baseline" in decision.reasons[0]
    assert decision.baseline is not None and decision.baseline[0]["finding"] == SLOWER


def test_judge_promotes_an_unchanged_candidate() -> None:
    decision = judge(run(1.0, 2), SLO, baseline=run(1.0, 1), policy=POLICY)
    assert decision.verdict == PROMOTE
    assert decision.reasons == []
    assert [c.name for c in decision.checks][-1] == "vs baseline: error ratio"


def test_judge_holds_a_too_short_comparison() -> None:
    short = run(1.5, 3, n=15) | {"requests": 500}  # enough overall samples for the SLO, too few for the comparison
    decision = judge(short, SLO, baseline=run(1.0, 1), policy=POLICY)
    assert decision.verdict == HOLD
    assert "too few samples to compare" in decision.reasons[0]
    assert judge(run(1.0, 2, n=50), SLO, baseline=run(1.0, 1), policy=POLICY).verdict == HOLD  # SLO sample rule
