"""The `managed` target: an Azure ML v2 managed online endpoint, with azure-ai-ml in its own venv (.venv-v2).

    make venv-v2                                           # azure-ai-ml, pinned by requirements-v2.lock
    python -m deploy up --target managed                   # re-runs itself under .venv-v2/bin/python
    python -m deploy up --target managed --dry-run         # the endpoint and deployment entities, touch nothing
    python -m deploy down --target managed                 # delete the endpoint (fine when already gone)

Microsoft advises against azureml-core (v1) and azure-ai-ml (v2) in one environment, so this module imports
azure-ai-ml only inside functions and `ensure_v2_interpreter` re-execs the command in .venv-v2 when needed.
The endpoint runs the same service/score.py init()/run() on the same inference server as ACI and AKS.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from deploy.azure_common import (
    DEFAULT_KEY_ENV,
    ENTRY_SCRIPT,
    MODEL_TAG,
    NO_RELEASE,
    RELEASE_TAG,
    AuthSpec,
    ModelCard,
    WorkspaceSpec,
    check_key_env,
    check_service_dir,
    check_service_name,
    log_tail,
    one_line,
    publish_key,
    quiet_sdk_logging,
    read_model,
    read_requirements,
    release_id,
    remember_secret,
    render_plan,
    resolve_auth,
    resolve_workspace,
    routes_beside,
    save_text,
    service_name,
)
from deploy.base import DEPLOYMENT_FILE, PROJECT_ROOT, ConfigError, DeployError, Deployment

log = logging.getLogger(__name__)

V2_PYTHON_VAR: Final = "RELEASE_V2_PYTHON"  # another interpreter with azure-ai-ml (default: .venv-v2/bin/python)
REEXEC_MARK: Final = "RELEASE_V2_REEXEC"  # set on the re-exec so a broken .venv-v2 cannot loop
DEFAULT_V2_PYTHON: Final = PROJECT_ROOT / ".venv-v2" / "bin" / "python"
PREFIX: Final = "forecast-ml"
# Microsoft's documented default size for managed online deployments; the model needs far less, but smaller
# SKUs are not offered for managed online endpoints.
DEFAULT_INSTANCE_TYPE: Final = "Standard_DS3_v2"
DEFAULT_INSTANCE_COUNT: Final = 1
# Curated inference image with azmlinfsrv and Python 3.11; the conda file adds the service's pinned requirements.
BASE_IMAGE: Final = "mcr.microsoft.com/azureml/minimal-ubuntu22.04-py311-cpu-inference:latest"
# Creating an endpoint takes minutes; a deployment builds the image and rolls out, often 10-20 minutes.
DEFAULT_TIMEOUT_S: Final = 2400.0
SUCCEEDED: Final = "Succeeded"
LOG_LINES: Final = 200  # lines fetched from the deployment's container log on failure


def v2_available() -> bool:
    """True when azure.ai.ml is importable in this interpreter."""
    try:
        return importlib.util.find_spec("azure.ai.ml") is not None
    except ModuleNotFoundError:  # `azure` exists (azure-core) but `azure.ai` does not
        return False


def ensure_v2_interpreter(argv: list[str]) -> None:
    """Re-exec `python -m deploy <argv>` under .venv-v2 when azure-ai-ml is not importable here."""
    if v2_available():
        return
    python = Path(os.environ.get(V2_PYTHON_VAR) or DEFAULT_V2_PYTHON)
    if os.environ.get(REEXEC_MARK):
        raise ConfigError(f"--target managed: azure.ai.ml is not importable in {sys.executable}; run `make venv-v2`")
    if not python.is_file():
        raise ConfigError(
            f"--target managed needs azure-ai-ml, kept apart from azureml-core in .venv-v2 ({python} is missing); "
            "run `make venv-v2`"
        )
    log.debug("re-running under %s (azure-ai-ml lives there)", python)
    env = {**os.environ, REEXEC_MARK: "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(python, [str(python), "-m", "deploy", *argv], env)


@dataclass
class V2Sdk:
    """The azure-ai-ml entry point that talks to Azure; the offline tests pass a fake MLClient class."""

    MLClient: Callable[..., Any]


def real_v2_sdk() -> V2Sdk:
    from azure.ai.ml import MLClient

    return V2Sdk(MLClient=MLClient)


def v2_credential(auth: AuthSpec) -> Any:
    """An azure-identity credential for an AuthSpec (constructing one makes no network call)."""
    from azure.identity import AzureCliCredential, ClientSecretCredential, ManagedIdentityCredential

    if auth.kind == "sp":
        return ClientSecretCredential(
            tenant_id=auth.tenant_id or "", client_id=auth.client_id or "", client_secret=auth.secret()
        )
    if auth.kind == "msi":
        return ManagedIdentityCredential(client_id=auth.client_id) if auth.client_id else ManagedIdentityCredential()
    return AzureCliCredential()


@contextmanager
def sdk_call(what: str) -> Iterator[None]:
    """Turn any SDK failure into a scrubbed one-line DeployError that says what we were doing."""
    try:
        yield
    except (DeployError, KeyboardInterrupt):
        raise
    except Exception as exc:
        log.debug("%s failed", what, exc_info=True)
        raise DeployError(f"{what}: {one_line(exc)}") from None


def _not_found(exc: BaseException) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    return isinstance(exc, ResourceNotFoundError)


@dataclass(frozen=True)
class Settings:
    """Validated `up` options for the managed target."""

    endpoint: str
    deployment: str
    card: ModelCard
    service_dir: Path
    workspace: WorkspaceSpec
    auth: AuthSpec
    key_env: str
    timeout: float
    keep_failed: bool
    dry_run: bool
    release: str
    artifacts: Path
    instance_type: str
    instance_count: int
    workspace_config: Path | None


class ManagedTarget:
    """Deploy the model to a managed online endpoint (key auth), route all traffic to it, wait for Succeeded."""

    name = "managed"

    def __init__(self, sdk_factory: Callable[[], V2Sdk] = real_v2_sdk) -> None:
        self.sdk_factory = sdk_factory

    def settings(self, *, model_dir: Path, artifacts: Path, options: dict[str, Any]) -> Settings:
        for key, flag in (("scoring_uri", "--scoring-uri"), ("workers", "--workers"), ("force", "--force")):
            if options.get(key):
                raise ConfigError(f"{flag} does not apply to --target managed; drop it")
        card = read_model(model_dir)
        timeout = options.get("timeout") or DEFAULT_TIMEOUT_S
        count = options.get("instance_count") or DEFAULT_INSTANCE_COUNT
        if not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigError(f"--timeout {timeout!r}: expected a number of seconds above 0")
        if not isinstance(count, int) or count < 1:
            raise ConfigError(f"--instance-count {count!r}: expected a whole number of at least 1")
        config = options.get("workspace_config")
        return Settings(
            endpoint=service_name(prefix=PREFIX, explicit=options.get("name"), fallback=card.version),
            deployment=check_service_name(f"d-{card.version}"[:32].rstrip("-"), flag="the deployment name"),
            card=card,
            service_dir=check_service_dir(options.get("service_dir")),
            workspace=resolve_workspace(Path(config) if config else None),
            auth=resolve_auth(options.get("auth")),
            key_env=check_key_env(options.get("key_env")),
            timeout=float(timeout),
            keep_failed=bool(options.get("keep_failed")),
            dry_run=bool(options.get("dry_run")),
            release=release_id() or NO_RELEASE,
            artifacts=artifacts,
            instance_type=options.get("instance_type") or DEFAULT_INSTANCE_TYPE,
            instance_count=count,
            workspace_config=Path(config) if config else None,
        )

    def entities(self, settings: Settings) -> tuple[Any, Any, Any]:
        """The real azure-ai-ml entities: endpoint (key auth), model, deployment."""
        from azure.ai.ml.constants import AssetTypes
        from azure.ai.ml.entities import (
            CodeConfiguration,
            Environment,
            ManagedOnlineDeployment,
            ManagedOnlineEndpoint,
            Model,
        )

        card = settings.card
        tags = {MODEL_TAG: card.version, "model_name": card.name, RELEASE_TAG: settings.release}
        endpoint = ManagedOnlineEndpoint(
            name=settings.endpoint,
            auth_mode="key",
            description=f"{card.name}: release {settings.release}",
            tags=tags,
        )
        model = Model(
            name=card.name,
            version=card.version,
            path=str(card.path),
            type=AssetTypes.CUSTOM_MODEL,
            tags={MODEL_TAG: card.version},
            description=f"{card.name} {card.version} from the build stage",
        )
        python = f"python={sys.version_info.major}.{sys.version_info.minor}"
        conda = {
            "name": f"{card.name}-serving",
            "channels": ["conda-forge"],
            "dependencies": [python, "pip", {"pip": read_requirements(settings.service_dir)}],
        }
        environment = Environment(name=f"{card.name}-serving", image=BASE_IMAGE, conda_file=conda)
        deployment = ManagedOnlineDeployment(
            name=settings.deployment,
            endpoint_name=settings.endpoint,
            model=model,
            environment=environment,
            code_configuration=CodeConfiguration(code=str(settings.service_dir), scoring_script=ENTRY_SCRIPT),
            instance_type=settings.instance_type,
            instance_count=settings.instance_count,
            tags=tags,
        )
        return endpoint, model, deployment

    def plan(self, settings: Settings, endpoint: Any, deployment: Any) -> dict[str, Any]:
        return {
            "target": self.name,
            "workspace": {**settings.workspace.describe(), "source": settings.workspace.source},
            "auth": settings.auth.describe(),
            "endpoint": _plain(endpoint._to_dict()),
            "deployment": _plain(deployment._to_dict()),
            "traffic": {settings.deployment: 100},
            "wait_timeout_s": settings.timeout,
            "on_failure": "delete the endpoint" if not settings.keep_failed else "keep (--keep-failed)",
            "key": {"env": settings.key_env},
        }

    def up(self, *, model_dir: Path, artifacts: Path, options: dict[str, Any]) -> Deployment:
        """Create or update the endpoint and its deployment, wait for Succeeded, route traffic, hand the key on."""
        quiet_sdk_logging("azure", "azure.ai.ml", "azure.identity", "azure.core")
        settings = self.settings(model_dir=model_dir, artifacts=artifacts, options=options)
        endpoint, model, deployment = self.entities(settings)
        plan = self.plan(settings, endpoint, deployment)
        if settings.dry_run:
            print(render_plan("deploy: dry run of --target managed: nothing was created; the plan:", plan))
            return self.stand_in(settings.endpoint, key_env=settings.key_env, card=settings.card)
        client = self.client(settings.workspace, settings.auth)
        deployment.model = self.registered_model(client, model)
        existed = self.endpoint_exists(client, settings.endpoint)
        deadline = time.monotonic() + settings.timeout
        try:
            self.wait(client, client.online_endpoints.begin_create_or_update(endpoint), settings, deadline, "endpoint")
            poller = client.online_deployments.begin_create_or_update(deployment)
            self.wait(client, poller, settings, deadline, "deployment")
            self.check_state(client, settings)
            endpoint.traffic = {settings.deployment: 100}
            self.wait(client, client.online_endpoints.begin_create_or_update(endpoint), settings, deadline, "traffic")
            with sdk_call(f"cannot read endpoint {settings.endpoint}"):
                live = client.online_endpoints.get(name=settings.endpoint)
            if live.provisioning_state != SUCCEEDED:
                raise DeployError(f"endpoint {settings.endpoint} is {live.provisioning_state}, not {SUCCEEDED}")
            with sdk_call(f"cannot read the keys of endpoint {settings.endpoint}"):
                key = client.online_endpoints.get_keys(name=settings.endpoint).primary_key
            remember_secret(key)
        except BaseException as exc:
            note = self.clean_up(client, settings, existed=existed)
            if isinstance(exc, DeployError):
                raise DeployError(f"{exc}; {note}") from None
            if isinstance(exc, Exception):
                raise DeployError(f"managed deployment {settings.endpoint}: {one_line(exc)}; {note}") from None
            raise
        publish_key(key_env=settings.key_env, key=key, service=settings.endpoint, fetch_hint=self.key_hint(settings))
        return self.describe(live, settings, plan)

    def client(self, workspace: WorkspaceSpec, auth: AuthSpec) -> Any:
        credential = v2_credential(auth)
        with sdk_call(f"cannot open workspace {workspace.workspace_name}"):
            return self.sdk_factory().MLClient(
                credential=credential,
                subscription_id=workspace.subscription_id,
                resource_group_name=workspace.resource_group,
                workspace_name=workspace.workspace_name,
            )

    def registered_model(self, client: Any, model: Any) -> Any:
        """The registered model version named by model.json's hash, registering it the first time."""
        try:
            found = client.models.get(name=model.name, version=model.version)
            log.info("reusing registered model %s:%s", model.name, model.version)
            return found
        except Exception as exc:
            if not _not_found(exc):
                raise DeployError(f"cannot look up model {model.name}:{model.version}: {one_line(exc)}") from None
        with sdk_call(f"cannot register model {model.name}:{model.version}"):
            registered = client.models.create_or_update(model)
        log.info("registered model %s:%s from %s", model.name, model.version, model.path)
        return registered

    def endpoint_exists(self, client: Any, name: str) -> bool:
        try:
            client.online_endpoints.get(name=name)
        except Exception as exc:
            if _not_found(exc):
                return False
            raise DeployError(f"cannot look up endpoint {name}: {one_line(exc)}") from None
        return True

    def wait(self, client: Any, poller: Any, settings: Settings, deadline: float, step: str) -> Any:
        """Wait for a long-running operation within the overall --timeout; failures carry the log tail."""
        remaining = max(deadline - time.monotonic(), 0.0)
        try:
            result = poller.result(timeout=remaining)
        except Exception as exc:
            if step == "deployment":
                tail, path = self.save_logs(client, settings)
                log.error("last lines of the deployment log of %s (all in %s):\n%s", settings.endpoint, path, tail)
            raise DeployError(f"{step} of {settings.endpoint} failed: {one_line(exc)}") from None
        if not poller.done():
            raise DeployError(
                f"{step} of {settings.endpoint} still {poller.status()} after waiting {settings.timeout:g} s "
                "(--timeout)"
            )
        return result

    def check_state(self, client: Any, settings: Settings) -> None:
        """The health rule: the deployment must be Succeeded; anything else fails with the state and log tail."""
        with sdk_call(f"cannot read deployment {settings.deployment}"):
            state = client.online_deployments.get(name=settings.deployment, endpoint_name=settings.endpoint)
        provisioning = getattr(state, "provisioning_state", None) or "unknown"
        if provisioning == SUCCEEDED:
            log.info("deployment %s of %s is %s", settings.deployment, settings.endpoint, provisioning)
            return
        tail, path = self.save_logs(client, settings)
        log.error("last lines of the deployment log of %s (all in %s):\n%s", settings.endpoint, path, tail)
        raise DeployError(f"deployment {settings.deployment} of {settings.endpoint} is {provisioning}, not {SUCCEEDED}")

    def save_logs(self, client: Any, settings: Settings) -> tuple[str, Path]:
        path = settings.artifacts / f"managed-{settings.endpoint}.log"
        try:
            text = client.online_deployments.get_logs(
                name=settings.deployment, endpoint_name=settings.endpoint, lines=LOG_LINES
            )
        except Exception as exc:
            text = f"(get_logs() failed: {one_line(exc)})"
        save_text(path, text or "")
        return log_tail(text), path

    def clean_up(self, client: Any, settings: Settings, *, existed: bool) -> str:
        """After a failure: delete an endpoint this run created, or say exactly how to remove it."""
        down = f"python -m deploy down --target managed --name {settings.endpoint}"
        if settings.workspace_config:
            down += f" --workspace-config {settings.workspace_config}"
        if settings.keep_failed:
            return f"kept it for debugging (--keep-failed); remove it with `{down}`"
        if existed:
            return f"left endpoint {settings.endpoint} in place (it served before this update); `{down}` removes it"
        try:
            with sdk_call(f"deleting endpoint {settings.endpoint}"):
                client.online_endpoints.begin_delete(name=settings.endpoint).result(timeout=settings.timeout)
        except DeployError as exc:
            log.error("could not delete %s after the failure: %s", settings.endpoint, exc)
            return f"deleting it failed too; remove it with `{down}`"
        except KeyboardInterrupt:
            return f"interrupted while deleting it; remove it with `{down}`"
        return "deleted the endpoint, nothing is left behind"

    def key_hint(self, settings: Settings) -> str:
        return f'"$(python -m deploy key --target managed --name {settings.endpoint})"'

    def describe(self, live: Any, settings: Settings, plan: dict[str, Any]) -> Deployment:
        scoring_uri = live.scoring_uri
        if not scoring_uri:
            raise DeployError(f"endpoint {settings.endpoint} is {SUCCEEDED} but has no scoring URI")
        health_uri, swagger_uri = routes_beside(scoring_uri)
        return Deployment(
            target=self.name,
            name=settings.endpoint,
            scoring_uri=scoring_uri,
            health_uri=health_uri,
            swagger_uri=getattr(live, "openapi_uri", None) or swagger_uri,
            auth=True,
            key_env=settings.key_env,
            model={"name": settings.card.name, "version": settings.card.version},
            details={
                "workspace": settings.workspace.describe(),
                "auth": settings.auth.kind,
                "deployment": settings.deployment,
                "state": SUCCEEDED,
                "instance_type": settings.instance_type,
                "instance_count": settings.instance_count,
                "release_id": settings.release,
            },
        )

    def stand_in(self, name: str, *, key_env: str, card: ModelCard | None = None) -> Deployment:
        model = {"name": card.name, "version": card.version} if card else {}
        return Deployment(
            target=self.name,
            name=name,
            scoring_uri="",
            health_uri="",
            swagger_uri=None,
            auth=True,
            key_env=key_env,
            model=model,
        )

    # -- down, key, deployment by name -------------------------------------------------------------------------
    def client_for(self, deployment: Deployment, options: dict[str, Any]) -> Any:
        config = options.get("workspace_config")
        recorded = deployment.details.get("workspace")
        if config or not isinstance(recorded, dict):
            workspace = resolve_workspace(Path(config) if config else None)
        else:
            workspace = WorkspaceSpec(**recorded, source=DEPLOYMENT_FILE)
        return self.client(workspace, resolve_auth(options.get("auth") or deployment.details.get("auth")))

    def down(self, deployment: Deployment, *, artifacts: Path, options: dict[str, Any] | None = None) -> None:
        """Delete the endpoint (and with it its deployments); an endpoint that is already gone is fine."""
        quiet_sdk_logging("azure", "azure.ai.ml", "azure.identity", "azure.core")
        client = self.client_for(deployment, options or {})
        try:
            client.online_endpoints.begin_delete(name=deployment.name).result(timeout=DEFAULT_TIMEOUT_S)
        except Exception as exc:
            if _not_found(exc):
                log.info("endpoint %s is already gone", deployment.name)
                return
            raise DeployError(f"cannot delete endpoint {deployment.name}: {one_line(exc)}") from None
        log.info("deleted endpoint %s", deployment.name)

    def fetch_key(self, deployment: Deployment, options: dict[str, Any] | None = None) -> str:
        quiet_sdk_logging("azure", "azure.ai.ml", "azure.identity", "azure.core")
        client = self.client_for(deployment, options or {})
        with sdk_call(f"cannot read the keys of endpoint {deployment.name}"):
            key: str = client.online_endpoints.get_keys(name=deployment.name).primary_key
        remember_secret(key)
        return key

    def deployment_by_name(self, *, name: str | None, artifacts: Path, options: dict[str, Any]) -> Deployment:
        if not name and release_id():
            name = service_name(prefix=PREFIX, explicit=None, fallback=None)
        if not name:
            try:
                card = read_model(options.get("model_dir") or artifacts / "model")
            except ConfigError:
                raise ConfigError(
                    "no deployment file and no endpoint name: pass --deployment or --name for --target managed"
                ) from None
            name = service_name(prefix=PREFIX, explicit=None, fallback=card.version)
        return self.stand_in(check_service_name(name), key_env=DEFAULT_KEY_ENV)


def _plain(value: Any) -> Any:
    """OrderedDicts and paths from an entity's dict form as plain JSON values."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


TARGET = ManagedTarget()
