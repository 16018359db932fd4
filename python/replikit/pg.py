"""PostgreSQL for replikit: the local cluster harness (and, when built, the C++ backend).

``LocalCluster`` starts a primary and N streaming replicas of the machine's PostgreSQL 15
on loopback, in a directory of its own, for tests, benchmarks and notebooks::

    from replikit.pg import LocalCluster

    with LocalCluster(replicas=2, mode="async") as cluster:
        cluster.sql("primary", "CREATE TABLE t (id int)")
        cluster.wait_caught_up(timeout_s=10)
        print(cluster.dsn("r1"))

The harness is pure Python (standard library only). It runs SQL through ``psql`` and runs
``initdb`` / ``pg_ctl`` as the ``postgres`` user when the caller is root. It never uses
port 5432 and never touches the distribution's default cluster.

How bring-up is fast: ``initdb`` runs once into a cached template directory; every node
is a copy of that cleanly stopped template. A replica is a copy plus ``standby.signal``,
``primary_conninfo`` and a physical replication slot on the primary named after it;
per-node settings (port, cluster_name, ...) go into ``postgresql.auto.conf``.
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

# =====================================================================================
# C++ PostgreSQL backend (libpqxx) -- re-exported from replikit._core when it was built.
#
# Owner of the backend: list the classes/functions that replikit.pg exposes from the
# compiled module in _BACKEND_NAMES (or replace this block by explicit imports guarded
# by ``_core.HAVE_PG``). When the module was built without libpqxx, looking one of these
# names up raises ImportError with the instructions below; the harness keeps working.
_BACKEND_NAMES: tuple = (  # from replikit._pgdb (the compiled classes and Python helpers)
    "ReplicatedDatabase", "Result", "Route", "NodeStatus", "PsycopgRouter",
    "database_for_cluster",
)
_BACKEND_MISSING_HINT = (
    "replikit was built without its PostgreSQL backend (libpqxx was not found at build "
    "time). Install it with `apt-get install libpqxx-dev pkg-config`, then rebuild with "
    "`pip install .` from the repository root. (replikit.pg.LocalCluster, the local "
    "cluster harness, does not need the backend.)"
)


def _backend_attr(name: str):
    from . import _core

    if getattr(_core, "HAVE_PG", False):
        from . import _pgdb

        for holder in (_pgdb, getattr(_core, "pg", None), _core):
            if holder is not None and hasattr(holder, name):
                return getattr(holder, name)
        raise AttributeError(f"replikit._core has no PostgreSQL backend name {name!r}")
    raise ImportError(f"cannot use replikit.pg.{name}: {_BACKEND_MISSING_HINT}")


def __getattr__(name: str):  # PEP 562: only called for names not defined below
    if name in _BACKEND_NAMES:
        return _backend_attr(name)
    raise AttributeError(f"module 'replikit.pg' has no attribute {name!r}")


# =====================================================================================
# Local cluster harness (pure Python, standard library only).


__all__ = [
    "ClusterError",
    "ClusterTimeoutError",
    "ClusterSQLError",
    "LocalCluster",
    "Node",
    "parse_lsn",
    "scratch_dir",
    "DEFAULT_PG_BIN_DIR",
    "MODES",
]

DEFAULT_PG_BIN_DIR = "/usr/lib/postgresql/15/bin"
MODES = ("async", "sync", "remote_apply")
DESCRIPTION_FILE = "cluster.json"
_FORBIDDEN_PORT = 5432  # the distribution's default cluster: never ours
_PORT_RANGE = (20000, 30000)  # below Linux's ephemeral range (32768-60999)
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
_LSN_RE = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")
_POLL_S = 0.01
_LOG_TAIL_LINES = 25

# Settings baked into the template's postgresql.conf (they are part of the template's
# cache key). Per-node settings go into postgresql.auto.conf instead.
_TEMPLATE_SETTINGS: Dict[str, str] = {
    "fsync": "off",  # a throwaway test cluster: durability is not the point
    "wal_level": "replica",
    "wal_log_hints": "on",  # lets pg_rewind rejoin an old primary
    "max_wal_senders": "16",
    "max_replication_slots": "16",
    "hot_standby": "on",
    "wal_retrieve_retry_interval": "'100ms'",  # replicas reconnect fast after a restart
    "wal_receiver_status_interval": "'1s'",
    "shared_buffers": "'32MB'",
    "unix_socket_directories": "''",  # TCP on loopback only; no socket files to clash
    "logging_collector": "off",
    "log_line_prefix": "'%m [%p] %q%a '",
    "log_min_messages": "warning",
}
_INITDB_ARGS = ("--no-sync", "-k", "-U", "postgres", "-A", "trust", "-E", "UTF8",
                "--locale=C")


def scratch_dir() -> str:
    """Where a LocalCluster without a base_dir puts its directory.

    ``$REPLIKIT_CLUSTER_TMPDIR`` if set; else /dev/shm when it is a writable tmpfs with
    room to spare (copying three data directories to it takes about 0.1 s, versus about
    2 s to the disk-backed /tmp measured here); else the system temp dir.
    """
    chosen = os.environ.get("REPLIKIT_CLUSTER_TMPDIR")
    if chosen:
        return chosen
    shm = "/dev/shm"
    try:
        stats = os.statvfs(shm)
        if (os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK)
                and stats.f_bavail * stats.f_frsize >= 1 << 30):
            return shm
    except OSError:
        pass
    return tempfile.gettempdir()


class ClusterError(RuntimeError):
    """The local cluster could not do what was asked (start, stop, wait, ...)."""


class ClusterTimeoutError(ClusterError, TimeoutError):
    """A bounded wait of the local cluster harness ran out of time."""


class ClusterSQLError(ClusterError):
    """psql reported an error for a query (the server's message is in ``stderr``)."""

    def __init__(self, message: str, *, node: str, query: str, stderr: str,
                 returncode: int):
        super().__init__(message)
        self.node = node
        self.query = query
        self.stderr = stderr
        self.returncode = returncode


def parse_lsn(text: str) -> int:
    """Parse PostgreSQL's ``X/Y`` LSN text into an integer byte position."""
    match = _LSN_RE.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"lsn: malformed LSN text {text!r} (expected e.g. '0/3000060')")
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


@dataclasses.dataclass
class Node:
    """One PostgreSQL server of a LocalCluster."""

    name: str
    role: str  # role it was created with: "primary" or "replica"
    port: int
    data_dir: str
    log_file: str
    pid: Optional[int] = None  # postmaster pid of the last start (None: never started)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _log_tail(path: str, lines: int = _LOG_TAIL_LINES, offset: int = 0) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError as exc:
        return f"(no server log: {exc})"
    text = data.decode("utf-8", "replace").splitlines()
    return "\n".join(text[-lines:]) if text else "(server log is empty)"


def _node_processes(data_dir: str, postmaster_pid: Optional[int] = None) -> List[int]:
    """Live (non-zombie) PostgreSQL processes serving ``data_dir``.

    Every PostgreSQL process (postmaster, backends, walsender/receiver, orphans of a
    killed postmaster) runs with the data directory as its working directory, and
    each child is its own process group, so the cwd is what ties them to a node.
    Only executables named ``postgres`` count: a recycled pid is never touched.
    """
    if not os.path.isdir("/proc/self"):  # no procfs: only the postmaster is known
        return [postmaster_pid] if postmaster_pid and _pid_alive(postmaster_pid) else []
    want = os.path.realpath(data_dir)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read().decode("ascii", "replace")
            # "pid (comm) state ...": comm is the executable name; PostgreSQL's
            # rewriting of its ps display does not change it.
            comm = stat[stat.find("(") + 1:stat.rfind(")")]
            state = stat[stat.rfind(")") + 2:].split()[0]
            if state == "Z" or not comm.startswith("postgres"):
                continue
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if cwd == want or cwd == want + " (deleted)":
            found.append(int(entry))
    return sorted(found)


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("ascii", "replace")
        return stat[stat.rfind(")") + 2:].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("ascii", "replace")
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].split()[0] == "Z"


def _is_postmaster_of(pid: int, node: "Node") -> bool:
    """Is ``pid`` alive and the postmaster of ``node`` (not a recycled pid)?"""
    if not _pid_alive(pid):
        return False
    try:  # pg_ctl starts it as `postgres -D <data_dir>`; the postmaster keeps its argv
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return node.data_dir.encode() in handle.read().split(b"\0")
    except OSError:
        return True  # no /proc: trust the pid file


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class LocalCluster:
    """A primary and N streaming replicas of local PostgreSQL 15 on loopback ports.

    Parameters:
        base_dir: directory holding every node's data and log (created if missing);
            default a fresh temporary directory (under ``scratch_dir()``), removed
            again by ``close()``.
        replicas: number of streaming replicas, named ``r1``, ``r2``, ...
        mode: ``"async"``, ``"sync"`` (``synchronous_standby_names = 'ANY k (r1, ...)'``)
            or ``"remote_apply"`` (the same plus ``synchronous_commit = remote_apply``).
        sync_count: k of ``ANY k (...)`` for the synchronous modes.
        base_port: first port to probe; default a random port in 20000-29999. Port
            5432 is never used.
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
        startup_timeout_s: bound on each wait of the bring-up.
    """

    def __init__(
        self,
        base_dir: Optional[str] = None,
        *,
        replicas: int = 2,
        mode: str = "async",
        sync_count: int = 1,
        base_port: Optional[int] = None,
        host: str = "127.0.0.1",
        persistent: bool = False,
        remove_dir: Optional[bool] = None,
        pg_bin_dir: Optional[str] = None,
        template_cache_dir: Optional[str] = None,
        extra_settings: Optional[Dict[str, str]] = None,
        start: bool = True,
        startup_timeout_s: float = 30.0,
    ):
        if not isinstance(replicas, int) or isinstance(replicas, bool) or not 0 <= replicas <= 10:
            raise ValueError(f"replicas: expected an integer in [0, 10], got {replicas!r}")
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
        if mode != "async" and replicas == 0:
            raise ValueError(f"mode: {mode!r} needs at least one replica (replicas=0)")
        if mode != "async" and not 1 <= sync_count <= replicas:
            raise ValueError(f"sync_count: expected 1..{replicas} (the replica count), "
                             f"got {sync_count!r}")
        if base_port is not None and not 1024 <= base_port <= 65000:
            raise ValueError(f"base_port: expected a port in [1024, 65000], got {base_port!r}")
        if startup_timeout_s <= 0:
            raise ValueError(f"startup_timeout_s: must be > 0, got {startup_timeout_s!r}")
        self.replica_count = replicas
        self.mode = mode
        self.sync_count = sync_count
        self.host = host
        self.persistent = persistent
        self.startup_timeout_s = float(startup_timeout_s)
        self.extra_settings = dict(extra_settings or {})
        for key in self.extra_settings:
            if not re.match(r"^[a-z_][a-z0-9_.]*$", key):
                raise ValueError(f"extra_settings: bad setting name {key!r}")
        self._base_port = base_port
        self.pg_bin_dir = pg_bin_dir or os.environ.get("REPLIKIT_PG_BIN_DIR") or DEFAULT_PG_BIN_DIR
        self._template_cache_dir = (template_cache_dir
                                    or os.environ.get("REPLIKIT_PG_TEMPLATE_DIR")
                                    or tempfile.gettempdir())
        self._created_dir = base_dir is None
        self.base_dir = os.path.abspath(base_dir) if base_dir is not None else None
        self._remove_dir = self._created_dir if remove_dir is None else bool(remove_dir)
        self.nodes: Dict[str, Node] = {}
        self._lock = threading.RLock()
        self._closed = False
        self._atexit_registered = False
        self.startup_s: Optional[float] = None  # measured bring-up time
        self._initial_mode: Optional[Tuple[str, int]] = None
        self._children: Dict[str, subprocess.Popen] = {}  # postmasters we started
        self._resolve_tools()
        if start:
            self.start_cluster()

    # ------------------------------------------------------------------ setup helpers
    def _resolve_tools(self) -> None:
        self._postgres = os.path.join(self.pg_bin_dir, "postgres")
        self._pg_ctl = os.path.join(self.pg_bin_dir, "pg_ctl")
        self._initdb = os.path.join(self.pg_bin_dir, "initdb")
        for tool in (self._postgres, self._pg_ctl, self._initdb):
            if not os.access(tool, os.X_OK):
                raise ClusterError(
                    f"PostgreSQL server binary {tool} not found: install PostgreSQL 15 "
                    "(`apt-get install postgresql-15`) or point REPLIKIT_PG_BIN_DIR / "
                    "pg_bin_dir at its bin directory")
        candidates = [os.path.join(self.pg_bin_dir, "psql"), "/usr/bin/psql",
                      shutil.which("psql") or ""]
        self._psql = next((c for c in candidates if c and os.access(c, os.X_OK)), None)
        if self._psql is None:
            raise ClusterError("psql not found (looked in the PostgreSQL bin dir and "
                               "/usr/bin): apt-get install postgresql-client-15")
        # initdb/postgres refuse to run as root: run them as the postgres user then.
        self._run_as: Optional[Tuple[int, int]] = None
        self._run_as_name = None
        if os.geteuid() == 0:
            import pwd

            try:
                entry = pwd.getpwnam("postgres")
            except KeyError:
                raise ClusterError("running as root but there is no `postgres` user to "
                                   "run the PostgreSQL servers as") from None
            self._run_as = (entry.pw_uid, entry.pw_gid)
            self._run_as_name = "postgres"
        else:
            import pwd

            try:
                self._run_as_name = pwd.getpwuid(os.geteuid()).pw_name
            except KeyError:
                self._run_as_name = str(os.geteuid())

    def _env(self) -> Dict[str, str]:
        # libpq reads PG* variables (PGOPTIONS, PGSSLMODE, PGSERVICE...): drop them so the
        # caller's environment cannot redirect or alter our connections.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGCONNECT_TIMEOUT"] = "5"
        env.setdefault("LC_ALL", "C")
        if self._run_as is not None and self.base_dir:
            env["HOME"] = self.base_dir  # never the postgres user's real home
        return env

    def _run_server_tool(self, args: Sequence[str], *, timeout_s: float = 60.0,
                         check: bool = True) -> subprocess.CompletedProcess:
        """Run a PostgreSQL server tool (as the postgres user when we are root)."""
        kwargs = {}
        if self._run_as is not None:
            kwargs = dict(user=self._run_as[0], group=self._run_as[1], extra_groups=[])
        cwd = self.base_dir if self.base_dir and os.path.isdir(self.base_dir) else "/"
        try:
            proc = subprocess.run(list(args), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=self._env(), cwd=cwd, timeout=timeout_s, **kwargs)
        except subprocess.TimeoutExpired as exc:
            raise ClusterTimeoutError(f"{os.path.basename(args[0])} did not finish within "
                                      f"{timeout_s:g} s: {' '.join(args)}") from exc
        if check and proc.returncode != 0:
            raise ClusterError(
                f"{' '.join(args)} failed with exit code {proc.returncode}:\n"
                f"{proc.stdout.decode(errors='replace')}{proc.stderr.decode(errors='replace')}")
        return proc

    def _chown(self, path: str) -> None:
        if self._run_as is not None:
            os.chown(path, *self._run_as)

    def _mkdir(self, path: str) -> None:
        os.makedirs(path, mode=0o700, exist_ok=True)
        self._chown(path)

    def _write_file(self, path: str, text: str, mode: int = 0o600) -> None:
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        self._chown(tmp)
        os.replace(tmp, path)

    def _prepare_base_dir(self) -> None:
        if self.base_dir is None:
            self.base_dir = tempfile.mkdtemp(prefix="replikit-cluster-", dir=scratch_dir())
        elif os.path.exists(self.base_dir):
            if not os.path.isdir(self.base_dir):
                raise ClusterError(f"base_dir {self.base_dir} exists and is not a directory")
            description = os.path.join(self.base_dir, DESCRIPTION_FILE)
            if os.path.exists(description):
                try:
                    old = LocalCluster.attach(self.base_dir)
                except ClusterError:
                    old = None
                if old is not None and any(old.is_up(n) for n in old.nodes):
                    raise ClusterError(
                        f"{self.base_dir} already holds a running cluster: stop it first "
                        f"(`replikit cluster down --dir {self.base_dir}`)")
                for entry in os.listdir(self.base_dir):  # a stopped old cluster: replace
                    path = os.path.join(self.base_dir, entry)
                    shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
            elif os.listdir(self.base_dir):
                raise ClusterError(f"base_dir {self.base_dir} is not empty and holds no "
                                   "replikit cluster: refusing to use it")
        os.makedirs(self.base_dir, mode=0o700, exist_ok=True)
        os.chmod(self.base_dir, 0o700)
        self._chown(self.base_dir)
        if self._run_as is not None:
            # Every parent must be searchable by postgres, or initdb/pg_ctl fail obscurely.
            probe = self._run_server_tool(["test", "-w", self.base_dir, "-a", "-x",
                                           self.base_dir], check=False)
            if probe.returncode != 0:
                raise ClusterError(
                    f"the postgres user cannot use {self.base_dir}: a parent directory is "
                    "not searchable by it. Choose a directory under /tmp, or make the "
                    "parents searchable (chmod o+x).")

    # ------------------------------------------------------------------ template
    def _template_dir(self) -> str:
        key = json.dumps({"bin": os.path.realpath(self.pg_bin_dir),
                          "initdb": _INITDB_ARGS, "settings": _TEMPLATE_SETTINGS},
                         sort_keys=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:10]
        major = re.search(r"/(\d+)/bin/?$", self.pg_bin_dir)
        version = major.group(1) if major else "x"
        return os.path.join(self._template_cache_dir,
                            f"replikit-pg-template-{version}-{self._run_as_name}-{digest}")

    def _ensure_template(self) -> str:
        """Return the data directory of a cleanly stopped initdb template (cached)."""
        final = self._template_dir()
        data = os.path.join(final, "data")
        owner = self._run_as[0] if self._run_as is not None else os.geteuid()
        if os.path.exists(os.path.join(final, "template.json")):
            if os.stat(final).st_uid == owner and os.stat(data).st_uid == owner:
                return data
            # Someone else's directory: do not trust it, build a private one instead.
            final = os.path.join(self.base_dir, "template")
            data = os.path.join(final, "data")
            if os.path.exists(os.path.join(final, "template.json")):
                return data
        parent = os.path.dirname(final)
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=os.path.basename(final) + ".tmp-", dir=parent)
        try:
            self._chown(staging)
            staging_data = os.path.join(staging, "data")
            self._run_server_tool([self._initdb, "-D", staging_data, *_INITDB_ARGS],
                                  timeout_s=120)
            conf = os.path.join(staging_data, "postgresql.conf")
            with open(conf, "a", encoding="utf-8") as handle:
                handle.write("\n# replikit LocalCluster template settings\n")
                for key, value in _TEMPLATE_SETTINGS.items():
                    handle.write(f"{key} = {value}\n")
            self._write_file(os.path.join(staging, "template.json"), json.dumps(
                {"initdb": _INITDB_ARGS, "settings": _TEMPLATE_SETTINGS,
                 "pg_bin_dir": self.pg_bin_dir}, indent=1), mode=0o644)
            os.chmod(staging, 0o755)
            try:
                os.rename(staging, final)  # atomic: concurrent builders race safely
            except OSError:
                if not os.path.exists(os.path.join(final, "template.json")):
                    raise
        finally:
            if os.path.exists(staging):
                shutil.rmtree(staging, ignore_errors=True)
        return data

    # ------------------------------------------------------------------ ports
    def _pick_ports(self, count: int, avoid: Iterable[int] = ()) -> List[int]:
        start = self._base_port if self._base_port is not None else random.randrange(*_PORT_RANGE)
        avoid = set(avoid) | {n.port for n in self.nodes.values()}
        ports: List[int] = []
        port = start
        for _ in range(5000):
            if port > 65000:
                port = 1024 + (port - 65000)
            if port != _FORBIDDEN_PORT and port not in avoid and _port_is_free(self.host, port):
                ports.append(port)
                if len(ports) == count:
                    return ports
            port += 1
        raise ClusterError(f"could not find {count} free TCP ports on {self.host} "
                           f"starting at {start}")

    # ------------------------------------------------------------------ bring-up
    def start_cluster(self) -> "LocalCluster":
        """Create and start the primary and its replicas; wait until all stream."""
        if self.nodes:
            raise ClusterError("this LocalCluster was already started")
        started = time.monotonic()
        try:
            self._prepare_base_dir()
            self._register_cleanup()
            template = self._ensure_template()
            names = ["primary"] + [f"r{i}" for i in range(1, self.replica_count + 1)]
            ports = self._pick_ports(len(names))
            for name, port in zip(names, ports):
                self.nodes[name] = Node(
                    name=name, role="primary" if name == "primary" else "replica",
                    port=port, data_dir=os.path.join(self.base_dir, name),
                    log_file=os.path.join(self.base_dir, f"{name}.log"))
            self._copy_template(template, list(self.nodes.values()))
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
                self.wait_streaming(timeout_s=self.startup_timeout_s)
        except BaseException:
            self.close()
            raise
        self.startup_s = time.monotonic() - started
        self._save_description()
        return self

    def _copy_template(self, template: str, nodes: List[Node]) -> None:
        kwargs = {}
        if self._run_as is not None:
            kwargs = dict(user=self._run_as[0], group=self._run_as[1], extra_groups=[])
        procs = [subprocess.Popen(["cp", "-a", template, node.data_dir],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, cwd=self.base_dir, **kwargs)
                 for node in nodes]
        errors = []
        for node, proc in zip(nodes, procs):
            try:
                _, err = proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                errors.append(f"{node.name}: copying the template timed out")
                continue
            if proc.returncode != 0:
                errors.append(f"{node.name}: {err.decode(errors='replace').strip()}")
        if errors:
            raise ClusterError("could not copy the template data directory: "
                               + "; ".join(errors))

    def _node_settings(self, node: Node) -> Dict[str, str]:
        settings = {
            "listen_addresses": f"'{self.host}'",
            "port": str(node.port),
            "cluster_name": f"'{node.name}'",
        }
        if node.role == "primary":
            settings.update(self._mode_settings(self.mode, self.sync_count))
        else:
            primary = self.nodes["primary"]
            conninfo = (f"host={self.host} port={primary.port} user=postgres "
                        f"application_name={node.name}")
            settings["primary_conninfo"] = f"'{conninfo}'"
            settings["primary_slot_name"] = f"'{node.name}'"
        settings.update(self.extra_settings)
        return settings

    def _mode_settings(self, mode: str, sync_count: int) -> Dict[str, str]:
        replicas = [n for n in self.nodes if n != "primary"]
        if mode == "async":
            return {"synchronous_standby_names": "''", "synchronous_commit": "on"}
        names = f"ANY {sync_count} ({', '.join(replicas)})"
        commit = "remote_apply" if mode == "remote_apply" else "on"
        return {"synchronous_standby_names": f"'{names}'", "synchronous_commit": commit}

    def _write_node_config(self, node: Node) -> None:
        lines = ["# Do not edit this file manually!",
                 "# It will be overwritten by the ALTER SYSTEM command.",
                 "# (written by replikit LocalCluster)"]
        lines += [f"{key} = {value}" for key, value in self._node_settings(node).items()]
        self._write_file(os.path.join(node.data_dir, "postgresql.auto.conf"),
                         "\n".join(lines) + "\n")
        if node.role == "replica":
            self._write_file(os.path.join(node.data_dir, "standby.signal"), "")

    def _set_auto_conf_value(self, node: Node, key: str, value: str) -> None:
        path = os.path.join(node.data_dir, "postgresql.auto.conf")
        with open(path, encoding="utf-8") as handle:
            lines = [ln for ln in handle.read().splitlines()
                     if not re.match(rf"^\s*{re.escape(key)}\s*=", ln)]
        lines.append(f"{key} = {value}")
        self._write_file(path, "\n".join(lines) + "\n")

    # ------------------------------------------------------------------ processes
    def _read_pidfile(self, node: Node) -> Optional[Tuple[int, str]]:
        try:
            with open(os.path.join(node.data_dir, "postmaster.pid"), encoding="utf-8") as handle:
                lines = handle.read().split("\n")
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError:
            return None
        try:
            pid = int(lines[0])
        except (ValueError, IndexError):
            return None
        status = lines[7].strip() if len(lines) > 7 else ""
        return pid, status

    def _live_pid(self, node: Node) -> Optional[int]:
        """The pid of the node's running postmaster, or None when it is down."""
        info = self._read_pidfile(node)
        pid = info[0] if info else node.pid
        return pid if pid is not None and _is_postmaster_of(pid, node) else None

    def _start_nodes(self, nodes: List[Node], timeout_s: Optional[float] = None,
                     port_retries: int = 3) -> None:
        """Start nodes concurrently and wait until each accepts connections."""
        timeout_s = self.startup_timeout_s if timeout_s is None else timeout_s
        pending = list(nodes)
        for attempt in range(port_retries + 1):
            offsets = {}
            for node in pending:
                if self._live_pid(node) is not None:
                    raise ClusterError(f"{node.name} is already running "
                                       f"(pid {self._live_pid(node)})")
                offsets[node.name] = os.path.getsize(node.log_file) if os.path.exists(node.log_file) else 0
                if not os.path.exists(node.log_file):
                    self._write_file(node.log_file, "", mode=0o644)
                self._clear_stale_pidfile(node)
                self._spawn_postmaster(node)
            failures = self._wait_ready(pending, offsets, timeout_s)
            if not failures:
                return
            retry = []
            for node, log in failures:
                if attempt < port_retries and ("could not bind" in log
                                               or "Address already in use" in log):
                    # Lost a race for the port with another process: take another one.
                    node.port = self._pick_ports(1, avoid=[node.port])[0]
                    self._set_auto_conf_value(node, "port", str(node.port))
                    retry.append(node)
                else:
                    raise ClusterError(
                        f"PostgreSQL node {node.name} (port {node.port}) failed to start; "
                        f"last lines of {node.log_file}:\n{log}")
            pending = retry

    def _spawn_postmaster(self, node: Node) -> None:
        """Start ``postgres -D data_dir`` as our child, logging to the node's log file.

        Like ``pg_ctl start`` (own session, stdin from /dev/null, output appended to the
        log) but the postmaster stays our child, so we reap it at once when it dies: a
        zombie postmaster would make its restart fail ("lock file already exists") on
        machines whose init is slow to reap orphans.
        """
        kwargs = {}
        if self._run_as is not None:
            kwargs = dict(user=self._run_as[0], group=self._run_as[1], extra_groups=[])
        with open(node.log_file, "ab") as log:
            proc = subprocess.Popen([self._postgres, "-D", node.data_dir],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    cwd=node.data_dir, env=self._env(),
                                    start_new_session=True, **kwargs)
        self._children[node.name] = proc
        self._reap_children()

    def _reap_children(self) -> None:
        """Collect the exit status of postmasters of ours that ended (no zombies)."""
        for name, proc in list(self._children.items()):
            if proc.poll() is not None:
                del self._children[name]

    def _clear_stale_pidfile(self, node: Node) -> None:
        """Remove postmaster.pid left by a killed postmaster that is now a zombie.

        PostgreSQL treats a pid that still exists (a zombie too) as a running
        postmaster. Its children are gone (checked), so the lock file is stale.
        """
        info = self._read_pidfile(node)
        if info is None or not _is_zombie(info[0]) or self._processes(node):
            return
        try:
            os.unlink(os.path.join(node.data_dir, "postmaster.pid"))
        except FileNotFoundError:
            pass

    def _release_crashed_shared_memory(self, node: Node, timeout_s: float = 5.0) -> None:
        """Free the shared memory a SIGKILLed postmaster left behind (best effort).

        Nobody removes the System V and /dev/shm segments of a postmaster killed with
        SIGKILL until PostgreSQL starts again in the same data directory. So start it
        once, and as soon as it has set up its own shared memory (having dropped the
        old segments), stop it immediately (SIGQUIT; the postmaster frees its segments).
        """
        info = self._read_pidfile(node)
        if info is None or self._live_pid(node) is not None or self._processes(node):
            return  # cleanly stopped (no lock file) or still running
        old_pid = info[0]
        self._clear_stale_pidfile(node)
        try:
            self._spawn_postmaster(node)
        except OSError:
            return
        child = self._children.get(node.name)
        deadline = time.monotonic() + timeout_s
        while child is not None and child.poll() is None and time.monotonic() < deadline:
            info = self._read_pidfile(node)
            if info is not None and info[0] != old_pid and info[1]:
                break  # the status line is written after shared memory is set up
            time.sleep(_POLL_S)
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGQUIT)
        if not self._wait_processes_gone(node, timeout_s):
            self._kill_processes(node)

    def _wait_ready(self, nodes: List[Node], offsets: Dict[str, int],
                    timeout_s: float) -> List[Tuple[Node, str]]:
        deadline = time.monotonic() + timeout_s
        pending = {n.name: n for n in nodes}
        failures: List[Tuple[Node, str]] = []
        while pending:
            for name, node in list(pending.items()):
                info = self._read_pidfile(node)
                if info is not None:
                    pid, status = info
                    if _is_postmaster_of(pid, node):
                        node.pid = pid
                        if status in ("ready", "standby"):
                            del pending[name]
                        continue
                new_log = _log_tail(node.log_file, offset=offsets.get(name, 0))
                child = self._children.get(name)
                if (child is not None and child.poll() is not None) or (
                        re.search(r"\b(FATAL|PANIC):", new_log) and (
                            info is None or not _is_postmaster_of(info[0], node))):
                    failures.append((node, new_log))
                    del pending[name]
            if not pending:
                break
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {n.log_file}:\n{_log_tail(n.log_file)}"
                                  for n in pending.values())
                raise ClusterTimeoutError(
                    f"node(s) {', '.join(pending)} not ready within {timeout_s:g} s;\n{tails}")
            time.sleep(_POLL_S)
        return failures

    def _processes(self, node: Node) -> List[int]:
        return _node_processes(node.data_dir, node.pid)

    def _wait_processes_gone(self, node: Node, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self._processes(node):
            if time.monotonic() > deadline:
                return False
            time.sleep(_POLL_S)
        self._reap_children()
        return True

    def _kill_processes(self, node: Node, timeout_s: float = 10.0) -> List[int]:
        """SIGKILL every process of a node; return the survivors (normally none)."""
        postmaster = self._live_pid(node)
        if postmaster is not None:
            try:  # freeze it first so it cannot fork while its children are killed
                os.kill(postmaster, signal.SIGSTOP)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout_s
        while True:
            victims = self._processes(node)
            if postmaster is not None and _pid_alive(postmaster) and postmaster not in victims:
                victims.append(postmaster)
            if not victims:
                self._reap_children()
                return []
            for pid in victims:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:
                return victims
            time.sleep(_POLL_S)

    # ------------------------------------------------------------------ public: nodes
    def node(self, name: str) -> Node:
        """The Node called ``name`` (``primary``, ``r1``, ...)."""
        try:
            return self.nodes[name]
        except KeyError:
            raise ValueError(f"node: no node named {name!r} in this cluster "
                             f"(nodes: {', '.join(self.nodes) or 'none'})") from None

    @property
    def replica_names(self) -> List[str]:
        return [n for n, node in self.nodes.items() if node.role == "replica"]

    def dsn(self, name: str, dbname: str = "postgres") -> str:
        """libpq keyword/value connection string of a node."""
        node = self.node(name)
        return f"host={self.host} port={node.port} dbname={dbname} user=postgres"

    def dsns(self) -> Dict[str, str]:
        return {name: self.dsn(name) for name in self.nodes}

    def pid(self, name: str) -> Optional[int]:
        """Postmaster pid of a running node, or None when it is down."""
        return self._live_pid(self.node(name))

    def pids(self, name: Optional[str] = None) -> List[int]:
        """Every live process (postmasters and their children) of the cluster, or of one
        node."""
        nodes = [self.node(name)] if name is not None else list(self.nodes.values())
        return sorted(p for node in nodes for p in self._processes(node))

    def is_up(self, name: str) -> bool:
        return self._live_pid(self.node(name)) is not None

    def start(self, name: str, timeout_s: Optional[float] = None) -> None:
        """Start a stopped (or killed) node and wait until it accepts connections."""
        node = self.node(name)
        with self._lock:
            self._start_nodes([node], timeout_s=timeout_s, port_retries=0)
            self._save_description()

    def stop(self, name: str, mode: str = "fast", timeout_s: float = 30.0) -> None:
        """Stop a node with ``pg_ctl stop -m mode`` (smart|fast|immediate); SIGKILL if stuck."""
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(f"mode: expected smart, fast or immediate, got {mode!r}")
        node = self.node(name)
        pid = self._live_pid(node)
        if pid is not None:
            self._run_server_tool([self._pg_ctl, "-D", node.data_dir, "-m", mode, "-W",
                                   "stop"], check=False, timeout_s=timeout_s)
        if not self._wait_processes_gone(node, timeout_s if pid is not None else 0.0):
            survivors = self._kill_processes(node)
            if survivors:
                raise ClusterError(f"{name}: processes {survivors} survive SIGKILL")

    def kill(self, name: str, timeout_s: float = 10.0) -> None:
        """Crash a node: SIGKILL its postmaster and all its children at once (like a
        power cut; a restart then runs crash recovery)."""
        node = self.node(name)
        if self._live_pid(node) is None:
            raise ClusterError(f"kill: node {name} is not running")
        survivors = self._kill_processes(node, timeout_s)
        if survivors:
            raise ClusterTimeoutError(f"kill: processes {survivors} of {name} still alive "
                                      f"{timeout_s:g} s after SIGKILL")

    # ------------------------------------------------------------------ SQL
    def psql_args(self, name: str, query: str, dbname: str = "postgres") -> List[str]:
        """The psql command line that runs ``query`` on a node (for background runs)."""
        return [self._psql, "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
                "-F", "\x1f", "-R", "\x1e", "-P", "null=\x1d",
                "-d", self.dsn(name, dbname), "-c", query]

    def client_env(self) -> Dict[str, str]:
        """Environment for client programs (psql, pgbench) run against the cluster."""
        return self._env()

    def sql_background(self, name: str, query: str) -> subprocess.Popen:
        """Start psql running ``query`` on a node and return at once (the caller waits
        or kills it); e.g. a commit expected to block on synchronous replication."""
        return subprocess.Popen(self.psql_args(name, query), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=self._env())

    def sql(self, name: str, query: str, *, timeout_s: float = 30.0,
            dbname: str = "postgres") -> List[Tuple[Optional[str], ...]]:
        """Run SQL on a node; rows of the last statement as tuples of str (None for NULL).

        Several statements separated by ``;`` run in one implicit transaction. A query
        still running after ``timeout_s`` is abandoned (psql is killed) and
        ClusterTimeoutError is raised; the server may still finish it.
        """
        return self._sql(self.node(name), query, timeout_s=timeout_s, dbname=dbname)

    def _sql(self, node: Node, query: str, *, timeout_s: float = 30.0,
             dbname: str = "postgres") -> List[Tuple[Optional[str], ...]]:
        # The one place SQL is sent; swap for the compiled backend here if wanted.
        args = self.psql_args(node.name, query, dbname)
        try:
            proc = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=self._env(), timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise ClusterTimeoutError(
                f"query on {node.name} did not finish within {timeout_s:g} s: {query}") from None
        stderr = proc.stderr.decode("utf-8", "replace")
        if proc.returncode != 0:
            raise ClusterSQLError(f"query on {node.name} (port {node.port}) failed: "
                                  f"{stderr.strip()}\nquery: {query}", node=node.name,
                                  query=query, stderr=stderr, returncode=proc.returncode)
        out = proc.stdout.decode("utf-8", "replace")
        if out == "":
            return []
        if out.endswith("\n"):
            out = out[:-1]
        return [tuple(None if f == "\x1d" else f for f in rec.split("\x1f"))
                for rec in out.split("\x1e")]

    def _scalar(self, name: str, query: str, timeout_s: float = 10.0) -> Optional[str]:
        rows = self.sql(name, query, timeout_s=timeout_s)
        return rows[0][0] if rows else None

    # ------------------------------------------------------------------ replication
    def current_lsn(self, name: str = "primary") -> int:
        """pg_current_wal_lsn() of a primary, as an integer."""
        return parse_lsn(self._scalar(name, "SELECT pg_current_wal_lsn()"))

    def replay_lsn(self, name: str) -> Optional[int]:
        """pg_last_wal_replay_lsn() of a replica (None on a primary)."""
        value = self._scalar(name, "SELECT pg_last_wal_replay_lsn()")
        return None if value is None else parse_lsn(value)

    def replication(self, primary: str = "primary") -> Dict[str, Dict[str, Optional[str]]]:
        """pg_stat_replication of a primary, keyed by application_name."""
        rows = self.sql(primary, "SELECT application_name, state, sync_state, sent_lsn, "
                                 "write_lsn, flush_lsn, replay_lsn FROM pg_stat_replication")
        keys = ("state", "sync_state", "sent_lsn", "write_lsn", "flush_lsn", "replay_lsn")
        return {row[0]: dict(zip(keys, row[1:])) for row in rows}

    def wait_streaming(self, timeout_s: float = 30.0, replicas: Optional[Sequence[str]] = None,
                       primary: str = "primary") -> None:
        """Wait until the primary's pg_stat_replication shows each replica 'streaming'."""
        names = list(self.replica_names if replicas is None else replicas)
        for name in names:
            self.node(name)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                seen = self.replication(primary)
            except ClusterSQLError:
                seen = {}
            missing = [n for n in names if seen.get(n, {}).get("state") != "streaming"]
            if not missing:
                return
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {self.nodes[n].log_file}:\n"
                                  f"{_log_tail(self.nodes[n].log_file, 10)}" for n in missing)
                raise ClusterTimeoutError(
                    f"replica(s) {', '.join(missing)} not streaming from {primary} within "
                    f"{timeout_s:g} s (pg_stat_replication: {seen});\n{tails}")
            time.sleep(0.02)

    def wait_caught_up(self, timeout_s: float = 30.0, replicas: Optional[Sequence[str]] = None,
                       primary: str = "primary") -> int:
        """Wait until every replica's replay LSN reaches the primary's current LSN.

        Returns that target LSN (an integer; format with ``format_lsn``).
        """
        names = list(self.replica_names if replicas is None else replicas)
        target = self.current_lsn(primary)
        deadline = time.monotonic() + timeout_s
        lagging = {n: None for n in names}
        while lagging:
            for name in list(lagging):
                try:
                    lsn = self.replay_lsn(name)
                except ClusterSQLError:
                    lsn = None
                lagging[name] = lsn
                if lsn is not None and lsn >= target:
                    del lagging[name]
            if not lagging:
                break
            if time.monotonic() > deadline:
                detail = ", ".join(f"{n} at {format_lsn(l) if l is not None else 'unknown'}"
                                   for n, l in lagging.items())
                raise ClusterTimeoutError(
                    f"replicas not caught up with {primary} at {format_lsn(target)} within "
                    f"{timeout_s:g} s: {detail}")
            time.sleep(_POLL_S)
        return target

    def pause_replay(self, name: str) -> None:
        """Pause WAL replay on a replica (pg_wal_replay_pause)."""
        self.sql(name, "SELECT pg_wal_replay_pause()")

    def resume_replay(self, name: str) -> None:
        """Resume WAL replay on a replica (pg_wal_replay_resume)."""
        self.sql(name, "SELECT pg_wal_replay_resume()")

    def replay_pause_state(self, name: str) -> str:
        """'not paused', 'pause requested' or 'paused' (pg_get_wal_replay_pause_state)."""
        return self._scalar(name, "SELECT pg_get_wal_replay_pause_state()")

    def _reload_and_confirm(self, name: str, setting: str, expected: str,
                            timeout_s: float = 10.0) -> None:
        self.sql(name, "SELECT pg_reload_conf()")
        # A new session sees the postmaster's reloaded value; by then the postmaster has
        # also signalled its children (startup process, walsenders) to reload.
        deadline = time.monotonic() + timeout_s
        while True:
            value = self._scalar(name, "SELECT setting FROM pg_settings "
                                       f"WHERE name = '{setting}'")
            if value == expected:
                return
            if time.monotonic() > deadline:
                raise ClusterTimeoutError(f"{name}: {setting} is {value!r}, not {expected!r}, "
                                          f"{timeout_s:g} s after pg_reload_conf()")
            time.sleep(_POLL_S)

    def set_apply_delay(self, name: str, delay_ms: int) -> None:
        """Delay applying commits on a replica by ``delay_ms`` (recovery_min_apply_delay)."""
        if self.node(name).role != "replica":
            raise ValueError(f"name: {name} is not a replica")
        if not isinstance(delay_ms, int) or delay_ms < 0:
            raise ValueError(f"delay_ms: expected a non-negative integer, got {delay_ms!r}")
        self.sql(name, f"ALTER SYSTEM SET recovery_min_apply_delay = '{delay_ms}ms'")
        self._reload_and_confirm(name, "recovery_min_apply_delay", str(delay_ms))

    def apply_delay_ms(self, name: str) -> int:
        """A replica's current recovery_min_apply_delay in milliseconds."""
        return int(self._scalar(name, "SELECT setting FROM pg_settings "
                                      "WHERE name = 'recovery_min_apply_delay'"))

    def clear_apply_delay(self, name: str) -> None:
        """Remove a replica's apply delay."""
        self.sql(name, "ALTER SYSTEM RESET recovery_min_apply_delay")
        self._reload_and_confirm(name, "recovery_min_apply_delay", "0")

    def set_replication_mode(self, mode: str, sync_count: Optional[int] = None,
                             primary: str = "primary") -> None:
        """Switch async / sync / remote_apply at run time (ALTER SYSTEM + reload)."""
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
        count = self.sync_count if sync_count is None else sync_count
        replicas = self.replica_names
        if mode != "async" and not 1 <= count <= len(replicas):
            raise ValueError(f"sync_count: expected 1..{len(replicas)}, got {count!r}")
        settings = self._mode_settings(mode, count)
        for key, value in settings.items():
            self.sql(primary, f"ALTER SYSTEM SET {key} = {value}")
        expected = settings["synchronous_standby_names"].strip("'")
        self._reload_and_confirm(primary, "synchronous_standby_names", expected)
        self._reload_and_confirm(primary, "synchronous_commit",
                                 settings["synchronous_commit"])
        self.mode, self.sync_count = mode, count
        self._save_description()

    def reset(self, timeout_s: float = 30.0) -> None:
        """Bring a shared cluster back to normal after a test played with it.

        Starts stopped nodes, resumes replay, clears apply delays, restores the
        replication mode the cluster was created with, and waits until all stream.
        It does not undo a promotion or a repointed replica: failover tests should
        start a LocalCluster of their own.
        """
        for name in self.nodes:
            if not self.is_up(name):
                self.stop(name)  # reaps any orphans of a killed postmaster
                self.start(name, timeout_s=timeout_s)
        for name in self.replica_names:
            if self.replay_pause_state(name) != "not paused":
                self.resume_replay(name)
            if self.apply_delay_ms(name) != 0:
                self.clear_apply_delay(name)
        created = self._created_mode
        if (self.mode, self.sync_count) != created:
            self.set_replication_mode(*created)
        if self.replica_names:
            self.wait_streaming(timeout_s=timeout_s)

    @property
    def _created_mode(self) -> Tuple[str, int]:
        return getattr(self, "_initial_mode", None) or (self.mode, self.sync_count)

    # ------------------------------------------------------------------ status
    def status(self) -> List[Dict[str, object]]:
        """One dict per node: name, role, port, pid, up, LSNs, replication state."""
        rows: List[Dict[str, object]] = []
        replication: Dict[str, Dict[str, Optional[str]]] = {}
        for name, node in self.nodes.items():
            pid = self._live_pid(node)
            row: Dict[str, object] = {
                "name": name, "created_role": node.role, "role": None, "port": node.port,
                "pid": pid, "up": pid is not None, "current_lsn": None,
                "receive_lsn": None, "replay_lsn": None, "replay_paused": None,
                "replication_state": None, "sync_state": None, "dsn": self.dsn(name),
            }
            if pid is not None:
                try:
                    rec, cur, receive, replay, pause = self.sql(name, (
                        "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN NULL "
                        "ELSE pg_current_wal_lsn() END, pg_last_wal_receive_lsn(), "
                        "pg_last_wal_replay_lsn(), CASE WHEN pg_is_in_recovery() THEN "
                        "pg_get_wal_replay_pause_state() END"), timeout_s=5)[0]
                    row.update(role="replica" if rec == "t" else "primary", current_lsn=cur,
                               receive_lsn=receive, replay_lsn=replay, replay_paused=pause)
                    if rec == "f":
                        replication.update(self.replication(name))
                except ClusterError as exc:
                    row["error"] = str(exc).splitlines()[0]
            rows.append(row)
        for row in rows:
            info = replication.get(row["name"])
            if info:
                row["replication_state"] = info["state"]
                row["sync_state"] = info["sync_state"]
        return rows

    # ------------------------------------------------------------------ description
    def description(self) -> dict:
        return {
            "format": 1, "base_dir": self.base_dir, "host": self.host, "mode": self.mode,
            "sync_count": self.sync_count, "initial_mode": list(self._created_mode),
            "pg_bin_dir": self.pg_bin_dir, "persistent": self.persistent,
            "owner_pid": os.getpid(), "startup_s": self.startup_s,
            "nodes": [n.to_json() for n in self.nodes.values()],
        }

    def _save_description(self) -> None:
        if self.base_dir and os.path.isdir(self.base_dir):
            self._write_file(os.path.join(self.base_dir, DESCRIPTION_FILE),
                             json.dumps(self.description(), indent=1) + "\n", mode=0o644)

    @classmethod
    def attach(cls, base_dir: str) -> "LocalCluster":
        """A handle on a cluster another process started (e.g. ``replikit cluster up``).

        The handle is persistent (nothing is stopped when this process exits) and does
        not remove the directory on ``close()`` unless asked to.
        """
        path = os.path.join(os.path.abspath(base_dir), DESCRIPTION_FILE)
        try:
            with open(path, encoding="utf-8") as handle:
                desc = json.load(handle)
        except FileNotFoundError:
            raise ClusterError(f"no replikit cluster in {base_dir} ({path} does not exist)") from None
        except (OSError, ValueError) as exc:
            raise ClusterError(f"cannot read {path}: {exc}") from None
        nodes = desc.get("nodes") or []
        replicas = sum(1 for n in nodes if n.get("role") == "replica")
        self = cls(os.path.abspath(base_dir), replicas=min(replicas, 10), mode="async",
                   host=desc.get("host", "127.0.0.1"), persistent=True, remove_dir=False,
                   pg_bin_dir=desc.get("pg_bin_dir"), start=False)
        self.mode = desc.get("mode", "async")
        self.sync_count = int(desc.get("sync_count", 1))
        initial = desc.get("initial_mode")
        self._initial_mode = (initial[0], int(initial[1])) if initial else None
        self.startup_s = desc.get("startup_s")
        for item in nodes:
            node = Node(**{k: item[k] for k in ("name", "role", "port", "data_dir",
                                                  "log_file", "pid")})
            self.nodes[node.name] = node
        return self

    # ------------------------------------------------------------------ cleanup
    def _register_cleanup(self) -> None:
        self._initial_mode = (self.mode, self.sync_count)
        if not self.persistent and not self._atexit_registered:
            atexit.register(self.close)
            self._atexit_registered = True

    def close(self, remove_dir: Optional[bool] = None, mode: str = "immediate",
              timeout_s: float = 15.0) -> None:
        """Stop every PostgreSQL process of the cluster; remove the directory if asked.

        Each node gets ``pg_ctl stop -m mode`` (immediate by default: it is being thrown
        away); whatever is still alive after ``timeout_s`` gets SIGKILL. Idempotent.
        """
        with self._lock:
            for node in self.nodes.values():
                if self._live_pid(node) is not None:
                    try:
                        self._run_server_tool(
                            [self._pg_ctl, "-D", node.data_dir, "-m", mode, "-W", "stop"],
                            check=False, timeout_s=timeout_s)
                    except ClusterError:
                        pass  # SIGKILL below
            deadline = time.monotonic() + timeout_s
            survivors = []
            for node in self.nodes.values():
                remaining = max(0.0, deadline - time.monotonic())
                if not self._wait_processes_gone(node, remaining):
                    survivors += self._kill_processes(node)
            if not survivors:
                for node in self.nodes.values():
                    self._release_crashed_shared_memory(node)
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

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        nodes = ", ".join(f"{n.name}:{n.port}" for n in self.nodes.values())
        return f"LocalCluster({self.base_dir!r}, mode={self.mode!r}, nodes=[{nodes}])"


def format_lsn(lsn: int) -> str:
    """Format an integer LSN as PostgreSQL's ``X/Y`` text."""
    if not isinstance(lsn, int) or lsn < 0 or lsn >= 1 << 64:
        raise ValueError(f"lsn: expected an integer in [0, 2**64), got {lsn!r}")
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


__all__.append("format_lsn")
