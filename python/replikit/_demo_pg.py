"""The main demo against a real local PostgreSQL cluster (see replikit.demo).

Starts a primary and two streaming replicas with replikit.testing.LocalCluster, then simulated
users write their own row and read it back with read-your-writes consistency through
ReplicatedDatabase, while r2's WAL replay is paused for a few seconds and resumed. Every half
second it prints each replica's lag as the prober measures it, its state, and where reads went;
at the end the traffic per node and per reason, the lag events, and the number of
read-your-writes violations (a read that did not return the reader's own last write), which
must be zero. The cluster is stopped afterwards, also on error or Ctrl-C.
"""

from __future__ import annotations

import collections
import os
import random
import sys
import time

from . import _core
from .demo import summarize


def available() -> bool:
    """True when the backend was built and PostgreSQL 15's server binaries are installed."""
    from .testing.tools import pg_bin_dir

    bin_dir = pg_bin_dir()
    return bool(getattr(_core, "HAVE_PG", False)) and os.path.exists(os.path.join(bin_dir, "postgres"))


def run(users: int = 200, seconds: float = 8.0, pause_at_s: float = 2.5, resume_at_s: float = 5.5,
        seed: int = 7, out=sys.stdout) -> dict:
    """Runs the demo and returns its summary (also printed to `out`)."""
    from ._pgdb import database_for_cluster
    from .testing import LocalCluster

    rng = random.Random(seed)
    started = time.monotonic()
    with LocalCluster(replicas=2) as cluster:
        print(f"replikit demo: PostgreSQL 15 primary + r1, r2 streaming on loopback "
              f"(up in {time.monotonic() - started:.2f} s); {users} users write their row and read it back "
              f"(read-your-writes); r2's replay is paused from {pause_at_s} s to {resume_at_s} s", file=out)
        cluster.sql("primary", "CREATE TABLE demo_users (id int PRIMARY KEY, value bigint NOT NULL)")
        cluster.sql("primary", f"INSERT INTO demo_users SELECT g, 0 FROM generate_series(0, {users - 1}) g")
        cluster.wait_caught_up(timeout_ms=30_000)
        with database_for_cluster(cluster, probe_interval_ms=50, max_lag_ms=300, recover_lag_ms=100,
                                  wait_for_replica_ms=0) as db:
            db.wait_probes(2, 5000)
            sessions = [_core.Session() for _ in range(users)]
            written = [0] * users
            violations = 0
            per_node: collections.Counter[str] = collections.Counter()
            per_reason: collections.Counter[str] = collections.Counter()
            window: collections.Counter[str] = collections.Counter()
            paused = resumed = False
            next_report = 0.5
            value = 0
            print(f"{'time':>5}  {'r1 lag':>8} {'r1':>7}  {'r2 lag':>8} {'r2':>7}  reads in the last 0.5 s", file=out)
            t0 = time.monotonic()
            while True:
                elapsed = time.monotonic() - t0
                if elapsed >= seconds:
                    break
                if not paused and elapsed >= pause_at_s:
                    cluster.pause_replay("r2")
                    paused = True
                if paused and not resumed and elapsed >= resume_at_s:
                    cluster.resume_replay("r2")
                    resumed = True
                user = rng.randrange(users)
                session = sessions[user]
                if rng.random() < 0.2:
                    value += 1
                    db.execute("UPDATE demo_users SET value = $1 WHERE id = $2", [value, user], session)
                    written[user] = value
                result = db.query("SELECT value FROM demo_users WHERE id = $1", [user], session,
                                  consistency=_core.Consistency.READ_YOUR_WRITES)
                if result.scalar() != written[user]:
                    violations += 1
                per_node[result.node] += 1
                per_reason[result.reason.name] += 1
                window[result.node] += 1
                if elapsed >= next_report:
                    status = {n.name: n for n in db.nodes()}
                    r1, r2 = status["r1"], status["r2"]
                    spread = ", ".join(f"{k} {v}" for k, v in sorted(window.items()))
                    print(f"{next_report:>4.1f}s  {r1.lag_ms:>6.0f}ms {r1.lag_state.name:>7}  {r2.lag_ms:>6.0f}ms "
                          f"{r2.lag_state.name:>7}  {spread}", file=out, flush=True)
                    window.clear()
                    next_report += 0.5
            if paused and not resumed:
                cluster.resume_replay("r2")
            # Event times are steady-clock ns: the clock of time.monotonic().
            events = [(e.time_ns / 1e9 - t0,
                       e.node, e.kind.name, round(e.lag_ms))
                      for e in db.lag_tracker.events()]
    return summarize(per_node, per_reason, events, violations, out)
