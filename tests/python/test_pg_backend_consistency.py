"""The C++ PostgreSQL backend (replikit.pg.ReplicatedDatabase) against a real local cluster:
what each consistency level promises (types round-trip, read-your-writes, monotonic, causal,
bounded staleness), lag measured in time and followed by routing, and session time.

Each scenario runs on the session's LocalCluster (primary, r1, r2; async streaming) through
the `pg_cluster_reset` fixture, which starts killed nodes, resumes replay and clears apply
delays afterwards. Measurements (stale reads, share of reads served by replicas, lag growth)
are printed; run with `-s` to see them. The shared setup is in pg_backend_helpers.py.
"""

from __future__ import annotations

import datetime
import threading
import time
from decimal import Decimal

import pytest

from conftest import wait_until
from pg_backend_helpers import PROBE_INTERVAL_MS, Writer, open_db, reason_name
from pg_backend_helpers import cluster, tables  # noqa: F401  (fixtures)

import replikit
from replikit.pg import PsycopgRouter, ReplicatedDatabase

pytestmark = pytest.mark.pg


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


# --------------------------------------------------------------------------- bounded staleness
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
