// The read path: query() and route_read(). A read runs where the router sends it, on a pooled
// connection, through exec() (classify.hpp); a lost connection marks the node down and the
// read is retried elsewhere (at most read_retries times, never again on the primary).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <thread>
#include <vector>

#include "database_impl.hpp"
#include "result.hpp"

namespace replikit::pg {

namespace {

using detail::Effect;
using detail::Failure;
using detail::FailureKind;

// On a replica the replay LSN (an upper bound of the snapshot a query that already ran used);
// on a primary the insert LSN. Not COALESCE(replay, insert): a primary that went through crash
// recovery keeps reporting the LSN where recovery ended as its replay LSN until a clean restart,
// which would record a stale, too small LSN for every read it serves. Also
// whether the node is in recovery and its snapshot now: a snapshot taken after the read has
// completed at least every transaction the read saw, so it can stand for the read's snapshot
// in the primary-fallback rule (asking more of the primary is sound) at no extra round trip.
// The insert LSN is taken as the end of the last record (insert_end_of; a replay LSN is one).
constexpr const char* kObservedSql =
    "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END,"
    " pg_is_in_recovery(), "
    "pg_current_snapshot()::text, " REPLIKIT_WAL_LAYOUT_COLUMNS;
constexpr const char* kSnapshotSql = "SELECT pg_current_snapshot()::text";

// A snapshot's text 'xmin:xmax:xip,...' (decimal xid8s, xip ascending); false if malformed.
bool parse_snapshot(const char* text, std::uint64_t* xmax, std::vector<std::uint64_t>* xip) {
  char* end = nullptr;
  std::strtoull(text, &end, 10);
  if (end == text || *end != ':') return false;
  const char* p = end + 1;
  *xmax = std::strtoull(p, &end, 10);
  if (end == p || *end != ':') return false;
  p = end + 1;
  xip->clear();
  while (*p != '\0') {
    xip->push_back(std::strtoull(p, &end, 10));
    if (end == p) return false;
    p = *end == ',' ? end + 1 : end;
  }
  std::sort(xip->begin(), xip->end());
  return true;
}

// The floor a replica snapshot sets: its xmax and its smallest in-progress xids.
XidFloor floor_of(std::uint64_t xmax, const std::vector<std::uint64_t>& xip) {
  XidFloor f;
  f.xmax = xmax;
  f.count = static_cast<std::uint8_t>(std::min<std::size_t>(xip.size(), kMaxFloorXids));
  std::copy_n(xip.begin(), f.count, f.xip.begin());
  return f;
}

// Before a Monotonic/Causal read on the primary: waits (bounded) until the primary's snapshot
// has completed every transaction the session's replica reads saw completed, so the read that
// follows on this connection (a later snapshot) shows all they showed. Throws TimeoutError.
void await_floor(PGconn* conn, Session& session, double bound_ms) {
  std::uint64_t xmax = 0;
  std::vector<std::uint64_t> xip;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::microseconds(std::llround(bound_ms * 1e3));
  for (int pass = 0;; ++pass) {
    detail::PgResult r = detail::exec(conn, kSnapshotSql, {}, Effect::None);
    if (PQntuples(r.get()) == 1 && parse_snapshot(PQgetvalue(r.get(), 0, 0), &xmax, &xip) &&
        session.xid_floor.covered_by(xmax, xip.data(), xip.size())) {
      return;
    }
    if (std::chrono::steady_clock::now() >= give_up) {
      throw TimeoutError("the primary did not show, within " + std::to_string(std::llround(bound_ms)) +
                         " ms, every transaction this session already saw on a replica (a monotonic "
                         "read there could go back in time)");
    }
    // The commits awaited are flushed already: they become visible within microseconds.
    std::this_thread::sleep_for(std::chrono::microseconds(pass < 10 ? 50 : 500));
  }
}

// Counts a read's final decision in the router once, whichever way the read ends, so that
// Router::counters() and stats() agree (the routes of a wait and of failed attempts are not
// counted).
class FinalDecision {
 public:
  explicit FinalDecision(Router& router) : router_(router) {}
  ~FinalDecision() {
    if (decided_) router_.record(decision_);
  }
  FinalDecision(const FinalDecision&) = delete;
  FinalDecision& operator=(const FinalDecision&) = delete;
  void set(const Decision& d) noexcept {
    decision_ = d;
    decided_ = true;
  }

 private:
  Router& router_;
  Decision decision_;
  bool decided_ = false;
};

// Records what a Monotonic/Causal read on `d.node` saw: the observed LSN; on a replica also
// the replica itself (router rule 5) and the transactions its snapshot had completed.
void observe_read(QueryResult& out, PGconn* conn, Session& session, const Decision& d) {
  detail::PgResult r = detail::exec(conn, kObservedSql, {}, Effect::None);
  const PGresult* res = r.get();
  if (PQntuples(res) != 1 || PQnfields(res) != 5 || PQgetisnull(res, 0, 0)) return;
  out.lsn = detail::insert_end_of(res, 0, 3);
  if (PQgetvalue(res, 0, 1)[0] != 't') {
    session.observe(out.lsn);
    return;
  }
  session.observe_replica(out.lsn, d.node, d.epoch);
  std::uint64_t xmax = 0;
  std::vector<std::uint64_t> xip;
  if (parse_snapshot(PQgetvalue(res, 0, 2), &xmax, &xip)) session.xid_floor.merge(floor_of(xmax, xip));
}

// One attempt of a read on `conn`: for a Monotonic/Causal read on the primary the wait for
// the session's xid floor, the statement, the open-transaction check and, for Monotonic/Causal
// reads, what the read observed. Throws exec()'s Failure (and await_floor's TimeoutError).
void run_read(QueryResult& out, PGconn* conn, Session& session, const std::string& sql, const Params& params,
              bool observe, const Decision& d, double floor_wait_ms) {
  const bool floor = observe && d.to_primary() && session.xid_floor.xmax != 0;
  if (floor) await_floor(conn, session, floor_wait_ms);
  detail::fill(out, detail::exec(conn, sql, params, Effect::None).get());
  detail::require_idle(conn);
  // The primary has shown the floor; its later snapshots show it too: no need to check again.
  if (floor) session.xid_floor = XidFloor{};
  if (observe) observe_read(out, conn, session, d);
}

// A failed attempt: throws the read's error (counted as a failure), or returns the message of
// a lost connection after which the read may be retried elsewhere (the node was marked down,
// or deposed by a failover while the read waited on it).
std::string settle_failure(ReplicatedDatabase::Impl& m, const Failure& f, ReplicatedDatabase::Impl::Deadline& deadline,
                           detail::Lease& conn, int node) {
  const bool retry = f.kind() == FailureKind::Lost || f.kind() == FailureKind::InDoubt;
  if (f.kind() == FailureKind::Server) {
    deadline.answered(conn);  // the server answered: the connection may be reused (when idle and not cut)
  } else if (!retry) {
    deadline.disarm();
  } else if (!m.lost(deadline, node, f.what())) {
    return "node '" + m.topology->name(node) + "': " + f.what();
  } else if (deadline.deposed()) {  // a failover deposed the node it waited on: another may serve
    return "node '" + m.topology->name(node) + "': " + m.cut_message(deadline);
  }
  m.counters.read_failures.fetch_add(1, std::memory_order_relaxed);
  if (f.kind() == FailureKind::Server) throw QueryError(f.what(), f.sqlstate());
  if (f.kind() == FailureKind::Usage) throw InvalidArgument("sql", f.what());
  // The watchdog cut a query that outran its deadline: a slow query would be as slow
  // elsewhere, and a frozen server is the prober's to mark down. No retry.
  throw TimeoutError("node '" + m.topology->name(node) + "': " + m.deadline_message() + "; the connection was closed");
}

// No node can serve the read `d`: the primary is down and no replica qualifies (or may serve).
ConnectionError no_node_error(const ReplicatedDatabase::Impl& m, const Decision& d, const std::string& last_error) {
  std::string why = std::string("no node can serve this read (") + to_string(d.reason) + "; " +
                    m.primary_down_message() + ")";
  if (d.reason == Reason::RecentWrite) {
    why += ": the session has a write whose commit LSN is unknown, which only the primary is sure to show "
           "until a probe of it resolves the write";
  }
  if (!last_error.empty()) why += "; last error: " + last_error;
  return ConnectionError(why);
}

}  // namespace

QueryResult ReplicatedDatabase::query(Session& session, const std::string& sql, const Params& params,
                                      const QueryOptions& options) {
  Impl& m = *impl_;
  m.check_open();
  require(!sql.empty(), "sql", "must not be empty");
  detail::require_no_nul(sql, params, "sql", "params");
  if (options.wait_for_replica) check_catch_up(*options.wait_for_replica, "wait_for_replica_ms");
  const bool observe = options.consistency == Consistency::Monotonic || options.consistency == Consistency::Causal;
  m.reconcile(session);
  // A read that must see this session's writes cannot, when a failover lost them: say so once.
  if (options.consistency == Consistency::ReadYourWrites || options.consistency == Consistency::Causal) {
    session.check_lost_writes();
  }
  m.resolve(session);  // in place, so that the session's token carries the LSN from now on
  m.counters.reads.fetch_add(1, std::memory_order_relaxed);
  auto fail = [&m] { m.counters.read_failures.fetch_add(1, std::memory_order_relaxed); };
  FinalDecision final_decision(*m.router);
  std::string last_error;
  double waited_ms = 0;
  CatchUpReason wait_reason = CatchUpReason::FixedWait;
  const int attempts = 1 + m.options.read_retries;
  bool lost_on_primary = false;
  int failed_node = kNoNode;  // of the last failed attempt
  for (int attempt = 1; attempt <= attempts; ++attempt) {
    if (attempt > 1) m.check_open();
    double waited_now = 0;
    // Retries do not wait again. Counted in flight here: not sent to a primary a switchover holds.
    Impl::Call call = m.begin_call(
        m.route(session, options, &waited_now, attempt == 1, attempt == 1 ? &wait_reason : nullptr),
        [&] { return m.route(session, options, &waited_now, false); });
    const Decision& d = call.decision();
    waited_ms += waited_now;
    final_decision.set(d);
    if (lost_on_primary && d.to_primary()) {
      // The statement may have run on the primary before the connection broke; a retry there
      // could run it twice (query() is for reads, but a SELECT can call a function that writes).
      // Replicas are read-only, so retrying on one is safe.
      call.back_out();  // nothing sent: not a call that ran there
      fail();
      throw ConnectionError("read not retried on the primary after its connection was lost there; last error: " +
                            last_error);
    }
    if (d.node == kNoNode) {
      fail();
      throw no_node_error(m, d, last_error);
    }
    if (attempt > 1) {
      m.counters.retries.fetch_add(1, std::memory_order_relaxed);
      m.node_events->read_retry(failed_node, d.node, attempt, last_error);
    }
    // Topology names live in fixed slots and never change: a reference, not a copy.
    const std::string& node = m.topology->name(d.node);
    std::optional<detail::Lease> conn;
    try {
      conn.emplace(m.acquire(d.node, /*write=*/false));
    } catch (const ConnectionError& e) {
      call.back_out();  // never sent: not counted as a call that ran there (a drain's count)
      last_error = e.what();  // the node was marked down: retry elsewhere
      failed_node = d.node;
      continue;
    } catch (const QueryError& e) {  // the node is full (53300), not down: another may serve
      call.back_out();
      if (attempt == attempts) {
        fail();
        throw;
      }
      last_error = e.what();
      continue;
    }
    Impl::Deadline deadline(m, *conn, d.to_primary() ? d.node : kNoNode);
    try {
      QueryResult out;
      out.node = node;
      out.reason = d.reason;
      out.attempts = attempt;
      out.waited_ms = waited_ms;
      out.wait_reason = wait_reason;
      run_read(out, (*conn)->get(), session, sql, params, observe, d, m.options.statement_timeout_ms / 2);
      deadline.answered(*conn);
      (d.to_primary() ? m.counters.primary_reads : m.counters.replica_reads).fetch_add(1, std::memory_order_relaxed);
      return out;
    } catch (const Failure& f) {
      last_error = settle_failure(m, f, deadline, *conn, d.node);  // returns only when the read may retry
      lost_on_primary = lost_on_primary || d.to_primary();
      failed_node = d.node;
    } catch (const TimeoutError&) {  // await_floor gave up: the connection is fine
      deadline.answered(*conn);
      fail();
      throw;
    }
  }
  fail();
  throw ConnectionError("read failed on " + std::to_string(attempts) + " attempt(s); last error: " + last_error);
}

Route ReplicatedDatabase::route_read(const Session& session, const QueryOptions& options) {
  Impl& m = *impl_;
  m.check_open();
  Route out;
  if (options.wait_for_replica) check_catch_up(*options.wait_for_replica, "wait_for_replica_ms");
  Decision d = m.route(session, options, &out.waited_ms, true, &out.wait_reason);
  // Not to a primary that a switchover drains: to the one after it.
  if (d.to_primary() && m.wait_primary_release()) d = m.route(session, options, &out.waited_ms, false);
  out.node = d.node == kNoNode ? std::string() : m.topology->name(d.node);
  out.reason = d.reason;
  out.required_lsn = d.required_lsn;
  out.consistency = options.consistency;
  return out;
}

void ReplicatedDatabase::record_read(const std::string& node, Reason reason) const {
  Impl& m = *impl_;
  Decision d;
  d.node = m.topology->index_of(node, "node");
  d.reason = reason;
  m.router->record(d);
  m.counters.reads.fetch_add(1, std::memory_order_relaxed);
  (d.node == m.topology->primary() ? m.counters.primary_reads : m.counters.replica_reads)
      .fetch_add(1, std::memory_order_relaxed);
}

}  // namespace replikit::pg
