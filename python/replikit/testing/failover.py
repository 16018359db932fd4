"""Failures and failover by hand for tests: crash, pause, promote, repoint, rejoin.

These act on the cluster directly, without a failover manager, so a test can set up the
situation a manager has to handle, or check what a manager did against the same steps.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Dict, List, Optional

from .._deprecation import renamed_keywords
from .errors import ClusterError, ClusterTimeoutError, invalid_argument, timeout_seconds
from .nodes import Node, node_settings, write_node_config
from .replication import ReplicationControl

_SECONDS = ("timeout_ms", 1000.0)


def _is_wal_sender(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return b"walsender" in handle.read()
    except OSError:
        return False


def _quoted(text: str) -> str:
    """``text`` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


class FailoverControl(ReplicationControl):
    """Failure injection and manual failover of LocalCluster (a base class of it)."""

    extra_settings: Dict[str, str]
    pg_bin_dir: str

    # ------------------------------------------------------------------ failures
    def crash(self, name: str, *, timeout_ms: float = 10_000.0) -> float:
        """Crash a whole instance: its postmaster and every child die together (SIGSTOP of
        all, then SIGKILL of all), so no backend of it acknowledges anything afterwards.

        Killing only the postmaster leaves its backends answering on open connections for
        a moment. Returns ``time.monotonic()`` of the instant the instance was stopped.
        """
        timeout_s = timeout_seconds("timeout_ms", timeout_ms)
        node = self.node(name)
        if self._supervisor.live_pid(node) is None:
            raise ClusterError(f"crash: node {name} is not running")
        crashed_at = self._supervisor.freeze_all(node)
        survivors = self._supervisor.kill(node, timeout_s)
        if survivors:
            raise ClusterTimeoutError(f"crash: processes {survivors} of {name} still alive "
                                      f"{timeout_s:g} s after SIGKILL")
        return crashed_at

    def pause(self, name: str) -> List[int]:
        """Hang a whole instance (SIGSTOP of the postmaster and every child): connections stay
        open and nothing answers. ``resume()`` continues it. Returns the pids stopped."""
        return self.freeze(name)

    def resume(self, name: str) -> List[int]:
        """Continue an instance ``pause()`` stopped (SIGCONT). Returns the pids."""
        return self.thaw(name)

    def pause_wal_send(self, name: Optional[str] = None) -> List[int]:
        """Stop (SIGSTOP) the WAL sender processes of a primary (default: the current one):
        it keeps committing, and in asynchronous mode acknowledging, while its replicas
        receive nothing more, as over a stalled network. What it commits from here on is on
        no replica until ``resume_wal_send()``; crashed meanwhile, it is lost. Returns the
        pids stopped."""
        name = self.primary_name if name is None else name
        rows = self.sql(name, "SELECT pid FROM pg_stat_replication")
        stopped = []
        for (pid_text,) in rows:
            if pid_text is None:  # pg_stat_replication.pid is never NULL
                raise ClusterError(f"pause_wal_send: {name} listed a WAL sender without a pid")
            pid = int(pid_text)
            try:
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
            except ProcessLookupError:
                pass
        return stopped

    def resume_wal_send(self, name: Optional[str] = None) -> List[int]:
        """Continue (SIGCONT) the WAL senders ``pause_wal_send()`` stopped. Returns the pids."""
        name = self.primary_name if name is None else name
        senders = [pid for pid in self._supervisor.processes(self.node(name))
                   if _is_wal_sender(pid)]
        for pid in senders:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        return senders

    # ------------------------------------------------------------------ manual failover
    @renamed_keywords(timeout_s=_SECONDS)
    def promote(self, name: str, *, timeout_ms: float = 30_000.0) -> float:
        """Promote a replica with ``pg_promote(wait => true)``; return how long it took (ms).

        The node becomes the cluster's ``primary_name``; the old primary is marked
        ``detached`` (never started again by ``start_all()`` or ``reset()``) until
        ``rejoin()``. The other replicas keep following the old primary until ``repoint()``;
        the new primary has no synchronous standbys until ``set_replication_mode()`` (as after
        any ``pg_promote``: a standby keeps its own, empty, synchronous_standby_names).
        replikit's FailoverManager sets them itself before its promotion (keep_synchronous).
        """
        timeout_s = timeout_seconds("timeout_ms", timeout_ms)
        node = self.node(name)
        if node.role != "replica":
            raise invalid_argument("name", f"{name} is not a replica (it is {node.role})")
        wait_s = max(1, int(timeout_s))
        started = time.monotonic()
        done = self._scalar(name, f"SELECT pg_promote(true, {wait_s})",
                            timeout_ms=timeout_s * 1000.0 + 5000.0)
        took_ms = (time.monotonic() - started) * 1000.0
        if done != "t":
            raise ClusterTimeoutError(f"promote: {name} was not promoted within {wait_s} s")
        self._mark_primary(node)
        return took_ms

    def adopt_promotion(self, name: str) -> None:
        """Record a promotion done outside the harness (by a FailoverManager, say): ``name``,
        out of recovery now, becomes ``primary_name`` and the old primary is marked
        ``detached``, as after ``promote()``, so that ``rejoin()`` can bring it back."""
        node = self.node(name)
        if node.role == "primary":
            return
        if self._scalar(name, "SELECT pg_is_in_recovery()") != "f":
            raise invalid_argument("name", f"{name} is still in recovery")
        self._mark_primary(node)

    def _mark_primary(self, node: Node) -> None:
        with self._lock:
            for other in self.nodes.values():
                if other.role == "primary":
                    other.role = "detached"
            node.role = "primary"
            self._save_description()

    def _ensure_slot(self, primary: str, slot: str) -> None:
        self.sql(primary, "SELECT pg_create_physical_replication_slot("
                          f"{_quoted(slot)}, true) WHERE NOT EXISTS (SELECT 1 FROM "
                          f"pg_replication_slots WHERE slot_name = {_quoted(slot)})")

    def _conninfo(self, replica: str, primary: str) -> str:
        return (f"host={self.host} port={self.node(primary).port} user=postgres "
                f"application_name={replica}")

    @renamed_keywords(timeout_s=_SECONDS)
    def repoint(self, name: str, new_primary: Optional[str] = None, *, wait: bool = True,
                timeout_ms: float = 30_000.0) -> None:
        """Make a replica follow another primary without a restart: a slot for it on the
        new primary, then ``primary_conninfo`` and ``primary_slot_name`` by ALTER SYSTEM and
        ``pg_reload_conf()``; it follows the new timeline. With ``wait``, return once it
        streams from the new primary."""
        target = self.primary_name if new_primary is None else new_primary
        if self.node(name).role != "replica":
            raise invalid_argument("name", f"{name} is not a replica")
        if target == name:
            raise invalid_argument("new_primary", f"{name} cannot follow itself")
        self.node(target)
        self._ensure_slot(target, name)
        self.sql(name, f"ALTER SYSTEM SET primary_conninfo = "
                       f"{_quoted(self._conninfo(name, target))}")
        self.sql(name, f"ALTER SYSTEM SET primary_slot_name = {_quoted(name)}")
        self.sql(name, "SELECT pg_reload_conf()")
        if wait:
            self.wait_streaming(timeout_ms=timeout_ms, replicas=[name], primary=target)

    @renamed_keywords(timeout_s=_SECONDS)
    def failover(self, name: str, *, timeout_ms: float = 30_000.0) -> float:
        """promote(name), repoint every other replica to it, and apply the cluster's
        replication mode on it; return the promotion time (ms)."""
        took_ms = self.promote(name, timeout_ms=timeout_ms)
        for replica in self.replica_names:
            if self.is_up(replica):
                self.repoint(replica, name, timeout_ms=timeout_ms)
        if self.mode != "async" and self.replica_names:
            count = min(self.sync_count, len(self.replica_names))
            self.set_replication_mode(self.mode, count)
        return took_ms

    @renamed_keywords(timeout_s=_SECONDS)
    def rejoin(self, old_primary: str, new_primary: Optional[str] = None, *,
               timeout_ms: float = 60_000.0) -> str:
        """Bring an old primary back as a replica of the new one with ``pg_rewind``.

        A CHECKPOINT on the new primary first (otherwise its control file still shows the
        old timeline and pg_rewind finds "no rewind required"); the old primary is stopped
        (a crashed one is recovered by pg_rewind itself); then its postgresql.auto.conf,
        which pg_rewind copied from the new primary, is written again with its own port,
        cluster_name and slot, pointing at the new primary. Returns pg_rewind's output.
        """
        timeout_s = timeout_seconds("timeout_ms", timeout_ms)
        target = self.primary_name if new_primary is None else new_primary
        node = self.node(old_primary)
        if target == old_primary:
            raise invalid_argument("old_primary", f"{old_primary} is the current primary")
        if self.node(target).role != "primary":
            raise invalid_argument("new_primary", f"{target} is not the primary")
        self.sql(target, "CHECKPOINT", timeout_ms=timeout_ms)
        self.stop(old_primary, timeout_ms=timeout_ms)
        self._supervisor.clear_stale_pidfile(node)
        rewind = self._tools.run(
            [os.path.join(self.pg_bin_dir, "pg_rewind"), "--no-sync",
             f"--target-pgdata={node.data_dir}", f"--source-server={self.dsn(target)}"],
            timeout_s=timeout_s, cwd=self.base_dir, check=False)
        output = (rewind.stdout + rewind.stderr).decode("utf-8", "replace")
        if rewind.returncode != 0:
            raise ClusterError(f"pg_rewind of {old_primary} from {target} failed "
                               f"(exit {rewind.returncode}):\n{output}")
        self._configure_as_replica(node, target)
        self._ensure_slot(target, old_primary)
        self.start(old_primary, timeout_ms=timeout_ms)
        self.wait_streaming(timeout_ms=timeout_ms, replicas=[old_primary], primary=target)
        return output

    def _configure_as_replica(self, node: Node, primary: str) -> None:
        with self._lock:
            node.role = "replica"
            settings = node_settings(node, self.host, self.node(primary), {},
                                     self.extra_settings)
            write_node_config(self._tools, node, settings)
            self._save_description()

