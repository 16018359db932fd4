"""What the replikit.psycopg.ConnectionRouter tests share (`from psycopg_helpers import ...`):
the tables they write, the session's real cluster (primary, r1, r2; async streaming) restored
after each test by `pg_cluster_reset`, and a router whose nodes were all probed up."""

from __future__ import annotations

import dataclasses

import pytest

from replikit.psycopg import ConnectionRouter


@dataclasses.dataclass
class Item:
    id: int
    owner: int
    v: str


@pytest.fixture(scope="module")
def tables(pg_cluster):
    pg_cluster.sql("primary", """
        CREATE TABLE IF NOT EXISTS rk_pa_items (id bigserial PRIMARY KEY, owner int, v text);
        CREATE TABLE IF NOT EXISTS rk_pa_counter (id int PRIMARY KEY, v bigint NOT NULL);
        INSERT INTO rk_pa_counter VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
    """)
    pg_cluster.wait_caught_up(timeout_ms=10_000)
    return pg_cluster


@pytest.fixture
def cluster(pg_cluster_reset, tables):
    return pg_cluster_reset


def open_router(cluster, **kwargs) -> ConnectionRouter:
    replicas = [(name, cluster.dsn(name)) for name in cluster.replica_names]
    router = ConnectionRouter(("primary", cluster.dsn("primary")), replicas, **kwargs)
    assert router.wait_probes(2, 5000), "two probes of every node within 5 s"
    assert all(n["up"] and n["reachable"] for n in router.nodes()), router.nodes()
    return router


def primary_count(cluster, where: str) -> int:
    return int(cluster.sql("primary", f"SELECT count(*) FROM rk_pa_items WHERE {where}")[0][0])
