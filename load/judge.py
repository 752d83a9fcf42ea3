"""The promotion judge: load results + SLOs (+ verify results, + a baseline) -> promote, hold or reject, with reasons.

    decision = judge(results, profile.slo, verify=read_junit(path))           # pure: no clock, no I/O
    decision = judge(results, slo, baseline=base_results, policy=config.baseline)
    decision.verdict  # "promote" | "hold" | "reject"

Rules: any SLO breach, failed verify scenario, or clear regression against the baseline rejects; a measurement
that cannot be trusted holds (too few samples for the percentile, the generator's CPU warning, an open-model
run that sent over 10% less than scheduled, the wall-time bound hit, errors that could not be classified, a
master that did not hear from every worker, no requests, a regression beyond tolerance that is not yet
significant); otherwise promote. A capacity search (`step`) is judged by its knee and ends with an AKS sizing.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from load.capacity import find_knee, size_aks
from load.classify import OTHER
from load.compare import INCONCLUSIVE as CMP_INCONCLUSIVE
from load.compare import SLOWER, compare_runs
from load.config import MAX_SHORTFALL, MIN_TAIL_SAMPLES, BaselinePolicy, Production, Slo, UsageError
from load.recorder import decode

PROMOTE, HOLD, REJECT = "promote", "hold", "reject"
EXIT_CODES = {PROMOTE: 0, REJECT: 1, HOLD: 3}
PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
AUTH_MARK = "auth"  # verify scenarios with this in their name or class skip where the deployment has no auth
# What an HTTP status tells a release engineer, and what to try (Azure ML front ends answer 503 when a
# replica's queue is full and 504 when a request outlives the scoring timeout).
STATUS_MEANING = {
    "400": "bad request: the service refused the input",
    "401": "unauthorized: the key was refused",
    "403": "forbidden: the key was refused",
    "404": "not found: wrong scoring path",
    "408": "request timeout",
    "413": "payload too large",
    "429": "throttled: too many requests",
    "500": "internal error: the scoring script failed (see the server log)",
    "502": "bad gateway: a front end got no valid answer from the container",
    "503": "service unavailable: the queue was full or the service was not ready (add replicas or concurrency)",
    "504": "gateway timeout: a request outlived the front end's timeout (slow requests, or a stalled service)",
}


@dataclass(frozen=True)
class VerifySummary:
    """What the verify stage's JUnit XML says."""

    path: str
    tests: int
    failures: int
    errors: int
    skipped: int
    failed: tuple[str, ...] = ()
    skipped_names: tuple[str, ...] = ()  # "classname.name" of each skipped testcase

    @property
    def passed(self) -> int:
        """Scenarios that ran and passed."""
        return max(self.tests - self.broken - self.skipped, 0)

    @property
    def skipped_not_auth(self) -> tuple[str, ...]:
        """Skipped scenarios other than auth ones (those legitimately skip where auth is off)."""
        return tuple(name for name in self.skipped_names if AUTH_MARK not in name.lower())

    @property
    def broken(self) -> int:
        """Scenarios that failed or errored."""
        return self.failures + self.errors


@dataclass(frozen=True)
class Check:
    """One line of the decision table: what was measured against which limit."""

    name: str
    measured: str
    limit: str
    status: str


@dataclass
class Decision:
    """The verdict with its reasons, figures and the SLOs applied."""

    verdict: str
    reasons: list[str]
    metrics: dict[str, Any]
    slos: dict[str, Any]
    profile: str
    checks: list[Check] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    baseline: list[dict[str, Any]] | None = None
    capacity: dict[str, Any] | None = None
    sizing: dict[str, Any] | None = None
    model: dict[str, Any] | None = None  # {name, version} of the model the load ran against
    deployment: dict[str, Any] | None = None  # {target, name, scoring_uri} of the deployment the load ran against

    @property
    def exit_code(self) -> int:
        """0 promote, 1 reject, 3 hold."""
        return EXIT_CODES[self.verdict]

    def to_dict(self) -> dict[str, Any]:
        """decision.json's content (the caller adds where and when); `sizing` only when a knee gave one."""
        record: dict[str, Any] = {
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "metrics": self.metrics,
            "slos": self.slos,
            "profile": self.profile,
            "model": self.model,
            "deployment": self.deployment,
            "checks": [asdict(check) for check in self.checks],
            "findings": list(self.findings),
        }
        if self.baseline is not None:
            record["baseline"] = self.baseline
        if self.capacity is not None:
            record["capacity"] = self.capacity
        if self.sizing is not None:
            record["sizing"] = self.sizing
        return record


def fmt_ms(value: float | None) -> str:
    """A latency for people: 3 significant figures, never scientific notation."""
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:.0f} ms"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def fmt_ratio(value: float | None) -> str:
    """An error ratio as a percentage."""
    return "-" if value is None else f"{value * 100:.2f}%"


def fmt_rps(value: float | None) -> str:
    """A throughput."""
    return "-" if value is None else f"{value:.1f} rps"


class _Tally:
    """The checks made so far, and the reasons that reject or hold."""

    def __init__(self) -> None:
        """Nothing checked yet."""
        self.checks: list[Check] = []
        self.rejects: list[str] = []
        self.holds: list[str] = []

    def add(self, name: str, measured: str, limit: str, status: str, reason: str | None = None) -> None:
        """A check; a reason on a FAIL rejects, on an INCONCLUSIVE holds (every INCONCLUSIVE holds)."""
        self.checks.append(Check(name, measured, limit, status))
        if status == INCONCLUSIVE and not reason:
            reason = f"{name}: not measured ({measured}), so it cannot be checked against {limit}"
        if reason:
            (self.rejects if status == FAIL else self.holds).append(reason)

    @property
    def verdict(self) -> str:
        """Reject if anything rejects, else hold if anything holds, else promote."""
        return REJECT if self.rejects else HOLD if self.holds else PROMOTE


def _metrics(results: Mapping[str, Any]) -> dict[str, Any]:
    """The figures decision.json carries, from results.json."""
    requests = int(results.get("requests") or 0)
    failures = results.get("failures") or {}
    failed = int(failures.get("total") or 0)
    latency = results.get("latency_ms") or {}
    rate = results.get("throughput_rps")
    ok_rate = results.get("ok_throughput_rps")
    if ok_rate is None and rate is not None:  # older results files: the successful share of the request rate
        ok_rate = round(rate * (requests - failed) / requests, 3) if requests else 0.0
    metrics = {
        "requests": requests,
        "ok": requests - failed,
        "failures": failed,
        "error_ratio": round(failed / requests, 6) if requests else None,
        "throughput_rps": ok_rate,  # successful requests per second: what the SLO's throughput means
        "request_rate_rps": rate,  # every request, failed ones included
        "duration_s": results.get("duration_s"),
        "latency_ms": {key: latency.get(key) for key in ("p50", "p95", "p99", "max")},
        "errors_by_kind": dict(failures.get("by_kind") or {}),
        "errors_by_status": dict(failures.get("by_status") or {}),
    }
    if results.get("server_ms", {}).get("count"):
        server = results["server_ms"]
        metrics["server_ms"] = {key: server.get(key) for key in ("p50", "p95", "p99", "max")}
    if results.get("response_ms", {}).get("count"):
        response = results["response_ms"]
        metrics["response_ms"] = {key: response.get(key) for key in ("p50", "p95", "p99", "max")}
    return metrics


def _error_words(metrics: Mapping[str, Any]) -> str:
    """'5xx 12 (503 ×10, 504 ×2), timeout 3' — the kinds (and statuses) behind an error ratio."""
    statuses = metrics["errors_by_status"]
    parts = []
    for kind, count in sorted(metrics["errors_by_kind"].items(), key=lambda kv: -kv[1]):
        codes = [f"{code} ×{n}" for code, n in sorted(statuses.items()) if code[:1] == kind[:1] and kind[1:] == "xx"]
        parts.append(f"{kind} {count}" + (f" ({', '.join(codes)})" if codes else ""))
    return ", ".join(parts)


def _findings(metrics: Mapping[str, Any]) -> list[str]:
    """One sentence per HTTP status seen among the failures: 503 (queue) and 504 (timeout) are different stories."""
    return [
        f"HTTP {code} ×{count}: {STATUS_MEANING.get(code, 'unexpected status')}"
        for code, count in sorted(metrics["errors_by_status"].items())
        if code != "0"
    ]


def _slo_checks(tally: _Tally, metrics: Mapping[str, Any], slo: Slo) -> None:
    """Latency, error ratio, throughput and sample count against the profile's SLOs."""
    requests, ok = metrics["requests"], metrics["ok"]
    ratio, rps = metrics["error_ratio"], metrics["throughput_rps"]
    for name, value, limit in (
        ("p95", metrics["latency_ms"]["p95"], slo.p95_ms),
        ("p99", metrics["latency_ms"]["p99"], slo.p99_ms),
    ):
        if limit is None:
            continue
        breach = value is not None and value > limit
        tally.add(
            f"{name} latency",
            fmt_ms(value),
            f"<= {fmt_ms(limit)}",
            FAIL if breach else (PASS if value is not None else INCONCLUSIVE),
            f"{name} latency {fmt_ms(value)} is above the SLO of {fmt_ms(limit)}" if breach else None,
        )
    breach = ratio is not None and ratio > slo.max_error_ratio
    words = (
        f"error ratio {fmt_ratio(ratio)} ({metrics['failures']} of {requests} requests failed: "
        f"{_error_words(metrics)}) is above the SLO of {fmt_ratio(slo.max_error_ratio)}"
    )
    tally.add(
        "error ratio",
        fmt_ratio(ratio),
        f"<= {fmt_ratio(slo.max_error_ratio)}",
        FAIL if breach else PASS,
        words if breach else None,
    )
    breach = rps is None or rps < slo.min_throughput_rps
    words = f"throughput of successful requests {fmt_rps(rps)} is below the SLO of {fmt_rps(slo.min_throughput_rps)}"
    tally.add(
        "throughput",
        fmt_rps(rps),
        f">= {fmt_rps(slo.min_throughput_rps)}",
        FAIL if breach else PASS,
        words if breach else None,
    )
    needed = slo.required_samples()
    short = ok < needed
    words = (
        f"too few samples: {ok} successful requests, but the percentiles need at least {needed} "
        f"(min_samples, and {MIN_TAIL_SAMPLES} beyond the highest percentile checked); run longer"
    )
    tally.add("samples", str(ok), f">= {needed}", INCONCLUSIVE if short else PASS, words if short else None)


def _shortfall_check(tally: _Tally, results: Mapping[str, Any]) -> None:
    """An open-model run must have sent what it scheduled, or it did not apply the load it claims."""
    schedule = results.get("schedule") or {}
    shortfall = schedule.get("shortfall")
    if shortfall is None:
        return
    short = shortfall > MAX_SHORTFALL
    words = (
        f"the load fell {shortfall * 100:.1f}% short of its schedule ({schedule.get('completed')} of "
        f"{schedule.get('scheduled')} scheduled requests completed, target {schedule.get('target_rps')} rps), "
        f"more than {MAX_SHORTFALL * 100:.0f}%: the intended load was not applied; raise --users or add --workers"
    )
    tally.add(
        "achieved rate",
        f"{(1 - shortfall) * 100:.1f}% of schedule",
        f">= {(1 - MAX_SHORTFALL) * 100:.0f}%",
        INCONCLUSIVE if short else PASS,
        words if short else None,
    )


def _trust_checks(tally: _Tally, results: Mapping[str, Any], metrics: Mapping[str, Any]) -> None:
    """Holds for measurements that cannot be trusted."""
    if results.get("cpu_warning"):
        tally.add(
            "load generator CPU",
            "above 90%",
            "below 90%",
            INCONCLUSIVE,
            "the load generator hit its CPU warning (above 90%), so its timings are not trustworthy; "
            "run with --workers or on a larger agent",
        )
    if results.get("hit_wall_time_bound"):
        bound = results.get("wall_time_bound_s")
        bound_text = f"{bound:g} s" if isinstance(bound, int | float) else "its limit"
        tally.add(
            "wall time",
            "bound hit",
            f"<= {bound_text}",
            INCONCLUSIVE,
            f"the load run hit its wall-time bound ({bound_text}) and was stopped, so its figures are partial",
        )
    unknown = metrics["errors_by_kind"].get(OTHER, 0)
    if unknown:
        example = (results.get("failures") or {}).get("examples", {}).get(OTHER, "")
        tally.add(
            "error kinds",
            f"{unknown} unclassified",
            "all classified",
            INCONCLUSIVE,
            f"{unknown} errors could not be classified (e.g. {example!r}); read the Locust log before deciding",
        )
    workers = results.get("workers")
    if workers and not workers.get("complete"):
        tally.add(
            "workers",
            f"{workers.get('reported')} of {workers.get('expected')} reported",
            "all",
            INCONCLUSIVE,
            f"the master's merged figures are incomplete: {workers.get('reported')} of "
            f"{workers.get('expected')} workers reported; rerun",
        )


def _first_names(names: tuple[str, ...]) -> str:
    """' (a, b, c, …)' — the first few names of a list, or nothing."""
    return f" ({', '.join(names[:3])}{', …' if len(names) > 3 else ''})" if names else ""


def _verify_check(tally: _Tally, verify: VerifySummary | None, *, required: bool) -> None:
    """Failed verify scenarios reject; no verify evidence (none passed, non-auth skips, no file when required) holds."""
    if verify is None:
        if required:
            tally.add(
                "verify scenarios",
                "no JUnit file",
                "all pass",
                INCONCLUSIVE,
                "no verify evidence: the verify stage wrote no JUnit file; rerun verify before judging",
            )
        return
    broken = verify.broken
    measured = (
        f"{verify.passed} passed"
        + (f", {verify.skipped} skipped" if verify.skipped else "")
        + (f", {broken} failed" if broken else "")
    )
    if broken:
        reason = f"verify: {broken} of {verify.tests} scenarios failed{_first_names(verify.failed)}"
        tally.add("verify scenarios", measured, "all pass", FAIL, reason)
    elif verify.passed == 0:
        reason = f"no verify evidence: 0 of {verify.tests} verify scenarios passed ({verify.skipped} skipped)"
        tally.add("verify scenarios", measured, "all pass", INCONCLUSIVE, reason)
    elif verify.skipped_not_auth:
        skipped = verify.skipped_not_auth
        reason = (
            f"verify: {len(skipped)} non-auth scenarios were skipped{_first_names(skipped)}; "
            "only auth scenarios may skip"
        )
        tally.add("verify scenarios", measured, "all pass", INCONCLUSIVE, reason)
    else:
        tally.add("verify scenarios", measured, "all pass", PASS)


def _capacity_checks(
    tally: _Tally, results: Mapping[str, Any], slo: Slo, production: Production
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A capacity search: the knee (highest stage that kept the SLO) and the AKS sizing derived from it."""
    rows = results.get("stages") or []
    knee = find_knee(rows, slo)
    capacity = {**knee, "stages": [_stage_summary(row) for row in rows]}
    if knee["knee_rps_per_replica"] is None:
        first = rows[0]["target_rps"] if rows else None
        tally.add(
            "capacity knee",
            "none",
            "a stage within the SLO",
            INCONCLUSIVE,
            f"capacity: even the first stage ({first} rps) broke the SLO ({'; '.join(knee['broken_because'])}); "
            "start the step profile lower",
        )
        return capacity, None
    rps = knee["knee_rps_per_replica"]
    tally.add("capacity knee", fmt_rps(rps), "found", PASS)
    needed = slo.required_samples()
    if knee["knee_samples"] < needed:
        tally.add(
            "knee samples",
            str(knee["knee_samples"]),
            f">= {needed}",
            INCONCLUSIVE,
            f"the knee stage has {knee['knee_samples']} successful requests, fewer than the {needed} its p95 "
            "needs; lengthen step_s",
        )
    if not knee["search_complete"]:
        capacity["note"] = f"the search ended before any stage broke the SLO: capacity is at least {rps:g} rps"
    sizing = size_aks(knee_rps=rps, production=production)
    too_many = sizing["autoscale_max_replicas"] > production.max_replicas
    tally.add(
        "replicas for the peak",
        str(sizing["autoscale_max_replicas"]),
        f"<= {production.max_replicas}",
        FAIL if too_many else PASS,
        f"the production peak of {production.peak_rps:g} rps needs {sizing['autoscale_max_replicas']} replicas at "
        f"{rps:g} rps each, more than the allowed {production.max_replicas}"
        if too_many
        else None,
    )
    return capacity, sizing


def _stage_summary(row: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of one stage that decision.json keeps."""
    keys = ("stage", "target_rps", "achieved_rps", "requests", "failures", "error_ratio", "shortfall")
    return {key: row.get(key) for key in keys} | {"p95_ms": row["latency_ms"]["p95"]}


def _baseline_checks(
    tally: _Tally, results: Mapping[str, Any], baseline: Mapping[str, Any], policy: BaselinePolicy
) -> list[dict[str, Any]]:
    """Candidate vs baseline: a clear regression rejects; a regression that is not yet significant holds."""
    comparisons = compare_runs(results, baseline, policy=policy)
    for comparison in comparisons:
        if comparison.finding == SLOWER:
            tally.add(
                f"vs baseline: {comparison.metric}", comparison.finding, "unchanged or better", FAIL, comparison.words
            )
        elif comparison.finding == CMP_INCONCLUSIVE:
            tally.add(
                f"vs baseline: {comparison.metric}",
                comparison.finding,
                "unchanged or better",
                INCONCLUSIVE,
                comparison.words,
            )
        else:
            tally.add(f"vs baseline: {comparison.metric}", comparison.finding, "unchanged or better", PASS)
    return [comparison.to_dict() for comparison in comparisons]


def judge(
    results: Mapping[str, Any],
    slo: Slo,
    *,
    verify: VerifySummary | None = None,
    baseline: Mapping[str, Any] | None = None,
    policy: BaselinePolicy | None = None,
    production: Production | None = None,
    profile: str | None = None,
    verify_required: bool = False,
    deployment: Mapping[str, Any] | None = None,
) -> Decision:
    """Decide promote / hold / reject from one profile's load results and its SLOs (pure function)."""
    metrics = _metrics(results)
    tally = _Tally()
    capacity = sizing = None
    capacity_search = bool((results.get("settings") or {}).get("capacity_search"))
    if metrics["requests"] == 0:
        tally.add("requests", "0", "> 0", INCONCLUSIVE, "no requests completed, so there is nothing to judge")
    elif capacity_search:
        capacity, sizing = _capacity_checks(tally, results, slo, production or Production())
    else:
        _slo_checks(tally, metrics, slo)
        _shortfall_check(tally, results)
    _trust_checks(tally, results, metrics)
    _verify_check(tally, verify, required=verify_required)
    comparisons = None
    if baseline is not None and metrics["requests"]:
        comparisons = _baseline_checks(tally, results, baseline, policy or BaselinePolicy())
    return Decision(
        verdict=tally.verdict,
        reasons=tally.rejects + tally.holds,
        metrics=metrics,
        slos=slo.to_dict() | {"required_samples": slo.required_samples()},
        profile=profile or str(results.get("profile") or ""),
        checks=tally.checks,
        findings=_findings(metrics),
        baseline=comparisons,
        capacity=capacity,
        sizing=sizing,
        **_identity(results, deployment),
    )


def _identity(results: Mapping[str, Any], deployment: Mapping[str, Any] | None) -> dict[str, Any]:
    """{model: {name, version}, deployment: {target, name, scoring_uri}} judged: the run's own, else the given."""
    source = results.get("deployment") or deployment
    if not isinstance(source, Mapping):
        return {"model": None, "deployment": None}
    model = source.get("model")
    return {
        "model": {key: model.get(key) for key in ("name", "version")} if isinstance(model, Mapping) else None,
        "deployment": {key: source.get(key) for key in ("target", "name", "scoring_uri")},
    }


def read_junit(path: Path) -> VerifySummary:
    """Totals of a JUnit XML file (pytest's or any other); a broken file is a usage error naming it."""
    try:
        root = ElementTree.parse(path).getroot()
    except FileNotFoundError:
        raise UsageError(f"{path}: no JUnit file; run the verify stage first or drop --junit") from None
    except (OSError, ElementTree.ParseError) as exc:
        raise UsageError(f"{path}: not readable JUnit XML ({exc}); rerun the verify stage") from None
    if root.tag not in ("testsuite", "testsuites"):
        raise UsageError(f"{path}: root element <{root.tag}> is not <testsuites> or <testsuite>; rerun verify")
    suites = [root] if root.tag == "testsuite" else root.findall(".//testsuite")
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    failed: list[str] = []
    skipped: list[str] = []
    for suite in suites:
        for key in totals:
            try:
                totals[key] += int(suite.get(key, "0") or 0)
            except ValueError:
                raise UsageError(f"{path}: <testsuite {key}={suite.get(key)!r}> is not a number") from None
        for case in suite.iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failed.append(case.get("name", "?"))
            elif case.find("skipped") is not None:
                skipped.append(f"{case.get('classname', '')}.{case.get('name', '?')}".lstrip("."))
    return VerifySummary(path=str(path), failed=tuple(failed), skipped_names=tuple(skipped), **totals)


def _is_number(value: Any) -> bool:
    """A finite int or float, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_histogram(record: Any, where: str) -> None:
    """An HDR histogram record ({data: base64, ...}) that decodes, or None."""
    if record is None:
        return
    if not isinstance(record, Mapping) or not isinstance(record.get("data"), str):
        raise UsageError(f"{where}: expected a histogram record with a base64 'data' string")
    try:
        decode(record["data"])
    except Exception:  # hdrh raises binascii, zlib and struct errors alike for a bad encoding
        raise UsageError(f"{where}.data: not an encoded HDR histogram") from None


def validate_results(data: Mapping[str, Any], *, source: str, baseline: bool = False) -> None:
    """A results.json's structure, or a UsageError naming the file and the field (the judge then never crashes)."""

    def bad(field_name: str, expected: str) -> UsageError:
        return UsageError(f"{source}: field {field_name!r} {expected}; rerun `python -m load run`")

    def count(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    if not count(data.get("requests")):
        raise bad("requests", "must be a whole number >= 0")
    failures = data.get("failures")
    if not isinstance(failures, Mapping):
        raise bad("failures", "must be an object")
    if not count(failures.get("total", 0)) or failures.get("total", 0) > data["requests"]:
        raise bad("failures.total", "must be a whole number between 0 and requests")
    for key in ("by_kind", "by_status"):
        table = failures.get(key) or {}
        if not isinstance(table, Mapping) or not all(count(v) for v in table.values()):
            raise bad(f"failures.{key}", "must map names to whole numbers >= 0")
    examples = failures.get("examples") or {}
    if not isinstance(examples, Mapping) or not all(isinstance(v, str) for v in examples.values()):
        raise bad("failures.examples", "must map error kinds to strings")
    for key in ("latency_ms", "server_ms", "response_ms"):
        figures = data.get(key)
        if figures is None:
            continue
        if not isinstance(figures, Mapping) or not all(v is None or _is_number(v) for v in figures.values()):
            raise bad(key, "must be an object of finite numbers (or null)")
    for key in ("throughput_rps", "ok_throughput_rps", "duration_s"):
        value = data.get(key)
        if value is not None and not (_is_number(value) and value >= 0):
            raise bad(key, "must be a finite number >= 0")
    for key in ("histogram", "server_histogram", "response_histogram"):
        _check_histogram(data.get(key), f"{source}: field {key!r}")
    kinds = data.get("kinds") or {}
    if not isinstance(kinds, Mapping):
        raise bad("kinds", "must be an object")
    for name, kind in kinds.items():
        if not isinstance(kind, Mapping) or not count(kind.get("requests")) or not count(kind.get("failures")):
            raise bad(f"kinds.{name}", "must have whole-number requests and failures")
        _check_histogram(kind.get("histogram"), f"{source}: field 'kinds.{name}.histogram'")
    series = data.get("series") or []
    if not isinstance(series, list) or not all(
        isinstance(row, Mapping)
        and _is_number(row.get("t"))
        and all(count(row.get(key)) for key in ("requests", "failures"))
        and isinstance(row.get("latency_ms", {}), Mapping)
        for row in series
    ):
        raise bad("series", "must be a list of {t, requests, failures, latency_ms} rows")
    stages = data.get("stages") or []
    if not isinstance(stages, list) or not all(
        isinstance(row, Mapping)
        and all(_is_number(row.get(key)) for key in ("target_rps", "achieved_rps"))
        and count(row.get("requests"))
        and isinstance(row.get("latency_ms"), Mapping)
        for row in stages
    ):
        raise bad("stages", "must be a list of {target_rps, achieved_rps, requests, latency_ms, ...} rows")
    for key in ("schedule", "workers", "settings"):
        if data.get(key) is not None and not isinstance(data[key], Mapping):
            raise bad(key, "must be an object")
    ok = data["requests"] - failures.get("total", 0)
    if baseline and ok and not data.get("histogram"):
        raise bad("histogram", "is missing, so latency cannot be compared with this baseline; use a full results file")
