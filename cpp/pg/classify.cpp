#include "classify.hpp"

#include <cstring>
#include <vector>

#include "conninfo.hpp"
#include "replikit/errors.hpp"

namespace replikit::pg::detail {

namespace {

Failure lost(Effect effect, const std::string& message, std::string sqlstate = {}) {
  return Failure(effect == Effect::MayCommit ? FailureKind::InDoubt : FailureKind::Lost, message,
                 std::move(sqlstate));
}

// The server ends the session after a FATAL or PANIC error (e.g. 57P01 admin shutdown), even
// when libpq has not seen the end of the stream yet.
bool ends_session(const PGresult* r) {
  const char* severity = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
  if (severity == nullptr) severity = PQresultErrorField(r, PG_DIAG_SEVERITY);
  return severity != nullptr && (std::strcmp(severity, "FATAL") == 0 || std::strcmp(severity, "PANIC") == 0);
}

bool holds_nul(const std::string& text) noexcept { return text.find('\0') != std::string::npos; }

// The index (1-based, as $k) of the first parameter holding a NUL, 0 for none.
std::size_t nul_param(const Params& params) noexcept {
  for (std::size_t k = 0; k < params.size(); ++k) {
    if (params[k].value && !params[k].binary && holds_nul(*params[k].value)) return k + 1;
  }
  return 0;
}

}  // namespace

void require_no_nul(const std::string& sql, const Params& params, const char* sql_argument,
                    const char* params_argument) {
  if (holds_nul(sql)) throw InvalidArgument(sql_argument, "holds a NUL character, which SQL text cannot contain");
  if (const std::size_t k = nul_param(params)) {
    throw InvalidArgument(params_argument, "parameter $" + std::to_string(k) +
                                               " holds a NUL character, which PostgreSQL text cannot contain "
                                               "(pass binary data as bytes, sent as bytea)");
  }
}

std::optional<Failure> classify(PGconn* conn, const PGresult* r, Effect effect) {
  if (conn == nullptr) return lost(effect, "no connection");
  if (PQstatus(conn) != CONNECTION_OK) return lost(effect, trimmed(PQerrorMessage(conn)));
  // No result on a live connection: libpq refused the call before sending it (or ran out of
  // memory); the connection is fine and nothing ran.
  if (r == nullptr) return Failure(FailureKind::Usage, "libpq refused the call: " + trimmed(PQerrorMessage(conn)));
  switch (PQresultStatus(r)) {
    case PGRES_EMPTY_QUERY:
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
      return std::nullopt;
    case PGRES_COPY_OUT:
    case PGRES_COPY_IN:
      return Failure(FailureKind::Usage,
                     "COPY is not supported (COPY ... FROM STDIN / TO STDOUT); the connection was closed, "
                     "aborting the COPY");
    case PGRES_BAD_RESPONSE:
    case PGRES_NONFATAL_ERROR:
    case PGRES_FATAL_ERROR: {
      const char* field = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      std::string state = field != nullptr ? field : "";
      std::string message = trimmed(PQresultErrorMessage(r));
      if (ends_session(r)) return lost(effect, message, std::move(state));
      return Failure(FailureKind::Server, message, std::move(state));
    }
    default:
      return Failure(FailureKind::Usage,
                     std::string("unsupported result status ") + PQresStatus(PQresultStatus(r)));
  }
}

namespace {

// PQexecParams with every parameter's value, type OID, length and format. The arrays live on
// the stack for the usual few parameters.
PGresult* exec_params(PGconn* conn, const std::string& sql, const Params& params) {
  constexpr std::size_t kOnStack = 8;
  const std::size_t n = params.size();
  const char* values_stack[kOnStack];
  Oid types_stack[kOnStack];
  int lengths_stack[kOnStack];
  int formats_stack[kOnStack];
  std::vector<const char*> values_heap;
  std::vector<Oid> types_heap;
  std::vector<int> lengths_heap, formats_heap;
  const char** values = values_stack;
  Oid* types = types_stack;
  int* lengths = lengths_stack;
  int* formats = formats_stack;
  if (n > kOnStack) {
    values_heap.resize(n);
    types_heap.resize(n);
    lengths_heap.resize(n);
    formats_heap.resize(n);
    values = values_heap.data();
    types = types_heap.data();
    lengths = lengths_heap.data();
    formats = formats_heap.data();
  }
  bool typed = false, binary = false;
  for (std::size_t k = 0; k < n; ++k) {
    const Param& p = params[k];
    values[k] = p.value ? p.value->data() : nullptr;  // NULL
    lengths[k] = p.value ? static_cast<int>(p.value->size()) : 0;
    types[k] = static_cast<Oid>(p.type_oid);
    formats[k] = p.binary ? 1 : 0;
    typed = typed || p.type_oid != 0;
    binary = binary || p.binary;
  }
  // Untyped text parameters need neither array: libpq then infers every type and reads C strings.
  return PQexecParams(conn, sql.c_str(), static_cast<int>(n), typed ? types : nullptr, values,
                      binary ? lengths : nullptr, binary ? formats : nullptr, 0);
}

}  // namespace

PgResult exec(PGconn* conn, const std::string& sql, const Params& params, Effect effect) {
  PGresult* r = nullptr;
  if (holds_nul(sql)) throw Failure(FailureKind::Usage, "the SQL text holds a NUL character");
  if (const std::size_t k = nul_param(params)) {
    throw Failure(FailureKind::Usage, "parameter $" + std::to_string(k) + " holds a NUL character");
  }
  if (conn == nullptr) {
    // classify() reports it
  } else if (params.empty()) {
    r = PQexec(conn, sql.c_str());
  } else if (params.size() > 65535) {
    throw Failure(FailureKind::Usage, "at most 65535 parameters ($1 ... $65535), got " + std::to_string(params.size()));
  } else {
    r = exec_params(conn, sql, params);
  }
  PgResult result(r);
  if (std::optional<Failure> failure = classify(conn, r, effect)) throw std::move(*failure);
  return result;
}

void require_idle(PGconn* conn) {
  const PGTransactionStatusType status = PQtransactionStatus(conn);
  if (status == PQTRANS_INTRANS || status == PQTRANS_INERROR) {
    throw Failure(FailureKind::Usage,
                  "left a transaction open; use transaction() for multi-statement transactions (the "
                  "transaction was rolled back: nothing it did was committed)");
  }
}

}  // namespace replikit::pg::detail
