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

/// A real number (int, float or numpy scalar; not bool or str) as a double; NaN and
/// infinities pass through so the core names the argument when it rejects them.
inline double to_double(const py::handle& value, const char* argument) {
  if (py::isinstance<py::bool_>(value) || py::isinstance<py::str>(value) || py::isinstance<py::bytes>(value) ||
      !PyNumber_Check(value.ptr())) {
    throw InvalidArgument(argument, "expected a number, got " + type_name(value));
  }
  const double v = PyFloat_AsDouble(value.ptr());
  if (v == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    throw InvalidArgument(argument, "expected a number, got " + type_name(value));
  }
  return v;
}

/// An int argument in [lo, hi] as int.
inline int to_int(const py::handle& value, const char* argument, int lo = -2147483647 - 1, int hi = 2147483647) {
  return static_cast<int>(to_int64(value, argument, lo, hi));
}

/// A 1-D sequence or array of numbers as a vector of doubles (values unchecked).
inline std::vector<double> to_doubles(const py::handle& value, const char* argument) {
  if (py::isinstance<py::str>(value) || py::isinstance<py::bytes>(value)) {
    throw InvalidArgument(argument, "expected a sequence of numbers, got " + type_name(value));
  }
  py::array_t<double> arr;
  try {
    arr = py::array_t<double>::ensure(value);
  } catch (const py::error_already_set&) {
    arr = py::array_t<double>();
  }
  if (!arr || (py::isinstance<py::array>(value) &&
               py::array(py::reinterpret_borrow<py::object>(value)).dtype().kind() == 'O')) {
    throw InvalidArgument(argument, "expected a sequence of numbers, got " + type_name(value));
  }
  if (arr.ndim() != 1) throw InvalidArgument(argument, "expected a 1-D sequence of numbers");
  const auto view = arr.unchecked<1>();
  std::vector<double> out(static_cast<std::size_t>(view.shape(0)));
  for (py::ssize_t i = 0; i < view.shape(0); ++i) out[static_cast<std::size_t>(i)] = view(i);
  return out;
}

/// A str argument.
inline std::string to_str(const py::handle& value, const char* argument) {
  if (!py::isinstance<py::str>(value)) throw InvalidArgument(argument, "expected a str, got " + type_name(value));
  return value.cast<std::string>();
}

}  // namespace replikit::bindings
