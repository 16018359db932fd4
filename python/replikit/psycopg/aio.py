"""The asyncio router: a psycopg_pool.AsyncConnectionPool per node and a prober task per node."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import (Any, AsyncContextManager, AsyncIterator, Awaitable, Callable, Dict, List, Mapping, Optional, Sequence,
                    Tuple)

import psycopg
import psycopg_pool
from psycopg.pq.abc import PGconn as PGconnType

from .. import _core
from .._core import Consistency, DatabaseOptions, Session
from .. import _xidfloor as _floor
from . import _base, _deadline, _lease, _parking, _probe
from ._lease import OBSERVING as _OBSERVING, read_path
from ._base import ConsistencyLike, CHECK_IDLE_S, COMMIT_LSN_SQL, Core, Failure, classify


class _AsyncProber:
    """One task per node, each with its own connection; every probe is bounded (see
    _probe.probe_once)."""

    def __init__(self, core: Core, after_probe: Optional[Callable[[str], Awaitable[None]]] = None):
        self.core = core
        self.after_probe = after_probe
        self.wake = {name: asyncio.Event() for name in core.dsns}
        self.completed = dict.fromkeys(core.dsns, 0)
        self.probed = asyncio.Condition()
        # Set by close(): a probe's worker thread, which cancelling its task does not stop, tries
        # no further host of a multi-host DSN then (_probe.probe_connect).
        self.closing = threading.Event()
        self.tasks = [asyncio.create_task(self._run(name), name=f"replikit-probe-{name}")
                      for name in core.dsns]

    async def _run(self, node: str) -> None:
        # The bounded blocking probe of the sync prober, in a worker thread: psycopg's async
        # connection, cancelled on a frozen server, would try to cancel the query there and
        # could block the loop.
        options = self.core.options
        interval_s = options.probe_interval_ms / 1000.0
        bound_s = options.probe_timeout_ms / 1000.0
        conninfo = _probe.probe_conninfo(self.core.dsns[node], options)
        connect_s = float(_base.connect_timeout_s(options))
        pgconn: Optional[PGconnType] = None
        try:
            while True:
                sent = _base.now_ns()
                try:
                    pgconn, row = await asyncio.to_thread(_probe.probe_once, pgconn, conninfo, bound_s,
                                                             connect_s, self.closing)
                    self.core.probe_ok(node, row, sent, _base.now_ns())
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # every failure of a probe is a failed probe
                    self.core.probe_failed(node, exc, _base.now_ns())
                    if pgconn is not None:
                        pgconn.finish()
                    pgconn = None
                if self.after_probe is not None:
                    try:
                        await self.after_probe(node)
                    except Exception:  # pragma: no cover - a pool closing under it
                        _base.logger.debug("after-probe housekeeping of %s failed", node, exc_info=True)
                async with self.probed:
                    self.completed[node] += 1
                    self.probed.notify_all()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.wake[node].wait(), interval_s)
                self.wake[node].clear()
        finally:
            if pgconn is not None:
                pgconn.finish()

    def probe_now(self, nodes: Sequence[str]) -> None:
        for name in nodes:
            self.wake[name].set()

    async def wait(self, count: int, timeout_s: float) -> bool:
        async with self.probed:
            target = {k: v + count for k, v in self.completed.items()}
            try:
                await asyncio.wait_for(self.probed.wait_for(
                    lambda: all(self.completed[k] >= v for k, v in target.items())), timeout_s)
            except asyncio.TimeoutError:
                return False
            return True

    async def close(self) -> None:
        self.closing.set()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


class AsyncConnectionRouter:
    """The asyncio twin of ConnectionRouter (same options, semantics and counters)::

        async with AsyncConnectionRouter(("primary", dsn0), [("r1", dsn1)]) as router:
            async with router.write(session) as conn:
                await conn.execute("INSERT ...")
            async with router.read(session, consistency="monotonic") as conn:
                await (await conn.execute("SELECT ...")).fetchall()

    Open it with ``async with`` or ``await router.open()`` (pools and prober tasks need a
    running loop); close with ``await router.close()``.
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
        self.pools: Dict[str, psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[Any]]] = {}
        self._prober: Optional[_AsyncProber] = None
        self._parking = _parking.Parking(self.core.dsns, _parking.allowed(self._pool_kwargs))
        self._parked = self._parking.lists
        self._path = read_path(self.core, self._parking)
        self._enter, self._leave = self._path.enter, self._path.leave  # the read path's two calls
        # read() as a builtin of the core (see ConnectionRouter.__init__: not over a subclass's read()).
        self._fast_read: Callable[..., AsyncContextManager[psycopg.AsyncConnection[Any]]] = \
            self._path.fast_read(self, _lease.ASYNC_HOOKS, True)
        if type(self).read is _LIBRARY_READ:
            self.__dict__["read"] = self._fast_read
        self._closed = False

    async def open(self) -> "AsyncConnectionRouter":
        """Opens the pools and starts the prober tasks."""
        if self._prober is not None:
            return self
        try:
            for name, dsn in self.core.dsns.items():
                pool = psycopg_pool.AsyncConnectionPool(
                    dsn, kwargs=_deadline.with_statement_timeout(self._conn_kwargs, dsn, self.core.options),
                    open=False, name=name, **self._node_pool_kwargs(name))
                self.pools[name] = pool
                await pool.open()
        except BaseException:
            await self._close_pools()
            raise
        self._prober = _AsyncProber(self.core, self._sweep)
        return self

    def _node_pool_kwargs(self, node: str) -> Dict[str, Any]:
        """The pool keywords of `node`: its connection class bounds every call (see _deadline)."""
        out = dict(self._pool_kwargs)
        out["connection_class"] = _deadline.bounded_class(out.get("connection_class", psycopg.AsyncConnection), node,
                                                          self.core.options, True)
        return out

    # ------------------------------------------------------------------ leases
    async def _getconn(self, node: str) -> psycopg.AsyncConnection[Any]:
        if self._closed or self._prober is None:
            raise _core.ConnectionError("the router is closed" if self._closed else
                                        "the router is not open: async with it or await open()")
        pool = self.pools[node]
        try:
            return await pool.getconn()
        except psycopg_pool.PoolTimeout as exc:
            raise self._timeout(node) from exc
        except psycopg_pool.PoolClosed as exc:
            raise _core.ConnectionError("the router is closed") from exc

    async def _discard_closed(self, node: str, conn: psycopg.AsyncConnection[Any]) -> None:
        """As ConnectionRouter._discard_closed."""
        await conn.close()
        await self.pools[node].putconn(conn)
        if node != self.core.primary:
            self.core.mark_down(node, "its pooled connection was closed by the server")

    def _timeout(self, node: str) -> Exception:
        return _core.TimeoutError(
            f"acquire_timeout_ms: no connection to node '{node}' became free within "
            f"{self._timeout_s * 1000.0:g} ms (max_size {self.pools[node].max_size})")

    async def _acquire(self, node: str) -> Optional[psycopg.AsyncConnection[Any]]:
        """As ConnectionRouter._acquire."""
        if self._prober is None:  # not open (no pools yet): _getconn says so
            return await self._getconn(node)
        pool = self.pools[node]
        check_all = node == self.core.primary
        for _ in range(pool.max_size + 1):
            try:
                conn = self._parked[node].pop() if not self._closed else await self._getconn(node)
            except IndexError:
                conn = await self._getconn(node)
            if not check_all and time.monotonic() - getattr(conn, "_replikit_idle_since", 0.0) < CHECK_IDLE_S:
                return conn
            if not _base.idle_socket_closed(conn):
                return conn
            await self._discard_closed(node, conn)
            if not check_all:
                return None
        raise _core.ConnectionError(f"node '{node}': every pooled connection was closed")

    async def _release(self, node: str, conn: psycopg.AsyncConnection[Any]) -> None:
        """Parks `conn` for the next read (see _parking) or returns it to its pool."""
        if not self._parking.park(node, conn):
            await self.pools[node].putconn(conn)

    async def _return_parked(self, node: str, conns: List[psycopg.AsyncConnection[Any]],
                             close: bool = False) -> None:
        for conn in conns:
            if close:
                await conn.close()
            await self.pools[node].putconn(conn)

    async def _sweep(self, node: str) -> None:
        """After each probe of `node` (its prober task): its connections parked a while go back
        to the pool."""
        await self._return_parked(node, self._parking.take_stale(node, CHECK_IDLE_S))

    async def _fail_async(self, node: str, conn: Any, exc: BaseException, may_commit: bool = False) -> Failure:
        """_fail, then (a lost node) its parked connections closed and returned to the pool."""
        kind = self._fail(node, conn, exc, may_commit)
        if kind in (Failure.LOST, Failure.IN_DOUBT):
            await self._return_parked(node, self._parking.take_all(node), close=True)
        return kind

    def _fail(self, node: str, conn: Any, exc: BaseException, may_commit: bool) -> Failure:
        kind = classify(exc, conn, may_commit)
        if kind in (Failure.LOST, Failure.IN_DOUBT):
            self.core.mark_down(node, str(exc).strip() or type(exc).__name__)
        return kind

    # ------------------------------------------------------------------ routing
    async def _route(self, session: Optional[Session], level: Consistency, max_staleness_ms: Optional[float],
                     wait_for_replica_ms: Optional[_base.WaitMs], routed: Any = None) -> Any:
        d = self.core.route_read(session, level, max_staleness_ms) if routed is None else routed
        if self._prober is None or d.reason != _core.Reason.NO_REPLICA_CAUGHT_UP:
            return d
        wait_ms = self.core.catch_up_ms(self._wait_ms if wait_for_replica_ms is None else wait_for_replica_ms)
        if wait_ms <= 0:
            return d
        self.core.count("waits")
        deadline = time.monotonic() + wait_ms / 1000.0
        replicas = self.core.topology.replica_names()
        while time.monotonic() < deadline:
            self._prober.probe_now(replicas)
            await asyncio.sleep(_base.PROBE_GAP_S)
            d = self.core.route_read(session, level, max_staleness_ms)
            if d.reason != _core.Reason.NO_REPLICA_CAUGHT_UP:
                if not d.to_primary:
                    self.core.count("waits_served_by_replica")
                return d
        return d

    def read(self, session: Optional[Session] = None, *, consistency: ConsistencyLike = "read_your_writes",
             max_staleness_ms: Optional[float] = None,
             wait_for_replica_ms: Optional[_base.WaitMs] = None) -> AsyncContextManager[psycopg.AsyncConnection[Any]]:
        """``async with router.read(session) as conn``: a pooled connection to the node
        the router picks for this read, for the duration of the block.

        session: the caller's replikit.Session (None: one that never wrote). consistency: a
        replikit.Consistency or its lower-case name. max_staleness_ms: the bound of a
        bounded_staleness read. wait_for_replica_ms: how long a read no replica covers yet may wait
        for one before the primary serves it ("auto", or ms; None or negative: the router's
        option).

        Monotonic/Causal reads with a session record what they saw (one round trip after the
        block, on the same connection). The routing decision is ``last_route``."""
        # As ConnectionRouter.read: for subclasses that override read() and call it through super().
        return self._fast_read(session, consistency=consistency, max_staleness_ms=max_staleness_ms,
                               wait_for_replica_ms=wait_for_replica_ms)

    async def _lease_read(self, session: Optional[Session], level: Consistency, max_staleness_ms: Optional[float],
                          wait_for_replica_ms: Optional[_base.WaitMs],
                          routed: Any = None) -> Tuple[str, psycopg.AsyncConnection[Any]]:
        """Leases a connection for a read: `routed` (the fast path's decision, not recorded) is acted
        on first; a node whose connection cannot be had is routed around."""
        for attempt in range(len(self.pools) + 1):
            d = await self._route(session, level, max_staleness_ms, wait_for_replica_ms if attempt == 0 else 0,
                                  routed if attempt == 0 else None)
            node = d.node
            if node is None:
                self._record(d)
                raise _core.ConnectionError(f"no node can serve this read ({d.reason.name.lower()}; "
                                            f"the primary '{self.core.primary}' is down)")
            conn = await self._acquire(node)
            if conn is not None:
                if node == self._primary and session is not None and level in _OBSERVING:
                    await self._await_floor(node, conn, session)
                self._record(d)
                self._path.last_route = d
                return node, conn
            self.core.count("read_retries")
        raise _core.ConnectionError("no node can serve this read: connections lost")  # pragma: no cover

    async def _await_floor(self, node: str, conn: psycopg.AsyncConnection[Any], session: Session) -> None:
        """As ConnectionRouter._await_floor."""
        floor = self.core.floors.get(session)
        if floor is None:
            return
        deadline = time.monotonic() + self.core.floor_wait_s
        cur = _base.tuple_cursor(conn)
        try:
            for attempt in range(1_000_000):
                await cur.execute(_base.SNAPSHOT_SQL)
                row = await cur.fetchone()
                snapshot = _floor.parse_snapshot(row[0] if row else None)
                if snapshot is not None and _floor.floor_covered(floor, snapshot):
                    self.core.floors.clear(session)
                    return
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(50e-6 if attempt < 10 else 500e-6)
        except BaseException as exc:
            await self._fail_async(node, conn, exc)
            await self._release(node, conn)
            raise
        await self._release(node, conn)
        raise _floor.floor_timeout(self.core.floor_wait_s)

    @contextlib.asynccontextmanager
    async def write(self, session: Optional[Session] = None) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """As ConnectionRouter.write."""
        d = self.core.router.route_write()
        if d.node is None:
            raise _core.ConnectionError(f"the primary '{self.core.primary}' is down: nothing was sent")
        node = d.node
        conn = await self._acquire(node)
        assert conn is not None  # the primary is never re-routed
        self.core.count("writes")
        try:
            try:
                await _base.tuple_cursor(conn).execute("BEGIN")
                yield conn
            except BaseException as exc:
                if await self._fail_async(node, conn, exc) not in (Failure.LOST, Failure.IN_DOUBT):
                    with contextlib.suppress(psycopg.Error):
                        await conn.rollback()
                raise
            lsn = await self._commit(node, conn)
            if session is not None:
                session.record_write(lsn)
        finally:
            await self._release(node, conn)

    async def _commit(self, node: str, conn: psycopg.AsyncConnection[Any]) -> Optional[_core.Lsn]:
        """As ConnectionRouter._commit."""
        status = conn.pgconn.transaction_status
        if status == psycopg.pq.TransactionStatus.INERROR:
            await conn.rollback()
            raise _core.InvalidArgument("the transaction was aborted by an earlier error and rolled "
                                        "back: nothing it did was committed")
        sql = COMMIT_LSN_SQL if status == psycopg.pq.TransactionStatus.IDLE else _base.COMMIT_AND_LSN_SQL
        cur = _base.simple_cursor(conn, psycopg.AsyncClientCursor)
        try:
            await cur.execute(sql)
        except psycopg.Error as exc:
            if await self._fail_async(node, conn, exc, True) == Failure.IN_DOUBT:
                raise _core.CommitUnknown(f"node '{node}': connection lost during COMMIT; it may or "
                                          f"may not have committed: {exc}") from exc
            raise
        except _core.TimeoutError as exc:  # the client-side bound closed the connection
            raise _core.CommitUnknown(f"node '{node}': no answer to COMMIT within statement_timeout_ms + "
                                      f"query_grace_ms; it may or may not have committed: {exc}") from exc
        while cur.description is None and cur.nextset():
            pass
        row = await cur.fetchone() if cur.description is not None else None
        return None if row is None else _base.end_lsn(*row)

    # ------------------------------------------------------------------ state
    @property
    def last_route(self) -> Optional[_core.Decision]:
        """The routing Decision of the latest read the calling asyncio task leased through this
        router (None before its first), whatever other tasks read meanwhile. Kept in a context
        variable (one for every router: a router gone leaves nothing in a task past the task's
        next new route): a task starts with its creator's latest, and what it reads stays its
        own. Each read's session and level are its own."""
        return self._path.last_route

    def stats(self) -> Dict[str, int]:
        """Counters since construction (DatabaseStats' names)."""
        return self.core.stats()

    def pool_stats(self) -> Dict[str, Dict[str, int]]:
        """As ConnectionRouter.pool_stats (with `router_idle`)."""
        parked = self._parking.counts()
        return {name: dict(pool.get_stats(), router_idle=parked[name]) for name, pool in self.pools.items()}

    def nodes(self) -> List[Dict[str, Any]]:
        """Each node as the prober and the lag tracker see it."""
        return self.core.nodes()

    async def wait_probes(self, count: int = 1, timeout_ms: float = 5000.0) -> bool:
        """True when every node completed `count` more probes within `timeout_ms`."""
        if self._prober is None:
            return False
        return await self._prober.wait(count, timeout_ms / 1000.0)

    async def _close_pools(self) -> None:
        for pool in self.pools.values():
            await pool.close()

    async def close(self) -> None:
        """Stops the prober tasks and closes every pool."""
        if self._closed:
            return
        self._closed = True
        self._parking.closed = True
        self._path.close()
        if self._prober is not None:
            await self._prober.close()
        for name in self.pools:
            await self._return_parked(name, self._parking.take_all(name))
        await self._close_pools()

    async def __aenter__(self) -> "AsyncConnectionRouter":
        return await self.open()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()


# read() as defined here, taken once: the builtin stands in for it only, not for a subclass's
# override nor for a stand-in patched onto the class (unittest.mock.patch.object) before the
# router is made.
_LIBRARY_READ = AsyncConnectionRouter.read
