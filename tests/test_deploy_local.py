"""The local target against real azmlinfsrv servers on loopback, each stopped by its pid."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from deploy import local
from deploy.base import ARTIFACTS_ENV, PROJECT_ROOT, ConfigError, DeployError, Deployment

FIXTURES = Path(__file__).parent / "fixtures"
NOOP = FIXTURES / "noop_score.py"
FAILING = FIXTURES / "failing_score.py"
SLOW = FIXTURES / "slow_score.py"
BAD_CONFIG = FIXTURES / "deploy_badconfig_score.py"
MODEL = {"name": "demand-forecast", "version": "0123456789ab"}
NOOP_ANSWER = {"result": [0.0], "fixture": "noop"}
INIT_ERROR = "fixture model could not be loaded on purpose"  # failing_score.py raises RuntimeError(INIT_ERROR)
GENEROUS_DEADLINE_S = 60.0  # far above a cold start, so only a wrong fail-fast path could come near it
SHORT_DEADLINE_S = 2.0  # slow_score.py sleeps far longer, so this deadline always passes first
BUILD_TIMEOUT_S = 900  # the default monthly model builds in seconds; a minutes-long build is still a pass
CLI_TIMEOUT_S = 120  # one CLI call starts or stops at most one server


def alive(pid: int) -> bool:
    """True while a pid exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def servers_of(model_dir: Path) -> list[int]:
    """Pids of the server process-group leaders serving `model_dir` (found by their command line)."""
    marker = f" --model_dir {model_dir.resolve()} "
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not alive(int(entry.name)):
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            leader = os.getpgid(int(entry.name)) == int(entry.name)
        except OSError:
            continue
        if leader and "deploy._serve" in cmdline and marker in cmdline:
            found.append(int(entry.name))
    return found


def kill_group(pid: int) -> None:
    """Test cleanup: SIGKILL a server's process group if it is still our server."""
    if alive(pid) and "deploy._serve" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
        os.killpg(pid, signal.SIGKILL)


def wait_group_gone(pgid: int) -> None:
    """Wait (bounded) until the kernel has removed every process of a killed group."""
    for _ in range(100):
        if not local._group_members(pgid):
            return
        time.sleep(0.1)
    raise AssertionError(f"process group {pgid} still alive 10 s after SIGKILL")


def get(url_port: int, path: str = "/") -> tuple[int, bytes]:
    """GET on the loopback server (http.client: no proxy settings apply)."""
    conn = http.client.HTTPConnection("127.0.0.1", url_port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def post_json(port: int, body: dict[str, Any]) -> tuple[int, Any]:
    """POST a JSON body to /score and decode the JSON answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/score", body=json.dumps(body), headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on `port`, from /proc/net/tcp and tcp6."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if int(port_hex, 16) != port or fields[3] != "0A":  # 0A is TCP_LISTEN
                continue
            raw = bytes.fromhex(address)
            if len(raw) == 4:
                found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
            else:  # four little-endian 32-bit words
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    """A private artifacts folder holding a model folder with only model.json."""
    folder = tmp_path / "artifacts"
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "model.json").write_text(json.dumps(MODEL))
    return folder


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every server process the target starts in this test, killed by pid at teardown whatever happened."""
    procs: list[subprocess.Popen[bytes]] = []
    real_start = local._start

    def recording_start(**kwargs: Any) -> subprocess.Popen[bytes]:
        proc = real_start(**kwargs)
        procs.append(proc)
        return proc

    monkeypatch.setattr(local, "_start", recording_start)
    yield procs
    for proc in procs:
        kill_group(proc.pid)
        proc.wait(timeout=10)


@pytest.fixture
def up(artifacts: Path, started: list[subprocess.Popen[bytes]]) -> Iterator[Callable[..., Deployment]]:
    """Start the noop server (options may override); every deployment is taken down at teardown."""
    deployments: list[Deployment] = []

    def start(**options: Any) -> Deployment:
        options = {"entry_script": NOOP, **options}
        deployment = local.TARGET.up(model_dir=artifacts / "model", artifacts=artifacts, options=options)
        deployments.append(deployment)
        return deployment

    yield start
    for deployment in deployments:
        local.TARGET.down(deployment, artifacts=artifacts)


@pytest.mark.slow
@pytest.mark.local
def test_up_answers_health_and_scoring(up: Callable[..., Deployment], artifacts: Path) -> None:
    deployment = up()
    port = deployment.details["port"]

    assert deployment.target == "local"
    assert deployment.name == "forecast-local"
    assert deployment.scoring_uri == f"http://127.0.0.1:{port}/score"
    assert deployment.health_uri == f"http://127.0.0.1:{port}/"
    assert deployment.swagger_uri == f"http://127.0.0.1:{port}/swagger.json?version=3.1"
    assert (deployment.auth, deployment.key_env) == (False, None)
    assert deployment.model == MODEL
    assert deployment.details["log_file"] == str(artifacts / "server.log")
    assert deployment.details["pgid"] == deployment.details["pid"]
    assert get(port) == (200, b"Healthy")
    assert post_json(port, {"horizon": 3}) == (200, NOOP_ANSWER)


@pytest.mark.slow
@pytest.mark.local
def test_server_listens_on_loopback_only(up: Callable[..., Deployment]) -> None:
    deployment = up(workers=2)

    assert listening_addresses(deployment.details["port"]) == {"127.0.0.1"}


@pytest.mark.slow
@pytest.mark.local
def test_up_twice_replaces_the_running_one(up: Callable[..., Deployment], artifacts: Path) -> None:
    deployment_file = artifacts / "deployment.json"
    first = up(deployment_file=deployment_file)
    first.save(deployment_file)

    second = up(deployment_file=deployment_file)

    assert not alive(first.details["pid"]), "the first server still runs: up leaked it"
    assert second.details["pid"] != first.details["pid"]
    assert get(second.details["port"]) == (200, b"Healthy")


@pytest.mark.slow
@pytest.mark.local
def test_down_stops_the_server_and_keeps_files(up: Callable[..., Deployment], artifacts: Path) -> None:
    deployment = up(workers=2)
    before = sorted(path.relative_to(artifacts) for path in artifacts.rglob("*"))

    local.TARGET.down(deployment, artifacts=artifacts)

    assert not alive(deployment.details["pid"])
    assert local._group_members(deployment.details["pgid"]) == [], "a worker outlived the master"
    assert sorted(path.relative_to(artifacts) for path in artifacts.rglob("*")) == before
    with pytest.raises(OSError):
        get(deployment.details["port"])


@pytest.mark.slow
@pytest.mark.local
def test_down_after_the_server_died_succeeds(
    up: Callable[..., Deployment],
    artifacts: Path,
    started: list[subprocess.Popen[bytes]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    deployment = up()
    os.killpg(deployment.details["pgid"], signal.SIGKILL)
    started[0].wait(timeout=10)
    wait_group_gone(deployment.details["pgid"])
    caplog.set_level("INFO", logger="deploy.local")

    local.TARGET.down(deployment, artifacts=artifacts)

    assert "already gone" in caplog.text


def test_down_never_signals_a_reused_pid(artifacts: Path) -> None:
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        record = Deployment(
            target="local",
            name="forecast-local",
            scoring_uri="http://127.0.0.1:1/score",
            health_uri="http://127.0.0.1:1/",
            swagger_uri=None,
            auth=False,
            key_env=None,
            model=MODEL,
            details={"pid": stranger.pid, "pgid": stranger.pid, "port": 1},
        )

        local.TARGET.down(record, artifacts=artifacts)

        assert stranger.poll() is None, "down signalled a process that is not our server"
    finally:
        stranger.kill()
        stranger.wait(timeout=10)


@pytest.mark.slow
@pytest.mark.local
def test_failing_init_fails_fast_and_leaves_nothing(artifacts: Path, started: list[subprocess.Popen[bytes]]) -> None:
    began = time.monotonic()
    with pytest.raises(DeployError) as failure:
        local.TARGET.up(
            model_dir=artifacts / "model",
            artifacts=artifacts,
            options={"entry_script": FAILING, "timeout": GENEROUS_DEADLINE_S},
        )
    elapsed = time.monotonic() - began

    message = str(failure.value)
    assert f"RuntimeError: {INIT_ERROR}" in message
    assert str(artifacts / "server.log") in message
    assert elapsed < GENEROUS_DEADLINE_S / 2, f"waited {elapsed:.1f} s: up did not notice the server exit"
    assert [proc.pid for proc in started if alive(proc.pid)] == []


@pytest.mark.slow
@pytest.mark.local
def test_slow_init_fails_at_the_deadline(artifacts: Path, started: list[subprocess.Popen[bytes]]) -> None:
    with pytest.raises(DeployError, match=f"not healthy within {SHORT_DEADLINE_S:g} s") as failure:
        local.TARGET.up(
            model_dir=artifacts / "model",
            artifacts=artifacts,
            options={"entry_script": SLOW, "timeout": SHORT_DEADLINE_S},
        )

    assert str(artifacts / "server.log") in str(failure.value)
    assert len(started) == 1
    assert local._group_members(started[0].pid) == [], "the slow server was left running"


@pytest.mark.slow
@pytest.mark.local
def test_taken_port_is_retried_with_another(
    up: Callable[..., Deployment], monkeypatch: pytest.MonkeyPatch, started: list[subprocess.Popen[bytes]]
) -> None:
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    ports = iter([taken])
    real_free_port = local._free_port
    monkeypatch.setattr(local, "_free_port", lambda: next(ports, None) or real_free_port())
    try:
        deployment = up()
    finally:
        squatter.close()

    assert deployment.details["port"] != taken
    assert len(started) == 2
    assert not alive(started[0].pid)
    assert get(deployment.details["port"]) == (200, b"Healthy")


def test_missing_model_json_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()

    with pytest.raises(ConfigError) as failure:
        local.TARGET.up(model_dir=tmp_path / "model", artifacts=tmp_path, options={"entry_script": NOOP})

    assert str(tmp_path / "model" / "model.json") in str(failure.value)
    assert "python -m service.build" in str(failure.value)
    assert not (tmp_path / "server.log").exists(), "a server was started without a model"


@pytest.mark.parametrize(
    ("options", "flag"),
    [
        ({"workers": 0}, "--workers"),
        ({"timeout": -1}, "--timeout"),
        ({"key_env": "SCORING_KEY"}, "--key-env"),
        ({"entry_script": "no/such/score.py"}, "--entry-script"),
    ],
    ids=["no-workers", "negative-timeout", "key-env", "missing-entry-script"],
)
def test_bad_options_name_the_flag(artifacts: Path, options: dict[str, Any], flag: str) -> None:
    with pytest.raises(ConfigError, match=flag):
        local.TARGET.up(model_dir=artifacts / "model", artifacts=artifacts, options=options)


def test_up_refuses_to_overwrite_another_targets_record(artifacts: Path) -> None:
    deployment_file = artifacts / "deployment.json"
    Deployment(
        target="aci",
        name="forecast-aci",
        scoring_uri="http://127.0.0.1:1/score",
        health_uri="http://127.0.0.1:1/",
        swagger_uri=None,
        auth=True,
        key_env="SCORING_KEY",
        model=MODEL,
    ).save(deployment_file)

    with pytest.raises(ConfigError, match="describes a 'aci' deployment"):
        local.TARGET.up(
            model_dir=artifacts / "model",
            artifacts=artifacts,
            options={"entry_script": NOOP, "deployment_file": deployment_file},
        )


def run_cli(*args: str, artifacts: Path) -> subprocess.CompletedProcess[str]:
    """`python -m deploy ...` as a release pipeline calls it."""
    env = {**os.environ, ARTIFACTS_ENV: str(artifacts)}
    return subprocess.run(
        [sys.executable, "-m", "deploy", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


@pytest.fixture
def cli_cleanup(artifacts: Path) -> Iterator[None]:
    """Kill by pid whatever server a CLI test's deployment.json still names."""
    yield
    deployment_file = artifacts / "deployment.json"
    if deployment_file.exists():
        kill_group(json.loads(deployment_file.read_text())["details"]["pid"])


@pytest.mark.slow
@pytest.mark.local
@pytest.mark.usefixtures("cli_cleanup")
def test_cli_up_describe_down(artifacts: Path) -> None:
    deployment_file = artifacts / "deployment.json"

    done = run_cli("up", "--target", "local", "--entry-script", str(NOOP), artifacts=artifacts)
    assert done.returncode == 0, done.stderr
    record = json.loads(deployment_file.read_text())
    port = record["details"]["port"]
    assert record["target"] == "local"
    assert record["scoring_uri"] == f"http://127.0.0.1:{port}/score"
    assert record["health_uri"] == f"http://127.0.0.1:{port}/"
    assert record["swagger_uri"] == f"http://127.0.0.1:{port}/swagger.json?version=3.1"
    assert (record["auth"], record["key_env"]) == (False, None)
    assert record["model"] == MODEL
    assert record["created_at"]
    assert {"pid", "log_file", "port"} <= record["details"].keys()
    assert get(port) == (200, b"Healthy")

    described = run_cli("describe", artifacts=artifacts)
    assert described.returncode == 0, described.stderr
    assert json.loads(described.stdout) == record

    removed = run_cli("down", artifacts=artifacts)
    assert removed.returncode == 0, removed.stderr
    assert not deployment_file.exists()
    assert not alive(record["details"]["pid"])


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (("up", "--target", "nowhere"), "--target 'nowhere'"),
        (("describe",), "deployment.json"),
        (("up", "--target", "local", "--entry-script", "no/such/score.py"), "--entry-script"),
    ],
    ids=["unknown-target", "describe-without-deployment", "missing-entry-script"],
)
def test_cli_errors_exit_2_with_one_line(artifacts: Path, args: tuple[str, ...], names: str) -> None:
    done = run_cli(*args, artifacts=artifacts)

    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert names in lines[0]


@pytest.mark.slow
@pytest.mark.local
def test_real_entry_script_serves_a_built_model(tmp_path: Path, started: list[subprocess.Popen[bytes]]) -> None:
    needed = [PROJECT_ROOT / "service" / "score.py", PROJECT_ROOT / "service" / "build.py"]
    missing = [str(path.relative_to(PROJECT_ROOT)) for path in needed if not path.is_file()]
    if missing:
        pytest.skip(f"{', '.join(missing)} not written yet: the real scoring service cannot be served")
    artifacts = tmp_path / "artifacts"
    build = subprocess.run(
        [sys.executable, "-m", "service.build"],
        cwd=PROJECT_ROOT,
        env={**os.environ, ARTIFACTS_ENV: str(artifacts)},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    assert build.returncode == 0, f"`python -m service.build` failed: {build.stderr[-2000:]}"
    card = json.loads((artifacts / "model" / "model.json").read_text())

    with local.local_deployment(model_dir=artifacts / "model", artifacts=artifacts) as deployment:
        status, answer = post_json(deployment.details["port"], {"horizon": 3})
        legacy_status, legacy = post_json(deployment.details["port"], {"data": [3]})

    assert deployment.model == {"name": card["name"], "version": card["version"]}
    assert deployment.details["entry_script"] == str(PROJECT_ROOT / "service" / "score.py")
    assert status == 200, answer
    assert len(answer["result"]) == 3
    assert answer["model"]["version"] == card["version"]
    assert (legacy_status, legacy["result"]) == (200, answer["result"])
    assert not alive(deployment.details["pid"])


@pytest.fixture
def stray_servers(artifacts: Path) -> Iterator[None]:
    """Kill by pid any server of this test's model folder still running at teardown (CLI tests)."""
    yield
    for pid in servers_of(artifacts / "model"):
        kill_group(pid)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll a condition, bounded by the CLI timeout."""
    for _ in range(CLI_TIMEOUT_S * 10):
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {CLI_TIMEOUT_S} s")


@pytest.mark.slow
@pytest.mark.local
@pytest.mark.usefixtures("stray_servers")
def test_sigterm_during_up_stops_the_server(artifacts: Path) -> None:
    cli = subprocess.Popen(
        [sys.executable, "-m", "deploy", "up", "--entry-script", str(SLOW), "--timeout", str(GENEROUS_DEADLINE_S)],
        cwd=PROJECT_ROOT,
        env={**os.environ, ARTIFACTS_ENV: str(artifacts)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: bool(servers_of(artifacts / "model")), "the server start")
        server = servers_of(artifacts / "model")[0]
        cli.send_signal(signal.SIGTERM)
        _, err = cli.communicate(timeout=CLI_TIMEOUT_S)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait(timeout=10)

    assert cli.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    assert servers_of(artifacts / "model") == [], "SIGTERM left the server running"
    assert local._group_members(server) == []
    assert not (artifacts / "deployment.json").exists()


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--timeout", "nan"), ("--timeout", "inf"), ("--timeout", "0"), ("--workers", "0")],
    ids=["timeout-nan", "timeout-inf", "timeout-zero", "workers-zero"],
)
@pytest.mark.usefixtures("stray_servers")
def test_cli_rejects_unusable_numbers(artifacts: Path, flag: str, value: str) -> None:
    done = run_cli("up", "--entry-script", str(NOOP), flag, value, artifacts=artifacts)

    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{flag} {value}" in lines[0], done.stderr
    assert servers_of(artifacts / "model") == []


def test_up_refuses_an_unreadable_previous_record(artifacts: Path, started: list[subprocess.Popen[bytes]]) -> None:
    deployment_file = artifacts / "deployment.json"
    deployment_file.write_text('{"target": "local", "pid": ')

    with pytest.raises(ConfigError) as failure:
        local.TARGET.up(
            model_dir=artifacts / "model",
            artifacts=artifacts,
            options={"entry_script": NOOP, "deployment_file": deployment_file},
        )

    assert str(deployment_file) in str(failure.value)
    assert "stop it" in str(failure.value) and "delete" in str(failure.value)
    assert started == [], "a new server started beside one the unreadable file may describe"
    assert deployment_file.exists()


@pytest.mark.slow
@pytest.mark.local
@pytest.mark.usefixtures("stray_servers")
def test_concurrent_cli_ups_leave_one_recorded_server(artifacts: Path) -> None:
    command = [sys.executable, "-m", "deploy", "up", "--entry-script", str(NOOP)]
    env = {**os.environ, ARTIFACTS_ENV: str(artifacts)}
    clis = [
        subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outcomes = []
    for cli in clis:
        try:
            outcomes.append(cli.communicate(timeout=CLI_TIMEOUT_S))
        finally:
            if cli.poll() is None:
                cli.kill()
                cli.wait(timeout=10)

    assert [cli.returncode for cli in clis] == [0, 0], [err for _, err in outcomes]
    record = json.loads((artifacts / "deployment.json").read_text())
    assert servers_of(artifacts / "model") == [record["details"]["pid"]], "a server runs that no record names"


@pytest.mark.slow
@pytest.mark.local
def test_failed_replacement_leaves_no_stale_record(up: Callable[..., Deployment], artifacts: Path) -> None:
    deployment_file = artifacts / "deployment.json"
    first = up(deployment_file=deployment_file)
    first.save(deployment_file)

    with pytest.raises(DeployError, match=INIT_ERROR):
        up(deployment_file=deployment_file, entry_script=FAILING)

    assert not alive(first.details["pid"]), "the previous server still runs"
    assert not deployment_file.exists(), "deployment.json still names the stopped server"


@pytest.mark.slow
@pytest.mark.local
@pytest.mark.parametrize(
    ("field", "forged"),
    [("port", lambda port, model_dir: port + 1), ("model_dir", lambda port, model_dir: model_dir + "-other")],
    ids=["other-port", "other-model-dir"],
)
def test_down_never_signals_another_projects_server(
    up: Callable[..., Deployment], artifacts: Path, field: str, forged: Callable[[int, str], Any]
) -> None:
    deployment = up()
    details = {**deployment.details, field: forged(deployment.details["port"], deployment.details["model_dir"])}
    record = Deployment(**{**asdict(deployment), "details": details})
    deployment_file = artifacts / "deployment.json"
    record.save(deployment_file)

    with pytest.raises(DeployError, match=f"pid {deployment.details['pid']} runs a deploy._serve server"):
        local.TARGET.down(record, artifacts=artifacts)
    done = run_cli("down", artifacts=artifacts)

    assert done.returncode == 1, done.stderr
    assert "not the recorded one" in done.stderr and "Traceback" not in done.stderr
    assert alive(deployment.details["pid"]), "down signalled a server the record does not describe"
    assert deployment_file.exists()


@pytest.mark.slow
@pytest.mark.local
def test_init_error_of_any_class_name_is_reported(artifacts: Path, started: list[subprocess.Popen[bytes]]) -> None:
    with pytest.raises(DeployError) as failure:
        local.TARGET.up(
            model_dir=artifacts / "model",
            artifacts=artifacts,
            options={"entry_script": BAD_CONFIG, "timeout": GENEROUS_DEADLINE_S},
        )

    assert "entry_module.BadConfig: the config is bad" in str(failure.value)
    assert "UserScriptException" not in str(failure.value)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ('"target": ["local"]', "field 'target'"),
        ('"target": "local", "details": {"pid": 1e400, "port": 1}', "field 'details.pid'"),
        ('"target": "local", "details": {"pid": "12", "port": 1}', "field 'details.pid'"),
        ('"target": "local", "auth": "no", "details": {"pid": 12, "port": 1}', "field 'auth'"),
        ('"target": "nosuch"', "target 'nosuch' is not one of"),
    ],
    ids=["target-list", "pid-overflow", "pid-string", "auth-string", "unknown-target"],
)
def test_cli_down_names_the_corrupt_field(artifacts: Path, text: str, names: str) -> None:
    deployment_file = artifacts / "deployment.json"
    uri = "http://127.0.0.1:1/"
    deployment_file.write_text(f'{{"name": "x", "scoring_uri": "{uri}score", "health_uri": "{uri}", {text}}}')

    done = run_cli("down", artifacts=artifacts)

    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert str(deployment_file) in lines[0] and names in lines[0]
    assert "--target" not in lines[0]
    assert deployment_file.exists()


def test_cli_down_without_a_record_is_a_no_op(artifacts: Path) -> None:
    first = run_cli("down", artifacts=artifacts)
    again = run_cli("down", artifacts=artifacts)

    for done in (first, again):
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"nothing to tear down: {artifacts / 'deployment.json'} does not exist"
