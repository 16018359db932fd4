"""The leaderless quorum store from Python, with a Hypothesis property test."""

import math

import pytest
from hypothesis import given, settings, strategies as st

import replikit as rk


def test_quorum_database_is_the_simplest_configuration():
    db = rk.QuorumDatabase(3)
    assert (db.n, db.w, db.r, db.versioning) == (3, 2, 2, rk.Versioning.LAST_WRITER_WINS)
    assert db.put("k", "v1").ok
    assert db.put("k", "v2").ok
    assert db.get("k").value == "v2"
    same = rk.QuorumStore.majority(3)
    assert (same.w, same.r) == (2, 2)


def test_vector_clock_siblings_are_returned_never_silently_picked():
    s = rk.QuorumStore(3, 2, 2, versioning=rk.Versioning.VECTOR_CLOCKS)
    s.put("cart", "milk", client="alice")
    s.put("cart", "eggs", client="bob")
    read = s.get("cart")
    assert read.conflict and sorted(read.values) == ["eggs", "milk"]
    assert read.value is None
    assert rk.compare_clocks(read.context, {"alice": 1}) == rk.ClockOrder.AFTER
    s.put("cart", "eggs,milk", client="alice", context=read.context)
    assert s.get("cart").value == "eggs,milk"


def test_failures_hints_and_repair():
    s = rk.QuorumStore(3, 2, 2, hinted_handoff=True, read_repair=False)
    home = s.preference_list("k")[:3]
    s.fail_node(home[0])
    w = s.put("k", "v")
    assert w.ok and w.hinted == 1 and s.hints_pending == 1
    s.recover_node(home[0])
    assert s.hints_pending == 0
    assert [v.value for v in s.replica_versions(home[0], "k")] == ["v"]
    s.fail_node(home[1])
    s.fail_node(home[2])
    refused = s.put("k", "x")
    assert not refused.ok and refused.outcome == rk.QuorumOutcome.NOT_ENOUGH_REPLICAS
    assert s.stats()["writes_failed"] == 1


ops = st.lists(
    st.tuples(st.sampled_from(["fail", "recover", "latency", "advance", "put", "put", "get"]),
              st.integers(0, 5), st.integers(0, 2), st.integers(0, 19)),
    max_size=120,
)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(3, 5), w_extra=st.integers(0, 4), lww=st.booleans(), repair=st.booleans(),
       hinted=st.booleans(), program=ops)
def test_strong_quorum_never_reads_older_than_acknowledged(n, w_extra, lww, repair, hinted, program):
    w = 1 + w_extra % n
    r = n + 1 - w  # W + R > N
    versioning = rk.Versioning.LAST_WRITER_WINS if lww else rk.Versioning.VECTOR_CLOCKS
    s = rk.QuorumStore(n, w, r, nodes=n + 1, versioning=versioning, read_repair=repair, hinted_handoff=hinted,
                       max_hints=4)
    acknowledged = {}
    context = {}
    for step, (op, node, key_i, x) in enumerate(program):
        node %= n + 1
        key = f"k{key_i}"
        if op == "fail":
            s.fail_node(node)
        elif op == "recover":
            s.recover_node(node)
        elif op == "latency":
            s.set_node_latency_ms(node, float(x))
        elif op == "advance":
            s.advance_ms(float(x))
        elif op == "put":
            res = s.put(key, f"v{step}", client=f"c{x % 3}", context=context.get(key))
            if res.ok:
                acknowledged[key] = res.version
        else:
            res = s.get(key)
            if not res.ok:
                continue
            context[key] = res.context
            if key in acknowledged:
                assert res.found
                if lww:
                    assert res.siblings[0].timestamp >= acknowledged[key].timestamp
                else:
                    order = rk.compare_clocks(acknowledged[key].clock, res.context)
                    assert order in (rk.ClockOrder.BEFORE, rk.ClockOrder.EQUAL)


@pytest.mark.parametrize(
    "call, argument",
    [
        (lambda: rk.QuorumStore(0, 1, 1), "n"),
        (lambda: rk.QuorumStore(3, 4, 1), "w"),
        (lambda: rk.QuorumStore(3, 1, 0), "r"),
        (lambda: rk.QuorumStore(3, 2, 2, nodes=2), "nodes"),
        (lambda: rk.QuorumStore(3, 2, 2, versioning="lww"), "versioning"),
        (lambda: rk.QuorumStore(3, 2, 2, max_hints=0), "max_hints"),
        (lambda: rk.QuorumStore(3, 2, 2, max_hints=-1), "max_hints"),
        (lambda: rk.QuorumDatabase(0), "n"),
        (lambda: rk.QuorumStore().fail_node(3), "node"),
        (lambda: rk.QuorumStore().set_node_latency_ms(0, -1.0), "latency_ms"),
        (lambda: rk.QuorumStore().set_node_latency_ms(0, math.nan), "latency_ms"),
        (lambda: rk.QuorumStore().advance_ms(-1.0), "dt_ms"),
        (lambda: rk.QuorumStore().put("k", "v", context={"a": -1}), "context"),
        (lambda: rk.QuorumStore().put("k", "v", timestamp=0), "timestamp"),
        (lambda: rk.QuorumStore().put("k", "v", client=""), "client"),
    ],
)
def test_bad_input_raises_typed_error_naming_argument(call, argument):
    with pytest.raises(rk.InvalidArgument) as info:
        call()
    assert info.value.argument == argument


@pytest.mark.parametrize(
    "call, argument",
    [
        (lambda: rk.QuorumStore().put(1, "v"), "key"),
        (lambda: rk.QuorumStore().put("k", "v", context=[1]), "context"),
        (lambda: rk.QuorumStore(3, 2, 2, versioning=1), "versioning"),
        (lambda: rk.QuorumStore(3, 2, 2, read_repair=1), "read_repair"),
    ],
)
def test_wrong_type_raises_argument_type_error_naming_argument(call, argument):
    with pytest.raises(rk.ArgumentTypeError) as info:
        call()
    assert info.value.argument == argument
    assert isinstance(info.value, TypeError) and str(info.value).startswith(argument + ":")
