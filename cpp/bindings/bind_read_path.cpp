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
  // used within check_idle_s, takes that connection into `conn` and records the decision: its
  // slot. Else -1 and nothing changed: the caller takes its general path, which routes again.
  int take(const py::handle& session, const py::handle& consistency, const py::handle& max_staleness_ms,
           py::object* conn) {
    if (closed_) return -1;
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
    if (d.node == kNoNode || d.node == primary_ || static_cast<std::size_t>(d.node) >= parked_.size()) return -1;
    PyObject* list = parked_[static_cast<std::size_t>(d.node)].ptr();
    const Py_ssize_t n = PyList_GET_SIZE(list);
    if (n == 0) return -1;
    py::object newest = py::reinterpret_borrow<py::object>(PyList_GET_ITEM(list, n - 1));
    // Idle a while: left parked for the general path, which checks its socket first.
    if (monotonic_s() - float_attr(newest.ptr(), idle_name(), 0.0) >= check_idle_s_) return -1;
    if (PyList_SetSlice(list, n - 1, n, nullptr) != 0) throw py::error_already_set();
    router_->record(d);
    last_ = d;
    has_last_ = true;
    *conn = std::move(newest);
    return d.node;
  }

  py::object enter(const py::handle& session, const py::handle& consistency, const py::handle& max_staleness_ms) {
    py::object conn;
    const int slot = take(session, consistency, max_staleness_ms, &conn);
    if (slot < 0) return py::none();
    return py::make_tuple(names_[static_cast<std::size_t>(slot)], conn);
  }

  const py::str& name(int slot) const { return names_[static_cast<std::size_t>(slot)]; }

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

  /// The Python pieces the sync router's fast read() falls back on (see FastLease), with a weak
  /// reference to the router: the router holds its read(), which holds this path.
  void set_hooks(const py::handle& router, const py::handle& hooks) {
    router_ref_ = py::reinterpret_steal<py::object>(PyWeakref_NewRef(router.ptr(), nullptr));
    if (!router_ref_) throw py::error_already_set();
    slow_lease_ = hooks.attr("slow_lease");
    finish_ = hooks.attr("finish");
    give_back_ = hooks.attr("give_back");
    level_of_ = hooks.attr("level_of");
    wait_ms_of_ = hooks.attr("wait_ms_of");
    default_level_ = hooks.attr("DEFAULT_LEVEL");
    const py::tuple observing = hooks.attr("OBSERVING");
    observing_a_ = observing[0];
    observing_b_ = observing[1];
    level_type_ = py::reinterpret_borrow<py::object>(reinterpret_cast<PyObject*>(Py_TYPE(default_level_.ptr())));
  }

  /// The router (raises ConnectionError when it is gone).
  py::object router() const {
    PyObject* r = PyWeakref_GetObject(router_ref_.ptr());  // borrowed
    if (r == nullptr) throw py::error_already_set();
    if (r == Py_None) throw ConnectionError("the router is gone");
    return py::reinterpret_borrow<py::object>(r);
  }

  /// A read's consistency as read() takes it: the member itself, else the hook's conversion.
  py::object level(PyObject* consistency) const {
    if (consistency == nullptr) return default_level_;
    if (Py_TYPE(consistency) == reinterpret_cast<PyTypeObject*>(level_type_.ptr())) {
      return py::reinterpret_borrow<py::object>(consistency);
    }
    return level_of_(py::handle(consistency));
  }
  py::object wait_ms(PyObject* wait) const {
    if (wait == Py_None) return py::none();
    return wait_ms_of_(py::handle(wait));
  }
  bool observing(PyObject* level) const { return level == observing_a_.ptr() || level == observing_b_.ptr(); }
  const py::object& slow_lease() const { return slow_lease_; }
  const py::object& finish() const { return finish_; }
  const py::object& give_back() const { return give_back_; }

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
  py::object router_ref_, slow_lease_, finish_, give_back_, level_of_, wait_ms_of_;
  py::object default_level_, observing_a_, observing_b_, level_type_;
};

// ---- the sync router's read(): a lease implemented here -------------------------------------
// `with router.read(...) as conn` without Python frames on the common path: read() makes a
// FastLease; __enter__ takes a parked connection through ReadPath::take, or else makes the
// Python lease (replikit.psycopg._lease.ReadLease, the general path) and enters that one;
// __exit__ counts and parks (ReadPath::leave), or hands a failure or an observing read to the
// Python lease's __exit__ (`finish`).

struct FastLease {
  PyObject_HEAD
  ReadPath* path;
  PyObject* owner;  // the ReadPath's Python object: keeps `path` alive
  PyObject* session;
  PyObject* level;
  PyObject* max_staleness_ms;
  PyObject* wait_for_replica_ms;
  PyObject* slow;  // the Python lease serving this read (the general path), or null
  PyObject* conn;  // the connection leased here, or null
  int slot;
  bool observe;
};

PyTypeObject* g_fast_lease_type = nullptr;
constexpr const char* kPathCapsule = "replikit.ReadPath";

void fast_lease_dealloc(PyObject* self) {
  auto* l = reinterpret_cast<FastLease*>(self);
  Py_XDECREF(l->owner);
  Py_XDECREF(l->session);
  Py_XDECREF(l->level);
  Py_XDECREF(l->max_staleness_ms);
  Py_XDECREF(l->wait_for_replica_ms);
  Py_XDECREF(l->slow);
  Py_XDECREF(l->conn);
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

PyObject* fast_lease_enter(PyObject* self, PyObject* /*unused*/) {
  return guarded([self]() -> PyObject* {
    auto* l = reinterpret_cast<FastLease*>(self);
    if (l->path == nullptr || l->conn != nullptr || l->slow != nullptr) {
      throw InvalidArgument("read", "a read lease is entered once");
    }
    py::object conn;
    const int slot = l->path->take(l->session, l->level, l->max_staleness_ms, &conn);
    if (slot >= 0) {
      l->slot = slot;
      l->conn = conn.inc_ref().ptr();
      return conn.release().ptr();
    }
    py::object slow = l->path->slow_lease()(l->path->router(), py::handle(l->session), py::handle(l->level),
                                            py::handle(l->max_staleness_ms), py::handle(l->wait_for_replica_ms));
    py::object entered = slow.attr("__enter__")();
    l->slow = slow.release().ptr();
    return entered.release().ptr();
  });
}

PyObject* fast_lease_exit(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  return guarded([self, args, nargs]() -> PyObject* {
    if (nargs != 3) throw InvalidArgument("__exit__", "expected (exc_type, exc, tb)");
    auto* l = reinterpret_cast<FastLease*>(self);
    if (l->slow != nullptr) {
      py::object slow = py::reinterpret_steal<py::object>(l->slow);
      l->slow = nullptr;
      return slow.attr("__exit__")(py::handle(args[0]), py::handle(args[1]), py::handle(args[2])).release().ptr();
    }
    if (l->conn == nullptr) Py_RETURN_NONE;  // never entered
    py::object conn = py::reinterpret_steal<py::object>(l->conn);
    l->conn = nullptr;
    const py::str& node = l->path->name(l->slot);
    if (args[1] == Py_None && !l->observe) {
      if (!l->path->leave(node, conn)) l->path->give_back()(l->path->router(), node, conn);
      Py_RETURN_NONE;
    }
    return l->path->finish()(l->path->router(), py::handle(l->session), py::handle(l->level), node, conn,
                             py::handle(args[0]), py::handle(args[1]), py::handle(args[2]))
        .release()
        .ptr();
  });
}

PyMethodDef kFastLeaseMethods[] = {
    {"__enter__", fast_lease_enter, METH_NOARGS, "The routed node's connection."},
    {"__exit__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fast_lease_exit)), METH_FASTCALL,
     "Counts the read and parks the connection, or hands a failure to the general path."},
    {nullptr, nullptr, 0, nullptr}};

// One of read()'s keywords by name (kwnames are interned by the caller as a rule; compared by value).
bool keyword_is(PyObject* name, const char* text) { return PyUnicode_CompareWithASCIIString(name, text) == 0; }

// read(session=None, *, consistency=READ_YOUR_WRITES, max_staleness_ms=None, wait_for_replica_ms=None)
PyObject* fast_read(PyObject* capsule, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return guarded([=]() -> PyObject* {
    auto* path = static_cast<ReadPath*>(PyCapsule_GetPointer(capsule, kPathCapsule));
    if (path == nullptr) throw py::error_already_set();
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
    auto* l = reinterpret_cast<FastLease*>(g_fast_lease_type->tp_alloc(g_fast_lease_type, 0));
    if (l == nullptr) throw py::error_already_set();
    l->path = path;
    l->owner = static_cast<PyObject*>(PyCapsule_GetContext(capsule));
    Py_XINCREF(l->owner);
    l->session = py::handle(session).inc_ref().ptr();
    l->observe = session != Py_None && path->observing(level.ptr());
    l->level = level.release().ptr();
    l->max_staleness_ms = py::handle(max_staleness_ms).inc_ref().ptr();
    l->wait_for_replica_ms = wait_ms.release().ptr();
    return reinterpret_cast<PyObject*>(l);
  });
}

PyMethodDef kFastReadDef = {"read", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fast_read)),
                            METH_FASTCALL | METH_KEYWORDS,
                            "router.read(session=None, *, consistency=..., max_staleness_ms=None, "
                            "wait_for_replica_ms=None): a read lease (see ConnectionRouter.read)."};

void release_owner(PyObject* capsule) { Py_XDECREF(static_cast<PyObject*>(PyCapsule_GetContext(capsule))); }

// The sync router's read() over `self` (a ReadPath): a builtin function holding the path.
py::object make_fast_read(const py::object& self, const py::handle& router, const py::handle& hooks) {
  auto& path = self.cast<ReadPath&>();
  path.set_hooks(router, hooks);
  py::object capsule = py::reinterpret_steal<py::object>(PyCapsule_New(&path, kPathCapsule, release_owner));
  if (!capsule || PyCapsule_SetContext(capsule.ptr(), self.inc_ref().ptr()) != 0) throw py::error_already_set();
  py::object fn = py::reinterpret_steal<py::object>(PyCFunction_NewEx(&kFastReadDef, capsule.ptr(), nullptr));
  if (!fn) throw py::error_already_set();
  return fn;
}

void make_fast_lease_type() {
  static PyType_Slot slots[] = {{Py_tp_dealloc, reinterpret_cast<void*>(fast_lease_dealloc)},
                                {Py_tp_methods, kFastLeaseMethods},
                                {Py_tp_doc, const_cast<char*>("A read lease of a ConnectionRouter (with it).")},
                                {0, nullptr}};
  static PyType_Spec spec = {"replikit._core.ReadLease", sizeof(FastLease), 0,
                             Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, slots};
  g_fast_lease_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&spec));
  if (g_fast_lease_type == nullptr) throw py::error_already_set();
}

}  // namespace

void bind_read_path(py::module_& m) {
  make_fast_lease_type();
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
      .def("fast_read", &make_fast_read, py::arg("router"), py::arg("hooks"),
           "The sync router's read() as a builtin over this path: `hooks` (replikit.psycopg._lease) gives the "
           "Python general path and checks; the router is held weakly.")
      .def("close", &ReadPath::close, "Parks nothing from now on.")
      .def_property("last_route", &ReadPath::last_route, &ReadPath::set_last_route,
                    "The Decision of the latest read leased (None before the first).");
}

}  // namespace replikit::bindings
