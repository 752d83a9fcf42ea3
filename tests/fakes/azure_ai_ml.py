"""A fake MLClient (azure-ai-ml, SDK v2) for the managed target: models, online endpoints and deployments.

Follows the SDK's behaviour (azure-ai-ml 1.35): `begin_*` return pollers whose `result(timeout)` raises
HttpResponseError when the operation fails and returns with `done()` False when the timeout passes first;
`get` raises ResourceNotFoundError for a missing resource; `get_keys` returns EndpointAuthKeys. The entities the
target passes in are azure-ai-ml's real ones and are checked as such. Runs only under .venv-v2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from azure.ai.ml.entities import EndpointAuthKeys, ManagedOnlineDeployment, ManagedOnlineEndpoint, Model
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import AzureCliCredential, ClientSecretCredential, ManagedIdentityCredential

FAKE_KEY = "fake-endpoint-key-Zr5Tn8Vb2"
FAKE_SECONDARY = "fake-endpoint-key-2-Lm3Kq"
OUTCOMES = ("Succeeded", "Failed", "failed-state", "timeout")
DEPLOYMENT_LOG = """Azure ML Inferencing HTTP server v1.5.1
Server Started
Encountered Exception in init(): Traceback (most recent call last):
RuntimeError: could not load model.pkl from AZUREML_MODEL_DIR"""
CRASH = (
    "(ResourceNotReady) User container has crashed or terminated: Liveness probe failed. "
    "Code: ResourceNotReady\nMessage: User container has crashed or terminated."
)


class FakePoller:
    """An LROPoller stand-in: the outcome is decided when the operation starts."""

    def __init__(self, outcome: str, value: Any = None, *, error: str = CRASH) -> None:
        self.outcome, self.value, self.error = outcome, value, error
        self.waited: list[float | None] = []

    def result(self, timeout: float | None = None) -> Any:
        self.waited.append(timeout)
        if self.outcome == "Failed":
            raise HttpResponseError(message=self.error)
        return None if self.outcome == "timeout" else self.value

    def done(self) -> bool:
        return self.outcome != "timeout"

    def status(self) -> str:
        return {"timeout": "InProgress", "Failed": "Failed"}.get(self.outcome, "Succeeded")


@dataclass
class EndpointState:
    name: str
    provisioning_state: str = "Succeeded"
    traffic: dict[str, int] = field(default_factory=dict)
    auth_mode: str = "key"

    @property
    def scoring_uri(self) -> str:
        return f"https://{self.name}.westeurope.inference.ml.azure.com/score"

    @property
    def openapi_uri(self) -> str:
        return f"https://{self.name}.westeurope.inference.ml.azure.com/swagger.json"


@dataclass
class DeploymentState:
    name: str
    endpoint_name: str
    provisioning_state: str
    instance_type: str
    entity: Any


class FakeWorkspaceV2:
    """The fake workspace's contents and what the client was asked to do."""

    def __init__(self) -> None:
        self.models: dict[tuple[str, str], Model] = {}
        self.endpoints: dict[str, EndpointState] = {}
        self.deployments: dict[tuple[str, str], DeploymentState] = {}
        self.next_outcome = "Succeeded"
        self.fail: dict[str, str] = {}
        self.log_text = DEPLOYMENT_LOG
        self.calls: list[tuple[str, Any]] = []
        self.clients: list[dict[str, Any]] = []

    def client_class(self) -> Any:
        workspace = self

        class MLClient:
            def __init__(
                self,
                credential: Any,
                subscription_id: str | None = None,
                resource_group_name: str | None = None,
                workspace_name: str | None = None,
                **_: Any,
            ) -> None:
                credentials = (ClientSecretCredential, AzureCliCredential, ManagedIdentityCredential)
                assert isinstance(credential, credentials), f"{type(credential)} is not an azure-identity credential"
                workspace.clients.append(
                    {"credential": type(credential).__name__, "subscription_id": subscription_id,
                     "resource_group_name": resource_group_name, "workspace_name": workspace_name}
                )  # fmt: skip
                if "MLClient" in workspace.fail:
                    raise HttpResponseError(message=workspace.fail["MLClient"])
                self.models = Models(workspace)
                self.online_endpoints = Endpoints(workspace)
                self.online_deployments = Deployments(workspace)

        return MLClient


class Models:
    def __init__(self, workspace: FakeWorkspaceV2) -> None:
        self.ws = workspace

    def get(self, name: str, version: str | None = None, label: str | None = None) -> Model:
        self.ws.calls.append(("models.get", (name, version)))
        if (name, str(version)) not in self.ws.models:
            raise ResourceNotFoundError(message=f"Model container with name: {name} not found.")
        return self.ws.models[(name, str(version))]

    def create_or_update(self, model: Model) -> Model:
        assert isinstance(model, Model), "models.create_or_update takes a real Model entity"
        self.ws.calls.append(("models.create_or_update", (model.name, model.version, model.path)))
        self.ws.models[(model.name, str(model.version))] = model
        return model


class Endpoints:
    def __init__(self, workspace: FakeWorkspaceV2) -> None:
        self.ws = workspace

    def get(self, name: str, *, local: bool = False) -> EndpointState:
        self.ws.calls.append(("online_endpoints.get", name))
        if name not in self.ws.endpoints:
            raise ResourceNotFoundError(message=f"Resource {name} not found.")
        return self.ws.endpoints[name]

    def begin_create_or_update(self, endpoint: ManagedOnlineEndpoint, *, local: bool = False) -> FakePoller:
        assert isinstance(endpoint, ManagedOnlineEndpoint), "a real ManagedOnlineEndpoint entity"
        assert endpoint.auth_mode == "key", "key auth is on"
        self.ws.calls.append(("online_endpoints.begin_create_or_update", (endpoint.name, dict(endpoint.traffic))))
        state = self.ws.endpoints.setdefault(endpoint.name, EndpointState(name=endpoint.name))
        for deployment, share in (endpoint.traffic or {}).items():
            assert (endpoint.name, deployment) in self.ws.deployments, f"traffic to unknown deployment {deployment}"
            state.traffic[deployment] = share
        return FakePoller("Succeeded", state)

    def get_keys(self, name: str) -> EndpointAuthKeys:
        self.ws.calls.append(("online_endpoints.get_keys", name))
        return EndpointAuthKeys(primary_key=FAKE_KEY, secondary_key=FAKE_SECONDARY)

    def begin_delete(self, name: str | None = None, *, local: bool = False) -> FakePoller:
        self.ws.calls.append(("online_endpoints.begin_delete", name))
        if "delete" in self.ws.fail:
            raise HttpResponseError(message=self.ws.fail["delete"])
        if name not in self.ws.endpoints:
            raise ResourceNotFoundError(message=f"Resource {name} not found.")
        del self.ws.endpoints[name]
        for key in [key for key in self.ws.deployments if key[0] == name]:
            del self.ws.deployments[key]
        return FakePoller("Succeeded")


class Deployments:
    def __init__(self, workspace: FakeWorkspaceV2) -> None:
        self.ws = workspace

    def begin_create_or_update(self, deployment: ManagedOnlineDeployment, **_: Any) -> FakePoller:
        assert isinstance(deployment, ManagedOnlineDeployment), "a real ManagedOnlineDeployment entity"
        assert deployment.endpoint_name in self.ws.endpoints, "the endpoint is created first"
        self.ws.calls.append(("online_deployments.begin_create_or_update", deployment))
        outcome = self.ws.next_outcome
        state = "Succeeded" if outcome in ("Succeeded", "timeout") else "Failed"
        record = DeploymentState(
            name=deployment.name,
            endpoint_name=deployment.endpoint_name,
            provisioning_state="Updating" if outcome == "timeout" else state,
            instance_type=deployment.instance_type,
            entity=deployment,
        )
        self.ws.deployments[(deployment.endpoint_name, deployment.name)] = record
        return FakePoller("Succeeded" if outcome == "failed-state" else outcome, record)

    def get(self, name: str, endpoint_name: str, *, local: bool = False) -> DeploymentState:
        self.ws.calls.append(("online_deployments.get", (endpoint_name, name)))
        if (endpoint_name, name) not in self.ws.deployments:
            raise ResourceNotFoundError(message=f"Deployment {name} not found.")
        return self.ws.deployments[(endpoint_name, name)]

    def get_logs(self, name: str, endpoint_name: str, lines: int, **_: Any) -> str:
        self.ws.calls.append(("online_deployments.get_logs", (endpoint_name, name, lines)))
        return "\n".join(self.ws.log_text.splitlines()[-lines:])
