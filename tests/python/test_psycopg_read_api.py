"""replikit.psycopg's routers' read() as users meet it, sync and async, against the session's
real cluster: a subclass that overrides read() is called (the core's builtin read, installed per
instance for speed, must not hide it) and its super().read() still gets the builtin's lease, the
fast path included; the builtin tells inspect.signature and help() what the Python method does."""

from __future__ import annotations

import asyncio
import inspect
import pydoc
from unittest import mock

import pytest

import replikit

pytest.importorskip("psycopg")
pytest.importorskip("psycopg_pool")

from replikit.psycopg import AsyncConnectionRouter, ConnectionRouter  # noqa: E402

pytestmark = pytest.mark.pg

READS = 30


def nodes_of(cluster):
    return ("primary", cluster.dsn("primary")), [(name, cluster.dsn(name)) for name in cluster.replica_names]


class Counting:
    """What a user writes: read() with a default of its own and a log, through super().read();
    _lease_read (the general path) counted to see how many reads the fast path served."""

    def __init__(self, *args, **kwargs):
        self.calls = []
        self.general = 0
        super().__init__(*args, **kwargs)

    def read(self, session=None, *, consistency="eventual", **kwargs):
        self.calls.append(consistency)
        return super().read(session, consistency=consistency, **kwargs)


class CountingRouter(Counting, ConnectionRouter):
    def _lease_read(self, *args, **kwargs):
        self.general += 1
        return super()._lease_read(*args, **kwargs)


class AsyncCountingRouter(Counting, AsyncConnectionRouter):
    async def _lease_read(self, *args, **kwargs):
        self.general += 1
        return await super()._lease_read(*args, **kwargs)


class PlainSubclass(ConnectionRouter):
    """A subclass that leaves read() alone keeps the builtin."""


def check_served(router, nodes, cluster):
    assert router.calls == ["eventual"] * READS  # the override ran, every time
    assert set(nodes) <= set(cluster.replica_names), nodes  # its default (eventual) was applied
    stats = router.stats()
    assert stats["reads"] == READS and stats["reads_on_replicas"] == READS, stats
    # The first read on each replica finds nothing parked, the rest are the fast path's (a
    # connection left idle over CHECK_IDLE_S by a stalled machine goes the general way too);
    # without the fast path under super().read(), every read would.
    assert router.general <= READS // 3, (router.general, stats)


def test_a_subclass_read_is_called_and_its_super_read_takes_the_fast_path(pg_cluster_reset):
    cluster = pg_cluster_reset
    primary, replicas = nodes_of(cluster)
    with CountingRouter(primary, replicas) as router:
        assert router.wait_probes(2, 5000)
        assert inspect.ismethod(router.read) and router.read.__func__ is CountingRouter.read
        nodes = []
        for _ in range(READS):
            with router.read() as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
            nodes.append(router.last_route.node)
        check_served(router, nodes, cluster)
    with PlainSubclass(primary, replicas) as plain:
        assert inspect.isbuiltin(plain.read)
        assert plain.wait_probes(1, 5000)
        with plain.read(None, consistency="eventual") as conn:
            conn.execute("SELECT 1")
        assert plain.stats()["reads"] == 1


def test_an_async_subclass_read_is_called_and_its_super_read_takes_the_fast_path(pg_cluster_reset):
    cluster = pg_cluster_reset
    primary, replicas = nodes_of(cluster)

    async def scenario():
        router = await AsyncCountingRouter(primary, replicas).open()
        try:
            assert await router.wait_probes(2, 5000)
            assert inspect.ismethod(router.read) and router.read.__func__ is AsyncCountingRouter.read
            nodes = []
            for _ in range(READS):
                async with router.read() as conn:
                    assert await (await conn.execute("SELECT 1")).fetchone() == (1,)
                nodes.append(router.last_route.node)
            return router, nodes
        finally:
            await router.close()

    router, nodes = asyncio.run(scenario())
    check_served(router, nodes, cluster)


def test_a_read_patched_onto_the_class_is_called(pg_cluster_reset):
    """unittest.mock.patch.object(ConnectionRouter, "read", ...) before the router is made: the
    stand-in is what router.read calls (the builtin stands in for the library's read only)."""
    primary, replicas = nodes_of(pg_cluster_reset)
    real = ConnectionRouter.read
    with mock.patch.object(ConnectionRouter, "read", autospec=True, side_effect=real) as spy:
        with ConnectionRouter(primary, replicas) as router:
            assert router.wait_probes(1, 5000)
            with router.read(None, consistency="eventual") as conn:
                conn.execute("SELECT 1")
            assert spy.call_count == 1 and router.stats()["reads"] == 1
    with ConnectionRouter(primary, replicas) as router:  # unpatched again: the builtin
        assert inspect.isbuiltin(router.read)


def bare(signature):
    """`signature` without annotations (a builtin has none)."""
    empty = inspect.Parameter.empty
    return signature.replace(parameters=[p.replace(annotation=empty) for p in signature.parameters.values()],
                             return_annotation=inspect.Signature.empty)


def check_builtin_read(router, cls, usage):
    read = router.read
    assert inspect.isbuiltin(read), read  # the fast path is installed
    method = cls.read.__get__(router)  # the Python method, bound
    assert inspect.signature(read) == bare(inspect.signature(method))
    assert list(inspect.signature(read).parameters) == ["session", "consistency", "max_staleness_ms",
                                                        "wait_for_replica_ms"]
    assert inspect.signature(read).parameters["consistency"].default == "read_your_writes"
    assert inspect.getdoc(read) == inspect.getdoc(cls.read)
    assert inspect.getdoc(read).startswith(usage)
    text = pydoc.render_doc(read, renderer=pydoc.plaintext)
    assert ("read(session=None, *, consistency='read_your_writes', max_staleness_ms=None, "
            "wait_for_replica_ms=None)") in text, text
    assert "lower-case name" in text, text


def test_the_builtin_read_has_the_methods_signature_and_doc(pg_cluster_reset):
    primary, replicas = nodes_of(pg_cluster_reset)
    with ConnectionRouter(primary, replicas) as router:
        check_builtin_read(router, ConnectionRouter, "``with router.read(session) as conn``")


def test_the_async_builtin_read_has_the_methods_signature_and_doc(pg_cluster_reset):
    primary, replicas = nodes_of(pg_cluster_reset)

    async def scenario():
        router = await AsyncConnectionRouter(primary, replicas).open()
        try:
            check_builtin_read(router, AsyncConnectionRouter, "``async with router.read(session) as conn``")
        finally:
            await router.close()

    asyncio.run(scenario())
