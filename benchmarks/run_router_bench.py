#!/usr/bin/env python3
"""Run the routing benchmarks and print medians, the ratio to 50K reads/s and thread scaling.

Usage:
    python3 benchmarks/run_router_bench.py [--build-dir build-bench] [--repetitions 5]
        [--filter REGEX] [--python]

Builds bench_router (Release) if needed, runs it with repetitions, and prints one line per
benchmark: median ns per decision, median decisions/s and the ratio to the 50K reads/s target
the project started from. For the contended benchmarks it prints the two-thread speed-up
(median 2-thread throughput / median 1-thread throughput). With --python it also measures the
Python call (Router.route_read) and the batch call (Router.route_reads) from the installed
`replikit` package, each as the median of several timed runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET = 50_000.0
ROOT = Path(__file__).resolve().parent.parent


def build(build_dir: Path) -> Path:
    exe = build_dir / "bench_router"
    subprocess.run(
        ["cmake", "-S", str(ROOT), "-B", str(build_dir), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
         "-DREPLIKIT_BUILD_BENCHMARKS=ON", "-DREPLIKIT_WITH_PQXX=OFF"],
        check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(build_dir), "-j2", "--target", "bench_router"], check=True,
                   stdout=subprocess.DEVNULL)
    return exe


def run_cpp(exe: Path, repetitions: int, pattern: str, min_time: float) -> list[dict]:
    out = subprocess.run(
        [str(exe), f"--benchmark_filter={pattern}", f"--benchmark_repetitions={repetitions}",
         f"--benchmark_min_time={min_time}", "--benchmark_format=json"],
        check=True, capture_output=True, text=True)
    data = json.loads(out.stdout)
    by_name: dict[str, list[dict]] = {}
    for b in data["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        by_name.setdefault(b["run_name"], []).append(b)
    rows = []
    for name, runs in by_name.items():
        rows.append({
            "name": name,
            "ns": statistics.median(r["real_time"] for r in runs),
            "per_second": statistics.median(r["items_per_second"] for r in runs),
            "allocs": max(r.get("allocs_per_decision", 0.0) for r in runs),
        })
    return rows


def run_python(repetitions: int) -> list[dict]:
    import numpy as np
    import replikit as rk

    topology = rk.Topology("primary", [f"r{i}" for i in range(1, 9)])
    lag = rk.LagTracker(topology)
    lag.primary_sample("0/1000000", now_ns=1)
    for i in range(1, 9):
        lag.replica_sample(f"r{i}", "0/1000000", "0/1000000", now_ns=1)
    router = rk.Router(topology)
    session = rk.Session(write_lsn="0/F00000")
    ryw = rk.Consistency.READ_YOUR_WRITES
    rows = []

    calls = 200_000
    samples = []
    for _ in range(repetitions):
        start = time.perf_counter()
        for _ in range(calls):
            router.route_read(session, ryw, 2)
        samples.append(calls / (time.perf_counter() - start))
    rows.append({"name": "python route_read (RYW, 8 replicas)", "per_second": statistics.median(samples)})

    batch = np.full(1_000_000, 0xF00000, dtype=np.uint64)
    samples = []
    for _ in range(repetitions):
        start = time.perf_counter()
        router.route_reads(batch, consistency=ryw, now_ns=2)
        samples.append(len(batch) / (time.perf_counter() - start))
    rows.append({"name": "python route_reads batch of 1M (RYW, 8 replicas)", "per_second": statistics.median(samples)})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", default=str(ROOT / "build-bench"))
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--filter", default=".")
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds per repetition")
    parser.add_argument("--python", action="store_true", help="also measure the Python calls")
    args = parser.parse_args()
    if args.repetitions < 1:
        parser.error("--repetitions must be >= 1")

    exe = build(Path(args.build_dir))
    print(f"median of {args.repetitions} repetitions; target {TARGET:,.0f} reads/s; cpus={os.cpu_count()}")
    rows = run_cpp(exe, args.repetitions, args.filter, args.min_time)
    width = max(len(r["name"]) for r in rows)
    print(f"{'benchmark':<{width}}  {'ns/decision':>11}  {'decisions/s':>14}  {'x 50K':>9}  allocs")
    for r in rows:
        print(f"{r['name']:<{width}}  {r['ns']:>11.2f}  {r['per_second']:>14,.0f}  {r['per_second'] / TARGET:>9,.0f}  {r['allocs']:.0f}")
    contended = {r["name"]: r for r in rows if "Contended" in r["name"]}
    for name, r in contended.items():
        if name.endswith("threads:2"):
            one = contended.get(name.replace("threads:2", "threads:1"))
            if one:
                print(f"speed-up 2 threads / 1 thread, {name.split('/')[0]}: {r['per_second'] / one['per_second']:.2f}x")
    if args.python:
        for r in run_python(args.repetitions):
            print(f"{r['name']}: {r['per_second']:,.0f} decisions/s = {r['per_second'] / TARGET:,.1f} x 50K")
    return 0


if __name__ == "__main__":
    sys.exit(main())
