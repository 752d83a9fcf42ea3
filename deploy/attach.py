"""The `attach` target: verify an endpoint that already runs (ours or anyone's) and describe it in deployment.json.

    python -m deploy up --target attach --scoring-uri https://host/score --key-env SCORING_KEY
    python -m deploy down                      # forgets it (deletes deployment.json); the endpoint is not ours

Health is `GET` on the route beside `/score` (azmlinfsrv answers `/` with 200 when init() succeeded).
"""

from __future__ import annotations

import http.client
import logging
import time
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from deploy.azure_common import check_key_env, one_line, remember_secret, routes_beside
from deploy.base import ConfigError, DeployError, Deployment

log = logging.getLogger(__name__)

# A running endpoint answers its health route at once; this leaves room for a scaled-to-zero container to wake.
DEFAULT_TIMEOUT_S: Final = 30.0
PROBE_TIMEOUT_S: Final = 5.0  # one request's connect + read budget
RETRY_INTERVAL_S: Final = 1.0
FOREIGN_OPTIONS: Final = {
    "dry_run": "--dry-run",
    "force": "--force",
    "workers": "--workers",
    "compute_target": "--compute-target",
    "keep_failed": "--keep-failed",
}


def _get(url: str, *, key: str | None, timeout: float) -> int:
    """Status of one GET (http.client: no proxy variables apply); raises OSError when nothing answers."""
    parts = urlsplit(url)
    connection_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_type(parts.netloc, timeout=timeout)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def wait_healthy(url: str, *, key: str | None, timeout: float) -> tuple[int, float]:
    """GET the health route until it answers 200 or the deadline passes; returns (status, seconds)."""
    started = time.monotonic()
    deadline = started + timeout
    last = "no answer"
    while True:
        try:
            status = _get(url, key=key, timeout=min(PROBE_TIMEOUT_S, max(deadline - time.monotonic(), 0.1)))
        except (OSError, http.client.HTTPException) as exc:
            last = one_line(exc)
        else:
            if status == 200:
                return status, time.monotonic() - started
            if status < 500:  # 401, 404, ...: waiting will not change the answer
                raise DeployError(f"{url} answered {status}, not 200; check the scoring URI and --key-env")
            last = f"HTTP {status}"
        if time.monotonic() + RETRY_INTERVAL_S >= deadline:
            raise DeployError(f"{url} not healthy within {timeout:g} s (last: {last}); check that the endpoint runs")
        time.sleep(RETRY_INTERVAL_S)


class AttachTarget:
    """Describe an existing endpoint after checking its health route."""

    name = "attach"

    def up(self, *, model_dir: Path, artifacts: Path, options: dict[str, Any]) -> Deployment:
        for key, flag in FOREIGN_OPTIONS.items():
            if options.get(key):
                raise ConfigError(f"{flag} does not apply to --target attach (it deploys nothing); drop it")
        uri = options.get("scoring_uri")
        if not uri:
            raise ConfigError("--target attach needs --scoring-uri URL (the endpoint's full /score URI)")
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"--scoring-uri {uri!r} is not an http(s) URL; pass the full scoring URI")
        key_env = check_key_env(options["key_env"]) if options.get("key_env") else None
        probe = Deployment(
            target=self.name,
            name=options.get("name") or parts.netloc,
            scoring_uri=uri,
            health_uri="",
            swagger_uri=None,
            auth=key_env is not None,
            key_env=key_env,
            model={},
        )
        scoring_key = probe.key()  # ConfigError naming the variable when --key-env is given but unset
        remember_secret(scoring_key)
        probe.health_uri, swagger_uri = routes_beside(uri)
        timeout = options.get("timeout") or DEFAULT_TIMEOUT_S
        status, seconds = wait_healthy(probe.health_uri, key=scoring_key, timeout=float(timeout))
        log.info("%s answered %s after %.1f s", probe.health_uri, status, seconds)
        try:
            has_swagger = _get(swagger_uri, key=scoring_key, timeout=PROBE_TIMEOUT_S) == 200
        except (OSError, http.client.HTTPException):
            has_swagger = False
        probe.swagger_uri = swagger_uri if has_swagger else None
        probe.details = {"health_status": status, "attached": True}
        return probe

    def down(self, deployment: Deployment, *, artifacts: Path) -> None:
        """Nothing to stop: the endpoint belongs to someone else; only deployment.json goes."""
        log.info("%s is an attached endpoint; forgetting it, not stopping it", deployment.scoring_uri)


TARGET = AttachTarget()
