#pragma once
// Argument conversions shared by the binding files: each names the argument in its error.
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "replikit/errors.hpp"
#include "replikit/lsn.hpp"

namespace replikit::bindings {
namespace py = pybind11;

/// An Lsn from an Lsn, a str in PostgreSQL's text form, or a non-negative int < 2**64.
inline Lsn to_lsn(const py::handle& value, const char* argument) {
  if (py::isinstance<Lsn>(value)) return value.cast<Lsn>();
  if (py::isinstance<py::str>(value)) return Lsn::parse(value.cast<std::string>(), argument);
  if (py::isinstance<py::bool_>(value)) {
    throw InvalidArgument(argument, "expected an LSN (str like '16/B374D848' or int), got bool");
  }
  if (py::isinstance<py::int_>(value)) {
    py::int_ i = py::reinterpret_borrow<py::int_>(value);
    if (i < py::int_(0) || i >= py::int_(py::module_::import("builtins").attr("pow")(2, 64))) {
      throw InvalidArgument(argument, "LSN integer must be in [0, 2**64)");
    }
    return Lsn(i.cast<std::uint64_t>());
  }
  throw InvalidArgument(argument, std::string("expected an LSN (str like '16/B374D848' or int), got ") +
                                      std::string(py::str(py::type::handle_of(value).attr("__name__"))));
}

/// A finite double, optionally required to be >= 0 or > 0.
inline double finite(double v, const char* argument, bool non_negative = true) {
  if (!std::isfinite(v)) throw InvalidArgument(argument, "must be a finite number");
  if (non_negative && v < 0) throw InvalidArgument(argument, "must not be negative");
  return v;
}

}  // namespace replikit::bindings
