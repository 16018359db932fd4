"""The kill scenario's lag-probe diagnostics (benchmarks/fidelity): each probe's read gap (when the
replica's query ran after the primary's) paired with whether it found the replica behind, the
chance the twins' model gives such a probe, and the window in which the tracker's feed is compared."""

import math
import os
import sys

import pytest


def _fidelity():
    bench = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    from fidelity import killtwins, probesamples

    return probesamples, killtwins


def _records():
    """Three probe rounds (sent, answered, primary?, LSN, lag): all three queries leave together in
    the first two, r2's 3 ms late in the third."""
    return {
        "primary": {1: (0.30, 0.3004, True, 1000, None), 2: (0.40, 0.4004, True, 2000, None),
                    3: (0.50, 0.5004, True, 3000, None)},
        "r1": {1: (0.30, 0.3005, False, 1000, 0.0), 2: (0.40, 0.4005, False, 1800, 1.0),
               3: (0.50, 0.5005, False, 3000, 0.0)},
        "r2": {1: (0.30, 0.3006, False, 900, 2.0), 2: (0.40, 0.4006, False, 2000, 0.0),
               3: (0.503, 0.5036, False, 3000, 0.0)},
    }


def _rounded(rounds):
    return sorted((round(gap, 6), behind) for gap, behind in rounds)


def test_a_probes_read_gap_pairs_its_run_lags_with_its_records():
    probesamples, _ = _fidelity()
    lags = [[0.20, 0.25, 0.20], [0.205, 0.30, 0.21], [0.40, 0.25, 0.30]]  # primary, r1, r2 (ms)
    rounds = probesamples.read_gap_rounds(_records(), lags, 0.3, 1.0)
    # r2's third probe left 3 ms after the primary's: not a round sent together.
    assert _rounded(rounds) == [(0.0, False), (0.005, False), (0.01, False), (0.05, True), (0.2, True)]
    # Answered outside [lo, hi): left out.
    assert len(probesamples.read_gap_rounds(_records(), lags, 0.3, 0.45)) == 4
    assert _rounded(probesamples.read_gap_rounds(_records(), lags, 0.3, 0.40)) == [(0.005, False), (0.2, True)]


def test_run_lags_that_do_not_line_up_with_the_records_are_not_paired():
    probesamples, _ = _fidelity()
    # r1's list lacks its first probe (not seen on its server): its second lag (0.7 ms) would pair
    # with a probe answered 0.5 ms after its send. r1 is left out; r2 still pairs.
    lags = [[0.20, 0.25, 0.20], [0.7, 0.21], [0.40, 0.25, 0.30]]
    assert _rounded(probesamples.read_gap_rounds(_records(), lags, 0.3, 1.0)) == [(0.0, False), (0.2, True)]
    assert probesamples.read_gap_rounds(_records(), [], 0.3, 1.0) == []  # run lags not measured


def test_run_lags_keyed_by_probe_pair_exactly():
    probesamples, _ = _fidelity()
    # pg_stat_activity's (start, end) per node, s from t0: r1's first probe was not seen.
    starts = {"primary": [(0.3001, 0.3002), (0.4001, 0.40025), (0.5001, 0.5002)],
              "r1": [(0.4001, 0.4003), (0.5001, 0.50021)],
              "r2": [(0.3001, 0.3004), (0.4001, 0.40025)]}
    by_probe = probesamples.run_lags_by_probe(starts, _records(), 0.3, 1.0)
    assert sorted(by_probe["r1"]) == [2, 3] and by_probe["r1"][2] == pytest.approx(0.3)
    assert probesamples.run_lags_ms(starts, _records(), 0.3, 1.0)[1] == pytest.approx([0.3, 0.21])
    rounds = probesamples.read_gap_rounds(_records(), by_probe, 0.3, 1.0)
    assert _rounded(rounds) == [(0.0, False), (0.01, False), (0.05, True), (0.2, True)]


def test_the_twins_behind_chance_is_the_span_between_the_primary_and_the_replica():
    probesamples, _ = _fidelity()
    # A write shows on the primary 0.05 ms after its commit and on the replica 0.3 ms after: read
    # together, a probe finds it behind for 0.25 ms per write; read 0.1 ms apart, for 0.15 ms;
    # replica first, 0.35 ms.
    for gap, span in ((0.0, 0.25), (0.1, 0.15), (-0.1, 0.35), (0.3, 0.0)):
        assert probesamples.twin_behind_chance([0.3], 0.05, 400.0, gap) == pytest.approx(1 - math.exp(-0.4 * span))
    assert probesamples.twin_behind_chance([0.1, 0.5], 0.0, 1000.0, 0.2) == pytest.approx(1 - math.exp(-0.15))


def test_the_tracker_feed_before_the_kill_ends_where_the_kill_starts():
    _, killtwins = _fidelity()
    from fidelity.killreads import KILL_AT_S

    assert killtwins.fed_until(KILL_AT_S + 0.004) == KILL_AT_S  # the real kill's machinery runs after
    assert killtwins.fed_until(KILL_AT_S - 0.01) == KILL_AT_S - 0.01  # a twin's crash before it
    fed = killtwins.fed_before(_records())
    assert fed["replica_samples"] == 6 and fed["behind"] == 2 and fed["behind_bytes"] == 300


def test_a_probe_round_lists_each_nodes_run_lag_lead_first():
    probesamples, _ = _fidelity()
    lags = [[0.20, 0.25, 0.20], [0.205, 0.30, 0.21], [0.40, 0.25, 0.30]]  # primary, r1, r2 (ms)
    rounds = probesamples.run_lag_rounds(_records(), lags, 0.3, 1.0)
    # r2's third probe left 3 ms after the primary's: not in that round.
    assert [[round(v, 6) for v in r] for r in sorted(rounds)] == [[0.2, 0.205, 0.4], [0.2, 0.21, -1.0],
                                                                [0.25, 0.3, 0.25]]
    assert len(probesamples.run_lag_rounds(_records(), lags, 0.3, 0.45)) == 2  # sent outside [lo, hi): left out
    assert probesamples.run_lag_rounds(_records(), [], 0.3, 1.0) == []  # run lags not measured
    # Led by r1 (as a new primary would lead): r1's lag first, then primary's, then r2's; r1's
    # records are not the primary's (rec[2] False): no rounds.
    assert probesamples.run_lag_rounds(_records(), lags, 0.3, 1.0, lead="r1") == []


def test_the_twins_take_when_the_probes_ran_but_not_whether_they_were_behind():
    _, killtwins = _fidelity()
    run = {"probe_run_lags": {"probe_run_lags_ms": [[0.2], [0.2], [0.2]]}, "probe_records": {}}
    assert killtwins.probe_rounds(run, True) == {}  # no records: no rounds
    assert killtwins.probe_rounds(run, False) == {}  # off: each node's run lag on its own
    assert killtwins.probe_rounds(dict(run, probe_run_lags={}), True) == {}  # run lags not measured
