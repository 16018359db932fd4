"""The ``replikit`` command line.

    replikit --version
    replikit demo           [--in-process] [--seed N]
    replikit monitor        [DSN ...] [--node NAME=DSN] [--config FILE] [--dir DIR]
                            [--once] [--json] [--prometheus-port P] [--on-alert CMD] ...
    replikit cluster up     [--dir DIR] [--replicas N] [--mode MODE]
                            [--sync-count K] [--base-port P] [--timeout S] [--json]
    replikit cluster status [--dir DIR] [--json]
    replikit cluster down   [--dir DIR] [--keep]
    replikit cluster rejoin NODE [--dir DIR] [--timeout S]
    replikit plan           --writes-per-s W --reads-per-s R [...] [--measure DSN] [--json]
    replikit failover-manager / switchover   (see replikit._failover_cli)

``cluster up`` starts a local PostgreSQL 15 primary with streaming replicas in DIR
(default ./.replikit-cluster) and leaves it running; its description is kept in
DIR/cluster.json, which ``status`` and ``down`` read. ``cluster down --keep`` stops it and
keeps its data; ``cluster up`` on that directory starts it again with that data.
``cluster rejoin NODE`` brings an old primary back after a failover, as a replica of the
current primary, with pg_rewind.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from . import __version__, _failover_cli
from .testing.cluster import MAX_REPLICAS
from .testing.directory import DESCRIPTION_FILE
from .testing.nodes import MODES, PORT_LIMITS, mode_settings

if TYPE_CHECKING:
    from .testing import LocalCluster

DEFAULT_DIR = ".replikit-cluster"


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer in {low}-{high}, got {text}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="replikit", description="replikit: client-side database replication tools")
    parser.add_argument("--version", action="version", version=f"replikit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    commands.add_parser("demo", add_help=False,
                        help="run the demo (options: see `replikit demo --help`)")
    commands.add_parser("plan", add_help=False,
                        help="plan how many replicas a workload needs (options: `replikit plan --help`)")
    commands.add_parser("monitor", add_help=False,
                        help="watch a cluster's lag, routing and alerts (see `replikit monitor --help`)")
    _failover_cli.add_parsers(commands)
    cluster = commands.add_parser(
        "cluster", help="start, inspect and stop a local PostgreSQL cluster for testing",
        description="A local PostgreSQL 15 primary with streaming replicas on loopback.")
    actions = cluster.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    def add_dir(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--dir", default=DEFAULT_DIR,
                         help=f"cluster directory (default ./{DEFAULT_DIR})")

    up = actions.add_parser(
        "up", help="start a cluster (or a stopped one again) and leave it running",
        description="Start a cluster in DIR and leave it running. When DIR holds a cluster "
                    "stopped with `down --keep`, start that one again with its data.")
    add_dir(up)
    up.add_argument("--replicas", type=_int_in(0, MAX_REPLICAS), default=None, metavar="N",
                    help=f"number of streaming replicas, 0-{MAX_REPLICAS} (default 2)")
    up.add_argument("--mode", choices=MODES, default=None,
                    help="replication mode (default async): semi_sync = ANY 1, sync = ANY k, "
                         "sync_all = FIRST n (every standby), remote_apply = ANY k + "
                         "remote_apply")
    up.add_argument("--sync-count", type=_int_in(1, MAX_REPLICAS), default=None, metavar="K",
                    help="k in synchronous_standby_names = 'ANY k (...)' for sync and "
                         "remote_apply, 1-N (default 1)")
    up.add_argument("--base-port", type=_int_in(*PORT_LIMITS), default=None, metavar="P",
                    help=f"first port to try, {PORT_LIMITS[0]}-{PORT_LIMITS[1]} (default: a random port "
                         "in 20000-29999; 5432 is never used)")
    up.add_argument("--timeout", type=_seconds, default=30.0, metavar="S",
                    help="seconds to wait for each step of the start-up, > 0 (default 30)")
    up.add_argument("--json", action="store_true", help="print the description as JSON")
    up.set_defaults(parser=up)

    status = actions.add_parser("status", help="show each node's role, port, LSNs, state")
    add_dir(status)
    status.add_argument("--json", action="store_true", help="print JSON")

    down = actions.add_parser("down", help="stop the cluster and remove its directory "
                                           "(or keep it with --keep)")
    add_dir(down)
    down.add_argument("--keep", action="store_true",
                      help="keep the directory and its data (nodes are stopped cleanly, -m fast); "
                           "`up` starts it again")
    rejoin = actions.add_parser(
        "rejoin", help="bring an old primary back as a replica of the current primary "
                       "(pg_rewind)",
        description="After a failover, rewind the old primary NODE with pg_rewind and start "
                    "it as a streaming replica of the current primary.")
    rejoin.add_argument("node", metavar="NODE", help="the old primary (e.g. primary)")
    add_dir(rejoin)
    rejoin.add_argument("--timeout", type=_seconds, default=60.0, metavar="S",
                        help="seconds to wait for each step, > 0 (default 60)")
    return parser


def _check_up(args: argparse.Namespace) -> None:
    """Cross-flag checks of ``cluster up``, naming the flags as typed."""
    replicas = 2 if args.replicas is None else args.replicas
    if args.mode not in (None, "async"):
        if replicas == 0:
            args.parser.error(f"argument --mode: {args.mode} needs at least one replica "
                              "(got --replicas 0)")
        if args.sync_count is not None and args.sync_count > replicas:
            args.parser.error(f"argument --sync-count: expected an integer in 1-{replicas} "
                              f"(at most --replicas), got {args.sync_count}")


def _kept(args: argparse.Namespace) -> bool:
    """Does ``--dir`` hold a cluster description (a cluster kept by ``down --keep``)?"""
    return os.path.exists(os.path.join(args.dir, DESCRIPTION_FILE))


def _cluster_up(args: argparse.Namespace) -> int:
    from .testing import LocalCluster

    timeout_ms = args.timeout * 1000.0
    if _kept(args):
        cluster = LocalCluster.attach(args.dir)
        running = [n for n in cluster.nodes if cluster.is_up(n)]
        if running:
            print(f"replikit: error: {cluster.base_dir} already holds a running cluster: "
                  f"stop it first (`replikit cluster down --dir {cluster.base_dir}`)",
                  file=sys.stderr)
            return 1
        _refuse_other_shape(cluster, args)
        cluster.start_all(timeout_ms=timeout_ms)
        verb = "started again (with its data)"
    else:
        mode = args.mode or "async"
        cluster = LocalCluster(args.dir, replicas=2 if args.replicas is None else args.replicas,
                               mode=mode, sync_count=args.sync_count or 1,
                               base_port=args.base_port, persistent=True, remove_dir=False,
                               startup_timeout_ms=timeout_ms)
        verb = "up"
    if args.json:
        print(json.dumps({**cluster.description(), "dsns": cluster.dsns()}, indent=1))
        return 0
    mode = cluster.mode
    if mode != "async":
        names = mode_settings(mode, cluster.sync_count, cluster.replica_names)
        mode += ", " + names["synchronous_standby_names"].strip("'").split(" (")[0]
    print(f"replikit: cluster {verb} in {(cluster.startup_ms or 0.0) / 1000:.2f} s in "
          f"{cluster.base_dir} ({mode})")
    width = max(len(n) for n in cluster.nodes)
    for name, dsn in cluster.dsns().items():
        print(f"{name:<{width}}  {dsn}")
    print(f"stop it with: replikit cluster down --dir {cluster.base_dir}")
    return 0


class _UsageError(Exception):
    """A flag contradicts the cluster kept in --dir."""


def _refuse_other_shape(cluster: "LocalCluster", args: argparse.Namespace) -> None:
    """A kept cluster starts again as it was: flags asking for another shape are errors."""
    wanted = {"--replicas": (args.replicas, len(cluster.replica_names)),
              "--mode": (args.mode, cluster.mode),
              "--sync-count": (args.sync_count, cluster.sync_count)}
    for flag, (asked, kept) in wanted.items():
        if asked is not None and asked != kept:
            raise _UsageError(
                f"argument {flag}: {args.dir} holds a stopped cluster with {flag} {kept}; it "
                f"starts again as it was. Remove it first (`replikit cluster down --dir "
                f"{args.dir}`) to make a new one")


def _format_status(rows: List[Dict[str, Any]]) -> str:
    header = ("node", "role", "port", "pid", "state", "current_lsn", "receive_lsn",
              "replay_lsn", "replication")
    table = [header]
    for row in rows:
        replication = row.get("replication_state") or ""
        if replication and row.get("sync_state"):
            replication += f" ({row['sync_state']})"
        if row.get("replay_paused") and row["replay_paused"] != "not paused":
            replication += f" replay {row['replay_paused']}"
        table.append((row["name"], row.get("role") or row.get("created_role") or "",
                      str(row["port"]), str(row["pid"] or "-"),
                      "up" if row["up"] else "down", row.get("current_lsn") or "-",
                      row.get("receive_lsn") or "-", row.get("replay_lsn") or "-",
                      replication or "-"))
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
                     for r in table)


def _cluster_status(args: argparse.Namespace) -> int:
    from .testing import LocalCluster

    cluster = LocalCluster.attach(args.dir)
    rows = cluster.status()
    if args.json:
        print(json.dumps({"base_dir": cluster.base_dir, "mode": cluster.mode,
                          "sync_count": cluster.sync_count, "nodes": rows}, indent=1))
    else:
        print(f"cluster {cluster.base_dir} (mode {cluster.mode})")
        print(_format_status(rows))
    return 0


def _cluster_down(args: argparse.Namespace) -> int:
    from .testing import LocalCluster

    cluster = LocalCluster.attach(args.dir)
    cluster.close(remove_dir=not args.keep, mode="fast" if args.keep else "immediate")
    where = f"kept {cluster.base_dir}" if args.keep else f"removed {cluster.base_dir}"
    print(f"replikit: cluster stopped; {where}")
    return 0


def _cluster_rejoin(args: argparse.Namespace) -> int:
    from .testing import LocalCluster

    cluster = LocalCluster.attach(args.dir)
    primary = cluster.primary_name
    cluster.rejoin(args.node, timeout_ms=args.timeout * 1000.0)
    print(f"replikit: {args.node} rejoined as a replica of {primary} (pg_rewind) and streams")
    return 0


_FLAGS = {"replicas": "--replicas", "mode": "--mode", "sync_count": "--sync-count",
          "base_port": "--base-port", "startup_timeout_ms": "--timeout"}


def _flag_message(exc: Exception) -> str:
    """An error of the library, its argument renamed to the flag that set it."""
    argument = getattr(exc, "argument", None)
    text = str(exc)
    if argument in _FLAGS and text.startswith(f"{argument}:"):
        return f"argument {_FLAGS[argument]}:{text[len(argument) + 1:]}"
    return text


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``replikit`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["demo"]:  # the demo parses its own options
        from . import demo

        return demo.main(argv[1:], prog="replikit demo")
    if argv[:1] == ["plan"]:  # so does the planner
        from . import plan

        return plan.main(argv[1:], prog="replikit plan")
    if argv[:1] == ["monitor"]:  # so does the monitor
        from . import monitor

        return monitor.main(argv[1:], prog="replikit monitor")
    args = _build_parser().parse_args(argv)
    if args.command in ("failover-manager", "switchover"):
        return _failover_cli.main(args)
    from .testing import ClusterError

    handlers: Dict[str, Callable[[argparse.Namespace], int]] = {
        "up": _cluster_up, "status": _cluster_status, "down": _cluster_down,
        "rejoin": _cluster_rejoin}
    if args.action == "up":
        _check_up(args)
    try:
        return handlers[args.action](args)
    except _UsageError as exc:
        print(f"replikit cluster up: error: {exc}", file=sys.stderr)
        return 2
    except (ClusterError, ValueError) as exc:
        print(f"replikit: error: {_flag_message(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
