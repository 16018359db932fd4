"""The psycopg probers' connection attempts: a node DSN's hosts split and their names resolved as
psycopg's conninfo_attempts does (target_session_attrs=prefer-standby and load_balance_hosts
included), except that each host name's resolution is bounded. conninfo_attempts calls
getaddrinfo with no bound: a slow DNS resolver held a probe, and a closing prober, far past the
connect timeout."""

from __future__ import annotations

import random
import socket
import threading
from typing import Any, Dict, List, Optional, Tuple

import psycopg
# The helpers psycopg's own conninfo_attempts is built on (psycopg 3.2+, as conninfo_attempts):
# the same split of host, hostaddr and port lists, the same defaults and environment variables,
# the same rule for which hosts need a lookup.
from psycopg._conninfo_utils import get_param, get_param_def, is_ip_address, split_attempts

Attempt = Dict[str, Any]
Failure = Tuple[Attempt, psycopg.OperationalError]


class _Lookup:
    """One getaddrinfo in a daemon thread of its own, which every probe resolving the same host
    and port meanwhile waits on: a resolver that never answers holds one thread per host name of
    the DSNs, not one per probe (threads are not cancellable, and a prober retries every interval)."""

    __slots__ = ("done", "addresses", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.addresses: List[str] = []
        self.error: Optional[BaseException] = None


_pending: Dict[Tuple[str, str], _Lookup] = {}
_pending_lock = threading.Lock()


def _look_up(key: Tuple[str, str], lookup: _Lookup) -> None:
    try:  # getaddrinfo releases the GIL while it waits
        answers = socket.getaddrinfo(key[0], key[1], proto=socket.IPPROTO_TCP, type=socket.SOCK_STREAM)
        lookup.addresses = [str(a[4][0]) for a in answers]
    except Exception as exc:  # handed to the waiting probes
        lookup.error = exc
    finally:
        with _pending_lock:
            if _pending.get(key) is lookup:
                del _pending[key]
        lookup.done.set()


def resolve_host(host: str, port: str, timeout_s: float) -> List[str]:
    """The addresses of `host` (getaddrinfo for TCP, as psycopg asks), within `timeout_s` seconds:
    the lookup runs in a thread and this waits on an Event (without the GIL). Raises
    psycopg.OperationalError naming the host when it fails or takes longer."""
    key = (host, port)
    with _pending_lock:
        lookup = _pending.get(key)
        if lookup is None:
            lookup = _pending[key] = _Lookup()
            try:
                threading.Thread(target=_look_up, args=(key, lookup), daemon=True,
                                 name=f"replikit-resolve-{host}").start()
            except RuntimeError as exc:  # no thread to be had: nothing left pending
                del _pending[key]
                raise psycopg.OperationalError(f"resolving host {host!r}: {exc}") from exc
    if not lookup.done.wait(timeout_s):
        raise psycopg.OperationalError(f"resolving host {host!r} took more than {timeout_s:g} s")
    if lookup.error is not None:
        raise psycopg.OperationalError(f"failed to resolve host {host!r}: {lookup.error}") from lookup.error
    return list(lookup.addresses)


def _host_attempts(params: Attempt, timeout_s: float) -> List[Attempt]:
    """The attempts for one host of a DSN (one per address its name resolves to), by psycopg's
    rules: a socket directory, an empty host or a given hostaddr is not looked up, nor an IP."""
    host = get_param(params, "host")
    if not host or host.startswith("/") or host[1:2] == ":" or get_param(params, "hostaddr"):
        return [params]
    if is_ip_address(host):
        return [{**params, "hostaddr": host}]
    port = get_param(params, "port")
    if not port:
        default = get_param_def("port")
        port = default.compiled if default is not None and default.compiled else "5432"
    return [{**params, "hostaddr": address} for address in resolve_host(host, port, timeout_s)]


def conninfo_attempts(params: Attempt, timeout_s: float,
                      stop: Optional[threading.Event] = None) -> Tuple[List[Attempt], List[Failure]]:
    """psycopg.conninfo.conninfo_attempts(params) with each host's resolution bounded by
    `timeout_s` (so hosts x timeout_s in all): the attempts, in psycopg's order, and the hosts
    that did not resolve with why (the caller raises when no attempt is left). A set `stop` (the
    prober closing) ends the walk before the next host. Raises psycopg.OperationalError."""
    prefer_standby = get_param(params, "target_session_attrs") == "prefer-standby"
    if prefer_standby:  # as psycopg: every address as a standby first, then every one as it comes
        params = {k: v for k, v in params.items() if k != "target_session_attrs"}
    hosts = split_attempts(params)
    attempts: List[Attempt] = []
    failures: List[Failure] = []
    for done, host in enumerate(hosts):
        if stop is not None and stop.is_set():
            raise psycopg.OperationalError(f"the prober is closing: {len(hosts) - done} of "
                                           f"{len(hosts)} hosts not resolved")
        try:
            attempts.extend(_host_attempts(host, timeout_s))
        except psycopg.OperationalError as exc:
            failures.append((host, exc))
    if get_param(params, "load_balance_hosts") == "random":
        random.shuffle(attempts)  # spreads the connections, as psycopg does
    if prefer_standby:
        attempts = [{**a, "target_session_attrs": "standby"} for a in attempts] + attempts
    return attempts, failures
