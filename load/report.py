"""What people read: decision.md for the pipeline summary and a short console table."""

from __future__ import annotations

from typing import Any

from load.judge import Decision, fmt_ms, fmt_ratio, fmt_rps

STATUS_MARK = {"pass": "pass", "fail": "FAIL", "inconclusive": "inconclusive"}


def _identity_line(decision: Decision) -> str:
    """What was judged: the model's name and version and the deployment it served from."""
    model, where = decision.model or {}, decision.deployment or {}
    return (
        f"Model `{model.get('name') or '?'}` version `{model.get('version') or '?'}` on "
        f"{where.get('target') or '?'} deployment `{where.get('name') or '?'}` (`{where.get('scoring_uri') or '?'}`)."
    )


def decision_markdown(decision: Decision, *, results_file: str, junit_file: str | None) -> str:
    """decision.md: the verdict, the figures against the SLOs, and the reasons."""
    m = decision.metrics
    lat = m["latency_ms"]
    lines = [
        f"# Release decision: {decision.verdict.upper()}",
        "",
        f"Profile `{decision.profile}`: {m['requests']} requests in {m.get('duration_s') or 0:g} s "
        f"({fmt_rps(m['throughput_rps'])}); results `{results_file}`"
        + (f"; verify `{junit_file}`" if junit_file else ""),
        "",
        _identity_line(decision),
        "",
        "| check | measured | limit | status |",
        "|---|---|---|---|",
    ]
    lines += [f"| {c.name} | {c.measured} | {c.limit} | {STATUS_MARK[c.status]} |" for c in decision.checks]
    lines += [
        "",
        f"Latency of successful requests: p50 {fmt_ms(lat['p50'])} · p95 {fmt_ms(lat['p95'])} · "
        f"p99 {fmt_ms(lat['p99'])} · max {fmt_ms(lat['max'])} (exact, from every request's own timing). "
        f"Error ratio {fmt_ratio(m['error_ratio'])}"
        + (f" ({', '.join(f'{k} {v}' for k, v in m['errors_by_kind'].items())})" if m["errors_by_kind"] else "")
        + ".",
    ]
    if "server_ms" in m:
        lines[-1] += (
            f" The server's own run() time: p50 {fmt_ms(m['server_ms']['p50'])}, p95 {fmt_ms(m['server_ms']['p95'])}."
        )
    if "response_ms" in m:
        lines[-1] += (
            f" Timed from the actual send instead of the intended one (what Locust reports): "
            f"p95 {fmt_ms(m['response_ms']['p95'])}, p99 {fmt_ms(m['response_ms']['p99'])}."
        )
    lines += ["", "## Reasons", ""]
    lines += [f"- {reason}" for reason in decision.reasons] or ["- every check passed"]
    if decision.findings:
        lines += ["", "## Errors by status", ""] + [f"- {finding}" for finding in decision.findings]
    if decision.baseline:
        lines += ["", "## Compared with the baseline", ""]
        lines += [f"- **{c['finding']}**: {c['words']}" for c in decision.baseline]
    if decision.capacity:
        lines += _capacity_markdown(decision.capacity, decision.sizing)
    return "\n".join(lines) + "\n"


def _capacity_markdown(capacity: dict[str, Any], sizing: dict[str, Any] | None) -> list[str]:
    """The capacity search's stages, its knee and the AKS sizing."""
    lines = ["", "## Capacity search", "", "| stage | target | achieved | p95 | error ratio | within SLO |"]
    lines.append("|---|---|---|---|---|---|")
    knee, broken = capacity.get("knee_stage"), capacity.get("broken_stage")
    for row in capacity["stages"]:
        mark = " (knee)" if row["stage"] == knee else ""
        ok = "no" if broken is not None and row["stage"] >= broken else "yes"
        lines.append(
            f"| {row['stage']} | {fmt_rps(row['target_rps'])} | {fmt_rps(row['achieved_rps'])} | "
            f"{fmt_ms(row['p95_ms'])} | {fmt_ratio(row['error_ratio'])} | {ok}{mark} |"
        )
    if capacity.get("knee_rps_per_replica") is not None:
        lines += ["", f"Knee: **{fmt_rps(capacity['knee_rps_per_replica'])} per replica**."]
        if capacity.get("broken_because"):
            lines[-1] += f" The next stage broke the SLO: {'; '.join(capacity['broken_because'])}."
    if capacity.get("note"):
        lines += ["", capacity["note"]]
    if sizing:
        lines += ["", "### AKS sizing", "", "| setting | value |", "|---|---|"]
        lines += [f"| {key} | {value} |" for key, value in sizing.items() if key != "formula"]
        lines += ["", f"`{sizing['formula']}`"]
    return lines


def console_table(decision: Decision) -> str:
    """The verdict and a short aligned table for the terminal."""
    rows = [("check", "measured", "limit", "status")]
    rows += [(c.name, c.measured, c.limit, STATUS_MARK[c.status]) for c in decision.checks]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [f"verdict: {decision.verdict.upper()} (profile {decision.profile})"]
    lines += ["  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines += [f"  - {reason}" for reason in decision.reasons]
    return "\n".join(lines)


def results_summary(results: dict[str, Any]) -> str:
    """A few lines summarising a load run for the console."""
    lat = results["latency_ms"]
    failures = results["failures"]
    kinds = ", ".join(f"{k} {v}" for k, v in failures["by_kind"].items()) or "none"
    locust = results.get("locust") or {}
    lines = [
        f"load: {results['profile']} done: {results['requests']} requests in {results['duration_s']:g} s "
        f"({fmt_rps(results['throughput_rps'])}), failures {failures['total']} ({kinds})",
        f"  exact latency: p50 {fmt_ms(lat.get('p50'))}  p95 {fmt_ms(lat.get('p95'))}  "
        f"p99 {fmt_ms(lat.get('p99'))}  max {fmt_ms(lat.get('max'))}",
    ]
    if locust:
        lines.append(
            f"  Locust's own (rounded): p95 {fmt_ms(locust.get('p95_ms'))}  p99 {fmt_ms(locust.get('p99_ms'))}  "
            f"max {fmt_ms(locust.get('max_ms'))}"
        )
    if results.get("cpu_warning"):
        lines.append("  warning: the load generator hit its CPU warning; timings are not trustworthy")
    if results.get("hit_wall_time_bound"):
        lines.append(f"  warning: the run hit its wall-time bound of {results['wall_time_bound_s']:g} s")
    return "\n".join(lines)
