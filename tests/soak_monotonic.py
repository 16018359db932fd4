"""Monotonic reads under steady updates, with reads flipping between replicas and the primary.

Three writers update one row each (``v = v + 1``) on the primary as fast as they can; readers,
each with its own Session, read the three rows with MONOTONIC consistency through
ReplicatedDatabase and check that no row's value ever goes down within a session. Half the
readers drop the replica they last read from after each read (keeping LSNs and xid floor), so
their reads fall back to the primary whenever the probes trail what they saw. A steering
thread pauses and resumes the replay of r1 and r2 in turn so that reads move between r1, r2
and the primary (a paused replica turns LAGGING after max_lag_ms; both are LAGGING at times). The cluster runs in sync mode by default, where
the window in which an async standby shows a commit the primary does not yet show is widest.

By hand (from the repository root, with the package built):

    .venv/bin/python -m tests.soak_monotonic --minutes 10

It prints reads checked, backwards reads, the reads by node and the replica-to-primary flips.
tests/python/test_monotonic_soak.py runs a short version against the test cluster.
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any, Dict, List

import replikit
from replikit.pg import database_for_cluster

ROWS = 3
TABLE = "rk_mono"


def prepare(cluster: Any) -> None:
    """Creates the soak table (one row per writer) and waits for the replicas to have it."""
    values = ", ".join(f"({i}, 0)" for i in range(ROWS))
    cluster.sql("primary", f"""
        CREATE TABLE IF NOT EXISTS {TABLE} (id int PRIMARY KEY, v bigint NOT NULL);
        INSERT INTO {TABLE} VALUES {values} ON CONFLICT (id) DO NOTHING;
    """)
    cluster.wait_caught_up(timeout_ms=10_000)


def _writer(db: Any, row: int, stop: threading.Event, errors: List[BaseException]) -> None:
    session = replikit.Session()
    while not stop.is_set():
        try:
            db.execute(f"UPDATE {TABLE} SET v = v + 1 WHERE id = $1", [str(row)], session=session)
        except replikit.Error as exc:  # reported by the caller
            errors.append(exc)
            time.sleep(0.01)


def _reader(db: Any, stop: threading.Event, out: Dict[str, Any], lock: threading.Lock,
            forget_replica: bool) -> None:
    session = replikit.Session()
    last = [-1] * ROWS
    reads = backwards = flips = 0
    by_node: Dict[str, int] = {}
    failures: List[str] = []
    previous = None
    while not stop.is_set():
        try:
            r = db.query(f"SELECT id, v FROM {TABLE} ORDER BY id", session=session, consistency="monotonic")
        except replikit.Error as exc:
            failures.append(repr(exc))
            time.sleep(0.01)
            continue
        reads += 1
        by_node[r.node] = by_node.get(r.node, 0) + 1
        if previous is not None and previous != "primary" and r.node == "primary":
            flips += 1
        went_back = False
        for row_id, v in r.rows:
            if v < last[row_id]:
                went_back = True
            last[row_id] = max(last[row_id], v)
        if went_back:
            backwards += 1
            if len(out["examples"]) < 5:
                out["examples"].append(f"{previous} -> {r.node}: {[tuple(x) for x in r.rows]}, seen {last}")
        previous = r.node
        if forget_replica:
            # Keep the LSNs and the xid floor but not the replica read last (merge keeps the
            # receiving session's): the next read then goes to the primary whenever no probe
            # shows a replica covering it, which puts the primary-fallback rule to work.
            fresh = replikit.Session()
            fresh.merge(session)
            session = fresh
    with lock:
        out["reads"] += reads
        out["backwards"] += backwards
        out["flips"] += flips
        out["failures"] += failures[:5]
        out["failure_count"] += len(failures)
        for node, n in by_node.items():
            out["by_node"][node] = out["by_node"].get(node, 0) + n


def _steer(cluster: Any, stop: threading.Event, step_ms: float) -> int:
    """Until stopped, every step_ms in turn: pause r1, pause r2, resume r1, resume r2. Each
    replica is paused half the time and both together a quarter of it, so reads move between
    r1, r2 and (while both are LAGGING) the primary. Returns the pauses made."""
    pauses = 0
    steps = [("pause", "r1"), ("pause", "r2"), ("resume", "r1"), ("resume", "r2")]
    k = 0
    while not stop.wait(step_ms / 1000.0):
        action, node = steps[k % len(steps)]
        if action == "pause":
            cluster.pause_replay(node)
            pauses += 1
        else:
            cluster.resume_replay(node)
        k += 1
    return pauses


def run(cluster: Any, seconds: float, *, readers: int = 4, writers: int = ROWS, mode: str = "sync",
        steer: bool = True, step_ms: float = 400.0, max_lag_ms: float = 150.0,
        probe_interval_ms: float = 10.0) -> Dict[str, Any]:
    """Runs the workload for `seconds` on `cluster` (a LocalCluster with r1 and r2) and returns
    the figures: reads, backwards, flips (replica read then primary read), by_node, failures."""
    prepare(cluster)
    previous_mode = cluster.mode
    if mode != previous_mode:
        cluster.set_replication_mode(mode)
    out: Dict[str, Any] = {"reads": 0, "backwards": 0, "flips": 0, "by_node": {}, "failures": [],
                           "failure_count": 0, "examples": [], "write_errors": 0, "pauses": 0}
    stop = threading.Event()
    lock = threading.Lock()
    errors: List[BaseException] = []
    try:
        with database_for_cluster(cluster, probe_interval_ms=probe_interval_ms, max_lag_ms=max_lag_ms,
                                  pool_size=readers + writers + 2) as db:
            db.wait_probes(2, 5000)
            threads = [threading.Thread(target=_writer, args=(db, i % ROWS, stop, errors), daemon=True)
                       for i in range(writers)]
            threads += [threading.Thread(target=_reader, args=(db, stop, out, lock, k % 2 == 1), daemon=True)
                        for k in range(readers)]
            for t in threads:
                t.start()
            started = time.monotonic()
            steering = None
            if steer:
                result: Dict[str, int] = {}
                steering = threading.Thread(
                    target=lambda: result.__setitem__("pauses", _steer(cluster, stop, step_ms)),
                    daemon=True)
                steering.start()
            stop.wait(seconds)
            stop.set()
            for t in threads:
                t.join(30)
            if steering is not None:
                steering.join(30)
                out["pauses"] = result.get("pauses", 0)
            out["seconds"] = time.monotonic() - started
    finally:
        stop.set()
        for node in ("r1", "r2"):
            cluster.resume_replay(node)
        if mode != previous_mode:
            cluster.set_replication_mode(previous_mode)
    out["write_errors"] = len(errors)
    return out


def report(out: Dict[str, Any]) -> str:
    rate = out["reads"] / out["seconds"] if out.get("seconds") else 0.0
    return (f"monotonic reads checked {out['reads']} ({rate:.0f}/s), backwards {out['backwards']}, "
            f"replica->primary flips {out['flips']}, by node {out['by_node']}, replay pauses {out['pauses']}, "
            f"read failures {out['failure_count']}, write errors {out['write_errors']}"
            + (f"; examples {out['examples']}" if out["examples"] else ""))


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak_monotonic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--mode", choices=("async", "sync", "remote_apply"), default="sync")
    parser.add_argument("--no-steer", action="store_true", help="do not pause the replicas' replay")
    parser.add_argument("--report-every", type=float, default=60.0, help="seconds between progress lines")
    args = parser.parse_args(argv)
    from replikit.testing import LocalCluster

    total: Dict[str, Any] = {"reads": 0, "backwards": 0, "flips": 0, "by_node": {}, "failures": [],
                             "failure_count": 0, "examples": [], "write_errors": 0, "pauses": 0, "seconds": 0.0}
    with LocalCluster(replicas=2, mode="async") as cluster:
        left = args.minutes * 60.0
        while left > 0:
            chunk = min(left, args.report_every)
            out = run(cluster, chunk, readers=args.readers, mode=args.mode, steer=not args.no_steer)
            for key in ("reads", "backwards", "flips", "failure_count", "write_errors", "pauses", "seconds"):
                total[key] += out[key]
            for node, n in out["by_node"].items():
                total["by_node"][node] = total["by_node"].get(node, 0) + n
            total["examples"] = (total["examples"] + out["examples"])[:5]
            left -= chunk
            print(report(total), flush=True)
    return 1 if total["backwards"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
