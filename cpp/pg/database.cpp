#include "replikit/pg/database.hpp"

#include <pqxx/except>
#include <pqxx/nontransaction>
#include <pqxx/prepared_statement>
#include <pqxx/result>
#include <pqxx/transaction>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <condition_variable>
#include <mutex>

#include "conninfo.hpp"
#include "pool.hpp"
#include "prober.hpp"
#include "raw_connection.hpp"
#include "replikit/errors.hpp"
#include "watchdog.hpp"

namespace replikit::pg {

namespace {

using detail::trimmed;

constexpr const char* kInsertLsnSql = "SELECT pg_current_wal_insert_lsn()";
// On a replica the replay LSN (an upper bound of the snapshot a query that already ran used);
// on a primary the insert LSN. COALESCE evaluates its second argument only when needed.
constexpr const char* kObservedLsnSql = "SELECT COALESCE(pg_last_wal_replay_lsn(), pg_current_wal_insert_lsn())";

std::int64_t ms_to_ns(double ms) { return static_cast<std::int64_t>(std::llround(ms * 1e6)); }

// Session time (the time-window rule of Session::record_write and Router::route_read): tokens
// carry it between processes and hosts, so it is wall-clock time, unlike everything else here.
std::int64_t session_now_ns() { return ReplicatedDatabase::wall_clock_ns(); }

// A user statement that returned normally but left its connection inside a transaction block
// (an explicit BEGIN, in execute() or query()): nothing it wrote is committed, and closing the
// connection (its Lease is never marked healthy) rolls it back. Never report such a call as done.
void require_no_open_transaction(const pqxx::connection_base& conn, const char* argument) {
  const PGTransactionStatusType status = detail::transaction_status(conn);
  if (status == PQTRANS_INTRANS || status == PQTRANS_INERROR) {
    throw InvalidArgument(argument,
                          "left a transaction open; use transaction() for multi-statement transactions (the "
                          "transaction was rolled back: nothing it did was committed)");
  }
}

void check_range(double value, double low, double high, const char* argument) {
  require(std::isfinite(value), argument, "must be a finite number");
  require(value >= low && value <= high,
          argument, "must be in [" + std::to_string(low) + ", " + std::to_string(high) + "], got " +
                        std::to_string(value));
}

void check_options(const DatabaseOptions& o) {
  check_range(o.probe_interval_ms, 1, 60000, "probe_interval_ms");
  check_range(o.probe_timeout_ms, 1, 60000, "probe_timeout_ms");
  require(o.pool_size >= 1 && o.pool_size <= 1024, "pool_size", "must be in [1, 1024]");
  check_range(o.acquire_timeout_ms, 0, 3600000, "acquire_timeout_ms");
  check_range(o.connect_timeout_ms, 1, 3600000, "connect_timeout_ms");
  check_range(o.tcp_user_timeout_ms, 0, 3600000, "tcp_user_timeout_ms");
  check_range(o.statement_timeout_ms, 1, 86400000, "statement_timeout_ms");
  check_range(o.query_grace_ms, 0, 3600000, "query_grace_ms");
  check_range(o.wait_for_replica_ms, 0, 60000, "wait_for_replica_ms");
  require(o.read_retries >= 0 && o.read_retries <= 16, "read_retries", "must be in [0, 16]");
}

// The server's message for a QueryError: libpqxx's what() is libpq's "ERROR:  ..." text.
QueryError to_query_error(const pqxx::sql_error& e) { return QueryError(trimmed(e.what()), e.sqlstate()); }

// libpqxx 6.4 throws class-40 errors as transaction_rollback subclasses, not sql_error, and
// without their SQLSTATE: restore it from the class.
QueryError to_query_error(const pqxx::transaction_rollback& e) {
  const char* state = dynamic_cast<const pqxx::serialization_failure*>(&e)          ? "40001"
                      : dynamic_cast<const pqxx::deadlock_detected*>(&e)            ? "40P01"
                      : dynamic_cast<const pqxx::statement_completion_unknown*>(&e) ? "40003"
                                                                                   : "40000";
  return QueryError(trimmed(e.what()), state);
}

// SQLSTATEs of errors that ended the session: connection exceptions (class 08) and
// administrator or crash shutdowns (57P..).
bool ends_session(const std::string& sqlstate) {
  return sqlstate.rfind("08", 0) == 0 || sqlstate.rfind("57P", 0) == 0;
}

// A server error that ended the session (or after which libpq reports the connection bad) is a
// lost connection, not a query error.
bool connection_lost(const pqxx::connection& conn, const pqxx::sql_error& e) {
  return !conn.is_open() || ends_session(e.sqlstate());
}

// Runs `body`, turning a server error that ended the session into the broken_connection it
// is, so that the caller's handlers treat it as a lost connection.
template <class F>
void lost_connection_as_broken(pqxx::connection& conn, F&& body) {
  try {
    body();
  } catch (const pqxx::sql_error& e) {
    if (connection_lost(conn, e)) throw pqxx::broken_connection(e.what());
    throw;
  }
}

pqxx::result run(pqxx::transaction_base& tx, const std::string& sql, const Params& params) {
  if (params.empty()) return tx.exec(sql);  // simple protocol: several statements allowed
  constexpr std::size_t kOnStack = 8;
  if (params.size() <= kOnStack) {  // the usual case: no allocation for the value pointers
    const char* values[kOnStack];
    for (std::size_t k = 0; k < params.size(); ++k) values[k] = params[k] ? params[k]->c_str() : nullptr;  // NULL
    return tx.exec_params(sql, pqxx::prepare::make_dynamic_params(values + 0, values + params.size()));
  }
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const Param& p : params) values.push_back(p ? p->c_str() : nullptr);  // nullptr: SQL NULL
  return tx.exec_params(sql, pqxx::prepare::make_dynamic_params(values));
}

void fill(QueryResult& out, const pqxx::result& r) {
  const auto columns = r.columns();
  out.columns.reserve(columns);
  out.type_oids.reserve(columns);
  for (pqxx::row::size_type c = 0; c < columns; ++c) {
    out.columns.emplace_back(r.column_name(c));
    out.type_oids.push_back(static_cast<std::uint32_t>(r.column_type(c)));
  }
  out.rows.reserve(r.size());
  for (const auto& row : r) {
    std::vector<std::optional<std::string>> values;
    values.reserve(columns);
    for (const auto& field : row) {
      if (field.is_null()) {
        values.emplace_back(std::nullopt);
      } else {
        values.emplace_back(std::string(field.c_str(), field.size()));
      }
    }
    out.rows.push_back(std::move(values));
  }
  out.affected_rows = static_cast<std::int64_t>(r.affected_rows());
}

Lsn lsn_of(const pqxx::result& r) {
  if (r.size() != 1 || r.columns() != 1 || r[0][0].is_null()) return Lsn();
  return Lsn::parse(r[0][0].c_str(), "lsn");
}

// ---- the read path on libpq directly ----
//
// query() runs its statement (and the observed-LSN query of a Monotonic/Causal read) with
// libpq's synchronous calls on the pooled connection's PGconn (detail::raw_connection), not
// through a libpqxx transaction object: that setup and teardown, and converting a pqxx::result,
// cost about a third of a point select's client time. Invariant: no libpqxx transaction object
// is open on the connection while query() uses its PGconn (query() never creates one, and a
// Lease is used by one call at a time), so libpqxx is not in the middle of anything on it; each
// libpq call returns with the connection idle or broken (or, after a COPY, not idle: such a
// connection is never pooled, see Deadline::answered), never with a query in progress. The
// errors map exactly as libpqxx's did (see raw_exec). The watchdog cuts a blocked PQexec or
// PQexecParams the same way it cut libpqxx's (which runs the same calls): shutdown() of the
// socket makes libpq's recv() see end of file (or send() fail), libpq marks the connection
// CONNECTION_BAD and the call returns, which raw_exec reports as a lost connection.

// The connection was lost (libpq reports it bad, or the server's error ended the session):
// handled like pqxx::broken_connection.
struct RawLost : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// Any other libpq failure without a server error (no result: out of memory; an unexpected
// result status): handled like pqxx::failure.
struct RawFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Owns a PGresult: PQclear on every path.
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
  const PGresult* get() const noexcept { return r_; }

 private:
  PGresult* r_;
};

// Runs `sql` on `conn` (PQexec without parameters: simple protocol, several statements allowed,
// as libpqxx's exec(); PQexecParams with text parameters otherwise, nullptr for NULL) and maps
// the outcome as libpqxx 6.4 did: a connection libpq no longer reports OK is lost whatever the
// result says (connection_base::check_result); no result is a failure; an error result throws
// QueryError with the server's message and SQLSTATE (libpqxx's class-40 exceptions carried
// the same SQLSTATE once restored by to_query_error), except a class-08 or 57P one, which ended
// the session (lost_connection_as_broken). Empty query, command, tuples and COPY results pass.
PgResult raw_exec(PGconn* conn, const std::string& sql, const Params& params) {
  if (conn == nullptr) throw RawLost("no connection");
  PGresult* r = nullptr;
  if (params.empty()) {
    r = PQexec(conn, sql.c_str());
  } else {
    constexpr std::size_t kOnStack = 8;
    const char* on_stack[kOnStack];
    std::vector<const char*> on_heap;
    const char** values = on_stack;
    if (params.size() > kOnStack) {
      on_heap.resize(params.size());
      values = on_heap.data();
    }
    for (std::size_t k = 0; k < params.size(); ++k) values[k] = params[k] ? params[k]->c_str() : nullptr;  // NULL
    r = PQexecParams(conn, sql.c_str(), static_cast<int>(params.size()), nullptr, values, nullptr, nullptr, 0);
  }
  PgResult result(r);
  if (PQstatus(conn) != CONNECTION_OK) throw RawLost(trimmed(PQerrorMessage(conn)));
  if (r == nullptr) throw RawFailure(trimmed(PQerrorMessage(conn)));
  switch (PQresultStatus(r)) {
    case PGRES_EMPTY_QUERY:
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_COPY_OUT:
    case PGRES_COPY_IN:
      return result;
    case PGRES_BAD_RESPONSE:
    case PGRES_NONFATAL_ERROR:
    case PGRES_FATAL_ERROR: {
      const char* field = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      std::string state = field != nullptr ? field : "";
      std::string message = trimmed(PQresultErrorMessage(r));
      if (ends_session(state)) throw RawLost(message);
      throw QueryError(message, std::move(state));
    }
    default:
      throw RawFailure("unexpected result status " + std::string(PQresStatus(PQresultStatus(r))));
  }
}

void fill(QueryResult& out, const PGresult* r) {
  const int columns = PQnfields(r);
  const int rows = PQntuples(r);
  out.columns.reserve(static_cast<std::size_t>(columns));
  out.type_oids.reserve(static_cast<std::size_t>(columns));
  for (int c = 0; c < columns; ++c) {
    out.columns.emplace_back(PQfname(r, c));
    out.type_oids.push_back(static_cast<std::uint32_t>(PQftype(r, c)));
  }
  out.rows.resize(static_cast<std::size_t>(rows));
  for (int t = 0; t < rows; ++t) {
    auto& values = out.rows[static_cast<std::size_t>(t)];
    values.reserve(static_cast<std::size_t>(columns));
    for (int c = 0; c < columns; ++c) {
      if (PQgetisnull(r, t, c)) {
        values.emplace_back(std::nullopt);
      } else {
        values.emplace_back(std::in_place, PQgetvalue(r, t, c), static_cast<std::size_t>(PQgetlength(r, t, c)));
      }
    }
  }
  const char* affected = PQcmdTuples(const_cast<PGresult*>(r));  // as pqxx::result::affected_rows()
  out.affected_rows = affected[0] != '\0' ? std::strtoll(affected, nullptr, 10) : 0;
}

Lsn lsn_of(const PGresult* r) {
  if (PQntuples(r) != 1 || PQnfields(r) != 1 || PQgetisnull(r, 0, 0)) return Lsn();
  return Lsn::parse(PQgetvalue(r, 0, 0), "lsn");
}

}  // namespace

struct ReplicatedDatabase::Impl {
  DatabaseOptions options;
  std::int64_t acquire_timeout_ns = 0;  // options.acquire_timeout_ms
  std::int64_t query_timeout_ns = 0;    // options.statement_timeout_ms + query_grace_ms
  std::vector<NodeConfig> configs;  // by topology index
  std::shared_ptr<Topology> topology;
  std::shared_ptr<LagTracker> tracker;
  std::shared_ptr<Router> router;
  // Declared before the pools: destroyed after them, as every pooled connection detaches its
  // watchdog entry when it is closed.
  detail::Watchdog watchdog;
  std::vector<std::unique_ptr<detail::Pool>> pools;  // by topology index
  std::unique_ptr<detail::Prober> prober;
  std::atomic<bool> open{true};
  std::mutex close_mutex;  // serialises close()
  bool closed = false;     // guarded by close_mutex: close() has finished

  // Readers waiting for a replica to catch up sleep here; every probe wakes them.
  std::mutex probe_mutex;
  std::condition_variable probe_cv;
  std::uint64_t probe_generation = 0;

  struct Counters {
    std::atomic<std::uint64_t> writes{0}, reads{0}, replica_reads{0}, primary_reads{0}, retries{0},
        read_failures{0}, waits{0}, waits_served{0}, marked_down{0}, watchdog_fired{0};
  } counters;

  void check_open() const {
    if (!open.load(std::memory_order_acquire)) throw ConnectionError("the database was closed");
  }

  // A query's client-side deadline, armed while the call blocks in libpq.
  class Deadline {
   public:
    Deadline(Impl& impl, detail::Lease& conn) : impl_(impl), entry_(&conn.watch()) {
      impl.watchdog.arm(*entry_, conn->sock(),
                        now_ns() + impl.query_timeout_ns);
    }
    ~Deadline() { disarm(); }
    Deadline(const Deadline&) = delete;
    Deadline& operator=(const Deadline&) = delete;
    // True when the watchdog cut the connection.
    bool disarm() {
      if (entry_ != nullptr) {
        fired_ = impl_.watchdog.disarm(*entry_);
        if (fired_) impl_.counters.watchdog_fired.fetch_add(1, std::memory_order_relaxed);
        entry_ = nullptr;
      }
      return fired_;
    }
    // Disarms after the server answered (with an error, too): the connection may be reused
    // unless the watchdog cut it or it is not idle (a failed statement inside a transaction
    // block leaves it in an aborted transaction: closing it rolls that back).
    void answered(detail::Lease& conn) {
      if (!disarm()) conn.healthy();  // Pool::give_back pools it only when libpq reports it idle
    }

   private:
    Impl& impl_;
    detail::Watchdog::Entry* entry_;  // armed; nullptr once disarmed
    bool fired_ = false;
  };

  // "primary 'p' is down (last probe: <libpq's message>)".
  std::string primary_down_message() const {
    const int p = topology->primary();
    std::string out = "primary '" + topology->name(p) + "' is down";
    const std::string error = prober ? prober->state(p).last_error : std::string();
    if (!error.empty()) out += " (last probe: " + error + ")";  // the prober stores it trimmed
    return out;
  }

  void mark_down(int node) {
    if (topology->flags(node) & ::replikit::detail::kUpBit) {
      topology->set_up(topology->name(node), false);
      counters.marked_down.fetch_add(1, std::memory_order_relaxed);
    }
    pools[static_cast<std::size_t>(node)]->drop_idle();
  }

  // A pooled connection to `node`. A node that cannot be connected to is marked down (nothing
  // was sent to it); a TimeoutError (the pool stayed exhausted) says nothing about the node.
  // For a write, and for any call on the primary, every idle connection's socket is checked
  // first: a write sent on a connection the server already closed would end in CommitUnknown,
  // and a read that lost its connection to the primary marks the primary down (failing writes
  // until its next probe) and is not retried there (R7). A read on a replica skips the check
  // (a poll() per call) on connections idle for less than kReadIdleCheckNs: if one died since,
  // the read fails over like after any lost connection.
  detail::Lease acquire(int node, bool write) {
    const bool check_all = write || node == topology->primary();
    try {
      return pools[static_cast<std::size_t>(node)]->acquire(now_ns() + acquire_timeout_ns,
                                                            options.acquire_timeout_ms,
                                                            check_all ? 0 : detail::kReadIdleCheckNs);
    } catch (const ConnectionError&) {
      if (open.load(std::memory_order_acquire)) mark_down(node);  // a closed pool says nothing about the node
      throw;
    }
  }

  // After a lost connection: disarms `deadline` and marks `node` down, unless the watchdog cut
  // the connection (a query that outran its deadline says nothing about the node's health).
  // True when the watchdog cut it.
  bool lost(Deadline& deadline, int node) {
    const bool cut = deadline.disarm();
    if (!cut) mark_down(node);
    return cut;
  }

  // Rethrows the pqxx exception being handled as its replikit error, for the failures that
  // mean the same on every path: an error the server answered with (the connection stays
  // usable), a rollback, any other libpqxx failure, and bad SQL (`sql_argument`) or
  // parameters. Settles `deadline` first. Lost
  // connections and commits in doubt are the caller's to handle before this; any other
  // exception is rethrown as it is. Call only from a catch block.
  [[noreturn]] static void rethrow_mapped(Deadline& deadline, detail::Lease& conn, const std::string& node,
                                          const char* sql_argument) {
    try {
      throw;
    } catch (const pqxx::sql_error& e) {
      deadline.answered(conn);
      throw to_query_error(e);
    } catch (const pqxx::transaction_rollback& e) {
      deadline.answered(conn);
      throw to_query_error(e);
    } catch (const pqxx::failure& e) {
      deadline.disarm();
      throw Error("node '" + node + "': " + trimmed(e.what()));
    } catch (const pqxx::usage_error& e) {
      deadline.disarm();
      throw InvalidArgument(sql_argument, trimmed(e.what()));
    } catch (const pqxx::argument_error& e) {
      deadline.disarm();
      throw InvalidArgument("params", trimmed(e.what()));
    }
  }

  ReadOptions read_options(const QueryOptions& q) const {
    ReadOptions ro;
    ro.max_staleness_ms = q.max_staleness_ms;
    if (!q.region.empty()) {
      ro.region = topology->region_id(q.region);
      if (ro.region == kNoNode) require(false, "region", "no node is in region '" + q.region + "'");
    }
    return ro;
  }

  // Routes a read; with NoReplicaCaughtUp waits (bounded) for a probe showing a replica that
  // covers the session, then falls back to what the router says.
  Decision route(const Session& session, const QueryOptions& q, double* waited_ms, bool may_wait = true) {
    const ReadOptions ro = read_options(q);
    Decision d = router->route_read(session, q.consistency, session_now_ns(), ro);
    const double wait_ms = q.wait_for_replica_ms >= 0 ? q.wait_for_replica_ms : options.wait_for_replica_ms;
    if (d.reason != Reason::NoReplicaCaughtUp || wait_ms <= 0 || !may_wait) return d;
    counters.waits.fetch_add(1, std::memory_order_relaxed);
    const std::int64_t start = now_ns();
    const std::int64_t deadline = start + ms_to_ns(wait_ms);
    std::unique_lock<std::mutex> lock(probe_mutex);
    // Bounded by the deadline: each pass waits for the next probe or the deadline.
    while (true) {
      const std::int64_t now = now_ns();
      if (now >= deadline || !open.load(std::memory_order_acquire)) break;
      const std::uint64_t seen = probe_generation;
      // Probe the replicas now instead of at their next period: catching up usually takes
      // far less than a probe interval on a healthy replica.
      if (prober) prober->expedite();
      probe_cv.wait_for(lock, std::chrono::nanoseconds(deadline - now), [&] { return probe_generation != seen; });
      lock.unlock();
      d = router->route_read(session, q.consistency, session_now_ns(), ro);
      lock.lock();
      if (d.reason != Reason::NoReplicaCaughtUp) break;
    }
    *waited_ms = static_cast<double>(now_ns() - start) / 1e6;
    if (!d.to_primary()) counters.waits_served.fetch_add(1, std::memory_order_relaxed);
    return d;
  }

  void on_probe(int node, bool ok) {
    if (!ok) pools[static_cast<std::size_t>(node)]->drop_idle();
    {
      std::lock_guard<std::mutex> lock(probe_mutex);
      ++probe_generation;
    }
    probe_cv.notify_all();
  }
};

ReplicatedDatabase::ReplicatedDatabase(NodeConfig primary, std::vector<NodeConfig> replicas, DatabaseOptions options)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  check_options(options);
  m.options = std::move(options);
  m.acquire_timeout_ns = ms_to_ns(m.options.acquire_timeout_ms);
  m.query_timeout_ns = ms_to_ns(m.options.statement_timeout_ms + m.options.query_grace_ms);
  auto spec = [](const NodeConfig& c) {
    NodeSpec s;
    s.name = c.name;
    s.region = c.region;
    s.weight = c.weight;
    s.priority = c.priority;
    s.up = true;
    return s;
  };
  std::vector<NodeSpec> replica_specs;
  for (const auto& r : replicas) replica_specs.push_back(spec(r));
  m.topology = std::make_shared<Topology>(spec(primary), std::move(replica_specs));
  m.tracker = std::make_shared<LagTracker>(m.topology, m.options.lag);
  m.router = std::make_shared<Router>(m.topology, m.options.router);

  m.configs.resize(static_cast<std::size_t>(m.topology->size()));
  m.configs[static_cast<std::size_t>(m.topology->index_of(primary.name))] = primary;
  for (const auto& r : replicas) m.configs[static_cast<std::size_t>(m.topology->index_of(r.name))] = r;

  const long connect_s = std::max<long>(2, std::lround(std::ceil(m.options.connect_timeout_ms / 1000.0)));
  const std::vector<std::pair<std::string, std::string>> defaults = {
      {"connect_timeout", std::to_string(connect_s)},
      {"tcp_user_timeout", std::to_string(std::llround(m.options.tcp_user_timeout_ms))},
      {"keepalives", "1"},
      {"keepalives_idle", "5"},
      {"keepalives_interval", "1"},
      {"keepalives_count", "3"},
      {"application_name", "replikit"},
  };
  std::vector<std::string> probe_conninfos;
  for (const auto& c : m.configs) {
    require(!c.dsn.empty(), "dsn", "node '" + c.name + "' has an empty DSN");
    // A DSN's connect_timeout=0 (libpq: forever) would let a pool connect hang: replaced.
    std::string user = detail::build_conninfo(
        c.name, c.dsn, defaults, "-c statement_timeout=" + std::to_string(std::llround(m.options.statement_timeout_ms)),
        {"connect_timeout"});
    std::string probe = detail::build_conninfo(
        c.name, c.dsn, {{"application_name", "replikit_prober"}},
        "-c statement_timeout=" + std::to_string(std::llround(m.options.probe_timeout_ms)));
    m.pools.push_back(std::make_unique<detail::Pool>(c.name, user, m.options.pool_size, &m.watchdog));
    probe_conninfos.push_back(std::move(probe));
  }
  detail::ProberConfig pc;
  pc.interval_ns = ms_to_ns(m.options.probe_interval_ms);
  pc.probe_timeout_ns = ms_to_ns(m.options.probe_timeout_ms);
  pc.connect_timeout_ns = ms_to_ns(m.options.connect_timeout_ms);
  Impl* raw = impl_.get();
  m.prober = std::make_unique<detail::Prober>(pc, m.topology, m.tracker, std::move(probe_conninfos), &m.watchdog,
                                              [raw](int node, bool ok) { raw->on_probe(node, ok); });
  m.prober->start();
}

ReplicatedDatabase::~ReplicatedDatabase() { close(); }

void ReplicatedDatabase::close() {
  Impl& m = *impl_;
  // One caller closes; concurrent callers wait here until it has, then return.
  std::lock_guard<std::mutex> closing(m.close_mutex);
  if (m.closed) return;
  m.open.store(false, std::memory_order_release);
  // Refuse new connections and wake waiters first (acquire and the wait for a replica end with
  // ConnectionError), then stop the prober: it keeps cutting the deadlines of calls in flight
  // until the last one returned, so none of them can hang on a server that stopped answering.
  for (auto& p : m.pools) p->close();
  {
    std::lock_guard<std::mutex> lock(m.probe_mutex);
    ++m.probe_generation;
  }
  m.probe_cv.notify_all();
  if (m.prober) m.prober->stop();
  m.closed = true;
}

bool ReplicatedDatabase::is_open() const noexcept { return impl_->open.load(std::memory_order_acquire); }

std::int64_t ReplicatedDatabase::now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::int64_t ReplicatedDatabase::wall_clock_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

QueryResult ReplicatedDatabase::execute(Session& session, const std::string& sql, const Params& params) {
  Impl& m = *impl_;
  m.check_open();
  require(!sql.empty(), "sql", "must not be empty");
  Decision d = m.router->route_write();
  if (d.node == kNoNode) {
    throw ConnectionError(m.primary_down_message() + ": the write was not sent");
  }
  const std::string node = m.topology->name(d.node);
  Router::InFlight in_flight(*m.router, d.node);
  detail::Lease conn = m.acquire(d.node, /*write=*/true);
  QueryResult out;
  out.node = node;
  out.reason = Reason::Write;
  m.counters.writes.fetch_add(1, std::memory_order_relaxed);
  bool written = false;
  Impl::Deadline deadline(m, conn);
  try {
    lost_connection_as_broken(*conn, [&] {
      pqxx::nontransaction tx(*conn);
      fill(out, run(tx, sql, params));
      // Autocommit: the statement committed when its result arrived, unless it opened a
      // transaction block (BEGIN) that it did not close.
      require_no_open_transaction(*conn, "sql");
      written = true;
      out.lsn = lsn_of(tx.exec(kInsertLsnSql));
      session.record_write(out.lsn, session_now_ns());
    });
    deadline.answered(conn);
  } catch (const pqxx::sql_error&) {
    if (!written) Impl::rethrow_mapped(deadline, conn, node, "sql");
    deadline.answered(conn);
    session.record_write(Lsn(), session_now_ns());  // the LSN query failed: the write stands, its LSN is unknown
    return out;
  } catch (const pqxx::broken_connection& e) {
    const bool cut = m.lost(deadline, d.node);
    if (written) {
      session.record_write(Lsn(), session_now_ns());
      return out;
    }
    throw CommitUnknown("node '" + node + "': " +
                        (cut ? "no answer within statement_timeout_ms + query_grace_ms"
                             : "connection lost during the write") +
                        "; it may or may not have committed: " + trimmed(e.what()));
  } catch (const pqxx::in_doubt_error& e) {
    const bool cut = m.lost(deadline, d.node);
    throw CommitUnknown("node '" + node + "': " +
                        (cut ? "no answer within statement_timeout_ms + query_grace_ms; " : std::string()) +
                        trimmed(e.what()));
  } catch (const pqxx::pqxx_exception&) {
    Impl::rethrow_mapped(deadline, conn, node, "sql");
  }
  return out;
}

std::vector<QueryResult> ReplicatedDatabase::transaction(Session& session, const std::vector<Statement>& statements) {
  Impl& m = *impl_;
  m.check_open();
  require(!statements.empty(), "statements", "must not be empty");
  for (const auto& s : statements) require(!s.sql.empty(), "statements", "a statement's sql is empty");
  Decision d = m.router->route_write();
  if (d.node == kNoNode) {
    throw ConnectionError(m.primary_down_message() + ": the transaction was not sent");
  }
  const std::string node = m.topology->name(d.node);
  Router::InFlight in_flight(*m.router, d.node);
  detail::Lease conn = m.acquire(d.node, /*write=*/true);
  m.counters.writes.fetch_add(1, std::memory_order_relaxed);
  std::vector<QueryResult> out;
  bool committed = false;
  Impl::Deadline deadline(m, conn);
  try {
    lost_connection_as_broken(*conn, [&] {
      {
        pqxx::work tx(*conn);
        for (std::size_t k = 0; k < statements.size(); ++k) {
          QueryResult r;
          r.node = node;
          r.reason = Reason::Write;
          fill(r, run(tx, statements[k].sql, statements[k].params));
          out.push_back(std::move(r));
          // A statement that ended the block itself (COMMIT, ROLLBACK) would leave the rest to
          // run in autocommit and our COMMIT to commit nothing: not one transaction any more.
          if (detail::transaction_status(*conn) != PQTRANS_INTRANS) {
            // What ran before it may have committed: keep the session's reads conservative.
            session.record_write(Lsn(), session_now_ns());
            throw InvalidArgument("statements", "statement " + std::to_string(k + 1) +
                                                    " ended the transaction block (COMMIT, ROLLBACK, ...); "
                                                    "transaction() commits by itself. The statements before "
                                                    "it may have committed or rolled back; none after it ran");
          }
        }
        tx.commit();
        committed = true;
      }
      pqxx::nontransaction tx(*conn);
      Lsn lsn = lsn_of(tx.exec(kInsertLsnSql));
      for (auto& r : out) r.lsn = lsn;
      session.record_write(lsn, session_now_ns());
    });
    deadline.answered(conn);
  } catch (const pqxx::in_doubt_error& e) {
    // As for a lost connection: a COMMIT the watchdog cut says nothing about the node's health.
    const bool cut = m.lost(deadline, d.node);
    throw CommitUnknown("node '" + node + "': " +
                        (cut ? "no answer to COMMIT within statement_timeout_ms + query_grace_ms"
                             : "connection lost during COMMIT") +
                        "; it may or may not have committed: " + trimmed(e.what()));
  } catch (const pqxx::sql_error&) {
    if (!committed) Impl::rethrow_mapped(deadline, conn, node, "statements");
    deadline.answered(conn);
    session.record_write(Lsn(), session_now_ns());  // the LSN query failed: the commit stands, its LSN is unknown
    return out;
  } catch (const pqxx::broken_connection& e) {
    const bool cut = m.lost(deadline, d.node);
    if (committed) {
      session.record_write(Lsn(), session_now_ns());
      return out;
    }
    // Lost before COMMIT was sent: the server rolls the transaction back.
    throw ConnectionError("node '" + node + "': " +
                          (cut ? "no answer within statement_timeout_ms + query_grace_ms"
                               : "connection lost before COMMIT") +
                          "; the transaction was rolled back: " + trimmed(e.what()));
  } catch (const pqxx::pqxx_exception&) {
    Impl::rethrow_mapped(deadline, conn, node, "statements");
  }
  return out;
}

QueryResult ReplicatedDatabase::query(Session& session, const std::string& sql, const Params& params,
                                      const QueryOptions& options) {
  Impl& m = *impl_;
  m.check_open();
  require(!sql.empty(), "sql", "must not be empty");
  require(options.wait_for_replica_ms < 0 || (std::isfinite(options.wait_for_replica_ms) &&
                                                     options.wait_for_replica_ms <= 60000),
                 "wait_for_replica_ms", "must be at most 60000 (negative: the database default)");
  const bool observe = options.consistency == Consistency::Monotonic || options.consistency == Consistency::Causal;
  m.counters.reads.fetch_add(1, std::memory_order_relaxed);
  std::string last_error;
  double waited_ms = 0;
  const int attempts = 1 + m.options.read_retries;
  bool lost_on_primary = false;
  for (int attempt = 1; attempt <= attempts; ++attempt) {
    if (attempt > 1) m.check_open();
    double waited_now = 0;
    Decision d = m.route(session, options, &waited_now, attempt == 1);  // retries do not wait again
    waited_ms += waited_now;
    if (lost_on_primary && d.to_primary()) {
      // The statement may have run on the primary before the connection broke; a retry there
      // could run it twice (query() is for reads, but a SELECT can call a function that writes).
      // Replicas are read-only, so retrying on one is safe.
      m.counters.read_failures.fetch_add(1, std::memory_order_relaxed);
      throw ConnectionError("read not retried on the primary after its connection was lost there; last error: " +
                            last_error);
    }
    if (d.node == kNoNode) {
      m.counters.read_failures.fetch_add(1, std::memory_order_relaxed);
      std::string why = std::string("no node can serve this read (") + to_string(d.reason) + "; " +
                        m.primary_down_message() + ")";
      if (!last_error.empty()) why += "; last error: " + last_error;
      throw ConnectionError(why);
    }
    if (attempt > 1) m.counters.retries.fetch_add(1, std::memory_order_relaxed);
    // Topology names live in fixed slots and never change: a reference, not a copy.
    const std::string& node = m.topology->name(d.node);
    Router::InFlight in_flight(*m.router, d.node);
    std::optional<detail::Lease> conn;
    try {
      conn.emplace(m.acquire(d.node, /*write=*/false));
    } catch (const ConnectionError& e) {
      last_error = e.what();  // the node was marked down: retry elsewhere
      continue;
    }
    // libpq directly (see raw_exec): no libpqxx transaction object is ever open on a leased
    // connection in query(), so libpqxx is not in the middle of anything on it.
    PGconn* const raw = detail::raw_connection(**conn);
    Impl::Deadline deadline(m, *conn);
    try {
      QueryResult out;
      out.node = node;
      out.reason = d.reason;
      out.attempts = attempt;
      out.waited_ms = waited_ms;
      fill(out, raw_exec(raw, sql, params).get());
      require_no_open_transaction(**conn, "sql");
      if (observe) {
        out.lsn = lsn_of(raw_exec(raw, kObservedLsnSql, {}).get());
        session.observe(out.lsn);
      }
      deadline.answered(*conn);
      (d.to_primary() ? m.counters.primary_reads : m.counters.replica_reads)
          .fetch_add(1, std::memory_order_relaxed);
      return out;
    } catch (const InvalidArgument&) {
      m.counters.read_failures.fetch_add(1, std::memory_order_relaxed);
      throw;
    } catch (const RawLost& e) {
      if (m.lost(deadline, d.node)) {
        // The watchdog cut a query that outran its deadline: a slow query would be as slow
        // elsewhere, and a frozen server is the prober's to mark down. No retry.
        m.counters.read_failures.fetch_add(1, std::memory_order_relaxed);
        throw TimeoutError("node '" + node + "': no answer within statement_timeout_ms + query_grace_ms (" +
                           std::to_string(std::llround(m.options.statement_timeout_ms + m.options.query_grace_ms)) +
                           " ms); the connection was closed");
      }
      last_error = "node '" + node + "': " + e.what();
      lost_on_primary = lost_on_primary || d.to_primary();
      continue;
    } catch (const QueryError&) {
      // The server answered: the connection may be reused (when idle and not cut).
      deadline.answered(*conn);
      m.counters.read_failures.fetch_add(1, std::memory_order_relaxed);
      throw;
    } catch (const RawFailure& e) {
      deadline.disarm();
      m.counters.read_failures.fetch_add(1, std::memory_order_relaxed);
      throw Error("node '" + node + "': " + e.what());
    }
  }
  m.counters.read_failures.fetch_add(1, std::memory_order_relaxed);
  throw ConnectionError("read failed on " + std::to_string(attempts) + " attempt(s); last error: " + last_error);
}

Route ReplicatedDatabase::route_read(const Session& session, const QueryOptions& options) {
  Impl& m = *impl_;
  m.check_open();
  Route out;
  Decision d = m.route(session, options, &out.waited_ms);
  out.node = d.node;
  out.node_name = d.node == kNoNode ? std::string() : m.topology->name(d.node);
  out.reason = d.reason;
  out.required_lsn = d.required_lsn;
  return out;
}

void ReplicatedDatabase::record_write(Session& session, Lsn commit_lsn) const {
  session.record_write(commit_lsn, session_now_ns());
}

void ReplicatedDatabase::mark_down(const std::string& name) { impl_->mark_down(impl_->topology->index_of(name, "name")); }

NodeStatus ReplicatedDatabase::node(const std::string& name) const {
  const Impl& m = *impl_;
  const int i = m.topology->index_of(name, "name");
  NodeInfo info = m.topology->info(i);
  detail::ProbeState p = m.prober->state(i);
  NodeStatus s;
  s.name = info.name;
  s.role = info.role;
  s.up = info.up;
  s.reachable = p.reachable;
  s.in_recovery = p.in_recovery;
  s.role_mismatch = p.role_mismatch;
  s.timeline = p.timeline;
  s.current_lsn = p.current_lsn;
  s.receive_lsn = p.receive_lsn;
  s.replay_lsn = p.replay_lsn;
  if (info.role == Role::Replica) {
    ReplicaLag lag = m.tracker->replica(i);
    s.lag_ns = lag.lag_ns;
    s.lag_bytes = lag.lag_bytes;
    s.lag_state = lag.state;
    s.lag_known = lag.known;
  }
  s.last_probe_ns = p.last_probe_ns;
  s.probe_rtt_ms = p.rtt_ms;
  s.probes_ok = p.probes_ok;
  s.probes_failed = p.probes_failed;
  s.last_error = p.last_error;
  s.pool_open = m.pools[static_cast<std::size_t>(i)]->open_count();
  s.pool_idle = m.pools[static_cast<std::size_t>(i)]->idle_count();
  return s;
}

std::vector<NodeStatus> ReplicatedDatabase::nodes() const {
  std::vector<NodeStatus> out;
  for (const NodeInfo& info : impl_->topology->nodes()) out.push_back(node(info.name));
  return out;
}

DatabaseStats ReplicatedDatabase::stats() const {
  const auto& c = impl_->counters;
  DatabaseStats s;
  s.writes = c.writes.load();
  s.reads = c.reads.load();
  s.reads_on_replicas = c.replica_reads.load();
  s.reads_on_primary = c.primary_reads.load();
  s.read_retries = c.retries.load();
  s.read_failures = c.read_failures.load();
  s.waits = c.waits.load();
  s.waits_served_by_replica = c.waits_served.load();
  s.nodes_marked_down = c.marked_down.load();
  s.watchdog_fired = c.watchdog_fired.load();
  return s;
}

bool ReplicatedDatabase::wait_probes(int count, double timeout_ms) const {
  require(count >= 1 && count <= 1000, "count", "must be in [1, 1000]");
  check_range(timeout_ms, 0, 3600000, "timeout_ms");
  return impl_->prober->wait_probes(count, ms_to_ns(timeout_ms));
}

std::string ReplicatedDatabase::dsn(const std::string& name) const {
  return impl_->configs[static_cast<std::size_t>(impl_->topology->index_of(name, "name"))].dsn;
}

const std::shared_ptr<Topology>& ReplicatedDatabase::topology() const noexcept { return impl_->topology; }
const std::shared_ptr<LagTracker>& ReplicatedDatabase::lag_tracker() const noexcept { return impl_->tracker; }
const std::shared_ptr<Router>& ReplicatedDatabase::router() const noexcept { return impl_->router; }
const DatabaseOptions& ReplicatedDatabase::options() const noexcept { return impl_->options; }

}  // namespace replikit::pg
