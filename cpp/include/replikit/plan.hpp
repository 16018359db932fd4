#pragma once
/// \file plan.hpp
/// Capacity planning for a single-leader cluster: how many replicas a workload needs, which
/// constraint binds, and what share of the reads the primary serves because of read-your-writes.
///
/// The model, in steady state (every quantity per second):
/// - The primary serves every write, the strong reads, and the read-your-writes reads that
///   arrive before any replica has replayed the session's write (plus the allowed wait).
/// - A replica replays a commit after a delay D: the network latency plus the time in its
///   apply queue. The apply queue is taken as M/M/1 (writes arrive at rate W, the replica
///   applies at rate A), so the queueing part is exponential with mean 1/(A - W); a measured
///   mean replay delay can replace it. P(D > t) is what sends a read-back to the primary. A
///   read-back needs the write it reads back: a session that writes again before its read-back
///   needs the later write too, and sends more reads to the primary than this model says.
/// - Utilisation of a node is the sum of its loads over its capacities; each node is kept at
///   or below 1 - headroom. `spare_replicas` replicas are added on top of what the load needs
///   (N + k), so k of them can fail with every remaining replica still within its target.
/// The planner is pure arithmetic: deterministic, no clock.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace replikit {

/// Most replicas a plan may ask for (the topology's node limit less the primary).
inline constexpr int kPlanMaxReplicas = 255;

/// The workload and the cluster's per-node limits a plan is made for.
struct PlanInput {
  double writes_per_s = 0;              ///< write transactions per second (all go to the primary)
  double reads_per_s = 0;               ///< read queries per second, all consistency levels
  double read_capacity_per_s = 15000;   ///< point reads one node serves at 100% (assumed: pgbench -S, 2 cores)
  double write_capacity_per_s = 10000;  ///< write transactions the primary sustains at 100% (assumed)
  double replica_apply_per_s = 20000;   ///< write transactions a replica replays per second (assumed)
  double headroom = 0.3;                ///< fraction of each node's capacity kept free, in [0, 1)
  int spare_replicas = 1;               ///< k of N + k: replicas beyond the load's needs
  double strong_share = 0;              ///< share of reads that must go to the primary (strong)
  double ryw_share = 0.1;               ///< share of reads that read back the session's own recent write
  double read_back_delay_ms = 0;        ///< time from a write's acknowledgement to its read-back
  double wait_for_replica_ms = 0;       ///< how long a read-back may wait for a replica (router option)
  double network_ms = 0.5;              ///< one-way primary-to-replica latency, part of the replay delay
  std::optional<double> replay_delay_ms;  ///< measured mean replay delay; unset: network + M/M/1 queue
};

/// The constraint that decides a plan (or makes it infeasible).
enum class PlanConstraint {
  ReplicaReadCapacity,  ///< the replicas' read capacity decides how many replicas
  Redundancy,           ///< no read load for replicas: the spares alone decide
  PrimaryCapacity,      ///< the primary cannot take its writes plus the reads it must serve
  ReplicaApplyRate,     ///< replicas cannot replay the writes fast enough: lag grows without bound
  ReplicaLimit,         ///< more replicas than kPlanMaxReplicas would be needed
};

/// The answer of plan_capacity: a number of replicas and why, or why no number works.
struct CapacityPlan {
  bool feasible = false;
  PlanConstraint binding = PlanConstraint::ReplicaReadCapacity;
  int replicas = 0;                 ///< replicas to run: for the load, plus the spares
  int replicas_for_load = 0;        ///< replicas the read load needs at the target utilisation
  double primary_read_share = 0;    ///< share of all reads served by the primary
  double primary_reads_per_s = 0;
  double replica_reads_per_s = 0;   ///< reads per second over all replicas
  double primary_utilization = 0;   ///< writes and reads over the primary's capacities
  double replica_utilization = 0;   ///< per replica with all replicas up (0 with no replica)
  double degraded_replica_utilization = 0;  ///< per replica with the spares down
  double apply_utilization = 0;     ///< writes over a replica's apply rate
  double replay_delay_ms = 0;       ///< mean replay delay the plan assumed
  double ryw_to_primary_share = 0;  ///< share of read-backs that reach the primary
  std::optional<double> min_wait_for_replica_ms;  ///< the least wait that lets the primary fit, if one does
  std::vector<std::string> reasoning;  ///< the steps, one sentence each, for a person
};

/// Plans replicas for `input`; InvalidArgument naming the field for negative rates, zero
/// capacities, headroom outside [0, 1), shares outside [0, 1], NaN or infinities.
CapacityPlan plan_capacity(const PlanInput& input);

/// P(replay delay > t_ms) under the plan's model of `input` (network shift + exponential queue).
double replay_delay_exceeds(const PlanInput& input, double t_ms);

/// The name of a constraint, lower case ("replica_read_capacity", ...).
const char* plan_constraint_name(PlanConstraint constraint);

}  // namespace replikit
