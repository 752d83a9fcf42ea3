"""`python -m load run`: Locust headless in subprocesses (one, or a master and N workers), bounded in wall time.

path, results = run_load(RunRequest(profile=config.profile("smoke"), config=config,
                                    deployment_file=Path("artifacts/deployment.json"), artifacts=Path("artifacts")))
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from deploy.base import PROJECT_ROOT, Deployment
from load.capacity import SCHEDULE_LEAD_S, stage_rows
from load.config import (
    ENV_DEPLOYMENT,
    ENV_FIGURES,
    ENV_MAX_HORIZON,
    ENV_PROFILE,
    ENV_PROFILES,
    ENV_RAW_SAMPLES,
    ENV_RUN_TIME,
    ENV_SEASON_LENGTH,
    ENV_USERS,
    ENV_WORKER_COUNT,
    ENV_WORKER_FIGURES,
    LOCUSTFILE,
    Config,
    Profile,
    UsageError,
    model_shape,
    split_scoring_uri,
)
from load.recorder import SERIES_DIGITS, ExactStats, decode, histogram_record, new_histogram, summarize

log = logging.getLogger(__name__)

RESULTS_FILE = "results.json"
FIGURES_FILE = "figures.json"
LOCUST_LOG = "locust.log"
RESULTS_VERSION = 1
PROGRESS_INTERVAL_S = 5.0  # one progress line every few seconds: alive, not noisy
TERM_GRACE_S = 5.0  # after SIGTERM Locust writes its figures and exits in well under a second; then SIGKILL
WORKER_START_S = 30.0  # workers import Locust and connect; half a minute means something is wrong
LOOPBACK = "127.0.0.1"


class RunFailed(Exception):
    """The load run produced no figures (Locust failed to start or crashed); the message says where to look."""


@dataclass(frozen=True)
class RunRequest:
    """What to run: the profile (with CLI overrides applied), where, where results go, and how distributed."""

    profile: Profile
    config: Config
    deployment_file: Path
    artifacts: Path
    workers: int = 0  # local worker processes under a master (0: one plain process)
    remote_workers: int = 0  # workers on other machines that will join the master
    master_bind_host: str = LOOPBACK
    master_port: int | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def distributed(self) -> bool:
        """True when a master and workers run instead of one process."""
        return self.workers + self.remote_workers > 0


def wall_time_bound(profile: Profile, config: Config, *, distributed: bool = False) -> float:
    """Seconds the Locust processes may live: run time + stop timeout + margin (+ worker start-up)."""
    bound = profile.run_time_s + config.defaults.stop_timeout_s + config.defaults.wall_margin_s
    return bound + (WORKER_START_S if distributed else 0.0)


def _free_port(host: str) -> int:
    """A port nobody listens on right now on `host`, or a UsageError naming --master-bind-host."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
            return port
    except OSError as exc:
        raise UsageError(
            f"--master-bind-host {host}: cannot listen there ({exc.strerror or exc}); use an address of this machine"
        ) from None


def locust_command(profile: Profile, config: Config, *, host: str, request: RunRequest | None = None) -> list[str]:
    """The headless Locust command line; the profile's shape (see the locustfile) sets users and duration."""
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--only-summary",
        "--host",
        host,
        "--stop-timeout",
        f"{config.defaults.stop_timeout_s:g}",
        "--loglevel",
        "INFO",
    ]
    if request is not None and request.distributed:
        command += [
            "--master",
            "--master-bind-host",
            request.master_bind_host,
            "--master-bind-port",
            str(request.master_port),
            "--expect-workers",
            str(request.workers + request.remote_workers),
            "--expect-workers-max-wait",
            f"{WORKER_START_S:g}",
        ]
    return command


def worker_command(request: RunRequest) -> list[str]:
    """A local worker's command line (a remote worker runs the same with its own --master-host)."""
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--worker",
        "--master-host",
        LOOPBACK if request.master_bind_host in ("0.0.0.0", "") else request.master_bind_host,
        "--master-port",
        str(request.master_port),
        "--loglevel",
        "INFO",
    ]


def locust_env(request: RunRequest, figures: Path) -> dict[str, str]:
    """The Locust processes' environment: ours plus where to aim, what to mix, and where to write figures."""
    max_horizon, season = model_shape(request.artifacts, request.config.defaults)
    env = dict(os.environ)
    env.update(
        {
            ENV_PROFILES: str(request.config.path),
            ENV_PROFILE: request.profile.name,
            ENV_DEPLOYMENT: str(request.deployment_file),
            ENV_FIGURES: str(figures),
            ENV_MAX_HORIZON: str(max_horizon),
            ENV_SEASON_LENGTH: str(season),
            ENV_USERS: str(request.profile.users),
            ENV_RUN_TIME: repr(request.profile.run_time_s),
            ENV_WORKER_COUNT: str(max(request.workers + request.remote_workers, 1)),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(request.extra_env)
    return env


def _read_figures(path: Path) -> dict[str, Any] | None:
    """The Locust process's latest figures, or None when it wrote none (or a half-written file)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _progress_line(profile: Profile, figures: dict[str, Any] | None, elapsed: float) -> str:
    """One progress line for the console."""
    head = f"{profile.name}: {elapsed:5.0f}/{profile.run_time_s:g} s"
    if not figures or not figures.get("started"):
        return f"{head}  starting"
    requests = figures["requests"]
    failures = sum(figures["errors"].values())
    running = max(time.time() - figures["started"], 1e-9)
    exact = figures["latency"]["exact"]
    p95 = None
    if exact["count"]:
        p95 = summarize(decode(figures["latency"]["histogram"]), exact=ExactStats(**exact))["p95"]
    p95_text = f"{p95:.1f} ms" if p95 is not None else "-"
    return f"{head}  {requests} requests  {failures} failed  {requests / running:.1f} rps  p95 {p95_text}"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM a Locust process by pid (it writes its figures on the way out), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=TERM_GRACE_S)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        log.warning("Locust (pid %s) ignored SIGTERM for %g s; killing it", proc.pid, TERM_GRACE_S)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def _iso(epoch: float | None) -> str | None:
    """Epoch seconds as an ISO time in UTC."""
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat() if epoch else None


def series_rows(figures: dict[str, Any], started: float) -> list[dict[str, Any]]:
    """Per-second completions and latency percentiles, seconds counted from the start of the test."""
    rows = []
    for second, entry in sorted(figures["series"].items(), key=lambda item: int(item[0])):
        ok = entry["requests"] > entry["failures"]
        histogram = decode(entry["histogram"]) if ok else new_histogram(SERIES_DIGITS)
        figures_ms = summarize(histogram)
        rows.append(
            {
                "t": int(second) - int(started),
                "requests": entry["requests"],
                "failures": entry["failures"],
                "latency_ms": {key: figures_ms[key] for key in ("p50", "p95", "p99", "max")},
                "histogram": entry["histogram"],
            }
        )
    return rows


def _track(data: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(percentile summary, raw histogram record) of one recorded latency track."""
    if not data:
        return {"count": 0}, None
    histogram = decode(data["histogram"])
    return summarize(histogram, exact=ExactStats(**data["exact"])), histogram_record(histogram)


def _schedule_totals(profile: Profile, rows: list[dict[str, Any]], figures: dict[str, Any]) -> dict[str, Any]:
    """Scheduled vs sent vs completed over the whole open-model run, and how far the sends lagged."""
    schedule = figures.get("schedule", {})
    scheduled = sum(row["scheduled"] for row in rows)
    completed = sum(row["requests"] for row in rows)
    ran = sum(row["duration_s"] for row in rows)
    return {
        "target_rps": round(scheduled / ran, 3) if ran else None,
        "scheduled": scheduled,
        "sent": sum(row["sent"] for row in rows),
        "completed": completed,
        "late": sum(row["late"] for row in rows),
        "lag_max_ms": round(schedule.get("lag_max_us", 0) / 1000, 3),
        "shortfall": round(max(1 - completed / scheduled, 0.0), 6) if scheduled else None,
    }


def compose_results(
    *,
    request: RunRequest,
    figures: dict[str, Any] | None,
    exit_code: int | None,
    hit_wall_time_bound: bool,
    bound_s: float,
    deployment: Deployment,
) -> dict[str, Any]:
    """results.json from the Locust process's figures (empty figures when it wrote none), the key scrubbed."""
    profile = request.profile
    figures = figures or {}
    scoring_uri = deployment.scoring_uri
    started = figures.get("started")
    ended = figures.get("ended") or figures.get("written")
    duration = max((ended or 0) - (started or 0), 0.0) if started else 0.0
    requests = int(figures.get("requests", 0))
    errors = dict(figures.get("errors", {}))
    failed = sum(errors.values())
    latency, histogram = _track(figures.get("latency"))
    response, response_histogram = _track(figures.get("response"))
    server, server_histogram = _track(figures.get("server"))
    kinds = {}
    for name, kind in sorted(figures.get("kinds", {}).items()):
        kind_latency, kind_histogram = _track(kind["latency"])
        kinds[name] = {
            "requests": kind["requests"],
            "failures": kind["failures"],
            "latency_ms": kind_latency,
            "histogram": kind_histogram,
        }
    results: dict[str, Any] = {
        "version": RESULTS_VERSION,
        "profile": profile.name,
        "model": profile.model,
        "target": {"scoring_uri": scoring_uri, "deployment_file": str(request.deployment_file)},
        "deployment": {
            "target": deployment.target,
            "name": deployment.name,
            "scoring_uri": scoring_uri,
            "model": dict(deployment.model),
        },
        "settings": {
            "users": profile.users,
            "spawn_rate": profile.spawn_rate,
            "run_time_s": profile.run_time_s,
            "wait_s": list(profile.wait_s),
            "stages": [{"start_s": s.start_s, "duration_s": s.duration_s, "rps": s.rps} for s in profile.stages],
            "capacity_search": profile.capacity_search,
            "client_timeout_s": request.config.defaults.client_timeout_s,
            "stop_timeout_s": request.config.defaults.stop_timeout_s,
            "workers": request.workers,
            "remote_workers": request.remote_workers,
        },
        "slo": profile.slo.to_dict(),
        "started": _iso(started),
        "ended": _iso(ended),
        "duration_s": round(duration, 3),
        "requests": requests,
        "ok": requests - failed,
        "failures": {
            "total": failed,
            "by_kind": errors,
            "by_status": {code: n for code, n in sorted(figures.get("statuses", {}).items()) if code != "200"},
            "examples": {kind: scrub(str(text), deployment) for kind, text in figures.get("examples", {}).items()},
        },
        "error_ratio": round(failed / requests, 6) if requests else None,
        "throughput_rps": round(requests / duration, 3) if duration else 0.0,
        "ok_throughput_rps": round((requests - failed) / duration, 3) if duration else 0.0,
        "latency_ms": latency,
        "histogram": histogram,
        "server_ms": server,
        "server_histogram": server_histogram,
        "kinds": kinds,
        "series": series_rows(figures, started) if started else [],
        "unfinished": int(figures.get("unfinished", 0)),
        "cpu_warning": bool(figures.get("cpu_warning", False)),
        "hit_wall_time_bound": hit_wall_time_bound,
        "wall_time_bound_s": bound_s,
        "figures_final": bool(figures.get("final", False)),
        "stopped_early": figures.get("stopped_early"),
        "locust_exit_code": exit_code,
        "locust": figures.get("locust", {}),
    }
    if profile.is_open:
        ran = max(duration - SCHEDULE_LEAD_S, 0.0)  # the schedule starts SCHEDULE_LEAD_S after the test
        if ran:
            results["throughput_rps"] = round(requests / min(ran, profile.run_time_s), 3)
            results["ok_throughput_rps"] = round((requests - failed) / min(ran, profile.run_time_s), 3)
        rows = stage_rows(profile.stages, figures.get("stages", {}), schedule=figures.get("schedule", {}), ran_s=ran)
        results["stages"] = rows
        results["schedule"] = _schedule_totals(profile, rows, figures)
        # What Locust itself would report: timed from the actual send, blind to the time spent waiting to send.
        results["response_ms"] = response
        results["response_histogram"] = response_histogram
    if request.distributed:
        origins = dict(figures.get("origins", {}))
        results["workers"] = {
            "expected": request.workers + request.remote_workers,
            "reported": len(origins),
            "requests_reported": origins,
            "complete": len(origins) == request.workers + request.remote_workers and sum(origins.values()) == requests,
        }
    return results


def scrub(text: str, deployment: Deployment) -> str:
    """`text` with the scoring key (the value of the variable deployment.json names) blanked out."""
    secret = os.environ.get(deployment.key_env) if deployment.key_env else None
    if not secret:
        return text
    # The key as sent, as JSON may escape it, and as a URL would quote it (error pages echo any of these).
    forms = {secret, json.dumps(secret)[1:-1], json.dumps(secret)[1:-1].replace("/", "\\/"), quote(secret, safe="")}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write strict JSON atomically (a reader never sees half a file; NaN or infinity is a bug, not a figure)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    tmp.replace(path)


def _spawn(command: list[str], env: dict[str, str], log_file: IO[bytes]) -> subprocess.Popen[bytes]:
    """Start one Locust process with its output in the run's log."""
    return subprocess.Popen(
        command, cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT
    )


def _supervise(
    master: subprocess.Popen[bytes],
    *,
    bound: float,
    started: float,
    profile: Profile,
    figures_path: Path,
    echo: Callable[[str], None],
) -> bool:
    """Wait for the master (or lone) process, printing progress; True when it overran its bound and was stopped."""
    while True:
        remaining = bound - (time.monotonic() - started)
        if remaining <= 0:
            echo(f"load: Locust overran its wall-time bound of {bound:g} s; stopping pid {master.pid}")
            _stop(master)
            return True
        try:
            master.wait(timeout=min(PROGRESS_INTERVAL_S, remaining))
            return False
        except subprocess.TimeoutExpired:
            echo(_progress_line(profile, _read_figures(figures_path), time.monotonic() - started))


def _finish_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    """Stop the local workers by pid once their master is gone (they sent their last recording as they stopped).

    Locust's master only tells the workers it still counts as clients to quit, and a worker that stopped is no
    longer one, so an idle worker would otherwise wait for a master that never comes back.
    """
    for proc in workers:
        _stop(proc)


def run_load(request: RunRequest, *, echo: Callable[[str], None] = print) -> tuple[Path, dict[str, Any]]:
    """Run the profile against the deployment, bounded in wall time; write and return results.json."""
    # A previous run's results must never stand in for this one's if this one fails.
    (request.artifacts / "load" / request.profile.name / RESULTS_FILE).unlink(missing_ok=True)
    deployment = Deployment.load(request.deployment_file)
    deployment.key()  # a missing key is a usage error now, not 100% failures later
    host, _path = split_scoring_uri(deployment.scoring_uri)
    if request.workers < 0 or request.remote_workers < 0:
        raise UsageError("--workers and --remote-workers: expected 0 or more")
    if request.distributed and request.master_port is None:
        request = RunRequest(**{**request.__dict__, "master_port": _free_port(request.master_bind_host)})
    out_dir = request.artifacts / "load" / request.profile.name
    out_dir.mkdir(parents=True, exist_ok=True)
    figures_path = out_dir / FIGURES_FILE
    figures_path.unlink(missing_ok=True)
    log_path = out_dir / LOCUST_LOG
    bound = wall_time_bound(request.profile, request.config, distributed=request.distributed)
    env = locust_env(request, figures_path)
    for folder in (env.get(ENV_WORKER_FIGURES), env.get(ENV_RAW_SAMPLES)):
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
    shape = f"{request.profile.users} users" if not request.profile.is_open else _schedule_words(request.profile)
    spread = f"; {request.workers} local + {request.remote_workers} remote workers" if request.distributed else ""
    echo(
        f"load: profile {request.profile.name} against {deployment.scoring_uri} for {request.profile.run_time_s:g} s "
        f"({shape}{spread}; wall-time bound {bound:g} s; Locust log {log_path})"
    )
    if request.remote_workers:
        echo(
            f"load: waiting for {request.remote_workers} remote workers: on each, run `LOAD_PROFILE="
            f"{request.profile.name} locust -f load/locustfile.py --worker --master-host <this host> "
            f"--master-port {request.master_port}`"
        )
    started = time.monotonic()
    workers: list[subprocess.Popen[bytes]] = []
    with log_path.open("wb") as log_file:
        master = _spawn(locust_command(request.profile, request.config, host=host, request=request), env, log_file)
        try:
            worker_env = {k: v for k, v in env.items() if k != ENV_FIGURES}
            workers = [_spawn(worker_command(request), worker_env, log_file) for _ in range(request.workers)]
            hit_bound = _supervise(
                master, bound=bound, started=started, profile=request.profile, figures_path=figures_path, echo=echo
            )
            _finish_workers(workers)
        except BaseException:
            for proc in [master, *workers]:
                _stop(proc)
            raise
    figures = _read_figures(figures_path)
    if figures is None and not hit_bound:
        raise RunFailed(
            f"Locust exited with code {master.returncode} before measuring anything; see {log_path} for its error"
        )
    results = compose_results(
        request=request,
        figures=figures,
        exit_code=master.returncode,
        hit_wall_time_bound=hit_bound,
        bound_s=bound,
        deployment=deployment,
    )
    results_path = out_dir / RESULTS_FILE
    write_json(results_path, results)
    return results_path, results


def _schedule_words(profile: Profile) -> str:
    """'40 rps' or '40→480 rps in 12 stages' for the start line."""
    rates = [stage.rps for stage in profile.stages]
    if len(set(rates)) == 1:
        return f"{rates[0]:g} rps, pool of {profile.users} users"
    return f"{min(rates):g}–{max(rates):g} rps in {len(rates)} stages, pool of {profile.users} users"
