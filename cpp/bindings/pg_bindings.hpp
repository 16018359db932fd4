#pragma once
// The PostgreSQL backend's bindings, one bind_<class>() per class, called by bind_pg()
// (bind_pg.cpp), and the converters only they use. Built only with REPLIKIT_HAVE_PG.
#include <pybind11/pybind11.h>

#include <memory>
#include <vector>

#include "replikit/pg/database.hpp"
#include "replikit/pg/failover_manager.hpp"

namespace replikit::bindings {
namespace py = pybind11;

void bind_database_options(py::module_& m);  // DatabaseOptions
void bind_pg_results(py::module_& m);        // Result, Route, NodeStatus, DatabaseStats
void bind_database(py::module_& m);          // ReplicatedDatabase
void bind_events(py::module_& m);            // EventKind, Event, EventBatch, EventLog
void bind_failover_actions(py::module_& m);  // ActionResult, LossReport, fence_node, promote_node, ...
void bind_failover_manager(py::module_& m);  // FailoverReport, FailoverManager

/// The database as Python holds it: the C++ database plus its default row factory (a Python
/// callable; null = tuples), which the C++ side has no use for.
struct PyReplicatedDatabase : pg::ReplicatedDatabase {
  using pg::ReplicatedDatabase::ReplicatedDatabase;
  ~PyReplicatedDatabase();
  py::object row_factory;
  /// The FailoverManager this database owns (`failover=`, start_failover_manager()): stopped
  /// before the database closes; null: none.
  std::unique_ptr<pg::FailoverManager> failover_manager;
};

/// Stops the database's own FailoverManager, then closes the database (call without the GIL).
void close_database(PyReplicatedDatabase& db);

/// Checks the `failover` keyword of ReplicatedDatabase(): None, a bool or a DetectorConfig.
void check_failover_keyword(const py::object& failover);

/// Gives `db` its own FailoverManager, started, as `failover` asks (None/False: none; True:
/// the defaults; a DetectorConfig: that detector).
void start_owned_manager(PyReplicatedDatabase& db, const py::object& failover);

/// ReplicatedDatabase.start_failover_manager() and .failover_manager.
void bind_database_failover(py::class_<PyReplicatedDatabase>& c);

/// ReplicatedDatabase.events, .event_feed, .on_event, .off_event.
void bind_database_events(py::class_<PyReplicatedDatabase>& c);

/// The replikit.events.EventFeed of `db` (started with the database: `new_database` makes it
/// read from the first event rather than from now).
py::object event_feed(const pg::ReplicatedDatabase& db, bool new_database);

/// A replikit.pg.Result holding `result` (rows converted to Python on first use by psycopg's
/// loaders, built by `row_factory`; None: tuples).
py::object make_result(pg::QueryResult result, py::object row_factory);

/// The attribute `name` of replikit._pgvalues (psycopg's dumpers and loaders, the row
/// factories), imported once on first use.
py::object pg_values(const char* name);

/// An Lsn, or None for 0/0.
py::object lsn_or_none(Lsn lsn);

/// Statement parameters: a list or tuple (None: none), each dumped by psycopg's dumper for its
/// Python type (replikit._pgvalues.dump_params): text format with the dumper's type OID, bytes
/// in binary format as bytea, None as NULL. ArgumentTypeError naming `argument` for a value
/// psycopg cannot send, InvalidArgument for one it refuses (a NUL in text).
pg::Params to_params(const py::handle& params, const char* argument = "params");

/// A node as (name, dsn) or {'name', 'dsn', 'region', 'weight', 'priority'}.
pg::NodeConfig to_node_config(const py::handle& value, const char* argument);

/// Sets the option `name` of `options` from `value` (type and range checked; a deprecated
/// name warns and sets its new name). InvalidArgument for an unknown name.
void set_option(pg::DatabaseOptions& options, const std::string& name, const py::handle& value);

/// The value of option `name` as Python sees it.
py::object get_option(const pg::DatabaseOptions& options, const std::string& name);

/// The names of every option, in declaration order.
const std::vector<const char*>& option_names();

/// Options from `options` (a DatabaseOptions or None: the defaults) with `keywords` applied.
pg::DatabaseOptions to_database_options(const py::handle& options, const py::dict& keywords);

/// A Session from `session` (None: a throwaway one for this call).
struct SessionArg {
  Session local;
  Session* ptr = nullptr;
  explicit SessionArg(const py::object& session);
};

/// Per-read options from the keyword arguments of query() and route_read().
pg::QueryOptions to_query_options(const py::object& consistency, const py::object& max_staleness_ms,
                                  const py::object& region, const py::object& wait_for_replica_ms,
                                  const py::object& p_consistent = py::none(), const py::object& within_ms = py::none());

}  // namespace replikit::bindings
