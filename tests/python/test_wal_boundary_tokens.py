"""A write whose commit record ends exactly at a WAL page boundary (or a segment's start), on a
real cluster: pg_current_wal_insert_lsn() then reports the boundary + 24 (+ 40), while replicas
that replayed everything report the boundary. The session's token must be the boundary, so that
read-your-writes reads go to the caught-up replicas (not to the primary until more WAL comes),
for the C++ backend (execute, and a Monotonic read observed on the primary), the psycopg
adapter and the older PsycopgRouter. The lag tracker must see the idle replicas caught up
(its primary samples are flush LSNs, which are record ends). The Django path is in
test_django.py (Django is configured once per process).

Each scenario checks afterwards that the insert position was still at the boundary (no
background WAL came in between: a bgwriter snapshot, a hint-bit page image) and runs again,
up to RETRIES times, if it was not."""

from __future__ import annotations

import pytest

from conftest import wait_until
from wal_boundary import EMIT_SQL, drive_to_boundary, insert_lsn, layout_of, lsn_text

import replikit

psycopg = pytest.importorskip("psycopg")

pytestmark = pytest.mark.pg

_core = replikit._core
if not getattr(_core, "HAVE_PG", False):  # pragma: no cover - depends on the build
    pytest.skip("replikit was built without the PostgreSQL backend (libpqxx)", allow_module_level=True)

from replikit.pg import PsycopgRouter, database_for_cluster  # noqa: E402

RETRIES = 3
READS = 5


@pytest.fixture
def primary(pg_cluster_reset):
    """An autocommit connection to the primary that reads the insert position."""
    with psycopg.connect(pg_cluster_reset.dsn("primary"), autocommit=True) as conn:
        yield conn


def filler(conn):
    return lambda n: conn.execute(f"SELECT pg_logical_emit_message(false, 'rk', repeat('x', {n}))")


def replicas_at(cluster, boundary: int) -> None:
    """Waits (5 s at most) until every replica has replayed up to the boundary."""
    want = replikit.Lsn(lsn_text(boundary))
    wait_until(lambda: all(replikit.Lsn(cluster.sql(r, "SELECT pg_last_wal_replay_lsn()")[0][0]) == want
                           for r in cluster.replica_names), 5, f"replicas replayed up to {lsn_text(boundary)}")


def scenario(primary, cluster, run, segment: bool):
    """`run(layout, segment)` -> (boundary, raw insert LSN, ...), again when background WAL
    moved the insert position before it finished (RETRIES times at most)."""
    layout = layout_of(primary)
    for attempt in range(RETRIES):
        out = run(layout, segment)
        boundary, raw = out[0], out[1]
        still = insert_lsn(primary) == raw
        print(f"\n[{'segment' if segment else 'page'}] boundary {lsn_text(boundary)}, insert LSN "
              f"{lsn_text(raw)}, attempt {attempt}: {out[2:]}{'' if still else ' (WAL moved: again)'}")
        if still:
            return out
    pytest.fail(f"background WAL moved the insert position in each of {RETRIES} attempts")


@pytest.mark.parametrize("segment", [False, True], ids=["page", "segment"])
def test_cpp_backend_token_at_a_boundary_is_reached_by_replicas(primary, pg_cluster_reset, segment):
    cluster = pg_cluster_reset
    with database_for_cluster(cluster, probe_interval_ms=50) as db:
        assert db.wait_probes(2, 5000)

        def run(layout, seg):
            session = replikit.Session()
            boundary, raw = drive_to_boundary(
                primary, layout, lambda n: db.execute(EMIT_SQL.format(n=n), session=session),
                segment=seg, filler=filler(primary))
            replicas_at(cluster, boundary)
            nodes = [db.query("SELECT 1", session=session, consistency="read_your_writes",
                              wait_for_replica_ms=200).node for _ in range(READS)]
            # b) the lag tracker: the primary's samples are flush LSNs (the boundary); idle
            # replicas at the boundary are caught up, in bytes and in time.
            db.wait_probes(3, 5000)
            lag = {n.name: (n.lag_bytes, n.lag_ms, n.lag_state.name) for n in db.nodes() if n.name != "primary"}
            # A Monotonic read served by the primary observes its insert position.
            # (A probe may bring a replica back up between mark_down and the read: bounded retries.)
            for _ in range(5):
                observer = replikit.Session()
                for r in cluster.replica_names:
                    db.mark_down(r)
                observed = db.query("SELECT 1", session=observer, consistency="monotonic")
                if observed.node == "primary":
                    break
            wait_until(lambda: all(n.up for n in db.nodes()), 5, "replicas probed up again")
            return boundary, raw, session.write_lsn, nodes, lag, observed.node, observer.read_lsn

        boundary, raw, token, nodes, lag, observed_node, observed = scenario(primary, cluster, run, segment)
        assert raw - boundary == (40 if segment else 24)
        assert token == replikit.Lsn(lsn_text(boundary))
        assert "primary" not in nodes, nodes
        assert all(b == 0 and state == "OK" for b, _, state in lag.values()), lag
        assert observed_node == "primary" and observed == replikit.Lsn(lsn_text(boundary))


def test_psycopg_adapter_token_at_a_page_boundary_is_reached_by_replicas(primary, pg_cluster_reset):
    pytest.importorskip("psycopg_pool")
    from replikit.psycopg import ConnectionRouter

    cluster = pg_cluster_reset
    replicas = [(name, cluster.dsn(name)) for name in cluster.replica_names]
    with ConnectionRouter(("primary", cluster.dsn("primary")), replicas, probe_interval_ms=50) as router:
        assert router.wait_probes(2, 5000)

        def write(session, n):
            with router.write(session) as conn:
                conn.execute(EMIT_SQL.format(n=n))

        def run(layout, seg):
            session = replikit.Session()
            boundary, raw = drive_to_boundary(primary, layout, lambda n: write(session, n))
            replicas_at(cluster, boundary)
            router.wait_probes(2, 5000)
            nodes = []
            for _ in range(READS):
                with router.read(session, wait_for_replica_ms=200) as conn:
                    conn.execute("SELECT 1")
                nodes.append(router.last_route.node)
            lag = {n["name"]: (n["lag_bytes"], n["lag_ms"], n["lag_state"].name)
                   for n in router.nodes() if n["name"] != "primary"}
            return boundary, raw, session.write_lsn, nodes, lag

        boundary, raw, token, nodes, lag = scenario(primary, cluster, run, False)
        assert token == replikit.Lsn(lsn_text(boundary))
        assert "primary" not in nodes, (nodes, lag)
        assert all(b == 0 and state == "OK" for b, _, state in lag.values()), lag


def test_psycopg_router_token_at_a_page_boundary_is_reached_by_replicas(primary, pg_cluster_reset):
    cluster = pg_cluster_reset
    with database_for_cluster(cluster, probe_interval_ms=50) as db, PsycopgRouter(db) as router:
        assert db.wait_probes(2, 5000)

        def write(session, n):
            with router.write(session) as conn:
                conn.execute(EMIT_SQL.format(n=n))

        def run(layout, seg):
            session = replikit.Session()
            boundary, raw = drive_to_boundary(primary, layout, lambda n: write(session, n))
            replicas_at(cluster, boundary)
            db.wait_probes(2, 5000)
            nodes = []
            for _ in range(READS):
                with router.read(session, consistency="read_your_writes", wait_for_replica_ms=200) as conn:
                    conn.execute("SELECT 1")
                nodes.append(router.last_route.node)
            return boundary, raw, session.write_lsn, nodes

        boundary, raw, token, nodes = scenario(primary, cluster, run, False)
        assert token == replikit.Lsn(lsn_text(boundary))
        assert "primary" not in nodes, nodes

