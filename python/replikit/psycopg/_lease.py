"""The read leases of the routers: `with router.read(...) as conn` and its asyncio twin.

This is the per-read path (the benchmark measures it against psycopg used directly), so it is
written for few calls: classes with __slots__ instead of generator context managers, filled by
the router's read() without an __init__, and the common case (a replica chosen at once, a
connection idle in the router and used within CHECK_IDLE_S) in one call of the core's ReadPath
on entry (route, take the connection, record the decision) and one on exit (count the read,
park the connection). The rest (waits, the primary, a pool lease, a connection idle a while,
whose socket is checked first) takes the router's general path; failures and Monotonic/Causal
observations are handled here as before. A read is counted once, as served or as failed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

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

    __slots__ = ("router", "session", "level", "max_staleness_ms", "wait_for_replica_ms", "observe", "node", "conn")
    router: "ConnectionRouter"
    session: Optional[Session]
    level: Consistency
    max_staleness_ms: Optional[float]
    wait_for_replica_ms: Optional[_base.WaitMs]
    observe: bool  # a Monotonic/Causal read with a session
    node: str
    conn: psycopg.Connection[Any]

    def __enter__(self) -> psycopg.Connection[Any]:
        router = self.router
        # The common case in one call (see _core.ReadPath.enter); else the general path.
        leased = router._enter(self.session, self.level, self.max_staleness_ms)
        if leased is not None:
            self.node, self.conn = leased
            return self.conn
        try:
            self.node, self.conn = router._lease_read(self.session, self.level, self.max_staleness_ms,
                                                      self.wait_for_replica_ms)
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

    __slots__ = ("router", "session", "level", "max_staleness_ms", "wait_for_replica_ms", "observe", "node", "conn")
    router: "AsyncConnectionRouter"
    session: Optional[Session]
    level: Consistency
    max_staleness_ms: Optional[float]
    wait_for_replica_ms: Optional[_base.WaitMs]
    observe: bool
    node: str
    conn: psycopg.AsyncConnection[Any]

    async def __aenter__(self) -> psycopg.AsyncConnection[Any]:
        router = self.router
        leased = router._enter(self.session, self.level, self.max_staleness_ms)
        if leased is not None:
            self.node, self.conn = leased
            return self.conn
        try:
            self.node, self.conn = await router._lease_read(self.session, self.level, self.max_staleness_ms,
                                                            self.wait_for_replica_ms)
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


# ---- the hooks of the sync router's read() in the core (ReadPath.fast_read): its general path
DEFAULT_LEVEL = Consistency.READ_YOUR_WRITES  # read()'s default consistency
level_of = _base.level_of
wait_ms_of = _base.wait_ms_of


def slow_lease(router: "ConnectionRouter", session: Optional[Session], level: Consistency,
               max_staleness_ms: Optional[float], wait_for_replica_ms: Optional[_base.WaitMs]) -> ReadLease:
    """The Python lease of a read the core's fast path did not serve (entered by the caller)."""
    lease: ReadLease = new_lease(ReadLease)
    lease.router = router
    lease.session = session
    lease.level = level
    lease.max_staleness_ms = max_staleness_ms
    lease.wait_for_replica_ms = wait_for_replica_ms
    lease.observe = session is not None and level in OBSERVING
    return lease


def finish(router: "ConnectionRouter", session: Optional[Session], level: Consistency, node: str,
           conn: psycopg.Connection[Any], exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
    """The end of a read the core's fast path leased that failed or observes: as ReadLease's."""
    lease = slow_lease(router, session, level, None, None)
    lease.node = node
    lease.conn = conn
    lease.__exit__(exc_type, exc, tb)


def give_back(router: "ConnectionRouter", node: str, conn: psycopg.Connection[Any]) -> None:
    """A connection the core's fast path may not park: back to its pool."""
    router.pools[node].putconn(conn)
