// What the PostgreSQL backend returns, in Python: Result (rows converted by column type on
// first use), Route, NodeStatus and DatabaseStats.
#ifdef REPLIKIT_HAVE_PG
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <vector>

#include "convert.hpp"
#include "pg_bindings.hpp"

namespace replikit::bindings {

namespace {

using pg::NodeStatus;
using pg::QueryResult;

// A QueryResult with its rows converted to Python once, on first use: each column by psycopg's
// loader for its type OID (replikit._pgvalues.load_rows: one loader per column, the loop in
// psycopg's C code), then built by the row factory.
class PyResult {
 public:
  PyResult(QueryResult raw, py::object row_factory) : raw_(std::move(raw)), row_factory_(std::move(row_factory)) {}

  const QueryResult& raw() const { return raw_; }

  // The cells as PostgreSQL sent them: tuples of bytes in text format, None for NULL.
  py::list raw_rows() const {
    py::list out(raw_.rows.size());
    for (std::size_t t = 0; t < raw_.rows.size(); ++t) {
      const auto& row = raw_.rows[t];
      py::tuple cells(row.size());
      for (std::size_t c = 0; c < row.size(); ++c) {
        if (row[c]) {
          cells[c] = py::reinterpret_steal<py::object>(
              PyBytes_FromStringAndSize(row[c]->data(), static_cast<Py_ssize_t>(row[c]->size())));
        } else {
          cells[c] = py::none();
        }
      }
      out[t] = std::move(cells);
    }
    return out;
  }
  // Rows as tuples of Python values.
  py::list tuples() {
    if (!tuples_) {
      tuples_ = raw_.rows.empty() ? py::list()
                                  : py::list(pg_values("load_rows")(raw_.type_oids, raw_.columns, raw_rows()));
    }
    return *tuples_;
  }
  // Rows as the row factory builds them (tuples without one).
  py::list rows() {
    if (!rows_) rows_ = row_factory_.is_none() ? tuples() : built_by(row_factory_);
    return *rows_;
  }
  // Rows as dicts keyed by column name (a later column wins a duplicated name).
  py::list dicts() { return built_by(pg_values("dict_row")); }
  // The first column of the first row (None when there is no row or no column).
  py::object scalar() {
    py::list all = tuples();
    if (all.empty()) return py::none();
    py::tuple t = py::reinterpret_borrow<py::tuple>(all[0]);
    return t.empty() ? py::object(py::none()) : py::object(t[0]);
  }

 private:
  py::list built_by(const py::object& factory) {
    py::list all = tuples();
    if (all.empty()) return py::list();
    return pg_values("make_rows")(factory, raw_.columns, all);
  }

  QueryResult raw_;
  py::object row_factory_;
  std::optional<py::list> rows_, tuples_;
};

py::object node_or_none(const std::string& node) { return node.empty() ? py::object(py::none()) : py::str(node); }

void bind_result(py::module_& m) {
  py::class_<PyResult>(m, "Result",
                       "What a statement returned: rows (converted by column type, built by the row factory), columns, "
                       "rowcount, and the node that served it with the routing reason.")
      .def_property_readonly("rows", &PyResult::rows,
                             "Rows as the row factory builds them (tuples by default), each value converted by "
                             "psycopg's loader for its column's type.")
      .def("dicts", &PyResult::dicts, "Rows as dicts keyed by column name.")
      .def("tuples", &PyResult::tuples, "Rows as tuples, whatever the row factory.")
      .def_property_readonly("raw_rows", &PyResult::raw_rows,
                             "The cells as PostgreSQL sent them: tuples of bytes in text format (None for NULL).")
      .def("scalar", &PyResult::scalar, "The first column of the first row (None when there is no row).")
      .def_property_readonly("columns", [](const PyResult& r) { return r.raw().columns; }, "Column names.")
      .def_property_readonly("type_oids", [](const PyResult& r) { return r.raw().type_oids; },
                             "PostgreSQL type OID of each column.")
      .def_property_readonly("rowcount", [](const PyResult& r) { return r.raw().affected_rows; },
                             "The command tag's row count: rows inserted, updated or deleted, or returned by a SELECT.")
      .def_property_readonly("node", [](const PyResult& r) { return r.raw().node; }, "The node that served it.")
      .def_property_readonly("reason", [](const PyResult& r) { return py::cast(r.raw().reason); },
                             "Why it went there (replikit.Reason).")
      .def_property_readonly("attempts", [](const PyResult& r) { return r.raw().attempts; },
                             "Nodes tried (reads retry elsewhere after a connection error).")
      .def_property_readonly("waited_ms", [](const PyResult& r) { return r.raw().waited_ms; },
                             "Time spent waiting for a replica to catch up.")
      .def_property_readonly("wait_reason", [](const PyResult& r) { return py::cast(r.raw().wait_reason); },
                             "Why the read waited for a replica, or not, when none had caught up (replikit.CatchUpReason).")
      .def_property_readonly("lsn", [](const PyResult& r) { return lsn_or_none(r.raw().lsn); },
                             "Writes: the commit LSN recorded in the session; Monotonic/Causal reads: the LSN "
                             "observed; otherwise None.")
      .def("__len__", [](const PyResult& r) { return r.raw().rows.size(); })
      .def("__iter__", [](PyResult& r) { return py::iter(r.rows()); })
      .def("__getitem__", [](PyResult& r, const py::object& i) { return r.rows().attr("__getitem__")(i); })
      .def("__repr__", [](const PyResult& r) {
        const QueryResult& q = r.raw();
        return repr_of("Result", {{"rows", py::int_(q.rows.size())}, {"columns", py::cast(q.columns)},
                                  {"rowcount", py::int_(q.affected_rows)}, {"node", py::str(q.node)},
                                  {"reason", py::cast(q.reason)}, {"attempts", py::int_(q.attempts)},
                                  {"lsn", lsn_or_none(q.lsn)}});
      });
}

void bind_route(py::module_& m) {
  py::class_<pg::Route>(m, "Route", "Where a read would go now, and why.")
      .def_property_readonly("node", [](const pg::Route& r) { return node_or_none(r.node); },
                             "The node's name, or None when no node can serve the read.")
      .def_property_readonly("reason", [](const pg::Route& r) { return py::cast(r.reason); })
      .def_property_readonly("required_lsn", [](const pg::Route& r) { return lsn_or_none(r.required_lsn); })
      .def_readonly("waited_ms", &pg::Route::waited_ms)
      .def_property_readonly("wait_reason", [](const pg::Route& r) { return py::cast(r.wait_reason); },
                             "Why it waited for a replica, or not, when none had caught up.")
      .def_property_readonly("consistency", [](const pg::Route& r) { return py::cast(r.consistency); },
                             "The consistency level it was routed for.")
      .def("__repr__", [](const pg::Route& r) {
        return repr_of("Route", {{"node", node_or_none(r.node)}, {"reason", py::cast(r.reason)},
                                 {"required_lsn", lsn_or_none(r.required_lsn)}, {"waited_ms", py::float_(r.waited_ms)},
                                 {"wait_reason", py::cast(r.wait_reason)}, {"consistency", py::cast(r.consistency)}});
      });
}

void bind_node_status(py::module_& m) {
  py::class_<NodeStatus>(m, "NodeStatus", "One node as the prober and the lag tracker see it.")
      .def_readonly("name", &NodeStatus::name)
      .def_property_readonly("role", [](const NodeStatus& s) { return py::cast(s.role); }, "Role in the topology.")
      .def_readonly("up", &NodeStatus::up, "Routable.")
      .def_readonly("reachable", &NodeStatus::reachable,
                    "The last probe succeeded and no call lost its connection to the node since.")
      .def_readonly("in_recovery", &NodeStatus::in_recovery)
      .def_readonly("role_mismatch", &NodeStatus::role_mismatch,
                    "The server's role differs from the topology's (e.g. a replica not in recovery).")
      .def_readonly("timeline", &NodeStatus::timeline)
      .def_property_readonly("current_lsn", [](const NodeStatus& s) { return lsn_or_none(s.current_lsn); })
      .def_property_readonly("receive_lsn", [](const NodeStatus& s) { return lsn_or_none(s.receive_lsn); })
      .def_property_readonly("replay_lsn", [](const NodeStatus& s) { return lsn_or_none(s.replay_lsn); })
      .def_readonly("lag_ns", &NodeStatus::lag_ns)
      .def_property_readonly("lag_ms", [](const NodeStatus& s) { return static_cast<double>(s.lag_ns) / 1e6; })
      .def_readonly("lag_bytes", &NodeStatus::lag_bytes)
      .def_property_readonly("lag_state", [](const NodeStatus& s) { return py::cast(s.lag_state); })
      .def_property_readonly("lagging", [](const NodeStatus& s) { return s.lag_state == LagState::Lagging; })
      .def_readonly("lag_known", &NodeStatus::lag_known)
      .def_property_readonly(
          "fresh_as_of_ns",
          [](const NodeStatus& s) { return fresh_or_none(s.fresh_as_of_ns); },
          "Replicas: time.monotonic_ns() as of which the node holds every commit of the primary (what "
          "bounded-staleness reads compare with max_staleness_ms); None when not known, and for the primary.")
      .def_readonly("last_probe_ns", &NodeStatus::last_probe_ns, "time.monotonic_ns() of the last completed probe.")
      .def_readonly("last_probe_sent_ns", &NodeStatus::last_probe_sent_ns,
                    "time.monotonic_ns() when that probe (or its connect) began.")
      .def_readonly("probe_rtt_ms", &NodeStatus::probe_rtt_ms)
      .def_readonly("probes_ok", &NodeStatus::probes_ok)
      .def_readonly("probes_failed", &NodeStatus::probes_failed)
      .def_readonly("last_error", &NodeStatus::last_error,
                    "The last failed probe's error, or the error of the call that marked the node down since.")
      .def_readonly("pool_open", &NodeStatus::pool_open)
      .def_readonly("pool_idle", &NodeStatus::pool_idle)
      .def("__repr__", [](const NodeStatus& s) {
        return repr_of("NodeStatus", {{"name", py::str(s.name)}, {"role", py::cast(s.role)}, {"up", py::bool_(s.up)},
                                      {"reachable", py::bool_(s.reachable)},
                                      {"role_mismatch", py::bool_(s.role_mismatch)},
                                      {"lag_ms", py::float_(static_cast<double>(s.lag_ns) / 1e6)},
                                      {"lag_state", py::cast(s.lag_state)}, {"last_error", py::str(s.last_error)}});
      });
}

// The counters as (name, value) pairs, in declaration order.
std::vector<std::pair<const char*, std::uint64_t>> stats_fields(const pg::DatabaseStats& s) {
  return {{"writes", s.writes},
          {"reads", s.reads},
          {"reads_on_replicas", s.reads_on_replicas},
          {"reads_on_primary", s.reads_on_primary},
          {"read_retries", s.read_retries},
          {"read_failures", s.read_failures},
          {"waits", s.waits},
          {"waits_served_by_replica", s.waits_served_by_replica},
          {"nodes_marked_down", s.nodes_marked_down},
          {"watchdog_fired", s.watchdog_fired}};
}

py::dict stats_dict(const pg::DatabaseStats& s) {
  py::dict d;
  for (const auto& [name, value] : stats_fields(s)) d[name] = value;
  return d;
}

void bind_database_stats(py::module_& m) {
  py::class_<pg::DatabaseStats> c(m, "DatabaseStats",
                                  "ReplicatedDatabase counters since construction (also readable as stats[name]).");
  for (const auto& [name, value] : stats_fields(pg::DatabaseStats{})) {
    (void)value;
    const std::string key = name;
    c.def_property_readonly(name, [key](const pg::DatabaseStats& s) { return stats_dict(s)[py::str(key)]; });
  }
  c.def("__getitem__", [](const pg::DatabaseStats& s, const py::object& key) -> py::object {
     py::dict d = stats_dict(s);
     if (!d.contains(key)) throw py::key_error(std::string(py::repr(key)));
     return d[key];
   })
      .def("as_dict", &stats_dict, "The counters as a dict.")
      .def("__repr__", [](const pg::DatabaseStats& s) {
        std::string out = "DatabaseStats(";
        bool first = true;
        for (const auto& [name, value] : stats_fields(s)) {
          out += (first ? "" : ", ") + std::string(name) + "=" + std::to_string(value);
          first = false;
        }
        return out + ")";
      });
}

}  // namespace

py::object lsn_or_none(Lsn lsn) { return lsn.valid() ? py::cast(lsn) : py::none(); }

py::object make_result(pg::QueryResult result, py::object row_factory) {
  return py::cast(PyResult(std::move(result), std::move(row_factory)));
}

void bind_pg_results(py::module_& m) {
  bind_result(m);
  bind_route(m);
  bind_node_status(m);
  bind_database_stats(m);
}

}  // namespace replikit::bindings
#endif  // REPLIKIT_HAVE_PG
