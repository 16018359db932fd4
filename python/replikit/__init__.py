"""replikit: client-side database replication.

Routing of reads and writes over a primary and its replicas, lag tracking at sub-second
resolution, read-your-writes / monotonic / causal consistency by LSN tokens, quorum math,
and a PostgreSQL backend. The compiled core lives in ``replikit._core``.
"""

from __future__ import annotations

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

__version__ = "0.1.0"
