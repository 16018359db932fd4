"""What the sync and asyncio routers share: node specs, options, the routing core they drive,
the failure classifier, the prober's sample handling and the counters."""

from __future__ import annotations

import enum
import itertools
import logging
import select
import time
from typing import Any, Callable, Dict, List, Literal, Mapping, Optional, Sequence, Tuple, Union

import psycopg
from psycopg.pq import ConnStatus, TransactionStatus
from psycopg.rows import tuple_row

from .. import _core
from .._core import (Consistency, DatabaseOptions, LagConfig, LagTracker, Node, Router, RouterConfig,
                     Session, Topology)
# Re-exported: what every Python path reads the insert LSN with.
from .._walend import COMMIT_LSN_SQL as COMMIT_LSN_SQL, OBSERVE_SQL as OBSERVE_SQL  # noqa: F401
from .._walend import WAL_LAYOUT_COLUMNS as WAL_LAYOUT_COLUMNS, end_lsn as end_lsn  # noqa: F401
from .._xidfloor import SNAPSHOT_SQL as SNAPSHOT_SQL, XidFloors, await_floor, parse_snapshot  # noqa: F401

logger = logging.getLogger("replikit")

# Both in one simple-protocol Query message, one round trip: inside an explicit transaction
# block the COMMIT ends it (flushed, and confirmed by synchronous standbys) before the SELECT
# runs in a transaction of its own; the server sends both results and ReadyForQuery at once.
# (In autocommit, one string would run both in one implicit transaction and read the LSN
# before the commit: the C++ backend's execute() takes two round trips for that reason.)
COMMIT_AND_LSN_SQL = "COMMIT; " + COMMIT_LSN_SQL

# A pooled replica connection idle this long is checked (one poll()) before use, as the C++
# backend does; the primary's always are.
CHECK_IDLE_S = 1.0
SERVER_FULL = "53300"  # too many connections: the node answers, it is only full
_OBSERVING = (Consistency.MONOTONIC, Consistency.CAUSAL)
_NO_SESSION = Session()  # routes reads without a session; the router never changes it
_LEVELS: Dict[Any, Consistency] = {c: c for c in Consistency}
_LEVELS.update({c.name.lower(): c for c in Consistency})
_LEVELS.update({c.name: c for c in Consistency})
_STAT_NAMES = ("writes", "reads", "reads_on_replicas", "reads_on_primary", "read_retries",
               "read_failures", "waits", "waits_served_by_replica", "nodes_marked_down")


class Failure(enum.Enum):
    """What a psycopg error means for the node (as the C++ backend's classify.cpp judges it)."""

    LOST = "lost"            # the connection is gone: mark the node down
    IN_DOUBT = "in_doubt"    # ... while a COMMIT was in flight: it may or may not have committed
    SERVER = "server"        # the server answered with an error on a live connection
    OVERLOADED = "overloaded"  # SQLSTATE 53300: the node is up, only full; not marked down
    OTHER = "other"          # not a database failure (the caller's own exception)


def server_full(exc: BaseException) -> bool:
    """SQLSTATE 53300. A refused connect carries no SQLSTATE in psycopg (libpq gives only the
    message of a failed connection), so its message is read too: the SQLSTATE when the server
    wrote it (verbose errors), else PostgreSQL's English texts for it."""
    if not isinstance(exc, psycopg.Error):
        return False
    if exc.sqlstate is not None:
        return exc.sqlstate == SERVER_FULL
    message = str(exc)
    return any(text in message for text in _FULL_TEXTS)


_FULL_TEXTS = (f" {SERVER_FULL}: ", "too many connections", "remaining connection slots are reserved")


def classify(exc: BaseException, conn: Any, may_commit: bool = False) -> Failure:
    """Judges a failure by what happened to the connection, then by the server's answer."""
    if not isinstance(exc, psycopg.Error):
        return Failure.OTHER
    if server_full(exc):
        return Failure.OVERLOADED
    diag = exc.diag
    severity = diag.severity_nonlocalized or diag.severity
    gone = conn is None or conn.closed or conn.broken or conn.pgconn.status != ConnStatus.OK
    if gone or severity in ("FATAL", "PANIC"):
        return Failure.IN_DOUBT if may_commit else Failure.LOST
    if exc.sqlstate is None and isinstance(exc, psycopg.OperationalError):
        return Failure.IN_DOUBT if may_commit else Failure.LOST
    return Failure.SERVER


def argument_error(cls: type, argument: str, message: str) -> Exception:
    """`cls` (InvalidArgument or ArgumentTypeError) as the core raises it, naming `argument`."""
    err: Exception = cls(f"{argument}: {message}")
    err.argument = argument  # type: ignore[attr-defined]
    return err


def level_of(consistency: Any) -> Consistency:
    """A Consistency from the member or its name; anything else: InvalidArgument("consistency")."""
    try:
        return _LEVELS[consistency]
    except (KeyError, TypeError):
        pass
    if isinstance(consistency, str):
        found = _LEVELS.get(consistency.lower())
        if found is not None:
            return found
        names = ", ".join(c.name.lower() for c in Consistency)
        raise argument_error(_core.InvalidArgument, "consistency",
                             f"unknown consistency {consistency!r} (one of {names})")
    raise argument_error(_core.ArgumentTypeError, "consistency",
                         f"expected a replikit.Consistency or its name, got {type(consistency).__name__}")


WaitMs = Union[float, Literal["auto"]]  # a number of ms, or "auto"
PROBE_GAP_S = 0.005  # probes asked for by waiting readers: at most one per node per 5 ms


def wait_ms_of(value: Any) -> Optional[WaitMs]:
    """A read's wait_for_replica_ms: None or a negative number (the router's default), "auto",
    else a finite number of ms up to 60000 (as the C++ backend takes it)."""
    if value is None:
        return None
    if value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise argument_error(_core.ArgumentTypeError, "wait_for_replica_ms",
                             f"expected a number or 'auto', got {type(value).__name__}")
    if value != value or value > 60000:
        raise argument_error(_core.InvalidArgument, "wait_for_replica_ms",
                             f"must be at most 60000 (negative: the router's default), got {value!r}")
    return None if value < 0 else float(value)


def node_spec(spec: Any, argument: str) -> Tuple[Node, str]:
    """(Node, dsn) from (name, dsn) or {name, dsn, region, weight, priority}."""
    if isinstance(spec, Mapping):
        extra = {k: spec[k] for k in ("region", "weight", "priority") if k in spec}
        try:
            return Node(spec["name"], **extra), str(spec["dsn"])
        except KeyError as exc:
            raise argument_error(_core.InvalidArgument, argument, f"missing key {exc}") from None
    if isinstance(spec, (tuple, list)) and len(spec) == 2 and all(isinstance(p, str) for p in spec):
        return Node(spec[0]), spec[1]
    raise argument_error(_core.ArgumentTypeError, argument,
                         f"expected (name, dsn) or a dict with name and dsn, got {type(spec).__name__}")


def build_options(options: Optional[DatabaseOptions], overrides: Dict[str, Any]) -> DatabaseOptions:
    """DatabaseOptions (the one set of defaults, from C++) with the keyword overrides applied."""
    if options is None:
        options = DatabaseOptions()
    elif not isinstance(options, DatabaseOptions):
        raise argument_error(_core.ArgumentTypeError, "options",
                             f"expected a replikit.DatabaseOptions, got {type(options).__name__}")
    return options.replace(**overrides) if overrides else options


def option_names() -> Tuple[str, ...]:
    """The DatabaseOptions attribute names (keywords a router takes for them)."""
    o = DatabaseOptions()
    return tuple(k for k in dir(o) if not k.startswith("_") and not callable(getattr(o, k)))


def split_kwargs(kwargs: Dict[str, Any]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(DatabaseOptions keywords, psycopg connection keywords)."""
    names = set(option_names())
    return ({k: v for k, v in kwargs.items() if k in names},
            {k: v for k, v in kwargs.items() if k not in names})


def connect_kwargs(user: Dict[str, Any], options: DatabaseOptions) -> Dict[str, Any]:
    """The keywords every pooled connection is made with: the user's (row_factory,
    cursor_factory, prepare_threshold, ...) plus autocommit (the router runs write() blocks as
    one transaction itself; a read() block may open its own with conn.transaction())."""
    out = dict(user)
    if out.get("autocommit", True) is not True:
        raise argument_error(_core.InvalidArgument, "autocommit",
                             "must be True: write() blocks run as one transaction, read() blocks in "
                             "autocommit (use conn.transaction() inside a read() block)")
    out["autocommit"] = True
    out.setdefault("connect_timeout", connect_timeout_s(options))
    return out


def connect_timeout_s(options: DatabaseOptions) -> int:
    """libpq's connect_timeout for options.connect_timeout_ms: whole seconds, at least 2 (libpq
    takes 1 as 2), as the C++ backend sets it."""
    return max(2, int(round(options.connect_timeout_ms / 1000.0)))


def pool_kwargs(user: Optional[Mapping[str, Any]], options: DatabaseOptions) -> Dict[str, Any]:
    """psycopg_pool's keywords, passed as given (its own vocabulary: seconds), with max_size
    from options.pool_size, timeout from options.acquire_timeout_ms and min_size 1 unless set."""
    out = dict(user or {})
    for reserved in ("conninfo", "kwargs", "open", "name"):
        if reserved in out:
            raise argument_error(_core.InvalidArgument, "pool_kwargs",
                                 f"{reserved!r} is set by the router")
    out.setdefault("max_size", options.pool_size)
    out.setdefault("min_size", min(1, out["max_size"]))
    out.setdefault("timeout", options.acquire_timeout_ms / 1000.0)
    return out


class Core:
    """The routing core of one router: Topology, LagTracker and Router (C++), the DSNs, the
    counters (named as DatabaseStats'), and the prober's view of each node."""

    def __init__(self, primary: Any, replicas: Sequence[Any], options: DatabaseOptions):
        pnode, pdsn = node_spec(primary, "primary")
        if isinstance(replicas, (str, bytes)) or not isinstance(replicas, Sequence):
            raise argument_error(_core.ArgumentTypeError, "replicas",
                                 f"expected a sequence of nodes, got {type(replicas).__name__}")
        specs = [node_spec(r, "replicas") for r in replicas]
        self.options = options
        self.topology = Topology(pnode, [n for n, _ in specs])
        lag = LagConfig(max_lag_ms=options.max_lag_ms, recover_lag_ms=options.recover_lag_ms,
                        max_lag_bytes=options.max_lag_bytes, recover_lag_bytes=options.recover_lag_bytes)
        self.lag = LagTracker(self.topology, config=lag.for_probes(options.probe_interval_ms))
        self.router = Router(self.topology, config=RouterConfig(
            policy=options.policy, time_window_ms=options.time_window_ms, seed=options.seed,
            region=options.region, sticky_reads=options.sticky_reads))
        self.dsns: Dict[str, str] = {pnode.name: pdsn}
        self.dsns.update({n.name: d for n, d in specs})
        self.primary = pnode.name
        self.status: Dict[str, Dict[str, Any]] = {
            name: {"reachable": False, "in_recovery": None, "role_mismatch": False, "probes_ok": 0,
                   "probes_failed": 0, "last_error": "", "probe_rtt_ms": 0.0, "last_probe_ns": 0}
            for name in self.dsns}
        # itertools.count: next() is one C call under the GIL, exact across threads without a
        # lock (a Python `+= 1` may lose a count between threads); the read path counts twice.
        self._counters = {name: itertools.count() for name in _STAT_NAMES}
        self._reads = self._counters["reads"]
        self._on_primary = self._counters["reads_on_primary"]
        self._on_replicas = self._counters["reads_on_replicas"]
        self.floors = XidFloors()
        self.floor_wait_s = options.statement_timeout_ms / 2000.0

    # ------------------------------------------------------------------ counters

    def catch_up_ms(self, wait: WaitMs) -> float:
        """How long a read that no replica covers yet may wait for one: the core's plan (the C++
        backend's rule): a number as given; "auto" up to 50 ms when an up, not LAGGING replica
        within that bound has a replay-delay p99 within it (or too few delays measured), else 0."""
        return float(self.lag.plan_catch_up(wait).wait_ms)

    def count(self, name: str) -> None:
        next(self._counters[name])

    def count_failed_read(self) -> None:
        next(self._reads)
        next(self._counters["read_failures"])

    def count_read(self, node: str) -> None:
        next(self._reads)
        next(self._on_primary if node == self.primary else self._on_replicas)

    def stats(self) -> Dict[str, int]:
        # repr(count(5)) == 'count(5)': the value without consuming it.
        return {name: int(repr(c)[6:-1]) for name, c in self._counters.items()}

    # ------------------------------------------------------------------ routing
    def route_read(self, session: Optional[Session], level: Consistency,
                   max_staleness_ms: Optional[float]) -> Any:
        """Routes a read without counting it: the caller records the decision it acts on."""
        return self.router.route_read(_NO_SESSION if session is None else session, level,
                                      None, max_staleness_ms, None, False)

    def await_floor(self, session: Session, snapshot_text: Callable[[], Optional[str]],
                    sleep: Callable[[float], Any]) -> bool:
        """Before a Monotonic/Causal read on the primary: waits until the primary's snapshot
        (`snapshot_text()` runs SNAPSHOT_SQL there) has completed every transaction the
        session's replica reads saw (see XidFloors); False after floor_wait_s (the caller
        raises floor_timeout). The asyncio router has its own awaiting twin."""
        return await_floor(self.floors, session, snapshot_text, sleep, self.floor_wait_s)

    def wait_for_replica(self, session: Optional[Session], level: Consistency, max_staleness_ms: Optional[float],
                         d: Any, wait_ms: float, probe_now: Callable[[Sequence[str]], None],
                         sleep: Callable[[float], Any]) -> Any:
        """A read no replica covers yet (decision `d`): waits up to `wait_ms` for one, asking for
        probes of the replicas (`probe_now`) and routing again every PROBE_GAP_S (`sleep`);
        returns the last decision. The asyncio router has its own awaiting twin."""
        if wait_ms <= 0:
            return d
        self.count("waits")
        deadline = time.monotonic() + wait_ms / 1000.0
        replicas = self.topology.replica_names()
        while time.monotonic() < deadline:
            probe_now(replicas)
            sleep(PROBE_GAP_S)
            d = self.route_read(session, level, max_staleness_ms)
            if d.reason != _core.Reason.NO_REPLICA_CAUGHT_UP:
                if not d.to_primary:
                    self.count("waits_served_by_replica")
                return d
        return d

    def mark_down(self, node: str, why: str) -> None:
        """A call lost its connection to `node`: out of routing until the prober's next good probe."""
        if self.topology.info(node).up:
            self.topology.set_up(node, False)
            self.count("nodes_marked_down")
            logger.warning("node %s marked down: %s", node, why)
        st = self.status[node]
        st["reachable"] = False
        st["last_error"] = why

    def observe(self, session: Session, row: Tuple[Any, ...], node: str) -> None:
        """Records what a Monotonic/Causal read saw (OBSERVE_SQL's row) into `session`."""
        raw, in_recovery, snapshot, block, segment = row
        lsn = end_lsn(raw, block, segment)
        if lsn is None:
            return
        if in_recovery:
            # Router rule 5: this session's next reads may come back to this replica.
            session.observe_replica(lsn, node, self.topology)
            floor = parse_snapshot(snapshot)
            if floor is not None:
                self.floors.merge(session, floor)
        else:
            session.observe(lsn)

    # ------------------------------------------------------------------ probes
    def probe_ok(self, node: str, row: Tuple[Any, ...], sent_ns: int, now_ns: int) -> None:
        """A good probe: feeds the lag tracker and sets the node's routing state (as the C++
        prober does: a replica found not in recovery is kept out of routing)."""
        in_recovery, flush, receive, replay = row
        st = self.status[node]
        is_primary = node == self.topology.primary_name
        mismatch = bool(in_recovery) if is_primary else not in_recovery
        error = ""
        try:
            if is_primary and not in_recovery and flush is not None:
                try:
                    # Stamped with the send time: it can only overstate a replica's lag.
                    self.lag.primary_sample(flush, sent_ns)
                except _core.InvalidArgument:
                    self.lag.reset()  # the primary's LSN went back: a different server now
                    self.lag.primary_sample(flush, sent_ns)
            elif not is_primary and in_recovery and replay is not None:
                receive = receive if receive is not None and _core.Lsn(receive) > _core.Lsn(replay) else replay
                self.lag.replica_sample(node, receive, replay, now_ns)
        except _core.Error as exc:
            error = f"probe sample rejected: {exc}"
        up = is_primary or not mismatch
        if self.topology.info(node).up != up:
            self.topology.set_up(node, up)
            if up:
                logger.info("node %s up", node)
        if mismatch and not st["role_mismatch"]:
            logger.warning("node %s: role mismatch (%s)", node,
                           "the primary is in recovery" if is_primary else "this replica is not in recovery")
        st.update(reachable=True, in_recovery=bool(in_recovery), role_mismatch=mismatch,
                  last_error=error or ("role mismatch" if mismatch else ""),
                  probe_rtt_ms=(now_ns - sent_ns) / 1e6, last_probe_ns=now_ns)
        st["probes_ok"] += 1

    def probe_failed(self, node: str, exc: BaseException, now_ns: int) -> None:
        """A failed probe marks the node down, unless the server only refused for being full."""
        st = self.status[node]
        st["probes_failed"] += 1
        st["last_probe_ns"] = now_ns
        if server_full(exc):
            st["last_error"] = f"the server is full, the probe could not connect: {exc}"
            return
        self.mark_down(node, f"probe failed: {str(exc).strip() or type(exc).__name__}")

    def nodes(self) -> List[Dict[str, Any]]:
        """Each node as the prober and the lag tracker see it."""
        out = []
        for info in self.topology.nodes():
            row = {"name": info.name, "role": info.role, "up": info.up, "lag_ms": info.lag_ms,
                   "lag_bytes": info.lag_bytes, "lag_state": info.lag_state, "lag_known": info.lag_known,
                   "fresh_as_of_ns": info.fresh_as_of_ns, "replay_lsn": info.replay_lsn}
            row.update(self.status[info.name])
            out.append(row)
        return out


def tuple_cursor(conn: Any) -> Any:
    """A cursor of `conn` that returns tuples whatever the connection's row_factory (the
    router's own statements must not depend on it: dict_row would make row[0] a KeyError).
    Made once per connection and kept on it: making a cursor costs more than a point select's
    client-side work."""
    cur = conn.__dict__.get("_replikit_cursor")
    if cur is None or cur.closed:
        cur = conn.cursor(row_factory=tuple_row)
        conn._replikit_cursor = cur
    return cur


def simple_cursor(conn: Any, cls: Any) -> Any:
    """A `cls` (ClientCursor or AsyncClientCursor: the simple query protocol, which takes
    several statements in one message) of `conn` returning tuples, kept on the connection."""
    cur = conn.__dict__.get("_replikit_simple_cursor")
    if cur is None or cur.closed:
        cur = cls(conn, row_factory=tuple_row)
        conn._replikit_simple_cursor = cur
    return cur


def idle_socket_closed(conn: Any) -> bool:
    """True when an idle pooled connection is gone: closed, broken, or its socket readable
    (the server ended the session while it sat in the pool). One poll(), no round trip."""
    if conn.closed or conn.broken:
        return True
    if conn.pgconn.transaction_status != TransactionStatus.IDLE:
        return False
    try:
        poller = select.poll()
        poller.register(conn.pgconn.socket, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError, psycopg.OperationalError):
        return True


def now_ns() -> int:
    """The clock of probes and lag samples (= ReplicatedDatabase.now_ns())."""
    return time.monotonic_ns()


NodeArg = Union[Tuple[str, str], Mapping[str, Any]]
ConsistencyName = Literal["eventual", "read_your_writes", "monotonic", "causal", "bounded_staleness", "strong",
                          "EVENTUAL", "READ_YOUR_WRITES", "MONOTONIC", "CAUSAL", "BOUNDED_STALENESS", "STRONG"]
ConsistencyLike = Union[Consistency, ConsistencyName]  # a Consistency or its name (any case)
