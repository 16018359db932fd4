#pragma once
// Argument conversions shared by the binding files: each names the argument in its error.
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "replikit/errors.hpp"
#include "replikit/lsn.hpp"

namespace replikit::bindings {
namespace py = pybind11;

/// The Python type name of `value`, for messages.
inline std::string type_name(const py::handle& value) {
  return std::string(py::str(py::type::handle_of(value).attr("__name__")));
}

/// An integer argument (int or anything with __index__, e.g. numpy integers; not bool or float)
/// in [lo, hi]. Replaces pybind11's int caster so that negative, huge or non-integer values
/// raise InvalidArgument naming the argument instead of a TypeError listing overloads.
inline std::int64_t to_int64(const py::handle& value, const char* argument,
                             std::int64_t lo = std::numeric_limits<std::int64_t>::min(),
                             std::int64_t hi = std::numeric_limits<std::int64_t>::max()) {
  if (py::isinstance<py::bool_>(value) || !PyIndex_Check(value.ptr())) {
    throw InvalidArgument(argument, "expected an int, got " + type_name(value));
  }
  py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(value.ptr()));
  if (!index) throw py::error_already_set();
  int overflow = 0;
  long long v = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  if (overflow != 0 || v < lo || v > hi) {
    throw InvalidArgument(argument, "must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                        "], got " + std::string(py::str(index)));
  }
  return static_cast<std::int64_t>(v);
}

/// An unsigned 64-bit integer argument (int or __index__; not bool or float) in [0, 2**64).
inline std::uint64_t to_uint64(const py::handle& value, const char* argument) {
  if (py::isinstance<py::bool_>(value) || !PyIndex_Check(value.ptr())) {
    throw InvalidArgument(argument, "expected an int, got " + type_name(value));
  }
  py::int_ i = py::reinterpret_steal<py::int_>(PyNumber_Index(value.ptr()));
  if (!i) throw py::error_already_set();
  // CPython raises OverflowError for a negative or too large value: report it as bad input.
  unsigned long long v = PyLong_AsUnsignedLongLong(i.ptr());
  if (v == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
    PyErr_Clear();
    throw InvalidArgument(argument, "must be an integer in [0, 2**64), got " + std::string(py::str(i)));
  }
  return static_cast<std::uint64_t>(v);
}

/// An Lsn from an Lsn, a str in PostgreSQL's text form, or a non-negative int < 2**64.
inline Lsn to_lsn(const py::handle& value, const char* argument) {
  if (py::isinstance<Lsn>(value)) return value.cast<Lsn>();
  if (py::isinstance<py::str>(value)) return Lsn::parse(value.cast<std::string>(), argument);
  if (py::isinstance<py::int_>(value) && !py::isinstance<py::bool_>(value)) return Lsn(to_uint64(value, argument));
  throw InvalidArgument(argument, "expected an LSN (str like '16/B374D848' or int), got " + type_name(value));
}

/// A finite double, optionally required to be >= 0 or > 0.
inline double finite(double v, const char* argument, bool non_negative = true) {
  if (!std::isfinite(v)) throw InvalidArgument(argument, "must be a finite number");
  if (non_negative && v < 0) throw InvalidArgument(argument, "must not be negative");
  return v;
}

}  // namespace replikit::bindings
