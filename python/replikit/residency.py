"""Data residency: one cluster per jurisdiction, and sessions that never leave theirs.

A user whose data must stay in the EU (GDPR) is served by the EU cluster alone: its writes go
to the EU primary, its reads to EU nodes, and when the EU cluster cannot serve, the call
fails there instead of falling back to another jurisdiction. Replication never crosses the
boundary because the clusters are separate; the router only has to pick the right one.

    >>> eu = database_for_cluster(eu_cluster)            # doctest: +SKIP
    >>> us = database_for_cluster(us_cluster)            # doctest: +SKIP
    >>> router = ResidencyRouter({"eu": eu, "us": us},   # doctest: +SKIP
    ...                          residency={"eu": "eu", "de": "eu", "us": "us"})
    >>> user = router.tag(Session(), "de")               # doctest: +SKIP
    >>> router.execute("INSERT INTO t VALUES ($1)", ["x"], user)   # the EU primary
    >>> router.query("SELECT * FROM t", session=user)    # EU nodes only

The clusters may be :class:`replikit.pg.ReplicatedDatabase` objects (``query``, ``execute``,
``transaction``) or core :class:`replikit.Router` objects (``route_read``, ``route_write``);
the router forwards to the one cluster a residency tag maps to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Generic, Mapping, Optional, Tuple, TypeVar, Union

from ._core import Decision, InvalidArgument, Session

__all__ = ["ResidencyError", "ResidencyRouter", "Resident"]

T = TypeVar("T")


class ResidencyError(InvalidArgument):
    """A session whose residency tag no cluster serves (or no tag where one is required)."""

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"{argument}: {message}")
        self.argument = argument


@dataclass(frozen=True)
class Resident:
    """A session tagged with the residency of its data (a key of the router's ``residency``)."""

    session: Session
    residency: str


SessionLike = Union[Session, Resident, None]


class ResidencyRouter(Generic[T]):
    """Sends each call to the one cluster its residency tag maps to.

    ``clusters`` maps a cluster (jurisdiction) name to its database or router; ``residency``
    maps each residency tag to a cluster name; ``default`` is the cluster for calls without a
    tag (None: such calls are refused, so untagged personal data cannot slip anywhere).
    """

    def __init__(self, clusters: Mapping[str, T], residency: Mapping[str, str], *,
                 default: Optional[str] = None) -> None:
        if not isinstance(clusters, Mapping) or not clusters:
            raise ResidencyError("clusters", "expected a non-empty mapping of cluster name to database or router")
        if not isinstance(residency, Mapping):
            raise ResidencyError("residency", "expected a mapping of residency tag to cluster name")
        for name in clusters:
            if not isinstance(name, str) or not name:
                raise ResidencyError("clusters", f"cluster names must be non-empty str, got {name!r}")
        for tag, cluster in residency.items():
            if not isinstance(tag, str) or not tag:
                raise ResidencyError("residency", f"tags must be non-empty str, got {tag!r}")
            if cluster not in clusters:
                raise ResidencyError("residency", f"tag {tag!r} maps to {cluster!r}, which is not one of the "
                                                  f"clusters {sorted(clusters)}")
        if default is not None and default not in clusters:
            raise ResidencyError("default", f"{default!r} is not one of the clusters {sorted(clusters)}")
        self._clusters: Dict[str, T] = dict(clusters)
        self._residency: Dict[str, str] = dict(residency)
        self._default = default

    @property
    def clusters(self) -> Dict[str, T]:
        """The clusters by name (a copy)."""
        return dict(self._clusters)

    def tag(self, session: Session, residency: str) -> Resident:
        """``session`` tagged with ``residency`` (checked now, so a typo fails here)."""
        if not isinstance(session, Session):
            raise TypeError(f"session: expected a replikit.Session, got {type(session).__name__}")
        self.cluster_for(residency)
        return Resident(session, residency)

    def cluster_for(self, residency: Optional[str]) -> str:
        """The name of the cluster that serves ``residency`` (None: the default cluster)."""
        if residency is None:
            if self._default is None:
                raise ResidencyError("residency", "this call has no residency tag and the router has no "
                                                  "default cluster")
            return self._default
        if not isinstance(residency, str):
            raise TypeError(f"residency: expected a str, got {type(residency).__name__}")
        try:
            return self._residency[residency]
        except KeyError:
            raise ResidencyError("residency", f"no cluster serves residency {residency!r} (known: "
                                              f"{sorted(self._residency)})") from None

    def _resolve(self, session: SessionLike, residency: Optional[str]) -> Tuple[str, T, Optional[Session]]:
        if isinstance(session, Resident):
            if residency is not None and residency != session.residency:
                raise ResidencyError("residency", f"the session is tagged {session.residency!r}, the call "
                                                  f"asks for {residency!r}")
            residency, session = session.residency, session.session
        name = self.cluster_for(residency)
        return name, self._clusters[name], session

    # ---- core routers ----

    def route_read(self, session: SessionLike, *args: Any, residency: Optional[str] = None,
                   **kwargs: Any) -> Tuple[str, Decision]:
        """(cluster name, the Decision of that cluster's router) for a read."""
        name, router, plain = self._resolve(session, residency)
        return name, router.route_read(plain, *args, **kwargs)  # type: ignore[attr-defined]

    def route_write(self, session: SessionLike = None, *, residency: Optional[str] = None) -> Tuple[str, Decision]:
        """(cluster name, the Decision of that cluster's router) for a write."""
        name, router, _plain = self._resolve(session, residency)
        return name, router.route_write()  # type: ignore[attr-defined]

    # ---- databases ----

    def query(self, sql: str, params: Any = None, session: SessionLike = None, *,
              residency: Optional[str] = None, **kwargs: Any) -> Any:
        """A read on the session's cluster (its consistency rules as usual)."""
        _name, db, plain = self._resolve(session, residency)
        return db.query(sql, params, plain, **kwargs)  # type: ignore[attr-defined]

    def execute(self, sql: str, params: Any = None, session: SessionLike = None, *,
                residency: Optional[str] = None) -> Any:
        """A write on the primary of the session's cluster."""
        _name, db, plain = self._resolve(session, residency)
        return db.execute(sql, params, plain)  # type: ignore[attr-defined]

    def transaction(self, statements: Any, session: SessionLike = None, *,
                    residency: Optional[str] = None, **kwargs: Any) -> Any:
        """A transaction on the primary of the session's cluster."""
        _name, db, plain = self._resolve(session, residency)
        return db.transaction(statements, plain, **kwargs)  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"ResidencyRouter(clusters={sorted(self._clusters)!r}, residency={self._residency!r}, " \
               f"default={self._default!r})"
