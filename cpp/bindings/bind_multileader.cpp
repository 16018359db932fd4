// Python bindings of the multi-leader conflict model: MultiLeaderCluster and the workload runner.
#include <pybind11/native_enum.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>

#include "bindings.hpp"
#include "convert.hpp"
#include "replikit/multileader.hpp"

namespace replikit::bindings {

namespace {

const int kBig = 1 << 30;

std::vector<std::vector<double>> to_matrix(const py::handle& value, const char* argument) {
  std::vector<std::vector<double>> out;
  if (value.is_none()) return out;
  if (py::isinstance<py::array>(value)) {
    const auto ndim = py::reinterpret_borrow<py::array>(value).ndim();
    if (ndim != 0 && ndim != 2) {  // a 0-d array is no sequence at all: to_items says so
      throw InvalidArgument(argument, "must be a leaders x leaders matrix, got a " + std::to_string(ndim) + "-D array");
    }
  }
  for (const auto& row : to_items(value, argument, "a square matrix (list of lists or 2-D array)")) {
    out.push_back(to_doubles(row, argument));
  }
  return out;
}

MultiLeaderOptions leader_options(const py::object& leaders, const py::object& resolution, const py::object& default_delay_ms,
                                  const py::object& replication_delay_ms, const py::object& clock_skew_ms,
                                  const py::object& max_in_flight, const py::object& max_in_flight_bytes) {
  MultiLeaderOptions o;
  o.leaders = to_int(leaders, "leaders", -kBig, kBig);
  o.resolution = to_enum<ConflictResolution>(resolution, "resolution");
  o.default_delay_ms = to_double(default_delay_ms, "default_delay_ms");
  o.replication_delay_ms = to_matrix(replication_delay_ms, "replication_delay_ms");
  if (!clock_skew_ms.is_none()) o.clock_skew_ms = to_doubles(clock_skew_ms, "clock_skew_ms");
  o.max_in_flight = static_cast<std::size_t>(to_int64(max_in_flight, "max_in_flight", 1, 1LL << 40));
  o.max_in_flight_bytes = static_cast<std::size_t>(to_int64(max_in_flight_bytes, "max_in_flight_bytes", 1, 1LL << 50));
  return o;
}

py::list matrix_list(const std::vector<std::vector<std::uint64_t>>& m) {
  py::list out;
  for (const auto& row : m) out.append(py::cast(row));
  return out;
}

std::vector<std::pair<const char*, std::uint64_t>> stats_fields(const MultiLeaderStats& s) {
  return {{"messages_in_flight", s.messages_in_flight},
          {"bytes_in_flight", s.bytes_in_flight},
          {"peak_messages_in_flight", s.peak_messages_in_flight},
          {"peak_bytes_in_flight", s.peak_bytes_in_flight},
          {"messages_sent", s.messages_sent},
          {"bytes_sent", s.bytes_sent}};
}

py::dict stats_dict(const MultiLeaderStats& s) {
  py::dict out;
  for (const auto& [name, value] : stats_fields(s)) out[name] = value;
  return out;
}

}  // namespace

void bind_multileader_cluster(py::module_& m) {
  const MultiLeaderOptions defaults;
  py::native_enum<ConflictResolution>(m, "ConflictResolution", "enum.Enum", "How leaders resolve concurrent writes.")
      .value("LAST_WRITER_WINS", ConflictResolution::LastWriterWins, "Highest (time + skew, leader) wins; others lost.")
      .value("SIBLINGS", ConflictResolution::Siblings, "Keep every concurrent value.")
      .value("COUNTER_MERGE", ConflictResolution::CounterMerge, "Values are counter increments, merged per leader.")
      .value("SET_MERGE", ConflictResolution::SetMerge, "Values are set elements, merged by union.")
      .finalize();

  py::class_<MultiLeaderValue>(m, "MultiLeaderValue", "What one leader holds for one key.")
      .def_readonly("values", &MultiLeaderValue::values, "LWW: the value; SIBLINGS: sorted siblings; SET_MERGE: elements.")
      .def_readonly("counter", &MultiLeaderValue::counter, "COUNTER_MERGE: the total.")
      .def("__repr__", [](const MultiLeaderValue& v) {
        return repr_of("MultiLeaderValue", {{"values", py::cast(v.values)}, {"counter", py::int_(v.counter)}});
      });

  py::class_<MultiLeaderStats>(m, "MultiLeaderStats", "Replication queue figures of a MultiLeaderCluster (bytes are estimates).")
      .def_readonly("messages_in_flight", &MultiLeaderStats::messages_in_flight, "Replication messages queued now.")
      .def_readonly("bytes_in_flight", &MultiLeaderStats::bytes_in_flight, "Memory held by queued replication now.")
      .def_readonly("peak_messages_in_flight", &MultiLeaderStats::peak_messages_in_flight, "Most messages queued at once.")
      .def_readonly("peak_bytes_in_flight", &MultiLeaderStats::peak_bytes_in_flight, "Most bytes held at once.")
      .def_readonly("messages_sent", &MultiLeaderStats::messages_sent, "Messages queued since construction.")
      .def_readonly("bytes_sent", &MultiLeaderStats::bytes_sent, "Bytes queued since construction.")
      .def("__repr__", [](const MultiLeaderStats& s) {
        std::string out = "MultiLeaderStats(";
        for (const auto& [name, value] : stats_fields(s)) {
          out += (out.back() == '(' ? "" : ", ") + std::string(name) + "=" + std::to_string(value);
        }
        return out + ")";
      });

  py::class_<MultiLeaderCluster>(m, "MultiLeaderCluster",
                                 "2-8 leaders accepting writes to the same keys, replicating asynchronously with "
                                 "per-pair delays; counts concurrent write pairs per leader pair.")
      .def(py::init([](const py::object& leaders, const py::object& resolution, const py::object& default_delay_ms,
                                      const py::object& replication_delay_ms, const py::object& clock_skew_ms,
                                      const py::object& max_in_flight, const py::object& max_in_flight_bytes) {
             return std::make_unique<MultiLeaderCluster>(leader_options(leaders, resolution, default_delay_ms, replication_delay_ms,
                                                                        clock_skew_ms, max_in_flight, max_in_flight_bytes));
           }),
           py::arg("leaders") = defaults.leaders, py::arg("resolution") = defaults.resolution, py::kw_only(),
           py::arg("default_delay_ms") = defaults.default_delay_ms, py::arg("replication_delay_ms") = py::none(),
           py::arg("clock_skew_ms") = py::none(), py::arg("max_in_flight") = defaults.max_in_flight,
           py::arg("max_in_flight_bytes") = defaults.max_in_flight_bytes,
           "replication_delay_ms: leaders x leaders matrix (None: default_delay_ms everywhere); clock_skew_ms: "
           "per-leader offsets added to LWW timestamps; max_in_flight / max_in_flight_bytes: bounds on queued "
           "replication (a write past them raises CapacityExceeded: run_until or settle first).")
      .def("write",
           [](MultiLeaderCluster& c, const py::object& leader, const py::object& key, const py::object& value,
              const py::object& at_ms, const py::object& delta) {
             c.write(to_int(leader, "leader", -kBig, kBig), to_str(key, "key"), to_str(value, "value"), to_double(at_ms, "at_ms"),
                     to_int64(delta, "delta", -(1LL << 62), 1LL << 62));
           },
           py::arg("leader"), py::arg("key"), py::arg("value") = "", py::arg("at_ms"), py::arg("delta") = 1,
           "A local write at logical time at_ms (>= now): sets/inserts value, or adds delta (COUNTER_MERGE).")
      .def("run_until", [](MultiLeaderCluster& c, const py::object& at_ms) { c.run_until(to_double(at_ms, "at_ms")); },
           py::arg("at_ms"), "Deliver replication due by at_ms.")
      .def("settle", &MultiLeaderCluster::settle, "Deliver everything in flight.")
      .def_property_readonly("now_ms", &MultiLeaderCluster::now_ms, "Logical time.")
      .def("read",
           [](const MultiLeaderCluster& c, const py::object& leader, const py::object& key) {
             return c.read(to_int(leader, "leader", -kBig, kBig), to_str(key, "key"));
           },
           py::arg("leader"), py::arg("key"), "What leader holds for key.")
      .def("conflicts", [](const MultiLeaderCluster& c) { return matrix_list(c.conflicts()); },
           "Concurrent write pairs per leader pair (symmetric matrix, list of lists).")
      .def_property_readonly("total_conflicts", &MultiLeaderCluster::total_conflicts, "Total concurrent write pairs.")
      .def_property_readonly("writes", &MultiLeaderCluster::writes, "Writes accepted.")
      .def_property_readonly("in_flight", &MultiLeaderCluster::in_flight, "Messages in flight.")
      .def("stats", &MultiLeaderCluster::stats, "Replication queue figures (a MultiLeaderStats).")
      .def("converged", &MultiLeaderCluster::converged, "Whether every leader holds the same value for every key.")
      .def("keys_with_siblings", &MultiLeaderCluster::keys_with_siblings, "Keys with more than one sibling somewhere.");
}

void bind_multileader_workload(py::module_& m) {
  const MultiLeaderOptions defaults;
  const MultiLeaderWorkload workload;
  m.def("run_multileader_workload",
        [](const py::object& writes_per_s, const py::object& resolution, const py::object& keys,
                          const py::object& duration_ms, const py::object& seed, const py::object& default_delay_ms,
                          const py::object& replication_delay_ms, const py::object& clock_skew_ms, const py::object& max_writes,
                          const py::object& max_in_flight_bytes) {
          const std::vector<double> rates = to_doubles(writes_per_s, "writes_per_s");
          MultiLeaderOptions o = leader_options(py::int_(rates.size()), resolution, default_delay_ms, replication_delay_ms,
                                                clock_skew_ms, py::int_(MultiLeaderOptions{}.max_in_flight), max_in_flight_bytes);
          MultiLeaderWorkload w;
          w.writes_per_s = rates;
          w.keys = to_int(keys, "keys", -kBig, kBig);
          w.duration_ms = to_double(duration_ms, "duration_ms");
          w.seed = to_uint64(seed, "seed");
          w.max_writes = to_uint64(max_writes, "max_writes");
          MultiLeaderReport r;
          {
            py::gil_scoped_release release;
            r = run_multileader_workload(o, w);
          }
          py::dict out;
          out["writes"] = r.writes;
          out["conflicts"] = matrix_list(r.conflicts);
          out["total_conflicts"] = r.total_conflicts;
          out["keys_with_siblings"] = r.keys_with_siblings;
          out["converged"] = r.converged;
          out["stats"] = stats_dict(r.stats);
          py::list pairs;
          for (std::size_t i = 0; i < r.conflicts.size(); ++i) {
            for (std::size_t j = i + 1; j < r.conflicts.size(); ++j) {
              py::dict rec;
              rec["leader_a"] = i;
              rec["leader_b"] = j;
              rec["conflicts"] = r.conflicts[i][j];
              pairs.append(rec);
            }
          }
          out["pairs"] = pairs;
          return out;
        },
        py::arg("writes_per_s"), py::arg("resolution") = defaults.resolution, py::kw_only(), py::arg("keys") = workload.keys,
        py::arg("duration_ms") = workload.duration_ms, py::arg("seed") = workload.seed,
        py::arg("default_delay_ms") = defaults.default_delay_ms, py::arg("replication_delay_ms") = py::none(),
        py::arg("clock_skew_ms") = py::none(), py::arg("max_writes") = workload.max_writes,
        py::arg("max_in_flight_bytes") = defaults.max_in_flight_bytes,
        "Seeded Poisson write mix (one rate per leader, uniform keys) on a fresh cluster, settled. Returns a dict with "
        "writes, conflicts (matrix), total_conflicts, keys_with_siblings, converged, pairs (records per leader pair) "
        "and stats (replication queue figures: peak_messages_in_flight, peak_bytes_in_flight, ...). Replication "
        "queued past max_in_flight_bytes raises CapacityExceeded.");
}

}  // namespace replikit::bindings
