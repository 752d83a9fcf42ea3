"""profiles.toml, the request mix, and where the users aim (deployment.json, the key variable's name)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy.base import ConfigError
from load.config import (
    ENV_DEPLOYMENT,
    BaselinePolicy,
    Defaults,
    Production,
    RequestKind,
    Slo,
    Stage,
    UsageError,
    apply_overrides,
    load_config,
    model_shape,
    resolve_target,
)
from load.runner import locust_command, wall_time_bound

KEY_ENV = "LOAD_CONFIG_TEST_KEY"


def test_shipped_profiles_have_smoke_and_steady_with_slos() -> None:
    config = load_config()
    smoke, steady = config.profile("smoke"), config.profile("steady")
    assert (smoke.model, smoke.users, smoke.run_time_s) == ("closed", 2, 10.0)
    assert (steady.model, steady.users, steady.run_time_s) == ("closed", 4, 30.0)
    assert steady.slo == Slo(p95_ms=300, max_error_ratio=0.01, min_throughput_rps=10, min_samples=300)
    assert smoke.slo.required_samples() == 200


def test_mix_resolves_against_the_model() -> None:
    kinds = load_config().request_kinds(max_horizon=24, season_length=12)
    assert kinds == [
        RequestKind("one_period", 1, 5.0),
        RequestKind("one_season", 12, 3.0),
        RequestKind("max_horizon", 24, 2.0),
    ]
    assert [kind.label for kind in kinds] == ["horizon=1", "horizon=12", "horizon=24"]


def test_mix_never_asks_beyond_max_horizon() -> None:
    kinds = load_config().request_kinds(max_horizon=6, season_length=12)
    assert kinds == [RequestKind("one_period", 1, 5.0), RequestKind("one_season", 6, 5.0)]


def test_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(
        UsageError, match=r"--profile 'nope' is not in .*profiles\.toml; choose one of rate, smoke, spike, steady, step"
    ):
        load_config().profile("nope")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[mix", r"bad\.toml: not a readable TOML file"),
        ("[profiles.a]\n", r"\[mix\] is missing or empty"),
        ("[mix.a]\nhorizon = 0\n[profiles.a]\n[profiles.a.slo]\n", r"\[mix\.a\]\.horizon: expected a whole number"),
        ("[mix.a]\nhorizon = 1\n[profiles.a]\nusers = 1\n", r"\[profiles\.a\]\.run_time_s is missing; add it"),
        ("[mix.a]\nhorizon = 1\n[profiles.a]\nrun_time_s = 1\n", r"\[profiles\.a\]\.slo: missing SLO table"),
        (
            '[mix.a]\nhorizon = 1\n[profiles.a]\nrun_time_s = 1\n[profiles.a.slo]\np95_ms = "fast"\n',
            r"\.p95_ms: expected a finite number >= 0, got 'fast'",
        ),
    ],
    ids=["syntax", "no-mix", "bad-horizon", "no-run-time", "no-slo", "bad-slo"],
)
def test_broken_profiles_file_is_a_usage_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        load_config(path)


def test_model_shape_reads_model_json(tmp_path: Path) -> None:
    defaults = Defaults()
    assert model_shape(tmp_path, defaults) == (24, 12)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.json").write_text(json.dumps({"max_horizon": 36, "season_length": 7}))
    assert model_shape(tmp_path, defaults) == (36, 7)


def write_deployment(path: Path, *, auth: bool) -> Path:
    path.write_text(
        json.dumps(
            {
                "target": "attach",
                "name": "svc",
                "scoring_uri": "http://127.0.0.1:40123/api/score?verbose=1",
                "health_uri": "http://127.0.0.1:40123/",
                "auth": auth,
                "key_env": KEY_ENV if auth else None,
            }
        )
    )
    return path


def test_target_comes_from_the_deployment(tmp_path: Path) -> None:
    path = write_deployment(tmp_path / "deployment.json", auth=False)
    target = resolve_target({ENV_DEPLOYMENT: str(path)}, Defaults())
    assert (target.host, target.path, target.key_env) == ("http://127.0.0.1:40123", "/api/score?verbose=1", None)


def test_auth_needs_the_named_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_deployment(tmp_path / "deployment.json", auth=True)
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(ConfigError, match=rf"\${KEY_ENV} is empty or unset; export {KEY_ENV}"):
        resolve_target({ENV_DEPLOYMENT: str(path)}, Defaults())
    monkeypatch.setenv(KEY_ENV, "s3cret")
    assert resolve_target({ENV_DEPLOYMENT: str(path)}, Defaults()).key_env == KEY_ENV


def test_overrides_and_the_wall_time_bound() -> None:
    config = load_config()
    profile = apply_overrides(config.profile("smoke"), run_time_s=5, users=3)
    assert (profile.run_time_s, profile.users, profile.spawn_rate) == (5.0, 3, 3.0)
    assert wall_time_bound(profile, config) == 5 + 5 + 30
    assert wall_time_bound(profile, config, distributed=True) == 5 + 5 + 30 + 30
    command = locust_command(profile, config, host="http://127.0.0.1:1")
    assert "--headless" in command
    assert "--run-time" not in command  # the profile's shape in the locustfile ends the run
    with pytest.raises(UsageError, match=r"--run-time 0: expected a finite number of seconds above 0"):
        apply_overrides(profile, run_time_s=0, users=None)
    with pytest.raises(UsageError, match=r"--users 0: expected at least 1"):
        apply_overrides(profile, run_time_s=None, users=0)


def test_open_profiles_define_their_schedules() -> None:
    config = load_config()
    rate, step, spike = config.profile("rate"), config.profile("step"), config.profile("spike")
    assert rate.is_open and rate.stages == (Stage(0.0, 20.0, 40.0),)
    assert [s.rps for s in step.stages] == [50.0 * i for i in range(1, 25)]
    assert step.stages[1] == Stage(4.0, 4.0, 100.0)
    assert step.capacity_search and step.judge_after_run
    assert step.run_time_s == 96.0
    assert [(s.start_s, s.duration_s, s.rps) for s in spike.stages] == [(0, 10, 20), (10, 5, 60), (15, 10, 20)]


def test_run_time_override_stretches_an_open_schedule() -> None:
    spike = apply_overrides(load_config().profile("spike"), run_time_s=50, users=None)
    assert [(s.start_s, s.duration_s, s.rps) for s in spike.stages] == [(0, 20, 20), (20, 10, 60), (30, 20, 20)]
    assert spike.run_time_s == 50


def test_production_and_baseline_policy() -> None:
    config = load_config()
    assert config.production == Production(
        target_rps=50,
        peak_rps=100,
        autoscale_target_utilization=0.7,
        max_concurrent_requests_per_container=1,
        cpu_cores=1,
        memory_gb=2,
        max_replicas=10,
    )
    assert config.baseline == BaselinePolicy(
        alpha=0.01, max_slowdown=0.10, min_shift_ms=0.5, max_error_ratio_increase=0.005
    )


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('model = "open"\nusers = 2\n', r"an open profile needs exactly one of rate_rps, step or stages"),
        ('model = "open"\nrate_rps = 5\nstages = []\n', r"exactly one of rate_rps, step or stages; it has"),
        ('model = "open"\nstep = { start_rps = 0, step_rps = 1, step_s = 1, max_rps = 5 }\n', r"must be above 0"),
        ('model = "ajar"\nrun_time_s = 1\n', r"\.model: expected 'closed' or 'open'"),
    ],
    ids=["no-schedule", "two-schedules", "zero-start", "bad-model"],
)
def test_broken_open_profiles_are_usage_errors(tmp_path: Path, table: str, message: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        f"[mix.a]\nhorizon = 1\n[profiles.a]\n{table}[profiles.a.slo]\np95_ms = 1\n"
        "max_error_ratio = 0\nmin_throughput_rps = 0\nmin_samples = 1\n"
    )
    with pytest.raises(UsageError, match=message):
        load_config(path)
