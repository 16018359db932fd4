#pragma once
// Converting libpq results into the backend's values (internal: includes libpq).
#include <libpq-fe.h>

#include "replikit/lsn.hpp"
#include "replikit/pg/database.hpp"

namespace replikit::pg::detail {

/// Copies columns, type OIDs, rows (text; NULL as nullopt) and the command tag's row count
/// of `r` into `out`.
void fill(QueryResult& out, const PGresult* r);

/// The LSN in the single cell of `r`; 0/0 when `r` is not one non-NULL cell.
Lsn lsn_of(const PGresult* r);

}  // namespace replikit::pg::detail
