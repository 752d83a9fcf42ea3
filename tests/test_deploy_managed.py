"""The managed target (azure-ai-ml, SDK v2) offline: real entity objects, a fake MLClient.

Runs under .venv-v2 (`make managed-tests`: .venv-v2/bin/python -m pytest tests/test_deploy_managed.py);
in .venv, where azure-ai-ml is deliberately absent, the whole module is skipped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.folders import Result, make_folders

pytest.importorskip("azure.ai.ml", reason="the managed target's tests run in .venv-v2 (make managed-tests)")
pytestmark = pytest.mark.filterwarnings("ignore:The `context` parameter is deprecated")  # azure-ai-ml on marshmallow

from azure.ai.ml.entities import ManagedOnlineDeployment  # noqa: E402
from fakes.azure_ai_ml import FAKE_KEY, FAKE_SECONDARY, FakeWorkspaceV2  # noqa: E402

import deploy.managed  # noqa: E402
from deploy.__main__ import main  # noqa: E402
from deploy.managed import V2Sdk  # noqa: E402

FAKE_SECRET = "sp-secret-v2-Hh4Jj6Kk8"
ENDPOINT = "forecast-ml-r42"
DEPLOYMENT = "d-abc123def456"
ENV = {
    "AZUREML_SUBSCRIPTION_ID": "sub-1",
    "AZUREML_RESOURCE_GROUP": "rg-1",
    "AZUREML_WORKSPACE_NAME": "ws-1",
    "AZUREML_TENANT_ID": "tenant-1",
    "AZUREML_CLIENT_ID": "client-1",
    "AZUREML_CLIENT_SECRET": FAKE_SECRET,
    "RELEASE_RELEASEID": "42",
}
CLEARED = ("TF_BUILD", "BUILD_BUILDID", "AZUREML_AUTH", "AZUREML_SCORING_KEY", "RELEASE_V2_REEXEC")


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    model, service = make_folders(tmp_path, requirements="statsmodels==0.15.0\npandas==3.1.1\n")
    return {"model": model, "service": service, "artifacts": tmp_path / "artifacts"}


@pytest.fixture
def workspace(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeWorkspaceV2:
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    fake = FakeWorkspaceV2()
    monkeypatch.setattr(deploy.managed.TARGET, "sdk_factory", lambda: V2Sdk(MLClient=fake.client_class()))
    return fake


@pytest.fixture
def cli(folders: dict[str, Path], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level("INFO")

    def run(*argv: str, up: bool = True) -> Result:
        caplog.clear()
        paths = ["--artifacts", str(folders["artifacts"])]
        if up:
            paths += ["--model-dir", str(folders["model"]), "--service-dir", str(folders["service"])]
        code = main([*argv, *paths])
        captured = capsys.readouterr()
        return Result(code=code, out=captured.out, err=captured.err, logs=caplog.text)

    return run


def no_secret(*texts: str) -> bool:
    return not any(secret in text for text in texts for secret in (FAKE_KEY, FAKE_SECONDARY, FAKE_SECRET))


def test_managed_up_deploys_with_key_auth(cli: Any, workspace: FakeWorkspaceV2, folders: dict[str, Path]) -> None:
    result = cli("up", "--target", "managed")

    assert result.code == 0, result.err
    written = json.loads((folders["artifacts"] / "deployment.json").read_text())
    assert (written["target"], written["name"]) == ("managed", ENDPOINT)
    assert written["scoring_uri"] == f"https://{ENDPOINT}.westeurope.inference.ml.azure.com/score"
    assert written["auth"] is True and written["key_env"] == "AZUREML_SCORING_KEY"
    assert written["details"]["deployment"] == DEPLOYMENT
    assert workspace.endpoints[ENDPOINT].traffic == {DEPLOYMENT: 100}, "all traffic goes to the new deployment"
    assert workspace.clients[0]["credential"] == "ClientSecretCredential"
    assert os.environ["AZUREML_SCORING_KEY"] == FAKE_KEY
    assert no_secret(json.dumps(written), result.out, result.err, result.logs)


def test_managed_passes_real_entities(cli: Any, workspace: FakeWorkspaceV2, folders: dict[str, Path]) -> None:
    assert cli("up", "--target", "managed").code == 0

    (deployment,) = [arg for op, arg in workspace.calls if op == "online_deployments.begin_create_or_update"]
    assert isinstance(deployment, ManagedOnlineDeployment)
    assert (deployment.name, deployment.endpoint_name) == (DEPLOYMENT, ENDPOINT)
    assert (deployment.instance_type, deployment.instance_count) == ("Standard_DS3_v2", 1)
    assert deployment.code_configuration.scoring_script == "score.py"
    assert deployment.code_configuration.code == str(folders["service"])
    pip = deployment.environment.conda_file["dependencies"][-1]["pip"]
    assert pip == ["statsmodels==0.15.0", "pandas==3.1.1", "azureml-inference-server-http==1.5.1"]
    assert workspace.models[("demand-forecast", "abc123def456")].tags == {"model_version": "abc123def456"}


def test_managed_rerun_reuses_model_and_endpoint(cli: Any, workspace: FakeWorkspaceV2) -> None:
    assert cli("up", "--target", "managed").code == 0
    assert cli("up", "--target", "managed").code == 0

    assert [op for op, _ in workspace.calls].count("models.create_or_update") == 1
    assert list(workspace.endpoints) == [ENDPOINT] and list(workspace.deployments) == [(ENDPOINT, DEPLOYMENT)]


@pytest.mark.parametrize(
    ("outcome", "ending", "words"),
    [
        ("Failed", "deleted the endpoint, nothing is left behind", "deployment of forecast-ml-r42 failed: "),
        (
            "failed-state",
            "deleted the endpoint, nothing is left behind",
            f"deployment {DEPLOYMENT} of {ENDPOINT} is Failed",
        ),
        ("timeout", "deleted the endpoint, nothing is left behind", "still InProgress after waiting 5 s (--timeout)"),
    ],
    ids=["operation-failed", "state-failed", "timeout"],
)
def test_managed_failure_deletes_endpoint(
    cli: Any, workspace: FakeWorkspaceV2, folders: dict[str, Path], outcome: str, ending: str, words: str
) -> None:
    workspace.next_outcome = outcome
    result = cli("up", "--target", "managed", "--timeout", "5")

    assert result.code == 1
    assert result.last_line.startswith("deploy: failed: ") and words in result.last_line
    assert result.last_line.endswith(ending)
    assert workspace.endpoints == {} and not (folders["artifacts"] / "deployment.json").exists()
    if outcome != "timeout":
        assert "could not load model.pkl" in result.logs, "the log tail is shown"


def test_managed_failed_update_leaves_endpoint(cli: Any, workspace: FakeWorkspaceV2) -> None:
    assert cli("up", "--target", "managed").code == 0
    workspace.next_outcome = "Failed"
    result = cli("up", "--target", "managed")

    assert result.code == 1
    assert f"left endpoint {ENDPOINT} in place (it served before this update)" in result.last_line
    assert list(workspace.endpoints) == [ENDPOINT]


def test_managed_failed_delete_names_down_command(cli: Any, workspace: FakeWorkspaceV2) -> None:
    workspace.next_outcome = "Failed"
    workspace.fail["delete"] = "(InternalServerError) try again later"
    result = cli("up", "--target", "managed")

    assert result.code == 1
    assert result.last_line.endswith(f"remove it with `python -m deploy down --target managed --name {ENDPOINT}`")


def test_managed_missing_credentials_exit_2(cli: Any, workspace: FakeWorkspaceV2, monkeypatch: Any) -> None:
    monkeypatch.delenv("AZUREML_CLIENT_SECRET")
    result = cli("up", "--target", "managed", "--auth", "sp")

    assert result.code == 2
    assert result.last_line == (
        "deploy: error: missing credentials: --auth sp needs $AZUREML_CLIENT_SECRET; "
        "export them, or pass --auth cli|msi"
    )
    assert workspace.clients == []


def test_managed_workspace_error_is_scrubbed(cli: Any, workspace: FakeWorkspaceV2) -> None:
    workspace.fail["MLClient"] = f"ClientAuthenticationError: AADSTS7000215 bad secret {FAKE_SECRET}"
    result = cli("up", "--target", "managed")

    assert result.code == 1
    assert "AADSTS7000215 bad secret ***" in result.last_line and no_secret(result.err, result.logs)


def test_managed_dry_run_touches_nothing(cli: Any, workspace: FakeWorkspaceV2) -> None:
    result = cli("up", "--target", "managed", "--dry-run", "--instance-type", "Standard_F2s_v2")

    assert result.code == 0, result.err
    title, _, body = result.out.partition("\n")
    assert title == "deploy: dry run of --target managed: nothing was created; the plan:"
    plan = json.loads(body)
    assert plan["endpoint"]["auth_mode"] == "key" and plan["endpoint"]["name"] == ENDPOINT
    assert plan["deployment"]["instance_type"] == "Standard_F2s_v2"
    assert plan["deployment"]["code_configuration"]["scoring_script"] == "score.py"
    assert plan["traffic"] == {DEPLOYMENT: 100}
    assert workspace.clients == [], "no MLClient was made"


def test_managed_down_is_idempotent(cli: Any, workspace: FakeWorkspaceV2, folders: dict[str, Path]) -> None:
    assert cli("up", "--target", "managed").code == 0
    first = cli("down", "--target", "managed", up=False)
    again = cli("down", "--target", "managed", up=False)

    assert first.code == 0 and workspace.endpoints == {}
    assert again.code == 0 and f"endpoint {ENDPOINT} is already gone" in again.logs


def test_managed_key_and_pipeline_variable(cli: Any, workspace: FakeWorkspaceV2, monkeypatch: Any) -> None:
    monkeypatch.setenv("TF_BUILD", "True")
    result = cli("up", "--target", "managed")
    key = cli("key", up=False)

    assert result.code == 0 and key.out == f"{FAKE_KEY}\n"
    lines = [line for line in result.out.splitlines() if FAKE_KEY in line]
    assert lines == [f"##vso[task.setvariable variable=AZUREML_SCORING_KEY;issecret=true]{FAKE_KEY}"]
    assert no_secret(result.out.replace(lines[0], ""), result.err, result.logs, key.err)
