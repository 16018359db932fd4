"""The primary's insert LSN as the end of the last WAL record, in the SQL every Python path
reads it with (psycopg adapter, SQLAlchemy, Django, ReplicatedDatabase.psycopg()); no psycopg
import here."""

from __future__ import annotations

from typing import Any, Optional

from . import _core

# The insert LSN stands a page header past the end of the last WAL record when that end is a
# page boundary, where a caught-up replica's replay LSN stays. Every query that reads it also
# selects the server's WAL page and segment sizes, and end_lsn() makes it that record's end
# (replikit.end_lsn_of_insert): no extra round trip.
WAL_LAYOUT_COLUMNS = ("current_setting('wal_block_size')::int8, "
                      "pg_size_bytes(current_setting('wal_segment_size'))")
# After a Monotonic/Causal read: on a replica the replay LSN (an upper bound of the snapshot
# the read used), on a primary the insert LSN. Not COALESCE(replay, insert): a primary that went
# through crash recovery keeps a stale replay LSN.
# Also the snapshot now, which has completed at least every transaction the read saw: on a
# replica it sets the session's xid floor (see XidFloors).
OBSERVE_SQL = ("SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
               "ELSE pg_current_wal_insert_lsn() END::text, pg_is_in_recovery(), pg_current_snapshot()::text, "
               + WAL_LAYOUT_COLUMNS)
# After COMMIT, on the same connection: >= the end of the commit record, also with
# synchronous_commit = off (pg_current_wal_lsn(), the write position, may then trail it).
# Its row goes through end_lsn().
COMMIT_LSN_SQL = "SELECT pg_current_wal_insert_lsn()::text, " + WAL_LAYOUT_COLUMNS


def end_lsn(lsn: Any, block: Any = None, segment: Any = None) -> Optional[_core.Lsn]:
    """An LSN read with WAL_LAYOUT_COLUMNS (COMMIT_LSN_SQL's row), as the end of the last record;
    None for NULL. Sizes no server has (or none) leave it as read."""
    if lsn is None:
        return None
    value = _core.Lsn(str(lsn))
    try:
        return _core.end_lsn_of_insert(value, block, segment)
    except (_core.InvalidArgument, TypeError):
        return value
