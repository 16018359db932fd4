#include "connection.hpp"

#include <poll.h>

#include <cerrno>
#include <cstring>

#include "clock.hpp"
#include "conninfo.hpp"
#include "replikit/errors.hpp"

namespace replikit::pg::detail {

namespace {

// Notices (e.g. "relation already exists, skipping") are not errors and have no reader here:
// dropped, as libpqxx's connections did, instead of libpq's default print to stderr.
void ignore_notice(void*, const char*) {}

// libpq's asynchronous connect, so that errors are verbose (with the SQLSTATE) from the first
// message on: a refusal by a full server (53300) must be told apart from a dead one whatever
// the server's language. Returns an empty string once connected, else the error.
std::string connect_verbose(PGconn* conn, std::int64_t attempt_timeout_ns) {
  PQsetErrorVerbosity(conn, PQERRORS_VERBOSE);
  PostgresPollingStatusType status = PGRES_POLLING_WRITING;  // libpq: as if the last poll said WRITING
  int sock = -1;
  std::int64_t deadline = 0;
  // Bounded: each address libpq tries (a new socket) gets attempt_timeout_ns, and a pass waits
  // no later than that deadline.
  while (PQstatus(conn) != CONNECTION_BAD && status != PGRES_POLLING_OK && status != PGRES_POLLING_FAILED) {
    const std::int64_t now = steady_now_ns();
    if (PQsocket(conn) != sock) {
      sock = PQsocket(conn);
      deadline = now + attempt_timeout_ns;
    }
    if (sock < 0) return "libpq has no socket for the connection";
    if (now >= deadline) return "timeout expired";
    pollfd fd{sock, static_cast<short>(status == PGRES_POLLING_READING ? POLLIN : POLLOUT), 0};
    const int ready = ::poll(&fd, 1, static_cast<int>((deadline - now + 999'999) / 1'000'000));
    if (ready < 0 && errno != EINTR) return std::string("poll() failed: ") + std::strerror(errno);
    if (ready > 0) status = PQconnectPoll(conn);
  }
  PQsetErrorVerbosity(conn, PQERRORS_DEFAULT);
  if (PQstatus(conn) == CONNECTION_OK) return std::string();
  const std::string message = trimmed(PQerrorMessage(conn));
  return message.empty() ? std::string("the connection failed") : message;
}

}  // namespace

Connection::Connection(const std::string& node, const std::string& conninfo, std::int64_t attempt_timeout_ns)
    : conn_(PQconnectStart(conninfo.c_str())) {
  if (conn_ == nullptr) throw ConnectionError("node '" + node + "': cannot connect: out of memory");
  const std::string error = connect_verbose(conn_, attempt_timeout_ns);
  if (!error.empty()) {
    PQfinish(conn_);
    const std::string message = "node '" + node + "': cannot connect: " + without_location(error);
    if (server_full(error)) throw ServerFull(message);
    throw ConnectionError(message);
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
