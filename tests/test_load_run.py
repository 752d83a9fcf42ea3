"""`python -m load run` and `judge` end to end against a real azmlinfsrv on loopback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.base import PROJECT_ROOT
from load.recorder import decode
from tests.fixtures.load_server import LOAD_TIMEOUT_S, free_port, read_json, run_cli, serve

pytestmark = [pytest.mark.slow, pytest.mark.local]

KEY_ENV = "LOAD_IT_SCORING_KEY"
SECRET = "it-s3cret-never-logged-0f9e"


def test_smoke_run_is_consistent_and_promoted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    with serve("load_sleepy_score.py", tmp_path, LOAD_FIXTURE_SLEEP_MS="2", LOAD_FIXTURE_KEY_ENV=KEY_ENV) as served:
        # The service wants a key: the deployment names the variable holding it, as ACI/AKS deployments do.
        served.auth, served.key_env = True, KEY_ENV
        served.save(tmp_path / "deployment.json")
        run = run_cli("run", "--profile", "smoke", "--run-time", "5", artifacts=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"load: profile smoke against {served.scoring_uri} for 5 s")
    results = read_json(tmp_path / "load" / "smoke" / "results.json")

    assert results["profile"] == "smoke"
    assert results["requests"] > 0
    assert results["failures"]["total"] == 0, results["failures"]  # 401s would show up here without the key
    assert results["ok"] == results["requests"]
    lat = results["latency_ms"]
    assert lat["min"] <= lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert lat["p50"] >= 2.0  # the fixture sleeps 2 ms per request
    histogram = decode(results["histogram"]["data"])
    assert histogram.get_total_count() == results["ok"] == lat["count"]
    assert results["histogram"]["unit"] == "us"
    assert abs(histogram.get_value_at_percentile(95) / 1000 - lat["p95"]) <= 0.001 * lat["p95"]
    assert sum(row["requests"] for row in results["series"]) == results["requests"]
    assert results["throughput_rps"] == pytest.approx(results["requests"] / results["duration_s"], rel=1e-3)
    assert set(results["kinds"]) == {"horizon=1", "horizon=12", "horizon=24"}
    assert sum(kind["requests"] for kind in results["kinds"].values()) == results["requests"]
    assert results["server_ms"]["count"] == results["ok"]
    assert 2.0 <= results["server_ms"]["p50"] <= lat["p50"]  # the server's own run() time is part of ours
    assert results["locust"]["requests"] == results["requests"]
    assert results["cpu_warning"] is False
    assert results["hit_wall_time_bound"] is False
    assert results["locust_exit_code"] == 0
    assert results["unfinished"] == 0

    judged = run_cli("judge", "--profile", "smoke", artifacts=tmp_path)
    assert judged.returncode == 0, judged.stdout + judged.stderr
    decision = read_json(tmp_path / "decision.json")
    assert decision["verdict"] == "promote"
    assert decision["reasons"] == []
    assert decision["metrics"]["requests"] == results["requests"]
    assert decision["metrics"]["latency_ms"]["p95"] == lat["p95"]
    assert judged.stdout.startswith("verdict: PROMOTE (profile smoke)")

    written = [run.stdout, run.stderr, judged.stdout, judged.stderr]
    written += [p.read_text() for p in tmp_path.rglob("*") if p.is_file() and p.suffix in {".json", ".md", ".log"}]
    assert not [text for text in written if SECRET in text], "the scoring key leaked into output or artifacts"


def test_failing_service_is_rejected_naming_the_error_ratio(tmp_path: Path) -> None:
    with serve("load_flaky_score.py", tmp_path, LOAD_FIXTURE_FAIL_EVERY="5"):
        run = run_cli("run", "--profile", "smoke", "--run-time", "4", artifacts=tmp_path)
    assert run.returncode == 0, run.stderr
    results = read_json(tmp_path / "load" / "smoke" / "results.json")
    failures = results["failures"]
    assert failures["by_kind"] == {"5xx": failures["total"]}
    assert failures["by_status"] == {"500": failures["total"]}
    assert failures["examples"]["5xx"].startswith("HTTP 500: ")
    assert results["error_ratio"] == pytest.approx(0.2, abs=0.02)  # every 5th request fails

    judged = run_cli("judge", "--profile", "smoke", artifacts=tmp_path)
    assert judged.returncode == 1, judged.stdout + judged.stderr
    decision = read_json(tmp_path / "decision.json")
    assert decision["verdict"] == "reject"
    ratio = f"{results['error_ratio'] * 100:.2f}%"
    assert decision["reasons"][0] == (
        f"error ratio {ratio} ({failures['total']} of {results['requests']} requests failed: "
        f"5xx {failures['total']} (500 ×{failures['total']})) is above the SLO of 1.00%"
    )
    assert f"- error ratio {ratio}" in (tmp_path / "decision.md").read_text()


@pytest.fixture(scope="module")
def sleepy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An artifacts folder whose deployment.json points at a sleepy fixture service (no auth)."""
    artifacts = tmp_path_factory.mktemp("plain-locust")
    with serve("load_sleepy_score.py", artifacts, LOAD_FIXTURE_SLEEP_MS="2"):
        yield artifacts


def locust_env(artifacts: Path) -> dict[str, str]:
    """A user's shell: only RELEASE_ARTIFACTS says where deployment.json is."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LOAD_")}
    env["RELEASE_ARTIFACTS"] = str(artifacts)
    return env


def test_plain_locust_headless_finds_the_deployment(sleepy: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", "load/locustfile.py", "--headless", "-u", "2", "-t", "2s"],
        cwd=PROJECT_ROOT,
        env=locust_env(sleepy),
        capture_output=True,
        text=True,
        timeout=LOAD_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r"exact latency of (\d+) successful requests \(ms\): p50 [\d.]+, p95 [\d.]+", done.stderr)
    assert found and int(found.group(1)) > 0, done.stderr[-2000:]
    assert "errors none" in done.stderr


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())
    except OSError:
        return None


def test_plain_locust_web_ui_swarms_the_deployment(sleepy: Path) -> None:
    port = free_port()
    ui = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            "load/locustfile.py",
            "--web-host",
            "127.0.0.1",
            "--web-port",
            str(port),
        ],
        cwd=PROJECT_ROOT,
        env=locust_env(sleepy),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        page = None
        for _attempt in range(100):  # up to ~20 s for Locust to start serving its UI
            page = _get(ui + "/")
            if page is not None or proc.poll() is not None:
                break
            time.sleep(0.2)
        host = read_json(sleepy / "deployment.json")["scoring_uri"].removesuffix("/score")
        assert page is not None and host in page, "the web UI did not offer the deployment's host"
        form = urllib.parse.urlencode({"user_count": 1, "spawn_rate": 1}).encode()
        with urllib.request.urlopen(urllib.request.Request(ui + "/swarm", data=form), timeout=5) as response:
            assert json.loads(response.read())["success"] is True
        requests = 0
        for _attempt in range(50):  # the stats refresh every couple of seconds
            stats = json.loads(_get(ui + "/stats/requests") or "{}")
            requests = sum(row["num_requests"] for row in stats.get("stats", []) if row["name"] != "Aggregated")
            if requests:
                break
            time.sleep(0.2)
        assert requests > 0
        assert {row["name"] for row in stats["stats"]} >= {"horizon=1", "Aggregated"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


TINY_PROFILES = """
[defaults]
stop_timeout_s = 0
wall_margin_s = 0
[mix.one]
horizon = 1
[profiles.tiny]
users = 1
run_time_s = 1
[profiles.tiny.slo]
p95_ms = 100
max_error_ratio = 0.01
min_throughput_rps = 1
min_samples = 10
"""


def test_overrun_is_stopped_by_pid_and_judged_hold(sleepy: Path, tmp_path: Path) -> None:
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(TINY_PROFILES)  # a 1 s wall-time bound: Locust cannot even finish starting
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    (artifacts / "deployment.json").write_text((sleepy / "deployment.json").read_text())
    env = {"LOAD_PROFILES_FILE": str(profiles)}
    run = run_cli("run", "--profile", "tiny", artifacts=artifacts, env=env)
    assert run.returncode == 0, run.stderr
    assert "overran its wall-time bound of 1 s; stopping pid" in run.stdout
    results = read_json(artifacts / "load" / "tiny" / "results.json")
    assert results["hit_wall_time_bound"] is True
    assert results["wall_time_bound_s"] == 1.0
    assert results["locust_exit_code"] is not None  # it was stopped and reaped, not left running
    judged = run_cli("judge", "--profile", "tiny", artifacts=artifacts, env=env)
    assert judged.returncode == 3, judged.stdout + judged.stderr
    reasons = read_json(artifacts / "decision.json")["reasons"]
    assert "the load run hit its wall-time bound (1 s) and was stopped, so its figures are partial" in reasons
