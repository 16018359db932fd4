#pragma once
// Runs one statement with libpq and classifies every failure the one way the backend knows
// (internal: includes libpq). Every query of the read and write paths goes through exec().
#include <libpq-fe.h>

#include <optional>
#include <stdexcept>
#include <string>

#include "replikit/pg/database.hpp"

namespace replikit::pg::detail {

/// What a failed call means, judged by what happened to the connection, not by the SQLSTATE
/// class alone.
enum class FailureKind {
  Lost,     ///< the connection is gone (mark the node down; a read may retry elsewhere)
  InDoubt,  ///< the connection was lost while a statement that may commit was in flight
  Server,   ///< the server answered with an error on a live connection (QueryError, SQLSTATE kept)
  Usage,    ///< the call cannot be served as asked (InvalidArgument)
};

/// A classified failure of exec().
class Failure : public std::runtime_error {
 public:
  Failure(FailureKind kind, const std::string& message, std::string sqlstate = {})
      : std::runtime_error(message), kind_(kind), sqlstate_(std::move(sqlstate)) {}
  FailureKind kind() const noexcept { return kind_; }
  /// The server's SQLSTATE (Server; may be set for Lost/InDoubt when the server said why).
  const std::string& sqlstate() const noexcept { return sqlstate_; }

 private:
  FailureKind kind_;
  std::string sqlstate_;
};

/// Whether losing the connection during a statement leaves its outcome unknown: an
/// autocommit write or a COMMIT (MayCommit), or not (a read, BEGIN, a statement inside a
/// transaction block, which the server rolls back when the connection goes).
enum class Effect { None, MayCommit };

/// Owns a PGresult: PQclear on every path.
class PgResult {
 public:
  explicit PgResult(PGresult* r) noexcept : r_(r) {}
  ~PgResult() {
    if (r_ != nullptr) PQclear(r_);
  }
  PgResult(PgResult&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  PgResult& operator=(PgResult&&) = delete;
  PgResult(const PgResult&) = delete;
  PgResult& operator=(const PgResult&) = delete;
  /// The result (never nullptr when returned by exec()).
  const PGresult* get() const noexcept { return r_; }

 private:
  PGresult* r_;
};

/// The classifier. Given the connection after a call and the call's result (nullptr: none):
/// - the connection is not CONNECTION_OK (whatever the result says), or the server's error has
///   severity FATAL or PANIC (it ends the session): InDoubt when `effect` is MayCommit, Lost
///   otherwise;
/// - no result on a live connection (libpq refused the call before sending it): Usage;
/// - any other error result: Server, with the server's message and SQLSTATE (so a 08P01
///   protocol violation on a connection that is still OK is a Server error, not Lost);
/// - COPY FROM STDIN / TO STDOUT (the connection is then in COPY mode, which the backend does
///   not drive): Usage; the caller does not pool the connection, and closing it aborts the COPY;
/// - a result status the backend does not serve (COPY BOTH, pipeline, single-row): Usage.
/// Returns nothing for a success (empty query, command, tuples).
std::optional<Failure> classify(PGconn* conn, const PGresult* result, Effect effect);

/// Runs `sql` on `conn`: PQexec without parameters (simple protocol, several statements
/// allowed), PQexecParams with the parameters otherwise (text or binary, typed or inferred;
/// nullopt: NULL; more than 65535 is a Usage failure). SQL text or a text parameter holding a
/// NUL byte is a Usage failure before anything is sent (libpq reads both as C strings and would cut them there). Throws the
/// classified Failure.
PgResult exec(PGconn* conn, const std::string& sql, const Params& params, Effect effect);

/// InvalidArgument naming `sql_argument` when `sql` holds a NUL byte, or `params_argument` when
/// a parameter does: libpq takes SQL and text parameters as C strings, so a NUL would cut them
/// silently (binary data goes as a binary-format parameter). Called before anything is sent.
void require_no_nul(const std::string& sql, const Params& params, const char* sql_argument,
                    const char* params_argument);

/// Usage failure when a user statement returned with the connection inside a transaction
/// block (an explicit BEGIN): nothing it did is committed, and closing the connection rolls it
/// back. The caller names the argument to blame.
void require_idle(PGconn* conn);

}  // namespace replikit::pg::detail
