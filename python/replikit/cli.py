"""The ``replikit`` command line.

    replikit cluster up     [--dir DIR] [--replicas N] [--mode async|sync|remote_apply]
                            [--sync-count K] [--base-port P] [--timeout S] [--json]
    replikit cluster status [--dir DIR] [--json]
    replikit cluster down   [--dir DIR] [--keep]

``cluster up`` starts a local PostgreSQL 15 primary with streaming replicas in DIR
(default ./.replikit-cluster) and leaves it running; its description is kept in
DIR/cluster.json, which ``status`` and ``down`` read.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

DEFAULT_DIR = ".replikit-cluster"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="replikit", description="replikit: client-side database replication tools")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    cluster = commands.add_parser(
        "cluster", help="start, inspect and stop a local PostgreSQL cluster for testing",
        description="A local PostgreSQL 15 primary with streaming replicas on loopback.")
    actions = cluster.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    def add_dir(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--dir", default=DEFAULT_DIR,
                         help=f"cluster directory (default ./{DEFAULT_DIR})")

    up = actions.add_parser("up", help="start a cluster and leave it running")
    add_dir(up)
    up.add_argument("--replicas", type=_positive_int, default=2,
                    help="number of streaming replicas (default 2)")
    up.add_argument("--mode", choices=("async", "sync", "remote_apply"), default="async",
                    help="replication mode (default async)")
    up.add_argument("--sync-count", type=_positive_int, default=1,
                    help="k in synchronous_standby_names = 'ANY k (...)' (default 1)")
    up.add_argument("--base-port", type=int, default=None,
                    help="first port to try (default: a random port in 20000-29999)")
    up.add_argument("--timeout", type=float, default=30.0,
                    help="seconds to wait for each step of the start-up (default 30)")
    up.add_argument("--json", action="store_true", help="print the description as JSON")

    status = actions.add_parser("status", help="show each node's role, port, LSNs, state")
    add_dir(status)
    status.add_argument("--json", action="store_true", help="print JSON")

    down = actions.add_parser("down", help="stop the cluster and remove its directory")
    add_dir(down)
    down.add_argument("--keep", action="store_true",
                      help="keep the directory (nodes are stopped cleanly, -m fast)")
    return parser


def _cluster_up(args: argparse.Namespace) -> int:
    from .pg import LocalCluster

    cluster = LocalCluster(args.dir, replicas=args.replicas, mode=args.mode,
                           sync_count=args.sync_count, base_port=args.base_port,
                           persistent=True, remove_dir=False,
                           startup_timeout_s=args.timeout)
    if args.json:
        print(json.dumps({**cluster.description(), "dsns": cluster.dsns()}, indent=1))
        return 0
    mode = args.mode if args.mode == "async" else f"{args.mode}, ANY {args.sync_count}"
    print(f"replikit: cluster up in {cluster.startup_s:.2f} s in {cluster.base_dir} "
          f"({mode})")
    width = max(len(n) for n in cluster.nodes)
    for name, dsn in cluster.dsns().items():
        print(f"{name:<{width}}  {dsn}")
    print(f"stop it with: replikit cluster down --dir {cluster.base_dir}")
    return 0


def _format_status(rows: List[dict]) -> str:
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
    from .pg import LocalCluster

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
    from .pg import LocalCluster

    cluster = LocalCluster.attach(args.dir)
    cluster.close(remove_dir=not args.keep, mode="fast" if args.keep else "immediate")
    where = f"kept {cluster.base_dir}" if args.keep else f"removed {cluster.base_dir}"
    print(f"replikit: cluster stopped; {where}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``replikit`` command; returns the exit status."""
    args = _build_parser().parse_args(argv)
    from .pg import ClusterError

    handlers = {"up": _cluster_up, "status": _cluster_status, "down": _cluster_down}
    try:
        return handlers[args.action](args)
    except (ClusterError, ValueError) as exc:
        print(f"replikit: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
