"""replikit.psycopg.AsyncConnectionRouter (psycopg_pool.AsyncConnectionPool per node, prober
tasks) against the session's real cluster. Each test runs its own event loop (asyncio.run)."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from conftest import wait_until

import replikit

psycopg = pytest.importorskip("psycopg")
pytest.importorskip("psycopg_pool")

from psycopg.rows import class_row, dict_row  # noqa: E402

from replikit.psycopg import AsyncConnectionRouter  # noqa: E402

pytestmark = pytest.mark.pg


@dataclasses.dataclass
class Item:
    id: int
    v: str


@pytest.fixture(scope="module")
def tables(pg_cluster):
    pg_cluster.sql("primary", """
        CREATE TABLE IF NOT EXISTS rk_pa_async (id bigserial PRIMARY KEY, v text);
        CREATE TABLE IF NOT EXISTS rk_pa_async_counter (id int PRIMARY KEY, v bigint NOT NULL);
        INSERT INTO rk_pa_async_counter VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
    """)
    pg_cluster.wait_caught_up(timeout_ms=10_000)
    return pg_cluster


@pytest.fixture
def cluster(pg_cluster_reset, tables):
    return pg_cluster_reset


async def open_router(cluster, **kwargs) -> AsyncConnectionRouter:
    replicas = [(name, cluster.dsn(name)) for name in cluster.replica_names]
    router = await AsyncConnectionRouter(("primary", cluster.dsn("primary")), replicas, **kwargs).open()
    assert await router.wait_probes(2, 5000), "two probes of every node within 5 s"
    assert all(n["up"] and n["reachable"] for n in router.nodes()), router.nodes()
    return router


async def fetch(conn, sql, params=None):
    return await (await conn.execute(sql, params)).fetchall()


def test_read_your_writes_with_a_paused_replica_async(cluster):
    async def scenario():
        router = await open_router(cluster, row_factory=dict_row)
        try:
            cluster.pause_replay("r1")
            stale = 0
            for k in range(30):
                session = replikit.Session()
                async with router.write(session) as conn:
                    [row] = await fetch(conn, "INSERT INTO rk_pa_async (v) VALUES (%s) RETURNING id", (f"a{k}",))
                assert session.write_lsn.valid()
                async with router.read(session, wait_for_replica_ms=300) as conn:
                    rows = await fetch(conn, "SELECT v FROM rk_pa_async WHERE id = %s", (row["id"],))
                stale += rows != [{"v": f"a{k}"}]
                assert router.last_route.node != "r1"
            return stale, router.stats()
        finally:
            await router.close()

    stale, stats = asyncio.run(scenario())
    print(f"\n[async ryw] stale {stale}, {stats}")
    assert stale == 0 and stats["writes"] == 30 and stats["reads"] == 30
    assert stats["reads_on_replicas"] > 0


def test_reads_spread_over_the_replicas_async(cluster):
    # As the sync test: one routing per read, also when the fast path leases nothing.
    async def scenario():
        router = await open_router(cluster)
        try:
            nodes = []
            for _ in range(60):
                async with router.read(None, consistency="eventual") as conn:
                    await conn.execute("SELECT 1")
                nodes.append(router.last_route.node)
            return nodes
        finally:
            await router.close()

    nodes = asyncio.run(scenario())
    shares = {n: nodes.count(n) / len(nodes) for n in cluster.replica_names}
    assert all(share >= 0.3 for share in shares.values()), (shares, nodes)


def test_dict_row_class_row_and_stats_async(cluster):
    async def scenario():
        async with AsyncConnectionRouter(("primary", cluster.dsn("primary")),
                                         [(n, cluster.dsn(n)) for n in cluster.replica_names],
                                         row_factory=dict_row) as router:
            await router.wait_probes(2, 5000)
            session = replikit.Session()
            async with router.write(session) as conn:
                await conn.execute("INSERT INTO rk_pa_async (v) VALUES ('class row')")
            async with router.read(session, consistency="causal", wait_for_replica_ms=500) as conn:
                cur = conn.cursor(row_factory=class_row(Item))
                await cur.execute("SELECT id, v FROM rk_pa_async WHERE v = 'class row'")
                items = await cur.fetchall()
            return session, items, router.stats(), router.core.router.counters(), router.pool_stats()

    session, items, stats, counters, pools = asyncio.run(scenario())
    assert [(type(i), i.v) for i in items] == [(Item, "class row")]
    assert session.write_lsn.valid() and session.read_lsn >= session.write_lsn  # causal: observed
    assert stats["writes"] == 1 and stats["reads"] == 1 and counters["total"] == 2
    assert counters["by_reason"]["write"] == 1 and pools["primary"]["requests_num"] >= 1
    assert int(cluster.sql("primary", "SELECT count(*) FROM rk_pa_async WHERE v = 'class row'")[0][0]) == 1


def test_monotonic_across_a_killed_replica_async(cluster):
    async def scenario():
        router = await open_router(cluster, probe_interval_ms=50.0)
        cluster.set_apply_delay("r2", 800)
        stop = asyncio.Event()

        async def writer():
            w = replikit.Session()
            while not stop.is_set():
                async with router.write(w) as conn:
                    await conn.execute("UPDATE rk_pa_async_counter SET v = v + 1 WHERE id = 1")
                await asyncio.sleep(0.005)

        task = asyncio.create_task(writer())
        session = replikit.Session()
        seen, failures, killed, kill_index = [], [], None, None
        try:
            await asyncio.sleep(0.5)
            started = time.monotonic()
            while time.monotonic() - started < 2.5:
                try:
                    async with router.read(session, consistency="monotonic", wait_for_replica_ms=50) as conn:
                        [(v,)] = await fetch(conn, "SELECT v FROM rk_pa_async_counter WHERE id = 1")
                    seen.append((router.last_route.node, v))
                except (psycopg.OperationalError, replikit.Error) as exc:
                    failures.append(exc)
                if killed is None and time.monotonic() - started > 1.0 and seen:
                    killed = seen[-1][0] if seen[-1][0] != "primary" else "r1"
                    kill_index = len(seen)
                    await asyncio.to_thread(cluster.kill, killed)
        finally:
            stop.set()
            await task
            down = not router.core.topology.info(killed).up if killed else None
            await router.close()
        return seen, failures, killed, kill_index, down

    seen, failures, killed, kill_index, down = asyncio.run(scenario())
    values = [v for _, v in seen]
    backwards = sum(1 for a, b in zip(values, values[1:]) if b < a)
    after = [n for n, _ in seen[kill_index:]]
    print(f"\n[async monotonic] {len(seen)} reads, killed {killed}, after: {len(after)} "
          f"({after.count('primary')} on the primary), failures {len(failures)}, backwards {backwards}")
    assert backwards == 0 and len(failures) <= 1, failures
    assert killed in ("r1", "r2") and killed not in after and len(after) > 5
    assert down


def test_pool_exhaustion_async(cluster):
    async def scenario():
        router = await open_router(cluster, pool_size=1, acquire_timeout_ms=200.0)
        try:
            async with router.write(None) as conn:
                await conn.execute("SELECT 1")
                started = time.monotonic()
                with pytest.raises(replikit.TimeoutError, match="acquire_timeout_ms"):
                    async with router.write(None):
                        pass
                waited = time.monotonic() - started
            async with router.write(None) as conn:  # free again
                await conn.execute("SELECT 1")
            return waited, router.pool_stats()["primary"]
        finally:
            await router.close()

    waited, stats = asyncio.run(scenario())
    assert 0.15 <= waited < 2.0, waited
    assert stats["pool_max"] == 1 and stats["requests_errors"] >= 1, stats


def test_node_loss_async(cluster):
    async def scenario():
        router = await open_router(cluster, probe_interval_ms=50.0)
        try:
            for _ in range(4):
                async with router.read(None, consistency="eventual") as conn:
                    await conn.execute("SELECT 1")
            await asyncio.to_thread(cluster.kill, "r2")
            errors, nodes = [], []
            for _ in range(40):
                try:
                    async with router.read(None, consistency="eventual") as conn:
                        await conn.execute("SELECT 1")
                    nodes.append(router.last_route.node)
                except psycopg.OperationalError as exc:
                    errors.append(exc)
                await asyncio.sleep(0.01)
            status = {n["name"]: n for n in router.nodes()}["r2"]
            return errors, nodes, status, router.stats()
        finally:
            await router.close()

    errors, nodes, status, stats = asyncio.run(scenario())
    print(f"\n[async node loss] errors {len(errors)}, last nodes {nodes[-10:]}, r2 up {status['up']}")
    assert len(errors) <= 1 and nodes.count("r2") <= 1
    assert set(nodes[-10:]) == {"r1"}
    assert not status["up"] and not status["reachable"] and stats["nodes_marked_down"] >= 1
    cluster.start("r2")
    wait_until(lambda: cluster.is_up("r2"), 10, "r2 restarted")


def test_a_frozen_node_is_marked_down_within_the_probe_bound_async(cluster):
    async def scenario():
        router = await open_router(cluster, probe_interval_ms=50.0, probe_timeout_ms=300.0)
        try:
            cluster.freeze("r1")
            try:
                started = time.monotonic()
                while router.core.topology.info("r1").up and time.monotonic() - started < 5:
                    await asyncio.sleep(0.01)
                took = time.monotonic() - started
                for _ in range(10):
                    async with router.read(None, consistency="eventual") as conn:
                        await conn.execute("SELECT 1")
                    assert router.last_route.node == "r2"
            finally:
                cluster.thaw("r1")
            return took
        finally:
            await router.close()

    took = asyncio.run(scenario())
    print(f"\n[async freeze] r1 marked down after {took * 1000:.0f} ms")
    assert took < 4.0  # probe_timeout_ms + connect_timeout_ms bound a probe task


def test_a_prober_reconnecting_to_a_frozen_node_holds_no_event_loop(cluster):
    """As the sync router's: the probe task's worker thread connects to a server that stopped
    answering in select(), which releases the GIL, so the event loop goes on (libpq's blocking
    connect held the GIL, and with it the loop, for the whole connect_timeout, 2 s)."""

    async def scenario():
        router = await open_router(cluster, probe_interval_ms=50.0, probe_timeout_ms=300.0)
        try:
            cluster.freeze("r2")
            try:
                started = time.monotonic()
                while router.core.topology.info("r2").up and time.monotonic() - started < 5:
                    await asyncio.sleep(0.01)
                failed = {n["name"]: n["probes_failed"] for n in router.nodes()}["r2"]
                longest, last = 0.0, time.monotonic()
                deadline = last + 10.0
                while ({n["name"]: n["probes_failed"] for n in router.nodes()}["r2"] < failed + 1
                       and time.monotonic() < deadline):
                    await asyncio.sleep(0.001)
                    now = time.monotonic()
                    longest, last = max(longest, now - last), now
                attempts = {n["name"]: n["probes_failed"] for n in router.nodes()}["r2"] - failed
            finally:
                cluster.thaw("r2")
            return longest, attempts
        finally:
            await router.close()

    longest, attempts = asyncio.run(scenario())
    print(f"\n[async freeze] longest 1 ms sleep while r2's prober reconnected: {longest * 1000:.0f} ms")
    assert attempts >= 1, "no connect attempt to the frozen r2 ended within 10 s"
    assert longest < 1.0


def test_a_read_on_a_frozen_node_ends_at_the_client_side_deadline_async(cluster):
    """As the sync router: a read sent to a server that stopped answering (SIGSTOP) ends after
    statement_timeout_ms + query_grace_ms with replikit.TimeoutError, its connection closed, and
    the event loop is never blocked meanwhile."""
    replicas = list(cluster.replica_names)

    async def scenario():
        router = await open_router(cluster, statement_timeout_ms=300.0, query_grace_ms=300.0)
        ticks = 0

        async def tick():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        try:
            for name in replicas:
                cluster.freeze(name)
            try:
                started, ticks_before = time.monotonic(), ticks
                with pytest.raises(replikit.TimeoutError, match=r"statement_timeout_ms \+ query_grace_ms") as info:
                    async with router.read(None, consistency="eventual") as conn:
                        await conn.execute("SELECT 1")
                took, node, closed = time.monotonic() - started, router.last_route.node, conn.closed
                during = ticks - ticks_before
            finally:
                for name in replicas:
                    cluster.thaw(name)
            await router.wait_probes(2, 10_000)
            async with router.read(None, consistency="eventual") as conn:
                assert await fetch(conn, "SELECT 1") == [(1,)]
            return took, node, closed, during, str(info.value), router.pool_stats()[node]
        finally:
            ticker.cancel()
            await router.close()

    took, node, closed, during, message, stats = asyncio.run(scenario())
    print(f"\n[adapter async deadline] read on {node} cut after {took * 1000:.0f} ms ({during} loop ticks "
          f"meanwhile): {message}")
    assert node in replicas and closed and f"node '{node}'" in message
    assert 0.55 <= took < 3.0, took
    assert during >= 3  # the loop ran on while the read waited
    assert stats["returns_bad"] >= 1


def test_concurrent_tasks_read_at_their_own_level_async(cluster):
    """Two asyncio tasks on one router, replicas paused: task A writes with its session and reads
    the row back at read-your-writes while task B holds an eventual read open across A's read.
    The router keeps no per-caller state (the session and the level are each call's arguments),
    so A's read is on the primary and sees its row, B's on a replica, and B's session has no write."""

    async def scenario():
        router = await open_router(cluster)
        try:
            for name in cluster.replica_names:
                cluster.pause_replay(name)
            a_session, b_session = replikit.Session(), replikit.Session()
            b_in, a_read = asyncio.Event(), asyncio.Event()

            async def task_a():
                async with router.write(a_session) as conn:
                    [(new_id,)] = await fetch(conn, "INSERT INTO rk_pa_async (v) VALUES ('task a') RETURNING id")
                await b_in.wait()
                async with router.read(a_session) as conn:
                    rows = await fetch(conn, "SELECT pg_is_in_recovery(), count(*) FROM rk_pa_async WHERE id = %s",
                                       (new_id,))
                a_read.set()
                return rows[0]

            async def task_b():
                async with router.read(b_session, consistency="eventual") as conn:
                    b_in.set()
                    await a_read.wait()
                    rows = await fetch(conn, "SELECT pg_is_in_recovery()")
                return rows[0]

            return await asyncio.gather(task_a(), task_b()), b_session
        finally:
            await router.close()

    ((a_replica, a_count), (b_replica,)), b_session = asyncio.run(scenario())
    assert (a_replica, a_count) == (False, 1)
    assert b_replica and not b_session.write_lsn.valid()


class Turns:
    """Steps 0, 1, 2, ... taken in order, each by the task that owns it."""

    def __init__(self) -> None:
        self.step = 0
        self.cond = asyncio.Condition()

    async def take(self, step: int) -> None:
        async with self.cond:
            await asyncio.wait_for(self.cond.wait_for(lambda: self.step >= step), 20)

    async def done(self) -> None:
        async with self.cond:
            self.step += 1
            self.cond.notify_all()


def test_each_task_sees_its_own_last_route_async(cluster):
    """last_route is the calling asyncio task's. Two tasks on one router take turns (the order
    alternating by round), each writing and then reading: one at strong (the primary, through
    the Python lease), one at eventual (a replica, through the core's fast path once a connection
    is warm). After both have read, each still sees its own route. A task starts with its
    creator's (as context variables do) and its reads do not change its creator's. (It was the
    router's: any caller's latest, so each saw the other's.)"""
    rounds = 6

    async def main():
        router = await open_router(cluster)
        try:
            async with router.read(None, consistency="bounded_staleness", max_staleness_ms=60_000.0) as conn:
                await conn.execute("SELECT 1")
            mine = router.last_route
            turns = Turns()

            async def run(first: bool, consistency: str):
                seen = [router.last_route]  # before its first read: its creator's
                session = replikit.Session()
                for r in range(rounds):
                    await turns.take(2 * r + (0 if (r % 2 == 0) == first else 1))
                    async with router.write(session) as conn:
                        await conn.execute("INSERT INTO rk_pa_async (v) VALUES (%s)", (f"turn {consistency}",))
                    async with router.read(session, consistency=consistency) as conn:
                        await conn.execute("SELECT 1")
                    await turns.done()
                    await turns.take(2 * r + 2)  # the other one has read too
                    seen.append(router.last_route)
                return seen

            a, b = await asyncio.gather(run(True, "strong"), run(False, "eventual"))
            return mine, a, b, router.last_route
        finally:
            await router.close()

    mine, a, b, after = asyncio.run(main())
    assert mine.reason == replikit.Reason.REPLICA_FRESH, mine
    assert a[0].reason == b[0].reason == replikit.Reason.REPLICA_FRESH  # the creating task's
    assert [(d.node, d.reason) for d in a[1:]] == [("primary", replikit.Reason.STRONG_READ)] * rounds, a
    assert len(b) == rounds + 1 and all(
        d.node in cluster.replica_names and d.reason == replikit.Reason.REPLICA_AVAILABLE for d in b[1:]), b
    assert after.reason == replikit.Reason.REPLICA_FRESH  # the tasks' reads stayed theirs
