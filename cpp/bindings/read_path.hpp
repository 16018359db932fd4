#pragma once
// ReadPath: the per-read fast path of replikit.psycopg's connection routers (bound in
// bind_read_path.cpp; the routers' read() leases built on it in read_lease.cpp).
#include <pybind11/pybind11.h>

#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "convert.hpp"
#include "replikit/router.hpp"
#include "routing_values.hpp"
#include "task_route.hpp"

namespace replikit::bindings {

namespace read_path_detail {

constexpr long kTransactionIdle = 0;  // libpq's PQTRANS_IDLE (psycopg.pq.TransactionStatus.IDLE)

/// An attribute name, interned once (the module lives as long as the interpreter).
inline PyObject* interned(const char* text) {
  PyObject* s = PyUnicode_InternFromString(text);
  if (s == nullptr) throw py::error_already_set();
  return s;
}

/// A float attribute of `obj`, or `missing` when it has none.
inline double float_attr(PyObject* obj, PyObject* name, double missing) {
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

/// time.monotonic().
inline double monotonic_s() { return static_cast<double>(monotonic_ns()) / 1e9; }

}  // namespace read_path_detail

using read_path_detail::float_attr;
using read_path_detail::interned;
using read_path_detail::kTransactionIdle;
using read_path_detail::monotonic_s;

/// A connection router's read path: routes, leases parked connections, counts and parks.
class ReadPath {
 public:
  ReadPath(const py::handle& router, const py::handle& primary, const py::handle& parked, const py::handle& counters,
           const py::handle& parking, const py::handle& check_idle_s)
      : parking_(to_bool(parking, "parking")), check_idle_s_(to_double(check_idle_s, "check_idle_s")) {
    // This path's threading.local (per_task_ false; its task_route_ when true): each caller sees
    // the decision of its own latest read, not another's.
    route_local_ = py::module_::import("threading").attr("local")();
    if (!py::isinstance<Router>(router)) wrong_type("router", "a replikit.Router", router);
    router_ = router.cast<std::shared_ptr<Router>>();
    if (!py::isinstance<py::dict>(parked)) wrong_type("parked", "a dict of lists", parked);
    if (!py::isinstance<py::tuple>(counters)) wrong_type("counters", "a tuple of iterators", counters);
    const Topology& t = *router_->topology();
    primary_ = t.index_of(to_str(primary, "primary"), "primary");
    parked_.resize(static_cast<std::size_t>(t.size()));  // empty lists: a node left out parks nothing seen
    made_.resize(static_cast<std::size_t>(t.size()));
    for (int i = 0; i < t.size(); ++i) names_.emplace_back(t.name(i));
    for (const auto& [key, list] : py::reinterpret_borrow<py::dict>(parked)) {
      const int i = t.find(to_str(key, "parked"));
      if (i < 0) throw InvalidArgument("parked", "not a node of the router: '" + to_str(key, "parked") + "'");
      if (!py::isinstance<py::list>(list)) wrong_type("parked", "a dict of lists", list);
      parked_[static_cast<std::size_t>(i)] = py::reinterpret_borrow<py::list>(list);
    }
    const auto counted = py::reinterpret_borrow<py::tuple>(counters);
    if (counted.size() != 3) throw InvalidArgument("counters", "expected (reads, reads_on_primary, reads_on_replicas)");
    for (const auto& c : counted) {
      if (!PyIter_Check(c.ptr())) wrong_type("counters", "iterators (itertools.count)", c);
    }
    reads_ = counted[0];
    on_primary_ = counted[1];
    on_replicas_ = counted[2];
  }

  // Routes a read (not counted) and, when a replica is chosen whose newest idle connection was
  // used within check_idle_s, takes that connection into `conn` and records the decision: its
  // slot. Else -1, and `missed` holds the decision (None when closed): routing moved the
  // thread's round-robin cursor and sticky budget, so the general path must act on this
  // decision rather than route again (a second routing would skew the spread of reads).
  int take(const py::handle& session, const py::handle& consistency, const py::handle& max_staleness_ms,
           py::object* conn, py::object* missed) {
    *missed = py::none();
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
    if (k == Consistency::BoundedStaleness) o.tracker_now_ns = monotonic_ns();  // LagTracker's clock
    const Decision d = router_->route_read(s, k, wall_ns(), o);
    const auto miss = [&]() {
      *missed = py::cast(named(*router_->topology(), d));
      return -1;
    };
    if (d.node == kNoNode || d.node == primary_ || static_cast<std::size_t>(d.node) >= parked_.size()) return miss();
    PyObject* list = parked_[static_cast<std::size_t>(d.node)].ptr();
    const Py_ssize_t n = PyList_GET_SIZE(list);
    if (n == 0) return miss();
    py::object newest = py::reinterpret_borrow<py::object>(PyList_GET_ITEM(list, n - 1));
    // Idle a while: left parked for the general path, which checks its socket first.
    if (monotonic_s() - float_attr(newest.ptr(), idle_name(), 0.0) >= check_idle_s_) return miss();
    // The attribute read above may have run Python code (a user's connection class): take the
    // connection only if the list is as it was.
    if (PyList_GET_SIZE(list) != n || PyList_GET_ITEM(list, n - 1) != newest.ptr()) return miss();
    if (PyList_SetSlice(list, n - 1, n, nullptr) != 0) throw py::error_already_set();
    router_->record(d);
    remember(d);
    *conn = std::move(newest);
    return d.node;
  }

  py::object enter(const py::handle& session, const py::handle& consistency, const py::handle& max_staleness_ms) {
    py::object conn;
    py::object missed;
    const int slot = take(session, consistency, max_staleness_ms, &conn, &missed);
    if (slot < 0) return missed;
    return py::make_tuple(names_[static_cast<std::size_t>(slot)], conn);
  }

  const py::str& name(int slot) const { return names_[static_cast<std::size_t>(slot)]; }

  // A read on `node` served without error: counts it, stamps `conn` idle now and parks it
  // (newest last) when it may be kept: parking on, the router open, the connection idle (no
  // transaction) and not past its pool's max_lifetime. False: return it to its pool.
  bool leave(const py::handle& node, const py::handle& conn) {
    const std::size_t i = index_of(node);
    const double now = monotonic_s();
    py::object stamp = py::reinterpret_steal<py::object>(PyFloat_FromDouble(now));
    if (!stamp) throw py::error_already_set();
    if (PyObject_SetAttr(conn.ptr(), idle_name(), stamp.ptr()) != 0) {
      PyErr_Clear();
      wrong_type("conn", "a psycopg connection", conn);
    }
    count(reads_);
    count(static_cast<int>(i) == primary_ ? on_primary_ : on_replicas_);
    if (!parking_ || closed_) return false;
    const long st = transaction_status(conn);
    if (st != kTransactionIdle) return false;
    if (float_attr(conn.ptr(), expire_name(), std::numeric_limits<double>::infinity()) <= now) return false;
    if (PyList_Append(parked_[i].ptr(), conn.ptr()) != 0) throw py::error_already_set();
    if (closed_) return !unpark(i, conn);  // closed meanwhile (the checks above may run Python code)
    return true;
  }

  // Takes `conn` back out of node i's list if it is still there (false: close() took it).
  bool unpark(std::size_t i, const py::handle& conn) {
    PyObject* list = parked_[i].ptr();
    for (Py_ssize_t k = PyList_GET_SIZE(list); k-- > 0;) {
      if (PyList_GET_ITEM(list, k) == conn.ptr()) {
        if (PyList_SetSlice(list, k, k + 1, nullptr) != 0) throw py::error_already_set();
        return true;
      }
    }
    return false;
  }

  /// The Python pieces the sync router's fast read() falls back on (see FastLease), with a weak
  /// reference to the router: the router holds its read(), which holds this path. `is_async`: an
  /// asyncio router's path, whose last_route is kept per task rather than per thread.
  void set_hooks(const py::handle& router, const py::handle& hooks, bool is_async) {
    per_task_ = is_async;  // before any read: fast_read() is called as the router is made
    router_ref_ = py::reinterpret_steal<py::object>(PyWeakref_NewRef(router.ptr(), nullptr));
    if (!router_ref_) {
      PyErr_Clear();
      wrong_type("router", "a connection router (weakly referenceable)", router);
    }
    const auto hook = [&hooks](const char* name) {
      py::object v = py::reinterpret_steal<py::object>(PyObject_GetAttrString(hooks.ptr(), name));
      if (!v) {
        PyErr_Clear();
        wrong_type("hooks", std::string("an object with ") + name, hooks);
      }
      return v;
    };
    slow_lease_ = hook("slow_lease");
    finish_ = hook("finish");
    give_back_ = hook("give_back");
    level_of_ = hook("level_of");
    wait_ms_of_ = hook("wait_ms_of");
    default_level_ = hook("DEFAULT_LEVEL");
    if (!py::isinstance<Consistency>(default_level_)) wrong_type("hooks", "a DEFAULT_LEVEL Consistency", hooks);
    const py::object observing_obj = hook("OBSERVING");
    if (!py::isinstance<py::tuple>(observing_obj) || py::len(observing_obj) != 2) {
      wrong_type("hooks", "an OBSERVING pair of Consistency members", hooks);
    }
    const auto observing = py::reinterpret_borrow<py::tuple>(observing_obj);
    observing_a_ = observing[0];
    observing_b_ = observing[1];
    level_type_ = py::reinterpret_borrow<py::object>(reinterpret_cast<PyObject*>(Py_TYPE(default_level_.ptr())));
  }

  /// The router (raises ConnectionError when it is gone).
  py::object router() const {
#if PY_VERSION_HEX >= 0x030D0000
    PyObject* r = nullptr;  // a new reference, or nullptr when the router is gone
    if (PyWeakref_GetRef(router_ref_.ptr(), &r) < 0) throw py::error_already_set();
    if (r == nullptr) throw ConnectionError("the router is gone");
    return py::reinterpret_steal<py::object>(r);
#else
    PyObject* r = PyWeakref_GetObject(router_ref_.ptr());  // borrowed
    if (r == nullptr) throw py::error_already_set();
    if (r == Py_None) throw ConnectionError("the router is gone");
    return py::reinterpret_borrow<py::object>(r);
#endif
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

  /// The Decision of the calling thread's latest read (an asyncio router's: the task's), or None.
  py::object last_route() const {
    py::object held = route_held();
    return held ? held : py::none();
  }

  /// Sets the calling thread's (an asyncio router's: the task's) latest read's Decision (None: none).
  void set_last_route(const py::handle& decision) {
    if (!decision.is_none() && !py::isinstance<NamedDecision>(decision)) {
      wrong_type("last_route", "a replikit.Decision", decision);
    }
    set_route(decision);
  }

 private:
  // The caller's latest read's Decision (null when it has none): the asyncio task's (its context's
  // value of route_var_) or the thread's (an item of the thread's dict of route_local_).
  py::object route_held() const {
    if (per_task_) return task_route_.get();
    const py::object dict = thread_dict();
    PyObject* held = PyDict_GetItemWithError(dict.ptr(), route_name());  // borrowed
    if (held == nullptr && PyErr_Occurred()) throw py::error_already_set();
    return py::reinterpret_borrow<py::object>(held);
  }

  // A thread's is a dict item set in place: no allocation, unlike a context's new mapping.
  void set_route(const py::handle& value) const {
    if (per_task_) {
      task_route_.set(value);
      return;
    }
    const py::object dict = thread_dict();
    if (PyDict_SetItem(dict.ptr(), route_name(), value.ptr()) != 0) throw py::error_already_set();
  }

  // The calling thread's dict of route_local_ (its __dict__, made at the thread's first use).
  // threading.local, not an item of the thread state's own dict: the local removes each thread's
  // dict when the thread ends and every thread's when it goes itself (with this path), where an
  // item of the thread state's dict would outlive the path for as long as the thread runs.
  py::object thread_dict() const {
    PyObject* dict = PyObject_GetAttr(route_local_.ptr(), dict_name());
    if (dict == nullptr) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(dict);
  }

  static PyObject* dict_name() {
    static PyObject* s = interned("__dict__");
    return s;
  }

  static PyObject* route_name() {
    static PyObject* s = interned("last_route");
    return s;
  }

  // Records `d` (a replica's: take() records no other) as the caller's latest read. A read routed
  // as the caller's previous one was (the same replica, nothing required) keeps the Decision held;
  // else the one last made for that replica is shared when it is the same (Decisions are
  // immutable), so the fast path's common cases make no object.
  void remember(const Decision& d) {
    if (same(route_held(), d)) return;
    py::object& made = made_[static_cast<std::size_t>(d.node)];
    if (!same(made, d)) made = py::cast(named(*router_->topology(), d));
    set_route(made);
  }

  // `held` is a Decision equal to `d`.
  static bool same(const py::object& held, const Decision& d) {
    if (!held || Py_TYPE(held.ptr()) != decision_type()) return false;
    const Decision& was = held.cast<const NamedDecision&>().decision;
    return was.node == d.node && was.reason == d.reason && was.epoch == d.epoch && was.required_lsn == d.required_lsn;
  }

  static PyTypeObject* decision_type() {
    static PyTypeObject* t = [] {
      const auto* info = py::detail::get_type_info(typeid(NamedDecision));
      return info != nullptr ? info->type : nullptr;  // null: never matched, always set anew
    }();
    return t;
  }

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

  // conn.pgconn.transaction_status (ArgumentTypeError "conn" for anything else than a connection).
  static long transaction_status(const py::handle& conn) {
    py::object pgconn = py::reinterpret_steal<py::object>(PyObject_GetAttr(conn.ptr(), pgconn_name()));
    py::object status;
    if (pgconn) status = py::reinterpret_steal<py::object>(PyObject_GetAttr(pgconn.ptr(), status_name()));
    const long st = status ? PyLong_AsLong(status.ptr()) : -1;
    if (st == -1 && PyErr_Occurred()) {
      PyErr_Clear();
      wrong_type("conn", "a psycopg connection", conn);
    }
    return st;
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
  // Where each caller's latest read's Decision is kept: per asyncio task (task_route_: a pair in
  // the value of one context variable shared by every path, dropped by the context's next write
  // once this path is gone) for an async router's path, else per thread (a threading.local: what a
  // thread held goes when the thread ends or the path does).
  bool per_task_ = false;
  py::object route_local_;
  TaskRoute task_route_;
  std::vector<py::object> made_;  // per node: the latest Decision object made for a read there
  py::object router_ref_, slow_lease_, finish_, give_back_, level_of_, wait_ms_of_;
  py::object default_level_, observing_a_, observing_b_, level_type_;
};


/// The router's read() as a builtin over `path` (a ReadPath): a lease whose common case runs no
/// Python frame; `hooks` gives the Python general path; `is_async`: `async with` leases.
py::object make_fast_read(const py::object& path, const py::handle& router, const py::handle& hooks,
                          const py::handle& is_async);
/// Creates the lease types (once, when the module loads).
void make_lease_types();

}  // namespace replikit::bindings
