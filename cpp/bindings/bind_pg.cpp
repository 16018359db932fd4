// Python bindings of the PostgreSQL backend (cpp/pg): bind_pg() registers each class with its
// own bind_<class>() (pg_bindings.hpp) and holds the converters they share. Built only with
// libpq (REPLIKIT_HAVE_PG); otherwise the module just says HAVE_PG = False.
#include "bindings.hpp"

#ifdef REPLIKIT_HAVE_PG
#include <optional>
#include <string>
#include <vector>

#include "convert.hpp"
#include "pg_bindings.hpp"
#include "replikit/errors.hpp"
#endif

namespace replikit::bindings {

#ifdef REPLIKIT_HAVE_PG

namespace {

void node_from_dict(pg::NodeConfig& c, const py::dict& d, const char* argument) {
  for (auto item : d) {
    std::string key = py::str(item.first);
    if (key != "name" && key != "dsn" && key != "region" && key != "weight" && key != "priority") {
      throw InvalidArgument(argument, "unknown node key '" + key + "' (expected name, dsn, region, weight, priority)");
    }
  }
  if (!d.contains("name") || !d.contains("dsn")) throw InvalidArgument(argument, "a node dict needs 'name' and 'dsn'");
  c.name = to_str(d["name"], "name");
  c.dsn = to_str(d["dsn"], "dsn");
  if (d.contains("region")) c.region = to_str(d["region"], "region");
  if (d.contains("weight")) c.weight = finite(to_double(d["weight"], "weight"), "weight");
  if (d.contains("priority")) c.priority = to_int(d["priority"], "priority");
}

}  // namespace

py::object pg_values(const char* name) {
  // Imported once, under the GIL (a function-local static could deadlock with the GIL held by
  // another thread that waits for the static).
  PYBIND11_CONSTINIT static py::gil_safe_call_once_and_store<py::object> module;
  return module.call_once_and_store_result([] { return py::module_::import("replikit._pgvalues"); })
      .get_stored()
      .attr(name);
}

namespace {

// A bytes-like value returned by a psycopg dumper, as a std::string (any bytes).
std::string buffer_bytes(const py::handle& value) {
  if (PyBytes_Check(value.ptr())) {
    return std::string(PyBytes_AS_STRING(value.ptr()), static_cast<std::size_t>(PyBytes_GET_SIZE(value.ptr())));
  }
  py::object copy = py::reinterpret_steal<py::object>(PyBytes_FromObject(value.ptr()));  // bytearray, memoryview
  if (!copy) throw py::error_already_set();
  return buffer_bytes(copy);
}

}  // namespace

pg::Params to_params(const py::handle& params, const char* argument) {
  pg::Params out;
  if (params.is_none()) return out;
  if (!py::isinstance<py::list>(params) && !py::isinstance<py::tuple>(params)) {
    wrong_type(argument, "a list or tuple of parameters ($1, $2, ...)", params);
  }
  py::sequence seq = py::reinterpret_borrow<py::sequence>(params);
  require(seq.size() <= 65535, argument, "at most 65535 parameters");
  if (seq.size() == 0) return out;
  py::tuple dumped = pg_values("dump_params")(params, argument);  // (values, type OIDs, formats)
  py::sequence values = dumped[0], oids = dumped[1], formats = dumped[2];
  out.reserve(seq.size());
  for (std::size_t k = 0; k < seq.size(); ++k) {
    py::object v = values[k];
    const auto oid = oids[k].cast<std::uint32_t>();
    const bool binary = formats[k].cast<int>() == 1;
    out.emplace_back(v.is_none() ? std::nullopt : std::optional<std::string>(buffer_bytes(v)), oid, binary);
  }
  return out;
}

pg::NodeConfig to_node_config(const py::handle& value, const char* argument) {
  pg::NodeConfig c;
  if (py::isinstance<py::tuple>(value) || py::isinstance<py::list>(value)) {
    py::sequence s = py::reinterpret_borrow<py::sequence>(value);
    if (s.size() != 2) throw InvalidArgument(argument, "a node as a tuple must be (name, dsn)");
    c.name = to_str(s[0], "name");
    c.dsn = to_str(s[1], "dsn");
    return c;
  }
  if (py::isinstance<py::dict>(value)) {
    node_from_dict(c, py::reinterpret_borrow<py::dict>(value), argument);
    return c;
  }
  wrong_type(argument, "a node as (name, dsn) or {'name': ..., 'dsn': ..., 'region': ...}", value);
}

SessionArg::SessionArg(const py::object& session) {
  if (session.is_none()) {
    ptr = &local;
  } else if (py::isinstance<Session>(session)) {
    ptr = &session.cast<Session&>();
  } else {
    wrong_type("session", "a replikit.Session or None", session);
  }
}

pg::QueryOptions to_query_options(const py::object& consistency, const py::object& max_staleness_ms,
                                  const py::object& region, const py::object& wait_for_replica_ms,
                                  const py::object& p_consistent, const py::object& within_ms) {
  pg::QueryOptions q;
  if (!p_consistent.is_none()) q.p_consistent = to_double(p_consistent, "p_consistent");
  if (!within_ms.is_none()) q.within_ms = to_double(within_ms, "within_ms");
  q.consistency = to_enum<Consistency>(consistency, "consistency");
  if (!max_staleness_ms.is_none()) q.max_staleness_ms = finite(to_double(max_staleness_ms, "max_staleness_ms"), "max_staleness_ms");
  if (!region.is_none()) q.region = to_str(region, "region");
  if (!wait_for_replica_ms.is_none()) q.wait_for_replica = to_catch_up_wait(wait_for_replica_ms, "wait_for_replica_ms");
  return q;
}

#endif  // REPLIKIT_HAVE_PG

void bind_pg(py::module_& m) {
#ifdef REPLIKIT_HAVE_PG
  m.attr("HAVE_PG") = true;
  bind_database_options(m);
  bind_pg_results(m);
  bind_events(m);
  bind_failover_actions(m);
  bind_database(m);
  bind_failover_manager(m);
#else
  m.attr("HAVE_PG") = false;
#endif
}

}  // namespace replikit::bindings
