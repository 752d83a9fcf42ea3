"""pipelines/release.yml parses, runs the stages in the promised order, and names only things that exist."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.__main__ import build_parser as deploy_parser
from deploy.base import PROJECT_ROOT

PIPELINES = PROJECT_ROOT / "pipelines"
RELEASE = PIPELINES / "release.yml"
STAGES = ["Install", "DeployACI", "Verify", "LoadAndJudge", "PromoteAKS", "SmokeAKS", "RemoveACI"]
SECRET = "AZUREML_CLIENT_SECRET"
PIPELINE_EXPRESSION = re.compile(r"\$\{\{[^}]*\}\}|\$\([A-Za-z_][\w.]*\)")  # ${{ parameters.x }}, $(Pipeline.Workspace)
SUBSTITUTION = re.compile(r"\$\(([^()]*)\)")  # the shell's $(command)
ASSIGNMENT = re.compile(r"^[A-Za-z_]\w*=")
CONTINUATION = re.compile(r"\\\n\s*")
SCRIPT_TIMEOUT_S = 60
# The classic editor route and the SDK v1 statement the README section must carry.
DOC_WORDS = ("ubuntu-latest", "Use Python version", "PublishTestResults", "AZUREML_CLIENT_SECRET", "31 March 2025")


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), f"{path} is not a YAML mapping"
    return document


def steps_of(job: dict[str, Any]) -> list[dict[str, Any]]:
    """A job's steps, with templates expanded (regular and deployment jobs)."""
    raw = job.get("steps") or job.get("strategy", {}).get("runOnce", {}).get("deploy", {}).get("steps", [])
    expanded: list[dict[str, Any]] = []
    for step in raw:
        if "template" in step:
            template = PIPELINES / step["template"]
            assert template.is_file(), f"template {step['template']} does not exist"
            expanded.extend(load(template)["steps"])
        else:
            expanded.append(step)
    return expanded


def all_steps(pipeline: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(stage["stage"], step) for stage in pipeline["stages"] for job in stage["jobs"] for step in steps_of(job)]


def commands(script: str) -> list[list[str]]:
    """The script's commands (those inside $(...) too), pipeline expressions replaced by X, split like a shell."""
    text = PIPELINE_EXPRESSION.sub("X", CONTINUATION.sub(" ", script))
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    lines += [inner for line in lines for inner in SUBSTITUTION.findall(line)]
    out = []
    for line in lines:
        words = shlex.split(SUBSTITUTION.sub("X", line).split(" || ")[0])
        while words and ASSIGNMENT.match(words[0]):
            words = words[1:]
        if words and words[0] not in ("export", "set", "mkdir", "rm", "cp"):
            out.append(words)
    return out


@pytest.fixture(scope="module")
def pipeline() -> dict[str, Any]:
    return load(RELEASE)


def test_stages_run_in_release_order(pipeline: dict[str, Any]) -> None:
    assert [stage["stage"] for stage in pipeline["stages"]] == STAGES
    depends = {stage["stage"]: stage.get("dependsOn") for stage in pipeline["stages"]}
    assert depends["DeployACI"] == "Install" and depends["Verify"] == "DeployACI"
    assert depends["LoadAndJudge"] == "Verify" and depends["PromoteAKS"] == "LoadAndJudge"
    assert depends["SmokeAKS"] == "PromoteAKS"
    assert set(depends["RemoveACI"]) == set(STAGES) - {"RemoveACI"}
    assert pipeline["pool"] == {"vmImage": "ubuntu-latest"}


def test_cleanup_always_runs(pipeline: dict[str, Any]) -> None:
    remove = pipeline["stages"][-1]
    assert remove["condition"].startswith("always()")
    scripts = [step["bash"] for _, step in all_steps({"stages": [remove]}) if "bash" in step]
    assert any("python -m deploy down --target aci" in script for script in scripts)


def test_promotion_waits_for_promote_verdict(pipeline: dict[str, Any]) -> None:
    promote = next(stage for stage in pipeline["stages"] if stage["stage"] == "PromoteAKS")
    match = re.search(r"dependencies\.(\w+)\.outputs\['(\w+)\.(\w+)\.(\w+)'\], 'promote'", promote["condition"])
    assert match, promote["condition"]
    stage_name, job_name, step_name, variable = match.groups()
    judge_stage = next(stage for stage in pipeline["stages"] if stage["stage"] == stage_name)
    (job,) = [job for job in judge_stage["jobs"] if job.get("job") == job_name]
    (step,) = [step for step in steps_of(job) if step.get("name") == step_name]
    assert "pipelines/publish_verdict.py" in step["bash"], "the step named in the condition publishes the verdict"
    assert f"variable={variable};isOutput=true" in (PIPELINES / "publish_verdict.py").read_text()


def test_junit_is_published_to_tests_tab(pipeline: dict[str, Any]) -> None:
    published = {
        stage: step["inputs"] for stage, step in all_steps(pipeline) if step.get("task") == "PublishTestResults@2"
    }
    assert set(published) == {"Verify", "SmokeAKS"}
    for inputs in published.values():
        assert inputs["testResultsFormat"] == "JUnit"
    scripts = {stage: step["bash"] for stage, step in all_steps(pipeline) if "--junitxml" in step.get("bash", "")}
    for stage, inputs in published.items():
        assert inputs["testResultsFiles"].split("/")[-1] in scripts[stage], f"{stage} publishes the file it writes"


def test_summary_is_uploaded_by_the_judge() -> None:
    assert "##vso[task.uploadsummary]" in (PROJECT_ROOT / "load" / "__main__.py").read_text()


def test_secret_is_mapped_where_azure_is_called(pipeline: dict[str, Any]) -> None:
    for stage, step in all_steps(pipeline):
        script = step.get("bash", "")
        if "python -m deploy" in script:
            assert step.get("env", {}).get(SECRET) == f"$({SECRET})", f"{stage}: secret variables need env mapping"


def test_every_named_script_and_module_exists(pipeline: dict[str, Any]) -> None:
    """Each command a step runs: python modules, scripts, paths and flags must exist in this repository."""
    seen = 0
    for stage, step in all_steps(pipeline):
        for words in commands(step.get("bash", "")):
            seen += 1
            assert words[0] == "python", f"{stage}: unexpected command {words}"
            if words[1] == "-c":
                continue
            if words[1] != "-m":
                assert (PROJECT_ROOT / words[1]).is_file(), f"{stage}: no script {words[1]}"
                continue
            module, rest = words[2], words[3:]
            if module == "deploy":
                deploy_parser().parse_args([arg.replace("X", "x") for arg in rest])  # SystemExit on a wrong flag
            elif module == "load":
                source = (PROJECT_ROOT / "load" / "__main__.py").read_text()
                assert f'add_parser("{rest[0]}"' in source, f"{stage}: python -m load has no {rest[0]!r} command"
                for flag in (word for word in rest if word.startswith("--")):
                    assert f'"{flag}"' in source, f"{stage}: python -m load {rest[0]} has no {flag}"
            elif module == "pytest":
                assert (PROJECT_ROOT / rest[0]).is_dir(), f"{stage}: no test folder {rest[0]}"
                options = (PROJECT_ROOT / "conftest.py").read_text()
                for flag in (word for word in rest if word.startswith("--") and word != "--junitxml"):
                    assert f'"{flag}"' in options, f"{stage}: pytest has no {flag} option in conftest.py"
                if "-m" in rest:
                    marker = rest[rest.index("-m") + 1]
                    assert f'"{marker}:' in (PROJECT_ROOT / "pyproject.toml").read_text(), f"unregistered {marker}"
            elif module == "pip":
                for requirement in (rest[i + 1] for i, word in enumerate(rest) if word == "-r"):
                    assert (PROJECT_ROOT / requirement).is_file(), f"{stage}: no {requirement}"
            else:
                raise AssertionError(f"{stage}: python -m {module} is not one of ours")
    assert seen >= 12, "the parser found the pipeline's commands"


def test_classic_editor_route_is_documented() -> None:
    doc = (PROJECT_ROOT / "README.md").read_text()
    for words in DOC_WORDS:
        assert words in doc, f"README.md does not mention {words}"


@pytest.mark.parametrize(
    ("decision", "code", "lines"),
    [
        ({"verdict": "promote", "reasons": []}, 0, ["##vso[task.setvariable variable=verdict;isOutput=true]promote"]),
        (
            {"verdict": "hold", "reasons": ["only 180 requests"]},
            0,
            [
                "##vso[task.setvariable variable=verdict;isOutput=true]hold",
                "##vso[task.logissue type=warning]hold: only 180 requests",
                "##vso[task.complete result=SucceededWithIssues;]the judge says hold: not promoted",
            ],
        ),
        (
            {"verdict": "reject", "reasons": ["p99 912 ms > 500 ms"]},
            1,
            [
                "##vso[task.setvariable variable=verdict;isOutput=true]reject",
                "##vso[task.logissue type=error]reject: p99 912 ms > 500 ms",
            ],
        ),
        (None, 2, []),
    ],
    ids=["promote", "hold", "reject", "missing"],
)
def test_publish_verdict_script(tmp_path: Path, decision: dict | None, code: int, lines: list[str]) -> None:
    path = tmp_path / "decision.json"
    if decision is not None:
        path.write_text(json.dumps(decision))
    done = subprocess.run(
        [sys.executable, str(PIPELINES / "publish_verdict.py"), str(path)],
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
        check=False,
    )

    assert done.returncode == code
    assert [line for line in done.stdout.splitlines() if line.startswith("##vso")] == lines
    if decision is None:
        assert done.stderr.startswith(f"publish_verdict: error: {path}: no readable verdict")
