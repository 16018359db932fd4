#include <pybind11/operators.h>
#include <pybind11/pybind11.h>

#include "bindings.hpp"
#include "convert.hpp"
#include "replikit/errors.hpp"
#include "replikit/lsn.hpp"
#include "replikit/wal_end.hpp"

namespace replikit::bindings {

void bind_lsn(py::module_& m) {
  py::class_<Lsn>(m, "Lsn", "A PostgreSQL WAL position, e.g. Lsn('16/B374D848'); 0/0 means none known.")
      .def(py::init([](const py::object& value) { return to_lsn(value, "value"); }), py::arg("value"),
           "From PostgreSQL's text form ('16/B374D848'), a non-negative int, or another Lsn.")
      .def_property_readonly("value", [](Lsn l) { return l.value; }, "The position as an integer.")
      .def("valid", &Lsn::valid, "True unless this is 0/0.")
      .def("__str__", &Lsn::to_string)
      .def("__repr__", [](Lsn l) { return "Lsn('" + l.to_string() + "')"; })
      .def("__int__", [](Lsn l) { return l.value; })
      .def("__index__", [](Lsn l) { return l.value; })
      .def("__hash__", [](Lsn l) { return py::hash(py::int_(l.value)); })
      .def("__sub__", [](Lsn a, Lsn b) { return lsn_diff_bytes(a, b); }, py::is_operator(),
           "Bytes from the other LSN to this one (negative when this one is older).")
      .def(py::self == py::self)
      .def(py::self != py::self)
      .def(py::self < py::self)
      .def(py::self <= py::self)
      .def(py::self > py::self)
      .def(py::self >= py::self)
      .def(py::pickle([](Lsn l) { return py::make_tuple(l.value); },
                      [](const py::tuple& t) { return Lsn(t[0].cast<std::uint64_t>()); }));
  py::implicitly_convertible<py::str, Lsn>();
  py::implicitly_convertible<py::int_, Lsn>();
  m.def("lsn_diff_bytes", [](const py::object& a, const py::object& b) {
        return lsn_diff_bytes(to_lsn(a, "a"), to_lsn(b, "b"));
      }, py::arg("a"), py::arg("b"), "Bytes from b to a (a - b); negative when a is older.");
  m.def("end_lsn_of_insert", [](const py::object& insert_lsn, const py::object& wal_block_bytes,
                                const py::object& wal_segment_bytes) {
        return end_lsn_of_insert(to_lsn(insert_lsn, "insert_lsn"), to_uint64(wal_block_bytes, "wal_block_bytes"),
                                 to_uint64(wal_segment_bytes, "wal_segment_bytes"));
      }, py::arg("insert_lsn"), py::arg("wal_block_bytes"), py::arg("wal_segment_bytes"),
      "pg_current_wal_insert_lsn() as the end of the last WAL record, the form a caught-up replica's "
      "replay LSN takes: at a WAL page boundary the insert LSN stands a page header (24 bytes; 40 at a "
      "segment's start) past it. wal_block_bytes, wal_segment_bytes: the server's wal_block_size and "
      "wal_segment_size in bytes. Any other LSN comes back unchanged.");
}

}  // namespace replikit::bindings
