// Python bindings of the capacity planner: PlanConstraint, CapacityPlan, plan_capacity.
#include <pybind11/native_enum.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "bindings.hpp"
#include "convert.hpp"
#include "replikit/plan.hpp"

namespace replikit::bindings {

namespace {

py::object optional_ms(const std::optional<double>& v) { return v ? py::object(py::float_(*v)) : py::object(py::none()); }

py::dict plan_dict(const CapacityPlan& p) {
  py::dict d;
  d["feasible"] = p.feasible;
  d["binding"] = plan_constraint_name(p.binding);
  d["replicas"] = p.replicas;
  d["replicas_for_load"] = p.replicas_for_load;
  d["primary_read_share"] = p.primary_read_share;
  d["primary_reads_per_s"] = p.primary_reads_per_s;
  d["replica_reads_per_s"] = p.replica_reads_per_s;
  d["primary_utilization"] = p.primary_utilization;
  d["replica_utilization"] = p.replica_utilization;
  d["degraded_replica_utilization"] = p.degraded_replica_utilization;
  d["apply_utilization"] = p.apply_utilization;
  d["replay_delay_ms"] = p.replay_delay_ms;
  d["ryw_to_primary_share"] = p.ryw_to_primary_share;
  d["min_wait_for_replica_ms"] = optional_ms(p.min_wait_for_replica_ms);
  d["reasoning"] = p.reasoning;
  return d;
}

std::string explain(const CapacityPlan& p) {
  std::string out = p.feasible ? "Plan: " + std::to_string(p.replicas) + " replicas (bound by " +
                                     plan_constraint_name(p.binding) + ").\n"
                               : std::string("No plan: ") + plan_constraint_name(p.binding) + ".\n";
  for (const auto& line : p.reasoning) out += "- " + line + "\n";
  return out;
}

using O = const py::object&;

// PlanInput from plan_capacity's arguments, in PlanInput's field order.
PlanInput plan_input_from(O writes, O reads, O read_capacity, O write_capacity, O apply, O headroom, O spares, O strong,
                          O ryw, O read_back, O wait, O network, O replay) {
  PlanInput in;
  in.writes_per_s = to_double(writes, "writes_per_s");
  in.reads_per_s = to_double(reads, "reads_per_s");
  in.read_capacity_per_s = to_double(read_capacity, "read_capacity_per_s");
  in.write_capacity_per_s = to_double(write_capacity, "write_capacity_per_s");
  in.replica_apply_per_s = to_double(apply, "replica_apply_per_s");
  in.headroom = to_double(headroom, "headroom");
  in.spare_replicas = to_int(spares, "spare_replicas");
  in.strong_share = to_double(strong, "strong_share");
  in.ryw_share = to_double(ryw, "ryw_share");
  in.read_back_delay_ms = to_double(read_back, "read_back_delay_ms");
  in.wait_for_replica_ms = to_double(wait, "wait_for_replica_ms");
  in.network_ms = to_double(network, "network_ms");
  if (!replay.is_none()) in.replay_delay_ms = to_double(replay, "replay_delay_ms");
  return in;
}

}  // namespace

void bind_plan(py::module_& m) {
  py::native_enum<PlanConstraint>(m, "PlanConstraint", "enum.Enum", "What decides a capacity plan.")
      .value("REPLICA_READ_CAPACITY", PlanConstraint::ReplicaReadCapacity, "The replicas' read capacity.")
      .value("REDUNDANCY", PlanConstraint::Redundancy, "No replica read load: the spares alone.")
      .value("PRIMARY_CAPACITY", PlanConstraint::PrimaryCapacity, "The primary's writes plus the reads it must serve.")
      .value("REPLICA_APPLY_RATE", PlanConstraint::ReplicaApplyRate, "Replicas cannot replay the writes in time.")
      .value("REPLICA_LIMIT", PlanConstraint::ReplicaLimit, "More replicas than a topology holds.")
      .finalize();

  py::class_<CapacityPlan>(m, "CapacityPlan", "The answer of plan_capacity: replicas and why, or why none works.")
      .def_readonly("feasible", &CapacityPlan::feasible, "Whether a number of replicas meets every target.")
      .def_readonly("binding", &CapacityPlan::binding, "The constraint that decided the plan (or broke it).")
      .def_readonly("replicas", &CapacityPlan::replicas, "Replicas to run: for the load plus the spares (0 if infeasible).")
      .def_readonly("replicas_for_load", &CapacityPlan::replicas_for_load, "Replicas the read load needs.")
      .def_readonly("primary_read_share", &CapacityPlan::primary_read_share, "Share of all reads served by the primary.")
      .def_readonly("primary_reads_per_s", &CapacityPlan::primary_reads_per_s, "Reads per second on the primary.")
      .def_readonly("replica_reads_per_s", &CapacityPlan::replica_reads_per_s, "Reads per second over all replicas.")
      .def_readonly("primary_utilization", &CapacityPlan::primary_utilization, "How busy the primary is, 0-1+.")
      .def_readonly("replica_utilization", &CapacityPlan::replica_utilization, "How busy each replica is, all up.")
      .def_readonly("degraded_replica_utilization", &CapacityPlan::degraded_replica_utilization,
                    "How busy each replica is with the spares down.")
      .def_readonly("apply_utilization", &CapacityPlan::apply_utilization, "Writes over a replica's apply rate.")
      .def_readonly("replay_delay_ms", &CapacityPlan::replay_delay_ms, "Mean replay delay the plan assumed.")
      .def_readonly("ryw_to_primary_share", &CapacityPlan::ryw_to_primary_share,
                    "Share of read-your-writes reads that reach the primary.")
      .def_property_readonly("min_wait_for_replica_ms", [](const CapacityPlan& p) { return optional_ms(p.min_wait_for_replica_ms); },
                             "When the primary is the bottleneck: the least wait_for_replica_ms that fixes it (None: none does).")
      .def_readonly("reasoning", &CapacityPlan::reasoning, "The reasoning, one sentence per step.")
      .def("explain", &explain, "The plan and its reasoning as text for a person.")
      .def("to_dict", &plan_dict, "The fields as a dict (the binding constraint by name).")
      .def("__repr__", [](const CapacityPlan& p) {
        return repr_of("CapacityPlan", {{"feasible", py::bool_(p.feasible)},
                                        {"replicas", py::int_(p.replicas)},
                                        {"binding", py::cast(p.binding)},
                                        {"primary_read_share", py::float_(p.primary_read_share)},
                                        {"primary_utilization", py::float_(p.primary_utilization)}});
      });

  const PlanInput d{};
  m.def("plan_capacity", [](O writes, O reads, O read_capacity, O write_capacity, O apply, O headroom, O spares,
                            O strong, O ryw, O read_back, O wait, O network, O replay) {
        return plan_capacity(plan_input_from(writes, reads, read_capacity, write_capacity, apply, headroom, spares,
                                             strong, ryw, read_back, wait, network, replay));
      }, py::arg("writes_per_s"), py::arg("reads_per_s"), py::kw_only(),
      py::arg("read_capacity_per_s") = d.read_capacity_per_s, py::arg("write_capacity_per_s") = d.write_capacity_per_s,
      py::arg("replica_apply_per_s") = d.replica_apply_per_s, py::arg("headroom") = d.headroom,
      py::arg("spare_replicas") = d.spare_replicas, py::arg("strong_share") = d.strong_share,
      py::arg("ryw_share") = d.ryw_share, py::arg("read_back_delay_ms") = d.read_back_delay_ms,
      py::arg("wait_for_replica_ms") = d.wait_for_replica_ms, py::arg("network_ms") = d.network_ms,
      py::arg("replay_delay_ms") = py::none(),
      "Plans the replicas of a single-leader cluster for a workload: how many, which constraint binds, the "
      "primary's share of reads, and the reasoning. Capacities are per node per second; shares in [0, 1]; "
      "replay_delay_ms None: network_ms plus an M/M/1 apply queue (mean 1/(replica_apply_per_s - writes_per_s)).");
}

}  // namespace replikit::bindings
