// Python bindings of the router: RouterConfig, Decision, InFlight and Router.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>

#include "bindings.hpp"
#include "convert.hpp"
#include "replikit/router.hpp"
#include "routing_values.hpp"

namespace replikit::bindings {

namespace {

// `with router.in_flight(node):` for least-outstanding accounting.
struct InFlightGuard {
  std::shared_ptr<Router> router;
  int node;
  bool entered;
};

constexpr const char* kRouterFields[] = {"policy", "time_window_ms", "seed", "region", "sticky_reads"};

// Sets one RouterConfig field from Python.
void set_router_field(RouterConfig& c, const std::string& field, const py::handle& v) {
  if (field == "policy") c.policy = to_enum<Policy>(v, "policy");
  else if (field == "time_window_ms") c.time_window_ms = to_ms(v, "time_window_ms");
  else if (field == "seed") c.seed = to_uint64(v, "seed");
  else if (field == "region") c.region = to_str(v, "region");
  else c.sticky_reads = static_cast<std::uint32_t>(to_int64(v, "sticky_reads", 1, 1000000));
}

py::object router_field(const RouterConfig& c, const std::string& field) {
  if (field == "policy") return py::cast(c.policy);
  if (field == "time_window_ms") return py::float_(c.time_window_ms);
  if (field == "seed") return py::int_(c.seed);
  if (field == "region") return py::str(c.region);
  return py::int_(c.sticky_reads);
}

std::string router_config_repr(const RouterConfig& c) {
  return repr_of("RouterConfig", {{"policy", router_field(c, "policy")}, {"time_window_ms", router_field(c, "time_window_ms")},
                                  {"seed", router_field(c, "seed")}, {"region", router_field(c, "region")},
                                  {"sticky_reads", router_field(c, "sticky_reads")}});
}

// `base` with each field given (not None) in `values` (in kRouterFields order) set: the one path
// of RouterConfig(...) and Router(...) keywords.
RouterConfig router_config_from(RouterConfig base, std::initializer_list<py::object> values) {
  std::size_t i = 0;
  for (const auto& v : values) {
    if (!v.is_none()) set_router_field(base, kRouterFields[i], v);
    ++i;
  }
  return base;
}

}  // namespace

void bind_router_config(py::module_& m) {
  const RouterConfig d{};
  py::class_<RouterConfig> c(m, "RouterConfig", "How a Router spreads reads: policy, time window, seed, region, stickiness.");
  c.def(py::init([](const py::object& a, const py::object& b, const py::object& e, const py::object& f,
                    const py::object& g) { return router_config_from(RouterConfig{}, {a, b, e, f, g}); }),
        py::kw_only(), py::arg("policy") = d.policy, py::arg("time_window_ms") = d.time_window_ms,
        py::arg("seed") = d.seed, py::arg("region") = d.region, py::arg("sticky_reads") = d.sticky_reads);
  for (const char* field : kRouterFields) {
    const std::string name = field;
    c.def_property(field, [name](const RouterConfig& x) { return router_field(x, name); },
                   [name](RouterConfig& x, const py::object& v) { set_router_field(x, name, v); });
  }
  c.def("__eq__", [](const RouterConfig& a, const py::object& b) {
     return py::isinstance<RouterConfig>(b) && router_config_repr(a) == router_config_repr(b.cast<RouterConfig>());
   })
      .def("__repr__", &router_config_repr);
}

void bind_decision(py::module_& m) {
  py::class_<NamedDecision>(m, "Decision", "Where a request goes and why.")
      .def_property_readonly("node", [](const NamedDecision& d) { return name_or_none(d.node); },
                             "The node's name, or None when nothing can serve the request.")
      .def_property_readonly("node_name", [](const NamedDecision& d) {
        deprecated_attribute("node_name", "node");
        return name_or_none(d.node);
      }, "Deprecated: node (now the name).")
      .def_property_readonly("reason", [](const NamedDecision& d) { return d.decision.reason; })
      .def_property_readonly("epoch", [](const NamedDecision& d) { return d.decision.epoch; })
      .def_property_readonly("required_lsn", [](const NamedDecision& d) { return d.decision.required_lsn; })
      .def_property_readonly("to_primary", [](const NamedDecision& d) { return d.decision.to_primary(); },
                             "True when the request goes to the primary.")
      .def("__repr__", [](const NamedDecision& d) {
        return repr_of("Decision", {{"node", name_or_none(d.node)}, {"reason", py::cast(d.decision.reason)}});
      });

  py::class_<InFlightGuard>(m, "InFlight", "Context manager counting one request in flight on a node.")
      .def("__enter__", [](InFlightGuard& g) {
        if (g.entered) throw InvalidArgument("in_flight", "already entered");
        g.router->begin(g.node);
        g.entered = true;
        return g.router->topology()->name(g.node);
      })
      .def("__exit__", [](InFlightGuard& g, const py::args&) {
        if (g.entered) g.router->end(g.node);
        g.entered = false;
        return false;
      });
}

namespace {

using U64Array = py::array_t<std::uint64_t, py::array::c_style | py::array::forcecast>;

// A 1-D array of LSNs from a numpy array or sequence: unsigned or non-negative signed integers,
// or (object / str arrays) anything to_lsn accepts. Floats, bools and negative values are refused
// rather than silently cast (NaN or -1 would otherwise become arbitrary LSNs).
U64Array to_lsn_array(const py::handle& value, const char* argument) {
  py::array a;
  try {
    a = py::module_::import("numpy").attr("asarray")(value);
  } catch (const py::error_already_set&) {
    throw InvalidArgument(argument, "expected a 1-D array of LSNs");
  }
  if (a.ndim() != 1) throw InvalidArgument(argument, "must be a 1-D array");
  if (a.size() == 0) return U64Array(0);
  const char kind = a.dtype().kind();
  if (kind == 'u') return a.cast<U64Array>();
  if (kind == 'i') {
    if (py::cast<bool>(a.attr("__lt__")(0).attr("any")())) throw InvalidArgument(argument, "LSNs must not be negative");
    return a.cast<U64Array>();
  }
  if (kind == 'O' || kind == 'U') {
    U64Array out(a.size());
    std::uint64_t* data = out.mutable_data();
    py::ssize_t k = 0;
    for (auto item : a.attr("tolist")()) data[k++] = to_lsn(item, argument).value;
    return out;
  }
  throw InvalidArgument(argument, "expected integer LSNs, got an array of dtype " + std::string(py::str(a.dtype())));
}

const Session& to_session_ref(const py::handle& value) {
  if (!py::isinstance<Session>(value)) wrong_type("session", "a replikit.Session", value);
  return value.cast<const Session&>();
}

// Read options from Python; max_staleness_ms is checked whenever given, so a NaN is refused
// even where it would be ignored.
ReadOptions read_options(const Router& r, const py::object& max_staleness_ms, const py::object& region) {
  ReadOptions o;
  if (!max_staleness_ms.is_none()) o.max_staleness_ms = to_ms(max_staleness_ms, "max_staleness_ms");
  if (!region.is_none()) {
    const std::string name = to_str(region, "region");
    o.region = r.topology()->region_id(name);
    if (o.region == kNoNode) throw InvalidArgument("region", "no node is in region '" + name + "'");
  }
  return o;
}

// ReadOptions::tracker_now_ns of a read: as given; else now_ns' clock when now_ns is given (one
// clock for both); else LagTracker's default clock, time.monotonic_ns() (now_ns: the wall clock).
// Only BOUNDED_STALENESS reads use it: the others do not read the clock.
std::int64_t tracker_now(Consistency k, const py::object& now_ns, const py::object& tracker_now_ns) {
  if (!tracker_now_ns.is_none()) return to_int64(tracker_now_ns, "tracker_now_ns", 0);
  return k == Consistency::BoundedStaleness && now_ns.is_none() ? monotonic_ns() : -1;
}

py::tuple route_reads(Router& r, const py::object& write_lsns_obj, const py::object& read_lsns_obj,
                      const py::object& consistency_obj, const py::object& now_ns, const py::object& max_staleness_ms) {
  const Consistency consistency = to_enum<Consistency>(consistency_obj, "consistency");
  U64Array write_lsns = to_lsn_array(write_lsns_obj, "write_lsns");
  auto w = write_lsns.unchecked<1>();
  U64Array read_lsns = read_lsns_obj.is_none() ? U64Array(w.shape(0)) : to_lsn_array(read_lsns_obj, "read_lsns");
  if (read_lsns_obj.is_none()) std::fill_n(read_lsns.mutable_data(), w.shape(0), 0);
  if (read_lsns.ndim() != 1 || read_lsns.shape(0) != w.shape(0)) {
    throw InvalidArgument("read_lsns", "must be a 1-D array as long as write_lsns");
  }
  auto rd = read_lsns.unchecked<1>();
  const py::ssize_t n = w.shape(0);
  py::array_t<std::int32_t> nodes(n);
  py::array_t<std::uint8_t> reasons(n);
  auto out_nodes = nodes.mutable_unchecked<1>();
  auto out_reasons = reasons.mutable_unchecked<1>();
  ReadOptions o = read_options(r, max_staleness_ms, py::none());
  o.tracker_now_ns = tracker_now(consistency, now_ns, py::none());
  // Checked before the loop, so an empty batch rejects the same input as a full one.
  if (consistency == Consistency::BoundedStaleness && max_staleness_ms.is_none()) {
    throw InvalidArgument("max_staleness_ms", "BOUNDED_STALENESS needs a max_staleness_ms");
  }
  const std::int64_t now = now_or_wall(now_ns);
  {
    py::gil_scoped_release release;
    Session s;
    for (py::ssize_t i = 0; i < n; ++i) {
      s.write_lsn = Lsn(w(i));
      s.read_lsn = Lsn(rd(i));
      const Decision d = r.route_read(s, consistency, now, o);
      out_nodes(i) = d.node;
      out_reasons(i) = static_cast<std::uint8_t>(d.reason);
    }
  }
  return py::make_tuple(nodes, reasons);
}

constexpr const char* kRouteReadsDoc =
    "Routes one read per element of the LSN arrays (a batch API, so it answers with indexes): returns "
    "(nodes, reasons), an int32 array of node indexes (-1: no node) and a uint8 array of Reason values. "
    "Map them with router.topology.name(i) (or numpy.array(names)[nodes] for names = "
    "[t.name(i) for i in range(len(t))]) and replikit.Reason(r).";

py::dict counters_dict(const Router& r) {
  const RouterCounters c = r.counters();
  const Topology& t = *r.topology();
  py::dict by_node, by_reason;
  for (std::size_t i = 0; i < c.by_node.size(); ++i) {
    if (c.by_node[i] != 0) by_node[py::str(t.name(static_cast<int>(i)))] = c.by_node[i];
  }
  for (int k = 0; k < kReasonCount; ++k) {
    if (c.by_reason[k] != 0) by_reason[py::str(to_string(static_cast<Reason>(k)))] = c.by_reason[k];
  }
  py::dict out;
  out["by_node"] = by_node;
  out["by_reason"] = by_reason;
  out["total"] = c.total;
  return out;
}

}  // namespace

void bind_router_routes(py::class_<Router, std::shared_ptr<Router>>& c) {
  c.def("route_write", [](Router& r) { return named(*r.topology(), r.route_write()); },
        "Where a write goes: the primary, or node None with reason PRIMARY_DOWN.")
      .def("route_read",
           [](Router& r, const py::object& session, const py::object& consistency, const py::object& now_ns,
              const py::object& max_staleness_ms, const py::object& region, const py::object& count,
              const py::object& p_consistent, const py::object& within_ms, const py::object& tracker_now_ns) {
             const Session& s = to_session_ref(session);
             const Consistency k = to_enum<Consistency>(consistency, "consistency");
             ReadOptions o = read_options(r, max_staleness_ms, region);
             o.tracker_now_ns = tracker_now(k, now_ns, tracker_now_ns);
             o.count = to_bool(count, "count");
             if (!p_consistent.is_none()) o.p_consistent = to_double(p_consistent, "p_consistent");
             o.within_ms = to_double(within_ms, "within_ms");
             return named(*r.topology(), r.route_read(s, k, now_or_wall(now_ns), o));
           },
           py::arg("session"), py::arg("consistency") = kDefaultConsistency, py::arg("now_ns") = py::none(),
           py::arg("max_staleness_ms") = py::none(), py::arg("region") = py::none(),
           py::arg("count") = ReadOptions{}.count, py::arg("p_consistent") = py::none(),
           py::arg("within_ms") = ReadOptions{}.within_ms, py::arg("tracker_now_ns") = py::none(),
           "Where a read goes (consistency: a Consistency or its name; now_ns: wall-clock ns, the clock of "
           "record_write, default time.time_ns()). max_staleness_ms (BOUNDED_STALENESS): the most a replica may "
           "be behind now, on a safe upper bound (now minus the last primary sample at or below its replay LSN, "
           "on the LagTracker's clock: tracker_now_ns, default now_ns when given, else time.monotonic_ns()); a "
           "bound below the probe interval plus the replication delay sends the read to the primary "
           "(NO_REPLICA_FRESH). count=False: not counted (a caller that may route again "
           "counts the decision it acts on with record()). p_consistent (EVENTUAL only): within `within_ms` of the "
           "session's last write, only a replica that shows that write with at least this measured probability "
           "serves (reason REPLICA_LIKELY_CONSISTENT), else the primary (NO_REPLICA_LIKELY_CONSISTENT).")
      .def("route_read_fast",
           [](Router& r, const py::handle& session, const py::handle& consistency, const py::handle& max_staleness_ms) {
             static const Session no_session;  // never changed: routing only reads a session
             const Session& s = session.is_none() ? no_session : to_session_ref(session);
             const Consistency k = to_enum<Consistency>(consistency, "consistency");
             ReadOptions o;
             if (!max_staleness_ms.is_none()) o.max_staleness_ms = to_ms(max_staleness_ms, "max_staleness_ms");
             o.count = false;
             if (k == Consistency::BoundedStaleness) o.tracker_now_ns = monotonic_ns();  // LagTracker's clock
             return named(*r.topology(), r.route_read(s, k, wall_ns(), o));
           },
           py::arg("session"), py::arg("consistency"), py::arg("max_staleness_ms") = py::none(),
           "route_read(session, consistency, max_staleness_ms=..., count=False) in one lean call for a "
           "per-query caller (a connection router): session None routes as a session that never wrote; "
           "the wall clock; not counted (record() the decision acted on).")
      .def("record",
           [](Router& r, const py::object& decision) {
             if (!py::isinstance<NamedDecision>(decision)) wrong_type("decision", "a replikit.Decision", decision);
             r.record(decision.cast<const NamedDecision&>().decision);
           },
           py::arg("decision"),
           "Counts a decision as if it had just been made (one routed with count=False).")
      .def("route_reads", &route_reads, py::arg("write_lsns"), py::arg("read_lsns") = py::none(),
           py::arg("consistency") = kDefaultConsistency, py::arg("now_ns") = py::none(),
           py::arg("max_staleness_ms") = py::none(), kRouteReadsDoc);
}

void bind_router(py::module_& m) {
  py::class_<Router, std::shared_ptr<Router>> c(m, "Router", "Routes writes to the primary and reads to qualifying replicas.");
  const std::string defaults = router_config_repr(RouterConfig{});
  c.def(py::init([](const py::object& topology, const py::object& a, const py::object& b, const py::object& d,
                    const py::object& e, const py::object& f, const py::object& config) {
          RouterConfig base;
          if (!config.is_none()) {
            if (!py::isinstance<RouterConfig>(config)) wrong_type("config", "a replikit.RouterConfig", config);
            base = config.cast<RouterConfig>();
          }
          return std::make_shared<Router>(to_topology(topology, "topology"), router_config_from(base, {a, b, d, e, f}));
        }),
        py::arg("topology"), py::arg("policy") = py::none(), py::arg("time_window_ms") = py::none(),
        py::arg("seed") = py::none(), py::arg("region") = py::none(), py::arg("sticky_reads") = py::none(),
        py::kw_only(), py::arg("config") = py::none(),
        ("A router. Each keyword left None takes its value from `config` (default " + defaults +
         "). policy: a Policy or its name. sticky_reads > 1 keeps a thread's consecutive reads on the replica it "
         "chose while it qualifies (warm connections), re-balancing every sticky_reads reads.").c_str());
  bind_router_routes(c);
  c.def_property_readonly("topology", &Router::topology)
      .def_property_readonly("policy", [](const Router& r) { return r.config().policy; })
      .def_property_readonly("config", [](const Router& r) { return r.config(); }, "The configuration (a copy).")
      .def("begin", [](Router& r, const py::object& node) { r.begin(to_node(*r.topology(), node, "node")); },
           py::arg("node"), "Counts a request starting on a node (for LEAST_OUTSTANDING).")
      .def("end", [](Router& r, const py::object& node) { r.end(to_node(*r.topology(), node, "node")); },
           py::arg("node"), "Counts a request on a node finishing.")
      .def("in_flight",
           [](std::shared_ptr<Router> r, const py::object& node) {
             const int index = to_node(*r->topology(), node, "node");
             return InFlightGuard{std::move(r), index, false};
           },
           py::arg("node"), "A context manager: begin() on enter, end() on exit (enter gives the node's name).")
      .def("counters", &counters_dict, "Decision counts: {'by_node': {...}, 'by_reason': {...}, 'total': n}.")
      .def("reset_counters", &Router::reset_counters, "Zeroes the decision counters.")
      .def("__repr__", [](const Router& r) {
        return repr_of("Router", {{"topology", py::cast(r.topology())}, {"config", py::cast(r.config())}});
      });
}

}  // namespace replikit::bindings
