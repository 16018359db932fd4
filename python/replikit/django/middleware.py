"""The middleware: a request's Session from its token, the merged token on the response."""

from __future__ import annotations

from typing import Any, Callable

from ..web import _current as _web_current
from .state import Context, _context, get_state


class ReplikitMiddleware:
    """MIDDLEWARE = [..., "replikit.django.ReplikitMiddleware", ...]: reads the token from the
    header REPLIKIT['HEADER'] and the cookie REPLIKIT['COOKIE'] (signed with replikit's HMAC
    signer; both merge; a bad one is ignored), makes it the request's session
    (``request.replikit_session``, ``replikit.django.current_session()``), and writes the merged
    token back: the header always, the cookie when it changed."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        state = get_state()
        t = state.transport
        cookie = request.COOKIES.get(t.cookie) if t.cookie else None
        header = request.headers.get(t.header) if t.header else None
        session = t.session_from(header, cookie)
        ctx = Context(session, state.config.consistency)
        request.replikit_session = session
        token, web_token = _context.set(ctx), _web_current.set(session)
        try:
            response = self.get_response(request)
            state.resolve(ctx)
        finally:
            _context.reset(token)
            _web_current.reset(web_token)
        value = t.token(session)
        if value is not None:
            if t.header:
                response[t.header] = value
            if t.cookie and value != cookie:
                max_age = None if t.cookie_max_age_ms is None else int(t.cookie_max_age_ms // 1000)
                response.set_cookie(t.cookie, value, max_age=max_age, path=t.cookie_path,
                                    domain=t.cookie_domain, secure=t.cookie_secure, httponly=True,
                                    samesite=t.cookie_samesite)
        return response
