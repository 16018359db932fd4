"""The "replica paused" scenario: WAL replay of r1 paused (pg_wal_replay_pause) at pause_at_s
for pause_s seconds, then resumed; in the simulator, SimConfig.pauses at the measured instants.
"""

from __future__ import annotations

import contextlib
import copy
import json
import statistics
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from fidelity.common import (DELAY_MODELS, Measured, WorkloadSettings, base_sim_config, compare,
                             half_round_trips, mean_of_runs, print_table, progress_until, reasons,
                             replication_delay, run_real, seeds_of, stale_at_execution, stale_share)

RECOVERY_S = 1.0  # after the resume, the router takes the replica back within this

FIGURES = [
    ("lag_at_pause_end_ms", "r1 lag at the end of the pause (ms)"),
    ("mean_lag_in_pause_ms", "r1 mean lag during the pause (ms)"),
    ("eventual_stale_rate", "eventual stale-read rate"),
    ("eventual_stale_from_pause", "  of which added by the pause"),
    ("primary_read_share", "primary read share"),
    ("ryw_stale_reads", "read-your-writes stale reads"),
]


@dataclass
class Settings(WorkloadSettings):
    pause_s: float = 5.0
    pause_at_s: float = 10.0

    def check(self) -> None:
        if not 0 < self.pause_at_s < self.pause_at_s + self.pause_s < self.run_s:
            raise SystemExit("need 0 < pause-at-s < pause-at-s + pause-s < run-s")
        super().check()


def _replay_call(conn: Any, function: str, t0: float) -> float:
    """Calls pg_wal_replay_pause/resume on r1; the instant (s from t0) of the call's middle."""
    before = time.monotonic()
    conn.execute(f"SELECT {function}()")
    return (before + time.monotonic()) / 2 - t0


def faults(settings: Settings):
    def drive(cluster: Any, work: Any, log: Any) -> None:
        import psycopg

        with psycopg.connect(cluster.dsn("r1"), autocommit=True, connect_timeout=10) as control:
            try:
                progress_until(work, settings.pause_at_s, log)
                # On a connection opened beforehand: the call takes a fraction of a millisecond,
                # so its instant is the pause's (psql would add a process start of tens of ms).
                work.out.fault_start_s = _replay_call(control, "pg_wal_replay_pause", work.t0)
                log(f"  t={work.out.fault_start_s:6.2f} s: r1 replay paused")
                progress_until(work, settings.pause_at_s + settings.pause_s, log)
                work.out.fault_end_s = _replay_call(control, "pg_wal_replay_resume", work.t0)
                log(f"  t={work.out.fault_end_s:6.2f} s: r1 replay resumed")
            finally:
                # Never leave r1 paused (the cluster is stopped next anyway).
                with contextlib.suppress(Exception):
                    control.execute("SELECT pg_wal_replay_resume()")
    return drive


def _in_window(m: Measured, t: float) -> bool:
    return m.fault_start_s <= t <= m.fault_end_s + RECOVERY_S


def calm_replica_stale_rate(m: Measured) -> float:
    """Stale share of the replica reads (any level) outside the pause and its recovery."""
    return stale_share(m, [r for r in m.reads if r.node != "primary" and not _in_window(m, r.sent)])


def real_figures(m: Measured) -> Dict[str, float]:
    m.commits.sort()
    inside = [lag for t, lag in m.lag if m.fault_start_s <= t <= m.fault_end_s]
    before_end = [lag for t, lag in m.lag if t <= m.fault_end_s]
    eventual = [r for r in m.reads if r.level == "eventual"]
    ryw = [r for r in m.reads if r.level == "read_your_writes"]
    # Outside the pause and the recovery after it: what the cluster does without the pause.
    window = [r for r in eventual if _in_window(m, r.sent)]
    calm = [r for r in eventual if r.node == "r1" and not _in_window(m, r.sent)]
    # The pause's stale reads: those of the paused replica in the window, less the share it
    # has without a pause.
    calm_stale = stale_share(m, calm)
    on_r1 = [r for r in window if r.node == "r1"]
    from_pause = (sum(stale_at_execution(m, r) for r in on_r1) - calm_stale * len(on_r1)) / max(1, len(eventual))
    return {
        "lag_at_pause_end_ms": before_end[-1] if before_end else float("nan"),
        "mean_lag_in_pause_ms": statistics.fmean(inside) if inside else float("nan"),
        "eventual_stale_rate": stale_share(m, eventual),
        "eventual_stale_from_pause": from_pause,
        "eventual_stale_rate_acked": sum(r.stale for r in eventual) / max(1, len(eventual)),
        "primary_read_share": sum(r.node == "primary" for r in m.reads) / max(1, len(m.reads)),
        "ryw_stale_reads": float(sum(r.stale for r in ryw)),
        "reads": float(len(m.reads)),
        "writes": float(m.writes),
    }


def sim_config(settings: Settings, m: Measured, delays: List[float], options: Any) -> Any:
    latency = replication_delay(settings, calm_replica_stale_rate(m), delays)
    config = base_sim_config(settings, m, latency, options)
    config.pauses = [("r1", m.fault_start_s * 1000.0, m.fault_end_s * 1000.0)]
    return config


def _one_sim(result: Any, unpaused: Any, m: Measured) -> Dict[str, float]:
    import numpy as np

    times = np.asarray(result.sample_times_ms) / 1000.0
    tracked = np.asarray(result.tracked_lag_ms["r1"])
    inside = (times >= m.fault_start_s) & (times <= m.fault_end_s)
    before_end = np.nonzero(times <= m.fault_end_s)[0]
    levels = result.levels
    return {
        "lag_at_pause_end_ms": float(tracked[before_end[-1]]) if len(before_end) else float("nan"),
        "mean_lag_in_pause_ms": float(tracked[inside].mean()) if inside.any() else float("nan"),
        "eventual_stale_rate": float(result.stale_read_rate.get("eventual", 0.0)),
        "eventual_stale_from_pause": float(result.stale_read_rate.get("eventual", 0.0)
                                           - unpaused.stale_read_rate.get("eventual", 0.0)),
        "primary_read_share": float(result.primary_read_share),
        "ryw_stale_reads": float(levels["read_your_writes"]["stale"]),
        "reads": float(result.reads_answered),
        "writes": float(result.writes_acknowledged),
    }


def run(settings: Settings, json_path: Optional[str], log: Any = print) -> Dict[str, Dict[str, Any]]:
    """The real run, the simulated runs, the table; returns the comparison."""
    from replikit.sim import simulate

    measured, delays, options = run_real(settings, faults(settings), log)
    real = real_figures(measured)
    log(f"real run: {int(real['writes'])} writes ({measured.write_errors} failed), "
        f"{int(real['reads'])} reads ({measured.read_errors} failed)")
    config = sim_config(settings, measured, delays, options)
    log(f"matched: probe interval {config.probe_interval_ms:.1f} ms (measured; nominal "
        f"{options.probe_interval_ms:g}), pause {measured.fault_start_s * 1000:.0f}.."
        f"{measured.fault_end_s * 1000:.0f} ms, replication delay mean "
        f"{config.replica_latency.mean_ms():.3f} ms, client latency mean "
        f"{config.client_latency.mean_ms():.3f} ms")
    started = time.perf_counter()
    seeds = seeds_of(settings)
    unpaused_config = copy.copy(config)
    unpaused_config.pauses = []
    results = [simulate(config, seed) for seed in seeds]
    result = results[0]
    runs = [_one_sim(r, simulate(unpaused_config, seed), measured) for r, seed in zip(results, seeds)]
    sim = mean_of_runs(runs, worst=("ryw_stale_reads",))
    log(f"simulated: {len(seeds)} runs with and without the pause (seeds {seeds[0]}..{seeds[-1]}), "
        f"mean {sim['writes']:.0f} writes, {sim['reads']:.0f} reads; "
        f"{time.perf_counter() - started:.2f} s")
    log(f"primary reads by reason: measured {reasons(measured)}, predicted "
        f"{ {k: v for k, v in result.primary_read_reasons.items() if v} }")
    log(f"eventual stale-read rate by the client's definition (the last write acknowledged "
        f"before the read was sent is missing): measured {real['eventual_stale_rate_acked']:.4f}")
    for other in DELAY_MODELS:
        if other != settings.delay:
            other_config = sim_config(Settings(**{**vars(settings), "delay": other}), measured, delays, options)
            stale = statistics.fmean(simulate(other_config, seed).stale_read_rate.get("eventual", 0.0)
                                     for seed in seeds)
            log(f"sensitivity: eventual stale-read rate predicted with --delay {other} (mean "
                f"{other_config.replica_latency.mean_ms():.3f} ms): {stale:.4f}")
    table = compare(real, sim, FIGURES)
    print_table(table, FIGURES, log)
    if json_path:
        with open(json_path, "w", encoding="utf-8") as fh:
            series = {"measured": [[t * 1000.0, lag] for t, lag in measured.lag],
                      "predicted": [[t, lag] for t, lag in zip(result.sample_times_ms.tolist(),
                                                               result.tracked_lag_ms["r1"].tolist())]}
            json.dump({"scenario": "pause", "settings": vars(settings), "real": real, "sim": sim,
                       "comparison": table, "r1_lag_ms_over_time_ms": series,
                       "calibration": {"replication_delay_ms_median": statistics.median(delays),
                                       "read_half_rtt_ms_median": statistics.median(half_round_trips(measured))}},
                      fh, indent=2)
    return table
