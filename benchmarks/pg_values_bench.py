"""What converting values costs in ReplicatedDatabase.query: a one-row point select with one int
parameter, and a 1000-row result of mixed types (int8, text, numeric, timestamptz, jsonb,
int[]), against psycopg direct on the same replica, one thread, in the same run.

    python benchmarks/pg_values_bench.py [--seconds 2] [--port 26400]

Prints, per workload, microseconds per call of: psycopg direct (the baseline: its cursor
converts every value), replikit's query() alone (routing, parameters, the round trip; rows
are converted lazily, on first use), query() with `.rows` ("both") and the difference (what
the conversion costs), and the baseline's time over "both" (above 1: replikit is faster). Starts its own local
cluster (primary + 1 replica) on --port.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable, List

import psycopg

from replikit.pg import database_for_cluster
from replikit.testing import LocalCluster

POINT = "SELECT id, name, amount FROM rk_bench WHERE id = $1"
MANY = "SELECT id, name, amount, at, doc, tags FROM rk_bench ORDER BY id LIMIT 1000"


def per_call_us(fns: List[Callable[[int], Any]], seconds: float, repeats: int = 7) -> List[float]:
    """For each of `fns`, the median over `repeats` rounds of the mean time per call in
    microseconds; the rounds of the functions alternate, so that a machine busy with other
    work slows them alike."""
    rounds: List[List[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            n, start = 0, time.perf_counter()
            while True:
                fn(n)
                n += 1
                if n % 8 == 0 and time.perf_counter() - start > seconds / repeats / len(fns):
                    break
            rounds[k].append((time.perf_counter() - start) / n * 1e6)
    return [statistics.median(r) for r in rounds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="measuring time per workload")
    parser.add_argument("--port", type=int, default=26400, help="the local cluster's first port")
    args = parser.parse_args()
    with LocalCluster(replicas=1, base_port=args.port) as cluster:
        cluster.sql("primary", "CREATE TABLE rk_bench (id int8 PRIMARY KEY, name text, amount numeric, "
                               "at timestamptz, doc jsonb, tags int[])")
        cluster.sql("primary", "INSERT INTO rk_bench SELECT k, 'name ' || k, k * 1.25, "
                               "now() - k * interval '1 minute', jsonb_build_object('k', k, 'tags', "
                               "jsonb_build_array(1, 2, 3)), ARRAY[k, k + 1] FROM generate_series(1, 5000) k")
        cluster.wait_caught_up(timeout_ms=10_000)
        direct = psycopg.connect(cluster.dsn("r1"), autocommit=True)
        with database_for_cluster(cluster) as db:
            assert db.wait_probes(2, 5000)
            cases = [("point select (1 row)", POINT.replace("$1", "%s"), POINT, lambda n: [n % 5000 + 1]),
                     ("1000 rows, 6 columns", MANY, MANY, lambda n: None)]
            cpu_costs: List[Any] = []
            both_of = {}
            print(f"{'workload':24} {'psycopg':>9} {'query()':>9} {'.rows':>9} {'both':>9} {'ratio':>7}  (us per call)")
            for name, psql, sql, params in cases:
                check = db.query(sql, params(0), consistency="eventual")
                assert check.node == "r1", check
                base, query, both = per_call_us(
                    [lambda n: direct.execute(psql, params(n)).fetchall(),
                     lambda n: db.query(sql, params(n), consistency="eventual"),
                     lambda n: db.query(sql, params(n), consistency="eventual").rows], args.seconds)
                both_of[name] = both
                print(f"{name:24} {base:>9.1f} {query:>9.1f} {both - query:>9.1f} {both:>9.1f} "
                      f"{base / both:>6.2f}x")
                cpu_costs.append((name, check, params(0)))
            print("\nCPU time of the conversions alone (no I/O; us per call):")
            for name, result, p in cpu_costs:
                if not hasattr(result, "raw_rows"):
                    break  # a build before psycopg's loaders: nothing to measure separately
                from replikit import _pgvalues

                raw, oids, cols = result.raw_rows, result.type_oids, result.columns
                dump, load = per_call_us([lambda n: _pgvalues.dump_params(p) if p else None,
                                          lambda n: _pgvalues.load_rows(oids, cols, raw)], args.seconds / 3)
                print(f"  {name:24} parameters {dump:8.2f}   rows {load:9.2f}   "
                      f"({(dump + load) / both_of[name] * 100:.1f}% of query().rows)")
        direct.close()


if __name__ == "__main__":
    main()
