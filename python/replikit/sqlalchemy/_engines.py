"""One SQLAlchemy engine per node (psycopg driver, SQLAlchemy's own pool) and the routing core
that picks among them: the same Topology, LagTracker, Router and prober threads as
replikit.psycopg, so decisions, reasons and counters read the same."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.rows import tuple_row
from sqlalchemy import event, util
from sqlalchemy.engine import URL, Engine, create_engine, make_url

from .. import _core
from .._core import Consistency, DatabaseOptions, Session
from ..psycopg import _base
from ..psycopg._base import COMMIT_LSN_SQL, ConsistencyLike, Core, Failure, argument_error, classify, end_lsn
from ..psycopg.sync import _Prober
from . import _observe

# The pooled connection's info key: the replikit Session that a primary transaction's commit is
# recorded into (set when a RoutedSession begins on the primary, taken by the commit).
SINK = "replikit_session"
# The commit and its LSN in one round trip (one simple-protocol message, as replikit.psycopg's
# write path): whether the transaction wrote (a read-only one records nothing), the COMMIT,
# then the insert LSN, which is >= the end of the commit record.
COMMIT_SQL = "SELECT pg_current_xact_id_if_assigned() IS NOT NULL; COMMIT; " + COMMIT_LSN_SQL
_DRIVERS = ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg_async")
_await = getattr(util, "await_", None) or getattr(util, "await_only")  # 2.1 / 2.0 name


def _in_greenlet() -> bool:
    from sqlalchemy.util import concurrency
    check = getattr(concurrency, "in_greenlet", None)
    return bool(check()) if check is not None else False

NodeSpec = Union[Tuple[str, str], Mapping[str, Any]]


def _url_of(text: str, argument: str) -> Tuple[URL, Dict[str, Any]]:
    """(SQLAlchemy URL with the psycopg driver, connect_args) from a URL or a libpq DSN."""
    if "://" not in text:
        try:  # libpq keywords as psycopg.connect() keywords (the dialect passes its own conninfo)
            return make_url("postgresql+psycopg://"), conninfo_to_dict(text)
        except psycopg.ProgrammingError as exc:
            raise argument_error(_core.InvalidArgument, argument, f"not a connection string: {exc}") from None
    try:
        url = make_url(text)
    except Exception as exc:  # sqlalchemy.exc.ArgumentError and friends
        raise argument_error(_core.InvalidArgument, argument, f"not a database URL: {exc}") from None
    if url.drivername not in _DRIVERS:
        raise argument_error(_core.InvalidArgument, argument,
                             f"driver {url.drivername!r}: replikit.sqlalchemy needs the psycopg driver "
                             "(postgresql+psycopg://...): the commit LSN is read on the same round trip")
    return url.set(drivername="postgresql+psycopg"), {}


def _split_spec(spec: Any, argument: str) -> Tuple[Dict[str, Any], URL, Dict[str, Any]]:
    """(spec for the routing core with a libpq DSN, engine URL, connect_args)."""
    node, text = _base.node_spec(spec, argument)
    url, connect_args = _url_of(text, argument)
    dsn = text if connect_args else url.set(drivername="postgresql").render_as_string(hide_password=False)
    core_spec = {"name": node.name, "dsn": dsn, "region": node.region, "weight": node.weight,
                 "priority": node.priority}
    return core_spec, url, connect_args


def _commit_rows(cur: Any) -> Tuple[bool, Optional[_core.Lsn]]:
    wrote, lsn = False, None
    if cur.description is not None:
        row = cur.fetchone()
        wrote = bool(row and row[0])
    while cur.nextset():
        if cur.description is not None:
            row = cur.fetchone()
            lsn = None if row is None else end_lsn(*row)
    return wrote, lsn


def _commit_cursor(conn: Any, cls: Any) -> Any:
    """A `cls` (ClientCursor or AsyncClientCursor: the simple query protocol takes several
    statements in one message) of `conn` returning tuples, made once and kept on the connection
    (making a cursor costs about as much client CPU as the commit)."""
    cur = conn.__dict__.get("_replikit_commit_cursor")
    if cur is None or cur.closed:
        cur = cls(conn, row_factory=tuple_row)
        conn._replikit_commit_cursor = cur
    return cur


def _commit_sync(conn: psycopg.Connection[Any]) -> Tuple[bool, Optional[_core.Lsn]]:
    cur = _commit_cursor(conn, psycopg.ClientCursor)
    cur.execute(COMMIT_SQL)
    return _commit_rows(cur)


async def _commit_async(conn: psycopg.AsyncConnection[Any]) -> Tuple[bool, Optional[_core.Lsn]]:
    cur = _commit_cursor(conn, psycopg.AsyncClientCursor)
    await cur.execute(COMMIT_SQL)
    wrote, lsn = False, None
    if cur.description is not None:
        row = await cur.fetchone()
        wrote = bool(row and row[0])
    while cur.nextset():
        if cur.description is not None:
            row = await cur.fetchone()
            lsn = None if row is None else end_lsn(*row)
    return wrote, lsn


class _EnginesBase:
    """What the sync and asyncio forms share: node specs, the routing core, its prober, the
    failure hook and the primary's commit hook."""

    is_async = False

    def __init__(self, primary: NodeSpec, replicas: Sequence[NodeSpec] = (), *,
                 options: Optional[DatabaseOptions] = None,
                 consistency: ConsistencyLike = Consistency.READ_YOUR_WRITES,
                 signer: Optional[Any] = None, replica_isolation_level: Optional[str] = "AUTOCOMMIT",
                 **kwargs: Any) -> None:
        overrides, engine_kwargs = _base.split_kwargs(kwargs)
        opts = _base.build_options(options, overrides)
        if str(engine_kwargs.get("isolation_level", "")).upper() == "AUTOCOMMIT":
            raise argument_error(_core.InvalidArgument, "isolation_level",
                                 "the primary's writes must run in transactions (their commit reads the "
                                 "commit LSN); replicas read in autocommit already (replica_isolation_level)")
        if isinstance(replicas, (str, bytes)) or not isinstance(replicas, Sequence):
            raise argument_error(_core.ArgumentTypeError, "replicas",
                                 f"expected a sequence of nodes, got {type(replicas).__name__}")
        pspec, purl, pargs = _split_spec(primary, "primary")
        rspecs = [_split_spec(r, "replicas") for r in replicas]
        self.consistency = level_of(consistency, "consistency")
        self.signer = signer
        self.core = Core(pspec, [s for s, _, _ in rspecs], opts)
        self.primary = self.core.primary
        timeout = max(2, int(round(opts.connect_timeout_ms / 1000.0)))
        self.engines: Dict[str, Any] = {}
        try:
            for name, url, connect_args, replica in [(self.primary, purl, pargs, False)] + [
                    (s["name"], u, a, True) for s, u, a in rspecs]:
                kw = dict(engine_kwargs)
                kw["connect_args"] = {"connect_timeout": timeout, **connect_args, **kw.get("connect_args", {})}
                if replica and replica_isolation_level is not None:
                    # Reads on a replica need no transaction around them: one round trip each
                    # instead of BEGIN, the read and COMMIT.
                    kw.setdefault("isolation_level", replica_isolation_level)
                self.engines[name] = self._create_engine(url, kw)
                self._listen(name, self._sync_engine(self.engines[name]))
        except BaseException:
            self._dispose_now()
            raise
        self._sync_engines = {n: self._sync_engine(e) for n, e in self.engines.items()}
        self.primary_engine = self._sync_engines[self.primary]
        self._install_commit_hook(self.primary_engine)
        self._prober = _Prober(self.core)
        # The latest read's Decision, whichever session (thread, task) made it: a diagnostic.
        # A session's own is RoutedSession.last_route.
        self.last_route: Optional[Any] = None

    # ------------------------------------------------------------------ engines
    def _create_engine(self, url: URL, kwargs: Dict[str, Any]) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    @staticmethod
    def _sync_engine(engine: Any) -> Engine:
        return getattr(engine, "sync_engine", engine)  # type: ignore[no-any-return]

    def sync_engine(self, node: str) -> Engine:
        """The sync Engine of `node` (what Session.get_bind returns, also under AsyncSession)."""
        return self._sync_engines[node]

    def _listen(self, node: str, engine: Engine) -> None:
        core = self.core

        def on_error(context: Any) -> None:
            # A lost connection takes its node out of routing until the prober's next good probe;
            # the error itself goes on to the caller as SQLAlchemy raises it.
            raw = None
            if context.connection is not None and not context.connection.invalidated:
                fairy = context.connection.connection
                raw = getattr(fairy, "driver_connection", None)
            kind = classify(context.original_exception, raw)
            if context.is_disconnect or kind in (Failure.LOST, Failure.IN_DOUBT):
                core.mark_down(node, str(context.original_exception).strip()
                               or type(context.original_exception).__name__)

        def on_checkin(dbapi_connection: Any, record: Any) -> None:
            record.info.pop(SINK, None)  # a transaction that ended without a commit
            record.info.pop(_observe.OWNER, None)

        event.listen(engine, "handle_error", on_error)
        event.listen(engine, "checkin", on_checkin)
        _observe.install(core, node, engine)

    def _install_commit_hook(self, engine: Engine) -> None:
        """The primary engine's commit reads the commit LSN in the same round trip and records it
        into the replikit Session of the transaction (SINK). SQLAlchemy has no event that runs the
        commit itself, so the engine's own dialect instance (made for this engine alone) gets it."""
        dialect = engine.dialect
        plain = dialect.do_commit
        core = self.core

        def do_commit(dbapi_connection: Any) -> None:
            target = dbapi_connection.info.pop(SINK, None)
            driver = dbapi_connection.driver_connection
            if target is None or driver.pgconn.transaction_status != TransactionStatus.INTRANS:
                plain(dbapi_connection)
                return
            if isinstance(driver, psycopg.Connection):
                wrote, lsn = _commit_sync(driver)
            else:
                wrote, lsn = _await(_commit_async(driver))
            if wrote:
                target.record_write(lsn)
                core.count("writes")

        dialect.do_commit = do_commit  # type: ignore[method-assign]

    # ------------------------------------------------------------------ routing
    def route_read(self, session: Optional[Session], level: Consistency,
                   max_staleness_ms: Optional[float] = None) -> str:
        """The node for one read (recorded and counted): where the core sends it; when no node
        can take it (every one down) the primary, whose engine then raises SQLAlchemy's error."""
        return self._node_of(self._decide_read(session, level, max_staleness_ms))

    def _decide_read(self, session: Optional[Session], level: Consistency,
                     max_staleness_ms: Optional[float]) -> Any:
        """route_read's Decision (recorded and counted; its node None: the primary's engine)."""
        core = self.core
        d = core.route_read(session, level, max_staleness_ms)
        if d.reason == _core.Reason.NO_REPLICA_CAUGHT_UP:
            d = self._wait_for_replica(session, level, max_staleness_ms, d)
        core.router.record(d)
        self.last_route = d
        core.count_read(self._node_of(d))
        return d

    def _node_of(self, d: Any) -> str:
        return d.node if d.node is not None else self.primary

    def _wait_for_replica(self, session: Optional[Session], level: Consistency,
                          max_staleness_ms: Optional[float], d: Any) -> Any:
        """Waits (bounded by wait_for_replica_ms) for a replica to catch up: probes now and routes
        again. Under asyncio the wait awaits asyncio.sleep (get_bind runs in SQLAlchemy's
        greenlet there), so the event loop goes on; outside that greenlet it does not wait."""
        core = self.core
        wait_ms = core.catch_up_ms(core.options.wait_for_replica_ms)
        if self.is_async and not _in_greenlet():
            return d
        sleep = (lambda s: _await(asyncio.sleep(s))) if self.is_async else time.sleep
        return core.wait_for_replica(session, level, max_staleness_ms, d, wait_ms, self._prober.probe_now, sleep)

    # ------------------------------------------------------------------ state
    def stats(self) -> Dict[str, int]:
        """Counters since construction (DatabaseStats' names)."""
        return self.core.stats()

    def nodes(self) -> List[Dict[str, Any]]:
        """Each node as the prober and the lag tracker see it."""
        return self.core.nodes()

    def wait_probes(self, count: int = 1, timeout_ms: float = 5000.0) -> bool:
        """True when every node completed `count` more probes within `timeout_ms`."""
        return self._prober.wait(count, timeout_ms / 1000.0)

    def _dispose_now(self) -> None:
        for engine in self.engines.values():
            self._sync_engine(engine).dispose()


class RoutedEngines(_EnginesBase):
    """One SQLAlchemy ``Engine`` per node (psycopg driver, SQLAlchemy's QueuePool) with replikit's
    routing core over them; hand it to ``routed_sessionmaker``::

        engines = RoutedEngines(("primary", "postgresql+psycopg://app@db0/app"),
                                [("r1", "postgresql+psycopg://app@db1/app")], pool_size=10)
        Session = routed_sessionmaker(engines)

    Nodes: ``(name, url)`` or ``{"name", "dsn", "region", "weight", "priority"}``; a URL with
    the psycopg driver (``postgresql://`` is taken as it) or a libpq DSN. ``options`` / option
    keywords: DatabaseOptions (max_lag_ms, probe_interval_ms, wait_for_replica_ms, policy, ...);
    other keywords go to every ``create_engine`` (pool_size, max_overflow, pool_pre_ping, echo,
    connect_args, ...). Replica engines run reads in autocommit (``replica_isolation_level``,
    None to keep SQLAlchemy's transactions there). ``consistency``: the sessions' default;
    ``signer``: the default TokenSigner of the sessions' tokens."""

    def _create_engine(self, url: URL, kwargs: Dict[str, Any]) -> Engine:
        return create_engine(url, **kwargs)

    def dispose(self) -> None:
        """Stops the probers and disposes every engine's pool."""
        self._prober.close()
        self._dispose_now()

    def __enter__(self) -> "RoutedEngines":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.dispose()


class AsyncRoutedEngines(_EnginesBase):
    """``RoutedEngines`` for asyncio: an ``AsyncEngine`` per node (psycopg's async driver), for
    ``async_routed_sessionmaker``. The prober runs in threads as the sync form's; a read's wait
    for a replica to catch up (wait_for_replica_ms) awaits, it does not block the event loop."""

    is_async = True

    def _create_engine(self, url: URL, kwargs: Dict[str, Any]) -> Any:
        from sqlalchemy.ext.asyncio import create_async_engine
        return create_async_engine(url, **kwargs)

    async def dispose(self) -> None:
        """Stops the probers and disposes every engine's pool."""
        await asyncio.get_running_loop().run_in_executor(None, self._prober.close)
        for engine in self.engines.values():
            await engine.dispose()

    async def __aenter__(self) -> "AsyncRoutedEngines":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.dispose()


_LEVELS: Dict[Any, Consistency] = {c: c for c in Consistency}
_LEVELS.update({c.name.lower(): c for c in Consistency})


def level_of(value: Any, argument: str) -> Consistency:
    """A Consistency from the member or its name (any case); InvalidArgument / ArgumentTypeError
    naming `argument` otherwise."""
    level = _LEVELS.get(value.lower() if isinstance(value, str) else value) if isinstance(
        value, (str, Consistency)) else None
    if level is None:
        if not isinstance(value, (str, Consistency)):
            raise argument_error(_core.ArgumentTypeError, argument,
                                 f"expected a replikit.Consistency or its name, got {type(value).__name__}")
        names = ", ".join(c.name.lower() for c in Consistency)
        raise argument_error(_core.InvalidArgument, argument, f"unknown consistency {value!r} (one of {names})")
    return level
