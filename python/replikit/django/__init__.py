"""Django integration: a database router, a middleware and ``manage.py replikit_status``.

Settings::

    INSTALLED_APPS = [..., "replikit.django"]
    DATABASES = {"default": {...primary...}, "r1": {...}, "r2": {...}}   # postgresql aliases
    DATABASE_ROUTERS = ["replikit.django.ReplikitRouter"]
    MIDDLEWARE = [..., "replikit.django.ReplikitMiddleware"]
    REPLIKIT = {"PRIMARY": "default", "REPLICAS": ["r1", "r2"]}

Writes go to the primary alias and their commit LSN is recorded into the request's session:
a transaction that wrote (atomic blocks, manual commits) commits with ``COMMIT; SELECT
pg_current_wal_insert_lsn()`` in one message, as the psycopg adapter does; for autocommit
writes the LSN is read once, before the request's next read or its response. Reads go to the
replica alias that replikit picks for the request's consistency (default read-your-writes;
``replikit.django.consistency(...)`` for a block of the calling thread, or asyncio task: tasks
of one request share its session, each at its own level), lagging replicas excluded, the primary as
the fallback; reads inside a transaction on the primary (an atomic block) stay on the primary.
The middleware is sync and async (under ASGI an async view runs without a thread hop);
``use_session()`` is a ``with`` block, or ``async with`` in async code.
A statement is taken for a write unless it is a plain read (replikit.sqltext) or transaction
bookkeeping; ``mark_write()`` counts one that writes without looking like it (a SELECT of a
function that inserts). The token travels in a
header and a cookie signed with replikit's HMAC signer (key derived from SECRET_KEY unless
REPLIKIT['SIGNING_KEY'] is set). Other REPLIKIT keys: NODE_NAMES, CONSISTENCY, HEADER, COOKIE,
COOKIE_PATH, COOKIE_SAMESITE, COOKIE_SECURE, COOKIE_DOMAIN, COOKIE_MAX_AGE_MS,
WAIT_FOR_REPLICA_MS, OPTIONS (replikit.DatabaseOptions fields: max_lag_ms, probe_interval_ms,
...). With Django's test runner, give each replica alias ``"TEST": {"MIRROR": "default"}``: the
prober then finds the "replicas" are the primary (a role mismatch) and every read goes to the
primary. Needs ``pip install replikit[django]``.
"""

from __future__ import annotations

try:
    import django as _django  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"replikit.django needs Django ({exc}): pip install 'replikit[django]'") from exc

from .middleware import ReplikitMiddleware
from .router import ReplikitRouter
from .state import (SessionScope, State, consistency, current_session, get_state, is_write, last_route,
                    mark_write, reset_state, use_session)

__all__ = ["ReplikitMiddleware", "ReplikitRouter", "SessionScope", "State", "consistency", "current_session",
           "get_state", "is_write", "last_route", "mark_write", "reset_state", "use_session"]
