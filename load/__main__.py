"""Load and judge stage command line.

    python -m load run --profile steady            # Locust headless against deployment.json -> load/steady/results.json
    python -m load run --profile smoke --run-time 5 --users 2
    python -m load run --profile rate --workers 2  # open model, a master and two local worker processes
    python -m load run --profile step              # capacity search; ends with the AKS sizing in decision.json
    python -m load judge --profile steady          # results + SLOs (+ verify JUnit) -> decision.json, .md, .html
    python -m load judge --baseline prod/load/steady/results.json   # also compare with a baseline run

Exit codes of `judge`: 0 promote, 1 reject, 2 usage or configuration error, 3 hold.
Exit codes of `run`: 0 results written, 1 Locust produced no figures, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from deploy.base import DEPLOYMENT_FILE, ConfigError, artifacts_dir
from load.config import Config, apply_overrides, load_config
from load.html import report_html
from load.judge import VerifySummary, judge, read_junit, validate_results
from load.report import console_table, decision_markdown, results_summary
from load.runner import RESULTS_FILE, RunFailed, RunRequest, run_load, write_json

log = logging.getLogger("load")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_PROFILE = "steady"  # what `make release` runs and judges
JUNIT_FILE = "verify-junit.xml"
DECISION_JSON, DECISION_MD, REPORT_HTML = "decision.json", "decision.md", "report.html"
REQUIRED_RESULT_KEYS = ("profile", "requests", "failures", "latency_ms", "throughput_rps")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the flag, not the whole usage text."""

    def error(self, message: str) -> NoReturn:
        """Print one line naming the flag and exit 2."""
        print(f"{self.prog}: error: {message}; see `{self.prog} --help`", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _finite(text: str) -> float:
    """A finite number for a numeric flag (argparse turns the ValueError into a one-line usage error)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


_finite.__name__ = "finite number"  # what argparse's message calls the expected type


def build_parser() -> argparse.ArgumentParser:
    """The `python -m load` command line: `run` and `judge`."""
    parser = _Parser(prog="python -m load", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log diagnostics")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run a load profile and write <artifacts>/load/<profile>/results.json")
    run.add_argument("--profile", required=True, help="profile name from load/profiles.toml (smoke, steady, ...)")
    run.add_argument("--deployment", type=Path, help="deployment file (default: <artifacts>/deployment.json)")
    run.add_argument("--run-time", type=_finite, metavar="S", help="seconds of load (default: the profile's)")
    run.add_argument("--users", type=int, metavar="N", help="concurrent users or open-model pool (default: profile's)")
    run.add_argument("--workers", type=int, default=0, metavar="N", help="local Locust worker processes under a master")
    run.add_argument(
        "--remote-workers", type=int, default=0, metavar="N", help="also wait for N workers from other machines"
    )
    run.add_argument(
        "--master-bind-host",
        default="127.0.0.1",
        metavar="HOST",
        help="interface the master listens on (default loopback; remote workers need a reachable one)",
    )
    run.add_argument("--master-port", type=int, metavar="PORT", help="the master's port (default: a free one)")
    run.add_argument("--judge", action="store_true", help="judge the results right away (exit code = verdict)")
    run.add_argument("--baseline", type=Path, help="with --judge: a baseline results file to compare against")
    run.add_argument("--junit", type=Path, help=f"with --judge: verify JUnit XML (default: <artifacts>/{JUNIT_FILE})")

    decide = sub.add_parser("judge", help="judge load results against the SLOs and write decision.json/.md")
    decide.add_argument("--profile", help=f"profile whose SLOs apply (default: the results' own, or {DEFAULT_PROFILE})")
    decide.add_argument("--results", type=Path, help="results file (default: <artifacts>/load/<profile>/results.json)")
    decide.add_argument("--baseline", type=Path, help="a baseline results file to compare against")
    decide.add_argument("--junit", type=Path, help=f"verify JUnit XML (default: <artifacts>/{JUNIT_FILE} if present)")
    decide.add_argument(
        "--require-verify",
        action="store_true",
        help="hold when the verify JUnit file is missing (the release flow passes this)",
    )

    for cmd in (run, decide):
        cmd.add_argument("--artifacts", type=Path, help="artifacts folder (default: $RELEASE_ARTIFACTS or artifacts/)")
    return parser


def _run(args: argparse.Namespace, artifacts: Path) -> int:
    """`run`: the profile against the deployment, then (when asked) the judge."""
    config = load_config()
    profile = apply_overrides(config.profile(args.profile), run_time_s=args.run_time, users=args.users)
    if args.workers < 0 or args.remote_workers < 0:
        raise ConfigError("--workers / --remote-workers: expected 0 or more")
    baseline = (
        read_results(args.baseline, profile=None, role="--baseline", candidate=profile.name) if args.baseline else None
    )
    request = RunRequest(
        profile=profile,
        config=config,
        deployment_file=args.deployment or artifacts / DEPLOYMENT_FILE,
        artifacts=artifacts,
        workers=args.workers,
        remote_workers=args.remote_workers,
        master_bind_host=args.master_bind_host,
        master_port=args.master_port,
    )
    results_path, results = run_load(request)
    print(results_summary(results))
    print(f"wrote {results_path}")
    if not (args.judge or profile.judge_after_run):
        return EXIT_OK
    junit_path = args.junit or artifacts / JUNIT_FILE
    verify = read_junit(junit_path) if args.junit is not None or junit_path.exists() else None
    return _decide(
        results,
        results_path=results_path,
        artifacts=artifacts,
        config=config,
        verify_required=False,
        profile_name=profile.name,
        verify=(verify, junit_path),
        baseline=(baseline, args.baseline),
    )


def read_results(
    path: Path, *, profile: str | None, role: str = "results", candidate: str | None = None
) -> dict[str, Any]:
    """A results.json, or a usage error naming the file and how to produce it."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        name = profile or DEFAULT_PROFILE
        if role == "results":
            raise ConfigError(f"{path}: no load results; run `python -m load run --profile {name}` first") from None
        raise ConfigError(f"{role} {path}: no such results file; pass the results.json of a baseline run") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not readable JSON ({exc}); rerun `python -m load run`") from None
    missing = [key for key in REQUIRED_RESULT_KEYS if not isinstance(data, dict) or key not in data]
    if missing:
        raise ConfigError(f"{path}: not a load results file (missing {', '.join(missing)}); rerun `python -m load run`")
    if candidate is not None and data["profile"] != candidate:
        raise ConfigError(
            f"{role} {path}: it is a {data['profile']!r} run and the candidate a {candidate!r} run; "
            "compare runs of the same profile"
        )
    validate_results(data, source=f"{role} {path}" if role != "results" else str(path), baseline=role != "results")
    return dict(data)


def _judge(args: argparse.Namespace, artifacts: Path) -> int:
    """`judge`: a results file (and optional baseline and verify JUnit) to a decision."""
    config = load_config()
    if args.profile:
        config.profile(args.profile)  # an unknown name is a usage error before any file is read
    results_path = args.results or artifacts / "load" / (args.profile or DEFAULT_PROFILE) / RESULTS_FILE
    results = read_results(results_path, profile=args.profile)
    if args.profile and results["profile"] != args.profile:
        raise ConfigError(
            f"{results_path}: holds a {results['profile']!r} run, not {args.profile!r}; pass that profile's results"
        )
    baseline = (
        read_results(args.baseline, profile=None, role="--baseline", candidate=str(results["profile"]))
        if args.baseline
        else None
    )
    junit_path = args.junit or artifacts / JUNIT_FILE
    verify: VerifySummary | None
    if args.junit is not None and not args.require_verify:
        verify = read_junit(junit_path)  # an explicit --junit that does not exist is a usage error
    else:  # with --require-verify a missing file is no evidence: the judge holds
        verify = read_junit(junit_path) if junit_path.exists() else None
    return _decide(
        results,
        results_path=results_path,
        artifacts=artifacts,
        config=config,
        verify_required=args.require_verify,
        profile_name=args.profile or str(results["profile"]),
        verify=(verify, junit_path),
        baseline=(baseline, args.baseline),
    )


def _decide(
    results: dict[str, Any],
    *,
    results_path: Path,
    artifacts: Path,
    config: Config,
    verify_required: bool,
    profile_name: str,
    verify: tuple[VerifySummary | None, Path],
    baseline: tuple[dict[str, Any] | None, Path | None],
) -> int:
    """Judge, write decision.json/.md and report.html, print the verdict; the exit code is the verdict's."""
    profile = config.profile(profile_name)
    base_results, base_path = baseline
    if base_results is not None and base_results.get("profile") != results.get("profile"):
        raise ConfigError(
            f"--baseline {base_path}: it is a {base_results.get('profile')!r} run and the candidate a "
            f"{results.get('profile')!r} run; compare runs of the same profile"
        )
    summary, junit_path = verify
    decision = judge(
        results,
        profile.slo,
        verify=summary,
        baseline=base_results,
        policy=config.baseline,
        production=config.production,
        profile=profile.name,
        verify_required=verify_required,
        deployment=_deployment_record(artifacts),
    )
    record = decision.to_dict() | {
        "results_file": str(results_path),
        "junit_file": str(junit_path) if summary else None,
        "baseline_file": str(base_path) if base_results is not None else None,
        "decided_at": datetime.now(UTC).isoformat(),
    }
    json_path, md_path, html_path = artifacts / DECISION_JSON, artifacts / DECISION_MD, artifacts / REPORT_HTML
    write_json(json_path, record)
    md_path.write_text(decision_markdown(decision, results_file=str(results_path), junit_file=record["junit_file"]))
    html_path.write_text(report_html(decision=record, results=results, baseline=base_results, slo=profile.slo))
    print(console_table(decision))
    print(f"wrote {json_path}, {md_path} and {html_path}")
    if os.environ.get("TF_BUILD"):  # Azure Pipelines: attach the verdict to the run's summary page
        print(f"##vso[task.uploadsummary]{md_path.resolve()}")
    return decision.exit_code


def _deployment_record(artifacts: Path) -> dict[str, Any] | None:
    """<artifacts>/deployment.json's content when results.json does not say what it ran against (older files)."""
    try:
        data = json.loads((artifacts / DEPLOYMENT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _interrupt(signum: int, _frame: object) -> NoReturn:
    """SIGTERM (a cancelled pipeline) unwinds like Ctrl-C, so Locust processes are stopped by pid."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    """Entry point; usage errors are one line and exit code 2, never a traceback."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    artifacts = args.artifacts or artifacts_dir()
    try:
        return _run(args, artifacts) if args.command == "run" else _judge(args, artifacts)
    except ConfigError as exc:
        print(f"python -m load {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RunFailed as exc:
        print(f"python -m load {args.command}: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"python -m load {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    sys.exit(main())
