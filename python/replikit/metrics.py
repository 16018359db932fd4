"""Metrics of a ReplicatedDatabase: a prometheus_client collector and the same data as a dict.

::

    import replikit.metrics
    replikit.metrics.register(db)          # into prometheus_client's default REGISTRY
    replikit.metrics.register(db, registry=my_registry)
    data = replikit.metrics.snapshot(db)   # a plain dict, for any other system

Every scrape reads the database's state at that moment (``db.nodes()``, ``db.stats()``,
``db.router.counters()``, the event feed's counts), so nothing runs between scrapes.
Importing this module touches no registry; only ``register`` does, and only the one given.
The collector needs ``prometheus_client`` (``pip install replikit[metrics]``); ``snapshot``
does not.

Exposed (all prefixed ``replikit_``; ``node`` is the node's name, ``role`` primary/replica):

- per node: ``node_up`` (routable), ``node_reachable``, ``node_role_mismatch``,
  ``node_lagging``, ``node_lag_ms``, ``node_lag_bytes``, ``node_lag_known``,
  ``node_staleness_ms`` (a replica is at most this stale now: now minus its ``fresh_as_of_ns``,
  what bounded-staleness reads judge it by; absent while unknown, and for the primary; the
  instant itself is on this host's monotonic clock, so only the difference is exported),
  ``probe_rtt_ms``, ``probe_age_ms`` (since the last completed probe), ``probes_total``
  (``result`` ok/failed), ``pool_open_connections``, ``pool_idle_connections``;
- routing: ``route_decisions_total`` by ``node``, ``route_reasons_total`` by ``reason``;
- the database's counters: ``reads_total``, ``writes_total``, ``read_retries_total``, ...
  (one per DatabaseStats field);
- events: ``events_total`` by ``kind``, ``events_dropped_total``;
- pools of an adapter (``pools=``: a mapping node -> pool with psycopg_pool's
  ``get_stats()``, or a callable returning one): ``psycopg_pool_<stat>`` by ``node``.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Union

__all__ = ["ReplikitCollector", "register", "snapshot", "unregister"]

Pools = Union[Mapping[str, Any], Callable[[], Mapping[str, Any]], None]

_STATE_FIELDS = ("up", "reachable", "role_mismatch", "lag_known")


def _role(status: Any) -> str:
    return str(status.role.name).lower()


def _pool_stats(pools: Pools) -> Dict[str, Dict[str, float]]:
    if pools is None:
        return {}
    mapping = pools() if callable(pools) else pools
    out: Dict[str, Dict[str, float]] = {}
    for node, pool in mapping.items():
        stats = pool.get_stats() if hasattr(pool, "get_stats") else dict(pool)
        out[str(node)] = {k: v for k, v in stats.items()
                          if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return out


def snapshot(db: Any, *, pools: Pools = None) -> Dict[str, Any]:
    """The database's metrics as a dict: ``nodes`` (by name), ``decisions`` (``by_node``,
    ``by_reason``, ``total``), ``stats`` (DatabaseStats), ``events`` (``by_kind``,
    ``dropped``) and ``pools`` (psycopg_pool stats by node, when ``pools`` is given)."""
    now_ns = time.monotonic_ns()  # the clock of NodeStatus.last_probe_ns
    nodes: Dict[str, Dict[str, Any]] = {}
    for s in db.nodes():
        nodes[s.name] = {
            "role": _role(s),
            "up": s.up,
            "reachable": s.reachable,
            "role_mismatch": s.role_mismatch,
            "lag_state": s.lag_state.name.lower(),
            "lag_known": s.lag_known,
            "lag_ms": s.lag_ms,
            "lag_bytes": s.lag_bytes,
            "fresh_as_of_ns": s.fresh_as_of_ns,
            "staleness_ms": (now_ns - s.fresh_as_of_ns) / 1e6 if s.fresh_as_of_ns is not None else None,
            "timeline": s.timeline,
            "probe_rtt_ms": s.probe_rtt_ms,
            "probe_age_ms": (now_ns - s.last_probe_ns) / 1e6 if s.last_probe_ns else None,
            "probes_ok": s.probes_ok,
            "probes_failed": s.probes_failed,
            "last_error": s.last_error,
            "pool_open": s.pool_open,
            "pool_idle": s.pool_idle,
        }
    feed = db.event_feed
    return {
        "nodes": nodes,
        "decisions": db.router.counters(),
        "stats": db.stats().as_dict(),
        "events": {"by_kind": feed.counts, "dropped": feed.dropped},
        "pools": _pool_stats(pools),
    }


class ReplikitCollector:
    """A prometheus_client collector of one database (see the module's list of metrics).

    ``prefix`` replaces ``replikit`` in the names; ``labels`` (e.g. ``{"cluster": "orders"}``)
    are added to every sample, so several databases can share a registry.
    """

    def __init__(self, db: Any, *, pools: Pools = None, prefix: str = "replikit",
                 labels: Optional[Mapping[str, str]] = None) -> None:
        self._db = db
        self._pools = pools
        self._prefix = prefix
        self._labels = dict(labels or {})

    def describe(self) -> Iterator[Any]:
        # Registering must not scrape the database: an empty describe() makes the registry
        # skip duplicate-name checks for this collector instead of calling collect().
        return iter(())

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        data = snapshot(self._db, pools=self._pools)
        extra_names = list(self._labels)
        extra_values = [self._labels[k] for k in extra_names]
        p = self._prefix

        def gauge(name: str, doc: str, labels: List[str]) -> Any:
            return GaugeMetricFamily(f"{p}_{name}", doc, labels=extra_names + labels)

        def counter(name: str, doc: str, labels: List[str]) -> Any:
            return CounterMetricFamily(f"{p}_{name}", doc, labels=extra_names + labels)

        per_node = {
            "up": gauge("node_up", "1 when the node is routable.", ["node", "role"]),
            "reachable": gauge("node_reachable", "1 when the last probe succeeded and no call lost the node since.",
                               ["node", "role"]),
            "role_mismatch": gauge("node_role_mismatch", "1 when the server's role differs from the topology's.",
                                   ["node", "role"]),
            "lag_known": gauge("node_lag_known", "1 once the replica's lag has been measured.", ["node", "role"]),
        }
        lagging = gauge("node_lagging", "1 when the replica is LAGGING (0: OK).", ["node"])
        lag_ms = gauge("node_lag_ms", "The replica's replay lag in milliseconds.", ["node"])
        lag_bytes = gauge("node_lag_bytes", "The replica's replay lag in bytes.", ["node"])
        staleness = gauge("node_staleness_ms", "The replica is at most this stale now (bounded-staleness reads); "
                          "absent while unknown.", ["node"])
        rtt = gauge("probe_rtt_ms", "Round trip of the node's last good probe, in milliseconds.", ["node"])
        age = gauge("probe_age_ms", "Milliseconds since the node's last completed probe.", ["node"])
        probes = counter("probes", "Probes of the node by result.", ["node", "result"])
        pool_open = gauge("pool_open_connections", "Connections open to the node in its pool.", ["node"])
        pool_idle = gauge("pool_idle_connections", "Idle connections in the node's pool.", ["node"])
        for name, n in data["nodes"].items():
            for field, family in per_node.items():
                family.add_metric(extra_values + [name, n["role"]], float(n[field]))
            if n["role"] == "replica":
                lagging.add_metric(extra_values + [name], float(n["lag_state"] == "lagging"))
                lag_ms.add_metric(extra_values + [name], n["lag_ms"])
                lag_bytes.add_metric(extra_values + [name], n["lag_bytes"])
                if n["staleness_ms"] is not None:
                    staleness.add_metric(extra_values + [name], n["staleness_ms"])
            rtt.add_metric(extra_values + [name], n["probe_rtt_ms"])
            if n["probe_age_ms"] is not None:
                age.add_metric(extra_values + [name], n["probe_age_ms"])
            probes.add_metric(extra_values + [name, "ok"], n["probes_ok"])
            probes.add_metric(extra_values + [name, "failed"], n["probes_failed"])
            pool_open.add_metric(extra_values + [name], n["pool_open"])
            pool_idle.add_metric(extra_values + [name], n["pool_idle"])
        yield from per_node.values()
        yield from (lagging, lag_ms, lag_bytes, staleness, rtt, age, probes, pool_open, pool_idle)

        by_node = counter("route_decisions", "Routing decisions (reads and writes) by node.", ["node"])
        for name, count in data["decisions"]["by_node"].items():
            by_node.add_metric(extra_values + [name], count)
        by_reason = counter("route_reasons", "Routing decisions by reason.", ["reason"])
        for reason, count in data["decisions"]["by_reason"].items():
            by_reason.add_metric(extra_values + [reason], count)
        yield by_node
        yield by_reason

        for field, value in data["stats"].items():
            family = counter(field, f"ReplicatedDatabase.stats().{field}.", [])
            family.add_metric(extra_values, value)
            yield family

        events = counter("events", "Backend events delivered by kind.", ["kind"])
        for kind, count in data["events"]["by_kind"].items():
            events.add_metric(extra_values + [kind], count)
        dropped = counter("events_dropped", "Events overwritten before the event feed read them.", [])
        dropped.add_metric(extra_values, data["events"]["dropped"])
        yield events
        yield dropped

        stats_by_key: Dict[str, Any] = {}
        for node, stats in data["pools"].items():
            for key, value in stats.items():
                family = stats_by_key.get(key)
                if family is None:
                    family = stats_by_key[key] = gauge(f"psycopg_pool_{key}", f"psycopg_pool get_stats()['{key}'].",
                                                       ["node"])
                family.add_metric(extra_values + [node], value)
        yield from stats_by_key.values()


def register(db: Any, registry: Any = None, *, pools: Pools = None, prefix: str = "replikit",
             labels: Optional[Mapping[str, str]] = None) -> ReplikitCollector:
    """Registers a ReplikitCollector of ``db`` into ``registry`` (None: prometheus_client's
    default ``REGISTRY``) and returns it (``unregister(collector)`` removes it)."""
    import prometheus_client

    collector = ReplikitCollector(db, pools=pools, prefix=prefix, labels=labels)
    (prometheus_client.REGISTRY if registry is None else registry).register(collector)
    return collector


def unregister(collector: ReplikitCollector, registry: Any = None) -> None:
    """Removes a collector that ``register`` added."""
    import prometheus_client

    (prometheus_client.REGISTRY if registry is None else registry).unregister(collector)
