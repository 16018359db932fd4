// Python bindings of the multi-region model: Placement, RegionLatency, RegionReport,
// model_regions and default_regions.
#include <pybind11/native_enum.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "bindings.hpp"
#include "convert.hpp"
#include "replikit/regions.hpp"

namespace replikit::bindings {

namespace {

using O = const py::object&;

py::dict latency_dict(const RegionLatency& l) {
  py::dict d;
  d["region"] = l.region;
  d["read_ms"] = l.read_ms;
  d["write_ms"] = l.write_ms;
  d["read_your_writes_ms"] = l.read_your_writes_ms;
  d["read_from"] = l.read_from;
  d["read_your_writes_from"] = l.read_your_writes_from;
  d["conflict_probability"] = l.conflict_probability;
  return d;
}

std::vector<std::string> to_names(O value, const char* argument) {
  std::vector<std::string> out;
  for (const auto& item : to_items(value, argument, "a sequence of region names")) out.push_back(to_str(item, argument));
  return out;
}

std::vector<std::vector<double>> to_matrix(O value, const char* argument) {
  std::vector<std::vector<double>> out;
  for (const auto& row : to_items(value, argument, "a square matrix (a sequence of rows)")) {
    out.push_back(to_doubles(row, argument));
  }
  return out;
}

std::vector<int> to_counts(O value, const char* argument) {
  std::vector<int> out;
  for (const auto& item : to_items(value, argument, "a sequence of ints")) out.push_back(to_int(item, argument, 0, 1 << 20));
  return out;
}

RegionMap map_from(O regions, O rtt_ms) {
  RegionMap map = RegionMap::defaults();
  if (!regions.is_none()) map.regions = to_names(regions, "regions");
  if (!rtt_ms.is_none()) map.rtt_ms = to_matrix(rtt_ms, "rtt_ms");
  if (regions.is_none() != rtt_ms.is_none()) {
    throw InvalidArgument(regions.is_none() ? "regions" : "rtt_ms", "give regions and rtt_ms together (or neither)");
  }
  return map;
}

}  // namespace

void bind_regions(py::module_& m) {
  py::native_enum<Placement>(m, "Placement", "enum.Enum", "Where the data lives and who accepts writes.")
      .value("SINGLE_LEADER", Placement::SingleLeader, "A primary in one region, replicas anywhere.")
      .value("MULTI_LEADER", Placement::MultiLeader, "A leader in every region, asynchronous between them.")
      .value("LEADERLESS", Placement::Leaderless, "Replicas spread over regions, W and R quorums.")
      .finalize();

  py::class_<RegionLatency>(m, "RegionLatency", "What a client in one region sees.")
      .def_readonly("region", &RegionLatency::region)
      .def_readonly("read_ms", &RegionLatency::read_ms, "An eventual read at the nearest copy that serves reads.")
      .def_readonly("write_ms", &RegionLatency::write_ms, "A write until acknowledged.")
      .def_readonly("read_your_writes_ms", &RegionLatency::read_your_writes_ms,
                    "A read-back right after a write, at the fastest place that has it.")
      .def_readonly("read_from", &RegionLatency::read_from, "Region serving its eventual reads ('quorum': leaderless).")
      .def_readonly("read_your_writes_from", &RegionLatency::read_your_writes_from, "Region serving its read-backs.")
      .def_readonly("conflict_probability", &RegionLatency::conflict_probability,
                    "Multi-leader: share of its writes concurrent with another region's.")
      .def("to_dict", &latency_dict, "The fields as a dict (one DataFrame record).")
      .def("__repr__", [](const RegionLatency& l) {
        return repr_of("RegionLatency", {{"region", py::str(l.region)}, {"read_ms", py::float_(l.read_ms)},
                                         {"write_ms", py::float_(l.write_ms)},
                                         {"read_your_writes_ms", py::float_(l.read_your_writes_ms)}});
      });

  py::class_<RegionReport>(m, "RegionReport", "The multi-region model's answer for one placement.")
      .def_readonly("placement", &RegionReport::placement)
      .def_readonly("regions", &RegionReport::regions, "One RegionLatency per client region.")
      .def_readonly("conflicts_per_s", &RegionReport::conflicts_per_s, "Multi-leader: concurrent write pairs per second.")
      .def_readonly("strong", &RegionReport::strong, "Leaderless: W + R > N.")
      .def_readonly("stored_in", &RegionReport::stored_in, "Regions holding a copy of every write (data residency).")
      .def_readonly("notes", &RegionReport::notes, "Findings, one sentence each.")
      .def("to_records", [](const RegionReport& r) {
        py::list out;
        for (const auto& l : r.regions) out.append(latency_dict(l));
        return out;
      }, "One dict per region (pandas.DataFrame(records) works).")
      .def("__repr__", [](const RegionReport& r) {
        return repr_of("RegionReport", {{"placement", py::cast(r.placement)}, {"regions", py::cast(r.regions)},
                                        {"stored_in", py::cast(r.stored_in)}});
      });

  const PlacementConfig d{};
  m.def("model_regions", [](O placement, O regions, O rtt_ms, O primary_region, O sync_standbys, O replicas_per_region,
                            O write_quorum, O read_quorum, O replay_ms, O writes_per_s, O keys) {
        PlacementConfig c;
        c.placement = to_enum<Placement>(placement, "placement");
        c.primary_region = to_str(primary_region, "primary_region");
        c.sync_standbys = to_int(sync_standbys, "sync_standbys");
        if (!replicas_per_region.is_none()) c.replicas_per_region = to_counts(replicas_per_region, "replicas_per_region");
        c.write_quorum = to_int(write_quorum, "write_quorum");
        c.read_quorum = to_int(read_quorum, "read_quorum");
        c.replay_ms = to_double(replay_ms, "replay_ms");
        if (!writes_per_s.is_none()) c.writes_per_s = to_doubles(writes_per_s, "writes_per_s");
        c.keys = to_int(keys, "keys");
        return model_regions(map_from(regions, rtt_ms), c);
      }, py::arg("placement") = d.placement, py::kw_only(), py::arg("regions") = py::none(), py::arg("rtt_ms") = py::none(),
      py::arg("primary_region") = d.primary_region, py::arg("sync_standbys") = d.sync_standbys,
      py::arg("replicas_per_region") = py::none(), py::arg("write_quorum") = d.write_quorum,
      py::arg("read_quorum") = d.read_quorum, py::arg("replay_ms") = d.replay_ms, py::arg("writes_per_s") = py::none(),
      py::arg("keys") = d.keys,
      "Read, write and read-back latency per client region, conflicts and where data is stored, for a "
      "placement (a Placement or its name) on regions with a round-trip matrix (default: default_regions()).");
  m.def("default_regions", [] {
        const RegionMap map = RegionMap::defaults();
        return py::make_tuple(map.regions, map.rtt_ms);
      }, "The default regions and round trips in ms: (['us', 'eu', 'asia'], matrix).");
}

}  // namespace replikit::bindings
