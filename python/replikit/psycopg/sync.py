"""The synchronous router: a psycopg_pool.ConnectionPool per node and a prober thread per node."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Callable, ContextManager, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import psycopg
import psycopg_pool
from psycopg.pq.abc import PGconn as PGconnType

from .. import _core
from .._core import Consistency, DatabaseOptions, Session
from .. import _xidfloor as _floor
from . import _base, _deadline, _lease, _parking, _probe
from ._lease import OBSERVING as _OBSERVING, read_path
from ._base import ConsistencyLike, CHECK_IDLE_S, COMMIT_LSN_SQL, Core, Failure, classify


class _Prober:
    """One daemon thread per node, each with its own libpq connection: a node that hangs holds
    up only its own probes, and every probe is bounded (see _probe.probe_once)."""

    def __init__(self, core: Core, after_probe: Optional[Callable[[str], None]] = None):
        self.core = core
        self.after_probe = after_probe
        self.stop = threading.Event()
        self.wake = {name: threading.Event() for name in core.dsns}
        self.done = threading.Condition()
        self.completed = dict.fromkeys(core.dsns, 0)
        self.threads = [threading.Thread(target=self._run, args=(name,), daemon=True,
                                         name=f"replikit-probe-{name}") for name in core.dsns]
        for t in self.threads:
            t.start()

    def _run(self, node: str) -> None:
        options = self.core.options
        interval_s = options.probe_interval_ms / 1000.0
        bound_s = options.probe_timeout_ms / 1000.0
        conninfo = _probe.probe_conninfo(self.core.dsns[node], options)
        connect_s = float(_base.connect_timeout_s(options))
        pgconn: Optional[PGconnType] = None
        while not self.stop.is_set():
            sent = _base.now_ns()
            try:
                pgconn, row = _probe.probe_once(pgconn, conninfo, bound_s, connect_s, self.stop)
                self.core.probe_ok(node, row, sent, _base.now_ns())
            except Exception as exc:  # every failure of a probe is a failed probe
                self.core.probe_failed(node, exc, _base.now_ns())
                if pgconn is not None:
                    pgconn.finish()
                pgconn = None
            if self.after_probe is not None:
                try:
                    self.after_probe(node)
                except Exception:  # pragma: no cover - a pool closing under it
                    _base.logger.debug("after-probe housekeeping of %s failed", node, exc_info=True)
            with self.done:
                self.completed[node] += 1
                self.done.notify_all()
            self.wake[node].wait(interval_s)
            self.wake[node].clear()
        if pgconn is not None:
            pgconn.finish()

    def probe_now(self, nodes: Sequence[str]) -> None:
        for name in nodes:
            self.wake[name].set()

    def wait(self, count: int, timeout_s: float) -> bool:
        """True when every node completed `count` more probes within `timeout_s`."""
        with self.done:
            target = {k: v + count for k, v in self.completed.items()}
            return self.done.wait_for(lambda: all(self.completed[k] >= v for k, v in target.items()),
                                      timeout_s)

    def close(self) -> None:
        self.stop.set()
        for event in self.wake.values():
            event.set()
        for t in self.threads:
            t.join(timeout=self.core.options.probe_timeout_ms / 1000.0
                   + self.core.options.connect_timeout_ms / 1000.0 + 5.0)


class ConnectionRouter:
    """replikit routing over psycopg 3 connections, a psycopg_pool.ConnectionPool per node::

        router = ConnectionRouter(("primary", dsn0), [("r1", dsn1), ("r2", dsn2)],
                                  row_factory=dict_row)
        with router.write(session) as conn:        # the primary, one transaction
            conn.execute("INSERT ...")
        # committed; its commit LSN is in `session`
        with router.read(session) as conn:         # a replica that has the write, or the primary
            conn.execute("SELECT ...").fetchall()

    Decisions come from the routing core (replikit.Router over a Topology and LagTracker fed
    by a prober thread per node), so reasons and counters read as the C++ backend's:
    ``router.core.counters()`` and ``stats()`` (DatabaseStats' names), ``pool_stats()``
    (psycopg_pool's get_stats() per node), ``nodes()``.

    ``options`` / option keywords: DatabaseOptions (pool_size, acquire_timeout_ms,
    probe_interval_ms, max_lag_ms, wait_for_replica_ms, policy, ...). ``pool_kwargs``: passed
    to every psycopg_pool.ConnectionPool as given (min_size, max_lifetime, max_idle, check,
    configure, reset, connection_class, ...). Other keywords go to psycopg.connect (row_factory,
    cursor_factory, prepare_threshold, ...); connections are autocommit.

    Failures are judged as the C++ backend judges them: a lost connection marks its node down
    (until the prober's next good probe) and re-raises; a server error (QueryError's case)
    re-raises and keeps the node; a connection lost during COMMIT raises CommitUnknown;
    SQLSTATE 53300 (server full) does not mark a node down. A pooled connection found closed
    before use is discarded; on a replica the node is marked down and the read re-routed
    (nothing was sent). Pool exhaustion raises replikit.TimeoutError after acquire_timeout_ms.
    """

    def __init__(self, primary: Any, replicas: Sequence[Any] = (), *,
                 options: Optional[DatabaseOptions] = None,
                 pool_kwargs: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> None:
        overrides, conn_kwargs = _base.split_kwargs(kwargs)
        opts = _base.build_options(options, overrides)
        self.core = Core(primary, replicas, opts)
        self._conn_kwargs = _base.connect_kwargs(conn_kwargs, opts)
        self._pool_kwargs = _base.pool_kwargs(pool_kwargs, opts)
        self._timeout_s = float(self._pool_kwargs["timeout"])
        self._wait_ms = opts.wait_for_replica_ms
        self._record = self.core.router.record
        self._primary = self.core.primary
        self.pools: Dict[str, psycopg_pool.ConnectionPool[psycopg.Connection[Any]]] = {}
        try:
            for name, dsn in self.core.dsns.items():
                self.pools[name] = psycopg_pool.ConnectionPool(
                    dsn, kwargs=_deadline.with_statement_timeout(self._conn_kwargs, dsn, opts), open=True,
                    name=name, **self._node_pool_kwargs(name))
        except BaseException:
            self._close_pools()
            raise
        self._parking = _parking.Parking(self.core.dsns, _parking.allowed(self._pool_kwargs))
        self._parked = self._parking.lists
        self._path = read_path(self.core, self._parking)
        self._enter, self._leave = self._path.enter, self._path.leave  # the read path's two calls
        # read() as a builtin of the core over the same path: a routed read's common case runs no
        # Python frame. Installed on the instance only when the class's read() is this one, so that
        # a subclass's override is called (its super().read() still gets the builtin's lease).
        self._fast_read: Callable[..., ContextManager[psycopg.Connection[Any]]] = \
            self._path.fast_read(self, _lease.SYNC_HOOKS)
        if type(self).read is _LIBRARY_READ:
            self.__dict__["read"] = self._fast_read
        self._closed = False
        self._prober = _Prober(self.core, self._sweep)

    def _node_pool_kwargs(self, node: str) -> Dict[str, Any]:
        """The pool keywords of `node`: its connection class bounds every call (see _deadline)."""
        out = dict(self._pool_kwargs)
        out["connection_class"] = _deadline.bounded_class(out.get("connection_class", psycopg.Connection), node,
                                                          self.core.options, False)
        return out

    # ------------------------------------------------------------------ leases
    def _getconn(self, node: str) -> psycopg.Connection[Any]:
        if self._closed:
            raise _core.ConnectionError("the router is closed")
        pool = self.pools[node]
        try:
            return pool.getconn()
        except psycopg_pool.PoolTimeout as exc:
            raise self._timeout(node) from exc
        except psycopg_pool.PoolClosed as exc:
            raise _core.ConnectionError("the router is closed") from exc

    def _discard_closed(self, node: str, conn: psycopg.Connection[Any]) -> None:
        """A pooled connection found closed before use: discarded (the pool replaces it in the
        background); a replica is marked down and the read routed again (nothing was sent)."""
        conn.close()
        self.pools[node].putconn(conn)
        if node != self.core.primary:
            self.core.mark_down(node, "its pooled connection was closed by the server")

    def _timeout(self, node: str) -> Exception:
        return _core.TimeoutError(
            f"acquire_timeout_ms: no connection to node '{node}' became free within "
            f"{self._timeout_s * 1000.0:g} ms (max_size {self.pools[node].max_size})")

    def _acquire(self, node: str) -> Optional[psycopg.Connection[Any]]:
        """A live pooled connection to `node`, or None after marking a replica down whose
        pooled connection was found closed (the caller re-routes). Checked with one poll():
        always on the primary (a write sent on a dead connection would end in CommitUnknown),
        on a replica when it sat idle for CHECK_IDLE_S or more (a replica read on a connection
        that died sooner fails in the block and marks the node down). A primary's dead idle
        connections are discarded one by one (at most max_size)."""
        pool = self.pools[node]
        check_all = node == self.core.primary
        for _ in range(pool.max_size + 1):
            try:
                conn = self._parked[node].pop() if not self._closed else self._getconn(node)
            except IndexError:
                conn = self._getconn(node)
            if not check_all and time.monotonic() - getattr(conn, "_replikit_idle_since", 0.0) < CHECK_IDLE_S:
                return conn
            if not _base.idle_socket_closed(conn):
                return conn
            self._discard_closed(node, conn)
            if not check_all:
                return None
        raise _core.ConnectionError(f"node '{node}': every pooled connection was closed")

    def _release(self, node: str, conn: psycopg.Connection[Any]) -> None:
        """Parks `conn` for the next read (see _parking) or returns it to its pool."""
        if not self._parking.park(node, conn):
            self.pools[node].putconn(conn)

    def _return_parked(self, node: str, conns: List[psycopg.Connection[Any]], close: bool = False) -> None:
        for conn in conns:
            if close:
                conn.close()
            self.pools[node].putconn(conn)

    def _sweep(self, node: str) -> None:
        """After each probe of `node` (the prober's thread): its connections parked a while go
        back to the pool."""
        self._return_parked(node, self._parking.take_stale(node, CHECK_IDLE_S))

    def _fail(self, node: str, conn: Any, exc: BaseException, may_commit: bool) -> Failure:
        kind = classify(exc, conn, may_commit)
        if kind in (Failure.LOST, Failure.IN_DOUBT):
            self.core.mark_down(node, str(exc).strip() or type(exc).__name__)
            # The node's parked connections went with it: closed, the pool replaces them.
            self._return_parked(node, self._parking.take_all(node), close=True)
        return kind

    # ------------------------------------------------------------------ routing
    def _route(self, session: Optional[Session], level: Consistency, max_staleness_ms: Optional[float],
               wait_for_replica_ms: Optional[_base.WaitMs], routed: Any = None) -> Any:
        d = self.core.route_read(session, level, max_staleness_ms) if routed is None else routed
        if d.reason != _core.Reason.NO_REPLICA_CAUGHT_UP:
            return d
        wait_ms = self.core.catch_up_ms(self._wait_ms if wait_for_replica_ms is None else wait_for_replica_ms)
        return self.core.wait_for_replica(session, level, max_staleness_ms, d, wait_ms, self._prober.probe_now,
                                          time.sleep)

    def read(self, session: Optional[Session] = None, *, consistency: ConsistencyLike = "read_your_writes",
             max_staleness_ms: Optional[float] = None,
             wait_for_replica_ms: Optional[_base.WaitMs] = None) -> ContextManager[psycopg.Connection[Any]]:
        """``with router.read(session) as conn``: a pooled connection to the node the
        router picks for this read, for the duration of the block.

        session: the caller's replikit.Session (None: one that never wrote). consistency: a
        replikit.Consistency or its lower-case name. max_staleness_ms: the bound of a
        bounded_staleness read. wait_for_replica_ms: how long a read no replica covers yet may wait
        for one before the primary serves it ("auto", or ms; None or negative: the router's
        option).

        Monotonic/Causal reads with a session record what they saw (one round trip after the
        block, on the same connection). The routing decision is ``last_route``."""
        # A router's read is this builtin itself (see __init__); this method serves subclasses
        # that override read() and call it through super().
        return self._fast_read(session, consistency=consistency, max_staleness_ms=max_staleness_ms,
                               wait_for_replica_ms=wait_for_replica_ms)

    def _lease_read(self, session: Optional[Session], level: Consistency, max_staleness_ms: Optional[float],
                    wait_for_replica_ms: Optional[_base.WaitMs],
                    routed: Any = None) -> Tuple[str, psycopg.Connection[Any]]:
        """Leases a connection for a read: `routed` (the fast path's decision, not recorded) is acted
        on first; a node whose connection cannot be had is routed around."""
        for attempt in range(len(self.pools) + 1):
            d = self._route(session, level, max_staleness_ms, wait_for_replica_ms if attempt == 0 else 0,
                            routed if attempt == 0 else None)
            node = d.node
            if node is None:
                self._record(d)
                raise _core.ConnectionError(f"no node can serve this read ({d.reason.name.lower()}; "
                                            f"the primary '{self.core.primary}' is down)")
            conn = self._acquire(node)
            if conn is not None:
                if node == self._primary and session is not None and level in _OBSERVING:
                    self._await_floor(node, conn, session)
                self._record(d)
                self._path.last_route = d
                return node, conn
            self.core.count("read_retries")
        raise _core.ConnectionError("no node can serve this read: connections lost")  # pragma: no cover

    def _await_floor(self, node: str, conn: psycopg.Connection[Any], session: Session) -> None:
        """Before a Monotonic/Causal read on the primary: waits (bounded) until the primary's
        snapshot has completed what the session's replica reads saw (see XidFloors)."""
        if self.core.floors.get(session) is None:
            return
        cur = _base.tuple_cursor(conn)

        def snapshot_text() -> Optional[str]:
            row = cur.execute(_base.SNAPSHOT_SQL).fetchone()
            return row[0] if row else None

        try:
            covered = self.core.await_floor(session, snapshot_text, time.sleep)
        except BaseException as exc:
            self._fail(node, conn, exc, False)
            self._release(node, conn)
            raise
        if not covered:
            self._release(node, conn)
            raise _floor.floor_timeout(self.core.floor_wait_s)

    @contextlib.contextmanager
    def write(self, session: Optional[Session] = None) -> Iterator[psycopg.Connection[Any]]:
        """A connection to the primary inside one transaction. The block's end commits it and
        reads the commit LSN in the same round trip (`COMMIT; SELECT pg_current_wal_insert_lsn()`
        in one simple-protocol message), recorded into ``session``. An exception in the block
        rolls it back; a connection lost during the COMMIT raises CommitUnknown."""
        d = self.core.router.route_write()
        if d.node is None:
            raise _core.ConnectionError(f"the primary '{self.core.primary}' is down: nothing was sent")
        node = d.node
        conn = self._acquire(node)
        assert conn is not None  # the primary is never re-routed
        self.core.count("writes")
        try:
            try:
                _base.tuple_cursor(conn).execute("BEGIN")
                yield conn
            except BaseException as exc:
                if self._fail(node, conn, exc, False) not in (Failure.LOST, Failure.IN_DOUBT):
                    with contextlib.suppress(psycopg.Error):
                        conn.rollback()
                raise
            lsn = self._commit(node, conn)
            if session is not None:
                session.record_write(lsn)
        finally:
            self._release(node, conn)

    def _commit(self, node: str, conn: psycopg.Connection[Any]) -> Optional[_core.Lsn]:
        """COMMIT and the insert LSN in one round trip; the LSN (None: unknown)."""
        status = conn.pgconn.transaction_status
        if status == psycopg.pq.TransactionStatus.INERROR:
            conn.rollback()
            raise _core.InvalidArgument("the transaction was aborted by an earlier error and rolled "
                                        "back: nothing it did was committed")
        # IDLE: the block committed by itself; the LSN read now still follows that commit.
        sql = COMMIT_LSN_SQL if status == psycopg.pq.TransactionStatus.IDLE else _base.COMMIT_AND_LSN_SQL
        cur = _base.simple_cursor(conn, psycopg.ClientCursor)  # simple protocol: two statements
        try:
            cur.execute(sql)
        except psycopg.Error as exc:
            kind = self._fail(node, conn, exc, True)
            if kind == Failure.IN_DOUBT:
                raise _core.CommitUnknown(f"node '{node}': connection lost during COMMIT; it may or "
                                          f"may not have committed: {exc}") from exc
            raise
        except _core.TimeoutError as exc:  # the client-side bound closed the connection
            raise _core.CommitUnknown(f"node '{node}': no answer to COMMIT within statement_timeout_ms + "
                                      f"query_grace_ms; it may or may not have committed: {exc}") from exc
        while cur.description is None and cur.nextset():
            pass
        row = cur.fetchone() if cur.description is not None else None
        return None if row is None else _base.end_lsn(*row)

    # ------------------------------------------------------------------ state
    @property
    def last_route(self) -> Optional[_core.Decision]:
        """The routing Decision of the latest read the calling thread leased through this router
        (None before its first), whatever other threads read meanwhile: kept per thread, as
        threading.local keeps a value. Each read's session and level are its own."""
        return self._path.last_route

    def stats(self) -> Dict[str, int]:
        """Counters since construction (DatabaseStats' names)."""
        return self.core.stats()

    def pool_stats(self) -> Dict[str, Dict[str, int]]:
        """psycopg_pool's get_stats() of each node's pool, with `router_idle`: its connections
        idle in the router between reads (counted in pool_size, not in pool_available)."""
        parked = self._parking.counts()
        return {name: dict(pool.get_stats(), router_idle=parked[name]) for name, pool in self.pools.items()}

    def nodes(self) -> List[Dict[str, Any]]:
        """Each node as the prober and the lag tracker see it."""
        return self.core.nodes()

    def wait_probes(self, count: int = 1, timeout_ms: float = 5000.0) -> bool:
        """True when every node completed `count` more probes within `timeout_ms`."""
        return self._prober.wait(count, timeout_ms / 1000.0)

    def _close_pools(self) -> None:
        for pool in self.pools.values():
            pool.close()

    def close(self) -> None:
        """Stops the probers and closes every pool (connections on loan close when returned)."""
        if self._closed:
            return
        self._closed = True
        self._parking.closed = True
        self._path.close()
        self._prober.close()
        for name in self.pools:
            self._return_parked(name, self._parking.take_all(name))
        self._close_pools()

    def __enter__(self) -> "ConnectionRouter":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


# read() as defined here, taken once: the builtin stands in for it only, not for a subclass's
# override nor for a stand-in patched onto the class (unittest.mock.patch.object) before the
# router is made.
_LIBRARY_READ = ConnectionRouter.read
