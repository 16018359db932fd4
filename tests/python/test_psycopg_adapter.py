"""replikit.psycopg.ConnectionRouter (psycopg_pool per node, routing core, prober threads)
against the session's real cluster (primary, r1, r2; async streaming). Scenarios change the
cluster through `pg_cluster_reset`, which puts it back afterwards."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from conftest import wait_until

import replikit

psycopg = pytest.importorskip("psycopg")
pytest.importorskip("psycopg_pool")

from psycopg.rows import class_row, dict_row  # noqa: E402

from replikit.psycopg import ConnectionRouter, Failure, classify  # noqa: E402

pytestmark = pytest.mark.pg


@dataclasses.dataclass
class Item:
    id: int
    owner: int
    v: str


@pytest.fixture(scope="module")
def tables(pg_cluster):
    pg_cluster.sql("primary", """
        CREATE TABLE IF NOT EXISTS rk_pa_items (id bigserial PRIMARY KEY, owner int, v text);
        CREATE TABLE IF NOT EXISTS rk_pa_counter (id int PRIMARY KEY, v bigint NOT NULL);
        INSERT INTO rk_pa_counter VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
    """)
    pg_cluster.wait_caught_up(timeout_ms=10_000)
    return pg_cluster


@pytest.fixture
def cluster(pg_cluster_reset, tables):
    return pg_cluster_reset


def open_router(cluster, **kwargs) -> ConnectionRouter:
    replicas = [(name, cluster.dsn(name)) for name in cluster.replica_names]
    router = ConnectionRouter(("primary", cluster.dsn("primary")), replicas, **kwargs)
    assert router.wait_probes(2, 5000), "two probes of every node within 5 s"
    assert all(n["up"] and n["reachable"] for n in router.nodes()), router.nodes()
    return router


def primary_count(cluster, where: str) -> int:
    return int(cluster.sql("primary", f"SELECT count(*) FROM rk_pa_items WHERE {where}")[0][0])


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


def test_pool_exhaustion_is_a_bounded_wait_with_a_typed_error(cluster):
    with open_router(cluster, pool_size=1, acquire_timeout_ms=200.0) as router:
        with router.write(None) as conn:
            conn.execute("SELECT 1")
            started = time.monotonic()
            with pytest.raises(replikit.TimeoutError, match="acquire_timeout_ms") as info:
                with router.write(None):
                    pass
            waited = time.monotonic() - started
        assert isinstance(info.value.__cause__, psycopg.OperationalError)  # psycopg_pool.PoolTimeout
        assert 0.15 <= waited < 2.0, waited
        stats = router.pool_stats()["primary"]
        assert stats["pool_max"] == 1 and stats["requests_errors"] >= 1, stats
        with router.write(None) as conn:  # free again
            conn.execute("SELECT 1")


def test_warm_connections_go_back_to_the_pool_when_reads_stop(cluster):
    """Between reads the router keeps a warm connection per node (pool_stats' router_idle, out
    of the pool's pool_available) instead of a getconn/putconn per read; once reads stop they go
    back to their pool (after CHECK_IDLE_S plus a probe interval), so the pool's stats and its
    max_idle apply again. (A pool with a check callback parks nothing: test_pool_kwargs_...)"""
    with open_router(cluster) as router:
        for _ in range(20):
            with router.read(None, consistency="eventual") as conn:
                conn.execute("SELECT 1")
        stats = router.pool_stats()
        assert sum(s["router_idle"] for s in stats.values()) >= 1, stats
        assert sum(s.get("requests_num", 0) for n, s in stats.items() if n != "primary") <= 4, stats

        def all_back():
            return all(s["router_idle"] == 0 and s["pool_available"] == s["pool_size"]
                       for s in router.pool_stats().values())

        wait_until(all_back, 5, "the warm connections back in their pools")
        with router.read(None, consistency="eventual") as conn:  # and reads go on from the pool
            conn.execute("SELECT 1")


def test_node_loss_marks_the_node_down_and_reads_go_on(cluster):
    with open_router(cluster, probe_interval_ms=50.0) as router:
        for _ in range(4):
            with router.read(None, consistency="eventual") as conn:
                conn.execute("SELECT 1")
        cluster.kill("r1")
        errors, nodes = [], []
        for _ in range(40):
            try:
                with router.read(None, consistency="eventual") as conn:
                    conn.execute("SELECT 1")
                nodes.append(router.last_route.node)
            except psycopg.OperationalError as exc:
                errors.append(exc)
            time.sleep(0.01)
        status = {n["name"]: n for n in router.nodes()}
        print(f"\n[adapter node loss] errors {len(errors)}, nodes {nodes[-10:]}, r1 {status['r1']}")
        assert len(errors) <= 1 and nodes.count("r1") <= 1
        assert set(nodes[-10:]) == {"r2"}
        assert not status["r1"]["up"] and not status["r1"]["reachable"] and status["r1"]["last_error"]
        assert router.stats()["nodes_marked_down"] >= 1
        cluster.start("r1")
        wait_until(lambda: router.core.topology.info("r1").up, 10, "r1 back up after its restart")


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


def test_failures_are_classified_like_the_cpp_backend(cluster):
    """A server error keeps the node up; an exception in write() rolls the transaction back
    and records nothing; a connect refused with 53300 (a role's connection limit: the server
    answers, it is only full) is OVERLOADED and does not mark the node down."""
    with open_router(cluster) as router:
        with router.read(None, consistency="eventual") as conn:
            with pytest.raises(psycopg.errors.DivisionByZero) as info:
                conn.execute("SELECT 1 / 0")
            assert classify(info.value, conn) == Failure.SERVER
        with pytest.raises(psycopg.errors.DivisionByZero):
            with router.read(None, consistency="eventual") as conn:
                conn.execute("SELECT 1 / 0")
        assert router.stats()["nodes_marked_down"] == 0 and router.stats()["read_failures"] == 1
        session = replikit.Session()
        with pytest.raises(RuntimeError):
            with router.write(session) as conn:
                conn.execute("INSERT INTO rk_pa_items (owner, v) VALUES (-3, 'rolled back')")
                raise RuntimeError("the application gives up")
        assert not session.write_lsn.valid() and primary_count(cluster, "owner = -3") == 0
        with router.write(None) as conn:
            conn.execute("INSERT INTO rk_pa_items (owner, v) VALUES (-3, 'kept')")
        assert primary_count(cluster, "owner = -3") == 1
    cluster.sql("primary", "DO $$ BEGIN CREATE ROLE rk_full LOGIN CONNECTION LIMIT 0; "
                           "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    cluster.wait_caught_up(timeout_ms=10_000)
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(cluster.dsn("r2") + " user=rk_full")
    assert classify(info.value, None) == Failure.OVERLOADED
    replicas = [("r1", cluster.dsn("r1")), ("r2", cluster.dsn("r2") + " user=rk_full")]
    with ConnectionRouter(("primary", cluster.dsn("primary")), replicas,
                          pool_kwargs={"min_size": 0}) as router:
        router.wait_probes(3, 5000)
        r2 = {n["name"]: n for n in router.nodes()}["r2"]
        assert r2["up"] and r2["probes_failed"] >= 3 and "full" in r2["last_error"], r2
        assert router.stats()["nodes_marked_down"] == 0


def test_bad_arguments_name_the_argument(cluster):
    primary = ("primary", cluster.dsn("primary"))
    with pytest.raises(replikit.InvalidArgument) as info:
        ConnectionRouter(primary, [], autocommit=False)
    assert info.value.argument == "autocommit"
    with pytest.raises(replikit.InvalidArgument) as info:
        ConnectionRouter(primary, [], pool_kwargs={"conninfo": "x"})
    assert info.value.argument == "pool_kwargs"
    with pytest.raises(replikit.ArgumentTypeError) as info:
        ConnectionRouter(primary, "r1")
    assert info.value.argument == "replicas"
    with pytest.raises(replikit.InvalidArgument) as info:
        ConnectionRouter(primary, [], pool_size=0)
    assert info.value.argument == "pool_size"


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


def test_a_frozen_node_is_marked_down_within_the_probe_bound(cluster):
    """A server that stops answering (SIGSTOP) holds no prober: its probe gives up after
    probe_timeout_ms, the node is marked down, the other nodes go on being probed; it comes
    back after it is thawed."""
    with open_router(cluster, probe_interval_ms=50.0, probe_timeout_ms=300.0) as router:
        cluster.freeze("r2")
        try:
            started = time.monotonic()
            wait_until(lambda: not router.core.topology.info("r2").up, 5, "r2 marked down")
            took = time.monotonic() - started
            before = {n["name"]: n["probes_ok"] for n in router.nodes()}

            def others_probed():
                now = {n["name"]: n["probes_ok"] for n in router.nodes()}
                return now["r1"] >= before["r1"] + 2 and now["primary"] >= before["primary"] + 2

            wait_until(others_probed, 5, "r1 and the primary probed on while r2 is frozen")
            for _ in range(10):
                with router.read(None, consistency="eventual") as conn:
                    conn.execute("SELECT 1")
                assert router.last_route.node == "r1"
        finally:
            cluster.thaw("r2")
        print(f"\n[adapter freeze] r2 marked down after {took * 1000:.0f} ms")
        assert took < 2.0
        wait_until(lambda: router.core.topology.info("r2").up, 10, "r2 up again after the thaw")


def test_a_prober_reconnecting_to_a_frozen_node_holds_no_other_thread(cluster):
    """The prober's connect to a server that stopped answering waits in select(), which
    releases the GIL; libpq's blocking connect held it for the whole connect_timeout (2 s), so
    every other thread of the process, the other probers' and the application's, stood still
    at each attempt (the primary's probe then missed its 300 ms bound and it was marked down)."""
    with open_router(cluster, probe_interval_ms=50.0, probe_timeout_ms=300.0) as router:
        cluster.freeze("r2")
        try:
            wait_until(lambda: not router.core.topology.info("r2").up, 5, "r2 marked down")
            failed = {n["name"]: n["probes_failed"] for n in router.nodes()}["r2"]
            longest, last = 0.0, time.monotonic()
            deadline = last + 10.0
            # until a connect attempt to r2 has failed (connect_timeout 2 s): sleeps of 1 ms
            while ({n["name"]: n["probes_failed"] for n in router.nodes()}["r2"] < failed + 1
                   and time.monotonic() < deadline):
                time.sleep(0.001)
                now = time.monotonic()
                longest, last = max(longest, now - last), now
            attempts = {n["name"]: n["probes_failed"] for n in router.nodes()}["r2"] - failed
        finally:
            cluster.thaw("r2")
        print(f"\n[adapter freeze] longest 1 ms sleep while r2's prober reconnected: {longest * 1000:.0f} ms")
        assert attempts >= 1, "no connect attempt to the frozen r2 ended within 10 s"
        assert longest < 1.0
        wait_until(lambda: router.core.topology.info("r2").up, 10, "r2 up again after the thaw")


def test_a_call_to_a_frozen_node_ends_at_the_client_side_deadline(cluster):
    """A read or a write sent to a server that stopped answering (SIGSTOP) ends after
    statement_timeout_ms + query_grace_ms with replikit.TimeoutError, as the C++ backend's calls
    do: the connection is closed (the pool discards it), the write records nothing, the node is
    not marked down for it (the prober judges a frozen node). The server-side bound is set too."""
    with open_router(cluster, statement_timeout_ms=300.0, query_grace_ms=300.0) as router:
        with router.read(None, consistency="eventual") as conn:
            assert conn.execute("SHOW statement_timeout").fetchone()[0] == "300ms"
        replicas = list(cluster.replica_names)
        for name in replicas:
            cluster.freeze(name)
        try:
            started = time.monotonic()
            with pytest.raises(replikit.TimeoutError, match=r"statement_timeout_ms \+ query_grace_ms") as info:
                with router.read(None, consistency="eventual") as conn:
                    conn.execute("SELECT 1")
            took_read, node = time.monotonic() - started, router.last_route.node
            assert conn.closed
        finally:
            for name in replicas:
                cluster.thaw(name)
        session = replikit.Session()
        cluster.freeze("primary")
        try:
            started = time.monotonic()
            with pytest.raises(replikit.TimeoutError, match="no answer within"):
                with router.write(session) as conn:
                    conn.execute("INSERT INTO rk_pa_items (owner, v) VALUES (-60, 'never')")
            took_write = time.monotonic() - started
        finally:
            cluster.thaw("primary")
        print(f"\n[adapter deadline] read on {node} cut after {took_read * 1000:.0f} ms, "
              f"write after {took_write * 1000:.0f} ms: {info.value}")
        assert node in replicas and f"node '{node}'" in str(info.value)
        assert 0.55 <= took_read < 3.0 and 0.55 <= took_write < 3.0, (took_read, took_write)
        assert not session.write_lsn.valid() and primary_count(cluster, "owner = -60") == 0
        assert router.pool_stats()[node]["returns_bad"] >= 1  # the closed connection was not pooled again
        assert router.stats()["read_failures"] >= 1
        wait_until(lambda: all(n["up"] for n in router.nodes()), 10, "every node up after the thaw")
        with router.write(session) as conn:
            conn.execute("INSERT INTO rk_pa_items (owner, v) VALUES (-61, 'after the thaw')")
        with router.read(session) as conn:
            assert conn.execute("SELECT count(*) FROM rk_pa_items WHERE owner = -61").fetchone()[0] == 1


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


def test_bad_read_arguments_name_the_argument(cluster):
    with open_router(cluster) as router:
        cases = [({"wait_for_replica_ms": "1"}, replikit.ArgumentTypeError, "wait_for_replica_ms"),
                 ({"wait_for_replica_ms": float("nan")}, replikit.InvalidArgument, "wait_for_replica_ms"),
                 ({"wait_for_replica_ms": 1e9}, replikit.InvalidArgument, "wait_for_replica_ms"),
                 ({"consistency": 3}, replikit.ArgumentTypeError, "consistency"),
                 ({"consistency": "bounded_staleness"}, replikit.InvalidArgument, "max_staleness_ms")]
        for kwargs, error, argument in cases:
            with pytest.raises(error) as info:
                with router.read(None, **kwargs):
                    pass
            assert info.value.argument == argument, (kwargs, info.value)
        with pytest.raises(replikit.ArgumentTypeError) as info:  # a token where a Session goes
            with router.read(replikit.Session().token()):
                pass
        assert info.value.argument == "session"
        assert router.stats()["nodes_marked_down"] == 0
        with router.read(None, wait_for_replica_ms=-1.0) as conn:  # negative: the default
            conn.execute("SELECT 1")


def test_pool_kwargs_reach_every_pool(cluster):
    """pool_kwargs go to each node's psycopg_pool.ConnectionPool as psycopg_pool takes them
    (sizes, lifetime, a check on every lease); get_stats() shows them."""
    import psycopg_pool

    checked = []

    def check(conn):
        checked.append(conn)
        psycopg_pool.ConnectionPool.check_connection(conn)

    with open_router(cluster, pool_kwargs={"min_size": 2, "max_size": 3, "max_lifetime": 600.0,
                                           "check": check}) as router:
        for _ in range(4):
            with router.read(None, consistency="eventual") as conn:
                conn.execute("SELECT 1")
        stats = router.pool_stats()
        assert {s["pool_min"] for s in stats.values()} == {2}
        assert {s["pool_max"] for s in stats.values()} == {3}
        assert router.pools["r1"].max_lifetime == 600.0 and len(checked) >= 4
        assert sum(s.get("requests_num", 0) for s in stats.values()) >= 4


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


def test_a_probe_on_a_descriptor_past_select_s_limit(cluster):
    """A process with many files open (a server's sockets, large pools) gets descriptors past
    FD_SETSIZE (1024), which select() refuses (ValueError): every probe failed and each node
    stayed down. The probe waits with poll()."""
    import os
    import resource

    from replikit._core import DatabaseOptions
    from replikit.psycopg import _probe

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the open-files limit ({hard}) stays below select()'s 1024")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = []
    try:
        while len(held) < 1100:
            held.append(os.open(os.devnull, os.O_RDONLY))
        conninfo = _probe.probe_conninfo(cluster.dsn("primary"), DatabaseOptions())
        pgconn, row = _probe.probe_once(None, conninfo, 2.0, 2.0)
        try:
            assert pgconn.socket >= 1024
            assert row[0] is False  # the primary: not in recovery
            pgconn, row = _probe.probe_once(pgconn, conninfo, 2.0, 2.0)  # again on the same connection
            assert row[0] is False
        finally:
            pgconn.finish()
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
