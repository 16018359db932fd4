"""Text that cannot be encoded (a lone surrogate such as "\\ud800") in every str argument of the
public API: InvalidArgument naming the argument, never RuntimeError or UnicodeEncodeError.

The walk is driven by the type stub: every parameter of a public callable whose annotation
admits a str must have a case in CASES (test_every_str_parameter_has_a_case). The pg cases run
against a database whose nodes do not exist: each argument is checked before anything is sent.
Also the pg keyword options of the wrong type, and COPY (see test_pg_defects.py for COPY on a
real server)."""

from __future__ import annotations

import ast
import os
import re

import numpy as np
import pytest

import replikit
from replikit import LagTracker, Lsn, Node, Router, Session, Topology

IA = replikit.InvalidArgument
AT = replikit.ArgumentTypeError
SURROGATES = ["\ud800", "a\udfffb", "0/1\ud800"]
HAVE_PG = getattr(replikit._core, "HAVE_PG", False)
STUB = os.path.join(os.path.dirname(replikit.__file__), "_core.pyi")
# Annotations that admit a str (the stub's aliases included).
STR_ANNOTATION = re.compile(r"\bstr\b|_LsnLike|_NodeRef|_NodeLike|_PolicyLike|_ConsistencyLike|_GoalLike|"
                            r"_VersioningLike|_ResolutionLike|_Node\b|_Params|_PgConsistencyArg|_PgPolicyArg|"
                            r"_PgReasonArg|_ProbeOutcomeLike|_DetectorKindLike")


def str_parameters():
    """(callable's qualified name, parameter) of every stub parameter that admits a str."""
    tree = ast.parse(open(STUB, encoding="utf-8").read())
    found = []

    def visit(body, prefix):
        for node in body:
            if isinstance(node, ast.ClassDef):
                visit(node.body, prefix + node.name + ".")
            elif isinstance(node, ast.FunctionDef):
                args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                for a in args:
                    if a.annotation is not None and STR_ANNOTATION.search(ast.unparse(a.annotation)):
                        found.append((prefix + node.name, a.arg))

    visit(tree.body, "")
    return found


def world():
    t = Topology("p", [Node("r1", region="eu"), "r2"])
    return t, LagTracker(t), Router(t)


def read_path(primary="p", parked=None):
    counters = (iter(range(10)), iter(range(10)), iter(range(10)))
    return replikit._core.ReadPath(world()[2], primary, {} if parked is None else parked, counters, True, 1.0)


def offline_db(**options):
    from replikit.pg import ReplicatedDatabase

    return ReplicatedDatabase(("p", "host=127.0.0.1 port=1"), [("r1", "host=127.0.0.1 port=1")],
                              probe_interval_ms=60_000, **options)


def _db_call(fn):
    def call(bad):
        db = offline_db()
        try:
            fn(db, bad)
        finally:
            db.close()
    return call


# (callable, parameter) -> (call(bad), the argument names InvalidArgument may give)
CASES = {
    ("Lsn.__init__", "value"): (lambda b: Lsn(b), {"value"}),
    ("Lsn.__sub__", "other"): (lambda b: Lsn(1) - b, {"other"}),
    ("Lsn.__lt__", "other"): (lambda b: Lsn(1) < b, {"other"}),
    ("Lsn.__le__", "other"): (lambda b: Lsn(1) <= b, {"other"}),
    ("Lsn.__gt__", "other"): (lambda b: Lsn(1) > b, {"other"}),
    ("Lsn.__ge__", "other"): (lambda b: Lsn(1) >= b, {"other"}),
    ("lsn_diff_bytes", "a"): (lambda b: replikit.lsn_diff_bytes(b, 0), {"a"}),
    ("lsn_diff_bytes", "b"): (lambda b: replikit.lsn_diff_bytes(0, b), {"b"}),
    ("end_lsn_of_insert", "insert_lsn"): (lambda b: replikit.end_lsn_of_insert(b, 8192, 1 << 24), {"insert_lsn"}),
    ("Node.__init__", "name"): (lambda b: Node(b), {"name"}),
    ("Node.__init__", "region"): (lambda b: Node("n", region=b), {"region"}),
    ("model_regions", "regions"): (lambda b: replikit.model_regions(regions=["a", b], rtt_ms=[[1, 2], [2, 1]]),
                                   {"regions"}),
    ("model_regions", "primary_region"): (lambda b: replikit.model_regions(primary_region=b), {"primary_region"}),
    ("Topology.__init__", "primary"): (lambda b: Topology(b), {"primary"}),
    ("Topology.__init__", "replicas"): (lambda b: Topology("p", ["r1", b]), {"replicas"}),
    ("Topology.add_replica", "node"): (lambda b: world()[0].add_replica(b), {"node"}),
    ("Topology.remove_replica", "name"): (lambda b: world()[0].remove_replica(b), {"name"}),
    ("Topology.set_up", "name"): (lambda b: world()[0].set_up(b, True), {"name"}),
    ("Topology.set_weight", "name"): (lambda b: world()[0].set_weight(b, 1.0), {"name"}),
    ("Topology.set_priority", "name"): (lambda b: world()[0].set_priority(b, 1), {"name"}),
    ("Topology.promote", "name"): (lambda b: world()[0].promote(b), {"name"}),
    ("Topology.index_of", "name"): (lambda b: world()[0].index_of(b), {"name"}),
    ("Topology.region_id", "region"): (lambda b: world()[0].region_id(b), {"region"}),
    ("Topology.info", "node"): (lambda b: world()[0].info(b), {"node"}),
    ("LagTracker.primary_sample", "current_lsn"): (lambda b: world()[1].primary_sample(b, now_ns=1),
                                                   {"current_lsn"}),
    ("LagTracker.replica_sample", "node"): (lambda b: world()[1].replica_sample(b, "0/1", "0/1", now_ns=1),
                                            {"node"}),
    ("LagTracker.replica_sample", "receive_lsn"): (lambda b: world()[1].replica_sample("r1", b, "0/1", now_ns=1),
                                                   {"receive_lsn"}),
    ("LagTracker.replica_sample", "replay_lsn"): (lambda b: world()[1].replica_sample("r1", "0/1", b, now_ns=1),
                                                  {"replay_lsn"}),
    ("LagTracker.replica", "node"): (lambda b: world()[1].replica(b), {"node"}),
    ("LagTracker.forget_replica", "node"): (lambda b: world()[1].forget_replica(b), {"node"}),
    ("LagTracker.replay_delay_ms", "node"): (lambda b: world()[1].replay_delay_ms(b), {"node"}),
    ("LagTracker.replay_probability", "node"): (lambda b: world()[1].replay_probability(b, 1.0), {"node"}),
    ("LagTracker.consistent_probability", "node"): (lambda b: world()[1].consistent_probability(b, 1.0), {"node"}),
    ("LagTracker.consistent_probability", "write_lsn"): (
        lambda b: world()[1].consistent_probability("r1", 1.0, write_lsn=b), {"write_lsn"}),
    ("LagTracker.replay_delay_count", "node"): (lambda b: world()[1].replay_delay_count(b), {"node"}),
    ("LagTracker.plan_catch_up", "wait_for_replica_ms"): (lambda b: world()[1].plan_catch_up(b),
                                                          {"wait_for_replica_ms"}),
    ("LagTracker.primary_time_past", "lsn"): (lambda b: world()[1].primary_time_past(b), {"lsn"}),
    ("Session.__init__", "write_lsn"): (lambda b: Session(write_lsn=b), {"write_lsn"}),
    ("Session.__init__", "read_lsn"): (lambda b: Session(read_lsn=b), {"read_lsn"}),
    ("Session.record_write", "commit_lsn"): (lambda b: Session().record_write(b, now_ns=1), {"commit_lsn"}),
    ("Session.observe", "lsn"): (lambda b: Session().observe(b), {"lsn"}),
    ("Session.observe_replica", "lsn"): (lambda b: Session().observe_replica(b, "r1", world()[0]), {"lsn"}),
    ("Session.observe_replica", "node"): (lambda b: Session().observe_replica("0/1", b, world()[0]), {"node"}),
    ("Session.merge", "other"): (lambda b: Session().merge(b), {"other"}),
    ("Session.from_token", "token"): (lambda b: Session.from_token(b), {"token"}),
    ("RouterConfig.__init__", "policy"): (lambda b: replikit.RouterConfig(policy=b), {"policy"}),
    ("RouterConfig.__init__", "region"): (lambda b: replikit.RouterConfig(region=b), {"region"}),
    ("Router.__init__", "policy"): (lambda b: Router(world()[0], policy=b), {"policy"}),
    ("Router.__init__", "region"): (lambda b: Router(world()[0], region=b), {"region"}),
    ("Router.route_read", "consistency"): (lambda b: world()[2].route_read(Session(), b), {"consistency"}),
    ("Router.route_read", "region"): (lambda b: world()[2].route_read(Session(), region=b), {"region"}),
    ("Router.route_read_fast", "consistency"): (lambda b: world()[2].route_read_fast(None, b), {"consistency"}),
    ("Router.route_reads", "consistency"): (lambda b: world()[2].route_reads(np.zeros(2, np.uint64), consistency=b),
                                            {"consistency"}),
    ("ReadPath.__init__", "primary"): (lambda b: read_path(primary=b), {"primary"}),
    ("ReadPath.__init__", "parked"): (lambda b: read_path(parked={b: []}), {"parked"}),
    ("ReadPath.enter", "consistency"): (lambda b: read_path().enter(None, b, None), {"consistency"}),
    ("ReadPath.leave", "node"): (lambda b: read_path().leave(b, None), {"node"}),
    ("Router.begin", "node"): (lambda b: world()[2].begin(b), {"node"}),
    ("Router.end", "node"): (lambda b: world()[2].end(b), {"node"}),
    ("Router.in_flight", "node"): (lambda b: world()[2].in_flight(b), {"node"}),
    ("minimum_quorum", "goal"): (lambda b: replikit.minimum_quorum(3, b), {"goal"}),
    ("compare_clocks", "a"): (lambda b: replikit.compare_clocks({b: 1}, {}), {"a"}),
    ("compare_clocks", "b"): (lambda b: replikit.compare_clocks({}, {b: 1}), {"b"}),
    ("merge_clocks", "a"): (lambda b: replikit.merge_clocks({b: 1}, {}), {"a"}),
    ("merge_clocks", "b"): (lambda b: replikit.merge_clocks({}, {b: 1}), {"b"}),
    ("QuorumStore.__init__", "versioning"): (lambda b: replikit.QuorumStore(versioning=b), {"versioning"}),
    ("QuorumStore.put", "key"): (lambda b: replikit.QuorumStore().put(b, "v"), {"key"}),
    ("QuorumStore.put", "value"): (lambda b: replikit.QuorumStore().put("k", b), {"value"}),
    ("QuorumStore.put", "client"): (lambda b: replikit.QuorumStore().put("k", "v", b), {"client"}),
    ("QuorumStore.put", "context"): (lambda b: replikit.QuorumStore().put("k", "v", context={b: 1}), {"context"}),
    ("QuorumStore.get", "key"): (lambda b: replikit.QuorumStore().get(b), {"key"}),
    ("QuorumStore.preference_list", "key"): (lambda b: replikit.QuorumStore().preference_list(b), {"key"}),
    ("QuorumStore.replica_versions", "key"): (lambda b: replikit.QuorumStore().replica_versions(0, b), {"key"}),
    ("MultiLeaderCluster.__init__", "resolution"): (lambda b: replikit.MultiLeaderCluster(2, b), {"resolution"}),
    ("MultiLeaderCluster.write", "key"): (lambda b: replikit.MultiLeaderCluster().write(0, b, "v", at_ms=0),
                                          {"key"}),
    ("MultiLeaderCluster.write", "value"): (lambda b: replikit.MultiLeaderCluster().write(0, "k", b, at_ms=0),
                                            {"value"}),
    ("MultiLeaderCluster.read", "key"): (lambda b: replikit.MultiLeaderCluster().read(0, b), {"key"}),
    ("run_multileader_workload", "resolution"): (lambda b: replikit.run_multileader_workload([1.0, 1.0], b),
                                                 {"resolution"}),
    ("DetectorConfig.__init__", "kind"): (lambda b: replikit.DetectorConfig(kind=b), {"kind"}),
    ("FailureDetector.record", "outcome"): (lambda b: replikit.FailureDetector().record(b, now_ns=0), {"outcome"}),
    ("CandidateState.__init__", "name"): (lambda b: replikit.CandidateState(b), {"name"}),
    ("CandidateState.__init__", "receive_lsn"): (lambda b: replikit.CandidateState("r", receive_lsn=b),
                                                 {"receive_lsn"}),
    ("CandidateState.__init__", "replay_lsn"): (lambda b: replikit.CandidateState("r", replay_lsn=b),
                                                {"replay_lsn"}),
    ("CandidateState.__init__", "region"): (lambda b: replikit.CandidateState("r", region=b), {"region"}),
    ("PrimaryState.__init__", "last_known_lsn"): (lambda b: replikit.PrimaryState(last_known_lsn=b),
                                                  {"last_known_lsn"}),
    ("PrimaryState.__init__", "synchronous_standbys"): (
        lambda b: replikit.PrimaryState(synchronous_standbys=["r1", b]), {"synchronous_standbys"}),
    ("PrimaryState.__init__", "last_acknowledged_commit_lsn"): (
        lambda b: replikit.PrimaryState(last_acknowledged_commit_lsn=b), {"last_acknowledged_commit_lsn"}),
    ("TimelineHistory.__init__", "switches"): (lambda b: replikit.TimelineHistory(2, [(1, b)]), {"switches"}),
    ("TimelineHistory.parse", "text"): (lambda b: replikit.TimelineHistory.parse(b, 2), {"text"}),
    ("TimelineHistory.survives", "lsn"): (lambda b: replikit.TimelineHistory().survives(1, b), {"lsn"}),
    ("FailoverConfig.__init__", "preferred_region"): (lambda b: replikit.FailoverConfig(preferred_region=b),
                                                      {"preferred_region"}),
    ("LeaderLease.renew_failed", "reason"): (lambda b: replikit.LeaderLease().renew_failed(b, now_ns=0), {"reason"}),
    ("LeaderLease.lost", "reason"): (lambda b: replikit.LeaderLease().lost(b, now_ns=0), {"reason"}),
    ("PublishedReplica.__init__", "name"): (lambda b: replikit.PublishedReplica(b, "up"), {"name"}),
    ("PublishedReplica.__init__", "state"): (lambda b: replikit.PublishedReplica("r1", b), {"state"}),
    ("PublishedTopology.__init__", "primary"): (lambda b: replikit.PublishedTopology(primary=b), {"primary"}),
    ("PublishedTopology.__init__", "replicas"): (
        lambda b: replikit.PublishedTopology(primary="p", replicas=[("r1", b)]), {"replicas"}),
}

if HAVE_PG:
    from replikit.pg import DatabaseOptions

    def _set_policy(b):
        DatabaseOptions().policy = b

    CASES.update({
        ("DatabaseOptions.__init__", "policy"): (lambda b: DatabaseOptions(policy=b), {"policy"}),
        ("DatabaseOptions.__init__", "region"): (lambda b: DatabaseOptions(region=b), {"region"}),
        ("DatabaseOptions.policy", "value"): (_set_policy, {"policy", "value"}),
        ("DatabaseStats.__getitem__", "name"): (_db_call(lambda db, b: db.stats()[b]), {"name"}),
        ("ReplicatedDatabase.__init__", "primary"): (lambda b: offline_db_with(primary=b), {"primary", "name"}),
        ("ReplicatedDatabase.__init__", "replicas"): (lambda b: offline_db_with(replica=b), {"replicas", "name"}),
        ("ReplicatedDatabase.execute", "sql"): (_db_call(lambda db, b: db.execute(b)), {"sql"}),
        ("ReplicatedDatabase.execute", "params"): (_db_call(lambda db, b: db.execute("SELECT $1", [b])), {"params"}),
        ("ReplicatedDatabase.transaction", "statements"): (_db_call(lambda db, b: db.transaction([b])),
                                                           {"statements"}),
        ("ReplicatedDatabase.query", "sql"): (_db_call(lambda db, b: db.query(b)), {"sql"}),
        ("ReplicatedDatabase.query", "params"): (_db_call(lambda db, b: db.query("SELECT $1", [b])), {"params"}),
        ("ReplicatedDatabase.query", "consistency"): (_db_call(lambda db, b: db.query("SELECT 1", consistency=b)),
                                                      {"consistency"}),
        ("ReplicatedDatabase.query", "region"): (_db_call(lambda db, b: db.query("SELECT 1", region=b)),
                                                 {"region"}),
        ("ReplicatedDatabase.route_read", "consistency"): (_db_call(lambda db, b: db.route_read(consistency=b)),
                                                           {"consistency"}),
        ("ReplicatedDatabase.route_read", "region"): (_db_call(lambda db, b: db.route_read(region=b)), {"region"}),
        ("ReplicatedDatabase.record_read", "node"): (_db_call(lambda db, b: db.record_read(b, "write")), {"node"}),
        ("ReplicatedDatabase.record_read", "reason"): (_db_call(lambda db, b: db.record_read("p", b)), {"reason"}),
        ("ReplicatedDatabase.mark_down", "name"): (_db_call(lambda db, b: db.mark_down(b)), {"name"}),
        ("ReplicatedDatabase.node", "name"): (_db_call(lambda db, b: db.node(b)), {"name"}),
        ("ReplicatedDatabase.dsn", "name"): (_db_call(lambda db, b: db.dsn(b)), {"name"}),
        ("EventLog.publish", "node"): (lambda b: replikit.pg.EventLog().publish("failover", b), {"node"}),
        ("EventLog.publish", "message"): (lambda b: replikit.pg.EventLog().publish("failover", "p", message=b),
                                          {"message"}),
        ("FailoverManager.__init__", "preferred_region"): (
            _db_call(lambda db, b: replikit.FailoverManager(db, preferred_region=b)), {"preferred_region"}),
        ("FailoverManager.switchover", "candidate"): (
            _db_call(lambda db, b: replikit.FailoverManager(db).switchover(b)), {"candidate"}),
        ("ReplicatedDatabase.start_failover_manager", "preferred_region"): (
            _db_call(lambda db, b: db.start_failover_manager(preferred_region=b)), {"preferred_region"}),
    })
    _DEAD = "host=127.0.0.1 port=1"
    for _name, _call in {
            "fence_node": lambda **k: replikit.fence_node(**k),
            "promote_node": lambda **k: replikit.promote_node(**k),
            "next_xid_bound": lambda **k: replikit.next_xid_bound(**k)}.items():
        CASES[(_name, "node")] = (lambda b, c=_call: c(node=b, dsn=_DEAD), {"node"})
        CASES[(_name, "dsn")] = (lambda b, c=_call: c(node="n", dsn=b), {"dsn"})
    CASES.update({
        ("create_slot", "node"): (lambda b: replikit.create_slot(b, _DEAD, "s"), {"node"}),
        ("create_slot", "dsn"): (lambda b: replikit.create_slot("n", b, "s"), {"dsn"}),
        ("create_slot", "slot"): (lambda b: replikit.create_slot("n", _DEAD, b), {"slot"}),
        ("repoint_node", "node"): (lambda b: replikit.repoint_node(b, _DEAD, _DEAD, "s"), {"node"}),
        ("repoint_node", "dsn"): (lambda b: replikit.repoint_node("n", b, _DEAD, "s"), {"dsn"}),
        ("repoint_node", "primary_conninfo"): (lambda b: replikit.repoint_node("n", _DEAD, b, "s"),
                                               {"primary_conninfo"}),
        ("repoint_node", "slot"): (lambda b: replikit.repoint_node("n", _DEAD, _DEAD, b), {"slot"}),
        ("record_failover", "node"): (lambda b: replikit.record_failover(b, _DEAD, 2, 0), {"node"}),
        ("record_failover", "dsn"): (lambda b: replikit.record_failover("n", b, 2, 0), {"dsn"}),
        ("standby_conninfo", "primary_dsn"): (lambda b: replikit.standby_conninfo(b, "r1"), {"primary_dsn"}),
        ("standby_conninfo", "application_name"): (lambda b: replikit.standby_conninfo(_DEAD, b),
                                                   {"application_name"}),
        ("slot_name", "node"): (lambda b: replikit.slot_name(b), {"node"}),
    })

    # More str slots of the pg API than the stub's annotations show.
    EXTRA_PG_CASES = {
        "transaction sql of a pair": (_db_call(lambda db, b: db.transaction([(b, [])])), {"statements"}),
        "transaction params of a pair": (_db_call(lambda db, b: db.transaction([("SELECT $1", [b])])),
                                         {"statements", "params"}),
        "params: a list (array) holding the text": (_db_call(lambda db, b: db.query("SELECT $1", [[b]])),
                                                    {"params"}),
        "record_write commit_lsn": (_db_call(lambda db, b: db.record_write(Session(), b)), {"commit_lsn"}),
        "node dsn (tuple)": (lambda b: offline_db_with(primary_dsn=b), {"dsn"}),
        "node dsn (dict)": (lambda b: offline_db_with(primary={"name": "p", "dsn": b}), {"dsn"}),
        "node region (dict)": (
            lambda b: offline_db_with(primary={"name": "p", "dsn": "host=127.0.0.1 port=1", "region": b}),
            {"region"}),
        "DatabaseOptions.replace region": (lambda b: DatabaseOptions().replace(region=b), {"region"}),
        "ReplicatedDatabase region keyword": (lambda b: offline_db_with(region=b), {"region"}),
        "EventLog.publish kind": (lambda b: replikit.pg.EventLog().publish(b, "p"), {"kind"}),
        "on_event kinds": (_db_call(lambda db, b: db.on_event(print, kinds=[b])), {"kinds"}),
    }
else:  # pragma: no cover - depends on the build
    EXTRA_PG_CASES = {}


def offline_db_with(primary=None, replica=None, primary_dsn="host=127.0.0.1 port=1", **options):
    from replikit.pg import ReplicatedDatabase

    options.setdefault("probe_interval_ms", 60_000)
    if primary is None or isinstance(primary, str):
        primary = (primary if primary is not None else "p", primary_dsn)
    replicas = [(replica, "host=127.0.0.1 port=1")] if replica is not None else []
    db = ReplicatedDatabase(primary, replicas, **options)
    db.close()


def test_every_str_parameter_has_a_case():
    pg_only = ("DatabaseOptions.", "DatabaseStats.", "ReplicatedDatabase.", "Result.", "EventLog.", "Event.")
    missing = [p for p in str_parameters()
               if p not in CASES and (HAVE_PG or not p[0].startswith(pg_only))
               and p not in NOT_TEXT]
    assert not missing, f"str parameters without a surrogate case: {missing}"


# Parameters whose annotation admits a str but that take no text of the caller's.
NOT_TEXT = {
    ("Session.__deepcopy__", "memo"),  # copy's memo dict
    ("Result.__getitem__", "index"),   # a column name: looked up, never encoded (KeyError/IndexError)
}


# Protocols with their own error for what they cannot take: an operator given an operand it
# cannot convert returns NotImplemented, so Python raises TypeError (as for Lsn(1) < "junk",
# test_routing_bad_input.py); a mapping raises KeyError for a key it does not have.
PROTOCOL_ERRORS = {
    ("Lsn.__sub__", "other"): TypeError,
    ("Lsn.__lt__", "other"): TypeError,
    ("Lsn.__le__", "other"): TypeError,
    ("Lsn.__gt__", "other"): TypeError,
    ("Lsn.__ge__", "other"): TypeError,
    ("DatabaseStats.__getitem__", "name"): KeyError,
}


@pytest.mark.parametrize("bad", SURROGATES, ids=ascii)
@pytest.mark.parametrize("key", sorted(CASES, key=str) + sorted(EXTRA_PG_CASES), ids=str)
def test_a_surrogate_is_an_invalid_argument_naming_it(key, bad):
    call, arguments = CASES[key] if key in CASES else EXTRA_PG_CASES[key]
    expected = PROTOCOL_ERRORS.get(key, IA)
    with pytest.raises(expected) as info:
        call(bad)
    assert not isinstance(info.value, UnicodeError), info.value
    if expected is IA:
        assert info.value.argument in arguments, (info.value.argument, str(info.value))


# ------------------------------------------------------------ pg options of the wrong type
@pytest.mark.skipif(not HAVE_PG, reason="built without the PostgreSQL backend")
def test_pg_options_of_the_wrong_type_are_typed_errors():
    cases = [
        (lambda db: db.query("SELECT 1", max_staleness_ms="x"), AT, "max_staleness_ms"),
        (lambda db: db.query("SELECT 1", region=5), AT, "region"),
        (lambda db: db.query("SELECT 1", wait_for_replica_ms=[1]), AT, "wait_for_replica_ms"),
        (lambda db: db.route_read(max_staleness_ms="x"), AT, "max_staleness_ms"),
        (lambda db: db.route_read(region=5), AT, "region"),
        (lambda db: db.route_read(wait_for_replica_ms=[1]), AT, "wait_for_replica_ms"),
        (lambda db: db.execute(5), AT, "sql"),
        (lambda db: db.query("SELECT 1", params="ab"), AT, "params"),
        (lambda db: db.transaction("SELECT 1"), AT, "statements"),
    ]
    db = offline_db()
    try:
        for call, exc, argument in cases:
            with pytest.raises(exc) as info:
                call(db)
            assert info.value.argument == argument, (argument, str(info.value))
    finally:
        db.close()
    node_cases = [
        ({"name": 5, "dsn": "host=127.0.0.1 port=1"}, AT, "name"),
        ((5, "host=127.0.0.1 port=1"), AT, "name"),
        ({"name": "p", "dsn": 5}, AT, "dsn"),
        ({"name": "p", "dsn": "host=127.0.0.1 port=1", "region": 5}, AT, "region"),
        ({"name": "p", "dsn": "host=127.0.0.1 port=1", "priority": 2**40}, IA, "priority"),
        ({"name": "p", "dsn": "host=127.0.0.1 port=1", "priority": "1"}, AT, "priority"),
        ({"name": "p", "dsn": "host=127.0.0.1 port=1", "weight": "1"}, AT, "weight"),
    ]
    for node, exc, argument in node_cases:
        with pytest.raises(exc) as info:
            offline_db_with(primary=node)
        assert info.value.argument == argument, (argument, str(info.value))
    for keyword, value, exc in [("max_staleness_ms", "x", AT), ("region", 5, AT), ("wait_for_replica_ms", [1], AT),
                                ("pool_size", 2**40, IA), ("probe_interval_ms", "1", AT)]:
        with pytest.raises(exc) as info:
            offline_db_with(**{keyword: value}) if keyword != "max_staleness_ms" else \
                DatabaseOptions(**{keyword: value})
        assert info.value.argument == keyword or isinstance(info.value, TypeError), (keyword, str(info.value))


@pytest.mark.parametrize("delay", [np.array(5), np.array(5.0), np.array([5, 6]), np.zeros((2, 2, 2)), "5", 5,
                                   [5, 6], [[1, 2], 3]], ids=repr)
def test_replication_delay_that_is_not_a_matrix_is_a_typed_error(delay):
    """replication_delay_ms is a leaders x leaders matrix: anything else (a 0-d array too) is
    a typed error naming it, never an IndexError."""
    with pytest.raises((AT, IA)) as info:
        replikit.run_multileader_workload([10.0, 10.0], keys=5, duration_ms=1000, replication_delay_ms=delay, seed=1)
    assert info.value.argument == "replication_delay_ms"
    with pytest.raises((AT, IA)) as info:
        replikit.MultiLeaderCluster(2, replication_delay_ms=delay)
    assert info.value.argument == "replication_delay_ms"


def test_replication_delay_as_a_2d_array_is_accepted():
    out = replikit.run_multileader_workload([10.0, 10.0], keys=5, duration_ms=1000,
                                            replication_delay_ms=np.full((2, 2), 5.0), seed=1)
    reference = replikit.run_multileader_workload([10.0, 10.0], keys=5, duration_ms=1000,
                                                  replication_delay_ms=[[5.0, 5.0], [5.0, 5.0]], seed=1)
    assert repr(out) == repr(reference)
