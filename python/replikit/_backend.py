"""Whether this build has the PostgreSQL backend, and what to do when it has not."""

from __future__ import annotations

from . import _core

MISSING_PG = (
    "this installation of replikit was built without its PostgreSQL backend: libpq (its headers "
    "and pkg-config file) was not found when it was built, or it was built on purpose with "
    "REPLIKIT_WITH_PG=OFF. Install libpq (Debian/Ubuntu: apt-get install libpq-dev pkg-config; "
    "Fedora: dnf install libpq-devel pkgconf), then rebuild and reinstall with "
    "`pip install --force-reinstall --no-deps .` from the repository root, or install a replikit "
    "wheel (it bundles libpq). The local test cluster, replikit.testing, works without the backend.")


def require_pg(module: str) -> None:
    """Raises ImportError naming `module` when the backend is not in this build."""
    if not getattr(_core, "HAVE_PG", False):
        raise ImportError(f"{module}: {MISSING_PG}")
