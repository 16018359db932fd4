"""ReadPath.last_route of a sync router's path (replikit.psycopg's fast path): each thread's own,
and what a thread held goes with the path. A thread that outlives its router (a web server's
worker, the main thread making routers one after another) must not keep a Decision per router
it ever read through. No PostgreSQL needed: the path is driven through last_route's setter,
which stores where the fast path's reads do."""

from __future__ import annotations

import gc
import itertools
import sys
import threading

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


def test_many_paths_on_one_thread_leave_nothing():
    """Routers made one after another on one thread: the memory kept does not grow with them."""
    import tracemalloc

    def churn(n):
        for _ in range(n):
            router, path = make_path()
            path.last_route = decision_of(router)
            del router, path

    churn(200)  # warm-up: caches, interned names
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.take_snapshot()
        churn(5000)
        gc.collect()
        kept = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(start, "filename"))
    finally:
        tracemalloc.stop()
    assert kept < 64 * 1024, f"{kept} bytes kept after 5000 routers"  # was ~100 bytes per router
