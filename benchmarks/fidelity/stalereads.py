"""The stale share of eventual reads before the kill, taken apart read by read, on kill runs saved
with their reads (killreads.read_records: runs saved from 2026-11-30 04:00 on):

    .venv/bin/python benchmarks/fidelity/stalereads.py run1.json [run2.json ...]

The twins' stale share follows the mean of the delays the offset probe measured (50 session writes
per second times the mean delay), so the question is whether the readers' reads are stale over the
same span per write as the probe's. Per file and pooled it prints:
- by send offset x (ms from a row's INSERT instant to the read's send, both on the run's clock),
  the share of reads stale against that row, for the readers' eventual reads (every session row
  against every replica read sent within [-X_BEFORE_MS, X_AFTER_MS) of it: stale when it ran after
  the row's INSERT and saw a lower id) and for the probe's reads of their own rows; their
  integrals over x (the span per write in which a read sent is stale: the readers' one is their
  stale share over the session writer's rate) and the mean of the delays the twins took;
- the INSERT -> COMMIT of the session writer's rows and of the probe's rows (their mean and
  median): a read sent in a row's INSERT -> COMMIT is stale against it, so the probe's span
  carries its own rows' gap where the readers' carries the session rows'.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fidelity import killtwins  # noqa: E402

X_BEFORE_MS, X_AFTER_MS = 2.0, 25.0
EDGES_MS = (-2.0, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 25.0)


def reader_pairs(run: Dict[str, Any]) -> Iterator[Tuple[float, bool]]:
    """(x ms, stale against that row) for every replica eventual read of ``run`` and every session
    row whose INSERT instant lies within [-X_AFTER_MS, X_BEFORE_MS) of the read's send."""
    rows = sorted((float(at), int(row_id)) for at, row_id in run.get("session_rows", []))
    instants = [at for at, _ in rows]
    import bisect

    for sent, ran, node, visible, _ in run.get("eventual_reads_before", []):
        if node == "primary":
            continue
        lo = bisect.bisect_left(instants, sent - X_AFTER_MS / 1000.0)
        hi = bisect.bisect_left(instants, sent + X_BEFORE_MS / 1000.0)
        for at, row_id in rows[lo:hi]:
            yield (sent - at) * 1000.0, ran >= at and visible < row_id


def probe_pairs(run: Dict[str, Any]) -> Iterator[Tuple[float, bool]]:
    """(x ms, stale) of the offset probe's reads of their own rows before the kill."""
    for _, _, sent_ms, _, _, stale in run.get("probe_samples_before", []):
        yield float(sent_ms), bool(stale)


def binned(pairs: Sequence[Tuple[float, bool]]) -> List[Tuple[float, float, int, int]]:
    """Per bin of EDGES_MS: (low, high, reads, stale)."""
    out = []
    for low, high in zip(EDGES_MS, EDGES_MS[1:]):
        inside = [stale for x, stale in pairs if low <= x < high]
        out.append((low, high, len(inside), sum(inside)))
    return out


def span_ms(bins: Sequence[Tuple[float, float, int, int]]) -> float:
    """The integral over x of the binned stale share (ms): the span per write in which a read sent
    is stale (a bin without reads counts as 0)."""
    return sum((high - low) * stale / reads for low, high, reads, stale in bins if reads)


def summary(runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    readers = [p for run in runs for p in reader_pairs(run)]
    probe = [p for run in runs for p in probe_pairs(run)]
    session_gaps = [g for run in runs for g in run.get("commit_lag_ms", [])]
    probe_gaps = [g for run in runs for g in run.get("probe_commit_lag_ms", [])]
    delays = [statistics.fmean(run["delays"]) for run in runs if run.get("delays")]
    reads = [r for run in runs for r in run.get("eventual_reads_before", []) if r[2] != "primary"]
    return {"kills": len(runs), "reads": len(reads), "stale": sum(bool(r[4]) for r in reads),
            "readers": binned(readers), "probe": binned(probe),
            "session_gap": (statistics.fmean(session_gaps), statistics.median(session_gaps)) if session_gaps else None,
            "probe_gap": (statistics.fmean(probe_gaps), statistics.median(probe_gaps)) if probe_gaps else None,
            "twin_delay_mean": statistics.fmean(delays) if delays else float("nan")}


def print_summary(title: str, s: Dict[str, Any], log: Any = print) -> None:
    log(f"{title}: {s['kills']} kills, {s['reads']} replica eventual reads before the kill, {s['stale']} stale")
    log("  x (ms from the row's INSERT to the send)   readers stale/reads        probe stale/reads")
    for (low, high, n, k), (_, _, pn, pk) in zip(s["readers"], s["probe"]):
        share = f"{k / n:7.3f}" if n else "      -"
        pshare = f"{pk / pn:7.3f}" if pn else "      -"
        log(f"  [{low:6.2f}, {high:6.2f})                          {share} ({k}/{n})"
            f"{'':<8}{pshare} ({pk}/{pn})")
    log(f"  span per write: readers {span_ms(s['readers']):.3f} ms, probe {span_ms(s['probe']):.3f} ms; "
        f"the twins' delays' mean {s['twin_delay_mean']:.3f} ms")
    for name, gap in (("session rows", s["session_gap"]), ("probe rows", s["probe_gap"])):
        if gap:
            log(f"  INSERT -> COMMIT, {name}: mean {gap[0]:.3f} ms, median {gap[1]:.3f} ms")


def main(argv: Any = None, log: Any = print) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("json", nargs="+", help="saved kill runs (sim_fidelity.py --scenario kill --json)")
    args = parser.parse_args(argv)
    everything: List[Dict[str, Any]] = []
    for path in args.json:
        with open(path, encoding="utf-8") as fh:
            saved = json.load(fh)
        if saved.get("scenario") != "kill":
            raise SystemExit(f"{path}: not a saved kill scenario (sim_fidelity.py --scenario kill --json)")
        runs = [run for _, _, run, _ in killtwins.saved_kills(saved) if "eventual_reads_before" in run]
        if not runs:
            log(f"{path}: no kill saved with its reads (saved before killreads.read_records)")
            continue
        print_summary(path, summary(runs), log)
        everything += runs
    if len(args.json) > 1 and everything:
        print_summary("all files", summary(everything), log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
