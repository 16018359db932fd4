"""Runs the C++ PostgreSQL suite (replikit_pg_tests) against the session cluster: the Release
build (build/ci, from scripts/test.sh or by hand) and the AddressSanitizer + LeakSanitizer one
(build/asan-pg, built by scripts/test.sh). Each is skipped, saying why, when not built."""

from __future__ import annotations

import os
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
BUILDS = {
    "release": os.path.join(ROOT, "build", "ci", "replikit_pg_tests"),
    "asan": os.path.join(ROOT, "build", "asan-pg", "replikit_pg_tests"),
}
HOW_TO_BUILD = {
    "release": "cmake -S . -B build/ci -G Ninja -DCMAKE_BUILD_TYPE=Release -DREPLIKIT_BUILD_TESTS=ON "
               "&& cmake --build build/ci --target replikit_pg_tests",
    "asan": "scripts/test.sh builds it (build/asan-pg, -DREPLIKIT_SANITIZE=address,undefined)",
}

pytestmark = pytest.mark.pg


@pytest.mark.parametrize("build", sorted(BUILDS))
def test_cpp_pg_suite_against_the_cluster(pg_cluster, build):
    binary = BUILDS[build]
    if not os.access(binary, os.X_OK):
        pytest.skip(f"{binary} is not built ({HOW_TO_BUILD[build]})")
    env = dict(os.environ)
    env["REPLIKIT_PG_PRIMARY_DSN"] = pg_cluster.dsn("primary")
    env["REPLIKIT_PG_REPLICA_DSN"] = pg_cluster.dsn("r1")
    # LeakSanitizer reports at exit and makes the exit status non-zero.
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    proc = subprocess.run([binary, "--gtest_brief=1"], env=env, capture_output=True, text=True, timeout=600,
                          cwd=ROOT)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    assert "LeakSanitizer" not in output and "AddressSanitizer" not in output, output[-6000:]
    assert "runtime error:" not in output, output[-6000:]  # UndefinedBehaviorSanitizer
    assert "[  SKIPPED ]" not in output, output[-6000:]  # the DSNs are set: every case runs
