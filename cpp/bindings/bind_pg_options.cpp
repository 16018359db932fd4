// DatabaseOptions in Python: one table of options, used by DatabaseOptions(**keywords), its
// attributes and ReplicatedDatabase(primary, replicas, options=None, **keywords). Every
// default comes from a default-constructed pg::DatabaseOptions.
#ifdef REPLIKIT_HAVE_PG
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <vector>

#include "convert.hpp"
#include "pg_bindings.hpp"
#include "replikit/errors.hpp"

namespace replikit::bindings {

namespace {

using pg::DatabaseOptions;

struct Option {
  const char* name;
  void (*set)(DatabaseOptions&, const py::handle&, const char*);
  py::object (*get)(const DatabaseOptions&);
};

template <double DatabaseOptions::*F>
Option ms(const char* name) {
  return {name, [](DatabaseOptions& o, const py::handle& v, const char* a) { o.*F = to_double(v, a); },
          [](const DatabaseOptions& o) -> py::object { return py::float_(o.*F); }};
}

template <int DatabaseOptions::*F>
Option integer(const char* name) {
  return {name, [](DatabaseOptions& o, const py::handle& v, const char* a) { o.*F = to_int(v, a); },
          [](const DatabaseOptions& o) -> py::object { return py::int_(o.*F); }};
}

std::vector<Option> build_table() {
  std::vector<Option> t = {
      ms<&DatabaseOptions::probe_interval_ms>("probe_interval_ms"),
      ms<&DatabaseOptions::probe_timeout_ms>("probe_timeout_ms"),
      integer<&DatabaseOptions::pool_size>("pool_size"),
      ms<&DatabaseOptions::acquire_timeout_ms>("acquire_timeout_ms"),
      ms<&DatabaseOptions::connect_timeout_ms>("connect_timeout_ms"),
      ms<&DatabaseOptions::tcp_user_timeout_ms>("tcp_user_timeout_ms"),
      ms<&DatabaseOptions::statement_timeout_ms>("statement_timeout_ms"),
      ms<&DatabaseOptions::query_grace_ms>("query_grace_ms"),
      integer<&DatabaseOptions::read_retries>("read_retries"),
      integer<&DatabaseOptions::event_capacity>("event_capacity"),
  };
  t.push_back({"wait_for_replica_ms",
               [](DatabaseOptions& o, const py::handle& v, const char* a) { o.wait_for_replica = to_catch_up_wait(v, a); },
               [](const DatabaseOptions& o) { return catch_up_wait_object(o.wait_for_replica); }});
  t.push_back({"max_lag_ms", [](DatabaseOptions& o, const py::handle& v, const char* a) { o.lag.max_lag_ms = to_ms(v, a); },
               [](const DatabaseOptions& o) -> py::object { return py::float_(o.lag.max_lag_ms); }});
  t.push_back({"recover_lag_ms",
               [](DatabaseOptions& o, const py::handle& v, const char* a) {
                 o.lag.recover_lag_ms = v.is_none() ? std::nullopt : std::optional<double>(to_ms(v, a));
               },
               [](const DatabaseOptions& o) -> py::object {
                 return o.lag.recover_lag_ms ? py::object(py::float_(*o.lag.recover_lag_ms)) : py::object(py::none());
               }});
  t.push_back({"max_lag_bytes",
               [](DatabaseOptions& o, const py::handle& v, const char* a) { o.lag.max_lag_bytes = to_int64(v, a, 0); },
               [](const DatabaseOptions& o) -> py::object { return py::int_(o.lag.max_lag_bytes); }});
  t.push_back({"recover_lag_bytes",
               [](DatabaseOptions& o, const py::handle& v, const char* a) {
                 o.lag.recover_lag_bytes =
                     v.is_none() ? std::nullopt : std::optional<std::int64_t>(to_int64(v, a, 0));
               },
               [](const DatabaseOptions& o) -> py::object {
                 return o.lag.recover_lag_bytes ? py::object(py::int_(*o.lag.recover_lag_bytes)) : py::object(py::none());
               }});
  t.push_back({"policy", [](DatabaseOptions& o, const py::handle& v, const char* a) { o.router.policy = to_enum<Policy>(v, a); },
               [](const DatabaseOptions& o) -> py::object { return py::cast(o.router.policy); }});
  t.push_back({"time_window_ms",
               [](DatabaseOptions& o, const py::handle& v, const char* a) { o.router.time_window_ms = to_ms(v, a); },
               [](const DatabaseOptions& o) -> py::object { return py::float_(o.router.time_window_ms); }});
  t.push_back({"seed", [](DatabaseOptions& o, const py::handle& v, const char* a) { o.router.seed = to_uint64(v, a); },
               [](const DatabaseOptions& o) -> py::object { return py::int_(o.router.seed); }});
  t.push_back({"region", [](DatabaseOptions& o, const py::handle& v, const char* a) { o.router.region = to_str(v, a); },
               [](const DatabaseOptions& o) -> py::object { return py::str(o.router.region); }});
  t.push_back({"sticky_reads",
               [](DatabaseOptions& o, const py::handle& v, const char* a) {
                 o.router.sticky_reads = static_cast<std::uint32_t>(to_int64(v, a, 1, 1000000));
               },
               [](const DatabaseOptions& o) -> py::object { return py::int_(o.router.sticky_reads); }});
  return t;
}

const std::vector<Option>& table() {
  static const std::vector<Option> t = build_table();
  return t;
}

// Old keyword names, kept for one release.
const Option* find(const std::string& name) {
  for (const Option& o : table()) {
    if (name == o.name) return &o;
  }
  return nullptr;
}

// As Python's own "unexpected keyword argument": a TypeError naming the keyword.
[[noreturn]] void unknown_option(const std::string& name) {
  std::string known;
  for (const Option& o : table()) known += std::string(known.empty() ? "" : ", ") + o.name;
  throw ArgumentTypeError(name, "unexpected keyword argument (the options are " + known + ")");
}

// The range checks the core makes only when a database is built, made at once.
void check_all(const DatabaseOptions& o) {
  pg::check_options(o);
  require(!o.lag.recover_lag_ms || *o.lag.recover_lag_ms <= o.lag.max_lag_ms, "recover_lag_ms",
          "must not exceed max_lag_ms");
  require(!o.lag.recover_lag_bytes || *o.lag.recover_lag_bytes <= o.lag.max_lag_bytes, "recover_lag_bytes",
          "must not exceed max_lag_bytes");
}

}  // namespace

const std::vector<const char*>& option_names() {
  static const std::vector<const char*> names = [] {
    std::vector<const char*> out;
    for (const Option& o : table()) out.push_back(o.name);
    return out;
  }();
  return names;
}

void set_option(DatabaseOptions& options, const std::string& name, const py::handle& value) {
  std::string target = name;
  for (const auto& [old_name, new_name] : kLagKeywordRenames) {
    if (name == old_name) {
      warn_deprecated_keyword(old_name, new_name);
      target = new_name;
    }
  }
  const Option* o = find(target);
  if (o == nullptr) unknown_option(name);
  DatabaseOptions copy = options;
  o->set(copy, value, o->name);
  check_all(copy);
  options = std::move(copy);
}

py::object get_option(const DatabaseOptions& options, const std::string& name) {
  const Option* o = find(name);
  if (o == nullptr) unknown_option(name);
  return o->get(options);
}

DatabaseOptions to_database_options(const py::handle& options, const py::dict& keywords) {
  DatabaseOptions out;
  if (!options.is_none()) {
    if (!py::isinstance<DatabaseOptions>(options)) wrong_type("options", "a replikit.pg.DatabaseOptions or None", options);
    out = options.cast<DatabaseOptions>();
  }
  for (const auto& [old_name, new_name] : kLagKeywordRenames) {
    if (keywords.contains(old_name) && keywords.contains(new_name)) {
      throw InvalidArgument(old_name, std::string("give ") + new_name + " only (" + old_name + " is its deprecated name)");
    }
  }
  for (auto item : keywords) set_option(out, to_str(item.first, "options"), item.second);
  return out;
}

void bind_database_options(py::module_& m) {
  py::class_<DatabaseOptions> c(m, "DatabaseOptions",
                                "Settings of a ReplicatedDatabase. Keyword constructor; every default comes from "
                                "the C++ pg::DatabaseOptions. Attributes are checked when set (wrong type: "
                                "ArgumentTypeError; out of range: InvalidArgument).");
  c.def(py::init([](const py::kwargs& keywords) { return to_database_options(py::none(), keywords); }));
  for (const char* name : option_names()) {
    c.def_property(
        name, [name](const DatabaseOptions& o) { return get_option(o, name); },
        [name](DatabaseOptions& o, const py::object& v) { set_option(o, name, v); });
  }
  c.def("replace", [](const DatabaseOptions& o, const py::kwargs& keywords) {
    return to_database_options(py::cast(o), keywords);
  }, "A copy with `keywords` changed.");
  c.def("__eq__", [](const DatabaseOptions& a, const py::object& b) {
    if (!py::isinstance<DatabaseOptions>(b)) return false;
    const DatabaseOptions& other = b.cast<const DatabaseOptions&>();
    for (const char* name : option_names()) {
      if (!get_option(a, name).equal(get_option(other, name))) return false;
    }
    return true;
  });
  c.attr("__hash__") = py::none();
  c.def("__repr__", [](const DatabaseOptions& o) {
    std::string out = "DatabaseOptions(";
    bool first = true;
    for (const char* name : option_names()) {
      out += (first ? "" : ", ") + std::string(name) + "=" + std::string(py::repr(get_option(o, name)));
      first = false;
    }
    return out + ")";
  });
}

}  // namespace replikit::bindings
#endif  // REPLIKIT_HAVE_PG
