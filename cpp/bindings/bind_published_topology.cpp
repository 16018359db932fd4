// Python bindings of the published topology: PublishedReplica, PublishedTopology, TopologyView.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "bindings.hpp"
#include "convert.hpp"
#include "replikit/lease.hpp"

namespace replikit::bindings {

namespace {

std::string replica_repr(const PublishedReplica& r) {
  return repr_of("PublishedReplica", {{"name", py::str(r.name)}, {"state", py::str(r.state)}});
}

// A list of PublishedReplica, or of (name, state) pairs.
std::vector<PublishedReplica> to_replicas(const py::handle& value) {
  std::vector<PublishedReplica> out;
  for (const auto& item : to_items(value, "replicas", "a list of PublishedReplica or (name, state) pairs")) {
    if (py::isinstance<PublishedReplica>(item)) {
      out.push_back(item.cast<PublishedReplica>());
    } else if (py::isinstance<py::tuple>(item) && py::len(item) == 2) {
      const auto pair = py::reinterpret_borrow<py::tuple>(item);
      out.push_back(PublishedReplica{to_str(pair[0], "replicas"), to_str(pair[1], "replicas")});
    } else {
      wrong_type("replicas", "a list of PublishedReplica or (name, state) pairs", item);
    }
  }
  return out;
}

std::string topology_repr(const PublishedTopology& t) {
  py::list replicas;
  for (const auto& r : t.replicas) replicas.append(py::cast(r));
  return repr_of("PublishedTopology", {{"primary", py::str(t.primary)},
                                       {"timeline", py::int_(t.timeline)},
                                       {"epoch", py::int_(t.epoch)},
                                       {"switch_lsn", py::str(t.switch_lsn.to_string())},
                                       {"replicas", replicas},
                                       {"leader_revision", py::int_(t.leader_revision)},
                                       {"revision", py::int_(t.revision)}});
}

}  // namespace

void bind_published_topology(py::module_& m) {
  py::class_<PublishedReplica>(m, "PublishedReplica", "A replica as the leader publishes it: its name and state.")
      .def(py::init([](const py::object& name, const py::object& state) {
             return PublishedReplica{to_str(name, "name"), to_str(state, "state")};
           }),
           py::arg("name"), py::arg("state"))
      .def_readonly("name", &PublishedReplica::name)
      .def_readonly("state", &PublishedReplica::state)
      .def("__eq__", [](const PublishedReplica& a, const py::object& b) {
        return py::isinstance<PublishedReplica>(b) && replica_repr(a) == replica_repr(b.cast<PublishedReplica>());
      })
      .def("__repr__", &replica_repr);
  const PublishedTopology d{};
  py::class_<PublishedTopology>(m, "PublishedTopology",
                                "The cluster's topology as the leader publishes it; revision is the record's revision "
                                "at the service, leader_revision the writing leader's fencing token.")
      .def(py::init([](const py::object& primary, const py::object& timeline, const py::object& epoch,
                       const py::object& switch_lsn, const py::object& replicas, const py::object& leader_revision,
                       const py::object& revision) {
             PublishedTopology t;
             t.primary = to_str(primary, "primary");
             t.timeline = static_cast<std::uint32_t>(to_int64(timeline, "timeline", 0, 0xffffffffLL));
             t.epoch = to_uint64(epoch, "epoch");
             t.switch_lsn = to_lsn(switch_lsn, "switch_lsn");
             t.replicas = to_replicas(replicas);
             t.leader_revision = to_int64(leader_revision, "leader_revision", 0);
             t.revision = to_int64(revision, "revision", 0);
             return t;
           }),
           py::kw_only(), py::arg("primary"), py::arg("timeline") = d.timeline, py::arg("epoch") = d.epoch,
           py::arg("switch_lsn") = d.switch_lsn, py::arg("replicas") = py::list(),
           py::arg("leader_revision") = d.leader_revision, py::arg("revision") = d.revision)
      .def_readonly("primary", &PublishedTopology::primary)
      .def_readonly("timeline", &PublishedTopology::timeline)
      .def_readonly("epoch", &PublishedTopology::epoch)
      .def_readonly("switch_lsn", &PublishedTopology::switch_lsn)
      .def_readonly("replicas", &PublishedTopology::replicas)
      .def_readonly("leader_revision", &PublishedTopology::leader_revision)
      .def_readonly("revision", &PublishedTopology::revision)
      .def("validate", &PublishedTopology::validate, "Raises InvalidArgument naming the first bad field.")
      .def("__eq__", [](const PublishedTopology& a, const py::object& b) {
        return py::isinstance<PublishedTopology>(b) && topology_repr(a) == topology_repr(b.cast<PublishedTopology>());
      })
      .def("__repr__", &topology_repr);
  py::class_<TopologyView>(m, "TopologyView", "The newest published topology seen; older revisions are ignored.")
      .def(py::init<>())
      .def(
          "offer",
          [](TopologyView& v, const py::object& t) {
            if (!py::isinstance<PublishedTopology>(t)) wrong_type("topology", "a replikit.PublishedTopology", t);
            return v.offer(t.cast<PublishedTopology>());
          },
          py::arg("topology"), "Applies the record when it is newer (revision and leader); says what it did.")
      .def_property_readonly("current", [](const TopologyView& v) { return v.current(); })
      .def_property_readonly("revision", &TopologyView::revision)
      .def_property_readonly("stale", &TopologyView::stale, "Records ignored as stale so far.")
      .def("__repr__", [](const TopologyView& v) {
        return repr_of("TopologyView", {{"revision", py::int_(v.revision())}, {"stale", py::int_(v.stale())}});
      });
}

}  // namespace replikit::bindings
