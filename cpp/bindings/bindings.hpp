#pragma once
// Declarations of the per-area binding functions called by module.cpp.
#include <pybind11/pybind11.h>

namespace replikit::bindings {
namespace py = pybind11;

void bind_errors(py::module_& m);
void bind_lsn(py::module_& m);
void bind_routing(py::module_& m);   // topology, lag tracker, sessions, router
void bind_quorum(py::module_& m);    // quorum math, PBS, quorum store, multi-leader
void bind_pg(py::module_& m);        // PostgreSQL backend (a stub when built without libpqxx)

}  // namespace replikit::bindings
