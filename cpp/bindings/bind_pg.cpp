// Python bindings of the PostgreSQL backend (cpp/pg): ReplicatedDatabase and its results.
// Built only with libpqxx (REPLIKIT_HAVE_PG); otherwise the module just says HAVE_PG = False.
// Every call that does I/O or may wait releases the GIL.
#include "bindings.hpp"

#ifdef REPLIKIT_HAVE_PG
#include <pybind11/stl.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "convert.hpp"
#include "replikit/errors.hpp"
#include "replikit/pg/database.hpp"
#endif

namespace replikit::bindings {

#ifdef REPLIKIT_HAVE_PG
namespace {

using pg::DatabaseOptions;
using pg::NodeConfig;
using pg::NodeStatus;
using pg::Params;
using pg::QueryOptions;
using pg::QueryResult;
using pg::ReplicatedDatabase;

// PostgreSQL type OIDs converted to Python types (pg_type.dat).
constexpr std::uint32_t kBoolOid = 16, kInt8Oid = 20, kInt2Oid = 21, kInt4Oid = 23, kOidOid = 26,
                        kFloat4Oid = 700, kFloat8Oid = 701, kNumericOid = 1700;

// An enum value as the routing bindings' Python enum, or its text name when that enum is not
// registered (bind_routing builds without it).
template <typename E>
py::object enum_object(E value) {
  try {
    return py::cast(value);
  } catch (const py::cast_error&) {
    return py::str(to_string(value));
  }
}

Consistency to_consistency(const py::handle& v) { return to_enum<Consistency>(v, "consistency"); }
Policy to_policy(const py::handle& v) { return to_enum<Policy>(v, "policy"); }

// Statement parameters: a list or tuple; None -> NULL, bool -> true/false, bytes -> bytea hex,
// anything else -> str(value) (int, float, Decimal, str, datetime ... all have PostgreSQL's
// input syntax). The server infers each parameter's type from the statement.
Params to_params(const py::handle& params) {
  Params out;
  if (params.is_none()) return out;
  if (!py::isinstance<py::list>(params) && !py::isinstance<py::tuple>(params)) {
    throw InvalidArgument("params", "expected a list or tuple of parameters ($1, $2, ...), got " +
                                        type_name(params));
  }
  py::sequence seq = py::reinterpret_borrow<py::sequence>(params);
  require(seq.size() <= 65535, "params", "at most 65535 parameters");
  for (auto item : seq) {
    if (item.is_none()) {
      out.emplace_back(std::nullopt);
    } else if (py::isinstance<py::bool_>(item)) {
      out.emplace_back(item.cast<bool>() ? "true" : "false");
    } else if (py::isinstance<py::str>(item)) {
      out.emplace_back(item.cast<std::string>());
    } else if (py::isinstance<py::bytes>(item) || py::isinstance<py::bytearray>(item) ||
               py::isinstance<py::memoryview>(item)) {
      std::string raw = py::bytes(py::module_::import("builtins").attr("bytes")(item)).cast<std::string>();
      static const char digits[] = "0123456789abcdef";
      std::string hex = "\\x";
      for (unsigned char c : raw) {
        hex.push_back(digits[c >> 4]);
        hex.push_back(digits[c & 15]);
      }
      out.emplace_back(std::move(hex));
    } else if (py::isinstance<py::float_>(item)) {
      out.emplace_back(py::repr(item).cast<std::string>());  // shortest round-trip form; inf/nan accepted
    } else {
      out.emplace_back(py::str(item).cast<std::string>());
    }
  }
  return out;
}

// A Session from `session` (None: a throwaway one for this call).
struct SessionArg {
  Session local;
  Session* ptr = nullptr;
  explicit SessionArg(const py::object& session) {
    if (session.is_none()) {
      ptr = &local;
    } else {
      try {
        ptr = &session.cast<Session&>();
      } catch (const py::cast_error&) {
        throw InvalidArgument("session", "expected a replikit.Session or None, got " +
                                             type_name(session));
      }
    }
  }
};

NodeConfig to_node_config(const py::handle& value, const char* argument) {
  NodeConfig c;
  if (py::isinstance<py::tuple>(value) || py::isinstance<py::list>(value)) {
    py::sequence s = py::reinterpret_borrow<py::sequence>(value);
    if (s.size() != 2 || !py::isinstance<py::str>(s[0]) || !py::isinstance<py::str>(s[1])) {
      throw InvalidArgument(argument, "a node as a tuple must be (name, dsn), both str");
    }
    c.name = s[0].cast<std::string>();
    c.dsn = s[1].cast<std::string>();
    return c;
  }
  if (py::isinstance<py::dict>(value)) {
    py::dict d = py::reinterpret_borrow<py::dict>(value);
    for (auto item : d) {
      std::string key = py::str(item.first);
      if (key != "name" && key != "dsn" && key != "region" && key != "weight" && key != "priority") {
        throw InvalidArgument(argument, "unknown node key '" + key + "' (expected name, dsn, region, weight, priority)");
      }
    }
    if (!d.contains("name") || !d.contains("dsn")) throw InvalidArgument(argument, "a node dict needs 'name' and 'dsn'");
    c.name = d["name"].cast<std::string>();
    c.dsn = d["dsn"].cast<std::string>();
    if (d.contains("region")) c.region = d["region"].cast<std::string>();
    if (d.contains("weight")) c.weight = finite(d["weight"].cast<double>(), "weight");
    if (d.contains("priority")) c.priority = d["priority"].cast<int>();
    return c;
  }
  throw InvalidArgument(argument, "expected a node as (name, dsn) or {'name': ..., 'dsn': ..., 'region': ...}");
}

QueryOptions to_query_options(const py::object& consistency, const py::object& max_staleness_ms,
                              const py::object& region, const py::object& wait_for_replica_ms) {
  QueryOptions q;
  q.consistency = to_consistency(consistency);
  if (!max_staleness_ms.is_none()) q.max_staleness_ms = finite(max_staleness_ms.cast<double>(), "max_staleness_ms");
  if (!region.is_none()) q.region = region.cast<std::string>();
  if (!wait_for_replica_ms.is_none()) {
    q.wait_for_replica_ms = finite(wait_for_replica_ms.cast<double>(), "wait_for_replica_ms");
  }
  return q;
}

py::object lsn_or_none(Lsn lsn) { return lsn.valid() ? py::cast(lsn) : py::none(); }

// A QueryResult with its rows converted to Python once, on first use.
class PyResult {
 public:
  PyResult(QueryResult raw, bool dicts) : raw_(std::move(raw)), dicts_(dicts) {}

  const QueryResult& raw() const { return raw_; }

  // Rows as tuples (or dicts when the query asked for dicts=True).
  py::list rows() {
    if (!rows_) {
      py::list out;
      py::object decimal = py::module_::import("decimal").attr("Decimal");
      for (const auto& row : raw_.rows) {
        py::tuple t(row.size());
        for (std::size_t c = 0; c < row.size(); ++c) t[c] = convert(row[c], raw_.type_oids[c], decimal);
        out.append(std::move(t));
      }
      tuples_ = out;
      rows_ = dicts_ ? as_dicts(out) : out;
    }
    return *rows_;
  }
  // Rows as dicts keyed by column name (a later column wins a duplicated name).
  py::list dicts() {
    rows();
    return as_dicts(*tuples_);
  }

 private:
  static py::object convert(const std::optional<std::string>& v, std::uint32_t oid, const py::object& decimal) {
    if (!v) return py::none();
    const std::string& s = *v;
    switch (oid) {
      case kBoolOid:
        return py::bool_(s == "t");
      case kInt2Oid:
      case kInt4Oid:
      case kInt8Oid:
      case kOidOid:
        return py::reinterpret_steal<py::object>(PyLong_FromString(s.c_str(), nullptr, 10));
      case kFloat4Oid:
      case kFloat8Oid:
        return py::float_(py::str(s));  // float() parses NaN, Infinity, -Infinity too
      case kNumericOid:
        return decimal(py::str(s));
      default:
        return py::str(s);
    }
  }
  py::list as_dicts(const py::list& tuples) const {
    py::list out;
    std::vector<py::str> names;
    for (const auto& n : raw_.columns) names.emplace_back(n);
    for (auto t : tuples) {
      py::tuple row = py::reinterpret_borrow<py::tuple>(t);
      py::dict d;
      for (std::size_t c = 0; c < names.size(); ++c) d[names[c]] = row[c];
      out.append(std::move(d));
    }
    return out;
  }

  QueryResult raw_;
  bool dicts_;
  std::optional<py::list> rows_, tuples_;
};

py::dict stats_dict(const pg::DatabaseStats& s) {
  py::dict d;
  d["writes"] = s.writes;
  d["reads"] = s.reads;
  d["reads_on_replicas"] = s.reads_on_replicas;
  d["reads_on_primary"] = s.reads_on_primary;
  d["read_retries"] = s.read_retries;
  d["read_failures"] = s.read_failures;
  d["waits"] = s.waits;
  d["waits_served_by_replica"] = s.waits_served_by_replica;
  d["nodes_marked_down"] = s.nodes_marked_down;
  d["watchdog_fired"] = s.watchdog_fired;
  return d;
}

}  // namespace
#endif  // REPLIKIT_HAVE_PG

void bind_pg(py::module_& m) {
#ifdef REPLIKIT_HAVE_PG
  m.attr("HAVE_PG") = true;

  py::class_<PyResult>(m, "Result",
                       "What a statement returned: rows (tuples, converted by column type), columns, "
                       "rowcount, and the node that served it with the routing reason.")
      .def_property_readonly("rows", &PyResult::rows, "Rows as tuples (dicts when queried with dicts=True).")
      .def("dicts", &PyResult::dicts, "Rows as dicts keyed by column name.")
      .def("scalar", [](PyResult& r) -> py::object {
             py::list rows = r.rows();
             if (rows.empty()) return py::none();
             py::object first = rows[0];
             if (py::isinstance<py::dict>(first)) {
               py::dict d = py::reinterpret_borrow<py::dict>(first);
               for (auto item : d) return py::reinterpret_borrow<py::object>(item.second);
               return py::none();
             }
             py::tuple t = py::reinterpret_borrow<py::tuple>(first);
             return t.empty() ? py::object(py::none()) : py::object(t[0]);
           }, "The first column of the first row (None when there is no row).")
      .def_property_readonly("columns", [](const PyResult& r) { return r.raw().columns; }, "Column names.")
      .def_property_readonly("type_oids", [](const PyResult& r) { return r.raw().type_oids; },
                             "PostgreSQL type OID of each column.")
      .def_property_readonly("rowcount", [](const PyResult& r) { return r.raw().affected_rows; },
                             "The command tag's row count: rows inserted, updated or deleted, or returned by a SELECT.")
      .def_property_readonly("node", [](const PyResult& r) { return r.raw().node; }, "The node that served it.")
      .def_property_readonly("reason", [](const PyResult& r) { return enum_object(r.raw().reason); },
                             "Why it went there (replikit.Reason).")
      .def_property_readonly("attempts", [](const PyResult& r) { return r.raw().attempts; },
                             "Nodes tried (reads retry elsewhere after a connection error).")
      .def_property_readonly("waited_ms", [](const PyResult& r) { return r.raw().waited_ms; },
                             "Time spent waiting for a replica to catch up.")
      .def_property_readonly("lsn", [](const PyResult& r) { return lsn_or_none(r.raw().lsn); },
                             "Writes: the commit LSN recorded in the session; Monotonic/Causal reads: the LSN "
                             "observed; otherwise None.")
      .def("__len__", [](PyResult& r) { return r.rows().size(); })
      .def("__iter__", [](PyResult& r) { return py::iter(r.rows()); })
      .def("__getitem__", [](PyResult& r, const py::object& i) { return r.rows().attr("__getitem__")(i); })
      .def("__repr__", [](const PyResult& r) {
        return "<replikit.Result " + std::to_string(r.raw().rows.size()) + " row(s) from " + r.raw().node + " (" +
               to_string(r.raw().reason) + ")>";
      });

  py::class_<pg::Route>(m, "Route", "Where a read would go now, and why.")
      .def_property_readonly("node", [](const pg::Route& r) -> py::object {
        return r.node == kNoNode ? py::object(py::none()) : py::object(py::str(r.node_name));
      }, "The node's name, or None when no node can serve the read.")
      .def_property_readonly("reason", [](const pg::Route& r) { return enum_object(r.reason); })
      .def_property_readonly("required_lsn", [](const pg::Route& r) { return lsn_or_none(r.required_lsn); })
      .def_readonly("waited_ms", &pg::Route::waited_ms)
      .def("__repr__", [](const pg::Route& r) {
        return "<replikit.Route " + (r.node == kNoNode ? std::string("(none)") : r.node_name) + " (" +
               to_string(r.reason) + ")>";
      });

  py::class_<NodeStatus>(m, "NodeStatus", "One node as the prober and the lag tracker see it.")
      .def_readonly("name", &NodeStatus::name)
      .def_property_readonly("role", [](const NodeStatus& s) { return enum_object(s.role); }, "Role in the topology.")
      .def_readonly("up", &NodeStatus::up, "Routable.")
      .def_readonly("reachable", &NodeStatus::reachable, "The last probe succeeded.")
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
      .def_property_readonly("lag_state", [](const NodeStatus& s) { return enum_object(s.lag_state); })
      .def_property_readonly("lagging", [](const NodeStatus& s) { return s.lag_state == LagState::Lagging; })
      .def_readonly("lag_known", &NodeStatus::lag_known)
      .def_readonly("last_probe_ns", &NodeStatus::last_probe_ns, "time.monotonic_ns() of the last completed probe.")
      .def_readonly("probe_rtt_ms", &NodeStatus::probe_rtt_ms)
      .def_readonly("probes_ok", &NodeStatus::probes_ok)
      .def_readonly("probes_failed", &NodeStatus::probes_failed)
      .def_readonly("last_error", &NodeStatus::last_error)
      .def_readonly("pool_open", &NodeStatus::pool_open)
      .def_readonly("pool_idle", &NodeStatus::pool_idle)
      .def("__repr__", [](const NodeStatus& s) {
        return "<replikit.NodeStatus " + s.name + " " + to_string(s.role) + (s.up ? " up" : " down") +
               (s.role_mismatch ? " ROLE MISMATCH" : "") + " lag=" + std::to_string(s.lag_ns / 1000000) + "ms " +
               to_string(s.lag_state) + ">";
      });

  py::class_<ReplicatedDatabase>(
      m, "ReplicatedDatabase",
      "A PostgreSQL primary and its replicas: writes on the primary with the commit LSN captured into the "
      "session, reads routed by consistency level, a background prober feeding the lag tracker, bounded "
      "pools, and typed errors. Blocking calls release the GIL.")
      .def(py::init([](const py::object& primary, const py::object& replicas, double probe_interval_ms,
                       double probe_timeout_ms, int pool_size, double acquire_timeout_ms, double connect_timeout_ms,
                       double tcp_user_timeout_ms, double statement_timeout_ms, double query_grace_ms,
                       double wait_for_replica_ms, int read_retries, double lag_ms_max, const py::object& recover_ms,
                       long long lag_bytes_max, long long recover_bytes, const py::object& policy,
                       double time_window_ms, unsigned long long seed, const std::string& region) {
             NodeConfig p = to_node_config(primary, "primary");
             std::vector<NodeConfig> rs;
             if (!replicas.is_none()) {
               if (!py::isinstance<py::list>(replicas) && !py::isinstance<py::tuple>(replicas)) {
                 throw InvalidArgument("replicas", "expected a list of nodes");
               }
               for (auto r : replicas) rs.push_back(to_node_config(r, "replicas"));
             }
             DatabaseOptions o;
             o.probe_interval_ms = probe_interval_ms;
             o.probe_timeout_ms = probe_timeout_ms;
             o.pool_size = pool_size;
             o.acquire_timeout_ms = acquire_timeout_ms;
             o.connect_timeout_ms = connect_timeout_ms;
             o.tcp_user_timeout_ms = tcp_user_timeout_ms;
             o.statement_timeout_ms = statement_timeout_ms;
             o.query_grace_ms = query_grace_ms;
             o.wait_for_replica_ms = wait_for_replica_ms;
             o.read_retries = read_retries;
             o.lag.max_lag_ms = lag_ms_max;
             o.lag.recover_lag_ms = recover_ms.is_none() ? lag_ms_max / 2 : recover_ms.cast<double>();
             o.lag.max_lag_bytes = lag_bytes_max;
             o.lag.recover_lag_bytes = recover_bytes;
             o.router.policy = policy.is_none() ? Policy::RoundRobin : to_policy(policy);
             o.router.time_window_ms = time_window_ms;
             o.router.seed = seed;
             o.router.region = region;
             py::gil_scoped_release release;
             return std::make_unique<ReplicatedDatabase>(std::move(p), std::move(rs), std::move(o));
           }),
           py::arg("primary"), py::arg("replicas") = py::list(), py::kw_only(), py::arg("probe_interval_ms") = 100.0,
           py::arg("probe_timeout_ms") = 1000.0, py::arg("pool_size") = 8, py::arg("acquire_timeout_ms") = 5000.0,
           py::arg("connect_timeout_ms") = 2000.0, py::arg("tcp_user_timeout_ms") = 5000.0,
           py::arg("statement_timeout_ms") = 30000.0, py::arg("query_grace_ms") = 1000.0,
           py::arg("wait_for_replica_ms") = 0.0, py::arg("read_retries") = 2, py::arg("lag_ms_max") = 1000.0,
           py::arg("recover_ms") = py::none(), py::arg("lag_bytes_max") = 0, py::arg("recover_bytes") = 0,
           py::arg("policy") = py::none(), py::arg("time_window_ms") = 2000.0, py::arg("seed") = 0,
           py::arg("region") = "",
           "Nodes as (name, dsn) tuples or dicts with name, dsn, region, weight, priority. DSNs go to libpq "
           "unchanged (a malformed one raises ConnectionError with libpq's message). recover_ms defaults to "
           "lag_ms_max / 2. Starts the prober; connects lazily.")
      .def("execute",
           [](ReplicatedDatabase& db, const std::string& sql, const py::object& params, const py::object& session) {
             Params p = to_params(params);
             SessionArg s(session);
             QueryResult r;
             {
               py::gil_scoped_release release;
               r = db.execute(*s.ptr, sql, p);
             }
             return PyResult(std::move(r), false);
           },
           py::arg("sql"), py::arg("params") = py::none(), py::arg("session") = py::none(),
           "Runs a write on the primary (autocommit) and records its commit LSN into `session`. Never retried; "
           "CommitUnknown when the connection broke while it ran. A statement that leaves a transaction open "
           "(BEGIN) raises InvalidArgument and is rolled back: use transaction(). Session-level SET is not "
           "supported on pooled connections (use SET LOCAL inside transaction()).")
      .def("transaction",
           [](ReplicatedDatabase& db, const py::object& statements, const py::object& session) {
             if (!py::isinstance<py::list>(statements) && !py::isinstance<py::tuple>(statements)) {
               throw InvalidArgument("statements", "expected a list of SQL strings or (sql, params) pairs");
             }
             std::vector<pg::Statement> list;
             for (auto item : statements) {
               pg::Statement st;
               if (py::isinstance<py::str>(item)) {
                 st.sql = item.cast<std::string>();
               } else if (py::isinstance<py::tuple>(item) || py::isinstance<py::list>(item)) {
                 py::sequence pair = py::reinterpret_borrow<py::sequence>(item);
                 if (pair.size() != 2 || !py::isinstance<py::str>(pair[0])) {
                   throw InvalidArgument("statements", "each statement is a str or a (sql, params) pair");
                 }
                 st.sql = pair[0].cast<std::string>();
                 st.params = to_params(pair[1]);
               } else {
                 throw InvalidArgument("statements", "each statement is a str or a (sql, params) pair");
               }
               list.push_back(std::move(st));
             }
             SessionArg s(session);
             std::vector<QueryResult> rs;
             {
               py::gil_scoped_release release;
               rs = db.transaction(*s.ptr, list);
             }
             py::list out;
             for (auto& r : rs) out.append(py::cast(PyResult(std::move(r), false)));
             return out;
           },
           py::arg("statements"), py::arg("session") = py::none(),
           "Runs statements in one transaction on the primary, commits, records the commit LSN. "
           "CommitUnknown when the connection broke during COMMIT.")
      .def("query",
           [](ReplicatedDatabase& db, const std::string& sql, const py::object& params, const py::object& session,
              const py::object& consistency, const py::object& max_staleness_ms, const py::object& region,
              const py::object& wait_for_replica_ms, bool dicts) {
             Params p = to_params(params);
             QueryOptions q = to_query_options(consistency, max_staleness_ms, region, wait_for_replica_ms);
             SessionArg s(session);
             QueryResult r;
             {
               py::gil_scoped_release release;
               r = db.query(*s.ptr, sql, p, q);
             }
             return PyResult(std::move(r), dicts);
           },
           py::arg("sql"), py::arg("params") = py::none(), py::arg("session") = py::none(), py::kw_only(),
           py::arg("consistency") = "read_your_writes", py::arg("max_staleness_ms") = py::none(),
           py::arg("region") = py::none(), py::arg("wait_for_replica_ms") = py::none(), py::arg("dicts") = false,
           "Runs a read where the router sends it for `consistency` (a replikit.Consistency or its name). "
           "Retries on another node after a connection error (read_retries), so it is for reads only: writes "
           "go through execute() or transaction(). Monotonic and causal reads record the LSN they saw into "
           "the session.")
      .def("route_read",
           [](ReplicatedDatabase& db, const py::object& session, const py::object& consistency,
              const py::object& max_staleness_ms, const py::object& region, const py::object& wait_for_replica_ms) {
             QueryOptions q = to_query_options(consistency, max_staleness_ms, region, wait_for_replica_ms);
             SessionArg s(session);
             py::gil_scoped_release release;
             return db.route_read(*s.ptr, q);
           },
           py::arg("session") = py::none(), py::kw_only(), py::arg("consistency") = "read_your_writes",
           py::arg("max_staleness_ms") = py::none(), py::arg("region") = py::none(),
           py::arg("wait_for_replica_ms") = py::none(),
           "Where a read would go now (waiting for a replica like query() does); runs nothing.")
      .def("record_write",
           [](const ReplicatedDatabase& db, Session& session, const py::object& commit_lsn) {
             db.record_write(session, commit_lsn.is_none() ? Lsn() : to_lsn(commit_lsn, "commit_lsn"));
           },
           py::arg("session"), py::arg("commit_lsn"),
           "Records a write made elsewhere (e.g. through psycopg) at `commit_lsn` (None: unknown) into `session`.")
      .def("mark_down", &ReplicatedDatabase::mark_down, py::arg("name"),
           "Marks a node down until the prober's next good probe.")
      .def("nodes", &ReplicatedDatabase::nodes, "Every node's status.")
      .def("node", &ReplicatedDatabase::node, py::arg("name"), "One node's status.")
      .def("stats", [](const ReplicatedDatabase& db) { return stats_dict(db.stats()); }, "Counters since construction.")
      .def("wait_probes", &ReplicatedDatabase::wait_probes, py::arg("count") = 1, py::arg("timeout_ms") = 5000.0,
           py::call_guard<py::gil_scoped_release>(),
           "Waits until every node completed `count` more probes; False if `timeout_ms` passed first.")
      .def("dsn", &ReplicatedDatabase::dsn, py::arg("name"), "A node's DSN as given.")
      .def("close", &ReplicatedDatabase::close, py::call_guard<py::gil_scoped_release>(),
           "Refuses new calls, waits for the calls in flight (each still bounded by its deadline), stops the "
           "prober and closes every connection. Safe to call from several threads at once.")
      .def_property_readonly("is_open", &ReplicatedDatabase::is_open)
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](ReplicatedDatabase& db, const py::args&) {
        py::gil_scoped_release release;
        db.close();
      })
      .def_property_readonly("topology", &ReplicatedDatabase::topology, "The replikit.Topology it drives.")
      .def_property_readonly("lag_tracker", &ReplicatedDatabase::lag_tracker, "The replikit.LagTracker it feeds.")
      .def_property_readonly("router", &ReplicatedDatabase::router, "The replikit.Router it routes with.")
      .def_property_readonly("probe_interval_ms", [](const ReplicatedDatabase& db) {
        return db.options().probe_interval_ms;
      })
      .def_property_readonly("wait_for_replica_ms", [](const ReplicatedDatabase& db) {
        return db.options().wait_for_replica_ms;
      })
      .def_static("now_ns", &ReplicatedDatabase::now_ns,
                  "The backend's clock of probes, lag samples and deadlines (= time.monotonic_ns()).")
      .def_static("wall_clock_ns", &ReplicatedDatabase::wall_clock_ns,
                  "The backend's clock of session time, passed to route_read and record_write "
                  "(= time.time_ns(); tokens carry it between hosts).");
#else
  m.attr("HAVE_PG") = false;
#endif
}

}  // namespace replikit::bindings
