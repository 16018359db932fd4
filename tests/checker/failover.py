"""Histories of failover runs: a writer thread that records, for every write, which node
acknowledged it (the server's own port), on which timeline (the server's, read in the
write's own transaction), with which transaction id, and the client's topology epoch and
primary when it was invoked and when it completed; then a read-back of one node and the
checkers that judge such a history (checkers.check_writes and checkers.check_primaries).

The table is ``w (id int primary key)``; the writer inserts ids 0, 1, 2, ... in order.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import replikit

from . import checkers
from .history import History, HistoryFull, Op

SCHEMA = "CREATE TABLE w (id int PRIMARY KEY)"
TIMELINE_SQL = "('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"
WRITE_SQL = ("INSERT INTO w (id) VALUES ($1) RETURNING inet_server_port(), "
             f"pg_current_xact_id()::text, {TIMELINE_SQL}")
MAX_OPS = 200_000


def topology_of(db: Any) -> Tuple[int, str]:
    """(epoch, primary name) of ``db.topology``, read together (never one epoch with the next
    one's primary, as reading ``epoch`` and ``primary_name`` apart can during a promote)."""
    epoch, primary = db.topology.epoch_and_primary
    return epoch, primary


class FailoverWriter(threading.Thread):
    """Inserts ids 0, 1, ... through ``db`` until halted, recording each as an Op in
    ``history``; ``acked``: id -> (monotonic ns, node) of the acknowledged ones."""

    def __init__(self, db: Any, cluster: Any, name: str = "w0", session: Any = None,
                 history: Optional[History] = None, pause_s: float = 0.002, first_id: int = 0):
        super().__init__(daemon=True, name=f"writer-{name}")
        self.db, self.name = db, name
        self.session = session or replikit.Session()
        self.history = history if history is not None else History(MAX_OPS)
        self.port_to_node = {node.port: n for n, node in cluster.nodes.items()}
        self.pause_s = pause_s
        self.first_id = first_id
        self.acked: Dict[int, Tuple[int, str]] = {}
        self.errors = 0
        self.stop_flag = threading.Event()

    def run(self) -> None:
        i = self.first_id
        while not self.stop_flag.is_set():
            try:
                self.write(i)
            except HistoryFull:
                return
            i += 1
            time.sleep(self.pause_s)

    def write(self, i: int) -> Op:
        epoch, primary = topology_of(self.db)
        op = self.history.add(Op(f="write", session=self.name, client="db", key="w", value=i,
                                 t0=time.monotonic_ns(), invoke_epoch=epoch,
                                 invoke_primary=primary))
        try:
            result = self.db.execute(WRITE_SQL, [i], session=self.session)
        except (replikit.CommitUnknown, replikit.TimeoutError) as exc:
            self._complete(op, "unknown", exc)
            self.errors += 1
        except (replikit.ConnectionError, replikit.QueryError) as exc:
            self._complete(op, "fail", exc)  # refused, or rejected by the server: not committed
            self.errors += 1
        else:
            port, xid, timeline = result.rows[0]
            op.node, op.lsn = result.node, None if result.lsn is None else str(result.lsn)
            op.served = self.port_to_node.get(int(port))
            op.xid, op.timeline = int(xid), int(timeline)
            self._complete(op, "ok")
            self.acked[i] = (op.t1, result.node)
        return op

    def _complete(self, op: Op, outcome: str, error: Optional[BaseException] = None) -> None:
        op.t1 = time.monotonic_ns()
        op.type = outcome
        op.epoch, op.primary = topology_of(self.db)
        if error is not None:
            op.error = f"{type(error).__name__}: {str(error)[:160]}"

    def first_ack_after(self, t_ns: int, node: Optional[str] = None) -> Optional[int]:
        times = [t for t, n in list(self.acked.values()) if t > t_ns and (node is None or n == node)]
        return min(times) if times else None

    def halt(self) -> None:
        self.stop_flag.set()
        self.join(10)


def read_back(cluster: Any, node: str, history: History, first_id: int = 0) -> None:
    """Add a ``present`` op for every write of the history and every row of ``w`` from
    ``first_id`` on ``node`` (read with psql, a path independent of the library)."""
    rows = {int(r[0]) for r in cluster.sql(node, f"SELECT id FROM w WHERE id >= {int(first_id)}",
                                           timeout_ms=60_000)}
    writes = {(op.session, op.value) for op in history.ops() if op.f == "write"}
    sessions = {s for s, _ in writes} or {"w0"}
    session = sorted(sessions)[0] if len(sessions) == 1 else None
    now = time.monotonic_ns()
    seen = set()
    for s, value in sorted(writes):
        seen.add(value)
        history.add(Op(f="present", type="ok", session=s, value=value,
                       count=1 if value in rows else 0, t0=now, t1=now))
    for value in sorted(rows - seen):  # never written by the history: a phantom
        history.add(Op(f="present", type="ok", session=session or "?", value=value, count=1,
                       t0=now, t1=now))


def check(ops: List[Op]) -> List[Dict[str, Any]]:
    """The writes checker (nothing acknowledged lost, nothing failed present) and the
    primaries checker (one writable primary per epoch and per timeline, none deposed)."""
    return checkers.check_writes(ops) + checkers.check_primaries(ops)


def lost_xids(violations: List[Dict[str, Any]], ops: List[Op]) -> List[int]:
    """The xids of the acknowledged writes the writes checker found missing."""
    by_id = {op.id: op for op in ops}
    return sorted(int(by_id[v["op"]].xid) for v in violations if v["kind"] == "lost")


def describe(ops: List[Op]) -> Dict[str, Any]:
    """Writes by outcome, and which nodes acknowledged writes on which timeline and epoch."""
    outcomes: Dict[str, int] = {}
    timelines: Dict[int, set] = {}
    epochs: Dict[int, set] = {}
    for op in ops:
        if op.f != "write":
            continue
        outcomes[op.type] = outcomes.get(op.type, 0) + 1
        if op.type == "ok":
            timelines.setdefault(op.timeline, set()).add(op.served)
            epochs.setdefault(op.epoch, set()).add(op.served)
    return {"writes": outcomes, "timelines": {k: sorted(v) for k, v in sorted(timelines.items())},
            "epochs": {k: sorted(v) for k, v in sorted(epochs.items())}}
