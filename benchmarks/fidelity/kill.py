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

Also measured, before each kill: the primary's probes as the manager's detector saw them (its
ReplicatedDatabase's NodeStatus read every 10 ms: each probe's completion stamp and round
trip): the probe period (the prober sends the next probe an interval after it sent the last
one, once its thread wakes: 100.2-102 ms under load) and the kill's phase (kill - the last
answered probe's send).

Simulated: the same cluster and mode, writes at the writers' nominal rate (one per 5 ms on the
primary), no reads, the core's FailureDetector and plan_failover (failover_model "core") at the
preset's interval and threshold; one twin per real kill (``sim_runs`` seeds each, pooled): its
heartbeats at the measured period (``heartbeat_late_ms``), the kill at the measured phase, the
manager acting at a uniform phase of its 5 ms check loop (``check_interval_ms``). promote_ms
is an INPUT: the median measured detection -> writes accepted for that mode (promotion itself
is not modelled); so the predicted recovery is the modelled detection plus a measured
promotion, and the detection is the figure the model predicts on its own. The model before
these inputs (the kill at a seeded phase uniform over one interval, heartbeats exactly one
interval apart, detection at the heartbeat) is printed alongside: it assumed the kill falls at
any phase of the probes, but the benchmark kills a fixed time after the manager's first probe
(the writers' first write + 0.3 s + the freeze), so the phase is not uniform and moves with the
load (a median 33 ms after a probe over 90 loaded kills: the first miss ~67 ms after the
kill, not 50 on average), which made that model up to 15% short.

Reads: ``read_runs`` further kills per mode with a read workload, compared per time window,
see fidelity/killreads.py, fidelity/killtwins.py and fidelity/windowstats.py; the tables of all modes pooled follow.
Each twin's eventual reads before the crash take the readers' lateness around the session writes
measured over the mode's kills (fidelity/readshift.py; saved per mode as read_shifts).

What differs, and is reported rather than tuned away:
- the killed instance: LocalCluster.crash stops every process (SIGSTOP; the kill instant) and
  then SIGKILLs them; their sockets close when they have exited, 5-60 ms later under load. A
  probe sent in between waits for that and only then fails (refused at the reconnect); the
  twin counts it missed at the kill, so such a kill's twin detects 9-30 ms early (4 of 90
  kills in three runs). Refused connections are instantaneous misses on both sides.
- the manager reads the standbys' positions before promoting (a few ms, in the measured
  promotion).
- recovery: the real figure includes the writer's retry (every 5 ms) and one insert on the
  new primary; the simulated one ends when the new primary accepts writes. The promotion is
  the measured median, so the recovery's spread over kills is the detection's only.
- lost acknowledged writes: on loopback the WAL reaches the standbys within a fraction of a
  millisecond of the commit, so both sides lose ~0 in every mode; a relative error of a
  count near 0 is not meaningful: the counts are printed and compared in absolute terms.
"""

from __future__ import annotations

import json
import math
import os
import random
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from fidelity import killtwins, probesamples, readshift, windowstats
from fidelity.common import TOLERANCE, relative_error
from fidelity.delays import sent_delay_quantiles

SIM_MODES = {"async": ("async", 1), "semi_sync": ("semi_sync", 1), "sync_all": ("sync", 1)}
WRITE_RATE = 200.0  # the writers' nominal rate on the primary: one insert per 5 ms
CRASH_AT_MS = 1000.0
MANAGER_CHECK_MS = 5.0  # FailoverManagerOptions.check_interval_ms's default (the benchmark keeps it)
PROBE_POLL_S = 0.01  # the prober's state is read this often (its probes are ~100 ms apart)
MAX_PROBE_ROWS = 10_000  # bound of one run's probe log


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


class ProbeLog:
    """The primary as the manager's detector sees it: its ReplicatedDatabase's NodeStatus read
    every PROBE_POLL_S, one row per completed probe (the prober's own stamp of its completion,
    its round trip, answered or not). Bounded (MAX_PROBE_ROWS); stopped with the manager."""

    def __init__(self, node: str = "primary"):
        self.node = node
        self.rows: List[Dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def attach(self, db: Any) -> None:
        self._thread = threading.Thread(target=self._loop, args=(db,), daemon=True)
        self._thread.start()

    def _loop(self, db: Any) -> None:
        seen = None
        while not self._stop.wait(PROBE_POLL_S) and len(self.rows) < MAX_PROBE_ROWS:
            try:
                st = db.node(self.node)
            except Exception:  # noqa: BLE001 - the database closing: the log ends here
                return
            if (st.probes_ok, st.probes_failed) == seen or not st.last_probe_ns:
                continue
            answered = st.probes_ok > (seen[0] if seen else 0)
            seen = (st.probes_ok, st.probes_failed)
            self.rows.append({"at": st.last_probe_ns / 1e9, "rtt_ms": st.probe_rtt_ms, "answered": answered,
                              "ok": st.probes_ok, "failed": st.probes_failed})

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)


def probe_inputs(rows: List[Dict[str, Any]], killed_at: float, interval_ms: float) -> Dict[str, float]:
    """The detector's timing measured before the kill: the prober's period (send to send of the
    answered probes, the first one, which connects, left out) and the kill's phase (kill - the
    last answered probe's send). A probe due before the kill but unanswered by it was sent to
    the stopping instance and counts as missed at the kill: the phase is at most one period."""
    sends = [r["at"] - r["rtt_ms"] / 1000.0 for r in rows if r["answered"] and r["at"] < killed_at]
    if len(sends) < 2:
        raise RuntimeError("fewer than 2 probes of the primary answered before the kill")
    gaps = [(b - a) * 1000.0 for a, b in zip(sends[1:], sends[2:])]
    gaps = [g for g in gaps if 0.5 * interval_ms < g < 1.5 * interval_ms]  # none skipped by the polling
    period = statistics.fmean(gaps) if gaps else interval_ms
    phase = (killed_at - sends[-1]) * 1000.0
    # Clipped to 1 us before the next probe: the twin's crash must not round past that heartbeat.
    return {"period_ms": period, "late_ms": max(0.0, period - interval_ms), "phase_ms": min(phase, period - 1e-3),
            "phase_raw_ms": phase, "probes_before": len(sends)}


def twin_timing(not_before_ms: float, interval_ms: float, inputs: Dict[str, float]) -> Tuple[float, Dict[str, float]]:
    """A twin's crash instant (the first at or after ``not_before_ms`` at the measured phase of
    its heartbeats) and its SimConfig detector timing, from probe_inputs' ``inputs``."""
    step = interval_ms + inputs["late_ms"]
    crash = math.ceil(not_before_ms / step) * step + inputs["phase_ms"]
    return crash, {"heartbeat_late_ms": inputs["late_ms"], "check_interval_ms": MANAGER_CHECK_MS}


def real_runs(settings: Settings, mode: str, log: Any) -> List[Dict[str, Any]]:
    """``runs`` kills; each with its detection, recovery and the prober's timing before it."""
    from failover_bench import REPLIKIT_PRESETS, describe, local_run, start_replikit_manager

    interval_ms = REPLIKIT_PRESETS[settings.preset][2]
    runs = []
    for i in range(settings.runs):
        probes = ProbeLog()
        managers: List[Any] = []

        def start(cluster: Any, probes: ProbeLog = probes, managers: List[Any] = managers) -> Any:
            manager = start_replikit_manager(cluster, settings.preset, on_db=probes.attach)
            managers.append(manager)
            inner = manager.stop

            def stop() -> None:
                probes.stop()  # before the manager closes its database
                inner()

            manager.stop = stop
            return manager

        result = local_run(start, mode, False)
        log(f"  {mode} run {i + 1}/{settings.runs}: {describe(result)}")
        if result.seconds is None or result.detect_s is None or result.promote_s is None or result.failed_at is None:
            raise RuntimeError(f"a {mode} failover did not complete: {result.note}")
        inputs = probe_inputs(probes.rows, result.failed_at, interval_ms)
        # Whether the manager carried the synchronous setting over to the new primary (the twin's
        # mode_after_promotion, killtwins.mode_after_promotion).
        carried = managers[-1].synchronous_standby_names if managers else None
        runs.append({"detection_ms": result.detect_s * 1000.0, "recovery_ms": result.seconds * 1000.0,
                     "promotion_ms": (result.seconds - result.detect_s) * 1000.0,
                     "pg_promote_ms": result.promote_s * 1000.0, "lost": result.lost,
                     "acked_before": result.acked_before, **inputs,
                     "sync_carried": bool(carried), "synchronous_standby_names": carried or "",
                     "probes": [dict(r, at_ms=(r["at"] - result.failed_at) * 1000.0) for r in probes.rows
                                if abs(r["at"] - result.failed_at) < 1.0]})
    return runs


def real_figures(runs: List[Dict[str, Any]]) -> Dict[str, float]:
    out = {
        "detection_ms": statistics.median(r["detection_ms"] for r in runs),
        "promotion_ms": statistics.median(r["promotion_ms"] for r in runs),
        "pg_promote_ms": statistics.median(r["pg_promote_ms"] for r in runs),
        "recovery_ms": statistics.median(r["recovery_ms"] for r in runs),
        "lost_acknowledged": statistics.fmean(r["lost"] for r in runs),
        "acknowledged_before": statistics.fmean(r["acked_before"] for r in runs),
        "phase_ms": statistics.median(r["phase_ms"] for r in runs),
        "late_ms": statistics.median(r["late_ms"] for r in runs),
    }
    for key in ("detection_ms", "recovery_ms", "phase_ms"):
        out[key + "_min"] = min(r[key] for r in runs)
        out[key + "_max"] = max(r[key] for r in runs)
    return out


def sim_config(settings: Settings, mode: str, promotion_ms: float, seed: int,
               run: Optional[Dict[str, Any]] = None) -> Any:
    """Without ``run``: the kill at a seeded phase uniform over one heartbeat interval, the
    heartbeats exactly one interval apart, detection at the heartbeat (the model before the
    prober's timing was measured). With ``run``: that kill's twin: its heartbeats at the
    prober's measured period (heartbeat_late_ms), the kill at its measured phase, the manager
    acting at a uniform phase of its check_interval_ms loop, and its new primary acknowledging as
    the real one did (killtwins.mode_after_promotion)."""
    from failover_bench import REPLIKIT_PRESETS

    from replikit.sim import SimConfig

    _, _, interval_ms, misses = REPLIKIT_PRESETS[settings.preset]
    sim_mode, sync_count = SIM_MODES[mode]
    timing: Dict[str, Any] = {}
    if run is None:
        crash = CRASH_AT_MS + random.Random(seed).uniform(0.0, interval_ms)
    else:
        crash, measured = twin_timing(CRASH_AT_MS, interval_ms, run)
        timing = dict(measured, mode_after_promotion=killtwins.mode_after_promotion(run))
    return SimConfig(duration_ms=crash + 3000.0, write_rate_per_s=WRITE_RATE, read_rate_per_s=0.0,
                     replicas=2, names=["primary", "r1", "r2"], mode=sim_mode, sync_count=sync_count,
                     crash_primary_at_ms=crash, heartbeat_interval_ms=interval_ms, missed_heartbeats=misses,
                     promote_ms=promotion_ms, failover_model="core", **timing)


def _summary(failovers: List[Dict[str, Any]], promotion_ms: float) -> Dict[str, float]:
    if any(f["recovery_ms"] < 0 for f in failovers):
        raise RuntimeError("a simulated failover did not complete")
    detections = [f["detection_ms"] for f in failovers]
    recoveries = [f["recovery_ms"] for f in failovers]
    return {
        "detection_ms": statistics.median(detections),
        "detection_ms_min": min(detections), "detection_ms_max": max(detections),
        "promotion_ms": promotion_ms,
        "recovery_ms": statistics.median(recoveries),
        "recovery_ms_min": min(recoveries), "recovery_ms_max": max(recoveries),
        "lost_acknowledged": statistics.fmean(f["writes_lost_acknowledged"] for f in failovers),
    }


def sim_figures(settings: Settings, mode: str, promotion_ms: float,
                runs: Optional[List[Dict[str, Any]]] = None) -> Dict[str, Any]:
    """The prediction: with ``runs``, each real kill's twin over ``sim_runs`` seeds, pooled
    (and per kill, ``twins``); without, kills at a uniform phase."""
    from replikit.sim import simulate

    seeds = range(settings.seed, settings.seed + settings.sim_runs)
    if runs is None:
        return _summary([simulate(sim_config(settings, mode, promotion_ms, s), s).failover for s in seeds],
                        promotion_ms)
    twins = [[simulate(sim_config(settings, mode, promotion_ms, s, run), s).failover for s in seeds] for run in runs]
    out: Dict[str, Any] = _summary([f for twin in twins for f in twin], promotion_ms)
    out["twins"] = [statistics.median(f["detection_ms"] for f in twin) for twin in twins]
    return out


FIGURES = [
    ("detection_ms", "detection, median (ms)", "model"),
    ("promotion_ms", "detection -> writes accepted, median (ms)", "input"),
    ("recovery_ms", "kill -> writes accepted, median (ms)", "model + input"),
    ("lost_acknowledged", "acknowledged writes lost, mean per kill", "absolute"),
]


def settings_interval(settings: Settings) -> float:
    from failover_bench import REPLIKIT_PRESETS

    return REPLIKIT_PRESETS[settings.preset][2]


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
DELAY_INPUTS = {"run": "delays from offset reads, per kill", "mode": "delays from offset reads, pooled per mode",
                "before_only": "delays from offset reads before the kill only (also after the crash), per kill",
                "poisson": "delays per kill, the twins' own Poisson arrivals instead of the run's schedule"}


def reads_comparison(settings: Settings, mode: str, promotion_ms: float, log: Any) -> Dict[str, Any]:
    """``read_runs`` kills with reads and, for each, its simulated twin (``sim_runs`` seeds);
    the comparison per window (fidelity/windowstats.py), once per DELAY_INPUTS."""
    log(f"{mode}: {settings.read_runs} real kills with reads ...")
    real = killtwins.real_reads(settings.preset, mode, settings.read_runs, settings.seed, log)
    # The readers' lateness around the session writes, pooled over the mode's kills: each twin draws
    # its eventual reads' instants before the crash from it (fidelity.readshift).
    shifts = readshift.pooled(real)
    real = [dict(run, read_shifts=shifts) for run in real]
    seeds = range(settings.seed, settings.seed + settings.sim_runs)
    pooled = sent_delay_quantiles([o for run in real for o in run["offsets"]],
                                  [v for run in real for v in run["probe_latencies"]])
    after_offsets = [o for run in real for o in run["offsets_after"]]
    after_latencies = [v for run in real for v in run["probe_latencies_after"]]
    pooled_after = sent_delay_quantiles(after_offsets, after_latencies) if after_offsets and after_latencies else []
    twins = {name: [] for name in DELAY_INPUTS}  # type: Dict[str, List[Dict[str, Any]]]
    for run in real:
        for name in DELAY_INPUTS:
            inputs = run if name != "mode" else dict(run, delays=killtwins.twin_delays(run, pooled),
                                                     delays_after=killtwins.twin_delays_after(run, pooled_after))
            twin = killtwins.sim_run_counts(settings.preset, mode, promotion_ms, seeds, inputs,
                                            after=name != "before_only", replay=name != "poisson")
            twin["outage_ms"] = twin.pop("outage_ms_mean")
            twins[name].append(twin)
    fed = {side: {"before": {}, "after": {}} for side in ("real", "sim")}  # fidelity.probesamples, pooled
    for run, twin in zip(real, twins["run"]):
        for window in ("before", "after"):
            probesamples.add(fed["real"][window], run["probes"][window])
            probesamples.add(fed["sim"][window], twin["probes"][window])
    real_counts = [run["counts"] for run in real]
    sim_counts = {name: [twin["windows"] for twin in twins[name]] for name in DELAY_INPUTS}
    scale = killtwins.fit_delay_scale(settings.preset, mode, promotion_ms, real, seeds)  # a check, not an input
    return {"real": {"kills": len(real), "reads": statistics.fmean(run["reads"] for run in real),
                     "offset_reads": sum(len(run["offsets"]) for run in real),
                     "delay_median_ms": statistics.median(pooled), "delay_mean_ms": statistics.fmean(pooled),
                     "offset_reads_after": len(after_offsets),
                     "delay_after_median_ms": statistics.median(pooled_after) if pooled_after else None,
                     "delay_after_mean_ms": statistics.fmean(pooled_after) if pooled_after else None,
                     "delay_scale_diagnostic": scale,
                     "repoint_ms_median": statistics.median(run["repoint_ms"] for run in real),
                     "switch_ms_median": statistics.median(run["switch_ms"] for run in real),
                     "outage_ms_median": statistics.median(run["outage_ms"] for run in real),
                     "read_shifts": shifts,
                     # Each kill with its twin's inputs (its seed, delays, round trips): saved kills can be
                     # re-predicted (killtwins.sim_run_counts, fidelity/lagreplay.py) without new real runs.
                     "runs": [{k: v for k, v in run.items() if k not in ("offsets", "probe_latencies", "read_shifts",
                                                                          "offsets_after", "probe_latencies_after")}
                              for run in real]},
            "sim": {"reads": statistics.fmean(twin["reads"] for twin in twins["run"]),
                    "outage_ms_median": statistics.median(twin["outage_ms"] for twin in twins["run"]),
                    "runs": twins["run"], "runs_pooled_delays": twins["mode"]},
            "probes": fed, "comparison": windowstats.compare(real_counts, sim_counts["run"], settings.seed),
            "comparison_pooled_delays": windowstats.compare(real_counts, sim_counts["mode"], settings.seed),
            "comparison_before_delays": windowstats.compare(real_counts, sim_counts["before_only"], settings.seed),
            "comparison_poisson": windowstats.compare(real_counts, sim_counts["poisson"], settings.seed),
            "real_counts": real_counts, "sim_counts": sim_counts}


def run(settings: Settings, json_path: Optional[str], log: Any = print) -> Dict[str, Any]:
    """Per mode: the real runs, the simulated runs, the table; returns the comparisons by mode."""
    out: Dict[str, Any] = {}
    all_reads: Dict[str, List[Any]] = {"real": [], "run": [], "mode": [], "before_only": [], "poisson": []}
    started = time.monotonic()
    load = {"start": list(os.getloadavg())}  # the figures move with the machine's load: saved with them
    for mode in settings.mode_list():
        log(f"{mode}: {settings.runs} real kills (replikit FailoverManager, preset {settings.preset}) ...")
        runs = real_runs(settings, mode, log)
        real = real_figures(runs)
        sim = sim_figures(settings, mode, real["promotion_ms"], runs)
        uniform = sim_figures(settings, mode, real["promotion_ms"])
        out[mode] = {"real": real, "sim": sim, "comparison": compare(real, sim), "runs": runs,
                     "sim_uniform_phase": uniform, "comparison_uniform_phase": compare(real, uniform)}
        if settings.read_runs:
            out[mode]["reads"] = reads_comparison(settings, mode, real["promotion_ms"], log)
            all_reads["real"] += out[mode]["reads"].pop("real_counts")
            for name, counts in out[mode]["reads"].pop("sim_counts").items():
                all_reads[name] += counts
    log(f"simulated: {settings.sim_runs} seeded runs per mode (seeds {settings.seed}.."
        f"{settings.seed + settings.sim_runs - 1}); real and simulated {time.monotonic() - started:.0f} s")
    for mode, result in out.items():
        real, sim, pad = result["real"], result["sim"], " " * (len(mode) + 2)
        print_table(mode, result["comparison"], log)
        log(f"{pad}spread over the kills: detection {real['detection_ms_min']:.0f}..{real['detection_ms_max']:.0f} ms "
            f"measured, {sim['detection_ms_min']:.0f}..{sim['detection_ms_max']:.0f} simulated; kill -> writes "
            f"accepted {real['recovery_ms_min']:.0f}..{real['recovery_ms_max']:.0f} measured, "
            f"{sim['recovery_ms_min']:.0f}..{sim['recovery_ms_max']:.0f} simulated")
        errors = [t - r["detection_ms"] for t, r in zip(sim["twins"], result["runs"])]
        log(f"{pad}inputs measured before each kill: the kill {real['phase_ms']:.0f} ms after the last answered probe "
            f"(median; {real['phase_ms_min']:.0f}..{real['phase_ms_max']:.0f}), probes every "
            f"{settings_interval(settings) + real['late_ms']:.2f} ms (median); twin - kill, detection: "
            f"{min(errors):+.0f}..{max(errors):+.0f} ms")
        uniform = result["comparison_uniform_phase"]
        log(f"{pad}kills at a uniform phase instead (the model without the measured timing): detection "
            f"{uniform['detection_ms']['predicted']:.0f} ms ({uniform['detection_ms']['relative_error'] * 100:.1f}%), "
            f"kill -> writes accepted {uniform['recovery_ms']['predicted']:.0f} ms "
            f"({uniform['recovery_ms']['relative_error'] * 100:.1f}%); pg_promote returned after "
            f"{real['pg_promote_ms']:.0f} ms (median; it polls every 100 ms)")
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
                f"scale that would fit the stale share before the kill: {real_r['delay_scale_diagnostic']:.2f}; after "
                f"the recovery {real_r['offset_reads_after']} offset reads, pooled delay mean "
                f"{real_r['delay_after_mean_ms'] or float('nan'):.3f} ms")
            for window, label in (("before", "before the kill"), ("after", "after the recovery")):
                log(f"{mode} reads: what the lag tracker was fed {label}, replica samples "
                    f"(fidelity.probesamples): measured {probesamples.summary(reads['probes']['real'][window])}; "
                    f"twins {probesamples.summary(reads['probes']['sim'][window])}")
            windowstats.print_table(f"{mode} reads, {DELAY_INPUTS['run']}", reads["comparison"], log)
            windowstats.print_table(f"{mode} reads, {DELAY_INPUTS['mode']}", reads["comparison_pooled_delays"], log)
            windowstats.print_table(f"{mode} reads, {DELAY_INPUTS['poisson']}", reads["comparison_poisson"], log)
            windowstats.print_table(f"{mode} reads, {DELAY_INPUTS['before_only']}", reads["comparison_before_delays"],
                                    log)
    pooled = pooled_mode = pooled_before = pooled_poisson = None
    if len(out) > 1 and all_reads["real"]:
        pooled = windowstats.compare(all_reads["real"], all_reads["run"], settings.seed)
        pooled_mode = windowstats.compare(all_reads["real"], all_reads["mode"], settings.seed)
        pooled_before = windowstats.compare(all_reads["real"], all_reads["before_only"], settings.seed)
        pooled_poisson = windowstats.compare(all_reads["real"], all_reads["poisson"], settings.seed)
        kills = len(all_reads["real"])
        windowstats.print_table(f"all modes pooled ({kills} kills), {DELAY_INPUTS['run']}", pooled, log)
        windowstats.print_table(f"all modes pooled ({kills} kills), {DELAY_INPUTS['mode']}", pooled_mode, log)
        windowstats.print_table(f"all modes pooled ({kills} kills), {DELAY_INPUTS['before_only']}", pooled_before, log)
        windowstats.print_table(f"all modes pooled ({kills} kills), {DELAY_INPUTS['poisson']}", pooled_poisson, log)
    if json_path:
        load["end"] = list(os.getloadavg())
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump({"scenario": "kill", "settings": vars(settings), "load": load, "modes": out,
                       "reads_all_modes": pooled, "reads_all_modes_pooled_delays": pooled_mode,
                       "reads_all_modes_before_delays": pooled_before, "reads_all_modes_poisson": pooled_poisson},
                      fh, indent=2)
    return out
