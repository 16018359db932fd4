"""The kill scenario's replication delays measured in the run itself: the offset probe (a row
written as the session writer writes its rows, read once on a standby at a seeded offset with the
readers' own query). See fidelity/killreads.py's docstring for why it is measured this way, and
fidelity.delays for how its reads become delays.

The method (moved here from fidelity/killreads.py, which runs it):

Calibration, in the run itself, without watching on the replica: while the workload runs,
until the kill, a probe (OffsetProbe) writes a row every PROBE_GAP_S as the session writer
writes its rows (through the same ReplicatedDatabase: BEGIN, the insert, whose server clock is
the row's recorded instant, then COMMIT, one round trip later) and, at a seeded offset from the
write's start (3 in 4 within OFFSET_NEAR_S, the rest up to OFFSET_FAR_S), reads it once on r1
or r2 in turn with the readers' own query. The readers' judgement compares two server clocks:
the row's recorded instant (the insert's clock, one round trip before its COMMIT) and the
instant the read ran on the replica. Per read the probe records when it was SENT less the
row's instant (x, in ms; the client's wall clock: one host, one clock; often negative, the
read may leave before the insert ran), its latency (send -> run) and whether it was stale as
the readers' reads are judged (it ran after the row's instant and lacked the row);
fidelity.delays.sent_delay_quantiles estimates the delay from (x, stale) and the probe reads'
own latencies measured at least OFFSET_NEAR_S after their row (maximum likelihood, a mixture
fit; ~75 reads per kill, hence also pooled per mode). Why the send instant and not the run
instant: the simulator's read reaches its node a client latency after it is sent, drawn
independently of the writes; a real read sent into a write's replication on the shared 2-core
machine waits for the CPU and runs once the row is visible. Measured over 36 kills (commit
timestamps on, throwaway instrumentation): 98 of the readers' eventual reads ran within 0.5 ms
after a session write's commit, where 153 would if their run instants were independent of the
writes; and at a given run age the readers were stale more often than the probe's reads (the
run-instant delays applied to the readers' own run instants: 171 stale reads for 219
measured). By send offset the readers' and the probe's stale shares agreed (their integrals
over the offset within 1% and 6% in two sets of 36 kills). The run-instant estimate
(fidelity.delays.delay_quantiles, the last version's input) is printed as a check
(delays_at_execution). The same 144 kills re-predicted both ways (four sets of 36, load ~1 to
~9): the stale share before the kill +9% with the run instants' delays, +2% with the send
instants' (in the set at load ~1: +36% and +17%); after the recovery +8% and +6%. Offset reads of a row committed at once (autocommit) under-predicted the
stale share by ~10%: they lack the COMMIT's round trip (0.23 ms from the insert's clock to the
commit record, on average over those kills) that the session writer's rows have. A plpgsql
loop watching on the replica for a row committed in autocommit (fidelity.common.one_delay, as
the delay and pause scenarios still calibrate)
over-predicted the stale share by 68-85%: the loop is a busy process that the scheduler of the
shared 2-core machine preempts, so it reports rows visible late (steady state, async: a plain
read on another connection had seen the row before the loop reported it in 90 of the 116 reads
that ran in between, by >= 0.75 ms at the median, >= 4.2 ms at the 90th percentile), and its
reference, pg_last_xact_replay_timestamp(), is that of whichever commit was replayed last (0.02
ms after the insert's clock at the median, 0.49 ms on average), which shortened the figures in
part. The replay itself was not measurably slowed (the readers' stale share with the loop
running 3.0%, without 2.7%, +-30% binomial). The client's half round trip: the replica reads
before the kill.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from typing import Any, List, Optional, Tuple

from fidelity.common import NOW_S, TABLE
from fidelity.delays import OFFSET_READ

PROBE_GAP_S = 0.02  # between two offset probes (each takes an insert and its offset)
PROBE_LIMIT_S = 1.0
OFFSET_NEAR_S = 0.003
OFFSET_FAR_S = 0.025


class OffsetProbe:
    """Commit -> visible delays while the workload runs, without watching on the replica: every
    PROBE_GAP_S a row written as the session writer writes its rows (through the same
    ReplicatedDatabase: BEGIN, the insert, whose server clock is the row's instant, then COMMIT,
    one round trip later) and, at a seeded offset from the write's start, one read of it on r1
    or r2 in turn with the readers' own query (fidelity.delays.OFFSET_READ), until ``stop`` (set
    just before the kill). ``samples``: (t, replica, sent ms, age ms, visible, stale): the read
    sent ``sent`` ms after the row's instant (the client's wall clock at the send less the
    insert's server clock: one host), it ran ``age`` ms after it (that server's clock), the row
    was visible, and stale as the readers' reads are judged (it ran after the row's instant and
    lacked it); fidelity.delays.sent_delay_quantiles turns (sent, stale) into delays."""

    def __init__(self, cluster: Any, db: Any, t0: float, seed: int, nodes: Tuple[str, ...] = ("r1", "r2"),
                 first_id: int = -1):
        self.cluster = cluster
        self.db = db
        self.t0 = t0
        self.rng = random.Random(seed)
        self.nodes = nodes  # the standbys read in turn
        self.first_id = first_id  # the probe's rows take ids first_id, first_id - 1, ... (below the workload's)
        self.stop = threading.Event()
        self.samples: List[Tuple[float, str, float, float, bool, bool]] = []
        self.rows: List[Tuple[float, int]] = []  # (INSERT clock, s since the epoch; row id) per probe row
        self.error = ""

    def offset_s(self) -> float:
        """Most offsets where the delay's distribution rises, a quarter further out (its tail)."""
        if self.rng.random() < 0.75:
            return self.rng.uniform(0.0, OFFSET_NEAR_S)
        return self.rng.uniform(OFFSET_NEAR_S, OFFSET_FAR_S)

    def run(self) -> None:
        import psycopg

        todo: "queue.Queue[Optional[Tuple[int, Any, float]]]" = queue.Queue()
        done: "queue.Queue[Any]" = queue.Queue()

        def reader() -> None:  # the read starts at its offset even while the write runs
            while True:
                item = todo.get()
                if item is None:
                    return
                row_id, conn, at = item
                time.sleep(max(0.0, at - time.monotonic()))
                try:
                    sent_wall = time.time()  # the servers' clock is the wall clock (one host)
                    done.put((sent_wall,) + tuple(conn.execute(OFFSET_READ, (row_id,)).fetchone()))
                except Exception as exc:  # noqa: BLE001 - raised by the probe's loop
                    done.put(exc)

        conns: List[Any] = []
        try:
            for name in self.nodes:
                conns.append(psycopg.connect(self.cluster.dsn(name), autocommit=True))
            thread = threading.Thread(target=reader, daemon=True)
            thread.start()
            try:
                self._loop(tuple(zip(self.nodes, conns)), todo, done)
            finally:
                todo.put(None)
                thread.join(timeout=PROBE_LIMIT_S + 5)
        except Exception as exc:  # noqa: BLE001 - reported by real_run
            if not self.stop.is_set():
                self.error = repr(exc)
        finally:
            for conn in conns:
                conn.close()

    def _loop(self, replicas: Any, todo: Any, done: Any) -> None:
        i = 0
        while not self.stop.wait(PROBE_GAP_S):
            name, conn = replicas[i % len(replicas)]
            row_id = self.first_id - i
            i += 1
            sent = time.monotonic()
            todo.put((row_id, conn, sent + self.offset_s()))
            committed = self.db.execute(f"INSERT INTO {TABLE} (id, session) VALUES ($1, -1) RETURNING {NOW_S}",
                                        (row_id,)).scalar()
            got = done.get(timeout=PROBE_LIMIT_S)
            if isinstance(got, Exception):
                raise got
            read_sent, _, visible, executed = got
            committed, executed = float(committed), float(executed)
            self.rows.append((committed, row_id))
            self.samples.append((sent - self.t0, name, (read_sent - committed) * 1000.0, (executed - committed) * 1000.0,
                                 bool(visible), executed >= committed and not visible))


AFTER_FIRST_ID = -1_000_000  # the first row id of the probe after the recovery


def probe_inputs_after(after: Optional[OffsetProbe]) -> Tuple[List[Tuple[float, bool]], List[float]]:
    """The probe after the recovery's offset reads (sent ms, stale) and its reads' own latencies
    away from their row, as before the kill; none when it did not run or failed (the twin then
    keeps the delays measured before the kill)."""
    if after is None or after.error:
        return [], []
    offsets = [(sent, stale) for _, _, sent, _, _, stale in after.samples]
    latencies = [age - sent for _, _, sent, age, _, _ in after.samples if sent > OFFSET_NEAR_S * 1000.0]
    return offsets, latencies
