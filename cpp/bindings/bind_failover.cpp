// Python bindings of candidate selection: ExclusionReason, CandidateState, PrimaryState,
// FailoverConfig, Exclusion, FailoverPlan and plan_failover.
#include <pybind11/native_enum.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "convert.hpp"
#include "replikit/failover.hpp"

namespace replikit::bindings {

namespace {

constexpr int kIntMin = std::numeric_limits<int>::min();
constexpr int kIntMax = std::numeric_limits<int>::max();
constexpr std::int64_t kTimelineMax = std::numeric_limits<std::uint32_t>::max();

std::uint32_t to_timeline(const py::handle& v, const char* argument) {
  return static_cast<std::uint32_t>(to_int64(v, argument, 0, kTimelineMax));
}

std::vector<std::string> to_names(const py::handle& v, const char* argument) {
  std::vector<std::string> out;
  for (const auto& item : to_items(v, argument, "a sequence of names (str)")) out.push_back(to_str(item, argument));
  return out;
}

py::object optional_bytes(const std::optional<std::int64_t>& v) {
  return v ? py::object(py::int_(*v)) : py::object(py::none());
}

std::optional<std::int64_t> to_optional_bytes(const py::handle& v, const char* argument) {
  if (v.is_none()) return std::nullopt;
  return to_int64(v, argument, 0);
}

std::string candidate_repr(const CandidateState& c) {
  return repr_of("CandidateState", {{"name", py::str(c.name)},
                                    {"reachable", py::bool_(c.reachable)},
                                    {"receive_lsn", py::cast(c.receive_lsn)},
                                    {"replay_lsn", py::cast(c.replay_lsn)},
                                    {"timeline", py::int_(c.timeline)},
                                    {"priority", py::int_(c.priority)},
                                    {"no_failover", py::bool_(c.no_failover)},
                                    {"region", py::str(c.region)},
                                    {"was_synchronous", py::bool_(c.was_synchronous)}});
}

void bind_candidate(py::module_& m) {
  const CandidateState d{};
  py::class_<CandidateState>(m, "CandidateState", "What the failover manager knows of one replica.")
      .def(py::init([](const py::object& name, const py::object& reachable, const py::object& receive,
                       const py::object& replay, const py::object& timeline, const py::object& priority,
                       const py::object& no_failover, const py::object& region, const py::object& sync) {
             CandidateState c;
             c.name = to_str(name, "name");
             c.reachable = to_bool(reachable, "reachable");
             c.receive_lsn = to_lsn(receive, "receive_lsn");
             c.replay_lsn = to_lsn(replay, "replay_lsn");
             c.timeline = to_timeline(timeline, "timeline");
             c.priority = to_int(priority, "priority", kIntMin, kIntMax);
             c.no_failover = to_bool(no_failover, "no_failover");
             c.region = to_str(region, "region");
             c.was_synchronous = to_bool(sync, "was_synchronous");
             return c;
           }),
           py::arg("name"), py::kw_only(), py::arg("reachable") = d.reachable, py::arg("receive_lsn") = d.receive_lsn,
           py::arg("replay_lsn") = d.replay_lsn, py::arg("timeline") = d.timeline, py::arg("priority") = d.priority,
           py::arg("no_failover") = d.no_failover, py::arg("region") = d.region,
           py::arg("was_synchronous") = d.was_synchronous)
      .def_property("name", [](const CandidateState& c) { return c.name; },
                    [](CandidateState& c, const py::object& v) { c.name = to_str(v, "name"); })
      .def_property("reachable", [](const CandidateState& c) { return c.reachable; },
                    [](CandidateState& c, const py::object& v) { c.reachable = to_bool(v, "reachable"); })
      .def_property("receive_lsn", [](const CandidateState& c) { return c.receive_lsn; },
                    [](CandidateState& c, const py::object& v) { c.receive_lsn = to_lsn(v, "receive_lsn"); })
      .def_property("replay_lsn", [](const CandidateState& c) { return c.replay_lsn; },
                    [](CandidateState& c, const py::object& v) { c.replay_lsn = to_lsn(v, "replay_lsn"); })
      .def_property("timeline", [](const CandidateState& c) { return c.timeline; },
                    [](CandidateState& c, const py::object& v) { c.timeline = to_timeline(v, "timeline"); })
      .def_property("priority", [](const CandidateState& c) { return c.priority; },
                    [](CandidateState& c, const py::object& v) { c.priority = to_int(v, "priority", kIntMin, kIntMax); })
      .def_property("no_failover", [](const CandidateState& c) { return c.no_failover; },
                    [](CandidateState& c, const py::object& v) { c.no_failover = to_bool(v, "no_failover"); })
      .def_property("region", [](const CandidateState& c) { return c.region; },
                    [](CandidateState& c, const py::object& v) { c.region = to_str(v, "region"); })
      .def_property("was_synchronous", [](const CandidateState& c) { return c.was_synchronous; },
                    [](CandidateState& c, const py::object& v) { c.was_synchronous = to_bool(v, "was_synchronous"); })
      .def_property_readonly("position", &CandidateState::position, "max(receive_lsn, replay_lsn).")
      .def("__repr__", &candidate_repr);
}

std::string primary_repr(const PrimaryState& p) {
  py::list standbys;
  for (const auto& s : p.synchronous_standbys) standbys.append(py::str(s));
  return repr_of("PrimaryState", {{"last_known_lsn", py::cast(p.last_known_lsn)},
                                  {"timeline", py::int_(p.timeline)},
                                  {"synchronous_mode", py::bool_(p.synchronous_mode)},
                                  {"synchronous_standbys", standbys},
                                  {"last_acknowledged_commit_lsn", py::cast(p.last_acknowledged_commit_lsn)}});
}

void bind_primary(py::module_& m) {
  const PrimaryState d{};
  py::class_<PrimaryState>(m, "PrimaryState", "What the failover manager knew of the primary while it was up.")
      .def(py::init([](const py::object& lsn, const py::object& timeline, const py::object& mode,
                       const py::object& standbys, const py::object& acked) {
             PrimaryState p;
             p.last_known_lsn = to_lsn(lsn, "last_known_lsn");
             p.timeline = to_timeline(timeline, "timeline");
             p.synchronous_mode = to_bool(mode, "synchronous_mode");
             p.synchronous_standbys = to_names(standbys, "synchronous_standbys");
             p.last_acknowledged_commit_lsn = to_lsn(acked, "last_acknowledged_commit_lsn");
             return p;
           }),
           py::kw_only(), py::arg("last_known_lsn") = d.last_known_lsn, py::arg("timeline") = d.timeline,
           py::arg("synchronous_mode") = d.synchronous_mode, py::arg("synchronous_standbys") = py::list(),
           py::arg("last_acknowledged_commit_lsn") = d.last_acknowledged_commit_lsn)
      .def_property("last_known_lsn", [](const PrimaryState& p) { return p.last_known_lsn; },
                    [](PrimaryState& p, const py::object& v) { p.last_known_lsn = to_lsn(v, "last_known_lsn"); })
      .def_property("timeline", [](const PrimaryState& p) { return p.timeline; },
                    [](PrimaryState& p, const py::object& v) { p.timeline = to_timeline(v, "timeline"); })
      .def_property("synchronous_mode", [](const PrimaryState& p) { return p.synchronous_mode; },
                    [](PrimaryState& p, const py::object& v) { p.synchronous_mode = to_bool(v, "synchronous_mode"); })
      .def_property("synchronous_standbys", [](const PrimaryState& p) { return p.synchronous_standbys; },
                    [](PrimaryState& p, const py::object& v) {
                      p.synchronous_standbys = to_names(v, "synchronous_standbys");
                    })
      .def_property("last_acknowledged_commit_lsn", [](const PrimaryState& p) { return p.last_acknowledged_commit_lsn; },
                    [](PrimaryState& p, const py::object& v) {
                      p.last_acknowledged_commit_lsn = to_lsn(v, "last_acknowledged_commit_lsn");
                    })
      .def("__repr__", &primary_repr);
}

void bind_failover_config(py::module_& m) {
  const FailoverConfig d{};
  py::class_<FailoverConfig>(m, "FailoverConfig", "Settings of plan_failover.")
      .def(py::init([](const py::object& lag, const py::object& region) {
             FailoverConfig c;
             c.max_lag_bytes = to_optional_bytes(lag, "max_lag_bytes");
             c.preferred_region = to_str(region, "preferred_region");
             return c;
           }),
           py::kw_only(), py::arg("max_lag_bytes") = optional_bytes(d.max_lag_bytes),
           py::arg("preferred_region") = d.preferred_region)
      .def_property("max_lag_bytes", [](const FailoverConfig& c) { return optional_bytes(c.max_lag_bytes); },
                    [](FailoverConfig& c, const py::object& v) { c.max_lag_bytes = to_optional_bytes(v, "max_lag_bytes"); })
      .def_property("preferred_region", [](const FailoverConfig& c) { return c.preferred_region; },
                    [](FailoverConfig& c, const py::object& v) { c.preferred_region = to_str(v, "preferred_region"); })
      .def("__repr__", [](const FailoverConfig& c) {
        return repr_of("FailoverConfig", {{"max_lag_bytes", optional_bytes(c.max_lag_bytes)},
                                          {"preferred_region", py::str(c.preferred_region)}});
      });
}

std::string exclusion_repr(const Exclusion& e) {
  return repr_of("Exclusion", {{"name", py::str(e.name)}, {"reason", py::cast(e.reason)}, {"detail", py::str(e.detail)}});
}

void bind_failover_plan(py::module_& m) {
  py::class_<Exclusion>(m, "Exclusion", "One candidate not chosen, and why.")
      .def_readonly("name", &Exclusion::name)
      .def_readonly("reason", &Exclusion::reason)
      .def_readonly("detail", &Exclusion::detail)
      .def("__repr__", &exclusion_repr);
  py::class_<FailoverPlan>(m, "FailoverPlan", "Which replica to promote (or none) and why; str() is a readable report.")
      .def_readonly("promote", &FailoverPlan::promote, "The replica to promote; None: promote no one.")
      .def_readonly("reason", &FailoverPlan::reason)
      .def_readonly("excluded", &FailoverPlan::excluded, "Every other candidate, in input order, and why.")
      .def_readonly("expected_loss_bytes", &FailoverPlan::expected_loss_bytes)
      .def_readonly("repoint", &FailoverPlan::repoint, "The other reachable replicas, to follow the new primary.")
      .def_readonly("reference_lsn", &FailoverPlan::reference_lsn)
      .def_readonly("promote_lsn", &FailoverPlan::promote_lsn)
      .def_readonly("timeline", &FailoverPlan::timeline)
      .def("__str__", &describe)
      .def("__repr__", [](const FailoverPlan& p) {
        py::list excluded;
        for (const auto& e : p.excluded) excluded.append(py::cast(e));
        py::list repoint;
        for (const auto& r : p.repoint) repoint.append(py::str(r));
        return repr_of("FailoverPlan", {{"promote", p.promote ? py::object(py::str(*p.promote)) : py::object(py::none())},
                                        {"expected_loss_bytes", py::int_(p.expected_loss_bytes)},
                                        {"reason", py::str(p.reason)},
                                        {"excluded", excluded},
                                        {"repoint", repoint}});
      });
}

std::vector<CandidateState> to_candidates(const py::handle& v) {
  std::vector<CandidateState> out;
  for (const auto& item : to_items(v, "candidates", "a sequence of replikit.CandidateState")) {
    if (!py::isinstance<CandidateState>(item)) wrong_type("candidates", "a sequence of replikit.CandidateState", item);
    out.push_back(item.cast<CandidateState>());
  }
  return out;
}

}  // namespace

void bind_failover(py::module_& m) {
  py::native_enum<ExclusionReason>(m, "ExclusionReason", "enum.Enum", "Why a failover candidate was not chosen.")
      .value("UNREACHABLE", ExclusionReason::Unreachable)
      .value("NO_FAILOVER_TAG", ExclusionReason::NoFailoverTag)
      .value("TIMELINE_BEHIND", ExclusionReason::TimelineBehind)
      .value("TOO_FAR_BEHIND", ExclusionReason::TooFarBehind)
      .value("NOT_SYNCHRONOUS", ExclusionReason::NotSynchronous)
      .value("NOT_FLUSHED_ALL_ACKNOWLEDGED", ExclusionReason::NotFlushedAllAcknowledged)
      .value("LESS_UP_TO_DATE", ExclusionReason::LessUpToDate)
      .value("LOWER_PRIORITY", ExclusionReason::LowerPriority)
      .value("OTHER_REGION", ExclusionReason::OtherRegion)
      .value("LESS_REPLAYED", ExclusionReason::LessReplayed)
      .value("NAME_ORDER", ExclusionReason::NameOrder)
      .finalize();
  bind_candidate(m);
  bind_primary(m);
  bind_failover_config(m);
  bind_failover_plan(m);
  m.attr("MAX_CANDIDATES") = kMaxCandidates;
  m.def(
      "plan_failover",
      [](const py::object& candidates, const py::object& primary, const py::object& config) {
        std::vector<CandidateState> cs = to_candidates(candidates);
        if (!py::isinstance<PrimaryState>(primary)) wrong_type("primary", "a replikit.PrimaryState", primary);
        FailoverConfig c;
        if (!config.is_none()) {
          if (!py::isinstance<FailoverConfig>(config)) wrong_type("config", "a replikit.FailoverConfig or None", config);
          c = config.cast<FailoverConfig>();
        }
        return plan_failover(cs, primary.cast<PrimaryState>(), c);
      },
      py::arg("candidates"), py::arg("primary"), py::arg("config") = py::none(),
      "The plan for replacing a failed primary: the most up-to-date eligible replica, then priority.");
}

}  // namespace replikit::bindings
