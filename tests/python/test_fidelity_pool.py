"""benchmarks/fidelity/pool.py: the kill scenario's window comparison pooled over saved runs, on
tiny synthetic saved runs (no PostgreSQL): the kills of every file pooled, per mode and all modes,
the same numbers as fidelity.windowstats gives for those kills, and how many kills a +-10%
interval needs."""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from fidelity import killtwins, pool, windowstats  # noqa: E402

KEYS = killtwins.COUNT_KEYS


def counts(rng: random.Random, primary_share: float) -> dict:
    out = {}
    for window in ("before", "outage", "after"):
        answered = rng.randint(80, 120)
        eventual = answered // 2
        out[window] = {k: 0.0 for k in KEYS}
        out[window].update(answered=answered, primary=round(answered * primary_share * rng.uniform(0.8, 1.2)),
                           eventual=eventual, eventual_stale=rng.randint(0, 5),
                           read_your_writes=answered - eventual, failed=rng.randint(0, 2),
                           lag_samples=50, lag_sum_ms=50 * rng.uniform(0.1, 0.4), lag_max_ms=1.0)
    return out


def saved_run(seed: int, modes=("async", "sync_all"), kills: int = 4) -> dict:
    rng = random.Random(seed)
    out = {"scenario": "kill", "settings": {"seed": seed, "sim_runs": 20, "preset": "fast"}, "modes": {}}
    for mode in modes:
        real = [{"counts": counts(rng, 0.13), "seed": k + 1} for k in range(kills)]
        sim = [{"windows": counts(rng, 0.12)} for _ in range(kills)]
        out["modes"][mode] = {"real": {"promotion_ms": 30.0},
                              "reads": {"real": {"runs": real}, "sim": {"runs": sim}}}
    return out


def write(tmp_path: Path, name: str, saved: dict) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(saved))
    return str(path)


def test_pool_prints_every_window_of_the_kills_of_all_files(tmp_path):
    first, second = saved_run(1), saved_run(2)
    first["load"] = {"start": [0.5, 1.0, 1.5], "end": [0.7, 1.1, 1.4]}
    paths = [write(tmp_path, "run1.json", first), write(tmp_path, "run2.json", second)]
    progress = tmp_path / "progress.log"
    progress.write_text("run 2 seed 1020 start 01:00:38 load 1.20 1.30 1.40\n"
                        "run 2 rc 0 end 01:07:38 load 2.00 1.50 1.40\n")
    lines = []
    assert pool.main(paths + ["--progress", str(progress)], log=lines.append) == 0
    text = "\n".join(lines)
    assert "8 kills (async 4, sync_all 4)" in text
    assert "load average (1/5/15 min) start 0.50/1.00/1.50, end 0.70/1.10/1.40" in text
    assert "start 1.20/1.30/1.40, end 2.00/1.50/1.40" in text  # from the campaign log
    assert "all modes pooled (16 kills from 2 files, twins as saved)" in text
    assert "async (8 kills" in text and "sync_all (8 kills" in text
    for label in windowstats.WINDOW_LABELS.values():
        assert text.count(label) == 3
    assert "kills for +-10%" in text
    # The pooled figures are windowstats' over the kills of both files.
    kills = [k for saved in (first, second) for k in killtwins.saved_kills(saved)]
    table = windowstats.compare([k[2]["counts"] for k in kills], [k[3]["windows"] for k in kills], 1)
    row = table["primary_share_after"]
    assert f"{row['measured']:9.4f}" in text and f"{row['predicted']:9.4f}" in text


def test_kills_for_a_ten_percent_interval_scale_with_the_spread():
    rng = random.Random(3)
    den = [100.0] * 200
    tight = [10 + rng.gauss(0, 1) for _ in den]
    wide = [10 + rng.gauss(0, 4) for _ in den]
    assert windowstats.kills_for_tolerance(tight, den) < windowstats.kills_for_tolerance(wide, den)
    # The standard error of a mean of 200 kills with a relative spread s per kill: s / sqrt(200).
    needed = windowstats.kills_for_tolerance(wide, den)
    assert needed == pytest.approx((1.96 * 0.4 / 0.10) ** 2, rel=0.25)
    assert math.isnan(windowstats.kills_for_tolerance([0.0, 0.0], [1.0, 1.0]))  # a ratio of 0
    assert math.isnan(windowstats.kills_for_tolerance([1.0], [1.0]))  # one kill: no spread


def twin_inputs(seed: int) -> dict:
    """A kill's twin inputs as real_reads saves them (small, made up, no probe records)."""
    rng = random.Random(seed)
    return {"seed": seed, "delays": [rng.uniform(0.1, 0.6) for _ in range(50)], "probe_records": {},
            "commit_lag_ms": [0.05], "tracker_reset": True, "delays_after": [rng.uniform(0.1, 0.5) for _ in range(50)],
            "half_round_trips": [rng.uniform(0.2, 0.4) for _ in range(50)], "background_per_s": [200.0, 210.0],
            "probe_half_round_trips": [0.15, 0.2, 0.25], "probe_offsets_ms": [0.0, 1.0, 2.0],
            "probe_run_lags": {}, "promotion_wal_bytes": 180_000,
            "detector": {"late_ms": 0.5, "phase_ms": 30.0, "phase_raw_ms": 30.0}, "kill_s": 2.004,
            "repoint_ms": 120.0, "switch_ms": 70.0,
            "stream_ms": 115.0}


def one_kill_file(tmp_path: Path, run: dict) -> str:
    """A saved async run of one kill whose twin inputs are `run`, one twin run per kill."""
    saved = saved_run(5, modes=("async",), kills=1)
    saved["settings"]["sim_runs"] = 1
    saved["modes"]["async"]["reads"]["real"]["runs"][0].update(run)
    return write(tmp_path, "run.json", saved)


def test_repredict_gives_back_the_saved_twins_with_the_same_code_and_seeds(tmp_path):
    saved = saved_run(4, modes=("semi_sync",), kills=2)
    saved["settings"]["sim_runs"] = 2
    runs = saved["modes"]["semi_sync"]["reads"]
    for k, run in enumerate(runs["real"]["runs"]):
        run.update(twin_inputs(k + 1))
        runs["sim"]["runs"][k] = {"windows": killtwins.sim_run_counts("fast", "semi_sync", 30.0, range(4, 6),
                                                                      run)["windows"]}
    path = write(tmp_path, "run.json", saved)
    as_saved, again, other = [], [], []
    pool.main([path], log=as_saved.append)
    pool.main([path, "--repredict"], log=again.append)
    pool.main([path, "--repredict", "--seed", "9"], log=other.append)
    assert again[1:] == [line.replace("twins as saved", "re-predicted by the current twins") for line in as_saved[1:]]
    assert other[1:] != again[1:]  # other seeds: another prediction


def test_file_errors_tell_a_run_that_moves_from_sampling(tmp_path):
    """Per file the stale share's error with its bootstrap spread over the file's kills, and Cochran's
    Q over the files: files whose twins are all off alike (sampling only) give a large p, one file
    twice as far off as the others a small one."""
    rng = random.Random(6)  # seed printed by the assertion messages below

    def rows(bias):
        out = []
        for f, b in enumerate(bias):
            for _ in range(60):
                real = {"before": {"eventual": 170.0, "eventual_stale": float(sum(rng.random() < 0.02 for _ in range(170)))}}
                sim = {"before": {"eventual": 3400.0, "eventual_stale": float(sum(rng.random() < 0.02 * b for _ in range(3400)))}}
                out.append({"file": f"run{f}.json", "real": real, "sim": sim})
        return out

    alike = pool.file_errors(rows([1.1] * 6))
    assert len(alike["files"]) == 6 and alike["df"] == 5
    assert alike["p"] > 0.01, f"seed 6: {alike}"
    assert math.expm1(alike["pooled_log_error"]) == pytest.approx(0.1, abs=0.08), "seed 6"
    apart = pool.file_errors(rows([1.1] * 5 + [2.2]))
    assert apart["p"] < 0.001 and apart["q"] > alike["q"], f"seed 6: {apart}"
    lines = []
    pool.print_file_errors(apart, lines.append)
    assert "run5.json: 60 kills" in "\n".join(lines) and "between the files: Q =" in lines[-1]


def test_rematch_gives_saved_kills_the_matched_per_write_delays(tmp_path):
    """--rematch: a kill saved with per_write_delays' draws gets matched_per_write_delays' (lower:
    in-order delivery no longer counts the short hold-backs twice); one saved with them is left."""
    run = twin_inputs(1)
    again = pool.rematched(run)
    assert again is not run and len(again["delays"]) == len(run["delays"])
    assert sum(again["delays"]) < sum(run["delays"]) and sum(again["delays_after"]) < sum(run["delays_after"])
    assert pool.rematched(dict(run, delays_matched=True))["delays"] == run["delays"]
    path = one_kill_file(tmp_path, run)
    lines = []
    assert pool.main([path, "--repredict", "--rematch"], log=lines.append) == 0
    assert "with rematched per-write delays" in "\n".join(lines)
    with pytest.raises(SystemExit):
        pool.main([path, "--rematch"], log=lines.append)


def test_gap_excess_takes_the_probe_rows_longer_commit_gap_off_the_delays(tmp_path):
    run = dict(twin_inputs(2), commit_lag_ms=[0.05, 0.07, 0.09], probe_commit_lag_ms=[0.05, 0.07, 0.21])
    mean = sum(run["delays"]) / len(run["delays"])
    again = pool.gap_corrected(run)
    assert sum(again["delays"]) / len(again["delays"]) == pytest.approx(mean - 0.04)
    assert min(again["delays"]) >= 0 and again["delays_after"] == run["delays_after"]
    assert pool.gap_corrected(twin_inputs(2)) == twin_inputs(2)  # saved without the probe rows' gaps
    shorter = dict(run, probe_commit_lag_ms=[0.01])  # the probe's gap shorter: nothing taken off
    assert pool.gap_corrected(shorter)["delays"] == run["delays"]
    path = one_kill_file(tmp_path, run)
    lines = []
    assert pool.main([path, "--repredict", "--gap-excess"], log=lines.append) == 0
    assert "commit gap excess off the delays" in "\n".join(lines)


def test_pool_rejects_a_file_of_another_scenario(tmp_path):
    path = write(tmp_path, "pause.json", {"scenario": "pause", "settings": {}})
    with pytest.raises(SystemExit, match="not a saved kill scenario"):
        pool.main([path], log=lambda _: None)
