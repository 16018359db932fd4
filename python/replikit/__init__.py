"""replikit: client-side database replication.

Routing of reads and writes over a primary and its replicas, lag tracking at sub-second
resolution, read-your-writes / monotonic / causal consistency by LSN tokens, quorum math,
and a PostgreSQL backend. The compiled core lives in ``replikit._core``.
"""

from __future__ import annotations

import logging as _logging

try:
    from . import _core
except ImportError as exc:  # pragma: no cover - only hit on a broken install
    raise ImportError(
        "replikit's compiled module replikit._core could not be imported "
        f"({exc}). Build and install the package with `pip install .` from the "
        "repository root (needs a C++17 compiler and CMake); importing from a source "
        "checkout without building does not work."
    ) from exc

from ._core import *  # noqa: F401,F403

# A library's loggers (all under "replikit") print nothing until the application configures
# logging: without this, warnings would reach stderr through logging's last-resort handler.
_logging.getLogger("replikit").addHandler(_logging.NullHandler())


def _version() -> str:
    """The installed distribution's version; pyproject.toml's in an uninstalled source tree."""
    from importlib import metadata

    try:
        return metadata.version("replikit")
    except metadata.PackageNotFoundError:
        pass
    import os
    import re

    pyproject = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "pyproject.toml")
    try:
        with open(pyproject, encoding="utf-8") as handle:
            found = re.search(r'^version\s*=\s*"([^"]+)"', handle.read(), re.MULTILINE)
    except OSError:
        found = None
    return found.group(1) if found else "0+unknown"


__version__ = _version()
