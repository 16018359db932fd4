"""One vocabulary for every door of the routing and quorum API.

Enum parameters take the member or its name (any case); a wrong type raises ArgumentTypeError
(a TypeError), a wrong value InvalidArgument (a ValueError), both naming the argument; nodes are
named by name; defaults come from the C++ config structs; renamed keywords keep working with a
DeprecationWarning; every value class has a readable repr in one style.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import replikit as rk
from replikit import Consistency, LagConfig, LagTracker, Node, Policy, Router, RouterConfig, Session, Topology

IA = rk.InvalidArgument
AT = rk.ArgumentTypeError
MS = 1_000_000


def world():
    t = Topology("p", [Node("r1", region="eu"), "r2"])
    lag = LagTracker(t)
    lag.primary_sample("0/100", now_ns=0)
    return t, lag, Router(t, seed=1)


# --------------------------------------------------------------------------- enums by name


@pytest.mark.parametrize("case", [str.lower, str.upper, str.title], ids=["lower", "upper", "mixed"])
def test_enum_parameters_take_names_in_any_case(case):
    t, _, _ = world()
    for policy in Policy:
        assert Router(t, policy=case(policy.name)).policy is policy
        assert RouterConfig(policy=case(policy.name)).policy is policy
    router = Router(t, seed=1)
    for consistency in Consistency:
        kwargs = {"max_staleness_ms": 1e6} if consistency is Consistency.BOUNDED_STALENESS else {}
        by_name = router.route_read(Session(), case(consistency.name), now_ns=0, **kwargs)
        by_member = router.route_read(Session(), consistency, now_ns=0, **kwargs)
        assert by_name.reason is by_member.reason
        nodes, reasons = router.route_reads([0], consistency=case(consistency.name), now_ns=0, **kwargs)
        assert Reason_of(reasons[0]) is by_member.reason
    assert rk.minimum_quorum(5, case("strong")).w == rk.minimum_quorum(5, rk.ConsistencyGoal.STRONG).w
    assert rk.QuorumStore(versioning=case("vector_clocks")).versioning is rk.Versioning.VECTOR_CLOCKS
    cluster = rk.MultiLeaderCluster(2, case("siblings"))
    cluster.write(0, "k", "a", at_ms=0)
    cluster.write(1, "k", "b", at_ms=0)
    cluster.settle()
    assert cluster.read(0, "k").values == ["a", "b"]  # siblings kept: the name was understood


def Reason_of(value) -> rk.Reason:
    return rk.Reason(int(value))


@pytest.mark.parametrize(
    "call, argument, valid",
    [
        (lambda t, r: Router(t, policy="fastest"), "policy", "'round_robin', 'weighted', 'least_lag'"),
        (lambda t, r: r.route_read(Session(), "sometimes", now_ns=0), "consistency", "'eventual', 'read_your_writes'"),
        (lambda t, r: r.route_reads([1], consistency="never", now_ns=0), "consistency", "'strong'"),
        (lambda t, r: RouterConfig(policy=""), "policy", "'nearest_region'"),
        (lambda t, r: rk.minimum_quorum(3, "strongest"), "goal", "'strong', 'eventual'"),
        (lambda t, r: rk.QuorumStore(versioning="lww"), "versioning", "'last_writer_wins', 'vector_clocks'"),
        (lambda t, r: rk.MultiLeaderCluster(2, "merge"), "resolution", "'counter_merge', 'set_merge'"),
    ],
)
def test_unknown_enum_names_list_the_valid_ones(call, argument, valid):
    t, _, router = world()
    with pytest.raises(IA) as info:
        call(t, router)
    assert info.value.argument == argument
    assert valid in str(info.value) and "expected one of" in str(info.value)


# --------------------------------------------------------------------------- wrong type vs wrong value


@pytest.mark.parametrize(
    "call, exc, argument",
    [
        (lambda t, r: Router(t, time_window_ms="x"), AT, "time_window_ms"),
        (lambda t, r: Router(t, time_window_ms=-1.0), IA, "time_window_ms"),
        (lambda t, r: Router(t, seed="x"), AT, "seed"),
        (lambda t, r: Router(t, seed=-1), IA, "seed"),
        (lambda t, r: Router(t, policy=1), AT, "policy"),
        (lambda t, r: Router("t"), AT, "topology"),
        (lambda t, r: r.route_read("not a session"), AT, "session"),
        (lambda t, r: r.route_read(Session(), now_ns="now"), AT, "now_ns"),
        (lambda t, r: r.route_read(Session(), now_ns=-1), IA, "now_ns"),
        (lambda t, r: r.route_read(Session(), "bounded_staleness", now_ns=0, max_staleness_ms="1"), AT,
         "max_staleness_ms"),
        (lambda t, r: LagTracker(t, max_lag_ms="1s"), AT, "max_lag_ms"),
        (lambda t, r: LagTracker(t, max_lag_ms=-1), IA, "max_lag_ms"),
        (lambda t, r: LagTracker(t, config={"max_lag_ms": 1}), AT, "config"),
        (lambda t, r: LagConfig(history_capacity="big"), AT, "history_capacity"),
        (lambda t, r: setattr(LagConfig(), "max_lag_ms", float("nan")), IA, "max_lag_ms"),
        (lambda t, r: setattr(RouterConfig(), "sticky_reads", 0), IA, "sticky_reads"),
        (lambda t, r: t.set_up("r1", 1), AT, "up"),
        (lambda t, r: t.set_weight("r1", -1.0), IA, "weight"),
        (lambda t, r: t.info(1.0), AT, "node"),
        (lambda t, r: Node(5), AT, "name"),
        (lambda t, r: Session.from_token(b"1.0.0.x"), AT, "token"),
        (lambda t, r: rk.analyze_quorum(3, 2, 2, "high"), AT, "p_up"),
        (lambda t, r: rk.analyze_quorum(3, 2, 2, 2.0), IA, "p_up"),
        (lambda t, r: rk.QuorumStore(read_repair="yes"), AT, "read_repair"),
        (lambda t, r: rk.WarsSimulation(3, 1, 1, "lnkd"), AT, "model"),
        (lambda t, r: rk.LatencyDistribution.constant(-1.0), IA, "value_ms"),
    ],
)
def test_wrong_type_and_wrong_value_name_the_argument(call, exc, argument):
    t, _, router = world()
    with pytest.raises(exc) as info:
        call(t, router)
    assert type(info.value) is exc
    assert info.value.argument == argument and str(info.value).startswith(argument + ":")
    assert isinstance(info.value, TypeError if exc is AT else ValueError)
    assert "incompatible function arguments" not in str(info.value)


# --------------------------------------------------------------------------- nodes by name


def test_decision_event_and_lag_name_their_node():
    t, lag, router = world()
    d = router.route_write()
    assert d.node == "p" and isinstance(d.node, str)
    d = router.route_read(Session(), "eventual", now_ns=0)
    assert d.node in ("r1", "r2")
    with pytest.deprecated_call(match="use 'node'"):
        assert d.node_name == d.node
    t.set_up("p", False)
    assert router.route_write().node is None
    lag.primary_sample("0/200", now_ns=1000 * MS)
    lag.replica_sample("r1", "0/100", "0/100", now_ns=2000 * MS)
    assert lag.replica("r1").node == "r1" and [x.node for x in lag.replicas()] == ["r1", "r2"]
    events = lag.events()
    assert [(e.node, e.kind) for e in events] == [("r1", rk.LagEventKind.BECAME_LAGGING)]
    with pytest.deprecated_call(match="use 'lag_ms'"):
        assert events[0].lag_ns == round(events[0].lag_ms * MS)
    with router.in_flight("r2") as node:
        assert node == "r2"


def test_route_reads_answers_with_indexes_that_map_to_names():
    t, _, router = world()
    t.set_up("r1", False)
    t.set_up("r2", False)
    t.set_up("p", False)
    nodes, reasons = router.route_reads(np.zeros(3, dtype=np.uint64), consistency="strong", now_ns=0)
    assert nodes.tolist() == [-1, -1, -1]  # -1: no node (Decision.node None)
    t.set_up("p", True)
    nodes, _ = router.route_reads(np.zeros(2, dtype=np.uint64), consistency="strong", now_ns=0)
    names = np.array([t.name(i) for i in range(len(t))])
    assert names[nodes].tolist() == ["p", "p"]


# --------------------------------------------------------------------------- defaults from C++


def test_default_consistency_is_read_your_writes_everywhere():
    assert rk.DEFAULT_CONSISTENCY is Consistency.READ_YOUR_WRITES
    t, lag, router = world()
    lag.replica_sample("r1", "0/100", "0/100", now_ns=0)
    lag.replica_sample("r2", "0/50", "0/50", now_ns=0)
    s = Session(write_lsn="0/100")
    for k in range(6):
        d = router.route_read(s, now_ns=k)
        assert (d.node, d.reason) == ("r1", rk.Reason.REPLICA_CAUGHT_UP)
    nodes, reasons = router.route_reads(np.full(4, 0x100, dtype=np.uint64), now_ns=0)
    assert [t.name(i) for i in nodes] == ["r1"] * 4
    assert {rk.Reason(int(x)) for x in reasons} == {rk.Reason.REPLICA_CAUGHT_UP}


def test_defaults_are_the_cpp_struct_defaults():
    lc = LagConfig()
    assert (lc.max_lag_ms, lc.recover_lag_ms, lc.max_lag_bytes, lc.recover_lag_bytes, lc.stale_sample_ms,
            lc.history_capacity, lc.event_capacity) == (1000.0, None, 0, None, 1000.0, 8192, 1024)
    t, _, _ = world()
    resolved = LagTracker(t).config
    assert resolved.max_lag_ms == lc.max_lag_ms and resolved.recover_lag_ms == lc.max_lag_ms / 2
    assert resolved.recover_lag_bytes == 0
    # recover_lag_ms follows max_lag_ms (half of it) unless given, in every door.
    assert LagTracker(t, max_lag_ms=300).config.recover_lag_ms == 150
    assert LagTracker(t, config=LagConfig(max_lag_ms=300)).config.recover_lag_ms == 150
    assert LagTracker(t, max_lag_bytes=1000).config.recover_lag_bytes == 500
    rc = RouterConfig()
    assert (rc.policy, rc.time_window_ms, rc.seed, rc.region, rc.sticky_reads) == (Policy.ROUND_ROBIN, 2000.0, 0, "", 1)
    assert Router(t).config == rc
    n = Node("x")
    assert (n.region, n.weight, n.priority, n.up) == ("", 1.0, 0, True)


def test_keywords_fill_the_config_object():
    t, _, _ = world()
    base = LagConfig(max_lag_ms=400, stale_sample_ms=50)
    got = LagTracker(t, recover_lag_ms=100, config=base).config
    assert (got.max_lag_ms, got.recover_lag_ms, got.stale_sample_ms) == (400, 100, 50)
    assert base.recover_lag_ms is None  # the config object is not changed
    cfg = RouterConfig(policy="least_lag", seed=7)
    router = Router(t, sticky_reads=4, config=cfg)
    assert router.config == RouterConfig(policy=Policy.LEAST_LAG, seed=7, sticky_reads=4)
    cfg.time_window_ms = 10
    cfg.policy = "WEIGHTED"
    assert (cfg.time_window_ms, cfg.policy) == (10.0, Policy.WEIGHTED)
    assert router.config.time_window_ms == 2000.0  # a copy was taken


# --------------------------------------------------------------------------- deprecated keywords


@pytest.mark.parametrize(
    "old, new, value, attribute",
    [
        ("lag_ms_max", "max_lag_ms", 300.0, "max_lag_ms"),
        ("recover_ms", "recover_lag_ms", 100.0, "recover_lag_ms"),
        ("lag_bytes_max", "max_lag_bytes", 1000, "max_lag_bytes"),
        ("recover_bytes", "recover_lag_bytes", 10, "recover_lag_bytes"),
    ],
)
def test_old_lag_keywords_still_work_with_a_deprecation_warning(old, new, value, attribute):
    t, _, _ = world()
    with pytest.warns(DeprecationWarning, match=f"'{old}' is deprecated, use '{new}'"):
        lag = LagTracker(t, **{old: value})
    assert getattr(lag.config, attribute) == value
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert getattr(LagTracker(t, **{new: value}).config, attribute) == value  # the new name: no warning
    with pytest.raises(AT) as info, pytest.warns(DeprecationWarning):
        LagTracker(t, **{old: value, new: value})
    assert info.value.argument == new


def test_unknown_keyword_is_an_argument_type_error():
    t, _, _ = world()
    with pytest.raises(AT) as info:
        LagTracker(t, max_lag=5)
    assert info.value.argument == "max_lag"


# --------------------------------------------------------------------------- reprs


def test_reprs_in_one_style():
    t, lag, router = world()
    assert repr(t) == "Topology(primary='p', replicas=['r1', 'r2'], epoch=1)"
    assert repr(Node("r1", region="eu")) == "Node(name='r1', region='eu', weight=1.0, priority=0, up=True)"
    assert repr(t.info("r1")).startswith("NodeInfo(name='r1', role=<Role.REPLICA: 1>, up=True, replay_lsn=Lsn(")
    assert repr(LagConfig()) == ("LagConfig(max_lag_ms=1000.0, recover_lag_ms=None, max_lag_bytes=0, "
                                 "recover_lag_bytes=None, stale_sample_ms=1000.0, history_capacity=8192, "
                                 "event_capacity=1024)")
    assert repr(RouterConfig()) == ("RouterConfig(policy=<Policy.ROUND_ROBIN: 0>, time_window_ms=2000.0, seed=0, "
                                    "region='', sticky_reads=1)")
    assert repr(router) == f"Router(topology={t!r}, config={router.config!r})"
    assert repr(lag) == f"LagTracker(primary_lsn=Lsn('0/100'), config={lag.config!r})"
    assert repr(router.route_write()) == "Decision(node='p', reason=<Reason.WRITE: 0>)"
    t.set_up("p", False)
    assert repr(router.route_write()) == "Decision(node=None, reason=<Reason.PRIMARY_DOWN: 10>)"
    assert repr(Session(write_lsn="0/5")) == "Session(write_lsn=Lsn('0/5'), read_lsn=Lsn('0/0'))"
    assert repr(lag.replica("r1")) == "ReplicaLag(node='r1', lag_ms=0.0, lag_bytes=0, state=<LagState.OK: 0>)"
    lag.primary_sample("0/200", now_ns=1000 * MS)
    lag.replica_sample("r1", "0/100", "0/100", now_ns=2000 * MS)
    assert repr(lag.events()[0]).startswith("LagEvent(sequence=1, node='r1', kind=<LagEventKind.BECAME_LAGGING: 0>")
    assert repr(rk.analyze_quorum(3, 2, 2)) == "QuorumAnalysis(n=3, w=2, r=2, strong=True)"
    assert repr(rk.minimum_quorum(5)) == "QuorumChoice(n=5, failed_nodes=0, w=3, r=3)"
    assert repr(rk.minimum_quorum(3, failed_nodes=3)).startswith("QuorumChoice(feasible=False, reason='")
    store = rk.QuorumStore()
    assert repr(store.put("k", "v")) == "WriteResult(ok=True, acks=2)"
    assert repr(store.get("k")) == "ReadResult(ok=True, siblings=1)"


@pytest.mark.skipif(not hasattr(rk, "HmacSigner"), reason="built without OpenSSL")
def test_no_secret_in_reprs():
    signer = rk.HmacSigner(b"super-secret-key-0123")
    s = Session(write_lsn=9)
    s.merge(s.token(signer=signer), signer=signer)
    assert "secret" not in repr(s) and "secret" not in repr(signer)
