"""Quorum math from Python: brute-force agreement, the 5-node exercise, records, typed errors."""

import itertools
import math

import pytest

import replikit as rk


def _subsets(n, k):
    return [frozenset(c) for c in itertools.combinations(range(n), k)]


@pytest.mark.parametrize("n", range(1, 8))
def test_strong_and_conflict_agree_with_set_intersection(n):
    for w in range(1, n + 1):
        ws = _subsets(n, w)
        assert rk.writes_may_conflict(n, w) == any(not (a & b) for a in ws for b in ws)
        for r in range(1, n + 1):
            rs = _subsets(n, r)
            assert rk.is_strong_quorum(n, w, r) == all(a & b for a in ws for b in rs)


@pytest.mark.parametrize("p", [0.0, 0.3, 0.9, 1.0])
def test_availability_agrees_with_failure_set_enumeration(p):
    for n in range(1, 8):
        for k in range(1, n + 1):
            total = 0.0
            for up in itertools.product([0, 1], repeat=n):
                u = sum(up)
                if u >= k:
                    total += p ** u * (1 - p) ** (n - u)
            assert rk.read_availability(n, k, p) == pytest.approx(total, abs=1e-12)
            assert rk.write_availability(n, k, p) == pytest.approx(total, abs=1e-12)


def test_five_node_exercise_is_one_call_each():
    strong = rk.minimum_quorum(5, rk.ConsistencyGoal.STRONG)
    assert (strong.feasible, strong.w, strong.r) == (True, 3, 3)
    eventual = rk.minimum_quorum(5, rk.ConsistencyGoal.EVENTUAL)
    assert (eventual.w, eventual.r) == (1, 1)
    one_down = rk.minimum_quorum(5, rk.ConsistencyGoal.STRONG, failed_nodes=1)
    assert (one_down.feasible, one_down.w, one_down.r) == (True, 3, 3)
    three_down = rk.minimum_quorum(5, failed_nodes=3)
    assert not three_down.feasible and three_down.reason


def test_table_records_and_analysis():
    rows = rk.quorum_table(5, 0.9)
    assert len(rows) == 25
    assert {"n", "w", "r", "strong", "read_availability", "write_availability"} <= set(rows[0])
    row = next(x for x in rows if x["w"] == 3 and x["r"] == 3)
    a = rk.analyze_quorum(5, 3, 3, 0.9)
    assert a.to_dict() == row
    assert row["strong"] and not row["writes_may_conflict"]
    assert row["read_fault_tolerance"] == 2
    assert row["stale_read_probability"] == 0.0
    assert rk.stale_read_probability(3, 1, 1) == pytest.approx(2 / 3)
    assert len(rk.quorum_table(64)) == 64 * 64


def test_quorum_dataframe_helper():
    from replikit.quorum import quorum_dataframe

    table = quorum_dataframe(4)
    assert len(table) == 16


@pytest.mark.parametrize(
    "call, argument",
    [
        (lambda: rk.is_strong_quorum(0, 1, 1), "n"),
        (lambda: rk.is_strong_quorum(3, 4, 1), "w"),
        (lambda: rk.is_strong_quorum(3, 1, 4), "r"),
        (lambda: rk.analyze_quorum(3, 2, 2, -0.1), "p_up"),
        (lambda: rk.analyze_quorum(3, 2, 2, 1.1), "p_up"),
        (lambda: rk.read_availability(3, 2, math.nan), "p_up"),
        (lambda: rk.quorum_table(0), "n"),
        (lambda: rk.quorum_table(300), "n"),
        (lambda: rk.minimum_quorum(5, failed_nodes=6), "failed_nodes"),
        (lambda: rk.minimum_quorum(5, "sometimes"), "goal"),
        (lambda: rk.is_strong_quorum(2**70, 1, 1), "n"),
    ],
)
def test_bad_input_raises_typed_error_naming_argument(call, argument):
    with pytest.raises(rk.InvalidArgument) as info:
        call()
    assert info.value.argument == argument
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "call, argument",
    [
        (lambda: rk.is_strong_quorum("3", 1, 1), "n"),
        (lambda: rk.is_strong_quorum(3.0, 1, 1), "n"),
        (lambda: rk.is_strong_quorum(True, 1, 1), "n"),
        (lambda: rk.analyze_quorum(3, 2, 2, "0.5"), "p_up"),
        (lambda: rk.minimum_quorum(5, 1), "goal"),
    ],
)
def test_wrong_type_raises_argument_type_error_naming_argument(call, argument):
    with pytest.raises(rk.ArgumentTypeError) as info:
        call()
    assert info.value.argument == argument
    assert isinstance(info.value, TypeError) and str(info.value).startswith(argument + ":")
