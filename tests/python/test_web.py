"""replikit.web: the token over HTTP (header, cookie, HMAC-signed), WSGI and ASGI middleware with
minimal apps (no framework), and one WSGI app over a real cluster (replikit.psycopg)."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any, Dict, List, Tuple
from wsgiref.util import setup_testing_defaults

import pytest

import replikit
from replikit import web

KEY = b"web test key, 16+ bytes long"


def written(lsn: str = "0/3000060") -> replikit.Session:
    s = replikit.Session()
    s.record_write(lsn)
    return s


# ------------------------------------------------------------------ TokenTransport


def test_token_round_trip_through_header_and_cookie():
    t = web.TokenTransport(KEY)
    session = written()
    headers = t.response_headers(session)
    names = [n for n, _ in headers]
    assert names == ["X-Replikit-Token", "Set-Cookie"]
    token = headers[0][1]
    assert token == session.token(replikit.HmacSigner(KEY)) and len(token.split(".")) >= 5  # signed
    cookie = headers[1][1]
    assert cookie.startswith(f"replikit_token={token}") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    # Back in: by the header alone, by the cookie alone (as a browser sends it), in any case.
    assert t.session_from_headers({"x-replikit-token": token}) == session
    assert t.session_from_headers([(b"cookie", f"a=1; replikit_token={token}".encode())]) == session
    # An unchanged cookie is not set again; an empty session sends nothing.
    assert [n for n, _ in t.response_headers(session, incoming_cookie=token)] == ["X-Replikit-Token"]
    assert t.response_headers(replikit.Session()) == []


def test_header_and_cookie_merge():
    t = web.TokenTransport(KEY)
    a, b = written("0/3000060"), replikit.Session()
    b.observe("0/5000000")
    merged = t.session_from(t.token(a), t.token(b))
    assert merged.write_lsn == replikit.Lsn("0/3000060") and merged.read_lsn == replikit.Lsn("0/5000000")


def test_bad_or_foreign_tokens_are_ignored_and_counted(caplog):
    t = web.TokenTransport(KEY)
    good = t.token(written())
    assert good is not None
    tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    foreign = written().token(replikit.HmacSigner(b"another key of 16+ bytes"))
    unsigned = written().token()
    for bad in (tampered, foreign, unsigned, "junk", "1." + "F" * 200):
        assert t.session_from(bad) == replikit.Session(), bad
    assert t.rejected == 5
    assert "replikit token in the header ignored" in caplog.text
    assert t.session_from(good, tampered) == written()  # the good one still counts
    assert t.rejected == 6


def test_cookie_attributes():
    t = web.TokenTransport(KEY, header=None, cookie="rk", cookie_path="/app", cookie_samesite="Strict",
                           cookie_secure=True, cookie_domain="example.org", cookie_max_age_ms=60_000)
    headers = t.response_headers(written())
    assert [n for n, _ in headers] == ["Set-Cookie"]
    value = headers[0][1]
    for part in ("Path=/app", "SameSite=Strict", "Secure", "Domain=example.org", "Max-Age=60", "HttpOnly"):
        assert part in value, value


@pytest.mark.parametrize("kwargs, cls, argument", [
    ({"key": b"short"}, replikit.InvalidArgument, "key"),
    ({"key": 12345}, replikit.ArgumentTypeError, "key"),
    ({"key": KEY, "header": ""}, replikit.InvalidArgument, "header"),
    ({"key": KEY, "header": "X Token"}, replikit.InvalidArgument, "header"),
    ({"key": KEY, "cookie": 3}, replikit.ArgumentTypeError, "cookie"),
    ({"key": KEY, "header": None, "cookie": None}, replikit.InvalidArgument, "header"),
    ({"key": KEY, "cookie_samesite": "lax"}, replikit.InvalidArgument, "cookie_samesite"),
    ({"key": KEY, "cookie_max_age_ms": -1}, replikit.InvalidArgument, "cookie_max_age_ms"),
    ({"key": KEY, "cookie_max_age_ms": float("nan")}, replikit.InvalidArgument, "cookie_max_age_ms"),
])
def test_bad_arguments_name_the_argument(kwargs, cls, argument):
    key = kwargs.pop("key")
    with pytest.raises(cls) as info:
        web.TokenTransport(key, **kwargs)
    assert info.value.argument == argument


def test_middleware_arguments():
    with pytest.raises(replikit.InvalidArgument) as info:
        web.WSGIMiddleware(lambda e, s: [])
    assert info.value.argument == "key"
    with pytest.raises(replikit.InvalidArgument) as info:
        web.ASGIMiddleware(None, KEY, transport=web.TokenTransport(KEY))
    assert info.value.argument == "transport"
    with pytest.raises(replikit.ArgumentTypeError):
        with web.use_session("1.0.0.0"):  # type: ignore[arg-type]
            pass
    assert isinstance(web.signer_of("a str key of 16+ bytes"), replikit.TokenSigner)


# ------------------------------------------------------------------ WSGI and ASGI, no database


def wsgi_call(app: Any, headers: Dict[str, str]) -> Tuple[str, List[Tuple[str, str]], bytes]:
    environ: Dict[str, Any] = {}
    setup_testing_defaults(environ)
    for name, value in headers.items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    captured: Dict[str, Any] = {}

    def start_response(status: str, response_headers: List[Tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"], captured["headers"] = status, response_headers
        return io.BytesIO().write

    body = app(environ, start_response)
    try:
        data = b"".join(body)
    finally:
        body.close()
    return captured["status"], captured["headers"], data


def recording_wsgi_app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
    """Reports what the request's session required, then 'writes' (records an LSN)."""
    session = web.current_session()
    assert session is environ[web.ENVIRON_KEY]
    seen = str(session.write_lsn)
    session.record_write("0/7000000")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [seen.encode()]


def test_wsgi_middleware_carries_the_session_both_ways():
    app = web.WSGIMiddleware(recording_wsgi_app, KEY)
    status, headers, body = wsgi_call(app, {})
    assert status == "200 OK" and body == b"0/0"
    token = dict(headers)["X-Replikit-Token"]
    assert replikit.Session.from_token(token, replikit.HmacSigner(KEY)).write_lsn == replikit.Lsn("0/7000000")
    assert web.current_session() is None  # reset when the server closed the body
    # The next request (another process would do the same) starts from that token.
    _, headers2, body2 = wsgi_call(app, {"X-Replikit-Token": token})
    assert body2 == b"0/7000000"
    # ... and through the cookie the first response set.
    cookie = dict(headers)["Set-Cookie"].split(";")[0]
    _, headers3, body3 = wsgi_call(app, {"Cookie": cookie})
    assert body3 == b"0/7000000" and "Set-Cookie" not in dict(headers3)  # unchanged: not set again


def test_asgi_middleware_carries_the_session_both_ways():
    async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        session = web.current_session()
        assert session is scope[web.ENVIRON_KEY]
        seen = str(session.write_lsn)
        session.record_write("0/9000000")
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": seen.encode()})

    async def call(headers: List[Tuple[bytes, bytes]]) -> List[Dict[str, Any]]:
        sent: List[Dict[str, Any]] = []

        async def receive() -> Dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: Dict[str, Any]) -> None:
            sent.append(message)

        await web.ASGIMiddleware(app, KEY)({"type": "http", "headers": headers}, receive, send)
        assert web.current_session() is None
        return sent

    first = asyncio.run(call([]))
    assert first[1]["body"] == b"0/0"
    headers = dict(first[0]["headers"])
    token = headers[b"x-replikit-token"].decode()
    second = asyncio.run(call([(b"x-replikit-token", token.encode())]))
    assert second[1]["body"] == b"0/9000000"
    cookie = headers[b"set-cookie"].split(b";")[0]
    third = asyncio.run(call([(b"cookie", cookie)]))
    assert third[1]["body"] == b"0/9000000" and b"set-cookie" not in dict(third[0]["headers"])

    lifespan: List[str] = []

    async def other(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        lifespan.append(scope["type"])

    asyncio.run(web.ASGIMiddleware(other, KEY)({"type": "lifespan"}, None, None))
    assert lifespan == ["lifespan"]


def test_concurrent_requests_and_tasks_each_have_their_session():
    """Two ASGI requests served concurrently on one event loop, interleaved at an await inside
    the app, and two tasks in use_session() blocks: each sees its own session throughout (a
    context variable per task), and none is left current afterwards."""
    started = [asyncio.Event(), asyncio.Event()]

    async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        mine = scope["path"] == "/a"
        started[0 if mine else 1].set()
        await started[1 if mine else 0].wait()  # both requests are inside the app now
        session = web.current_session()
        assert session is scope[web.ENVIRON_KEY]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(session.write_lsn).encode()})

    transport = web.TokenTransport(KEY)

    async def call(path: str, lsn: str) -> bytes:
        sent: List[Dict[str, Any]] = []

        async def send(message: Dict[str, Any]) -> None:
            sent.append(message)

        headers = [(b"x-replikit-token", transport.token(written(lsn)).encode())]
        await web.ASGIMiddleware(app, transport=transport)({"type": "http", "path": path, "headers": headers},
                                                          None, send)
        return bytes(sent[1]["body"])

    async def in_scope(session: replikit.Session, mine: asyncio.Event, other: asyncio.Event) -> bool:
        with web.use_session(session):
            mine.set()
            await other.wait()
            return web.current_session() is session

    async def main() -> Tuple[Any, Any, Any]:
        requests = await asyncio.gather(call("/a", "0/1000000"), call("/b", "0/2000000"))
        a, b = asyncio.Event(), asyncio.Event()
        scopes = await asyncio.gather(in_scope(written(), a, b), in_scope(written(), b, a))
        return requests, scopes, web.current_session()

    requests, scopes, after = asyncio.run(main())
    assert requests == [b"0/1000000", b"0/2000000"] and scopes == [True, True] and after is None


# ------------------------------------------------------------------ a WSGI app over a real cluster


@pytest.mark.pg
def test_wsgi_app_over_a_cluster_reads_its_writes_through_the_token(pg_cluster_reset):
    """Two WSGI app instances (two routers, as two processes would have) share nothing but the
    token: with both replicas' replay paused, a read on the second app with the first app's
    token sees the row (served by the primary); without the token it reads a replica that does
    not have it."""
    pytest.importorskip("psycopg_pool")
    from replikit.psycopg import ConnectionRouter

    cluster = pg_cluster_reset
    cluster.sql("primary", "CREATE TABLE IF NOT EXISTS rk_web_notes (id bigserial PRIMARY KEY, v text)")
    cluster.wait_caught_up(timeout_ms=10_000)

    def make_app(router: ConnectionRouter) -> Any:
        def app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
            session = web.current_session()
            if environ["REQUEST_METHOD"] == "POST":
                with router.write(session) as conn:
                    row = conn.execute("INSERT INTO rk_web_notes (v) VALUES ('n') RETURNING id").fetchone()
                out = {"id": row[0]}
            else:
                with router.read(session, wait_for_replica_ms=0) as conn:
                    ids = [r[0] for r in conn.execute("SELECT id FROM rk_web_notes").fetchall()]
                out = {"ids": ids, "node": router.last_route.node}
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(out).encode()]
        return web.WSGIMiddleware(app, KEY)

    replicas = [(n, cluster.dsn(n)) for n in cluster.replica_names]
    with ConnectionRouter(("primary", cluster.dsn("primary")), replicas) as ra, \
            ConnectionRouter(("primary", cluster.dsn("primary")), replicas) as rb:
        assert ra.wait_probes(2, 5000) and rb.wait_probes(2, 5000)
        app_a, app_b = make_app(ra), make_app(rb)
        for name in cluster.replica_names:
            cluster.pause_replay(name)
        for _ in range(3):
            _, headers, body = wsgi_call(lambda e, s: app_a(dict(e, REQUEST_METHOD="POST"), s), {})
            new_id = json.loads(body)["id"]
            token = dict(headers)["X-Replikit-Token"]
            _, _, with_token = wsgi_call(app_b, {"X-Replikit-Token": token})
            _, _, without = wsgi_call(app_b, {})
            with_token_out, without_out = json.loads(with_token), json.loads(without)
            assert new_id in with_token_out["ids"] and with_token_out["node"] == "primary"
            assert new_id not in without_out["ids"] and without_out["node"] != "primary"


@pytest.mark.pg
def test_asgi_app_over_a_cluster_reads_its_writes_through_the_token(pg_cluster_reset):
    """The same with asyncio: an ASGI app over AsyncConnectionRouter; the request's session is
    the middleware's, through the context variable, across awaits."""
    pytest.importorskip("psycopg_pool")
    from replikit.psycopg import AsyncConnectionRouter

    cluster = pg_cluster_reset
    cluster.sql("primary", "CREATE TABLE IF NOT EXISTS rk_web_notes (id bigserial PRIMARY KEY, v text)")
    cluster.wait_caught_up(timeout_ms=10_000)
    replicas = [(n, cluster.dsn(n)) for n in cluster.replica_names]

    def make_app(router: Any) -> Any:
        async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
            session = web.current_session()
            if scope["method"] == "POST":
                async with router.write(session) as conn:
                    cur = await conn.execute("INSERT INTO rk_web_notes (v) VALUES ('a') RETURNING id")
                    out: Dict[str, Any] = {"id": (await cur.fetchone())[0]}
            else:
                async with router.read(session, wait_for_replica_ms=0) as conn:
                    cur = await conn.execute("SELECT id FROM rk_web_notes")
                    out = {"ids": [r[0] for r in await cur.fetchall()], "node": router.last_route.node}
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": json.dumps(out).encode()})
        return web.ASGIMiddleware(app, KEY)

    async def call(app: Any, method: str, headers: List[Tuple[bytes, bytes]]) -> Tuple[Dict[bytes, bytes], Any]:
        sent: List[Dict[str, Any]] = []

        async def send(message: Dict[str, Any]) -> None:
            sent.append(message)

        await app({"type": "http", "method": method, "headers": headers}, None, send)
        return dict(sent[0]["headers"]), json.loads(sent[1]["body"])

    async def scenario() -> None:
        async with AsyncConnectionRouter(("primary", cluster.dsn("primary")), replicas) as ra, \
                AsyncConnectionRouter(("primary", cluster.dsn("primary")), replicas) as rb:
            assert await ra.wait_probes(2, 5000) and await rb.wait_probes(2, 5000)
            app_a, app_b = make_app(ra), make_app(rb)
            for name in cluster.replica_names:
                cluster.pause_replay(name)
            for _ in range(3):
                headers, posted = await call(app_a, "POST", [])
                token = headers[b"x-replikit-token"]
                _, with_token = await call(app_b, "GET", [(b"x-replikit-token", token)])
                _, without = await call(app_b, "GET", [])
                assert posted["id"] in with_token["ids"] and with_token["node"] == "primary"
                assert posted["id"] not in without["ids"] and without["node"] != "primary"

    asyncio.run(scenario())
