"""Patroni 3.0 + etcd 3.4 on loopback for benchmarks/failover_bench.py.

One etcd member and three Patroni nodes (n1, n2, n3), each managing a PostgreSQL 15 instance
of its own, on loopback ports of their own, in a scratch directory; ttl 10, loop_wait 2,
retry_timeout 4 (a valid aggressive setting: loop_wait + 2 x retry_timeout <= ttl). A run
crashes (or with --hang stops) the leader NODE: its Patroni agent and its PostgreSQL instance
together, since the agent holds the leader lease. Afterwards the node's agent is started (or
continued) again and rejoins as a replica (pg_rewind) before the next run. Everything is
stopped by ``close()``, also on failure or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from typing import Callable, Dict, List, Optional

from replikit.testing import scratch_dir
from replikit.testing.nodes import pick_ports
from replikit.testing.processes import node_processes, pid_alive
from replikit.testing.tools import ServerTools, pg_bin_dir

NAMES = ("n1", "n2", "n3")
TTL_S, LOOP_WAIT_S, RETRY_TIMEOUT_S = 10, 2, 4
READY_TIMEOUT_S = 120.0
STUCK_S = 30.0



def check_installed() -> None:
    """Raise the benchmark's Unavailable (with how to install) when patroni or etcd is missing."""
    from failover_bench import Unavailable

    missing = [tool for tool in ("patroni", "etcd") if shutil.which(tool) is None]
    if missing:
        raise Unavailable(f"{' and '.join(missing)} not found: apt-get install patroni "
                          "etcd-server (Debian 12: Patroni 3.0, etcd 3.4)")


def _http_json(url: str, timeout_s: float = 1.0) -> Optional[dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return json.loads(response.read().decode())
    except Exception:  # noqa: BLE001 - not up (yet), or answering with an error status
        return None


def _config(name: str, base: str, ports: Dict[str, int], etcd_port: int) -> str:
    api, pg = ports[f"{name}-api"], ports[f"{name}-pg"]
    return f"""scope: replikit-bench
namespace: /replikit-bench/
name: {name}
log:
  level: WARNING
restapi:
  listen: 127.0.0.1:{api}
  connect_address: 127.0.0.1:{api}
etcd3:
  host: 127.0.0.1:{etcd_port}
bootstrap:
  dcs:
    ttl: {TTL_S}
    loop_wait: {LOOP_WAIT_S}
    retry_timeout: {RETRY_TIMEOUT_S}
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_level: replica
        wal_log_hints: 'on'
        fsync: 'off'
        max_wal_senders: 10
        max_replication_slots: 10
  initdb:
  - encoding: UTF8
  - no-sync
  pg_hba:
  - local all all trust
  - host all all 127.0.0.1/32 trust
  - host replication all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:{pg}
  connect_address: 127.0.0.1:{pg}
  data_dir: {base}/{name}
  bin_dir: {pg_bin_dir()}
  pgpass: {base}/{name}.pgpass
  remove_data_directory_on_rewind_failure: true
  remove_data_directory_on_diverged_timelines: true
  authentication:
    superuser:
      username: postgres
      password: postgres
    replication:
      username: postgres
      password: postgres
  parameters:
    unix_socket_directories: '{base}'
"""


class PatroniCluster:
    """etcd + three Patroni nodes; ``run()`` measures one failover of the leader."""

    def __init__(self) -> None:
        self.tools = ServerTools(pg_bin_dir())
        self.base = tempfile.mkdtemp(prefix="replikit-patroni-", dir=scratch_dir())
        os.chmod(self.base, 0o700)
        self.tools.chown(self.base)
        self.tools.home = self.base
        keys = ["etcd-client", "etcd-peer"] + [f"{n}-{k}" for n in NAMES for k in ("api", "pg")]
        self.ports = dict(zip(keys, pick_ports("127.0.0.1", len(keys), None)))
        self.etcd: Optional[subprocess.Popen] = None
        self.agents: Dict[str, subprocess.Popen] = {}
        try:
            self._start()
        except BaseException as exc:
            self.close(keep_dir=not isinstance(exc, KeyboardInterrupt))
            raise

    # ------------------------------------------------------------------ lifecycle
    def _log(self, name: str):
        return open(os.path.join(self.base, f"{name}.log"), "ab")

    def _start(self) -> None:
        client, peer = self.ports["etcd-client"], self.ports["etcd-peer"]
        with self._log("etcd") as log:
            self.etcd = subprocess.Popen(
                ["etcd", "--name", "e1", "--data-dir", os.path.join(self.base, "etcd"),
                 "--listen-client-urls", f"http://127.0.0.1:{client}",
                 "--advertise-client-urls", f"http://127.0.0.1:{client}",
                 "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                 "--initial-cluster", f"e1=http://127.0.0.1:{peer}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        self._wait(lambda: (_http_json(f"http://127.0.0.1:{client}/health") or {}).get(
            "health") == "true", "etcd to be healthy")
        for name in NAMES:
            self.tools.write_file(os.path.join(self.base, f"{name}.yml"),
                                  _config(name, self.base, self.ports, client))
        self._spawn("n1")
        self._wait(lambda: self.leader() == "n1", "n1 to bootstrap and lead")
        for name in NAMES[1:]:
            self._spawn(name)
        self.wait_healthy()
        self.sql(self.leader() or "n1", "CREATE TABLE IF NOT EXISTS bench_writes ("
                                        "id bigint PRIMARY KEY, at timestamptz DEFAULT "
                                        "clock_timestamp())")

    def _spawn(self, name: str) -> None:
        with self._log(name) as log:
            self.agents[name] = subprocess.Popen(
                ["patroni", os.path.join(self.base, f"{name}.yml")], stdin=subprocess.DEVNULL,
                stdout=log, stderr=log, cwd=self.base, env=self.tools.env(),
                start_new_session=True, **self.tools.popen_kwargs())

    def _wait(self, ready: Callable[[], bool], what: str,
              timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():
            if time.monotonic() > deadline:
                members = [(m.get("name"), m.get("role"), m.get("state"))
                           for m in self.members()]
                raise TimeoutError(f"patroni bench: timed out waiting for {what} "
                                   f"(members {members}; logs in {self.base})")
            time.sleep(0.1)

    def members(self) -> List[dict]:
        for name in NAMES:
            got = _http_json(f"http://127.0.0.1:{self.ports[name + '-api']}/cluster")
            if got and "members" in got:
                return got["members"]
        return []

    def leader(self) -> Optional[str]:
        leaders = [m["name"] for m in self.members() if m.get("role") == "leader"
                   and m.get("state") == "running"]
        return leaders[0] if len(leaders) == 1 else None

    def streaming(self, leader: str) -> List[str]:
        """The members streaming from ``leader`` (application_name is the member's name)."""
        try:
            rows = self.sql(leader, "SELECT application_name FROM pg_stat_replication "
                                    "WHERE state = 'streaming'")
        except Exception:  # noqa: BLE001 - not answering yet
            return []
        return sorted(str(row[0]) for row in rows)

    def wait_healthy(self) -> None:
        """One running leader and two replicas streaming from it.

        A replica still not streaming after STUCK_S is reinitialised through Patroni's REST
        API (seen after --hang runs: a replica left on a timeline the leader does not have)."""
        started = time.monotonic()
        reinitialised: List[str] = []

        def healthy() -> bool:
            members = self.members()
            leader = self.leader()
            if leader is None or len(members) != 3:
                return False
            following = self.streaming(leader)
            if len(following) == 2 and all(m.get("state") in ("running", "streaming")
                                           for m in members):
                return True
            if time.monotonic() - started > STUCK_S:
                for name in NAMES:
                    if name not in (leader, *following, *reinitialised):
                        self.reinitialise(name)
                        reinitialised.append(name)
            return False
        self._wait(healthy, "one leader and two streaming replicas")
        if reinitialised:
            print(f"  patroni: reinitialised {', '.join(reinitialised)} (not streaming "
                  f"{STUCK_S:g} s after the run)", flush=True)

    def reinitialise(self, name: str) -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.ports[name + '-api']}/reinitialize",
            data=json.dumps({"force": True}).encode(), method="POST",
            headers={"Content-Type": "application/json"})
        with contextlib.suppress(Exception):
            urllib.request.urlopen(request, timeout=5).close()

    def dsn(self, name: str) -> str:
        return f"host=127.0.0.1 port={self.ports[name + '-pg']} dbname=postgres user=postgres"

    def sql(self, name: str, query: str) -> list:
        import psycopg

        with psycopg.connect(self.dsn(name), autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(query)
            return cursor.fetchall() if cursor.description else []

    def describe(self) -> str:
        return (f"etcd 1 member, Patroni nodes {', '.join(NAMES)}, ttl {TTL_S}, loop_wait "
                f"{LOOP_WAIT_S}, retry_timeout {RETRY_TIMEOUT_S}, async replication "
                f"(Patroni's default), use_pg_rewind; leader {self.leader()}")

    # ------------------------------------------------------------------ one failover
    def _node_pids(self, name: str) -> List[int]:
        agent = self.agents.get(name)
        pids = [agent.pid] if agent is not None and agent.poll() is None else []
        return pids + node_processes(os.path.join(self.base, name))

    def _signal_node(self, name: str, signum: int) -> None:
        for _ in range(3):  # the agent first (it forks no more once stopped), then the rest
            for pid in self._node_pids(name):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)

    def run(self, hang: bool, writers_class, measure) -> object:
        """Fail the leader node under the writers; bring it back as a replica afterwards."""
        self.wait_healthy()
        leader = self.leader()
        assert leader is not None
        self.sql(leader, "TRUNCATE bench_writes")
        writers = writers_class({name: self.dsn(name) for name in NAMES})

        def fail() -> float:
            self._signal_node(leader, signal.SIGSTOP)
            failed_at = time.monotonic()
            if not hang:
                self._signal_node(leader, signal.SIGKILL)
            return failed_at

        try:
            result = measure(writers, leader, fail, self.dsn)
        finally:
            writers.stop()
            if hang:
                self._signal_node(leader, signal.SIGCONT)
            else:
                self._reap(leader)
                self._spawn(leader)
        return result

    def _reap(self, name: str) -> None:
        agent = self.agents.pop(name, None)
        if agent is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                agent.wait(timeout=5)
        deadline = time.monotonic() + 5
        while node_processes(os.path.join(self.base, name)) and time.monotonic() < deadline:
            time.sleep(0.05)
        pidfile = os.path.join(self.base, name, "postmaster.pid")
        with contextlib.suppress(OSError):
            os.unlink(pidfile)  # its postmaster was SIGKILLed: the lock file is stale

    def close(self, keep_dir: bool = False) -> None:
        """Stop etcd and every node; remove the directory unless ``keep_dir`` (its logs)."""
        for name in list(self.agents):
            self._signal_node(name, signal.SIGCONT)
            self._signal_node(name, signal.SIGKILL)
            self._reap(name)
        if self.etcd is not None:
            self.etcd.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.etcd.wait(timeout=10)
            if self.etcd.poll() is None:
                self.etcd.kill()
                self.etcd.wait()
        if keep_dir:
            print(f"patroni bench: logs kept in {self.base}", flush=True)
        elif not any(pid_alive(p) for n in NAMES for p in node_processes(
                os.path.join(self.base, n))):
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> "PatroniCluster":
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        self.close(keep_dir=exc_type is not None and exc_type is not KeyboardInterrupt)
