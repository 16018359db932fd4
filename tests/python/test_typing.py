"""Typing that helps: `mypy --strict` on a user's program catches a misspelled consistency
name, a token string passed where a Session is expected, and a misspelled method on a
database, on a routed psycopg connection or on a row made by a row factory (a Result is
generic in its row type: class_row(Item) gives Result[Item]); a correct program passes.

Each program is written to a temporary directory and checked by mypy against the installed
replikit (its stubs and annotations). A line that must be reported ends with `# error: <what
mypy says about it>`; every such line must be reported, and no other line may be.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest

import replikit

if not getattr(replikit._core, "HAVE_PG", False):  # pragma: no cover - depends on the build
    pytest.skip("replikit was built without the PostgreSQL backend", allow_module_level=True)
pytest.importorskip("mypy")
pytest.importorskip("psycopg")

WRONG = '''
import dataclasses

import psycopg.rows

import replikit
from replikit.pg import PsycopgRouter, ReplicatedDatabase, class_row, dict_row


@dataclasses.dataclass
class Item:
    id: int


def main(db: ReplicatedDatabase, session: replikit.Session) -> None:
    db.query("SELECT 1", session=session, consistency="read-your-writes")  # error: "consistency" to "query"
    token: str = session.token()
    db.query("SELECT 1", session=token)  # error: "session" to "query"
    db.execute("INSERT INTO t VALUES (1)", None, token)  # error: Argument 3 to "execute"
    db.qeury("SELECT 1")  # error: has no attribute "qeury"
    db.query("SELECT 1", row_factory=psycopg.rows.dict_row)  # error: "row_factory" to "query"
    router = PsycopgRouter(db)
    with router.read(session, consistency="read-your-writes") as conn:  # error: "consistency" to "read"
        conn.exeucte("SELECT 1")  # error: has no attribute "exeucte"
    with router.write(token) as conn:  # error: Argument 1 to "write"
        conn.execute("SELECT 1")
    merged = replikit.Session.from_token(token)
    merged.merge(session)
    router.read(merged, consistency="monotonic").__enter__().fetchall()  # error: has no attribute "fetchall"
    item = db.query("SELECT 1 AS id", row_factory=class_row(Item)).rows[0]
    print(item.nmae)  # error: "Item" has no attribute "nmae"
    db.query("SELECT 1 AS id", row_factory=dict_row).rows[0].id  # error: "dict[str, Any]" has no attribute "id"
'''

RIGHT = '''
import dataclasses
from typing import Any, Dict, List

import replikit
from replikit.pg import (PsycopgRouter, ReplicatedDatabase, class_row, database_for_cluster, dict_row,
                         namedtuple_row)
from replikit.testing import LocalCluster


@dataclasses.dataclass
class Item:
    id: int


def main(db: ReplicatedDatabase, session: replikit.Session) -> List[Any]:
    r = db.query("SELECT 1 AS id", session=session, consistency="read_your_writes", row_factory=class_row(Item))
    db.query("SELECT $1, $2, $3", [1, "a", None], session, consistency=replikit.Consistency.MONOTONIC,
             row_factory=dict_row)
    db.execute("INSERT INTO t VALUES ($1)", [{"a": 1}], session, row_factory=namedtuple_row)
    db.row_factory = dict_row
    d: List[Dict[str, Any]] = r.dicts()
    token = session.token()
    same = replikit.Session.from_token(token)
    router = PsycopgRouter(db)
    with router.write(same) as conn:
        conn.execute("INSERT INTO t VALUES (%s)", (1,))
    with router.read(session, consistency="causal") as conn:
        rows = conn.execute("SELECT 1").fetchall()
    first: Item = r.rows[0]
    untyped = db.query("SELECT 1")  # the database's row factory decides: Result[Any]
    return [first.id, d, rows, r.scalar(), r.raw_rows, r.type_oids, untyped.rows[0][0], [i.id for i in r]]


def make(cluster: LocalCluster) -> ReplicatedDatabase:
    return database_for_cluster(cluster, row_factory=dict_row, max_lag_ms=500.0)
'''


def expected_errors(source: str) -> dict:
    """line number -> the text mypy's message must contain."""
    out = {}
    for number, line in enumerate(source.splitlines(), start=1):
        found = re.search(r"# error: (.+)$", line)
        if found:
            out[number] = found.group(1).strip()
    return out


def test_mypy_strict_reports_each_mistake_and_passes_a_correct_program(tmp_path):
    programs = {"wrong.py": textwrap.dedent(WRONG), "right.py": textwrap.dedent(RIGHT)}
    for name, source in programs.items():
        (tmp_path / name).write_text(source)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / ".mypy_cache"),
         "--no-error-summary", "--show-error-codes", *programs],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    reported = {}
    for line in output.splitlines():
        found = re.match(r"^(\w+\.py):(\d+): error: (.*)$", line)
        if found:
            reported.setdefault((found.group(1), int(found.group(2))), []).append(found.group(3))
    assert not [k for k in reported if k[0] == "right.py"], output
    want = expected_errors(programs["wrong.py"])
    assert len(want) == 11
    for number, text in want.items():
        messages = reported.get(("wrong.py", number), [])
        assert any(text in m for m in messages), (number, text, output)
    unexpected = sorted(k[1] for k in reported if k[0] == "wrong.py" and k[1] not in want)
    assert not unexpected, (unexpected, output)
    assert proc.returncode == 1, output
