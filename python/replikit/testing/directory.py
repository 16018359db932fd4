"""The cluster directory: its description file (cluster.json) and taking it over."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any, Dict, Optional

from .errors import ClusterError
from .nodes import Node, scratch_dir
from .processes import Supervisor
from .tools import ServerTools

DESCRIPTION_FILE = "cluster.json"


def read_description(base_dir: str) -> Dict[str, Any]:
    """The parsed cluster.json of ``base_dir``; ClusterError when there is none."""
    path = os.path.join(os.path.abspath(base_dir), DESCRIPTION_FILE)
    try:
        with open(path, encoding="utf-8") as handle:
            desc: Dict[str, Any] = json.load(handle)
    except FileNotFoundError:
        raise ClusterError(f"no replikit cluster in {base_dir} ({path} does not exist)") from None
    except (OSError, ValueError) as exc:
        raise ClusterError(f"cannot read {path}: {exc}") from None
    if desc.get("startup_ms") is None and desc.get("startup_s") is not None:
        desc["startup_ms"] = float(desc["startup_s"]) * 1000.0  # written by an older release
    return desc


def described_nodes(desc: Dict[str, Any]) -> Dict[str, Node]:
    nodes = [Node(**{k: item[k] for k in ("name", "role", "port", "data_dir", "log_file", "pid")})
             for item in desc.get("nodes") or []]
    return {node.name: node for node in nodes}


def write_description(tools: ServerTools, base_dir: str, desc: Dict[str, Any]) -> None:
    if os.path.isdir(base_dir):
        tools.write_file(os.path.join(base_dir, DESCRIPTION_FILE),
                         json.dumps(desc, indent=1) + "\n", mode=0o644)


def prepare(tools: ServerTools, base_dir: Optional[str]) -> str:
    """Create (or empty, when it holds a stopped cluster) the cluster directory; return it.

    ``None`` makes a fresh temporary directory under ``scratch_dir()``.
    """
    if base_dir is None:
        base_dir = tempfile.mkdtemp(prefix="replikit-cluster-", dir=scratch_dir())
    elif os.path.exists(base_dir):
        _clear_old_cluster(tools, base_dir)
    os.makedirs(base_dir, mode=0o700, exist_ok=True)
    os.chmod(base_dir, 0o700)
    tools.chown(base_dir)
    if tools.run_as is not None:
        # Every parent must be searchable by postgres, or initdb/pg_ctl fail obscurely.
        probe = tools.run(["test", "-w", base_dir, "-a", "-x", base_dir], check=False,
                          cwd=base_dir)
        if probe.returncode != 0:
            raise ClusterError(
                f"the postgres user cannot use {base_dir}: a parent directory is not "
                "searchable by it. Choose a directory under /tmp, or make the parents "
                "searchable (chmod o+x).")
    return base_dir


def _clear_old_cluster(tools: ServerTools, base_dir: str) -> None:
    """Empty ``base_dir`` if it holds a stopped cluster; refuse a running one or other files."""
    if not os.path.isdir(base_dir):
        raise ClusterError(f"base_dir {base_dir} exists and is not a directory")
    if os.path.exists(os.path.join(base_dir, DESCRIPTION_FILE)):
        try:
            nodes = described_nodes(read_description(base_dir))
        except (ClusterError, KeyError, TypeError):
            nodes = {}
        supervisor = Supervisor(tools)
        if any(supervisor.live_pid(node) is not None for node in nodes.values()):
            raise ClusterError(f"{base_dir} already holds a running cluster: stop it first "
                               f"(`replikit cluster down --dir {base_dir}`)")
        for entry in os.listdir(base_dir):  # a stopped old cluster: replace it
            path = os.path.join(base_dir, entry)
            shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
    elif os.listdir(base_dir):
        raise ClusterError(f"base_dir {base_dir} is not empty and holds no replikit cluster: "
                           "refusing to use it")
