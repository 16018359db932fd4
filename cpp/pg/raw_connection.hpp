#pragma once
// libpq's view of a libpqxx connection (internal: includes libpqxx and libpq).
#include <libpq-fe.h>

#include <pqxx/connection_base>

namespace replikit::pg::detail {

/// libpq's transaction status of `conn` (PQtransactionStatus): a local call, no round trip.
/// PQTRANS_IDLE is the only state in which a connection may go back to a pool.
PGTransactionStatusType transaction_status(const pqxx::connection_base& conn) noexcept;

}  // namespace replikit::pg::detail
