// Python bindings of lag tracking: LagConfig, ReplicaLag, LagEvent and LagTracker.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <limits>
#include <memory>
#include <optional>
#include <string>

#include "bindings.hpp"
#include "convert.hpp"
#include "replikit/lag.hpp"
#include "routing_values.hpp"

namespace replikit::bindings {

namespace {

std::size_t to_capacity(const py::handle& v, const char* field) {
  return static_cast<std::size_t>(to_int64(v, field, 0));
}

// Sets one LagConfig field from Python; None unsets the optional recovery marks.
void set_lag_field(LagConfig& c, const std::string& field, const py::handle& v) {
  if (field == "max_lag_ms") c.max_lag_ms = to_ms(v, "max_lag_ms");
  else if (field == "recover_lag_ms") c.recover_lag_ms = v.is_none() ? std::nullopt : std::optional(to_ms(v, "recover_lag_ms"));
  else if (field == "max_lag_bytes") c.max_lag_bytes = to_int64(v, "max_lag_bytes", 0);
  else if (field == "recover_lag_bytes")
    c.recover_lag_bytes = v.is_none() ? std::nullopt : std::optional(to_int64(v, "recover_lag_bytes", 0));
  else if (field == "stale_sample_ms") c.stale_sample_ms = to_ms(v, "stale_sample_ms");
  else if (field == "history_capacity") c.history_capacity = to_capacity(v, "history_capacity");
  else c.event_capacity = to_capacity(v, "event_capacity");
}

py::object optional_value(const std::optional<double>& v) { return v ? py::object(py::float_(*v)) : py::object(py::none()); }
py::object optional_value(const std::optional<std::int64_t>& v) { return v ? py::object(py::int_(*v)) : py::object(py::none()); }

std::string lag_config_repr(const LagConfig& c) {
  return repr_of("LagConfig", {{"max_lag_ms", py::float_(c.max_lag_ms)}, {"recover_lag_ms", optional_value(c.recover_lag_ms)},
                               {"max_lag_bytes", py::int_(c.max_lag_bytes)},
                               {"recover_lag_bytes", optional_value(c.recover_lag_bytes)},
                               {"stale_sample_ms", py::float_(c.stale_sample_ms)},
                               {"history_capacity", py::int_(c.history_capacity)},
                               {"event_capacity", py::int_(c.event_capacity)}});
}

constexpr const char* kLagFields[] = {"max_lag_ms",      "recover_lag_ms",   "max_lag_bytes", "recover_lag_bytes",
                                      "stale_sample_ms", "history_capacity", "event_capacity"};

// `base` with each field given (not None) in `values` (in kLagFields order) set: the one path of
// LagConfig(...) and LagTracker(...) keywords.
LagConfig lag_config_from(LagConfig base, std::initializer_list<py::object> values) {
  std::size_t i = 0;
  for (const auto& v : values) {
    if (!v.is_none()) set_lag_field(base, kLagFields[i], v);
    ++i;
  }
  return base;
}

}  // namespace

void bind_lag_config(py::module_& m) {
  const LagConfig d{};
  py::class_<LagConfig> c(m, "LagConfig",
                          "Lag thresholds and buffer sizes of a LagTracker. recover_lag_ms / recover_lag_bytes "
                          "None: half of max_lag_ms / max_lag_bytes.");
  c.def(py::init([](const py::object& a, const py::object& b, const py::object& bytes, const py::object& e,
                    const py::object& f, const py::object& g, const py::object& h) {
          return lag_config_from(LagConfig{}, {a, b, bytes, e, f, g, h});
        }),
        py::kw_only(), py::arg("max_lag_ms") = d.max_lag_ms, py::arg("recover_lag_ms") = py::none(),
        py::arg("max_lag_bytes") = d.max_lag_bytes, py::arg("recover_lag_bytes") = py::none(),
        py::arg("stale_sample_ms") = d.stale_sample_ms, py::arg("history_capacity") = d.history_capacity,
        py::arg("event_capacity") = d.event_capacity);
  for (const char* field : kLagFields) {
    const std::string name = field;
    c.def_property(
        field,
        [name](const LagConfig& x) -> py::object {
          if (name == "max_lag_ms") return py::float_(x.max_lag_ms);
          if (name == "recover_lag_ms") return optional_value(x.recover_lag_ms);
          if (name == "max_lag_bytes") return py::int_(x.max_lag_bytes);
          if (name == "recover_lag_bytes") return optional_value(x.recover_lag_bytes);
          if (name == "stale_sample_ms") return py::float_(x.stale_sample_ms);
          if (name == "history_capacity") return py::int_(x.history_capacity);
          return py::int_(x.event_capacity);
        },
        [name](LagConfig& x, const py::object& v) { set_lag_field(x, name, v); });
  }
  c.def(
      "for_probes",
      [](const LagConfig& x, const py::object& interval) {
        return probed_lag_config(x, to_ms(interval, "probe_interval_ms"));
      },
      py::arg("probe_interval_ms"),
      "A copy for a tracker fed by probes every probe_interval_ms: stale_sample_ms at least twice the interval "
      "(below it a primary probed on time would read as silent between its samples).");
  c.def("__eq__", [](const LagConfig& a, const py::object& b) {
     return py::isinstance<LagConfig>(b) && lag_config_repr(a) == lag_config_repr(b.cast<LagConfig>());
   })
      .def("__repr__", &lag_config_repr);
}

void bind_lag_values(py::module_& m) {
  py::class_<NamedReplicaLag>(m, "ReplicaLag", "A replica's lag as last computed.")
      .def_property_readonly("node", [](const NamedReplicaLag& l) { return l.node; }, "The replica's name.")
      .def_property_readonly("known", [](const NamedReplicaLag& l) { return l.lag.known; })
      .def_property_readonly("receive_lsn", [](const NamedReplicaLag& l) { return l.lag.receive_lsn; })
      .def_property_readonly("replay_lsn", [](const NamedReplicaLag& l) { return l.lag.replay_lsn; })
      .def_property_readonly("lag_bytes", [](const NamedReplicaLag& l) { return l.lag.lag_bytes; })
      .def_property_readonly("receive_lag_bytes", [](const NamedReplicaLag& l) { return l.lag.receive_lag_bytes; })
      .def_property_readonly("lag_ms", [](const NamedReplicaLag& l) { return static_cast<double>(l.lag.lag_ns) / 1e6; })
      .def_property_readonly("lag_ns", [](const NamedReplicaLag& l) {
        deprecated_attribute("lag_ns", "lag_ms");
        return l.lag.lag_ns;
      }, "Deprecated: lag_ms.")
      .def_property_readonly("lag_is_lower_bound", [](const NamedReplicaLag& l) { return l.lag.lag_is_lower_bound; })
      .def_property_readonly("state", [](const NamedReplicaLag& l) { return l.lag.state; })
      .def_property_readonly("sample_time_ns", [](const NamedReplicaLag& l) { return l.lag.sample_time_ns; })
      .def("__repr__", [](const NamedReplicaLag& l) {
        return repr_of("ReplicaLag", {{"node", py::str(l.node)}, {"lag_ms", py::float_(static_cast<double>(l.lag.lag_ns) / 1e6)},
                                      {"lag_bytes", py::int_(l.lag.lag_bytes)}, {"state", py::cast(l.lag.state)}});
      });

  py::class_<NamedLagEvent>(m, "LagEvent", "One OK <-> LAGGING transition.")
      .def_property_readonly("sequence", [](const NamedLagEvent& e) { return e.event.sequence; })
      .def_property_readonly("node", [](const NamedLagEvent& e) { return e.node; }, "The replica's name.")
      .def_property_readonly("kind", [](const NamedLagEvent& e) { return e.event.kind; })
      .def_property_readonly("time_ns", [](const NamedLagEvent& e) { return e.event.time_ns; })
      .def_property_readonly("lag_ms", [](const NamedLagEvent& e) { return static_cast<double>(e.event.lag_ns) / 1e6; })
      .def_property_readonly("lag_ns", [](const NamedLagEvent& e) {
        deprecated_attribute("lag_ns", "lag_ms");
        return e.event.lag_ns;
      }, "Deprecated: lag_ms.")
      .def_property_readonly("lag_bytes", [](const NamedLagEvent& e) { return e.event.lag_bytes; })
      .def("__repr__", [](const NamedLagEvent& e) {
        return repr_of("LagEvent", {{"sequence", py::int_(e.event.sequence)}, {"node", py::str(e.node)},
                                    {"kind", py::cast(e.event.kind)},
                                    {"lag_ms", py::float_(static_cast<double>(e.event.lag_ns) / 1e6)}});
      });
}

namespace {

std::shared_ptr<LagTracker> make_lag_tracker(const py::object& topology, const py::object& config,
                                             std::initializer_list<py::object> fields, const py::kwargs& kwargs) {
  const py::dict old = deprecated_keywords(kwargs, kLagKeywordRenames);
  std::vector<py::object> values;
  std::size_t i = 0;
  for (const auto& v : fields) values.push_back(renamed(v, old, kLagFields[i++]));
  LagConfig base;
  if (!config.is_none()) {
    if (!py::isinstance<LagConfig>(config)) wrong_type("config", "a replikit.LagConfig", config);
    base = config.cast<LagConfig>();
  }
  LagConfig c = lag_config_from(base, {values[0], values[1], values[2], values[3], values[4], values[5], values[6]});
  return std::make_shared<LagTracker>(to_topology(topology, "topology"), c);
}

std::vector<NamedReplicaLag> named_replicas(const LagTracker& l) {
  std::vector<NamedReplicaLag> out;
  for (const auto& r : l.replicas()) out.push_back(named(*l.topology(), r));
  return out;
}

}  // namespace

namespace {

// A CatchUpPlan with its replica's name ("" for none).
struct NamedCatchUpPlan {
  CatchUpPlan plan;
  std::string node;
};

void bind_catch_up_plan(py::module_& m) {
  py::class_<NamedCatchUpPlan>(m, "CatchUpPlan",
                               "What a read that needs an LSN no replica is known to have replayed does: wait up to "
                               "wait_ms for a replica (0: to the primary at once), and why.")
      .def_property_readonly("wait_ms", [](const NamedCatchUpPlan& p) { return p.plan.wait_ms; })
      .def_property_readonly("reason", [](const NamedCatchUpPlan& p) { return p.plan.reason; })
      .def_property_readonly("node", [](const NamedCatchUpPlan& p) { return name_or_none(p.node); },
                             "auto, REPLICA_EXPECTED: the replica expected first (else None).")
      .def_property_readonly("predicted_ms", [](const NamedCatchUpPlan& p) { return p.plan.predicted_ms; },
                             "... its replay-delay quantile in ms.")
      .def_property_readonly("samples", [](const NamedCatchUpPlan& p) { return p.plan.samples; },
                             "... measured from this many replay delays.")
      .def("__repr__", [](const NamedCatchUpPlan& p) {
        return repr_of("CatchUpPlan", {{"wait_ms", py::float_(p.plan.wait_ms)}, {"reason", py::cast(p.plan.reason)},
                                       {"node", name_or_none(p.node)}, {"predicted_ms", py::float_(p.plan.predicted_ms)},
                                       {"samples", py::int_(p.plan.samples)}});
      });
}

}  // namespace

void bind_lag_tracker_delays(py::class_<LagTracker, std::shared_ptr<LagTracker>>& c) {
  c.def("plan_catch_up",
        [](const LagTracker& l, const py::object& wait_for_replica_ms) {
          const CatchUpPlan plan = l.plan_catch_up(to_catch_up_wait(wait_for_replica_ms, "wait_for_replica_ms"));
          return NamedCatchUpPlan{plan, name_or_empty(*l.topology(), plan.node)};
        },
        py::arg("wait_for_replica_ms"),
        "How long a read that no replica covers yet may wait for one: wait_for_replica_ms a number of ms "
        "(a fixed wait) or 'auto' (wait up to 50 ms only when an up, not LAGGING replica within that bound "
        "has a replay-delay p99 within it, or too few delays measured to say).")
      .def("replay_delay_ms",
           [](const LagTracker& l, const py::object& node, const py::object& quantile) {
             return l.replay_delay_ms(to_node(*l.topology(), node, "node"), to_double(quantile, "quantile"));
           },
           py::arg("node"), py::arg("quantile") = CatchUpWait{}.quantile,
           "The `quantile` of the replica's recent replay delays in ms (time from the primary reaching an LSN "
           "to the replica being seen at it), or None before enough samples.")
      .def("replay_probability",
           [](const LagTracker& l, const py::object& node, const py::object& within_ms) {
             return l.replay_probability(to_node(*l.topology(), node, "node"), to_double(within_ms, "within_ms"));
           },
           py::arg("node"), py::arg("within_ms"),
           "The measured probability that the replica shows a commit within `within_ms` of it (the fraction of its "
           "recent replay delays at most that), or None before enough samples.")
      .def("consistent_probability",
           [](const LagTracker& l, const py::object& node, const py::object& elapsed_ms, const py::object& write_lsn) {
             return l.consistent_probability(to_node(*l.topology(), node, "node"), to_double(elapsed_ms, "elapsed_ms"),
                                             write_lsn.is_none() ? Lsn() : to_lsn(write_lsn, "write_lsn"));
           },
           py::arg("node"), py::arg("elapsed_ms"), py::arg("write_lsn") = py::none(),
           "The measured probability that the replica shows a commit made `elapsed_ms` ago (PBS style): 1 when it "
           "has replayed `write_lsn`, else the fraction of its recent replay delays at most elapsed_ms minus its "
           "time lag; None before enough samples. What Router.route_read checks for p_consistent.")
      .def("replay_delay_count",
           [](const LagTracker& l, const py::object& node) {
             return l.replay_delay_count(to_node(*l.topology(), node, "node"));
           },
           py::arg("node"), "Replay-delay samples kept for the replica (at most LagConfig.delay_capacity).");
}

void bind_lag_tracker_samples(py::class_<LagTracker, std::shared_ptr<LagTracker>>& c) {
  c.def("primary_sample",
        [](LagTracker& l, const py::object& lsn, const py::object& now_ns) {
          l.primary_sample(now_or_clock(now_ns), to_lsn(lsn, "current_lsn"));
        },
        py::arg("current_lsn"), py::arg("now_ns") = py::none(),
        "The primary was at `current_lsn` at `now_ns` (default: time.monotonic_ns()).")
      .def("replica_sample",
           [](LagTracker& l, const py::object& node, const py::object& receive_lsn, const py::object& replay_lsn,
              const py::object& now_ns) {
             int i = to_node(*l.topology(), node, "node");
             l.replica_sample(i, now_or_clock(now_ns), to_lsn(receive_lsn, "receive_lsn"), to_lsn(replay_lsn, "replay_lsn"));
           },
           py::arg("node"), py::arg("receive_lsn"), py::arg("replay_lsn"), py::arg("now_ns") = py::none(),
           "A replica (name or index) had received and replayed these LSNs at `now_ns`.")
      .def(
          "forget_replica",
          [](LagTracker& l, const py::object& node) { l.forget_replica(to_node(*l.topology(), node, "node")); },
          py::arg("node"),
          "Replica `node` (name or index) is about to be promoted: forgets its lag, a RECOVERED event first "
          "when it was LAGGING. Call before Topology.promote.")
      .def("reset", &LagTracker::reset,
           "Forgets the history and all lag (after a primary change); a LAGGING node gets a RECOVERED event.");
}

void bind_lag_tracker(py::module_& m) {
  bind_catch_up_plan(m);
  py::class_<LagTracker, std::shared_ptr<LagTracker>> c(
      m, "LagTracker", "Replica lag in bytes and time from LSN samples, with a threshold and hysteresis; feeds the Topology.");
  const std::string defaults = lag_config_repr(LagConfig{});
  c.def(py::init([](const py::object& topology, const py::object& a, const py::object& b, const py::object& d,
                    const py::object& e, const py::object& f, const py::object& g, const py::object& h,
                    const py::object& config, const py::kwargs& kwargs) {
          return make_lag_tracker(topology, config, {a, b, d, e, f, g, h}, kwargs);
        }),
        py::arg("topology"), py::arg("max_lag_ms") = py::none(), py::arg("recover_lag_ms") = py::none(),
        py::arg("max_lag_bytes") = py::none(), py::arg("recover_lag_bytes") = py::none(),
        py::arg("stale_sample_ms") = py::none(), py::arg("history_capacity") = py::none(),
        py::arg("event_capacity") = py::none(), py::kw_only(), py::arg("config") = py::none(),
        ("A tracker feeding `topology`. Each keyword left None takes its value from `config` (default " + defaults +
         "; recover_lag_* None: half of the max). Deprecated keywords: lag_ms_max, recover_ms, lag_bytes_max, "
         "recover_bytes.").c_str());
  bind_lag_tracker_samples(c);
  bind_lag_tracker_delays(c);
  c.def("replica", [](const LagTracker& l, const py::object& node) {
         return named(*l.topology(), l.replica(to_node(*l.topology(), node, "node")));
       }, py::arg("node"), "A replica's lag as last computed.")
      .def("replicas", &named_replicas, "Every replica's lag.")
      .def("events",
           [](const LagTracker& l, const py::object& after_sequence, const py::object& max_events) {
             std::vector<NamedLagEvent> out;
             for (const auto& e : l.events(to_uint64(after_sequence, "after_sequence"),
                                           static_cast<std::size_t>(to_int64(max_events, "max_events", 0)))) {
               out.push_back(named(*l.topology(), e));
             }
             return out;
           },
           py::arg("after_sequence") = 0, py::arg("max_events") = 1024, "Transition events after a sequence number, oldest first.")
      .def_property_readonly("events_dropped", &LagTracker::events_dropped, "Events dropped because the buffer was full.")
      .def("primary_time_past", [](const LagTracker& l, const py::object& lsn) -> std::optional<std::int64_t> {
             std::int64_t t = l.primary_time_past(to_lsn(lsn, "lsn"));
             if (t == std::numeric_limits<std::int64_t>::min()) return std::nullopt;
             return t;
           }, py::arg("lsn"), "When the primary first wrote past `lsn` (ns), or None if it has not yet.")
      .def("primary_lsn_since", [](const LagTracker& l, const py::object& since_ns) -> std::optional<Lsn> {
             const Lsn lsn = l.primary_lsn_since(to_int64(since_ns, "since_ns"));
             if (!lsn.valid()) return std::nullopt;
             return lsn;
           }, py::arg("since_ns"),
           "The smallest primary LSN sampled at or after `since_ns` (an upper bound of every commit "
           "acknowledged before it), or None if none is kept.")
      .def("resolve_untracked_write",
           [](const LagTracker& l, const py::object& session, const py::object& margin_ms, const py::object& now_ns,
              const py::object& wall_now_ns) {
             if (!py::isinstance<Session>(session)) wrong_type("session", "a replikit.Session", session);
             const double margin = to_double(margin_ms, "margin_ms");
             const std::int64_t wall = wall_now_ns.is_none() ? wall_ns() : to_int64(wall_now_ns, "wall_now_ns", 0);
             return resolve_untracked_write(session.cast<Session&>(), l, wall, now_or_clock(now_ns), margin);
           },
           py::arg("session"), py::arg("margin_ms") = RouterConfig{}.time_window_ms, py::kw_only(),
           py::arg("now_ns") = py::none(), py::arg("wall_now_ns") = py::none(),
           "Resolves `session`'s write of unknown commit LSN (untracked_write_ns, wall clock) with the first "
           "primary LSN sampled at least `margin_ms` after it, which becomes a write LSN of the session. "
           "now_ns (this tracker's clock, default time.monotonic_ns()) and wall_now_ns (default "
           "time.time_ns()) map the write time onto this tracker's clock. True when the session has no "
           "unresolved write left.")
      .def_property_readonly("primary_lsn", &LagTracker::primary_lsn, "The primary's last sampled LSN.")
      .def_property_readonly("history_size", &LagTracker::history_size, "Entries in the LSN history.")
      .def_property_readonly("config", [](const LagTracker& l) { return l.config(); },
                             "The configuration in force (a copy; recovery marks resolved).")
      .def_property_readonly("topology", &LagTracker::topology, "The Topology this tracker feeds.")
      .def("__repr__", [](const LagTracker& l) {
        return repr_of("LagTracker", {{"primary_lsn", py::cast(l.primary_lsn())}, {"config", py::cast(l.config())}});
      });
}

}  // namespace replikit::bindings
