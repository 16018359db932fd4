"""The readers' lateness around the session writes, measured in the real kill runs and drawn by
their twins for the eventual reads before the crash and after the recovery (in place of
killtwins.dithered_reads' uniform dither, which took it as independent of the writes).

Why: on the shared 2-core machine a read and a write close in time push each other apart (the
readers' stale share by send offset, applied to the run's own send and INSERT instants, gives
0.79-0.88 times the stale reads of the same schedules with independent lateness:
fidelity.stalereads.independent_ratio), and the twin's stale share before the kill counts the
eventual reads that reach a replica within a replication delay after a session write's commit.
What decides it is where a read is SENT relative to the session write's INSERT (x, as the offset
probe's delays are measured), so that is what is measured, as a shift from the schedules, for
every real eventual read sent in [WARM_S, kill) (killreads.read_records' reads_before_scheduled):

    shift = (sent - its scheduled instant) - (INSERT - scheduled instant of its reference write)

the reference write being the last session write scheduled no later than X_BEFORE_MS after the
read (so a read scheduled just before a write, which pushes the write, is paired with that write),
binned by the scheduled gap g = read's scheduled instant - the reference write's (GAP_EDGES_MS;
a read without a reference write within the last edge goes to the last, far bin). The real offset
is then x = g + shift. A twin replays the same schedules; each of its eventual reads before the
crash is sent at its scheduled instant + a shift drawn from its gap's bin + the twin's own mean
send -> commit of a write (its mean client latency and write service): its x is then g + shift
less the deviation of that write's own latency, as in the real run. The same table moves the
eventual reads scheduled from the real outage's end on (shifted_reads' after_ms): measured before
the kill only, it is taken to hold for the new primary's writes too. Pooled over many kills (a
bin near g = 0 gets ~40 reads per 20 kills): pooled per mode in a live run (fidelity.kill), per
saved file, or held out (from the other files' kills) by fidelity/pool.py ``--read-shifts``.
Only the reads' instants and the writes' INSERT instants are used, never whether a read was stale.

    .venv/bin/python benchmarks/fidelity/readshift.py run1.json [run2.json ...]

prints the measured table per file and pooled (per gap bin: reads and their median shift).
"""

from __future__ import annotations

import argparse
import bisect
import json
import random
import statistics
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GAP_EDGES_MS = (-2.0, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 2.0, 5.0, 25.0)
X_BEFORE_MS = -GAP_EDGES_MS[0]
FAR_BIN = len(GAP_EDGES_MS) - 1  # no reference write within GAP_EDGES_MS[-1]
MIN_SHIFTS = 5  # a bin with fewer measured shifts draws from all bins'
GUARD_MS = 10.0  # reads scheduled this close to the crash keep their instant (as dithered_reads)


def gap_bin(gap_ms: Optional[float]) -> int:
    """The bin of a scheduled gap (ms; None: no reference write): 0..FAR_BIN."""
    if gap_ms is None or gap_ms >= GAP_EDGES_MS[-1] or gap_ms < GAP_EDGES_MS[0]:
        return FAR_BIN
    return bisect.bisect_right(GAP_EDGES_MS, gap_ms) - 1


def reference_gap(write_ms: Sequence[float], read_ms: float) -> Optional[int]:
    """The index in the sorted ``write_ms`` of the read's reference write (the last scheduled no
    later than X_BEFORE_MS after ``read_ms``), or None."""
    i = bisect.bisect_right(write_ms, read_ms + X_BEFORE_MS) - 1
    return i if i >= 0 else None


def run_shifts(run: Dict[str, Any]) -> List[List[float]]:
    """One saved kill's measured [gap bin, shift ms] per eventual read sent before the kill that
    has its scheduled instant and a reference write with a recorded INSERT (or none within reach);
    [] for a kill saved without reads_before_scheduled."""
    from fidelity.killreads import workload_arrivals

    reads = [r for r in run.get("reads_before_scheduled", []) if r[2] and r[0] == r[0]]  # eventual, not nan
    if not reads or "seed" not in run:
        return []
    writes = [t for t, _ in workload_arrivals(int(run["seed"]))["write_arrivals"]]  # ms, row id = index + 1
    inserts = {int(row_id): float(at) * 1000.0 for at, row_id in run.get("session_rows", [])}
    lateness = [inserts[i + 1] - t for i, t in enumerate(writes) if i + 1 in inserts]
    if not lateness:
        return []
    typical = statistics.median(lateness)
    out = []
    for scheduled, sent, _, _ in reads:
        scheduled_ms, sent_ms = scheduled * 1000.0, sent * 1000.0
        i = reference_gap(writes, scheduled_ms)
        gap = None if i is None else scheduled_ms - writes[i]
        b = gap_bin(gap)
        if b == FAR_BIN:
            out.append([float(b), sent_ms - scheduled_ms - typical])
        elif i is not None and i + 1 in inserts:
            out.append([float(b), sent_ms - scheduled_ms - (inserts[i + 1] - writes[i])])
    return out


def pooled(runs: Iterable[Dict[str, Any]]) -> Dict[str, Any]:
    """The twins' input: per gap bin, the measured shifts (ms) of ``runs`` pooled (run_shifts)."""
    bins: List[List[float]] = [[] for _ in range(FAR_BIN + 1)]
    for run in runs:
        for b, shift in run_shifts(run):
            bins[int(b)].append(shift)
    return {"edges_ms": list(GAP_EDGES_MS), "shifts_ms": bins}


def usable(table: Optional[Dict[str, Any]]) -> bool:
    return bool(table) and list(table.get("edges_ms", [])) == list(GAP_EDGES_MS) and \
        sum(len(b) for b in table.get("shifts_ms", [])) >= MIN_SHIFTS


def shifted_reads(workload: Dict[str, Any], table: Dict[str, Any], crash_ms: float, seed: int,
                  write_lateness_ms: float, after_ms: Optional[float] = None) -> Dict[str, Any]:
    """The replayed workload with each eventual read scheduled before the crash (GUARD_MS or more
    before it) sent at its scheduled instant + a shift drawn (the twin's ``seed``) from its gap's
    bin of ``table`` (pooled) + ``write_lateness_ms`` (the twin's mean send -> commit of a write),
    at 0 at the earliest; with ``after_ms`` (the outage's end) also each one scheduled from then
    on, never before it nor after the last scheduled read (the run's end); the reads re-sorted
    with their readers. Unchanged without a replayed workload or a usable table."""
    if "read_arrivals" not in workload or not usable(table):
        return workload
    rng = random.Random(seed)
    everything = [s for b in table["shifts_ms"] for s in b]
    writes = sorted(t for t, *_ in workload.get("write_arrivals", []))
    last = max((t for t, *_ in workload["read_arrivals"]), default=0.0)

    def move(t: float, level: Any) -> float:
        after = after_ms is not None and t >= after_ms
        if not (str(level).lower().endswith("eventual") and (t + GUARD_MS < crash_ms or after)):
            return t
        i = reference_gap(writes, t)
        shifts = table["shifts_ms"][gap_bin(None if i is None else t - writes[i])]
        moved = t + rng.choice(shifts if len(shifts) >= MIN_SHIFTS else everything) + write_lateness_ms
        return min(max(after_ms, moved), max(t, last)) if after else max(0.0, moved)  # type: ignore[type-var]

    return moved_reads(workload, move)


def moved_reads(workload: Dict[str, Any], move: Callable[[float, Any], float]) -> Dict[str, Any]:
    """The replayed workload with each read's instant t (ms) made ``move(t, level)``, in the
    reads' order (a seeded ``move`` draws in it), the reads re-sorted with their readers."""
    readers = workload.get("read_arrival_readers") or [None] * len(workload["read_arrivals"])
    moved = [(move(t, level), session, level, reader)
             for (t, session, level), reader in zip(workload["read_arrivals"], readers)]
    moved.sort(key=lambda read: read[0])
    out = dict(workload, read_arrivals=[read[:3] for read in moved])
    if "read_arrival_readers" in workload:
        out["read_arrival_readers"] = [read[3] for read in moved]
    return out


def summary(table: Dict[str, Any]) -> List[str]:
    """Per bin: the gap range, its count and median shift (log lines)."""
    lines = []
    for b, shifts in enumerate(table["shifts_ms"]):
        low = GAP_EDGES_MS[b] if b < FAR_BIN else GAP_EDGES_MS[-1]
        high = f"{GAP_EDGES_MS[b + 1]:.2f}" if b < FAR_BIN else "inf"
        median = f"{statistics.median(shifts):+.3f}" if shifts else "-"
        lines.append(f"  gap [{low:6.2f}, {high:>6s}) ms: {len(shifts):6d} reads, median shift {median} ms")
    return lines


def main(argv: Any = None, log: Any = print) -> int:
    from fidelity import killtwins

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("json", nargs="+", help="saved kill runs (sim_fidelity.py --scenario kill --json)")
    args = parser.parse_args(argv)
    everything: List[Dict[str, Any]] = []
    for path in args.json:
        with open(path, encoding="utf-8") as fh:
            runs = [run for _, _, run, _ in killtwins.saved_kills(json.load(fh))]
        log(f"{path}: {len(runs)} kills")
        for line in summary(pooled(runs)):
            log(line)
        everything += runs
    if len(args.json) > 1:
        log(f"all files: {len(everything)} kills")
        for line in summary(pooled(everything)):
            log(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
