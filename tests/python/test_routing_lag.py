"""Unit tests of the routing part of the Python API: LagTracker (lag in bytes and time,
hysteresis, events, bounded history) and its plan_catch_up rule.

Every test passes `now_ns` explicitly: nothing here depends on the wall clock.
"""

from __future__ import annotations

import pytest

from routing_helpers import MS

import replikit
from replikit import LagEventKind, LagState, LagTracker, Lsn, Reason, Router, Session, Topology


# --------------------------------------------------------------------------- LagTracker


def ns(ms: float) -> int:
    """A lag in ms back in ns (exact: lags are whole ns, well within a double's precision)."""
    return round(ms * MS)


class TestLagTracker:
    def test_bytes_and_time_lag(self):
        t = Topology("p", ["r1", "r2"])
        lag = LagTracker(t)
        lag.primary_sample("0/100", now_ns=0)
        lag.primary_sample("0/200", now_ns=1000 * MS)
        lag.replica_sample("r1", "0/200", "0/100", now_ns=1500 * MS)
        lag.replica_sample("r2", "0/200", "0/200", now_ns=1500 * MS)
        r1 = lag.replica("r1")
        assert isinstance(r1, replikit.ReplicaLag)
        assert r1.known and r1.node == "r1"
        assert (r1.receive_lsn, r1.replay_lsn) == (Lsn("0/200"), Lsn("0/100"))
        assert r1.lag_bytes == 0x100 and r1.receive_lag_bytes == 0
        # The primary passed 0/100 between its samples at 0 and 1 s; assuming a steady WAL
        # rate it wrote byte 0/101 at 1/256 of the way: lag = 1.5 s - 1 s / 256.
        assert ns(r1.lag_ms) == 1500 * MS - 1000 * MS // 256
        with pytest.deprecated_call(match="use 'lag_ms'"):
            assert r1.lag_ns == ns(r1.lag_ms)  # the deprecated ns alias
        assert r1.sample_time_ns == 1500 * MS
        assert not r1.lag_is_lower_bound
        assert r1.state is LagState.LAGGING  # > 1000 ms by default
        r2 = lag.replica(2)
        assert r2.lag_bytes == 0 and ns(r2.lag_ms) == 0 and r2.state is LagState.OK
        # Published into the topology for routing.
        info = t.info("r1")
        assert info.lag_known and info.lag_state is LagState.LAGGING
        assert info.replay_lsn == Lsn("0/100") and info.lag_bytes == 0x100
        assert info.lag_ms == pytest.approx(r1.lag_ms)
        assert [x.node for x in lag.replicas()] == ["r1", "r2"]
        assert lag.primary_lsn == Lsn("0/200")
        assert lag.history_size == 2
        assert "lag_ms" in repr(r1)

    def test_primary_time_past(self):
        lag = LagTracker(Topology("p", ["r1"]))
        assert lag.primary_time_past("0/10") is None
        lag.primary_sample("0/100", now_ns=10 * MS)
        lag.primary_sample("0/100", now_ns=20 * MS)  # idle: one history entry
        lag.primary_sample("0/200", now_ns=30 * MS)
        assert lag.history_size == 2
        assert lag.primary_time_past("0/200") is None  # not passed yet
        # Byte 0/181 was written 0x81/0x100 of the way from 20 ms (last seen at 0/100) to 30 ms.
        assert lag.primary_time_past("0/180") == 20 * MS + (0x81 * 10 * MS) // 0x100
        assert lag.primary_time_past("0/50") == 10 * MS  # older than the history: its start

    def test_unknown_until_sampled(self):
        t = Topology("p", ["r1"])
        lag = LagTracker(t)
        r = lag.replica("r1")
        assert not r.known and r.state is LagState.OK
        assert not t.info("r1").lag_known

    def test_hysteresis_and_events(self):
        # The primary writes 1000 bytes per ms; a replica `d` ms behind has replayed
        # 1000 * (now - d). Its time lag is then d ms less 1 us (interpolation).
        t = Topology("p", ["r1", "r2"])
        lag = LagTracker(t, max_lag_ms=100, recover_lag_ms=50)
        states = []
        behind_ms = [0, 80, 99, 120, 90, 70, 51, 49, 30, 150, 10]
        now = 0
        for _ in range(200):  # 200 ms of history before the first replica sample
            now += 1
            lag.primary_sample(1000 * now + 1_000_000, now_ns=now * MS)
        for step, d in enumerate(behind_ms):
            for _ in range(5):
                now += 1
                lag.primary_sample(1000 * now + 1_000_000, now_ns=now * MS)
            lag.replica_sample("r1", 1000 * (now - d) + 1_000_000, 1000 * (now - d) + 1_000_000,
                               now_ns=now * MS)
            lag.replica_sample("r2", 1000 * now + 1_000_000, 1000 * now + 1_000_000, now_ns=now * MS)
            r = lag.replica("r1")
            if d:  # within 1 ns: the interpolation is done in floating point
                assert abs(ns(r.lag_ms) - (d * MS - 1000)) <= 1
            states.append(r.state)
            assert t.info("r1").lag_state is r.state
        L, O = LagState.LAGGING, LagState.OK
        assert states == [O, O, O, L, L, L, L, O, O, L, O]
        events = lag.events()
        assert [(e.kind, e.node) for e in events] == [
            (LagEventKind.BECAME_LAGGING, "r1"), (LagEventKind.RECOVERED, "r1"),
            (LagEventKind.BECAME_LAGGING, "r1"), (LagEventKind.RECOVERED, "r1")]
        assert [e.sequence for e in events] == [1, 2, 3, 4]
        assert abs(ns(events[0].lag_ms) - (120 * MS - 1000)) <= 1
        assert events[0].lag_ms == pytest.approx(119.999)
        assert events[0].time_ns == 220 * MS
        assert events[0].lag_bytes == 120_000
        assert [e.sequence for e in lag.events(after_sequence=2)] == [3, 4]
        assert [e.sequence for e in lag.events(after_sequence=0, max_events=1)] == [1]
        assert lag.events(after_sequence=4) == []
        assert lag.events_dropped == 0
        assert "became_lagging" in repr(events[0]).lower()

    def test_byte_threshold_with_hysteresis(self):
        t = Topology("p", ["r1"])
        lag = LagTracker(t, max_lag_ms=1e9, recover_lag_ms=1e9, max_lag_bytes=1000, recover_lag_bytes=500)
        lag.primary_sample(10_000, now_ns=0)
        seen = []
        for now, behind in enumerate([900, 1000, 1001, 700, 500, 499, 0]):
            lag.replica_sample("r1", 10_000 - behind, 10_000 - behind, now_ns=now)
            assert lag.replica("r1").lag_bytes == behind
            seen.append(lag.replica("r1").state)
        L, O = LagState.LAGGING, LagState.OK
        assert seen == [O, O, L, L, L, O, O]

    def test_silent_replica_is_judged_at_the_primarys_time(self):
        t = Topology("p", ["r1"])
        lag = LagTracker(t, max_lag_ms=1000, recover_lag_ms=500, stale_sample_ms=1000)
        lag.primary_sample(1000, now_ns=0)
        lag.replica_sample("r1", 1000, 1000, now_ns=0)
        lag.primary_sample(2000, now_ns=500 * MS)
        # A fresh sample: judged at its own time, when it was caught up.
        assert ns(lag.replica("r1").lag_ms) == 0
        lag.primary_sample(3000, now_ns=1500 * MS)
        # Silent for 1.5 s (> stale_sample_ms): judged now; 0/3E8 was passed just after 0.
        r = lag.replica("r1")
        assert ns(r.lag_ms) > 1400 * MS and r.state is LagState.LAGGING
        # Reads avoid it.
        router = Router(t)
        assert router.route_read(Session(), now_ns=1500 * MS).reason is Reason.ALL_REPLICAS_LAGGING

    def test_bounded_history_reports_a_lower_bound(self):
        t = Topology("p", ["r1"])
        lag = LagTracker(t, history_capacity=2, max_lag_ms=1e6, recover_lag_ms=1e6)
        for k in range(5):
            lag.primary_sample(100 * (k + 1), now_ns=k * 1000 * MS)
        assert lag.history_size == 2
        lag.replica_sample("r1", 100, 100, now_ns=5000 * MS)
        r = lag.replica("r1")
        assert r.lag_is_lower_bound
        assert ns(r.lag_ms) == 5000 * MS - 3000 * MS  # the oldest kept entry is 0/190 at 3 s

    def test_event_buffer_is_bounded(self):
        t = Topology("p", ["r1"])
        lag = LagTracker(t, max_lag_ms=1e6, recover_lag_ms=1e6, max_lag_bytes=10, recover_lag_bytes=5, event_capacity=1)
        lag.primary_sample(1000, now_ns=0)
        for now, behind in enumerate([20, 0, 20, 0]):
            lag.replica_sample("r1", 1000 - behind, 1000 - behind, now_ns=now)
        assert [e.sequence for e in lag.events()] == [4]
        assert lag.events_dropped == 3

    def test_recover_ms_zero_recovers_at_zero_lag(self):
        # (Was a bug: recovery needed lag_ns < 0, so LAGGING was permanent.)
        t = Topology("p", ["r1"])
        lag = LagTracker(t, max_lag_ms=0, recover_lag_ms=0)
        lag.primary_sample(1000, now_ns=0)
        lag.primary_sample(2000, now_ns=10 * MS)
        lag.replica_sample("r1", 1000, 1000, now_ns=10 * MS)
        assert lag.replica("r1").state is LagState.LAGGING
        lag.replica_sample("r1", 2000, 2000, now_ns=11 * MS)
        assert ns(lag.replica("r1").lag_ms) == 0
        assert lag.replica("r1").state is LagState.OK

    def test_time_and_lsn_must_not_go_backwards_until_reset(self):
        t = Topology("p", ["r1"])
        lag = LagTracker(t)
        lag.primary_sample("0/200", now_ns=1000)
        with pytest.raises(replikit.InvalidArgument) as info:
            lag.primary_sample("0/300", now_ns=999)
        assert info.value.argument == "now_ns"
        with pytest.raises(replikit.InvalidArgument) as info:
            lag.primary_sample("0/100", now_ns=2000)
        assert info.value.argument == "current_lsn"
        lag.replica_sample("r1", "0/200", "0/200", now_ns=1000)
        with pytest.raises(replikit.InvalidArgument) as info:
            lag.replica_sample("r1", "0/200", "0/200", now_ns=999)
        assert info.value.argument == "now_ns"
        with pytest.raises(replikit.InvalidArgument) as info:
            lag.replica_sample("p", "0/200", "0/200", now_ns=2000)
        assert info.value.argument == "node"
        lag.reset()
        assert lag.history_size == 0 and lag.primary_lsn == Lsn(0)
        assert not lag.replica("r1").known and not t.info("r1").lag_known
        lag.primary_sample("0/100", now_ns=0)  # allowed again (e.g. after a promotion)
        assert lag.primary_lsn == Lsn("0/100")


def test_plan_catch_up_is_the_core_rule_and_names_bad_input():
    """LagTracker.plan_catch_up (what the C++ backend and replikit.psycopg use for
    wait_for_replica_ms): 'auto' waits only when a replica's measured replay delays fit the
    bound (or none are measured yet), a number is a fixed wait; bad values name the argument."""
    ms = 1_000_000
    t = replikit.Topology(replikit.Node("p"), [replikit.Node("a"), replikit.Node("b")])
    lag = replikit.LagTracker(t)
    lag.primary_sample("0/64", now_ns=0)
    lag.replica_sample("a", "0/64", "0/64", now_ns=0)
    for k in range(1, 11):  # the primary reaches a new LSN every 100 ms, replica a shows it 3 ms later
        lsn = replikit.Lsn(100 + 100 * k)
        lag.primary_sample(lsn, now_ns=k * 100 * ms)
        lag.replica_sample("a", lsn, lsn, now_ns=k * 100 * ms + 3 * ms)
    plan = lag.plan_catch_up("auto")
    assert plan.reason == replikit.CatchUpReason.REPLICA_EXPECTED and plan.node == "a"
    assert plan.wait_ms == 50.0 and 2.9 < plan.predicted_ms < 4.1 and plan.samples == 10
    assert "CatchUpPlan(wait_ms=50.0" in repr(plan)
    fixed = lag.plan_catch_up(7)
    assert fixed.reason == replikit.CatchUpReason.FIXED_WAIT and fixed.wait_ms == 7.0 and fixed.node is None
    lag.replica_sample("b", lsn, lsn, now_ns=1005 * ms)  # b: caught up, no replay delay measured yet
    assert lag.replay_delay_count("b") == 0
    t.set_up("a", False)  # only b is left, without delays: auto waits (and measures)
    plan = lag.plan_catch_up("auto")
    assert plan.reason == replikit.CatchUpReason.NO_DELAY_SAMPLES and plan.wait_ms == 50.0
    t.set_up("b", False)  # no healthy replica: to the primary at once
    plan = lag.plan_catch_up("auto")
    assert plan.reason == replikit.CatchUpReason.NO_REPLICA_EXPECTED and plan.wait_ms == 0.0
    for bad, error in ((-1, replikit.InvalidArgument), (float("nan"), replikit.InvalidArgument),
                       ("sometimes", replikit.InvalidArgument), ([1], replikit.ArgumentTypeError)):
        with pytest.raises(error) as info:
            lag.plan_catch_up(bad)
        assert info.value.argument == "wait_for_replica_ms"
