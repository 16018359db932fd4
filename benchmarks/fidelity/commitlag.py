"""When the primary's position passes a session write: its COMMIT, a round trip after the INSERT
whose clock a row's delays are measured from (replikit's write path sends BEGIN, the statement,
then COMMIT one round trip later). Measured after a run from the primary's own WAL (pg_waldump:
each transaction's commit record carries its commit instant) and the rows' xmin: per row, the
commit instant less the INSERT's clock, in ms (one host: one clock). The lag prober reads the
primary's flush LSN, which passes a write at its COMMIT, so a twin whose replicas take the delays
measured from the INSERT finds a write in the primary's position that much after its commit on
average (SimConfig.probe_commit_lag_ms)."""

from __future__ import annotations

import datetime
import os
import re
import statistics
import subprocess
from typing import Any, Dict, List, Sequence, Tuple

COMMIT_RECORD = re.compile(r"tx:\s*(\d+),.*desc: COMMIT (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC")
WALDUMP_TIMEOUT_S = 60.0


def parse_commits(text: str) -> Dict[int, float]:
    """xid -> commit instant (s since the epoch) of each COMMIT record in pg_waldump's output."""
    out: Dict[int, float] = {}
    for line in text.splitlines():
        m = COMMIT_RECORD.search(line)
        if m:
            fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in m.group(2) else "%Y-%m-%d %H:%M:%S"
            when = datetime.datetime.strptime(m.group(2), fmt).replace(tzinfo=datetime.timezone.utc)
            out[int(m.group(1))] = when.timestamp()
    return out


def wal_commits(pg_bin_dir: str, data_dir: str, start_lsn: str) -> Dict[int, float]:
    """The commit records of a (possibly killed) instance's WAL from ``start_lsn`` to its end
    (pg_waldump stops with an error at the end of a crashed instance's WAL: the records before
    it are what counts)."""
    proc = subprocess.run([os.path.join(pg_bin_dir, "pg_waldump"), "-p", os.path.join(data_dir, "pg_wal"),
                           "-s", start_lsn, "-r", "Transaction"], capture_output=True, text=True,
                          timeout=WALDUMP_TIMEOUT_S, env=dict(os.environ, TZ="UTC"), check=False)
    return parse_commits(proc.stdout)


def insert_to_commit_ms(inserts: Sequence[Tuple[float, int]], xmins: Dict[int, int],
                        commits: Dict[int, float]) -> List[float]:
    """Per row of ``inserts`` ((INSERT clock, s since the epoch; row id)) whose xid (``xmins``:
    row id -> xmin) has a commit record: the commit instant less the INSERT's clock (ms)."""
    out = []
    for at, row_id in inserts:
        xid = xmins.get(row_id)
        if xid is not None and xid in commits:
            out.append((commits[xid] - at) * 1000.0)
    return out


def measure(cluster: Any, killed: str, reader: Any, table: str, start_lsn: str,
            inserts: Sequence[Tuple[float, int]], positive: bool = True) -> List[float]:
    """INSERT -> COMMIT (ms) of the rows ``inserts`` lists, from the killed instance's WAL since
    ``start_lsn`` and their xmin read through ``reader`` (a connection to a survivor); the rows of
    positive ids (the session writer's), else of negative ones (the offset probe's)."""
    rows = reader.execute(f"SELECT id, xmin::text FROM {table} WHERE id {'>' if positive else '<'} 0").fetchall()
    xmins = {int(row_id): int(xmin) for row_id, xmin in rows}
    commits = wal_commits(cluster.pg_bin_dir, cluster.nodes[killed].data_dir, start_lsn)
    return insert_to_commit_ms(inserts, xmins, commits)


def commit_lag_ms(gaps: Sequence[float]) -> float:
    """The twin's SimConfig.probe_commit_lag_ms: the mean measured INSERT -> COMMIT (0 without
    any). The twin subtracts this one constant from per-write delays each of which carries its own
    write's INSERT -> COMMIT (the offset probe's rows), and most of the primary's writes
    (failover_bench's autocommit writer) have none: the span in which a probe can find a replica
    behind is the delay less the commit lag on average, so the mean. The median left the
    gap's tail in every write's span (on a loaded machine the client thread is often descheduled
    between the INSERT's answer and its COMMIT: mean 0.12-0.16 ms above the median per kill,
    0.02-0.03 ms on a quiet one) and over-predicted the tracked lag before the kill."""
    return max(0.0, statistics.fmean(gaps)) if gaps else 0.0
