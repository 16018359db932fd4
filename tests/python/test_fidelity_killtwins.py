"""The primary-killed scenario's simulated twins (benchmarks/fidelity: killreads, killtwins,
twinworkload, commitlag), on small hand-made inputs: what a kill run keeps read by read, the commit
instants from the primary's WAL, and how a twin replays its run's workload (where the real kill
fell, dithered eventual reads before the crash only, the new primary acknowledging and the client
switching as measured, requests leaving as the real threads send them). The scenario runs against
a real cluster are in test_sim_fidelity.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


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
    from fidelity import commitlag

    gaps = [0.04] * 9 + [1.0]  # one COMMIT sent late: its row's delay is that much longer
    assert commitlag.commit_lag_ms(gaps) == pytest.approx(0.136, abs=1e-9)
    assert commitlag.commit_lag_ms([-0.01, -0.03]) == 0.0  # clock noise: never a negative lag


def test_a_kill_twin_replays_the_workload_its_run_drew():
    """The real workload's writer and readers draw from fidelity.common's seeded schedules (the
    same draws as the loops they replaced), and a kill's twin replays exactly those requests."""
    import random

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
    # Lower-bound tracked lags are left out on both sides (killreads' recorder keeps measured ones).
    assert killtwins.sim_config("fast", "semi_sync", 30.0, 3, dict(_kill_twin_inputs()[1], **run)).tracked_lag_lower_bounds is False
    reached = killreads.writes_reached(2.0, 2.5, 2.41, 2.45, 1000.38, [(999.9, 3), (1000.43, 9), (1000.46, 10)], 998.0)
    assert reached == {"recovered_s": 2.5, "client_switch_s": 2.41, "manager_promoted_s": 2.45,
                       "first_commit_s": pytest.approx(2.38), "first_session_commit_s": pytest.approx(2.43)}
    assert killreads.writes_reached(2.0, 2.5, None, None, None, [], 998.0)["first_session_commit_s"] is None


def test_a_kill_twin_is_promoted_at_the_real_clients_switch():
    """Under the readers' load the real promotion is slower than the write-only kills' median that
    the twin's timing takes: the twin is simulated again with its promotion at the real client's
    switch (the same detection), and the model's own outage is kept as the check; runs saved
    without the polled switch, or at_switch=False, keep the model's promotion."""
    from fidelity import killswitch, killtwins
    from replikit.sim import simulate

    _, inputs = _kill_twin_inputs()
    run = dict(inputs, recovered_s=2.45, client_switch_s=2.40)
    assert killswitch.promote_at_switch(run, 280.0) == pytest.approx(117.0)  # 397 ms after the kill, less detection
    assert killswitch.promote_at_switch(dict(run, client_switch_s=2.2), 280.0) == 0.0  # never before detection
    assert killswitch.promote_at_switch(inputs, 280.0) is None  # saved without the switch
    config = killtwins.sim_config("fast", "semi_sync", 30.0, 3, run)
    model = simulate(config, 3)
    result, model_outage_ms = killtwins.simulate_twin(config, 3, run)
    assert result.failover["detection_ms"] == model.failover["detection_ms"]
    assert result.failover["recovery_ms"] == pytest.approx(397.0)  # crash (the real kill) -> the real switch
    assert model_outage_ms == pytest.approx(model.failover["recovery_ms"] + config.outage_after_promotion_ms)
    assert model.failover["recovery_ms"] != pytest.approx(397.0)
    kept = killtwins.sim_config("fast", "semi_sync", 30.0, 3, run)
    assert killtwins.simulate_twin(kept, 3, run, at_switch=False)[0].failover == model.failover
    assert killtwins.simulate_twin(kept, 3, inputs)[0].failover == model.failover
    counts = killtwins.sim_run_counts("fast", "semi_sync", 30.0, range(3, 4), run)
    assert counts["outage_ms_mean"] == pytest.approx(model_outage_ms)
    assert counts["windows"] == killtwins.sim_counts(result)  # the windows are the twin's promoted at the switch


def test_a_kill_twins_requests_leave_as_the_real_threads_send_them():
    """The real workload has one writer thread and READERS reader threads, each waiting for its last
    request: the twin replays each read with its reader (read_arrival_readers) and the writes one at
    a time (sequential_writes); without ``clients``, every request leaves when it arrives."""
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
