"""``replikit failover-manager`` and ``replikit switchover``.

    replikit failover-manager (--dir DIR | --primary NAME=DSN --replica NAME=DSN ...)
                              [--interval-ms MS] [--missed N] [--max-lag-bytes B]
                              [--duration S] [--json]
    replikit switchover       (--dir DIR | --primary NAME=DSN --replica NAME=DSN ...)
                              [--candidate NAME] [--json]

Both watch the nodes through a ReplicatedDatabase (its prober) and act through the
FailoverManager. ``--dir`` takes the nodes of a local cluster started by ``replikit cluster up``.
``failover-manager`` runs in the foreground until interrupted (or for --duration seconds) and
prints one line per failover; ``switchover`` switches once and prints the report.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any, Dict, List, Optional, Tuple


def _node(text: str) -> Tuple[str, str]:
    name, sep, dsn = text.partition("=")
    if not sep or not name or not dsn:
        raise argparse.ArgumentTypeError(f"expected NAME=DSN, got {text!r}")
    return name, dsn


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def add_parsers(commands: Any) -> None:
    """Adds both commands to the ``replikit`` subparsers."""
    manager = commands.add_parser(
        "failover-manager", help="watch the primary and fail over when it fails",
        description="Watch the primary and fail over when it fails: fence, promote, epoch, "
                    "slots, repoint. Runs until interrupted.")
    switch = commands.add_parser(
        "switchover", help="planned switchover to a replica (zero loss)",
        description="Hold writes, wait until the candidate replayed everything, switch.")
    for sub in (manager, switch):
        sub.add_argument("--dir", help="a cluster directory of `replikit cluster up`")
        sub.add_argument("--primary", type=_node, metavar="NAME=DSN", help="the primary")
        sub.add_argument("--replica", type=_node, action="append", default=[], metavar="NAME=DSN",
                         help="a replica (repeat for each)")
        sub.add_argument("--json", action="store_true", help="print reports as JSON")
    manager.add_argument("--interval-ms", type=_positive, default=100.0,
                         help="probe interval in ms (default 100)")
    manager.add_argument("--missed", type=int, default=3, help="missed probes that fail the primary (default 3)")
    manager.add_argument("--max-lag-bytes", type=int, default=None,
                         help="never promote a replica further behind (default: no limit)")
    manager.add_argument("--duration", type=_positive, default=None, metavar="S",
                         help="stop after S seconds (default: run until interrupted)")
    switch.add_argument("--candidate", default=None, help="the replica to promote (default: the plan's choice)")


def _nodes(args: argparse.Namespace) -> Tuple[Tuple[str, str], List[Tuple[str, str]]]:
    if args.dir:
        from .testing import LocalCluster

        cluster = LocalCluster.attach(args.dir)
        primary = next(n for n, node in cluster.nodes.items() if node.role == "primary")
        replicas = [(n, cluster.dsn(n)) for n in cluster.nodes if n != primary]
        return (primary, cluster.dsn(primary)), replicas
    if args.primary is None:
        raise ValueError("give --dir, or --primary NAME=DSN and --replica NAME=DSN")
    return args.primary, list(args.replica)


def report_dict(report: Any) -> Dict[str, Any]:
    """A FailoverReport as plain data (for --json)."""
    return {"kind": report.kind, "old_primary": report.old_primary, "promoted": report.promoted,
            "reason": report.reason, "detection_ms": report.detection_ms,
            "promotion_ms": report.promotion_ms, "writable_ms": report.writable_ms,
            "total_ms": report.total_ms, "write_pause_ms": report.write_pause_ms,
            "repointed": list(report.repointed), "timeline": report.timeline,
            "next_xid": report.next_xid, "lost_xids": report.lost_writes.lost_xids,
            "actions": [{"action": a.action, "node": a.node, "ok": a.ok, "changed": a.changed,
                         "detail": a.detail, "elapsed_ms": a.elapsed_ms} for a in report.actions]}


def _print(report: Any, as_json: bool) -> None:
    print(json.dumps(report_dict(report)) if as_json else repr(report), flush=True)


def run(args: argparse.Namespace) -> int:
    from . import _core

    primary, replicas = _nodes(args)
    interval = getattr(args, "interval_ms", 100.0)
    db = _core.ReplicatedDatabase(primary, replicas, probe_interval_ms=interval,
                                  probe_timeout_ms=max(1.0, interval * 2))
    try:
        if args.command == "switchover":
            manager = _core.FailoverManager(db)
            report = manager.switchover(args.candidate)
            _print(report, args.json)
            return 0 if report.promoted else 1
        detector = _core.DetectorConfig(interval_ms=interval, missed_threshold=args.missed)
        manager = _core.FailoverManager(db, detector=detector, max_lag_bytes=args.max_lag_bytes)
        manager.start()
        deadline = None if args.duration is None else time.monotonic() + args.duration
        seen = 0
        try:
            while deadline is None or time.monotonic() < deadline:
                manager.wait_reports(seen + 1, 200.0)
                reports = manager.reports()
                for report in reports[seen:]:
                    _print(report, args.json)
                seen = len(reports)
        except KeyboardInterrupt:
            pass
        manager.stop()
        return 0
    finally:
        db.close()


def main(args: argparse.Namespace) -> int:
    """Runs the command; errors of the library print as `replikit: error: ...` (status 1)."""
    try:
        return run(args)
    except (ValueError, RuntimeError) as exc:
        print(f"replikit: error: {exc}", file=sys.stderr)
        return 1
