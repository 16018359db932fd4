"""Saved kill runs from before the client's switch was recorded (killreads.SwitchWatch), given the
switch their probe records show, so that their twins can be re-predicted with it (pool.py).

    .venv/bin/python benchmarks/fidelity/killswitch.py IN.json OUT.json

replikit's prober adopts a promoted node at the probe that finds it out of recovery, before the
FailoverManager's own promotion returns: from then on the client writes to it. The lag sampler
recorded that probe (ProbeRecord: its answer, and the node's role at the sampler's look), so the
first record of the promoted node as the primary gives the switch: in 280 kills that also polled it,
within 1 ms at the median (-32..+69 ms in all). Each kill without client_switch_s gets it and
recovered_s (its first acknowledged write: the outage's end less switch_ms), marked
client_switch_estimated; a kill whose records show no promoted node is left as it was.

The switch and the new primary's acknowledgements in the real runs (moved here from
fidelity/killreads.py, which records them):

When writes first reached the new primary, polled from the kill on (SwitchWatch, every 1 ms;
writes_reached, per kill): the client's switch (client_switch_s), next to the manager's report of
the promotion, the first write committed there and the session writer's first row after the kill;
and the reads and session rows around the recovery (killtwins.around_recovery). The client
switches when its prober finds the promoted node out of recovery, before the manager's pg_promote
returns. An asynchronous new primary acknowledges at once, and the switch follows the first
acknowledged write (switch_ms). A synchronous one (the manager carried the setting over) commits
what it is sent at once but acknowledges the first write only once the survivor streams: in 279
of 280 kills (seeds 3000..3139, semi-sync and sync, load 2-5) the client switched before that
write, a median 106 ms (up to 807). The survivor's eventual reads meanwhile miss the session writer's first
row there: of the 1483 outage reads sent after it (seeds 3040..3139), 1409 were stale, all but 4
of them on the survivor; 16 of the outage's 2026 stale reads missed an acknowledged write. The readers
judge against the row's INSERT clock, acknowledged or not, as the simulator judges against its
commits. wait_repointed, polling from the acknowledgement, read such a switch as ~1 ms (clipped at
0), so the twin, promoted there, had no span of writes committed but not acknowledged: on runs
11-14, 0.4% stale predicted against 7.3% measured. The twin is now promoted at the client's switch
(killtwins.promotion_timing; exactly there, its own detection kept: promote_at_switch), its
survivor streams when the real one had caught up, and its outage window ends where the real one
did (SimConfig.outage_after_promotion_ms after its promotion). Runs saved without the record keep
the old timing; fidelity/killswitch.py gives them the switch from
their probe records (the first record of the promoted node as the primary: within 1 ms of the
polled switch at the median, -32..+69 ms at worst, over those 280 kills).
The twin also sends its requests as the real threads do (killtwins.replayed_workload's clients:
SimConfig.sequential_writes, read_arrival_readers): one writer and two readers, each waiting for
its last request. While the first write on a synchronous new primary waits, the writer's next
writes wait behind it, and a reader whose read-your-writes read waits for that session's write
sends its next reads only after it, once the survivor has the rows: without that, the twins put
those reads in the outage and predicted its stale share +38% on seeds 3000..3059; with it, +4%.
On the 280 kills: 14.9% stale measured, 15.8% predicted, +6% [-1, +14] (0.7%, -96%, before).

The new primary acknowledges as the real one did (SimConfig.mode_after_promotion,
killtwins.mode_after_promotion): each run records whether replikit's FailoverManager carried the
synchronous setting over to it (sync_carried, with the synchronous_standby_names it set; the
manager's keep_synchronous, on by default); if so the twin keeps the run's mode after the
promotion, else "async", as for the saved runs from before the manager carried it (a promoted
standby keeps its own synchronous_standby_names, empty). A synchronous twin whose real new primary
was asynchronous held its first writes until the survivor streamed again (~55 ms), and their
sessions' read-your-writes reads went to the survivor on their older tokens (the primary's read
share after the recovery: -9% and -11% in the semi-sync and sync modes, -4% in async, on 180 kills).
"""

from __future__ import annotations

import json
import sys
from typing import Any, Dict, Optional


def promote_at_switch(run: Dict[str, Any], detection_ms: float) -> Optional[float]:
    """The twin's promote_ms that ends its promotion at the real client's switch, ``detection_ms``
    (the twin's own, SimResult.failover) after its crash: (client_switch_s - kill_s) less it, never
    below 0; None for runs saved without the polled switch (they keep promotion_timing's).

    promotion_timing alone put the promotion at the twin's detection + the mode's median
    detection -> first acknowledged write of the write-only kills + the run's lead of the switch
    over that write. Under the readers' load the real promotion is slower than in the write-only
    kills: on 180 quiet kills (seeds 6000-6040) the real switch came after the twin's promotion
    by a median 12-31 ms in 5 of the 6 runs' semi-sync and sync kills (-3 ms in one; async -10 to
    +14 ms), so the twin's outage held fewer reads before the switch, where nothing new is missed,
    and its eventual reads after the switch lay earlier in the replayed schedule. Outage stale
    share, error of the prediction (pool.py --repredict --read-shifts held-out), promoted by the
    model -> at the switch: semi-sync +27% -> +1.5%, sync +11% -> -1.7% (15.59% and 15.33%
    measured); on 300 loaded kills (seeds 5000-5080) +15% -> +0.6% and +21% -> +2.7%. Split at
    the switch (semi-sync, quiet): eventual reads before / after it 2203 / 549 measured, 2206 /
    540 predicted; stale 0% / 78% measured, 0.4% / 79% predicted. The outage's length is then
    an input of the read twins; the model's own (the detector's timing and the median promotion)
    is still what sim_run_counts reports as the twin's outage_ms_mean (the check), and the
    write-only kills compare detection and recovery."""
    switch_s = run.get("client_switch_s")
    if switch_s is None or run.get("recovered_s") is None:
        return None
    return max(0.0, (switch_s - run["kill_s"]) * 1000.0 - detection_ms)


def switch_from_records(run: Dict[str, Any]) -> Optional[float]:
    """The answer (s from t0) of the first probe that found the promoted node the primary, or None."""
    records = run.get("probe_records") or {}
    for node in ("r1", "r2"):
        answers = [rec[1] for rec in records.get(node, {}).values() if rec[2]]
        if answers:
            return min(answers)
    return None


def with_switch(run: Dict[str, Any]) -> bool:
    """Adds the estimated switch to a saved kill lacking it; whether it did."""
    if run.get("client_switch_s") is not None:
        return False
    switch = switch_from_records(run)
    if switch is None:
        return False
    run["recovered_s"] = run["kill_s"] + (run["outage_ms"] - run["switch_ms"]) / 1000.0
    run["client_switch_s"] = switch
    run["client_switch_estimated"] = True
    return True


def main(argv: Any = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        raise SystemExit(__doc__)
    with open(args[0], encoding="utf-8") as fh:
        saved = json.load(fh)
    changed = 0
    for result in saved.get("modes", {}).values():
        for run in (result.get("reads") or {}).get("real", {}).get("runs", []):
            changed += with_switch(run)
    with open(args[1], "w", encoding="utf-8") as fh:
        json.dump(saved, fh)
    print(f"{args[0]} -> {args[1]}: the client's switch estimated for {changed} kills")
    return 0


if __name__ == "__main__":
    sys.exit(main())
