#!/usr/bin/env python3
"""Failover time: from the primary's crash to the first acknowledged write on the new primary.

Usage (as root or as a user that can run PostgreSQL; needs the package installed, e.g. by
scripts/setup.sh, and psycopg from its `test` extra):

    .venv/bin/python benchmarks/failover_bench.py [--runs 20] [--hang] [--mode semi_sync]
        [--systems raw,replikit,etcd,patroni] [--patroni-runs N] [--presets fast,fast50]
        [--brief-preset]

Each run starts a primary and two streaming replicas (replikit.testing.LocalCluster) on
loopback, starts a failover manager over them, and starts one writer thread per node that
inserts a row every 5 ms into whichever node accepts it (a standby refuses with
read_only_sql_transaction; a crashed node refuses the connection). After 0.3 s of steady
writes the primary instance is crashed (postmaster and every child SIGKILLed together:
LocalCluster.crash), or with --hang stopped (SIGSTOP of the instance: only timeouts tell).
The measure is the time from that instant to the first INSERT acknowledged by another node.
The writes the old primary acknowledged are then looked up on the new primary: the missing
ones are lost acknowledged writes (0 expected in the synchronous modes).

Systems:
- raw:      a BASELINE written in this script, not replikit: probes the primary every 100 ms
            (a TCP connect and an SSLRequest answered within 100 ms), declares it dead after
            3 missed probes in a row, promotes the replica with the highest receive LSN with
            pg_promote(wait => true), then repoints the other replica.
- replikit: replikit's FailoverManager over a ReplicatedDatabase of the cluster
            (start_replikit_manager below is the one place that plugs it in), with the
            presets of --presets: fast (100 ms x 3, the default), fast50 (50 ms x 3, probes
            every 50 ms, as the test suite) and, with --brief-preset, brief (the original
            design's 5 s x 3).
- etcd:     replikit across three application processes coordinated through a 3-member etcd
            (benchmarks/failover_etcd.py): each process a router, an EtcdCoordinator (lease
            ttl 2 s) and a writer; the first --presets preset. The measure is the time to the
            first write on the new primary acknowledged by EVERY process (the slowest one).
- patroni:  Debian's patroni 3.0 with one etcd 3.4, three Patroni nodes on loopback ports of
            their own, ttl 10, loop_wait 2, retry_timeout 4 (benchmarks/failover_patroni.py).
            There the whole node dies (the Patroni agent with its PostgreSQL instance), as the
            lease is held by the agent.

It prints the settings, a line per run (progress), and for each system the median, min and
max, and the ratio of each system's median to the baseline's from the same run. Everything
it starts is stopped at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import socket
import statistics
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

WRITE_INTERVAL_S = 0.005
STEADY_S = 0.3
RUN_TIMEOUT_S = 30.0
SSL_REQUEST = struct.pack("!ii", 8, 80877103)


class Unavailable(Exception):
    """A system of the benchmark cannot run here (with the reason)."""


# ------------------------------------------------------------------ the writers (the client)
class Writers:
    """One thread per node inserting a row every WRITE_INTERVAL_S into it when it accepts.

    A node's acknowledged writes are recorded as (time.monotonic(), id). Bounded: each
    thread stops at ``stop()``; a write on a hung node stays blocked until the node is
    killed (the thread is a daemon)."""

    def __init__(self, dsns: Dict[str, str], table: str = "bench_writes"):
        import psycopg

        self.psycopg = psycopg
        self.dsns = dict(dsns)
        self.table = table
        self.acked: Dict[str, List[tuple]] = {name: [] for name in dsns}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(name,), daemon=True)
                         for name in dsns]
        for thread in self._threads:
            thread.start()

    def _loop(self, name: str) -> None:
        conn = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = self.psycopg.connect(self.dsns[name], autocommit=True,
                                                connect_timeout=2)
                with self._lock:
                    row_id = next(self._ids)
                conn.execute(f"INSERT INTO {self.table} (id) VALUES (%s)", (row_id,))
                now = time.monotonic()
                with self._lock:
                    self.acked[name].append((now, row_id))
            except self.psycopg.errors.ReadOnlySqlTransaction:
                pass  # a standby: try again later on the same connection
            except Exception:  # noqa: BLE001 - any failure: reconnect next time
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                    conn = None
            self._stop.wait(WRITE_INTERVAL_S)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def first_ack(self, after: float, exclude: str) -> Optional[tuple]:
        """(node, time) of the first write acknowledged by a node other than ``exclude``
        at or after ``after``."""
        with self._lock:
            found = [(t, name) for name, acks in self.acked.items() if name != exclude
                     for t, _ in acks if t >= after]
        return (min(found)[1], min(found)[0]) if found else None

    def wait_first_ack(self, after: float, exclude: str, timeout_s: float) -> Optional[tuple]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.first_ack(after, exclude)
            if got:
                return got
            time.sleep(0.002)
        return None

    def ids_acked_by(self, name: str) -> List[int]:
        with self._lock:
            return [row_id for _, row_id in self.acked[name]]

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=1.0)  # one blocked on a hung node is left behind


def lost_writes(dsn: str, acked_ids: List[int], table: str = "bench_writes") -> int:
    """How many of ``acked_ids`` are missing from the node at ``dsn``."""
    import psycopg

    if not acked_ids:
        return 0
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        found = conn.execute(f"SELECT count(*) FROM {table} WHERE id = ANY(%s)",
                             (acked_ids,)).fetchone()
    return len(acked_ids) - int(found[0] if found else 0)


# ------------------------------------------------------------------ managers
@dataclass
class Manager:
    """What a failover manager under test reports (times in time.monotonic() seconds)."""

    stop: Callable[[], None]
    detected_at: Optional[float] = None
    promoted_at: Optional[float] = None
    new_primary: Optional[str] = None
    notes: List[str] = field(default_factory=list)
    # replikit's manager: the synchronous_standby_names it carried over to the new primary
    # ("": none, the new primary acknowledged on its own; None: not known).
    synchronous_standby_names: Optional[str] = None


def ssl_probe(host: str, port: int, timeout_s: float) -> bool:
    """Is a PostgreSQL server answering at host:port? A TCP connect and an SSLRequest must be
    answered ('S' or 'N') within ``timeout_s``; refused or silent counts as a miss."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.settimeout(timeout_s)
            sock.sendall(SSL_REQUEST)
            return sock.recv(1) in (b"S", b"N")
    except OSError:
        return False


def start_raw_manager(cluster, interval_ms: float = 100.0, misses: int = 3) -> Manager:
    """The BASELINE manager (not replikit): 3 missed 100 ms probes, promote the replica with
    the highest receive LSN, repoint the other."""
    import psycopg

    stop = threading.Event()
    primary = cluster.primary_name
    port = cluster.node(primary).port
    replicas = {name: psycopg.connect(cluster.dsn(name), autocommit=True, connect_timeout=5)
                for name in cluster.replica_names}
    manager = Manager(stop=stop.set)

    def failover() -> None:
        lsns = {}
        for name, conn in replicas.items():
            with contextlib.suppress(psycopg.Error):
                row = conn.execute("SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), "
                                   "'0/0')::bigint").fetchone()
                lsns[name] = int(row[0]) if row and row[0] is not None else -1
        if not lsns:
            manager.notes.append("no replica reachable: nothing promoted")
            return
        best = max(sorted(lsns), key=lambda n: lsns[n])
        replicas[best].execute("SELECT pg_promote(true, 10)")
        manager.promoted_at, manager.new_primary = time.monotonic(), best
        new_port = cluster.node(best).port
        for name, conn in replicas.items():
            if name == best:
                continue
            replicas[best].execute(
                "SELECT pg_create_physical_replication_slot(%s, true) WHERE NOT EXISTS "
                "(SELECT 1 FROM pg_replication_slots WHERE slot_name = %s)", (name, name))
            conn.execute(f"ALTER SYSTEM SET primary_conninfo = 'host={cluster.host} "
                         f"port={new_port} user=postgres application_name={name}'")
            conn.execute("SELECT pg_reload_conf()")

    def watch() -> None:
        missed = 0
        next_probe = time.monotonic()
        while not stop.is_set():
            ok = ssl_probe(cluster.host, port, interval_ms / 1000.0)
            missed = 0 if ok else missed + 1
            if missed >= misses:
                manager.detected_at = time.monotonic()
                failover()
                return
            next_probe += interval_ms / 1000.0
            stop.wait(max(0.0, next_probe - time.monotonic()))

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()

    def stop_all() -> None:
        stop.set()
        thread.join(timeout=15.0)
        for conn in replicas.values():
            with contextlib.suppress(Exception):
                conn.close()

    manager.stop = stop_all
    return manager


def replikit_manager_class():
    """replikit's FailoverManager class, or Unavailable when this build has none."""
    import replikit

    manager_class = getattr(replikit, "FailoverManager", None)
    if manager_class is None:
        raise Unavailable("replikit.FailoverManager is not in this build yet")
    return manager_class


# Detector presets of the replikit system: (database probe interval ms, probe timeout ms,
# detector interval ms, missed probes). "fast" is DetectorConfig.fast() (100 ms x 3) probed at
# its own interval; "fast50" is the test suite's faster setting (50 ms x 3); "brief" is the
# original design's 5 s x 3.
REPLIKIT_PRESETS = {
    "fast": (100.0, 100.0, 100.0, 3),
    "fast50": (50.0, 200.0, 50.0, 3),
    "brief": (5000.0, 5000.0, 5000.0, 3),
}


def start_replikit_manager(cluster, preset: str, on_db: Optional[Callable] = None,
                           **db_options) -> Manager:
    """replikit's FailoverManager over a ReplicatedDatabase of ``cluster`` with detector
    ``preset`` (REPLIKIT_PRESETS). The one place where the benchmark meets replikit's
    manager: the returned Manager's ``stop`` stops it, after copying the detection and
    promotion instants and the new primary's name from its first FailoverReport (the
    report's steady-clock nanoseconds are time.monotonic()'s clock). ``on_db(db)``, when
    given, is called with the manager's ReplicatedDatabase once the manager runs;
    ``db_options`` are further options of that database."""
    import replikit
    from replikit.pg import database_for_cluster

    manager_class = replikit_manager_class()
    probe_ms, probe_timeout_ms, interval_ms, misses = REPLIKIT_PRESETS[preset]
    db = database_for_cluster(cluster, probe_interval_ms=probe_ms,
                              probe_timeout_ms=probe_timeout_ms, connect_timeout_ms=2000, **db_options)
    detector = replikit.DetectorConfig(interval_ms=interval_ms, missed_threshold=misses)
    failover = manager_class(db, detector=detector, state_interval_ms=50)
    failover.start()
    if on_db is not None:
        on_db(db)
    # The manager reads synchronous_standby_names from the primary while it is up: the
    # writers' warm-up (STEADY_S) gives it several rounds before the failure.
    manager = Manager(stop=lambda: None)

    def stop() -> None:
        try:
            # The report is recorded when the failover has finished (repointing included),
            # which can be after the first write on the new primary.
            reports = failover.reports() if failover.wait_reports(1, 5000) else []
            if reports:
                report = reports[0]
                if report.detected_ns:
                    manager.detected_at = report.detected_ns / 1e9
                if report.promoted:
                    manager.new_primary = report.promoted
                    manager.promoted_at = report.promoted_ns / 1e9
                    manager.synchronous_standby_names = getattr(report, "synchronous_standby_names", "")
                else:
                    manager.notes.append(f"no promotion: {report.reason}")
                lost = report.lost_writes.lost
                if lost:
                    manager.notes.append(f"replikit reports {len(lost)} lost write(s)")
        finally:
            failover.stop()
            db.close()

    manager.stop = stop
    return manager


# ------------------------------------------------------------------ one run, many runs
@dataclass
class RunResult:
    seconds: Optional[float]  # crash -> first acknowledged write on another node
    failed_at: Optional[float] = None  # time.monotonic() of the failure
    detect_s: Optional[float] = None
    promote_s: Optional[float] = None
    new_primary: Optional[str] = None
    lost: Optional[int] = None
    acked_before: int = 0
    note: str = ""


def measure(writers: Writers, old: str, fail: Callable[[], float],
            new_primary_dsn: Callable[[str], str]) -> RunResult:
    """Fail ``old`` after steady writes; the time to the first write acknowledged elsewhere."""
    if writers.wait_first_ack(0.0, exclude="", timeout_s=10.0) is None:
        return RunResult(None, note="no write acknowledged before the failure")
    time.sleep(STEADY_S)
    t0 = fail()
    got = writers.wait_first_ack(t0, exclude=old, timeout_s=RUN_TIMEOUT_S)
    if got is None:
        return RunResult(None, note=f"no write acknowledged within {RUN_TIMEOUT_S:g} s")
    node, t1 = got
    time.sleep(0.05)
    writers.stop()
    acked = writers.ids_acked_by(old)
    lost = lost_writes(new_primary_dsn(node), acked)
    return RunResult(t1 - t0, failed_at=t0, new_primary=node, lost=lost,
                     acked_before=len(acked))


def local_run(start_manager: Callable, mode: str, hang: bool) -> RunResult:
    """One run on a fresh LocalCluster (primary + 2 replicas) with the manager started by
    ``start_manager(cluster)``."""
    from replikit.testing import LocalCluster

    with LocalCluster(replicas=2, mode=mode) as cluster:
        cluster.sql("primary", "CREATE TABLE bench_writes (id bigint PRIMARY KEY, "
                               "at timestamptz DEFAULT clock_timestamp())")
        cluster.wait_caught_up(timeout_ms=30_000)
        manager = start_manager(cluster)
        writers = Writers(cluster.dsns())
        try:
            def fail() -> float:
                if hang:
                    cluster.pause("primary")
                    return time.monotonic()
                return cluster.crash("primary")

            result = measure(writers, "primary", fail, cluster.dsn)
        finally:
            writers.stop()
            manager.stop()
            if hang and cluster.is_up("primary"):
                cluster.crash("primary")  # a stopped instance would not stop cleanly
        if result.failed_at is not None and manager.detected_at is not None:
            result.detect_s = manager.detected_at - result.failed_at
            if manager.promoted_at is not None:
                result.promote_s = manager.promoted_at - manager.detected_at
        if manager.notes:
            result.note = "; ".join(manager.notes)
        return result


def describe(result: RunResult) -> str:
    if result.seconds is None:
        return f"FAILED ({result.note})"
    parts = [f"{result.seconds:.3f} s to the first write on {result.new_primary}"]
    if result.detect_s is not None:
        parts.append(f"detection {result.detect_s:.3f} s")
    if result.promote_s is not None:
        parts.append(f"pg_promote returned after {result.promote_s:.3f} s")
    parts.append(f"lost {result.lost} of {result.acked_before} acknowledged")
    return ", ".join(parts) + (f" ({result.note})" if result.note else "")


def repeat(label: str, runs: int, one_run: Callable[[], RunResult],
           results: Optional[List[RunResult]] = None) -> List[RunResult]:
    """``runs`` runs, a line each; appended to ``results`` as they finish."""
    results = [] if results is None else results
    for i in range(1, runs + 1):
        started = time.monotonic()
        result = one_run()
        results.append(result)
        print(f"  {label} run {i}/{runs}: {describe(result)} [{time.monotonic() - started:.1f} s]",
              flush=True)
    return results


def summary(label: str, results: List[RunResult]) -> Optional[float]:
    times = [r.seconds for r in results if r.seconds is not None]
    failed = len(results) - len(times)
    lost = sum(r.lost or 0 for r in results)
    if not times:
        print(f"{label:<34} no successful run ({failed} failed)")
        return None
    median = statistics.median(times)
    print(f"{label:<34} runs {len(times):>3}  median {median:6.3f} s  min {min(times):6.3f} s  "
          f"max {max(times):6.3f} s  lost acknowledged writes {lost}"
          + (f"  ({failed} failed)" if failed else ""))
    return median


# ------------------------------------------------------------------ main
def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20,
                        help="runs per system (default 20; 1 for a smoke test)")
    parser.add_argument("--patroni-runs", type=int, default=None,
                        help="runs for Patroni (default: --runs; each takes ~10-30 s)")
    parser.add_argument("--systems", default="raw,replikit,etcd,patroni",
                        help="comma-separated: raw (the baseline), replikit, etcd (three "
                             "processes coordinated through etcd), patroni")
    parser.add_argument("--hang", action="store_true",
                        help="SIGSTOP the primary instance instead of killing it")
    parser.add_argument("--mode", default="semi_sync",
                        choices=("async", "semi_sync", "sync", "sync_all", "remote_apply"),
                        help="replication mode of the local clusters (default semi_sync: "
                             "ANY 1)")
    parser.add_argument("--baseline-interval-ms", type=float, default=100.0,
                        help="probe interval (and probe timeout) of the raw baseline "
                             "(default 100)")
    parser.add_argument("--baseline-misses", type=int, default=3,
                        help="missed probes in a row before the raw baseline fails over "
                             "(default 3)")
    parser.add_argument("--brief-preset", action="store_true",
                        help="also measure replikit with the original design's 5 s x 3")
    parser.add_argument("--presets", default="fast",
                        help="comma-separated replikit presets: " + ", ".join(
                            f"{name} ({v[2]:g} ms x {v[3]})" for name, v in
                            REPLIKIT_PRESETS.items()) + " (default fast)")
    args = parser.parse_args(argv)
    if args.runs < 1 or (args.patroni_runs is not None and args.patroni_runs < 0):
        parser.error("--runs must be >= 1 and --patroni-runs >= 0")
    if not 1 <= args.baseline_interval_ms <= 60_000 or not 1 <= args.baseline_misses <= 100:
        parser.error("--baseline-interval-ms must be in 1-60000 and --baseline-misses in 1-100")
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    args.presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    if args.brief_preset and "brief" not in args.presets:
        args.presets.append("brief")
    if not args.presets or set(args.presets) - set(REPLIKIT_PRESETS):
        parser.error(f"--presets: one or more of {sorted(REPLIKIT_PRESETS)}")
    unknown = set(args.systems) - {"raw", "replikit", "etcd", "patroni"}
    if unknown:
        parser.error(f"--systems: unknown {sorted(unknown)}")
    return args


def run_patroni(args: argparse.Namespace) -> List[RunResult]:
    from failover_patroni import PatroniCluster, check_installed

    check_installed()
    runs = args.runs if args.patroni_runs is None else args.patroni_runs
    results: List[RunResult] = []
    if runs == 0:
        return results
    try:
        with PatroniCluster() as patroni:
            print(f"  patroni: {patroni.describe()}", flush=True)
            repeat("patroni", runs, lambda: patroni.run(args.hang, Writers, measure), results)
    except (TimeoutError, OSError, RuntimeError) as exc:
        # Keep what was measured (and the other systems' results); say why it stopped.
        print(f"  patroni: stopped after {len(results)} run(s): {exc}", flush=True)
        results.append(RunResult(None, note=str(exc).splitlines()[0]))
    return results


def run_etcd(args: argparse.Namespace) -> List[RunResult]:
    """The etcd system's runs (benchmarks/failover_etcd.py) with the first preset."""
    from failover_etcd import EtcdSystem, detector_options

    try:
        import replikit.coordination  # noqa: F401
    except ImportError as exc:
        raise Unavailable(f"replikit.coordination is not in this build ({exc})") from None
    if args.hang:
        raise Unavailable("the etcd system measures crashes only")
    options = detector_options(args.presets[0], REPLIKIT_PRESETS)
    with EtcdSystem() as system:
        return repeat("etcd", args.runs, lambda: system.run(args.mode, options, RunResult))


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    failure = "SIGSTOP of the primary instance (hang)" if args.hang else \
        "SIGKILL of the primary instance (postmaster and every child)"
    print(f"failover_bench: {failure}; measure = failure -> first INSERT acknowledged by "
          f"another node; writers: one per node, every {WRITE_INTERVAL_S * 1000:g} ms; "
          f"local clusters: primary + 2 replicas, mode {args.mode}; runs {args.runs}",
          flush=True)
    medians: Dict[str, Optional[float]] = {}
    outcomes: Dict[str, List[RunResult]] = {}
    for system in args.systems:
        try:
            if system == "raw":
                interval, misses = args.baseline_interval_ms, args.baseline_misses
                label = f"raw baseline (NOT replikit), {interval:g} ms x {misses}"
                print(f"{label}: probe = TCP connect + SSLRequest answered within "
                      f"{interval:g} ms", flush=True)
                outcomes[label] = repeat("raw", args.runs, lambda: local_run(
                    lambda c: start_raw_manager(c, interval, misses), args.mode, args.hang))
            elif system == "replikit":
                replikit_manager_class()  # before any cluster is started
                for preset in args.presets:
                    probe, timeout, interval, misses = REPLIKIT_PRESETS[preset]
                    label = f"replikit FailoverManager, {preset} {interval:g} ms x {misses}"
                    print(f"{label}: probes every {probe:g} ms (timeout {timeout:g} ms)",
                          flush=True)
                    outcomes[label] = repeat(f"replikit {preset}", args.runs, lambda: local_run(
                        lambda c: start_replikit_manager(c, preset), args.mode, args.hang))
            elif system == "etcd":
                preset = args.presets[0]
                interval, misses = REPLIKIT_PRESETS[preset][2:]
                label = f"replikit x3 processes via etcd, {preset} {interval:g} ms x {misses}"
                print(f"{label}: measure = the slowest of the three processes", flush=True)
                outcomes[label] = run_etcd(args)
            else:
                label = "patroni 3.0 (ttl 10, loop_wait 2, retry_timeout 4)"
                outcomes[label] = run_patroni(args)
        except Unavailable as exc:
            print(f"{system}: skipped: {exc}", flush=True)
    print("\nresults (seconds from the failure to the first acknowledged write elsewhere):")
    for label, results in outcomes.items():
        medians[label] = summary(label, results)
    base = next((m for label, m in medians.items() if label.startswith("raw") and m), None)
    for label, median in medians.items():
        if base and median and not label.startswith("raw"):
            print(f"ratio {label} / raw baseline (median, same run): {median / base:.2f}x")
    single = next((m for label, m in medians.items()
                   if label.startswith(f"replikit FailoverManager, {args.presets[0]} ") and m), None)
    across = next((m for label, m in medians.items() if label.startswith("replikit x3") and m),
                  None)
    if single and across:
        print(f"etcd, three processes, minus one process (median, same run): "
              f"{across - single:+.3f} s")
    failed = any(r.seconds is None for results in outcomes.values() for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
