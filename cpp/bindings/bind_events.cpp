// The backend's events in Python: EventKind, Event, EventBatch, EventLog, and the
// ReplicatedDatabase methods that reach them (events, on_event, off_event, event_feed).
// Delivery runs in Python (replikit.events.EventFeed, one thread per database): it waits in
// EventLog.wait with the GIL released, then logs and calls back with the GIL held, so no C++
// thread ever takes the GIL and the prober never waits for Python.
#ifdef REPLIKIT_HAVE_PG
#include <pybind11/native_enum.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>

#include "convert.hpp"
#include "pg_bindings.hpp"
#include "replikit/pg/events.hpp"

namespace replikit::bindings {

namespace {

using pg::Event;
using pg::EventBatch;
using pg::EventKind;
using pg::EventLog;

constexpr std::size_t kMaxBatch = 65536;

std::size_t to_batch(const py::handle& value) {
  return static_cast<std::size_t>(to_int64(value, "max_events", 1, static_cast<std::int64_t>(kMaxBatch)));
}

std::string event_repr(const Event& e) {
  if (e.kind == EventKind::Lagging || e.kind == EventKind::Recovered) {
    return repr_of("Event", {{"sequence", py::int_(e.sequence)}, {"kind", py::cast(e.kind)}, {"node", py::str(e.node)},
                             {"lag_ms", py::float_(e.lag_ms)}, {"lag_bytes", py::int_(e.lag_bytes)}});
  }
  if (e.kind == EventKind::ReadRetry) {
    return repr_of("Event", {{"sequence", py::int_(e.sequence)}, {"kind", py::cast(e.kind)}, {"node", py::str(e.node)},
                             {"attempt", py::int_(e.attempt)}, {"message", py::str(e.message)}});
  }
  return repr_of("Event", {{"sequence", py::int_(e.sequence)}, {"kind", py::cast(e.kind)}, {"node", py::str(e.node)},
                           {"message", py::str(e.message)}});
}

void bind_event_values(py::module_& m) {
  py::native_enum<EventKind>(m, "EventKind", "enum.Enum", "What a backend event says.")
      .value("NODE_DOWN", EventKind::NodeDown, "The node became unreachable (a failed probe or a lost connection).")
      .value("NODE_UP", EventKind::NodeUp, "A good probe after NODE_DOWN.")
      .value("LAGGING", EventKind::Lagging, "A replica's lag crossed max_lag_ms (or max_lag_bytes).")
      .value("RECOVERED", EventKind::Recovered, "The replica's lag came back under recover_lag_ms.")
      .value("ROLE_MISMATCH", EventKind::RoleMismatch, "The server's role differs from the topology's (also: the primary a promotion deposed, until it rejoins as a replica).")
      .value("ROLE_RESTORED", EventKind::RoleRestored, "The server's role matches the topology again.")
      .value("READ_RETRY", EventKind::ReadRetry, "A read lost its connection to the node and is retried elsewhere.")
      .value("FAILOVER", EventKind::Failover, "A failover or switchover made the node the primary.")
      .finalize();
  py::class_<Event>(m, "Event", "One backend event: what happened to which node, with the numbers.")
      .def_readonly("sequence", &Event::sequence, "1, 2, 3, ... in order of publication.")
      .def_property_readonly("kind", [](const Event& e) { return py::cast(e.kind); })
      .def_readonly("node", &Event::node, "The node's name.")
      .def_readonly("time_ns", &Event::time_ns, "time.monotonic_ns() when it happened.")
      .def_readonly("lag_ms", &Event::lag_ms, "LAGGING / RECOVERED: the replica's time lag then.")
      .def_readonly("lag_bytes", &Event::lag_bytes, "LAGGING / RECOVERED: its byte lag then.")
      .def_readonly("attempt", &Event::attempt, "READ_RETRY: the attempt about to run (2, 3, ...).")
      .def_readonly("message", &Event::message, "The error, or what happened, in words.")
      .def("__repr__", &event_repr);
  py::class_<EventBatch>(m, "EventBatch", "A reader's batch of events, and how many it missed.")
      .def_readonly("events", &EventBatch::events)
      .def_readonly("missed", &EventBatch::missed, "Events overwritten before this reader read them.")
      .def_readonly("last_sequence", &EventBatch::last_sequence, "The reader's new position.")
      .def_readonly("closed", &EventBatch::closed, "The log was closed and nothing is left after this batch.")
      .def("__repr__", [](const EventBatch& b) {
        return repr_of("EventBatch", {{"events", py::int_(b.events.size())}, {"missed", py::int_(b.missed)},
                                      {"last_sequence", py::int_(b.last_sequence)}, {"closed", py::bool_(b.closed)}});
      });
}

std::uint64_t publish(EventLog& log, const py::object& kind, const py::object& node, const py::object& message,
                      const py::object& lag_ms, const py::object& lag_bytes, const py::object& attempt) {
  Event e;
  e.kind = to_enum<EventKind>(kind, "kind");
  e.node = to_str(node, "node");
  require(!e.node.empty(), "node", "must not be empty");
  e.message = to_str(message, "message");
  e.lag_ms = finite(to_double(lag_ms, "lag_ms"), "lag_ms");
  e.lag_bytes = to_int64(lag_bytes, "lag_bytes", 0);
  e.attempt = to_int(attempt, "attempt", 0);
  return log.publish(std::move(e));
}

void bind_event_log(py::module_& m) {
  // dynamic_attr: replikit.events keeps the database's EventFeed on its log (log._feed).
  py::class_<EventLog, std::shared_ptr<EventLog>>(
      m, "EventLog", py::dynamic_attr(),
      "A bounded ring of events with a sequence number each. Publishing never waits for a reader; when "
      "full, the oldest event is overwritten (counted in dropped, and in each late reader's batch.missed).")
      .def(py::init([](const py::object& capacity) {
             return std::make_shared<EventLog>(
                 static_cast<std::size_t>(to_int64(capacity, "event_capacity", 1, std::int64_t{1} << 20)));
           }),
           py::arg("event_capacity") = pg::DatabaseOptions{}.event_capacity)
      .def("read",
           [](const EventLog& log, const py::object& after, const py::object& max_events) {
             return log.read(to_uint64(after, "after_sequence"), to_batch(max_events));
           },
           py::arg("after_sequence") = 0, py::arg("max_events") = 256,
           "Events after `after_sequence`, oldest first (an EventBatch).")
      .def("wait",
           [](const EventLog& log, const py::object& after, const py::object& max_events, const py::object& timeout_ms) {
             const std::uint64_t a = to_uint64(after, "after_sequence");
             const std::size_t n = to_batch(max_events);
             const double ms = to_ms(timeout_ms, "timeout_ms");
             require(ms <= 3600000, "timeout_ms", "must be at most 3600000");
             py::gil_scoped_release release;
             return log.wait(a, n, static_cast<std::int64_t>(ms * 1e6));
           },
           py::arg("after_sequence") = 0, py::arg("max_events") = 256, py::arg("timeout_ms") = 1000.0,
           "As read(), waiting up to `timeout_ms` for an event (GIL released); returns at once once closed.")
      .def("publish", &publish, py::arg("kind"), py::arg("node"), py::kw_only(), py::arg("message") = "",
           py::arg("lag_ms") = 0.0, py::arg("lag_bytes") = 0, py::arg("attempt") = 0,
           "Publishes an event (e.g. a failover manager's FAILOVER); returns its sequence.")
      .def("wake", &EventLog::wake, "Wakes every wait() now.")
      .def("close", &EventLog::close,
           "Marks the log closed and wakes every wait() (a database closes its own log in close(); its "
           "event feed then ends after the last event).")
      .def_property_readonly("closed", &EventLog::closed)
      .def_property_readonly("last_sequence", &EventLog::last_sequence, "The last event's sequence (0: none).")
      .def_property_readonly("dropped", &EventLog::dropped, "Events overwritten since construction.")
      .def_property_readonly("capacity", &EventLog::capacity)
      .def("__repr__", [](const EventLog& log) {
        return repr_of("EventLog", {{"capacity", py::int_(log.capacity())},
                                    {"last_sequence", py::int_(log.last_sequence())},
                                    {"dropped", py::int_(log.dropped())}, {"closed", py::bool_(log.closed())}});
      });
}

}  // namespace

py::object event_feed(const pg::ReplicatedDatabase& db, bool new_database) {
  return py::module_::import("replikit.events").attr("feed_of")(py::cast(db.events()), new_database);
}

void bind_database_events(py::class_<PyReplicatedDatabase>& c) {
  c.def_property_readonly("events", &pg::ReplicatedDatabase::events,
                          "The EventLog: node down/up, LAGGING/RECOVERED, role mismatches, read retries, failovers.")
      .def_property_readonly("event_feed", [](const PyReplicatedDatabase& db) { return event_feed(db, false); },
                             "The replikit.events.EventFeed that logs this database's events and calls back.")
      .def("on_event",
           [](const PyReplicatedDatabase& db, const py::object& callback, const py::object& kinds) {
             return event_feed(db, false).attr("add")(callback, kinds);
           },
           py::arg("callback"), py::arg("kinds") = py::none(),
           "Calls `callback(event)` for every event (or only those of `kinds`) from the event thread; returns "
           "`callback` (usable as a decorator). An exception in it is logged, not raised.")
      .def("off_event",
           [](const PyReplicatedDatabase& db, const py::object& callback) {
             return event_feed(db, false).attr("remove")(callback);
           },
           py::arg("callback"), "Stops calling `callback`; False when it was not registered.");
}

void bind_events(py::module_& m) {
  bind_event_values(m);
  bind_event_log(m);
}

}  // namespace replikit::bindings
#endif  // REPLIKIT_HAVE_PG
