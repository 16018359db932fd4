"""Bad input to every public routing function: a typed error naming the argument, never a crash.

Each case says which call is made, which exception class must come out and which argument
`.argument` must name: `ArgumentTypeError` (a `TypeError`) for a value of the wrong type,
`InvalidArgument` (a `ValueError`) for a value of the right type that is not acceptable. Both
name the argument; pybind11's own "incompatible function arguments" TypeError never surfaces.

Batched routing (route_reads' arrays) and the random junk thrown at every function:
test_routing_bad_input_batches.py; the shared pieces: routing_bad_input_helpers.py.
"""

from __future__ import annotations

import pytest

import replikit
from replikit import Consistency, LagTracker, Lsn, Node, Policy, Router, Session, Topology
from routing_bad_input_helpers import AT, HAVE_HMAC, IA, INF, NAN, NF, TE, expect, world

BAD_LSN_TEXT = ["", "0", "0/", "/0", "G/0", "0/G", "1/2/3", "123456789/0", "0/123456789", " 0/1", "0/1 ",
                "-1/0", "+1/0", "0x1/0", "\uff11/0", "0/1\x00", "x" * 1_000_000]
BAD_LSN_VALUES = BAD_LSN_TEXT + [-1, 2**64, -(2**70), True, False, 1.5, NAN, INF, None, b"0/1", [], {}, object()]


def lsn_error(value):
    """The error for a bad LSN: a str or int of a bad value, or anything else (wrong type)."""
    return IA if isinstance(value, (str, int)) and not isinstance(value, bool) else AT


def int_error(value):
    """The error for a bad integer argument: an int out of range, or a wrong type."""
    return IA if isinstance(value, int) and not isinstance(value, bool) else AT


def number_error(value):
    """The error for a bad number: a float/int of a bad value, or a wrong type."""
    return IA if isinstance(value, (int, float)) and not isinstance(value, bool) else AT


# --------------------------------------------------------------------------- LSNs


@pytest.mark.parametrize("value", BAD_LSN_VALUES, ids=repr)
def test_lsn_rejects(value):
    err = expect(lambda: Lsn(value), lsn_error(value), "value")
    assert len(str(err)) < 300  # a huge input is not echoed back in full
    expect(lambda: replikit.lsn_diff_bytes(value, 0), lsn_error(value), "a")
    expect(lambda: replikit.lsn_diff_bytes(0, value), lsn_error(value), "b")


def test_lsn_operators_with_junk():
    assert (Lsn(1) == "junk") is False
    with pytest.raises(TypeError):
        Lsn(1) < "junk"  # noqa: B015
    with pytest.raises(TypeError):
        Lsn(1) - -1  # noqa: B015
    with pytest.raises(TypeError):
        Lsn(1) - None  # noqa: B015


# --------------------------------------------------------------------------- Node / Topology

BAD_NAMES = ["", "a b", "tab\there", "x" * 64, "caf\u00e9", "new\nline", "x" * 1_000_000]
BAD_NODES = [Node(n) for n in BAD_NAMES] + [
    Node("w", weight=NAN), Node("w", weight=-1.0), Node("w", weight=INF), Node("w", weight=-INF),
    Node("w", region="r" * 64), 123, None, 1.5, b"bytes", ["r1"],
]


def test_node_rejects():
    expect(lambda: Node("n", priority=2**31), IA, "priority")
    expect(lambda: Node("n", priority=-(2**31) - 1), IA, "priority")
    expect(lambda: Node("n", priority="high"), AT, "priority")
    expect(lambda: Node("n", priority=1.5), AT, "priority")
    expect(lambda: Node(None), AT, "name")
    expect(lambda: Node("n", weight="heavy"), AT, "weight")
    expect(lambda: Node("n", up="yes"), AT, "up")
    expect(lambda: Node("n", region=5), AT, "region")
    node = Node("n")
    expect(lambda: setattr(node, "weight", "heavy"), AT, "weight")
    expect(lambda: setattr(node, "priority", 2**31), IA, "priority")


@pytest.mark.parametrize("bad", BAD_NODES, ids=repr)
def test_topology_rejects_bad_nodes(bad):
    exc = IA if isinstance(bad, Node) else AT
    expect(lambda: Topology(bad, ["r1"]), exc, "primary")
    expect(lambda: Topology("p", ["r1", bad]), exc, "replicas")
    t = Topology("p", ["r1"])
    expect(lambda: t.add_replica(bad), exc, "node")
    assert t.replica_names() == ["r1"]  # nothing half-added


def test_topology_rejects():
    expect(lambda: Topology("p", ["p"]), IA, "replicas")
    expect(lambda: Topology("p", ["a", "a"]), IA, "replicas")
    expect(lambda: Topology("p", "r1"), AT, "replicas")  # a str is not a list of replicas
    expect(lambda: Topology("p", [f"r{i}" for i in range(replikit.MAX_NODES)]), IA, "replicas")
    expect(lambda: Topology("p", 5), AT, "replicas")  # not iterable
    with pytest.raises(replikit.CapacityExceeded):
        Topology("p", [Node(f"r{i}", region=f"g{i}") for i in range(65)])  # at most 64 regions
    t, _, _ = world()
    expect(lambda: t.add_replica("r1"), IA, "node")
    expect(lambda: t.add_replica("p"), IA, "node")
    for fn in (t.remove_replica, t.promote, t.index_of, lambda n: t.set_up(n, True),
               lambda n: t.set_weight(n, 1.0), lambda n: t.set_priority(n, 1)):
        expect(lambda: fn("nope"), NF, "name")
        expect(lambda: fn(""), NF, "name")
    expect(lambda: t.remove_replica("p"), IA, "name")
    expect(lambda: t.promote("p"), IA, "name")
    t.add_replica("gone")
    t.remove_replica("gone")
    expect(lambda: t.remove_replica("gone"), NF, "name")
    expect(lambda: t.add_replica("gone"), IA, "node")  # names of removed nodes are not reused
    for w in (NAN, INF, -INF, -1.0, -1e-300):
        expect(lambda: t.set_weight("r1", w), IA, "weight")
    for p in (2**31, -(2**31) - 1, 2**64, "1", 1.5, None):
        expect(lambda: t.set_priority("r1", p), int_error(p), "priority")
    for i in (-1, 4, 2**31, 2**64, -(2**70), "0", 1.5, None):
        expect(lambda: t.name(i), int_error(i), "index")
    for node in ("nope", -1, 4, 2**63, 2**80, 1.5, None, True, b"r1", ["r1"]):
        exc = NF if node == "nope" else IA if isinstance(node, int) and not isinstance(node, bool) else AT
        expect(lambda: t.info(node), exc, "node")
    expect(lambda: t.set_up("r1", "yes"), AT, "up")
    expect(lambda: t.remove_replica(1), AT, "name")
    expect(lambda: t.set_weight("r1", "1"), AT, "weight")
    expect(lambda: t.region_id(None), AT, "region")
    assert t.region_id("nowhere") == -1  # an unknown region is an answer, not an error
    assert t.replica_names() == ["r1", "r2"]


# --------------------------------------------------------------------------- LagTracker


@pytest.mark.parametrize(
    "kwargs, argument, exc",
    [
        ({"max_lag_ms": NAN}, "max_lag_ms", IA),
        ({"max_lag_ms": -1.0}, "max_lag_ms", IA),
        ({"max_lag_ms": INF}, "max_lag_ms", IA),
        ({"max_lag_ms": 1e11}, "max_lag_ms", IA),
        ({"max_lag_ms": "fast"}, "max_lag_ms", AT),
        ({"recover_lag_ms": NAN}, "recover_lag_ms", IA),
        ({"recover_lag_ms": -1.0}, "recover_lag_ms", IA),
        ({"recover_lag_ms": 2000.0}, "recover_lag_ms", IA),  # above max_lag_ms (1000)
        ({"max_lag_bytes": -1}, "max_lag_bytes", IA),
        ({"max_lag_bytes": 2**63}, "max_lag_bytes", IA),
        ({"max_lag_bytes": 1.5}, "max_lag_bytes", AT),
        ({"recover_lag_bytes": -1}, "recover_lag_bytes", IA),
        ({"max_lag_bytes": 10, "recover_lag_bytes": 11}, "recover_lag_bytes", IA),
        ({"stale_sample_ms": NAN}, "stale_sample_ms", IA),
        ({"stale_sample_ms": -5.0}, "stale_sample_ms", IA),
        ({"history_capacity": 0}, "history_capacity", IA),
        ({"history_capacity": 1}, "history_capacity", IA),
        ({"history_capacity": -1}, "history_capacity", IA),
        ({"history_capacity": 2**24 + 1}, "history_capacity", IA),
        ({"history_capacity": 2**64}, "history_capacity", IA),
        ({"history_capacity": "8192"}, "history_capacity", AT),
        ({"event_capacity": 0}, "event_capacity", IA),
        ({"event_capacity": -1}, "event_capacity", IA),
        ({"event_capacity": 2**20 + 1}, "event_capacity", IA),
        ({"event_capacity": 1.0}, "event_capacity", AT),
        ({"config": "LagConfig()"}, "config", AT),
        ({"no_such_keyword": 1}, "no_such_keyword", AT),
    ],
    ids=lambda x: repr(x),
)
def test_lag_tracker_config_rejects(kwargs, argument, exc):
    expect(lambda: LagTracker(Topology("p", ["r1"]), **kwargs), exc, argument)
    if "config" not in kwargs and "no_such_keyword" not in kwargs:
        # The options object validates the same values when built (types) or used (relations).
        try:
            config = replikit.LagConfig(**kwargs)
        except (IA, AT) as e:
            assert type(e) is exc and e.argument == argument
        else:
            expect(lambda: LagTracker(Topology("p", ["r1"]), config=config), exc, argument)


def test_lag_tracker_rejects():
    expect(lambda: LagTracker(None), AT, "topology")
    expect(lambda: LagTracker("p"), AT, "topology")
    t, lag, _ = world()
    for v in BAD_LSN_VALUES:
        expect(lambda: lag.primary_sample(v, now_ns=2000), lsn_error(v), "current_lsn")
        expect(lambda: lag.replica_sample("r1", v, "0/1", now_ns=2000), lsn_error(v), "receive_lsn")
        expect(lambda: lag.replica_sample("r1", "0/1", v, now_ns=2000), lsn_error(v), "replay_lsn")
        expect(lambda: lag.primary_time_past(v), lsn_error(v), "lsn")
    for now in (-1, 2**63, 2**64, -(2**63) - 1, 1.5, NAN, "1000", True):
        expect(lambda: lag.primary_sample("0/200", now_ns=now), int_error(now), "now_ns")
        expect(lambda: lag.replica_sample("r1", "0/1", "0/1", now_ns=now), int_error(now), "now_ns")
    expect(lambda: lag.primary_sample("0/200", now_ns=999), IA, "now_ns")  # back in time
    expect(lambda: lag.primary_sample("0/50", now_ns=2000), IA, "current_lsn")  # LSN backwards
    for node in ("nope", "p", 0, -1, 3, 2**40, 1.5, None):
        exc = NF if node == "nope" else AT if node in (1.5, None) else IA
        expect(lambda: lag.replica_sample(node, "0/1", "0/1", now_ns=2000), exc, "node")
    for node in ("nope", -1, 3, 2**70, None):
        exc = NF if node == "nope" else AT if node is None else IA
        expect(lambda: lag.replica(node), exc, "node")
    for v in (-1, 2**64, 1.5, None):
        expect(lambda: lag.events(after_sequence=v), int_error(v), "after_sequence")
    for v in (-1, 2**63, 1.5, None):
        expect(lambda: lag.events(max_events=v), int_error(v), "max_events")
    assert lag.events(max_events=0) == []
    # Nothing above changed the tracker.
    assert lag.primary_lsn == Lsn("0/100") and not lag.replica("r1").known


# --------------------------------------------------------------------------- sessions and tokens

BAD_TOKENS = [
    "", "1", "1.0.0", "1.0.0.x.sig.extra", "2.0.0.x", "0.0.0.x", "01.0.0.x", "1.00.0.x", "1.0.01.x",
    "1.G.0.x", "1.-1.0.x", "1.+1.0.x", "1.A.0.x", "1.0.0.X", "1.0.0.", "1..0.x", "1.0..x",
    "1.10000000000000000.0.x",  # 17 hex digits
    "1.0.0.fffffffffffffff",   # write time beyond the int64 range in ns
    "1.0.0.x.",                 # signed (5 fields) with no key configured
    "1.0.0.x.AAAAAAAAAAAAAAAAAAAAAA",
    " 1.0.0.x", "1.0.0.x ", "1.0.0.x\n", "1.\u0661.0.x", "1.0.0.x" + "\x00",
    "1." + "f" * 200 + ".0.x",  # longer than 128 characters
    "x" * 1_000_000,
]


@pytest.mark.parametrize("token", BAD_TOKENS, ids=lambda t: repr(t[:40]))
def test_malformed_tokens(token):
    expect(lambda: Session.from_token(token), TE, "token")
    s = Session(write_lsn=5)
    expect(lambda: s.merge(token), TE, "other")
    assert s == Session(write_lsn=5)


def test_token_type_errors():
    for v in (None, 5, b"1.0.0.x", ["1.0.0.x"]):
        expect(lambda: Session.from_token(v), AT, "token")
    for v in (None, 5, b"1.0.0.x", 1.5):
        expect(lambda: Session().merge(v), AT, "other")


@pytest.mark.skipif(not HAVE_HMAC, reason="built without OpenSSL")
def test_signed_token_errors():
    signer = replikit.HmacSigner(b"k" * 16)
    good = Session(write_lsn=9).token(signer=signer)
    expect(lambda: Session.from_token(good), TE, "token")                        # no key configured
    expect(lambda: Session.from_token("1.9.0.x", signer=signer), TE, "token")    # unsigned
    expect(lambda: Session.from_token(good[:-1] + ("A" if good[-1] != "A" else "B"), signer=signer), TE, "token")
    expect(lambda: Session.from_token(good, signer=replikit.HmacSigner(b"j" * 16)), TE, "token")
    for key in (b"", b"short", b"k" * 15, b"k" * 4097):
        expect(lambda: replikit.HmacSigner(key), IA, "key")
    for key in ("a str key of 16+ chars", None, 12345678901234567890, bytearray(b"k" * 16)):
        expect(lambda: replikit.HmacSigner(key), AT, "key")


@pytest.mark.parametrize(
    "signer, exc",
    [
        (5, AT),
        ("not callable", AT),
        (b"bytes", AT),
        (lambda payload: "a str", AT),
        (lambda payload: None, AT),
        (lambda payload: b"", IA),
        (lambda payload: b"15 bytes only!!"[:15], IA),
    ],
    ids=["int", "str", "bytes", "returns-str", "returns-None", "returns-empty", "returns-15-bytes"],
)
def test_bad_signers(signer, exc):
    s = Session(write_lsn=3)
    expect(lambda: s.token(signer=signer), exc, "signer")
    expect(lambda: Session.from_token("1.3.0.x.AAAAAAAAAAAAAAAAAAAAAA", signer=signer), exc, "signer")
    expect(lambda: s.merge("1.3.0.x.AAAAAAAAAAAAAAAAAAAAAA", signer=signer), exc, "signer")


def test_signer_with_wrong_arity_raises_type_error():
    with pytest.raises(TypeError):
        Session().token(signer=lambda: b"x" * 32)


def test_session_rejects():
    for v in BAD_LSN_VALUES:
        if v is None:
            continue  # None means "none known" for the constructor and commit_lsn
        expect(lambda: Session(write_lsn=v), lsn_error(v), "write_lsn")
        expect(lambda: Session(read_lsn=v), lsn_error(v), "read_lsn")
        expect(lambda: Session().record_write(v, now_ns=1), lsn_error(v), "commit_lsn")
        expect(lambda: Session().observe(v), lsn_error(v), "lsn")
    expect(lambda: Session().observe(None), AT, "lsn")
    for now in (-1, 2**63, 1.5, NAN, "1", True):
        expect(lambda: Session().record_write("0/1", now_ns=now), int_error(now), "now_ns")
        expect(lambda: Session().record_write(None, now_ns=now), int_error(now), "now_ns")
    with pytest.raises(TypeError):
        Session(5, 6, 7)


# --------------------------------------------------------------------------- Router


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"time_window_ms": "x"}, "time_window_ms"),
        ({"policy": "nope"}, "policy"),
        ({"policy": 0}, "policy"),
        ({"config": "RouterConfig()"}, "config"),
        ({"region": 5}, "region"),
        ({"time_window_ms": NAN}, "time_window_ms"),
        ({"time_window_ms": -1.0}, "time_window_ms"),
        ({"time_window_ms": INF}, "time_window_ms"),
        ({"time_window_ms": 1e11}, "time_window_ms"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**64}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"seed": "42"}, "seed"),
        ({"region": "mars"}, "region"),
        ({"sticky_reads": 0}, "sticky_reads"),
        ({"sticky_reads": -1}, "sticky_reads"),
        ({"sticky_reads": 1_000_001}, "sticky_reads"),
        ({"sticky_reads": 2**64}, "sticky_reads"),
        ({"sticky_reads": 1.5}, "sticky_reads"),
        ({"sticky_reads": "3"}, "sticky_reads"),
    ],
    ids=lambda x: repr(x),
)
def test_router_config_rejects(kwargs, argument):
    value = kwargs[argument]
    exc = IA if argument == "region" and isinstance(value, str) else AT if argument in ("config", "region") else (
        IA if argument == "policy" and isinstance(value, str) else AT if argument == "policy" else number_error(value)
        if argument == "time_window_ms" else int_error(value))
    expect(lambda: Router(Topology("p", ["r1"]), **kwargs), exc, argument)
    if argument != "config":
        # The options object checks each value's type and sign when built, the rest when used.
        try:
            config = replikit.RouterConfig(**kwargs)
        except (IA, AT) as e:
            assert type(e) is exc and e.argument == argument
        else:
            expect(lambda: Router(Topology("p", ["r1"]), config=config), exc, argument)


def test_router_rejects():
    expect(lambda: Router(None), AT, "topology")
    expect(lambda: Router(Topology("p"), policy=0), AT, "policy")  # an int is not a Policy
    assert Router(Topology("p"), policy="ROUND_ROBIN").policy is Policy.ROUND_ROBIN  # names, any case
    t, _, router = world()
    s = Session()
    for now in (-1, 2**63, 2**64, 1.5, NAN, "0", True):
        expect(lambda: router.route_read(s, now_ns=now), int_error(now), "now_ns")
        expect(lambda: router.route_reads([1], now_ns=now), int_error(now), "now_ns")
    for ms in (NAN, -1.0, INF, -INF):
        for c in (Consistency.BOUNDED_STALENESS, Consistency.EVENTUAL):
            expect(lambda: router.route_read(s, c, now_ns=0, max_staleness_ms=ms), IA, "max_staleness_ms")
            expect(lambda: router.route_reads([1], consistency=c, now_ns=0, max_staleness_ms=ms), IA,
                   "max_staleness_ms")
    expect(lambda: router.route_read(s, Consistency.BOUNDED_STALENESS, now_ns=0, max_staleness_ms=1e11), IA,
           "max_staleness_ms")
    expect(lambda: router.route_read(s, Consistency.BOUNDED_STALENESS, now_ns=0), IA, "max_staleness_ms")
    expect(lambda: router.route_reads([], consistency=Consistency.BOUNDED_STALENESS, now_ns=0), IA,
           "max_staleness_ms")
    expect(lambda: router.route_read(s, now_ns=0, region="mars"), IA, "region")
    expect(lambda: router.route_read(s, now_ns=0, region=""), IA, "region")
    for bad_session in (None, "1.0.0.x", 5):
        expect(lambda: router.route_read(bad_session, now_ns=0), AT, "session")
    expect(lambda: router.route_read(s, 1, now_ns=0), AT, "consistency")  # an int is not a Consistency
    expect(lambda: router.route_read(s, "sometimes", now_ns=0), IA, "consistency")
    expect(lambda: router.route_reads([1], consistency=1, now_ns=0), AT, "consistency")
    expect(lambda: router.route_reads([1], consistency="sometimes", now_ns=0), IA, "consistency")
    expect(lambda: router.route_read(s, now_ns=0, region=5), AT, "region")
    expect(lambda: router.route_read(s, now_ns=0, max_staleness_ms="1"), AT, "max_staleness_ms")
    for node in ("nope", -1, 3, 2**40, 1.5, None, True):
        exc = NF if node == "nope" else AT if node in (1.5, None) or node is True else IA
        expect(lambda: router.begin(node), exc, "node")
        expect(lambda: router.end(node), exc, "node")
        expect(lambda: router.in_flight(node), exc, "node")
    expect(lambda: router.end("r1"), IA, "node")  # no matching begin
    assert t.info("r1").outstanding == 0
    assert router.counters()["total"] == 0  # no rejected call was counted
