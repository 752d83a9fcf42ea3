"""Profiles, SLOs and the request mix from load/profiles.toml, and the settings a load run passes to Locust."""

from __future__ import annotations

import json
import logging
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from deploy.base import DEPLOYMENT_FILE, ConfigError, Deployment, artifacts_dir

log = logging.getLogger(__name__)

PROFILES_FILE = Path(__file__).resolve().with_name("profiles.toml")
LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")

# Environment variables the `run` command sets for the Locust process (and a user may set for plain `locust -f`).
ENV_PROFILES = "LOAD_PROFILES_FILE"  # another profiles.toml
ENV_PROFILE = "LOAD_PROFILE"  # the profile whose mix, wait time and schedule the users follow
ENV_DEPLOYMENT = "LOAD_DEPLOYMENT"  # deployment.json to aim at (default: <artifacts>/deployment.json)
ENV_FIGURES = "LOAD_FIGURES_FILE"  # where the Locust process writes its figures (snapshots and the final one)
ENV_MAX_HORIZON = "LOAD_MAX_HORIZON"
ENV_SEASON_LENGTH = "LOAD_SEASON_LENGTH"

ENV_WORKER_COUNT = "LOAD_WORKER_COUNT"  # workers sharing an open-model schedule (each sends its share)
ENV_WORKER_FIGURES = "LOAD_WORKER_FIGURES_DIR"  # workers also write everything they reported here (checks)
ENV_RAW_SAMPLES = "LOAD_RAW_SAMPLES_DIR"  # every process writes each request's raw timing here (benchmarks)
ENV_SEED = "LOAD_SEED"  # seeds the request mix, so runs are repeatable
ENV_USERS = "LOAD_USERS"  # --users override for the Locust processes
ENV_RUN_TIME = "LOAD_RUN_TIME_S"  # --run-time override for the Locust processes

MIN_TAIL_SAMPLES = 10  # below 10 samples beyond a percentile, that percentile is just one of the largest values
MAX_SHORTFALL = 0.10  # an open-model run that sent over 10% fewer requests than scheduled did not apply its load
CLOSED, OPEN = "closed", "open"


class UsageError(ConfigError):
    """The load command, its flags or its config are wrong (exit code 2); the message names the fix."""


@dataclass(frozen=True)
class Slo:
    """The service level objectives one profile is judged against."""

    p95_ms: float
    max_error_ratio: float
    min_throughput_rps: float
    min_samples: int
    p99_ms: float | None = None

    def percentiles(self) -> list[float]:
        """The percentiles this SLO checks, as fractions."""
        return [0.95] + ([0.99] if self.p99_ms is not None else [])

    def required_samples(self) -> int:
        """Successful requests needed before the checked percentiles mean anything."""
        tail = max(math.ceil(MIN_TAIL_SAMPLES / (1 - p) - 1e-9) for p in self.percentiles())
        return max(self.min_samples, tail)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, without unset optional limits."""
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class Stage:
    """One stretch of an open-model schedule: a constant arrival rate for a while."""

    start_s: float
    duration_s: float
    rps: float

    @property
    def end_s(self) -> float:
        """When the stage ends, in seconds from the schedule's start."""
        return self.start_s + self.duration_s


@dataclass(frozen=True)
class Profile:
    """One load profile: how users behave (closed: users with think time; open: an arrival-rate schedule)."""

    name: str
    description: str
    model: str
    users: int  # closed: concurrent users; open: the pool, i.e. at most this many requests in flight
    spawn_rate: float
    run_time_s: float
    wait_s: tuple[float, float]
    slo: Slo
    stages: tuple[Stage, ...] = ()
    capacity_search: bool = False  # step: stop at the first stage that breaks the SLO and report the knee
    judge_after_run: bool = False

    @property
    def is_open(self) -> bool:
        """True for an arrival-rate (open-model) profile."""
        return self.model == OPEN

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        data = asdict(self)
        data["wait_s"] = list(self.wait_s)
        data["stages"] = [asdict(stage) for stage in self.stages]
        return data


@dataclass(frozen=True)
class Production:
    """The production load and container shape the AKS sizing aims at ([production] in profiles.toml)."""

    target_rps: float = 50.0
    peak_rps: float = 100.0
    autoscale_target_utilization: float = 0.7  # a fraction here; decision.json's sizing gives AKS's percent
    max_concurrent_requests_per_container: int = 1
    cpu_cores: float = 1.0
    memory_gb: float = 2.0
    max_replicas: int = 10


@dataclass(frozen=True)
class BaselinePolicy:
    """How a candidate is compared with a baseline run ([baseline] in profiles.toml)."""

    alpha: float = 0.01
    max_slowdown: float = 0.10
    min_shift_ms: float = 0.5
    max_error_ratio_increase: float = 0.005


@dataclass(frozen=True)
class Defaults:
    """Settings shared by every profile."""

    scoring_path: str = "/score"
    max_horizon: int = 24
    season_length: int = 12
    client_timeout_s: float = 90.0
    stop_timeout_s: float = 5.0
    wall_margin_s: float = 30.0


@dataclass(frozen=True)
class RequestKind:
    """One kind of request in the mix: a named horizon and its weight."""

    name: str
    horizon: int
    weight: float

    @property
    def label(self) -> str:
        """The name requests of this kind carry in Locust's statistics and in results.json."""
        return f"horizon={self.horizon}"


@dataclass(frozen=True)
class Config:
    """Everything profiles.toml holds."""

    path: Path
    defaults: Defaults
    mix: dict[str, str | int | float]
    mix_weights: dict[str, float]
    profiles: dict[str, Profile] = field(default_factory=dict)
    production: Production = field(default_factory=Production)
    baseline: BaselinePolicy = field(default_factory=BaselinePolicy)

    def profile(self, name: str) -> Profile:
        """The named profile, or a UsageError listing the known ones."""
        try:
            return self.profiles[name]
        except KeyError:
            known = ", ".join(sorted(self.profiles))
            raise UsageError(f"--profile {name!r} is not in {self.path}; choose one of {known}") from None

    def request_kinds(self, *, max_horizon: int, season_length: int) -> list[RequestKind]:
        """The mix with horizons resolved against the model; kinds that collapse onto one horizon are merged."""
        by_horizon: dict[int, RequestKind] = {}
        for name, spec in self.mix.items():
            horizon = _resolve_horizon(spec, max_horizon=max_horizon, season_length=season_length)
            weight = self.mix_weights[name]
            if horizon in by_horizon:
                previous = by_horizon[horizon]
                by_horizon[horizon] = RequestKind(previous.name, horizon, previous.weight + weight)
            else:
                by_horizon[horizon] = RequestKind(name, horizon, weight)
        return sorted(by_horizon.values(), key=lambda kind: kind.horizon)


def _resolve_horizon(spec: str | int | float, *, max_horizon: int, season_length: int) -> int:
    """A mix horizon as a number of periods, never above the model's max horizon."""
    if spec == "max":
        value = max_horizon
    elif spec == "season":
        value = season_length
    else:
        value = int(spec)
    return max(1, min(value, max_horizon))


def _number(table: Mapping[str, Any], key: str, where: str, *, default: float | None = None) -> float:
    """A non-negative number from a TOML table, or a UsageError naming the key."""
    value = table.get(key, default)
    if value is None:
        raise UsageError(f"{where}.{key} is missing; add it to the profiles file")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise UsageError(f"{where}.{key}: expected a finite number >= 0, got {value!r}; fix the profiles file")
    return float(value)


def _slo(table: Any, where: str) -> Slo:
    """The SLO table of a profile."""
    if not isinstance(table, dict):
        raise UsageError(f"{where}: missing SLO table; add p95_ms, max_error_ratio, min_throughput_rps, min_samples")
    p99 = table.get("p99_ms")
    return Slo(
        p95_ms=_number(table, "p95_ms", where),
        max_error_ratio=_number(table, "max_error_ratio", where),
        min_throughput_rps=_number(table, "min_throughput_rps", where),
        min_samples=int(_number(table, "min_samples", where)),
        p99_ms=None if p99 is None else _number(table, "p99_ms", where),
    )


def _stages(table: dict[str, Any], where: str) -> tuple[Stage, ...]:
    """An open profile's schedule from `rate_rps` + `run_time_s`, a `step` table, or a `stages` list."""
    given = [key for key in ("rate_rps", "step", "stages") if key in table]
    if len(given) != 1:
        raise UsageError(f"{where}: an open profile needs exactly one of rate_rps, step or stages; it has {given}")
    if "rate_rps" in table:
        return (Stage(0.0, _number(table, "run_time_s", where), _number(table, "rate_rps", where)),)
    if "step" in table:
        step = table["step"]
        if not isinstance(step, dict):
            raise UsageError(f"{where}.step: expected a table with start_rps, step_rps, step_s and max_rps")
        start, increment = _number(step, "start_rps", f"{where}.step"), _number(step, "step_rps", f"{where}.step")
        step_s, top = _number(step, "step_s", f"{where}.step"), _number(step, "max_rps", f"{where}.step")
        if increment <= 0 or step_s <= 0 or start <= 0:
            raise UsageError(f"{where}.step: start_rps, step_rps and step_s must be above 0")
        count = int((top - start) // increment) + 1
        return tuple(Stage(i * step_s, step_s, start + i * increment) for i in range(max(count, 1)))
    raw = table["stages"]
    if not isinstance(raw, list) or not raw:
        raise UsageError(f"{where}.stages: expected a list of {{duration_s = S, rps = R}} tables")
    stages, start = [], 0.0
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise UsageError(f"{where}.stages[{i}]: expected {{duration_s = S, rps = R}}")
        duration = _number(entry, "duration_s", f"{where}.stages[{i}]")
        stages.append(Stage(start, duration, _number(entry, "rps", f"{where}.stages[{i}]")))
        start += duration
    return tuple(stages)


def _profile(name: str, table: Any, source: Path) -> Profile:
    """One [profiles.NAME] table."""
    where = f"{source}: [profiles.{name}]"
    if not isinstance(table, dict):
        raise UsageError(f"{where}: expected a table; fix the profiles file")
    model = table.get("model", CLOSED)
    if model not in (CLOSED, OPEN):
        raise UsageError(f"{where}.model: expected 'closed' or 'open', got {model!r}")
    wait = table.get("wait_s", [0, 0])
    if not (
        isinstance(wait, list)
        and len(wait) == 2
        and all(isinstance(v, int | float) and math.isfinite(v) and v >= 0 for v in wait)
    ):
        raise UsageError(f"{where}.wait_s: expected [min, max] seconds, got {wait!r}")
    users = int(_number(table, "users", where, default=1))
    if users < 1:
        raise UsageError(f"{where}.users: expected at least 1")
    stages = _stages(table, where) if model == OPEN else ()
    run_time = stages[-1].end_s if stages else _number(table, "run_time_s", where)
    return Profile(
        name=name,
        description=str(table.get("description", "")),
        model=model,
        users=users,
        spawn_rate=_number(table, "spawn_rate", where, default=users),
        run_time_s=run_time,
        wait_s=(float(min(wait)), float(max(wait))),
        slo=_slo(table.get("slo"), f"{where}.slo"),
        stages=stages,
        capacity_search=bool(table.get("capacity_search", False)),
        judge_after_run=bool(table.get("judge_after_run", False)),
    )


def _production(table: Any, source: Path) -> Production:
    """The [production] table."""
    where = f"{source}: [production]"
    table = table if isinstance(table, dict) else {}
    base = Production()
    production = Production(
        target_rps=_number(table, "target_rps", where, default=base.target_rps),
        peak_rps=_number(table, "peak_rps", where, default=base.peak_rps),
        autoscale_target_utilization=_number(
            table, "autoscale_target_utilization", where, default=base.autoscale_target_utilization
        ),
        max_concurrent_requests_per_container=int(
            _number(
                table,
                "max_concurrent_requests_per_container",
                where,
                default=base.max_concurrent_requests_per_container,
            )
        ),
        cpu_cores=_number(table, "cpu_cores", where, default=base.cpu_cores),
        memory_gb=_number(table, "memory_gb", where, default=base.memory_gb),
        max_replicas=int(_number(table, "max_replicas", where, default=base.max_replicas)),
    )
    if not 0 < production.autoscale_target_utilization <= 1:
        raise UsageError(f"{where}.autoscale_target_utilization: expected a fraction in (0, 1], e.g. 0.7")
    if production.max_concurrent_requests_per_container < 1 or production.target_rps <= 0:
        raise UsageError(f"{where}: target_rps and max_concurrent_requests_per_container must be above 0")
    return production


def _baseline(table: Any, source: Path) -> BaselinePolicy:
    """The [baseline] table."""
    where = f"{source}: [baseline]"
    table = table if isinstance(table, dict) else {}
    base = BaselinePolicy()
    policy = BaselinePolicy(
        alpha=_number(table, "alpha", where, default=base.alpha),
        max_slowdown=_number(table, "max_slowdown", where, default=base.max_slowdown),
        min_shift_ms=_number(table, "min_shift_ms", where, default=base.min_shift_ms),
        max_error_ratio_increase=_number(
            table, "max_error_ratio_increase", where, default=base.max_error_ratio_increase
        ),
    )
    if not 0 < policy.alpha < 1:
        raise UsageError(f"{where}.alpha: expected a significance level in (0, 1), e.g. 0.01")
    return policy


def _defaults(table: Any, source: Path) -> Defaults:
    """The [defaults] table."""
    where = f"{source}: [defaults]"
    table = table if isinstance(table, dict) else {}
    base = Defaults()
    return Defaults(
        scoring_path=str(table.get("scoring_path", base.scoring_path)),
        max_horizon=int(_number(table, "max_horizon", where, default=base.max_horizon)),
        season_length=int(_number(table, "season_length", where, default=base.season_length)),
        client_timeout_s=_number(table, "client_timeout_s", where, default=base.client_timeout_s),
        stop_timeout_s=_number(table, "stop_timeout_s", where, default=base.stop_timeout_s),
        wall_margin_s=_number(table, "wall_margin_s", where, default=base.wall_margin_s),
    )


def load_config(path: Path | None = None) -> Config:
    """Read profiles.toml (the given file, $LOAD_PROFILES_FILE, or the one beside this module)."""
    source = path or Path(os.environ.get(ENV_PROFILES) or PROFILES_FILE)
    try:
        raw = tomllib.loads(source.read_text())
    except FileNotFoundError:
        raise UsageError(f"{source}: no profiles file; restore load/profiles.toml or fix ${ENV_PROFILES}") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{source}: not a readable TOML file ({exc}); fix its syntax") from None
    mix_table = raw.get("mix")
    if not isinstance(mix_table, dict) or not mix_table:
        raise UsageError(f"{source}: [mix] is missing or empty; add at least one [mix.NAME] with horizon and weight")
    mix: dict[str, str | int | float] = {}
    weights: dict[str, float] = {}
    for name, entry in mix_table.items():
        spec = entry.get("horizon") if isinstance(entry, dict) else None
        if not (spec in ("season", "max") or (isinstance(spec, int) and not isinstance(spec, bool) and spec >= 1)):
            raise UsageError(f"{source}: [mix.{name}].horizon: expected a whole number >= 1, 'season' or 'max'")
        mix[name] = spec
        weights[name] = _number(entry, "weight", f"{source}: [mix.{name}]", default=1.0)
    profiles_table = raw.get("profiles")
    if not isinstance(profiles_table, dict) or not profiles_table:
        raise UsageError(f"{source}: no [profiles.NAME] tables; add smoke and steady")
    profiles = {name: _profile(name, table, source) for name, table in profiles_table.items()}
    return Config(
        path=source,
        defaults=_defaults(raw.get("defaults"), source),
        mix=mix,
        mix_weights=weights,
        profiles=profiles,
        production=_production(raw.get("production"), source),
        baseline=_baseline(raw.get("baseline"), source),
    )


def model_shape(artifacts: Path, defaults: Defaults) -> tuple[int, int]:
    """(max_horizon, season_length) from <artifacts>/model/model.json, or the config defaults without one."""
    path = artifacts / "model" / "model.json"
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return defaults.max_horizon, defaults.season_length
    if not isinstance(raw, dict):
        return defaults.max_horizon, defaults.season_length
    max_horizon = raw.get("max_horizon")
    season = raw.get("season_length")
    return (
        max_horizon if isinstance(max_horizon, int) and max_horizon >= 1 else defaults.max_horizon,
        season if isinstance(season, int) and season >= 1 else defaults.season_length,
    )


@dataclass(frozen=True)
class Target:
    """Where the users send requests: base URL (scheme://host:port), scoring path, and the key variable's name."""

    host: str | None
    path: str
    key_env: str | None
    deployment_file: Path | None


def split_scoring_uri(uri: str) -> tuple[str, str]:
    """('scheme://host:port', '/path') of a scoring URI."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"scoring URI {uri!r} is not an http(s) URL; redeploy to rewrite deployment.json")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return f"{parts.scheme}://{parts.netloc}", path


def resolve_target(env: Mapping[str, str], defaults: Defaults) -> Target:
    """The deployment the users aim at: $LOAD_DEPLOYMENT, else <artifacts>/deployment.json when it exists."""
    configured = env.get(ENV_DEPLOYMENT)
    path = Path(configured) if configured else artifacts_dir() / DEPLOYMENT_FILE
    if not configured and not path.exists():
        # Plain `locust -f load/locustfile.py --host ...` (or the web UI's host field) without a deployment.
        return Target(host=None, path=defaults.scoring_path, key_env=None, deployment_file=None)
    deployment = Deployment.load(path)
    deployment.key()  # fails now, naming the variable, when auth is on and the key is missing
    host, scoring_path = split_scoring_uri(deployment.scoring_uri)
    return Target(
        host=host, path=scoring_path, key_env=deployment.key_env if deployment.auth else None, deployment_file=path
    )


def env_int(env: Mapping[str, str], name: str, default: int) -> int:
    """A positive whole number from the environment, or a UsageError naming the variable."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"${name}={raw!r}: expected a whole number") from None
    if value < 1:
        raise UsageError(f"${name}={raw!r}: expected at least 1")
    return value


def apply_overrides(profile: Profile, *, run_time_s: float | None, users: int | None) -> Profile:
    """The profile with --run-time / --users applied; an open schedule is stretched to the new run time."""
    if run_time_s is not None and (not math.isfinite(run_time_s) or run_time_s <= 0):
        raise UsageError(f"--run-time {run_time_s:g}: expected a finite number of seconds above 0")
    if users is not None and users < 1:
        raise UsageError(f"--users {users}: expected at least 1")
    stages = profile.stages
    if run_time_s is not None and stages:
        factor = run_time_s / profile.run_time_s
        stages = tuple(Stage(s.start_s * factor, s.duration_s * factor, s.rps) for s in stages)
    return replace(
        profile,
        run_time_s=profile.run_time_s if run_time_s is None else float(run_time_s),
        users=profile.users if users is None else users,
        spawn_rate=profile.spawn_rate if users is None else float(users),
        stages=stages,
    )


def env_overrides(profile: Profile, env: Mapping[str, str]) -> Profile:
    """The profile with the overrides `python -m load run` passed to the Locust processes."""
    raw_time = env.get(ENV_RUN_TIME)
    try:
        run_time = float(raw_time) if raw_time else None
    except ValueError:
        raise UsageError(f"${ENV_RUN_TIME}={raw_time!r}: expected seconds") from None
    users = env_int(env, ENV_USERS, 0) or None
    return apply_overrides(profile, run_time_s=run_time, users=users)
