"""The deployment target interface and the `deployment.json` record every later stage reads."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS_ENV = "RELEASE_ARTIFACTS"
DEPLOYMENT_FILE = "deployment.json"
# JSON types of the deployment.json fields (docs/contracts.md); later stages trust them once the file has loaded.
FIELD_TYPES: dict[str, type] = {
    "target": str,
    "name": str,
    "scoring_uri": str,
    "health_uri": str,
    "swagger_uri": str,
    "auth": bool,
    "key_env": str,
    "model": dict,
    "created_at": str,
    "details": dict,
}
NULLABLE_FIELDS = frozenset({"swagger_uri", "key_env"})  # null means "none" for these two
SHOWN_CHARS = 60  # a corrupt value is quoted in the error message, cut so the message stays one readable line


def artifacts_dir() -> Path:
    """The artifacts folder: `$RELEASE_ARTIFACTS` or `artifacts/` at the project root."""
    configured = os.environ.get(ARTIFACTS_ENV)
    return Path(configured) if configured else PROJECT_ROOT / "artifacts"


class DeployError(Exception):
    """A deployment failed; the message is one line a release engineer can act on."""


class ConfigError(DeployError):
    """The command, its flags or its input files are wrong: nothing was deployed (exit code 2)."""


def read_json_object(path: Path, *, label: str, missing: str, fix: str) -> dict[str, Any]:
    """A JSON object from a file; a missing, unreadable or non-object file is a ConfigError saying the fix."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{label}: {missing}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{label}: not readable JSON ({exc}); {fix}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}: expected a JSON object, got {type(raw).__name__}; {fix}")
    return raw


@dataclass
class Deployment:
    """What `deployment.json` holds: where the service answers and how to reach it (never the key)."""

    target: str
    name: str
    scoring_uri: str
    health_uri: str
    swagger_uri: str | None
    auth: bool
    key_env: str | None
    model: dict[str, str]
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    details: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str | None:
        """The scoring key read from the named environment variable, or None when auth is off."""
        if not self.auth or not self.key_env:
            return None
        value = os.environ.get(self.key_env)
        if not value:
            raise ConfigError(
                f"the deployment needs a scoring key but ${self.key_env} is empty or unset; "
                f"export {self.key_env} with the service key"
            )
        return value

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Deployment:
        """Read a deployment file; a missing or malformed one raises DeployError naming the fix."""
        raw = read_json_object(
            path,
            label=str(path),
            missing="no deployment file; run `python -m deploy up --target local` first",
            fix="redeploy to rewrite it",
        )
        known = set(cls.__dataclass_fields__)
        missing = {"target", "name", "scoring_uri", "health_uri"} - raw.keys()
        if missing:
            raise ConfigError(f"{path}: missing fields {sorted(missing)}; redeploy to rewrite it")
        raw.setdefault("swagger_uri", None)
        raw.setdefault("auth", False)
        raw.setdefault("key_env", None)
        raw.setdefault("model", {})
        _check_types(path, raw)
        return cls(**{k: v for k, v in raw.items() if k in known})


def _check_types(path: Path, raw: dict[str, Any]) -> None:
    """Reject a field of the wrong JSON type with a ConfigError naming the file and the field."""
    for name, expected in FIELD_TYPES.items():
        if name not in raw or (raw[name] is None and name in NULLABLE_FIELDS):
            continue
        value = raw[name]
        if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
            raise ConfigError(
                f"{path}: field {name!r} is {_shown(value)}, expected {_type_word(expected)}; redeploy to rewrite it"
            )
    details = raw.get("details", {})
    if raw["target"] != "local":
        return
    for name in ("pid", "pgid", "port"):
        value = details.get(name)
        if value is None and name != "pid":
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(
                f"{path}: field 'details.{name}' is {_shown(value)}, expected a whole number above 0; "
                "stop the local server by hand if it still runs, then delete the file"
            )


def _shown(value: Any) -> str:
    """A short JSON rendering of a bad value for an error message."""
    text = json.dumps(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."


def _type_word(expected: type) -> str:
    """How an error message names a JSON type."""
    return {str: "a string", bool: "true or false", dict: "an object"}[expected]


@dataclass(frozen=True)
class ModelCard:
    """The model folder the build stage wrote: where it is, its name and content-hash version."""

    path: Path
    name: str
    version: str


def read_model(model_dir: Path) -> ModelCard:
    """Name and version from `model.json`, the build stage's record of the model (docs/contracts.md)."""
    card = model_dir / "model.json"
    raw = read_json_object(
        card,
        label=str(card),
        missing="no model.json; run `python -m service.build` first or pass --model-dir",
        fix="run `python -m service.build` to rewrite it",
    )
    if not all(isinstance(raw.get(key), str) and raw[key] for key in ("name", "version")):
        raise ConfigError(f"{card}: expected string fields 'name' and 'version'; run `python -m service.build`")
    return ModelCard(path=model_dir.resolve(), name=raw["name"], version=raw["version"])


class Target(Protocol):
    """A place the scoring service runs. Each target module exposes one of these.

    `up` deploys the model folder and returns the Deployment (the caller writes it);
    `down` removes what `up` created; both raise DeployError with a one-line message.
    """

    name: str

    def up(self, *, model_dir: Path, artifacts: Path, options: dict[str, Any]) -> Deployment: ...

    def down(self, deployment: Deployment, *, artifacts: Path) -> None: ...
