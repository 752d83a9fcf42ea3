"""`python -m load judge` and the CLI's usage errors: exit codes, decision files, one-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from load.__main__ import main
from tests.fixtures.load_samples import PYTEST_JUNIT, results
from tests.fixtures.load_server import read_json, run_cli


def write_results(artifacts: Path, profile: str = "steady", **overrides: Any) -> Path:
    path = artifacts / "load" / profile / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results(profile=profile, **overrides)))
    return path


@pytest.mark.parametrize(
    ("overrides", "code", "verdict"),
    [({}, 0, "promote"), ({"throughput_rps": 1.0}, 1, "reject"), ({"cpu_warning": True}, 3, "hold")],
    ids=["promote", "reject", "hold"],
)
def test_exit_code_follows_the_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], overrides: dict[str, Any], code: int, verdict: str
) -> None:
    write_results(tmp_path, **overrides)
    assert main(["judge", "--artifacts", str(tmp_path)]) == code
    decision = read_json(tmp_path / "decision.json")
    assert decision["verdict"] == verdict
    assert decision["results_file"] == str(tmp_path / "load" / "steady" / "results.json")
    assert (tmp_path / "decision.md").read_text().startswith(f"# Release decision: {verdict.upper()}")
    assert capsys.readouterr().out.startswith(f"verdict: {verdict.upper()} (profile steady)")


def test_verify_junit_in_artifacts_is_used(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_results(tmp_path)
    (tmp_path / "verify-junit.xml").write_text(PYTEST_JUNIT)
    assert main(["judge", "--artifacts", str(tmp_path)]) == 1
    decision = read_json(tmp_path / "decision.json")
    assert decision["reasons"] == ["verify: 2 of 5 scenarios failed (test_horizon[12], test_bad_input[zero])"]
    assert decision["junit_file"] == str(tmp_path / "verify-junit.xml")


def test_results_file_names_its_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_results(tmp_path, profile="smoke")
    assert main(["judge", "--results", str(path), "--artifacts", str(tmp_path)]) == 0
    assert read_json(tmp_path / "decision.json")["slos"]["p95_ms"] == 500  # smoke's SLO, not steady's


def test_pipeline_summary_only_inside_azure_pipelines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_results(tmp_path)
    monkeypatch.delenv("TF_BUILD", raising=False)
    main(["judge", "--artifacts", str(tmp_path)])
    assert "##vso[" not in capsys.readouterr().out
    monkeypatch.setenv("TF_BUILD", "True")
    main(["judge", "--artifacts", str(tmp_path)])
    assert capsys.readouterr().out.splitlines()[-1] == f"##vso[task.uploadsummary]{tmp_path / 'decision.md'}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["judge"], r"load/steady/results\.json: no load results; run `python -m load run --profile steady` first"),
        (["judge", "--profile", "nope"], r"--profile 'nope' is not in .*profiles\.toml; choose one of"),
        (["judge", "--junit", "/nonexistent/v.xml"], r"/nonexistent/v\.xml: no JUnit file"),
        (["run"], r"the following arguments are required: --profile"),
        (["run", "--profile", "smoke", "--users", "x"], r"argument --users: invalid int value: 'x'"),
        (["run", "--profile", "smoke"], r"deployment\.json: no deployment file; run `python -m deploy up"),
        (
            ["run", "--profile", "smoke", "--run-time", "0"],
            r"--run-time 0: expected a finite number of seconds above 0",
        ),
        (["run", "--profile", "smoke", "--workers", "-1"], r"--workers / --remote-workers: expected 0 or more"),
        (
            ["judge", "--baseline", "/nonexistent/base.json"],
            r"--baseline /nonexistent/base\.json: no such results file",
        ),
    ],
    ids=[
        "no-results",
        "bad-profile",
        "no-junit",
        "no-profile",
        "bad-users",
        "no-deployment",
        "bad-run-time",
        "bad-workers",
        "no-baseline",
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    if "--junit" in args or "--baseline" in args:
        write_results(tmp_path)  # results are fine: only the other file is missing
    done = run_cli(*args, artifacts=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert re.search(message, lines[0]), lines[0]


def test_unreadable_results_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "load" / "steady" / "results.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert main(["judge", "--artifacts", str(tmp_path)]) == 2
    assert "results.json: not readable JSON" in capsys.readouterr().err
    path.write_text(json.dumps({"profile": "steady"}))
    assert main(["judge", "--artifacts", str(tmp_path)]) == 2
    assert "not a load results file (missing requests, failures" in capsys.readouterr().err


def test_baseline_of_another_profile_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_results(tmp_path)
    baseline = write_results(tmp_path / "prod", profile="smoke")
    assert main(["judge", "--baseline", str(baseline), "--artifacts", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"python -m load judge: error: --baseline {baseline}: it is a 'smoke' run and the candidate a 'steady' run; "
        "compare runs of the same profile"
    )


def test_judge_writes_a_report_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_results(tmp_path)
    main(["judge", "--artifacts", str(tmp_path)])
    page = (tmp_path / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "Release decision: PROMOTE" in page
