"""SQLAlchemy 2.x integration: routed ORM sessions over one engine per node, sync and asyncio.

::

    from replikit.sqlalchemy import RoutedEngines, routed_sessionmaker

    engines = RoutedEngines(("primary", "postgresql+psycopg://app@db0/app"),
                            [("r1", "postgresql+psycopg://app@db1/app")])
    Session = routed_sessionmaker(engines)
    with Session(token=request_token) as session:       # the web layer's token in
        session.add(Comment(text="hi"))
        session.commit()                                 # the primary; commit LSN recorded
        session.scalars(select(Comment)).all()           # a replica that has it, or the primary
        response_token = session.token()                 # ... and out

Statements are classified by what they do (``is_read``: SELECT without locking clauses or
data-modifying CTEs; text() by its SQL) and can be forced with execution options
(``replikit_route``, ``replikit_consistency``, ``replikit_max_staleness_ms``).
Needs ``pip install 'replikit[sqlalchemy]'`` (SQLAlchemy 2 with asyncio support, psycopg 3).
"""

from __future__ import annotations

try:
    import sqlalchemy as _sqlalchemy
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"replikit.sqlalchemy needs SQLAlchemy 2 ({exc}): pip install 'replikit[sqlalchemy]'") from exc
if int(_sqlalchemy.__version__.split(".")[0]) < 2:  # pragma: no cover
    raise ImportError(f"replikit.sqlalchemy needs SQLAlchemy 2, found {_sqlalchemy.__version__}: "
                      "pip install 'replikit[sqlalchemy]'")

from ._classify import is_read
from ._engines import AsyncRoutedEngines, RoutedEngines
from ._session import (OPT_CONSISTENCY, OPT_MAX_STALENESS, OPT_ROUTE, ROUTES, AsyncRoutedSession, RoutedSession,
                       async_routed_sessionmaker, routed_sessionmaker)

__all__ = ["AsyncRoutedEngines", "AsyncRoutedSession", "OPT_CONSISTENCY", "OPT_MAX_STALENESS", "OPT_ROUTE",
           "ROUTES", "RoutedEngines", "RoutedSession", "async_routed_sessionmaker", "is_read",
           "routed_sessionmaker"]
