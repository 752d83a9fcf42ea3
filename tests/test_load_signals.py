"""`python -m load run` under a pipeline cancel (SIGTERM) and against a service that echoes the scoring key."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deploy.base import PROJECT_ROOT, Deployment
from load.config import load_config
from load.runner import RunRequest, compose_results
from tests.fixtures.load_server import read_json, run_cli, serve
from tests.fixtures.processes import alive

KEY_ENV = "LOAD_ECHO_SCORING_KEY"
SECRET = "echo-s3cret/never+logged=7c1d"  # '/', '+' and '=' as in real service keys
START_WAIT_S = 60  # Locust imports gevent and starts in a few seconds; a minute means it is wedged
STOP_WAIT_S = 30  # the load stage stops Locust with SIGTERM (5 s grace, then SIGKILL)


def _children(pid: int) -> list[int]:
    """The direct children of a process (Linux /proc)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


@pytest.mark.slow
@pytest.mark.local
def test_sigterm_stops_locust(tmp_path: Path) -> None:
    with serve("load_noop_score.py", tmp_path):
        env = {k: v for k, v in os.environ.items() if k != "TF_BUILD"}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "load",
                "run",
                "--profile",
                "smoke",
                "--run-time",
                "120",
                "--artifacts",
                str(tmp_path),
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        locust: list[int] = []
        try:
            deadline = time.monotonic() + START_WAIT_S
            figures = tmp_path / "load" / "smoke" / "figures.json"
            while not (locust and figures.exists()):  # Locust started and is measuring
                assert time.monotonic() < deadline and proc.poll() is None, "Locust never started"
                locust = _children(proc.pid)
                time.sleep(0.2)
            os.kill(proc.pid, signal.SIGTERM)
            _out, err = proc.communicate(timeout=STOP_WAIT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            survivors = [pid for pid in locust if alive(pid)]
            for pid in survivors:
                os.kill(pid, signal.SIGKILL)
    assert survivors == [], "Locust outlived the cancelled load stage"
    assert proc.returncode == 130
    assert "python -m load run: interrupted" in err


@pytest.mark.slow
@pytest.mark.local
def test_scoring_key_echoed_by_an_error_page_is_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    with serve("load_echo_score.py", tmp_path) as served:
        served.auth, served.key_env = True, KEY_ENV
        served.save(tmp_path / "deployment.json")
        run = run_cli("run", "--profile", "smoke", "--run-time", "3", artifacts=tmp_path)
    assert run.returncode == 0, run.stderr
    results = read_json(tmp_path / "load" / "smoke" / "results.json")
    assert results["failures"]["by_status"] == {"500": results["failures"]["total"]}
    assert results["failures"]["examples"]["5xx"] == "HTTP 500: <html>error; you sent Authorization: Bearer ***</html>"
    judged = run_cli("judge", "--profile", "smoke", artifacts=tmp_path)
    written = [run.stdout, run.stderr, judged.stdout, judged.stderr]
    written += [
        p.read_text() for p in tmp_path.rglob("*") if p.is_file() and p.suffix in {".json", ".md", ".log", ".html"}
    ]
    assert not [text for text in written if SECRET in text], "the scoring key leaked into output or artifacts"


def test_results_scrub_the_key_from_every_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Whatever the Locust side wrote, results.json never carries the key, raw, JSON-escaped or URL-quoted.
    monkeypatch.setenv(KEY_ENV, SECRET)
    config = load_config()
    deployment = Deployment(
        target="local",
        name="t",
        scoring_uri="http://127.0.0.1:9/score",
        health_uri="http://127.0.0.1:9/",
        swagger_uri=None,
        auth=False,  # the key is scrubbed even where the deployment does not send it
        key_env=KEY_ENV,
        model={"name": "m", "version": "v1"},
    )
    request = RunRequest(
        profile=config.profile("smoke"), config=config, deployment_file=tmp_path / "d.json", artifacts=tmp_path
    )
    figures = {
        "errors": {"5xx": 2, "other": 1},
        "examples": {
            "5xx": f"HTTP 500: key {SECRET}",
            "other": 'HTTP 200 without result: {"auth": "Bearer ' + SECRET.replace("/", "\\/") + '"}',
            "4xx": "HTTP 401: /score?key=" + SECRET.replace("/", "%2F").replace("+", "%2B").replace("=", "%3D"),
        },
    }
    results = compose_results(
        request=request, figures=figures, exit_code=0, hit_wall_time_bound=False, bound_s=1.0, deployment=deployment
    )
    assert results["failures"]["examples"] == {
        "5xx": "HTTP 500: key ***",
        "other": 'HTTP 200 without result: {"auth": "Bearer ***"}',
        "4xx": "HTTP 401: /score?key=***",
    }
    assert results["deployment"] == {
        "target": "local",
        "name": "t",
        "scoring_uri": "http://127.0.0.1:9/score",
        "model": {"name": "m", "version": "v1"},
    }
