"""The deeper judge on real runs: a capacity search ending in an AKS sizing, and baseline comparisons."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.load_samples import SIZING_KEYS
from tests.fixtures.load_server import read_json, run_cli, serve

pytestmark = [pytest.mark.slow, pytest.mark.local]

# A short capacity search against a fixture that spends 10 ms per request (so about 80 rps at most on one
# worker): +20 rps every 2.5 s from 20 rps.
STEP_PROFILES = """
[mix.one]
horizon = 1
[production]
target_rps = 150
peak_rps = 300
[profiles.step]
model = "open"
step = { start_rps = 20, step_rps = 20, step_s = 2.5, max_rps = 200 }
users = 16
capacity_search = true
judge_after_run = true
[profiles.step.slo]
p95_ms = 100
max_error_ratio = 0.01
min_throughput_rps = 0
min_samples = 40
"""


def test_step_run_ends_with_a_sizing(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(STEP_PROFILES)
    env = {"LOAD_PROFILES_FILE": str(profiles)}
    with serve("load_sleepy_score.py", tmp_path, LOAD_FIXTURE_SLEEP_MS="10"):
        run = run_cli("run", "--profile", "step", artifacts=tmp_path, env=env)
    assert run.returncode in (0, 3), run.stdout + run.stderr  # promote, or hold on a knee with few samples
    assert "verdict:" in run.stdout
    decision = read_json(tmp_path / "decision.json")
    capacity = decision["capacity"]
    assert capacity["search_complete"] is True, capacity  # some stage broke the SLO...
    knee = capacity["knee_rps_per_replica"]
    assert 20 <= knee < 100, capacity  # ...after at least the first one held (one 10 ms worker: ~80 rps at most)
    assert capacity["broken_stage"] == capacity["knee_stage"] + 1
    results = read_json(tmp_path / "load" / "step" / "results.json")
    assert results["stopped_early"].startswith(f"stage {capacity['broken_stage']} ")
    assert len(results["stages"]) < 10  # it stopped instead of running every stage
    sizing = decision["sizing"]
    assert set(sizing) == SIZING_KEYS
    assert sizing["knee_rps_per_replica"] == knee
    assert sizing["replicas"] >= 150 / knee / 0.7  # the formula at the 150 rps production target
    assert sizing["autoscale_max_replicas"] >= sizing["replicas"]
    markdown = (tmp_path / "decision.md").read_text()
    assert "### AKS sizing" in markdown and f"| replicas | {sizing['replicas']} |" in markdown
    assert (tmp_path / "report.html").read_text().count("plot-stages") >= 1


# 40 requests per second for 5 s against a 10 ms service (about half its capacity); 150 samples suffice.
RATE_PROFILES = """
[mix.one]
horizon = 1
[profiles.rate]
model = "open"
rate_rps = 40
run_time_s = 5
users = 4
[profiles.rate.slo]
p95_ms = 300
max_error_ratio = 0.01
min_throughput_rps = 30
min_samples = 150
"""


def test_baseline_comparisons_on_real_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(RATE_PROFILES)
    monkeypatch.setenv("LOAD_PROFILES_FILE", str(profiles))
    base, same, slow, short = (tmp_path / name for name in ("base", "same", "slow", "short"))
    with serve("load_sleepy_score.py", tmp_path / "fast", LOAD_FIXTURE_SLEEP_MS="10"):
        for artifacts in (base, same, short):
            artifacts.mkdir()
            (artifacts / "deployment.json").write_text((tmp_path / "fast" / "deployment.json").read_text())
        assert run_cli("run", "--profile", "rate", artifacts=base).returncode == 0
        assert run_cli("run", "--profile", "rate", artifacts=same).returncode == 0
        assert run_cli("run", "--profile", "rate", "--run-time", "0.5", artifacts=short).returncode == 0
    with serve("load_sleepy_score.py", slow, LOAD_FIXTURE_SLEEP_MS="10", LOAD_FIXTURE_SLOWDOWN="1.5"):
        assert run_cli("run", "--profile", "rate", artifacts=slow).returncode == 0
    baseline = str(base / "load" / "rate" / "results.json")

    judged = run_cli("judge", "--profile", "rate", "--baseline", baseline, artifacts=slow)
    assert judged.returncode == 1, judged.stdout
    reasons = read_json(slow / "decision.json")["reasons"]
    assert reasons[0].startswith("latency of successful requests is "), reasons  # the only failed check
    assert "% slower than the baseline: median " in reasons[0] and "beyond the tolerance" in reasons[0]

    judged = run_cli("judge", "--profile", "rate", "--baseline", baseline, artifacts=same)
    assert judged.returncode == 0, judged.stdout
    decision = read_json(same / "decision.json")
    assert decision["verdict"] == "promote"
    assert decision["baseline"][0]["finding"] == "unchanged"
    assert decision["baseline_file"] == baseline

    judged = run_cli("judge", "--profile", "rate", "--baseline", baseline, artifacts=short)
    assert judged.returncode == 3, judged.stdout
    reasons = read_json(short / "decision.json")["reasons"]
    assert any(r.startswith("too few samples: ") for r in reasons), reasons
