"""The ``replikit`` command line: version, help, errors naming flags, demo, and a cluster kept
with ``down --keep`` that ``up`` starts again with its data."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from conftest import new_cluster_dir, require_pg_server

import replikit
from replikit.testing.processes import pid_alive
from replikit import cli
from replikit.testing import LocalCluster

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "replikit", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_version_comes_from_the_package_metadata_and_pyproject():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    declared = re.search(r'^version\s*=\s*"([^"]+)"', pyproject, re.MULTILINE).group(1)
    assert replikit.__version__ == metadata.version("replikit") == declared
    out = run_cli("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"replikit {declared}"


def test_help_shows_the_limits(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["cluster", "up", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--replicas N number of streaming replicas, 0-10" in text
    assert "--sync-count K" in text and "1-N" in text
    assert "--base-port P first port to try, 1024-65000" in text
    assert "--timeout S seconds" in text and "> 0" in text
    with pytest.raises(SystemExit):
        cli.main(["cluster", "down", "--help"])
    assert "starts it again" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("argv, flag", [
    (["--replicas", "11"], "--replicas"),
    (["--replicas", "two"], "--replicas"),
    (["--sync-count", "0"], "--sync-count"),
    (["--mode", "sync", "--replicas", "1", "--sync-count", "2"], "--sync-count"),
    (["--mode", "remote_apply", "--replicas", "0"], "--mode"),
    (["--mode", "semi"], "--mode"),
    (["--base-port", "80"], "--base-port"),
    (["--timeout", "0"], "--timeout"),
    (["--timeout", "nan"], "--timeout"),
])
def test_errors_name_the_flag_as_typed(argv, flag, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["cluster", "up", "--dir", str(tmp_path / "c"), *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}:" in err
    assert "usage: replikit cluster up" in err
    assert "sync_count" not in err and "base_port" not in err
    assert not (tmp_path / "c").exists()


def test_library_errors_are_shown_with_the_flag_name():
    error = replikit.InvalidArgument("sync_count: expected 1..2 (the replica count), got 3")
    error.argument = "sync_count"
    assert cli._flag_message(error) == "argument --sync-count: expected 1..2 (the replica count), got 3"


def test_demo_command_runs_the_demo_with_its_options():
    out = run_cli("demo", "--in-process", "--seed", "3")
    assert out.returncode == 0, out.stderr
    assert "replikit demo (in-process, simulated clock, seed=3)" in out.stdout
    assert "read-your-writes violations: 0" in out.stdout
    usage = run_cli("demo", "--help")
    assert usage.returncode == 0 and "usage: replikit demo" in usage.stdout
    assert "--in-process" in usage.stdout


@pytest.mark.pg
def test_up_starts_a_kept_cluster_again_with_its_data():
    require_pg_server()
    parent, cluster_dir = new_cluster_dir("replikit-cli-keep-")
    try:
        up = run_cli("cluster", "up", "--dir", cluster_dir, "--replicas", "1")
        assert up.returncode == 0, up.stderr
        first = LocalCluster.attach(cluster_dir)
        ports = {n: node.port for n, node in first.nodes.items()}
        first.sql("primary", "CREATE TABLE kept (id int PRIMARY KEY, note text); "
                             "INSERT INTO kept VALUES (1, 'still here')")
        first.wait_caught_up(timeout_ms=30_000)
        processes = first.pids()

        down = run_cli("cluster", "down", "--dir", cluster_dir, "--keep")
        assert down.returncode == 0, down.stderr
        assert os.path.isdir(os.path.join(cluster_dir, "primary"))
        assert not any(pid_alive(pid) for pid in processes)

        again = run_cli("cluster", "up", "--dir", cluster_dir)
        assert again.returncode == 0, again.stderr
        assert "started again (with its data)" in again.stdout
        second = LocalCluster.attach(cluster_dir)
        assert {n: node.port for n, node in second.nodes.items()} == ports
        assert second.sql("primary", "SELECT note FROM kept") == [("still here",)]
        second.wait_caught_up(timeout_ms=30_000)
        assert second.sql("r1", "SELECT note FROM kept") == [("still here",)]
        assert second.replication()["r1"]["state"] == "streaming"

        running = run_cli("cluster", "up", "--dir", cluster_dir)
        assert running.returncode == 1 and "already holds a running cluster" in running.stderr

        assert run_cli("cluster", "down", "--dir", cluster_dir, "--keep").returncode == 0
        other = run_cli("cluster", "up", "--dir", cluster_dir, "--replicas", "2")
        assert other.returncode == 2
        assert "argument --replicas:" in other.stderr and "stopped cluster" in other.stderr
        assert os.path.isdir(os.path.join(cluster_dir, "primary"))  # nothing was wiped
    finally:
        if os.path.exists(os.path.join(cluster_dir, "cluster.json")):
            LocalCluster.attach(cluster_dir).close(remove_dir=True)
        shutil.rmtree(parent, ignore_errors=True)



def test_no_keep_synchronous_reaches_the_manager_options_of_both_commands(capsys):
    from replikit import _failover_cli

    nodes = ["--primary", "p=host=a", "--replica", "r1=host=b"]
    for command in ("failover-manager", "switchover"):
        given = cli._build_parser().parse_args([command, *nodes, "--no-keep-synchronous"])
        assert _failover_cli.manager_options(given)["keep_synchronous"] is False
        # Not given: not passed, so FailoverManagerOptions' default (on) holds.
        plain = cli._build_parser().parse_args([command, *nodes])
        assert "keep_synchronous" not in _failover_cli.manager_options(plain)
        with pytest.raises(SystemExit) as exit_info:
            cli.main([command, "--help"])
        assert exit_info.value.code == 0
        text = " ".join(capsys.readouterr().out.split())
        assert "--no-keep-synchronous leave the new primary asynchronous" in text
    limited = cli._build_parser().parse_args(["failover-manager", *nodes, "--max-lag-bytes", "1024"])
    assert _failover_cli.manager_options(limited) == {"max_lag_bytes": 1024}
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["failover-manager", *nodes, "--no-keep-synchronous=yes"])
    assert exit_info.value.code == 2
