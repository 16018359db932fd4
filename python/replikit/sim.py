"""The cluster simulator: a seeded, deterministic discrete-event model of a single-leader
cluster (Poisson writes and reads, service queues, replica apply queues, network latency,
replication modes, crashes, pauses, delayed replay and slow replicas) with replikit's own Router and
LagTracker inside it.

    >>> from replikit.sim import SimConfig, simulate
    >>> result = simulate(SimConfig(write_rate_per_s=5000, read_rate_per_s=50000, replicas=3), seed=1)
    >>> result.primary_read_share, result.stale_read_rate, result.nodes["primary"]["utilisation"]

``sweep(configs, seed, threads)`` runs many configurations in one call without the GIL, with
the same seed for each (so differences between results come from the configurations).
"""

from __future__ import annotations

from typing import Any, Dict

from ._core import FailoverModelKind, ReplicationMode, SimConfig, SimResult, simulate, sweep

__all__ = ["FailoverModelKind", "ReplicationMode", "SimConfig", "SimResult", "simulate", "sweep", "summary"]


def summary(result: SimResult) -> Dict[str, Any]:
    """The headline numbers of one run as a flat dict (one row of a sweep's table)."""
    row: Dict[str, Any] = {
        "writes_acknowledged": result.writes_acknowledged,
        "writes_failed": result.writes_failed,
        "reads_answered": result.reads_answered,
        "reads_failed": result.reads_failed,
        "primary_read_share": result.primary_read_share,
        "mean_read_latency_ms": result.mean_read_latency_ms,
        "mean_write_latency_ms": result.mean_write_latency_ms,
    }
    for level, rate in result.stale_read_rate.items():
        row[f"stale_{level}"] = rate
    for name, load in result.nodes.items():
        row[f"utilisation_{name}"] = load["utilisation"]
    failover = result.failover
    if failover["crashed"]:
        row["recovery_ms"] = failover["recovery_ms"]
        row["writes_lost_acknowledged"] = failover["writes_lost_acknowledged"]
    return row
