// All C++ -> Python error mapping lives here.
#include <pybind11/pybind11.h>

#include <cstring>

#include "bindings.hpp"
#include "replikit/errors.hpp"

namespace replikit::bindings {

namespace {

// Strong references kept for the life of the interpreter.
PyObject* g_error = nullptr;
PyObject* g_invalid_argument = nullptr;
PyObject* g_argument_type = nullptr;
PyObject* g_token_error = nullptr;
PyObject* g_not_found = nullptr;
PyObject* g_capacity = nullptr;
PyObject* g_connection = nullptr;
PyObject* g_timeout = nullptr;
PyObject* g_query = nullptr;
PyObject* g_commit_unknown = nullptr;
PyObject* g_lost_writes = nullptr;

PyObject* make_class(py::module_& m, const char* name, std::initializer_list<PyObject*> bases,
                     const char* doc) {
  std::string qualified = std::string("replikit.") + name;
  py::tuple base_tuple(bases.size());
  std::size_t i = 0;
  for (PyObject* b : bases) base_tuple[i++] = py::reinterpret_borrow<py::object>(b);
  PyObject* cls = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, base_tuple.ptr(), nullptr);
  if (cls == nullptr) throw py::error_already_set();
  m.attr(name) = py::reinterpret_borrow<py::object>(cls);
  return cls;
}

// Raises `cls(message)` with extra attributes set on the instance.
void raise(PyObject* cls, const char* message,
           std::initializer_list<std::pair<const char*, py::object>> attributes = {}) {
  // Messages may quote user input cut at a byte (e.g. one byte of a multi-byte character in a
  // malformed LSN): decode leniently, or the user would get a UnicodeDecodeError instead.
  PyObject* text = PyUnicode_DecodeUTF8(message, static_cast<Py_ssize_t>(std::strlen(message)), "backslashreplace");
  if (text == nullptr) throw py::error_already_set();
  py::object instance = py::reinterpret_borrow<py::object>(cls)(py::reinterpret_steal<py::str>(text));
  for (auto& [key, value] : attributes) instance.attr(key) = value;
  PyErr_SetObject(cls, instance.ptr());
}

}  // namespace

void bind_errors(py::module_& m) {
  g_error = make_class(m, "Error", {PyExc_Exception}, "Base of every replikit error.");
  g_invalid_argument = make_class(m, "InvalidArgument", {g_error, PyExc_ValueError},
                                  "Bad input; `.argument` names the rejected argument.");
  g_argument_type = make_class(m, "ArgumentTypeError", {g_error, PyExc_TypeError},
                                "An argument of the wrong type; `.argument` names it.");
  g_token_error = make_class(m, "TokenError", {g_invalid_argument},
                             "A session token that is malformed or fails its signature.");
  g_not_found = make_class(m, "NotFound", {g_invalid_argument, PyExc_LookupError},
                           "A name (node, key, ...) that is not known.");
  g_capacity = make_class(m, "CapacityExceeded", {g_error},
                          "A capacity bound of the library was reached.");
  g_connection = make_class(m, "ConnectionError", {g_error, PyExc_ConnectionError},
                            "A connection could not be made or broke.");
  g_timeout = make_class(m, "TimeoutError", {g_error, PyExc_TimeoutError},
                         "A bounded wait ran out.");
  g_query = make_class(m, "QueryError", {g_error},
                       "The server rejected a statement; `.sqlstate` keeps its SQLSTATE.");
  g_commit_unknown = make_class(m, "CommitUnknown", {g_error},
                                "The connection broke during a commit: it may or may not have committed.");
  g_lost_writes = make_class(m, "LostWrites", {g_error},
                             "Writes of a session that a failover lost; `.lsns` lists their commit LSNs, "
                             "`.timeline` and `.switch_lsn` say where the timeline they were on ended.");

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const TokenError& e) {
      raise(g_token_error, e.what(), {{"argument", py::str(e.argument())}});
    } catch (const NotFound& e) {
      raise(g_not_found, e.what(), {{"argument", py::str(e.argument())}});
    } catch (const ArgumentTypeError& e) {
      raise(g_argument_type, e.what(), {{"argument", py::str(e.argument())}});
    } catch (const InvalidArgument& e) {
      raise(g_invalid_argument, e.what(), {{"argument", py::str(e.argument())}});
    } catch (const CapacityExceeded& e) {
      raise(g_capacity, e.what());
    } catch (const ConnectionError& e) {
      raise(g_connection, e.what());
    } catch (const TimeoutError& e) {
      raise(g_timeout, e.what());
    } catch (const QueryError& e) {
      raise(g_query, e.what(), {{"sqlstate", py::str(e.sqlstate())}});
    } catch (const CommitUnknown& e) {
      raise(g_commit_unknown, e.what());
    } catch (const LostWrites& e) {
      py::list lsns;
      for (Lsn lsn : e.lsns()) lsns.append(py::cast(lsn));
      raise(g_lost_writes, e.what(),
            {{"lsns", lsns}, {"timeline", py::int_(e.timeline())}, {"switch_lsn", py::cast(e.switch_lsn())}});
    } catch (const Error& e) {
      raise(g_error, e.what());
    }
  });
}

}  // namespace replikit::bindings
