"""benchmarks/fidelity/readshift.py: the readers' lateness around the session writes, measured in a
kill run (no PostgreSQL: a made-up run on a real seed's schedules) and drawn by its twin for the
eventual reads before the crash, in place of the uniform dither; and pool.py's choice of the kills
a twin's table comes from (in its file, held out, the other half)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from fidelity import kill, killtwins, pool, readshift  # noqa: E402
from fidelity.killreads import workload_arrivals  # noqa: E402

SEED = 7  # the made-up run's schedules (killreads.workload_arrivals)
PUSH_MS = 1.0  # a read scheduled within 0.5 ms after a session write is sent this much later
READ_LATE_MS, WRITE_LATE_MS = 0.1, 0.3
TABLE_SEEDS = range(7, 17)  # enough kills for every bin of the table


def coupled_run(seed: int = SEED) -> dict:
    """A kill whose eventual reads are sent READ_LATE_MS after their schedule, PUSH_MS more when
    scheduled within 0.5 ms after their reference session write (readshift.reference_gap), and whose rows' INSERTs are WRITE_LATE_MS late."""
    arrivals = workload_arrivals(seed)
    writes = [t for t, _ in arrivals["write_arrivals"]]
    rows = [[(t + WRITE_LATE_MS) / 1000.0, i + 1] for i, t in enumerate(writes) if t < 2000.0]
    reads = []
    for t, _, level in arrivals["read_arrivals"]:
        if not 300.0 <= t < 2000.0:
            continue
        i = readshift.reference_gap(writes, t)  # the write it is paired with: the last up to 2 ms after it
        near = i is not None and 0.0 <= t - writes[i] < 0.5
        sent = t + READ_LATE_MS + (PUSH_MS if near else 0.0)
        reads.append([t / 1000.0, sent / 1000.0, level == "eventual", "r1"])
    return {"seed": seed, "kill_s": 2.0, "session_rows": rows, "reads_before_scheduled": reads}


def test_a_kill_run_keeps_every_reads_scheduled_instant_before_the_kill():
    """killreads.read_records saves each read sent in [WARM_S, kill), either level, with its
    reader's scheduled instant, the send, whether eventual and the node (reads_before_scheduled)."""
    from types import SimpleNamespace

    from fidelity import common, killreads

    t0 = 1_700_000_000.0
    read = lambda scheduled, sent, level: common.Read(sent, sent + 0.001, level, "r2", "replica", False,  # noqa: E731
                                                      1, t0 + sent, scheduled)
    measured = common.Measured(commits=[(t0 + 0.5, 1)])
    measured.reads = [read(0.1, 0.1001, "eventual"), read(0.9, 0.9004, "eventual"),
                      read(1.1, 1.1002, "read_your_writes"), read(2.4, 2.4001, "eventual")]
    out = killreads.read_records(measured, SimpleNamespace(samples=[], rows=[]), t0, 2.0)
    assert out["reads_before_scheduled"] == [[0.9, 0.9004, True, "r2"], [1.1, 1.1002, False, "r2"]]
    assert [r[0] for r in out["eventual_reads_before"]] == [0.9004]
    assert common.Read(0.0, 0.0, "eventual", "r1", "replica", False, 0, 0.0).scheduled != \
        common.Read(0.0, 0.0, "eventual", "r1", "replica", False, 0, 0.0).scheduled  # nan: not recorded


def test_the_shifts_are_the_reads_lateness_less_their_writes_by_scheduled_gap():
    shifts = readshift.run_shifts(coupled_run())
    assert shifts and all(0 <= b <= readshift.FAR_BIN for b, _ in shifts)
    by_bin = {}
    for b, shift in shifts:
        by_bin.setdefault(int(b), []).append(shift)
    near = [readshift.gap_bin(0.1), readshift.gap_bin(0.3)]
    assert near == [4, 5] and all(by_bin.get(b) for b in near)
    for b, values in by_bin.items():
        expected = READ_LATE_MS - WRITE_LATE_MS + (PUSH_MS if b in near else 0.0)
        assert values == pytest.approx([expected] * len(values)), b
    # Only eventual reads, and only kills saved with their schedules' instants.
    eventual = sum(r[2] for r in coupled_run()["reads_before_scheduled"])
    assert len(shifts) == eventual
    assert readshift.run_shifts({"seed": SEED, "session_rows": []}) == []
    assert readshift.gap_bin(None) == readshift.gap_bin(25.0) == readshift.gap_bin(-2.5) == readshift.FAR_BIN
    assert readshift.gap_bin(-2.0) == 0 and readshift.gap_bin(-0.01) == 3 and readshift.gap_bin(0.0) == 4


def _twin_inputs(table=None):
    detector = {"late_ms": 0.5, "phase_ms": 12.0, "phase_raw_ms": 12.0}
    inputs = {"seed": SEED, "kill_s": 2.003, "detector": detector, "delays": [0.3] * 20, "commit_lag_ms": [0.05],
              "tracker_reset": True, "delays_after": [0.3] * 20, "half_round_trips": [0.25] * 20,
              "background_per_s": [200.0, 200.0], "probe_half_round_trips": [0.2], "probe_offsets_ms": [0.0, 0.0, 0.0],
              "probe_run_lags": {}, "promotion_wal_bytes": 0, "repoint_ms": 120.0, "switch_ms": 70.0,
              "stream_ms": 115.0, "probe_records": {}}
    if table is not None:
        inputs["read_shifts"] = table
    return detector, inputs


def _reads(config):
    return [(t, s, str(level).lower(), r) for (t, s, level), r in zip(config.read_arrivals, config.read_arrival_readers)]


def test_a_kill_twin_draws_its_eventual_reads_before_the_crash_from_the_measured_shifts():
    """With a table, the twin's eventual reads scheduled before the crash (GUARD_MS or more) are sent
    at their scheduled instant + the shift of their scheduled gap's bin + its mean write send ->
    commit; everything else keeps its instant, session, level and reader; without one (or with
    read_shifts off) it is the dithered twin of before."""
    table = readshift.pooled(coupled_run(seed) for seed in TABLE_SEEDS)
    assert readshift.usable(table) and not readshift.usable(readshift.pooled([]))
    assert min(len(b) for b in table["shifts_ms"]) >= readshift.MIN_SHIFTS  # every bin draws its own
    detector, inputs = _twin_inputs(table)
    crash, _ = kill.twin_timing(killtwins.KILL_AT_S * 1000.0, 100.0, detector)
    plain = killtwins.sim_config("fast", "async", 30.0, 1, inputs, dither_ms=0.0, read_shifts=False)
    shifted = killtwins.sim_config("fast", "async", 30.0, 1, inputs)
    dithered = killtwins.sim_config("fast", "async", 30.0, 1, _twin_inputs()[1])
    assert _reads(killtwins.sim_config("fast", "async", 30.0, 1, inputs, read_shifts=False)) == _reads(dithered)
    assert _reads(shifted) == _reads(killtwins.sim_config("fast", "async", 30.0, 1, inputs))  # seeded
    assert shifted.write_arrivals == plain.write_arrivals
    writes = sorted(t for t, _ in plain.write_arrivals)
    lateness = 0.25 + killtwins.WRITE_SERVICE_MS
    before, moved = _reads(plain), _reads(shifted)
    assert [t for t, *_ in moved] == sorted(t for t, *_ in moved) and len(moved) == len(before)
    fixed = [r for r in before if "eventual" not in r[2] or r[0] + readshift.GUARD_MS >= crash]
    assert set(fixed) <= set(moved) and len(fixed) < len(before)
    targets = []
    for t, s, level, reader in before:
        if (t, s, level, reader) in set(fixed):
            continue
        i = readshift.reference_gap(writes, t)
        b = readshift.gap_bin(None if i is None else t - writes[i])
        near = b in (readshift.gap_bin(0.1), readshift.gap_bin(0.3))
        targets.append(round(t + READ_LATE_MS - WRITE_LATE_MS + (PUSH_MS if near else 0.0) + lateness, 6))
    got = sorted(round(t, 6) for t, *rest in moved if (t, *rest) not in set(fixed))
    assert got == sorted(targets)


def test_a_kill_twin_shifts_its_eventual_reads_after_the_outage_too():
    """With the real outage's length (outage_ms), the twin's eventual reads scheduled from the
    outage's end on are shifted as those before the crash are, never back into the outage nor past
    the last scheduled read; the outage's reads keep their instants; shift_after=False keeps them
    all (the twins before)."""
    table = readshift.pooled(coupled_run(seed) for seed in TABLE_SEEDS)
    detector, inputs = _twin_inputs(table)
    crash, _ = kill.twin_timing(killtwins.KILL_AT_S * 1000.0, 100.0, detector)
    inputs["outage_ms"] = 400.0
    shift = killtwins.workload_shift_ms(inputs, crash)
    plain = _reads(killtwins.sim_config("fast", "async", 30.0, 1, inputs, dither_ms=0.0, read_shifts=False))
    before_only = _reads(killtwins.sim_config("fast", "async", 30.0, 1, inputs, shift_after=False))
    both = _reads(killtwins.sim_config("fast", "async", 30.0, 1, inputs))
    assert before_only == _reads(killtwins.sim_config("fast", "async", 30.0, 1, dict(inputs, outage_ms=None)))
    end = crash + 400.0
    assert abs(end - (2003.0 + shift + 400.0)) < 1e-6  # the real outage's end on the twin's clock
    kept = [r for r in plain if "eventual" not in r[2] or crash - readshift.GUARD_MS <= r[0] < end]
    assert set(kept) <= set(both)
    moved = [r for r in both if r not in set(plain)]
    assert any(t >= end for t, *_ in moved) and any(t < crash for t, *_ in moved)
    assert all(t < crash or end <= t <= max(p[0] for p in plain) for t, *_ in moved)
    assert len(both) == len(plain) and sorted(r[1:] for r in both) == sorted(r[1:] for r in plain)
    late = [r for r in before_only if r[0] >= end]
    assert late == [r for r in plain if r[0] >= end]  # shift_after=False: the reads after keep their instants


def test_a_twin_with_coupled_reads_leaves_the_span_the_real_reads_left_just_after_a_commit():
    """The point of the input: the made-up reads scheduled within 0.5 ms after their session write
    were sent PUSH_MS later, so none was sent in the span just after that write's INSERT where a
    read is the most often stale; the twin drawing the shifts leaves that span as empty (relative
    to its writes' commits), where the dithered twin puts reads there at a Poisson stream's rate."""
    import bisect

    _, inputs = _twin_inputs(readshift.pooled(coupled_run(seed) for seed in TABLE_SEEDS))
    low, high = READ_LATE_MS - WRITE_LATE_MS + 0.05, READ_LATE_MS - WRITE_LATE_MS + 0.45

    def just_after_a_commit(config):
        commits = sorted(t + 0.25 + killtwins.WRITE_SERVICE_MS for t, _ in config.write_arrivals)
        found = 0
        for t, _, level, _ in _reads(config):
            i = bisect.bisect_right(commits, t - low) - 1
            found += "eventual" in level and t < 1900.0 and i >= 0 and t - commits[i] < high
        return found

    shifted = [just_after_a_commit(killtwins.sim_config("fast", "async", 30.0, seed, inputs)) for seed in range(1, 6)]
    dithered = [just_after_a_commit(killtwins.sim_config("fast", "async", 30.0, seed, _twin_inputs()[1]))
                for seed in range(1, 6)]
    print(f"eventual reads sent {low:.2f}-{high:.2f} ms after a commit, twin seeds 1-5: shifted {shifted}, "
          f"dithered {dithered}")
    assert sum(dithered) >= 10 and sum(shifted) <= sum(dithered) // 4


def _saved(seeds):
    kills = [dict(coupled_run(seed), counts={}) for seed in seeds]
    return {"scenario": "kill", "settings": {"seed": 1, "sim_runs": 1, "preset": "fast"},
            "modes": {"async": {"real": {"promotion_ms": 30.0},
                                "reads": {"real": {"runs": kills}, "sim": {"runs": [{}] * len(kills)}}}}}


def test_pool_takes_a_twins_shifts_from_its_file_the_other_files_or_the_other_half():
    files = {"a.json": _saved([7, 8]), "b.json": _saved([9])}
    lines = []
    count = {how: pool.shift_tables(files, how, lines.append) for how in pool.READ_SHIFTS}
    size = {seed: len(readshift.run_shifts(coupled_run(seed))) for seed in (7, 8, 9)}

    def n(table):
        return sum(len(b) for b in table["shifts_ms"])

    assert n(count["file"]["a.json", 0]) == n(count["file"]["a.json", 1]) == size[7] + size[8]
    assert n(count["held-out"]["a.json", 1]) == size[9] and n(count["held-out"]["b.json", 0]) == size[7] + size[8]
    assert n(count["halves"]["a.json", 0]) == size[8] and n(count["halves"]["a.json", 1]) == size[7]
    assert any("read shifts (held-out)" in line for line in lines)


def test_pool_rejects_read_shifts_without_repredict_or_held_out_from_one_file(tmp_path):
    path = tmp_path / "run1.json"
    path.write_text(json.dumps(_saved([7])))
    with pytest.raises(SystemExit):
        pool.main([str(path), "--read-shifts", "file"])
    with pytest.raises(SystemExit):
        pool.main([str(path), "--repredict", "--read-shifts", "held-out"])
