"""What the tests of the C++ PostgreSQL backend share (`from pg_backend_helpers import ...`):
the tables they use on the session's LocalCluster, the `tables` and `cluster` fixtures (import
them into the test module), a database opened on the cluster with every node probed, a steady
writer thread and a few small queries.

Importing it skips the importing test module when replikit was built without the backend.
"""

from __future__ import annotations

import threading

import pytest

import replikit

_core = replikit._core
if not getattr(_core, "HAVE_PG", False):  # pragma: no cover - depends on the build
    pytest.skip("replikit was built without the PostgreSQL backend (libpq)", allow_module_level=True)

from replikit.pg import ReplicatedDatabase, database_for_cluster  # noqa: E402

PROBE_INTERVAL_MS = 100.0


def reason_name(reason) -> str:
    return getattr(reason, "name", str(reason)).lower()


@pytest.fixture(scope="module")
def tables(pg_cluster):
    pg_cluster.sql("primary", """
        CREATE TABLE IF NOT EXISTS rk_items (id bigserial PRIMARY KEY, owner int, v text);
        CREATE TABLE IF NOT EXISTS rk_counter (id int PRIMARY KEY, v bigint NOT NULL);
        INSERT INTO rk_counter VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
    """)
    pg_cluster.wait_caught_up(timeout_ms=10_000)
    return pg_cluster


@pytest.fixture
def cluster(pg_cluster_reset, tables):
    return pg_cluster_reset


def open_db(cluster, **options) -> ReplicatedDatabase:
    db = database_for_cluster(cluster, **options)
    assert db.wait_probes(2, 5000), "the prober did not complete two probes of every node in 5 s"
    for status in db.nodes():
        assert status.up and status.reachable, status
    return db


class Writer:
    """A steady write load on the primary (one UPDATE every `period_s`) in a thread."""

    def __init__(self, db, period_s: float = 0.01):
        self.db, self.period_s = db, period_s
        self.stop = threading.Event()
        self.errors: list = []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        session = replikit.Session()
        while not self.stop.is_set():
            try:
                self.db.execute("UPDATE rk_counter SET v = v + 1 WHERE id = 1", session=session)
            except replikit.Error as exc:  # pragma: no cover - reported by the test
                self.errors.append(exc)
            self.stop.wait(self.period_s)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)


def backend_pid(db) -> int:
    return db.query("SELECT pg_backend_pid()", consistency="strong").scalar()


def primary_count(cluster, where: str) -> int:
    return int(cluster.sql("primary", f"SELECT count(*) FROM rk_b1 WHERE {where}")[0][0])


def read_decisions(db) -> int:
    """Reads the router counted (every decision but the writes)."""
    c = db.router.counters()
    return c["total"] - c["by_reason"].get("write", 0)

