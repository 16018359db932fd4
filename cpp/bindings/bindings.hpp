#pragma once
// Declarations of the binding functions called by module.cpp: one per class or small family.
#include <pybind11/pybind11.h>

namespace replikit::bindings {
namespace py = pybind11;

void bind_errors(py::module_& m);
void bind_lsn(py::module_& m);

// Routing (bind_enums.cpp, bind_topology.cpp, bind_lag.cpp, bind_session.cpp, bind_router.cpp).
void bind_routing_enums(py::module_& m);  ///< Role, LagState, LagEventKind, Policy, Consistency, Reason
void bind_node(py::module_& m);           ///< Node, NodeInfo
void bind_topology(py::module_& m);       ///< Topology
void bind_lag_config(py::module_& m);     ///< LagConfig
void bind_lag_values(py::module_& m);     ///< ReplicaLag, LagEvent
void bind_lag_tracker(py::module_& m);    ///< LagTracker
void bind_signers(py::module_& m);        ///< TokenSigner, HmacSigner
void bind_session(py::module_& m);        ///< Session
void bind_session_timeline(py::module_& m);  ///< TimelineHistory, LostWrite, Session.reconcile/lost_writes (bind_timeline.cpp)
void bind_router_config(py::module_& m);  ///< RouterConfig
void bind_decision(py::module_& m);       ///< Decision, InFlight
void bind_router(py::module_& m);         ///< Router
void bind_read_path(py::module_& m);      ///< ReadPath (bind_read_path.cpp)

// Quorum (bind_quorum.cpp, bind_pbs.cpp, bind_quorum_store.cpp, bind_multileader.cpp).
void bind_quorum_analysis(py::module_& m);       ///< ConsistencyGoal, QuorumAnalysis, QuorumChoice
void bind_quorum_functions(py::module_& m);      ///< is_strong_quorum, analyze_quorum, minimum_quorum, ...
void bind_latency_distribution(py::module_& m);  ///< LatencyKind, LatencyDistribution
void bind_wars_model(py::module_& m);            ///< WarsModel
void bind_wars_simulation(py::module_& m);       ///< WarsSimulation
void bind_pbs_functions(py::module_& m);         ///< k_staleness_probability, k_consistency_probability
// Simulator (bind_sim.cpp, bind_sim_result.cpp).
void bind_sim_config(py::module_& m);     ///< ReplicationMode, FailoverModelKind, SimConfig
void bind_sim_result(py::module_& m);     ///< SimResult
void bind_sim_functions(py::module_& m);  ///< simulate, sweep
void bind_vector_clocks(py::module_& m);         ///< Versioning, QuorumOutcome, ClockOrder, compare/merge_clocks
void bind_quorum_results(py::module_& m);        ///< StoredVersion, WriteResult, ReadResult
void bind_quorum_store(py::module_& m);          ///< QuorumStore
void bind_quorum_database(py::module_& m);       ///< QuorumDatabase
void bind_multileader_cluster(py::module_& m);   ///< ConflictResolution, MultiLeaderValue, MultiLeaderCluster
void bind_multileader_workload(py::module_& m);  ///< run_multileader_workload

// Failover (bind_detector.cpp, bind_failover.cpp).
void bind_detector(py::module_& m);  ///< ProbeOutcome, DetectorKind, DetectorConfig, FailureDetector
void bind_failover(py::module_& m);  ///< ExclusionReason, CandidateState, PrimaryState, FailoverConfig, FailoverPlan, plan_failover
// Coordination (bind_lease.cpp, bind_published_topology.cpp).
void bind_lease(py::module_& m);               ///< LeaseState, LeaseConfig, LeasePermit, LeaseTransition, LeaderLease
void bind_published_topology(py::module_& m);  ///< PublishedReplica, PublishedTopology, TopologyView (TopologyVerdict: bind_lease)
// Capacity planning (bind_plan.cpp, bind_regions.cpp).
void bind_plan(py::module_& m);     ///< PlanConstraint, CapacityPlan, plan_capacity
void bind_regions(py::module_& m);  ///< Placement, RegionLatency, RegionReport, model_regions

void bind_pg(py::module_& m);  ///< PostgreSQL backend (a stub when built without it: REPLIKIT_WITH_PG=OFF)

}  // namespace replikit::bindings
