"""FailoverManager against real clusters: a crash (the whole instance killed) under a write
workload in synchronous (ANY 1) and asynchronous mode, a short freeze that must not fail over,
a freeze that lasts, which must,
the primary and its only synchronous standby lost together, a manager that stopped between
promote and repoint, and a planned switchover. Each test prints the times it measured.
"""

from __future__ import annotations

import threading
import time

import pytest

from conftest import require_pg_server, wait_until

import replikit
from replikit import _core
from replikit.pg import database_for_cluster
from replikit.testing import ClusterSQLError, LocalCluster

pytestmark = pytest.mark.pg

WAIT_S = 30.0
SYNC_RUNS = 5


@pytest.fixture(autouse=True)
def _server():
    require_pg_server()


def fast_database(cluster):
    return database_for_cluster(cluster, probe_interval_ms=50, probe_timeout_ms=200, connect_timeout_ms=2000)


def fast_manager(db, **options):
    detector = _core.DetectorConfig(interval_ms=50, missed_threshold=3)
    return _core.FailoverManager(db, detector=detector, state_interval_ms=50, **options)


class Writer(threading.Thread):
    """Inserts ids 0, 1, ... through the database; keeps the acknowledged ones and their times."""

    def __init__(self, db, session=None):
        super().__init__(daemon=True)
        self.db, self.session = db, session or replikit.Session()
        self.acked = {}  # id -> (monotonic_ns, node)
        self.errors = 0
        self.stop_flag = threading.Event()

    def run(self):
        i = 0
        while not self.stop_flag.is_set():
            try:
                r = self.db.execute("INSERT INTO w VALUES ($1)", [i], session=self.session)
                self.acked[i] = (time.monotonic_ns(), r.node)
            except (replikit.ConnectionError, replikit.CommitUnknown, replikit.QueryError, replikit.TimeoutError):
                self.errors += 1
                time.sleep(0.002)
            i += 1
            time.sleep(0.002)

    def first_ack_after(self, t_ns, node=None):
        times = [t for t, n in self.acked.values() if t > t_ns and (node is None or n == node)]
        return min(times) if times else None

    def halt(self):
        self.stop_flag.set()
        self.join(10)


def ids_on(cluster, node):
    return {int(r[0]) for r in cluster.sql(node, "SELECT id FROM w")}


def in_recovery(cluster, node):
    return cluster.sql(node, "SELECT pg_is_in_recovery()")[0][0] == "t"


def crash_under_writes(cluster, db, manager):
    """Kills the primary instance under a running writer; returns (writer, report, kill_ns)."""
    writer = Writer(db)
    writer.start()
    wait_until(lambda: len(writer.acked) >= 50, WAIT_S, "writes before the crash")
    kill_ns = time.monotonic_ns()
    cluster.kill("primary")
    assert manager.wait_reports(1, WAIT_S * 1000)
    report = manager.reports()[0]
    assert report.promoted, report
    wait_until(lambda: writer.first_ack_after(kill_ns, report.promoted) is not None, WAIT_S,
               "a write acknowledged by the new primary")
    time.sleep(0.1)
    writer.halt()
    return writer, report, kill_ns


def test_sync_any1_crash_loses_no_acknowledged_write():
    recoveries = []
    for run in range(SYNC_RUNS):
        with LocalCluster(replicas=2, mode="sync", sync_count=1) as cluster:
            cluster.sql("primary", "CREATE TABLE w (id int primary key)")
            cluster.wait_caught_up(timeout_ms=WAIT_S * 1000)
            db = fast_database(cluster)
            manager = fast_manager(db)
            try:
                manager.start()
                time.sleep(0.3)  # the manager reads synchronous_standby_names while the primary is up
                writer, report, kill_ns = crash_under_writes(cluster, db, manager)
                first = writer.first_ack_after(kill_ns, report.promoted)
                recoveries.append((first - kill_ns) / 1e6)
                on_new = ids_on(cluster, report.promoted)
                lost = set(writer.acked) - on_new
                assert lost == set(), (run, sorted(lost)[:10], report)
                assert report.lost_writes.lost == [], report
                assert db.lost_writes(writer.session).lost == []
                other = ({"r1", "r2"} - {report.promoted}).pop()
                assert report.repointed == [other], report
                print(f"run {run}: kill -> first acknowledged write on {report.promoted}: "
                      f"{recoveries[-1]:.0f} ms; {report!r}")
            finally:
                manager.stop()
                db.close()
    print(f"sync ANY 1, {SYNC_RUNS} runs: kill -> first acknowledged write, ms: "
          f"median {sorted(recoveries)[len(recoveries) // 2]:.0f}, max {max(recoveries):.0f}")


def stop_receiver(cluster, name):
    cluster.sql(name, "ALTER SYSTEM SET primary_conninfo = ''")
    cluster.sql(name, "SELECT pg_reload_conf()")
    wait_until(lambda: cluster.sql(name, "SELECT count(*) FROM pg_stat_wal_receiver")[0][0] == "0",
               WAIT_S, f"{name}'s walreceiver to stop")


def test_async_crash_reports_exactly_the_lost_writes_and_fences_the_old_primary():
    with LocalCluster(replicas=2, mode="async") as cluster:
        cluster.sql("primary", "CREATE TABLE w (id int primary key)")
        cluster.wait_caught_up(timeout_ms=WAIT_S * 1000)
        db = fast_database(cluster)
        manager = fast_manager(db)
        try:
            s = replikit.Session()
            for i in range(10):
                db.execute("INSERT INTO w VALUES ($1)", [i], session=s)
            cluster.wait_caught_up(timeout_ms=WAIT_S * 1000)
            stop_receiver(cluster, "r1")
            stop_receiver(cluster, "r2")
            for i in range(10, 30):  # acknowledged by the primary only
                db.execute("INSERT INTO w VALUES ($1)", [i], session=s)
            xid_of = dict(zip(range(30), (w.xid for w in s.acked_writes)))
            # Started only now: its reconciliation would point the detached replicas back at the
            # primary (after a few rounds), which is its job, but not this test's.
            manager.start()
            kill_ns = time.monotonic_ns()
            cluster.kill("primary")
            assert manager.wait_reports(1, WAIT_S * 1000)
            report = manager.reports()[0]
            assert report.promoted in ("r1", "r2"), report
            new = report.promoted
            first = db.execute("INSERT INTO w VALUES (1000)", session=s)
            print(f"async: kill -> first write acknowledged by {first.node}: "
                  f"{(time.monotonic_ns() - kill_ns) / 1e6:.0f} ms; {report!r}")
            missing = set(range(30)) - ids_on(cluster, new)
            assert missing == set(range(10, 30))
            expected = sorted(xid_of[i] for i in missing)
            assert sorted(report.lost_writes.lost_xids) == expected, report
            assert sorted(db.lost_writes(s).lost_xids) == expected

            # The session's writes above the switch point are lost in LSN terms too: its next
            # read-your-writes read says so once (the manager gave the database the history).
            assert db.timeline_history.current == report.timeline
            with pytest.raises(replikit.LostWrites):
                db.query("SELECT count(*) FROM w", session=s)
            assert db.query("SELECT count(*) FROM w", session=s).rows

            # The other replica follows the new primary.
            other = ({"r1", "r2"} - {new}).pop()
            assert report.repointed == [other]
            wait_until(lambda: 1000 in ids_on(cluster, other), WAIT_S, f"{other} to replay from {new}")

            # The old primary restarted: fenced by the manager, never written to by replikit.
            cluster.start("primary")
            wait_until(lambda: cluster.sql("primary", "SHOW default_transaction_read_only") == [("on",)],
                       WAIT_S, "the manager to fence the returning old primary")
            before = ids_on(cluster, "primary")
            for i in range(1001, 1021):
                assert db.execute("INSERT INTO w VALUES ($1)", [i], session=s).node == new
            assert ids_on(cluster, "primary") == before
            with pytest.raises(ClusterSQLError, match="read-only"):
                cluster.sql("primary", "INSERT INTO w VALUES (5000)")
            assert [n for n in ("primary", "r1", "r2") if not in_recovery(cluster, n)] == ["primary", new]
            assert db.node("primary").role == replikit.Role.REPLICA and not db.node("primary").up
        finally:
            manager.stop()
            db.close()


def test_short_freeze_is_not_a_failover():
    with LocalCluster(replicas=1, mode="async") as cluster:
        db = fast_database(cluster)
        manager = fast_manager(db)
        try:
            manager.start()
            time.sleep(0.3)
            for _ in range(5):  # each shorter than half the 150 ms detection window
                cluster.freeze("primary")
                time.sleep(0.07)
                cluster.thaw("primary")
                time.sleep(0.2)
            time.sleep(0.5)
            assert manager.reports() == []
            assert not in_recovery(cluster, "primary") and in_recovery(cluster, "r1")
        finally:
            cluster.thaw("primary")
            manager.stop()
            db.close()


def test_a_frozen_primary_is_failed_over():
    # The manager reads the primary's settings every 10 ms here, so the freeze lands in one of
    # those reads: it must end by its own deadline (the server never answers), not block the
    # manager's thread until the primary comes back.
    with LocalCluster(replicas=1, mode="async") as cluster:
        db = fast_database(cluster)
        detector = _core.DetectorConfig(interval_ms=50, missed_threshold=3)
        manager = _core.FailoverManager(db, detector=detector, state_interval_ms=10)
        try:
            manager.start()
            time.sleep(0.3)
            frozen_ns = time.monotonic_ns()
            cluster.freeze("primary")
            assert manager.wait_reports(1, WAIT_S * 1000)
            report = manager.reports()[0]
            assert report.promoted == "r1", report
            print(f"freeze -> promoted: {(report.promoted_ns - frozen_ns) / 1e6:.0f} ms; {report!r}")
        finally:
            manager.stop()
            db.close()
            if cluster.is_up("primary"):
                cluster.crash("primary")  # a frozen instance would not stop cleanly


def test_primary_and_its_synchronous_standby_lost_together_promote_no_one():
    with LocalCluster(replicas=2, mode="async") as cluster:
        cluster.sql("primary", "ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 (r1)'")
        cluster.sql("primary", "SELECT pg_reload_conf()")
        wait_until(lambda: ("r1", "quorum") in cluster.sql(
            "primary", "SELECT application_name, sync_state FROM pg_stat_replication"), WAIT_S, "r1 synchronous")
        db = fast_database(cluster)
        manager = fast_manager(db, retry_interval_ms=10_000)
        try:
            manager.start()
            time.sleep(0.3)
            cluster.kill("r1")
            cluster.kill("primary")
            assert manager.wait_reports(1, WAIT_S * 1000)
            report = manager.reports()[0]
            print(repr(report))
            assert report.promoted is None, report
            assert "synchronous" in report.reason.lower(), report.reason
            reasons = {e.name: e.reason for e in report.plan.excluded}
            assert reasons["r2"] == _core.ExclusionReason.NOT_SYNCHRONOUS, report.plan
            assert in_recovery(cluster, "r2")
        finally:
            manager.stop()
            db.close()


def test_manager_stopped_between_promote_and_repoint_converges_on_restart():
    with LocalCluster(replicas=2, mode="async") as cluster:
        cluster.sql("primary", "CREATE TABLE w (id int primary key)")
        cluster.wait_caught_up(timeout_ms=WAIT_S * 1000)
        cluster.kill("primary")
        # What a manager that died right after its promotion left behind.
        assert _core.promote_node("r1", cluster.dsn("r1")).changed
        db = fast_database(cluster)
        manager = fast_manager(db)
        try:
            manager.start()
            wait_until(lambda: cluster.sql("r2", "SELECT received_tli FROM pg_stat_wal_receiver") == [("2",)],
                       WAIT_S, "r2 repointed to r1's timeline")
            assert db.execute("INSERT INTO w VALUES (1)").node == "r1"
            wait_until(lambda: ids_on(cluster, "r2") == {1}, WAIT_S, "r2 to replay r1's write")
            assert not in_recovery(cluster, "r1") and in_recovery(cluster, "r2")
            assert all(r.promoted in (None, "r1") for r in manager.reports()), manager.reports()
        finally:
            manager.stop()
            db.close()


def test_switchover_under_writes_loses_nothing():
    with LocalCluster(replicas=2, mode="async") as cluster:
        cluster.sql("primary", "CREATE TABLE w (id int primary key)")
        cluster.wait_caught_up(timeout_ms=WAIT_S * 1000)
        db = fast_database(cluster)
        manager = fast_manager(db)
        writer = Writer(db)
        try:
            writer.start()
            wait_until(lambda: len(writer.acked) >= 50, WAIT_S, "writes before the switchover")
            report = manager.switchover("r2")
            wait_until(lambda: any(n == "r2" for _, n in list(writer.acked.values())), WAIT_S, "writes on r2")
            writer.halt()
            print(f"switchover: write pause {report.write_pause_ms:.1f} ms, errors {writer.errors}; {report!r}")
            assert report.promoted == "r2", report
            assert set(writer.acked) <= ids_on(cluster, "r2")
            assert report.lost_writes.lost == []
            assert report.repointed == ["r1"]
            assert cluster.sql("primary", "SHOW default_transaction_read_only") == [("on",)]
        finally:
            writer.halt()
            db.close()


def test_cli_switchover_and_failover_manager():
    import json
    import subprocess
    import sys

    with LocalCluster(replicas=1, mode="async") as cluster:
        nodes = ["--primary", f"primary={cluster.dsn('primary')}", "--replica", f"r1={cluster.dsn('r1')}"]
        cli = [sys.executable, "-m", "replikit"]
        quiet = subprocess.run(cli + ["failover-manager", *nodes, "--duration", "0.5", "--json"],
                               capture_output=True, text=True, timeout=60)
        assert quiet.returncode == 0 and quiet.stdout == "", quiet.stderr
        done = subprocess.run(cli + ["switchover", *nodes, "--candidate", "r1", "--json"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["promoted"] == "r1" and report["kind"] == "switchover", report
        assert not in_recovery(cluster, "r1")
        bad = subprocess.run(cli + ["switchover", "--primary", "no-equals-sign"], capture_output=True, text=True,
                             timeout=60)
        assert bad.returncode == 2 and "NAME=DSN" in bad.stderr
