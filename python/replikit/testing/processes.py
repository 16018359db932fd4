"""Spawning, finding, waiting for and killing the PostgreSQL processes of a node.

Every PostgreSQL process (postmaster, backends, walsender/receiver, orphans of a killed
postmaster) runs with the data directory as its working directory, and each child is its
own process group, so the cwd is what ties processes to a node.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from typing import Dict, List, Optional, Set, Tuple

from .errors import ClusterTimeoutError
from .nodes import Node
from .tools import ServerTools

POLL_S = 0.01
LOG_TAIL_LINES = 25


def _stat_fields(pid: int) -> Tuple[str, str]:
    """(comm, state) of a process from /proc/<pid>/stat; raises OSError when it is gone."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        stat = handle.read().decode("ascii", "replace")
    # "pid (comm) state ...": PostgreSQL's rewriting of its ps display does not change comm.
    return stat[stat.find("(") + 1:stat.rfind(")")], stat[stat.rfind(")") + 2:].split()[0]


def pid_alive(pid: int) -> bool:
    """Is ``pid`` a live process (a zombie counts as gone)?"""
    try:
        return _stat_fields(pid)[1] != "Z"
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


def is_zombie(pid: int) -> bool:
    try:
        return _stat_fields(pid)[1] == "Z"
    except OSError:
        return False


def node_processes(data_dir: str, postmaster_pid: Optional[int] = None) -> List[int]:
    """Live PostgreSQL processes serving ``data_dir``. Only executables named ``postgres``
    count, so a recycled pid is never touched."""
    if not os.path.isdir("/proc/self"):  # no procfs: only the postmaster is known
        return [postmaster_pid] if postmaster_pid and pid_alive(postmaster_pid) else []
    want = os.path.realpath(data_dir)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm, state = _stat_fields(int(entry))
            if state == "Z" or not comm.startswith("postgres"):
                continue
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if cwd == want or cwd == want + " (deleted)":
            found.append(int(entry))
    return sorted(found)


def is_postmaster_of(pid: int, node: Node) -> bool:
    """Is ``pid`` alive and the postmaster of ``node`` (not a recycled pid)?"""
    if not pid_alive(pid):
        return False
    try:  # started as `postgres -D <data_dir>`; the postmaster keeps its argv
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return node.data_dir.encode() in handle.read().split(b"\0")
    except OSError:
        return True  # no /proc: trust the pid file


def read_pidfile(node: Node) -> Optional[Tuple[int, str]]:
    """(postmaster pid, status line) from postmaster.pid, or None when there is none."""
    try:
        with open(os.path.join(node.data_dir, "postmaster.pid"), encoding="utf-8") as handle:
            lines = handle.read().split("\n")
    except OSError:
        return None
    try:
        pid = int(lines[0])
    except (ValueError, IndexError):
        return None
    return pid, lines[7].strip() if len(lines) > 7 else ""


def log_tail(path: str, lines: int = LOG_TAIL_LINES, offset: int = 0) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError as exc:
        return f"(no server log: {exc})"
    text = data.decode("utf-8", "replace").splitlines()
    return "\n".join(text[-lines:]) if text else "(server log is empty)"


class Supervisor:
    """The postmasters a cluster started (kept as children so they are reaped at once)."""

    def __init__(self, tools: ServerTools):
        self.tools = tools
        self.children: Dict[str, "subprocess.Popen[bytes]"] = {}

    def live_pid(self, node: Node) -> Optional[int]:
        """The pid of the node's running postmaster, or None when it is down."""
        info = read_pidfile(node)
        pid = info[0] if info else node.pid
        return pid if pid is not None and is_postmaster_of(pid, node) else None

    def processes(self, node: Node) -> List[int]:
        return node_processes(node.data_dir, node.pid)

    def spawn(self, node: Node) -> None:
        """Start ``postgres -D data_dir`` as our child, logging to the node's log file.

        Like ``pg_ctl start`` (own session, stdin from /dev/null, output appended to the
        log) but the postmaster stays our child, so it is reaped at once when it dies: a
        zombie postmaster would make its restart fail ("lock file already exists") on
        machines whose init is slow to reap orphans.
        """
        with open(node.log_file, "ab") as log:
            proc = subprocess.Popen([self.tools.postgres, "-D", node.data_dir],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    cwd=node.data_dir, env=self.tools.env(),
                                    start_new_session=True, **self.tools.popen_kwargs())
        self.children[node.name] = proc
        self.reap()

    def reap(self) -> None:
        """Collect the exit status of postmasters of ours that ended (no zombies)."""
        for name, proc in list(self.children.items()):
            if proc.poll() is not None:
                del self.children[name]

    def clear_stale_pidfile(self, node: Node) -> None:
        """Remove postmaster.pid left by a killed postmaster that is now a zombie.

        PostgreSQL treats a pid that still exists (a zombie too) as a running postmaster.
        Its children are gone (checked), so the lock file is stale.
        """
        info = read_pidfile(node)
        if info is None or not is_zombie(info[0]) or self.processes(node):
            return
        try:
            os.unlink(os.path.join(node.data_dir, "postmaster.pid"))
        except FileNotFoundError:
            pass

    def wait_gone(self, node: Node, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.processes(node):
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL_S)
        self.reap()
        return True

    def freeze_all(self, node: Node, rounds: int = 5) -> float:
        """SIGSTOP the postmaster (so it forks no more), then every child; return
        ``time.monotonic()`` once all of them were stopped."""
        postmaster = self.live_pid(node)
        if postmaster is not None:
            try:
                os.kill(postmaster, signal.SIGSTOP)
            except ProcessLookupError:
                pass
        stopped: Set[int] = set() if postmaster is None else {postmaster}
        for _ in range(rounds):  # a child forked just before the postmaster stopped
            fresh = [pid for pid in self.processes(node) if pid not in stopped]
            if not fresh:
                break
            for pid in fresh:
                try:
                    os.kill(pid, signal.SIGSTOP)
                except ProcessLookupError:
                    pass
                stopped.add(pid)
        return time.monotonic()

    def kill(self, node: Node, timeout_s: float = 10.0) -> List[int]:
        """SIGKILL every process of a node; return the survivors (normally none)."""
        postmaster = self.live_pid(node)
        if postmaster is not None:
            try:  # freeze it first so it cannot fork while its children are killed
                os.kill(postmaster, signal.SIGSTOP)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout_s
        while True:
            victims = self.processes(node)
            if postmaster is not None and pid_alive(postmaster) and postmaster not in victims:
                victims.append(postmaster)
            if not victims:
                self.reap()
                return []
            for pid in victims:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:
                return victims
            time.sleep(POLL_S)

    def release_crashed_shared_memory(self, node: Node, timeout_s: float = 5.0) -> None:
        """Free the shared memory a SIGKILLed postmaster left behind (best effort).

        Nobody removes the System V and /dev/shm segments of a postmaster killed with
        SIGKILL until PostgreSQL starts again in the same data directory. So start it once,
        and as soon as it has set up its own shared memory (having dropped the old
        segments), stop it at once (SIGQUIT; the postmaster frees its segments).
        """
        info = read_pidfile(node)
        if info is None or self.live_pid(node) is not None or self.processes(node):
            return  # cleanly stopped (no lock file) or still running
        old_pid = info[0]
        self.clear_stale_pidfile(node)
        try:
            self.spawn(node)
        except OSError:
            return
        child = self.children.get(node.name)
        deadline = time.monotonic() + timeout_s
        while child is not None and child.poll() is None and time.monotonic() < deadline:
            info = read_pidfile(node)
            if info is not None and info[0] != old_pid and info[1]:
                break  # the status line is written after shared memory is set up
            time.sleep(POLL_S)
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGQUIT)
        if not self.wait_gone(node, timeout_s):
            self.kill(node)

    def wait_ready(self, nodes: List[Node], offsets: Dict[str, int],
                   timeout_s: float) -> List[Tuple[Node, str]]:
        """Wait until every node accepts connections; return those that failed to start,
        with the new lines of their log."""
        deadline = time.monotonic() + timeout_s
        pending = {n.name: n for n in nodes}
        failures: List[Tuple[Node, str]] = []
        while pending:
            for name, node in list(pending.items()):
                info = read_pidfile(node)
                if info is not None and is_postmaster_of(info[0], node):
                    node.pid = info[0]
                    if info[1] in ("ready", "standby"):
                        del pending[name]
                    continue
                new_log = log_tail(node.log_file, offset=offsets.get(name, 0))
                child = self.children.get(name)
                if (child is not None and child.poll() is not None) or (
                        re.search(r"\b(FATAL|PANIC):", new_log) and (
                            info is None or not is_postmaster_of(info[0], node))):
                    failures.append((node, new_log))
                    del pending[name]
            if not pending:
                break
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {n.log_file}:\n{log_tail(n.log_file)}"
                                  for n in pending.values())
                raise ClusterTimeoutError(
                    f"node(s) {', '.join(pending)} not ready within {timeout_s:g} s;\n{tails}")
            time.sleep(POLL_S)
        return failures
