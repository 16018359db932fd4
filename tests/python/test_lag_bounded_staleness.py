"""BOUNDED_STALENESS reads are routed on a safe upper bound of staleness at the moment of
routing (now minus the last primary sample at or below the replica's replay LSN), not on the
lag interpolated at the replica's last probe."""
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
