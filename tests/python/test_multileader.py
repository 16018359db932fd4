"""Multi-leader conflicts from Python."""

import math

import pytest

import replikit as rk


def test_conflicts_and_resolutions():
    c = rk.MultiLeaderCluster(2, rk.ConflictResolution.SIBLINGS, default_delay_ms=50)
    c.write(0, "k", "a", at_ms=0)
    c.write(1, "k", "b", at_ms=10)
    c.settle()
    assert c.conflicts() == [[0, 1], [1, 0]]
    assert c.read(0, "k").values == ["a", "b"]
    assert c.converged()

    counter = rk.MultiLeaderCluster(3, rk.ConflictResolution.COUNTER_MERGE)
    for leader in range(3):
        counter.write(leader, "likes", at_ms=1.0, delta=2)
    counter.settle()
    assert counter.read(2, "likes").counter == 6
    assert counter.total_conflicts == 3


def test_workload_counts_conflicts_per_region_pair():
    delays = [[0, 10, 120], [10, 0, 120], [120, 120, 0]]
    report = rk.run_multileader_workload([100, 100, 100], rk.ConflictResolution.LAST_WRITER_WINS, keys=20,
                                         duration_ms=3000, seed=5, replication_delay_ms=delays)
    again = rk.run_multileader_workload([100, 100, 100], rk.ConflictResolution.LAST_WRITER_WINS, keys=20,
                                        duration_ms=3000, seed=5, replication_delay_ms=delays)
    assert report == again
    assert report["converged"]
    pairs = {(p["leader_a"], p["leader_b"]): p["conflicts"] for p in report["pairs"]}
    assert pairs[(0, 2)] > pairs[(0, 1)] and pairs[(1, 2)] > pairs[(0, 1)]
    assert sum(pairs.values()) == report["total_conflicts"]


@pytest.mark.parametrize(
    "call, argument",
    [
        (lambda: rk.MultiLeaderCluster(1), "leaders"),
        (lambda: rk.MultiLeaderCluster(2, "lww"), "resolution"),
        (lambda: rk.MultiLeaderCluster(2, default_delay_ms=-1.0), "default_delay_ms"),
        (lambda: rk.MultiLeaderCluster(2, replication_delay_ms=[[0, 1]]), "replication_delay_ms"),
        (lambda: rk.MultiLeaderCluster(2, clock_skew_ms=[math.nan, 0]), "clock_skew_ms"),
        (lambda: rk.MultiLeaderCluster(2).write(5, "k", "v", at_ms=0), "leader"),
        (lambda: rk.MultiLeaderCluster(2).write(0, "k", "v", at_ms=math.nan), "at_ms"),
        (lambda: rk.run_multileader_workload([1.0]), "leaders"),
        (lambda: rk.run_multileader_workload([1.0, -1.0]), "writes_per_s"),
        (lambda: rk.run_multileader_workload([1.0, 1.0], keys=0), "keys"),
        (lambda: rk.run_multileader_workload([1e12, 1.0], duration_ms=1e9), "writes_per_s"),
    ],
)
def test_bad_input_raises_typed_error_naming_argument(call, argument):
    with pytest.raises(rk.InvalidArgument) as info:
        call()
    assert info.value.argument == argument
