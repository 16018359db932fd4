"""What the lag tracker was fed, compared sample by sample: the real prober's samples
(killreads.ProbeRecord: the primary's position stamped at its query's send, each replica's replay
position stamped at its answer) and a twin's (SimResult.probe_samples, the same stamps). Per
replica sample in a window: whether it was behind the primary's last sample sent before it was
answered (by how many bytes), and the WAL the primary wrote between two of its samples (the grid
the tracker interpolates a replica's time lag on).

What is recorded (moved here from fidelity/killreads.py):

What the lag tracker is fed, recorded per probe (ProbeRecord; fidelity.probesamples compares it
with the twins' SimResult.probe_samples): the primary's pg_current_wal_flush_lsn() stamped at its
query's send, each replica's replay LSN stamped at its answer. The twins' primary shows a write
once it commits, and their replicas take the delays measured from the row's INSERT clock, so the
twins' prober reads the primary as of the mean INSERT -> COMMIT measured in the run from the
primary's WAL (fidelity.commitlag; ~0.05 ms: replikit's write path sends the COMMIT right behind
the statement's answer). Also recorded: when each probe's query started on its server
(fidelity.probesamples.QueryStarts), and the new primary's full-page images after its promotion
(~180 kB of WAL in its first ~100 ms instead of ~4 kB); both go into the twin (see killtwins).

The windows and the tracker's inputs (moved here from fidelity/killreads.py):

The simulator's windows are SimResult.windows (edges WARM_S and the crash) and failover_windows (outage,
after_recovery). What the lag tracker sees, also measured in that run: the writes no read is
judged against (the twin's background writes: failover_bench's writer on the primary and the
delay probe's rows before the kill, ~100-210/s; the writer on the new primary after the
recovery), which set how finely the tracker interpolates between its 100 ms samples of the
primary (the session writer's 50/s alone read a replica one write behind as 20-100 ms behind,
rarely; the real tracker reads a few ms, often); the prober's own half round trip (NodeStatus:
last_probe_ns, probe_rtt_ms; the twin's probes take its median: the prober's queries leave
together and meet the same load, and independent draws from its spread would read a replica
before the primary half the time) and each node's probe offset, the median time from the
prober's query to the primary to its query to that node (its cadences drift apart: 0 in most
kills, 1.5-35 ms in some, and a replica read a few ms after the primary has replayed what the
primary showed: its tracked lag is then 0).
"""

from __future__ import annotations

import bisect
import math
from typing import Any, Dict, List, Optional, Tuple

Samples = Tuple[List[Tuple[float, int]], Dict[str, List[Tuple[float, int]]]]  # (primary, {replica: ...}), s


def real_samples(records: Dict[str, Dict[Any, Any]]) -> Samples:
    """A real run's probe records (node -> {last_probe_ns: ProbeRecord}) as stamped samples."""
    primary: List[Tuple[float, int]] = []
    replicas: Dict[str, List[Tuple[float, int]]] = {}
    for node, per_probe in records.items():
        for rec in per_probe.values():
            sent, answered, is_primary, lsn = rec[0], rec[1], rec[2], rec[3]
            if lsn <= 0:
                continue
            if is_primary:
                primary.append((sent, lsn))
            else:
                replicas.setdefault(node, []).append((answered, lsn))
    return primary, replicas


def sim_samples(trace: Dict[str, Any]) -> Samples:
    """A twin's SimResult.probe_samples as stamped samples (s)."""
    primary: List[Tuple[float, int]] = []
    replicas: Dict[str, List[Tuple[float, int]]] = {}
    for node, is_primary, stamp, lsn in zip(trace["node"], trace["primary"], trace["stamp_ms"], trace["lsn"]):
        if is_primary:
            primary.append((float(stamp) / 1e3, int(lsn)))
        else:
            replicas.setdefault(node, []).append((float(stamp) / 1e3, int(lsn)))
    return primary, replicas


def behind_counts(samples: Samples, lo: float, hi: float) -> Dict[str, float]:
    """Over the replica samples stamped in [lo, hi) (s): how many, how many were behind the primary's
    last sample sent before them and by how many bytes in all; the primary's samples in the window
    and the WAL between consecutive ones."""
    primary = sorted(samples[0])
    stamps = [t for t, _ in primary]
    out = {"replica_samples": 0.0, "behind": 0.0, "behind_bytes": 0.0, "primary_gaps": 0.0, "wal_bytes": 0.0}
    inside = [(t, lsn) for t, lsn in primary if lo <= t < hi]
    for (_, a), (_, b) in zip(inside, inside[1:]):
        out["primary_gaps"] += 1
        out["wal_bytes"] += max(0, b - a)
    for per_node in samples[1].values():
        for t, lsn in per_node:
            i = bisect.bisect_right(stamps, t) - 1
            if not lo <= t < hi or i < 0:
                continue
            out["replica_samples"] += 1
            if lsn < primary[i][1]:
                out["behind"] += 1
                out["behind_bytes"] += primary[i][1] - lsn
    return out


def add(into: Dict[str, float], more: Dict[str, float]) -> None:
    for key, value in more.items():
        into[key] = into.get(key, 0.0) + value


def summary(counts: Dict[str, float]) -> str:
    """'behind 6.1% of 1200 (176 B on average), 3480 B of WAL per primary sample'."""
    n, behind = counts.get("replica_samples", 0.0), counts.get("behind", 0.0)
    share = behind / n if n else 0.0
    mean_bytes = counts.get("behind_bytes", 0.0) / behind if behind else 0.0
    wal = counts.get("wal_bytes", 0.0) / counts["primary_gaps"] if counts.get("primary_gaps") else 0.0
    return f"behind {share:.1%} of {n:.0f} ({mean_bytes:.0f} B on average), {wal:.0f} B of WAL per primary sample"


# ------------------------------------------------------------------ when each probe ran on its server
PROBE_QUERY_LIKE = "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery()%"  # cpp/pg/probe_query.cpp
QUERY_START_POLL_S = 0.03  # under a third of the prober's 100 ms period: every probe's start is seen


class QueryStarts:
    """When the lag prober's query ran on each node (its server's clock, from pg_stat_activity:
    query_start, and state_change once the backend is idle again, i.e. when it had sent the answer
    row, whose LSNs the executor read just before; both stay while the connection idles), polled
    every QUERY_START_POLL_S from its own thread until ``stop``. ``starts``: node -> {query start:
    its end, or None when not seen idle yet}, in s from ``t0`` on time.monotonic()'s scale (the
    servers' wall clock mapped once: one host). Matched with the prober's send instants
    (run_lags_ms), they say how long after its send each node's query ran: one node's query often
    runs later than the others' although all leave at once."""

    def __init__(self, dsns: Dict[str, str], t0: float):
        import threading
        import time

        self.dsns = dsns
        self.wall_minus_t0 = time.time() - (time.monotonic() - t0)  # wall clock at t0
        self.starts: Dict[str, Dict[float, Optional[float]]] = {node: {} for node in dsns}
        self.stop = threading.Event()

    def run(self) -> None:
        import psycopg

        conns = {}
        try:
            for node, dsn in self.dsns.items():
                conns[node] = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
            while not self.stop.wait(QUERY_START_POLL_S):
                for node in list(conns):
                    try:
                        rows = conns[node].execute(
                            "SELECT extract(epoch FROM query_start)::text, CASE WHEN state = 'idle' THEN "
                            "extract(epoch FROM state_change)::text END FROM pg_stat_activity "
                            "WHERE query LIKE %s AND pid <> pg_backend_pid()", (PROBE_QUERY_LIKE,)).fetchall()
                    except Exception:  # noqa: BLE001 - a killed node: no more starts from it
                        conns.pop(node).close()
                        continue
                    for start, end in rows:
                        if start:
                            key = float(start) - self.wall_minus_t0
                            seen = self.starts[node].get(key)
                            self.starts[node][key] = float(end) - self.wall_minus_t0 if end else seen
        except Exception:  # noqa: BLE001 - a failed connect: what was polled stays
            pass
        finally:
            for conn in conns.values():
                conn.close()


RUN_LAG_MATCH_S = 0.05  # bound of one probe's send -> start (its timeout is longer; a start further is another's)
CLOCK_SLACK_S = 1e-5  # the servers' wall clock mapped onto time.monotonic() once: a start may read a little early


def run_lags_by_probe(starts: Dict[str, Any], records: Dict[str, Dict[Any, Any]], lo: float, hi: float,
                      at: str = "end") -> Dict[str, Dict[Any, float]]:
    """Per node (primary, r1, r2): for each answered probe sent in [lo, hi) (s from t0) whose query
    was seen on its server, keyed as in ``records``, how long after its send the query read its
    positions (ms, >= 0): at its end (``at="end"``: when the backend went idle, right after the
    executor read the LSNs and sent the row) or its start. ``starts``: node -> (start, end) pairs
    (QueryStarts.starts' items; a bare start, end unknown); ``records`` as real_samples takes them."""
    out: Dict[str, Dict[Any, float]] = {}
    for node in ("primary", "r1", "r2"):
        pairs = sorted((p, None) if isinstance(p, float) else (p[0], p[1]) for p in starts.get(node, ()))
        seen = [p[0] for p in pairs]
        lags = out.setdefault(node, {})
        for key, rec in records.get(node, {}).items():
            sent, answered = rec[0], rec[1]
            if not lo <= sent < hi:
                continue
            i = bisect.bisect_left(seen, sent - CLOCK_SLACK_S)
            if i >= len(seen) or seen[i] - sent >= RUN_LAG_MATCH_S or seen[i] > answered + CLOCK_SLACK_S:
                continue
            when = seen[i] if at == "start" else pairs[i][1]
            if when is not None and when <= answered + CLOCK_SLACK_S:
                lags[key] = max(0.0, when - sent) * 1000.0
    return out


def run_lags_ms(starts: Dict[str, Any], records: Dict[str, Dict[Any, Any]], lo: float, hi: float,
                at: str = "end") -> List[List[float]]:
    """run_lags_by_probe's lags as lists per node (primary, r1, r2), in the records' order; a node
    without any: an empty list."""
    by_probe = run_lags_by_probe(starts, records, lo, hi, at)
    return [list(by_probe[node].values()) for node in ("primary", "r1", "r2")]


def twin_run_lags(starts: Dict[str, Any], records: Dict[str, Dict[Any, Any]], warm_s: float, kill_s: float,
                  recovered_s: float, end_s: float, at: str = "end") -> Dict[str, List[List[float]]]:
    """A twin's SimConfig.probe_run_lags_ms (the probes sent in [warm_s, kill_s)) and
    probe_run_lags_after_crash_ms (those sent in [recovered_s, end_s); a node without any there, the
    dead primary: its lags before); each empty when a node had none before the kill (not measured)."""
    before = run_lags_ms(starts, records, warm_s, kill_s, at)
    if not all(before):
        return {"probe_run_lags_ms": [], "probe_run_lags_after_crash_ms": []}
    after = run_lags_ms(starts, records, recovered_s, end_s, at)
    return {"probe_run_lags_ms": before, "probe_run_lags_after_crash_ms": [a or b for a, b in zip(after, before)]}


def promotion_wal_bytes(records: Dict[str, Dict[Any, Any]], promoted: str, kill_s: float) -> int:
    """The new primary's WAL burst after its promotion as the lag tracker saw it (full-page images:
    SimConfig.promotion_wal_bytes): the WAL in its first two intervals as the primary (first to
    third sample; the burst came within them in every kill but those whose burst preceded the
    first sample) less what its steady rate (the median WAL per second between its later samples)
    gives over that span; 0 without enough samples."""
    ps = sorted((rec[0], rec[3]) for rec in records.get(promoted, {}).values() if rec[2] and rec[0] > kill_s and rec[3] > 0)
    if len(ps) < 5:
        return 0
    rates = sorted((b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(ps[2:], ps[3:]) if b[0] > a[0])
    steady = rates[len(rates) // 2] * (ps[2][0] - ps[0][0])
    return int(max(0.0, ps[2][1] - ps[0][1] - steady))


# ------------------------------------------------------------------ a probe's read gap
SAME_SEND_S = 5e-5  # a replica's query sent with the primary's (the prober sends a round's queries together)
READ_GAP_EDGES_MS = (-10.0, -0.1, 0.0, 0.01, 0.05, 0.1, 0.2, 0.4, 10.0)


def _paired_lags(records: Dict[str, Dict[Any, Any]], lags: List[float], lo: float) -> Optional[Dict[Any, float]]:
    """One node's run lags (run_lags_ms' list for the probes sent from ``lo`` on, in the records'
    order) keyed by their probe record, when they line up with its records from ``lo`` on (a lag
    never longer than its probe's round trip); None when they do not (a probe not seen on its
    server dropped out of the list and shifted the rest)."""
    recs = sorted((rec[0], rec[1], key) for key, rec in records.items() if rec[0] >= lo)
    if len(recs) < len(lags):
        return None
    if any(lag > (answered - sent) * 1000.0 + CLOCK_SLACK_S * 1000.0 for (sent, answered, _), lag in zip(recs, lags)):
        return None
    return {key: lag for (_, _, key), lag in zip(recs, lags)}


def read_gap_rounds(records: Dict[str, Dict[Any, Any]], run_lags: Any, lo: float,
                    hi: float) -> List[Tuple[float, bool]]:
    """Per replica sample answered in [lo, hi) whose query left with the primary's (the same
    round, within SAME_SEND_S) and whose run lags on both servers are known: (the replica's run
    lag less the primary's, ms; whether it was behind the primary's sample). ``run_lags``:
    run_lags_by_probe's, or probe_run_lags_ms' lists (primary, r1, r2, from ``lo`` on; paired with
    the records where they line up). The gap says when each server was read: ~0 (both queries
    ran at once, in parallel) on an idle machine, apart when other work (a write's replication)
    held a core."""
    if isinstance(run_lags, dict):
        paired: Dict[str, Optional[Dict[Any, float]]] = {node: run_lags.get(node) for node in ("primary", "r1", "r2")}
    elif len(run_lags) == 3:
        paired = {node: _paired_lags(records.get(node, {}), lags, lo) for node, lags in zip(("primary", "r1", "r2"), run_lags)}
    else:
        return []
    primary = sorted((rec[0], rec[3], key) for key, rec in records.get("primary", {}).items() if rec[2] and rec[3] > 0)
    stamps = [p[0] for p in primary]
    out = []
    for node in ("r1", "r2"):
        if paired["primary"] is None or paired[node] is None:
            continue
        for key, rec in records.get(node, {}).items():
            sent, answered, is_primary, lsn = rec[0], rec[1], rec[2], rec[3]
            i = bisect.bisect_right(stamps, answered) - 1
            if is_primary or lsn <= 0 or not lo <= answered < hi or i < 0 or abs(sent - primary[i][0]) > SAME_SEND_S:
                continue
            if key in paired[node] and primary[i][2] in paired["primary"]:
                out.append((paired[node][key] - paired["primary"][primary[i][2]], lsn < primary[i][1]))
    return out


def run_lag_rounds(records: Dict[str, Dict[Any, Any]], run_lags: Any, lo: float, hi: float,
                   lead: str = "primary") -> List[List[float]]:
    """Measured probe rounds (SimConfig.probe_round_lags_ms): per probe of ``lead`` (the primary,
    or after a failover the promoted node's probes of it as the primary) sent in [lo, hi) whose run
    lag is known, each node's run lag in that round (ms): the lead's first, then the others' in
    the order primary, r1, r2; -1 for a node whose query did not leave with the lead's (within
    SAME_SEND_S) or whose lag is not known. ``run_lags`` as read_gap_rounds takes them. Only rounds
    in which some other node's lag is known."""
    nodes = ("primary", "r1", "r2")
    if isinstance(run_lags, dict):
        paired: Dict[str, Optional[Dict[Any, float]]] = {node: run_lags.get(node) for node in nodes}
    elif len(run_lags) == 3:
        paired = {node: _paired_lags(records.get(node, {}), lags, lo) for node, lags in zip(nodes, run_lags)}
    else:
        return []
    lead_lags = paired.get(lead)
    if not lead_lags:
        return []
    others = [node for node in nodes if node != lead]
    sends = {node: sorted((rec[0], key) for key, rec in records.get(node, {}).items() if key in (paired[node] or {}))
             for node in others}
    out = []
    for key, rec in records.get(lead, {}).items():
        sent = rec[0]
        if not lo <= sent < hi or not rec[2] or key not in lead_lags:
            continue
        row = [lead_lags[key]]
        for node in others:
            found = sends[node]
            i = bisect.bisect_left([s for s, _ in found], sent - SAME_SEND_S)
            together = i < len(found) and abs(found[i][0] - sent) <= SAME_SEND_S
            row.append(paired[node][found[i][1]] if together else -1.0)  # type: ignore[index]
        if any(v >= 0 for v in row[1:]):
            out.append(row)
    return out


def twin_behind_chance(delays: List[float], commit_lag_ms: float, writes_per_s: float, gap_ms: float) -> float:
    """The chance the twins' model gives a probe of finding a replica behind when it reads the
    replica ``gap_ms`` after the primary: every write (Poisson at ``writes_per_s``) is in the
    primary's position ``commit_lag_ms`` after its commit and on the replica after a delay drawn
    from ``delays`` (ms), independently of when the probe's queries run."""
    span = sum(max(0.0, d - commit_lag_ms - gap_ms) for d in delays) / len(delays)
    return 1.0 - math.exp(-writes_per_s * span / 1000.0)
