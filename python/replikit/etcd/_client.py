"""EtcdClient: etcd v3 through its JSON gateway, every call bounded, endpoints tried in turn."""

from __future__ import annotations

import base64
import dataclasses
import ssl
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ._errors import (MAX_TTL_S, CoordinationUnavailable, EtcdError, argument_type_error,
                      check_int, check_key, check_timeout_ms, check_value, invalid_argument)
from ._transport import RETRIABLE_CODES, Endpoint, Unreachable, request

MAX_ENDPOINTS = 64
MAX_REVISION = (1 << 63) - 1
RETRY_PAUSE_S = 0.02  # between rounds over all endpoints, while time remains
UNAUTHENTICATED = 16
NOT_FOUND = 5


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: Optional[str]) -> bytes:
    return base64.b64decode(text) if text else b""


@dataclasses.dataclass(frozen=True)
class KeyValue:
    """One key as etcd stores it; revisions are etcd's (the fencing tokens)."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int

    @classmethod
    def from_json(cls, kv: Dict[str, Any]) -> "KeyValue":
        return cls(key=unb64(kv.get("key")).decode("utf-8", "replace"),
                   value=unb64(kv.get("value")),
                   create_revision=int(kv.get("create_revision", 0)),
                   mod_revision=int(kv.get("mod_revision", 0)),
                   lease=int(kv.get("lease", 0)))


@dataclasses.dataclass(frozen=True)
class WatchEvent:
    """A change of a watched key: ``type`` is "put" or "delete"."""

    type: str
    kv: KeyValue


def prefix_end(prefix: bytes) -> bytes:
    """The range end that makes [prefix, end) every key starting with ``prefix``."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"  # every key


class EtcdClient:
    """An etcd v3 client over the JSON gateway (``/v3/...``) of etcd 3.4 and later.

    Args:
        endpoints: client URLs, ``http://HOST:PORT`` or ``https://HOST:PORT``; tried in turn,
            the last one that answered first.
        timeout_ms: bound on every call, over all the endpoints it tries (a watch uses it as
            the bound on each connection attempt and on a silent stream before it reconnects).
        ca_file / cert_file / key_file: TLS files for https endpoints (the CA to trust; a
            client certificate and its key).
        username / password: etcd credentials; the client authenticates (``/v3/auth/
            authenticate``) and sends the token. Neither the password nor the token appears in
            ``repr``, errors or logs.
    """

    def __init__(self, endpoints: Sequence[str], *, timeout_ms: float = 1000.0,
                 ca_file: Optional[str] = None, cert_file: Optional[str] = None,
                 key_file: Optional[str] = None, username: Optional[str] = None,
                 password: Optional[str] = None):
        if isinstance(endpoints, (str, bytes)) or not isinstance(endpoints, Sequence):
            raise argument_type_error("endpoints", "a sequence of URL strings", endpoints)
        if not 1 <= len(endpoints) <= MAX_ENDPOINTS:
            raise invalid_argument("endpoints", f"expected 1..{MAX_ENDPOINTS} URLs, "
                                   f"got {len(endpoints)}")
        self._endpoints = [Endpoint(url) for url in endpoints]
        self.timeout_ms = check_timeout_ms(timeout_ms)
        for name, value in (("ca_file", ca_file), ("cert_file", cert_file),
                            ("key_file", key_file), ("username", username),
                            ("password", password)):
            if value is not None and not isinstance(value, str):
                raise argument_type_error(name, "a str or None", value)
        if (cert_file is None) != (key_file is None):
            raise invalid_argument("key_file" if key_file is None else "cert_file",
                                   "cert_file and key_file go together")
        if (username is None) != (password is None):
            raise invalid_argument("password" if password is None else "username",
                                   "username and password go together")
        self._context = self._tls_context(ca_file, cert_file, key_file)
        self._username = username
        self._password = password
        self._token: Optional[str] = None
        self._lock = threading.Lock()
        self._preferred = 0
        self._closed = False
        self._watches: List[Any] = []

    @staticmethod
    def _tls_context(ca_file: Optional[str], cert_file: Optional[str],
                     key_file: Optional[str]) -> Optional[ssl.SSLContext]:
        if ca_file is None and cert_file is None:
            return None
        try:
            context = ssl.create_default_context(cafile=ca_file)
            if cert_file is not None:
                context.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError) as exc:
            raise invalid_argument("ca_file" if ca_file else "cert_file",
                                   f"cannot load the TLS files: {exc}") from None
        return context

    @property
    def endpoints(self) -> List[str]:
        return [e.url for e in self._endpoints]

    def __repr__(self) -> str:
        auth = ", username=..." if self._username else ""
        tls = ", tls" if self._context is not None else ""
        return (f"EtcdClient([{', '.join(self.endpoints)}], timeout_ms={self.timeout_ms:g}"
                f"{tls}{auth})")

    def __enter__(self) -> "EtcdClient":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Cancel the watches this client started; later calls raise EtcdError."""
        self._closed = True
        for watch in list(self._watches):
            watch.cancel()
        self._watches.clear()

    # ------------------------------------------------------------------ key-value
    def get(self, key: str) -> Optional[KeyValue]:
        """The key's value and revisions, or None when it is absent."""
        return self.get_at(key)[0]

    def get_at(self, key: str) -> Tuple[Optional[KeyValue], int]:
        """The key (None when absent) and the store's revision at the read: a watch from that
        revision + 1 misses no change made after the read, also when the key was absent."""
        answer = self._call("/v3/kv/range", {"key": b64(check_key("key", key))})
        kvs = answer.get("kvs") or []
        return (KeyValue.from_json(kvs[0]) if kvs else None), self._revision(answer)

    def get_prefix(self, prefix: str) -> List[KeyValue]:
        """Every key starting with ``prefix``, in key order."""
        raw = check_key("prefix", prefix)
        answer = self._call("/v3/kv/range", {"key": b64(raw), "range_end": b64(prefix_end(raw))})
        return [KeyValue.from_json(kv) for kv in answer.get("kvs") or []]

    def put(self, key: str, value: Any, *, lease: int = 0) -> int:
        """Set the key; returns the revision of the write."""
        body = self._put_body(key, value, lease)
        return self._revision(self._call("/v3/kv/put", body))

    def create(self, key: str, value: Any, *, lease: int = 0) -> Tuple[bool, int]:
        """Set the key only if it is absent: (created, revision)."""
        body = self._put_body(key, value, lease)
        compare = {"key": body["key"], "result": "EQUAL", "target": "CREATE",
                   "create_revision": "0"}
        return self._txn(compare, body)

    def put_if(self, key: str, value: Any, *, mod_revision: int,
               lease: int = 0) -> Tuple[bool, int]:
        """Set the key only if its last change has revision ``mod_revision`` (0: absent):
        (written, revision)."""
        body = self._put_body(key, value, lease)
        check_int("mod_revision", mod_revision, low=0, high=MAX_REVISION)
        compare = {"key": body["key"], "result": "EQUAL", "target": "MOD",
                   "mod_revision": str(mod_revision)}
        return self._txn(compare, body)

    def delete(self, key: str) -> int:
        """Delete the key (absent is fine); returns the revision after it."""
        answer = self._call("/v3/kv/deleterange", {"key": b64(check_key("key", key))})
        return self._revision(answer)

    # ------------------------------------------------------------------ leases
    def grant(self, ttl_s: int) -> int:
        """A new lease of ``ttl_s`` seconds; returns its id."""
        check_int("ttl_s", ttl_s, low=1, high=MAX_TTL_S)
        answer = self._call("/v3/lease/grant", {"TTL": ttl_s})
        if answer.get("error"):
            raise EtcdError(f"lease grant: {answer['error']}")
        return int(answer.get("ID", 0))

    def keepalive(self, lease_id: int) -> int:
        """Renew the lease once; returns its remaining TTL in seconds, 0 when it has expired
        or is unknown."""
        check_int("lease_id", lease_id, low=1, high=MAX_REVISION)
        try:
            answer = self._call("/v3/lease/keepalive", {"ID": str(lease_id)})
        except EtcdError as exc:
            if exc.code == NOT_FOUND:
                return 0
            raise
        return int((answer.get("result") or {}).get("TTL", 0))

    def revoke(self, lease_id: int) -> None:
        """End the lease now (its keys go); an unknown lease is fine."""
        check_int("lease_id", lease_id, low=1, high=MAX_REVISION)
        try:
            self._call("/v3/lease/revoke", {"ID": str(lease_id)})
        except EtcdError as exc:
            if exc.code != NOT_FOUND:
                raise

    # ------------------------------------------------------------------ watch
    def watch(self, key: str, *, start_revision: int,
              on_events: Callable[[List[WatchEvent]], None], prefix: bool = False) -> Any:
        """Call ``on_events`` (on a background thread) with each batch of changes of ``key``
        (or of every key under it when ``prefix``) from ``start_revision`` on (0: from now).
        The watch reconnects across endpoints by itself, resuming after the last revision
        it delivered; ``Watch.cancel()`` ends it."""
        from ._watch import Watch

        raw = check_key("key", key)
        check_int("start_revision", start_revision, low=0, high=MAX_REVISION)
        if not callable(on_events):
            raise argument_type_error("on_events", "a callable", on_events)
        if not isinstance(prefix, bool):
            raise argument_type_error("prefix", "a bool", prefix)
        request_body: Dict[str, Any] = {"key": b64(raw)}
        if prefix:
            request_body["range_end"] = b64(prefix_end(raw))
        self._check_open()
        watch = Watch(self, request_body, start_revision, on_events)
        self._watches.append(watch)
        watch.start()
        return watch

    # ------------------------------------------------------------------ internals
    def _put_body(self, key: str, value: Any, lease: int) -> Dict[str, Any]:
        body: Dict[str, Any] = {"key": b64(check_key("key", key)), "value": b64(check_value(value))}
        if check_int("lease", lease, low=0, high=MAX_REVISION):
            body["lease"] = str(lease)
        return body

    def _txn(self, compare: Dict[str, Any], put: Dict[str, Any]) -> Tuple[bool, int]:
        answer = self._call("/v3/kv/txn", {"compare": [compare], "success": [{"request_put": put}]},
                            retry_sent=False)
        return bool(answer.get("succeeded", False)), self._revision(answer)

    @staticmethod
    def _revision(answer: Dict[str, Any]) -> int:
        return int((answer.get("header") or {}).get("revision", 0))

    def _check_open(self) -> None:
        if self._closed:
            raise EtcdError("the client is closed")

    def _order(self) -> List[Endpoint]:
        with self._lock:
            first = self._preferred
        return self._endpoints[first:] + self._endpoints[:first]

    def _mark(self, endpoint: Endpoint, good: bool) -> None:
        with self._lock:
            index = self._endpoints.index(endpoint)
            if good:
                self._preferred = index
            elif index == self._preferred:
                self._preferred = (index + 1) % len(self._endpoints)

    def _call(self, path: str, body: Dict[str, Any], *, retry_sent: bool = True,
              authenticate: bool = True, deadline: Optional[float] = None) -> Dict[str, Any]:
        """POST to the first endpoint that answers, within timeout_ms in all (or by
        ``deadline``, time.monotonic()). A request that may have reached an endpoint is sent
        again elsewhere only when ``retry_sent`` (a transaction is not: its outcome would be
        misread)."""
        self._check_open()
        if deadline is None:
            deadline = time.monotonic() + self.timeout_ms / 1000.0
        failures: List[str] = []
        while True:
            order = self._order()
            for position, endpoint in enumerate(order):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                # Leave time for the endpoints not tried yet in this round: a stopped member
                # accepts connections but never answers.
                share = remaining / (len(order) - position)
                answer = self._attempt(endpoint, path, body, share, deadline, retry_sent,
                                       authenticate, failures)
                if answer is not None:
                    return answer
            if time.monotonic() + RETRY_PAUSE_S >= deadline:
                break
            time.sleep(RETRY_PAUSE_S)
        detail = "; ".join(failures[-len(self._endpoints):]) or "no time left"
        raise CoordinationUnavailable(f"etcd {path}: no endpoint answered within "
                                      f"{self.timeout_ms:g} ms ({detail})")

    def _attempt(self, endpoint: Endpoint, path: str, body: Dict[str, Any], timeout_s: float,
                 deadline: float, retry_sent: bool, authenticate: bool,
                 failures: List[str]) -> Optional[Dict[str, Any]]:
        """One endpoint's answer, or None to try the next one."""
        for _ in range(2):  # a second pass only after renewing an expired token
            token = self._auth_token(deadline) if authenticate else None
            try:
                status, answer = request(endpoint, path, body, timeout_s=timeout_s,
                                         context=self._context, token=token)
            except Unreachable as exc:
                self._mark(endpoint, good=False)
                if exc.sent and not retry_sent:
                    raise CoordinationUnavailable(
                        f"etcd {path}: {exc}; the outcome is unknown") from None
                failures.append(str(exc))
                return None
            if status == 200:
                self._mark(endpoint, good=True)
                return answer
            code = int(answer.get("code", 0) or 0)
            message = str(answer.get("error") or answer.get("message") or f"HTTP {status}")
            if code in RETRIABLE_CODES:
                self._mark(endpoint, good=False)
                if not retry_sent:
                    raise CoordinationUnavailable(
                        f"etcd {path}: {endpoint}: {message}; the outcome is unknown")
                failures.append(f"{endpoint}: {message}")
                return None
            if code == UNAUTHENTICATED and authenticate and self._username is not None:
                self._forget_token()  # expired: authenticate again, once
                continue
            raise EtcdError(f"etcd {path}: {message}", code=code)
        raise EtcdError(f"etcd {path}: authentication failed", code=UNAUTHENTICATED)

    def _forget_token(self) -> None:
        with self._lock:
            self._token = None

    def _auth_token(self, deadline: Optional[float] = None) -> Optional[str]:
        """The token to send (authenticating first when there is none), by ``deadline``."""
        if self._username is None:
            return None
        with self._lock:
            if self._token is not None:
                return self._token
        answer = self._call("/v3/auth/authenticate",
                            {"name": self._username, "password": self._password},
                            authenticate=False, deadline=deadline)
        token = answer.get("token")
        if not isinstance(token, str) or not token:
            raise EtcdError("etcd authentication returned no token", code=UNAUTHENTICATED)
        with self._lock:
            self._token = token
        return token
