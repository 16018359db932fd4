"""The kill scenario with reads, compared: each real run of fidelity/killreads.py counted per time
window (before the kill, the outage, after the recovery), and its simulated twin built from the
inputs that run measured (see killreads' docstring for what the twin takes and what differs)."""

from __future__ import annotations

import statistics
from typing import Any, Dict, Iterator, List, Optional, Tuple

from fidelity import commitlag, killswitch, probesamples
from fidelity.common import stale_at_execution
from fidelity.delays import matched_per_write_delays
from fidelity.killreads import (KILL_AT_S, LAG_SAMPLE_S, READ_RATE, RUN_S, SESSION_WRITE_RATE, SESSIONS, WARM_S,
                                WINDOWS, probe_offsets, real_run)
from fidelity.twinworkload import (DITHER_MS, WRITE_SERVICE_MS, dithered_reads, real_kill_ms,  # noqa: F401
                                   replayed_workload, twin_reads, workload_shift_ms)


# ------------------------------------------------------------------ counts per window
APPLY_RATE_PER_S = 1e8  # the simulator's highest: a replay of ~0.00001 ms per write
COUNT_KEYS = ("answered", "failed", "primary", "eventual", "eventual_stale", "eventual_stale_acked",
              "read_your_writes", "read_your_writes_stale", "lag_samples", "lag_sum_ms", "lag_max_ms")


def _empty() -> Dict[str, float]:
    return {key: 0.0 for key in COUNT_KEYS}


def real_window(t: float, kill: float, recovered: float) -> str:
    if t < WARM_S or t >= RUN_S:
        return ""
    return "before" if t < kill else "outage" if t < recovered else "after"


def real_counts(run: Dict[str, Any]) -> Dict[str, Dict[str, float]]:
    """One real run's counts per window (reads by the instant they were sent); the recovery as
    the client sees it: its ReplicatedDatabase took the new primary for the primary."""
    kill, recovered, measured = run["kill_s"], run["switched_s"], run["measured"]
    out = {w: _empty() for w in WINDOWS}
    for r in run["reads"]:
        w = real_window(r.sent, kill, recovered)
        if not w:
            continue
        c = out[w]
        c["answered"] += 1
        c["primary"] += r.node == ("primary" if r.sent < recovered else run["promoted"])
        if r.level == "eventual":
            c["eventual"] += 1
            c["eventual_stale"] += stale_at_execution(measured, r)
            c["eventual_stale_acked"] += r.stale
        else:
            c["read_your_writes"] += 1
            c["read_your_writes_stale"] += r.stale
    for t in run["failed_at"]:
        w = real_window(t, kill, recovered)
        if w:
            out[w]["failed"] += 1
    for t, _, lag in run["lag"]:
        w = real_window(t, kill, recovered)
        if w:
            out[w]["lag_samples"] += 1
            out[w]["lag_sum_ms"] += lag
            out[w]["lag_max_ms"] = max(out[w]["lag_max_ms"], lag)
    return out


def sim_counts(result: Any) -> Dict[str, Dict[str, float]]:
    """One simulated run's counts per window: before = SimResult.windows[0] ([WARM_S, crash))."""
    found = {"before": result.windows[0], "outage": result.failover_windows["outage"],
             "after": result.failover_windows["after_recovery"]}
    out = {}
    for w, stats in found.items():
        levels = stats["levels"]
        out[w] = {"answered": stats["reads_answered"], "failed": stats["reads_failed"],
                  "primary": sum(level["served_by_primary"] for level in levels.values()),
                  "eventual": levels["eventual"]["answered"], "eventual_stale": levels["eventual"]["stale"],
                  "eventual_stale_acked": 0.0,  # the simulator has one definition
                  "read_your_writes": levels["read_your_writes"]["answered"],
                  "read_your_writes_stale": levels["read_your_writes"]["stale"],
                  "lag_samples": stats["tracked_lag_samples"],
                  "lag_sum_ms": stats["mean_tracked_lag_ms"] * stats["tracked_lag_samples"],
                  "lag_max_ms": stats["max_tracked_lag_ms"]}
    return out


def add_counts(into: Dict[str, Dict[str, float]], more: Dict[str, Dict[str, float]]) -> None:
    for w, counts in more.items():
        for key, value in counts.items():
            into[w][key] = max(into[w][key], value) if key == "lag_max_ms" else into[w][key] + value


# ------------------------------------------------------------------ the simulated runs
def sim_config(preset: str, mode: str, promotion_ms: float, seed: int, run: Dict[str, Any],
               scale: float = 1.0, after: bool = True, replay: bool = True, offsets_after: bool = True,
               align: bool = True, rounds: bool = True, clients: bool = True, dither_ms: float = DITHER_MS,
               read_shifts: bool = True, shift_after: bool = True) -> Any:
    """The simulated twin of one real run: its inputs measured before its kill (the replication
    delays times ``scale``), its failover timings (promotion_timing): the simulated promotion ends
    when the real client switched to the new primary, the survivor streams again when the real one
    had caught up (repoint_ms after the new primary's first acknowledged write). With
    ``after`` and delays measured after the recovery (run["delays_after"]: the offset probe
    against the new primary, reading the caught-up survivor), those are the replication delays
    from the crash on (replica_latency_after_crash); else the ones before the kill throughout.
    The survivor receives nothing new until the real one had caught up (repoint_ms), then all it
    lacks at once: the real one's replay stays at its old timeline's end while its walreceiver
    already streams the new one (in 360 saved kills, 76 of its probes sent between the two measured
    instants found it there, 2 found it part way; spreading the backlog from the stream instant, as
    the twin did, made its tracked lag after the recovery +55% where this gives +38%, on 240 kills).
    With ``align`` (and ``replay``) the replayed workload and the windows are shifted so that the
    twin's crash falls where the real kill fell in the workload (workload_shift_ms). With
    ``dither_ms`` (and ``replay``) its eventual reads before the crash are moved apart from the
    replayed writes (dithered_reads), unless ``read_shifts`` and the run carries the readers'
    measured lateness around the session writes (run["read_shifts"]: twinworkload.twin_reads);
    with ``shift_after`` too those scheduled from the real outage's end on, as the real readers
    are late around the new primary's writes too: on 360 quiet kills (seeds 6000-6040,
    7000-7040, shifts held out) the stale share after the recovery +9.3% [+6.0, +12.8] ->
    +5.1% [+1.8, +8.4] (sync +15.5% -> +9.7%, semi-sync +10.1% -> +3.1%, async +7.0% -> +4.2%);
    nothing else moved by more than 1 point of error."""
    from failover_bench import REPLIKIT_PRESETS

    from fidelity.kill import SIM_MODES, twin_timing
    from replikit import LatencyDistribution
    from replikit.sim import SimConfig

    probe_ms, _, interval_ms, misses = REPLIKIT_PRESETS[preset]
    sim_mode, sync_count = SIM_MODES[mode]
    # The kill at its measured phase after the primary's last probe, the heartbeats at the
    # prober's measured period, the manager's check loop (fidelity.kill.twin_timing).
    crash, timing = twin_timing(KILL_AT_S * 1000.0, interval_ms, run["detector"])
    # The model's writes are the session writer's: the reads are judged against its rows only.
    # The other writes on the primary (failover_bench's writer, the delay probe's rows) are
    # background writes at the rates measured in this run before the kill and after the
    # recovery: they move the WAL that the lag tracker interpolates on.
    background_before, background_after = run["background_per_s"]
    # The prober sends its queries together, on its own thread, and the machine's load delays
    # them alike: their spread does not reorder the reads (independent draws from a spread of
    # a few ms read a replica before the primary half the time and overstate its lag), so its
    # probes take the median measured half round trip; who is read first comes from the
    # per-node offsets measured in the run. The delays are measured from a row's INSERT, whose
    # COMMIT replikit's write path sends one round trip later, and the primary's flush LSN, which
    # the prober reads, passes the row only then: the twin's prober finds a write in the
    # primary's position that much after its commit (the mean INSERT -> COMMIT of the session
    # writer's rows in the run, from the primary's WAL: fidelity.commitlag), so that the span in
    # which the primary reads ahead of a replica is the replication delay after the COMMIT.
    # The prober sends every node's query at one instant, but the machine's 2 cores run them
    # apart: on a loaded machine one node's query often runs ~0.2-0.5 ms after the others' (the
    # server's pg_stat_activity against the send: fidelity.probesamples.QueryStarts), and a
    # replica read that much after the primary has replayed that much more of what the primary
    # showed. The twin's probes read each node after its measured send -> read lags (before the
    # kill, and from the crash on those measured after the recovery). After the promotion the new primary writes
    # ~180 kB of full-page images within its first ~100 ms (measured per kill between its first
    # samples), over which the tracker interpolates a survivor's position (promotion_wal_bytes).
    # The prober's per-node cadences after the outage are not those before it (a stall on the dead
    # primary sends every overdue query at once, often bringing them together): with
    # ``offsets_after`` the twin's from the crash on are those measured after the promotion.
    # Not modelled here: the real client switches when its prober, probing the promoted node, finds
    # it out of recovery and adopts it (its tracker starts afresh: run["tracker_reset"]), at a probe of
    # every node, so the survivor's next probe comes a whole interval after the switch; the twin's
    # ticks run from 0, and the promotion falls anywhere between two (SimConfig.probe_at_promotion
    # restarts them there: on the 240 campaign kills it moved the primary's read share after the
    # recovery from -2.1% to -1.5%, but the tracked lag after the recovery from +35% to +58%).
    # The real workload holds a session's lock over each of its writes and read-your-writes reads
    # (fidelity.common.Workload): a read that arrives while its session writes leaves after the
    # write, with its token (session_reads_wait_for_writes; without, the primary's read share was
    # -3.1% [-4.4, -1.9] before the kill over the 240 campaign kills at load up to ~13, -0.3% with).
    # The new primary acknowledges as the real one did (mode_after_promotion): in the run's mode
    # when the real manager carried the synchronous setting over to it (keep_synchronous), else
    # at once (a twin whose new primary waited for the detached survivor while the real one did
    # not acknowledged its first writes ~50 ms late, so their sessions' read-your-writes reads
    # still went to the survivor).
    # The delays are measured to a read's seeing the row, the replay included: the twin's replay
    # takes no time of its own (APPLY_RATE_PER_S; at 100,000/s, its 0.01 ms per write came on top of
    # the measured delays, +3.5% of a 0.28 ms mean, and the stale share before the kill with it).
    probe_half = statistics.median(run["probe_half_round_trips"])
    shift = workload_shift_ms(run, crash) if align and replay else 0.0
    return SimConfig(duration_ms=RUN_S * 1000.0 + shift, write_rate_per_s=SESSION_WRITE_RATE,
                     background_write_rate_per_s=background_before,
                     background_write_rate_after_crash_per_s=background_after,
                     read_rate_per_s=READ_RATE, sessions=SESSIONS,
                     consistency_mix={"eventual": 0.5, "read_your_writes": 0.5},
                     replicas=2, names=["primary", "r1", "r2"], mode=sim_mode, sync_count=sync_count,
                     mode_after_promotion=mode_after_promotion(run), session_reads_wait_for_writes=True,
                     crash_primary_at_ms=crash, heartbeat_interval_ms=interval_ms,
                     missed_heartbeats=misses,
                     **promotion_timing(run, promotion_ms), repoint_catch_up_ms=0.0,
                     reset_tracker_on_promotion=run["tracker_reset"],
                     # The real runs record measured lags only (killreads: a lower bound, as through
                     # an outage over the tracker's stale_sample_ms, is left out), so does the twin.
                     tracked_lag_lower_bounds=False,
                     failover_model="core", probe_interval_ms=probe_ms,
                     sample_interval_ms=LAG_SAMPLE_S * 1000.0, window_edges_ms=[WARM_S * 1000.0 + shift, crash],
                     read_service=0.05, write_service=WRITE_SERVICE_MS, apply_rate_per_s=APPLY_RATE_PER_S,
                     replica_latency=LatencyDistribution.empirical([d * scale for d in run["delays"]]),
                     client_latency=LatencyDistribution.empirical(run["half_round_trips"]),
                     probe_latency=probe_half, probe_commit_lag_ms=commitlag.commit_lag_ms(run["commit_lag_ms"]),
                     probe_offsets_ms=run["probe_offsets_ms"], promotion_wal_bytes=run.get("promotion_wal_bytes", 0),
                     probe_offsets_after_crash_ms=offsets_after_crash(run, probe_ms) if offsets_after else [],
                     **run.get("probe_run_lags", {}), **probe_rounds(run, rounds),
                     **timing, **after_crash_delays(run, after),
                     **twin_reads(run, replayed_workload(run, replay, shift, clients), crash, seed, dither_ms,
                                  read_shifts, shift_after))


def promotion_timing(run: Dict[str, Any], promotion_ms: float) -> Dict[str, float]:
    """The twin's promote_ms, repoint_ms and outage_after_promotion_ms. promotion_ms is the median
    measured detection -> first acknowledged write (of the write-only kills); the twin's promotion
    is when the real client switched to the new primary, relative to that write: its session
    writes go there from then on. The survivor streams again when the real one had caught up
    (repoint_ms after the first acknowledged write). The real outage window ends at the client's
    switch as wait_repointed saw it, polled from the first acknowledged write on (switch_ms >= 0):
    the twin's ends as long after its promotion as the real one did after the real switch.

    Runs that recorded the switch from the kill on (run["client_switch_s"], killreads.SwitchWatch)
    give it signed: a synchronous new primary (the synchronous setting carried over) commits the
    writes sent to it at once but acknowledges the first only once the survivor streams, ~60-110
    ms after the client switched (the saved runs 11-14), and the survivor's eventual reads
    meanwhile miss those commits. Runs without it: the switch switch_ms after the first
    acknowledged write, the outage ending at the promotion (the twin of before). With the switch,
    promote_ms here is the model's (the mode's median promotion); simulate_twin then moves the
    promotion onto the switch itself (killswitch.promote_at_switch)."""
    switch_s = run.get("client_switch_s")
    if switch_s is None or run.get("recovered_s") is None:
        return {"promote_ms": promotion_ms + run["switch_ms"],
                "repoint_ms": max(0.0, run["repoint_ms"] - run["switch_ms"])}
    lead_ms = (switch_s - run["recovered_s"]) * 1000.0  # < 0: switched before the first acknowledgement
    edge_s = run["recovered_s"] + run["switch_ms"] / 1000.0  # the real outage's end (killreads: switched_s)
    return {"promote_ms": max(0.0, promotion_ms + lead_ms), "repoint_ms": max(0.0, run["repoint_ms"] - lead_ms),
            "outage_after_promotion_ms": max(0.0, (edge_s - switch_s) * 1000.0)}


def mode_after_promotion(run: Dict[str, Any]) -> Optional[str]:
    """The twin's SimConfig.mode_after_promotion: None (the run's mode throughout) when the real
    FailoverManager carried the synchronous setting over to the new primary (run["sync_carried"]),
    else "async": the real new primary acknowledged on its own. Saved runs without the record are
    from before the manager carried it: "async"."""
    return None if run.get("sync_carried") else "async"


def probe_rounds(run: Dict[str, Any], wanted: bool) -> Dict[str, Any]:
    """The twin's SimConfig.probe_round_lags_ms: the run's probe rounds before the kill whose
    queries left together, each node's run lag in them (probesamples.run_lag_rounds, from its
    run-lag lists paired with its probe records), and probe_round_lags_after_crash_ms: those of
    the promoted node's probes as the primary after the recovery (its lag first). Only when the
    queries ran, not whether those probes found a replica behind. Empty (off) unless ``wanted``
    and the run has measured run lags."""
    lags = run.get("probe_run_lags", {})
    before = lags.get("probe_run_lags_ms") or []
    if not wanted or not before:
        return {}
    records = run["probe_records"]
    out = {"probe_round_lags_ms": probesamples.run_lag_rounds(records, before, WARM_S, KILL_AT_S)}
    after = lags.get("probe_run_lags_after_crash_ms") or []
    promoted = [node for node in ("r1", "r2") if any(rec[2] for rec in records.get(node, {}).values())]
    if after and promoted:
        switched = real_kill_ms(run) / 1000.0 + run["outage_ms"] / 1000.0
        out["probe_round_lags_after_crash_ms"] = probesamples.run_lag_rounds(records, after, switched, RUN_S, promoted[0])
    return {name: rounds for name, rounds in out.items() if rounds}


def offsets_after_crash(run: Dict[str, Any], interval_ms: float) -> List[float]:
    """The twin's probe_offsets_after_crash_ms: per node (primary, r1, r2), the median time from
    the prober's query to the new primary to its query to that node, over the probes sent once
    the prober took it for the primary (its probe records; killreads.probe_offsets); [] when the
    run has no probes of a new primary."""
    records = run["probe_records"]
    promoted = [node for node in ("r1", "r2") if any(rec[2] for rec in records.get(node, {}).values())]
    if not promoted:
        return []
    since = min(rec[0] for rec in records[promoted[0]].values() if rec[2])
    sends = {node: {key: rec[0] for key, rec in per_probe.items() if node != promoted[0] or rec[2]}
             for node, per_probe in records.items()}
    return probe_offsets(sends, RUN_S, interval_ms, since, promoted[0])


def after_crash_delays(run: Dict[str, Any], after: bool) -> Dict[str, Any]:
    """The twin's replication delays from the crash on, when measured in ``run`` and wanted."""
    from replikit import LatencyDistribution

    if not after or not run.get("delays_after"):
        return {}
    return {"replica_latency_after_crash": LatencyDistribution.empirical(run["delays_after"])}


def twin_delays(run: Dict[str, Any], measured: List[float]) -> List[float]:
    """The delays a twin draws per write for delays measured end to end in ``run`` (its link
    delivers in order: fidelity.delays.matched_per_write_delays at the primary's write rate before
    the kill, the session writer's and the background writes)."""
    return matched_per_write_delays(measured, SESSION_WRITE_RATE + run["background_per_s"][0])


def twin_delays_after(run: Dict[str, Any], measured: List[float]) -> List[float]:
    """As twin_delays, for delays measured after the recovery: at the new primary's write rate."""
    return matched_per_write_delays(measured, SESSION_WRITE_RATE + run["background_per_s"][1]) if measured else []


PROBE_TRACE = 2000  # a twin's tracker samples kept (a 4 s run feeds ~120)


def fed_until(kill_s: float) -> float:
    """The end of the window before the kill in which what the lag tracker was fed is compared (s):
    the kill, but no later than KILL_AT_S. From KILL_AT_S on the real kill's machinery runs
    (fidelity.killreads.real_run: the offset probe stopped and joined, then the primary's processes
    frozen one by one; kill_s is when the last one stopped), which the twin does not model: in 120
    kills of two quiet runs the probes answered then found a replica behind in 16 of 89 samples,
    against 2.5% of those before (16 of the 105 found behind before the kill)."""
    return min(kill_s, KILL_AT_S)


def fed_before(records: Dict[str, Dict[Any, Any]]) -> Dict[str, float]:
    """A saved real run's tracker feed before the kill (probesamples.behind_counts up to
    fed_until): from its probe records, for runs saved with the kill's end as the window's."""
    return probesamples.behind_counts(probesamples.real_samples(records), WARM_S, KILL_AT_S)


def simulate_twin(config: Any, seed: int, run: Dict[str, Any], at_switch: bool = True) -> Tuple[Any, float]:
    """One twin's SimResult and the model's outage (ms: the detector's timing and the mode's median
    promotion, recovery + outage_after_promotion_ms, as the real outage is taken). With
    ``at_switch`` and a run that polled the client's switch, simulated again with its promotion at
    that switch (killswitch.promote_at_switch): the same draws up to the promotion, so the same
    detection (checked)."""
    from replikit.sim import simulate

    result = simulate(config, seed)
    if result.failover["recovery_ms"] is None:
        raise RuntimeError(f"a simulated {config.mode} failover did not complete")
    model_outage_ms = result.failover["recovery_ms"] + config.outage_after_promotion_ms
    promote_ms = killswitch.promote_at_switch(run, result.failover["detection_ms"]) if at_switch else None
    if promote_ms is not None:
        detection_ms, config.promote_ms = result.failover["detection_ms"], promote_ms
        result = simulate(config, seed)
        if result.failover["detection_ms"] != detection_ms or result.failover["recovery_ms"] is None:
            raise RuntimeError(f"a twin promoted at the switch detected at {result.failover['detection_ms']} ms, "
                               f"not {detection_ms}, or did not complete")
    return result, model_outage_ms


def sim_run_counts(preset: str, mode: str, promotion_ms: float, seeds: range, run: Dict[str, Any],
                   scale: float = 1.0, after: bool = True, replay: bool = True,
                   offsets_after: bool = True, overrides: Optional[Dict[str, Any]] = None,
                   align: bool = True, rounds: bool = True, clients: bool = True,
                   dither_ms: float = DITHER_MS, read_shifts: bool = True, at_switch: bool = True,
                   shift_after: bool = True) -> Dict[str, Any]:
    """The prediction for one real run: its twin's counts per window summed over ``seeds``, and
    what its lag tracker was fed (fidelity.probesamples, before the kill and after the recovery);
    ``overrides``: SimConfig fields set on every twin's config (what-if re-predictions). With
    ``at_switch`` each twin is simulated again with its promotion at the real client's switch
    (killswitch.promote_at_switch); outage_ms_mean stays the first simulation's: the detector's
    timing and the mode's median promotion, a check, not an input."""
    total = {w: _empty() for w in WINDOWS}
    fed: Dict[str, Dict[str, float]] = {"before": {}, "after": {}}
    reads, outage = 0, 0.0
    for seed in seeds:
        config = sim_config(preset, mode, promotion_ms, seed, run, scale, after, replay, offsets_after, align, rounds,
                            clients, dither_ms, read_shifts, shift_after)
        config.max_probe_samples = PROBE_TRACE
        shift_s = config.duration_ms / 1e3 - RUN_S  # the windows' shift (sim_config's align)
        for name, value in (overrides or {}).items():
            setattr(config, name, value)
        result, model_outage_ms = simulate_twin(config, seed, run, at_switch)
        outage += model_outage_ms
        add_counts(total, sim_counts(result))
        samples = probesamples.sim_samples(result.probe_samples)
        recovered = result.failover_windows["after_recovery"]["from_ms"] / 1e3
        probesamples.add(fed["before"], probesamples.behind_counts(
            samples, WARM_S + shift_s, fed_until(config.crash_primary_at_ms / 1e3 - shift_s) + shift_s))
        probesamples.add(fed["after"], probesamples.behind_counts(samples, recovered, RUN_S + shift_s))
        reads += result.reads_submitted
    return {"windows": total, "reads": reads / len(seeds), "outage_ms_mean": outage / len(seeds), "probes": fed}


def saved_kills(saved: Dict[str, Any]) -> Iterator[Tuple[str, float, Dict[str, Any], Dict[str, Any]]]:
    """Each kill with reads of a saved ``sim_fidelity.py --scenario kill --json`` file: its mode,
    the mode's measured promotion (ms), the kill's record (its counts per window and its twin's
    inputs: real_reads) and its twin's prediction as saved (sim_run_counts)."""
    for mode, result in saved["modes"].items():
        reads = result.get("reads")
        if reads:
            for run, twin in zip(reads["real"]["runs"], reads["sim"]["runs"]):
                yield mode, result["real"]["promotion_ms"], run, twin


AROUND_S = 0.2  # around_recovery: the reads and session commits up to this long after the outage's end


def around_recovery(run: Dict[str, Any]) -> Dict[str, List[List[Any]]]:
    """What decides the outage's stale reads, kept per kill for later analysis: the reads sent from
    the kill until AROUND_S after the outage's end ([sent_s, done_s, node, level, reason, stale as
    the readers are judged, the highest row id seen]) and the session writer's rows committed then
    ([INSERT clock, s from t0; id]; acknowledged rows only, as the judgement takes them)."""
    kill, end, offset = run["kill_s"], run["switched_s"] + AROUND_S, run["epoch_of_t0"]
    reads = [[r.sent, r.done, r.node, r.level, r.reason, stale_at_execution(run["measured"], r), r.visible]
             for r in run["reads"] if kill <= r.sent < end]
    commits = [[c - offset, row] for c, row in run["measured"].commits if kill <= c - offset < end]
    return {"reads": reads, "session_commits": commits}


def lead_text(run: Dict[str, Any]) -> str:
    """The client's switch polled from the kill on, against the first acknowledged write (log text)."""
    if run.get("client_switch_s") is None:
        return "not seen"
    return f"{(run['client_switch_s'] - run['recovered_s']) * 1000.0:+.0f} ms from it"


def real_reads(preset: str, mode: str, runs: int, seed: int, log: Any) -> List[Dict[str, Any]]:
    """``runs`` kills with reads: per run its counts per window and the inputs of its twin."""
    out = []
    for i in range(runs):
        try:
            run = real_run(preset, mode, seed + i)
            if len(run["offsets"]) < 10 or not run["probe_latencies"] or not run["half_round_trips"]:
                raise RuntimeError(f"too few offset reads ({len(run['offsets'])}, {len(run['probe_latencies'])} away "
                                   f"from their row) or replica reads before the kill")
        except RuntimeError as exc:  # one failed kill must not void a long measurement: logged, skipped
            log(f"  {mode} reads run {i + 1}/{runs} (seed {seed + i}) SKIPPED: {exc}")
            continue
        counts = real_counts(run)
        samples = probesamples.real_samples(run["probe_records"])
        fed = {"before": probesamples.behind_counts(samples, WARM_S, fed_until(run["kill_s"])),
               "after": probesamples.behind_counts(samples, run["switched_s"], RUN_S)}
        before, after = counts["before"], counts["after"]
        log(f"  {mode} reads run {i + 1}/{runs}: outage {(run['switched_s'] - run['kill_s']) * 1000:.0f} ms "
            f"(client switch {run['switch_ms']:.0f} ms after the new primary's first write; polled from the kill "
            f"on, {lead_text(run)}), "
            f"{len(run['reads']) + len(run['failed_at'])} reads, {len(run['failed_at'])} failed, stale eventual "
            f"before {before['eventual_stale']:.0f}/{before['eventual']:.0f}, after "
            f"{after['eventual_stale']:.0f}/{after['eventual']:.0f}; delay median "
            f"{statistics.median(run['delays']):.3f} ms, mean {statistics.fmean(run['delays']):.3f} ms (by the "
            f"reads' run instants: {statistics.fmean(run['delays_at_execution'] or [float('nan')]):.3f} ms; "
            f"{len(run['offsets'])} offset reads), "
            f"survivor streams after {run['stream_ms']:.0f} ms, caught up after {run['repoint_ms']:.0f} ms; after "
            f"it, {len(run['offsets_after'])} offset reads, delay mean "
            f"{statistics.fmean(run['delays_after'] or [float('nan')]):.3f} ms; new primary's synchronous_standby_names "
            f"{run['synchronous_standby_names']!r}")
        out.append({"counts": counts, "seed": run["seed"], "kill_s": run["kill_s"], "offsets": run["offsets"], "probe_latencies": run["probe_latencies"],
                    "delays": twin_delays(run, run["delays"]), "delays_matched": True,
                    "measured_delays": run["delays"], "measured_delays_after": run["delays_after"],
                    "probe_records": run["probe_records"], "commit_lag_ms": run["commit_lag_ms"], "probes": fed,
                    "tracker_reset": run["tracker_reset"],
                    "offsets_after": run["offsets_after"], "probe_latencies_after": run["probe_latencies_after"],
                    "delays_after": twin_delays_after(run, run["delays_after"]),
                    "half_round_trips": run["half_round_trips"], "background_per_s": run["background_per_s"],
                    "probe_half_round_trips": run["probe_half_round_trips"], "probe_offsets_ms": run["probe_offsets_ms"],
                    "probe_run_lags": probesamples.twin_run_lags(run["probe_query_starts"], run["probe_records"], WARM_S,
                                                                 run["kill_s"], run["switched_s"], RUN_S),
                    "promotion_wal_bytes": probesamples.promotion_wal_bytes(run["probe_records"], run["promoted"],
                                                                            run["kill_s"]),
                    # (read gap, behind) of the probes before the kill (fidelity/probegap.py), paired exactly.
                    "probe_read_gaps": probesamples.read_gap_rounds(
                        run["probe_records"], probesamples.run_lags_by_probe(run["probe_query_starts"], run["probe_records"],
                                                                             WARM_S, run["kill_s"]),
                        WARM_S, fed_until(run["kill_s"])),
                    "detector": run["detector"], "sync_carried": run["sync_carried"],
                    "synchronous_standby_names": run["synchronous_standby_names"],
                    "repoint_ms": run["repoint_ms"], "switch_ms": run["switch_ms"], "stream_ms": run["stream_ms"],
                    "outage_ms": (run["switched_s"] - run["kill_s"]) * 1000.0,
                    # When writes first reached the new primary (killreads.writes_reached; s from t0).
                    **{key: run[key] for key in ("recovered_s", "client_switch_s", "manager_promoted_s",
                                                 "first_commit_s", "first_session_commit_s")},
                    "around_recovery": around_recovery(run),
                    "reads": float(len(run["reads"]) + len(run["failed_at"])),
                    # Read by read before the kill, for a later look at the stale share (not a twin input).
                    **{key: run[key] for key in ("probe_commit_lag_ms", "eventual_reads_before", "reads_before_scheduled", "session_rows",
                                                 "probe_samples_before", "probe_rows")},
                    # The kill's machinery (not a twin input yet): when the freeze began, and the
                    # background writer's last acknowledgements before the kill.
                    **{key: run[key] for key in ("freeze_started_s", "writer_acks_near_kill")}})
    if len(out) < max(1, runs // 2):
        raise RuntimeError(f"only {len(out)} of {runs} {mode} kills with reads completed")
    return out


# ------------------------------------------------------------------ a check of the delays
FIT_STEPS = 11


def fit_delay_scale(preset: str, mode: str, promotion_ms: float, runs: List[Dict[str, Any]], seeds: range) -> float:
    """A check of the measured delays, not an input: the factor on every run's delays with which
    the twins' stale share of eventual reads before the kill would equal the measured one
    (pooled over ``runs``; bisection on a log scale in [1/20, 5] with the twins' own ``seeds``
    at every step). Near 1 when the delays are measured as the reads are judged (the offset
    reads: 0.8-1.1 per mode); the plpgsql loop's needed 0.46-0.66."""
    import math

    target = (sum(run["counts"]["before"]["eventual_stale"] for run in runs)
              / max(1.0, sum(run["counts"]["before"]["eventual"] for run in runs)))

    def share(scale: float) -> float:
        stale = reads = 0.0
        for run in runs:
            counts = sim_run_counts(preset, mode, promotion_ms, seeds, run, scale)["windows"]["before"]
            stale, reads = stale + counts["eventual_stale"], reads + counts["eventual"]
        return stale / max(1.0, reads)

    lo, hi = math.log(0.05), math.log(5.0)
    for _ in range(FIT_STEPS):
        mid = (lo + hi) / 2.0
        if share(math.exp(mid)) < target:
            lo = mid
        else:
            hi = mid
    return math.exp((lo + hi) / 2.0)
