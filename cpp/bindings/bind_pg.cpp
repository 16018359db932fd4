// Python bindings of the PostgreSQL backend (cpp/pg): bind_pg() registers each class with its
// own bind_<class>() (pg_bindings.hpp) and holds the converters they share. Built only with
// libpqxx/libpq (REPLIKIT_HAVE_PG); otherwise the module just says HAVE_PG = False.
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

std::string bytea_hex(const py::handle& item) {
  std::string raw = py::bytes(py::module_::import("builtins").attr("bytes")(item)).cast<std::string>();
  static const char digits[] = "0123456789abcdef";
  std::string hex = "\\x";
  hex.reserve(2 + 2 * raw.size());
  for (unsigned char c : raw) {
    hex.push_back(digits[c >> 4]);
    hex.push_back(digits[c & 15]);
  }
  return hex;
}

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

// None -> NULL, bool -> true/false, bytes -> bytea hex, anything else -> str(value) (int,
// float, Decimal, str, datetime ... all have PostgreSQL's input syntax). The server infers
// each parameter's type from the statement.
pg::Params to_params(const py::handle& params) {
  pg::Params out;
  if (params.is_none()) return out;
  if (!py::isinstance<py::list>(params) && !py::isinstance<py::tuple>(params)) {
    wrong_type("params", "a list or tuple of parameters ($1, $2, ...)", params);
  }
  py::sequence seq = py::reinterpret_borrow<py::sequence>(params);
  require(seq.size() <= 65535, "params", "at most 65535 parameters");
  out.reserve(seq.size());
  for (auto item : seq) {
    if (item.is_none()) {
      out.emplace_back(std::nullopt);
    } else if (py::isinstance<py::bool_>(item)) {
      out.emplace_back(item.cast<bool>() ? "true" : "false");
    } else if (py::isinstance<py::str>(item)) {
      out.emplace_back(to_str(item, "params"));
    } else if (py::isinstance<py::bytes>(item) || py::isinstance<py::bytearray>(item) ||
               py::isinstance<py::memoryview>(item)) {
      out.emplace_back(bytea_hex(item));
    } else if (py::isinstance<py::float_>(item)) {
      out.emplace_back(py::repr(item).cast<std::string>());  // shortest round-trip form; inf/nan accepted
    } else {
      out.emplace_back(to_str(py::str(item), "params"));  // a __str__ may return a surrogate
    }
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
                                  const py::object& region, const py::object& wait_for_replica_ms) {
  pg::QueryOptions q;
  q.consistency = to_enum<Consistency>(consistency, "consistency");
  if (!max_staleness_ms.is_none()) q.max_staleness_ms = finite(to_double(max_staleness_ms, "max_staleness_ms"), "max_staleness_ms");
  if (!region.is_none()) q.region = to_str(region, "region");
  if (!wait_for_replica_ms.is_none()) {
    q.wait_for_replica_ms = finite(to_double(wait_for_replica_ms, "wait_for_replica_ms"), "wait_for_replica_ms");
  }
  return q;
}

#endif  // REPLIKIT_HAVE_PG

void bind_pg(py::module_& m) {
#ifdef REPLIKIT_HAVE_PG
  m.attr("HAVE_PG") = true;
  bind_database_options(m);
  bind_pg_results(m);
  bind_failover_actions(m);
  bind_database(m);
  bind_failover_manager(m);
#else
  m.attr("HAVE_PG") = false;
#endif
}

}  // namespace replikit::bindings
