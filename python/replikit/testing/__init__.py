"""A local PostgreSQL cluster for tests, benchmarks and notebooks.

``LocalCluster`` starts a primary and N streaming replicas of the machine's PostgreSQL 15
on loopback, in a directory of its own::

    from replikit.testing import LocalCluster

    with LocalCluster(replicas=2, mode="async") as cluster:
        cluster.sql("primary", "CREATE TABLE t (id int)")
        cluster.wait_caught_up(timeout_ms=10_000)
        print(cluster.dsn("r1"))

It is pure Python (standard library only; no compiled PostgreSQL backend needed). It runs
SQL through ``psql`` and runs ``initdb`` / ``postgres`` as the ``postgres`` user when the
caller is root. It never uses port 5432 and never touches the distribution's default
cluster.

Bring-up is fast because ``initdb`` runs once into a cached template directory
(``template``); every node is a copy of it. A replica is a copy plus ``standby.signal``,
``primary_conninfo`` and a physical replication slot on the primary named after it;
per-node settings (port, cluster_name, ...) go into ``postgresql.auto.conf`` (``nodes``).

``EtcdCluster`` starts 1 or 3 members of the machine's etcd on loopback for the tests of the
coordination across hosts (``replikit.etcd``); it can kill, pause, resume and restart members.

pytest users get the fixtures ``replikit_cluster`` and ``replikit_cluster_reset`` from
``replikit.testing.pytest_plugin``, which pytest loads by itself once replikit is installed.
"""

from __future__ import annotations

from .cluster import LocalCluster
from .etcd import EtcdCluster, etcd_available
from .errors import ClusterError, ClusterSQLError, ClusterTimeoutError
from .nodes import MODES, Node, scratch_dir
from .tools import DEFAULT_PG_BIN_DIR

__all__ = [
    "ClusterError",
    "ClusterSQLError",
    "ClusterTimeoutError",
    "DEFAULT_PG_BIN_DIR",
    "EtcdCluster",
    "LocalCluster",
    "MODES",
    "Node",
    "etcd_available",
    "scratch_dir",
]
