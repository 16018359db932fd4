"""What a SQLAlchemy statement does: a read a replica can serve, or not (then the primary)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.sql import functions, visitors
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.sql.selectable import ForUpdateArg

from ..sqltext import is_read_only


def _fragment_is_read(text: str) -> bool:
    """A text() fragment inside a Core statement (a WHERE clause, a column): read-only when it
    holds no write keyword, judged as the tail of a SELECT."""
    return is_read_only("SELECT " + text)


def is_read(clause: Any) -> bool:
    """True for a statement a replica can serve: a text() whose SQL is a plain read
    (replikit.sqltext.is_read_only), or a SELECT (Core or ORM, compound or textual) without a
    locking clause, a data-modifying CTE, a text fragment with a write keyword or a function
    that writes (nextval, setval, advisory locks, Sequence.next_value()). Anything else,
    DML and DDL included, is not."""
    if clause is None:
        return False
    if isinstance(clause, TextClause):
        return is_read_only(clause.text)
    if getattr(clause, "is_dml", False) or not getattr(clause, "is_select", False):
        return False
    element = getattr(clause, "element", None)  # TextualSelect and the ORM's FromStatement
    if isinstance(element, TextClause) and not is_read_only(element.text):
        return False
    for node in visitors.iterate(clause):
        if isinstance(node, ForUpdateArg) or getattr(node, "is_dml", False):
            return False
        if isinstance(node, TextClause) and node is not element and not _fragment_is_read(node.text):
            return False
        if isinstance(node, functions.FunctionElement):
            if isinstance(node, functions.next_value) or not _fragment_is_read(str(getattr(node, "name", ""))):
                return False
    return True
