// Python bindings of the quorum math: ConsistencyGoal, QuorumAnalysis, QuorumChoice and the
// closed-form functions.
#include <pybind11/native_enum.h>
#include <pybind11/pybind11.h>

#include "bindings.hpp"
#include "convert.hpp"
#include "replikit/quorum.hpp"

namespace replikit::bindings {

namespace {

py::dict analysis_dict(const QuorumAnalysis& a) {
  py::dict d;
  d["n"] = a.n;
  d["w"] = a.w;
  d["r"] = a.r;
  d["strong"] = a.strong;
  d["writes_may_conflict"] = a.writes_may_conflict;
  d["read_fault_tolerance"] = a.read_fault_tolerance;
  d["write_fault_tolerance"] = a.write_fault_tolerance;
  d["p_up"] = a.p_up;
  d["read_availability"] = a.read_availability;
  d["write_availability"] = a.write_availability;
  d["stale_read_probability"] = a.stale_read_probability;
  return d;
}

const int kBig = 1 << 30;

}  // namespace

void bind_quorum_analysis(py::module_& m) {
  py::native_enum<ConsistencyGoal>(m, "ConsistencyGoal", "enum.Enum", "The consistency minimum_quorum sizes for.")
      .value("STRONG", ConsistencyGoal::Strong, "Every read sees the latest acknowledged write (W + R > N).")
      .value("EVENTUAL", ConsistencyGoal::Eventual, "Reads may be stale; replicas converge.")
      .finalize();

  py::class_<QuorumAnalysis>(m, "QuorumAnalysis", "What the quorum math says about one (N, W, R).")
      .def_readonly("n", &QuorumAnalysis::n, "Replicas.")
      .def_readonly("w", &QuorumAnalysis::w, "Write quorum.")
      .def_readonly("r", &QuorumAnalysis::r, "Read quorum.")
      .def_readonly("strong", &QuorumAnalysis::strong, "W + R > N: every read quorum meets every write quorum.")
      .def_readonly("writes_may_conflict", &QuorumAnalysis::writes_may_conflict,
                    "2W <= N: two concurrent writes can succeed on disjoint replicas.")
      .def_readonly("read_fault_tolerance", &QuorumAnalysis::read_fault_tolerance, "Failed nodes a read tolerates (N - R).")
      .def_readonly("write_fault_tolerance", &QuorumAnalysis::write_fault_tolerance,
                    "Failed nodes a write tolerates (N - W).")
      .def_readonly("p_up", &QuorumAnalysis::p_up, "Per-node probability of being up.")
      .def_readonly("read_availability", &QuorumAnalysis::read_availability, "P(at least R nodes up), exact.")
      .def_readonly("write_availability", &QuorumAnalysis::write_availability, "P(at least W nodes up), exact.")
      .def_readonly("stale_read_probability", &QuorumAnalysis::stale_read_probability,
                    "C(N-W,R)/C(N,R): a random read quorum misses a random write quorum.")
      .def("to_dict", &analysis_dict, "The fields as a dict (one DataFrame record).")
      .def("__repr__", [](const QuorumAnalysis& a) {
        return repr_of("QuorumAnalysis", {{"n", py::int_(a.n)}, {"w", py::int_(a.w)}, {"r", py::int_(a.r)},
                                          {"strong", py::bool_(a.strong)}});
      });

  py::class_<QuorumChoice>(m, "QuorumChoice", "The answer of minimum_quorum: a (W, R), or why none exists.")
      .def_readonly("feasible", &QuorumChoice::feasible, "Whether a configuration exists.")
      .def_readonly("n", &QuorumChoice::n, "Replicas.")
      .def_readonly("failed_nodes", &QuorumChoice::failed_nodes, "Nodes permanently down.")
      .def_readonly("w", &QuorumChoice::w, "Smallest write quorum (0 when infeasible).")
      .def_readonly("r", &QuorumChoice::r, "Smallest read quorum (0 when infeasible).")
      .def_readonly("reason", &QuorumChoice::reason, "Why not, when infeasible; empty otherwise.")
      .def("__repr__", [](const QuorumChoice& c) {
        if (!c.feasible) return repr_of("QuorumChoice", {{"feasible", py::bool_(false)}, {"reason", py::str(c.reason)}});
        return repr_of("QuorumChoice", {{"n", py::int_(c.n)}, {"failed_nodes", py::int_(c.failed_nodes)},
                                        {"w", py::int_(c.w)}, {"r", py::int_(c.r)}});
      });
}

void bind_quorum_functions(py::module_& m) {
  const int big = kBig;
  m.def("is_strong_quorum", [=](const py::object& n, const py::object& w, const py::object& r) {
        return is_strong_quorum(to_int(n, "n", -big, big), to_int(w, "w", -big, big), to_int(r, "r", -big, big));
      }, py::arg("n"), py::arg("w"), py::arg("r"), "True when W + R > N (every read quorum meets every write quorum).");
  m.def("writes_may_conflict", [=](const py::object& n, const py::object& w) {
        return writes_may_conflict(to_int(n, "n", -big, big), to_int(w, "w", -big, big));
      }, py::arg("n"), py::arg("w"), "True when 2W <= N: two concurrent writes can both succeed on disjoint replicas.");
  m.def("read_fault_tolerance", [=](const py::object& n, const py::object& r) {
        return read_fault_tolerance(to_int(n, "n", -big, big), to_int(r, "r", -big, big));
      }, py::arg("n"), py::arg("r"), "Failed nodes a read of R out of N tolerates: N - R.");
  m.def("write_fault_tolerance", [=](const py::object& n, const py::object& w) {
        return write_fault_tolerance(to_int(n, "n", -big, big), to_int(w, "w", -big, big));
      }, py::arg("n"), py::arg("w"), "Failed nodes a write of W out of N tolerates: N - W.");
  m.def("at_least_k_up_probability", [=](const py::object& n, const py::object& k, const py::object& p_up) {
        return at_least_k_up_probability(to_int(n, "n", -big, big), to_int(k, "k", -big, big), to_double(p_up, "p_up"));
      }, py::arg("n"), py::arg("k"), py::arg("p_up"),
      "P(at least k of n nodes up), each up independently with probability p_up (exact binomial tail).");
  m.def("read_availability", [=](const py::object& n, const py::object& r, const py::object& p_up) {
        return read_availability(to_int(n, "n", -big, big), to_int(r, "r", -big, big), to_double(p_up, "p_up"));
      }, py::arg("n"), py::arg("r"), py::arg("p_up"), "Probability that R of N nodes are up to serve a read (exact).");
  m.def("write_availability", [=](const py::object& n, const py::object& w, const py::object& p_up) {
        return write_availability(to_int(n, "n", -big, big), to_int(w, "w", -big, big), to_double(p_up, "p_up"));
      }, py::arg("n"), py::arg("w"), py::arg("p_up"), "Probability that W of N nodes are up to accept a write (exact).");
  m.def("stale_read_probability", [=](const py::object& n, const py::object& w, const py::object& r) {
        return stale_read_probability(to_int(n, "n", -big, big), to_int(w, "w", -big, big), to_int(r, "r", -big, big));
      }, py::arg("n"), py::arg("w"), py::arg("r"),
      "C(N-W,R)/C(N,R): probability that R random replicas miss a write to W random replicas.");
  m.def("analyze_quorum", [=](const py::object& n, const py::object& w, const py::object& r, const py::object& p_up) {
        return analyze_quorum(to_int(n, "n", -big, big), to_int(w, "w", -big, big), to_int(r, "r", -big, big),
                              to_double(p_up, "p_up"));
      }, py::arg("n"), py::arg("w"), py::arg("r"), py::arg("p_up") = 0.99,
      "Everything about one (N, W, R) with nodes up with probability p_up, as a QuorumAnalysis.");
  m.def("quorum_table", [=](const py::object& n, const py::object& p_up) {
        const auto rows = quorum_table(to_int(n, "n", -big, big), to_double(p_up, "p_up"));
        py::list out;
        for (const auto& row : rows) out.append(analysis_dict(row));
        return out;
      }, py::arg("n"), py::arg("p_up") = 0.99,
      "Every (W, R) for one N (<= 256) as a list of dict records (pandas.DataFrame(records) works).");
  m.def("minimum_quorum", [=](const py::object& n, const py::object& goal, const py::object& failed_nodes) {
        return minimum_quorum(to_int(n, "n", -big, big), to_enum<ConsistencyGoal>(goal, "goal"),
                              to_int(failed_nodes, "failed_nodes", -big, big));
      }, py::arg("n"), py::arg("goal") = ConsistencyGoal::Strong, py::arg("failed_nodes") = 0,
      "Smallest (W, R) for the goal (a ConsistencyGoal or its name) with failed_nodes of N permanently down: least W + R, then balanced with W >= R.");
}

}  // namespace replikit::bindings
