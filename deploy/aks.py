"""The `aks` target: promote the model to the production service on Azure Kubernetes Service (azureml-core, SDK v1).

    python -m deploy up --target aks --compute-target prod-aks     # only when decision.json says promote
    python -m deploy up --target aks --smoke                        # then run the smoke scenarios against it
    python -m deploy up --target aks --dry-run                      # the plan, including the gate's answer
    python -m deploy up --target aks --force                        # promote anyway (logged, recorded)

Sizing comes from the judge's recommendation in decision.json ("sizing") when present, else the defaults below.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Final

from azureml.core.webservice import AksWebservice

from deploy.azure_common import ModelCard, check_service_name
from deploy.azure_v1 import Client, Settings, V1Target, config_errors, positive_number
from deploy.base import ConfigError, DeployError

log = logging.getLogger(__name__)

COMPUTE_VAR: Final = "AZUREML_AKS_COMPUTE"
DECISION_FILE: Final = "decision.json"
PROMOTE: Final = "promote"
VERDICTS: Final = ("promote", "hold", "reject")
# The production service keeps one name across releases, so a promotion updates it instead of adding another.
DEFAULT_NAME: Final = "forecast-aks"
# Defaults when the judge gives no sizing: one core and 1 GB serve the model; 1-3 replicas absorb a node loss
# and a burst; 70 % utilisation leaves headroom while autoscaling reacts (the SDK's own default).
DEFAULT_SIZING: Final = {
    "cpu_cores": 1.0,
    "memory_gb": 1.0,
    "autoscale_min_replicas": 1,
    "autoscale_max_replicas": 3,
    "autoscale_target_utilization": 70,
}
DEFAULT_TIMEOUT_S: Final = 1800.0  # image build plus rollout on the cluster
INT_FIELDS: Final = ("replicas", "autoscale_min_replicas", "autoscale_max_replicas")
# decision.json sizing field -> AksWebservice.deploy_configuration parameter
SIZING_PARAMETERS: Final = {
    "cpu_cores": "cpu_cores",
    "memory_gb": "memory_gb",
    "autoscale_min_replicas": "autoscale_min_replicas",
    "autoscale_max_replicas": "autoscale_max_replicas",
    "autoscale_target_utilization": "autoscale_target_utilization",
    "max_concurrent_requests_per_container": "replica_max_concurrent_requests",
}


def read_decision(path: Path) -> dict[str, Any]:
    """decision.json as a dict with a known verdict; a missing or malformed file is a ConfigError."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no decision; run the judge (`python -m load judge`) first or pass --decision "
            "(--force promotes without one)"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not readable JSON ({exc}); rerun the judge") from None
    if not isinstance(raw, dict) or raw.get("verdict") not in VERDICTS:
        verdict = raw.get("verdict") if isinstance(raw, dict) else None
        raise ConfigError(f"{path}: verdict {verdict!r} is not one of {', '.join(VERDICTS)}; rerun the judge")
    return raw


def _judged_version(decision: dict[str, Any]) -> str | None:
    """The model version the judge's decision is about, when the decision records one."""
    model = decision.get("model")
    version = model.get("version") if isinstance(model, dict) else None
    return str(version) if version else None


def _percent(value: float) -> int:
    """Target utilisation as the whole percent AKS wants: 0.7 and 70 both mean 70 %."""
    return round(value * 100) if value <= 1 else round(value)


def sizing_values(sizing: Any, path: Path) -> dict[str, Any]:
    """deploy_configuration keyword arguments from the judge's sizing; wrong values name their field."""
    if not isinstance(sizing, dict):
        raise ConfigError(f"{path}: 'sizing' must be an object; rerun the judge")
    values: dict[str, Any] = {}
    for field in (*SIZING_PARAMETERS, "replicas"):
        value = sizing.get(field)
        if value is None:
            continue
        whole = isinstance(value, int) and not isinstance(value, bool)
        if field in (*INT_FIELDS, "max_concurrent_requests_per_container") and not whole:
            raise ConfigError(f"{path}: sizing.{field} = {value!r}; expected a whole number")
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{path}: sizing.{field} = {value!r}; expected a number above 0")
        if field == "autoscale_target_utilization":
            if value > 100:
                raise ConfigError(f"{path}: sizing.{field} = {value!r}; expected a fraction or a percent up to 100")
            value = _percent(value)
        values[field] = value
    return values


class AksTarget(V1Target):
    """Promote the model to the AKS production service, sized by the judge, and wait for Healthy."""

    name = "aks"
    kind = "AKS"
    prefix = "forecast-aks"
    default_timeout = DEFAULT_TIMEOUT_S

    def default_name(self, card: ModelCard | None) -> str:
        return check_service_name(DEFAULT_NAME)

    def delete_on_failure(self, *, existed: bool) -> bool:
        """Remove a service this run created; never delete a production service that served before the update."""
        return not existed

    def compute_name(self, options: dict[str, Any]) -> str:
        name = options.get("compute_target") or os.environ.get(COMPUTE_VAR)
        if not name:
            raise ConfigError(f"--target aks needs the AKS compute: pass --compute-target NAME or export {COMPUTE_VAR}")
        return str(name)

    def admit(self, settings: Settings, options: dict[str, Any]) -> dict[str, Any]:
        """The promotion gate: refuse unless the judge said promote; --force overrides, loudly and on the record."""
        path = Path(options.get("decision") or settings.artifacts / DECISION_FILE)
        force = bool(options.get("force"))
        try:
            decision = read_decision(path)
        except ConfigError as exc:
            if not force and not settings.dry_run:
                raise
            gate = {"decision_file": str(path), "verdict": None, "problem": str(exc)}
            return self._forced(gate, f"there is no usable decision ({exc})") if force else {**gate, "refused": True}
        verdict = decision["verdict"]
        gate = {"decision_file": str(path), "verdict": verdict, "sizing": decision.get("sizing")}
        judged = _judged_version(decision)
        if judged is not None and judged != settings.card.version:
            because = (
                f"the decision judged model version {judged!r}, but the model folder holds {settings.card.version!r}"
            )
        elif verdict == PROMOTE:
            return {**gate, "forced": False}
        else:
            reasons = [str(reason) for reason in decision.get("reasons") or []][:3]
            because = f"the judge's verdict is {verdict!r}" + (f" ({'; '.join(reasons)})" if reasons else "")
        if force:
            return self._forced(gate, because)
        if settings.dry_run:
            return {**gate, "refused": True, "because": because}
        raise DeployError(f"promotion refused: {because} in {path}; --force overrides")

    def _forced(self, gate: dict[str, Any], because: str) -> dict[str, Any]:
        log.warning("--force: PROMOTING TO AKS ALTHOUGH %s; deployment.json records this override", because)
        return {**gate, "forced": True, "forced_because": because}

    def deploy_configuration(
        self, settings: Settings, options: dict[str, Any], gate: dict[str, Any]
    ) -> tuple[Any, dict[str, Any]]:
        recommended = gate.get("sizing")
        if recommended is not None:
            values, source = sizing_values(recommended, Path(gate["decision_file"])), "decision.json sizing"
        else:
            values, source = dict(DEFAULT_SIZING), "defaults (no sizing in decision.json)"
        for field, flag in (("cpu_cores", "--cpu-cores"), ("memory_gb", "--memory-gb")):
            if options.get(field) is not None:
                values[field], source = positive_number(options, field, flag, 0.0), f"{source}, {flag}"
        kwargs = {SIZING_PARAMETERS[field]: value for field, value in values.items() if field in SIZING_PARAMETERS}
        autoscale = "autoscale_min_replicas" in values or "autoscale_max_replicas" in values
        if not autoscale:
            kwargs["num_replicas"] = values.get("replicas", 1)
        with config_errors(f"sizing from {source}"):
            config = AksWebservice.deploy_configuration(
                autoscale_enabled=autoscale,
                auth_enabled=True,
                compute_target_name=self.compute_name(options),
                tags=self.tags(settings),
                description=f"{settings.card.name} {settings.card.version}: production, release {settings.release}",
                **kwargs,
            )
        return config, {"source": source, "values": values}

    def deployment_target(self, client: Client | None, settings: Settings) -> Any:
        if client is None:
            return None
        name = settings.extra["compute_target"]
        compute = client.compute(name)
        compute_type = getattr(compute, "type", "AKS")
        if compute_type != "AKS":
            raise ConfigError(f"--compute-target {name} is a {compute_type} compute, not AKS; pass an AKS cluster")
        return compute

    def settings(self, *, model_dir: Path, artifacts: Path, options: dict[str, Any]) -> Settings:
        settings = super().settings(model_dir=model_dir, artifacts=artifacts, options=options)
        settings.extra["compute_target"] = self.compute_name(options)
        return settings


TARGET = AksTarget()
