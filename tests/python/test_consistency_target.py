"""EVENTUAL reads with a consistency probability target (p_consistent, within_ms) through the
bindings: the router's decisions and reasons, the tracker's measured probability, the session's
last write time, defaults read from the C++ structs, and bad input naming the argument."""

from __future__ import annotations

import math

import pytest

import replikit
from replikit import Consistency, LagTracker, Reason, Router, Session, Topology

MS = 1_000_000


def two_speeds():
    """Replica a replays each commit 3 ms after the primary, b 20 ms after (ten commits; the
    primary is sampled 1 ms before each too, so the delays at their most are 4 and 21 ms)."""
    t = Topology("p", ["a", "b"])
    lag = LagTracker(t)
    lag.primary_sample(100, now_ns=0)
    lag.replica_sample("a", 100, 100, now_ns=0)
    lag.replica_sample("b", 100, 100, now_ns=0)
    for k in range(1, 11):
        now = k * 100 * MS
        lsn = 100 + 100 * k
        lag.primary_sample(lsn - 100, now_ns=now - MS)
        lag.primary_sample(lsn, now_ns=now)
        lag.replica_sample("a", lsn, lsn, now_ns=now + 3 * MS)
        lag.replica_sample("b", lsn, lsn, now_ns=now + 20 * MS)
    return t, lag


def test_the_target_picks_replicas_by_their_measured_replay_delays():
    t, lag = two_speeds()
    router = Router(t)
    s = Session()
    wrote = 5_000 * MS
    s.record_write(5000, now_ns=wrote)
    assert s.last_write_ns == wrote
    d = router.route_read(s, "eventual", now_ns=wrote + 1 * MS, p_consistent=0.999)
    assert (d.node, d.reason) == ("p", Reason.NO_REPLICA_LIKELY_CONSISTENT)
    assert d.to_primary
    d = router.route_read(s, Consistency.EVENTUAL, now_ns=wrote + 5 * MS, p_consistent=0.999)
    assert (d.node, d.reason) == ("a", Reason.REPLICA_LIKELY_CONSISTENT)
    assert "REPLICA_LIKELY_CONSISTENT" in repr(d)
    nodes = {router.route_read(s, "eventual", now_ns=wrote + 25 * MS, p_consistent=0.999).node for _ in range(6)}
    assert nodes == {"a", "b"}
    # After within_ms the read is a plain EVENTUAL one.
    d = router.route_read(s, "eventual", now_ns=wrote + 25 * MS, p_consistent=0.999, within_ms=10)
    assert d.reason == Reason.REPLICA_AVAILABLE
    assert lag.consistent_probability("a", 5.0, write_lsn=s.write_lsn) == 1.0
    assert lag.consistent_probability("b", 5.0, s.write_lsn) == 0.0
    assert lag.consistent_probability("b", 25.0) == 1.0
    # Known to have replayed the write: probability 1 at once.
    assert lag.consistent_probability("b", 0.0, write_lsn="0/44C") == 1.0
    counts = router.counters()["by_reason"]
    assert counts["no_replica_likely_consistent"] == 1
    assert counts["replica_likely_consistent"] == 7


def test_session_and_reason_surface():
    s = Session()
    assert s.last_write_ns is None
    s.record_write(None, now_ns=42)  # an unknown commit LSN is a write too
    assert s.last_write_ns == 42
    merged = Session()
    merged.merge(s)
    assert merged.last_write_ns == 42
    # Host-local: the token does not carry it.
    assert Session.from_token(s.token()).last_write_ns is None
    assert Reason.NO_REPLICA_LIKELY_CONSISTENT.value == 12


def test_defaults_come_from_the_config_structs():
    # pybind11 renders the defaults (read from a default ReadOptions) into the signature line.
    signature = Router.route_read.__doc__.splitlines()[0]
    assert "p_consistent: object = None" in signature
    assert "within_ms: object = 1000.0" in signature


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.5, math.nan, math.inf])
def test_bad_probability_names_the_argument(bad):
    t, _ = two_speeds()
    s = Session()
    s.record_write(5000, now_ns=1)
    with pytest.raises(replikit.InvalidArgument) as e:
        Router(t).route_read(s, "eventual", now_ns=2, p_consistent=bad)
    assert e.value.argument == "p_consistent"


@pytest.mark.parametrize("bad", [-1, -1e-9, math.nan, math.inf, 2e10])
def test_bad_window_names_the_argument(bad):
    t, _ = two_speeds()
    with pytest.raises(replikit.InvalidArgument) as e:
        Router(t).route_read(Session(), "eventual", now_ns=2, p_consistent=0.9, within_ms=bad)
    assert e.value.argument == "within_ms"


@pytest.mark.parametrize("argument,value", [("p_consistent", "0.9"), ("p_consistent", [0.9]),
                                            ("within_ms", "10"), ("within_ms", None)])
def test_wrong_types_name_the_argument(argument, value):
    t, _ = two_speeds()
    with pytest.raises(replikit.ArgumentTypeError) as e:
        Router(t).route_read(Session(), "eventual", now_ns=2, **{argument: value})
    assert e.value.argument == argument


@pytest.mark.parametrize("level", ["read_your_writes", "monotonic", "causal", "strong"])
def test_the_target_is_for_eventual_reads_only(level):
    t, _ = two_speeds()
    with pytest.raises(replikit.InvalidArgument) as e:
        Router(t).route_read(Session(), level, now_ns=2, p_consistent=0.9)
    assert e.value.argument == "p_consistent"


def test_probability_bad_input():
    _, lag = two_speeds()
    with pytest.raises(replikit.InvalidArgument) as e:
        lag.consistent_probability("a", -1.0)
    assert e.value.argument == "elapsed_ms"
    with pytest.raises(replikit.ArgumentTypeError) as e:
        lag.consistent_probability("a", 1.0, write_lsn=1.5)
    assert e.value.argument == "write_lsn"
    with pytest.raises(replikit.NotFound):
        lag.consistent_probability("zz", 1.0)
