// FailoverManager and FailoverReport in Python. Every call that does I/O or waits releases
// the GIL; the manager keeps its database alive (keep_alive).
#ifdef REPLIKIT_HAVE_PG
#include <pybind11/stl.h>

#include <cmath>
#include <string>

#include "convert.hpp"
#include "pg_bindings.hpp"
#include "replikit/pg/failover_manager.hpp"

namespace replikit::bindings {

namespace {

using pg::FailoverManager;
using pg::FailoverManagerOptions;
using pg::FailoverReport;

double ms_between(std::int64_t from_ns, std::int64_t to_ns) {
  if (from_ns <= 0 || to_ns <= 0) return std::nan("");
  return std::round(static_cast<double>(to_ns - from_ns) / 1e4) / 100;  // 0.01 ms
}

FailoverManagerOptions to_manager_options(const py::object& detector, const py::object& max_lag_bytes,
                                          const py::object& preferred_region, const py::object& require_permit,
                                          const py::object& keep_synchronous, const py::dict& timing) {
  FailoverManagerOptions o;
  o.require_permit = to_bool(require_permit, "require_permit");
  o.keep_synchronous = to_bool(keep_synchronous, "keep_synchronous");
  if (!detector.is_none()) {
    if (!py::isinstance<DetectorConfig>(detector)) wrong_type("detector", "a DetectorConfig", detector);
    o.detector = detector.cast<DetectorConfig>();
  }
  if (!max_lag_bytes.is_none()) o.failover.max_lag_bytes = to_int64(max_lag_bytes, "max_lag_bytes", 0);
  if (!preferred_region.is_none()) o.failover.preferred_region = to_str(preferred_region, "preferred_region");
  for (auto item : timing) {
    const std::string key = py::str(item.first);
    double* field = key == "action_timeout_ms"   ? &o.action_timeout_ms
                    : key == "check_interval_ms" ? &o.check_interval_ms
                    : key == "state_interval_ms" ? &o.state_interval_ms
                    : key == "retry_interval_ms" ? &o.retry_interval_ms
                    : key == "max_switchover_ms" ? &o.max_switchover_ms
                    : key == "max_drain_ms"      ? &o.max_drain_ms
                                                 : nullptr;
    if (field == nullptr) throw ArgumentTypeError(key.c_str(), "unexpected keyword argument");
    *field = finite(to_double(item.second, key.c_str()), key.c_str());
  }
  pg::check_options(o);
  return o;
}

void bind_report(py::module_& m) {
  py::class_<FailoverReport>(m, "FailoverReport", "What one failover or switchover did, with its times (ms).")
      .def_readonly("kind", &FailoverReport::kind)
      .def_readonly("old_primary", &FailoverReport::old_primary)
      .def_readonly("promoted", &FailoverReport::promoted)
      .def_readonly("reason", &FailoverReport::reason)
      .def_readonly("plan", &FailoverReport::plan)
      .def_readonly("actions", &FailoverReport::actions)
      .def_readonly("repointed", &FailoverReport::repointed)
      .def_readonly("next_xid", &FailoverReport::next_xid)
      .def_readonly("timeline", &FailoverReport::timeline)
      .def_readonly("epoch", &FailoverReport::epoch)
      .def_readonly("lost_writes", &FailoverReport::lost_writes)
      .def_readonly("write_pause_ms", &FailoverReport::write_pause_ms)
      .def_readonly("drained_in_flight", &FailoverReport::drained_in_flight,
                    "Switchover: calls in flight on the old primary that finished before the fence.")
      .def_readonly("cut_in_flight", &FailoverReport::cut_in_flight,
                    "Switchover: calls still in flight there at max_drain_ms, ended by the fence.")
      .def_readonly("drain_ms", &FailoverReport::drain_ms, "Switchover: how long the drain lasted.")
      .def_readonly("permit_revision", &FailoverReport::permit_revision,
                    "The lease permit's revision it acted under (0: none required).")
      .def_readonly("synchronous_standby_names", &FailoverReport::synchronous_standby_names,
                    "The synchronous_standby_names carried over to the new primary (keep_synchronous; '': none, "
                    "asynchronous).")
      .def_property_readonly("detection_ms", [](const FailoverReport& r) { return ms_between(r.last_alive_ns, r.detected_ns); },
                             "From the old primary's last good probe to the failure suspected.")
      .def_property_readonly("promotion_ms", [](const FailoverReport& r) { return ms_between(r.detected_ns, r.promoted_ns); },
                             "From the failure suspected to the promotion done.")
      .def_property_readonly("writable_ms", [](const FailoverReport& r) { return ms_between(r.detected_ns, r.writable_ns); },
                             "From the failure suspected to writes routed to the new primary.")
      .def_property_readonly("total_ms", [](const FailoverReport& r) { return ms_between(r.detected_ns, r.finished_ns); },
                             "From the failure suspected to every action done.")
      .def_readonly("last_alive_ns", &FailoverReport::last_alive_ns)
      .def_readonly("detected_ns", &FailoverReport::detected_ns)
      .def_readonly("promoted_ns", &FailoverReport::promoted_ns)
      .def_readonly("writable_ns", &FailoverReport::writable_ns)
      .def_readonly("finished_ns", &FailoverReport::finished_ns)
      .def("__repr__", [](const FailoverReport& r) {
        std::vector<std::uint64_t> lost;
        for (const auto& w : r.lost_writes.lost) lost.push_back(w.xid);
        return repr_of("FailoverReport",
                       {{"kind", py::cast(r.kind)}, {"old_primary", py::cast(r.old_primary)},
                        {"promoted", py::cast(r.promoted)}, {"reason", py::cast(r.reason)},
                        {"detection_ms", py::cast(ms_between(r.last_alive_ns, r.detected_ns))},
                        {"promotion_ms", py::cast(ms_between(r.detected_ns, r.promoted_ns))},
                        {"writable_ms", py::cast(ms_between(r.detected_ns, r.writable_ns))},
                        {"repointed", py::cast(r.repointed)}, {"timeline", py::cast(r.timeline)},
                        {"lost_xids", py::cast(lost)}, {"write_pause_ms", py::cast(r.write_pause_ms)},
                        {"drained_in_flight", py::cast(r.drained_in_flight)},
                        {"cut_in_flight", py::cast(r.cut_in_flight)}, {"drain_ms", py::cast(r.drain_ms)},
                        {"synchronous_standby_names", py::cast(r.synchronous_standby_names)}});
      });
}

void bind_manager(py::module_& m) {
  const FailoverManagerOptions d;
  py::class_<FailoverManager>(m, "FailoverManager",
                              "Watches a ReplicatedDatabase's primary and fails over when it fails (fence, promote, "
                              "epoch, slots, repoint); also planned switchover.")
      .def(py::init([](const py::object& database, const py::object& detector, const py::object& max_lag_bytes,
                       const py::object& preferred_region, const py::object& require_permit,
                       const py::object& keep_synchronous, const py::kwargs& timing) {
             if (!py::isinstance<PyReplicatedDatabase>(database)) {
               wrong_type("database", "a ReplicatedDatabase", database);
             }
             auto& db = database.cast<PyReplicatedDatabase&>();
             return std::make_unique<FailoverManager>(
                 db, to_manager_options(detector, max_lag_bytes, preferred_region, require_permit, keep_synchronous, timing));
           }),
           py::arg("database"), py::kw_only(), py::arg("detector") = py::none(), py::arg("max_lag_bytes") = py::none(),
           py::arg("preferred_region") = py::none(), py::arg("require_permit") = d.require_permit,
           py::arg("keep_synchronous") = d.keep_synchronous, py::keep_alive<1, 2>(),
           "Options (keywords, milliseconds): action_timeout_ms, check_interval_ms, state_interval_ms, "
           "retry_interval_ms, max_switchover_ms, max_drain_ms (a drain also takes at most half the database's "
           "acquire_timeout_ms: the calls a switchover holds wait at most that long). require_permit: act only under a lease permit (grant_permit). "
           "keep_synchronous: carry the old primary's synchronous_standby_names over to the new primary (its list "
           "without the old primary and the promoted node), set before the promotion; the old primary is listed there "
           "again once it streams from the new one.")
      .def("start", &FailoverManager::start, py::call_guard<py::gil_scoped_release>(), "Starts the background thread.")
      .def("stop", &FailoverManager::stop, py::call_guard<py::gil_scoped_release>(), "Stops it and waits for it.")
      .def_property_readonly("running", &FailoverManager::running)
      .def("failover_now", &FailoverManager::failover_now, py::call_guard<py::gil_scoped_release>(),
           "Fails over now, as if the primary had failed.")
      .def("switchover", [](FailoverManager& f, const py::object& candidate) {
             const std::string c = candidate.is_none() ? std::string() : to_str(candidate, "candidate");
             py::gil_scoped_release release;
             return f.switchover(c);
           }, py::arg("candidate") = py::none(), "Planned switchover to `candidate` (None: the plan's choice); drains "
           "the calls in flight on the old primary (max_drain_ms) before fencing it; zero loss.")
      .def("reports", &FailoverManager::reports, "Every report so far, oldest first.")
      .def("wait_reports", [](const FailoverManager& f, const py::object& count, const py::object& timeout_ms) {
             const auto n = static_cast<std::size_t>(to_int64(count, "count", 0));
             const double t = finite(to_double(timeout_ms, "timeout_ms"), "timeout_ms");
             if (t < 0) throw InvalidArgument("timeout_ms", "must be >= 0");
             py::gil_scoped_release release;
             return f.wait_reports(n, t);
           }, py::arg("count"), py::arg("timeout_ms"), "Waits until `count` reports exist; True when they do.")
      .def("grant_permit", [](FailoverManager& f, const py::object& permit) {
             if (!py::isinstance<LeasePermit>(permit)) wrong_type("permit", "a replikit.LeasePermit", permit);
             f.grant_permit(permit.cast<LeasePermit>());
           }, py::arg("permit"), "Grants the lease permit (valid_until_ns on time.monotonic_ns()'s clock); an older "
           "revision than one granted before is ignored.")
      .def("revoke_permit", &FailoverManager::revoke_permit, "Withdraws the permit: no action starts from now on.")
      .def_property_readonly("permit", &FailoverManager::permit, "The permit held, or None.")
      .def_property_readonly("require_permit", [](const FailoverManager& f) { return f.options().require_permit; })
      .def_property_readonly("action_timeout_ms", [](const FailoverManager& f) { return f.options().action_timeout_ms; })
      .def_property_readonly("max_drain_ms", [](const FailoverManager& f) { return f.options().max_drain_ms; })
      .def_property_readonly("keep_synchronous", [](const FailoverManager& f) { return f.options().keep_synchronous; })
      .def("__enter__", [](FailoverManager& f) -> FailoverManager& { f.start(); return f; }, py::return_value_policy::reference)
      .def("__exit__", [](FailoverManager& f, const py::args&) { py::gil_scoped_release r; f.stop(); })
      .def("__repr__", [](const FailoverManager& f) {
        return repr_of("FailoverManager", {{"running", py::cast(f.running())},
                                           {"require_permit", py::cast(f.options().require_permit)},
                                           {"reports", py::cast(f.reports().size())}});
      });
}

FailoverManager& own_manager(PyReplicatedDatabase& db, FailoverManagerOptions options) {
  if (db.failover_manager) {
    throw InvalidArgument("failover", "this database has a FailoverManager already (db.failover_manager)");
  }
  if (!db.is_open()) throw InvalidArgument("failover", "the database is closed");
  db.failover_manager = std::make_unique<FailoverManager>(db, std::move(options));
  py::gil_scoped_release release;
  db.failover_manager->start();
  return *db.failover_manager;
}

}  // namespace

PyReplicatedDatabase::~PyReplicatedDatabase() {
  if (!failover_manager) return;
  // Its thread never needs the GIL, but an event callback it triggers may: never join holding it.
  if (PyGILState_Check()) {
    py::gil_scoped_release release;
    failover_manager->stop();
  } else {
    failover_manager->stop();
  }
}

void close_database(PyReplicatedDatabase& db) {
  if (db.failover_manager) db.failover_manager->stop();
  db.close();
}

void check_failover_keyword(const py::object& failover) {
  if (failover.is_none() || py::isinstance<py::bool_>(failover) || py::isinstance<DetectorConfig>(failover)) return;
  wrong_type("failover", "True, False, None or a DetectorConfig", failover);
}

void start_owned_manager(PyReplicatedDatabase& db, const py::object& failover) {
  check_failover_keyword(failover);
  if (failover.is_none() || (py::isinstance<py::bool_>(failover) && !failover.cast<bool>())) return;
  FailoverManagerOptions o;
  if (py::isinstance<DetectorConfig>(failover)) o.detector = failover.cast<DetectorConfig>();
  own_manager(db, std::move(o));
}

void bind_database_failover(py::class_<PyReplicatedDatabase>& c) {
  c.def("start_failover_manager",
        [](PyReplicatedDatabase& db, const py::object& detector, const py::object& max_lag_bytes,
           const py::object& preferred_region, const py::object& require_permit, const py::object& keep_synchronous,
           const py::kwargs& timing) -> FailoverManager& {
          return own_manager(db, to_manager_options(detector, max_lag_bytes, preferred_region, require_permit,
                                                    keep_synchronous, timing));
        },
        py::kw_only(), py::arg("detector") = py::none(), py::arg("max_lag_bytes") = py::none(),
        py::arg("preferred_region") = py::none(), py::arg("require_permit") = FailoverManagerOptions{}.require_permit,
        py::arg("keep_synchronous") = FailoverManagerOptions{}.keep_synchronous, py::return_value_policy::reference_internal,
        "Gives this database its own FailoverManager (the FailoverManager() options), started, and returns it; "
        "close() stops it. InvalidArgument when it has one already.")
      .def_property_readonly(
          "failover_manager", [](PyReplicatedDatabase& db) { return db.failover_manager.get(); },
          py::return_value_policy::reference_internal,
          "The FailoverManager this database owns (failover=, start_failover_manager()); None: none.");
}

void bind_failover_manager(py::module_& m) {
  bind_report(m);
  bind_manager(m);
}

}  // namespace replikit::bindings
#endif
