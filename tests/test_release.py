"""`python -m release`: the profile is checked first, a failed load stage holds, SIGTERM still tears down."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deploy.base import PROJECT_ROOT
from tests.fixtures.load_samples import results
from tests.fixtures.load_server import LOAD_TIMEOUT_S, serve
from tests.fixtures.processes import alive

STOP_WAIT_S = 60  # the stub stages are instant; only a wedged release would take this long to unwind
PASS_STAGE = ["-c", "pass"]


def _release(
    *args: str, artifacts: Path, stubs: dict[str, list[str]], env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """The release flow (some stages stubbed) as a process of its own, started from the project root."""
    full_env = {k: v for k, v in os.environ.items() if k != "TF_BUILD"}
    full_env.update(LOAD_STUB_STAGES=json.dumps(stubs), RELEASE_ARTIFACTS=str(artifacts), **(env or {}))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.fixtures.load_release_stub", *args, "--artifacts", str(artifacts)],
        cwd=PROJECT_ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_unknown_profile_is_a_usage_error_before_any_stage(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "release", "--profile", "nosuch", "--artifacts", str(tmp_path / "a")],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=LOAD_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 2
    assert "=== build" not in done.stdout  # nothing was built, deployed or verified
    assert len(done.stderr.strip().splitlines()) == 1
    assert "'nosuch' is not in" in done.stderr and "choose one of" in done.stderr
    assert not (tmp_path / "a" / "model").exists()


@pytest.mark.slow
@pytest.mark.local
def test_failed_load_stage_holds_instead_of_judging_the_previous_results(tmp_path: Path) -> None:
    stale = tmp_path / "load" / "smoke" / "results.json"
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps(results(profile="smoke")))  # a previous run's healthy, promotable figures
    (tmp_path / "verify-junit.xml").write_text(
        '<testsuite tests="1" failures="0" errors="0" skipped="0"><testcase classname="steps.t" name="ok"/></testsuite>'
    )
    with serve("load_noop_score.py", tmp_path):
        stubs = {name: PASS_STAGE for name in ("build", "deploy", "verify", "teardown")}
        proc = _release("--profile", "smoke", artifacts=tmp_path, stubs=stubs, env={"LOCUST_SPAWN_RATE": "notanumber"})
        out, err = proc.communicate(timeout=LOAD_TIMEOUT_S)
    assert proc.returncode == 3, out + err
    assert "Locust exited with code 2 before measuring anything" in err
    assert "no load evidence to judge: hold" in err
    assert "=== judge" not in out  # the judge never saw the stale figures
    assert "=== teardown" in out
    assert not stale.exists()  # `load run` removed the previous results before running
    assert not (tmp_path / "decision.json").exists()
    assert out.rstrip().endswith("verdict: hold")


def test_sigterm_stops_the_running_stage_and_still_tears_down(tmp_path: Path) -> None:
    pid_file, down_file = tmp_path / "verify.pid", tmp_path / "down"
    stubs = {
        "build": PASS_STAGE,
        "deploy": PASS_STAGE,
        # A verify stage that would run for a minute: the cancel must end it, not wait for it.
        "verify": ["-c", f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"],
        "teardown": ["-c", f"open({str(down_file)!r}, 'w').write('down')"],
    }
    proc = _release("--profile", "smoke", artifacts=tmp_path, stubs=stubs)
    try:
        deadline = time.monotonic() + STOP_WAIT_S
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline and proc.poll() is None, "the verify stand-in never started"
            time.sleep(0.1)
        verify_pid = int(pid_file.read_text())
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=STOP_WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, out + err
    assert "release: interrupted" in err
    assert "=== teardown" in out
    assert down_file.read_text() == "down"  # the deployment would have been taken down
    assert not alive(verify_pid)
