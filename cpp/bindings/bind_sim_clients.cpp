// SimConfig's fields of a failover's outage window and of the clients' threads (sim_fields.hpp).
#include <pybind11/stl.h>

#include <utility>
#include <vector>

#include "convert.hpp"
#include "sim_fields.hpp"

namespace replikit::bindings {

using sim::SimConfig;

std::vector<SimField> client_fields() {
  std::vector<SimField> f;
  f.push_back(SimField{"outage_after_promotion_ms",
                       "The outage window ends this long after the promotion (0: at it); only the windows move.", 0,
                       [](const SimConfig& c) { return py::cast(c.outage_after_promotion_ms); },
                       [](SimConfig& c, const py::handle& v) {
                         c.outage_after_promotion_ms = to_double(v, "outage_after_promotion_ms");
                       }});
  f.push_back(SimField{"sequential_writes", "True: the session writes leave one at a time (one writer thread).", 0,
                       [](const SimConfig& c) { return py::cast(c.sequential_writes); },
                       [](SimConfig& c, const py::handle& v) { c.sequential_writes = to_bool(v, "sequential_writes"); }});
  f.push_back(SimField{"read_arrival_readers",
                       "Per read arrival, its reader (a thread sending one read at a time); empty: none.", 1,
                       [](const SimConfig& c) { return py::cast(c.read_arrival_readers); },
                       [](SimConfig& c, const py::handle& v) {
                         std::vector<int> readers;
                         for (const auto& item : to_items(v, "read_arrival_readers", "a list of ints")) {
                           readers.push_back(to_int(item, "read_arrival_readers", 0, sim::kMaxReaders - 1));
                         }
                         c.read_arrival_readers = std::move(readers);
                       }});
  return f;
}

}  // namespace replikit::bindings
