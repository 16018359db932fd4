"""A CI-sized run of benchmarks/failover_bench.py: one failover of the baseline manager on a
real cluster (the full benchmark, with Patroni, is run by hand: see its docstring)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import require_pg_server

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "failover_bench.py")


def test_bench_rejects_unknown_systems():
    proc = subprocess.run([sys.executable, SCRIPT, "--systems", "raw,nope"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "nope" in proc.stderr


@pytest.mark.pg
def test_bench_smoke_one_baseline_run():
    require_pg_server()
    proc = subprocess.run([sys.executable, SCRIPT, "--runs", "1", "--systems", "raw"],
                          capture_output=True, text=True, timeout=300)
    print(proc.stdout, proc.stderr)
    assert proc.returncode == 0
    assert "mode semi_sync" in proc.stdout  # the settings are printed
    line = next(ln for ln in proc.stdout.splitlines()
                if ln.startswith("raw baseline") and "median" in ln)
    assert "NOT replikit" in line and "lost acknowledged writes 0" in line
    median = float(re.search(r"median\s+([0-9.]+) s", line).group(1))
    assert median > 0
