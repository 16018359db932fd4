"""replikit.sqltext.is_read_only (SQL text): property tests (Hypothesis) and a table. No
database needed (test_sqlalchemy_classify.py checks SQLAlchemy statements)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import replikit
from replikit.sqltext import is_read_only, statement_words

_RESERVED = {"FOR", "SHARE", "KEY", "NO", "INTO", "SELECT", "WITH", "VALUES", "TABLE", "SHOW", "EXPLAIN",
             "FROM", "WHERE", "AS", "AND", "OR", "NOT", "E", "U", "DO"}
_WRITE = {"INSERT", "UPDATE", "DELETE", "MERGE", "COPY", "LOCK", "CREATE", "DROP", "ALTER", "TRUNCATE",
          "GRANT", "REVOKE", "CALL", "LISTEN", "NOTIFY", "UNLISTEN", "PREPARE", "NEXTVAL", "SETVAL",
          "TXID_CURRENT", "PG_CURRENT_XACT_ID", "PG_NOTIFY"}

identifiers = st.from_regex(r"[a-z][a-z0-9_]{0,7}", fullmatch=True).filter(
    lambda w: w.upper() not in _RESERVED | _WRITE and not w.upper().startswith(("PG_ADVISORY", "PG_TRY_ADVISORY", "LO_")))
# Text that may hold anything a write has: strings, comments and quoted identifiers must hide it.
junk = st.lists(st.sampled_from(list("abc ;'\"$*/-\n") + [" UPDATE ", " insert ", " FOR SHARE ", " delete ",
                                                           " into "]), max_size=12).map("".join)


def quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@st.composite
def hidden(draw) -> str:
    """A literal, quoted identifier or comment holding junk: never changes what a statement does."""
    text = draw(junk)
    kind = draw(st.sampled_from(["str", "estr", "ident", "line", "block", "dollar"]))
    if kind == "str":
        return quoted(text)
    if kind == "estr":
        return "E'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if kind == "ident":
        return '"' + text.replace('"', '""') + '"'
    if kind == "line":
        return "-- " + text.replace("\n", " ") + "\n"
    if kind == "block":
        body = text.replace("*", "").replace("/", "")
        return f"/* {body} /* nested {body} */ */"
    tag = draw(st.sampled_from(["", "q", "body_1"]))
    return f"${tag}$" + text.replace("$", "") + f"${tag}$"


def casing(word: str, flips: int) -> str:
    return "".join(c.upper() if (flips >> (k % 16)) & 1 else c.lower() for k, c in enumerate(word))


@st.composite
def reads(draw) -> str:
    """A plain read: SELECT / WITH ... SELECT / VALUES / TABLE / SHOW, with hidden junk."""
    flips = draw(st.integers(0, 2 ** 16 - 1))
    kw = lambda w: casing(w, flips)  # noqa: E731
    cols = ", ".join(draw(st.lists(identifiers, min_size=1, max_size=3)))
    table, col = draw(identifiers), draw(identifiers)
    h1, h2 = draw(hidden()), draw(hidden())
    form = draw(st.sampled_from(["select", "with", "values", "table", "show", "param"]))
    if form == "select":
        return f"{kw('SELECT')} {cols} {h1} {kw('FROM')} {table} {kw('WHERE')} {col} = {h2}"
    if form == "with":
        return (f"{kw('WITH')} {table} {kw('AS')} ({kw('SELECT')} {cols} {kw('FROM')} {col} {h1}) "
                f"{kw('SELECT')} * {kw('FROM')} {table} {h2}")
    if form == "values":
        return f"{kw('VALUES')} (1, {h1}), (2, {h2})"
    if form == "table":
        return f"{kw('TABLE')} {table} {h1}"
    if form == "show":
        return f"{kw('SHOW')} {col} {h1}"
    return f"{kw('SELECT')} {cols} {kw('FROM')} {table} {kw('WHERE')} {col} = $1 {h1} {kw('AND')} {col} > $2"


locks = st.sampled_from(["FOR UPDATE", "for no key update", "FOR SHARE", "for key share",
                         "FOR UPDATE NOWAIT", "FOR SHARE SKIP LOCKED", "FOR UPDATE OF t"])
writes = st.sampled_from([
    "INSERT INTO t VALUES (1)", "update t set v = 1", "DELETE FROM t", "MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE",
    "CREATE TABLE x (a int)", "DROP TABLE t", "TRUNCATE t", "SELECT * INTO t2 FROM t", "select nextval('s')",
    "SELECT setval('s', 5)", "SELECT pg_advisory_lock(1)", "select pg_try_advisory_xact_lock(2)",
    "COPY t FROM STDIN", "LOCK TABLE t", "SET search_path = x", "BEGIN", "VACUUM t", "CALL p()",
    "DO $$ BEGIN PERFORM 1; END $$", "NOTIFY chan", "SELECT pg_current_xact_id()",
])


@settings(max_examples=150, deadline=None)
@given(reads())
def test_a_plain_read_is_a_read(sql):
    assert is_read_only(sql), sql
    assert is_read_only(sql + ";") and is_read_only(f"{sql}; {sql}")


@settings(max_examples=150, deadline=None)
@given(reads(), locks)
def test_a_locking_clause_makes_it_not_a_read(sql, lock):
    if sql.lstrip().upper().startswith(("SELECT", "WITH")):
        assert not is_read_only(f"{sql} {lock}"), sql


@settings(max_examples=100, deadline=None)
@given(reads(), st.sampled_from(["INSERT INTO t VALUES (1) RETURNING *", "UPDATE t SET v = 2 RETURNING *",
                                 "DELETE FROM t RETURNING *"]), hidden())
def test_a_data_modifying_cte_is_not_a_read(sql, dml, noise):
    assert not is_read_only(f"WITH w AS ({dml}) {noise} {sql}")
    assert not is_read_only(f"WITH r AS (SELECT 1), w AS ({dml}) SELECT * FROM w")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(reads().map(lambda s: (s, True)), writes.map(lambda s: (s, False))),
                min_size=1, max_size=4))
def test_several_statements_are_a_read_only_when_all_are(parts):
    sql = "; ".join(s for s, _ in parts)
    assert is_read_only(sql) == all(r for _, r in parts), sql


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gives_an_answer(sql):
    assert is_read_only(sql) in (True, False)
    # Whatever it is, text the classifier calls a read starts with a read keyword.
    if is_read_only(sql):
        words = statement_words(sql)
        assert words and all(w[0] in ("SELECT", "WITH", "VALUES", "TABLE", "SHOW", "EXPLAIN") for w in words)


@settings(max_examples=100, deadline=None)
@given(reads(), st.integers(0, 200))
def test_cut_or_unterminated_text_is_never_taken_for_more_than_it_is(sql, cut):
    # Unterminated quotes or comments: not a read (the primary serves it).
    for opened in ("'", '"', "/*", "$q$", "E'"):
        assert not is_read_only(sql + " " + opened + " drop")
    is_read_only(sql[:cut])  # any prefix: an answer, no exception


@pytest.mark.parametrize("sql, expected", [
    ("SELECT 1", True), ("  select * from t where a = 'it''s'  ", True), ("EXPLAIN SELECT 1", True),
    ("EXPLAIN ANALYZE DELETE FROM t", False), ("SELECT * FROM t FOR UPDATE", False),
    ("SELECT 1 -- FOR UPDATE", True), ("SELECT 'FOR UPDATE'", True), ('SELECT "update" FROM t', True),
    ("SELECT $tag$ DELETE $tag$", True), ("SELECT $1::int", True), ("", False), (" ; -- nothing", False),
    ("/* unterminated", False), ("SELECT 'unterminated", False), ("SELECT 1; COMMIT", False),
    ("WITH d AS (DELETE FROM t RETURNING *) SELECT 1", False), ("SELECT * INTO x FROM t", False),
    ("SELECT share FROM t", True), ("SELECT * FROM t FOR KEY SHARE", False),
])
def test_table(sql, expected):
    assert is_read_only(sql) is expected


def test_bad_input_names_the_argument():
    for bad in (None, b"SELECT 1", 5):
        with pytest.raises(replikit.ArgumentTypeError) as info:
            is_read_only(bad)
        assert info.value.argument == "sql"
        assert isinstance(info.value, TypeError)
