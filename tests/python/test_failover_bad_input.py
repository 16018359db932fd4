"""Bad input to the failover API: typed errors naming the argument, never a crash."""

from __future__ import annotations

import math

import pytest

import replikit as rk

AT, IA = rk.ArgumentTypeError, rk.InvalidArgument


@pytest.mark.parametrize("call, exc, argument", [
    (lambda: rk.DetectorConfig(interval_ms=0), IA, "interval_ms"),
    (lambda: rk.DetectorConfig(interval_ms=math.nan), IA, "interval_ms"),
    (lambda: rk.DetectorConfig(interval_ms="1"), AT, "interval_ms"),
    (lambda: rk.DetectorConfig(missed_threshold=0), IA, "missed_threshold"),
    (lambda: rk.DetectorConfig(missed_threshold=2.5), AT, "missed_threshold"),
    (lambda: rk.DetectorConfig(phi_threshold=-1), IA, "phi_threshold"),
    (lambda: rk.DetectorConfig(phi_window=1), IA, "phi_window"),
    (lambda: rk.DetectorConfig(min_std_ms=0), IA, "min_std_ms"),
    (lambda: rk.DetectorConfig(acceptable_pause_ms=math.inf), IA, "acceptable_pause_ms"),
    (lambda: rk.DetectorConfig(kind="gossip"), IA, "kind"),
    (lambda: rk.DetectorConfig(kind=3), AT, "kind"),
    (lambda: rk.DetectorConfig.phi_accrual(-5), IA, "interval_ms"),
    (lambda: rk.FailureDetector("fast"), AT, "config"),
    (lambda: rk.FailureDetector().record("lost", now_ns=1), IA, "outcome"),
    (lambda: rk.FailureDetector().record("ok", now_ns=-1), IA, "now_ns"),
    (lambda: rk.FailureDetector().suspected(now_ns="1"), AT, "now_ns"),
    (lambda: rk.FailureDetector().record("ok", now_ns=5, sent_ns=6), IA, "sent_ns"),
    (lambda: rk.FailureDetector().record("ok", now_ns=5, sent_ns="1"), AT, "sent_ns"),
    (lambda: rk.FailureDetector().watch(now_ns=-1), IA, "now_ns"),
    (lambda: rk.FailureDetector().sleep_until(-1), IA, "wake_ns"),
    (lambda: rk.FailureDetector().sleep_until(1.5), AT, "wake_ns"),
    (lambda: rk.CandidateState(""), None, None),  # accepted here; plan_failover refuses it
    (lambda: rk.CandidateState(5), AT, "name"),
    (lambda: rk.CandidateState("r1", receive_lsn="zz"), IA, "receive_lsn"),
    (lambda: rk.CandidateState("r1", timeline=-1), IA, "timeline"),
    (lambda: rk.CandidateState("r1", timeline=2**32), IA, "timeline"),
    (lambda: rk.CandidateState("r1", reachable=1), AT, "reachable"),
    (lambda: rk.PrimaryState(synchronous_standbys="r1"), AT, "synchronous_standbys"),
    (lambda: rk.PrimaryState(synchronous_standbys=[1]), AT, "synchronous_standbys"),
    (lambda: rk.FailoverConfig(max_lag_bytes=-1), IA, "max_lag_bytes"),
    (lambda: rk.plan_failover([rk.CandidateState("a"), rk.CandidateState("a")], rk.PrimaryState()), IA, "candidates"),
    (lambda: rk.plan_failover([rk.CandidateState("")], rk.PrimaryState()), IA, "candidates"),
    (lambda: rk.plan_failover(["r1"], rk.PrimaryState()), AT, "candidates"),
    (lambda: rk.plan_failover(rk.CandidateState("a"), rk.PrimaryState()), AT, "candidates"),
    (lambda: rk.plan_failover([], None), AT, "primary"),
    (lambda: rk.plan_failover([], rk.PrimaryState(), {"max_lag_bytes": 1}), AT, "config"),
    (lambda: rk.plan_failover([rk.CandidateState(f"r{i}") for i in range(rk.MAX_CANDIDATES + 1)],
                              rk.PrimaryState()), IA, "candidates"),
])
def test_bad_input_names_the_argument(call, exc, argument):
    if exc is None:
        call()
        return
    with pytest.raises(exc) as info:
        call()
    assert info.value.argument == argument, str(info.value)


def test_setters_validate_and_keep_the_old_value():
    c = rk.DetectorConfig.fast()
    with pytest.raises(IA) as info:
        c.interval_ms = -1
    assert info.value.argument == "interval_ms"
    assert c == rk.DetectorConfig.fast()


def test_time_must_not_go_backwards():
    d = rk.FailureDetector()
    d.record("ok", now_ns=100)
    with pytest.raises(IA) as info:
        d.record("ok", now_ns=99)
    assert info.value.argument == "now_ns"


def test_the_watchers_own_stall_is_not_silence():
    ms = 1_000_000
    d = rk.FailureDetector(rk.DetectorConfig(interval_ms=50, missed_threshold=3))
    d.record("ok", now_ns=0)
    d.watch(now_ns=0)
    d.sleep_until(10 * ms)
    assert d.gap_end_ns is None
    d.watch(now_ns=2000 * ms)  # 1990 ms late: the watcher's stall
    assert d.gap_end_ns == 2000 * ms
    assert not d.suspected(now_ns=2000 * ms)
    d.record("timeout", now_ns=2001 * ms, sent_ns=5 * ms)  # sent before the stall ended
    assert d.missed == 0
    assert d.suspected(now_ns=2200 * ms)  # a window of silence after it


def test_enum_names_in_any_case_and_repr():
    d = rk.FailureDetector(rk.DetectorConfig(kind="PHI_ACCRUAL"))
    d.record("Overloaded", now_ns=0)
    d.record(rk.ProbeOutcome.REFUSED, now_ns=1)
    assert d.missed == 1 and d.refused == 1
    assert repr(rk.DetectorConfig.fast()).startswith("DetectorConfig(kind=<DetectorKind.HEARTBEAT: 0>, interval_ms=100.0")
    plan = rk.plan_failover([rk.CandidateState("r1", receive_lsn="0/10")], rk.PrimaryState(last_known_lsn="0/20"))
    assert repr(plan).startswith("FailoverPlan(promote='r1', expected_loss_bytes=16, reason='r1 is the most up-to-date")
    assert str(plan).startswith("promote r1: ")
