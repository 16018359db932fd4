"""Read-your-writes after a write whose commit LSN is unknown, on a real cluster.

The write commits but its LSN cannot be read: here the LSN query is refused (the application
role may not run pg_current_wal_insert_lsn(), a fault injected on the server), and in the second
test the primary is then killed as well. The replicas' replay is paused, so they lack the commit
for as long as the test likes. Before the fix, read-your-writes held only for time_window_ms
(then a replica returned the old state); now the write stays unresolved in the session until a
primary probe sent time_window_ms after it bounds its commit LSN, and until then the session's
reads go to the primary or fail with ConnectionError, never to a replica lacking the commit.
"""

from __future__ import annotations

import time

import pytest

from conftest import require_pg_server, wait_until

import replikit

pytestmark = pytest.mark.pg

_core = replikit._core
if not getattr(_core, "HAVE_PG", False):  # pragma: no cover - depends on the build
    pytest.skip("replikit was built without the PostgreSQL backend", allow_module_level=True)

from replikit.pg import ReplicatedDatabase  # noqa: E402

WINDOW_MS = 300.0
COUNT_SQL = "SELECT count(*) FROM rk_unknown"


def reason(result) -> str:
    return str(result.reason).rsplit(".", 1)[-1].lower()


@pytest.fixture
def cluster():
    """A cluster of its own: a role that may not read the insert LSN, replicas paused."""
    require_pg_server()
    import replikit.testing

    c = replikit.testing.LocalCluster(replicas=2)
    try:
        c.sql("primary", "CREATE ROLE rk_blind LOGIN; CREATE TABLE rk_unknown (v int); "
                         "GRANT SELECT, INSERT ON rk_unknown TO rk_blind; "
                         "REVOKE EXECUTE ON FUNCTION pg_current_wal_insert_lsn() FROM PUBLIC")
        c.wait_caught_up(timeout_ms=30_000)
        yield c
    finally:
        c.close()


def blind_db(cluster, **options) -> ReplicatedDatabase:
    nodes = [(name, cluster.dsn(name) + " user=rk_blind") for name in ("primary", "r1", "r2")]
    options = {"probe_interval_ms": 50, "time_window_ms": WINDOW_MS, **options}
    db = ReplicatedDatabase(nodes[0], nodes[1:], **options)
    assert db.wait_probes(2, 10_000)
    return db


def unknown_write(db, cluster) -> replikit.Session:
    """Replay paused on both replicas, then a write whose LSN query is refused."""
    for name in ("r1", "r2"):
        cluster.pause_replay(name)
    s = replikit.Session()
    result = db.execute("INSERT INTO rk_unknown VALUES (1)", session=s)
    assert result.rowcount == 1
    assert result.lsn is None or not result.lsn.valid(), result.lsn
    assert s.untracked_write_ns is not None and not s.write_lsn.valid()
    return s


def test_read_your_writes_outlasts_the_window_until_a_probe_resolves_the_write(cluster):
    with blind_db(cluster) as db:
        s = unknown_write(db, cluster)
        first = db.query(COUNT_SQL, session=s)
        assert (first.scalar(), first.node, reason(first)) == (1, "primary", "recent_write")
        time.sleep(3 * WINDOW_MS / 1000)  # past the window: replicas still lack the commit
        # (Causal reads on the primary read the insert LSN too, which this role may not: the
        # routing of causal reads is checked in the next test.)
        r = db.query(COUNT_SQL, session=s)
        assert (r.scalar(), r.node) == (1, "primary"), reason(r)
        # Resolved from the prober's samples: an LSN now, which the token carries.
        assert s.untracked_write_ns is None and s.write_lsn.valid(), s
        assert s.write_lsn <= cluster.current_lsn("primary")
        assert replikit.Session.from_token(s.token()).write_lsn == s.write_lsn
        for name in ("r1", "r2"):
            assert cluster.replay_lsn(name) < s.write_lsn  # paused before the commit
            cluster.resume_replay(name)
        r = db.query(COUNT_SQL, session=s, wait_for_replica_ms=10_000)
        assert (r.scalar(), reason(r)) == (1, "replica_caught_up"), (r.node, reason(r))
        assert r.node in ("r1", "r2")


def test_primary_killed_after_an_unknown_write_refuses_reads_instead_of_serving_stale(cluster):
    # A probe 1 s after the write would resolve it: the kill comes well before that.
    # The replicas, paused before the write, really are behind by the time since it once a
    # primary probe has seen it: about 1.5 s at the eventual read, over the default max_lag_ms
    # (1 s), which would make them LAGGING and leave that read no node (the primary is down).
    # Whether a probe (every 50 ms) came between the commit and the kill was up to the timing,
    # so this test waits for one and sets max_lag_ms far above the replicas' lag: its point,
    # eventual reads are served while read-your-writes and causal reads are refused, then holds
    # whatever the timing.
    with blind_db(cluster, time_window_ms=1000.0, max_lag_ms=60_000.0) as db:
        s = unknown_write(db, cluster)
        token = s.token()
        wait_until(lambda: all(db.node(name).lag_bytes > 0 for name in ("r1", "r2")), 10,
                   "a primary probe that sees the replicas behind the write")
        cluster.kill("primary")
        wait_until(lambda: not db.node("primary").up, 10, "the primary marked down")
        time.sleep(1.5)  # past the window (before the fix, a replica lacking the commit served)
        for consistency in ("read_your_writes", "causal"):
            with pytest.raises(replikit.ConnectionError, match="commit LSN is unknown"):
                db.query(COUNT_SQL, session=s, consistency=consistency)
        # The same for a session on another host that merged the token.
        other = replikit.Session()
        other.merge(token)
        with pytest.raises(replikit.ConnectionError):
            db.query(COUNT_SQL, session=other, consistency="causal")
        # Reads that never asked for the session's writes are still served by the replicas,
        # which are more than the default max_lag_ms behind but within this one: OK.
        for name in ("r1", "r2"):
            info = db.node(name)
            assert info.lag_ms > 1000.0 and info.lag_state == replikit.LagState.OK, (name, info)
        assert db.query(COUNT_SQL, session=s, consistency="eventual").node in ("r1", "r2")
        assert s.untracked_write_ns is not None  # no primary probe since: still unresolved
        cluster.start("primary")
        for name in ("r1", "r2"):
            cluster.resume_replay(name)
        with blind_db(cluster, time_window_ms=0.0) as db2:
            # The restarted primary, probed after the write, resolves it (margin 0 here); the
            # read waits for that probe if it has not come yet.
            r = db2.query(COUNT_SQL, session=s, wait_for_replica_ms=10_000)
            assert r.scalar() == 1, (r.node, reason(r))
            assert s.untracked_write_ns is None and s.write_lsn.valid()
