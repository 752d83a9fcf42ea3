"""report.html renders its plots in headless Chromium, offline, without a console error."""

from __future__ import annotations

import contextlib
import math
import os
import random
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from load.capacity import stage_rows
from load.config import Production, Slo, Stage
from load.html import report_html
from load.judge import judge
from load.recorder import Recorder, histogram_record
from load.runner import series_rows
from tests.fixtures.load_samples import results

CHROMIUM = shutil.which("chromium")
CHROMIUM_TIMEOUT_S = 90  # a cold headless start on a busy 2-core machine takes seconds, not minutes
# Debian's package name; .ci/run installs it. Launch flags keep it offline and away from the user's profile.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]
SLO = Slo(p95_ms=50, max_error_ratio=0.01, min_throughput_rps=1, min_samples=100)


def recorded_run(scale: float, seed: int, *, stages: list[Stage] | None = None) -> dict[str, Any]:
    """A results.json-like run of 30 s with per-second series, raw histograms and (optionally) stages."""
    rng = random.Random(seed)
    recorder = Recorder()
    start = 1_700_000_000.0
    recorder.start(start)
    for i in range(3000):
        at = start + i / 100
        stage = int(i / 100 // 10) if stages else None
        ms = scale * rng.lognormvariate(math.log(8), 0.4) * (1 + (i / 100 // 10) * 0.5 if stages else 1)
        error = "5xx" if i % 400 == 0 else None
        server = ms * 0.6
        recorder.record(
            kind="horizon=1",
            at=at,
            latency_ms=ms,
            error=error,
            status=503 if error else 200,
            server_ms=server,
            response_ms=ms * 0.9,
            stage=stage,
        )
    payload = recorder.payload()
    summary = recorder.latency.summary()
    run = results(
        requests=3000,
        failures={"total": 8, "by_kind": {"5xx": 8}, "by_status": {"503": 8}},
        latency_ms=summary,
        histogram=histogram_record(recorder.latency.histogram),
        server_histogram=histogram_record(recorder.server.histogram),
        series=series_rows(payload, start),
        duration_s=30.0,
        started="2026-12-04T15:00:00+00:00",
    )
    if stages:
        run["stages"] = stage_rows(stages, payload["stages"], schedule={})
        run["settings"] = {"capacity_search": True}
        run["response_histogram"] = histogram_record(recorder.response.histogram)
    return run


def render(tmp_path: Path, page: str) -> tuple[str, str]:
    """(dumped DOM, stderr) of Chromium loading the page from disk; its process group is stopped if it hangs."""
    path = tmp_path / "report.html"
    path.write_text(page)
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    command = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "--dump-dom", path.as_uri()]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=CHROMIUM_TIMEOUT_S)
    finally:
        with contextlib.suppress(ProcessLookupError):  # its helper processes (zygote, GPU) go with it
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == 0, err[-2000:]
    return out, err


def body_attributes(dom: str) -> dict[str, str]:
    tag = re.search(r"<body([^>]*)>", dom)
    assert tag, dom[:500]
    return dict(re.findall(r'([\w-]+)="([^"]*)"', tag.group(1)))


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium package (installed by .ci/run)")
@pytest.mark.slow
def test_report_renders_every_plot_without_console_errors(tmp_path: Path) -> None:
    stages = [Stage(i * 5.0, 5.0, 20.0 * (i + 1)) for i in range(3)]
    candidate, baseline = recorded_run(1.0, 1, stages=stages), recorded_run(0.9, 2, stages=stages)
    decision = judge(candidate, SLO, baseline=baseline, production=Production(), profile="step").to_dict()
    page = report_html(decision=decision, results=candidate, baseline=baseline, slo=SLO)
    dom, err = render(tmp_path, page)
    attributes = body_attributes(dom)
    assert attributes.get("data-rendered") == "true"
    assert attributes.get("data-plots") == "4"
    assert "data-error" not in attributes, attributes.get("data-error")
    console = [line for line in err.splitlines() if ":CONSOLE" in line]
    assert not console, console
    assert dom.count("<path") >= 3 + 4 + 1 + 3  # latency lines, distribution curves, baseline rate, stage lines
    assert dom.count("<rect") > 2 * 30  # per-second bars for answered and failed requests
    assert "SLO p95 50 ms" in dom
    assert "baseline p95" in dom
    assert "AKS sizing" in dom


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium package (installed by .ci/run)")
@pytest.mark.slow
def test_report_without_stages_hides_the_stage_plot(tmp_path: Path) -> None:
    run = recorded_run(1.0, 3)
    decision = judge(run, SLO, profile="steady").to_dict()
    dom, err = render(tmp_path, report_html(decision=decision, results=run, baseline=None, slo=SLO))
    attributes = body_attributes(dom)
    assert (attributes.get("data-rendered"), attributes.get("data-plots")) == ("true", "3")
    assert not [line for line in err.splitlines() if ":CONSOLE" in line]
    assert 'id="stages-figure" style="display: none;"' in dom


def test_report_is_self_contained() -> None:
    run = recorded_run(1.0, 4)
    page = report_html(decision=judge(run, SLO).to_dict(), results=run, baseline=None, slo=SLO)
    assert "Content-Security-Policy" in page and "default-src 'none'" in page  # the browser may fetch nothing
    assert not re.search(r"\b(?:src|href)\s*=", page)
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) <= {"http://www.w3.org/2000/svg"}  # a namespace, not a URL
    assert "</script>" not in page.split('id="report-data">', 1)[1].split("</script>", 1)[0]
