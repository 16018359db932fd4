"""The kill scenario's replication delays measured in the run itself: the offset probe (a row
written as the session writer writes its rows, read once on a standby at a seeded offset with the
readers' own query). See fidelity/killreads.py's docstring for why it is measured this way, and
fidelity.delays for how its reads become delays."""

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
