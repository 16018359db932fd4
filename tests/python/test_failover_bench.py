"""A CI-sized run of benchmarks/failover_bench.py: one failover of the baseline manager and one
of replikit's FailoverManager on real clusters (the full benchmark, with Patroni, is run by
hand: see its docstring)."""

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


def test_bench_rejects_unknown_presets():
    proc = subprocess.run([sys.executable, SCRIPT, "--systems", "replikit", "--presets", "slow"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--presets" in proc.stderr


@pytest.mark.pg
def test_bench_smoke_one_baseline_run_and_one_replikit_run():
    require_pg_server()
    proc = subprocess.run([sys.executable, SCRIPT, "--runs", "1", "--systems", "raw,replikit"],
                          capture_output=True, text=True, timeout=300)
    print(proc.stdout, proc.stderr)
    assert proc.returncode == 0
    assert "mode semi_sync" in proc.stdout  # the settings are printed
    lines = [ln for ln in proc.stdout.splitlines() if "median" in ln]
    raw = next(ln for ln in lines if ln.startswith("raw baseline"))
    ours = next(ln for ln in lines if ln.startswith("replikit FailoverManager, fast 100 ms x 3"))
    assert "NOT replikit" in raw
    for line in (raw, ours):
        assert "lost acknowledged writes 0" in line, line
        assert float(re.search(r"median\s+([0-9.]+) s", line).group(1)) > 0
    run = next(ln for ln in proc.stdout.splitlines() if "replikit fast run 1/1" in ln)
    assert "detection" in run and "pg_promote returned" in run  # from the manager's report
    assert "ratio replikit FailoverManager, fast" in proc.stdout


@pytest.mark.pg
@pytest.mark.etcd
def test_bench_smoke_one_run_of_three_processes_through_etcd():
    require_pg_server()
    proc = subprocess.run([sys.executable, SCRIPT, "--runs", "1", "--systems", "etcd"],
                          capture_output=True, text=True, timeout=300)
    print(proc.stdout, proc.stderr)
    assert proc.returncode == 0
    line = next(ln for ln in proc.stdout.splitlines()
                if ln.startswith("replikit x3 processes via etcd") and "median" in ln)
    assert "lost acknowledged writes 0" in line, line
    run = next(ln for ln in proc.stdout.splitlines() if "etcd run 1/1" in ln)
    assert re.search(r"per process a [0-9.]+ s, b [0-9.]+ s, c [0-9.]+ s", run), run
