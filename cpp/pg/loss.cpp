// ReplicatedDatabase::lost_writes: a session's acknowledged writes judged by the current
// primary's commit log and the failover records (replikit_failover_history).
#include <cstdlib>
#include <map>

#include "database_impl.hpp"

namespace replikit::pg {

namespace {

using detail::Effect;
using detail::Failure;
using Impl = ReplicatedDatabase::Impl;

constexpr const char* kTimelineSql =
    "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int,"
    " to_regclass('replikit_failover_history') IS NOT NULL";
constexpr const char* kHistorySql = "SELECT timeline, next_xid::text FROM replikit_failover_history ORDER BY timeline";
constexpr const char* kStatusSql = "SELECT x::text, pg_xact_status(x) FROM unnest($1::xid8[]) x";

// For each write: the next xid of the first promotion after its timeline (0: no record).
std::uint64_t bound_for(const std::map<std::uint32_t, std::uint64_t>& history, std::uint32_t timeline) {
  const auto it = history.upper_bound(timeline);
  return it == history.end() ? 0 : it->second;
}

std::map<std::uint32_t, std::uint64_t> read_history(PGconn* conn) {
  std::map<std::uint32_t, std::uint64_t> out;
  const detail::PgResult r = detail::exec(conn, kHistorySql, {}, Effect::None);
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    const auto tli = static_cast<std::uint32_t>(std::strtoul(PQgetvalue(r.get(), i, 0), nullptr, 10));
    out[tli] = PQgetisnull(r.get(), i, 1) ? 0 : std::strtoull(PQgetvalue(r.get(), i, 1), nullptr, 10);
  }
  return out;
}

// pg_xact_status of each xid of `xids` (all below the new primary's next xid).
std::map<std::uint64_t, std::optional<std::string>> read_status(PGconn* conn, const std::vector<std::uint64_t>& xids) {
  std::map<std::uint64_t, std::optional<std::string>> out;
  if (xids.empty()) return out;
  std::string array = "{";
  for (std::size_t k = 0; k < xids.size(); ++k) array += (k ? "," : "") + std::to_string(xids[k]);
  array += "}";
  const detail::PgResult r = detail::exec(conn, kStatusSql, {array}, Effect::None);
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    const std::uint64_t x = std::strtoull(PQgetvalue(r.get(), i, 0), nullptr, 10);
    out[x] = PQgetisnull(r.get(), i, 1) ? std::nullopt : std::optional<std::string>(PQgetvalue(r.get(), i, 1));
  }
  return out;
}

void judge(const AckedWrites& acked, PGconn* conn, bool has_history, LossReport& out) {
  std::map<std::uint32_t, std::uint64_t> history;
  std::vector<std::uint64_t> ask;
  for (const AckedWrite& w : acked.writes()) {
    if (w.timeline == out.timeline) ++out.current;
  }
  const bool older = out.current < acked.writes().size();
  if (older && has_history) history = read_history(conn);
  for (const AckedWrite& w : acked.writes()) {
    const std::uint64_t bound = bound_for(history, w.timeline);
    if (w.timeline != out.timeline && w.xid != 0 && w.xid < bound) ask.push_back(w.xid);
  }
  const auto status = read_status(conn, ask);
  for (const AckedWrite& w : acked.writes()) {
    if (w.timeline == out.timeline) continue;
    const std::uint64_t bound = bound_for(history, w.timeline);
    const auto it = status.find(w.xid);
    const std::optional<std::string_view> st =
        it != status.end() && it->second ? std::optional<std::string_view>(*it->second) : std::nullopt;
    const WriteFate fate = w.timeline == 0 || bound == 0 ? WriteFate::Unknown : write_fate(w.xid, bound, st);
    if (fate == WriteFate::Survived) ++out.survived;
    if (fate == WriteFate::Lost) out.lost.push_back(w);
    if (fate == WriteFate::Unknown) out.unknown.push_back(w);
  }
}

}  // namespace

LossReport ReplicatedDatabase::lost_writes(const Session& session) { return impl_->lost_writes(session.acked_writes); }

LossReport ReplicatedDatabase::lost_writes() {
  AckedWrites all;
  {
    std::lock_guard<std::mutex> lock(impl_->acked_mutex);
    all = impl_->acked;
  }
  return impl_->lost_writes(all);
}

LossReport ReplicatedDatabase::Impl::lost_writes(const AckedWrites& writes) {
  Impl& m = *this;
  m.check_open();
  const int node = m.topology->primary();
  if (!(m.topology->flags(node) & ::replikit::detail::kUpBit)) {
    throw ConnectionError(m.primary_down_message() + ": cannot check lost writes");
  }
  LossReport out;
  out.primary = m.topology->name(node);
  out.dropped = writes.dropped();
  detail::Lease conn = m.acquire(node, /*write=*/false);
  Impl::Deadline deadline(m, conn);
  try {
    const detail::PgResult r = detail::exec(conn->get(), kTimelineSql, {}, Effect::None);
    out.timeline = static_cast<std::uint32_t>(std::strtoul(PQgetvalue(r.get(), 0, 0), nullptr, 10));
    judge(writes, conn->get(), std::string(PQgetvalue(r.get(), 0, 1)) == "t", out);
    deadline.answered(conn);
  } catch (const Failure& f) {
    if (f.kind() == detail::FailureKind::Server || f.kind() == detail::FailureKind::Usage) {
      deadline.answered(conn);
      throw QueryError(f.what(), f.sqlstate());
    }
    m.lost(deadline, node, f.what());
    throw ConnectionError("node '" + out.primary + "': connection lost checking lost writes: " + f.what());
  }
  return out;
}

}  // namespace replikit::pg
