"""Coordination through etcd: the core's lease state machine and topology view from Python, and
EtcdCoordinator against a real etcd member and a real PostgreSQL cluster: one leader, takeover
when the leader cannot renew (it stops acting at its local deadline, before the new leader
starts), and the published topology reaching the other coordinator's router."""

from __future__ import annotations

import logging
import time

import pytest

from conftest import require_pg_server, wait_until

import replikit
from replikit import _core

MS = 1_000_000
WAIT_S = 30.0


# ---------------------------------------------------------------------- the core, from Python

def test_lease_deadline_counts_from_the_request_sent():
    lease = _core.LeaderLease(_core.LeaseConfig(ttl_ms=2000, margin_ms=600, renew_interval_ms=300))
    assert lease.state(0) == _core.LeaseState.CAMPAIGNING and lease.permit(0) is None
    lease.acquired(lease_sent_ns=100 * MS, now_ns=150 * MS, revision=7)
    permit = lease.permit(200 * MS)
    assert permit.revision == 7 and permit.valid_until_ns == 1500 * MS
    assert permit.valid(1499 * MS) and not permit.valid(1500 * MS)
    lease.renewed(sent_ns=400 * MS, now_ns=420 * MS, granted_ttl_ms=2000)
    assert lease.deadline_ns == 1800 * MS
    # Paused (SIGSTOP) after sending a keepalive; its positive answer comes after the deadline.
    lease.renewed(sent_ns=700 * MS, now_ns=5000 * MS, granted_ttl_ms=2000)
    assert lease.state(5000 * MS) == _core.LeaseState.LOST and not lease.may_act(5000 * MS)
    assert [t.to_state for t in lease.transitions][-1] == _core.LeaseState.LOST


def test_topology_view_ignores_older_revisions():
    view = _core.TopologyView()
    new = _core.PublishedTopology(primary="r1", timeline=2, epoch=2, switch_lsn="0/3000060",
                                  replicas=[("r2", "up"), _core.PublishedReplica("primary", "down")],
                                  leader_revision=5, revision=12)
    old = _core.PublishedTopology(primary="primary", replicas=[("r1", "up")], leader_revision=5, revision=9)
    assert view.offer(new) == _core.TopologyVerdict.APPLIED
    assert view.offer(old) == _core.TopologyVerdict.STALE
    assert view.offer(new) == _core.TopologyVerdict.DUPLICATE
    assert view.current == new and view.revision == 12 and view.stale == 1
    assert "switch_lsn='0/3000060'" in repr(new)


@pytest.mark.parametrize("call, error, argument", [
    (lambda: _core.LeaseConfig(ttl_ms=5), replikit.InvalidArgument, "ttl_ms"),
    (lambda: _core.LeaseConfig(margin_ms=5000), replikit.InvalidArgument, "margin_ms"),
    (lambda: _core.LeaseConfig(renew_interval_ms="1"), replikit.ArgumentTypeError, "renew_interval_ms"),
    (lambda: _core.LeaderLease(3), replikit.ArgumentTypeError, "config"),
    (lambda: _core.LeaderLease().acquired(lease_sent_ns=-1, revision=1), replikit.InvalidArgument, "lease_sent_ns"),
    (lambda: _core.LeaderLease().acquired(lease_sent_ns=0, revision=0), replikit.InvalidArgument, "revision"),
    (lambda: _core.PublishedTopology(primary=3), replikit.ArgumentTypeError, "primary"),
    (lambda: _core.PublishedTopology(primary="p", replicas="r1"), replikit.ArgumentTypeError, "replicas"),
    (lambda: _core.TopologyView().offer(_core.PublishedTopology(primary="p")), replikit.InvalidArgument, "revision"),
    (lambda: _core.TopologyView().offer("p"), replikit.ArgumentTypeError, "topology"),
])
def test_bad_input_names_the_argument(call, error, argument):
    with pytest.raises(error) as info:
        call()
    assert info.value.argument == argument


def test_coordinator_arguments():
    from replikit.coordination import EtcdCoordinator

    for kwargs, argument in [({}, "endpoints"), ({"endpoints": ["http://127.0.0.1:1"], "client": object()}, "endpoints"),
                             ({"endpoints": ["http://127.0.0.1:1"], "prefix": "x"}, "prefix"),
                             ({"endpoints": ["http://127.0.0.1:1"], "ttl_ms": 2500}, "ttl_ms"),
                             ({"endpoints": ["http://127.0.0.1:1"], "name": ""}, "name")]:
        with pytest.raises(replikit.InvalidArgument) as info:
            EtcdCoordinator(None, **kwargs)
        assert info.value.argument == argument


# ---------------------------------------------------------------------- real etcd and PostgreSQL

@pytest.fixture(scope="module")
def etcd1():
    from replikit.testing import EtcdCluster

    with EtcdCluster(members=1) as cluster:
        yield cluster


def _database(cluster):
    from replikit.pg import database_for_cluster

    return database_for_cluster(cluster, probe_interval_ms=50, probe_timeout_ms=200, connect_timeout_ms=2000)


def _coordinator(db, etcd, prefix, name, client=None):
    from replikit.coordination import EtcdCoordinator

    options = dict(detector=_core.DetectorConfig(interval_ms=50, missed_threshold=3), state_interval_ms=50)
    where = {"client": client} if client is not None else {"endpoints": etcd.endpoints}
    return EtcdCoordinator(db, prefix=prefix, name=name, ttl_ms=2000, **where, **options)


def _leaders(*coordinators):
    return [c.name for c in coordinators if c.status().leading]


def _became_leader_ns(coordinator):
    return max(t.at_ns for t in coordinator._lease.transitions if t.to_state == _core.LeaseState.LEADING)


def _until_b_applies_a_record(a, b, dbs, read_record, what):
    """Starts b, waits until it has applied the record read_record() finds once b has started
    (a's), then stops both coordinators and closes their databases."""
    try:
        b.start()
        published = read_record()
        wait_until(lambda: b.status().topology_revision == published.mod_revision, WAIT_S, what)
    finally:
        for c in (a, b):
            c.stop()
        for db in dbs:
            db.close()


@pytest.mark.pg
@pytest.mark.etcd
def test_a_record_published_between_the_read_and_the_watch_still_arrives(etcd1):
    """b reads the topology key while it is absent; the leader publishes before b's watch opens.
    The watch must start from the read's revision, not "from now", or b never learns the topology."""
    from replikit.etcd import EtcdClient
    from replikit.testing import LocalCluster

    require_pg_server()
    prefix = "/replikit/t_window"
    with LocalCluster(replicas=1, mode="async") as cluster, EtcdClient(etcd1.endpoints) as client_b:
        dbs = [_database(cluster), _database(cluster)]
        a = _coordinator(dbs[0], etcd1, prefix, "a")
        read_topology = client_b.get_at

        def read_then_let_a_publish(key):
            answer = read_topology(key)
            if key.endswith("/topology") and not a.status().leading:
                a.start()
                wait_until(lambda: client_b.get(key) is not None, WAIT_S, "a's first record")
            return answer

        client_b.get_at = read_then_let_a_publish
        b = _coordinator(dbs[1], etcd1, prefix, "b", client=client_b)
        _until_b_applies_a_record(a, b, dbs, lambda: read_topology(prefix + "/topology")[0],
                                  "b applying the record published after its read")


@pytest.mark.pg
@pytest.mark.etcd
def test_a_record_published_while_etcd_was_unreachable_arrives_when_it_is_back(etcd1):
    """b cannot reach etcd at start, and its watch opens only after the leader has published (a
    partition that heals): b must read what it missed once etcd answers it again."""
    from replikit.etcd import CoordinationUnavailable, EtcdClient
    from replikit.testing import LocalCluster

    require_pg_server()
    prefix = "/replikit/t_partition"
    with LocalCluster(replicas=1, mode="async") as cluster, EtcdClient(etcd1.endpoints) as client_b:
        dbs = [_database(cluster), _database(cluster)]
        a = _coordinator(dbs[0], etcd1, prefix, "a")
        read_key, open_watch = client_b.get_at, client_b.watch
        partitioned = [True]

        def get_at(key):
            if partitioned[0]:
                raise CoordinationUnavailable("partitioned by the test")
            return read_key(key)

        def watch(key, **kwargs):  # the stream opens "from now", after a has published
            a.start()
            wait_until(lambda: read_key(prefix + "/topology")[0] is not None, WAIT_S, "a's first record")
            partitioned[0] = False
            return open_watch(key, **kwargs)

        client_b.get_at, client_b.watch = get_at, watch
        b = _coordinator(dbs[1], etcd1, prefix, "b", client=client_b)
        _until_b_applies_a_record(a, b, dbs, lambda: read_key(prefix + "/topology")[0],
                                  "b applying the record published while it could not reach etcd")


@pytest.mark.pg
@pytest.mark.etcd
def test_one_leader_and_the_topology_reaches_the_other_router(etcd1, caplog):
    from replikit.testing import LocalCluster

    require_pg_server()
    caplog.set_level(logging.DEBUG, logger="replikit")
    with LocalCluster(replicas=2, mode="async") as cluster:
        dbs = [_database(cluster), _database(cluster)]
        a, b = _coordinator(dbs[0], etcd1, "/replikit/t1", "a"), _coordinator(dbs[1], etcd1, "/replikit/t1", "b")
        try:
            a.start()
            b.start()
            wait_until(lambda: len(_leaders(a, b)) == 1, WAIT_S, "one leader")
            leader, follower = (a, b) if a.status().leading else (b, a)
            wait_until(lambda: follower.status().topology_revision > 0, WAIT_S, "the first topology")
            wait_until(lambda: follower.status().leader == leader.name, WAIT_S, "the follower seeing the leader")
            for _ in range(20):  # still exactly one, and both agree who
                assert _leaders(a, b) == [leader.name]
                assert follower.status().leader == leader.name
                time.sleep(0.05)
            # A follower's manager observes only: it does nothing, and says why.
            refused = follower.manager.switchover("r1")
            assert refused.promoted is None and refused.actions == [], refused
            assert "no valid lease permit" in refused.reason
            # The leader switches over; its published topology moves the other router.
            before = follower.status().topology_revision
            report = leader.manager.switchover("r1")
            assert report.promoted == "r1" and report.permit_revision == leader.status().lease_revision, report
            done_ns = time.monotonic_ns()
            wait_until(lambda: follower.status().primary == "r1", WAIT_S, "the follower's router on r1")
            applied_ms = (time.monotonic_ns() - done_ns) / 1e6
            status = follower.status()
            assert status.topology_revision > before and status.coordination_available
            assert dbs[1].published_topology.primary == "r1" and dbs[1].published_topology.timeline >= 2
            r = dbs[1].execute("SELECT pg_is_in_recovery()", session=replikit.Session())
            assert r.node == "r1"
            print(f"\ntopology published by {leader.name} applied by {follower.name} {applied_ms:.1f} ms after "
                  f"the switchover returned; {status!r}")
        finally:
            for c in (a, b):
                c.stop()
            for db in dbs:
                db.close()
    text = caplog.text
    assert "password" not in text and "host=" not in text and "port=" not in text


@pytest.mark.pg
@pytest.mark.etcd
def test_a_leader_that_cannot_renew_stops_before_another_starts(etcd1):
    from replikit.coordination import EtcdCoordinator  # noqa: F401
    from replikit.etcd import CoordinationUnavailable, EtcdClient
    from replikit.testing import LocalCluster

    require_pg_server()
    with LocalCluster(replicas=1, mode="async") as cluster:
        dbs = [_database(cluster), _database(cluster)]
        client_a = EtcdClient(etcd1.endpoints, timeout_ms=300)
        a = _coordinator(dbs[0], etcd1, "/replikit/t2", "a", client=client_a)
        b = _coordinator(dbs[1], etcd1, "/replikit/t2", "b")
        try:
            a.start()
            wait_until(lambda: a.status().leading, WAIT_S, "a leading")
            b.start()
            wait_until(lambda: b.status().leader == "a", WAIT_S, "b following a")
            # As a pause (SIGSTOP) or a partition makes it: a's calls stop reaching etcd (its lease
            # runs out there) while its process goes on.
            calls = ("keepalive", "get", "grant", "create", "put_if")

            def unreachable(*args, **kwargs):
                raise CoordinationUnavailable("no endpoint answered (simulated)")

            for name in calls:
                setattr(client_a, name, unreachable)
            primary_before = a.status().primary
            deadline_ns = a.manager.permit.valid_until_ns
            wait_until(lambda: b.status().leading, WAIT_S, "b leading")
            taken_ns = _became_leader_ns(b)
            status = a.status()
            # a stopped acting at its own deadline, before b could start: no overlap.
            assert deadline_ns < taken_ns, (deadline_ns, taken_ns)
            assert not status.leading and (a.manager.permit is None or not a.manager.permit.valid())
            # It keeps its last topology and says etcd is out of reach.
            assert not status.coordination_available and "unavailable" in status.reason
            assert status.primary == primary_before and status.leader is None
            report = a.manager.failover_now()
            assert report.promoted is None and report.actions == [], report
            assert "no valid lease permit" in report.reason
            assert b.status().lease_revision > a.status().lease_revision
            print(f"\na's deadline {(taken_ns - deadline_ns) / 1e6:.0f} ms before b led; {status!r}")
            # Back: a finds b's key and follows.
            for name in calls:
                delattr(client_a, name)
            wait_until(lambda: a.status().leader == "b" and a.status().coordination_available, WAIT_S,
                       "a following b")
            assert _leaders(a, b) == ["b"]
        finally:
            for c in (a, b):
                c.stop()
            client_a.close()
            for db in dbs:
                db.close()


@pytest.mark.pg
@pytest.mark.etcd
def test_cli_failover_manager_with_etcd(etcd1):
    import subprocess
    import sys

    from replikit.coordination import read_config
    from replikit.etcd import EtcdClient
    from replikit.testing import LocalCluster

    require_pg_server()
    with LocalCluster(replicas=1, mode="async") as cluster:
        cli = [sys.executable, "-m", "replikit", "failover-manager", "--etcd", ",".join(etcd1.endpoints),
               "--etcd-prefix", "/replikit/t3", "--etcd-name", "cli", "--interval-ms", "50"]
        nodes = ["--primary", f"primary={cluster.dsn('primary')}", "--replica", f"r1={cluster.dsn('r1')}"]
        first = subprocess.run(cli + nodes + ["--write-config", "--duration", "2.5", "--json"],
                               capture_output=True, text=True, timeout=60)
        assert first.returncode == 0, first.stderr
        assert "leading=True" in first.stderr and first.stdout == "", first.stderr
        with EtcdClient(etcd1.endpoints) as client:
            config = read_config(client, "/replikit/t3")
            assert list(config.members) == ["primary", "r1"]
            assert config.detector == {"interval_ms": 50.0, "missed_threshold": 3}
            assert "host=" not in repr(config) and "port=" not in repr(config)
            assert client.get("/replikit/t3/topology") is not None
        # The members come from etcd when the command line names none.
        second = subprocess.run(cli + ["--duration", "0.5"], capture_output=True, text=True, timeout=60)
        assert second.returncode == 0, second.stderr
        assert "primary='primary'" in second.stderr


@pytest.mark.pg
def test_manager_under_require_permit_only_observes_without_one(pg_cluster):
    from replikit.pg import database_for_cluster

    require_pg_server()
    db = database_for_cluster(pg_cluster, probe_interval_ms=50, probe_timeout_ms=200)
    manager = _core.FailoverManager(db, require_permit=True)
    try:
        assert manager.require_permit and manager.permit is None
        assert not _core.FailoverManager(db).require_permit  # the single-process default
        refused = manager.failover_now()
        assert refused.promoted is None and refused.actions == [] and refused.permit_revision == 0, refused
        assert "no valid lease permit before 'plan'" in refused.reason
        far = time.monotonic_ns() + 60_000 * MS
        manager.grant_permit(_core.LeasePermit(revision=5, valid_until_ns=far))
        manager.grant_permit(_core.LeasePermit(revision=4, valid_until_ns=far + 1))  # an older leader's
        assert manager.permit.revision == 5 and manager.permit.valid_until_ns == far
        manager.grant_permit(_core.LeasePermit(revision=5, valid_until_ns=time.monotonic_ns() - 1))  # expired
        assert manager.failover_now().actions == []
        manager.revoke_permit()
        assert manager.permit is None
        with pytest.raises(replikit.ArgumentTypeError) as info:
            manager.grant_permit("5")
        assert info.value.argument == "permit"
    finally:
        db.close()
