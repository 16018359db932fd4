#pragma once
// The fields of SimConfig as Python sees them (bind_sim.cpp), shared with the result bindings.
#include <pybind11/pybind11.h>

#include <functional>
#include <vector>

#include "replikit/sim/config.hpp"

namespace replikit::bindings {
namespace py = pybind11;

/// One SimConfig field: name, doc, the phase its keyword is applied in (fields that name
/// replicas come after the replica count and names), and its conversions.
struct SimField {
  const char* name;
  const char* doc;
  int phase;
  std::function<py::object(const sim::SimConfig&)> get;
  std::function<void(sim::SimConfig&, const py::handle&)> set;
};

/// The fields of a failover's outage window and of the clients' threads (bind_sim_clients.cpp).
std::vector<SimField> client_fields();

/// Every SimConfig field, in declaration order.
const std::vector<SimField>& sim_fields();

/// A SimConfig from keywords (validated); an unknown keyword is an ArgumentTypeError naming it.
sim::SimConfig sim_config_from(const py::kwargs& kwargs);

}  // namespace replikit::bindings
