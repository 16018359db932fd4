#!/usr/bin/env python3
"""Instructions and data reads per routing decision, this checkout against a baseline commit.

Usage:
    python3 benchmarks/router_instructions.py --baseline REF [--filter REGEX] [--build-dir DIR]

Builds bench_router (Release) here and at git REF (in a temporary worktree, removed afterwards),
runs each bench_router case matching REGEX (the contended ones excepted) once under
valgrind's callgrind, and prints per case the instructions (Ir) and data reads (Dr) per
routing decision of both, and the ratio. A decision's cost is the inclusive cost of the calls
into Router::route_read (route_write for BM_RouteWrite) from the benchmark loop, divided by
their count: unlike wall time, it does not depend on what else the machine runs. Needs valgrind.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ("Ir", "Dr")


def build(source: Path, build_dir: Path) -> Path:
    subprocess.run(
        ["cmake", "-Wno-dev", "-S", str(source), "-B", str(build_dir), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
         "-DREPLIKIT_BUILD_BENCHMARKS=ON", "-DREPLIKIT_WITH_PQXX=OFF"],
        check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(build_dir), "-j2", "--target", "bench_router"], check=True,
                   stdout=subprocess.DEVNULL)
    return build_dir / "bench_router"


def per_decision(profile: Path, target: str) -> dict[str, float]:
    """Inclusive cost per call of the calls into `target` made from outside it."""
    names: dict[str, str] = {}
    events: list[str] = []
    fn = cfn = ""
    pending = False
    calls = 0
    total: list[int] = []

    def name_of(spec: str) -> str:
        m = re.match(r"\((\d+)\)(?: (.*))?", spec)
        if not m:
            return spec
        if m.group(2) is not None:
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), "")

    inside = ("Router::route_read", "Router::route_write")
    with open(profile, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("events:"):
                events = line.split()[1:]
                total = [0] * len(events)
            elif line.startswith("fn="):
                fn = name_of(line[3:].rstrip("\n"))
            elif line.startswith("cfn="):
                cfn = name_of(line[4:].rstrip("\n"))
            elif line.startswith("calls="):
                count = int(line.split("=")[1].split()[0])
                pending = target in cfn and not any(s in fn for s in inside)
                if pending:
                    calls += count
            elif pending and line[:1].isdigit() or pending and line[:1] in "+-*":
                for k, v in enumerate(line.split()[1:]):
                    total[k] += int(v)
                pending = False
    if calls == 0:
        raise SystemExit(f"no calls into {target} in {profile}")
    return {e: total[k] / calls for k, e in enumerate(events) if e in EVENTS}


def measure(exe: Path, case: str, workdir: Path) -> dict[str, float]:
    profile = workdir / "callgrind.out"
    pattern = "^" + re.sub(r"([][().*+?^$|{}])", r"\\\1", case) + "$"
    subprocess.run(["valgrind", "--tool=callgrind", "--cache-sim=yes", f"--callgrind-out-file={profile}", str(exe),
                    f"--benchmark_filter={pattern}", "--benchmark_min_time=0.01"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = "Router::route_write(" if case.startswith("BM_RouteWrite") else "Router::route_read("
    result = per_decision(profile, target)
    profile.unlink()
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", required=True, help="git commit or branch to compare with")
    ap.add_argument("--filter", default=".", help="regex over bench_router case names (default all)")
    ap.add_argument("--build-dir", default="build-bench", help="this checkout's build directory")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        print("router_instructions: needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="router-instr-") as tmp:
        tmpdir = Path(tmp)
        tree = tmpdir / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.baseline],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base_exe = build(tree, tree / "build")
            exe = build(ROOT, ROOT / args.build_dir)
            listed = subprocess.run([str(exe), "--benchmark_list_tests"], check=True, capture_output=True,
                                    text=True).stdout.split("\n")
            cases = [c for c in listed if c and "Contended" not in c and re.search(args.filter, c)]
            base_cases = set(subprocess.run([str(base_exe), "--benchmark_list_tests"], check=True,
                                            capture_output=True, text=True).stdout.split("\n"))
            print(f"{'case':<72}{'Ir base':>9}{'Ir now':>9}{'ratio':>7}{'Dr base':>9}{'Dr now':>9}")
            for case in cases:
                now = measure(exe, case, tmpdir)
                base = measure(base_exe, case, tmpdir) if case in base_cases else None
                ir_b = f"{base['Ir']:9.1f}" if base else f"{'-':>9}"
                ratio = f"{now['Ir'] / base['Ir']:7.3f}" if base else f"{'-':>7}"
                dr_b = f"{base['Dr']:9.1f}" if base else f"{'-':>9}"
                print(f"{case:<72}{ir_b}{now['Ir']:9.1f}{ratio}{dr_b}{now['Dr']:9.1f}", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
