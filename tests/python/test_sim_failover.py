"""replikit.sim's primary crash: loss per replication mode, the failover models and the detector's
timing, the repointed survivor, what changes after the crash, a promoted primary's own mode."""

from __future__ import annotations

import pytest

import replikit
from replikit.sim import ReplicationMode, SimConfig, simulate

from sim_helpers import SEED


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
