"""Session tokens over HTTP for any web framework: header and cookie helpers, WSGI and ASGI
middleware.

A request's replikit Session comes from its token (a header, a cookie, or both: they merge),
signed with replikit's HMAC signer; the merged token goes back on the response in the same
header and, when it changed, the cookie. One line per framework::

    app.wsgi_app = replikit.web.WSGIMiddleware(app.wsgi_app, key=SECRET)   # Flask
    app.add_middleware(replikit.web.ASGIMiddleware, key=SECRET)            # FastAPI/Starlette

Inside the request, ``replikit.web.current_session()`` is the request's Session (also in the
WSGI environ and the ASGI scope as ``"replikit.session"``): pass it to ``router.write(...)``
and ``router.read(...)``. A token that is malformed or fails its signature is ignored (the
request starts with an empty session; ``TokenTransport.rejected`` counts them, the
``replikit`` logger says so): it could only have asked for more than the request needs.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import logging
from http.cookies import CookieError, SimpleCookie
from typing import Any, Awaitable, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

from . import _core
from ._core import HmacSigner, Session, TokenError, TokenSigner

logger = logging.getLogger("replikit")

DEFAULT_HEADER = "X-Replikit-Token"
DEFAULT_COOKIE = "replikit_token"
MIN_KEY_BYTES = 16
SAMESITE = ("Lax", "Strict", "None")
ENVIRON_KEY = "replikit.session"  # in a WSGI environ and an ASGI scope

_current: contextvars.ContextVar[Optional[Session]] = contextvars.ContextVar("replikit_session", default=None)
_EMPTY = Session()

Key = Union[bytes, str, TokenSigner]


def _argument_error(cls: type, argument: str, message: str) -> Exception:
    err: Exception = cls(f"{argument}: {message}")
    err.argument = argument  # type: ignore[attr-defined]
    return err


def current_session() -> Optional[Session]:
    """The Session of the request being served (set by the middleware or use_session), or None."""
    return _current.get()


@contextlib.contextmanager
def use_session(session: Session) -> Iterator[Session]:
    """Makes `session` the current one for the block (what the middleware does per request)."""
    if not isinstance(session, Session):
        raise _argument_error(_core.ArgumentTypeError, "session",
                              f"expected a replikit.Session, got {type(session).__name__}")
    token = _current.set(session)
    try:
        yield session
    finally:
        _current.reset(token)


def signer_of(key: Key) -> TokenSigner:
    """An HmacSigner for `key` (bytes, or str taken as UTF-8; at least 16 bytes); a TokenSigner
    is returned as it is."""
    if isinstance(key, TokenSigner):
        return key
    if isinstance(key, str):
        key = key.encode()
    if not isinstance(key, bytes):
        raise _argument_error(_core.ArgumentTypeError, "key",
                              f"expected bytes, str or a replikit.TokenSigner, got {type(key).__name__}")
    if len(key) < MIN_KEY_BYTES:
        raise _argument_error(_core.InvalidArgument, "key",
                              f"must be at least {MIN_KEY_BYTES} bytes, got {len(key)}")
    return HmacSigner(key)


def _http_name(value: Any, argument: str, allow_none: bool) -> Optional[str]:
    if value is None and allow_none:
        return None
    if not isinstance(value, str):
        raise _argument_error(_core.ArgumentTypeError, argument, f"expected a str, got {type(value).__name__}")
    if not value or not all(c.isalnum() or c in "-_." for c in value):
        raise _argument_error(_core.InvalidArgument, argument,
                              f"must be a non-empty name of letters, digits, '-', '_' or '.', got {value!r}")
    return value


class TokenTransport:
    """Reads a request's Session from its header and cookie, and writes the token back.

    ``key``: the signing key (bytes/str, >= 16 bytes) or a TokenSigner; tokens without a valid
    signature are ignored. ``header``: the header name (None: not used). ``cookie``: the
    cookie name (None: not used); the cookie is HttpOnly, with ``cookie_path``,
    ``cookie_samesite``, ``cookie_secure``, ``cookie_domain`` and ``cookie_max_age_ms``
    (None: a browser-session cookie)."""

    def __init__(self, key: Key, *, header: Optional[str] = DEFAULT_HEADER,
                 cookie: Optional[str] = DEFAULT_COOKIE, cookie_path: str = "/",
                 cookie_samesite: str = "Lax", cookie_secure: bool = False,
                 cookie_domain: Optional[str] = None, cookie_max_age_ms: Optional[float] = None) -> None:
        self.signer = signer_of(key)
        self.header = _http_name(header, "header", True)
        self.cookie = _http_name(cookie, "cookie", True)
        if self.header is None and self.cookie is None:
            raise _argument_error(_core.InvalidArgument, "header", "header and cookie are both None: "
                                  "the token would travel nowhere")
        if cookie_samesite not in SAMESITE:
            raise _argument_error(_core.InvalidArgument, "cookie_samesite",
                                  f"must be one of {', '.join(SAMESITE)}, got {cookie_samesite!r}")
        if cookie_max_age_ms is not None and (isinstance(cookie_max_age_ms, bool) or not isinstance(
                cookie_max_age_ms, (int, float)) or not 0 <= cookie_max_age_ms < 1e13):
            raise _argument_error(_core.InvalidArgument, "cookie_max_age_ms",
                                  f"must be None or a number of ms in [0, 1e13), got {cookie_max_age_ms!r}")
        self.cookie_path = cookie_path
        self.cookie_samesite = cookie_samesite
        self.cookie_secure = bool(cookie_secure)
        self.cookie_domain = cookie_domain
        self.cookie_max_age_ms = cookie_max_age_ms
        self._rejected = itertools.count()

    @property
    def rejected(self) -> int:
        """Tokens ignored so far (malformed, tampered, or signed with another key)."""
        return int(repr(self._rejected)[6:-1])

    # ------------------------------------------------------------------ reading
    def session_from(self, header_value: Optional[str] = None, cookie_value: Optional[str] = None) -> Session:
        """A new Session merging the tokens given (either may be None or empty)."""
        session = Session()
        for where, value in (("cookie", cookie_value), ("header", header_value)):
            if not value:
                continue
            try:
                session.merge(value, self.signer)
            except (TokenError, _core.InvalidArgument, TypeError) as exc:
                next(self._rejected)
                logger.warning("replikit token in the %s ignored: %s", where, exc)
        return session

    def cookie_value(self, cookie_header: Optional[str]) -> Optional[str]:
        """This transport's cookie in a Cookie header's text (None: absent or unparsable)."""
        if self.cookie is None or not cookie_header:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(cookie_header)
        except CookieError:
            return None
        morsel = jar.get(self.cookie)
        return None if morsel is None else morsel.value

    def session_from_headers(self, headers: Union[Mapping[str, str], Iterable[Tuple[Any, Any]]]) -> Session:
        """The Session of a request given its headers (a mapping or (name, value) pairs, str or
        bytes; names in any case; several Cookie headers are joined)."""
        items = headers.items() if isinstance(headers, Mapping) else headers
        header_value: Optional[str] = None
        cookies: List[str] = []
        wanted = None if self.header is None else self.header.lower()
        for name, value in items:
            name = name.decode("latin-1") if isinstance(name, bytes) else str(name)
            value = value.decode("latin-1") if isinstance(value, bytes) else str(value)
            lname = name.lower()
            if lname == wanted:
                header_value = value.strip()
            elif lname == "cookie":
                cookies.append(value)
        return self.session_from(header_value, self.cookie_value("; ".join(cookies)))

    # ------------------------------------------------------------------ writing
    def token(self, session: Session) -> Optional[str]:
        """The signed token of `session` (None for an empty session: nothing to carry)."""
        if session == _EMPTY:
            return None
        return session.token(self.signer)

    def set_cookie(self, token: str) -> str:
        """A Set-Cookie header value carrying `token`."""
        assert self.cookie is not None
        jar: SimpleCookie = SimpleCookie()
        jar[self.cookie] = token
        morsel = jar[self.cookie]
        morsel["path"] = self.cookie_path
        morsel["httponly"] = True
        morsel["samesite"] = self.cookie_samesite
        if self.cookie_secure:
            morsel["secure"] = True
        if self.cookie_domain:
            morsel["domain"] = self.cookie_domain
        if self.cookie_max_age_ms is not None:
            morsel["max-age"] = str(int(self.cookie_max_age_ms // 1000))
        return morsel.OutputString()

    def response_headers(self, session: Session, incoming_cookie: Optional[str] = None) -> List[Tuple[str, str]]:
        """The headers that carry `session` back: the token header, and Set-Cookie when the
        token differs from the request's cookie (`incoming_cookie`). Empty for an empty session."""
        token = self.token(session)
        if token is None:
            return []
        out = []
        if self.header is not None:
            out.append((self.header, token))
        if self.cookie is not None and token != incoming_cookie:
            out.append(("Set-Cookie", self.set_cookie(token)))
        return out


def _transport(key: Optional[Key], transport: Optional[TokenTransport], kwargs: Dict[str, Any]) -> TokenTransport:
    if transport is not None:
        if key is not None or kwargs:
            raise _argument_error(_core.InvalidArgument, "transport",
                                  "give either a TokenTransport or its arguments, not both")
        if not isinstance(transport, TokenTransport):
            raise _argument_error(_core.ArgumentTypeError, "transport",
                                  f"expected a TokenTransport, got {type(transport).__name__}")
        return transport
    if key is None:
        raise _argument_error(_core.InvalidArgument, "key", "a signing key (or a TokenTransport) is required")
    return TokenTransport(key, **kwargs)


def _reset(token: "contextvars.Token[Optional[Session]]") -> None:
    try:
        _current.reset(token)
    except ValueError:  # closed from another context (another thread): nothing of ours to undo
        pass


class _ClosingIterable:
    """A WSGI body that resets the request's current session when the server closes it."""

    def __init__(self, body: Iterable[bytes], reset: Callable[[], None]) -> None:
        self.body = body
        self.reset = reset

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.reset()


class WSGIMiddleware:
    """WSGI middleware: the request's Session from the token, the merged token on the response
    (added when the app calls start_response; writes made after that are not carried)."""

    def __init__(self, app: Callable[..., Iterable[bytes]], key: Optional[Key] = None, *,
                 transport: Optional[TokenTransport] = None, **kwargs: Any) -> None:
        self.app = app
        self.transport = _transport(key, transport, kwargs)
        self._environ_header = (None if self.transport.header is None
                                else "HTTP_" + self.transport.header.upper().replace("-", "_"))

    def __call__(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        t = self.transport
        cookie = t.cookie_value(environ.get("HTTP_COOKIE"))
        header = environ.get(self._environ_header) if self._environ_header else None
        session = t.session_from(header, cookie)
        environ[ENVIRON_KEY] = session

        def start(status: str, headers: List[Tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, list(headers) + t.response_headers(session, cookie), exc_info)

        token = _current.set(session)
        try:
            body = self.app(environ, start)
        except BaseException:
            _current.reset(token)
            raise
        return _ClosingIterable(body, lambda: _reset(token))


class ASGIMiddleware:
    """ASGI middleware (HTTP scopes; others pass through): the request's Session from the token,
    the merged token added to the response's headers when it starts."""

    def __init__(self, app: Callable[..., Awaitable[None]], key: Optional[Key] = None, *,
                 transport: Optional[TokenTransport] = None, **kwargs: Any) -> None:
        self.app = app
        self.transport = _transport(key, transport, kwargs)

    async def __call__(self, scope: Dict[str, Any], receive: Callable[..., Awaitable[Any]],
                       send: Callable[..., Awaitable[None]]) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        t = self.transport
        session = t.session_from_headers(scope.get("headers", ()))
        cookie = None
        for name, value in scope.get("headers", ()):
            if name.lower() == b"cookie":
                found = t.cookie_value(value.decode("latin-1"))
                cookie = found if found is not None else cookie
        scope = dict(scope)
        scope[ENVIRON_KEY] = session

        async def send_with_token(message: Dict[str, Any]) -> None:
            if message.get("type") == "http.response.start":
                extra = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                         for k, v in t.response_headers(session, cookie)]
                message = dict(message, headers=list(message.get("headers", ())) + extra)
            await send(message)

        token = _current.set(session)
        try:
            await self.app(scope, receive, send_with_token)
        finally:
            _current.reset(token)


__all__ = ["ASGIMiddleware", "DEFAULT_COOKIE", "DEFAULT_HEADER", "ENVIRON_KEY", "TokenTransport",
           "WSGIMiddleware", "current_session", "signer_of", "use_session"]
