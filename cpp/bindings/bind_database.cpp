// ReplicatedDatabase in Python. Every call that does I/O or may wait releases the GIL.
#ifdef REPLIKIT_HAVE_PG
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "convert.hpp"
#include "pg_bindings.hpp"
#include "replikit/errors.hpp"

namespace replikit::bindings {

namespace {

using pg::NodeConfig;
using pg::Params;
using pg::QueryOptions;
using pg::QueryResult;

using ReplicatedDatabase = PyReplicatedDatabase;

// A call's row factory: `row_factory` if given (checked), else `dicts=True`'s dict_row, else the
// database's.
py::object row_factory_for(const ReplicatedDatabase& db, const py::object& row_factory, const py::object& dicts) {
  const bool as_dicts = !dicts.is_none() && to_bool(dicts, "dicts");
  if (!row_factory.is_none()) {
    if (as_dicts) throw InvalidArgument("dicts", "pass either dicts=True or a row_factory, not both");
    return pg_values("check_row_factory")(row_factory);
  }
  if (as_dicts) return pg_values("dict_row");
  return db.row_factory ? db.row_factory : py::object(py::none());
}

std::unique_ptr<ReplicatedDatabase> make_database(const py::object& primary, const py::object& replicas,
                                                  const py::object& options, const py::kwargs& keywords) {
  NodeConfig p = to_node_config(primary, "primary");
  std::vector<NodeConfig> rs;
  if (!replicas.is_none()) {
    if (!py::isinstance<py::list>(replicas) && !py::isinstance<py::tuple>(replicas)) {
      wrong_type("replicas", "a list of nodes", replicas);
    }
    for (auto r : replicas) rs.push_back(to_node_config(r, "replicas"));
  }
  py::object row_factory = py::none();
  if (keywords.contains("row_factory")) {
    row_factory = keywords["row_factory"];
    if (PyDict_DelItemString(keywords.ptr(), "row_factory") != 0) throw py::error_already_set();
    if (!row_factory.is_none()) row_factory = pg_values("check_row_factory")(row_factory);
  }
  py::object failover = py::none();
  if (keywords.contains("failover")) {
    failover = keywords["failover"];
    if (PyDict_DelItemString(keywords.ptr(), "failover") != 0) throw py::error_already_set();
    check_failover_keyword(failover);
  }
  pg::DatabaseOptions o = to_database_options(options, keywords);
  std::unique_ptr<ReplicatedDatabase> db;
  {
    py::gil_scoped_release release;
    db = std::make_unique<ReplicatedDatabase>(std::move(p), std::move(rs), std::move(o));
  }
  db->row_factory = std::move(row_factory);
  event_feed(*db, /*new_database=*/true);  // logs its events from the first one on
  start_owned_manager(*db, failover);
  return db;
}

std::vector<pg::Statement> to_statements(const py::object& statements) {
  if (!py::isinstance<py::list>(statements) && !py::isinstance<py::tuple>(statements)) {
    wrong_type("statements", "a list of SQL strings or (sql, params) pairs", statements);
  }
  std::vector<pg::Statement> list;
  for (auto item : statements) {
    pg::Statement st;
    if (py::isinstance<py::str>(item)) {
      st.sql = to_str(item, "statements");
    } else if (py::isinstance<py::tuple>(item) || py::isinstance<py::list>(item)) {
      py::sequence pair = py::reinterpret_borrow<py::sequence>(item);
      if (pair.size() != 2 || !py::isinstance<py::str>(pair[0])) {
        throw InvalidArgument("statements", "each statement is a str or a (sql, params) pair");
      }
      st.sql = to_str(pair[0], "statements");
      st.params = to_params(pair[1], "statements");
    } else {
      wrong_type("statements", "a str or a (sql, params) pair for each statement", item);
    }
    list.push_back(std::move(st));
  }
  return list;
}

std::string database_repr(const ReplicatedDatabase& db) {
  py::list replicas;
  std::string primary;
  for (const NodeInfo& n : db.topology()->nodes()) {
    if (n.role == Role::Primary) {
      primary = n.name;
    } else {
      replicas.append(py::str(n.name));
    }
  }
  return repr_of("ReplicatedDatabase", {{"primary", py::str(primary)}, {"replicas", replicas},
                                        {"is_open", py::bool_(db.is_open())}});
}

void bind_calls(py::class_<ReplicatedDatabase>& c) {
  c.def("execute",
        [](ReplicatedDatabase& db, const py::object& sql, const py::object& params, const py::object& session,
           const py::object& row_factory) {
          const std::string text = to_str(sql, "sql");
          Params p = to_params(params);
          py::object rows_by = row_factory_for(db, row_factory, py::none());
          SessionArg s(session);
          QueryResult r;
          {
            py::gil_scoped_release release;
            r = db.execute(*s.ptr, text, p);
          }
          return make_result(std::move(r), rows_by);
        },
        py::arg("sql"), py::arg("params") = py::none(), py::arg("session") = py::none(), py::kw_only(),
        py::arg("row_factory") = py::none(),
        "Runs a write on the primary (autocommit) and records its commit LSN into `session`. Never retried; "
        "CommitUnknown when the connection broke while it ran. A statement that leaves a transaction open "
        "(BEGIN) raises InvalidArgument and is rolled back: use transaction(). Session-level SET is not "
        "supported on pooled connections (use SET LOCAL inside transaction()).");
  c.def("transaction",
        [](ReplicatedDatabase& db, const py::object& statements, const py::object& session,
           const py::object& row_factory) {
          std::vector<pg::Statement> list = to_statements(statements);
          py::object rows_by = row_factory_for(db, row_factory, py::none());
          SessionArg s(session);
          std::vector<QueryResult> rs;
          {
            py::gil_scoped_release release;
            rs = db.transaction(*s.ptr, list);
          }
          py::list out;
          for (auto& r : rs) out.append(make_result(std::move(r), rows_by));
          return out;
        },
        py::arg("statements"), py::arg("session") = py::none(), py::kw_only(), py::arg("row_factory") = py::none(),
        "Runs statements in one transaction on the primary, commits, records the commit LSN. "
        "CommitUnknown when the connection broke during COMMIT.");
  c.def("query",
        [](ReplicatedDatabase& db, const py::object& sql, const py::object& params, const py::object& session,
           const py::object& consistency, const py::object& max_staleness_ms, const py::object& region,
           const py::object& wait_for_replica_ms, const py::object& dicts, const py::object& row_factory,
           const py::object& p_consistent, const py::object& within_ms) {
          const std::string text = to_str(sql, "sql");
          Params p = to_params(params);
          QueryOptions q =
              to_query_options(consistency, max_staleness_ms, region, wait_for_replica_ms, p_consistent, within_ms);
          py::object rows_by = row_factory_for(db, row_factory, dicts);
          SessionArg s(session);
          QueryResult r;
          {
            py::gil_scoped_release release;
            r = db.query(*s.ptr, text, p, q);
          }
          return make_result(std::move(r), rows_by);
        },
        py::arg("sql"), py::arg("params") = py::none(), py::arg("session") = py::none(), py::kw_only(),
        py::arg("consistency") = py::cast(pg::QueryOptions{}.consistency), py::arg("max_staleness_ms") = py::none(),
        py::arg("region") = py::none(), py::arg("wait_for_replica_ms") = py::none(), py::arg("dicts") = false,
        py::arg("row_factory") = py::none(), py::arg("p_consistent") = py::none(),
        py::arg("within_ms") = pg::QueryOptions{}.within_ms,
        "Runs a read where the router sends it for `consistency` (a replikit.Consistency or its name). "
        "p_consistent (EVENTUAL only): within `within_ms` of the session's last write, a replica serves only "
        "when it shows that write with at least this measured probability (else a catch-up wait, or the primary). "
        "Retries on another node after a connection error (read_retries), so it is for reads only: writes "
        "go through execute() or transaction(). Monotonic and causal reads record the LSN they saw into "
        "the session. Rows as `row_factory` builds them (None: the database's; dicts=True: dict_row).");
}

void bind_adapter_calls(py::class_<ReplicatedDatabase>& c) {
  c.def("route_read",
        [](ReplicatedDatabase& db, const py::object& session, const py::object& consistency,
           const py::object& max_staleness_ms, const py::object& region, const py::object& wait_for_replica_ms,
           const py::object& p_consistent, const py::object& within_ms) {
          QueryOptions q =
              to_query_options(consistency, max_staleness_ms, region, wait_for_replica_ms, p_consistent, within_ms);
          SessionArg s(session);
          py::gil_scoped_release release;
          return db.route_read(*s.ptr, q);
        },
        py::arg("session") = py::none(), py::kw_only(), py::arg("consistency") = py::cast(pg::QueryOptions{}.consistency),
        py::arg("max_staleness_ms") = py::none(), py::arg("region") = py::none(),
        py::arg("wait_for_replica_ms") = py::none(), py::arg("p_consistent") = py::none(),
        py::arg("within_ms") = pg::QueryOptions{}.within_ms,
        "Where a read would go now (waiting for a replica like query() does); runs and counts nothing (report "
        "a read run elsewhere with record_read).");
  c.def("record_read",
        [](const ReplicatedDatabase& db, const py::object& node, const py::object& reason) {
          db.record_read(to_str(node, "node"), to_enum<Reason>(reason, "reason"));
        },
        py::arg("node"), py::arg("reason"),
        "Counts a read that the caller ran itself on `node` (e.g. after route_read) in stats() and the "
        "router's counters.");
  c.def("record_write",
        [](const ReplicatedDatabase& db, const py::object& session, const py::object& commit_lsn) {
          if (!py::isinstance<Session>(session)) wrong_type("session", "a replikit.Session", session);
          db.record_write(session.cast<Session&>(), commit_lsn.is_none() ? Lsn() : to_lsn(commit_lsn, "commit_lsn"));
        },
        py::arg("session"), py::arg("commit_lsn"),
        "Records a write made elsewhere (e.g. through psycopg) at `commit_lsn` (None: unknown) into `session`, "
        "and counts it in stats() and the router's counters.");
  c.def("mark_down", [](ReplicatedDatabase& db, const py::object& name) { db.mark_down(to_str(name, "name")); },
        py::arg("name"), "Marks a node down until the prober's next good probe.");
}

void bind_status(py::class_<ReplicatedDatabase>& c) {
  c.def("lost_writes", [](ReplicatedDatabase& db, const py::object& session) {
         if (session.is_none()) {
           py::gil_scoped_release release;
           return db.lost_writes();
         }
         if (!py::isinstance<Session>(session)) wrong_type("session", "a Session or None", session);
         const Session& s = session.cast<const Session&>();
         py::gil_scoped_release release;
         return db.lost_writes(s);
       }, py::arg("session") = py::none(),
       "Which acknowledged writes the current primary lacks after failovers (LossReport): the session's, or "
       "(None) every write this database acknowledged.");
  c.def_property(
      "timeline_history", [](const ReplicatedDatabase& db) { return db.timeline_history(); },
      [](ReplicatedDatabase& db, const py::object& history) {
        if (!py::isinstance<TimelineHistory>(history)) wrong_type("history", "a TimelineHistory", history);
        db.set_timeline_history(history.cast<TimelineHistory>());
      },
      "The timeline history sessions are reconciled against (the FailoverManager sets it after a failover).");
  c.def("apply_topology", [](ReplicatedDatabase& db, const py::object& topology) {
         if (!py::isinstance<PublishedTopology>(topology)) wrong_type("topology", "a replikit.PublishedTopology", topology);
         const PublishedTopology t = topology.cast<PublishedTopology>();
         py::gil_scoped_release release;
         return db.apply_topology(t);
       }, py::arg("topology"),
       "Applies a topology the coordinating leader published (its primary becomes this database's); an older "
       "revision, or one from an older leader, is ignored. Returns a TopologyVerdict.");
  c.def_property_readonly("published_topology", &ReplicatedDatabase::published_topology,
                          "The last published topology applied, or None.");
  c.def("nodes", &ReplicatedDatabase::nodes, "Every node's status.")
      .def("node", [](const ReplicatedDatabase& db, const py::object& name) { return db.node(to_str(name, "name")); },
           py::arg("name"), "One node's status.")
      .def("stats", &ReplicatedDatabase::stats, "Counters since construction (a DatabaseStats).")
      .def("wait_probes",
           [](const ReplicatedDatabase& db, const py::object& count, const py::object& timeout_ms) {
             const int n = to_int(count, "count");
             const double ms = to_double(timeout_ms, "timeout_ms");
             py::gil_scoped_release release;
             return db.wait_probes(n, ms);
           },
           py::arg("count") = 1, py::arg("timeout_ms") = 5000.0,
           "Waits until every node completed `count` more probes; False if `timeout_ms` passed first.")
      .def("dsn", [](const ReplicatedDatabase& db, const py::object& name) { return db.dsn(to_str(name, "name")); },
           py::arg("name"), "A node's DSN as given.")
      .def_property_readonly("options", [](const ReplicatedDatabase& db) { return db.options(); },
                             "A copy of the settings in force (a DatabaseOptions).")
      .def_property_readonly("probe_interval_ms", [](const ReplicatedDatabase& db) {
        return db.options().probe_interval_ms;
      })
      .def_property_readonly("wait_for_replica_ms", [](const ReplicatedDatabase& db) {
        return catch_up_wait_object(db.options().wait_for_replica);
      }, "The default catch-up wait: its milliseconds, or 'auto'.")
      .def_property_readonly("topology", &ReplicatedDatabase::topology, "The replikit.Topology it drives.")
      .def_property_readonly("lag_tracker", &ReplicatedDatabase::lag_tracker, "The replikit.LagTracker it feeds.")
      .def_property_readonly("router", &ReplicatedDatabase::router, "The replikit.Router it routes with.")
      .def_static("now_ns", &ReplicatedDatabase::now_ns,
                  "The backend's clock of probes, lag samples and deadlines (= time.monotonic_ns()).")
      .def_static("wall_clock_ns", &ReplicatedDatabase::wall_clock_ns,
                  "The backend's clock of session time, passed to route_read and record_write "
                  "(= time.time_ns(); tokens carry it between hosts).")
      .def("__repr__", &database_repr);
}

}  // namespace

void bind_database(py::module_& m) {
  py::class_<ReplicatedDatabase> c(
      m, "ReplicatedDatabase",
      "A PostgreSQL primary and its replicas: writes on the primary with the commit LSN captured into the "
      "session, reads routed by consistency level, a background prober feeding the lag tracker, bounded "
      "pools, and typed errors. Blocking calls release the GIL.");
  c.def(py::init(&make_database), py::arg("primary"), py::arg("replicas") = py::list(),
        py::arg("options") = py::none(),
        "Nodes as (name, dsn) tuples or dicts with name, dsn, region, weight, priority. DSNs go to libpq "
        "unchanged (a malformed one raises ConnectionError with libpq's message). Settings come from "
        "`options` (a DatabaseOptions; None: the defaults) with any keyword (the DatabaseOptions attribute "
        "names) applied on top; `row_factory=` sets the default row factory of results (None: tuples); "
        "`failover=` True (or a DetectorConfig) gives it its own FailoverManager, started "
        "(db.failover_manager; stopped by close()). Starts the prober; connects lazily.");
  c.def_property(
      "row_factory", [](const ReplicatedDatabase& db) { return db.row_factory ? db.row_factory : py::none(); },
      [](ReplicatedDatabase& db, const py::object& value) {
        db.row_factory = value.is_none() ? py::object(py::none()) : pg_values("check_row_factory")(value);
      },
      "The default row factory of results (None: tuples); a call's row_factory= overrides it.");
  bind_calls(c);
  bind_adapter_calls(c);
  bind_status(c);
  bind_database_events(c);
  bind_database_failover(c);
  c.def("close", &close_database, py::call_guard<py::gil_scoped_release>(),
        "Stops its own FailoverManager if it has one, refuses new calls, waits for the calls in flight (each "
        "still bounded by its deadline), stops the prober and closes every connection. Safe to call from "
        "several threads at once.")
      .def_property_readonly("is_open", &ReplicatedDatabase::is_open)
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](ReplicatedDatabase& db, const py::args&) {
        py::gil_scoped_release release;
        close_database(db);
      });
}

}  // namespace replikit::bindings
#endif  // REPLIKIT_HAVE_PG
