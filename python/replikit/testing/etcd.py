"""A local etcd cluster (1 or 3 members of the machine's etcd 3.4) on loopback, for tests.

    from replikit.testing import EtcdCluster

    with EtcdCluster(members=3) as etcd:
        client = replikit.etcd.EtcdClient(etcd.endpoints)
        etcd.kill(0)          # SIGKILL a member; etcd.restart(0) brings it back with its data
        etcd.pause(1)         # SIGSTOP; etcd.resume(1) is SIGCONT

Ports: two per member (client, peer), picked free from a range of their own (30000-32700),
apart from LocalCluster's PostgreSQL range (20000-29999), below Linux's ephemeral range and
never etcd's defaults 2379/2380. Every member runs in a process group of its own; ``stop()``
(also on an exception inside ``with``, and at interpreter exit) ends them all and removes the
directory it created.
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import random
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

from .errors import (ClusterError, ClusterTimeoutError, argument_type_error, invalid_argument,
                     timeout_seconds)
from .etcd_tls import make_tls_files
from .nodes import pick_ports, scratch_dir

ETCD_PORT_RANGE = (30000, 32700)  # apart from LocalCluster's 20000-29999; below 32768
ETCD_DEFAULT_PORTS = (2379, 2380)
HOST = "127.0.0.1"
POLL_S = 0.02
STOP_TIMEOUT_S = 5.0
LOG_TAIL_LINES = 20


def etcd_binary() -> str:
    """The etcd server binary: ``$REPLIKIT_ETCD_BIN``, else ``etcd`` on PATH, else /usr/bin/etcd."""
    chosen = os.environ.get("REPLIKIT_ETCD_BIN") or shutil.which("etcd") or "/usr/bin/etcd"
    return chosen


def etcd_available() -> bool:
    """Is an etcd server binary installed (Debian's ``etcd-server``)?"""
    return os.access(etcd_binary(), os.X_OK)


class EtcdMember:
    """One etcd server of an EtcdCluster."""

    def __init__(self, name: str, client_port: int, peer_port: int, scheme: str,
                 data_dir: str, log_file: str):
        self.name = name
        self.scheme = scheme
        self.client_port = client_port
        self.peer_port = peer_port
        self.data_dir = data_dir
        self.log_file = log_file
        self.process: Optional[subprocess.Popen[bytes]] = None
        self.paused = False

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://{HOST}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{HOST}:{self.peer_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __repr__(self) -> str:
        state = "paused" if self.paused and self.running else (
            "running" if self.running else "stopped")
        return f"EtcdMember({self.name!r}, client={self.client_url}, {state})"


class EtcdCluster:
    """1 or 3 members of a local etcd on loopback; a context manager.

    Args:
        members: 1 or 3 (an even count has no fault tolerance to speak of).
        base_port: first port to probe (1024-65000); default a random port in 30000-32699.
        directory: where the members' data and logs go (default a fresh temp directory,
            removed by ``stop()``; a given one is kept).
        start: start now (otherwise call ``start()``).
        startup_timeout_ms: bound on waiting for the cluster (or a restarted member) to serve.
        heartbeat_ms / election_ms: etcd's raft timings (etcd's defaults are 100 / 1000).
        extra_args: more etcd flags for every member (e.g. ``["--auth-token-ttl", "1"]``).
        tls: serve clients over https only, with client certificates required; the files
            (made with ``openssl`` in the cluster's directory) are in ``tls_files``:
            ``ca_file``, ``cert_file`` and ``key_file`` are the client's.
    """

    def __init__(self, members: int = 3, *, base_port: Optional[int] = None,
                 directory: Optional[str] = None, start: bool = True,
                 startup_timeout_ms: float = 20_000.0, heartbeat_ms: int = 100,
                 election_ms: int = 1000, extra_args: Sequence[str] = (), tls: bool = False):
        _check_arguments(members, base_port, directory, heartbeat_ms, election_ms)
        if (isinstance(extra_args, (str, bytes)) or not isinstance(extra_args, Sequence)
                or not all(isinstance(a, str) for a in extra_args)):
            raise argument_type_error("extra_args", "a sequence of str", extra_args)
        self._extra_args = list(extra_args)
        if not isinstance(tls, bool):
            raise argument_type_error("tls", "a bool", tls)
        self._tls = tls
        self.tls_files: Dict[str, str] = {}
        self._context: Optional[ssl.SSLContext] = None
        self._startup_s = timeout_seconds("startup_timeout_ms", startup_timeout_ms)
        self._count = members
        self._base_port = base_port
        self._heartbeat_ms = heartbeat_ms
        self._election_ms = election_ms
        self._own_dir = directory is None
        self.directory = os.fspath(directory) if directory is not None else ""
        self.members: List[EtcdMember] = []
        self._token = f"replikit-{os.getpid()}-{random.randrange(1 << 30)}"
        self._atexit = False
        if start:
            self.start()

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> "EtcdCluster":
        """Start every member and wait (bounded) until the cluster has a leader and serves."""
        if self.members:
            raise ClusterError("EtcdCluster.start: already started")
        if not etcd_available():
            raise ClusterError(f"etcd server binary not found ({etcd_binary()}); install "
                               "Debian's etcd-server (scripts/setup.sh does)")
        try:
            if self._own_dir:
                self.directory = tempfile.mkdtemp(prefix="replikit-etcd-", dir=scratch_dir())
            os.makedirs(self.directory, exist_ok=True)
            if self._tls:
                self.tls_files = make_tls_files(os.path.join(self.directory, "tls"))
                self._context = ssl.create_default_context(cafile=self.tls_files["ca_file"])
                self._context.load_cert_chain(self.tls_files["cert_file"],
                                              self.tls_files["key_file"])
            start = self._base_port
            if start is None:
                start = random.randrange(*ETCD_PORT_RANGE)
            ports = pick_ports(HOST, 2 * self._count, start, avoid=ETCD_DEFAULT_PORTS)
            for i in range(self._count):
                name = f"etcd{i}"
                self.members.append(EtcdMember(
                    name, ports[2 * i], ports[2 * i + 1], "https" if self._tls else "http",
                    os.path.join(self.directory, name), os.path.join(self.directory, f"{name}.log")))
            if not self._atexit:
                atexit.register(self.stop)
                self._atexit = True
            for member in self.members:
                self._spawn(member, state="new")
            self.wait_ready(range(self._count), timeout_ms=self._startup_s * 1000.0)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every member (SIGCONT a paused one, SIGTERM, SIGKILL after a bound) and remove
        the directory if this cluster made it. Safe to call twice."""
        for member in self.members:
            self._end(member)
        if self._own_dir and self.directory and os.path.isdir(self.directory):
            shutil.rmtree(self.directory, ignore_errors=True)
        self.members = []
        if self._atexit:
            atexit.unregister(self.stop)
            self._atexit = False

    close = stop

    def __enter__(self) -> "EtcdCluster":
        if not self.members:
            self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    # ---------------------------------------------------------------- faults
    @property
    def endpoints(self) -> List[str]:
        """The members' client URLs (``http://127.0.0.1:PORT``), killed members included."""
        return [m.client_url for m in self.members]

    def kill(self, index: int) -> None:
        """SIGKILL member ``index`` (its data stays; ``restart(index)`` brings it back)."""
        member = self._member(index)
        if member.running:
            assert member.process is not None
            _signal_group(member.process, signal.SIGKILL)
            _reap(member.process, STOP_TIMEOUT_S)
        member.paused = False

    def pause(self, index: int) -> None:
        """SIGSTOP member ``index``: it keeps its sockets but answers nothing."""
        member = self._member(index)
        if not member.running:
            raise ClusterError(f"pause: {member.name} is not running")
        assert member.process is not None
        _signal_group(member.process, signal.SIGSTOP)
        member.paused = True

    def resume(self, index: int) -> None:
        """SIGCONT member ``index``."""
        member = self._member(index)
        if member.running and member.paused:
            assert member.process is not None
            _signal_group(member.process, signal.SIGCONT)
        member.paused = False

    def restart(self, index: int, *, timeout_ms: Optional[float] = None) -> None:
        """Kill member ``index`` if it runs, start it again on its data, and wait until it
        serves (bounded)."""
        member = self._member(index)
        self.kill(index)
        self._spawn(member, state="existing")
        limit = self._startup_s * 1000.0 if timeout_ms is None else timeout_ms
        self.wait_ready([index], timeout_ms=limit)

    def wait_ready(self, indexes: Sequence[int], *, timeout_ms: float) -> None:
        """Wait until each listed member reports itself healthy (``/health``: it sees a
        leader); raises ClusterTimeoutError with the log tails after ``timeout_ms``."""
        deadline = time.monotonic() + timeout_seconds("timeout_ms", timeout_ms)
        pending = [self._member(i) for i in indexes]
        while pending:
            for member in list(pending):
                if not member.running:
                    raise ClusterError(f"{member.name} exited during start-up:\n"
                                       + self.log_tail(self.members.index(member)))
                if member_healthy(member.client_url, context=self._context):
                    pending.remove(member)
            if pending and time.monotonic() > deadline:
                tails = "\n".join(self.log_tail(self.members.index(m)) for m in pending)
                raise ClusterTimeoutError(
                    f"etcd members {[m.name for m in pending]} not healthy after "
                    f"{timeout_ms:g} ms:\n{tails}")
            if pending:
                time.sleep(POLL_S)

    def leader(self, *, timeout_ms: float = 5000.0) -> int:
        """The index of the member that is raft leader now, as the running members report it
        (bounded wait while they elect one)."""
        deadline = time.monotonic() + timeout_seconds("timeout_ms", timeout_ms)
        while True:
            ids = {}
            leaders = set()
            for index, member in enumerate(self.members):
                if member.running and not member.paused:
                    status = member_status(member.client_url, context=self._context)
                    if status:
                        ids[status["member_id"]] = index
                        leaders.add(status["leader"])
            found = [ids[i] for i in leaders if i in ids and i != "0"]
            if len(leaders) == 1 and len(found) == 1:
                return found[0]
            if time.monotonic() > deadline:
                raise ClusterTimeoutError(f"no etcd leader agreed on after {timeout_ms:g} ms")
            time.sleep(POLL_S)

    def log_tail(self, index: int, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of member ``index``'s log."""
        member = self._member(index)
        try:
            with open(member.log_file, "rb") as handle:
                text = handle.read()[-65536:].decode("utf-8", "replace")
        except OSError:
            return f"[{member.name}: no log]"
        return f"[{member.name}]\n" + "\n".join(text.splitlines()[-lines:])

    def __repr__(self) -> str:
        return f"EtcdCluster({', '.join(repr(m) for m in self.members) or 'not started'})"

    # ---------------------------------------------------------------- internals
    def _member(self, index: int) -> EtcdMember:
        if isinstance(index, bool) or not isinstance(index, int):
            raise argument_type_error("index", "an int", index)
        if not 0 <= index < len(self.members):
            raise invalid_argument("index", f"expected 0..{len(self.members) - 1}, got {index}")
        return self.members[index]

    def _spawn(self, member: EtcdMember, *, state: str) -> None:
        cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        args = [etcd_binary(), "--name", member.name, "--data-dir", member.data_dir,
                "--listen-client-urls", member.client_url,
                "--advertise-client-urls", member.client_url,
                "--listen-peer-urls", member.peer_url,
                "--initial-advertise-peer-urls", member.peer_url,
                "--initial-cluster", cluster, "--initial-cluster-state", state,
                "--initial-cluster-token", self._token,
                "--heartbeat-interval", str(self._heartbeat_ms),
                "--election-timeout", str(self._election_ms),
                "--enable-pprof=false", "--log-outputs", "stderr", "--logger", "zap",
                *self._extra_args]
        if self._tls:
            files = self.tls_files
            args += ["--cert-file", files["server_cert"], "--key-file", files["server_key"],
                     "--trusted-ca-file", files["ca_file"], "--client-cert-auth"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        with open(member.log_file, "ab") as log:
            member.process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True)
        member.paused = False

    def _end(self, member: EtcdMember) -> None:
        process = member.process
        if process is None or process.poll() is not None:
            return
        if member.paused:
            _signal_group(process, signal.SIGCONT)
        _signal_group(process, signal.SIGTERM)
        if not _reap(process, STOP_TIMEOUT_S):
            _signal_group(process, signal.SIGKILL)
            _reap(process, STOP_TIMEOUT_S)
        member.paused = False


def _connection(url: str, timeout_s: float,
                context: Optional[ssl.SSLContext]) -> http.client.HTTPConnection:
    host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
    if url.startswith("https:"):
        return http.client.HTTPSConnection(host, int(port), timeout=timeout_s, context=context)
    return http.client.HTTPConnection(host, int(port), timeout=timeout_s)


def member_healthy(url: str, timeout_s: float = 0.5,
                   context: Optional[ssl.SSLContext] = None) -> bool:
    """Does the etcd member at ``url`` answer ``/health`` with health true?"""
    connection = _connection(url, timeout_s, context)
    try:
        connection.request("GET", "/health")
        response = connection.getresponse()
        body = response.read()
        return response.status == 200 and json.loads(body or b"{}").get("health") == "true"
    except (OSError, ValueError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def member_status(url: str, timeout_s: float = 0.5,
                  context: Optional[ssl.SSLContext] = None) -> Optional[Dict[str, str]]:
    """{"member_id", "leader"} of the etcd member at ``url`` (``/v3/maintenance/status``), or
    None when it does not answer."""
    connection = _connection(url, timeout_s, context)
    try:
        connection.request("POST", "/v3/maintenance/status", body="{}")
        response = connection.getresponse()
        answer = json.loads(response.read() or b"{}")
        if response.status != 200:
            return None
        return {"member_id": str(answer.get("header", {}).get("member_id", "0")),
                "leader": str(answer.get("leader", "0"))}
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def _signal_group(process: "subprocess.Popen[bytes]", sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(process: "subprocess.Popen[bytes]", timeout_s: float) -> bool:
    try:
        process.wait(timeout=timeout_s)
        return True
    except subprocess.TimeoutExpired:
        return False


def _check_arguments(members: int, base_port: Optional[int], directory: Optional[str],
                     heartbeat_ms: int, election_ms: int) -> None:
    if isinstance(members, bool) or not isinstance(members, int):
        raise argument_type_error("members", "an int", members)
    if members not in (1, 3):
        raise invalid_argument("members", f"expected 1 or 3, got {members}")
    if base_port is not None:
        if isinstance(base_port, bool) or not isinstance(base_port, int):
            raise argument_type_error("base_port", "an int", base_port)
        if not 1024 <= base_port <= 65000:
            raise invalid_argument("base_port", f"expected a port in [1024, 65000], got {base_port}")
    if directory is not None and not isinstance(directory, (str, os.PathLike)):
        raise argument_type_error("directory", "a path", directory)
    for name, value in (("heartbeat_ms", heartbeat_ms), ("election_ms", election_ms)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise argument_type_error(name, "an int number of milliseconds", value)
        if not 10 <= value <= 60_000:
            raise invalid_argument(name, f"expected 10..60000 ms, got {value}")
    if election_ms < 5 * heartbeat_ms:
        raise invalid_argument("election_ms", "must be at least 5 x heartbeat_ms "
                               f"({heartbeat_ms}), got {election_ms}")
