"""The PostgreSQL failover actions (fence, promote, slots, repoint, the failover record), the
transaction ids every write records, and the loss report after an async failover, against
real clusters. The actions are driven one by one here; test_failover_manager.py drives them
through the FailoverManager.
"""

from __future__ import annotations

import time

import pytest

from conftest import require_pg_server, wait_until

import replikit
from replikit import _core
from replikit.pg import database_for_cluster
from replikit.testing import ClusterSQLError, LocalCluster

pytestmark = pytest.mark.pg

WAIT_S = 30.0
TIMELINE_SQL = "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"


@pytest.fixture(autouse=True)
def _server():
    require_pg_server()


def stop_receiver(cluster, name):
    """Detach a standby from its primary (its walreceiver ends): what it has is all it gets."""
    cluster.sql(name, "ALTER SYSTEM SET primary_conninfo = ''")
    cluster.sql(name, "SELECT pg_reload_conf()")
    wait_until(lambda: cluster.sql(name, "SELECT count(*) FROM pg_stat_wal_receiver")[0][0] == "0",
               WAIT_S, f"{name}'s walreceiver to stop")


def ids_on(cluster, node):
    return {int(r[0]) for r in cluster.sql(node, "SELECT id FROM f")}


def test_writes_record_their_transaction_ids():
    with LocalCluster(replicas=1) as cluster:
        db = database_for_cluster(cluster)
        try:
            s = replikit.Session()
            db.execute("CREATE TABLE f (id int primary key)", session=s)
            db.execute("INSERT INTO f VALUES (1)", session=s)
            db.execute("INSERT INTO f VALUES ($1)", [2], session=s)
            db.transaction(["INSERT INTO f VALUES (3)", ("INSERT INTO f VALUES ($1)", [4])], session=s)
            r = db.execute("INSERT INTO f VALUES (5) RETURNING id", session=s)
            assert r.rows == [(5,)]  # the user's result, not the xid prefix's
            db.execute("VACUUM f", session=s)  # refuses a transaction block: run alone, xid unknown
            db.execute("-- nothing but a comment", session=s)
            xids = [w.xid for w in s.acked_writes]
            assert len(xids) == 7
            assert xids[-2] == 0
            known = [x for x in xids if x != 0]
            assert known == sorted(known) and len(set(known)) == len(known)
            # Each recorded xid is the transaction that committed the row.
            committed = cluster.sql("primary", f"SELECT pg_xact_status('{xids[1]}'::xid8)")[0][0]
            assert committed == "committed"
            timeline = int(cluster.sql("primary", TIMELINE_SQL)[0][0])
            assert {w.timeline for w in s.acked_writes} == {timeline}
            # A failed write records nothing.
            with pytest.raises(replikit.QueryError):
                db.execute("INSERT INTO f VALUES (1)", session=s)
            assert len(s.acked_writes) == 7
            # Nothing lost without a failover.
            report = db.lost_writes(s)
            assert report.lost == [] and report.current == 7, report
        finally:
            db.close()


def test_standby_conninfo_quotes_every_value():
    conninfo = _core.standby_conninfo("host=127.0.0.1 port=5999 user=postgres password='a b\\'c\\\\d'", "r'1 x")
    assert conninfo == ("user='postgres' password='a b\\'c\\\\d' host='127.0.0.1' port='5999' "
                        "application_name='r\\'1 x'")
    with pytest.raises(replikit.InvalidArgument) as e:
        _core.standby_conninfo("host='unterminated", "r1")
    assert e.value.argument == "primary_dsn"
    assert _core.slot_name("R-1.x") == "r_1_x"


def test_async_failover_actions_and_exact_loss_report():
    with LocalCluster(replicas=2, mode="async") as cluster:
        db = database_for_cluster(cluster, probe_interval_ms=50)
        try:
            s = replikit.Session()
            db.execute("CREATE TABLE f (id int primary key)", session=s)
            for i in range(20):
                db.execute(f"INSERT INTO f VALUES ({i})", session=s)
            cluster.wait_caught_up(timeout_ms=WAIT_S * 1000)
            for name in ("r1", "r2"):
                stop_receiver(cluster, name)
            for i in range(20, 40):  # acknowledged by the primary, on no replica
                db.execute("INSERT INTO f VALUES ($1)", [i], session=s)
            xid_of = {i: w.xid for i, w in zip(range(-1, 40), s.acked_writes)}
            cluster.kill("primary")

            dsn = {n: cluster.dsn(n) for n in ("primary", "r1", "r2")}
            fence = _core.fence_node("primary", dsn["primary"], timeout_ms=500)
            assert not fence.ok  # crashed: nothing to fence
            bound = _core.next_xid_bound("r1", dsn["r1"])
            assert bound is not None and bound <= xid_of[20]
            promoted = _core.promote_node("r1", dsn["r1"])
            assert promoted.ok and promoted.changed, promoted
            again = _core.promote_node("r1", dsn["r1"])
            assert again.ok and not again.changed, again
            assert _core.next_xid_bound("r1", dsn["r1"]) is None  # not a standby any more
            timeline = int(cluster.sql("r1", TIMELINE_SQL)[0][0])
            rec = _core.record_failover("r1", dsn["r1"], timeline, bound)
            assert rec.ok and rec.changed, rec
            assert not _core.record_failover("r1", dsn["r1"], timeline, bound).changed

            # The database's prober follows the promoted node (newer timeline): writes go there.
            wait_until(lambda: db.node("r1").role == replikit.Role.PRIMARY, WAIT_S, "the prober to adopt r1")
            r = db.execute("INSERT INTO f VALUES (1000)", session=s)
            assert r.node == "r1"

            report = db.lost_writes(s)
            missing = set(range(40)) - ids_on(cluster, "r1")
            assert missing == set(range(20, 40))
            assert sorted(report.lost_xids) == sorted(xid_of[i] for i in missing), report
            assert report.survived == 21 and report.current == 1 and report.unknown == [], report
            assert "lost_xids=" in repr(report)

            # The other replica: a slot on the new primary, repointed, streams on the new timeline.
            slot = _core.slot_name("r2")
            assert _core.create_slot("r1", dsn["r1"], slot).changed
            assert not _core.create_slot("r1", dsn["r1"], slot).changed
            conninfo = _core.standby_conninfo(dsn["r1"], "r2")
            rp = _core.repoint_node("r2", dsn["r2"], conninfo, slot)
            assert rp.ok and rp.changed, rp
            assert not _core.repoint_node("r2", dsn["r2"], conninfo, slot).changed
            assert cluster.sql("r2", "SHOW primary_conninfo")[0][0] == conninfo
            wait_until(lambda: cluster.sql("r2", "SELECT received_tli FROM pg_stat_wal_receiver")
                       == [(str(timeline),)], WAIT_S, "r2 to stream on the new timeline")
            wait_until(lambda: 1000 in ids_on(cluster, "r2"), WAIT_S, "r2 to replay the new write")
            assert cluster.sql("r1", "SELECT active FROM pg_replication_slots WHERE slot_name = 'r2'") == [("t",)]

            # The old primary comes back: never a write through replikit; fenced, it refuses them.
            cluster.start("primary")
            before = ids_on(cluster, "primary")
            assert db.wait_probes(3, 10_000)
            assert db.node("primary").role == replikit.Role.REPLICA and not db.node("primary").up
            for i in range(1001, 1011):
                assert db.execute(f"INSERT INTO f VALUES ({i})", session=s).node == "r1"
            assert ids_on(cluster, "primary") == before
            fenced = _core.fence_node("primary", dsn["primary"])
            assert fenced.ok and fenced.changed, fenced
            assert not _core.fence_node("primary", dsn["primary"]).changed
            with pytest.raises(ClusterSQLError, match="read-only"):
                cluster.sql("primary", "INSERT INTO f VALUES (5000)")
        finally:
            db.close()
