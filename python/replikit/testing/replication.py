"""Streaming replication of a local cluster: LSNs, waits, replay control, modes, status."""

from __future__ import annotations

import time
from typing import Dict, List, Optional, Sequence, Tuple

from .. import _core
from .._deprecation import renamed_keywords
from .errors import (ClusterError, ClusterSQLError, ClusterTimeoutError, argument_type_error,
                     invalid_argument, timeout_seconds)
from .lifecycle import NodeLifecycle
from .nodes import MODES, mode_settings
from .processes import POLL_S, log_tail

_SECONDS = ("timeout_ms", 1000.0)


class ReplicationControl(NodeLifecycle):
    """Replication operations of LocalCluster (a base class of it)."""

    mode: str
    sync_count: int
    _initial_mode: Optional[Tuple[str, int]]  # the mode the cluster was created with

    @property
    def primary_name(self) -> str:
        """The node that is primary now: ``primary`` until ``promote()`` made another one."""
        for name, node in self.nodes.items():
            if node.role == "primary":
                return name
        raise ClusterError("this cluster has no primary (none was started, or it was "
                           "detached by a promotion that did not finish)")

    def current_lsn(self, name: Optional[str] = None) -> _core.Lsn:
        """pg_current_wal_lsn() of a primary (default: the current one)."""
        name = self.primary_name if name is None else name
        return _core.Lsn(self._scalar(name, "SELECT pg_current_wal_lsn()") or "")

    def replay_lsn(self, name: str) -> Optional[_core.Lsn]:
        """pg_last_wal_replay_lsn() of a replica; None on a primary (which after crash recovery
        would report where recovery ended)."""
        value = self._scalar(name, "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() END")
        return None if value is None else _core.Lsn(value)

    def replication(self, primary: Optional[str] = None) -> Dict[str, Dict[str, Optional[str]]]:
        """pg_stat_replication of a primary (default: the current one), keyed by
        application_name."""
        primary = self.primary_name if primary is None else primary
        rows = self.sql(primary, "SELECT application_name, state, sync_state, sent_lsn, "
                                 "write_lsn, flush_lsn, replay_lsn FROM pg_stat_replication")
        keys = ("state", "sync_state", "sent_lsn", "write_lsn", "flush_lsn", "replay_lsn")
        return {str(row[0]): dict(zip(keys, row[1:])) for row in rows}

    @renamed_keywords(timeout_s=_SECONDS)
    def wait_streaming(self, *, timeout_ms: float = 30_000.0,
                       replicas: Optional[Sequence[str]] = None,
                       primary: Optional[str] = None) -> None:
        """Wait until the primary's pg_stat_replication shows each replica 'streaming'."""
        timeout_s = timeout_seconds("timeout_ms", timeout_ms)
        primary = self.primary_name if primary is None else primary
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
                                  f"{log_tail(self.nodes[n].log_file, 10)}" for n in missing)
                raise ClusterTimeoutError(
                    f"replica(s) {', '.join(missing)} not streaming from {primary} within "
                    f"{timeout_s:g} s (pg_stat_replication: {seen});\n{tails}")
            time.sleep(0.02)

    @renamed_keywords(timeout_s=_SECONDS)
    def wait_caught_up(self, *, timeout_ms: float = 30_000.0,
                       replicas: Optional[Sequence[str]] = None,
                       primary: Optional[str] = None) -> _core.Lsn:
        """Wait until every replica's replay LSN reaches the primary's current LSN; return it."""
        timeout_s = timeout_seconds("timeout_ms", timeout_ms)
        primary = self.primary_name if primary is None else primary
        names = list(self.replica_names if replicas is None else replicas)
        target = self.current_lsn(primary)
        deadline = time.monotonic() + timeout_s
        lagging: Dict[str, Optional[_core.Lsn]] = {n: None for n in names}
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
                detail = ", ".join(f"{n} at {lsn or 'unknown'}" for n, lsn in lagging.items())
                raise ClusterTimeoutError(
                    f"replicas not caught up with {primary} at {target} within "
                    f"{timeout_s:g} s: {detail}")
            time.sleep(POLL_S)
        return target

    def pause_replay(self, name: str) -> None:
        """Pause WAL replay on a replica (pg_wal_replay_pause)."""
        self.sql(name, "SELECT pg_wal_replay_pause()")

    def resume_replay(self, name: str) -> None:
        """Resume WAL replay on a replica (pg_wal_replay_resume)."""
        self.sql(name, "SELECT pg_wal_replay_resume()")

    def replay_pause_state(self, name: str) -> str:
        """'not paused', 'pause requested' or 'paused' (pg_get_wal_replay_pause_state)."""
        return self._scalar(name, "SELECT pg_get_wal_replay_pause_state()") or ""

    def _reload_and_confirm(self, name: str, setting: str, expected: str,
                            timeout_s: float = 10.0) -> None:
        self.sql(name, "SELECT pg_reload_conf()")
        # A new session sees the postmaster's reloaded value; by then the postmaster has
        # also signalled its children (startup process, walsenders) to reload.
        deadline = time.monotonic() + timeout_s
        while True:
            value = self._scalar(name, f"SELECT setting FROM pg_settings WHERE name = '{setting}'")
            if value == expected:
                return
            if time.monotonic() > deadline:
                raise ClusterTimeoutError(f"{name}: {setting} is {value!r}, not {expected!r}, "
                                          f"{timeout_s:g} s after pg_reload_conf()")
            time.sleep(POLL_S)

    def set_apply_delay(self, name: str, delay_ms: int) -> None:
        """Delay applying commits on a replica by ``delay_ms`` (recovery_min_apply_delay,
        whole milliseconds)."""
        if self.node(name).role != "replica":
            raise invalid_argument("name", f"{name} is not a replica")
        if isinstance(delay_ms, bool) or not isinstance(delay_ms, int):
            raise argument_type_error("delay_ms", "an integer number of milliseconds", delay_ms)
        if delay_ms < 0:
            raise invalid_argument("delay_ms", f"must not be negative, got {delay_ms!r}")
        self.sql(name, f"ALTER SYSTEM SET recovery_min_apply_delay = '{delay_ms}ms'")
        self._reload_and_confirm(name, "recovery_min_apply_delay", str(delay_ms))

    def apply_delay_ms(self, name: str) -> int:
        """A replica's current recovery_min_apply_delay in milliseconds."""
        return int(self._scalar(name, "SELECT setting FROM pg_settings "
                                      "WHERE name = 'recovery_min_apply_delay'") or 0)

    def clear_apply_delay(self, name: str) -> None:
        """Remove a replica's apply delay."""
        self.sql(name, "ALTER SYSTEM RESET recovery_min_apply_delay")
        self._reload_and_confirm(name, "recovery_min_apply_delay", "0")

    def _mode_settings(self, mode: str, sync_count: int) -> Dict[str, str]:
        return mode_settings(mode, sync_count, self.replica_names)

    def set_replication_mode(self, mode: str, sync_count: Optional[int] = None,
                             primary: Optional[str] = None) -> None:
        """Switch the replication mode at run time (ALTER SYSTEM + reload on the primary).

        ``mode`` is one of MODES (async, semi_sync, sync, sync_all, remote_apply; see
        ``replikit.testing.nodes``); ``sync_count`` is k of ``ANY k`` for sync and
        remote_apply. The standbys named are the current primary's replicas.
        """
        primary = self.primary_name if primary is None else primary
        if mode not in MODES:
            raise invalid_argument("mode", f"expected one of {MODES}, got {mode!r}")
        count = self.sync_count if sync_count is None else sync_count
        replicas = self.replica_names
        if mode != "async" and not 1 <= count <= len(replicas):
            raise invalid_argument("sync_count", f"expected 1..{len(replicas)}, got {count!r}")
        settings = self._mode_settings(mode, count)
        for key, value in settings.items():
            self.sql(primary, f"ALTER SYSTEM SET {key} = {value}")
        expected = settings["synchronous_standby_names"].strip("'")
        self._reload_and_confirm(primary, "synchronous_standby_names", expected)
        self._reload_and_confirm(primary, "synchronous_commit", settings["synchronous_commit"])
        self.mode, self.sync_count = mode, count
        self._save_description()

    @renamed_keywords(timeout_s=_SECONDS)
    def reset(self, *, timeout_ms: float = 30_000.0) -> None:
        """Bring a shared cluster back to normal after a test played with it.

        Starts stopped nodes, resumes replay, clears apply delays, restores the
        replication mode the cluster was created with, and waits until all stream.
        It does not undo a promotion or a repointed replica: failover tests should
        start a LocalCluster of their own.
        """
        for name, node in self.nodes.items():
            if node.role != "detached" and not self.is_up(name):
                self.stop(name)  # reaps any orphans of a killed postmaster
                self.start(name, timeout_ms=timeout_ms)
        for name in self.replica_names:
            if self.replay_pause_state(name) != "not paused":
                self.resume_replay(name)
            if self.apply_delay_ms(name) != 0:
                self.clear_apply_delay(name)
        created = self._initial_mode or (self.mode, self.sync_count)
        if (self.mode, self.sync_count) != created:
            self.set_replication_mode(*created)
        if self.replica_names:
            self.wait_streaming(timeout_ms=timeout_ms)

    def status(self) -> List[Dict[str, object]]:
        """One dict per node: name, role, port, pid, up, LSNs, replication state."""
        rows: List[Dict[str, object]] = []
        replication: Dict[str, Dict[str, Optional[str]]] = {}
        for name, node in self.nodes.items():
            pid = self._supervisor.live_pid(node)
            row: Dict[str, object] = {
                "name": name, "created_role": node.role, "role": None, "port": node.port,
                "pid": pid, "up": pid is not None, "current_lsn": None,
                "receive_lsn": None, "replay_lsn": None, "replay_paused": None,
                "replication_state": None, "sync_state": None, "dsn": self.dsn(name),
            }
            if pid is not None:
                try:
                    recovery, seen = self._node_status(name)
                    row.update(seen)
                    if not recovery:
                        replication.update(self.replication(name))
                except ClusterError as exc:
                    row["error"] = str(exc).splitlines()[0]
            rows.append(row)
        for row in rows:
            info = replication.get(str(row["name"]))
            if info:
                row["replication_state"] = info["state"]
                row["sync_state"] = info["sync_state"]
        return rows

    def _node_status(self, name: str) -> Tuple[bool, Dict[str, object]]:
        rec, cur, receive, replay, pause = self.sql(name, (
            "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN NULL "
            "ELSE pg_current_wal_lsn() END, pg_last_wal_receive_lsn(), "
            "pg_last_wal_replay_lsn(), CASE WHEN pg_is_in_recovery() THEN "
            "pg_get_wal_replay_pause_state() END"), timeout_ms=5000)[0]
        return rec == "t", {"role": "replica" if rec == "t" else "primary", "current_lsn": cur,
                            "receive_lsn": receive, "replay_lsn": replay, "replay_paused": pause}
