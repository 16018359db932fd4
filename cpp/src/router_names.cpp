// Text names of the router's enums, as used in messages, counters and Python reprs.
#include "replikit/router.hpp"

namespace replikit {

const char* to_string(Policy policy) noexcept {
  switch (policy) {
    case Policy::RoundRobin: return "round_robin";
    case Policy::Weighted: return "weighted";
    case Policy::LeastLag: return "least_lag";
    case Policy::LeastOutstanding: return "least_outstanding";
    case Policy::NearestRegion: return "nearest_region";
  }
  return "?";
}

const char* to_string(Consistency consistency) noexcept {
  switch (consistency) {
    case Consistency::Eventual: return "eventual";
    case Consistency::ReadYourWrites: return "read_your_writes";
    case Consistency::Monotonic: return "monotonic";
    case Consistency::Causal: return "causal";
    case Consistency::BoundedStaleness: return "bounded_staleness";
    case Consistency::Strong: return "strong";
  }
  return "?";
}

const char* to_string(Reason reason) noexcept {
  switch (reason) {
    case Reason::Write: return "write";
    case Reason::ReplicaAvailable: return "replica_available";
    case Reason::ReplicaCaughtUp: return "replica_caught_up";
    case Reason::ReplicaFresh: return "replica_fresh";
    case Reason::StrongRead: return "strong_read";
    case Reason::RecentWrite: return "recent_write";
    case Reason::AllReplicasLagging: return "all_replicas_lagging";
    case Reason::NoReplicaCaughtUp: return "no_replica_caught_up";
    case Reason::NoReplicaFresh: return "no_replica_fresh";
    case Reason::NoReplicaUp: return "no_replica_up";
    case Reason::PrimaryDown: return "primary_down";
    case Reason::ReplicaLikelyConsistent: return "replica_likely_consistent";
    case Reason::NoReplicaLikelyConsistent: return "no_replica_likely_consistent";
  }
  return "?";
}

}  // namespace replikit
