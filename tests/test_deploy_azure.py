"""The aci and aks targets (azureml-core) offline: the SDK's real configuration objects, a fake workspace.

Only the network boundary is fake (tests/fakes/azureml_v1.py: Workspace, Model.list/register/deploy, the web
service handle). Each scenario runs the real command line (`deploy.__main__.main`) and checks its exit code,
its one-line message and what is left in the fake workspace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azureml.core.webservice.aci import AciServiceDeploymentConfiguration
from azureml.core.webservice.aks import AksServiceDeploymentConfiguration
from fakes.azureml_v1 import FAKE_KEY, FAKE_SECONDARY, FakeAzure

import deploy.aci
import deploy.aks
from deploy import azure_common
from deploy.__main__ import main
from deploy.base import PROJECT_ROOT
from tests.fakes.folders import MODEL, Result, make_folders

pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning:azureml.*")

FAKE_SECRET = "sp-secret-Xy7Qz1Wv8Kp3"
REQUIREMENTS = "statsmodels==0.15.0\npandas==3.1.1  # the series\nnumpy==2.4.6\n"
ACI_NAME = "forecast-aci-r42"
SP_ENV = {"AZUREML_TENANT_ID": "tenant-1", "AZUREML_CLIENT_ID": "client-1", "AZUREML_CLIENT_SECRET": FAKE_SECRET}
WORKSPACE_ENV = {"AZUREML_SUBSCRIPTION_ID": "sub-1", "AZUREML_RESOURCE_GROUP": "rg-1", "AZUREML_WORKSPACE_NAME": "ws-1"}
CLEARED = ("TF_BUILD", "BUILD_BUILDID", "AZUREML_AUTH", "AZUREML_AKS_COMPUTE", "AZUREML_SCORING_KEY", "SCORING_KEY")
RUNNER = str(PROJECT_ROOT / "tests" / "fakes" / "run_deploy.py")
CLI_TIMEOUT_S = 120  # one fake deployment in a fresh interpreter takes a couple of seconds
SIZING = {
    "replicas": 2,
    "autoscale_min_replicas": 2,
    "autoscale_max_replicas": 6,
    "autoscale_target_utilization": 0.7,
    "cpu_cores": 0.5,
    "memory_gb": 1.5,
    "max_concurrent_requests_per_container": 4,
}


@dataclass
class Project:
    """A build artifact, a service folder and an artifacts folder in tmp."""

    model: Path
    service: Path
    artifacts: Path

    @property
    def deployment_file(self) -> Path:
        return self.artifacts / "deployment.json"

    def args(self, *extra: str) -> list[str]:
        folders = {"--artifacts": self.artifacts, "--model-dir": self.model, "--service-dir": self.service}
        return [*extra, *(part for flag, path in folders.items() for part in (flag, str(path)))]

    def decide(self, verdict: str, **fields: Any) -> None:
        self.artifacts.mkdir(parents=True, exist_ok=True)
        (self.artifacts / "decision.json").write_text(json.dumps({"verdict": verdict, **fields}))


@pytest.fixture
def project(tmp_path: Path) -> Project:
    model, service = make_folders(tmp_path, requirements=REQUIREMENTS)
    return Project(model=model, service=service, artifacts=tmp_path / "artifacts")


@pytest.fixture
def azure_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A release in Azure Pipelines' shape, outside Azure Pipelines (no TF_BUILD)."""
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    for name, value in {**WORKSPACE_ENV, **SP_ENV, "RELEASE_RELEASEID": "42"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no config.json up the tree from here


@pytest.fixture
def azure(monkeypatch: pytest.MonkeyPatch, azure_env: None) -> FakeAzure:
    fake = FakeAzure()
    monkeypatch.setattr(deploy.aci.TARGET, "sdk_factory", fake.sdk)
    monkeypatch.setattr(deploy.aks.TARGET, "sdk_factory", fake.sdk)
    return fake


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Iterator[Any]:
    caplog.set_level("INFO")

    def run(*argv: str) -> Result:
        caplog.clear()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code=code, out=captured.out, err=captured.err, logs=caplog.text)

    yield run


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert FAKE_KEY not in text and FAKE_SECONDARY not in text, "the scoring key leaked"
        assert FAKE_SECRET not in text, "the service principal secret leaked"


# -- aci: success --------------------------------------------------------------------------------------------------
def test_aci_up_writes_deployment_without_key(cli: Any, project: Project, azure: FakeAzure) -> None:
    result = cli("up", "--target", "aci", *project.args())

    assert result.code == 0, result.err
    written = json.loads(project.deployment_file.read_text())
    assert written["target"] == "aci" and written["name"] == ACI_NAME
    assert written["scoring_uri"] == f"http://{ACI_NAME}.westeurope.azurecontainer.io/score"
    assert written["health_uri"] == f"http://{ACI_NAME}.westeurope.azurecontainer.io/"
    assert written["auth"] is True and written["key_env"] == "AZUREML_SCORING_KEY"
    assert written["model"] == MODEL
    assert written["details"]["workspace"] == {
        "subscription_id": "sub-1",
        "resource_group": "rg-1",
        "workspace_name": "ws-1",
    }
    assert os.environ["AZUREML_SCORING_KEY"] == FAKE_KEY, "the key goes to the named variable of this process"
    assert_no_secret(project.deployment_file.read_text(), result.out, result.err, result.logs)
    assert "python -m deploy key" in result.logs, "outside pipelines the user is told how to fetch the key"


def test_aci_passes_real_sdk_configuration(cli: Any, project: Project, azure: FakeAzure) -> None:
    assert cli("up", "--target", "aci", *project.args()).code == 0

    config = azure.last_deploy["deployment_config"]
    assert isinstance(config, AciServiceDeploymentConfiguration)
    assert (config.cpu_cores, config.memory_gb, config.auth_enabled) == (1.0, 1.0, True)
    assert config.tags == {"model_version": "abc123def456", "model_name": "demand-forecast", "release_id": "42"}
    assert "release 42" in config.description
    (deploy_call,) = azure.calls("Model.deploy")
    assert deploy_call["overwrite"] is True and deploy_call["name"] == ACI_NAME
    assert deploy_call["entry_script"] == "score.py"
    assert deploy_call["source_directory"] == str(project.service)
    assert deploy_call["pip"] == [
        "statsmodels==0.15.0",
        "pandas==3.1.1",
        "numpy==2.4.6",
        "azureml-inference-server-http==1.5.1",
    ]
    (workspace,) = azure.calls("Workspace")
    assert workspace["auth"] == "ServicePrincipalAuthentication" and workspace["workspace_name"] == "ws-1"
    (register,) = azure.calls("Model.register")
    assert register["tags"] == {"model_version": "abc123def456"} and register["path"] == str(project.model)
    (wait,) = azure.calls("wait_for_deployment")
    assert wait["timeout_sec"] == deploy.aci.DEFAULT_TIMEOUT_S, "the wait is always bounded"


def test_rerun_updates_the_same_service(cli: Any, project: Project, azure: FakeAzure) -> None:
    assert cli("up", "--target", "aci", *project.args()).code == 0
    assert cli("up", "--target", "aci", *project.args()).code == 0

    assert list(azure.services) == [ACI_NAME]
    assert azure.services[ACI_NAME]["generation"] == 2, "the second run updated the first run's service"
    assert [call["overwrite"] for call in azure.calls("Model.deploy")] == [True, True]
    assert len(azure.calls("Model.register")) == 1, "the second run reused the registered model version"


def test_name_follows_build_id_then_model(cli: Any, project: Project, azure: FakeAzure, monkeypatch: Any) -> None:
    monkeypatch.delenv("RELEASE_RELEASEID")
    monkeypatch.setenv("BUILD_BUILDID", "1234")
    assert cli("up", "--target", "aci", *project.args()).code == 0
    monkeypatch.delenv("BUILD_BUILDID")
    assert cli("up", "--target", "aci", *project.args()).code == 0

    assert sorted(azure.services) == ["forecast-aci-abc123def456", "forecast-aci-r1234"]


def test_tf_build_sets_secret_pipeline_variable(cli: Any, project: Project, azure: FakeAzure, monkeypatch: Any) -> None:
    monkeypatch.setenv("TF_BUILD", "True")
    result = cli("up", "--target", "aci", *project.args("--key-env", "SCORING_KEY"))

    assert result.code == 0, result.err
    key_lines = [line for line in result.out.splitlines() if FAKE_KEY in line]
    assert key_lines == [f"##vso[task.setvariable variable=SCORING_KEY;issecret=true]{FAKE_KEY}"]
    assert_no_secret(result.out.replace(key_lines[0], ""), result.err, result.logs, project.deployment_file.read_text())
    assert json.loads(project.deployment_file.read_text())["key_env"] == "SCORING_KEY"


def test_key_command_prints_key_on_request(cli: Any, project: Project, azure: FakeAzure) -> None:
    assert cli("up", "--target", "aci", *project.args()).code == 0
    result = cli("key", "--artifacts", str(project.artifacts))

    assert result.code == 0 and result.out == f"{FAKE_KEY}\n", "stdout holds the key and nothing else"
    assert_no_secret(result.err, result.logs)


# -- aci: failures -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("outcome", "state", "words"),
    [
        ("Unhealthy", "Unhealthy", "AciDeploymentFailed: Aci Deployment failed with exception"),
        ("Failed", "Failed", "ImageBuildFailure: Image build failed"),
        ("timeout", "Transitioning", "after waiting 5 s (--timeout): Deployment polling exceeded timeout override"),
        ("unhealthy-after-success", "Unhealthy", "no error message"),
    ],
    ids=["unhealthy", "failed", "timeout", "unhealthy-after-succeeded-operation"],
)
def test_unhealthy_service_fails_and_is_deleted(
    cli: Any, project: Project, azure: FakeAzure, outcome: str, state: str, words: str
) -> None:
    azure.data["next_outcome"] = outcome
    result = cli("up", "--target", "aci", *project.args("--timeout", "5"))

    assert result.code == 1
    assert result.last_line.startswith(f"deploy: failed: ACI service {ACI_NAME} is {state}, not Healthy")
    assert words in result.last_line
    assert result.last_line.endswith("deleted the service, nothing is left behind")
    assert azure.services == {}, "the failed service was deleted"
    assert not project.deployment_file.exists()
    assert "RuntimeError: could not load model.pkl" in result.logs, "the log tail is shown"
    saved = project.artifacts / f"aci-{ACI_NAME}.log"
    assert "Encountered Exception in init()" in saved.read_text()


def test_failure_deletes_stale_deployment_file(cli: Any, project: Project, azure: FakeAzure) -> None:
    assert cli("up", "--target", "aci", *project.args()).code == 0
    azure.data["next_outcome"] = "Unhealthy"

    assert cli("up", "--target", "aci", *project.args()).code == 1
    assert azure.services == {}
    assert not project.deployment_file.exists(), "deployment.json no longer points at a deleted service"


def test_keep_failed_reports_down_command(cli: Any, project: Project, azure: FakeAzure) -> None:
    azure.data["next_outcome"] = "Failed"
    result = cli("up", "--target", "aci", *project.args("--keep-failed"))

    down = f"python -m deploy down --target aci --name {ACI_NAME}"
    assert result.code == 1 and result.last_line.endswith(
        f"kept it for debugging (--keep-failed); remove it with `{down}`"
    )
    assert list(azure.services) == [ACI_NAME]
    removed = cli(*down.split()[3:], "--artifacts", str(project.artifacts))
    assert removed.code == 0 and azure.services == {}, "the printed command removes it"


def test_failed_delete_reports_down_command(cli: Any, project: Project, azure: FakeAzure) -> None:
    azure.data["next_outcome"] = "Unhealthy"
    azure.data["fail"]["delete"] = "Received bad response from Model Management Service:\nResponse Code: 500"
    result = cli("up", "--target", "aci", *project.args())

    assert result.code == 1
    assert result.last_line.endswith(
        f"deleting it failed too; remove it with `python -m deploy down --target aci --name {ACI_NAME}`"
    )


def test_deploy_call_error_leaves_nothing(cli: Any, project: Project, azure: FakeAzure) -> None:
    azure.data["fail"]["Model.deploy"] = "Error, provided image is invalid"
    result = cli("up", "--target", "aci", *project.args())

    assert result.code == 1
    assert result.last_line == (
        f"deploy: failed: Model.deploy of service {ACI_NAME} failed: Error, provided image is invalid; "
        "no service was left behind"
    )


def test_interrupt_still_deletes_service(cli: Any, project: Project, azure: FakeAzure, monkeypatch: Any) -> None:
    from fakes.azureml_v1 import FakeWebservice

    def interrupted(self: FakeWebservice, show_output: bool = False, timeout_sec: float | None = None) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(FakeWebservice, "wait_for_deployment", interrupted)
    result = cli("up", "--target", "aci", *project.args())

    assert result.code == 130 and result.last_line == "deploy: interrupted"
    assert azure.services == {}, "Ctrl-C during the wait still removed the half-made service"


def test_sdk_error_text_is_scrubbed(cli: Any, project: Project, azure: FakeAzure) -> None:
    azure.data["fail"]["Workspace"] = f"AADSTS7000215: Invalid client secret provided: {FAKE_SECRET}. Trace: 1"
    result = cli("up", "--target", "aci", *project.args())

    assert result.code == 1
    assert result.last_line == (
        "deploy: failed: cannot open workspace ws-1 (service principal): "
        "AADSTS7000215: Invalid client secret provided: ***. Trace: 1"
    )
    assert_no_secret(result.out, result.err, result.logs)


# -- configuration errors: exit 2, nothing touched ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("unset", "extra", "message"),
    [
        (
            ("AZUREML_TENANT_ID", "AZUREML_CLIENT_ID", "AZUREML_CLIENT_SECRET"),
            ("--auth", "sp"),
            "missing credentials: --auth sp needs $AZUREML_TENANT_ID, $AZUREML_CLIENT_ID, $AZUREML_CLIENT_SECRET",
        ),
        (
            ("AZUREML_CLIENT_SECRET",),
            (),
            "service principal variables partly set: $AZUREML_CLIENT_SECRET unset",
        ),
        (
            ("AZUREML_TENANT_ID", "AZUREML_CLIENT_ID", "AZUREML_CLIENT_SECRET"),
            (),
            "--auth cli needs the azure-cli package in this Python environment",
        ),
        (
            ("AZUREML_WORKSPACE_NAME",),
            (),
            "$AZUREML_WORKSPACE_NAME unset while $AZUREML_SUBSCRIPTION_ID, $AZUREML_RESOURCE_GROUP is set",
        ),
        (
            WORKSPACE_ENV,
            (),
            "no Azure ML workspace configured: pass --workspace-config config.json or export",
        ),
    ],
    ids=["sp-without-variables", "secret-not-mapped", "cli-without-azure-cli", "partial-workspace", "no-workspace"],
)
def test_missing_credentials_exit_2(
    cli: Any, project: Project, azure: FakeAzure, monkeypatch: Any, unset: tuple[str, ...], extra: tuple, message: str
) -> None:
    for name in unset:
        monkeypatch.delenv(name)
    result = cli("up", "--target", "aci", *project.args(*extra))

    assert result.code == 2
    assert result.last_line.startswith("deploy: error: ") and message in result.last_line
    assert azure.calls("Model.deploy") == [] and azure.calls("Model.register") == []


def test_workspace_config_file_is_used(cli: Any, project: Project, azure: FakeAzure, monkeypatch: Any) -> None:
    for name in WORKSPACE_ENV:
        monkeypatch.delenv(name)
    config = project.artifacts.parent / "config.json"
    config.write_text(json.dumps({"subscription_id": "s", "resource_group": "g", "workspace_name": "from-file"}))

    assert cli("up", "--target", "aci", *project.args("--workspace-config", str(config))).code == 0
    assert azure.calls("Workspace")[0]["workspace_name"] == "from-file"


def test_found_config_json_is_used(cli: Any, project: Project, azure: FakeAzure, monkeypatch: Any) -> None:
    for name in WORKSPACE_ENV:
        monkeypatch.delenv(name)
    (project.artifacts.parent / ".azureml").mkdir()
    config = {"subscription_id": "s", "resource_group": "g", "workspace_name": "found"}
    (project.artifacts.parent / ".azureml" / "config.json").write_text(json.dumps(config))
    (project.artifacts.parent / "sub").mkdir()
    monkeypatch.chdir(project.artifacts.parent / "sub")

    assert cli("up", "--target", "aci", *project.args()).code == 0
    assert azure.calls("Workspace")[0]["workspace_name"] == "found"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ("--name", "Forecast_Test"),
            "--name 'Forecast_Test': Azure service names are 3-32 characters of lowercase letters, digits and "
            "dashes, start with a letter and do not end with a dash; try 'forecast-test'",
        ),
        (("--name", "f" * 33), "--name 'fffffffffffffffffffffffffffffffff': Azure service names are 3-32 characters"),
        (("--cpu-cores", "0"), "--cpu-cores 0.0: expected a number above 0"),
        (("--key-env", "not a name"), "--key-env 'not a name': expected an environment variable name"),
        (("--workers", "2"), "--workers does not apply to --target aci; drop it"),
    ],
    ids=["name-rule", "name-too-long", "cpu-zero", "key-env-name", "foreign-flag"],
)
def test_bad_flags_exit_2(cli: Any, project: Project, azure: FakeAzure, argv: tuple[str, ...], message: str) -> None:
    result = cli("up", "--target", "aci", *project.args(*argv))

    assert result.code == 2 and message in result.last_line
    assert azure.sdk_built == 0, "nothing talked to Azure"


def test_unpinned_requirement_exit_2(cli: Any, project: Project, azure: FakeAzure) -> None:
    (project.service / "requirements.txt").write_text("statsmodels==0.15.0\npandas\n")
    result = cli("up", "--target", "aci", *project.args())

    requirements = project.service / "requirements.txt"
    assert result.code == 2
    assert (
        result.last_line
        == f"deploy: error: {requirements}:2: 'pandas' is not pinned; pin it as name==version so images reproduce"
    )


# -- dry run ---------------------------------------------------------------------------------------------------------
def test_dry_run_prints_plan_offline(cli: Any, project: Project, azure_env: None, monkeypatch: Any) -> None:
    def no_network() -> Any:
        raise AssertionError("a dry run must not build an SDK client")

    monkeypatch.setattr(deploy.aci.TARGET, "sdk_factory", no_network)
    result = cli("up", "--target", "aci", *project.args("--dry-run", "--cpu-cores", "2"))

    assert result.code == 0, result.err
    title, _, body = result.out.partition("\n")
    assert title == "deploy: dry run of --target aci: nothing was created; the plan:"
    plan = json.loads(body)
    assert plan["service"]["name"] == ACI_NAME
    assert plan["workspace"]["workspace_name"] == "ws-1"
    assert plan["auth"] == {
        "kind": "service principal",
        "tenant_id": "tenant-1",
        "client_id": "client-1",
        "secret": "$AZUREML_CLIENT_SECRET",
    }
    assert plan["deployment_configuration"]["class"] == "AciServiceDeploymentConfiguration"
    assert plan["deployment_configuration"]["cpu_cores"] == 2.0
    assert plan["deployment_configuration"]["auth_enabled"] is True
    assert plan["inference_config"] == {"entry_script": "score.py", "source_directory": str(project.service)}
    assert plan["environment"]["pip"][-1] == "azureml-inference-server-http==1.5.1"
    assert plan["environment"]["channels"] == ["conda-forge"]
    assert not project.deployment_file.exists()
    assert_no_secret(result.out, result.err, result.logs)


def test_real_cli_dry_run_needs_no_azure(project: Project, tmp_path: Path) -> None:
    """`python -m deploy up --target aci --dry-run` with the real SDK and no fake at all."""
    env = {k: v for k, v in os.environ.items() if k not in CLEARED and not k.startswith("AZUREML_")}
    env.update(WORKSPACE_ENV, RELEASE_RELEASEID="42", AZUREML_AUTH="msi")
    done = subprocess.run(
        [sys.executable, "-m", "deploy", "up", "--target", "aci", "--dry-run", *project.args()],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout.partition("\n")[2])
    assert plan["auth"] == {"kind": "managed identity", "client_id": None}
    assert plan["deployment_configuration"]["tags"]["release_id"] == "42"


# -- down --------------------------------------------------------------------------------------------------------
def test_down_deletes_and_is_idempotent(cli: Any, project: Project, azure: FakeAzure) -> None:
    assert cli("up", "--target", "aci", *project.args()).code == 0

    first = cli("down", "--target", "aci", "--artifacts", str(project.artifacts))
    again = cli("down", "--target", "aci", "--artifacts", str(project.artifacts))

    assert first.code == 0 and first.out == f"removed {ACI_NAME} (aci)\n"
    assert azure.services == {} and not project.deployment_file.exists()
    assert again.code == 0, "no deployment file: the release's name is looked up, and it is already gone"
    assert f"ACI service {ACI_NAME} is already gone" in again.logs


def test_down_refuses_service_of_other_type(cli: Any, project: Project, azure: FakeAzure, monkeypatch: Any) -> None:
    monkeypatch.setenv("AZUREML_AKS_COMPUTE", "prod-aks")
    assert cli("up", "--target", "aks", "--force", *project.args()).code == 0
    result = cli("down", "--target", "aci", "--name", "forecast-aks", "--artifacts", str(project.artifacts))

    assert result.code == 2
    assert (
        result.last_line
        == "deploy: error: service forecast-aks is an AKS service, not ACI; pass --target aks to remove it"
    )
    assert "forecast-aks" in azure.services


# -- aks: the promotion gate -------------------------------------------------------------------------------------
@pytest.fixture
def aks_env(monkeypatch: pytest.MonkeyPatch, azure: FakeAzure) -> FakeAzure:
    monkeypatch.setenv("AZUREML_AKS_COMPUTE", "prod-aks")
    return azure


@pytest.mark.parametrize(
    ("decision", "code", "message"),
    [
        (None, 2, "decision.json: no decision; run the judge (`python -m load judge`) first or pass --decision"),
        (
            {"verdict": "hold", "reasons": ["only 180 requests, need 500"]},
            1,
            "promotion refused: the judge's verdict is 'hold' (only 180 requests, need 500)",
        ),
        ({"verdict": "reject", "reasons": ["p99 912 ms > 500 ms"]}, 1, "the judge's verdict is 'reject' (p99 912 ms"),
        ({"verdict": "promoted"}, 2, "verdict 'promoted' is not one of promote, hold, reject; rerun the judge"),
    ],
    ids=["no-decision", "hold", "reject", "unknown-verdict"],
)
def test_aks_refuses_without_promote(
    cli: Any, project: Project, aks_env: FakeAzure, decision: dict | None, code: int, message: str
) -> None:
    if decision is not None:
        project.decide(**decision)
    result = cli("up", "--target", "aks", *project.args())

    assert result.code == code and message in result.last_line
    assert aks_env.sdk_built == 0 and aks_env.services == {}, "a refused promotion touches nothing"


def test_aks_refuses_a_decision_about_another_model(cli: Any, project: Project, aks_env: FakeAzure) -> None:
    project.decide("promote", model={"name": "demand-forecast", "version": "0123456789ab"})
    result = cli("up", "--target", "aks", *project.args())

    assert result.code == 1
    assert "the decision judged model version '0123456789ab', but the model folder holds" in result.last_line
    assert aks_env.sdk_built == 0 and aks_env.services == {}, "a refused promotion touches nothing"


def test_aks_promotes_the_judged_model(cli: Any, project: Project, aks_env: FakeAzure) -> None:
    version = json.loads((project.model / "model.json").read_text())["version"]
    project.decide("promote", model={"name": "demand-forecast", "version": version})
    result = cli("up", "--target", "aks", *project.args())

    assert result.code == 0, result.err


def test_aks_force_promotes_and_records_override(cli: Any, project: Project, aks_env: FakeAzure) -> None:
    project.decide("hold", reasons=["only 180 requests, need 500"])
    result = cli("up", "--target", "aks", "--force", *project.args())

    assert result.code == 0, result.err
    assert "--force: PROMOTING TO AKS ALTHOUGH the judge's verdict is 'hold'" in result.logs
    promotion = json.loads(project.deployment_file.read_text())["details"]["promotion"]
    assert promotion["forced"] is True and promotion["verdict"] == "hold"
    assert "next: pytest steps -m smoke --deployment" in result.out


def test_aks_uses_judge_sizing(cli: Any, project: Project, aks_env: FakeAzure) -> None:
    project.decide("promote", sizing=SIZING)
    result = cli("up", "--target", "aks", *project.args())

    assert result.code == 0, result.err
    config = aks_env.last_deploy["deployment_config"]
    assert isinstance(config, AksServiceDeploymentConfiguration)
    assert (config.autoscale_enabled, config.autoscale_min_replicas, config.autoscale_max_replicas) == (True, 2, 6)
    assert config.autoscale_target_utilization == 70
    assert (config.cpu_cores, config.memory_gb, config.replica_max_concurrent_requests) == (0.5, 1.5, 4)
    assert config.num_replicas is None and config.auth_enabled is True
    assert config.compute_target_name == "prod-aks"
    assert aks_env.calls("Model.deploy")[0]["target"] == "prod-aks"
    written = json.loads(project.deployment_file.read_text())
    assert written["name"] == "forecast-aks" and written["details"]["sizing"]["source"] == "decision.json sizing"


def test_aks_defaults_without_sizing(cli: Any, project: Project, aks_env: FakeAzure) -> None:
    project.decide("promote")
    assert cli("up", "--target", "aks", *project.args("--memory-gb", "2")).code == 0

    config = aks_env.last_deploy["deployment_config"]
    autoscale = (config.autoscale_min_replicas, config.autoscale_max_replicas, config.autoscale_target_utilization)
    assert autoscale == (1, 3, 70)
    assert (config.cpu_cores, config.memory_gb) == (1.0, 2.0)


def test_aks_fixed_replicas_disable_autoscale(cli: Any, project: Project, aks_env: FakeAzure) -> None:
    project.decide("promote", sizing={"replicas": 3, "cpu_cores": 1, "memory_gb": 1})
    assert cli("up", "--target", "aks", *project.args()).code == 0

    config = aks_env.last_deploy["deployment_config"]
    assert (config.autoscale_enabled, config.num_replicas) == (False, 3)


@pytest.mark.parametrize(
    ("sizing", "message"),
    [
        ({"autoscale_min_replicas": 1.5}, "sizing.autoscale_min_replicas = 1.5; expected a whole number"),
        ({"cpu_cores": -1}, "sizing.cpu_cores = -1; expected a number above 0"),
        ({"autoscale_target_utilization": 250}, "expected a fraction or a percent up to 100"),
        ({"autoscale_min_replicas": 5, "autoscale_max_replicas": 2}, "autoscale_min_replicas cannot be greater"),
    ],
    ids=["fractional-replicas", "negative-cpu", "utilisation-over-100", "min-over-max"],
)
def test_aks_bad_sizing_exit_2(cli: Any, project: Project, aks_env: FakeAzure, sizing: dict, message: str) -> None:
    project.decide("promote", sizing=sizing)
    result = cli("up", "--target", "aks", *project.args())

    assert result.code == 2 and message in result.last_line
    assert aks_env.sdk_built == 0


def test_aks_needs_compute_target(cli: Any, project: Project, azure: FakeAzure) -> None:
    project.decide("promote")
    result = cli("up", "--target", "aks", *project.args())

    assert result.code == 2
    assert result.last_line == (
        "deploy: error: --target aks needs the AKS compute: pass --compute-target NAME or export AZUREML_AKS_COMPUTE"
    )


def test_aks_unknown_compute_target_exit_2(cli: Any, project: Project, aks_env: FakeAzure) -> None:
    project.decide("promote")
    result = cli("up", "--target", "aks", *project.args("--compute-target", "gpu-cluster"))

    assert result.code == 2
    assert "--compute-target gpu-cluster is a AmlCompute compute, not AKS" in result.last_line


def test_aks_failed_update_keeps_serving_service(cli: Any, project: Project, aks_env: FakeAzure) -> None:
    project.decide("promote")
    assert cli("up", "--target", "aks", *project.args()).code == 0
    aks_env.data["next_outcome"] = "Failed"
    result = cli("up", "--target", "aks", *project.args())

    assert result.code == 1
    assert "left forecast-aks in place (it served before this update)" in result.last_line
    assert "python -m deploy down --target aks --name forecast-aks" in result.last_line
    assert list(aks_env.services) == ["forecast-aks"], "production is never deleted by a failed update"


def test_aks_failed_first_deploy_is_deleted(cli: Any, project: Project, aks_env: FakeAzure) -> None:
    project.decide("promote")
    aks_env.data["next_outcome"] = "Unhealthy"
    result = cli("up", "--target", "aks", *project.args())

    assert result.code == 1 and result.last_line.endswith("deleted the service, nothing is left behind")
    assert aks_env.services == {}


def test_aks_dry_run_shows_refusal(cli: Any, project: Project, aks_env: FakeAzure) -> None:
    project.decide("reject", reasons=["error ratio 4 % > 1 %"], sizing=SIZING)
    result = cli("up", "--target", "aks", "--dry-run", *project.args())

    assert result.code == 0, result.err
    plan = json.loads(result.out.partition("\n")[2])
    assert plan["promotion"]["refused"] is True and "error ratio 4 % > 1 %" in plan["promotion"]["because"]
    assert plan["deployment_configuration"]["class"] == "AksServiceDeploymentConfiguration"
    assert plan["deployment_configuration"]["autoscale_max_replicas"] == 6
    assert aks_env.sdk_built == 0


# -- managed: the venv switch ----------------------------------------------------------------------------------------
def test_managed_without_venv_v2_exit_2(project: Project) -> None:
    env = {**os.environ, "RELEASE_V2_PYTHON": str(project.artifacts / "no-such-python")}
    env.pop("RELEASE_V2_REEXEC", None)
    done = subprocess.run(
        [sys.executable, "-m", "deploy", "up", "--target", "managed", "--dry-run", *project.args()],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    if "azure.ai.ml" in sys.modules or done.returncode == 0:
        pytest.skip("this interpreter has azure-ai-ml itself; nothing to switch")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"deploy: error: --target managed needs azure-ai-ml, kept apart from azureml-core in .venv-v2 "
        f"({project.artifacts / 'no-such-python'} is missing); run `make venv-v2`"
    )


@pytest.mark.skipif(not (PROJECT_ROOT / ".venv-v2" / "bin" / "python").is_file(), reason="needs `make venv-v2`")
def test_managed_dry_run_reexecs_in_venv_v2(project: Project) -> None:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED and not k.startswith(("AZUREML_", "RELEASE_"))}
    env.update({**WORKSPACE_ENV, **SP_ENV}, BUILD_BUILDID="77")
    done = subprocess.run(
        [sys.executable, "-m", "deploy", "up", "--target", "managed", "--dry-run", *project.args()],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout.partition("\n")[2])
    assert plan["endpoint"]["name"] == "forecast-ml-r77" and plan["endpoint"]["auth_mode"] == "key"
    assert plan["deployment"]["type"] == "managed"
    assert_no_secret(done.stdout, done.stderr)


# -- nothing leaks, seen from outside ------------------------------------------------------------------------------
def test_no_output_or_artifact_holds_a_secret(project: Project, tmp_path: Path) -> None:
    """Run the real command line in its own processes (fake workspace persisted between them) and grep everything."""
    env = {k: v for k, v in os.environ.items() if k not in CLEARED and not k.startswith("AZUREML_")}
    env.update({**WORKSPACE_ENV, **SP_ENV}, RELEASE_RELEASEID="42", AZUREML_AKS_COMPUTE="prod-aks")
    env["FAKE_AZURE_STATE"] = str(tmp_path / "fake-azure.json")
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), str(PROJECT_ROOT / "tests")])
    state = FakeAzure()
    state.data["log_text"] += f"\nDEBUG env AZUREML_CLIENT_SECRET={FAKE_SECRET}"  # a container log that leaks
    state.save(Path(env["FAKE_AZURE_STATE"]))
    outputs: list[str] = []

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, RUNNER, *argv],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            check=False,
        )
        outputs.extend([done.stdout, done.stderr])
        return done

    aks_file = str(project.artifacts / "aks" / "deployment.json")
    assert run("-v", "up", "--target", "aci", *project.args()).returncode == 0
    assert run("describe", "--artifacts", str(project.artifacts)).returncode == 0
    key = subprocess.run(
        [sys.executable, RUNNER, "key", "--artifacts", str(project.artifacts)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    assert key.stdout == f"{FAKE_KEY}\n", "`key` is the one place the key is printed, on request"
    outputs.append(key.stderr)
    project.decide("promote", sizing=SIZING)
    assert run("-v", "up", "--target", "aks", "--deployment", aks_file, *project.args()).returncode == 0
    state = FakeAzure.load(Path(env["FAKE_AZURE_STATE"]))
    state.data["next_outcome"] = "Unhealthy"
    state.save(Path(env["FAKE_AZURE_STATE"]))
    assert run("-v", "up", "--target", "aci", *project.args()).returncode == 1
    assert run("down", "--target", "aci", "--artifacts", str(project.artifacts)).returncode == 0
    assert run("down", "--deployment", aks_file, "--artifacts", str(project.artifacts)).returncode == 0

    assert FakeAzure.load(Path(env["FAKE_AZURE_STATE"])).services == {}, "every service was removed"
    files = [path for path in project.artifacts.rglob("*") if path.is_file()]
    assert any(path.name.endswith(".log") for path in files), "the failed service's log was saved"
    assert_no_secret(*outputs, *(path.read_text() for path in files))
    assert "***" in "".join(path.read_text() for path in files if path.suffix == ".log"), "the leaky log was scrubbed"


def test_scrub_replaces_registered_secrets() -> None:
    azure_common.remember_secret("abc")  # too short to be a secret worth scrubbing
    azure_common.remember_secret("s3cr3t-value")
    assert azure_common.scrub("token s3cr3t-value, abc") == "token ***, abc"
