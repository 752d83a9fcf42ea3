"""azureml-core (SDK v1) plumbing shared by the aci and aks targets: the SDK seam, the health rule, cleanup.

Every call that reaches Azure goes through `Sdk` (Workspace, Model.list/register/deploy, Webservice, ComputeTarget);
the offline tests hand the targets a fake `Sdk` and keep everything else real, configuration objects included.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from azureml.core import Environment
from azureml.core.conda_dependencies import CondaDependencies
from azureml.core.model import InferenceConfig
from azureml.exceptions import AuthenticationException, ComputeTargetException, WebserviceException

from deploy.azure_common import (
    DEFAULT_KEY_ENV,
    ENTRY_SCRIPT,
    IN_PIPELINE_VAR,
    MODEL_TAG,
    NO_RELEASE,
    RELEASE_TAG,
    AuthSpec,
    ModelCard,
    WorkspaceSpec,
    check_key_env,
    check_service_dir,
    check_service_name,
    fields_of,
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
    scrub,
)
from deploy.base import DEPLOYMENT_FILE, ConfigError, DeployError, Deployment

log = logging.getLogger(__name__)

PYTHON_VERSION: Final = f"{sys.version_info.major}.{sys.version_info.minor}"  # the image runs what we test with
HEALTHY: Final = "Healthy"
TRANSITIONING: Final = "Transitioning"
SDK_TIMEOUT_WORDS: Final = "exceeded timeout"  # wait_for_deployment's message when timeout_sec runs out
NOT_FOUND_WORDS: Final = "WebserviceNotFound"  # Webservice(workspace, name)'s message for a missing service


@dataclass
class Sdk:
    """The azureml-core entry points that talk to Azure; the offline tests pass fakes with the same signatures."""

    Workspace: Callable[..., Any]
    Model: Any
    Webservice: Callable[..., Any]
    ComputeTarget: Callable[..., Any]


def real_sdk() -> Sdk:
    """The real azureml-core classes."""
    from azureml.core import Model, Workspace
    from azureml.core.compute import ComputeTarget
    from azureml.core.webservice import Webservice

    return Sdk(Workspace=Workspace, Model=Model, Webservice=Webservice, ComputeTarget=ComputeTarget)


def credentials(auth: AuthSpec) -> Any:
    """The azureml-core authentication object for an AuthSpec (constructing one makes no network call)."""
    from azureml.core.authentication import AzureCliAuthentication, MsiAuthentication, ServicePrincipalAuthentication

    if auth.kind == "sp":
        return ServicePrincipalAuthentication(
            tenant_id=auth.tenant_id, service_principal_id=auth.client_id, service_principal_password=auth.secret()
        )
    if auth.kind == "msi":
        identity = {"client_id": auth.client_id} if auth.client_id else None
        return MsiAuthentication(identity_config=identity)
    try:
        return AzureCliAuthentication()
    except AuthenticationException:
        raise ConfigError(
            "--auth cli needs the azure-cli package in this Python environment (AzureCliAuthentication imports it); "
            "use --auth sp with AZUREML_TENANT_ID, AZUREML_CLIENT_ID and AZUREML_CLIENT_SECRET"
        ) from None


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


class Client:
    """One workspace session: the SDK calls the targets make, each failing with a one-line DeployError."""

    def __init__(self, workspace: WorkspaceSpec, auth: AuthSpec, sdk: Sdk) -> None:
        self.spec, self.auth, self.sdk = workspace, auth, sdk
        self._workspace: Any = None

    @property
    def workspace(self) -> Any:
        if self._workspace is None:
            credential = credentials(self.auth)
            with sdk_call(f"cannot open workspace {self.spec.workspace_name} ({self.auth.describe()['kind']})"):
                self._workspace = self.sdk.Workspace(
                    subscription_id=self.spec.subscription_id,
                    resource_group=self.spec.resource_group,
                    workspace_name=self.spec.workspace_name,
                    auth=credential,
                )
        return self._workspace

    def find_model(self, card: ModelCard) -> Any | None:
        """The registered model whose model_version tag is this model's hash (newest such version), if any."""
        with sdk_call(f"cannot list registered models named {card.name}"):
            found = self.sdk.Model.list(self.workspace, name=card.name, tags=[[MODEL_TAG, card.version]])
        return max(found, key=lambda model: int(model.version)) if found else None

    def register_model(self, card: ModelCard, *, tags: dict[str, str], description: str) -> Any:
        with sdk_call(f"cannot register {card.path} as model {card.name}"):
            return self.sdk.Model.register(
                workspace=self.workspace,
                model_path=str(card.path),
                model_name=card.name,
                tags=tags,
                description=description,
            )

    def service(self, name: str) -> Any | None:
        """The web service of that name, or None when the workspace has none."""
        try:
            return self.sdk.Webservice(self.workspace, name)
        except WebserviceException as exc:
            if NOT_FOUND_WORDS in one_line(exc):
                return None
            raise DeployError(f"cannot look up service {name}: {one_line(exc)}") from None

    def compute(self, name: str) -> Any:
        """The attached compute target of that name; a missing one is a configuration error."""
        try:
            return self.sdk.ComputeTarget(workspace=self.workspace, name=name)
        except ComputeTargetException as exc:
            raise ConfigError(
                f"--compute-target {name}: not found in workspace {self.spec.workspace_name} ({one_line(exc)}); "
                "pass the name of an attached AKS cluster"
            ) from None

    def deploy(self, *, name: str, model: Any, inference_config: Any, deployment_config: Any, target: Any) -> Any:
        """Model.deploy with overwrite=True: a rerun under the same name updates the service in place."""
        with sdk_call(f"Model.deploy of service {name} failed"):
            return self.sdk.Model.deploy(
                workspace=self.workspace,
                name=name,
                models=[model],
                inference_config=inference_config,
                deployment_config=deployment_config,
                deployment_target=target,
                overwrite=True,
                show_output=False,
            )


@dataclass(frozen=True)
class Settings:
    """Validated `up` options for a v1 target."""

    name: str
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
    workspace_config: Path | None
    deployment_file: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def build_environment(card: ModelCard, service_dir: Path) -> Any:
    """The serving image's Environment: the service's pinned requirements plus the inference server."""
    env = Environment(name=f"{card.name}-serving")
    conda = CondaDependencies.create(
        pip_packages=read_requirements(service_dir), python_version=PYTHON_VERSION, pin_sdk_version=False
    )
    # Anaconda's default channel carries commercial terms for larger organisations; conda-forge has Python too.
    conda.remove_channel("anaconda")
    env.python.conda_dependencies = conda
    return env


def build_inference_config(environment: Any, service_dir: Path) -> Any:
    """InferenceConfig(entry_script="score.py", source_directory=<service folder>, environment=...)."""
    with config_errors("--service-dir"):
        return InferenceConfig(entry_script=ENTRY_SCRIPT, source_directory=str(service_dir), environment=environment)


@contextmanager
def config_errors(flag: str) -> Iterator[None]:
    """SDK validation errors of a configuration object are usage errors: nothing was deployed."""
    try:
        yield
    except WebserviceException as exc:
        raise ConfigError(f"{flag}: {one_line(exc)}") from None


def environment_plan(environment: Any) -> dict[str, Any]:
    conda = environment.python.conda_dependencies
    return {
        "name": environment.name,
        "python": conda.get_python_version(),
        "pip": list(conda.pip_packages),
        "channels": list(conda.conda_channels),
        "base_image": environment.docker.base_image,
    }


def positive_number(options: dict[str, Any], key: str, flag: str, default: float) -> float:
    value = options.get(key)
    if value is None:
        return default
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{flag} {value!r}: expected a number above 0")
    return float(value)


class V1Target:
    """Deploy with azureml-core to a v1 web service type; subclasses choose the configuration and the gate."""

    name = "v1"
    kind = "ACI"  # Webservice.compute_type of the services this target makes
    prefix = "forecast"
    default_timeout = 1800.0

    def __init__(self, sdk_factory: Callable[[], Sdk] = real_sdk) -> None:
        self.sdk_factory = sdk_factory

    # -- hooks -------------------------------------------------------------------------------------------------
    def default_name(self, card: ModelCard | None) -> str:
        """The service name when --name is not given (None: without the model card, from the release alone)."""
        raise NotImplementedError

    def deploy_configuration(
        self, settings: Settings, options: dict[str, Any], gate: dict[str, Any]
    ) -> tuple[Any, dict[str, Any]]:
        """The SDK deployment configuration object and what the plan says about where its values came from."""
        raise NotImplementedError

    def admit(self, settings: Settings, options: dict[str, Any]) -> dict[str, Any]:
        """Gate before anything is created; returns what the plan and deployment.json record about it."""
        return {}

    def deployment_target(self, client: Client | None, settings: Settings) -> Any:
        return None

    def delete_on_failure(self, *, existed: bool) -> bool:
        return True

    # -- up ----------------------------------------------------------------------------------------------------
    def settings(self, *, model_dir: Path, artifacts: Path, options: dict[str, Any]) -> Settings:
        """Check every option before anything talks to Azure; a wrong one is a ConfigError naming the flag."""
        for key, flag in (("scoring_uri", "--scoring-uri"), ("workers", "--workers")):
            if options.get(key):
                raise ConfigError(f"{flag} does not apply to --target {self.name}; drop it")
        card = read_model(model_dir)
        name = options.get("name") or self.default_name(card)
        workspace_config = options.get("workspace_config")
        return Settings(
            name=check_service_name(name),
            card=card,
            service_dir=check_service_dir(options.get("service_dir")),
            workspace=resolve_workspace(Path(workspace_config) if workspace_config else None),
            auth=resolve_auth(options.get("auth")),
            key_env=check_key_env(options.get("key_env")),
            timeout=positive_number(options, "timeout", "--timeout", self.default_timeout),
            keep_failed=bool(options.get("keep_failed")),
            dry_run=bool(options.get("dry_run")),
            release=release_id() or NO_RELEASE,
            artifacts=artifacts,
            workspace_config=Path(workspace_config) if workspace_config else None,
            deployment_file=Path(options["deployment_file"]) if options.get("deployment_file") else None,
        )

    def tags(self, settings: Settings) -> dict[str, str]:
        return {MODEL_TAG: settings.card.version, "model_name": settings.card.name, RELEASE_TAG: settings.release}

    def up(self, *, model_dir: Path, artifacts: Path, options: dict[str, Any]) -> Deployment:
        """Register (or reuse) the model, deploy it, wait for Healthy, hand the key on; clean up on any failure."""
        quiet_sdk_logging("azureml")
        settings = self.settings(model_dir=model_dir, artifacts=artifacts, options=options)
        gate = self.admit(settings, options)
        environment = build_environment(settings.card, settings.service_dir)
        inference_config = build_inference_config(environment, settings.service_dir)
        deployment_config, sizing = self.deploy_configuration(settings, options, gate)
        plan = self.plan(settings, environment, inference_config, deployment_config, sizing, gate)
        if settings.dry_run:
            print(render_plan(f"deploy: dry run of --target {self.name}: nothing was created; the plan:", plan))
            return self.planned(settings)
        client = Client(settings.workspace, settings.auth, self.sdk_factory())
        target = self.deployment_target(client, settings)
        model = self.model(client, settings)
        existed = client.service(settings.name) is not None
        log.info("deploying %s to %s service %s (update: %s)", settings.card.version, self.kind, settings.name, existed)
        try:
            service = client.deploy(
                name=settings.name,
                model=model,
                inference_config=inference_config,
                deployment_config=deployment_config,
                target=target,
            )
            self.wait_healthy(service, settings)
            with sdk_call(f"cannot read the keys of service {settings.name}"):
                key = service.get_keys()[0]
            remember_secret(key)
            deployment = self.describe(service, settings, model=model, plan=plan, gate=gate)
        except BaseException as exc:
            note = self.clean_up(client, settings, existed=existed)
            if isinstance(exc, DeployError):
                raise DeployError(f"{exc}; {note}") from None
            if isinstance(exc, Exception):
                raise DeployError(f"{self.kind} deployment of {settings.name}: {one_line(exc)}; {note}") from None
            raise
        publish_key(key_env=settings.key_env, key=key, service=settings.name, fetch_hint=self.key_hint(settings))
        return deployment

    def model(self, client: Client, settings: Settings) -> Any:
        card = settings.card
        model = client.find_model(card)
        if model is not None:
            log.info("reusing registered model %s:%s (%s %s)", model.name, model.version, MODEL_TAG, card.version)
            return model
        model = client.register_model(
            card, tags={MODEL_TAG: card.version}, description=f"{card.name} {card.version} from the build stage"
        )
        log.info("registered model %s:%s from %s", model.name, model.version, card.path)
        return model

    def wait_healthy(self, service: Any, settings: Settings) -> None:
        """The health rule: wait (bounded), then anything but Healthy fails with the state, error and log tail."""
        sdk_error: str | None = None
        try:
            service.wait_for_deployment(show_output=False, timeout_sec=settings.timeout)
        except Exception as exc:  # WebserviceException for a bad terminal state or the timeout; anything else too
            sdk_error = one_line(exc)
        try:
            service.update_deployment_state()
        except Exception as exc:
            log.debug("could not refresh the state of %s: %s", settings.name, one_line(exc))
        state = getattr(service, "state", None) or "unknown"
        if state == HEALTHY and sdk_error is None:
            log.info("%s service %s is %s", self.kind, settings.name, state)
            return
        timed_out = state == TRANSITIONING or (sdk_error is not None and SDK_TIMEOUT_WORDS in sdk_error)
        error = _service_error(service) or sdk_error or "no error message"
        tail, log_file = self.save_logs(service, settings)
        log.error("last lines of the %s log of %s (all in %s):\n%s", self.kind, settings.name, log_file, tail)
        waited = f" after waiting {settings.timeout:g} s (--timeout)" if timed_out else ""
        raise DeployError(f"{self.kind} service {settings.name} is {state}, not {HEALTHY}{waited}: {error}")

    def save_logs(self, service: Any, settings: Settings) -> tuple[str, Path]:
        path = settings.artifacts / f"{self.name}-{settings.name}.log"
        try:
            text = service.get_logs()
        except Exception as exc:
            text = f"(get_logs() failed: {one_line(exc)})"
        save_text(path, text or "")
        return log_tail(text), path

    def clean_up(self, client: Client, settings: Settings, *, existed: bool) -> str:
        """After a failure: delete what this run created, or say exactly how to remove it."""
        down = self.down_command(settings)
        if settings.keep_failed:
            return f"kept it for debugging (--keep-failed); remove it with `{down}`"
        if not self.delete_on_failure(existed=existed):
            return f"left {settings.name} in place (it served before this update); `{down}` removes it"
        try:
            service = client.service(settings.name)
            if service is None:
                return "no service was left behind"
            with sdk_call(f"deleting service {settings.name}"):
                service.delete()
        except (DeployError, ConfigError) as exc:
            log.error("could not delete %s after the failure: %s", settings.name, exc)
            return f"deleting it failed too; remove it with `{down}`"
        except KeyboardInterrupt:
            return f"interrupted while deleting it; remove it with `{down}`"
        log.info("deleted %s service %s after the failure", self.kind, settings.name)
        self.forget(settings)
        return "deleted the service, nothing is left behind"

    def forget(self, settings: Settings) -> None:
        """Remove a deployment file that still describes the service just deleted (it would point at nothing)."""
        path = settings.deployment_file
        if path is None or not path.is_file():
            return
        try:
            stale = Deployment.load(path)
        except ConfigError:
            return
        if stale.target == self.name and stale.name == settings.name:
            path.unlink()
            log.info("removed %s: it described the deleted service", path)

    def down_command(self, settings: Settings) -> str:
        extra = f" --workspace-config {settings.workspace_config}" if settings.workspace_config else ""
        return f"python -m deploy down --target {self.name} --name {settings.name}{extra}"

    def key_hint(self, settings: Settings) -> str:
        extra = f" --workspace-config {settings.workspace_config}" if settings.workspace_config else ""
        return f'"$(python -m deploy key --target {self.name} --name {settings.name}{extra})"'

    def plan(
        self,
        settings: Settings,
        environment: Any,
        inference_config: Any,
        deployment_config: Any,
        sizing: dict[str, Any],
        gate: dict[str, Any],
    ) -> dict[str, Any]:
        """What `up` will do, rendered from the very configuration objects it passes to the SDK."""
        card = settings.card
        plan: dict[str, Any] = {
            "target": self.name,
            "service": {
                "name": settings.name,
                "type": self.kind,
                "operation": "Model.deploy(overwrite=True): a rerun updates this service",
                "wait_for_deployment_timeout_s": settings.timeout,
                "on_failure": "delete" if not settings.keep_failed else "keep (--keep-failed)",
            },
            "workspace": {**settings.workspace.describe(), "source": settings.workspace.source},
            "auth": settings.auth.describe(),
            "model": {
                "name": card.name,
                "version": card.version,
                "path": str(card.path),
                "registration": f"reuse the version tagged {MODEL_TAG}={card.version}, else Model.register",
            },
            "environment": environment_plan(environment),
            "inference_config": fields_of(inference_config, skip=("environment", "base_image_registry")),
            "deployment_configuration": {"class": type(deployment_config).__name__, **fields_of(deployment_config)},
            "key": {
                "env": settings.key_env,
                "delivery": "secret pipeline variable"
                if os.environ.get(IN_PIPELINE_VAR)
                else "not written; fetch with `python -m deploy key`",
            },
        }
        if sizing:
            plan["sizing"] = sizing
        if gate:
            plan["promotion"] = gate
        return plan

    def planned(self, settings: Settings) -> Deployment:
        """The Deployment a dry run describes (never saved)."""
        return Deployment(
            target=self.name,
            name=settings.name,
            scoring_uri="",
            health_uri="",
            swagger_uri=None,
            auth=True,
            key_env=settings.key_env,
            model={"name": settings.card.name, "version": settings.card.version},
            details={"dry_run": True},
        )

    def describe(
        self, service: Any, settings: Settings, *, model: Any, plan: dict[str, Any], gate: dict[str, Any]
    ) -> Deployment:
        scoring_uri = getattr(service, "scoring_uri", None)
        if not scoring_uri:
            raise DeployError(f"{self.kind} service {settings.name} is Healthy but has no scoring URI")
        health_uri, swagger_uri = routes_beside(scoring_uri)
        details: dict[str, Any] = {
            "workspace": settings.workspace.describe(),
            "auth": settings.auth.kind,
            "state": service.state,
            "registered_model": f"{model.name}:{model.version}",
            "release_id": settings.release,
            "deployment_configuration": plan["deployment_configuration"],
        }
        if "sizing" in plan:
            details["sizing"] = plan["sizing"]
        if gate:
            details["promotion"] = gate
        return Deployment(
            target=self.name,
            name=settings.name,
            scoring_uri=scoring_uri,
            health_uri=health_uri,
            swagger_uri=swagger_uri,
            auth=True,
            key_env=settings.key_env,
            model={"name": settings.card.name, "version": settings.card.version},
            details=details,
        )

    # -- down, key, deployment by name -------------------------------------------------------------------------
    def client_for(self, deployment: Deployment, options: dict[str, Any]) -> Client:
        """A client for the workspace a deployment was made in (or the configured one) and the configured auth."""
        config = options.get("workspace_config")
        recorded = deployment.details.get("workspace")
        if config or not isinstance(recorded, dict):
            workspace = resolve_workspace(Path(config) if config else None)
        else:
            workspace = WorkspaceSpec(**recorded, source=DEPLOYMENT_FILE)
        auth = resolve_auth(options.get("auth") or deployment.details.get("auth"))
        return Client(workspace, auth, self.sdk_factory())

    def down(self, deployment: Deployment, *, artifacts: Path, options: dict[str, Any] | None = None) -> None:
        """Delete the service by its name; a service that is already gone is fine."""
        quiet_sdk_logging("azureml")
        client = self.client_for(deployment, options or {})
        service = client.service(deployment.name)
        if service is None:
            log.info("%s service %s is already gone", self.kind, deployment.name)
            return
        compute_type = getattr(service, "compute_type", self.kind)
        if compute_type != self.kind:
            raise ConfigError(
                f"service {deployment.name} is an {compute_type} service, not {self.kind}; "
                f"pass --target {compute_type.lower()} to remove it"
            )
        with sdk_call(f"cannot delete service {deployment.name}"):
            service.delete()
        log.info("deleted %s service %s", self.kind, deployment.name)

    def fetch_key(self, deployment: Deployment, options: dict[str, Any] | None = None) -> str:
        """The primary key of the deployed service (only `python -m deploy key` asks for it)."""
        quiet_sdk_logging("azureml")
        client = self.client_for(deployment, options or {})
        service = client.service(deployment.name)
        if service is None:
            raise DeployError(f"{self.kind} service {deployment.name} does not exist; deploy it first")
        with sdk_call(f"cannot read the keys of service {deployment.name}"):
            key: str = service.get_keys()[0]
        remember_secret(key)
        return key

    def deployment_by_name(self, *, name: str | None, artifacts: Path, options: dict[str, Any]) -> Deployment:
        """A stand-in Deployment for a service known only by name (no deployment.json, e.g. after a failed stage)."""
        if not name:
            try:
                name = self.default_name(None)
            except ConfigError:
                name = None
        if not name:
            try:
                name = self.default_name(read_model(options.get("model_dir") or artifacts / "model"))
            except ConfigError:
                raise ConfigError(
                    f"no deployment file and no service name: pass --deployment or --name for --target {self.name}"
                ) from None
        return Deployment(
            target=self.name,
            name=check_service_name(name),
            scoring_uri="",
            health_uri="",
            swagger_uri=None,
            auth=True,
            key_env=DEFAULT_KEY_ENV,
            model={},
        )


def _service_error(service: Any) -> str | None:
    """The service's own error (a dict from the model management service), as one scrubbed line."""
    error = getattr(service, "error", None)
    if not error:
        return None
    if isinstance(error, dict):
        message = error.get("message") or json.dumps(error)
        code = error.get("code")
        details = error.get("details") or []
        inner = [d.get("message") for d in details if isinstance(d, dict) and d.get("message")]
        text = f"{code}: {message}" if code else str(message)
        if inner:
            text += " (" + "; ".join(str(i) for i in inner[:2]) + ")"
        return one_line(scrub(text))
    return one_line(str(error))
