// Python bindings of the routing core: Topology, LagTracker, Session and tokens, Router.
#include <pybind11/native_enum.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <limits>
#include <memory>
#include <optional>
#include <string_view>

#include "bindings.hpp"
#include "convert.hpp"
#include "replikit/lag.hpp"
#include "replikit/router.hpp"
#include "replikit/session.hpp"
#include "replikit/topology.hpp"
#ifdef REPLIKIT_HAVE_OPENSSL
#include "hmac_signer.hpp"
#endif

namespace replikit::bindings {

namespace {

// The bindings supply the real clocks. Lag samples: CLOCK_MONOTONIC, the clock of
// time.monotonic_ns() (never jumps). Session times (record_write, route_read's time-window rule):
// the wall clock, the clock of time.time_ns(), because tokens carry them to other hosts.
std::int64_t monotonic_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
std::int64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// now_ns as given (an int >= 0), or the monotonic clock when None (lag samples).
std::int64_t now_or_clock(const py::object& now_ns) {
  if (now_ns.is_none()) return monotonic_ns();
  return to_int64(now_ns, "now_ns", 0);
}
// now_ns as given (an int >= 0), or the wall clock when None (session times).
std::int64_t now_or_wall(const py::object& now_ns) {
  if (now_ns.is_none()) return wall_ns();
  return to_int64(now_ns, "now_ns", 0);
}

NodeSpec to_spec(const py::handle& value, const char* argument) {
  if (py::isinstance<NodeSpec>(value)) return value.cast<NodeSpec>();
  if (py::isinstance<py::str>(value)) {
    NodeSpec s;
    s.name = value.cast<std::string>();
    return s;
  }
  throw InvalidArgument(argument, "expected a replikit.Node or a node name (str)");
}

// A node given as a name (str) or an index (int).
int to_node(const Topology& t, const py::handle& value, const char* argument) {
  if (py::isinstance<py::str>(value)) return t.index_of(value.cast<std::string>(), argument);
  // Any integer, including the numpy ints that route_reads returns.
  if (!py::isinstance<py::bool_>(value) && PyIndex_Check(value.ptr())) {
    std::int64_t i = to_int64(value, argument);
    if (i < 0 || i >= t.size()) {
      throw InvalidArgument(argument, "node index " + std::to_string(i) + " is out of range");
    }
    return static_cast<int>(i);
  }
  throw InvalidArgument(argument, "expected a node name (str) or index (int)");
}

// A Decision with the node's name resolved, for Python.
struct PyDecision {
  Decision decision;
  std::string node_name;
};

PyDecision with_name(const Topology& t, const Decision& d) {
  return {d, d.node == kNoNode ? std::string() : t.name(d.node)};
}

// Python-side signers: HMAC-SHA256 (OpenSSL) or any callable returning bytes.
class CallableSigner final : public TokenSigner {
 public:
  explicit CallableSigner(py::function f) : f_(std::move(f)) {}
  std::string mac(std::string_view payload) const override {
    py::gil_scoped_acquire gil;
    py::object out = f_(py::bytes(payload.data(), payload.size()));
    if (!py::isinstance<py::bytes>(out)) throw InvalidArgument("signer", "signer must return bytes");
    std::string mac = out.cast<std::string>();
    // Checked here so the error names the signer (the core would raise a bare Error).
    if (mac.size() < 16) throw InvalidArgument("signer", "signer must return at least 16 bytes");
    return mac;
  }

 private:
  py::function f_;
};

std::shared_ptr<TokenSigner> to_signer(const py::object& signer) {
  if (signer.is_none()) return nullptr;
  if (py::isinstance<TokenSigner>(signer)) return signer.cast<std::shared_ptr<TokenSigner>>();
  if (py::isinstance<py::function>(signer)) return std::make_shared<CallableSigner>(signer.cast<py::function>());
  throw InvalidArgument("signer", "expected a replikit.HmacSigner, a callable(bytes) -> bytes, or None");
}

Session session_from(const py::handle& value, const py::object& signer, const char* argument) {
  if (py::isinstance<Session>(value)) return value.cast<Session>();
  if (py::isinstance<py::str>(value)) {
    auto s = to_signer(signer);
    return decode_token(value.cast<std::string>(), s.get(), argument);
  }
  throw InvalidArgument(argument, "expected a replikit.Session or a token (str)");
}

using U64Array = py::array_t<std::uint64_t, py::array::c_style | py::array::forcecast>;

// A 1-D array of LSNs from a numpy array or sequence: unsigned or non-negative signed integers,
// or (object / str arrays) anything to_lsn accepts. Floats, bools and negative values are refused
// rather than silently cast (NaN or -1 would otherwise become arbitrary LSNs).
U64Array to_lsn_array(const py::handle& value, const char* argument) {
  py::array a;
  try {
    a = py::module_::import("numpy").attr("asarray")(value);
  } catch (const py::error_already_set&) {
    throw InvalidArgument(argument, "expected a 1-D array of LSNs");
  }
  if (a.ndim() != 1) throw InvalidArgument(argument, "must be a 1-D array");
  if (a.size() == 0) return U64Array(0);
  char kind = a.dtype().kind();
  if (kind == 'u') return a.cast<U64Array>();
  if (kind == 'i') {
    if (py::cast<bool>(a.attr("__lt__")(0).attr("any")())) {
      throw InvalidArgument(argument, "LSNs must not be negative");
    }
    return a.cast<U64Array>();
  }
  if (kind == 'O' || kind == 'U') {
    U64Array out(a.size());
    std::uint64_t* data = out.mutable_data();
    py::ssize_t k = 0;
    for (auto item : a.attr("tolist")()) data[k++] = to_lsn(item, argument).value;
    return out;
  }
  throw InvalidArgument(argument, "expected integer LSNs, got an array of dtype " +
                                      std::string(py::str(a.dtype())));
}

py::dict counters_dict(const Router& r) {
  RouterCounters c = r.counters();
  const Topology& t = *r.topology();
  py::dict by_node, by_reason;
  for (std::size_t i = 0; i < c.by_node.size(); ++i) {
    if (c.by_node[i] != 0) by_node[py::str(t.name(static_cast<int>(i)))] = c.by_node[i];
  }
  for (int k = 0; k < kReasonCount; ++k) {
    if (c.by_reason[k] != 0) by_reason[py::str(to_string(static_cast<Reason>(k)))] = c.by_reason[k];
  }
  py::dict out;
  out["by_node"] = by_node;
  out["by_reason"] = by_reason;
  out["total"] = c.total;
  return out;
}

// `with router.in_flight(node):` for least-outstanding accounting.
struct InFlightGuard {
  std::shared_ptr<Router> router;
  int node;
  bool entered;
};

}  // namespace

void bind_routing(py::module_& m) {
  py::native_enum<Role>(m, "Role", "enum.Enum", "What a node is now.")
      .value("PRIMARY", Role::Primary)
      .value("REPLICA", Role::Replica)
      .value("REMOVED", Role::Removed)
      .finalize();
  py::native_enum<LagState>(m, "LagState", "enum.Enum", "A replica's lag state (with hysteresis).")
      .value("OK", LagState::Ok)
      .value("LAGGING", LagState::Lagging)
      .finalize();
  py::native_enum<LagEventKind>(m, "LagEventKind", "enum.Enum", "What a lag transition event says.")
      .value("BECAME_LAGGING", LagEventKind::BecameLagging)
      .value("RECOVERED", LagEventKind::Recovered)
      .finalize();
  py::native_enum<Policy>(m, "Policy", "enum.Enum", "How reads are spread over qualifying replicas.")
      .value("ROUND_ROBIN", Policy::RoundRobin, "In turn.")
      .value("WEIGHTED", Policy::Weighted, "Smooth weighted round-robin by Node.weight.")
      .value("LEAST_LAG", Policy::LeastLag, "The replica with the smallest time lag.")
      .value("LEAST_OUTSTANDING", Policy::LeastOutstanding, "Power of two choices over in-flight counts.")
      .value("NEAREST_REGION", Policy::NearestRegion, "Round-robin within the client's region, else anywhere.")
      .finalize();
  py::native_enum<Consistency>(m, "Consistency", "enum.Enum", "What a read must see.")
      .value("EVENTUAL", Consistency::Eventual, "Any healthy replica.")
      .value("READ_YOUR_WRITES", Consistency::ReadYourWrites, "A replica that replayed the session's writes.")
      .value("MONOTONIC", Consistency::Monotonic, "A replica at least as new as what the session read.")
      .value("CAUSAL", Consistency::Causal, "Both, including merged tokens.")
      .value("BOUNDED_STALENESS", Consistency::BoundedStaleness, "Time lag at most max_staleness_ms.")
      .value("STRONG", Consistency::Strong, "The primary.")
      .finalize();
  py::native_enum<Reason>(m, "Reason", "enum.Enum", "Why a request went where it went.")
      .value("WRITE", Reason::Write)
      .value("REPLICA_AVAILABLE", Reason::ReplicaAvailable)
      .value("REPLICA_CAUGHT_UP", Reason::ReplicaCaughtUp)
      .value("REPLICA_FRESH", Reason::ReplicaFresh)
      .value("STRONG_READ", Reason::StrongRead)
      .value("RECENT_WRITE", Reason::RecentWrite)
      .value("ALL_REPLICAS_LAGGING", Reason::AllReplicasLagging)
      .value("NO_REPLICA_CAUGHT_UP", Reason::NoReplicaCaughtUp)
      .value("NO_REPLICA_FRESH", Reason::NoReplicaFresh)
      .value("NO_REPLICA_UP", Reason::NoReplicaUp)
      .value("PRIMARY_DOWN", Reason::PrimaryDown)
      .finalize();
  m.attr("NO_NODE") = kNoNode;
  m.attr("MAX_NODES") = kMaxNodes;

  // ---- nodes and topology ----
  py::class_<NodeSpec>(m, "Node", "How to declare a node: name, region, weight, priority, up.")
      .def(py::init([](std::string name, std::string region, double weight, const py::object& priority, bool up) {
             NodeSpec s{std::move(name), std::move(region), weight,
                        static_cast<int>(to_int64(priority, "priority", std::numeric_limits<int>::min(),
                                                  std::numeric_limits<int>::max())),
                        up};
             return s;
           }),
           py::arg("name"), py::arg("region") = "", py::arg("weight") = 1.0, py::arg("priority") = 0,
           py::arg("up") = true)
      .def_readwrite("name", &NodeSpec::name)
      .def_readwrite("region", &NodeSpec::region)
      .def_readwrite("weight", &NodeSpec::weight)
      .def_readwrite("priority", &NodeSpec::priority)
      .def_readwrite("up", &NodeSpec::up)
      .def("__repr__", [](const NodeSpec& s) {
        return "Node(name='" + s.name + "', region='" + s.region + "', weight=" + std::to_string(s.weight) +
               ", priority=" + std::to_string(s.priority) + ", up=" + (s.up ? "True" : "False") + ")";
      });

  py::class_<NodeInfo>(m, "NodeInfo", "A copy of one node's state.")
      .def_readonly("index", &NodeInfo::index)
      .def_readonly("name", &NodeInfo::name)
      .def_readonly("region", &NodeInfo::region)
      .def_readonly("role", &NodeInfo::role)
      .def_readonly("up", &NodeInfo::up)
      .def_readonly("weight", &NodeInfo::weight)
      .def_readonly("priority", &NodeInfo::priority)
      .def_readonly("receive_lsn", &NodeInfo::receive_lsn)
      .def_readonly("replay_lsn", &NodeInfo::replay_lsn)
      .def_readonly("lag_bytes", &NodeInfo::lag_bytes)
      .def_property_readonly("lag_ms", [](const NodeInfo& i) { return static_cast<double>(i.lag_ns) / 1e6; })
      .def_readonly("lag_known", &NodeInfo::lag_known)
      .def_readonly("lag_state", &NodeInfo::lag_state)
      .def_readonly("outstanding", &NodeInfo::outstanding)
      .def("__repr__", [](const NodeInfo& i) {
        return "NodeInfo(name='" + i.name + "', role=" + to_string(i.role) + ", up=" + (i.up ? "True" : "False") +
               ", replay_lsn=" + i.replay_lsn.to_string() + ", lag_ms=" +
               std::to_string(static_cast<double>(i.lag_ns) / 1e6) + ", lag_state=" + to_string(i.lag_state) + ")";
      });

  py::class_<Topology, std::shared_ptr<Topology>>(
      m, "Topology",
      "One primary and its replicas. Updates are safe while other threads route; routing takes no lock.")
      .def(py::init([](const py::object& primary, const py::iterable& replicas) {
             // A str is iterable too: Topology("p", "r1") would declare replicas "r" and "1".
             if (py::isinstance<py::str>(replicas) || py::isinstance<py::bytes>(replicas)) {
               throw InvalidArgument("replicas", "expected a list of replicas (Node or name), got a single str");
             }
             std::vector<NodeSpec> specs;
             for (auto r : replicas) specs.push_back(to_spec(r, "replicas"));
             return std::make_shared<Topology>(to_spec(primary, "primary"), std::move(specs));
           }),
           py::arg("primary"), py::arg("replicas") = py::list(),
           "A topology from a primary and replicas, each a Node or a name.")
      .def("add_replica",
           [](Topology& t, const py::object& node) {
             try {
               return t.add_replica(to_spec(node, "node"));
             } catch (const InvalidArgument& e) {
               // The core names its parameter "spec"; Python calls it "node".
               if (e.argument() != "spec") throw;
               std::string message = e.what();
               throw InvalidArgument("node", message.substr(message.find(": ") + 2));
             }
           },
           py::arg("node"), "Adds a replica (Node or name); returns its index.")
      .def("remove_replica", &Topology::remove_replica, py::arg("name"), "Removes a replica for good.")
      .def("set_up", &Topology::set_up, py::arg("name"), py::arg("up"), "Marks a node up or down.")
      .def("set_weight", &Topology::set_weight, py::arg("name"), py::arg("weight"),
           "Sets a replica's routing weight (>= 0).")
      .def("set_priority",
           [](Topology& t, std::string_view name, const py::object& priority) {
             t.set_priority(name, static_cast<int>(to_int64(priority, "priority", std::numeric_limits<int>::min(),
                                                            std::numeric_limits<int>::max())));
           },
           py::arg("name"), py::arg("priority"),
           "Sets a node's failover priority.")
      .def("promote", &Topology::promote, py::arg("name"),
           "Makes a replica the primary (the old primary becomes a replica marked down); returns the new epoch.")
      .def("index_of", [](const Topology& t, const std::string& name) { return t.index_of(name, "name"); },
           py::arg("name"), "The index of a node; NotFound if unknown.")
      .def("name", [](const Topology& t, const py::object& index) { return t.name(static_cast<int>(to_int64(index, "index", std::numeric_limits<int>::min(), std::numeric_limits<int>::max()))); },
           py::arg("index"), "The name of node `index`.")
      .def("region_id", &Topology::region_id, py::arg("region"), "The id of a region, or -1.")
      .def_property_readonly("primary", &Topology::primary, "The primary's index.")
      .def_property_readonly("primary_name", [](const Topology& t) { return t.name(t.primary()); },
                             "The primary's name.")
      .def_property_readonly("epoch", &Topology::epoch, "Changes whenever the primary changes.")
      .def("replicas", &Topology::replicas, "Indexes of the current replicas.")
      .def("replica_names", [](const Topology& t) {
             std::vector<std::string> out;
             for (int i : t.replicas()) out.push_back(t.name(i));
             return out;
           }, "Names of the current replicas.")
      .def("info", [](const Topology& t, const py::object& node) { return t.info(to_node(t, node, "node")); },
           py::arg("node"), "A copy of one node's state (by name or index).")
      .def("nodes", &Topology::nodes, "Copies of every node's state.")
      .def("__len__", &Topology::size);

  // ---- lag ----
  py::class_<ReplicaLag>(m, "ReplicaLag", "A replica's lag as last computed.")
      .def_readonly("node", &ReplicaLag::node)
      .def_readonly("known", &ReplicaLag::known)
      .def_readonly("receive_lsn", &ReplicaLag::receive_lsn)
      .def_readonly("replay_lsn", &ReplicaLag::replay_lsn)
      .def_readonly("lag_bytes", &ReplicaLag::lag_bytes)
      .def_readonly("receive_lag_bytes", &ReplicaLag::receive_lag_bytes)
      .def_readonly("lag_ns", &ReplicaLag::lag_ns)
      .def_property_readonly("lag_ms", [](const ReplicaLag& l) { return static_cast<double>(l.lag_ns) / 1e6; })
      .def_readonly("lag_is_lower_bound", &ReplicaLag::lag_is_lower_bound)
      .def_readonly("state", &ReplicaLag::state)
      .def_readonly("sample_time_ns", &ReplicaLag::sample_time_ns)
      .def("__repr__", [](const ReplicaLag& l) {
        return "ReplicaLag(node=" + std::to_string(l.node) + ", lag_ms=" +
               std::to_string(static_cast<double>(l.lag_ns) / 1e6) + ", lag_bytes=" + std::to_string(l.lag_bytes) +
               ", state=" + to_string(l.state) + ")";
      });

  py::class_<LagEvent>(m, "LagEvent", "One OK <-> LAGGING transition.")
      .def_readonly("sequence", &LagEvent::sequence)
      .def_readonly("node", &LagEvent::node)
      .def_readonly("kind", &LagEvent::kind)
      .def_readonly("time_ns", &LagEvent::time_ns)
      .def_readonly("lag_ns", &LagEvent::lag_ns)
      .def_property_readonly("lag_ms", [](const LagEvent& e) { return static_cast<double>(e.lag_ns) / 1e6; })
      .def_readonly("lag_bytes", &LagEvent::lag_bytes)
      .def("__repr__", [](const LagEvent& e) {
        return "LagEvent(sequence=" + std::to_string(e.sequence) + ", node=" + std::to_string(e.node) +
               ", kind=" + to_string(e.kind) + ", lag_ms=" + std::to_string(static_cast<double>(e.lag_ns) / 1e6) + ")";
      });

  py::class_<LagTracker, std::shared_ptr<LagTracker>>(
      m, "LagTracker",
      "Replica lag in bytes and time from LSN samples, with a threshold and hysteresis; feeds the Topology.")
      .def(py::init([](std::shared_ptr<Topology> topology, double lag_ms_max, double recover_ms,
                       const py::object& lag_bytes_max, const py::object& recover_bytes, double stale_sample_ms,
                       const py::object& history_capacity, const py::object& event_capacity) {
             LagConfig c;
             c.max_lag_ms = lag_ms_max;
             c.recover_lag_ms = recover_ms;
             c.max_lag_bytes = to_int64(lag_bytes_max, "max_lag_bytes");
             c.recover_lag_bytes = to_int64(recover_bytes, "recover_lag_bytes");
             c.stale_sample_ms = stale_sample_ms;
             c.history_capacity = static_cast<std::size_t>(to_int64(history_capacity, "history_capacity", 0));
             c.event_capacity = static_cast<std::size_t>(to_int64(event_capacity, "event_capacity", 0));
             return std::make_shared<LagTracker>(std::move(topology), c);
           }),
           py::arg("topology"), py::arg("lag_ms_max") = 1000.0, py::arg("recover_ms") = 500.0,
           py::arg("lag_bytes_max") = 0, py::arg("recover_bytes") = 0, py::arg("stale_sample_ms") = 1000.0,
           py::arg("history_capacity") = 8192, py::arg("event_capacity") = 1024)
      .def("primary_sample",
           [](LagTracker& l, const py::object& lsn, const py::object& now_ns) {
             l.primary_sample(now_or_clock(now_ns), to_lsn(lsn, "current_lsn"));
           },
           py::arg("current_lsn"), py::arg("now_ns") = py::none(),
           "The primary was at `current_lsn` at `now_ns` (default: time.monotonic_ns()).")
      .def("replica_sample",
           [](LagTracker& l, const py::object& node, const py::object& receive_lsn, const py::object& replay_lsn,
              const py::object& now_ns) {
             int i = to_node(*l.topology(), node, "node");
             l.replica_sample(i, now_or_clock(now_ns), to_lsn(receive_lsn, "receive_lsn"),
                              to_lsn(replay_lsn, "replay_lsn"));
           },
           py::arg("node"), py::arg("receive_lsn"), py::arg("replay_lsn"), py::arg("now_ns") = py::none(),
           "A replica (name or index) had received and replayed these LSNs at `now_ns`.")
      .def("replica", [](const LagTracker& l, const py::object& node) {
             return l.replica(to_node(*l.topology(), node, "node"));
           }, py::arg("node"), "A replica's lag as last computed.")
      .def("replicas", &LagTracker::replicas, "Every replica's lag.")
      .def("events",
           [](const LagTracker& l, const py::object& after_sequence, const py::object& max_events) {
             return l.events(to_uint64(after_sequence, "after_sequence"),
                             static_cast<std::size_t>(to_int64(max_events, "max_events", 0)));
           },
           py::arg("after_sequence") = 0, py::arg("max_events") = 1024,
           "Transition events after a sequence number, oldest first.")
      .def_property_readonly("events_dropped", &LagTracker::events_dropped,
                             "Events dropped because the buffer was full.")
      .def("primary_time_past", [](const LagTracker& l, const py::object& lsn) -> std::optional<std::int64_t> {
             std::int64_t t = l.primary_time_past(to_lsn(lsn, "lsn"));
             if (t == std::numeric_limits<std::int64_t>::min()) return std::nullopt;
             return t;
           }, py::arg("lsn"), "When the primary first wrote past `lsn` (ns), or None if it has not yet.")
      .def_property_readonly("primary_lsn", &LagTracker::primary_lsn, "The primary's last sampled LSN.")
      .def_property_readonly("history_size", &LagTracker::history_size, "Entries in the LSN history.")
      .def("reset", &LagTracker::reset, "Forgets the history and all lag (after a primary change).");

  // ---- sessions and tokens ----
  py::class_<TokenSigner, std::shared_ptr<TokenSigner>>(m, "TokenSigner", "Signs session tokens.");
#ifdef REPLIKIT_HAVE_OPENSSL
  py::class_<HmacSha256Signer, TokenSigner, std::shared_ptr<HmacSha256Signer>>(
      m, "HmacSigner", "HMAC-SHA256 token signer (OpenSSL) under an application key of at least 16 bytes.")
      .def(py::init([](const py::object& key) {
             if (!py::isinstance<py::bytes>(key)) {
               throw InvalidArgument("key", "expected bytes (encode a str key first), got " + type_name(key));
             }
             return std::make_shared<HmacSha256Signer>(key.cast<std::string>());
           }),
           py::arg("key"));
#endif

  py::class_<Session>(m, "Session",
                      "What one user has written and read, as LSNs; travels as a token. Not thread-safe.")
      .def(py::init([](const py::object& write_lsn, const py::object& read_lsn) {
             Session s;
             if (!write_lsn.is_none()) s.write_lsn = to_lsn(write_lsn, "write_lsn");
             if (!read_lsn.is_none()) s.read_lsn = to_lsn(read_lsn, "read_lsn");
             return s;
           }),
           py::arg("write_lsn") = py::none(), py::arg("read_lsn") = py::none())
      .def_property_readonly("write_lsn", [](const Session& s) { return s.write_lsn; })
      .def_property_readonly("read_lsn", [](const Session& s) { return s.read_lsn; })
      .def_property_readonly("untracked_write_ns", [](const Session& s) -> std::optional<std::int64_t> {
        if (s.untracked_write_ns == kNever) return std::nullopt;
        return s.untracked_write_ns;
      }, "Time of the last write whose LSN was unknown (None: none).")
      .def("record_write",
           [](Session& s, const py::object& commit_lsn, const py::object& now_ns) {
             s.record_write(commit_lsn.is_none() ? Lsn() : to_lsn(commit_lsn, "commit_lsn"), now_or_wall(now_ns));
           },
           py::arg("commit_lsn") = py::none(), py::arg("now_ns") = py::none(),
           "Records a committed write at now_ns (wall-clock ns; default time.time_ns()); commit_lsn None "
           "means unknown (the time-window rule applies).")
      .def("observe", [](Session& s, const py::object& lsn) { s.observe(to_lsn(lsn, "lsn")); }, py::arg("lsn"),
           "Records that a read saw data up to `lsn`.")
      .def("merge",
           [](Session& s, const py::object& other, const py::object& signer) {
             s.merge(session_from(other, signer, "other"));
           },
           py::arg("other"), py::arg("signer") = py::none(),
           "Takes the maximum of each field of another Session or token (causal merge).")
      .def("causal_lsn", &Session::causal_lsn, "max(write_lsn, read_lsn).")
      .def("token",
           [](const Session& s, const py::object& signer) {
             auto sig = to_signer(signer);
             return encode_token(s, sig.get());
           },
           py::arg("signer") = py::none(), "A short printable token (signed when a signer is given).")
      .def_static("from_token",
                  [](const py::object& token, const py::object& signer) {
                    if (!py::isinstance<py::str>(token)) throw TokenError("token", "expected a str");
                    auto sig = to_signer(signer);
                    return decode_token(token.cast<std::string>(), sig.get(), "token");
                  },
                  py::arg("token"), py::arg("signer") = py::none(),
                  "The session a token carries; TokenError if malformed or tampered.")
      .def("copy", [](const Session& s) { return s; })
      .def("__copy__", [](const Session& s) { return s; })
      .def("__deepcopy__", [](const Session& s, const py::dict&) { return s; }, py::arg("memo"))
      .def("__eq__", [](const Session& a, const py::object& b) {
        return py::isinstance<Session>(b) && a == b.cast<Session>();
      })
      .def("__repr__", [](const Session& s) {
        return "Session(write_lsn='" + s.write_lsn.to_string() + "', read_lsn='" + s.read_lsn.to_string() + "')";
      });

  // ---- router ----
  py::class_<PyDecision>(m, "Decision", "Where a request goes and why.")
      .def_property_readonly("node", [](const PyDecision& d) -> std::optional<int> {
        if (d.decision.node == kNoNode) return std::nullopt;
        return d.decision.node;
      }, "The node index, or None when nothing can serve the request.")
      .def_property_readonly("node_name", [](const PyDecision& d) -> std::optional<std::string> {
        if (d.decision.node == kNoNode) return std::nullopt;
        return d.node_name;
      }, "The node's name, or None.")
      .def_property_readonly("reason", [](const PyDecision& d) { return d.decision.reason; })
      .def_property_readonly("epoch", [](const PyDecision& d) { return d.decision.epoch; })
      .def_property_readonly("required_lsn", [](const PyDecision& d) { return d.decision.required_lsn; })
      .def_property_readonly("to_primary", [](const PyDecision& d) { return d.decision.to_primary(); },
                             "True when the request goes to the primary.")
      .def("__repr__", [](const PyDecision& d) {
        return "Decision(node=" + (d.decision.node == kNoNode ? std::string("None") : "'" + d.node_name + "'") +
               ", reason=" + std::string(py::repr(py::cast(d.decision.reason))) + ")";
      });

  py::class_<InFlightGuard>(m, "InFlight", "Context manager counting one request in flight on a node.")
      .def("__enter__", [](InFlightGuard& g) {
        if (g.entered) throw InvalidArgument("in_flight", "already entered");
        g.router->begin(g.node);
        g.entered = true;
        return g.node;
      })
      .def("__exit__", [](InFlightGuard& g, const py::args&) {
        if (g.entered) g.router->end(g.node);
        g.entered = false;
        return false;
      });

  py::class_<Router, std::shared_ptr<Router>>(m, "Router",
                                              "Routes writes to the primary and reads to qualifying replicas.")
      .def(py::init([](std::shared_ptr<Topology> topology, Policy policy, double time_window_ms,
                       const py::object& seed, std::string region, const py::object& sticky_reads) {
             RouterConfig c;
             c.policy = policy;
             c.time_window_ms = time_window_ms;
             c.seed = to_uint64(seed, "seed");
             c.region = std::move(region);
             c.sticky_reads = static_cast<std::uint32_t>(to_int64(sticky_reads, "sticky_reads", 1, 1000000));
             return std::make_shared<Router>(std::move(topology), std::move(c));
           }),
           py::arg("topology"), py::arg("policy") = Policy::RoundRobin, py::arg("time_window_ms") = 2000.0,
           py::arg("seed") = 0, py::arg("region") = "", py::arg("sticky_reads") = 1,
           "A router. sticky_reads > 1 keeps a thread's consecutive reads on the replica it chose while "
           "it qualifies (warm connections), re-balancing every sticky_reads reads.")
      .def_property_readonly("topology", &Router::topology)
      .def_property_readonly("policy", [](const Router& r) { return r.config().policy; })
      .def("route_write", [](Router& r) { return with_name(*r.topology(), r.route_write()); },
           "Where a write goes: the primary, or node None with reason PRIMARY_DOWN.")
      .def("route_read",
           [](Router& r, const Session& session, Consistency consistency, const py::object& now_ns,
              std::optional<double> max_staleness_ms, std::optional<std::string> region) {
             ReadOptions o;
             // Checked whenever given, so a NaN is refused even where it would be ignored.
             if (max_staleness_ms) o.max_staleness_ms = finite(*max_staleness_ms, "max_staleness_ms");
             if (region) {
               o.region = r.topology()->region_id(*region);
               if (o.region == kNoNode) throw InvalidArgument("region", "no node is in region '" + *region + "'");
             }
             return with_name(*r.topology(), r.route_read(session, consistency, now_or_wall(now_ns), o));
           },
           py::arg("session"), py::arg("consistency") = Consistency::Eventual, py::arg("now_ns") = py::none(),
           py::arg("max_staleness_ms") = py::none(), py::arg("region") = py::none(),
           "Where a read goes (now_ns: wall-clock ns, the clock of record_write; default time.time_ns()).")
      .def("route_reads",
           [](Router& r, const py::object& write_lsns_obj, const py::object& read_lsns_obj, Consistency consistency,
              const py::object& now_ns, std::optional<double> max_staleness_ms) {
             U64Array write_lsns = to_lsn_array(write_lsns_obj, "write_lsns");
             auto w = write_lsns.unchecked<1>();
             U64Array read_lsns = read_lsns_obj.is_none() ? U64Array(w.shape(0)) : to_lsn_array(read_lsns_obj, "read_lsns");
             if (read_lsns_obj.is_none()) std::fill_n(read_lsns.mutable_data(), w.shape(0), 0);
             if (read_lsns.ndim() != 1 || read_lsns.shape(0) != w.shape(0)) {
               throw InvalidArgument("read_lsns", "must be a 1-D array as long as write_lsns");
             }
             auto rd = read_lsns.unchecked<1>();
             py::ssize_t n = w.shape(0);
             py::array_t<std::int32_t> nodes(n);
             py::array_t<std::uint8_t> reasons(n);
             auto out_nodes = nodes.mutable_unchecked<1>();
             auto out_reasons = reasons.mutable_unchecked<1>();
             ReadOptions o;
             if (max_staleness_ms) o.max_staleness_ms = finite(*max_staleness_ms, "max_staleness_ms");
             // Checked before the loop, so an empty batch rejects the same input as a full one.
             if (consistency == Consistency::BoundedStaleness && !max_staleness_ms) {
               throw InvalidArgument("max_staleness_ms", "BOUNDED_STALENESS needs a max_staleness_ms");
             }
             std::int64_t now = now_or_wall(now_ns);
             {
               py::gil_scoped_release release;
               Session s;
               for (py::ssize_t i = 0; i < n; ++i) {
                 s.write_lsn = Lsn(w(i));
                 s.read_lsn = Lsn(rd(i));
                 Decision d = r.route_read(s, consistency, now, o);
                 out_nodes(i) = d.node;
                 out_reasons(i) = static_cast<std::uint8_t>(d.reason);
               }
             }
             return py::make_tuple(nodes, reasons);
           },
           py::arg("write_lsns"), py::arg("read_lsns") = py::none(), py::arg("consistency") = Consistency::Eventual,
           py::arg("now_ns") = py::none(), py::arg("max_staleness_ms") = py::none(),
           "Routes one read per element of the LSN arrays; returns (nodes int32, reasons uint8) arrays "
           "(node -1: none; reasons are Reason values).")
      .def("begin", [](Router& r, const py::object& node) { r.begin(to_node(*r.topology(), node, "node")); },
           py::arg("node"), "Counts a request starting on a node (for LEAST_OUTSTANDING).")
      .def("end", [](Router& r, const py::object& node) { r.end(to_node(*r.topology(), node, "node")); },
           py::arg("node"), "Counts a request on a node finishing.")
      .def("in_flight",
           [](std::shared_ptr<Router> r, const py::object& node) {
             int index = to_node(*r->topology(), node, "node");
             return InFlightGuard{std::move(r), index, false};
           },
           py::arg("node"), "A context manager: begin() on enter, end() on exit.")
      .def("counters", &counters_dict, "Decision counts: {'by_node': {...}, 'by_reason': {...}, 'total': n}.")
      .def("reset_counters", &Router::reset_counters, "Zeroes the decision counters.");
}

}  // namespace replikit::bindings
