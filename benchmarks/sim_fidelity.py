#!/usr/bin/env python3
"""Model fidelity: one workload on a real local cluster and in the simulator, compared.

Usage (needs the package with the PostgreSQL backend and psycopg, e.g. from scripts/setup.sh):

    .venv/bin/python benchmarks/sim_fidelity.py [--scenario pause|delay|kill] [options] [--json out.json]

    pause (default): [--run-s 30] [--pause-s 5] [--pause-at-s 10] [--write-rate 200]
        [--read-rate 400] [--eventual-share 0.5] [--sessions 16] [--seed 1]
        [--delay run|median|distribution]
    delay: the same workload options (defaults: --run-s 60 --write-rate 20) and [--delay-ms 50]
    kill:  [--runs 5] [--modes async,semi_sync] [--preset fast] [--seed 1] [--sim-runs 20]
        [--read-runs 3]

Scenarios (benchmarks/fidelity/: common.py the shared workload and figures, one module each):

- pause ("replica paused", fidelity/pause.py) and delay ("replay delayed", fidelity/delay.py):
  a primary and two streaming replicas (replikit.testing.LocalCluster, async, on loopback)
  used through one ReplicatedDatabase. One writer thread inserts rows at Poisson instants
  (write rate), each in a session drawn uniformly from ``--sessions``; reader threads send
  Poisson reads (read rate), each eventual or read_your_writes (``--eventual-share``) in a
  uniformly drawn session. pause: WAL replay of r1 is paused (pg_wal_replay_pause) at
  ``--pause-at-s`` for ``--pause-s`` seconds, then resumed. delay: r1 runs with
  recovery_min_apply_delay = ``--delay-ms`` for the whole run (set before it, checked with a
  watched commit). Each read records the node that answered, the router's reason, the highest
  row id that node had and the server's clock when the read ran; each write the server's clock
  at its insert (one host: one clock). Stale:

  - eventual (the simulator's definition): the node lacked a write committed on the primary
    before the read ran there. Also printed, by the client's definition: the last write
    acknowledged before the read was sent is missing (fewer: the round trips hide part of the
    replication delay). "Added by the pause": the stale reads of the paused replica from the
    pause to a second after the resume, less its stale share outside that window, over all
    eventual reads (simulated: the rate with the pause minus the rate without it). "Added by
    the delay": r1's stale eventual reads less r2's stale share, over all eventual reads
    (simulated: with the delay minus without it).
  - read_your_writes: the session's own last acknowledged write is missing (must be 0).

  r1's lag is sampled from the database's lag tracker (NodeStatus.lag_ms) every 20 ms, and the
  prober's effective interval from r2's last_probe_ns. Before the run, a calibration measures
  the replication delay on r2 (the replica itself, in a plpgsql loop, watches for a row; commit
  instant: pg_last_xact_replay_timestamp) while a background writer keeps the write rate. The
  simulator's replica_latency is by default the delay of the run itself, inferred from the stale
  share of the replica reads the fault does not touch (pause: outside the pause; delay: r2's)
  (see fidelity.common.replication_delay: those reads then agree by construction; on a shared
  machine the delay drifts with the load more than a calibration before the run can follow), or
  with ``--delay median`` / ``distribution`` the calibration's. The client latency is the
  measured half round trip of the run's replica reads. The simulated side: SimConfig with the
  same rates, sessions, mix, probe interval (the prober's effective one), router and lag-tracker
  settings, the pause at the instants measured in the real run or the same apply delay; the
  prediction is the mean of ``--sim-runs`` seeded runs (seeds ``--seed`` onwards, printed).

- kill ("primary killed", fidelity/kill.py): benchmarks/failover_bench.py's runs (a fresh
  cluster per run, one writer per node every 5 ms, kill -9 of the whole primary instance,
  replikit's FailoverManager with the ``--preset`` detector) per replication mode, against the
  simulator's failover with the core's detector and selection (failover_model "core") at the
  same heartbeat interval and threshold, one twin per kill with the detector's timing measured
  before that kill (its phase in the probes' cycle, the probe period): detection time, time to
  recover (crash to the first acknowledged write on the new primary) and acknowledged writes
  lost. See its docstring for
  what is matched and what differs. Then ``--read-runs`` more kills per mode with a read
  workload (fidelity/killreads.py: 200 reads/s, half eventual, half read-your-writes, through
  the manager's ReplicatedDatabase), per time window (before the kill, the outage, after the
  recovery): the stale-read share per level, the primary's share of the reads, the share of
  reads failed and the replica lag, each against the run's simulated twin (the run's own
  seeded writes and reads replayed, and its inputs measured in that run: the replication delays
  before the kill, from offset reads (a row written as
  the session writer writes, read once on a replica at a seeded offset: stale or not, by the
  instant the read was sent), the
  client round trip, the client's switch to the new primary and the survivor's
  reconnection), pooled over the runs with 95% bootstrap intervals (fidelity/windowstats.py);
  with each kill's own delays, with those of all kills of the mode pooled, with the delays before
  the kill only, and with Poisson arrivals of the twin's own instead of the run's requests.

Each prints, for each figure, predicted vs measured, the relative error and whether it is within
10%. Every wait is bounded; the clusters are stopped at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

SCENARIOS = ("pause", "delay", "kill")


def scenario_module(name: str) -> Any:
    if name == "pause":
        from fidelity import pause as module
    elif name == "delay":
        from fidelity import delay as module
    else:
        from fidelity import kill as module
    return module


def main(argv: Optional[List[str]] = None) -> int:
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--scenario", choices=SCENARIOS, default="pause")
    known, rest = first.parse_known_args(argv)
    module = scenario_module(known.scenario)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], parents=[first])
    defaults = module.Settings()
    for name, value in vars(defaults).items():
        parser.add_argument("--" + name.replace("_", "-"), type=type(value), default=value)
    parser.add_argument("--json", help="write the settings, figures and comparison here")
    args = parser.parse_args(argv)
    settings = module.Settings(**{k: getattr(args, k) for k in vars(defaults)})
    settings.check()
    print(f"scenario {known.scenario}; settings: " + ", ".join(f"{k}={v}" for k, v in vars(settings).items()),
          flush=True)
    if hasattr(settings, "readers"):
        from fidelity.common import print_seeds

        print_seeds(settings)

    def log(text: str) -> None:
        print(text, flush=True)

    module.run(settings, args.json, log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
