"""Python helpers around the C++ PostgreSQL backend (``replikit._core.ReplicatedDatabase``).

- ``database_for_cluster(cluster, **options)``: a ReplicatedDatabase over a
  ``replikit.testing.LocalCluster`` (its primary and replicas, with their DSNs).
- ``PsycopgRouter``: replikit routing for psycopg 3 connections. The ReplicatedDatabase keeps
  probing the nodes and tracking lag (in C++, off the GIL); the router hands out psycopg
  connections to the node each read or write should use, and records commit LSNs into the
  session after writes and what monotonic/causal reads saw (their LSN, and on a replica its
  xid floor), so an application keeps its psycopg code and gains read-your-writes, monotonic
  and causal reads over replicas.

Importing this module needs the compiled backend (``replikit._core.HAVE_PG``); psycopg is
imported only when a PsycopgRouter is made.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import warnings
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, Literal, Optional, Tuple, Type, Union

from . import _core, _walend, _xidfloor

if TYPE_CHECKING:  # psycopg is imported when a router is made
    import psycopg

from ._backend import require_pg

require_pg("replikit.pg")

from ._core import ReplicatedDatabase  # noqa: E402  (after the HAVE_PG check)

# replikit.pg is the public face of the backend; this module adds the Python-side helpers.
__all__ = ["ConsistencyName", "PsycopgRouter", "database_for_cluster"]

_OBSERVING = (_core.Consistency.MONOTONIC, _core.Consistency.CAUSAL)

#: A consistency level's name, as ReplicatedDatabase.query and PsycopgRouter.read take it.
ConsistencyName = Literal["eventual", "read_your_writes", "monotonic", "causal", "bounded_staleness", "strong"]


def _argument_error(cls: Union[Type[_core.InvalidArgument], Type[_core.ArgumentTypeError]], argument: str,
                    message: str) -> _core.Error:
    """`cls` (InvalidArgument or ArgumentTypeError) as the C++ core raises it: the message starts
    with the argument's name and `.argument` names it."""
    err = cls(f"{argument}: {message}")
    err.argument = argument
    return err


def database_for_cluster(cluster: Any, dbname: str = "postgres", **options: Any) -> "ReplicatedDatabase":
    """A ReplicatedDatabase over a LocalCluster: its node ``primary`` and every replica.

    ``options`` are ReplicatedDatabase's keyword options (the DatabaseOptions attributes:
    probe_interval_ms, pool_size, wait_for_replica_ms, max_lag_ms, ...).
    """
    replicas = [(name, cluster.dsn(name, dbname)) for name in cluster.replica_names]
    return ReplicatedDatabase(("primary", cluster.dsn("primary", dbname)), replicas, **options)


def _tuple_cursor(conn: Any) -> Any:
    """A cursor returning tuples whatever the connection's row_factory (with dict_row,
    ``row[0]`` would raise KeyError after the commit)."""
    try:
        from psycopg.rows import tuple_row
    except ImportError:  # pragma: no cover - a custom `connect` without psycopg
        return conn
    return conn.cursor(row_factory=tuple_row)


def _transaction_idle(conn: Any) -> bool:
    """psycopg 3: libpq reports no transaction block open (TransactionStatus.IDLE); a local check."""
    try:
        from psycopg.pq import TransactionStatus
    except ImportError:  # pragma: no cover - a custom `connect` without psycopg
        return True
    info = getattr(conn, "info", None)
    if info is None:  # pragma: no cover - not a psycopg connection: nothing to ask
        return True
    status: TransactionStatus = info.transaction_status
    return status == TransactionStatus.IDLE


class PsycopgRouter:
    """Routes psycopg 3 connections with replikit (superseded by ``replikit.psycopg``:
    ConnectionRouter / AsyncConnectionRouter, on psycopg_pool, with its own prober; this class
    stays for code that routes with a ReplicatedDatabase and will be removed in a later release).

    ``db`` supplies routing, lag tracking and node health; this class keeps a small bounded
    pool of psycopg connections per node (autocommit, created lazily with ``connect``)::

        router = PsycopgRouter(db)
        with router.write(session) as conn:          # the primary, in a transaction
            conn.execute("INSERT INTO t VALUES (%s)", (1,))
        # committed; the commit LSN is now in `session`
        with router.read(session) as conn:           # a replica that has the write
            rows = conn.execute("SELECT * FROM t").fetchall()

    Reads accept ``consistency`` like ``ReplicatedDatabase.query`` (the same default). A read
    with ``consistency="monotonic"`` or ``"causal"`` records what it saw (one extra round trip
    after the block): its LSN, and on a replica that replica, so that the session's next reads
    can go back to it (router rule 5), and the transactions the replica's snapshot had
    completed (the session's xid floor). A replica can show a commit before the primary does
    (see the README's note on commit visibility order), so such a read that the primary serves
    first waits until the primary's snapshot has completed that floor (one extra round trip,
    rarely a few; at most ``db.options.statement_timeout_ms / 2``, then ``replikit.TimeoutError``
    with the floor kept and nothing run), as ``db.query`` does. The floor is this router's,
    host-local and bounded (as replikit.psycopg keeps it): keyed by the Session object, so a
    token, a ``Session.copy()`` or a ``merge`` into another Session does not carry it, and
    ``db.query`` does not see it; floors are dropped when the primary changes (a new primary
    reuses xids).
    Reads that complete and writes that commit are counted in ``db.stats()`` and
    ``db.router.counters()``, as those of ``db.query`` and ``db.execute`` are.
    A psycopg ``OperationalError`` inside a block marks the node down (the prober brings it
    back) and is re-raised; retrying is the caller's choice here. A connection that a block
    leaves inside a transaction (``BEGIN`` without ``COMMIT``) is closed, not pooled, which
    rolls that transaction back; session-level ``SET`` leaks to later users of the pooled
    connection, so use ``SET LOCAL`` inside ``write()``.
    """

    def __init__(self, db: "ReplicatedDatabase", *, pool_size: int = 4,
                 acquire_timeout_ms: float = 5000.0, connect: Optional[Callable[..., Any]] = None,
                 acquire_timeout_s: Optional[float] = None, **connect_kwargs: Any):
        if not isinstance(db, ReplicatedDatabase):
            raise _argument_error(_core.ArgumentTypeError, "db",
                                  f"expected a replikit.pg.ReplicatedDatabase, got {type(db).__name__}")
        if not isinstance(pool_size, int) or isinstance(pool_size, bool):
            raise _argument_error(_core.ArgumentTypeError, "pool_size",
                                  f"expected an int, got {type(pool_size).__name__}")
        if not 1 <= pool_size <= 256:
            raise _argument_error(_core.InvalidArgument, "pool_size", f"must be in [1, 256], got {pool_size!r}")
        if acquire_timeout_s is not None:
            if isinstance(acquire_timeout_s, bool) or not isinstance(acquire_timeout_s, (int, float)):
                raise _argument_error(_core.ArgumentTypeError, "acquire_timeout_s",
                                      f"expected a number, got {type(acquire_timeout_s).__name__}")
            warnings.warn("acquire_timeout_s is deprecated; use acquire_timeout_ms", DeprecationWarning,
                          stacklevel=2)
            acquire_timeout_ms = acquire_timeout_s * 1000.0
        if isinstance(acquire_timeout_ms, bool) or not isinstance(acquire_timeout_ms, (int, float)):
            raise _argument_error(_core.ArgumentTypeError, "acquire_timeout_ms",
                                  f"expected a number, got {type(acquire_timeout_ms).__name__}")
        if not 0 < acquire_timeout_ms < float("inf"):
            raise _argument_error(_core.InvalidArgument, "acquire_timeout_ms",
                                  f"must be > 0 and finite, got {acquire_timeout_ms!r}")
        acquire_timeout_s = acquire_timeout_ms / 1000.0
        if connect is None:
            import psycopg  # only needed here

            connect = psycopg.connect
            self._operational_error: Tuple[Type[BaseException], ...] = (psycopg.OperationalError,)
        else:
            self._operational_error = (OSError,)
            try:
                import psycopg

                self._operational_error = (psycopg.OperationalError, OSError)
            except ImportError:  # pragma: no cover
                pass
        self._db = db
        self._connect = connect
        self._connect_kwargs = dict(connect_kwargs)
        self._connect_kwargs.setdefault("autocommit", True)
        self._connect_kwargs.setdefault("connect_timeout", 2)
        self._pool_size = pool_size
        self._acquire_timeout_s = float(acquire_timeout_s)
        self._lock = threading.Lock()
        self._idle: Dict[str, "queue.LifoQueue[Any]"] = {}
        self._open: Dict[str, int] = {}
        self._closed = False
        self._routes = threading.local()  # last_route: each thread's own
        # Sessions' xid floors, of the xids of the primary named (a promoted one reuses xids above
        # what it replayed: its floors start empty, as Session.reconcile drops the C++ floor).
        self._floors = _xidfloor.XidFloors()
        self._floors_primary = db.topology.primary_name
        self._floor_wait_s = db.options.statement_timeout_ms / 2000.0  # as db.query's

    @property
    def last_route(self) -> Optional[Any]:
        """The route (a ``replikit.Route``) of the calling thread's latest ``read()`` through
        this router; None before that thread's first read. Each thread sees its own: another
        thread's reads do not change it."""
        return getattr(self._routes, "route", None)

    @last_route.setter
    def last_route(self, route: Optional[Any]) -> None:
        self._routes.route = route

    # -------------------------------------------------------------- pool
    def _take(self, node: str) -> Any:
        deadline = time.monotonic() + self._acquire_timeout_s
        with self._lock:
            if self._closed:
                raise _core.ConnectionError("PsycopgRouter is closed")
            idle = self._idle.setdefault(node, queue.LifoQueue())
            self._open.setdefault(node, 0)
            if idle.empty() and self._open[node] < self._pool_size:
                self._open[node] += 1
                create = True
            else:
                create = False
        if create:
            try:
                return self._connect(self._db.dsn(node), **self._connect_kwargs)
            except BaseException as exc:
                with self._lock:
                    self._open[node] -= 1
                if isinstance(exc, self._operational_error):
                    self._db.mark_down(node)
                    raise _core.ConnectionError(f"node '{node}': cannot connect: {exc}") from exc
                raise
        try:
            conn = idle.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise _core.TimeoutError(
                f"acquire_timeout_ms: no psycopg connection to node '{node}' became free within "
                f"{self._acquire_timeout_s * 1000.0:g} ms (pool_size {self._pool_size})") from None
        if conn.closed or conn.broken:
            with self._lock:
                self._open[node] -= 1
            return self._take(node)
        return conn

    def _give(self, node: str, conn: Any, healthy: bool) -> None:
        # Only an idle connection is pooled: one left inside a transaction block (a BEGIN in a
        # read() block, an aborted transaction, or a non-autocommit connection) would hand the
        # next user an open transaction whose writes vanish when it is closed. Closing it rolls
        # the transaction back on the server.
        if (healthy and not self._closed and not conn.closed and not conn.broken
                and _transaction_idle(conn)):
            self._idle[node].put(conn)
            return
        with self._lock:
            self._open[node] -= 1
        with contextlib.suppress(Exception):
            conn.close()

    @contextlib.contextmanager
    def _lease(self, node: str) -> Iterator[Any]:
        conn = self._take(node)
        healthy = False
        try:
            yield conn
            healthy = True
        except self._operational_error:
            if conn.broken or conn.closed:
                self._db.mark_down(node)
            else:
                healthy = True
            raise
        except BaseException:
            healthy = not (conn.broken or conn.closed)
            raise
        finally:
            self._give(node, conn, healthy)

    # -------------------------------------------------------------- xid floor
    def _floors_of(self, primary: str) -> _xidfloor.XidFloors:
        """The xid floors of `primary`'s xids (a new primary: none)."""
        with self._lock:
            if primary != self._floors_primary:
                self._floors = _xidfloor.XidFloors()
                self._floors_primary = primary
            return self._floors

    def _await_floor(self, conn: Any, session: _core.Session, floors: _xidfloor.XidFloors) -> None:
        """Before a Monotonic/Causal read on the primary: waits (bounded) until the primary's
        snapshot has completed every transaction the session's replica reads saw."""
        cur = _tuple_cursor(conn)

        def snapshot_text() -> Optional[str]:
            row = cur.execute(_xidfloor.SNAPSHOT_SQL).fetchone()
            if not _transaction_idle(conn):
                # autocommit=False: end the poll's transaction, or a REPEATABLE READ one would
                # poll one frozen snapshot, and the read would run inside it.
                conn.rollback()
            return None if row is None else str(row[0])

        if not _xidfloor.await_floor(floors, session, snapshot_text, time.sleep, self._floor_wait_s):
            raise _xidfloor.floor_timeout(self._floor_wait_s)

    # -------------------------------------------------------------- routing
    @contextlib.contextmanager
    def write(self, session: _core.Session) -> Iterator["psycopg.Connection[Any]"]:
        """A connection to the primary inside a transaction; after it commits, its commit
        LSN is recorded into ``session``."""
        primary = self._db.topology.primary_name
        if not self._db.node(primary).up:
            raise _core.ConnectionError(f"primary '{primary}' is down: nothing was sent")
        with self._lease(primary) as conn:
            with conn.transaction():
                yield conn
            try:
                lsn = _walend.end_lsn(*_tuple_cursor(conn).execute(_walend.COMMIT_LSN_SQL).fetchone())
            except self._operational_error:
                lsn = None  # committed, LSN unknown: resolved later from the prober's samples
            self._db.record_write(session, lsn)

    @contextlib.contextmanager
    def read(self, session: Optional[_core.Session] = None, *,
             consistency: Union[_core.Consistency, ConsistencyName, None] = None,
             max_staleness_ms: Optional[float] = None,
             wait_for_replica_ms: Optional[Union[float, Literal["auto"]]] = None,
             p_consistent: Optional[float] = None,
             within_ms: Optional[float] = None) -> Iterator["psycopg.Connection[Any]"]:
        """A connection to the node replikit routes this read to (see ``last_route``).
        ``consistency``: a replikit.Consistency or its name; None: ReplicatedDatabase's default.
        ``p_consistent``/``within_ms``: the probability target of an EVENTUAL read (see
        ReplicatedDatabase.query); ``within_ms`` None: the default. A monotonic or causal read
        on the primary first waits for the session's xid floor (see the class docstring);
        replikit.TimeoutError if the primary does not show it in time."""
        level: Dict[str, Any] = {} if consistency is None else {"consistency": consistency}
        if within_ms is not None:
            level["within_ms"] = within_ms
        route = self._db.route_read(session, max_staleness_ms=max_staleness_ms,
                                    wait_for_replica_ms=wait_for_replica_ms, p_consistent=p_consistent, **level)
        if route.node is None:
            raise _core.ConnectionError(f"no node can serve this read ({route.reason})")
        self.last_route = route
        observe = session is not None and route.consistency in _OBSERVING
        # Only monotonic/causal reads keep or need a floor: no lock or topology call for the others.
        floors: Optional[_xidfloor.XidFloors] = None
        if observe:
            primary = self._db.topology.primary_name
            floors = self._floors_of(primary)
        with self._lease(route.node) as conn:
            if floors is not None and session is not None and route.node == primary and floors.get(session) is not None:
                self._await_floor(conn, session, floors)
            yield conn
            if observe and session is not None:
                # Not COALESCE(replay, insert): after crash recovery a primary keeps a stale
                # replay LSN (the end of recovery) until a clean restart.
                raw, replica, snapshot, block, segment = _tuple_cursor(conn).execute(_walend.OBSERVE_SQL).fetchone()
                lsn = _walend.end_lsn(raw, block, segment)
                if lsn is None:
                    pass  # no LSN to record (NULL)
                elif replica:
                    # Router rule 5: this session's next reads may come back to this replica.
                    session.observe_replica(lsn, route.node, self._db.topology)
                    # What a read on the primary must see first; a snapshot that does not parse
                    # is dropped (the next primary read then asks only what was kept before).
                    floor = _xidfloor.parse_snapshot(None if snapshot is None else str(snapshot))
                    if floor is not None and floors is not None:
                        floors.merge(session, floor)
                else:
                    session.observe(lsn)
        self._db.record_read(route.node, route.reason)

    def close(self) -> None:
        """Closes every pooled psycopg connection (connections on loan close when returned)."""
        with self._lock:
            self._closed = True
            idle = list(self._idle.items())
        for node, q in idle:
            while True:
                try:
                    conn = q.get_nowait()
                except queue.Empty:
                    break
                with self._lock:
                    self._open[node] -= 1
                with contextlib.suppress(Exception):
                    conn.close()

    def __enter__(self) -> "PsycopgRouter":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

