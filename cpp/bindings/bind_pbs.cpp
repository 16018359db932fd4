// Python bindings of PBS: latency distributions, WARS models and the Monte Carlo simulation.
#include <pybind11/native_enum.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>

#include "bindings.hpp"
#include "convert.hpp"
#include "replikit/pbs.hpp"

namespace replikit::bindings {

namespace {

py::array_t<double> to_array(std::vector<double>&& values) {
  auto* heap = new std::vector<double>(std::move(values));
  py::capsule owner(heap, [](void* p) { delete static_cast<std::vector<double>*>(p); });
  return py::array_t<double>(static_cast<py::ssize_t>(heap->size()), heap->data(), owner);
}

const LatencyDistribution& to_distribution(const py::handle& value, const char* argument) {
  if (!py::isinstance<LatencyDistribution>(value)) {
    wrong_type(argument, "a LatencyDistribution", value);
  }
  return value.cast<const LatencyDistribution&>();
}

py::dict distribution_dict(const LatencyDistribution& d) {
  py::dict out;
  switch (d.kind()) {
    case LatencyKind::Constant:
      out["kind"] = "constant";
      out["value_ms"] = d.value_ms();
      break;
    case LatencyKind::Exponential:
      out["kind"] = "exponential";
      out["rate_per_ms"] = d.rate_per_ms();
      break;
    case LatencyKind::Pareto:
      out["kind"] = "pareto";
      out["scale_ms"] = d.scale_ms();
      out["shape"] = d.shape();
      break;
    case LatencyKind::Empirical:
      out["kind"] = "empirical";
      out["samples_ms"] = to_array(std::vector<double>(d.samples_ms()));
      break;
    case LatencyKind::Mixture: {
      out["kind"] = "mixture";
      out["weights"] = d.weights();
      py::list comps;
      for (const auto& c : d.components()) comps.append(distribution_dict(c));
      out["components"] = comps;
      break;
    }
  }
  return out;
}

}  // namespace

void bind_latency_distribution(py::module_& m) {
  py::native_enum<LatencyKind>(m, "LatencyKind", "enum.Enum", "The kinds of latency distribution.")
      .value("CONSTANT", LatencyKind::Constant)
      .value("EXPONENTIAL", LatencyKind::Exponential)
      .value("PARETO", LatencyKind::Pareto)
      .value("EMPIRICAL", LatencyKind::Empirical)
      .value("MIXTURE", LatencyKind::Mixture)
      .finalize();

  py::class_<LatencyDistribution>(m, "LatencyDistribution",
                                  "A one-way message latency distribution in milliseconds (immutable).")
      .def_static("constant", [](const py::object& value_ms) { return LatencyDistribution::constant(to_double(value_ms, "value_ms")); },
                  py::arg("value_ms"), "Always value_ms (>= 0).")
      .def_static("exponential",
                  [](const py::object& rate_per_ms) { return LatencyDistribution::exponential(to_double(rate_per_ms, "rate_per_ms")); },
                  py::arg("rate_per_ms"), "Exponential with rate rate_per_ms (> 0); mean 1/rate.")
      .def_static("pareto",
                  [](const py::object& scale_ms, const py::object& shape) {
                    return LatencyDistribution::pareto(to_double(scale_ms, "scale_ms"), to_double(shape, "shape"));
                  },
                  py::arg("scale_ms"), py::arg("shape"), "Pareto with minimum scale_ms (> 0) and tail index shape (> 0).")
      .def_static("empirical",
                  [](const py::object& samples_ms) { return LatencyDistribution::empirical(to_doubles(samples_ms, "samples_ms")); },
                  py::arg("samples_ms"),
                  "Resampling of measured latencies: a non-empty 1-D array of finite values >= 0 (numpy arrays welcome).")
      .def_static("mixture",
                  [](const py::object& weights, const py::object& components) {
                    std::vector<LatencyDistribution> comps;
                    for (const auto& c : to_items(components, "components", "a sequence of LatencyDistribution")) {
                      comps.push_back(to_distribution(c, "components"));
                    }
                    return LatencyDistribution::mixture(to_doubles(weights, "weights"), comps);
                  },
                  py::arg("weights"), py::arg("components"),
                  "components[i] with probability weights[i] / sum(weights).")
      .def_property_readonly("kind", &LatencyDistribution::kind, "Which kind this is.")
      .def("to_dict", &distribution_dict, "Kind and parameters as a dict (nested for mixtures).")
      .def("cdf", [](const LatencyDistribution& d, const py::object& x_ms) { return d.cdf(to_double(x_ms, "x_ms")); },
           py::arg("x_ms"), "P(X <= x_ms).")
      .def("survival", [](const LatencyDistribution& d, const py::object& x_ms) { return d.survival(to_double(x_ms, "x_ms")); },
           py::arg("x_ms"), "P(X > x_ms).")
      .def("quantile", [](const LatencyDistribution& d, const py::object& q) { return d.quantile(to_double(q, "q")); },
           py::arg("q"), "The smallest x with P(X <= x) >= q, q in [0, 1].")
      .def("upper_quantile", [](const LatencyDistribution& d, const py::object& v) { return d.upper_quantile(to_double(v, "v")); },
           py::arg("v"), "The smallest x with P(X > x) <= v, v in (0, 1] (precise far in the tail).")
      .def("mean_ms", &LatencyDistribution::mean_ms, "The mean (inf for a Pareto with shape <= 1).")
      .def("sample",
           [](const LatencyDistribution& d, const py::object& count, const py::object& seed) {
             const std::uint64_t c = to_uint64(count, "count");
             const std::uint64_t s = to_uint64(seed, "seed");
             std::vector<double> out;
             {
               py::gil_scoped_release release;
               out = sample_latency(d, c, s);
             }
             return to_array(std::move(out));
           },
           py::arg("count"), py::arg("seed"), "count samples from the sampler the WARS simulation uses (numpy array).")
      .def("__repr__", &LatencyDistribution::describe);
}

void bind_wars_model(py::module_& m) {
  py::class_<WarsModel>(m, "WarsModel",
                        "The four WARS one-way delay distributions: w (write request), a (write ack), "
                        "r (read request), s (read response).")
      .def(py::init([](const py::object& w, const py::object& a, const py::object& r, const py::object& s) {
             return WarsModel{to_distribution(w, "w"), to_distribution(a, "a"), to_distribution(r, "r"),
                              to_distribution(s, "s")};
           }),
           py::arg("w"), py::arg("a"), py::arg("r"), py::arg("s"), "A model from four LatencyDistributions.")
      .def_readonly("w", &WarsModel::w, "Write request delay.")
      .def_readonly("a", &WarsModel::a, "Write acknowledgement delay.")
      .def_readonly("r", &WarsModel::r, "Read request delay.")
      .def_readonly("s", &WarsModel::s, "Read response delay.")
      .def_static("uniform", [](const py::object& d) { return WarsModel::uniform(to_distribution(d, "d")); }, py::arg("d"),
                  "The same distribution for all four delays.")
      .def_static("lnkd_ssd", &WarsModel::lnkd_ssd, "LinkedIn Voldemort on SSDs (PBS paper's LNKD-SSD fit).")
      .def_static("lnkd_disk", &WarsModel::lnkd_disk, "LinkedIn Voldemort on disks (LNKD-DISK: W from the disk fit).")
      .def_static("ymmr", [](const py::object& shape) { return WarsModel::ymmr(to_double(shape, "write_pareto_shape")); },
                  py::arg("write_pareto_shape") = kYmmrWriteParetoShape,
                  "Yammer Riak (YMMR). The write Pareto shape defaults to 3.5, the authors' simulator's value, "
                  "which reproduces the published results; the paper's fits table gives 3.35.")
      .def("__repr__", [](const WarsModel& w) {
        return "WarsModel(w=" + w.w.describe() + ", a=" + w.a.describe() + ", r=" + w.r.describe() + ", s=" + w.s.describe() + ")";
      });
}

// The latency and margin queries of a WarsSimulation.
void bind_wars_simulation_latency(py::class_<WarsSimulation>& c);

void bind_wars_simulation(py::module_& m) {
  py::class_<WarsSimulation> c(m, "WarsSimulation",
                             "A compiled WARS Monte Carlo for one (N, W, R, model). Seeded: the same seed gives "
                             "the same answer. Releases the GIL while it runs.");
  c.def(py::init([](const py::object& n, const py::object& w, const py::object& r, const py::object& model) {
             if (!py::isinstance<WarsModel>(model)) {
               wrong_type("model", "a WarsModel", model);
             }
             const int big = 1 << 30;
             return std::make_unique<WarsSimulation>(to_int(n, "n", -big, big), to_int(w, "w", -big, big),
                                                     to_int(r, "r", -big, big), model.cast<const WarsModel&>());
           }),
           py::arg("n"), py::arg("w"), py::arg("r"), py::arg("model"), "Validates N, W, R and compiles the samplers.")
      .def_property_readonly("n", &WarsSimulation::n, "N.")
      .def_property_readonly("w", &WarsSimulation::w, "W.")
      .def_property_readonly("r", &WarsSimulation::r, "R.")
      .def("consistency_probability",
           [](const WarsSimulation& sim, const py::object& times_ms, const py::object& trials, const py::object& seed) {
             const auto times = to_doubles(times_ms, "times_ms");
             const std::uint64_t t = to_uint64(trials, "trials");
             const std::uint64_t s = to_uint64(seed, "seed");
             std::vector<double> out;
             {
               py::gil_scoped_release release;
               out = sim.consistency_probability(times, t, s);
             }
             return to_array(std::move(out));
           },
           py::arg("times_ms"), py::arg("trials"), py::arg("seed"),
           "P(consistent read) at each time (ms after commit, >= 0) from one run of `trials` trials (numpy array).")
      .def("t_visibility_ms",
           [](const WarsSimulation& sim, const py::object& p, const py::object& trials, const py::object& seed) {
             const double pp = to_double(p, "p");
             const std::uint64_t t = to_uint64(trials, "trials");
             const std::uint64_t s = to_uint64(seed, "seed");
             py::gil_scoped_release release;
             return sim.t_visibility_ms(pp, t, s);
           },
           py::arg("p"), py::arg("trials"), py::arg("seed"),
           "The smallest t >= 0 (ms after commit) with P(consistent read) >= p.");
  bind_wars_simulation_latency(c);
}

void bind_wars_simulation_latency(py::class_<WarsSimulation>& c) {
  c.def("operation_latency_ms",
           [](const WarsSimulation& sim, const py::object& p, const py::object& trials, const py::object& seed) {
             const double pp = to_double(p, "p");
             const std::uint64_t t = to_uint64(trials, "trials");
             const std::uint64_t s = to_uint64(seed, "seed");
             OperationLatency lat;
             {
               py::gil_scoped_release release;
               lat = sim.operation_latency_ms(pp, t, s);
             }
             py::dict out;
             out["read_ms"] = lat.read_ms;
             out["write_ms"] = lat.write_ms;
             return out;
           },
           py::arg("p"), py::arg("trials"), py::arg("seed"),
           "The p-quantile of read and write latency: {'read_ms': ..., 'write_ms': ...}.")
      .def("staleness_margins_ms",
           [](const WarsSimulation& sim, const py::object& trials, const py::object& seed) {
             const std::uint64_t t = to_uint64(trials, "trials");
             const std::uint64_t s = to_uint64(seed, "seed");
             std::vector<double> out;
             {
               py::gil_scoped_release release;
               out = sim.staleness_margins_ms(t, s);
             }
             return to_array(std::move(out));
           },
           py::arg("trials"), py::arg("seed"),
           "Per-trial margins: a read t ms after commit is consistent iff margin <= t (numpy array).");
}

void bind_pbs_functions(py::module_& m) {
  const int big = 1 << 30;
  m.def("k_staleness_probability",
        [=](const py::object& n, const py::object& w, const py::object& r, const py::object& k) {
          return k_staleness_probability(to_int(n, "n", -big, big), to_int(w, "w", -big, big), to_int(r, "r", -big, big),
                                         to_int(k, "k", -big, big));
        },
        py::arg("n"), py::arg("w"), py::arg("r"), py::arg("k"),
        "PBS closed form: probability a read misses all of the last k writes, (C(N-W,R)/C(N,R))**k.");
  m.def("k_consistency_probability",
        [=](const py::object& n, const py::object& w, const py::object& r, const py::object& k) {
          return k_consistency_probability(to_int(n, "n", -big, big), to_int(w, "w", -big, big),
                                           to_int(r, "r", -big, big), to_int(k, "k", -big, big));
        },
        py::arg("n"), py::arg("w"), py::arg("r"), py::arg("k"),
        "PBS closed form: probability a read returns one of the last k versions.");
  m.attr("PBS_MAX_TRIALS") = kPbsMaxTrials;
  m.attr("PBS_MAX_NODES") = kPbsMaxNodes;
}

}  // namespace replikit::bindings
