"""Alerts: the backend's transition events turned into firing / resolved alerts.

Rules (each fires once when its condition starts and resolves once when it ends):

- ``replica_lag``: a replica turned LAGGING (its lag passed ``max_lag_ms`` or
  ``max_lag_bytes``) / RECOVERED (back below ``recover_lag_ms`` and ``recover_lag_bytes``).
  The thresholds are the lag tracker's own (LagConfig, with its hysteresis), so an alert
  fires exactly when the router starts avoiding the replica and resolves when reads may go
  back to it.
- ``node_down``: a node became unreachable / reachable again.
- ``role_mismatch``: a server's role differs from the topology's / matches again.
- ``reads_on_primary``: no replica can serve reads (all are down or LAGGING), so reads go
  to the primary / a replica serves reads again.

Each alert goes to the ``replikit.alerts`` logger (WARNING when firing, INFO when resolved,
the alert as ``record.replikit_alert``), to the callbacks, and, with ``command``, to a shell
command that gets the alert as one JSON object on stdin. Commands run one at a time on a
worker thread of their own, each killed after ``command_timeout_ms``; a queue of at most
``MAX_PENDING_COMMANDS`` waits, further alerts are not sent to the command (counted in
``command_results['dropped']``). A failing command is logged, never raised.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import queue
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

logger = logging.getLogger("replikit.alerts")

MAX_PENDING_COMMANDS = 256
MAX_ALERTS_KEPT = 1024
_STDERR_SHOWN = 500

# EventKind name -> (rule, status).
_RULES = {
    "lagging": ("replica_lag", "firing"),
    "recovered": ("replica_lag", "resolved"),
    "node_down": ("node_down", "firing"),
    "node_up": ("node_down", "resolved"),
    "role_mismatch": ("role_mismatch", "firing"),
    "role_restored": ("role_mismatch", "resolved"),
}
RULES = ("replica_lag", "node_down", "role_mismatch", "reads_on_primary")


@dataclass(frozen=True)
class Alert:
    """One alert transition: which rule, which node, firing or resolved, and the numbers."""

    sequence: int
    rule: str
    status: str  # "firing" | "resolved"
    node: str
    time_ns: int  # wall clock (time.time_ns())
    message: str
    lag_ms: Optional[float] = None
    lag_bytes: Optional[int] = None
    event_sequence: Optional[int] = None
    thresholds: Dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> Dict[str, Any]:
        out = asdict(self)
        out["time"] = _iso(self.time_ns)
        return out

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)

    def __repr__(self) -> str:
        lag = f", lag {self.lag_ms:.1f} ms / {self.lag_bytes} bytes" if self.lag_ms is not None else ""
        return f"Alert(#{self.sequence} {self.rule} {self.status.upper()} on {self.node}{lag}: {self.message})"


def _iso(time_ns: int) -> str:
    seconds = time_ns / 1e9
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1000):03d}Z"


class CommandRunner:
    """Runs ``command`` (through /bin/sh) once per alert, the alert's JSON on stdin."""

    def __init__(self, command: str, timeout_ms: float) -> None:
        self.command = command
        self.timeout_s = timeout_ms / 1000.0
        self.results: Dict[str, int] = {"ok": 0, "failed": 0, "timeout": 0, "dropped": 0}
        self._lock = threading.Lock()
        self._queue: "queue.Queue[Optional[Alert]]" = queue.Queue(MAX_PENDING_COMMANDS)
        self._thread = threading.Thread(target=self._run, name="replikit-alert-command", daemon=True)
        self._thread.start()

    def submit(self, alert: Alert) -> None:
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            self._count("dropped")
            logger.error("replikit: alert command queue full (%d waiting): %r not sent to the command",
                         MAX_PENDING_COMMANDS, alert)

    def close(self, timeout_ms: Optional[float] = None) -> None:
        """Lets the alerts already queued run (bounded: each by its timeout), then stops."""
        try:
            self._queue.put(None, timeout=1.0)
        except queue.Full:  # pragma: no cover - a full queue at exit: the thread is a daemon
            return
        wait = (self.timeout_s + 1.0) * 2 if timeout_ms is None else timeout_ms / 1000.0
        self._thread.join(wait)

    def _count(self, result: str) -> None:
        with self._lock:
            self.results[result] += 1

    def _run(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is None:
                return
            self._count(self.run_one(alert))

    def run_one(self, alert: Alert) -> str:
        """Runs the command for one alert; returns "ok", "failed" or "timeout" (and logs)."""
        env = dict(os.environ, REPLIKIT_ALERT_RULE=alert.rule, REPLIKIT_ALERT_STATUS=alert.status,
                   REPLIKIT_ALERT_NODE=alert.node)
        try:
            proc = subprocess.Popen(["/bin/sh", "-c", self.command], stdin=subprocess.PIPE,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                                    start_new_session=True)
        except OSError as exc:
            logger.error("replikit: alert command %r could not start: %s", self.command, exc)
            return "failed"
        try:
            _, err = proc.communicate((alert.to_json() + "\n").encode(), timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            logger.error("replikit: alert command %r killed after %g ms (for %r)", self.command,
                         self.timeout_s * 1000.0, alert)
            return "timeout"
        if proc.returncode != 0:
            logger.error("replikit: alert command %r exited with status %d for %r%s", self.command,
                         proc.returncode, alert, f": {err.decode(errors='replace')[-_STDERR_SHOWN:].strip()}"
                         if err else "")
            return "failed"
        return "ok"


def _kill_group(proc: "subprocess.Popen[bytes]") -> None:
    # The shell's children too: the command ran in a session (and process group) of its own.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()
    try:
        proc.communicate(timeout=5.0)
    except subprocess.TimeoutExpired:  # pragma: no cover - a process that survives SIGKILL
        pass


class AlertManager:
    """Turns events into alerts, once per transition of each (rule, node).

    ``thresholds`` (the LagConfig in force, as a dict) is attached to replica_lag alerts.
    """

    def __init__(self, thresholds: Dict[str, Any], *, command: Optional[str] = None,
                 command_timeout_ms: float = 10_000.0) -> None:
        self.thresholds = dict(thresholds)
        self._lock = threading.Lock()
        self._firing: Dict[Tuple[str, str], Alert] = {}
        self._counts: Dict[Tuple[str, str, str], int] = {}
        self._recent: Deque[Alert] = collections.deque(maxlen=MAX_ALERTS_KEPT)
        self._sequence = 0
        self._callbacks: List[Callable[[Alert], Any]] = []
        self.runner = CommandRunner(command, command_timeout_ms) if command else None

    def add_callback(self, callback: Callable[[Alert], Any]) -> None:
        self._callbacks.append(callback)

    # ------------------------------------------------------------ inputs
    def on_event(self, event: Any, time_ns: Optional[int] = None) -> Optional[Alert]:
        """An alert for a backend event that starts or ends a condition (None otherwise)."""
        rule_status = _RULES.get(event.kind.name.lower())
        if rule_status is None:
            return None
        rule, status = rule_status
        lag = rule == "replica_lag"
        return self.transition(rule, status, event.node, message=_event_message(event),
                               lag_ms=event.lag_ms if lag else None,
                               lag_bytes=event.lag_bytes if lag else None,
                               event_sequence=event.sequence, time_ns=time_ns)

    def transition(self, rule: str, status: str, node: str, *, message: str,
                   lag_ms: Optional[float] = None, lag_bytes: Optional[int] = None,
                   event_sequence: Optional[int] = None, time_ns: Optional[int] = None) -> Optional[Alert]:
        """Fires or resolves ``rule`` on ``node``; None when it already was in that state (a
        node coming up that never was down resolves nothing)."""
        key = (rule, node)
        with self._lock:
            if (status == "firing") == (key in self._firing):
                return None
            self._sequence += 1
            alert = Alert(self._sequence, rule, status, node, time_ns or time.time_ns(), message,
                          lag_ms, lag_bytes, event_sequence,
                          self.thresholds if rule == "replica_lag" else {})
            if status == "firing":
                self._firing[key] = alert
            else:
                del self._firing[key]
            count_key = (rule, node, status)
            self._counts[count_key] = self._counts.get(count_key, 0) + 1
            self._recent.append(alert)
        self._publish(alert)
        return alert

    def _publish(self, alert: Alert) -> None:
        level = logging.WARNING if alert.status == "firing" else logging.INFO
        logger.log(level, "ALERT %s %s on %s: %s", alert.rule, alert.status.upper(), alert.node,
                   alert.message, extra={"replikit_alert": alert})
        for callback in list(self._callbacks):
            try:
                callback(alert)
            except Exception:  # a callback's bug must not stop the alerts after it
                logger.exception("replikit: alert callback %r raised on %r", callback, alert)
        if self.runner is not None:
            self.runner.submit(alert)

    # ------------------------------------------------------------ outputs
    def firing(self) -> List[Alert]:
        """The alerts firing now (the transition that started each), oldest first."""
        with self._lock:
            return sorted(self._firing.values(), key=lambda a: a.sequence)

    def recent(self, after_sequence: int = 0) -> List[Alert]:
        """Alerts after ``after_sequence`` (at most the last MAX_ALERTS_KEPT), oldest first."""
        with self._lock:
            return [a for a in self._recent if a.sequence > after_sequence]

    @property
    def last_sequence(self) -> int:
        with self._lock:
            return self._sequence

    def counts(self) -> Dict[Tuple[str, str, str], int]:
        """Transitions so far by (rule, node, status)."""
        with self._lock:
            return dict(self._counts)

    def command_results(self) -> Dict[str, int]:
        """Alert command runs by result (ok, failed, timeout, dropped); empty without one."""
        if self.runner is None:
            return {}
        with self.runner._lock:
            return dict(self.runner.results)

    def close(self, timeout_ms: Optional[float] = None) -> None:
        """Waits (bounded) for the queued alert commands, then stops their thread."""
        if self.runner is not None:
            self.runner.close(timeout_ms)


def _event_message(event: Any) -> str:
    from ..events import describe

    return describe(event)
