"""replikit.sim's replication lag and what the lag tracker sees of it: apply delays and held
commit records, background writes, the prober's timing, traced probe samples."""

from __future__ import annotations

import numpy as np

import replikit
from replikit.sim import SimConfig, SimResult, simulate

from sim_helpers import SEED


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


def test_a_lower_bound_tracked_lag_counts_as_shown_or_as_unknown():
    """Through an outage longer than the tracker's stale_sample_ms (1 s), a replica's tracked lag
    is only a lower bound (now - the primary's last sample). tracked_lag_lower_bounds=True (the
    default) counts it, as a client's NodeStatus shows it; False reports it as unknown (NaN) and
    leaves it out of the windows' tracked lag, as the fidelity runs' recorder does. Everything
    else is the same run."""
    fields = dict(duration_ms=4000, write_rate_per_s=100, read_rate_per_s=100, sessions=4, replicas=2,
                  replica_latency=0.3, client_latency=0.1, crash_primary_at_ms=1000, failover_model="core",
                  promote_ms=1600, sample_interval_ms=20)
    shown = simulate(SimConfig(**fields), SEED)
    unknown = simulate(SimConfig(tracked_lag_lower_bounds=False, **fields), SEED)
    assert SimConfig().tracked_lag_lower_bounds is True
    assert unknown.events == shown.events and unknown.failover == shown.failover
    t = shown.sample_times_ms
    promoted = 1000 + shown.failover["recovery_ms"]
    late = (t > 2200) & (t < promoted)  # over 1 s since the primary's last sample, before the promotion
    assert late.any()
    for name in shown.tracked_lag_ms:
        assert np.nanmin(shown.tracked_lag_ms[name][late]) >= 1000.0 - 150.0  # now - its last sample
        assert np.isnan(unknown.tracked_lag_ms[name][late]).all()
        early = t < 1900  # before: the same measured lags
        np.testing.assert_array_equal(unknown.tracked_lag_ms[name][early], shown.tracked_lag_ms[name][early])
    outage_shown, outage_unknown = shown.failover_windows["outage"], unknown.failover_windows["outage"]
    assert outage_unknown["tracked_lag_samples"] < outage_shown["tracked_lag_samples"]
    assert outage_unknown["mean_tracked_lag_ms"] < outage_shown["mean_tracked_lag_ms"]
