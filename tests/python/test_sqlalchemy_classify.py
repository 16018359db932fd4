"""replikit.sqlalchemy.is_read: Core and ORM statements classified by what they do, and a Core
SELECT classified as the SQL it compiles to (replikit.sqltext.is_read_only). No database needed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("sqlalchemy")

from sqlalchemy import (Column, Integer, MetaData, Sequence, String, Table, delete, exists, func,  # noqa: E402
                        insert, literal, select, text, union, update)
from sqlalchemy.dialects import postgresql  # noqa: E402

from replikit.sqlalchemy import is_read  # noqa: E402
from replikit.sqltext import is_read_only  # noqa: E402

meta = MetaData()
t = Table("t", meta, Column("id", Integer, primary_key=True), Column("v", String))
seq = Sequence("sq")


def test_core_statements():
    ins = insert(t).values(v="x").returning(t.c.id).cte("c")
    cases = {
        "select": (select(t), True), "for update": (select(t).with_for_update(), False),
        "for share": (select(t).with_for_update(read=True), False), "dml cte": (select(ins.c.id), False),
        "insert": (insert(t), False), "update": (update(t), False), "delete": (delete(t), False),
        "text read": (text("SELECT 1"), True), "text write": (text("UPDATE t SET v = 1"), False),
        "textual select": (text("select * from t").columns(t.c.id), True),
        "textual write": (text("delete from t returning id").columns(t.c.id), False),
        "union": (union(select(t.c.id), select(t.c.id)), True),
        "union locked": (union(select(t.c.id), select(t.c.id).with_for_update().subquery().select()), False),
        "Sequence.next_value": (select(seq.next_value()), False), "func.nextval": (select(func.nextval("sq")), False),
        "advisory": (select(func.pg_advisory_lock(1)), False), "count": (select(func.count()).select_from(t), True),
        "text fragment": (select(t).where(text("id = 1")), True),
        "locking fragment": (select(t).where(text("true for update")), False),
        "exists": (select(exists().where(t.c.id == 1)), True), "literal": (select(literal("delete")), True),
        "None": (None, False),
    }
    wrong = {name: got for name, (stmt, want) in cases.items() if (got := is_read(stmt)) != want}
    assert not wrong


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["id", "v"]), min_size=1, max_size=2), st.integers(-5, 5),
       st.booleans(), st.booleans(), st.sampled_from(["none", "update", "share", "cte"]))
def test_core_statement_and_its_compiled_sql_agree(cols, value, ordered, limited, lock):
    """A Core SELECT and the SQL it compiles to (PostgreSQL dialect) are classified alike."""
    stmt = select(*[t.c[c] for c in cols]).where(t.c.id > value)
    if ordered:
        stmt = stmt.order_by(t.c.id)
    if limited:
        stmt = stmt.limit(3)
    if lock == "update":
        stmt = stmt.with_for_update()
    elif lock == "share":
        stmt = stmt.with_for_update(read=True, key_share=True)
    elif lock == "cte":
        c = update(t).values(v="z").returning(t.c.id).cte("w")
        stmt = stmt.where(t.c.id.in_(select(c.c.id)))
    sql = str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    assert is_read(stmt) == is_read_only(sql) == (lock == "none"), sql
