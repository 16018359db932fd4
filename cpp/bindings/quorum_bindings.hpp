#pragma once
// Helpers shared by the quorum binding files (bind_quorum*.cpp).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "convert.hpp"
#include "replikit/errors.hpp"

namespace replikit::bindings {

void bind_quorum_math(py::module_& m);
void bind_quorum_pbs(py::module_& m);
void bind_quorum_store(py::module_& m);
void bind_quorum_multileader(py::module_& m);

}  // namespace replikit::bindings
