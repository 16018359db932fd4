"""replikit.testing.EtcdCluster: members on loopback ports of its own, faults on demand, and
nothing left running whatever happens."""

from __future__ import annotations

import os

import pytest

import replikit
from replikit.testing import EtcdCluster
from replikit.testing.etcd import ETCD_PORT_RANGE, member_healthy
from replikit.testing.nodes import PORT_RANGE


@pytest.mark.parametrize("arguments, error, argument", [
    (dict(members=2), replikit.InvalidArgument, "members"),
    (dict(members="3"), replikit.ArgumentTypeError, "members"),
    (dict(base_port=80), replikit.InvalidArgument, "base_port"),
    (dict(base_port=3.5), replikit.ArgumentTypeError, "base_port"),
    (dict(directory=5), replikit.ArgumentTypeError, "directory"),
    (dict(startup_timeout_ms=-1), replikit.InvalidArgument, "startup_timeout_ms"),
    (dict(heartbeat_ms=5), replikit.InvalidArgument, "heartbeat_ms"),
    (dict(heartbeat_ms=100, election_ms=200), replikit.InvalidArgument, "election_ms"),
])
def test_bad_arguments_are_typed_errors_naming_the_argument(arguments, error, argument):
    with pytest.raises(error) as info:
        EtcdCluster(**arguments, start=False)
    assert info.value.argument == argument


def test_its_port_range_is_apart_from_postgresqls_and_etcds_defaults():
    low, high = ETCD_PORT_RANGE
    assert high <= 32768  # below Linux's ephemeral range
    assert PORT_RANGE[1] <= low
    assert not low <= 2379 < high and not low <= 5432 < high


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as handle:  # a zombie counts as gone
        return handle.read().rsplit(")", 1)[1].split()[0] == "Z"


@pytest.mark.etcd
def test_members_fail_and_return_on_demand_and_stop_leaves_nothing():
    cluster = EtcdCluster(members=3)
    try:
        directory = cluster.directory
        pids = [m.process.pid for m in cluster.members]
        assert len(set(cluster.endpoints)) == 3
        assert all(member_healthy(url) for url in cluster.endpoints)
        ports = [m.client_port for m in cluster.members] + [m.peer_port for m in cluster.members]
        assert not {2379, 2380, 5432} & set(ports)
        leader = cluster.leader()
        cluster.kill(leader)
        assert _gone(pids[leader]) and not cluster.members[leader].running
        assert cluster.leader() != leader  # the two others elect one of them
        cluster.restart(leader)
        assert member_healthy(cluster.endpoints[leader])
        cluster.pause(0)
        assert not member_healthy(cluster.endpoints[0], timeout_s=0.3)
        cluster.resume(0)
        cluster.wait_ready([0], timeout_ms=10_000)
        pids = [m.process.pid for m in cluster.members]
        cluster.pause(1)  # stop() must end a paused member too
    finally:
        cluster.stop()
    assert all(_gone(pid) for pid in pids)
    assert not os.path.exists(directory)
    cluster.stop()  # twice is fine


@pytest.mark.etcd
def test_an_exception_inside_with_stops_every_member():
    pids = []
    with pytest.raises(RuntimeError, match="test failed"):
        with EtcdCluster(members=1) as cluster:
            pids = [m.process.pid for m in cluster.members]
            raise RuntimeError("test failed")
    assert pids and all(_gone(pid) for pid in pids)


@pytest.mark.etcd
def test_a_member_that_cannot_start_is_reported_with_its_log(tmp_path):
    # A file where the data directory should be: etcd exits at once.
    (tmp_path / "etcd0").write_text("not a directory")
    with pytest.raises(replikit.testing.ClusterError) as info:
        EtcdCluster(members=1, directory=str(tmp_path), startup_timeout_ms=10_000)
    assert "etcd0" in str(info.value)
