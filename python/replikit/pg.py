"""The PostgreSQL backend of replikit (C++ on libpq, compiled into ``replikit._core``).

``ReplicatedDatabase`` runs reads and writes over a primary and its replicas with routing,
lag tracking, session tokens, connection pools and a background prober; ``PsycopgRouter``
routes psycopg 3 connections with it; ``database_for_cluster`` builds one over a
``replikit.testing.LocalCluster``; ``FailoverManager`` fails it over when the primary fails.

Importing this module raises ImportError when replikit was built without the backend. The
local test cluster moved to ``replikit.testing``, which does not need the backend.
"""

from __future__ import annotations

import warnings
from typing import Any

from . import _core

if not _core.HAVE_PG:
    raise ImportError(
        "replikit.pg: this build of replikit has no PostgreSQL backend (libpqxx and "
        "pkg-config were not found when it was built). Install them with "
        "`apt-get install libpqxx-dev pkg-config`, then rebuild and reinstall with "
        "`pip install .` from the repository root. The local test cluster, "
        "replikit.testing, works without the backend.")

from ._core import (ActionResult, DatabaseOptions, DatabaseStats, FailoverManager, FailoverReport, LossReport,
                    NodeStatus, ReplicatedDatabase, Result, Route)
from ._pgdb import PsycopgRouter, database_for_cluster
from .testing import LocalCluster as _LocalCluster

__all__ = [
    "ActionResult",
    "DatabaseOptions",
    "DatabaseStats",
    "FailoverManager",
    "FailoverReport",
    "LossReport",
    "NodeStatus",
    "PsycopgRouter",
    "ReplicatedDatabase",
    "Result",
    "Route",
    "database_for_cluster",
]


class LocalCluster(_LocalCluster):
    """Deprecated: the local cluster is ``replikit.testing.LocalCluster``.

    This alias warns and will be removed in the next release.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        warnings.warn("replikit.pg.LocalCluster is deprecated and will be removed in the next "
                      "release; use replikit.testing.LocalCluster", DeprecationWarning,
                      stacklevel=2)
        super().__init__(*args, **kwargs)
