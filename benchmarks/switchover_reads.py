#!/usr/bin/env python3
"""Reads failed during a planned switchover, counted over several switchovers.

Usage (as root or as a user that can run PostgreSQL; needs the package installed, e.g. by
scripts/setup.sh):

    .venv/bin/python benchmarks/switchover_reads.py [--runs 5]

Each run starts a primary and two streaming replicas (replikit.testing.LocalCluster) on
loopback, a ReplicatedDatabase over them and a FailoverManager (not started: only its
switchover is used). Four threads read `SELECT pg_sleep(0.3)` at STRONG consistency (the
primary) in a loop, two `SELECT pg_sleep(0.05)` at READ_YOUR_WRITES; after 0.45 s, with the
strong reads in flight on the primary, the manager switches over to r2; the readers go on for
0.7 s more. It prints a line per run (switchover time, reads that succeeded and failed, the
report's drain counts when the build has them) and the totals.
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any, List

from replikit import _core
from replikit.pg import database_for_cluster
from replikit.testing import LocalCluster


class Reader(threading.Thread):
    """Runs `sql` at `consistency` until stopped; counts successes and failures."""

    def __init__(self, db: Any, consistency: str, sql: str) -> None:
        super().__init__(daemon=True)
        self.db, self.consistency, self.sql = db, consistency, sql
        self.ok = self.failed = 0
        self.errors: List[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.db.query(self.sql, consistency=self.consistency)
                self.ok += 1
            except Exception as e:  # noqa: BLE001 - every failure is counted, whatever its type
                self.failed += 1
                self.errors.append(f"{type(e).__name__}: {str(e)[:100]}")


def one_run(run: int) -> tuple:
    with LocalCluster(replicas=2, mode="async") as cluster:
        cluster.sql("primary", "CREATE TABLE w (id int PRIMARY KEY)")
        cluster.wait_caught_up(timeout_ms=30_000)
        db = database_for_cluster(cluster, probe_interval_ms=50, probe_timeout_ms=200, connect_timeout_ms=2000)
        manager = _core.FailoverManager(db, detector=_core.DetectorConfig(interval_ms=50, missed_threshold=3),
                                        state_interval_ms=50)
        readers = [Reader(db, "strong", "SELECT pg_sleep(0.3)") for _ in range(4)]
        readers += [Reader(db, "read_your_writes", "SELECT pg_sleep(0.05)") for _ in range(2)]
        try:
            for r in readers:
                r.start()
            time.sleep(0.45)
            start = time.monotonic()
            report = manager.switchover("r2")
            took_ms = (time.monotonic() - start) * 1000
            time.sleep(0.7)
        finally:
            for r in readers:
                r.stop.set()
            for r in readers:
                r.join(30)
            db.close()
    ok, failed = sum(r.ok for r in readers), sum(r.failed for r in readers)
    drain = ""
    if hasattr(report, "drained_in_flight"):
        drain = f", drained {report.drained_in_flight}, cut {report.cut_in_flight} in {report.drain_ms:.0f} ms"
    errors = sorted({e for r in readers for e in r.errors})[:2]
    print(f"run {run}: promoted {report.promoted}, switchover {took_ms:.0f} ms, reads ok {ok}, failed {failed}"
          f"{drain}{'; ' + ' | '.join(errors) if errors else ''}", flush=True)
    return ok, failed, report.promoted is not None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="switchovers, each on a fresh cluster (default 5)")
    args = parser.parse_args()
    results = [one_run(i) for i in range(args.runs)]
    print(f"{args.runs} switchovers: {sum(p for _, _, p in results)} promoted, "
          f"{sum(1 for _, f, _ in results if f)} with a failed read; reads ok {sum(o for o, _, _ in results)}, "
          f"failed {sum(f for _, f, _ in results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
