"""replikit.sim's inputs: SimConfig's defaults, fields and reprs, and the typed errors (naming the
field or argument) that SimConfig, simulate and sweep raise for bad input."""

from __future__ import annotations

import copy
import math

import pytest

import replikit
from replikit.sim import ReplicationMode, SimConfig, simulate, sweep


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


@pytest.mark.parametrize("edges", [[5.0], [0, 10, 10], [0, 20, 10], [-1, 5], [0, float("nan")]])
def test_bad_window_edges_name_the_field(edges):
    with pytest.raises(replikit.InvalidArgument) as err:
        SimConfig(window_edges_ms=edges)
    assert err.value.argument == "window_edges_ms"
    with pytest.raises(replikit.ArgumentTypeError) as err2:
        SimConfig(window_edges_ms="0, 1")
    assert err2.value.argument == "window_edges_ms"


def test_the_sim_module_is_the_core_api():
    import replikit.sim as sim

    assert sim.simulate is replikit._core.simulate and sim.SimConfig is replikit._core.SimConfig
