"""The `local` target: azmlinfsrv on a free loopback port, a child process stopped by its pid.

python -m deploy up --target local      # scoring at http://127.0.0.1:PORT/score, log in <artifacts>/server.log
python -m deploy down                    # stop it

with local_deployment(model_dir=Path("artifacts/model"), artifacts=Path("/tmp/a")) as deployment:
    ...                                  # the server is stopped when the block ends
"""

from __future__ import annotations

import http.client
import logging
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.base import PROJECT_ROOT, ConfigError, DeployError, Deployment, read_model

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
DEFAULT_NAME = "forecast-local"
APP_ROOT = PROJECT_ROOT / "service"  # azmlinfsrv reads swagger*.json (and config.json) from AML_APP_ROOT
DEFAULT_ENTRY_SCRIPT = APP_ROOT / "score.py"
SERVER_LOG = "server.log"
LAUNCHER = "deploy._serve"  # also the marker proving a pid is still our server before we signal it

DEFAULT_TIMEOUT_S = 60.0  # loading a statsmodels model and booting gunicorn takes seconds; a minute means trouble
DEFAULT_WORKERS = 1  # azmlinfsrv's own default; more workers are a load-test choice, not a start-up one
POLL_INTERVAL_S = 0.1  # health probes are one loopback request each; short so a fast start is seen fast
PROBE_TIMEOUT_S = 2.0  # a probe waits in gunicorn's backlog while init() runs; give up and re-check the process
STOP_GRACE_S = 10.0  # sync workers exit at once on SIGTERM; ten seconds lets a request in flight finish
ABORT_GRACE_S = 2.0  # a server that never became healthy has served nothing, so nothing to drain
KILL_WAIT_S = 5.0  # after SIGKILL the kernel needs only moments; longer means the process is stuck in the kernel
PORT_ATTEMPTS = 3  # a free port taken between our probe and gunicorn's bind is rare; three tries suffice

# Caller variables that would steer the server off loopback or off this machine (telemetry upload, a remote
# debugger, a second health listener, another config file); the local target never inherits them.
SCRUBBED_ENV = frozenset(
    {
        "AML_APP_INSIGHTS_ENABLED",
        "AML_APP_INSIGHTS_KEY",
        "AZUREML_DEBUG_PORT",
        "SEPERATE_HEALTH_ENDPOINT",
        "HEALTH_PORT",
        "AZUREML_CONFIG_FILE",
        "AZUREML_SOURCE_DIRECTORY",
        "AML_CORS_ORIGINS",
        "GUNICORN_CMD_ARGS",
    }
)
# Options other targets take that mean nothing here; passing one is a mistake worth naming.
FOREIGN_OPTIONS = {
    "scoring_uri": ("--scoring-uri", "the local target starts its own server"),
    "key_env": ("--key-env", "the local server has no key auth"),
    "dry_run": ("--dry-run", "there is nothing to plan locally"),
    "force": ("--force", "it applies to AKS promotion only"),
}
# A traceback's header; its frames follow indented, then the exception line `pkg.mod.AnyName: message` unindented.
TRACEBACK_HEADER = "Traceback (most recent call last):"
# Fallback when a log holds no traceback: a line that looks like `RuntimeError: message` or `pkg.mod.CustomError`.
EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit)(?:: .*)?$")
LOG_RECORD_START = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")  # azmlinfsrv's log format starts so
SERVER_PACKAGE = "azureml_inference_server_http."
# azmlinfsrv expects AZUREML_MODEL_DIR in the registry layout <name>/<version>/ and logs a harmless traceback
# for any other folder; its exception line is not a reason for a failed start.
KNOWN_NOISE = ("Error while fetching model IDs",)
PORT_IN_USE = "Connection in use: ('{host}', {port})"  # gunicorn's log line when its bind finds the port taken

_children: dict[int, subprocess.Popen[bytes]] = {}  # servers this process started, so `down` can reap them


class _PortTaken(DeployError):
    """Another process bound the port between our probe and gunicorn's bind."""


@dataclass(frozen=True)
class _Settings:
    """Validated `up` options for the local target."""

    name: str
    entry_script: Path
    workers: int
    timeout: float
    deployment_file: Path | None

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> _Settings:
        """Check the options a caller passed; a wrong one raises ConfigError naming the flag."""
        for key, (flag, reason) in FOREIGN_OPTIONS.items():
            if options.get(key):
                raise ConfigError(f"{flag} does not apply to --target local ({reason}); drop it")
        workers = options.get("workers")
        workers = DEFAULT_WORKERS if workers is None else workers
        if not isinstance(workers, int) or workers < 1:
            raise ConfigError(f"--workers {workers!r}: expected a whole number of at least 1")
        timeout = options.get("timeout")
        timeout = DEFAULT_TIMEOUT_S if timeout is None else timeout
        if not isinstance(timeout, int | float) or not math.isfinite(timeout) or timeout <= 0:
            raise ConfigError(f"--timeout {timeout!r}: expected a finite number of seconds above 0")
        deployment_file = options.get("deployment_file")
        return cls(
            name=options.get("name") or DEFAULT_NAME,
            entry_script=_entry_script(options.get("entry_script")),
            workers=workers,
            timeout=float(timeout),
            deployment_file=Path(deployment_file) if deployment_file else None,
        )


def _entry_script(configured: str | Path | None) -> Path:
    """The scoring script to serve: the project's service/score.py unless a caller names another."""
    if configured is None:
        if not DEFAULT_ENTRY_SCRIPT.is_file():
            raise ConfigError(f"{DEFAULT_ENTRY_SCRIPT}: no scoring entry script; restore it or pass --entry-script")
        return DEFAULT_ENTRY_SCRIPT
    path = Path(configured).resolve()
    if not path.is_file():
        raise ConfigError(f"--entry-script {configured}: no such file; pass the path of a script with init() and run()")
    return path


def _free_port() -> int:
    """A loopback port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _server_env(model_dir: Path) -> dict[str, str]:
    """The child's environment: the caller's, minus anything that would steer the server elsewhere."""
    env = {key: value for key, value in os.environ.items() if key not in SCRUBBED_ENV}
    env["AZUREML_MODEL_DIR"] = str(model_dir)
    env["AML_APP_ROOT"] = str(APP_ROOT)
    env["AML_APP_INSIGHTS_ENABLED"] = "false"
    env["PYTHONUNBUFFERED"] = "1"  # server.log in order and complete even when a worker dies
    # gunicorn >= 25.1 opens a control socket shared by every server of this user ($HOME/.gunicorn/gunicorn.ctl);
    # parallel local servers would fight over it, and the release gate never uses it.
    env["GUNICORN_CMD_ARGS"] = "--no-control-socket"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    return env


def _start(*, settings: _Settings, model_dir: Path, port: int, log_file: Path) -> subprocess.Popen[bytes]:
    """Start azmlinfsrv (through the loopback launcher) in its own process group."""
    command = [
        sys.executable,
        "-m",
        LAUNCHER,
        "--entry_script",
        str(settings.entry_script),
        "--model_dir",
        str(model_dir),
        "--port",
        str(port),
        "--worker_count",
        str(settings.workers),
    ]
    log.info("starting azmlinfsrv on %s:%s (entry script %s, log %s)", HOST, port, settings.entry_script, log_file)
    with log_file.open("wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=_server_env(model_dir),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _children[proc.pid] = proc
    return proc


def _probe(port: int, timeout: float) -> int | None:
    """HTTP status of `GET /` on the server, or None when it does not answer."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", "/")
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def _exception_line(log_file: Path) -> str | None:
    """Why init() or the script import failed: the user's exception line from the last traceback in the log."""
    try:
        text = log_file.read_text(errors="replace")
    except OSError:
        return None
    from_tracebacks: list[str] = []
    lookalikes: list[str] = []
    noise = in_traceback = False
    for line in text.splitlines():
        if LOG_RECORD_START.match(line):
            noise = any(marker in line for marker in KNOWN_NOISE)
        if line.rstrip().endswith(TRACEBACK_HEADER):
            in_traceback = not noise
        elif in_traceback and line.strip() and not line[0].isspace():
            from_tracebacks.append(line.strip())  # the first unindented line after the frames ends the traceback
            in_traceback = False
        elif not noise and not in_traceback and EXCEPTION_LINE.match(line.strip()):
            lookalikes.append(line.strip())
    found = from_tracebacks or lookalikes
    # The server wraps the script's exception in its own (UserScriptException); the script's one says more.
    users = [line for line in found if not line.startswith(SERVER_PACKAGE)]
    candidates = users or found
    return candidates[-1] if candidates else None


def _port_taken(log_file: Path, port: int) -> bool:
    """True when gunicorn reported that its port was already bound."""
    try:
        return PORT_IN_USE.format(host=HOST, port=port) in log_file.read_text(errors="replace")
    except OSError:
        return False


def _wait_healthy(proc: subprocess.Popen[bytes], *, port: int, log_file: Path, timeout: float) -> float:
    """Poll `GET /` until it answers 200; fail at once when the server exits, or at the deadline."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        code = proc.poll()
        if _port_taken(log_file, port):
            raise _PortTaken(f"port {port} was taken before the server bound it")
        if code is not None:
            reason = _exception_line(log_file) or "no exception in its log"
            raise DeployError(f"the server exited with code {code} before it was healthy: {reason} (see {log_file})")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            last_error = _exception_line(log_file)
            hint = f"last error: {last_error}" if last_error else "init() may be slow or stuck; raise --timeout"
            raise DeployError(f"the server was not healthy within {timeout:g} s (--timeout); {hint} (see {log_file})")
        if _probe(port, min(PROBE_TIMEOUT_S, remaining)) == 200:
            return time.monotonic() - started
        time.sleep(min(POLL_INTERVAL_S, max(deadline - time.monotonic(), 0)))


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, process group) of a live pid from /proc, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may hold spaces or parentheses: the fields we need follow the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], int(fields[2])


def _cmdline(pid: int) -> str:
    """The command line of a pid, or '' when it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _recorded_ids(details: dict[str, Any]) -> tuple[int, int, int]:
    """(pid, pgid, port) of the server a local deployment record names."""
    ids: dict[str, Any] = {name: details.get(name) for name in ("pid", "pgid", "port")}
    ids["pgid"] = ids["pid"] if ids["pgid"] is None else ids["pgid"]
    for name, value in ids.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(
                f"the deployment file has {value!r} as details.{name}, not a whole number; "
                "stop the server by hand and delete the file"
            )
    return ids["pid"], ids["pgid"], ids["port"]


def _identity_args(*, port: int, model_dir: str | None) -> list[str]:
    """Command-line fragments `_start` gave our server: the recorded port, and the model folder when recorded."""
    expected = [f" --port {port} "]
    if model_dir:
        expected.append(f" --model_dir {model_dir} ")
    return expected


def _reap() -> None:
    """Collect the exit status of servers this process started that have ended (no zombies left behind)."""
    for pid, proc in list(_children.items()):
        if proc.poll() is not None:
            del _children[pid]


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) pids in a process group."""
    _reap()
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _proc_stat(int(entry.name))
        if stat is not None and stat[1] == pgid and stat[0] not in {"Z", "X"}:
            members.append(int(entry.name))
    return members


def _wait_group_gone(pgid: int, seconds: float) -> bool:
    """Wait up to `seconds` for every process of the group to end."""
    deadline = time.monotonic() + seconds
    while _group_members(pgid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL_S)
    return True


def _stop_group(pgid: int, *, grace: float) -> None:
    """SIGTERM the server's process group, SIGKILL it after `grace` seconds, and confirm it is gone."""
    started = time.monotonic()
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        _reap()
        return
    if not _wait_group_gone(pgid, grace):
        log.warning("server group %s still running %g s after SIGTERM; sending SIGKILL", pgid, grace)
        with suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        if not _wait_group_gone(pgid, KILL_WAIT_S):
            raise DeployError(f"server process group {pgid} survived SIGKILL; check `ps -g {pgid}`")
    log.info("stopped server group %s after %.1f s", pgid, time.monotonic() - started)


class LocalTarget:
    """azmlinfsrv, the server ACI and AKS containers run, as a child process on loopback."""

    name = "local"

    def up(self, *, model_dir: Path, artifacts: Path, options: dict[str, Any]) -> Deployment:
        """Start the server for `model_dir`, wait until healthy, and describe it (replacing a running one)."""
        settings = _Settings.from_options(options)
        model_dir = model_dir.resolve()
        card = read_model(model_dir)
        model = {"name": card.name, "version": card.version}
        if settings.deployment_file is not None:
            self._replace_running(settings.deployment_file, artifacts=artifacts)
        artifacts.mkdir(parents=True, exist_ok=True)
        log_file = (artifacts / SERVER_LOG).resolve()
        for _attempt in range(PORT_ATTEMPTS):
            port = _free_port()
            proc = _start(settings=settings, model_dir=model_dir, port=port, log_file=log_file)
            try:
                elapsed = _wait_healthy(proc, port=port, log_file=log_file, timeout=settings.timeout)
            except _PortTaken:
                log.warning("port %s was taken before azmlinfsrv bound it; trying another", port)
                _stop_group(proc.pid, grace=ABORT_GRACE_S)
                continue
            except BaseException:
                _stop_group(proc.pid, grace=ABORT_GRACE_S)
                raise
            log.info("healthy after %.1f s (pid %s, port %s)", elapsed, proc.pid, port)
            return self._describe(
                settings=settings, model_dir=model_dir, model=model, proc=proc, port=port, log_file=log_file
            )
        raise DeployError(f"no free loopback port could be bound in {PORT_ATTEMPTS} attempts (see {log_file})")

    def down(self, deployment: Deployment, *, artifacts: Path) -> None:
        """Stop the server process group recorded in the deployment, if it is still ours and still running."""
        pid, pgid, port = _recorded_ids(deployment.details)
        # An exiting process shows an empty command line before it turns zombie: it is leaving, not a stranger.
        cmdlines = {member: _cmdline(member) for member in _group_members(pgid)}
        members = [member for member, cmdline in cmdlines.items() if cmdline]
        servers = [member for member in members if LAUNCHER in cmdlines[member]]
        if not servers:
            log.info("server pid %s is already gone; nothing to stop", pid)
            return
        expected = _identity_args(port=port, model_dir=deployment.details.get("model_dir"))
        ours = [member for member in servers if all(arg in cmdlines[member] for arg in expected)]
        if len(ours) != len(servers):
            wanted = " and ".join(repr(arg.strip()) for arg in expected)
            raise DeployError(
                f"pid {pid} runs a {LAUNCHER} server that is not the recorded one (expected {wanted} "
                f"in its command line); it may be another project's, so it was not signalled: check `ps -o args "
                f"-p {pid}`, stop the recorded server by hand, then delete the deployment file"
            )
        if len(ours) != len(members):
            raise DeployError(
                f"process group {pgid} now holds programs other than the server; refusing to signal it, "
                f"stop pids {ours} by hand"
            )
        log.info("stopping azmlinfsrv (pid %s, port %s)", pid, deployment.details.get("port"))
        _stop_group(pgid, grace=STOP_GRACE_S)

    def _replace_running(self, deployment_file: Path, *, artifacts: Path) -> None:
        """Stop the local server a deployment file describes, so `up` twice replaces rather than leaks."""
        if not deployment_file.exists():
            return
        try:
            previous = Deployment.load(deployment_file)
        except ConfigError as exc:
            # Starting anyway would orphan the server the file described (it may still run, unrecorded).
            raise ConfigError(
                f"{exc}; the server it described may still run: stop it by hand (ps -ef | grep {LAUNCHER}), "
                f"then delete {deployment_file} and run up again"
            ) from None
        if previous.target != self.name:
            raise ConfigError(
                f"{deployment_file} describes a {previous.target!r} deployment; run `python -m deploy down` first "
                "or pass --deployment with another file"
            )
        log.info("replacing the running local deployment (pid %s)", previous.details.get("pid"))
        self.down(previous, artifacts=artifacts)
        # The record now names a stopped server; if the new start fails, nothing may point at the old one.
        deployment_file.unlink(missing_ok=True)

    def _describe(
        self,
        *,
        settings: _Settings,
        model_dir: Path,
        model: dict[str, str],
        proc: subprocess.Popen[bytes],
        port: int,
        log_file: Path,
    ) -> Deployment:
        """The deployment record for a healthy server."""
        base = f"http://{HOST}:{port}"
        return Deployment(
            target=self.name,
            name=settings.name,
            scoring_uri=f"{base}/score",
            health_uri=f"{base}/",
            swagger_uri=f"{base}/swagger.json?version=3.1",
            auth=False,
            key_env=None,
            model=model,
            details={
                "pid": proc.pid,
                "pgid": proc.pid,  # start_new_session: the server leads its own process group
                "port": port,
                "log_file": str(log_file),
                "entry_script": str(settings.entry_script),
                "model_dir": str(model_dir),
                "workers": settings.workers,
            },
        )


@contextmanager
def local_deployment(*, model_dir: Path, artifacts: Path, **options: Any) -> Iterator[Deployment]:
    """Start a local server for the block and always stop it afterwards (tests, the verify stage)."""
    deployment = TARGET.up(model_dir=model_dir, artifacts=artifacts, options=options)
    try:
        yield deployment
    finally:
        TARGET.down(deployment, artifacts=artifacts)


TARGET = LocalTarget()
