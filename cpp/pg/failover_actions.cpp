// The failover actions on PostgreSQL (replikit/pg/failover.hpp). Each opens its own connection
// with a client-side connect deadline (libpq's asynchronous connect) and a server-side
// statement_timeout, runs a few statements, and reports what it found and did.
#include <libpq-fe.h>
#include <poll.h>

#include <cctype>
#include <cstdio>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "classify.hpp"
#include "clock.hpp"
#include "conninfo.hpp"
#include "replikit/errors.hpp"
#include "replikit/pg/failover.hpp"

namespace replikit::pg {

namespace {

using detail::Effect;
using detail::Failure;

// libpq takes C strings: a NUL would cut a DSN or a value silently. An empty DSN means libpq's
// defaults (the local socket, port 5432): never what a failover action means.
void check_text(const std::string& value, const char* argument, bool required = true) {
  if (value.find('\0') != std::string::npos) throw InvalidArgument(argument, "holds a NUL character");
  if (required && value.empty()) throw InvalidArgument(argument, "must not be empty");
}

void check(const ActionOptions& o) {
  if (!(o.timeout_ms >= 1 && o.timeout_ms <= 600000)) throw InvalidArgument("timeout_ms", "must be in [1, 600000]");
}

// One connection of an action; PQfinish on destruction. Every wait is bounded by the action's
// timeout_ms on the client side: statement_timeout runs on the server, and a server that stopped
// answering (SIGSTOP, a hung host) would otherwise block a statement forever.
class ActionConn {
 public:
  ActionConn(const std::string& node, const std::string& dsn, const ActionOptions& o)
      : node_(node), timeout_ns_(detail::ms_to_ns(o.timeout_ms)) {
    check(o);
    check_text(node, "node");
    check_text(dsn, "dsn");
    const long ms = std::max(1L, static_cast<long>(o.timeout_ms));
    const std::string conninfo = detail::build_conninfo(
        node, dsn, {{"connect_timeout", "2"}, {"application_name", "replikit failover"}},
        "-c statement_timeout=" + std::to_string(ms), {"connect_timeout"});
    conn_ = PQconnectStart(conninfo.c_str());
    if (conn_ == nullptr) throw ConnectionError("node '" + node + "': cannot connect: out of memory");
    connect(detail::steady_now_ns() + detail::ms_to_ns(o.timeout_ms));
  }
  ~ActionConn() { PQfinish(conn_); }
  ActionConn(const ActionConn&) = delete;
  ActionConn& operator=(const ActionConn&) = delete;

  // The single text cell of `sql` (nullopt: NULL or no row); Failure on error.
  std::optional<std::string> scalar(const std::string& sql, const Params& params = {}) {
    const detail::PgResult r = exec(sql, params);
    if (PQntuples(r.get()) < 1 || PQnfields(r.get()) < 1 || PQgetisnull(r.get(), 0, 0)) return std::nullopt;
    return std::string(PQgetvalue(r.get(), 0, 0));
  }
  void run(const std::string& sql, const Params& params = {}) { exec(sql, params); }
  detail::PgResult query(const std::string& sql) {
    detail::PgResult r = exec(sql, {});
    if (PQntuples(r.get()) != 1) throw Failure(detail::FailureKind::Server, "expected one row");
    return r;
  }
  // `text` as an SQL literal, quoted by libpq for this server's settings.
  std::string literal(const std::string& text) {
    char* q = PQescapeLiteral(conn_, text.c_str(), text.size());
    if (q == nullptr) throw InvalidArgument("value", detail::trimmed(PQerrorMessage(conn_)));
    std::string out(q);
    PQfreemem(q);
    return out;
  }

 private:
  void connect(std::int64_t deadline_ns) {
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    // Bounded: each round waits for the socket until the deadline, which ends the loop.
    while (st != PGRES_POLLING_OK) {
      if (st == PGRES_POLLING_FAILED || PQstatus(conn_) == CONNECTION_BAD) {
        throw ConnectionError("node '" + node_ + "': cannot connect: " + detail::trimmed(PQerrorMessage(conn_)));
      }
      const std::int64_t left = deadline_ns - detail::steady_now_ns();
      if (left <= 0) throw TimeoutError("node '" + node_ + "': no connection within the action's timeout_ms");
      pollfd fd{PQsocket(conn_), static_cast<short>(st == PGRES_POLLING_READING ? POLLIN : POLLOUT), 0};
      const int ready = ::poll(&fd, 1, static_cast<int>(std::min<std::int64_t>(left / 1'000'000 + 1, 1000)));
      if (ready < 0) continue;
      if (ready > 0) st = PQconnectPoll(conn_);
    }
  }

  // `sql` (several statements allowed without parameters; text parameters otherwise), its last
  // result or its first error; TimeoutError when no answer came within timeout_ms.
  detail::PgResult exec(const std::string& sql, const Params& params) {
    if (sql.find('\0') != std::string::npos) throw Failure(detail::FailureKind::Usage, "the SQL holds a NUL character");
    std::vector<const char*> values;
    std::vector<Oid> types;
    std::vector<int> lengths, formats;
    for (const Param& p : params) {
      values.push_back(p.value ? p.value->data() : nullptr);
      types.push_back(static_cast<Oid>(p.type_oid));
      lengths.push_back(p.value ? static_cast<int>(p.value->size()) : 0);
      formats.push_back(p.binary ? 1 : 0);
    }
    const int sent = params.empty() ? PQsendQuery(conn_, sql.c_str())
                                    : PQsendQueryParams(conn_, sql.c_str(), static_cast<int>(values.size()),
                                                        types.data(), values.data(), lengths.data(), formats.data(), 0);
    if (sent == 0) throw *detail::classify(conn_, nullptr, Effect::None);
    const std::int64_t deadline_ns = detail::steady_now_ns() + timeout_ns_;
    std::optional<detail::PgResult> kept;
    // Bounded: every wait ends by the deadline, and libpq returns nullptr after the last result.
    for (;;) {
      wait_readable(deadline_ns);
      PGresult* r = PQgetResult(conn_);
      if (r == nullptr) break;
      if (!kept || PQresultStatus(kept->get()) != PGRES_FATAL_ERROR) {
        kept.emplace(r);
      } else {
        PQclear(r);
      }
    }
    if (!kept) kept.emplace(nullptr);
    if (std::optional<Failure> failure = detail::classify(conn_, kept->get(), Effect::None)) throw std::move(*failure);
    return std::move(*kept);
  }

  // Until libpq can return a result without blocking (or the connection broke).
  void wait_readable(std::int64_t deadline_ns) {
    while (PQisBusy(conn_) != 0) {
      const std::int64_t left = deadline_ns - detail::steady_now_ns();
      if (left <= 0) throw TimeoutError("node '" + node_ + "': no answer within the action's timeout_ms");
      pollfd fd{PQsocket(conn_), POLLIN, 0};
      const int ready = ::poll(&fd, 1, static_cast<int>(std::min<std::int64_t>(left / 1'000'000 + 1, 1000)));
      if (ready > 0 && PQconsumeInput(conn_) == 0) return;  // broken: PQgetResult says so
    }
  }

  std::string node_;
  std::int64_t timeout_ns_;
  PGconn* conn_ = nullptr;
};

// Runs `body` on a fresh connection and fills the timing and failure fields of the result.
template <typename Body>
ActionResult act(const char* action, const std::string& node, const std::string& dsn, const ActionOptions& o,
                 Body body) {
  ActionResult r;
  r.action = action;
  r.node = node;
  const std::int64_t t0 = detail::steady_now_ns();
  try {
    ActionConn c(node, dsn, o);
    body(c, r);
    r.ok = true;
  } catch (const Failure& f) {
    r.detail = f.what();
  } catch (const Error& e) {
    if (dynamic_cast<const InvalidArgument*>(&e) != nullptr) throw;
    r.detail = e.what();
  }
  r.elapsed_ms = static_cast<double>(detail::steady_now_ns() - t0) / 1e6;
  return r;
}

constexpr const char* kFenceSql =
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
    " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()";

constexpr const char* kStateSql =
    "SELECT pg_is_in_recovery(),"
    " CASE WHEN pg_is_in_recovery() THEN greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())"
    " ELSE pg_current_wal_lsn() END, pg_last_wal_replay_lsn(),"
    " CASE WHEN pg_is_in_recovery() THEN coalesce((SELECT received_tli FROM pg_stat_wal_receiver),"
    " (SELECT timeline_id FROM pg_control_checkpoint()))"
    " ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,"
    " current_setting('synchronous_standby_names'), current_setting('default_transaction_read_only'),"
    " (SELECT string_agg(application_name, ',') FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum')),"
    " (SELECT string_agg(application_name, ',') FROM pg_stat_replication WHERE state = 'streaming')";

Lsn lsn_text(const char* text) {
  try {
    return text != nullptr && *text != '\0' ? Lsn::parse(text) : Lsn();
  } catch (const Error&) {
    return Lsn();
  }
}

std::vector<std::string> split_names(const char* text) {
  std::vector<std::string> out;
  std::string cur;
  for (const char* p = text; p != nullptr && *p != '\0'; ++p) {
    if (*p == ',') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(*p);
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

}  // namespace

NodeState read_node_state(const std::string& node, const std::string& dsn, const ActionOptions& options) {
  NodeState st;
  ActionResult r = act("read", node, dsn, options, [&](ActionConn& c, ActionResult&) {
    const detail::PgResult res = c.query(kStateSql);
    const PGresult* q = res.get();
    const auto text = [&](int col) { return PQgetisnull(q, 0, col) ? "" : PQgetvalue(q, 0, col); };
    st.in_recovery = std::string(text(0)) == "t";
    st.lsn = lsn_text(text(1));
    st.replay_lsn = lsn_text(text(2));
    st.timeline = static_cast<std::uint32_t>(std::strtoul(text(3), nullptr, 10));
    st.synchronous_standby_names = text(4);
    st.synchronous_mode = !st.synchronous_standby_names.empty();
    st.read_only = std::string(text(5)) == "on";
    st.synchronous_now = split_names(text(6));
    st.streaming_now = split_names(text(7));
  });
  st.reachable = r.ok;
  st.error = r.detail;
  return st;
}

ActionResult unfence_node(const std::string& node, const std::string& dsn, bool read_only,
                          const std::string& synchronous_standby_names, const ActionOptions& options) {
  check_text(synchronous_standby_names, "synchronous_standby_names", false);
  return act("unfence", node, dsn, options, [&](ActionConn& c, ActionResult& r) {
    c.run(std::string("ALTER SYSTEM SET default_transaction_read_only = ") + (read_only ? "on" : "off"));
    c.run("ALTER SYSTEM SET synchronous_standby_names = " + c.literal(synchronous_standby_names));
    c.run("SELECT pg_reload_conf()");
    r.changed = true;
    r.detail = "settings restored";
  });
}

ActionResult fence_node(const std::string& node, const std::string& dsn, const ActionOptions& options) {
  return act("fence", node, dsn, options, [](ActionConn& c, ActionResult& r) {
    const bool read_only = c.scalar("SHOW default_transaction_read_only") == std::optional<std::string>("on");
    const bool parked = c.scalar("SHOW synchronous_standby_names") == std::optional<std::string>(kFencedStandby);
    if (!read_only || !parked) {
      c.run("ALTER SYSTEM SET default_transaction_read_only = on");
      c.run("ALTER SYSTEM SET synchronous_standby_names = " + c.literal(kFencedStandby));
      c.run("SELECT pg_reload_conf()");
      r.changed = true;
    }
    // Sessions opened before the reload keep writing until they read the new settings: end them.
    const auto ended = c.scalar("SELECT count(*) FROM (" + std::string(kFenceSql) + ") t");
    r.detail = std::string(r.changed ? "set read-only" : "already read-only") + "; " + ended.value_or("0") +
               " client backend(s) terminated";
  });
}

ActionResult set_synchronous(const std::string& node, const std::string& dsn, const std::string& names,
                             const ActionOptions& options) {
  check_text(names, "names", false);
  return act("synchronous", node, dsn, options, [&](ActionConn& c, ActionResult& r) {
    if (c.scalar("SHOW synchronous_standby_names") != std::optional<std::string>(names)) {
      c.run("ALTER SYSTEM SET synchronous_standby_names = " + c.literal(names));
      c.run("SELECT pg_reload_conf()");
      r.changed = true;
    }
    r.detail = "synchronous_standby_names " + std::string(r.changed ? "set to '" : "already '") + names + "'";
  });
}

std::optional<std::uint64_t> next_xid_bound(const std::string& node, const std::string& dsn,
                                            const ActionOptions& options) {
  try {
    ActionConn c(node, dsn, options);
    const std::int64_t deadline = detail::steady_now_ns() + detail::ms_to_ns(options.timeout_ms);
    // Bounded by the deadline: wait for the replay of what was received (a dead primary sends
    // nothing more), so that the xmax covers every transaction this node will ever know of.
    for (;;) {
      if (c.scalar("SELECT pg_is_in_recovery()") != std::optional<std::string>("t")) return std::nullopt;
      const auto done = c.scalar(
          "SELECT pg_last_wal_receive_lsn() IS NULL OR pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn()");
      if (done == std::optional<std::string>("t") || detail::steady_now_ns() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    const auto xmax = c.scalar("SELECT pg_snapshot_xmax(pg_current_snapshot())");
    if (!xmax) return std::nullopt;
    return std::strtoull(xmax->c_str(), nullptr, 10);
  } catch (const Failure&) {
    return std::nullopt;
  } catch (const ConnectionError&) {
    return std::nullopt;
  } catch (const TimeoutError&) {
    return std::nullopt;
  }
}

ActionResult promote_node(const std::string& node, const std::string& dsn, const ActionOptions& options,
                          std::uint32_t* timeline) {
  ActionResult r = act("promote", node, dsn, options, [&](ActionConn& c, ActionResult& out) {
    if (c.scalar("SELECT pg_is_in_recovery()") == std::optional<std::string>("t")) {
      const int wait_s = std::max(1, static_cast<int>(options.timeout_ms / 1000));
      const auto done = c.scalar("SELECT pg_promote(wait => true, wait_seconds => " + std::to_string(wait_s) + ")");
      if (done != std::optional<std::string>("t")) throw Failure(detail::FailureKind::Server, "pg_promote did not finish");
      out.changed = true;
    }
    const auto tli = c.scalar("SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int");
    if (timeline != nullptr) *timeline = tli ? static_cast<std::uint32_t>(std::strtoul(tli->c_str(), nullptr, 10)) : 0;
    out.detail = std::string(out.changed ? "promoted" : "already primary") + " on timeline " + tli.value_or("?");
  });
  return r;
}

ActionResult create_slot(const std::string& node, const std::string& dsn, const std::string& slot,
                         const ActionOptions& options) {
  check_text(slot, "slot");
  return act("create_slot", node, dsn, options, [&](ActionConn& c, ActionResult& r) {
    const auto made = c.scalar(
        "SELECT count(pg_create_physical_replication_slot($1, true)) FROM (SELECT 1) s"
        " WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
        {slot});
    r.changed = made == std::optional<std::string>("1");
    r.detail = "slot '" + slot + (r.changed ? "' created" : "' exists");
  });
}

ActionResult repoint_node(const std::string& node, const std::string& dsn, const std::string& primary_conninfo,
                          const std::string& slot, const ActionOptions& options) {
  check_text(primary_conninfo, "primary_conninfo");
  check_text(slot, "slot");
  return act("repoint", node, dsn, options, [&](ActionConn& c, ActionResult& r) {
    if (c.scalar("SELECT pg_is_in_recovery()") != std::optional<std::string>("t")) {
      throw Failure(detail::FailureKind::Server, "not a standby (not in recovery): it needs pg_rewind, not a repoint");
    }
    const bool same = c.scalar("SHOW primary_conninfo") == std::optional<std::string>(primary_conninfo) &&
                      c.scalar("SHOW primary_slot_name") == std::optional<std::string>(slot);
    if (!same) {
      // ALTER SYSTEM takes no parameters: every value goes in as a literal quoted by libpq.
      c.run("ALTER SYSTEM SET primary_conninfo = " + c.literal(primary_conninfo));
      c.run("ALTER SYSTEM SET primary_slot_name = " + c.literal(slot));
      c.run("SELECT pg_reload_conf()");
      r.changed = true;
    }
    r.detail = std::string(same ? "already streams from" : "repointed to") + " the new primary, slot '" + slot + "'";
  });
}

ActionResult record_failover(const std::string& node, const std::string& dsn, std::uint32_t timeline,
                             std::uint64_t next_xid, const ActionOptions& options) {
  return act("record", node, dsn, options, [&](ActionConn& c, ActionResult& r) {
    // The new primary may be synchronous already while its standbys are still being repointed.
    c.run("SET synchronous_commit = local");
    c.run("CREATE TABLE IF NOT EXISTS replikit_failover_history (timeline integer PRIMARY KEY,"
          " promoted text NOT NULL, next_xid xid8, at timestamptz NOT NULL DEFAULT now())");
    const auto n = c.scalar(
        "WITH i AS (INSERT INTO replikit_failover_history (timeline, promoted, next_xid)"
        " VALUES ($1::integer, $2, NULLIF($3, '0')::xid8) ON CONFLICT (timeline) DO NOTHING RETURNING 1)"
        " SELECT count(*) FROM i",
        {std::to_string(timeline), node, std::to_string(next_xid)});
    r.changed = n == std::optional<std::string>("1");
    r.detail = "timeline " + std::to_string(timeline) + (r.changed ? " recorded" : " was recorded");
  });
}

std::optional<std::string> read_timeline_history(const std::string& node, const std::string& dsn,
                                                 std::uint32_t timeline, const ActionOptions& options) {
  char file[32];
  std::snprintf(file, sizeof file, "pg_wal/%08X.history", timeline);
  std::optional<std::string> text;
  const ActionResult r = act("read_history", node, dsn, options, [&](ActionConn& c, ActionResult&) {
    text = c.scalar("SELECT pg_read_file($1)", {std::string(file)});
  });
  return r.ok ? text : std::nullopt;
}

std::string standby_conninfo(const std::string& primary_dsn, const std::string& application_name) {
  check_text(primary_dsn, "primary_dsn");
  check_text(application_name, "application_name");
  try {
    // A keyword given twice: libpq keeps the last value, so the standby's name wins.
    std::string out = detail::build_conninfo(application_name, primary_dsn, {}, "");
    out += " application_name='";
    for (char ch : application_name) {
      if (ch == '\\' || ch == '\'') out.push_back('\\');
      out.push_back(ch);
    }
    return out + "'";
  } catch (const ConnectionError& e) {
    throw InvalidArgument("primary_dsn", e.what());
  }
}

std::string slot_name(const std::string& node) {
  std::string s;
  for (char ch : node) {
    const unsigned char u = static_cast<unsigned char>(ch);
    s.push_back(std::isalnum(u) ? static_cast<char>(std::tolower(u)) : '_');
    if (s.size() == 63) break;
  }
  return s.empty() ? std::string("replikit") : s;
}

}  // namespace replikit::pg
