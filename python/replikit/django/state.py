"""The process's routing state for Django: the routing core (Topology, LagTracker, Router) fed
by a prober thread per node, the request context (its Session and consistency), the execute
wrappers that capture commits and failures on every replikit alias."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import re
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import psycopg
from asgiref.sync import sync_to_async
from django.db import DatabaseError, connections
from django.db.backends.signals import connection_created
from django.db.backends.utils import debug_transaction
from psycopg.pq import TransactionStatus

from .. import _core
from .._core import Consistency, Session
from .. import _xidfloor as _floor
from ..psycopg import _base
from ..psycopg._base import Core, Failure, classify, level_of
from ..psycopg.sync import _Prober
from ..sqltext import is_read_only
from ..web import TokenTransport, _current as _web_current
from . import conf

_OBSERVING = (Consistency.MONOTONIC, Consistency.CAUSAL)
# Transaction and session bookkeeping does not write; a plain read is judged by
# replikit.sqltext (a SELECT calling nextval or taking an advisory lock is not one). Anything
# else (INSERT, UPDATE, DELETE, a WITH that may modify data, DDL, EXPLAIN ANALYZE, ...) counts
# as a write: a statement taken for a write when it was not costs one LSN read, never a stale read.
_BOOKKEEPING = re.compile(r"\s*(SAVEPOINT|RELEASE|ROLLBACK|SET|FETCH|CLOSE|DECLARE|BEGIN|COMMIT)\b", re.IGNORECASE)


def is_write(sql: Any) -> bool:
    """Might `sql` modify data (so its commit must be captured)?"""
    if isinstance(sql, bytes):
        sql = sql.decode(errors="replace")
    elif not isinstance(sql, str):
        sql = str(sql)  # a psycopg sql.Composed and the like
    return _BOOKKEEPING.match(sql) is None and not is_read_only(sql)


@dataclasses.dataclass
class Context:
    """One request's (or one caller's, outside a request) replikit state: its session and the
    consistency its reads use unless a consistency() block says otherwise. Asyncio tasks of one
    request share it; so nothing a task sets for itself alone (consistency(), last_route()) is
    kept here."""

    session: Session
    consistency: Consistency
    max_staleness_ms: Optional[float] = None
    pending: bool = False  # a write committed whose LSN is not read yet


# The Context of the request (the middleware) or use_session() block being run.
_context: contextvars.ContextVar[Optional[Context]] = contextvars.ContextVar("replikit_django", default=None)
# Outside both, the caller's own Context, for the State it was made by: a context variable, so
# each thread has its own in sync code (a thread starts with an empty context, unless Python
# 3.14's thread_inherit_context is on) and each asyncio task its own in async code (a copy of
# its creator's), carried through sync_to_async (asgiref copies the variables there and back).
_own: contextvars.ContextVar[Optional[Tuple["State", Context]]] = contextvars.ContextVar(
    "replikit_django_own", default=None)
# A consistency() block's level, for the Context it was given in: (Context, level,
# max_staleness_ms). A context variable, so each asyncio task (or thread) has its own even when
# tasks share one Context (a request's).
_level: contextvars.ContextVar[Optional[Tuple[Context, Consistency, Optional[float]]]] = contextvars.ContextVar(
    "replikit_django_level", default=None)
# The routing Decision of the latest read, for the Context it was made in; per task and thread as
# _level is.
_route: contextvars.ContextVar[Optional[Tuple[Context, Any]]] = contextvars.ContextVar(
    "replikit_django_route", default=None)


def _end(var: "contextvars.ContextVar[Any]", token: "contextvars.Token[Any]", mine: Any) -> None:
    """Ends a block that set `var` to `mine` with `token`. A block may end in another context
    than it began in (a generator resumed through sync_to_async, closed by another task or
    thread): `var` there goes back to what the block found only if it still shows the block's
    value (a later block of that context keeps its own)."""
    try:
        var.reset(token)
    except ValueError:
        if var.get() is mine:
            var.set(token.old_value if token.old_value is not contextvars.Token.MISSING else None)


def level_in(ctx: Context) -> Tuple[Consistency, Optional[float]]:
    """The consistency (and max staleness) the current caller's reads use in `ctx`."""
    override = _level.get()
    if override is not None and override[0] is ctx:
        return override[1], override[2]
    return ctx.consistency, ctx.max_staleness_ms


def _conninfo(alias: str) -> str:
    """A libpq connection string for a Django alias, from the backend's own connection params."""
    params = connections[alias].get_connection_params()
    known = {d.keyword.decode() for d in psycopg.pq.Conninfo.get_defaults()}
    keep = {k: v for k, v in params.items() if k in known and v not in (None, "")}
    return psycopg.conninfo.make_conninfo(**keep)


class State:
    """The routing state of this process (one per settings: get_state())."""

    def __init__(self, config: conf.Config) -> None:
        self.config = config
        node = config.node_of
        self.core = Core((node[config.primary], _conninfo(config.primary)),
                         [(node[a], _conninfo(a)) for a in config.replicas], config.options)
        self.transport = TokenTransport(config.signing_key, **config.transport)
        self._wait_ms = config.options.wait_for_replica_ms
        self._wrappers: Dict[str, Callable[..., Any]] = {a: self._wrapper(a) for a in node}
        self.prober = _Prober(self.core)
        connection_created.connect(self._on_connection_created, dispatch_uid="replikit.django")
        for alias in node:  # connections already open in this thread
            self._install(connections[alias])

    def close(self) -> None:
        """Stops the probers and removes the execute wrappers of this thread's connections."""
        connection_created.disconnect(dispatch_uid="replikit.django")
        self.prober.close()
        for alias, wrapper in self._wrappers.items():
            wrappers = connections[alias].execute_wrappers
            if wrapper in wrappers:
                wrappers.remove(wrapper)
            for name in ("_commit", "_rollback"):
                connections[alias].__dict__.pop(name, None)

    # ------------------------------------------------------------------ context
    def context(self) -> Context:
        """The current request's (or use_session block's) Context; outside both, the caller's
        own: the thread's in sync code, the asyncio task's in async code (with what it runs
        through sync_to_async; a task inherits its creator's as it does context variables)."""
        ctx = _context.get()
        if ctx is not None:
            return ctx
        own = _own.get()
        if own is None or own[0] is not self:
            own = (self, Context(Session(), self.config.consistency))
            _own.set(own)
        return own[1]

    def resolve(self, ctx: Context) -> None:
        """Records the pending write's commit LSN: the primary's insert LSN now, at or after the
        commit's end (one round trip for every write since the last read or response)."""
        if not ctx.pending:
            return
        ctx.pending = False
        try:
            with connections[self.config.primary].cursor() as cur:
                cur.execute(_base.COMMIT_LSN_SQL)
                row = cur.fetchone()
            ctx.session.record_write(_base.end_lsn(*row) if row else None)
        except DatabaseError:
            ctx.session.record_write(None)  # unknown: its reads go to the primary (router rule 3)

    # ------------------------------------------------------------------ routing
    def alias_for_read(self) -> str:
        """The alias of the node this read goes to (the primary's when no node can serve it:
        Django's connection then raises its usual OperationalError)."""
        ctx = self.context()
        primary = connections[self.config.primary]
        # (.autocommit, not get_autocommit(): that would connect to the primary for every read)
        if primary.in_atomic_block or (primary.connection is not None and not primary.autocommit):
            # Inside a transaction on the primary: its reads see its own uncommitted writes and
            # locks only there.
            d = self.core.route_read(ctx.session, Consistency.STRONG, None)
        else:
            self.resolve(ctx)
            d = self._route(ctx)
        self.core.router.record(d)
        _route.set((ctx, d))
        if d.node is None:
            return self.config.primary
        if d.node == self.core.primary and level_in(ctx)[0] in _OBSERVING:
            self._await_floor(ctx.session)
        self.core.count_read(d.node)
        alias = self.config.alias_of[d.node]
        self._install(connections[alias])
        return alias

    def alias_for_write(self) -> str:
        """The primary's alias (with this thread's wrappers in place, also on a connection
        opened before this State was made)."""
        alias = self.config.primary
        self._install(connections[alias])
        return alias

    def _await_floor(self, session: Session) -> None:
        """Before a Monotonic/Causal read on the primary: waits (bounded) until the primary's
        snapshot has completed what the session's replica reads saw (as the psycopg adapter
        does: a primary shows a commit only after an async standby may have)."""
        if self.core.floors.get(session) is None:
            return
        with connections[self.config.primary].cursor() as cur:

            def snapshot_text() -> Optional[str]:
                cur.execute(_base.SNAPSHOT_SQL)
                row = cur.fetchone()
                return row[0] if row else None

            if not self.core.await_floor(session, snapshot_text, time.sleep):
                raise _floor.floor_timeout(self.core.floor_wait_s)

    def _route(self, ctx: Context) -> Any:
        core = self.core
        level, max_staleness_ms = level_in(ctx)
        d = core.route_read(ctx.session, level, max_staleness_ms)
        if d.reason != _core.Reason.NO_REPLICA_CAUGHT_UP:
            return d
        return core.wait_for_replica(ctx.session, level, max_staleness_ms, d,
                                     core.catch_up_ms(self._wait_ms), self.prober.probe_now, time.sleep)

    # ------------------------------------------------------------------ wrappers
    def _on_connection_created(self, sender: Any, connection: Any, **kwargs: Any) -> None:
        self._install(connection)

    def _install(self, connection: Any) -> None:
        wrapper = self._wrappers.get(connection.alias)
        if wrapper is not None and wrapper not in connection.execute_wrappers:
            connection.execute_wrappers.append(wrapper)
        if connection.alias == self.config.primary and "_commit" not in connection.__dict__:
            self._install_commit(connection)

    def _install_commit(self, db: Any) -> None:
        """The primary's commit of a transaction that wrote sends `COMMIT; SELECT
        pg_current_wal_insert_lsn()` as one message (as the psycopg adapter's write does) and
        records the LSN into the current session: no round trip of its own."""
        plain_commit, plain_rollback = type(db)._commit.__get__(db), type(db)._rollback.__get__(db)

        def _commit() -> Any:
            raw = db.connection
            if not db.__dict__.pop("_replikit_wrote", False):
                return plain_commit()
            ctx = self.context()
            if raw is None or raw.pgconn.transaction_status != TransactionStatus.INTRANS:
                ctx.pending = True  # not in a transaction block: read the LSN later
                return plain_commit()
            cur = _base.simple_cursor(raw, psycopg.ClientCursor)
            with debug_transaction(db, "COMMIT"), db.wrap_database_errors:
                try:
                    cur.execute(_base.COMMIT_AND_LSN_SQL)
                except psycopg.Error as exc:
                    if classify(exc, raw, True) == Failure.IN_DOUBT:
                        ctx.session.record_write(None)  # it may have committed: reads to the primary
                        self.core.mark_down(self.config.node_of[db.alias], str(exc).strip())
                    raise
                while cur.description is None and cur.nextset():
                    pass
                row = cur.fetchone() if cur.description is not None else None
            ctx.session.record_write(_base.end_lsn(*row) if row else None)

        def _rollback() -> Any:
            db.__dict__.pop("_replikit_wrote", None)
            return plain_rollback()

        db._commit, db._rollback = _commit, _rollback

    def _wrapper(self, alias: str) -> Callable[..., Any]:
        node = self.config.node_of[alias]
        on_primary = alias == self.config.primary

        def replikit_wrapper(execute: Callable[..., Any], sql: Any, params: Any, many: bool,
                             context: Dict[str, Any]) -> Any:
            db = context["connection"]
            try:
                result = execute(sql, params, many, context)
            except DatabaseError as exc:
                self._failed(node, db, exc)
                raise
            ctx = self.context()
            if on_primary and is_write(sql):
                self._wrote(alias, db, ctx)
            elif level_in(ctx)[0] in _OBSERVING:
                self._observe(node, db, ctx)
            return result

        return replikit_wrapper

    def _wrote(self, alias: str, db: Any, ctx: Context) -> None:
        self.core.count("writes")
        if db.in_atomic_block or not db.get_autocommit():
            db._replikit_wrote = True  # its commit reads the LSN in the same round trip
        else:
            ctx.pending = True  # committed already: the LSN is read once, when first needed

    def mark_write(self) -> None:
        """Counts what the current transaction on the primary did as a write (a statement that
        writes without looking like one, e.g. SELECT of a function that inserts)."""
        db = connections[self.config.primary]
        self._wrote(self.config.primary, db, self.context())

    def _observe(self, node: str, db: Any, ctx: Context) -> None:
        """After a Monotonic/Causal read: what it saw, on the same connection (as the psycopg
        adapter does)."""
        try:
            row = _base.tuple_cursor(db.connection).execute(_base.OBSERVE_SQL).fetchone()
        except psycopg.Error:
            return  # the read itself succeeded; the next one routes without this hint
        if row is not None:
            self.core.observe(ctx.session, row, node)

    def _failed(self, node: str, db: Any, exc: BaseException) -> None:
        cause = exc.__cause__ if isinstance(exc.__cause__, psycopg.Error) else exc
        if classify(cause, db.connection) in (Failure.LOST, Failure.IN_DOUBT):
            self.core.mark_down(node, str(cause).strip() or type(cause).__name__)

    # ------------------------------------------------------------------ state
    def nodes(self) -> List[Dict[str, Any]]:
        """Each node as the prober and the lag tracker see it, with its Django alias."""
        rows = self.core.nodes()
        for row in rows:
            row["alias"] = self.config.alias_of[row["name"]]
        return rows

    def stats(self) -> Dict[str, int]:
        """Counters since the state was made (DatabaseStats' names)."""
        return self.core.stats()

    def wait_probes(self, count: int = 1, timeout_ms: float = 5000.0) -> bool:
        """True when every node completed `count` more probes within `timeout_ms`."""
        return self.prober.wait(count, timeout_ms / 1000.0)


_state: Optional[State] = None
_lock = threading.Lock()


def get_state() -> State:
    """The process's State, made from settings.REPLIKIT on first use."""
    global _state
    state = _state
    if state is not None:
        return state
    with _lock:
        if _state is None:
            _state = State(get_config())
        return _state


_config: Optional[conf.Config] = None


def get_config() -> conf.Config:
    """settings.REPLIKIT, checked (without starting the probers: writes and migrations need
    no more)."""
    global _config
    state = _state
    if state is not None:
        return state.config
    config = _config
    if config is None:
        config = _config = conf.load()
    return config


def reset_state() -> None:
    """Closes the State (probers stop); the next get_state() reads the settings again."""
    global _state, _config
    with _lock:
        state, _state, _config = _state, None, None
    if state is not None:
        state.close()


class SessionScope:
    """A block whose queries are routed for one Context's session (use_session, the middleware):
    ``with`` it in sync code, ``async with`` it in async code. Its end (without an exception)
    records the session's pending write: in async code through sync_to_async, since that is a
    query and Django makes none on the event loop."""

    __slots__ = ("state", "ctx", "_tokens")

    def __init__(self, state: State, ctx: Context) -> None:
        self.state = state
        self.ctx = ctx
        self._tokens: Optional[Tuple["contextvars.Token[Optional[Context]]",
                                     "contextvars.Token[Optional[Session]]"]] = None

    def _enter(self) -> Session:
        if self._tokens is not None:
            raise RuntimeError("a replikit session scope is entered once at a time")
        self._tokens = (_context.set(self.ctx), _web_current.set(self.ctx.session))
        return self.ctx.session

    def _leave(self) -> None:
        tokens, self._tokens = self._tokens, None
        if tokens is not None:
            _end(_context, tokens[0], self.ctx)
            _end(_web_current, tokens[1], self.ctx.session)

    def __enter__(self) -> Session:
        return self._enter()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self.state.resolve(self.ctx)
        finally:
            self._leave()

    async def __aenter__(self) -> Session:
        return self._enter()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None and self.ctx.pending:
                await sync_to_async(self.state.resolve)(self.ctx)
        finally:
            self._leave()


def use_session(session: Optional[Session] = None, *, consistency: Any = None,
                max_staleness_ms: Optional[float] = None) -> SessionScope:
    """``with use_session(...) as session:`` (``async with`` in async code): routes the block's
    queries for `session` (a new one when None), as the middleware does for a request; the
    session's writes are recorded when the block ends."""
    state = get_state()
    if session is None:
        session = Session()
    elif not isinstance(session, Session):
        err = _core.ArgumentTypeError(f"session: expected a replikit.Session, got {type(session).__name__}")
        err.argument = "session"
        raise err
    level = state.config.consistency if consistency is None else level_of(consistency)
    return SessionScope(state, Context(session, level, max_staleness_ms))


@contextlib.contextmanager
def consistency(level: Any, *, max_staleness_ms: Optional[float] = None) -> Iterator[None]:
    """The block's reads use `level` (a Consistency or its name) in the current session: the
    reads of this thread, or in async code of this asyncio task (and what it runs through
    sync_to_async), not those of other tasks, even of the same request."""
    mine = (get_state().context(), level_of(level), max_staleness_ms)
    token = _level.set(mine)
    try:
        yield
    finally:
        _end(_level, token, mine)


def mark_write() -> None:
    """The current transaction on the primary (or, in autocommit, the statement just run) wrote:
    its commit LSN goes into the session even though no statement looked like a write."""
    get_state().mark_write()


def last_route() -> Any:
    """The routing Decision of the latest read of this thread (in async code: of this asyncio
    task) in the current request or session (None: no read yet)."""
    route = _route.get()
    return route[1] if route is not None and route[0] is get_state().context() else None


def current_session() -> Session:
    """The Session of the current request (outside a request: the thread's own in sync code, the
    asyncio task's own in async code)."""
    return get_state().context().session
