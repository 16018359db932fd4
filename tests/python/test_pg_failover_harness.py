"""replikit.testing's failure and failover helpers on real clusters: replication modes,
crash (the whole instance), pause/resume, promote, repoint, rejoin with pg_rewind, and
``replikit cluster rejoin``. Each pg test starts a cluster of its own (they change roles)."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from conftest import new_cluster_dir, require_pg_server, wait_until

import replikit
from replikit import cli
from replikit.testing import ClusterTimeoutError, LocalCluster
from replikit.testing.nodes import MODES, mode_settings

WAIT_MS = 30_000.0
WAIT_S = WAIT_MS / 1000


def alive(pids):
    out = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                stat = handle.read()
        except FileNotFoundError:
            continue
        if stat[stat.rfind(")") + 2:].split()[0] != "Z":
            out.append(pid)
    return out


def count(cluster, node, table):
    return int(cluster.sql(node, f"SELECT count(*) FROM {table}")[0][0])


def auto_conf(cluster, node):
    with open(os.path.join(cluster.nodes[node].data_dir, "postgresql.auto.conf")) as handle:
        return dict(line.split(" = ", 1) for line in handle.read().splitlines()
                    if " = " in line and not line.startswith("#"))


# ------------------------------------------------------------------ no server needed
@pytest.mark.parametrize("mode, names, commit", [
    ("async", "''", "on"),
    ("semi_sync", "'ANY 1 (r1, r2, r3)'", "on"),
    ("sync", "'ANY 2 (r1, r2, r3)'", "on"),
    ("sync_all", "'FIRST 3 (r1, r2, r3)'", "on"),
    ("remote_apply", "'ANY 2 (r1, r2, r3)'", "remote_apply"),
])
def test_mode_settings_of_each_mode(mode, names, commit):
    assert mode in MODES
    assert mode_settings(mode, 2, ["r1", "r2", "r3"]) == {
        "synchronous_standby_names": names, "synchronous_commit": commit}


def test_failover_helpers_reject_bad_names_without_a_server():
    cluster = LocalCluster(start=False, replicas=2)
    with pytest.raises(replikit.NotFound) as info:
        cluster.crash("nope")
    assert info.value.argument == "node"
    with pytest.raises(replikit.NotFound) as info:
        cluster.adopt_promotion("nope")
    assert info.value.argument == "node"


# ------------------------------------------------------------------ real clusters
@pytest.mark.pg
def test_modes_at_start_and_switched_at_run_time():
    require_pg_server()
    with LocalCluster(replicas=2, mode="semi_sync") as c:
        assert c.sql("primary", "SHOW synchronous_standby_names") == [("ANY 1 (r1, r2)",)]
        c.sql("primary", "CREATE TABLE w (id int)")
        c.stop("r1")
        c.sql("primary", "INSERT INTO w VALUES (1)", timeout_ms=WAIT_MS)  # r2 suffices
        c.set_replication_mode("sync_all")
        assert c.sql("primary", "SHOW synchronous_standby_names") == [("FIRST 2 (r1, r2)",)]
        with pytest.raises(ClusterTimeoutError):  # every standby must confirm: r1 is down
            c.sql("primary", "INSERT INTO w VALUES (2)", timeout_ms=1000.0)
        c.start("r1")
        wait_until(lambda: {i["sync_state"] for i in c.replication().values()} == {"sync"},
                   WAIT_S, what="both standbys synchronous")
        wait_until(lambda: count(c, "primary", "w") == 2, WAIT_S,
                   what="the held commit to complete once r1 is back")
        c.set_replication_mode("remote_apply", sync_count=1)
        assert c.sql("primary", "SHOW synchronous_commit") == [("remote_apply",)]
        c.sql("primary", "CREATE TABLE m (id int); INSERT INTO m VALUES (1)")
        c.set_replication_mode("async")
        assert c.sql("primary", "SHOW synchronous_standby_names") == [("",)]
        assert c.mode == "async"


@pytest.mark.pg
def test_crash_kills_the_whole_instance_and_pause_hangs_it():
    require_pg_server()
    with LocalCluster(replicas=1) as c:
        held = c.sql_background("primary", "SELECT pg_sleep(60)")  # an open backend
        try:
            wait_until(lambda: len(c.pids("primary")) >= 6, WAIT_S, what="a backend running")
            processes = c.pids("primary")
            before = time.monotonic()
            crashed_at = c.crash("primary")
            assert before <= crashed_at <= time.monotonic()
            assert alive(processes) == [] and not c.is_up("primary")
            assert held.wait(timeout=WAIT_S) != 0  # its connection died with the instance
        finally:
            if held.poll() is None:
                held.kill()
            held.communicate()
        stopped = c.pause("r1")
        try:
            assert c.pid("r1") in stopped
            with pytest.raises(ClusterTimeoutError):
                c.sql("r1", "SELECT 1", timeout_ms=500.0)
        finally:
            c.resume("r1")
        assert c.sql("r1", "SELECT 1", timeout_ms=WAIT_MS) == [("1",)]


@pytest.mark.pg
def test_pause_wal_send_holds_back_what_the_primary_commits():
    require_pg_server()
    with LocalCluster(replicas=1) as c:
        c.sql("primary", "CREATE TABLE s (id int); INSERT INTO s VALUES (1)")
        c.wait_caught_up(timeout_ms=WAIT_MS)
        stopped = c.pause_wal_send()
        try:
            assert len(stopped) == 1
            c.sql("primary", "INSERT INTO s VALUES (2)")  # async: acknowledged at once
            time.sleep(0.3)
            assert count(c, "primary", "s") == 2 and count(c, "r1", "s") == 1
        finally:
            assert c.resume_wal_send() == stopped
        wait_until(lambda: count(c, "r1", "s") == 2, WAIT_S, what="r1 to receive the held commit")


@pytest.mark.pg
def test_failover_by_hand_then_rejoin_the_old_primary_with_pg_rewind():
    require_pg_server()
    with LocalCluster(replicas=2, mode="semi_sync") as c:
        c.sql("primary", "CREATE TABLE f (id int); INSERT INTO f VALUES (1)")
        c.wait_caught_up(timeout_ms=WAIT_MS)
        c.crash("primary")
        took_ms = c.failover("r1")
        assert took_ms > 0 and c.primary_name == "r1"
        assert c.nodes["primary"].role == "detached" and c.replica_names == ["r2"]
        assert c.sql("r1", "SHOW synchronous_standby_names") == [("ANY 1 (r2)",)]
        assert set(c.replication("r1")) == {"r2"}  # r2 follows the new primary
        c.sql("r1", "INSERT INTO f VALUES (2)")  # acknowledged by r2 (semi_sync)
        assert count(c, "r2", "f") == 2
        c.rejoin("primary")
        assert c.primary_name == "r1" and c.replica_names == ["primary", "r2"]
        conf = auto_conf(c, "primary")
        assert conf["port"] == str(c.nodes["primary"].port)
        assert conf["cluster_name"] == "'primary'"
        assert conf["primary_slot_name"] == "'primary'"
        assert "synchronous_standby_names" not in conf
        c.sql("r1", "INSERT INTO f VALUES (3)")
        c.wait_caught_up(timeout_ms=WAIT_MS)
        assert count(c, "primary", "f") == 3
        assert c.sql("primary", "SELECT pg_is_in_recovery()") == [("t",)]
        assert {row["name"]: row["role"] for row in c.status()} == {
            "primary": "replica", "r1": "primary", "r2": "replica"}


@pytest.mark.pg
def test_cli_cluster_rejoin(capsys):
    require_pg_server()
    parent, cluster_dir = new_cluster_dir("replikit-rejoin-")
    try:
        assert cli.main(["cluster", "up", "--dir", cluster_dir, "--replicas", "1"]) == 0
        c = LocalCluster.attach(cluster_dir)
        c.sql("primary", "CREATE TABLE g (id int); INSERT INTO g VALUES (1)")
        c.wait_caught_up(timeout_ms=WAIT_MS)
        c.crash("primary")
        c.promote("r1")
        c.sql("r1", "INSERT INTO g VALUES (2)")
        capsys.readouterr()
        assert cli.main(["cluster", "rejoin", "primary", "--dir", cluster_dir]) == 0
        out = capsys.readouterr().out
        assert "primary rejoined as a replica of r1" in out
        again = LocalCluster.attach(cluster_dir)
        assert again.replica_names == ["primary"] and again.primary_name == "r1"
        again.wait_caught_up(timeout_ms=WAIT_MS)
        assert count(again, "primary", "g") == 2
        assert cli.main(["cluster", "rejoin", "r1", "--dir", cluster_dir]) == 1
        assert "current primary" in capsys.readouterr().err
    finally:
        if os.path.exists(os.path.join(cluster_dir, "cluster.json")):
            cli.main(["cluster", "down", "--dir", cluster_dir])
        shutil.rmtree(parent, ignore_errors=True)
