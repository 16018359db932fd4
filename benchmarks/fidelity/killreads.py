"""Reads around a killed primary: stale reads per consistency level, reads answered and failed,
and replica lag, per time window (before the kill, the outage, after the recovery), measured on
a real cluster (this file: one real run) and predicted by the simulator (fidelity/killtwins.py:
the counts per window and each run's twin).

Real: a fresh cluster (a primary and 2 replicas on loopback) per run, replikit's
FailoverManager (the kill scenario's preset) over a ReplicatedDatabase; failover_bench's
writers (one per node, every 5 ms, into whichever node accepts) plus the fidelity workload
(fidelity.common.Workload) through the manager's own ReplicatedDatabase: a session writer
(SESSION_WRITE_RATE) and readers (READ_RATE, half eventual, half read-your-writes) on seeded
Poisson schedules. The primary instance is killed at KILL_AT_S; "recovered" is the first write
a writer had acknowledged by another node. Windows, by the instant a read was sent (a lag
sample: its instant): before the kill [WARM_S, kill), the outage [kill, recovered), after the
recovery [recovered, RUN_S). An eventual read is stale when the node lacked a row committed
on the primary before the read ran there (server clock; one host), the simulator's
definition; also printed, measured only: the row the session writer had acknowledged before
the read was sent was missing. A read-your-writes read is stale when its session's last
acknowledged row was missing. A read that raises is failed. Replica lag: the
ReplicatedDatabase's tracked lag of each node that is a replica, sampled every 20 ms, unless
it is older than the tracker's history (a lower bound, which routing and the twin take as unknown).

Calibration, in the run itself, without watching on the replica: the offset probe (the method,
and why it is measured so: fidelity/offsetprobe.py's docstring).

After the recovery the delays are another link's (the new primary's, with one standby, on a
machine whose load has changed): once the survivor has caught up (wait_repointed), a second
OffsetProbe writes through the same ReplicatedDatabase (now to the new primary) and reads the
survivor, until the run ends; its reads give that run's post-recovery delays in the same way
(sent_delay_quantiles with its own reads' latencies away from their row), which the twin uses for
what is sent from the crash on (SimConfig.replica_latency_after_crash). Its rows count among the
background writes after the recovery. When it got no reads, the twin keeps the delays measured
before the kill.

Simulated, per real run (a twin): the same requests (it replays the session writer's and the
readers' seeded schedules, workload_arrivals: each write's and read's instant, session and level;
SimConfig.write_arrivals, read_arrivals), the same detector with the timing
measured before that kill (fidelity.kill.twin_timing: the kill at its phase after the prober's
last probe of the primary, the prober's period, the manager's check loop); its link delivers in
order, so it draws per write the delays whose in-order delivery gives back the measured ones
(fidelity.delays.matched_per_write_delays: a measured delay was already held back by the writes
before it, stalls and also short hold-backs below the mean gap between writes; per_write_delays,
before, matched only the share above the gap, and the twins' delivered mean, which the stale share
before the kill follows, was 1-5% above the measured one: on the 960 saved kills re-predicted, the
stale share before the kill +12.8% -> +10.4% quiet, +15.8% -> +10.6% loaded);
inputs: that run's replication delays (from its offset reads;
a second twin takes those of every kill of the mode, pooled) and half round trips measured
before the kill (empirical distributions), promote_ms (the median measured detection
-> writes accepted of the write-only kills) and two timings of that run's failover machinery,
from the new primary's first acknowledged write (all polled every 2 ms): the client's switch
(its ReplicatedDatabase takes the new primary for the primary; until then the session writer's
writes fail and its reads go where they went) and the survivor's reconnection, repoint_ms:
until it streams the new timeline (pg_stat_wal_receiver) and has replayed what the new primary
had written then. The twin's promotion ends at the client's switch, and its survivor receives
nothing new until the real one had caught up (repoint_ms): it stays readable and falls behind;
then what it lacks arrives at once. The real survivor's replay stays at the old timeline's end
while its walreceiver already streams the new one (stream_ms) and then jumps: of its probes sent
between the two instants in 360 saved kills, 76 found it at the old end and 2 part way (the
twin spread the backlog from stream_ms until then before: SimConfig.repoint_catch_up_ms).

The client's switch to the new primary (SwitchWatch, writes_reached) and how the new primary
acknowledges: fidelity/killswitch.py's docstring. The simulator's windows and what the lag
tracker sees: fidelity/probesamples.py's docstring.

Why the twin replays the schedule rather than drawing Poisson arrivals, and moves it to where the
real kill fell: fidelity/twinworkload.py's docstring.

Read by read (read_records): what is saved of the reads before the kill and what they showed
of the stale share there: fidelity/stalereads.py's docstring; the readers' lateness around the
session writes, which the twins now draw: fidelity/readshift.py.

Statistics (fidelity.windowstats): per window, each figure pooled over the runs (stale reads /
reads of all runs); its 95% interval and that of the relative error by a bootstrap over runs
(pairs of a real run and its prediction resampled together), which carries both the binomial
noise of a few % of a few thousand reads and the run-to-run drift of a shared machine.

What differs, and is reported rather than tuned away:
- failed reads: the real read path retries a read whose connection is lost on another node
  (read_retries), so a read sent to the dead primary before the detection is answered by a
  replica; the simulator fails a read routed to a crashed node (node_down).
- lag before the kill: a fraction of a millisecond on both sides, read by 100 ms probes.
- commits: the simulator's write commits when its service ends; a real session write commits
  one round trip (its COMMIT) after the instant recorded for it, so a replica lacks it for that
  long more: the measured delays carry it (the probe writes the same way), the simulator's
  replicas then receive the write that much later, while its primary shows it at once (no
  eventual read went to the primary in a steady-state check of 11,100).
- tracked lag, before the kill and after the recovery: a fraction of a millisecond to ~1.5 ms on
  both sides, read by 100 ms probes; the twins still read more than the real tracker in the
  synchronous modes, whose delays have the heaviest tails (a tracked lag grows with the mean
  delay where the stale share saturates).
- the tracker's history over the failover: replikit starts it afresh at every promotion; until
  2026-11-30 its FailoverManager's promotion kept it and only the prober's adoption reset it,
  whichever came first. Each twin does what that run's tracker did
  (SimConfig.reset_tracker_on_promotion: whether its history shrank after the kill, sampled with
  the lag). With the history kept, a survivor not yet replaying the new timeline reads as far
  behind as the old primary's last sample (500-600 ms in 2 of 60 kills at load ~7).

What the lag tracker is fed, recorded per probe: fidelity/probesamples.py's docstring.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from fidelity import commitlag, probesamples
from fidelity.common import TABLE, Workload, WorkloadSettings, read_schedule, write_schedule
from fidelity.delays import delay_quantiles, sent_delay_quantiles
from fidelity.offsetprobe import AFTER_FIRST_ID, OFFSET_NEAR_S, PROBE_LIMIT_S, OffsetProbe, probe_inputs_after

RUN_S = 4.0
KILL_AT_S = 2.0
WARM_S = 0.3  # reads and lag samples before this are the start-up's
NEAR_KILL_S = 0.2  # the writer acknowledgements saved before the kill (writer_acks_near_kill)
READ_RATE = 200.0
SESSION_WRITE_RATE = 50.0
SESSIONS = 8
WRITE_RATE = 200.0  # failover_bench's writers on the primary: one insert per 5 ms
READERS = 2
LAG_SAMPLE_S = 0.02
WINDOWS = ("before", "outage", "after")


class KillWorkload(Workload):
    """The fidelity workload, recording when each failed read was sent and the lag of every
    node that is a replica at the sample."""

    def __init__(self, db: Any, settings: WorkloadSettings, t0: float):
        super().__init__(db, settings, t0)
        self.failed_at: List[float] = []
        self.replica_lag: List[Tuple[float, str, float]] = []
        self.probe_sends: Dict[str, Dict[int, float]] = {}  # node -> {last_probe_ns: its send, s from t0}
        # What the lag tracker was fed, per node and probe (ProbeRecord): the prober's samples.
        self.probe_records: Dict[str, Dict[int, "ProbeRecord"]] = {}
        self.history_sizes: List[Tuple[float, int]] = []  # (t, the tracker's primary LSN history entries)

    def _read(self, s: int, eventual: bool, scheduled: float = float("nan")) -> None:
        sent = time.monotonic() - self.t0
        before = self.out.read_errors
        super()._read(s, eventual, scheduled)
        with self.lock:
            if self.out.read_errors != before:
                self.failed_at.append(sent)

    def lag_sampler(self, name: str) -> None:
        names = ("primary", "r1", "r2")
        while not self.stop.wait(LAG_SAMPLE_S):
            t = time.monotonic() - self.t0
            if t >= self.s.run_s:
                return
            with self.lock:
                self.history_sizes.append((t, self.db.lag_tracker.history_size))
            for node in names:
                status = self.db.node(node)
                if status.last_probe_ns > 0:  # the prober's send instants, per node (its phases)
                    sent = status.last_probe_ns / 1e9 - status.probe_rtt_ms / 1e3 - self.t0
                    with self.lock:
                        self.probe_sends.setdefault(node, {})[status.last_probe_ns] = sent
                        self.probe_records.setdefault(node, {}).setdefault(
                            status.last_probe_ns, probe_record(status, sent, status.last_probe_ns / 1e9 - self.t0))
                # A lag older than the tracker's history is a lower bound, unknown to routing (and
                # to the twin's tracked lag): the survivor before it streams the new timeline.
                if (str(status.role.name).lower() == "replica" and status.lag_known
                        and not self.db.lag_tracker.replica(node).lag_is_lower_bound):
                    with self.lock:
                        self.replica_lag.append((t, node, status.lag_ms))


class ProbeRecord(NamedTuple):
    """One answered probe of a node as the lag tracker took it: sent and answered (s from t0),
    the primary's position (pg_current_wal_flush_lsn; stamped ``sent``) or the replica's replay
    position (stamped ``answered``), and the replica's tracked lag (ms) at the lag sampler's
    first look after it (None: not a replica, or its lag unknown)."""
    sent: float
    answered: float
    primary: bool
    lsn: int
    lag_ms: Optional[float]


def probe_record(status: Any, sent: float, answered: float) -> ProbeRecord:
    replica = str(status.role.name).lower() == "replica"
    position = status.replay_lsn if replica else status.current_lsn
    return ProbeRecord(sent, answered, not replica, int(position) if position is not None else 0,
                       status.lag_ms if replica and status.lag_known else None)


REPOINT_POLL_S = 0.002
REPOINT_TIMEOUT_S = 10.0
RECEIVER_QUERY = "SELECT coalesce((SELECT status || ':' || received_tli FROM pg_stat_wal_receiver), '')"


def receiver_state(conn: Any) -> Tuple[str, int]:
    """(status, received timeline) of a standby's walreceiver; ("", 0) when none runs."""
    text = conn.execute(RECEIVER_QUERY).fetchone()[0]
    if not text:
        return "", 0
    status, _, tli = text.partition(":")
    return status, int(tli or 0)


def wait_repointed(survivor: Any, promoted_conn: Any, db: Any, promoted: str, old_tli: int,
                   since: float) -> Tuple[float, float, float]:
    """Seconds from ``since`` (the new primary's first acknowledged write) until (1) the
    surviving standby streams the new primary's timeline (its walreceiver streaming and having
    received WAL of a later timeline than ``old_tli``), (2) it has also replayed everything the
    new primary had written at that moment (its reconnection is over: it serves fresh reads
    again), and (3) the client's ReplicatedDatabase takes ``promoted`` for the primary."""
    deadline = time.monotonic() + REPOINT_TIMEOUT_S
    streaming = caught_up = switched = -1.0
    target = ""
    while time.monotonic() < deadline:
        if switched < 0 and str(db.node(promoted).role.name).lower() == "primary":
            switched = max(0.0, time.monotonic() - since)
        if streaming < 0:
            status, tli = receiver_state(survivor)
            if status == "streaming" and tli > old_tli:
                streaming = max(0.0, time.monotonic() - since)
                target = str(promoted_conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0])
        elif caught_up < 0 and survivor.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn",
                                                (target,)).fetchone()[0]:
            caught_up = max(0.0, time.monotonic() - since)
        if caught_up >= 0 and switched >= 0:
            return streaming, caught_up, switched
        time.sleep(REPOINT_POLL_S)
    raise RuntimeError(f"the surviving standby did not catch up on the new timeline, or the client did not "
                       f"switch to the new primary, within {REPOINT_TIMEOUT_S:.0f} s")


SWITCH_POLL_S = 0.001


class SwitchWatch:
    """When the client's ReplicatedDatabase first took a standby (r1 or r2) for the primary, on the
    run's clock (s from t0), polled every SWITCH_POLL_S from the kill on (a thread; bounded by
    REPOINT_TIMEOUT_S + 20 s): the instant the session writer's writes first went to the new
    primary. wait_repointed polls the same from the first acknowledged write only (its switch_ms,
    clipped at 0), so a client that switched before that acknowledgement (a synchronous new primary
    acknowledges once its standby streams) reads as switched at it there; here it does not."""

    def __init__(self, db: Any, t0: float):
        self.db, self.t0 = db, t0
        self.at: Optional[float] = None
        self.stop = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + REPOINT_TIMEOUT_S + 20.0
        while not self.stop.is_set() and time.monotonic() < deadline:
            now = time.monotonic()
            if any(str(self.db.node(name).role.name).lower() == "primary" for name in ("r1", "r2")):
                self.at = now - self.t0
                return
            time.sleep(SWITCH_POLL_S)


def first_commit_after(conn: Any, table: str, after_epoch: float) -> Optional[float]:
    """The server clock (epoch s) of the first row of ``table`` (failover_bench's bench_writes: its
    ``at`` column, clock_timestamp() at the insert) inserted after ``after_epoch`` on the node of
    ``conn`` (the new primary: the first write it committed), or None."""
    row = conn.execute(f"SELECT extract(epoch FROM min(at))::float8 FROM {table} WHERE at > to_timestamp(%s)",
                       (after_epoch,)).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def writes_reached(kill_s: float, recovered_s: float, client_switch_s: Optional[float], promoted_at: Optional[float],
                   first_commit_s: Optional[float], session_commits: List[Tuple[float, int]],
                   epoch_of_t0: float) -> Dict[str, Any]:
    """When writes first reached the new primary, on the run's clock (s from t0), next to the first
    acknowledged write (``recovered_s``): the client's switch (SwitchWatch: the session writer's
    writes go there from then on; the twin's promotion), the manager's report of the promotion
    (pg_promote returned), the first write committed there (bench_writes' clock) and the session
    writer's first committed row after the kill (its INSERT's clock; rows acknowledged later
    count, as the readers' judgement counts them). None where not seen."""
    after = [c - epoch_of_t0 for c, _ in session_commits if c - epoch_of_t0 > kill_s]
    return {"recovered_s": recovered_s, "client_switch_s": client_switch_s,
            "manager_promoted_s": promoted_at,
            "first_commit_s": None if first_commit_s is None else first_commit_s - epoch_of_t0,
            "first_session_commit_s": min(after) if after else None}


def background_rates(acked: Dict[str, List[Tuple[float, int]]], probe_rows: List[float], t0: float, kill_s: float,
                     recovered_s: float, promoted: str) -> Tuple[float, float]:
    """Writes per second that no read is judged against (the twin's background writes): on the
    primary before the kill, [WARM_S, kill), failover_bench's writer there (its acknowledged
    inserts, ``acked``: time.monotonic(), id per node) and the delay probe's rows (one committed
    row per probe, ``probe_rows``: their instants from t0); on the new primary after the recovery,
    [recovered_s, RUN_S), its writer."""
    before = sum(WARM_S <= t - t0 < kill_s for t, _ in acked.get("primary", []))
    before += sum(WARM_S <= t < kill_s for t in probe_rows)
    after = sum(recovered_s <= t - t0 < RUN_S for t, _ in acked.get(promoted, []))
    after += sum(recovered_s <= t < RUN_S for t in probe_rows)
    return before / max(1e-3, kill_s - WARM_S), after / max(1e-3, RUN_S - recovered_s)


def probe_half_round_trips(sends: Dict[str, Dict[int, float]], t0: float, until_s: float) -> List[float]:
    """Half the round trips (ms) of the database's lag probes sent before ``until_s``, every node:
    its prober (a C++ thread) answers faster and steadier than the workload's reads (pool,
    interpreter), whose half round trips are the twin's client latency."""
    return [(done_ns / 1e9 - t0 - sent) * 500.0 for per_node in sends.values()
            for done_ns, sent in per_node.items() if WARM_S <= sent < until_s]


def detector_inputs(sends: Dict[str, Dict[int, float]], kill_s: float, interval_ms: float) -> Dict[str, float]:
    """The failover detector's timing before the kill (fidelity.kill.probe_inputs): the prober's
    period and the kill's phase after its last probe of the primary, from the send instants the
    lag sampler recorded (``sends``: s from t0, as ``kill_s``)."""
    from fidelity.kill import probe_inputs

    rows = [{"at": sent, "rtt_ms": 0.0, "answered": True} for sent in sorted(sends.get("primary", {}).values())]
    return probe_inputs(rows, kill_s, interval_ms)


def probe_offsets(sends: Dict[str, Dict[Any, float]], until_s: float, interval_ms: float,
                  since_s: float = WARM_S, primary_node: str = "primary") -> List[float]:
    """Per node (primary, r1, r2): the median time from the prober's query to ``primary_node`` to
    its query to that node (ms, in [0, interval_ms)), over the probes sent in [since_s, until_s);
    0 for ``primary_node`` and a node without any. The prober sends every node's query on its own
    cadence (sent + interval, from when its connection opened; a stall sends all overdue ones at
    once), so a replica is often read a few ms after the primary and has replayed what it showed."""
    primary = sorted(t for t in sends.get(primary_node, {}).values() if since_s <= t < until_s)
    out = [0.0]
    for node in ("r1", "r2"):
        offsets = []
        for t in sorted(sends.get(node, {}).values()) if node != primary_node else []:
            before = [p for p in primary if p <= t + 1e-6]
            if since_s <= t < until_s and before:
                offsets.append(((t - before[-1]) * 1000.0) % interval_ms)
        out.append(min(statistics.median(offsets), interval_ms * 0.999) if offsets else 0.0)
    return out


def tracker_reset(history_sizes: List[Tuple[float, int]], kill_s: float) -> bool:
    """Whether the lag tracker started afresh after the kill: its history of the primary's LSN
    (``history_sizes``: (t, entries), sampled by the lag sampler) shrank. Since 2026-11-30 replikit
    resets it at every promotion; before, the manager's promotion kept the history and only the
    prober's adoption reset it (or a new primary's position behind the old one's): runs of then
    carry either."""
    after = [size for t, size in history_sizes if t >= kill_s]
    return any(b < a for a, b in zip(after, after[1:]))


def workload_settings(seed: int) -> WorkloadSettings:
    return WorkloadSettings(run_s=RUN_S, write_rate=SESSION_WRITE_RATE, read_rate=READ_RATE,
                            eventual_share=0.5, sessions=SESSIONS, readers=READERS, seed=seed)


def writer_seed(seed: int) -> int:
    return seed * 1000 + 1


def reader_seed(seed: int, reader: int) -> int:
    return seed * 1000 + 10 + reader


def workload_arrivals(seed: int, readers: bool = False) -> Dict[str, Any]:
    """The run's session writes and reads as its seeded schedules drew them (ms from the run's
    start; fidelity.common.write_schedule, read_schedule), for its twin to replay
    (SimConfig.write_arrivals, read_arrivals): the same requests at the same instants. With
    ``readers``, each read as (instant, session, level, its reader thread)."""
    settings = workload_settings(seed)
    writes = [(t * 1000.0, s) for t, s in write_schedule(settings, writer_seed(seed))]
    reads = sorted((t * 1000.0, s, "eventual" if eventual else "read_your_writes", i)
                   for i in range(settings.readers) for t, s, eventual in read_schedule(settings, reader_seed(seed, i)))
    return {"write_arrivals": writes, "read_arrivals": reads if readers else [r[:3] for r in reads]}


def real_run(preset: str, mode: str, seed: int) -> Dict[str, Any]:
    """One kill with the read workload; the raw windows, reads and lag samples."""
    import psycopg
    from failover_bench import REPLIKIT_PRESETS, Writers, start_replikit_manager

    from replikit.testing import LocalCluster

    settings = workload_settings(seed)
    with LocalCluster(replicas=2, mode=mode) as cluster:
        cluster.sql("primary", "CREATE TABLE bench_writes (id bigint PRIMARY KEY, "
                               "at timestamptz DEFAULT clock_timestamp())")
        cluster.sql("primary", f"CREATE TABLE {TABLE} (id bigint PRIMARY KEY, session int)")
        cluster.sql("primary", f"INSERT INTO {TABLE} VALUES (0, -1)")
        cluster.wait_caught_up(timeout_ms=30_000)
        wal_start = str(cluster.sql("primary", "SELECT pg_current_wal_lsn()")[0][0])  # fidelity.commitlag
        dbs: List[Any] = []
        # As in the other scenarios: a read-your-writes read no replica covers goes to the
        # primary at once (the simulator's router does not wait for a replica).
        manager = start_replikit_manager(cluster, preset, on_db=dbs.append, wait_for_replica_ms=0)
        if not dbs[0].wait_probes(3, timeout_ms=10_000):
            manager.stop()
            raise RuntimeError("the database's prober did not report within 10 s")
        writers = Writers(cluster.dsns())
        standbys = {name: psycopg.connect(cluster.dsn(name), autocommit=True, connect_timeout=5)
                    for name in ("r1", "r2")}
        old_tli = max(receiver_state(conn)[1] for conn in standbys.values())
        t0 = time.monotonic()
        epoch_of_t0 = time.time() - (time.monotonic() - t0)  # the servers' clock (one host) at t0
        switch = SwitchWatch(dbs[0], t0)
        work = KillWorkload(dbs[0], settings, t0)
        threads = [threading.Thread(target=work.writer, args=(writer_seed(seed),), daemon=True),
                   threading.Thread(target=work.lag_sampler, args=("",), daemon=True)]
        threads += [threading.Thread(target=work.reader, args=(reader_seed(seed, i),), daemon=True)
                    for i in range(settings.readers)]
        starts = probesamples.QueryStarts(cluster.dsns(), t0)  # when each probe ran on its server
        threads.append(threading.Thread(target=starts.run, daemon=True))
        probe = OffsetProbe(cluster, dbs[0], t0, seed * 1000 + 5)
        after: Optional[OffsetProbe] = None
        threads.append(threading.Thread(target=probe.run, daemon=True))
        try:
            for thread in threads:
                thread.start()
            time.sleep(max(0.0, t0 + KILL_AT_S - time.monotonic()))
            probe.stop.set()  # no probe in flight at the kill (each takes a few ms)
            threads[-1].join(timeout=PROBE_LIMIT_S + 5)
            freeze_started = time.monotonic()  # crash() freezes the instance process by process from here
            killed = cluster.crash("primary")
            threads.append(threading.Thread(target=switch.run, daemon=True))
            threads[-1].start()
            got = writers.wait_first_ack(killed, exclude="primary", timeout_s=20.0)
            if got is None:
                raise RuntimeError(f"a {mode} failover did not complete within 20 s")
            survivor = "r2" if got[0] == "r1" else "r1"
            stream_s, repoint_s, switch_s = wait_repointed(standbys[survivor], standbys[got[0]], dbs[0], got[0],
                                                           old_tli, got[1])
            # The delays after the recovery: the same probe against the new primary, reading the
            # survivor, once it has caught up (its rows' ids apart from the first probe's).
            after = OffsetProbe(cluster, dbs[0], t0, seed * 1000 + 6, nodes=(survivor,), first_id=AFTER_FIRST_ID)
            threads.append(threading.Thread(target=after.run, daemon=True))
            threads[-1].start()
            time.sleep(max(0.0, t0 + RUN_S + 0.05 - time.monotonic()))
        finally:
            work.stop.set()
            switch.stop.set()
            starts.stop.set()
            probe.stop.set()
            if after is not None:
                after.stop.set()
            for thread in threads:
                thread.join(timeout=10)
            writers.stop()
            manager.stop()
            for conn in standbys.values():
                conn.close()
        with psycopg.connect(cluster.dsn(got[0]), autocommit=True, connect_timeout=5) as conn:
            commit_gaps = commitlag.measure(cluster, "primary", conn, TABLE, wal_start, work.out.commits)
            probe_commit_gaps = commitlag.measure(cluster, "primary", conn, TABLE, wal_start, probe.rows, positive=False)
            first_commit = first_commit_after(conn, "bench_writes", epoch_of_t0 + killed - t0)
    kill_s = killed - t0
    reached = writes_reached(kill_s, got[1] - t0, switch.at,
                             manager.promoted_at - t0 if getattr(manager, "promoted_at", None) else None,
                             first_commit, work.out.commits, epoch_of_t0)
    work.out.commits.sort()
    if probe.error:
        raise RuntimeError(f"a delay probe failed before the kill: {probe.error}")
    offsets = [(sent, stale) for t, _, sent, _, _, stale in probe.samples if t < kill_s]
    probe_latencies = [age - sent for t, _, sent, age, _, _ in probe.samples  # away from their row
                       if t < kill_s and sent > OFFSET_NEAR_S * 1000.0]
    at_execution = [(age, visible) for t, _, _, age, visible, _ in probe.samples if t < kill_s and age > 0]
    half_round_trips = [(r.done - r.sent) * 500.0 for r in work.out.reads if r.node != "primary" and r.sent < kill_s]
    switched_s = got[1] + switch_s - t0
    background = background_rates(writers.acked, [t for t, *_ in probe.samples + (after.samples if after else [])], t0, kill_s, switched_s,
                                  got[0])
    offsets_after, latencies_after = probe_inputs_after(after)
    return {"measured": work.out, "seed": seed, "kill_s": kill_s, "recovered_s": got[1] - t0, "reads": work.out.reads,
            "failed_at": work.failed_at, "lag": work.replica_lag, "promoted": got[0],
            "offsets": offsets, "probe_latencies": probe_latencies, "repoint_ms": repoint_s * 1000.0,
            "delays": sent_delay_quantiles(offsets, probe_latencies) if offsets and probe_latencies else [],
            "offsets_after": offsets_after, "probe_latencies_after": latencies_after,
            "delays_after": sent_delay_quantiles(offsets_after, latencies_after) if offsets_after and latencies_after else [],
            "caught_up_s": got[1] + repoint_s - t0,
            "delays_at_execution": delay_quantiles(at_execution) if at_execution else [],
            "switch_ms": switch_s * 1000.0, "switched_s": switched_s, "stream_ms": stream_s * 1000.0,
            "background_per_s": background, "probe_sends": work.probe_sends, "probe_records": work.probe_records,
            "commit_lag_ms": commit_gaps, "probe_query_starts": {n: sorted(v.items()) for n, v in starts.starts.items()}, "tracker_reset": tracker_reset(work.history_sizes, kill_s),
            "probe_half_round_trips": probe_half_round_trips(work.probe_sends, t0, kill_s),
            "probe_offsets_ms": probe_offsets(work.probe_sends, kill_s, REPLIKIT_PRESETS[preset][0]),
            "detector": detector_inputs(work.probe_sends, kill_s, REPLIKIT_PRESETS[preset][2]),
            "sync_carried": bool(manager.synchronous_standby_names),
            "synchronous_standby_names": manager.synchronous_standby_names or "",
            "half_round_trips": half_round_trips, "probe_commit_lag_ms": probe_commit_gaps,
            "epoch_of_t0": epoch_of_t0, "freeze_started_s": freeze_started - t0,
            # failover_bench's writer's acknowledgements in the last NEAR_KILL_S before the kill (s
            # from t0): with the session and probe rows, when the primary last committed.
            "writer_acks_near_kill": [t - t0 for t, _ in writers.acked.get("primary", [])
                                      if kill_s - NEAR_KILL_S <= t - t0 < kill_s],
            **reached, **read_records(work.out, probe, epoch_of_t0, kill_s)}


def read_records(measured: Any, probe: Any, epoch_of_t0: float, kill_s: float) -> Dict[str, Any]:
    """What a later look at the stale share before the kill needs, read by read (s from t0; the
    servers' instants by the clock they share with the client, ``epoch_of_t0`` being t0 on it): each
    eventual read sent in [WARM_S, kill_s) as [sent, ran, node, highest row seen, stale as judged],
    the session writer's rows as [INSERT instant, id], and the offset probe's reads before the kill
    (OffsetProbe.samples) with its rows as [INSERT instant, id]; and every read (either level) sent
    in [WARM_S, kill_s) as [its reader's scheduled instant, sent, eventual or not, node] (the reads'
    lateness around the session writes: fidelity.readshift)."""
    from fidelity.common import stale_at_execution

    chosen = [r for r in measured.reads if r.level == "eventual" and WARM_S <= r.sent < kill_s]
    reads = [[r.sent, r.executed - epoch_of_t0, r.node, r.visible, bool(stale_at_execution(measured, r))]
             for r in chosen]
    return {"eventual_reads_before": reads,
            "reads_before_scheduled": [[r.scheduled, r.sent, r.level == "eventual", r.node] for r in measured.reads
                                       if WARM_S <= r.sent < kill_s],
            "session_rows": [[at - epoch_of_t0, row_id] for at, row_id in measured.commits],
            "probe_samples_before": [list(sample) for sample in probe.samples if sample[0] < kill_s],
            "probe_rows": [[at - epoch_of_t0, row_id] for at, row_id in probe.rows]}
