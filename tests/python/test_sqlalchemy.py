"""replikit.sqlalchemy (sync): RoutedSession over RoutedEngines (one Engine per node, psycopg
driver, SQLAlchemy's pool) against the session's real cluster (primary, r1, r2; async
streaming), with the ORM and with Core statements. Scenarios change the cluster through
`pg_cluster_reset`, which puts it back afterwards."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import pytest

from conftest import wait_until

import replikit

sa = pytest.importorskip("sqlalchemy")
pytest.importorskip("psycopg")

from sqlalchemy import Integer, String, func, insert, select, text, update  # noqa: E402
from sqlalchemy.exc import DBAPIError, OperationalError  # noqa: E402
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column  # noqa: E402

from replikit.sqlalchemy import RoutedEngines, RoutedSession, routed_sessionmaker  # noqa: E402

pytestmark = pytest.mark.pg
KEY = b"k" * 32


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "rk_sa_items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[int] = mapped_column(Integer)
    v: Mapped[str] = mapped_column(String)


items = Item.__table__


@pytest.fixture(scope="module")
def tables(pg_cluster):
    pg_cluster.sql("primary", """
        CREATE TABLE IF NOT EXISTS rk_sa_items (id serial PRIMARY KEY, owner int, v text);
        CREATE SEQUENCE IF NOT EXISTS rk_sa_seq;
    """)
    pg_cluster.wait_caught_up(timeout_ms=10_000)
    return pg_cluster


@pytest.fixture
def cluster(pg_cluster_reset, tables):
    return pg_cluster_reset


def open_engines(cluster, **kwargs) -> RoutedEngines:
    """Nodes by SQLAlchemy URL for the primary and by libpq DSN for the replicas (both forms)."""
    port = cluster.node("primary").port
    url = f"postgresql+psycopg://postgres@{cluster.host}:{port}/postgres"
    replicas = [(name, cluster.dsn(name)) for name in cluster.replica_names]
    engines = RoutedEngines(("primary", url), replicas, **kwargs)
    assert engines.wait_probes(2, 5000), "two probes of every node within 5 s"
    assert all(n["up"] and n["reachable"] for n in engines.nodes()), engines.nodes()
    return engines


def where_it_ran(session, **options) -> str:
    """'primary' or 'replica', asked of the server the statement ran on."""
    stmt = text("SELECT pg_is_in_recovery()").execution_options(**options)
    return "replica" if session.execute(stmt).scalar_one() else "primary"


def test_orm_read_your_writes_with_a_paused_replica(cluster):
    """ORM: with r1's replay paused, every read after a commit sees the write (0 stale), served
    by r2 once a probe shows it caught up, or by the primary; never by r1. Resumed, r1 serves
    read-your-writes reads again."""
    with open_engines(cluster) as engines:
        Session = routed_sessionmaker(engines, expire_on_commit=False)
        cluster.pause_replay("r1")
        stale = by_replica = 0
        for k in range(40):
            with Session() as session:
                item = Item(owner=-1, v=f"ryw {k}")
                session.add(item)
                session.commit()
                assert session.replikit_session.write_lsn.valid()
                got = session.scalars(select(Item.v).where(Item.id == item.id)).all()
                stale += got != [f"ryw {k}"]
                node = engines.last_route.node
                by_replica += node != "primary"
                assert node != "r1"
        paused_stats = engines.stats()
        cluster.resume_replay("r1")
        cluster.wait_caught_up(timeout_ms=10_000)
        wait_until(lambda: engines.core.lag.replica("r1").state != replikit.LagState.LAGGING, 10, "r1 OK")
        nodes = set()
        for k in range(20):
            with Session() as session:
                session.add(Item(owner=-1, v=f"after {k}"))
                session.commit()
                # A regular probe (every 100 ms) finds both replicas caught up: round robin.
                time.sleep(0.25)
                assert session.scalars(select(func.count()).select_from(Item).where(
                    Item.v == f"after {k}")).one() == 1
                nodes.add(engines.last_route.node)
        print(f"\n[sqlalchemy ryw] 40 pairs with r1 paused: stale {stale}, by replicas {by_replica}/40, "
              f"{paused_stats}; after resume: nodes {sorted(nodes)}")
        assert stale == 0
        assert by_replica > 0
        assert paused_stats["writes"] == 40 and paused_stats["reads"] == 40
        assert "r1" in nodes, engines.nodes()


def test_core_statements_and_text_are_routed_by_what_they_do(cluster):
    """Core insert/update and text() writes go to the primary and record the commit LSN; a
    text() SELECT reads on a replica; FOR UPDATE, nextval and a data-modifying CTE go to the
    primary; execution options force either way; a transaction that wrote reads on the primary."""
    with open_engines(cluster) as engines:
        Session = routed_sessionmaker(engines)
        with Session() as session:
            assert where_it_ran(session) == "replica"  # nothing written yet: any replica
            assert where_it_ran(session, replikit_route="primary") == "primary"
            assert where_it_ran(session, replikit_consistency="strong") == "primary"
            assert where_it_ran(session, replikit_route="write") == "primary"
            session.rollback()
            new_id = session.execute(insert(items).values(owner=-3, v="core").returning(items.c.id)).scalar_one()
            assert where_it_ran(session) == "primary"  # the transaction wrote: its reads see it
            session.commit()
            first = session.replikit_session.write_lsn
            assert first.valid()
            session.execute(text("UPDATE rk_sa_items SET v = 'core 2' WHERE id = :id"), {"id": new_id})
            session.commit()
            assert session.replikit_session.write_lsn > first
            # FOR UPDATE runs on the primary (a replica would refuse it).
            assert len(session.execute(select(items).with_for_update().where(items.c.id == new_id)).all()) == 1
            session.commit()
            # nextval() goes to the primary (a replica refuses it) and counts as a write.
            before = session.replikit_session.write_lsn
            session.execute(text("SELECT nextval('rk_sa_seq')")).scalar_one()
            session.commit()
            assert session.replikit_session.write_lsn > before
            # A transaction on the primary that assigned no transaction id records nothing.
            before = session.replikit_session.write_lsn
            assert where_it_ran(session, replikit_route="primary") == "primary"
            assert session.execute(select(func.count()).select_from(items).execution_options(
                replikit_consistency="strong")).scalar_one() >= 1
            session.commit()
            assert session.replikit_session.write_lsn == before
            cte = update(items).where(items.c.id == new_id).values(v="cte").returning(items.c.id).cte("u")
            assert session.execute(select(cte.c.id)).scalar_one() == new_id
            session.commit()
            assert session.replikit_session.write_lsn > before
            # Read your writes: the text() read sees the CTE's update wherever it ran.
            rows = session.execute(text("SELECT v FROM rk_sa_items WHERE id = :id"), {"id": new_id}).all()
            assert rows == [("cte",)]
        with Session(execution_options={"replikit_consistency": "eventual"}) as session:
            assert where_it_ran(session) == "replica"


def test_causal_handoff_to_another_process_through_the_token(cluster, tmp_path):
    """A write in this process; its signed token handed to another process, whose routed
    session reads the row: 0 stale reads with r1 paused and r2 delayed by 1.5 s (the other
    process goes to the primary, never to r1), and a replica serves it once they catch up."""
    program = tmp_path / "reader.py"
    program.write_text(textwrap.dedent("""
        import sys
        import replikit
        from sqlalchemy import text
        from replikit.sqlalchemy import RoutedEngines, routed_sessionmaker
        primary, *replicas = sys.argv[1:]
        engines = RoutedEngines(("primary", primary), [(f"r{k + 1}", d) for k, d in enumerate(replicas)],
                                signer=replikit.HmacSigner(b"k" * 32), wait_for_replica_ms=200)
        engines.wait_probes(2, 5000)
        Session = routed_sessionmaker(engines)
        for line in sys.stdin:
            token, ident = line.split()
            with Session(token=token) as session:
                rows = session.execute(text("SELECT v FROM rk_sa_items WHERE id = :id"), {"id": int(ident)}).all()
                print(repr(rows), engines.last_route.node, flush=True)
        engines.dispose()
    """))
    dsns = [cluster.dsn("primary")] + [cluster.dsn(n) for n in cluster.replica_names]
    reader = subprocess.Popen([sys.executable, str(program), *dsns], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        with open_engines(cluster, signer=replikit.HmacSigner(KEY)) as engines:
            Session = routed_sessionmaker(engines, expire_on_commit=False)

            def handoff(v: str):
                with Session() as session:
                    item = Item(owner=-4, v=v)
                    session.add(item)
                    session.commit()
                    token = session.token()
                assert reader.stdin is not None and reader.stdout is not None
                reader.stdin.write(f"{token} {item.id}\n")
                reader.stdin.flush()
                rows, node = reader.stdout.readline().rsplit(" ", 1)
                return rows, node.strip()

            cluster.pause_replay("r1")
            cluster.set_apply_delay("r2", 1500)
            lagging = [handoff(f"handoff {k}") for k in range(10)]
            cluster.resume_replay("r1")
            cluster.clear_apply_delay("r2")
            cluster.wait_caught_up(timeout_ms=10_000)
            time.sleep(0.3)  # the other process's prober sees them caught up
            caught_up = [handoff(f"caught up {k}") for k in range(10) if time.sleep(0.05) is None]
        print(f"\n[sqlalchemy handoff] lagging: {[n for _, n in lagging]}; caught up: {[n for _, n in caught_up]}")
        assert [r for r, _ in lagging] == [repr([(f"handoff {k}",)]) for k in range(10)]
        # r1 is paused; r2 serves only what it has replayed (its delay may start a moment late).
        assert "r1" not in {n for _, n in lagging}
        assert [r for r, _ in caught_up] == [repr([(f"caught up {k}",)]) for k in range(10)]
        assert {n for _, n in caught_up} & {"r1", "r2"}
    finally:
        assert reader.stdin is not None
        reader.stdin.close()
        reader.wait(timeout=30)


def test_a_lagging_replica_is_excluded_and_comes_back(cluster):
    """Past max_lag_ms r1 turns LAGGING and eventual reads avoid it (r2 serves them); with r2
    lagging too they fall back to the primary; resumed, both turn OK and serve reads again."""
    stop = threading.Event()

    def writer():
        while not stop.is_set():
            cluster.sql("primary", "INSERT INTO rk_sa_items (owner, v) VALUES (-5, 'lag')")
            time.sleep(0.05)

    with open_engines(cluster, max_lag_ms=300.0, recover_lag_ms=100.0, probe_interval_ms=50.0) as engines:
        Session = routed_sessionmaker(engines, consistency="eventual")
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        try:
            cluster.pause_replay("r1")
            wait_until(lambda: engines.core.lag.replica("r1").state == replikit.LagState.LAGGING, 10, "r1 LAGGING")
            with Session() as session:
                nodes = set()
                for _ in range(40):
                    session.execute(select(func.count()).select_from(Item)).scalar_one()
                    nodes.add(engines.last_route.node)
            assert nodes == {"r2"}, nodes
            # Every replica lagging: eventual reads fall back to the primary, and say why.
            cluster.pause_replay("r2")
            wait_until(lambda: engines.core.lag.replica("r2").state == replikit.LagState.LAGGING, 10, "r2 LAGGING")
            with Session() as session:
                reasons = set()
                for _ in range(10):
                    session.execute(select(func.count()).select_from(Item)).scalar_one()
                    reasons.add((engines.last_route.node, engines.last_route.reason.name.lower()))
            assert reasons == {("primary", "all_replicas_lagging")}, reasons
            cluster.resume_replay("r2")
            cluster.resume_replay("r1")
            wait_until(lambda: all(engines.core.lag.replica(n).state != replikit.LagState.LAGGING
                                   for n in ("r1", "r2")), 10, "r1 and r2 OK")
            with Session() as session:
                back = set()
                for _ in range(40):
                    session.execute(select(func.count()).select_from(Item)).scalar_one()
                    back.add(engines.last_route.node)
            print(f"\n[sqlalchemy lag] while r1 lagged: {sorted(nodes)}; after: {sorted(back)}")
            assert back == {"r1", "r2"}, back
        finally:
            stop.set()
            t.join(timeout=10)


def test_monotonic_reads_never_go_back(cluster):
    """A monotonic session reading a counter that a writer keeps increasing never sees it go
    back, with r2 800 ms behind r1, also after the replica it reads from is killed: each read
    records what it saw (one round trip after it), so the next one goes to a replica that has
    it, or to the primary once the primary shows it (the xid floor)."""
    psycopg = pytest.importorskip("psycopg")
    cluster.sql("primary", "CREATE TABLE IF NOT EXISTS rk_sa_counter (id int PRIMARY KEY, v bigint NOT NULL); "
                           "INSERT INTO rk_sa_counter VALUES (1, 0) ON CONFLICT (id) DO NOTHING")
    stop = threading.Event()

    def writer():
        with psycopg.connect(cluster.dsn("primary"), autocommit=True) as conn:
            while not stop.is_set():
                conn.execute("UPDATE rk_sa_counter SET v = v + 1 WHERE id = 1")
                time.sleep(0.002)

    with open_engines(cluster, probe_interval_ms=50.0) as engines:
        cluster.set_apply_delay("r2", 800)
        Session = routed_sessionmaker(engines, consistency="monotonic")
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        try:
            seen, nodes, errors = [], [], []
            with Session() as session:
                for k in range(150):
                    if k == 75:
                        cluster.kill(nodes[-1])  # the replica this session reads from
                    try:
                        seen.append(session.execute(text("SELECT v FROM rk_sa_counter WHERE id = 1")).scalar_one())
                        nodes.append(engines.last_route.node)
                    except OperationalError as exc:  # the read in flight on the killed node
                        errors.append(exc)
                        session.rollback()  # as after any lost connection in SQLAlchemy
                    session.commit()
                    time.sleep(0.003)
                assert session.replikit_session.read_lsn.valid()
        finally:
            stop.set()
            t.join(timeout=10)
        back = sum(b < a for a, b in zip(seen, seen[1:]))
        print(f"\n[sqlalchemy monotonic] {len(seen)} reads, {len(errors)} failed: went back {back} times; "
              f"nodes before the kill {sorted(set(nodes[:75]))}, after {sorted(set(nodes[76:]))}")
        assert back == 0 and len(errors) <= 1
        assert set(nodes[:75]) & {"r1", "r2"}
        killed = nodes[74]
        assert killed not in nodes[76:]
        cluster.start(killed)


def test_primary_loss_surfaces_as_sqlalchemys_operational_error(cluster):
    """A write after the primary is killed raises sqlalchemy.exc.OperationalError (a DBAPIError,
    as with a plain engine); the primary is marked down; eventual reads go on on the replicas."""
    with open_engines(cluster, probe_interval_ms=50.0) as engines:
        Session = routed_sessionmaker(engines)
        with Session() as session:
            session.add(Item(owner=-6, v="before"))
            session.commit()
        cluster.kill("primary")
        with Session() as session:
            session.add(Item(owner=-6, v="after"))
            with pytest.raises(OperationalError) as info:
                session.commit()
        assert isinstance(info.value, DBAPIError)
        wait_until(lambda: not engines.core.topology.info("primary").up, 5, "primary marked down")
        with Session(consistency="eventual") as session:
            assert session.scalars(select(func.count()).select_from(Item)).one() >= 1
            assert engines.last_route.node in ("r1", "r2")
        print(f"\n[sqlalchemy primary loss] {type(info.value).__name__}: {str(info.value.orig).strip()[:80]}")


def test_bad_input_names_the_argument(cluster):
    """Typed errors naming the argument, before anything is sent."""
    with open_engines(cluster) as engines:
        Session = routed_sessionmaker(engines)
        with Session() as session:
            for options, kind, argument in [
                    ({"replikit_consistency": "read-your-writes"}, replikit.InvalidArgument, "replikit_consistency"),
                    ({"replikit_consistency": 3}, replikit.ArgumentTypeError, "replikit_consistency"),
                    ({"replikit_consistency": ""}, replikit.InvalidArgument, "replikit_consistency"),
                    ({"replikit_route": "somewhere"}, replikit.InvalidArgument, "replikit_route"),
                    ({"replikit_route": None}, replikit.ArgumentTypeError, "replikit_route"),
                    ({"replikit_max_staleness_ms": -1}, replikit.InvalidArgument, "replikit_max_staleness_ms"),
                    ({"replikit_max_staleness_ms": "1"}, replikit.ArgumentTypeError, "replikit_max_staleness_ms")]:
                with pytest.raises(kind) as info:
                    session.execute(text("SELECT 1").execution_options(**options))
                assert info.value.argument == argument, options
                with pytest.raises(kind) as info:
                    session.execute(select(Item), execution_options=options)
                assert info.value.argument == argument, options
                with pytest.raises(kind) as info:  # also when the statement goes to the primary
                    session.execute(insert(items).values(owner=-7, v="x").execution_options(**options))
                assert info.value.argument == argument, options
            session.rollback()
        for kwargs, kind, argument in [
                ({"consistency": "read-your-writes"}, replikit.InvalidArgument, "consistency"),
                ({"token": 5}, replikit.ArgumentTypeError, "token"),
                ({"token": "not a token"}, replikit.InvalidArgument, "token"),
                ({"replikit_session": "abc"}, replikit.ArgumentTypeError, "replikit_session"),
                ({"token": replikit.Session().token(), "replikit_session": replikit.Session()},
                 replikit.InvalidArgument, "token"),
                ({"bind": engines.primary_engine}, replikit.InvalidArgument, "bind")]:
            with pytest.raises(kind) as info:
                Session(**kwargs)
            assert info.value.argument == argument, kwargs
        with pytest.raises(replikit.ArgumentTypeError) as info:
            RoutedSession(engines="nope")
        assert info.value.argument == "engines"
        with Session() as session:
            with pytest.raises(replikit.ArgumentTypeError) as info:
                session.merge_token(5)
            assert info.value.argument == "token"
    dsn = cluster.dsn("primary")
    for args, kwargs, kind, argument in [
            ((5,), {}, replikit.ArgumentTypeError, "primary"),
            ((("p", "mysql://x@y/z"),), {}, replikit.InvalidArgument, "primary"),
            ((("p", dsn), "r1"), {}, replikit.ArgumentTypeError, "replicas"),
            ((("p", dsn), [("r1",)]), {}, replikit.ArgumentTypeError, "replicas"),
            ((("p", dsn),), {"consistency": "causally"}, replikit.InvalidArgument, "consistency"),
            ((("p", dsn),), {"max_lag_ms": -5.0}, replikit.InvalidArgument, "max_lag_ms"),
            ((("p", dsn),), {"isolation_level": "AUTOCOMMIT"}, replikit.InvalidArgument, "isolation_level"),
            ((("p", "host=x port=notaport =="),), {}, replikit.InvalidArgument, "primary")]:
        with pytest.raises(kind) as info:
            RoutedEngines(*args, **kwargs).dispose()
        assert info.value.argument == argument, (args, kwargs)


def test_concurrent_threads_route_at_their_own_level(cluster):
    """Two threads, one session each, replicas paused: one commits a row and reads it back at
    read-your-writes while the other's eventual session reads on both sides of that read; each
    is routed at its own session's level, with its own last_route."""
    engines = open_engines(cluster)
    try:
        Session = routed_sessionmaker(engines, expire_on_commit=False)
        for name in cluster.replica_names:
            cluster.pause_replay(name)
        b_read, a_read = threading.Event(), threading.Event()
        out = {}

        def task_a():
            with Session() as session:
                item = Item(owner=11, v="thread a")
                session.add(item)
                session.commit()
                assert b_read.wait(20)
                out["a"] = (session.execute(select(Item.v).where(Item.id == item.id)).scalar(),
                            session.last_route.node, session.last_route.reason)
                a_read.set()

        def task_b():
            with Session(consistency="eventual") as session:
                session.execute(select(func.count()).select_from(Item))
                b_read.set()
                assert a_read.wait(20)
                session.execute(select(func.count()).select_from(Item))
                out["b"] = (session.last_route.node in ("r1", "r2"), session.last_route.reason)

        threads = [threading.Thread(target=f) for f in (task_a, task_b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        engines.dispose()
    assert out["a"][:2] == ("thread a", "primary") and out["a"][2] != replikit.Reason.REPLICA_AVAILABLE
    assert out["b"] == (True, replikit.Reason.REPLICA_AVAILABLE)
