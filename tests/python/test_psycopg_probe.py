"""The probers of replikit.psycopg's routers (replikit.psycopg._probe) against the session's
real cluster: bounded probes of a frozen node that hold up no other thread, a probe on a
descriptor past select()'s limit, DSNs that list several hosts, and host names whose
resolution hangs (the one stand-in: socket.getaddrinfo, as there is no slow DNS server here).
Scenarios change the cluster through `pg_cluster_reset`, which puts it back afterwards."""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Iterator

import pytest

from conftest import wait_until

from replikit._core import DatabaseOptions

psycopg = pytest.importorskip("psycopg")
pytest.importorskip("psycopg_pool")

from replikit.psycopg import ConnectionRouter, _base, _probe, _resolve  # noqa: E402
from psycopg_helpers import open_router  # noqa: E402
from psycopg_helpers import cluster, tables  # noqa: E402,F401  (fixtures)

pytestmark = pytest.mark.pg


def test_a_frozen_node_is_marked_down_within_the_probe_bound(cluster):
    """A server that stops answering (SIGSTOP) holds no prober: its probe gives up after
    probe_timeout_ms, the node is marked down, the other nodes go on being probed; it comes
    back after it is thawed."""
    with open_router(cluster, probe_interval_ms=50.0, probe_timeout_ms=300.0) as router:
        cluster.freeze("r2")
        try:
            started = time.monotonic()
            wait_until(lambda: not router.core.topology.info("r2").up, 5, "r2 marked down")
            took = time.monotonic() - started
            before = {n["name"]: n["probes_ok"] for n in router.nodes()}

            def others_probed():
                now = {n["name"]: n["probes_ok"] for n in router.nodes()}
                return now["r1"] >= before["r1"] + 2 and now["primary"] >= before["primary"] + 2

            wait_until(others_probed, 5, "r1 and the primary probed on while r2 is frozen")
            for _ in range(10):
                with router.read(None, consistency="eventual") as conn:
                    conn.execute("SELECT 1")
                assert router.last_route.node == "r1"
        finally:
            cluster.thaw("r2")
        print(f"\n[adapter freeze] r2 marked down after {took * 1000:.0f} ms")
        assert took < 2.0
        wait_until(lambda: router.core.topology.info("r2").up, 10, "r2 up again after the thaw")


def test_a_prober_reconnecting_to_a_frozen_node_holds_no_other_thread(cluster):
    """The prober's connect to a server that stopped answering waits in select(), which
    releases the GIL; libpq's blocking connect held it for the whole connect_timeout (2 s), so
    every other thread of the process, the other probers' and the application's, stood still
    at each attempt (the primary's probe then missed its 300 ms bound and it was marked down)."""
    with open_router(cluster, probe_interval_ms=50.0, probe_timeout_ms=300.0) as router:
        cluster.freeze("r2")
        try:
            wait_until(lambda: not router.core.topology.info("r2").up, 5, "r2 marked down")
            failed = {n["name"]: n["probes_failed"] for n in router.nodes()}["r2"]
            longest, last = 0.0, time.monotonic()
            deadline = last + 10.0
            # until a connect attempt to r2 has failed (connect_timeout 2 s): sleeps of 1 ms
            while ({n["name"]: n["probes_failed"] for n in router.nodes()}["r2"] < failed + 1
                   and time.monotonic() < deadline):
                time.sleep(0.001)
                now = time.monotonic()
                longest, last = max(longest, now - last), now
            attempts = {n["name"]: n["probes_failed"] for n in router.nodes()}["r2"] - failed
        finally:
            cluster.thaw("r2")
        print(f"\n[adapter freeze] longest 1 ms sleep while r2's prober reconnected: {longest * 1000:.0f} ms")
        assert attempts >= 1, "no connect attempt to the frozen r2 ended within 10 s"
        assert longest < 1.0
        wait_until(lambda: router.core.topology.info("r2").up, 10, "r2 up again after the thaw")


def test_a_probe_on_a_descriptor_past_select_s_limit(cluster):
    """A process with many files open (a server's sockets, large pools) gets descriptors past
    FD_SETSIZE (1024), which select() refuses (ValueError): every probe failed and each node
    stayed down. The probe waits with poll()."""
    import os
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the open-files limit ({hard}) stays below select()'s 1024")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = []
    try:
        while len(held) < 1100:
            held.append(os.open(os.devnull, os.O_RDONLY))
        conninfo = _probe.probe_conninfo(cluster.dsn("primary"), DatabaseOptions())
        pgconn, row = _probe.probe_once(None, conninfo, 2.0, 2.0)
        try:
            assert pgconn.socket >= 1024
            assert row[0] is False  # the primary: not in recovery
            pgconn, row = _probe.probe_once(pgconn, conninfo, 2.0, 2.0)  # again on the same connection
            assert row[0] is False
        finally:
            pgconn.finish()
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def hosts_dsn(cluster, *ports: int) -> str:
    """A node DSN that lists several hosts (all on the cluster's address), tried in this order."""
    host = cluster.host
    return (f"host={','.join([host] * len(ports))} port={','.join(str(p) for p in ports)} "
            "dbname=postgres user=postgres")


@contextlib.contextmanager
def silent_endpoint(host: str) -> Iterator[int]:
    """A port that accepts TCP connections (the kernel completes them) and never answers, as a
    frozen server's: its port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def test_each_host_of_a_dsn_gets_its_own_connect_timeout(cluster):
    """A node DSN listing several hosts: each host is given connect_timeout of its own, as libpq
    gives it. Its first host here accepts connections and never answers: the probe waits one
    connect_timeout for it, then connects to the second (r1) and succeeds, within one timeout
    and a margin. (One deadline over every host let the first host take it all: the probe failed
    and the node stayed down.)"""
    options = DatabaseOptions()
    connect_s = float(_base.connect_timeout_s(options))
    r1_port = cluster.node("r1").port
    with silent_endpoint(cluster.host) as silent:
        conninfo = _probe.probe_conninfo(hosts_dsn(cluster, silent, r1_port), options)
        started = time.monotonic()
        pgconn, row = _probe.probe_once(None, conninfo, 2.0, connect_s)
        took = time.monotonic() - started
    try:
        print(f"\n[probe hosts] connected to the second host after {took * 1000:.0f} ms "
              f"(connect_timeout {connect_s:g} s)")
        assert row[0] is True and pgconn.port == str(r1_port).encode()  # r1: in recovery
        assert connect_s * 0.9 <= took < connect_s + 3.0, took
    finally:
        pgconn.finish()


def test_a_dsn_whose_hosts_all_fail_says_so_for_each_within_hosts_times_the_timeout(cluster):
    """Every host silent: each is given the timeout (in all, hosts x timeout) and the error
    names every host with why it failed; a host that refuses fails at once."""
    dead = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    dead.bind((cluster.host, 0))  # bound, not listening: connections are refused
    refused = dead.getsockname()[1]
    try:
        with silent_endpoint(cluster.host) as one, silent_endpoint(cluster.host) as two:
            conninfo = _probe.probe_conninfo(hosts_dsn(cluster, one, refused, two), DatabaseOptions())
            started = time.monotonic()
            with pytest.raises(psycopg.OperationalError) as info:
                _probe.probe_connect(conninfo, 0.5)
            took = time.monotonic() - started
    finally:
        dead.close()
    message = str(info.value)
    print(f"\n[probe hosts] all failed after {took * 1000:.0f} ms: {message}")
    assert 2 * 0.5 * 0.9 <= took < 2 * 0.5 + 3.0, took
    assert message.count("no connection within 500 ms") == 2 and "3 attempts" in message
    assert all(f"port '{port}'" in message for port in (one, refused, two)), message


def test_a_closing_prober_tries_no_further_host(cluster):
    """The prober closing (its stop event set) while a DSN's first host is being tried: the
    walk ends with that attempt, so close() waits one connect_timeout at most, not hosts x
    connect_timeout (three silent hosts at 0.5 s each: ~0.5 s, not ~1.5 s)."""
    import threading

    stop = threading.Event()
    with silent_endpoint(cluster.host) as one, silent_endpoint(cluster.host) as two, \
            silent_endpoint(cluster.host) as three:
        conninfo = _probe.probe_conninfo(hosts_dsn(cluster, one, two, three), DatabaseOptions())
        timer = threading.Timer(0.2, stop.set)
        timer.start()
        started = time.monotonic()
        try:
            with pytest.raises(psycopg.OperationalError, match="the prober is closing: 2 of 3 hosts not tried"):
                _probe.probe_connect(conninfo, 0.5, stop)
        finally:
            timer.cancel()
        took = time.monotonic() - started
    print(f"\n[probe hosts] closing: gave up after {took * 1000:.0f} ms")
    assert 0.5 * 0.9 <= took < 2 * 0.5, took


def test_a_router_whose_replica_dsn_starts_with_a_frozen_host_probes_the_next(cluster):
    """A replica named by a DSN whose first host is a frozen server (r2, SIGSTOPped) and whose
    second is r1: its prober connects to r1 after one connect_timeout, so the node is up and its
    reads are served there. (With one deadline over every host each probe failed: the node
    stayed down.)"""
    primary = ("primary", cluster.dsn("primary"))
    r1_port = cluster.node("r1").port
    cluster.freeze("r2")
    try:
        with ConnectionRouter(primary, [("either", hosts_dsn(cluster, cluster.node("r2").port, r1_port))]) as router:
            assert router.wait_probes(2, 10_000), router.nodes()
            either = {n["name"]: n for n in router.nodes()}["either"]
            assert either["up"] and either["reachable"] and either["in_recovery"], either
            with router.read(None, consistency="eventual") as conn:
                served = conn.execute("SELECT pg_is_in_recovery(), inet_server_port()").fetchone()
            assert router.last_route.node == "either" and served == (True, r1_port), served
    finally:
        cluster.thaw("r2")


@contextlib.contextmanager
def slow_dns(monkeypatch, *names: str) -> Iterator[list]:
    """Host names whose resolution hangs (until the block ends, then fails), as behind a DNS
    resolver that stopped answering: socket.getaddrinfo replaced (no slow DNS server here); other
    names resolve as before. Yields the list of the slow lookups made."""
    import threading

    real = socket.getaddrinfo
    release = threading.Event()
    calls: list = []

    def getaddrinfo(host, *args, **kwargs):
        if host in names:
            calls.append(host)
            release.wait(30)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    try:
        yield calls
    finally:
        release.set()  # and the lookups still pending end before the next test
        wait_until(lambda: not any(host in names for host, _ in list(_resolve._pending)), 10,
                   "the slow lookups ended")


def test_a_host_whose_name_does_not_resolve_in_time_is_given_up_and_named(monkeypatch):
    """A host name whose resolution hangs: the probe gives up after connect_s, with an error
    naming the host. (getaddrinfo, called by psycopg's conninfo_attempts with no bound, held the
    probe, and a closing prober, for as long as the resolver took.)"""
    with slow_dns(monkeypatch, "slow.invalid"):
        conninfo = _probe.probe_conninfo("host=slow.invalid port=5 dbname=postgres", DatabaseOptions())
        started = time.monotonic()
        with pytest.raises(psycopg.OperationalError) as info:
            _probe.probe_once(None, conninfo, 2.0, 0.5)
        took = time.monotonic() - started
    print(f"\n[probe dns] gave up after {took * 1000:.0f} ms: {info.value}")
    assert "resolving host 'slow.invalid' took more than 0.5 s" in str(info.value)
    assert 0.5 * 0.9 <= took < 0.5 + 2.0, took


def test_probes_of_one_slow_host_share_its_lookup(monkeypatch):
    """Probes of a host whose lookup still runs wait on that lookup rather than start another:
    a resolver that never answers holds one thread per host name, not one per probe."""
    with slow_dns(monkeypatch, "slow.invalid") as calls:
        for _ in range(3):
            with pytest.raises(psycopg.OperationalError, match="took more than 0.1 s"):
                _resolve.resolve_host("slow.invalid", "5432", 0.1)
        assert calls == ["slow.invalid"]


def test_a_dsn_whose_first_host_does_not_resolve_in_time_connects_to_the_next(cluster, monkeypatch):
    """A node DSN whose first host name hangs in resolution and whose second is r1: the probe
    gives the name connect_s, then connects to r1, within one timeout and a margin."""
    r1_port = cluster.node("r1").port
    with slow_dns(monkeypatch, "slow.invalid"):
        dsn = f"host=slow.invalid,{cluster.host} port=5,{r1_port} dbname=postgres user=postgres"
        conninfo = _probe.probe_conninfo(dsn, DatabaseOptions())
        started = time.monotonic()
        pgconn, row = _probe.probe_once(None, conninfo, 2.0, 0.5)
        took = time.monotonic() - started
    try:
        assert row[0] is True and pgconn.port == str(r1_port).encode()  # r1: in recovery
        assert 0.5 * 0.9 <= took < 0.5 + 2.0, took
    finally:
        pgconn.finish()


def test_a_closing_prober_resolves_no_further_host(monkeypatch):
    """The prober closing while the first of two slow host names is being resolved: the walk ends
    with that lookup (~0.5 s, not ~1 s), saying so."""
    import threading

    stop = threading.Event()
    with slow_dns(monkeypatch, "slow-one.invalid", "slow-two.invalid"):
        conninfo = _probe.probe_conninfo("host=slow-one.invalid,slow-two.invalid port=5 dbname=postgres",
                                         DatabaseOptions())
        timer = threading.Timer(0.2, stop.set)
        timer.start()
        started = time.monotonic()
        try:
            with pytest.raises(psycopg.OperationalError, match="the prober is closing: 1 of 2 hosts not resolved"):
                _probe.probe_connect(conninfo, 0.5, stop)
        finally:
            timer.cancel()
        took = time.monotonic() - started
    assert 0.5 * 0.9 <= took < 2 * 0.5, took
