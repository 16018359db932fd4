"""Where the kill twins' lag probes find a replica behind more often than the real prober: the
real probes of saved ``sim_fidelity.py --scenario kill --json`` runs before the kill, by their
read gap (how long after the primary's query the replica's ran, from the measured run lags:
fidelity.probesamples.read_gap_rounds), against the chance the twins' model gives a probe with
that gap (fidelity.probesamples.twin_behind_chance: the run's delays, commit lag and write rate;
the gap drawn independently of the writes, as the twins did before they drew measured rounds
coupled with the replication in flight: SimConfig.probe_round_lags_ms). Only probes whose queries
left together.

    .venv/bin/python benchmarks/fidelity/probegap.py saved.json [more.json ...]
"""

from __future__ import annotations

import argparse
import bisect
import json
import sys
from pathlib import Path
from typing import Any, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fidelity import commitlag, probesamples  # noqa: E402
from fidelity.killreads import KILL_AT_S, SESSION_WRITE_RATE, WARM_S  # noqa: E402

EDGES = probesamples.READ_GAP_EDGES_MS


def gap_rows(saved: Dict[str, Any]) -> Dict[str, List[List[float]]]:
    """Per mode, per read-gap bin: [probes, behind, the twins' expected behind]. Up to KILL_AT_S
    (the kill freezes the primary after it: a probe then finds the replicas behind for good)."""
    out: Dict[str, List[List[float]]] = {}
    for mode, result in saved["modes"].items():
        bins = out.setdefault(mode, [[0.0, 0.0, 0.0] for _ in EDGES[1:]])
        for run in result["reads"]["real"]["runs"]:
            rate = SESSION_WRITE_RATE + run["background_per_s"][0]
            cl = commitlag.commit_lag_ms(run["commit_lag_ms"])
            rounds = run.get("probe_read_gaps")  # paired when measured; else from the run-lag lists
            if rounds is None:
                lags = run.get("probe_run_lags", {}).get("probe_run_lags_ms") or []
                rounds = probesamples.read_gap_rounds(run["probe_records"], lags, WARM_S, KILL_AT_S)
            for gap, behind in rounds:
                b = bins[min(len(bins) - 1, max(0, bisect.bisect_right(EDGES, gap) - 1))]
                b[0] += 1
                b[1] += behind
                b[2] += probesamples.twin_behind_chance(run["delays"], cl, rate, gap)
    return out


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("json", nargs="+", help="saved runs (pooled)")
    args = parser.parse_args(argv)
    pooled: Dict[str, List[List[float]]] = {}
    for path in args.json:
        with open(path, encoding="utf-8") as fh:
            for mode, bins in gap_rows(json.load(fh)).items():
                into = pooled.setdefault(mode, [[0.0, 0.0, 0.0] for _ in bins])
                for a, b in zip(into, bins):
                    for i in range(3):
                        a[i] += b[i]
    pooled["all modes"] = [[sum(m[k][i] for m in pooled.values()) for i in range(3)] for k in range(len(EDGES) - 1)]
    for mode, bins in pooled.items():
        n, real, twin = (sum(b[i] for b in bins) for i in range(3))
        print(f"{mode}: {n:.0f} probes sent together, behind {real:.0f} measured, {twin:.1f} by the twins' model")
        for lo, hi, (count, behind, expected) in zip(EDGES, EDGES[1:], bins):
            print(f"  read gap [{lo:+.2f}, {hi:+.2f}) ms: {count:5.0f} probes, behind {behind:3.0f} measured, "
                  f"{expected:5.1f} by the twins' model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
