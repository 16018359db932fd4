"""What the lag tracker was fed, compared sample by sample: the real prober's samples
(killreads.ProbeRecord: the primary's position stamped at its query's send, each replica's replay
position stamped at its answer) and a twin's (SimResult.probe_samples, the same stamps). Per
replica sample in a window: whether it was behind the primary's last sample sent before it was
answered (by how many bytes), and the WAL the primary wrote between two of its samples (the grid
the tracker interpolates a replica's time lag on)."""

from __future__ import annotations

import bisect
from typing import Any, Dict, List, Tuple

Samples = Tuple[List[Tuple[float, int]], Dict[str, List[Tuple[float, int]]]]  # (primary, {replica: ...}), s


def real_samples(records: Dict[str, Dict[Any, Any]]) -> Samples:
    """A real run's probe records (node -> {last_probe_ns: ProbeRecord}) as stamped samples."""
    primary: List[Tuple[float, int]] = []
    replicas: Dict[str, List[Tuple[float, int]]] = {}
    for node, per_probe in records.items():
        for rec in per_probe.values():
            sent, answered, is_primary, lsn = rec[0], rec[1], rec[2], rec[3]
            if lsn <= 0:
                continue
            if is_primary:
                primary.append((sent, lsn))
            else:
                replicas.setdefault(node, []).append((answered, lsn))
    return primary, replicas


def sim_samples(trace: Dict[str, Any]) -> Samples:
    """A twin's SimResult.probe_samples as stamped samples (s)."""
    primary: List[Tuple[float, int]] = []
    replicas: Dict[str, List[Tuple[float, int]]] = {}
    for node, is_primary, stamp, lsn in zip(trace["node"], trace["primary"], trace["stamp_ms"], trace["lsn"]):
        if is_primary:
            primary.append((float(stamp) / 1e3, int(lsn)))
        else:
            replicas.setdefault(node, []).append((float(stamp) / 1e3, int(lsn)))
    return primary, replicas


def behind_counts(samples: Samples, lo: float, hi: float) -> Dict[str, float]:
    """Over the replica samples stamped in [lo, hi) (s): how many, how many were behind the primary's
    last sample sent before them and by how many bytes in all; the primary's samples in the window
    and the WAL between consecutive ones."""
    primary = sorted(samples[0])
    stamps = [t for t, _ in primary]
    out = {"replica_samples": 0.0, "behind": 0.0, "behind_bytes": 0.0, "primary_gaps": 0.0, "wal_bytes": 0.0}
    inside = [(t, lsn) for t, lsn in primary if lo <= t < hi]
    for (_, a), (_, b) in zip(inside, inside[1:]):
        out["primary_gaps"] += 1
        out["wal_bytes"] += max(0, b - a)
    for per_node in samples[1].values():
        for t, lsn in per_node:
            i = bisect.bisect_right(stamps, t) - 1
            if not lo <= t < hi or i < 0:
                continue
            out["replica_samples"] += 1
            if lsn < primary[i][1]:
                out["behind"] += 1
                out["behind_bytes"] += primary[i][1] - lsn
    return out


def add(into: Dict[str, float], more: Dict[str, float]) -> None:
    for key, value in more.items():
        into[key] = into.get(key, 0.0) + value


def summary(counts: Dict[str, float]) -> str:
    """'behind 6.1% of 1200 (176 B on average), 3480 B of WAL per primary sample'."""
    n, behind = counts.get("replica_samples", 0.0), counts.get("behind", 0.0)
    share = behind / n if n else 0.0
    mean_bytes = counts.get("behind_bytes", 0.0) / behind if behind else 0.0
    wal = counts.get("wal_bytes", 0.0) / counts["primary_gaps"] if counts.get("primary_gaps") else 0.0
    return f"behind {share:.1%} of {n:.0f} ({mean_bytes:.0f} B on average), {wal:.0f} B of WAL per primary sample"
