"""HTTP(S) to one etcd endpoint's v3 JSON gateway: one bounded request, or a streaming one."""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse
from typing import Any, Dict, Optional, Tuple

from ._errors import argument_type_error, invalid_argument

# gRPC status codes that say "this endpoint cannot serve now; another may" (etcd reports them
# for a member without a leader, a timed-out proposal, a member stopping).
RETRIABLE_CODES = {4, 14}  # DEADLINE_EXCEEDED, UNAVAILABLE
MAX_RESPONSE_BYTES = 64 << 20


class Endpoint:
    """A parsed endpoint URL: scheme http or https, a host and a port; no path, no userinfo."""

    def __init__(self, url: str):
        if not isinstance(url, str):
            raise argument_type_error("endpoints", "a sequence of URL strings", url)
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise invalid_argument("endpoints", f"expected http://HOST:PORT or https://HOST:PORT, "
                                   f"got {url!r}")
        if parsed.username or parsed.password:
            raise invalid_argument("endpoints", "credentials belong in username/password, "
                                   "not in the URL")
        if parsed.path not in ("", "/") or parsed.query or parsed.fragment:
            raise invalid_argument("endpoints", f"expected no path or query, got {url!r}")
        try:
            port = parsed.port
        except ValueError:
            raise invalid_argument("endpoints", f"bad port in {url!r}") from None
        self.tls = parsed.scheme == "https"
        self.host = parsed.hostname
        self.port = port or 2379
        self.url = f"{parsed.scheme}://{parsed.netloc}"

    def connect(self, timeout_s: float,
                context: Optional[ssl.SSLContext]) -> http.client.HTTPConnection:
        if self.tls:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout_s,
                                               context=context)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout_s)

    def __repr__(self) -> str:
        return self.url


class Unreachable(Exception):
    """This endpoint did not answer (``sent``: the request may have reached it)."""

    def __init__(self, message: str, *, sent: bool, code: int = 0):
        super().__init__(message)
        self.sent = sent
        self.code = code  # the gRPC code of an error answer (16: the auth token is invalid)


def headers(token: Optional[str]) -> Dict[str, str]:
    out = {"Content-Type": "application/json"}
    if token:
        out["Authorization"] = token
    return out


def request(endpoint: Endpoint, path: str, body: Dict[str, Any], *, timeout_s: float,
            context: Optional[ssl.SSLContext], token: Optional[str]) -> Tuple[int, Dict[str, Any]]:
    """POST ``body`` to ``path``; (HTTP status, decoded JSON). Raises Unreachable when the
    endpoint did not answer within ``timeout_s`` (connect and read each bounded by it)."""
    connection = endpoint.connect(timeout_s, context)
    sent = False
    try:
        try:
            connection.connect()
        except (OSError, http.client.HTTPException) as exc:
            raise Unreachable(f"{endpoint}: {type(exc).__name__}: {exc}", sent=False) from None
        try:
            sent = True
            connection.request("POST", path, body=json.dumps(body), headers=headers(token))
            response = connection.getresponse()
            data = response.read(MAX_RESPONSE_BYTES)
        except (OSError, http.client.HTTPException) as exc:
            raise Unreachable(f"{endpoint}: {type(exc).__name__}: {exc}", sent=sent) from None
    finally:
        connection.close()
    try:
        decoded = json.loads(data.splitlines()[0] if data else b"{}")
    except ValueError:
        decoded = {"error": f"undecodable answer (HTTP {response.status})", "code": 0}
    if not isinstance(decoded, dict):
        decoded = {"error": f"unexpected answer (HTTP {response.status})", "code": 0}
    return response.status, decoded


def open_stream(endpoint: Endpoint, path: str, body: Dict[str, Any], *, timeout_s: float,
                context: Optional[ssl.SSLContext], token: Optional[str]
                ) -> Tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """POST ``body`` and return the open response to read line by line (the watch stream).
    Each read is bounded by ``timeout_s`` (socket.timeout when nothing arrives)."""
    connection = endpoint.connect(timeout_s, context)
    # gRPC metadata through the gateway: etcd cancels the watch when this member has no leader
    # instead of keeping a stream that will never deliver.
    stream_headers = dict(headers(token), **{"Grpc-Metadata-hasleader": "true"})
    try:
        connection.request("POST", path, body=json.dumps(body), headers=stream_headers)
        response = connection.getresponse()
    except (OSError, http.client.HTTPException) as exc:
        connection.close()
        raise Unreachable(f"{endpoint}: {type(exc).__name__}: {exc}", sent=True) from None
    if response.status != 200:
        try:
            answer = json.loads(response.read(MAX_RESPONSE_BYTES) or b"{}")
        except (OSError, ValueError, http.client.HTTPException):
            answer = {}
        connection.close()
        # A streaming call's error nests: {"error": {"grpc_code": 14, "message": ...}}.
        error = answer.get("error") if isinstance(answer, dict) else None
        code = int((error.get("grpc_code") if isinstance(error, dict) else
                    answer.get("code") if isinstance(answer, dict) else 0) or 0)
        raise Unreachable(f"{endpoint}: watch answered HTTP {response.status}", sent=True,
                          code=code)
    return connection, response
