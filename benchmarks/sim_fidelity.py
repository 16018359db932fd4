#!/usr/bin/env python3
"""Model fidelity: one workload on a real local cluster and in the simulator, compared.

Usage (needs the package with the PostgreSQL backend and psycopg, e.g. from scripts/setup.sh):

    .venv/bin/python benchmarks/sim_fidelity.py [--run-s 30] [--pause-s 5] [--pause-at-s 10]
        [--write-rate 200] [--read-rate 400] [--eventual-share 0.5] [--sessions 16]
        [--seed 1] [--delay run|median|distribution] [--json out.json]

The real side: a primary and two streaming replicas (replikit.testing.LocalCluster, async, on
loopback) used through one ReplicatedDatabase. One writer thread inserts rows at Poisson
instants (write rate), each in a session drawn uniformly from ``--sessions``; reader threads
send Poisson reads (read rate), each eventual or read_your_writes (``--eventual-share``) in a
uniformly drawn session. WAL replay of replica r1 is paused (pg_wal_replay_pause) at
``--pause-at-s`` for ``--pause-s`` seconds, then resumed. Each read records the node that
answered, the router's reason, the highest row id that node had and the server's clock when
the read ran; each write the server's clock at its insert (one host: one clock). Stale:

- eventual (the simulator's definition): the node lacked a write committed on the primary
  before the read ran there. Also printed, by the client's definition: the last write
  acknowledged before the read was sent is missing (fewer: the round trips hide part of the
  replication delay). "Added by the pause": the stale reads of the paused replica from the
  pause to a second after the resume, less its stale share outside that window, over all
  eventual reads (simulated: the rate with the pause minus the rate without it).
- read_your_writes: the session's own last acknowledged write is missing (must be 0).

The paused replica's lag is sampled from the database's lag tracker (NodeStatus.lag_ms) every
20 ms, and the prober's effective interval from r2's last_probe_ns. Before the run, a
calibration measures the replication delay on the same cluster (the replica itself, in a
plpgsql loop, watches for a row; commit instant: pg_last_xact_replay_timestamp) while a
background writer keeps the write rate. The simulator's replica_latency is by default the
delay of the run itself, inferred from the stale share of the replica reads outside the pause
(see replication_delay: those reads then agree by construction; on a shared machine the delay
drifts with the load more than a calibration before the run can follow), or with ``--delay
median`` / ``distribution`` the calibration's. The client latency is the measured half round
trip of the run's replica reads.

The simulated side: SimConfig with the same rates, sessions, mix, probe interval (the
prober's effective one), router and lag-tracker settings, the pause at the instants measured
in the real run, and the measured delays; the prediction is the mean of ``--sim-runs`` seeded
runs (seeds ``--seed`` onwards, printed). It prints, for each figure, predicted vs measured, the relative error
and whether it is within 10%. Every wait is bounded; the cluster is stopped at the end, also on
failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import copy
import json
import random
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

TABLE = "fidelity_rows"
LAG_SAMPLE_S = 0.02
TOLERANCE = 0.10
CALIBRATION_POLL_LIMIT_S = 2.0
DELAY_MODELS = ("run", "median", "distribution")
RECOVERY_S = 1.0  # after the resume, the router takes the replica back within this
NOW_S = "extract(epoch FROM clock_timestamp())::float8"


@dataclass
class Settings:
    run_s: float = 30.0
    pause_s: float = 5.0
    pause_at_s: float = 10.0
    write_rate: float = 200.0
    read_rate: float = 400.0
    eventual_share: float = 0.5
    sessions: int = 16
    readers: int = 3
    probe_interval_ms: float = 100.0
    calibration: int = 200
    seed: int = 1
    sim_runs: int = 20  # the prediction: the mean of this many seeded simulated runs
    delay: str = "run"  # the simulator's replication delay: "run", "median" or "distribution"

    def check(self) -> None:
        if not 0 < self.pause_at_s < self.pause_at_s + self.pause_s < self.run_s:
            raise SystemExit("need 0 < pause-at-s < pause-at-s + pause-s < run-s")
        if self.write_rate <= 0 or self.read_rate <= 0 or not 0 <= self.eventual_share <= 1:
            raise SystemExit("rates must be > 0 and eventual-share in [0, 1]")
        if not 1 <= self.sim_runs <= 1000:
            raise SystemExit("sim-runs must be in [1, 1000]")
        if self.sessions < 1 or self.readers < 1 or self.calibration < 10:
            raise SystemExit("sessions, readers >= 1 and calibration >= 10")
        if self.delay not in DELAY_MODELS:
            raise SystemExit("delay must be one of " + ", ".join(DELAY_MODELS))


@dataclass
class Read:
    """One read of the real run (times in seconds from the run's start)."""
    sent: float
    done: float
    level: str
    node: str
    reason: str
    stale: bool  # the row it had to see (see the module docstring) was missing
    visible: int  # the highest row id the answering node had
    executed: float  # the answering server's clock when the read ran (epoch seconds)


@dataclass
class Measured:
    """What the real run recorded (times in seconds from the run's start)."""
    pause_start_s: float = 0.0
    pause_end_s: float = 0.0
    reads: List[Read] = field(default_factory=list)
    commits: List[Tuple[float, int]] = field(default_factory=list)  # server clock, row id
    read_errors: int = 0
    writes: int = 0
    write_errors: int = 0
    lag: List[Tuple[float, float]] = field(default_factory=list)  # t, lag_ms of the paused replica
    probes: List[int] = field(default_factory=list)  # distinct last_probe_ns of r2 seen


# ------------------------------------------------------------------ calibration (real cluster)
# The replica itself watches for a row: each statement of a volatile plpgsql function takes a
# new snapshot, so the loop sees the row the moment replay makes it visible; the commit
# instant is the commit record's own timestamp (pg_last_xact_replay_timestamp; one host, one clock).
WAIT_FUNCTION = f"""
CREATE FUNCTION fidelity_visible_after_ms(wanted bigint, limit_s float8) RETURNS float8
LANGUAGE plpgsql VOLATILE AS $$
DECLARE deadline timestamptz := clock_timestamp() + make_interval(secs => limit_s);
BEGIN
  LOOP
    IF EXISTS (SELECT 1 FROM {TABLE} WHERE id = wanted) THEN
      RETURN extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000;
    END IF;
    IF clock_timestamp() > deadline THEN RETURN NULL; END IF;
  END LOOP;
END $$"""


def calibrate(cluster: Any, count: int, write_rate: float, seed: int) -> List[float]:
    """Replication delays: from a commit on the primary to its row visible on r2, in ms, while
    a background writer keeps the workload's write rate (a warm walreceiver and startup process
    replay faster than idle ones)."""
    import psycopg

    stop = threading.Event()

    def background() -> None:
        rng = random.Random(seed)
        with psycopg.connect(cluster.dsn("primary"), autocommit=True) as conn:
            row_id = -1_000_000_000
            while not stop.wait(rng.expovariate(write_rate)):
                row_id -= 1
                conn.execute(f"INSERT INTO {TABLE} (id, session) VALUES (%s, -2)", (row_id,))

    delays: List[float] = []
    writer = threading.Thread(target=background, daemon=True)
    writer.start()
    try:
        with psycopg.connect(cluster.dsn("primary"), autocommit=True) as prim, \
                psycopg.connect(cluster.dsn("r2"), autocommit=True) as rep:
            for i in range(count):
                delays.append(_one_delay(prim, rep, -1 - i))
    finally:
        stop.set()
        writer.join(timeout=10)
    return delays


def _one_delay(prim: Any, rep: Any, row_id: int) -> float:
    answer: List[Optional[float]] = []
    watcher = threading.Thread(target=lambda: answer.append(rep.execute(
        "SELECT fidelity_visible_after_ms(%s, %s)", (row_id, CALIBRATION_POLL_LIMIT_S)).fetchone()[0]))
    watcher.start()
    time.sleep(0.003)  # the watcher is polling by now
    prim.execute(f"INSERT INTO {TABLE} (id, session) VALUES (%s, -1)", (row_id,))
    watcher.join(CALIBRATION_POLL_LIMIT_S + 5)
    if watcher.is_alive() or not answer or answer[0] is None:
        raise RuntimeError("calibration: a row did not reach r2 within 2 s")
    return max(0.0, float(answer[0]))


# ------------------------------------------------------------------ the real workload
class Workload:
    """Writer and reader threads over one ReplicatedDatabase, driven by seeded Poisson schedules."""

    def __init__(self, db: Any, settings: Settings, t0: float):
        import replikit

        self.db = db
        self.s = settings
        self.t0 = t0
        self.sessions = [replikit.Session() for _ in range(settings.sessions)]
        self.session_locks = [threading.Lock() for _ in range(settings.sessions)]
        self.session_last = [0] * settings.sessions
        self.last_acked = 0
        self.lock = threading.Lock()
        self.out = Measured()
        self.stop = threading.Event()

    def _sleep_until(self, t: float) -> bool:
        delay = self.t0 + t - time.monotonic()
        if delay > 0:
            self.stop.wait(delay)
        return not self.stop.is_set()

    def writer(self, seed: int) -> None:
        rng = random.Random(seed)
        t, row_id = 0.0, 0
        while True:
            t += rng.expovariate(self.s.write_rate)
            if t >= self.s.run_s or not self._sleep_until(t):
                return
            row_id += 1
            s = rng.randrange(self.s.sessions)
            with self.session_locks[s]:
                try:
                    # The server's clock at the insert (the commit follows within microseconds).
                    committed = self.db.execute(
                        f"INSERT INTO {TABLE} (id, session) VALUES ($1, $2) RETURNING {NOW_S}",
                        (row_id, s), session=self.sessions[s]).scalar()
                except Exception:  # noqa: BLE001 - counted, the run goes on
                    with self.lock:
                        self.out.write_errors += 1
                    continue
                self.session_last[s] = row_id
            with self.lock:
                self.out.commits.append((float(committed), row_id))
                self.last_acked = max(self.last_acked, row_id)
                self.out.writes += 1

    def reader(self, seed: int) -> None:
        rng = random.Random(seed)
        rate = self.s.read_rate / self.s.readers
        t = 0.0
        while True:
            t += rng.expovariate(rate)
            if t >= self.s.run_s or not self._sleep_until(t):
                return
            s = rng.randrange(self.s.sessions)
            eventual = rng.random() < self.s.eventual_share
            self._read(s, eventual)

    def _read(self, s: int, eventual: bool) -> None:
        sql = (f"SELECT (SELECT max(id) FROM {TABLE}), "
               f"EXISTS (SELECT 1 FROM {TABLE} WHERE id = $1), {NOW_S}")
        try:
            if eventual:
                with self.lock:
                    wanted = self.last_acked
                sent = time.monotonic() - self.t0
                result = self.db.query(sql, (wanted,), consistency="eventual")
                done = time.monotonic() - self.t0
            else:
                with self.session_locks[s]:
                    wanted = self.session_last[s]
                    sent = time.monotonic() - self.t0
                    result = self.db.query(sql, (wanted,), session=self.sessions[s],
                                           consistency="read_your_writes")
                    done = time.monotonic() - self.t0
        except Exception:  # noqa: BLE001 - counted, the run goes on
            with self.lock:
                self.out.read_errors += 1
            return
        level = "eventual" if eventual else "read_your_writes"
        with self.lock:
            visible, found, executed = result.rows[0]
            self.out.reads.append(Read(sent, done, level, result.node, str(result.reason.name).lower(),
                                       not found, int(visible), float(executed)))

    def lag_sampler(self, name: str) -> None:
        while not self.stop.wait(LAG_SAMPLE_S):
            t = time.monotonic() - self.t0
            if t >= self.s.run_s:
                return
            status = self.db.node(name)
            other = self.db.node("r2").last_probe_ns
            if not self.out.probes or self.out.probes[-1] != other:
                self.out.probes.append(other)
            if status.lag_known:
                with self.lock:
                    self.out.lag.append((t, status.lag_ms))


def run_real(settings: Settings, log: Any = print) -> Tuple[Measured, List[float], Any]:
    """Starts the cluster, calibrates, runs the workload; the cluster is always stopped."""
    from replikit.pg import database_for_cluster
    from replikit.testing import LocalCluster

    log("starting a primary and 2 replicas on loopback ...")
    with LocalCluster(replicas=2) as cluster:
        cluster.sql("primary", f"CREATE TABLE {TABLE} (id bigint PRIMARY KEY, session int)")
        cluster.sql("primary", f"INSERT INTO {TABLE} VALUES (0, -1)")
        cluster.sql("primary", WAIT_FUNCTION)
        cluster.wait_caught_up(timeout_ms=30_000)
        # No catch-up wait: the simulator's router sends a read-your-writes read that no replica
        # covers to the primary at once, as wait_for_replica_ms=0 does.
        db = database_for_cluster(cluster, probe_interval_ms=settings.probe_interval_ms, wait_for_replica_ms=0)
        try:
            if not db.wait_probes(3, timeout_ms=10_000):
                raise RuntimeError("the database's prober did not report within 10 s")
            log(f"calibrating: {settings.calibration} commits seen on r2 ...")
            delays = calibrate(cluster, settings.calibration, settings.write_rate, settings.seed * 1000 + 2)
            log(f"  replication delay median {statistics.median(delays):.3f} ms, "
                f"mean {statistics.fmean(delays):.3f} ms")
            options = db.options
            measured = _drive(cluster, db, settings, log)
        finally:
            db.close()
    return measured, delays, options


def _replay_call(conn: Any, function: str, t0: float) -> float:
    """Calls pg_wal_replay_pause/resume on r1; the instant (s from t0) of the call's middle."""
    before = time.monotonic()
    conn.execute(f"SELECT {function}()")
    return (before + time.monotonic()) / 2 - t0


def _drive(cluster: Any, db: Any, settings: Settings, log: Any) -> Measured:
    import psycopg

    with psycopg.connect(cluster.dsn("r1"), autocommit=True, connect_timeout=10) as control:
        try:
            return _run_workload(db, settings, log, control)
        finally:
            # Never leave r1 paused (the cluster is stopped next anyway).
            with contextlib.suppress(Exception):
                control.execute("SELECT pg_wal_replay_resume()")


def _run_workload(db: Any, settings: Settings, log: Any, control: Any) -> Measured:
    t0 = time.monotonic()
    work = Workload(db, settings, t0)
    threads = [threading.Thread(target=work.writer, args=(settings.seed * 1000 + 1,), daemon=True),
               threading.Thread(target=work.lag_sampler, args=("r1",), daemon=True)]
    threads += [threading.Thread(target=work.reader, args=(settings.seed * 1000 + 10 + i,), daemon=True)
                for i in range(settings.readers)]
    for thread in threads:
        thread.start()
    try:
        _progress_until(work, settings.pause_at_s, log)
        # On a connection opened beforehand: the call takes a fraction of a millisecond, so
        # its instant is the pause's (psql would add a process start of tens of ms).
        work.out.pause_start_s = _replay_call(control, "pg_wal_replay_pause", t0)
        log(f"  t={work.out.pause_start_s:6.2f} s: r1 replay paused")
        _progress_until(work, settings.pause_at_s + settings.pause_s, log)
        work.out.pause_end_s = _replay_call(control, "pg_wal_replay_resume", t0)
        log(f"  t={work.out.pause_end_s:6.2f} s: r1 replay resumed")
        _progress_until(work, settings.run_s, log)
    finally:
        work.stop.set()
        for thread in threads:
            thread.join(timeout=10)
    if any(thread.is_alive() for thread in threads):
        raise RuntimeError("a workload thread did not stop within 10 s")
    return work.out


def _progress_until(work: Workload, t_end: float, log: Any) -> None:
    while True:
        now = time.monotonic() - work.t0
        if now >= t_end:
            return
        time.sleep(min(2.0 - (now % 2.0), t_end - now))
        now = time.monotonic() - work.t0
        if now < t_end - 1e-3 or abs(now % 2.0) < 0.05:
            with work.lock:
                reads, writes = len(work.out.reads), work.out.writes
                lag = work.out.lag[-1][1] if work.out.lag else float("nan")
            log(f"  t={now:6.2f} s: {writes} writes, {reads} reads, r1 lag {lag:.0f} ms")


# ------------------------------------------------------------------ the figures
def half_round_trips(m: Measured) -> List[float]:
    """Half the round trip (ms) of the replica reads outside the pause: the client latency."""
    return [(r.done - r.sent) * 500.0 for r in m.reads
            if r.node != "primary" and not m.pause_start_s - 1 <= r.sent <= m.pause_end_s + 1]


def stale_at_execution(m: Measured, read: Read) -> bool:
    """The simulator's definition: the node lacked a write committed on the primary before the
    read ran there (both instants from the servers' clock: one host)."""
    k = bisect.bisect_right(m.commits, (read.executed, float("inf"))) - 1
    return k >= 0 and read.visible < m.commits[k][1]


def real_figures(m: Measured) -> Dict[str, float]:
    m.commits.sort()
    inside = [lag for t, lag in m.lag if m.pause_start_s <= t <= m.pause_end_s]
    before_end = [lag for t, lag in m.lag if t <= m.pause_end_s]
    eventual = [r for r in m.reads if r.level == "eventual"]
    ryw = [r for r in m.reads if r.level == "read_your_writes"]
    # Outside the pause and the recovery after it: what the cluster does without the pause.
    window = [r for r in eventual if m.pause_start_s <= r.sent <= m.pause_end_s + RECOVERY_S]
    calm = [r for r in eventual if r.node == "r1"
            and not m.pause_start_s <= r.sent <= m.pause_end_s + RECOVERY_S]
    stale = sum(stale_at_execution(m, r) for r in eventual) / max(1, len(eventual))
    # The pause's stale reads: those of the paused replica in the window, less the share it
    # has without a pause.
    calm_stale = sum(stale_at_execution(m, r) for r in calm) / max(1, len(calm))
    on_r1 = [r for r in window if r.node == "r1"]
    from_pause = (sum(stale_at_execution(m, r) for r in on_r1) - calm_stale * len(on_r1)) / max(1, len(eventual))
    return {
        "lag_at_pause_end_ms": before_end[-1] if before_end else float("nan"),
        "mean_lag_in_pause_ms": statistics.fmean(inside) if inside else float("nan"),
        "eventual_stale_rate": stale,
        "eventual_stale_from_pause": from_pause,
        "eventual_stale_rate_acked": sum(r.stale for r in eventual) / max(1, len(eventual)),
        "primary_read_share": sum(r.node == "primary" for r in m.reads) / max(1, len(m.reads)),
        "ryw_stale_reads": float(sum(r.stale for r in ryw)),
        "reads": float(len(m.reads)),
        "writes": float(m.writes),
    }


def probe_interval_ms(m: Measured, nominal: float) -> float:
    """The prober's effective interval (nominal + the time a round of probes takes)."""
    if len(m.probes) < 10:
        return nominal
    return (m.probes[-1] - m.probes[1]) / 1e6 / (len(m.probes) - 2)


def reasons(m: Measured) -> Dict[str, int]:
    """Why reads went to the primary, by router reason."""
    out: Dict[str, int] = {}
    for r in m.reads:
        if r.node == "primary":
            out[r.reason] = out.get(r.reason, 0) + 1
    return out


def calm_replica_stale_rate(m: Measured) -> float:
    """Stale share of the replica reads (any level) outside the pause and its recovery."""
    calm = [r for r in m.reads if r.node != "primary"
            and not m.pause_start_s <= r.sent <= m.pause_end_s + RECOVERY_S]
    return sum(stale_at_execution(m, r) for r in calm) / max(1, len(calm))


def replication_delay(settings: Settings, m: Measured, delays: List[float]) -> Any:
    """The simulator's replica_latency for ``settings.delay``:

    - run: the constant delay d that explains the replica reads' stale share p outside the
      pause: with Poisson writes at rate w a read misses the newest commit when it is younger
      than d, so p = 1 - exp(-w d). The delay of this very run (on a shared machine it drifts
      with the other processes' load far more than the calibration can follow); the stale reads
      outside the pause then agree by construction, and the prediction is the pause's part.
    - median / distribution: the calibration's median, or its samples (independent of the run).
    """
    import math

    from replikit import LatencyDistribution

    if settings.delay == "median":
        return statistics.median(delays)
    if settings.delay == "distribution":
        return LatencyDistribution.empirical(delays)
    p = min(calm_replica_stale_rate(m), 0.99)
    return -math.log(1.0 - p) / settings.write_rate * 1000.0


def sim_config(settings: Settings, m: Measured, delays: List[float], options: Any) -> Any:
    from replikit import LagConfig, LatencyDistribution, RouterConfig
    from replikit.sim import SimConfig

    return SimConfig(
        duration_ms=settings.run_s * 1000.0,
        write_rate_per_s=settings.write_rate,
        read_rate_per_s=settings.read_rate,
        sessions=settings.sessions,
        consistency_mix={"eventual": settings.eventual_share,
                         "read_your_writes": 1.0 - settings.eventual_share},
        replicas=2,
        names=["primary", "r1", "r2"],
        # Service times: loopback queries of one row take well under the round trip, which
        # the client latency carries.
        read_service=0.05, write_service=0.1,
        # The measured commit-to-visible delay is the replica's; replay itself is then quick.
        replica_latency=replication_delay(settings, m, delays),
        apply_rate_per_s=100_000.0,
        client_latency=LatencyDistribution.empirical(half_round_trips(m)),
        probe_interval_ms=probe_interval_ms(m, options.probe_interval_ms),
        router=RouterConfig(policy=options.policy, time_window_ms=options.time_window_ms,
                            seed=options.seed, sticky_reads=options.sticky_reads),
        lag=LagConfig(max_lag_ms=options.max_lag_ms, recover_lag_ms=options.recover_lag_ms),
        pauses=[("r1", m.pause_start_s * 1000.0, m.pause_end_s * 1000.0)],
        sample_interval_ms=LAG_SAMPLE_S * 1000.0,
    )


def sim_figures(results: List[Any], unpaused: List[Any], m: Measured) -> Dict[str, float]:
    """The model's prediction: each figure's mean over the seeded runs (RYW stale: the most
    any run had)."""
    runs = [_one_sim(r, u, m) for r, u in zip(results, unpaused)]
    out = {key: statistics.fmean(run[key] for run in runs) for key in runs[0]}
    out["ryw_stale_reads"] = max(run["ryw_stale_reads"] for run in runs)
    return out


def _one_sim(result: Any, unpaused: Any, m: Measured) -> Dict[str, float]:
    import numpy as np

    times = np.asarray(result.sample_times_ms) / 1000.0
    tracked = np.asarray(result.tracked_lag_ms["r1"])
    inside = (times >= m.pause_start_s) & (times <= m.pause_end_s)
    before_end = np.nonzero(times <= m.pause_end_s)[0]
    levels = result.levels
    return {
        "lag_at_pause_end_ms": float(tracked[before_end[-1]]) if len(before_end) else float("nan"),
        "mean_lag_in_pause_ms": float(tracked[inside].mean()) if inside.any() else float("nan"),
        "eventual_stale_rate": float(result.stale_read_rate.get("eventual", 0.0)),
        "eventual_stale_from_pause": float(result.stale_read_rate.get("eventual", 0.0)
                                           - unpaused.stale_read_rate.get("eventual", 0.0)),
        "primary_read_share": float(result.primary_read_share),
        "ryw_stale_reads": float(levels["read_your_writes"]["stale"]),
        "reads": float(result.reads_answered),
        "writes": float(result.writes_acknowledged),
    }


FIGURES = [
    ("lag_at_pause_end_ms", "r1 lag at the end of the pause (ms)"),
    ("mean_lag_in_pause_ms", "r1 mean lag during the pause (ms)"),
    ("eventual_stale_rate", "eventual stale-read rate"),
    ("eventual_stale_from_pause", "  of which added by the pause"),
    ("primary_read_share", "primary read share"),
    ("ryw_stale_reads", "read-your-writes stale reads"),
]


def compare(real: Dict[str, float], sim: Dict[str, float]) -> Dict[str, Dict[str, Any]]:
    table: Dict[str, Dict[str, Any]] = {}
    for key, _ in FIGURES:
        measured, predicted = real[key], sim[key]
        if measured == 0 and predicted == 0:
            error = 0.0
        else:
            error = abs(predicted - measured) / abs(measured) if measured else float("inf")
        table[key] = {"measured": measured, "predicted": predicted, "relative_error": error,
                      "within_10pct": error <= TOLERANCE}
    return table


def print_table(table: Dict[str, Dict[str, Any]], log: Any = print) -> None:
    log(f"{'figure':40s} {'measured':>12s} {'predicted':>12s} {'rel. error':>11s}  within 10%")
    for key, label in FIGURES:
        row = table[key]
        log(f"{label:40s} {row['measured']:12.4f} {row['predicted']:12.4f} "
            f"{row['relative_error'] * 100:10.1f}%  {'yes' if row['within_10pct'] else 'NO'}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    defaults = Settings()
    for name, value in vars(defaults).items():
        parser.add_argument("--" + name.replace("_", "-"), type=type(value), default=value)
    parser.add_argument("--json", help="write the settings, figures and comparison here")
    args = parser.parse_args(argv)
    settings = Settings(**{k: getattr(args, k) for k in vars(defaults)})
    settings.check()
    print("settings: " + ", ".join(f"{k}={v}" for k, v in vars(settings).items()), flush=True)
    print(f"seeds: workload writer {settings.seed * 1000 + 1}, readers "
          f"{settings.seed * 1000 + 10}..{settings.seed * 1000 + 9 + settings.readers}, "
          f"simulator {settings.seed}", flush=True)

    def log(text: str) -> None:
        print(text, flush=True)

    from replikit.sim import simulate

    measured, delays, options = run_real(settings, log)
    real = real_figures(measured)
    log(f"real run: {int(real['writes'])} writes ({measured.write_errors} failed), "
        f"{int(real['reads'])} reads ({measured.read_errors} failed)")
    config = sim_config(settings, measured, delays, options)
    log(f"matched: probe interval {config.probe_interval_ms:.1f} ms (measured; nominal "
        f"{options.probe_interval_ms:g}), pause {measured.pause_start_s * 1000:.0f}.."
        f"{measured.pause_end_s * 1000:.0f} ms, replication delay mean "
        f"{config.replica_latency.mean_ms():.3f} ms, client latency mean "
        f"{config.client_latency.mean_ms():.3f} ms")
    started = time.perf_counter()
    seeds = [settings.seed + i for i in range(settings.sim_runs)]
    unpaused_config = copy.copy(config)
    unpaused_config.pauses = []
    results = [simulate(config, seed) for seed in seeds]
    result = results[0]
    sim = sim_figures(results, [simulate(unpaused_config, seed) for seed in seeds], measured)
    others = {}
    for other in DELAY_MODELS:
        if other != settings.delay:
            other_config = sim_config(Settings(**{**vars(settings), "delay": other}), measured, delays, options)
            others[other] = (other_config.replica_latency.mean_ms(),
                             statistics.fmean(simulate(other_config, seed).stale_read_rate.get("eventual", 0.0)
                                              for seed in seeds))
    log(f"simulated: {len(seeds)} runs with and without the pause (seeds {seeds[0]}..{seeds[-1]}), "
        f"mean {sim['writes']:.0f} writes, {sim['reads']:.0f} reads; "
        f"{time.perf_counter() - started:.2f} s")
    log(f"primary reads by reason: measured {reasons(measured)}, predicted "
        f"{ {k: v for k, v in result.primary_read_reasons.items() if v} }")
    log(f"eventual stale-read rate by the client's definition (the last write acknowledged "
        f"before the read was sent is missing): measured {real['eventual_stale_rate_acked']:.4f}")
    for other, (mean_ms, stale) in others.items():
        log(f"sensitivity: eventual stale-read rate predicted with --delay {other} (mean "
            f"{mean_ms:.3f} ms): {stale:.4f}")
    table = compare(real, sim)
    print_table(table, log)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            series = {"measured": [[t * 1000.0, lag] for t, lag in measured.lag],
                      "predicted": [[t, lag] for t, lag in zip(result.sample_times_ms.tolist(),
                                                               result.tracked_lag_ms["r1"].tolist())]}
            json.dump({"settings": vars(settings), "real": real, "sim": sim, "comparison": table,
                       "r1_lag_ms_over_time_ms": series,
                       "calibration": {"replication_delay_ms_median": statistics.median(delays),
                                       "read_half_rtt_ms_median":
                                           statistics.median(half_round_trips(measured))}},
                      fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
