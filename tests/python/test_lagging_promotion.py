"""A replica the lag tracker flags LAGGING, promoted: by this process's FailoverManager (a
failover after the primary's crash, a planned switchover) or outside it (the prober adopts the
promoted node). Each time the replica's lag is forgotten with a RECOVERED event published
before routing shows it as the primary, so the monitor's replica_lag alert on it resolves; then
it serves writes. Real clusters; the lag comes from WAL senders stopped (the replica receives
nothing more) or from an apply delay (it replays every commit late).

The order is seen by a thread polling the routing's primary: at its first sight of the new
primary, the RECOVERED must have been published (after a manager's promotion nothing else
publishes it before a later probe). The prober's adoption changes routing microseconds after
the forgetting, too soon for a poll to tell; there the order is checked against the RECOVERED
of another lagging replica, which the prober announces after the routing change."""

from __future__ import annotations

import threading
import time

import pytest

from conftest import require_pg_server, wait_until
from failover_helpers import WAIT_S, history_cluster, in_recovery

import replikit
from replikit.events import EventKind
from replikit.monitor import Monitor

pytestmark = pytest.mark.pg

MAX_LAG_MS = 300.0  # recover_lag_ms: half of it (LagConfig's default)


@pytest.fixture(autouse=True)
def _server():
    require_pg_server()


class PrimaryWatch(threading.Thread):
    """Polls the routing's primary until it is ``node``, then reads the events published from
    its start() on: ``events``, what was published by the time routing showed ``node`` as the
    primary (None: it never did within WAIT_S)."""

    def __init__(self, db, node):
        super().__init__(daemon=True)
        self.db, self.node = db, node
        self.after = 0
        self.events = None
        self.missed = 0
        self.stop_flag = threading.Event()

    def start(self):
        self.after = self.db.events.last_sequence
        super().start()

    def run(self):
        deadline = time.monotonic() + WAIT_S
        while not self.stop_flag.is_set() and time.monotonic() < deadline:
            if self.db.topology.epoch_and_primary[1] == self.node:
                self.events = self._published()
                return
            time.sleep(0.001)  # published late, a RECOVERED comes with a later probe (50 ms to 1 s)

    def _published(self):
        events, after = [], self.after
        for _ in range(64):  # bounded: the ring holds event_capacity (1024) events
            batch = self.db.events.read(after, 256)
            self.missed += batch.missed
            if not batch.events:
                break
            events += batch.events
            after = batch.events[-1].sequence
        return events

    def halt(self):
        self.stop_flag.set()
        if self.ident is not None:  # started
            self.join(WAIT_S)


def lag_alert_on(monitor, node):
    monitor.poll_events()
    return any(a.rule == "replica_lag" and a.node == node for a in monitor.alerts.firing())


def wait_lagging(db, monitor, node="r1"):
    wait_until(lambda: db.node(node).lagging, WAIT_S, f"{node} LAGGING")
    wait_until(lambda: lag_alert_on(monitor, node), WAIT_S, f"the replica_lag alert on {node}")


def check_resolved_before_routing(setup, monitor, watch, since_ns, node="r1"):
    """``node``'s RECOVERED was published by the time routing showed it as the primary, its
    replica_lag alert fired once and resolved once, and it serves writes."""
    db = setup.db
    watch.join(WAIT_S)
    assert watch.events is not None, f"routing never showed {node} as the primary"
    assert watch.missed == 0
    seen = [(e.kind, e.node) for e in watch.events]
    print(f"events published by the time routing showed {node} as the primary: {seen}")
    assert (EventKind.RECOVERED, node) in seen, seen
    wait_until(lambda: not lag_alert_on(monitor, node), WAIT_S, f"the replica_lag alert on {node} to resolve")
    counts = monitor.alerts.counts()
    assert counts.get(("replica_lag", node, "firing")) == 1, counts
    assert counts.get(("replica_lag", node, "resolved")) == 1, counts
    status = db.node(node)
    assert status.role == replikit.Role.PRIMARY and not status.lagging, status
    wait_until(lambda: setup.writer.first_ack_after(since_ns, node) is not None, WAIT_S,
               f"a write acknowledged by {node}")
    assert db.execute("INSERT INTO w VALUES (-1)").node == node
    assert not in_recovery(setup.cluster, node)


def test_a_lagging_candidate_failed_over_in_process_recovers_before_routing_promotes_it():
    # failover_now() right after the crash, with a slow prober (1 s): the manager's promotion,
    # not the prober's adoption of the promoted node (the test below), forgets r1's lag.
    options = {"max_lag_ms": MAX_LAG_MS, "probe_interval_ms": 1000}
    with history_cluster(replicas=1, database=options) as setup, Monitor(setup.db) as monitor:
        cluster, manager = setup.cluster, setup.manager
        setup.writer.start()
        wait_until(lambda: len(setup.writer.acked) >= 20, WAIT_S, "writes")
        # r1 receives nothing more while the primary writes on: its lag grows past max_lag_ms.
        cluster.pause_wal_send("primary")
        watch = PrimaryWatch(setup.db, "r1")
        try:
            wait_lagging(setup.db, monitor)
            watch.start()
            kill_ns = time.monotonic_ns()
            cluster.kill("primary")
            report = manager.failover_now()
            print(repr(report))
            assert report.promoted == "r1", report
            check_resolved_before_routing(setup, monitor, watch, kill_ns)
        finally:
            watch.halt()
            cluster.resume_wal_send("primary")


def test_a_lagging_candidate_switched_over_in_process_recovers_before_routing_promotes_it():
    # The switchover waits for the candidate to replay all the fenced primary wrote, so its lag
    # ends before the promotion: a prober that samples it in between publishes RECOVERED
    # itself. A slow prober (1 s) mostly does not, and the manager's promotion forgets the lag.
    # Either way the event precedes the routing change.
    options = {"max_lag_ms": MAX_LAG_MS, "probe_interval_ms": 1000}
    with history_cluster(replicas=1, database=options) as setup, Monitor(setup.db) as monitor:
        cluster, manager = setup.cluster, setup.manager
        cluster.set_apply_delay("r1", 1500)  # r1 replays each commit 1.5 s late
        setup.writer.start()
        wait_lagging(setup.db, monitor)
        watch = PrimaryWatch(setup.db, "r1")
        watch.start()
        try:
            began_ns = time.monotonic_ns()
            report = manager.switchover("r1")
            print(repr(report))
            assert report.promoted == "r1", report
            check_resolved_before_routing(setup, monitor, watch, began_ns)
        finally:
            watch.halt()


def test_a_lagging_replica_promoted_outside_is_adopted_by_the_prober_with_its_recovery():
    # No manager in this process: r2 is promoted by hand, and the prober follows it (out of
    # recovery on a newer timeline), forgetting its lag first. r1 lags too: after the routing
    # change the prober's reset() announces r1's RECOVERED, so r2's must come before r1's (the
    # reset goes through the nodes in order: r1's first, were r2's left to it).
    with history_cluster(replicas=2, database={"max_lag_ms": MAX_LAG_MS}, manager=False) as setup, \
            Monitor(setup.db) as monitor:
        cluster, db = setup.cluster, setup.db
        setup.writer.start()
        wait_until(lambda: len(setup.writer.acked) >= 20, WAIT_S, "writes")
        cluster.pause_wal_send("primary")
        watch = PrimaryWatch(db, "r2")
        try:
            wait_lagging(db, monitor, "r1")
            wait_lagging(db, monitor, "r2")
            watch.start()
            promoted_ns = time.monotonic_ns()
            cluster.promote("r2")
            check_resolved_before_routing(setup, monitor, watch, promoted_ns, node="r2")
            recovered = [e.node for e in db.events.read(watch.after, 256).events if e.kind == EventKind.RECOVERED]
            assert recovered[:2] == ["r2", "r1"], recovered
        finally:
            watch.halt()
            cluster.resume_wal_send("primary")


def test_a_failover_in_process_starts_the_lag_history_afresh_as_an_adoption_does():
    # A slow prober (1 s): the manager's promotion comes before a probe finds r1 out of recovery.
    # Until 2026-11-30 it kept the old primary's LSN history while the prober's adoption reset
    # it, so the same failover tracked lag two ways by which came first: with the history kept,
    # the tracker interpolated a survivor across the outage and read it hundreds of ms behind
    # while it held every record the old primary wrote. Both now start afresh.
    with history_cluster(replicas=2, database={"probe_interval_ms": 1000}) as setup:
        cluster, manager, db = setup.cluster, setup.manager, setup.db
        tracker = db.lag_tracker
        setup.writer.start()
        wait_until(lambda: tracker.history_size >= 6, WAIT_S, "six distinct primary samples")
        after = db.events.last_sequence
        kept = tracker.history_size
        began = time.monotonic()
        cluster.kill("primary")
        report = manager.failover_now()
        size = tracker.history_size  # one entry per probe of the new primary since the promotion
        took_s = time.monotonic() - began
        failovers = [e.message for e in db.events.read(after, 256).events if e.kind == EventKind.FAILOVER]
        print(repr(report), kept, size, f"{took_s:.2f} s", failovers)
        assert report.promoted in ("r1", "r2"), report
        assert failovers and "found out of recovery" not in failovers[0], failovers  # the manager's
        assert size <= 1 + took_s, f"the old primary's history was kept: {size} entries, {kept} before the kill"
