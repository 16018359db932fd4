#include "replikit/plan.hpp"

#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

#include "replikit/errors.hpp"

namespace replikit {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

void require_rate(double v, const char* argument) {
  require(std::isfinite(v) && v >= 0, argument, "must be a finite rate >= 0");
}

void require_capacity(double v, const char* argument) {
  require(std::isfinite(v) && v > 0, argument, "must be a finite capacity > 0");
}

void require_share(double v, const char* argument) {
  require(v >= 0 && v <= 1, argument, "must be a share in [0, 1]");
}

void require_ms(double v, const char* argument) {
  require(std::isfinite(v) && v >= 0, argument, "must be a finite duration >= 0 ms");
}

void validate(const PlanInput& in) {
  require_rate(in.writes_per_s, "writes_per_s");
  require_rate(in.reads_per_s, "reads_per_s");
  require_capacity(in.read_capacity_per_s, "read_capacity_per_s");
  require_capacity(in.write_capacity_per_s, "write_capacity_per_s");
  require_capacity(in.replica_apply_per_s, "replica_apply_per_s");
  require(in.headroom >= 0 && in.headroom < 1, "headroom", "must be in [0, 1): the share of capacity kept free");
  require(in.spare_replicas >= 0 && in.spare_replicas <= kPlanMaxReplicas, "spare_replicas",
          "must be in [0, " + std::to_string(kPlanMaxReplicas) + "]");
  require_share(in.strong_share, "strong_share");
  require_share(in.ryw_share, "ryw_share");
  require(in.strong_share + in.ryw_share <= 1 + 1e-12, "ryw_share", "strong_share + ryw_share must not exceed 1");
  require_ms(in.read_back_delay_ms, "read_back_delay_ms");
  require_ms(in.wait_for_replica_ms, "wait_for_replica_ms");
  require_ms(in.network_ms, "network_ms");
  if (in.replay_delay_ms) require_ms(*in.replay_delay_ms, "replay_delay_ms");
}

// The replay delay model: a shift (the network) plus an exponential part of mean `queue_ms`.
struct ReplayModel {
  double shift_ms;
  double queue_ms;  // infinite when the replica cannot keep up
};

ReplayModel replay_model(const PlanInput& in) {
  if (in.replay_delay_ms) return {0.0, *in.replay_delay_ms};
  const double spare = in.replica_apply_per_s - in.writes_per_s;
  return {in.network_ms, spare > 0 ? 1000.0 / spare : kInf};
}

double exceeds(const ReplayModel& m, double t_ms) {
  if (t_ms < m.shift_ms) return 1.0;
  if (m.queue_ms == 0) return 0.0;
  if (!std::isfinite(m.queue_ms)) return 1.0;
  return std::exp(-(t_ms - m.shift_ms) / m.queue_ms);
}

// printf-style formatting of one reasoning sentence (every caller passes a literal format).
template <typename... Args>
std::string fmt(const char* format, Args... args) {
  char buffer[512];
  std::snprintf(buffer, sizeof buffer, format, args...);
  return buffer;
}

// The least wait for a replica that brings the primary's read-backs within `budget` reads/s.
std::optional<double> least_wait(const PlanInput& in, const ReplayModel& m, double budget) {
  const double ryw_reads = in.ryw_share * in.reads_per_s;
  if (ryw_reads <= budget) return 0.0;
  if (budget <= 0 || !std::isfinite(m.queue_ms)) return std::nullopt;
  const double t = m.shift_ms + m.queue_ms * std::log(ryw_reads / budget);
  return std::max(0.0, t - in.read_back_delay_ms);
}

// Loads on the primary; fills the read shares and the primary's utilisation.
void primary_load(const PlanInput& in, const ReplayModel& m, CapacityPlan& p) {
  p.replay_delay_ms = m.shift_ms + m.queue_ms;
  p.ryw_to_primary_share = exceeds(m, in.read_back_delay_ms + in.wait_for_replica_ms);
  p.primary_read_share = in.strong_share + in.ryw_share * p.ryw_to_primary_share;
  p.primary_reads_per_s = in.reads_per_s * p.primary_read_share;
  p.replica_reads_per_s = in.reads_per_s - p.primary_reads_per_s;
  p.primary_utilization = in.writes_per_s / in.write_capacity_per_s + p.primary_reads_per_s / in.read_capacity_per_s;
  p.apply_utilization = in.writes_per_s / in.replica_apply_per_s;
}

void explain_load(const PlanInput& in, CapacityPlan& p) {
  p.reasoning.push_back(fmt("Each node is kept at or below %.0f%% of its capacity (headroom %.0f%%).",
                            100 * (1 - in.headroom), 100 * in.headroom));
  p.reasoning.push_back(fmt("A replica replays a commit %.3g ms after it on average; a read-back %.3g ms after its "
                            "write (plus %.3g ms of allowed wait) finds no replica caught up with probability %.3g.",
                            p.replay_delay_ms, in.read_back_delay_ms, in.wait_for_replica_ms, p.ryw_to_primary_share));
  p.reasoning.push_back(fmt("So the primary serves %.1f%% of reads (strong %.1f%% + read-your-writes %.1f%% x %.3g): "
                            "%.0f reads/s.",
                            100 * p.primary_read_share, 100 * in.strong_share, 100 * in.ryw_share,
                            p.ryw_to_primary_share, p.primary_reads_per_s));
  p.reasoning.push_back(fmt("Primary: %.0f writes/s of %.0f and %.0f reads/s of %.0f: %.0f%% busy.", in.writes_per_s,
                            in.write_capacity_per_s, p.primary_reads_per_s, in.read_capacity_per_s,
                            100 * p.primary_utilization));
}

bool check_apply(const PlanInput& in, CapacityPlan& p) {
  const double target = 1 - in.headroom;
  if (p.apply_utilization <= target) return true;
  p.binding = PlanConstraint::ReplicaApplyRate;
  p.reasoning.push_back(fmt("Infeasible: %.0f writes/s is %.0f%% of the %.0f writes/s a replica replays, over the "
                            "%.0f%% target; replicas would fall behind without bound. More replicas do not help: "
                            "reduce or shard the writes, or use faster replicas.",
                            in.writes_per_s, 100 * p.apply_utilization, in.replica_apply_per_s, 100 * target));
  return false;
}

bool check_primary(const PlanInput& in, const ReplayModel& m, CapacityPlan& p) {
  const double target = 1 - in.headroom;
  const double budget =
      (target - in.writes_per_s / in.write_capacity_per_s) * in.read_capacity_per_s - in.strong_share * in.reads_per_s;
  const auto wait = least_wait(in, m, budget);
  if (p.primary_utilization <= target + 1e-12) return true;
  p.binding = PlanConstraint::PrimaryCapacity;
  p.min_wait_for_replica_ms = wait;
  std::string line = fmt("Infeasible: the primary would be %.0f%% busy, over the %.0f%% target; more replicas do not "
                         "take its load.",
                         100 * p.primary_utilization, 100 * target);
  if (wait) {
    line += fmt(" Letting read-backs wait up to %.3g ms for a replica (wait_for_replica_ms) brings it within target.",
                in.wait_for_replica_ms + *wait);
    p.min_wait_for_replica_ms = in.wait_for_replica_ms + *wait;
  } else {
    line += " Its writes and strong reads alone exceed the target: a bigger primary or fewer writes is needed.";
  }
  p.reasoning.push_back(line);
  return false;
}

void size_replicas(const PlanInput& in, CapacityPlan& p) {
  const double usable = in.read_capacity_per_s * (1 - in.headroom);
  const double need = p.replica_reads_per_s / usable;
  // A hair below an integer is that integer: 3.0000000001 replicas' worth is 3 replicas.
  p.replicas_for_load = need <= 0 ? 0 : static_cast<int>(std::ceil(need - 1e-9));
  if (p.replicas_for_load + in.spare_replicas > kPlanMaxReplicas) {
    p.binding = PlanConstraint::ReplicaLimit;
    p.reasoning.push_back(fmt("Infeasible: %d replicas would be needed, more than %d.",
                              p.replicas_for_load + in.spare_replicas, kPlanMaxReplicas));
    return;
  }
  p.feasible = true;
  p.replicas = p.replicas_for_load + in.spare_replicas;
  p.binding = p.replicas_for_load > 0 ? PlanConstraint::ReplicaReadCapacity : PlanConstraint::Redundancy;
  const int all = p.replicas;
  p.replica_utilization = all > 0 ? p.replica_reads_per_s / (all * in.read_capacity_per_s) : 0;
  p.degraded_replica_utilization =
      p.replicas_for_load > 0 ? p.replica_reads_per_s / (p.replicas_for_load * in.read_capacity_per_s) : 0;
  p.reasoning.push_back(fmt("Replicas serve %.0f reads/s; at %.0f reads/s each (%.0f%% of %.0f) that is %.2f "
                            "replicas' worth: %d for the load.",
                            p.replica_reads_per_s, usable, 100 * (1 - in.headroom), in.read_capacity_per_s, need,
                            p.replicas_for_load));
  p.reasoning.push_back(fmt("Plus %d spare (N + %d): %d replicas, each %.0f%% busy with all up and %.0f%% with the "
                            "spares down.",
                            in.spare_replicas, in.spare_replicas, p.replicas, 100 * p.replica_utilization,
                            100 * p.degraded_replica_utilization));
}

}  // namespace

double replay_delay_exceeds(const PlanInput& input, double t_ms) {
  validate(input);
  require(t_ms >= 0, "t_ms", "must be >= 0 ms");
  return exceeds(replay_model(input), t_ms);
}

CapacityPlan plan_capacity(const PlanInput& in) {
  validate(in);
  CapacityPlan p;
  const ReplayModel m = replay_model(in);
  primary_load(in, m, p);
  explain_load(in, p);
  if (!check_apply(in, p) || !check_primary(in, m, p)) return p;
  size_replicas(in, p);
  return p;
}

const char* plan_constraint_name(PlanConstraint constraint) {
  switch (constraint) {
    case PlanConstraint::ReplicaReadCapacity: return "replica_read_capacity";
    case PlanConstraint::Redundancy: return "redundancy";
    case PlanConstraint::PrimaryCapacity: return "primary_capacity";
    case PlanConstraint::ReplicaApplyRate: return "replica_apply_rate";
    case PlanConstraint::ReplicaLimit: return "replica_limit";
  }
  return "unknown";
}

}  // namespace replikit
