// Python bindings of coordination: LeaseState, LeaseConfig, LeasePermit, LeaseTransition,
// LeaderLease, PublishedReplica, PublishedTopology, TopologyVerdict, TopologyView.
#include <pybind11/native_enum.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "bindings.hpp"
#include "convert.hpp"
#include "replikit/lease.hpp"

namespace replikit::bindings {

namespace {

py::object opt_permit(const std::optional<LeasePermit>& p) { return p ? py::cast(*p) : py::none(); }

std::string config_repr(const LeaseConfig& c) {
  return repr_of("LeaseConfig", {{"ttl_ms", py::float_(c.ttl_ms)},
                                 {"margin_ms", py::float_(c.margin_ms)},
                                 {"renew_interval_ms", py::float_(c.renew_interval_ms)}});
}

void bind_lease_values(py::module_& m) {
  const LeaseConfig d{};
  py::class_<LeaseConfig>(m, "LeaseConfig",
                          "Settings of a LeaderLease: the TTL at the service, the margin the local deadline keeps "
                          "before it, and how often to renew.")
      .def(py::init([](const py::object& ttl, const py::object& margin, const py::object& renew) {
             LeaseConfig c;
             c.ttl_ms = to_ms(ttl, "ttl_ms");
             c.margin_ms = to_ms(margin, "margin_ms");
             c.renew_interval_ms = to_ms(renew, "renew_interval_ms");
             c.validate();
             return c;
           }),
           py::kw_only(), py::arg("ttl_ms") = d.ttl_ms, py::arg("margin_ms") = d.margin_ms,
           py::arg("renew_interval_ms") = d.renew_interval_ms)
      .def_readonly("ttl_ms", &LeaseConfig::ttl_ms)
      .def_readonly("margin_ms", &LeaseConfig::margin_ms)
      .def_readonly("renew_interval_ms", &LeaseConfig::renew_interval_ms)
      .def_property_readonly("hold_ms", &LeaseConfig::hold_ms, "ttl_ms - margin_ms: how long one confirmation lets the holder act.")
      .def("__repr__", &config_repr);
  py::class_<LeasePermit>(m, "LeasePermit", "The right to act: the fencing revision and the local deadline.")
      .def(py::init([](const py::object& revision, const py::object& valid_until) {
             return LeasePermit{to_int64(revision, "revision", 1), to_int64(valid_until, "valid_until_ns", 0)};
           }),
           py::kw_only(), py::arg("revision"), py::arg("valid_until_ns"))
      .def_readonly("revision", &LeasePermit::revision)
      .def_readonly("valid_until_ns", &LeasePermit::valid_until_ns)
      .def(
          "valid", [](const LeasePermit& p, const py::object& now_ns) { return p.valid(now_or_clock(now_ns)); },
          py::arg("now_ns") = py::none(), "True when an action may start at now_ns (time.monotonic_ns() when None).")
      .def("__repr__", [](const LeasePermit& p) {
        return repr_of("LeasePermit", {{"revision", py::int_(p.revision)}, {"valid_until_ns", py::int_(p.valid_until_ns)}});
      });
  py::class_<LeaseTransition>(m, "LeaseTransition", "One transition of a LeaderLease.")
      .def_readonly("at_ns", &LeaseTransition::at_ns)
      .def_readonly("from_state", &LeaseTransition::from)
      .def_readonly("to_state", &LeaseTransition::to)
      .def_readonly("reason", &LeaseTransition::reason)
      .def("__repr__", [](const LeaseTransition& t) {
        return repr_of("LeaseTransition", {{"at_ns", py::int_(t.at_ns)},
                                           {"from_state", py::cast(t.from)},
                                           {"to_state", py::cast(t.to)},
                                           {"reason", py::str(t.reason)}});
      });
}

void bind_leader_lease(py::module_& m) {
  // now_ns: time.monotonic_ns() when None (the clock FailoverManager's permit is checked against).
  py::class_<LeaderLease>(m, "LeaderLease",
                          "The election and lease state machine of one candidate, fed events with their times.")
      .def(py::init([](const py::object& config) {
             if (config.is_none()) return LeaderLease{};
             if (!py::isinstance<LeaseConfig>(config)) wrong_type("config", "a replikit.LeaseConfig or None", config);
             return LeaderLease(config.cast<LeaseConfig>());
           }),
           py::arg("config") = py::none())
      .def(
          "campaign", [](LeaderLease& l, const py::object& now) { l.campaign(now_or_clock(now)); },
          py::arg("now_ns") = py::none(), "Starts (or restarts) campaigning.")
      .def(
          "acquired",
          [](LeaderLease& l, const py::object& sent, const py::object& now, const py::object& revision) {
            const std::int64_t t = now_or_clock(now);
            l.acquired(to_int64(sent, "lease_sent_ns", 0), t, to_int64(revision, "revision"));
          },
          py::kw_only(), py::arg("lease_sent_ns"), py::arg("now_ns") = py::none(), py::arg("revision"),
          "The leader key was created under our lease at revision; lease_sent_ns: when the request that last "
          "confirmed the lease was sent.")
      .def(
          "renewed",
          [](LeaderLease& l, const py::object& sent, const py::object& now, const py::object& ttl) {
            const std::int64_t t = now_or_clock(now);
            l.renewed(to_int64(sent, "sent_ns", 0), t, to_double(ttl, "granted_ttl_ms"));
          },
          py::kw_only(), py::arg("sent_ns"), py::arg("now_ns") = py::none(), py::arg("granted_ttl_ms"),
          "A keepalive sent at sent_ns was answered with granted_ttl_ms remaining (0: expired).")
      .def(
          "renew_failed",
          [](LeaderLease& l, const py::object& reason, const py::object& now) {
            l.renew_failed(now_or_clock(now), to_str(reason, "reason"));
          },
          py::arg("reason"), py::arg("now_ns") = py::none(), "A keepalive got no answer.")
      .def(
          "lost",
          [](LeaderLease& l, const py::object& reason, const py::object& now) {
            l.lost(now_or_clock(now), to_str(reason, "reason"));
          },
          py::arg("reason"), py::arg("now_ns") = py::none(), "The service says the lease or the key is gone.")
      .def(
          "step_down", [](LeaderLease& l, const py::object& now) { l.step_down(now_or_clock(now)); },
          py::arg("now_ns") = py::none(), "Begins resigning: no action is permitted from now on.")
      .def(
          "stepped_down", [](LeaderLease& l, const py::object& now) { l.stepped_down(now_or_clock(now)); },
          py::arg("now_ns") = py::none(), "The resignation is done.")
      .def(
          "state", [](const LeaderLease& l, const py::object& now) { return l.state(now_or_clock(now)); },
          py::arg("now_ns") = py::none(), "The state at now_ns (leading turns lost at the deadline).")
      .def(
          "permit", [](const LeaderLease& l, const py::object& now) { return opt_permit(l.permit(now_or_clock(now))); },
          py::arg("now_ns") = py::none(), "The permit at now_ns, or None unless leading before the deadline.")
      .def(
          "may_act", [](const LeaderLease& l, const py::object& now) { return l.may_act(now_or_clock(now)); },
          py::arg("now_ns") = py::none())
      .def(
          "renew_due", [](const LeaderLease& l, const py::object& now) { return l.renew_due(now_or_clock(now)); },
          py::arg("now_ns") = py::none(), "True when a keepalive should be sent now.")
      .def_property_readonly("deadline_ns", &LeaderLease::deadline_ns)
      .def_property_readonly("revision", &LeaderLease::revision)
      .def_property_readonly("reason", &LeaderLease::reason)
      .def_property_readonly("failed_renewals", &LeaderLease::failed_renewals)
      .def_property_readonly("transitions", &LeaderLease::transitions)
      .def_property_readonly("config", &LeaderLease::config)
      .def("__repr__", [](const LeaderLease& l) {
        return repr_of("LeaderLease", {{"revision", py::int_(l.revision())},
                                       {"deadline_ns", py::int_(l.deadline_ns())},
                                       {"reason", py::str(l.reason())}});
      });
}

}  // namespace

void bind_lease(py::module_& m) {
  py::native_enum<LeaseState>(m, "LeaseState", "enum.Enum", "Where a LeaderLease is.")
      .value("CAMPAIGNING", LeaseState::Campaigning, "Trying to take the leader key, or waiting for it to be free.")
      .value("LEADING", LeaseState::Leading, "Holds the key under a live lease, before the local deadline.")
      .value("LOST", LeaseState::Lost, "The lease is gone or may be gone: no action.")
      .value("STEPPING_DOWN", LeaseState::SteppingDown, "Resigning: no action.")
      .finalize();
  py::native_enum<TopologyVerdict>(m, "TopologyVerdict", "enum.Enum", "What TopologyView.offer did with a record.")
      .value("APPLIED", TopologyVerdict::Applied, "Newer: it is the current topology now.")
      .value("DUPLICATE", TopologyVerdict::Duplicate, "The same revision as the current one.")
      .value("STALE", TopologyVerdict::Stale, "An older revision, or an older leader's: ignored.")
      .finalize();
  bind_lease_values(m);
  bind_leader_lease(m);
  bind_published_topology(m);
}

}  // namespace replikit::bindings
