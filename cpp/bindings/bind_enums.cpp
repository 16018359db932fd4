// Python bindings of the routing enums (Role, LagState, LagEventKind, Policy, Consistency, Reason,
// CatchUpReason).
#include <pybind11/native_enum.h>
#include <pybind11/pybind11.h>

#include "bindings.hpp"
#include "replikit/lag.hpp"
#include "replikit/router.hpp"
#include "replikit/topology.hpp"

namespace replikit::bindings {

void bind_routing_enums(py::module_& m) {
  py::native_enum<Role>(m, "Role", "enum.Enum", "What a node is now.")
      .value("PRIMARY", Role::Primary)
      .value("REPLICA", Role::Replica)
      .value("REMOVED", Role::Removed)
      .finalize();
  py::native_enum<LagState>(m, "LagState", "enum.Enum", "A replica's lag state (with hysteresis).")
      .value("OK", LagState::Ok)
      .value("LAGGING", LagState::Lagging)
      .finalize();
  py::native_enum<LagEventKind>(m, "LagEventKind", "enum.Enum", "What a lag transition event says.")
      .value("BECAME_LAGGING", LagEventKind::BecameLagging)
      .value("RECOVERED", LagEventKind::Recovered)
      .finalize();
  py::native_enum<Policy>(m, "Policy", "enum.Enum", "How reads are spread over qualifying replicas.")
      .value("ROUND_ROBIN", Policy::RoundRobin, "In turn.")
      .value("WEIGHTED", Policy::Weighted, "Smooth weighted round-robin by Node.weight.")
      .value("LEAST_LAG", Policy::LeastLag, "The replica with the smallest time lag.")
      .value("LEAST_OUTSTANDING", Policy::LeastOutstanding, "Power of two choices over in-flight counts.")
      .value("NEAREST_REGION", Policy::NearestRegion, "Round-robin within the client's region, else anywhere.")
      .finalize();
  py::native_enum<Consistency>(m, "Consistency", "enum.Enum", "What a read must see.")
      .value("EVENTUAL", Consistency::Eventual, "Any healthy replica.")
      .value("READ_YOUR_WRITES", Consistency::ReadYourWrites, "A replica that replayed the session's writes.")
      .value("MONOTONIC", Consistency::Monotonic, "A replica at least as new as what the session read.")
      .value("CAUSAL", Consistency::Causal, "Both, including merged tokens.")
      .value("BOUNDED_STALENESS", Consistency::BoundedStaleness, "At most max_staleness_ms behind, on a safe upper bound (Router.route_read).")
      .value("STRONG", Consistency::Strong, "The primary.")
      .finalize();
  py::native_enum<Reason>(m, "Reason", "enum.Enum", "Why a request went where it went.")
      .value("WRITE", Reason::Write)
      .value("REPLICA_AVAILABLE", Reason::ReplicaAvailable)
      .value("REPLICA_CAUGHT_UP", Reason::ReplicaCaughtUp)
      .value("REPLICA_FRESH", Reason::ReplicaFresh)
      .value("STRONG_READ", Reason::StrongRead)
      .value("RECENT_WRITE", Reason::RecentWrite)
      .value("ALL_REPLICAS_LAGGING", Reason::AllReplicasLagging)
      .value("NO_REPLICA_CAUGHT_UP", Reason::NoReplicaCaughtUp)
      .value("NO_REPLICA_FRESH", Reason::NoReplicaFresh)
      .value("NO_REPLICA_UP", Reason::NoReplicaUp)
      .value("PRIMARY_DOWN", Reason::PrimaryDown)
      .value("REPLICA_LIKELY_CONSISTENT", Reason::ReplicaLikelyConsistent)
      .value("NO_REPLICA_LIKELY_CONSISTENT", Reason::NoReplicaLikelyConsistent)
      .finalize();
  py::native_enum<CatchUpReason>(m, "CatchUpReason", "enum.Enum",
                                 "Why a read that needs an LSN no replica has shown waits for one, or not.")
      .value("FIXED_WAIT", CatchUpReason::FixedWait, "A fixed wait (none when it is 0).")
      .value("REPLICA_EXPECTED", CatchUpReason::ReplicaExpected, "auto: a replica's replay-delay p99 is within the bound.")
      .value("NO_REPLICA_EXPECTED", CatchUpReason::NoReplicaExpected, "auto: no healthy replica's p99 is within it: no wait.")
      .value("NO_DELAY_SAMPLES", CatchUpReason::NoDelaySamples, "auto: a healthy replica has too few replay delays measured: waits to measure.")
      .finalize();
  m.attr("NO_NODE") = kNoNode;
  m.attr("MAX_NODES") = kMaxNodes;
  m.attr("DEFAULT_CONSISTENCY") = kDefaultConsistency;
}

}  // namespace replikit::bindings
