// The one place that reaches libpqxx's private PGconn.
//
// libpqxx 6.4 keeps the PGconn of a connection private (connection_base::raw_connection(),
// pqxx/connection_base.hxx), and offers no public way to ask libpq for the transaction status
// of a connection, which a pool must know before reusing one: a connection that a user
// statement left inside a transaction block would otherwise make every later "write" of the
// next user vanish at disconnect. libpqxx 7 exposes the handle; 6.4 does not.
//
// The technique: access checking does not apply to the template arguments of an explicit
// instantiation ([temp.spec]/6 in C++17: "the usual access checking rules do not apply to
// names used to specify explicit instantiations"), so an explicitly instantiated class
// template may receive a pointer to the private member function, and hands it out through a
// friend function it defines. This is standard-conforming, but pinned to libpqxx 6.4's
// declaration of the member: the static_asserts below stop the build if the version or the
// member's type changes (with libpqxx 7, use pqxx::connection::connection_handle() instead).
#include "raw_connection.hpp"

#include <pqxx/version>

#include <type_traits>

namespace replikit::pg::detail {

namespace {

static_assert(PQXX_VERSION_MAJOR == 6 && PQXX_VERSION_MINOR == 4,
              "raw_connection.cpp reaches a private member of libpqxx 6.4; revisit it for this libpqxx version");

using RawConnectionMember = pqxx::internal::pq::PGconn* (pqxx::connection_base::*)() const;
static_assert(std::is_same_v<pqxx::internal::pq::PGconn, PGconn>, "libpqxx's PGconn is libpq's");

RawConnectionMember raw_connection_member() noexcept;

template <auto Member>
struct RawConnectionAccess {
  static_assert(std::is_same_v<decltype(Member), RawConnectionMember>,
                "pqxx::connection_base::raw_connection is no longer `PGconn* () const`");
  friend RawConnectionMember raw_connection_member() noexcept { return Member; }
};

// The explicit instantiation that names the private member (no access check here).
template struct RawConnectionAccess<&pqxx::connection_base::raw_connection>;

}  // namespace

PGconn* raw_connection(const pqxx::connection_base& conn) noexcept { return (conn.*raw_connection_member())(); }

PGTransactionStatusType transaction_status(const pqxx::connection_base& conn) noexcept {
  PGconn* raw = raw_connection(conn);
  return raw == nullptr ? PQTRANS_UNKNOWN : PQtransactionStatus(raw);
}

}  // namespace replikit::pg::detail
