"""Is this SQL text a read a replica can serve? One classifier for every integration.

``is_read_only(sql)`` is True only for statements a hot standby runs with the same effect as the
primary: every statement starts with SELECT, WITH, VALUES, TABLE, SHOW or EXPLAIN, and none
locks rows (FOR UPDATE / FOR NO KEY UPDATE / FOR SHARE / FOR KEY SHARE), modifies data (a
data-modifying CTE, SELECT ... INTO), takes a sequence value or an advisory lock (node-local on a
replica, so no mutual exclusion), or assigns a transaction id. Strings, quoted identifiers,
dollar-quoted bodies and comments are skipped, so a keyword inside them does not count.

When in doubt the answer is False (the primary serves every statement correctly): an
unterminated string or comment, an unknown first word, a column named like a write keyword
(``SELECT delete FROM t``). A function that writes behind a plain SELECT cannot be seen in the
text: callers offer a way to force a statement to the primary.
"""

from __future__ import annotations

import re
from typing import List, Optional

from . import _core

__all__ = ["is_read_only", "statement_words"]

MAX_SQL_CHARS = 1_000_000  # longer texts are not scanned: the primary serves them

_READ_STARTS = frozenset({"SELECT", "WITH", "VALUES", "TABLE", "SHOW", "EXPLAIN"})
# A word that makes a statement not a read wherever it appears outside strings and comments.
_WRITE_WORDS = frozenset({
    "INSERT", "UPDATE", "DELETE", "MERGE", "INTO", "COPY", "LOCK", "CREATE", "DROP", "ALTER",
    "TRUNCATE", "GRANT", "REVOKE", "CALL", "DO", "LISTEN", "NOTIFY", "UNLISTEN", "PREPARE",
    "NEXTVAL", "SETVAL", "TXID_CURRENT", "PG_CURRENT_XACT_ID", "PG_NOTIFY", "LO_CREAT",
    "LO_CREATE", "LO_IMPORT", "LO_UNLINK", "LO_PUT", "LO_FROM_BYTEA",
})
_WRITE_PREFIXES = ("PG_ADVISORY", "PG_TRY_ADVISORY")

# One token at a time: the alternatives that matter (strings, identifiers, comments, words, ';');
# anything else (operators, numbers, parameters) is skipped a character at a time.
_TOKEN = re.compile(r"""
      (?P<line>--[^\n]*)
    | (?P<block>/\*)
    | (?P<estr>[eE]'(?:[^'\\]|\\.|'')*')
    | (?P<str>'(?:[^']|'')*')
    | (?P<ident>"(?:[^"]|"")*")
    | (?P<param>\$\d+)
    | (?P<dollar>\$(?:[A-Za-z_\x80-\uffff][A-Za-z_0-9\x80-\uffff]*)?\$)
    | (?P<word>[A-Za-z_\x80-\uffff][A-Za-z_0-9$\x80-\uffff]*)
    | (?P<semi>;)
    | (?P<open>['"])
""", re.VERBOSE | re.DOTALL)


def _skip_block_comment(sql: str, pos: int) -> Optional[int]:
    """The index after the block comment opened at `pos` (they nest), None if unterminated."""
    depth, i = 0, pos
    while i < len(sql):
        if sql.startswith("/*", i):
            depth += 1
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return None


def statement_words(sql: str) -> Optional[List[List[str]]]:
    """The upper-cased words of each non-empty statement in `sql` (split at ';'), outside
    strings, quoted identifiers, dollar quotes and comments; None when the text cannot be read
    (unterminated string, comment or dollar quote, or over MAX_SQL_CHARS)."""
    if len(sql) > MAX_SQL_CHARS:
        return None
    statements: List[List[str]] = []
    words: List[str] = []
    pos, end = 0, len(sql)
    while pos < end:
        m = _TOKEN.search(sql, pos)
        if m is None:
            break
        kind = m.lastgroup
        pos = m.end()
        if kind == "block":
            after = _skip_block_comment(sql, m.start())
            if after is None:
                return None
            pos = after
        elif kind == "dollar":
            close = sql.find(m.group(), pos)
            if close < 0:
                return None
            pos = close + len(m.group())
        elif kind == "word":
            words.append(m.group().upper())
        elif kind == "semi":
            if words:
                statements.append(words)
            words = []
        elif kind == "open":
            return None  # a quote the string patterns could not close
    if words:
        statements.append(words)
    return statements


def _statement_is_read(words: List[str]) -> bool:
    if words[0] not in _READ_STARTS:
        return False
    previous = ""
    for word in words:
        if word in _WRITE_WORDS or word.startswith(_WRITE_PREFIXES):
            return False
        # FOR SHARE / FOR KEY SHARE (FOR [NO KEY] UPDATE is caught by UPDATE).
        if word == "SHARE" and previous in ("FOR", "KEY"):
            return False
        previous = word
    return True


def is_read_only(sql: str) -> bool:
    """True when every statement in `sql` is a plain read a replica can serve (see the module
    docstring); False for anything else, including text it cannot read."""
    if not isinstance(sql, str):
        err = _core.ArgumentTypeError(f"sql: expected str, got {type(sql).__name__}")
        err.argument = "sql"
        raise err
    statements = statement_words(sql)
    if not statements:
        return False
    return all(_statement_is_read(words) for words in statements)
