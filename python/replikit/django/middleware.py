"""The middleware: a request's Session from its token, the merged token on the response."""

from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from .state import Context, SessionScope, get_state


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
        scope, cookie = _begin(request)
        with scope:
            response = self.get_response(request)
        return _respond(scope, cookie, response)

    async def __acall__(self, request: Any) -> Any:
        scope, cookie = _begin(request)
        async with scope:
            response = await self.get_response(request)
        return _respond(scope, cookie, response)


def _begin(request: Any) -> Tuple[SessionScope, Optional[str]]:
    """The request's session from its token (a scope to enter) and its cookie."""
    state = get_state()
    t = state.transport
    cookie = request.COOKIES.get(t.cookie) if t.cookie else None
    header = request.headers.get(t.header) if t.header else None
    session = t.session_from(header, cookie)
    request.replikit_session = session
    return SessionScope(state, Context(session, state.config.consistency)), cookie


def _respond(scope: SessionScope, cookie: Optional[str], response: Any) -> Any:
    """`response` with the session's token: the header always, the cookie when it changed."""
    t = scope.state.transport
    value = t.token(scope.ctx.session)
    if value is not None:
        if t.header:
            response[t.header] = value
        if t.cookie and value != cookie:
            max_age = None if t.cookie_max_age_ms is None else int(t.cookie_max_age_ms // 1000)
            response.set_cookie(t.cookie, value, max_age=max_age, path=t.cookie_path,
                                domain=t.cookie_domain, secure=t.cookie_secure, httponly=True,
                                samesite=t.cookie_samesite)
    return response
