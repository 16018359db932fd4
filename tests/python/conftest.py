"""Shared pytest fixtures for replikit's Python tests.

Add fixtures in clearly marked sections; keep each section self-contained.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from typing import Tuple

import pytest

# =====================================================================================
# Cluster directories for tests that start their own cluster (`from conftest import ...`).


def new_cluster_dir(prefix: str) -> Tuple[str, str]:
    """(parent, cluster_dir): a fresh parent directory in the harness's scratch area that the
    postgres user can reach, and the cluster directory to create inside it. The caller
    removes the parent."""
    from replikit.testing import scratch_dir

    parent = tempfile.mkdtemp(prefix=prefix, dir=scratch_dir())
    os.chmod(parent, 0o755)  # the postgres user must reach the cluster directory
    return parent, os.path.join(parent, "cluster")


# =====================================================================================
# Bounded waits: plain helpers, not fixtures (`from conftest import wait_until`).


def wait_until(predicate, timeout_s: float, what: str, poll_s: float = 0.01):
    """Polls ``predicate`` every ``poll_s`` until it returns something truthy and returns
    that; fails the test with an AssertionError naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(poll_s)



def node_name(decision):
    """A routing decision's node as a name (None: no node), whether `Decision.node` holds the
    name or, as in older builds, the index (`from conftest import node_name`)."""
    node = decision.node
    if node is None or isinstance(node, str):
        return node
    return decision.node_name

# ====================================================================== end of waits


# =====================================================================================
# Real PostgreSQL cluster (replikit.testing.LocalCluster): primary + 2 async replicas.
#
# The cluster comes from replikit's pytest plugin (replikit.testing.pytest_plugin, loaded by
# pytest through its entry point): `replikit_cluster` is started once per test session and
# stopped at its end (and by LocalCluster's atexit hook if the session dies). Tests that
# change the cluster (stop/kill nodes, pause replay, delays, replication mode) should use
# `pg_cluster_reset`, the same cluster put back to normal after the test.
# Mark such tests with @pytest.mark.pg.

PG_SERVER_BINARY = "/usr/lib/postgresql/15/bin/postgres"


def require_pg_server() -> None:
    """Skip the calling test when the PostgreSQL 15 server is not installed."""
    if not os.path.exists(PG_SERVER_BINARY):
        pytest.skip(f"PostgreSQL 15 server not installed ({PG_SERVER_BINARY} is missing; "
                    "apt-get install postgresql-15)")


@pytest.fixture(scope="session")
def pg_cluster(replikit_cluster):
    """The plugin's session cluster (primary, r1, r2; async), under the name our tests use."""
    print(f"\n[pg_cluster] primary + 2 replicas up in {replikit_cluster.startup_ms:.0f} ms "
          f"in {replikit_cluster.base_dir}")
    return replikit_cluster


@pytest.fixture
def pg_cluster_reset(replikit_cluster_reset):
    """The session cluster, restored afterwards (nodes started, replay resumed, no
    apply delay, original replication mode, all replicas streaming)."""
    return replikit_cluster_reset

# ========================================================================= end of pg


# =====================================================================================
# replikit.django (test_django*.py): Django's settings can be configured once per process, so
# the comments example's project over the session cluster is set up once per session; each
# module gets replikit.django with its State reset (probers stopped) when the module ends.


@pytest.fixture(scope="session")
def django_site(pg_cluster):
    """Django set up once for this process (settings can be configured once)."""
    import django
    from django.conf import settings
    from django.core.management import call_command

    from django_helpers import EXAMPLE, SECRET, database

    if settings.configured:
        pytest.skip("Django was configured by another test module")
    sys.path.insert(0, str(EXAMPLE))
    settings.configure(
        SECRET_KEY=SECRET, USE_TZ=True, ALLOWED_HOSTS=["testserver"], DEBUG=False,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        DATABASES={"default": database(pg_cluster, "primary"), "r1": database(pg_cluster, "r1"),
                   "r2": database(pg_cluster, "r2")},
        INSTALLED_APPS=["replikit.django", "comments"],
        MIDDLEWARE=["replikit.django.ReplikitMiddleware"], ROOT_URLCONF="comments_site.urls",
        DATABASE_ROUTERS=["replikit.django.ReplikitRouter"],
        REPLIKIT={"PRIMARY": "default", "REPLICAS": ["r1", "r2"], "NODE_NAMES": {"default": "primary"},
                  "WAIT_FOR_REPLICA_MS": 300.0,
                  "OPTIONS": {"probe_interval_ms": 20.0, "max_lag_ms": 500.0, "recover_lag_ms": 200.0}})
    django.setup()
    call_command("migrate", "comments", database="default", verbosity=0)
    pg_cluster.wait_caught_up(timeout_ms=10_000)


@pytest.fixture(scope="module")
def dj(django_site):
    """replikit.django for one test module."""
    import replikit.django as rd
    from django.db import connections

    yield rd
    rd.reset_state()
    connections.close_all()


@pytest.fixture
def rd(dj, pg_cluster_reset):
    """replikit.django with fresh probes of a cluster in its normal state."""
    from django.db import connections
    connections.close_all()
    state = dj.get_state()
    assert state.wait_probes(2, 5000)
    wait_until(lambda: all(n["up"] for n in state.nodes()), 5, "every node up")
    yield dj
    connections.close_all()

# ==================================================================== end of replikit.django
