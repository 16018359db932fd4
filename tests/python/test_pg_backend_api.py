"""The C++ PostgreSQL backend (replikit.pg.ReplicatedDatabase) against a real local cluster:
its pooled connections (a statement that leaves a transaction open, a connection the server
closed), its counters (stats() and router.counters(), for its own calls and the psycopg
adapter's), and DatabaseOptions (defaults, keywords, errors, and the stub that shows them).

Scenarios run on the session's LocalCluster through the `pg_cluster_reset` fixture; the
shared setup is in pg_backend_helpers.py.
"""

from __future__ import annotations

import time

import pytest

from conftest import wait_until
from pg_backend_helpers import backend_pid, open_db, primary_count, read_decisions
from pg_backend_helpers import cluster, tables  # noqa: F401  (fixtures)

import replikit
from replikit.pg import PsycopgRouter, ReplicatedDatabase

pytestmark = pytest.mark.pg


# --------------------------------------------------------------------------- pooled connections
def test_a_statement_that_leaves_a_transaction_open_never_reaches_the_pool(cluster):
    """B1: with one pooled connection, an execute() or query() that leaves a transaction
    block open raises InvalidArgument ('sql'), records nothing into the session and is rolled
    back (its connection is closed, not pooled), so the next write really commits and an
    error cannot wedge the connection in an aborted transaction (25P02)."""
    with open_db(cluster, pool_size=1) as db:
        db.execute("CREATE TABLE IF NOT EXISTS rk_b1 (v int)")
        db.execute("TRUNCATE rk_b1")
        session = replikit.Session()
        pid = backend_pid(db)

        with pytest.raises(replikit.InvalidArgument, match="sql: left a transaction open") as info:
            db.execute("BEGIN", session=session)
        assert isinstance(info.value, ValueError)
        assert not session.write_lsn.valid() and session.untracked_write_ns is None
        assert backend_pid(db) != pid  # the connection was closed, not pooled
        w = db.execute("INSERT INTO rk_b1 VALUES (1)", session=session)
        assert w.lsn is not None and session.write_lsn == w.lsn
        assert primary_count(cluster, "v = 1") == 1  # autocommit again: it committed

        before = session.write_lsn
        with pytest.raises(replikit.InvalidArgument, match="left a transaction open"):
            db.execute("BEGIN; INSERT INTO rk_b1 VALUES (2)", session=session)
        assert session.write_lsn == before  # never reported as written
        assert primary_count(cluster, "v = 2") == 0  # rolled back when the connection closed
        with pytest.raises(replikit.InvalidArgument, match="left a transaction open"):
            db.execute("INSERT INTO rk_b1 VALUES (22); BEGIN")  # BEGIN takes the INSERT into its block
        assert primary_count(cluster, "v = 22") == 0

        # query(): the same, and an error inside the open block does not wedge the pool.
        with pytest.raises(replikit.InvalidArgument, match="left a transaction open"):
            db.query("BEGIN", consistency="strong")
        with pytest.raises(replikit.QueryError) as info:
            db.query("BEGIN; SELECT 1/0", consistency="strong")
        assert info.value.sqlstate == "22012"
        assert db.query("SELECT 7", consistency="strong").scalar() == 7  # not 25P02
        with pytest.raises(replikit.QueryError) as info:
            db.execute("BEGIN; INSERT INTO rk_b1 VALUES (3); SELECT 1/0")
        assert info.value.sqlstate == "22012"
        assert db.execute("INSERT INTO rk_b1 VALUES (4)").rowcount == 1
        assert primary_count(cluster, "v IN (3, 4)") == 1 and primary_count(cluster, "v = 4") == 1

        # An autocommit statement that failed leaves the connection idle: it is kept.
        pid = backend_pid(db)
        with pytest.raises(replikit.QueryError):
            db.query("SELECT 1/0", consistency="strong")
        assert backend_pid(db) == pid

        # A complete block in one call is fine (it ends idle).
        db.execute("BEGIN; INSERT INTO rk_b1 VALUES (5); COMMIT", session=session)
        assert primary_count(cluster, "v = 5") == 1 and session.write_lsn > before

        # transaction(): a statement that ends the block itself is refused; nothing after it ran.
        with pytest.raises(replikit.InvalidArgument, match="statements: statement 2 ended the transaction"):
            db.transaction(["INSERT INTO rk_b1 VALUES (6)", "ROLLBACK", "INSERT INTO rk_b1 VALUES (7)"],
                           session=session)
        assert primary_count(cluster, "v IN (6, 7)") == 0
        results = db.transaction(["INSERT INTO rk_b1 VALUES (8)", "INSERT INTO rk_b1 VALUES (9)"],
                                 session=session)
        assert results[1].lsn == session.write_lsn and primary_count(cluster, "v IN (8, 9)") == 2
        assert db.node("primary").pool_open <= 1
        assert db.stats()["nodes_marked_down"] == 0


def test_psycopg_router_discards_a_connection_left_in_a_transaction(cluster):
    """B1 in the psycopg adapter: a read() block that leaves a transaction open hands its
    connection back; it is closed (rolled back), and the next write() commits for real."""
    pytest.importorskip("psycopg")
    with open_db(cluster) as db, PsycopgRouter(db, pool_size=1) as router:
        db.execute("CREATE TABLE IF NOT EXISTS rk_b1 (v int)")
        db.execute("DELETE FROM rk_b1 WHERE v IN (50, 51)")
        with router.read(None, consistency="strong") as leaked:
            leaked.execute("BEGIN")
            leaked.execute("INSERT INTO rk_b1 VALUES (50)")
        assert leaked.closed
        session = replikit.Session()
        with router.write(session) as conn:
            assert conn is not leaked
            conn.execute("INSERT INTO rk_b1 VALUES (51)")
        assert session.write_lsn.valid()
        assert primary_count(cluster, "v = 50") == 0 and primary_count(cluster, "v = 51") == 1
        with router.read(None, consistency="strong") as conn:  # an idle one is pooled and reused
            same = conn
        with router.read(None, consistency="strong") as conn:
            assert conn is same and not conn.closed


def test_a_pooled_connection_the_server_closed_is_not_used(cluster):
    """A pooled connection whose backend ended while it was idle in the pool is discarded on
    acquire and a fresh one is used: on the primary right away (a write sent on it would end
    in CommitUnknown, a read would mark the primary down), on a replica once it was idle for
    1 s or more. Nothing fails, nothing is retried, no node is marked down."""

    def terminate(node: str, pid: int) -> None:
        cluster.sql(node, f"SELECT pg_terminate_backend({pid})")
        wait_until(lambda: not cluster.sql(node, f"SELECT 1 FROM pg_stat_activity WHERE pid = {pid}"), 5,
                   f"backend {pid} on {node} gone")
        time.sleep(0.05)  # its goodbye reached our socket

    with open_db(cluster, pool_size=1) as db:
        pid = backend_pid(db)
        terminate("primary", pid)
        w = db.execute("INSERT INTO rk_items (owner, v) VALUES (-11, 'fresh connection')")
        assert w.node == "primary" and w.lsn.valid()
        pid = backend_pid(db)  # the write's connection, pooled
        terminate("primary", pid)
        r = db.query("SELECT pg_backend_pid()", consistency="strong")
        assert r.node == "primary" and r.attempts == 1 and r.scalar() != pid
        stats = db.stats()
        assert stats["nodes_marked_down"] == 0 and stats["read_retries"] == 0, stats
        assert db.node("primary").up

    with ReplicatedDatabase(("primary", cluster.dsn("primary")), [("r1", cluster.dsn("r1"))],
                            pool_size=1) as db:
        assert db.wait_probes(2, 5000)
        first = db.query("SELECT pg_backend_pid()", consistency="eventual")
        assert first.node == "r1"
        terminate("r1", first.scalar())
        time.sleep(1.1)  # idle for longer than the replica check's threshold
        r = db.query("SELECT pg_backend_pid()", consistency="eventual")
        assert r.node == "r1" and r.attempts == 1 and r.scalar() != first.scalar()
        stats = db.stats()
        assert stats["nodes_marked_down"] == 0 and stats["read_retries"] == 0, stats
        assert db.node("r1").up


# --------------------------------------------------------------------------- counters
def test_a_read_that_waits_for_a_replica_is_counted_once(cluster):
    """The re-routes while a read waits for a replica are not counted: router.counters() and
    stats() count each read once, by the decision it acted on."""
    with open_db(cluster, wait_for_replica_ms=2000.0) as db:
        db.router.reset_counters()
        session = replikit.Session()
        served = []
        for i in range(3):
            db.execute("UPDATE rk_counter SET v = v + 1 WHERE id = 1", session=session)
            served.append(db.query("SELECT v FROM rk_counter WHERE id = 1", session=session,
                                   consistency="read_your_writes").node)
        stats, counters = db.stats(), db.router.counters()
        print(f"\n[counters] served {served}; stats {stats}; router {counters}")
        assert stats["reads"] == 3 and stats["writes"] == 3 and stats["waits"] >= 1
        assert read_decisions(db) == 3
        assert counters["by_reason"]["write"] == 3
        assert stats["reads_on_primary"] + stats["reads_on_replicas"] == 3
        assert counters["by_node"].get("primary", 0) - 3 == stats["reads_on_primary"]
        assert counters["by_node"].get("r1", 0) + counters["by_node"].get("r2", 0) == stats["reads_on_replicas"]
        # Reads sent to the primary are primary reads in both.
        db.query("SELECT 1", consistency="strong")
        assert db.stats()["reads_on_primary"] == stats["reads_on_primary"] + 1
        assert db.router.counters()["by_reason"]["strong_read"] == 1
        # route_read runs and counts nothing.
        db.route_read(None, consistency="eventual")
        assert read_decisions(db) == 4 and db.stats()["reads"] == 4


def test_psycopg_router_traffic_shows_in_stats(cluster):
    pytest.importorskip("psycopg")
    with open_db(cluster) as db, PsycopgRouter(db, pool_size=1) as router:
        db.router.reset_counters()
        session = replikit.Session()
        with router.write(session) as conn:
            conn.execute("UPDATE rk_counter SET v = v + 1 WHERE id = 1")
        with router.read(session, consistency="strong") as conn:
            conn.execute("SELECT 1")
        with router.read(None, consistency=replikit.Consistency.EVENTUAL) as conn:
            conn.execute("SELECT 1")
        assert router.last_route.consistency == replikit.Consistency.EVENTUAL
        with router.read(session, consistency="MONOTONIC") as conn:  # names are case-insensitive
            conn.execute("SELECT 1")
        assert session.read_lsn.valid()  # a monotonic read records what it saw
        stats, counters = db.stats(), db.router.counters()
        assert stats["writes"] == 1 and counters["by_reason"]["write"] == 1
        assert stats["reads"] == 3 and read_decisions(db) == 3
        assert stats["reads_on_primary"] >= 1 and stats["reads_on_replicas"] >= 1
        with pytest.raises(replikit.InvalidArgument, match="consistency"):
            with router.read(None, consistency="sometimes"):
                pass


# --------------------------------------------------------------------------- options
def test_database_options_defaults_keywords_and_errors(cluster):
    from replikit.pg import DatabaseOptions

    o = DatabaseOptions(pool_size=4, max_lag_ms=200)
    assert o.pool_size == 4 and o.max_lag_ms == 200.0 and o.recover_lag_ms is None
    assert DatabaseOptions().probe_interval_ms == 100.0 and "pool_size=4" in repr(o)
    assert o.replace(read_retries=0).read_retries == 0 and o.read_retries == 2
    with pytest.warns(DeprecationWarning, match="max_lag_ms"):
        assert DatabaseOptions(lag_ms_max=300).max_lag_ms == 300.0
    with pytest.raises(replikit.InvalidArgument, match="pool_size"):
        o.pool_size = 0
    with pytest.raises(replikit.ArgumentTypeError, match="pool_size"):
        o.pool_size = "4"
    with pytest.raises(replikit.InvalidArgument, match="recover_lag_ms"):
        DatabaseOptions(max_lag_ms=100, recover_lag_ms=200)
    with pytest.raises(replikit.ArgumentTypeError, match="pool: unexpected keyword argument"):
        DatabaseOptions(pool=1)
    with pytest.raises(replikit.InvalidArgument, match="policy"):
        DatabaseOptions(policy="fastest")
    assert DatabaseOptions(policy="LEAST_OUTSTANDING").policy == replikit.Policy.LEAST_OUTSTANDING

    secret = cluster.dsn("primary") + " password=hunter2"
    replicas = [(name, cluster.dsn(name)) for name in cluster.replica_names]
    with ReplicatedDatabase(("primary", secret), replicas, o, recover_lag_ms=50) as db:
        assert db.options.pool_size == 4 and db.options.recover_lag_ms == 50.0
        assert "hunter2" not in repr(db) and "primary" in repr(db)
        assert db.wait_probes(1, 5000)
        assert "hunter2" not in repr(db.node("primary")) and "hunter2" not in repr(db.stats())
        assert repr(db.route_read(None, consistency="strong")).startswith("Route(node='primary'")
        result = db.query("SELECT 1 AS one", consistency="strong")
        assert repr(result).startswith("Result(rows=1, columns=['one']")
        for kwargs, error, argument in [
            (dict(max_staleness_ms="x"), replikit.ArgumentTypeError, "max_staleness_ms"),
            (dict(region=5), replikit.ArgumentTypeError, "region"),
            (dict(wait_for_replica_ms=[1]), replikit.ArgumentTypeError, "wait_for_replica_ms"),
            (dict(consistency=3.5), replikit.ArgumentTypeError, "consistency"),
        ]:
            with pytest.raises(error, match=argument):
                db.query("SELECT 1", **kwargs)
    for node, error, argument in [
        (dict(name=5, dsn=secret), replikit.ArgumentTypeError, "name"),
        (dict(name="p", dsn=secret, priority=2**40), replikit.InvalidArgument, "priority"),
        (dict(name="p", dsn=secret, weight="heavy"), replikit.ArgumentTypeError, "weight"),
    ]:
        with pytest.raises(error, match=argument):
            ReplicatedDatabase(node, [])
    with pytest.raises(replikit.ArgumentTypeError, match="options"):
        ReplicatedDatabase(("primary", secret), [], {"pool_size": 1})


def test_the_stub_shows_the_database_options_defaults_of_the_cpp_struct():
    """_core.pyi's DatabaseOptions signature documents the defaults of pg::DatabaseOptions{}
    (the one place they are defined): they must not drift apart."""
    import ast
    from pathlib import Path

    from replikit.pg import DatabaseOptions

    stub = ast.parse((Path(replikit.__file__).parent / "_core.pyi").read_text())
    cls = next(n for n in stub.body if isinstance(n, ast.ClassDef) and n.name == "DatabaseOptions")
    init = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    defaults = DatabaseOptions()
    checked = 0
    for arg, default in zip(init.args.kwonlyargs, init.args.kw_defaults):
        if isinstance(default, ast.Constant) and default.value is not Ellipsis:
            assert getattr(defaults, arg.arg) == default.value, arg.arg
            checked += 1
    assert checked >= 18
    assert defaults.policy == replikit.Policy.ROUND_ROBIN


def test_psycopg_router_last_route_is_each_thread_s_own(cluster):
    """Two threads share one PsycopgRouter, one reading STRONG (the primary), one EVENTUAL (a
    replica); both read before either looks: each sees its own read's route, never the other's."""
    pytest.importorskip("psycopg")
    import threading

    with open_db(cluster) as db, PsycopgRouter(db, pool_size=2) as router:
        both = threading.Barrier(2, timeout=10)
        seen: dict = {"strong": [], "eventual": [], "before": []}

        def reader(level: str) -> None:
            seen["before"].append(router.last_route)  # this thread has not read yet
            for _ in range(5):
                with router.read(None, consistency=level) as conn:
                    conn.execute("SELECT 1")
                both.wait()  # both threads have read
                seen[level].append(router.last_route.node)
                both.wait()  # both have looked

        threads = [threading.Thread(target=reader, args=(level,)) for level in ("strong", "eventual")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads)
        assert seen["before"] == [None, None]
        assert seen["strong"] == ["primary"] * 5
        assert len(seen["eventual"]) == 5 and "primary" not in seen["eventual"], seen
        assert router.last_route is None  # the main thread never read
