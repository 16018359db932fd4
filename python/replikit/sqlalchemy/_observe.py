"""Monotonic and causal reads under SQLAlchemy: what a read saw is recorded after it, on the same
connection (one round trip, as replikit.psycopg's routers do), and a read that falls back to the
primary first waits (bounded) until the primary shows what the session saw on replicas."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Optional, Tuple

import psycopg
from psycopg.rows import tuple_row
from sqlalchemy import event, util
from sqlalchemy.engine import Engine

from .._core import Session
from .. import _xidfloor as _floor
from ..psycopg._base import OBSERVE_SQL, SNAPSHOT_SQL, Core

# The pooled connection's info key: the RoutedSession whose transaction holds the connection.
OWNER = "replikit_routed_session"
_await = getattr(util, "await_", None) or getattr(util, "await_only")  # 2.1 / 2.0 name


def _fetchone(driver: Any, sql: str) -> Optional[Tuple[Any, ...]]:
    """One row of `sql` on the driver connection (psycopg sync or async), as a tuple."""
    if isinstance(driver, psycopg.Connection):
        row = driver.cursor(row_factory=tuple_row).execute(sql).fetchone()
        return None if row is None else tuple(row)

    async def run() -> Optional[Tuple[Any, ...]]:
        cur = driver.cursor(row_factory=tuple_row)
        await cur.execute(sql)
        row = await cur.fetchone()
        return None if row is None else tuple(row)

    return _await(run())  # type: ignore[no-any-return]


def _sleep(driver: Any, seconds: float) -> None:
    if isinstance(driver, psycopg.Connection):
        time.sleep(seconds)
    else:
        _await(asyncio.sleep(seconds))


def await_floor(core: Core, driver: Any, session: Session) -> None:
    """Before a monotonic/causal read on the primary: waits until the primary's snapshot has
    completed every transaction the session's replica reads saw (see replikit._xidfloor's
    XidFloors), at most core.floor_wait_s; then replikit.TimeoutError."""
    def snapshot_text() -> Optional[str]:
        row = _fetchone(driver, SNAPSHOT_SQL)
        return row[0] if row else None

    if not core.await_floor(session, snapshot_text, lambda seconds: _sleep(driver, seconds)):
        raise _floor.floor_timeout(core.floor_wait_s)


def install(core: Core, node: str, engine: Engine) -> None:
    """The events on `node`'s engine that carry out what RoutedSession.get_bind asked for."""

    def before(conn: Any, cursor: Any, statement: Any, parameters: Any, context: Any, executemany: bool) -> None:
        owner = conn.info.get(OWNER)
        if owner is not None and owner._replikit_floor == node:
            owner._replikit_floor = None
            await_floor(core, conn.connection.driver_connection, owner.replikit_session)

    def after(conn: Any, cursor: Any, statement: Any, parameters: Any, context: Any, executemany: bool) -> None:
        owner = conn.info.get(OWNER)
        if owner is not None and owner._replikit_observe == node:
            owner._replikit_observe = None
            row = _fetchone(conn.connection.driver_connection, OBSERVE_SQL)
            if row is not None:
                core.observe(owner.replikit_session, row, node)

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
