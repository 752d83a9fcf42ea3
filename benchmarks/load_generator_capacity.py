"""Generator capacity: requests per second our load stage reaches against a no-op entry script, beside wrk.

    .venv/bin/python -m benchmarks.load_generator_capacity                 # 10 s per measurement
    .venv/bin/python -m benchmarks.load_generator_capacity --seconds 5 --connections 8

One azmlinfsrv on loopback serves tests/fixtures/load_noop_score.py (no model work: the serving stack's own
ceiling). Against that same server, in one run: wrk (Debian's package) with a POST of {"horizon": 1}, then
`python -m load run` with as many users, no think time, in one process and with two worker processes. Both
tools share the machine with the server, as a CI agent would.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.fixtures.load_server import read_json, run_cli, serve

WRK_TIMEOUT_MARGIN_S = 30  # wrk stops itself after --duration; this only bounds a wedged process
FLAT_PROFILES = """
[defaults]
stop_timeout_s = 2
[mix.one]
horizon = 1
[profiles.flat]
description = "as fast as the users can send: no think time"
users = {users}
spawn_rate = {users}
run_time_s = {seconds}
wait_s = [0, 0]
[profiles.flat.slo]
p95_ms = 1000
max_error_ratio = 1
min_throughput_rps = 0
min_samples = 1
"""
WRK_SCRIPT = """wrk.method = "POST"
wrk.body = '{"horizon": 1}'
wrk.headers["Content-Type"] = "application/json"
"""


def run_wrk(url: str, *, connections: int, seconds: int, folder: Path) -> float:
    """wrk's requests per second against the scoring URL."""
    script = folder / "post.lua"
    script.write_text(WRK_SCRIPT)
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + WRK_TIMEOUT_MARGIN_S, check=False)
    found = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    if done.returncode != 0 or not found:
        sys.exit(f"wrk failed: {done.stdout} {done.stderr}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    if errors:
        print(f"  note: wrk saw {errors.group(1)} non-2xx answers")
    return float(found.group(1))


def run_ours(artifacts: Path, deployment: Path, *, workers: int, seconds: int, connections: int) -> dict[str, float]:
    """Our load stage's throughput (and its CPU warning) with the flat profile."""
    artifacts.mkdir()
    (artifacts / "deployment.json").write_text(deployment.read_text())
    profiles = artifacts / "profiles.toml"
    profiles.write_text(FLAT_PROFILES.format(users=connections, seconds=seconds))
    args = ["run", "--profile", "flat"] + (["--workers", str(workers)] if workers else [])
    done = run_cli(*args, artifacts=artifacts, env={"LOAD_PROFILES_FILE": str(profiles)})
    if done.returncode != 0:
        sys.exit(f"load run failed: {done.stderr.strip()}")
    results = read_json(artifacts / "load" / "flat" / "results.json")
    return {
        "rps": results["throughput_rps"],
        "failures": results["failures"]["total"],
        "cpu_warning": results["cpu_warning"],
        "p50": results["latency_ms"]["p50"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load_generator_capacity", description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="seconds per measurement (default 10)")
    parser.add_argument("--connections", type=int, default=4, help="wrk connections = our users (default 4)")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: `apt-get install -y wrk` (Debian's package)")
    with tempfile.TemporaryDirectory(prefix="load-capacity-") as tmp:
        folder = Path(tmp)
        with serve("load_noop_score.py", folder) as served:
            print(f"no-op entry script on azmlinfsrv at {served.scoring_uri}, {args.connections} connections")
            wrk = run_wrk(served.scoring_uri, connections=args.connections, seconds=args.seconds, folder=folder)
            deployment = folder / "deployment.json"
            settings = {"seconds": args.seconds, "connections": args.connections}
            single = run_ours(folder / "one", deployment, workers=0, **settings)
            double = run_ours(folder / "two", deployment, workers=2, **settings)
    print(f"\n  {'generator':34} {'req/s':>9} {'vs wrk':>8}  notes")
    print(f"  {'wrk -t1':34} {wrk:9.1f} {1:8.2f}")
    for name, figures in (("python -m load run (1 process)", single), ("python -m load run --workers 2", double)):
        notes = f"p50 {figures['p50']} ms, {figures['failures']:.0f} failures"
        notes += ", CPU warning" if figures["cpu_warning"] else ""
        print(f"  {name:34} {figures['rps']:9.1f} {figures['rps'] / wrk:8.2f}  {notes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
