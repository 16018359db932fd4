"""Connections a router keeps between reads: per node, pooled connections idle in the router's
hands (a LIFO list), so that a read takes a warm connection with one list operation instead of
a psycopg_pool getconn()/putconn() pair (their lock, queue and bookkeeping cost more than the
rest of a routed point select's client side).

What keeps this honest towards psycopg_pool:
- only a connection that is idle (no transaction, not broken) and not past the pool's
  max_lifetime is parked; any other goes back to the pool, which resets, replaces or closes it;
- a pool given a `check` or `reset` callback parks nothing (they run on every lease/return);
- a connection parked CHECK_IDLE_S or longer is returned to its pool by the router's prober
  after its next probe, so an idle router holds nothing and the pool's max_idle and stats apply;
- a node's parked connections are closed and returned when a call finds the node lost, and all
  of them are returned when the router closes;
- `pool_stats()` shows them per node as `router_idle` (within the pool's pool_size, not in its
  pool_available).
Appends and pops of a list are atomic under the GIL: threads share the lists without a lock."""

from __future__ import annotations

import time
from typing import Any, Dict, Iterable, List, Mapping

from psycopg.pq import TransactionStatus

_IDLE = int(TransactionStatus.IDLE)
_INF = float("inf")
_monotonic = time.monotonic


def allowed(pool_kwargs: Mapping[str, Any]) -> bool:
    """Parking is off when the pools run a callback on every lease or return."""
    return not (pool_kwargs.get("check") or pool_kwargs.get("reset"))


class Parking:
    """The parked connections of one router, a list per node."""

    __slots__ = ("lists", "enabled", "closed")

    def __init__(self, nodes: Iterable[str], enabled: bool) -> None:
        self.lists: Dict[str, List[Any]] = {name: [] for name in nodes}
        self.enabled = enabled
        self.closed = False

    def park(self, node: str, conn: Any) -> bool:
        """Keeps `conn` (stamped idle now) when it may be kept; False: return it to the pool."""
        now = _monotonic()
        conn._replikit_idle_since = now
        if (not self.enabled or self.closed or conn.pgconn.transaction_status != _IDLE
                or getattr(conn, "_expire_at", _INF) <= now):
            return False
        parked = self.lists[node]
        parked.append(conn)
        if self.closed:  # the router closed meanwhile and may have emptied the list already
            try:
                parked.remove(conn)
            except ValueError:
                return True  # taken by close(), which returns it
            return False
        return True

    def take_stale(self, node: str, idle_s: float) -> List[Any]:
        """Removes and returns the connections of `node` parked `idle_s` or longer (the oldest
        are at the bottom of the list)."""
        parked = self.lists[node]
        cutoff = _monotonic() - idle_s
        out: List[Any] = []
        for _ in range(len(parked)):
            try:
                conn = parked[0]
            except IndexError:
                break
            if getattr(conn, "_replikit_idle_since", 0.0) > cutoff:
                break
            try:
                parked.remove(conn)
            except ValueError:
                continue  # a read took it meanwhile
            out.append(conn)
        return out

    def take_all(self, node: str) -> List[Any]:
        """Removes and returns every parked connection of `node`."""
        parked = self.lists[node]
        out: List[Any] = []
        for _ in range(len(parked) + 1):
            try:
                out.append(parked.pop())
            except IndexError:
                break
        return out

    def counts(self) -> Dict[str, int]:
        return {name: len(parked) for name, parked in self.lists.items()}
