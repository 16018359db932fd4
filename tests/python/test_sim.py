"""replikit.sim: the cluster simulator through Python (values, numpy outputs, typed errors,
determinism, conservation, staleness per level, loss per replication mode, sweeps)."""

from __future__ import annotations

import copy
import math
import threading

import numpy as np
import pytest

import replikit
from replikit.sim import ReplicationMode, SimConfig, SimResult, simulate, summary, sweep

SEED = 20261129


def busy(**overrides):
    fields = dict(duration_ms=2000, write_rate_per_s=2000, read_rate_per_s=8000, replicas=3, sessions=200,
                  consistency_mix={"eventual": 1, "read_your_writes": 2, "monotonic": 1, "causal": 1,
                                   "bounded_staleness": 1, "strong": 1},
                  max_staleness_ms=50, read_back_share=0.5, read_back_delay_ms=0, probe_interval_ms=5,
                  replica_latency=replikit.LatencyDistribution.exponential(2.0), apply_rate_per_s=5000,
                  pauses=[("replica2", 200, 900)], slow_replicas={"replica3": 4.0}, crash_primary_at_ms=1200)
    fields.update(overrides)
    return SimConfig(**fields)


def test_defaults_come_from_the_cpp_struct_and_keywords_set_fields():
    c = SimConfig()
    assert c.mode is ReplicationMode.ASYNC and c.replicas == 2 and c.crash_primary_at_ms < 0
    c2 = SimConfig(mode="semi_sync", sync_count=2, replicas=3, pauses=[(1, 10, 20)], slow_replicas={"replica3": 2})
    assert c2.mode is ReplicationMode.SEMI_SYNC and c2.pauses == [("replica1", 10.0, 20.0)]
    assert c2.slow_replicas == {"replica3": 2.0}
    assert SimConfig(apply_delays={1: 250}).apply_delays == {"replica1": 250.0}
    assert c2.consistency_mix["read_your_writes"] == 1.0
    assert isinstance(c2.read_service, replikit.LatencyDistribution)
    assert SimConfig(client_latency=0.5).client_latency.to_dict() == {"kind": "constant", "value_ms": 0.5}
    assert set(c2.to_dict()) >= {"duration_ms", "mode", "pauses", "router", "lag"}
    c3 = copy.deepcopy(c2)
    c3.replicas = 4
    assert c2.replicas == 3


def test_reprs_are_readable():
    c = SimConfig(write_rate_per_s=5000, replicas=3, mode="sync", crash_primary_at_ms=100)
    assert repr(c) == ("SimConfig(write_rate_per_s=5000.0, read_rate_per_s=10000.0, replicas=3, "
                       "mode=<ReplicationMode.SYNC: 2>, crash_primary_at_ms=100.0)")
    r = simulate(SimConfig(duration_ms=200, crash_primary_at_ms=100), 1)
    text = repr(r)
    assert text.startswith("SimResult(events=") and "primary_read_share=" in text and "recovery_ms=" in text
    assert "stale_read_rate={'read_your_writes': 0.0}" in text


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


def test_sync_loses_no_acknowledged_write_and_async_does_under_load():
    load = dict(duration_ms=2000, write_rate_per_s=5000, read_rate_per_s=1000, replica_latency=1.0,
                crash_primary_at_ms=1000, pauses=[], slow_replicas={}, replicas=2)
    lost = {m: simulate(SimConfig(mode=m, **load), SEED).failover for m in ("async", "semi_sync", "sync", "remote_apply")}
    assert lost["async"]["writes_lost_acknowledged"] > 0
    for m in ("semi_sync", "sync", "remote_apply"):
        assert lost[m]["writes_lost_acknowledged"] == 0, m
    f = lost["sync"]
    assert f["crashed"] and f["promoted"] == "replica1"
    assert f["detection_ms"] == pytest.approx(200.0) and f["recovery_ms"] >= f["detection_ms"] + 200


@pytest.mark.parametrize("fields, argument, error", [
    ({"duration_ms": -1}, "duration_ms", replikit.InvalidArgument),
    ({"duration_ms": "10"}, "duration_ms", replikit.ArgumentTypeError),
    ({"write_rate_per_s": math.nan}, "write_rate_per_s", replikit.InvalidArgument),
    ({"replicas": 1.5}, "replicas", replikit.ArgumentTypeError),
    ({"replicas": 65}, "replicas", replikit.InvalidArgument),
    ({"mode": "eventually"}, "mode", replikit.InvalidArgument),
    ({"mode": 3}, "mode", replikit.ArgumentTypeError),
    ({"mode": "semi_sync", "sync_count": 5}, "sync_count", replikit.InvalidArgument),
    ({"consistency_mix": {"sometimes": 1}}, "consistency_mix", replikit.InvalidArgument),
    ({"consistency_mix": [1, 2]}, "consistency_mix", replikit.InvalidArgument),
    ({"consistency_mix": {"eventual": 0}}, "consistency_mix", replikit.InvalidArgument),
    ({"pauses": [("replica9", 1, 2)]}, "pauses", replikit.InvalidArgument),
    ({"pauses": [("replica1", 5, 2)]}, "pauses", replikit.InvalidArgument),
    ({"pauses": "replica1"}, "pauses", replikit.ArgumentTypeError),
    ({"slow_replicas": [("replica1", 2)]}, "slow_replicas", replikit.ArgumentTypeError),
    ({"apply_delays": {"replica1": -5}}, "apply_delays", replikit.InvalidArgument),
    ({"apply_delays": {"replica7": 5}}, "apply_delays", replikit.InvalidArgument),
    ({"apply_delays": [("replica1", 5)]}, "apply_delays", replikit.ArgumentTypeError),
    ({"read_service": "fast"}, "read_service", replikit.ArgumentTypeError),
    ({"read_service": -1}, "read_service", replikit.InvalidArgument),
    ({"router": {}}, "router", replikit.ArgumentTypeError),
    ({"names": ["a", "b"]}, "names", replikit.InvalidArgument),
    ({"read_back_share": 2}, "read_back_share", replikit.InvalidArgument),
    ({"repoint_ms": -1}, "repoint_ms", replikit.InvalidArgument),
    ({"commit_record_bytes": 0}, "commit_record_bytes", replikit.InvalidArgument),
    ({"write_size_bytes": 30}, "commit_record_bytes", replikit.InvalidArgument),
    ({"commit_record_bytes": 4.5}, "commit_record_bytes", replikit.ArgumentTypeError),
    ({"background_write_rate_per_s": -5}, "background_write_rate_per_s", replikit.InvalidArgument),
    ({"background_write_rate_per_s": "fast"}, "background_write_rate_per_s", replikit.ArgumentTypeError),
    ({"background_write_rate_after_crash_per_s": float("nan")}, "background_write_rate_after_crash_per_s",
     replikit.InvalidArgument),
    ({"probe_offsets_ms": [0, 1]}, "probe_offsets_ms", replikit.InvalidArgument),
    ({"probe_offsets_ms": [0, 1, 100]}, "probe_offsets_ms", replikit.InvalidArgument),
    ({"probe_offsets_after_crash_ms": [0, 1]}, "probe_offsets_after_crash_ms", replikit.InvalidArgument),
    ({"probe_offsets_after_crash_ms": [0, 1, 100]}, "probe_offsets_after_crash_ms", replikit.InvalidArgument),
    ({"probe_offsets_after_crash_ms": "x"}, "probe_offsets_after_crash_ms", replikit.ArgumentTypeError),
    ({"probe_latency": "slow"}, "probe_latency", replikit.ArgumentTypeError),
    ({"reset_tracker_on_promotion": "no"}, "reset_tracker_on_promotion", replikit.ArgumentTypeError),
    ({"repoint_catch_up_ms": -1}, "repoint_catch_up_ms", replikit.InvalidArgument),
    ({"probe_commit_lag_ms": -0.1}, "probe_commit_lag_ms", replikit.InvalidArgument),
    ({"probe_commit_lag_ms": "late"}, "probe_commit_lag_ms", replikit.ArgumentTypeError),
    ({"max_probe_samples": -1}, "max_probe_samples", replikit.InvalidArgument),
    ({"max_probe_samples": 2.5}, "max_probe_samples", replikit.ArgumentTypeError),
    ({"probe_run_lags_ms": [[0.1], [0.1]]}, "probe_run_lags_ms", replikit.InvalidArgument),
    ({"probe_run_lags_ms": [[0.1], [], [0.1]]}, "probe_run_lags_ms", replikit.InvalidArgument),
    ({"probe_run_lags_ms": [[0.1], [-1.0], [0.1]]}, "probe_run_lags_ms", replikit.InvalidArgument),
    ({"probe_run_lags_ms": [[0.1], ["soon"], [0.1]]}, "probe_run_lags_ms", replikit.ArgumentTypeError),
    ({"probe_run_lags_ms": 0.1}, "probe_run_lags_ms", replikit.ArgumentTypeError),
    ({"probe_run_lags_after_crash_ms": [[0.1]]}, "probe_run_lags_after_crash_ms", replikit.InvalidArgument),
    ({"probe_round_lags_ms": [[0.1, 0.1, 0.1]]}, "probe_round_lags_ms", replikit.InvalidArgument),
    ({"probe_round_lags_ms": [["soon"]]}, "probe_round_lags_ms", replikit.ArgumentTypeError),
    ({"probe_round_lags_after_crash_ms": [[0.1]]}, "probe_round_lags_after_crash_ms", replikit.InvalidArgument),
    ({"probe_parallel_gap_ms": -0.01}, "probe_parallel_gap_ms", replikit.InvalidArgument),
    ({"probe_parallel_gap_ms": "apart"}, "probe_parallel_gap_ms", replikit.ArgumentTypeError),
    ({"outage_after_promotion_ms": -1}, "outage_after_promotion_ms", replikit.InvalidArgument),
    ({"outage_after_promotion_ms": "later"}, "outage_after_promotion_ms", replikit.ArgumentTypeError),
    ({"sequential_writes": 1}, "sequential_writes", replikit.ArgumentTypeError),
    ({"read_arrival_readers": [0, -1]}, "read_arrival_readers", replikit.InvalidArgument),
    ({"read_arrival_readers": ["first"]}, "read_arrival_readers", replikit.ArgumentTypeError),
    ({"read_arrival_readers": [0], "read_arrivals": []}, "read_arrival_readers", replikit.InvalidArgument),
    ({"promotion_wal_bytes": -1}, "promotion_wal_bytes", replikit.InvalidArgument),
    ({"promotion_wal_bytes": 1.5}, "promotion_wal_bytes", replikit.ArgumentTypeError),
    ({"probe_at_promotion": "yes"}, "probe_at_promotion", replikit.ArgumentTypeError),
    ({"session_reads_wait_for_writes": 1}, "session_reads_wait_for_writes", replikit.ArgumentTypeError),
    ({"mode_after_promotion": "eventually"}, "mode_after_promotion", replikit.InvalidArgument),
    ({"mode_after_promotion": 0}, "mode_after_promotion", replikit.ArgumentTypeError),
    ({"mode_after_promotion": "semi_sync", "sync_count": 5}, "sync_count", replikit.InvalidArgument),
    ({"speed": 2}, "speed", replikit.ArgumentTypeError),
])
def test_bad_input_raises_typed_errors_naming_the_field(fields, argument, error):
    with pytest.raises(error) as info:
        SimConfig(**fields)
    assert info.value.argument == argument


def test_setting_a_field_checks_it_and_keeps_the_old_value_on_error():
    c = SimConfig()
    with pytest.raises(replikit.InvalidArgument) as info:
        c.apply_rate_per_s = 0
    assert info.value.argument == "apply_rate_per_s" and c.apply_rate_per_s == SimConfig().apply_rate_per_s
    with pytest.raises(replikit.ArgumentTypeError):
        c.lag = 5


def test_simulate_and_sweep_check_their_arguments():
    with pytest.raises(replikit.ArgumentTypeError) as info:
        simulate({"replicas": 2}, 1)
    assert info.value.argument == "config"
    with pytest.raises(replikit.InvalidArgument) as info:
        simulate(SimConfig(), -1)
    assert info.value.argument == "seed"
    with pytest.raises(replikit.ArgumentTypeError) as info:
        sweep([SimConfig(), 3])
    assert info.value.argument == "configs"
    with pytest.raises(replikit.InvalidArgument) as info:
        sweep([SimConfig()], threads=0)
    assert info.value.argument == "threads"


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


def test_the_sim_module_is_the_core_api():
    import replikit.sim as sim

    assert sim.simulate is replikit._core.simulate and sim.SimConfig is replikit._core.SimConfig


def test_the_failover_model_is_chosen_by_name():
    load = dict(duration_ms=1500, write_rate_per_s=2000, crash_primary_at_ms=1050, mode="sync")
    simple = simulate(SimConfig(failover_model="simple", **load), SEED)
    assert simple.failover["model"].startswith("heartbeat 100 ms x 3 missed")
    core = simulate(SimConfig(failover_model="core", **load), SEED)
    assert core.failover["model"].startswith("core FailureDetector")
    assert core.failover["detection_ms"] == pytest.approx(250.0)
    assert core.failover["writes_lost_acknowledged"] == 0 and core.failover["promoted"] is not None


def test_the_detectors_timing_late_heartbeats_and_the_managers_check():
    # Heartbeats 102 ms apart (100 + 2 late), the crash 30 ms after the 10th: misses at +72, +174,
    # +276; the manager acts within its 5 ms check interval after that, seeded, on its own stream.
    load = dict(duration_ms=3000, write_rate_per_s=200, read_rate_per_s=0, crash_primary_at_ms=1050,
                failover_model="core", mode="semi_sync", promote_ms=50)
    assert SimConfig().heartbeat_late_ms == 0 and SimConfig().check_interval_ms == 0
    late = simulate(SimConfig(heartbeat_late_ms=2, **load), SEED).failover
    assert late["detection_ms"] == pytest.approx(276.0)
    config = SimConfig(heartbeat_late_ms=2, check_interval_ms=5, **load)
    assert config.to_dict()["check_interval_ms"] == 5 and config.to_dict()["heartbeat_late_ms"] == 2
    checked = [simulate(config, seed).failover["detection_ms"] for seed in range(SEED, SEED + 20)]
    assert all(276.0 <= d < 281.0 for d in checked) and max(checked) - min(checked) > 1
    assert checked == [simulate(config, seed).failover["detection_ms"] for seed in range(SEED, SEED + 20)]
    for field in ("heartbeat_late_ms", "check_interval_ms"):
        with pytest.raises(replikit.InvalidArgument) as err:
            simulate(SimConfig(**{field: -1.0}, **load), SEED)
        assert err.value.argument == field
        with pytest.raises(replikit.ArgumentTypeError):
            SimConfig(**{field: "soon"})


def test_an_apply_delay_holds_the_replicas_replay_back():
    c = SimConfig(duration_ms=5000, write_rate_per_s=100, read_rate_per_s=0, replicas=2,
                  apply_delays={"replica1": 300}, sample_interval_ms=50)
    r = simulate(c, 4)
    delayed, prompt = r.replicas["replica1"], r.replicas["replica2"]
    assert 300 <= delayed["mean_apply_delay_ms"] < 301
    assert prompt["mean_apply_delay_ms"] < 2
    assert r.conserved


def test_a_delayed_replica_replays_a_writes_rows_and_holds_its_commit_record():
    # PostgreSQL's recovery_min_apply_delay holds only commit records: while a write waits, the
    # replica's replay LSN stands commit_record_bytes short of its end (lag_bytes), and the lag
    # tracker, interpolating the primary's samples, reads it as less behind than a replica held
    # at the write's start (commit_record_bytes = write_size_bytes: the whole write held).
    def run(**fields):
        c = SimConfig(duration_ms=30_000, write_rate_per_s=2, read_rate_per_s=0, replicas=1,
                      apply_delays={"replica1": 200}, replica_latency=0.5, sample_interval_ms=5, **fields)
        r = simulate(c, SEED)
        return r.lag_ms["replica1"], r.lag_bytes["replica1"], r.tracked_lag_ms["replica1"]

    assert (SimConfig().write_size_bytes, SimConfig().commit_record_bytes) == (176, 40)
    lag, lag_bytes, tracked = run()
    held = lag > 1  # a write waits (its WAL arrived 0.5 ms after the commit)
    assert held.sum() > 1000
    assert np.all((lag_bytes[held] - 40) % 176 == 0)  # inside a write, at its commit record
    assert np.mean(lag_bytes[held] == 40) > 0.75  # mostly one write waiting
    whole_lag, whole_bytes, whole_tracked = run(commit_record_bytes=176)
    np.testing.assert_array_equal(whole_lag, lag)  # the same replay; only the replay LSN differs
    assert np.all(whole_bytes[held] % 176 == 0)
    assert np.nanmean(tracked[held]) < np.nanmean(whole_tracked[held]) - 30


def test_the_surviving_replica_falls_behind_while_it_is_repointed():
    c = SimConfig(duration_ms=2000, write_rate_per_s=1000, read_rate_per_s=1000, replicas=2,
                  crash_primary_at_ms=1050, consistency_mix={"eventual": 1.0})
    assert c.repoint_ms == 0
    prompt = simulate(c, 3)
    c.repoint_ms = 250
    slow = simulate(c, 3)
    survivor = "replica2" if slow.failover["promoted"] == "replica1" else "replica1"
    assert slow.failover["recovery_ms"] == prompt.failover["recovery_ms"]
    assert 240 < slow.replicas[survivor]["max_lag_ms"] < 270
    assert prompt.replicas[survivor]["max_lag_ms"] < 50
    assert slow.stale_read_rate["eventual"] > prompt.stale_read_rate["eventual"]
    assert slow.conserved


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


@pytest.mark.parametrize("edges", [[5.0], [0, 10, 10], [0, 20, 10], [-1, 5], [0, float("nan")]])
def test_bad_window_edges_name_the_field(edges):
    with pytest.raises(replikit.InvalidArgument) as err:
        SimConfig(window_edges_ms=edges)
    assert err.value.argument == "window_edges_ms"
    with pytest.raises(replikit.ArgumentTypeError) as err2:
        SimConfig(window_edges_ms="0, 1")
    assert err2.value.argument == "window_edges_ms"


def test_background_writes_move_the_wal_and_the_tracked_lag_but_no_read_is_judged_on_them():
    # 50 session writes/s with 100 ms probes: the tracker interpolates between primary samples
    # a few writes apart, so a replica one write behind reads tens of ms behind; with 200
    # background writes/s the grid is five times finer, as on a primary that other clients
    # also write to.
    def run(background: float, seed: int) -> SimResult:
        return simulate(SimConfig(duration_ms=20_000, write_rate_per_s=50, background_write_rate_per_s=background,
                                  read_rate_per_s=500, sessions=8, window_edges_ms=[0, 20_000],
                                  consistency_mix={"eventual": 1, "read_your_writes": 1},
                                  replica_latency=0.5, client_latency=0.1), seed)

    for seed in (SEED, SEED + 1):
        coarse, fine = run(0, seed), run(200, seed)
        assert coarse.background_writes_submitted == 0
        assert fine.conserved and fine.background_writes_acknowledged > 3000
        assert fine.background_writes_submitted == (fine.background_writes_acknowledged + fine.background_writes_failed
                                                    + fine.background_writes_pending)
        assert 800 < fine.writes_submitted < 1200  # the session writer's alone
        assert fine.levels["read_your_writes"]["stale"] == 0
        assert fine.windows[0]["max_tracked_lag_ms"] < coarse.windows[0]["max_tracked_lag_ms"] / 2
        assert "background_writes_acknowledged=" in repr(fine)
        assert fine.to_dict()["background_writes_acknowledged"] == fine.background_writes_acknowledged
    # Only background writes: the replicas replay them, no eventual read is stale.
    r = simulate(SimConfig(duration_ms=2000, write_rate_per_s=0, background_write_rate_per_s=3000,
                           read_rate_per_s=3000, consistency_mix={"eventual": 1},
                           replica_latency=replikit.LatencyDistribution.exponential(0.5)), SEED)
    assert r.levels["eventual"]["stale"] == 0 and r.levels["eventual"]["answered"] > 1000
    assert all(rep["writes_applied"] > 0.9 * r.background_writes_acknowledged for rep in r.replicas.values())
    assert max(np.nanmax(v) for v in r.tracked_lag_ms.values()) > 0
    assert r.failover["background_writes_lost_acknowledged"] == 0
    assert SimConfig().background_write_rate_per_s == 0 and SimConfig().background_write_rate_after_crash_per_s < 0


def test_a_replica_latency_after_the_crash_changes_only_what_follows_it():
    assert SimConfig().replica_latency_after_crash is None
    fields = dict(duration_ms=4000, write_rate_per_s=200, read_rate_per_s=2000, sessions=8,
                  consistency_mix={"eventual": 1, "read_your_writes": 1},
                  replica_latency=replikit.LatencyDistribution.exponential(1.0), client_latency=0.1,
                  crash_primary_at_ms=1500, promote_ms=100)
    base = simulate(SimConfig(**fields), SEED)
    same = simulate(SimConfig(replica_latency_after_crash=fields["replica_latency"], **fields), SEED)
    assert same.events == base.events and same.failover_windows == base.failover_windows

    def eventual(result, window):
        levels = result.failover_windows[window]["levels"]["eventual"]
        return levels["stale"], levels["answered"]

    fast = simulate(SimConfig(replica_latency_after_crash=0.01, **fields), SEED)
    slow = simulate(SimConfig(replica_latency_after_crash=replikit.LatencyDistribution.empirical([5.0]), **fields), SEED)
    assert eventual(fast, "before_crash") == eventual(slow, "before_crash") == eventual(base, "before_crash")
    stale_fast, answered_fast = eventual(fast, "after_recovery")
    stale_slow, answered_slow = eventual(slow, "after_recovery")
    assert answered_fast > 500 and stale_fast / answered_fast < 0.02 and stale_slow / answered_slow > 0.3
    c = SimConfig(replica_latency_after_crash=2.0)
    assert c.replica_latency_after_crash.to_dict() == {"kind": "constant", "value_ms": 2.0}
    c.replica_latency_after_crash = None
    assert c.replica_latency_after_crash is None
    with pytest.raises(replikit.ArgumentTypeError) as err:
        SimConfig(replica_latency_after_crash="slow")
    assert err.value.argument == "replica_latency_after_crash"
    with pytest.raises(replikit.InvalidArgument) as err:
        simulate(SimConfig(replica_latency_after_crash=replikit.LatencyDistribution.pareto(1.0, 0.5), **fields), SEED)
    assert err.value.argument == "replica_latency_after_crash"


def test_the_probers_timing_is_configurable_and_defaults_to_todays():
    c = SimConfig()
    assert c.probe_latency is None and c.probe_offsets_ms == [] and c.reset_tracker_on_promotion is True
    assert c.repoint_catch_up_ms == 0
    fields = dict(duration_ms=5000, write_rate_per_s=250, read_rate_per_s=200, sessions=8,
                  replica_latency=0.5, client_latency=0.1)
    base = simulate(SimConfig(**fields), SEED)
    same = simulate(SimConfig(probe_latency=0.1, probe_offsets_ms=[0, 0, 0], **fields), SEED)
    assert same.events == base.events
    np.testing.assert_array_equal(same.tracked_lag_ms["replica1"], base.tracked_lag_ms["replica1"])
    later = simulate(SimConfig(probe_latency=0.1, probe_offsets_ms=[0, 0, 5.0], **fields), SEED)
    assert np.nanmean(later.tracked_lag_ms["replica2"]) < 0.2 * np.nanmean(later.tracked_lag_ms["replica1"])
    assert c.probe_run_lags_ms == [] and c.probe_run_lags_after_crash_ms == [] and c.promotion_wal_bytes == 0
    assert c.probe_offsets_after_crash_ms == []
    lags = SimConfig(probe_run_lags_ms=[[0.1], [1.1, 1.2], (1.3,)], **fields)
    assert lags.probe_run_lags_ms == [[0.1], [1.1, 1.2], [1.3]] and "probe_run_lags_ms" in repr(lags)
    read_later = simulate(lags, SEED)  # the replicas read a ms after the primary: never behind it
    assert np.nanmax(read_later.tracked_lag_ms["replica1"]) == 0.0
    assert c.probe_round_lags_ms == [] and c.probe_round_lags_after_crash_ms == [] and c.probe_parallel_gap_ms == 0.01
    rounds = SimConfig(probe_run_lags_ms=[[0.1], [0.1], [0.1]], probe_round_lags_ms=[(0.1, 1.1, 1.2)], **fields)
    assert rounds.probe_round_lags_ms == [[0.1, 1.1, 1.2]] and "probe_round_lags_ms" in repr(rounds)
    assert np.nanmax(simulate(rounds, SEED).tracked_lag_ms["replica1"]) == 0.0  # read 1 ms after the primary
    c.probe_latency = 0.2
    assert c.probe_latency.to_dict() == {"kind": "constant", "value_ms": 0.2}
    c.probe_latency = None
    assert c.probe_latency is None


def test_the_trackers_samples_are_traced_on_request_and_the_primary_can_be_read_as_of_its_commits():
    c = SimConfig()
    assert c.max_probe_samples == 0 and c.probe_commit_lag_ms == 0
    fields = dict(duration_ms=3000, write_rate_per_s=50, background_write_rate_per_s=200, read_rate_per_s=200,
                  sessions=8, replica_latency=0.4, client_latency=0.1, probe_latency=0.1, apply_rate_per_s=1e6)
    plain = simulate(SimConfig(**fields), SEED)
    assert len(plain.probe_samples["stamp_ms"]) == 0 and plain.to_dict()["probe_samples"]["node"] == []
    traced = simulate(SimConfig(max_probe_samples=60, **fields), SEED)
    t = traced.probe_samples
    assert set(t) == {"node", "primary", "stamp_ms", "lsn", "tracked_lag_ms"}
    assert len(t["node"]) == len(t["lsn"]) == len(t["stamp_ms"]) == 60
    assert set(t["node"]) == {"primary", "replica1", "replica2"}
    assert np.all(np.isnan(t["tracked_lag_ms"][t["primary"]]))
    replica_lag = t["tracked_lag_ms"][~t["primary"]]  # NaN while the tracker does not know it yet
    assert np.all(np.isnan(replica_lag) | (replica_lag >= 0)) and np.any(~np.isnan(replica_lag))
    assert np.all(np.diff(t["lsn"][t["primary"]].astype(np.int64)) >= 0)
    assert traced.events == plain.events  # the trace changes nothing
    np.testing.assert_array_equal(traced.tracked_lag_ms["replica1"], plain.tracked_lag_ms["replica1"])
    # A primary read as of 1 ms ago: every replica has replayed it (0.4 ms away): no tracked lag,
    # while reads, writes and the true lag are the same run.
    past = simulate(SimConfig(probe_commit_lag_ms=1.0, **fields), SEED)
    assert past.events == plain.events and past.levels == plain.levels
    np.testing.assert_array_equal(past.lag_ms["replica1"], plain.lag_ms["replica1"])
    assert np.nanmean(plain.tracked_lag_ms["replica1"]) > 0.05
    assert np.nanmax(past.tracked_lag_ms["replica1"]) == 0


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


def test_a_promoted_primary_acknowledges_by_its_own_mode():
    c = SimConfig()
    assert c.mode_after_promotion is None and "mode_after_promotion" not in repr(c) and c.probe_at_promotion is False
    assert c.session_reads_wait_for_writes is False
    fields = dict(duration_ms=3000, write_rate_per_s=200, read_rate_per_s=1000, sessions=8, mode="sync",
                  replica_latency=0.5, client_latency=0.1, crash_primary_at_ms=1500, promote_ms=100, repoint_ms=150)
    held = simulate(SimConfig(**fields), SEED)
    assert simulate(SimConfig(mode_after_promotion="sync", **fields), SEED).events == held.events
    config = SimConfig(mode_after_promotion=ReplicationMode.ASYNC, **fields)
    assert config.mode_after_promotion == ReplicationMode.ASYNC and "mode_after_promotion" in repr(config)
    at_once = simulate(config, SEED)
    # The synchronous new primary holds its writes until the survivor streams again (150 ms).
    assert held.mean_write_latency_ms > at_once.mean_write_latency_ms + 0.5
    config.mode_after_promotion = None
    assert simulate(config, SEED).events == held.events
