"""Statements in flight to a primary that hangs: a failover that deposes it ends them at once
(within the prober's poll interval), with the default statement timeout (30 s), instead of
leaving the caller blocked until its own deadline; statements on a healthy primary are left
alone. Each test prints the times it measured."""

from __future__ import annotations

import threading
import time

import pytest

from conftest import require_pg_server
from failover_helpers import WAIT_S, fast_database, history_cluster

import replikit
from replikit import _core
from replikit.testing import LocalCluster

pytestmark = pytest.mark.pg


@pytest.fixture(autouse=True)
def _server():
    require_pg_server()


class BlockedCall(threading.Thread):
    """Runs ``call()`` once; keeps its result or exception and the monotonic time it ended."""

    def __init__(self, call):
        super().__init__(daemon=True)
        self.call = call
        self.result = self.error = None
        self.ended_ns = 0

    def run(self):
        try:
            self.result = self.call()
        except BaseException as exc:  # noqa: BLE001 - kept for the test to judge
            self.error = exc
        self.ended_ns = time.monotonic_ns()


def test_a_write_blocked_on_a_hung_primary_ends_commit_unknown_when_it_is_deposed():
    with history_cluster(replicas=1, mode="async", sql=["CREATE TABLE hang_t (id int)"]) as setup:
        cluster, db, manager = setup.cluster, setup.db, setup.manager
        # The default statement_timeout_ms: only the deposition can end the blocked call early.
        assert db.options.statement_timeout_ms == _core.DatabaseOptions().statement_timeout_ms
        try:
            manager.start()
            time.sleep(0.3)
            assert db.execute("INSERT INTO hang_t VALUES (0)").node == "primary"
            fired_before = db.stats().watchdog_fired
            cluster.freeze("primary")
            # An autocommit write: one round trip, sent before anyone knows the primary hangs.
            write = BlockedCall(lambda: db.execute("INSERT INTO hang_t VALUES (1)"))
            write.start()
            assert manager.wait_reports(1, WAIT_S * 1000)
            report = manager.reports()[0]
            assert report.promoted == "r1", report
            write.join(WAIT_S)
            assert not write.is_alive()
            after_ms = (write.ended_ns - report.promoted_ns) / 1e6
            print(f"promotion -> the blocked write ended: {after_ms:.0f} ms; {write.error!r}")
            assert isinstance(write.error, replikit.CommitUnknown), write.error
            assert "deposed" in str(write.error)
            assert after_ms < 1000
            # Its connection was cut (and so never pooled again).
            assert db.stats().watchdog_fired == fired_before + 1
            # The application's next write goes to the new primary.
            assert db.execute("INSERT INTO hang_t VALUES (2)").node == "r1"
            assert {int(r[0]) for r in cluster.sql("r1", "SELECT id FROM hang_t")} >= {0, 2}
        finally:
            cluster.thaw("primary")


def test_a_read_blocked_on_a_deposed_primary_ends_and_statements_elsewhere_run_on():
    # The topology alone moves here (no server is touched): a strong read sleeping on the
    # primary is cut as soon as the primary is deposed, one on the replica that becomes the
    # primary runs to its end.
    with LocalCluster(replicas=1, mode="async") as cluster:
        db = fast_database(cluster)
        try:
            assert db.wait_probes(1, WAIT_S * 1000)
            on_primary = BlockedCall(lambda: db.query("SELECT pg_sleep(3)", consistency="strong"))
            on_replica = BlockedCall(lambda: db.query("SELECT 1 FROM pg_sleep(0.6)", consistency="eventual"))
            on_primary.start()
            on_replica.start()
            time.sleep(0.3)
            deposed_ns = time.monotonic_ns()
            db.topology.promote("r1")
            on_primary.join(WAIT_S)
            on_replica.join(WAIT_S)
            after_ms = (on_primary.ended_ns - deposed_ns) / 1e6
            print(f"deposed -> the read on it ended: {after_ms:.0f} ms; {on_primary.error!r}")
            assert isinstance(on_primary.error, replikit.ConnectionError), on_primary.error
            assert "deposed" in str(on_primary.error)
            assert after_ms < 1000
            assert on_replica.error is None, on_replica.error
            assert on_replica.result.node == "r1" and on_replica.result.rows[0][0] == 1
        finally:
            db.close()


def test_statements_on_a_healthy_primary_are_not_cut():
    with LocalCluster(replicas=1, mode="async") as cluster:
        cluster.sql("primary", "CREATE TABLE calm_t (id int)")
        db = fast_database(cluster)
        try:
            assert db.wait_probes(2, WAIT_S * 1000)
            for i in range(3):
                # Longer than several prober rounds (20 ms each), on the primary: run to the end.
                assert db.execute(f"INSERT INTO calm_t SELECT {i} FROM pg_sleep(0.3)").node == "primary"
                assert db.execute("INSERT INTO calm_t SELECT $1 FROM pg_sleep(0.1)", [10 + i]).node == "primary"
                assert db.query("SELECT pg_sleep(0.2)", consistency="strong").node == "primary"
            assert db.stats().watchdog_fired == 0
            assert {int(r[0]) for r in cluster.sql("primary", "SELECT id FROM calm_t")} == {0, 1, 2, 10, 11, 12}
        finally:
            db.close()
