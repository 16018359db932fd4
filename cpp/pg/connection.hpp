#pragma once
// One libpq connection of a pool (internal: includes libpq).
#include <libpq-fe.h>

#include <cstdint>
#include <string>

#include "replikit/errors.hpp"

namespace replikit::pg::detail {

/// A connect that the server refused with SQLSTATE 53300 (too many connections): the server
/// is up and answering, only full, so nothing about it is down.
class ServerFull : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
};

/// Owns a PGconn (PQfinish on destruction). Every query of the backend runs on it through
/// libpq's synchronous calls (see exec.hpp), so each call returns with the connection idle,
/// inside a transaction block, or broken; never with a query in progress.
class Connection {
 public:
  /// Connects with `conninfo`, blocking at most `attempt_timeout_ns` per address libpq tries
  /// (as libpq's connect_timeout); ConnectionError "node '<node>': cannot connect: <libpq's
  /// message>" when that fails, ServerFull when the server refused it with SQLSTATE 53300.
  Connection(const std::string& node, const std::string& conninfo, std::int64_t attempt_timeout_ns);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// libpq's handle (never nullptr).
  PGconn* get() const noexcept { return conn_; }
  /// libpq still reports the connection OK (a local check).
  bool ok() const noexcept { return PQstatus(conn_) == CONNECTION_OK; }
  /// The socket (-1 once broken).
  int sock() const noexcept { return PQsocket(conn_); }
  /// PQtransactionStatus (a local call): PQTRANS_IDLE is the only state a pool may reuse.
  PGTransactionStatusType transaction_status() const noexcept { return PQtransactionStatus(conn_); }
  /// An idle connection has nothing to read: true when it is broken or its socket turned
  /// readable (the server closed it or sent something unexpected). One poll().
  bool looks_dead() const noexcept;

 private:
  PGconn* conn_;
};

}  // namespace replikit::pg::detail
