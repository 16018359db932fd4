"""The C++ PostgreSQL backend (replikit.pg.ReplicatedDatabase) against a real local cluster.

Each scenario runs on the session's LocalCluster (primary, r1, r2; async streaming) through
the `pg_cluster_reset` fixture, which starts killed nodes, resumes replay and clears apply
delays afterwards. Measurements (stale reads, share of reads served by replicas, lag growth)
are printed; run with `-s` to see them.
"""

from __future__ import annotations

import threading
import time
import datetime
from decimal import Decimal

import pytest

from conftest import wait_until

import replikit

pytestmark = pytest.mark.pg

_core = replikit._core
if not getattr(_core, "HAVE_PG", False):  # pragma: no cover - depends on the build
    pytest.skip("replikit was built without the PostgreSQL backend (libpq)", allow_module_level=True)

from replikit.pg import PsycopgRouter, ReplicatedDatabase, database_for_cluster  # noqa: E402

PROBE_INTERVAL_MS = 100.0


def reason_name(reason) -> str:
    return getattr(reason, "name", str(reason)).lower()


@pytest.fixture(scope="module")
def tables(pg_cluster):
    pg_cluster.sql("primary", """
        CREATE TABLE IF NOT EXISTS rk_items (id bigserial PRIMARY KEY, owner int, v text);
        CREATE TABLE IF NOT EXISTS rk_counter (id int PRIMARY KEY, v bigint NOT NULL);
        INSERT INTO rk_counter VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
    """)
    pg_cluster.wait_caught_up(timeout_ms=10_000)
    return pg_cluster


@pytest.fixture
def cluster(pg_cluster_reset, tables):
    return pg_cluster_reset


def open_db(cluster, **options) -> ReplicatedDatabase:
    db = database_for_cluster(cluster, **options)
    assert db.wait_probes(2, 5000), "the prober did not complete two probes of every node in 5 s"
    for status in db.nodes():
        assert status.up and status.reachable, status
    return db


class Writer:
    """A steady write load on the primary (one UPDATE every `period_s`) in a thread."""

    def __init__(self, db, period_s: float = 0.01):
        self.db, self.period_s = db, period_s
        self.stop = threading.Event()
        self.errors: list = []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        session = replikit.Session()
        while not self.stop.is_set():
            try:
                self.db.execute("UPDATE rk_counter SET v = v + 1 WHERE id = 1", session=session)
            except replikit.Error as exc:  # pragma: no cover - reported by the test
                self.errors.append(exc)
            self.stop.wait(self.period_s)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)


# --------------------------------------------------------------------------- basics
def test_types_params_and_results(cluster):
    with open_db(cluster) as db:
        db.execute("DROP TABLE IF EXISTS rk_types")
        db.execute("CREATE TABLE rk_types (b bool, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, "
                   "n numeric, t text, vc varchar(10), nm name, ts timestamp, by bytea, js jsonb)")
        session = replikit.Session()
        r = db.execute("INSERT INTO rk_types VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)",
                       [True, 2, 40000, 2**40, 1.5, 0.1, Decimal("12.345"), "héllo", "v", "nm",
                        "2024-01-02 03:04:05", b"\x00\xff", '{"a": 1}'], session=session)
        assert r.rowcount == 1 and r.node == "primary" and reason_name(r.reason) == "write"
        assert r.lsn is not None and session.write_lsn == r.lsn
        db.execute("INSERT INTO rk_types (b, t) VALUES ($1, $2)", [None, None], session=session)
        q = db.query("SELECT * FROM rk_types ORDER BY b NULLS LAST", session=session,
                     consistency="strong")
        assert q.columns[:3] == ["b", "i2", "i4"]
        assert q.type_oids[:4] == [16, 21, 23, 20]
        first = q.rows[0]
        assert first[:8] == (True, 2, 40000, 2**40, 1.5, 0.1, Decimal("12.345"), "héllo")
        assert first[8:11] == ("v", "nm", datetime.datetime(2024, 1, 2, 3, 4, 5))
        assert first[11] == b"\x00\xff" and first[12] == {"a": 1}  # psycopg's loaders: bytes, jsonb
        assert all(v is None for v in q.rows[1])
        assert q.dicts()[0]["n"] == Decimal("12.345") and len(q) == 2
        d = db.query("SELECT 1 AS one, NULL::int AS nothing, 'NaN'::float8 AS nan", dicts=True,
                     consistency="strong")
        assert d.rows[0]["one"] == 1 and d.rows[0]["nothing"] is None and d.rows[0]["nan"] != d.rows[0]["nan"]
        assert db.query("SELECT 42", consistency="strong").scalar() == 42
        results = db.transaction(["DELETE FROM rk_types", ("INSERT INTO rk_types (i4) VALUES ($1)", [7])],
                                 session=session)
        assert [x.rowcount for x in results] == [2, 1] and results[1].lsn == session.write_lsn
        assert db.query("SELECT i4 FROM rk_types", session=session, consistency="strong").rows == [(7,)]


# --------------------------------------------------------------------------- read-your-writes
def test_read_your_writes_with_a_paused_replica(cluster):
    """Hundreds of sessions' write-then-read pairs while r1 does not replay: no stale read;
    with a short wait allowed, most reads are served by the replica that caught up (r2)."""
    threads, pairs = 8, 40
    with open_db(cluster) as db:
        cluster.pause_replay("r1")
        wait_until(lambda: cluster.replay_pause_state("r1") == "paused", 5, "r1 paused")
        report = {}
        for wait_ms in (0, 400):
            stale, served, errors, waited = [0], {}, [], []
            lock = threading.Lock()

            def worker(owner: int):
                session = replikit.Session()
                for k in range(pairs):
                    token = f"{owner}:{k}:{wait_ms}"
                    try:
                        w = db.execute("INSERT INTO rk_items (owner, v) VALUES ($1, $2) RETURNING id",
                                       [owner, token], session=session)
                        r = db.query("SELECT v FROM rk_items WHERE id = $1", [w.rows[0][0]],
                                     session=session, consistency="read_your_writes",
                                     wait_for_replica_ms=wait_ms)
                    except replikit.Error as exc:
                        with lock:
                            errors.append(exc)
                        continue
                    with lock:
                        served[r.node] = served.get(r.node, 0) + 1
                        waited.append(r.waited_ms)
                        if r.rows != [(token,)]:
                            stale[0] += 1

            pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
            started = time.monotonic()
            for t in pool:
                t.start()
            for t in pool:
                t.join(60)
            elapsed = time.monotonic() - started
            total = sum(served.values())
            share = (total - served.get("primary", 0)) / max(1, total)
            report[wait_ms] = (total, stale[0], share, dict(served), elapsed)
            print(f"\n[ryw] wait_for_replica_ms={wait_ms}: {total} write-then-read pairs in "
                  f"{elapsed:.2f} s, stale reads {stale[0]}, served by replicas {share:.0%} {served}, "
                  f"mean wait {sum(waited) / max(1, len(waited)):.2f} ms, max {max(waited):.2f} ms")
            assert not errors, errors[:3]
            assert total == threads * pairs
            assert stale[0] == 0
            assert served.get("r1", 0) == 0  # r1 replays nothing after the pause
        # Allowed to wait up to 400 ms, reads go to r2 once a probe shows it caught up.
        assert report[400][2] >= 0.5, report
        stats = db.stats()
        print(f"[ryw] stats: {stats}")
        assert stats["waits"] > 0 and stats["waits_served_by_replica"] > 0


def test_read_your_writes_through_psycopg(cluster):
    """The psycopg 3 adapter keeps the same promise (psycopg connections, replikit routing)."""
    pytest.importorskip("psycopg")
    with open_db(cluster) as db, PsycopgRouter(db) as router:
        cluster.pause_replay("r1")
        stale = served_by_replica = 0
        for k in range(60):
            session = replikit.Session()
            with router.write(session) as conn:
                row_id = conn.execute("INSERT INTO rk_items (owner, v) VALUES (%s, %s) RETURNING id",
                                      (-2, f"psycopg {k}")).fetchone()[0]
            assert session.write_lsn.valid()
            with router.read(session, wait_for_replica_ms=300) as conn:
                rows = conn.execute("SELECT v FROM rk_items WHERE id = %s", (row_id,)).fetchall()
            stale += rows != [(f"psycopg {k}",)]
            served_by_replica += router.last_route.node != "primary"
            assert router.last_route.node != "r1"
        print(f"\n[psycopg] 60 write-then-read pairs: stale {stale}, served by replicas "
              f"{served_by_replica}/60")
        assert stale == 0


# --------------------------------------------------------------------------- monotonic
def test_monotonic_reads_survive_the_loss_of_their_replica(cluster):
    """A session reading a steadily increasing counter with MONOTONIC never sees it go
    backwards, including after the replica it was reading from is killed, while the other
    replica is 800 ms behind; no read fails. (An EVENTUAL reader in another thread, for
    comparison, does see the counter go backwards.)"""
    with open_db(cluster, read_retries=2) as db:
        cluster.set_apply_delay("r2", 800)
        with Writer(db, period_s=0.005) as writer:
            time.sleep(1.0)
            stop = threading.Event()
            eventual = {"reads": 0, "backwards": 0}

            def eventual_reader():
                last, session = -1, replikit.Session()
                while not stop.is_set():
                    v = db.query("SELECT v FROM rk_counter WHERE id = 1", session=session,
                                 consistency="eventual").scalar()
                    eventual["reads"] += 1
                    eventual["backwards"] += v < last
                    last = v
                    time.sleep(0.005)

            other = threading.Thread(target=eventual_reader)
            other.start()
            session = replikit.Session()
            seen, failures, killed, kill_index = [], [], None, None
            started = time.monotonic()
            try:
                while time.monotonic() - started < 3.0:
                    try:
                        r = db.query("SELECT v FROM rk_counter WHERE id = 1", session=session,
                                     consistency="monotonic", wait_for_replica_ms=150)
                        seen.append((r.node, r.rows[0][0]))
                    except replikit.Error as exc:
                        failures.append(exc)
                    if killed is None and time.monotonic() - started > 1.0 and seen:
                        killed = seen[-1][0] if seen[-1][0] != "primary" else "r1"
                        kill_index = len(seen)
                        cluster.kill(killed)
            finally:
                stop.set()
                other.join(10)
        assert not writer.errors
        values = [v for _, v in seen]
        backwards = sum(1 for a, b in zip(values, values[1:]) if b < a)
        before = {n: sum(1 for x, _ in seen[:kill_index] if x == n) for n in ("primary", "r1", "r2")}
        after = {n: sum(1 for x, _ in seen[kill_index:] if x == n) for n in ("primary", "r1", "r2")}
        print(f"\n[monotonic] {len(seen)} monotonic reads, before killing {killed} {before}, after "
              f"{after}; went backwards {backwards} times (eventual reader: "
              f"{eventual['backwards']} of {eventual['reads']}); retries {db.stats()['read_retries']}")
        assert not failures, failures[:3]
        assert backwards == 0
        assert killed in ("r1", "r2") and before[killed] > 0
        assert not db.node(killed).up
        assert after[killed] <= 1  # at most the read in flight when it died (then retried)


# --------------------------------------------------------------------------- causal
def test_causal_reads_after_merging_a_token(cluster):
    """Session B, after merging A's token, sees A's write (r1 paused, so a replica that has
    not replayed it exists); a session that did not merge may miss it."""
    with open_db(cluster) as db:
        cluster.pause_replay("r1")
        missed_by_causal = missed_without_merge = 0
        for k in range(100):
            a = replikit.Session()
            w = db.execute("INSERT INTO rk_items (owner, v) VALUES ($1, $2) RETURNING id",
                           [-3, f"causal {k}"], session=a)
            token = a.token()
            b = replikit.Session()
            b.merge(token)
            assert b.causal_lsn() >= w.lsn
            r = db.query("SELECT v FROM rk_items WHERE id = $1", [w.rows[0][0]], session=b,
                         consistency="causal", wait_for_replica_ms=200)
            missed_by_causal += r.rows != [(f"causal {k}",)]
            assert r.lsn is not None and b.read_lsn >= r.lsn  # causal reads record what they saw
            c = db.query("SELECT v FROM rk_items WHERE id = $1", [w.rows[0][0]],
                         session=replikit.Session(), consistency="eventual")
            missed_without_merge += c.rows == []
        print(f"\n[causal] 100 handoffs: missed with the merged token {missed_by_causal}, "
              f"missed by eventual reads without it {missed_without_merge} (those go round-robin, "
              f"r1 is paused)")
        assert missed_by_causal == 0


# --------------------------------------------------------------------------- lag
def test_lag_grows_at_wall_clock_speed_and_routing_follows_it(cluster):
    max_lag_ms, recover_lag_ms = 800.0, 400.0
    tolerance_ms = PROBE_INTERVAL_MS + 50
    with open_db(cluster, probe_interval_ms=PROBE_INTERVAL_MS, max_lag_ms=max_lag_ms,
                 recover_lag_ms=recover_lag_ms) as db, Writer(db, period_s=0.01) as writer:
        time.sleep(0.3)
        assert db.node("r1").lag_ns / 1e6 < max_lag_ms / 2
        before = time.monotonic_ns()
        cluster.pause_replay("r1")
        after = time.monotonic_ns()
        samples = []
        while time.monotonic_ns() - after < 1.6e9:
            st = db.node("r1")
            if not samples or st.last_probe_ns != samples[-1][0]:
                samples.append((st.last_probe_ns, st.lag_ns))
            time.sleep(0.02)
        # Compare lag growth with the wall-clock time between the probes that measured it.
        growing = [(t, lag) for t, lag in samples if t > after + 2e8]
        (t1, lag1), (t2, lag2) = growing[0], growing[-1]
        growth_error_ms = ((lag2 - lag1) - (t2 - t1)) / 1e6
        # And each sample with the time since the pause (the pause took effect in [before, after]).
        worst_ms = max(max(abs(lag - (t - before)), abs(lag - (t - after))) for t, lag in growing) / 1e6
        print(f"\n[lag] replay of r1 paused: {len(growing)} probes over {(t2 - t1) / 1e6:.0f} ms; lag "
              f"grew {(lag2 - lag1) / 1e6:.0f} ms (error {growth_error_ms:+.1f} ms); worst |lag - time "
              f"since pause| {worst_ms:.1f} ms (pause call took {(after - before) / 1e6:.1f} ms)")
        assert abs(growth_error_ms) <= tolerance_ms
        assert worst_ms <= tolerance_ms + (after - before) / 1e6

        # Past the threshold r1 turns LAGGING; eventual reads avoid it but still use r2.
        wait_until(lambda: db.node("r1").lagging, 3, "r1 LAGGING")
        assert db.node("r1").lag_ns / 1e6 > max_lag_ms
        nodes = {db.query("SELECT 1", consistency="eventual").node for _ in range(40)}
        assert nodes == {"r2"}, nodes

        # Every replica lagging: reads go to the primary, and say why.
        cluster.pause_replay("r2")
        wait_until(lambda: db.node("r2").lagging, 3, "r2 LAGGING")
        results = [db.query("SELECT 1", consistency="eventual") for _ in range(40)]
        assert {r.node for r in results} == {"primary"}
        assert {reason_name(r.reason) for r in results} == {"all_replicas_lagging"}

        # Resumed, both catch up and turn OK again; reads go back to the replicas.
        cluster.resume_replay("r1")
        cluster.resume_replay("r2")
        resumed = time.monotonic()
        wait_until(lambda: not db.node("r1").lagging and not db.node("r2").lagging, 5, "both OK")
        print(f"[lag] both replicas OK {time.monotonic() - resumed:.3f} s after resume")
        nodes = {db.query("SELECT 1", consistency="eventual").node for _ in range(40)}
        assert nodes == {"r1", "r2"}, nodes
    assert not writer.errors
    events = [(e.node, reason_name(e.kind)) for e in db.lag_tracker.events()]
    assert ("r1", "became_lagging") in events and ("r1", "recovered") in events
    assert events.index(("r1", "became_lagging")) < events.index(("r1", "recovered"))


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


def test_bounded_staleness_stays_bounded_while_the_primary_is_frozen(cluster):
    """A replica is known fresh only as of the primary's last probe: once the primary stops
    answering, a BOUNDED_STALENESS read must not keep going to a replica (the primary may have
    acknowledged commits it never shipped), while an EVENTUAL read is still served by one."""
    with open_db(cluster, statement_timeout_ms=400, query_grace_ms=400) as db:
        db.execute("INSERT INTO rk_items (owner, v) VALUES (900, 'before the freeze')")
        cluster.wait_caught_up(timeout_ms=10_000)
        wait_until(lambda: all(r.lag_ms < 100 for r in db.lag_tracker.replicas()), 5, "replicas caught up")
        assert db.node("primary").fresh_as_of_ns is None
        frozen_ns = time.monotonic_ns()  # the clock of fresh_as_of_ns (the prober's)
        assert frozen_ns - 1000 * 1_000_000 < db.node("r1").fresh_as_of_ns <= frozen_ns
        cluster.freeze("primary")
        try:
            time.sleep(1.5)
            # What the read below is judged by: r1 known fresh only as of before the freeze.
            fresh = db.node("r1").fresh_as_of_ns
            assert fresh is not None and fresh <= frozen_ns + 100 * 1_000_000
            lags = {r.node: (r.lag_ms, r.lag_is_lower_bound) for r in db.lag_tracker.replicas()}
            outcome = None
            try:
                r = db.query("SELECT count(*) FROM rk_items WHERE owner = 900",
                             consistency="bounded_staleness", max_staleness_ms=500)
                outcome = r.node
            except replikit.Error as exc:
                outcome = exc
            eventual = db.query("SELECT count(*) FROM rk_items WHERE owner = 900", consistency="eventual")
        finally:
            cluster.thaw("primary")
        print(f"\n[frozen primary] lags {lags}; bounded read -> {outcome!r}; eventual read on {eventual.node}")
        assert all(lag > 1000 and lower for lag, lower in lags.values()), lags
        assert isinstance(outcome, replikit.Error) or outcome not in ("r1", "r2"), outcome
        assert eventual.node in ("r1", "r2") and eventual.rows[0][0] >= 1
        # Primary probes resume: the bound goes, bounded reads use the replicas again.
        wait_until(lambda: db.node("primary").up, 10, "the primary back up")
        wait_until(lambda: all(r.lag_ms < 500 for r in db.lag_tracker.replicas()), 10, "lag back to normal")
        r = db.query("SELECT 1", consistency="bounded_staleness", max_staleness_ms=500)
        assert r.node in ("r1", "r2"), r.node


# --------------------------------------------------------------------------- pooled connections
def backend_pid(db) -> int:
    return db.query("SELECT pg_backend_pid()", consistency="strong").scalar()


def primary_count(cluster, where: str) -> int:
    return int(cluster.sql("primary", f"SELECT count(*) FROM rk_b1 WHERE {where}")[0][0])


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


# --------------------------------------------------------------------------- session time
def test_session_time_is_wall_clock(cluster):
    """B4: session times travel in tokens between hosts, so the backend records and routes
    with wall-clock time (time.time_ns()), while probes keep the monotonic clock."""
    with open_db(cluster) as db:
        session = replikit.Session()
        db.record_write(session, None)
        assert abs(session.untracked_write_ns - time.time_ns()) < 5e9
        assert abs(ReplicatedDatabase.wall_clock_ns() - time.time_ns()) < 5e9
        assert abs(ReplicatedDatabase.now_ns() - time.monotonic_ns()) < 5e9
        assert abs(db.node("primary").last_probe_ns - time.monotonic_ns()) < 5e9

        # A token from another host whose write (LSN unknown) was just now: the read goes to
        # the primary (no primary probe 2 s after it can have resolved it yet).
        other_host = replikit.Session()
        other_host.record_write(None, time.time_ns())
        reader = replikit.Session()
        reader.merge(other_host.token())
        route = db.route_read(reader)
        assert route.node == "primary" and reason_name(route.reason) == "recent_write", route
        # One whose write was a minute ago: a primary probe since resolves it into an LSN, so
        # a replica that replayed that LSN serves it.
        old = replikit.Session()
        old.record_write(None, time.time_ns() - 60 * 10**9)
        route = db.route_read(old, wait_for_replica_ms=2000)
        assert route.node in ("r1", "r2") and route.required_lsn.valid(), route


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


def read_decisions(db) -> int:
    """Reads the router counted (every decision but the writes)."""
    c = db.router.counters()
    return c["total"] - c["by_reason"].get("write", 0)


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
