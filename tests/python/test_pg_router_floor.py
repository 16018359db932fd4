"""replikit.pg.PsycopgRouter keeps each session's xid floor, as the C++ backend and
replikit.psycopg do: a replica can show a commit before the primary's own snapshot does (the
primary lists the transaction as running until its commit record is flushed and, with a
synchronous standby, confirmed), so a monotonic read that the primary serves after a replica
read first waits until the primary's snapshot has completed what the replica read saw.

The anomaly is made deterministic by a synchronous standby that never connects
(synchronous_standby_names = 'rk_nobody'): a commit then waits on the primary, still listed in
progress there, while the async replicas replay it. Reads are sent to the primary by pausing
both replicas' replay until the lag tracker finds them LAGGING (router rule 5 then lapses).
A malformed snapshot comes from a real server too: a function named pg_current_snapshot in a
schema placed before pg_catalog on the search_path of one connection.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from typing import Any, Iterator, Optional

import pytest

from conftest import wait_until

import replikit
from replikit import _xidfloor

pytestmark = pytest.mark.pg

if not getattr(replikit._core, "HAVE_PG", False):  # pragma: no cover - depends on the build
    pytest.skip("replikit was built without the PostgreSQL backend", allow_module_level=True)
psycopg = pytest.importorskip("psycopg")

from replikit.pg import PsycopgRouter, database_for_cluster  # noqa: E402

REPLICAS = ("r1", "r2")
JUNK_SNAPSHOTS = [None, "", "junk", "1:2", "1:2:3:4", "a:2:", "1:b:", "1:5:x", "1:5:3,,4", "1:5:,3", "1:5:3,",
                  "1:5:3;4", " 1:5:", "1:-5:", "+1:5:", "1:5:3_0", "1:\u0665:", "1:5:3\n",
                  "1:" + "9" * 5000 + ":"]


@pytest.fixture
def floor_tables(pg_cluster_reset):
    """The session cluster (restored afterwards) with this module's table and the fake
    pg_current_snapshot."""
    cluster = pg_cluster_reset
    cluster.sql("primary", """
        CREATE TABLE IF NOT EXISTS rk_floor (id bigserial PRIMARY KEY, v text NOT NULL);
        CREATE TABLE IF NOT EXISTS rk_floor_tick (id int PRIMARY KEY, n bigint NOT NULL);
        INSERT INTO rk_floor_tick VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
        CREATE SCHEMA IF NOT EXISTS rk_fake;
        CREATE OR REPLACE FUNCTION rk_fake.pg_current_snapshot() RETURNS text LANGUAGE sql STABLE
            AS $$ SELECT current_setting('rk.snap', true) $$;
    """)
    cluster.wait_caught_up(timeout_ms=10_000)
    return cluster


def _set_sync_names(cluster: Any, names: str) -> None:
    cluster.sql("primary", f"ALTER SYSTEM SET synchronous_standby_names = '{names}'")
    cluster.sql("primary", "SELECT pg_reload_conf()")
    wait_until(lambda: cluster.sql("primary", "SHOW synchronous_standby_names") == [(names,)], 10,
               f"synchronous_standby_names = '{names}'")


def _release(cluster: Any) -> None:
    """The cluster's own replication mode again: commits waiting for 'rk_nobody' complete."""
    cluster.set_replication_mode(cluster.mode, cluster.sync_count)


class HangingCommit:
    """Inserts `marker` on the primary and commits in a thread; with 'rk_nobody' as the
    synchronous standby the COMMIT waits (flushed and streamed, not yet shown by the primary)."""

    def __init__(self, cluster: Any, marker: str):
        self.conn = psycopg.connect(cluster.dsn("primary"), autocommit=False)
        self.conn.execute("INSERT INTO rk_floor (v) VALUES (%s)", (marker,))
        self.xid = int(self.conn.execute("SELECT pg_current_xact_id()::text").fetchone()[0])
        self.done = threading.Event()
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._commit, daemon=True)
        self.thread.start()

    def _commit(self) -> None:
        try:
            self.conn.commit()
        except BaseException as exc:  # pragma: no cover - reported by the test
            self.error = exc
        finally:
            self.done.set()

    def close(self) -> None:
        self.thread.join(30)
        self.conn.close()


def _count(dsn: str, marker: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return int(conn.execute("SELECT count(*) FROM rk_floor WHERE v = %s", (marker,)).fetchone()[0])


@contextlib.contextmanager
def _replicas_lagging(cluster: Any, db: Any, session: replikit.Session) -> Iterator[None]:
    """Pauses both replicas' replay and writes on the primary (never waiting for a standby)
    until the lag tracker finds both LAGGING, so that the session's monotonic reads go to the
    primary; resumes replay afterwards."""
    for name in REPLICAS:
        cluster.pause_replay(name)
    try:
        with psycopg.connect(cluster.dsn("primary"), autocommit=True) as conn:
            conn.execute("SET synchronous_commit = local")

            def to_primary() -> bool:
                conn.execute("UPDATE rk_floor_tick SET n = n + 1 WHERE id = 1")
                lagging = all(db.lag_tracker.replica(n).state == replikit.LagState.LAGGING for n in REPLICAS)
                return lagging and db.route_read(session, consistency="monotonic",
                                                 wait_for_replica_ms=0).node == "primary"

            wait_until(to_primary, 10, "r1 and r2 LAGGING, the session's monotonic reads on the primary",
                       poll_s=0.02)
        yield
    finally:
        for name in REPLICAS:
            cluster.resume_replay(name)


def _monotonic(router: Any, session: replikit.Session, marker: str) -> int:
    with router.read(session, consistency="monotonic", wait_for_replica_ms=0) as conn:
        return int(conn.execute("SELECT count(*) FROM rk_floor WHERE v = %s", (marker,)).fetchone()[0])


# Autocommit (the router's default), and transactions in REPEATABLE READ, where a poll left
# inside its transaction would see one frozen snapshot and the read would run in it.
CONNECTIONS = {"autocommit": {},
               "repeatable_read": {"autocommit": False,
                                   "options": "-c default_transaction_isolation=repeatable\\ read"}}


@pytest.mark.parametrize("connection", sorted(CONNECTIONS))
def test_psycopg_router_floor_primary_read_waits_until_it_shows_the_replica_read(floor_tables, connection):
    """A commit shown by the replicas while the primary still lists it in progress (the anomaly,
    reproduced first with plain psycopg): a PsycopgRouter monotonic read on a replica sees the
    row; the session's next monotonic read, served by the primary, waits until the primary
    shows it (released 0.3 s later) and sees the row too. Before, it read at once and missed it."""
    cluster = floor_tables
    marker = f"floor {uuid.uuid4()}"
    with database_for_cluster(cluster, probe_interval_ms=20.0, max_lag_ms=100.0) as db, \
            PsycopgRouter(db, pool_size=1, **CONNECTIONS[connection]) as router:
        assert db.wait_probes(2, 5000)
        session = replikit.Session()
        _set_sync_names(cluster, "rk_nobody")
        commit = None
        try:
            commit = HangingCommit(cluster, marker)
            for name in REPLICAS:
                wait_until(lambda name=name: _count(cluster.dsn(name), marker) == 1, 10, f"{name} shows the row")
            # The anomaly: both replicas show the commit, the primary does not.
            assert _count(cluster.dsn("primary"), marker) == 0
            assert not commit.done.is_set()

            assert _monotonic(router, session, marker) == 1
            assert router.last_route.node in REPLICAS
            with _replicas_lagging(cluster, db, session):
                assert not commit.done.is_set()  # the primary still lists the transaction as running
                release = threading.Timer(0.3, _release, (cluster,))
                release.start()
                try:
                    seen = _monotonic(router, session, marker)
                finally:
                    release.join(30)
                node = router.last_route.node
                print(f"\n[psycopg router floor, {connection}] xid {commit.xid}: replica read saw it, primary read "
                      f"({node}) after the wait saw {seen} row(s); commit done {commit.done.is_set()}")
                assert node == "primary"
                assert seen == 1, "the primary read went back: it missed a row the replica read showed"
                assert commit.done.wait(10) and commit.error is None
        finally:
            _release(cluster)
            if commit is not None:
                commit.close()
        assert db.stats()["reads_on_primary"] >= 1


def _junk_on(conn: Any, snapshot: Optional[str]) -> None:
    """From now on, `pg_current_snapshot()` in this connection's statements returns `snapshot`."""
    conn.execute("SELECT set_config('search_path', 'rk_fake, pg_catalog', false), "
                 "set_config('rk.snap', %s, false)", (snapshot if snapshot is not None else "",))
    if snapshot is None:
        conn.execute("RESET rk.snap")  # current_setting(..., true) gives NULL


def _junk_off(conn: Any) -> None:
    conn.execute("RESET search_path")


def test_psycopg_router_floor_malformed_snapshots_are_dropped(floor_tables):
    """A replica snapshot that does not parse is not recorded (the read's LSN is), as the
    psycopg adapter drops it; a primary whose snapshot never parses never counts as showing the
    floor: the monotonic read there raises replikit.TimeoutError after statement_timeout_ms / 2
    without running, keeps the floor, and leaves the connection usable."""
    cluster = floor_tables
    with database_for_cluster(cluster, probe_interval_ms=20.0, max_lag_ms=100.0,
                              statement_timeout_ms=1000.0) as db, PsycopgRouter(db, pool_size=1) as router:
        assert db.wait_probes(2, 5000)
        # The primary's pooled connection answers junk from now on.
        with router.read(consistency="strong") as conn:
            _junk_on(conn, "junk")
        assert router.last_route.node == "primary"

        session = replikit.Session()
        for junk in JUNK_SNAPSHOTS:
            assert _xidfloor.parse_snapshot(junk) is None, junk
            with router.read(session, consistency="monotonic", wait_for_replica_ms=0) as conn:
                _junk_on(conn, junk)
            assert router.last_route.node in REPLICAS
            assert session.read_lsn.valid()
            assert router._floors.get(session) is None, junk  # dropped, nothing else happened
        with router.read(session, consistency="monotonic", wait_for_replica_ms=0) as conn:
            _junk_off(conn)  # the real pg_current_snapshot() after this read
        floor = router._floors.get(session)
        assert floor is not None and floor[0] > 0

        with _replicas_lagging(cluster, db, session):
            ran = []
            with pytest.raises(replikit.TimeoutError, match="did not show"):
                with router.read(session, consistency="monotonic", wait_for_replica_ms=0) as conn:
                    ran.append(conn)
            assert not ran and router.last_route.node == "primary"
            assert router._floors.get(session) == floor  # kept: the read did not happen
            # The connection went back to the pool (pool_size=1) and still works.
            with router.read(consistency="strong") as conn:
                _junk_off(conn)
            start = time.monotonic()
            assert _monotonic(router, session, "none") == 0
            print(f"\n[psycopg router floor] junk snapshots dropped; covered floor cleared after "
                  f"{(time.monotonic() - start) * 1000:.1f} ms on the primary")
            assert router.last_route.node == "primary"
            assert router._floors.get(session) is None


def test_xid_floor_parse_and_cover():
    """parse_snapshot takes pg_current_snapshot()'s text (xip sorted, at most MAX_FLOOR_XIDS
    kept) and None for anything else; floor_covered asks the snapshot to have completed every
    xid below the floor's xmax that the floor does not list as running."""
    assert _xidfloor.parse_snapshot("10:20:15,12") == (20, (12, 15))
    assert _xidfloor.parse_snapshot("10:20:") == (20, ())
    many = ",".join(str(x) for x in range(100, 200))
    assert _xidfloor.parse_snapshot(f"100:300:{many}") == (300, tuple(range(100, 100 + _xidfloor.MAX_FLOOR_XIDS)))
    for junk in JUNK_SNAPSHOTS:
        assert _xidfloor.parse_snapshot(junk) is None, junk
    floor = (20, (12, 15))
    assert _xidfloor.floor_covered(floor, (20, ()))
    assert _xidfloor.floor_covered(floor, (25, (12, 21)))
    assert not _xidfloor.floor_covered(floor, (19, ()))  # 19 may not have completed there
    assert not _xidfloor.floor_covered(floor, (20, (13,)))  # 13: completed on the replica
