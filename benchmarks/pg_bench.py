#!/usr/bin/env python3
"""End-to-end point selects on a local cluster: replikit vs a direct connection vs pgpool-II.

Usage (as root or as a user that can run PostgreSQL; needs the package installed, e.g. by
scripts/setup.sh, and Debian's postgresql-15, libpqxx-dev and pgpool2):

    .venv/bin/python benchmarks/pg_bench.py [--clients 4] [--seconds 8] [--runs 5]

It starts a primary and two streaming replicas (replikit.testing.LocalCluster), loads pgbench's
tables (scale 1: 100,000 accounts), starts pgpool-II 4.3 in streaming-replication mode with
statement-level load balancing over the two replicas (primary weight 0, so it serves no
reads, as with replikit), and then runs, interleaved and `--runs` times each, the same
pgbench -S style workload (`SELECT abalance FROM pgbench_accounts WHERE aid = $1`, random
aid, `--clients` threads, `--seconds` each) with benchmarks/pg/pg_point_select.cpp:

- direct:   one libpqxx connection per client straight to replica r1 (the baseline);
- replikit: ReplicatedDatabase routing every read over r1 and r2 (round-robin, eventual);
- replikit_ryw: the same with read-your-writes consistency (sessions that never wrote);
- replikit_mono: the same with monotonic consistency (one session per client, so every read
  after the first needs the LSN the previous one observed);
- replikit_sticky: ReplicatedDatabase over r1 and r2 with RouterConfig::sticky_reads = 100
  (each client thread stays on one replica for 100 reads, then moves on);
- replikit_r1: ReplicatedDatabase with r1 as its only replica: the same single server as
  direct, so the ratio isolates what the client library costs;
- pgpool:   one libpqxx connection per client to pgpool-II's port.

It prints the median queries/s of each, the ratio replikit/direct (target >= 0.95: routing
costs at most 5%) and replikit/pgpool, and pgbench -S's own number against r1 for context.
Everything it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "pgbench"


def build() -> Path:
    subprocess.run(["cmake", "-S", str(ROOT), "-B", str(BUILD), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                    "-DREPLIKIT_BUILD_BENCHMARKS=ON", "-DREPLIKIT_WITH_PQXX=ON"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(BUILD), "-j2", "--target", "pg_point_select"], check=True,
                   stdout=subprocess.DEVNULL)
    return BUILD / "pg_point_select"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--"] + cmd if os.geteuid() == 0 else cmd


class PgPool:
    """pgpool-II 4.3 in the foreground, in a directory of its own, balancing over the replicas."""

    def __init__(self, cluster, workdir: Path, clients: int) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = self.dir / "pgpool.conf"
        backends = []
        for i, name in enumerate(["primary"] + cluster.replica_names):
            weight = 0 if name == "primary" else 1
            backends.append(f"backend_hostname{i} = '127.0.0.1'\nbackend_port{i} = {cluster.node(name).port}\n"
                            f"backend_weight{i} = {weight}\nbackend_flag{i} = 'ALLOW_TO_FAILOVER'\n"
                            f"backend_application_name{i} = '{name}'\n")
        self.conf.write_text(
            "backend_clustering_mode = 'streaming_replication'\n"
            f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
            f"socket_dir = '{self.dir}'\npcp_listen_addresses = ''\npcp_port = {free_port()}\n"
            f"pcp_socket_dir = '{self.dir}'\nwd_ipc_socket_dir = '{self.dir}'\n"
            f"pid_file_name = '{self.dir}/pgpool.pid'\nlogdir = '{self.dir}'\n"
            + "".join(backends) +
            "load_balance_mode = on\nstatement_level_load_balance = on\n"
            "sr_check_user = 'postgres'\nsr_check_period = 0\nhealth_check_period = 0\n"
            "failover_on_backend_error = off\nenable_pool_hba = off\n"
            f"num_init_children = {max(8, clients * 2)}\nmax_pool = 1\n"
            "log_destination = 'stderr'\n")
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
            shutil.chown(self.conf, "postgres")
        self.log = open(self.dir / "pgpool.log", "w")
        self.proc = subprocess.Popen(as_postgres(["pgpool", "-n", "-D", "-f", str(self.conf),
                                                  "-F", "/etc/pgpool2/pcp.conf"]),
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.dsn = f"host=127.0.0.1 port={self.port} dbname=postgres user=postgres"
        deadline = time.monotonic() + 20
        while True:
            ok = subprocess.run(["psql", "-X", "-A", "-t", "-q", "-d", self.dsn, "-c", "SELECT 1"],
                                capture_output=True, text=True, timeout=10)
            if ok.returncode == 0:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("pgpool did not start: " + (self.dir / "pgpool.log").read_text()[-2000:])
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            subprocess.run(as_postgres(["pgpool", "-f", str(self.conf), "-m", "fast", "stop"]),
                           capture_output=True, timeout=30)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()


def run_select(exe: Path, mode: str, args: argparse.Namespace, **kw) -> dict:
    cmd = [str(exe), "replikit" if mode.startswith("replikit") else "direct",
           "--clients", str(args.clients), "--seconds", str(args.seconds), "--rows", "100000"]
    for key, value in kw.items():
        if isinstance(value, list):
            for v in value:
                cmd += [f"--{key}", v]
        else:
            cmd += [f"--{key}", value]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + 120)
    if out.returncode != 0:
        raise RuntimeError(f"{mode} failed: {out.stderr.strip()} {out.stdout.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-pgpool", action="store_true", help="skip the pgpool-II comparison")
    parser.add_argument("--modes", default="",
                        help="comma-separated subset of direct,replikit,replikit_r1,replikit_sticky,replikit_ryw,replikit_mono "
                             "(default: all; direct is always run)")
    args = parser.parse_args()
    if not 1 <= args.clients <= 64:
        parser.error("--clients must be in [1, 64]")
    if not 0.5 <= args.seconds <= 120:
        parser.error("--seconds must be in [0.5, 120]")
    if not 1 <= args.runs <= 20:
        parser.error("--runs must be in [1, 20]")

    from replikit.testing import LocalCluster

    exe = build()
    workdir = Path(tempfile.mkdtemp(prefix="replikit-pgbench-"))
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres")
    pool = None
    with LocalCluster(replicas=2) as cluster:
        primary = cluster.dsn("primary")
        subprocess.run(["pgbench", "-i", "-s", "1", "-q", "-d", primary], check=True, capture_output=True)
        cluster.sql("primary", "CHECKPOINT")
        cluster.wait_caught_up(timeout_ms=60_000)
        replicas = [f"{name}={cluster.dsn(name)}" for name in cluster.replica_names]
        modes = {
            "direct": dict(dsn=cluster.dsn("r1")),
            "replikit": dict(primary=primary, replica=replicas, consistency="eventual"),
            "replikit_r1": dict(primary=primary, replica=replicas[:1], consistency="eventual"),
            "replikit_sticky": dict(primary=primary, replica=replicas, consistency="eventual", sticky="100"),
            "replikit_ryw": dict(primary=primary, replica=replicas, consistency="read_your_writes"),
            "replikit_mono": dict(primary=primary, replica=replicas, consistency="monotonic"),
        }
        if args.modes:
            wanted = {"direct", *args.modes.split(",")}
            unknown = wanted - set(modes)
            if unknown:
                parser.error(f"--modes: unknown mode(s) {sorted(unknown)} (expected {', '.join(modes)})")
            modes = {m: kw for m, kw in modes.items() if m in wanted}
        try:
            if not args.no_pgpool:
                pool = PgPool(cluster, workdir / "pgpool", args.clients)
                modes["pgpool"] = dict(dsn=pool.dsn)
            results: dict[str, list[dict]] = {m: [] for m in modes}
            print(f"{args.clients} clients, {args.seconds:g} s per run, {args.runs} runs per mode, interleaved")
            for run in range(args.runs):
                for mode, kw in modes.items():
                    r = run_select(exe, mode, args, **kw)
                    results[mode].append(r)
                    print(f"  run {run + 1} {mode:<13} {r['qps']:>9,.0f} q/s  per node {r['per_node']}", flush=True)
            pgbench = subprocess.run(["pgbench", "-S", "-n", "-M", "extended", "-c", str(args.clients), "-j",
                                      str(args.clients), "-T", str(int(max(1, args.seconds))), "-d",
                                      cluster.dsn("r1")], capture_output=True, text=True, timeout=300)
        finally:
            if pool is not None:
                pool.stop()
    shutil.rmtree(workdir, ignore_errors=True)

    median = {m: statistics.median(r["qps"] for r in rs) for m, rs in results.items()}
    print("\nmedian queries/s:")
    for m, q in median.items():
        print(f"  {m:<13} {q:>9,.0f}")
    notes = {"replikit": "  (target >= 0.95)", "replikit_r1": "  (same single server as direct)",
             "replikit_sticky": "  (sticky_reads=100)"}
    for m in ["replikit", "replikit_ryw", "replikit_mono", "replikit_r1", "replikit_sticky"]:
        if m in median:
            # Also the median of the per-run ratios: each run's modes ran back to back, so a
            # noisy machine moves both sides of a run's ratio together.
            per_run = statistics.median(r["qps"] / d["qps"] for r, d in zip(results[m], results["direct"]))
            print(f"{m + ' / direct':<24} = {median[m] / median['direct']:.3f}{notes.get(m, '')}; "
                  f"median per-run ratio {per_run:.3f}")
    if "pgpool" in median:
        print(f"replikit / pgpool       = {median['replikit'] / median['pgpool']:.2f}")
    for line in pgbench.stdout.splitlines():
        if line.startswith("tps"):
            print(f"pgbench -S -M extended against r1 (context): {line.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
