// SimConfig validation, names, the simple failover model and result helpers.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "replikit/errors.hpp"
#include "replikit/sim/config.hpp"
#include "replikit/sim/failover_model.hpp"
#include "replikit/sim/result.hpp"

namespace replikit::sim {

namespace {

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

void check_ms(double v, const char* argument, double lo, double hi) {
  require(std::isfinite(v), argument, "must be a finite number");
  require(v >= lo && v <= hi, argument, "must be in [" + number(lo) + ", " + number(hi) + "], got " + number(v));
}

void check_int(long long v, const char* argument, long long lo, long long hi) {
  require(v >= lo && v <= hi, argument,
          "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + std::to_string(v));
}

void check_run_lags(const SimConfig& c, const std::vector<std::vector<double>>& lags, const char* argument) {
  require(lags.empty() || lags.size() == static_cast<std::size_t>(c.replicas) + 1, argument,
          "must be empty or hold one list per node (" + std::to_string(c.replicas + 1) + ")");
  for (const auto& node : lags) {
    require(!node.empty() && node.size() <= kLatencyMaxSamples, argument,
            "each node's list must hold 1.." + std::to_string(kLatencyMaxSamples) + " lags");
    for (double v : node) check_ms(v, argument, 0, kMaxDurationMs);
  }
}

void check_rounds(const SimConfig& c, const std::vector<std::vector<double>>& rounds, const char* argument) {
  require(rounds.size() <= kLatencyMaxSamples, argument, "must hold at most " + std::to_string(kLatencyMaxSamples) + " rounds");
  require(rounds.empty() || !c.probe_run_lags_ms.empty(), argument, "needs probe_run_lags_ms (the nodes' own lags)");
  for (const auto& round : rounds) {
    require(round.size() == static_cast<std::size_t>(c.replicas) + 1, argument,
            "each round must hold one lag per node (" + std::to_string(c.replicas + 1) + ")");
    for (double v : round) check_ms(v, argument, -kMaxDurationMs, kMaxDurationMs);
  }
}

void check_workload(const SimConfig& c) {
  check_ms(c.duration_ms, "duration_ms", 0, kMaxDurationMs);
  require(c.duration_ms > 0, "duration_ms", "must be positive");
  check_ms(c.write_rate_per_s, "write_rate_per_s", 0, kMaxRatePerSecond);
  check_ms(c.read_rate_per_s, "read_rate_per_s", 0, kMaxRatePerSecond);
  check_int(c.sessions, "sessions", 1, kMaxSessions);
  double sum = 0;
  for (double w : c.consistency_mix) {
    require(std::isfinite(w) && w >= 0, "consistency_mix", "weights must be finite and >= 0");
    sum += w;
  }
  require(sum > 0 || c.read_rate_per_s == 0, "consistency_mix", "weights must not all be 0");
  check_ms(c.max_staleness_ms, "max_staleness_ms", 0, kMaxDurationMs);
  check_ms(c.read_back_share, "read_back_share", 0, 1);
  check_ms(c.read_back_delay_ms, "read_back_delay_ms", 0, kMaxDurationMs);
  require(static_cast<int>(c.read_back_consistency) < kLevels, "read_back_consistency", "unknown consistency");
  require(c.read_back_consistency != Consistency::BoundedStaleness || c.max_staleness_ms >= 0,
          "read_back_consistency", "bounded staleness needs max_staleness_ms");
  check_int(c.write_size_bytes, "write_size_bytes", 1, 1ll << 30);
  check_int(c.commit_record_bytes, "commit_record_bytes", 1, c.write_size_bytes);
  check_ms(c.background_write_rate_per_s, "background_write_rate_per_s", 0, kMaxRatePerSecond);
  const double after = c.background_write_rate_after_crash_per_s;
  require(std::isfinite(after) && after <= kMaxRatePerSecond, "background_write_rate_after_crash_per_s",
          "must be a finite number <= " + number(kMaxRatePerSecond) + " (< 0: background_write_rate_per_s)");
}

void check_arrivals(const SimConfig& c, const std::vector<Arrival>& arrivals, const char* argument) {
  require(arrivals.size() <= kMaxArrivals, argument, "at most " + std::to_string(kMaxArrivals) + " arrivals");
  for (std::size_t i = 0; i < arrivals.size(); ++i) {
    const Arrival& a = arrivals[i];
    require(std::isfinite(a.at_ms) && a.at_ms >= 0 && a.at_ms < c.duration_ms, argument,
            "each arrival must be in [0, duration_ms)");
    require(i == 0 || a.at_ms >= arrivals[i - 1].at_ms, argument, "arrivals must be in time order");
    check_int(a.session, argument, 0, c.sessions - 1);
    require(static_cast<int>(a.level) < kLevels, argument, "unknown consistency level");
  }
}

void check_offsets(const SimConfig& c, const std::vector<double>& offsets, const char* argument) {
  require(offsets.empty() || offsets.size() == static_cast<std::size_t>(c.replicas) + 1, argument,
          "must be empty or list one offset per node (" + std::to_string(c.replicas + 1) + ")");
  for (double o : offsets) {
    require(std::isfinite(o) && o >= 0 && o < c.probe_interval_ms, argument, "each offset must be in [0, probe_interval_ms)");
  }
}

void check_capacity(const SimConfig& c) {
  check_int(c.replicas, "replicas", 0, kMaxReplicas);
  check_int(c.servers_per_node, "servers_per_node", 1, 100000);
  check_int(c.max_queue_length, "max_queue_length", 0, 100'000'000);
  check_ms(c.apply_rate_per_s, "apply_rate_per_s", 1e-6, kMaxRatePerSecond);
  require(static_cast<int>(c.mode) <= 3, "mode", "unknown replication mode");
  if (c.mode == ReplicationMode::SemiSync || c.mode == ReplicationMode::RemoteApply) {
    require(c.replicas >= 1, "mode", "semi_sync and remote_apply need at least one replica");
    check_int(c.sync_count, "sync_count", 1, c.replicas);
  }
  require(c.mode != ReplicationMode::Sync || c.replicas >= 1, "mode", "sync needs at least one replica");
  if (c.mode_after_promotion) {
    const ReplicationMode after = *c.mode_after_promotion;
    require(static_cast<int>(after) <= 3, "mode_after_promotion", "unknown replication mode");
    require(after == ReplicationMode::Async || c.replicas >= 1, "mode_after_promotion",
            "a synchronous mode needs at least one replica");
    if (after == ReplicationMode::SemiSync || after == ReplicationMode::RemoteApply) {
      check_int(c.sync_count, "sync_count", 1, c.replicas);
    }
  }
  check_ms(c.probe_interval_ms, "probe_interval_ms", 0.001, kMaxDurationMs);
  const auto mean_ok = [](const LatencyDistribution& d, const char* argument) {
    require(std::isfinite(d.mean_ms()), argument, "must have a finite mean");
  };
  mean_ok(c.read_service, "read_service");
  mean_ok(c.write_service, "write_service");
  mean_ok(c.client_latency, "client_latency");
  mean_ok(c.replica_latency, "replica_latency");
  if (c.replica_latency_after_crash) mean_ok(*c.replica_latency_after_crash, "replica_latency_after_crash");
  if (c.probe_latency) mean_ok(*c.probe_latency, "probe_latency");
  check_offsets(c, c.probe_offsets_ms, "probe_offsets_ms");
  check_offsets(c, c.probe_offsets_after_crash_ms, "probe_offsets_after_crash_ms");
}

void check_faults(const SimConfig& c) {
  require(std::isfinite(c.crash_primary_at_ms) && c.crash_primary_at_ms <= kMaxDurationMs, "crash_primary_at_ms",
          "must be a finite number (< 0: no crash)");
  for (const auto& p : c.pauses) {
    check_int(p.replica, "pauses", 1, c.replicas);
    check_ms(p.from_ms, "pauses", 0, kMaxDurationMs);
    check_ms(p.to_ms, "pauses", 0, kMaxDurationMs);
    require(p.to_ms > p.from_ms, "pauses", "a pause must end after it starts");
  }
  require(c.pauses.size() <= 10000, "pauses", "at most 10000 pauses");
  require(c.slow_replicas.size() <= static_cast<std::size_t>(kMaxReplicas), "slow_replicas", "too many entries");
  for (const auto& s : c.slow_replicas) {
    check_int(s.replica, "slow_replicas", 1, c.replicas);
    check_ms(s.factor, "slow_replicas", 1e-3, 1e6);
  }
  require(c.apply_delays.size() <= static_cast<std::size_t>(kMaxReplicas), "apply_delays", "too many entries");
  for (std::size_t i = 0; i < c.apply_delays.size(); ++i) {
    const ApplyDelay& d = c.apply_delays[i];
    check_int(d.replica, "apply_delays", 1, c.replicas);
    check_ms(d.delay_ms, "apply_delays", 0, kMaxDurationMs);
    for (std::size_t k = 0; k < i; ++k) {
      require(c.apply_delays[k].replica != d.replica, "apply_delays", "one delay per replica");
    }
  }
  check_ms(c.heartbeat_interval_ms, "heartbeat_interval_ms", 0.001, kMaxDurationMs);
  check_int(c.missed_heartbeats, "missed_heartbeats", 1, 1000000);
  check_ms(c.promote_ms, "promote_ms", 0, kMaxDurationMs);
  check_ms(c.repoint_ms, "repoint_ms", 0, kMaxDurationMs);
  check_ms(c.heartbeat_late_ms, "heartbeat_late_ms", 0, kMaxDurationMs);
  check_ms(c.check_interval_ms, "check_interval_ms", 0, kMaxDurationMs);
  check_ms(c.repoint_catch_up_ms, "repoint_catch_up_ms", 0, kMaxDurationMs);
  check_ms(c.probe_commit_lag_ms, "probe_commit_lag_ms", 0, kMaxDurationMs);
  check_int(c.promotion_wal_bytes, "promotion_wal_bytes", 0, 1LL << 40);
  require(static_cast<int>(c.failover_model) <= 1, "failover_model", "unknown failover model");
}

void check_bounds(const SimConfig& c) {
  check_ms(c.sample_interval_ms, "sample_interval_ms", 0.001, kMaxDurationMs);
  check_int(c.max_samples, "max_samples", 1, 10'000'000);
  check_int(c.max_probe_samples, "max_probe_samples", 0, 10'000'000);
  check_run_lags(c, c.probe_run_lags_ms, "probe_run_lags_ms");
  check_run_lags(c, c.probe_run_lags_after_crash_ms, "probe_run_lags_after_crash_ms");
  check_rounds(c, c.probe_round_lags_ms, "probe_round_lags_ms");
  check_rounds(c, c.probe_round_lags_after_crash_ms, "probe_round_lags_after_crash_ms");
  check_ms(c.probe_parallel_gap_ms, "probe_parallel_gap_ms", 0, kMaxDurationMs);
  check_ms(c.outage_after_promotion_ms, "outage_after_promotion_ms", 0, kMaxDurationMs);
  check_ms(c.drain_ms, "drain_ms", 0, kMaxDurationMs);
  check_int(c.max_in_flight, "max_in_flight", 1, 100'000'000);
  require(c.max_events >= 1, "max_events", "must be at least 1");
  const auto& edges = c.window_edges_ms;
  require(edges.size() != 1 && edges.size() <= static_cast<std::size_t>(kMaxWindowEdges), "window_edges_ms",
          "must list no edges or 2.." + std::to_string(kMaxWindowEdges));
  for (std::size_t i = 0; i < edges.size(); ++i) {
    check_ms(edges[i], "window_edges_ms", 0, kMaxDurationMs);
    require(i == 0 || edges[i] > edges[i - 1], "window_edges_ms", "must be strictly increasing");
  }
  if (!c.names.empty()) {
    require(c.names.size() == static_cast<std::size_t>(c.replicas) + 1, "names",
            "must name the primary and every replica (" + std::to_string(c.replicas + 1) + " names)");
    std::set<std::string> seen;
    for (const auto& n : c.names) {
      require(!n.empty() && n.size() <= 63, "names", "each name must have 1..63 characters");
      require(seen.insert(n).second, "names", "duplicate name '" + n + "'");
    }
  }
}

}  // namespace

void SimConfig::validate() const {
  check_workload(*this);
  check_arrivals(*this, write_arrivals, "write_arrivals");
  check_arrivals(*this, read_arrivals, "read_arrivals");
  require(read_arrival_readers.empty() || read_arrival_readers.size() == read_arrivals.size(), "read_arrival_readers",
          "must list one reader per read arrival, or none");
  for (int reader : read_arrival_readers) {
    require(reader >= 0 && reader < kMaxReaders, "read_arrival_readers",
            "readers must be in [0, " + std::to_string(kMaxReaders) + ")");
  }
  check_capacity(*this);
  check_faults(*this);
  check_bounds(*this);
}

std::string SimConfig::node_name(int index) const {
  if (!names.empty()) return names.at(static_cast<std::size_t>(index));
  return index == 0 ? std::string("primary") : "replica" + std::to_string(index);
}

const char* to_string(ReplicationMode mode) noexcept {
  switch (mode) {
    case ReplicationMode::Async: return "async";
    case ReplicationMode::SemiSync: return "semi_sync";
    case ReplicationMode::Sync: return "sync";
    case ReplicationMode::RemoteApply: return "remote_apply";
  }
  return "unknown";
}

const char* to_string(FailoverModelKind kind) noexcept {
  return kind == FailoverModelKind::Core ? "core" : "simple";
}

const char* to_string(FailReason reason) noexcept {
  switch (reason) {
    case FailReason::QueueFull: return "queue_full";
    case FailReason::NodeDown: return "node_down";
    case FailReason::NoNode: return "no_node";
    case FailReason::PrimaryCrash: return "primary_crash";
  }
  return "unknown";
}

double SimResult::primary_read_share() const {
  std::uint64_t primary = 0;
  for (const auto& l : levels) primary += l.served_by_primary;
  return reads_answered == 0 ? 0.0 : static_cast<double>(primary) / static_cast<double>(reads_answered);
}

bool SimResult::conserved() const {
  return writes_submitted == writes_acknowledged + writes_failed + writes_pending &&
         reads_submitted == reads_answered + reads_failed + reads_pending &&
         background_writes_submitted ==
             background_writes_acknowledged + background_writes_failed + background_writes_pending &&
         failover.background_writes_lost_acknowledged <= background_writes_acknowledged &&
         failover.writes_lost_acknowledged <= writes_acknowledged;
}

SimpleFailoverModel::SimpleFailoverModel(double interval_ms, int missed) : interval_ms_(interval_ms), threshold_(missed) {
  require(missed >= 1, "missed_heartbeats", "must be at least 1");
}

void SimpleFailoverModel::heartbeat(std::int64_t, bool answered) { missed_ = answered ? 0 : missed_ + 1; }

bool SimpleFailoverModel::suspected(std::int64_t) const { return missed_ >= threshold_; }

int SimpleFailoverModel::select(const std::vector<PromotionCandidate>& candidates, Lsn) {
  int best = -1;
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    const auto& c = candidates[i];
    if (!c.reachable) continue;
    if (best < 0 || c.receive_lsn > candidates[static_cast<std::size_t>(best)].receive_lsn) best = static_cast<int>(i);
  }
  return best;
}

std::string SimpleFailoverModel::describe() const {
  char buf[160];
  std::snprintf(buf, sizeof buf, "heartbeat %.6g ms x %d missed; most advanced replica", interval_ms_, threshold_);
  return buf;
}

std::unique_ptr<FailoverModel> simple_failover_model(const SimConfig& config) {
  return std::make_unique<SimpleFailoverModel>(config.heartbeat_interval_ms, config.missed_heartbeats);
}

}  // namespace replikit::sim
