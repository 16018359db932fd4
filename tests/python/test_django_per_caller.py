"""replikit.django's per-caller state, against the session's real cluster (the setup of
test_django.py): each asyncio task and each thread has its own consistency level and session,
outside a request and inside one, and a block's level applies to its own session only."""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest

import replikit

pytest.importorskip("django")
pytest.importorskip("psycopg_pool")

from django_helpers import pause_replicas  # noqa: E402

pytestmark = pytest.mark.pg


def test_consistency_outside_a_request_is_per_asyncio_task(rd, pg_cluster_reset):
    """An async script (asyncio.run, no request), replicas paused after a row is written: task A
    holds ``consistency("strong")`` and task B ``consistency("eventual")``, both open while each
    reads the row in turn. A's read must go to the primary and see it, B's to a replica; each
    task has its own session (A's write afterwards is in A's only) and its own last_route()."""
    import contextvars

    from asgiref.sync import sync_to_async
    from comments.models import Comment
    from django.db import connections

    pause_replicas(pg_cluster_reset)
    row = Comment.objects.create(thread="tasks", author="someone", text="else's").id

    async def scenario():
        a_in, b_read, a_read = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def task_a():
            with rd.consistency("strong"):
                a_in.set()
                await b_read.wait()  # B's eventual block is open, until A has read
                found = await Comment.objects.filter(id=row).aexists()
                route = rd.last_route()
                a_read.set()
            await Comment.objects.acreate(thread="tasks-a", author="a", text="mine")
            assert await Comment.objects.filter(thread="tasks-a").aexists()  # its LSN is read first
            return found, route, rd.current_session()

        async def task_b():
            await a_in.wait()
            with rd.consistency("eventual"):
                found = await Comment.objects.filter(id=row).aexists()
                route = rd.last_route()
                b_read.set()
                await a_read.wait()
            return found, route, rd.current_session()

        try:
            return await asyncio.gather(task_a(), task_b())
        finally:
            await sync_to_async(connections.close_all)()

    # A fresh context, as a script's asyncio.run has (this thread's own state is not inherited).
    (a_found, a_route, a_session), (b_found, b_route, b_session) = contextvars.Context().run(
        asyncio.run, scenario())
    print(f"\n[django tasks] A: {a_found} by {a_route}; B: {b_found} by {b_route}")
    assert a_found, "task A's strong read was not strong: a stale read"
    assert a_route.node == "primary" and a_route.reason == replikit.Reason.STRONG_READ
    assert not b_found and b_route.node in ("r1", "r2") and b_route.reason == replikit.Reason.REPLICA_AVAILABLE
    assert a_session is not b_session and a_session.write_lsn.valid() and not b_session.write_lsn.valid()


def test_a_requests_tasks_each_have_their_consistency(rd, pg_cluster_reset):
    """An async view gathers two tasks over the request's session: A reads the request's write
    at read-your-writes while B holds ``consistency("eventual")`` open. Replicas paused: A is
    served by the primary and sees the write, B by a replica; both share the request's session."""
    import types

    from asgiref.sync import async_to_sync
    from django.http import JsonResponse
    from django.test import AsyncClient, override_settings
    from django.urls import path

    from comments.models import Comment

    async def levels(request):
        c = await Comment.objects.acreate(thread="request-tasks", author="a", text="x")
        b_in, a_read = asyncio.Event(), asyncio.Event()

        async def task_a():
            await b_in.wait()
            found = await Comment.objects.filter(id=c.id).aexists()
            a_read.set()
            return found, rd.last_route(), rd.current_session()

        async def task_b():
            with rd.consistency("eventual"):
                found = await Comment.objects.filter(id=c.id).aexists()
                route = rd.last_route()
                b_in.set()
                await a_read.wait()
            return found, route, rd.current_session()

        results = await asyncio.gather(task_a(), task_b())
        return JsonResponse({name: {"found": found, "node": route.node, "reason": route.reason.name.lower(),
                                    "requests_session": session is request.replikit_session}
                             for name, (found, route, session) in zip("ab", results)})

    module = types.ModuleType("replikit_test_task_urls")
    module.urlpatterns = [path("levels", levels)]
    sys.modules[module.__name__] = module
    pause_replicas(pg_cluster_reset)
    with override_settings(ROOT_URLCONF=module.__name__):
        body = async_to_sync(AsyncClient().get)("/levels").json()
    print(f"\n[django request tasks] {body}")
    a, b = body["a"], body["b"]
    assert a["found"] and a["node"] == "primary" and a["reason"] != "replica_available" and a["requests_session"]
    assert not b["found"] and b["node"] in ("r1", "r2") and b["reason"] == "replica_available"
    assert b["requests_session"]


def test_consistency_and_session_outside_a_request_are_per_thread(rd, pg_cluster_reset):
    """Sync code in two threads, no request: one holds ``consistency("strong")`` and the other
    ``consistency("eventual")``, their reads interleaved; each read runs at its thread's level,
    and each thread has a session of its own (the writer's write is in its session only)."""
    from comments.models import Comment
    from django.db import connections

    pause_replicas(pg_cluster_reset)
    barrier = threading.Barrier(2, timeout=20)
    results = {}

    def worker(name, level):
        try:
            with rd.consistency(level):
                barrier.wait()  # both blocks open
                if name == "strong":
                    Comment.objects.create(thread="threads", author=name, text="x")
                barrier.wait()
                routes = []
                for _ in range(5):
                    Comment.objects.filter(thread="threads").exists()
                    routes.append((rd.last_route().reason, rd.last_route().node))
                    barrier.wait()  # one read each per round
            results[name] = (routes, rd.current_session())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=a) for a in (("strong", "strong"), ("eventual", "eventual"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    strong, eventual = results["strong"], results["eventual"]
    assert strong[0] == [(replikit.Reason.STRONG_READ, "primary")] * 5
    assert {reason for reason, _ in eventual[0]} == {replikit.Reason.REPLICA_AVAILABLE}
    assert {node for _, node in eventual[0]} <= {"r1", "r2"}
    assert strong[1] is not eventual[1] and strong[1].write_lsn.valid() and not eventual[1].write_lsn.valid()
    assert rd.current_session() is not strong[1] and rd.current_session() is not eventual[1]


def test_consistency_block_applies_to_its_own_session(rd):
    """consistency() is for the session it was entered in: a use_session block inside it reads at
    its own level, and the outer level is back after it."""
    from comments.models import Comment

    with rd.consistency("strong"):
        with rd.use_session(consistency="eventual"):
            Comment.objects.filter(thread="nested").exists()
            assert rd.last_route().reason == replikit.Reason.REPLICA_AVAILABLE
        Comment.objects.filter(thread="nested").exists()
        assert rd.last_route().reason == replikit.Reason.STRONG_READ
    with rd.use_session(consistency="eventual"):
        with rd.consistency("strong"):
            Comment.objects.filter(thread="nested").exists()
            assert rd.last_route().reason == replikit.Reason.STRONG_READ
        Comment.objects.filter(thread="nested").exists()
        assert rd.last_route().reason == replikit.Reason.REPLICA_AVAILABLE


def test_blocks_in_a_generator_resumed_through_sync_to_async(rd):
    """A generator's consistency() (or use_session()) block begun in one sync_to_async call and
    ended in another (each runs in its own copy of the task's context) ends without an error, and
    the task's reads are back at its own level and session after it."""
    from asgiref.sync import sync_to_async
    from comments.models import Comment

    def read_reason():
        Comment.objects.filter(thread="gen").exists()
        return rd.last_route().reason

    def strong_rows():
        with rd.consistency("strong"):
            yield read_reason()
            yield read_reason()

    def session_rows(session):
        with rd.use_session(session):
            yield rd.current_session()
            yield rd.current_session()

    async def main():
        gen = strong_rows()
        assert await sync_to_async(next)(gen) == replikit.Reason.STRONG_READ
        await sync_to_async(gen.close)()  # the block ends in another context than it began in
        after = await sync_to_async(read_reason)()
        own = await sync_to_async(rd.current_session)()
        scoped = replikit.Session()
        rows = session_rows(scoped)
        assert await sync_to_async(next)(rows) is scoped
        await sync_to_async(rows.close)()
        return after, own, await sync_to_async(rd.current_session)()

    after, own, own_after = asyncio.run(main())
    assert after != replikit.Reason.STRONG_READ
    assert own_after is own
