"""Many application hosts, one decision: failover and topology through etcd.

Every host runs an ``EtcdCoordinator`` beside its ``ReplicatedDatabase``::

    from replikit.coordination import EtcdCoordinator

    with EtcdCoordinator(db, endpoints=["http://10.0.0.1:2379"], prefix="/replikit/shop",
                         name="app-1", ttl_ms=2000) as coordinator:
        ...                      # db routes as usual; coordinator.status() says who leads

Each coordinator campaigns for ``<prefix>/leader`` with an etcd lease (etcd's election recipe).
The lease's state machine is the core's ``LeaderLease``: the holder may act only before its
local deadline (``ttl_ms - margin_ms`` after the request that last confirmed the lease was
sent), so a holder that cannot renew (etcd unreachable, the process paused) stops before etcd
can expire the lease and before anyone else can win it. Every host runs a FailoverManager with
``require_permit=True``: only the leader's gets a permit (its revision is the leader key's
creation revision, the fencing token), refreshed after each confirmed renewal; the others
observe.

The leader publishes the topology (primary, timeline, epoch, switch LSN, replicas) to
``<prefix>/topology`` with a compare-and-swap on the key's mod revision and the leader's
revision inside; every coordinator watches the key and applies newer records to its database
(``ReplicatedDatabase.apply_topology``; older revisions, or records of an older leader, are
ignored). A coordinator that loses etcd keeps its last topology (reads go on, writes go to the
known primary) and its status says ``coordination_available=False``.

Cluster settings live under ``<prefix>/config`` (JSON: members, detector, max_lag_bytes,
preferred_region, sync_mode), written once with ``put_config`` and read by every host at
start; they override the constructor's. Nothing secret is logged: members' DSNs and the etcd
credentials appear in no repr, status or log record.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import threading
import time
from typing import Any, Dict, List, Optional, Sequence

from . import _core
from .etcd import CoordinationUnavailable, EtcdClient, EtcdError
from .etcd._errors import argument_type_error, invalid_argument

__all__ = ["ClusterConfig", "CoordinatorStatus", "EtcdCoordinator", "put_config", "read_config",
           "topology_record", "parse_topology"]

log = logging.getLogger("replikit.coordination")

#: Bound of one wait of the coordinator's thread (it also wakes on stop()).
MAX_TICK_MS = 50.0
#: Bound of stop(): the thread's join.
STOP_TIMEOUT_S = 10.0


def _ns() -> int:
    return time.monotonic_ns()


def _check_prefix(prefix: Any) -> str:
    if not isinstance(prefix, str):
        raise argument_type_error("prefix", "a str", prefix)
    if not prefix.startswith("/") or prefix.endswith("/") or len(prefix) > 200:
        raise invalid_argument("prefix", "must start with '/', not end with '/', at most 200 characters")
    return prefix


# ------------------------------------------------------------------ cluster config

@dataclasses.dataclass(frozen=True)
class ClusterConfig:
    """The settings every host reads from ``<prefix>/config``."""

    members: Dict[str, str] = dataclasses.field(default_factory=dict)  # name -> DSN; primary first
    detector: Optional[Dict[str, Any]] = None  # DetectorConfig fields
    max_lag_bytes: Optional[int] = None
    preferred_region: Optional[str] = None
    sync_mode: Optional[str] = None  # e.g. "ANY 1 (r1, r2)", informational for the hosts

    def detector_config(self) -> Optional[Any]:
        """The DetectorConfig these settings name (None: not set)."""
        return None if self.detector is None else _core.DetectorConfig(**self.detector)

    def __repr__(self) -> str:  # the DSNs may hold passwords: names only
        return (f"ClusterConfig(members={list(self.members)}, detector={self.detector!r}, "
                f"max_lag_bytes={self.max_lag_bytes!r}, preferred_region={self.preferred_region!r}, "
                f"sync_mode={self.sync_mode!r})")


def put_config(client: EtcdClient, prefix: str, config: ClusterConfig) -> int:
    """Writes ``config`` under ``<prefix>/config``; returns etcd's revision."""
    if not isinstance(config, ClusterConfig):
        raise argument_type_error("config", "a ClusterConfig", config)
    if config.detector is not None:
        config.detector_config()  # validated before anyone reads it
    return client.put(_check_prefix(prefix) + "/config", json.dumps(dataclasses.asdict(config)))


def read_config(client: EtcdClient, prefix: str) -> Optional[ClusterConfig]:
    """The config under ``<prefix>/config`` (None when absent)."""
    kv = client.get(_check_prefix(prefix) + "/config")
    if kv is None:
        return None
    data = json.loads(kv.value.decode("utf-8"))
    fields = {f.name for f in dataclasses.fields(ClusterConfig)}
    return ClusterConfig(**{k: v for k, v in data.items() if k in fields})


# ------------------------------------------------------------------ topology records

def topology_record(db: Any, leader_revision: int, leader: str) -> Dict[str, Any]:
    """The topology ``db`` routes by, as the leader publishes it (JSON-ready)."""
    topo = db.topology
    primary = topo.primary_name
    nodes = {st.name: st for st in db.nodes()}
    history = db.timeline_history
    timeline = max(nodes[primary].timeline if primary in nodes else 0, history.current)
    switch = history.end_of(timeline - 1) if timeline > 1 else None
    replicas = [{"name": n, "state": "up" if st.up else "down"} for n, st in nodes.items() if n != primary]
    return {"primary": primary, "timeline": timeline, "epoch": topo.epoch,
            "switch_lsn": str(switch) if switch is not None else "0/0", "replicas": replicas,
            "leader_revision": leader_revision, "leader": leader}


def parse_topology(value: bytes, revision: int) -> Any:
    """A PublishedTopology from a record's JSON and the key's mod revision."""
    data = json.loads(value.decode("utf-8"))
    return _core.PublishedTopology(
        primary=data["primary"], timeline=int(data.get("timeline", 0)), epoch=int(data.get("epoch", 0)),
        switch_lsn=data.get("switch_lsn", "0/0"),
        replicas=[(r["name"], r["state"]) for r in data.get("replicas", [])],
        leader_revision=int(data["leader_revision"]), revision=revision)


# ------------------------------------------------------------------ status

@dataclasses.dataclass(frozen=True)
class CoordinatorStatus:
    """What a coordinator knows now."""

    name: str
    leading: bool                 # holds the lease and may act (before the local deadline)
    state: str                    # the lease state: campaigning, leading, lost, stepping_down
    coordination_available: bool  # the last etcd call answered
    topology_revision: int        # the revision of the topology applied last (0: none)
    primary: str                  # the primary this host's database routes writes to
    epoch: int                    # this host's topology epoch
    leader: Optional[str]         # the leader's name as last seen (None: unknown)
    lease_revision: int           # this host's leadership revision (0: never led)
    reason: str

    def __repr__(self) -> str:
        fields = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self))
        return f"CoordinatorStatus({fields})"


# ------------------------------------------------------------------ the coordinator

class EtcdCoordinator:
    """Coordinates this host's FailoverManager and router with the other hosts through etcd."""

    def __init__(self, database: Any, *, endpoints: Optional[Sequence[str]] = None,
                 client: Optional[Any] = None, prefix: str = "/replikit/default",
                 name: Optional[str] = None, ttl_ms: float = 2000.0,
                 margin_ms: Optional[float] = None, renew_interval_ms: Optional[float] = None,
                 etcd_timeout_ms: Optional[float] = None, ca_file: Optional[str] = None,
                 cert_file: Optional[str] = None, key_file: Optional[str] = None,
                 username: Optional[str] = None, password: Optional[str] = None,
                 **manager_options: Any):
        if (endpoints is None) == (client is None):
            raise invalid_argument("endpoints", "give endpoints or client (one of them)")
        self._prefix = _check_prefix(prefix)
        self._name = name if name is not None else f"{socket.gethostname()}-{os.getpid()}"
        if not isinstance(self._name, str) or not self._name:
            raise invalid_argument("name", "must be a non-empty str")
        self._lease_config = self._lease_settings(ttl_ms, margin_ms, renew_interval_ms)
        # etcd's leases have whole seconds; the local deadline is from ttl_ms, never longer.
        self._ttl_s = max(1, int(self._lease_config.ttl_ms // 1000))
        if self._ttl_s * 1000 != self._lease_config.ttl_ms:
            raise invalid_argument("ttl_ms", "etcd leases have whole seconds (e.g. 2000)")
        timeout = etcd_timeout_ms if etcd_timeout_ms is not None else min(
            1000.0, self._lease_config.renew_interval_ms)
        self._owns_client = client is None
        self._client = client if client is not None else EtcdClient(
            list(endpoints or []), timeout_ms=timeout, ca_file=ca_file, cert_file=cert_file,
            key_file=key_file, username=username, password=password)
        self._db = database
        self._manager_options = dict(manager_options)
        self._manager: Any = None  # a FailoverManager from start() on
        self._lease = _core.LeaderLease(self._lease_config)
        self._lease_id = 0
        self._lock = threading.RLock()  # the lease, the status fields
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._watch: Optional[Any] = None
        self._available = True
        self._reason = "not started"
        self._leader: Optional[str] = None
        self._config: Optional[ClusterConfig] = None

    @staticmethod
    def _lease_settings(ttl_ms: float, margin_ms: Optional[float], renew_ms: Optional[float]) -> Any:
        d = _core.LeaseConfig()
        ttl = float(ttl_ms)
        # The defaults scale with the TTL: deadline at 70% of it, a renewal every 15%.
        margin = margin_ms if margin_ms is not None else ttl * d.margin_ms / d.ttl_ms
        renew = renew_ms if renew_ms is not None else ttl * d.renew_interval_ms / d.ttl_ms
        return _core.LeaseConfig(ttl_ms=ttl_ms, margin_ms=margin, renew_interval_ms=renew)

    # -------------------------------------------------------------- public
    @property
    def name(self) -> str:
        return self._name

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def manager(self) -> Optional[Any]:
        """This host's FailoverManager (None before start())."""
        return self._manager

    @property
    def config(self) -> Optional[ClusterConfig]:
        """The cluster config read at start (None: none under the prefix)."""
        return self._config

    @property
    def lease_config(self) -> Any:
        return self._lease_config

    def start(self) -> "EtcdCoordinator":
        """Reads the config, starts the manager (observing), the topology watch and the
        campaign thread. Idempotent."""
        if self._thread is not None:
            return self
        self._stop.clear()
        self._manager = self._make_manager()
        self._manager.start()
        start_revision = self._load_topology()
        self._watch = self._client.watch(self._prefix + "/topology", start_revision=start_revision,
                                         on_events=self._on_topology_events)
        self._thread = threading.Thread(target=self._run, name=f"replikit-coordinator-{self._name}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Steps down (the permit withdrawn at once, the lease revoked), stops the watch, the
        thread and the manager. Idempotent."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(STOP_TIMEOUT_S)
        self._thread = None
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self._manager is not None:
            self._manager.stop()
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> "EtcdCoordinator":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def status(self) -> CoordinatorStatus:
        """A value: leading, coordination_available, topology_revision, primary, epoch, reason..."""
        with self._lock:
            now = _ns()  # under the lock: never earlier than an event the lease was fed
            state = self._lease.state(now)
            leading = self._lease.may_act(now)
            published = self._db.published_topology
            return CoordinatorStatus(
                name=self._name, leading=leading, state=state.name.lower(),
                coordination_available=self._available,
                topology_revision=published.revision if published is not None else 0,
                primary=self._db.topology.primary_name, epoch=self._db.topology.epoch,
                leader=self._name if leading else self._leader, lease_revision=self._lease.revision,
                reason=self._reason)

    def __repr__(self) -> str:
        return (f"EtcdCoordinator(name={self._name!r}, prefix={self._prefix!r}, "
                f"ttl_ms={self._lease_config.ttl_ms}, client={self._client!r})")

    # -------------------------------------------------------------- set-up
    def _make_manager(self) -> Any:
        options = dict(self._manager_options)
        try:
            self._config = read_config(self._client, self._prefix)
        except CoordinationUnavailable as exc:
            self._unavailable(f"config not read: {exc}")
        if self._config is not None:
            # The shared settings win: every host must fail over by the same rules.
            detector = self._config.detector_config()
            if detector is not None:
                options["detector"] = detector
            if self._config.max_lag_bytes is not None:
                options["max_lag_bytes"] = self._config.max_lag_bytes
            if self._config.preferred_region is not None:
                options["preferred_region"] = self._config.preferred_region
        options["require_permit"] = True
        return _core.FailoverManager(self._db, **options)

    def _load_topology(self) -> int:
        """Applies the current record; returns the revision the watch starts after."""
        try:
            kv, read_at = self._client.get_at(self._prefix + "/topology")
        except CoordinationUnavailable as exc:
            self._unavailable(f"topology not read: {exc}")
            return 0
        if kv is not None:
            self._apply(kv.value, kv.mod_revision)
        # From the read's revision, not "from now": a record published between the read and the
        # watch's stream opening (the watch connects on its own thread) must still arrive.
        return read_at + 1 if read_at > 0 else (kv.mod_revision + 1 if kv is not None else 0)

    # -------------------------------------------------------------- topology
    def _on_topology_events(self, events: List[Any]) -> None:
        for event in events:
            if event.type == "put":
                self._apply(event.kv.value, event.kv.mod_revision)

    def _apply(self, value: bytes, revision: int) -> None:
        try:
            topology = parse_topology(value, revision)
            verdict = self._db.apply_topology(topology)
        except (ValueError, KeyError, TypeError, _core.Error) as exc:
            log.warning("coordinator %s: topology at revision %d not applied: %s", self._name, revision,
                        type(exc).__name__)
            return
        if verdict == _core.TopologyVerdict.APPLIED:
            log.info("coordinator %s: topology revision %d applied (primary %s)", self._name, revision,
                     topology.primary)

    def _publish(self, permit: Any) -> None:
        """Publishes this (leading) host's topology when it names another primary than the record."""
        published = self._db.published_topology
        if published is not None and published.primary == self._db.topology.primary_name:
            return
        record = topology_record(self._db, permit.revision, self._name)
        if not permit.valid(_ns()):
            return
        ok, revision = self._client.put_if(self._prefix + "/topology", json.dumps(record),
                                           mod_revision=published.revision if published is not None else 0)
        if ok:
            self._apply(json.dumps(record).encode(), revision)
        else:
            self._load_topology()  # someone wrote first: apply theirs, decide again next round

    # -------------------------------------------------------------- the lease
    def _run(self) -> None:
        tick = min(MAX_TICK_MS, self._lease_config.renew_interval_ms / 2) / 1000.0
        while not self._stop.is_set():
            try:
                self._round()
            except CoordinationUnavailable as exc:
                self._unavailable(str(exc))
            except EtcdError as exc:
                self._set_reason(f"etcd refused: {exc}")
            self._stop.wait(tick)
        self._step_down()

    def _round(self) -> None:
        with self._lock:
            state = self._lease.state(_ns())
            if state == _core.LeaseState.LOST:
                self._lost()
                state = _core.LeaseState.CAMPAIGNING
        if state == _core.LeaseState.CAMPAIGNING:
            self._campaign()
        elif state == _core.LeaseState.LEADING:
            self._renew()
        with self._lock:
            permit = self._lease.permit(_ns())
        if permit is not None:
            self._publish(permit)

    def _campaign(self) -> None:
        kv = self._client.get(self._prefix + "/leader")
        if self._available_again():
            # Back from an etcd outage: a watch (re)opened "from now" missed what was published.
            self._load_topology()
        if kv is not None and self._lease_id and kv.lease == self._lease_id:
            self._resume(kv)
            return
        if kv is not None:
            self._lease_id = 0
            self._leader = kv.value.decode("utf-8", "replace")
            self._set_reason(f"following '{self._leader}'")
            return
        sent = _ns()
        lease_id = self._client.grant(self._ttl_s)
        created, revision = self._client.create(self._prefix + "/leader", self._name, lease=lease_id)
        if not created:
            self._revoke(lease_id)
            return
        with self._lock:
            self._lease_id = lease_id
            self._lease.acquired(lease_sent_ns=sent, revision=revision)
            permit = self._lease.permit()
            self._reason = self._lease.reason
        if permit is not None:
            self._manager.grant_permit(permit)
            self._leader = self._name
            log.info("coordinator %s: leading at revision %d", self._name, revision)

    def _resume(self, kv: Any) -> None:
        """The key is still ours under our lease (the local deadline passed while etcd could not
        answer, e.g. during its own leader election): a confirmed keepalive makes this host the
        leader again, with the same revision (nobody else can have led meanwhile)."""
        sent = _ns()
        ttl_s = self._client.keepalive(self._lease_id)
        if ttl_s <= 0:
            self._lease_id = 0
            return
        with self._lock:
            self._lease.acquired(lease_sent_ns=sent, revision=kv.create_revision)
            permit = self._lease.permit()
            self._reason = self._lease.reason
        if permit is not None:
            self._manager.grant_permit(permit)
            self._leader = self._name
            log.info("coordinator %s: leading again at revision %d (same lease)", self._name, kv.create_revision)

    def _renew(self) -> None:
        with self._lock:
            due = self._lease.renew_due(_ns())
        if not due:
            return
        sent = _ns()
        try:
            ttl_s = self._client.keepalive(self._lease_id)
        except CoordinationUnavailable as exc:
            with self._lock:
                self._lease.renew_failed(type(exc).__name__)
            raise
        self._available_again()
        with self._lock:
            self._lease.renewed(sent_ns=sent, granted_ttl_ms=float(ttl_s) * 1000.0)
            permit = self._lease.permit()
            self._reason = self._lease.reason
        if permit is not None:
            self._manager.grant_permit(permit)

    def _lost(self) -> None:
        """The lease is gone or may be (lock held): no permit, campaign again."""
        self._manager.revoke_permit()
        self._leader = None  # unknown until etcd answers again
        self._lease.campaign()  # records the loss (with its reason), then campaigns
        losses = [t for t in self._lease.transitions if t.to_state == _core.LeaseState.LOST]
        why = losses[-1].reason if losses else "lost"
        if self._lease_id:
            log.warning("coordinator %s: lost the lease: %s", self._name, why)
        # The lease id is kept: if the key is still ours under it, a keepalive resumes (_resume).
        self._reason = f"lost the lease ({why}); campaigning"

    def _step_down(self) -> None:
        with self._lock:
            self._lease.step_down()
            if self._manager is not None:
                self._manager.revoke_permit()
            lease_id, self._lease_id = self._lease_id, 0
        if lease_id:
            self._revoke(lease_id)
        with self._lock:
            self._lease.stepped_down()
            self._reason = "stopped"

    def _revoke(self, lease_id: int) -> None:
        try:
            self._client.revoke(lease_id)
        except (CoordinationUnavailable, EtcdError):
            pass  # it expires by itself within its TTL

    # -------------------------------------------------------------- status helpers
    def _unavailable(self, detail: str) -> None:
        with self._lock:
            if self._available:
                log.warning("coordinator %s: etcd unavailable; keeping the last topology", self._name)
            self._available = False
            self._reason = f"coordination unavailable ({detail}); keeping the last topology"

    def _available_again(self) -> bool:
        """Marks etcd reachable; True when it was not."""
        with self._lock:
            was = self._available
            self._available = True
        return not was

    def _set_reason(self, reason: str) -> None:
        with self._lock:
            self._reason = reason
