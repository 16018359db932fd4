#!/usr/bin/env python3
"""Read-after-write on replicas: the primary's share of reads and the added read latency with
no catch-up wait, a fixed wait and wait_for_replica_ms="auto".

Usage (as root or as a user that can run PostgreSQL; needs the package installed, e.g. by
scripts/setup.sh, and psycopg from its `test` extra):

    .venv/bin/python benchmarks/catchup_wait_bench.py [--pairs 300] [--fixed-ms 20]

It starts a primary and two streaming replicas (replikit.testing.LocalCluster, async) on
loopback. For each condition (healthy replicas; replica r1 with replay paused) and each wait
setting (0, the fixed wait, "auto") it opens a ReplicatedDatabase (probe_interval_ms=100), warms
it up with 50 write-then-read pairs (not measured: auto needs replay-delay samples), then runs
`--pairs` pairs in one thread: INSERT a row with a session, then read it back at
read_your_writes. Measured per read: the node that served it, the wall time of the read call
(p50, p99) and the time it spent waiting for a replica (Result.waited_ms: the added latency).
Every read is checked to return the row it wrote (no stale read).

The baseline is the replay delay measured in the same run, independently of replikit: after a
commit acknowledged on the primary, a psycopg connection to each replica polls
pg_last_wal_replay_lsn() until it has passed the commit LSN; the time from the
acknowledgement to the first poll that shows it (one round trip included). The table prints
the ratio of each setting's added p99 latency to that baseline's p99.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Dict, List

import replikit
from replikit.pg import database_for_cluster
from replikit.testing import LocalCluster

WARMUP_PAIRS = 50
POLL_LIMIT_S = 2.0


def quantile(values: List[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q * len(s) + 0.5)) - 1))]


def replay_delays(cluster: LocalCluster, pairs: int) -> List[float]:
    """Milliseconds from a commit's acknowledgement to a replica showing it (both replicas)."""
    import psycopg

    out: List[float] = []
    with psycopg.connect(cluster.dsn("primary"), autocommit=True) as p:
        replicas = [psycopg.connect(cluster.dsn(n), autocommit=True) for n in cluster.replica_names]
        try:
            for k in range(pairs):
                lsn = p.execute("INSERT INTO rk_catchup (v) VALUES (%s) RETURNING pg_current_wal_insert_lsn()::text",
                                [f"baseline-{k}"]).fetchone()[0]
                acked = time.perf_counter()
                for conn in replicas:
                    give_up = acked + POLL_LIMIT_S
                    while time.perf_counter() < give_up:  # bounded poll
                        if conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn]).fetchone()[0]:
                            break
                    out.append((time.perf_counter() - acked) * 1e3)
        finally:
            for conn in replicas:
                conn.close()
    return out


def run_setting(cluster: LocalCluster, wait, pairs: int, tag: str) -> Dict[str, object]:
    served: Dict[str, int] = {}
    latency: List[float] = []
    waited: List[float] = []
    reasons: Dict[str, int] = {}
    stale = 0
    with database_for_cluster(cluster, probe_interval_ms=100, wait_for_replica_ms=wait) as db:
        db.wait_probes(2, 5000)
        session = replikit.Session()
        for k in range(WARMUP_PAIRS + pairs):
            token = f"{tag}-{k}"
            w = db.execute("INSERT INTO rk_catchup (v) VALUES ($1) RETURNING id", [token], session=session)
            start = time.perf_counter()
            r = db.query("SELECT v FROM rk_catchup WHERE id = $1", [w.rows[0][0]], session=session,
                         consistency="read_your_writes")
            elapsed = (time.perf_counter() - start) * 1e3
            if r.rows != [(token,)]:
                stale += 1
            if k < WARMUP_PAIRS:
                continue
            served[r.node] = served.get(r.node, 0) + 1
            latency.append(elapsed)
            waited.append(r.waited_ms)
            if r.reason == replikit.Reason.NO_REPLICA_CAUGHT_UP or r.waited_ms > 0:
                reasons[r.wait_reason.name.lower()] = reasons.get(r.wait_reason.name.lower(), 0) + 1
        tracker = db.lag_tracker
        delays = {n: tracker.replay_delay_ms(n, 0.99) for n in cluster.replica_names}
    return {"served": served, "latency": latency, "waited": waited, "stale": stale, "reasons": reasons,
            "tracker_p99": delays}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=300, help="measured write-then-read pairs per setting")
    ap.add_argument("--fixed-ms", type=float, default=20.0, help="the fixed wait compared")
    args = ap.parse_args()
    settings = [("0", 0.0), (f"fixed {args.fixed_ms:g} ms", args.fixed_ms), ("auto", "auto")]
    print(f"catch-up wait benchmark: {args.pairs} pairs per setting, 1 thread, probe_interval_ms=100, "
          f"auto bound {replikit.pg.DatabaseOptions(wait_for_replica_ms='auto').wait_for_replica_ms}")
    with LocalCluster(replicas=2, mode="async") as cluster:
        cluster.sql("primary", "CREATE TABLE rk_catchup (id bigserial PRIMARY KEY, v text)")
        cluster.wait_caught_up(timeout_ms=10_000)
        base = replay_delays(cluster, args.pairs)
        base_p50, base_p99 = quantile(base, 0.5), quantile(base, 0.99)
        print(f"baseline replay delay (commit ack -> replica shows it, psycopg poll, {len(base)} samples): "
              f"p50 {base_p50:.3f} ms, p99 {base_p99:.3f} ms")
        rows = []
        for condition in ("healthy", "r1 paused"):
            if condition == "r1 paused":
                cluster.pause_replay("r1")
                deadline = time.monotonic() + 5
                while cluster.replay_pause_state("r1") != "paused" and time.monotonic() < deadline:
                    time.sleep(0.01)
            for label, wait in settings:
                res = run_setting(cluster, wait, args.pairs, f"{condition}-{label}")
                rows.append((condition, label, res))
                print(f"  done: {condition:10s} {label:12s} served {res['served']} wait reasons {res['reasons']} "
                      f"tracker p99 replay delay (ms) {res['tracker_p99']}", flush=True)
        cluster.resume_replay("r1")
    print()
    print(f"{'condition':10s} {'wait':12s} {'primary %':>9s} {'read p50':>9s} {'read p99':>9s} "
          f"{'added p50':>9s} {'added p99':>9s} {'added p99/replay p99':>20s} {'stale':>5s}")
    for condition, label, res in rows:
        served = res["served"]
        total = sum(served.values())
        share = 100.0 * served.get("primary", 0) / max(1, total)
        lat, waited = res["latency"], res["waited"]
        ratio = quantile(waited, 0.99) / base_p99 if base_p99 > 0 else float("nan")
        print(f"{condition:10s} {label:12s} {share:9.1f} {quantile(lat, 0.5):9.3f} {quantile(lat, 0.99):9.3f} "
              f"{quantile(waited, 0.5):9.3f} {quantile(waited, 0.99):9.3f} {ratio:20.2f} {res['stale']:5d}")
    print("(latencies in ms; 'added' = Result.waited_ms, the time a read waited for a replica; "
          f"replay p99 = {base_p99:.3f} ms measured above; mean read over all settings "
          f"{statistics.mean(x for _, _, r in rows for x in r['latency']):.3f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
