"""replikit.psycopg.ConnectionRouter (psycopg_pool per node, routing core, prober threads)
against the session's real cluster (primary, r1, r2; async streaming): where reads and writes
go, what sessions record, the routing decision each caller sees. Scenarios change the cluster
through `pg_cluster_reset`, which puts it back afterwards. Failures, bounds and bad input:
test_psycopg_adapter_failures.py; the probers: test_psycopg_probe.py."""

from __future__ import annotations

import threading
import time

import pytest

from conftest import wait_until

import replikit

psycopg = pytest.importorskip("psycopg")
pytest.importorskip("psycopg_pool")

from psycopg.rows import class_row, dict_row  # noqa: E402

from psycopg_helpers import Item, open_router, primary_count  # noqa: E402
from psycopg_helpers import cluster, tables  # noqa: E402,F401  (fixtures)

pytestmark = pytest.mark.pg


def test_read_your_writes_with_a_paused_replica(cluster):
    """With r1's replay paused, every read after a write sees it: served by r2 once a probe shows
    r2 caught up, or by the primary; never by r1. Rows are dicts (dict_row)."""
    with open_router(cluster, row_factory=dict_row) as router:
        cluster.pause_replay("r1")
        stale = by_replica = 0
        for k in range(40):
            session = replikit.Session()
            with router.write(session) as conn:
                row = conn.execute("INSERT INTO rk_pa_items (owner, v) VALUES (%s, %s) RETURNING id",
                                   (-1, f"ryw {k}")).fetchone()
            assert session.write_lsn.valid()
            with router.read(session, wait_for_replica_ms=300) as conn:
                rows = conn.execute("SELECT v FROM rk_pa_items WHERE id = %s", (row["id"],)).fetchall()
            stale += rows != [{"v": f"ryw {k}"}]
            by_replica += router.last_route.node != "primary"
            assert router.last_route.node != "r1"
        stats = router.stats()
        print(f"\n[adapter ryw] 40 pairs: stale {stale}, by replicas {by_replica}/40, {stats}")
        assert stale == 0
        assert by_replica > 0 and stats["waits_served_by_replica"] > 0
        assert stats["writes"] == 40 and stats["reads"] == 40


def test_dict_row_and_class_row(cluster):
    """Any row_factory works: with dict_row a committed write is recorded once (no KeyError 0,
    so no retried insert), and class_row cursors read into a dataclass."""
    with open_router(cluster, row_factory=dict_row) as router:
        session = replikit.Session()
        with router.write(session) as conn:
            conn.execute("INSERT INTO rk_pa_items (owner, v) VALUES (-2, 'dict row')")
        assert session.write_lsn.valid()
        assert primary_count(cluster, "owner = -2") == 1
        with router.read(session, wait_for_replica_ms=500) as conn:
            cur = conn.cursor(row_factory=class_row(Item))
            items = cur.execute("SELECT id, owner, v FROM rk_pa_items WHERE owner = -2").fetchall()
        assert [(type(i), i.v) for i in items] == [(Item, "dict row")]
        with router.read(session, consistency="monotonic") as conn:
            assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}
        assert session.read_lsn.valid()
    # A cursor class passes through too (client-side binding).
    with open_router(cluster, cursor_factory=psycopg.ClientCursor) as router:
        with router.read(None, consistency="strong") as conn:
            cur = conn.cursor()
            assert isinstance(cur, psycopg.ClientCursor)
            assert cur.execute("SELECT %s::int", (7,)).fetchone() == (7,)


def test_monotonic_across_a_killed_replica(cluster):
    """A monotonic session reading a counter that a writer keeps increasing never sees it go
    back, also after the replica it reads from is killed while r2 is 800 ms behind. A read in
    flight on the killed replica may fail (the block's own statement: it is not retried); the
    node is marked down and later reads go elsewhere."""
    with open_router(cluster, probe_interval_ms=50.0) as router:
        cluster.set_apply_delay("r2", 800)
        stop = threading.Event()

        def writer():
            w = replikit.Session()
            while not stop.is_set():
                with router.write(w) as conn:
                    conn.execute("UPDATE rk_pa_counter SET v = v + 1 WHERE id = 1")
                stop.wait(0.005)

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        session = replikit.Session()
        seen, failures, killed, kill_index = [], [], None, None
        started = time.monotonic()
        try:
            time.sleep(0.5)
            while time.monotonic() - started < 3.0:
                try:
                    with router.read(session, consistency="monotonic", wait_for_replica_ms=50) as conn:
                        v = conn.execute("SELECT v FROM rk_pa_counter WHERE id = 1").fetchone()[0]
                    seen.append((router.last_route.node, v))
                except (psycopg.OperationalError, replikit.Error) as exc:
                    failures.append(exc)
                if killed is None and time.monotonic() - started > 1.5 and seen:
                    killed = seen[-1][0] if seen[-1][0] != "primary" else "r1"
                    kill_index = len(seen)
                    cluster.kill(killed)
        finally:
            stop.set()
            t.join(10)
        values = [v for _, v in seen]
        backwards = sum(1 for a, b in zip(values, values[1:]) if b < a)
        after = {n: sum(1 for x, _ in seen[kill_index:] if x == n) for n in ("primary", "r1", "r2")}
        print(f"\n[adapter monotonic] {len(seen)} reads, killed {killed}, after {after}, "
              f"failures {len(failures)}, backwards {backwards}, {router.stats()}")
        assert backwards == 0
        assert killed in ("r1", "r2") and len(seen) - kill_index > 5
        assert len(failures) <= 1, failures
        assert after[killed] == 0
        wait_until(lambda: not router.core.topology.info(killed).up, 5, f"{killed} marked down")


def test_stats_and_reasons_read_as_the_core_counts_them(cluster):
    with open_router(cluster) as router:
        session = replikit.Session()
        with router.write(session) as conn:
            conn.execute("UPDATE rk_pa_counter SET v = v + 1 WHERE id = 1")
        with router.read(session, consistency="strong") as conn:
            conn.execute("SELECT 1")
        with router.read(None, consistency=replikit.Consistency.EVENTUAL) as conn:
            conn.execute("SELECT 1")
        with router.read(session, consistency="MONOTONIC") as conn:
            conn.execute("SELECT 1")
        counters, stats = router.core.router.counters(), router.stats()
        assert counters["by_reason"]["write"] == 1 and counters["by_reason"]["strong_read"] == 1
        assert counters["total"] == 4 and stats["reads"] == 3 and stats["writes"] == 1
        if replikit.HAVE_PG:  # the same names as the C++ backend's DatabaseStats
            from replikit.pg import database_for_cluster

            with database_for_cluster(cluster, probe_interval_ms=60_000.0) as db:
                assert set(stats) <= set(db.stats().as_dict())
        assert stats["reads_on_primary"] >= 1 and stats["reads_on_replicas"] >= 1
        assert set(router.pool_stats()) == {"primary", "r1", "r2"}
        with pytest.raises(replikit.InvalidArgument, match="consistency") as info:
            with router.read(None, consistency="sometimes"):
                pass
        assert info.value.argument == "consistency"


def test_bounded_staleness_reads_are_judged_on_the_trackers_clock(cluster):
    # The first read of a node takes the general path, later ones the parked connection's fast
    # path: both must compare the bound with the LagTracker's (monotonic) clock.
    with open_router(cluster) as router:
        nodes = []
        for _ in range(20):
            with router.read(None, consistency="bounded_staleness", max_staleness_ms=60_000.0) as conn:
                conn.execute("SELECT 1")
            nodes.append(router.last_route.node)
        assert all(n != "primary" for n in nodes), nodes
        with router.read(None, consistency="bounded_staleness", max_staleness_ms=0.0) as conn:
            conn.execute("SELECT 1")
        assert router.last_route.node == "primary"


def test_reads_spread_over_the_replicas_and_the_fast_path_serves_them(cluster):
    # Routing once per read: a read the fast path could not serve (nothing parked yet) acts on the
    # fast path's decision; routing it again would move the round-robin cursor twice and pin
    # every read to one replica.
    with open_router(cluster) as router:
        nodes = []
        for _ in range(60):
            with router.read(None, consistency="eventual") as conn:
                conn.execute("SELECT 1")
            nodes.append(router.last_route.node)
        shares = {n: nodes.count(n) / len(nodes) for n in cluster.replica_names}
        assert all(share >= 0.3 for share in shares.values()), (shares, nodes)


def test_write_records_the_commit_lsn_in_one_round_trip(cluster):
    """The LSN recorded after COMMIT covers the commit (a replica that replayed it shows the
    row), also when the block committed by itself; a COMMIT the server refuses (a deferred
    constraint) raises the server's error, commits nothing and records nothing."""
    cluster.sql("primary", "CREATE TABLE IF NOT EXISTS rk_pa_deferred (id int PRIMARY KEY "
                           "DEFERRABLE INITIALLY DEFERRED)")
    with open_router(cluster) as router:
        session = replikit.Session()
        with router.write(session) as conn:
            conn.execute("INSERT INTO rk_pa_items (owner, v) VALUES (-4, 'lsn')")
        insert_lsn = replikit.Lsn(cluster.sql("primary", "SELECT pg_current_wal_insert_lsn()")[0][0])
        assert session.write_lsn.valid() and session.write_lsn <= insert_lsn
        wait_until(lambda: replikit.Lsn(cluster.sql("r1", "SELECT pg_last_wal_replay_lsn()")[0][0])
                   >= session.write_lsn, 5, "r1 replayed the write")
        assert cluster.sql("r1", "SELECT count(*) FROM rk_pa_items WHERE owner = -4")[0][0] == "1"
        by_itself = replikit.Session()
        with router.write(by_itself) as conn:
            conn.execute("INSERT INTO rk_pa_items (owner, v) VALUES (-5, 'committed in the block')")
            conn.execute("COMMIT")
        assert by_itself.write_lsn > session.write_lsn and primary_count(cluster, "owner = -5") == 1
        refused = replikit.Session()
        with pytest.raises(psycopg.errors.UniqueViolation):
            with router.write(refused) as conn:
                conn.execute("INSERT INTO rk_pa_deferred VALUES (1), (1)")
        assert not refused.write_lsn.valid()
        assert cluster.sql("primary", "SELECT count(*) FROM rk_pa_deferred")[0][0] == "0"
        assert router.stats()["nodes_marked_down"] == 0
        with router.write(None) as conn:  # the connection went back clean
            conn.execute("SELECT 1")


def test_the_older_psycopg_router_works_with_dict_row(cluster):
    """replikit.pg.PsycopgRouter (over a ReplicatedDatabase) with row_factory=dict_row: a
    committed write is recorded, not answered with KeyError 0 (which made applications retry
    the insert)."""
    if not replikit.HAVE_PG:
        pytest.skip("replikit was built without the PostgreSQL backend")
    from replikit.pg import PsycopgRouter, database_for_cluster

    with database_for_cluster(cluster) as db, PsycopgRouter(db, row_factory=dict_row) as router:
        session = replikit.Session()
        with router.write(session) as conn:
            conn.execute("INSERT INTO rk_pa_items (owner, v) VALUES (-6, 'old router')")
        assert session.write_lsn.valid() and primary_count(cluster, "owner = -6") == 1
        with router.read(session, consistency="monotonic") as conn:
            assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}
        assert session.read_lsn.valid()


def test_concurrent_threads_read_at_their_own_level(cluster):
    """Two threads on one router, replicas paused: one writes with its session and reads the row
    back at read-your-writes while the other holds an eventual read open across that read. No
    per-caller state in the router: the first is served by the primary and sees its row, the
    second by a replica."""
    router = open_router(cluster)
    try:
        for name in cluster.replica_names:
            cluster.pause_replay(name)
        b_in, a_read = threading.Event(), threading.Event()
        out = {}

        def task_a():
            session = replikit.Session()
            with router.write(session) as conn:
                [(new_id,)] = conn.execute("INSERT INTO rk_pa_items (owner, v) VALUES (7, 'a') RETURNING id").fetchall()
            assert b_in.wait(20)
            with router.read(session) as conn:
                out["a"] = conn.execute("SELECT pg_is_in_recovery(), count(*) FROM rk_pa_items WHERE id = %s",
                                        (new_id,)).fetchone()
            a_read.set()

        def task_b():
            with router.read(replikit.Session(), consistency="eventual") as conn:
                b_in.set()
                assert a_read.wait(20)
                out["b"] = conn.execute("SELECT pg_is_in_recovery()").fetchone()

        threads = [threading.Thread(target=f) for f in (task_a, task_b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        router.close()
    assert out == {"a": (False, 1), "b": (True,)}


class Turns:
    """Steps 0, 1, 2, ... taken in order, each by the thread that owns it."""

    def __init__(self) -> None:
        self.step = 0
        self.cond = threading.Condition()

    def take(self, step: int) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: self.step >= step, 20), f"step {step} never came"

    def done(self) -> None:
        with self.cond:
            self.step += 1
            self.cond.notify_all()


def test_each_thread_sees_its_own_last_route(cluster):
    """last_route is the calling thread's. Two threads on one router take turns (the order
    alternating by round), each writing and then reading: one at strong (the primary, through
    the Python lease), one at eventual (a replica, through the core's fast path once a connection
    is warm). After both have read, each still sees its own route; a thread that has not read
    sees None, and the thread that made the router keeps its own. (It was the router's: any
    caller's latest, so each saw the other's.)"""
    rounds = 6
    router = open_router(cluster)
    try:
        with router.read(None, consistency="bounded_staleness", max_staleness_ms=60_000.0) as conn:
            conn.execute("SELECT 1")
        main_route = router.last_route
        assert main_route.reason == replikit.Reason.REPLICA_FRESH, main_route
        turns, seen, errors = Turns(), {"a": [], "b": []}, []

        def run(name: str, owner: int, consistency: str) -> None:
            try:
                seen[name].append(router.last_route)  # before its first read
                session = replikit.Session()
                for r in range(rounds):
                    turns.take(2 * r + (0 if (r % 2 == 0) == (name == "a") else 1))
                    with router.write(session) as conn:
                        conn.execute("INSERT INTO rk_pa_items (owner, v) VALUES (%s, 'turn')", (owner,))
                    with router.read(session, consistency=consistency) as conn:
                        conn.execute("SELECT 1")
                    turns.done()
                    turns.take(2 * r + 2)  # the other one has read too
                    seen[name].append(router.last_route)
            except BaseException as exc:  # reported below; the other thread times out on its turn
                errors.append(exc)

        threads = [threading.Thread(target=run, args=("a", -70, "strong")),
                   threading.Thread(target=run, args=("b", -71, "eventual"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        assert seen["a"][0] is None and seen["b"][0] is None, seen
        a = [(d.node, d.reason) for d in seen["a"][1:]]
        b = [(d.node, d.reason) for d in seen["b"][1:]]
        assert a == [("primary", replikit.Reason.STRONG_READ)] * rounds, a
        assert all(node in cluster.replica_names and reason == replikit.Reason.REPLICA_AVAILABLE
                   for node, reason in b) and len(b) == rounds, b
        assert router.last_route.reason == replikit.Reason.REPLICA_FRESH, router.last_route
        assert primary_count(cluster, "owner IN (-70, -71)") == 2 * rounds
    finally:
        router.close()
