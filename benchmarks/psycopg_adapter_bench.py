#!/usr/bin/env python3
"""One-thread point selects: replikit.psycopg's routers vs psycopg used directly.

Usage (needs the package with its psycopg extra, e.g. from scripts/setup.sh, and Debian's
postgresql-15):

    .venv/bin/python benchmarks/psycopg_adapter_bench.py [--seconds 2] [--runs 5] [--pin]

It starts a primary and two streaming replicas (replikit.testing.LocalCluster), creates a
10,000-row table and then runs `--runs` times `--seconds` per mode of
`SELECT v FROM bench WHERE id = %s` (random id) on one thread against the same replica, r1,
the modes taking turns, in a shuffled order, in 0.1 s slices (the sync modes, then the async
ones, then the writes):

- direct:       one psycopg connection to r1 (autocommit), the baseline;
- adapter:      ConnectionRouter with r1 as its only replica, `with router.read(None,
                consistency="eventual") as conn` around each select (pool lease, routing);
- adapter_ryw:  the same with a read-your-writes session that never wrote (the default level);
- adapter_mono: the same with a monotonic session: every read also records what it saw (one
                more round trip), shown for what it costs;
- async_direct / async_adapter: the same with psycopg.AsyncConnection and
                AsyncConnectionRouter on one event loop;
- write_direct / write_lsn_after / write_adapter: a one-row UPDATE in a transaction on the
                primary with psycopg (no LSN), with psycopg plus a separate
                `SELECT pg_current_wal_insert_lsn()` after the commit, and through
                `router.write(session)`, which sends COMMIT and that SELECT in one pipeline
                (one round trip) and records the LSN into the session.

It prints the median queries/s of each, with this thread's CPU time per query (what the client
library costs, steadier than throughput on a loaded machine), and the ratios adapter / direct
(target >= 0.9) as the ratio of medians, as the median of per-run ratios and as the median
ratio of neighbouring slices (the steadiest on a machine whose load changes), each with the
client CPU per query it adds over its baseline, and the machine's load average. --pin puts
this client on CPU 0 and the cluster on CPU 1 (see pin_servers): steadier on a small machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from typing import Any, Callable, Dict, List

import psycopg

import replikit
from replikit.psycopg import AsyncConnectionRouter, ConnectionRouter
from replikit.testing import LocalCluster
from replikit.testing.processes import node_processes

SQL = "SELECT v FROM bench WHERE id = %s"
ROWS = 10_000


SLICE_S = 0.1  # modes alternate in slices this long, so load from elsewhere hits them alike
SLICES: Dict[str, List[float]] = {}  # queries/s of every slice of every mode, in run order
CPU: Dict[str, List[float]] = {}  # this thread's CPU microseconds per query, per slice


def interleaved(seconds: float, modes: Dict[str, Callable[[int], Any]]) -> Dict[str, float]:
    """Queries per second of each mode, the modes run in turn in SLICE_S slices for `seconds`
    each; every slice's rate is kept in SLICES."""
    rng = random.Random(1)
    done = dict.fromkeys(modes, 0)
    spent = dict.fromkeys(modes, 0.0)
    for _ in range(max(1, round(seconds / SLICE_S))):
        order = list(modes.items())
        rng.shuffle(order)  # no mode always follows the same one
        for name, one in order:
            cpu = time.thread_time()
            start = time.perf_counter()
            end, n = start + SLICE_S, 0
            while True:
                for _ in range(20):
                    one(rng.randrange(1, ROWS + 1))
                n += 20
                now = time.perf_counter()
                if now >= end:
                    break
            done[name] += n
            spent[name] += now - start
            SLICES.setdefault(name, []).append(n / (now - start))
            CPU.setdefault(name, []).append((time.thread_time() - cpu) / n * 1e6)
    return {name: done[name] / spent[name] for name in modes}


async def ainterleaved(seconds: float, modes: Dict[str, Callable[[int], Any]]) -> Dict[str, float]:
    rng = random.Random(1)
    done = dict.fromkeys(modes, 0)
    spent = dict.fromkeys(modes, 0.0)
    for _ in range(max(1, round(seconds / SLICE_S))):
        order = list(modes.items())
        rng.shuffle(order)  # no mode always follows the same one
        for name, one in order:
            cpu = time.thread_time()
            start = time.perf_counter()
            end, n = start + SLICE_S, 0
            while True:
                for _ in range(20):
                    await one(rng.randrange(1, ROWS + 1))
                n += 20
                now = time.perf_counter()
                if now >= end:
                    break
            done[name] += n
            spent[name] += now - start
            SLICES.setdefault(name, []).append(n / (now - start))
            CPU.setdefault(name, []).append((time.thread_time() - cpu) / n * 1e6)
    return {name: done[name] / spent[name] for name in modes}


def sync_modes(cluster: LocalCluster, seconds: float) -> Dict[str, float]:
    with psycopg.connect(cluster.dsn("r1"), autocommit=True) as conn, \
            ConnectionRouter(("primary", cluster.dsn("primary")), [("r1", cluster.dsn("r1"))]) as router:
        router.wait_probes(2, 5000)
        ryw, mono = replikit.Session(), replikit.Session()

        def direct(k: int) -> Any:
            return conn.execute(SQL, (k,)).fetchone()

        def eventual(k: int) -> Any:
            with router.read(None, consistency="eventual") as c:
                return c.execute(SQL, (k,)).fetchone()

        def read_your_writes(k: int) -> Any:
            with router.read(ryw) as c:
                return c.execute(SQL, (k,)).fetchone()

        def monotonic(k: int) -> Any:
            with router.read(mono, consistency="monotonic") as c:
                return c.execute(SQL, (k,)).fetchone()

        out = interleaved(seconds, {"direct": direct, "adapter": eventual, "adapter_ryw": read_your_writes,
                                    "adapter_mono": monotonic})
        assert router.stats()["reads_on_primary"] == 0, router.stats()
    return out


def write_modes(cluster: LocalCluster, seconds: float) -> Dict[str, float]:
    """Single-row updates on the primary: what recording the commit LSN costs."""
    update = "UPDATE bench SET v = v WHERE id = %s"
    with psycopg.connect(cluster.dsn("primary"), autocommit=True) as conn, \
            ConnectionRouter(("primary", cluster.dsn("primary")), []) as router:
        router.wait_probes(2, 5000)
        session = replikit.Session()

        def direct(k: int) -> Any:
            with conn.transaction():
                conn.execute(update, (k,))

        def lsn_after(k: int) -> Any:  # the commit, then the LSN in a round trip of its own
            with conn.transaction():
                conn.execute(update, (k,))
            return conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()

        def adapter(k: int) -> Any:  # COMMIT and the LSN in one pipeline
            with router.write(session) as c:
                c.execute(update, (k,))

        return interleaved(seconds, {"write_direct": direct, "write_lsn_after": lsn_after,
                                     "write_adapter": adapter})


async def async_modes(cluster: LocalCluster, seconds: float) -> Dict[str, float]:
    async with await psycopg.AsyncConnection.connect(cluster.dsn("r1"), autocommit=True) as conn, \
            AsyncConnectionRouter(("primary", cluster.dsn("primary")), [("r1", cluster.dsn("r1"))]) as router:
        await router.wait_probes(2, 5000)

        async def direct(k: int) -> Any:
            return await (await conn.execute(SQL, (k,))).fetchone()

        async def eventual(k: int) -> Any:
            async with router.read(None, consistency="eventual") as c:
                return await (await c.execute(SQL, (k,))).fetchone()

        return await ainterleaved(seconds, {"async_direct": direct, "async_adapter": eventual})


def pin_servers(cluster: LocalCluster) -> None:
    """Every PostgreSQL process of `cluster` on CPU 1 (backends forked later inherit it from
    their postmaster): on a small machine, whether a connection's backend shares the client's
    CPU changes that connection's cost per query several microseconds either way, and the
    scheduler decides it per connection, so a direct and a pooled connection could land apart."""
    for node in cluster.nodes.values():
        for pid in node_processes(node.data_dir, node.pid):
            try:
                os.sched_setaffinity(pid, {1})
            except OSError:
                pass  # exited meanwhile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per mode and run (default 2)")
    parser.add_argument("--runs", type=int, default=5, help="interleaved runs (default 5)")
    parser.add_argument("--pin", action="store_true",
                        help="run this client on CPU 0 and every PostgreSQL process on CPU 1")
    args = parser.parse_args()
    load_before = os.getloadavg()
    if args.pin:
        os.sched_setaffinity(0, {0})  # before any thread starts: they inherit it
    with LocalCluster() as cluster:
        if args.pin:
            pin_servers(cluster)
        cluster.sql("primary", f"CREATE TABLE bench (id int PRIMARY KEY, v text); "
                               f"INSERT INTO bench SELECT g, md5(g::text) FROM generate_series(1, {ROWS}) g")
        cluster.wait_caught_up(timeout_ms=10_000)
        runs: List[Dict[str, float]] = []
        for run in range(args.runs):
            qps = sync_modes(cluster, args.seconds)
            qps.update(asyncio.run(async_modes(cluster, args.seconds)))
            qps.update(write_modes(cluster, args.seconds / 2))
            runs.append(qps)
            print(f"run {run + 1}: " + ", ".join(f"{m} {q:,.0f}" for m, q in qps.items()), flush=True)
    median = {m: statistics.median(r[m] for r in runs) for m in runs[0]}
    # Other work on the machine moves the wall-clock ratios (and, on a 2-core machine, where
    # the scheduler puts the client and its server backend changes a connection's cost): say how busy it was.
    print("\nload average (1, 5, 15 min) before: %.2f %.2f %.2f, after: %.2f %.2f %.2f"
          % (load_before + os.getloadavg()))
    print("\nmedian queries/s (one thread; point selects on r1, updates on the primary):")
    for m, q in median.items():
        print(f"  {m:<14} {q:>9,.0f}   client CPU {statistics.median(CPU[m]):6.1f} us/query")
    for mode, base in (("adapter", "direct"), ("adapter_ryw", "direct"), ("adapter_mono", "direct"),
                       ("async_adapter", "async_direct"), ("write_adapter", "write_direct"),
                       ("write_lsn_after", "write_direct")):
        per_run = statistics.median(r[mode] / r[base] for r in runs)
        # Neighbouring slices ran within a second of each other: the steadiest comparison on a
        # machine whose load changes.
        per_slice = statistics.median(a / b for a, b in zip(SLICES[mode], SLICES[base]))
        target = " (target >= 0.9)" if mode in ("adapter", "adapter_ryw", "async_adapter") else ""
        # The client's own cost of the mode over its baseline, per query (this thread's CPU).
        extra_cpu = statistics.median(CPU[mode]) - statistics.median(CPU[base])
        print(f"{mode + ' / ' + base:<30} = {median[mode] / median[base]:.3f}{target}; "
              f"median per-run ratio {per_run:.3f}, per-slice {per_slice:.3f}; client CPU {extra_cpu:+.1f} us/query")


if __name__ == "__main__":
    main()
