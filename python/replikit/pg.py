"""The PostgreSQL backend of replikit (C++ on libpq, compiled into ``replikit._core``).

``ReplicatedDatabase`` runs reads and writes over a primary and its replicas with routing,
lag tracking, session tokens, connection pools and a background prober; ``PsycopgRouter``
routes psycopg 3 connections with it; ``database_for_cluster`` builds one over a
``replikit.testing.LocalCluster``; ``FailoverManager`` fails it over when the primary fails.

Values: parameters go through psycopg's dumpers and result columns through psycopg's loaders,
by type OID (dict -> jsonb, list -> array, bytes -> bytea, Decimal, UUID, datetime,
timedelta, ...; timestamptz comes back in UTC). Rows are tuples unless a row factory says
otherwise (``tuple_row``, ``dict_row``, ``namedtuple_row``, ``class_row(cls)``), per call or
per database (``row_factory=``). ``adapters`` is the psycopg AdaptersMap used for both:
register custom dumpers and loaders there.

Importing this module raises ImportError when replikit was built without the backend. The
local test cluster moved to ``replikit.testing``, which does not need the backend.
"""

from __future__ import annotations

import warnings
from typing import Any

from ._backend import require_pg

require_pg("replikit.pg")

from ._core import (ActionResult, DatabaseOptions, DatabaseStats, FailoverManager, FailoverReport, LossReport,
                    NodeStatus, ReplicatedDatabase, Result, Route)
from ._pgdb import ConsistencyName, PsycopgRouter, database_for_cluster
from ._pgvalues import RowFactory, adapters, class_row, dict_row, namedtuple_row, tuple_row
from .events import Event, EventKind, EventLog
from .testing import LocalCluster as _LocalCluster

__all__ = [
    "ActionResult",
    "ConsistencyName",
    "DatabaseOptions",
    "DatabaseStats",
    "Event",
    "EventKind",
    "EventLog",
    "FailoverManager",
    "FailoverReport",
    "LossReport",
    "NodeStatus",
    "PsycopgRouter",
    "ReplicatedDatabase",
    "Result",
    "Route",
    "RowFactory",
    "adapters",
    "class_row",
    "database_for_cluster",
    "dict_row",
    "namedtuple_row",
    "tuple_row",
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
