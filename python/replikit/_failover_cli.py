"""``replikit failover-manager`` and ``replikit switchover``.

    replikit failover-manager (--dir DIR | --primary NAME=DSN --replica NAME=DSN ...)
                              [--interval-ms MS] [--missed N] [--max-lag-bytes B]
                              [--duration S] [--no-keep-synchronous] [--json]
    replikit failover-manager --etcd URL[,URL...] [--etcd-prefix P] [--etcd-name NAME]
                              [--ttl-ms MS] [--write-config] [nodes as above, or from etcd]
    replikit switchover       (--dir DIR | --primary NAME=DSN --replica NAME=DSN ...)
                              [--candidate NAME] [--no-keep-synchronous] [--json]

Both watch the nodes through a ReplicatedDatabase (its prober) and act through the
FailoverManager. ``--dir`` takes the nodes of a local cluster started by ``replikit cluster up``.
``failover-manager`` runs in the foreground until interrupted (or for --duration seconds) and
prints one line per failover; ``switchover`` switches once and prints the report.
``--no-keep-synchronous`` leaves the new primary asynchronous (FailoverManager's
keep_synchronous=False); by default it gets the old primary's synchronous_standby_names over the
surviving standbys before its promotion.

With ``--etcd`` the manager runs under an EtcdCoordinator (replikit.coordination): it acts only
while this host holds the etcd lease, and follows the topology the leader publishes. The
cluster's settings (members, detector, max_lag_bytes) come from ``<prefix>/config``;
``--write-config`` writes them there first from this command line. TLS files come from
``--etcd-ca-file``/``--etcd-cert-file``/``--etcd-key-file``; a user from ``--etcd-user`` with its
password from the environment variable REPLIKIT_ETCD_PASSWORD (never from the command line).
"""

from __future__ import annotations

import argparse
import json
import math
import os
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
        # None unless given: the default stays FailoverManagerOptions' (on).
        sub.add_argument("--no-keep-synchronous", dest="keep_synchronous", action="store_false", default=None,
                         help="leave the new primary asynchronous (default: before the promotion it gets the "
                              "old primary's synchronous_standby_names, over the surviving standbys)")
    manager.add_argument("--interval-ms", type=_positive, default=100.0,
                         help="probe interval in ms (default 100)")
    manager.add_argument("--missed", type=int, default=3, help="missed probes that fail the primary (default 3)")
    manager.add_argument("--max-lag-bytes", type=int, default=None,
                         help="never promote a replica further behind (default: no limit)")
    manager.add_argument("--duration", type=_positive, default=None, metavar="S",
                         help="stop after S seconds (default: run until interrupted)")
    manager.add_argument("--etcd", default=None, metavar="URL[,URL...]",
                         help="coordinate with the other hosts through these etcd endpoints")
    manager.add_argument("--etcd-prefix", default="/replikit/default", help="the cluster's etcd prefix")
    manager.add_argument("--etcd-name", default=None, help="this host's name (default: hostname-pid)")
    manager.add_argument("--ttl-ms", type=_positive, default=2000.0,
                         help="the leader lease's TTL, whole seconds (default 2000)")
    manager.add_argument("--write-config", action="store_true",
                         help="write the nodes and settings of this command line to <prefix>/config")
    for option in ("ca-file", "cert-file", "key-file", "user"):
        manager.add_argument(f"--etcd-{option}", default=None)
    switch.add_argument("--candidate", default=None, help="the replica to promote (default: the plan's choice)")


def _nodes(args: argparse.Namespace) -> Tuple[Tuple[str, str], List[Tuple[str, str]]]:
    if args.dir:
        from .testing import LocalCluster

        cluster = LocalCluster.attach(args.dir)
        primary = next(n for n, node in cluster.nodes.items() if node.role == "primary")
        replicas = [(n, cluster.dsn(n)) for n in cluster.nodes if n != primary]
        return (primary, cluster.dsn(primary)), replicas
    if args.primary is None and getattr(args, "etcd", None):
        config = _etcd_config(args)
        if config is not None and config.members:
            members = list(config.members.items())
            return members[0], members[1:]
    if args.primary is None:
        raise ValueError("give --dir, or --primary NAME=DSN and --replica NAME=DSN (or members in etcd)")
    return args.primary, list(args.replica)


def _etcd_client(args: argparse.Namespace) -> Any:
    from .etcd import EtcdClient

    password = os.environ.get("REPLIKIT_ETCD_PASSWORD") if args.etcd_user else None
    return EtcdClient([u for u in args.etcd.split(",") if u], ca_file=args.etcd_ca_file,
                      cert_file=args.etcd_cert_file, key_file=args.etcd_key_file,
                      username=args.etcd_user, password=password)


def _etcd_config(args: argparse.Namespace) -> Any:
    from .coordination import read_config

    with _etcd_client(args) as client:
        return read_config(client, args.etcd_prefix)


def _write_config(args: argparse.Namespace, primary: Tuple[str, str], replicas: List[Tuple[str, str]]) -> None:
    from .coordination import ClusterConfig, put_config

    config = ClusterConfig(members=dict([primary, *replicas]),
                           detector={"interval_ms": args.interval_ms, "missed_threshold": args.missed},
                           max_lag_bytes=args.max_lag_bytes)
    with _etcd_client(args) as client:
        put_config(client, args.etcd_prefix, config)


def manager_options(args: argparse.Namespace) -> Dict[str, Any]:
    """The FailoverManager options of the command line (those not given keep their defaults)."""
    options: Dict[str, Any] = {}
    if getattr(args, "max_lag_bytes", None) is not None:
        options["max_lag_bytes"] = args.max_lag_bytes
    if args.keep_synchronous is not None:
        options["keep_synchronous"] = args.keep_synchronous
    return options


def _coordinated(args: argparse.Namespace, db: Any, detector: Any) -> Any:
    """The EtcdCoordinator of --etcd (its manager acts only while this host leads)."""
    from .coordination import EtcdCoordinator

    return EtcdCoordinator(db, client=_etcd_client(args), prefix=args.etcd_prefix, name=args.etcd_name,
                           ttl_ms=args.ttl_ms, detector=detector, **manager_options(args))


def report_dict(report: Any) -> Dict[str, Any]:
    """A FailoverReport as plain data (for --json)."""
    return {"kind": report.kind, "old_primary": report.old_primary, "promoted": report.promoted,
            "reason": report.reason, "detection_ms": report.detection_ms,
            "promotion_ms": report.promotion_ms, "writable_ms": report.writable_ms,
            "total_ms": report.total_ms, "write_pause_ms": report.write_pause_ms,
            "drained_in_flight": report.drained_in_flight, "cut_in_flight": report.cut_in_flight,
            "drain_ms": report.drain_ms, "synchronous_standby_names": report.synchronous_standby_names,
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
            manager = _core.FailoverManager(db, **manager_options(args))
            report = manager.switchover(args.candidate)
            _print(report, args.json)
            return 0 if report.promoted else 1
        detector = _core.DetectorConfig(interval_ms=interval, missed_threshold=args.missed)
        coordinator = None
        if args.etcd:
            if args.write_config:
                _write_config(args, primary, replicas)
            coordinator = _coordinated(args, db, detector).start()
            manager = coordinator.manager
        else:
            manager = _core.FailoverManager(db, detector=detector, **manager_options(args))
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
        if coordinator is not None:
            print(repr(coordinator.status()), file=sys.stderr, flush=True)
            coordinator.stop()
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
