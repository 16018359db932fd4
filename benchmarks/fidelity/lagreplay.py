"""The kill scenario's tracked lag re-predicted on the same kills: each kill of a saved
``sim_fidelity.py --scenario kill --json`` file (its twin inputs are kept there) simulated again
with and without what the twin's lag prober takes from that kill's measurements beyond the rest of
the scenario: the measured send -> start lag of each probe's query per node
(SimConfig.probe_run_lags_ms, probe_run_lags_after_crash_ms), the new primary's full-page-image
burst (SimConfig.promotion_wal_bytes) and the prober's per-node send offsets measured after the
promotion (SimConfig.probe_offsets_after_crash_ms; "offsets before": those before the kill
throughout, as the twin had them before) and the measured probe rounds sent together
(SimConfig.probe_round_lags_ms; "independent": each node's run lag drawn on its own). Prints the measured and predicted mean tracked lag per
mode and window with the error's 95% bootstrap interval over kills, and how many kills the
measured mean's spread implies for an interval of +-10%.

    .venv/bin/python benchmarks/fidelity/lagreplay.py saved.json [more.json ...] [--sim-runs 20] [--seed 1]

Several files are pooled: their kills re-predicted together (one interval over all of them).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fidelity import killtwins, probesamples, windowstats  # noqa: E402

WINDOWS = ("before", "after")
# Per variant: what the kill's record is replaced with, whether the probe offsets from the crash on
# are those measured after the promotion (else those before the kill throughout), and whether the
# nodes probed together read after a measured round's lags (killtwins.probe_rounds; else each its
# own run lag, drawn independently: "independent").
VARIANTS = {"without": ({"probe_run_lags": {}, "promotion_wal_bytes": 0}, False, False),
            "offsets before": ({}, False, False), "independent": ({}, True, False), "with": ({}, True, True)}
BOOTSTRAP = 2000

Pair = Tuple[float, float]  # (sum of tracked lag samples, ms; number of samples)


def replay(saved: Dict[str, Any], sim_runs: int, seed: int) -> List[Dict[str, Any]]:
    """Per kill: its mode, the measured (sum, count) per window and each variant's prediction."""
    out = []
    seeds = range(seed, seed + sim_runs)
    for mode, promotion_ms, run, _ in killtwins.saved_kills(saved):
        row = {"mode": mode, "real": {w: (run["counts"][w]["lag_sum_ms"], run["counts"][w]["lag_samples"])
                                      for w in WINDOWS},
               "fed": {"real": dict(run["probes"], before=killtwins.fed_before(run["probe_records"]))}}
        for name, (over, offsets_after, rounds) in VARIANTS.items():
            twin = killtwins.sim_run_counts(saved["settings"]["preset"], mode, promotion_ms, seeds, dict(run, **over),
                                            offsets_after=offsets_after, rounds=rounds)
            row[name] = {w: (twin["windows"][w]["lag_sum_ms"], twin["windows"][w]["lag_samples"]) for w in WINDOWS}
            row["fed"][name] = twin["probes"]
        out.append(row)
    return out


def mean(rows: List[Dict[str, Any]], side: str, window: str) -> float:
    total, count = sum(r[side][window][0] for r in rows), sum(r[side][window][1] for r in rows)
    return total / count if count else float("nan")


def interval(rows: List[Dict[str, Any]], side: str, window: str, seed: int) -> Tuple[float, float]:
    """95% bootstrap interval of the relative error (kills resampled with their twins)."""
    rng = random.Random(seed)
    errors = []
    for _ in range(BOOTSTRAP):
        sample = [rng.choice(rows) for _ in rows]
        real, sim = mean(sample, "real", window), mean(sample, side, window)
        if real > 0 and not math.isnan(sim):
            errors.append(sim / real - 1.0)
    errors.sort()
    return errors[int(0.025 * len(errors))], errors[int(0.975 * len(errors)) - 1]


def kills_for_ten_percent(rows: List[Dict[str, Any]], window: str) -> float:
    """Kills for the measured mean's 95% interval to be +-10%, from its spread over these kills."""
    return windowstats.kills_for_tolerance([x["real"][window][0] for x in rows], [x["real"][window][1] for x in rows])


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("json", nargs="+", help="saved runs (several: their kills pooled)")
    parser.add_argument("--sim-runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rows = []
    for path in args.json:
        with open(path, encoding="utf-8") as fh:
            rows += replay(json.load(fh), args.sim_runs, args.seed)
    for mode in sorted({r["mode"] for r in rows}) + ["all modes"]:
        chosen = [r for r in rows if mode in ("all modes", r["mode"])]
        for window in WINDOWS:
            parts = []
            for name in VARIANTS:
                lo, hi = interval(chosen, name, window, args.seed)
                sim, real = mean(chosen, name, window), mean(chosen, "real", window)
                parts.append(f"{name} {sim:.3f} ({sim / real - 1:+.0%} [{lo:+.0%}, {hi:+.0%}])")
            print(f"{mode:9s} {window:6s} {len(chosen):3d} kills: measured {mean(chosen, 'real', window):.3f} ms; "
                  f"predicted {'; '.join(parts)}")
    for mode in sorted({r["mode"] for r in rows}):
        for window in WINDOWS:
            for side in ("real", *VARIANTS):
                fed: Dict[str, float] = {}
                for r in rows:
                    if r["mode"] == mode:
                        probesamples.add(fed, r["fed"][side][window])
                print(f"{mode:9s} {window:6s} tracker fed, {side:14s}: {probesamples.summary(fed)}")
    for window in WINDOWS:
        print(f"{window}: ~{kills_for_ten_percent(rows, window):.0f} kills for the measured mean's 95% interval "
              f"to be +-10% (from the spread over these {len(rows)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
