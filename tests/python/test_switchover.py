"""Planned switchovers (FailoverManager.switchover) against real clusters: under writes, judged
by the history checker (tests/checker/failover.py: nothing acknowledged lost, one writable
primary per epoch and per timeline); under reads in flight on the old primary, drained, or cut
at max_drain_ms (at most half the database's acquire_timeout_ms), each counted;
and the `replikit switchover` CLI. The setup is failover_helpers.history_cluster(). Each test prints
the times it measured.
"""

from __future__ import annotations

import threading

import pytest

from conftest import require_pg_server, wait_until
from failover_helpers import WAIT_S, history, history_cluster, in_recovery, judged

import replikit
from replikit import _core
from replikit.testing import LocalCluster

pytestmark = pytest.mark.pg


@pytest.fixture(autouse=True)
def _server():
    require_pg_server()


def test_switchover_under_writes_loses_nothing():
    with history_cluster(replicas=2, mode="async") as setup:
        cluster, manager, writer = setup.cluster, setup.manager, setup.writer
        writer.start()
        wait_until(lambda: len(writer.acked) >= 50, WAIT_S, "writes before the switchover")
        report = manager.switchover("r2")
        wait_until(lambda: any(n == "r2" for _, n in list(writer.acked.values())), WAIT_S, "writes on r2")
        writer.halt()
        times = sorted(t for t, _ in writer.acked.values())
        gap_ms = max(b - a for a, b in zip(times, times[1:])) / 1e6
        print(f"switchover: write pause {report.write_pause_ms:.1f} ms (the manager's), longest gap "
              f"between acknowledged writes {gap_ms:.1f} ms (the client's), errors {writer.errors}; "
              f"{report!r}")
        assert report.promoted == "r2", report
        assert report.write_pause_ms > 0
        ops, violations = judged(cluster, writer, "r2")
        assert violations == [], violations[:5]
        assert history.describe(ops)["timelines"] == {1: ["primary"], 2: ["r2"]}
        assert report.lost_writes.lost == []
        assert report.repointed == ["r1"]
        assert cluster.sql("primary", "SHOW default_transaction_read_only") == [("on",)]


class Reader(threading.Thread):
    """Runs ``sql`` through ``db`` at ``consistency`` until halted; counts what succeeded (by
    node) and keeps every error."""

    def __init__(self, db, sql, consistency):
        super().__init__(daemon=True)
        self.db, self.sql, self.consistency = db, sql, consistency
        self.served = {}
        self.errors = []
        self.stop_flag = threading.Event()

    def run(self):
        while not self.stop_flag.is_set():
            try:
                node = self.db.query(self.sql, consistency=self.consistency).node
                self.served[node] = self.served.get(node, 0) + 1
            except replikit.Error as e:
                self.errors.append(f"{type(e).__name__}: {e}")

    def halt(self):
        self.stop_flag.set()
        self.join(WAIT_S)


def test_switchover_drains_the_reads_in_flight_on_the_old_primary():
    # Before the drain, the switchover waited for the old primary to have nothing in flight
    # while new strong reads kept arriving there, then fenced it under them: every read in
    # flight was cut, and the catch-up wait had no time left (no promotion).
    with history_cluster(replicas=2, mode="async", manager={"max_drain_ms": 4000}) as setup:
        cluster, db, manager, writer = setup.cluster, setup.db, setup.manager, setup.writer
        strong = [Reader(db, "SELECT pg_sleep(0.3)", "strong") for _ in range(4)]
        ryw = [Reader(db, "SELECT pg_sleep(0.05)", "read_your_writes") for _ in range(2)]
        old = db.topology.index_of("primary")
        try:
            for t in strong + ryw + [writer]:
                t.start()
            wait_until(lambda: db.topology.info(old).outstanding >= 4, WAIT_S, "strong reads in flight")
            report = manager.switchover("r2")
            wait_until(lambda: all(r.served.get("r2") for r in strong), WAIT_S, "strong reads served by r2")
            for t in strong + ryw + [writer]:
                t.halt()
            print(f"switchover under reads: drained {report.drained_in_flight}, cut {report.cut_in_flight} "
                  f"in {report.drain_ms:.1f} ms; writes paused {report.write_pause_ms:.1f} ms, writer errors "
                  f"{writer.errors}; strong reads by node {[r.served for r in strong]}; {report!r}")
            assert report.promoted == "r2", report
            assert [r.errors for r in strong + ryw] == [[]] * 6
            # The 4 strong reads (and a write, when one was in flight); a reader caught between two
            # reads at the hold is held instead, not drained.
            assert report.drained_in_flight >= 3 and report.cut_in_flight == 0, report
            assert 0 < report.drain_ms <= report.write_pause_ms
            assert "drain_ms=" in repr(report) and repr(report).endswith(")"), repr(report)
            ops, violations = judged(cluster, writer, "r2")
            assert violations == [], violations[:5]
            assert report.lost_writes.lost == []
            assert db.topology.info(old).outstanding == 0
        finally:
            for t in strong + ryw:
                t.halt()


def switchover_under_a_long_read(db, manager):
    """A switchover to r1 while a 20 s strong read is in flight on the primary: (report, outcome),
    outcome holding the read's "node" or its "error"."""
    outcome = {}

    def long_read():
        try:
            outcome["node"] = db.query("SELECT pg_sleep(20)", consistency="strong").node
        except replikit.Error as e:
            outcome["error"] = e

    reader = threading.Thread(target=long_read, daemon=True)
    reader.start()
    old = db.topology.index_of("primary")
    wait_until(lambda: db.topology.info(old).outstanding == 1, WAIT_S, "the long read in flight")
    report = manager.switchover("r1")
    reader.join(WAIT_S)
    print(f"switchover under a long read: {outcome}; {report!r}")
    return report, outcome


def test_switchover_cuts_a_read_that_outlasts_max_drain_ms_and_counts_it():
    assert _core.FailoverManager.__init__.__doc__ and "max_drain_ms" in _core.FailoverManager.__init__.__doc__
    with history_cluster(replicas=1, mode="async", sql=(), manager=False) as setup:
        db = setup.db
        assert _core.FailoverManager(db).max_drain_ms == 2000.0  # FailoverManagerOptions' default
        with pytest.raises(replikit.InvalidArgument) as e:
            _core.FailoverManager(db, max_drain_ms=-1)
        assert e.value.argument == "max_drain_ms"
        with pytest.raises(replikit.ArgumentTypeError) as e:
            _core.FailoverManager(db, max_drain_ms="1s")
        assert e.value.argument == "max_drain_ms"
        manager = setup.new_manager(max_drain_ms=200)
        assert manager.max_drain_ms == 200
        report, outcome = switchover_under_a_long_read(db, manager)
        assert report.promoted == "r1", report
        assert (report.drained_in_flight, report.cut_in_flight) == (0, 1), report
        assert report.drain_ms >= 200
        assert isinstance(outcome.get("error"), replikit.ConnectionError), outcome
        assert db.query("SELECT 1", consistency="strong").node == "r1"


def test_switchover_counts_each_call_drained_and_each_cut():
    # Three short calls (two strong reads, a write) and a long read in flight at the hold: the
    # drain counts the three that ended (by their ends, not by the most seen in flight at once,
    # which a call that backs out of the hold would inflate) and the one the fence cut.
    with history_cluster(replicas=1, mode="async", sql=(), manager={"max_drain_ms": 4000}) as setup:
        db, manager = setup.db, setup.manager
        outcome = {}

        def call(key, run):
            try:
                outcome[key] = run().node
            except replikit.Error as e:
                outcome[key] = e

        calls = {
            "read1": lambda: db.query("SELECT pg_sleep(1.5)", consistency="strong"),
            "read2": lambda: db.query("SELECT pg_sleep(1.5)", consistency="strong"),
            "write": lambda: db.execute("SELECT pg_sleep(1.5)"),
            "long": lambda: db.query("SELECT pg_sleep(30)", consistency="strong"),
        }
        threads = [threading.Thread(target=call, args=item, daemon=True) for item in calls.items()]
        for t in threads:
            t.start()
        old = db.topology.index_of("primary")
        wait_until(lambda: db.topology.info(old).outstanding == 4, WAIT_S, "four calls in flight")
        report = manager.switchover("r1")
        for t in threads:
            t.join(WAIT_S)
        print(f"drained and cut: {outcome}; {report!r}")
        assert report.promoted == "r1", report
        assert (report.drained_in_flight, report.cut_in_flight) == (3, 1), report
        assert [outcome[k] for k in ("read1", "read2", "write")] == ["primary"] * 3, outcome
        assert isinstance(outcome["long"], replikit.ConnectionError), outcome
        assert db.topology.info(old).outstanding == 0


def test_a_short_acquire_timeout_shortens_the_drain_and_builds_any_manager():
    # Calls a switchover holds wait at most acquire_timeout_ms, and the fence, the catch-up and
    # the promotion follow the drain: the drain takes at most half of it, whatever max_drain_ms.
    # A database with a short (or zero) acquire_timeout_ms still takes a manager, defaults included.
    for acquire_ms in (0, 1000, 2000):
        db = replikit.pg.ReplicatedDatabase(("p", "host=127.0.0.1 port=1"), acquire_timeout_ms=acquire_ms)
        try:
            assert _core.FailoverManager(db).max_drain_ms == 2000.0
            assert _core.FailoverManager(db, max_drain_ms=0).max_drain_ms == 0
        finally:
            db.close()
    with history_cluster(replicas=1, mode="async", sql=(), database={"acquire_timeout_ms": 1000},
                         manager={"max_drain_ms": 4000}) as setup:
        db, manager = setup.db, setup.manager
        report, outcome = switchover_under_a_long_read(db, manager)
        assert report.promoted == "r1", report
        assert (report.drained_in_flight, report.cut_in_flight) == (0, 1), report
        assert 500 <= report.drain_ms < 4000, report
        assert isinstance(outcome.get("error"), replikit.ConnectionError), outcome


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
        # The CLI's own database has nothing in flight: nothing to drain, nothing cut.
        assert (report["drained_in_flight"], report["cut_in_flight"]) == (0, 0), report
        assert not in_recovery(cluster, "r1")
        bad = subprocess.run(cli + ["switchover", "--primary", "no-equals-sign"], capture_output=True, text=True,
                             timeout=60)
        assert bad.returncode == 2 and "NAME=DSN" in bad.stderr
