"""Unit tests of the routing part of the Python API: Router (counters, batch routing, in-flight
accounting, the API's shape). Which node and reason a read gets in a given state is specified
by the shared tables in tests/testdata/routing/, run by test_routing_tables.py.

Every test passes `now_ns` explicitly: nothing here depends on the wall clock.
"""

from __future__ import annotations

import numpy as np
import pytest

from routing_helpers import MS, make

import replikit
from replikit import Consistency, LagTracker, Lsn, Node, Policy, Reason, Router, Session, Topology


# --------------------------------------------------------------------------- Router
# Which node and reason a read gets in a given state: tests/testdata/routing/*.txt, run by
# test_routing_tables.py. Here: what the bindings add (API shape, in-flight guards, batches).


def feed(tracker, replica_lsns, primary_lsn, now_ns):
    """Samples the primary at `primary_lsn` and each replica at its replay LSN, all at now_ns."""
    tracker.primary_sample(primary_lsn, now_ns=now_ns)
    for name, lsn in replica_lsns.items():
        tracker.replica_sample(name, lsn, lsn, now_ns=now_ns)


def caught_up(t, lsns, primary_lsn=None, now_ns=0, **tracker_kwargs):
    """A LagTracker over `t` where replica name -> replay LSN per `lsns`, all sampled at now_ns."""
    lag = LagTracker(t, **tracker_kwargs)
    top = primary_lsn if primary_lsn is not None else max(lsns.values(), default=0)
    feed(lag, lsns, top, now_ns)
    return lag


class TestRouter:
    def test_writes(self):
        t, router = make()
        d = router.route_write()
        assert isinstance(d, replikit.Decision)
        assert (d.node, d.reason, d.to_primary, d.epoch) == ("p", Reason.WRITE, True, 1)
        assert d.required_lsn == Lsn(0)
        t.set_up("p", False)
        d = router.route_write()
        assert (d.node, d.reason, d.to_primary) == (None, Reason.PRIMARY_DOWN, False)
        assert "PRIMARY_DOWN" in repr(d)

    def test_bounded_staleness(self):
        t, router = make(["r1", "r2", "r3"])
        with pytest.raises(replikit.InvalidArgument) as info:
            router.route_read(Session(), Consistency.BOUNDED_STALENESS, now_ns=0)
        assert info.value.argument == "max_staleness_ms"

    @pytest.mark.parametrize("policy", [Policy.ROUND_ROBIN, Policy.NEAREST_REGION])
    def test_round_robin_stays_even_with_replicas_down(self, policy):
        # Every up/down pattern of 5 replicas: the up ones share reads evenly (+-1 per cycle).
        # (Was a bug: a skipped replica's turn went to a fixed one, e.g. r4 twice, r3 never.)
        names = [f"r{i}" for i in range(5)]
        for pattern in range(1, 32):
            t, router = make(names, policy=policy)
            up = [n for i, n in enumerate(names) if pattern >> i & 1]
            for n in names:
                t.set_up(n, n in up)
            for k in range(100 * len(up)):
                router.route_read(Session(), now_ns=k)
            by_node = router.counters()["by_node"]
            assert set(by_node) == set(up), (pattern, by_node)
            assert all(abs(v - 100) <= 1 for v in by_node.values()), (pattern, by_node)

    def test_weighted(self):
        t = Topology("p", [Node("a", weight=1), Node("b", weight=3), Node("z", weight=0)])
        router = Router(t, policy=Policy.WEIGHTED, seed=7)
        assert router.policy is Policy.WEIGHTED

    def test_least_outstanding_and_in_flight(self):
        t, router = make(["r1", "r2"], policy=Policy.LEAST_OUTSTANDING, seed=3)
        with router.in_flight("r1") as node:
            assert node == "r1"
            assert t.info("r1").outstanding == 1
        assert t.info("r1").outstanding == 0
        router.begin("r2")
        router.begin(2)
        assert t.info("r2").outstanding == 2
        router.end("r2")
        router.end(np.int32(2))  # node indexes as returned by route_reads
        assert t.info("r2").outstanding == 0
        with pytest.raises(replikit.InvalidArgument) as info:
            router.end("r2")
        assert info.value.argument == "node"
        # Exceptions inside the block still end the request.
        with pytest.raises(KeyError):
            with router.in_flight("r1"):
                raise KeyError("boom")
        assert t.info("r1").outstanding == 0
        guard = router.in_flight("r2")
        assert isinstance(guard, replikit.InFlight)
        with guard:
            with pytest.raises(replikit.InvalidArgument):
                guard.__enter__()
        assert t.info("r2").outstanding == 0

    def test_nearest_region(self):
        t = Topology("p", [Node("eu1", region="eu"), Node("eu2", region="eu"), Node("us1", region="us")])
        router = Router(t, policy=Policy.NEAREST_REGION, region="eu")
        with pytest.raises(replikit.InvalidArgument) as info:
            router.route_read(Session(), now_ns=0, region="mars")
        assert info.value.argument == "region"

    @pytest.mark.parametrize("policy", list(Policy), ids=lambda p: p.name)
    def test_same_seed_same_decisions(self, policy):
        t = Topology("p", [Node(f"r{i}", weight=i % 3, region="eu" if i % 2 else "us") for i in range(7)])
        a = Router(t, policy=policy, seed=42)
        b = Router(t, policy=policy, seed=42)
        da = [a.route_read(Session(), now_ns=k).node for k in range(200)]
        db = [b.route_read(Session(), now_ns=k).node for k in range(200)]
        assert da == db

    def test_counters(self):
        t, router = make(["r1", "r2"])
        assert router.counters() == {"by_node": {}, "by_reason": {}, "total": 0}
        router.route_write()
        for k in range(4):
            router.route_read(Session(), now_ns=k)
        router.route_read(Session(), Consistency.STRONG, now_ns=0)
        t.set_up("p", False)
        router.route_write()
        c = router.counters()
        assert c["by_node"] == {"p": 2, "r1": 2, "r2": 2}
        assert c["by_reason"] == {"write": 1, "replica_available": 4, "strong_read": 1, "primary_down": 1}
        assert c["total"] == 7
        router.reset_counters()
        assert router.counters() == {"by_node": {}, "by_reason": {}, "total": 0}

    def test_topology_property(self):
        t, router = make()
        assert router.topology is t
        assert router.policy is Policy.ROUND_ROBIN


# --------------------------------------------------------------------------- batch routing


def batch_sessions(rng, n, top):
    w = rng.integers(0, top, n, dtype=np.uint64)
    w[rng.random(n) < 0.3] = 0
    r = rng.integers(0, top, n, dtype=np.uint64)
    r[rng.random(n) < 0.3] = 0
    return w, r


@pytest.mark.parametrize("policy", list(Policy), ids=lambda p: p.name)
@pytest.mark.parametrize("consistency", list(Consistency), ids=lambda c: c.name)
def test_route_reads_agrees_with_route_read(policy, consistency):
    seed = 20240601 + 10 * policy.value + consistency.value
    rng = np.random.default_rng(seed)
    print(f"seed={seed}")
    names = [f"r{i}" for i in range(9)]
    t = Topology("p", [Node(n, region=("eu" if i % 3 else "us"), weight=float(i % 4)) for i, n in enumerate(names)])
    lag = LagTracker(t, max_lag_ms=400, recover_lag_ms=200)
    lag.primary_sample(0, now_ns=0)
    lag.primary_sample(1_000_000, now_ns=1000 * MS)
    for i, n in enumerate(names[:-1]):  # the last one stays unknown
        replay = int(rng.integers(0, 1_000_001))
        lag.replica_sample(n, replay, replay, now_ns=1000 * MS)
    t.set_up("r4", False)
    batch = Router(t, policy=policy, seed=5, region="eu")
    single = Router(t, policy=policy, seed=5, region="eu")
    batch.begin("r1")
    w, r = batch_sessions(rng, 500, 1_100_000)
    kwargs = {"max_staleness_ms": 300.0} if consistency is Consistency.BOUNDED_STALENESS else {}
    nodes, reasons = batch.route_reads(w, r, consistency, now_ns=1000 * MS, **kwargs)
    assert nodes.dtype == np.int32 and reasons.dtype == np.uint8
    assert nodes.shape == reasons.shape == (500,)
    for k in range(500):
        d = single.route_read(Session(write_lsn=int(w[k]), read_lsn=int(r[k])), consistency,
                              now_ns=1000 * MS, **kwargs)
        assert (nodes[k], Reason(int(reasons[k]))) == (t.index_of(d.node) if d.node is not None else -1, d.reason), k
    assert batch.counters() == single.counters()
    assert batch.counters()["total"] == 500
    batch.end("r1")


def test_route_reads_inputs():
    t, router = make(["r1"])
    caught_up(t, {"r1": 100})
    nodes, reasons = router.route_reads([0, 50, 200], consistency=Consistency.READ_YOUR_WRITES, now_ns=0)
    assert nodes.tolist() == [1, 1, 0]
    assert [Reason(x) for x in reasons] == [Reason.REPLICA_AVAILABLE, Reason.REPLICA_CAUGHT_UP,
                                            Reason.NO_REPLICA_CAUGHT_UP]
    # read_lsns default to 0; lists, numpy ints of any width, Lsn and text all work.
    nodes, _ = router.route_reads(np.array([0, 0], dtype=np.int8), ["0/0", Lsn(500)],
                                  consistency=Consistency.MONOTONIC, now_ns=0)
    assert nodes.tolist() == [1, 0]
    nodes, reasons = router.route_reads(np.array([], dtype=np.uint64), now_ns=0)
    assert nodes.size == 0 and reasons.size == 0
    t.set_up("p", False)
    nodes, reasons = router.route_reads([200], consistency=Consistency.READ_YOUR_WRITES, now_ns=0)
    assert nodes.tolist() == [replikit.NO_NODE]
    # Non-contiguous input is fine.
    arr = np.arange(0, 400, dtype=np.uint64)[::100]
    nodes, _ = router.route_reads(arr, consistency=Consistency.READ_YOUR_WRITES, now_ns=0)
    assert nodes.tolist() == [1, 1, -1, -1]
