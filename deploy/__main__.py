"""Deploy stage command line.

    python -m deploy up --target local          # start azmlinfsrv on loopback, write deployment.json
    python -m deploy describe                    # print deployment.json
    python -m deploy down                        # tear down what deployment.json describes
    python -m deploy up --target aci             # Azure Container Instances (azureml-core); --dry-run: the plan
    python -m deploy up --target aks --smoke     # promote to AKS when decision.json says promote, then smoke-test
    python -m deploy up --target attach --scoring-uri URL --key-env NAME   # verify an existing endpoint
    python -m deploy up --target managed         # v2 managed online endpoint (azure-ai-ml, runs in .venv-v2)
    export AZUREML_SCORING_KEY="$(python -m deploy key)"   # the key goes to stdout only when asked like this

Exit codes: 0 done (also `down` with no deployment file: nothing to tear down), 1 the deployment or teardown
failed, 2 usage or configuration error, 130/143 interrupted by SIGINT/SIGTERM (what it had started is stopped).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib
import json
import logging
import math
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

from deploy.base import DEPLOYMENT_FILE, PROJECT_ROOT, ConfigError, DeployError, Deployment, Target, artifacts_dir

log = logging.getLogger("deploy")

# Target name -> module exposing TARGET. Imported lazily so `local` never imports the Azure SDKs.
TARGETS = {
    "local": "deploy.local",
    "aci": "deploy.aci",
    "aks": "deploy.aks",
    "attach": "deploy.attach",
    "managed": "deploy.managed",
}
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
AZURE_TARGETS = ("aci", "aks", "managed")
# `up --smoke` runs the smoke scenarios; they are a handful of requests, minutes at most even against a cold AKS.
SMOKE_TIMEOUT_S = 900
LOCK_FILE = ".deploy.lock"  # in the artifacts folder: one `up` or `down` at a time may change deployment.json
EXIT_TERMINATED = 128 + signal.SIGTERM  # the shell convention for "ended by SIGTERM"


class Terminated(KeyboardInterrupt):
    """SIGTERM (a cancelled pipeline) arrived: unwind like Ctrl-C so every started server is stopped."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into an exception once; a repeat during the clean-up is ignored so the clean-up finishes."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated()


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """While the block runs, SIGTERM raises Terminated (main thread only: Python delivers signals there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def exclusive(artifacts: Path) -> Iterator[None]:
    """Hold <artifacts>/.deploy.lock so concurrent up/down calls on one artifacts folder take turns."""
    artifacts.mkdir(parents=True, exist_ok=True)
    with (artifacts / LOCK_FILE).open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another deploy command is changing %s; waiting for it to finish", artifacts)
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def check_numbers(args: argparse.Namespace) -> None:
    """Reject --timeout and --workers values no target can honour (nan or inf would wait forever)."""
    timeout = getattr(args, "timeout", None)
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise ConfigError(f"--timeout {timeout:g}: expected a finite number of seconds above 0")
    workers = getattr(args, "workers", None)
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers {workers}: expected a whole number of at least 1")


def load_target(name: str) -> Target:
    """Import the module for a target name and return its TARGET."""
    if name not in TARGETS:
        raise ConfigError(f"--target {name!r} is not a target; choose one of {', '.join(TARGETS)}")
    try:
        module = importlib.import_module(TARGETS[name])
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"--target {name}: cannot import {exc.name!r}; run `make venv` to install the pinned requirements"
        ) from None
    target: Target = module.TARGET
    return target


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deploy", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log diagnostics")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="deploy the model and write deployment.json")
    up.add_argument("--target", default="local", help=f"one of {', '.join(TARGETS)} (default: local)")
    up.add_argument("--model-dir", type=Path, help="model folder (default: <artifacts>/model)")
    up.add_argument("--name", help="service name (default: chosen by the target)")
    up.add_argument("--scoring-uri", help="attach: the existing scoring URI")
    up.add_argument("--key-env", help="name of the environment variable holding the scoring key")
    up.add_argument("--timeout", type=float, help="seconds to wait for health (default: per target)")
    up.add_argument("--workers", type=int, help="local: server worker processes (default: 1)")
    up.add_argument(
        "--entry-script", type=Path, help="local: scoring script with init()/run() (default: service/score.py)"
    )
    up.add_argument("--dry-run", action="store_true", help="aci/aks/managed: print the plan, touch nothing")
    up.add_argument("--force", action="store_true", help="aks: promote even when the verdict is not promote")
    up.add_argument("--compute-target", help="aks: the attached AKS cluster (default: $AZUREML_AKS_COMPUTE)")
    up.add_argument("--decision", type=Path, help="aks: the judge's decision file (default: <artifacts>/decision.json)")
    up.add_argument("--cpu-cores", type=float, help="aci/aks: CPU cores per container (aks: overrides the sizing)")
    up.add_argument("--memory-gb", type=float, help="aci/aks: memory per container in GB (aks: overrides the sizing)")
    up.add_argument("--instance-type", help="managed: VM size of the deployment (default: Standard_DS3_v2)")
    up.add_argument("--instance-count", type=int, help="managed: instances of the deployment (default: 1)")
    up.add_argument("--service-dir", type=Path, help="aci/aks/managed: folder with score.py (default: service/)")
    up.add_argument("--keep-failed", action="store_true", help="aci/aks/managed: keep a service that is not healthy")
    up.add_argument("--smoke", action="store_true", help="after deploying, run `pytest steps -m smoke` against it")

    commands = (
        ("down", "tear down the deployment"),
        ("describe", "print deployment.json"),
        ("key", "aci/aks/managed: print the scoring key to stdout (for `export NAME=$(...)`)"),
    )
    for name, help_text in commands:
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--target", help="only act when deployment.json is for this target")
        if name != "describe":
            cmd.add_argument("--name", help="aci/aks/managed: the service, when there is no deployment file")

    for name in ("up", "down", "key"):
        cmd = sub.choices[name]
        cmd.add_argument("--workspace-config", type=Path, help="aci/aks/managed: Azure ML config.json")
        cmd.add_argument(
            "--auth",
            choices=("sp", "cli", "msi"),
            help="aci/aks/managed: credential (default: $AZUREML_AUTH, else sp "
            "when AZUREML_TENANT_ID/CLIENT_ID/CLIENT_SECRET are set, else cli)",
        )

    for cmd in sub.choices.values():
        cmd.add_argument("--artifacts", type=Path, help="artifacts folder (default: $RELEASE_ARTIFACTS or artifacts/)")
        cmd.add_argument("--deployment", type=Path, help="deployment file (default: <artifacts>/deployment.json)")
    return parser


def ensure_interpreter(target: str, argv: list[str]) -> None:
    """`managed` runs under .venv-v2 (azure-ai-ml apart from azureml-core): re-exec there when needed."""
    if target == "managed":
        from deploy.managed import ensure_v2_interpreter

        ensure_v2_interpreter(argv)


def run_smoke(deployment_file: Path) -> int:
    """Run the smoke scenarios against the deployment just written (the key is in this process's env)."""
    command = [sys.executable, "-m", "pytest", "steps", "-m", "smoke", "-p", "no:cacheprovider"]
    command += ["--deployment", str(deployment_file)]
    print(f"smoke: {' '.join(command[2:])}", flush=True)
    try:
        done = subprocess.run(command, cwd=PROJECT_ROOT, timeout=SMOKE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise DeployError(f"the smoke scenarios ran over {SMOKE_TIMEOUT_S} s; run them alone to see why") from None
    if done.returncode != 0:
        raise DeployError(f"the smoke scenarios failed (pytest exit {done.returncode}) against {deployment_file}")
    return EXIT_OK


def azure_options(args: argparse.Namespace) -> dict[str, Any]:
    """The flags `down` and `key` pass to the Azure targets (workspace and credential)."""
    return {"workspace_config": args.workspace_config, "auth": args.auth}


def existing_deployment(args: argparse.Namespace, deployment_file: Path, artifacts: Path) -> tuple[Deployment, bool]:
    """deployment.json, or for `down`/`key --target aci|aks|managed` the service named by --name or the release."""
    name = getattr(args, "name", None)
    if args.command == "describe" or args.target not in AZURE_TARGETS or not (name or not deployment_file.exists()):
        return Deployment.load(deployment_file), True
    if not name:
        log.info("%s does not exist; looking up the %s service of this release by name", deployment_file, args.target)
    by_name = load_target(args.target).deployment_by_name  # type: ignore[attr-defined]
    deployment: Deployment = by_name(name=name, artifacts=artifacts, options=azure_options(args))
    return deployment, False


def run(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    artifacts = args.artifacts or artifacts_dir()
    deployment_file = args.deployment or artifacts / DEPLOYMENT_FILE
    argv = sys.argv[1:] if argv is None else argv

    if args.command == "up":
        check_numbers(args)
        ensure_interpreter(args.target, argv)
        target = load_target(args.target)
        options: dict[str, Any] = {
            key: value
            for key, value in vars(args).items()
            if key not in {"command", "target", "artifacts", "deployment", "verbose", "model_dir", "smoke"}
        }
        options["deployment_file"] = deployment_file
        model_dir = args.model_dir or artifacts / "model"
        if options.get("dry_run"):
            target.up(model_dir=model_dir, artifacts=artifacts, options=options)
            return EXIT_OK
        with exclusive(artifacts):
            deployment = target.up(model_dir=model_dir, artifacts=artifacts, options=options)
            try:
                deployment.save(deployment_file)
            except BaseException:
                if deployment.target == "local":  # unrecorded, nothing else would ever stop it
                    target.down(deployment, artifacts=artifacts)
                raise
        print(f"deployed {deployment.name} ({deployment.target}): {deployment.scoring_uri}")
        print(f"wrote {deployment_file}")
        if args.smoke:
            return run_smoke(deployment_file)
        if deployment.target == "aks":
            print(f"next: pytest steps -m smoke --deployment {deployment_file}")
        return EXIT_OK

    if args.target in AZURE_TARGETS:
        ensure_interpreter(args.target, argv)
    if args.command == "down":
        with exclusive(artifacts):
            return tear_down(args, argv, deployment_file=deployment_file, artifacts=artifacts)
    deployment, from_file = existing_deployment(args, deployment_file, artifacts)
    if args.target and args.target != deployment.target:
        raise ConfigError(
            f"{deployment_file} describes a {deployment.target!r} deployment, not --target {args.target}; "
            "pass --deployment for the other file"
        )
    if args.command == "describe":
        print(json.dumps(asdict(deployment), indent=2))
        return EXIT_OK

    target = recorded_target(deployment, deployment_file=deployment_file, from_file=from_file, argv=argv)
    fetch_key = getattr(target, "fetch_key", None)
    if fetch_key is None:
        hint = f"it is in ${deployment.key_env}" if deployment.key_env else "this deployment has no key auth"
        raise ConfigError(f"--target {deployment.target} has no key to fetch; {hint}")
    with contextlib.redirect_stdout(sys.stderr):  # SDK chatter must not end up in `export KEY=$(...)`
        key = fetch_key(deployment, azure_options(args))
    print(key)
    return EXIT_OK


def recorded_target(deployment: Deployment, *, deployment_file: Path, from_file: bool, argv: list[str]) -> Target:
    """The target a deployment names; an unknown name read from a file is that file's fault, not a flag's."""
    if from_file and deployment.target not in TARGETS:
        raise ConfigError(
            f"{deployment_file}: target {deployment.target!r} is not one of {', '.join(TARGETS)}; "
            "fix the file or delete it once whatever it describes is stopped"
        )
    ensure_interpreter(deployment.target, argv)
    return load_target(deployment.target)


def tear_down(args: argparse.Namespace, argv: list[str], *, deployment_file: Path, artifacts: Path) -> int:
    """`down`: remove what the deployment describes; nothing recorded is nothing to do (a repeat is harmless)."""
    if args.target not in AZURE_TARGETS and not deployment_file.exists():
        print(f"nothing to tear down: {deployment_file} does not exist")
        return EXIT_OK
    deployment, from_file = existing_deployment(args, deployment_file, artifacts)
    if args.target and args.target != deployment.target:
        raise ConfigError(
            f"{deployment_file} describes a {deployment.target!r} deployment, not --target {args.target}; "
            "pass --deployment for the other file"
        )
    target = recorded_target(deployment, deployment_file=deployment_file, from_file=from_file, argv=argv)
    if deployment.target in AZURE_TARGETS:
        target.down(deployment, artifacts=artifacts, options=azure_options(args))  # type: ignore[call-arg]
    else:
        target.down(deployment, artifacts=artifacts)
    if from_file:
        deployment_file.unlink(missing_ok=True)
    print(f"removed {deployment.name} ({deployment.target})")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        with sigterm_unwinds():
            return run(args, argv)
    except ConfigError as exc:
        print(f"deploy: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DeployError as exc:
        print(f"deploy: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Terminated:
        print("deploy: terminated (SIGTERM); stopped what this command had started", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("deploy: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
