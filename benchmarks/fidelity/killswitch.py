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
"""

from __future__ import annotations

import json
import sys
from typing import Any, Dict, Optional


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
