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
  carries its own rows' gap where the readers' carries the session rows';
- the schedules' density of eventual reads NEAR_MS after a session write's scheduled instant,
  against a Poisson stream's (schedule_density): a twin replaying them to the microsecond took
  its stale share from there (killtwins.dithered_reads);
- the stale reads the readers' share by send offset gives on the run's own send and INSERT
  instants against on the scheduled ones with each read's and each INSERT's lateness drawn
  independently (independent_ratio): below 1, the real reads and writes close in time pushed
  each other apart (the shared machine); the twins with dithered reads, their latencies
  independent, did not; the twins now draw the readers' measured lateness around the session
  writes (fidelity.readshift).

What the reads saved read by read showed (moved here from fidelity/killreads.py):

Read by read (read_records, saved with each kill; fidelity/stalereads.py compares the readers'
and the probe's stale shares by send offset from a row's INSERT): the eventual reads before the
kill, the session writer's and the probe's rows with their INSERT instants, and the probe rows' own
INSERT -> COMMIT (probe_commit_lag_ms). The 960 kills saved before held counts only; re-predicted
with the matched per-write delays, their twins still over-predicted the stale share before the
kill by ~10% (quiet and loaded alike), and the files' errors spread a little more than their kills'
sampling (fidelity/pool.py: Cochran's Q, p = 0.025; 0.07 before), not with the load. A read sent in a row's
INSERT -> COMMIT is stale against it, so the probe's delays carry its own rows' gap where the readers
meet the session rows': in the 4 kills of two test runs the probe rows' mean gap was 0.18, 0.23, 0.13
and 0.19 ms against the session writer's 0.11, 0.13, 0.24 and 0.11 ms (medians alike, 0.05-0.11 ms;
heavy tails, not settled). pool.py --gap-excess takes the excess off the delays (a what-if).
The first 240 kills saved read by read (seeds 4000..4079, load 1-2; stalereads.py): their twins'
+18.5% before the kill followed the schedules' chance pairs of an eventual read 0.1-0.5 ms after a
session write, 1.20, 1.12, 0.65 and 1.10 times a Poisson stream's density in the four files (+23.9%,
+13.1%, +0.2%, +38.3%; between the files Q = 10.6, p = 0.014): the twin's requests keep their
scheduled instants to ~0.1 ms, the real ones do not (a session row's INSERT 0.22-0.47 ms after its
schedule, 10-90%, later when a read was scheduled within 0.2 ms of it). The twin now dithers its
eventual reads before the crash (killtwins.dithered_reads), and its replay, 0.01 ms per write on top
of delays measured to a read's seeing the row (+3.5%), takes no time (killtwins.APPLY_RATE_PER_S):
+6.8%, +4.7%, +13.3%, +25.8% (Q = 3.6, p = 0.31), pooled +13.0% [+3.9, +24.0]; the 360 kills of
final8 and campaign runs 11-14, +13.1% -> +11.9%. What remained (the twins now draw it: fidelity.readshift): on the shared 2-core
machine a read and a write close in time push each other apart (the readers' stale share by send
offset applied to the same schedules, the reads' and the INSERTs' lateness drawn independently,
gives 15%, 14%, 16% and 26% more stale reads than the four files had); the probe's and the session
rows' INSERT -> COMMIT agreed there (means 0.070/0.065, 0.079/0.073, 0.116/0.102, 0.125/0.115 ms).
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
NEAR_MS = (0.1, 0.5)  # a twin's eventual read reaching a replica within a delay after a commit
REDRAWS = 5  # independent_ratio's draws of the lateness per pair
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


def _schedules(run: Dict[str, Any]) -> Tuple[Any, Any]:
    """The run's scheduled session writes and eventual reads (ms; killreads.workload_arrivals)."""
    import numpy as np

    from fidelity.killreads import workload_arrivals

    arrivals = workload_arrivals(int(run["seed"]))
    writes = np.asarray([t for t, _ in arrivals["write_arrivals"]], dtype=float)
    reads = np.asarray(sorted(t for t, _, level in arrivals["read_arrivals"] if level == "eventual"), dtype=float)
    return writes, reads


def schedule_density(runs: List[Dict[str, Any]]) -> float:
    """Pairs of a scheduled eventual read NEAR_MS after a scheduled session write (reads in
    [WARM_S, kill)) over a Poisson stream's expectation at SESSION_WRITE_RATE; nan without runs
    saved with their seed and kill instant."""
    import numpy as np

    from fidelity.killreads import SESSION_WRITE_RATE, WARM_S

    pairs = expected = 0.0
    for run in runs:
        if "seed" not in run or "kill_s" not in run:
            continue
        writes, reads = _schedules(run)
        reads = reads[(reads >= WARM_S * 1000.0) & (reads < run["kill_s"] * 1000.0)]
        low, high = NEAR_MS
        pairs += float((np.searchsorted(writes, reads - low, side="right")
                        - np.searchsorted(writes, reads - high, side="right")).sum())
        expected += reads.size * SESSION_WRITE_RATE / 1000.0 * (high - low)
    return pairs / expected if expected else float("nan")


def independent_ratio(runs: List[Dict[str, Any]], seed: int = 1) -> float:
    """The readers' stale share by send offset (binned as ``summary``) summed over every replica
    eventual read before the kill and every session row on the run's own instants (send, INSERT),
    over the same sum on the scheduled instants with each read's lateness (send - schedule) and each
    row's (INSERT - schedule) drawn independently from the run's (REDRAWS draws per pair); nan
    without runs saved with their seed and kill instant."""
    import numpy as np

    rng = np.random.default_rng(seed)
    edges = np.asarray(EDGES_MS)
    share = np.asarray([k / n if n else 0.0 for _, _, n, k in binned([p for run in runs for p in reader_pairs(run)])])

    def stale(x: Any) -> float:
        i = np.searchsorted(edges, x, side="right") - 1
        return float(np.where((i >= 0) & (i < share.size), share[np.clip(i, 0, share.size - 1)], 0.0).sum())

    actual = redrawn = 0.0
    for run in runs:
        if "seed" not in run or "kill_s" not in run or not run.get("eventual_reads_before"):
            continue
        writes, scheduled = _schedules(run)
        rows = sorted((float(at) * 1000.0, int(row_id)) for at, row_id in run["session_rows"])
        inserts = np.asarray([at for at, _ in rows])
        late_w = np.asarray([at - writes[i - 1] for at, i in rows
                             if 1 <= i <= writes.size and writes[i - 1] < run["kill_s"] * 1000.0])
        sent = np.asarray([r[0] * 1000.0 for r in run["eventual_reads_before"] if r[2] != "primary"])
        if sent.size == 0 or late_w.size == 0:
            continue
        mine = scheduled[np.clip(np.searchsorted(scheduled, sent, side="right") - 1, 0, None)]
        late_r = sent - mine
        for t_sent, t_mine in zip(sent, mine):
            lo, hi = np.searchsorted(inserts, [t_sent - X_AFTER_MS, t_sent + X_BEFORE_MS])
            actual += stale(t_sent - inserts[lo:hi])
            lo, hi = np.searchsorted(writes, [t_mine - X_AFTER_MS - 1.0, t_mine + X_BEFORE_MS + 1.0])
            near = writes[lo:hi]
            for _ in range(REDRAWS):
                redrawn += stale(t_mine + rng.choice(late_r) - near - rng.choice(late_w, near.size)) / REDRAWS
    return actual / redrawn if redrawn else float("nan")


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
            "twin_delay_mean": statistics.fmean(delays) if delays else float("nan"),
            "schedule_density": schedule_density(runs), "independent_ratio": independent_ratio(runs)}


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
    log(f"  scheduled eventual reads {NEAR_MS[0]}-{NEAR_MS[1]} ms after a session write: {s['schedule_density']:.3f} "
        f"times a Poisson stream's; stale reads on the run's instants over those with independent lateness: "
        f"{s['independent_ratio']:.3f}")


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
