"""What the simulator tests share (`from sim_helpers import ...`): the seed of their runs and a
busy workload (every consistency level, a paused and a slow replica, a primary crash)."""

from __future__ import annotations

import replikit
from replikit.sim import SimConfig

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
