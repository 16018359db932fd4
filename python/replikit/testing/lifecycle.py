"""The nodes of a local cluster one by one: look them up, start, stop, kill, run SQL."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from typing import Dict, Iterable, List, Optional

from .. import _core
from .._deprecation import renamed_keywords
from . import sql as _sql
from .errors import ClusterError, ClusterTimeoutError, invalid_argument, timeout_seconds
from .nodes import Node, pick_ports, set_auto_conf_value
from .processes import Supervisor
from .tools import ServerTools

_SECONDS = ("timeout_ms", 1000.0)


class NodeLifecycle:
    """Per-node operations of LocalCluster (its base class; see LocalCluster for the whole)."""

    base_dir: Optional[str]
    host: str
    nodes: Dict[str, Node]
    startup_timeout_ms: float
    _base_port: Optional[int]
    _tools: ServerTools
    _supervisor: Supervisor
    _lock: threading.RLock

    def _save_description(self) -> None:  # LocalCluster keeps cluster.json up to date
        raise NotImplementedError

    # ------------------------------------------------------------------ lookup
    def node(self, name: str) -> Node:
        """The Node called ``name`` (``primary``, ``r1``, ...)."""
        try:
            return self.nodes[name]
        except KeyError:
            raise invalid_argument("node", f"no node named {name!r} in this cluster "
                                           f"(nodes: {', '.join(self.nodes) or 'none'})",
                                   _core.NotFound) from None

    @property
    def replica_names(self) -> List[str]:
        """Names of the nodes that are replicas now: those created as replicas (``r1``, ``r2``,
        ...), less one promoted to primary, plus an old primary rejoined with ``rejoin()``."""
        return [n for n, node in self.nodes.items() if node.role == "replica"]

    def dsn(self, name: str, dbname: str = "postgres") -> str:
        """libpq keyword/value connection string of a node."""
        return _sql.dsn(self.host, self.node(name).port, dbname)

    def dsns(self) -> Dict[str, str]:
        """Connection string of every node, by name."""
        return {name: self.dsn(name) for name in self.nodes}

    def pid(self, name: str) -> Optional[int]:
        """Postmaster pid of a running node, or None when it is down."""
        return self._supervisor.live_pid(self.node(name))

    def pids(self, name: Optional[str] = None) -> List[int]:
        """Every live process (postmasters and their children) of the cluster, or of one node."""
        nodes = [self.node(name)] if name is not None else list(self.nodes.values())
        return sorted(p for node in nodes for p in self._supervisor.processes(node))

    def is_up(self, name: str) -> bool:
        """Is the node's postmaster running?"""
        return self._supervisor.live_pid(self.node(name)) is not None

    # ------------------------------------------------------------------ start / stop
    @renamed_keywords(timeout_s=_SECONDS)
    def start(self, name: str, *, timeout_ms: Optional[float] = None) -> None:
        """Start a stopped (or killed) node and wait until it accepts connections."""
        node = self.node(name)
        with self._lock:
            self._start_nodes([node], timeout_ms=timeout_ms, port_retries=0)
            self._save_description()

    @renamed_keywords(timeout_s=_SECONDS)
    def stop(self, name: str, mode: str = "fast", *, timeout_ms: float = 30_000.0) -> None:
        """Stop a node with ``pg_ctl stop -m mode`` (smart|fast|immediate); SIGKILL if stuck."""
        if mode not in ("smart", "fast", "immediate"):
            raise invalid_argument("mode", f"expected smart, fast or immediate, got {mode!r}")
        timeout_s = timeout_seconds("timeout_ms", timeout_ms)
        node = self.node(name)
        pid = self._supervisor.live_pid(node)
        if pid is not None:
            self._tools.run([self._tools.pg_ctl, "-D", node.data_dir, "-m", mode, "-W", "stop"],
                            check=False, timeout_s=timeout_s, cwd=self.base_dir)
        if not self._supervisor.wait_gone(node, timeout_s if pid is not None else 0.0):
            survivors = self._supervisor.kill(node)
            if survivors:
                raise ClusterError(f"{name}: processes {survivors} survive SIGKILL")

    @renamed_keywords(timeout_s=_SECONDS)
    def kill(self, name: str, *, timeout_ms: float = 10_000.0) -> None:
        """Crash a node: SIGKILL its postmaster and all its children at once (like a power
        cut; a restart then runs crash recovery). The same as ``crash()``, which also
        returns the instant of the crash."""
        timeout_s = timeout_seconds("timeout_ms", timeout_ms)
        node = self.node(name)
        if self._supervisor.live_pid(node) is None:
            raise ClusterError(f"kill: node {name} is not running")
        self._supervisor.freeze_all(node)  # no backend acknowledges anything from here on
        survivors = self._supervisor.kill(node, timeout_s)
        if survivors:
            raise ClusterTimeoutError(f"kill: processes {survivors} of {name} still alive "
                                      f"{timeout_s:g} s after SIGKILL")

    def freeze(self, name: str) -> List[int]:
        """SIGSTOP every process of a running node (a hung server: connections stay open and
        nothing answers); ``thaw()`` continues them. Returns the pids stopped."""
        if self._supervisor.live_pid(self.node(name)) is None:
            raise ClusterError(f"freeze: node {name} is not running")
        return self._signal_all(name, signal.SIGSTOP)

    def thaw(self, name: str) -> List[int]:
        """SIGCONT every process of a node that ``freeze()`` stopped. Returns the pids."""
        return self._signal_all(name, signal.SIGCONT)

    def _signal_all(self, name: str, signum: int) -> List[int]:
        sent = []
        for pid in self._supervisor.processes(self.node(name)):
            try:
                os.kill(pid, signum)
                sent.append(pid)
            except ProcessLookupError:
                pass
        return sent

    def _pick_ports(self, count: int, avoid: Iterable[int] = ()) -> List[int]:
        taken = set(avoid) | {n.port for n in self.nodes.values()}
        return pick_ports(self.host, count, self._base_port, taken)

    def _start_nodes(self, nodes: List[Node], timeout_ms: Optional[float] = None,
                     port_retries: int = 3) -> None:
        """Start nodes concurrently and wait until each accepts connections."""
        timeout_s = timeout_seconds(
            "timeout_ms", self.startup_timeout_ms if timeout_ms is None else timeout_ms)
        pending = list(nodes)
        for attempt in range(port_retries + 1):
            offsets = {}
            for node in pending:
                running = self._supervisor.live_pid(node)
                if running is not None:
                    raise ClusterError(f"{node.name} is already running (pid {running})")
                if not os.path.exists(node.log_file):
                    self._tools.write_file(node.log_file, "", mode=0o644)
                offsets[node.name] = os.path.getsize(node.log_file)
                self._supervisor.clear_stale_pidfile(node)
                self._supervisor.spawn(node)
            failures = self._supervisor.wait_ready(pending, offsets, timeout_s)
            retry = []
            for node, log in failures:
                if attempt < port_retries and ("could not bind" in log
                                               or "Address already in use" in log):
                    # Lost a race for the port with another process: take another one.
                    node.port = self._pick_ports(1, avoid=[node.port])[0]
                    set_auto_conf_value(self._tools, node, "port", str(node.port))
                    retry.append(node)
                else:
                    raise ClusterError(
                        f"PostgreSQL node {node.name} (port {node.port}) failed to start; "
                        f"last lines of {node.log_file}:\n{log}")
            if not retry:
                return
            pending = retry

    # ------------------------------------------------------------------ SQL
    def psql_args(self, name: str, query: str, dbname: str = "postgres") -> List[str]:
        """The psql command line that runs ``query`` on a node (for background runs)."""
        return _sql.psql_args(self._tools.psql, self.dsn(name, dbname), query)

    def client_env(self) -> Dict[str, str]:
        """Environment for client programs (psql, pgbench) run against the cluster."""
        return self._tools.env()

    def sql_background(self, name: str, query: str) -> "subprocess.Popen[bytes]":
        """Start psql running ``query`` on a node and return at once (the caller waits or
        kills it); e.g. a commit expected to block on synchronous replication."""
        return _sql.background(self.psql_args(name, query), self._tools.env())

    @renamed_keywords(timeout_s=_SECONDS)
    def sql(self, name: str, query: str, *, timeout_ms: float = 30_000.0,
            dbname: str = "postgres") -> List[_sql.Row]:
        """Run SQL on a node; rows of the last statement as tuples of str (None for NULL).

        Several statements separated by ``;`` run in one implicit transaction. A query
        still running after ``timeout_ms`` is abandoned (psql is killed) and
        ClusterTimeoutError is raised; the server may still finish it.
        """
        timeout_s = timeout_seconds("timeout_ms", timeout_ms)
        node = self.node(name)
        return _sql.run(self.psql_args(name, query, dbname), self._tools.env(), node=node.name,
                        port=node.port, query=query, timeout_s=timeout_s)

    def _scalar(self, name: str, query: str, timeout_ms: float = 10_000.0) -> Optional[str]:
        rows = self.sql(name, query, timeout_ms=timeout_ms)
        return rows[0][0] if rows else None
