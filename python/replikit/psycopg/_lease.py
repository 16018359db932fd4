"""The read leases of the routers: `with router.read(...) as conn` and its asyncio twin.

This is the per-read path (the benchmark measures it against psycopg used directly), so its
common case (a replica chosen at once, a connection idle in the router and used within
CHECK_IDLE_S) runs in the core: a router's `read` is a builtin over its ReadPath
(ReadPath.fast_read, cpp/bindings/read_lease.cpp) whose lease routes, takes the parked
connection and records the decision on entry, and counts the read and parks the connection on
exit, without a Python frame. Everything else is here, in the Python leases the builtin falls
back on through the hooks below: waits for a replica, the primary, a pool lease, a connection
idle a while (its socket checked first), failures (classified; a lost node marked down) and
Monotonic/Causal observations. ConnectionRouter.read and AsyncConnectionRouter.read (the
methods, which serve subclasses that override read()) return the builtin's lease too. A read is
counted once, as served or as failed."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Optional, TypeVar

import psycopg

from .. import _core
from .._core import Consistency, Session
from . import _base
from ._base import CHECK_IDLE_S, OBSERVE_SQL, Core

if TYPE_CHECKING:  # pragma: no cover
    from .aio import AsyncConnectionRouter
    from .sync import ConnectionRouter

OBSERVING = (Consistency.MONOTONIC, Consistency.CAUSAL)
new_lease = object.__new__  # a lease without an __init__ call: read() fills its slots


class ReadLease:
    """`with router.read(...) as conn` (see ConnectionRouter.read): on enter the routed node's
    connection; on exit Monotonic/Causal reads observe what they saw, the read is counted, a
    failure classified, and the connection parked for the next read or returned to its pool."""

    __slots__ = ("router", "session", "level", "max_staleness_ms", "wait_for_replica_ms", "observe", "routed", "node",
                 "conn")
    router: "ConnectionRouter"
    session: Optional[Session]
    level: Consistency
    max_staleness_ms: Optional[float]
    wait_for_replica_ms: Optional[_base.WaitMs]
    observe: bool  # a Monotonic/Causal read with a session
    routed: Any  # the fast path's decision when it routed but leased nothing (None: not routed yet)
    node: str
    conn: psycopg.Connection[Any]

    def __enter__(self) -> psycopg.Connection[Any]:
        router = self.router
        routed = self.routed
        if routed is None:
            # The common case in one call (see _core.ReadPath.enter); else the general path acts
            # on the decision that call made (routing once per read keeps the spread).
            leased = router._enter(self.session, self.level, self.max_staleness_ms)
            if type(leased) is tuple:
                self.node, self.conn = leased
                return self.conn
            routed = leased
        try:
            self.node, self.conn = router._lease_read(self.session, self.level, self.max_staleness_ms,
                                                      self.wait_for_replica_ms, routed)
        except BaseException:
            router.core.count_failed_read()
            raise
        return self.conn

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        router, conn, node = self.router, self.conn, self.node
        if exc is None and not self.observe:
            if not router._leave(node, conn):  # counted; parked unless it must go back to the pool
                router.pools[node].putconn(conn)
            return
        try:
            if exc is None and self.session is not None:  # an observing read
                row = _base.tuple_cursor(conn).execute(OBSERVE_SQL).fetchone()
                if row is not None:
                    router.core.observe(self.session, row, node)
        except BaseException as failure:
            exc = failure
            raise
        finally:
            if exc is not None:
                router.core.count_failed_read()
                router._fail(node, conn, exc, False)
                router.pools[node].putconn(conn)  # after an error the pool judges the connection
            else:
                router._release(node, conn)
        if exc is None:
            router.core.count_read(node)


class AsyncReadLease:
    """`async with router.read(...) as conn` (see ReadLease)."""

    __slots__ = ("router", "session", "level", "max_staleness_ms", "wait_for_replica_ms", "observe", "routed", "node",
                 "conn")
    router: "AsyncConnectionRouter"
    session: Optional[Session]
    level: Consistency
    max_staleness_ms: Optional[float]
    wait_for_replica_ms: Optional[_base.WaitMs]
    observe: bool
    routed: Any
    node: str
    conn: psycopg.AsyncConnection[Any]

    async def __aenter__(self) -> psycopg.AsyncConnection[Any]:
        router = self.router
        routed = self.routed
        if routed is None:
            leased = router._enter(self.session, self.level, self.max_staleness_ms)
            if type(leased) is tuple:
                self.node, self.conn = leased
                return self.conn
            routed = leased
        try:
            self.node, self.conn = await router._lease_read(self.session, self.level, self.max_staleness_ms,
                                                            self.wait_for_replica_ms, routed)
        except BaseException:
            router.core.count_failed_read()
            raise
        return self.conn

    async def __aexit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        router, conn, node = self.router, self.conn, self.node
        if exc is None and not self.observe:
            if not router._leave(node, conn):
                await router.pools[node].putconn(conn)
            return
        try:
            if exc is None and self.session is not None:  # an observing read
                cur = _base.tuple_cursor(conn)
                await cur.execute(OBSERVE_SQL)
                row = await cur.fetchone()
                if row is not None:
                    router.core.observe(self.session, row, node)
        except BaseException as failure:
            exc = failure
            raise
        finally:
            if exc is not None:
                router.core.count_failed_read()
                await router._fail_async(node, conn, exc)
                await router.pools[node].putconn(conn)  # after an error the pool judges the connection
            else:
                await router._release(node, conn)
        if exc is None:
            router.core.count_read(node)


def read_path(core: Core, parking: Any) -> _core.ReadPath:
    """The router's ReadPath: its core's router, its parked connections and read counters."""
    return _core.ReadPath(core.router, core.primary, parking.lists,
                          (core._reads, core._on_primary, core._on_replicas), parking.enabled, CHECK_IDLE_S)


# ---- the hooks of the routers' read() in the core (ReadPath.fast_read): their general path
def slow_lease(router: "ConnectionRouter", session: Optional[Session], level: Consistency,
               max_staleness_ms: Optional[float], wait_for_replica_ms: Optional[_base.WaitMs],
               routed: Any = None) -> ReadLease:
    """The Python lease of a read the core's fast path did not serve (entered by the caller);
    `routed`: the decision the fast path made for it, acted on instead of routing again."""
    return _fill(new_lease(ReadLease), router, session, level, max_staleness_ms, wait_for_replica_ms, routed)


def slow_lease_async(router: "AsyncConnectionRouter", session: Optional[Session], level: Consistency,
                     max_staleness_ms: Optional[float], wait_for_replica_ms: Optional[_base.WaitMs],
                     routed: Any = None) -> AsyncReadLease:
    """As slow_lease, for `async with`."""
    return _fill(new_lease(AsyncReadLease), router, session, level, max_staleness_ms, wait_for_replica_ms, routed)


_L = TypeVar("_L", ReadLease, AsyncReadLease)


def _fill(lease: _L, router: Any, session: Optional[Session], level: Consistency,
          max_staleness_ms: Optional[float], wait_for_replica_ms: Optional[_base.WaitMs], routed: Any) -> _L:
    lease.router = router
    lease.session = session
    lease.level = level
    lease.max_staleness_ms = max_staleness_ms
    lease.wait_for_replica_ms = wait_for_replica_ms
    lease.observe = session is not None and level in OBSERVING
    lease.routed = routed
    return lease


def finish(router: "ConnectionRouter", session: Optional[Session], level: Consistency, node: str,
           conn: psycopg.Connection[Any], exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
    """The end of a read the core's fast path leased that failed or observes: as ReadLease's."""
    lease = slow_lease(router, session, level, None, None)
    lease.node = node
    lease.conn = conn
    lease.__exit__(exc_type, exc, tb)


async def finish_async(router: "AsyncConnectionRouter", session: Optional[Session], level: Consistency, node: str,
                       conn: psycopg.AsyncConnection[Any], exc_type: Any, exc: Optional[BaseException],
                       tb: Any) -> None:
    """As finish, for `async with`."""
    lease = slow_lease_async(router, session, level, None, None)
    lease.node = node
    lease.conn = conn
    await lease.__aexit__(exc_type, exc, tb)


def give_back(router: "ConnectionRouter", node: str, conn: psycopg.Connection[Any]) -> None:
    """A connection the core's fast path may not park: back to its pool."""
    router.pools[node].putconn(conn)


async def give_back_async(router: "AsyncConnectionRouter", node: str, conn: psycopg.AsyncConnection[Any]) -> None:
    """As give_back, for `async with`."""
    await router.pools[node].putconn(conn)


_CHECKS = dict(level_of=_base.level_of, wait_ms_of=_base.wait_ms_of, OBSERVING=OBSERVING,
               DEFAULT_LEVEL=Consistency.READ_YOUR_WRITES)  # read()'s argument checks and default
SYNC_HOOKS = SimpleNamespace(slow_lease=slow_lease, finish=finish, give_back=give_back, **_CHECKS)
ASYNC_HOOKS = SimpleNamespace(slow_lease=slow_lease_async, finish=finish_async, give_back=give_back_async, **_CHECKS)
