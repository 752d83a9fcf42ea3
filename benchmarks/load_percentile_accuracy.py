"""Percentile accuracy: our p50/p95/p99 (HDR, 3 digits) beside exact values from the raw samples, and Locust's.

    .venv/bin/python -m benchmarks.load_percentile_accuracy              # synthetic samples + one real 10 s run
    .venv/bin/python -m benchmarks.load_percentile_accuracy --no-run     # synthetic samples only

Synthetic: 100 000 seeded samples from four shapes. Real: `python -m load run --profile smoke` against a
loopback azmlinfsrv (a fixture that sleeps 2 ms), every request's raw timing written beside the results.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
from pathlib import Path

# Locust's own statistics are computed with Locust's code; it must be imported before anything loads ssl.
from locust.stats import RequestStats, StatsEntry

from load.recorder import Recorder, summarize
from tests.fixtures.load_server import read_json, run_cli, serve

PERCENTILES = (("p50", 50.0), ("p95", 95.0), ("p99", 99.0))
SAMPLES = 100_000


def exact(sorted_ms: list[float], percentile: float) -> float:
    """Nearest-rank percentile of raw samples (the rank HDR uses)."""
    rank = max(int(percentile * len(sorted_ms) / 100 + 0.5), 1)
    return sorted_ms[rank - 1]


def locust_percentiles(samples_ms: list[float]) -> dict[str, float]:
    """What Locust reports for the same samples (it keeps response times in rounded buckets)."""
    entry = StatsEntry(RequestStats(), "bench", "POST")
    for ms in samples_ms:
        entry.log(ms, 0)  # type: ignore[arg-type]  # typed int, but Locust itself logs float ms
    return {key: float(entry.get_response_time_percentile(p / 100)) for key, p in PERCENTILES}


def ours(samples_ms: list[float]) -> dict[str, float]:
    recorder = Recorder()
    for i, ms in enumerate(samples_ms):
        recorder.record(kind="bench", at=float(i // 1000), latency_ms=ms, error=None, status=200)
    figures = summarize(recorder.latency.histogram, exact=recorder.latency.exact)
    return {key: float(figures[key] or 0) for key, _ in PERCENTILES}


def report(
    name: str,
    samples_ms: list[float],
    *,
    ours_given: dict[str, float] | None = None,
    locust_given: dict[str, float] | None = None,
) -> None:
    ordered = sorted(samples_ms)
    mine = ours_given or ours(samples_ms)
    theirs = locust_given or locust_percentiles(samples_ms)
    print(f"\n{name} ({len(samples_ms)} samples)")
    print(f"  {'':4} {'exact ms':>12} {'ours ms':>12} {'error':>9} {'Locust ms':>12} {'error':>9}")
    for key, percentile in PERCENTILES:
        truth = exact(ordered, percentile)
        print(
            f"  {key:4} {truth:12.3f} {mine[key]:12.3f} {(mine[key] - truth) / truth * 100:+8.3f}% "
            f"{theirs[key]:12.3f} {(theirs[key] - truth) / truth * 100:+8.2f}%"
        )


def synthetic() -> None:
    rng = random.Random(2026)
    shapes = {
        "log-normal around 12 ms": [rng.lognormvariate(math.log(12), 0.5) for _ in range(SAMPLES)],
        "bimodal: 8 ms, 5% at 250 ms": [
            rng.gauss(250, 20) if rng.random() < 0.05 else rng.gauss(8, 1.5) for _ in range(SAMPLES)
        ],
        "heavy tail: Pareto from 3 ms": [3 * rng.paretovariate(2.5) for _ in range(SAMPLES)],
        "slow service: log-normal around 900 ms": [rng.lognormvariate(math.log(900), 0.15) for _ in range(SAMPLES)],
    }
    for name, samples in shapes.items():
        report(name, [max(s, 0.05) for s in samples])


def real_run() -> None:
    with tempfile.TemporaryDirectory(prefix="load-bench-") as tmp:
        artifacts = Path(tmp)
        raw_dir = artifacts / "raw"
        with serve("load_sleepy_score.py", artifacts, LOAD_FIXTURE_SLEEP_MS="2"):
            done = run_cli(
                "run",
                "--profile",
                "smoke",
                "--run-time",
                "10",
                artifacts=artifacts,
                env={"LOAD_RAW_SAMPLES_DIR": str(raw_dir)},
            )
        if done.returncode != 0:
            sys.exit(f"load run failed: {done.stderr.strip()}")
        results = read_json(artifacts / "load" / "smoke" / "results.json")
        samples = [s[0] for path in raw_dir.glob("raw-*.json") for s in json.loads(path.read_text())["samples"]]
        mine = {key: float(results["latency_ms"][key]) for key, _ in PERCENTILES}
        theirs = {key: float(results["locust"][f"{key}_ms"]) for key, _ in PERCENTILES}
        report("real run: smoke profile, 10 s, sleepy fixture (2 ms)", samples, ours_given=mine, locust_given=theirs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load_percentile_accuracy", description=__doc__)
    parser.add_argument("--no-run", action="store_true", help="skip the real load run")
    args = parser.parse_args(argv)
    synthetic()
    if not args.no_run:
        real_run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
