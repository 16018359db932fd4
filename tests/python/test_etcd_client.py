"""replikit.etcd.EtcdClient against real etcd members (replikit.testing.EtcdCluster), and its
argument checks."""

from __future__ import annotations

import logging
import math
import threading
import time

import pytest

import replikit
from replikit.etcd import CoordinationUnavailable, EtcdClient, EtcdError, KeyValue
from replikit.testing import EtcdCluster

from conftest import wait_until

# Room for a raft election (etcd's default election timeout is 1 s) inside one call.
ELECTION_TIMEOUT_MS = 6000.0


@pytest.fixture(scope="module")
def etcd1():
    with EtcdCluster(members=1) as cluster:
        yield cluster


@pytest.fixture
def etcd3():
    with EtcdCluster(members=3) as cluster:
        yield cluster


def client_for(cluster, **options) -> EtcdClient:
    return EtcdClient(cluster.endpoints, **options)


# ---------------------------------------------------------------------- bad input (no server)
BAD_CLIENT_ARGUMENTS = [
    (dict(endpoints="http://127.0.0.1:1"), replikit.ArgumentTypeError, "endpoints"),
    (dict(endpoints=[]), replikit.InvalidArgument, "endpoints"),
    (dict(endpoints=[7]), replikit.ArgumentTypeError, "endpoints"),
    (dict(endpoints=["ftp://127.0.0.1:1"]), replikit.InvalidArgument, "endpoints"),
    (dict(endpoints=["http://u:p@127.0.0.1:1"]), replikit.InvalidArgument, "endpoints"),
    (dict(endpoints=["http://127.0.0.1:99999"]), replikit.InvalidArgument, "endpoints"),
    (dict(endpoints=["http://127.0.0.1:1/v3"]), replikit.InvalidArgument, "endpoints"),
    (dict(timeout_ms=0), replikit.InvalidArgument, "timeout_ms"),
    (dict(timeout_ms=math.nan), replikit.InvalidArgument, "timeout_ms"),
    (dict(timeout_ms=1e100), replikit.InvalidArgument, "timeout_ms"),
    (dict(timeout_ms="1"), replikit.ArgumentTypeError, "timeout_ms"),
    (dict(timeout_ms=True), replikit.ArgumentTypeError, "timeout_ms"),
    (dict(cert_file="/nonexistent.crt"), replikit.InvalidArgument, "key_file"),
    (dict(ca_file="/nonexistent/ca.pem"), replikit.InvalidArgument, "ca_file"),
    (dict(ca_file=3), replikit.ArgumentTypeError, "ca_file"),
    (dict(username="u"), replikit.InvalidArgument, "password"),
    (dict(password=b"p", username="u"), replikit.ArgumentTypeError, "password"),
]


@pytest.mark.parametrize("arguments, error, argument", BAD_CLIENT_ARGUMENTS)
def test_bad_client_arguments_are_typed_errors_naming_the_argument(arguments, error, argument):
    options = dict(endpoints=["http://127.0.0.1:1"])
    options.update(arguments)
    endpoints = options.pop("endpoints")
    with pytest.raises(error) as info:
        EtcdClient(endpoints, **options)
    assert info.value.argument == argument


def _bad_calls():
    nothing = lambda events: None  # noqa: E731
    return [
        (lambda c: c.get(1), replikit.ArgumentTypeError, "key"),
        (lambda c: c.get(b"k"), replikit.ArgumentTypeError, "key"),
        (lambda c: c.get(""), replikit.InvalidArgument, "key"),
        (lambda c: c.get("a\x00b"), replikit.InvalidArgument, "key"),
        (lambda c: c.get_prefix(None), replikit.ArgumentTypeError, "prefix"),
        (lambda c: c.put("k", 5), replikit.ArgumentTypeError, "value"),
        (lambda c: c.put("k", "v", lease=-1), replikit.InvalidArgument, "lease"),
        (lambda c: c.put("k", "v", lease=1.0), replikit.ArgumentTypeError, "lease"),
        (lambda c: c.create("", "v"), replikit.InvalidArgument, "key"),
        (lambda c: c.put_if("k", "v", mod_revision=-1), replikit.InvalidArgument, "mod_revision"),
        (lambda c: c.put_if("k", "v", mod_revision="3"), replikit.ArgumentTypeError,
         "mod_revision"),
        (lambda c: c.delete(None), replikit.ArgumentTypeError, "key"),
        (lambda c: c.grant(0), replikit.InvalidArgument, "ttl_s"),
        (lambda c: c.grant(1.5), replikit.ArgumentTypeError, "ttl_s"),
        (lambda c: c.grant(True), replikit.ArgumentTypeError, "ttl_s"),
        (lambda c: c.keepalive(0), replikit.InvalidArgument, "lease_id"),
        (lambda c: c.revoke("1"), replikit.ArgumentTypeError, "lease_id"),
        (lambda c: c.watch("k", start_revision=-1, on_events=nothing), replikit.InvalidArgument,
         "start_revision"),
        (lambda c: c.watch("k", start_revision=0, on_events=3), replikit.ArgumentTypeError,
         "on_events"),
        (lambda c: c.watch("k", start_revision=0, on_events=nothing, prefix=1),
         replikit.ArgumentTypeError, "prefix"),
    ]


@pytest.mark.parametrize("call, error, argument", _bad_calls())
def test_bad_call_arguments_are_typed_errors_naming_the_argument(call, error, argument):
    client = EtcdClient(["http://127.0.0.1:1"], timeout_ms=50)
    with pytest.raises(error) as info:
        call(client)
    assert info.value.argument == argument


def test_error_classes_sit_in_replikits_hierarchy():
    assert issubclass(CoordinationUnavailable, replikit.ConnectionError)
    assert issubclass(EtcdError, replikit.Error)
    assert not issubclass(EtcdError, replikit.ConnectionError)


def test_no_endpoint_answering_is_coordination_unavailable_within_the_timeout(caplog):
    # A port nobody listens on: refused at once; the client retries until its bound.
    client = EtcdClient(["http://127.0.0.1:1", "http://127.0.0.1:2"], timeout_ms=300,
                        username="alice", password="s3cret-pw")
    caplog.set_level(logging.DEBUG, logger="replikit")
    started = time.monotonic()
    with pytest.raises(CoordinationUnavailable) as info:
        client.get("k")
    elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 0.3 + 2.0
    for text in (str(info.value), repr(client), caplog.text):
        assert "s3cret-pw" not in text
    assert "alice" not in repr(client)


# ---------------------------------------------------------------------- one member
@pytest.mark.etcd
def test_put_get_prefix_delete_and_revisions(etcd1):
    client = client_for(etcd1)
    first = client.put("/crud/a", b"one")
    kv = client.get("/crud/a")
    assert kv == KeyValue("/crud/a", b"one", first, first, 0)
    second = client.put("/crud/a", "two")
    assert second > first
    kv = client.get("/crud/a")
    assert (kv.value, kv.create_revision, kv.mod_revision) == (b"two", first, second)
    client.put("/crud/b", b"\x00\xff binary")
    client.put("/crud0", b"outside the prefix")
    assert [(k.key, k.value) for k in client.get_prefix("/crud/")] == [
        ("/crud/a", b"two"), ("/crud/b", b"\x00\xff binary")]
    deleted_at = client.delete("/crud/a")
    assert deleted_at > second
    assert client.get("/crud/a") is None
    assert client.delete("/crud/absent") >= deleted_at  # absent is fine
    assert client.get("/never/written") is None


@pytest.mark.etcd
def test_create_only_if_absent_and_put_if_compare_and_swap(etcd1):
    client = client_for(etcd1)
    created, revision = client.create("/txn/leader", b"host-a")
    assert created and client.get("/txn/leader").mod_revision == revision
    again, later = client.create("/txn/leader", b"host-b")
    assert not again and later == revision
    assert client.get("/txn/leader").value == b"host-a"
    swapped, new_revision = client.put_if("/txn/leader", b"host-c", mod_revision=revision)
    assert swapped and new_revision > revision
    stale, _ = client.put_if("/txn/leader", b"host-d", mod_revision=revision)  # a stale token
    assert not stale and client.get("/txn/leader").value == b"host-c"
    absent, _ = client.put_if("/txn/new", b"x", mod_revision=0)  # 0: only while absent
    assert absent and client.get("/txn/new").value == b"x"


@pytest.mark.etcd
def test_a_lease_expires_with_its_keys_and_keepalive_keeps_it(etcd1):
    client = client_for(etcd1)
    short = client.grant(1)
    kept = client.grant(1)
    client.put("/lease/short", b"x", lease=short)
    client.put("/lease/kept", b"y", lease=kept)
    assert client.get("/lease/short").lease == short
    assert client.keepalive(short) >= 1
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:  # the kept lease renewed well inside its TTL
        assert client.keepalive(kept) >= 1
        time.sleep(0.2)
    assert client.get("/lease/short") is None  # expired: its key is gone
    assert client.keepalive(short) == 0
    assert client.get("/lease/kept").value == b"y"
    client.revoke(kept)
    assert client.get("/lease/kept") is None
    assert client.keepalive(kept) == 0
    client.revoke(kept)  # an unknown lease is fine


@pytest.mark.etcd
def test_create_under_an_expired_lease_is_an_etcd_error(etcd1):
    client = client_for(etcd1)
    lease = client.grant(1)
    client.revoke(lease)
    with pytest.raises(EtcdError) as info:
        client.create("/lease/gone", b"x", lease=lease)
    assert not isinstance(info.value, CoordinationUnavailable)
    assert "lease" in str(info.value)


@pytest.mark.etcd
def test_watch_delivers_puts_and_deletes_from_another_client(etcd1):
    writer, watcher = client_for(etcd1), client_for(etcd1)
    seen = []
    lock = threading.Lock()

    def collect(events):
        with lock:
            seen.extend(events)

    before = writer.put("/watch/other", b"ignored")
    watch = watcher.watch("/watch/key", start_revision=before + 1, on_events=collect)
    try:
        put_at = writer.put("/watch/key", b"v1")
        writer.put("/watch/unrelated", b"not watched")
        deleted_at = writer.delete("/watch/key")
        wait_until(lambda: len(seen) >= 2, 10, "two watch events")
        with lock:
            got = [(e.type, e.kv.key, e.kv.value, e.kv.mod_revision) for e in seen]
        assert got == [("put", "/watch/key", b"v1", put_at),
                       ("delete", "/watch/key", b"", deleted_at)]
        assert watch.connected
    finally:
        watcher.close()
    assert not watch.active


@pytest.mark.etcd
def test_watch_from_an_old_revision_replays_history_and_prefix_watches_every_key(etcd1):
    client = client_for(etcd1)
    first = client.put("/hist/a", b"1")
    client.put("/hist/b", b"2")
    seen = []
    watch = client.watch("/hist/", start_revision=first, on_events=seen.extend, prefix=True)
    try:
        client.put("/hist/c", b"3")
        wait_until(lambda: len(seen) >= 3, 10, "three replayed events")
        assert [(e.kv.key, e.kv.value) for e in seen] == [
            ("/hist/a", b"1"), ("/hist/b", b"2"), ("/hist/c", b"3")]
    finally:
        watch.cancel()


@pytest.mark.etcd
def test_a_failing_callback_does_not_end_the_watch(etcd1):
    client = client_for(etcd1)
    calls = []

    def flaky(events):
        calls.append(events)
        if len(calls) == 1:
            raise RuntimeError("callback bug")

    watch = client.watch("/flaky", start_revision=0, on_events=flaky)
    try:
        wait_until(lambda: watch.connected, 10, "the watch stream")
        client.put("/flaky", b"1")
        wait_until(lambda: len(calls) == 1, 10, "the first event")
        client.put("/flaky", b"2")
        wait_until(lambda: len(calls) == 2, 10, "the second event")
    finally:
        watch.cancel()


def _enable_auth(cluster) -> None:
    """Users root and app (read-write on /app/ only), then auth on, through the gateway."""
    from replikit.etcd._transport import Endpoint, request

    endpoint = Endpoint(cluster.endpoints[0])
    steps = [("/v3/auth/user/add", {"name": "root", "password": "root-pw"}),
             ("/v3/auth/role/add", {"name": "root"}),
             ("/v3/auth/user/grant", {"user": "root", "role": "root"}),
             ("/v3/auth/user/add", {"name": "app", "password": "app-pw"}),
             ("/v3/auth/role/add", {"name": "app"}),
             ("/v3/auth/role/grant", {"name": "app", "perm": {
                 "permType": "READWRITE", "key": "L2FwcC8=", "range_end": "L2FwcDA="}}),
             ("/v3/auth/user/grant", {"user": "app", "role": "app"}),
             ("/v3/auth/enable", {})]
    for path, body in steps:
        status, answer = request(endpoint, path, body, timeout_s=5, context=None, token=None)
        assert status == 200, (path, answer)


@pytest.mark.etcd
def test_credentials_from_options_token_renewed_and_never_shown(caplog):
    caplog.set_level(logging.DEBUG, logger="replikit")
    # Tokens live 1 s: the client must authenticate again by itself.
    with EtcdCluster(members=1, extra_args=["--auth-token-ttl", "1"]) as cluster:
        _enable_auth(cluster)
        client = client_for(cluster, username="app", password="app-pw")
        client.put("/app/k", b"v1")
        seen = []
        # A client that only watches: its stream is reopened after 2 x 500 ms of silence, with
        # a token that expires meanwhile; it must authenticate again by itself too.
        watcher = client_for(cluster, username="app", password="app-pw", timeout_ms=500)
        watch = watcher.watch("/app/k", start_revision=0, on_events=seen.extend)
        try:
            time.sleep(3.5)  # the first tokens have expired
            assert client.get("/app/k").value == b"v1"
            client.put("/app/k", b"v2")
            wait_until(lambda: seen, 10, "the watch event under auth")
            assert seen[-1].kv.value == b"v2"
            with pytest.raises(EtcdError) as denied:
                client.put("/elsewhere", b"x")
            assert "permission denied" in str(denied.value)
            with pytest.raises(EtcdError):
                client_for(cluster).get("/app/k")  # no credentials
            wrong = client_for(cluster, username="app", password="wrong-pw")
            with pytest.raises(EtcdError) as refused:
                wrong.get("/app/k")
            assert not isinstance(refused.value, CoordinationUnavailable)
            texts = [str(denied.value), str(refused.value), repr(client), repr(wrong),
                     caplog.text, repr(watch)]
            assert not any(secret in text for text in texts
                           for secret in ("app-pw", "wrong-pw", client._token or "-none-"))
        finally:
            watcher.close()


@pytest.mark.etcd
def test_tls_files_from_options():
    with EtcdCluster(members=1, tls=True) as cluster:
        files = cluster.tls_files
        assert all(url.startswith("https://") for url in cluster.endpoints)
        client = client_for(cluster, ca_file=files["ca_file"], cert_file=files["cert_file"],
                            key_file=files["key_file"])
        seen = []
        watch = client.watch("/tls", start_revision=0, on_events=seen.extend)
        try:
            wait_until(lambda: watch.connected, 10, f"the watch stream over TLS ({watch.last_error})")
            client.put("/tls", b"secret-free")
            assert client.get("/tls").value == b"secret-free"
            wait_until(lambda: seen, 10, "the watch event over TLS")
        finally:
            client.close()
        assert "key" not in repr(client) and files["key_file"] not in repr(client)
        # No client certificate, or no trust in the server's CA: refused, bounded.
        for options in (dict(ca_file=files["ca_file"]), {}):
            with pytest.raises(CoordinationUnavailable):
                client_for(cluster, timeout_ms=500, **options).get("/tls")


# ---------------------------------------------------------------------- three members
@pytest.mark.etcd
def test_a_killed_or_stopped_member_is_skipped(etcd3):
    leader = etcd3.leader()
    follower = (leader + 1) % 3
    # The dead member first in the list: every call must go past it.
    order = [follower] + [i for i in range(3) if i != follower]
    client = EtcdClient([etcd3.endpoints[i] for i in order], timeout_ms=3000)
    client.put("/skip/k", b"before")
    etcd3.kill(follower)
    assert client.get("/skip/k").value == b"before"
    assert client.put("/skip/k", b"after one killed") > 0
    etcd3.restart(follower)
    etcd3.pause(follower)  # accepts connections, answers nothing
    try:
        fresh = EtcdClient([etcd3.endpoints[i] for i in order], timeout_ms=3000)
        started = time.monotonic()
        assert fresh.get("/skip/k").value == b"after one killed"
        assert time.monotonic() - started < 3.0 + 2.0
        created, _ = fresh.create("/skip/new", b"x")
        assert created
    finally:
        etcd3.resume(follower)


@pytest.mark.etcd
def test_the_leader_killed_the_client_and_its_watch_carry_on(etcd3):
    client = EtcdClient(etcd3.endpoints, timeout_ms=ELECTION_TIMEOUT_MS)
    other = EtcdClient(etcd3.endpoints[::-1], timeout_ms=ELECTION_TIMEOUT_MS)
    seen = []
    watch = client.watch("/carry", start_revision=0, on_events=seen.extend)
    try:
        wait_until(lambda: watch.connected, 10, "the watch stream")
        other.put("/carry", b"1")
        wait_until(lambda: len(seen) == 1, 10, "the first event")
        etcd3.kill(etcd3.leader())
        other.put("/carry", b"2")  # waits out the election inside its bound
        assert client.get("/carry").value == b"2"
        wait_until(lambda: len(seen) == 2, 15, "the event after the leader died")
        assert [e.kv.value for e in seen] == [b"1", b"2"]
    finally:
        client.close()


@pytest.mark.etcd
def test_two_of_three_killed_is_coordination_unavailable_within_the_timeout(etcd3):
    client = EtcdClient(etcd3.endpoints, timeout_ms=800)
    lease = client.grant(5)
    client.put("/quorum/k", b"x")
    leader = etcd3.leader()
    etcd3.kill(leader)
    etcd3.kill((leader + 1) % 3)
    calls = {
        "get": lambda: client.get("/quorum/k"),
        "put": lambda: client.put("/quorum/k", b"y"),
        "create": lambda: client.create("/quorum/new", b"y"),
        "put_if": lambda: client.put_if("/quorum/k", b"y", mod_revision=1),
        "grant": lambda: client.grant(5),
        "keepalive": lambda: client.keepalive(lease),
    }
    for name, call in calls.items():
        started = time.monotonic()
        with pytest.raises(CoordinationUnavailable):
            call()
        elapsed = time.monotonic() - started
        assert elapsed < 0.8 + 2.0, f"{name} took {elapsed:.2f} s"


@pytest.mark.etcd
def test_a_watch_on_a_member_without_quorum_reports_itself_disconnected(etcd3):
    survivor = 2
    client = EtcdClient([etcd3.endpoints[survivor]], timeout_ms=500)
    watch = client.watch("/lonely", start_revision=0, on_events=lambda events: None)
    try:
        wait_until(lambda: watch.connected, 10, "the watch stream")
        etcd3.kill(0)
        etcd3.kill(1)
        wait_until(lambda: not watch.connected, 15, "the watch to notice the lost quorum")
        assert watch.last_error
    finally:
        watch.cancel()
