"""benchmarks/fidelity/stalereads.py: the stale share before the kill read by read, on a made-up
saved kill (no PostgreSQL): by send offset from a row's INSERT, the readers' and the probe's stale
shares, their spans per write, and the two kinds of rows' INSERT -> COMMIT."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from fidelity import stalereads  # noqa: E402


def made_up_run() -> dict:
    # Session rows every 20 ms from 0.5 s, each visible on the replica 0.4 ms after its INSERT.
    rows = [[0.5 + 0.02 * k, k + 1] for k in range(50)]
    reads = []
    for k in range(50):
        for x_ms in (-0.8, 0.1, 0.3, 0.6, 5.0):  # sent x ms after row k + 1's INSERT, ran 0.05 ms later
            sent = rows[k][0] + x_ms / 1000.0
            ran = sent + 0.00005
            seen = max((row_id for at, row_id in rows if at + 0.0004 <= ran), default=0)
            latest = max((row_id for at, row_id in rows if at <= ran), default=0)
            reads.append([sent, ran, "r1", seen, seen < latest])
    reads.append([1.0, 1.00005, "primary", 99, False])  # the primary's: left out
    probe = [[0.6, "r1", x, x + 0.05, x + 0.05 >= 0.4, 0 <= x + 0.05 < 0.4] for x in (0.05, 0.2, 0.3, 0.6, 4.0)]
    return {"eventual_reads_before": reads, "session_rows": rows, "probe_samples_before": probe,
            "probe_rows": [[0.6, -1]], "commit_lag_ms": [0.05, 0.07, 0.3], "probe_commit_lag_ms": [0.06, 0.5],
            "delays": [0.4, 0.4]}


def test_spans_per_write_of_the_readers_and_the_probe():
    run = made_up_run()
    pairs = list(stalereads.reader_pairs(run))
    assert all(-stalereads.X_BEFORE_MS < x <= stalereads.X_AFTER_MS + 1e-6 for x, _ in pairs)
    s = stalereads.summary([run])
    assert s["reads"] == 250 and s["kills"] == 1
    by_bin = {(low, high): (n, k) for low, high, n, k in s["readers"]}
    assert by_bin[(0.0, 0.25)] == (50, 50) and by_bin[(0.25, 0.5)] == (50, 50)  # ran before the row showed
    assert by_bin[(0.5, 0.75)] == (50, 0) and by_bin[(5.0, 10.0)][1] == 0
    assert by_bin[(-1.0, -0.5)] == (50, 0)  # ran before the INSERT: not stale against it
    assert stalereads.span_ms(s["readers"]) == pytest.approx(0.5)  # two full 0.25 ms bins
    assert stalereads.span_ms(s["probe"]) == pytest.approx(0.5)
    assert s["session_gap"] == (pytest.approx(0.14), 0.07) and s["probe_gap"] == (pytest.approx(0.28), pytest.approx(0.28))


def test_main_prints_each_file_and_skips_runs_saved_without_reads(tmp_path):
    def saved(runs):
        return {"scenario": "kill", "settings": {}, "modes": {"async": {"real": {"promotion_ms": 30.0}, "reads": {
            "real": {"runs": runs}, "sim": {"runs": [{"windows": {}} for _ in runs]}}}}}

    with_reads, without = tmp_path / "a.json", tmp_path / "b.json"
    with_reads.write_text(json.dumps(saved([made_up_run()])))
    without.write_text(json.dumps(saved([{"delays": [0.3]}])))
    lines = []
    assert stalereads.main([str(with_reads), str(without)], log=lines.append) == 0
    text = "\n".join(lines)
    assert "1 kills, 250 replica eventual reads before the kill, 100 stale" in text
    assert "no kill saved with its reads" in text and "all files: 1 kills" in text
    assert "INSERT -> COMMIT, probe rows: mean 0.280 ms" in text
    other = tmp_path / "c.json"
    other.write_text(json.dumps({"scenario": "pause"}))
    with pytest.raises(SystemExit, match="not a saved kill scenario"):
        stalereads.main([str(other)], log=lines.append)


def scheduled_run(seed: int = 7, late_w_ms: float = 0.3, late_r_ms: float = 0.1) -> dict:
    """A made-up kill on the schedules of ``seed``: every INSERT late_w_ms after its write's
    scheduled instant, every eventual read sent late_r_ms after its own and run 0.05 ms later,
    each row visible on the replica 0.4 ms after its INSERT."""
    from fidelity.killreads import workload_arrivals

    arrivals = workload_arrivals(seed)
    rows = [[(t + late_w_ms) / 1000.0, k + 1] for k, (t, _) in enumerate(arrivals["write_arrivals"])]
    reads = []
    for t, _, level in arrivals["read_arrivals"]:
        if level != "eventual" or not 300.0 <= t < 2000.0:
            continue
        sent = (t + late_r_ms) / 1000.0
        ran = sent + 0.00005
        seen = max((row_id for at, row_id in rows if at + 0.0004 <= ran), default=0)
        latest = max((row_id for at, row_id in rows if at <= ran), default=0)
        reads.append([sent, ran, "r1", seen, seen < latest])
    return {"seed": seed, "kill_s": 2.0, "session_rows": rows, "eventual_reads_before": reads,
            "probe_samples_before": [], "delays": [0.4]}


def test_the_schedules_density_near_a_write_and_the_independent_lateness_ratio():
    import numpy as np

    from fidelity.killreads import SESSION_WRITE_RATE, workload_arrivals

    run = scheduled_run()
    arrivals = workload_arrivals(7)
    writes = [t for t, _ in arrivals["write_arrivals"]]
    reads = [t for t, _, level in arrivals["read_arrivals"] if level == "eventual" and 300.0 <= t < 2000.0]
    low, high = stalereads.NEAR_MS
    pairs = sum(low <= r - w < high for r in reads for w in writes)
    expected = len(reads) * SESSION_WRITE_RATE / 1000.0 * (high - low)
    assert stalereads.schedule_density([run]) == pytest.approx(pairs / expected)
    assert np.isnan(stalereads.schedule_density([{"delays": [0.3]}]))  # saved without its seed
    # Every read and INSERT as late as the others: the run's own offsets are the redrawn ones.
    assert sum(r[4] for r in run["eventual_reads_before"]) > 0
    assert stalereads.independent_ratio([run]) == pytest.approx(1.0, abs=0.02)
    assert np.isnan(stalereads.independent_ratio([{"delays": [0.3]}]))
    s = stalereads.summary([run])
    assert s["schedule_density"] == pytest.approx(pairs / expected)
    lines = []
    stalereads.print_summary("made up", s, lines.append)
    assert any("times a Poisson stream's" in line and "independent lateness" in line for line in lines)
