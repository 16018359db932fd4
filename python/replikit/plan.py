"""Capacity planning: how many replicas a workload needs, and why.

    >>> from replikit.plan import plan_capacity
    >>> plan = plan_capacity(writes_per_s=5000, reads_per_s=50000, read_back_delay_ms=200)
    >>> plan.replicas, plan.binding.name
    (6, 'REPLICA_READ_CAPACITY')
    >>> print(plan.explain())  # doctest: +SKIP

The arithmetic is the core's (``replikit.plan_capacity``; the model is described in
``cpp/include/replikit/plan.hpp``). This module adds what needs a real server:
:func:`measure_capacity`, a pgbench-style probe (point selects, and optionally small
inserts, from several processes for a few seconds) whose figures replace the assumed
capacities, and the ``replikit plan`` command.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import sys
import time
from typing import Any, Dict, List, Optional

from ._core import CapacityPlan, PlanConstraint, plan_capacity

__all__ = ["CapacityPlan", "PlanConstraint", "plan_capacity", "measure_capacity", "main"]

# The probe's statements. A point select on a catalog index works on a replica and needs no
# table of ours; the write probe inserts into a scratch table it creates and drops.
_READ_SQL = "SELECT relname FROM pg_class WHERE oid = %s"
_PROBE_TABLE = "replikit_plan_probe"
_MAX_SECONDS = 600.0
_MAX_CLIENTS = 256


def _probe_worker(dsn: str, seconds: float, write: bool, out: "multiprocessing.Queue[Any]") -> None:
    """One client: runs its statement in a loop for `seconds`, puts (count, error) on `out`."""
    try:
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            oids = [row[0] for row in conn.execute("SELECT oid FROM pg_class LIMIT 100")]
            count = 0
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                if write:
                    conn.execute(f"INSERT INTO {_PROBE_TABLE} (v) VALUES (%s)", (count,), prepare=True)
                else:
                    conn.execute(_READ_SQL, (oids[count % len(oids)],), prepare=True).fetchone()
                count += 1
        out.put((count, None))
    except Exception as exc:  # reported to the parent, which raises it
        out.put((0, f"{type(exc).__name__}: {exc}"))


def _run_clients(dsn: str, seconds: float, clients: int, write: bool) -> float:
    context = multiprocessing.get_context("spawn")
    results: "multiprocessing.Queue[Any]" = context.Queue()
    workers = [context.Process(target=_probe_worker, args=(dsn, seconds, write, results), daemon=True)
               for _ in range(clients)]
    for worker in workers:
        worker.start()
    total, errors = 0, []
    try:
        for _ in workers:
            count, error = results.get(timeout=seconds + 60.0)
            total += count
            if error:
                errors.append(error)
    finally:
        for worker in workers:
            worker.join(timeout=5.0)
            if worker.is_alive():
                worker.kill()
    if errors:
        raise RuntimeError(f"the capacity probe failed on {dsn!r}: {errors[0]}")
    return total / seconds


def measure_capacity(dsn: str, *, seconds: float = 5.0, clients: int = 4,
                     writes: bool = False) -> Dict[str, float]:
    """Measures one node: point reads per second (and inserts per second with ``writes=True``,
    which needs a primary: it creates and drops a scratch table) from `clients` processes for
    `seconds` each. The clients run on this machine, as pgbench's do, so on a small machine
    they share its cores with the server: measure from another host for a server's full
    capacity. Returns ``{"read_capacity_per_s": ..., ["write_capacity_per_s": ...]}``."""
    if not isinstance(dsn, str) or not dsn:
        raise TypeError("dsn: expected a non-empty str (a libpq connection string)")
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and 0 < seconds <= _MAX_SECONDS):
        raise ValueError(f"seconds: expected a number in (0, {_MAX_SECONDS:g}], got {seconds!r}")
    if not (isinstance(clients, int) and not isinstance(clients, bool) and 1 <= clients <= _MAX_CLIENTS):
        raise ValueError(f"clients: expected an int in [1, {_MAX_CLIENTS}], got {clients!r}")
    found = {"read_capacity_per_s": _run_clients(dsn, float(seconds), clients, write=False)}
    if writes:
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:  # type: ignore[index]
                raise ValueError(f"dsn: {dsn!r} is a replica; the write probe needs the primary")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {_PROBE_TABLE} (id bigserial PRIMARY KEY, v int)")
            try:
                found["write_capacity_per_s"] = _run_clients(dsn, float(seconds), clients, write=True)
            finally:
                conn.execute(f"DROP TABLE IF EXISTS {_PROBE_TABLE}")
    return found


# ---- the command line ----

_NUMBER_FLAGS = [
    # (flag, keyword of plan_capacity, help)
    ("--read-capacity-per-s", "read_capacity_per_s", "point reads one node serves at 100%%"),
    ("--write-capacity-per-s", "write_capacity_per_s", "writes the primary sustains at 100%%"),
    ("--replica-apply-per-s", "replica_apply_per_s", "writes a replica replays per second"),
    ("--headroom", "headroom", "share of each node's capacity kept free, in [0, 1)"),
    ("--strong-share", "strong_share", "share of reads that must go to the primary"),
    ("--ryw-share", "ryw_share", "share of reads that read back the session's own recent write"),
    ("--read-back-delay-ms", "read_back_delay_ms", "time from a write's acknowledgement to its read-back"),
    ("--wait-for-replica-ms", "wait_for_replica_ms", "how long a read-back may wait for a replica"),
    ("--network-ms", "network_ms", "one-way primary-to-replica latency"),
    ("--replay-delay-ms", "replay_delay_ms", "measured mean replay delay (default: network + M/M/1 queue)"),
]


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text}")
    return value


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="How many replicas a workload needs, which constraint binds, and why. "
                               "Capacities not given are assumed (see --help of each), or measured "
                               "on a real node with --measure DSN.")
    parser.add_argument("--writes-per-s", type=_number, required=True, metavar="W")
    parser.add_argument("--reads-per-s", type=_number, required=True, metavar="R")
    parser.add_argument("--spare-replicas", type=int, default=None, metavar="K",
                        help="k of N + k: replicas beyond the load's needs")
    for flag, _keyword, text in _NUMBER_FLAGS:
        parser.add_argument(flag, type=_number, default=None, help=text)
    parser.add_argument("--measure", metavar="DSN",
                        help="measure the read capacity of this node first (pgbench-style probe)")
    parser.add_argument("--measure-writes", action="store_true",
                        help="with --measure on a primary: measure its write capacity too "
                             "(creates and drops a scratch table)")
    parser.add_argument("--measure-seconds", type=_number, default=5.0, metavar="S")
    parser.add_argument("--clients", type=int, default=4, metavar="N", help="probe clients (default 4)")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    return parser


def main(argv: Optional[List[str]] = None, prog: str = "replikit plan") -> int:
    """``replikit plan``: prints the plan; exit status 0 with a plan, 1 without one."""
    args = _parser(prog).parse_args(argv)
    keywords: Dict[str, Any] = {k: getattr(args, k) for _f, k, _t in _NUMBER_FLAGS
                                if getattr(args, k) is not None}
    if args.spare_replicas is not None:
        keywords["spare_replicas"] = args.spare_replicas
    try:
        if args.measure:
            print(f"measuring {args.measure!r} for {args.measure_seconds:g} s with {args.clients} clients...",
                  file=sys.stderr)
            measured = measure_capacity(args.measure, seconds=args.measure_seconds, clients=args.clients,
                                        writes=args.measure_writes)
            for key, value in measured.items():
                print(f"measured {key} = {value:.0f}", file=sys.stderr)
                keywords.setdefault(key, value)
        plan = plan_capacity(args.writes_per_s, args.reads_per_s, **keywords)
    except (ValueError, TypeError, RuntimeError) as exc:
        argument = getattr(exc, "argument", None)
        text = str(exc)
        if argument and text.startswith(f"{argument}:"):
            text = f"argument --{argument.replace('_', '-')}:{text[len(argument) + 1:]}"
        print(f"{prog}: error: {text}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(plan.to_dict(), indent=1))
    else:
        print(plan.explain(), end="")
    return 0 if plan.feasible else 1
