"""The synchronous guarantee across a failover and a switchover (FailoverManager's
keep_synchronous): the new primary gets the old primary's synchronous_standby_names, same
method and count, over the survivors, set on the candidate before its promotion; so a commit
the new primary acknowledges is on the survivor (with the survivor frozen, it waits). With
keep_synchronous=False the old behaviour: the new primary acknowledges on its own.
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from conftest import require_pg_server, wait_until
from failover_helpers import WAIT_S, fast_database, fast_manager

import replikit
from replikit import _core
from replikit.pg import ReplicatedDatabase
from replikit.testing import LocalCluster

EXPECTED = {"semi_sync": 'ANY 1 ("{}")', "sync_all": 'FIRST 1 ("{}")'}


def _show(cluster, node):
    return cluster.sql(node, "SHOW synchronous_standby_names")[0][0]


def _sync_states(cluster, node):
    return dict(cluster.sql(node, "SELECT application_name, sync_state FROM pg_stat_replication"))


def _commit_waits_for(cluster, primary, survivor, wait_s=1.0):
    """Freezes ``survivor``, commits a row on ``primary`` and returns (waited, took_s): whether
    the commit was still waiting ``wait_s`` later (then the survivor is thawed and it ends)."""
    done = threading.Event()
    errors = []

    def commit():
        try:
            with psycopg.connect(cluster.dsn(primary), autocommit=True, connect_timeout=5) as conn:
                conn.execute("CREATE TABLE IF NOT EXISTS sync_probe (id int)")
                conn.execute("INSERT INTO sync_probe VALUES (1)")
        except Exception as e:  # reported by the caller
            errors.append(e)
        finally:
            done.set()

    cluster.pause(survivor)
    try:
        started = time.monotonic()
        thread = threading.Thread(target=commit, daemon=True)
        thread.start()
        waited = not done.wait(wait_s)
    finally:
        cluster.resume(survivor)
    assert done.wait(WAIT_S), "the commit did not end once the survivor was thawed"
    thread.join(WAIT_S)
    assert errors == [], errors
    return waited, time.monotonic() - started


def _crash_primary(cluster, manager):
    """Starts ``manager``, crashes the primary once it has read the primary's setting, and
    returns (report, new primary, survivor) of the failover it ran."""
    manager.start()
    time.sleep(0.3)  # the manager reads synchronous_standby_names while the primary is up
    cluster.crash("primary")
    assert manager.wait_reports(1, WAIT_S * 1000)
    report = manager.reports()[0]
    assert report.promoted, report
    return report, report.promoted, ({"r1", "r2"} - {report.promoted}).pop()


def _failover(cluster, **manager_options):
    db = fast_database(cluster)
    manager = fast_manager(db, **manager_options)
    try:
        report, new, survivor = _crash_primary(cluster, manager)
        wait_until(lambda: cluster.sql(survivor, "SELECT received_tli FROM pg_stat_wal_receiver") == [("2",)],
                   WAIT_S, f"{survivor} streaming from {new}")
        time.sleep(0.3)  # reconciliation rounds (every 100 ms) must leave the setting alone
        return report, new, survivor, manager.reports()
    finally:
        manager.stop()
        db.close()


@pytest.mark.pg
@pytest.mark.parametrize("mode", ["semi_sync", "sync_all"])
def test_a_failover_keeps_the_synchronous_guarantee(mode):
    require_pg_server()
    with LocalCluster(replicas=2, mode=mode) as cluster:
        report, new, survivor, reports = _failover(cluster)
        expected = EXPECTED[mode].format(survivor)
        print(f"{mode}: {report!r}; actions {[(a.action, a.node, a.detail) for a in report.actions]}")
        assert report.synchronous_standby_names == expected, report
        assert _show(cluster, new) == expected
        assert len(reports) == 1, reports
        carried = [a for a in report.actions if a.action == "synchronous"]
        assert len(carried) == 1 and carried[0].ok and carried[0].node == new, carried
        assert [a.action for a in report.actions].index("synchronous") < \
            [a.action for a in report.actions].index("promote"), report.actions
        if mode == "sync_all":  # FIRST 2 over two replicas: one survivor left for a count of 2
            assert "1 standby(s) left for a count of 2" in report.reason, report.reason
        wait_until(lambda: _sync_states(cluster, new).get(survivor) in ("sync", "quorum"), WAIT_S,
                   f"{survivor} a synchronous standby of {new}")
        waited, took_s = _commit_waits_for(cluster, new, survivor)
        print(f"{mode}: commit on {new} with {survivor} frozen waited: {waited} ({took_s * 1000:.0f} ms)")
        assert waited


@pytest.mark.pg
def test_without_keep_synchronous_the_new_primary_acknowledges_on_its_own():
    require_pg_server()
    with LocalCluster(replicas=2, mode="semi_sync") as cluster:
        report, new, survivor, _ = _failover(cluster, keep_synchronous=False)
        assert report.synchronous_standby_names == "", report
        assert "synchronous" not in [a.action for a in report.actions]
        assert _show(cluster, new) == ""
        waited, took_s = _commit_waits_for(cluster, new, survivor)
        assert not waited, took_s


@pytest.mark.pg
def test_a_switchover_keeps_the_synchronous_guarantee_and_a_second_run_changes_nothing():
    require_pg_server()
    with LocalCluster(replicas=2, mode="semi_sync") as cluster:
        db = fast_database(cluster)
        manager = fast_manager(db)
        try:
            manager.start()
            report = manager.switchover("r1")
            assert report.promoted == "r1", report
            assert report.synchronous_standby_names == 'ANY 1 ("r2")', report
            assert _show(cluster, "r1") == 'ANY 1 ("r2")'
            wait_until(lambda: _sync_states(cluster, "r1").get("r2") == "quorum", WAIT_S, "r2 a quorum standby of r1")
            time.sleep(0.3)  # reconciliation rounds
            manager.stop()
            # A manager started afresh (a restart) reads the setting from the new primary and
            # leaves it alone.
            again = fast_manager(db)
            again.start()
            time.sleep(0.5)
            again.stop()
            assert again.reports() == [] and len(manager.reports()) == 1
            assert _show(cluster, "r1") == 'ANY 1 ("r2")'
            waited, _ = _commit_waits_for(cluster, "r1", "r2")
            assert waited
        finally:
            manager.stop()
            db.close()


def test_keep_synchronous_is_a_bool_defaulting_to_true():
    db = ReplicatedDatabase(("p", "host=127.0.0.1 port=1"), [("r1", "host=127.0.0.1 port=1")],
                            probe_interval_ms=60_000)
    try:
        assert _core.FailoverManager(db).keep_synchronous is True
        assert _core.FailoverManager(db, keep_synchronous=False).keep_synchronous is False
        for bad in ("yes", 1, None):
            with pytest.raises(replikit.ArgumentTypeError) as e:
                _core.FailoverManager(db, keep_synchronous=bad)
            assert e.value.argument == "keep_synchronous"
        with pytest.raises(replikit.ArgumentTypeError) as e:
            db.start_failover_manager(keep_synchronous="no")
        assert e.value.argument == "keep_synchronous"
    finally:
        db.close()


@pytest.mark.pg
@pytest.mark.parametrize("mode, carried, restored, waits", [
    ("semi_sync", 'ANY 1 ("{s}")', 'ANY 1 ("{s}", "primary")', False),
    ("sync_all", 'FIRST 1 ("{s}")', 'FIRST 2 ("{s}", "primary")', True),
])
def test_a_rejoined_old_primary_is_listed_again_in_the_new_primarys_synchronous_setting(
        mode, carried, restored, waits):
    # The manager keeps running while the crashed old primary is rewound and rejoins as a replica
    # of the new one: once it streams from it, a reconciliation round lists it (last, in the
    # promoted node's stead: same method, the old count as far as the names allow). With the
    # survivor frozen, a commit then goes through on the old primary's acknowledgement (ANY 1), or still waits for
    # both (FIRST 2).
    require_pg_server()
    with LocalCluster(replicas=2, mode=mode) as cluster:
        db = fast_database(cluster)
        manager = fast_manager(db)
        try:
            report, new, survivor = _crash_primary(cluster, manager)
            carried, restored = carried.format(s=survivor), restored.format(s=survivor)
            assert report.synchronous_standby_names == carried, report
            cluster.adopt_promotion(new)
            wait_until(lambda: cluster.sql(survivor, "SELECT received_tli FROM pg_stat_wal_receiver") == [("2",)],
                       WAIT_S, f"{survivor} streaming from {new}")
            cluster.rejoin("primary", new)
            wait_until(lambda: _show(cluster, new) == restored, WAIT_S, f"{new}'s setting {restored}")
            wait_until(lambda: _sync_states(cluster, new).get("primary") in ("sync", "quorum"),
                       WAIT_S, f"the old primary a synchronous standby of {new}")
            time.sleep(0.3)  # later rounds leave it alone
            assert _show(cluster, new) == restored
            assert len(manager.reports()) == 1, manager.reports()
            waited, took_s = _commit_waits_for(cluster, new, survivor)
            print(f"{mode}: {restored}: commit on {new} with {survivor} frozen waited: {waited} "
                  f"({took_s * 1000:.0f} ms)")
            assert waited == waits
        finally:
            manager.stop()
            db.close()


@pytest.mark.pg
def test_a_rejoined_old_primary_streaming_under_another_name_is_not_listed():
    # PostgreSQL counts a synchronous standby by its application_name: an old primary that
    # rejoins under another name (its own primary_conninfo) would never count, so listing it
    # under its node name with the old count (FIRST 2) would hold every commit of the new
    # primary. The setting stays as carried until a walsender streams under that name.
    require_pg_server()
    with LocalCluster(replicas=2, mode="sync_all") as cluster:
        db = fast_database(cluster)
        manager = fast_manager(db)
        try:
            _, new, survivor = _crash_primary(cluster, manager)
            carried = f'FIRST 1 ("{survivor}")'
            assert _show(cluster, new) == carried
            manager.stop()  # the rejoin under another name first; the manager keeps its carry
            cluster.adopt_promotion(new)
            cluster.rejoin("primary", new)
            conninfo = cluster.sql("primary", "SHOW primary_conninfo")[0][0]
            cluster.sql("primary", "ALTER SYSTEM SET primary_conninfo = "
                        f"'{conninfo.replace(chr(39), chr(39) * 2)} application_name=elsewhere'")
            cluster.sql("primary", "SELECT pg_reload_conf()")
            wait_until(lambda: _sync_states(cluster, new).get("elsewhere") is not None, WAIT_S,
                       "the old primary streaming as 'elsewhere'")
            manager.start()
            time.sleep(0.5)  # reconciliation rounds (every 50 ms) must leave the setting alone
            assert _show(cluster, new) == carried
            waited, _ = _commit_waits_for(cluster, new, "primary", wait_s=0.5)
            assert not waited  # the survivor acknowledges; nobody waits for a name never seen
        finally:
            manager.stop()
            db.close()
