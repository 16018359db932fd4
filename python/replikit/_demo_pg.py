"""The main demo against a real local PostgreSQL cluster (see replikit.demo).

Starts a primary and two streaming replicas with replikit.testing.LocalCluster, then simulated
users write their own row and read it back with read-your-writes consistency through
ReplicatedDatabase.

Act 1 (routing): r2's WAL replay is paused for a few seconds and resumed. Every half second it
prints each replica's lag as the prober measures it, its state, and where reads went.

Act 2 (failover): the cluster switches to semi-synchronous replication (ANY 1; or async with
``--failover-mode async``, where acknowledged writes can be lost: there the primary's WAL
senders are stopped for the last STALL_S seconds before the crash, as a stalled network
would hold them, so the writes it acknowledges meanwhile reach no replica) and, under the
same users, the primary instance crashes (postmaster and every child killed together). replikit's
FailoverManager, started before the crash on the demo's database, fails over; the demo prints
the detection, promotion and first-write times from its FailoverReport, the other replica
following the new primary, and the lost-write report (``db.lost_writes()``).

At the end: the traffic per node and per reason, the lag events, and the number of
read-your-writes violations (a read that did not return the reader's own last acknowledged
write), which must be zero. The cluster is stopped afterwards, also on error or Ctrl-C.
"""

from __future__ import annotations

import collections
import os
import random
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from . import _core
from .demo import summarize

if TYPE_CHECKING:  # the harness is imported by run(), when the demo starts a cluster
    from .testing import LocalCluster


STALL_S = 0.5  # async act: the WAL senders stopped for this long before the crash


def available() -> bool:
    """True when the backend was built and PostgreSQL 15's server binaries are installed."""
    from .testing.tools import pg_bin_dir

    bin_dir = pg_bin_dir()
    return bool(getattr(_core, "HAVE_PG", False)) and os.path.exists(os.path.join(bin_dir, "postgres"))


class Users:
    """Simulated users: each writes its own row now and then and reads it back (RYW)."""

    def __init__(self, db: Any, users: int, rng: random.Random) -> None:
        self.db = db
        self.rng = rng
        self.sessions = [_core.Session() for _ in range(users)]
        self.written: List[Optional[int]] = [0] * users  # None: a write's outcome unknown
        self.value = 0
        self.violations = 0
        self.failed = 0  # requests that raised (the primary was down)
        self.tolerate_errors = False  # only while a failover is expected
        self.crashed_at: Optional[float] = None  # time.monotonic() of the primary's crash
        self.acked_at = [0.0] * users  # when each user's last write was acknowledged
        self.lost_seen = 0  # reads missing a write the old primary acknowledged before its crash
        self.acks: List[Tuple[float, str]] = []  # (time.monotonic(), node) of acknowledged writes
        self.per_node: collections.Counter[str] = collections.Counter()
        self.per_reason: collections.Counter[str] = collections.Counter()
        self.window: collections.Counter[str] = collections.Counter()

    def step(self) -> None:
        """One user acts: maybe a write, then a read of its own row."""
        user = self.rng.randrange(len(self.sessions))
        session = self.sessions[user]
        try:
            if self.rng.random() < 0.2:
                self.value += 1
                self.written[user] = None  # until acknowledged
                result = self.db.execute("UPDATE demo_users SET value = $1 WHERE id = $2",
                                         [self.value, user], session)
                self.written[user] = self.value
                self.acked_at[user] = time.monotonic()
                self.acks.append((self.acked_at[user], result.node))
            result = self.db.query("SELECT value FROM demo_users WHERE id = $1", [user],
                                   session, consistency=_core.Consistency.READ_YOUR_WRITES)
        except _core.Error:
            if not self.tolerate_errors:
                raise
            self.failed += 1
            time.sleep(0.002)  # the primary is down: don't spin
            return
        seen = result.scalar()
        if self.written[user] is not None and seen != self.written[user]:
            if self.crashed_at is not None and self.acked_at[user] < self.crashed_at:
                self.lost_seen += 1  # lost with the old primary, not a routing error
                self.written[user] = seen
            else:
                self.violations += 1
        self.per_node[result.node] += 1
        self.per_reason[result.reason.name] += 1
        self.window[result.node] += 1

    def run_for(self, seconds: float, on_tick: Callable[[float], None]) -> None:
        """Act for ``seconds``; ``on_tick(elapsed)`` runs between steps."""
        t0 = time.monotonic()
        while True:
            elapsed = time.monotonic() - t0
            if elapsed >= seconds:
                return
            on_tick(elapsed)
            self.step()


def _routing_act(cluster: LocalCluster, db: Any, users: Users, seconds: float, pause_at_s: float,
                 resume_at_s: float, out: Any) -> float:
    """Act 1: r2's replay paused and resumed; prints lag, state and reads every 0.5 s."""
    state = {"paused": False, "resumed": False, "next": 0.5}

    def tick(elapsed: float) -> None:
        if not state["paused"] and elapsed >= pause_at_s:
            cluster.pause_replay("r2")
            state["paused"] = True
        if state["paused"] and not state["resumed"] and elapsed >= resume_at_s:
            cluster.resume_replay("r2")
            state["resumed"] = True
        if elapsed >= state["next"]:
            status = {n.name: n for n in db.nodes()}
            r1, r2 = status["r1"], status["r2"]
            spread = ", ".join(f"{k} {v}" for k, v in sorted(users.window.items()))
            print(f"{state['next']:>4.1f}s  {r1.lag_ms:>6.0f}ms {r1.lag_state.name:>7}  "
                  f"{r2.lag_ms:>6.0f}ms {r2.lag_state.name:>7}  {spread}", file=out, flush=True)
            users.window.clear()
            state["next"] += 0.5

    print(f"{'time':>5}  {'r1 lag':>8} {'r1':>7}  {'r2 lag':>8} {'r2':>7}  reads in the last 0.5 s",
          file=out)
    t0 = time.monotonic()
    users.run_for(seconds, tick)
    if state["paused"] and not state["resumed"]:
        cluster.resume_replay("r2")
    return t0


def _start_manager(db: Any) -> Any:
    """replikit's FailoverManager on the demo's database: the prober's 50 ms probes feed a
    missed-heartbeat detector (50 ms x 3); it reads the primary's synchronous settings every
    50 ms while the primary is up."""
    detector = _core.DetectorConfig(interval_ms=50, missed_threshold=3)
    manager = _core.FailoverManager(db, detector=detector, state_interval_ms=50)
    manager.start()
    return manager


def _wait_streaming(cluster: LocalCluster, primary: str, names: List[str],
                    timeout_s: float) -> Dict[str, Dict[str, Optional[str]]]:
    """The replication state, as ``primary`` sees it, of ``names`` once all stream (bounded)."""
    deadline = time.monotonic() + timeout_s
    while True:
        replication = cluster.replication(primary)
        if all(replication.get(n, {}).get("state") == "streaming" for n in names) \
                or time.monotonic() >= deadline:
            return replication
        time.sleep(0.02)


def _failover_act(cluster: LocalCluster, db: Any, manager: Any, mode: str) -> Dict[str, Any]:
    """Wait for the manager's failover after the primary crashed; return what happened
    (``*_at``: time.monotonic(), the clock of the report's steady-clock nanoseconds)."""
    if not manager.wait_reports(1, 30_000):
        return {"new_primary": None, "reason": "the manager reported no failover within 30 s"}
    report = manager.reports()[0]
    result: Dict[str, Any] = {"new_primary": report.promoted, "reason": report.reason,
                              "report": report, "followers": list(report.repointed)}
    if report.promoted is None:
        return result
    result["detected_at"] = report.detected_ns / 1e9
    result["promoted_at"] = report.promoted_ns / 1e9
    result["replication"] = _wait_streaming(cluster, report.promoted, result["followers"], 10.0)
    if result["followers"] and mode != "async":
        # The new primary starts without synchronous standbys: give it the demo's mode again.
        names = ", ".join(f'"{n}"' for n in result["followers"])
        cluster.sql(report.promoted, f"ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 ({names})'")
        cluster.sql(report.promoted, "SELECT pg_reload_conf()")
    return result


def _run_failover(cluster: LocalCluster, db: Any, users: Users, seconds: float, crash_at_s: float,
                  mode: str, out: Any) -> Dict[str, Any]:
    """Act 2: replication ``mode`` (semi_sync: no acknowledged write may be lost; async: some
    may be), a FailoverManager watching, the primary instance crashes under the users."""
    cluster.set_replication_mode(mode)
    users.tolerate_errors = True
    users.window.clear()
    names = cluster.sql("primary", "SHOW synchronous_standby_names")[0][0] or "none"
    stall = (f"; its WAL senders stop (SIGSTOP) {STALL_S:.1f} s before, so the writes it "
             f"acknowledges from then on reach no replica" if mode == "async" else "")
    print(f"act 2: {mode} replication (synchronous standbys: {names}); a FailoverManager "
          f"watches (50 ms x 3); the primary instance crashes at {crash_at_s:.1f} s under the "
          f"same users{stall}", file=out, flush=True)
    state: Dict[str, Any] = {}
    manager = _start_manager(db)
    try:
        def act() -> None:
            try:
                state["report"] = _failover_act(cluster, db, manager, mode)
            except Exception as exc:  # noqa: BLE001 - reported below, the demo goes on
                state["error"] = exc

        def tick(elapsed: float) -> None:
            if mode == "async" and "stalled_at" not in state and elapsed >= crash_at_s - STALL_S:
                cluster.pause_wal_send("primary")
                state["stalled_at"] = time.monotonic()
            if "crashed_at" not in state and elapsed >= crash_at_s:
                failed_before = users.failed
                state["crashed_at"] = users.crashed_at = cluster.crash("primary")
                # The crash's instant on the wall clock (the clock of AckedWrite.at_ns).
                state["crashed_wall_ns"] = time.time_ns() - int((time.monotonic() - state["crashed_at"]) * 1e9)
                state["failed_before"] = failed_before
                state["thread"] = threading.Thread(target=act, daemon=True)
                state["thread"].start()

        users.run_for(seconds, tick)
        if "thread" not in state:
            return {"error": "the run ended before the crash"}
        state["thread"].join(timeout=60.0)
        state["loss"] = db.lost_writes()
    finally:
        manager.stop()
    return _report_failover(users, state, out)


def _report_failover(users: Users, state: Dict[str, Any], out: Any) -> Dict[str, Any]:
    if "error" in state or "report" not in state:
        print(f"failover failed: {state.get('error', 'did not finish')}", file=out)
        return {"error": str(state.get("error", "did not finish"))}
    result = dict(state["report"])
    crashed_at = state["crashed_at"]
    new = result.get("new_primary")
    if new is None:
        print(f"no failover: {result['reason']}", file=out)
        return result
    report = result.pop("report")
    first = next((t for t, node in users.acks if t >= crashed_at and node == new), None)
    result["detected_s"] = result["detected_at"] - crashed_at
    result["promotion_ms"] = report.promotion_ms
    result["first_write_s"] = None if first is None else first - crashed_at
    result["failed_requests"] = users.failed - state["failed_before"]
    result["lost_seen"] = users.lost_seen
    print(f"  detection: {result['detected_s']:.3f} s after the crash ({report.detection_ms:.0f} ms "
          f"after the primary's last good probe)", file=out)
    print(f"  promotion: {new} ({report.reason}) in {report.promotion_ms / 1000:.3f} s; writable "
          f"{report.writable_ms / 1000:.3f} s after detection (timeline {report.timeline}, "
          f"epoch {report.epoch})", file=out)
    first_text = "none" if first is None else f"{result['first_write_s']:.3f} s after the crash"
    print(f"  first write acknowledged by {new}: {first_text} ({result['failed_requests']} "
          f"requests failed meanwhile)", file=out)
    replication = result.pop("replication")
    result["following"] = {name: info["state"] for name, info in replication.items()}
    for name in result["followers"]:
        print(f"  {name} follows {new}: {replication.get(name, {}).get('state', 'not connected')}",
              file=out)
    spread = ", ".join(f"{k} {v}" for k, v in sorted(users.window.items()))
    print(f"  reads in act 2: {spread}", file=out)
    loss = state["loss"]
    result["lost_xids"] = list(loss.lost_xids)
    result["unknown_writes"] = len(loss.unknown)
    result["survived"] = loss.survived
    shown = ", ".join(map(str, result["lost_xids"][:10])) + (" ..." if len(loss.lost) > 10 else "")
    print(f"  lost-write report (db.lost_writes()): {len(loss.lost)} acknowledged write(s) lost"
          + (f" (xids {shown})" if loss.lost else "") + f", {loss.survived} survived, "
          f"{len(loss.unknown)} unknown", file=out)
    if "stalled_at" in state:
        _report_stall(users, state, loss, result, out)
    print(f"  users who read their row without a write the old primary had acknowledged: "
          f"{users.lost_seen}", file=out)
    return result


def _report_stall(users: Users, state: Dict[str, Any], loss: Any, result: Dict[str, Any],
                  out: Any) -> None:
    """The async act: how many writes the primary acknowledged while its WAL senders were
    stopped, and when the lost ones were acknowledged, relative to the crash."""
    stall_s = state["crashed_at"] - state["stalled_at"]
    result["stall_s"] = stall_s
    result["acked_in_stall"] = sum(1 for t, _ in users.acks if state["stalled_at"] <= t < state["crashed_at"])
    before_ms = sorted((state["crashed_wall_ns"] - w.at_ns) / 1e6 for w in loss.lost)
    result["lost_acked_ms_before_crash"] = before_ms
    when = (f"; the lost ones were acknowledged {before_ms[0]:.0f} to {before_ms[-1]:.0f} ms "
            f"before the crash" if before_ms else "")
    print(f"  the primary acknowledged {result['acked_in_stall']} write(s) in the "
          f"{stall_s * 1000:.0f} ms its WAL senders were stopped{when}", file=out)


def run(users: int = 200, seconds: float = 8.0, pause_at_s: float = 2.5, resume_at_s: float = 5.5,
        seed: int = 7, out: Any = sys.stdout, failover_seconds: float = 4.0,
        crash_at_s: float = 1.0, failover_mode: str = "semi_sync") -> Dict[str, Any]:
    """Runs the demo and returns its summary (also printed to `out`); ``failover_seconds`` 0
    skips act 2, ``failover_mode`` is its replication mode (a LocalCluster mode)."""
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
            crowd = Users(db, users, rng)
            t0 = _routing_act(cluster, db, crowd, seconds, pause_at_s, resume_at_s, out)
            # Event times are steady-clock ns: the clock of time.monotonic().
            events = [(e.time_ns / 1e9 - t0, e.node, e.kind.name, round(e.lag_ms))
                      for e in db.lag_tracker.events()]
            failover = None
            if failover_seconds > 0:
                failover = _run_failover(cluster, db, crowd, failover_seconds, crash_at_s,
                                         failover_mode, out)
    summary = summarize(crowd.per_node, crowd.per_reason, events, crowd.violations, out)
    summary["failover"] = failover
    return summary
