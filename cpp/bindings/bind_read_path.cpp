// Python bindings of ReadPath: the per-read fast path of replikit.psycopg's connection routers.
// A routed read there costs, on top of psycopg, what its lease costs in Python; the common case
// (a replica chosen at once and a warm connection idle in the router) is one call here on
// entry and one on exit, the rest stays in Python (the router's general path).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>

#include "bindings.hpp"
#include "read_path.hpp"

namespace replikit::bindings {

void bind_read_path(py::module_& m) {
  make_lease_types();
  py::class_<ReadPath>(m, "ReadPath",
                       "The per-read fast path of a connection router (replikit.psycopg): a read's routing, "
                       "connection lease and record in one call on entry, its count and parking in one on exit.")
      .def(py::init<const py::handle&, const py::handle&, const py::handle&, const py::handle&, const py::handle&,
                    const py::handle&>(),
           py::arg("router"), py::arg("primary"), py::arg("parked"), py::arg("counters"), py::arg("parking"),
           py::arg("check_idle_s"),
           "parked: node name -> the list of its idle connections (newest last), shared with the caller; "
           "counters: (reads, reads_on_primary, reads_on_replicas) iterators (itertools.count) advanced per read.")
      .def("enter", &ReadPath::enter, py::arg("session"), py::arg("consistency"), py::arg("max_staleness_ms"),
           "Routes a read (session None: one that never wrote; the wall clock). When a replica is chosen whose newest "
           "parked connection was used within check_idle_s: takes it, records the decision and returns (node, conn); "
           "else the decision, not recorded, for the general path to act on (None when closed).")
      .def("leave", &ReadPath::leave, py::arg("node"), py::arg("conn"),
           "Counts a read served on `node`, stamps `conn` idle now and parks it if it may be kept (idle, within its "
           "pool's max_lifetime, parking on, not closed); False: return it to its pool.")
      .def("fast_read", &make_fast_read, py::arg("router"), py::arg("hooks"), py::arg("is_async") = false,
           "The router's read() as a builtin over this path (is_async: for `async with`): `hooks` "
           "(replikit.psycopg._lease) gives the Python general path and checks; the router is held weakly.")
      .def("close", &ReadPath::close, "Parks nothing from now on.")
      .def_property("last_route", &ReadPath::last_route, &ReadPath::set_last_route,
                    "The Decision of the latest read the calling thread leased (None before its first); on the path "
                    "of an asyncio router (fast_read with is_async): the calling asyncio task's, which starts with "
                    "its creator's, as context variables do.");
}

}  // namespace replikit::bindings
