"""Multi-leader conflicts from Python."""

import math

import numpy as np
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


def test_set_merge_queue_is_linear_in_writes():
    # Every write stays queued (delay longer than the run): with a full copy of the key's state
    # per message the queue held ~writes^2/2 elements; now a fixed few hundred bytes per write.
    def peak_bytes(writes):
        report = rk.run_multileader_workload([1000.0, 1000.0], rk.ConflictResolution.SET_MERGE, keys=1,
                                             duration_ms=writes / 2, seed=1, default_delay_ms=1e9)
        assert report["converged"]
        stats = report["stats"]
        assert stats["bytes_in_flight"] == 0 and stats["messages_in_flight"] == 0
        assert stats["peak_messages_in_flight"] == report["writes"]
        return stats["peak_bytes_in_flight"] / report["writes"]

    small, large = peak_bytes(2_000), peak_bytes(20_000)
    assert large < 600
    assert large <= small * 1.05


def test_byte_bound_refuses_writes_until_replication_drains():
    c = rk.MultiLeaderCluster(2, rk.ConflictResolution.SET_MERGE, default_delay_ms=100, max_in_flight_bytes=10_000)
    with pytest.raises(rk.CapacityExceeded, match="max_in_flight_bytes=10000"):
        for i in range(1_000):
            c.write(0, "k", f"e{i}", at_ms=0)
    accepted = c.writes
    stats = c.stats()
    assert 0 < accepted < 1_000
    assert stats.peak_bytes_in_flight <= 10_000 and stats.messages_in_flight == accepted
    assert "MultiLeaderStats(messages_in_flight=" in repr(stats)
    c.write(0, "k", "later", at_ms=100)  # the queue drained at 100 ms
    c.settle()
    assert len(c.read(1, "k").values) == accepted + 1
    assert c.stats().bytes_in_flight == 0


@pytest.mark.parametrize(
    "call, error, argument",
    [
        (lambda: rk.MultiLeaderCluster(2, max_in_flight_bytes=0), rk.InvalidArgument, "max_in_flight_bytes"),
        (lambda: rk.MultiLeaderCluster(2, max_in_flight_bytes="x"), rk.ArgumentTypeError, "max_in_flight_bytes"),
        (lambda: rk.run_multileader_workload([1.0, 1.0], max_in_flight_bytes=-5), rk.InvalidArgument,
         "max_in_flight_bytes"),
        (lambda: rk.MultiLeaderCluster(2, replication_delay_ms=np.array(5)), rk.ArgumentTypeError,
         "replication_delay_ms"),
        (lambda: rk.run_multileader_workload([1.0, 1.0], replication_delay_ms=np.array(5)), rk.ArgumentTypeError,
         "replication_delay_ms"),
        (lambda: rk.MultiLeaderCluster(2, replication_delay_ms=np.zeros(2)), rk.InvalidArgument,
         "replication_delay_ms"),
        (lambda: rk.MultiLeaderCluster(2, replication_delay_ms=np.zeros((2, 2, 1))), rk.InvalidArgument,
         "replication_delay_ms"),
        (lambda: rk.MultiLeaderCluster(2, replication_delay_ms=[5, 5]), rk.InvalidArgument, "replication_delay_ms"),
    ],
)
def test_bad_bounds_and_matrices_name_the_argument(call, error, argument):
    with pytest.raises(error) as info:
        call()
    assert info.value.argument == argument


def test_delay_matrix_as_2d_array():
    c = rk.MultiLeaderCluster(2, rk.ConflictResolution.SET_MERGE, replication_delay_ms=np.array([[0.0, 5.0], [5.0, 0.0]]))
    c.write(0, "k", "a", at_ms=0)
    c.run_until(5)
    assert c.read(1, "k").values == ["a"]
