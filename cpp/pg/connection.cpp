#include "connection.hpp"

#include <poll.h>

#include "conninfo.hpp"
#include "replikit/errors.hpp"

namespace replikit::pg::detail {

namespace {

// Notices (e.g. "relation already exists, skipping") are not errors and have no reader here:
// dropped, as libpqxx's connections did, instead of libpq's default print to stderr.
void ignore_notice(void*, const char*) {}

}  // namespace

Connection::Connection(const std::string& node, const std::string& conninfo) : conn_(PQconnectdb(conninfo.c_str())) {
  if (conn_ == nullptr) throw ConnectionError("node '" + node + "': cannot connect: out of memory");
  if (PQstatus(conn_) != CONNECTION_OK) {
    std::string message = trimmed(PQerrorMessage(conn_));
    PQfinish(conn_);
    throw ConnectionError("node '" + node + "': cannot connect: " + message);
  }
  PQsetNoticeProcessor(conn_, ignore_notice, nullptr);
}

Connection::~Connection() { PQfinish(conn_); }

bool Connection::looks_dead() const noexcept {
  if (!ok()) return true;
  pollfd fd{sock(), POLLIN, 0};
  if (fd.fd < 0) return true;
  return ::poll(&fd, 1, 0) != 0;
}

}  // namespace replikit::pg::detail
