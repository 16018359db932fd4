"""The "replay delayed" scenario: r1 replays each write no earlier than delay_ms after its
commit (recovery_min_apply_delay, set before the workload starts and for the whole run); in
the simulator, SimConfig.apply_delays with the same delay (an input, not fitted).

PostgreSQL holds only commit records (recoveryApplyDelay in xlogrecovery.c): a write's row WAL
is replayed on arrival and r1's replay LSN waits just before the commit record, so the lag
tracker, interpolating the primary's (LSN, time) samples, places it late in the probe interval
that saw the commit. The simulator holds the replay LSN there too (SimConfig.commit_record_bytes);
the insert's row and commit record sizes are measured on this cluster (pg_current_wal_insert_lsn
around the INSERT and the COMMIT of a few transactions) and passed in.

The commit-to-visible delay is read from r1's own reads, so it needs r1 to serve reads: a delay
above the lag tracker's max_lag_ms takes r1 out of routing and leaves that figure nan (the
tracked lag, e.g. 2426 ms measured vs 2423 ms predicted with --delay-ms 2500, still compares).
"""

from __future__ import annotations

import bisect
import copy
import json
import statistics
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from fidelity.common import (TABLE, Measured, WorkloadSettings, base_sim_config, compare, half_round_trips,
                             mean_of_runs, one_delay, print_table, reasons, replication_delay, run_real,
                             seeds_of, stale_share)

WARM_UP_S = 1.0  # the lag figures leave out the first second (the tracker's first probes)
WAL_PROBES = 21  # transactions whose WAL is measured (medians)

FIGURES = [
    ("r1_visible_after_ms", "r1 commit-to-visible delay, mean (ms)"),
    ("r1_mean_lag_ms", "r1 mean tracked lag (ms)"),
    ("eventual_stale_rate", "eventual stale-read rate"),
    ("eventual_stale_from_delay", "  of which added by the delay"),
    ("primary_read_share", "primary read share"),
    ("ryw_stale_reads", "read-your-writes stale reads"),
]


@dataclass
class Settings(WorkloadSettings):
    # 60 s: r1's mean tracked lag at 50 ms is the mean over ~1200 commits' holds, each sampled at
    # the phase of the 100 ms probes; over 20 s it varies by ~7% between runs (the simulator's
    # seeds; two real 20 s runs of one write schedule: 16.4 and 19.5 ms), over 60 s by ~4%.
    run_s: float = 60.0
    # 20 writes/s and a 50 ms delay: a read on r1 misses the newest commit about
    # 1 - exp(-20 x 0.05) = 63% of the time, and r1 stays under max_lag_ms (it keeps serving).
    write_rate: float = 20.0
    delay_ms: float = 50.0

    def check(self) -> None:
        if not 0 < self.delay_ms <= 60_000:
            raise SystemExit("delay-ms must be in (0, 60000]")
        super().check()


def measure_wal_bytes(dsn: str, count: int = WAL_PROBES) -> Tuple[int, int]:
    """The workload insert's WAL on the primary at ``dsn``: (bytes before the commit record,
    commit record bytes), medians over ``count`` transactions, from pg_current_wal_insert_lsn
    before the INSERT, after it and after the COMMIT (other WAL in between only disturbs a few)."""
    import psycopg

    rows, commits = [], []
    with psycopg.connect(dsn, autocommit=True) as conn:
        def lsn() -> Any:
            return conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]

        def diff(a: Any, b: Any) -> int:
            return int(conn.execute("SELECT pg_wal_lsn_diff(%s, %s)::bigint", (a, b)).fetchone()[0])

        for i in range(count):
            before = lsn()
            with conn.transaction():
                conn.execute(f"INSERT INTO {TABLE} (id, session) VALUES (%s, -3)", (-800_000 - i,))
                inserted = lsn()
            committed = lsn()
            rows.append(diff(inserted, before))
            commits.append(diff(committed, inserted))
    return int(statistics.median(rows)), int(statistics.median(commits))


def prepare(settings: Settings, wal: Dict[str, int]):
    """The fault (r1's apply delay, checked); first measures the insert's WAL into ``wal``."""
    def delay(cluster: Any, log: Any) -> None:
        import psycopg

        wal["row_bytes"], wal["commit_record_bytes"] = measure_wal_bytes(cluster.dsn("primary"))
        log(f"the workload's insert writes {wal['row_bytes']} bytes of WAL, then a commit record of "
            f"{wal['commit_record_bytes']} bytes (medians of {WAL_PROBES} transactions)")
        cluster.sql("r1", f"ALTER SYSTEM SET recovery_min_apply_delay = '{settings.delay_ms:g}ms'")
        cluster.sql("r1", "SELECT pg_reload_conf()")
        # The startup process reads the setting when it handles the reload: check it took
        # effect with one commit watched from r1 (the calibration's method).
        deadline = time.monotonic() + 10
        limit_s = settings.delay_ms / 1000.0 + 2.0
        with psycopg.connect(cluster.dsn("primary"), autocommit=True) as prim, \
                psycopg.connect(cluster.dsn("r1"), autocommit=True) as rep:
            for attempt in range(100):
                seen = one_delay(prim, rep, -900_000 - attempt, limit_s)
                if seen >= 0.9 * settings.delay_ms or time.monotonic() > deadline:
                    break
        if seen < 0.9 * settings.delay_ms:
            raise RuntimeError(f"recovery_min_apply_delay did not take effect on r1 ({seen:.1f} ms)")
        log(f"r1 replays with recovery_min_apply_delay = {settings.delay_ms:g} ms "
            f"(a commit seen on r1 after {seen:.1f} ms)")
    return delay


def _r2_stale(m: Measured) -> float:
    """Stale share of r2's reads (any level): the replica the delay does not touch."""
    return stale_share(m, [r for r in m.reads if r.node == "r2"])


def visible_after_ms(m: Measured, node: str = "r1") -> float:
    """Mean delay from a commit to its row visible on ``node``, from the run's reads there: a
    commit becomes visible between the last read that lacked it and the first that had it
    (reads every ~5 ms); the middle of that bracket, less the commit instant (server clocks)."""
    reads = sorted((r.executed, r.visible) for r in m.reads if r.node == node)
    if not reads:
        return float("nan")
    times = [t for t, _ in reads]
    highest: List[int] = []
    for _, visible in reads:
        highest.append(max(visible, highest[-1]) if highest else visible)
    start = times[0] + WARM_UP_S
    delays = []
    for committed, row_id in m.commits:
        k = bisect.bisect_left(highest, row_id)
        if committed < start or k == len(highest) or k == 0:
            continue
        before = max(times[k - 1], committed)
        delays.append((before + times[k]) / 2 - committed)
    return statistics.fmean(delays) * 1000.0 if delays else float("nan")


def real_figures(m: Measured) -> Dict[str, float]:
    m.commits.sort()
    eventual = [r for r in m.reads if r.level == "eventual"]
    ryw = [r for r in m.reads if r.level == "read_your_writes"]
    on_r1 = [r for r in eventual if r.node == "r1"]
    # Added by the delay: r1's stale eventual reads less the share r2 has without a delay.
    from_delay = (stale_share(m, on_r1) - _r2_stale(m)) * len(on_r1) / max(1, len(eventual))
    lag = [v for t, v in m.lag if t >= WARM_UP_S]
    return {
        "r1_visible_after_ms": visible_after_ms(m),
        "r1_mean_lag_ms": statistics.fmean(lag) if lag else float("nan"),
        "eventual_stale_rate": stale_share(m, eventual),
        "eventual_stale_from_delay": from_delay,
        "eventual_stale_rate_acked": sum(r.stale for r in eventual) / max(1, len(eventual)),
        "r1_eventual_stale_share": stale_share(m, on_r1),
        "primary_read_share": sum(r.node == "primary" for r in m.reads) / max(1, len(m.reads)),
        "ryw_stale_reads": float(sum(r.stale for r in ryw)),
        "reads": float(len(m.reads)),
        "writes": float(m.writes),
    }


def sim_config(settings: Settings, m: Measured, delays: List[float], options: Any,
               wal: Optional[Dict[str, int]] = None) -> Any:
    config = base_sim_config(settings, m, replication_delay(settings, _r2_stale(m), delays), options)
    config.apply_delays = {"r1": settings.delay_ms}
    if wal:  # measured on the real cluster (else SimConfig's defaults, measured the same way)
        config.commit_record_bytes = 1  # each setter checks the whole value: commit <= total
        config.write_size_bytes = wal["row_bytes"] + wal["commit_record_bytes"]
        config.commit_record_bytes = wal["commit_record_bytes"]
    return config


def _one_sim(result: Any, prompt: Any) -> Dict[str, float]:
    import numpy as np

    times = np.asarray(result.sample_times_ms) / 1000.0
    tracked = np.asarray(result.tracked_lag_ms["r1"])
    keep = (times >= WARM_UP_S) & ~np.isnan(tracked)
    stale = float(result.stale_read_rate.get("eventual", 0.0))
    return {
        # Commit -> replayed on r1 (the simulator's exact figure; the real one is bracketed).
        "r1_visible_after_ms": float(result.replicas["r1"]["mean_apply_delay_ms"]),
        "r1_mean_lag_ms": float(tracked[keep].mean()) if keep.any() else float("nan"),
        "eventual_stale_rate": stale,
        "eventual_stale_from_delay": stale - float(prompt.stale_read_rate.get("eventual", 0.0)),
        "primary_read_share": float(result.primary_read_share),
        "ryw_stale_reads": float(result.levels["read_your_writes"]["stale"]),
        "reads": float(result.reads_answered),
        "writes": float(result.writes_acknowledged),
    }


def run(settings: Settings, json_path: Optional[str], log: Any = print) -> Dict[str, Dict[str, Any]]:
    """The real run, the simulated runs, the table; returns the comparison."""
    from replikit.sim import simulate

    wal: Dict[str, int] = {}
    measured, delays, options = run_real(settings, None, log, prepare=prepare(settings, wal))
    real = real_figures(measured)
    log(f"real run: {int(real['writes'])} writes ({measured.write_errors} failed), "
        f"{int(real['reads'])} reads ({measured.read_errors} failed); r1 served "
        f"{sum(r.node == 'r1' for r in measured.reads)} reads, of its eventual reads "
        f"{real['r1_eventual_stale_share']:.3f} stale")
    config = sim_config(settings, measured, delays, options, wal)
    log(f"matched: probe interval {config.probe_interval_ms:.1f} ms, apply delay of r1 "
        f"{settings.delay_ms:g} ms (the setting), WAL per write {config.write_size_bytes} bytes of which "
        f"{config.commit_record_bytes} the commit record (measured), replication delay mean "
        f"{config.replica_latency.mean_ms():.3f} ms, client latency mean {config.client_latency.mean_ms():.3f} ms")
    started = time.perf_counter()
    seeds = seeds_of(settings)
    prompt_config = copy.copy(config)
    prompt_config.apply_delays = {}
    results = [simulate(config, seed) for seed in seeds]
    sim = mean_of_runs([_one_sim(r, simulate(prompt_config, seed)) for r, seed in zip(results, seeds)],
                       worst=("ryw_stale_reads",))
    log(f"simulated: {len(seeds)} runs with and without the delay (seeds {seeds[0]}..{seeds[-1]}), "
        f"mean {sim['writes']:.0f} writes, {sim['reads']:.0f} reads; {time.perf_counter() - started:.2f} s")
    log(f"primary reads by reason: measured {reasons(measured)}, predicted "
        f"{ {k: v for k, v in results[0].primary_read_reasons.items() if v} }")
    table = compare(real, sim, FIGURES)
    print_table(table, FIGURES, log)
    if json_path:
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump({"scenario": "delay", "settings": vars(settings), "real": real, "sim": sim,
                       "comparison": table, "wal_bytes": wal,
                       "calibration": {"replication_delay_ms_median": statistics.median(delays),
                                       "read_half_rtt_ms_median": statistics.median(half_round_trips(measured))}},
                      fh, indent=2)
    return table
