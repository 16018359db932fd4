"""The middleware: a request's Session from its token, the merged token on the response."""

from __future__ import annotations

import contextvars
from typing import Any, Callable, Optional, Tuple

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async

from .._core import Session
from ..web import _current as _web_current
from .state import Context, State, _context, get_state

_Tokens = Tuple["contextvars.Token[Optional[Context]]", "contextvars.Token[Optional[Session]]"]


class ReplikitMiddleware:
    """MIDDLEWARE = [..., "replikit.django.ReplikitMiddleware", ...]: reads the token from the
    header REPLIKIT['HEADER'] and the cookie REPLIKIT['COOKIE'] (signed with replikit's HMAC
    signer; both merge; a bad one is ignored), makes it the request's session
    (``request.replikit_session``, ``replikit.django.current_session()``), and writes the merged
    token back: the header always, the cookie when it changed.

    Sync and async (Django's sync_capable / async_capable): under ASGI it runs on the event loop,
    so an async view is called without a thread hop; the session is the request's for the view
    either way (a context variable, which Django's sync_to_async carries into a sync view's
    thread)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)  # Django (and the middleware around this one) await it

    def __call__(self, request: Any) -> Any:
        if self._async:
            return self.__acall__(request)
        state, ctx, cookie, tokens = _begin(request)
        try:
            response = self.get_response(request)
            state.resolve(ctx)
        finally:
            _end(tokens)
        return _respond(state, ctx, cookie, response)

    async def __acall__(self, request: Any) -> Any:
        state, ctx, cookie, tokens = _begin(request)
        try:
            response = await self.get_response(request)
            if ctx.pending:  # a write's LSN to read: a query, so in Django's thread for sync code
                await sync_to_async(state.resolve)(ctx)
        finally:
            _end(tokens)
        return _respond(state, ctx, cookie, response)


def _begin(request: Any) -> Tuple[State, Context, Optional[str], _Tokens]:
    """The request's session from its token, made current (undone by _end)."""
    state = get_state()
    t = state.transport
    cookie = request.COOKIES.get(t.cookie) if t.cookie else None
    header = request.headers.get(t.header) if t.header else None
    session = t.session_from(header, cookie)
    ctx = Context(session, state.config.consistency)
    request.replikit_session = session
    return state, ctx, cookie, (_context.set(ctx), _web_current.set(session))


def _end(tokens: _Tokens) -> None:
    _context.reset(tokens[0])
    _web_current.reset(tokens[1])


def _respond(state: State, ctx: Context, cookie: Optional[str], response: Any) -> Any:
    """`response` with the session's token: the header always, the cookie when it changed."""
    t = state.transport
    value = t.token(ctx.session)
    if value is not None:
        if t.header:
            response[t.header] = value
        if t.cookie and value != cookie:
            max_age = None if t.cookie_max_age_ms is None else int(t.cookie_max_age_ms // 1000)
            response.set_cookie(t.cookie, value, max_age=max_age, path=t.cookie_path,
                                domain=t.cookie_domain, secure=t.cookie_secure, httponly=True,
                                samesite=t.cookie_samesite)
    return response
