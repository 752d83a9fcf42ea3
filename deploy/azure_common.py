"""What the Azure targets (aci, aks, managed) share: workspace, credentials, names, secrets, keys. Stdlib only.

Both SDK generations use it: azureml-core (aci, aks) in .venv and azure-ai-ml (managed) in .venv-v2.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from deploy.base import PROJECT_ROOT, ConfigError, ModelCard, read_json_object
from deploy.base import read_model as base_read_model

log = logging.getLogger(__name__)

WORKSPACE_VARS: Final = ("AZUREML_SUBSCRIPTION_ID", "AZUREML_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME")
SP_VARS: Final = ("AZUREML_TENANT_ID", "AZUREML_CLIENT_ID", "AZUREML_CLIENT_SECRET")
SECRET_VAR: Final = "AZUREML_CLIENT_SECRET"
AUTH_VAR: Final = "AZUREML_AUTH"
AUTH_KINDS: Final = ("sp", "cli", "msi")
DEFAULT_KEY_ENV: Final = "AZUREML_SCORING_KEY"
MODEL_TAG: Final = "model_version"  # registered models carry model.json's content hash under this tag
RELEASE_TAG: Final = "release_id"
NO_RELEASE: Final = "manual"  # the release_id tag value outside Azure Pipelines
# Release identifiers Azure Pipelines sets: classic release pipelines, then YAML runs (and build pipelines).
RELEASE_ID_VARS: Final = ("RELEASE_RELEASEID", "BUILD_BUILDID")
IN_PIPELINE_VAR: Final = "TF_BUILD"  # set to True on every Azure Pipelines agent
# Where `Workspace.from_config()` looks, in this order, in the working folder and each parent.
CONFIG_CANDIDATES: Final = (Path(".azureml") / "config.json", Path("config.json"))
SERVICE_DIR: Final = PROJECT_ROOT / "service"
REQUIREMENTS_FILE: Final = "requirements.txt"
ENTRY_SCRIPT: Final = "score.py"
SERVER_PACKAGE: Final = "azureml-inference-server-http"
LOCK_FILE: Final = PROJECT_ROOT / "requirements.lock"
# Azure ML web service and online endpoint names: 3-32 chars, lowercase letters, digits, dashes, a letter first,
# no dash last (the rule azureml-core's webservice_name_validation enforces, and the endpoint naming rule).
SERVICE_NAME: Final = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
SERVICE_NAME_LENGTH: Final = (3, 32)
ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
PINNED: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[^=\s;]+(\s*;.*)?$")
# Secrets shorter than this are not scrubbed: replacing every "a" in a log would help nobody.
MIN_SECRET_LENGTH: Final = 4
LOG_TAIL_LINES: Final = 30  # enough to show a Python traceback from init() and the lines before it
ONE_LINE_LIMIT: Final = 400  # characters of an SDK error kept in a one-line message

_secrets: set[str] = set()


def remember_secret(value: str | None) -> None:
    """Register a secret value so `scrub()` and the log filter replace it wherever it shows up."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        _secrets.add(value)
        install_scrubber()


def scrub(text: str) -> str:
    """The text with every registered secret replaced by `***`."""
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def one_line(error: BaseException | str | None, *, fallback: str = "no error message") -> str:
    """A scrubbed, single-line, bounded form of an SDK error (its first non-empty line, plus the message field)."""
    text = str(error) if error is not None else ""
    text = scrub(text)
    message = getattr(error, "message", None)  # AzureMLException keeps the plain message apart from its JSON dump
    if isinstance(message, str) and message.strip():
        text = scrub(message)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    joined = " | ".join(lines[:3]) if lines else fallback
    return joined if len(joined) <= ONE_LINE_LIMIT else joined[: ONE_LINE_LIMIT - 3] + "..."


class ScrubFilter(logging.Filter):
    """Replaces registered secrets in log records, including formatted exceptions, before any handler writes them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, None
        record.msg, record.args = scrub(message), None
        return True


def install_scrubber() -> None:
    """Put the scrub filter on every handler, the SDKs' own non-propagating ones (azure-ai-ml) included."""
    loggers = [logging.getLogger()] + [
        item for item in logging.root.manager.loggerDict.values() if isinstance(item, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(existing, ScrubFilter) for existing in handler.filters):
                handler.addFilter(ScrubFilter())


def quiet_sdk_logging(*names: str) -> None:
    """The Azure SDKs log every failed call at ERROR with headers and JSON; we report each failure once, scrubbed."""
    level = logging.DEBUG if logging.getLogger().isEnabledFor(logging.DEBUG) else logging.CRITICAL
    for name in names:
        logging.getLogger(name).setLevel(level)
    install_scrubber()


@dataclass(frozen=True)
class WorkspaceSpec:
    """Which Azure ML workspace to use and where that came from (no credentials in here)."""

    subscription_id: str
    resource_group: str
    workspace_name: str
    source: str

    def describe(self) -> dict[str, str]:
        return {
            "subscription_id": self.subscription_id,
            "resource_group": self.resource_group,
            "workspace_name": self.workspace_name,
        }


def _workspace_from_file(path: Path, flag: str) -> WorkspaceSpec:
    raw = read_json_object(
        path,
        label=f"{flag} {path}",
        missing="no such file; download config.json from the workspace's page",
        fix="download config.json again",
    )
    fields = ("subscription_id", "resource_group", "workspace_name")
    if not all(isinstance(raw.get(key), str) and raw[key] for key in fields):
        raise ConfigError(f"{path}: expected string fields {', '.join(fields)}; download config.json again")
    return WorkspaceSpec(raw["subscription_id"], raw["resource_group"], raw["workspace_name"], source=str(path))


def resolve_workspace(
    config: Path | None, *, env: Mapping[str, str] | None = None, search_from: Path | None = None
) -> WorkspaceSpec:
    """The workspace: --workspace-config, else the AZUREML_* variables, else config.json found like from_config()."""
    env = os.environ if env is None else env
    if config is not None:
        return _workspace_from_file(config, "--workspace-config")
    present = [name for name in WORKSPACE_VARS if env.get(name)]
    if len(present) == len(WORKSPACE_VARS):
        subscription, group, workspace = (env[name] for name in WORKSPACE_VARS)
        return WorkspaceSpec(subscription, group, workspace, source="environment (" + ", ".join(WORKSPACE_VARS) + ")")
    if present:
        missing = [name for name in WORKSPACE_VARS if name not in present]
        raise ConfigError(f"${', $'.join(missing)} unset while ${', $'.join(present)} is set; export all three")
    folder = (search_from or Path.cwd()).resolve()
    for candidate_dir in (folder, *folder.parents):
        for candidate in CONFIG_CANDIDATES:
            if (candidate_dir / candidate).is_file():
                return _workspace_from_file(candidate_dir / candidate, "config")
    raise ConfigError(
        "no Azure ML workspace configured: pass --workspace-config config.json or export " + ", ".join(WORKSPACE_VARS)
    )


@dataclass(frozen=True)
class AuthSpec:
    """How to authenticate: the kind and the non-secret identifiers; the secret stays in its variable."""

    kind: str
    tenant_id: str | None = None
    client_id: str | None = None

    def secret(self) -> str:
        """The service principal secret, read from the environment at the moment an SDK needs it."""
        value = os.environ.get(SECRET_VAR, "")
        if not value:
            raise ConfigError(f"--auth sp needs ${SECRET_VAR}; map the secret variable into the step's env")
        remember_secret(value)
        return value

    def describe(self) -> dict[str, str | None]:
        if self.kind == "sp":
            return {
                "kind": "service principal",
                "tenant_id": self.tenant_id,
                "client_id": self.client_id,
                "secret": f"${SECRET_VAR}",
            }
        if self.kind == "msi":
            return {"kind": "managed identity", "client_id": self.client_id}
        return {"kind": "Azure CLI login"}


def resolve_auth(kind: str | None, *, env: Mapping[str, str] | None = None) -> AuthSpec:
    """--auth, else $AZUREML_AUTH, else sp when its three variables are set, else cli; missing ones fail at once."""
    env = os.environ if env is None else env
    chosen = kind or env.get(AUTH_VAR) or None
    if chosen is not None and chosen not in AUTH_KINDS:
        raise ConfigError(f"--auth {chosen!r} is not a kind of credential; choose one of {', '.join(AUTH_KINDS)}")
    present = [name for name in SP_VARS if env.get(name)]
    remember_secret(env.get(SECRET_VAR))
    if chosen is None and present and len(present) < len(SP_VARS):
        missing = [name for name in SP_VARS if name not in present]
        raise ConfigError(
            f"service principal variables partly set: ${', $'.join(missing)} unset (secret variables must be mapped "
            "into the step's env); set all three, or pass --auth cli|msi"
        )
    if chosen is None:
        chosen = "sp" if present else "cli"
    if chosen == "sp":
        missing = [name for name in SP_VARS if not env.get(name)]
        if missing:
            raise ConfigError(
                f"missing credentials: --auth sp needs ${', $'.join(missing)}; export them, or pass --auth cli|msi"
            )
        return AuthSpec("sp", tenant_id=env[SP_VARS[0]], client_id=env[SP_VARS[1]])
    if chosen == "msi":
        return AuthSpec("msi", client_id=env.get("AZUREML_CLIENT_ID") or None)
    return AuthSpec("cli")


def read_model(model_dir: Path) -> ModelCard:
    """The model card, and model.pkl beside it: an Azure target uploads the whole folder."""
    card = base_read_model(model_dir)
    if not (model_dir / "model.pkl").is_file():
        raise ConfigError(f"{model_dir / 'model.pkl'}: missing beside model.json; run `python -m service.build`")
    return card


def release_id(env: Mapping[str, str] | None = None) -> str | None:
    """The Azure Pipelines release (classic) or run (YAML) id, when running in one."""
    env = os.environ if env is None else env
    for name in RELEASE_ID_VARS:
        if env.get(name):
            return env[name]
    return None


def check_service_name(name: str, *, flag: str = "--name") -> str:
    """The name when Azure accepts it; otherwise a ConfigError that states the rule and suggests a fixed name."""
    low, high = SERVICE_NAME_LENGTH
    if SERVICE_NAME.fullmatch(name) and low <= len(name) <= high:
        return name
    suggestion = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    suggestion = re.sub(r"^[^a-z]+", "", suggestion)[:high].rstrip("-")
    hint = f"; try {suggestion!r}" if SERVICE_NAME.fullmatch(suggestion) and len(suggestion) >= low else ""
    raise ConfigError(
        f"{flag} {name!r}: Azure service names are {low}-{high} characters of lowercase letters, digits and dashes, "
        f"start with a letter and do not end with a dash{hint}"
    )


def service_name(
    *, prefix: str, explicit: str | None, fallback: str | None, env: Mapping[str, str] | None = None
) -> str:
    """--name, else <prefix>-r<release id>, else <prefix>-<fallback>: one deterministic name per release."""
    if explicit:
        return check_service_name(explicit)
    run = release_id(env)
    if run:
        return check_service_name(f"{prefix}-r{run}", flag=f"the name from ${'/$'.join(RELEASE_ID_VARS)}")
    if fallback:
        return check_service_name(f"{prefix}-{fallback}", flag="the default name")
    raise ConfigError(f"no service name: pass --name, or set ${' or $'.join(RELEASE_ID_VARS)}")


def check_key_env(name: str | None) -> str:
    """The name of the variable that will hold the scoring key (never the key)."""
    chosen = name or DEFAULT_KEY_ENV
    if not ENV_NAME.fullmatch(chosen):
        raise ConfigError(f"--key-env {chosen!r}: expected an environment variable name such as {DEFAULT_KEY_ENV}")
    return chosen


def read_requirements(service_dir: Path) -> list[str]:
    """The service's pinned requirements plus the inference server (pinned as in requirements.lock when absent)."""
    path = service_dir / REQUIREMENTS_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no requirements for the serving image; restore it or pass --service-dir") from None
    requirements: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if not PINNED.match(line):
            raise ConfigError(f"{path}:{number}: {line!r} is not pinned; pin it as name==version so images reproduce")
        requirements.append(line)
    if not any(_project_name(line) == SERVER_PACKAGE for line in requirements):
        requirements.append(f"{SERVER_PACKAGE}=={_locked_version(SERVER_PACKAGE)}")
    return requirements


def _project_name(requirement: str) -> str:
    return re.split(r"[\[=<>!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _locked_version(package: str) -> str:
    try:
        lines = LOCK_FILE.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        if "==" in line and _project_name(line) == package:
            return line.split("==", 1)[1].strip()
    raise ConfigError(f"{LOCK_FILE}: {package} is not pinned there; pin it in service/{REQUIREMENTS_FILE}")


def check_service_dir(service_dir: Path | None) -> Path:
    """The folder uploaded as the image's source directory; it must hold the entry script."""
    folder = (service_dir or SERVICE_DIR).resolve()
    if not (folder / ENTRY_SCRIPT).is_file():
        raise ConfigError(f"{folder / ENTRY_SCRIPT}: no scoring entry script; restore it or pass --service-dir")
    return folder


def routes_beside(scoring_uri: str) -> tuple[str, str]:
    """Health and swagger URIs of an azmlinfsrv service: `/` and `/swagger.json` beside its `/score` route."""
    parts = urlsplit(scoring_uri)
    path = parts.path
    base = path[: -len("/score")] if path.endswith("/score") else path.rstrip("/")
    health = urlunsplit((parts.scheme, parts.netloc, f"{base}/", "", ""))
    swagger = urlunsplit((parts.scheme, parts.netloc, f"{base}/swagger.json", "version=3.1", ""))
    return health, swagger


def publish_key(*, key_env: str, key: str, service: str, fetch_hint: str) -> None:
    """Hand the key on without writing it anywhere: a secret pipeline variable in Azure Pipelines, else nowhere."""
    remember_secret(key)
    os.environ[key_env] = key  # for anything this process runs next (the --smoke scenarios)
    if os.environ.get(IN_PIPELINE_VAR):
        # Azure Pipelines masks issecret variables in every later log line; a child cannot set its parent's env.
        sys.stdout.write(f"##vso[task.setvariable variable={key_env};issecret=true]{key}\n")
        sys.stdout.flush()
        log.info("the scoring key of %s is in the secret pipeline variable %s", service, key_env)
        return
    log.info("the scoring key of %s was not written anywhere; get it with: export %s=%s", service, key_env, fetch_hint)


def log_tail(text: str | None, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a service log, scrubbed."""
    if not text:
        return "(the service returned no log lines)"
    return scrub("\n".join(text.rstrip().splitlines()[-lines:]))


def save_text(path: Path, text: str) -> Path:
    """Write scrubbed text next to the other artifacts and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(scrub(text))
    return path


def render_plan(title: str, plan: Mapping[str, Any]) -> str:
    """The dry-run plan as a title line and indented JSON (scrubbed, though a plan holds no secrets)."""
    return scrub(f"{title}\n{json.dumps(plan, indent=2, default=str)}")


def fields_of(obj: Any, *, skip: Iterable[str] = ()) -> dict[str, Any]:
    """The public, set fields of an SDK configuration object, as plain JSON-friendly values."""
    skipped = set(skip)
    out: dict[str, Any] = {}
    for key, value in vars(obj).items():
        if key.startswith("_") or key in skipped or value is None:
            continue
        out[key] = value if isinstance(value, str | int | float | bool | list | dict) else str(value)
    return out
