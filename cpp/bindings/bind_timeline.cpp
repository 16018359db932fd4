// Python bindings of timelines and failover-lost writes: TimelineHistory, LostWrite, and the
// Session methods that use them (timeline, reconcile, lost_writes, check_lost_writes).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "convert.hpp"
#include "replikit/session.hpp"
#include "replikit/timeline.hpp"

namespace replikit::bindings {

namespace {

constexpr std::int64_t kTimelineMax = std::numeric_limits<std::uint32_t>::max();

std::uint32_t to_timeline_id(const py::handle& v, const char* argument, std::int64_t lo) {
  return static_cast<std::uint32_t>(to_int64(v, argument, lo, kTimelineMax));
}

// (timeline, end_lsn) pairs, or TimelineSwitch-like tuples, from a sequence.
std::vector<TimelineSwitch> to_switches(const py::handle& v) {
  std::vector<TimelineSwitch> out;
  for (const auto& item : to_items(v, "switches", "a sequence of (timeline, end_lsn) pairs")) {
    if (!py::isinstance<py::tuple>(item) || py::len(item) != 2) {
      wrong_type("switches", "a sequence of (timeline, end_lsn) pairs", item);
    }
    const auto pair = py::reinterpret_borrow<py::tuple>(item);
    out.push_back(TimelineSwitch{to_timeline_id(pair[0], "switches", 1), to_lsn(pair[1], "switches")});
  }
  return out;
}

py::list switch_list(const TimelineHistory& h) {
  py::list out;
  for (const auto& s : h.switches()) out.append(py::make_tuple(s.timeline, s.end_lsn));
  return out;
}

const TimelineHistory& to_history(const py::handle& v, const char* argument) {
  if (!py::isinstance<TimelineHistory>(v)) wrong_type(argument, "a replikit.TimelineHistory", v);
  return v.cast<const TimelineHistory&>();
}

std::string lost_write_repr(const LostWrite& w) {
  return repr_of("LostWrite", {{"lsn", py::cast(w.lsn)}, {"timeline", py::int_(w.timeline)},
                               {"switch_lsn", py::cast(w.switch_lsn)}});
}

void bind_history(py::module_& m) {
  py::class_<TimelineHistory>(m, "TimelineHistory",
                              "The current timeline and where each ancestor ended (PostgreSQL's NNNNNNNN.history).")
      .def(py::init([](const py::object& current, const py::object& switches) {
             return TimelineHistory(to_timeline_id(current, "current", 0), to_switches(switches));
           }),
           py::arg("current") = TimelineHistory{}.current(), py::arg("switches") = py::list(),
           "switches: (timeline, end_lsn) pairs, oldest first.")
      .def_static(
          "parse",
          [](const py::object& text, const py::object& current) {
            return TimelineHistory::parse(to_str(text, "text"), to_timeline_id(current, "current", 0));
          },
          py::arg("text"), py::arg("current"),
          "Parses PostgreSQL's history file of timeline `current` (e.g. the text of pg_wal/00000002.history).")
      .def_property_readonly("current", &TimelineHistory::current)
      .def_property_readonly("switches", &switch_list, "(timeline, end_lsn) pairs, oldest first.")
      .def(
          "end_of", [](const TimelineHistory& h, const py::object& t) { return h.end_of(to_timeline_id(t, "timeline", 0)); },
          py::arg("timeline"), "Where ancestor `timeline` ended; None for the current one or a non-ancestor.")
      .def(
          "survives",
          [](const TimelineHistory& h, const py::object& t, const py::object& lsn) {
            return h.survives(to_timeline_id(t, "timeline", 0), to_lsn(lsn, "lsn"));
          },
          py::arg("timeline"), py::arg("lsn"), "True when data at `lsn` of `timeline` is part of the current timeline.")
      .def("__eq__", [](const TimelineHistory& a, const py::object& b) {
        return py::isinstance<TimelineHistory>(b) && a == b.cast<const TimelineHistory&>();
      })
      .def("__repr__", [](const TimelineHistory& h) {
        return repr_of("TimelineHistory", {{"current", py::int_(h.current())}, {"switches", switch_list(h)}});
      });
  py::class_<LostWrite>(m, "LostWrite", "A write of a session that a failover lost.")
      .def_readonly("lsn", &LostWrite::lsn, "Its commit LSN.")
      .def_readonly("timeline", &LostWrite::timeline, "The timeline it was committed on.")
      .def_readonly("switch_lsn", &LostWrite::switch_lsn, "Where that timeline ended (the write lies above).")
      .def("__repr__", &lost_write_repr);
}

}  // namespace

void bind_session_timeline(py::module_& m) {
  bind_history(m);
  auto session = py::reinterpret_borrow<py::class_<Session>>(m.attr("Session"));
  session
      .def_property_readonly(
          "timeline", [](const Session& s) { return s.timeline; },
          "The timeline of write_lsn and read_lsn (0: unknown, taken as the current one).")
      .def(
          "reconcile", [](Session& s, const py::object& history) { return s.reconcile(to_history(history, "history")); },
          py::arg("history"),
          "Moves the session to `history`'s current timeline; returns the writes that failover lost "
          "(written above the switch point), which the next check_lost_writes() raises.")
      .def(
          "lost_writes",
          [](Session& s, const py::object& history) {
            if (!history.is_none()) s.reconcile(to_history(history, "history"));
            return s.lost_writes();
          },
          py::arg("history") = py::none(),
          "The latest writes failovers lost (reconciling with `history` first when given).")
      .def("check_lost_writes", &Session::check_lost_writes,
           "Raises replikit.LostWrites naming the writes lost since the last call (before a read that "
           "requires this session's writes).");
}

}  // namespace replikit::bindings
