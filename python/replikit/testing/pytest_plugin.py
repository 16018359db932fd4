"""pytest fixtures for a local PostgreSQL primary with streaming replicas.

pytest loads this plugin by itself once replikit is installed (entry point ``replikit`` in
the ``pytest11`` group); with plugin autoloading off, add ``-p replikit.testing.pytest_plugin``.

Fixtures:
    ``replikit_cluster``: a running ``replikit.testing.LocalCluster`` (``primary``, ``r1``,
        ``r2``, ...), started once per session (or per module, see below) and stopped
        afterwards, also when tests fail. Tests are skipped when the PostgreSQL server
        binaries are not installed.
    ``replikit_cluster_reset``: the same cluster, put back to normal after the test (nodes
        started, replay resumed, no apply delay, the original replication mode).

Options (ini file: ``pytest.ini``, ``[tool.pytest.ini_options]`` or ``setup.cfg``)::

    replikit_cluster_replicas = 2        # streaming replicas, 0-10
    replikit_cluster_mode = async        # async, semi_sync, sync, sync_all or remote_apply
    replikit_cluster_sync_count = 1      # k of ANY k (...) in the synchronous modes
    replikit_cluster_scope = session     # session or module: one cluster per module

The server binaries are found in ``$REPLIKIT_PG_BIN_DIR`` (default
/usr/lib/postgresql/15/bin).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Dict, Iterator

import pytest

if TYPE_CHECKING:
    from .cluster import LocalCluster

_OPTIONS = {
    "replikit_cluster_replicas": ("streaming replicas of replikit_cluster (0-10)", "2"),
    "replikit_cluster_mode": ("replication mode of replikit_cluster: async, semi_sync, "
                              "sync, sync_all or remote_apply", "async"),
    "replikit_cluster_sync_count": ("k of ANY k (...) for replikit_cluster's synchronous "
                                    "modes", "1"),
    "replikit_cluster_scope": ("session or module: how long one replikit_cluster lives",
                               "session"),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    for name, (help_text, default) in _OPTIONS.items():
        parser.addini(name, help_text, default=default)


def _settings(config: pytest.Config) -> Dict[str, Any]:
    """The cluster options of the ini file, checked; a UsageError names a bad one."""
    values = {name: str(config.getini(name)).strip() for name in _OPTIONS}
    settings: Dict[str, Any] = {"mode": values["replikit_cluster_mode"]}
    for key in ("replicas", "sync_count"):
        option = f"replikit_cluster_{key}"
        try:
            settings[key] = int(values[option])
        except ValueError:
            raise pytest.UsageError(f"{option}: expected an integer, "
                                    f"got {values[option]!r}") from None
    if values["replikit_cluster_scope"] not in ("session", "module"):
        raise pytest.UsageError("replikit_cluster_scope: expected session or module, "
                                f"got {values['replikit_cluster_scope']!r}")
    from .cluster import check_arguments

    try:
        check_arguments(settings["replicas"], settings["mode"], settings["sync_count"], None)
    except ValueError as exc:
        raise pytest.UsageError(f"replikit_cluster_{exc}") from None
    return settings


def pytest_configure(config: pytest.Config) -> None:
    _settings(config)  # a bad option stops the run at once, not at the first test


def _scope(fixture_name: str, config: pytest.Config) -> str:
    return str(config.getini("replikit_cluster_scope")).strip()


@pytest.fixture(scope=_scope)  # type: ignore[arg-type]
def replikit_cluster(pytestconfig: pytest.Config) -> Iterator["LocalCluster"]:
    """A running LocalCluster (primary and replicas), stopped after the last test using it."""
    from .cluster import LocalCluster
    from .tools import pg_bin_dir

    server = os.path.join(pg_bin_dir(), "postgres")
    if not os.access(server, os.X_OK):
        pytest.skip(f"PostgreSQL server not installed ({server} is missing; "
                    "apt-get install postgresql-15, or set REPLIKIT_PG_BIN_DIR)")
    cluster = LocalCluster(**_settings(pytestconfig))
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def replikit_cluster_reset(replikit_cluster: "LocalCluster") -> Iterator["LocalCluster"]:
    """``replikit_cluster``, restored after the test (nodes started, replay resumed, no apply
    delay, original replication mode, all replicas streaming)."""
    yield replikit_cluster
    replikit_cluster.reset()
