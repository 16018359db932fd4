"""Application processes coordinated through etcd, for tests and benchmarks of many hosts.

Each ``AppProcess`` is a Python subprocess (``python -m replikit.testing.coordinated CONFIG``)
standing for one application host: a ReplicatedDatabase (the router) over a LocalCluster, an
``EtcdCoordinator`` with its FailoverManager, and a writer loop that inserts ``(process, i)``
rows for i = 1, 2, ... and records every write with its outcome, the node that served it (by
the server's own port) and the server's timeline, and the router's topology (epoch, primary)
when the write was invoked and when it completed, one JSON line each. A
status thread records ``coordinator.status()`` every ``status_interval_ms``. The controller
signals the processes (SIGSTOP/SIGCONT to pause one past its lease, SIGTERM to stop) and reads
their files; ``AppProcesses`` stops them all, also when a test fails.

    with LocalCluster(replicas=2, mode="sync") as cluster, EtcdCluster(3) as etcd:
        config = app_config(cluster, etcd.endpoints, out_dir)
        with AppProcesses(["a", "b", "c"], config) as apps:
            ...
            apps["a"].writes()   # the write records (replikit's history-checker fields)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from .errors import ClusterError, ClusterTimeoutError

# The server's own port and timeline, read in the write's transaction (the checker's
# server-side view: one node per timeline, no write on a timeline older than a completed one's).
WRITE_SQL = ("INSERT INTO {table} (proc, id) VALUES ($1, $2) RETURNING inet_server_port(), "
             "('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int")
CREATE_SQL = "CREATE TABLE IF NOT EXISTS {table} (proc text NOT NULL, id int NOT NULL, PRIMARY KEY (proc, id))"
STOP_TIMEOUT_S = 15.0
READY_TIMEOUT_S = 30.0
MAX_WRITES = 1_000_000


def app_config(cluster: Any, endpoints: Sequence[str], out_dir: str, *, prefix: str = "/replikit/test",
               ttl_ms: float = 2000.0, table: str = "w", write_interval_ms: float = 5.0,
               status_interval_ms: float = 50.0, coordinator_options: Optional[Dict[str, Any]] = None,
               database_options: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The configuration every AppProcess of a test shares (a JSON-able dict)."""
    nodes = {name: cluster.dsn(name) for name in ["primary", *cluster.replica_names]}
    ports = {str(node.port): name for name, node in cluster.nodes.items()}
    return {"nodes": nodes, "ports": ports, "endpoints": list(endpoints), "prefix": prefix,
            "ttl_ms": ttl_ms, "table": table, "out_dir": out_dir,
            "write_interval_ms": write_interval_ms, "status_interval_ms": status_interval_ms,
            "coordinator_options": coordinator_options or {},
            "database_options": database_options or {"probe_interval_ms": 50,
                                                     "probe_timeout_ms": 200,
                                                     "connect_timeout_ms": 2000}}


def create_table(cluster: Any, table: str = "w") -> None:
    """The writers' table, made once by the controller (three processes racing to create it
    would collide in the catalog)."""
    cluster.sql("primary", CREATE_SQL.format(table=table))


class _Tail:
    """The complete JSON lines of a file another process appends to, read incrementally."""

    def __init__(self, path: str):
        self.path = path
        self.records: List[Dict[str, Any]] = []
        self._offset = 0

    def read(self) -> List[Dict[str, Any]]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return self.records
        end = data.rfind(b"\n") + 1  # a line being written waits for the next read
        for line in data[:end].splitlines():
            self.records.append(json.loads(line))
        self._offset += end
        return self.records


class AppProcess:
    """The controller's handle on one application process."""

    def __init__(self, name: str, config: Dict[str, Any]):
        self.name = name
        self.config = dict(config, name=name)
        out = config["out_dir"]
        self.config_path = os.path.join(out, f"{name}.config.json")
        self.writes_path = os.path.join(out, f"{name}.writes.jsonl")
        self.status_path = os.path.join(out, f"{name}.status.jsonl")
        self.ready_path = os.path.join(out, f"{name}.ready")
        self.log_path = os.path.join(out, f"{name}.log")
        self.process: Optional["subprocess.Popen[bytes]"] = None
        self.paused = False
        self._writes = _Tail(self.writes_path)
        self._statuses = _Tail(self.status_path)

    def start(self) -> "AppProcess":
        """Spawn the process and wait (bounded) until its coordinator runs."""
        self.spawn()
        self.wait_ready()
        return self

    def spawn(self) -> None:
        os.makedirs(self.config["out_dir"], exist_ok=True)
        with open(self.config_path, "w", encoding="utf-8") as handle:
            json.dump(self.config, handle)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "replikit.testing.coordinated", self.config_path],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not os.path.exists(self.ready_path):
            if self.process.poll() is not None:
                raise ClusterError(f"app process {self.name} exited at start:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise ClusterTimeoutError(f"app process {self.name} not ready after "
                                          f"{READY_TIMEOUT_S:g} s:\n{self.log_tail()}")
            time.sleep(0.02)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def pause(self) -> None:
        """SIGSTOP: every thread of the process stops (a long GC pause, a frozen VM)."""
        os.kill(self.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
        self.paused = False

    def stop(self) -> Optional[int]:
        """SIGTERM (after SIGCONT if paused); SIGKILL after a bound. Returns the exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            if self.paused:
                self.resume()
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT_S)
        return process.returncode

    def writes(self) -> List[Dict[str, Any]]:
        """The write records so far (history-checker Op fields)."""
        return list(self._writes.read())

    def statuses(self) -> List[Dict[str, Any]]:
        """The coordinator status records so far (``t_ns`` plus the status fields)."""
        return list(self._statuses.read())

    def status(self) -> Optional[Dict[str, Any]]:
        records = self._statuses.read()
        return records[-1] if records else None

    def first_ack_after(self, t_ns: int, node: Optional[str] = None) -> Optional[int]:
        """When the first write acknowledged after ``t_ns`` (by ``node``) completed."""
        times = [w["t1"] for w in self.writes() if w["type"] == "ok" and w["t1"] > t_ns
                 and (node is None or w.get("served") == node)]
        return min(times) if times else None

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, "rb") as handle:
                text = handle.read()[-65536:].decode("utf-8", "replace")
        except OSError:
            return "[no log]"
        return "\n".join(text.splitlines()[-lines:])


class AppProcesses:
    """Several AppProcesses; a context manager that stops them all on the way out."""

    def __init__(self, names: Sequence[str], config: Dict[str, Any]):
        self.apps = {name: AppProcess(name, config) for name in names}

    def __enter__(self) -> "AppProcesses":
        try:
            for app in self.apps.values():  # their imports and connections overlap
                app.spawn()
            for app in self.apps.values():
                app.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def stop(self) -> Dict[str, Optional[int]]:
        return {name: app.stop() for name, app in self.apps.items()}

    def __getitem__(self, name: str) -> AppProcess:
        return self.apps[name]

    def __iter__(self) -> Iterator[AppProcess]:
        return iter(self.apps.values())


# ---------------------------------------------------------------------- the process itself
class _Recorder:
    def __init__(self, path: str):
        self._handle = open(path, "a", encoding="utf-8", buffering=1)
        self._lock = threading.Lock()

    def add(self, record: Dict[str, Any]) -> None:
        with self._lock:
            self._handle.write(json.dumps(record) + "\n")

    def close(self) -> None:
        self._handle.close()


def _status_record(coordinator: Any, db: Any) -> Dict[str, Any]:
    record: Dict[str, Any] = {"t_ns": time.monotonic_ns()}
    try:
        status = coordinator.status()
        for field in ("leading", "coordination_available", "topology_revision", "primary",
                      "epoch", "reason"):
            value = getattr(status, field, None)
            record[field] = value if isinstance(value, (bool, int, float, str, type(None))) \
                else str(value)
    except Exception as exc:  # noqa: BLE001 - recorded, the test judges it
        record["error"] = f"{type(exc).__name__}: {exc}"
    topology = db.topology
    record["router_epoch"], record["router_primary"] = topology.epoch_and_primary
    return record


class TopologyReader:
    """(epoch, primary name) pairs of one router's ``db.topology``, read together
    (``Topology.epoch_and_primary``: never one epoch with the next one's primary, as reading
    ``epoch`` and ``primary_name`` apart can while a promote runs)."""

    def __init__(self, db: Any):
        self._db = db

    def read(self) -> Tuple[int, str]:
        epoch, primary = self._db.topology.epoch_and_primary
        return epoch, primary


def write_once(db: Any, sql: str, name: str, value: int, session: Any, ports: Dict[str, str],
               topology: Optional[TopologyReader] = None) -> Dict[str, Any]:
    """One write and its record. The topology is read at invoke and again at completion: the
    completion's is read after the acknowledgement, and another thread may have moved the
    router meanwhile (the coordinator's watch applying a newer record, the prober adopting a
    promoted node; e.g. a process paused with the write in flight and resumed after a
    failover), so a write that straddled a switch is judged against either epoch's primary."""
    import replikit

    reader = topology if topology is not None else TopologyReader(db)
    invoke_epoch, invoke_primary = reader.read()
    op: Dict[str, Any] = {"f": "write", "session": name, "key": name, "value": value,
                          "client": name, "invoke_epoch": invoke_epoch,
                          "invoke_primary": invoke_primary, "t0": time.monotonic_ns()}
    try:
        result = db.execute(sql, [name, value], session=session)
        op["type"], op["node"] = "ok", result.node
        row = result.rows[0] if result.rows else (None, None)
        op["served"] = ports.get(str(row[0])) if row[0] is not None else None
        if len(row) > 1 and row[1] is not None:
            op["timeline"] = int(row[1])
    except replikit.Error as exc:  # any error: the outcome is not known here
        op["type"], op["error"] = "unknown", f"{type(exc).__name__}: {str(exc)[:160]}"
    op["t1"] = time.monotonic_ns()
    op["epoch"], op["primary"] = reader.read()
    return op


def _write_loop(config: Dict[str, Any], db: Any, stop: threading.Event, out: _Recorder) -> None:
    import replikit

    name, ports = config["name"], config["ports"]
    sql = WRITE_SQL.format(table=config["table"])
    pause_s = config["write_interval_ms"] / 1000.0
    session = replikit.Session()
    topology = TopologyReader(db)
    for value in range(1, MAX_WRITES + 1):
        if stop.is_set():
            break
        op = write_once(db, sql, name, value, session, ports, topology)
        out.add(op)
        stop.wait(pause_s if op["type"] == "ok" else max(pause_s, 0.01))


def run(config: Dict[str, Any]) -> int:
    """The application process: router + coordinator + writer until SIGTERM."""
    from replikit import _core
    from replikit.coordination import EtcdCoordinator
    from replikit.pg import ReplicatedDatabase

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    nodes = config["nodes"]
    replicas = [(n, dsn) for n, dsn in nodes.items() if n != "primary"]
    db = ReplicatedDatabase(("primary", nodes["primary"]), replicas, **config["database_options"])
    options = dict(config["coordinator_options"])
    if isinstance(options.get("detector"), dict):  # JSON carries the detector as its fields
        options["detector"] = _core.DetectorConfig(**options["detector"])
    coordinator = EtcdCoordinator(db, endpoints=config["endpoints"], prefix=config["prefix"],
                                  name=config["name"], ttl_ms=config["ttl_ms"], **options)
    writes = _Recorder(os.path.join(config["out_dir"], f"{config['name']}.writes.jsonl"))
    statuses = _Recorder(os.path.join(config["out_dir"], f"{config['name']}.status.jsonl"))
    coordinator.start()
    writer = threading.Thread(target=_write_loop, args=(config, db, stop, writes), daemon=True)
    writer.start()
    with open(os.path.join(config["out_dir"], f"{config['name']}.ready"), "w"):
        pass
    interval_s = config["status_interval_ms"] / 1000.0
    while not stop.is_set():
        statuses.add(_status_record(coordinator, db))
        stop.wait(interval_s)
    writer.join(STOP_TIMEOUT_S)
    statuses.add(_status_record(coordinator, db))
    coordinator.stop()
    writes.close()
    statuses.close()
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a subprocess by AppProcess
    with open(sys.argv[1], "r", encoding="utf-8") as _handle:
        sys.exit(run(json.load(_handle)))
