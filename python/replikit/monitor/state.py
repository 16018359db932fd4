"""The monitor's model: a ReplicatedDatabase's nodes, routing view, events and alerts, as one
snapshot per refresh.

``Monitor(db)`` watches a database it is given (an application's own, as in notebook 05);
``Monitor.open(settings)`` makes one of its own from ``MonitorSettings`` (the CLI). Either
way the numbers are the database's: its prober's probes, its lag tracker's lag and states
(thresholds with hysteresis), its router's choice of replicas. Nothing is measured twice.
"""

from __future__ import annotations

import collections
import time
from typing import Any, Deque, Dict, Iterator, List, Optional

from .alerts import AlertManager

MAX_EVENTS_KEPT = 1024
_EVENT_BATCH = 256
_EVENT_BATCHES_PER_REFRESH = 8  # at most 2048 events taken per refresh; the rest next time


def node_state(status: Any) -> str:
    """OK / LAGGING / DOWN, as the router sees the node."""
    if not status.up or not status.reachable:
        return "DOWN"
    if status.role.name == "REPLICA" and status.lagging:
        return "LAGGING"
    return "OK"


def _lsn(value: Any) -> Optional[str]:
    return None if value is None else str(value)


class Monitor:
    """Watches one ReplicatedDatabase: ``refresh()`` returns a snapshot (a dict, JSON-ready)
    and turns the backend's events into alerts (``alerts``, an AlertManager)."""

    def __init__(self, db: Any, *, on_alert: Optional[str] = None,
                 alert_timeout_ms: float = 10_000.0, own_db: bool = False,
                 from_start: bool = True) -> None:
        self.db = db
        self._own_db = own_db
        self.thresholds = thresholds_of(db)
        self.alerts = AlertManager(self.thresholds, command=on_alert,
                                   command_timeout_ms=alert_timeout_ms)
        self._events: Deque[Dict[str, Any]] = collections.deque(maxlen=MAX_EVENTS_KEPT)
        # From the database's first event (none missed at start-up), or from now.
        self._event_cursor = 0 if from_start else db.events.last_sequence
        self.events_missed = 0
        self._last_event_shown = 0
        self._last_alert_shown = 0
        self.refreshes = 0
        self._closed = False

    @classmethod
    def open(cls, settings: Any) -> "Monitor":
        """A Monitor with a ReplicatedDatabase of its own over ``settings.nodes``."""
        from .. import _core
        from .._backend import require_pg

        require_pg("replikit monitor")
        primary, *replicas = [n.as_backend_node() for n in settings.nodes]
        db = _core.ReplicatedDatabase(primary, replicas, **settings.database_options())
        try:
            return cls(db, on_alert=settings.on_alert, alert_timeout_ms=settings.alert_timeout_ms,
                       own_db=True)
        except BaseException:
            db.close()
            raise

    # ------------------------------------------------------------ events
    def poll_events(self) -> List[Dict[str, Any]]:
        """Takes the events published since the last call (bounded per call), feeds the
        alerts, and returns them as dicts."""
        log = self.db.events
        taken: List[Dict[str, Any]] = []
        for _ in range(_EVENT_BATCHES_PER_REFRESH):
            batch = log.read(self._event_cursor, _EVENT_BATCH)
            self.events_missed += batch.missed
            for event in batch.events:
                item = self.event_dict(event)
                self.alerts.on_event(event, time_ns=item["time_ns"])
                self._events.append(item)
                taken.append(item)
            self._event_cursor = batch.last_sequence
            if len(batch.events) < _EVENT_BATCH:
                break
        return taken

    def event_dict(self, event: Any) -> Dict[str, Any]:
        """An event as a JSON-ready dict, its time on the wall clock."""
        from ..events import describe

        # Event times are on the clock of the probes (monotonic); shown as wall time.
        age_ns = max(0, self.db.now_ns() - event.time_ns)
        wall_ns = time.time_ns() - age_ns
        return {"sequence": event.sequence, "kind": event.kind.name.lower(), "node": event.node,
                "time_ns": wall_ns, "lag_ms": event.lag_ms, "lag_bytes": event.lag_bytes,
                "attempt": event.attempt, "message": event.message, "text": describe(event)}

    def recent_events(self, count: int) -> List[Dict[str, Any]]:
        """The last ``count`` events (at most MAX_EVENTS_KEPT), oldest first."""
        if count <= 0:
            return []
        return list(self._events)[-count:]

    # ------------------------------------------------------------ routing view
    def read_view(self) -> Dict[str, Any]:
        """Where eventual reads go now, by the router's own flags: the replicas that are up
        and not LAGGING, or the primary when there is none (and the router's reason)."""
        db = self.db
        topology = db.topology
        primary = topology.primary_name
        replicas = [i for i in topology.nodes() if i.role.name == "REPLICA"]
        targets = [i.name for i in replicas if i.up and i.lag_state.name == "OK"]
        route = db.route_read(None, consistency="eventual")
        reason = route.reason.name.lower()
        if not targets:
            targets = [primary] if topology.info(primary).up else []
        return {"targets": targets, "reason": reason, "primary": primary,
                "to_primary": targets == [primary], "replicas": len(replicas),
                "router_choice": route.node}

    # ------------------------------------------------------------ snapshot
    def refresh(self) -> Dict[str, Any]:
        """One snapshot: the routing view and every node, then the events (alerts), then the
        alerts. ``events`` and ``alerts`` hold only what is new since the previous refresh."""
        reads = self.read_view()
        statuses = self.db.nodes()
        # A lag transition, or a node going down or coming back, is published before routing
        # shows it, so the events polled after reading routing hold every transition it shows:
        # the alerts are at least as new as the view (one poll is enough).
        new_events = self.poll_events()
        self._reads_alert(reads)
        nodes = [self._node_dict(s, reads["targets"]) for s in statuses]
        new_alerts = self.alerts.recent(self._last_alert_shown)
        if new_alerts:
            self._last_alert_shown = new_alerts[-1].sequence
        self.refreshes += 1
        now = time.time_ns()
        return {
            "time": _iso(now), "time_ns": now, "refresh": self.refreshes,
            "nodes": nodes, "reads": reads,
            "decisions": dict(self.db.router.counters()["by_node"]),
            "thresholds": dict(self.thresholds),
            "firing": [a.as_dict() for a in self.alerts.firing()],
            "alerts": [a.as_dict() for a in new_alerts],
            "events": new_events, "events_missed": self.events_missed,
        }

    def _reads_alert(self, reads: Dict[str, Any]) -> None:
        if reads["replicas"] == 0:
            return
        if reads["to_primary"] or not reads["targets"]:
            where = "the primary" if reads["targets"] else "no node"
            self.alerts.transition("reads_on_primary", "firing", reads["primary"],
                                   message=f"no replica can serve reads ({reads['reason']}): reads go to {where}")
        else:
            self.alerts.transition("reads_on_primary", "resolved", reads["primary"],
                                   message=f"replicas serve reads again: {', '.join(reads['targets'])}")

    def _node_dict(self, s: Any, targets: List[str]) -> Dict[str, Any]:
        now_ns = self.db.now_ns()  # the clock of last_probe_ns
        replica = s.role.name == "REPLICA"
        # A replica already behind when the tracker started: its time lag counts only from
        # then (the primary's LSN history begins there), so it is a lower bound.
        lower_bound = replica and self.db.lag_tracker.replica(s.name).lag_is_lower_bound
        fresh = s.fresh_as_of_ns if replica else None
        return {
            "name": s.name, "role": s.role.name.lower(), "state": node_state(s),
            "up": s.up, "reachable": s.reachable, "in_recovery": s.in_recovery,
            "role_mismatch": s.role_mismatch, "timeline": s.timeline,
            "current_lsn": _lsn(s.current_lsn), "receive_lsn": _lsn(s.receive_lsn),
            "replay_lsn": _lsn(s.replay_lsn),
            "lag_ms": s.lag_ms if replica else None, "lag_bytes": s.lag_bytes if replica else None,
            "lag_known": s.lag_known if replica else None,
            "lag_is_lower_bound": lower_bound if replica else None,
            # What bounded-staleness reads judge a replica by: fresh as of this instant, so at
            # most staleness_ms stale now (None: not known; such a replica serves none).
            "fresh_as_of_ns": fresh,
            "staleness_ms": (now_ns - fresh) / 1e6 if fresh is not None else None,
            "reads": s.name in targets,
            "probe": {"rtt_ms": s.probe_rtt_ms, "ok": s.probes_ok, "failed": s.probes_failed,
                      "age_ms": (now_ns - s.last_probe_ns) / 1e6 if s.last_probe_ns else None,
                      "last_error": s.last_error},
        }

    # ------------------------------------------------------------ life
    def close(self, timeout_ms: Optional[float] = None) -> None:
        """Runs the alert commands still queued (bounded), closes the database if it is ours."""
        if self._closed:
            return
        self._closed = True
        self.alerts.close(timeout_ms)
        if self._own_db:
            self.db.close()

    def __repr__(self) -> str:
        firing = ", ".join(f"{a.rule} on {a.node}" for a in self.alerts.firing()) or "none"
        return (f"Monitor({len(self.db.topology)} nodes, {self.refreshes} refreshes, "
                f"{self.alerts.last_sequence} alerts, firing: {firing})")

    def __enter__(self) -> "Monitor":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def thresholds_of(db: Any) -> Dict[str, Any]:
    """The lag tracker's thresholds in force (recovery marks resolved)."""
    c = db.lag_tracker.config
    return {"max_lag_ms": c.max_lag_ms, "recover_lag_ms": c.recover_lag_ms,
            "max_lag_bytes": c.max_lag_bytes, "recover_lag_bytes": c.recover_lag_bytes}


def _iso(time_ns: int) -> str:
    from .alerts import _iso as iso

    return iso(time_ns)


class MonitorCollector:
    """prometheus_client collector of the monitor's own metrics (next to replikit.metrics'):
    ``replikit_alerts_total`` by rule/node/status, ``replikit_alert_firing`` by rule/node,
    ``replikit_alert_commands_total`` by result, ``replikit_read_target`` by node (1 where
    eventual reads go now)."""

    def __init__(self, monitor: Monitor, prefix: str = "replikit") -> None:
        self._monitor = monitor
        self._prefix = prefix

    def describe(self) -> Iterator[Any]:
        return iter(())

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        p, m = self._prefix, self._monitor
        total = CounterMetricFamily(f"{p}_alerts", "Alert transitions by rule, node and status.",
                                    labels=["rule", "node", "status"])
        firing = GaugeMetricFamily(f"{p}_alert_firing", "1 while the alert fires (0: resolved).",
                                   labels=["rule", "node"])
        counts = m.alerts.counts()
        now_firing = {(a.rule, a.node) for a in m.alerts.firing()}
        for (rule, node, status), count in sorted(counts.items()):
            total.add_metric([rule, node, status], count)
        for rule, node in sorted({(r, n) for r, n, _ in counts}):
            firing.add_metric([rule, node], float((rule, node) in now_firing))
        commands = CounterMetricFamily(f"{p}_alert_commands", "Alert command runs by result.",
                                       labels=["result"])
        for result, count in m.alerts.command_results().items():
            commands.add_metric([result], count)
        target = GaugeMetricFamily(f"{p}_read_target", "1 where eventual reads go now.", labels=["node"])
        if m.db.is_open:
            reads = m.read_view()
            for s in m.db.nodes():
                target.add_metric([s.name], float(s.name in reads["targets"]))
        yield from (total, firing, commands, target)
