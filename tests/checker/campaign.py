"""A campaign: rounds of workload under faults, each healed, read back and checked.

Each round uses fresh sessions and keys, so its history stands alone and memory stays
bounded by one round (``max_ops``). After a round's faults are healed and the replicas have
caught up, the ops log and the registers are read on the primary through psql (a path
independent of the library under test) and added to the history as ``present`` and
``final`` ops; then every checker runs. A round with violations is saved as JSON lines.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import Counter
from typing import Any, Callable, Dict, List, Optional, Sequence

from . import checkers
from .faults import FAULT_KINDS, FaultSchedule, heal_all
from .history import History, Op, save
from .workload import SCHEMA, Workload, keys_of, session_names

PROBE_MARGIN_MS = 250.0  # scheduling slack on a loaded machine, on top of the stated bound


@dataclasses.dataclass
class CampaignOptions:
    seed: int = 1
    seconds: float = 60.0  # total workload time
    round_seconds: float = 30.0
    sessions: int = 8
    psycopg_every: int = 4  # every n-th session uses PsycopgRouter (0: none)
    mode: str = "async"
    faults: Sequence[str] = FAULT_KINDS
    max_ops: int = 400_000  # per round
    out_dir: str = "."
    progress_s: float = 10.0

    def to_json(self) -> Dict[str, Any]:
        data = dataclasses.asdict(self)
        data["faults"] = list(self.faults)
        return data


def staleness_tolerance_ms(db: Any) -> float:
    """What the README allows on top of max_staleness_ms: nothing (a bounded read is routed on a
    safe upper bound of staleness at the moment of routing, which grows between probes), plus
    PROBE_MARGIN_MS."""
    del db  # the bound no longer depends on the probe settings
    return PROBE_MARGIN_MS


@dataclasses.dataclass
class RoundReport:
    round_no: int
    ops: int
    summary: Dict[str, Any]
    violations: List[Dict[str, Any]]
    faults: Dict[str, int]
    fault_errors: List[str]
    harness_errors: List[str]
    saved: Optional[str] = None


def read_back(cluster: Any, history: History, round_no: int, names: Sequence[str]) -> None:
    """Add ``present`` (copies of each write in the ops log) and ``final`` (each key's value)
    ops, read on the primary with psql."""
    rows = cluster.sql("primary", f"SELECT session, v, count(*) FROM ops WHERE round = {round_no} "
                                  "GROUP BY session, v", timeout_ms=60_000)
    counts = {(s, int(v)): int(n) for s, v, n in rows}
    now = time.monotonic_ns()
    written = {(op.session, op.value) for op in history.ops() if op.f == "write"}
    for key in sorted(written | set(counts), key=lambda k: (k[0], k[1])):
        history.add(Op(f="present", type="ok", session=key[0], value=key[1],
                       count=counts.get(key, 0), t0=now, t1=now))
    keys = [k for s in names for k in keys_of(round_no, s)]
    values = dict(cluster.sql("primary", f"SELECT k, v FROM reg WHERE k LIKE 'r{round_no}s%'",
                              timeout_ms=60_000))
    for key in keys:
        value = values.get(key)
        history.add(Op(f="final", type="ok", key=key, t0=now, t1=now,
                       value=None if value is None else int(value)))


def run_round(cluster: Any, db: Any, options: CampaignOptions, round_no: int, seconds: float,
              log: Callable[[str], None]) -> RoundReport:
    names = session_names(round_no, options.sessions)
    values = ", ".join(f"('{k}', 0)" for s in names for k in keys_of(round_no, s))
    cluster.sql("primary", f"INSERT INTO reg (k, v) VALUES {values}", timeout_ms=60_000)
    cluster.wait_caught_up(timeout_ms=60_000)
    history = History(options.max_ops)
    work = Workload(db, cluster, history, round_no, options.sessions,
                    options.seed, options.psycopg_every)
    faults = FaultSchedule(cluster, options.seed * 7919 + round_no, options.faults, log)
    started = time.monotonic()
    work.start()
    faults.start()
    next_progress = started + options.progress_s
    while time.monotonic() - started < seconds and not work.stop_event.is_set():
        time.sleep(0.2)
        if time.monotonic() >= next_progress:
            next_progress += options.progress_s
            log(f"round {round_no}: {time.monotonic() - started:.0f}/{seconds:.0f} s, "
                f"{len(history)} ops, faults {faults.counts()}")
    faults.stop()
    work.stop()
    heal_all(cluster)
    history.max_ops = 2 * len(history) + 10_000  # room for the read-back
    read_back(cluster, history, round_no, names)
    for event in faults.events:
        history.add(Op(f="fault", type="fail" if event.get("error") else "ok",
                       key=event["kind"], node=event["node"], t0=event["start_ns"],
                       t1=event.get("heal_ns"), error=event.get("error")))
    ops = history.ops()
    violations = checkers.check_all(ops, staleness_tolerance_ms(db))
    report = RoundReport(round_no, sum(1 for op in ops if op.f in ("read", "write")),
                         checkers.summarize(ops, violations), violations, faults.counts(),
                         faults.errors, work.errors)
    if violations or work.errors:
        path = os.path.join(options.out_dir,
                            f"checker-history-seed{options.seed}-round{round_no}.jsonl")
        meta = {"seed": options.seed, "round": round_no, "options": options.to_json(),
                "tolerance_ms": staleness_tolerance_ms(db), "faults": faults.events,
                "violations": violations[:1000], "harness_errors": work.errors}
        save(path, ops, meta)
        report.saved = path
    return report


def run_campaign(options: CampaignOptions, log: Callable[[str], None] = print,
                 db_options: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Start a cluster, run rounds for ``options.seconds``, return the campaign summary."""
    from replikit.pg import database_for_cluster
    from replikit.testing import LocalCluster

    log(f"checker campaign: seed {options.seed}, {options.seconds:g} s, mode {options.mode}, "
        f"{options.sessions} sessions, faults {','.join(options.faults) or 'none'}")
    reports: List[RoundReport] = []
    started = time.monotonic()
    with LocalCluster(replicas=2, mode=options.mode) as cluster:
        cluster.sql("primary", SCHEMA)
        cluster.wait_caught_up(timeout_ms=60_000)
        with database_for_cluster(cluster, **(db_options or {})) as db:
            round_no = 0
            while True:
                left = options.seconds - (time.monotonic() - started)
                if left < 1.0 and reports:
                    break
                round_no += 1
                report = run_round(cluster, db, options, round_no,
                                   max(1.0, min(options.round_seconds, left)), log)
                reports.append(report)
                log(f"round {round_no} checked: {report.ops} ops, "
                    f"{len(report.violations)} violations, unknown writes "
                    f"{report.summary['unknown_writes']}, acknowledged without their LSN "
                    f"{report.summary['writes_lsn_unknown']['acknowledged']}"
                    + (f", history saved to {report.saved}" if report.saved else ""))
            tolerance = staleness_tolerance_ms(db)
    return combine(options, reports, time.monotonic() - started, tolerance)


def combine(options: CampaignOptions, reports: List[RoundReport], elapsed_s: float,
            tolerance_ms: float) -> Dict[str, Any]:
    total: Dict[str, Counter] = {k: Counter() for k in
                                 ("operations", "reads_by_consistency", "tokens", "violations",
                                  "unknown_writes", "writes_lsn_unknown", "faults")}
    for report in reports:
        for key in ("operations", "reads_by_consistency", "tokens", "violations",
                    "unknown_writes", "writes_lsn_unknown"):
            total[key].update(report.summary[key])
        total["faults"].update(report.faults)
    return {
        "seed": options.seed, "options": options.to_json(), "elapsed_s": round(elapsed_s, 1),
        "rounds": len(reports), "operations_checked": sum(r.ops for r in reports),
        "staleness_tolerance_ms": tolerance_ms,
        **{k: dict(sorted(v.items())) for k, v in total.items()},
        "violation_count": sum(len(r.violations) for r in reports),
        "first_violations": [v for r in reports for v in r.violations][:20],
        "fault_errors": [e for r in reports for e in r.fault_errors],
        "harness_errors": [e for r in reports for e in r.harness_errors],
        "saved_histories": [r.saved for r in reports if r.saved],
    }
