"""psycopg 3 adapter: replikit routing over psycopg_pool pools, sync and asyncio.

``ConnectionRouter`` (threads) and ``AsyncConnectionRouter`` (asyncio) keep one
``psycopg_pool.ConnectionPool`` / ``AsyncConnectionPool`` per node and hand out its
connections where the routing core sends each read or write::

    from replikit.psycopg import ConnectionRouter

    with ConnectionRouter(("primary", dsn0), [("r1", dsn1)], row_factory=dict_row) as router:
        session = replikit.Session()
        with router.write(session) as conn:
            conn.execute("INSERT INTO t VALUES (%s)", (1,))
        with router.read(session, consistency="read_your_writes") as conn:
            conn.execute("SELECT * FROM t").fetchall()

Needs ``pip install replikit[psycopg]`` (psycopg 3.2+ and psycopg_pool); does not need the C++
PostgreSQL backend (a prober per node feeds the core's lag tracker).
"""

from __future__ import annotations

try:
    import psycopg as _psycopg  # noqa: F401
    import psycopg_pool as _psycopg_pool  # noqa: F401
    from psycopg.conninfo import conninfo_attempts as _attempts  # noqa: F401  (psycopg 3.2+)
    from psycopg._conninfo_utils import split_attempts as _split  # noqa: F401  (its helpers: _resolve)
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"replikit.psycopg needs psycopg 3.2 or later and psycopg_pool ({exc}): "
                      "pip install 'replikit[psycopg]'") from exc

from ._base import Failure, classify
from .aio import AsyncConnectionRouter
from .sync import ConnectionRouter

__all__ = ["AsyncConnectionRouter", "ConnectionRouter", "Failure", "classify"]
