// Python bindings of ReadPath: the per-read fast path of replikit.psycopg's connection routers.
// A routed read there costs, on top of psycopg, what its lease costs in Python; the common case
// (a replica chosen at once and a warm connection idle in the router) is one call here on
// entry and one on exit, the rest stays in Python (the router's general path).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "convert.hpp"
#include "replikit/router.hpp"
#include "routing_values.hpp"

namespace replikit::bindings {

namespace {

constexpr long kTransactionIdle = 0;  // libpq's PQTRANS_IDLE (psycopg.pq.TransactionStatus.IDLE)

// Attribute names, interned once (the module lives as long as the interpreter).
PyObject* interned(const char* text) {
  PyObject* s = PyUnicode_InternFromString(text);
  if (s == nullptr) throw py::error_already_set();
  return s;
}

// A float attribute of `obj`, or `missing` when it has none.
double float_attr(PyObject* obj, PyObject* name, double missing) {
  PyObject* v = PyObject_GetAttr(obj, name);
  if (v == nullptr) {
    if (!PyErr_ExceptionMatches(PyExc_AttributeError)) throw py::error_already_set();
    PyErr_Clear();
    return missing;
  }
  const double out = PyFloat_AsDouble(v);
  Py_DECREF(v);
  if (out == -1.0 && PyErr_Occurred()) throw py::error_already_set();
  return out;
}

double monotonic_s() { return static_cast<double>(monotonic_ns()) / 1e9; }

class ReadPath {
 public:
  ReadPath(std::shared_ptr<Router> router, const std::string& primary, const py::dict& parked,
           const py::tuple& counters, bool parking, double check_idle_s)
      : router_(std::move(router)), parking_(parking), check_idle_s_(check_idle_s) {
    const Topology& t = *router_->topology();
    primary_ = t.index_of(primary, "primary");
    for (int i = 0; i < t.size(); ++i) {
      names_.emplace_back(t.name(i));
      py::object list = parked.contains(names_.back()) ? py::object(parked[names_.back()]) : py::object(py::list());
      if (!py::isinstance<py::list>(list)) wrong_type("parked", "a dict of lists", list);
      parked_.push_back(py::reinterpret_borrow<py::list>(list));
    }
    if (counters.size() != 3) throw InvalidArgument("counters", "expected (reads, reads_on_primary, reads_on_replicas)");
    for (const auto& c : counters) {
      if (!PyIter_Check(c.ptr())) wrong_type("counters", "iterators (itertools.count)", c);
    }
    reads_ = counters[0];
    on_primary_ = counters[1];
    on_replicas_ = counters[2];
  }

  // Routes a read (not counted) and, when a replica is chosen whose newest idle connection was
  // used within check_idle_s, takes that connection and records the decision: (node, conn).
  // Else None and nothing changed: the caller takes its general path, which routes again.
  py::object enter(const py::handle& session, const py::handle& consistency, const py::handle& max_staleness_ms) {
    if (closed_) return py::none();
    static const Session no_session;  // never changed: routing only reads a session
    if (!session.is_none() && !py::isinstance<Session>(session)) {
      wrong_type("session", "a replikit.Session", session);
    }
    const Session& s = session.is_none() ? no_session : session.cast<const Session&>();
    const Consistency k = to_enum<Consistency>(consistency, "consistency");
    ReadOptions o;
    if (!max_staleness_ms.is_none()) o.max_staleness_ms = to_ms(max_staleness_ms, "max_staleness_ms");
    o.count = false;
    const Decision d = router_->route_read(s, k, wall_ns(), o);
    if (d.node == kNoNode || d.node == primary_ || static_cast<std::size_t>(d.node) >= parked_.size()) {
      return py::none();
    }
    PyObject* list = parked_[static_cast<std::size_t>(d.node)].ptr();
    const Py_ssize_t n = PyList_GET_SIZE(list);
    if (n == 0) return py::none();
    py::object conn = py::reinterpret_borrow<py::object>(PyList_GET_ITEM(list, n - 1));
    // Idle a while: left parked for the general path, which checks its socket first.
    if (monotonic_s() - float_attr(conn.ptr(), idle_name(), 0.0) >= check_idle_s_) return py::none();
    if (PyList_SetSlice(list, n - 1, n, nullptr) != 0) throw py::error_already_set();
    router_->record(d);
    last_ = d;
    has_last_ = true;
    return py::make_tuple(names_[static_cast<std::size_t>(d.node)], conn);
  }

  // A read on `node` served without error: counts it, stamps `conn` idle now and parks it
  // (newest last) when it may be kept: parking on, the router open, the connection idle (no
  // transaction) and not past its pool's max_lifetime. False: return it to its pool.
  bool leave(const py::handle& node, const py::handle& conn) {
    const std::size_t i = index_of(node);
    count(reads_);
    count(static_cast<int>(i) == primary_ ? on_primary_ : on_replicas_);
    const double now = monotonic_s();
    py::object stamp = py::reinterpret_steal<py::object>(PyFloat_FromDouble(now));
    if (!stamp || PyObject_SetAttr(conn.ptr(), idle_name(), stamp.ptr()) != 0) throw py::error_already_set();
    if (!parking_ || closed_) return false;
    py::object pgconn = py::reinterpret_steal<py::object>(PyObject_GetAttr(conn.ptr(), pgconn_name()));
    if (!pgconn) throw py::error_already_set();
    py::object status = py::reinterpret_steal<py::object>(PyObject_GetAttr(pgconn.ptr(), status_name()));
    if (!status) throw py::error_already_set();
    const long st = PyLong_AsLong(status.ptr());
    if (st == -1 && PyErr_Occurred()) throw py::error_already_set();
    if (st != kTransactionIdle) return false;
    if (float_attr(conn.ptr(), expire_name(), std::numeric_limits<double>::infinity()) <= now) return false;
    if (PyList_Append(parked_[i].ptr(), conn.ptr()) != 0) throw py::error_already_set();
    return true;
  }

  /// Parks nothing from now on (the router closes and returns what is parked).
  void close() noexcept { closed_ = true; }

  py::object last_route() const {
    if (!has_last_) return py::none();
    return py::cast(named(*router_->topology(), last_));
  }

  void set_last_route(const py::handle& decision) {
    if (decision.is_none()) {
      has_last_ = false;
      return;
    }
    if (!py::isinstance<NamedDecision>(decision)) wrong_type("last_route", "a replikit.Decision", decision);
    last_ = decision.cast<const NamedDecision&>().decision;
    has_last_ = true;
  }

 private:
  static PyObject* idle_name() {
    static PyObject* s = interned("_replikit_idle_since");
    return s;
  }
  static PyObject* expire_name() {  // psycopg_pool's max_lifetime deadline on a pooled connection
    static PyObject* s = interned("_expire_at");
    return s;
  }
  static PyObject* pgconn_name() {
    static PyObject* s = interned("pgconn");
    return s;
  }
  static PyObject* status_name() {
    static PyObject* s = interned("transaction_status");
    return s;
  }

  static void count(const py::object& counter) {
    PyObject* v = PyIter_Next(counter.ptr());
    if (v == nullptr) throw py::error_already_set();
    Py_DECREF(v);
  }

  // The slot of `node`: by identity for the names enter() hands out, else by name.
  std::size_t index_of(const py::handle& node) const {
    for (std::size_t i = 0; i < names_.size(); ++i) {
      if (names_[i].ptr() == node.ptr()) return i;
    }
    const int i = router_->topology()->index_of(to_str(node, "node"), "node");
    if (i < 0 || static_cast<std::size_t>(i) >= parked_.size()) throw InvalidArgument("node", "not a node of this router");
    return static_cast<std::size_t>(i);
  }

  std::shared_ptr<Router> router_;
  int primary_ = kNoNode;
  std::vector<py::str> names_;
  std::vector<py::list> parked_;
  py::object reads_, on_primary_, on_replicas_;
  bool parking_;
  double check_idle_s_;
  bool closed_ = false;
  Decision last_;
  bool has_last_ = false;
};

}  // namespace

void bind_read_path(py::module_& m) {
  py::class_<ReadPath>(m, "ReadPath",
                       "The per-read fast path of a connection router (replikit.psycopg): a read's routing, "
                       "connection lease and record in one call on entry, its count and parking in one on exit.")
      .def(py::init<std::shared_ptr<Router>, const std::string&, const py::dict&, const py::tuple&, bool, double>(),
           py::arg("router"), py::arg("primary"), py::arg("parked"), py::arg("counters"), py::arg("parking"),
           py::arg("check_idle_s"),
           "parked: node name -> the list of its idle connections (newest last), shared with the caller; "
           "counters: (reads, reads_on_primary, reads_on_replicas) iterators (itertools.count) advanced per read.")
      .def("enter", &ReadPath::enter, py::arg("session"), py::arg("consistency"), py::arg("max_staleness_ms"),
           "Routes a read (session None: one that never wrote; the wall clock). When a replica is chosen whose newest "
           "parked connection was used within check_idle_s: takes it, records the decision and returns (node, conn); "
           "else None and nothing changed.")
      .def("leave", &ReadPath::leave, py::arg("node"), py::arg("conn"),
           "Counts a read served on `node`, stamps `conn` idle now and parks it if it may be kept (idle, within its "
           "pool's max_lifetime, parking on, not closed); False: return it to its pool.")
      .def("close", &ReadPath::close, "Parks nothing from now on.")
      .def_property("last_route", &ReadPath::last_route, &ReadPath::set_last_route,
                    "The Decision of the latest read leased (None before the first).");
}

}  // namespace replikit::bindings
