#pragma once
// Converting libpq results into the backend's values (internal: includes libpq).
#include <libpq-fe.h>

#include "replikit/lsn.hpp"
#include "replikit/wal_end.hpp"
#include "replikit/pg/database.hpp"

namespace replikit::pg::detail {

/// Copies columns, type OIDs, rows (text; NULL as nullopt) and the command tag's row count
/// of `r` into `out`.
void fill(QueryResult& out, const PGresult* r);

/// The LSN in the single cell of `r`; 0/0 when `r` is not one non-NULL cell.
Lsn lsn_of(const PGresult* r);

// pg_current_wal_insert_lsn() stands one page header past a record's end when that end is a
// WAL page boundary, where a caught-up replica's replay LSN stays (replikit::end_lsn_of_insert).
// Every query that reads the insert LSN also selects these two columns, the server's WAL page
// and segment sizes in bytes, in the same statement, and converts it with insert_end_of().
#define REPLIKIT_WAL_LAYOUT_COLUMNS \
  "current_setting('wal_block_size')::int8, pg_size_bytes(current_setting('wal_segment_size'))"

/// The LSN in row 0, column `lsn_column` of `r` (an insert LSN, or one already a record's end)
/// as end_lsn_of_insert gives it, with the WAL sizes in columns `layout_column` and the next;
/// 0/0 when the LSN is NULL; the LSN as read when the sizes are not ones a server can have.
/// Throws InvalidArgument on a malformed LSN.
Lsn insert_end_of(const PGresult* r, int lsn_column, int layout_column);

}  // namespace replikit::pg::detail
