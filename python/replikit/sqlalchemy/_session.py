"""Routed ORM sessions: each statement goes where what it does and the consistency say."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Union

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session as OrmSession, SessionTransaction, sessionmaker

from .. import _core
from .._core import Consistency, Session
from ..psycopg._base import ConsistencyLike, argument_error
from ._classify import is_read
from ._observe import OWNER
from ._engines import SINK, AsyncRoutedEngines, RoutedEngines, _EnginesBase, level_of

# Execution options a statement (``.execution_options(...)``), a session call
# (``execution_options={...}``) or a session (``Session(execution_options=...)``) may carry.
OPT_CONSISTENCY = "replikit_consistency"
OPT_ROUTE = "replikit_route"
OPT_MAX_STALENESS = "replikit_max_staleness_ms"
ROUTES = ("auto", "read", "write", "primary", "replica")
_OPTIONS_KEY = "replikit_execution_options"  # bind_arguments key: the options reach get_bind
_OBSERVING = (Consistency.MONOTONIC, Consistency.CAUSAL)


def _token_session(token: Any, signer: Any, argument: str) -> Session:
    if not isinstance(token, str):
        raise argument_error(_core.ArgumentTypeError, argument,
                             f"expected a token string, got {type(token).__name__}")
    return Session.from_token(token, signer)


def _route_of(value: Any) -> str:
    if not isinstance(value, str):
        raise argument_error(_core.ArgumentTypeError, OPT_ROUTE,
                             f"expected one of {', '.join(ROUTES)}, got {type(value).__name__}")
    if value not in ROUTES:
        raise argument_error(_core.InvalidArgument, OPT_ROUTE,
                             f"unknown route {value!r} (one of {', '.join(ROUTES)})")
    return value


def _staleness_of(value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise argument_error(_core.ArgumentTypeError, OPT_MAX_STALENESS,
                             f"expected a number of ms, got {type(value).__name__}")
    if not value >= 0 or value == float("inf"):
        raise argument_error(_core.InvalidArgument, OPT_MAX_STALENESS,
                             f"must be a finite number of ms >= 0, got {value!r}")
    return float(value)


class RoutedSession(OrmSession):
    """A SQLAlchemy ``Session`` over ``RoutedEngines``: flushes, DML, DDL and anything not a plain
    read go to the primary, and so does every statement of a transaction after its first write
    (it must see its own uncommitted rows); reads go where the consistency level says
    (``read_your_writes`` by default: a replica that has replayed this session's writes, else
    the primary). The commit of a transaction that wrote records its commit LSN into
    ``replikit_session`` on the same round trip; a monotonic or causal read records what it saw
    (one round trip after it, on the same connection).

    Per statement, through execution options: ``replikit_consistency`` (a Consistency or its
    name), ``replikit_max_staleness_ms`` (bounded_staleness) and ``replikit_route``: "auto" (by
    what the statement does: replikit.sqlalchemy.is_read), "read" (a read whatever the SQL
    looks like), "write" (the primary, as a write), "primary" (a read there, = strong),
    "replica" (a read anywhere, = eventual).

    The token goes in (``token=`` or ``replikit_session=``) and out (``token()``) for the web
    layer; ``engines.signer`` signs it unless a signer is given. Everything per caller (the
    replikit session, the consistency, ``last_route``: the Decision of this session's latest
    read) is the session's, never the engines' or a thread's: one session per thread or
    asyncio task, as SQLAlchemy asks, and concurrent callers route each at their own level."""

    def __init__(self, bind: Any = None, *, engines: _EnginesBase,
                 replikit_session: Optional[Session] = None, token: Optional[str] = None,
                 consistency: Optional[ConsistencyLike] = None, **kwargs: Any) -> None:
        if not isinstance(engines, _EnginesBase):
            raise argument_error(_core.ArgumentTypeError, "engines",
                                 f"expected RoutedEngines or AsyncRoutedEngines, got {type(engines).__name__}")
        if bind is not None or kwargs.get("binds"):
            raise argument_error(_core.InvalidArgument, "bind",
                                 "a routed session picks its engine per statement; give engines= only")
        if replikit_session is not None and not isinstance(replikit_session, Session):
            raise argument_error(_core.ArgumentTypeError, "replikit_session",
                                 f"expected a replikit.Session, got {type(replikit_session).__name__}")
        if replikit_session is not None and token is not None:
            raise argument_error(_core.InvalidArgument, "token", "give token= or replikit_session=, not both")
        super().__init__(**kwargs)
        self.engines = engines
        self.consistency: Consistency = (engines.consistency if consistency is None
                                         else level_of(consistency, "consistency"))
        if token is not None:
            replikit_session = _token_session(token, engines.signer, "token")
        self.replikit_session: Session = replikit_session if replikit_session is not None else Session()
        self._replikit_writing = False
        self.last_route: Optional[Any] = None  # the routing Decision of this session's latest read
        # Asked of the engines' cursor events for the next statement on that node (_observe).
        self._replikit_observe: Optional[str] = None
        self._replikit_floor: Optional[str] = None

    # ------------------------------------------------------------------ tokens
    def token(self, signer: Any = None) -> str:
        """This session's token (what it wrote and read), signed with `signer` or engines.signer."""
        return self.replikit_session.token(signer if signer is not None else self.engines.signer)

    def merge_token(self, token: Union[str, Session], signer: Any = None) -> None:
        """Also requires what `token` (another session's token, or a replikit.Session) saw."""
        if not isinstance(token, (str, Session)):
            raise argument_error(_core.ArgumentTypeError, "token",
                                 f"expected a token string or a replikit.Session, got {type(token).__name__}")
        self.replikit_session.merge(token, signer if signer is not None else self.engines.signer)

    # ------------------------------------------------------------------ routing
    def get_bind(self, mapper: Any = None, *, clause: Any = None, bind: Any = None,
                 _sa_skip_events: Optional[bool] = None, _sa_skip_for_implicit_returning: bool = False,
                 **kw: Any) -> Union[Engine, Connection]:
        """The engine of the node this statement goes to (see the class docstring)."""
        if bind is not None:
            return bind  # type: ignore[no-any-return]
        engines = self.engines
        options: Mapping[str, Any] = kw.get(_OPTIONS_KEY) or (
            clause.get_execution_options() if clause is not None and hasattr(clause, "get_execution_options")
            else {})
        # Every option is checked, wherever the statement goes.
        route = _route_of(options.get(OPT_ROUTE, "auto"))
        raw = options.get(OPT_CONSISTENCY)
        level = self.consistency if raw is None else level_of(raw, OPT_CONSISTENCY)
        max_staleness_ms = _staleness_of(options.get(OPT_MAX_STALENESS))
        self._replikit_observe = self._replikit_floor = None
        if clause is None or route == "write" or (route == "auto" and not is_read(clause)):
            # A flush (a mapper, no clause), session.connection(), or a write.
            self._replikit_writing = True
            return engines.primary_engine
        if self._replikit_writing and route != "replica":
            # The transaction wrote: its reads must see its own uncommitted rows.
            return engines.primary_engine
        if route == "primary":
            level = Consistency.STRONG
        elif route == "replica":
            level = Consistency.EVENTUAL
        d = self.last_route = engines._decide_read(self.replikit_session, level, max_staleness_ms)
        node = engines._node_of(d)
        observing = level in _OBSERVING
        self._replikit_observe = node if observing else None
        self._replikit_floor = node if observing and node == engines.primary else None
        return engines.sync_engine(node)


# Session events for every RoutedSession (class-level listeners).
@event.listens_for(RoutedSession, "do_orm_execute")
def _carry_options(state: ORMExecuteState) -> None:
    # The merged execution options (session, statement, call) reach get_bind through bind_arguments.
    options = state.execution_options
    if any(k.startswith("replikit_") for k in options):
        state.bind_arguments[_OPTIONS_KEY] = options


@event.listens_for(RoutedSession, "after_begin")
def _on_begin(session: OrmSession, transaction: SessionTransaction, connection: Connection) -> None:
    if isinstance(session, RoutedSession):
        connection.info[OWNER] = session
        if connection.engine is session.engines.primary_engine:
            connection.info[SINK] = session.replikit_session


@event.listens_for(RoutedSession, "after_transaction_end")
def _on_end(session: OrmSession, transaction: SessionTransaction) -> None:
    if isinstance(session, RoutedSession) and transaction.parent is None:
        session._replikit_writing = False


def routed_sessionmaker(engines: RoutedEngines, **kwargs: Any) -> "sessionmaker[RoutedSession]":
    """A ``sessionmaker`` of RoutedSession over `engines`; keywords as sessionmaker's plus
    consistency=. Each session takes token= or replikit_session= for the request's token."""
    if not isinstance(engines, RoutedEngines):
        raise argument_error(_core.ArgumentTypeError, "engines",
                             f"expected RoutedEngines, got {type(engines).__name__}")
    return sessionmaker(class_=RoutedSession, engines=engines, **kwargs)


class AsyncRoutedSession(AsyncSession):
    """``AsyncSession`` over ``AsyncRoutedEngines``: a RoutedSession runs underneath
    (``sync_session``), so routing, execution options and tokens are the same."""

    sync_session_class = RoutedSession
    sync_session: RoutedSession

    def __init__(self, bind: Any = None, *, engines: AsyncRoutedEngines,
                 replikit_session: Optional[Session] = None, token: Optional[str] = None,
                 consistency: Optional[ConsistencyLike] = None, **kwargs: Any) -> None:
        if not isinstance(engines, AsyncRoutedEngines):
            raise argument_error(_core.ArgumentTypeError, "engines",
                                 f"expected AsyncRoutedEngines, got {type(engines).__name__}")
        super().__init__(bind, engines=engines, replikit_session=replikit_session, token=token,
                         consistency=consistency, **kwargs)

    @property
    def replikit_session(self) -> Session:
        """The replikit Session this session's commits are recorded into and reads routed by."""
        return self.sync_session.replikit_session

    @property
    def engines(self) -> _EnginesBase:
        return self.sync_session.engines

    @property
    def last_route(self) -> Optional[Any]:
        """The routing Decision of this session's latest read (None: no read yet)."""
        return self.sync_session.last_route

    def token(self, signer: Any = None) -> str:
        """This session's token (see RoutedSession.token)."""
        return self.sync_session.token(signer)

    def merge_token(self, token: Union[str, Session], signer: Any = None) -> None:
        """Also requires what `token` saw (see RoutedSession.merge_token)."""
        self.sync_session.merge_token(token, signer)


def async_routed_sessionmaker(engines: AsyncRoutedEngines,
                              **kwargs: Any) -> "async_sessionmaker[AsyncRoutedSession]":
    """An ``async_sessionmaker`` of AsyncRoutedSession over `engines`."""
    if not isinstance(engines, AsyncRoutedEngines):
        raise argument_error(_core.ArgumentTypeError, "engines",
                             f"expected AsyncRoutedEngines, got {type(engines).__name__}")
    return async_sessionmaker(class_=AsyncRoutedSession, engines=engines, **kwargs)

