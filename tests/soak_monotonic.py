"""Monotonic reads under steady updates, with reads flipping between replicas and the primary.

Three writers update one row each (``v = v + 1``) on the primary as fast as they can; readers,
each with its own Session, read the three rows with MONOTONIC consistency through
ReplicatedDatabase.query (``--client database``) or through replikit.pg.PsycopgRouter's psycopg
connections (``--client psycopg_router``) and check that no row's value ever goes down within a
session. After each read, half the readers stop their next one from going back to the replica
they read from on that replica's word alone (router rule 5), so that it goes to the primary
whenever no replica's probe shows what it needs: with ReplicatedDatabase they drop that replica
(a fresh Session merged from theirs keeps the LSNs and the xid floor); PsycopgRouter keeps a
session's xid floor with the Session object (a merged copy does not carry it), so there they
keep the Session and observe the writers' latest commit LSN (as merging a writer's token
would), which no probe shows yet most of the time. A steering thread pauses and resumes the replay of r1
and r2 in turn so that reads move between r1, r2 and the primary (a paused replica turns
LAGGING after max_lag_ms; both are LAGGING at times). The cluster runs in sync mode by default,
where the window in which an async standby shows a commit the primary does not yet show is
widest.

By hand (from the repository root, with the package built):

    .venv/bin/python -m tests.soak_monotonic --minutes 10
    .venv/bin/python -m tests.soak_monotonic --minutes 10 --client psycopg_router

It prints reads checked, backwards reads, the reads by node and the replica-to-primary flips.
tests/python/test_monotonic_soak.py runs a short version against the test cluster.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import replikit
from replikit.pg import PsycopgRouter, database_for_cluster

ROWS = 3
TABLE = "rk_mono"
SELECT = f"SELECT id, v FROM {TABLE} ORDER BY id"
CLIENTS = ("database", "psycopg_router")

# One monotonic read in a session: (the node that served it, its rows).
Read = Callable[[replikit.Session], Tuple[str, List[Tuple[int, int]]]]


def prepare(cluster: Any) -> None:
    """Creates the soak table (one row per writer) and waits for the replicas to have it."""
    values = ", ".join(f"({i}, 0)" for i in range(ROWS))
    cluster.sql("primary", f"""
        CREATE TABLE IF NOT EXISTS {TABLE} (id int PRIMARY KEY, v bigint NOT NULL);
        INSERT INTO {TABLE} VALUES {values} ON CONFLICT (id) DO NOTHING;
    """)
    cluster.wait_caught_up(timeout_ms=10_000)


def _writer(db: Any, row: int, stop: threading.Event, errors: List[BaseException],
            latest: Dict[str, Any]) -> None:
    session = replikit.Session()
    while not stop.is_set():
        try:
            r = db.execute(f"UPDATE {TABLE} SET v = v + 1 WHERE id = $1", [str(row)], session=session)
            latest["lsn"] = r.lsn  # one assignment: no lock needed
        except replikit.Error as exc:  # reported by the caller
            errors.append(exc)
            time.sleep(0.01)


def _database_read(db: Any) -> Read:
    def read(session: replikit.Session) -> Tuple[str, List[Tuple[int, int]]]:
        r = db.query(SELECT, session=session, consistency="monotonic")
        return r.node, [tuple(row) for row in r.rows]
    return read


def _router_read(router: Any) -> Read:
    def read(session: replikit.Session) -> Tuple[str, List[Tuple[int, int]]]:
        with router.read(session, consistency="monotonic") as conn:
            rows = conn.execute(SELECT).fetchall()
        return router.last_route.node, [tuple(row) for row in rows]  # last_route: this thread's
    return read


def _read_errors() -> Tuple[type, ...]:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - the backend depends on psycopg
        return (replikit.Error,)
    return (replikit.Error, psycopg.Error)


def _forget_by_merge(session: replikit.Session) -> replikit.Session:
    # Keep the LSNs and the xid floor but not the replica read last (merge keeps the receiving
    # session's): the next read then goes to the primary whenever no probe shows a replica
    # covering it, which puts the primary-fallback rule to work.
    fresh = replikit.Session()
    fresh.merge(session)
    return fresh


def _forget_by_latest_write(latest: Dict[str, Any]) -> Callable[[replikit.Session], replikit.Session]:
    def forget(session: replikit.Session) -> replikit.Session:
        # The same Session (its xid floor is the router's, by Session object) needing the
        # writers' latest commit LSN, above what the replica read last showed most of the time.
        lsn = latest.get("lsn")
        if lsn is not None:
            session.observe(lsn)
        return session
    return forget


def _reader(read: Read, stop: threading.Event, out: Dict[str, Any], lock: threading.Lock,
            forget: Optional[Callable[[replikit.Session], replikit.Session]]) -> None:
    session = replikit.Session()
    last = [-1] * ROWS
    reads = backwards = flips = 0
    by_node: Dict[str, int] = {}
    failures: List[str] = []
    previous = None
    errors = _read_errors()
    while not stop.is_set():
        try:
            node, rows = read(session)
        except errors as exc:
            failures.append(repr(exc))
            time.sleep(0.01)
            continue
        reads += 1
        by_node[node] = by_node.get(node, 0) + 1
        if previous is not None and previous != "primary" and node == "primary":
            flips += 1
        went_back = False
        for row_id, v in rows:
            if v < last[row_id]:
                went_back = True
            last[row_id] = max(last[row_id], v)
        if went_back:
            backwards += 1
            if len(out["examples"]) < 5:
                out["examples"].append(f"{previous} -> {node}: {rows}, seen {last}")
        previous = node
        if forget is not None:
            session = forget(session)
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
        probe_interval_ms: float = 10.0, client: str = "database") -> Dict[str, Any]:
    """Runs the workload for `seconds` on `cluster` (a LocalCluster with r1 and r2) and returns
    the figures: reads, backwards, flips (replica read then primary read), by_node, failures.
    `client`: "database" (ReplicatedDatabase.query) or "psycopg_router" (PsycopgRouter)."""
    if client not in CLIENTS:
        raise replikit.InvalidArgument(f"client: expected one of {CLIENTS}, got {client!r}")
    prepare(cluster)
    previous_mode = cluster.mode
    if mode != previous_mode:
        cluster.set_replication_mode(mode)
    out: Dict[str, Any] = {"reads": 0, "backwards": 0, "flips": 0, "by_node": {}, "failures": [],
                           "failure_count": 0, "examples": [], "write_errors": 0, "pauses": 0}
    stop = threading.Event()
    lock = threading.Lock()
    errors: List[BaseException] = []
    latest: Dict[str, Any] = {}  # the writers' latest commit LSN
    try:
        with database_for_cluster(cluster, probe_interval_ms=probe_interval_ms, max_lag_ms=max_lag_ms,
                                  pool_size=readers + writers + 2) as db, \
                contextlib.ExitStack() as closing:
            db.wait_probes(2, 5000)
            if client == "database":
                read, forget = _database_read(db), _forget_by_merge
            else:
                read = _router_read(closing.enter_context(PsycopgRouter(db, pool_size=readers + 1)))
                forget = _forget_by_latest_write(latest)
            threads = [threading.Thread(target=_writer, args=(db, i % ROWS, stop, errors, latest), daemon=True)
                       for i in range(writers)]
            threads += [threading.Thread(target=_reader, args=(read, stop, out, lock, forget if k % 2 else None),
                                         daemon=True)
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
    parser.add_argument("--client", choices=CLIENTS, default="database",
                        help="read through ReplicatedDatabase.query or replikit.pg.PsycopgRouter")
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
            out = run(cluster, chunk, readers=args.readers, mode=args.mode, steer=not args.no_steer,
                      client=args.client)
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
