"""Open-model runs, distributed runs and error kinds, end to end against a real azmlinfsrv on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from load.recorder import Recorder
from tests.fixtures.load_server import read_json, run_cli, serve

pytestmark = [pytest.mark.slow, pytest.mark.local]


def test_rate_run_reports_stalls_that_locust_misses(tmp_path: Path) -> None:
    # The service stalls 600 ms every 4 s. A pool of one user sends 40 requests per second on schedule:
    # requests due during a stall wait, and only ours counts that wait.
    with serve(
        "load_sleepy_score.py",
        tmp_path,
        LOAD_FIXTURE_SLEEP_MS="2",
        LOAD_FIXTURE_STALL_EVERY_S="4",
        LOAD_FIXTURE_STALL_MS="600",
    ):
        run = run_cli("run", "--profile", "rate", "--run-time", "10", "--users", "1", artifacts=tmp_path)
    assert run.returncode == 0, run.stderr
    results = read_json(tmp_path / "load" / "rate" / "results.json")
    assert results["model"] == "open"
    schedule = results["schedule"]
    assert schedule["scheduled"] == 400 and schedule["completed"] == results["requests"]
    assert schedule["shortfall"] <= 0.1
    assert schedule["late"] > 0 and schedule["lag_max_ms"] > 300  # sends waited out the stalls
    assert results["latency_ms"]["p99"] > 300, results["latency_ms"]
    assert results["locust"]["p99_ms"] < 100, results["locust"]  # Locust: at most 3 stalled of 400
    assert results["response_ms"]["p99"] < 100  # ours, timed like Locust's, agrees with it
    assert results["response_ms"]["count"] == results["latency_ms"]["count"]

    judged = run_cli("judge", "--profile", "rate", artifacts=tmp_path)
    assert judged.returncode == 1, judged.stdout
    reasons = read_json(tmp_path / "decision.json")["reasons"]
    assert reasons[0].startswith("p95 latency ") and reasons[0].endswith("is above the SLO of 300 ms"), reasons


def test_two_workers_merge_exactly(tmp_path: Path) -> None:
    reports = tmp_path / "worker-reports"
    with serve("load_sleepy_score.py", tmp_path, LOAD_FIXTURE_SLEEP_MS="2"):
        run = run_cli(
            "run",
            "--profile",
            "rate",
            "--run-time",
            "4",
            "--workers",
            "2",
            artifacts=tmp_path,
            env={"LOAD_WORKER_FIGURES_DIR": str(reports)},
        )
    assert run.returncode == 0, run.stderr
    results = read_json(tmp_path / "load" / "rate" / "results.json")
    assert results["workers"]["complete"] is True
    assert results["workers"]["reported"] == 2
    assert results["schedule"]["scheduled"] == 160 == results["requests"]  # two halves of one 40 rps schedule
    # Everything each worker reported, merged here, gives the master's figures exactly.
    files = sorted(reports.glob("worker-*.json"))
    assert len(files) == 2
    merged = Recorder()
    for path in files:
        merged.merge(read_json(path))
    assert merged.requests == results["requests"]
    assert merged.latency.summary() == results["latency_ms"]
    shares = [read_json(path)["requests"] for path in files]
    assert sorted(shares) == [80, 80]


def test_errors_are_counted_by_kind_and_status(tmp_path: Path) -> None:
    with serve("load_flaky_score.py", tmp_path, LOAD_FIXTURE_FAIL_EVERY="4", LOAD_FIXTURE_FAIL_STATUS="503,504,200"):
        run = run_cli("run", "--profile", "smoke", "--run-time", "3", artifacts=tmp_path)
    assert run.returncode == 0, run.stderr
    failures = read_json(tmp_path / "load" / "smoke" / "results.json")["failures"]
    assert set(failures["by_kind"]) == {"5xx", "non_json"}
    assert set(failures["by_status"]) == {"503", "504"}
    assert failures["by_kind"]["5xx"] == failures["by_status"]["503"] + failures["by_status"]["504"]
    assert failures["examples"]["non_json"] == "HTTP 200 with a non-JSON body: <html><body>upstream error</body></html>"
    judged = run_cli("judge", "--profile", "smoke", artifacts=tmp_path)
    assert judged.returncode == 1
    findings = read_json(tmp_path / "decision.json")["findings"]
    assert [finding.split(":")[0].split(" ×")[0] for finding in findings] == ["HTTP 503", "HTTP 504"]
    assert "queue was full" in findings[0] and "outlived the front end's timeout" in findings[1]
