"""Hypothesis properties of failure detection and failover candidate selection.

- No false suspicion: heartbeats delayed by up to half the detection window (interval x
  missed_threshold), in any pattern Hypothesis finds, never make a FailureDetector suspect the
  node, in either kind (heartbeat, phi accrual with the default pause).
- Phi is non-decreasing in the silence since the last answer, whatever came before.
- plan_failover: the chosen candidate is never one the eligibility rules exclude, and holds the
  highest position (max of receive and replay LSN) among the eligible ones; the expected loss
  is the reference LSN (the primary's last known LSN, raised to the highest position a reachable
  replica on the newest timeline reached: the primary had at least that) minus the chosen
  position, never negative; every other
  candidate is listed once with a reason; promote no one exactly when nobody is eligible.

Replaying a failure: the tests are derandomized (the same examples on every run) and Hypothesis
prints the falsifying example; paste it into `@example(...)` above `@given` to keep it.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import replikit as rk

MS = 1_000_000
SETTINGS = settings(max_examples=200, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------- detectors


@st.composite
def detector_configs(draw):
    if draw(st.booleans()):
        return rk.DetectorConfig(interval_ms=draw(st.floats(1.0, 5000.0)),
                                 missed_threshold=draw(st.integers(1, 10)))
    return rk.DetectorConfig.phi_accrual()


@SETTINGS
@given(config=detector_configs(), delays=st.lists(st.floats(0.0, 0.5), min_size=2, max_size=200))
def test_no_false_suspicion_with_jitter_up_to_half_the_window(config, delays):
    # Heartbeat k is sent at k * interval and arrives up to half the detection window late.
    window_ns = config.window_ms * MS
    arrivals = sorted(int(k * config.interval_ms * MS + d * window_ns) for k, d in enumerate(delays))
    detector = rk.FailureDetector(config)
    for k, at in enumerate(arrivals):
        detector.record("ok", now_ns=at)
        end = arrivals[k + 1] if k + 1 < len(arrivals) else at + int(config.interval_ms * MS + window_ns / 2)
        for t in (at, (at + end) // 2, end - 1):
            assert not detector.suspected(now_ns=t), (k, t, detector.phi(now_ns=t))


outcomes = st.sampled_from(["ok", "refused", "timeout", "overloaded"])


@SETTINGS
@given(config=detector_configs(), history=st.lists(st.tuples(st.integers(0, 10**9), outcomes), max_size=60),
       steps=st.lists(st.integers(0, 10**10), min_size=1, max_size=40))
def test_phi_is_monotonic_in_silence(config, history, steps):
    detector = rk.FailureDetector(config)
    now = 0
    for gap, outcome in history:
        now += gap
        detector.record(outcome, now_ns=now)
    previous = detector.phi(now_ns=now)
    for step in steps:
        now += step
        phi = detector.phi(now_ns=now)
        assert phi >= previous and phi == phi, (now, phi, previous)  # phi == phi: not NaN
        previous = phi


# ---------------------------------------------------------------- selection

names = [f"r{i}" for i in range(8)]


@st.composite
def worlds(draw):
    n = draw(st.integers(0, 8))
    candidates = []
    for name in names[:n]:
        receive = draw(st.integers(0, 5000))
        candidates.append(rk.CandidateState(
            name, reachable=draw(st.booleans()) or draw(st.booleans()),
            receive_lsn=receive, replay_lsn=max(0, receive - draw(st.integers(0, 100))),
            timeline=draw(st.integers(0, 3)), priority=draw(st.integers(-1, 2)),
            no_failover=draw(st.integers(0, 5)) == 0, region=draw(st.sampled_from(["", "eu", "us"])),
            was_synchronous=draw(st.booleans())))
    sync = draw(st.booleans())
    primary = rk.PrimaryState(
        last_known_lsn=draw(st.integers(0, 6000)), timeline=draw(st.integers(0, 3)), synchronous_mode=sync,
        synchronous_standbys=draw(st.lists(st.sampled_from(names + ["*"]), max_size=3)) if sync else [],
        last_acknowledged_commit_lsn=draw(st.integers(0, 5000)) if sync else 0)
    config = rk.FailoverConfig(max_lag_bytes=draw(st.none() | st.integers(0, 3000)),
                               preferred_region=draw(st.sampled_from(["", "eu"])))
    return candidates, primary, config


def eligible(c, primary, config, newest, reference):
    """The eligibility rules written out plainly."""
    if not c.reachable or c.no_failover or c.timeline == 0 or c.timeline < newest:
        return False
    if config.max_lag_bytes is not None and reference - int(c.position) > config.max_lag_bytes:
        return False
    if not primary.synchronous_mode:
        return True
    listed = c.was_synchronous or c.name in primary.synchronous_standbys or "*" in primary.synchronous_standbys
    return listed and int(c.position) >= int(primary.last_acknowledged_commit_lsn)


@SETTINGS
@given(world=worlds())
def test_chosen_candidate_is_eligible_and_most_up_to_date(world):
    candidates, primary, config = world
    plan = rk.plan_failover(candidates, primary, config)
    newest = max([primary.timeline] + [c.timeline for c in candidates if c.reachable])
    reference = max([int(primary.last_known_lsn)] +
                    [int(c.position) for c in candidates if c.reachable and c.timeline == newest and newest])
    assert int(plan.reference_lsn) == reference
    ok = [c for c in candidates if eligible(c, primary, config, newest, reference)]
    assert (plan.promote is None) == (not ok), str(plan)
    others = [c.name for c in candidates if c.name != plan.promote]
    assert [e.name for e in plan.excluded] == others
    if plan.promote is None:
        assert plan.expected_loss_bytes == 0 and plan.repoint == []
        return
    chosen = next(c for c in candidates if c.name == plan.promote)
    assert any(c.name == chosen.name for c in ok), str(plan)
    assert int(chosen.position) == max(int(c.position) for c in ok), str(plan)
    assert plan.expected_loss_bytes == max(0, reference - int(chosen.position)) >= 0
    if reference == int(primary.last_known_lsn):  # no replica got further than the primary's last known LSN
        assert plan.expected_loss_bytes == max(0, int(primary.last_known_lsn) - int(chosen.position))
    assert plan.repoint == [c.name for c in candidates if c.reachable and c.name != plan.promote]
