// Python bindings of Node (a node declaration), NodeInfo and Topology.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "convert.hpp"
#include "replikit/topology.hpp"

namespace replikit::bindings {

namespace {

constexpr int kIntMin = std::numeric_limits<int>::min();
constexpr int kIntMax = std::numeric_limits<int>::max();

py::list replica_names(const Topology& t) {
  py::list out;
  for (int i : t.replicas()) out.append(py::str(t.name(i)));
  return out;
}

}  // namespace

void bind_node(py::module_& m) {
  const NodeSpec d{};
  py::class_<NodeSpec>(m, "Node", "How to declare a node: name, region, weight, priority, up.")
      .def(py::init([](const py::object& name, const py::object& region, const py::object& weight,
                       const py::object& priority, const py::object& up) {
             return NodeSpec{to_str(name, "name"), to_str(region, "region"), to_double(weight, "weight"),
                             to_int(priority, "priority", kIntMin, kIntMax), to_bool(up, "up")};
           }),
           py::arg("name"), py::arg("region") = d.region, py::arg("weight") = d.weight,
           py::arg("priority") = d.priority, py::arg("up") = d.up)
      .def_property("name", [](const NodeSpec& s) { return s.name; },
                    [](NodeSpec& s, const py::object& v) { s.name = to_str(v, "name"); })
      .def_property("region", [](const NodeSpec& s) { return s.region; },
                    [](NodeSpec& s, const py::object& v) { s.region = to_str(v, "region"); })
      .def_property("weight", [](const NodeSpec& s) { return s.weight; },
                    [](NodeSpec& s, const py::object& v) { s.weight = to_double(v, "weight"); })
      .def_property("priority", [](const NodeSpec& s) { return s.priority; },
                    [](NodeSpec& s, const py::object& v) { s.priority = to_int(v, "priority", kIntMin, kIntMax); })
      .def_property("up", [](const NodeSpec& s) { return s.up; },
                    [](NodeSpec& s, const py::object& v) { s.up = to_bool(v, "up"); })
      .def("__repr__", [](const NodeSpec& s) {
        return repr_of("Node", {{"name", py::str(s.name)}, {"region", py::str(s.region)}, {"weight", py::float_(s.weight)},
                                {"priority", py::int_(s.priority)}, {"up", py::bool_(s.up)}});
      });

  py::class_<NodeInfo>(m, "NodeInfo", "A copy of one node's state.")
      .def_readonly("index", &NodeInfo::index)
      .def_readonly("name", &NodeInfo::name)
      .def_readonly("region", &NodeInfo::region)
      .def_readonly("role", &NodeInfo::role)
      .def_readonly("up", &NodeInfo::up)
      .def_readonly("weight", &NodeInfo::weight)
      .def_readonly("priority", &NodeInfo::priority)
      .def_readonly("receive_lsn", &NodeInfo::receive_lsn)
      .def_readonly("replay_lsn", &NodeInfo::replay_lsn)
      .def_readonly("lag_bytes", &NodeInfo::lag_bytes)
      .def_property_readonly("lag_ms", [](const NodeInfo& i) { return static_cast<double>(i.lag_ns) / 1e6; })
      .def_readonly("lag_known", &NodeInfo::lag_known)
      .def_readonly("lag_state", &NodeInfo::lag_state)
      .def_readonly("outstanding", &NodeInfo::outstanding)
      .def_property_readonly(
          "fresh_as_of_ns",
          [](const NodeInfo& i) { return fresh_or_none(i.fresh_as_of_ns); },
          "Replicas: the instant (the lag tracker's clock) as of which the node holds every commit of the "
          "primary, as bounded-staleness reads judge it; None when not known, and for the primary.")
      .def("__repr__", [](const NodeInfo& i) {
        return repr_of("NodeInfo", {{"name", py::str(i.name)}, {"role", py::cast(i.role)}, {"up", py::bool_(i.up)},
                                    {"replay_lsn", py::cast(i.replay_lsn)},
                                    {"lag_ms", py::float_(static_cast<double>(i.lag_ns) / 1e6)},
                                    {"lag_state", py::cast(i.lag_state)}});
      });
}

// Changes to the set of nodes and their state.
void bind_topology_updates(py::class_<Topology, std::shared_ptr<Topology>>& c) {
  c.def("add_replica",
        [](Topology& t, const py::object& node) {
          try {
            return t.add_replica(to_spec(node, "node"));
          } catch (const InvalidArgument& e) {
            // The core names its parameter "spec"; Python calls it "node".
            if (e.argument() != "spec") throw;
            std::string message = e.what();
            throw InvalidArgument("node", message.substr(message.find(": ") + 2));
          }
        },
        py::arg("node"), "Adds a replica (Node or name); returns its index.")
      .def("remove_replica", [](Topology& t, const py::object& name) { t.remove_replica(to_str(name, "name")); },
           py::arg("name"), "Removes a replica for good.")
      .def("set_up", [](Topology& t, const py::object& name, const py::object& up) {
             t.set_up(to_str(name, "name"), to_bool(up, "up"));
           }, py::arg("name"), py::arg("up"), "Marks a node up or down.")
      .def("set_weight", [](Topology& t, const py::object& name, const py::object& weight) {
             t.set_weight(to_str(name, "name"), to_double(weight, "weight"));
           }, py::arg("name"), py::arg("weight"), "Sets a replica's routing weight (>= 0).")
      .def("set_priority", [](Topology& t, const py::object& name, const py::object& priority) {
             t.set_priority(to_str(name, "name"), to_int(priority, "priority", kIntMin, kIntMax));
           }, py::arg("name"), py::arg("priority"), "Sets a node's failover priority.")
      .def("promote", [](Topology& t, const py::object& name) { return t.promote(to_str(name, "name")); },
           py::arg("name"),
           "Makes a replica the primary (the old primary becomes a replica marked down); returns the new epoch.");
}

// Questions about the nodes.
void bind_topology_queries(py::class_<Topology, std::shared_ptr<Topology>>& c) {
  c.def("index_of", [](const Topology& t, const py::object& name) { return t.index_of(to_str(name, "name"), "name"); },
        py::arg("name"), "The index of a node; NotFound if unknown.")
      .def("name", [](const Topology& t, const py::object& index) { return t.name(to_int(index, "index", kIntMin, kIntMax)); },
           py::arg("index"), "The name of node `index`.")
      .def("region_id", [](const Topology& t, const py::object& region) { return t.region_id(to_str(region, "region")); },
           py::arg("region"), "The id of a region, or -1.")
      .def_property_readonly("primary", &Topology::primary, "The primary's index.")
      .def_property_readonly("primary_name", [](const Topology& t) { return t.name(t.primary()); }, "The primary's name.")
      .def_property_readonly("epoch", &Topology::epoch, "Changes whenever the primary changes.")
      .def_property_readonly(
          "epoch_and_primary",
          [](const Topology& t) {
            const EpochPrimary ep = t.epoch_and_primary();
            return py::make_tuple(ep.epoch, t.name(ep.primary));
          },
          "(epoch, primary name), read together: never one epoch with another's primary.")
      .def("replicas", &Topology::replicas, "Indexes of the current replicas.")
      .def("replica_names", &replica_names, "Names of the current replicas.")
      .def("info", [](const Topology& t, const py::object& node) { return t.info(to_node(t, node, "node")); },
           py::arg("node"), "A copy of one node's state (by name or index).")
      .def("nodes", &Topology::nodes, "Copies of every node's state.")
      .def("__len__", &Topology::size)
      .def("__repr__", [](const Topology& t) {
        return repr_of("Topology", {{"primary", py::str(t.name(t.primary()))}, {"replicas", replica_names(t)},
                                    {"epoch", py::int_(t.epoch())}});
      });
}

void bind_topology(py::module_& m) {
  py::class_<Topology, std::shared_ptr<Topology>> c(
      m, "Topology", "One primary and its replicas. Updates are safe while other threads route; routing takes no lock.");
  c.def(py::init([](const py::object& primary, const py::object& replicas) {
          // A str is iterable too: Topology("p", "r1") would declare replicas "r" and "1".
          if (py::isinstance<py::str>(replicas) || py::isinstance<py::bytes>(replicas) ||
              !py::isinstance<py::iterable>(replicas)) {
            wrong_type("replicas", "a list of replicas (Node or name)", replicas);
          }
          std::vector<NodeSpec> specs;
          for (auto r : replicas) specs.push_back(to_spec(r, "replicas"));
          return std::make_shared<Topology>(to_spec(primary, "primary"), std::move(specs));
        }),
        py::arg("primary"), py::arg("replicas") = py::list(),
        "A topology from a primary and replicas, each a Node or a name.");
  bind_topology_updates(c);
  bind_topology_queries(c);
}

}  // namespace replikit::bindings
