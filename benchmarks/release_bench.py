"""Release benchmark: prints the figures quoted in the README.

    python -m benchmarks.release_bench            # everything (about 2 minutes on 2 cores)
    python -m benchmarks.release_bench --quick    # shorter throughput windows

1. in-process run() time per horizon (no HTTP);
2. served latency p50/p95 with one sequential client;
3. maximum throughput of the real entry script beside a no-op entry script on the same server,
   measured side by side in one run (the no-op figure is the serving stack's own ceiling);
4. time from `python -m release --profile smoke` start to verdict, less the configured load duration.

All traffic goes to servers this script starts on 127.0.0.1 and stops by pid.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from deploy.local import local_deployment

ROOT = Path(__file__).resolve().parent.parent
NOOP_SCRIPT = ROOT / "tests" / "fixtures" / "noop_score.py"


def percentile(samples: list[float], q: float) -> float:
    """Exact percentile (nearest rank) of raw samples."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def build_model(artifacts: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "service.build", "--out", str(artifacts / "model")],
        cwd=ROOT,
        env={**os.environ, "RELEASE_ARTIFACTS": str(artifacts)},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return artifacts / "model"


def bench_in_process(model_dir: Path, repeats: int) -> dict[int, float]:
    """Median milliseconds of score.run() per horizon, called in-process through a real flask request."""
    from flask import Request
    from werkzeug.test import EnvironBuilder

    os.environ["AZUREML_MODEL_DIR"] = str(model_dir)
    from service import score

    score.init()
    card = json.loads((model_dir / "model.json").read_text())
    figures = {}
    for horizon in sorted({1, int(card["season_length"]), int(card["max_horizon"])}):
        times = []
        for _ in range(repeats):
            request = Request(EnvironBuilder(method="POST", json={"horizon": horizon}).get_environ())
            started = time.perf_counter()
            response = score.run(request)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.get_data(as_text=True)
        figures[horizon] = statistics.median(times)
    return figures


def bench_one_user(scoring_uri: str, requests_count: int) -> dict[str, float]:
    """Served latency with one sequential keep-alive client."""
    session = requests.Session()
    samples = []
    for i in range(requests_count):
        started = time.perf_counter()
        response = session.post(scoring_uri, json={"horizon": 1 + i % 12}, timeout=10)
        samples.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return {"p50": percentile(samples, 50), "p95": percentile(samples, 95), "n": len(samples)}


def max_throughput(scoring_uri: str, seconds: float, connections: int = 8) -> tuple[float, str]:
    """Requests per second at saturation; wrk when installed, else a threaded Python client."""
    if shutil.which("wrk"):
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
            lua.write(
                'wrk.method = "POST"\nwrk.body = \'{"horizon": 12}\'\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
            )
        try:
            out = subprocess.run(
                ["wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s", "-s", lua.name, scoring_uri],
                capture_output=True,
                text=True,
                timeout=seconds + 30,
                check=True,
            ).stdout
        finally:
            os.unlink(lua.name)
        line = next(ln for ln in out.splitlines() if ln.startswith("Requests/sec:"))
        return float(line.split()[1]), "wrk"
    counts = [0] * connections
    deadline = time.monotonic() + seconds

    def worker(slot: int) -> None:
        session = requests.Session()
        while time.monotonic() < deadline:
            session.post(scoring_uri, json={"horizon": 12}, timeout=10)
            counts[slot] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 15)
    return sum(counts) / seconds, "python threads"


def bench_release(artifacts: Path) -> tuple[float, float]:
    """Seconds from release start to verdict, and the configured load duration inside it."""
    started = time.monotonic()
    code = subprocess.run(
        [sys.executable, "-m", "release", "--profile", "smoke", "--artifacts", str(artifacts)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    ).returncode
    total = time.monotonic() - started
    decision = json.loads((artifacts / "decision.json").read_text())
    load_seconds = float(decision.get("profile_settings", {}).get("run_time_s", 0)) or float(
        json.loads((artifacts / "load" / "smoke" / "results.json").read_text()).get("duration_s", 0)
    )
    print(f"  (release exit code {code}, verdict {decision.get('verdict')})")
    return total, load_seconds


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.release_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter windows (noisier figures)")
    args = parser.parse_args()
    window = 5.0 if args.quick else 15.0
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        artifacts = Path(tmp)
        model_dir = build_model(artifacts)

        print("1. in-process run() time (median of 200 calls)")
        for horizon, ms in bench_in_process(model_dir, repeats=200).items():
            print(f"   horizon {horizon:>3}: {ms:7.2f} ms")

        with local_deployment(model_dir=model_dir, artifacts=artifacts / "real") as real:
            one = bench_one_user(real.scoring_uri, 300)
            print(
                f"2. served latency, one user, {one['n']:.0f} requests: p50 {one['p50']:.2f} ms, "
                f"p95 {one['p95']:.2f} ms"
            )
            real_rps, tool = max_throughput(real.scoring_uri, window)
        with local_deployment(model_dir=model_dir, artifacts=artifacts / "noop", entry_script=NOOP_SCRIPT) as noop:
            noop_rps, _ = max_throughput(noop.scoring_uri, window)
        print(
            f"3. max throughput ({tool}, 8 connections, {window:.0f} s, 1 server worker): "
            f"real {real_rps:.0f} rps, no-op {noop_rps:.0f} rps, real/no-op = {real_rps / noop_rps:.2f}"
        )

        total, load_s = bench_release(artifacts / "release")
        print(
            f"4. release start to verdict: {total:.1f} s total, {total - load_s:.1f} s excluding "
            f"{load_s:.0f} s of configured load"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
