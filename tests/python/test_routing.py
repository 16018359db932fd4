"""Unit tests of the routing part of the Python API.

LSNs, enums, errors, Node / NodeInfo / Topology, LagTracker (lag in bytes and time,
hysteresis, events), Session and tokens (plain, HmacSigner, signer callables, tampering),
Router (counters, batch routing, in-flight accounting, the API's shape). Which node and reason
a read gets in a given state is specified by the shared tables in tests/testdata/routing/,
run by test_routing_tables.py.

Every test passes `now_ns` explicitly: nothing here depends on the wall clock.
"""

from __future__ import annotations

import base64
import copy
import enum
import hashlib
import hmac
import pickle
import re

import numpy as np
import pytest

import replikit
from replikit import (
    Consistency,
    LagEventKind,
    LagState,
    LagTracker,
    Lsn,
    Node,
    Policy,
    Reason,
    Role,
    Router,
    Session,
    Topology,
)

MS = 1_000_000  # ns per ms


def ns(ms: float) -> int:
    """A lag in ms back in ns (exact: lags are whole ns, well within a double's precision)."""
    return round(ms * MS)
KEY = b"0123456789abcdef-test-key"


def hmac_callable(key: bytes = KEY):
    return lambda payload: hmac.new(key, payload, hashlib.sha256).digest()


def make(replicas=("r1", "r2"), primary="p", **router_kwargs):
    topology = Topology(primary, list(replicas))
    return topology, Router(topology, **router_kwargs)


def feed(tracker, replica_lsns, primary_lsn, now_ns):
    """Samples the primary at `primary_lsn` and each replica at its replay LSN, all at now_ns."""
    tracker.primary_sample(primary_lsn, now_ns=now_ns)
    for name, lsn in replica_lsns.items():
        tracker.replica_sample(name, lsn, lsn, now_ns=now_ns)


# --------------------------------------------------------------------------- LSN


class TestLsn:
    def test_text_round_trip(self):
        lsn = Lsn("16/B374D848")
        assert lsn.value == 0x16B374D848
        assert str(lsn) == "16/B374D848"
        assert repr(lsn) == "Lsn('16/B374D848')"
        assert str(Lsn("16/b374d848")) == "16/B374D848"
        assert str(Lsn("0000000A/00000001")) == "A/1"
        assert str(Lsn(0)) == "0/0"
        assert str(Lsn(2**64 - 1)) == "FFFFFFFF/FFFFFFFF"

    def test_constructors_agree(self):
        a = Lsn("1/0")
        assert Lsn(2**32) == a
        assert Lsn(a) == a
        assert int(a) == 2**32
        assert hex(a) == hex(2**32)  # __index__

    def test_valid(self):
        assert not Lsn(0).valid()
        assert Lsn(1).valid()

    def test_ordering_and_hash(self):
        values = [0, 1, 2**32 - 1, 2**32, 2**63, 2**64 - 1]
        lsns = [Lsn(v) for v in values]
        assert sorted(reversed(lsns)) == lsns
        for a, va in zip(lsns, values):
            for b, vb in zip(lsns, values):
                assert (a < b) == (va < vb)
                assert (a <= b) == (va <= vb)
                assert (a > b) == (va > vb)
                assert (a >= b) == (va >= vb)
                assert (a == b) == (va == vb)
                assert (a != b) == (va != vb)
        assert hash(Lsn(12345)) == hash(12345)
        assert len({Lsn(5), Lsn("0/5"), Lsn(6)}) == 2
        # Implicit conversion from int and str in comparisons.
        assert Lsn("0/5") == 5
        assert Lsn("0/5") < "0/6"

    def test_difference_in_bytes(self):
        assert Lsn("0/200") - Lsn("0/100") == 0x100
        assert Lsn("0/100") - Lsn("0/200") == -0x100
        assert Lsn("1/0") - Lsn("0/FFFFFFFF") == 1
        assert replikit.lsn_diff_bytes("0/200", "0/100") == 0x100
        assert replikit.lsn_diff_bytes(0x200, Lsn(0x100)) == 0x100
        assert replikit.lsn_diff_bytes(Lsn(5), Lsn(5)) == 0
        # Saturates at the int64 range.
        assert replikit.lsn_diff_bytes(2**64 - 1, 0) == 2**63 - 1
        assert replikit.lsn_diff_bytes(0, 2**64 - 1) == -(2**63)

    def test_pickle(self):
        lsn = Lsn("16/B374D848")
        assert pickle.loads(pickle.dumps(lsn)) == lsn


# --------------------------------------------------------------------------- enums, constants, errors

ENUM_MEMBERS = {
    Role: ["PRIMARY", "REPLICA", "REMOVED"],
    LagState: ["OK", "LAGGING"],
    LagEventKind: ["BECAME_LAGGING", "RECOVERED"],
    Policy: ["ROUND_ROBIN", "WEIGHTED", "LEAST_LAG", "LEAST_OUTSTANDING", "NEAREST_REGION"],
    Consistency: ["EVENTUAL", "READ_YOUR_WRITES", "MONOTONIC", "CAUSAL", "BOUNDED_STALENESS", "STRONG"],
    Reason: [
        "WRITE", "REPLICA_AVAILABLE", "REPLICA_CAUGHT_UP", "REPLICA_FRESH", "STRONG_READ",
        "RECENT_WRITE", "ALL_REPLICAS_LAGGING", "NO_REPLICA_CAUGHT_UP", "NO_REPLICA_FRESH",
        "NO_REPLICA_UP", "PRIMARY_DOWN", "REPLICA_LIKELY_CONSISTENT", "NO_REPLICA_LIKELY_CONSISTENT",
    ],
}


@pytest.mark.parametrize("cls", list(ENUM_MEMBERS), ids=lambda c: c.__name__)
def test_enums_are_python_enums(cls):
    assert isinstance(cls, enum.EnumMeta)
    assert issubclass(cls, enum.Enum)
    assert [m.name for m in cls] == ENUM_MEMBERS[cls]
    # Values are the C++ enumerator values 0, 1, 2, ... and look up both ways.
    for i, member in enumerate(cls):
        assert member.value == i
        assert cls(i) is member
        assert cls[member.name] is member
    assert cls.__module__.startswith("replikit")


def test_constants():
    assert replikit.NO_NODE == -1
    assert replikit.MAX_NODES == 256
    assert isinstance(replikit.HAVE_PG, bool)


def test_error_hierarchy():
    E = replikit
    assert issubclass(E.Error, Exception)
    assert issubclass(E.InvalidArgument, E.Error) and issubclass(E.InvalidArgument, ValueError)
    assert issubclass(E.TokenError, E.InvalidArgument)
    assert issubclass(E.NotFound, E.InvalidArgument) and issubclass(E.NotFound, LookupError)
    assert issubclass(E.CapacityExceeded, E.Error)
    assert issubclass(E.ConnectionError, E.Error) and issubclass(E.ConnectionError, ConnectionError)
    assert issubclass(E.TimeoutError, E.Error) and issubclass(E.TimeoutError, TimeoutError)
    assert issubclass(E.QueryError, E.Error)
    assert issubclass(E.CommitUnknown, E.Error)
    for name in ["Error", "InvalidArgument", "TokenError", "NotFound", "CapacityExceeded",
                 "ConnectionError", "TimeoutError", "QueryError", "CommitUnknown"]:
        assert getattr(E, name).__module__ == "replikit"


def test_errors_carry_the_argument_name():
    with pytest.raises(replikit.InvalidArgument) as info:
        Lsn("nope")
    assert info.value.argument == "value"
    assert "nope" in str(info.value)
    with pytest.raises(replikit.NotFound) as info:
        Topology("p", ["r1"]).index_of("r9")
    assert info.value.argument == "name"
    assert "r9" in str(info.value)


# --------------------------------------------------------------------------- Node / Topology


def test_node_declaration():
    n = Node("r1")
    assert (n.name, n.region, n.weight, n.priority, n.up) == ("r1", "", 1.0, 0, True)
    n = Node("r2", region="eu", weight=2.5, priority=7, up=False)
    assert (n.name, n.region, n.weight, n.priority, n.up) == ("r2", "eu", 2.5, 7, False)
    n.weight = 3.0
    n.up = True
    assert n.weight == 3.0 and n.up
    assert "r2" in repr(n) and "eu" in repr(n)


class TestTopology:
    def test_basic_structure(self):
        t = Topology("p", ["r1", Node("r2", region="eu", weight=2, priority=5, up=False)])
        assert len(t) == 3
        assert t.primary == 0 and t.primary_name == "p"
        assert t.replicas() == [1, 2]
        assert t.replica_names() == ["r1", "r2"]
        assert [t.index_of(n) for n in ["p", "r1", "r2"]] == [0, 1, 2]
        assert [t.name(i) for i in range(3)] == ["p", "r1", "r2"]
        assert t.region_id("eu") >= 0 and t.region_id("us") == -1
        assert t.epoch == 1
        info = t.info("r2")
        assert isinstance(info, replikit.NodeInfo)
        assert (info.index, info.name, info.region, info.role, info.up, info.weight, info.priority) == (
            2, "r2", "eu", Role.REPLICA, False, 2.0, 5)
        assert info.replay_lsn == Lsn(0) and info.receive_lsn == Lsn(0)
        assert not info.lag_known and info.lag_state is LagState.OK
        assert info.lag_bytes == 0 and info.lag_ms == 0.0 and info.outstanding == 0
        assert t.info(2).name == "r2"  # by index
        assert t.info("p").role is Role.PRIMARY
        assert [i.name for i in t.nodes()] == ["p", "r1", "r2"]
        assert "r2" in repr(info)

    def test_no_replicas(self):
        t = Topology(Node("p"))
        assert len(t) == 1 and t.replicas() == [] and t.replica_names() == []

    def test_mutations(self):
        t = Topology("p", ["r1", "r2"])
        assert t.add_replica("r3") == 3
        assert t.add_replica(Node("r4", region="us", weight=0.5)) == 4
        assert t.info("r4").weight == 0.5 and t.info("r4").region == "us"
        t.set_up("r1", False)
        assert not t.info("r1").up
        t.set_up("r1", True)
        assert t.info("r1").up
        t.set_weight("r2", 4.5)
        assert t.info("r2").weight == 4.5
        t.set_priority("r2", -3)
        assert t.info("r2").priority == -3
        t.remove_replica("r3")
        assert t.info(3).role is Role.REMOVED
        assert "r3" not in t.replica_names() and 3 not in t.replicas()
        assert [i.name for i in t.nodes()] == ["p", "r1", "r2", "r4"]
        with pytest.raises(replikit.NotFound):
            t.index_of("r3")
        assert len(t) == 5  # removed nodes keep their slot

    def test_invalid_mutations(self):
        t = Topology("p", ["r1"])
        with pytest.raises(replikit.InvalidArgument) as info:
            t.add_replica("r1")
        assert info.value.argument == "node"
        with pytest.raises(replikit.InvalidArgument) as info:
            t.remove_replica("p")
        assert info.value.argument == "name"
        with pytest.raises(replikit.InvalidArgument) as info:
            t.promote("p")
        assert info.value.argument == "name"
        with pytest.raises(replikit.InvalidArgument) as info:
            Topology("p", ["p"])
        assert info.value.argument == "replicas"

    def test_promote(self):
        t, router = make(["r1", "r2"])
        assert router.route_write().node == "p"
        assert t.promote("r1") == 2
        assert t.epoch == 2
        assert t.primary_name == "r1"
        assert t.info("r1").role is Role.PRIMARY
        old = t.info("p")
        assert old.role is Role.REPLICA and not old.up  # fenced until rejoined
        assert sorted(t.replica_names()) == ["p", "r2"]
        w = router.route_write()
        assert (w.node, w.reason, w.epoch) == ("r1", Reason.WRITE, 2)
        for k in range(10):
            d = router.route_read(Session(), now_ns=k)
            assert d.node == "r2" and d.epoch == 2

    def test_capacity(self):
        replicas = [f"r{i}" for i in range(replikit.MAX_NODES - 1)]
        t = Topology("p", replicas)
        assert len(t) == replikit.MAX_NODES
        with pytest.raises(replikit.CapacityExceeded):
            t.add_replica("one-too-many")
        with pytest.raises(replikit.InvalidArgument) as info:
            Topology("p", replicas + ["extra"])
        assert info.value.argument == "replicas"


# --------------------------------------------------------------------------- LagTracker


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


# --------------------------------------------------------------------------- Session and tokens

TOKEN_CHARS = re.compile(r"^[0-9A-Za-z._-]+$")


class TestSession:
    def test_defaults_and_constructor(self):
        s = Session()
        assert s.write_lsn == Lsn(0) and s.read_lsn == Lsn(0) and s.untracked_write_ns is None
        s = Session(write_lsn="0/10", read_lsn=5)
        assert s.write_lsn == Lsn(0x10) and s.read_lsn == Lsn(5)
        assert s.causal_lsn() == Lsn(0x10)
        assert "0/10" in repr(s)

    def test_record_write_observe_merge(self):
        s = Session()
        s.record_write("0/100", now_ns=5)
        s.record_write("0/50", now_ns=6)  # older commits never lower it
        assert s.write_lsn == Lsn("0/100") and s.untracked_write_ns is None
        s.record_write(None, now_ns=7 * MS)
        assert s.untracked_write_ns == 7 * MS and s.write_lsn == Lsn("0/100")
        s.record_write(now_ns=6 * MS)  # an older unknown write does not move the window back
        assert s.untracked_write_ns == 7 * MS
        s.observe("0/80")
        s.observe("0/70")
        assert s.read_lsn == Lsn("0/80")
        assert s.causal_lsn() == Lsn("0/100")
        s.observe("0/300")
        assert s.causal_lsn() == Lsn("0/300")
        other = Session(write_lsn="0/400", read_lsn="0/10")
        other.record_write(None, now_ns=9 * MS)
        s.merge(other)
        assert (s.write_lsn, s.read_lsn, s.untracked_write_ns) == (Lsn("0/400"), Lsn("0/300"), 9 * MS)
        s.merge(Session(write_lsn="0/500").token())  # a token merges too
        assert s.write_lsn == Lsn("0/500")

    def test_copy_and_equality(self):
        s = Session(write_lsn=7, read_lsn=9)
        for c in (s.copy(), copy.copy(s), copy.deepcopy(s)):
            assert c == s and c is not s
            c.observe(100)
            assert c != s and s.read_lsn == Lsn(9)
        assert s != "not a session"
        with pytest.raises(TypeError):
            hash(s)  # mutable: not hashable

    def test_token_round_trip(self):
        s = Session(write_lsn="16/B374D848", read_lsn="16/B3700000")
        token = s.token()
        assert token == "1.16b374d848.16b3700000.x"
        assert Session.from_token(token) == s
        s.record_write(None, now_ns=1_234_567_890)
        back = Session.from_token(s.token())
        # The unknown-write time travels in whole milliseconds, rounded up (the window never ends early).
        assert back.untracked_write_ns == 1_235 * MS
        assert (back.write_lsn, back.read_lsn) == (s.write_lsn, s.read_lsn)
        big = Session(write_lsn=2**64 - 1, read_lsn=2**64 - 1)
        big.record_write(None, now_ns=2**63 - 1)
        for tok in (big.token(), big.token(signer=replikit.HmacSigner(KEY)) if hasattr(replikit, "HmacSigner") else big.token()):
            assert len(tok) <= 128 and TOKEN_CHARS.match(tok)

    @pytest.mark.skipif(not hasattr(replikit, "HmacSigner"), reason="built without OpenSSL")
    def test_signed_tokens(self):
        signer = replikit.HmacSigner(KEY)
        assert isinstance(signer, replikit.TokenSigner)
        s = Session(write_lsn="0/1234", read_lsn="0/99")
        token = s.token(signer=signer)
        payload, mac = token.rsplit(".", 1)
        assert payload == s.token()
        # The MAC is HMAC-SHA256 of the payload, truncated to 128 bits, base64url unpadded.
        expected = base64.urlsafe_b64encode(
            hmac.new(KEY, payload.encode(), hashlib.sha256).digest()[:16]).rstrip(b"=").decode()
        assert mac == expected
        assert TOKEN_CHARS.match(token)
        assert Session.from_token(token, signer=signer) == s
        # Another key, no key, or an unsigned token where one is expected: refused.
        with pytest.raises(replikit.TokenError) as info:
            Session.from_token(token, signer=replikit.HmacSigner(b"another key, 16+ bytes"))
        assert info.value.argument == "token"
        with pytest.raises(replikit.TokenError):
            Session.from_token(token)
        with pytest.raises(replikit.TokenError):
            Session.from_token(s.token(), signer=signer)
        # Merge verifies too.
        m = Session()
        m.merge(token, signer=signer)
        assert m == s
        with pytest.raises(replikit.TokenError) as info:
            m.merge(token)
        assert info.value.argument == "other"

    @pytest.mark.skipif(not hasattr(replikit, "HmacSigner"), reason="built without OpenSSL")
    def test_tampered_tokens_are_refused(self):
        signer = replikit.HmacSigner(KEY)
        s = Session(write_lsn="3/1234ABCD", read_lsn="2/99")
        s.record_write(None, now_ns=77 * MS)
        token = s.token(signer=signer)
        alphabet = "0123456789abcdefx.ABCXYZ-_"
        tried = 0
        for i, ch in enumerate(token):
            for repl in alphabet:
                if repl == ch:
                    continue
                tampered = token[:i] + repl + token[i + 1:]
                tried += 1
                with pytest.raises(replikit.TokenError):
                    Session.from_token(tampered, signer=signer)
        for cut in range(len(token)):
            with pytest.raises(replikit.TokenError):
                Session.from_token(token[:cut], signer=signer)
        with pytest.raises(replikit.TokenError):
            Session.from_token(token + "0", signer=signer)
        assert tried > 500

    def test_callable_signer(self):
        seen = []

        def signer(payload):
            assert isinstance(payload, bytes)
            seen.append(payload)
            return hmac.new(KEY, payload, hashlib.sha256).digest()

        s = Session(write_lsn="0/1234")
        token = s.token(signer=signer)
        assert seen == [s.token().encode()]
        assert Session.from_token(token, signer=signer) == s
        if hasattr(replikit, "HmacSigner"):
            # HmacSigner and a Python hmac callable with the same key are interchangeable.
            assert token == s.token(signer=replikit.HmacSigner(KEY))
            assert Session.from_token(token, signer=replikit.HmacSigner(KEY)) == s
        with pytest.raises(replikit.TokenError):
            Session.from_token(token, signer=hmac_callable(b"a different key!!"))

    def test_signer_exceptions_propagate(self):
        class Boom(Exception):
            pass

        def signer(payload):
            raise Boom("key store unavailable")

        with pytest.raises(Boom):
            Session().token(signer=signer)
        with pytest.raises(Boom):
            Session.from_token("1.0.0.x.AAAAAAAAAAAAAAAAAAAAAA", signer=signer)


# --------------------------------------------------------------------------- Router
# Which node and reason a read gets in a given state: tests/testdata/routing/*.txt, run by
# test_routing_tables.py. Here: what the bindings add (API shape, in-flight guards, batches).


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
