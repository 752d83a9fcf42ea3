"""One-shot release on the local target: build, deploy, verify, load, judge, tear down.

    python -m release                          # steady profile, artifacts/ ; exit code is the verdict
    python -m release --profile smoke --artifacts artifacts/smoke
    python -m release --data sales.csv --date-column TransactionDate --value-column PaidAmount

Each stage runs as its own command, exactly as a release pipeline calls it, so a failure here
reproduces there. Exit codes: 0 promote, 1 reject, 2 usage or configuration error, 3 hold. An unknown
--profile fails before any stage; a load stage that measured nothing holds without judging (no evidence);
SIGTERM stops the running stage and still tears down.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from deploy.base import ConfigError
from load.config import load_config

EXIT_PROMOTE, EXIT_REJECT, EXIT_USAGE, EXIT_HOLD = 0, 1, 2, 3
VERDICTS = {EXIT_PROMOTE: "promote", EXIT_REJECT: "reject", EXIT_HOLD: "hold"}
PROJECT_ROOT = Path(__file__).resolve().parent
# Upper bounds so a wedged stage cannot hang a pipeline; load is bounded by its own profile.
STAGE_TIMEOUT_S = {"build": 300, "deploy": 180, "verify": 600, "load": 900, "judge": 60, "teardown": 60}
STOP_GRACE_S = 15.0  # an interrupted stage gets this long after SIGTERM to clean up (the load stage stops Locust)


@dataclass
class StageResult:
    name: str
    returncode: int
    seconds: float


def _status(returncode: int) -> str:
    return "ok" if returncode == 0 else f"exit {returncode}"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM a stage by pid so it runs its own cleanup; SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Run:
    """Runs stage commands in order and remembers how each went."""

    env: dict[str, str]
    results: list[StageResult] = field(default_factory=list)

    def stage(self, name: str, args: Sequence[str]) -> int:
        print(f"\n=== {name}: {' '.join(args)}", flush=True)
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, *args], cwd=PROJECT_ROOT, env=self.env)
        try:
            code = proc.wait(timeout=STAGE_TIMEOUT_S[name])
        except subprocess.TimeoutExpired:
            print(f"release: {name} did not finish within {STAGE_TIMEOUT_S[name]} s", file=sys.stderr)
            _stop(proc)
            code = EXIT_HOLD
        except BaseException:  # interrupted: let the stage clean up after itself (SIGTERM), then go on unwinding
            _stop(proc)
            raise
        self.results.append(StageResult(name, code, time.monotonic() - started))
        return code

    def summary(self) -> str:
        rows = [f"  {r.name:<9} {_status(r.returncode):<8} {r.seconds:6.1f} s" for r in self.results]
        return "stages:\n" + "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m release", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="steady", help="load profile from load/profiles.toml (default: steady)")
    parser.add_argument("--artifacts", type=Path, default=PROJECT_ROOT / "artifacts", help="artifacts folder")
    parser.add_argument("--data", help="build from this CSV instead of the bundled series")
    parser.add_argument("--date-column", help="with --data: the date column")
    parser.add_argument("--value-column", help="with --data: the demand column")
    parser.add_argument("--frequency", help="with --data: pandas frequency alias (default: inferred)")
    parser.add_argument("--keep", action="store_true", help="leave the local service running after the verdict")
    return parser


def build_args(args: argparse.Namespace) -> list[str]:
    """The build stage's command line from the release flags."""
    command = ["-m", "service.build"]
    for flag in ("data", "date_column", "value_column", "frequency"):
        value = getattr(args, flag)
        if value is not None:
            command += [f"--{flag.replace('_', '-')}", value]
    return command


def release(args: argparse.Namespace) -> int:
    artifacts = args.artifacts.resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "RELEASE_ARTIFACTS": str(artifacts), "PYTHONUNBUFFERED": "1"}
    run = Run(env=env)
    deployment = artifacts / "deployment.json"
    junit = artifacts / "verify-junit.xml"
    started = time.monotonic()

    code = run.stage("build", build_args(args))
    if code != 0:
        return EXIT_USAGE if code == EXIT_USAGE else EXIT_REJECT
    if run.stage("deploy", ["-m", "deploy", "up", "--target", "local"]) != 0:
        print("release: the model could not be deployed: reject", file=sys.stderr)
        return EXIT_REJECT
    try:
        run.stage(
            "verify",
            [
                "-m",
                "pytest",
                "steps",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--deployment={deployment}",
                f"--junitxml={junit}",
            ],
        )
        load_code = run.stage("load", ["-m", "load", "run", "--profile", args.profile])
        if load_code == EXIT_USAGE:
            return EXIT_USAGE
        if load_code != 0:
            # `load run` deletes the old results first, but judging nothing would still not be evidence.
            print(
                f"release: the load stage measured nothing (exit {load_code}), so there is no load evidence "
                "to judge: hold (inconclusive, not a verdict on the model)",
                file=sys.stderr,
            )
            verdict = EXIT_HOLD
        else:
            verdict = run.stage(
                "judge",
                ["-m", "load", "judge", "--profile", args.profile, f"--junit={junit}", "--require-verify"],
            )
    finally:
        if not args.keep:
            run.stage("teardown", ["-m", "deploy", "down"])
    elapsed = time.monotonic() - started
    print(f"\n{run.summary()}\n  total     {elapsed:15.1f} s")
    if verdict not in VERDICTS:
        print(f"release: the judge ended with exit code {verdict}; treating it as a usage error", file=sys.stderr)
        return EXIT_USAGE
    print(f"verdict: {VERDICTS[verdict]}" + (f" (see {artifacts / 'decision.md'})" if load_code == 0 else ""))
    return verdict


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.data is None and (args.date_column or args.value_column or args.frequency):
        print("release: --date-column/--value-column/--frequency need --data FILE.csv", file=sys.stderr)
        return EXIT_USAGE
    try:
        load_config().profile(args.profile)  # a wrong name fails now, not after build, deploy and verify
    except ConfigError as exc:
        print(f"release: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return release(args)
    except KeyboardInterrupt:
        print("release: interrupted", file=sys.stderr)
        return 130


def _interrupt(signum: int, _frame: object) -> NoReturn:
    """SIGTERM (a cancelled pipeline) unwinds like Ctrl-C, so the running stage is stopped and teardown runs."""
    raise KeyboardInterrupt(f"signal {signum}")


def install_signal_handlers() -> None:
    """Make SIGTERM run the same cleanup as Ctrl-C (called by the command line entry point only)."""
    signal.signal(signal.SIGTERM, _interrupt)


if __name__ == "__main__":
    install_signal_handlers()
    sys.exit(main())
