"""What a replikit.sim run computes: determinism by seed, numpy outputs and dicts by name,
conservation, staleness per consistency level, time windows, replayed workloads, sweeps
(threads and the GIL)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import replikit
from replikit.sim import SimConfig, SimResult, simulate, summary, sweep

from sim_helpers import SEED, busy


def test_same_seed_same_result_and_a_different_seed_differs():
    c = busy()
    a, b = simulate(c, SEED), simulate(c, SEED)
    assert a.to_dict().keys() == b.to_dict().keys()
    assert a.events == b.events and a.levels == b.levels and a.failover == b.failover and a.nodes == b.nodes
    for name in a.lag_ms:
        np.testing.assert_array_equal(a.lag_ms[name], b.lag_ms[name])
    assert simulate(c, SEED + 1).events != a.events


def test_outputs_are_numpy_arrays_and_dicts_by_name():
    r = simulate(busy(), SEED)
    assert isinstance(r, SimResult)
    assert r.sample_times_ms.dtype == np.float64 and r.sample_times_ms.ndim == 1
    assert set(r.lag_ms) == {"replica1", "replica2", "replica3"}
    assert all(v.shape == r.sample_times_ms.shape for v in r.lag_ms.values())
    # replica2 was paused for 700 ms: its lag reached most of that, and the tracker saw it
    # (from probes every 5 ms: within a probe interval and a sample of the truth).
    assert np.nanmax(r.lag_ms["replica2"]) > 500
    tracked = r.tracked_lag_ms["replica2"]
    assert tracked.shape == r.sample_times_ms.shape
    assert abs(np.nanmax(tracked) - np.nanmax(r.lag_ms["replica2"])) < 20
    assert set(r.nodes) == {"primary", "replica1", "replica2", "replica3"}
    assert 0 <= r.nodes["primary"]["utilisation"] <= 1
    assert sum(r.primary_read_reasons.values()) == r.reads_routed_to_primary
    assert set(r.primary_read_reasons) <= {"strong_read", "recent_write", "all_replicas_lagging",
                                           "no_replica_caught_up", "no_replica_fresh", "no_replica_up"}
    row = summary(r)
    assert row["writes_acknowledged"] == r.writes_acknowledged and "stale_eventual" in row


@pytest.mark.parametrize("mode", ["async", "semi_sync", "sync", "remote_apply"])
def test_conservation(mode):
    for drain_ms, queue in ((10_000, 10_000), (1, 3)):
        r = simulate(busy(mode=mode, drain_ms=drain_ms, max_queue_length=queue), SEED)
        assert r.conserved
        assert r.writes_submitted == r.writes_acknowledged + r.writes_failed + r.writes_pending
        assert r.reads_submitted == r.reads_answered + r.reads_failed + r.reads_pending
        assert sum(r.writes_failed_by.values()) == r.writes_failed
        assert sum(r.reads_failed_by.values()) == r.reads_failed
        assert sum(v["submitted"] for v in r.levels.values()) == r.reads_submitted


def test_read_your_writes_and_strong_reads_are_never_stale():
    r = simulate(busy(), SEED)
    for level in ("read_your_writes", "strong", "monotonic", "causal"):
        assert r.levels[level]["answered"] > 500, level
        assert r.stale_read_rate[level] == 0.0, level
    assert r.stale_read_rate["eventual"] > 0  # the replicas do lag: the check is not vacuous
    assert r.levels["read_your_writes"]["served_by_primary"] < r.levels["read_your_writes"]["answered"]


def test_windows_split_reads_and_lag_by_time_deterministically():
    c = SimConfig(duration_ms=3000, write_rate_per_s=200, read_rate_per_s=2000, sessions=50,
                  consistency_mix={"eventual": 1, "read_your_writes": 1},
                  replica_latency=replikit.LatencyDistribution.exponential(2.0), crash_primary_at_ms=1000,
                  promote_ms=100, repoint_ms=300, window_edges_ms=[0, 1000, 2000, 3000])
    assert c.window_edges_ms == [0.0, 1000.0, 2000.0, 3000.0]
    r = simulate(c, SEED)
    assert r.to_dict()["failover_windows"] == r.failover_windows
    assert [w["name"] for w in r.windows] == ["window 0", "window 1", "window 2"]
    phases = r.failover_windows
    assert list(phases) == ["before_crash", "outage", "after_recovery"]
    assert phases["outage"]["from_ms"] == 1000.0
    assert phases["after_recovery"]["from_ms"] == pytest.approx(1000.0 + r.failover["recovery_ms"])
    for windows in (r.windows, list(phases.values())):
        assert sum(w["reads_submitted"] for w in windows) == r.reads_submitted
        assert sum(w["reads_answered"] for w in windows) == r.reads_answered
        assert sum(w["reads_failed"] for w in windows) == r.reads_failed
        assert (sum(w["levels"]["eventual"]["stale"] for w in windows) == r.levels["eventual"]["stale"])
    # The surviving standby reconnects for 300 ms after the recovery: stale eventual reads and
    # lag of hundreds of ms come after it, not before the crash.
    before, after = phases["before_crash"], phases["after_recovery"]
    assert after["stale_read_rate"]["eventual"] > before["stale_read_rate"]["eventual"] + 0.05
    assert after["max_lag_ms"] > 250 > 2 > before["mean_lag_ms"]
    assert before["tracked_lag_samples"] > 0 and after["reads_failed"] == 0
    assert simulate(c, SEED).windows == r.windows
    c.crash_primary_at_ms = -1
    assert simulate(c, SEED).failover_windows == {}


def test_a_replayed_workload_arrives_as_listed():
    config = SimConfig()
    assert config.write_arrivals == [] and config.read_arrivals == []
    writes = [(100.0 + i, i % 4) for i in range(20)]
    reads = [(500.0 + i, i % 4, "eventual" if i % 2 else replikit.Consistency.READ_YOUR_WRITES) for i in range(30)]
    c = SimConfig(duration_ms=1000, sessions=4, write_arrivals=writes, read_arrivals=reads,
                  window_edges_ms=[0, 500, 530, 1000])
    assert c.write_arrivals == writes
    assert [level for _, _, level in c.read_arrivals].count(replikit.Consistency.EVENTUAL) == 15
    assert "read_arrivals=<30 arrivals>" in repr(c)
    r = simulate(c, SEED)
    assert r.writes_submitted == 20 and r.reads_submitted == 30 and r.conserved
    assert [w["reads_submitted"] for w in r.windows] == [0, 30, 0]
    assert r.levels["eventual"]["submitted"] == 15 and r.levels["read_your_writes"]["submitted"] == 15
    assert simulate(c, SEED).events == r.events
    with pytest.raises(replikit.ArgumentTypeError) as err:
        SimConfig(read_arrivals=5)
    assert err.value.argument == "read_arrivals"
    with pytest.raises(replikit.InvalidArgument) as err:
        SimConfig(read_arrivals=[(1.0, 0)])
    assert err.value.argument == "read_arrivals"
    with pytest.raises(replikit.InvalidArgument) as err:
        SimConfig(sessions=4, write_arrivals=[(2.0, 0), (1.0, 0)])
    assert err.value.argument == "write_arrivals"
    with pytest.raises(replikit.InvalidArgument) as err:
        SimConfig(read_arrivals=[(1.0, 0, "fastest")])
    assert err.value.argument == "read_arrivals"


def test_sweep_matches_simulate_on_any_thread_count():
    configs = [SimConfig(duration_ms=500, replicas=n, read_back_share=0.5) for n in (1, 2, 3, 4, 5)]
    one = sweep(configs, seed=7)
    two = sweep(configs, seed=7, threads=2)
    alone = [simulate(c, 7) for c in configs]
    assert [r.events for r in one] == [r.events for r in two] == [r.events for r in alone]
    assert [r.levels for r in one] == [r.levels for r in alone]


def test_simulate_releases_the_gil():
    """A thread keeps counting while a long run is in progress."""
    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(1)
            stop.wait(0.001)

    t = threading.Thread(target=tick)
    t.start()
    try:
        simulate(SimConfig(duration_ms=20_000, read_rate_per_s=20_000), 1)
    finally:
        stop.set()
        t.join()
    assert len(ticks) > 5
