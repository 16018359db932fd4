"""Bounds on a routed connection's calls, as the C++ backend bounds its queries: the server
cancels a statement after `statement_timeout_ms` (set on each pooled connection), and the client
gives up `query_grace_ms` later, so a server that stopped answering (SIGSTOP, a dead host whose
kernel still holds the socket) cannot hang a call. The client-side bound is psycopg's own wait
timeout, given to every wait of the connection that sets none itself; when it expires the
connection is closed (the pool replaces it) and replikit.TimeoutError is raised. The node is not
marked down for it: a slow query would be as slow elsewhere, and a frozen server is the
prober's to mark down."""

from __future__ import annotations

import inspect
from typing import Any, Dict, Mapping

import psycopg
from psycopg.conninfo import conninfo_to_dict

from .. import _core
from .._core import DatabaseOptions

_WaitTimeout = getattr(psycopg.errors, "_WaitTimeout", None)
# psycopg versions whose Connection.wait() takes a timeout (3.3 does); older ones run without the
# client-side bound (the server-side statement_timeout still applies).
_PARAMETERS = inspect.signature(psycopg.Connection.wait).parameters
SUPPORTED = _WaitTimeout is not None and "timeout" in _PARAMETERS and "interval" in _PARAMETERS
_INTERVAL = _PARAMETERS["interval"].default if SUPPORTED else None
_UNSET: Any = object()  # no timeout given by the caller (None is one: "no bound")


def bound_s(options: DatabaseOptions) -> float:
    """The client-side bound of a call: statement_timeout_ms + query_grace_ms, in seconds."""
    return (options.statement_timeout_ms + options.query_grace_ms) / 1000.0


def message(node: str, options: DatabaseOptions) -> str:
    return (f"node '{node}': no answer within statement_timeout_ms + query_grace_ms "
            f"({options.statement_timeout_ms + options.query_grace_ms:.0f} ms); the connection was closed")


def with_statement_timeout(kwargs: Mapping[str, Any], dsn: str, options: DatabaseOptions) -> Dict[str, Any]:
    """`kwargs` with `-c statement_timeout=...` added to the connection's options (after those of
    the keywords or, else, of the DSN), unless they set statement_timeout already."""
    out = dict(kwargs)
    given = out.get("options")
    if given is None:
        try:
            given = conninfo_to_dict(dsn).get("options")
        except psycopg.ProgrammingError:
            given = None  # psycopg will report the DSN itself when it connects
    given = str(given or "")
    if "statement_timeout" in given:
        return out
    setting = f"-c statement_timeout={int(round(options.statement_timeout_ms))}"
    out["options"] = f"{given} {setting}" if given else setting
    return out


def bounded_class(base: Any, node: str, options: DatabaseOptions, is_async: bool) -> Any:
    """A subclass of the connection class `base` whose waits end at the bound (see above)."""
    if not SUPPORTED:
        return base
    limit, text = bound_s(options), message(node, options)
    base_wait = base.wait

    if is_async:
        class BoundedAsync(base):  # type: ignore[misc]
            async def wait(self, gen: Any, interval: Any = _INTERVAL, timeout: Any = _UNSET) -> Any:
                if timeout is not _UNSET:  # a bound of psycopg's own (notifies(), cancel)
                    return await base_wait(self, gen, interval, timeout)
                try:
                    return await base_wait(self, gen, interval, limit)
                except _WaitTimeout as exc:  # type: ignore[misc]
                    await self.close()
                    raise _core.TimeoutError(text) from exc

        cls: Any = BoundedAsync
    else:
        class Bounded(base):  # type: ignore[misc]
            def wait(self, gen: Any, interval: Any = _INTERVAL, timeout: Any = _UNSET) -> Any:
                if timeout is not _UNSET:
                    return base_wait(self, gen, interval, timeout)
                try:
                    return base_wait(self, gen, interval, limit)
                except _WaitTimeout as exc:  # type: ignore[misc]
                    self.close()
                    raise _core.TimeoutError(text) from exc

        cls = Bounded
    cls.__name__ = cls.__qualname__ = f"Bounded{base.__name__}"
    return cls
