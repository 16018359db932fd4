"""LocalCluster: a primary and N streaming replicas of local PostgreSQL 15 on loopback."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import threading
import time
import warnings
from typing import Any, Dict, Optional, Tuple

from .._deprecation import renamed_keywords
from . import directory as _directory
from . import template as _template
from .errors import ClusterError, invalid_argument, timeout_seconds
from .nodes import MODES, PORT_LIMITS, Node, node_settings, write_node_config
from .processes import Supervisor
from .failover import FailoverControl
from .tools import ServerTools
from .tools import pg_bin_dir as _bin_dir

MAX_REPLICAS = 10


class LocalCluster(FailoverControl):
    """A primary and N streaming replicas of local PostgreSQL 15 on loopback ports.

    Parameters:
        base_dir: directory holding every node's data and log (created if missing);
            default a fresh temporary directory (under ``scratch_dir()``), removed
            again by ``close()``.
        replicas: number of streaming replicas (0-10), named ``r1``, ``r2``, ...
        mode: ``"async"``; ``"semi_sync"`` (``synchronous_standby_names = 'ANY 1 (r1,
            ...)'``); ``"sync"`` (``'ANY k (r1, ...)'``); ``"sync_all"`` (``'FIRST n (r1,
            ...)'``: every standby); ``"remote_apply"`` (``'ANY k (...)'`` plus
            ``synchronous_commit = remote_apply``). ``set_replication_mode()`` switches
            it at run time.
        sync_count: k of ``ANY k (...)`` for sync and remote_apply (1..replicas).
        base_port: first port to probe (1024-65000); default a random port in
            20000-29999. Port 5432 is never used.
        host: loopback address every node listens on.
        persistent: leave the cluster running when the Python process exits (no
            ``atexit`` hook); used by ``replikit cluster up``.
        remove_dir: remove ``base_dir`` on ``close()``; default True only for the
            temporary directory the cluster created itself.
        pg_bin_dir: PostgreSQL server binaries (default /usr/lib/postgresql/15/bin or
            ``$REPLIKIT_PG_BIN_DIR``).
        template_cache_dir: where the initdb template is cached (default the system
            temp dir, or ``$REPLIKIT_PG_TEMPLATE_DIR``).
        extra_settings: more ``postgresql.auto.conf`` settings for every node, as
            SQL-literal text (e.g. ``{"work_mem": "'8MB'"}``).
        start: start the cluster now (otherwise call ``start_cluster()``).
        startup_timeout_ms: bound on each wait of the bring-up, in milliseconds
            (``startup_timeout_s``, in seconds, is deprecated).

    Every duration of this class is in milliseconds (``timeout_ms``, keyword-only); the old
    ``timeout_s`` keywords still work for one release, with a DeprecationWarning. LSNs come
    back as ``replikit.Lsn``; errors are ``ClusterError`` (a ``replikit.Error``),
    ``ClusterTimeoutError`` (also a ``TimeoutError``) and ``ClusterSQLError``, and bad
    arguments raise ``replikit.InvalidArgument`` / ``TypeError`` naming the argument.
    """

    @renamed_keywords(startup_timeout_s=("startup_timeout_ms", 1000.0))
    def __init__(self, base_dir: Optional[str] = None, *, replicas: int = 2,
                 mode: str = "async", sync_count: int = 1, base_port: Optional[int] = None,
                 host: str = "127.0.0.1", persistent: bool = False,
                 remove_dir: Optional[bool] = None, pg_bin_dir: Optional[str] = None,
                 template_cache_dir: Optional[str] = None,
                 extra_settings: Optional[Dict[str, str]] = None, start: bool = True,
                 startup_timeout_ms: float = 30_000.0):
        check_arguments(replicas, mode, sync_count, base_port)
        timeout_seconds("startup_timeout_ms", startup_timeout_ms)
        self.replica_count = replicas
        self.mode = mode
        self.sync_count = sync_count
        self.host = host
        self.persistent = persistent
        self.startup_timeout_ms = float(startup_timeout_ms)
        self.extra_settings = dict(extra_settings or {})
        for key in self.extra_settings:
            if not re.match(r"^[a-z_][a-z0-9_.]*$", key):
                raise invalid_argument("extra_settings", f"bad setting name {key!r}")
        self._base_port = base_port
        self.pg_bin_dir = _bin_dir(pg_bin_dir)
        self._template_cache_dir = _template.cache_dir(template_cache_dir)
        self.base_dir = os.path.abspath(base_dir) if base_dir is not None else None
        self._remove_dir = (base_dir is None) if remove_dir is None else bool(remove_dir)
        self.nodes: Dict[str, Node] = {}
        self._lock = threading.RLock()
        self._closed = False
        self._atexit_registered = False
        self.startup_ms: Optional[float] = None  # measured bring-up time
        self._initial_mode: Optional[Tuple[str, int]] = None
        self._tools = ServerTools(self.pg_bin_dir)
        self._tools.home = self.base_dir
        self._supervisor = Supervisor(self._tools)
        if start:
            self.start_cluster()

    @property
    def startup_s(self) -> Optional[float]:
        """Deprecated: the bring-up time in seconds; use ``startup_ms``."""
        warnings.warn("LocalCluster.startup_s is deprecated and will be removed in the next "
                      "release; use startup_ms (milliseconds)", DeprecationWarning, stacklevel=2)
        return None if self.startup_ms is None else self.startup_ms / 1000.0

    # ------------------------------------------------------------------ bring-up
    def start_cluster(self) -> "LocalCluster":
        """Create and start the primary and its replicas; wait until all stream."""
        if self.nodes:
            raise ClusterError("this LocalCluster was already started")
        started = time.monotonic()
        try:
            self._prepare_base_dir()
            self._register_cleanup()
            assert self.base_dir is not None
            template = _template.ensure_template(self._tools, self._template_cache_dir,
                                                 self.base_dir)
            names = ["primary"] + [f"r{i}" for i in range(1, self.replica_count + 1)]
            for name, port in zip(names, self._pick_ports(len(names))):
                self.nodes[name] = Node(
                    name=name, role="primary" if name == "primary" else "replica", port=port,
                    data_dir=os.path.join(self.base_dir, name),
                    log_file=os.path.join(self.base_dir, f"{name}.log"))
            self._tools.copy_trees(template, [(n.name, n.data_dir) for n in self.nodes.values()],
                                   cwd=self.base_dir)
            primary = self.nodes["primary"]
            self._write_node_config(primary)
            self._start_nodes([primary])
            replicas = [self.nodes[n] for n in names[1:]]
            if replicas:
                slots = ", ".join(f"pg_create_physical_replication_slot('{r.name}', true)"
                                  for r in replicas)
                self.sql("primary", f"SELECT {slots}")
                for replica in replicas:
                    self._write_node_config(replica)
                self._start_nodes(replicas)
            self._save_description()
            if replicas:
                self.wait_streaming(timeout_ms=self.startup_timeout_ms)
        except BaseException:
            self.close()
            raise
        self.startup_ms = (time.monotonic() - started) * 1000.0
        self._save_description()
        return self

    @renamed_keywords(timeout_s=("timeout_ms", 1000.0))
    def start_all(self, *, timeout_ms: Optional[float] = None) -> "LocalCluster":
        """Start every stopped node, the primary first, with the data it had; wait until all
        replicas stream. For a cluster kept with ``close(remove_dir=False)`` (``replikit
        cluster down --keep``) and then ``attach()``-ed."""
        timeout = self.startup_timeout_ms if timeout_ms is None else timeout_ms
        started = time.monotonic()
        with self._lock:
            for name in sorted(self.nodes, key=lambda n: self.nodes[n].role != "primary"):
                if self.nodes[name].role != "detached" and not self.is_up(name):
                    self.stop(name)  # reaps any orphans of a killed postmaster
                    self.start(name, timeout_ms=timeout)
            if self.replica_names:
                self.wait_streaming(timeout_ms=timeout)
            self.startup_ms = (time.monotonic() - started) * 1000.0
            self._save_description()
        return self

    def _prepare_base_dir(self) -> None:
        self.base_dir = _directory.prepare(self._tools, self.base_dir)
        self._tools.home = self.base_dir

    def _write_node_config(self, node: Node) -> None:
        settings = node_settings(node, self.host, self.nodes["primary"],
                                 self._mode_settings(self.mode, self.sync_count),
                                 self.extra_settings)
        write_node_config(self._tools, node, settings)

    # ------------------------------------------------------------------ description
    def description(self) -> Dict[str, Any]:
        """What cluster.json holds: enough for ``attach()`` from another process."""
        return {
            "format": 1, "base_dir": self.base_dir, "host": self.host, "mode": self.mode,
            "sync_count": self.sync_count,
            "initial_mode": list(self._initial_mode or (self.mode, self.sync_count)),
            "pg_bin_dir": self.pg_bin_dir, "persistent": self.persistent,
            "owner_pid": os.getpid(), "startup_ms": self.startup_ms,
            "nodes": [n.to_json() for n in self.nodes.values()],
        }

    def _save_description(self) -> None:
        if self.base_dir:
            _directory.write_description(self._tools, self.base_dir, self.description())

    @classmethod
    def attach(cls, base_dir: str) -> "LocalCluster":
        """A handle on a cluster another process started (e.g. ``replikit cluster up``), or
        one kept on disk after it was stopped.

        The handle is persistent (nothing is stopped when this process exits) and does
        not remove the directory on ``close()`` unless asked to.
        """
        desc = _directory.read_description(base_dir)
        nodes = _directory.described_nodes(desc)
        replicas = sum(1 for n in nodes.values() if n.role == "replica")
        self = cls(os.path.abspath(base_dir), replicas=min(replicas, MAX_REPLICAS),
                   host=desc.get("host", "127.0.0.1"), persistent=True, remove_dir=False,
                   pg_bin_dir=desc.get("pg_bin_dir"), start=False)
        self.mode = desc.get("mode", "async")
        self.sync_count = int(desc.get("sync_count", 1))
        initial = desc.get("initial_mode")
        self._initial_mode = (initial[0], int(initial[1])) if initial else None
        self.startup_ms = desc.get("startup_ms")
        self.nodes.update(nodes)
        return self

    # ------------------------------------------------------------------ cleanup
    def _register_cleanup(self) -> None:
        self._initial_mode = (self.mode, self.sync_count)
        if not self.persistent and not self._atexit_registered:
            atexit.register(self.close)
            self._atexit_registered = True

    @renamed_keywords(timeout_s=("timeout_ms", 1000.0))
    def close(self, remove_dir: Optional[bool] = None, mode: str = "immediate", *,
              timeout_ms: float = 15_000.0) -> None:
        """Stop every PostgreSQL process of the cluster; remove the directory if asked.

        Each node gets ``pg_ctl stop -m mode`` (immediate by default: it is being thrown
        away); whatever is still alive after ``timeout_ms`` gets SIGKILL. Idempotent.
        """
        timeout_s = timeout_seconds("timeout_ms", timeout_ms)
        with self._lock:
            for node in self.nodes.values():
                if self._supervisor.live_pid(node) is not None:
                    try:
                        self._tools.run([self._tools.pg_ctl, "-D", node.data_dir, "-m", mode,
                                         "-W", "stop"], check=False, timeout_s=timeout_s,
                                        cwd=self.base_dir)
                    except ClusterError:
                        pass  # SIGKILL below
            deadline = time.monotonic() + timeout_s
            survivors = []
            for node in self.nodes.values():
                remaining = max(0.0, deadline - time.monotonic())
                if not self._supervisor.wait_gone(node, remaining):
                    survivors += self._supervisor.kill(node)
            if not survivors:
                for node in self.nodes.values():
                    self._supervisor.release_crashed_shared_memory(node)
            if self._atexit_registered:
                atexit.unregister(self.close)
                self._atexit_registered = False
            remove = self._remove_dir if remove_dir is None else remove_dir
            if remove and self.base_dir and os.path.isdir(self.base_dir) and not survivors:
                shutil.rmtree(self.base_dir, ignore_errors=True)
            self._closed = True
            if survivors:
                raise ClusterError(f"processes {survivors} of the cluster survived SIGKILL")

    def __enter__(self) -> "LocalCluster":
        if not self.nodes:
            self.start_cluster()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        nodes = ", ".join(f"{n.name}:{n.port}" for n in self.nodes.values())
        return f"LocalCluster({self.base_dir!r}, mode={self.mode!r}, nodes=[{nodes}])"


def check_arguments(replicas: int, mode: str, sync_count: int, base_port: Optional[int]) -> None:
    if (not isinstance(replicas, int) or isinstance(replicas, bool)
            or not 0 <= replicas <= MAX_REPLICAS):
        raise invalid_argument("replicas", f"expected an integer in [0, {MAX_REPLICAS}], "
                                           f"got {replicas!r}")
    if mode not in MODES:
        raise invalid_argument("mode", f"expected one of {MODES}, got {mode!r}")
    if mode != "async" and replicas == 0:
        raise invalid_argument("mode", f"{mode!r} needs at least one replica (replicas=0)")
    if mode != "async" and not 1 <= sync_count <= replicas:
        raise invalid_argument("sync_count", f"expected 1..{replicas} (the replica count), "
                                             f"got {sync_count!r}")
    low, high = PORT_LIMITS
    if base_port is not None and not low <= base_port <= high:
        raise invalid_argument("base_port", f"expected a port in [{low}, {high}], got {base_port!r}")

