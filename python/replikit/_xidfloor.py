"""A session's xid floor, kept host-locally by a router (the C++ Session::xid_floor, which
Python cannot reach): what a Monotonic/Causal read that falls back to the primary must see.
Shared by every Python path (the psycopg adapter, SQLAlchemy, Django, replikit.pg's
PsycopgRouter); no psycopg import here."""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Optional, Tuple

from . import _core
from ._core import Session

MAX_FLOOR_XIDS = 32  # as the core's kMaxFloorXids: keeping fewer only asks more of the primary
MAX_FLOORS = 100_000  # sessions whose floor a router keeps (oldest dropped first)

Floor = Tuple[int, Tuple[int, ...]]  # (xmax, ascending in-progress xids below it)

# What a primary's snapshot is polled with (its row: the snapshot's text, for parse_snapshot).
SNAPSHOT_SQL = "SELECT pg_current_snapshot()::text"


# pg_current_snapshot()'s text: decimal xid8s 'xmin:xmax:xip,...' (ASCII digits only, at most 20
# each, as a 64-bit xid8 has: int() would also take signs, spaces, underscores, other scripts'
# digits, and raise on thousands of digits).
_XID = "[0-9]{1,20}"
_SNAPSHOT = re.compile(f"{_XID}:({_XID}):((?:{_XID}(?:,{_XID})*)?)")


def parse_snapshot(text: Optional[str]) -> Optional[Floor]:
    """'xmin:xmax:xip,...' (pg_current_snapshot()) as a floor; None if malformed (as the C++
    backend's parser, which takes the same text)."""
    match = _SNAPSHOT.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        return None
    xmax, xip = match.groups()
    xids = sorted(int(x) for x in xip.split(",") if x)
    return int(xmax), tuple(xids[:MAX_FLOOR_XIDS])


def floor_covered(floor: Floor, snapshot: Floor) -> bool:
    """True when `snapshot` has completed every transaction `floor` requires: those below the
    floor's xmax and not among its in-progress xids."""
    xmax, xip = floor
    snap_xmax, snap_xip = snapshot
    if snap_xmax < xmax:
        return False
    kept = set(xip)
    return all(x in kept for x in snap_xip if x < xmax)


class XidFloors:
    """Per session (host-local, as the C++ Session::xid_floor, which Python cannot reach):
    the transactions this session's replica reads saw completed. A commit can show on an async
    replica before the primary shows it, so a Monotonic/Causal read that falls back to the
    primary first waits (bounded) until the primary's snapshot has completed them all.
    Keyed by id(session), at most MAX_FLOORS: a floor left by a session since gone only asks
    the primary for transactions long completed, so a reused id costs nothing."""

    def __init__(self) -> None:
        self._floors: "OrderedDict[int, Floor]" = OrderedDict()
        self._lock = threading.Lock()

    def merge(self, session: Session, floor: Floor) -> None:
        """Requires also what `floor` requires (the union of the completed sets)."""
        with self._lock:
            old = self._floors.pop(id(session), None)
            if old is not None:
                big, small = (old, floor) if old[0] >= floor[0] else (floor, old)
                small_xip = set(small[1])
                floor = (big[0], tuple(x for x in big[1] if x >= small[0] or x in small_xip))
            self._floors[id(session)] = floor
            while len(self._floors) > MAX_FLOORS:
                self._floors.popitem(last=False)

    def get(self, session: Optional[Session]) -> Optional[Floor]:
        if session is None or not self._floors:
            return None
        return self._floors.get(id(session))

    def clear(self, session: Session) -> None:
        with self._lock:
            self._floors.pop(id(session), None)


def await_floor(floors: XidFloors, session: Session, snapshot_text: Callable[[], Optional[str]],
                sleep: Callable[[float], Any], wait_s: float) -> bool:
    """Before a Monotonic/Causal read on the primary: polls the primary's snapshot
    (`snapshot_text()` runs SNAPSHOT_SQL there) until it has completed every transaction of the
    session's floor in `floors`, then drops the floor (the primary's later snapshots show it
    too) and returns True; True at once without a floor; False after `wait_s` seconds (the
    caller raises floor_timeout; the floor stays). The asyncio router has its own awaiting twin."""
    floor = floors.get(session)
    if floor is None:
        return True
    deadline = time.monotonic() + wait_s
    for attempt in range(1_000_000):
        snapshot = parse_snapshot(snapshot_text())
        if snapshot is not None and floor_covered(floor, snapshot):
            floors.clear(session)
            return True
        if time.monotonic() >= deadline:
            break
        # The commits awaited are flushed already: they show within microseconds.
        sleep(50e-6 if attempt < 10 else 500e-6)
    return False


def floor_timeout(wait_s: float) -> Exception:
    return _core.TimeoutError(
        f"the primary did not show, within {wait_s * 1000:.0f} ms, every transaction this session "
        "already saw on a replica (a monotonic read there could go back in time)")
