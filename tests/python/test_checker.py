"""The history checker (tests/checker): its checkers on small hand-made histories, each with
the violation it claims to catch, and a short fault campaign on a real cluster."""

from __future__ import annotations

import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.checker import checkers  # noqa: E402
from tests.checker.history import History, HistoryFull, Op, load, save  # noqa: E402

MS = 1_000_000


def history(*ops: Op) -> list:
    for i, op in enumerate(ops):
        op.id = i
    return list(ops)


def write(session, key, value, outcome="ok", t0=0, t1=1, node="primary", served="primary",
          epoch=1, primary="primary"):
    return Op(f="write", session=session, key=key, value=value, type=outcome, t0=t0, t1=t1,
              node=node, served=served, epoch=epoch, primary=primary, lsn=f"0/{value:X}")


def read(session, key, value, level, t0=2, t1=3, node="r1", max_staleness_ms=None):
    return Op(f="read", session=session, key=key, value=value, type="ok", consistency=level,
              t0=t0, t1=t1, node=node, served=node, epoch=1, primary="primary",
              max_staleness_ms=max_staleness_ms)


def present(session, value, count):
    return Op(f="present", type="ok", session=session, value=value, count=count)


def final(key, value):
    return Op(f="final", type="ok", key=key, value=value)


def kinds(violations):
    return sorted(v["kind"] for v in violations)


# ------------------------------------------------------------------------ writes
def test_writes_clean_history_has_no_violation():
    ops = history(write("a", "k", 1), write("a", "k", 2, "unknown"), write("a", "k", 3, "fail"),
                  present("a", 1, 1), present("a", 2, 1), present("a", 3, 0), final("k", 2))
    assert checkers.check_writes(ops) == []
    assert checkers.resolve_unknown(ops) == {"committed": 1, "not_committed": 0,
                                             "not_read_back": 0}


@pytest.mark.parametrize("ops,expected", [
    ([write("a", "k", 1), present("a", 1, 0), final("k", 0)], ["lost"]),
    ([write("a", "k", 1), present("a", 1, 2), final("k", 1)], ["duplicated"]),
    ([write("a", "k", 1, "unknown"), present("a", 1, 2), final("k", 1)], ["duplicated"]),
    ([write("a", "k", 1, "fail"), present("a", 1, 1), final("k", 1)], ["failed_write_present"]),
    ([write("a", "k", 1), present("a", 1, 1), present("b", 7, 1), final("k", 1)], ["phantom"]),
    ([write("a", "k", 1), present("a", 1, 1), final("k", 0)], ["final_value"]),
    ([write("a", "k", 1), final("k", 1)], ["final_value", "not_read_back"]),
    ([write("a", "k", 1, "invoke"), present("a", 1, 0), final("k", 0)], ["not_completed"]),
])
def test_writes_checker_catches(ops, expected):
    assert kinds(checkers.check_writes(history(*ops))) == expected


def test_unknown_writes_are_resolved_both_ways():
    ops = history(write("a", "k", 1, "unknown"), write("a", "k", 2, "unknown"),
                  write("a", "k", 3, "unknown"), present("a", 1, 1), present("a", 2, 0))
    assert checkers.resolve_unknown(ops) == {"committed": 1, "not_committed": 1,
                                             "not_read_back": 1}


# ------------------------------------------------------------------------ sessions
def test_sessions_clean_history_has_no_violation():
    ops = history(write("a", "k", 1), read("a", "k", 1, "read_your_writes"),
                  read("a", "k", 1, "monotonic"), read("a", "k", 2, "causal"),
                  read("a", "k", 1, "eventual"),  # eventual and RYW promise no monotonicity
                  read("a", "j", 5, "monotonic"), read("a", "j", 0, "read_your_writes"),
                  read("a", "j", 0, "strong"))
    assert checkers.check_session_guarantees(ops) == []


@pytest.mark.parametrize("level", ["read_your_writes", "causal", "strong"])
def test_sessions_catch_read_your_writes(level):
    ops = history(write("a", "k", 2), read("a", "k", 1, level))
    assert kinds(checkers.check_session_guarantees(ops)) == ["read_your_writes"]


def test_sessions_ryw_ignores_unknown_and_failed_writes_and_other_sessions():
    ops = history(write("a", "k", 2, "unknown"), write("a", "k", 3, "fail"),
                  write("b", "k", 4), read("a", "k", 1, "read_your_writes"))
    assert checkers.check_session_guarantees(ops) == []


@pytest.mark.parametrize("first,second", [("monotonic", "monotonic"), ("causal", "monotonic"),
                                          ("monotonic", "causal")])
def test_sessions_catch_monotonic(first, second):
    ops = history(read("a", "k", 5, first), read("a", "k", 4, second))
    assert kinds(checkers.check_session_guarantees(ops)) == ["monotonic"]


def test_sessions_monotonic_is_per_session_and_per_key():
    ops = history(read("a", "k", 5, "monotonic"), read("b", "k", 4, "monotonic"),
                  read("a", "j", 1, "monotonic"))
    assert checkers.check_session_guarantees(ops) == []


def test_sessions_catch_causal_through_a_token():
    ops = history(write("a", "k", 3), read("a", "j", 7, "monotonic"),
                  Op(f="token_out", session="a", type="ok", token="t1"),
                  Op(f="token_in", session="b", type="ok", token="t1"),
                  read("b", "k", 2, "causal"), read("b", "j", 6, "causal"),
                  read("b", "k", 2, "eventual"))
    assert kinds(checkers.check_session_guarantees(ops)) == ["causal", "causal"]


def test_sessions_token_carries_only_what_was_known_when_taken():
    ops = history(Op(f="token_out", session="a", type="ok", token="t1"), write("a", "k", 3),
                  Op(f="token_in", session="b", type="ok", token="t1"),
                  read("b", "k", 0, "causal"))
    assert checkers.check_session_guarantees(ops) == []


def test_sessions_tokens_are_transitive():
    ops = history(write("a", "k", 3), Op(f="token_out", session="a", type="ok", token="t1"),
                  Op(f="token_in", session="b", type="ok", token="t1"),
                  Op(f="token_out", session="b", type="ok", token="t2"),
                  Op(f="token_in", session="c", type="ok", token="t2"),
                  read("c", "k", 1, "causal"))
    assert kinds(checkers.check_session_guarantees(ops)) == ["causal"]


def test_sessions_catch_a_token_merged_before_it_existed():
    ops = history(Op(f="token_in", session="b", type="ok", token="nope"))
    assert kinds(checkers.check_session_guarantees(ops)) == ["unknown_token"]


# ------------------------------------------------------------------------ staleness
def test_staleness_within_bound_and_tolerance_is_fine():
    ops = history(write("a", "k", 1, t1=0), write("a", "k", 2, t1=10 * MS),
                  read("b", "k", 1, "bounded_staleness", t0=10 * MS + 150 * MS,
                       max_staleness_ms=100.0),
                  read("b", "k", 2, "bounded_staleness", t0=10_000 * MS, max_staleness_ms=0.0),
                  read("b", "k", 0, "eventual", t0=10_000 * MS))
    assert checkers.check_staleness(ops, tolerance_ms=50.0) == []


def test_staleness_catches_a_value_overwritten_too_long_ago():
    ops = history(write("a", "k", 1, t1=0), write("a", "k", 2, t1=10 * MS),
                  write("a", "k", 3, t1=900 * MS),
                  read("b", "k", 1, "bounded_staleness", t0=10 * MS + 151 * MS,
                       max_staleness_ms=100.0))
    violations = checkers.check_staleness(ops, tolerance_ms=50.0)
    assert kinds(violations) == ["stale"] and violations[0]["op"] == 3


def test_staleness_ignores_unacknowledged_writes():
    ops = history(write("a", "k", 1, t1=0), write("a", "k", 2, "unknown", t1=0),
                  read("b", "k", 1, "bounded_staleness", t0=5000 * MS, max_staleness_ms=100.0))
    assert checkers.check_staleness(ops, tolerance_ms=50.0) == []


# ------------------------------------------------------------------------ primaries
def test_primaries_clean_history_has_no_violation():
    ops = history(write("a", "k", 1), write("a", "k", 2, node="n2", served="n2", epoch=2,
                                            primary="n2"), read("b", "k", 1, "eventual"))
    assert checkers.check_primaries(ops) == []


@pytest.mark.parametrize("op,expected", [
    (write("a", "k", 1, node="r1", served="r1"), ["not_primary"]),
    (write("a", "k", 1, served="r1"), ["not_primary", "wrong_node_reported"]),
    (write("a", "k", 1, node="r2", served="r2", epoch=1, primary="r2"),
     ["epoch_conflict", "not_primary"]),
    (Op(f="read", session="b", key="k", value=1, type="ok", node="r1", served="r2"),
     ["wrong_node_reported"]),
])
def test_primaries_checker_catches(op, expected):
    ops = history(write("a", "k", 0), op)
    assert kinds(checkers.check_primaries(ops)) == expected


def tl_write(value, served, timeline, t0, t1, epoch=None, invoke_epoch=None):
    """A failover history's write: the server's timeline, the client's epochs and primary."""
    primaries = {1: "primary", 2: "r1"}
    op = write("a", "w", value, t0=t0, t1=t1, node=served, served=served,
               epoch=epoch or timeline, primary=primaries[epoch or timeline])
    op.timeline = timeline
    if invoke_epoch is not None:
        op.invoke_epoch, op.invoke_primary = invoke_epoch, primaries[invoke_epoch]
    return op


def test_primaries_failover_history_without_violation():
    ops = history(tl_write(1, "primary", 1, 0, 10), tl_write(2, "primary", 1, 5, 20),
                  # invoked in epoch 1, served by the old primary, completed in epoch 2
                  tl_write(3, "primary", 1, 15, 40, epoch=2, invoke_epoch=1),
                  tl_write(4, "r1", 2, 30, 50, invoke_epoch=1),
                  tl_write(5, "r1", 2, 60, 70, invoke_epoch=2))
    assert checkers.check_primaries(ops) == []


@pytest.mark.parametrize("op,expected", [
    # the old primary took a write invoked after one on the new timeline had completed
    (tl_write(9, "primary", 1, 60, 70, invoke_epoch=1), ["deposed_primary_write"]),
    # two nodes acknowledged writes on one timeline
    (tl_write(9, "r2", 2, 60, 70), ["not_primary", "timeline_conflict", "wrong_node_reported"]),
    # served by the old primary although the client's epoch was 2 throughout
    (tl_write(9, "primary", 1, 45, 70, epoch=2, invoke_epoch=2),
     ["deposed_primary_write", "not_primary"]),
])
def test_primaries_checker_catches_a_second_writable_primary(op, expected):
    ops = history(tl_write(1, "primary", 1, 0, 10), tl_write(2, "r1", 2, 30, 40), op)
    if op.served == "r2":
        op.node = "r1"
    assert kinds(checkers.check_primaries(ops)) == expected


# ------------------------------------------------------------------------ the coordinated app
class _Result:
    def __init__(self, node, port, timeline):
        self.node, self.rows = node, [(port, timeline)]


class _PausedRouter:
    """One application process's router (a real Topology) whose writes the old primary serves
    (port 5001, timeline 1). ``before``/``during`` run before the write is invoked / while it
    is in flight: the timing of the coordinator's watch applying the failover's record (r1)."""

    def __init__(self, before=None, during=None):
        from replikit import _core

        self.topology = _core.Topology("primary", ["r1", "r2"])
        self.during = during
        if before is not None:
            before(self.topology)

    def execute(self, sql, params, session=None):
        if self.during is not None:
            self.during(self.topology)
        return _Result("primary", 5001, 1)


def _app_writes(tmp_path, db):
    """The coordinated app's writer loop over ``db`` for one write, and its record."""
    import threading

    from replikit.testing import coordinated

    stop = threading.Event()
    execute = db.execute

    def once(*args, **kwargs):
        stop.set()
        return execute(*args, **kwargs)

    db.execute = once
    config = {"name": "a", "ports": {"5001": "primary", "5002": "r1"}, "table": "w",
              "write_interval_ms": 0.0}
    path = str(tmp_path / "a.writes.jsonl")
    out = coordinated._Recorder(path)
    coordinated._write_loop(config, db, stop, out)
    out.close()
    with open(path, encoding="utf-8") as handle:
        (record,) = [Op(**json.loads(line)) for line in handle]
    return record


def _after_failover(op):
    """``op`` among writes of another process: before the failover on the old primary, after
    it on r1 (epoch 2, timeline 2), the first of those completed before ``op`` was invoked."""
    return history(write("b", "b", 1, t0=op.t0 - 20, t1=op.t0 - 10),
                   Op(f="write", session="b", key="b", value=2, type="ok", t0=op.t0 - 5,
                      t1=op.t0 - 1 if op.invoke_epoch == 2 else op.t1 + 10, node="r1",
                      served="r1", epoch=2, primary="r1", timeline=2), op)


def test_coordinated_app_write_in_flight_across_a_failover_is_judged_by_its_invoke_epoch(tmp_path):
    """A process paused with a write in flight on the old primary, resumed after the failover:
    its watch applied the new record (epoch 2: r1) before the writer read the topology after
    the acknowledgement. The write was the old primary's, invoked in epoch 1: no violation.
    Judged by the completion's topology alone (the app's records before), it looked like
    "acknowledged by the old primary in epoch 2", as in CI."""
    op = _app_writes(tmp_path, _PausedRouter(during=lambda t: t.promote("r1")))
    assert (op.invoke_epoch, op.invoke_primary, op.epoch, op.primary) == (1, "primary", 2, "r1")
    assert (op.type, op.served, op.timeline) == ("ok", "primary", 1)
    assert checkers.check_primaries(_after_failover(op)) == []
    op.invoke_epoch = op.invoke_primary = None  # the record without its invoke topology
    assert checkers.check_primaries(_after_failover(op)) == [{
        "checker": "primaries", "kind": "not_primary", "op": 2,
        "detail": "write acknowledged by primary; the primary of epoch 2 is r1"}]


def test_coordinated_app_write_served_by_a_deposed_primary_is_still_caught(tmp_path):
    """The router had adopted epoch 2 (r1) before the write, and the old primary served it."""
    op = _app_writes(tmp_path, _PausedRouter(before=lambda t: t.promote("r1")))
    assert (op.invoke_epoch, op.invoke_primary, op.epoch, op.primary) == (2, "r1", 2, "r1")
    assert kinds(checkers.check_primaries(_after_failover(op))) == [
        "deposed_primary_write", "not_primary"]
    op.timeline = None  # the client's epochs alone still catch it
    assert kinds(checkers.check_primaries(_after_failover(op))) == ["not_primary"]


def test_coordinated_app_reads_no_torn_topology():
    """The reader reads (epoch, primary) in one go: a promoter flipping the primary between
    two nodes (odd epochs: primary, even: r1) is never seen with the other epoch's primary."""
    import threading

    from replikit import _core
    from replikit.testing import coordinated

    class Db:
        topology = _core.Topology("primary", ["r1"])

    reader = coordinated.TopologyReader(Db)
    assert reader.read() == (1, "primary")
    Db.topology.promote("r1")
    assert reader.read() == (2, "r1")
    done = threading.Event()

    def promoter():
        for k in range(2000):
            Db.topology.promote("primary" if k % 2 == 0 else "r1")
        done.set()

    thread = threading.Thread(target=promoter)
    thread.start()
    torn, reads = [], 0
    while not done.is_set() and reads < 1_000_000:
        epoch, primary = reader.read()
        reads += 1
        if primary != ("primary" if epoch % 2 else "r1"):
            torn.append((epoch, primary))
    thread.join()
    assert torn == [], torn[:5]
    assert reader.read() == (2002, "r1")


# ------------------------------------------------------------------------ history
def test_history_is_bounded_and_round_trips(tmp_path):
    h = History(max_ops=2)
    h.add(write("a", "k", 1))
    h.add(read("a", "k", 1, "monotonic"))
    with pytest.raises(HistoryFull):
        h.add(write("a", "k", 2))
    path = str(tmp_path / "h.jsonl")
    save(path, h.ops(), {"seed": 5})
    meta, ops = load(path)
    assert meta == {"seed": 5}
    assert [op.to_json() for op in ops] == [op.to_json() for op in h.ops()]


def test_check_all_and_summary_count_every_kind():
    ops = history(write("a", "k", 2), read("a", "k", 1, "read_your_writes"),
                  present("a", 2, 1), final("k", 2))
    violations = checkers.check_all(ops, tolerance_ms=0.0)
    summary = checkers.summarize(ops, violations)
    assert summary["operations"] == {"read:ok": 1, "write:ok": 1}
    assert summary["violations"] == {"sessions:read_your_writes:other": 1}
    assert summary["writes_lsn_unknown"] == {"acknowledged": 0}
    ops[0].lsn = None
    assert checkers.summarize(ops, [])["writes_lsn_unknown"] == {"acknowledged": 1}


def test_cli_help_states_the_limits(capsys):
    from tests.checker.__main__ import parser

    text = " ".join(parser().format_help().split())
    for limit in ("[0.05, 1440]", "[1, 64]", "[5, 3600]", "[1000, 5000000]"):
        assert limit in text
    with pytest.raises(SystemExit):
        parser().parse_args(["--sessions", "65"])


# ------------------------------------------------------------------------ real cluster
CAMPAIGN_SEED = 8008
# Every violation label (checker:kind:cause) must be 0. Fixed, so counted like any other:
# primary_behind_replica (a monotonic or causal read falling back to the primary went
# backwards), observed_on_primary (a primary restarted after a crash reported a stale replay
# LSN as what a read observed) and write_lsn_unknown (after a write acknowledged without its
# commit LSN, read-your-writes lasted only time_window_ms, also while the replicas lacked the
# commit; now the write stays unresolved until a primary probe bounds its LSN).


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    from conftest import require_pg_server

    require_pg_server()
    pytest.importorskip("psycopg")
    from tests.checker.campaign import CampaignOptions, run_campaign

    options = CampaignOptions(seed=CAMPAIGN_SEED, seconds=70.0, round_seconds=35.0,
                              sessions=6, out_dir=str(tmp_path_factory.mktemp("histories")))
    print(f"checker campaign seed {CAMPAIGN_SEED} (rerun: python -m tests.checker --seed "
          f"{CAMPAIGN_SEED} --minutes 1.2 --round-seconds 35 --sessions 6)")
    summary = run_campaign(options, log=lambda line: print(line, flush=True))
    print(summary)
    return summary


@pytest.mark.pg
def test_campaign_checks_many_operations_under_several_faults(campaign):
    assert campaign["harness_errors"] == []
    assert campaign["operations_checked"] > 1000
    assert len(campaign["faults"]) >= 3, campaign["faults"]
    assert campaign["operations"].get("write:ok", 0) > 100
    assert campaign["reads_by_consistency"].get("bounded_staleness", 0) > 50


@pytest.mark.pg
def test_campaign_has_no_violation(campaign):
    assert campaign["violations"] == {}, (campaign["first_violations"], campaign["saved_histories"])
    assert campaign["violation_count"] == 0


@pytest.mark.pg
def test_freeze_and_thaw_stop_and_continue_a_node(pg_cluster_reset):
    from conftest import wait_until
    from tests.checker.faults import heal_all

    cluster = pg_cluster_reset
    stopped = cluster.freeze("r1")
    try:
        assert stopped
        wait_until(lambda: all(_state(pid) == "T" for pid in stopped), 5, "r1 stopped")
        with pytest.raises(Exception):
            cluster.sql("r1", "SELECT 1", timeout_ms=500)
    finally:
        cluster.thaw("r1")
    wait_until(lambda: all(_state(pid) != "T" for pid in stopped), 5, "r1 continued")
    assert cluster.sql("r1", "SELECT 1") == [("1",)]
    heal_all(cluster)


def _state(pid):
    with open(f"/proc/{pid}/stat") as handle:
        stat = handle.read()
    return stat[stat.rfind(")") + 2:].split()[0]


def test_violations_name_the_known_cause_they_look_like():
    write_no_lsn = write("a", "k", 2)
    write_no_lsn.lsn = None
    ops = history(write_no_lsn, read("a", "k", 1, "read_your_writes"),
                  read("b", "j", 5, "monotonic", node="primary"), read("b", "j", 4, "monotonic"),
                  read("c", "j", 5, "monotonic"), read("c", "j", 4, "monotonic",
                                                       node="primary"),
                  read("d", "j", 5, "monotonic", node="r2"), read("d", "j", 4, "monotonic"))
    found = [checkers.label(v) for v in checkers.check_session_guarantees(ops)]
    assert found == ["sessions:read_your_writes:write_lsn_unknown",
                     "sessions:monotonic:observed_on_primary",
                     "sessions:monotonic:primary_behind_replica", "sessions:monotonic:other"]


def test_staleness_names_a_primary_fault_in_between():
    ops = history(write("a", "k", 1, t1=0), write("a", "k", 2, t1=10 * MS),
                  Op(f="fault", type="ok", key="kill_primary", node="primary", t0=11 * MS,
                     t1=3000 * MS),
                  read("b", "k", 1, "bounded_staleness", t0=2000 * MS, max_staleness_ms=100.0),
                  write("a", "k", 3, t1=3500 * MS),
                  Op(f="fault", type="ok", key="kill_replica", node="r1", t0=0, t1=9000 * MS),
                  read("b", "k", 2, "bounded_staleness", t0=6000 * MS, max_staleness_ms=100.0))
    found = [checkers.label(v) for v in checkers.check_staleness(ops, tolerance_ms=50.0)]
    assert found == ["staleness:stale:primary_fault", "staleness:stale:other"]
