"""Judge quality: how often the baseline comparison catches a +25% p95 regression, and how often it wrongly
rejects an unchanged service (A/A).

    .venv/bin/python -m benchmarks.load_judge_quality                   # 5 seeded trials, 8 s runs
    .venv/bin/python -m benchmarks.load_judge_quality --trials 10 --seconds 6

Two azmlinfsrv servers on loopback run tests/fixtures/load_sleepy_score.py: the baseline sleeps 10 ms per
request; the candidate sleeps longer, tuned so its p95 is about 25% above the baseline's. Each trial runs
the open-model `rate` profile (30 requests per second, seeded request mix) three times: baseline, the
baseline again (A/A), and the regressed candidate; the judge compares each with the first run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from load.config import BaselinePolicy, Slo
from load.judge import HOLD, REJECT, judge
from tests.fixtures.load_server import read_json, run_cli, serve

BASE_SLEEP_MS = 10.0
SLOWDOWN = 1.35  # the sleep is most, not all, of a request's time: 1.3x the sleep lifts the measured p95 about 25%
PROFILES = """
[mix.one_period]
horizon = 1
weight = 5
[mix.one_season]
horizon = "season"
weight = 3
[mix.max_horizon]
horizon = "max"
weight = 2
[profiles.rate]
model = "open"
rate_rps = 30
run_time_s = {seconds}
users = 4
[profiles.rate.slo]
p95_ms = 1000
max_error_ratio = 0.05
min_throughput_rps = 1
min_samples = 50
"""


def load_run(artifacts: Path, deployment: Path, *, seed: int, profiles: Path) -> dict[str, Any]:
    """One seeded `rate` run against the deployment; its results."""
    artifacts.mkdir(parents=True)
    (artifacts / "deployment.json").write_text(deployment.read_text())
    done = run_cli(
        "run",
        "--profile",
        "rate",
        artifacts=artifacts,
        env={"LOAD_PROFILES_FILE": str(profiles), "LOAD_SEED": str(seed)},
    )
    if done.returncode != 0:
        sys.exit(f"load run failed: {done.stderr.strip()}")
    results: dict[str, Any] = read_json(artifacts / "load" / "rate" / "results.json")
    return results


def trial(number: int, root: Path, profiles: Path, slo: Slo, policy: BaselinePolicy) -> dict[str, Any]:
    """Baseline, baseline again, regressed candidate; the judge's verdicts on the last two against the first."""
    runs = {
        name: load_run(
            root / f"t{number}-{name}", root / server / "deployment.json", seed=number * 3 + i, profiles=profiles
        )
        for i, (name, server) in enumerate((("a", "base"), ("a2", "base"), ("b", "slow")))
    }
    same = judge(runs["a2"], slo, baseline=runs["a"], policy=policy).to_dict()
    slower = judge(runs["b"], slo, baseline=runs["a"], policy=policy).to_dict()
    return {
        "aa": same,
        "ab": slower,
        "p95_change": runs["b"]["latency_ms"]["p95"] / runs["a"]["latency_ms"]["p95"] - 1,
        "aa_shift": same["baseline"][0]["relative_shift"],
        "ab_shift": slower["baseline"][0]["relative_shift"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load_judge_quality", description=__doc__)
    parser.add_argument("--trials", type=int, default=5, help="trials (default 5)")
    parser.add_argument("--seconds", type=float, default=8, help="seconds per run (default 8)")
    args = parser.parse_args(argv)
    policy = BaselinePolicy()
    slo = Slo(p95_ms=1000, max_error_ratio=0.05, min_throughput_rps=1, min_samples=50)
    rows = []
    with tempfile.TemporaryDirectory(prefix="load-judge-quality-") as tmp:
        root = Path(tmp)
        profiles = root / "profiles.toml"
        profiles.write_text(PROFILES.format(seconds=args.seconds))
        slow_env = {"LOAD_FIXTURE_SLEEP_MS": str(BASE_SLEEP_MS), "LOAD_FIXTURE_SLOWDOWN": str(SLOWDOWN)}
        with (
            serve("load_sleepy_score.py", root / "base", LOAD_FIXTURE_SLEEP_MS=str(BASE_SLEEP_MS)),
            serve("load_sleepy_score.py", root / "slow", **slow_env),
        ):
            for number in range(args.trials):
                row = trial(number, root, profiles, slo, policy)
                rows.append(row)
                print(
                    f"trial {number}: A/A {row['aa']['verdict']} (shift {row['aa_shift'] * 100:+.1f}%), regression "
                    f"{row['ab']['verdict']} (p95 {row['p95_change'] * 100:+.1f}%, shift {row['ab_shift'] * 100:+.1f}%)"
                )
                for reason in row["aa"]["reasons"]:
                    print(f"    A/A: {reason}")
    false_rejects = sum(1 for row in rows if row["aa"]["verdict"] == REJECT)
    false_holds = sum(1 for row in rows if row["aa"]["verdict"] == HOLD)
    caught = sum(1 for row in rows if row["ab"]["verdict"] == REJECT)
    changes = [row["p95_change"] for row in rows]
    print(
        f"\ninjected regression: measured p95 change {min(changes) * 100:+.1f}% to {max(changes) * 100:+.1f}% "
        f"(mean {sum(changes) / len(changes) * 100:+.1f}%)"
    )
    print(f"regression caught (rejected): {caught} of {len(rows)}")
    print(f"A/A wrongly rejected:         {false_rejects} of {len(rows)} (held: {false_holds})")
    print(
        f"rule: reject when the Hodges-Lehmann shift exceeds max({policy.max_slowdown:.0%} of the baseline median, "
        f"{policy.min_shift_ms} ms) and Mann-Whitney p < {policy.alpha} (Bonferroni-split)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
