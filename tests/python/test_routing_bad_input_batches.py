"""Bad input to batched routing (Router.route_reads' arrays), objects without constructors,
and random junk at every public routing function: a typed error naming the argument, never a
crash (the rest of the cases: test_routing_bad_input.py).

The last test throws random junk at every function (Hypothesis, derandomized): any outcome is
allowed except a crash, a hang, or an exception outside replikit.Error / TypeError; and an
InvalidArgument or ArgumentTypeError must name one of the function's own parameters.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import replikit
from replikit import Consistency, LagTracker, Lsn, Node, Policy, Router, Session, Topology
from routing_bad_input_helpers import AT, IA, INF, NAN, expect, world


BAD_ARRAYS = [
    np.array([1.0, 2.0]),
    np.array([NAN]),
    np.array([INF]),
    np.array([-1, 5]),
    np.array([np.iinfo(np.int64).min]),
    np.array([True, False]),
    np.array([[1, 2], [3, 4]]),
    np.zeros((2, 0), dtype=np.uint64),
    np.array(5, dtype=np.uint64),  # 0-D
    np.array([1 + 2j]),
    np.array(["0/1", "junk"]),
    np.array(["2020-01-01"], dtype="datetime64[D]"),
    [1, -1],
    [1.5],
    ["0/1", "nope"],
    [[1], [2, 3]],
    [None],
    [2**64],
    "0/1",
    5,
    None,
    object(),
]


@pytest.mark.parametrize("bad", BAD_ARRAYS, ids=lambda a: repr(a)[:40])
def test_route_reads_rejects_bad_arrays(bad):
    _, _, router = world()
    exc = AT if isinstance(bad, list) and bad == [None] else IA  # None is no LSN (a wrong type)
    if bad is not None:
        expect(lambda: router.route_reads(bad, now_ns=0), exc, "write_lsns")
    expect(lambda: router.route_reads(np.zeros(1, dtype=np.uint64), bad if bad is not None else [[1]], now_ns=0),
           exc, "read_lsns")
    assert router.counters()["total"] == 0


def test_route_reads_length_mismatch():
    _, _, router = world()
    expect(lambda: router.route_reads([1, 2, 3], [1, 2], now_ns=0), IA, "read_lsns")
    expect(lambda: router.route_reads([], [1], now_ns=0), IA, "read_lsns")


def test_route_reads_huge_batch_is_fine():
    _, _, router = world()
    n = 200_000
    nodes, reasons = router.route_reads(np.zeros(n, dtype=np.uint64), now_ns=0)
    assert nodes.shape == (n,) and set(np.unique(nodes).tolist()) == {1, 2}


def test_objects_without_constructors():
    for cls in (replikit.NodeInfo, replikit.ReplicaLag, replikit.LagEvent, replikit.Decision,
                replikit.InFlight, replikit.TokenSigner):
        with pytest.raises(TypeError):
            cls()


# --------------------------------------------------------------------------- random junk, nothing crashes

JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40), st.binary(max_size=40),
    st.sampled_from(["0/0", "0/1", "FFFFFFFF/FFFFFFFF", "r1", "r2", "p", "eu", "1.0.0.x", "1.5.6.x",
                     "x" * 300, "\x00", "0/1\x00"]),
    st.lists(st.integers(-5, 2**65), max_size=4), st.just(object()),
    st.sampled_from([Lsn(5), Session(), Node("junk"), np.array([1, 2], dtype=np.int64), np.array([NAN]),
                     np.uint64(3), np.int32(-1), Consistency.STRONG, Policy.WEIGHTED]),
)


def _calls():
    """(name, parameter names, function taking those arguments), over a fresh world each time."""
    t, lag, router = world()
    s = Session(write_lsn=5)
    return [
        ("Lsn", ("value",), Lsn),
        ("lsn_diff_bytes", ("a", "b"), replikit.lsn_diff_bytes),
        ("Node", ("name", "region", "weight", "priority", "up"), Node),
        ("Topology", ("primary", "replicas"), Topology),
        ("Topology.add_replica", ("node",), t.add_replica),
        ("Topology.remove_replica", ("name",), t.remove_replica),
        ("Topology.set_up", ("name", "up"), t.set_up),
        ("Topology.set_weight", ("name", "weight"), t.set_weight),
        ("Topology.set_priority", ("name", "priority"), t.set_priority),
        ("Topology.promote", ("name",), t.promote),
        ("Topology.index_of", ("name",), t.index_of),
        ("Topology.name", ("index",), t.name),
        ("Topology.region_id", ("region",), t.region_id),
        ("Topology.info", ("node",), t.info),
        ("LagTracker", ("topology", "max_lag_ms", "recover_lag_ms", "max_lag_bytes", "recover_lag_bytes",
                        "stale_sample_ms", "history_capacity", "event_capacity"),
         lambda *a: LagTracker(t, *a[1:])),
        ("LagTracker.primary_sample", ("current_lsn", "now_ns"), lag.primary_sample),
        ("LagTracker.replica_sample", ("node", "receive_lsn", "replay_lsn", "now_ns"), lag.replica_sample),
        ("LagTracker.replica", ("node",), lag.replica),
        ("LagTracker.events", ("after_sequence", "max_events"), lag.events),
        ("LagTracker.primary_time_past", ("lsn",), lag.primary_time_past),
        ("HmacSigner", ("key",), getattr(replikit, "HmacSigner", Lsn)),
        ("Session", ("write_lsn", "read_lsn"), Session),
        ("Session.record_write", ("commit_lsn", "now_ns"), s.record_write),
        ("Session.observe", ("lsn",), s.observe),
        ("Session.merge", ("other", "signer"), s.merge),
        ("Session.token", ("signer",), s.token),
        ("Session.from_token", ("token", "signer"), Session.from_token),
        ("Router", ("topology", "policy", "time_window_ms", "seed", "region", "sticky_reads"),
         lambda *a: Router(t, *a[1:])),
        ("Router.route_read", ("session", "consistency", "now_ns", "max_staleness_ms", "region"),
         lambda *a: router.route_read(*a) if len(a) >= 3 else router.route_read(*a, now_ns=0)),
        ("Router.route_reads", ("write_lsns", "read_lsns", "consistency", "now_ns", "max_staleness_ms"),
         router.route_reads),
        ("Router.begin", ("node",), router.begin),
        ("Router.end", ("node",), router.end),
        ("Router.in_flight", ("node",), router.in_flight),
    ]


CALL_NAMES = [c[0] for c in _calls()]


@settings(max_examples=1500, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(which=st.sampled_from(CALL_NAMES), data=st.data())
def test_random_junk_never_crashes(which, data):
    name, params, fn = next(c for c in _calls() if c[0] == which)
    n = data.draw(st.integers(1, len(params)), label="positional arguments")
    args = [data.draw(JUNK, label=p) for p in params[:n]]
    try:
        fn(*args)
    except replikit.InvalidArgument as e:
        assert e.argument in params + ("spec", "in_flight"), (name, e.argument, str(e))
        assert isinstance(e, ValueError)
    except replikit.ArgumentTypeError as e:
        assert e.argument in params, (name, e.argument, str(e))
        assert isinstance(e, TypeError)
    except (replikit.Error, TypeError):
        pass
