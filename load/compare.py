"""Candidate vs baseline, the way canary judges compare metrics: rank tests plus an effect size with a tolerance.

    comparisons = compare_runs(candidate_results, baseline_results, policy=policy)   # pure: histograms in, findings out

Latency distributions (from the raw HDR histograms) are compared with a two-sided Mann-Whitney U test
(scipy) and a Hodges-Lehmann shift (the median of all candidate-minus-baseline differences) with its
distribution-free confidence interval; the shift counts only beyond a tolerance band. Error ratios are
compared with Fisher's exact test.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from load.config import BaselinePolicy
from load.recorder import decode

SLOWER, FASTER, UNCHANGED, INCONCLUSIVE = "slower", "faster", "unchanged", "inconclusive"
MIN_COMPARE_SAMPLES = 20  # Mann-Whitney's normal approximation (and a median) need a couple of dozen samples
CONFIDENCE = 0.95  # the Hodges-Lehmann interval reported beside the shift
BISECTION_US = 0.5  # the shift is found to half a microsecond (histogram values are whole microseconds)


@dataclass(frozen=True)
class Comparison:
    """One metric of the candidate against the baseline, and what it means."""

    metric: str
    finding: str
    baseline_n: int
    candidate_n: int
    baseline_median_ms: float | None = None
    candidate_median_ms: float | None = None
    baseline_p95_ms: float | None = None
    candidate_p95_ms: float | None = None
    shift_ms: float | None = None
    shift_low_ms: float | None = None
    shift_high_ms: float | None = None
    relative_shift: float | None = None
    tolerance_ms: float | None = None
    baseline_ratio: float | None = None
    candidate_ratio: float | None = None
    p_value: float | None = None
    alpha: float | None = None
    words: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form for decision.json."""
        return asdict(self)


def weighted(histogram_b64: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(bucket midpoints in µs, counts) of an encoded HDR histogram, ascending."""
    histogram = decode(histogram_b64)
    values, counts = [], []
    for item in histogram.get_recorded_iterator():
        low = histogram.get_lowest_equivalent_value(item.value_iterated_to)
        high = histogram.get_highest_equivalent_value(item.value_iterated_to)
        values.append((low + high) / 2)
        counts.append(item.count_added_in_this_iter_step)
    return np.asarray(values, dtype=float), np.asarray(counts, dtype=float)


def _weighted_quantile(values: NDArray[np.float64], counts: NDArray[np.float64], q: float) -> float:
    """The q-quantile of bucket values weighted by their counts."""
    cumulative = np.cumsum(counts)
    index = int(np.searchsorted(cumulative, q * cumulative[-1], side="left"))
    return float(values[min(index, len(values) - 1)])


def _pair_quantile(
    cand: tuple[NDArray[np.float64], NDArray[np.float64]],
    base: tuple[NDArray[np.float64], NDArray[np.float64]],
    q: float,
) -> float:
    """The q-quantile of candidate-minus-baseline over all pairs (weighted by counts), by bisection."""
    xv, xw = cand
    yv, yw = base
    y_cum = np.concatenate(([0.0], np.cumsum(yw)))
    y_total = y_cum[-1]
    target = q * float(xw.sum()) * y_total

    def pairs_at_most(d: float) -> float:
        """Weight of the pairs whose difference is at most d."""
        below = y_cum[np.searchsorted(yv, xv - d, side="left")]  # baseline weight strictly below x - d
        return float(np.sum(xw * (y_total - below)))

    low, high = float(xv[0] - yv[-1]) - 1.0, float(xv[-1] - yv[0])
    while high - low > BISECTION_US:
        middle = (low + high) / 2
        if pairs_at_most(middle) >= target:
            high = middle
        else:
            low = middle
    return high


def hodges_lehmann(
    cand: tuple[NDArray[np.float64], NDArray[np.float64]],
    base: tuple[NDArray[np.float64], NDArray[np.float64]],
    *,
    confidence: float = CONFIDENCE,
) -> tuple[float, float, float]:
    """(shift, low, high) in µs: the median pairwise difference and its distribution-free confidence interval."""
    n, m = float(cand[1].sum()), float(base[1].sum())
    z = float(stats.norm.ppf(1 - (1 - confidence) / 2))
    half_width = z * math.sqrt(n * m * (n + m + 1) / 12) / (n * m)
    shift = _pair_quantile(cand, base, 0.5)
    return (
        shift,
        _pair_quantile(cand, base, max(0.5 - half_width, 0.0)),
        _pair_quantile(cand, base, min(0.5 + half_width, 1.0)),
    )


def mann_whitney(
    cand: tuple[NDArray[np.float64], NDArray[np.float64]], base: tuple[NDArray[np.float64], NDArray[np.float64]]
) -> float:
    """Two-sided Mann-Whitney U p-value (scipy, tie-corrected normal approximation) of two histograms."""
    x = np.repeat(cand[0], cand[1].astype(np.int64))
    y = np.repeat(base[0], base[1].astype(np.int64))
    return float(stats.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic").pvalue)


def _p_words(p: float) -> str:
    """A p-value as people read it."""
    return "p < 0.0001" if p < 0.0001 else f"p = {p:.4f}" if p < 0.01 else f"p = {p:.3f}"


def _ms(us: float) -> float:
    """Microseconds as milliseconds, to the microsecond."""
    return round(us / 1000, 3)


def compare_latency(
    metric: str, candidate: Mapping[str, Any], baseline: Mapping[str, Any], *, policy: BaselinePolicy, alpha: float
) -> Comparison:
    """Compare two raw latency histograms (results.json `histogram` records)."""
    cand, base = weighted(candidate["data"]), weighted(baseline["data"])
    n, m = int(cand[1].sum()), int(base[1].sum())
    if n < MIN_COMPARE_SAMPLES or m < MIN_COMPARE_SAMPLES:
        return Comparison(
            metric,
            INCONCLUSIVE,
            m,
            n,
            alpha=alpha,
            words=f"{metric}: too few samples to compare ({n} candidate, {m} baseline; "
            f"at least {MIN_COMPARE_SAMPLES} each); run longer",
        )
    base_median, cand_median = _weighted_quantile(*base, 0.5), _weighted_quantile(*cand, 0.5)
    base_p95, cand_p95 = _weighted_quantile(*base, 0.95), _weighted_quantile(*cand, 0.95)
    shift, low, high = hodges_lehmann(cand, base)
    p_value = mann_whitney(cand, base)
    tolerance = max(policy.max_slowdown * base_median, policy.min_shift_ms * 1000)
    relative = shift / base_median if base_median else 0.0
    significant = p_value < alpha
    if shift > tolerance:
        finding = SLOWER if significant else INCONCLUSIVE
    elif shift < -tolerance and significant:
        finding = FASTER
    else:
        finding = UNCHANGED
    direction = "slower" if shift > 0 else "faster"
    words = (
        f"{metric} is {abs(relative) * 100:.1f}% {direction} than the baseline: median {_ms(base_median):g} → "
        f"{_ms(cand_median):g} ms, p95 {_ms(base_p95):g} → {_ms(cand_p95):g} ms; Hodges-Lehmann shift "
        f"{_ms(shift):+g} ms (95% CI {_ms(low):+g} to {_ms(high):+g} ms), Mann-Whitney {_p_words(p_value)} "
        f"({n} vs {m} requests)"
    )
    if finding == SLOWER:
        words += f"; beyond the tolerance of {_ms(tolerance):g} ms"
    elif finding == INCONCLUSIVE:
        words += f"; beyond the tolerance of {_ms(tolerance):g} ms but not significant at {alpha:.2g}; run longer"
    else:
        words += f"; within the tolerance of {_ms(tolerance):g} ms" if finding == UNCHANGED else ""
    return Comparison(
        metric=metric,
        finding=finding,
        baseline_n=m,
        candidate_n=n,
        baseline_median_ms=_ms(base_median),
        candidate_median_ms=_ms(cand_median),
        baseline_p95_ms=_ms(base_p95),
        candidate_p95_ms=_ms(cand_p95),
        shift_ms=_ms(shift),
        shift_low_ms=_ms(low),
        shift_high_ms=_ms(high),
        relative_shift=round(relative, 4),
        tolerance_ms=_ms(tolerance),
        p_value=p_value,
        alpha=alpha,
        words=words,
    )


def compare_errors(candidate: Mapping[str, Any], baseline: Mapping[str, Any], *, policy: BaselinePolicy) -> Comparison:
    """Compare error ratios with Fisher's exact test (is the candidate's higher?)."""
    n, m = int(candidate.get("requests") or 0), int(baseline.get("requests") or 0)
    c_fail = int((candidate.get("failures") or {}).get("total") or 0)
    b_fail = int((baseline.get("failures") or {}).get("total") or 0)
    if not n or not m:
        return Comparison("error ratio", INCONCLUSIVE, m, n, words="error ratio: a run without requests")
    c_ratio, b_ratio = c_fail / n, b_fail / m
    p_value = float(stats.fisher_exact([[c_fail, n - c_fail], [b_fail, m - b_fail]], alternative="greater").pvalue)
    increase = c_ratio - b_ratio
    if increase > policy.max_error_ratio_increase:
        finding = SLOWER if p_value < policy.alpha else INCONCLUSIVE
    else:
        finding = UNCHANGED
    words = (
        f"error ratio {'rose' if increase > 0 else 'went'} from {b_ratio * 100:.2f}% to {c_ratio * 100:.2f}% "
        f"({increase * 100:+.2f} points; Fisher's exact {_p_words(p_value)}; {c_fail} of {n} vs {b_fail} of {m})"
    )
    if finding == SLOWER:
        words += f", beyond the tolerance of +{policy.max_error_ratio_increase * 100:.2f} points"
    elif finding == INCONCLUSIVE:
        words += f", beyond the tolerance of +{policy.max_error_ratio_increase * 100:.2f} points but not significant"
    return Comparison(
        "error ratio",
        finding,
        m,
        n,
        baseline_ratio=round(b_ratio, 6),
        candidate_ratio=round(c_ratio, 6),
        p_value=p_value,
        alpha=policy.alpha,
        words=words,
    )


def compare_runs(
    candidate: Mapping[str, Any], baseline: Mapping[str, Any], *, policy: BaselinePolicy
) -> list[Comparison]:
    """Every comparison of a candidate run with its baseline: overall latency, each request kind, errors."""
    metrics: list[tuple[str, Mapping[str, Any], Mapping[str, Any]]] = []
    if candidate.get("histogram") and baseline.get("histogram"):
        metrics.append(("latency of successful requests", candidate["histogram"], baseline["histogram"]))
    base_kinds = baseline.get("kinds") or {}
    for name, kind in sorted((candidate.get("kinds") or {}).items()):
        other = base_kinds.get(name)
        if kind.get("histogram") and other and other.get("histogram"):
            metrics.append((f"latency of {name}", kind["histogram"], other["histogram"]))
    alpha = policy.alpha / max(len(metrics), 1)  # Bonferroni: several looks must not multiply false alarms
    found = [compare_latency(name, cand, base, policy=policy, alpha=alpha) for name, cand, base in metrics]
    return [*found, compare_errors(candidate, baseline, policy=policy)]
