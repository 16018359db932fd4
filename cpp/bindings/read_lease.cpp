// The leases of replikit.psycopg's routers' read() (see read_path.hpp): `with router.read(...)`
// and `async with router.read(...)` without a Python frame on the common path. read() makes a
// lease; entering takes a parked connection through ReadPath::take, or else makes the Python
// lease (replikit.psycopg._lease, the general path) and enters that one; leaving counts and
// parks (ReadPath::leave), or hands a failure or an observing read to the Python lease's exit
// (the hooks' `finish`). An async lease is its own awaitable when nothing needs awaiting.
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "read_path.hpp"

namespace replikit::bindings {

namespace {

struct Lease {
  PyObject_HEAD
  ReadPath* path;
  PyObject* owner;  // the ReadPath's Python object: keeps `path` alive
  PyObject* session;
  PyObject* level;
  PyObject* max_staleness_ms;
  PyObject* wait_for_replica_ms;
  PyObject* slow;    // the Python lease serving this read (the general path), or null
  PyObject* conn;    // the connection leased here, or null
  PyObject* result;  // async: what awaiting the lease gives (null: None)
  int slot;
  bool observe;
};

PyTypeObject* g_lease_type = nullptr;
PyTypeObject* g_async_lease_type = nullptr;

void lease_dealloc(PyObject* self) {
  auto* l = reinterpret_cast<Lease*>(self);
  Py_XDECREF(l->owner);
  Py_XDECREF(l->session);
  Py_XDECREF(l->level);
  Py_XDECREF(l->max_staleness_ms);
  Py_XDECREF(l->wait_for_replica_ms);
  Py_XDECREF(l->slow);
  Py_XDECREF(l->conn);
  Py_XDECREF(l->result);
  PyTypeObject* type = Py_TYPE(self);
  type->tp_free(self);
  Py_DECREF(type);
}

// Runs `body`, turning a C++ exception into the Python one (as pybind11's dispatcher does).
template <typename F>
PyObject* guarded(F&& body) {
  try {
    return body();
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (...) {
    py::detail::try_translate_exceptions();
  }
  return nullptr;
}

// Entering: the connection leased here, or else the Python lease made (kept in l->slow) and the
// result of `enter` on it (its __enter__, or the awaitable of its __aenter__).
py::object enter(Lease* l, const char* enter_name) {
  if (l->path == nullptr || l->conn != nullptr || l->slow != nullptr) {
    throw InvalidArgument("read", "a read lease is entered once at a time");
  }
  py::object conn;
  py::object missed;
  const int slot = l->path->take(l->session, l->level, l->max_staleness_ms, &conn, &missed);
  if (slot >= 0) {
    l->slot = slot;
    l->conn = conn.inc_ref().ptr();
    return conn;
  }
  py::object slow = l->path->slow_lease()(l->path->router(), py::handle(l->session), py::handle(l->level),
                                          py::handle(l->max_staleness_ms), py::handle(l->wait_for_replica_ms),
                                          missed);
  py::object entered = slow.attr(enter_name)();
  l->slow = slow.release().ptr();
  return entered;
}

// Leaving: None when the read was counted and its connection parked; else the result of the
// Python side's exit (the Python lease's, `finish` or `give_back`: a value, or an awaitable).
py::object leave(Lease* l, PyObject* const* args, Py_ssize_t nargs, const char* exit_name, bool* done) {
  if (nargs != 3) throw InvalidArgument("exit", "expected (exc_type, exc, tb)");
  *done = false;
  if (l->slow != nullptr) {
    py::object slow = py::reinterpret_steal<py::object>(l->slow);
    l->slow = nullptr;
    return slow.attr(exit_name)(py::handle(args[0]), py::handle(args[1]), py::handle(args[2]));
  }
  *done = true;
  if (l->conn == nullptr) return py::none();  // never entered
  py::object conn = py::reinterpret_steal<py::object>(l->conn);
  l->conn = nullptr;
  const py::str& node = l->path->name(l->slot);
  if (args[1] == Py_None && !l->observe) {
    if (l->path->leave(node, conn)) return py::none();
    *done = false;
    return l->path->give_back()(l->path->router(), node, conn);
  }
  *done = false;
  return l->path->finish()(l->path->router(), py::handle(l->session), py::handle(l->level), node, conn,
                           py::handle(args[0]), py::handle(args[1]), py::handle(args[2]));
}

PyObject* lease_enter(PyObject* self, PyObject* /*unused*/) {
  return guarded([self]() { return enter(reinterpret_cast<Lease*>(self), "__enter__").release().ptr(); });
}

PyObject* lease_exit(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  return guarded([self, args, nargs]() {
    bool done = false;
    return leave(reinterpret_cast<Lease*>(self), args, nargs, "__exit__", &done).release().ptr();
  });
}

// An async lease awaited gives l->result once (the lease is its own awaitable and iterator).
PyObject* ready(Lease* l, py::object result) {
  Py_XSETREF(l->result, result.is_none() ? nullptr : result.release().ptr());
  Py_INCREF(l);
  return reinterpret_cast<PyObject*>(l);
}

PyObject* lease_aenter(PyObject* self, PyObject* /*unused*/) {
  return guarded([self]() -> PyObject* {
    auto* l = reinterpret_cast<Lease*>(self);
    py::object out = enter(l, "__aenter__");
    return l->slow != nullptr ? out.release().ptr() : ready(l, std::move(out));
  });
}

PyObject* lease_aexit(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  return guarded([self, args, nargs]() -> PyObject* {
    auto* l = reinterpret_cast<Lease*>(self);
    bool done = false;
    py::object out = leave(l, args, nargs, "__aexit__", &done);
    return done ? ready(l, py::none()) : out.release().ptr();
  });
}

PyObject* lease_await(PyObject* self) {
  Py_INCREF(self);
  return self;
}

// The end of the await: StopIteration carrying the result (built explicitly, so that a tuple
// or an exception as the value is not taken apart).
PyObject* lease_next(PyObject* self) {
  auto* l = reinterpret_cast<Lease*>(self);
  PyObject* result = l->result;
  l->result = nullptr;
  if (result == nullptr) {
    PyErr_SetNone(PyExc_StopIteration);
    return nullptr;
  }
  PyObject* stop = PyObject_CallOneArg(PyExc_StopIteration, result);
  Py_DECREF(result);
  if (stop != nullptr) {
    PyErr_SetObject(PyExc_StopIteration, stop);
    Py_DECREF(stop);
  }
  return nullptr;
}

PyCFunction fastcall(PyObject* (*f)(PyObject*, PyObject* const*, Py_ssize_t)) {
  return reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(f));
}

PyMethodDef kLeaseMethods[] = {
    {"__enter__", lease_enter, METH_NOARGS, "The routed node's connection."},
    {"__exit__", fastcall(lease_exit), METH_FASTCALL, "Counts the read and parks or returns the connection."},
    {nullptr, nullptr, 0, nullptr}};

PyMethodDef kAsyncLeaseMethods[] = {
    {"__aenter__", lease_aenter, METH_NOARGS, "Awaitable: the routed node's connection."},
    {"__aexit__", fastcall(lease_aexit), METH_FASTCALL, "Awaitable: counts the read, parks or returns the connection."},
    {nullptr, nullptr, 0, nullptr}};

// One of read()'s keywords by name.
bool keyword_is(PyObject* name, const char* text) { return PyUnicode_CompareWithASCIIString(name, text) == 0; }

// The C++ object of the ReadPath `self` without a caster's type lookup (make_fast_read checked
// once that it is the caster's): read() runs per read.
ReadPath* path_of(PyObject* self) {
  return reinterpret_cast<py::detail::instance*>(self)->get_value_and_holder().value_ptr<ReadPath>();
}

// read(session=None, *, consistency=READ_YOUR_WRITES, max_staleness_ms=None, wait_for_replica_ms=None),
// bound to its ReadPath (`self`, the builtin's __self__, which keeps the path alive).
PyObject* read_impl(PyTypeObject* type, PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  ReadPath* path = path_of(self);
  if (nargs > 1) throw py::type_error("read() takes at most 1 positional argument");
  PyObject* session = nargs == 1 ? args[0] : Py_None;
  PyObject* consistency = nullptr;
  PyObject* max_staleness_ms = Py_None;
  PyObject* wait = Py_None;
  const Py_ssize_t nkw = kwnames == nullptr ? 0 : PyTuple_GET_SIZE(kwnames);
  for (Py_ssize_t i = 0; i < nkw; ++i) {
    PyObject* name = PyTuple_GET_ITEM(kwnames, i);
    PyObject* value = args[nargs + i];
    if (keyword_is(name, "consistency")) {
      consistency = value;
    } else if (keyword_is(name, "max_staleness_ms")) {
      max_staleness_ms = value;
    } else if (keyword_is(name, "wait_for_replica_ms")) {
      wait = value;
    } else if (keyword_is(name, "session") && nargs == 0) {
      session = value;
    } else {
      throw py::type_error("read() got an unexpected or repeated keyword argument '" +
                           py::str(name).cast<std::string>() + "'");
    }
  }
  py::object level = path->level(consistency);
  py::object wait_ms = path->wait_ms(wait);
  auto* l = reinterpret_cast<Lease*>(type->tp_alloc(type, 0));
  if (l == nullptr) throw py::error_already_set();
  l->path = path;
  l->owner = py::handle(self).inc_ref().ptr();
  l->session = py::handle(session).inc_ref().ptr();
  l->observe = session != Py_None && path->observing(level.ptr());
  l->level = level.release().ptr();
  l->max_staleness_ms = py::handle(max_staleness_ms).inc_ref().ptr();
  l->wait_for_replica_ms = wait_ms.release().ptr();
  return reinterpret_cast<PyObject*>(l);
}

PyObject* read(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return guarded([=]() { return read_impl(g_lease_type, self, args, nargs, kwnames); });
}

PyObject* read_async(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return guarded([=]() { return read_impl(g_async_lease_type, self, args, nargs, kwnames); });
}

PyCFunction keywords(PyObject* (*f)(PyObject*, PyObject* const*, Py_ssize_t, PyObject*)) {
  return reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(f));
}

// The text signature (the C API's "name($self, /, ...)\n--\n\n" docstring prefix, which
// inspect.signature and help() read) and the docstring say what the routers' Python read()
// methods say (tests/python compare them).
#define REPLIKIT_READ_SIGNATURE                                                                       \
  "read($self, /, session=None, *, consistency='read_your_writes', max_staleness_ms=None, "           \
  "wait_for_replica_ms=None)\n--\n\n"
#define REPLIKIT_READ_ARGS                                                                            \
  "session: the caller's replikit.Session (None: one that never wrote). consistency: a\n"             \
  "replikit.Consistency or its lower-case name. max_staleness_ms: the bound of a\n"                   \
  "bounded_staleness read. wait_for_replica_ms: how long a read no replica covers yet may wait\n"     \
  "for one before the primary serves it (\"auto\", or ms; None or negative: the router's\n"           \
  "option).\n\n"                                                                                      \
  "Monotonic/Causal reads with a session record what they saw (one round trip after the\n"           \
  "block, on the same connection). The routing decision is ``last_route``."

PyMethodDef kReadDef = {"read", keywords(read), METH_FASTCALL | METH_KEYWORDS,
                        REPLIKIT_READ_SIGNATURE
                        "``with router.read(session) as conn``: a pooled connection to the node the\n"
                        "router picks for this read, for the duration of the block.\n\n" REPLIKIT_READ_ARGS};
PyMethodDef kAsyncReadDef = {"read", keywords(read_async), METH_FASTCALL | METH_KEYWORDS,
                             REPLIKIT_READ_SIGNATURE
                             "``async with router.read(session) as conn``: a pooled connection to the node\n"
                             "the router picks for this read, for the duration of the block.\n\n" REPLIKIT_READ_ARGS};
#undef REPLIKIT_READ_ARGS
#undef REPLIKIT_READ_SIGNATURE

PyTypeObject* lease_type(const char* name, PyMethodDef* methods, bool is_async) {
  static PyType_Slot sync_slots[] = {{Py_tp_dealloc, reinterpret_cast<void*>(lease_dealloc)},
                                     {Py_tp_methods, nullptr},
                                     {Py_tp_doc, const_cast<char*>("A read lease of a router (with it).")},
                                     {0, nullptr}};
  static PyType_Slot async_slots[] = {{Py_tp_dealloc, reinterpret_cast<void*>(lease_dealloc)},
                                      {Py_tp_methods, nullptr},
                                      {Py_tp_doc, const_cast<char*>("A read lease of a router (async with it).")},
                                      {Py_am_await, reinterpret_cast<void*>(lease_await)},
                                      {Py_tp_iter, reinterpret_cast<void*>(PyObject_SelfIter)},
                                      {Py_tp_iternext, reinterpret_cast<void*>(lease_next)},
                                      {0, nullptr}};
  PyType_Slot* slots = is_async ? async_slots : sync_slots;
  slots[1].pfunc = methods;
  static PyType_Spec specs[2] = {};
  PyType_Spec& spec = specs[is_async ? 1 : 0];
#ifdef Py_TPFLAGS_DISALLOW_INSTANTIATION
  constexpr unsigned int kFlags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION;
#else  // Python < 3.10: a lease made by hand has no path, and enter() refuses it
  constexpr unsigned int kFlags = Py_TPFLAGS_DEFAULT;
#endif
  spec = {name, sizeof(Lease), 0, kFlags, slots};
  auto* type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&spec));
  if (type == nullptr) throw py::error_already_set();
  return type;
}

}  // namespace

py::object make_fast_read(const py::object& path, const py::handle& router, const py::handle& hooks,
                          const py::handle& is_async_arg) {
  const bool is_async = to_bool(is_async_arg, "is_async");
  auto& p = path.cast<ReadPath&>();
  if (path_of(path.ptr()) != &p) throw std::logic_error("fast_read: a ReadPath with an unexpected layout");
  p.set_hooks(router, hooks, is_async);
  py::object fn = py::reinterpret_steal<py::object>(
      PyCFunction_NewEx(is_async ? &kAsyncReadDef : &kReadDef, path.ptr(), nullptr));
  if (!fn) throw py::error_already_set();
  return fn;
}

void make_lease_types() {
  g_lease_type = lease_type("replikit._core.ReadLease", kLeaseMethods, false);
  g_async_lease_type = lease_type("replikit._core.AsyncReadLease", kAsyncLeaseMethods, true);
}

}  // namespace replikit::bindings
