#include "bindings.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "replikit's compiled core: routing, lag tracking, sessions, quorum math, PostgreSQL backend";
  using namespace replikit::bindings;
  bind_errors(m);
  bind_lsn(m);
  // Enums and value classes first: later signatures show their defaults as members.
  bind_routing_enums(m);
  bind_node(m);
  bind_topology(m);
  bind_lag_config(m);
  bind_lag_values(m);
  bind_lag_tracker(m);
  bind_signers(m);
  bind_session(m);
  bind_session_timeline(m);
  bind_router_config(m);
  bind_decision(m);
  bind_router(m);
  bind_read_path(m);
  bind_quorum_analysis(m);
  bind_quorum_functions(m);
  bind_latency_distribution(m);
  bind_wars_model(m);
  bind_wars_simulation(m);
  bind_pbs_functions(m);
  bind_sim_config(m);
  bind_sim_result(m);
  bind_sim_functions(m);
  bind_vector_clocks(m);
  bind_quorum_results(m);
  bind_quorum_store(m);
  bind_quorum_database(m);
  bind_multileader_cluster(m);
  bind_multileader_workload(m);
  bind_detector(m);
  bind_failover(m);
  bind_lease(m);
  bind_plan(m);
  bind_regions(m);
  bind_pg(m);
}
