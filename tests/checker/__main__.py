"""Command line: ``python -m tests.checker --minutes 30 --seed 7`` (from the repository root)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import List, Optional

from .campaign import CampaignOptions, run_campaign
from .faults import FAULT_KINDS

LIMITS = {"minutes": (0.05, 24 * 60), "sessions": (1, 64), "round_seconds": (5, 3600),
          "max_ops": (1000, 5_000_000), "psycopg_every": (0, 64)}


def _bounded(name: str, kind: type):
    low, high = LIMITS[name]

    def parse(text: str):
        value = kind(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{name} must be in [{low}, {high}], got {text}")
        return value
    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tests.checker",
        description="Run a fault-injection campaign against a local PostgreSQL cluster "
                    "(primary + 2 replicas) through replikit, and check the recorded history: "
                    "acknowledged writes present exactly once, read-your-writes / monotonic / "
                    "causal reads, bounded staleness, writes only on the primary of their "
                    "epoch. Exit status 0 when there are no violations, 1 otherwise.")
    p.add_argument("--minutes", type=_bounded("minutes", float), default=1.0,
                   help="workload time, in [0.05, 1440] (default 1)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the fault schedule and of every session's choices "
                        "(default: from the clock; printed)")
    p.add_argument("--sessions", type=_bounded("sessions", int), default=8,
                   help="concurrent sessions (threads), in [1, 64] (default 8)")
    p.add_argument("--psycopg-every", type=_bounded("psycopg_every", int), default=4,
                   metavar="N", help="every N-th session goes through PsycopgRouter, N in "
                                     "[0, 64] (0: none; default 4)")
    p.add_argument("--mode", choices=("async", "sync", "remote_apply"), default="async",
                   help="replication mode of the cluster (default async)")
    p.add_argument("--faults", default=",".join(FAULT_KINDS),
                   help=f"comma-separated fault kinds, or 'none' (default all: "
                        f"{','.join(FAULT_KINDS)})")
    p.add_argument("--round-seconds", type=_bounded("round_seconds", float), default=60.0,
                   help="length of one round (fresh sessions and keys, checked at its end), "
                        "in [5, 3600] (default 60)")
    p.add_argument("--max-ops", type=_bounded("max_ops", int), default=400_000,
                   help="bound of one round's in-memory history, in [1000, 5000000]; a round "
                        "that reaches it ends early (default 400000)")
    p.add_argument("--out-dir", default=".",
                   help="where a failing round's history is saved as JSON lines (default .)")
    p.add_argument("--replay", metavar="FILE",
                   help="re-check a saved history, then rerun its campaign with its seed and "
                        "options (thread interleavings differ; faults and choices repeat)")
    p.add_argument("--check-only", action="store_true",
                   help="with --replay: only re-check the saved history")
    p.add_argument("--json", metavar="FILE", help="also write the summary to FILE")
    return p


def _recheck(path: str) -> "tuple[dict, int]":
    from . import checkers
    from .history import load

    meta, ops = load(path)
    violations = checkers.check_all(ops, float(meta.get("tolerance_ms", 0.0)))
    print(json.dumps({"file": path, "seed": meta.get("seed"),
                      "summary": checkers.summarize(ops, violations),
                      "first_violations": violations[:20]}, indent=2))
    return meta, len(violations)


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    if args.replay:
        meta, found = _recheck(args.replay)
        if args.check_only:
            return 1 if found else 0
        saved = dict(meta.get("options", {}))
        options = CampaignOptions(**saved)
        options.out_dir = args.out_dir
    else:
        faults = [] if args.faults == "none" else [f for f in args.faults.split(",") if f]
        unknown = set(faults) - set(FAULT_KINDS)
        if unknown:
            parser().error(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")
        seed = args.seed if args.seed is not None else time.time_ns() % 1_000_000
        options = CampaignOptions(
            seed=seed, seconds=args.minutes * 60.0, round_seconds=args.round_seconds,
            sessions=args.sessions, psycopg_every=args.psycopg_every, mode=args.mode,
            faults=faults, max_ops=args.max_ops, out_dir=args.out_dir)
    summary = run_campaign(options, log=lambda line: print(
        f"[{time.strftime('%H:%M:%S')}] {line}", flush=True))
    text = json.dumps(summary, indent=2, sort_keys=True)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    print(f"rerun: python -m tests.checker --seed {options.seed} --minutes "
          f"{options.seconds / 60:g} --mode {options.mode}")
    return 1 if summary["violation_count"] or summary["harness_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
