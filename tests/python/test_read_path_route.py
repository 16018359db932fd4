"""ReadPath.last_route of a sync router's path (replikit.psycopg's fast path): each thread's own,
and what a thread held goes with the path; of an asyncio router's path: each task's own, and
what a task held goes at its next write once the path is gone. A thread or a task that outlives
its router (a web server's worker, the main thread making routers one after another) must not
keep a Decision per router it ever read through. No PostgreSQL needed: the path is driven
through last_route's setter, which stores where the fast path's reads do."""

from __future__ import annotations

import asyncio
import gc
import itertools
import sys
import threading

import pytest

import replikit
from replikit import Consistency, Router, Session, Topology


def make_path():
    router = Router(Topology("p", ["r1", "r2"]))
    counters = (itertools.count(), itertools.count(), itertools.count())
    path = replikit._core.ReadPath(router, "p", {}, counters, False, 1.0)
    return router, path


def decision_of(router):
    return router.route_read(Session(), Consistency.EVENTUAL)


def test_each_thread_sees_its_own():
    router, path = make_path()
    mine = decision_of(router)
    path.last_route = mine
    seen, errors = [], []

    def other():
        try:
            seen.append(path.last_route)  # nothing read on this thread yet
            theirs = decision_of(router)
            path.last_route = theirs
            seen.append(path.last_route is theirs)
        except BaseException as exc:  # reported below
            errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join(30)
    assert not errors, errors
    assert seen == [None, True]
    assert path.last_route is mine
    path.last_route = None
    assert path.last_route is None


def test_the_calling_threads_route_goes_with_its_path():
    """A thread that stays (here the test's) keeps nothing of a path that is gone. (Kept in the
    thread's state dict under a key per path, each Decision outlived its path until the thread
    ended: one per router the thread ever read through.)"""
    router, path = make_path()
    held = decision_of(router)
    before = sys.getrefcount(held)
    path.last_route = held
    assert sys.getrefcount(held) == before + 1
    del path, router
    gc.collect()
    assert sys.getrefcount(held) == before


def test_another_threads_route_goes_with_its_path():
    """A thread still running when the path goes (a worker of a pool) keeps nothing of it either."""
    router, path = make_path()
    held = decision_of(router)
    before = sys.getrefcount(held)
    stored, release, errors = threading.Event(), threading.Event(), []

    def worker():
        try:
            path.last_route = held
            stored.set()
            release.wait(30)
        except BaseException as exc:  # reported below
            errors.append(exc)
            stored.set()

    t = threading.Thread(target=worker)
    t.start()
    try:
        assert stored.wait(30)
        assert sys.getrefcount(held) == before + 1
        del path, router
        gc.collect()
        assert sys.getrefcount(held) == before  # while the worker still runs
    finally:
        release.set()
        t.join(30)
    assert not errors, errors


def test_a_finished_threads_route_goes_with_it():
    router, path = make_path()
    held = decision_of(router)
    before = sys.getrefcount(held)
    t = threading.Thread(target=lambda: setattr(path, "last_route", held))
    t.start()
    t.join(30)
    gc.collect()
    assert sys.getrefcount(held) == before
    assert path.last_route is None  # the thread's, not this one's


def bytes_kept(churn, n=5000):
    """The memory still held after ``churn(n)``, past a warm-up of 200 (caches, interned names)."""
    import tracemalloc

    churn(200)
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.take_snapshot()
        churn(n)
        gc.collect()
        return sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(start, "filename"))
    finally:
        tracemalloc.stop()


def test_many_paths_on_one_thread_leave_nothing():
    """Routers made one after another on one thread: the memory kept does not grow with them."""

    def churn(n):
        for _ in range(n):
            router, path = make_path()
            path.last_route = decision_of(router)
            del router, path

    kept = bytes_kept(churn)
    assert kept < 64 * 1024, f"{kept} bytes kept after 5000 routers"  # was ~100 bytes per router


# ---- an asyncio router's path (fast_read with is_async): each task's own, in ONE context variable


class Owner:
    """Stands for the connection router, which a path holds weakly."""


def make_async_path():
    """A path whose last_route is per asyncio task, as AsyncConnectionRouter's, and its owner (to
    be kept alive with it)."""
    _lease = pytest.importorskip("replikit.psycopg._lease")
    router, path = make_path()
    owner = Owner()
    path.fast_read(owner, _lease.ASYNC_HOOKS, True)
    return router, path, owner


def test_each_task_sees_its_own_and_each_path_its_own():
    """Two paths read in one task: each sees its own route. A task started then sees its creator's
    and its own writes stay its own; a path gone does not change another's."""
    r1, p1, _o1 = make_async_path()
    r2, p2, _o2 = make_async_path()
    d1, d2 = decision_of(r1), decision_of(r2)

    async def main():
        assert p1.last_route is None and p2.last_route is None
        p1.last_route = d1
        assert p1.last_route is d1 and p2.last_route is None  # paths do not see each other's
        p2.last_route = d2
        assert p1.last_route is d1 and p2.last_route is d2

        async def child():
            seen = (p1.last_route, p2.last_route)  # its creator's
            p1.last_route = theirs
            p2.last_route = None
            return seen, p1.last_route, p2.last_route

        theirs = decision_of(r1)
        seen, child_p1, child_p2 = await asyncio.create_task(child())
        assert seen == (d1, d2) and child_p1 is theirs and child_p2 is None
        assert p1.last_route is d1 and p2.last_route is d2  # the child's writes stayed its own
        return True

    assert asyncio.run(main())


def test_a_tasks_route_of_a_path_gone_goes_at_its_next_write():
    """A task that outlives a router keeps that router's Decision only until it next records a
    route through another: then the pair of the path gone is dropped."""
    r2, p2, _o2 = make_async_path()

    async def main():
        r1, p1, o1 = make_async_path()
        held = decision_of(r1)
        before = sys.getrefcount(held)
        p1.last_route = held
        assert sys.getrefcount(held) == before + 1
        del p1, r1, o1
        gc.collect()
        assert sys.getrefcount(held) == before + 1  # in the task's context until its next write
        p2.last_route = decision_of(r2)
        return sys.getrefcount(held) - before

    assert asyncio.run(main()) == 0


def test_many_async_paths_in_one_task_leave_nothing():
    """A long-lived task that makes a router per request, each read once: the memory kept does
    not grow with them. (A context variable per path kept each path's variable and Decision in
    the task's context until the task ended: ~400 bytes per router.)"""

    def churn(n):
        for _ in range(n):
            router, path, owner = make_async_path()
            path.last_route = decision_of(router)
            del router, path, owner

    async def main():
        return bytes_kept(churn)  # in one task

    kept = asyncio.run(main())
    assert kept < 64 * 1024, f"{kept} bytes kept after 5000 routers in one task"
