"""The main demo: users writing and reading back their own data while a replica lags.

    replikit demo                # a real local PostgreSQL cluster when available
    replikit demo --in-process   # a simulated cluster in this process

(``python -m replikit.demo`` does the same.)

The in-process demo drives the real Router, LagTracker and Sessions with a simulated cluster
and a simulated clock: a primary that turns each write into WAL, two replicas that replay it a
few milliseconds later, and replica r2 whose replay is paused in the middle of the run. It
prints, every half second of simulated time, each replica's lag and state, where reads went
and why, and at the end the traffic per node and the number of read-your-writes violations
(reads that did not see the reader's own last write), which must be zero.

Against PostgreSQL a second act follows: the primary instance crashes under the same users
and a failover happens; the demo prints the detection, promotion and first-write times, the
other replica following the new primary, and the lost-write report (see replikit._demo_pg).
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
from typing import Any, TextIO

from . import _core as rk

MS = 1_000_000  # nanoseconds per millisecond


class SimulatedCluster:
    """A primary and replicas as LSN counters; each replica replays WAL after a delay."""

    def __init__(self, replicas: list[str], replay_delay_ms: float, seed: int) -> None:
        self.rng = random.Random(seed)
        self.lsn = 0x3000000
        self.history: collections.deque[tuple[int, int]] = collections.deque(maxlen=100_000)
        self.replay = {name: self.lsn for name in replicas}
        self.paused: set[str] = set()
        self.delay_ns = int(replay_delay_ms * MS)
        self.values: dict[int, int] = {}  # user -> value last written (on the primary)
        self.data: dict[str, dict[int, int]] = {name: {} for name in replicas}
        self.log: collections.deque[tuple[int, int, int]] = collections.deque()  # (lsn, user, value)

    def write(self, now_ns: int, user: int, value: int) -> int:
        self.lsn += self.rng.randint(100, 400)
        self.history.append((now_ns, self.lsn))
        self.values[user] = value
        self.log.append((self.lsn, user, value))
        return self.lsn

    def advance(self, now_ns: int) -> None:
        """Replicas replay what the primary wrote at least `delay` ago, unless paused."""
        target = 0x3000000
        for t, lsn in self.history:
            if t <= now_ns - self.delay_ns:
                target = lsn
            else:
                break
        for name in self.replay:
            if name not in self.paused and target > self.replay[name]:
                for lsn, user, value in self.log:
                    if self.replay[name] < lsn <= target:
                        self.data[name][user] = value
                self.replay[name] = target

    def read(self, node: str, user: int) -> int | None:
        if node == "primary":
            return self.values.get(user)
        return self.data[node].get(user)


def run_in_process(users: int = 200, seconds: float = 6.0, seed: int = 7,
                   out: TextIO = sys.stdout) -> dict[str, Any]:
    """Runs the simulated demo and returns its summary (also printed to `out`)."""
    print(f"replikit demo (in-process, simulated clock, seed={seed}): primary + r1, r2; "
          f"{users} users write then read their own data; r2's replay is paused from 2.0 s to 4.0 s",
          file=out)
    topology = rk.Topology("primary", ["r1", "r2"])
    lag = rk.LagTracker(topology, max_lag_ms=200, recover_lag_ms=50)
    router = rk.Router(topology, policy=rk.Policy.ROUND_ROBIN)
    cluster = SimulatedCluster(["r1", "r2"], replay_delay_ms=5, seed=seed)
    rng = random.Random(seed)
    sessions = [rk.Session() for _ in range(users)]
    last_written: dict[int, int] = {}
    violations = 0
    per_node: collections.Counter[str] = collections.Counter()
    per_reason: collections.Counter[str] = collections.Counter()
    window: collections.Counter[str] = collections.Counter()

    tick_ns = 1 * MS          # one simulated millisecond per step
    probe_every = 20          # the lag tracker is fed every 20 ms, as a prober would
    steps = int(seconds * 1000)
    value = 0
    print(f"{'time':>6}  {'r1 lag':>8} {'r1':>7}  {'r2 lag':>8} {'r2':>7}  reads in the last 0.5 s", file=out)
    for step in range(1, steps + 1):
        now = step * tick_ns
        if step == 2000:
            cluster.paused.add("r2")
        if step == 4000:
            cluster.paused.discard("r2")
        cluster.advance(now)
        if step % probe_every == 0:
            lag.primary_sample(cluster.lsn, now_ns=now)
            for name in ("r1", "r2"):
                lag.replica_sample(name, cluster.replay[name], cluster.replay[name], now_ns=now)
        # A few users act each millisecond: write, then read their own data right away.
        for _ in range(3):
            user = rng.randrange(users)
            session = sessions[user]
            if rng.random() < 0.3:
                value += 1
                commit_lsn = cluster.write(now, user, value)
                session.record_write(commit_lsn, now_ns=now)
                last_written[user] = value
            decision = router.route_read(session, rk.Consistency.READ_YOUR_WRITES, now_ns=now)
            node = decision.node
            if node is None:  # the primary is always up here: read-your-writes falls back to it
                raise RuntimeError(f"demo: no node can serve a read ({decision.reason.name})")
            seen = cluster.read(node, user)
            if user in last_written and seen != last_written[user]:
                violations += 1
            per_node[node] += 1
            per_reason[decision.reason.name] += 1
            window[f"{node}"] += 1
        if step % 500 == 0:
            r1, r2 = lag.replica("r1"), lag.replica("r2")
            spread = ", ".join(f"{k} {v}" for k, v in sorted(window.items()))
            print(f"{step / 1000:>5.1f}s  {r1.lag_ms:>6.0f}ms {r1.state.name:>7}  {r2.lag_ms:>6.0f}ms "
                  f"{r2.state.name:>7}  {spread}", file=out)
            window.clear()
    events = [(e.time_ns / 1e9, e.node, e.kind.name, round(e.lag_ms)) for e in lag.events()]
    return summarize(per_node, per_reason, events, violations, out)


def summarize(per_node: collections.Counter[str], per_reason: collections.Counter[str],
              events: list[tuple[float, str, str, int]], violations: int, out: TextIO) -> dict[str, Any]:
    """Prints the end of a demo run (lag events, traffic, violations) and returns it as a dict."""
    total = sum(per_node.values())
    print("lag events: " + ("; ".join(f"{t:.2f}s {n} {k} at {ms} ms" for t, n, k, ms in events) or "none"),
          file=out)
    print("reads per node: " + ", ".join(f"{k} {v} ({100 * v / max(total, 1):.0f}%)"
                                         for k, v in sorted(per_node.items())), file=out)
    print("reads per reason: " + ", ".join(f"{k} {v}" for k, v in per_reason.most_common()), file=out)
    print(f"read-your-writes violations: {violations} of {total} reads", file=out)
    return {"violations": violations, "reads": total, "per_node": dict(per_node),
            "per_reason": dict(per_reason), "events": events}


def main(argv: list[str] | None = None, prog: str = "python -m replikit.demo") -> int:
    """Runs the demo with command-line options ``argv``; returns the exit status."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--in-process", action="store_true",
                        help="simulate the cluster in this process instead of starting PostgreSQL")
    parser.add_argument("--seed", type=int, default=7, help="seed of the simulated workload")
    parser.add_argument("--failover-mode", choices=("semi_sync", "async"), default="semi_sync",
                        help="replication mode of the PostgreSQL demo's failover act (default "
                             "semi_sync: no acknowledged write lost; async: the primary's WAL "
                             "senders stop 0.5 s before the crash, and what it acknowledges "
                             "meanwhile is lost and listed)")
    args = parser.parse_args(argv)
    if not args.in_process:
        try:
            from . import _demo_pg
        except ImportError as exc:  # the PostgreSQL demo needs the PostgreSQL backend
            print(f"(PostgreSQL demo unavailable: {exc}; running the in-process demo)")
        else:
            if _demo_pg.available():
                summary = _demo_pg.run(seed=args.seed, failover_mode=args.failover_mode)
                failover = summary.get("failover") or {}
                return 0 if summary["violations"] == 0 and "error" not in failover else 1
            print("(PostgreSQL 15 or the PostgreSQL backend is not available here; running the in-process demo)")
    summary = run_in_process(seed=args.seed)
    return 0 if summary["violations"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
