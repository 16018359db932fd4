// The PostgreSQL failover actions and the loss report in Python (the failover manager is in
// bind_failover_manager.cpp): ActionResult, AckedWrite,
// LossReport, and the action functions (replikit/pg/failover.hpp). Every action does I/O and
// releases the GIL.
#ifdef REPLIKIT_HAVE_PG
#include <pybind11/stl.h>

#include <cmath>
#include <string>

#include "convert.hpp"
#include "pg_bindings.hpp"
#include "replikit/pg/failover.hpp"

namespace replikit::bindings {

namespace {

pg::ActionOptions to_action_options(const py::object& timeout_ms) {
  pg::ActionOptions o;
  if (!timeout_ms.is_none()) o.timeout_ms = to_double(timeout_ms, "timeout_ms");
  if (!(o.timeout_ms >= 1 && o.timeout_ms <= 600000)) throw InvalidArgument("timeout_ms", "must be in [1, 600000]");
  return o;
}

py::list writes_list(const std::vector<AckedWrite>& writes) {
  py::list out;
  for (const auto& w : writes) out.append(py::cast(w));
  return out;
}

void bind_values(py::module_& m) {
  py::class_<pg::ActionResult>(m, "ActionResult", "What one failover action did (changed False: it was already so).")
      .def_readonly("action", &pg::ActionResult::action)
      .def_readonly("node", &pg::ActionResult::node)
      .def_readonly("ok", &pg::ActionResult::ok)
      .def_readonly("changed", &pg::ActionResult::changed)
      .def_readonly("detail", &pg::ActionResult::detail)
      .def_readonly("elapsed_ms", &pg::ActionResult::elapsed_ms)
      .def("__repr__", [](const pg::ActionResult& r) {
        return repr_of("ActionResult", {{"action", py::cast(r.action)}, {"node", py::cast(r.node)},
                                        {"ok", py::cast(r.ok)}, {"changed", py::cast(r.changed)},
                                        {"detail", py::cast(r.detail)},
                                        {"elapsed_ms", py::cast(std::round(r.elapsed_ms * 10) / 10)}});
      });
  py::class_<pg::LossReport>(m, "LossReport", "Which of a session's acknowledged writes the current primary lacks.")
      .def_property_readonly("lost", [](const pg::LossReport& r) { return writes_list(r.lost); })
      .def_property_readonly("unknown", [](const pg::LossReport& r) { return writes_list(r.unknown); })
      .def_readonly("survived", &pg::LossReport::survived)
      .def_readonly("current", &pg::LossReport::current)
      .def_readonly("dropped", &pg::LossReport::dropped)
      .def_readonly("timeline", &pg::LossReport::timeline)
      .def_readonly("primary", &pg::LossReport::primary)
      .def_property_readonly("lost_xids", [](const pg::LossReport& r) {
        std::vector<std::uint64_t> x;
        for (const auto& w : r.lost) x.push_back(w.xid);
        return x;
      })
      .def("__repr__", [](const pg::LossReport& r) {
        std::vector<std::uint64_t> x;
        for (const auto& w : r.lost) x.push_back(w.xid);
        return repr_of("LossReport", {{"primary", py::cast(r.primary)}, {"timeline", py::cast(r.timeline)},
                                      {"lost_xids", py::cast(x)}, {"survived", py::cast(r.survived)},
                                      {"current", py::cast(r.current)}, {"unknown", py::cast(r.unknown.size())},
                                      {"dropped", py::cast(r.dropped)}});
      });
}

template <typename F>
pg::ActionResult released(F f) {
  py::gil_scoped_release release;
  return f();
}

void bind_actions(py::module_& m) {
  m.def("fence_node", [](const py::object& node, const py::object& dsn, const py::object& timeout_ms) {
        const auto n = to_str(node, "node"), d = to_str(dsn, "dsn");
        const auto o = to_action_options(timeout_ms);
        return released([&] { return pg::fence_node(n, d, o); });
      }, py::arg("node"), py::arg("dsn"), py::kw_only(), py::arg("timeout_ms") = pg::ActionOptions{}.timeout_ms,
      "Makes a node refuse writes: default_transaction_read_only and a synchronous standby that never "
      "comes, then its client backends terminated. Idempotent.");
  m.def("promote_node", [](const py::object& node, const py::object& dsn, const py::object& timeout_ms) {
        const auto n = to_str(node, "node"), d = to_str(dsn, "dsn");
        const auto o = to_action_options(timeout_ms);
        return released([&] { return pg::promote_node(n, d, o); });
      }, py::arg("node"), py::arg("dsn"), py::kw_only(), py::arg("timeout_ms") = pg::ActionOptions{}.timeout_ms,
      "pg_promote(wait => true); a node not in recovery is already promoted. Idempotent.");
  m.def("create_slot", [](const py::object& node, const py::object& dsn, const py::object& slot,
                          const py::object& timeout_ms) {
        const auto n = to_str(node, "node"), d = to_str(dsn, "dsn"), s = to_str(slot, "slot");
        const auto o = to_action_options(timeout_ms);
        return released([&] { return pg::create_slot(n, d, s, o); });
      }, py::arg("node"), py::arg("dsn"), py::arg("slot"), py::kw_only(),
      py::arg("timeout_ms") = pg::ActionOptions{}.timeout_ms,
      "Creates a physical replication slot unless it exists. Idempotent.");
  m.def("repoint_node", [](const py::object& node, const py::object& dsn, const py::object& primary_conninfo,
                           const py::object& slot, const py::object& timeout_ms) {
        const auto n = to_str(node, "node"), d = to_str(dsn, "dsn");
        const auto c = to_str(primary_conninfo, "primary_conninfo"), s = to_str(slot, "slot");
        const auto o = to_action_options(timeout_ms);
        return released([&] { return pg::repoint_node(n, d, c, s, o); });
      }, py::arg("node"), py::arg("dsn"), py::arg("primary_conninfo"), py::arg("slot"), py::kw_only(),
      py::arg("timeout_ms") = pg::ActionOptions{}.timeout_ms,
      "Points a standby at a new primary (primary_conninfo, primary_slot_name, pg_reload_conf()). Idempotent.");
  m.def("record_failover", [](const py::object& node, const py::object& dsn, const py::object& timeline,
                              const py::object& next_xid, const py::object& timeout_ms) {
        const auto n = to_str(node, "node"), d = to_str(dsn, "dsn");
        const auto t = static_cast<std::uint32_t>(to_int64(timeline, "timeline", 1, 0xFFFFFFFFLL));
        const auto x = static_cast<std::uint64_t>(to_int64(next_xid, "next_xid", 0));
        const auto o = to_action_options(timeout_ms);
        return released([&] { return pg::record_failover(n, d, t, x, o); });
      }, py::arg("node"), py::arg("dsn"), py::arg("timeline"), py::arg("next_xid"), py::kw_only(),
      py::arg("timeout_ms") = pg::ActionOptions{}.timeout_ms,
      "Records a promotion (new timeline, next xid at promotion; 0: unknown) in replikit_failover_history "
      "on the new primary. Idempotent.");
  m.def("next_xid_bound", [](const py::object& node, const py::object& dsn, const py::object& timeout_ms)
            -> std::optional<std::uint64_t> {
        const auto n = to_str(node, "node"), d = to_str(dsn, "dsn");
        const auto o = to_action_options(timeout_ms);
        py::gil_scoped_release release;
        return pg::next_xid_bound(n, d, o);
      }, py::arg("node"), py::arg("dsn"), py::kw_only(), py::arg("timeout_ms") = pg::ActionOptions{}.timeout_ms,
      "A standby's next transaction id bound before promotion (None: not a standby, or unreachable).");
  m.def("standby_conninfo", [](const py::object& primary_dsn, const py::object& application_name) {
        return pg::standby_conninfo(to_str(primary_dsn, "primary_dsn"), to_str(application_name, "application_name"));
      }, py::arg("primary_dsn"), py::arg("application_name"),
      "The primary_conninfo for a standby named application_name: every value quoted for libpq.");
  m.def("slot_name", [](const py::object& node) { return pg::slot_name(to_str(node, "node")); }, py::arg("node"),
        "The replication slot name replikit uses for a standby.");
}

}  // namespace

void bind_failover_actions(py::module_& m) {
  bind_values(m);
  bind_actions(m);
}

}  // namespace replikit::bindings
#endif
