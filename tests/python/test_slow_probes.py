"""A prober slower than the lag tracker's stale_sample_ms (1 s by default): the primary, probed
on time, must not read as silent between two of its samples. Until 2026-11-30 every gap between
them (just over probe_interval_ms) counted as an outage, so a healthy replica one write behind
the primary's last sample read a whole gap behind: LAGGING at probe_interval_ms=1000 and
max_lag_ms=1000. The tracker's stale_sample_ms is now at least twice the probe interval
(C++ probed_lag_config, Python LagConfig.for_probes), in the PostgreSQL backend, the psycopg
router and the simulator alike."""

from __future__ import annotations

import time

import numpy as np
import pytest

from conftest import require_pg_server

import replikit
from replikit import LagConfig
from replikit._core import DatabaseOptions
from replikit.events import EventKind
from replikit.sim import SimConfig, simulate

from sim_helpers import SEED


def test_the_simulators_tracker_reads_a_healthy_replica_as_healthy_with_slow_probes():
    # 50 writes/s, each reaching the replicas 10 ms later: a probe finds a replica a write behind
    # ~40% of the time. Probes every 1.2 s (the simulator's ticks are exact: at 1 s its gaps would
    # equal stale_sample_ms, not exceed it, where a real prober's run a little over).
    c = SimConfig(duration_ms=30_000, write_rate_per_s=50, read_rate_per_s=0, replicas=2,
                  probe_interval_ms=1200, replica_latency=10.0, sample_interval_ms=10)
    r = simulate(c, SEED)
    for name in ("replica1", "replica2"):
        tracked = r.tracked_lag_ms[name]
        known = tracked[~np.isnan(tracked)]
        print(f"seed {SEED} {name}: tracked lag max {known.max():.1f} ms, mean {known.mean():.2f} ms")
        assert known.size > 1000 and known.max() > 0  # not vacuous: found behind
        assert known.max() < 100, known.max()  # before: ~1200 ms whenever a write behind


@pytest.mark.pg
def test_a_database_probing_every_second_keeps_healthy_replicas_ok(pg_cluster_reset):
    require_pg_server()
    from replikit.pg import database_for_cluster

    cluster, table = pg_cluster_reset, "rk_slow_probe_rows"
    cluster.sql("primary", f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id bigint PRIMARY KEY)")
    cluster.wait_caught_up(timeout_ms=10_000)
    db = database_for_cluster(cluster, probe_interval_ms=1000)
    try:
        assert db.lag_tracker.config.stale_sample_ms == 2000  # 2 x probe_interval_ms (1 s configured)
        assert db.wait_probes(2, 10_000)
        after = db.events.last_sequence
        worst = 0.0
        deadline = time.monotonic() + 5.0  # five probe rounds under back-to-back writes
        i = 0
        while time.monotonic() < deadline:
            i += 1
            db.execute(f"INSERT INTO {table} VALUES ({i})")
            worst = max([worst] + [db.node(n).lag_ms for n in ("r1", "r2") if db.node(n).lag_known])
        lagging = [e for e in db.events.read(after, 256).events if e.kind == EventKind.LAGGING]
        print(f"{i} writes, worst replica lag shown {worst:.1f} ms, LAGGING events {lagging}")
        assert lagging == []
        assert worst < 500, worst  # before: ~1000 ms whenever a probe found a replica behind
    finally:
        db.close()
        cluster.sql("primary", f"DROP TABLE IF EXISTS {table}")


def test_lag_config_for_probes_raises_stale_sample_ms_to_twice_the_interval():
    assert LagConfig().for_probes(1000).stale_sample_ms == 2000
    assert LagConfig(stale_sample_ms=5000).for_probes(1000).stale_sample_ms == 5000  # kept when longer
    assert LagConfig(max_lag_ms=300).for_probes(400) == LagConfig(max_lag_ms=300, stale_sample_ms=1000)
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(replikit.InvalidArgument, match="probe_interval_ms"):
            LagConfig().for_probes(bad)
    with pytest.raises(replikit.ArgumentTypeError, match="probe_interval_ms"):
        LagConfig().for_probes("1000")


def test_the_psycopg_routers_tracker_takes_its_probe_interval_into_account():
    pytest.importorskip("psycopg")
    from replikit.psycopg import _base

    core = _base.Core(("primary", "host=127.0.0.1 port=1"), [("r1", "host=127.0.0.1 port=1")],
                      DatabaseOptions(probe_interval_ms=1500))
    assert core.lag.config.stale_sample_ms == 3000
