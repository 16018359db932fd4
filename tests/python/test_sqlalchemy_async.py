"""replikit.sqlalchemy under asyncio: AsyncRoutedSession over AsyncRoutedEngines (an AsyncEngine
per node, psycopg's async driver) against the session's real cluster, ORM and Core. Each test
runs its own event loop (asyncio.run)."""

from __future__ import annotations

import asyncio
import time

import pytest

from conftest import wait_until

import replikit

pytest.importorskip("sqlalchemy")
pytest.importorskip("greenlet")
pytest.importorskip("psycopg")

from sqlalchemy import Integer, String, func, insert, select, text  # noqa: E402
from sqlalchemy.exc import DBAPIError, OperationalError  # noqa: E402
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column  # noqa: E402

from replikit.sqlalchemy import (AsyncRoutedEngines, AsyncRoutedSession, RoutedEngines,  # noqa: E402
                                 async_routed_sessionmaker, routed_sessionmaker)

pytestmark = pytest.mark.pg


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "rk_sa_notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    v: Mapped[str] = mapped_column(String)


notes = Note.__table__


@pytest.fixture(scope="module")
def tables(pg_cluster):
    pg_cluster.sql("primary", "CREATE TABLE IF NOT EXISTS rk_sa_notes (id serial PRIMARY KEY, v text)")
    pg_cluster.wait_caught_up(timeout_ms=10_000)
    return pg_cluster


@pytest.fixture
def cluster(pg_cluster_reset, tables):
    return pg_cluster_reset


def nodes_of(cluster):
    return ("primary", cluster.dsn("primary")), [(n, cluster.dsn(n)) for n in cluster.replica_names]


async def open_engines(cluster, **kwargs) -> AsyncRoutedEngines:
    primary, replicas = nodes_of(cluster)
    engines = AsyncRoutedEngines(primary, replicas, **kwargs)
    ok = await asyncio.get_running_loop().run_in_executor(None, engines.wait_probes, 2, 5000.0)
    assert ok, "two probes of every node within 5 s"
    assert all(n["up"] and n["reachable"] for n in engines.nodes()), engines.nodes()
    return engines


def test_read_your_writes_with_a_paused_replica_async(cluster):
    """ORM and Core under asyncio: with r1's replay paused, 0 stale reads after commits, r1 never
    used, r2 used (the read's wait for a replica awaits); resumed, r1 serves reads again."""

    async def main():
        async with await open_engines(cluster) as engines:
            Session = async_routed_sessionmaker(engines, expire_on_commit=False)
            cluster.pause_replay("r1")
            stale = by_replica = 0
            ticks = []

            async def ticker():  # the event loop keeps running while reads wait for a replica
                while True:
                    ticks.append(time.monotonic())
                    await asyncio.sleep(0.002)

            tick_task = asyncio.create_task(ticker())
            for k in range(30):
                async with Session() as session:
                    if k % 2:
                        note = Note(v=f"ryw {k}")
                        session.add(note)
                        await session.commit()
                        new_id = note.id
                    else:
                        new_id = (await session.execute(
                            insert(notes).values(v=f"ryw {k}").returning(notes.c.id))).scalar_one()
                        await session.commit()
                    assert session.replikit_session.write_lsn.valid()
                    got = (await session.execute(text("SELECT v FROM rk_sa_notes WHERE id = :id"),
                                                 {"id": new_id})).scalars().all()
                    stale += got != [f"ryw {k}"]
                    by_replica += engines.last_route.node != "primary"
                    assert engines.last_route.node != "r1"
            tick_task.cancel()
            stats = engines.stats()
            cluster.resume_replay("r1")
            cluster.wait_caught_up(timeout_ms=10_000)
            await asyncio.get_running_loop().run_in_executor(None, lambda: wait_until(
                lambda: engines.core.lag.replica("r1").state != replikit.LagState.LAGGING, 10, "r1 OK"))
            nodes = set()
            for k in range(20):
                async with Session() as session:
                    session.add(Note(v=f"after {k}"))
                    await session.commit()
                    await asyncio.sleep(0.25)  # a regular probe finds both caught up: round robin
                    count = (await session.scalars(select(func.count()).select_from(Note).where(
                        Note.v == f"after {k}"))).one()
                    assert count == 1
                    nodes.add(engines.last_route.node)
            gaps = [b - a for a, b in zip(ticks, ticks[1:])]
            print(f"\n[sqlalchemy async ryw] 30 pairs with r1 paused: stale {stale}, by replicas "
                  f"{by_replica}/30, {stats}; longest event-loop gap {max(gaps) * 1000:.1f} ms; "
                  f"after resume: {sorted(nodes)}")
            assert stale == 0 and by_replica > 0
            assert stats["writes"] == 30 and stats["reads"] == 30
            assert "r1" in nodes

    asyncio.run(main())


def test_token_handoff_from_a_sync_session_to_an_async_one(cluster):
    """A sync RoutedSession writes; its signed token opens an AsyncRoutedSession (another
    engines object, as another process would have) that reads the row: 0 stale with both
    replicas behind (r1 paused, r2 delayed 1.5 s)."""
    signer = replikit.HmacSigner(b"s" * 32)
    primary, replicas = nodes_of(cluster)
    with RoutedEngines(primary, replicas, signer=signer) as sync_engines:
        assert sync_engines.wait_probes(2, 5000)
        SyncSession = routed_sessionmaker(sync_engines, expire_on_commit=False)
        cluster.pause_replay("r1")
        cluster.set_apply_delay("r2", 1500)
        tokens = []
        for k in range(10):
            with SyncSession() as session:
                note = Note(v=f"handoff {k}")
                session.add(note)
                session.commit()
                tokens.append((session.token(), note.id))

    async def main():
        async with await open_engines(cluster, signer=signer, wait_for_replica_ms=0) as engines:
            Session = async_routed_sessionmaker(engines)
            seen = []
            for token, new_id in tokens:
                async with Session(token=token) as session:
                    rows = (await session.execute(select(Note.v).where(Note.id == new_id))).scalars().all()
                    seen.append((rows, engines.last_route.node))
                    assert session.token(signer) and session.replikit_session.write_lsn.valid()
            return seen

    seen = asyncio.run(main())
    print(f"\n[sqlalchemy async handoff] {[n for _, n in seen]}")
    assert [rows for rows, _ in seen] == [[f"handoff {k}"] for k in range(10)]
    assert "r1" not in {n for _, n in seen}  # paused; r2 serves only what it has replayed


def test_monotonic_reads_record_what_they_saw_async(cluster):
    """A monotonic read under asyncio records the replay position it saw (the round trip after
    it awaits): the session's read LSN advances with the writes it reads."""

    async def main():
        async with await open_engines(cluster) as engines:
            Session = async_routed_sessionmaker(engines, consistency="monotonic")
            async with Session() as session:
                lsns = []
                for k in range(5):
                    cluster.sql("primary", f"INSERT INTO rk_sa_notes (v) VALUES ('mono {k}')")
                    cluster.wait_caught_up(timeout_ms=10_000)
                    await session.execute(select(func.count()).select_from(Note))
                    await session.commit()
                    lsns.append(session.replikit_session.read_lsn)
            assert lsns[0].valid() and lsns == sorted(lsns) and lsns[-1] > lsns[0], lsns

    asyncio.run(main())


def test_primary_loss_async(cluster):
    """Under asyncio too, a write after the primary is killed raises SQLAlchemy's
    OperationalError; eventual reads go on on the replicas."""

    async def main():
        async with await open_engines(cluster, probe_interval_ms=50.0) as engines:
            Session = async_routed_sessionmaker(engines)
            async with Session() as session:
                session.add(Note(v="before"))
                await session.commit()
            cluster.kill("primary")
            async with Session() as session:
                session.add(Note(v="after"))
                with pytest.raises(OperationalError) as info:
                    await session.commit()
            assert isinstance(info.value, DBAPIError)
            await asyncio.get_running_loop().run_in_executor(None, lambda: wait_until(
                lambda: not engines.core.topology.info("primary").up, 5, "primary marked down"))
            async with Session(consistency="eventual") as session:
                assert (await session.scalars(select(func.count()).select_from(Note))).one() >= 1
                assert engines.last_route.node in ("r1", "r2")

    asyncio.run(main())


def test_async_bad_input_names_the_argument(cluster):
    primary, replicas = nodes_of(cluster)
    with RoutedEngines(primary, replicas) as sync_engines:
        with pytest.raises(replikit.ArgumentTypeError) as info:
            async_routed_sessionmaker(sync_engines)
        assert info.value.argument == "engines"
        with pytest.raises(replikit.ArgumentTypeError) as info:
            AsyncRoutedSession(engines=sync_engines)
        assert info.value.argument == "engines"

    async def main():
        async with await open_engines(cluster) as engines:
            Session = async_routed_sessionmaker(engines)
            with pytest.raises(replikit.InvalidArgument) as info:
                Session(consistency="read-your-writes")
            assert info.value.argument == "consistency"
            async with Session() as session:
                with pytest.raises(replikit.InvalidArgument) as info:
                    await session.execute(text("SELECT 1").execution_options(replikit_route="nowhere"))
                assert info.value.argument == "replikit_route"

    asyncio.run(main())


def test_concurrent_tasks_route_at_their_own_level_async(cluster):
    """Two asyncio tasks, one session each, replicas paused: A commits a row and reads it back at
    read-your-writes while B's eventual session reads on both sides of A's read. Each session
    keeps its own level and replikit session: A's read is on the primary and sees its row, B's
    on a replica; each session's last_route is its own read's (the engines' is whichever was last)."""

    async def main():
        async with await open_engines(cluster) as engines:
            Session = async_routed_sessionmaker(engines, expire_on_commit=False)
            for name in cluster.replica_names:
                cluster.pause_replay(name)
            b_read, a_read = asyncio.Event(), asyncio.Event()

            async def task_a():
                async with Session() as session:
                    note = Note(v="task a")
                    session.add(note)
                    await session.commit()
                    await b_read.wait()
                    found = (await session.execute(select(Note.v).where(Note.id == note.id))).scalar()
                    route = session.last_route
                    a_read.set()
                    return found, route, session.replikit_session

            async def task_b():
                async with Session(consistency="eventual") as session:
                    await session.execute(select(func.count()).select_from(Note))
                    b_read.set()
                    await a_read.wait()
                    last = engines.last_route
                    await session.execute(select(func.count()).select_from(Note))
                    return session.last_route, last, session.replikit_session

            return await asyncio.gather(task_a(), task_b())

    (found, a_route, a_session), (b_route, engines_last, b_session) = asyncio.run(main())
    assert found == "task a"
    assert a_route.node == "primary" and a_route.reason != replikit.Reason.REPLICA_AVAILABLE
    assert engines_last is a_route  # the engines' last_route is anyone's latest read
    assert b_route.node in ("r1", "r2") and b_route.reason == replikit.Reason.REPLICA_AVAILABLE
    assert a_session.write_lsn.valid() and not b_session.write_lsn.valid()
