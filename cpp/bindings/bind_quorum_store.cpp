// Python bindings of the leaderless quorum store: vector clocks, results, QuorumStore, QuorumDatabase.
#include <pybind11/native_enum.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>

#include "bindings.hpp"
#include "convert.hpp"
#include "replikit/quorum_store.hpp"

namespace replikit::bindings {

namespace {

VectorClock to_clock(const py::handle& value, const char* argument) {
  VectorClock clock;
  if (value.is_none()) return clock;
  if (!py::isinstance<py::dict>(value)) wrong_type(argument, "a dict[str, int]", value);
  for (const auto& [k, v] : py::reinterpret_borrow<py::dict>(value)) {
    clock[to_str(k, argument)] = to_uint64(v, argument);
  }
  return clock;
}

py::dict clock_dict(const VectorClock& c) {
  py::dict d;
  for (const auto& [k, v] : c) d[py::str(k)] = v;
  return d;
}

const int kBig = 1 << 30;

}  // namespace

void bind_vector_clocks(py::module_& m) {
  py::native_enum<Versioning>(m, "Versioning", "enum.Enum", "How a QuorumStore orders versions of a key.")
      .value("LAST_WRITER_WINS", Versioning::LastWriterWins, "Highest (timestamp, writer) wins; concurrent writes are lost.")
      .value("VECTOR_CLOCKS", Versioning::VectorClocks, "Concurrent writes are kept and returned as siblings.")
      .finalize();
  py::native_enum<QuorumOutcome>(m, "QuorumOutcome", "enum.Enum", "Whether an operation reached its quorum.")
      .value("OK", QuorumOutcome::Ok)
      .value("NOT_ENOUGH_REPLICAS", QuorumOutcome::NotEnoughReplicas)
      .finalize();
  py::native_enum<ClockOrder>(m, "ClockOrder", "enum.Enum", "How two vector clocks relate.")
      .value("EQUAL", ClockOrder::Equal)
      .value("BEFORE", ClockOrder::Before)
      .value("AFTER", ClockOrder::After)
      .value("CONCURRENT", ClockOrder::Concurrent)
      .finalize();

  m.def("compare_clocks", [](const py::object& a, const py::object& b) { return compare_clocks(to_clock(a, "a"), to_clock(b, "b")); },
        py::arg("a"), py::arg("b"), "How vector clock a relates to b (BEFORE: a happened before b).");
  m.def("merge_clocks", [](const py::object& a, const py::object& b) { return clock_dict(merge_clocks(to_clock(a, "a"), to_clock(b, "b"))); },
        py::arg("a"), py::arg("b"), "The entry-wise maximum of two vector clocks.");
}

void bind_quorum_results(py::module_& m) {
  py::class_<StoredVersion>(m, "StoredVersion", "One stored version of a value.")
      .def_readonly("value", &StoredVersion::value, "The value.")
      .def_readonly("timestamp", &StoredVersion::timestamp, "Logical write time (orders last-writer-wins).")
      .def_readonly("writer", &StoredVersion::writer, "The client that wrote it.")
      .def_property_readonly("clock", [](const StoredVersion& v) { return clock_dict(v.clock); }, "Its vector clock.")
      .def("__repr__", [](const StoredVersion& v) {
        return repr_of("StoredVersion",
                       {{"value", py::str(v.value)}, {"timestamp", py::int_(v.timestamp)}, {"writer", py::str(v.writer)}});
      });

  py::class_<WriteResult>(m, "WriteResult", "The result of a quorum write.")
      .def_readonly("outcome", &WriteResult::outcome, "OK or NOT_ENOUGH_REPLICAS.")
      .def_property_readonly("ok", &WriteResult::ok, "Whether W replicas acknowledged.")
      .def_readonly("acks", &WriteResult::acks, "Synchronous acknowledgements.")
      .def_readonly("hinted", &WriteResult::hinted, "Hints stored for down home replicas.")
      .def_readonly("latency_ms", &WriteResult::latency_ms, "The W-th fastest acknowledgement.")
      .def_readonly("version", &WriteResult::version, "What was written.")
      .def_readonly("replicas", &WriteResult::replicas, "Nodes that acknowledged, fastest first.")
      .def_readonly("reason", &WriteResult::reason, "Why not, when not ok.")
      .def("__bool__", &WriteResult::ok)
      .def("__repr__", [](const WriteResult& w) {
        return repr_of("WriteResult", {{"ok", py::bool_(w.ok())}, {"acks", py::int_(w.acks)}});
      });

  py::class_<ReadResult>(m, "ReadResult", "The result of a quorum read.")
      .def_readonly("outcome", &ReadResult::outcome, "OK or NOT_ENOUGH_REPLICAS.")
      .def_property_readonly("ok", &ReadResult::ok, "Whether R replicas answered.")
      .def_property_readonly("found", &ReadResult::found, "Whether any version exists.")
      .def_property_readonly("conflict", &ReadResult::conflict, "Whether concurrent siblings were returned.")
      .def_readonly("siblings", &ReadResult::siblings, "Empty: not found; one: resolved; more: concurrent.")
      .def_property_readonly("values", [](const ReadResult& r) {
        py::list out;
        for (const auto& v : r.siblings) out.append(py::str(v.value));
        return out;
      }, "The sibling values.")
      .def_property_readonly("value", [](const ReadResult& r) -> py::object {
        if (r.siblings.size() != 1) return py::none();
        return py::str(r.siblings[0].value);
      }, "The value when exactly one version was returned, else None (never picks among siblings).")
      .def_property_readonly("context", [](const ReadResult& r) { return clock_dict(r.context); },
                             "Merged vector clock: pass it to the next put to supersede these siblings.")
      .def_readonly("responses", &ReadResult::responses, "Responses used.")
      .def_readonly("latency_ms", &ReadResult::latency_ms, "The R-th fastest response.")
      .def_readonly("repaired", &ReadResult::repaired, "Replicas changed by read repair.")
      .def_readonly("replicas", &ReadResult::replicas, "Nodes whose responses were used, fastest first.")
      .def_readonly("reason", &ReadResult::reason, "Why not, when not ok.")
      .def("__repr__", [](const ReadResult& r) {
        return repr_of("ReadResult", {{"ok", py::bool_(r.ok())}, {"siblings", py::int_(r.siblings.size())}});
      });
}

// The operations and inspection methods of a QuorumStore.
void bind_quorum_store_methods(py::class_<QuorumStore>& c);

void bind_quorum_store(py::module_& m) {
  py::class_<QuorumStore> c(m, "QuorumStore",
                          "In-process leaderless quorum store: N replicas per key on a ring, injectable failures, "
                          "per-node latency, LWW or vector clocks with siblings, read repair, bounded hinted "
                          "handoff, optional sloppy quorum. Logical time; deterministic.");
  c.def(py::init([](const py::object& n, const py::object& w, const py::object& r, const py::object& nodes,
                       const py::object& versioning, const py::object& read_repair, const py::object& hinted_handoff,
                       const py::object& sloppy_quorum,
                       const py::object& max_hints, const py::object& max_in_flight, const py::object& max_keys,
                       const py::object& max_siblings) {
             QuorumStoreOptions o;
             o.n = to_int(n, "n", -kBig, kBig);
             o.w = to_int(w, "w", -kBig, kBig);
             o.r = to_int(r, "r", -kBig, kBig);
             o.nodes = nodes.is_none() ? 0 : to_int(nodes, "nodes", 1, kBig);
             o.versioning = to_enum<Versioning>(versioning, "versioning");
             o.read_repair = to_bool(read_repair, "read_repair");
             o.hinted_handoff = to_bool(hinted_handoff, "hinted_handoff");
             o.sloppy_quorum = to_bool(sloppy_quorum, "sloppy_quorum");
             o.max_hints = static_cast<std::size_t>(to_int64(max_hints, "max_hints", 0, 1LL << 40));
             o.max_in_flight = static_cast<std::size_t>(to_int64(max_in_flight, "max_in_flight", 0, 1LL << 40));
             o.max_keys = static_cast<std::size_t>(to_int64(max_keys, "max_keys", 0, 1LL << 40));
             o.max_siblings = static_cast<std::size_t>(to_int64(max_siblings, "max_siblings", 0, 1LL << 40));
             return std::make_unique<QuorumStore>(o);
           }),
           py::arg("n") = 3, py::arg("w") = 2, py::arg("r") = 2, py::kw_only(), py::arg("nodes") = py::none(),
           py::arg("versioning") = Versioning::LastWriterWins, py::arg("read_repair") = true,
           py::arg("hinted_handoff") = false, py::arg("sloppy_quorum") = false, py::arg("max_hints") = 1024,
           py::arg("max_in_flight") = 100000, py::arg("max_keys") = 1000000, py::arg("max_siblings") = 64,
           "A store with N replicas per key, W-acknowledged writes and R-response reads (versioning: a "
           "Versioning or its name).");
  bind_quorum_store_methods(c);
}

void bind_quorum_store_methods(py::class_<QuorumStore>& c) {
  c.def_static("majority", [](const py::object& n) { return std::make_unique<QuorumStore>(QuorumStoreOptions::majority(to_int(n, "n", -kBig, kBig))); },
                  py::arg("n"), "Majority W and R, last-writer-wins: the original QuorumDatabase.")
      .def_property_readonly("n", [](const QuorumStore& s) { return s.options().n; }, "Replicas per key.")
      .def_property_readonly("w", [](const QuorumStore& s) { return s.options().w; }, "Write quorum.")
      .def_property_readonly("r", [](const QuorumStore& s) { return s.options().r; }, "Read quorum.")
      .def_property_readonly("nodes", [](const QuorumStore& s) { return s.options().nodes; }, "Nodes on the ring.")
      .def_property_readonly("versioning", [](const QuorumStore& s) { return s.options().versioning; }, "Versioning in force.")
      .def("put",
           [](QuorumStore& s, const py::object& key, const py::object& value, const py::object& client,
              const py::object& context, const py::object& timestamp) {
             const std::uint64_t ts = timestamp.is_none() ? 0 : to_uint64(timestamp, "timestamp");
             if (!timestamp.is_none() && ts == 0) throw InvalidArgument("timestamp", "must be positive (None: automatic)");
             return s.put(to_str(key, "key"), to_str(value, "value"), to_str(client, "client"), to_clock(context, "context"), ts);
           },
           py::arg("key"), py::arg("value"), py::arg("client") = "client", py::arg("context") = py::none(),
           py::arg("timestamp") = py::none(),
           "Write value under key as client. context: the clock of the client's last read (vector clocks). "
           "timestamp: a client clock for last-writer-wins (None: the store's logical clock).")
      .def("get", [](QuorumStore& s, const py::object& key) { return s.get(to_str(key, "key")); }, py::arg("key"),
           "Read key from the R fastest live replicas: the newest version, or every concurrent sibling.")
      .def("fail_node", [](QuorumStore& s, const py::object& node) { s.fail_node(to_int(node, "node", -kBig, kBig)); },
           py::arg("node"), "Mark node down (it keeps its data).")
      .def("recover_node", [](QuorumStore& s, const py::object& node) { s.recover_node(to_int(node, "node", -kBig, kBig)); },
           py::arg("node"), "Mark node up and deliver its waiting hints.")
      .def("is_up", [](const QuorumStore& s, const py::object& node) { return s.is_up(to_int(node, "node", -kBig, kBig)); },
           py::arg("node"), "Whether node is up.")
      .def("set_node_latency_ms",
           [](QuorumStore& s, const py::object& node, const py::object& latency_ms) {
             s.set_node_latency_ms(to_int(node, "node", -kBig, kBig), to_double(latency_ms, "latency_ms"));
           },
           py::arg("node"), py::arg("latency_ms"), "Set node's round-trip latency (decides who answers first).")
      .def("node_latency_ms", [](const QuorumStore& s, const py::object& node) { return s.node_latency_ms(to_int(node, "node", -kBig, kBig)); },
           py::arg("node"), "node's round-trip latency.")
      .def("advance_ms", [](QuorumStore& s, const py::object& dt_ms) { s.advance_ms(to_double(dt_ms, "dt_ms")); }, py::arg("dt_ms"),
           "Move logical time forward, delivering replication that is due.")
      .def_property_readonly("now_ms", &QuorumStore::now_ms, "Logical time.")
      .def("preference_list", [](const QuorumStore& s, const py::object& key) { return s.preference_list(to_str(key, "key")); },
           py::arg("key"), "Ring order of nodes for key: the first n are its home replicas.")
      .def("replica_versions",
           [](const QuorumStore& s, const py::object& node, const py::object& key) {
             return s.replica_versions(to_int(node, "node", -kBig, kBig), to_str(key, "key"));
           },
           py::arg("node"), py::arg("key"), "What node stores for key (inspection).")
      .def_property_readonly("hints_pending", &QuorumStore::hints_pending, "Hints waiting for delivery.")
      .def_property_readonly("in_flight", &QuorumStore::in_flight, "Replication messages in flight.")
      .def("stats", [](const QuorumStore& s) {
        const auto& t = s.stats();
        py::dict d;
        d["writes_ok"] = t.writes_ok;
        d["writes_failed"] = t.writes_failed;
        d["reads_ok"] = t.reads_ok;
        d["reads_failed"] = t.reads_failed;
        d["read_repairs"] = t.read_repairs;
        d["hints_stored"] = t.hints_stored;
        d["hints_delivered"] = t.hints_delivered;
        d["hints_dropped"] = t.hints_dropped;
        d["deliveries"] = t.deliveries;
        d["deliveries_lost"] = t.deliveries_lost;
        return d;
      }, "Counters as a dict.");
}

void bind_quorum_database(py::module_& m) {
  py::class_<QuorumDatabase, QuorumStore>(m, "QuorumDatabase",
                                          "The original design's QuorumDatabase: N replicas, majority W and R, newest wins.")
      .def(py::init([](const py::object& n) { return std::make_unique<QuorumDatabase>(to_int(n, "n", -kBig, kBig)); }),
           py::arg("n") = 3, "N replicas with W = R = N // 2 + 1.");
}

}  // namespace replikit::bindings
