"""The setup the failover tests share (`from failover_helpers import ...`): a LocalCluster with
the history table (tests/checker/failover.py's ``w``) replayed by every replica, a database and
a FailoverManager that watch it at 50 ms, and a FailoverWriter that records every write, all
stopped when the ``with`` block ends, however it ends (a failed assertion included).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Dict, Iterator, Optional, Sequence, Union

from replikit import _core
from replikit.pg import database_for_cluster
from replikit.testing import LocalCluster

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.checker import failover as history  # noqa: E402

WAIT_S = 30.0


def fast_database(cluster: Any, **options: Any) -> Any:
    """A database probing every 50 ms with a 200 ms probe timeout unless ``options`` say
    otherwise (and the default statement_timeout_ms: only a deposition ends a call blocked on
    a hung primary early)."""
    settings = {"probe_interval_ms": 50, "probe_timeout_ms": 200, "connect_timeout_ms": 2000}
    settings.update(options)
    return database_for_cluster(cluster, **settings)


def fast_manager(db: Any, **options: Any) -> Any:
    """A FailoverManager that detects a silent primary in 150 ms (50 ms x 3)."""
    options.setdefault("detector", _core.DetectorConfig(interval_ms=50, missed_threshold=3))
    options.setdefault("state_interval_ms", 50)
    return _core.FailoverManager(db, **options)


def judged(cluster: Any, writer: Any, node: str):
    """The writer's history read back on ``node`` and checked: (ops, violations)."""
    history.read_back(cluster, node, writer.history)
    ops = writer.history.ops()
    return ops, history.check(ops)


def in_recovery(cluster: Any, node: str) -> bool:
    return cluster.sql(node, "SELECT pg_is_in_recovery()")[0][0] == "t"


def _halt(writer: Any) -> None:
    if writer.ident is not None:  # a thread never started cannot be joined
        writer.halt()


class HistoryCluster:
    """What history_cluster() set up: ``cluster``, ``db``, ``manager`` (None without one; not
    started) and ``writer`` (a FailoverWriter on ``db``, not started). The new_* methods make
    more of each, stopped with the rest, in the reverse order of their making."""

    def __init__(self, cluster: Any, stack: contextlib.ExitStack) -> None:
        self.cluster = cluster
        self._stack = stack
        self.db: Any = None
        self.manager: Any = None
        self.writer: Any = None

    def new_database(self, **options: Any) -> Any:
        """A fast_database() of the cluster, closed at the end."""
        db = fast_database(self.cluster, **options)
        self._stack.callback(db.close)
        return db

    def new_manager(self, db: Any = None, **options: Any) -> Any:
        """A fast_manager() of ``db`` (default: ``self.db``), stopped at the end."""
        manager = fast_manager(self.db if db is None else db, **options)
        self._stack.callback(manager.stop)
        return manager

    def new_writer(self, db: Any = None, **options: Any) -> Any:
        """A FailoverWriter on ``db`` (default: ``self.db``), halted at the end."""
        writer = history.FailoverWriter(self.db if db is None else db, self.cluster, **options)
        self._stack.callback(_halt, writer)
        return writer


@contextlib.contextmanager
def history_cluster(replicas: int = 2, mode: str = "async", *,
                    sql: Sequence[str] = (history.SCHEMA,),
                    manager: Union[bool, Dict[str, Any]] = True,
                    database: Optional[Dict[str, Any]] = None,
                    **cluster_options: Any) -> Iterator[HistoryCluster]:
    """A LocalCluster(replicas, mode, **cluster_options) whose primary ran each of ``sql`` (one
    psql call each) and whose replicas replayed it; then its database (fast_database(), with
    ``database``'s options), a manager (fast_manager(); ``manager`` False: none, a dict: its
    options) and a writer. On exit the writers are halted, the managers stopped, the databases
    closed, then the cluster is stopped."""
    with LocalCluster(replicas=replicas, mode=mode, **cluster_options) as cluster, \
            contextlib.ExitStack() as stack:
        for statement in sql:
            cluster.sql("primary", statement)
        cluster.wait_caught_up(timeout_ms=WAIT_S * 1000)
        setup = HistoryCluster(cluster, stack)
        setup.db = setup.new_database(**(database or {}))
        if manager is not False:
            setup.manager = setup.new_manager(**({} if manager is True else manager))
        setup.writer = setup.new_writer()
        yield setup
