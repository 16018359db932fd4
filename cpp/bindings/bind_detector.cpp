// Python bindings of failure detection: ProbeOutcome, DetectorKind, DetectorConfig, FailureDetector.
#include <pybind11/native_enum.h>
#include <pybind11/pybind11.h>

#include <string>

#include "bindings.hpp"
#include "convert.hpp"
#include "replikit/detector.hpp"

namespace replikit::bindings {

namespace {

constexpr const char* kDetectorFields[] = {"kind",       "interval_ms", "missed_threshold",   "phi_threshold",
                                           "phi_window", "min_std_ms",  "acceptable_pause_ms"};

// Sets one field from Python (type checked here; values by DetectorConfig::validate).
void set_detector_field(DetectorConfig& c, const std::string& field, const py::handle& v) {
  if (field == "kind") c.kind = to_enum<DetectorKind>(v, "kind");
  else if (field == "interval_ms") c.interval_ms = to_double(v, "interval_ms");
  else if (field == "missed_threshold") c.missed_threshold = to_int(v, "missed_threshold");
  else if (field == "phi_threshold") c.phi_threshold = to_double(v, "phi_threshold");
  else if (field == "phi_window") c.phi_window = to_int(v, "phi_window");
  else if (field == "min_std_ms") c.min_std_ms = to_double(v, "min_std_ms");
  else c.acceptable_pause_ms = to_double(v, "acceptable_pause_ms");
}

py::object detector_field(const DetectorConfig& c, const std::string& field) {
  if (field == "kind") return py::cast(c.kind);
  if (field == "interval_ms") return py::float_(c.interval_ms);
  if (field == "missed_threshold") return py::int_(c.missed_threshold);
  if (field == "phi_threshold") return py::float_(c.phi_threshold);
  if (field == "phi_window") return py::int_(c.phi_window);
  if (field == "min_std_ms") return py::float_(c.min_std_ms);
  return py::float_(c.acceptable_pause_ms);
}

std::string detector_config_repr(const DetectorConfig& c) {
  return repr_of("DetectorConfig", {{"kind", py::cast(c.kind)},
                                    {"interval_ms", py::float_(c.interval_ms)},
                                    {"missed_threshold", py::int_(c.missed_threshold)},
                                    {"phi_threshold", py::float_(c.phi_threshold)},
                                    {"phi_window", py::int_(c.phi_window)},
                                    {"min_std_ms", py::float_(c.min_std_ms)},
                                    {"acceptable_pause_ms", py::float_(c.acceptable_pause_ms)}});
}

DetectorConfig to_detector_config(const py::handle& v) {
  if (v.is_none()) return DetectorConfig{};
  if (!py::isinstance<DetectorConfig>(v)) wrong_type("config", "a replikit.DetectorConfig or None", v);
  return v.cast<DetectorConfig>();
}

void bind_detector_config(py::module_& m) {
  const DetectorConfig d{};
  py::class_<DetectorConfig> c(m, "DetectorConfig",
                               "Settings of a FailureDetector: missed heartbeats (interval_ms x missed_threshold) "
                               "or phi accrual (phi_threshold over the last phi_window intervals).");
  c.def(py::init([](const py::object& kind, const py::object& interval, const py::object& missed,
                    const py::object& phi, const py::object& window, const py::object& min_std,
                    const py::object& pause) {
          DetectorConfig out;
          std::size_t i = 0;
          for (const auto& v : {kind, interval, missed, phi, window, min_std, pause}) {
            set_detector_field(out, kDetectorFields[i++], v);
          }
          out.validate();
          return out;
        }),
        py::kw_only(), py::arg("kind") = d.kind, py::arg("interval_ms") = d.interval_ms,
        py::arg("missed_threshold") = d.missed_threshold, py::arg("phi_threshold") = d.phi_threshold,
        py::arg("phi_window") = d.phi_window, py::arg("min_std_ms") = d.min_std_ms,
        py::arg("acceptable_pause_ms") = d.acceptable_pause_ms);
  for (const char* field : kDetectorFields) {
    const std::string name = field;
    c.def_property(
        field, [name](const DetectorConfig& x) { return detector_field(x, name); },
        [name](DetectorConfig& x, const py::object& v) {
          DetectorConfig next = x;
          set_detector_field(next, name, v);
          next.validate();
          x = next;
        });
  }
  c.def_static("fast", &DetectorConfig::fast, "Missed heartbeats, 100 ms x 3.")
      .def_static("brief", &DetectorConfig::brief, "Missed heartbeats, 5 s x 3 (the original design's).")
      .def_static(
          "phi_accrual", [](const py::object& interval) { return DetectorConfig::phi_accrual(to_ms(interval, "interval_ms")); },
          py::arg("interval_ms") = d.interval_ms, "Phi accrual probing every interval_ms.")
      .def_property_readonly("window_ms", &DetectorConfig::window_ms, "interval_ms x missed_threshold.")
      .def("__eq__", [](const DetectorConfig& a, const py::object& b) {
        return py::isinstance<DetectorConfig>(b) && detector_config_repr(a) == detector_config_repr(b.cast<DetectorConfig>());
      })
      .def("__repr__", &detector_config_repr);
}

}  // namespace

void bind_detector(py::module_& m) {
  py::native_enum<ProbeOutcome>(m, "ProbeOutcome", "enum.Enum", "The result of one probe of a watched node.")
      .value("OK", ProbeOutcome::Ok, "The node answered.")
      .value("REFUSED", ProbeOutcome::Refused, "Nothing listens (connection refused or reset): a miss, a strong signal.")
      .value("TIMEOUT", ProbeOutcome::Timeout, "No answer in time: a miss.")
      .value("OVERLOADED", ProbeOutcome::Overloaded, "The server answered 'too many connections' or busy: alive, not a miss.")
      .finalize();
  py::native_enum<DetectorKind>(m, "DetectorKind", "enum.Enum", "Which failure detector.")
      .value("HEARTBEAT", DetectorKind::Heartbeat, "Missed-heartbeat counting.")
      .value("PHI_ACCRUAL", DetectorKind::PhiAccrual, "Phi accrual (Hayashibara et al.).")
      .finalize();
  bind_detector_config(m);

  py::class_<FailureDetector>(m, "FailureDetector",
                              "Watches one node, fed probe results. now_ns: time.monotonic_ns() when None.")
      .def(py::init([](const py::object& config) { return FailureDetector(to_detector_config(config)); }),
           py::arg("config") = py::none())
      .def(
          "record",
          [](FailureDetector& f, const py::object& outcome, const py::object& now_ns, const py::object& sent_ns) {
            const ProbeOutcome o = to_enum<ProbeOutcome>(outcome, "outcome");
            const std::int64_t now = now_or_clock(now_ns);
            f.record(now, o, sent_ns.is_none() ? -1 : to_int64(sent_ns, "sent_ns"));
          },
          py::arg("outcome"), py::arg("now_ns") = py::none(), py::arg("sent_ns") = py::none(),
          "Records one probe result; sent_ns: when the probe was sent (None: unknown).")
      .def(
          "watch", [](FailureDetector& f, const py::object& now_ns) { f.watch(now_or_clock(now_ns)); },
          py::arg("now_ns") = py::none(),
          "Notes that the watcher runs now; a wake later than planned by over the detection window was its own stall.")
      .def("sleep_until", [](FailureDetector& f, const py::object& wake_ns) { f.sleep_until(to_int64(wake_ns, "wake_ns", 0)); }, py::arg("wake_ns"),
           "Notes that the watcher waits until wake_ns (its next round).")
      .def_property_readonly(
          "gap_end_ns",
          [](const FailureDetector& f) -> py::object {
            return f.gap_end_ns() < 0 ? py::object(py::none()) : py::object(py::int_(f.gap_end_ns()));
          },
          "End of the watcher's last stall longer than the detection window (None: none).")
      .def(
          "suspected", [](const FailureDetector& f, const py::object& now_ns) { return f.suspected(now_or_clock(now_ns)); },
          py::arg("now_ns") = py::none(), "True once the node is considered failed.")
      .def(
          "phi", [](const FailureDetector& f, const py::object& now_ns) { return f.phi(now_or_clock(now_ns)); },
          py::arg("now_ns") = py::none(), "Phi (phi kind) or the effective missed count (heartbeat kind).")
      .def_property_readonly("missed", &FailureDetector::missed, "Consecutive missed probes.")
      .def_property_readonly("refused", &FailureDetector::refused, "Consecutive refused probes.")
      .def_property_readonly(
          "last_alive_ns",
          [](const FailureDetector& f) -> py::object {
            return f.last_alive_ns() < 0 ? py::object(py::none()) : py::object(py::int_(f.last_alive_ns()));
          },
          "Time of the last answer (or of the first record before any); None before any record.")
      .def_property_readonly("samples", &FailureDetector::samples, "Intervals in the phi window.")
      .def_property_readonly("mean_interval_ms", &FailureDetector::mean_interval_ms)
      .def_property_readonly("std_interval_ms", &FailureDetector::std_interval_ms)
      .def_property_readonly("config", &FailureDetector::config)
      .def("reset", &FailureDetector::reset, "Forgets every record.")
      .def("__repr__", [](const FailureDetector& f) {
        return repr_of("FailureDetector", {{"kind", py::cast(f.config().kind)},
                                           {"missed", py::int_(f.missed())},
                                           {"samples", py::int_(f.samples())},
                                           {"config", py::cast(f.config())}});
      });
}

}  // namespace replikit::bindings
