"""replikit.psycopg.ConnectionRouter against the session's real cluster, when things go wrong:
lost and frozen nodes, server errors and full servers judged as the C++ backend judges them,
the pools' bounds and keywords, bad arguments named. Scenarios change the cluster through
`pg_cluster_reset`, which puts it back afterwards."""

from __future__ import annotations

import time

import pytest

from conftest import wait_until

import replikit

psycopg = pytest.importorskip("psycopg")
pytest.importorskip("psycopg_pool")

from replikit.psycopg import ConnectionRouter, Failure, classify  # noqa: E402
from psycopg_helpers import open_router, primary_count  # noqa: E402
from psycopg_helpers import cluster, tables  # noqa: E402,F401  (fixtures)

pytestmark = pytest.mark.pg


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
