"""Open-model schedules, per-stage figures, the capacity knee and the AKS sizing derived from it (pure functions).

rows = stage_rows(profile.stages, recorded_stages, schedule=counts)   # figures per stage (results.json "stages")
knee = find_knee(rows, slo)                                     # highest stage that kept the SLO
sizing = size_aks(knee_rps=knee["knee_rps_per_replica"], production=config.production)
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from load.config import MAX_SHORTFALL, Production, Slo, Stage
from load.recorder import ExactStats, decode, summarize

SCHEDULE_LEAD_S = 1.0  # the first scheduled send waits this long, so the pool of users (and workers) is up
LATE_SEND_MS = 10.0  # a send more than 10 ms after its intended time means the pool (or the generator) lagged


class Schedule:
    """Intended send times for this process's share of an open-model schedule.

    Arrival m of a stage with rate r is due at start + m / r; with W processes, process k sends the arrivals
    m = k, k + W, k + 2W, ... so together they send every arrival exactly once, evenly interleaved.
    """

    def __init__(self, stages: Sequence[Stage], *, share: int = 1, index: int = 0) -> None:
        """This process sends arrivals index, index + share, ... of every stage."""
        self.stages = tuple(stages)
        self.share = max(share, 1)
        self.index = index % self.share
        self.t0: float | None = None
        self._arrivals: Iterator[tuple[float, int]] = iter(())

    @property
    def duration_s(self) -> float:
        """Seconds from the first stage's start to the last one's end."""
        return self.stages[-1].end_s if self.stages else 0.0

    def start(self, t0: float) -> None:
        """Begin the schedule at monotonic time t0."""
        self.t0 = t0
        self._arrivals = self._generate(t0)

    def _generate(self, t0: float) -> Iterator[tuple[float, int]]:
        """(due time, stage) of this process's arrivals, in order."""
        for number, stage in enumerate(self.stages):
            if stage.rps <= 0:
                continue
            m = self.index
            while m / stage.rps < stage.duration_s:
                yield t0 + stage.start_s + m / stage.rps, number
                m += self.share

    def claim(self) -> tuple[float, int] | None:
        """The next (intended send time, stage number), or None when the schedule is over."""
        return next(self._arrivals, None)

    def due(self, now: float) -> dict[int, int]:
        """How many of this process's arrivals per stage were due before `now` (what should have been sent)."""
        if self.t0 is None:
            return {}
        counts: dict[int, int] = {}
        for number, stage in enumerate(self.stages):
            elapsed = min(now - self.t0, stage.end_s) - stage.start_s
            if elapsed <= 0 or stage.rps <= 0:
                continue
            total = math.ceil(elapsed * stage.rps - 1e-9)  # arrivals m with m / rps < elapsed
            counts[number] = (total - self.index + self.share - 1) // self.share if total > self.index else 0
        return counts


def _latency(track: Mapping[str, Any] | None) -> dict[str, Any]:
    """Percentiles of a recorded latency track (or empty figures)."""
    if not track or not track.get("exact", {}).get("count"):
        return {"count": 0, "p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    figures = summarize(decode(track["histogram"]), exact=ExactStats(**track["exact"]))
    return {key: figures[key] for key in ("count", "p50", "p95", "p99", "max", "mean")}


def stage_rows(
    stages: Sequence[Stage], recorded: Mapping[str, Any], *, schedule: Mapping[str, int], ran_s: float | None = None
) -> list[dict[str, Any]]:
    """Figures per stage: target vs achieved rate, errors and latency of the requests meant for that stage.

    Stages that had not started when the run ended (`ran_s`) are left out.
    """
    rows = []
    for number, stage in enumerate(stages):
        if ran_s is not None and stage.start_s >= ran_s:
            break
        data = recorded.get(str(number)) or {}
        requests = int(data.get("requests", 0))
        failures = int(data.get("failures", 0))
        # A run stopped early (capacity search) cut its last stage short: judge it on the part that ran.
        duration = min(stage.duration_s, ran_s - stage.start_s) if ran_s is not None else stage.duration_s
        expected = schedule.get(f"scheduled.{number}") or round(stage.rps * duration)
        achieved = requests / duration if duration > 0 else 0.0
        rows.append(
            {
                "stage": number,
                "start_s": stage.start_s,
                "duration_s": round(duration, 3),
                "partial": duration < stage.duration_s,
                "target_rps": stage.rps,
                "scheduled": expected,
                "sent": schedule.get(f"sent.{number}", requests),
                "late": schedule.get(f"late.{number}", 0),
                "requests": requests,
                "failures": failures,
                "errors": dict(data.get("errors", {})),
                "error_ratio": round(failures / requests, 6) if requests else None,
                "achieved_rps": round(achieved, 3),
                "shortfall": round(max(1 - requests / expected, 0.0), 6) if expected else 0.0,
                "latency_ms": _latency(data.get("latency")),
            }
        )
    return rows


def stage_problems(row: Mapping[str, Any], slo: Slo) -> list[str]:
    """Why a stage did not hold its load within the SLO (empty when it did)."""
    problems = []
    p95 = row["latency_ms"]["p95"]
    if p95 is not None and p95 > slo.p95_ms:
        problems.append(f"p95 {p95:g} ms > {slo.p95_ms:g} ms")
    if row["error_ratio"] is not None and row["error_ratio"] > slo.max_error_ratio:
        problems.append(f"error ratio {row['error_ratio'] * 100:.2f}% > {slo.max_error_ratio * 100:.2f}%")
    if row["shortfall"] > MAX_SHORTFALL:
        problems.append(f"achieved {row['achieved_rps']:g} of {row['target_rps']:g} rps")
    if not row["requests"]:
        problems.append("no requests completed")
    return problems


def find_knee(rows: Sequence[Mapping[str, Any]], slo: Slo) -> dict[str, Any]:
    """The highest stage before the first one that broke the SLO: the sustainable throughput of one replica."""
    knee: Mapping[str, Any] | None = None
    broken: Mapping[str, Any] | None = None
    problems: list[str] = []
    for row in rows:
        problems = stage_problems(row, slo)
        if problems:
            broken = row
            break
        knee = row
    return {
        "knee_stage": knee["stage"] if knee else None,
        "knee_rps_per_replica": knee["achieved_rps"] if knee else None,
        "knee_target_rps": knee["target_rps"] if knee else None,
        "knee_samples": knee["latency_ms"]["count"] if knee else 0,
        "knee_latency_ms": dict(knee["latency_ms"]) if knee else None,
        "broken_stage": broken["stage"] if broken else None,
        "broken_target_rps": broken["target_rps"] if broken else None,
        "broken_because": problems if broken else [],
        "search_complete": broken is not None,
    }


def size_aks(*, knee_rps: float, production: Production) -> dict[str, Any]:
    """AKS settings for the production load, from the knee measured on one replica.

    Azure ML's AKS formula: replicas = ceil(target_rps * request_time_s / utilization / max_concurrent), where
    request_time_s is what one concurrent slot spends per request at the knee: max_concurrent / knee_rps.
    """
    concurrent = production.max_concurrent_requests_per_container
    utilization = production.autoscale_target_utilization
    request_time_s = concurrent / knee_rps

    def replicas_for(rps: float) -> int:
        """Replicas for a load by the formula (at least one; exact ratios are not rounded up)."""
        return max(1, math.ceil(rps * request_time_s / utilization / concurrent - 1e-9))

    replicas = replicas_for(production.target_rps)
    peak = max(replicas_for(production.peak_rps), replicas)
    formula = (
        "replicas = ceil(target_rps × request_time_s / autoscale_target_utilization / "
        "max_concurrent_requests_per_container) = "
        f"ceil({production.target_rps:g} × {request_time_s:.6g} / {utilization:g} / {concurrent}) = {replicas}; "
        f"request_time_s = max_concurrent_requests_per_container / knee_rps_per_replica = {concurrent} / {knee_rps:g}; "
        f"autoscale_max_replicas from peak_rps {production.peak_rps:g} the same way = {peak}"
    )
    return {
        "replicas": replicas,
        "autoscale_min_replicas": replicas,
        "autoscale_max_replicas": peak,
        "autoscale_target_utilization": round(utilization * 100),  # AksWebservice wants whole percent
        "cpu_cores": production.cpu_cores,
        "memory_gb": production.memory_gb,
        "max_concurrent_requests_per_container": concurrent,
        "knee_rps_per_replica": knee_rps,
        "target_rps": production.target_rps,
        "formula": formula,
    }
