#pragma once
// libpq's view of a libpqxx connection (internal: includes libpqxx and libpq).
#include <libpq-fe.h>

#include <pqxx/connection_base>

namespace replikit::pg::detail {

/// libpq's handle of `conn` (nullptr when libpqxx has none). Use it only while no libpqxx
/// transaction object is open on `conn` (libpqxx is then not in the middle of anything on it),
/// and leave the connection as libpq's synchronous calls do (no query in progress): libpqxx
/// keeps no per-query state outside its transaction objects, so it sees nothing amiss.
PGconn* raw_connection(const pqxx::connection_base& conn) noexcept;

/// libpq's transaction status of `conn` (PQtransactionStatus): a local call, no round trip.
/// PQTRANS_IDLE is the only state in which a connection may go back to a pool.
PGTransactionStatusType transaction_status(const pqxx::connection_base& conn) noexcept;

}  // namespace replikit::pg::detail
