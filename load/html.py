"""report.html: one self-contained page (no network) with the verdict and its plots, drawn as inline SVG by inline JS.

html = report_html(decision=decision_record, results=results, baseline=None, slo=profile.slo)
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from load.config import Slo
from load.recorder import decode

# Percentiles for the distribution plot, spaced by "nines" (90, 99, 99.9, ...) the way latency tails are read.
SPECTRUM = [0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 97.5, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0]
MAX_NINES = 4.0  # 99.99%: beyond it the x axis would stretch for a handful of samples


def _spectrum(record: Mapping[str, Any] | None) -> list[list[float]]:
    """[[nines, latency ms], ...] of a raw histogram record, for the distribution plot."""
    if not record or not record.get("count"):
        return []
    histogram = decode(record["data"])
    points = []
    for percentile in SPECTRUM:
        nines = MAX_NINES if percentile >= 100 else min(-math.log10(1 - percentile / 100), MAX_NINES)
        value = histogram.get_max_value() if percentile >= 100 else histogram.get_value_at_percentile(percentile)
        points.append([round(nines, 4), round(value / 1000, 3)])
    return points


def _series(results: Mapping[str, Any] | None) -> dict[str, list[list[float | None]]]:
    """Per-second series for the time plots."""
    rows = (results or {}).get("series") or []
    return {
        "p50": [[r["t"], r["latency_ms"]["p50"]] for r in rows],
        "p95": [[r["t"], r["latency_ms"]["p95"]] for r in rows],
        "p99": [[r["t"], r["latency_ms"]["p99"]] for r in rows],
        "ok": [[r["t"], r["requests"] - r["failures"]] for r in rows],
        "failed": [[r["t"], r["failures"]] for r in rows],
        "requests": [[r["t"], r["requests"]] for r in rows],
    }


def _data(
    decision: Mapping[str, Any], results: Mapping[str, Any], baseline: Mapping[str, Any] | None, slo: Slo
) -> dict[str, Any]:
    """Everything the page's script plots."""
    stages = results.get("stages") or []
    return {
        "slo": slo.to_dict(),
        "series": _series(results),
        "baseline_series": _series(baseline) if baseline else None,
        "spectrum": {
            "client latency": _spectrum(results.get("histogram")),
            "server run() time": _spectrum(results.get("server_histogram")),
            "from actual send (Locust's view)": _spectrum(results.get("response_histogram")),
            "baseline": _spectrum(baseline.get("histogram")) if baseline else [],
        },
        "stages": [
            {
                "stage": row["stage"],
                "target": row["target_rps"],
                "achieved": row["achieved_rps"],
                "p95": row["latency_ms"]["p95"],
            }
            for row in stages
        ],
        "knee": (decision.get("capacity") or {}).get("knee_stage"),
    }


def _table(rows: Sequence[Sequence[str]], head: Sequence[str]) -> str:
    """An HTML table with escaped cells."""
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _summary(decision: Mapping[str, Any], results: Mapping[str, Any]) -> str:
    """The verdict, the checks, the reasons and the sizing as static HTML."""
    verdict = str(decision.get("verdict", "?"))
    parts = [
        f'<h1 class="verdict {html.escape(verdict)}">Release decision: {html.escape(verdict.upper())}</h1>',
        f"<p>Profile <code>{html.escape(str(decision.get('profile')))}</code> · {results.get('requests')} requests in "
        f"{results.get('duration_s')} s · started {html.escape(str(results.get('started')))}</p>",
        _table(
            [(c["name"], c["measured"], c["limit"], c["status"]) for c in decision.get("checks", [])],
            ("check", "measured", "limit", "status"),
        ),
        "<h2>Reasons</h2><ul>"
        + ("".join(f"<li>{html.escape(r)}</li>" for r in decision.get("reasons", [])) or "<li>every check passed</li>")
        + "</ul>",
    ]
    if decision.get("findings"):
        parts.append(
            "<h2>Errors by status</h2><ul>"
            + "".join(f"<li>{html.escape(f)}</li>" for f in decision["findings"])
            + "</ul>"
        )
    if decision.get("baseline"):
        items = "".join(
            f"<li><b>{html.escape(c['finding'])}</b>: {html.escape(c['words'])}</li>" for c in decision["baseline"]
        )
        parts.append(f"<h2>Compared with the baseline</h2><ul>{items}</ul>")
    if decision.get("sizing"):
        sizing = decision["sizing"]
        rows = [(key, str(value)) for key, value in sizing.items() if key != "formula"]
        parts.append(
            "<h2>AKS sizing</h2>"
            + _table(rows, ("setting", "value"))
            + f"<p><code>{html.escape(sizing['formula'])}</code></p>"
        )
    return "\n".join(parts)


PAGE_TEMPLATE = Path(__file__).resolve().with_name("report_page.html")  # static HTML/CSS/JS; data is filled in


def report_html(
    *, decision: Mapping[str, Any], results: Mapping[str, Any], baseline: Mapping[str, Any] | None, slo: Slo
) -> str:
    """The whole page: static summary, embedded data, and the script that draws the plots."""
    data = json.dumps(_data(decision, results, baseline, slo)).replace("</", "<\\/")
    return (
        PAGE_TEMPLATE.read_text()
        .replace("{{title}}", html.escape(f"{decision.get('verdict', '?')} · {decision.get('profile')}"))
        .replace("{{summary}}", _summary(decision, results))
        .replace("{{data}}", data)
    )
