"""Verify-stage pytest options and the session fixtures that find, or start and stop, the deployment.

pytest steps                                          # start the local target for the session, stop it after
pytest steps --deployment artifacts/deployment.json   # verify what `python -m deploy up` deployed
pytest steps --target aci                             # verify the aci deployment in <artifacts>/deployment.json
pytest steps --scoring-uri URL --key-env SCORING_KEY  # attach to any existing endpoint
pytest steps -m smoke                                 # only the essential checks
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import pytest

from deploy.base import (
    ARTIFACTS_ENV,
    DEPLOYMENT_FILE,
    PROJECT_ROOT,
    ConfigError,
    DeployError,
    Deployment,
    artifacts_dir,
)

log = logging.getLogger(__name__)

TARGETS: Final = ("local", "aci", "aks", "attach", "managed")
STEPS_DIR: Final = PROJECT_ROOT / "steps"
JUNIT_FILE: Final = "verify-junit.xml"
MODEL_CARD: Final = "model.json"
# Building the default monthly model takes seconds; a long daily series with a weekly season can take minutes.
BUILD_TIMEOUT_S: Final = 900
# The usage/configuration exit code every stage of the release gate shares (docs/contracts.md).
EXIT_USAGE: Final = 2


def fail(message: str) -> BaseException:
    """A one-line test failure (no traceback) to `raise ... from None` inside an except block."""
    return pytest.fail.Exception(message, pytrace=False)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Options that choose the deployment under verification and the model card to compare with."""
    group = parser.getgroup("release", "forecast release gate: which deployment the scenarios verify")
    group.addoption(
        "--target",
        choices=TARGETS,
        default=None,
        help="local (default): start the local target for the session; any other: verify the deployment of "
        "that target recorded in <artifacts>/deployment.json",
    )
    group.addoption("--deployment", type=Path, metavar="FILE", help="an existing deployment.json to verify")
    group.addoption("--scoring-uri", metavar="URL", help="attach to any existing scoring endpoint")
    group.addoption(
        "--key-env",
        metavar="NAME",
        help="NAME of the environment variable holding the scoring key (turns key auth on)",
    )
    group.addoption(
        "--model-dir",
        type=Path,
        metavar="DIR",
        help="model folder whose model.json gives reference forecasts and max_horizon (default: <artifacts>/model)",
    )


def binds_scenarios(config: pytest.Config) -> bool:
    """True when the run collects from steps/ (given it, a path inside it, or a folder holding it)."""
    for arg in config.args:
        path = Path(arg.split("::", 1)[0])
        path = (config.invocation_params.dir / path).resolve()
        if path == STEPS_DIR or STEPS_DIR in path.parents or path in STEPS_DIR.parents:
            return True
    return False


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Check the option combination; default the JUnit XML into the artifacts folder for scenario runs."""
    check_options(config)
    if binds_scenarios(config) and hasattr(config.option, "xmlpath") and not config.option.xmlpath:
        config.option.xmlpath = str(artifacts_dir() / JUNIT_FILE)


def check_options(config: pytest.Config) -> None:
    """Reject contradictory options at once, with a one-line fix."""
    target = config.getoption("target")
    deployment_file = config.getoption("deployment")
    scoring_uri = config.getoption("scoring_uri")
    if deployment_file and scoring_uri:
        raise pytest.UsageError("--deployment and --scoring-uri both name a deployment; pass only one")
    if scoring_uri and target not in (None, "attach"):
        raise pytest.UsageError(f"--scoring-uri attaches to an endpoint; drop --target {target} or use --target attach")
    if scoring_uri and urlsplit(scoring_uri).scheme not in ("http", "https"):
        raise pytest.UsageError(f"--scoring-uri {scoring_uri!r} is not an http(s) URL; pass the full scoring URI")
    if config.getoption("key_env") and not (deployment_file or scoring_uri):
        raise pytest.UsageError("--key-env needs --scoring-uri or --deployment (the local target has no key auth)")
    chosen_model: Path | None = config.getoption("model_dir")
    if chosen_model is not None and not (chosen_model / MODEL_CARD).is_file():
        # Given explicitly, a folder without a card must not quietly skip the forecast scenarios.
        raise pytest.UsageError(
            f"--model-dir {chosen_model} holds no {MODEL_CARD}; pass the folder `python -m service.build` wrote"
        )


def pytest_report_header(config: pytest.Config) -> str | None:
    """Name the deployment a scenario run verifies, first thing in the output."""
    if not binds_scenarios(config):
        return None
    return f"release gate: verifying {describe_source(config)}; artifacts {artifacts_dir()}"


def describe_source(config: pytest.Config) -> str:
    """Which deployment the run verifies, in words."""
    if config.getoption("deployment"):
        return f"the deployment in {config.getoption('deployment')}"
    if config.getoption("scoring_uri"):
        return f"the endpoint at {config.getoption('scoring_uri')}"
    target = config.getoption("target") or "local"
    if target != "local":
        return f"the {target} deployment in {artifacts_dir() / DEPLOYMENT_FILE}"
    return "a local target started for this session"


def model_dir(config: pytest.Config) -> Path:
    """The model folder: --model-dir or <artifacts>/model."""
    chosen: Path | None = config.getoption("model_dir")
    return chosen if chosen else artifacts_dir() / "model"


def attached_deployment(scoring_uri: str, key_env: str | None) -> Deployment:
    """A Deployment for an existing endpoint; health and swagger routes sit beside `/score` (azmlinfsrv layout)."""
    parts = urlsplit(scoring_uri)
    path = parts.path
    base = path[: -len("/score")] if path.endswith("/score") else path.rstrip("/")
    health = urlunsplit((parts.scheme, parts.netloc, f"{base}/", "", ""))
    swagger = urlunsplit((parts.scheme, parts.netloc, f"{base}/swagger.json", "version=3.1", ""))
    return Deployment(
        target="attach",
        name=parts.netloc,
        scoring_uri=scoring_uri,
        health_uri=health,
        swagger_uri=swagger,
        auth=bool(key_env),
        key_env=key_env,
        model={},
    )


def load_deployment(path: Path, *, target: str | None, key_env: str | None) -> Deployment:
    """Read a deployment file; check it is for the asked target; --key-env overrides its key variable."""
    deployment = Deployment.load(path)
    if target and deployment.target != target:
        raise ConfigError(
            f"{path} describes a {deployment.target!r} deployment, not --target {target}; "
            f"pass --deployment with the {target} deployment file"
        )
    if key_env:
        deployment.auth, deployment.key_env = True, key_env
    return deployment


def build_model(artifacts: Path) -> None:
    """Run `python -m service.build` into the artifacts folder (the verify stage can then run alone)."""
    log.info("no model in %s: building it first", artifacts / "model")
    env = {**os.environ, ARTIFACTS_ENV: str(artifacts)}
    command = [sys.executable, "-m", "service.build"]
    try:
        done = subprocess.run(
            command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise fail(f"`python -m service.build` took over {BUILD_TIMEOUT_S} s; run it alone to see why") from None
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["(no output)"]
        pytest.fail(
            f"`python -m service.build` exited {done.returncode}: {lines[-1]}; run it alone to fix the model build",
            pytrace=False,
        )


def start_local(request: pytest.FixtureRequest, stack: ExitStack) -> Deployment:
    """Start the local target for this session (building the model first if needed); stop it at session end."""
    artifacts = artifacts_dir()
    folder = model_dir(request.config)
    if not (folder / MODEL_CARD).is_file():
        if request.config.getoption("model_dir"):
            raise ConfigError(
                f"--model-dir {folder} holds no {MODEL_CARD}; pass the folder `python -m service.build` wrote"
            )
        build_model(artifacts)
    try:
        from deploy.local import local_deployment
    except ImportError as exc:
        raise ConfigError(
            f"cannot import deploy.local ({exc}); pass --deployment or --scoring-uri to verify an existing deployment"
        ) from None
    try:
        deployment: Deployment = stack.enter_context(local_deployment(model_dir=folder, artifacts=artifacts))
    except ConfigError:
        raise
    except DeployError as exc:
        raise fail(f"the local target did not start: {exc}") from None
    log.info("local target %s answering at %s", deployment.name, deployment.scoring_uri)
    return deployment


@pytest.fixture(scope="session")
def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """The deployment under verification: from --deployment, --scoring-uri, --target, or started locally."""
    config = request.config
    target = config.getoption("target")
    key_env = config.getoption("key_env")
    with ExitStack() as stack:
        try:
            if config.getoption("deployment"):
                found = load_deployment(config.getoption("deployment"), target=target, key_env=key_env)
            elif config.getoption("scoring_uri"):
                found = attached_deployment(config.getoption("scoring_uri"), key_env)
            elif target not in (None, "local"):
                found = load_deployment(artifacts_dir() / DEPLOYMENT_FILE, target=target, key_env=None)
            else:
                # Cleanup is the ExitStack: it stops the server even when a later fixture or step fails.
                found = start_local(request, stack)
            found.key()  # a missing key is a configuration error: stop now, not once per scenario
        except ConfigError as exc:
            pytest.exit(f"verify: error: {exc}", returncode=EXIT_USAGE)
        yield found


@pytest.fixture(scope="session")
def model_card(request: pytest.FixtureRequest, deployment: Deployment) -> dict[str, Any]:
    """model.json of the deployed model; skips only when --model-dir was not given and the default is absent."""
    path = model_dir(request.config) / MODEL_CARD
    try:
        card: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        pytest.skip(
            f"needs the model card of the deployed model and {path} does not exist; "
            "pass --model-dir with the folder `python -m service.build` wrote for this model"
        )
    except (OSError, ValueError) as exc:
        raise fail(f"{path} is not a readable model card ({exc}); rebuild with `python -m service.build`") from None
    deployed = deployment.model.get("version")
    if deployed and deployed != card.get("version"):
        pytest.fail(
            f"the deployment serves model version {deployed} but {path} is version {card.get('version')}; "
            "pass --model-dir with the model that was deployed",
            pytrace=False,
        )
    return card
