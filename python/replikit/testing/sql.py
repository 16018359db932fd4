"""SQL through ``psql``: the harness needs no driver and no compiled backend.

Fields and records are separated by ASCII unit/record separators and NULL is printed as
the group separator, so any text (``|``, newlines, empty strings) comes back intact.
"""

from __future__ import annotations

import subprocess
from typing import Dict, List, Optional, Tuple

from .errors import ClusterSQLError, ClusterTimeoutError

Row = Tuple[Optional[str], ...]

_FIELD, _RECORD, _NULL = "\x1f", "\x1e", "\x1d"


def dsn(host: str, port: int, dbname: str = "postgres") -> str:
    """libpq keyword/value connection string of a node."""
    return f"host={host} port={port} dbname={dbname} user=postgres"


def psql_args(psql: str, conninfo: str, query: str) -> List[str]:
    """The psql command line that runs ``query``."""
    return [psql, "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
            "-F", _FIELD, "-R", _RECORD, "-P", f"null={_NULL}", "-d", conninfo, "-c", query]


def parse_output(out: str) -> List[Row]:
    """Rows of psql's unaligned output, as tuples of str (None for NULL)."""
    if out == "":
        return []
    if out.endswith("\n"):
        out = out[:-1]
    return [tuple(None if f == _NULL else f for f in rec.split(_FIELD))
            for rec in out.split(_RECORD)]


def run(args: List[str], env: Dict[str, str], *, node: str, port: int, query: str,
        timeout_s: float) -> List[Row]:
    """Run a psql command line; its rows, or ClusterSQLError / ClusterTimeoutError."""
    try:
        proc = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ClusterTimeoutError(
            f"query on {node} did not finish within {timeout_s:g} s: {query}") from None
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise ClusterSQLError(f"query on {node} (port {port}) failed: {stderr.strip()}\n"
                              f"query: {query}", node=node, query=query, stderr=stderr,
                              returncode=proc.returncode)
    return parse_output(proc.stdout.decode("utf-8", "replace"))


def background(args: List[str], env: Dict[str, str]) -> "subprocess.Popen[bytes]":
    """Start a psql command line and return at once."""
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
