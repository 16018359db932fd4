"""Tests of the local PostgreSQL cluster harness (replikit.testing.LocalCluster) and its CLI.

Real-cluster tests are marked ``pg``; most share the session cluster of conftest.py and
put it back in order afterwards (``pg_cluster_reset``). Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import new_cluster_dir, require_pg_server, wait_until

import replikit
from replikit import Lsn
from replikit.testing import ClusterError, ClusterSQLError, ClusterTimeoutError, LocalCluster

WAIT_MS = 30_000.0  # generous bound for every wait: a slow machine must not fail a test
WAIT_S = WAIT_MS / 1000  # the same for the test's own waits


def alive(pids):
    """The pids of ``pids`` that are still running (zombies count as gone)."""
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


def processes_under(path: str):
    """Every live process whose command line mentions ``path``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if path.encode() in handle.read():
                        found.append(int(entry))
            except OSError:
                pass
    return alive(found)


def count(cluster, node, table):
    return int(cluster.sql(node, f"SELECT count(*) FROM {table}")[0][0])


def sync_rep_waiters(cluster):
    return int(cluster.sql("primary", "SELECT count(*) FROM pg_stat_activity "
                                      "WHERE wait_event = 'SyncRep'")[0][0])


# ------------------------------------------------------------------ no server needed
def test_errors_are_replikit_errors():
    assert issubclass(ClusterError, replikit.Error) and issubclass(ClusterError, RuntimeError)
    assert issubclass(ClusterSQLError, ClusterError)
    assert issubclass(ClusterTimeoutError, ClusterError)
    assert issubclass(ClusterTimeoutError, replikit.TimeoutError)
    assert issubclass(ClusterTimeoutError, TimeoutError)


@pytest.mark.parametrize("kwargs, argument", [
    (dict(replicas=-1), "replicas"),
    (dict(replicas=11), "replicas"),
    (dict(mode="semi-sync"), "mode"),
    (dict(mode="sync", replicas=0), "mode"),
    (dict(mode="sync", replicas=2, sync_count=3), "sync_count"),
    (dict(mode="remote_apply", replicas=2, sync_count=0), "sync_count"),
    (dict(base_port=80), "base_port"),
    (dict(startup_timeout_ms=0), "startup_timeout_ms"),
    (dict(startup_timeout_ms=float("nan")), "startup_timeout_ms"),
    (dict(extra_settings={"bad name": "1"}), "extra_settings"),
])
def test_bad_arguments_are_rejected_by_name(kwargs, argument):
    with pytest.raises(replikit.InvalidArgument, match=argument) as info:
        LocalCluster(start=False, **kwargs)
    assert info.value.argument == argument


def test_wrong_type_of_duration_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="startup_timeout_ms") as info:
        LocalCluster(start=False, startup_timeout_ms="30")
    assert info.value.argument == "startup_timeout_ms"
    with pytest.raises(TypeError, match="startup_timeout_s"), pytest.warns(DeprecationWarning):
        LocalCluster(start=False, startup_timeout_s="30")  # not turned into "30" * 1000


def test_durations_are_milliseconds_and_old_seconds_keywords_still_work():
    require_pg_server()
    with pytest.warns(DeprecationWarning,
                      match=r"LocalCluster\(\): startup_timeout_s .*startup_timeout_ms") as record:
        cluster = LocalCluster(start=False, startup_timeout_s=2.5)
    assert record[0].filename == __file__  # points at the caller
    assert cluster.startup_timeout_ms == 2500.0
    with pytest.raises(TypeError, match="startup_timeout_ms"):
        LocalCluster(start=False, startup_timeout_s=1, startup_timeout_ms=1000)
    with pytest.warns(DeprecationWarning, match="startup_ms"):
        assert cluster.startup_s is None  # not started: nothing measured


def test_import_of_the_backend_explains_how_to_get_it(monkeypatch):
    import importlib

    monkeypatch.setattr(replikit._core, "HAVE_PG", False, raising=False)
    for name in ("replikit.pg", "replikit._pgdb", "replikit.events"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.delattr(replikit, "pg", raising=False)
    monkeypatch.delattr(replikit, "events", raising=False)
    for name in ("replikit.pg", "replikit.events"):
        pattern = (name.replace(".", r"\.") + r": .*built without its PostgreSQL backend.*"
                   r"REPLIKIT_WITH_PG=OFF.*apt-get install libpq-dev pkg-config.*pip install")
        with pytest.raises(ImportError, match=pattern):
            importlib.import_module(name)


def test_local_cluster_in_replikit_pg_is_a_deprecated_alias():
    require_pg_server()
    if not replikit._core.HAVE_PG:
        pytest.skip("replikit was built without the PostgreSQL backend")
    from replikit.pg import LocalCluster as Deprecated

    with pytest.warns(DeprecationWarning, match="replikit.testing.LocalCluster"):
        cluster = Deprecated(start=False)
    assert isinstance(cluster, LocalCluster)


def test_ports_skip_5432_and_are_free():
    require_pg_server()
    cluster = LocalCluster(start=False, base_port=5430)
    ports = cluster._pick_ports(4)
    assert 5432 not in ports and len(set(ports)) == 4 and ports == sorted(ports)


# ------------------------------------------------------------------ shared cluster
@pytest.mark.pg
def test_bring_up_primary_and_two_streaming_replicas(pg_cluster):
    c = pg_cluster
    assert list(c.nodes) == ["primary", "r1", "r2"]
    ports = [n.port for n in c.nodes.values()]
    assert len(set(ports)) == 3 and 5432 not in ports
    assert c.dsn("r1") == f"host=127.0.0.1 port={c.nodes['r1'].port} dbname=postgres user=postgres"
    replication = c.replication()
    assert {name: info["state"] for name, info in replication.items()} == {
        "r1": "streaming", "r2": "streaming"}
    assert c.sql("primary", "SELECT pg_is_in_recovery()") == [("f",)]
    for name in ("r1", "r2"):
        assert c.sql(name, "SELECT pg_is_in_recovery()") == [("t",)]
        # application_name comes from cluster_name: what synchronous_standby_names matches
        assert c.sql(name, "SHOW cluster_name") == [(name,)]
    # the data lives in the cluster's own directory, not /var/lib/postgresql
    assert c.sql("primary", "SHOW data_directory") == [(c.nodes["primary"].data_dir,)]
    print(f"\n[harness] session cluster bring-up: {c.startup_ms:.0f} ms")


@pytest.mark.pg
def test_sql_returns_rows_of_strings_with_none_for_null(pg_cluster):
    rows = pg_cluster.sql("primary", "SELECT 1, NULL, '', 'a|b' UNION ALL SELECT 2, 'x', 'y', "
                                     "E'line\\nbreak' ORDER BY 1")
    assert rows == [("1", None, "", "a|b"), ("2", "x", "y", "line\nbreak")]
    assert pg_cluster.sql("primary", "SELECT 1 WHERE false") == []
    with pytest.raises(ClusterSQLError, match="no_such_table") as info:
        pg_cluster.sql("primary", "SELECT * FROM no_such_table")
    assert info.value.node == "primary"


@pytest.mark.pg
def test_write_on_primary_becomes_visible_on_replicas(pg_cluster):
    c = pg_cluster
    c.sql("primary", "DROP TABLE IF EXISTS harness_visible; "
                     "CREATE TABLE harness_visible (id int PRIMARY KEY, note text); "
                     "INSERT INTO harness_visible VALUES (1, 'hello')")
    target = c.wait_caught_up(timeout_ms=WAIT_MS)
    assert isinstance(target, Lsn) and c.current_lsn() >= target
    with pytest.warns(DeprecationWarning, match=r"wait_caught_up\(\): timeout_s .*timeout_ms"):
        assert c.wait_caught_up(timeout_s=WAIT_S) >= target  # the old keyword, in seconds
    for name in ("r1", "r2"):
        assert c.replay_lsn(name) >= target
        assert c.sql(name, "SELECT note FROM harness_visible WHERE id = 1") == [("hello",)]
        with pytest.raises(ClusterSQLError, match="read-only transaction"):
            c.sql(name, "INSERT INTO harness_visible VALUES (2, 'no')")


@pytest.mark.pg
def test_pause_replay_freezes_replica_and_resume_catches_up(pg_cluster_reset):
    c = pg_cluster_reset
    c.sql("primary", "DROP TABLE IF EXISTS harness_pause; CREATE TABLE harness_pause (id int)")
    c.wait_caught_up(timeout_ms=WAIT_MS)
    c.pause_replay("r1")
    # The pause takes hold when the startup process sees the next record.
    c.sql("primary", "INSERT INTO harness_pause VALUES (0)")
    wait_until(lambda: c.replay_pause_state("r1") == "paused", WAIT_S, what="r1 replay paused")
    frozen = c.replay_lsn("r1")
    before = count(c, "r1", "harness_pause")
    c.sql("primary", "INSERT INTO harness_pause SELECT generate_series(1, 1000)")
    primary_lsn = c.current_lsn()
    assert primary_lsn > frozen
    c.wait_caught_up(timeout_ms=WAIT_MS, replicas=["r2"])  # r2 keeps replaying
    assert count(c, "r2", "harness_pause") == 1001
    # r1 still receives the WAL but does not apply it.
    wait_until(lambda: Lsn(c.sql("r1", "SELECT pg_last_wal_receive_lsn()")[0][0])
               >= primary_lsn, WAIT_S, what="r1 to receive the new WAL")
    assert c.replay_lsn("r1") == frozen
    assert count(c, "r1", "harness_pause") == before
    c.resume_replay("r1")
    assert c.wait_caught_up(timeout_ms=WAIT_MS) >= primary_lsn
    assert c.replay_lsn("r1") >= primary_lsn
    assert count(c, "r1", "harness_pause") == 1001
    assert c.replay_pause_state("r1") == "not paused"


@pytest.mark.pg
def test_apply_delay_holds_commits_back_then_clears(pg_cluster_reset):
    c = pg_cluster_reset
    delay_s = 1.5
    c.sql("primary", "DROP TABLE IF EXISTS harness_delay; CREATE TABLE harness_delay (id int)")
    c.wait_caught_up(timeout_ms=WAIT_MS)
    c.set_apply_delay("r1", int(delay_s * 1000))
    assert c.apply_delay_ms("r1") == 1500
    started = time.monotonic()
    c.sql("primary", "INSERT INTO harness_delay VALUES (1)")
    c.wait_caught_up(timeout_ms=WAIT_MS, replicas=["r2"])
    assert count(c, "r2", "harness_delay") == 1
    seen_early = count(c, "r1", "harness_delay")
    checked_at = time.monotonic() - started
    if checked_at < delay_s:  # only meaningful while the delay cannot have elapsed
        assert seen_early == 0
    wait_until(lambda: count(c, "r1", "harness_delay") == 1, WAIT_S, what="delayed row on r1")
    visible_after = time.monotonic() - started
    print(f"\n[harness] row visible on r2 at once, on r1 after {visible_after:.2f} s "
          f"(delay {delay_s} s)")
    assert visible_after >= delay_s - 0.05
    c.clear_apply_delay("r1")
    assert c.apply_delay_ms("r1") == 0
    c.sql("primary", "INSERT INTO harness_delay VALUES (2)")
    c.wait_caught_up(timeout_ms=WAIT_MS)
    assert count(c, "r1", "harness_delay") == 2


@pytest.mark.pg
def test_kill_9_replica_then_restart_recovers_and_streams(pg_cluster_reset):
    c = pg_cluster_reset
    c.sql("primary", "DROP TABLE IF EXISTS harness_kill; CREATE TABLE harness_kill (id int)")
    processes = c.pids("r2")
    assert c.pid("r2") in processes and len(processes) >= 3  # postmaster + children
    c.kill("r2")
    assert not c.is_up("r2") and c.pid("r2") is None
    assert alive(processes) == []
    wait_until(lambda: "r2" not in c.replication(), WAIT_S, what="primary to drop r2's walsender")
    c.sql("primary", "INSERT INTO harness_kill VALUES (1)")
    log_size = os.path.getsize(c.nodes["r2"].log_file)
    c.start("r2")
    c.wait_streaming(timeout_ms=WAIT_MS)
    c.wait_caught_up(timeout_ms=WAIT_MS)
    assert count(c, "r2", "harness_kill") == 1
    with open(c.nodes["r2"].log_file, encoding="utf-8", errors="replace") as handle:
        handle.seek(log_size)
        assert "was interrupted" in handle.read()  # crash recovery, not a clean start


@pytest.mark.pg
def test_stop_and_start_primary_replicas_reconnect(pg_cluster_reset):
    c = pg_cluster_reset
    c.stop("primary")
    assert not c.is_up("primary")
    assert c.is_up("r1") and c.is_up("r2")
    c.start("primary")
    c.wait_streaming(timeout_ms=WAIT_MS)
    c.sql("primary", "DROP TABLE IF EXISTS harness_restart; CREATE TABLE harness_restart (id int);"
                     "INSERT INTO harness_restart VALUES (1)")
    c.wait_caught_up(timeout_ms=WAIT_MS)
    assert count(c, "r1", "harness_restart") == 1


@pytest.mark.pg
def test_sync_any_1_commits_with_one_standby_and_blocks_with_none(pg_cluster_reset):
    c = pg_cluster_reset
    c.sql("primary", "DROP TABLE IF EXISTS harness_sync; CREATE TABLE harness_sync (id int)")
    c.set_replication_mode("sync", sync_count=1)
    assert c.sql("primary", "SHOW synchronous_standby_names") == [("ANY 1 (r1, r2)",)]
    wait_until(lambda: {i["sync_state"] for i in c.replication().values()} == {"quorum"},
               WAIT_S, what="both standbys in the quorum")
    c.sql("primary", "INSERT INTO harness_sync VALUES (1)")
    c.stop("r1")
    c.sql("primary", "INSERT INTO harness_sync VALUES (2)", timeout_ms=WAIT_MS)  # r2 suffices
    c.stop("r2")
    blocked = c.sql_background("primary", "INSERT INTO harness_sync VALUES (3)")
    try:
        wait_until(lambda: sync_rep_waiters(c) >= 1, WAIT_S, what="a commit waiting on SyncRep")
        time.sleep(0.3)
        assert blocked.poll() is None, "the commit returned with no synchronous standby"
        with pytest.raises(ClusterTimeoutError):
            c.sql("primary", "INSERT INTO harness_sync VALUES (4)", timeout_ms=1000.0)
        # Committed locally, but not acknowledged: invisible to other sessions so far.
        assert count(c, "primary", "harness_sync") == 2
        c.start("r2")
        assert blocked.wait(timeout=WAIT_S) == 0, blocked.stderr.read()
        wait_until(lambda: count(c, "primary", "harness_sync") == 4,
                   WAIT_S, what="both held commits to complete once r2 is back")
    finally:
        if blocked.poll() is None:
            blocked.kill()
        blocked.wait()
        blocked.stdout.close()
        blocked.stderr.close()


@pytest.mark.pg
def test_attach_sees_the_same_cluster(pg_cluster):
    other = LocalCluster.attach(pg_cluster.base_dir)
    assert {n: x.port for n, x in other.nodes.items()} == {
        n: x.port for n, x in pg_cluster.nodes.items()}
    status = {row["name"]: row for row in other.status()}
    assert status["primary"]["role"] == "primary" and status["primary"]["up"]
    assert status["r1"]["role"] == "replica"
    assert status["r1"]["replication_state"] == "streaming"
    assert status["r2"]["pid"] == pg_cluster.pid("r2")


# ------------------------------------------------------------------ own clusters
@pytest.mark.pg
def test_bring_up_time_measured():
    require_pg_server()
    times = []
    for _ in range(5):
        with LocalCluster(replicas=2) as cluster:
            assert set(cluster.replication()) == {"r1", "r2"}
            times.append(cluster.startup_ms)
    print(f"\n[harness] primary + 2 streaming replicas bring-up, 5 runs: "
          f"{', '.join(f'{t:.0f}' for t in times)} ms; median {statistics.median(times):.0f} ms")


@pytest.mark.pg
def test_remote_apply_mode_makes_commits_visible_on_standbys():
    require_pg_server()
    with LocalCluster(replicas=2, mode="remote_apply", sync_count=2) as c:
        assert c.sql("primary", "SHOW synchronous_commit") == [("remote_apply",)]
        assert c.sql("primary", "SHOW synchronous_standby_names") == [("ANY 2 (r1, r2)",)]
        c.sql("primary", "CREATE TABLE ra (id int); INSERT INTO ra VALUES (1)")
        # No waiting: the commit returned only after both standbys applied it.
        assert count(c, "r1", "ra") == 1 and count(c, "r2", "ra") == 1
        c.pause_replay("r1")
        held = c.sql_background("primary", "INSERT INTO ra VALUES (2)")
        try:
            wait_until(lambda: sync_rep_waiters(c) >= 1, WAIT_S,
                       what="commit waiting for r1's apply")
            time.sleep(0.3)
            assert held.poll() is None, "remote_apply commit returned while r1 replay paused"
            c.resume_replay("r1")
            assert held.wait(timeout=WAIT_S) == 0
            assert count(c, "r1", "ra") == 2 and count(c, "r2", "ra") == 2
        finally:
            if held.poll() is None:
                held.kill()
            held.communicate()


@pytest.mark.pg
def test_context_manager_cleans_up_after_a_failure():
    require_pg_server()
    with pytest.raises(RuntimeError, match="test failure"):
        with LocalCluster(replicas=1) as c:
            processes = c.pids()
            base_dir = c.base_dir
            assert len(processes) >= 4 and os.path.isdir(base_dir)
            raise RuntimeError("test failure")
    assert alive(processes) == []
    assert processes_under(base_dir) == []
    assert not os.path.exists(base_dir)


@pytest.mark.pg
def test_atexit_stops_a_cluster_the_process_forgot():
    require_pg_server()
    script = textwrap.dedent("""
        import json
        from replikit.testing import LocalCluster
        c = LocalCluster(replicas=1)
        print(json.dumps({"pids": c.pids(), "dir": c.base_dir}))
        # no close(): the atexit hook must stop everything
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=True)
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(info["pids"]) >= 4
    assert alive(info["pids"]) == []
    assert not os.path.exists(info["dir"])


@pytest.mark.pg
def test_startup_failure_raises_with_server_log_and_leaves_nothing():
    require_pg_server()
    parent, base_dir = new_cluster_dir("replikit-fail-")
    try:
        with pytest.raises(ClusterError, match=r"failed to start(.|\n)*shared_buffers"):
            LocalCluster(base_dir, replicas=1, extra_settings={"shared_buffers": "'lots'"})
        assert processes_under(base_dir) == []
    finally:
        import shutil

        shutil.rmtree(os.path.dirname(base_dir), ignore_errors=True)


@pytest.mark.pg
def test_cli_up_status_down_round_trip():
    require_pg_server()
    parent, cluster_dir = new_cluster_dir("replikit-cli-")

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "replikit", "cluster", *args,
                               "--dir", cluster_dir], capture_output=True, text=True,
                              timeout=120)

    try:
        up = cli("up", "--replicas", "1")
        assert up.returncode == 0, up.stderr
        assert "primary  host=127.0.0.1 port=" in up.stdout
        assert "r1       host=127.0.0.1 port=" in up.stdout
        print(f"\n[harness] {up.stdout.splitlines()[0]}")
        # The nodes outlived the `up` process.
        handle = LocalCluster.attach(cluster_dir)
        processes = handle.pids()
        assert handle.sql("r1", "SELECT pg_is_in_recovery()") == [("t",)]

        again = cli("up")
        assert again.returncode == 1 and "already holds a running cluster" in again.stderr

        status = cli("status", "--json")
        assert status.returncode == 0, status.stderr
        nodes = {row["name"]: row for row in json.loads(status.stdout)["nodes"]}
        assert nodes["primary"]["up"] and nodes["primary"]["role"] == "primary"
        assert nodes["r1"]["up"] and nodes["r1"]["replication_state"] == "streaming"
        text = cli("status")
        assert text.returncode == 0 and "streaming" in text.stdout and "r1" in text.stdout

        down = cli("down")
        assert down.returncode == 0, down.stderr
        assert not os.path.exists(cluster_dir)
        assert alive(processes) == []
        gone = cli("status")
        assert gone.returncode == 1 and "no replikit cluster" in gone.stderr
    finally:
        if os.path.exists(os.path.join(cluster_dir, "cluster.json")):
            LocalCluster.attach(cluster_dir).close(remove_dir=True)
        import shutil

        shutil.rmtree(parent, ignore_errors=True)
