"""Events of the PostgreSQL backend, logged and handed to callbacks.

The C++ backend publishes what happens to the nodes into a bounded ring (``db.events``, an
``EventLog``): a node down or up, a replica LAGGING or RECOVERED (with its lag in ms and
bytes), a role mismatch and its end, a read retried on another node, a failover. Each is
published once per transition, with the node's name and the numbers.

Every ``ReplicatedDatabase`` has one ``EventFeed`` (``db.event_feed``): a daemon thread that
waits for events with the GIL released, then, for each event in order:

- logs it once on the ``replikit.events`` logger (standard :mod:`logging`; WARNING for
  node_down, lagging, role_mismatch and failover, INFO for the others), with the event as
  ``record.replikit_event`` for handlers that want the values;
- calls every callback registered with ``db.on_event(callback, kinds=None)``.

Callbacks run on the feed's thread, one event at a time: a slow callback delays later events
(never the prober or a query). The ring keeps ``event_capacity`` events (a DatabaseOptions
setting, default 1024); when the feed falls further behind, the oldest events are overwritten,
and the feed counts them in ``dropped`` and logs one WARNING per gap.

Nothing here configures logging: add a handler to ``logging.getLogger("replikit")`` (or
call ``logging.basicConfig``) to see the records.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Optional, Tuple

from . import _core

from ._backend import require_pg

require_pg("replikit.events")

from ._core import Event, EventKind, EventLog  # noqa: E402  (after the HAVE_PG check)

__all__ = ["Event", "EventFeed", "EventKind", "EventLog", "logger"]

logger = logging.getLogger("replikit.events")

# Bounds of the feed thread: events taken per wake-up, and the longest wait in C++ before it
# looks at its stop flag again (stop() also wakes it at once).
_BATCH = 256
_WAIT_MS = 1000.0

_WARNING_KINDS = frozenset({EventKind.NODE_DOWN, EventKind.LAGGING, EventKind.ROLE_MISMATCH,
                            EventKind.FAILOVER})


def describe(event: Event) -> str:
    """One line for a person: what happened to which node, with the numbers."""
    kind = event.kind
    if kind == EventKind.NODE_DOWN:
        return f"node {event.node} down: {event.message}"
    if kind == EventKind.NODE_UP:
        return f"node {event.node} up"
    if kind == EventKind.LAGGING:
        return f"replica {event.node} LAGGING: lag {event.lag_ms:.1f} ms, {event.lag_bytes} bytes"
    if kind == EventKind.RECOVERED:
        return f"replica {event.node} RECOVERED: lag {event.lag_ms:.1f} ms, {event.lag_bytes} bytes"
    if kind == EventKind.ROLE_MISMATCH:
        return f"node {event.node} role mismatch: {event.message}"
    if kind == EventKind.ROLE_RESTORED:
        return f"node {event.node} role matches the topology again"
    if kind == EventKind.READ_RETRY:
        return f"read on node {event.node} failed, attempt {event.attempt} {event.message}"
    if kind == EventKind.FAILOVER:
        return f"failover: {event.node} is the primary" + (f" ({event.message})" if event.message else "")
    return f"{kind.name.lower()} {event.node}: {event.message}"  # pragma: no cover - a new kind


def level_of(event: Event) -> int:
    """The logging level an event is logged at."""
    return logging.WARNING if event.kind in _WARNING_KINDS else logging.INFO


Callback = Callable[[Event], Any]


class EventFeed:
    """Delivers one database's events: logs each once, then calls the callbacks.

    Made by the database (``db.event_feed``); not constructed by users.
    """

    def __init__(self, log: EventLog, after_sequence: int) -> None:
        self._log = log
        self._after = after_sequence
        self._callbacks: List[Tuple[Callback, Optional[FrozenSet[EventKind]]]] = []
        self._lock = threading.Lock()
        self._delivered = threading.Condition(self._lock)
        self._stop = False
        self.dropped = 0
        """Events overwritten in the ring before this feed read them."""
        self._counts: Dict[str, int] = {}
        self.callback_errors = 0
        self._thread = threading.Thread(target=self._run, name="replikit-events", daemon=True)

    # ------------------------------------------------------------ callbacks
    def add(self, callback: Callback, kinds: Optional[Iterable[Any]] = None) -> Callback:
        """Registers ``callback(event)`` (for ``kinds`` only, when given); returns it."""
        if not callable(callback):
            raise _argument_error(_core.ArgumentTypeError,
                                  f"callback: expected a callable, got {type(callback).__name__}")
        wanted = None
        if kinds is not None:
            if isinstance(kinds, (str, EventKind)):
                kinds = [kinds]
            try:
                items = list(kinds)
            except TypeError:
                raise _argument_error(
                    _core.ArgumentTypeError,
                    f"kinds: expected an EventKind, its name, or an iterable of them, got {type(kinds).__name__}",
                ) from None
            wanted = frozenset(_kind(k) for k in items)
        with self._lock:
            self._callbacks.append((callback, wanted))
        return callback

    def remove(self, callback: Callback) -> bool:
        """Unregisters ``callback`` (every registration of it); False when it had none."""
        if not callable(callback):  # as add(): and `c != callback` on an array is not a bool
            raise _argument_error(_core.ArgumentTypeError,
                                  f"callback: expected a callable, got {type(callback).__name__}")
        with self._lock:
            before = len(self._callbacks)
            self._callbacks = [(c, k) for c, k in self._callbacks if c != callback]
            return len(self._callbacks) != before

    # ------------------------------------------------------------ delivery
    @property
    def delivered_sequence(self) -> int:
        """The sequence of the last event logged and handed to the callbacks."""
        with self._lock:
            return self._after

    def flush(self, timeout_ms: float = 5000.0) -> bool:
        """Waits until every event published so far was delivered; False after ``timeout_ms``."""
        target = self._log.last_sequence
        if threading.current_thread() is self._thread:  # from a callback: it cannot wait for itself
            return self._after >= target
        deadline = time.monotonic() + timeout_ms / 1000.0
        with self._delivered:
            while self._after < target:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return self._after >= target
                self._delivered.wait(min(left, 0.1))
        return True

    def stop(self, timeout_ms: float = 1000.0) -> None:
        """Stops the thread (the database's close() ends it too, after the last event)."""
        self._stop = True
        self._log.wake()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_ms / 1000.0)

    @property
    def counts(self) -> Dict[str, int]:
        """Events delivered so far, by kind name ("node_down", "lagging", ...) (a copy)."""
        with self._lock:
            return dict(self._counts)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop:
            batch = self._log.wait(self._after, _BATCH, _WAIT_MS)
            if batch.missed:
                self.dropped += batch.missed
                logger.warning("replikit: %d event(s) dropped: the event ring (event_capacity %d) "
                               "overflowed before they were delivered", batch.missed, self._log.capacity)
            for event in batch.events:
                self._deliver(event)
            with self._delivered:
                self._after = batch.last_sequence
                self._delivered.notify_all()
            if batch.closed:
                break

    def _deliver(self, event: Event) -> None:
        name = event.kind.name.lower()
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + 1
        logger.log(level_of(event), "%s", describe(event), extra={"replikit_event": event})
        with self._lock:
            callbacks = list(self._callbacks)
        for callback, kinds in callbacks:
            if kinds is not None and event.kind not in kinds:
                continue
            try:
                callback(event)
            except Exception:  # a callback's bug must not stop the delivery of later events
                self.callback_errors += 1
                logger.exception("replikit: event callback %r raised on %r", callback, event)

    def __repr__(self) -> str:
        return (f"EventFeed(delivered_sequence={self._after}, callbacks={len(self._callbacks)}, "
                f"dropped={self.dropped}, running={self.running})")


def _argument_error(cls: Any, message: str) -> Exception:
    """`cls` (InvalidArgument or ArgumentTypeError) about the argument `kinds` or `callback`,
    named first in `message`, as the C++ converters raise it (with `.argument`)."""
    err: Exception = cls(message)
    setattr(err, "argument", message.split(":", 1)[0])
    return err


def _kind(value: Any) -> EventKind:
    if isinstance(value, EventKind):
        return value
    if isinstance(value, str):
        try:
            return EventKind[value.upper()]
        except KeyError:
            known = ", ".join(f"'{k.name.lower()}'" for k in EventKind)
            raise _argument_error(_core.InvalidArgument,
                                  f"kinds: unknown value '{value}' (expected one of {known})") from None
    raise _argument_error(_core.ArgumentTypeError,
                          f"kinds: expected EventKind members or names, got {type(value).__name__}")


_feeds_lock = threading.Lock()
_feeds: "weakref.WeakSet[EventFeed]" = weakref.WeakSet()


def feed_of(log: EventLog, new_database: bool = False) -> EventFeed:
    """The feed of a database's log, started on first use (from its first event for a new
    database, otherwise from now: a feed that ended with its closed database is not replayed)."""
    with _feeds_lock:
        feed = getattr(log, "_feed", None)
        if feed is None:
            feed = EventFeed(log, 0 if new_database else log.last_sequence)
            setattr(log, "_feed", feed)  # EventLog has a __dict__ (py::dynamic_attr)
            _feeds.add(feed)
            feed._thread.start()
    return feed


@atexit.register
def _stop_all() -> None:
    # Before the interpreter finalizes: a feed thread blocked in C++ must not wake up to take
    # the GIL while Python is being torn down.
    with _feeds_lock:
        feeds = list(_feeds)
    for feed in feeds:
        feed._stop = True
        feed._log.wake()
    for feed in feeds:
        feed.stop(timeout_ms=1000.0)
