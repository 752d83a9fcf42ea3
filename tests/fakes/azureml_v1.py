"""A fake Azure ML workspace behind azureml-core's network calls: Workspace, Model.list/register/deploy,
Webservice(workspace, name), ComputeTarget(workspace, name) and the web service handle.

It follows the SDK's documented behaviour (azureml/core/webservice/webservice.py, model.py, 1.61):
a deployment starts `Transitioning`; `wait_for_deployment` ends `Healthy`, or raises WebserviceException
("Service deployment polling reached non-successful terminal state, current service state: ...") for
`Unhealthy`/`Failed`, or ("Deployment polling exceeded timeout override of ...s") when timeout_sec runs out;
`Webservice(ws, name)` raises "WebserviceNotFound: ..." for a missing service. The configuration objects the
targets pass in are the SDK's real ones and are checked as such. State is a plain dict so a test can persist it
between CLI processes (see run_deploy.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from azureml.core.authentication import AbstractAuthentication
from azureml.core.model import InferenceConfig
from azureml.core.webservice.aci import AciServiceDeploymentConfiguration
from azureml.core.webservice.aks import AksServiceDeploymentConfiguration
from azureml.exceptions import ComputeTargetException, WebserviceException

from deploy.azure_v1 import Sdk

FAKE_KEY = "fake-primary-key-7Hq2Zx9Lm4"
FAKE_SECONDARY = "fake-secondary-key-Pp0Ww3"
OUTCOMES = ("Healthy", "Unhealthy", "Failed", "timeout", "unhealthy-after-success")
SERVICE_LOG = """2026-12-04 15:00:01,000 I [1] azmlinfsrv - Starting gunicorn
2026-12-04 15:00:02,000 E [1] azmlinfsrv - Encountered Exception in init()
Traceback (most recent call last):
  File "/var/azureml-app/score.py", line 12, in init
RuntimeError: could not load model.pkl from AZUREML_MODEL_DIR
2026-12-04 15:00:03,000 I [1] azmlinfsrv - Worker exiting"""
ERRORS = {
    "Unhealthy": {
        "code": "AciDeploymentFailed",
        "statusCode": 400,
        "message": "Aci Deployment failed with exception: Your container application crashed.",
        "details": [{"code": "CrashLoopBackOff", "message": "Your container application crashed. Check get_logs()."}],
    },
    "Failed": {
        "code": "ImageBuildFailure",
        "statusCode": 400,
        "message": "Image build failed: pip could not resolve statsmodels==0.15.0.",
    },
}


def new_state() -> dict[str, Any]:
    """An empty workspace with one AKS cluster attached."""
    return {
        "models": [],
        "services": {},
        "computes": {"prod-aks": "AKS", "gpu-cluster": "AmlCompute"},
        "next_outcome": "Healthy",
        "fail": {},  # operation name -> exception message to raise instead
        "log_text": SERVICE_LOG,
        "calls": [],
        "deploy_count": 0,
    }


class FakeAzure:
    """One fake workspace (state in `self.data`); `sdk()` gives the targets their Sdk seam."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        self.data = state if state is not None else new_state()
        self.last_deploy: dict[str, Any] = {}  # the real SDK objects of the last Model.deploy (in-process only)
        self.sdk_built = 0

    @classmethod
    def load(cls, path: Path) -> FakeAzure:
        return cls(json.loads(path.read_text()) if path.exists() else None)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.data, indent=2))

    # -- what tests inspect -------------------------------------------------------------------------------------
    @property
    def services(self) -> dict[str, Any]:
        return dict(self.data["services"])

    def calls(self, operation: str) -> list[dict[str, Any]]:
        return [call for call in self.data["calls"] if call["op"] == operation]

    def record(self, operation: str, **fields: Any) -> None:
        self.data["calls"].append({"op": operation, **fields})

    def maybe_fail(self, operation: str, exc_type: type[Exception] = WebserviceException) -> None:
        message = self.data["fail"].get(operation)
        if message:
            raise exc_type(message)

    # -- the seam -------------------------------------------------------------------------------------------------
    def sdk(self) -> Sdk:
        self.sdk_built += 1
        azure = self

        class Model:
            @staticmethod
            def list(workspace: Any, name: str | None = None, tags: list[list[str]] | None = None, **_: Any) -> list:
                azure.record("Model.list", name=name, tags=tags)
                azure.maybe_fail("Model.list")
                wanted = {key: value for key, value in (tags or [])}
                return [
                    FakeModel(**model)
                    for model in azure.data["models"]
                    if (name is None or model["name"] == name)
                    and all(model["tags"].get(key) == value for key, value in wanted.items())
                ]

            @staticmethod
            def register(workspace: Any, model_path: str, model_name: str, tags: dict | None = None, **kw: Any) -> Any:
                azure.record("Model.register", path=model_path, name=model_name, tags=tags)
                azure.maybe_fail("Model.register")
                if not Path(model_path).exists():
                    raise WebserviceException(f"Error, provided model path {model_path} cannot be found")
                versions = [m["version"] for m in azure.data["models"] if m["name"] == model_name]
                model = {"name": model_name, "version": max(versions, default=0) + 1, "tags": dict(tags or {})}
                azure.data["models"].append(model)
                return FakeModel(**model)

            @staticmethod
            def deploy(
                workspace: Any,
                name: str,
                models: list,
                inference_config: Any = None,
                deployment_config: Any = None,
                deployment_target: Any = None,
                overwrite: bool = False,
                show_output: bool = False,
            ) -> FakeWebservice:
                return azure.deploy(
                    name=name,
                    models=models,
                    inference_config=inference_config,
                    deployment_config=deployment_config,
                    deployment_target=deployment_target,
                    overwrite=overwrite,
                )

        def workspace(subscription_id: str, resource_group: str, workspace_name: str, auth: Any = None) -> Any:
            assert isinstance(auth, AbstractAuthentication), f"auth is a {type(auth)}, not an azureml-core credential"
            azure.record(
                "Workspace",
                subscription_id=subscription_id,
                resource_group=resource_group,
                workspace_name=workspace_name,
                auth=type(auth).__name__,
            )
            azure.maybe_fail("Workspace", Exception)
            return {"workspace_name": workspace_name}

        def webservice(workspace: Any, name: str) -> FakeWebservice:
            azure.record("Webservice", name=name)
            azure.maybe_fail("Webservice")
            if name not in azure.data["services"]:
                raise WebserviceException(
                    f"WebserviceNotFound: Webservice with name {name} not found in provided workspace"
                )
            return FakeWebservice(azure, name)

        def compute_target(workspace: Any, name: str) -> FakeCompute:
            azure.record("ComputeTarget", name=name)
            if name not in azure.data["computes"]:
                raise ComputeTargetException(
                    f"ComputeTargetNotFound: Compute Target with name {name} not found in provided workspace"
                )
            return FakeCompute(name=name, type=azure.data["computes"][name])

        return Sdk(Workspace=workspace, Model=Model, Webservice=webservice, ComputeTarget=compute_target)

    def deploy(
        self,
        *,
        name: str,
        models: list,
        inference_config: Any,
        deployment_config: Any,
        deployment_target: Any,
        overwrite: bool,
    ) -> FakeWebservice:
        """Model.deploy: validate like the SDK, then create or (overwrite=True) update the service."""
        # Imported late: azureml._model_management imports azureml.core's clients and must come after them.
        from azureml._model_management._util import webservice_name_validation

        webservice_name_validation(name)
        assert isinstance(inference_config, InferenceConfig), "inference_config must be a real InferenceConfig"
        if isinstance(deployment_config, AciServiceDeploymentConfiguration):
            compute_type = "ACI"
            assert deployment_target is None, "ACI deployments take no deployment_target"
        elif isinstance(deployment_config, AksServiceDeploymentConfiguration):
            compute_type = "AKS"
            if not deployment_target and not deployment_config.compute_target_name:
                raise WebserviceException("Must have a deployment target for an AKS web service.")
        else:
            raise AssertionError(f"unexpected deployment configuration {type(deployment_config)}")
        self.maybe_fail("Model.deploy")
        existing = self.data["services"].get(name)
        if existing and not overwrite:
            raise WebserviceException(f"Error, there is already a service with name {name} found in workspace")
        self.data["deploy_count"] += 1
        conda = inference_config.environment.python.conda_dependencies
        self.record(
            "Model.deploy",
            name=name,
            overwrite=overwrite,
            models=[f"{m.name}:{m.version}" for m in models],
            entry_script=inference_config.entry_script,
            source_directory=inference_config.source_directory,
            pip=list(conda.pip_packages),
            config_class=type(deployment_config).__name__,
            target=getattr(deployment_target, "name", None),
        )
        self.last_deploy = {"inference_config": inference_config, "deployment_config": deployment_config}
        host = (
            f"{name}.westeurope.azurecontainer.io" if compute_type == "ACI" else "20.50.1.2:80/api/v1/service/" + name
        )
        self.data["services"][name] = {
            "compute_type": compute_type,
            "state": "Transitioning",
            "error": None,
            "outcome": self.data["next_outcome"],
            "scoring_uri": f"http://{host}/score",
            "tags": dict(deployment_config.tags or {}),
            "auth_enabled": deployment_config.auth_enabled,
            "generation": (existing or {}).get("generation", 0) + 1,
        }
        return FakeWebservice(self, name)


class FakeModel:
    """A registered model as Model.list/register return it."""

    def __init__(self, name: str, version: int, tags: dict[str, str]) -> None:
        self.name, self.version, self.tags = name, version, tags
        self.id = f"{name}:{version}"


class FakeCompute:
    def __init__(self, name: str, type: str) -> None:
        self.name, self.type = name, type


class FakeWebservice:
    """The handle Model.deploy and Webservice(ws, name) return, reading and writing the fake workspace."""

    def __init__(self, azure: FakeAzure, name: str) -> None:
        self._azure, self.name = azure, name
        self._gone = False

    @property
    def _record(self) -> dict[str, Any]:
        record = self._azure.data["services"].get(self.name)
        if record is None:
            raise WebserviceException(f"WebserviceNotFound: Webservice with name {self.name} not found")
        return record

    @property
    def state(self) -> str:
        return str(self._record["state"])

    @property
    def error(self) -> Any:
        return self._record["error"]

    @property
    def scoring_uri(self) -> str:
        return str(self._record["scoring_uri"])

    @property
    def swagger_uri(self) -> str:
        return self.scoring_uri.rsplit("/", 1)[0] + "/swagger.json"

    @property
    def compute_type(self) -> str:
        return str(self._record["compute_type"])

    @property
    def tags(self) -> dict[str, str]:
        return dict(self._record["tags"])

    def wait_for_deployment(self, show_output: bool = False, timeout_sec: float | None = None) -> None:
        record = self._record
        self._azure.record("wait_for_deployment", name=self.name, timeout_sec=timeout_sec)
        outcome = record["outcome"]
        operation = f"op-{self._azure.data['deploy_count']:04d}"
        if outcome == "timeout":
            # The SDK polls every 5 s and raises once the elapsed time passes timeout_sec; the state stays put.
            raise WebserviceException(
                f"Deployment polling exceeded timeout override of {float(timeout_sec or 0)}s. Current status: Running\n"
                "Deployment may be transitioning or unhealthy, use update_deployment_state() to fetch the latest "
                "status of the webservice"
            )
        if outcome in ("Healthy", "unhealthy-after-success"):
            record["state"] = "Healthy" if outcome == "Healthy" else "Unhealthy"
            print(f'{self.compute_type} service creation operation finished, operation "Succeeded"')
            return
        record["state"], record["error"] = outcome, ERRORS[outcome]
        hint = (
            "More information can be found using '.get_logs()'"
            if outcome == "Unhealthy"
            else "More information can be found here: https://example.invalid/operation-log"
        )
        raise WebserviceException(
            "Service deployment polling reached non-successful terminal state, current service state: "
            f"{outcome}\nOperation ID: {operation}\n{hint}\nError:\n{json.dumps(ERRORS[outcome], indent=2)}"
        )

    def update_deployment_state(self) -> None:
        self._azure.record("update_deployment_state", name=self.name)
        _ = self._record

    def get_logs(self, num_lines: int = 5000, init: bool = False) -> str:
        self._azure.record("get_logs", name=self.name)
        self._azure.maybe_fail("get_logs")
        return "\n".join(str(self._azure.data["log_text"]).splitlines()[-num_lines:])

    def get_keys(self) -> tuple[str, str]:
        self._azure.record("get_keys", name=self.name)
        self._azure.maybe_fail("get_keys")
        return FAKE_KEY, FAKE_SECONDARY

    def delete(self) -> None:
        self._azure.record("delete", name=self.name)
        self._azure.maybe_fail("delete")
        if self._azure.data["services"].pop(self.name, None) is None:
            print(f"No service with name {self.name} found to delete.")
