"""The "primary killed" scenario: benchmarks/failover_bench.py's runs against the simulator's
failover.

Real: per replication mode, ``runs`` fresh clusters (a primary and 2 replicas on loopback); one
writer per node inserts a row every 5 ms into whichever node accepts it; after 0.3 s the whole
primary instance is killed (SIGKILL of the postmaster and every child); replikit's
FailoverManager (detector ``preset``: probes every 100 ms, 3 misses) promotes a replica.
Measured: detection (kill -> the manager's detection), then detection -> the first write
acknowledged by the new primary (pg_promote's own return is later: it polls every 100 ms; it is
printed too), recovery (kill -> the first write acknowledged by the new primary) and the
acknowledged writes missing on the new primary.

Simulated: the same cluster and mode, writes at the writers' nominal rate (one per 5 ms on the
primary), no reads, the core's FailureDetector and plan_failover (failover_model "core") at the
preset's interval and threshold, the kill at a seeded instant uniform over one heartbeat
interval (the real kill may fall at any phase of the probes). promote_ms is an INPUT: the
median measured detection -> writes accepted for that mode (promotion itself is not modelled);
so the predicted recovery is the modelled detection plus a measured promotion, and the
detection is the figure the model predicts on its own.

Reads: ``read_runs`` further kills per mode with a read workload, compared per time window,
see fidelity/killreads.py and fidelity/windowstats.py; the tables of all modes pooled follow.

What differs, and is reported rather than tuned away:
- the real detector misses a probe when the connection is refused (at once) and waits for
  the next tick; it also reads the standbys' positions before promoting (a few ms, in the
  measured promotion). The simulated heartbeats are instantaneous.
- recovery: the real figure includes the writer's retry (every 5 ms) and one insert on the
  new primary; the simulated one ends when the new primary accepts writes.
- lost acknowledged writes: on loopback the WAL reaches the standbys within a fraction of a
  millisecond of the commit, so both sides lose ~0 in every mode; a relative error of a
  count near 0 is not meaningful: the counts are printed and compared in absolute terms.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from fidelity import killreads, windowstats
from fidelity.common import TOLERANCE, delay_quantiles, relative_error

SIM_MODES = {"async": ("async", 1), "semi_sync": ("semi_sync", 1), "sync_all": ("sync", 1)}
WRITE_RATE = 200.0  # the writers' nominal rate on the primary: one insert per 5 ms
CRASH_AT_MS = 1000.0


@dataclass
class Settings:
    runs: int = 5
    modes: str = "async,semi_sync"
    preset: str = "fast"
    seed: int = 1
    sim_runs: int = 20
    read_runs: int = 3  # kills with the read workload (fidelity/killreads.py), per mode

    def mode_list(self) -> List[str]:
        return [m.strip() for m in self.modes.split(",") if m.strip()]

    def check(self) -> None:
        if not 1 <= self.runs <= 100 or not 1 <= self.sim_runs <= 1000 or not 0 <= self.read_runs <= 100:
            raise SystemExit("runs must be in [1, 100], read-runs in [0, 100] and sim-runs in [1, 1000]")
        if not self.mode_list() or set(self.mode_list()) - set(SIM_MODES):
            raise SystemExit("modes: one or more of " + ", ".join(SIM_MODES))
        if self.preset not in ("fast", "fast50"):
            raise SystemExit("preset must be fast or fast50")


def real_runs(settings: Settings, mode: str, log: Any) -> List[Any]:
    from failover_bench import describe, local_run, start_replikit_manager

    results = []
    for i in range(settings.runs):
        result = local_run(lambda c: start_replikit_manager(c, settings.preset), mode, False)
        log(f"  {mode} run {i + 1}/{settings.runs}: {describe(result)}")
        if result.seconds is None or result.detect_s is None or result.promote_s is None:
            raise RuntimeError(f"a {mode} failover did not complete: {result.note}")
        results.append(result)
    return results


def real_figures(results: List[Any]) -> Dict[str, float]:
    return {
        "detection_ms": statistics.median(r.detect_s for r in results) * 1000.0,
        "promotion_ms": statistics.median(r.seconds - r.detect_s for r in results) * 1000.0,
        "pg_promote_ms": statistics.median(r.promote_s for r in results) * 1000.0,
        "recovery_ms": statistics.median(r.seconds for r in results) * 1000.0,
        "lost_acknowledged": statistics.fmean(r.lost for r in results),
        "acknowledged_before": statistics.fmean(r.acked_before for r in results),
    }


def sim_config(settings: Settings, mode: str, promotion_ms: float, seed: int) -> Any:
    from failover_bench import REPLIKIT_PRESETS

    from replikit.sim import SimConfig

    _, _, interval_ms, misses = REPLIKIT_PRESETS[settings.preset]
    sim_mode, sync_count = SIM_MODES[mode]
    crash = CRASH_AT_MS + random.Random(seed).uniform(0.0, interval_ms)
    return SimConfig(duration_ms=crash + 3000.0, write_rate_per_s=WRITE_RATE, read_rate_per_s=0.0,
                     replicas=2, names=["primary", "r1", "r2"], mode=sim_mode, sync_count=sync_count,
                     crash_primary_at_ms=crash, heartbeat_interval_ms=interval_ms, missed_heartbeats=misses,
                     promote_ms=promotion_ms, failover_model="core")


def sim_figures(settings: Settings, mode: str, promotion_ms: float) -> Dict[str, float]:
    from replikit.sim import simulate

    runs = [simulate(sim_config(settings, mode, promotion_ms, seed), seed).failover
            for seed in range(settings.seed, settings.seed + settings.sim_runs)]
    if any(f["recovery_ms"] < 0 for f in runs):
        raise RuntimeError(f"a simulated {mode} failover did not complete")
    return {
        "detection_ms": statistics.median(f["detection_ms"] for f in runs),
        "detection_ms_min": min(f["detection_ms"] for f in runs),
        "detection_ms_max": max(f["detection_ms"] for f in runs),
        "promotion_ms": promotion_ms,
        "recovery_ms": statistics.median(f["recovery_ms"] for f in runs),
        "lost_acknowledged": statistics.fmean(f["writes_lost_acknowledged"] for f in runs),
    }


FIGURES = [
    ("detection_ms", "detection, median (ms)", "model"),
    ("promotion_ms", "detection -> writes accepted, median (ms)", "input"),
    ("recovery_ms", "kill -> writes accepted, median (ms)", "model + input"),
    ("lost_acknowledged", "acknowledged writes lost, mean per kill", "absolute"),
]


def compare(real: Dict[str, float], sim: Dict[str, float]) -> Dict[str, Dict[str, Any]]:
    table = {}
    for key, _, kind in FIGURES:
        error = relative_error(real[key], sim[key])
        row = {"measured": real[key], "predicted": sim[key], "kind": kind, "relative_error": error,
               "within_10pct": error <= TOLERANCE}
        if kind == "absolute":  # counts near 0: the difference, not a ratio
            row["absolute_error"] = abs(real[key] - sim[key])
            row["within_10pct"] = None
        table[key] = row
    return table


def print_table(mode: str, table: Dict[str, Dict[str, Any]], log: Any) -> None:
    log(f"{mode}: {'figure':42s} {'measured':>10s} {'predicted':>10s} {'error':>12s}")
    for key, label, kind in FIGURES:
        row = table[key]
        if kind == "absolute":
            error = f"{row['absolute_error']:.3f} abs."
        elif kind == "input":
            error = "(input)"
        else:
            error = f"{row['relative_error'] * 100:.1f}%" + ("" if row["within_10pct"] else " NO")
        log(f"{'':{len(mode) + 2}}{label:42s} {row['measured']:10.2f} {row['predicted']:10.2f} {error:>12s}")


# The twins' replication delays, both from the offset reads before the kill: each kill's own
# (its twin follows that run's load), and those of all kills of the mode pooled (less noise).
DELAY_INPUTS = {"run": "delays from offset reads, per kill", "mode": "delays from offset reads, pooled per mode"}


def reads_comparison(settings: Settings, mode: str, promotion_ms: float, log: Any) -> Dict[str, Any]:
    """``read_runs`` kills with reads and, for each, its simulated twin (``sim_runs`` seeds);
    the comparison per window (fidelity/windowstats.py), once per DELAY_INPUTS."""
    log(f"{mode}: {settings.read_runs} real kills with reads ...")
    real = killreads.real_reads(settings.preset, mode, settings.read_runs, settings.seed, log)
    seeds = range(settings.seed, settings.seed + settings.sim_runs)
    pooled = delay_quantiles([o for run in real for o in run["offsets"]])
    twins = {name: [] for name in DELAY_INPUTS}  # type: Dict[str, List[Dict[str, Any]]]
    for run in real:
        for name in DELAY_INPUTS:
            inputs = run if name == "run" else dict(run, delays=pooled)
            twin = killreads.sim_run_counts(settings.preset, mode, promotion_ms, seeds, inputs)
            twin["outage_ms"] = twin.pop("outage_ms_mean")
            twins[name].append(twin)
    real_counts = [run["counts"] for run in real]
    sim_counts = {name: [twin["windows"] for twin in twins[name]] for name in DELAY_INPUTS}
    scale = killreads.fit_delay_scale(settings.preset, mode, promotion_ms, real, seeds)  # a check, not an input
    return {"real": {"kills": len(real), "reads": statistics.fmean(run["reads"] for run in real),
                     "offset_reads": sum(len(run["offsets"]) for run in real),
                     "delay_median_ms": statistics.median(pooled), "delay_mean_ms": statistics.fmean(pooled),
                     "delay_scale_diagnostic": scale,
                     "repoint_ms_median": statistics.median(run["repoint_ms"] for run in real),
                     "switch_ms_median": statistics.median(run["switch_ms"] for run in real),
                     "outage_ms_median": statistics.median(run["outage_ms"] for run in real),
                     "runs": [{k: v for k, v in run.items() if k not in ("delays", "offsets", "half_round_trips")}
                              for run in real]},
            "sim": {"reads": statistics.fmean(twin["reads"] for twin in twins["run"]),
                    "outage_ms_median": statistics.median(twin["outage_ms"] for twin in twins["run"]),
                    "runs": twins["run"], "runs_pooled_delays": twins["mode"]},
            "comparison": windowstats.compare(real_counts, sim_counts["run"], settings.seed),
            "comparison_pooled_delays": windowstats.compare(real_counts, sim_counts["mode"], settings.seed),
            "real_counts": real_counts, "sim_counts": sim_counts}


def run(settings: Settings, json_path: Optional[str], log: Any = print) -> Dict[str, Any]:
    """Per mode: the real runs, the simulated runs, the table; returns the comparisons by mode."""
    out: Dict[str, Any] = {}
    all_reads: Dict[str, List[Any]] = {"real": [], "run": [], "mode": []}
    started = time.monotonic()
    for mode in settings.mode_list():
        log(f"{mode}: {settings.runs} real kills (replikit FailoverManager, preset {settings.preset}) ...")
        real = real_figures(real_runs(settings, mode, log))
        sim = sim_figures(settings, mode, real["promotion_ms"])
        out[mode] = {"real": real, "sim": sim, "comparison": compare(real, sim)}
        if settings.read_runs:
            out[mode]["reads"] = reads_comparison(settings, mode, real["promotion_ms"], log)
            all_reads["real"] += out[mode]["reads"].pop("real_counts")
            for name, counts in out[mode]["reads"].pop("sim_counts").items():
                all_reads[name] += counts
    log(f"simulated: {settings.sim_runs} seeded runs per mode (seeds {settings.seed}.."
        f"{settings.seed + settings.sim_runs - 1}); real and simulated {time.monotonic() - started:.0f} s")
    for mode, result in out.items():
        print_table(mode, result["comparison"], log)
        log(f"{'':{len(mode) + 2}}simulated detections {result['sim']['detection_ms_min']:.0f}.."
            f"{result['sim']['detection_ms_max']:.0f} ms; pg_promote returned after "
            f"{result['real']['pg_promote_ms']:.0f} ms (median; it polls every 100 ms)")
    for mode, result in out.items():
        if "reads" in result:
            reads = result["reads"]
            real_r = reads["real"]
            log(f"{mode} reads: {settings.read_runs} kills; inputs measured in each run: replication delay "
                f"({real_r['offset_reads']} offset reads before the kill, all kills) median "
                f"{real_r['delay_median_ms']:.3f} ms, mean {real_r['delay_mean_ms']:.3f} ms; client switch "
                f"{real_r['switch_ms_median']:.0f} ms and repoint {real_r['repoint_ms_median']:.0f} ms after the new "
                f"primary's first write (medians); outage (kill -> client switch) {real_r['outage_ms_median']:.0f} ms "
                f"measured, {reads['sim']['outage_ms_median']:.0f} ms simulated; a check, not an input: the delay "
                f"scale that would fit the stale share before the kill: {real_r['delay_scale_diagnostic']:.2f}")
            windowstats.print_table(f"{mode} reads, {DELAY_INPUTS['run']}", reads["comparison"], log)
            windowstats.print_table(f"{mode} reads, {DELAY_INPUTS['mode']}", reads["comparison_pooled_delays"], log)
    pooled = pooled_mode = None
    if len(out) > 1 and all_reads["real"]:
        pooled = windowstats.compare(all_reads["real"], all_reads["run"], settings.seed)
        pooled_mode = windowstats.compare(all_reads["real"], all_reads["mode"], settings.seed)
        kills = len(all_reads["real"])
        windowstats.print_table(f"all modes pooled ({kills} kills), {DELAY_INPUTS['run']}", pooled, log)
        windowstats.print_table(f"all modes pooled ({kills} kills), {DELAY_INPUTS['mode']}", pooled_mode, log)
    if json_path:
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump({"scenario": "kill", "settings": vars(settings), "modes": out,
                       "reads_all_modes": pooled, "reads_all_modes_pooled_delays": pooled_mode}, fh, indent=2)
    return out
