#!/usr/bin/env python3
"""One-thread ORM point selects and one-row updates: replikit.sqlalchemy's routed sessions vs
plain SQLAlchemy sessions on the same engines.

Usage (needs the package with its sqlalchemy extra, e.g. from scripts/setup.sh, and Debian's
postgresql-15):

    .venv/bin/python benchmarks/sqlalchemy_bench.py [--seconds 2] [--runs 3]

It starts a primary and two streaming replicas (replikit.testing.LocalCluster), creates a
10,000-row table, then runs `--runs` times `--seconds` per mode, the modes taking turns in
0.1 s slices in a shuffled order, one session per operation (as a web request has):

- plain_read:   `Session(bind=<r1's engine>)`, `session.execute(select(...)).scalar_one()`;
- routed_read:  a RoutedSession over RoutedEngines with r1 as the only replica, read-your-writes
                with a session that never wrote (classification, routing, counters);
- plain_write:  `Session(bind=<the primary's engine>)`, an ORM UPDATE and commit (no LSN);
- plain_write_lsn: the same plus `SELECT pg_current_wal_insert_lsn()` after the commit (what
                a hand-written router does to learn the LSN: one more round trip);
- routed_write: the same through a RoutedSession, whose commit reads the LSN on the commit's
                own round trip and records it.

It prints the median operations/s of each and the ratios routed / plain (the median ratio of
neighbouring slices, steady on a machine whose load changes).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import Any, Callable, Dict, List

from sqlalchemy import Integer, String, create_engine, select, text, update
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column

from replikit.sqlalchemy import RoutedEngines, routed_sessionmaker
from replikit.testing import LocalCluster

ROWS = 10_000
SLICE_S = 0.1


class Base(DeclarativeBase):
    pass


class Bench(Base):
    __tablename__ = "bench"
    id = mapped_column(Integer, primary_key=True)
    v = mapped_column(String)


def interleaved(seconds: float, modes: Dict[str, Callable[[int], Any]],
                slices: Dict[str, List[float]]) -> None:
    names = list(modes)
    deadline = time.monotonic() + seconds * len(names)
    while time.monotonic() < deadline:
        random.shuffle(names)
        for name in names:
            op, count, start = modes[name], 0, time.perf_counter()
            end = start + SLICE_S
            while True:
                op(random.randrange(1, ROWS + 1))
                count += 1
                if time.perf_counter() >= end:
                    break
            slices.setdefault(name, []).append(count / (time.perf_counter() - start))


def neighbour_ratio(slices: Dict[str, List[float]], a: str, b: str) -> float:
    return statistics.median(x / y for x, y in zip(slices[a], slices[b]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with LocalCluster() as cluster:
        cluster.sql("primary", f"CREATE TABLE bench (id int PRIMARY KEY, v text); "
                               f"INSERT INTO bench SELECT g, 'v' || g FROM generate_series(1, {ROWS}) g")
        cluster.wait_caught_up(timeout_ms=30_000)
        with RoutedEngines(("primary", cluster.dsn("primary")), [("r1", cluster.dsn("r1"))]) as engines:
            assert engines.wait_probes(2, 5000)
            Routed = routed_sessionmaker(engines)
            # The same engines as RoutedEngines makes: psycopg, QueuePool, autocommit on the replica.
            replica = create_engine(f"postgresql+psycopg://postgres@{cluster.host}:{cluster.node('r1').port}/postgres",
                                    isolation_level="AUTOCOMMIT")
            primary = create_engine(f"postgresql+psycopg://postgres@{cluster.host}:{cluster.node('primary').port}"
                                    "/postgres")

            def plain_read(k: int) -> Any:
                with Session(replica) as s:
                    return s.execute(select(Bench.v).where(Bench.id == k)).scalar_one()

            def routed_read(k: int) -> Any:
                with Routed() as s:
                    return s.execute(select(Bench.v).where(Bench.id == k)).scalar_one()

            def plain_write(k: int) -> None:
                with Session(primary) as s:
                    s.execute(update(Bench).where(Bench.id == k).values(v="w"))
                    s.commit()

            def plain_write_lsn(k: int) -> None:
                with Session(primary) as s:
                    s.execute(update(Bench).where(Bench.id == k).values(v="w"))
                    s.commit()
                    s.execute(text("SELECT pg_current_wal_insert_lsn()")).scalar_one()
                    s.commit()

            def routed_write(k: int) -> None:
                with Routed() as s:
                    s.execute(update(Bench).where(Bench.id == k).values(v="w"))
                    s.commit()
                    assert s.replikit_session.write_lsn.valid()

            modes = {"plain_read": plain_read, "routed_read": routed_read, "plain_write": plain_write,
                     "plain_write_lsn": plain_write_lsn, "routed_write": routed_write}
            for op in modes.values():  # warm the pools and statement caches
                for k in range(1, 50):
                    op(k)
            slices: Dict[str, List[float]] = {}
            for _ in range(args.runs):
                interleaved(args.seconds, modes, slices)
            routed_on_r1 = engines.stats()
            for name in modes:
                print(f"{name:16s} {statistics.median(slices[name]):8.0f} ops/s")
            print(f"routed_read / plain_read:       {neighbour_ratio(slices, 'routed_read', 'plain_read'):.2f}")
            print(f"routed_write / plain_write:     {neighbour_ratio(slices, 'routed_write', 'plain_write'):.2f}")
            print(f"routed_write / plain_write_lsn: {neighbour_ratio(slices, 'routed_write', 'plain_write_lsn'):.2f}")
            print(f"routed stats: {routed_on_r1}")
            replica.dispose()
            primary.dispose()


if __name__ == "__main__":
    main()
