"""replikit.django under ASGI and in async code, against the session's real cluster (the setup
of test_django.py): the middleware is sync and async capable and runs on the event loop (no
thread hop before an async view), async views read their writes, ``async with use_session()``."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest

import replikit

pytest.importorskip("django")
pytest.importorskip("psycopg_pool")

from django_helpers import HEADER  # noqa: E402

pytestmark = pytest.mark.pg

ASYNC_URLS = "replikit_test_async_urls"


def async_urls():
    """A URLconf with the example's (sync) view and an async twin of it, as a module of its own."""
    import types

    from django.http import JsonResponse
    from django.urls import path

    from comments import views
    from comments.models import Comment

    async def comments_async(request):
        if request.method == "POST":
            body = json.loads(request.body)
            comment = await Comment.objects.acreate(thread=body["thread"], author=body["author"], text=body["text"])
            return JsonResponse({"id": comment.id}, status=201)
        found = [{"id": c.id} async for c in Comment.objects.filter(thread=request.GET["thread"]).order_by("-id")]
        route = replikit.django.last_route()
        return JsonResponse({"comments": found, "node": route.node or "primary",
                             "session_is_the_requests": replikit.django.current_session() is request.replikit_session})

    module = types.ModuleType(ASYNC_URLS)
    module.urlpatterns = [path("comments", views.comments), path("async/comments", comments_async)]
    sys.modules[ASYNC_URLS] = module
    return module


def test_async_and_sync_views_under_asgi_read_their_writes(rd, pg_cluster_reset, monkeypatch):
    """Django's AsyncClient (the ASGI handler): the middleware runs on the event loop (no thread
    hop before an async view), and with r1's replay paused every read after a write, async view
    or sync view, with the token header only, sees the write and is never served by r1; the
    autocommit write of an async view has its LSN read before the response. The session the
    view sees is the request's, and the cookie carries it too."""
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient, override_settings

    cluster = pg_cluster_reset
    state = rd.get_state()
    on_loop = []
    read_token = state.transport.session_from

    def spy(*args):
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return read_token(*args)

    monkeypatch.setattr(state.transport, "session_from", spy)
    async_urls()
    paths = [("async/comments", "async/comments"), ("comments", "async/comments"), ("async/comments", "comments"),
             ("comments", "comments")]

    async def scenario():
        stale, nodes = 0, []
        for k in range(6):
            for write_path, read_path in paths:
                thread = f"asgi-{k}-{write_path}-{read_path}"
                response = await AsyncClient().post(
                    "/" + write_path, json.dumps({"thread": thread, "author": "a", "text": "x"}),
                    content_type="application/json")
                assert response.status_code == 201, response.content
                new_id, token = response.json()["id"], response.headers[HEADER]
                body = (await AsyncClient().get("/" + read_path, {"thread": thread},
                                                headers={HEADER: token})).json()
                stale += new_id not in [c["id"] for c in body["comments"]]
                nodes.append(body["node"])
                assert body.get("session_is_the_requests", True)
        client = AsyncClient()  # the cookie carries the session between requests too
        response = await client.post("/async/comments", json.dumps({"thread": "asgi-cookie", "author": "a",
                                                                    "text": "x"}), content_type="application/json")
        body = (await client.get("/async/comments", {"thread": "asgi-cookie"})).json()
        assert response.json()["id"] in [c["id"] for c in body["comments"]]
        return stale, nodes

    cluster.pause_replay("r1")
    with override_settings(ROOT_URLCONF=ASYNC_URLS):
        stale, nodes = async_to_sync(scenario)()
    print(f"\n[django asgi] {len(nodes)} pairs: stale {stale}, served by {sorted(set(nodes))}, {state.stats()}")
    assert stale == 0
    assert "r1" not in nodes and "r2" in nodes
    assert on_loop and all(on_loop), on_loop


def test_the_middleware_is_sync_and_async_capable(dj):
    """As Django's docs ask: both capabilities declared, and an instance over an async
    get_response is a coroutine function (what the middleware around it checks), over a sync one not."""
    from asgiref.sync import iscoroutinefunction

    assert dj.ReplikitMiddleware.sync_capable and dj.ReplikitMiddleware.async_capable

    async def async_view(request):
        return None

    def sync_view(request):
        return None

    assert iscoroutinefunction(dj.ReplikitMiddleware(async_view))
    assert not iscoroutinefunction(dj.ReplikitMiddleware(sync_view))


def test_use_session_in_async_code(rd):
    """``async with use_session()``: an async autocommit write's LSN is recorded when the block
    ends (that is a query: made through sync_to_async, not on the event loop); the scope is the
    block's only; a sync ``with`` stays as it was."""
    from asgiref.sync import async_to_sync
    from comments.models import Comment

    async def scenario():
        async with rd.use_session(consistency="monotonic") as session:
            assert rd.current_session() is session
            await Comment.objects.acreate(thread="async-scope", author="a", text="x")
            assert not session.write_lsn.valid()  # autocommit: its LSN is read at the end
        assert rd.current_session() is not session
        with pytest.raises(RuntimeError):
            async with rd.use_session(session):
                raise RuntimeError("no LSN to read")
        return session

    session = async_to_sync(scenario)()
    assert session.write_lsn.valid()
    with rd.use_session(session) as same:
        assert same is session
        assert Comment.objects.filter(thread="async-scope").count() >= 1
