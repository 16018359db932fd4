"""What every fidelity scenario shares: the real workload over one ReplicatedDatabase (a
writer and reader threads on seeded Poisson schedules), the calibration of the replication
delay, the figures read from a real run, and the comparison table. See benchmarks/sim_fidelity.py.
"""

from __future__ import annotations

import bisect
import math
import random
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

TABLE = "fidelity_rows"
LAG_SAMPLE_S = 0.02
TOLERANCE = 0.10
CALIBRATION_POLL_LIMIT_S = 2.0
DELAY_MODELS = ("run", "median", "distribution")
NOW_S = "extract(epoch FROM clock_timestamp())::float8"


@dataclass
class WorkloadSettings:
    """The workload every scenario on a running cluster shares."""
    run_s: float = 30.0
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
        if self.run_s <= 0 or self.write_rate <= 0 or self.read_rate <= 0 or not 0 <= self.eventual_share <= 1:
            raise SystemExit("run-s and rates must be > 0 and eventual-share in [0, 1]")
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
    scheduled: float = float("nan")  # its reader's schedule's instant for it (s from the run's start)



@dataclass
class Measured:
    """What the real run recorded (times in seconds from the run's start). The fault's window
    (a pause) is [fault_start_s, fault_end_s]; both 0 when the fault lasts the whole run."""
    fault_start_s: float = 0.0
    fault_end_s: float = 0.0
    reads: List[Read] = field(default_factory=list)
    commits: List[Tuple[float, int]] = field(default_factory=list)  # server clock, row id
    read_errors: int = 0
    writes: int = 0
    write_errors: int = 0
    lag: List[Tuple[float, float]] = field(default_factory=list)  # t, lag_ms of the watched replica
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
                delays.append(one_delay(prim, rep, -1 - i))
    finally:
        stop.set()
        writer.join(timeout=10)
    return delays


def one_delay(prim: Any, rep: Any, row_id: int, limit_s: float = CALIBRATION_POLL_LIMIT_S) -> float:
    """Commit on ``prim`` -> the row visible on ``rep``, in ms (within ``limit_s`` or an error)."""
    answer: List[Optional[float]] = []
    watcher = threading.Thread(target=lambda: answer.append(rep.execute(
        "SELECT fidelity_visible_after_ms(%s, %s)", (row_id, limit_s)).fetchone()[0]))
    watcher.start()
    time.sleep(0.003)  # the watcher is polling by now
    prim.execute(f"INSERT INTO {TABLE} (id, session) VALUES (%s, -1)", (row_id,))
    watcher.join(limit_s + 5)
    if watcher.is_alive() or not answer or answer[0] is None:
        raise RuntimeError(f"a row did not reach the replica within {limit_s:g} s")
    return max(0.0, float(answer[0]))



# ------------------------------------------------------------------ the real workload
def write_schedule(settings: WorkloadSettings, seed: int) -> List[Tuple[float, int]]:
    """The session writer's seeded Poisson schedule: (instant in s from the run's start, session)
    per write. A simulated twin can replay it (SimConfig.write_arrivals)."""
    rng = random.Random(seed)
    out: List[Tuple[float, int]] = []
    t = 0.0
    while True:
        t += rng.expovariate(settings.write_rate)
        if t >= settings.run_s:
            return out
        out.append((t, rng.randrange(settings.sessions)))


def read_schedule(settings: WorkloadSettings, seed: int) -> List[Tuple[float, int, bool]]:
    """One reader's seeded Poisson schedule (the readers share the read rate): (instant in s,
    session, eventual or not) per read. A simulated twin can replay it (SimConfig.read_arrivals)."""
    rng = random.Random(seed)
    rate = settings.read_rate / settings.readers
    out: List[Tuple[float, int, bool]] = []
    t = 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= settings.run_s:
            return out
        session = rng.randrange(settings.sessions)
        out.append((t, session, rng.random() < settings.eventual_share))


class Workload:
    """Writer and reader threads over one ReplicatedDatabase, driven by seeded Poisson schedules."""

    def __init__(self, db: Any, settings: WorkloadSettings, t0: float):
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
        for row_id, (t, s) in enumerate(write_schedule(self.s, seed), start=1):
            if not self._sleep_until(t):
                return
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
        for t, s, eventual in read_schedule(self.s, seed):
            if not self._sleep_until(t):
                return
            self._read(s, eventual, t)

    def _read(self, s: int, eventual: bool, scheduled: float = float("nan")) -> None:
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
                                       not found, int(visible), float(executed), scheduled))

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


# ------------------------------------------------------------------ one real run
def run_real(settings: WorkloadSettings, faults: Optional[Callable[[Any, "Workload", Any], None]],
             log: Any = print, prepare: Optional[Callable[[Any, Any], None]] = None,
             ) -> Tuple[Measured, List[float], Any]:
    """Starts a primary and 2 replicas, calibrates, calls ``prepare(cluster, log)`` (a fault that
    lasts the whole run), runs the workload while ``faults(cluster, work, log)`` drives a fault
    on the main thread; the cluster is always stopped."""
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
            if prepare is not None:
                prepare(cluster, log)
            measured = run_workload(cluster, db, settings, faults, log)
        finally:
            db.close()
    return measured, delays, options


def run_workload(cluster: Any, db: Any, settings: WorkloadSettings,
                 faults: Optional[Callable[[Any, Workload, Any], None]], log: Any) -> Measured:
    t0 = time.monotonic()
    work = Workload(db, settings, t0)
    threads = [threading.Thread(target=work.writer, args=(settings.seed * 1000 + 1,), daemon=True),
               threading.Thread(target=work.lag_sampler, args=("r1",), daemon=True)]
    threads += [threading.Thread(target=work.reader, args=(settings.seed * 1000 + 10 + i,), daemon=True)
                for i in range(settings.readers)]
    for thread in threads:
        thread.start()
    try:
        if faults is not None:
            faults(cluster, work, log)
        progress_until(work, settings.run_s, log)
    finally:
        work.stop.set()
        for thread in threads:
            thread.join(timeout=10)
    if any(thread.is_alive() for thread in threads):
        raise RuntimeError("a workload thread did not stop within 10 s")
    return work.out


def progress_until(work: Workload, t_end: float, log: Any) -> None:
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


# ------------------------------------------------------------------ figures of a real run
def outside(m: Measured, t: float, margin_s: float) -> bool:
    """Is t outside the fault's window widened by margin_s after it (and before, for a pause)?"""
    if m.fault_end_s <= m.fault_start_s:
        return True
    return not m.fault_start_s - margin_s <= t <= m.fault_end_s + margin_s


def half_round_trips(m: Measured) -> List[float]:
    """Half the round trip (ms) of the replica reads outside the fault: the client latency."""
    return [(r.done - r.sent) * 500.0 for r in m.reads if r.node != "primary" and outside(m, r.sent, 1.0)]


def stale_at_execution(m: Measured, read: Read) -> bool:
    """The simulator's definition: the node lacked a write committed on the primary before the
    read ran there (both instants from the servers' clock: one host). m.commits must be sorted."""
    k = bisect.bisect_right(m.commits, (read.executed, float("inf"))) - 1
    return k >= 0 and read.visible < m.commits[k][1]


def stale_share(m: Measured, reads: Sequence[Read]) -> float:
    return sum(stale_at_execution(m, r) for r in reads) / max(1, len(reads))


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


def replication_delay(settings: WorkloadSettings, calm_stale: float, delays: List[float]) -> Any:
    """The simulator's replica_latency for ``settings.delay``:

    - run: the constant delay d that explains ``calm_stale``, the stale share of the replica
      reads the fault does not touch: with Poisson writes at rate w a read misses the newest
      commit when it is younger than d, so p = 1 - exp(-w d). The delay of this very run (on a
      shared machine it drifts with the other processes' load far more than the calibration can
      follow); those reads then agree by construction, and the prediction is the fault's part.
    - median / distribution: the calibration's median, or its samples (independent of the run).
    """
    from replikit import LatencyDistribution

    if settings.delay == "median":
        return statistics.median(delays)
    if settings.delay == "distribution":
        return LatencyDistribution.empirical(delays)
    p = min(calm_stale, 0.99)
    return -math.log(1.0 - p) / settings.write_rate * 1000.0


def base_sim_config(settings: WorkloadSettings, m: Measured, replica_latency: Any, options: Any) -> Any:
    """The simulated cluster of a real run: same workload, router, lag tracker, measured probe
    interval and delays; no fault."""
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
        replica_latency=replica_latency,
        apply_rate_per_s=100_000.0,
        client_latency=LatencyDistribution.empirical(half_round_trips(m)),
        probe_interval_ms=probe_interval_ms(m, options.probe_interval_ms),
        router=RouterConfig(policy=options.policy, time_window_ms=options.time_window_ms,
                            seed=options.seed, sticky_reads=options.sticky_reads),
        lag=LagConfig(max_lag_ms=options.max_lag_ms, recover_lag_ms=options.recover_lag_ms),
        sample_interval_ms=LAG_SAMPLE_S * 1000.0,
    )


# ------------------------------------------------------------------ the comparison
Figures = List[Tuple[str, str]]  # (key, label)


def relative_error(measured: float, predicted: float) -> float:
    if measured == 0 and predicted == 0:
        return 0.0
    return abs(predicted - measured) / abs(measured) if measured else float("inf")


def compare(real: Dict[str, float], sim: Dict[str, float], figures: Figures) -> Dict[str, Dict[str, Any]]:
    table: Dict[str, Dict[str, Any]] = {}
    for key, _ in figures:
        measured, predicted = real[key], sim[key]
        error = relative_error(measured, predicted)
        table[key] = {"measured": measured, "predicted": predicted, "relative_error": error,
                      "within_10pct": error <= TOLERANCE}
    return table


def print_table(table: Dict[str, Dict[str, Any]], figures: Figures, log: Any = print) -> None:
    log(f"{'figure':44s} {'measured':>12s} {'predicted':>12s} {'rel. error':>11s}  within 10%")
    for key, label in figures:
        row = table[key]
        log(f"{label:44s} {row['measured']:12.4f} {row['predicted']:12.4f} "
            f"{row['relative_error'] * 100:10.1f}%  {'yes' if row['within_10pct'] else 'NO'}")


def mean_of_runs(runs: List[Dict[str, float]], worst: Sequence[str] = ()) -> Dict[str, float]:
    """Each figure's mean over seeded runs; for the keys in ``worst``, the most any run had."""
    out = {key: statistics.fmean(run[key] for run in runs) for key in runs[0]}
    for key in worst:
        out[key] = max(run[key] for run in runs)
    return out


def seeds_of(settings: WorkloadSettings) -> List[int]:
    return [settings.seed + i for i in range(settings.sim_runs)]


def print_seeds(settings: WorkloadSettings) -> None:
    print(f"seeds: workload writer {settings.seed * 1000 + 1}, readers "
          f"{settings.seed * 1000 + 10}..{settings.seed * 1000 + 9 + settings.readers}, "
          f"simulator {settings.seed}..{settings.seed + settings.sim_runs - 1}", flush=True)
