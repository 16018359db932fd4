"""BOUNDED_STALENESS reads are routed on a safe upper bound of staleness at the moment of
routing (now minus the last primary sample at or below the replica's replay LSN), not on the
lag interpolated at the replica's last probe."""
import bisect
import time

import pytest
from conftest import require_pg_server

import replikit
from replikit import Lsn

MS = 1_000_000
BASE = 0x1000000


def held_at_commit():
    """A write commits at 1001 ms (176 bytes of WAL); r1 replays its rows and waits at the commit
    record (recovery_min_apply_delay), 136 bytes in."""
    topo = replikit.Topology("primary", ["r1"])
    tracker = replikit.LagTracker(topo)
    router = replikit.Router(topo)
    tracker.primary_sample(Lsn(BASE), now_ns=1000 * MS)
    tracker.primary_sample(Lsn(BASE + 176), now_ns=1100 * MS)
    tracker.replica_sample("r1", Lsn(BASE + 176), Lsn(BASE + 136), now_ns=1100 * MS)
    return tracker, router


def test_replica_held_at_a_commit_record_is_not_fresh():
    tracker, router = held_at_commit()
    # The monitoring estimate is unchanged (interpolated): about 22 ms.
    assert abs(tracker.replica("r1").lag_ms - 22.16) < 0.01
    # r1 lacks a commit made 149 ms before the read: a 30 ms bound goes to the primary.
    d = router.route_read(replikit.Session(), "bounded_staleness", now_ns=1150 * MS, max_staleness_ms=30.0)
    assert (d.node, d.reason) == ("primary", replikit.Reason.NO_REPLICA_FRESH)
    # It is at most 150 ms behind: a 200 ms bound may take it.
    d = router.route_read(replikit.Session(), "bounded_staleness", now_ns=1150 * MS, max_staleness_ms=200.0)
    assert (d.node, d.reason) == ("r1", replikit.Reason.REPLICA_FRESH)


def test_node_info_shows_the_instant_routing_judges_a_replica_by():
    topo = replikit.Topology("primary", ["r1"])
    tracker = replikit.LagTracker(topo)
    tracker.replica_sample("r1", Lsn(BASE), Lsn(BASE), now_ns=100 * MS)
    assert topo.info("r1").fresh_as_of_ns is None  # no primary sample yet: not known
    tracker, _ = held_at_commit()
    topo = tracker.topology
    assert topo.info("r1").fresh_as_of_ns == 1000 * MS  # not 1100: r1 lacks the commit sampled then
    assert {n.name: n.fresh_as_of_ns for n in topo.nodes()} == {"primary": None, "r1": 1000 * MS}
    tracker.reset()
    assert topo.info("r1").fresh_as_of_ns is None


def test_the_bound_grows_between_probes():
    _, router = held_at_commit()
    at = dict(max_staleness_ms=200.0)
    assert router.route_read(replikit.Session(), "bounded_staleness", now_ns=1200 * MS, **at).node == "r1"
    d = router.route_read(replikit.Session(), "bounded_staleness", now_ns=1200 * MS + 1, **at)
    assert (d.node, d.reason) == ("primary", replikit.Reason.NO_REPLICA_FRESH)


def test_tracker_clock_is_separate_from_the_session_clock():
    """now_ns is the wall clock of session times; the bound is judged on the tracker's clock:
    tracker_now_ns, else now_ns when given, else time.monotonic_ns() (LagTracker's default)."""
    _, router = held_at_commit()
    wall = 1_800_000_000_000_000_000
    d = router.route_read(replikit.Session(), "bounded_staleness", now_ns=wall, max_staleness_ms=200.0,
                          tracker_now_ns=1150 * MS)
    assert d.node == "r1"
    d = router.route_read(replikit.Session(), "bounded_staleness", now_ns=wall, max_staleness_ms=200.0,
                          tracker_now_ns=1300 * MS)
    assert d.node == "primary"
    try:
        router.route_read(replikit.Session(), "bounded_staleness", max_staleness_ms=1.0, tracker_now_ns=-5)
    except replikit.InvalidArgument as e:
        assert e.argument == "tracker_now_ns"
    else:
        raise AssertionError("a negative tracker_now_ns was accepted")


# --------------------------------------------------------------------------- real cluster
def bounded_reads(db, cluster, table, bound_ms, seconds, first_id):
    """Reads max(id) with BOUNDED_STALENESS(bound_ms) every ~5 ms for `seconds` while a writer
    commits at 20/s; returns (commits, replica reads, replica reads lacking a commit older than
    the bound). A commit's time is the client clock after it returned (at or after its
    acknowledgement), a read's the client clock before it was routed (at or before): a read
    counted as lacking one truly does."""
    import random
    import threading

    import psycopg

    commits, reads, stop = [], [], threading.Event()

    def writer():
        rng, i = random.Random(1), first_id
        with psycopg.connect(cluster.dsn("primary"), autocommit=True) as conn:
            while not stop.wait(rng.expovariate(20)):
                i += 1
                conn.execute(f"INSERT INTO {table} VALUES (%s)", (i,))
                commits.append((time.time(), i))

    w = threading.Thread(target=writer)
    w.start()
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            before = time.time()
            r = db.query(f"SELECT max(id) FROM {table}", consistency="bounded_staleness",
                         max_staleness_ms=bound_ms)
            reads.append((r.node, r.rows[0][0], before))
            time.sleep(0.005)
    finally:
        stop.set()
        w.join()
    on_replicas = [x for x in reads if x[0] != "primary"]
    times = [t for t, _ in commits]

    def lacks(visible, before):
        k = bisect.bisect_right(times, before - bound_ms / 1000.0) - 1
        return k >= 0 and visible < commits[k][1]

    return len(commits), len(reads), len(on_replicas), sum(lacks(v, b) for _, v, b in on_replicas)


@pytest.mark.pg
def test_bounded_reads_on_replicas_held_by_an_apply_delay(pg_cluster_reset):
    """Both replicas hold commit records for 50 ms (recovery_min_apply_delay), 20 writes/s: no
    read a replica serves lacks a commit older than the bound. At 30 ms (below the probe interval
    plus the delay) they go to the primary; at 400 ms the replicas serve them."""
    require_pg_server()
    from replikit.pg import database_for_cluster

    cluster, table = pg_cluster_reset, "rk_bounded_rows"
    cluster.sql("primary", f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id bigint PRIMARY KEY); "
                           f"INSERT INTO {table} VALUES (0)")
    cluster.wait_caught_up(timeout_ms=10_000)
    for name in ("r1", "r2"):
        cluster.set_apply_delay(name, 50)
    db = database_for_cluster(cluster, probe_interval_ms=100, wait_for_replica_ms=0)
    try:
        assert db.wait_probes(3, 10_000)
        for phase, bound_ms in enumerate((30.0, 400.0)):
            writes, reads, served, lacking = bounded_reads(db, cluster, table, bound_ms, 5.0, phase * 1_000_000)
            print(f"\n[bounded real] bound {bound_ms:g} ms: {writes} writes, {reads} reads, {served} served "
                  f"by replicas, {lacking} of them lacked a commit older than the bound")
            assert writes > 40 and lacking == 0
            if bound_ms > 300:
                assert served > reads // 4  # not vacuous: the replicas do serve within a loose bound
    finally:
        db.close()
        cluster.sql("primary", f"DROP TABLE IF EXISTS {table}")
