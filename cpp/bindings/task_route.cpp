// TaskRoute (task_route.hpp): the asyncio routers' latest reads, one context variable for all.
#include "task_route.hpp"

#include <unordered_set>

namespace replikit::bindings {

namespace {

// The variable (made at the first path, so that no read has to make it) and the serials of the
// paths alive. Never freed: the module lives as long as the interpreter, and a path deallocated
// at its end still erases its serial.
PyObject* route_var() {
  static PyObject* var = [] {
    PyObject* v = PyContextVar_New("replikit.psycopg.last_route", nullptr);
    if (v == nullptr) throw py::error_already_set();
    return v;
  }();
  return var;
}

std::unordered_set<unsigned long long>& live() {
  static auto* serials = new std::unordered_set<unsigned long long>();
  return *serials;
}

unsigned long long next_serial() {
  static unsigned long long last = 0;
  return ++last;
}

// The calling context's tuple of pairs (null when it has none).
py::object routes_held() {
  PyObject* routes = nullptr;
  if (PyContextVar_Get(route_var(), nullptr, &routes) != 0) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(routes);
}

}  // namespace

TaskRoute::TaskRoute() : serial_(next_serial()) {
  route_var();
  key_ = py::reinterpret_steal<py::object>(PyLong_FromUnsignedLongLong(serial_));
  if (!key_) throw py::error_already_set();
  live().insert(serial_);  // last: a constructor that throws leaves nothing registered
}

TaskRoute::~TaskRoute() { live().erase(serial_); }

py::object TaskRoute::get() const {
  const py::object routes = routes_held();
  if (!routes) return routes;
  const Py_ssize_t n = PyTuple_GET_SIZE(routes.ptr());
  for (Py_ssize_t k = 0; k + 1 < n; k += 2) {
    if (PyTuple_GET_ITEM(routes.ptr(), k) == key_.ptr()) {
      return py::reinterpret_borrow<py::object>(PyTuple_GET_ITEM(routes.ptr(), k + 1));
    }
  }
  return py::object();
}

void TaskRoute::set(const py::handle& value) const {
  const py::object routes = routes_held();
  const Py_ssize_t n = routes ? PyTuple_GET_SIZE(routes.ptr()) : 0;
  const auto& alive = live();
  // A pair kept: another path's, that path still alive.
  const auto kept = [&](PyObject* key) {
    if (key == key_.ptr()) return false;
    const unsigned long long serial = PyLong_AsUnsignedLongLong(key);
    if (serial == static_cast<unsigned long long>(-1) && PyErr_Occurred()) throw py::error_already_set();
    return alive.count(serial) != 0;
  };
  Py_ssize_t size = value.is_none() ? 0 : 2;
  for (Py_ssize_t k = 0; k + 1 < n; k += 2) size += kept(PyTuple_GET_ITEM(routes.ptr(), k)) ? 2 : 0;
  py::object next = py::reinterpret_steal<py::object>(PyTuple_New(size));
  if (!next) throw py::error_already_set();
  Py_ssize_t at = 0;
  const auto put = [&](PyObject* item) {
    Py_INCREF(item);
    PyTuple_SET_ITEM(next.ptr(), at++, item);
  };
  if (!value.is_none()) {  // this path's first: the one a task reading through one router looks up
    put(key_.ptr());
    put(value.ptr());
  }
  for (Py_ssize_t k = 0; k + 1 < n; k += 2) {
    PyObject* key = PyTuple_GET_ITEM(routes.ptr(), k);
    if (!kept(key)) continue;
    put(key);
    put(PyTuple_GET_ITEM(routes.ptr(), k + 1));
  }
  PyObject* token = PyContextVar_Set(route_var(), next.ptr());
  if (token == nullptr) throw py::error_already_set();
  Py_DECREF(token);
}

}  // namespace replikit::bindings
