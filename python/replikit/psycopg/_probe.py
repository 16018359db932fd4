"""The psycopg routers' probe: one bounded round trip on a connection of its own, connected and
waited on without holding the GIL, so a node that stopped answering holds up only its own prober."""

from __future__ import annotations

import select
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import ConnStatus
from psycopg.pq.abc import PGconn as PGconnType

from .._core import DatabaseOptions
from ._base import connect_timeout_s
from ._resolve import conninfo_attempts

# One round trip reads a node's state (as the C++ prober does): recovery, the primary's flushed
# LSN (what a walsender can ship), a replica's receive and replay LSNs.
PROBE_SQL = ("SELECT pg_is_in_recovery(),"
             " CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_flush_lsn()::text END,"
             " pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text")


def probe_conninfo(dsn: str, options: DatabaseOptions) -> bytes:
    """A probe connection's conninfo: the node's DSN with a server-side bound on the probe (the
    client-side bounds are probe_once's deadlines)."""
    return make_conninfo(dsn, connect_timeout=connect_timeout_s(options),
                         options=f"-c statement_timeout={int(options.probe_timeout_ms)}",
                         application_name="replikit-prober").encode()


_PROBE_BYTES = PROBE_SQL.encode()
_POLL_ROUNDS = 10_000  # a connect takes a handful of polls; bounds the loop past any sane count


def _wait_socket(pgconn: PGconnType, for_write: bool, remaining: float) -> bool:
    # poll(), not select(): select() refuses a descriptor past FD_SETSIZE (1024), which a process
    # with many files open gets. Both release the GIL while they wait.
    poller = select.poll()
    poller.register(pgconn.socket, select.POLLOUT if for_write else select.POLLIN)
    return bool(poller.poll(remaining * 1000.0))


def probe_connect(conninfo: bytes, connect_s: float, stop: Optional[threading.Event] = None) -> PGconnType:
    """A new probe connection. Each of the DSN's hosts (and each address a host name resolves
    to) is tried in turn, as libpq's blocking connect and psycopg.connect try them, each within
    `connect_s` seconds of its own: a first host that stopped answering costs one connect_s, not
    the whole connect, so the next host is still reached (at most hosts x connect_s in all).
    Polled (PQconnectStart and PQconnectPoll with poll(), which releases the GIL while it waits):
    PGconn.connect (PQconnectdb) holds the GIL for the whole connect, so a node that stopped
    answering would stall every thread of the process, the other probers and the application's,
    for the full connect_timeout at each attempt. The hosts are split, and host names resolved,
    as psycopg.connect does (target_session_attrs and load_balance_hosts included), each name
    within connect_s too (getaddrinfo in a thread, waited on without the GIL: _resolve), so a
    slow DNS resolver costs at most hosts x connect_s more; a host that does not resolve is left
    out, and named in the error if no other connects. A set `stop` (the prober closing) ends the
    walk before the next host, resolved or tried, so a closing prober waits for one resolution or
    one attempt at most, not for every host's. Raises psycopg.OperationalError."""
    try:
        attempts, unresolved = conninfo_attempts(conninfo_to_dict(conninfo.decode()), connect_s, stop)
    except psycopg.OperationalError:
        raise
    except psycopg.Error as exc:  # a DSN libpq cannot parse
        raise psycopg.OperationalError(str(exc)) from exc
    failures: List[Tuple[Dict[str, Any], psycopg.OperationalError]] = list(unresolved)
    for tried, attempt in enumerate(attempts):  # as many as the DSN names hosts (and their addresses)
        if stop is not None and stop.is_set():
            raise psycopg.OperationalError(f"the prober is closing: {len(attempts) - tried} of "
                                           f"{len(attempts)} hosts not tried")
        try:
            return _connect_one(make_conninfo("", **attempt).encode(), connect_s)
        except psycopg.OperationalError as exc:
            failures.append((attempt, exc))
    if len(failures) == 1:
        raise failures[0][1]
    lines = [f"no host of the DSN connected ({len(failures)} attempts, {connect_s * 1000:g} ms each at most):"]
    lines += [f"- host {a.get('host')!r}, port {a.get('port')!r}, hostaddr {a.get('hostaddr')!r}: "
              f"{str(exc).strip()}" for a, exc in failures]
    raise psycopg.OperationalError("\n".join(lines))


def _connect_one(conninfo: bytes, connect_s: float) -> PGconnType:
    """A connection to the one host of `conninfo`, within `connect_s` seconds."""
    pgconn = pq.PGconn.connect_start(conninfo)
    try:
        deadline = time.monotonic() + connect_s
        for _ in range(_POLL_ROUNDS):
            if pgconn.status == ConnStatus.BAD:
                raise psycopg.OperationalError(pgconn.get_error_message() or "the connection failed")
            status = pgconn.connect_poll()
            if status == pq.PollingStatus.OK:
                return pgconn
            if status == pq.PollingStatus.FAILED:
                raise psycopg.OperationalError(pgconn.get_error_message() or "the connection failed")
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not _wait_socket(pgconn, status == pq.PollingStatus.WRITING, remaining):
                raise psycopg.OperationalError(f"no connection within {connect_s * 1000:g} ms")
        raise psycopg.OperationalError(f"the connection did not complete in {_POLL_ROUNDS} polls")
    except BaseException:
        pgconn.finish()
        raise


def probe_once(pgconn: Optional[PGconnType], conninfo: bytes, bound_s: float, connect_s: float,
               stop: Optional[threading.Event] = None) -> Tuple[PGconnType, Tuple[Any, ...]]:
    """One probe on `pgconn` (connected first, within `connect_s`, when None or broken), bounded
    client-side by `bound_s`: a deadline on poll() bounds the query, so even a server that
    stopped answering (SIGSTOP) cannot hold the prober, and no wait holds the GIL (`stop`: see
    probe_connect). Raises
    psycopg.OperationalError; the caller drops the connection then."""
    if pgconn is None or pgconn.status != ConnStatus.OK:
        if pgconn is not None:
            pgconn.finish()
        pgconn = probe_connect(conninfo, connect_s, stop)
    deadline = time.monotonic() + bound_s
    pgconn.send_query(_PROBE_BYTES)
    result = None
    while True:
        while pgconn.is_busy():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not _wait_socket(pgconn, False, remaining):
                pgconn.finish()
                raise psycopg.OperationalError(f"no answer to the probe within {bound_s * 1000:g} ms")
            pgconn.consume_input()
        res = pgconn.get_result()
        if res is None:
            break
        result = res
    if result is None or result.status != pq.ExecStatus.TUPLES_OK or result.ntuples != 1:
        message = pgconn.get_error_message() or "the probe returned no row"
        raise psycopg.OperationalError(message)
    values = [result.get_value(0, k) for k in range(4)]
    row = (values[0] == b"t",) + tuple(None if v is None else v.decode() for v in values[1:])
    return pgconn, row
