"""Regression tests of the PostgreSQL backend against a real cluster: wrong parameter counts,
NUL characters in SQL and parameters, COPY, and a primary at max_connections."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from conftest import require_pg_server, wait_until

import replikit

pytestmark = pytest.mark.pg

_core = replikit._core
if not getattr(_core, "HAVE_PG", False):  # pragma: no cover - depends on the build
    pytest.skip("replikit was built without the PostgreSQL backend", allow_module_level=True)

from replikit.pg import ReplicatedDatabase, database_for_cluster  # noqa: E402


@pytest.fixture(scope="module")
def tables(pg_cluster):
    pg_cluster.sql("primary", "CREATE TABLE IF NOT EXISTS rk_defects (v text, b bytea)")
    pg_cluster.wait_caught_up(timeout_ms=10_000)
    return pg_cluster


@pytest.fixture
def db(pg_cluster_reset, tables):
    database = database_for_cluster(pg_cluster_reset)
    assert database.wait_probes(2, 5000)
    assert all(n.up and n.reachable for n in database.nodes())
    pg_cluster_reset.sql("primary", "TRUNCATE rk_defects")
    yield database
    database.close()


def all_up(db) -> bool:
    return all(n.up and n.reachable for n in db.nodes())


# ------------------------------------------------------------- wrong parameter count
def test_a_wrong_parameter_count_never_takes_a_node_down(db):
    """The server rejects a parameter count mismatch at Bind (08P01) on a live connection:
    a QueryError, never CommitUnknown, no retry on other nodes, no node marked down, however
    often a buggy caller repeats it."""
    buggy, other = replikit.Session(), replikit.Session()
    for _ in range(50):
        with pytest.raises(replikit.QueryError) as info:
            db.execute("INSERT INTO rk_defects (v) VALUES ($1)", ["a", "b", "c"], buggy)
        assert info.value.sqlstate == "08P01"
        assert not isinstance(info.value, replikit.CommitUnknown)
        with pytest.raises(replikit.QueryError) as info:
            db.query("SELECT $1::text", ["a", "b"], consistency="eventual")
        assert info.value.sqlstate == "08P01"
        with pytest.raises(replikit.QueryError) as info:
            db.transaction([("INSERT INTO rk_defects (v) VALUES ($1)", ["a", "b"])], buggy)
        assert info.value.sqlstate == "08P01"
    stats = db.stats()
    assert stats["nodes_marked_down"] == 0 and stats["read_retries"] == 0, stats
    assert all_up(db), db.nodes()
    assert db.execute("INSERT INTO rk_defects (v) VALUES ($1)", ["ok"], other).rowcount == 1
    assert db.query("SELECT count(*) FROM rk_defects", session=other, consistency="strong").scalar() == 1


# ------------------------------------------------------------------- NUL in strings
def test_a_nul_in_sql_or_a_text_parameter_is_refused_before_sending(db):
    """libpq takes SQL and text parameters as C strings: a NUL would cut them silently."""
    cases = [
        (lambda: db.execute("INSERT INTO rk_defects (v) VALUES ($1)", ["secret-token\x00-suffix"]), "params"),
        (lambda: db.query("SELECT $1::text = 'x'", ["x\x00yz"]), "params"),
        (lambda: db.query("SELECT 1\x00; SELECT 2"), "sql"),
        (lambda: db.execute("INSERT INTO rk_defects (v) VALUES ('a')\x00; DROP TABLE rk_defects"), "sql"),
        (lambda: db.transaction([("INSERT INTO rk_defects (v) VALUES ($1)", ["secret-token\x00-suffix"])]),
         "statements"),
        (lambda: db.transaction(["INSERT INTO rk_defects (v) VALUES ('b')",
                                 "INSERT INTO rk_defects (v) VALUES ('c')\x00x"]), "statements"),
    ]
    for call, argument in cases:
        with pytest.raises(replikit.InvalidArgument) as info:
            call()
        assert info.value.argument == argument, info.value
        assert "NUL" in str(info.value)

    class Hostile:
        def __str__(self):
            return "1\x002"

    # Parameters go through psycopg's dumpers, not str(): an object psycopg cannot send is a
    # type error naming the parameter.
    with pytest.raises(replikit.ArgumentTypeError) as info:
        db.query("SELECT $1::text", [Hostile()])
    assert info.value.argument == "params" and "$1" in str(info.value)
    with pytest.raises(replikit.InvalidArgument) as info:
        db.query("SELECT $2::text[]", [None, ["a", "1\x002"]])
    assert info.value.argument == "params" and "$2" in str(info.value)
    assert db.stats()["writes"] == 0, "a refused call was counted as sent"
    assert db.query("SELECT count(*) FROM rk_defects", consistency="strong").scalar() == 0
    assert all_up(db)


def test_bytes_parameters_carry_every_byte(db):
    payload = bytes(range(256))
    for value in (payload, bytearray(payload), memoryview(payload)):
        assert db.query("SELECT length($1::bytea), $1::bytea = decode($2, 'hex')",
                        [value, payload.hex()], consistency="strong").rows[0] == (256, True)
    s = replikit.Session()
    assert db.execute("INSERT INTO rk_defects (b) VALUES ($1)", [b"a\x00b"], s).rowcount == 1
    assert db.query("SELECT encode(b, 'hex') FROM rk_defects", session=s).scalar() == "610062"


def test_cpp_params_with_a_nul_are_refused_before_connecting():
    """The C++ API itself refuses them (a database whose nodes do not exist: nothing is sent)."""
    nowhere = "host=127.0.0.1 port=1 connect_timeout=2"
    with ReplicatedDatabase(("primary", nowhere), [], probe_interval_ms=60_000) as offline:
        with pytest.raises(replikit.InvalidArgument) as info:
            offline.execute("SELECT $1", ["a\x00"])
        assert info.value.argument == "params"
        with pytest.raises(replikit.InvalidArgument) as info:
            offline.query("SELECT 1\x00")
        assert info.value.argument == "sql"


# ---------------------------------------------------------------------------- COPY
@pytest.mark.parametrize("sql", ["COPY rk_defects (v) FROM STDIN", "COPY rk_defects TO STDOUT",
                                 "COPY (SELECT 1) TO STDOUT"])
def test_copy_is_refused_clearly_and_the_connection_is_not_reused(db, sql):
    s = replikit.Session()
    calls = [lambda: db.execute(sql, session=s), lambda: db.query(sql, session=s, consistency="strong"),
             lambda: db.transaction(["INSERT INTO rk_defects (v) VALUES ('t')", sql], s)]
    for call in calls:
        with pytest.raises(replikit.InvalidArgument, match="COPY is not supported"):
            call()
        # Every pooled connection still answers, and nothing of the transaction committed.
        for _ in range(db.options.pool_size + 1):
            assert db.query("SELECT 7", session=s, consistency="strong").scalar() == 7
        assert db.execute("SELECT 8", session=s).scalar() == 8
    assert db.query("SELECT count(*) FROM rk_defects", session=s, consistency="strong").scalar() == 0
    assert all_up(db) and db.stats()["nodes_marked_down"] == 0


# ------------------------------------------------- a full server and a prober reconnect
def _refused_as_app(cluster, dsn: str) -> bool:
    """Whether a new connection of the non-superuser rk_app is refused (53300)."""
    proc = subprocess.run([os.path.join(cluster.pg_bin_dir, "psql"), "-X", "-d", dsn, "-c", "SELECT 1"],
                          stdin=subprocess.DEVNULL, capture_output=True, env=cluster.client_env(), timeout=20)
    if proc.returncode == 0:
        return False
    assert b"reserved" in proc.stderr or b"too many" in proc.stderr, proc.stderr
    return True


def test_a_full_primary_keeps_serving_writes_after_the_probers_reconnect():
    """The primary full for ordinary roles (the free slots are the superuser's reserve), the
    prober's connection ended: its reconnect is refused with 53300, which is not the node
    being down: the pooled connections keep serving writes, and the node's status shows the
    probe's error."""
    require_pg_server()
    import replikit.testing

    cluster = replikit.testing.LocalCluster(replicas=0, extra_settings={"max_connections": "12"})
    holders = []
    try:
        cluster.sql("primary", "CREATE ROLE rk_app LOGIN; CREATE TABLE rk_full (v int); "
                               "GRANT INSERT, SELECT ON rk_full TO rk_app")
        dsn = cluster.dsn("primary") + " user=rk_app"
        with ReplicatedDatabase(("primary", dsn), [], probe_interval_ms=50, pool_size=2) as db:
            assert db.wait_probes(2, 5000)
            s = replikit.Session()
            db.execute("INSERT INTO rk_full VALUES (0)", session=s)  # one pooled connection
            # Superuser sessions take slots until rk_app is refused.
            while not _refused_as_app(cluster, dsn):
                holders.append(cluster.sql_background("primary", "SELECT pg_sleep(600)"))
                assert len(holders) < 12, "the primary never refused rk_app"
                time.sleep(0.2)
            failed = db.node("primary").probes_failed
            # A superuser ends the prober's backend and keeps its own slot: still full for rk_app.
            holders.append(cluster.sql_background(
                "primary", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE application_name = 'replikit_prober'; SELECT pg_sleep(600)"))
            wait_until(lambda: db.node("primary").probes_failed > failed, 20, "the probe of the ended connection")
            time.sleep(0.5)  # ten probe intervals of reconnects refused
            for v in range(1, 21):
                assert db.execute("INSERT INTO rk_full VALUES ($1)", [v], s).rowcount == 1
            status = db.node("primary")
            assert status.up and status.probes_failed >= failed + 3, status
            assert "53300" in status.last_error, status.last_error
            assert "LOCATION" not in status.last_error, status.last_error
            assert db.stats()["nodes_marked_down"] == 0
            assert db.node("primary").up
            # A backend in pg_sleep does not notice its client going: end them on the server.
            cluster.sql("primary", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                   "WHERE query LIKE '%pg_sleep(600)%' AND pid <> pg_backend_pid()")
            wait_until(lambda: db.node("primary").last_error == "", 20, "a good probe once slots are free")
    finally:
        for p in holders:
            p.kill()
            p.wait()
        cluster.close()


def test_ending_the_probers_connections_marks_no_node_down(db, pg_cluster_reset):
    """The prober replaces a connection the server ended before counting a failed probe: the
    nodes stay up and their idle pooled connections stay open."""
    s = replikit.Session()
    db.execute("INSERT INTO rk_defects (v) VALUES ('x')", session=s)
    open_before = db.node("primary").pool_open
    for name in ("primary", "r1", "r2"):
        pg_cluster_reset.sql(name, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                   "WHERE application_name = 'replikit_prober'")
    deadline = time.monotonic() + 1.0  # ten probe intervals
    while time.monotonic() < deadline:
        assert all_up(db), db.nodes()
        time.sleep(0.002)
    assert db.node("primary").pool_open == open_before
    assert db.stats()["nodes_marked_down"] == 0


# ------------------------------------------------- a pool connect refused by a full server
def test_a_pool_connect_refused_as_full_marks_nothing_down():
    """A new pooled connection refused with 53300 (too many connections) is an overloaded
    server, not a dead one: the node stays up, its idle pooled connections stay open, callers
    wait (within acquire_timeout_ms) for a pooled connection, and with none open they get a
    QueryError with SQLSTATE 53300 at once, never ConnectionError."""
    require_pg_server()
    import replikit.testing
    import threading

    cluster = replikit.testing.LocalCluster(replicas=0, extra_settings={"max_connections": "12"})
    holders = []
    try:
        cluster.sql("primary", "CREATE ROLE rk_app LOGIN; CREATE TABLE rk_full (v int); "
                               "GRANT INSERT, SELECT ON rk_full TO rk_app")
        dsn = cluster.dsn("primary") + " user=rk_app"
        with ReplicatedDatabase(("primary", dsn), [], probe_interval_ms=50, pool_size=4) as db, \
                ReplicatedDatabase(("primary", dsn), [], probe_interval_ms=50) as empty:
            assert db.wait_probes(2, 5000) and empty.wait_probes(2, 5000)
            s = replikit.Session()
            db.execute("INSERT INTO rk_full VALUES (0)", session=s)  # one pooled connection
            while not _refused_as_app(cluster, dsn):
                holders.append(cluster.sql_background("primary", "SELECT pg_sleep(600)"))
                assert len(holders) < 12, "the primary never refused rk_app"
                time.sleep(0.2)
            # Four concurrent writes, one pooled connection: three connects are refused; they
            # wait for the pooled one instead and all succeed.
            errors: list = []

            def write(v: int) -> None:
                try:
                    db.execute("INSERT INTO rk_full SELECT $1 FROM pg_sleep(0.1)", [v], replikit.Session())
                except Exception as exc:  # noqa: BLE001 - recorded and asserted below
                    errors.append(exc)
            threads = [threading.Thread(target=write, args=(v,)) for v in range(1, 5)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert errors == []
            status = db.node("primary")
            assert status.up and status.pool_open == 1, status
            assert db.stats()["nodes_marked_down"] == 0
            assert db.query("SELECT count(*) FROM rk_full", session=s).scalar() == 5
            # A database with no pooled connection yet: the caller gets the refusal, typed.
            for call in (lambda: empty.execute("INSERT INTO rk_full VALUES (9)"),
                         lambda: empty.query("SELECT 1", consistency="strong")):
                with pytest.raises(replikit.QueryError) as info:
                    call()
                assert info.value.sqlstate == "53300", info.value
                assert not isinstance(info.value, replikit.CommitUnknown)
            assert empty.node("primary").up and empty.stats()["nodes_marked_down"] == 0
            cluster.sql("primary", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                   "WHERE query LIKE '%pg_sleep(600)%' AND pid <> pg_backend_pid()")
            wait_until(lambda: _served(empty), 20, "a write once slots are free")
    finally:
        for p in holders:
            p.kill()
            p.wait()
        cluster.close()


def _served(db) -> bool:
    try:
        return db.execute("SELECT 1").scalar() == 1
    except replikit.QueryError:
        return False
