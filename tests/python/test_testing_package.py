"""replikit.testing as users see it: the pytest plugin in a user's own suite, and the typing of
replikit.pg and replikit.testing as mypy sees it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from importlib import metadata

import pytest

from conftest import require_pg_server

import replikit
from replikit.testing.processes import pid_alive

USER_TESTS = '''
import json
import os

import pytest


def test_a_write_reaches_the_replica(replikit_cluster):
    c = replikit_cluster
    assert c.replica_names == ["r1"]  # from pytest.ini
    c.sql("primary", "CREATE TABLE user_t (id int); INSERT INTO user_t VALUES (7)")
    c.wait_caught_up()
    assert c.sql("r1", "SELECT id FROM user_t") == [("7",)]
    with open(os.environ["REPLIKIT_USER_OUT"], "w") as handle:
        json.dump({"dir": c.base_dir, "pids": c.pids()}, handle)


def test_the_same_cluster_serves_the_session(replikit_cluster_reset):
    replikit_cluster_reset.stop("r1")
    assert replikit_cluster_reset.sql("primary", "SELECT id FROM user_t") == [("7",)]


def test_a_failing_user_test(replikit_cluster):
    assert replikit_cluster.is_up("r1")  # put back by replikit_cluster_reset
    assert False, "this user test fails on purpose"
'''



def _user_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return env


def test_plugin_is_registered_for_pytest():
    plugins = {ep.name: ep.value for ep in metadata.entry_points(group="pytest11")}
    assert plugins.get("replikit") == "replikit.testing.pytest_plugin"


def test_bad_plugin_option_stops_the_run_naming_it(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\nreplikit_cluster_mode = semi-sync\n")
    (tmp_path / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env=_user_env())
    assert out.returncode == 4, out.stdout + out.stderr  # usage error
    assert "replikit_cluster_mode" in out.stderr


@pytest.mark.pg
def test_a_user_suite_gets_a_cluster_from_the_fixture_and_it_is_stopped(tmp_path):
    require_pg_server()
    (tmp_path / "pytest.ini").write_text("[pytest]\nreplikit_cluster_replicas = 1\n")
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    report = tmp_path / "cluster.json"
    env = _user_env()
    env["REPLIKIT_USER_OUT"] = str(report)
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 1, out.stdout + out.stderr  # exactly the failing test fails
    assert "1 failed, 2 passed" in out.stdout, out.stdout
    assert "this user test fails on purpose" in out.stdout
    seen = json.loads(report.read_text())
    assert len(seen["pids"]) >= 4  # postmasters and their children
    assert [pid for pid in seen["pids"] if pid_alive(pid)] == []
    assert not os.path.exists(seen["dir"])


def _mypy(tmp_path, source: str) -> str:
    import mypy  # noqa: F401  (in the test extra: missing mypy fails, never skips)
    path = tmp_path / "user_code.py"
    path.write_text(textwrap.dedent(source))
    out = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary",
                          "--cache-dir", str(tmp_path / ".mypy_cache"), str(path)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    return out.stdout + out.stderr


def test_mypy_sees_the_backend_classes_not_any(tmp_path):
    if not replikit._core.HAVE_PG:
        pytest.skip("replikit was built without the PostgreSQL backend")
    out = _mypy(tmp_path, """
        from replikit.pg import ReplicatedDatabase, PsycopgRouter, database_for_cluster
        reveal_type(ReplicatedDatabase)
        reveal_type(PsycopgRouter)
        reveal_type(database_for_cluster)
    """)
    revealed = [line for line in out.splitlines() if "Revealed type" in line]
    assert len(revealed) == 3, out
    assert "-> replikit._core.ReplicatedDatabase" in revealed[0], out
    assert "-> replikit._pgdb.PsycopgRouter" in revealed[1], out
    assert "-> replikit._core.ReplicatedDatabase" in revealed[2], out
    assert "error" not in out, out


def test_mypy_types_the_harness(tmp_path):
    out = _mypy(tmp_path, """
        from replikit.testing import LocalCluster
        c = LocalCluster(start=False)
        reveal_type(c.wait_caught_up(timeout_ms=1000.0))
        reveal_type(c.sql("primary", "SELECT 1"))
        c.sql("primary", "SELECT 1", timeout_ms="soon")
    """)
    revealed = [line for line in out.splitlines() if "Revealed type" in line]
    assert "replikit._core.Lsn" in revealed[0], out
    assert re.search(r"list\[(builtins\.)?tuple\[(builtins\.)?str \| None, \.\.\.\]\]",
                     revealed[1]), out
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 1 and "timeout_ms" in errors[0], out
