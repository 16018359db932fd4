#pragma once
// Every argument conversion of the bindings, in one place. Each names the argument in its error:
// a wrong type raises ArgumentTypeError (Python: replikit.ArgumentTypeError, a TypeError), a wrong
// value InvalidArgument (a ValueError).
//
// Renamed keywords: a binding that renamed a keyword keeps the old name working for one release
// by taking `py::kwargs` after its named parameters (whose defaults are None) and calling
//   py::dict old = deprecated_keywords(kwargs, {{"lag_ms_max", "max_lag_ms"}, ...});
//   max_lag_ms = renamed(max_lag_ms, old, "max_lag_ms");
// deprecated_keywords() warns (DeprecationWarning naming the new keyword) for each old name used
// and refuses unknown keywords; renamed() picks the value given under either name and refuses
// both at once.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string_view>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <limits>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "replikit/errors.hpp"
#include "replikit/lag.hpp"
#include "replikit/lsn.hpp"
#include "replikit/multileader.hpp"
#include "replikit/quorum.hpp"
#include "replikit/quorum_store.hpp"
#include "replikit/router.hpp"
#include "replikit/session.hpp"
#include "replikit/topology.hpp"

namespace replikit::bindings {
namespace py = pybind11;

/// The Python type name of `value`, for messages.
inline std::string type_name(const py::handle& value) {
  return std::string(py::str(py::type::handle_of(value).attr("__name__")));
}

/// Throws ArgumentTypeError: `argument` expected `what`, got the type of `value`.
[[noreturn]] inline void wrong_type(const char* argument, const std::string& what, const py::handle& value) {
  throw ArgumentTypeError(argument, "expected " + what + ", got " + type_name(value));
}

/// A str argument as UTF-8. A str that cannot be encoded (a lone surrogate such as "\ud800") is
/// a wrong value; anything but a str is a wrong type.
inline std::string to_str(const py::handle& value, const char* argument) {
  if (!py::isinstance<py::str>(value)) wrong_type(argument, "a str", value);
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(value.ptr(), &size);
  if (data == nullptr) {
    PyErr_Clear();
    throw InvalidArgument(argument, "is not valid text (it holds a lone surrogate and cannot be encoded as UTF-8)");
  }
  return std::string(data, static_cast<std::size_t>(size));
}

/// After a failed __index__: a TypeError (a numpy array that is not a 0-d integer array, an
/// __index__ returning a non-int) is a wrong type naming `argument`; anything else the object's
/// own __index__ raised propagates unchanged.
[[noreturn]] inline void index_failed(const py::handle& value, const char* argument) {
  if (!PyErr_ExceptionMatches(PyExc_TypeError)) throw py::error_already_set();
  PyErr_Clear();
  wrong_type(argument, "an int", value);
}

/// An integer argument (int or anything with __index__, e.g. numpy integers; not bool or float)
/// in [lo, hi]. Replaces pybind11's int caster so that negative, huge or non-integer values
/// raise errors naming the argument instead of a TypeError listing overloads.
inline std::int64_t to_int64(const py::handle& value, const char* argument,
                             std::int64_t lo = std::numeric_limits<std::int64_t>::min(),
                             std::int64_t hi = std::numeric_limits<std::int64_t>::max()) {
  if (py::isinstance<py::bool_>(value) || !PyIndex_Check(value.ptr())) wrong_type(argument, "an int", value);
  py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(value.ptr()));
  if (!index) index_failed(value, argument);
  int overflow = 0;
  long long v = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  if (overflow != 0 || v < lo || v > hi) {
    throw InvalidArgument(argument, "must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                        "], got " + std::string(py::str(index)));
  }
  return static_cast<std::int64_t>(v);
}

/// An int argument in [lo, hi] (defaults: the range of int).
inline int to_int(const py::handle& value, const char* argument, int lo = std::numeric_limits<int>::min(),
                  int hi = std::numeric_limits<int>::max()) {
  return static_cast<int>(to_int64(value, argument, lo, hi));
}

/// An unsigned 64-bit integer argument (int or __index__; not bool or float) in [0, 2**64).
inline std::uint64_t to_uint64(const py::handle& value, const char* argument) {
  if (py::isinstance<py::bool_>(value) || !PyIndex_Check(value.ptr())) wrong_type(argument, "an int", value);
  py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(value.ptr()));
  if (!index) index_failed(value, argument);
  py::int_ i = py::reinterpret_steal<py::int_>(index.release());
  // CPython raises OverflowError for a negative or too large value: report it as bad input.
  unsigned long long v = PyLong_AsUnsignedLongLong(i.ptr());
  if (v == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
    PyErr_Clear();
    throw InvalidArgument(argument, "must be an integer in [0, 2**64), got " + std::string(py::str(i)));
  }
  return static_cast<std::uint64_t>(v);
}

/// A finite double, optionally required to be >= 0.
inline double finite(double v, const char* argument, bool non_negative = true) {
  if (!std::isfinite(v)) throw InvalidArgument(argument, "must be a finite number");
  if (non_negative && v < 0) throw InvalidArgument(argument, "must not be negative");
  return v;
}

/// A real-number argument: a float, an int or anything with __float__ that is not a str, bytes
/// or bool (numpy scalars pass). NaN and infinities pass through: check them with finite(), or
/// let the core reject them with the argument's name.
inline double to_double(const py::handle& value, const char* argument) {
  if (py::isinstance<py::bool_>(value) || py::isinstance<py::str>(value) || py::isinstance<py::bytes>(value) ||
      !PyNumber_Check(value.ptr())) {
    wrong_type(argument, "a number", value);
  }
  double v = PyFloat_AsDouble(value.ptr());
  if (v == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    // An int too large for a double, or an array of several values: a wrong value.
    throw InvalidArgument(argument, "must be a single number that fits in a double");
  }
  return v;
}

/// A duration or other non-negative finite quantity in milliseconds (or any unit).
inline double to_ms(const py::handle& value, const char* argument) {
  return finite(to_double(value, argument), argument);
}

/// A catch-up wait: a number of milliseconds (a fixed wait) or "auto" (CatchUpWait::automatic()).
inline CatchUpWait to_catch_up_wait(const py::handle& value, const char* argument) {
  if (py::isinstance<py::str>(value)) {
    if (to_str(value, argument) != "auto") {
      throw InvalidArgument(argument, "must be a number of milliseconds or 'auto'");
    }
    return CatchUpWait::automatic();
  }
  CatchUpWait w;
  w.max_wait_ms = to_ms(value, argument);
  check_catch_up(w, argument);
  return w;
}

/// The Python form of a catch-up wait: its milliseconds (fixed) or "auto".
inline py::object catch_up_wait_object(const CatchUpWait& w) {
  if (w.mode == CatchUpMode::Auto) return py::str("auto");
  return py::float_(w.max_wait_ms);
}

/// A 1-D sequence or array of numbers as a vector of doubles (values unchecked).
inline std::vector<double> to_doubles(const py::handle& value, const char* argument) {
  if (py::isinstance<py::str>(value) || py::isinstance<py::bytes>(value)) {
    wrong_type(argument, "a sequence of numbers", value);
  }
  py::array_t<double> arr;
  try {
    arr = py::array_t<double>::ensure(value);
  } catch (const py::error_already_set&) {
    arr = py::array_t<double>();
  }
  if (!arr || (py::isinstance<py::array>(value) &&
               py::array(py::reinterpret_borrow<py::object>(value)).dtype().kind() == 'O')) {
    wrong_type(argument, "a sequence of numbers", value);
  }
  if (arr.ndim() != 1) throw InvalidArgument(argument, "expected a 1-D sequence of numbers");
  const auto view = arr.unchecked<1>();
  std::vector<double> out(static_cast<std::size_t>(view.shape(0)));
  for (py::ssize_t i = 0; i < view.shape(0); ++i) out[static_cast<std::size_t>(i)] = view(i);
  return out;
}

/// The items of a sequence argument (not a str) as a list. An object that cannot be iterated
/// (a 0-d numpy array, ...) is a wrong type naming `argument`; an error the object's own
/// __iter__ raises propagates.
inline py::list to_items(const py::handle& value, const char* argument, const std::string& what) {
  if (!py::isinstance<py::sequence>(value) || py::isinstance<py::str>(value)) wrong_type(argument, what, value);
  py::object items = py::reinterpret_steal<py::object>(PySequence_List(value.ptr()));
  if (!items) {
    if (!PyErr_ExceptionMatches(PyExc_TypeError)) throw py::error_already_set();
    PyErr_Clear();
    wrong_type(argument, what, value);
  }
  return py::reinterpret_borrow<py::list>(items);
}

/// A bool argument: True or False only (not 0/1, which would hide a misplaced argument).
inline bool to_bool(const py::handle& value, const char* argument) {
  if (!py::isinstance<py::bool_>(value)) wrong_type(argument, "a bool", value);
  return value.cast<bool>();
}

/// An Lsn from an Lsn, a str in PostgreSQL's text form, or a non-negative int < 2**64.
inline Lsn to_lsn(const py::handle& value, const char* argument) {
  if (py::isinstance<Lsn>(value)) return value.cast<Lsn>();
  if (py::isinstance<py::str>(value)) return Lsn::parse(to_str(value, argument), argument);
  if (PyIndex_Check(value.ptr()) && !py::isinstance<py::bool_>(value)) return Lsn(to_uint64(value, argument));
  wrong_type(argument, "an LSN (str like '16/B374D848', int or replikit.Lsn)", value);
}

/// Warns (DeprecationWarning, pointing at the caller) that keyword `old_name` is deprecated in
/// favour of `new_name`; an error raised by a warnings filter propagates.
inline void warn_deprecated_keyword(const char* old_name, const char* new_name) {
  const std::string message = std::string("keyword '") + old_name + "' is deprecated, use '" + new_name + "'";
  if (PyErr_WarnEx(PyExc_DeprecationWarning, message.c_str(), 1) < 0) throw py::error_already_set();
}

/// The one __repr__ style of every class: `Name(field=value, ...)`, each value as its Python
/// repr(), so strings are quoted and enums show as members. Secrets never go in `fields`.
inline std::string repr_of(const char* name, std::initializer_list<std::pair<const char*, py::object>> fields) {
  std::string out = std::string(name) + "(";
  bool first = true;
  for (const auto& [key, value] : fields) {
    out += (first ? "" : ", ") + std::string(key) + "=" + std::string(py::repr(value));
    first = false;
  }
  return out + ")";
}

/// The members of the bound Python enum of E with their values, built at the first call and kept
/// for the life of the process (a member outlives every call). Guarded by the GIL rather than a
/// static initializer: building runs Python code, which may switch threads.
template <typename E>
const std::vector<std::pair<PyObject*, E>>& enum_members() {
  static std::vector<std::pair<PyObject*, E>>* members = nullptr;
  if (members == nullptr) {
    auto built = std::make_unique<std::vector<std::pair<PyObject*, E>>>();
    const py::object all = py::type::handle_of(py::cast(E{})).attr("__members__");
    for (const auto& item : all.attr("values")()) built->emplace_back(item.inc_ref().ptr(), item.cast<E>());
    if (members == nullptr) members = built.release();  // else another thread built it meanwhile
  }
  return *members;
}

/// The one enum converter: a member of the Python enum, or its name as a str (case-insensitive,
/// "read_your_writes" or "READ_YOUR_WRITES"). An unknown name lists the valid ones. The names
/// come from the bound Python enum itself (every bound enum has a member 0, E{}), so a new
/// member needs no edit here.
template <typename E>
E to_enum(const py::handle& value, const char* argument) {
  // A member by identity first: the per-call path of routing, without the enum's Python-level `value`.
  for (const auto& [member, e] : enum_members<E>()) {
    if (member == value.ptr()) return e;
  }
  if (py::isinstance<py::str>(value)) {
    const std::string name = to_str(value, argument);
    const auto lower = [](std::string text) {
      std::transform(text.begin(), text.end(), text.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      return text;
    };
    const std::string folded = lower(name);
    const py::object members = py::type::handle_of(py::cast(E{})).attr("__members__");
    std::string known;
    for (const auto& item : members.attr("items")()) {
      const auto pair = py::reinterpret_borrow<py::tuple>(item);
      const std::string label = lower(py::str(pair[0]));
      if (folded == label) return pair[1].cast<E>();
      known += (known.empty() ? "'" : ", '") + label + "'";
    }
    throw InvalidArgument(argument, "unknown value '" + name + "' (expected one of " + known + ")");
  }
  try {
    return value.cast<E>();
  } catch (const py::cast_error&) {
    wrong_type(argument, "a replikit enum member or its name as a str", value);
  }
}

// ---- routing arguments ----

/// CLOCK_MONOTONIC in ns, the clock of time.monotonic_ns() (lag samples: never jumps).
inline std::int64_t monotonic_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// The wall clock in ns, the clock of time.time_ns() (session times: tokens carry them to other hosts).
inline std::int64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// now_ns as given (an int >= 0), or the monotonic clock when None (lag samples).
inline std::int64_t now_or_clock(const py::object& now_ns) {
  return now_ns.is_none() ? monotonic_ns() : to_int64(now_ns, "now_ns", 0);
}

/// now_ns as given (an int >= 0), or the wall clock when None (session times).
inline std::int64_t now_or_wall(const py::object& now_ns) {
  return now_ns.is_none() ? wall_ns() : to_int64(now_ns, "now_ns", 0);
}

/// A node declaration: a replikit.Node, or just its name.
inline NodeSpec to_spec(const py::handle& value, const char* argument) {
  if (py::isinstance<NodeSpec>(value)) return value.cast<NodeSpec>();
  if (py::isinstance<py::str>(value)) {
    NodeSpec s;
    s.name = to_str(value, argument);
    return s;
  }
  wrong_type(argument, "a replikit.Node or a node name (str)", value);
}

/// A Topology argument (shared, as the router and the tracker keep it).
inline std::shared_ptr<Topology> to_topology(const py::handle& value, const char* argument) {
  if (!py::isinstance<Topology>(value)) wrong_type(argument, "a replikit.Topology", value);
  return value.cast<std::shared_ptr<Topology>>();
}

/// A node of `t` given as a name (str) or an index (any integer, numpy ones included).
inline int to_node(const Topology& t, const py::handle& value, const char* argument) {
  if (py::isinstance<py::str>(value)) return t.index_of(to_str(value, argument), argument);
  if (py::isinstance<py::bool_>(value) || !PyIndex_Check(value.ptr())) {
    wrong_type(argument, "a node name (str) or index (int)", value);
  }
  const std::int64_t i = to_int64(value, argument);
  if (i < 0 || i >= t.size()) throw InvalidArgument(argument, "node index " + std::to_string(i) + " is out of range");
  return static_cast<int>(i);
}

/// A freshness instant (Topology::fresh_as_of_ns), or None when not known (kFreshUnknown).
inline py::object fresh_or_none(std::int64_t fresh_as_of_ns) {
  if (fresh_as_of_ns == kFreshUnknown) return py::none();
  return py::int_(fresh_as_of_ns);
}

/// A node's name as Python sees it: a str, or None for kNoNode.
inline py::object node_name(const Topology& t, int node) {
  if (node == kNoNode) return py::none();
  return py::str(t.name(node));
}

/// A signer written in Python: any callable(bytes) -> bytes of at least 16 bytes.
class CallableSigner final : public TokenSigner {
 public:
  explicit CallableSigner(py::function f) : f_(std::move(f)) {}
  std::string mac(std::string_view payload) const override {
    py::gil_scoped_acquire gil;
    py::object out = f_(py::bytes(payload.data(), payload.size()));
    if (!py::isinstance<py::bytes>(out)) wrong_type("signer", "a signer returning bytes", out);
    std::string mac = out.cast<std::string>();
    // Checked here so the error names the signer (the core would raise a bare Error).
    if (mac.size() < 16) throw InvalidArgument("signer", "signer must return at least 16 bytes");
    return mac;
  }

 private:
  py::function f_;
};

/// A token signer: a replikit.HmacSigner, a callable(bytes) -> bytes, or None (unsigned).
inline std::shared_ptr<TokenSigner> to_signer(const py::object& signer) {
  if (signer.is_none()) return nullptr;
  if (py::isinstance<TokenSigner>(signer)) return signer.cast<std::shared_ptr<TokenSigner>>();
  if (py::isinstance<py::function>(signer)) return std::make_shared<CallableSigner>(signer.cast<py::function>());
  wrong_type("signer", "a replikit.HmacSigner, a callable(bytes) -> bytes, or None", signer);
}

/// A Session, or a token (str) decoded with `signer`.
inline Session to_session(const py::handle& value, const py::object& signer, const char* argument) {
  if (py::isinstance<Session>(value)) return value.cast<Session>();
  if (py::isinstance<py::str>(value)) {
    auto s = to_signer(signer);
    return decode_token(to_str(value, argument), s.get(), argument);
  }
  wrong_type(argument, "a replikit.Session or a token (str)", value);
}

// ---- renamed keywords (see the top of this file) ----

/// A keyword renamed in the public API: `old_name` keeps working for one release.
struct KeywordRename {
  const char* old_name;
  const char* new_name;
};

/// The LagConfig keywords renamed to the max_/recover_ pattern (LagTracker, ReplicatedDatabase).
inline constexpr KeywordRename kLagKeywordRenames[] = {{"lag_ms_max", "max_lag_ms"},
                                                      {"recover_ms", "recover_lag_ms"},
                                                      {"lag_bytes_max", "max_lag_bytes"},
                                                      {"recover_bytes", "recover_lag_bytes"}};

/// The values given under deprecated names in `kwargs`, keyed by their new names. Warns a
/// DeprecationWarning naming the new keyword for each; an unknown keyword is an
/// ArgumentTypeError (as Python's own "unexpected keyword argument").
template <typename Renames>
py::dict deprecated_keywords(const py::kwargs& kwargs, const Renames& renames) {
  py::dict out;
  for (const auto& [key, value] : kwargs) {
    const std::string name = py::str(key);
    const KeywordRename* found = nullptr;
    for (const auto& r : renames) {
      if (name == r.old_name) found = &r;
    }
    if (found == nullptr) throw ArgumentTypeError(name, "unexpected keyword argument");
    warn_deprecated_keyword(found->old_name, found->new_name);
    out[found->new_name] = value;
  }
  return out;
}

/// The value of keyword `name`: as given (not None), or under its deprecated name in `old`
/// (from deprecated_keywords), or None. Both at once is an ArgumentTypeError.
inline py::object renamed(const py::object& value, const py::dict& old, const char* name) {
  if (!old.contains(name)) return value;
  if (!value.is_none()) throw ArgumentTypeError(name, "given twice (under its new and its deprecated name)");
  return old[name];
}

}  // namespace replikit::bindings
