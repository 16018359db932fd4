// The write path: execute() and transaction() on the primary. Every statement runs through
// exec() (classify.hpp); a connection lost while a write or COMMIT was in flight is
// CommitUnknown, and after the commit the insert LSN is read on the same connection and
// recorded into the session (a failure there leaves the write standing, its LSN unknown),
// as the end of the last WAL record (insert_end_of in result.hpp: at a page boundary the
// insert LSN stands a page header past what a caught-up replica reports).
//
// Every write also records its transaction id (pg_current_xact_id(), xid8) into the session's
// acknowledged writes, read inside its own transaction and in the same round trip where the
// protocol allows: a write without parameters runs as "SELECT pg_current_xact_id(); <sql>"
// in one simple query (one implicit transaction); a write with parameters and transaction()
// start with "BEGIN; SELECT pg_current_xact_id()" and end with "COMMIT; SELECT
// pg_current_wal_insert_lsn()" (a write with parameters thus takes three round trips where a
// bare autocommit statement and its LSN read took two; transaction() one fewer than before). A statement that refuses to run inside
// a transaction block (VACUUM, CREATE DATABASE, ALTER SYSTEM: SQLSTATE 25001) is run again
// alone, once the commit log shows the prefixed attempt aborted; its xid is then unknown.
#include <cstdlib>
#include <optional>

#include "database_impl.hpp"
#include "result.hpp"

namespace replikit::pg {

namespace {

using detail::Effect;
using detail::Failure;
using detail::FailureKind;
using Impl = ReplicatedDatabase::Impl;

// The insert LSN and the timeline it is on (a loss report needs the timeline each write was
// acknowledged on; the prober may not have probed the primary yet), and the WAL sizes that
// make the insert LSN a record's end.
#define REPLIKIT_INSERT_LSN_SELECT                                                      \
  "SELECT pg_current_wal_insert_lsn(),"                                                 \
  " ('x' || substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8))::bit(32)::int, " \
  REPLIKIT_WAL_LAYOUT_COLUMNS
constexpr const char* kInsertLsnSql = REPLIKIT_INSERT_LSN_SELECT;
constexpr const char* kXidSql = "SELECT pg_current_xact_id()";
constexpr const char* kBeginXidSql = "BEGIN; SELECT pg_current_xact_id()";
constexpr const char* kCommitLsnSql = "COMMIT; " REPLIKIT_INSERT_LSN_SELECT;
#undef REPLIKIT_INSERT_LSN_SELECT

// The LSN and timeline of a kInsertLsnSql result ({0/0, 0} when it is not one full row).
struct CommitPoint {
  Lsn lsn;
  std::uint32_t timeline = 0;
};
CommitPoint commit_point_of(const PGresult* r) {
  CommitPoint out;
  if (r == nullptr || PQntuples(r) != 1 || PQnfields(r) != 4 || PQgetisnull(r, 0, 0)) return out;
  out.lsn = detail::insert_end_of(r, 0, 2);
  if (!PQgetisnull(r, 0, 1)) out.timeline = static_cast<std::uint32_t>(std::strtoul(PQgetvalue(r, 0, 1), nullptr, 10));
  return out;
}

// The xid8 in the single cell of `r` (0 when there is none).
std::uint64_t xid_of(const PGresult* r) {
  if (r == nullptr || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQgetisnull(r, 0, 0)) return 0;
  return std::strtoull(PQgetvalue(r, 0, 0), nullptr, 10);
}

// "SELECT pg_current_xact_id(); <sql>" as one simple query: the xid of the first result into
// `xid`, and the last result (the user's); the first failure is thrown once every result is read.
detail::PgResult exec_with_xid(PGconn* conn, const std::string& sql, std::uint64_t* xid) {
  const std::string text = std::string(kXidSql) + ";\n" + sql;
  if (PQsendQuery(conn, text.c_str()) == 0) {
    if (auto f = detail::classify(conn, nullptr, Effect::MayCommit)) throw std::move(*f);
  }
  std::optional<Failure> failure;
  std::optional<detail::PgResult> last;
  int count = 0;
  while (PGresult* r = PQgetResult(conn)) {
    detail::PgResult held(r);
    if (++count == 1) *xid = xid_of(r);
    if (!failure) failure = detail::classify(conn, r, Effect::MayCommit);
    const ExecStatusType st = PQresultStatus(r);
    if (count > 1) {
      last.reset();
      last.emplace(std::move(held));
    }
    if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) break;  // the caller closes it
  }
  if (!failure && PQstatus(conn) != CONNECTION_OK) failure = detail::classify(conn, nullptr, Effect::MayCommit);
  if (failure) throw std::move(*failure);
  // The user's text held no statement (only a comment): an empty result, as PQexec gives.
  if (!last) return detail::PgResult(PQmakeEmptyPGresult(conn, PGRES_EMPTY_QUERY));
  return std::move(*last);
}

// The primary, leased for one write call with its deadline armed.
struct WriteCall {
  WriteCall(Impl& impl, const char* what)
      : m(impl), call(impl.begin_call(route(impl, what), [&impl, what] { return route(impl, what); })),
        decision(call.decision()), node(impl.topology->name(decision.node)),
        conn(acquire(impl, call)),
        epoch(impl.topology->epoch()) {
    impl.counters.writes.fetch_add(1, std::memory_order_relaxed);
    deadline.emplace(impl, conn, decision.node);  // cut as soon as a failover deposes the node
  }
  // The primary's connection; a call that gets none never ran there (not counted by a drain).
  static detail::Lease acquire(Impl& m, Impl::Call& call) {
    try {
      return m.acquire(call.decision().node, /*write=*/true);
    } catch (...) {
      call.back_out();
      throw;
    }
  }
  static Decision route(Impl& m, const char* what) {
    Decision d = m.route_write();
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
  Lsn record_commit(Session& session, std::uint64_t xid, std::optional<CommitPoint> known = std::nullopt) {
    CommitPoint point;
    if (known) {
      point = *known;
      deadline->answered(conn);
    } else {
      try {
        point = commit_point_of(detail::exec(pg(), kInsertLsnSql, {}, Effect::None).get());
        deadline->answered(conn);
      } catch (const Failure& f) {
        if (f.kind() == FailureKind::Lost || f.kind() == FailureKind::InDoubt) {
          m.lost(*deadline, decision.node, f.what());
        } else {
          deadline->answered(conn);
        }
      }
    }
    const std::int64_t now = detail::wall_now_ns();
    session.record_write(point.lsn, now);
    // The session's LSNs are of this timeline from now on (it was reconciled before the call).
    if (point.timeline > session.timeline) session.timeline = point.timeline;
    const std::uint32_t timeline = point.timeline != 0 ? point.timeline : m.prober->state(decision.node).timeline;
    const AckedWrite acked{xid, point.lsn, now, epoch, timeline};
    session.acked_writes.add(acked);
    {
      std::lock_guard<std::mutex> lock(m.acked_mutex);
      m.acked.add(acked);
    }
    return point.lsn;
  }

  Impl& m;
  Impl::Call call;  // counted in flight on the primary (not sent to one a switchover holds)
  Decision decision;
  const std::string& node;  // topology names live in fixed slots
  detail::Lease conn;
  std::uint64_t epoch;  // the topology epoch the write was routed in
  std::optional<Impl::Deadline> deadline;
};

// The BEGIN and the statements of a transaction; a Failure of a statement propagates. A
// statement that ended the block itself (COMMIT, ROLLBACK) would leave the rest to run in
// autocommit and our COMMIT to commit nothing: refused.
std::vector<QueryResult> run_statements(WriteCall& w, Session& session, const std::vector<Statement>& statements,
                                       std::uint64_t* xid) {
  *xid = xid_of(detail::exec(w.pg(), kBeginXidSql, {}, Effect::None).get());
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
[[noreturn]] void raise_before_commit(WriteCall& w, const Failure& f, const char* argument) {
  if (f.kind() == FailureKind::Lost || f.kind() == FailureKind::InDoubt) {
    const bool cut = w.m.lost(*w.deadline, w.decision.node, f.what());
    throw ConnectionError("node '" + w.node + "': " +
                          (cut ? w.m.cut_message(*w.deadline) : std::string("connection lost before COMMIT")) +
                          "; the transaction was rolled back: " + f.what());
  }
  if (f.kind() == FailureKind::Server) {
    // Leave the connection idle for the next user (a failed ROLLBACK leaves it unpooled).
    try {
      detail::exec(w.pg(), "ROLLBACK", {}, Effect::None);
    } catch (const Failure&) {
    }
  }
  w.raise(f, argument);
}

// BEGIN + xid, the statements, COMMIT, then the commit recorded: transaction(), and execute()
// with parameters. `argument` names the caller's argument in errors.
std::vector<QueryResult> run_transaction(WriteCall& w, Session& session, const std::vector<Statement>& statements,
                                         const char* argument) {
  Impl& m = w.m;
  std::vector<QueryResult> out;
  std::uint64_t xid = 0;
  try {
    out = run_statements(w, session, statements, &xid);
  } catch (const Failure& f) {
    raise_before_commit(w, f, argument);
  }
  CommitPoint point;
  try {
    // The insert LSN in the same round trip: the SELECT runs after COMMIT has returned (and
    // does not run when COMMIT fails).
    point = commit_point_of(detail::exec(w.pg(), kCommitLsnSql, {}, Effect::MayCommit).get());
  } catch (const Failure& f) {
    if (f.kind() == FailureKind::Server || f.kind() == FailureKind::Usage) w.raise(f, argument);
    // As for a lost connection: a COMMIT the watchdog cut says nothing about the node's health.
    const bool cut = m.lost(*w.deadline, w.decision.node, f.what());
    throw CommitUnknown("node '" + w.node + "': " +
                        (cut ? "COMMIT: " + m.cut_message(*w.deadline) : std::string("connection lost during COMMIT")) +
                        "; it may or may not have committed: " + f.what());
  }
  const Lsn lsn = w.record_commit(session, xid, point);
  for (auto& r : out) r.lsn = lsn;
  return out;
}

// A statement refused inside the implicit block of the xid prefix (SQLSTATE 25001, e.g. VACUUM):
// true when the commit log shows the prefixed attempt rolled back, so running it alone cannot
// repeat anything (a multi-statement text may have committed a part before failing).
bool may_run_alone(WriteCall& w, const Failure& f, std::uint64_t xid) {
  if (f.kind() != FailureKind::Server || f.sqlstate() != "25001" || xid == 0) return false;
  if (PQtransactionStatus(w.pg()) != PQTRANS_IDLE) return false;
  const detail::PgResult r =
      detail::exec(w.pg(), "SELECT pg_xact_status($1::xid8)", {std::to_string(xid)}, Effect::None);
  return PQntuples(r.get()) == 1 && !PQgetisnull(r.get(), 0, 0) && std::string(PQgetvalue(r.get(), 0, 0)) == "aborted";
}

// An autocommit write without parameters, its xid read in the same round trip.
void run_autocommit(WriteCall& w, QueryResult& out, const std::string& sql, std::uint64_t* xid) {
  try {
    detail::fill(out, exec_with_xid(w.pg(), sql, xid).get());
  } catch (const Failure& f) {
    if (!may_run_alone(w, f, *xid)) throw;
    *xid = 0;
    detail::fill(out, detail::exec(w.pg(), sql, {}, Effect::MayCommit).get());
  }
}

}  // namespace

QueryResult ReplicatedDatabase::execute(Session& session, const std::string& sql, const Params& params) {
  Impl& m = *impl_;
  m.check_open();
  require(!sql.empty(), "sql", "must not be empty");
  detail::require_no_nul(sql, params, "sql", "params");
  m.reconcile(session);
  WriteCall w(m, "the write");
  if (!params.empty()) return run_transaction(w, session, {Statement{sql, params}}, "sql").front();
  QueryResult out;
  out.node = w.node;
  out.reason = Reason::Write;
  std::uint64_t xid = 0;
  try {
    // Autocommit: the statement committed when its result arrived, unless it opened a
    // transaction block (BEGIN) that it did not close.
    run_autocommit(w, out, sql, &xid);
    detail::require_idle(w.pg());
  } catch (const Failure& f) {
    if (f.kind() == FailureKind::Server || f.kind() == FailureKind::Usage) w.raise(f, "sql");
    const bool cut = m.lost(*w.deadline, w.decision.node, f.what());
    throw CommitUnknown("node '" + w.node + "': " +
                        (cut ? m.cut_message(*w.deadline) : std::string("connection lost during the write")) +
                        "; it may or may not have committed: " + f.what());
  }
  out.lsn = w.record_commit(session, xid);
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
  m.reconcile(session);
  WriteCall w(m, "the transaction");
  return run_transaction(w, session, statements, "statements");
}

}  // namespace replikit::pg
