// The write path: execute() and transaction() on the primary. Every statement runs through
// exec() (classify.hpp); a connection lost while a write or COMMIT was in flight is
// CommitUnknown, and after the commit the insert LSN is read on the same connection and
// recorded into the session (a failure there leaves the write standing, its LSN unknown).
#include <optional>

#include "database_impl.hpp"
#include "result.hpp"

namespace replikit::pg {

namespace {

using detail::Effect;
using detail::Failure;
using detail::FailureKind;
using Impl = ReplicatedDatabase::Impl;

constexpr const char* kInsertLsnSql = "SELECT pg_current_wal_insert_lsn()";

// The primary, leased for one write call with its deadline armed.
struct WriteCall {
  WriteCall(Impl& impl, const char* what)
      : m(impl), decision(route(impl, what)), node(impl.topology->name(decision.node)),
        in_flight(*impl.router, decision.node), conn(impl.acquire(decision.node, /*write=*/true)) {
    impl.counters.writes.fetch_add(1, std::memory_order_relaxed);
    deadline.emplace(impl, conn);
  }
  static Decision route(Impl& m, const char* what) {
    Decision d = m.router->route_write();
    if (d.node == kNoNode) throw ConnectionError(m.primary_down_message() + ": " + what + " was not sent");
    return d;
  }
  PGconn* pg() const { return conn->get(); }
  // Settles the deadline after a Server or Usage failure and throws its public error.
  [[noreturn]] void raise(const Failure& f, const char* argument) {
    if (f.kind() == FailureKind::Server) {
      deadline->answered(conn);
      throw QueryError(f.what(), f.sqlstate());
    }
    deadline->disarm();
    throw InvalidArgument(argument, f.what());
  }
  // After the commit: the insert LSN, recorded into `session` (0/0 when it cannot be read; a
  // lost connection then marks the node down, the write stands).
  Lsn record_commit(Session& session) {
    Lsn lsn;
    try {
      lsn = detail::lsn_of(detail::exec(pg(), kInsertLsnSql, {}, Effect::None).get());
      deadline->answered(conn);
    } catch (const Failure& f) {
      if (f.kind() == FailureKind::Lost || f.kind() == FailureKind::InDoubt) {
        m.lost(*deadline, decision.node, f.what());
      } else {
        deadline->answered(conn);
      }
    }
    session.record_write(lsn, detail::wall_now_ns());
    return lsn;
  }

  Impl& m;
  Decision decision;
  const std::string& node;  // topology names live in fixed slots
  Router::InFlight in_flight;
  detail::Lease conn;
  std::optional<Impl::Deadline> deadline;
};

// The BEGIN and the statements of a transaction; a Failure of a statement propagates. A
// statement that ended the block itself (COMMIT, ROLLBACK) would leave the rest to run in
// autocommit and our COMMIT to commit nothing: refused.
std::vector<QueryResult> run_statements(WriteCall& w, Session& session, const std::vector<Statement>& statements) {
  detail::exec(w.pg(), "BEGIN", {}, Effect::None);
  std::vector<QueryResult> out;
  out.reserve(statements.size());
  for (std::size_t k = 0; k < statements.size(); ++k) {
    QueryResult r;
    r.node = w.node;
    r.reason = Reason::Write;
    detail::fill(r, detail::exec(w.pg(), statements[k].sql, statements[k].params, Effect::None).get());
    out.push_back(std::move(r));
    if (PQtransactionStatus(w.pg()) != PQTRANS_INTRANS) {
      // What ran before it may have committed: keep the session's reads conservative.
      session.record_write(Lsn(), detail::wall_now_ns());
      w.deadline->disarm();
      throw InvalidArgument("statements", "statement " + std::to_string(k + 1) +
                                              " ended the transaction block (COMMIT, ROLLBACK, ...); "
                                              "transaction() commits by itself. The statements before "
                                              "it may have committed or rolled back; none after it ran");
    }
  }
  return out;
}

// A statement of a transaction failed before COMMIT was sent: the transaction did not commit.
[[noreturn]] void raise_before_commit(WriteCall& w, const Failure& f) {
  if (f.kind() == FailureKind::Lost || f.kind() == FailureKind::InDoubt) {
    const bool cut = w.m.lost(*w.deadline, w.decision.node, f.what());
    throw ConnectionError("node '" + w.node + "': " +
                          (cut ? "no answer within statement_timeout_ms + query_grace_ms"
                               : "connection lost before COMMIT") +
                          "; the transaction was rolled back: " + f.what());
  }
  if (f.kind() == FailureKind::Server) {
    // Leave the connection idle for the next user (a failed ROLLBACK leaves it unpooled).
    try {
      detail::exec(w.pg(), "ROLLBACK", {}, Effect::None);
    } catch (const Failure&) {
    }
  }
  w.raise(f, "statements");
}

}  // namespace

QueryResult ReplicatedDatabase::execute(Session& session, const std::string& sql, const Params& params) {
  Impl& m = *impl_;
  m.check_open();
  require(!sql.empty(), "sql", "must not be empty");
  detail::require_no_nul(sql, params, "sql", "params");
  WriteCall w(m, "the write");
  QueryResult out;
  out.node = w.node;
  out.reason = Reason::Write;
  try {
    // Autocommit: the statement committed when its result arrived, unless it opened a
    // transaction block (BEGIN) that it did not close.
    detail::fill(out, detail::exec(w.pg(), sql, params, Effect::MayCommit).get());
    detail::require_idle(w.pg());
  } catch (const Failure& f) {
    if (f.kind() == FailureKind::Server || f.kind() == FailureKind::Usage) w.raise(f, "sql");
    const bool cut = m.lost(*w.deadline, w.decision.node, f.what());
    throw CommitUnknown("node '" + w.node + "': " +
                        (cut ? "no answer within statement_timeout_ms + query_grace_ms"
                             : "connection lost during the write") +
                        "; it may or may not have committed: " + f.what());
  }
  out.lsn = w.record_commit(session);
  return out;
}

std::vector<QueryResult> ReplicatedDatabase::transaction(Session& session, const std::vector<Statement>& statements) {
  Impl& m = *impl_;
  m.check_open();
  require(!statements.empty(), "statements", "must not be empty");
  for (const auto& s : statements) {
    require(!s.sql.empty(), "statements", "a statement's sql is empty");
    detail::require_no_nul(s.sql, s.params, "statements", "statements");
  }
  WriteCall w(m, "the transaction");
  std::vector<QueryResult> out;
  try {
    out = run_statements(w, session, statements);
  } catch (const Failure& f) {
    raise_before_commit(w, f);
  }
  try {
    detail::exec(w.pg(), "COMMIT", {}, Effect::MayCommit);
  } catch (const Failure& f) {
    if (f.kind() == FailureKind::Server || f.kind() == FailureKind::Usage) w.raise(f, "statements");
    // As for a lost connection: a COMMIT the watchdog cut says nothing about the node's health.
    const bool cut = m.lost(*w.deadline, w.decision.node, f.what());
    throw CommitUnknown("node '" + w.node + "': " +
                        (cut ? "no answer to COMMIT within statement_timeout_ms + query_grace_ms"
                             : "connection lost during COMMIT") +
                        "; it may or may not have committed: " + f.what());
  }
  const Lsn lsn = w.record_commit(session);
  for (auto& r : out) r.lsn = lsn;
  return out;
}

}  // namespace replikit::pg
