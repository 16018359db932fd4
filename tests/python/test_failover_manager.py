"""FailoverManager against real clusters, every write workload recorded as a history and
judged by the history checker (tests/checker/failover.py: which node acknowledged each write,
on which server timeline and client epoch; nothing acknowledged lost, at most one writable
primary per epoch and per timeline, no write taken by a deposed primary).

A crash (the whole instance killed) under writes in synchronous (ANY 1) mode, REPLIKIT_FAILOVER_SYNC_RUNS
runs (default 5; run 50 by hand: ``REPLIKIT_FAILOVER_SYNC_RUNS=50 .venv/bin/python -m pytest
tests/python/test_failover_manager.py -k sync_any1 -s``); in asynchronous mode with the WAL
senders stalled before the crash, so acknowledged writes are lost and the report must name
exactly those missing on the new primary; jittered and short freezes that must not fail over,
a freeze that lasts, which must (also under writes, the old primary thawed afterwards); the
primary and its only synchronous standby lost together; a
manager process killed between promote and repoint. Planned switchovers are in
test_switchover.py. Each test prints the times it measured.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest

from conftest import require_pg_server, wait_until
from failover_helpers import WAIT_S, history, history_cluster, in_recovery, judged

import replikit
from replikit import _core
from replikit.pg import database_for_cluster
from replikit.testing import ClusterSQLError, LocalCluster

pytestmark = pytest.mark.pg

SYNC_RUNS = int(os.environ.get("REPLIKIT_FAILOVER_SYNC_RUNS", "5"))

@pytest.fixture(autouse=True)
def _server():
    require_pg_server()


def ids_on(cluster, node):
    return {int(r[0]) for r in cluster.sql(node, "SELECT id FROM w")}


def read_only(cluster, node):
    """True once ``node`` refuses writes; False while the manager's fence ends our session."""
    try:
        return cluster.sql(node, "SHOW default_transaction_read_only") == [("on",)]
    except ClusterSQLError:
        return False


def crash_under_writes(setup, before_crash=None):
    """Kills the primary instance of a history_cluster() under its running writer; returns
    (writer, report, kill_ns). ``before_crash(writer)`` runs once the writer has 50
    acknowledged writes."""
    cluster, manager, writer = setup.cluster, setup.manager, setup.writer
    writer.start()
    wait_until(lambda: len(writer.acked) >= 50, WAIT_S, "writes before the crash")
    if before_crash is not None:
        before_crash(writer)
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
    recoveries, acked = [], 0
    for run in range(SYNC_RUNS):
        with history_cluster(replicas=2, mode="sync", sync_count=1) as setup:
            cluster, db = setup.cluster, setup.db
            setup.manager.start()
            time.sleep(0.3)  # the manager reads synchronous_standby_names while the primary is up
            writer, report, kill_ns = crash_under_writes(setup)
            first = writer.first_ack_after(kill_ns, report.promoted)
            recoveries.append((first - kill_ns) / 1e6)
            acked += len(writer.acked)
            # The history: every acknowledged write on the new primary, one writable primary
            # per epoch and per timeline, none taken by the old primary after the new one.
            ops, violations = judged(cluster, writer, report.promoted)
            assert violations == [], (run, violations[:5], history.describe(ops))
            shape = history.describe(ops)
            assert shape["timelines"] == {1: ["primary"], 2: [report.promoted]}, shape
            assert report.lost_writes.lost == [], report
            assert db.lost_writes(writer.session).lost == []
            other = ({"r1", "r2"} - {report.promoted}).pop()
            assert report.repointed == [other], report
            print(f"run {run}: kill -> first acknowledged write on {report.promoted}: "
                  f"{recoveries[-1]:.0f} ms; writes {shape['writes']}; {report!r}")
    print(f"sync ANY 1, {SYNC_RUNS} runs, {acked} acknowledged writes, 0 lost: kill -> first "
          f"acknowledged write, ms: median {sorted(recoveries)[len(recoveries) // 2]:.0f}, "
          f"max {max(recoveries):.0f}")


def test_async_crash_reports_exactly_the_lost_writes_and_fences_the_old_primary():
    with history_cluster(replicas=2, mode="async") as setup:
        cluster, db = setup.cluster, setup.db
        setup.manager.start()
        time.sleep(0.3)

        reader = []  # a session whose one write is lost, and that reads next

        def stall_replication(writer):
            # The WAL senders stop: the primary keeps acknowledging (async) writes that no
            # replica receives; the crash loses them.
            assert len(cluster.pause_wal_send("primary")) == 2
            reader.append(replikit.Session())
            db.execute("INSERT INTO w VALUES (-2)", session=reader[0])
            count = len(writer.acked)
            wait_until(lambda: len(writer.acked) >= count + 30, WAIT_S, "writes on the primary alone")

        writer, report, kill_ns = crash_under_writes(setup, stall_replication)
        new = report.promoted
        ops, violations = judged(cluster, writer, new)
        print(f"async: {history.describe(ops)}; {report!r}")
        lost = history.lost_xids(violations, ops)
        # The history checker's lost writes (acknowledged, missing on the new primary, read
        # with psql) are exactly the ones the manager and the database report.
        assert [v for v in violations if v["kind"] != "lost"] == [], violations[:5]
        assert len(lost) >= 30, lost
        assert sorted(db.lost_writes(writer.session).lost_xids) == lost
        reader_lost = db.lost_writes(reader[0]).lost_xids
        assert len(reader_lost) == 1  # its one write, acknowledged during the stall
        assert sorted(report.lost_writes.lost_xids) == sorted(lost + reader_lost), report

        # A session whose write above the switch point was lost learns it on its next
        # read-your-writes read, once (the manager gave the database the history).
        assert db.timeline_history.current == report.timeline
        with pytest.raises(replikit.LostWrites):
            db.query("SELECT count(*) FROM w", session=reader[0])
        assert db.query("SELECT count(*) FROM w", session=reader[0]).rows

        # The other replica follows the new primary.
        other = ({"r1", "r2"} - {new}).pop()
        assert report.repointed == [other]
        top = max(writer.acked)
        wait_until(lambda: top in ids_on(cluster, other), WAIT_S, f"{other} to replay from {new}")

        # The old primary restarted under the same writer: fenced by the manager, it never
        # takes a write (by the history checker and by its own table).
        cluster.start("primary")
        wait_until(lambda: read_only(cluster, "primary"), WAIT_S, "the manager to fence the returning old primary")
        before = ids_on(cluster, "primary")
        again = setup.new_writer(name="w1", session=writer.session, first_id=10**6)
        again.start()
        wait_until(lambda: len(again.acked) >= 50, WAIT_S, "writes after the old primary's return")
        again.halt()
        history.read_back(cluster, new, again.history, first_id=10**6)
        rest = again.history.ops()
        assert history.check(rest) == [], history.check(rest)[:5]
        assert {op.served for op in rest if op.f == "write" and op.type == "ok"} == {new}, history.describe(rest)
        assert ids_on(cluster, "primary") == before
        with pytest.raises(ClusterSQLError, match="read-only"):
            cluster.sql("primary", "INSERT INTO w VALUES (-1)")
        assert [n for n in ("primary", "r1", "r2") if not in_recovery(cluster, n)] == ["primary", new]
        assert db.node("primary").role == replikit.Role.REPLICA and not db.node("primary").up

        # The old primary rejoins as a replica of the new one with pg_rewind (its lost writes
        # rewound away) and streams what the new primary took.
        cluster.adopt_promotion(new)
        cluster.rejoin("primary")
        assert in_recovery(cluster, "primary") and set(cluster.replication(new)) == {"primary", other}
        on_new = ids_on(cluster, new)
        wait_until(lambda: ids_on(cluster, "primary") == on_new, WAIT_S,
                   "the old primary to hold exactly the new primary's rows")


def signal_all(pids, signum):
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def test_jittered_and_short_freezes_are_not_a_failover():
    # Heartbeat delays: the primary SIGSTOPped for random spells of up to half the 150 ms
    # detection window (50 ms x 3), then a few of 60-80 % of the window (measured from the
    # first SIGSTOP to the last SIGCONT, printed); never a promotion.
    seed = int(os.environ.get("REPLIKIT_FREEZE_SEED", "9009"))
    rng = random.Random(seed)
    print(f"freeze seed {seed} (replay: REPLIKIT_FREEZE_SEED={seed})")
    with history_cluster(replicas=1, mode="async") as setup:
        cluster, manager, writer = setup.cluster, setup.manager, setup.writer
        spells = []
        try:
            manager.start()
            writer.start()
            time.sleep(0.3)
            window_ms = 150.0
            for k in range(22):
                hold_ms = rng.uniform(0.0, window_ms / 2) if k < 16 else rng.uniform(0.6, 0.8) * window_ms
                pids = cluster.pids("primary")  # listed first: the spell is only the signals and the sleep
                began = time.monotonic()
                signal_all(pids, signal.SIGSTOP)
                time.sleep(max(0.0, hold_ms / 1000 - (time.monotonic() - began)))
                signal_all(pids, signal.SIGCONT)
                spells.append(round((time.monotonic() - began) * 1000))
                time.sleep(rng.uniform(0.1, 0.3))
            time.sleep(0.5)
            writer.halt()
            print(f"freezes (ms): {spells}; {history.describe(writer.history.ops())}")
            assert manager.reports() == []
            assert not in_recovery(cluster, "primary") and in_recovery(cluster, "r1")
            ops, violations = judged(cluster, writer, "primary")
            assert violations == [], violations[:5]
        finally:
            cluster.thaw("primary")


def test_a_frozen_primary_is_failed_over():
    # The manager reads the primary's settings every 10 ms here, so the freeze lands in one of
    # those reads: it must end by its own deadline (the server never answers), not block the
    # manager's thread until the primary comes back.
    with history_cluster(replicas=1, mode="async", sql=(), manager={"state_interval_ms": 10}) as setup:
        cluster, manager = setup.cluster, setup.manager
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
            if cluster.is_up("primary"):
                cluster.crash("primary")  # a frozen instance would not stop cleanly


def test_a_hang_under_writes_then_the_old_primary_thawed_keeps_one_primary():
    # The hard case for "one writable primary": a frozen primary is not fenced (it cannot
    # answer) and a write may be in flight on it. Thawed after the new primary took writes,
    # it must not acknowledge anything (the manager fences it when it answers again). The
    # write in flight on it ends as soon as the failover deposes it, with the default
    # statement timeout (30 s): within a second of the promotion, its outcome unknown or failed.
    with history_cluster(replicas=2, mode="async") as setup:
        cluster, manager, writer = setup.cluster, setup.manager, setup.writer
        try:
            manager.start()
            time.sleep(0.3)
            writer.start()
            wait_until(lambda: len(writer.acked) >= 50, WAIT_S, "writes before the freeze")
            frozen_ns = time.monotonic_ns()
            cluster.freeze("primary")
            assert manager.wait_reports(1, WAIT_S * 1000)
            report = manager.reports()[0]
            assert report.promoted in ("r1", "r2"), report
            wait_until(lambda: writer.first_ack_after(frozen_ns, report.promoted) is not None, WAIT_S,
                       "a write acknowledged by the new primary")
            # The write in flight on the frozen primary (there is one: the writer never stops).
            blocked = [op for op in writer.history.ops()
                       if op.f == "write" and op.t1 is not None and op.t1 > frozen_ns and op.type != "ok"]
            assert blocked, "no write was in flight on the frozen primary"
            ended_ms = (blocked[0].t1 - report.promoted_ns) / 1e6
            print(f"hang: promotion -> the write in flight ended: {ended_ms:.0f} ms ({blocked[0].error})")
            assert ended_ms < 1000
            assert blocked[0].error.startswith(("CommitUnknown", "ConnectionError")), blocked[0].error
            assert "deposed" in blocked[0].error
            time.sleep(0.2)
            cluster.thaw("primary")
            wait_until(lambda: read_only(cluster, "primary"), WAIT_S, "the manager to fence the thawed old primary")
            time.sleep(0.3)
            writer.halt()
            ops, violations = judged(cluster, writer, report.promoted)
            print(f"hang: {history.describe(ops)}; {report!r}")
            # Async: a write acknowledged at the instant of the freeze may not have been sent
            # to any replica; such a loss must be exactly the one the failover reported.
            assert [v for v in violations if v["kind"] != "lost"] == [], violations[:5]
            assert sorted(report.lost_writes.lost_xids) == history.lost_xids(violations, ops), report
        finally:
            cluster.thaw("primary")


def test_primary_and_its_synchronous_standby_lost_together_promote_no_one():
    with history_cluster(replicas=2, mode="async", manager={"retry_interval_ms": 10_000},
                         sql=("ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 (r1)'",
                              "SELECT pg_reload_conf()")) as setup:
        cluster, manager = setup.cluster, setup.manager
        wait_until(lambda: ("r1", "quorum") in cluster.sql(
            "primary", "SELECT application_name, sync_state FROM pg_stat_replication"), WAIT_S, "r1 synchronous")
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


RECORD_SCHEMA = ("CREATE TABLE replikit_failover_history (timeline integer PRIMARY KEY, promoted text "
                 "NOT NULL, next_xid xid8, at timestamptz NOT NULL DEFAULT now())")


def test_manager_killed_between_promote_and_repoint_converges_on_restart():
    # The manager runs as its own process (`replikit failover-manager`). A prepared, uncommitted
    # failover record for timeline 2, replayed by the replicas, makes the new primary's record
    # insert (the step after the promotion) wait for the action timeout: the manager is killed
    # there with -9, after promote and before repoint. A manager started again must converge.
    held = ("BEGIN; INSERT INTO replikit_failover_history (timeline, promoted) "
            "VALUES (2, 'held'); PREPARE TRANSACTION 'held_record'")
    # The application's database, no manager in this process.
    with history_cluster(replicas=2, mode="sync", sync_count=1, extra_settings={"max_prepared_transactions": "4"},
                         sql=(history.SCHEMA + "; " + RECORD_SCHEMA, held), manager=False) as setup:
        cluster, writer = setup.cluster, setup.writer
        nodes = ["--primary", f"primary={cluster.dsn('primary')}"]
        for name in ("r1", "r2"):
            nodes += ["--replica", f"{name}={cluster.dsn(name)}"]
        proc = subprocess.Popen([sys.executable, "-m", "replikit", "failover-manager", *nodes,
                                 "--interval-ms", "50", "--json"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            # The manager process up (its prober beside the writer's database's), then a few of its
            # rounds: it reads synchronous_standby_names while the primary is up.
            probers = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'replikit_prober'"
            wait_until(lambda: int(cluster.sql("primary", probers)[0][0]) >= 2, WAIT_S, "the manager process")
            time.sleep(0.3)
            writer.start()
            wait_until(lambda: len(writer.acked) >= 50, WAIT_S, "writes before the crash")
            kill_ns = time.monotonic_ns()
            cluster.kill("primary")
            new = wait_until(lambda: next((n for n in ("r1", "r2") if not in_recovery(cluster, n)), None),
                             WAIT_S, "a promotion")
            proc.send_signal(signal.SIGKILL)
            out, err = proc.communicate(timeout=WAIT_S)
            other = ({"r1", "r2"} - {new}).pop()
            assert out == "", (out, err)  # no report: it died mid-failover
            assert f"port={cluster.nodes['primary'].port}" in cluster.sql(other, "SHOW primary_conninfo")[0][0]
            assert cluster.sql(new, "SELECT count(*) FROM replikit_failover_history WHERE timeline = 2 "
                                    "AND promoted = %s" % f"'{new}'") == [("0",)]
            # The new primary is synchronous already (keep_synchronous: set before the promotion)
            # and its survivor not repointed: the rollback's abort record would wait for it.
            with psycopg.connect(cluster.dsn(new), autocommit=True, connect_timeout=5) as conn:
                conn.execute("SET synchronous_commit = local")
                conn.execute("ROLLBACK PREPARED 'held_record'")
            assert cluster.sql(new, "SHOW synchronous_standby_names") == [(f'ANY 1 ("{other}")',)]

            manager = setup.new_manager(setup.new_database())
            manager.start()
            wait_until(lambda: cluster.sql(other, "SELECT received_tli FROM pg_stat_wal_receiver") == [("2",)],
                       WAIT_S, f"{other} repointed to {new}'s timeline")
            wait_until(lambda: cluster.sql(new, "SELECT promoted FROM replikit_failover_history "
                                                "WHERE timeline = 2") == [(new,)], WAIT_S, "the record")
            wait_until(lambda: writer.first_ack_after(kill_ns, new) is not None, WAIT_S,
                       f"a write acknowledged by {new}")
            time.sleep(0.1)
            writer.halt()
            top = max(writer.acked)
            wait_until(lambda: top in ids_on(cluster, other), WAIT_S, f"{other} to replay {new}'s writes")
            assert [n for n in ("r1", "r2") if not in_recovery(cluster, n)] == [new]
            assert all(r.promoted in (None, new) for r in manager.reports()), manager.reports()
            assert cluster.sql(new, "SHOW synchronous_standby_names") == [(f'ANY 1 ("{other}")',)]
            ops, violations = judged(cluster, writer, new)
            print(f"killed between promote and repoint: {history.describe(ops)}")
            assert violations == [], violations[:5]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def _lines_of(stream):
    """A queue fed with the lines of ``stream`` by a daemon thread (reads with a timeout)."""
    lines = queue.Queue()

    def pump():
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def test_the_managers_own_stall_is_not_a_failover_and_a_death_during_one_still_is():
    # The manager as its own process (`replikit failover-manager`, 50 ms x 3: a 150 ms
    # window), SIGSTOPped for 1.7 s and 0.4 s (the etcd test's leader stalled 1.685 s): on
    # resume its own stall must not count as silence of the healthy primary (which its
    # prober has not probed meanwhile). No report, the primary neither fenced nor replaced.
    # Then the primary is killed during a third stall: failed over soon after the resume.
    with LocalCluster(replicas=1, mode="async") as cluster:
        nodes = ["--primary", f"primary={cluster.dsn('primary')}", "--replica", f"r1={cluster.dsn('r1')}"]
        proc = subprocess.Popen([sys.executable, "-m", "replikit", "failover-manager", *nodes,
                                 "--interval-ms", "50", "--json"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        try:
            lines = _lines_of(proc.stdout)
            wait_until(lambda: cluster.sql("primary", "SELECT count(*) FROM pg_stat_activity "
                                                      "WHERE application_name = 'replikit_prober'") != [("0",)],
                       WAIT_S, "the manager's prober")
            time.sleep(0.5)  # its manager thread runs rounds
            for stall_s in (1.7, 0.4):
                proc.send_signal(signal.SIGSTOP)
                time.sleep(stall_s)
                proc.send_signal(signal.SIGCONT)
                time.sleep(1.0)  # several windows of rounds after the resume
            assert proc.poll() is None
            assert lines.empty(), lines.get()
            assert not in_recovery(cluster, "primary") and in_recovery(cluster, "r1")
            assert cluster.sql("primary", "SHOW default_transaction_read_only") == [("off",)]
            proc.send_signal(signal.SIGSTOP)
            cluster.kill("primary")
            time.sleep(0.5)
            resumed_ns = time.monotonic_ns()
            proc.send_signal(signal.SIGCONT)
            report = json.loads(lines.get(timeout=WAIT_S))
            took_ms = (time.monotonic_ns() - resumed_ns) / 1e6
            print(f"stalls 1.7 s and 0.4 s: no failover; primary killed in a stall: "
                  f"report {took_ms:.0f} ms after the resume: {report}")
            assert report["promoted"] == "r1", report
            wait_until(lambda: not in_recovery(cluster, "r1"), WAIT_S, "r1 promoted")
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
            proc.wait(timeout=WAIT_S)


def test_a_database_gets_its_own_failover_manager_in_one_line():
    with pytest.raises(replikit.ArgumentTypeError) as e:
        replikit.pg.ReplicatedDatabase(("p", "host=127.0.0.1 port=1"), failover="yes")
    assert e.value.argument == "failover"
    with LocalCluster(replicas=1, mode="async") as cluster:
        cluster.sql("primary", history.SCHEMA)
        other = database_for_cluster(cluster)
        manager = other.start_failover_manager(action_timeout_ms=1000)
        assert manager.running and manager.action_timeout_ms == 1000
        assert other.failover_manager is manager
        other.close()
        assert not manager.running  # close() stopped it first

        detector = _core.DetectorConfig(interval_ms=50, missed_threshold=3)
        db = database_for_cluster(cluster, probe_interval_ms=50, probe_timeout_ms=200, failover=detector)
        try:
            manager = db.failover_manager
            assert manager is not None and manager.running
            with pytest.raises(replikit.InvalidArgument) as e:
                db.start_failover_manager()
            assert e.value.argument == "failover"
            db.execute("INSERT INTO w VALUES (1)")
            cluster.wait_caught_up(timeout_ms=WAIT_S * 1000)
            cluster.kill("primary")
            assert manager.wait_reports(1, WAIT_S * 1000)
            assert manager.reports()[0].promoted == "r1", manager.reports()
            assert db.execute("INSERT INTO w VALUES (2)").node == "r1"
        finally:
            db.close()
        assert not manager.running and len(manager.reports()) == 1
