"""The C++ PostgreSQL backend (replikit.pg.ReplicatedDatabase) against a real local cluster:
faults. A killed replica, bad DSNs, refused connections and SQL errors, calls that must not
hang (timeouts, the watchdog, pool exhaustion, close()), nodes in the wrong role, and
connections lost or misused, each ending in bounded time with a typed error.

Scenarios run on the session's LocalCluster through the `pg_cluster_reset` fixture (killed
nodes are started again afterwards); the shared setup is in pg_backend_helpers.py.
"""

from __future__ import annotations

import threading
import time

import pytest

from conftest import wait_until
from pg_backend_helpers import backend_pid, open_db
from pg_backend_helpers import cluster, tables  # noqa: F401  (fixtures)

import replikit
from replikit.pg import ReplicatedDatabase, database_for_cluster

pytestmark = pytest.mark.pg


# --------------------------------------------------------------------------- faults
def test_replica_killed_mid_workload_costs_no_read(cluster):
    only_r1 = ReplicatedDatabase(("primary", cluster.dsn("primary")), [("r1", cluster.dsn("r1"))])
    with open_db(cluster, read_retries=2) as db, only_r1:
        assert only_r1.wait_probes(2, 5000)
        stop = threading.Event()
        counts = {"reads": 0, "failures": 0}
        served = {}
        lock = threading.Lock()

        def reader(owner: int):
            session = replikit.Session()
            k = 0
            while not stop.is_set():
                k += 1
                try:
                    if k % 5 == 0:
                        db.execute("INSERT INTO rk_items (owner, v) VALUES ($1, 'kill')", [owner],
                                   session=session)
                    # pg_sleep keeps reads in flight on r1 when it is killed.
                    r = db.query("SELECT count(*) FROM rk_items, pg_sleep(0.01) WHERE owner = $1",
                                 [owner], session=session,
                                 consistency="eventual" if k % 2 else "read_your_writes")
                    with lock:
                        counts["reads"] += 1
                        served[r.node] = served.get(r.node, 0) + 1
                except replikit.Error as exc:
                    with lock:
                        counts["failures"] += 1
                        counts.setdefault("errors", []).append(repr(exc))

        # A read that is certainly running on r1 when it dies: its only replica is r1.
        in_flight = {}

        def long_read():
            try:
                in_flight["result"] = only_r1.query("SELECT pg_sleep(0.6), 1", consistency="eventual")
            except replikit.Error as exc:  # pragma: no cover - reported by the assertion
                in_flight["error"] = exc

        threads = [threading.Thread(target=reader, args=(100 + i,)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        long_reader = threading.Thread(target=long_read)
        long_reader.start()
        wait_until(lambda: only_r1.node("r1").pool_open == 1 and only_r1.node("r1").pool_idle == 0, 5,
                   "the long read running on r1")
        time.sleep(0.1)
        killed_at = time.monotonic()
        cluster.kill("r1")
        time.sleep(1.3)
        long_reader.join(10)
        stop.set()
        for t in threads:
            t.join(10)
        status = db.node("r1")
        stats = db.stats()
        print(f"\n[kill] {counts['reads']} reads, {counts['failures']} failed, served {served}; "
              f"retries {stats['read_retries']}; r1 up={status.up} last error: {status.last_error!r}")
        assert counts["failures"] == 0, counts.get("errors", [])[:3]
        # The read in flight on r1 was retried on the primary (its only other node).
        long = in_flight.get("result")
        assert long is not None, in_flight
        assert long.node == "primary" and long.attempts == 2 and long.rows == [("", 1)]
        assert only_r1.stats()["read_retries"] == 1
        assert not status.up and not status.reachable and status.probes_failed > 0
        # Back after a restart: the prober marks it up and reads reach it again.
        cluster.start("r1")
        wait_until(lambda: db.node("r1").up and not db.node("r1").lagging, 10, "r1 up and caught up")
        print(f"[kill] r1 routable again {time.monotonic() - killed_at:.2f} s after the kill")
        nodes = {db.query("SELECT 1", consistency="eventual").node for _ in range(20)}
        assert "r1" in nodes


def test_bad_dsn_refused_connection_and_sql_errors_are_typed(cluster):
    with pytest.raises(replikit.ConnectionError, match='missing "=" after "bogus"'):
        ReplicatedDatabase(("primary", "host=127.0.0.1 bogus"))
    with pytest.raises(replikit.ConnectionError, match='invalid connection option "nosuchoption"'):
        ReplicatedDatabase(("primary", "nosuchoption=1"), [("r1", cluster.dsn("r1"))])

    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    with ReplicatedDatabase(("primary", f"host=127.0.0.1 port={free_port} user=postgres")) as dead:
        started = time.monotonic()
        with pytest.raises(replikit.ConnectionError, match="(?i)refused"):
            dead.execute("SELECT 1")
        with pytest.raises(replikit.ConnectionError):
            dead.query("SELECT 1", consistency="strong")
        assert time.monotonic() - started < 3
        assert dead.wait_probes(1, 3000)
        assert "refused" in dead.node("primary").last_error.lower()
        assert not dead.node("primary").up

    with open_db(cluster) as db:
        cases = [
            ("SELECT * FROM rk_nope", "42P01", 'relation "rk_nope" does not exist'),
            ("SELECT 1/0", "22012", "division by zero"),
            ("SELEC 1", "42601", "syntax error"),
        ]
        for sql, sqlstate, message in cases:
            with pytest.raises(replikit.QueryError, match=message) as info:
                db.query(sql, consistency="eventual")
            assert info.value.sqlstate == sqlstate
        session = replikit.Session()
        w = db.execute("INSERT INTO rk_items (owner, v) VALUES (-9, 'dup') RETURNING id", session=session)
        with pytest.raises(replikit.QueryError, match="duplicate key") as info:
            db.execute("INSERT INTO rk_items (id, owner) VALUES ($1, -9)", [w.rows[0][0]], session=session)
        assert info.value.sqlstate == "23505"
        with pytest.raises(replikit.QueryError) as info:
            db.transaction(["INSERT INTO rk_items (owner) VALUES (-9)", "SELECT 1/0"], session=session)
        assert info.value.sqlstate == "22012"
        # The connections stay usable after server-side errors.
        assert db.query("SELECT 7", consistency="strong").scalar() == 7
        assert db.stats()["nodes_marked_down"] == 0

        # Bad input: typed errors naming the argument (InvalidArgument is a ValueError, a wrong
        # type is an ArgumentTypeError, a TypeError).
        with pytest.raises(replikit.ArgumentTypeError, match="params"):
            db.query("SELECT $1", "not a list")
        with pytest.raises(replikit.InvalidArgument, match="consistency"):
            db.query("SELECT 1", consistency="sometimes")
        with pytest.raises(replikit.InvalidArgument, match="max_staleness_ms"):
            db.query("SELECT 1", consistency="bounded_staleness")
        with pytest.raises(replikit.ArgumentTypeError, match="session"):
            db.query("SELECT 1", session="not a session")
    with pytest.raises(replikit.InvalidArgument, match="probe_interval_ms"):
        database_for_cluster(cluster, probe_interval_ms=0)
    with pytest.raises(replikit.InvalidArgument, match="pool_size"):
        database_for_cluster(cluster, pool_size=0)


def test_no_call_hangs(cluster):
    """Server-side statement timeout, the client-side watchdog, pool exhaustion and a
    connection lost during a write each end in bounded time with a typed error."""
    with open_db(cluster, statement_timeout_ms=300, query_grace_ms=200) as db:
        started = time.monotonic()
        with pytest.raises(replikit.QueryError, match="statement timeout") as info:
            db.query("SELECT pg_sleep(3)", consistency="strong")
        assert info.value.sqlstate == "57014" and time.monotonic() - started < 1.5

        # The server's own timeout switched off: the watchdog cuts the call at 300 + 200 ms.
        started = time.monotonic()
        with pytest.raises(replikit.TimeoutError, match="no answer within"):
            db.query("SET statement_timeout = 0; SELECT pg_sleep(3)", consistency="strong")
        cut_s = time.monotonic() - started
        assert 0.4 < cut_s < 1.5
        assert db.stats()["watchdog_fired"] == 1 and db.node("primary").up
        assert db.query("SELECT 1", consistency="strong").scalar() == 1

    # Pool exhausted: the third caller waits at most acquire_timeout_ms.
    with open_db(cluster, pool_size=2, acquire_timeout_ms=200) as db:
        blockers = [threading.Thread(target=lambda: db.query("SELECT pg_sleep(1)", consistency="strong"))
                    for _ in range(2)]
        for t in blockers:
            t.start()
        wait_until(lambda: (lambda st: st.pool_open == 2 and st.pool_idle == 0)(db.node("primary")), 5,
                   "both pooled connections of the primary on loan")
        started = time.monotonic()
        with pytest.raises(replikit.TimeoutError, match="acquire_timeout_ms"):
            db.query("SELECT 1", consistency="strong")
        assert time.monotonic() - started < 0.9
        for t in blockers:
            t.join(5)

    # A connection killed while a write runs: the outcome is unknown, and says so.
    with open_db(cluster) as db:
        outcome = {}

        def slow_write():
            try:
                db.execute("INSERT INTO rk_items (owner, v) SELECT -7, 'x' FROM pg_sleep(2)")
                outcome["result"] = "ok"
            except replikit.Error as exc:
                outcome["error"] = exc

        writer = threading.Thread(target=slow_write)
        writer.start()
        query = ("SELECT pid FROM pg_stat_activity WHERE application_name = 'replikit' "
                 "AND query LIKE '%pg_sleep(2)%' AND pid <> pg_backend_pid()")
        pid = wait_until(lambda: cluster.sql("primary", query), 5, "the write's backend")[0][0]
        cluster.sql("primary", f"SELECT pg_terminate_backend({pid})")
        writer.join(5)
        assert isinstance(outcome.get("error"), replikit.CommitUnknown), outcome
        print(f"\n[faults] watchdog cut a 3 s query after {cut_s:.3f} s; killed write -> "
              f"{type(outcome['error']).__name__}: {outcome['error']}")


def test_role_mismatch_is_detected_and_kept_out_of_routing(cluster):
    """A 'replica' that is not in recovery (here: the primary under a second name) is flagged
    and gets no reads; a 'primary' that is in recovery is flagged (no failover here)."""
    primary, r1 = cluster.dsn("primary"), cluster.dsn("r1")
    with ReplicatedDatabase(("primary", primary), [("r1", r1), ("impostor", primary)]) as db:
        assert db.wait_probes(2, 5000)
        impostor, good = db.node("impostor"), db.node("r1")
        assert impostor.role_mismatch and not impostor.in_recovery and not impostor.up
        assert "not in recovery" in impostor.last_error
        assert not good.role_mismatch and good.in_recovery and good.up
        assert db.node("primary").timeline >= 1 and good.timeline == db.node("primary").timeline
        nodes = {db.query("SELECT 1", consistency="eventual").node for _ in range(20)}
        assert nodes == {"r1"}
    with ReplicatedDatabase(("primary", r1)) as db:
        assert db.wait_probes(2, 5000)
        status = db.node("primary")
        assert status.role_mismatch and status.in_recovery and "in recovery" in status.last_error


# --------------------------------------------------------------------------- close()
def test_close_keeps_a_call_on_a_frozen_server_bounded(cluster):
    """B2: close() while a query waits on a backend that stopped answering (SIGSTOP): the
    watchdog keeps running, so the query ends with TimeoutError at its deadline and close()
    returns then; new calls are refused at once."""
    import os
    import signal

    with open_db(cluster, pool_size=1, statement_timeout_ms=400, query_grace_ms=400) as db:
        pid = backend_pid(db)
        outcome = {}

        def frozen_read():
            started = time.monotonic()
            try:
                outcome["result"] = db.query("SELECT 1", consistency="strong")
            except replikit.Error as exc:
                outcome["error"] = exc
            outcome["elapsed_s"] = time.monotonic() - started

        os.kill(pid, signal.SIGSTOP)
        try:
            reader = threading.Thread(target=frozen_read, daemon=True)
            reader.start()
            time.sleep(0.2)
            started = time.monotonic()
            closer = threading.Thread(target=db.close, daemon=True)
            closer.start()
            wait_until(lambda: not db.is_open, 2, "close() to refuse new calls")
            with pytest.raises(replikit.ConnectionError, match="closed"):
                db.query("SELECT 1", consistency="strong")
            reader.join(5)
            closer.join(5)
            close_s = time.monotonic() - started
            assert not reader.is_alive(), "the read hung after close()"
            assert not closer.is_alive(), "close() hung"
        finally:
            os.kill(pid, signal.SIGCONT)
        print(f"\n[close] read on a frozen backend -> {outcome.get('error')!r} after "
              f"{outcome.get('elapsed_s', 0):.3f} s; close() took {close_s:.3f} s")
        assert isinstance(outcome.get("error"), replikit.TimeoutError), outcome
        assert 0.7 < outcome["elapsed_s"] < 2.5
        assert close_s < 2.5


def test_concurrent_close_calls_all_return(cluster):
    """B3: eight threads calling close() at once all return, promptly."""
    db = open_db(cluster)
    barrier = threading.Barrier(8)
    errors = []

    def closer():
        try:
            barrier.wait(5)
            db.close()
        except BaseException as exc:  # pragma: no cover - reported by the assertion
            errors.append(exc)

    threads = [threading.Thread(target=closer, daemon=True) for _ in range(8)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert not any(t.is_alive() for t in threads), "a close() call hung"
    assert not errors, errors
    assert time.monotonic() - started < 3
    assert not db.is_open
    db.close()  # and once more, idempotent


# --------------------------------------------------------------------------- connect bounds
def test_a_dsn_with_connect_timeout_zero_still_connects_in_bounded_time():
    """R2: connect_timeout=0 in a DSN means 'wait forever' to libpq; replikit replaces it, so
    a pool connect to a server that never answers the startup packet gives up in time."""
    import socket

    with socket.socket() as silent:  # accepts TCP connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        db = ReplicatedDatabase(("primary", f"host=127.0.0.1 port={port} user=postgres connect_timeout=0"),
                                connect_timeout_ms=2000, probe_timeout_ms=500)
        outcome = {}

        def write():
            started = time.monotonic()
            try:
                db.execute("SELECT 1")
            except replikit.Error as exc:
                outcome["error"] = exc
            outcome["elapsed_s"] = time.monotonic() - started

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        writer.join(8)
        assert not writer.is_alive(), "a connect with connect_timeout=0 hung"
        db.close()
    assert isinstance(outcome.get("error"), replikit.ConnectionError), outcome
    assert outcome["elapsed_s"] < 6


# --------------------------------------------------------------------------- lost and misused connections
def test_parameterised_read_is_cut_by_the_watchdog(cluster):
    """A read with parameters (libpq's PQexecParams on the pooled connection) blocked on a
    server that will not answer in time returns at the client-side deadline with TimeoutError,
    like one without; the connection is discarded and the next read works."""
    with open_db(cluster, pool_size=1, statement_timeout_ms=300, query_grace_ms=200) as db:
        # Leaks to the only pooled connection of the primary (documented): the server's own
        # timeout is off for the next call, so only the watchdog can end it.
        db.query("SET statement_timeout = 0", consistency="strong")
        started = time.monotonic()
        with pytest.raises(replikit.TimeoutError, match="no answer within"):
            db.query("SELECT pg_sleep($1::float8)", ["3"], consistency="strong")
        assert 0.4 < time.monotonic() - started < 1.5
        assert db.stats()["watchdog_fired"] == 1 and db.node("primary").up
        r = db.query("SELECT $1::int + 1, $2::text IS NULL", [41, None], consistency="strong")
        assert r.rows == [(42, True)]


def test_a_node_a_read_marked_down_is_not_reported_reachable(cluster):
    """A read that lost its connection to r1 marks r1 down; until the prober's next probe,
    r1's status says unreachable with the read's error, not reachable with no error."""
    with open_db(cluster, probe_interval_ms=1000.0) as db:
        for _ in range(4):  # a pooled connection on each replica
            db.query("SELECT 1", consistency="eventual")
        cluster.sql("r1", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE application_name = 'replikit'")
        time.sleep(0.05)
        db.wait_probes(1, 5000)  # the status check below then has most of a probe interval
        results = [db.query("SELECT 1", consistency="eventual") for _ in range(2)]
        retried = [r for r in results if r.attempts > 1]
        status = db.node("r1")
        print(f"\n[down] {[(r.node, r.attempts) for r in results]}; r1 {status!r}")
        assert retried, results
        assert not status.up and not status.reachable
        assert "r1" in status.last_error and status.last_error
        assert db.stats()["nodes_marked_down"] == 1
        assert db.wait_probes(1, 5000)
        status = db.node("r1")
        assert status.up and status.reachable and status.last_error == ""


def test_a_protocol_violation_on_a_live_connection_is_a_query_error(cluster):
    """A parameter count mismatch is answered by the server with SQLSTATE 08P01 on a
    connection that stays usable: a QueryError keeping the SQLSTATE, not a lost connection
    (no node marked down, no retry, and no CommitUnknown for a write)."""
    with open_db(cluster) as db:
        with pytest.raises(replikit.QueryError) as info:
            db.query("SELECT $1::int + $2::int", [1], consistency="eventual")
        assert info.value.sqlstate == "08P01"
        with pytest.raises(replikit.QueryError) as info:
            db.execute("UPDATE rk_counter SET v = v WHERE id = $1 AND $2::int = 0", [1])
        assert info.value.sqlstate == "08P01" and not isinstance(info.value, replikit.CommitUnknown)
        with pytest.raises(replikit.QueryError) as info:
            db.transaction([("SELECT $1::int + $2::int", [1])])
        assert info.value.sqlstate == "08P01"
        stats = db.stats()
        assert stats["nodes_marked_down"] == 0 and stats["read_retries"] == 0
        assert all(n.up and n.reachable for n in db.nodes())
        assert db.query("SELECT 2", consistency="strong").scalar() == 2
