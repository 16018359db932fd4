"""Watch: a background thread reading etcd's watch stream, reconnecting across endpoints."""

from __future__ import annotations

import json
import socket
import logging
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from ._transport import open_stream

LOG = logging.getLogger("replikit.etcd")
MAX_LINE_BYTES = 64 << 20
UNAUTHENTICATED = 16
MIN_IDLE_S = 0.5
RECONNECT_PAUSE_S = 0.05
JOIN_TIMEOUT_S = 5.0


class Watch:
    """A running watch (see ``EtcdClient.watch``). ``connected`` says whether a stream is open
    now; ``next_revision`` is where it resumes after a reconnect."""

    def __init__(self, client: Any, request_body: Dict[str, Any], start_revision: int,
                 on_events: Callable[[List[Any]], None]):
        self._client = client
        self._request = request_body
        self.next_revision = start_revision  # 0: from now, until the first stream is created
        self._on_events = on_events
        self._cancelled = threading.Event()
        self._connection: Optional[Any] = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="replikit-etcd-watch", daemon=True)
        self.connected = False
        self._created = False
        self.reconnects = 0
        self.last_error = ""

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        """Stop the watch (bounded wait for its thread, unless called from it)."""
        self._cancelled.set()
        with self._lock:
            connection = self._connection
        if connection is not None:
            sock = getattr(connection, "sock", None)
            try:
                if sock is not None:
                    sock.shutdown(2)
            except OSError:
                pass
        if threading.current_thread() is not self._thread and self._thread.is_alive():
            self._thread.join(JOIN_TIMEOUT_S)

    @property
    def active(self) -> bool:
        return self._thread.is_alive() and not self._cancelled.is_set()

    def __repr__(self) -> str:
        state = "cancelled" if self._cancelled.is_set() else (
            "connected" if self.connected else "reconnecting")
        return f"Watch({state}, next_revision={self.next_revision})"

    # ------------------------------------------------------------------ thread
    def _run(self) -> None:
        # A failed endpoint is marked bad in the client, so the next pass starts elsewhere; a
        # stream that only went quiet reconnects to the same endpoint at once.
        while not self._cancelled.is_set():
            quiet = self._stream(self._client._order()[0])
            if not self._cancelled.is_set():
                self.reconnects += 1
                if not quiet:
                    self._cancelled.wait(RECONNECT_PAUSE_S)

    def _stream(self, endpoint: Any) -> bool:
        """Read one endpoint's stream until it fails, goes silent for the idle bound or the
        watch is cancelled; True when it only went silent. A silent stream is reopened because
        a stopped or cut-off member looks just like a quiet key; reopening on a member that
        does not answer fails, and etcd refuses the new stream on a member without a leader
        (the hasleader metadata), so either way the next pass moves on."""
        idle_s = max(MIN_IDLE_S, 2.0 * self._client.timeout_ms / 1000.0)
        body = dict(self._request)
        if self.next_revision:
            body["start_revision"] = str(self.next_revision)
        try:
            token = self._client._auth_token()
            connection, response = open_stream(endpoint, "/v3/watch", {"create_request": body},
                                               timeout_s=idle_s, context=self._client._context,
                                               token=token)
        except Exception as exc:  # noqa: BLE001 - unreachable or auth failure: next endpoint
            if getattr(exc, "code", 0) == UNAUTHENTICATED:
                self._client._forget_token()
            self._failed(endpoint, f"{type(exc).__name__}: {exc}")
            return False
        with self._lock:
            self._connection = connection
        self._created = False
        try:
            # ``connected`` stays as it is across a reopen after silence; _failed clears it.
            return self._read(endpoint, response)
        finally:
            with self._lock:
                self._connection = None
            connection.close()

    def _read(self, endpoint: Any, response: Any) -> bool:
        while not self._cancelled.is_set():
            try:
                line = response.readline(MAX_LINE_BYTES)
            except socket.timeout:
                if self._created:
                    return True  # quiet past the idle bound: reopen
                self._failed(endpoint, "no answer to the watch request")
                return False
            except (OSError, ValueError) as exc:
                self._failed(endpoint, f"{type(exc).__name__}: {exc}")
                return False
            if not line:
                self._failed(endpoint, "stream closed")
                return False
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except ValueError:
                self._failed(endpoint, "undecodable watch message")
                return False
            if not self._handle(endpoint, message):
                return False
        return False

    def _handle(self, endpoint: Any, message: Dict[str, Any]) -> bool:
        """Deliver one message; False to reconnect."""
        from ._client import KeyValue, WatchEvent

        result = message.get("result")
        if not isinstance(result, dict):
            self._failed(endpoint, str(message.get("error") or "watch error"))
            return False
        if result.get("created"):
            self._created = self.connected = True
            self._client._mark(endpoint, good=True)
            if not self.next_revision:
                revision = int((result.get("header") or {}).get("revision", 0))
                self.next_revision = revision + 1
        if result.get("canceled"):
            compacted = int(result.get("compact_revision", 0) or 0)
            if compacted:  # the history asked for is gone: resume at the oldest kept
                self.next_revision = max(self.next_revision, compacted)
            self._failed(endpoint, str(result.get("cancel_reason") or "watch cancelled"))
            return False
        events = [WatchEvent("delete" if event.get("type") == "DELETE" else "put",
                             KeyValue.from_json(event.get("kv") or {}))
                  for event in result.get("events") or []]
        if events:
            self.next_revision = max(e.kv.mod_revision for e in events) + 1
            try:
                self._on_events(events)
            except Exception:  # noqa: BLE001 - a failing callback must not end the watch
                LOG.exception("etcd watch callback failed")
        return True

    def _failed(self, endpoint: Any, reason: str) -> None:
        if not self._cancelled.is_set():
            self.last_error = f"{endpoint}: {reason}"  # before ``connected`` says why
            self._client._mark(endpoint, good=False)
        self.connected = False
        if self._cancelled.is_set():
            return
        LOG.debug("etcd watch on %s: %s; reconnecting", endpoint, reason)
        time.sleep(0)  # let a cancel() in progress win

