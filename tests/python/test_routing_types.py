"""Unit tests of the routing part of the Python API: the values it is built from. LSNs,
enums, constants and errors, Node / NodeInfo / Topology.

Every test passes `now_ns` explicitly: nothing here depends on the wall clock.
"""

from __future__ import annotations

import enum
import pickle

import pytest

from routing_helpers import make

import replikit
from replikit import (
    Consistency,
    LagEventKind,
    LagState,
    Lsn,
    Node,
    Policy,
    Reason,
    Role,
    Session,
    Topology,
)


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
