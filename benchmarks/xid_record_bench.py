"""What recording each write's transaction id costs, on the wire, against the statements the
write path sent before it (a baseline measured in the same run, interleaved).

ReplicatedDatabase.execute() without parameters sends "SELECT pg_current_xact_id(); <sql>" as
one simple query, then its insert-LSN read (now with the timeline): still two round trips.
With parameters it sends "BEGIN; SELECT pg_current_xact_id()", the statement, then "COMMIT;
SELECT <insert LSN, timeline>": three round trips where it sent two. This script times exactly
those sequences with psycopg's libpq connection on a one-node local cluster.

    python benchmarks/xid_record_bench.py [--writes 1000] [--rounds 9]
"""

from __future__ import annotations

import argparse
import statistics
import time

import psycopg

from replikit.testing import LocalCluster

LSN = (b"SELECT pg_current_wal_insert_lsn(),"
       b" ('x' || substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8))::bit(32)::int")


def cases(pgc):
    return {
        "before: INSERT / SELECT lsn": lambda: (
            pgc.exec_(b"INSERT INTO t VALUES (1)"), pgc.exec_(b"SELECT pg_current_wal_insert_lsn()")),
        "now:    SELECT xid; INSERT / SELECT lsn, tli": lambda: (
            pgc.exec_(b"SELECT pg_current_xact_id();\nINSERT INTO t VALUES (1)"), pgc.exec_(LSN)),
        "before: INSERT $1 / SELECT lsn": lambda: (
            pgc.exec_params(b"INSERT INTO t VALUES ($1)", [b"1"]), pgc.exec_(b"SELECT pg_current_wal_insert_lsn()")),
        "now:    BEGIN; SELECT xid / INSERT $1 / COMMIT; SELECT lsn, tli": lambda: (
            pgc.exec_(b"BEGIN; SELECT pg_current_xact_id()"),
            pgc.exec_params(b"INSERT INTO t VALUES ($1)", [b"1"]), pgc.exec_(b"COMMIT; " + LSN)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    with LocalCluster(replicas=0) as cluster:
        conn = psycopg.connect(cluster.dsn("primary"), autocommit=True)
        conn.execute("CREATE TABLE t (id int)")
        runs = cases(conn.pgconn)
        times = {k: [] for k in runs}
        for _ in range(args.rounds):  # interleaved: a slow moment hits every case alike
            for name, run in runs.items():
                t0 = time.perf_counter()
                for _ in range(args.writes):
                    run()
                times[name].append((time.perf_counter() - t0) / args.writes * 1e6)
        median = {k: statistics.median(v) for k, v in times.items()}
        for name, us in median.items():
            print(f"{name:68s} {us:7.1f} us/write")
        keys = list(runs)
        print(f"without parameters: {median[keys[1]] / median[keys[0]]:.2f}x the time before; "
              f"with parameters: {median[keys[3]] / median[keys[2]]:.2f}x "
              f"(median of {args.rounds} interleaved rounds of {args.writes} writes)")


if __name__ == "__main__":
    main()
