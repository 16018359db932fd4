"""The kill twins' requests (fidelity/killtwins.py's sim_config): the real run's seeded schedules
replayed, moved to where the real kill fell, and its eventual reads before the crash dithered
(dithered_reads, the twins before fidelity.readshift) or shifted by the readers' measured lateness
around the session writes (twin_reads: fidelity.readshift).

The replayed schedule (moved here from fidelity/killreads.py):

Why the twin replays the schedule rather than drawing Poisson arrivals of its own: right after
the recovery the survivor lacks every new write for ~50-80 ms, and most eventual reads sent then
are stale; that window holds ~8 reads per kill, and they make up most of the stale reads after the
recovery. The read runs use seeds 1, 2, ... in every mode, so the same schedules recur, and theirs
are not average there. Seeds 1..20 schedule 6.8 eventual reads per kill in [2.40, 2.48) s, where
1000 seeds average 7.9; seeds 300..311 schedule 6.1. Twins with draws of their own predicted the
expectation: on 36 kills (seeds 300..311, the three modes), the stale share after the recovery
was +41% [+24, +64]. The same kills re-predicted with their schedules replayed: +9% [-5, +25].
Before the kill: -2% and +1%. The real readers were not held back: their reads left at the
scheduled instants (median 0.1 ms late), and the dip in the reads sent in [switch, switch + 80 ms]
was the schedules'. The Poisson twins are still printed (kill.DELAY_INPUTS "poisson").
The twin's crash falls on its own probe grid, which starts at 0 where the real prober's starts
anywhere: 10-23 ms (in some kills ~110 ms) after the real kill's instant in the schedule. Its
replayed requests and windows are moved by as much (killtwins.workload_shift_ms; the real kill's
instant is saved as kill_s), so that the reads and writes right after the recovery are the real
run's: on 180 saved kills re-predicted, the primary's read share after the recovery went from
-8.2% to -5.5% with this alone (and to -1.0% with the new primary acknowledging at once, below).
"""

from __future__ import annotations

import statistics
from typing import Any, Dict, Optional

from fidelity import readshift
from fidelity.killreads import KILL_AT_S, RUN_S, workload_arrivals

# The twin's eventual reads before the crash are dithered by up to this much either way (half the
# session writer's mean gap between writes): see dithered_reads.
DITHER_MS = 10.0
WRITE_SERVICE_MS = 0.1  # killtwins.sim_config's write_service: a twin's write commits when it ends


def replayed_workload(run: Dict[str, Any], replay: bool, shift_ms: float = 0.0, clients: bool = False) -> Dict[str, Any]:
    """The twin's session writes and reads: with ``replay``, the real run's own (its seeded
    schedules: the same instants, sessions and levels; killreads.workload_arrivals) ``shift_ms``
    later (those then outside [0, RUN_S + shift_ms) left out), else Poisson draws of the twin's
    seed at the same rates. Right after the recovery a few reads decide the stale share (the
    survivor lacks every new write for ~50-80 ms: most reads then are stale), so independent draws
    compare the real run's sample of that window with its expectation. With ``clients`` the twin's
    requests leave as the real workload's threads send them (SimConfig.sequential_writes,
    read_arrival_readers): one writer and READERS readers, each waiting for its last request's
    answer. It matters where a write waits long: a synchronous new primary holds the first write it
    is sent until the survivor streams, the writer's next writes wait behind it, and a reader whose
    read-your-writes read waits for that session's write sends its next reads only after it."""
    if not replay:
        return {}
    end = RUN_S * 1000.0 + shift_ms
    out = {name: [(t + shift_ms, *rest) for t, *rest in arrivals if 0.0 <= t + shift_ms < end]
           for name, arrivals in workload_arrivals(run["seed"], readers=clients).items()}
    if clients:  # one writer thread, reader threads: each sends its requests one at a time
        out["read_arrival_readers"] = [reader for *_, reader in out["read_arrivals"]]
        out["read_arrivals"] = [read[:3] for read in out["read_arrivals"]]
        out["sequential_writes"] = True
    return out


def dithered_reads(workload: Dict[str, Any], dither_ms: float, crash_ms: float, seed: int) -> Dict[str, Any]:
    """The replayed workload with each eventual read sent before the crash (``dither_ms`` or more
    before it) moved by a uniform draw in [-dither_ms, dither_ms] (the twin's ``seed``; at 0 at
    the earliest), the reads re-sorted with their readers; unchanged without a replayed workload or
    at dither_ms 0. Why: the twin's stale share before the kill counts the eventual reads that
    reach a replica within a replication delay after a session write's commit (~0.1-0.5 ms after
    it is scheduled), so replayed to the microsecond it follows the schedules' chance pairs of a
    read just after a write: on the 20 schedules of a campaign run, that density was 0.65 to 1.20
    times a Poisson stream's (fidelity/stalereads.py), and the twins' error before the kill went
    with it (+0.2% to +38.3% in four runs of 60 kills; between the runs Q = 10.6 on 3 degrees of
    freedom). The real requests keep their schedule less tightly (a session row's INSERT 0.22-0.47
    ms after its scheduled instant, 10-90%, a tail of ms, later when a read was scheduled within
    0.2 ms of it; the twin's writes commit ~0.2-0.34 ms after theirs), and the real stale shares
    did not follow the schedules: dithered, the four runs' errors were +10.5%, +7.8%, +16.2% and
    +28.9% (Q = 3.3; what remained: fidelity/readshift.py, whose measured shifts the twins now draw instead
    (twin_reads)). The read-your-writes
    reads, the writes and the reads after the crash keep their instants (the reads right after
    the recovery are few and decide its figures: see replayed_workload)."""
    import random

    if dither_ms <= 0 or "read_arrivals" not in workload:
        return workload
    rng = random.Random(seed)
    return readshift.moved_reads(workload, lambda t, level: max(0.0, t + rng.uniform(-dither_ms, dither_ms))
                                 if level == "eventual" and t + dither_ms < crash_ms else t)


def real_kill_ms(run: Dict[str, Any]) -> float:
    """When the real primary was killed (ms from the run's start): saved by real_reads (kill_s);
    in runs saved before it, the kill's measured phase after the prober's last send to the primary
    (detector["phase_raw_ms"]) added to the send it follows, the first after which it falls at
    KILL_AT_S or later (the kill follows KILL_AT_S by a few ms, less than a probe period)."""
    if "kill_s" in run:
        return run["kill_s"] * 1000.0
    phase_s = run["detector"]["phase_raw_ms"] / 1000.0
    kills = [rec[0] + phase_s for rec in run["probe_records"].get("primary", {}).values()
             if rec[0] + phase_s >= KILL_AT_S]
    return min(kills) * 1000.0 if kills else KILL_AT_S * 1000.0


def workload_shift_ms(run: Dict[str, Any], crash_ms: float) -> float:
    """How much later than in the real run the twin's crash falls (crash_ms: on its own probe grid,
    at the kill's measured phase; fidelity.kill.twin_timing): its replayed workload is moved by as
    much, so that every write and read falls where it fell around the real kill. The twin's grid
    starts at 0 and the real prober's anywhere: unshifted, the twin's crash fell 10-23 ms (some
    kills ~110 ms) after the real kill's instant in the schedule, and the few reads and writes
    right after the recovery that decide the primary's read share and the stale share were
    others than the real run's (the same seeds recur in every mode and run: a bias, not noise)."""
    return crash_ms - real_kill_ms(run)


def twin_reads(run: Dict[str, Any], workload: Dict[str, Any], crash_ms: float, seed: int, dither_ms: float,
               read_shifts: bool, shift_after: bool = False) -> Dict[str, Any]:
    """The twin's eventual reads before the crash: with ``read_shifts`` and a usable table of the
    readers' measured lateness around the session writes attached to ``run`` (run["read_shifts"]:
    fidelity.readshift.pooled, over the mode's kills in a live run or as fidelity/pool.py chose),
    each sent at its scheduled instant + a shift drawn from that table + the twin's mean send ->
    commit of a write (its mean client latency, run["half_round_trips"], and WRITE_SERVICE_MS);
    else dithered by up to ``dither_ms`` (dithered_reads, the twins before). With ``shift_after``
    (and the table), the eventual reads scheduled from the real outage's end on (run["outage_ms"]
    after the crash) are shifted too."""
    table: Optional[Dict[str, Any]] = run.get("read_shifts")
    if read_shifts and readshift.usable(table) and run.get("half_round_trips"):
        write_lateness = statistics.fmean(run["half_round_trips"]) + WRITE_SERVICE_MS
        after_ms = crash_ms + run["outage_ms"] if shift_after and run.get("outage_ms") is not None else None
        return readshift.shifted_reads(workload, table, crash_ms, seed, write_lateness,  # type: ignore[arg-type]
                                       after_ms)
    return dithered_reads(workload, dither_ms, crash_ms, seed)
