"""Locust users for the forecast scoring service, with exact latency recording.

    locust -f load/locustfile.py                       # web UI; host from artifacts/deployment.json or --host
    locust -f load/locustfile.py --headless -u 4 -t 30s --host http://127.0.0.1:40123
    python -m load run --profile steady                 # what the release gate runs (bounded, writes results)
    LOAD_PROFILE=rate locust -f load/locustfile.py --worker --master-host HOST   # a remote worker

Each user posts {"horizon": N} with the profile's mix of horizons (1, one season, the model's max horizon) and
the key from the variable deployment.json names (`Authorization: Bearer`). Every request's own timing goes
into an HDR histogram (see load/recorder.py). With $LOAD_PROFILE set, the profile's shape drives the run:
closed profiles keep `users` busy for `run_time_s`; open profiles send on an arrival-rate schedule and time
each request from its intended send time, so a stall shows up as latency. Workers send their recordings to
the master with every report; the master merges them exactly and writes the figures to $LOAD_FIGURES_FILE.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

# Locust monkey-patches the standard library with gevent, so it comes before anything that may load ssl.
import gevent
from locust import FastHttpUser, LoadTestShape, between, constant, events, task
from locust.env import Environment
from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING, MasterRunner, WorkerRunner

_PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(_PROJECT_ROOT) not in sys.path:  # `locust -f load/locustfile.py` puts only load/ on sys.path
    sys.path.insert(0, str(_PROJECT_ROOT))

from deploy.base import artifacts_dir  # noqa: E402
from load.capacity import LATE_SEND_MS, SCHEDULE_LEAD_S, Schedule, stage_problems, stage_rows  # noqa: E402
from load.classify import check_answer, classify, describe  # noqa: E402
from load.config import (  # noqa: E402
    ENV_FIGURES,
    ENV_MAX_HORIZON,
    ENV_PROFILE,
    ENV_RAW_SAMPLES,
    ENV_SEASON_LENGTH,
    ENV_SEED,
    ENV_WORKER_COUNT,
    ENV_WORKER_FIGURES,
    Config,
    ConfigError,
    Profile,
    RequestKind,
    Target,
    env_int,
    env_overrides,
    load_config,
    model_shape,
    resolve_target,
)
from load.recorder import Recorder, summarize  # noqa: E402

log = logging.getLogger("load.locustfile")

SNAPSHOT_INTERVAL_S = 2.0  # how often the figures file is refreshed while a run goes on (progress, partial data)
STAGE_CHECK_LAG_S = 1.0  # a finished stage is judged this long after its end, when its requests have answered
MASTER_CHECK_LAG_S = 4.0  # a master hears from its workers every 3 s (Locust's WORKER_REPORT_INTERVAL)
SERVER_TIME_HEADER = "x-ms-run-fn-exec-ms"  # azmlinfsrv's own run() time, in ms
REPORT_KEY = "load_recorder"  # our entry in the data a worker reports to its master
_STOPPING = (STATE_STOPPING, STATE_CLEANUP, STATE_STOPPED)


def _settings() -> tuple[Profile | None, list[RequestKind], Config, Target, str | None]:
    """(profile or None, request kinds, config, target, key) from profiles.toml, the environment, deployment.json."""
    config = load_config()
    profile_name = os.environ.get(ENV_PROFILE)
    profile = env_overrides(config.profile(profile_name), os.environ) if profile_name else None
    max_horizon, season = model_shape(artifacts_dir(), config.defaults)
    max_horizon = env_int(os.environ, ENV_MAX_HORIZON, max_horizon)
    season = env_int(os.environ, ENV_SEASON_LENGTH, season)
    kinds = config.request_kinds(max_horizon=max_horizon, season_length=season)
    target = resolve_target(os.environ, config.defaults)
    key = os.environ.get(target.key_env) if target.key_env else None
    return profile, kinds, config, target, key


try:
    PROFILE, KINDS, CONFIG, TARGET, _KEY = _settings()
except ConfigError as exc:  # one line naming the file or variable, never a traceback
    print(f"load/locustfile.py: error: {exc}", file=sys.stderr)
    sys.exit(2)

OPEN_MODEL = PROFILE is not None and PROFILE.is_open
RECORDER = Recorder()
SCHEDULE = Schedule(PROFILE.stages if PROFILE else ())
_WEIGHTS = [kind.weight for kind in KINDS]
_state: dict[str, Any] = {
    "sent": 0,
    "snapshots": None,
    "rng": random.Random(),
    "stop": None,  # why a capacity search ended early
    "checked": -1,  # the last stage judged during a capacity search
    "total": None,  # a worker's own running total of what it reported (with $LOAD_WORKER_FIGURES_DIR)
    "raw": None,  # every request's raw timing (with $LOAD_RAW_SAMPLES_DIR)
}


class ScoringUser(FastHttpUser):
    """A caller of the scoring service asking for forecasts of a realistic mix of horizons."""

    host = TARGET.host
    wait_time = constant(0) if OPEN_MODEL else between(*PROFILE.wait_s) if PROFILE else between(0.05, 0.15)
    network_timeout = CONFIG.defaults.client_timeout_s
    connection_timeout = CONFIG.defaults.client_timeout_s
    default_headers = {"Authorization": f"Bearer {_KEY}"} if _KEY else None

    @task
    def forecast(self) -> None:
        """POST one forecast request (on schedule in an open-model run) and fail it unless usable."""
        runner = self.environment.runner
        if runner is not None and runner.state in _STOPPING:
            return  # the run is ending: a request started now would be cut off, not measured
        if not OPEN_MODEL:
            self._send(intended=None, stage=None)
            return
        claim = SCHEDULE.claim()
        if claim is None:
            gevent.sleep(0.2)  # the schedule is over; the shape ends the run
            return
        intended, stage = claim
        delay = intended - time.perf_counter()
        if delay > 0:
            gevent.sleep(delay)
        self._send(intended=intended, stage=stage)

    def _send(self, *, intended: float | None, stage: int | None) -> None:
        """Send one request of a random kind; note how late it went out against its schedule."""
        kind = _state["rng"].choices(KINDS, weights=_WEIGHTS)[0]
        _state["sent"] += 1
        sent_at = time.perf_counter()
        if intended is not None:
            lag_ms = (sent_at - intended) * 1000
            RECORDER.note_schedule(f"sent.{stage}", 1)
            RECORDER.note_schedule("lag_max_us", round(lag_ms * 1000))
            if lag_ms > LATE_SEND_MS:
                RECORDER.note_schedule(f"late.{stage}", 1)
        context = {"intended": intended, "sent_at": sent_at, "stage": stage}
        with self.client.post(
            TARGET.path, json={"horizon": kind.horizon}, name=kind.label, catch_response=True, context=context
        ) as response:
            if response.status_code:  # 0: no answer at all; Locust reports the connection error itself
                problem = check_answer(response.status_code, response.content, kind.horizon, secret=_KEY)
                if problem is not None:
                    response.failure(problem)


def _server_ms(response: Any) -> float | None:
    """The server's own execution time from its response header, if it sent one."""
    headers = getattr(response, "headers", None)
    raw = headers.get(SERVER_TIME_HEADER) if headers else None
    try:
        return float(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


@events.request.add_listener
def on_request(
    request_type: str,
    name: str,
    response_time: float,
    response_length: int,
    response: Any = None,
    context: dict[str, Any] | None = None,
    exception: BaseException | None = None,
    **_kwargs: Any,
) -> None:
    """Record each request's own timing (Locust's float ms, not its rounded buckets) and its error kind."""
    status = int(getattr(response, "status_code", 0) or 0)
    error = classify(status, exception)
    context = context or {}
    intended, sent_at = context.get("intended"), context.get("sent_at")
    # Open model: the latency a caller sees runs from when the request was due, not from when a user got to it.
    latency = response_time + (sent_at - intended) * 1000 if intended is not None and sent_at else response_time
    RECORDER.record(
        kind=name,
        at=time.time(),
        latency_ms=latency,
        error=error,
        status=status,
        server_ms=_server_ms(response) if error is None else None,
        response_ms=response_time,
        stage=context.get("stage"),
        message=describe(exception, secret=_KEY) if error else "",
    )
    if _state["raw"] is not None and error is None:
        _state["raw"].append((latency, response_time))


@events.cpu_warning.add_listener
def on_cpu_warning(environment: Environment, cpu_usage: float, **_kwargs: Any) -> None:
    """Remember that the generator was CPU-bound: its timings are then not trustworthy."""
    RECORDER.cpu_warning = True


@events.report_to_master.add_listener
def on_report_to_master(client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
    """A worker hands what it recorded since its last report to the master (and starts afresh)."""
    payload = RECORDER.drain()
    data[REPORT_KEY] = payload
    if _state["total"] is not None:
        _state["total"].merge(payload)


@events.worker_report.add_listener
def on_worker_report(client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
    """The master adds a worker's report to its own recording: histograms add bucket by bucket, exactly."""
    if REPORT_KEY in data:
        RECORDER.merge(data[REPORT_KEY])


def _on_final_report(environment: Environment, msg: Any, **_kwargs: Any) -> None:
    """A worker's last recording, sent as it stopped (before it told the master so)."""
    RECORDER.merge(msg.data)


@events.init.add_listener
def on_init(environment: Environment, **_kwargs: Any) -> None:
    """A master listens for its workers' final recordings."""
    if isinstance(environment.runner, MasterRunner):
        environment.runner.register_message(REPORT_KEY, _on_final_report)


def _flush_to_master(runner: WorkerRunner) -> None:
    """Send what this worker recorded since its last report now, ahead of its `client_stopped` message.

    Locust's periodic report comes up to 3 s later, after the master may have quit (and a stopped worker is no
    longer one of the master's clients, so it never gets the quit message that would trigger a last report).
    """
    payload = RECORDER.drain()
    if _state["total"] is not None:
        _state["total"].merge(payload)
    runner.send_message(REPORT_KEY, payload)


def _locust_figures(environment: Environment) -> dict[str, Any]:
    """Locust's own (bucket-rounded) totals, kept beside ours for comparison."""
    total = environment.stats.total
    return {
        "requests": total.num_requests,
        "failures": total.num_failures,
        "p50_ms": total.get_response_time_percentile(0.5),
        "p95_ms": total.get_response_time_percentile(0.95),
        "p99_ms": total.get_response_time_percentile(0.99),
        "max_ms": total.max_response_time,
        "avg_ms": total.avg_response_time,
    }


def _atomic_write(path: Path, data: dict[str, Any]) -> None:
    """Write JSON through a temporary file so readers never see half of it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def _write_figures(environment: Environment, *, final: bool) -> None:
    """Write the recorder's payload (plus Locust's own figures) where `python -m load run` reads it."""
    path = os.environ.get(ENV_FIGURES)
    runner = environment.runner
    if not path or isinstance(runner, WorkerRunner):
        return
    if runner is not None and (runner.cpu_warning_emitted or getattr(runner, "worker_cpu_warning_emitted", False)):
        RECORDER.cpu_warning = True
    data = RECORDER.payload()
    data["final"] = final
    data["sent"] = _state["sent"]
    data["stopped_early"] = _state["stop"]
    data["locust"] = _locust_figures(environment)
    data["written"] = time.time()
    data["workers"] = runner.worker_count if isinstance(runner, MasterRunner) else 0
    _atomic_write(Path(path), data)


def _snapshots(environment: Environment) -> None:
    """Refresh the figures file every few seconds so the CLI can show progress and keep partial data."""
    while True:
        gevent.sleep(SNAPSHOT_INTERVAL_S)
        _write_figures(environment, final=False)


def _check_stages(environment: Environment, elapsed: float) -> None:
    """Capacity search: once a stage has answered, stop the run if it broke the SLO (the knee is behind us)."""
    if PROFILE is None or not PROFILE.capacity_search or _state["stop"]:
        return
    lag = MASTER_CHECK_LAG_S if isinstance(environment.runner, MasterRunner) else STAGE_CHECK_LAG_S
    for number, stage in enumerate(PROFILE.stages):
        if number <= _state["checked"] or elapsed < SCHEDULE_LEAD_S + stage.end_s + lag:
            continue
        _state["checked"] = number
        payload = RECORDER.payload()
        row = stage_rows(PROFILE.stages, payload["stages"], schedule={})[number]
        problems = stage_problems(row, PROFILE.slo)
        if problems:
            _state["stop"] = f"stage {number} ({stage.rps:g} rps) broke the SLO: {'; '.join(problems)}"
            log.info("capacity search ends: %s", _state["stop"])
            return


if PROFILE is not None:
    _SHAPED: Profile = PROFILE

    class ProfileShape(LoadTestShape):
        """The profile's load: `users` for `run_time_s` (closed) or a pool serving the arrival schedule (open)."""

        def tick(self) -> tuple[int, float] | None:
            """Users and spawn rate now, or None once the profile is done (after stopping the run cleanly)."""
            runner = self.runner
            if runner is None:
                return None
            elapsed = self.get_run_time()
            end = _SHAPED.run_time_s + (SCHEDULE_LEAD_S if OPEN_MODEL else 0.0)
            _check_stages(runner.environment, elapsed)
            if elapsed < end and not _state["stop"]:
                # An open-model pool is spawned at once: its users idle until their send times come due.
                spawn_rate = max(_SHAPED.spawn_rate, _SHAPED.users * 10.0) if OPEN_MODEL else _SHAPED.spawn_rate
                return _SHAPED.users, spawn_rate
            if runner.state not in _STOPPING:
                # Stop here rather than returning None at once: Locust then waits for the users (and on a master,
                # for every worker) to finish and report before it quits, so no recording is lost.
                runner.stop()
            return None


def _schedule_share(environment: Environment) -> tuple[int, int]:
    """(share, index) of the open-model schedule this process sends: one worker's slice of the whole."""
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        return env_int(os.environ, ENV_WORKER_COUNT, 1), max(runner.worker_index, 0)
    return 1, 0


@events.test_start.add_listener
def on_test_start(environment: Environment, **_kwargs: Any) -> None:
    """Start a fresh recording (the web UI may run several tests in one process) and the schedule."""
    runner = environment.runner
    RECORDER.origin = runner.client_id if isinstance(runner, WorkerRunner) else "local"
    RECORDER.start(time.time())
    _state.update(sent=0, stop=None, checked=-1)
    share, index = _schedule_share(environment)
    seed = os.environ.get(ENV_SEED)
    _state["rng"] = random.Random(f"{seed}:{index}") if seed else random.Random()
    if OPEN_MODEL and PROFILE is not None and not isinstance(runner, MasterRunner):
        global SCHEDULE
        SCHEDULE = Schedule(PROFILE.stages, share=share, index=index)
        SCHEDULE.start(time.perf_counter() + SCHEDULE_LEAD_S)
    if isinstance(runner, WorkerRunner) and os.environ.get(ENV_WORKER_FIGURES):
        _state["total"] = Recorder(origin=runner.client_id)
    if os.environ.get(ENV_RAW_SAMPLES):
        _state["raw"] = []
    if os.environ.get(ENV_FIGURES) and _state["snapshots"] is None and not isinstance(runner, WorkerRunner):
        _state["snapshots"] = gevent.spawn(_snapshots, environment)


@events.test_stop.add_listener
def on_test_stop(environment: Environment, **_kwargs: Any) -> None:
    """Close the recording, note what the schedule should have sent, write the figures."""
    RECORDER.ended = time.time()
    runner = environment.runner
    if not isinstance(runner, MasterRunner):
        # Requests sent but never recorded were cut off when the stop timeout ended the users.
        RECORDER.unfinished = max(_state["sent"] - RECORDER.cumulative, 0)
        if OPEN_MODEL:
            for stage, count in SCHEDULE.due(time.perf_counter()).items():
                RECORDER.note_schedule(f"scheduled.{stage}", count)
    if isinstance(runner, WorkerRunner):
        _flush_to_master(runner)
    if _state["snapshots"] is not None:
        _state["snapshots"].kill(block=False)
        _state["snapshots"] = None
    _write_figures(environment, final=not isinstance(runner, MasterRunner))
    if not isinstance(runner, WorkerRunner):
        figures = summarize(RECORDER.latency.histogram, exact=RECORDER.latency.exact)
        log.info(
            "exact latency of %s successful requests (ms): p50 %s, p95 %s, p99 %s, max %s; errors %s",
            figures["count"],
            figures["p50"],
            figures["p95"],
            figures["p99"],
            figures["max"],
            dict(RECORDER.errors) or "none",
        )


@events.quitting.add_listener
def on_quitting(environment: Environment, **_kwargs: Any) -> None:
    """Last word: a master has now heard every worker's final report; workers and samplers write their files."""
    runner = environment.runner
    _write_figures(environment, final=True)
    if isinstance(runner, WorkerRunner) and _state["total"] is not None:
        folder = Path(os.environ[ENV_WORKER_FIGURES])
        _atomic_write(folder / f"worker-{os.getpid()}.json", _state["total"].payload())
    if _state["raw"] is not None:
        folder = Path(os.environ[ENV_RAW_SAMPLES])
        _atomic_write(folder / f"raw-{os.getpid()}.json", {"samples": _state["raw"]})
