#pragma once
// Routing values as Python sees them: with node names resolved (the core carries indexes).
#include <pybind11/pybind11.h>

#include <string>

#include "convert.hpp"
#include "replikit/lag.hpp"
#include "replikit/router.hpp"
#include "replikit/topology.hpp"

namespace replikit::bindings {

/// A Decision with its node's name ("" for kNoNode).
struct NamedDecision {
  Decision decision;
  std::string node;
};

/// A ReplicaLag with its node's name.
struct NamedReplicaLag {
  ReplicaLag lag;
  std::string node;
};

/// A LagEvent with its node's name.
struct NamedLagEvent {
  LagEvent event;
  std::string node;
};

/// The name of `node` in `t`, or "" for kNoNode.
inline std::string name_or_empty(const Topology& t, int node) { return node == kNoNode ? std::string() : t.name(node); }

/// `d` with its node's name.
inline NamedDecision named(const Topology& t, const Decision& d) { return {d, name_or_empty(t, d.node)}; }
/// `l` with its node's name.
inline NamedReplicaLag named(const Topology& t, const ReplicaLag& l) { return {l, name_or_empty(t, l.node)}; }
/// `e` with its node's name.
inline NamedLagEvent named(const Topology& t, const LagEvent& e) { return {e, name_or_empty(t, e.node)}; }

/// A name as Python sees it: None for "".
inline py::object name_or_none(const std::string& name) {
  return name.empty() ? py::object(py::none()) : py::object(py::str(name));
}

/// Warns a DeprecationWarning for a renamed attribute.
inline void deprecated_attribute(const char* old_name, const char* new_name) {
  const std::string message = std::string("attribute '") + old_name + "' is deprecated, use '" + new_name + "'";
  if (PyErr_WarnEx(PyExc_DeprecationWarning, message.c_str(), 1) != 0) throw py::error_already_set();
}

}  // namespace replikit::bindings
