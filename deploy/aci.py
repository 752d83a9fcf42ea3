"""The `aci` target: the release's test service on Azure Container Instances, with azureml-core (SDK v1).

    python -m deploy up --target aci                      # workspace from $AZUREML_* or config.json
    python -m deploy up --target aci --dry-run            # print the plan, touch nothing
    python -m deploy down --target aci                    # delete it (fine when already gone)

One service per release (`forecast-aci-r<release id>`), key auth on, deleted again when it is not Healthy.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from azureml.core.webservice import AciWebservice

from deploy.azure_common import ModelCard, service_name
from deploy.azure_v1 import Settings, V1Target, config_errors, positive_number

log = logging.getLogger(__name__)

# The forecasting model answers in milliseconds on one core and loads in well under 1 GB.
DEFAULT_CPU_CORES: Final = 1.0
DEFAULT_MEMORY_GB: Final = 1.0
# Building the image on first deployment takes 5-15 minutes in Azure ML; starting the container a few more.
DEFAULT_TIMEOUT_S: Final = 1800.0


class AciTarget(V1Target):
    """Deploy the model folder as an ACI web service and wait for Healthy."""

    name = "aci"
    kind = "ACI"
    prefix = "forecast-aci"
    default_timeout = DEFAULT_TIMEOUT_S

    def default_name(self, card: ModelCard | None) -> str:
        """forecast-aci-r<release id>, else forecast-aci-<model version>: one test service per release."""
        return service_name(prefix=self.prefix, explicit=None, fallback=card.version if card else None)

    def deploy_configuration(
        self, settings: Settings, options: dict[str, Any], gate: dict[str, Any]
    ) -> tuple[Any, dict[str, Any]]:
        cpu = positive_number(options, "cpu_cores", "--cpu-cores", DEFAULT_CPU_CORES)
        memory = positive_number(options, "memory_gb", "--memory-gb", DEFAULT_MEMORY_GB)
        with config_errors("--cpu-cores/--memory-gb"):
            config = AciWebservice.deploy_configuration(
                cpu_cores=cpu,
                memory_gb=memory,
                auth_enabled=True,
                tags=self.tags(settings),
                description=(
                    f"{settings.card.name} {settings.card.version}: release {settings.release} test service "
                    "(removed at the end of the release)"
                ),
            )
        return config, {}


TARGET = AciTarget()
