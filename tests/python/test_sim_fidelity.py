"""Short runs of benchmarks/sim_fidelity.py: the same workload on a real local cluster and in the
simulator, the model's predictions checked against the measurements (the full comparisons are
run by hand: see the script's docstring), for three scenarios.

Replica paused (replay of one replica paused for 5 s). Tolerances, and why:
- lag of the paused replica (at the end of the pause, and its mean during it): 10%. Both sides
  use the same lag tracker fed at the measured probe interval; the lag grows with the pause,
  which is matched to the instants measured in the real run. What remains is the phase of the
  last probe before the resume (at most one interval, 100 ms = 2% of the pause).
- eventual stale reads added by the pause (measured: the stale reads of the paused replica
  from the pause to a second after the resume, less its stale share outside that window;
  predicted: the simulated rate with the pause minus without it, the mean of 20 seeded runs):
  35%. They are the reads the router still sends to the paused replica until a probe shows its
  lag above max_lag_ms: ~100-120 reads in this run, a Poisson count (~10%), and the probe's
  phase moves that instant by up to one interval (100 ms of ~1.05 s: up to ~10%, ~5% on
  average); the simulated mean varies by ~3% between seed sets. One standard error is thus
  ~11-12%; 35% is three. This is the figure the model predicts: the replication delay is
  inferred from the same run's reads outside the pause (see the script's replication_delay:
  on this shared machine it drifts with the other processes' load), so the stale reads
  outside the pause agree by construction.
- the whole eventual stale-read rate: 25%: the part outside the pause (fitted; the estimate of
  the real rate has a ~7% standard error) plus the pause's part within its 35%, which is less
  than half of the whole.
- read-your-writes: 0 stale reads on both sides, exactly (the router's guarantee).
The primary's read share is printed but not asserted (a few hundred reads: its noise is larger
than the other figures').

Replay delayed (r1 with recovery_min_apply_delay = 50 ms, 20 writes/s for 10 s):
- r1's commit-to-visible delay: 10% (the setting is the simulator's input; the real figure is
  bracketed by r1's reads every ~5 ms, and the startup process wakes a little after the delay).
- the eventual stale reads added by the delay and the whole rate: 25%. About 200 commits, each
  making r1 stale for 50 ms: the share of time r1 lags varies by ~7% between runs of this
  length (one standard error); 25% is over three.
- read-your-writes: 0 stale reads on both sides.
- r1's tracked lag: 35%. Under the probe interval the tracker's interpolation between primary
  samples dominates it: PostgreSQL replays a held write's rows and stops its replay LSN at the
  commit record, 136 of the insert's 176 bytes in (measured on the run's cluster and given to
  the simulator, which holds its replay LSN there too), so the tracker places it late in the
  probe interval that saw the commit. The mean over a 10 s run varies by ~11% between runs
  (the simulator's seeds), the real one as much: 35% is three standard errors (holding the
  replay LSN at the write's start instead predicts more than twice the lag).

Primary killed (1 kill per mode: async and semi-sync, replikit's FailoverManager, 100 ms x 3):
- acknowledged writes lost: 0 measured and predicted in semi-sync, exactly; async: at most 1
  on each side (on loopback the WAL reaches the standbys well within a millisecond).
- detection: one real kill falls at whatever phase of the 100 ms probes it hits, the simulated
  ones at a uniform phase (detections 200-300 ms): the real detection must lie within the
  simulated runs' range, widened by 50 ms (the probes' own time and scheduling on a loaded
  machine). The prediction is the kill's twin (its phase and probe period measured before it):
  those inputs must be sane (the phase within one period, the period within 100-150 ms).
  Recovery: the simulated one is its detection plus the measured detection -> writes accepted
  (an input), so it must differ from the real one by the detections' difference (+ 20 ms: the
  simulated new primary's replay of what it received).
- reads around the kill (1 kill per mode with 200 reads/s, half eventual, half
  read-your-writes), per window (before the kill, the outage, after the recovery): no
  read-your-writes read is stale in any window, measured or predicted (the router's guarantee,
  in both); the eventual stale share before and after and the reads failed in the outage are a
  handful of reads per kill, so each side is bounded (<= 25% of its reads), not compared, and
  the bootstrap interval holds the measured figure; after the recovery both sides have stale
  eventual reads (the surviving standby's reconnection); the mean replica lag before the kill
  stays under 10 ms on both sides.
"""

from __future__ import annotations

import json
import statistics
import os
import subprocess
import sys

import pytest

from conftest import require_pg_server

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "sim_fidelity.py")


def test_fidelity_rejects_a_pause_outside_the_run():
    proc = subprocess.run([sys.executable, SCRIPT, "--run-s", "5", "--pause-at-s", "4", "--pause-s", "3"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "pause" in proc.stderr


@pytest.mark.pg
def test_simulator_predicts_the_paused_replicas_lag_and_the_stale_reads(tmp_path):
    require_pg_server()
    out = tmp_path / "fidelity.json"
    proc = subprocess.run([sys.executable, SCRIPT, "--run-s", "14", "--pause-at-s", "4", "--pause-s", "5",
                           "--calibration", "60", "--seed", "3", "--json", str(out)],
                          capture_output=True, text=True, timeout=180)
    print(proc.stdout, proc.stderr)
    assert proc.returncode == 0
    assert "seeds:" in proc.stdout
    table = json.loads(out.read_text())["comparison"]

    def error(key):
        return table[key]["relative_error"]

    assert table["lag_at_pause_end_ms"]["measured"] > 4000  # the pause really held replay
    assert error("lag_at_pause_end_ms") <= 0.10
    assert error("mean_lag_in_pause_ms") <= 0.10
    assert table["eventual_stale_from_pause"]["measured"] > 0
    assert error("eventual_stale_from_pause") <= 0.35
    assert error("eventual_stale_rate") <= 0.25
    assert table["ryw_stale_reads"]["measured"] == 0
    assert table["ryw_stale_reads"]["predicted"] == 0


def run_script(tmp_path, *args, timeout=240):
    out = tmp_path / "fidelity.json"
    proc = subprocess.run([sys.executable, SCRIPT, *args, "--json", str(out)],
                          capture_output=True, text=True, timeout=timeout)
    print(proc.stdout, proc.stderr)
    assert proc.returncode == 0
    return json.loads(out.read_text())


def _fidelity_delays():
    bench = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    from fidelity import delays

    return delays


def test_offset_reads_recover_the_delay_distribution():
    """The kill scenario's delays come from offset reads (visible or not at a known age): the
    estimate's mean (what the stale share follows) and median match a known distribution."""
    import random
    import statistics

    delay_quantiles = _fidelity_delays().delay_quantiles
    rng = random.Random(13)  # seed printed by the assertion messages below
    observations = []
    for _ in range(4000):
        delay = 0.2 + rng.expovariate(1 / 0.5)  # ms: mean 0.7, median 0.547
        age = rng.uniform(0, 4) if rng.random() < 0.75 else rng.uniform(4, 20)
        observations.append((age, delay <= age))
    observations.append((-0.3, False))  # a read before the commit says nothing
    delays = delay_quantiles(observations, count=400)
    assert len(delays) == 400 and delays == sorted(delays)
    assert abs(statistics.fmean(delays) - 0.7) < 0.05, "seed 13"
    assert abs(statistics.median(delays) - 0.547) < 0.05, "seed 13"
    assert delay_quantiles([(1.0, True), (2.0, False)], count=2) == [0.5, 2.0]  # never seen: the oldest age
    with pytest.raises(ValueError):
        delay_quantiles([(-1.0, False)])


def _offset_read(rng, x, delay, push):
    """A read sent x ms after a write's instant whose row turns visible ``delay`` ms after it:
    it reaches the node 0.1-0.6 ms later, unless it would run before the row is visible and is
    held back (with probability ``push``) until it is, as a read sent just after a commit waits
    for the CPU while the replication runs on a loaded machine. (ran at, stale)."""
    at = x + rng.uniform(0.1, 0.6)
    if 0 <= at < delay and rng.random() < push:
        at = delay
    return at, 0 <= at < delay


def test_offsets_by_send_instant_recover_the_delay_distribution():
    """sent_delay_quantiles: reads taken by their send instant, the simulator's read latency
    known: the estimate's mean and median match a known distribution (no hold-back)."""
    import random
    import statistics

    delays = _fidelity_delays()
    rng = random.Random(17)  # seed printed by the assertion messages below
    observations = []
    for _ in range(3000):
        delay = 0.2 + rng.expovariate(1 / 0.5)  # ms: mean 0.7, median 0.547
        x = rng.uniform(-0.5, 3) if rng.random() < 0.75 else rng.uniform(3, 20)
        observations.append((x, _offset_read(rng, x, delay, 0.0)[1]))
    latencies = [rng.uniform(0.1, 0.6) for _ in range(500)]
    got = delays.sent_delay_quantiles(observations, latencies, count=400)
    assert len(got) == 400 and got == sorted(got)
    assert abs(statistics.fmean(got) - 0.7) < 0.07, "seed 17"
    assert abs(statistics.median(got) - 0.547) < 0.07, "seed 17"
    with pytest.raises(ValueError):
        delays.sent_delay_quantiles([], latencies)
    with pytest.raises(ValueError):
        delays.sent_delay_quantiles(observations, [])


def test_reads_held_back_by_the_write_bias_the_execution_view_not_the_send_view():
    """When a read sent into a write's replication is held back until the row is visible (its
    execution instant depends on the write), the delays estimated from the reads' execution
    instants (delay_quantiles) over-predict the readers' stale share; those estimated from their
    send instants (sent_delay_quantiles), which the simulator's independent latency then turns
    into execution instants, predict it. Stale share of reads sent uniformly, one write per 20
    ms: about (mean delay) / 20 ms."""
    import random
    import statistics

    delays = _fidelity_delays()
    rng = random.Random(11)  # seed printed by the assertion messages below
    stale = 0
    reads = 100_000
    for _ in range(reads):
        stale += _offset_read(rng, rng.uniform(-2, 18), 0.2 + rng.expovariate(2.0), 0.5)[1]
    measured = stale / reads
    at_execution, at_send = [], []
    for _ in range(3000):
        delay = 0.2 + rng.expovariate(2.0)
        x = rng.uniform(-0.5, 3) if rng.random() < 0.75 else rng.uniform(3, 20)
        ran, was_stale = _offset_read(rng, x, delay, 0.5)
        at_send.append((x, was_stale))
        at_execution.append((ran, ran >= delay))
    latencies = [rng.uniform(0.1, 0.6) for _ in range(500)]
    by_send = statistics.fmean(delays.sent_delay_quantiles(at_send, latencies)) / 20.0
    by_execution = statistics.fmean(delays.delay_quantiles(at_execution)) / 20.0
    assert abs(by_send / measured - 1) < 0.10, f"seed 11: {by_send:.4f} vs {measured:.4f}"
    assert by_execution / measured - 1 > 0.20, f"seed 11: {by_execution:.4f} vs {measured:.4f}"


def test_per_write_delays_give_back_the_measured_delays_in_order():
    """The kill twins' link delivers in order: a stall drawn per write would hold back the writes
    behind it once more. per_write_delays thins the draws above the mean gap between writes until
    in-order delivery gives back the measured share above it; without such draws, unchanged."""
    import random

    delays = _fidelity_delays()
    rng = random.Random(7)  # seed printed by the assertion messages below
    # End-to-end delays as in-order delivery makes them: stalls of 5-20 ms in 3% of the draws.
    draws = [rng.uniform(0.1, 0.8) for _ in range(970)] + [rng.uniform(5, 20) for _ in range(30)]
    measured = delays.in_order_delays(draws, 250.0, 4000, seed=7)
    gap = 1000.0 / 250.0
    share = sum(d > gap for d in measured) / len(measured)
    again = delays.in_order_delays(measured, 250.0, 20_000, seed=8)  # drawn per write: counted twice
    assert sum(d > gap for d in again) / len(again) > 1.5 * share, "seed 7"
    per_write = delays.per_write_delays(measured, 250.0)
    assert len(per_write) == len(measured)
    back = delays.in_order_delays(per_write, 250.0, 20_000, seed=9)
    assert abs(sum(d > gap for d in back) / len(back) - share) < 0.25 * share, "seed 7"
    short = [rng.uniform(0.1, 0.8) for _ in range(100)]
    assert delays.per_write_delays(short, 250.0) == short


def test_matched_per_write_delays_give_back_the_measured_mean_in_order():
    """A measured delay is held back below the mean gap between writes too (a Poisson stream's gaps
    are often shorter): drawn per write and delivered in order again, the delays' mean grows.
    matched_per_write_delays' draws give back the measured mean in order (and its quantiles as far
    as draws of at least 0 can); per_write_delays' do not, when nothing lies above the gap."""
    import random
    import statistics

    delays = _fidelity_delays()
    rng = random.Random(5)  # seed printed by the assertion messages below
    # Commit -> visible delays as the saved kills' (0-2 ms, a tenth of them 0) at ~260 writes/s.
    draws = [0.0 if rng.random() < 0.1 else rng.expovariate(1 / 0.4) for _ in range(2000)]
    measured = delays.in_order_delays([min(d, 2.0) for d in draws], 260.0, 4000, seed=5)
    mean = statistics.fmean(measured)
    again = statistics.fmean(delays.in_order_delays(delays.per_write_delays(measured, 260.0), 260.0, 120_000, seed=6))
    assert again / mean - 1 > 0.03, f"seed 5: {again:.4f} vs {mean:.4f}"
    matched = delays.matched_per_write_delays(measured, 260.0)
    assert len(matched) == len(measured) and min(matched) >= 0
    back = delays.in_order_delays(matched, 260.0, 120_000, seed=6)  # another stream: ~1% apart
    assert abs(statistics.fmean(back) / mean - 1) < 0.02, f"seed 5: {statistics.fmean(back):.4f} vs {mean:.4f}"
    assert abs(statistics.median(back) / statistics.median(measured) - 1) < 0.05, "seed 5"
    assert delays.matched_per_write_delays([], 260.0) == []
    assert delays.matched_per_write_delays([0.0, 0.0], 260.0) == [0.0, 0.0]


def test_a_kill_run_keeps_its_eventual_reads_and_probe_rows_before_the_kill():
    """Read by read before the kill (for a later look at the stale share): each eventual read sent
    in [WARM_S, kill) with where and when it ran and whether it was stale as judged, the session
    writer's and the offset probe's rows with their INSERT instants, all on the run's own time."""
    from types import SimpleNamespace

    from fidelity import common, killreads

    wall_t0 = 1_700_000_000.0
    measured = common.Measured(commits=[(wall_t0 + 0.5, 1), (wall_t0 + 1.0, 2)])
    read = lambda sent, ran, level, visible: common.Read(sent, sent + 0.001, level, "r1", "replica", False,  # noqa: E731
                                                         visible, wall_t0 + ran)
    measured.reads = [read(0.1, 0.1, "eventual", 0), read(1.0, 1.0002, "eventual", 1),
                      read(1.2, 1.2, "eventual", 2), read(1.3, 1.3, "read_your_writes", 1),
                      read(2.5, 2.5, "eventual", 1)]
    probe = SimpleNamespace(samples=[(0.4, "r2", -0.1, 0.2, False, True), (2.2, "r1", 1.0, 1.2, True, False)],
                            rows=[(wall_t0 + 0.4, -1)])
    out = killreads.read_records(measured, probe, wall_t0, 2.0)
    reads = out["eventual_reads_before"]
    assert [r[0] for r in reads] == [1.0, 1.2]  # from WARM_S, before the kill, eventual only
    assert reads[0][1] == pytest.approx(1.0002) and reads[0][2:] == ["r1", 1, True]  # row 2 missing
    assert reads[1][4] is False
    assert out["session_rows"] == [[pytest.approx(0.5), 1], [pytest.approx(1.0), 2]]
    assert out["probe_samples_before"] == [[0.4, "r2", -0.1, 0.2, False, True]]
    assert out["probe_rows"] == [[pytest.approx(0.4), -1]]


def test_commit_instants_come_from_the_primarys_wal():
    """The kill twins read the primary as of its commits: pg_waldump's COMMIT records (their
    instants, per xid) against each row's INSERT clock and xmin."""
    _fidelity_delays()  # puts benchmarks/ on the path
    from fidelity import commitlag

    text = ("rmgr: Heap        len (rec/tot):     59/    59, tx:        725, lsn: 0/01763290, prev 0/01763250, "
            "desc: INSERT off 2 flags 0x00\n"
            "rmgr: Transaction len (rec/tot):     34/    34, tx:        725, lsn: 0/017632D0, prev 0/01763290, "
            "desc: COMMIT 2026-11-29 19:13:19.418159 UTC\n"
            "rmgr: Transaction len (rec/tot):     34/    34, tx:        726, lsn: 0/01763380, prev 0/01763340, "
            "desc: COMMIT 2026-11-29 19:13:20 UTC\n"
            "pg_waldump: error: error in WAL record at 0/1763590: invalid record length\n")
    commits = commitlag.parse_commits(text)
    assert set(commits) == {725, 726}
    assert commits[726] - commits[725] == pytest.approx(0.581841, abs=1e-6)
    inserts = [(commits[725] - 0.0001, 1), (commits[726] - 0.002, 2), (commits[726], 3)]
    gaps = commitlag.insert_to_commit_ms(inserts, {1: 725, 2: 726}, commits)  # row 3: no xid known
    assert gaps == pytest.approx([0.1, 2.0], abs=1e-3)
    assert commitlag.commit_lag_ms(gaps) == pytest.approx(1.05, abs=1e-3)
    assert commitlag.commit_lag_ms([]) == 0.0


def test_the_twins_commit_lag_is_the_mean_gap():
    """The twin subtracts one constant from per-write delays that each carry their own write's
    INSERT -> COMMIT: the span a probe can find a replica behind in is right on average only with
    the mean gap; a tail of slow COMMITs (a descheduled client) moves it, the median does not."""
    _fidelity_delays()  # puts benchmarks/ on the path
    from fidelity import commitlag

    gaps = [0.04] * 9 + [1.0]  # one COMMIT sent late: its row's delay is that much longer
    assert commitlag.commit_lag_ms(gaps) == pytest.approx(0.136, abs=1e-9)
    assert commitlag.commit_lag_ms([-0.01, -0.03]) == 0.0  # clock noise: never a negative lag


def test_a_kill_twin_replays_the_workload_its_run_drew():
    """The real workload's writer and readers draw from fidelity.common's seeded schedules (the
    same draws as the loops they replaced), and a kill's twin replays exactly those requests."""
    import random

    _fidelity_delays()  # puts benchmarks/ on the path
    from fidelity import common, killreads, killtwins

    settings = killreads.workload_settings(7)
    rng = random.Random(killreads.reader_seed(7, 1))  # the reader's loop as it was drawn before
    t, expected = 0.0, []
    while True:
        t += rng.expovariate(settings.read_rate / settings.readers)
        if t >= settings.run_s:
            break
        session = rng.randrange(settings.sessions)
        expected.append((t, session, rng.random() < settings.eventual_share))
    assert common.read_schedule(settings, killreads.reader_seed(7, 1)) == expected
    arrivals = killreads.workload_arrivals(7)
    writes, reads = arrivals["write_arrivals"], arrivals["read_arrivals"]
    assert writes == [(t * 1000.0, s) for t, s in common.write_schedule(settings, killreads.writer_seed(7))]
    assert len(reads) == sum(len(common.read_schedule(settings, killreads.reader_seed(7, i)))
                             for i in range(settings.readers))
    assert reads == sorted(reads) and 600 < len(reads) < 1000 and 120 < len(writes) < 280
    assert {level for _, _, level in reads} == {"eventual", "read_your_writes"}
    assert killtwins.replayed_workload({"seed": 7}, replay=False) == {}
    from replikit.sim import SimConfig, simulate

    config = SimConfig(duration_ms=settings.run_s * 1000.0, sessions=settings.sessions,
                       **killtwins.replayed_workload({"seed": 7}, replay=True))
    result = simulate(config, 1)
    assert result.writes_submitted == len(writes) and result.reads_submitted == len(reads)


def test_a_kill_twin_replays_the_workload_where_the_real_kill_fell():
    """The twin's crash falls on its own probe grid (at the kill's measured phase), ~10-110 ms after
    the instant the real kill had in the schedule: its replayed writes and reads, and its windows,
    are moved by as much. The real kill: saved (kill_s), or from the prober's sends and the phase."""
    _fidelity_delays()  # puts benchmarks/ on the path
    from fidelity import kill, killtwins

    sends = [0.0855 + k * 0.1005 for k in range(39)]  # the real prober's grid: another phase than the twin's
    detector = {"late_ms": 0.5, "phase_ms": 12.0, "phase_raw_ms": 12.0}
    run = {"seed": 7, "detector": detector,
           "probe_records": {"primary": {str(k): [t, t + 0.0004, True, 1000 + k, None] for k, t in enumerate(sends)}}}
    assert killtwins.real_kill_ms(run) == pytest.approx((0.0855 + 19 * 0.1005 + 0.012) * 1000.0)  # 2.007 s
    assert killtwins.real_kill_ms(dict(run, kill_s=2.003)) == pytest.approx(2003.0)
    crash, _ = kill.twin_timing(killtwins.KILL_AT_S * 1000.0, 100.0, detector)
    shift = killtwins.workload_shift_ms(run, crash)
    assert shift == pytest.approx(crash - 2007.0) and 10.0 < shift < 20.0
    plain, moved = killtwins.replayed_workload(run, True), killtwins.replayed_workload(run, True, shift)
    for name in ("write_arrivals", "read_arrivals"):
        kept = [(t + shift, *rest) for t, *rest in plain[name] if t + shift < killtwins.RUN_S * 1000.0 + shift]
        assert moved[name] == kept and len(kept) == len(plain[name])
    inputs = dict(run, delays=[0.3] * 20, commit_lag_ms=[0.05], tracker_reset=True, delays_after=[0.3] * 20,
                  half_round_trips=[0.3] * 20, background_per_s=[200.0, 200.0], probe_half_round_trips=[0.2],
                  probe_offsets_ms=[0.0, 0.0, 0.0], probe_run_lags={}, promotion_wal_bytes=0, repoint_ms=120.0,
                  switch_ms=70.0, stream_ms=115.0)
    aligned = killtwins.sim_config("fast", "async", 30.0, 1, inputs, dither_ms=0.0)
    assert aligned.duration_ms == pytest.approx(killtwins.RUN_S * 1000.0 + shift)
    assert aligned.window_edges_ms == pytest.approx([killtwins.WARM_S * 1000.0 + shift, crash])
    assert [a[0] for a in aligned.read_arrivals] == pytest.approx([t for t, *_ in moved["read_arrivals"]])
    # The survivor receives nothing until the real one had caught up (120 ms after the new primary's
    # first write, the client's switch 70 ms after it), then all at once.
    assert aligned.repoint_ms == pytest.approx(50.0) and aligned.repoint_catch_up_ms == 0.0
    unaligned = killtwins.sim_config("fast", "async", 30.0, 1, inputs, align=False, dither_ms=0.0)
    assert unaligned.duration_ms == killtwins.RUN_S * 1000.0
    assert [a[0] for a in unaligned.read_arrivals] == pytest.approx([t for t, *_ in plain["read_arrivals"]])


def _kill_twin_inputs():
    """A kill run's twin inputs, as killreads saves them, with round values."""
    detector = {"late_ms": 0.5, "phase_ms": 12.0, "phase_raw_ms": 12.0}
    inputs = {"seed": 7, "kill_s": 2.003, "detector": detector, "delays": [0.3] * 20, "commit_lag_ms": [0.05],
              "tracker_reset": True, "delays_after": [0.3] * 20, "half_round_trips": [0.3] * 20,
              "background_per_s": [200.0, 200.0], "probe_half_round_trips": [0.2], "probe_offsets_ms": [0.0, 0.0, 0.0],
              "probe_run_lags": {}, "promotion_wal_bytes": 0, "repoint_ms": 120.0, "switch_ms": 70.0,
              "stream_ms": 115.0, "probe_records": {}}
    return detector, inputs


def test_a_kill_twin_dithers_its_eventual_reads_before_the_crash_only():
    """The twin's eventual reads before the crash are moved by up to DITHER_MS either way (its seed),
    apart from the schedule's chance pairs of a read just after a session write; its read-your-writes
    reads, its writes and every read from DITHER_MS before the crash on keep their instants, and
    each read keeps its session, level and reader thread."""
    _fidelity_delays()  # puts benchmarks/ on the path
    from fidelity import kill, killtwins

    detector, inputs = _kill_twin_inputs()
    crash, _ = kill.twin_timing(killtwins.KILL_AT_S * 1000.0, 100.0, detector)
    plain = killtwins.sim_config("fast", "async", 30.0, 1, inputs, dither_ms=0.0)
    dithered = killtwins.sim_config("fast", "async", 30.0, 1, inputs)
    again = killtwins.sim_config("fast", "async", 30.0, 1, inputs)
    other = killtwins.sim_config("fast", "async", 30.0, 2, inputs)
    assert killtwins.DITHER_MS == 10.0
    assert dithered.write_arrivals == plain.write_arrivals
    assert dithered.read_arrivals == again.read_arrivals and dithered.read_arrivals != other.read_arrivals
    def listed(config):
        return [(t, s, str(level).lower(), r)
                for (t, s, level), r in zip(config.read_arrivals, config.read_arrival_readers)]

    reads, moved = listed(plain), listed(dithered)
    assert [t for t, *_ in moved] == sorted(t for t, *_ in moved) and len(moved) == len(reads)
    fixed = [read for read in reads if "eventual" not in read[2] or read[0] + killtwins.DITHER_MS >= crash]
    assert sorted(fixed) == sorted(read for read in moved if read in set(fixed)) and len(fixed) < len(reads)
    early = sorted((s, level, r) for t, s, level, r in reads if read_is_dithered(t, level, crash, killtwins.DITHER_MS))
    shifted = [read for read in moved if read not in set(fixed)]
    assert sorted((s, level, r) for _, s, level, r in shifted) == early
    assert all("eventual" in level for _, _, level, _ in shifted)
    gaps = sorted(abs(a - b) for a, b in zip(sorted(t for t, s, level, r in reads
                                                    if read_is_dithered(t, level, crash, killtwins.DITHER_MS)),
                                             sorted(t for t, *_ in shifted)))
    assert gaps[-1] <= killtwins.DITHER_MS + 1e-9 and sum(gap > 0.5 for gap in gaps) > len(gaps) // 2
    # Without a replayed workload or at 0: unchanged.
    assert killtwins.dithered_reads({}, 10.0, crash, 1) == {}
    workload = killtwins.replayed_workload(inputs, True, clients=True)
    assert killtwins.dithered_reads(workload, 0.0, crash, 1) == workload


def read_is_dithered(t: float, level: str, crash: float, dither_ms: float) -> bool:
    return "eventual" in level and t + dither_ms < crash


def test_a_kill_twins_new_primary_acknowledges_as_the_real_one_did():
    """The real FailoverManager carries the synchronous setting over to the new primary
    (keep_synchronous) and each run records it (sync_carried): the twin keeps the run's mode after
    the promotion then, else acknowledges at once, as for the saved runs from before the record."""
    _fidelity_delays()  # puts benchmarks/ on the path
    from fidelity import kill, killtwins
    from replikit.sim import ReplicationMode

    assert killtwins.mode_after_promotion({}) == "async"
    assert killtwins.mode_after_promotion({"sync_carried": False}) == "async"
    assert killtwins.mode_after_promotion({"sync_carried": True}) is None
    detector, inputs = _kill_twin_inputs()
    saved = killtwins.sim_config("fast", "semi_sync", 30.0, 1, inputs)
    carried = killtwins.sim_config("fast", "semi_sync", 30.0, 1, dict(inputs, sync_carried=True))
    assert saved.mode_after_promotion == ReplicationMode.ASYNC and carried.mode_after_promotion is None
    timing = dict(detector, late_ms=0.5)
    settings = kill.Settings()
    assert kill.sim_config(settings, "semi_sync", 30.0, 1, timing).mode_after_promotion == ReplicationMode.ASYNC
    assert kill.sim_config(settings, "semi_sync", 30.0, 1, dict(timing, sync_carried=True)).mode_after_promotion is None
    assert kill.sim_config(settings, "semi_sync", 30.0, 1).mode_after_promotion is None  # the model without a run


def test_a_kill_twin_promotes_when_the_real_client_switched():
    """A synchronous new primary commits the writes its client sends from the switch on but
    acknowledges the first only once the survivor streams: runs that polled the client's switch
    from the kill on (client_switch_s, signed against the first acknowledged write) promote the twin
    there, its survivor streaming as late as the real one did and its outage window ending where the
    real one ended; runs saved without it keep the old timing (the switch switch_ms after the first
    acknowledged write, the outage ending at the promotion)."""
    _fidelity_delays()  # puts benchmarks/ on the path
    from fidelity import killreads, killtwins
    from replikit.sim import SimConfig

    old = {"repoint_ms": 6.0, "switch_ms": 0.8}
    assert killtwins.promotion_timing(old, 300.0) == {"promote_ms": pytest.approx(300.8), "repoint_ms": pytest.approx(5.2)}
    assert killtwins.promotion_timing(dict(old, client_switch_s=None, recovered_s=2.5), 300.0) == \
        killtwins.promotion_timing(old, 300.0)
    run = dict(old, recovered_s=2.5, client_switch_s=2.41)  # switched 90 ms before the first acknowledgement
    timing = killtwins.promotion_timing(run, 300.0)
    assert timing["promote_ms"] == pytest.approx(210.0)
    assert timing["repoint_ms"] == pytest.approx(96.0)  # caught up 6 ms after that acknowledgement
    assert timing["outage_after_promotion_ms"] == pytest.approx(90.8)  # the real outage ended 0.8 ms after it
    late = killtwins.promotion_timing(dict(run, client_switch_s=2.53, switch_ms=31.0), 300.0)  # an asynchronous one
    assert late["promote_ms"] == pytest.approx(330.0) and late["outage_after_promotion_ms"] == pytest.approx(1.0)
    assert killtwins.promotion_timing(dict(run, client_switch_s=2.0), 300.0)["promote_ms"] == 0.0  # never before detection
    assert SimConfig(**timing).outage_after_promotion_ms == pytest.approx(90.8)
    reached = killreads.writes_reached(2.0, 2.5, 2.41, 2.45, 1000.38, [(999.9, 3), (1000.43, 9), (1000.46, 10)], 998.0)
    assert reached == {"recovered_s": 2.5, "client_switch_s": 2.41, "manager_promoted_s": 2.45,
                       "first_commit_s": pytest.approx(2.38), "first_session_commit_s": pytest.approx(2.43)}
    assert killreads.writes_reached(2.0, 2.5, None, None, None, [], 998.0)["first_session_commit_s"] is None


def test_a_kill_twins_requests_leave_as_the_real_threads_send_them():
    """The real workload has one writer thread and READERS reader threads, each waiting for its last
    request: the twin replays each read with its reader (read_arrival_readers) and the writes one at
    a time (sequential_writes); without ``clients``, every request leaves when it arrives."""
    _fidelity_delays()  # puts benchmarks/ on the path
    from fidelity import killreads, killtwins
    from replikit.sim import SimConfig

    plain = killtwins.replayed_workload({"seed": 7}, True, 5.0)
    threads = killtwins.replayed_workload({"seed": 7}, True, 5.0, clients=True)
    assert "read_arrival_readers" not in plain and "sequential_writes" not in plain
    assert threads["read_arrivals"] == plain["read_arrivals"] and threads["write_arrivals"] == plain["write_arrivals"]
    assert threads["sequential_writes"] is True
    assert len(threads["read_arrival_readers"]) == len(threads["read_arrivals"])
    assert set(threads["read_arrival_readers"]) == set(range(killreads.READERS))
    with_readers = killreads.workload_arrivals(7, readers=True)["read_arrivals"]
    assert [r[:3] for r in with_readers] == killreads.workload_arrivals(7)["read_arrivals"]
    config = SimConfig(sessions=killreads.SESSIONS, duration_ms=killreads.RUN_S * 1000.0 + 5.0, **threads)
    assert config.read_arrival_readers == threads["read_arrival_readers"] and config.sequential_writes


def test_fidelity_rejects_bad_scenario_settings():
    for args in (["--scenario", "delay", "--delay-ms", "0"], ["--scenario", "kill", "--modes", "sometimes"]):
        proc = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0 and args[-2].lstrip("-").split("-")[0] in proc.stderr


@pytest.mark.pg
def test_simulator_predicts_a_delayed_replay(tmp_path):
    require_pg_server()
    data = run_script(tmp_path, "--scenario", "delay", "--run-s", "20", "--calibration", "60", "--seed", "3")
    table = data["comparison"]
    # The insert's WAL, measured: a heap and a btree record, then a commit record (PostgreSQL 15:
    # 136 and 40 bytes).
    assert 0 < data["wal_bytes"]["commit_record_bytes"] < data["wal_bytes"]["row_bytes"] < 1000

    def error(key):
        return table[key]["relative_error"]

    assert table["r1_visible_after_ms"]["measured"] >= 45  # the delay really held replay
    assert error("r1_visible_after_ms") <= 0.10
    assert error("r1_mean_lag_ms") <= 0.35
    assert table["eventual_stale_from_delay"]["measured"] > 0.1
    assert error("eventual_stale_from_delay") <= 0.25
    assert error("eventual_stale_rate") <= 0.25
    assert table["ryw_stale_reads"]["measured"] == 0
    assert table["ryw_stale_reads"]["predicted"] == 0


@pytest.mark.pg
def test_simulator_predicts_a_killed_primarys_failover(tmp_path):
    require_pg_server()
    modes = run_script(tmp_path, "--scenario", "kill", "--runs", "1", "--modes", "async,semi_sync",
                       "--sim-runs", "20", "--read-runs", "1")["modes"]
    semi, asynchronous = modes["semi_sync"]["comparison"], modes["async"]["comparison"]
    assert semi["lost_acknowledged"]["measured"] == 0
    assert semi["lost_acknowledged"]["predicted"] == 0
    assert asynchronous["lost_acknowledged"]["measured"] <= 1
    assert asynchronous["lost_acknowledged"]["predicted"] <= 1
    for mode in modes.values():
        table, sim, uniform = mode["comparison"], mode["sim"], mode["sim_uniform_phase"]
        assert uniform["detection_ms_min"] - 50 <= table["detection_ms"]["measured"] <= uniform["detection_ms_max"] + 50
        assert len(sim["twins"]) == len(mode["runs"]) == 1
        for run in mode["runs"]:
            assert 0 <= run["phase_ms"] <= run["period_ms"] and 100 <= run["period_ms"] <= 150
        detection_gap = abs(table["detection_ms"]["measured"] - table["detection_ms"]["predicted"])
        assert abs(table["recovery_ms"]["measured"] - table["recovery_ms"]["predicted"]) <= detection_gap + 20
    for mode in modes.values():
        reads = mode["reads"]["comparison"]
        assert mode["reads"]["real"]["reads"] > 100 and mode["reads"]["sim"]["reads"] > 100
        # The delays after the recovery: the offset probe against the new primary, reading the survivor.
        assert mode["reads"]["real"]["offset_reads_after"] >= 10 and mode["reads"]["real"]["delay_after_mean_ms"] > 0
        assert "stale_eventual_after" in mode["reads"]["comparison_before_delays"]
        assert "stale_eventual_after" in mode["reads"]["comparison_poisson"]
        for window in ("before", "outage", "after"):
            assert reads[f"stale_read_your_writes_{window}"]["measured"] == 0
            assert reads[f"stale_read_your_writes_{window}"]["predicted"] == 0
        for key in ("stale_eventual_before", "stale_eventual_after", "failed_share_outage"):
            assert reads[key]["measured"] <= 0.25 and reads[key]["predicted"] <= 0.25
        for key in ("stale_eventual_after", "failed_share_outage"):
            assert reads[key]["measured_ci"][0] <= reads[key]["measured"] <= reads[key]["measured_ci"][1]
        assert reads["lag_mean_before"]["measured"] < 10 and reads["lag_mean_before"]["predicted"] < 10
        for run in mode["reads"]["real"]["runs"]:
            # When the prober's queries started on each server, before the kill and after the
            # recovery (the dead primary keeps its lags before), and the new primary's WAL burst.
            lags = run["probe_run_lags"]
            for key in ("probe_run_lags_ms", "probe_run_lags_after_crash_ms"):
                assert len(lags[key]) == 3 and all(lags[key]) and min(min(node) for node in lags[key]) >= 0
            assert run["promotion_wal_bytes"] >= 0
            # Read by read before the kill, and the probe rows' own INSERT -> COMMIT.
            assert run["delays_matched"] and len(run["measured_delays"]) == len(run["delays"])
            assert run["eventual_reads_before"] and run["session_rows"] and run["probe_samples_before"]
            assert len(run["probe_rows"]) >= len(run["probe_samples_before"]) > 10
            assert len(run["probe_commit_lag_ms"]) > 10 and statistics.median(run["probe_commit_lag_ms"]) > 0
            assert all(0 < ran - sent < 1 for sent, ran, *_ in run["eventual_reads_before"])  # one clock
        # The stale eventual reads after the recovery: the surviving standby's reconnection.
        assert reads["stale_eventual_after"]["measured"] > 0 and reads["stale_eventual_after"]["predicted"] > 0
