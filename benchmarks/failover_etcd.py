"""The etcd system of failover_bench.py: three application processes coordinated through etcd.

One 3-member etcd (replikit.testing.EtcdCluster) serves every run, each run under a prefix of
its own. A run starts a primary and two replicas (LocalCluster, the benchmark's mode) and three
application processes (replikit.testing.coordinated: each a ReplicatedDatabase, an
EtcdCoordinator with its FailoverManager, and a writer inserting a row every 5 ms through the
router). The primary instance is crashed after the processes have written steadily; the
measure is the time from the crash to the first write on the new primary acknowledged by EVERY
one of the three processes (the slowest process's first write), with each process's own time
in the note. The writes the processes acknowledged are looked up on the new primary afterwards.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from typing import Any, Callable, Dict, Optional

NAMES = ("a", "b", "c")
STEADY_WRITES = 20
RUN_TIMEOUT_S = 30.0
TTL_MS = 2000.0


def detector_options(preset: str, presets: Dict[str, tuple]) -> Dict[str, Any]:
    """The coordinator's FailoverManager and database options for a replikit preset."""
    probe_ms, probe_timeout_ms, interval_ms, misses = presets[preset]
    return {"coordinator": {"detector": {"interval_ms": interval_ms, "missed_threshold": misses},
                            "state_interval_ms": 50},
            "database": {"probe_interval_ms": probe_ms, "probe_timeout_ms": probe_timeout_ms,
                         "connect_timeout_ms": 2000}}


class EtcdSystem:
    """The etcd members shared by the runs; a context manager."""

    def __init__(self) -> None:
        from replikit.testing import EtcdCluster

        self.etcd = EtcdCluster(members=3)
        self.runs = 0

    def __enter__(self) -> "EtcdSystem":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.etcd.stop()

    def run(self, mode: str, options: Dict[str, Any], result_class: Callable[..., Any]) -> Any:
        """One run; a ``result_class`` (failover_bench.RunResult) with the slowest process's
        time and each process's in the note."""
        from replikit.testing import LocalCluster, scratch_dir
        from replikit.testing.coordinated import AppProcesses, app_config, create_table

        self.runs += 1
        out_dir = tempfile.mkdtemp(prefix="replikit-bench-apps-", dir=scratch_dir())
        try:
            with LocalCluster(replicas=2, mode=mode) as cluster:
                create_table(cluster)
                cluster.wait_caught_up(timeout_ms=30_000)
                config = app_config(cluster, self.etcd.endpoints, out_dir,
                                    prefix=f"/replikit/bench{self.runs}", ttl_ms=TTL_MS,
                                    coordinator_options=options["coordinator"],
                                    database_options=options["database"])
                with AppProcesses(NAMES, config) as apps:
                    return _measure(cluster, apps, result_class)
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)


def _acked(app: Any, after_ns: int = 0) -> list:
    return [w for w in app.writes() if w["type"] == "ok" and w["t1"] > after_ns]


def _wait(predicate: Callable[[], Any], timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    return None


def _measure(cluster: Any, apps: Any, result_class: Callable[..., Any]) -> Any:
    leading = _wait(lambda: [a.name for a in apps if (a.status() or {}).get("leading")],
                    RUN_TIMEOUT_S)
    if not leading:
        return result_class(None, note="no process took the lead")
    if not _wait(lambda: all(len(_acked(a)) >= STEADY_WRITES for a in apps), RUN_TIMEOUT_S):
        return result_class(None, note="no steady writes before the failure")
    failed_at = cluster.crash("primary")
    kill_ns = int(failed_at * 1e9)  # time.monotonic()'s clock, as the processes' records

    def firsts() -> Optional[Dict[str, tuple]]:
        got = {}
        for app in apps:
            moved = [w for w in _acked(app, kill_ns) if w.get("served") not in (None, "primary")]
            if moved:
                first = min(moved, key=lambda w: w["t1"])
                got[app.name] = (first["t1"], first["served"])
        return got if len(got) == len(NAMES) else None

    found = _wait(firsts, RUN_TIMEOUT_S)
    if not found:
        return result_class(None, failed_at=failed_at,
                            note=f"not every process wrote within {RUN_TIMEOUT_S:g} s")
    time.sleep(0.05)
    apps.stop()
    promoted = {served for _, served in found.values()}
    new_primary = sorted(promoted)[0]
    acked = [(w["session"], w["value"]) for app in apps for w in _acked(app)]
    stored = {(p, int(i)) for p, i in cluster.sql(new_primary, "SELECT proc, id FROM w")}
    lost = sum(1 for key in acked if key not in stored)
    per_process = {n: (t - kill_ns) / 1e9 for n, (t, _) in found.items()}
    note = "per process " + ", ".join(f"{n} {s:.3f} s" for n, s in sorted(per_process.items()))
    if len(promoted) > 1:
        note += f"; processes disagree on the new primary: {sorted(promoted)}"
    return result_class(max(per_process.values()), failed_at=failed_at, new_primary=new_primary,
                        lost=lost, acked_before=len(acked), note=note)
